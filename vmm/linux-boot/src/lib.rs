//! Loads a Linux bzImage into guest RAM through the 64-bit Linux boot
//! protocol (`Documentation/arch/x86/boot.rst`, "64-bit Boot Protocol").
//!
//! [`parse`] validates the setup header (boot flag 0xAA55, "HdrS", protocol
//! ≥ 2.12, `LOADED_HIGH`, `XLF_KERNEL_64`, `setup_sects`, `syssize`,
//! `init_size`, `kernel_alignment`); [`plan`] also checks the command line,
//! initrd and memory map and chooses where everything goes; [`load`] does
//! both, then writes `boot_params` (the "zero page"), the command line, the
//! protected-mode kernel, the initrd, and the page tables and GDT the 64-bit
//! entry needs. The VMM then enters the guest in long mode with the state in
//! [`LinuxBoot::cpu`] (`RIP` = [`LinuxBoot::entry_64`], `RSI` = `boot_params`).
//!
//! ```
//! # use linux_boot::*;
//! # fn demo(bzimage: &[u8], initrd: &[u8], ram: &mut [u8]) -> Result<(), BootError> {
//! let mut mem = SliceMemory::new(ram);
//! let map = pc_memmap(mem.size())?;
//! let cfg = BootConfig {
//!     cmdline: "console=ttyS0",
//!     initrd: Some(initrd),
//!     memmap: &map,
//!     acpi_rsdp: Some(0xE0000),
//! };
//! let boot = load(bzimage, &mut mem, &cfg)?;
//! // Load boot.cpu into the VCPU (CR3, GDTR, CS, ...) and enter at boot.entry_64.
//! # let _ = boot; Ok(()) }
//! ```
//!
//! Nothing is written unless all validation succeeds, so a rejected kernel
//! leaves guest RAM untouched.
//!
//! # Guest-physical layout
//!
//! | range                    | contents                                                    |
//! |--------------------------|-------------------------------------------------------------|
//! | `0x0000..0x1000`         | not written (real-mode IVT / BIOS data area)                |
//! | `0x1000..0x1030`         | GDT: null, null, `__BOOT_CS` 0x10, `__BOOT_DS` 0x18, TSS 0x20 ([`GDT_GPA`]) |
//! | `0x1080..0x10E8`         | the TSS `TR` names (all zero) ([`TSS_GPA`])                 |
//! | `0x7000..0x8000`         | `boot_params`, the zero page ([`ZERO_PAGE_GPA`])            |
//! | `0x8000..0x9000`         | initial stack, `RSP` = 0x9000 ([`STACK_TOP`])                |
//! | `0x9000..0xA000`         | PML4, `CR3` ([`PML4_GPA`])                                  |
//! | `0xA000..0xB000`         | PDPT                                                        |
//! | `0xB000..0xF000`         | four page directories: `[0, 4 GiB)` identity-mapped with 2 MiB pages |
//! | `0x2_0000..0x2_1000`     | NUL-terminated command line ([`CMDLINE_GPA`])               |
//! | `0xE_0000..0x10_0000`    | not written; for the ACPI tables (crate `acpi-tables`)      |
//! | `pref_address` (16 MiB for Debian) or the lowest RAM address ≥ 1 MiB aligned to `kernel_alignment` | the protected-mode kernel, with `init_size` bytes reserved for it |
//! | as high as possible below `min(initrd_addr_max + 1, 4 GiB, RAM end)`, page aligned | the initrd |
//!
//! Linux reserves the whole first MiB early, so nothing below 1 MiB is
//! reused while the kernel still needs it. The kernel and initrd go only
//! where the caller's memory map says RAM, never across a map entry, always
//! below 4 GiB (the identity map's end). Guest RAM is expected to start
//! zeroed: the loader does not clear the kernel's `init_size` area.
//!
//! # `boot_params`
//!
//! Zeroed, then the setup header is copied from the image (`0x1f1` up to
//! `0x202 + image[0x201]`, at most `0x290`) and these fields are set:
//! `type_of_loader` = 0xFF (undefined loader), `loadflags` = the image's with
//! `CAN_USE_HEAP`, `KEEP_SEGMENTS` and `KASLR_FLAG` cleared (the heap only
//! matters to the real-mode setup code, which the 64-bit entry skips),
//! `code32_start` = load address, `kernel_alignment` = the alignment used,
//! `cmd_line_ptr`/`ext_cmd_line_ptr`, `ramdisk_image`/`ramdisk_size` and
//! their `ext_` halves, `setup_data` = 0, `hardware_subarch` = 0 (PC),
//! `acpi_rsdp_addr`, and the e820 table from [`BootConfig::memmap`].
//!
//! # PVH
//!
//! The bzImage payload is a compressed `vmlinux` carrying the PVH note.
//! Decompressing it is out of scope for this `no_std` crate, so the PVH path
//! works only for kernels built with `CONFIG_KERNEL_UNCOMPRESSED`:
//! [`uncompressed_vmlinux`] returns that ELF for `pvh_loader::load`.
//! Debian's payload is xz ([`PayloadFormat::Xz`]).
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

