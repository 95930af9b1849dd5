//! Loads a PVH-bootable ELF image into guest RAM and builds Xen's
//! `hvm_start_info` for it.
//!
//! PVH is the boot protocol every cloister unikernel uses (and that Linux's
//! `vmlinux` supports): the image is an ELF executable carrying a `Xen` note of
//! type `XEN_ELFNOTE_PHYS32_ENTRY` (18) whose descriptor is the 32-bit physical
//! entry point. The VMM copies the `PT_LOAD` segments to their physical
//! addresses (`p_paddr`; `p_vaddr` and `e_entry` are ignored), writes a start-of-day
//! structure and enters the guest at that address in 32-bit protected mode.
//!
//! # Use
//!
//! ```
//! # use pvh_loader::*;
//! # fn demo(elf: &[u8], ram: &mut [u8]) -> Result<(), LoadError> {
//! let mut mem = SliceMemory::new(ram);
//! let map = default_memmap(mem.size());
//! let boot = load(elf, &mut mem, "console=ttyS0", &map)?;
//! // Enter at boot.entry with EBX = boot.start_info (see "Initial vCPU state").
//! # let _ = boot; Ok(()) }
//! ```
//!
//! [`load`] validates *everything* (ELF headers, segments, the PVH note, the
//! entry point, the command line and the memory map) before its first write to
//! guest memory, so a rejected image leaves guest RAM untouched. [`validate`]
//! runs the ELF checks alone, e.g. to check an image when a VM is configured.
//!
//! # Guest-physical layout
//!
//! | range                    | contents                                              |
//! |--------------------------|-------------------------------------------------------|
//! | `0x0000..0x1000`         | unused, never written (a 0 address means "absent")    |
//! | `0x1000..0x1038`         | `hvm_start_info`, version 1 ([`START_INFO_GPA`])       |
//! | `0x2000..0x2C00`         | memory map, ≤ 128 × 24-byte entries ([`MEMMAP_GPA`])   |
//! | `0x3000..0x4000`         | NUL-terminated command line, ≤ 4 KiB ([`CMDLINE_GPA`]) |
//! | `0x4000..0x10_0000`      | not written by the loader; free for the VMM (e.g. ACPI tables) |
//! | `0x10_0000..RAM size`    | the image's `PT_LOAD` segments ([`LOW_RESERVED_END`])  |
//!
//! The loader zeroes `0x1000..0x4000` before writing the boot data, copies each
//! segment's file bytes and zeroes the rest of its memory size (the bss). Gaps
//! between segments are not written: guest RAM is expected to start zeroed
//! (seL4 hands out zeroed frames).
//!
//! # Initial vCPU state (for the caller)
//!
//! As Xen's PVH ABI requires: 32-bit protected mode, paging off, `CR0` = PE
//! (plus ET), `CR4` = 0, `EFER` = 0, flat 4 GiB code (execute/read) and data
//! segments, `EFLAGS` = 0x2, `EIP` = [`PvhBoot::entry`], `EBX` =
//! [`PvhBoot::start_info`], other GPRs 0. The VM-entry control "IA-32e mode
//! guest" must be clear.
//!
//! # Limits
//!
//! At most [`MAX_PROGRAM_HEADERS`] program headers and [`MAX_SECTION_HEADERS`]
//! section headers; only little-endian ELF64/x86-64 and ELF32/i386 `ET_EXEC`
//! files; no modules (`nr_modules` = 0) and no RSDP (`rsdp_paddr` = 0).
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

mod elf;
mod error;
pub mod layout;
mod memory;
mod start_info;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod test_elf;
#[cfg(test)]
mod tests;

pub use elf::ElfClass;
pub use error::{LoadError, NoteSource, Size};
pub use memory::{GuestMemory, MemoryError, SliceMemory};
pub use start_info::{
    MemMapEntry, MemoryType, StartInfo, HVM_START_MAGIC, MEMMAP_ENTRY_SIZE, START_INFO_SIZE,
};

use elf::{Elf, PF_X};

