//! The wired platform: port and MMIO dispatch, and Linux's boot-time
//! timer sequences end to end (PIT → IOAPIC → LAPIC).

use vcpu_policy::{ApicMode, MsrEffect};

use crate::ioapic::{IOAPIC_BASE, IOREGSEL, IOWIN};
use crate::lapic::{reg, LAPIC_BASE};
use crate::platform::{PortDevice, PORT_POST};
use crate::pm::{PmBlock, PmConfig, PowerRequest};
use crate::{AccessError, ConfigError, LapicConfig, Platform, PlatformConfig};

fn platform() -> Platform {
    Platform::without_pci_devices(
        PlatformConfig {
            lapic: LapicConfig {
                tsc_hz: 1_000_000_000,
                tsc_deadline: true,
                ..LapicConfig::default()
            },
            ..PlatformConfig::default()
        },
        0,
    )
    .unwrap()
}

fn outb(p: &mut Platform, now: u64, port: u16, v: u8) {
    p.port_write(now, port, 1, u32::from(v)).unwrap();
}

fn inb(p: &mut Platform, now: u64, port: u16) -> u8 {
    p.port_read(now, port, 1).unwrap() as u8
}

fn apic_w(p: &mut Platform, now: u64, off: u32, v: u32) {
    p.mmio_write(now, LAPIC_BASE + u64::from(off), 4, u64::from(v))
        .unwrap();
}

fn apic_r(p: &mut Platform, now: u64, off: u32) -> u32 {
    p.mmio_read(now, LAPIC_BASE + u64::from(off), 4).unwrap() as u32
}

/// Routes IOAPIC `pin` to `vector`, physical destination 0.
fn ioapic_route(p: &mut Platform, pin: u32, vector: u8, level: bool) {
    let lo = u64::from(vector) | if level { 1 << 15 } else { 0 };
    for (index, value) in [(0x11 + 2 * pin, 0), (0x10 + 2 * pin, lo)] {
        p.mmio_write(0, IOAPIC_BASE + IOREGSEL, 4, u64::from(index))
            .unwrap();
        p.mmio_write(0, IOAPIC_BASE + IOWIN, 4, value).unwrap();
    }
}

/// Linux's pit_set_periodic at HZ = 250.
fn pit_periodic(p: &mut Platform, now: u64) {
    outb(p, now, 0x43, 0x34);
    outb(p, now, 0x40, (4773u16).to_le_bytes()[0]);
    outb(p, now, 0x40, (4773u16).to_le_bytes()[1]);
}

/// Runs to the next deadline; if a vector is pending, injects it.
fn step(p: &mut Platform, now: &mut u64) -> Option<u8> {
    *now = p.next_deadline().expect("something armed");
    p.advance(*now);
    let v = p.pending_vector()?;
    p.acknowledge(v).unwrap();
    Some(v)
}

#[test]
fn port_map() {
    let p = platform();
    for (port, dev) in [
        (0x20, PortDevice::Pic(0)),
        (0xA1, PortDevice::Pic(1)),
        (0x43, PortDevice::Pit),
        (0x61, PortDevice::Port61),
        (0x71, PortDevice::Rtc),
        (0x80, PortDevice::Post),
        (0x4D1, PortDevice::Elcr),
        (0xCF8, PortDevice::PciAddress),
        (0xCF9, PortDevice::Pm(PmBlock::Reset)),
        (0xCFB, PortDevice::PciLegacy),
        (0xCFE, PortDevice::PciData),
        (0x601, PortDevice::Pm(PmBlock::Event)),
        (0x605, PortDevice::Pm(PmBlock::Control)),
        (0x60B, PortDevice::Pm(PmBlock::Timer)),
    ] {
        assert_eq!(p.port_device(port).map(|d| d.0), Some(dev), "{port:#x}");
    }
    for port in [0x3F8, 0x64, 0x60, 0x92, 0x606, 0x60C, 0xCF7, 0xFFFF, 0] {
        assert_eq!(p.port_device(port), None, "{port:#x}");
    }
}