mod error;
mod header;
mod long_mode;
mod params;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod test_image;
#[cfg(test)]
mod tests;

pub use error::BootError;
pub use header::{
    KernelInfo, PayloadFormat, BOOT_FLAG, CAN_USE_HEAP, ENTRY_64_OFFSET, HDRS_MAGIC, HDR_MAX_END,
    HDR_MIN_END, HDR_START, KASLR_FLAG, KEEP_SEGMENTS, LOADED_HIGH, MIN_PROTOCOL, QUIET_FLAG,
    XLF_CAN_BE_LOADED_ABOVE_4G, XLF_KERNEL_64,
};
pub use long_mode::{
    gdt_bytes, long_mode_state, write_long_mode_tables, DescriptorTable, LongModeState, Segment,
    BOOT_CS, BOOT_DS, BOOT_TSS, CODE64_AR, CR0, CR4, DATA_AR, EFER, GDT_GPA, GDT_SIZE,
    IDENTITY_MAP_END, PAGE_TABLES_END, PDPT_GPA, PD_GPA, PML4_GPA, RFLAGS, STACK_TOP, TSS_AR,
    TSS_GPA, TSS_SIZE, UNUSABLE_AR,
};
pub use params::{E820_ENTRY_SIZE, E820_MAX_ENTRIES, E820_TABLE_OFFSET};
pub use pvh_loader::{GuestMemory, MemMapEntry, MemoryError, MemoryType, SliceMemory};

/// Guest-physical address of `boot_params` (the value for `RSI`).
pub const ZERO_PAGE_GPA: u64 = 0x7000;
/// Size of `boot_params`.
pub const ZERO_PAGE_SIZE: u64 = 0x1000;
/// Guest-physical address of the command line.
pub const CMDLINE_GPA: u64 = 0x2_0000;
/// Bytes reserved for the command line, including its NUL.
pub const CMDLINE_MAX: usize = 4096;
/// The kernel and initrd are placed at or above this address (1 MiB).
pub const KERNEL_MIN_GPA: u64 = 0x10_0000;
/// Guest RAM must be at least this large ([`KERNEL_MIN_GPA`]) to hold the boot data.
pub const MIN_RAM: u64 = KERNEL_MIN_GPA;
/// Start of the BIOS area `pc_memmap` reserves (for the ACPI tables).
pub const BIOS_AREA_GPA: u64 = 0xE_0000;
/// End of conventional memory in `pc_memmap` (640 KiB).
pub const LOW_RAM_END: u64 = 0xA_0000;

const PAGE: u64 = 0x1000;

/// What to boot the kernel with, besides the image itself.
#[derive(Clone, Copy, Debug)]
pub struct BootConfig<'a> {
    /// Kernel command line: no NUL, at most `min(cmdline_size, CMDLINE_MAX - 1)` bytes.
    pub cmdline: &'a str,
    /// Initial RAM disk, if any (an empty one counts as none).
    pub initrd: Option<&'a [u8]>,
    /// The e820 memory map given to the kernel: at most 128 non-empty,
    /// non-overlapping entries; RAM entries must lie inside guest RAM.
    pub memmap: &'a [MemMapEntry],
    /// Guest-physical address of the ACPI RSDP for `boot_params.acpi_rsdp_addr`
    /// (`None`: 0, and Linux scans `0xE0000..0x100000` for it).
    pub acpi_rsdp: Option<u64>,
}

