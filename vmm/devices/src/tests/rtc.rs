//! RTC/CMOS: formats, Linux's UIP-avoiding read and its set-time sequence,
//! update/alarm/periodic flags, CMOS RAM.

use crate::rtc::calendar::{days_from_civil, ymd};
use crate::rtc::*;

/// 2023-11-14T22:13:20Z, a Tuesday.
const T: i64 = 1_700_000_000;

fn rtc_at(unix_secs: i64) -> Rtc {
    Rtc::new(
        RtcConfig {
            unix_secs,
            ..RtcConfig::default()
        },
        0,
    )
}

fn rd(r: &mut Rtc, now: u64, index: u8) -> u8 {
    r.write(now, 0, index);
    r.read(now, 1)
}

fn wr(r: &mut Rtc, now: u64, index: u8, value: u8) {
    r.write(now, 0, index);
    r.write(now, 1, value);
}

/// Seconds, minutes, hours, weekday, day, month, year, century.
fn regs(r: &mut Rtc, now: u64) -> [u8; 8] {
    [0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32].map(|i| rd(r, now, i))
}

#[test]
fn reset_registers() {
    let mut r = rtc_at(T);
    assert_eq!(rd(&mut r, 0, REG_A), 0x26);
    assert_eq!(rd(&mut r, 0, REG_B), 0x02);
    assert_eq!(rd(&mut r, 0, REG_C), 0x00);
    assert_eq!(rd(&mut r, 0, REG_D), 0x80);
    assert_eq!(r.read(0, 0), 0xFF, "the index port reads 0xFF");
    assert!(!r.irq());
    assert_eq!(r.next_deadline(), None);
}

#[test]
fn bcd_binary_and_12_hour() {
    let mut r = rtc_at(T);
    assert_eq!(
        regs(&mut r, 0),
        [0x20, 0x13, 0x22, 0x03, 0x14, 0x11, 0x23, 0x20]
    );
    wr(&mut r, 0, REG_B, B_24H | B_BINARY);
    assert_eq!(regs(&mut r, 0), [20, 13, 22, 3, 14, 11, 23, 20]);
    wr(&mut r, 0, REG_B, 0); // BCD, 12-hour
    assert_eq!(rd(&mut r, 0, 0x04), 0x90, "10 PM");
    let midnight = rtc_at(T - 22 * 3600).read_hour_12();
    assert_eq!(midnight, 0x12);
    let noon = rtc_at(T - 10 * 3600).read_hour_12();
    assert_eq!(noon, 0x92);
    let one_am = rtc_at(T - 21 * 3600).read_hour_12();
    assert_eq!(one_am, 0x01);
}

impl Rtc {
    fn read_hour_12(mut self) -> u8 {
        wr(&mut self, 0, REG_B, 0);
        rd(&mut self, 0, 0x04)
    }
}

#[test]
fn seconds_advance_with_uip_before_each_update() {
    let mut r = rtc_at(T);
    assert_eq!(rd(&mut r, 999_000_000, 0), 0x20);
    assert_eq!(
        rd(&mut r, 1_000_000_000 - UIP_LEAD_NS - 1, REG_A) & A_UIP,
        0
    );
    assert_eq!(
        rd(&mut r, 1_000_000_000 - UIP_LEAD_NS, REG_A) & A_UIP,
        A_UIP
    );
    assert_eq!(rd(&mut r, 999_999_999, 0), 0x20, "old second during UIP");
    assert_eq!(rd(&mut r, 1_000_000_000, 0), 0x21);
    assert_eq!(rd(&mut r, 1_000_000_000, REG_A) & A_UIP, 0);
    assert_eq!(rd(&mut r, 61_000_000_000, 0), 0x21);
    assert_eq!(rd(&mut r, 61_000_000_000, 0x02), 0x14);
    // Sub-second start: updates land on the wall clock's boundaries.
    let mut r = Rtc::new(
        RtcConfig {
            unix_secs: T,
            nanos: 750_000_000,
            ..RtcConfig::default()
        },
        0,
    );
    assert_eq!(rd(&mut r, 249_999_999, 0), 0x20);
    assert_eq!(rd(&mut r, 250_000_000, 0), 0x21);
}

