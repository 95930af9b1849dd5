//! The MC146818 real-time clock and its 128 bytes of CMOS RAM.
//!
//! Ports: 0x70 index (bits 6:0; bit 7 is the NMI-disable bit, stored and
//! otherwise ignored; reads return 0xFF), 0x71 data.
//!
//! | index | register |
//! |-------|----------|
//! | 0x00, 0x02, 0x04 | seconds, minutes, hours (12-hour mode: bit 7 = PM) |
//! | 0x01, 0x03, 0x05 | alarm seconds, minutes, hours (0xC0–0xFF: don't care) |
//! | 0x06–0x09 | day of week (1 = Sunday), day of month, month, year (00–99) |
//! | 0x0A | A: UIP (bit 7, read-only), divider (6:4, 010 runs), rate select (3:0); reset 0x26 |
//! | 0x0B | B: SET, PIE, AIE, UIE, SQWE, DM (1 = binary), 24/12, DSE; reset 0x02 (BCD, 24-hour) |
//! | 0x0C | C: IRQF, PF, AF, UF; read-only, cleared by the read |
//! | 0x0D | D: VRT (bit 7), always 0x80 |
//! | century ([`RtcConfig::century_index`], default 0x32, the FADT's CENTURY) | century, in the clock's format |
//! | 0x0E–0x7F otherwise | CMOS RAM |
//!
//! Time is UTC from a caller-given Unix time at construction, advanced with
//! `now` (nanoseconds). Registers show whole seconds; the update cycle at
//! each second boundary raises UIP 2.228 ms (244 µs + 1984 µs) before the
//! new second appears, so a guest that reads between two UIP-clear checks
//! (Linux's `mc146818_avoid_UIP`) reads a consistent time. Updates stop
//! while SET is 1 or the divider is not 010; then the time registers hold
//! what the guest writes, in the format in force, and when updates resume
//! they are decoded (out-of-range fields clamped) into the new time, with
//! the first update 500 ms later. SET = 1 also clears UIE, as on the
//! DS12887. Years run from 1900 to 9999 (the century register, if any,
//! otherwise 19xx for years 70–99 and 20xx below).
//!
//! Interrupts: UF is set at each update, AF at an update whose time matches
//! the alarm, PF at the rate the rate-select bits choose (256 Hz, 128 Hz,
//! or 2^(16−RS) Hz for RS ≥ 3) while the divider runs. IRQF and the IRQ8
//! line ([`Rtc::irq`]) are high while any flag is set with its enable bit;
//! reading C drops them. [`Rtc::next_deadline`] asks for a wake-up only for
//! enabled sources. Daylight-saving (DSE) and the square-wave output are
//! stored, not acted on.

use crate::time::{ticks_between, time_of_tick, NANOS_PER_SEC};

/// The index port.
pub const PORT_INDEX: u16 = 0x70;
/// The data port.
pub const PORT_DATA: u16 = 0x71;

/// Index of register A.
pub const REG_A: u8 = 0x0A;
/// Index of register B.
pub const REG_B: u8 = 0x0B;
/// Index of register C.
pub const REG_C: u8 = 0x0C;
/// Index of register D.
pub const REG_D: u8 = 0x0D;

/// A: update in progress.
pub const A_UIP: u8 = 0x80;
/// B: SET (updates inhibited).
pub const B_SET: u8 = 0x80;
/// B: periodic interrupt enable.
pub const B_PIE: u8 = 0x40;
/// B: alarm interrupt enable.
pub const B_AIE: u8 = 0x20;
/// B: update-ended interrupt enable.
pub const B_UIE: u8 = 0x10;
/// B: binary (not BCD) data mode.
pub const B_BINARY: u8 = 0x04;
/// B: 24-hour mode.
pub const B_24H: u8 = 0x02;
/// C: interrupt request.
pub const C_IRQF: u8 = 0x80;
/// C: periodic flag.
pub const C_PF: u8 = 0x40;
/// C: alarm flag.
pub const C_AF: u8 = 0x20;
/// C: update-ended flag.
pub const C_UF: u8 = 0x10;
/// D: valid RAM and time.
pub const D_VRT: u8 = 0x80;

