//! `virtio-drivers` on the runtime: a [`Hal`] over [`crate::dma`] and
//! [`crate::mmio`], and the PCI transport for virtio devices found by
//! [`crate::pci`].
//!
//! ```text
//! let func = rt::virtio::find(|f| f.device == 0x1001 || f.device == 0x1042)?;  // virtio-blk
//! let transport = rt::virtio::transport(&func)?;
//! let blk = virtio_drivers::device::blk::VirtIOBlk::<rt::virtio::RtHal, _>::new(transport)?;
//! ```
//!
//! [`transport`] validates every memory BAR of the function (size, alignment,
//! not overlapping RAM) and maps it uncached, and checks that each virtio
//! structure the capabilities describe lies inside its BAR (virtio-drivers
//! adds offset and length in 32 bits), before the transport reads them; the
//! HAL refuses any device region outside those BARs. DMA memory comes from
//! the heap, identity mapped, so a buffer's guest-physical address is its
//! address.

use core::ptr::NonNull;

use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction, PciRoot};
use virtio_drivers::transport::pci::{PciTransport, VirtioPciError};
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

pub use virtio_drivers;

use crate::dma::{DmaRegion, PAGE};
use crate::pci::{self, Bar, BarError, ConfigSpace, Function};

/// PCI vendor id of virtio devices.
pub const VENDOR: u16 = 0x1af4;

/// The runtime's `virtio-drivers` HAL.
pub struct RtHal;

// SAFETY: `dma_alloc` returns zeroed, page-aligned memory that nothing else
// uses until `dma_dealloc`; its physical address equals its address (identity
// map). `mmio_phys_to_virt` returns an uncached identity mapping of a range
// `mmio::map` checked is not RAM. `share` returns the identity address of the
// caller's buffer, which is in identity-mapped RAM like all memory here.
unsafe impl Hal for RtHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        match pages.checked_mul(PAGE).map(DmaRegion::new) {
            Some(Ok(region)) => {
                let (ptr, _) = region.into_raw();
                (ptr.as_ptr() as u64, ptr)
            }
            // virtio-drivers treats physical address 0 as failure.
            _ => (0, NonNull::dangling()),
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        // SAFETY: the caller passes back what `dma_alloc` returned for `pages`
        // pages; `DmaRegion::new` rounded nothing (whole pages already).
        drop(unsafe { DmaRegion::from_raw(vaddr, pages.saturating_mul(PAGE)) });
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        // `transport` validated and mapped every memory BAR, and checked that
        // each virtio structure lies inside its BAR; a region outside them
        // means the device changed its configuration in between. This HAL
        // method cannot fail, so that stops the unikernel.
        let inside = paddr.checked_add(size as u64).is_some_and(|end| {
            BARS.lock()
                .iter()
                .flatten()
                .any(|&(s, e)| s <= paddr && end <= e)
        });
        if !inside {
            panic!("virtio: device region {paddr:#x}+{size:#x} is outside its validated BARs");
        }
        NonNull::new(paddr as *mut u8).unwrap_or(NonNull::dangling())
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        buffer.as_ptr() as *mut u8 as u64
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// Memory BARs `transport` validated and mapped: `[start, end)`.
static BARS: spin::Mutex<[Option<(u64, u64)>; 32]> = spin::Mutex::new([None; 32]);

fn remember_bar(start: u64, end: u64) {
    let mut bars = BARS.lock();
    if bars.iter().flatten().any(|&b| b == (start, end)) {
        return;
    }
    if let Some(slot) = bars.iter_mut().find(|b| b.is_none()) {
        *slot = Some((start, end));
    }
}

/// Virtio PCI capability types (`cfg_type`) the transport uses.
const VIRTIO_CAP_TYPES: core::ops::RangeInclusive<u8> = 1..=4;

/// Checks every virtio vendor capability of `func` that the transport will
/// use: its BAR must be one of the memory BARs whose sizes are in `bars`, and
/// `offset + length` must lie inside it (computed without overflow).
fn check_virtio_caps(
    access: &pci::Access,
    func: &Function,
    bars: &[Option<u64>; 6],
) -> Result<(), VirtioError> {
    for (id, at) in pci::capabilities(access, func.bdf) {
        if id != pci::CAP_VENDOR {
            continue;
        }
        let head = access.read32(func.bdf, at);
        let (cap_len, cfg_type) = ((head >> 16) as u8, (head >> 24) as u8);
        if cap_len < 16 || !VIRTIO_CAP_TYPES.contains(&cfg_type) {
            continue;
        }
        let bar = access.read8(func.bdf, at + 4);
        let offset = access.read32(func.bdf, at + 8);
        let length = access.read32(func.bdf, at + 12);
        let size = bars
            .get(usize::from(bar))
            .copied()
            .flatten()
            .ok_or(VirtioError::BadCapability { cfg_type, bar })?;
        if u64::from(offset) + u64::from(length) > size {
            return Err(VirtioError::BadCapability { cfg_type, bar });
        }
    }
    Ok(())
}

/// `virtio-drivers`' view of the runtime's configuration mechanism.
pub struct Cam(&'static pci::Access);

fn bdf(df: DeviceFunction) -> Option<pci::Bdf> {
    pci::Bdf::new(df.bus, df.device, df.function)
}

impl ConfigurationAccess for Cam {
    fn read_word(&self, df: DeviceFunction, register_offset: u8) -> u32 {
        bdf(df).map_or(u32::MAX, |b| self.0.read32(b, register_offset.into()))
    }

    fn write_word(&mut self, df: DeviceFunction, register_offset: u8, data: u32) {
        if let Some(b) = bdf(df) {
            self.0.write32(b, register_offset.into(), data);
        }
    }

    unsafe fn unsafe_clone(&self) -> Self {
        Cam(self.0)
    }
}

/// Why a virtio transport could not be set up.
#[derive(Debug)]
pub enum VirtioError {
    /// No PCI configuration mechanism.
    NoPci,
    /// A BAR failed validation.
    Bar(BarError),
    /// A BAR could not be mapped.
    Mmio(crate::mmio::MmioError),
    /// A virtio capability names a BAR that is not a mapped memory BAR, or a
    /// structure that does not fit inside it.
    BadCapability {
        /// The capability's `cfg_type`.
        cfg_type: u8,
        /// The BAR it names.
        bar: u8,
    },
    /// virtio-drivers rejected the function.
    Transport(VirtioPciError),
}

impl core::fmt::Display for VirtioError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            VirtioError::NoPci => f.write_str("no PCI configuration mechanism"),
            VirtioError::Bar(e) => write!(f, "{e}"),
            VirtioError::Mmio(e) => write!(f, "{e}"),
            VirtioError::BadCapability { cfg_type, bar } => write!(
                f,
                "virtio capability type {cfg_type} points outside memory BAR {bar}"
            ),
            VirtioError::Transport(e) => write!(f, "{e}"),
        }
    }
}

