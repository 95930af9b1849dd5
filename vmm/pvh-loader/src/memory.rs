//! The guest-RAM interface the loader writes through.

use core::fmt;

/// A write that fell outside guest RAM (or that the backing store refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryError {
    /// Guest-physical address of the refused access.
    pub gpa: u64,
    /// Length of the refused access in bytes.
    pub len: u64,
}

impl fmt::Display for MemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "guest memory access at {:#x} +{:#x} is outside guest RAM",
            self.gpa, self.len
        )
    }
}

/// Guest RAM as the loader sees it: a flat guest-physical range `[0, size())`.
///
/// The seL4 root task implements this over its mapping of the guest's RAM
/// frames; [`SliceMemory`] implements it over a byte slice (tests, tools).
pub trait GuestMemory {
    /// Copies `data` to guest-physical address `gpa`.
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemoryError>;
    /// Sets `len` bytes starting at `gpa` to `byte`.
    fn fill(&mut self, gpa: u64, len: u64, byte: u8) -> Result<(), MemoryError>;
    /// Size of guest RAM in bytes; RAM spans guest-physical `[0, size)`.
    fn size(&self) -> u64;
}

/// [`GuestMemory`] over a mutable byte slice: byte `i` is guest-physical `i`.
#[derive(Debug)]
pub struct SliceMemory<'a> {
    ram: &'a mut [u8],
}

impl<'a> SliceMemory<'a> {
    /// Wraps `ram` as guest RAM starting at guest-physical 0.
    pub fn new(ram: &'a mut [u8]) -> Self {
        Self { ram }
    }

    /// The whole of guest RAM, for inspection.
    pub fn as_slice(&self) -> &[u8] {
        self.ram
    }

    fn range(&mut self, gpa: u64, len: u64) -> Result<&mut [u8], MemoryError> {
        let err = MemoryError { gpa, len };
        let start = usize::try_from(gpa).map_err(|_| err)?;
        let n = usize::try_from(len).map_err(|_| err)?;
        let end = start.checked_add(n).ok_or(err)?;
        self.ram.get_mut(start..end).ok_or(err)
    }
}

impl GuestMemory for SliceMemory<'_> {
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemoryError> {
        let len = u64::try_from(data.len()).map_err(|_| MemoryError { gpa, len: u64::MAX })?;
        let dst = self.range(gpa, len)?;
        // `range` returned exactly `data.len()` bytes.
        dst.copy_from_slice(data);
        Ok(())
    }

    fn fill(&mut self, gpa: u64, len: u64, byte: u8) -> Result<(), MemoryError> {
        self.range(gpa, len)?.fill(byte);
        Ok(())
    }

    fn size(&self) -> u64 {
        u64::try_from(self.ram.len()).unwrap_or(u64::MAX)
    }
}