/// UIP rises this long before the registers change (244 µs + 1984 µs).
pub const UIP_LEAD_NS: u64 = 2_228_000;
/// Updates resume this long after SET clears or the divider restarts.
const RESUME_NS: u64 = 500_000_000;
/// 1900-01-01T00:00:00Z.
const MIN_SECS: i64 = -2_208_988_800;
/// 9999-12-31T23:59:59Z.
const MAX_SECS: i64 = 253_402_300_799;
const SECS_PER_DAY: i64 = 86_400;

/// Where the RTC starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtcConfig {
    /// Wall-clock time at construction, seconds since 1970-01-01 UTC.
    pub unix_secs: i64,
    /// Nanoseconds past `unix_secs` (below 10⁹), so updates land on the
    /// wall clock's second boundaries.
    pub nanos: u32,
    /// The CMOS index holding the century (the FADT's CENTURY field), or
    /// `None` for no century register.
    pub century_index: Option<u8>,
}

impl Default for RtcConfig {
    fn default() -> Self {
        RtcConfig {
            unix_secs: 0,
            nanos: 0,
            century_index: Some(0x32),
        }
    }
}

/// Calendar fields of a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fields {
    year: i64,
    month: i64,
    day: i64,
    weekday: i64,
    hour: i64,
    minute: i64,
    second: i64,
}

/// The RTC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rtc {
    century_index: Option<u8>,
    index: u8,
    nmi_disabled: bool,
    ram: [u8; 128],
    reg_a: u8,
    reg_b: u8,
    /// PF, AF, UF.
    flags: u8,
    /// The time shown while updates run.
    secs: i64,
    /// When the shown time next advances (ns).
    next_update: u64,
    /// The time registers while updates are stopped: seconds, minutes,
    /// hours, day of week, day of month, month, year, century.
    held: Option<[u8; 8]>,
    periodic_start: u64,
    periodic_seen: u64,
}

impl Rtc {
    /// An RTC showing `cfg`'s time at `now`, in BCD 24-hour mode, divider
    /// running, no interrupts enabled, CMOS RAM zero.
    pub fn new(cfg: RtcConfig, now: u64) -> Self {
        let nanos = u64::from(cfg.nanos).min(NANOS_PER_SEC.saturating_sub(1));
        Rtc {
            century_index: cfg.century_index.filter(|&i| (0x0E..0x80).contains(&i)),
            index: 0,
            nmi_disabled: false,
            ram: [0; 128],
            reg_a: 0x26,
            reg_b: B_24H,
            flags: 0,
            secs: cfg.unix_secs.clamp(MIN_SECS, MAX_SECS),
            next_update: now.saturating_add(NANOS_PER_SEC.saturating_sub(nanos)),
            held: None,
            periodic_start: now,
            periodic_seen: 0,
        }
    }

    /// The time the registers show at `now` (after [`advance`](Self::advance)),
    /// seconds since 1970 UTC; while updates are stopped, the held registers
    /// decoded.
    pub fn unix_time(&self) -> i64 {
        match self.held {
            Some(bytes) => self.decode(bytes),
            None => self.secs,
        }
    }

    /// Whether the guest last set the NMI-disable bit (bit 7 of port 0x70).
    pub fn nmi_disabled(&self) -> bool {
        self.nmi_disabled
    }

    /// A CMOS RAM byte (index 0x0E–0x7F; clock registers read as 0 here).
    pub fn cmos(&self, index: u8) -> u8 {
        if index < 0x0E {
            return 0;
        }
        self.ram.get(usize::from(index)).copied().unwrap_or(0)
    }

    /// Presets a CMOS RAM byte (index 0x0E–0x7F), e.g. before boot.
    pub fn set_cmos(&mut self, index: u8, value: u8) {
        if index >= 0x0E {
            if let Some(b) = self.ram.get_mut(usize::from(index)) {
                *b = value;
            }
        }
    }