#[test]
fn unassigned_and_bad_widths() {
    let mut p = platform();
    assert_eq!(p.port_read(0, 0x3F8, 1), Err(AccessError::Unassigned));
    assert_eq!(p.port_write(0, 0x64, 1, 0xFE), Err(AccessError::Unassigned));
    assert_eq!(p.port_read(0, 0x40, 3), Err(AccessError::BadWidth));
    // Misaligned: split into byte lanes (PCI data, then nothing at 0xD00).
    assert_eq!(p.port_read(0, 0xCFD, 4), Ok(0xFFFF_FFFF));
    assert_eq!(p.port_write(0, 0x608, 4, 0), Err(AccessError::ReadOnly));
    assert_eq!(p.mmio_read(0, 0xFED0_0000, 4), Err(AccessError::Unassigned));
    assert_eq!(
        p.mmio_read(0, LAPIC_BASE + 0x30, 8),
        Err(AccessError::BadWidth)
    );
    assert_eq!(
        p.mmio_write(0, IOAPIC_BASE, 8, 0),
        Err(AccessError::BadWidth)
    );
}

#[test]
fn byte_devices_split_wide_accesses() {
    let mut p = platform();
    outb(&mut p, 0, 0x70, 0x0A);
    // inw 0x70: the index port's 0xFF, then register A.
    assert_eq!(p.port_read(0, 0x70, 2), Ok(0x26FF));
    // outw 0x70: index 0x40, then data 0x02.
    p.port_write(0, 0x70, 2, 0x0240).unwrap();
    assert_eq!(p.rtc.cmos(0x40), 0x02);
    // A dword at 0x42 runs into the control port and unassigned 0x44-0x45.
    assert_eq!(p.port_read(0, 0x42, 4).unwrap() >> 8, 0xFF_FFFF);
    // POST code.
    outb(&mut p, 0, PORT_POST, 0x55);
    assert_eq!(inb(&mut p, 0, PORT_POST), 0x55);
    assert_eq!(p.post_code(), 0x55);
}

#[test]
fn pci_and_reset_share_0xcf8_0xcff() {
    let mut p = platform();
    outb(&mut p, 0, 0xCFB, 0x01);
    p.port_write(0, 0xCF8, 4, 0x8000_0000).unwrap();
    assert_eq!(p.port_read(0, 0xCF8, 4), Ok(0x8000_0000));
    assert_eq!(p.port_read(0, 0xCFC, 4), Ok(0x1237_8086));
    assert_eq!(p.port_read(0, 0xCFE, 2), Ok(0x1237));
    assert_eq!(inb(&mut p, 0, 0xCF9), 0);
    assert_eq!(p.take_power_request(), None);
    outb(&mut p, 0, 0xCF9, 0x02);
    outb(&mut p, 0, 0xCF9, 0x06);
    assert_eq!(p.take_power_request(), Some(PowerRequest::Reset));
    assert_eq!(p.port_read(0, 0xCF8, 4), Ok(0x8000_0000), "address kept");
}

#[test]
fn acpi_ports_and_power_off() {
    let mut p = platform();
    assert_eq!(p.port_read(1_000_000_000, 0x608, 4), Ok(3_579_545));
    let cnt = p.port_read(0, 0x604, 2).unwrap();
    p.port_write(0, 0x604, 2, cnt | (5 << 10)).unwrap();
    assert_eq!(p.take_power_request(), None);
    p.port_write(0, 0x604, 2, cnt | (5 << 10) | (1 << 13))
        .unwrap();
    assert_eq!(p.take_power_request(), Some(PowerRequest::Off));
}

#[test]
fn sci_is_a_level_interrupt_on_gsi9() {
    let mut p = platform();
    apic_w(&mut p, 0, reg::SVR, 0x1FF);
    ioapic_route(&mut p, 9, 0x39, true);
    p.port_write(0, 0x602, 2, 0x0100).unwrap(); // PWRBTN_EN
    p.press_power_button();
    assert_eq!(p.pending_vector(), Some(0x39));
    p.acknowledge(0x39).unwrap();
    // The handler has not cleared the status yet: EOI re-delivers.
    apic_w(&mut p, 0, reg::EOI, 0);
    assert_eq!(p.pending_vector(), Some(0x39));
    p.acknowledge(0x39).unwrap();
    p.port_write(0, 0x600, 2, 0x0100).unwrap();
    apic_w(&mut p, 0, reg::EOI, 0);
    assert_eq!(p.pending_vector(), None);
}

