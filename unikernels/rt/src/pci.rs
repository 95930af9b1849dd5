//! PCI: configuration space access, enumeration, BARs, capabilities and MSI.
//!
//! The logic here works on any [`ConfigSpace`] and has host tests against a fake
//! bus. What a device (or the VMM) reports is not trusted: bridge loops, bad
//! capability chains, BARs with impossible sizes, misaligned or wrapping
//! addresses are all detected and reported as errors, and every walk is bounded.
//!
//! On the unikernel target, [`hw`] provides the two configuration mechanisms
//! (mechanism #1 through ports 0xCF8/0xCFC, and ECAM from the ACPI MCFG) and
//! [`init`] picks one.

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

use core::fmt;

/// Bus, device and function number of a PCI function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    /// Bus number.
    pub bus: u8,
    /// Device number, 0..32.
    pub dev: u8,
    /// Function number, 0..8.
    pub func: u8,
}

impl Bdf {
    /// A function address; `None` if `dev >= 32` or `func >= 8`.
    pub const fn new(bus: u8, dev: u8, func: u8) -> Option<Bdf> {
        if dev < 32 && func < 8 {
            Some(Bdf { bus, dev, func })
        } else {
            None
        }
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.dev, self.func)
    }
}

/// Access to configuration space. Offsets are byte offsets, dword aligned for
/// the 32-bit accessors; an access the mechanism cannot make (offset beyond its
/// space, bus outside an ECAM window) reads all-ones and drops writes, as a
/// master abort does.
pub trait ConfigSpace {
    /// Reads the dword at `offset & !3`.
    fn read32(&self, bdf: Bdf, offset: u16) -> u32;
    /// Writes the dword at `offset & !3`.
    fn write32(&self, bdf: Bdf, offset: u16, value: u32);
    /// Size of each function's configuration space (256, or 4096 with ECAM).
    fn space_len(&self) -> u16 {
        256
    }

    /// Reads a 16-bit register (`offset` 2-aligned).
    fn read16(&self, bdf: Bdf, offset: u16) -> u16 {
        let shift = u32::from(offset & 2) * 8;
        (self.read32(bdf, offset & !3) >> shift) as u16
    }

    /// Reads an 8-bit register.
    fn read8(&self, bdf: Bdf, offset: u16) -> u8 {
        let shift = u32::from(offset & 3) * 8;
        (self.read32(bdf, offset & !3) >> shift) as u8
    }

    /// Writes a 16-bit register (read-modify-write of its dword).
    fn write16(&self, bdf: Bdf, offset: u16, value: u16) {
        let shift = u32::from(offset & 2) * 8;
        let old = self.read32(bdf, offset & !3);
        let new = (old & !(0xffff << shift)) | (u32::from(value) << shift);
        self.write32(bdf, offset & !3, new);
    }
}

/// Configuration register offsets.
pub mod reg {
    /// Vendor id (16) and device id (16).
    pub const ID: u16 = 0x00;
    /// Command register (16).
    pub const COMMAND: u16 = 0x04;
    /// Status register (16).
    pub const STATUS: u16 = 0x06;
    /// Revision, prog-if, subclass, class.
    pub const CLASS: u16 = 0x08;
    /// Header type (8).
    pub const HEADER_TYPE: u16 = 0x0e;
    /// First BAR.
    pub const BAR0: u16 = 0x10;
    /// Secondary bus number of a bridge (8).
    pub const SECONDARY_BUS: u16 = 0x19;
    /// Capabilities pointer (8).
    pub const CAP_PTR: u16 = 0x34;
    /// Interrupt line (8): the IRQ the firmware routed INTx to.
    pub const INTERRUPT_LINE: u16 = 0x3c;
    /// Interrupt pin (8): 1..=4 for INTA..INTD, 0 for none.
    pub const INTERRUPT_PIN: u16 = 0x3d;
}

/// Command register bits.
pub mod command {
    /// Respond to I/O space accesses.
    pub const IO: u16 = 1 << 0;
    /// Respond to memory space accesses.
    pub const MEMORY: u16 = 1 << 1;
    /// May master the bus (DMA, MSI).
    pub const BUS_MASTER: u16 = 1 << 2;
    /// INTx disabled.
    pub const INTX_DISABLE: u16 = 1 << 10;
}