/// Guest-physical address of `hvm_start_info` (the value for `EBX`).
pub const START_INFO_GPA: u64 = 0x1000;
/// Guest-physical address of the memory map table.
pub const MEMMAP_GPA: u64 = 0x2000;
/// Guest-physical address of the command line.
pub const CMDLINE_GPA: u64 = 0x3000;
/// End (exclusive) of the boot data the loader writes.
pub const BOOT_DATA_END: u64 = 0x4000;
/// Segments must start at or above this address (1 MiB); below it is boot data.
pub const LOW_RESERVED_END: u64 = 0x10_0000;
/// Largest command line, including its terminating NUL.
pub const CMDLINE_MAX: usize = 4096;
/// Most memory map entries accepted (they fill `0x2000..0x2C00`).
pub const MAX_MEMMAP_ENTRIES: usize = 128;
/// Most program headers accepted.
pub const MAX_PROGRAM_HEADERS: usize = 64;
/// Most section headers accepted (sections are only read to find the PVH note).
pub const MAX_SECTION_HEADERS: usize = 1024;

/// What [`validate`] learned about a loadable image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// ELF class of the file.
    pub class: ElfClass,
    /// PVH entry point (guest-physical, inside an executable segment).
    pub entry: u32,
    /// Lowest guest-physical address of any loaded segment.
    pub image_start: u64,
    /// One past the highest guest-physical address of any loaded segment.
    pub image_end: u64,
    /// Sum of the loaded segments' memory sizes.
    pub image_bytes: u64,
    /// Number of `PT_LOAD` segments with a non-zero memory size.
    pub segments: usize,
}

/// What the caller needs to start the guest after a successful [`load`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PvhBoot {
    /// Entry point: the initial `EIP` (32-bit protected mode).
    pub entry: u32,
    /// Guest-physical address of `hvm_start_info`: the initial `EBX`.
    pub start_info: u32,
    /// Lowest guest-physical address the image occupies.
    pub image_start: u64,
    /// One past the highest guest-physical address the image occupies.
    pub image_end: u64,
}

/// The default memory map for a guest with `ram_size` bytes of RAM: one RAM
/// entry covering `[0, ram_size)`.
///
/// The boot data (`0x1000..0x4000`) lies inside that RAM, as under Xen: a
/// guest reads its start info before reusing low memory. The VMM keeps guest
/// RAM contiguous from 0 and below the 32-bit MMIO hole (LAPIC, IOAPIC), so
/// this map is only right for guests with at most 3 GiB of RAM; larger guests
/// need a map with a hole, passed to [`load`] directly.
pub fn default_memmap(ram_size: u64) -> [MemMapEntry; 1] {
    [MemMapEntry {
        addr: 0,
        size: ram_size,
        kind: MemoryType::Ram,
    }]
}

