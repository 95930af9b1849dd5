//! Why an image could not be loaded.

use core::fmt;

use crate::memory::MemoryError;

/// Where a malformed note was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteSource {
    /// In the `PT_NOTE` program header with this index.
    Segment(usize),
    /// In the `SHT_NOTE` section header with this index.
    Section(usize),
}

impl fmt::Display for NoteSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoteSource::Segment(i) => write!(f, "note segment {i}"),
            NoteSource::Section(i) => write!(f, "note section {i}"),
        }
    }
}

/// A size printed the way a person reads it: `16 MiB`, `4 KiB` or `0x1234 bytes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const KIB: u64 = 1 << 10;
        const MIB: u64 = 1 << 20;
        const GIB: u64 = 1 << 30;
        let n = self.0;
        if n != 0 && n.is_multiple_of(GIB) {
            write!(f, "{} GiB", n / GIB)
        } else if n != 0 && n.is_multiple_of(MIB) {
            write!(f, "{} MiB", n / MIB)
        } else if n != 0 && n.is_multiple_of(KIB) {
            write!(f, "{} KiB", n / KIB)
        } else {
            write!(f, "{n:#x} bytes")
        }
    }
}

/// Everything that can stop [`load`](crate::load) or [`validate`](crate::validate).
///
/// Each variant names one defect; its `Display` says what is wrong in terms a
/// person configuring a VM can act on. Segment and header indices count from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// The file does not start with the ELF magic `\x7fELF`.
    NotElf,
    /// The file ends inside the ELF header.
    TruncatedHeader {
        /// File length in bytes.
        len: usize,
        /// Header length the class requires.
        need: usize,
    },
    /// `EI_CLASS` is neither ELFCLASS32 (1) nor ELFCLASS64 (2).
    UnsupportedClass(u8),
    /// `EI_DATA` is not little-endian (1).
    NotLittleEndian(u8),
    /// `EI_VERSION` or `e_version` is not 1.
    BadVersion(u32),
    /// `e_type` is not `ET_EXEC` (2).
    WrongType(u16),
    /// `e_machine` does not match the class (ELF64 needs EM_X86_64 (62), ELF32 needs EM_386 (3)).
    WrongMachine {
        /// 32 or 64.
        class_bits: u8,
        /// The `e_machine` found.
        machine: u16,
    },
    /// `e_phentsize` is not the size of one program header of this class.
    BadProgramHeaderSize(u16),
    /// The file has no program headers.
    NoProgramHeaders,
    /// `e_phnum` exceeds [`MAX_PROGRAM_HEADERS`](crate::MAX_PROGRAM_HEADERS).
    TooManyProgramHeaders(u16),
    /// The program header table does not lie inside the file.
    ProgramHeadersOutsideFile {
        /// `e_phoff`.
        offset: u64,
        /// Table size in bytes.
        size: u64,
        /// File length.
        file_len: usize,
    },
    /// `e_shentsize` is not the size of one section header of this class.
    BadSectionHeaderSize(u16),
    /// `e_shnum` exceeds [`MAX_SECTION_HEADERS`](crate::MAX_SECTION_HEADERS), or uses extended numbering.
    TooManySectionHeaders(u16),
    /// The section header table does not lie inside the file.
    SectionHeadersOutsideFile {
        /// `e_shoff`.
        offset: u64,
        /// Table size in bytes.
        size: u64,
        /// File length.
        file_len: usize,
    },
    /// A `PT_LOAD` segment's `p_filesz` exceeds its `p_memsz`.
    SegmentFileSizeExceedsMemSize {
        /// Program header index.
        index: usize,
        /// `p_filesz`.
        filesz: u64,
        /// `p_memsz`.
        memsz: u64,
    },
    /// A segment's file bytes do not lie inside the file.
    SegmentOutsideFile {
        /// Program header index.
        index: usize,
        /// `p_offset`.
        offset: u64,
        /// `p_filesz`.
        filesz: u64,
        /// File length.
        file_len: usize,
    },
    /// `p_paddr + p_memsz` overflows.
    SegmentAddressOverflow {
        /// Program header index.
        index: usize,
        /// `p_paddr`.
        paddr: u64,
        /// `p_memsz`.
        memsz: u64,
    },
    /// A segment starts below [`LOW_RESERVED_END`](crate::LOW_RESERVED_END), where the boot data lives.
    SegmentInReservedLowMemory {
        /// Program header index.
        index: usize,
        /// `p_paddr`.
        paddr: u64,
        /// `p_memsz`.
        memsz: u64,
    },
    /// A segment ends beyond guest RAM.
    SegmentOutsideRam {
        /// Program header index.
        index: usize,
        /// `p_paddr`.
        paddr: u64,
        /// `p_memsz`.
        memsz: u64,
        /// Guest RAM size.
        ram: u64,
    },
    /// The loadable segments together need more memory than the guest has.
    ImageLargerThanRam {
        /// Sum of `p_memsz` over the loadable segments (saturating).
        image: u64,
        /// Guest RAM size.
        ram: u64,
    },
    /// Two loadable segments cover the same guest-physical bytes.
    SegmentsOverlap {
        /// Lower program header index.
        first: usize,
        /// Higher program header index.
        second: usize,
    },
    /// No `PT_LOAD` segment with a non-zero size.
    NoLoadableSegments,
    /// A note segment or section does not lie inside the file.
    NotesOutsideFile(NoteSource),
    /// A note's name or descriptor runs past the end of its segment or section.
    MalformedNote {
        /// Where the note is.
        source: NoteSource,
        /// Byte offset of the note inside that segment or section.
        offset: usize,
    },
    /// The PVH entry note's descriptor is neither 4 nor 8 bytes long.
    BadPvhNoteSize(u32),
    /// Two PVH entry notes name different entry points.
    ConflictingPvhNotes {
        /// The first entry point seen.
        first: u64,
        /// A different one seen later.
        second: u64,
    },
    /// No `Xen` note of type `XEN_ELFNOTE_PHYS32_ENTRY` (18): not a PVH image.
    NoPvhNote,
    /// The PVH entry point is not reachable from 32-bit protected mode.
    EntryAbove4GiB(u64),
    /// The PVH entry point lies in no loaded segment's file bytes.
    EntryOutsideImage(u64),
    /// The PVH entry point lies in a segment without `PF_X`.
    EntryNotExecutable {
        /// The entry point.
        entry: u64,
        /// Program header index of the segment holding it.
        index: usize,
    },
    /// Guest RAM is too small to hold the boot data area.
    RamTooSmall {
        /// Guest RAM size.
        ram: u64,
        /// Bytes needed.
        need: u64,
    },
    /// The command line, with its NUL, does not fit in [`CMDLINE_MAX`](crate::CMDLINE_MAX).
    CmdlineTooLong {
        /// Command line length without the NUL.
        len: usize,
    },
    /// The command line contains a NUL byte, which would cut it short.
    CmdlineContainsNul {
        /// Byte offset of the first NUL.
        at: usize,
    },
    /// More memory map entries than [`MAX_MEMMAP_ENTRIES`](crate::MAX_MEMMAP_ENTRIES).
    TooManyMemmapEntries(usize),
    /// A memory map entry is empty or its end overflows.
    BadMemmapEntry {
        /// Entry index.
        index: usize,
        /// Base address.
        addr: u64,
        /// Size.
        size: u64,
    },
    /// A memory map entry of type RAM extends beyond guest RAM.
    MemmapRamOutsideGuest {
        /// Entry index.
        index: usize,
        /// Base address.
        addr: u64,
        /// Size.
        size: u64,
        /// Guest RAM size.
        ram: u64,
    },
    /// Writing to guest memory failed (after validation succeeded).
    Memory(MemoryError),
}

