//! The PCI host bridge: configuration mechanism #1 on ports 0xCF8–0xCFF.
//!
//! * 0xCF8, 32-bit: CONFIG_ADDRESS (bit 31 enable, bus 23:16, device 15:11,
//!   function 10:8, register 7:2; other bits read 0). Narrower accesses to
//!   0xCF8–0xCFB are not configuration cycles: reads return all ones, writes
//!   are dropped (Linux's type-1 probe writes a byte to 0xCFB).
//! * 0xCFC–0xCFF: CONFIG_DATA, 1, 2 or 4 bytes that stay inside the dword,
//!   reaching register `(address & 0xFC) + (port − 0xCFC)` of the addressed
//!   function. With the enable bit clear, reads return all ones.
//!
//! Bus 0, device 0, function 0 is the host bridge, an Intel 440FX
//! (8086:1237, revision 2, class 06:00:00; its configuration space is
//! read-only). Every other function goes to the [`PciDevices`] hook the
//! platform was built with; a function the hook does not have reads all
//! ones, so Linux's scan finds nothing there.

use crate::all_ones;

/// CONFIG_ADDRESS's port.
pub const PORT_ADDRESS: u16 = 0xCF8;
/// CONFIG_DATA's first port.
pub const PORT_DATA: u16 = 0xCFC;
/// The host bridge's vendor ID (Intel).
pub const HOST_VENDOR: u16 = 0x8086;
/// The host bridge's device ID (440FX).
pub const HOST_DEVICE: u16 = 0x1237;

/// A PCI function's address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bdf {
    /// Bus, 0–255.
    pub bus: u8,
    /// Device, 0–31.
    pub device: u8,
    /// Function, 0–7.
    pub function: u8,
}

impl Bdf {
    /// The function CONFIG_ADDRESS `address` selects.
    pub fn from_address(address: u32) -> Bdf {
        Bdf {
            bus: ((address >> 16) & 0xFF) as u8,
            device: ((address >> 11) & 0x1F) as u8,
            function: ((address >> 8) & 0x7) as u8,
        }
    }
}

/// The functions behind the host bridge: the hook later devices
/// (virtio-pci) attach through. Offsets are into the 256-byte configuration
/// space, `size` is 1, 2 or 4 and the access never crosses a dword.
pub trait PciDevices {
    /// Reads a configuration register; `None` if there is no such function.
    fn config_read(&mut self, bdf: Bdf, offset: u8, size: u8) -> Option<u32>;
    /// Writes a configuration register; `false` if there is no such function.
    fn config_write(&mut self, bdf: Bdf, offset: u8, size: u8, value: u32) -> bool;
}

/// No devices besides the host bridge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoPciDevices;

impl PciDevices for NoPciDevices {
    fn config_read(&mut self, _: Bdf, _: u8, _: u8) -> Option<u32> {
        None
    }
    fn config_write(&mut self, _: Bdf, _: u8, _: u8, _: u32) -> bool {
        false
    }
}

/// The host bridge's configuration header.
const fn host_config() -> [u8; 64] {
    let mut c = [0u8; 64];
    let v = HOST_VENDOR.to_le_bytes();
    let d = HOST_DEVICE.to_le_bytes();
    c[0] = v[0];
    c[1] = v[1];
    c[2] = d[0];
    c[3] = d[1];
    // Command: memory and I/O space decoding on. Status: medium DEVSEL.
    c[4] = 0x03;
    c[6] = 0x00;
    c[7] = 0x02;
    // Revision 2; class 06 (bridge) 00 (host) 00.
    c[8] = 0x02;
    c[11] = 0x06;
    c
}

const HOST_CONFIG: [u8; 64] = host_config();

/// The host bridge and the devices behind it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PciHost<D: PciDevices> {
    address: u32,
    devices: D,
}

impl<D: PciDevices> PciHost<D> {
    /// A host bridge with `devices` behind it.
    pub fn new(devices: D) -> Self {
        PciHost {
            address: 0,
            devices,
        }
    }

    /// The devices behind the bridge.
    pub fn devices(&self) -> &D {
        &self.devices
    }

    /// The devices behind the bridge, mutably.
    pub fn devices_mut(&mut self) -> &mut D {
        &mut self.devices
    }

    /// CONFIG_ADDRESS as last written.
    pub fn address(&self) -> u32 {
        self.address
    }

    /// Guest read of `size` bytes at port 0xCF8 + `offset` (0–7). `None`
    /// for an access that crosses the data dword.
    pub fn read(&mut self, offset: u16, size: u8) -> Option<u32> {
        let ones = all_ones(size) as u32;
        match offset {
            0 if size == 4 => Some(self.address),
            0..=3 => Some(ones),
            4..=7 => {
                let within = (offset & 3) as u8;
                if !matches!(size, 1 | 2 | 4) || within.saturating_add(size) > 4 {
                    return None;
                }
                if self.address & 0x8000_0000 == 0 {
                    return Some(ones);
                }
                let bdf = Bdf::from_address(self.address);
                let reg = (self.address & 0xFC) as u8 | within;
                Some(if bdf == HOST_BDF {
                    host_read(reg, size)
                } else {
                    self.devices.config_read(bdf, reg, size).unwrap_or(ones) & ones
                })
            }
            _ => None,
        }
    }

    /// Guest write of `size` bytes at port 0xCF8 + `offset`. `false` for an
    /// access that crosses the data dword.
    pub fn write(&mut self, offset: u16, size: u8, value: u32) -> bool {
        match offset {
            0 if size == 4 => {
                self.address = value & 0x80FF_FFFC;
                true
            }
            0..=3 => true,
            4..=7 => {
                let within = (offset & 3) as u8;
                if !matches!(size, 1 | 2 | 4) || within.saturating_add(size) > 4 {
                    return false;
                }
                if self.address & 0x8000_0000 != 0 {
                    let bdf = Bdf::from_address(self.address);
                    let reg = (self.address & 0xFC) as u8 | within;
                    if bdf != HOST_BDF {
                        let value = value & all_ones(size) as u32;
                        self.devices.config_write(bdf, reg, size, value);
                    }
                }
                true
            }
            _ => false,
        }
    }
}

const HOST_BDF: Bdf = Bdf {
    bus: 0,
    device: 0,
    function: 0,
};

fn host_read(reg: u8, size: u8) -> u32 {
    let mut bytes = [0u8; 4];
    for (i, b) in bytes.iter_mut().take(usize::from(size)).enumerate() {
        *b = HOST_CONFIG
            .get(usize::from(reg).saturating_add(i))
            .copied()
            .unwrap_or(0);
    }
    u32::from_le_bytes(bytes)
}