/// Checks that `elf` is a PVH image that fits in `ram_size` bytes of guest RAM.
///
/// Checks, in order: the ELF header (magic, class, endianness, version, type,
/// machine), the program header table (count ≤ [`MAX_PROGRAM_HEADERS`], inside
/// the file), each `PT_LOAD` segment (`p_filesz <= p_memsz`, file bytes inside
/// the file, no address overflow), the total size against RAM, each segment's
/// placement (at or above [`LOW_RESERVED_END`], inside RAM), overlaps, and
/// the PVH entry note (found in `PT_NOTE` segments, else `SHT_NOTE` sections),
/// whose entry must lie below 4 GiB in the file-backed part of an executable
/// segment. Writes nothing.
pub fn validate(elf: &[u8], ram_size: u64) -> Result<ImageInfo, LoadError> {
    if ram_size < BOOT_DATA_END {
        return Err(LoadError::RamTooSmall {
            ram: ram_size,
            need: BOOT_DATA_END,
        });
    }
    let file = Elf::parse(elf)?;
    let file_len = elf.len();

    // Per-segment shape: sizes, file range, address arithmetic.
    let mut segments = 0usize;
    let mut image_bytes = 0u64;
    let mut image_start = u64::MAX;
    let mut image_end = 0u64;
    for (index, ph) in file.phdrs().filter(|(_, p)| p.is_loaded()) {
        if ph.filesz > ph.memsz {
            return Err(LoadError::SegmentFileSizeExceedsMemSize {
                index,
                filesz: ph.filesz,
                memsz: ph.memsz,
            });
        }
        if file_range(&ph, file_len).is_none() {
            return Err(LoadError::SegmentOutsideFile {
                index,
                offset: ph.offset,
                filesz: ph.filesz,
                file_len,
            });
        }
        let end = ph
            .paddr
            .checked_add(ph.memsz)
            .ok_or(LoadError::SegmentAddressOverflow {
                index,
                paddr: ph.paddr,
                memsz: ph.memsz,
            })?;
        segments = segments.saturating_add(1);
        image_bytes = image_bytes.saturating_add(ph.memsz);
        image_start = image_start.min(ph.paddr);
        image_end = image_end.max(end);
    }
    if segments == 0 {
        return Err(LoadError::NoLoadableSegments);
    }
    if image_bytes > ram_size {
        return Err(LoadError::ImageLargerThanRam {
            image: image_bytes,
            ram: ram_size,
        });
    }

    // Placement in guest RAM.
    for (index, ph) in file.phdrs().filter(|(_, p)| p.is_loaded()) {
        if ph.paddr < LOW_RESERVED_END {
            return Err(LoadError::SegmentInReservedLowMemory {
                index,
                paddr: ph.paddr,
                memsz: ph.memsz,
            });
        }
        // Overflow was excluded above.
        if ph.paddr.saturating_add(ph.memsz) > ram_size {
            return Err(LoadError::SegmentOutsideRam {
                index,
                paddr: ph.paddr,
                memsz: ph.memsz,
                ram: ram_size,
            });
        }
    }

    // Overlaps: at most MAX_PROGRAM_HEADERS² / 2 pairs, no allocation needed.
    for (i, a) in file.phdrs().filter(|(_, p)| p.is_loaded()) {
        for (j, b) in file
            .phdrs()
            .skip(i.saturating_add(1))
            .filter(|(_, p)| p.is_loaded())
        {
            let a_end = a.paddr.saturating_add(a.memsz);
            let b_end = b.paddr.saturating_add(b.memsz);
            if a.paddr < b_end && b.paddr < a_end {
                return Err(LoadError::SegmentsOverlap {
                    first: i,
                    second: j,
                });
            }
        }
    }

    // The PVH entry point.
    let entry = file.pvh_entry()?;
    let entry32 = u32::try_from(entry).map_err(|_| LoadError::EntryAbove4GiB(entry))?;
    let holder = file
        .phdrs()
        .find(|(_, p)| p.is_loaded() && entry.checked_sub(p.paddr).is_some_and(|d| d < p.filesz));
    match holder {
        None => return Err(LoadError::EntryOutsideImage(entry)),
        Some((index, p)) if p.flags & PF_X == 0 => {
            return Err(LoadError::EntryNotExecutable { entry, index })
        }
        Some(_) => {}
    }

    Ok(ImageInfo {
        class: file.class,
        entry: entry32,
        image_start,
        image_end,
        image_bytes,
        segments,
    })
}

/// The file bytes of a segment, if they lie inside a file of `file_len` bytes.
fn file_range(ph: &elf::Phdr, file_len: usize) -> Option<core::ops::Range<usize>> {
    let start = usize::try_from(ph.offset).ok()?;
    let len = usize::try_from(ph.filesz).ok()?;
    let end = start.checked_add(len)?;
    (end <= file_len).then_some(start..end)
}

/// Checks the command line: with its NUL it must fit in [`CMDLINE_MAX`].
fn check_cmdline(cmdline: &str) -> Result<(), LoadError> {
    let bytes = cmdline.as_bytes();
    if let Some(at) = bytes.iter().position(|&b| b == 0) {
        return Err(LoadError::CmdlineContainsNul { at });
    }
    if bytes.len() >= CMDLINE_MAX {
        return Err(LoadError::CmdlineTooLong { len: bytes.len() });
    }
    Ok(())
}

/// Checks the memory map: bounded, no empty or wrapping entry, RAM inside guest RAM.
fn check_memmap(memmap: &[MemMapEntry], ram_size: u64) -> Result<(), LoadError> {
    validate_memmap(memmap, ram_size, MAX_MEMMAP_ENTRIES).map_err(LoadError::from)
}

/// Why a memory map given to a guest is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemmapError {
    /// More entries than the boot protocol carries.
    TooMany(usize),
    /// An empty entry, or one whose end wraps.
    BadEntry {
        /// Index of the entry.
        index: usize,
        /// Its start.
        addr: u64,
        /// Its size.
        size: u64,
    },
    /// A RAM entry reaching past guest RAM.
    RamOutsideGuest {
        /// Index of the entry.
        index: usize,
        /// Its start.
        addr: u64,
        /// Its size.
        size: u64,
        /// Guest RAM size.
        ram: u64,
    },
}

