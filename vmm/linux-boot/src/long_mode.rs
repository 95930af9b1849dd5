//! The initial long-mode state the 64-bit boot protocol requires: identity
//! page tables, a GDT with `__BOOT_CS` / `__BOOT_DS`, and the register values
//! the VMM loads into the VCPU.

use pvh_loader::{GuestMemory, MemoryError};

/// Guest-physical address of the GDT (null, null, `__BOOT_CS`, `__BOOT_DS`, TSS).
pub const GDT_GPA: u64 = 0x1000;
/// Guest-physical address of the (unused, all-zero) 64-bit TSS that `TR` names.
pub const TSS_GPA: u64 = 0x1080;
/// Size of a 64-bit TSS; `TR`'s limit is this minus one.
pub const TSS_SIZE: u64 = 0x68;
/// Initial `RSP`: the top of the stack page `0x8000..0x9000`.
pub const STACK_TOP: u64 = 0x9000;
/// Guest-physical address of the PML4 (the value of `CR3`).
pub const PML4_GPA: u64 = 0x9000;
/// Guest-physical address of the page-directory-pointer table.
pub const PDPT_GPA: u64 = 0xA000;
/// Guest-physical address of the first of the four page directories.
pub const PD_GPA: u64 = 0xB000;
/// End (exclusive) of the page tables.
pub const PAGE_TABLES_END: u64 = 0xF000;
/// The identity map covers guest-physical `[0, IDENTITY_MAP_END)` with 2 MiB pages.
pub const IDENTITY_MAP_END: u64 = 1 << 32;

/// `__BOOT_CS`: 64-bit flat code segment selector.
pub const BOOT_CS: u16 = 0x10;
/// `__BOOT_DS`: flat data segment selector.
pub const BOOT_DS: u16 = 0x18;
/// Selector of the TSS descriptor (16 bytes: GDT entries 4 and 5).
pub const BOOT_TSS: u16 = 0x20;
/// Number of bytes of GDT: six 8-byte entries.
pub const GDT_SIZE: u64 = 48;

/// `CR0`: PE | ET | NE | PG.
pub const CR0: u64 = 0x8000_0031;
/// `CR4`: PAE.
pub const CR4: u64 = 0x20;
/// `EFER`: LME | LMA.
pub const EFER: u64 = 0x500;
/// `RFLAGS`: only the reserved bit 1 (interrupts off).
pub const RFLAGS: u64 = 0x2;

/// Access rights of a 64-bit code segment in VMX format: type 0xB (execute/read,
/// accessed), S, DPL 0, P, L, G.
pub const CODE64_AR: u32 = 0xA09B;
/// Access rights of a flat data segment in VMX format: type 3 (read/write,
/// accessed), S, DPL 0, P, D/B, G.
pub const DATA_AR: u32 = 0xC093;
/// Access rights of a busy 64-bit TSS in VMX format: type 0xB, P.
pub const TSS_AR: u32 = 0x008B;
/// VMX access-rights "unusable" bit (for `LDTR`).
pub const UNUSABLE_AR: u32 = 1 << 16;

const GDT_NULL: u64 = 0;
/// Flat 64-bit code: base 0, limit 0xFFFFF (4 KiB granular), access 0x9B, flags L|G.
const GDT_CODE64: u64 = 0x00AF_9B00_0000_FFFF;
/// Flat data: base 0, limit 0xFFFFF (4 KiB granular), access 0x93, flags D|G.
const GDT_DATA: u64 = 0x00CF_9300_0000_FFFF;

/// A segment register as the VMM loads it into the VMCS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Selector.
    pub selector: u16,
    /// Base address.
    pub base: u64,
    /// Limit in bytes (already scaled by the granularity bit).
    pub limit: u32,
    /// Access rights in the VMX guest-state format.
    pub access_rights: u32,
}

/// A descriptor-table register (`GDTR` or `IDTR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DescriptorTable {
    /// Guest-physical (= linear, identity-mapped) base.
    pub base: u64,
    /// Limit: size in bytes minus one.
    pub limit: u16,
}

/// The VCPU state at the 64-bit kernel entry.
///
/// Everything not named here is zero: other general-purpose registers, `CR2`,
/// `DR7` = 0x400 as after reset, no pending events, activity state active.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LongModeState {
    /// `RIP`: the 64-bit entry (`load address + 0x200`).
    pub rip: u64,
    /// `RSI`: guest-physical address of `boot_params`.
    pub rsi: u64,
    /// `RSP`: [`STACK_TOP`] (the protocol needs no stack; this one is harmless).
    pub rsp: u64,
    /// `RFLAGS`: [`RFLAGS`].
    pub rflags: u64,
    /// `CR0`: [`CR0`].
    pub cr0: u64,
    /// `CR3`: [`PML4_GPA`].
    pub cr3: u64,
    /// `CR4`: [`CR4`].
    pub cr4: u64,
    /// `EFER`: [`EFER`]; the VM-entry control "IA-32e mode guest" must be set.
    pub efer: u64,
    /// `CS` = `__BOOT_CS`.
    pub cs: Segment,
    /// `DS`, `ES`, `SS` (and `FS`, `GS`) = `__BOOT_DS`.
    pub ds: Segment,
    /// `TR`: a busy 64-bit TSS at [`TSS_GPA`] (VM entry requires a usable TR).
    pub tr: Segment,
    /// `LDTR`: unusable.
    pub ldtr: Segment,
    /// `GDTR`: base [`GDT_GPA`], limit `GDT_SIZE - 1`.
    pub gdt: DescriptorTable,
    /// `IDTR`: base 0, limit 0 (interrupts are off; the kernel loads its own).
    pub idt: DescriptorTable,
}

