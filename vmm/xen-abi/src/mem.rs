//! What the VMM provides: guest memory, shared pages and second-level mappings.
//!
//! This crate never touches memory itself. Three seams:
//!
//! * [`GuestMem`]: the *calling* vCPU's view, by **linear** (guest-virtual)
//!   address. Xen HVM guests pass pointers as they use them, so hypercall
//!   argument pointers are linear addresses; the VMM walks the guest's page
//!   tables (CR3, paging mode, the access's privilege) and its EPT.
//! * [`SharedPage`]: one 4 KiB page that a guest may be writing concurrently
//!   (shared_info, a grant-table frame, a granted RAM frame). Every method
//!   is **one atomic access** on the real page: bit operations are locked
//!   read-modify-writes (`lock or/and` on the byte), [`SharedPage::cmpxchg_u32`]
//!   is `lock cmpxchg`. The implementation for byte arrays here does them as
//!   plain read-check-write, which is only correct when nothing else runs.
//! * [`Platform`]: cross-domain services by domain id and **guest-physical**
//!   frame number: find a domain's pages, and change its EPT.

use crate::abi::{DomId, GrantRef, PAGE_SIZE};

/// A guest memory access failed (unmapped, not present, not permitted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemFault;

/// The calling vCPU's memory, addressed linearly.
pub trait GuestMem {
    /// Reads `buf.len()` bytes at linear address `gla` of the calling vCPU.
    fn read(&mut self, gla: u64, buf: &mut [u8]) -> Result<(), MemFault>;
    /// Writes `buf` at linear address `gla` of the calling vCPU.
    fn write(&mut self, gla: u64, buf: &[u8]) -> Result<(), MemFault>;
}

/// A 4 KiB page shared with a guest; offsets are bytes from its start.
///
/// Each method returns `None` when the access falls outside the page.
pub trait SharedPage {
    /// Copies bytes out of the page.
    fn read(&self, offset: usize, buf: &mut [u8]) -> Option<()>;
    /// Copies bytes into the page.
    fn write(&mut self, offset: usize, buf: &[u8]) -> Option<()>;
    /// Atomically sets bit `bit` (0–7) of the byte at `offset`; returns its old value.
    fn test_and_set_bit(&mut self, offset: usize, bit: u8) -> Option<bool>;
    /// Atomically clears bit `bit` (0–7) of the byte at `offset`; returns its old value.
    fn test_and_clear_bit(&mut self, offset: usize, bit: u8) -> Option<bool>;
    /// Atomically replaces the little-endian u32 at `offset` (4-aligned) with
    /// `new` if it equals `old`; returns the value found (== `old` on success).
    fn cmpxchg_u32(&mut self, offset: usize, old: u32, new: u32) -> Option<u32>;

    /// Reads bit `bit` of the byte at `offset`.
    fn test_bit(&self, offset: usize, bit: u8) -> Option<bool> {
        let mut b = [0u8];
        self.read(offset, &mut b)?;
        Some(b[0] & 1u8.checked_shl(u32::from(bit))? != 0)
    }
    /// Reads the little-endian u32 at `offset` in one access.
    fn load_u32(&self, offset: usize) -> Option<u32> {
        let mut b = [0u8; 4];
        self.read(offset, &mut b)?;
        Some(u32::from_le_bytes(b))
    }
}

fn bit_mask(bit: u8) -> Option<u8> {
    1u8.checked_shl(u32::from(bit))
}

/// The model implementation: a plain byte slice (tests, fuzzing, and any
/// page no guest can touch while the call runs).
impl SharedPage for [u8] {
    fn read(&self, offset: usize, buf: &mut [u8]) -> Option<()> {
        let end = offset.checked_add(buf.len())?;
        buf.copy_from_slice(self.get(offset..end)?);
        Some(())
    }
    fn write(&mut self, offset: usize, buf: &[u8]) -> Option<()> {
        let end = offset.checked_add(buf.len())?;
        self.get_mut(offset..end)?.copy_from_slice(buf);
        Some(())
    }
    fn test_and_set_bit(&mut self, offset: usize, bit: u8) -> Option<bool> {
        let m = bit_mask(bit)?;
        let b = self.get_mut(offset)?;
        let old = *b & m != 0;
        *b |= m;
        Some(old)
    }
    fn test_and_clear_bit(&mut self, offset: usize, bit: u8) -> Option<bool> {
        let m = bit_mask(bit)?;
        let b = self.get_mut(offset)?;
        let old = *b & m != 0;
        *b &= !m;
        Some(old)
    }
    fn cmpxchg_u32(&mut self, offset: usize, old: u32, new: u32) -> Option<u32> {
        let cur = self.load_u32(offset)?;
        if cur == old {
            self.write(offset, &new.to_le_bytes())?;
        }
        Some(cur)
    }
}

