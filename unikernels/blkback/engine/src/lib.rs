//! The engine of cloister's block backend (blkback): the disks an AppVM
//! sees, built from block devices the backend owns.
//!
//! * **Root disk** ([`CowDisk`]): a read-only template volume shared by
//!   every VM, plus one copy-on-write [`Overlay`] per VM. Reads come from the
//!   overlay where the VM has written, from the template elsewhere; writes
//!   always go to the overlay. The template is only ever borrowed as
//!   [`ReadBlocks`], so the type system itself keeps it unwritten.
//! * **Private volume** ([`PrivateDisk`]): a writable device of the VM's
//!   own, passed through with range checks.
//!
//! When the VM goes away its overlay is discarded ([`Overlay::reset`]):
//! the next boot starts again from the template.
//!
//! # The copy-on-write map
//!
//! Transfers are sector-granular (512 bytes); the overlay maps **chunks**
//! of `chunk_size` bytes (a power of two from 512 B to 1 MiB; 64 KiB, the
//! cluster size QCOW2 uses by default, is [`DEFAULT_CHUNK_SIZE`]). The
//! first write to a chunk claims an overlay slot of one chunk and copies the
//! template's chunk into it unless the write covers it whole; later reads
//! and writes of that chunk use the slot. Small chunks copy less on first
//! write; large chunks keep the map small — it lives in RAM, one `BTreeMap`
//! entry per written chunk, and is not persisted (overlays do not outlive
//! their VM).
//!
//! # Space accounting
//!
//! The overlay device holds `overlay sectors / chunk sectors` slots. A
//! write that needs more new slots than are free fails whole with
//! [`BlkError::OverlayFull`] before anything is written. A discard of whole
//! chunks frees their slots (they read as the template again); a discard
//! of part of a chunk changes nothing, as discards are advisory.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
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

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

pub use block_device::{
    check_range, BlockDevice, MemDisk, RangeError, ReadBlocks, SECTOR_SIZE, SECTOR_SIZE_U64,
};

#[cfg(test)]
mod tests;

/// The default chunk size: 64 KiB.
pub const DEFAULT_CHUNK_SIZE: usize = 64 * 1024;
/// Smallest chunk: one sector.
pub const MIN_CHUNK_SIZE: usize = SECTOR_SIZE;
/// Largest chunk: 1 MiB.
pub const MAX_CHUNK_SIZE: usize = 1024 * 1024;

/// Why a disk operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlkError {
    /// The transfer is misaligned or outside the disk.
    Range(RangeError),
    /// The write needs more new overlay chunks than are free.
    OverlayFull {
        /// New chunks the write needs.
        needed: u64,
        /// Chunks free.
        available: u64,
    },
    /// Reading the template failed.
    Template,
    /// Reading or writing the overlay failed.
    Overlay,
    /// Reading or writing the private volume failed.
    Private,
    /// A chunk size that is not a power of two in 512 B..=1 MiB.
    BadChunkSize(usize),
}

impl fmt::Display for BlkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlkError::Range(e) => write!(f, "{e}"),
            BlkError::OverlayFull { needed, available } => write!(
                f,
                "overlay full: the write needs {needed} new chunks, {available} are free"
            ),
            BlkError::Template => f.write_str("template device error"),
            BlkError::Overlay => f.write_str("overlay device error"),
            BlkError::Private => f.write_str("private volume device error"),
            BlkError::BadChunkSize(n) => write!(
                f,
                "chunk size {n} is not a power of two between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE}"
            ),
        }
    }
}

impl From<RangeError> for BlkError {
    fn from(e: RangeError) -> BlkError {
        BlkError::Range(e)
    }
}