/// Linux's `mc146818_avoid_UIP` with `mc146818_get_time_callback`, each
/// port access taking `step` ns and `udelay(100)` between tries.
fn linux_get_time(r: &mut Rtc, mut now: u64, step: u64) -> ([u8; 7], u64) {
    let read = |r: &mut Rtc, now: &mut u64, i: u8| {
        *now += step;
        rd(r, *now, i)
    };
    for _ in 0..10_000 {
        let seconds = read(r, &mut now, 0x00);
        if read(r, &mut now, REG_A) & A_UIP != 0 {
            now += 100_000;
            continue;
        }
        if seconds != read(r, &mut now, 0x00) {
            continue;
        }
        let mut f = [seconds, 0, 0, 0, 0, 0, 0];
        for (slot, i) in f[1..].iter_mut().zip([0x02, 0x04, 0x07, 0x08, 0x09, 0x32]) {
            *slot = read(r, &mut now, i);
        }
        let _ctrl = read(r, &mut now, REG_B);
        if read(r, &mut now, REG_A) & A_UIP != 0 {
            now += 100_000;
            continue;
        }
        if seconds != read(r, &mut now, 0x00) {
            continue;
        }
        return (f, now);
    }
    panic!("RTC never left UIP");
}

#[test]
fn linux_uip_avoiding_read_is_consistent() {
    // Far from an update: one try.
    let mut r = rtc_at(T);
    let (f, _) = linux_get_time(&mut r, 500_000_000, 10_000);
    assert_eq!(f, [0x20, 0x13, 0x22, 0x14, 0x11, 0x23, 0x20]);
    // Starting just before UIP rises: the second check sees UIP, the retry
    // reads the new second.
    let mut r = rtc_at(T);
    let (f, done) = linux_get_time(&mut r, 1_000_000_000 - 3_000_000, 100_000);
    assert_eq!(f, [0x21, 0x13, 0x22, 0x14, 0x11, 0x23, 0x20]);
    assert!(done >= 1_000_000_000);
    // Across a minute, hour, day, month, year and century at once.
    let mut r = rtc_at(946_684_799); // 1999-12-31T23:59:59Z
    let (f, _) = linux_get_time(&mut r, 1_000_000_000 - 2_500_000, 50_000);
    assert_eq!(f, [0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x20]);
    assert_eq!(rd(&mut r, 1_100_000_000, 0x06), 7, "a Saturday");
}

#[test]
fn linux_set_time_sequence() {
    let mut r = rtc_at(T);
    let now = 300_000_000;
    // mc146818_set_time.
    let save_control = rd(&mut r, now, REG_B);
    wr(&mut r, now, REG_B, save_control | B_SET);
    let save_freq = rd(&mut r, now, REG_A);
    wr(&mut r, now, REG_A, save_freq | 0x70);
    for (i, v) in [
        (0x09, 0x24),
        (0x08, 0x02),
        (0x07, 0x29),
        (0x04, 0x12),
        (0x02, 0x34),
        (0x00, 0x56),
    ] {
        wr(&mut r, now, i, v);
    }
    wr(&mut r, now, 0x32, 0x20);
    // Held while SET or the divider reset is on.
    assert_eq!(rd(&mut r, now + 2_000_000_000, 0x00), 0x56);
    wr(&mut r, now, REG_B, save_control);
    assert_eq!(rd(&mut r, now + 3_000_000_000, 0x00), 0x56);
    let resume = now + 3_000_000_000;
    wr(&mut r, resume, REG_A, save_freq);
    // 2024-02-29T12:34:56Z.
    let expect = days_from_civil(2024, 2, 29) * 86_400 + 12 * 3600 + 34 * 60 + 56;
    assert_eq!(r.unix_time(), expect);
    assert_eq!(rd(&mut r, resume + 499_999_999, 0x00), 0x56);
    assert_eq!(rd(&mut r, resume + 500_000_000, 0x00), 0x57);
    assert_eq!(
        regs(&mut r, resume + 500_000_000),
        [0x57, 0x34, 0x12, 0x05, 0x29, 0x02, 0x24, 0x20]
    );
}

