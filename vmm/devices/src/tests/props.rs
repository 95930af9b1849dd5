//! Property tests: hostile access sequences never panic and keep the
//! interrupt and timer invariants.

use proptest::prelude::*;
use vcpu_policy::{ApicMode, MsrEffect};

use crate::ioapic::{IoApic, IOAPIC_BASE, IOREGSEL, IOWIN, RTE_REMOTE_IRR};
use crate::lapic::{reg, Lapic, LapicConfig, LAPIC_BASE};
use crate::pit::Pit;
use crate::rtc::{Rtc, RtcConfig, B_24H, B_BINARY, B_SET};
use crate::{Interrupts, Platform, PlatformConfig};

/// Ports worth hitting, plus anything.
fn port() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => prop::sample::select(vec![
            0x20u16, 0x21, 0xA0, 0xA1, 0x40, 0x41, 0x42, 0x43, 0x61, 0x70, 0x71, 0x80,
            0x4D0, 0x4D1, 0xCF8, 0xCF9, 0xCFA, 0xCFB, 0xCFC, 0xCFD, 0xCFE, 0xCFF, 0x600,
            0x601, 0x602, 0x603, 0x604, 0x605, 0x608, 0x60A,
        ]),
        1 => any::<u16>(),
    ]
}

fn gpa() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => (0u64..0x1000).prop_map(|o| LAPIC_BASE + o),
        2 => prop::sample::select(vec![IOREGSEL, IOWIN, 0x40, 0x20]).prop_map(|o| IOAPIC_BASE + o),
        1 => any::<u64>(),
    ]
}

#[derive(Clone, Debug)]
enum Op {
    In(u16, u8),
    Out(u16, u8, u32),
    MmioRead(u64, u8),
    MmioWrite(u64, u8, u64),
    MsrRead(u32),
    MsrWrite(u32, u64),
    Advance(u32),
    Irq(u32, bool),
    Inject,
    X2Apic,
    Deadline(u64, u64),
    PowerButton,
}

fn op() -> impl Strategy<Value = Op> {
    let size = prop::sample::select(vec![1u8, 2, 4, 3, 8]);
    prop_oneof![
        6 => (port(), size.clone()).prop_map(|(p, s)| Op::In(p, s)),
        8 => (port(), size.clone(), any::<u32>()).prop_map(|(p, s, v)| Op::Out(p, s, v)),
        4 => (gpa(), size.clone()).prop_map(|(a, s)| Op::MmioRead(a, s)),
        6 => (gpa(), size, any::<u64>()).prop_map(|(a, s, v)| Op::MmioWrite(a, s, v)),
        2 => (0x7F0u32..0x910).prop_map(Op::MsrRead),
        3 => (0x7F0u32..0x910, any::<u64>()).prop_map(|(m, v)| Op::MsrWrite(m, v)),
        4 => any::<u32>().prop_map(Op::Advance),
        2 => (0u32..30, any::<bool>()).prop_map(|(g, l)| Op::Irq(g, l)),
        3 => Just(Op::Inject),
        1 => Just(Op::X2Apic),
        1 => (any::<u64>(), any::<u64>()).prop_map(|(t, d)| Op::Deadline(t, d)),
        1 => Just(Op::PowerButton),
    ]
}