/// Status register: the function has a capability list.
const STATUS_CAP_LIST: u16 = 1 << 4;
/// Capability id of MSI.
pub const CAP_MSI: u8 = 0x05;
/// Capability id of MSI-X.
pub const CAP_MSIX: u8 = 0x11;
/// Capability id of vendor-specific capabilities (virtio uses them).
pub const CAP_VENDOR: u8 = 0x09;
/// Most capabilities followed in one list (the 192 bytes after the header hold
/// at most 48 dword-aligned entries).
const MAX_CAPS: usize = 48;

/// A function found by [`enumerate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function {
    /// Its address.
    pub bdf: Bdf,
    /// Vendor id.
    pub vendor: u16,
    /// Device id.
    pub device: u16,
    /// Class code.
    pub class: u8,
    /// Subclass.
    pub subclass: u8,
    /// Programming interface.
    pub prog_if: u8,
    /// Revision id.
    pub revision: u8,
    /// Header type (low 7 bits: 0 device, 1 PCI bridge, 2 CardBus bridge).
    pub header_type: u8,
    /// Interrupt line register (firmware-assigned IRQ; 0xff: none).
    pub irq_line: u8,
    /// Interrupt pin (1..=4 = INTA..INTD; 0: none).
    pub irq_pin: u8,
}

impl Function {
    fn read(cfg: &impl ConfigSpace, bdf: Bdf) -> Option<Function> {
        let id = cfg.read32(bdf, reg::ID);
        let vendor = id as u16;
        if vendor == 0xffff || vendor == 0 {
            return None;
        }
        let class = cfg.read32(bdf, reg::CLASS);
        let irq = cfg.read32(bdf, reg::INTERRUPT_LINE);
        Some(Function {
            bdf,
            vendor,
            device: (id >> 16) as u16,
            class: (class >> 24) as u8,
            subclass: (class >> 16) as u8,
            prog_if: (class >> 8) as u8,
            revision: class as u8,
            header_type: cfg.read8(bdf, reg::HEADER_TYPE) & 0x7f,
            irq_line: irq as u8,
            irq_pin: (irq >> 8) as u8,
        })
    }

    /// Number of BARs its header type has (6 for devices, 2 for bridges).
    pub fn bar_count(&self) -> u8 {
        match self.header_type {
            0 => 6,
            1 => 2,
            _ => 0,
        }
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:04x}:{:04x} class {:02x}.{:02x}.{:02x}",
            self.bdf, self.vendor, self.device, self.class, self.subclass, self.prog_if
        )
    }
}

/// Calls `visit` for every function reachable from bus `first_bus`, following
/// PCI-to-PCI bridges. Each bus is scanned at most once (a bridge pointing back
/// at a scanned bus is ignored), so the walk ends on any configuration.
pub fn enumerate(cfg: &impl ConfigSpace, first_bus: u8, mut visit: impl FnMut(Function)) {
    let mut seen = [0u64; 4];
    let mut todo = [0u8; 256];
    let mut todo_len = 1usize;
    todo[0] = first_bus;
    mark(&mut seen, first_bus);
    while let Some(last) = todo_len.checked_sub(1) {
        todo_len = last;
        let bus = todo.get(last).copied().unwrap_or(0);
        for dev in 0..32 {
            let Some(f0) = Bdf::new(bus, dev, 0) else {
                continue;
            };
            let Some(func0) = Function::read(cfg, f0) else {
                continue;
            };
            let multi = cfg.read8(f0, reg::HEADER_TYPE) & 0x80 != 0;
            let funcs = if multi { 8 } else { 1 };
            for func in 0..funcs {
                let found = if func == 0 {
                    Some(func0)
                } else {
                    Bdf::new(bus, dev, func).and_then(|b| Function::read(cfg, b))
                };
                let Some(found) = found else { continue };
                if found.header_type == 1 {
                    let secondary = cfg.read8(found.bdf, reg::SECONDARY_BUS);
                    if !is_marked(&seen, secondary) {
                        mark(&mut seen, secondary);
                        if let Some(slot) = todo.get_mut(todo_len) {
                            *slot = secondary;
                            todo_len = todo_len.saturating_add(1);
                        }
                    }
                }
                visit(found);
            }
        }
    }
}

