//! Memory a device reads and writes (descriptor rings, packet buffers).
//!
//! A [`DmaRegion`] is page-aligned, zeroed heap memory, taken in whole pages
//! from the top of the heap (see [`crate::heap::Heap::allocate_pages`]), so a
//! region costs its size rounded up to 4 KiB, not to a power of two. The
//! runtime identity-maps
//! all RAM, so its guest-physical address — the one a device is given — equals
//! its address, and it lies below [`crate::IDENTITY_MAP_END`]. Access goes
//! through bounds-checked methods: volatile 64-bit words for descriptors the
//! device updates concurrently, and byte slices for buffers the driver owns at
//! the time (the driver's ring protocol decides when that is).
//!
//! Allocations are counted ([`stats`]) for the footprint report.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

/// Page size and alignment of every region.
pub const PAGE: usize = 4096;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// DMA memory in use now and at most, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaStats {
    /// Bytes in live regions.
    pub current: usize,
    /// Most bytes ever live at once.
    pub peak: usize,
}

/// Current and peak DMA memory.
pub fn stats() -> DmaStats {
    DmaStats {
        current: CURRENT.load(Ordering::Relaxed),
        peak: PEAK.load(Ordering::Relaxed),
    }
}

fn account_alloc(len: usize) {
    let now = CURRENT
        .fetch_add(len, Ordering::Relaxed)
        .saturating_add(len);
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn account_free(len: usize) {
    CURRENT.fetch_sub(len, Ordering::Relaxed);
}

/// The heap could not provide the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaError {
    /// Bytes asked for.
    pub len: usize,
}

impl core::fmt::Display for DmaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "cannot allocate {} bytes of DMA memory", self.len)
    }
}

/// Page-aligned, zeroed, device-visible memory.
#[derive(Debug)]
pub struct DmaRegion {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the region is plain memory owned by this value; nothing in it is tied
// to a thread.
unsafe impl Send for DmaRegion {}

impl DmaRegion {
    /// A zeroed region of at least `len` bytes (rounded up to whole pages).
    pub fn new(len: usize) -> Result<DmaRegion, DmaError> {
        let size = len
            .max(1)
            .checked_add(PAGE - 1)
            .map(|l| l & !(PAGE - 1))
            .ok_or(DmaError { len })?;
        let ptr = NonNull::new(crate::boot::allocate_pages(size)).ok_or(DmaError { len })?;
        // SAFETY: the run is `size` bytes of heap memory that is now ours.
        unsafe { core::ptr::write_bytes(ptr.as_ptr(), 0, size) };
        account_alloc(size);
        Ok(DmaRegion { ptr, len: size })
    }

    /// The address a device uses for byte 0 (identity mapping: its address).
    pub fn paddr(&self) -> u64 {
        self.ptr.as_ptr() as u64
    }

    /// Length in bytes (a multiple of [`PAGE`]).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty (never).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn in_bounds(&self, offset: usize, len: usize) -> bool {
        offset.checked_add(len).is_some_and(|end| end <= self.len)
    }

    /// Volatile read of the aligned 64-bit word at `offset`.
    pub fn read_u64(&self, offset: usize) -> Option<u64> {
        if !self.in_bounds(offset, 8) || !offset.is_multiple_of(8) {
            return None;
        }
        // SAFETY: in bounds and aligned (the region is page aligned); volatile,
        // because the device may write the word at any time.
        Some(unsafe { core::ptr::read_volatile(self.ptr.as_ptr().add(offset) as *const u64) })
    }

    /// Volatile write of the aligned 64-bit word at `offset`.
    pub fn write_u64(&mut self, offset: usize, value: u64) -> Option<()> {
        if !self.in_bounds(offset, 8) || !offset.is_multiple_of(8) {
            return None;
        }
        // SAFETY: as in `read_u64`.
        unsafe { core::ptr::write_volatile(self.ptr.as_ptr().add(offset) as *mut u64, value) };
        Some(())
    }

    /// The bytes `[offset, offset + len)`.
    ///
    /// Only meaningful while the device does not write them (the driver owns
    /// the buffer under its ring protocol).
    pub fn bytes(&self, offset: usize, len: usize) -> Option<&[u8]> {
        if !self.in_bounds(offset, len) {
            return None;
        }
        core::sync::atomic::fence(Ordering::Acquire);
        // SAFETY: in bounds of memory this value owns; the driver's protocol
        // keeps the device from writing the buffer while it is borrowed.
        Some(unsafe { core::slice::from_raw_parts(self.ptr.as_ptr().add(offset), len) })
    }

    /// The bytes `[offset, offset + len)`, writable.
    pub fn bytes_mut(&mut self, offset: usize, len: usize) -> Option<&mut [u8]> {
        if !self.in_bounds(offset, len) {
            return None;
        }
        // SAFETY: as in `bytes`, and `&mut self` makes the borrow unique.
        Some(unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr().add(offset), len) })
    }

    /// Gives up ownership: returns the address and length; the memory stays
    /// allocated (and counted) until [`DmaRegion::from_raw`] takes it back.
    pub fn into_raw(self) -> (NonNull<u8>, usize) {
        let me = core::mem::ManuallyDrop::new(self);
        (me.ptr, me.len)
    }

    /// Takes back a region from [`DmaRegion::into_raw`].
    ///
    /// # Safety
    ///
    /// `ptr` and `len` must come from `into_raw`, and the region must not be
    /// taken back twice.
    pub unsafe fn from_raw(ptr: NonNull<u8>, len: usize) -> DmaRegion {
        DmaRegion { ptr, len }
    }
}

impl Drop for DmaRegion {
    fn drop(&mut self) {
        // SAFETY: the run came from `allocate_pages` with this length and is
        // released once, here.
        unsafe { crate::boot::deallocate_pages(self.ptr.as_ptr(), self.len) };
        account_free(self.len);
    }
}
