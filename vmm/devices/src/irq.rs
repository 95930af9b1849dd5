//! The interrupt path: GSI lines → IOAPIC → LAPIC → the vCPU.
//!
//! [`Interrupts`] owns the IOAPIC and the LAPIC together, so a guest EOI to
//! the LAPIC reaches the IOAPIC (the level-triggered EOI broadcast) without
//! the caller threading one through the other. Device models that raise
//! interrupts drive it through the [`IrqLine`] trait.

use vcpu_policy::MsrEffect;

use crate::ioapic::IoApic;
use crate::lapic::{Lapic, NotPending, X2ApicError};
use crate::AccessError;

/// Something that interrupt lines can be driven into, by GSI number.
pub trait IrqLine {
    /// Sets line `gsi` asserted (`true`) or deasserted.
    fn set_irq(&mut self, gsi: u32, level: bool);

    /// One edge on line `gsi`: asserted, then deasserted.
    fn pulse(&mut self, gsi: u32) {
        self.set_irq(gsi, true);
        self.set_irq(gsi, false);
    }
}

/// The IOAPIC and the LAPIC it delivers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interrupts {
    /// The vCPU's local APIC.
    pub lapic: Lapic,
    /// The I/O APIC.
    pub ioapic: IoApic,
}

impl IrqLine for Interrupts {
    fn set_irq(&mut self, gsi: u32, level: bool) {
        self.ioapic.set_level(gsi, level, &mut self.lapic);
    }
}

impl Interrupts {
    /// Wires `ioapic` to `lapic`.
    pub fn new(lapic: Lapic, ioapic: IoApic) -> Self {
        Interrupts { lapic, ioapic }
    }

    /// Drives line `gsi` (see [`IrqLine::set_irq`]).
    pub fn set_irq(&mut self, gsi: u32, level: bool) {
        IrqLine::set_irq(self, gsi, level);
    }

    /// One edge on line `gsi` (see [`IrqLine::pulse`]).
    pub fn pulse(&mut self, gsi: u32) {
        IrqLine::pulse(self, gsi);
    }

    /// Guest read of the xAPIC page.
    pub fn lapic_mmio_read(&mut self, now: u64, offset: u64, size: u8) -> Result<u32, AccessError> {
        self.lapic.mmio_read(now, offset, size)
    }

    /// Guest write of the xAPIC page; a level-triggered EOI reaches the IOAPIC.
    pub fn lapic_mmio_write(
        &mut self,
        now: u64,
        offset: u64,
        size: u8,
        value: u32,
    ) -> Result<(), AccessError> {
        if let Some(vector) = self.lapic.mmio_write(now, offset, size, value)? {
            self.ioapic.eoi(vector, &mut self.lapic);
        }
        Ok(())
    }

    /// Guest RDMSR of an x2APIC register.
    pub fn x2apic_read(&mut self, now: u64, msr: u32) -> Result<u64, X2ApicError> {
        self.lapic.msr_read(now, msr)
    }

    /// Guest WRMSR of an x2APIC register; a level-triggered EOI reaches the
    /// IOAPIC.
    pub fn x2apic_write(&mut self, now: u64, msr: u32, value: u64) -> Result<(), X2ApicError> {
        if let Some(vector) = self.lapic.msr_write(now, msr, value)? {
            self.ioapic.eoi(vector, &mut self.lapic);
        }
        Ok(())
    }

    /// Guest read of the IOAPIC window.
    pub fn ioapic_mmio_read(&mut self, offset: u64, size: u8) -> Result<u32, AccessError> {
        self.ioapic.mmio_read(offset, size)
    }

    /// Guest write of the IOAPIC window.
    pub fn ioapic_mmio_write(
        &mut self,
        offset: u64,
        size: u8,
        value: u32,
    ) -> Result<(), AccessError> {
        self.ioapic.mmio_write(offset, size, value, &mut self.lapic)
    }

    /// See [`Lapic::apply_msr_effect`].
    pub fn apply_msr_effect(&mut self, now: u64, guest_tsc: u64, effect: MsrEffect) -> bool {
        self.lapic.apply_msr_effect(now, guest_tsc, effect)
    }

    /// Runs the LAPIC timer up to `now`.
    pub fn advance(&mut self, now: u64) {
        self.lapic.advance(now);
    }

    /// The LAPIC timer's next deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        self.lapic.next_deadline()
    }

    /// See [`Lapic::pending_vector`].
    pub fn pending_vector(&self) -> Option<u8> {
        self.lapic.pending_vector()
    }

    /// See [`Lapic::acknowledge`].
    pub fn acknowledge(&mut self, vector: u8) -> Result<(), NotPending> {
        self.lapic.acknowledge(vector)
    }

    /// See [`Lapic::take_nmi`].
    pub fn take_nmi(&mut self) -> bool {
        self.lapic.take_nmi()
    }
}
