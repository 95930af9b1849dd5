//! A monotonic clock from the TSC.
//!
//! The TSC frequency comes from, in order: CPUID leaf 0x15 (crystal ratio),
//! the hypervisor timing leaf 0x4000_0010 (TSC kHz, as VMware and KVM define
//! it), CPUID leaf 0x16 (base MHz), or a measurement against PIT channel 2.
//! The arithmetic and the choice are plain logic with host tests; reading the
//! TSC and the PIT is the unikernel part.
//!
//! [`now`] calibrates on first use (a PIT calibration takes about 25 ms).

#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::arithmetic_side_effects
    )
)]

use core::time::Duration;

/// A point on the monotonic clock: nanoseconds since the clock was calibrated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The instant `nanos` nanoseconds after the clock's start.
    pub const fn from_nanos(nanos: u64) -> Instant {
        Instant(nanos)
    }

    /// Nanoseconds since the clock's start.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Microseconds since the clock's start.
    pub const fn as_micros(self) -> u64 {
        self.0 / 1_000
    }

    /// Milliseconds since the clock's start.
    pub const fn as_millis(self) -> u64 {
        self.0 / 1_000_000
    }

    /// `self + d`, saturating.
    pub fn saturating_add(self, d: Duration) -> Instant {
        let n = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(n))
    }

    /// Time from `earlier` to `self` (zero if `earlier` is later).
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

/// Where the TSC frequency came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// CPUID 0x15: crystal clock × ratio.
    Cpuid15,
    /// Hypervisor leaf 0x4000_0010.
    Hypervisor,
    /// CPUID 0x16: processor base frequency.
    Cpuid16,
    /// Measured against PIT channel 2.
    Pit,
    /// Nothing worked; an assumed frequency.
    Assumed,
}

impl core::fmt::Display for Source {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Source::Cpuid15 => "CPUID 0x15",
            Source::Hypervisor => "hypervisor leaf 0x40000010",
            Source::Cpuid16 => "CPUID 0x16",
            Source::Pit => "PIT calibration",
            Source::Assumed => "assumed (no calibration source)",
        })
    }
}

/// The CPUID values that can give the TSC frequency.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuidTiming {
    /// Leaf 0x15 `(eax = denominator, ebx = numerator, ecx = crystal Hz)`, if
    /// the maximum basic leaf reaches it.
    pub leaf15: Option<(u32, u32, u32)>,
    /// Leaf 0x16 `eax` (base MHz), if reachable.
    pub leaf16: Option<u32>,
    /// Leaf 0x4000_0010 `eax` (TSC kHz), if a hypervisor advertises it.
    pub hv_tsc_khz: Option<u32>,
}

/// Lowest and highest frequency believed (1 MHz .. 100 GHz).
const PLAUSIBLE_HZ: core::ops::RangeInclusive<u64> = 1_000_000..=100_000_000_000;

/// The TSC frequency the CPUID values give, if any is plausible.
pub fn tsc_hz_from_cpuid(t: &CpuidTiming) -> Option<(u64, Source)> {
    let ok = |hz: u64| PLAUSIBLE_HZ.contains(&hz);
    if let Some((den, num, crystal)) = t.leaf15 {
        if den != 0 && num != 0 && crystal != 0 {
            let hz = u64::from(crystal)
                .saturating_mul(u64::from(num))
                .checked_div(u64::from(den))
                .unwrap_or(0);
            if ok(hz) {
                return Some((hz, Source::Cpuid15));
            }
        }
    }
    if let Some(khz) = t.hv_tsc_khz {
        let hz = u64::from(khz).saturating_mul(1_000);
        if ok(hz) {
            return Some((hz, Source::Hypervisor));
        }
    }
    if let Some(mhz) = t.leaf16 {
        let hz = u64::from(mhz & 0xffff).saturating_mul(1_000_000);
        if ok(hz) {
            return Some((hz, Source::Cpuid16));
        }
    }
    None
}