fn mark(set: &mut [u64; 4], bus: u8) {
    if let Some(w) = set.get_mut(usize::from(bus >> 6)) {
        *w |= 1 << (bus & 63);
    }
}

fn is_marked(set: &[u64; 4], bus: u8) -> bool {
    set.get(usize::from(bus >> 6))
        .is_some_and(|w| w & (1 << (bus & 63)) != 0)
}

/// Sets `set` and clears `clear` in the command register.
pub fn update_command(cfg: &impl ConfigSpace, bdf: Bdf, set: u16, clear: u16) {
    let old = cfg.read16(bdf, reg::COMMAND);
    cfg.write16(bdf, reg::COMMAND, (old & !clear) | set);
}

/// A decoded, validated base address register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar {
    /// A memory BAR.
    Memory {
        /// Guest-physical base (aligned to `size`).
        addr: u64,
        /// Size in bytes (a power of two, at least 16).
        size: u64,
        /// Prefetchable.
        prefetchable: bool,
        /// 64-bit (uses this BAR and the next).
        wide: bool,
    },
    /// An I/O BAR.
    Io {
        /// First port.
        port: u16,
        /// Number of ports (a power of two, at least 4).
        size: u16,
    },
}

/// Why a BAR cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarError {
    /// The header type has no BAR with that index (or a 64-bit BAR would need
    /// one more).
    NoSuchBar(u8),
    /// The BAR is not implemented (sizes to zero).
    NotImplemented(u8),
    /// The firmware/VMM did not assign an address.
    Unassigned(u8),
    /// The size read back is not a power of two or is below the minimum.
    BadSize(u8, u64),
    /// The address is not aligned to the size.
    Misaligned(u8, u64),
    /// Address + size overflows (or an I/O range passes 0xFFFF).
    Overflow(u8),
    /// The memory type field holds the reserved value.
    ReservedType(u8),
}

impl fmt::Display for BarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BarError::NoSuchBar(i) => write!(f, "BAR{i} does not exist"),
            BarError::NotImplemented(i) => write!(f, "BAR{i} is not implemented"),
            BarError::Unassigned(i) => write!(f, "BAR{i} has no address assigned"),
            BarError::BadSize(i, s) => write!(f, "BAR{i} has an impossible size {s:#x}"),
            BarError::Misaligned(i, a) => write!(f, "BAR{i} address {a:#x} is not size-aligned"),
            BarError::Overflow(i) => write!(f, "BAR{i} wraps the address space"),
            BarError::ReservedType(i) => write!(f, "BAR{i} has a reserved memory type"),
        }
    }
}

/// Reads and sizes BAR `index` of `func` (decoding is switched off while it is
/// sized and restored afterwards).
pub fn read_bar(cfg: &impl ConfigSpace, func: &Function, index: u8) -> Result<Bar, BarError> {
    if index >= func.bar_count() {
        return Err(BarError::NoSuchBar(index));
    }
    let bdf = func.bdf;
    let off = reg::BAR0.saturating_add(u16::from(index) * 4);
    let command = cfg.read16(bdf, reg::COMMAND);
    cfg.write16(
        bdf,
        reg::COMMAND,
        command & !(command::IO | command::MEMORY),
    );
    let result = size_bar(cfg, bdf, off, index, func.bar_count());
    cfg.write16(bdf, reg::COMMAND, command);
    result
}

/// Writes all-ones to a BAR dword, returns what reads back, and restores it.
fn probe(cfg: &impl ConfigSpace, bdf: Bdf, off: u16) -> (u32, u32) {
    let orig = cfg.read32(bdf, off);
    cfg.write32(bdf, off, u32::MAX);
    let mask = cfg.read32(bdf, off);
    cfg.write32(bdf, off, orig);
    (orig, mask)
}