/// Where [`plan`] puts the kernel and initrd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The validated header.
    pub info: KernelInfo,
    /// Load address of the protected-mode kernel (its runtime start).
    pub kernel_gpa: u64,
    /// Alignment the load address satisfies, written to `kernel_alignment`.
    pub kernel_alignment: u32,
    /// Load address of the initrd (0 without one).
    pub initrd_gpa: u64,
    /// Initrd size in bytes (0 without one).
    pub initrd_size: u64,
}

/// What the VMM needs to start the guest after a successful [`load`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinuxBoot {
    /// The 64-bit entry point: `kernel_start + 0x200`.
    pub entry_64: u64,
    /// Guest-physical address of `boot_params` (`RSI`).
    pub boot_params_gpa: u64,
    /// Load address of the protected-mode kernel.
    pub kernel_start: u64,
    /// End of the kernel's reserved area: `kernel_start + init_size`.
    pub kernel_end: u64,
    /// Load address of the initrd (0 without one).
    pub initrd_start: u64,
    /// Initrd size (0 without one).
    pub initrd_size: u64,
    /// Guest-physical address of the command line.
    pub cmdline_gpa: u64,
    /// The initial VCPU state (long mode, `CR3`, GDT, segments, `RIP`, `RSI`).
    pub cpu: LongModeState,
    /// The validated header.
    pub info: KernelInfo,
}

/// Validates the bzImage `image` and returns what its setup header says.
///
/// Checks, in order: length (at least the 2.12 header), `boot_flag`,
/// "HdrS", protocol ≥ 2.12, the header length from the jump at 0x200, the
/// setup code (`setup_sects`, 0 meaning 4) inside the file, `LOADED_HIGH`,
/// `XLF_KERNEL_64`, `syssize` non-zero and inside the file, room for the
/// 64-bit entry, `init_size` ≥ the protected-mode code, and for relocatable
/// kernels a power-of-two `kernel_alignment`.
pub fn parse(image: &[u8]) -> Result<KernelInfo, BootError> {
    header::parse(image)
}

/// The uncompressed `vmlinux` ELF inside `image`, if its payload is one
/// (`CONFIG_KERNEL_UNCOMPRESSED`); it boots through `pvh_loader::load`.
pub fn uncompressed_vmlinux(image: &[u8]) -> Option<&[u8]> {
    let info = parse(image).ok()?;
    if info.payload_format != PayloadFormat::Elf {
        return None;
    }
    header::payload_range(
        info.kernel_offset,
        info.kernel_len,
        info.payload_offset,
        info.payload_length,
    )
    .and_then(|r| image.get(r))
}

/// A PC-style memory map for `ram_size` bytes of guest RAM: RAM below
/// 640 KiB, the BIOS area `0xE0000..0x100000` reserved (the ACPI tables go
/// there), RAM from 1 MiB to `ram_size`.
pub fn pc_memmap(ram_size: u64) -> Result<[MemMapEntry; 3], BootError> {
    let high = ram_size
        .checked_sub(KERNEL_MIN_GPA)
        .filter(|&n| n != 0)
        .ok_or(BootError::RamTooSmall {
            ram: ram_size,
            need: KERNEL_MIN_GPA.saturating_add(PAGE),
        })?;
    Ok([
        MemMapEntry {
            addr: 0,
            size: LOW_RAM_END,
            kind: MemoryType::Ram,
        },
        MemMapEntry {
            addr: BIOS_AREA_GPA,
            size: KERNEL_MIN_GPA.saturating_sub(BIOS_AREA_GPA),
            kind: MemoryType::Reserved,
        },
        MemMapEntry {
            addr: KERNEL_MIN_GPA,
            size: high,
            kind: MemoryType::Ram,
        },
    ])
}

