//! PIT: Linux's calibration and clockevent sequences, latch and read-back,
//! the six modes, gates.

use crate::pit::*;
use crate::time::{time_of_tick, MIN_PERIOD_NS};

/// Nanosecond at which `clocks` PIT clocks have elapsed since `t0`.
fn at(t0: u64, clocks: u64) -> u64 {
    time_of_tick(t0, clocks, PIT_HZ)
}

fn count(p: &mut Pit, now: u64, ch: u16) -> u16 {
    let lo = p.read(now, ch);
    let hi = p.read(now, ch);
    u16::from_le_bytes([lo, hi])
}

#[test]
fn linux_pit_calibrate_tsc_polls_out2() {
    let mut p = Pit::new();
    let t0 = 1_000_000;
    // Gate high, speaker off; ch2 mode 0, LSB/MSB, binary; 10 ms latch.
    let v = (p.read_port61(t0) & !0x02) | 0x01;
    p.write_port61(t0, v);
    p.write(t0, 3, 0xB0);
    let latch: u16 = 11_931;
    p.write(t0, 2, latch.to_le_bytes()[0]);
    p.write(t0, 2, latch.to_le_bytes()[1]);
    let done = at(t0, u64::from(latch));
    assert_eq!(done - t0, 9_999_313);
    for now in [t0, t0 + 1000, done - 1] {
        assert_eq!(p.read_port61(now) & 0x20, 0, "OUT2 low at {now}");
    }
    assert_eq!(p.read_port61(done) & 0x20, 0x20);
    assert_eq!(p.read_port61(done) & 0x03, 0x01);
    assert_eq!(p.read_port61(done + 5_000_000) & 0x20, 0x20, "stays high");
}

#[test]
fn linux_quick_pit_calibrate_reads_live_msb() {
    let mut p = Pit::new();
    p.write_port61(0, 0x01);
    p.write(0, 3, 0xB0);
    p.write(0, 2, 0xFF);
    p.write(0, 2, 0xFF);
    // Unlatched LSB/MSB reads follow the live count; the MSB drops by one
    // every 256 clocks.
    let mut last = 0xFFu8;
    for k in 1..=20u64 {
        let now = at(0, k * 256 + 10);
        let [_, msb] = count(&mut p, now, 2).to_le_bytes();
        assert_eq!(msb, 0xFF - k as u8, "after {k}×256 clocks");
        assert!(msb < last);
        last = msb;
    }
}

#[test]
fn counter_latch_command() {
    let mut p = Pit::new();
    p.write(0, 3, 0x34);
    p.write(0, 0, 0xE8);
    p.write(0, 0, 0x03); // 1000
    p.write(at(0, 100), 3, 0x00); // latch channel 0
                                  // A second latch before reading does not overwrite the first.
    p.write(at(0, 300), 3, 0x00);
    assert_eq!(count(&mut p, at(0, 500), 0), 900);
    assert_eq!(count(&mut p, at(0, 500), 0), 500, "live again");
}

#[test]
fn read_back_command() {
    let mut p = Pit::new();
    p.write(0, 3, 0x34);
    // Control word written, no count: null count set, OUT high (mode 2).
    p.write(0, 3, 0xE2); // read-back status of ch0
    assert_eq!(p.read(0, 0), 0b1100_0000 | 0x34);
    p.write(0, 0, 0x00);
    p.write(0, 0, 0x10); // 4096
                         // Count and status: status first, then the count.
    p.write(at(0, 96), 3, 0xC2);
    assert_eq!(p.read(at(0, 200), 0), 0x80 | 0x34);
    assert_eq!(count(&mut p, at(0, 300), 0), 4000);
    // Count only, for channels 0 and 2.
    p.write(0, 3, 0xB0);
    p.write_port61(0, 1);
    p.write(0, 2, 0x00);
    p.write(0, 2, 0x20); // 8192
    p.write(at(0, 192), 3, 0xDA);
    assert_eq!(count(&mut p, at(0, 999), 2), 8000);
    assert_eq!(count(&mut p, at(0, 999), 0), 4096 - 192);
    // Mode 0 status: OUT low until terminal count.
    p.write(at(0, 1000), 3, 0xE8);
    assert_eq!(p.read(at(0, 1000), 2), 0x30);
}