fn size_bar(
    cfg: &impl ConfigSpace,
    bdf: Bdf,
    off: u16,
    index: u8,
    count: u8,
) -> Result<Bar, BarError> {
    let (orig, mask) = probe(cfg, bdf, off);
    if orig & 1 == 1 {
        let size_mask = mask & 0xffff_fffc;
        if size_mask == 0 {
            return Err(BarError::NotImplemented(index));
        }
        // Only the low 16 bits decode on x86; upper bits may read back as 0.
        let size = (!(size_mask | 0xffff_0000)).wrapping_add(1);
        let port = orig & 0xffff_fffc;
        if !(4..=0x1_0000).contains(&size) || !size.is_power_of_two() {
            return Err(BarError::BadSize(index, u64::from(size)));
        }
        if port == 0 {
            return Err(BarError::Unassigned(index));
        }
        if port & size.wrapping_sub(1) != 0 {
            return Err(BarError::Misaligned(index, u64::from(port)));
        }
        let end = port.checked_add(size).ok_or(BarError::Overflow(index))?;
        if end > 0x1_0000 {
            return Err(BarError::Overflow(index));
        }
        return Ok(Bar::Io {
            port: port as u16,
            size: size as u16,
        });
    }
    let kind = (orig >> 1) & 3;
    let prefetchable = orig & 8 != 0;
    let (addr, size_mask, wide) = match kind {
        0 => (
            u64::from(orig & 0xffff_fff0),
            u64::from(mask & 0xffff_fff0) | 0xffff_ffff_0000_0000,
            false,
        ),
        2 => {
            if index.saturating_add(1) >= count {
                return Err(BarError::NoSuchBar(index));
            }
            let hi_off = off.saturating_add(4);
            let (orig_hi, mask_hi) = probe(cfg, bdf, hi_off);
            (
                u64::from(orig & 0xffff_fff0) | (u64::from(orig_hi) << 32),
                u64::from(mask & 0xffff_fff0) | (u64::from(mask_hi) << 32),
                true,
            )
        }
        _ => return Err(BarError::ReservedType(index)),
    };
    if size_mask & 0xffff_ffff == 0 && !wide || size_mask == 0 {
        return Err(BarError::NotImplemented(index));
    }
    let size = (!size_mask).wrapping_add(1);
    if size < 16 || !size.is_power_of_two() {
        return Err(BarError::BadSize(index, size));
    }
    if addr == 0 {
        return Err(BarError::Unassigned(index));
    }
    if addr & size.wrapping_sub(1) != 0 {
        return Err(BarError::Misaligned(index, addr));
    }
    addr.checked_add(size).ok_or(BarError::Overflow(index))?;
    Ok(Bar::Memory {
        addr,
        size,
        prefetchable,
        wide,
    })
}

/// Iterator over a function's capabilities: `(id, offset)`.
pub struct Capabilities<'c, C: ConfigSpace> {
    cfg: &'c C,
    bdf: Bdf,
    next: u8,
    left: usize,
}

impl<C: ConfigSpace> Iterator for Capabilities<'_, C> {
    type Item = (u8, u16);

    fn next(&mut self) -> Option<(u8, u16)> {
        // A pointer into the header, or a chain longer than the space can
        // hold (a loop), ends the walk.
        if self.next < 0x40 || self.left == 0 {
            return None;
        }
        self.left = self.left.saturating_sub(1);
        let at = u16::from(self.next & 0xfc);
        let word = self.cfg.read16(self.bdf, at);
        self.next = (word >> 8) as u8;
        Some((word as u8, at))
    }
}

/// The capability list of `bdf` (empty if the status register says it has none).
pub fn capabilities<C: ConfigSpace>(cfg: &C, bdf: Bdf) -> Capabilities<'_, C> {
    let has = cfg.read16(bdf, reg::STATUS) & STATUS_CAP_LIST != 0;
    Capabilities {
        cfg,
        bdf,
        next: if has { cfg.read8(bdf, reg::CAP_PTR) } else { 0 },
        left: MAX_CAPS,
    }
}

/// Offset of the first capability with `id`, if any.
pub fn find_capability(cfg: &impl ConfigSpace, bdf: Bdf, id: u8) -> Option<u16> {
    capabilities(cfg, bdf)
        .find(|&(i, _)| i == id)
        .map(|(_, o)| o)
}

