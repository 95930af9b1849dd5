//! The device side: the [`VirtioDisk`] wrapper and discovery on PCI.

use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::Cell;
use core::fmt;

use block_device::{check_range, BlockDevice, RangeError, ReadBlocks};
use rt::pci::{self, Bdf, Function};
use rt::virtio::virtio_drivers::device::blk::VirtIOBlk;
use rt::virtio::virtio_drivers::transport::pci::PciTransport;
use rt::virtio::virtio_drivers::Error as DriverError;
use rt::virtio::{RtHal, VirtioError};

use crate::{parse_serial, SERIAL_LEN};

/// PCI device ids of virtio-blk (vendor [`rt::virtio::VENDOR`]):
/// transitional and modern.
pub const DEVICE_IDS: [u16; 2] = [0x1001, 0x1042];

/// Why a transfer on a [`VirtioDisk`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskError {
    /// Not whole sectors, or outside the device: refused before sending.
    Range(RangeError),
    /// A write to a device that negotiated `VIRTIO_BLK_F_RO`: refused
    /// before sending.
    ReadOnly,
    /// The device (or the driver) reported an error.
    Device(DriverError),
}

impl fmt::Display for DiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskError::Range(e) => write!(f, "{e}"),
            DiskError::ReadOnly => f.write_str("the device is read-only"),
            DiskError::Device(e) => write!(f, "virtio-blk: {e}"),
        }
    }
}

/// Why a virtio-blk function could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// Its BARs or virtio structures failed validation, or the transport
    /// could not be set up.
    Transport(VirtioError),
    /// The driver refused the device (feature negotiation, queue setup).
    Driver(DriverError),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Transport(e) => write!(f, "{e}"),
            OpenError::Driver(e) => write!(f, "{e}"),
        }
    }
}

/// A virtio-blk function that was found but could not be opened.
#[derive(Debug)]
pub struct Unusable {
    /// Its PCI address.
    pub bdf: Bdf,
    /// Why it could not be opened.
    pub error: OpenError,
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "virtio-blk at {}: {}", self.bdf, self.error)
    }
}

/// Why no disk was found.
#[derive(Debug)]
pub enum FindError {
    /// No PCI configuration mechanism.
    NoPci,
    /// No virtio-blk function on PCI.
    NoDevice,
    /// The first virtio-blk function could not be opened.
    Unusable(Unusable),
}

impl fmt::Display for FindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FindError::NoPci => f.write_str("no PCI configuration mechanism"),
            FindError::NoDevice => f.write_str("no virtio-blk device on PCI"),
            FindError::Unusable(u) => write!(f, "{u}"),
        }
    }
}

/// A virtio-blk device as a [`BlockDevice`]. Each transfer is checked
/// against the capacity the device reported before it is sent; writes to a
/// read-only device are refused; empty transfers do nothing.
pub struct VirtioDisk {
    blk: VirtIOBlk<RtHal, PciTransport>,
    sectors: u64,
    read_only: bool,
    first_error: Option<Rc<Cell<Option<DiskError>>>>,
}

impl VirtioDisk {
    /// Validates and maps `func`'s BARs (`rt::virtio::transport`) and
    /// initialises the device.
    pub fn open(func: &Function) -> Result<VirtioDisk, OpenError> {
        let transport = rt::virtio::transport(func).map_err(OpenError::Transport)?;
        let blk = VirtIOBlk::<RtHal, _>::new(transport).map_err(OpenError::Driver)?;
        Ok(VirtioDisk {
            sectors: blk.capacity(),
            read_only: blk.readonly(),
            blk,
            first_error: None,
        })
    }

    /// Whether the device negotiated `VIRTIO_BLK_F_RO`.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// The device's serial ([`parse_serial`]), or `None` when it has none,
    /// it is not printable ASCII, or the device cannot say it.
    pub fn serial(&mut self) -> Option<String> {
        let mut id = [0u8; SERIAL_LEN];
        self.blk.device_id(&mut id).ok()?;
        parse_serial(&id).map(String::from)
    }

    /// From now on, keeps the first error of any transfer or flush in
    /// `cell` (if it holds none yet), so that whoever holds `cell` can say
    /// why the disk failed after handing it away.
    pub fn keep_first_error(&mut self, cell: Rc<Cell<Option<DiskError>>>) {
        self.first_error = Some(cell);
    }