#[test]
fn lsb_only_and_msb_only_access() {
    let mut p = Pit::new();
    p.write(0, 3, 0x10); // ch0, LSB only, mode 0
    p.write(0, 0, 0x50);
    assert_eq!(p.counter(0, at(0, 0x10)), Some(0x40));
    assert_eq!(p.read(at(0, 0x10), 0), 0x40);
    assert_eq!(p.read(at(0, 0x11), 0), 0x3F);
    p.write(0, 3, 0x20); // MSB only
    p.write(0, 0, 0x12);
    assert_eq!(p.counter(0, 0), Some(0x1200));
    assert_eq!(p.read(at(0, 0x100), 0), 0x11);
}

#[test]
fn mode2_periodic_irq0_at_hz() {
    let mut p = Pit::new();
    // Linux's pit_set_periodic: 0x34, LATCH = 1193182 / 250 rounded.
    p.write(0, 3, 0x34);
    p.write(0, 0, (4773u16).to_le_bytes()[0]);
    p.write(0, 0, (4773u16).to_le_bytes()[1]);
    let mut edges = 0;
    let mut now = 0;
    while now <= 1_000_000_000 {
        if p.advance(now) {
            edges += 1;
        }
        let next = p.next_deadline().unwrap();
        assert!(next > now);
        now = next;
    }
    assert_eq!(edges, 249, "4773 clocks is 4.0002 ms: 249 edges in 1 s");
    // Output low for one clock before each reload.
    assert!(!p.output(0, at(0, 4772)));
    assert!(p.output(0, at(0, 4773)));
    assert!(p.output(0, at(0, 4771)));
}

#[test]
fn mode3_square_wave() {
    let mut p = Pit::new();
    p.write_port61(0, 1);
    p.write(0, 3, 0xB6); // ch2, LSB/MSB, mode 3
    p.write(0, 2, 100);
    p.write(0, 2, 0);
    assert!(p.output(2, at(0, 0)));
    assert!(p.output(2, at(0, 49)));
    assert!(!p.output(2, at(0, 50)));
    assert!(!p.output(2, at(0, 99)));
    assert!(p.output(2, at(0, 100)));
    // Counts by two.
    assert_eq!(p.counter(2, at(0, 10)), Some(80));
    assert_eq!(p.counter(2, at(0, 60)), Some(80));
}

#[test]
fn mode4_oneshot_clockevent() {
    let mut p = Pit::new();
    // Linux's pit_set_oneshot then pit_next_event(1000).
    p.write(0, 3, 0x38);
    assert_eq!(p.next_deadline(), None);
    p.write(0, 0, 0xE8);
    p.write(0, 0, 0x03);
    assert_eq!(p.next_deadline(), Some(at(0, 1001)));
    assert!(!p.advance(at(0, 1000)));
    assert!(!p.output(0, at(0, 1000)));
    assert!(p.advance(at(0, 1001)));
    assert!(p.output(0, at(0, 1001)));
    assert_eq!(p.next_deadline(), None);
    assert!(!p.advance(at(0, 100_000)));
}

#[test]
fn mode0_interrupts_once() {
    let mut p = Pit::new();
    p.write(0, 3, 0x30);
    p.write(0, 0, 0x00);
    p.write(0, 0, 0x00); // 65536
    assert_eq!(p.next_deadline(), Some(at(0, 65536)));
    assert!(p.advance(at(0, 65536)));
    assert_eq!(p.next_deadline(), None);
    assert!(!p.advance(at(0, 3 * 65536)));
    // The counter wraps and keeps counting.
    assert_eq!(p.counter(0, at(0, 65536 + 6)), Some(0xFFFA));
}

#[test]
fn linux_shutdown_sequence_never_interrupts() {
    let mut p = Pit::new();
    p.write(0, 3, 0x34);
    p.write(0, 0, 0x9D);
    p.write(0, 0, 0x12);
    assert!(p.next_deadline().is_some());
    // clockevent_i8253_disable: mode 0, count 0, mode 0 again.
    p.write(10, 3, 0x30);
    p.write(10, 0, 0);
    p.write(10, 0, 0);
    p.write(10, 3, 0x30);
    assert_eq!(p.next_deadline(), None);
    assert!(!p.advance(10_000_000_000));
    assert!(!p.output(0, 10_000_000_000));
}

#[test]
fn first_byte_of_count_stops_mode0() {
    let mut p = Pit::new();
    p.write(0, 3, 0x30);
    p.write(0, 0, 0x00);
    p.write(0, 0, 0x01); // 256
    p.write(at(0, 10), 0, 0x00);
    assert_eq!(p.next_deadline(), None);
    p.write(at(0, 20), 0, 0x02); // 512, from here
    assert_eq!(p.next_deadline(), Some(at(at(0, 20), 512)));
}

