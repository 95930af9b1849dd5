//! The layout of Xen's PVH start-of-day structures, as
//! `xen/include/public/arch-x86/hvm/start_info.h` defines them: sizes, field
//! offsets and values (little-endian, no implicit padding).
//!
//! The loader writes the structures with these numbers ([`crate::StartInfo`],
//! [`crate::MemMapEntry`]); a guest reads them with the same ones (cloister's
//! unikernel runtime does), so the two sides cannot disagree.

/// `XEN_HVM_START_MAGIC_VALUE`: "xEn3" with the 0x80 bit of the "E" set.
pub const MAGIC: u32 = 0x336e_c578;

/// Size of `struct hvm_start_info`, version 0 (up to and including
/// `rsdp_paddr`).
pub const START_INFO_V0_SIZE: usize = 40;
/// Size of `struct hvm_start_info`, version 1 (adds `memmap_paddr`,
/// `memmap_entries` and `reserved`).
pub const START_INFO_SIZE: usize = 56;

/// Offsets of the fields of `struct hvm_start_info`.
pub mod start_info {
    /// `magic` (u32): [`super::MAGIC`].
    pub const MAGIC: usize = 0;
    /// `version` (u32): 1 has the memory-map fields.
    pub const VERSION: usize = 4;
    /// `flags` (u32): `SIF_*`.
    pub const FLAGS: usize = 8;
    /// `nr_modules` (u32).
    pub const NR_MODULES: usize = 12;
    /// `modlist_paddr` (u64).
    pub const MODLIST_PADDR: usize = 16;
    /// `cmdline_paddr` (u64).
    pub const CMDLINE_PADDR: usize = 24;
    /// `rsdp_paddr` (u64).
    pub const RSDP_PADDR: usize = 32;
    /// `memmap_paddr` (u64), version 1.
    pub const MEMMAP_PADDR: usize = 40;
    /// `memmap_entries` (u32), version 1; `reserved` (u32) follows at 52.
    pub const MEMMAP_ENTRIES: usize = 48;
}

/// Size of `struct hvm_modlist_entry`.
pub const MODLIST_ENTRY_SIZE: usize = 32;

/// Offsets of the fields of `struct hvm_modlist_entry`.
pub mod modlist_entry {
    /// `paddr` (u64): the module's bytes.
    pub const PADDR: usize = 0;
    /// `size` (u64).
    pub const SIZE: usize = 8;
    /// `cmdline_paddr` (u64); `reserved` (u64) follows at 24.
    pub const CMDLINE_PADDR: usize = 16;
}

/// Size of `struct hvm_memmap_table_entry`.
pub const MEMMAP_ENTRY_SIZE: usize = 24;

/// Offsets of the fields of `struct hvm_memmap_table_entry`.
pub mod memmap_entry {
    /// `addr` (u64).
    pub const ADDR: usize = 0;
    /// `size` (u64).
    pub const SIZE: usize = 8;
    /// `type` (u32, `XEN_HVM_MEMMAP_TYPE_*`); `reserved` (u32) follows at 20.
    pub const TYPE: usize = 16;
}

/// `XEN_HVM_MEMMAP_TYPE_*`: the memory-map entry types (the e820 numbering).
pub mod memmap_type {
    /// Usable RAM.
    pub const RAM: u32 = 1;
    /// Reserved, not usable.
    pub const RESERVED: u32 = 2;
    /// ACPI tables, reclaimable after reading them.
    pub const ACPI: u32 = 3;
    /// ACPI non-volatile storage.
    pub const NVS: u32 = 4;
    /// Unusable (errors detected).
    pub const UNUSABLE: u32 = 5;
    /// Disabled.
    pub const DISABLED: u32 = 6;
    /// Persistent memory.
    pub const PMEM: u32 = 7;
}