/// A disk as a VM sees it.
pub trait VirtualDisk {
    /// Size in sectors.
    fn capacity(&self) -> u64;
    /// Reads `buf.len() / 512` sectors at `lba`.
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlkError>;
    /// Writes `buf.len() / 512` sectors at `lba`.
    fn write(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlkError>;
    /// Tells the disk `sectors` sectors at `lba` are no longer needed.
    fn discard(&mut self, lba: u64, sectors: u64) -> Result<(), BlkError>;
    /// Makes completed writes durable.
    fn flush(&mut self) -> Result<(), BlkError>;
}

/// One VM's copy-on-write state: the overlay device and the chunk map.
#[derive(Clone, Debug)]
pub struct Overlay<O> {
    dev: O,
    chunk_sectors: u64,
    /// Template chunk → overlay slot.
    map: BTreeMap<u64, u64>,
    /// Slots freed by discards.
    free: Vec<u64>,
    /// Slots `next_slot..slots` were never used.
    next_slot: u64,
    slots: u64,
}

/// Sectors of the chunk `chunk` of a disk of `disk` sectors.
fn chunk_len(disk: u64, chunk: u64, chunk_sectors: u64) -> u64 {
    let start = chunk.saturating_mul(chunk_sectors);
    disk.saturating_sub(start).min(chunk_sectors)
}

fn bytes(sectors: u64) -> Result<usize, BlkError> {
    sectors
        .checked_mul(SECTOR_SIZE_U64)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or(BlkError::Range(RangeError::Misaligned { len: usize::MAX }))
}

impl<O: BlockDevice> Overlay<O> {
    /// An empty overlay on `dev` with chunks of `chunk_size` bytes.
    pub fn new(dev: O, chunk_size: usize) -> Result<Overlay<O>, BlkError> {
        if !chunk_size.is_power_of_two() || !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size)
        {
            return Err(BlkError::BadChunkSize(chunk_size));
        }
        let chunk_sectors = (chunk_size / SECTOR_SIZE) as u64;
        let slots = dev.sector_count().checked_div(chunk_sectors).unwrap_or(0);
        Ok(Overlay {
            dev,
            chunk_sectors,
            map: BTreeMap::new(),
            free: Vec::new(),
            next_slot: 0,
            slots,
        })
    }

    /// Chunk size in bytes.
    pub fn chunk_size(&self) -> usize {
        (self.chunk_sectors as usize).saturating_mul(SECTOR_SIZE)
    }

    /// Chunks the overlay device holds.
    pub fn capacity_chunks(&self) -> u64 {
        self.slots
    }

    /// Chunks in use (written since the last reset, not discarded).
    pub fn used_chunks(&self) -> u64 {
        self.map.len() as u64
    }

    /// Chunks still free.
    pub fn free_chunks(&self) -> u64 {
        self.slots.saturating_sub(self.used_chunks())
    }

    /// Whether template chunk `chunk` has been copied into the overlay.
    pub fn is_mapped(&self, chunk: u64) -> bool {
        self.map.contains_key(&chunk)
    }

    /// Forgets every write: the disk reads as the template again and all
    /// slots are free. Use when the VM goes away.
    pub fn reset(&mut self) {
        self.map.clear();
        self.free.clear();
        self.next_slot = 0;
    }

    /// The overlay device, e.g. to hand back to the allocator.
    pub fn into_device(self) -> O {
        self.dev
    }

    fn alloc(&mut self) -> Option<u64> {
        if let Some(s) = self.free.pop() {
            return Some(s);
        }
        if self.next_slot < self.slots {
            let s = self.next_slot;
            self.next_slot = self.next_slot.saturating_add(1);
            return Some(s);
        }
        None
    }

    fn slot_lba(&self, slot: u64, offset: u64) -> u64 {
        slot.saturating_mul(self.chunk_sectors)
            .saturating_add(offset)
    }

    /// The disk this overlay gives over `template`.
    pub fn disk<'a, T: ReadBlocks>(&'a mut self, template: &'a mut T) -> CowDisk<'a, T, O> {
        CowDisk {
            template,
            overlay: self,
        }
    }

    /// Pieces of the transfer `lba..lba+sectors`, one per chunk:
    /// (chunk, first sector inside it, sectors, byte offset in the buffer).
    fn pieces(&self, lba: u64, sectors: u64) -> Result<Vec<(u64, u64, u64, usize)>, BlkError> {
        let mut out = Vec::new();
        let mut cur = lba;
        let end = lba.saturating_add(sectors);
        let mut at = 0usize;
        while cur < end {
            let chunk = cur.checked_div(self.chunk_sectors).unwrap_or(0);
            let off = cur.checked_rem(self.chunk_sectors).unwrap_or(0);
            let n = self
                .chunk_sectors
                .saturating_sub(off)
                .min(end.saturating_sub(cur));
            out.push((chunk, off, n, at));
            at = at.saturating_add(bytes(n)?);
            cur = cur.saturating_add(n);
        }
        Ok(out)
    }
}

