//! The guest-physical window where Xen's pages appear: frames outside RAM
//! that the guest names in `XENMEM_add_to_physmap` and `map_grant_ref`.
//!
//! The runtime identity-maps (write-back) everything below 3 GiB, so a page
//! the hypervisor puts there is usable at its guest-physical address as
//! soon as the hypercall returns. Touching a window frame nothing is mapped
//! at stops the VM, so the runtime only does so after the call succeeded.
//!
//! Layout, from the base (normally [`DEFAULT_BASE`], 2 GiB):
//!
//! | offset | pages | what |
//! | ------ | ----- | ---- |
//! | 0 | 1 | `shared_info` |
//! | 4 KiB | [`MAX_GRANT_FRAMES`] | grant-table frames 0.. |
//! | 1 MiB | [`MAP_SLOTS`] | peers' pages mapped through grants |
//!
//! [`plan`] moves the base up (in 2 MiB steps) past any memory-map entry,
//! the image and the store ring, and gives up if the window would reach the
//! MMIO window at 3 GiB.

use crate::start_info::MemmapEntry;

/// Where the window goes when nothing is there.
pub const DEFAULT_BASE: u64 = 0x8000_0000;
/// The window must end at or below this (the uncached MMIO window).
pub const LIMIT: u64 = crate::MMIO_WINDOW.0;
/// Grant-table frames the window has room for (512 entries each).
pub const MAX_GRANT_FRAMES: u32 = 64;
/// Offset of the first grant-mapping frame.
pub const MAP_OFFSET: u64 = 0x10_0000;
/// Frames for mapping peers' grants (16 MiB).
pub const MAP_SLOTS: u32 = 4096;
/// Bytes the window spans.
pub const LEN: u64 = MAP_OFFSET + MAP_SLOTS as u64 * 4096;
/// Alignment of the base.
const ALIGN: u64 = 2 << 20;

/// The window's frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Guest-physical base address.
    pub base: u64,
}

impl Window {
    /// Where `shared_info` goes.
    pub fn shared_info(&self) -> u64 {
        self.base
    }

    /// Where grant-table frame `i` goes.
    pub fn grant_frame(&self, i: u32) -> u64 {
        self.base + 4096 * (1 + u64::from(i))
    }

    /// The first grant-mapping frame.
    pub fn map_base(&self) -> u64 {
        self.base + MAP_OFFSET
    }

    /// Whether `[addr, addr + len)` meets the window.
    pub fn overlaps(&self, addr: u64, len: u64) -> bool {
        addr < self.base + LEN && self.base < addr.saturating_add(len)
    }
}

/// Finds the window: the lowest 2 MiB-aligned base from [`DEFAULT_BASE`]
/// where it meets no memory-map entry (of any type) and none of `avoid`
/// (`(addr, len)` ranges), below [`LIMIT`].
pub fn plan(memmap: &[MemmapEntry], avoid: &[(u64, u64)]) -> Option<Window> {
    let mut base = DEFAULT_BASE;
    loop {
        let end = base.checked_add(LEN)?;
        if end > LIMIT {
            return None;
        }
        let w = Window { base };
        let blocker = memmap
            .iter()
            .filter(|m| m.size != 0)
            .map(|m| (m.addr, m.size))
            .chain(avoid.iter().copied().filter(|r| r.1 != 0))
            .filter(|&(a, l)| w.overlaps(a, l))
            .map(|(a, l)| a.saturating_add(l))
            .max();
        match blocker {
            None => return Some(w),
            Some(b) => base = b.checked_add(ALIGN - 1)? & !(ALIGN - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::start_info::{ram, MemoryType};

    #[test]
    fn default_window_above_small_ram() {
        let map = [ram(0, 0x9f000), ram(0x10_0000, 64 << 20)];
        let w = plan(&map, &[(0x3ff_f000, 4096)]).unwrap();
        assert_eq!(w.base, 0x8000_0000);
        assert_eq!(w.shared_info(), 0x8000_0000);
        assert_eq!(w.grant_frame(0), 0x8000_1000);
        assert_eq!(w.grant_frame(MAX_GRANT_FRAMES - 1), 0x8004_0000);
        assert!(w.grant_frame(MAX_GRANT_FRAMES - 1) < w.map_base());
        assert_eq!(w.map_base(), 0x8010_0000);
        assert_eq!(LEN, 0x110_0000);
        assert!(w.overlaps(0x8000_0fff, 1) && !w.overlaps(0x7fff_f000, 4096));
        assert!(!w.overlaps(0x8110_0000, 1) && w.overlaps(0x810f_ffff, 1));
    }

    #[test]
    fn moves_past_ram_and_reserved_ranges() {
        let mut reserved = ram(0x8000_0000, 0x1234);
        reserved.kind = MemoryType::Reserved;
        let map = [ram(0x10_0000, 0x7ff0_0000 + 0x30_0000), reserved];
        let w = plan(&map, &[]).unwrap();
        assert_eq!(w.base, 0x8040_0000);
        // The store page in the way.
        let w = plan(&map, &[(0x8050_0000, 4096)]).unwrap();
        assert_eq!(w.base, 0x8060_0000);
        // RAM up to the MMIO window: no room.
        assert_eq!(plan(&[ram(0, 0xc000_0000)], &[]), None);
        assert_eq!(plan(&[ram(0, 0xbf00_0000)], &[]), None);
        assert!(plan(&[ram(0, 0xbe00_0000)], &[]).is_some());
        // Empty entries and ranges are ignored; overflow gives up.
        assert_eq!(
            plan(&[ram(0x8000_0000, 0)], &[(0x8000_0000, 0)])
                .unwrap()
                .base,
            0x8000_0000
        );
        assert_eq!(plan(&[], &[(0x8000_0000, u64::MAX)]), None);
    }
}
