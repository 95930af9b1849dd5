//! IOAPIC: register window, edge and level delivery, remote IRR and EOI.

use crate::ioapic::*;
use crate::lapic::{reg, Lapic, LapicConfig};
use crate::{AccessError, Interrupts};

fn irqs() -> Interrupts {
    let mut lapic = Lapic::new(LapicConfig::default()).unwrap();
    lapic.mmio_write(0, u64::from(reg::SVR), 4, 0x1FF).unwrap();
    Interrupts::new(lapic, IoApic::new(1))
}

fn ind_read(i: &mut Interrupts, index: u32) -> u32 {
    i.ioapic_mmio_write(IOREGSEL, 4, index).unwrap();
    i.ioapic_mmio_read(IOWIN, 4).unwrap()
}

fn ind_write(i: &mut Interrupts, index: u32, value: u32) {
    i.ioapic_mmio_write(IOREGSEL, 4, index).unwrap();
    i.ioapic_mmio_write(IOWIN, 4, value).unwrap();
}

/// Programs `pin`: vector, level or edge, physical destination 0, unmasked.
fn route(i: &mut Interrupts, pin: u32, vector: u8, level: bool) {
    ind_write(i, 0x11 + 2 * pin, 0);
    ind_write(
        i,
        0x10 + 2 * pin,
        u32::from(vector) | if level { 1 << 15 } else { 0 },
    );
}

fn eoi(i: &mut Interrupts) {
    i.lapic_mmio_write(0, u64::from(reg::EOI), 4, 0).unwrap();
}

#[test]
fn registers() {
    let mut i = irqs();
    assert_eq!(ind_read(&mut i, 0), 0x0100_0000);
    assert_eq!(ind_read(&mut i, 1), 0x0017_0020);
    assert_eq!(ind_read(&mut i, 2), 0x0100_0000);
    assert_eq!(i.ioapic_mmio_read(IOREGSEL, 4), Ok(2));
    for pin in 0..24 {
        assert_eq!(ind_read(&mut i, 0x10 + 2 * pin), 0x0001_0000, "pin {pin}");
        assert_eq!(ind_read(&mut i, 0x11 + 2 * pin), 0);
    }
    assert_eq!(ind_read(&mut i, 0x40), 0);
    ind_write(&mut i, 0, 0x0F00_0000);
    assert_eq!(ind_read(&mut i, 0), 0x0F00_0000);
    i.ioapic_mmio_write(IOREGSEL, 4, 1).unwrap();
    assert_eq!(i.ioapic_mmio_write(IOWIN, 4, 0), Err(AccessError::ReadOnly));
    // Writable bits of an entry; remote IRR and delivery status read-only.
    ind_write(&mut i, 0x10, 0xFFFF_FFFF);
    assert_eq!(ind_read(&mut i, 0x10), 0x0001_AFFF);
    ind_write(&mut i, 0x11, 0xFFFF_FFFF);
    assert_eq!(ind_read(&mut i, 0x11), 0xFF00_0000);
    assert_eq!(i.ioapic_mmio_read(IOWIN, 2), Err(AccessError::BadWidth));
    assert_eq!(i.ioapic_mmio_read(0x11, 4), Err(AccessError::BadWidth));
    assert_eq!(i.ioapic_mmio_read(0x20, 4), Err(AccessError::Reserved));
    assert_eq!(i.ioapic_mmio_write(0x30, 4, 0), Err(AccessError::Reserved));
}

#[test]
fn edge_delivery_and_masking() {
    let mut i = irqs();
    route(&mut i, 2, 0x30, false);
    i.pulse(2);
    assert_eq!(i.pending_vector(), Some(0x30));
    i.acknowledge(0x30).unwrap();
    // Holding the line high is one edge.
    i.set_irq(2, true);
    i.set_irq(2, true);
    assert!(i.lapic.irr(0x30));
    i.acknowledge(0x30).unwrap();
    i.set_irq(2, false);
    eoi(&mut i);
    eoi(&mut i);
    // An edge while masked is lost.
    ind_write(&mut i, 0x14, 0x30 | (1 << 16));
    i.pulse(2);
    ind_write(&mut i, 0x14, 0x30);
    assert_eq!(i.pending_vector(), None);
    // Edge EOIs are not broadcast: nothing in remote IRR.
    i.pulse(2);
    i.acknowledge(0x30).unwrap();
    eoi(&mut i);
    assert_eq!(i.ioapic.entry(2).unwrap() & RTE_REMOTE_IRR, 0);
}