/// The register state for entering a kernel at `entry_64` with `boot_params` at `boot_params`.
pub fn long_mode_state(entry_64: u64, boot_params: u64) -> LongModeState {
    LongModeState {
        rip: entry_64,
        rsi: boot_params,
        rsp: STACK_TOP,
        rflags: RFLAGS,
        cr0: CR0,
        cr3: PML4_GPA,
        cr4: CR4,
        efer: EFER,
        cs: Segment {
            selector: BOOT_CS,
            base: 0,
            limit: 0xFFFF_FFFF,
            access_rights: CODE64_AR,
        },
        ds: Segment {
            selector: BOOT_DS,
            base: 0,
            limit: 0xFFFF_FFFF,
            access_rights: DATA_AR,
        },
        tr: Segment {
            selector: BOOT_TSS,
            base: TSS_GPA,
            limit: (TSS_SIZE as u32).saturating_sub(1),
            access_rights: TSS_AR,
        },
        ldtr: Segment {
            selector: 0,
            base: 0,
            limit: 0,
            access_rights: UNUSABLE_AR,
        },
        gdt: DescriptorTable {
            base: GDT_GPA,
            limit: (GDT_SIZE as u16).saturating_sub(1),
        },
        idt: DescriptorTable { base: 0, limit: 0 },
    }
}

/// The GDT's bytes: null, null, `__BOOT_CS`, `__BOOT_DS`, and a 16-byte TSS descriptor.
pub fn gdt_bytes() -> [u8; GDT_SIZE as usize] {
    let tss_limit = TSS_SIZE.saturating_sub(1);
    let base = TSS_GPA;
    // Low 8 bytes of a system descriptor: limit 15:0, base 23:0, type/P, limit 19:16, base 31:24.
    let tss_lo = (tss_limit & 0xFFFF)
        | ((base & 0xFF_FFFF) << 16)
        | (u64::from(TSS_AR & 0xFF) << 40)
        | (((tss_limit >> 16) & 0xF) << 48)
        | (((base >> 24) & 0xFF) << 56);
    let tss_hi = base >> 32;
    let mut out = [0u8; GDT_SIZE as usize];
    for (chunk, v) in out
        .chunks_exact_mut(8)
        .zip([GDT_NULL, GDT_NULL, GDT_CODE64, GDT_DATA, tss_lo, tss_hi])
    {
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    out
}

const PTE_PRESENT: u64 = 1 << 0;
const PTE_WRITABLE: u64 = 1 << 1;
const PTE_HUGE: u64 = 1 << 7;
const PAGE: u64 = 0x1000;
const HUGE_PAGE: u64 = 0x20_0000;

/// Writes the GDT, the TSS, the stack page and the identity page tables
/// (`[0, 4 GiB)` with 2 MiB pages) into guest memory; the page at
/// `0x1000` and `0x8000..0xF000` are overwritten entirely.
pub fn write_long_mode_tables<M: GuestMemory + ?Sized>(mem: &mut M) -> Result<(), MemoryError> {
    mem.fill(GDT_GPA, PAGE, 0)?;
    mem.write(GDT_GPA, &gdt_bytes())?;
    mem.fill(STACK_TOP.saturating_sub(PAGE), PAGE, 0)?;

    let mut page = [0u8; PAGE as usize];
    // PML4: entry 0 -> PDPT.
    if let Some(e) = page.get_mut(..8) {
        e.copy_from_slice(&(PDPT_GPA | PTE_PRESENT | PTE_WRITABLE).to_le_bytes());
    }
    mem.write(PML4_GPA, &page)?;
    // PDPT: entries 0..4 -> the four page directories.
    page.fill(0);
    let mut pd = PD_GPA;
    for e in page.chunks_exact_mut(8).take(4) {
        e.copy_from_slice(&(pd | PTE_PRESENT | PTE_WRITABLE).to_le_bytes());
        pd = pd.saturating_add(PAGE);
    }
    mem.write(PDPT_GPA, &page)?;
    // Four page directories of 512 2 MiB pages each.
    let mut phys = 0u64;
    let mut pd = PD_GPA;
    while pd < PAGE_TABLES_END {
        for e in page.chunks_exact_mut(8) {
            e.copy_from_slice(&(phys | PTE_PRESENT | PTE_WRITABLE | PTE_HUGE).to_le_bytes());
            phys = phys.saturating_add(HUGE_PAGE);
        }
        mem.write(pd, &page)?;
        pd = pd.saturating_add(PAGE);
    }
    Ok(())
}
