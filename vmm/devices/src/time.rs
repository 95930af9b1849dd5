//! Time units and the exact scaling the models use.
//!
//! `now` is nanoseconds of the VMM's monotonic clock (see the crate docs).
//! Device clocks (the PIT's 1.193182 MHz, the PM timer's 3.579545 MHz, the
//! LAPIC bus clock) are derived from it with 128-bit intermediate products,
//! so there is no drift and no overflow: a count read back at `now` is
//! `floor(now × hz / 10⁹)` counted from the count's start, and the time of
//! count `n` is the first nanosecond at which that count has been reached,
//! `ceil(n × 10⁹ / hz)`.

/// Nanoseconds in a second.
pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// Deadlines of periodic sources are never less than this apart (100 µs):
/// a guest that programs a 1-count PIT or LAPIC period gets interrupts
/// coalesced rather than a host timer every microsecond.
pub const MIN_PERIOD_NS: u64 = 100_000;

/// `floor(value × mul / div)`, saturating at `u64::MAX` (also for `div == 0`).
pub fn scale_floor(value: u64, mul: u64, div: u64) -> u64 {
    // A product of two u64 always fits in a u128.
    let p = u128::from(value).wrapping_mul(u128::from(mul));
    match p.checked_div(u128::from(div)) {
        Some(q) => u64::try_from(q).unwrap_or(u64::MAX),
        None => u64::MAX,
    }
}

/// `ceil(value × mul / div)`, saturating at `u64::MAX` (also for `div == 0`).
pub fn scale_ceil(value: u64, mul: u64, div: u64) -> u64 {
    let p = u128::from(value).wrapping_mul(u128::from(mul));
    let d = u128::from(div);
    match (p.checked_div(d), p.checked_rem(d)) {
        (Some(q), Some(r)) => {
            let q = if r != 0 { q.saturating_add(1) } else { q };
            u64::try_from(q).unwrap_or(u64::MAX)
        }
        _ => u64::MAX,
    }
}

/// Clock ticks of a `hz` clock between `start` and `now` (0 if `now` is
/// before `start`).
pub fn ticks_between(start: u64, now: u64, hz: u64) -> u64 {
    scale_floor(now.saturating_sub(start), hz, NANOS_PER_SEC)
}

/// The first nanosecond at which a `hz` clock started at `start` has ticked
/// `ticks` times (saturating).
pub fn time_of_tick(start: u64, ticks: u64, hz: u64) -> u64 {
    start.saturating_add(scale_ceil(ticks, NANOS_PER_SEC, hz))
}
