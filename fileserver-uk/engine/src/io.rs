//! A byte stream over a block device, for `fatfs`, with a one-sector cache
//! and a per-request budget of I/O calls that bounds every loop the file
//! system runs over a (possibly corrupt, possibly cyclic) volume.

use alloc::rc::Rc;
use core::cell::Cell;

use block_device::{BlockDevice, SECTOR_SIZE, SECTOR_SIZE_U64};

/// Why a byte-level I/O call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoFault {
    /// The block device reported an error.
    Device,
    /// The request used up its I/O budget: the volume loops.
    Budget,
    /// A write on a read-only server.
    ReadOnly,
    /// A seek outside the device.
    OutOfRange,
    /// End of the device inside a read that had to be complete.
    Eof,
    /// A write made no progress.
    WriteZero,
}

impl fatfs::IoError for IoFault {
    fn is_interrupted(&self) -> bool {
        false
    }
    fn new_unexpected_eof_error() -> Self {
        IoFault::Eof
    }
    fn new_write_zero_error() -> Self {
        IoFault::WriteZero
    }
}

/// Largest direct transfer, in sectors.
const MAX_RUN: usize = 128;

/// The device as a seekable byte stream.
pub struct BlockIo<D> {
    dev: D,
    pos: u64,
    size: u64,
    cache: Option<(u64, [u8; SECTOR_SIZE])>,
    fuel: Rc<Cell<u64>>,
    read_only: bool,
}

impl<D: BlockDevice> BlockIo<D> {
    /// A stream over `dev`, spending one unit of `fuel` per call.
    pub fn new(dev: D, fuel: Rc<Cell<u64>>, read_only: bool) -> BlockIo<D> {
        let size = dev.sector_count().saturating_mul(SECTOR_SIZE_U64);
        BlockIo {
            dev,
            pos: 0,
            size,
            cache: None,
            fuel,
            read_only,
        }
    }

    /// The device back.
    pub fn into_inner(self) -> D {
        self.dev
    }

    fn burn(&self) -> Result<(), IoFault> {
        let f = self.fuel.get();
        if f == 0 {
            return Err(IoFault::Budget);
        }
        self.fuel.set(f.saturating_sub(1));
        Ok(())
    }

    fn sector(&mut self, lba: u64) -> Result<&mut [u8; SECTOR_SIZE], IoFault> {
        let hit = matches!(self.cache, Some((l, _)) if l == lba);
        if !hit {
            let mut buf = [0u8; SECTOR_SIZE];
            self.dev
                .read_sectors(lba, &mut buf)
                .map_err(|_| IoFault::Device)?;
            self.cache = Some((lba, buf));
        }
        match &mut self.cache {
            Some((_, buf)) => Ok(buf),
            None => Err(IoFault::Device),
        }
    }

    /// Sector, offset in it, and bytes of `want` that stay inside both the
    /// sector and the device.
    fn locate(&self, want: usize) -> (u64, usize, usize) {
        let lba = self.pos / SECTOR_SIZE_U64;
        let off = (self.pos % SECTOR_SIZE_U64) as usize;
        let left = usize::try_from(self.size.saturating_sub(self.pos)).unwrap_or(usize::MAX);
        (lba, off, want.min(left))
    }
}

impl<D> fatfs::IoBase for BlockIo<D> {
    type Error = IoFault;
}

impl<D: BlockDevice> fatfs::Read for BlockIo<D> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoFault> {
        self.burn()?;
        let (lba, off, n) = self.locate(buf.len());
        if n == 0 {
            return Ok(0);
        }
        let n = if off == 0 && n >= SECTOR_SIZE {
            // Whole sectors straight from the device.
            let run = (n / SECTOR_SIZE).min(MAX_RUN).saturating_mul(SECTOR_SIZE);
            let dst = buf.get_mut(..run).ok_or(IoFault::OutOfRange)?;
            self.dev
                .read_sectors(lba, dst)
                .map_err(|_| IoFault::Device)?;
            run
        } else {
            let n = n.min(SECTOR_SIZE.saturating_sub(off));
            let end = off.saturating_add(n);
            let s = self.sector(lba)?;
            let src = s.get(off..end).ok_or(IoFault::OutOfRange)?;
            buf.get_mut(..n)
                .ok_or(IoFault::OutOfRange)?
                .copy_from_slice(src);
            n
        };
        self.pos = self.pos.saturating_add(n as u64);
        Ok(n)
    }
}

impl<D: BlockDevice> fatfs::Write for BlockIo<D> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, IoFault> {
        self.burn()?;
        if self.read_only {
            return Err(IoFault::ReadOnly);
        }
        let (lba, off, n) = self.locate(buf.len());
        if n == 0 {
            return Ok(0);
        }
        let n = if off == 0 && n >= SECTOR_SIZE {
            let run = (n / SECTOR_SIZE).min(MAX_RUN).saturating_mul(SECTOR_SIZE);
            let src = buf.get(..run).ok_or(IoFault::OutOfRange)?;
            self.dev
                .write_sectors(lba, src)
                .map_err(|_| IoFault::Device)?;
            let sectors = (run / SECTOR_SIZE) as u64;
            if matches!(self.cache, Some((l, _)) if l >= lba && l < lba.saturating_add(sectors)) {
                self.cache = None;
            }
            run
        } else {
            let n = n.min(SECTOR_SIZE.saturating_sub(off));
            let end = off.saturating_add(n);
            let src = buf.get(..n).ok_or(IoFault::OutOfRange)?;
            let s = self.sector(lba)?;
            s.get_mut(off..end)
                .ok_or(IoFault::OutOfRange)?
                .copy_from_slice(src);
            let copy = *s;
            if let Err(()) = self.dev.write_sectors(lba, &copy).map_err(|_| ()) {
                self.cache = None;
                return Err(IoFault::Device);
            }
            n
        };
        self.pos = self.pos.saturating_add(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), IoFault> {
        self.burn()?;
        if self.read_only {
            return Ok(());
        }
        self.dev.flush().map_err(|_| IoFault::Device)
    }
}

impl<D: BlockDevice> fatfs::Seek for BlockIo<D> {
    fn seek(&mut self, pos: fatfs::SeekFrom) -> Result<u64, IoFault> {
        self.burn()?;
        let new = match pos {
            fatfs::SeekFrom::Start(n) => Some(n),
            fatfs::SeekFrom::End(d) => self.size.checked_add_signed(d),
            fatfs::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(p) if p <= self.size => {
                self.pos = p;
                Ok(p)
            }
            _ => Err(IoFault::OutOfRange),
        }
    }
}
