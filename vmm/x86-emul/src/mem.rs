//! The two ways the emulator reaches the guest: its RAM (page tables and
//! instruction bytes) and the device behind the faulting address.

use core::fmt;

/// Guest RAM could not be read: no RAM backs part of the range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemError {
    /// The guest-physical address of the failed read.
    pub gpa: u64,
    /// Its length in bytes.
    pub len: usize,
}

impl fmt::Display for MemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no guest RAM at {:#x} ({} bytes) for a page-table or instruction read",
            self.gpa, self.len
        )
    }
}

/// Read access to guest-physical memory (RAM only; never a device).
pub trait GuestMemory {
    /// Fills `buf` from guest-physical address `gpa`, or fails if any byte
    /// of the range is not RAM.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError>;
}

impl<T: GuestMemory + ?Sized> GuestMemory for &T {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        (**self).read(gpa, buf)
    }
}

/// The width of a memory access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Size {
    /// One byte.
    B1 = 1,
    /// Two bytes.
    B2 = 2,
    /// Four bytes.
    B4 = 4,
    /// Eight bytes.
    B8 = 8,
}

impl Size {
    /// The width in bytes: 1, 2, 4 or 8.
    pub const fn bytes(self) -> u8 {
        self as u8
    }

    /// The width in bits: 8, 16, 32 or 64.
    pub const fn bits(self) -> u32 {
        match self {
            Size::B1 => 8,
            Size::B2 => 16,
            Size::B4 => 32,
            Size::B8 => 64,
        }
    }

    /// All-ones in the low [`Size::bits`] bits.
    pub const fn mask(self) -> u64 {
        match self {
            Size::B1 => 0xFF,
            Size::B2 => 0xFFFF,
            Size::B4 => 0xFFFF_FFFF,
            Size::B8 => u64::MAX,
        }
    }

    /// The most significant bit of a value of this width.
    pub const fn sign_bit(self) -> u64 {
        match self {
            Size::B1 => 0x80,
            Size::B2 => 0x8000,
            Size::B4 => 0x8000_0000,
            Size::B8 => 0x8000_0000_0000_0000,
        }
    }

    /// `value` truncated to this width and sign-extended to 64 bits.
    pub const fn sign_extend(self, value: u64) -> u64 {
        match self {
            Size::B1 => value as u8 as i8 as i64 as u64,
            Size::B2 => value as u16 as i16 as i64 as u64,
            Size::B4 => value as u32 as i32 as i64 as u64,
            Size::B8 => value,
        }
    }
}

/// A device access the [`Mmio`] implementation refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioError {
    /// No device answers at this guest-physical address.
    Unmapped {
        /// The address.
        gpa: u64,
    },
    /// A device is there but does not accept this access (width,
    /// alignment, direction).
    Refused {
        /// The address.
        gpa: u64,
        /// The access width.
        size: Size,
        /// Whether it was a write.
        write: bool,
    },
}

impl fmt::Display for MmioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MmioError::Unmapped { gpa } => write!(f, "no device at guest-physical {gpa:#x}"),
            MmioError::Refused { gpa, size, write } => write!(
                f,
                "device refused a {}-byte {} at guest-physical {gpa:#x}",
                size.bytes(),
                if *write { "write" } else { "read" }
            ),
        }
    }
}

/// The device side of an emulated access.
///
/// The emulator calls this only for the instruction's memory operand, at a
/// guest-physical address in the faulting page, never across a 4 KiB
/// boundary. A read-modify-write instruction (`OR`, `XCHG`, `BTS`, …)
/// makes one `read` and then one `write` of the same address and width;
/// `CMP`, `TEST` and `BT` make one `read`; `MOV` one `read` or one `write`.
pub trait Mmio {
    /// Reads `size` bytes at `gpa`. Bits above the width are ignored.
    fn read(&mut self, gpa: u64, size: Size) -> Result<u64, MmioError>;
    /// Writes the low `size` bytes of `value` (higher bits are zero) at `gpa`.
    fn write(&mut self, gpa: u64, size: Size, value: u64) -> Result<(), MmioError>;
}

impl<T: Mmio + ?Sized> Mmio for &mut T {
    fn read(&mut self, gpa: u64, size: Size) -> Result<u64, MmioError> {
        (**self).read(gpa, size)
    }
    fn write(&mut self, gpa: u64, size: Size, value: u64) -> Result<(), MmioError> {
        (**self).write(gpa, size, value)
    }
}