/// A VM's root disk: a template and that VM's overlay.
pub struct CowDisk<'a, T, O> {
    template: &'a mut T,
    overlay: &'a mut Overlay<O>,
}

impl<T: ReadBlocks, O: BlockDevice> VirtualDisk for CowDisk<'_, T, O> {
    fn capacity(&self) -> u64 {
        self.template.sector_count()
    }

    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlkError> {
        let sectors = check_range(self.capacity(), lba, buf.len())?;
        let ov = &mut *self.overlay;
        for (chunk, off, n, at) in ov.pieces(lba, sectors)? {
            let end = at.saturating_add(bytes(n)?);
            let dst = buf.get_mut(at..end).ok_or(BlkError::Overlay)?;
            match ov.map.get(&chunk) {
                Some(&slot) => {
                    let l = ov.slot_lba(slot, off);
                    ov.dev.read_sectors(l, dst).map_err(|_| BlkError::Overlay)?;
                }
                None => {
                    let l = chunk.saturating_mul(ov.chunk_sectors).saturating_add(off);
                    self.template
                        .read_sectors(l, dst)
                        .map_err(|_| BlkError::Template)?;
                }
            }
        }
        Ok(())
    }

    fn write(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlkError> {
        let disk = self.capacity();
        let sectors = check_range(disk, lba, buf.len())?;
        let ov = &mut *self.overlay;
        let pieces = ov.pieces(lba, sectors)?;
        let needed = pieces.iter().filter(|p| !ov.map.contains_key(&p.0)).count() as u64;
        if needed > ov.free_chunks() {
            return Err(BlkError::OverlayFull {
                needed,
                available: ov.free_chunks(),
            });
        }
        for (chunk, off, n, at) in pieces {
            let end = at.saturating_add(bytes(n)?);
            let src = buf.get(at..end).ok_or(BlkError::Overlay)?;
            if let Some(&slot) = ov.map.get(&chunk) {
                let l = ov.slot_lba(slot, off);
                ov.dev
                    .write_sectors(l, src)
                    .map_err(|_| BlkError::Overlay)?;
                continue;
            }
            // First write to this chunk: build it whole, then claim a slot.
            let len = chunk_len(disk, chunk, ov.chunk_sectors);
            let mut whole = vec![0u8; bytes(ov.chunk_sectors)?];
            let base = chunk.saturating_mul(ov.chunk_sectors);
            if n < len {
                let t = whole.get_mut(..bytes(len)?).ok_or(BlkError::Template)?;
                self.template
                    .read_sectors(base, t)
                    .map_err(|_| BlkError::Template)?;
            }
            let from = bytes(off)?;
            whole
                .get_mut(from..from.saturating_add(src.len()))
                .ok_or(BlkError::Overlay)?
                .copy_from_slice(src);
            let slot = ov.alloc().ok_or(BlkError::OverlayFull {
                needed: 1,
                available: 0,
            })?;
            let l = ov.slot_lba(slot, 0);
            if ov.dev.write_sectors(l, &whole).is_err() {
                ov.free.push(slot);
                return Err(BlkError::Overlay);
            }
            ov.map.insert(chunk, slot);
        }
        Ok(())
    }

    fn discard(&mut self, lba: u64, sectors: u64) -> Result<(), BlkError> {
        let disk = self.capacity();
        let len = usize::try_from(sectors)
            .ok()
            .and_then(|s| s.checked_mul(SECTOR_SIZE))
            .ok_or(BlkError::Range(RangeError::OutOfRange {
                lba,
                sectors,
                capacity: disk,
            }))?;
        check_range(disk, lba, len)?;
        let ov = &mut *self.overlay;
        for (chunk, off, n, _) in ov.pieces(lba, sectors)? {
            let whole = off == 0 && n == chunk_len(disk, chunk, ov.chunk_sectors);
            if whole {
                if let Some(slot) = ov.map.remove(&chunk) {
                    ov.free.push(slot);
                }
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), BlkError> {
        self.overlay.dev.flush().map_err(|_| BlkError::Overlay)
    }
}

/// A private volume: the VM's own writable device, range-checked.
#[derive(Clone, Debug)]
pub struct PrivateDisk<D> {
    dev: D,
}

impl<D: BlockDevice> PrivateDisk<D> {
    /// Wraps `dev`.
    pub fn new(dev: D) -> PrivateDisk<D> {
        PrivateDisk { dev }
    }

    /// The device back.
    pub fn into_device(self) -> D {
        self.dev
    }
}

impl<D: BlockDevice> VirtualDisk for PrivateDisk<D> {
    fn capacity(&self) -> u64 {
        self.dev.sector_count()
    }
    fn read(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlkError> {
        check_range(self.capacity(), lba, buf.len())?;
        self.dev
            .read_sectors(lba, buf)
            .map_err(|_| BlkError::Private)
    }
    fn write(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlkError> {
        check_range(self.capacity(), lba, buf.len())?;
        self.dev
            .write_sectors(lba, buf)
            .map_err(|_| BlkError::Private)
    }
    fn discard(&mut self, lba: u64, sectors: u64) -> Result<(), BlkError> {
        // Advisory: the data stays.
        let end = lba.checked_add(sectors);
        if end.is_none_or(|e| e > self.capacity()) {
            return Err(BlkError::Range(RangeError::OutOfRange {
                lba,
                sectors,
                capacity: self.capacity(),
            }));
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), BlkError> {
        self.dev.flush().map_err(|_| BlkError::Private)
    }
}

/// A request as virtio-blk carries it (the transport decodes the ring).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// `VIRTIO_BLK_T_IN`: read `sectors` sectors at `lba`.
    Read {
        /// First sector.
        lba: u64,
        /// Sectors.
        sectors: u32,
    },
    /// `VIRTIO_BLK_T_OUT`: write `data` at `lba`.
    Write {
        /// First sector.
        lba: u64,
        /// Whole sectors of data.
        data: &'a [u8],
    },
    /// `VIRTIO_BLK_T_FLUSH`.
    Flush,
    /// `VIRTIO_BLK_T_DISCARD` of one range.
    Discard {
        /// First sector.
        lba: u64,
        /// Sectors.
        sectors: u32,
    },
}

/// virtio-blk status: success.
pub const VIRTIO_BLK_S_OK: u8 = 0;
/// virtio-blk status: I/O error.
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
/// virtio-blk status: unsupported request.
pub const VIRTIO_BLK_S_UNSUPP: u8 = 2;
/// Largest transfer one request may make (the transport advertises it as
/// `size_max`/`seg_max`): 1 MiB.
pub const MAX_TRANSFER: usize = 1024 * 1024;

/// Serves one request: the status byte and, for reads, the data.
pub fn serve<V: VirtualDisk + ?Sized>(disk: &mut V, req: Request<'_>) -> (u8, Vec<u8>) {
    let status = |r: Result<(), BlkError>| match r {
        Ok(()) => VIRTIO_BLK_S_OK,
        Err(_) => VIRTIO_BLK_S_IOERR,
    };
    match req {
        Request::Read { lba, sectors } => {
            let Ok(len) = bytes(u64::from(sectors)) else {
                return (VIRTIO_BLK_S_IOERR, Vec::new());
            };
            if len > MAX_TRANSFER {
                return (VIRTIO_BLK_S_IOERR, Vec::new());
            }
            let mut buf = vec![0u8; len];
            match disk.read(lba, &mut buf) {
                Ok(()) => (VIRTIO_BLK_S_OK, buf),
                Err(_) => (VIRTIO_BLK_S_IOERR, Vec::new()),
            }
        }
        Request::Write { lba, data } => {
            if data.len() > MAX_TRANSFER {
                return (VIRTIO_BLK_S_IOERR, Vec::new());
            }
            (status(disk.write(lba, data)), Vec::new())
        }
        Request::Flush => (status(disk.flush()), Vec::new()),
        Request::Discard { lba, sectors } => {
            (status(disk.discard(lba, u64::from(sectors))), Vec::new())
        }
    }
}

/// FNV-1a-64 of every sector of `disk`, read 64 sectors at a time.
pub fn checksum<V: VirtualDisk + ?Sized>(disk: &mut V) -> Result<u64, BlkError> {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut buf = vec![0u8; 64 * SECTOR_SIZE];
    let mut lba = 0u64;
    let cap = disk.capacity();
    while lba < cap {
        let n = cap.saturating_sub(lba).min(64);
        let part = buf.get_mut(..bytes(n)?).ok_or(BlkError::Template)?;
        disk.read(lba, part)?;
        for &b in part.iter() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        lba = lba.saturating_add(n);
    }
    Ok(h)
}

/// What [`workload_check`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct WorkloadReport {
    /// Writes made.
    pub writes: u64,
    /// Sectors written.
    pub sectors_written: u64,
    /// Reads checked.
    pub reads: u64,
    /// Reads that differed from what was written (0 when all is well).
    pub mismatches: u64,
    /// Overlay chunks in use at the end.
    pub chunks_used: u64,
}

/// The byte a workload wrote: a function of the seed, the write's number
/// and the position, so that only the last writer of each sector needs
/// remembering.
fn workload_byte(seed: u64, op: u64, sector: u64, i: usize) -> u8 {
    let mut x = seed ^ op.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ sector.rotate_left(17) ^ (i as u64);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x as u8
}

/// A self-check for the unikernel: `ops` random writes (1–16 sectors,
/// seeded by `seed`) to `disk`, each followed by a read of a random range
/// checked against a sparse model (last writer per sector; unwritten
/// sectors against `reference`, the template). Uses memory proportional to
/// the sectors written, not to the disk.
pub fn workload_check<T: ReadBlocks, O: BlockDevice>(
    reference: &mut T,
    overlay: &mut Overlay<O>,
    seed: u64,
    ops: u64,
) -> Result<WorkloadReport, BlkError> {
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let cap = reference.sector_count();
    if cap == 0 {
        return Ok(WorkloadReport::default());
    }
    let mut last: BTreeMap<u64, u64> = BTreeMap::new();
    let mut report = WorkloadReport::default();
    let mut expect = vec![0u8; SECTOR_SIZE];
    for op in 0..ops {
        let n = (next() % 16).saturating_add(1).min(cap);
        let lba = next()
            .checked_rem(cap.saturating_sub(n).saturating_add(1))
            .unwrap_or(0);
        let mut data = vec![0u8; bytes(n)?];
        for (k, sector) in data.chunks_mut(SECTOR_SIZE).enumerate() {
            let s = lba.saturating_add(k as u64);
            for (i, b) in sector.iter_mut().enumerate() {
                *b = workload_byte(seed, op, s, i);
            }
        }
        overlay.disk(reference).write(lba, &data)?;
        for k in 0..n {
            last.insert(lba.saturating_add(k), op);
        }
        report.writes = report.writes.saturating_add(1);
        report.sectors_written = report.sectors_written.saturating_add(n);
        // Check a random range.
        let rn = (next() % 32).saturating_add(1).min(cap);
        let rl = next()
            .checked_rem(cap.saturating_sub(rn).saturating_add(1))
            .unwrap_or(0);
        let mut got = vec![0u8; bytes(rn)?];
        overlay.disk(reference).read(rl, &mut got)?;
        report.reads = report.reads.saturating_add(1);
        for (k, sector) in got.chunks(SECTOR_SIZE).enumerate() {
            let s = rl.saturating_add(k as u64);
            match last.get(&s) {
                Some(&w) => {
                    for (i, b) in expect.iter_mut().enumerate() {
                        *b = workload_byte(seed, w, s, i);
                    }
                }
                None => reference
                    .read_sectors(s, &mut expect)
                    .map_err(|_| BlkError::Template)?,
            }
            if sector != expect.as_slice() {
                report.mismatches = report.mismatches.saturating_add(1);
            }
        }
    }
    report.chunks_used = overlay.used_chunks();
    Ok(report)
}