    /// Sends a write to the device even when it is read-only: range-checked
    /// like [`BlockDevice::write_sectors`] but without the read-only
    /// refusal, so that a caller can check that the device itself refuses
    /// writes (write back bytes the device already holds).
    pub fn probe_write(&mut self, lba: u64, buf: &[u8]) -> Result<(), DiskError> {
        let r = match self.start(lba, buf.len()) {
            Ok(Some(block)) => self.blk.write_blocks(block, buf).map_err(DiskError::Device),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        self.note(r)
    }

    /// The first sector as `usize` for the driver, after the range check;
    /// `None` for an empty transfer.
    fn start(&self, lba: u64, len: usize) -> Result<Option<usize>, DiskError> {
        let n = check_range(self.sectors, lba, len).map_err(DiskError::Range)?;
        if n == 0 {
            // The driver refuses empty transfers; there is nothing to do.
            return Ok(None);
        }
        usize::try_from(lba).map(Some).map_err(|_| {
            DiskError::Range(RangeError::OutOfRange {
                lba,
                sectors: n,
                capacity: self.sectors,
            })
        })
    }

    /// Keeps `r`'s error if it is the first (see [`Self::keep_first_error`]).
    fn note<T>(&self, r: Result<T, DiskError>) -> Result<T, DiskError> {
        if let (Err(e), Some(cell)) = (&r, &self.first_error) {
            if cell.get().is_none() {
                cell.set(Some(*e));
            }
        }
        r
    }
}

impl ReadBlocks for VirtioDisk {
    type Error = DiskError;

    fn sector_count(&self) -> u64 {
        self.sectors
    }

    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        let r = match self.start(lba, buf.len()) {
            Ok(Some(block)) => self.blk.read_blocks(block, buf).map_err(DiskError::Device),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        self.note(r)
    }
}

impl BlockDevice for VirtioDisk {
    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<(), DiskError> {
        if self.read_only {
            return self.note(Err(DiskError::ReadOnly));
        }
        self.probe_write(lba, buf)
    }

    fn flush(&mut self) -> Result<(), DiskError> {
        let r = self.blk.flush().map_err(DiskError::Device);
        self.note(r)
    }
}

/// An opened virtio-blk function.
pub struct Device {
    /// Its PCI address.
    pub bdf: Bdf,
    /// The disk.
    pub disk: VirtioDisk,
    /// Its capacity in 512-byte sectors, as the device reported it.
    pub sectors: u64,
    /// Whether the device negotiated `VIRTIO_BLK_F_RO`.
    pub read_only: bool,
    /// Its serial ([`VirtioDisk::serial`]).
    pub serial: Option<String>,
}

impl Device {
    /// Opens `func` and reads its serial.
    fn open(func: &Function) -> Result<Device, Unusable> {
        let mut disk = VirtioDisk::open(func).map_err(|error| Unusable {
            bdf: func.bdf,
            error,
        })?;
        Ok(Device {
            bdf: func.bdf,
            sectors: disk.sectors,
            read_only: disk.read_only,
            serial: disk.serial(),
            disk,
        })
    }
}

/// Whether `f` is a virtio-blk function.
fn is_virtio_blk(f: &Function) -> bool {
    f.vendor == rt::virtio::VENDOR && DEVICE_IDS.contains(&f.device)
}

/// Finds every virtio-blk function on PCI (bridges followed) and opens
/// each, in enumeration order: the opened [`Device`], or why it is
/// [`Unusable`]. Fails only without a PCI configuration mechanism
/// ([`FindError::NoPci`]); finding none is an empty list.
pub fn enumerate() -> Result<Vec<Result<Device, Unusable>>, FindError> {
    let access = pci::init().ok_or(FindError::NoPci)?;
    let mut funcs = Vec::new();
    pci::enumerate(access, access.first_bus(), |f| {
        if is_virtio_blk(&f) {
            funcs.push(f);
        }
    });
    Ok(funcs.iter().map(Device::open).collect())
}

/// Opens the first virtio-blk function on PCI, leaving any others alone.
pub fn open_first() -> Result<Device, FindError> {
    if pci::init().is_none() {
        return Err(FindError::NoPci);
    }
    let func = rt::virtio::find(is_virtio_blk).ok_or(FindError::NoDevice)?;
    Device::open(&func).map_err(FindError::Unusable)
}