#[test]
fn rtc_update_interrupt_on_gsi8() {
    let mut p = platform();
    apic_w(&mut p, 0, reg::SVR, 0x1FF);
    ioapic_route(&mut p, 8, 0x38, false);
    outb(&mut p, 0, 0x70, 0x0A);
    outb(&mut p, 0, 0x71, 0x20); // no periodic flag
    outb(&mut p, 0, 0x70, 0x0B);
    outb(&mut p, 0, 0x71, 0x12); // UIE, 24-hour
    let mut now = 0;
    for second in 1..=3u64 {
        assert_eq!(step(&mut p, &mut now), Some(0x38));
        assert_eq!(now, second * 1_000_000_000);
        outb(&mut p, now, 0x70, 0x0C);
        assert_eq!(inb(&mut p, now, 0x71), 0x90);
        apic_w(&mut p, now, reg::EOI, 0);
    }
}

#[test]
fn linux_check_timer_sees_pit_ticks_through_ioapic_pin2() {
    let mut p = platform();
    apic_w(&mut p, 0, reg::SVR, 0x1FF);
    ioapic_route(&mut p, 2, 0x30, false);
    pit_periodic(&mut p, 0);
    let mut now = 0;
    let mut jiffies = 0;
    while p.next_deadline().unwrap() <= 25_000_000 {
        if step(&mut p, &mut now) == Some(0x30) {
            jiffies += 1;
            apic_w(&mut p, now, reg::EOI, 0);
        }
    }
    assert_eq!(jiffies, 6, "25 ms at HZ=250");
}

#[test]
fn linux_apic_timer_calibration_against_the_pit() {
    const HZ: u64 = 250;
    const LOOPS: u32 = (HZ / 10) as u32;
    let mut p = platform();
    apic_w(&mut p, 0, reg::SVR, 0x1FF);
    ioapic_route(&mut p, 2, 0x30, false);
    pit_periodic(&mut p, 0);
    // __setup_APIC_LVTT(0xffffffff, 0, 0): periodic, masked, divide 16.
    apic_w(&mut p, 0, reg::LVT_TIMER, 0xEC | (1 << 17) | (1 << 16));
    apic_w(&mut p, 0, reg::TDCR, 0x3);
    apic_w(&mut p, 0, reg::TMICT, 0xFFFF_FFFF / 16);
    let (mut t1, mut t2) = (0u32, 0u32);
    let mut loops = 0;
    let mut now = 0;
    while loops <= LOOPS {
        if step(&mut p, &mut now) != Some(0x30) {
            continue;
        }
        // lapic_cal_handler, a few microseconds into the interrupt.
        let tapic = apic_r(&mut p, now + 3_000, reg::TMCCT);
        loops += 1;
        if loops == 1 {
            t1 = tapic;
        } else if loops == LOOPS + 1 {
            t2 = tapic;
        }
        apic_w(&mut p, now + 4_000, reg::EOI, 0);
    }
    let delta = u64::from(t1 - t2);
    let lapic_timer_period = delta * 16 / u64::from(LOOPS);
    // 1 GHz bus: 4_000_000 per jiffy, within the PIT's rounding (4773 vs
    // 4772.728 clocks per jiffy).
    let expect = 1_000_000_000 / HZ;
    let err = lapic_timer_period.abs_diff(expect) * 10_000 / expect;
    assert!(err < 2, "period {lapic_timer_period}, {err} per 10k");
    // The masked timer never interrupted.
    assert!(!p.irq.lapic.irr(0xEC));
}