/// A page the hypervisor owns and a guest places in its physical address
/// space with `XENMEM_add_to_physmap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SpecialPage {
    /// The domain's `shared_info` page.
    SharedInfo,
    /// Frame `n` of the domain's grant table.
    GrantFrame(u32),
}

/// One active grant mapping: `grantee` sees `granter`'s RAM frame `frame`
/// at its own guest-physical frame `gfn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GrantMapping {
    /// The mapping domain.
    pub grantee: DomId,
    /// Where in the grantee's guest-physical space (GFN) the frame appears.
    pub gfn: u64,
    /// The granting domain.
    pub granter: DomId,
    /// The grant reference the mapping was made through.
    pub gref: GrantRef,
    /// The granter's GFN being mapped (from its grant entry).
    pub frame: u64,
    /// Whether the grantee may write.
    pub writable: bool,
}

/// The VMM's services to the hub. Every domain id passed is one the hub
/// knows, except the granter of an orphaned mapping given to
/// [`Platform::unmap_grant`]; every page returned must be [`PAGE_SIZE`] bytes.
pub trait Platform {
    /// The page type the VMM hands out.
    type Page: SharedPage + ?Sized;

    /// The domain's `shared_info` page (allocated when the domain was made,
    /// whether or not the guest has placed it yet).
    fn shared_info(&mut self, dom: DomId) -> Option<&mut Self::Page>;
    /// Frame `index` of the domain's grant table, if allocated.
    fn grant_frame(&mut self, dom: DomId, index: u32) -> Option<&mut Self::Page>;
    /// Allocates zeroed grant-table frames so that frames `0..nr_frames`
    /// exist; false if memory ran out (nothing is then half-allocated that
    /// the hub relies on: it re-asks with the same or a larger count).
    fn grow_grant_table(&mut self, dom: DomId, nr_frames: u32) -> bool;
    /// The domain's own RAM page at `gfn`: not MMIO, not a special page, not
    /// a frame mapped from another domain. `None` otherwise.
    fn ram_page(&mut self, dom: DomId, gfn: u64) -> Option<&mut Self::Page>;
    /// Maps `m.granter`'s frame `m.frame` into `m.grantee`'s EPT at `m.gfn`
    /// (writable iff `m.writable`), before the hypercall returns. False if the
    /// VMM refuses the location; the hub then undoes the grant pin.
    fn map_grant(&mut self, m: &GrantMapping) -> bool;
    /// Removes the mapping made by [`Platform::map_grant`] and flushes the
    /// grantee's TLBs/EPT caches, so no stale translation survives.
    ///
    /// `m.granter` may be gone: [`crate::Hub::remove_domain`] leaves other
    /// domains' mappings of the removed domain's grants in place (orphaned),
    /// and the VMM must keep those frames mapped and never reuse them until
    /// this call for the last of them ([`crate::Hub::orphaned_mappings`]).
    fn unmap_grant(&mut self, m: &GrantMapping);
    /// Maps `page` of `dom` at `gfn` in `dom`'s EPT (replacing what was
    /// there) and, if `old_gfn` is given, removes it from there. False if the
    /// VMM refuses `gfn`.
    fn place_page(&mut self, dom: DomId, page: SpecialPage, old_gfn: Option<u64>, gfn: u64)
        -> bool;
}

/// A zero-filled page-sized buffer (for implementations and tests).
pub fn zero_page() -> alloc::boxed::Box<[u8]> {
    alloc::vec![0u8; PAGE_SIZE].into_boxed_slice()
}
