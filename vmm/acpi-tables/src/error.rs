//! Why the ACPI tables could not be generated.

use core::fmt;

use pvh_loader::MemoryError;

/// Everything [`write_tables`](crate::write_tables) and
/// [`layout`](crate::layout) can reject; `Display` says what to change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcpiError {
    /// The base address is not 16-byte aligned (the RSDP must be, to be found by scanning).
    BaseMisaligned(u64),
    /// The tables need more room than `[base, limit)` gives.
    DoesNotFit {
        /// Bytes needed.
        need: u64,
        /// Bytes available.
        have: u64,
    },
    /// The tables would end beyond 4 GiB (FADT's 32-bit pointers must reach them).
    Above4GiB(u64),
    /// The tables would end beyond guest RAM.
    OutsideRam {
        /// End of the tables.
        end: u64,
        /// Guest RAM size.
        ram: u64,
    },
    /// The CPU count is 0 or above 255 (xAPIC IDs).
    BadCpuCount(u32),
    /// The S5 sleep type does not fit `SLP_TYP` (3 bits).
    BadSleepType(u8),
    /// The SCI is not an ISA IRQ (0–15).
    BadSciIrq(u8),
    /// An HPET with 0 or more than 32 comparators.
    BadHpetComparators(u8),
    /// The ECAM base is not 1 MiB aligned, or the ECAM window wraps.
    BadEcam(u64),
    /// A PCI memory window is empty or wraps (its base is given).
    BadPciWindow(u64),
    /// The DSDT's AML does not fit the encoder's buffer.
    DsdtTooLarge,
    /// Guest memory refused a write (after validation succeeded).
    Memory(MemoryError),
}

impl From<MemoryError> for AcpiError {
    fn from(e: MemoryError) -> Self {
        AcpiError::Memory(e)
    }
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use AcpiError::*;
        match *self {
            BaseMisaligned(b) => write!(
                f,
                "ACPI table base {b:#x} is not 16-byte aligned (the RSDP must be)"
            ),
            DoesNotFit { need, have } => write!(
                f,
                "ACPI tables need {need:#x} bytes but their area has only {have:#x}"
            ),
            Above4GiB(end) => write!(
                f,
                "ACPI tables would end at {end:#x}, above 4 GiB where 32-bit table pointers cannot reach"
            ),
            OutsideRam { end, ram } => write!(
                f,
                "ACPI tables would end at {end:#x}, beyond guest RAM ({ram:#x} bytes)"
            ),
            BadCpuCount(n) => write!(f, "ACPI MADT needs 1 to 255 CPUs, not {n}"),
            BadSleepType(t) => write!(f, "S5 sleep type {t} does not fit SLP_TYP (0 to 7)"),
            BadSciIrq(i) => write!(f, "SCI interrupt {i} is not an ISA IRQ (0 to 15)"),
            BadHpetComparators(n) => {
                write!(f, "an HPET has 1 to 32 comparators, not {n}")
            }
            BadEcam(b) => write!(
                f,
                "PCI ECAM base {b:#x} is not 1 MiB aligned or its window wraps"
            ),
            BadPciWindow(b) => write!(
                f,
                "PCI memory window at {b:#x} is empty or wraps around"
            ),
            DsdtTooLarge => write!(f, "the DSDT does not fit in the AML encoder's 4 KiB"),
            Memory(e) => write!(f, "{e}"),
        }
    }
}