fn check(p: &Platform, now: u64) {
    if let Some(v) = p.pending_vector() {
        assert!(
            (v & 0xF0) > (p.irq.lapic.ppr() & 0xF0),
            "pending {v:#x} does not beat PPR {:#x}",
            p.irq.lapic.ppr()
        );
    }
    if let Some(d) = p.next_deadline() {
        assert!(d > now, "deadline {d} not after now {now}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn platform_survives_random_accesses(ops in prop::collection::vec(op(), 1..200)) {
        let cfg = PlatformConfig {
            lapic: LapicConfig { tsc_hz: 3_000_000_000, tsc_deadline: true, ..LapicConfig::default() },
            ..PlatformConfig::default()
        };
        let mut p = Platform::without_pci_devices(cfg, 0).unwrap();
        let mut now = 0u64;
        for op in ops {
            match op {
                Op::In(port, size) => { let _ = p.port_read(now, port, size); }
                Op::Out(port, size, v) => { let _ = p.port_write(now, port, size, v); }
                Op::MmioRead(a, size) => { let _ = p.mmio_read(now, a, size); }
                Op::MmioWrite(a, size, v) => { let _ = p.mmio_write(now, a, size, v); }
                Op::MsrRead(m) => { let _ = p.msr_read(now, m); }
                Op::MsrWrite(m, v) => { let _ = p.msr_write(now, m, v); }
                Op::Advance(d) => {
                    now = now.saturating_add(u64::from(d));
                    p.advance(now);
                }
                Op::Irq(g, l) => p.set_irq(g, l),
                Op::Inject => {
                    if let Some(v) = p.pending_vector() {
                        p.acknowledge(v).unwrap();
                        prop_assert!((p.irq.lapic.ppr() & 0xF0) >= (v & 0xF0));
                    }
                }
                Op::X2Apic => {
                    p.apply_msr_effect(now, now, MsrEffect::ApicMode(ApicMode::X2Apic));
                }
                Op::Deadline(tsc, d) => {
                    p.apply_msr_effect(now, tsc, MsrEffect::TscDeadline(d));
                }
                Op::PowerButton => p.press_power_button(),
            }
            check(&p, now);
            let _ = p.take_power_request();
            let _ = p.take_nmi();
        }
    }

    /// The vector offered always beats the PPR, and nothing deliverable is
    /// held back.
    #[test]
    fn lapic_priority_rules(ops in prop::collection::vec((0u8..4, 16u8..=255, any::<bool>()), 1..300)) {
        let mut l = Lapic::new(LapicConfig::default()).unwrap();
        l.mmio_write(0, u64::from(reg::SVR), 4, 0x1FF).unwrap();
        for (kind, v, level) in ops {
            match kind {
                0 => { l.accept(v, level); }
                1 => {
                    if let Some(p) = l.pending_vector() {
                        l.acknowledge(p).unwrap();
                        prop_assert!(l.isr(p) && !l.irr(p));
                    }
                }
                2 => { l.mmio_write(0, u64::from(reg::EOI), 4, 0).unwrap(); }
                _ => l.set_tpr(v),
            }
            let ppr_class = l.ppr() & 0xF0;
            let highest_irr = (16..=255u8).rev().find(|&x| l.irr(x));
            match l.pending_vector() {
                Some(p) => {
                    prop_assert!((p & 0xF0) > ppr_class);
                    prop_assert_eq!(Some(p), highest_irr);
                }
                None => prop_assert!(highest_irr.is_none_or(|h| (h & 0xF0) <= ppr_class)),
            }
            let highest_isr = (16..=255u8).rev().find(|&x| l.isr(x)).unwrap_or(0);
            prop_assert!(l.ppr() >= l.tpr());
            prop_assert!(ppr_class >= highest_isr & 0xF0);
        }
    }

    /// A level-triggered line delivers once, then nothing more until EOI.
    #[test]
    fn ioapic_level_delivers_once_until_eoi(ops in prop::collection::vec(0u8..6, 1..300)) {
        const V: u8 = 0x59;
        let mut lapic = Lapic::new(LapicConfig::default()).unwrap();
        lapic.mmio_write(0, u64::from(reg::SVR), 4, 0x1FF).unwrap();
        let mut i = Interrupts::new(lapic, IoApic::new(0));
        i.ioapic_mmio_write(IOREGSEL, 4, 0x10 + 2 * 9).unwrap();
        i.ioapic_mmio_write(IOWIN, 4, u32::from(V) | (1 << 15)).unwrap();
        let mut line = false;
        let mut deliveries = 0u32;
        let mut eois = 0u32;
        for op in ops {
            let was_irr = i.lapic.irr(V);
            let was_in_service = i.lapic.isr(V);
            match op {
                0 => { line = true; i.set_irq(9, true); }
                1 => { line = false; i.set_irq(9, false); }
                2 => { if let Some(v) = i.pending_vector() { i.acknowledge(v).unwrap(); } }
                3 => {
                    i.lapic_mmio_write(0, u64::from(reg::EOI), 4, 0).unwrap();
                    if was_in_service && !i.lapic.isr(V) { eois += 1; }
                }
                // Other traffic: an edge vector above and below.
                4 => { i.lapic.accept(0x80, false); }
                _ => { i.lapic.accept(0x30, false); }
            }
            if !was_irr && i.lapic.irr(V) {
                deliveries += 1;
                prop_assert!(!i.lapic.isr(V), "delivered again while in service");
            }
            prop_assert!(!(i.lapic.irr(V) && i.lapic.isr(V)));
            let remote = i.ioapic.entry(9).unwrap() & RTE_REMOTE_IRR != 0;
            prop_assert_eq!(remote, i.lapic.irr(V) || i.lapic.isr(V));
            if line {
                prop_assert!(remote, "asserted line with remote IRR clear");
            }
            prop_assert!(deliveries <= eois + 1);
        }
    }

    /// Time registers survive being held and released in any format.
    #[test]
    fn rtc_registers_round_trip(secs in -2_208_988_800i64..=253_402_300_799, binary: bool, h24: bool) {
        let mut r = Rtc::new(RtcConfig { unix_secs: secs, ..RtcConfig::default() }, 0);
        let b = (if binary { B_BINARY } else { 0 }) | (if h24 { B_24H } else { 0 });
        for v in [b, b | B_SET, b] {
            r.write(0, 0, 0x0B);
            r.write(0, 1, v);
        }
        prop_assert_eq!(r.unix_time(), secs);
    }

    /// Random PIT programming: reads never panic and deadlines lie ahead.
    #[test]
    fn pit_random_programming(ops in prop::collection::vec((0u8..7, any::<u8>(), 0u32..20_000_000), 1..200)) {
        let mut p = Pit::new();
        let mut now = 0u64;
        for (kind, v, dt) in ops {
            now += u64::from(dt);
            match kind {
                0..=2 => p.write(now, u16::from(kind), v),
                3 => p.write(now, 3, v),
                4 => { let _ = p.read(now, u16::from(v % 4)); }
                5 => p.write_port61(now, v),
                _ => { let _ = p.read_port61(now); }
            }
            p.advance(now);
            if let Some(d) = p.next_deadline() {
                prop_assert!(d > now);
            }
            for ch in 0..3 {
                let _ = p.counter(ch, now);
            }
        }
    }
}