/// Checks a memory map for any boot protocol: at most `max_entries`
/// entries, none empty or wrapping, every RAM entry inside `[0, ram_size)`.
pub fn validate_memmap(
    memmap: &[MemMapEntry],
    ram_size: u64,
    max_entries: usize,
) -> Result<(), MemmapError> {
    if memmap.len() > max_entries {
        return Err(MemmapError::TooMany(memmap.len()));
    }
    for (index, e) in memmap.iter().enumerate() {
        let bad = MemmapError::BadEntry {
            index,
            addr: e.addr,
            size: e.size,
        };
        if e.size == 0 {
            return Err(bad);
        }
        let end = e.addr.checked_add(e.size).ok_or(bad)?;
        if e.kind == MemoryType::Ram && end > ram_size {
            return Err(MemmapError::RamOutsideGuest {
                index,
                addr: e.addr,
                size: e.size,
                ram: ram_size,
            });
        }
    }
    Ok(())
}

/// Loads the PVH image `elf` into `mem` and writes the boot data.
///
/// Validates everything first (see [`validate`]; plus the command line, which
/// must be shorter than [`CMDLINE_MAX`] and contain no NUL, and `memmap`, at
/// most [`MAX_MEMMAP_ENTRIES`] non-empty entries whose RAM lies inside guest
/// RAM), then copies the segments, zeroes their bss, and writes the start
/// info, memory map and command line at the addresses in the crate docs.
/// `hvm_start_info` gets `memmap_paddr` = 0 when `memmap` is empty.
///
/// Nothing is written unless validation succeeds. A [`MemoryError`] after that
/// (the backing store refusing an in-range write) can leave a partial image.
pub fn load<M: GuestMemory + ?Sized>(
    elf: &[u8],
    mem: &mut M,
    cmdline: &str,
    memmap: &[MemMapEntry],
) -> Result<PvhBoot, LoadError> {
    let ram = mem.size();
    let info = validate(elf, ram)?;
    check_cmdline(cmdline)?;
    check_memmap(memmap, ram)?;

    // Validation is complete: from here on, only writes.
    let file = Elf::parse(elf)?;
    for (_, ph) in file.phdrs().filter(|(_, p)| p.is_loaded()) {
        let range = file_range(&ph, elf.len()).ok_or(LoadError::Memory(MemoryError {
            gpa: ph.paddr,
            len: ph.filesz,
        }))?;
        let bytes = file.data().get(range).unwrap_or_default();
        mem.write(ph.paddr, bytes)?;
        let bss = ph.memsz.saturating_sub(ph.filesz);
        if bss != 0 {
            mem.fill(ph.paddr.saturating_add(ph.filesz), bss, 0)?;
        }
    }

    mem.fill(
        START_INFO_GPA,
        BOOT_DATA_END.saturating_sub(START_INFO_GPA),
        0,
    )?;
    let mut gpa = MEMMAP_GPA;
    for e in memmap {
        mem.write(gpa, &e.to_bytes())?;
        gpa = gpa.saturating_add(MEMMAP_ENTRY_SIZE as u64);
    }
    mem.write(CMDLINE_GPA, cmdline.as_bytes())?;
    let cmdline_len = u64::try_from(cmdline.len()).unwrap_or(u64::MAX);
    mem.write(CMDLINE_GPA.saturating_add(cmdline_len), &[0])?;

    let memmap_entries = u32::try_from(memmap.len()).unwrap_or(u32::MAX);
    let si = StartInfo {
        magic: HVM_START_MAGIC,
        version: 1,
        flags: 0,
        nr_modules: 0,
        modlist_paddr: 0,
        cmdline_paddr: CMDLINE_GPA,
        rsdp_paddr: 0,
        memmap_paddr: if memmap.is_empty() { 0 } else { MEMMAP_GPA },
        memmap_entries,
    };
    mem.write(START_INFO_GPA, &si.to_bytes())?;

    Ok(PvhBoot {
        entry: info.entry,
        start_info: START_INFO_GPA as u32,
        image_start: info.image_start,
        image_end: info.image_end,
    })
}
