//! Device memory: validated, uncached mappings of MMIO ranges (BARs, ECAM,
//! the local APIC and IOAPICs).
//!
//! [`check_range`] is the policy, with host tests: a range must be non-empty,
//! must not wrap, must lie below [`MAX_PHYS`] (identity mapping needs a canonical
//! address) and must not overlap RAM or the image — a device that reports a BAR
//! on top of RAM does not get the runtime to treat RAM as registers.
//!
//! On the unikernel target, [`map`] applies it and makes the 2 MiB pages that
//! cover the range uncached (PCD|PWT), creating page tables from the heap for
//! addresses beyond the boot identity map. The result, [`Mmio`], bounds-checks
//! every access.

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

use crate::start_info::{MemmapEntry, MemoryType};

/// Highest physical address (exclusive) the runtime maps: the canonical lower
/// half of a 4-level page table, so virtual == physical stays valid.
pub const MAX_PHYS: u64 = 1 << 47;

/// Why a range cannot be mapped as device memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioError {
    /// Zero length.
    Empty,
    /// `paddr + len` wraps or passes [`MAX_PHYS`].
    OutOfRange(u64, u64),
    /// The range overlaps RAM (or the image).
    OverlapsRam(u64, u64),
    /// The page tables cover part of the range in a way the runtime does not
    /// change (a 4 KiB-split or 1 GiB page, or a non-identity entry).
    Conflict(u64),
    /// No memory for a page table.
    NoMemory,
}

impl core::fmt::Display for MmioError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            MmioError::Empty => f.write_str("empty MMIO range"),
            MmioError::OutOfRange(a, l) => {
                write!(f, "MMIO range {a:#x}+{l:#x} is outside the mappable space")
            }
            MmioError::OverlapsRam(a, l) => write!(f, "MMIO range {a:#x}+{l:#x} overlaps RAM"),
            MmioError::Conflict(a) => write!(f, "cannot remap {a:#x} as device memory"),
            MmioError::NoMemory => f.write_str("no memory for page tables"),
        }
    }
}

/// Checks `[paddr, paddr + len)` against the memory map and the image range
/// `[image.0, image.1)`; returns the end address.
pub fn check_range(
    memmap: &[MemmapEntry],
    image: (u64, u64),
    paddr: u64,
    len: u64,
) -> Result<u64, MmioError> {
    if len == 0 {
        return Err(MmioError::Empty);
    }
    let end = paddr
        .checked_add(len)
        .filter(|&e| e <= MAX_PHYS)
        .ok_or(MmioError::OutOfRange(paddr, len))?;
    let overlaps = |s: u64, e: u64| paddr < e && s < end;
    let ram = memmap
        .iter()
        .filter(|m| m.kind == MemoryType::Ram)
        .any(|m| overlaps(m.addr, m.end()));
    if ram || overlaps(image.0, image.1) {
        return Err(MmioError::OverlapsRam(paddr, len));
    }
    Ok(end)
}

#[cfg(target_os = "none")]
pub use hw::{map, Mmio};

#[cfg(target_os = "none")]
mod hw {
    use super::{check_range, MmioError};
    use core::alloc::Layout;
    use x86_64::registers::control::Cr3;
    use x86_64::structures::paging::{PageTable, PageTableFlags as F};
    use x86_64::PhysAddr;

    const PAGE_2M: u64 = 2 << 20;

    /// Serialises page-table edits.
    static MAP_LOCK: spin::Mutex<()> = spin::Mutex::new(());

    /// An uncached, identity-mapped MMIO range. Accesses outside it, or not
    /// naturally aligned, read all-ones and drop writes (like a master abort).
    #[derive(Debug)]
    pub struct Mmio {
        base: u64,
        len: u64,
    }

    impl Mmio {
        /// Guest-physical (and virtual) base.
        pub fn base(&self) -> u64 {
            self.base
        }

        /// Length in bytes.
        pub fn len(&self) -> u64 {
            self.len
        }

        /// Whether the range is empty (never, for a mapped range).
        pub fn is_empty(&self) -> bool {
            self.len == 0
        }

        fn addr(&self, offset: u64, size: u64) -> Option<u64> {
            let end = offset.checked_add(size)?;
            (end <= self.len && offset.is_multiple_of(size)).then(|| self.base.wrapping_add(offset))
        }

        /// Reads the 32-bit register at `offset`.
        pub fn read32(&self, offset: u64) -> u32 {
            match self.addr(offset, 4) {
                // SAFETY: `map` made [base, base+len) an uncached identity mapping
                // of device memory (not RAM); the access is inside it and aligned.
                Some(a) => unsafe { core::ptr::read_volatile(a as *const u32) },
                None => u32::MAX,
            }
        }

        /// Writes the 32-bit register at `offset`.
        pub fn write32(&self, offset: u64, value: u32) {
            if let Some(a) = self.addr(offset, 4) {
                // SAFETY: as in `read32`.
                unsafe { core::ptr::write_volatile(a as *mut u32, value) }
            }
        }

        /// Reads the 16-bit register at `offset`.
        pub fn read16(&self, offset: u64) -> u16 {
            match self.addr(offset, 2) {
                // SAFETY: as in `read32`.
                Some(a) => unsafe { core::ptr::read_volatile(a as *const u16) },
                None => u16::MAX,
            }
        }

        /// Writes the 16-bit register at `offset`.
        pub fn write16(&self, offset: u64, value: u16) {
            if let Some(a) = self.addr(offset, 2) {
                // SAFETY: as in `read32`.
                unsafe { core::ptr::write_volatile(a as *mut u16, value) }
            }
        }