#[test]
fn bcd_counting() {
    let mut p = Pit::new();
    p.write(0, 3, 0x31); // ch0, LSB/MSB, mode 0, BCD
    p.write(0, 0, 0x00);
    p.write(0, 0, 0x10); // BCD 1000
    assert_eq!(p.counter(0, at(0, 1)), Some(0x0999));
    assert_eq!(p.counter(0, at(0, 1000)), Some(0x0000));
    assert_eq!(p.counter(0, at(0, 1001)), Some(0x9999));
    // Count 0 is 10000 in BCD.
    p.write(0, 3, 0x35); // mode 2 BCD
    p.write(0, 0, 0);
    p.write(0, 0, 0);
    assert_eq!(p.next_deadline(), Some(at(0, 10_000)));
    // Invalid BCD digits do not panic.
    p.write(0, 3, 0x35);
    p.write(0, 0, 0xFF);
    p.write(0, 0, 0xFF);
    let _ = p.counter(0, 12_345);
}

#[test]
fn gate_controls_channel2() {
    let mut p = Pit::new();
    // Mode 0 with the gate low: the count waits.
    p.write_port61(0, 0);
    p.write(0, 3, 0xB0);
    p.write(0, 2, 100);
    p.write(0, 2, 0);
    assert_eq!(p.counter(2, at(0, 50)), Some(100));
    let g1 = at(0, 50);
    p.write_port61(g1, 1);
    assert_eq!(p.counter(2, at(g1, 30)), Some(70));
    p.write_port61(at(g1, 30), 0);
    assert_eq!(p.counter(2, at(g1, 500)), Some(70), "paused");
    let g3 = at(g1, 500);
    p.write_port61(g3, 1);
    assert_eq!(p.counter(2, at(g3, 30)), Some(40));
    assert!(p.output(2, at(g3, 70)));
    assert!(!p.output(2, at(g3, 69)));
    // Mode 1: a gate rising edge triggers N clocks of low output.
    let t = 1_000_000_000;
    p.write_port61(t, 0);
    p.write(t, 3, 0xB2);
    p.write(t, 2, 10);
    p.write(t, 2, 0);
    assert!(p.output(2, at(t, 100)));
    let g = at(t, 100);
    p.write_port61(g, 1);
    assert!(!p.output(2, at(g, 5)));
    assert!(!p.output(2, at(g, 9)));
    assert!(p.output(2, at(g, 10)));
    // Mode 2: gate low stops and forces OUT high; rising edge reloads.
    let t = 2_000_000_000;
    p.write(t, 3, 0xB4);
    p.write(t, 2, 10);
    p.write(t, 2, 0);
    p.write_port61(at(t, 1), 0);
    assert!(p.output(2, at(t, 9)));
    let g = at(t, 20);
    p.write_port61(g, 1);
    assert_eq!(p.counter(2, at(g, 3)), Some(7));
    // Port 0x61 keeps bits 3:0 and reads 0 in bits 7:6.
    p.write_port61(t, 0xFF);
    assert_eq!(p.read_port61(t) & 0xCF, 0x0F);
}

#[test]
fn refresh_toggle_flips() {
    let p = Pit::new();
    let a = p.read_port61(0) & 0x10;
    let b = p.read_port61(15_085) & 0x10;
    let c = p.read_port61(30_170) & 0x10;
    assert_ne!(a, b);
    assert_eq!(a, c);
}

#[test]
fn control_port_reads_ff_and_channel1_counts() {
    let mut p = Pit::new();
    assert_eq!(p.read(0, 3), 0xFF);
    p.write(0, 3, 0x74); // ch1 mode 2
    p.write(0, 1, 18);
    p.write(0, 1, 0);
    assert_eq!(p.counter(1, at(0, 5)), Some(13));
    // Channel 1 does not interrupt.
    assert_eq!(p.next_deadline(), None);
}

#[test]
fn periodic_deadlines_respect_minimum_period() {
    let mut p = Pit::new();
    p.write(0, 3, 0x34);
    p.write(0, 0, 2);
    p.write(0, 0, 0);
    let first = p.next_deadline().unwrap();
    assert!(p.advance(first));
    assert!(p.next_deadline().unwrap() >= first + MIN_PERIOD_NS);
}