    /// Guest read of port 0x70 + `offset` (0 or 1).
    pub fn read(&mut self, now: u64, offset: u16) -> u8 {
        self.advance(now);
        if offset != 1 {
            return 0xFF;
        }
        let index = self.index;
        match index {
            REG_A => {
                let uip = self.running() && now.saturating_add(UIP_LEAD_NS) >= self.next_update;
                self.reg_a | if uip { A_UIP } else { 0 }
            }
            REG_B => self.reg_b,
            REG_C => {
                let c = self.flags | if self.irq() { C_IRQF } else { 0 };
                self.flags = 0;
                c
            }
            REG_D => D_VRT,
            _ => match self.time_slot(index) {
                Some(slot) => self.time_bytes().get(slot).copied().unwrap_or(0),
                None => self.ram.get(usize::from(index)).copied().unwrap_or(0),
            },
        }
    }

    /// Guest write of port 0x70 + `offset` (0 or 1).
    pub fn write(&mut self, now: u64, offset: u16, value: u8) {
        self.advance(now);
        if offset != 1 {
            self.index = value & 0x7F;
            self.nmi_disabled = value & 0x80 != 0;
            return;
        }
        let index = self.index;
        match index {
            REG_A => {
                let was = self.running();
                let old = self.reg_a;
                self.reg_a = value & 0x7F;
                if old != self.reg_a {
                    self.periodic_start = now;
                    self.periodic_seen = 0;
                }
                self.on_run_change(now, was);
            }
            REG_B => {
                let was = self.running();
                let mut b = value;
                if b & B_SET != 0 {
                    b &= !B_UIE;
                }
                self.reg_b = b;
                self.on_run_change(now, was);
            }
            // C and D are read-only.
            REG_C | REG_D => {}
            _ => match self.time_slot(index) {
                Some(slot) => {
                    let mut bytes = self.time_bytes();
                    if let Some(b) = bytes.get_mut(slot) {
                        *b = value;
                    }
                    match self.held {
                        Some(_) => self.held = Some(bytes),
                        None => self.secs = self.decode(bytes),
                    }
                }
                None => {
                    if let Some(b) = self.ram.get_mut(usize::from(index)) {
                        *b = value;
                    }
                }
            },
        }
    }

    /// Runs the clock up to `now`: updates the time and sets UF, AF, PF.
    pub fn advance(&mut self, now: u64) {
        if self.running() && now >= self.next_update {
            let n = now
                .wrapping_sub(self.next_update)
                .checked_div(NANOS_PER_SEC)
                .unwrap_or(0)
                .saturating_add(1);
            let n_i = i64::try_from(n).unwrap_or(i64::MAX);
            let last = self.secs.saturating_add(n_i).min(MAX_SECS);
            // Each second in (secs, last] was shown after an update; a day
            // of them covers every alarm time.
            let first = self
                .secs
                .saturating_add(1)
                .max(last.saturating_sub(SECS_PER_DAY.saturating_sub(1)));
            if self.alarm_hit(first, last) {
                self.flags |= C_AF;
            }
            self.flags |= C_UF;
            self.secs = last;
            self.next_update = self
                .next_update
                .saturating_add(n.saturating_mul(NANOS_PER_SEC));
        }
        if let Some(hz) = self.periodic_hz() {
            let ticks = ticks_between(self.periodic_start, now, hz);
            if ticks > self.periodic_seen {
                self.periodic_seen = ticks;
                self.flags |= C_PF;
            }
        }
    }

    /// Whether IRQ8 is asserted: a flag in C is set with its enable bit.
    pub fn irq(&self) -> bool {
        self.flags & self.reg_b & (C_PF | C_AF | C_UF) != 0
    }

