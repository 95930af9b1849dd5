//! Parsing of the Xen PVH `struct hvm_start_info` handed to the guest in `ebx`.
//!
//! The structure comes from the VMM (cloister or QEMU) and is not trusted: every
//! address is read through a [`PhysMemory`] that may refuse, every count is
//! bounded, and every range is checked for overflow. The result is an owned
//! [`BootInfo`] that no longer points into boot memory, so the runtime may reuse
//! that memory (for example as heap) afterwards.
//!
//! The layout (`xen/include/public/arch-x86/hvm/start_info.h`) is the PVH
//! loader's own ([`pvh_loader::layout`]): what the VMM writes is read here
//! with the same offsets.

#![forbid(unsafe_code)]

use core::fmt;

use pvh_loader::layout::{
    memmap_entry as me, memmap_type, modlist_entry as mod_e, start_info as si, MEMMAP_ENTRY_SIZE,
    MODLIST_ENTRY_SIZE, START_INFO_SIZE, START_INFO_V0_SIZE,
};

/// Value of `hvm_start_info.magic` ("xEn3" with the 0x80 bit of the "E" set).
pub const MAGIC: u32 = pvh_loader::layout::MAGIC;
/// Longest command line kept, including its terminating NUL.
pub const MAX_CMDLINE: usize = 4096;
/// Most memory-map entries accepted.
pub const MAX_MEMMAP_ENTRIES: usize = 128;
/// Most boot modules accepted.
pub const MAX_MODULES: usize = 16;

/// Read access to guest-physical memory, as seen by the guest itself.
pub trait PhysMemory {
    /// Copies `buf.len()` bytes starting at guest-physical address `paddr` into `buf`.
    ///
    /// Returns `Err(Unreadable)` if any byte of the range may not be read.
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), Unreadable>;
}

/// A [`PhysMemory`] refused a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unreadable;

/// Why a start-info structure was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartInfoError {
    /// A structure the parser needed could not be read.
    Unreadable {
        /// Which structure.
        what: &'static str,
        /// Its guest-physical address.
        paddr: u64,
    },
    /// `magic` was not [`MAGIC`].
    BadMagic(u32),
    /// `memmap_entries` exceeds [`MAX_MEMMAP_ENTRIES`].
    TooManyMemmapEntries(u32),
    /// `nr_modules` exceeds [`MAX_MODULES`].
    TooManyModules(u32),
    /// A table's size in bytes overflows the address space.
    TableOverflow(&'static str),
    /// Memory-map entry `index` has `addr + size` beyond 2^64.
    MemmapEntryOverflow(usize),
    /// Module `index` has `paddr + size` beyond 2^64.
    ModuleOverflow(usize),
}

impl fmt::Display for StartInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable { what, paddr } => write!(f, "cannot read {what} at {paddr:#x}"),
            Self::BadMagic(m) => write!(f, "bad magic {m:#010x} (expected {MAGIC:#010x})"),
            Self::TooManyMemmapEntries(n) => {
                write!(f, "{n} memory-map entries (at most {MAX_MEMMAP_ENTRIES})")
            }
            Self::TooManyModules(n) => write!(f, "{n} modules (at most {MAX_MODULES})"),
            Self::TableOverflow(what) => write!(f, "{what} size overflows"),
            Self::MemmapEntryOverflow(i) => write!(f, "memory-map entry {i} wraps around"),
            Self::ModuleOverflow(i) => write!(f, "module {i} wraps around"),
        }
    }
}

/// Why the command line was dropped (the runtime then uses an empty one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdlineError {
    /// Part of the string could not be read before its NUL.
    Unreadable(u64),
    /// No NUL within [`MAX_CMDLINE`] bytes.
    TooLong,
    /// The bytes are not UTF-8.
    NotUtf8,
}

impl fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable(a) => write!(f, "cannot read command line at {a:#x}"),
            Self::TooLong => write!(f, "command line longer than {} bytes", MAX_CMDLINE - 1),
            Self::NotUtf8 => write!(f, "command line is not UTF-8"),
        }
    }
}

/// Kind of a memory-map entry (`XEN_HVM_MEMMAP_TYPE_*`, the e820 numbering).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryType {
    /// Usable RAM (1).
    Ram,
    /// Reserved (2).
    Reserved,
    /// ACPI tables, reclaimable after reading them (3).
    Acpi,
    /// ACPI non-volatile storage (4).
    Nvs,
    /// Unusable (5).
    Unusable,
    /// Disabled (6).
    Disabled,
    /// Persistent memory (7).
    Pmem,
    /// Any other value.
    Other(u32),
}