/// Validates `image` and `cfg` for a guest with `ram_size` bytes of RAM and
/// chooses the kernel's and initrd's addresses. Writes nothing.
///
/// Beyond [`parse`]: RAM ≥ [`MIN_RAM`]; the command line has no NUL and
/// fits `min(cmdline_size, CMDLINE_MAX - 1)`; the memory map has at most
/// 128 non-empty, non-wrapping, non-overlapping entries whose RAM lies in
/// guest RAM; the RSDP, if given, lies in guest RAM; the kernel's `init_size`
/// bytes fit in one RAM entry at `pref_address`, or (relocatable kernels) at
/// the lowest address ≥ 1 MiB aligned to `kernel_alignment`, then to each
/// smaller power of two down to `1 << min_alignment`; the initrd fits in one
/// RAM entry, at or above 1 MiB, below `min(initrd_addr_max + 1, 4 GiB)`,
/// clear of the kernel — placed as high as possible, page aligned.
pub fn plan(image: &[u8], ram_size: u64, cfg: &BootConfig<'_>) -> Result<Plan, BootError> {
    if ram_size < MIN_RAM {
        return Err(BootError::RamTooSmall {
            ram: ram_size,
            need: MIN_RAM,
        });
    }
    let info = parse(image)?;
    check_cmdline(cfg.cmdline, &info)?;
    check_memmap(cfg.memmap, ram_size)?;
    if let Some(rsdp) = cfg.acpi_rsdp {
        if rsdp >= ram_size {
            return Err(BootError::RsdpOutsideRam(rsdp));
        }
    }
    let (kernel_gpa, kernel_alignment) = place_kernel(&info, cfg.memmap)?;
    let initrd = cfg.initrd.filter(|i| !i.is_empty());
    let (initrd_gpa, initrd_size) = match initrd {
        None => (0, 0),
        Some(bytes) => {
            let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
            let kernel_end = kernel_gpa.saturating_add(u64::from(info.init_size));
            let gpa = place_initrd(size, &info, ram_size, cfg.memmap, kernel_gpa..kernel_end)?;
            (gpa, size)
        }
    };
    Ok(Plan {
        info,
        kernel_gpa,
        kernel_alignment,
        initrd_gpa,
        initrd_size,
    })
}

/// Loads the bzImage `image` into `mem` as [`plan`] decides and writes the
/// boot data and long-mode tables at the addresses in the crate docs.
///
/// Nothing is written unless validation succeeds. A [`MemoryError`] after
/// that (the backing store refusing an in-range write) can leave a partial image.
pub fn load<M: GuestMemory + ?Sized>(
    image: &[u8],
    mem: &mut M,
    cfg: &BootConfig<'_>,
) -> Result<LinuxBoot, BootError> {
    let plan = plan(image, mem.size(), cfg)?;
    let info = plan.info;

    // Validation is complete: from here on, only writes.
    write_long_mode_tables(mem)?;

    let zero_page = params::build(image, &plan, cfg);
    mem.write(ZERO_PAGE_GPA, &zero_page)?;

    let cmdline_area = u64::try_from(CMDLINE_MAX).unwrap_or(u64::MAX);
    mem.fill(CMDLINE_GPA, cmdline_area, 0)?;
    mem.write(CMDLINE_GPA, cfg.cmdline.as_bytes())?;

    let kernel = image.get(info.kernel_offset..).unwrap_or_default();
    mem.write(plan.kernel_gpa, kernel)?;

    if plan.initrd_size != 0 {
        if let Some(initrd) = cfg.initrd {
            mem.write(plan.initrd_gpa, initrd)?;
        }
    }

    let entry_64 = plan.kernel_gpa.saturating_add(header::ENTRY_64_OFFSET);
    Ok(LinuxBoot {
        entry_64,
        boot_params_gpa: ZERO_PAGE_GPA,
        kernel_start: plan.kernel_gpa,
        kernel_end: plan.kernel_gpa.saturating_add(u64::from(info.init_size)),
        initrd_start: plan.initrd_gpa,
        initrd_size: plan.initrd_size,
        cmdline_gpa: CMDLINE_GPA,
        cpu: long_mode_state(entry_64, ZERO_PAGE_GPA),
        info,
    })
}

fn check_cmdline(cmdline: &str, info: &KernelInfo) -> Result<(), BootError> {
    let bytes = cmdline.as_bytes();
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err(BootError::CmdlineContainsNul { at });
    }
    let kernel_max = usize::try_from(info.cmdline_size).unwrap_or(usize::MAX);
    let max = kernel_max.min(CMDLINE_MAX.saturating_sub(1));
    if bytes.len() > max {
        return Err(BootError::CmdlineTooLong {
            len: bytes.len(),
            max,
        });
    }
    Ok(())
}