/// The first virtio function for which `want` is true.
pub fn find(mut want: impl FnMut(&Function) -> bool) -> Option<Function> {
    let access = pci::init()?;
    let mut found = None;
    pci::enumerate(access, access.first_bus(), |f| {
        if found.is_none() && f.vendor == VENDOR && want(&f) {
            found = Some(f);
        }
    });
    found
}

/// Validates and maps `func`'s memory BARs, checks that the virtio
/// structures lie inside them, enables memory decoding and bus mastering, and
/// builds its modern virtio-pci transport.
pub fn transport(func: &Function) -> Result<PciTransport, VirtioError> {
    let access = pci::init().ok_or(VirtioError::NoPci)?;
    let mut sizes = [None; 6];
    let mut index = 0;
    while index < func.bar_count() {
        match pci::read_bar(access, func, index) {
            Ok(Bar::Memory {
                addr, size, wide, ..
            }) => {
                crate::mmio::map(addr, size).map_err(VirtioError::Mmio)?;
                remember_bar(addr, addr.saturating_add(size));
                if let Some(slot) = sizes.get_mut(usize::from(index)) {
                    *slot = Some(size);
                }
                index += if wide { 2 } else { 1 };
                continue;
            }
            Ok(Bar::Io { .. })
            | Err(BarError::NotImplemented(_))
            | Err(BarError::Unassigned(_)) => {}
            Err(e) => return Err(VirtioError::Bar(e)),
        }
        index += 1;
    }
    check_virtio_caps(access, func, &sizes)?;
    pci::update_command(
        access,
        func.bdf,
        pci::command::MEMORY | pci::command::BUS_MASTER,
        0,
    );
    let mut root = PciRoot::new(Cam(access));
    let df = DeviceFunction {
        bus: func.bdf.bus,
        device: func.bdf.dev,
        function: func.bdf.func,
    };
    PciTransport::new::<RtHal, Cam>(&mut root, df).map_err(VirtioError::Transport)
}
