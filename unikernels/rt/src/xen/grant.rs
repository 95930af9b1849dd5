//! Grant tables, version 1: granting this domain's pages to others, and
//! mapping pages others granted.
//!
//! The table is an array of 8-byte `grant_entry_v1` {flags u16, domid u16,
//! frame u32} in frames the hypervisor owns and the guest places in its
//! physical address space (`XENMEM_add_to_physmap`, space grant_table).
//! Entry `r` lives in frame `r / 512` at byte `8 * (r % 512)`
//! (`xen_abi::gnttab::locate`); entries
//! 0..8 are reserved for the toolstack (entry 1: the store ring).
//!
//! * Granting ([`write_entry`]): write `domid` and `frame`, then — with
//!   release ordering, so the peer never sees the flag before the frame —
//!   `flags = GTF_permit_access [| GTF_readonly]`.
//! * Ending ([`end_entry`]): `cmpxchg` the flags to 0, but only while the
//!   hypervisor has not set `GTF_reading`/`GTF_writing` (the peer has the
//!   page mapped or is copying it); otherwise the grant stays and the page
//!   must not be reused.
//! * Mapping a peer's grant: `GNTTABOP_map_grant_ref` with
//!   `GNTMAP_host_map` (and `GNTMAP_readonly`) at a free frame of the GPA
//!   window ([`super::window`]); unmapping frees that frame.
//!
//! [`Grants`] holds that logic over any [`Hypercall`], so it runs in host
//! tests against the VMM's hub; [`super::GrantTable`] is the guest's instance.

use super::alloc;
use alloc::vec::Vec;
use core::fmt;

use xen_abi::gnttab::locate;

use super::abi::gnttabop::{
    ENTRIES_PER_FRAME, GTF_PERMIT_ACCESS, GTF_READING, GTF_READONLY, GTF_WRITING,
    NR_RESERVED_ENTRIES,
};
use super::abi::{DomId, GrantHandle, GrantRef};
use super::error::{Errno, GntStatus};
use super::ops::{self, GntOpError, Hypercall};
use super::page::Page;

/// Why a grant operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantError {
    /// [`super::init`] has not succeeded.
    NotInitialised,
    /// A hypercall failed as a whole.
    Hypercall {
        /// The operation.
        op: &'static str,
        /// Xen's error.
        errno: Errno,
    },
    /// A grant operation ran and reported a status.
    Status {
        /// The operation.
        op: &'static str,
        /// Xen's `GNTST_*`.
        status: GntStatus,
    },
    /// More frames asked for than the hypervisor or the window allow.
    TooManyFrames {
        /// Frames asked for.
        asked: u32,
        /// The limit.
        max: u32,
    },
    /// Every grant reference is in use.
    NoFreeRef,
    /// Every mapping frame of the window is in use.
    NoFreeSlot,
    /// Not a reference this table handed out.
    BadRef(GrantRef),
    /// The peer still uses the grant (`GTF_reading`/`GTF_writing` set): it
    /// stays granted, and its page must not be reused.
    InUse {
        /// The reference.
        gref: GrantRef,
        /// The entry's flags when the end was refused.
        flags: u16,
    },
    /// The frame number does not fit a v1 entry's 32 bits.
    FrameTooLarge(u64),
}

impl GrantError {
    /// The nearest errno, for interfaces that only carry one: the
    /// hypercall's own, [`GntStatus::errno`], `EBUSY` for
    /// [`GrantError::InUse`], `ENOSPC`/`ENOMEM` when out of references or
    /// window frames, `ENODEV` before init, `EINVAL` otherwise.
    pub fn errno(&self) -> Errno {
        match *self {
            GrantError::NotInitialised => Errno::ENODEV,
            GrantError::Hypercall { errno, .. } => errno,
            GrantError::Status { status, .. } => status.errno(),
            GrantError::InUse { .. } => Errno::EBUSY,
            GrantError::NoFreeRef => Errno::ENOSPC,
            GrantError::NoFreeSlot => Errno::ENOMEM,
            GrantError::TooManyFrames { .. }
            | GrantError::BadRef(_)
            | GrantError::FrameTooLarge(_) => Errno::EINVAL,
        }
    }