/// PIT input clock (Hz).
pub const PIT_HZ: u64 = 1_193_182;

/// The TSC frequency from `tsc_ticks` counted over `pit_ticks` PIT periods.
pub fn hz_from_pit(tsc_ticks: u64, pit_ticks: u64) -> Option<u64> {
    if pit_ticks == 0 {
        return None;
    }
    let hz = u128::from(tsc_ticks)
        .saturating_mul(u128::from(PIT_HZ))
        .checked_div(u128::from(pit_ticks))?;
    u64::try_from(hz).ok().filter(|h| PLAUSIBLE_HZ.contains(h))
}

/// `ticks` of a `hz` clock in nanoseconds (saturating; 0 if `hz` is 0).
pub fn ticks_to_nanos(ticks: u64, hz: u64) -> u64 {
    let ns = u128::from(ticks)
        .saturating_mul(1_000_000_000)
        .checked_div(u128::from(hz))
        .unwrap_or(0);
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// `nanos` in ticks of a `hz` clock (saturating).
pub fn nanos_to_ticks(nanos: u64, hz: u64) -> u64 {
    let t = u128::from(nanos).saturating_mul(u128::from(hz)) / 1_000_000_000;
    u64::try_from(t).unwrap_or(u64::MAX)
}

#[cfg(target_os = "none")]
pub use hw::{calibration, init, now, spin, ticks, Calibration};

#[cfg(target_os = "none")]
mod hw {
    use super::*;
    use core::arch::x86_64::{__cpuid, _rdtsc};
    use x86_64::instructions::port::Port;

    /// The clock's calibration.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Calibration {
        /// TSC ticks per second.
        pub tsc_hz: u64,
        /// Where that came from.
        pub source: Source,
        /// TSC value at the clock's start.
        pub tsc_start: u64,
    }

    static CLOCK: spin::Once<Calibration> = spin::Once::new();

    /// The raw time-stamp counter (RDTSC). Under Bochs it counts emulated
    /// instructions, so differences of it measure work.
    pub fn ticks() -> u64 {
        // SAFETY: rdtsc only reads the time-stamp counter.
        unsafe { _rdtsc() }
    }

    fn cpuid_timing() -> CpuidTiming {
        let max = __cpuid(0).eax;
        let mut t = CpuidTiming::default();
        if max >= 0x15 {
            let r = __cpuid(0x15);
            t.leaf15 = Some((r.eax, r.ebx, r.ecx));
        }
        if max >= 0x16 {
            t.leaf16 = Some(__cpuid(0x16).eax);
        }
        let hypervisor = __cpuid(1).ecx & (1 << 31) != 0;
        if hypervisor && __cpuid(0x4000_0000).eax >= 0x4000_0010 {
            t.hv_tsc_khz = Some(__cpuid(0x4000_0010).eax);
        }
        t
    }

    /// Counts TSC ticks over ~25 ms of PIT channel 2 (gate on, speaker off,
    /// mode 0). Gives up if the PIT output never rises.
    fn pit_calibrate() -> Option<u64> {
        const COUNT: u16 = 29_830; // 25 ms
        let mut gate: Port<u8> = Port::new(0x61);
        let mut cmd: Port<u8> = Port::new(0x43);
        let mut ch2: Port<u8> = Port::new(0x42);
        // SAFETY: ports 0x61 (NMI status / speaker gate), 0x43 and 0x42 (PIT
        // mode and channel 2) only drive the speaker timer, which nothing
        // else in the unikernel uses; the gate is restored afterwards.
        unsafe {
            let saved = gate.read();
            gate.write((saved & !0x02) | 0x01);
            cmd.write(0b1011_0000); // channel 2, lo/hi, mode 0, binary
            ch2.write(COUNT as u8);
            ch2.write((COUNT >> 8) as u8);
            let start = ticks();
            let mut end = None;
            for _ in 0..50_000_000u32 {
                if gate.read() & 0x20 != 0 {
                    end = Some(ticks());
                    break;
                }
            }
            gate.write(saved);
            end.and_then(|e| hz_from_pit(e.wrapping_sub(start), u64::from(COUNT)))
        }
    }

    /// Calibrates the clock (once) and returns how.
    pub fn init() -> Calibration {
        *CLOCK.call_once(|| {
            let (tsc_hz, source) = tsc_hz_from_cpuid(&cpuid_timing())
                .or_else(|| pit_calibrate().map(|hz| (hz, Source::Pit)))
                .unwrap_or((1_000_000_000, Source::Assumed));
            Calibration {
                tsc_hz,
                source,
                tsc_start: ticks(),
            }
        })
    }

    /// The calibration, if the clock has started.
    pub fn calibration() -> Option<Calibration> {
        CLOCK.get().copied()
    }

    /// The current time (calibrating first if needed).
    pub fn now() -> Instant {
        let c = init();
        Instant(ticks_to_nanos(ticks().wrapping_sub(c.tsc_start), c.tsc_hz))
    }

    /// Busy-waits for `d`.
    pub fn spin(d: Duration) {
        let until = now().saturating_add(d);
        while now() < until {
            core::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpuid_sources_in_order() {
        let mut t = CpuidTiming {
            leaf15: Some((2, 176, 24_000_000)),
            leaf16: Some(2100),
            hv_tsc_khz: Some(2_500_000),
        };
        assert_eq!(
            tsc_hz_from_cpuid(&t),
            Some((2_112_000_000, Source::Cpuid15))
        );
        // Leaf 0x15 without a crystal frequency is unusable.
        t.leaf15 = Some((2, 176, 0));
        assert_eq!(
            tsc_hz_from_cpuid(&t),
            Some((2_500_000_000, Source::Hypervisor))
        );
        t.hv_tsc_khz = Some(0);
        assert_eq!(
            tsc_hz_from_cpuid(&t),
            Some((2_100_000_000, Source::Cpuid16))
        );
        t.leaf16 = Some(0);
        assert_eq!(tsc_hz_from_cpuid(&t), None);
        // Absurd values are not believed.
        t.leaf15 = Some((1, u32::MAX, u32::MAX));
        assert_eq!(tsc_hz_from_cpuid(&t), None);
        assert_eq!(tsc_hz_from_cpuid(&CpuidTiming::default()), None);
    }

    #[test]
    fn pit_and_conversions() {
        // 3 GHz over 25 ms.
        assert_eq!(hz_from_pit(75_000_000, 29_830), Some(2_999_954_743));
        assert_eq!(hz_from_pit(1, 0), None);
        assert_eq!(hz_from_pit(0, 29_830), None);
        assert_eq!(hz_from_pit(u64::MAX, 1), None);
        assert_eq!(ticks_to_nanos(3_000_000_000, 3_000_000_000), 1_000_000_000);
        assert_eq!(ticks_to_nanos(u64::MAX, 1), u64::MAX);
        assert_eq!(ticks_to_nanos(5, 0), 0);
        assert_eq!(nanos_to_ticks(1_000_000, 1_000_000_000), 1_000_000);
        assert_eq!(nanos_to_ticks(u64::MAX, u64::MAX), u64::MAX);
    }

    #[test]
    fn instants() {
        let a = Instant::from_nanos(1_500_000_000);
        assert_eq!((a.as_millis(), a.as_micros()), (1_500, 1_500_000));
        let b = a.saturating_add(Duration::from_millis(20));
        assert_eq!(b.saturating_duration_since(a), Duration::from_millis(20));
        assert_eq!(a.saturating_duration_since(b), Duration::ZERO);
        assert_eq!(
            a.saturating_add(Duration::MAX),
            Instant::from_nanos(u64::MAX)
        );
    }
}
