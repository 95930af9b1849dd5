//! Xen's PVH start-of-day structures, encoded exactly as
//! `xen/include/public/arch-x86/hvm/start_info.h` lays them out
//! ([`crate::layout`]: little-endian, no implicit padding).

use crate::layout::{memmap_entry as me, memmap_type, start_info as si};
pub use crate::layout::{MAGIC as HVM_START_MAGIC, MEMMAP_ENTRY_SIZE, START_INFO_SIZE};

/// `struct hvm_start_info`, version 1.
///
/// | offset | field            |
/// |--------|------------------|
/// | 0      | `magic` (u32)    |
/// | 4      | `version` (u32)  |
/// | 8      | `flags` (u32)    |
/// | 12     | `nr_modules` (u32) |
/// | 16     | `modlist_paddr` (u64) |
/// | 24     | `cmdline_paddr` (u64) |
/// | 32     | `rsdp_paddr` (u64) |
/// | 40     | `memmap_paddr` (u64) |
/// | 48     | `memmap_entries` (u32) |
/// | 52     | `reserved` (u32, zero) |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StartInfo {
    /// [`HVM_START_MAGIC`].
    pub magic: u32,
    /// Structure version; 1 has the memory map fields.
    pub version: u32,
    /// `SIF_*` flags.
    pub flags: u32,
    /// Number of `hvm_modlist_entry` records at `modlist_paddr`.
    pub nr_modules: u32,
    /// Physical address of the module list, 0 if none.
    pub modlist_paddr: u64,
    /// Physical address of the NUL-terminated command line, 0 if none.
    pub cmdline_paddr: u64,
    /// Physical address of the ACPI RSDP, 0 if none.
    pub rsdp_paddr: u64,
    /// Physical address of the memory map, 0 if none.
    pub memmap_paddr: u64,
    /// Number of memory map entries.
    pub memmap_entries: u32,
}

impl StartInfo {
    /// The structure's in-memory bytes (the reserved word is zero).
    pub fn to_bytes(&self) -> [u8; START_INFO_SIZE] {
        let mut b = [0u8; START_INFO_SIZE];
        put(&mut b, si::MAGIC, &self.magic.to_le_bytes());
        put(&mut b, si::VERSION, &self.version.to_le_bytes());
        put(&mut b, si::FLAGS, &self.flags.to_le_bytes());
        put(&mut b, si::NR_MODULES, &self.nr_modules.to_le_bytes());
        put(&mut b, si::MODLIST_PADDR, &self.modlist_paddr.to_le_bytes());
        put(&mut b, si::CMDLINE_PADDR, &self.cmdline_paddr.to_le_bytes());
        put(&mut b, si::RSDP_PADDR, &self.rsdp_paddr.to_le_bytes());
        put(&mut b, si::MEMMAP_PADDR, &self.memmap_paddr.to_le_bytes());
        put(
            &mut b,
            si::MEMMAP_ENTRIES,
            &self.memmap_entries.to_le_bytes(),
        );
        b
    }

    /// Decodes the structure (as a guest would read it).
    pub fn from_bytes(b: &[u8; START_INFO_SIZE]) -> Self {
        StartInfo {
            magic: get32(b, si::MAGIC),
            version: get32(b, si::VERSION),
            flags: get32(b, si::FLAGS),
            nr_modules: get32(b, si::NR_MODULES),
            modlist_paddr: get64(b, si::MODLIST_PADDR),
            cmdline_paddr: get64(b, si::CMDLINE_PADDR),
            rsdp_paddr: get64(b, si::RSDP_PADDR),
            memmap_paddr: get64(b, si::MEMMAP_PADDR),
            memmap_entries: get32(b, si::MEMMAP_ENTRIES),
        }
    }
}

/// Memory map entry types (`XEN_HVM_MEMMAP_TYPE_*`, the ACPI/E820 address range types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryType {
    /// 1: usable RAM.
    Ram,
    /// 2: reserved, not usable.
    Reserved,
    /// 3: ACPI tables, reclaimable.
    Acpi,
    /// 4: ACPI non-volatile storage.
    Nvs,
    /// 5: unusable (errors detected).
    Unusable,
}

impl MemoryType {
    /// The numeric type written to the table.
    pub fn value(self) -> u32 {
        match self {
            MemoryType::Ram => memmap_type::RAM,
            MemoryType::Reserved => memmap_type::RESERVED,
            MemoryType::Acpi => memmap_type::ACPI,
            MemoryType::Nvs => memmap_type::NVS,
            MemoryType::Unusable => memmap_type::UNUSABLE,
        }
    }

    /// The type for a numeric value, if it is one of these.
    pub fn from_value(v: u32) -> Option<Self> {
        Some(match v {
            memmap_type::RAM => MemoryType::Ram,
            memmap_type::RESERVED => MemoryType::Reserved,
            memmap_type::ACPI => MemoryType::Acpi,
            memmap_type::NVS => MemoryType::Nvs,
            memmap_type::UNUSABLE => MemoryType::Unusable,
            _ => return None,
        })
    }
}

/// `struct hvm_memmap_table_entry`: `addr` (u64), `size` (u64), `type` (u32), `reserved` (u32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemMapEntry {
    /// Base guest-physical address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// What the range is.
    pub kind: MemoryType,
}

impl MemMapEntry {
    /// The entry's in-memory bytes (the reserved word is zero).
    pub fn to_bytes(&self) -> [u8; MEMMAP_ENTRY_SIZE] {
        let mut b = [0u8; MEMMAP_ENTRY_SIZE];
        put(&mut b, me::ADDR, &self.addr.to_le_bytes());
        put(&mut b, me::SIZE, &self.size.to_le_bytes());
        put(&mut b, me::TYPE, &self.kind.value().to_le_bytes());
        b
    }

    /// Decodes an entry; `None` for an unknown type.
    pub fn from_bytes(b: &[u8; MEMMAP_ENTRY_SIZE]) -> Option<Self> {
        Some(MemMapEntry {
            addr: get64(b, me::ADDR),
            size: get64(b, me::SIZE),
            kind: MemoryType::from_value(get32(b, me::TYPE))?,
        })
    }
}

/// Copies `src` to `dst[at..]`; a no-op if it would not fit (never the case
/// for the fixed offsets above).
fn put(dst: &mut [u8], at: usize, src: &[u8]) {
    if let Some(d) = at
        .checked_add(src.len())
        .and_then(|end| dst.get_mut(at..end))
    {
        d.copy_from_slice(src);
    }
}

fn get32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = at.checked_add(4).and_then(|end| b.get(at..end)) {
        w.copy_from_slice(s);
    }
    u32::from_le_bytes(w)
}

fn get64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(s) = at.checked_add(8).and_then(|end| b.get(at..end)) {
        w.copy_from_slice(s);
    }
    u64::from_le_bytes(w)
}
