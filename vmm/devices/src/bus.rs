//! Address decoding: which device answers a port or a guest-physical address.
//!
//! [`PortBus`] and [`MmioBus`] are fixed-capacity tables of non-overlapping
//! ranges, each naming a device with a caller-chosen `Copy` id (an enum, a
//! slot index). [`route`](PortBus::route) finds the range holding the first
//! byte of an access and returns the id and the offset into the range; no
//! range means the access is unassigned. Deciding what a multi-byte access
//! that runs past the end of its range means is left to the caller
//! ([`Platform`](crate::Platform) splits byte-wide devices' accesses).

use core::fmt;

/// Why a range could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusError {
    /// The range is empty.
    Empty,
    /// The range runs past the end of the address space.
    Wraps,
    /// The range overlaps one already on the bus.
    Overlap,
    /// The bus has no free slot.
    Full,
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BusError::Empty => "empty range",
            BusError::Wraps => "range runs past the end of the address space",
            BusError::Overlap => "range overlaps another device",
            BusError::Full => "bus table full",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range<T> {
    base: u64,
    /// Last address in the range (inclusive), so ranges may end at `u64::MAX`.
    last: u64,
    id: T,
}

/// The shared table behind both buses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Table<T: Copy, const N: usize> {
    ranges: [Option<Range<T>>; N],
    limit: u64,
}

impl<T: Copy, const N: usize> Table<T, N> {
    const fn new(limit: u64) -> Self {
        Table {
            ranges: [None; N],
            limit,
        }
    }

    fn insert(&mut self, base: u64, len: u64, id: T) -> Result<(), BusError> {
        let span = len.checked_sub(1).ok_or(BusError::Empty)?;
        let last = base.checked_add(span).ok_or(BusError::Wraps)?;
        if last > self.limit {
            return Err(BusError::Wraps);
        }
        if self
            .ranges
            .iter()
            .flatten()
            .any(|r| base <= r.last && r.base <= last)
        {
            return Err(BusError::Overlap);
        }
        let slot = self
            .ranges
            .iter_mut()
            .find(|r| r.is_none())
            .ok_or(BusError::Full)?;
        *slot = Some(Range { base, last, id });
        Ok(())
    }

    fn remove(&mut self, base: u64) -> Option<T> {
        let slot = self
            .ranges
            .iter_mut()
            .find(|r| matches!(r, Some(r) if r.base == base))?;
        slot.take().map(|r| r.id)
    }

    fn route(&self, addr: u64) -> Option<(T, u64)> {
        self.ranges
            .iter()
            .flatten()
            .find(|r| r.base <= addr && addr <= r.last)
            .map(|r| (r.id, addr.wrapping_sub(r.base)))
    }

    fn len(&self) -> usize {
        self.ranges.iter().flatten().count()
    }
}

/// I/O port decoding: up to `N` ranges of the 64 KiB port space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortBus<T: Copy, const N: usize> {
    table: Table<T, N>,
}

impl<T: Copy, const N: usize> Default for PortBus<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy, const N: usize> PortBus<T, N> {
    /// An empty bus.
    pub const fn new() -> Self {
        PortBus {
            table: Table::new(0xFFFF),
        }
    }

    /// Adds ports `base .. base + len` for device `id`.
    pub fn insert(&mut self, base: u16, len: u16, id: T) -> Result<(), BusError> {
        self.table.insert(u64::from(base), u64::from(len), id)
    }

    /// Removes the range starting at `base`; returns its device.
    pub fn remove(&mut self, base: u16) -> Option<T> {
        self.table.remove(u64::from(base))
    }

    /// The device decoding `port`, and the offset of `port` in its range.
    pub fn route(&self, port: u16) -> Option<(T, u16)> {
        self.table
            .route(u64::from(port))
            .map(|(id, off)| (id, u16::try_from(off).unwrap_or(u16::MAX)))
    }

    /// How many ranges are on the bus.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the bus has no ranges.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Guest-physical MMIO decoding: up to `N` ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioBus<T: Copy, const N: usize> {
    table: Table<T, N>,
}

impl<T: Copy, const N: usize> Default for MmioBus<T, N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Copy, const N: usize> MmioBus<T, N> {
    /// An empty bus.
    pub const fn new() -> Self {
        MmioBus {
            table: Table::new(u64::MAX),
        }
    }

    /// Adds addresses `base .. base + len` for device `id`.
    pub fn insert(&mut self, base: u64, len: u64, id: T) -> Result<(), BusError> {
        self.table.insert(base, len, id)
    }

    /// Removes the range starting at `base`; returns its device.
    pub fn remove(&mut self, base: u64) -> Option<T> {
        self.table.remove(base)
    }

    /// The device decoding `gpa`, and the offset of `gpa` in its range.
    pub fn route(&self, gpa: u64) -> Option<(T, u64)> {
        self.table.route(gpa)
    }

    /// How many ranges are on the bus.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether the bus has no ranges.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