impl MemoryType {
    /// Decodes the raw `type` field.
    pub const fn from_raw(raw: u32) -> Self {
        match raw {
            memmap_type::RAM => Self::Ram,
            memmap_type::RESERVED => Self::Reserved,
            memmap_type::ACPI => Self::Acpi,
            memmap_type::NVS => Self::Nvs,
            memmap_type::UNUSABLE => Self::Unusable,
            memmap_type::DISABLED => Self::Disabled,
            memmap_type::PMEM => Self::Pmem,
            other => Self::Other(other),
        }
    }
}

/// One memory-map entry; `addr + size` is known not to overflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemmapEntry {
    /// First guest-physical address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// What the range is.
    pub kind: MemoryType,
}

impl MemmapEntry {
    const EMPTY: Self = Self {
        addr: 0,
        size: 0,
        kind: MemoryType::Reserved,
    };

    /// One past the last address of the range.
    pub const fn end(&self) -> u64 {
        // Cannot overflow: checked when the entry was parsed.
        self.addr.wrapping_add(self.size)
    }
}

/// A [`MemoryType::Ram`] entry, for tests that build memory maps.
#[cfg(test)]
pub(crate) const fn ram(addr: u64, size: u64) -> MemmapEntry {
    MemmapEntry {
        addr,
        size,
        kind: MemoryType::Ram,
    }
}

/// One boot module (`struct hvm_modlist_entry`); `paddr + size` does not overflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Module {
    /// Guest-physical address of the module's bytes.
    pub paddr: u64,
    /// Length in bytes.
    pub size: u64,
    /// Guest-physical address of its NUL-terminated command line, 0 if none (not copied).
    pub cmdline_paddr: u64,
}

impl Module {
    const EMPTY: Self = Self {
        paddr: 0,
        size: 0,
        cmdline_paddr: 0,
    };
}

/// Owned copy of everything the runtime uses from `hvm_start_info`.
#[derive(Clone, Debug)]
pub struct BootInfo {
    paddr: u64,
    version: u32,
    flags: u32,
    rsdp_paddr: u64,
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
    cmdline_error: Option<CmdlineError>,
    memmap: [MemmapEntry; MAX_MEMMAP_ENTRIES],
    memmap_len: usize,
    modules: [Module; MAX_MODULES],
    modules_len: usize,
}

fn le_u32(b: &[u8], off: usize) -> u32 {
    let mut v = [0u8; 4];
    if let Some(s) = b.get(off..off + 4) {
        v.copy_from_slice(s);
    }
    u32::from_le_bytes(v)
}

fn le_u64(b: &[u8], off: usize) -> u64 {
    let mut v = [0u8; 8];
    if let Some(s) = b.get(off..off + 8) {
        v.copy_from_slice(s);
    }
    u64::from_le_bytes(v)
}

/// Address of element `index` of a table of `entry_len`-byte entries at `base`.
fn table_entry(
    base: u64,
    index: usize,
    entry_len: usize,
    what: &'static str,
) -> Result<u64, StartInfoError> {
    (index as u64)
        .checked_mul(entry_len as u64)
        .and_then(|off| base.checked_add(off))
        .ok_or(StartInfoError::TableOverflow(what))
}

/// Reads a NUL-terminated UTF-8 string of at most `buf.len() - 1` bytes at `paddr`.
///
/// Returns the length without the NUL. Reads never cross a 4 KiB page boundary in
/// one request, so a string ending just before unreadable memory is still found.
pub fn read_c_string(
    mem: &impl PhysMemory,
    paddr: u64,
    buf: &mut [u8],
) -> Result<usize, CmdlineError> {
    let mut len = 0usize;
    while len < buf.len() {
        let addr = paddr
            .checked_add(len as u64)
            .ok_or(CmdlineError::Unreadable(paddr))?;
        let to_page_end = 4096 - (addr % 4096) as usize;
        let chunk = to_page_end.min(buf.len() - len);
        let dst = &mut buf[len..len + chunk];
        mem.read(addr, dst)
            .map_err(|Unreadable| CmdlineError::Unreadable(addr))?;
        if let Some(nul) = dst.iter().position(|&b| b == 0) {
            let total = len + nul;
            return match core::str::from_utf8(&buf[..total]) {
                Ok(_) => Ok(total),
                Err(_) => Err(CmdlineError::NotUtf8),
            };
        }
        len += chunk;
    }
    Err(CmdlineError::TooLong)
}