    pub(crate) fn from_op(op: &'static str, e: GntOpError) -> GrantError {
        match e {
            GntOpError::Errno(errno) => GrantError::Hypercall { op, errno },
            GntOpError::Status(status) => GrantError::Status { op, status },
        }
    }
}

impl fmt::Display for GrantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            GrantError::NotInitialised => f.write_str("Xen support is not initialised"),
            GrantError::Hypercall { op, errno } => write!(f, "{op} failed: {errno}"),
            GrantError::Status { op, status } => write!(f, "{op} failed: {status}"),
            GrantError::TooManyFrames { asked, max } => {
                write!(
                    f,
                    "{asked} grant-table frames asked for, at most {max} possible"
                )
            }
            GrantError::NoFreeRef => f.write_str("no free grant reference"),
            GrantError::NoFreeSlot => f.write_str("no free frame in the grant-mapping window"),
            GrantError::BadRef(r) => write!(f, "grant reference {r} is not granted by this table"),
            GrantError::InUse { gref, flags } => write!(
                f,
                "grant reference {gref} is still in use by the peer (flags {flags:#x}:{}{})",
                if flags & GTF_READING != 0 {
                    " GTF_reading"
                } else {
                    ""
                },
                if flags & GTF_WRITING != 0 {
                    " GTF_writing"
                } else {
                    ""
                }
            ),
            GrantError::FrameTooLarge(gfn) => {
                write!(f, "frame {gfn:#x} does not fit a v1 grant entry")
            }
        }
    }
}

/// Writes a v1 entry granting `domid` access to `frame`: domid and frame
/// first, then the flags with release ordering.
pub fn write_entry(frame_page: &Page<'_>, off: usize, domid: DomId, frame: u32, readonly: bool) {
    let mut flags = GTF_PERMIT_ACCESS;
    if readonly {
        flags |= GTF_READONLY;
    }
    let _ = frame_page.store_u16(off + 2, domid);
    let _ = frame_page.store_u32(off + 4, frame);
    let _ = frame_page.store_u16(off, flags);
}

/// Ends the grant in the entry at `off`: clears its flags unless the peer
/// holds it (`Err(flags)` with `GTF_reading`/`GTF_writing`).
pub fn end_entry(frame_page: &Page<'_>, off: usize) -> Result<(), u16> {
    let Some(mut flags) = frame_page.load_u16(off) else {
        return Err(0);
    };
    loop {
        if flags & (GTF_READING | GTF_WRITING) != 0 {
            return Err(flags);
        }
        match frame_page.cmpxchg_u16(off, flags, 0) {
            Some(Ok(_)) => return Ok(()),
            Some(Err(now)) => flags = now,
            None => return Err(0),
        }
    }
}

/// A set of small integer ids `[lo, hi)` handed out lowest-first.
#[derive(Clone, Debug, Default)]
pub struct IdAllocator {
    lo: u32,
    hi: u32,
    used: Vec<u64>,
    /// No free id below this.
    hint: u32,
}

impl IdAllocator {
    /// Ids `lo..hi`, all free.
    pub fn new(lo: u32, hi: u32) -> IdAllocator {
        let n = hi.saturating_sub(lo).div_ceil(64) as usize;
        IdAllocator {
            lo,
            hi: hi.max(lo),
            used: alloc::vec![0; n],
            hint: lo,
        }
    }

    fn slot(&self, id: u32) -> Option<(usize, u64)> {
        if id < self.lo || id >= self.hi {
            return None;
        }
        let i = id - self.lo;
        Some(((i / 64) as usize, 1 << (i % 64)))
    }

    /// The lowest free id, now in use.
    pub fn alloc(&mut self) -> Option<u32> {
        let mut id = self.hint;
        while id < self.hi {
            let (w, bit) = self.slot(id)?;
            let word = *self.used.get(w)?;
            if word == u64::MAX {
                id = self.lo + (w as u32 + 1) * 64;
                continue;
            }
            if word & bit == 0 {
                *self.used.get_mut(w)? |= bit;
                self.hint = id + 1;
                return Some(id);
            }
            id += 1;
        }
        None
    }