#[test]
fn out_of_range_fields_are_clamped() {
    let mut r = rtc_at(T);
    wr(&mut r, 0, REG_B, B_SET | B_24H);
    wr(&mut r, 0, 0x08, 0x13);
    wr(&mut r, 0, 0x07, 0x45);
    wr(&mut r, 0, 0x04, 0x99);
    wr(&mut r, 0, 0x00, 0xFF);
    wr(&mut r, 0, 0x32, 0x00);
    assert_eq!(rd(&mut r, 0, 0x08), 0x13, "held registers read back raw");
    wr(&mut r, 0, REG_B, B_24H);
    // Century clamped to 19, month to 12, day to 31, hour 23, second 59.
    assert_eq!(
        regs(&mut r, 0),
        [0x59, 0x13, 0x23, 0x02, 0x31, 0x12, 0x23, 0x19]
    );
    // Binary values that are not BCD digits, and 12-hour garbage.
    wr(&mut r, 0, REG_B, B_SET);
    for i in [0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32] {
        wr(&mut r, 0, i, 0xFF);
    }
    wr(&mut r, 0, REG_B, 0);
    let _ = regs(&mut r, 0);
}

#[test]
fn writes_while_running_take_effect() {
    let mut r = rtc_at(T);
    wr(&mut r, 100, 0x02, 0x45);
    assert_eq!(rd(&mut r, 100, 0x02), 0x45);
    assert_eq!(r.unix_time(), T + 32 * 60);
}

#[test]
fn update_interrupt() {
    let mut r = rtc_at(T);
    wr(&mut r, 0, REG_A, 0x20); // no periodic flag
    wr(&mut r, 0, REG_B, B_24H | B_UIE);
    assert_eq!(r.next_deadline(), Some(1_000_000_000));
    r.advance(999_999_999);
    assert!(!r.irq());
    r.advance(1_000_000_000);
    assert!(r.irq());
    assert_eq!(rd(&mut r, 1_000_000_000, REG_C), C_IRQF | C_UF);
    assert!(!r.irq());
    assert_eq!(rd(&mut r, 1_000_000_000, REG_C), 0);
    assert_eq!(r.next_deadline(), Some(2_000_000_000));
    // SET clears UIE and stops updates.
    wr(&mut r, 0, REG_B, B_24H | B_UIE | B_SET);
    assert_eq!(rd(&mut r, 0, REG_B), B_24H | B_SET);
    assert_eq!(r.next_deadline(), None);
}

#[test]
fn alarm_interrupt() {
    let mut r = rtc_at(T);
    wr(&mut r, 0, REG_A, 0x20);
    wr(&mut r, 0, 0x01, 0x22);
    wr(&mut r, 0, 0x03, 0x13);
    wr(&mut r, 0, 0x05, 0x22);
    wr(&mut r, 0, REG_B, B_24H | B_AIE);
    r.advance(1_000_000_000);
    assert!(!r.irq());
    assert_eq!(rd(&mut r, 1_000_000_000, REG_C), C_UF);
    r.advance(2_000_000_000);
    assert!(r.irq());
    assert_eq!(rd(&mut r, 2_000_000_000, REG_C), C_IRQF | C_AF | C_UF);
    // Don't-care bytes: every second; a late advance still sees a match.
    let mut r = rtc_at(T);
    wr(&mut r, 0, REG_A, 0x20);
    wr(&mut r, 0, 0x01, 0xC0);
    wr(&mut r, 0, 0x03, 0xFF);
    wr(&mut r, 0, 0x05, 0xC5);
    r.advance(1_000_000_000);
    assert_eq!(rd(&mut r, 1_000_000_000, REG_C), C_AF | C_UF);
    let mut r = rtc_at(T);
    wr(&mut r, 0, 0x01, 0x00);
    wr(&mut r, 0, 0x03, 0xFF);
    wr(&mut r, 0, 0x05, 0xFF);
    r.advance(30_000_000_000);
    assert_eq!(rd(&mut r, 30_000_000_000, REG_C) & C_AF, 0);
    r.advance(45_000_000_000); // passes 22:14:00
    assert_eq!(rd(&mut r, 45_000_000_000, REG_C) & C_AF, C_AF);
}