impl BootInfo {
    /// Parses the start-info structure at guest-physical `paddr`.
    ///
    /// Structural problems (magic, unreadable tables, absurd counts, wrapping ranges)
    /// are errors. A bad command line is not: it becomes empty and
    /// [`BootInfo::cmdline_error`] says why.
    pub fn parse(mem: &impl PhysMemory, paddr: u64) -> Result<Self, StartInfoError> {
        let mut hdr = [0u8; START_INFO_SIZE];
        let unreadable = |what, paddr| StartInfoError::Unreadable { what, paddr };
        // `magic` and `version` first: they say how much more there is.
        mem.read(paddr, &mut hdr[..si::FLAGS])
            .map_err(|_| unreadable("hvm_start_info", paddr))?;
        let magic = le_u32(&hdr, si::MAGIC);
        if magic != MAGIC {
            return Err(StartInfoError::BadMagic(magic));
        }
        let version = le_u32(&hdr, si::VERSION);
        let hdr_len = if version >= 1 {
            START_INFO_SIZE
        } else {
            START_INFO_V0_SIZE
        };
        mem.read(paddr, &mut hdr[..hdr_len])
            .map_err(|_| unreadable("hvm_start_info", paddr))?;

        let mut info = BootInfo {
            paddr,
            version,
            flags: le_u32(&hdr, si::FLAGS),
            rsdp_paddr: le_u64(&hdr, si::RSDP_PADDR),
            cmdline: [0; MAX_CMDLINE],
            cmdline_len: 0,
            cmdline_error: None,
            memmap: [MemmapEntry::EMPTY; MAX_MEMMAP_ENTRIES],
            memmap_len: 0,
            modules: [Module::EMPTY; MAX_MODULES],
            modules_len: 0,
        };

        let nr_modules = le_u32(&hdr, si::NR_MODULES);
        let modlist_paddr = le_u64(&hdr, si::MODLIST_PADDR);
        if nr_modules as usize > MAX_MODULES {
            return Err(StartInfoError::TooManyModules(nr_modules));
        }
        for i in 0..nr_modules as usize {
            let at = table_entry(modlist_paddr, i, MODLIST_ENTRY_SIZE, "module list")?;
            let mut e = [0u8; MODLIST_ENTRY_SIZE];
            mem.read(at, &mut e)
                .map_err(|_| unreadable("module list", at))?;
            let m = Module {
                paddr: le_u64(&e, mod_e::PADDR),
                size: le_u64(&e, mod_e::SIZE),
                cmdline_paddr: le_u64(&e, mod_e::CMDLINE_PADDR),
            };
            if m.paddr.checked_add(m.size).is_none() {
                return Err(StartInfoError::ModuleOverflow(i));
            }
            info.modules[i] = m;
            info.modules_len = i + 1;
        }

        if version >= 1 {
            let memmap_paddr = le_u64(&hdr, si::MEMMAP_PADDR);
            let entries = le_u32(&hdr, si::MEMMAP_ENTRIES);
            if entries as usize > MAX_MEMMAP_ENTRIES {
                return Err(StartInfoError::TooManyMemmapEntries(entries));
            }
            for i in 0..entries as usize {
                let at = table_entry(memmap_paddr, i, MEMMAP_ENTRY_SIZE, "memory map")?;
                let mut e = [0u8; MEMMAP_ENTRY_SIZE];
                mem.read(at, &mut e)
                    .map_err(|_| unreadable("memory map", at))?;
                let entry = MemmapEntry {
                    addr: le_u64(&e, me::ADDR),
                    size: le_u64(&e, me::SIZE),
                    kind: MemoryType::from_raw(le_u32(&e, me::TYPE)),
                };
                if entry.addr.checked_add(entry.size).is_none() {
                    return Err(StartInfoError::MemmapEntryOverflow(i));
                }
                info.memmap[i] = entry;
                info.memmap_len = i + 1;
            }
        }

        let cmdline_paddr = le_u64(&hdr, si::CMDLINE_PADDR);
        if cmdline_paddr != 0 {
            match read_c_string(mem, cmdline_paddr, &mut info.cmdline) {
                Ok(len) => info.cmdline_len = len,
                Err(e) => {
                    info.cmdline = [0; MAX_CMDLINE];
                    info.cmdline_error = Some(e);
                }
            }
        }
        Ok(info)
    }