fn check_memmap(memmap: &[MemMapEntry], ram_size: u64) -> Result<(), BootError> {
    pvh_loader::validate_memmap(memmap, ram_size, E820_MAX_ENTRIES).map_err(BootError::from)?;
    // At most 128² / 2 pairs; sizes were checked above, so ends do not wrap.
    for (i, a) in memmap.iter().enumerate() {
        for (j, b) in memmap.iter().enumerate().skip(i.saturating_add(1)) {
            let a_end = a.addr.saturating_add(a.size);
            let b_end = b.addr.saturating_add(b.size);
            if a.addr < b_end && b.addr < a_end {
                return Err(BootError::MemmapOverlap {
                    first: i,
                    second: j,
                });
            }
        }
    }
    Ok(())
}

/// Whether `[start, start + len)` lies at or above 1 MiB, below 4 GiB and
/// inside one RAM entry of `memmap`.
fn fits_in_ram(memmap: &[MemMapEntry], start: u64, len: u64) -> bool {
    let Some(end) = start.checked_add(len) else {
        return false;
    };
    start >= KERNEL_MIN_GPA
        && end <= IDENTITY_MAP_END
        && memmap.iter().any(|e| {
            e.kind == MemoryType::Ram && e.addr <= start && end <= e.addr.saturating_add(e.size)
        })
}

/// `x` rounded up to a multiple of `align` (a power of two); `None` on overflow.
fn align_up(x: u64, align: u64) -> Option<u64> {
    let mask = align.checked_sub(1)?;
    Some(x.checked_add(mask)? & !mask)
}

fn place_kernel(info: &KernelInfo, memmap: &[MemMapEntry]) -> Result<(u64, u32), BootError> {
    let need = u64::from(info.init_size);
    let err = BootError::KernelDoesNotFit {
        init_size: info.init_size,
        pref_address: info.pref_address,
        relocatable: info.relocatable,
    };
    if !info.relocatable {
        let at = if info.pref_address == 0 {
            KERNEL_MIN_GPA
        } else {
            info.pref_address
        };
        return if fits_in_ram(memmap, at, need) {
            Ok((at, info.kernel_alignment))
        } else {
            Err(err)
        };
    }
    // Relocatable: kernel_alignment is a power of two (checked by parse).
    let preferred = info.kernel_alignment;
    let min_align = match info.min_alignment {
        0 => preferred,
        n if n < 32 => (1u32 << n).min(preferred),
        _ => preferred,
    };
    let mut align = preferred;
    loop {
        let a = u64::from(align);
        let pref = align_up(info.pref_address.max(KERNEL_MIN_GPA), a);
        if let Some(p) = pref.filter(|&p| fits_in_ram(memmap, p, need)) {
            return Ok((p, align));
        }
        let lowest = memmap
            .iter()
            .filter(|e| e.kind == MemoryType::Ram)
            .filter_map(|e| align_up(e.addr.max(KERNEL_MIN_GPA), a))
            .filter(|&s| fits_in_ram(memmap, s, need))
            .min();
        if let Some(s) = lowest {
            return Ok((s, align));
        }
        if align <= min_align {
            return Err(err);
        }
        align >>= 1;
    }
}

fn place_initrd(
    size: u64,
    info: &KernelInfo,
    ram_size: u64,
    memmap: &[MemMapEntry],
    kernel: core::ops::Range<u64>,
) -> Result<u64, BootError> {
    let limit = u64::from(info.initrd_addr_max)
        .saturating_add(1)
        .min(IDENTITY_MAP_END)
        .min(ram_size);
    let err = BootError::InitrdDoesNotFit {
        size,
        max_addr: limit.saturating_sub(1),
    };
    let overlaps_kernel = |at: u64| at < kernel.end && kernel.start < at.saturating_add(size);
    // Highest page-aligned start with [start, start + size) inside [lo, hi).
    let top = |lo: u64, hi: u64| {
        hi.checked_sub(size)
            .map(|s| s & !(PAGE - 1))
            .filter(|&s| s >= lo)
    };
    let mut best: Option<u64> = None;
    for e in memmap.iter().filter(|e| e.kind == MemoryType::Ram) {
        let lo = e.addr.max(KERNEL_MIN_GPA);
        let hi = e.addr.saturating_add(e.size).min(limit);
        let candidate = match top(lo, hi) {
            Some(s) if overlaps_kernel(s) => top(lo, hi.min(kernel.start)),
            other => other,
        };
        if let Some(s) = candidate.filter(|&s| !overlaps_kernel(s)) {
            best = Some(best.map_or(s, |b| b.max(s)));
        }
    }
    best.ok_or(err)
}
