//! One domain's grant table (v1): its size, where its frames sit, the pins on
//! its entries, and the handles of the mappings it holds of others' grants.
//!
//! The entries themselves live in the grant-table frames the VMM owns (see
//! [`crate::Platform::grant_frame`]): 512 `grant_entry_v1` of 8 bytes per
//! frame — `flags` u16 @0, `domid` u16 @2, `frame` u32 @4. The granter
//! writes them at any time; the hub only ever changes `GTF_reading` and
//! `GTF_writing`, with a compare-and-swap on the 32-bit {flags, domid} word
//! (checking type, domid and `GTF_readonly` in the same step, as Xen does)
//! and with atomic bit clears.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::abi::gnttabop::{
    ENTRIES_PER_FRAME, ENTRY_V1_SIZE, GTF_PERMIT_ACCESS, GTF_READING, GTF_READING_BIT,
    GTF_READONLY, GTF_SUB_PAGE, GTF_TYPE_MASK, GTF_WRITING, GTF_WRITING_BIT,
};
use crate::abi::{DomId, GrantHandle, GrantRef};
use crate::error::GntStatus;
use crate::mem::{GrantMapping, SharedPage};

/// How often the flag compare-and-swap is retried against a granter that
/// keeps changing its entry before the op fails (Xen's bound).
pub const CMPXCHG_RETRIES: u32 = 5;

/// Pins on one of this domain's grant entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Active {
    /// The one domain currently using the entry.
    pub grantee: DomId,
    /// The granter's frame captured at the first pin.
    pub frame: u64,
    /// Read-only pins (mappings and copies in progress).
    pub readers: u32,
    /// Writable pins.
    pub writers: u32,
}

impl Active {
    /// All pins.
    pub fn total(&self) -> u32 {
        self.readers.saturating_add(self.writers)
    }
}

/// A domain's grant-table state.
#[derive(Clone, Debug)]
pub struct GrantTable {
    pub(crate) nr_frames: u32,
    pub(crate) max_frames: u32,
    /// Where each frame is placed in the domain's physical space.
    pub(crate) frame_gfn: Vec<Option<u64>>,
    /// Pins on this domain's entries, by reference.
    pub(crate) active: BTreeMap<GrantRef, Active>,
    /// This domain's mappings of other domains' grants, by handle.
    pub(crate) maptrack: Vec<Option<GrantMapping>>,
    pub(crate) max_maptrack: u32,
}

impl GrantTable {
    /// An empty table (0 frames) with the given limits.
    pub fn new(max_frames: u32, max_maptrack: u32) -> GrantTable {
        GrantTable {
            nr_frames: 0,
            max_frames,
            frame_gfn: Vec::new(),
            active: BTreeMap::new(),
            maptrack: Vec::new(),
            max_maptrack,
        }
    }

    /// Frames currently in the table.
    pub fn nr_frames(&self) -> u32 {
        self.nr_frames
    }

    /// The most frames the table may grow to.
    pub fn max_frames(&self) -> u32 {
        self.max_frames
    }

    /// Entries currently addressable (`nr_frames × 512`).
    pub fn nr_entries(&self) -> u32 {
        self.nr_frames.saturating_mul(ENTRIES_PER_FRAME)
    }

    /// The GFN frame `i` is placed at, if any.
    pub fn frame_gfn(&self, i: u32) -> Option<u64> {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.frame_gfn.get(i))
            .copied()
            .flatten()
    }

    pub(crate) fn set_frames(&mut self, nr: u32) {
        self.nr_frames = nr;
        if let Ok(n) = usize::try_from(nr) {
            if self.frame_gfn.len() < n && self.frame_gfn.try_reserve(n).is_ok() {
                self.frame_gfn.resize(n, None);
            }
        }
    }

    pub(crate) fn set_frame_gfn(&mut self, i: u32, gfn: Option<u64>) {
        if let Some(slot) = usize::try_from(i)
            .ok()
            .and_then(|i| self.frame_gfn.get_mut(i))
        {
            *slot = gfn;
        }
    }

    /// The pins on entry `gref`.
    pub fn active(&self, gref: GrantRef) -> Option<&Active> {
        self.active.get(&gref)
    }

    /// The mapping behind `handle`, if live.
    pub fn mapping(&self, handle: GrantHandle) -> Option<&GrantMapping> {
        usize::try_from(handle)
            .ok()
            .and_then(|h| self.maptrack.get(h))
            .and_then(|m| m.as_ref())
    }

    /// Every live mapping this domain holds, with its handle.
    pub fn mappings(&self) -> impl Iterator<Item = (GrantHandle, &GrantMapping)> + '_ {
        self.maptrack
            .iter()
            .enumerate()
            .filter_map(|(h, m)| Some((GrantHandle::try_from(h).ok()?, m.as_ref()?)))
    }

    /// The lowest free handle, if the table has room.
    pub(crate) fn free_handle(&self) -> Option<GrantHandle> {
        if let Some(h) = self.maptrack.iter().position(Option::is_none) {
            return GrantHandle::try_from(h).ok();
        }
        let next = GrantHandle::try_from(self.maptrack.len()).ok()?;
        (next < self.max_maptrack).then_some(next)
    }

    pub(crate) fn insert_mapping(&mut self, handle: GrantHandle, m: GrantMapping) -> bool {
        let Ok(h) = usize::try_from(handle) else {
            return false;
        };
        if h == self.maptrack.len() {
            if self.maptrack.try_reserve(1).is_err() {
                return false;
            }
            self.maptrack.push(Some(m));
            return true;
        }
        match self.maptrack.get_mut(h) {
            Some(slot @ None) => {
                *slot = Some(m);
                true
            }
            _ => false,
        }
    }

    pub(crate) fn take_mapping(&mut self, handle: GrantHandle) -> Option<GrantMapping> {
        let m = usize::try_from(handle)
            .ok()
            .and_then(|h| self.maptrack.get_mut(h))
            .and_then(Option::take);
        while matches!(self.maptrack.last(), Some(None)) {
            self.maptrack.pop();
        }
        m
    }

    /// Whether this domain has a grant mapping at `gfn`.
    pub fn has_mapping_at(&self, gfn: u64) -> bool {
        self.maptrack.iter().flatten().any(|m| m.gfn == gfn)
    }
}