    /// The next time an enabled interrupt source needs [`advance`](Self::advance).
    pub fn next_deadline(&self) -> Option<u64> {
        let update =
            (self.running() && self.reg_b & (B_UIE | B_AIE) != 0).then_some(self.next_update);
        let periodic = if self.reg_b & B_PIE != 0 {
            self.periodic_hz().map(|hz| {
                time_of_tick(
                    self.periodic_start,
                    self.periodic_seen.saturating_add(1),
                    hz,
                )
            })
        } else {
            None
        };
        match (update, periodic) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn running(&self) -> bool {
        self.reg_b & B_SET == 0 && self.reg_a & 0x70 == 0x20
    }

    fn periodic_hz(&self) -> Option<u64> {
        if self.reg_a & 0x70 != 0x20 {
            return None;
        }
        match self.reg_a & 0x0F {
            0 => None,
            1 => Some(256),
            2 => Some(128),
            rs => Some(1u64 << (16u8.saturating_sub(rs))),
        }
    }

    fn on_run_change(&mut self, now: u64, was: bool) {
        let running = self.running();
        if was && !running {
            self.held = Some(self.time_bytes());
        } else if !was && running {
            if let Some(bytes) = self.held.take() {
                self.secs = self.decode(bytes);
            }
            self.next_update = now.saturating_add(RESUME_NS);
        }
    }

    /// The slot in the time-register array for CMOS `index`, if it is one.
    fn time_slot(&self, index: u8) -> Option<usize> {
        Some(match index {
            0x00 => 0,
            0x02 => 1,
            0x04 => 2,
            0x06 => 3,
            0x07 => 4,
            0x08 => 5,
            0x09 => 6,
            i if Some(i) == self.century_index => 7,
            _ => return None,
        })
    }

    /// The time registers now (held, or encoded from the running time).
    fn time_bytes(&self) -> [u8; 8] {
        if let Some(bytes) = self.held {
            return bytes;
        }
        let f = fields(self.secs);
        let year = f.year.rem_euclid(100);
        let century = f.year.checked_div(100).unwrap_or(0);
        [
            self.enc(f.second),
            self.enc(f.minute),
            self.enc_hour(f.hour),
            self.enc(f.weekday),
            self.enc(f.day),
            self.enc(f.month),
            self.enc(year),
            self.enc(century),
        ]
    }

    fn binary(&self) -> bool {
        self.reg_b & B_BINARY != 0
    }

    fn enc(&self, v: i64) -> u8 {
        let v = u8::try_from(v.clamp(0, 99)).unwrap_or(0);
        if self.binary() {
            v
        } else {
            ((v / 10) << 4) | (v % 10)
        }
    }

    fn enc_hour(&self, h: i64) -> u8 {
        if self.reg_b & B_24H != 0 {
            return self.enc(h);
        }
        let h12 = match h.rem_euclid(12) {
            0 => 12,
            x => x,
        };
        self.enc(h12) | if h >= 12 { 0x80 } else { 0 }
    }

    fn dec(&self, b: u8) -> i64 {
        if self.binary() {
            i64::from(b)
        } else {
            i64::from(b >> 4)
                .wrapping_mul(10)
                .wrapping_add(i64::from(b & 0xF))
        }
    }

    /// Decodes time registers into a time, clamping fields into range.
    fn decode(&self, b: [u8; 8]) -> i64 {
        let [sec, min, hour, _wday, mday, month, year, century] = b;
        let second = self.dec(sec).clamp(0, 59);
        let minute = self.dec(min).clamp(0, 59);
        let hour = if self.reg_b & B_24H != 0 {
            self.dec(hour).clamp(0, 23)
        } else {
            let h = self.dec(hour & 0x7F).clamp(1, 12).rem_euclid(12);
            h.wrapping_add(if hour & 0x80 != 0 { 12 } else { 0 })
        };
        let month = self.dec(month).clamp(1, 12);
        let year = self.dec(year).clamp(0, 99);
        let century = if self.century_index.is_some() {
            self.dec(century).clamp(19, 99)
        } else if year < 70 {
            20
        } else {
            19
        };
        let full = century.wrapping_mul(100).wrapping_add(year);
        let day = self.dec(mday).clamp(1, days_in_month(full, month));
        let days = days_from_civil(full, month, day);
        days.wrapping_mul(SECS_PER_DAY)
            .wrapping_add(hour.wrapping_mul(3600))
            .wrapping_add(minute.wrapping_mul(60))
            .wrapping_add(second)
            .clamp(MIN_SECS, MAX_SECS)
    }

    /// Whether the alarm matches any second in `first..=last`.
    fn alarm_hit(&self, first: i64, last: i64) -> bool {
        let alarm = [self.ram[1], self.ram[3], self.ram[5]];
        let dont_care = |a: u8| a & 0xC0 == 0xC0;
        if alarm.iter().all(|&a| dont_care(a)) {
            return first <= last;
        }
        let mut t = first;
        while t <= last {
            let tod = t.rem_euclid(SECS_PER_DAY);
            let now = [
                self.enc(tod.rem_euclid(60)),
                self.enc(tod.checked_div(60).unwrap_or(0).rem_euclid(60)),
                self.enc_hour(tod.checked_div(3600).unwrap_or(0)),
            ];
            if alarm.iter().zip(now).all(|(&a, n)| dont_care(a) || a == n) {
                return true;
            }
            t = t.saturating_add(1);
        }
        false
    }
}

fn is_leap(y: i64) -> bool {
    y.rem_euclid(4) == 0 && (y.rem_euclid(100) != 0 || y.rem_euclid(400) == 0)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1–12).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y.wrapping_sub(1) } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 {
        m.wrapping_sub(3)
    } else {
        m.wrapping_add(9)
    };
    let doy = (153i64.wrapping_mul(mp).wrapping_add(2) / 5)
        .wrapping_add(d)
        .wrapping_sub(1);
    let doe = yoe
        .wrapping_mul(365)
        .wrapping_add(yoe / 4)
        .wrapping_sub(yoe / 100)
        .wrapping_add(doy);
    era.wrapping_mul(146_097)
        .wrapping_add(doe)
        .wrapping_sub(719_468)
}