/// Why MSI could not be enabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsiError {
    /// The function has no MSI capability.
    NoCapability,
    /// The message address needs 64 bits but the function only does 32.
    AddressTooWide(u64),
}

impl fmt::Display for MsiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MsiError::NoCapability => f.write_str("no MSI capability"),
            MsiError::AddressTooWide(a) => write!(f, "MSI address {a:#x} needs 64 bits"),
        }
    }
}

/// The x86 MSI message that delivers `vector` to the local APIC `apic_id`
/// (fixed delivery, physical destination, edge): `(address, data)`.
pub const fn msi_message(apic_id: u8, vector: u8) -> (u64, u16) {
    (0xfee0_0000 | ((apic_id as u64) << 12), vector as u16)
}

/// Programs the function's MSI capability with one message and enables it;
/// disables INTx. Returns the capability offset.
pub fn enable_msi(
    cfg: &impl ConfigSpace,
    bdf: Bdf,
    address: u64,
    data: u16,
) -> Result<u16, MsiError> {
    let cap = find_capability(cfg, bdf, CAP_MSI).ok_or(MsiError::NoCapability)?;
    let control_off = cap.saturating_add(2);
    let control = cfg.read16(bdf, control_off);
    let wide = control & (1 << 7) != 0;
    if address >> 32 != 0 && !wide {
        return Err(MsiError::AddressTooWide(address));
    }
    // Disable while reprogramming; one message (MME = 0).
    cfg.write16(bdf, control_off, control & !(1 | (7 << 4)));
    cfg.write32(bdf, cap.saturating_add(4), address as u32);
    let data_off = if wide {
        cfg.write32(bdf, cap.saturating_add(8), (address >> 32) as u32);
        cap.saturating_add(12)
    } else {
        cap.saturating_add(8)
    };
    cfg.write16(bdf, data_off, data);
    update_command(cfg, bdf, command::INTX_DISABLE | command::BUS_MASTER, 0);
    cfg.write16(bdf, control_off, (control & !(7 << 4)) | 1);
    Ok(cap)
}

