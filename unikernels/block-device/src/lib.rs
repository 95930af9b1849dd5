//! Sector-granular block devices, as the storage engines see them.
//!
//! A device is a run of 512-byte sectors. [`ReadBlocks`] reads them;
//! [`BlockDevice`] also writes and flushes. Every transfer is a whole number
//! of sectors starting at a sector number (LBA), and must lie inside the
//! device: [`check_range`] is the check implementations share. The
//! unikernels implement these traits over virtio-blk; [`MemDisk`] keeps a
//! disk in memory (overlays, tests).
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

use alloc::vec::Vec;
use core::fmt;

/// Bytes per sector.
pub const SECTOR_SIZE: usize = 512;

/// [`SECTOR_SIZE`] as a `u64`.
pub const SECTOR_SIZE_U64: u64 = 512;

/// Why a transfer does not fit a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeError {
    /// The buffer is not a whole number of sectors.
    Misaligned {
        /// The buffer's length in bytes.
        len: usize,
    },
    /// The sectors lie (partly) past the end of the device.
    OutOfRange {
        /// First sector of the transfer.
        lba: u64,
        /// Sectors transferred.
        sectors: u64,
        /// Sectors the device has.
        capacity: u64,
    },
}

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RangeError::Misaligned { len } => {
                write!(
                    f,
                    "transfer of {len} bytes is not a whole number of sectors"
                )
            }
            RangeError::OutOfRange {
                lba,
                sectors,
                capacity,
            } => write!(
                f,
                "sectors {lba}+{sectors} lie outside a device of {capacity} sectors"
            ),
        }
    }
}

/// Checks a transfer of `len` bytes at `lba` against a device of
/// `capacity` sectors; returns the number of sectors.
pub fn check_range(capacity: u64, lba: u64, len: usize) -> Result<u64, RangeError> {
    if !len.is_multiple_of(SECTOR_SIZE) {
        return Err(RangeError::Misaligned { len });
    }
    let sectors = (len / SECTOR_SIZE) as u64;
    match lba.checked_add(sectors) {
        Some(end) if end <= capacity => Ok(sectors),
        _ => Err(RangeError::OutOfRange {
            lba,
            sectors,
            capacity,
        }),
    }
}

/// A device that can be read.
pub trait ReadBlocks {
    /// The device's error.
    type Error: fmt::Debug;

    /// Number of sectors.
    fn sector_count(&self) -> u64;

    /// Reads `buf.len() / 512` sectors starting at `lba` into `buf`.
    /// `buf.len()` must be a multiple of 512 and the range inside the device.
    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), Self::Error>;
}

/// A device that can also be written.
pub trait BlockDevice: ReadBlocks {
    /// Writes `buf.len() / 512` sectors starting at `lba`.
    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<(), Self::Error>;

    /// Makes completed writes durable.
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl<T: ReadBlocks + ?Sized> ReadBlocks for &mut T {
    type Error = T::Error;
    fn sector_count(&self) -> u64 {
        (**self).sector_count()
    }
    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        (**self).read_sectors(lba, buf)
    }
}

impl<T: BlockDevice + ?Sized> BlockDevice for &mut T {
    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<(), Self::Error> {
        (**self).write_sectors(lba, buf)
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        (**self).flush()
    }
}

/// A disk held in memory.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MemDisk {
    data: Vec<u8>,
}

impl MemDisk {
    /// A zeroed disk of `sectors` sectors.
    pub fn zeroed(sectors: usize) -> MemDisk {
        MemDisk {
            data: alloc::vec![0; sectors.saturating_mul(SECTOR_SIZE)],
        }
    }

    /// A disk holding `data`, padded with zeros to a whole sector.
    pub fn from_bytes(mut data: Vec<u8>) -> MemDisk {
        let rem = data.len() % SECTOR_SIZE;
        if rem != 0 {
            data.resize(
                data.len().saturating_add(SECTOR_SIZE.saturating_sub(rem)),
                0,
            );
        }
        MemDisk { data }
    }

    /// The disk's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// The disk's bytes, mutably (to corrupt images in tests).
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// The bytes, consuming the disk.
    pub fn into_bytes(self) -> Vec<u8> {
        self.data
    }

    fn span(&self, lba: u64, len: usize) -> Result<core::ops::Range<usize>, RangeError> {
        check_range(self.sector_count(), lba, len)?;
        let start = usize::try_from(lba)
            .ok()
            .and_then(|l| l.checked_mul(SECTOR_SIZE))
            .ok_or(RangeError::OutOfRange {
                lba,
                sectors: 0,
                capacity: self.sector_count(),
            })?;
        let end = start.checked_add(len).ok_or(RangeError::OutOfRange {
            lba,
            sectors: 0,
            capacity: self.sector_count(),
        })?;
        Ok(start..end)
    }
}

impl ReadBlocks for MemDisk {
    type Error = RangeError;

    fn sector_count(&self) -> u64 {
        (self.data.len() / SECTOR_SIZE) as u64
    }

    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), RangeError> {
        let span = self.span(lba, buf.len())?;
        let src = self
            .data
            .get(span)
            .ok_or(RangeError::Misaligned { len: buf.len() })?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

impl BlockDevice for MemDisk {
    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<(), RangeError> {
        let span = self.span(lba, buf.len())?;
        let dst = self
            .data
            .get_mut(span)
            .ok_or(RangeError::Misaligned { len: buf.len() })?;
        dst.copy_from_slice(buf);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ranges() {
        assert_eq!(check_range(10, 0, 5120), Ok(10));
        assert_eq!(check_range(10, 9, 512), Ok(1));
        assert_eq!(check_range(10, 10, 0), Ok(0));
        assert!(matches!(
            check_range(10, 10, 512),
            Err(RangeError::OutOfRange { .. })
        ));
        assert!(matches!(
            check_range(10, u64::MAX, 512),
            Err(RangeError::OutOfRange { .. })
        ));
        assert_eq!(
            check_range(10, 0, 100),
            Err(RangeError::Misaligned { len: 100 })
        );
    }

    #[test]
    fn mem_disk_reads_back_writes() {
        let mut d = MemDisk::zeroed(4);
        d.write_sectors(1, &[7u8; 1024]).unwrap();
        let mut buf = [0u8; 1536];
        d.read_sectors(0, &mut buf).unwrap();
        assert!(buf[..512].iter().all(|&b| b == 0));
        assert!(buf[512..].iter().all(|&b| b == 7));
        assert!(d.write_sectors(3, &[0; 1024]).is_err());
        assert!(d.read_sectors(0, &mut [0; 3]).is_err());
        assert_eq!(MemDisk::from_bytes(alloc::vec![1; 513]).sector_count(), 2);
    }

    proptest! {
        #[test]
        fn out_of_range_never_panics(lba in any::<u64>(), sectors in 0usize..8) {
            let mut d = MemDisk::zeroed(4);
            let mut buf = alloc::vec![0u8; sectors * SECTOR_SIZE];
            let ok = lba.checked_add(sectors as u64).is_some_and(|e| e <= 4);
            prop_assert_eq!(d.read_sectors(lba, &mut buf).is_ok(), ok);
            prop_assert_eq!(d.write_sectors(lba, &buf).is_ok(), ok);
        }
    }
}
