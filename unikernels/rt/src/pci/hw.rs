//! The two configuration mechanisms, and the choice between them.

use super::{Bdf, ConfigSpace};
use crate::acpi::Ecam;
use crate::mmio::{self, Mmio};
use x86_64::instructions::port::Port;

/// Mechanism #1 address port.
const CONFIG_ADDRESS: u16 = 0xcf8;
/// Mechanism #1 data port.
const CONFIG_DATA: u16 = 0xcfc;

/// Configuration mechanism #1 (ports 0xCF8/0xCFC): 256 bytes per function.
pub struct PortCam {
    lock: spin::Mutex<()>,
}

impl PortCam {
    fn address(bdf: Bdf, offset: u16) -> u32 {
        0x8000_0000
            | (u32::from(bdf.bus) << 16)
            | (u32::from(bdf.dev) << 11)
            | (u32::from(bdf.func) << 8)
            | u32::from(offset & 0xfc)
    }

    /// Whether the mechanism is there: the address port keeps the enable bit.
    fn present() -> bool {
        let mut addr: Port<u32> = Port::new(CONFIG_ADDRESS);
        // SAFETY: 0xCF8 is the PCI configuration address register; saving and
        // restoring it around the probe has no other effect.
        unsafe {
            let old = addr.read();
            addr.write(0x8000_0000);
            let back = addr.read();
            addr.write(old);
            back == 0x8000_0000
        }
    }
}

impl ConfigSpace for PortCam {
    fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        if offset >= 256 {
            return u32::MAX;
        }
        let _g = self.lock.lock();
        let mut addr: Port<u32> = Port::new(CONFIG_ADDRESS);
        let mut data: Port<u32> = Port::new(CONFIG_DATA);
        // SAFETY: the mechanism #1 protocol (address, then data) under the lock;
        // configuration reads have no memory effects.
        unsafe {
            addr.write(Self::address(bdf, offset));
            data.read()
        }
    }

    fn write32(&self, bdf: Bdf, offset: u16, value: u32) {
        if offset >= 256 {
            return;
        }
        let _g = self.lock.lock();
        let mut addr: Port<u32> = Port::new(CONFIG_ADDRESS);
        let mut data: Port<u32> = Port::new(CONFIG_DATA);
        // SAFETY: as in `read32`. What a configuration write does to the device
        // (BARs, DMA enable) is the caller's decision.
        unsafe {
            addr.write(Self::address(bdf, offset));
            data.write(value);
        }
    }
}

/// ECAM (memory-mapped configuration, from the ACPI MCFG): 4 KiB per function.
pub struct EcamCam {
    window: Ecam,
    mmio: Mmio,
}

impl EcamCam {
    fn offset(&self, bdf: Bdf, offset: u16) -> Option<u64> {
        if bdf.bus < self.window.start_bus || bdf.bus > self.window.end_bus || offset >= 4096 {
            return None;
        }
        let bus = u64::from(bdf.bus.wrapping_sub(self.window.start_bus));
        Some(
            (bus << 20)
                | (u64::from(bdf.dev) << 15)
                | (u64::from(bdf.func) << 12)
                | u64::from(offset & 0xffc),
        )
    }

    /// The window it decodes.
    pub fn window(&self) -> Ecam {
        self.window
    }
}

impl ConfigSpace for EcamCam {
    fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        self.offset(bdf, offset)
            .map_or(u32::MAX, |o| self.mmio.read32(o))
    }

    fn write32(&self, bdf: Bdf, offset: u16, value: u32) {
        if let Some(o) = self.offset(bdf, offset) {
            self.mmio.write32(o, value);
        }
    }

    fn space_len(&self) -> u16 {
        4096
    }
}

/// The configuration mechanism in use.
pub enum Access {
    /// ECAM from the MCFG.
    Ecam(EcamCam),
    /// Mechanism #1.
    Ports(PortCam),
}

impl Access {
    /// First bus to enumerate from.
    pub fn first_bus(&self) -> u8 {
        match self {
            Access::Ecam(e) => e.window.start_bus,
            Access::Ports(_) => 0,
        }
    }

    /// Short description for logs.
    pub fn describe(&self) -> &'static str {
        match self {
            Access::Ecam(_) => "ECAM",
            Access::Ports(_) => "config mechanism #1",
        }
    }
}

impl ConfigSpace for Access {
    fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
        match self {
            Access::Ecam(e) => e.read32(bdf, offset),
            Access::Ports(p) => p.read32(bdf, offset),
        }
    }

    fn write32(&self, bdf: Bdf, offset: u16, value: u32) {
        match self {
            Access::Ecam(e) => e.write32(bdf, offset, value),
            Access::Ports(p) => p.write32(bdf, offset, value),
        }
    }

    fn space_len(&self) -> u16 {
        match self {
            Access::Ecam(e) => e.space_len(),
            Access::Ports(p) => p.space_len(),
        }
    }
}

static ACCESS: spin::Once<Option<Access>> = spin::Once::new();

/// Picks the configuration mechanism (once): ECAM if the ACPI MCFG describes a
/// window for segment 0 that maps as device memory, else mechanism #1 if the
/// address port answers, else none.
pub fn init() -> Option<&'static Access> {
    ACCESS
        .call_once(|| {
            if let Some(window) = crate::acpi::tables().and_then(|a| a.ecam) {
                let mapped = window
                    .range()
                    .ok_or(mmio::MmioError::Empty)
                    .and_then(|(s, e)| mmio::map(s, e.saturating_sub(s)));
                match mapped {
                    Ok(mmio) => return Some(Access::Ecam(EcamCam { window, mmio })),
                    Err(e) => crate::println!("rt: pci: ignoring the MCFG window: {e}"),
                }
            }
            PortCam::present().then(|| {
                Access::Ports(PortCam {
                    lock: spin::Mutex::new(()),
                })
            })
        })
        .as_ref()
}

/// The configuration mechanism, if [`init`] found one.
pub fn access() -> Option<&'static Access> {
    ACCESS.get().and_then(Option::as_ref)
}