#[test]
fn periodic_interrupt() {
    let mut r = rtc_at(T);
    // Linux's probe writes A = 0x26 (1024 Hz); PIE on.
    wr(&mut r, 0, REG_A, 0x26);
    wr(&mut r, 0, REG_B, B_24H | B_PIE);
    assert_eq!(r.next_deadline(), Some(976_563));
    r.advance(976_562);
    assert!(!r.irq());
    r.advance(976_563);
    assert!(r.irq());
    assert_eq!(rd(&mut r, 976_563, REG_C), C_IRQF | C_PF);
    // Rate 3 is 8192 Hz; rates 1 and 2 are 256 and 128 Hz; 0 is off.
    for (rs, hz) in [(3u8, 8192u64), (1, 256), (2, 128), (15, 2)] {
        wr(&mut r, 10, REG_A, 0x20 | rs);
        assert_eq!(r.next_deadline(), Some(10 + 1_000_000_000u64.div_ceil(hz)));
    }
    wr(&mut r, 10, REG_A, 0x20);
    assert_eq!(r.next_deadline(), None);
    // A stopped divider stops it.
    wr(&mut r, 10, REG_A, 0x76);
    assert_eq!(r.next_deadline(), None);
}

#[test]
fn index_port_nmi_bit_and_cmos_ram() {
    let mut r = rtc_at(T);
    r.write(0, 0, 0x80 | REG_A);
    assert!(r.nmi_disabled());
    assert_eq!(r.read(0, 1), 0x26);
    r.write(0, 0, REG_A);
    assert!(!r.nmi_disabled());
    wr(&mut r, 0, 0x40, 0x5A);
    assert_eq!(rd(&mut r, 0, 0x40), 0x5A);
    assert_eq!(r.cmos(0x40), 0x5A);
    r.set_cmos(0x10, 3);
    assert_eq!(rd(&mut r, 0, 0x10), 3);
    r.set_cmos(0x05, 9);
    assert_eq!(r.cmos(0x05), 0, "clock registers are not RAM");
    // Registers C and D ignore writes.
    wr(&mut r, 0, REG_D, 0);
    assert_eq!(rd(&mut r, 0, REG_D), D_VRT);
    // Without a century register, 0x32 is RAM.
    let mut r = Rtc::new(
        RtcConfig {
            unix_secs: T,
            nanos: 0,
            century_index: None,
        },
        0,
    );
    assert_eq!(rd(&mut r, 0, 0x32), 0);
    wr(&mut r, 0, 0x32, 0x77);
    assert_eq!(rd(&mut r, 0, 0x32), 0x77);
    assert_eq!(rd(&mut r, 0, 0x09), 0x23);
}

#[test]
fn calendar_edges() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    assert_eq!(ymd(0), (1970, 1, 1, 5));
    assert_eq!(ymd(951_782_400), (2000, 2, 29, 3));
    assert_eq!(ymd(-2_208_988_800), (1900, 1, 1, 2));
    assert_eq!(ymd(253_402_300_799), (9999, 12, 31, 6));
    // Leap-day rollover through the registers.
    let secs = days_from_civil(2024, 2, 28) * 86_400 + 86_399;
    let mut r = rtc_at(secs);
    assert_eq!(rd(&mut r, 1_000_000_000, 0x07), 0x29);
    let secs = days_from_civil(2023, 2, 28) * 86_400 + 86_399;
    let mut r = rtc_at(secs);
    assert_eq!(rd(&mut r, 1_000_000_000, 0x08), 0x03);
}