/// The frame index and byte offset of entry `gref`.
pub fn locate(gref: GrantRef) -> (u32, usize) {
    let frame = gref / ENTRIES_PER_FRAME;
    let index = (gref % ENTRIES_PER_FRAME) as usize;
    // index < 512, so index * 8 < 4096.
    (frame, index.saturating_mul(ENTRY_V1_SIZE))
}

/// A decoded `grant_entry_v1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryV1 {
    /// `GTF_*` flags.
    pub flags: u16,
    /// The domain granted access.
    pub domid: DomId,
    /// The granted frame (a GFN of the granter).
    pub frame: u32,
}

impl EntryV1 {
    /// Reads the entry at `off` of a grant-table frame.
    pub fn read<P: SharedPage + ?Sized>(page: &P, off: usize) -> Option<EntryV1> {
        let mut b = [0u8; ENTRY_V1_SIZE];
        page.read(off, &mut b)?;
        let [f0, f1, d0, d1, r0, r1, r2, r3] = b;
        Some(EntryV1 {
            flags: u16::from_le_bytes([f0, f1]),
            domid: u16::from_le_bytes([d0, d1]),
            frame: u32::from_le_bytes([r0, r1, r2, r3]),
        })
    }

    /// The entry's bytes.
    pub fn to_bytes(&self) -> [u8; ENTRY_V1_SIZE] {
        let [f0, f1] = self.flags.to_le_bytes();
        let [d0, d1] = self.domid.to_le_bytes();
        let [r0, r1, r2, r3] = self.frame.to_le_bytes();
        [f0, f1, d0, d1, r0, r1, r2, r3]
    }
}

/// Checks the entry at `off` lets `grantee` access it (for writing if
/// `write`; `map` forbids sub-page grants) and sets `GTF_reading` (and
/// `GTF_writing`) in the same compare-and-swap. Xen's `_set_status_v1`.
pub fn set_status<P: SharedPage + ?Sized>(
    page: &mut P,
    off: usize,
    grantee: DomId,
    write: bool,
    map: bool,
) -> Result<(), GntStatus> {
    let mask = if map {
        GTF_TYPE_MASK | GTF_SUB_PAGE
    } else {
        GTF_TYPE_MASK
    };
    let mut cur = page.load_u32(off).ok_or(GntStatus::GeneralError)?;
    for _ in 0..CMPXCHG_RETRIES {
        let [f0, f1, d0, d1] = cur.to_le_bytes();
        let flags = u16::from_le_bytes([f0, f1]);
        let domid = u16::from_le_bytes([d0, d1]);
        if flags & mask != GTF_PERMIT_ACCESS || domid != grantee {
            return Err(GntStatus::GeneralError);
        }
        if write && flags & GTF_READONLY != 0 {
            return Err(GntStatus::GeneralError);
        }
        let mut new_flags = flags | GTF_READING;
        if write {
            new_flags |= GTF_WRITING;
        }
        let [n0, n1] = new_flags.to_le_bytes();
        let new = u32::from_le_bytes([n0, n1, d0, d1]);
        let prev = page
            .cmpxchg_u32(off, cur, new)
            .ok_or(GntStatus::GeneralError)?;
        if prev == cur {
            return Ok(());
        }
        cur = prev;
    }
    Err(GntStatus::GeneralError)
}

/// Makes the in-use flags of the entry at `off` match its pins: clears
/// `GTF_writing` without writable pins and `GTF_reading` without any.
pub fn sync_flags<P: SharedPage + ?Sized>(page: &mut P, off: usize, act: Option<&Active>) {
    let (readers, writers) = act.map_or((0, 0), |a| (a.readers, a.writers));
    if writers == 0 {
        let _ = page.test_and_clear_bit(off, GTF_WRITING_BIT);
    }
    if readers == 0 && writers == 0 {
        let _ = page.test_and_clear_bit(off, GTF_READING_BIT);
    }
}

/// Whether the entry's flags show the pins: reading with any pin, writing
/// with a writable pin.
pub fn flags_cover(e: &EntryV1, act: &Active) -> bool {
    let reading_ok = act.total() == 0 || e.flags & GTF_READING != 0;
    let writing_ok = act.writers == 0 || e.flags & GTF_WRITING != 0;
    reading_ok && writing_ok
}