#[test]
fn lapic_one_shot_clockevent_through_the_platform() {
    let mut p = platform();
    apic_w(&mut p, 0, reg::SVR, 0x1FF);
    apic_w(&mut p, 0, reg::TDCR, 0xB);
    apic_w(&mut p, 0, reg::LVT_TIMER, 0xEC);
    let mut now = 1_000;
    for delta in [250_000u32, 1_000_000, 3] {
        apic_w(&mut p, now, reg::TMICT, delta);
        assert_eq!(p.next_deadline(), Some(now + u64::from(delta)));
        assert_eq!(step(&mut p, &mut now), Some(0xEC));
        apic_w(&mut p, now, reg::EOI, 0);
    }
    // TSC-deadline mode through the MSR policy's effect.
    apic_w(&mut p, now, reg::LVT_TIMER, 0xEC | (2 << 17));
    let tsc = now + 500; // guest TSC = ns + 500 at 1 GHz
    assert!(p.apply_msr_effect(now, tsc, MsrEffect::TscDeadline(tsc + 7_000)));
    assert_eq!(p.next_deadline(), Some(now + 7_000));
    let before = now;
    assert_eq!(step(&mut p, &mut now), Some(0xEC));
    assert_eq!(now, before + 7_000);
}

#[test]
fn x2apic_switch_retires_the_mmio_page() {
    let mut p = platform();
    assert_eq!(apic_r(&mut p, 0, reg::VERSION), 0x0005_0014);
    assert!(p.apply_msr_effect(0, 0, MsrEffect::ApicMode(ApicMode::X2Apic)));
    assert_eq!(
        p.mmio_read(0, LAPIC_BASE + 0x30, 4),
        Err(AccessError::Unassigned)
    );
    assert_eq!(p.mmio_device(LAPIC_BASE), None);
    assert_eq!(p.msr_read(0, 0x803), Ok(0x0005_0014));
    p.msr_write(0, 0x80F, 0x1FF).unwrap();
    p.msr_write(0, 0x83F, 0x55).unwrap();
    assert_eq!(p.pending_vector(), Some(0x55));
    // The IOAPIC is still there.
    assert!(p.mmio_read(0, IOAPIC_BASE + IOWIN, 4).is_ok());
}

#[test]
fn external_lines_and_pic_never_interrupts() {
    let mut p = platform();
    apic_w(&mut p, 0, reg::SVR, 0x1FF);
    ioapic_route(&mut p, 4, 0x24, false);
    p.set_irq(4, true);
    assert_eq!(p.pending_vector(), Some(0x24));
    // The PIC, fully unmasked, still raises nothing.
    for (port, v) in [
        (0x20, 0x11),
        (0x21, 0x30),
        (0x21, 0x04),
        (0x21, 0x01),
        (0x21, 0x00),
    ] {
        outb(&mut p, 0, port, v);
    }
    assert_eq!(inb(&mut p, 0, 0x21), 0);
    p.acknowledge(0x24).unwrap();
    p.advance(10_000_000_000);
    assert_eq!(p.pending_vector(), None);
    assert_eq!(p.next_deadline(), None);
}

#[test]
fn config_errors() {
    let overlap = PlatformConfig {
        pm: PmConfig {
            pm1a_evt: 0x42,
            ..PmConfig::default()
        },
        ..PlatformConfig::default()
    };
    assert_eq!(
        Platform::without_pci_devices(overlap, 0).err(),
        Some(ConfigError::PortOverlap(0x42))
    );
    let bad_gsi = PlatformConfig {
        pit_gsi: 24,
        ..PlatformConfig::default()
    };
    assert_eq!(
        Platform::without_pci_devices(bad_gsi, 0).err(),
        Some(ConfigError::BadGsi(24))
    );
    let bad_lapic = PlatformConfig {
        lapic: LapicConfig {
            bus_hz: 0,
            ..LapicConfig::default()
        },
        ..PlatformConfig::default()
    };
    assert_eq!(
        Platform::without_pci_devices(bad_lapic, 0).err(),
        Some(ConfigError::ZeroBusFrequency)
    );
    // Ports moved to match another FADT.
    let moved = PlatformConfig {
        pm: PmConfig {
            pm1a_evt: 0xB000,
            pm1a_cnt: 0xB004,
            pm_tmr: 0xB008,
            ..PmConfig::default()
        },
        ..PlatformConfig::default()
    };
    let mut p = Platform::without_pci_devices(moved, 0).unwrap();
    assert_eq!(p.port_read(1_000_000_000, 0xB008, 4), Ok(3_579_545));
    assert_eq!(p.port_read(0, 0x608, 4), Err(AccessError::Unassigned));
}