    /// Frees `id`; whether it was in use.
    pub fn free(&mut self, id: u32) -> bool {
        let Some((w, bit)) = self.slot(id) else {
            return false;
        };
        match self.used.get_mut(w) {
            Some(word) if *word & bit != 0 => {
                *word &= !bit;
                self.hint = self.hint.min(id);
                true
            }
            _ => false,
        }
    }

    /// Whether `id` is in use.
    pub fn in_use(&self, id: u32) -> bool {
        self.slot(id)
            .and_then(|(w, bit)| self.used.get(w).map(|word| word & bit != 0))
            .unwrap_or(false)
    }

    /// Ids in use.
    pub fn count(&self) -> u32 {
        self.used.iter().map(|w| w.count_ones()).sum()
    }
}

/// A peer's page mapped into this domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// Guest-physical address of the page (in the window).
    pub gpa: u64,
    /// The hypervisor's handle for the mapping.
    pub handle: GrantHandle,
    /// Mapped read-only.
    pub readonly: bool,
    slot: u32,
}

/// The grant logic over a hypercall implementation and the table's frames.
pub struct Grants<'a, H: Hypercall> {
    h: &'a H,
    frames: Vec<Page<'a>>,
    refs: IdAllocator,
    slots: IdAllocator,
    slot_base: u64,
}

impl<'a, H: Hypercall> Grants<'a, H> {
    /// Grants over the table `frames` (already placed), mapping peers'
    /// pages at `slot_base + 4096 * i` for `i < slots`.
    pub fn new(h: &'a H, frames: Vec<Page<'a>>, slot_base: u64, slots: u32) -> Self {
        let entries = (frames.len() as u32).saturating_mul(ENTRIES_PER_FRAME);
        Grants {
            h,
            frames,
            refs: IdAllocator::new(NR_RESERVED_ENTRIES, entries),
            slots: IdAllocator::new(0, slots),
            slot_base,
        }
    }

    /// Entries (reserved ones included).
    pub fn capacity(&self) -> u32 {
        (self.frames.len() as u32).saturating_mul(ENTRIES_PER_FRAME)
    }

    /// References granted now.
    pub fn granted(&self) -> u32 {
        self.refs.count()
    }

    /// Peer pages mapped now.
    pub fn mapped(&self) -> u32 {
        self.slots.count()
    }

    /// Grants `domid` access to this domain's frame `gfn`.
    pub fn grant_access(
        &mut self,
        domid: DomId,
        gfn: u64,
        readonly: bool,
    ) -> Result<GrantRef, GrantError> {
        let frame = u32::try_from(gfn).map_err(|_| GrantError::FrameTooLarge(gfn))?;
        let gref = self.refs.alloc().ok_or(GrantError::NoFreeRef)?;
        let (fi, off) = locate(gref);
        match self.frames.get(fi as usize) {
            Some(page) => {
                write_entry(page, off, domid, frame, readonly);
                Ok(gref)
            }
            None => {
                self.refs.free(gref);
                Err(GrantError::NoFreeRef)
            }
        }
    }

    /// Ends the grant `gref`; fails with [`GrantError::InUse`] while the
    /// peer has it mapped (then it stays granted).
    pub fn end_access(&mut self, gref: GrantRef) -> Result<(), GrantError> {
        if !self.refs.in_use(gref) {
            return Err(GrantError::BadRef(gref));
        }
        let (fi, off) = locate(gref);
        let page = self
            .frames
            .get(fi as usize)
            .ok_or(GrantError::BadRef(gref))?;
        end_entry(page, off).map_err(|flags| GrantError::InUse { gref, flags })?;
        self.refs.free(gref);
        Ok(())
    }

    /// Maps `domid`'s grant `gref` at a free frame of the window.
    pub fn map(
        &mut self,
        domid: DomId,
        gref: GrantRef,
        readonly: bool,
    ) -> Result<Mapping, GrantError> {
        let slot = self.slots.alloc().ok_or(GrantError::NoFreeSlot)?;
        let gpa = self.slot_base + u64::from(slot) * 4096;
        match ops::map_grant_ref(self.h, gpa, domid, gref, readonly) {
            Ok(handle) => Ok(Mapping {
                gpa,
                handle,
                readonly,
                slot,
            }),
            Err(e) => {
                // Nothing was mapped: the frame is free again.
                self.slots.free(slot);
                Err(GrantError::from_op("grant_table_op(map_grant_ref)", e))
            }
        }
    }