#[cfg(target_os = "none")]
pub mod hw;
#[cfg(target_os = "none")]
pub use hw::{access, init, Access};

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    /// A fake function: 256 bytes of config space plus, per dword, which bits
    /// are writable (BARs: size masks).
    #[derive(Clone)]
    struct FakeFn {
        cfg: [u8; 256],
        writable: [u32; 64],
        /// What a dword reads after all-ones is written to it (a device that
        /// lies about its BAR size), until the next write.
        probe_reply: [Option<u32>; 64],
    }

    impl FakeFn {
        fn new(vendor: u16, device: u16, class: u32, header: u8) -> Self {
            let mut f = FakeFn {
                cfg: [0; 256],
                writable: [0; 64],
                probe_reply: [None; 64],
            };
            f.set32(0, u32::from(vendor) | (u32::from(device) << 16));
            f.set32(8, class << 8 | 1);
            f.cfg[0x0e] = header;
            f.writable[1] = 0xffff; // command
            f.writable[0x3c / 4] = 0xff; // interrupt line
            f
        }
        fn set32(&mut self, off: usize, v: u32) {
            self.cfg[off..off + 4].copy_from_slice(&v.to_le_bytes());
        }
        fn get32(&self, off: usize) -> u32 {
            u32::from_le_bytes(self.cfg[off..off + 4].try_into().unwrap())
        }
        /// A 32-bit memory BAR of `size` at `addr`.
        fn mem_bar(mut self, i: usize, addr: u32, size: u32) -> Self {
            self.set32(0x10 + 4 * i, addr);
            self.writable[4 + i] = !(size - 1) & 0xffff_fff0;
            self
        }
        fn mem64_bar(mut self, i: usize, addr: u64, size: u64) -> Self {
            self.set32(0x10 + 4 * i, addr as u32 | 0b100 | 8);
            self.set32(0x14 + 4 * i, (addr >> 32) as u32);
            let m = !(size - 1);
            self.writable[4 + i] = m as u32 & 0xffff_fff0;
            self.writable[5 + i] = (m >> 32) as u32;
            self
        }
        fn io_bar(mut self, i: usize, port: u32, size: u32) -> Self {
            self.set32(0x10 + 4 * i, port | 1);
            self.writable[4 + i] = !(size - 1) & 0xffff_fffc;
            self
        }
        fn caps(mut self, chain: &[(u8, u8, u8)]) -> Self {
            // (offset, id, next)
            self.cfg[6] |= STATUS_CAP_LIST as u8;
            self.cfg[0x34] = chain.first().map_or(0, |c| c.0);
            for &(off, id, next) in chain {
                self.cfg[off as usize] = id;
                self.cfg[off as usize + 1] = next;
            }
            self
        }
    }

    #[derive(Default)]
    struct FakeBus {
        fns: RefCell<BTreeMap<Bdf, FakeFn>>,
        writes: RefCell<Vec<(Bdf, u16, u32)>>,
    }

    impl FakeBus {
        fn add(&self, bus: u8, dev: u8, func: u8, f: FakeFn) {
            self.fns
                .borrow_mut()
                .insert(Bdf::new(bus, dev, func).unwrap(), f);
        }
    }

    impl ConfigSpace for FakeBus {
        fn read32(&self, bdf: Bdf, offset: u16) -> u32 {
            self.fns
                .borrow()
                .get(&bdf)
                .map_or(u32::MAX, |f| f.get32(usize::from(offset & 0xfc)))
        }
        fn write32(&self, bdf: Bdf, offset: u16, value: u32) {
            self.writes.borrow_mut().push((bdf, offset, value));
            if let Some(f) = self.fns.borrow_mut().get_mut(&bdf) {
                let off = usize::from(offset & 0xfc);
                let w = f.writable[off / 4];
                let new = match f.probe_reply[off / 4] {
                    Some(reply) if value == u32::MAX => reply,
                    _ => (f.get32(off) & !w) | (value & w),
                };
                f.set32(off, new);
            }
        }
    }

    fn bdf(b: u8, d: u8, f: u8) -> Bdf {
        Bdf::new(b, d, f).unwrap()
    }

    fn e1000() -> FakeFn {
        let mut f = FakeFn::new(0x8086, 0x100e, 0x02_00_00, 0)
            .mem_bar(0, 0xfebc_0000, 0x2_0000)
            .io_bar(1, 0xc000, 0x40);
        f.cfg[0x3c] = 11;
        f.cfg[0x3d] = 1;
        f
    }

    #[test]
    fn enumerates_through_bridges_and_functions() {
        let bus = FakeBus::default();
        bus.add(0, 0, 0, FakeFn::new(0x8086, 0x1237, 0x06_00_00, 0));
        bus.add(0, 3, 0, e1000());
        // A multi-function device with functions 0 and 2.
        bus.add(0, 5, 0, FakeFn::new(0x1af4, 0x1000, 0x02_00_00, 0x80));
        bus.add(0, 5, 2, FakeFn::new(0x1af4, 0x1001, 0x01_00_00, 0));
        // A bridge to bus 1, and a bridge on bus 1 pointing back at bus 0.
        let mut br = FakeFn::new(0x1b36, 1, 0x06_04_00, 1);
        br.cfg[0x19] = 1;
        bus.add(0, 30, 0, br.clone());
        bus.add(1, 0, 0, FakeFn::new(0x1af4, 0x1042, 0x01_00_00, 0));
        br.cfg[0x19] = 0;
        bus.add(1, 1, 0, br);
        let mut found = Vec::new();
        enumerate(&bus, 0, |f| found.push((f.bdf, f.vendor, f.device)));
        found.sort();
        assert_eq!(
            found,
            [
                (bdf(0, 0, 0), 0x8086, 0x1237),
                (bdf(0, 3, 0), 0x8086, 0x100e),
                (bdf(0, 5, 0), 0x1af4, 0x1000),
                (bdf(0, 5, 2), 0x1af4, 0x1001),
                (bdf(0, 30, 0), 0x1b36, 1),
                (bdf(1, 0, 0), 0x1af4, 0x1042),
                (bdf(1, 1, 0), 0x1b36, 1),
            ]
        );
        let f = Function::read(&bus, bdf(0, 3, 0)).unwrap();
        assert_eq!((f.class, f.irq_line, f.irq_pin), (2, 11, 1));
        assert_eq!(std::format!("{f}"), "00:03.0 8086:100e class 02.00.00");
    }

    #[test]
    fn bars_are_sized_and_decoding_restored() {
        let bus = FakeBus::default();
        bus.add(
            0,
            3,
            0,
            e1000()
                .mem64_bar(2, 0x80_0000_0000, 0x4000)
                .mem_bar(4, 0, 0x1000),
        );
        bus.write32(bdf(0, 3, 0), reg::COMMAND, 0x7);
        let f = Function::read(&bus, bdf(0, 3, 0)).unwrap();
        assert_eq!(
            read_bar(&bus, &f, 0),
            Ok(Bar::Memory {
                addr: 0xfebc_0000,
                size: 0x2_0000,
                prefetchable: false,
                wide: false
            })
        );
        assert_eq!(
            read_bar(&bus, &f, 1),
            Ok(Bar::Io {
                port: 0xc000,
                size: 0x40
            })
        );
        assert_eq!(
            read_bar(&bus, &f, 2),
            Ok(Bar::Memory {
                addr: 0x80_0000_0000,
                size: 0x4000,
                prefetchable: true,
                wide: true
            })
        );
        assert_eq!(read_bar(&bus, &f, 4), Err(BarError::Unassigned(4)));
        assert_eq!(read_bar(&bus, &f, 5), Err(BarError::NotImplemented(5)));
        assert_eq!(read_bar(&bus, &f, 6), Err(BarError::NoSuchBar(6)));
        // Decoding was off during each probe and is back on.
        assert_eq!(bus.read16(bdf(0, 3, 0), reg::COMMAND), 0x7);
        let writes = bus.writes.borrow();
        let probe = writes
            .iter()
            .position(|w| w.1 == 0x10 && w.2 == u32::MAX)
            .unwrap();
        let cmd_before = writes[..probe].iter().rev().find(|w| w.1 == 4).unwrap();
        assert_eq!(cmd_before.2 & 3, 0);
    }

    #[test]
    fn hostile_bars_are_rejected() {
        let bus = FakeBus::default();
        let mut f = e1000();
        // Misaligned: a 128 KiB BAR at a 64 KiB boundary.
        f.set32(0x10, 0xfebd_0000);
        f.probe_reply[4] = Some(0xfffe_0000);
        // Impossible size: mask with a hole (not a power of two).
        f.set32(0x14, 0xe001);
        f.writable[5] = 0xffff_ffec;
        // 64-bit BAR in the last slot.
        f.set32(0x24, 0b100);
        f.writable[9] = 0xffff_f000;
        // Reserved type 0b11.
        f.set32(0x18, 0b110);
        f.writable[6] = 0xffff_f000;
        // Wrapping 64-bit BAR: 8 KiB at the top of the address space.
        f.set32(0x1c, 0xffff_e000 | 0b100);
        f.set32(0x20, 0xffff_ffff);
        f.writable[7] = 0xffff_e000;
        f.writable[8] = 0xffff_ffff;
        bus.add(0, 3, 0, f);
        let f = Function::read(&bus, bdf(0, 3, 0)).unwrap();
        assert_eq!(
            read_bar(&bus, &f, 0),
            Err(BarError::Misaligned(0, 0xfebd_0000))
        );
        assert!(matches!(
            read_bar(&bus, &f, 1),
            Err(BarError::BadSize(1, _))
        ));
        assert_eq!(read_bar(&bus, &f, 2), Err(BarError::ReservedType(2)));
        // 0xffff_ffff_ffff_e000 + 0x2000 wraps to exactly 0: an overflow.
        assert_eq!(read_bar(&bus, &f, 3), Err(BarError::Overflow(3)));
        assert_eq!(read_bar(&bus, &f, 5), Err(BarError::NoSuchBar(5)));
    }

    #[test]
    fn capability_walk_is_bounded() {
        let bus = FakeBus::default();
        bus.add(
            0,
            1,
            0,
            e1000().caps(&[(0x40, 0x01, 0x50), (0x50, CAP_MSI, 0x60), (0x60, 9, 0)]),
        );
        // A loop: 0x40 -> 0x44 -> 0x40.
        bus.add(0, 2, 0, e1000().caps(&[(0x40, 9, 0x44), (0x44, 9, 0x40)]));
        // A pointer into the header.
        bus.add(0, 4, 0, e1000().caps(&[(0x40, 9, 0x10)]));
        let caps: Vec<_> = capabilities(&bus, bdf(0, 1, 0)).collect();
        assert_eq!(caps, [(1, 0x40), (CAP_MSI, 0x50), (9, 0x60)]);
        assert_eq!(capabilities(&bus, bdf(0, 2, 0)).count(), MAX_CAPS);
        assert_eq!(capabilities(&bus, bdf(0, 4, 0)).count(), 1);
        assert_eq!(find_capability(&bus, bdf(0, 2, 0), CAP_MSI), None);
        // No capability list bit: nothing, even with a pointer.
        let mut f = e1000();
        f.cfg[0x34] = 0x40;
        bus.add(0, 5, 0, f);
        assert_eq!(capabilities(&bus, bdf(0, 5, 0)).count(), 0);
    }

    #[test]
    fn msi_programming() {
        let bus = FakeBus::default();
        let mut f = e1000().caps(&[(0x50, CAP_MSI, 0)]);
        f.cfg[0x52] = 0x80; // 64-bit capable
        f.writable[0x50 / 4] = 0xffff_0000;
        f.writable[0x54 / 4] = u32::MAX;
        f.writable[0x58 / 4] = u32::MAX;
        f.writable[0x5c / 4] = 0xffff;
        bus.add(0, 3, 0, f.clone());
        let (addr, data) = msi_message(2, 0x41);
        assert_eq!((addr, data), (0xfee0_2000, 0x41));
        assert_eq!(enable_msi(&bus, bdf(0, 3, 0), addr, data), Ok(0x50));
        assert_eq!(bus.read32(bdf(0, 3, 0), 0x54), 0xfee0_2000);
        assert_eq!(bus.read32(bdf(0, 3, 0), 0x58), 0);
        assert_eq!(bus.read16(bdf(0, 3, 0), 0x5c), 0x41);
        assert_eq!(bus.read16(bdf(0, 3, 0), 0x52) & 1, 1);
        assert_ne!(
            bus.read16(bdf(0, 3, 0), reg::COMMAND) & command::INTX_DISABLE,
            0
        );
        // 32-bit only function.
        f.cfg[0x52] = 0;
        bus.add(0, 4, 0, f);
        assert_eq!(enable_msi(&bus, bdf(0, 4, 0), 0xfee0_0000, 0x30), Ok(0x50));
        assert_eq!(bus.read16(bdf(0, 4, 0), 0x58), 0x30);
        assert_eq!(
            enable_msi(&bus, bdf(0, 4, 0), 1 << 32, 0x30),
            Err(MsiError::AddressTooWide(1 << 32))
        );
        bus.add(0, 6, 0, e1000());
        assert_eq!(
            enable_msi(&bus, bdf(0, 6, 0), 0xfee0_0000, 0x30),
            Err(MsiError::NoCapability)
        );
    }

    #[test]
    fn narrow_accessors() {
        let bus = FakeBus::default();
        bus.add(0, 3, 0, e1000());
        let b = bdf(0, 3, 0);
        assert_eq!(bus.read16(b, 2), 0x100e);
        assert_eq!(bus.read8(b, 0x3d), 1);
        bus.write16(b, reg::COMMAND, 0x0406);
        assert_eq!(bus.read16(b, reg::COMMAND), 0x0406);
        update_command(&bus, b, command::IO, command::BUS_MASTER);
        assert_eq!(bus.read16(b, reg::COMMAND), 0x0403);
        assert_eq!(Bdf::new(0, 32, 0), None);
        assert_eq!(Bdf::new(0, 1, 8), None);
        assert_eq!(std::format!("{}", bdf(1, 0x1f, 7)), "01:1f.7");
    }
}