#[test]
fn level_delivery_waits_for_eoi() {
    let mut i = irqs();
    route(&mut i, 9, 0x39, true);
    i.set_irq(9, true);
    assert_eq!(i.pending_vector(), Some(0x39));
    assert!(i.lapic.tmr(0x39));
    assert_ne!(i.ioapic.entry(9).unwrap() & RTE_REMOTE_IRR, 0);
    assert_eq!(ind_read(&mut i, 0x10 + 18) & (1 << 14), 1 << 14);
    i.acknowledge(0x39).unwrap();
    // Still asserted: nothing new until EOI.
    i.set_irq(9, true);
    assert!(!i.lapic.irr(0x39));
    eoi(&mut i);
    assert!(i.lapic.irr(0x39), "re-delivered after EOI while asserted");
    i.acknowledge(0x39).unwrap();
    i.set_irq(9, false);
    eoi(&mut i);
    assert_eq!(i.pending_vector(), None);
    assert_eq!(i.ioapic.entry(9).unwrap() & RTE_REMOTE_IRR, 0);
}

#[test]
fn eoi_register_and_unmasking() {
    let mut i = irqs();
    // Asserted while masked: unmasking delivers.
    ind_write(&mut i, 0x10 + 20, 0x4A | (1 << 15) | (1 << 16));
    i.set_irq(10, true);
    assert_eq!(i.pending_vector(), None);
    ind_write(&mut i, 0x10 + 20, 0x4A | (1 << 15));
    assert_eq!(i.pending_vector(), Some(0x4A));
    i.acknowledge(0x4A).unwrap();
    // Linux's version-0x20 path: the EOI register (after the LAPIC EOI).
    i.lapic.eoi();
    i.ioapic_mmio_write(IOAPIC_EOI, 4, 0x4A).unwrap();
    assert!(i.lapic.irr(0x4A), "still asserted: delivered again");
    i.acknowledge(0x4A).unwrap();
    // Switching the entry to edge clears remote IRR.
    ind_write(&mut i, 0x10 + 20, 0x4A);
    assert_eq!(i.ioapic.entry(10).unwrap() & RTE_REMOTE_IRR, 0);
}

#[test]
fn destinations_and_delivery_modes() {
    let mut i = irqs();
    // Physical destination 1: not this LAPIC (ID 0); remote IRR stays clear.
    ind_write(&mut i, 0x11 + 2 * 5, 0x0100_0000);
    ind_write(&mut i, 0x10 + 2 * 5, 0x45 | (1 << 15));
    i.set_irq(5, true);
    assert_eq!(i.pending_vector(), None);
    assert_eq!(i.ioapic.entry(5).unwrap() & RTE_REMOTE_IRR, 0);
    // Broadcast.
    ind_write(&mut i, 0x11 + 2 * 5, 0xFF00_0000);
    assert_eq!(i.pending_vector(), Some(0x45));
    // Logical flat, LDR bit 0.
    i.lapic
        .mmio_write(0, u64::from(reg::LDR), 4, 0x0100_0000)
        .unwrap();
    ind_write(&mut i, 0x11 + 2 * 6, 0x0100_0000);
    ind_write(&mut i, 0x10 + 2 * 6, 0x46 | (1 << 11));
    i.pulse(6);
    assert!(i.lapic.irr(0x46));
    // NMI delivery.
    ind_write(&mut i, 0x10 + 2 * 7, 0x400);
    i.pulse(7);
    assert!(i.take_nmi());
    // ExtINT and SMI deliver nothing.
    ind_write(&mut i, 0x10 + 2 * 8, 0x748);
    i.pulse(8);
    ind_write(&mut i, 0x10 + 2 * 8, 0x248);
    i.pulse(8);
    assert!(!i.lapic.irr(0x48));
    // Pins beyond 23 do not exist.
    i.set_irq(24, true);
    i.set_irq(u32::MAX, true);
    assert_eq!(i.ioapic.entry(24), None);
}

#[test]
fn software_disabled_lapic_drops_without_remote_irr() {
    let mut lapic = Lapic::new(LapicConfig::default()).unwrap();
    lapic.mmio_write(0, u64::from(reg::SVR), 4, 0xFF).unwrap();
    let mut i = Interrupts::new(lapic, IoApic::new(0));
    route(&mut i, 3, 0x33, true);
    i.set_irq(3, true);
    assert_eq!(i.ioapic.entry(3).unwrap() & RTE_REMOTE_IRR, 0);
    i.lapic
        .mmio_write(0, u64::from(reg::SVR), 4, 0x1FF)
        .unwrap();
    // Re-writing the entry re-services the asserted line.
    route(&mut i, 3, 0x33, true);
    assert_eq!(i.pending_vector(), Some(0x33));
}