        /// Reads the 8-bit register at `offset`.
        pub fn read8(&self, offset: u64) -> u8 {
            match self.addr(offset, 1) {
                // SAFETY: as in `read32`.
                Some(a) => unsafe { core::ptr::read_volatile(a as *const u8) },
                None => u8::MAX,
            }
        }

        /// Writes the 8-bit register at `offset`.
        pub fn write8(&self, offset: u64, value: u8) {
            if let Some(a) = self.addr(offset, 1) {
                // SAFETY: as in `read32`.
                unsafe { core::ptr::write_volatile(a as *mut u8, value) }
            }
        }
    }

    /// The table an entry points to, allocating a zeroed one if it is empty.
    ///
    /// # Safety
    ///
    /// `entry` must belong to a live, identity-mapped page table, and the caller
    /// must hold `MAP_LOCK`.
    unsafe fn next_table(
        entry: &mut x86_64::structures::paging::page_table::PageTableEntry,
        at: u64,
    ) -> Result<&'static mut PageTable, MmioError> {
        if entry.is_unused() {
            let layout = Layout::new::<PageTable>();
            // SAFETY: the layout has a non-zero size.
            let table = unsafe { alloc::alloc::alloc_zeroed(layout) };
            if table.is_null() {
                return Err(MmioError::NoMemory);
            }
            entry.set_addr(
                PhysAddr::new_truncate(table as u64),
                F::PRESENT | F::WRITABLE,
            );
        } else if entry.flags().contains(F::HUGE_PAGE) {
            return Err(MmioError::Conflict(at));
        }
        // SAFETY: the entry is present and not huge, so it points to a page table;
        // all memory is identity mapped, so its physical address is its address.
        Ok(unsafe { &mut *(entry.addr().as_u64() as *mut PageTable) })
    }

    /// Maps `[paddr, paddr + len)` as uncached device memory (identity), after
    /// [`check_range`] against the boot memory map and the image.
    pub fn map(paddr: u64, len: u64) -> Result<Mmio, MmioError> {
        let memmap = crate::boot_info().map_or(&[][..], |b| b.memmap());
        let end = check_range(memmap, crate::image_range(), paddr, len)?;
        let _guard = MAP_LOCK.lock();
        let (pml4_frame, flags) = Cr3::read();
        let mut page = paddr & !(PAGE_2M - 1);
        let mut changed = false;
        while page < end {
            // SAFETY: CR3 holds the live PML4, identity mapped; MAP_LOCK is held
            // and interrupts never edit page tables.
            let pml4 = unsafe { &mut *(pml4_frame.start_address().as_u64() as *mut PageTable) };
            let idx = |shift: u32| ((page >> shift) & 511) as usize;
            // SAFETY: as above, for each level.
            let pdpt = unsafe { next_table(&mut pml4[idx(39)], page)? };
            // SAFETY: as above.
            let pd = unsafe { next_table(&mut pdpt[idx(30)], page)? };
            let pde = &mut pd[idx(21)];
            let uc = F::NO_CACHE | F::WRITE_THROUGH;
            if pde.is_unused() {
                pde.set_addr(
                    PhysAddr::new_truncate(page),
                    F::PRESENT | F::WRITABLE | F::HUGE_PAGE | uc,
                );
                changed = true;
            } else if !pde.flags().contains(F::HUGE_PAGE) || pde.addr().as_u64() != page {
                return Err(MmioError::Conflict(page));
            } else if !pde.flags().contains(uc) {
                let f = pde.flags() | uc;
                pde.set_flags(f);
                changed = true;
            }
            page = page.saturating_add(PAGE_2M);
        }
        if changed {
            // SAFETY: reloading the same PML4 only flushes stale translations.
            unsafe { Cr3::write(pml4_frame, flags) };
        }
        Ok(Mmio { base: paddr, len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(addr: u64, size: u64, kind: MemoryType) -> MemmapEntry {
        MemmapEntry { addr, size, kind }
    }

    #[test]
    fn ranges() {
        let map = [
            e(0, 0x9_fc00, MemoryType::Ram),
            e(0xf_0000, 0x1_0000, MemoryType::Reserved),
            e(0x10_0000, 0x7ee_0000, MemoryType::Ram),
            e(0xb000_0000, 0x1000_0000, MemoryType::Reserved),
        ];
        let image = (0x10_0000, 0x20_0000);
        assert_eq!(
            check_range(&map, image, 0xfebc_0000, 0x2_0000),
            Ok(0xfebe_0000)
        );
        // Reserved (ECAM) is fine, RAM is not.
        assert!(check_range(&map, image, 0xb000_0000, 0x100_0000).is_ok());
        assert_eq!(
            check_range(&map, image, 0x7fd_f000, 0x2000),
            Err(MmioError::OverlapsRam(0x7fd_f000, 0x2000))
        );
        assert!(check_range(&map, image, 0x9_f000, 0x1000).is_err());
        // Image (even if the map forgot it).
        assert!(check_range(&[], image, 0x1f_f000, 0x1000).is_err());
        assert_eq!(check_range(&map, image, 0x1000, 0), Err(MmioError::Empty));
        assert!(matches!(
            check_range(&map, image, u64::MAX - 10, 0x100),
            Err(MmioError::OutOfRange(..))
        ));
        assert!(check_range(&map, image, MAX_PHYS - 0x1000, 0x1000).is_ok());
        assert!(check_range(&map, image, MAX_PHYS - 0x1000, 0x2000).is_err());
    }
}