    /// Guest-physical address the structure was read from.
    pub fn paddr(&self) -> u64 {
        self.paddr
    }

    /// `version` field (0 has no memory map; QEMU and cloister give 1).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// `flags` field (`SIF_*`).
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Guest-physical address of the ACPI RSDP, if the VMM gave one.
    pub fn rsdp_paddr(&self) -> Option<u64> {
        (self.rsdp_paddr != 0).then_some(self.rsdp_paddr)
    }

    /// The command line; empty if there was none or it was rejected.
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }

    /// Why the command line was rejected, if it was.
    pub fn cmdline_error(&self) -> Option<CmdlineError> {
        self.cmdline_error
    }

    /// The memory map, in the VMM's order (empty for version 0).
    pub fn memmap(&self) -> &[MemmapEntry] {
        &self.memmap[..self.memmap_len]
    }

    /// The boot modules.
    pub fn modules(&self) -> &[Module] {
        &self.modules[..self.modules_len]
    }

    /// Total bytes of [`MemoryType::Ram`] in the memory map.
    pub fn ram_bytes(&self) -> u64 {
        self.memmap()
            .iter()
            .filter(|e| e.kind == MemoryType::Ram)
            .fold(0u64, |acc, e| acc.saturating_add(e.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// Guest memory for tests: a window of bytes at a base address.
    struct FakeMem {
        base: u64,
        bytes: Vec<u8>,
    }

    impl FakeMem {
        fn new(base: u64, len: usize) -> Self {
            FakeMem {
                base,
                bytes: std::vec![0; len],
            }
        }
        fn put(&mut self, paddr: u64, data: &[u8]) {
            let off = (paddr - self.base) as usize;
            self.bytes[off..off + data.len()].copy_from_slice(data);
        }
        fn put_u32(&mut self, paddr: u64, v: u32) {
            self.put(paddr, &v.to_le_bytes());
        }
        fn put_u64(&mut self, paddr: u64, v: u64) {
            self.put(paddr, &v.to_le_bytes());
        }
    }

    impl PhysMemory for FakeMem {
        fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
            let off = paddr.checked_sub(self.base).ok_or(Unreadable)? as usize;
            let src = self
                .bytes
                .get(off..off.checked_add(buf.len()).ok_or(Unreadable)?)
                .ok_or(Unreadable)?;
            buf.copy_from_slice(src);
            Ok(())
        }
    }

    const SI: u64 = 0x1000;
    const CMD: u64 = 0x2000;
    const MAP: u64 = 0x3000;
    const MODS: u64 = 0x4000;

    /// A valid version-1 start info like QEMU's, with a 3-entry memory map.
    fn qemu_like() -> FakeMem {
        let mut m = FakeMem::new(0x1000, 0x4000);
        m.put_u32(SI, MAGIC);
        m.put_u32(SI + 4, 1);
        m.put_u32(SI + 8, 0);
        m.put_u32(SI + 12, 0);
        m.put_u64(SI + 24, CMD);
        m.put_u64(SI + 32, 0xf_5000);
        m.put_u64(SI + 40, MAP);
        m.put_u32(SI + 48, 3);
        m.put(CMD, b"console=ttyS0 steps=all\0");
        for (i, (addr, size, kind)) in [
            (0u64, 0x9_fc00u64, 1u32),
            (0xf_0000, 0x1_0000, 2),
            (0x10_0000, 0x3f0_0000, 1),
        ]
        .iter()
        .enumerate()
        {
            let at = MAP + (i * MEMMAP_ENTRY_SIZE) as u64;
            m.put_u64(at, *addr);
            m.put_u64(at + 8, *size);
            m.put_u32(at + 16, *kind);
        }
        m
    }

    #[test]
    fn parses_valid_v1() {
        let info = BootInfo::parse(&qemu_like(), SI).expect("valid start info");
        assert_eq!(info.version(), 1);
        assert_eq!(info.paddr(), SI);
        assert_eq!(info.cmdline(), "console=ttyS0 steps=all");
        assert_eq!(info.cmdline_error(), None);
        assert_eq!(info.rsdp_paddr(), Some(0xf_5000));
        assert_eq!(info.memmap().len(), 3);
        assert_eq!(info.memmap()[2], ram(0x10_0000, 0x3f0_0000));
        assert_eq!(info.memmap()[1].kind, MemoryType::Reserved);
        assert_eq!(info.ram_bytes(), 0x9_fc00 + 0x3f0_0000);
        assert!(info.modules().is_empty());
    }

    /// What the VMM's loader writes is what this parser reads.
    #[test]
    fn parses_what_the_loader_writes() {
        use pvh_loader::{MemMapEntry, MemoryType as Kind, StartInfo};
        let mut m = FakeMem::new(0x1000, 0x4000);
        let si = StartInfo {
            magic: pvh_loader::HVM_START_MAGIC,
            version: 1,
            flags: 3,
            cmdline_paddr: CMD,
            rsdp_paddr: 0xf_5000,
            memmap_paddr: MAP,
            memmap_entries: 2,
            ..StartInfo::default()
        };
        m.put(SI, &si.to_bytes());
        let map = [(0, 0x9_fc00, Kind::Ram), (0xf_0000, 0x1_0000, Kind::Acpi)];
        for (i, (addr, size, kind)) in map.into_iter().enumerate() {
            let e = MemMapEntry { addr, size, kind };
            m.put(MAP + 24 * i as u64, &e.to_bytes());
        }
        m.put(CMD, b"console=ttyS0\0");
        let info = BootInfo::parse(&m, SI).expect("the loader's start info");
        assert_eq!((info.version(), info.flags()), (1, 3));
        assert_eq!(info.cmdline(), "console=ttyS0");
        assert_eq!(info.rsdp_paddr(), Some(0xf_5000));
        assert_eq!(info.memmap()[0], ram(0, 0x9_fc00));
        assert_eq!(info.memmap()[1].kind, MemoryType::Acpi);
        assert_eq!(info.memmap().len(), 2);
    }

    #[test]
    fn rejects_bad_magic() {
        let mut m = qemu_like();
        m.put_u32(SI, 0xdead_beef);
        assert_eq!(
            BootInfo::parse(&m, SI).err(),
            Some(StartInfoError::BadMagic(0xdead_beef))
        );
    }

    #[test]
    fn rejects_unreadable_header() {
        let m = qemu_like();
        assert!(matches!(
            BootInfo::parse(&m, 0x10),
            Err(StartInfoError::Unreadable { .. })
        ));
        // Header straddling the end of readable memory.
        let end = 0x1000 + 0x4000 - 20;
        let mut m = qemu_like();
        m.put_u32(end, MAGIC);
        m.put_u32(end + 4, 1);
        assert!(matches!(
            BootInfo::parse(&m, end),
            Err(StartInfoError::Unreadable { .. })
        ));
    }

    #[test]
    fn version0_has_no_memmap() {
        let mut m = qemu_like();
        m.put_u32(SI + 4, 0);
        let info = BootInfo::parse(&m, SI).expect("v0 is valid");
        assert!(info.memmap().is_empty());
        assert_eq!(info.ram_bytes(), 0);
        assert_eq!(info.cmdline(), "console=ttyS0 steps=all");
    }

    #[test]
    fn rejects_huge_counts() {
        let mut m = qemu_like();
        m.put_u32(SI + 48, u32::MAX);
        assert_eq!(
            BootInfo::parse(&m, SI).err(),
            Some(StartInfoError::TooManyMemmapEntries(u32::MAX))
        );
        let mut m = qemu_like();
        m.put_u32(SI + 12, 17);
        assert_eq!(
            BootInfo::parse(&m, SI).err(),
            Some(StartInfoError::TooManyModules(17))
        );
    }

    #[test]
    fn rejects_wrapping_tables_and_entries() {
        let mut m = qemu_like();
        m.put_u64(SI + 40, u64::MAX - 30);
        assert!(BootInfo::parse(&m, SI).is_err());
        let mut m = qemu_like();
        m.put_u64(MAP, 0x1000);
        m.put_u64(MAP + 8, u64::MAX);
        assert_eq!(
            BootInfo::parse(&m, SI).err(),
            Some(StartInfoError::MemmapEntryOverflow(0))
        );
        let mut m = qemu_like();
        m.put_u64(SI + 40, 0x10_0000);
        assert!(matches!(
            BootInfo::parse(&m, SI),
            Err(StartInfoError::Unreadable {
                what: "memory map",
                ..
            })
        ));
    }

    #[test]
    fn parses_modules() {
        let mut m = qemu_like();
        m.put_u32(SI + 12, 2);
        m.put_u64(SI + 16, MODS);
        m.put_u64(MODS, 0x20_0000);
        m.put_u64(MODS + 8, 0x1234);
        m.put_u64(MODS + 32, 0x30_0000);
        m.put_u64(MODS + 40, 0x10);
        m.put_u64(MODS + 48, CMD);
        let info = BootInfo::parse(&m, SI).expect("modules valid");
        assert_eq!(info.modules().len(), 2);
        assert_eq!(
            info.modules()[0],
            Module {
                paddr: 0x20_0000,
                size: 0x1234,
                cmdline_paddr: 0
            }
        );
        assert_eq!(info.modules()[1].cmdline_paddr, CMD);
        m.put_u64(MODS + 40, u64::MAX);
        assert_eq!(
            BootInfo::parse(&m, SI).err(),
            Some(StartInfoError::ModuleOverflow(1))
        );
    }

    #[test]
    fn bad_cmdlines_become_empty() {
        // Not UTF-8.
        let mut m = qemu_like();
        m.put(CMD, b"abc\xff\xfe\0");
        let info = BootInfo::parse(&m, SI).expect("still valid");
        assert_eq!(info.cmdline(), "");
        assert_eq!(info.cmdline_error(), Some(CmdlineError::NotUtf8));
        // Unreadable address.
        let mut m = qemu_like();
        m.put_u64(SI + 24, 0x9999_0000);
        let info = BootInfo::parse(&m, SI).expect("still valid");
        assert_eq!(info.cmdline(), "");
        assert!(matches!(
            info.cmdline_error(),
            Some(CmdlineError::Unreadable(_))
        ));
        // No NUL before the end of readable memory.
        let mut m = qemu_like();
        let tail = 0x1000 + 0x4000 - 8;
        m.put(tail, b"xxxxxxxx");
        m.put_u64(SI + 24, tail);
        let info = BootInfo::parse(&m, SI).expect("still valid");
        assert!(matches!(
            info.cmdline_error(),
            Some(CmdlineError::Unreadable(_))
        ));
        // No cmdline at all.
        let mut m = qemu_like();
        m.put_u64(SI + 24, 0);
        let info = BootInfo::parse(&m, SI).expect("still valid");
        assert_eq!((info.cmdline(), info.cmdline_error()), ("", None));
    }

    #[test]
    fn cmdline_length_bound() {
        let mut m = FakeMem::new(0, 3 * 4096);
        m.put(100, &[b'a'; 5000]);
        let mut buf = [0u8; MAX_CMDLINE];
        assert_eq!(read_c_string(&m, 100, &mut buf), Err(CmdlineError::TooLong));
        m.put(100 + (MAX_CMDLINE as u64 - 1), b"\0");
        assert_eq!(read_c_string(&m, 100, &mut buf), Ok(MAX_CMDLINE - 1));
        // A string ending right at the end of readable memory, crossing a page.
        let mut m = FakeMem::new(0, 2 * 4096);
        m.put(4090, b"crosses-page\0");
        assert_eq!(read_c_string(&m, 4090, &mut buf), Ok(12));
        assert_eq!(
            read_c_string(&m, u64::MAX - 2, &mut buf),
            Err(CmdlineError::Unreadable(u64::MAX - 2))
        );
    }

    #[test]
    fn memory_type_decoding() {
        assert_eq!(MemoryType::from_raw(1), MemoryType::Ram);
        assert_eq!(MemoryType::from_raw(7), MemoryType::Pmem);
        assert_eq!(MemoryType::from_raw(0), MemoryType::Other(0));
        assert_eq!(MemoryType::from_raw(0xf00), MemoryType::Other(0xf00));
    }

    #[test]
    fn errors_display() {
        let s = std::format!("{}", StartInfoError::BadMagic(1));
        assert!(s.contains("bad magic"));
        let s = std::format!("{}", CmdlineError::TooLong);
        assert!(s.contains("4095"));
    }
}