    /// Unmaps `m`. If the hypervisor refuses, its frame of the window is
    /// never used again (something may still be mapped there).
    pub fn unmap(&mut self, m: Mapping) -> Result<(), GrantError> {
        ops::unmap_grant_ref(self.h, m.gpa, m.handle)
            .map_err(|e| GrantError::from_op("grant_table_op(unmap_grant_ref)", e))?;
        self.slots.free(m.slot);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::page::testing::TestPage;
    use super::*;

    #[test]
    fn entry_encoding_matches_the_vmm() {
        let buf = TestPage::new();
        let p = buf.page();
        write_entry(&p, 8 * 9, 0x1234, 0xdead_beef, true);
        let mut b = [0u8; 8];
        p.read(8 * 9, &mut b).unwrap();
        assert_eq!(b, [0x05, 0, 0x34, 0x12, 0xef, 0xbe, 0xad, 0xde]);
        let mut all = [0u8; 4096];
        p.read(0, &mut all).unwrap();
        let e = xen_abi::gnttab::EntryV1::read(&all[..], 8 * 9).unwrap();
        assert_eq!((e.flags, e.domid, e.frame), (5, 0x1234, 0xdead_beef));
    }

    #[test]
    fn end_entry_refuses_while_in_use() {
        let buf = TestPage::new();
        let p = buf.page();
        write_entry(&p, 64, 3, 77, false);
        // The hypervisor pins it for a writable mapping.
        p.store_u16(64, GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING)
            .unwrap();
        assert_eq!(
            end_entry(&p, 64),
            Err(GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING)
        );
        assert_eq!(
            p.load_u16(64),
            Some(GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING)
        );
        p.store_u16(64, GTF_PERMIT_ACCESS | GTF_READING).unwrap();
        assert_eq!(end_entry(&p, 64), Err(GTF_PERMIT_ACCESS | GTF_READING));
        // Unmapped: the end goes through and clears the flags only.
        p.store_u16(64, GTF_PERMIT_ACCESS).unwrap();
        assert_eq!(end_entry(&p, 64), Ok(()));
        assert_eq!(p.load_u16(64), Some(0));
        assert_eq!(p.load_u16(66), Some(3));
        // Out of the page: refused, nothing touched.
        assert_eq!(end_entry(&p, 4096), Err(0));
    }

    #[test]
    fn id_allocator() {
        let mut a = IdAllocator::new(8, 140);
        assert_eq!(a.alloc(), Some(8));
        assert_eq!(a.alloc(), Some(9));
        assert!(a.free(8));
        assert!(!a.free(8));
        assert!(!a.free(7) && !a.free(140));
        assert_eq!(a.alloc(), Some(8));
        let mut n = 2;
        while a.alloc().is_some() {
            n += 1;
        }
        assert_eq!(n, 132);
        assert_eq!(a.count(), 132);
        assert!(a.in_use(139) && !a.in_use(140));
        assert!(a.free(100));
        assert_eq!(a.alloc(), Some(100));
        assert_eq!(a.alloc(), None);
        let mut empty = IdAllocator::new(8, 8);
        assert_eq!(empty.alloc(), None);
        let mut backwards = IdAllocator::new(10, 2);
        assert_eq!(backwards.alloc(), None);
    }

    #[test]
    fn errors_name_the_codes() {
        use alloc::string::ToString;
        let e = GrantError::from_op(
            "grant_table_op(map_grant_ref)",
            GntOpError::Status(GntStatus(-3)),
        );
        assert_eq!(
            e.to_string(),
            "grant_table_op(map_grant_ref) failed: GNTST_bad_gntref (-3): invalid grant reference"
        );
        let e = GrantError::from_op(
            "grant_table_op(unmap_grant_ref)",
            GntOpError::Errno(Errno::EINVAL),
        );
        assert_eq!(
            e.to_string(),
            "grant_table_op(unmap_grant_ref) failed: EINVAL (-22)"
        );
        assert_eq!(
            GrantError::InUse {
                gref: 9,
                flags: 0x19
            }
            .to_string(),
            "grant reference 9 is still in use by the peer (flags 0x19: GTF_reading GTF_writing)"
        );
    }
}