impl From<MemoryError> for LoadError {
    fn from(e: MemoryError) -> Self {
        LoadError::Memory(e)
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use LoadError::*;
        match *self {
            NotElf => f.write_str("not an ELF file (bad magic)"),
            TruncatedHeader { len, need } => write!(
                f,
                "ELF file is {len} bytes, shorter than its {need}-byte header"
            ),
            UnsupportedClass(c) => write!(f, "unsupported ELF class {c} (want 1 = 32-bit or 2 = 64-bit)"),
            NotLittleEndian(d) => write!(f, "ELF data encoding {d} is not little-endian"),
            BadVersion(v) => write!(f, "unsupported ELF version {v}"),
            WrongType(t) => write!(f, "ELF type {t} is not an executable (ET_EXEC = 2)"),
            WrongMachine { class_bits, machine } => write!(
                f,
                "ELF{class_bits} machine {machine} is not x86 (want {})",
                if class_bits == 64 { "62 = x86-64" } else { "3 = i386" }
            ),
            BadProgramHeaderSize(s) => write!(f, "ELF program header size {s} is wrong for this class"),
            NoProgramHeaders => f.write_str("ELF file has no program headers"),
            TooManyProgramHeaders(n) => write!(
                f,
                "ELF file has {n} program headers (at most {} allowed)",
                crate::MAX_PROGRAM_HEADERS
            ),
            ProgramHeadersOutsideFile { offset, size, file_len } => write!(
                f,
                "ELF program header table at {offset:#x} +{size:#x} lies outside the {file_len}-byte file"
            ),
            BadSectionHeaderSize(s) => write!(f, "ELF section header size {s} is wrong for this class"),
            TooManySectionHeaders(n) => write!(
                f,
                "ELF file has {n} section headers (at most {} allowed, no extended numbering)",
                crate::MAX_SECTION_HEADERS
            ),
            SectionHeadersOutsideFile { offset, size, file_len } => write!(
                f,
                "ELF section header table at {offset:#x} +{size:#x} lies outside the {file_len}-byte file"
            ),
            SegmentFileSizeExceedsMemSize { index, filesz, memsz } => write!(
                f,
                "ELF segment {index} has file size {filesz:#x} larger than its memory size {memsz:#x}"
            ),
            SegmentOutsideFile { index, offset, filesz, file_len } => write!(
                f,
                "ELF segment {index} file bytes at {offset:#x} +{filesz:#x} lie outside the {file_len}-byte file"
            ),
            SegmentAddressOverflow { index, paddr, memsz } => write!(
                f,
                "ELF segment {index} at {paddr:#x} +{memsz:#x} wraps around the address space"
            ),
            SegmentInReservedLowMemory { index, paddr, memsz } => write!(
                f,
                "ELF segment {index} at {paddr:#x} +{memsz:#x} starts below {:#x}, which is reserved for boot data",
                crate::LOW_RESERVED_END
            ),
            SegmentOutsideRam { index, paddr, memsz, ram } => write!(
                f,
                "ELF segment {index} at {paddr:#x} +{memsz:#x} lies outside guest RAM ({})",
                Size(ram)
            ),
            ImageLargerThanRam { image, ram } => write!(
                f,
                "ELF image needs {} but guest RAM is only {}",
                Size(image),
                Size(ram)
            ),
            SegmentsOverlap { first, second } => {
                write!(f, "ELF segments {first} and {second} overlap in guest-physical memory")
            }
            NoLoadableSegments => f.write_str("ELF file has no loadable segment"),
            NotesOutsideFile(src) => write!(f, "ELF {src} lies outside the file"),
            MalformedNote { source, offset } => write!(
                f,
                "ELF {source} has a malformed note at offset {offset:#x} (runs past its end)"
            ),
            BadPvhNoteSize(n) => write!(
                f,
                "Xen PVH entry note has a {n}-byte descriptor (want 4 or 8)"
            ),
            ConflictingPvhNotes { first, second } => write!(
                f,
                "ELF file has conflicting PVH entry notes ({first:#x} and {second:#x})"
            ),
            NoPvhNote => f.write_str(
                "ELF file has no Xen PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY): not a PVH image",
            ),
            EntryAbove4GiB(e) => write!(f, "PVH entry point {e:#x} is above 4 GiB"),
            EntryOutsideImage(e) => write!(f, "PVH entry point {e:#x} is not inside any loaded segment"),
            EntryNotExecutable { entry, index } => write!(
                f,
                "PVH entry point {entry:#x} lies in ELF segment {index}, which is not executable"
            ),
            RamTooSmall { ram, need } => write!(
                f,
                "guest RAM ({}) is too small: at least {} needed",
                Size(ram),
                Size(need)
            ),
            CmdlineTooLong { len } => write!(
                f,
                "command line is {len} bytes; at most {} fit",
                crate::CMDLINE_MAX.saturating_sub(1)
            ),
            CmdlineContainsNul { at } => write!(f, "command line contains a NUL byte at offset {at}"),
            TooManyMemmapEntries(n) => write!(
                f,
                "memory map has {n} entries (at most {} allowed)",
                crate::MAX_MEMMAP_ENTRIES
            ),
            BadMemmapEntry { index, addr, size } => write!(
                f,
                "memory map entry {index} at {addr:#x} +{size:#x} is empty or wraps around"
            ),
            MemmapRamOutsideGuest { index, addr, size, ram } => write!(
                f,
                "memory map entry {index} declares RAM at {addr:#x} +{size:#x} outside guest RAM ({})",
                Size(ram)
            ),
            Memory(e) => write!(f, "writing the image failed: {e}"),
        }
    }
}

impl From<crate::MemmapError> for LoadError {
    fn from(e: crate::MemmapError) -> Self {
        match e {
            crate::MemmapError::TooMany(n) => LoadError::TooManyMemmapEntries(n),
            crate::MemmapError::BadEntry { index, addr, size } => {
                LoadError::BadMemmapEntry { index, addr, size }
            }
            crate::MemmapError::RamOutsideGuest {
                index,
                addr,
                size,
                ram,
            } => LoadError::MemmapRamOutsideGuest {
                index,
                addr,
                size,
                ram,
            },
        }
    }
}
