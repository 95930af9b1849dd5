//! Fuzzes the emulated platform (`vmm_devices::Platform`: LAPIC, IOAPIC, PIT,
//! RTC/CMOS, PICs, PCI host bridge, ACPI PM) with arbitrary sequences of
//! guest port, MMIO and x2APIC MSR accesses, timer expiries, external
//! interrupt lines, injections and MSR-policy effects. Time only moves
//! forward; ports, addresses and MSRs are biased towards the ones the
//! platform decodes, and an input chooses the platform's configuration
//! (TSC-deadline support, PM timer width, the ACPI port block's base).
//!
//! Invariants:
//! * Nothing panics.
//! * The vector offered for injection beats the PPR's priority class, and
//!   acknowledging it succeeds and raises the PPR to at least its class.
//! * After every operation at time `now`, `next_deadline()` is `None` or
//!   later than `now` (nothing already due is left unprocessed).
//! * A port access is `Unassigned` exactly when `port_device` says no device
//!   decodes its first port; an MMIO access likewise with `mmio_device`.
//! * x2APIC MSRs outside 0x800–0x8FF, and all of them outside x2APIC mode,
//!   fault.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vmm_devices::{
    AccessError, ApicMode, LapicConfig, MsrEffect, Platform, PlatformConfig, PmConfig,
};

const LAPIC: u64 = 0xFEE0_0000;
const IOAPIC: u64 = 0xFEC0_0000;

/// Ports the platform decodes (with the default ACPI base), and neighbours.
const PORTS: [u16; 32] = [
    0x20, 0x21, 0xA0, 0xA1, 0x40, 0x41, 0x42, 0x43, 0x44, 0x61, 0x70, 0x71, 0x72, 0x80, 0x4D0,
    0x4D1, 0xCF8, 0xCF9, 0xCFA, 0xCFB, 0xCFC, 0xCFD, 0xCFE, 0xCFF, 0x600, 0x601, 0x602, 0x604,
    0x605, 0x608, 0x60A, 0x3F8,
];

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Port {
    Known(u8),
    Any(u16),
}

impl Port {
    fn get(self) -> u16 {
        match self {
            Port::Known(i) => PORTS[usize::from(i) % PORTS.len()],
            Port::Any(p) => p,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Addr {
    Lapic(u16),
    IoApic(u8),
    Any(u64),
}

impl Addr {
    fn get(self) -> u64 {
        match self {
            Addr::Lapic(o) => LAPIC + u64::from(o & 0xFFF),
            Addr::IoApic(o) => IOAPIC + u64::from(o),
            Addr::Any(a) => a,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    In(Port, u8),
    Out(Port, u8, u32),
    Read(Addr, u8),
    Write(Addr, u8, u64),
    /// x2APIC MSR 0x7F0 + n (so just outside the range too).
    RdMsr(u16),
    WrMsr(u16, u64),
    /// Time passes by this many ns, then the timers run.
    Advance(u32),
    /// Jump to the next deadline, run, inject what is pending.
    RunToDeadline,
    Irq(u8, bool),
    Inject,
    X2Apic,
    TscDeadline {
        tsc: u64,
        deadline: u64,
    },
    PowerButton,
}

#[derive(Arbitrary, Debug)]
struct Input {
    tsc_deadline: bool,
    timer_32bit: bool,
    high_acpi_ports: bool,
    ops: Vec<Op>,
}

fn check(p: &Platform, now: u64) {
    if let Some(v) = p.pending_vector() {
        let ppr = p.irq.lapic.ppr();
        assert!((v & 0xF0) > (ppr & 0xF0), "pending {v:#x} vs PPR {ppr:#x}");
    }
    if let Some(d) = p.next_deadline() {
        assert!(d > now, "deadline {d} not after now {now}");
    }
}

fuzz_target!(|input: Input| {
    let mut cfg = PlatformConfig {
        lapic: LapicConfig {
            tsc_hz: 2_500_000_000,
            tsc_deadline: input.tsc_deadline,
            ..LapicConfig::default()
        },
        ..PlatformConfig::default()
    };
    cfg.pm.timer_32bit = input.timer_32bit;
    if input.high_acpi_ports {
        cfg.pm = PmConfig {
            pm1a_evt: 0xB000,
            pm1a_cnt: 0xB004,
            pm_tmr: 0xB008,
            ..cfg.pm
        };
    }
    let mut p = Platform::without_pci_devices(cfg, 0).expect("valid config");
    let mut now = 0u64;
    for op in input.ops.iter().take(2000) {
        match *op {
            Op::In(port, size) => {
                let port = port.get();
                let decoded = p.port_device(port).is_some();
                let r = p.port_read(now, port, size);
                if matches!(size, 1 | 2 | 4) {
                    assert_eq!(r == Err(AccessError::Unassigned), !decoded, "in {port:#x}");
                }
            }
            Op::Out(port, size, v) => {
                let port = port.get();
                let decoded = p.port_device(port).is_some();
                let r = p.port_write(now, port, size, v);
                if matches!(size, 1 | 2 | 4) {
                    assert_eq!(r == Err(AccessError::Unassigned), !decoded, "out {port:#x}");
                }
            }
            Op::Read(addr, size) => {
                let gpa = addr.get();
                let decoded = p.mmio_device(gpa).is_some();
                let r = p.mmio_read(now, gpa, size);
                assert_eq!(r == Err(AccessError::Unassigned), !decoded, "read {gpa:#x}");
            }
            Op::Write(addr, size, v) => {
                let gpa = addr.get();
                let decoded = p.mmio_device(gpa).is_some();
                let r = p.mmio_write(now, gpa, size, v);
                assert_eq!(
                    r == Err(AccessError::Unassigned),
                    !decoded,
                    "write {gpa:#x}"
                );
            }
            Op::RdMsr(n) => {
                let msr = 0x7F0 + u32::from(n % 0x120);
                let r = p.msr_read(now, msr);
                if !(0x800..=0x8FF).contains(&msr) || p.irq.lapic.mode() != ApicMode::X2Apic {
                    assert!(r.is_err(), "rdmsr {msr:#x}");
                }
            }
            Op::WrMsr(n, v) => {
                let msr = 0x7F0 + u32::from(n % 0x120);
                let x2 = p.irq.lapic.mode() == ApicMode::X2Apic;
                let r = p.msr_write(now, msr, v);
                if !(0x800..=0x8FF).contains(&msr) || !x2 {
                    assert!(r.is_err(), "wrmsr {msr:#x}");
                }
            }
            Op::Advance(d) => {
                now = now.saturating_add(u64::from(d));
                p.advance(now);
            }
            Op::RunToDeadline => {
                if let Some(d) = p.next_deadline() {
                    now = d;
                    p.advance(now);
                }
            }
            Op::Irq(gsi, level) => p.set_irq(u32::from(gsi), level),
            Op::Inject => {
                if let Some(v) = p.pending_vector() {
                    p.acknowledge(v).expect("pending vector acknowledges");
                    assert!(p.irq.lapic.ppr() & 0xF0 >= v & 0xF0);
                }
            }
            Op::X2Apic => {
                let _ = p.apply_msr_effect(now, now, MsrEffect::ApicMode(ApicMode::X2Apic));
            }
            Op::TscDeadline { tsc, deadline } => {
                let _ = p.apply_msr_effect(now, tsc, MsrEffect::TscDeadline(deadline));
            }
            Op::PowerButton => p.press_power_button(),
        }
        check(&p, now);
        let _ = p.take_power_request();
        let _ = p.take_nmi();
        let _ = p.irq.lapic.take_dropped_ipi();
    }
});