/// Calendar fields of `secs` since 1970 (clamped to 1900–9999).
fn fields(secs: i64) -> Fields {
    let secs = secs.clamp(MIN_SECS, MAX_SECS);
    let days = secs.div_euclid(SECS_PER_DAY);
    let tod = secs.rem_euclid(SECS_PER_DAY);
    let z = days.wrapping_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = doe
        .wrapping_sub(doe / 1460)
        .wrapping_add(doe / 36_524)
        .wrapping_sub(doe / 146_096)
        / 365;
    let doy = doe.wrapping_sub(
        yoe.wrapping_mul(365)
            .wrapping_add(yoe / 4)
            .wrapping_sub(yoe / 100),
    );
    let mp = (doy.wrapping_mul(5).wrapping_add(2)) / 153;
    let day = doy
        .wrapping_sub((mp.wrapping_mul(153).wrapping_add(2)) / 5)
        .wrapping_add(1);
    let month = if mp < 10 {
        mp.wrapping_add(3)
    } else {
        mp.wrapping_sub(9)
    };
    let year = yoe
        .wrapping_add(era.wrapping_mul(400))
        .wrapping_add(i64::from(month <= 2));
    Fields {
        year,
        month,
        day,
        // 1970-01-01 was a Thursday (day 5 with Sunday = 1).
        weekday: days.wrapping_add(4).rem_euclid(7).wrapping_add(1),
        hour: tod / 3600,
        minute: (tod / 60) % 60,
        second: tod % 60,
    }
}

#[cfg(test)]
pub(crate) mod calendar {
    //! Test access to the calendar helpers.
    pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
        super::days_from_civil(y, m, d)
    }
    pub(crate) fn ymd(secs: i64) -> (i64, i64, i64, i64) {
        let f = super::fields(secs);
        (f.year, f.month, f.day, f.weekday)
    }
}
