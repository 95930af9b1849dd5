//! cloister's emulated PC platform for Linux guests.
//!
//! DESIGN.md's platform, minus the 16550 (crate `uart16550`) and virtio:
//!
//! | model | where | module |
//! |-------|-------|--------|
//! | local APIC, xAPIC and x2APIC, with its timer | MMIO 0xFEE0_0000 (4 KiB), MSRs 0x800–0x8FF | [`lapic`] |
//! | one IOAPIC, 24 pins, version 0x20 | MMIO 0xFEC0_0000 (4 KiB) | [`ioapic`] |
//! | 8254 PIT, NMI status/control port 0x61 | ports 0x40–0x43, 0x61 | [`pit`] |
//! | MC146818 RTC and 128 bytes of CMOS | ports 0x70–0x71 | [`rtc`] |
//! | two 8259A PICs (masked: they never interrupt), ELCR | ports 0x20–0x21, 0xA0–0xA1, 0x4D0–0x4D1 | [`pic`] |
//! | PCI host bridge (Intel 440FX IDs), config mechanism #1 | ports 0xCF8, 0xCFA–0xCFF | [`pci`] |
//! | ACPI PM1a event/control, PM timer, reset control | ports 0x600–0x60B, 0xCF9 (configurable) | [`pm`] |
//! | POST code sink | port 0x80 | [`platform`] |
//!
//! [`Platform`] owns one of each, wires their interrupt outputs
//! (PIT → GSI 2, RTC → GSI 8, SCI → GSI 9 by default) through the
//! [`Interrupts`] pair (IOAPIC → LAPIC), and routes guest port, MMIO and
//! x2APIC MSR accesses to them through a [`PortBus`] and an [`MmioBus`].
//! Accesses nobody decodes come back as [`AccessError::Unassigned`], so the
//! VMM can log them as misdeeds.
//!
//! # Time
//!
//! No model reads a clock. Every call that can observe time takes `now: u64`,
//! **nanoseconds** of one monotonic clock that the VMM chooses (host TSC
//! scaled by its calibrated frequency, say) and that only moves forward; a
//! `now` smaller than an earlier one is treated as no time passing. Each
//! time-driven model reports `next_deadline() -> Option<u64>` in the same
//! nanoseconds: the VMM arms a host timer for the earliest one and calls
//! [`Platform::advance`] when it expires (and before injecting interrupts).
//! The only other unit is the guest TSC, used by the LAPIC's TSC-deadline
//! mode: the guest writes IA32_TSC_DEADLINE in TSC ticks, and the VMM passes
//! that value with the guest TSC at `now` ([`Lapic::set_tsc_deadline`]); the
//! LAPIC converts with [`LapicConfig::tsc_hz`].
//!
//! # Interrupt flow
//!
//! Devices drive GSIs with [`Interrupts::set_irq`] (level) or
//! [`Interrupts::pulse`] (an edge). The IOAPIC turns unmasked lines into
//! fixed interrupts for the LAPIC (edge, or level with remote IRR). The VMM
//! asks [`Lapic::pending_vector`] (highest IRR vector whose priority class
//! beats the PPR) when the guest can take an interrupt, injects it, and calls
//! [`Lapic::acknowledge`] (IRR → ISR). The guest's EOI clears the ISR bit; for
//! a level-triggered vector it is broadcast to the IOAPIC, which clears remote
//! IRR and re-delivers a line that is still asserted.
//!
//! Nothing here panics on guest input: all guest-controlled arithmetic is
//! checked or saturating, and register files are read with `get`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
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

pub mod bus;
pub mod ioapic;
pub mod irq;
pub mod lapic;
pub mod pci;
pub mod pic;
pub mod pit;
pub mod platform;
pub mod pm;
pub mod rtc;
pub mod time;

#[cfg(test)]
mod tests;

use core::fmt;

pub use bus::{BusError, MmioBus, PortBus};
pub use ioapic::IoApic;
pub use irq::{Interrupts, IrqLine};
pub use lapic::{Lapic, LapicConfig, X2ApicError};
pub use pci::{Bdf, NoPciDevices, PciDevices, PciHost};
pub use pic::Pic;
pub use pit::Pit;
pub use platform::{Platform, PlatformConfig};
pub use pm::{AcpiPm, PmConfig, PowerRequest};
pub use rtc::{Rtc, RtcConfig};
/// The MSR policy's types the LAPIC accepts, re-exported for callers.
pub use vcpu_policy::{ApicMode, MsrEffect};

/// Why a guest port or MMIO access was not carried out as asked.
///
/// On any error the VMM completes the access the way a PC bus would: a read
/// returns all ones (for the access width), a write is dropped. Every variant
/// is worth a log line; [`Unassigned`](Self::Unassigned) is the one the VMM
/// counts as a misdeed of the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessError {
    /// No device decodes this port or address.
    Unassigned,
    /// A device is there, but not for an access of this width or alignment.
    BadWidth,
    /// The device has no register at this offset.
    Reserved,
    /// A write to a read-only register; it was ignored.
    ReadOnly,
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AccessError::Unassigned => "no device at this port or address",
            AccessError::BadWidth => "access width or alignment not supported by the register",
            AccessError::Reserved => "no register at this offset",
            AccessError::ReadOnly => "write to a read-only register ignored",
        })
    }
}

/// A platform configuration that cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// The LAPIC timer's bus frequency is zero.
    ZeroBusFrequency,
    /// TSC-deadline mode is enabled but the TSC frequency is zero.
    ZeroTscFrequency,
    /// Two devices claim the same port (the first port of the later one).
    PortOverlap(u16),
    /// Two devices claim the same MMIO address (the base of the later one).
    MmioOverlap(u64),
    /// An interrupt output is wired to a GSI the IOAPIC does not have.
    BadGsi(u32),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::ZeroBusFrequency => f.write_str("LAPIC bus frequency is zero"),
            ConfigError::ZeroTscFrequency => {
                f.write_str("TSC-deadline mode needs a non-zero TSC frequency")
            }
            ConfigError::PortOverlap(p) => write!(f, "port {p:#x} claimed by two devices"),
            ConfigError::MmioOverlap(a) => write!(f, "MMIO address {a:#x} claimed by two devices"),
            ConfigError::BadGsi(g) => write!(f, "GSI {g} is not an IOAPIC pin"),
        }
    }
}

/// All ones for an access of `size` bytes (1, 2, 4 or 8): what a read of
/// nothing returns.
pub const fn all_ones(size: u8) -> u64 {
    match size {
        1 => 0xFF,
        2 => 0xFFFF,
        4 => 0xFFFF_FFFF,
        _ => u64::MAX,
    }
}
