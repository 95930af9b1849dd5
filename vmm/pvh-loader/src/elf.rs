//! A small, bounds-checked reader for the parts of ELF that PVH boot needs:
//! the file header, program headers, section headers and notes.
//!
//! Every read goes through [`bytes`], which returns `None` instead of
//! panicking; every offset computation is checked.

use crate::error::{LoadError, NoteSource};

/// `PT_LOAD`: a segment copied into memory.
pub(crate) const PT_LOAD: u32 = 1;
/// `PT_NOTE`: a segment of notes.
pub(crate) const PT_NOTE: u32 = 4;
/// `SHT_NOTE`: a section of notes.
pub(crate) const SHT_NOTE: u32 = 7;
/// `PF_X`: the segment is executable.
pub(crate) const PF_X: u32 = 1;
/// `XEN_ELFNOTE_PHYS32_ENTRY`: the 32-bit physical PVH entry point.
pub(crate) const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

const ET_EXEC: u16 = 2;
const EM_386: u16 = 3;
const EM_X86_64: u16 = 62;

/// The ELF class (word size) of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfClass {
    /// ELFCLASS32, i386.
    Elf32,
    /// ELFCLASS64, x86-64.
    Elf64,
}

impl ElfClass {
    fn header_len(self) -> usize {
        match self {
            ElfClass::Elf32 => 52,
            ElfClass::Elf64 => 64,
        }
    }
    fn phent_len(self) -> u16 {
        match self {
            ElfClass::Elf32 => 32,
            ElfClass::Elf64 => 56,
        }
    }
    fn shent_len(self) -> u16 {
        match self {
            ElfClass::Elf32 => 40,
            ElfClass::Elf64 => 64,
        }
    }
    fn bits(self) -> u8 {
        match self {
            ElfClass::Elf32 => 32,
            ElfClass::Elf64 => 64,
        }
    }
}

/// `N` bytes at `off`, or `None` if they are not all inside `data`.
fn bytes<const N: usize>(data: &[u8], off: usize) -> Option<[u8; N]> {
    let end = off.checked_add(N)?;
    data.get(off..end)?.try_into().ok()
}

fn u16_at(data: &[u8], off: usize) -> Option<u16> {
    bytes::<2>(data, off).map(u16::from_le_bytes)
}

fn u32_at(data: &[u8], off: usize) -> Option<u32> {
    bytes::<4>(data, off).map(u32::from_le_bytes)
}

fn u64_at(data: &[u8], off: usize) -> Option<u64> {
    bytes::<8>(data, off).map(u64::from_le_bytes)
}

/// A class-sized word (`Elf32_Addr`/`Elf64_Addr` and friends), widened to u64.
fn word_at(data: &[u8], off: usize, class: ElfClass) -> Option<u64> {
    match class {
        ElfClass::Elf32 => u32_at(data, off).map(u64::from),
        ElfClass::Elf64 => u64_at(data, off),
    }
}

/// `base + index * stride`, checked.
fn entry_offset(base: usize, index: usize, stride: u16) -> Option<usize> {
    index.checked_mul(usize::from(stride))?.checked_add(base)
}

/// Rounds `v` up to a multiple of `align` (a power of two), checked.
fn align_up(v: usize, align: usize) -> Option<usize> {
    let mask = align.checked_sub(1)?;
    Some(v.checked_add(mask)? & !mask)
}

/// One program header, widened to 64-bit fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Phdr {
    pub p_type: u32,
    pub flags: u32,
    pub offset: u64,
    pub paddr: u64,
    pub filesz: u64,
    pub memsz: u64,
    pub align: u64,
}

impl Phdr {
    /// A `PT_LOAD` segment that occupies memory.
    pub fn is_loaded(&self) -> bool {
        self.p_type == PT_LOAD && self.memsz != 0
    }
}

/// One section header, reduced to what note lookup needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shdr {
    pub sh_type: u32,
    pub offset: u64,
    pub size: u64,
    pub addralign: u64,
}

/// A parsed ELF file header over the whole file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Elf<'a> {
    data: &'a [u8],
    pub class: ElfClass,
    phoff: usize,
    pub phnum: usize,
    shoff: usize,
    shnum: usize,
    shentsize: u16,
}

impl<'a> Elf<'a> {
    /// Validates the file header and the program header table's placement.
    ///
    /// The section header table is only checked when notes are looked up in it.
    pub fn parse(data: &'a [u8]) -> Result<Self, LoadError> {
        if data.get(0..4) != Some(b"\x7fELF".as_slice()) {
            return Err(LoadError::NotElf);
        }
        let ident = |i: usize| data.get(i).copied();
        let class = match ident(4) {
            Some(1) => ElfClass::Elf32,
            Some(2) => ElfClass::Elf64,
            Some(c) => return Err(LoadError::UnsupportedClass(c)),
            None => {
                return Err(LoadError::TruncatedHeader {
                    len: data.len(),
                    need: 16,
                })
            }
        };
        let need = class.header_len();
        let truncated = LoadError::TruncatedHeader {
            len: data.len(),
            need,
        };
        if data.len() < need {
            return Err(truncated);
        }
        match ident(5) {
            Some(1) => {}
            Some(d) => return Err(LoadError::NotLittleEndian(d)),
            None => return Err(truncated),
        }
        match ident(6) {
            Some(1) => {}
            Some(v) => return Err(LoadError::BadVersion(u32::from(v))),
            None => return Err(truncated),
        }
        let e_type = u16_at(data, 16).ok_or(truncated)?;
        if e_type != ET_EXEC {
            return Err(LoadError::WrongType(e_type));
        }
        let machine = u16_at(data, 18).ok_or(truncated)?;
        let want = match class {
            ElfClass::Elf32 => EM_386,
            ElfClass::Elf64 => EM_X86_64,
        };
        if machine != want {
            return Err(LoadError::WrongMachine {
                class_bits: class.bits(),
                machine,
            });
        }
        let version = u32_at(data, 20).ok_or(truncated)?;
        if version != 1 {
            return Err(LoadError::BadVersion(version));
        }
        // Offsets of e_phoff, e_shoff, e_phentsize, e_phnum, e_shentsize, e_shnum.
        let (o_phoff, o_shoff, o_phentsize, o_phnum, o_shentsize, o_shnum) = match class {
            ElfClass::Elf32 => (28, 32, 42, 44, 46, 48),
            ElfClass::Elf64 => (32, 40, 54, 56, 58, 60),
        };
        let phoff = word_at(data, o_phoff, class).ok_or(truncated)?;
        let shoff = word_at(data, o_shoff, class).ok_or(truncated)?;
        let phentsize = u16_at(data, o_phentsize).ok_or(truncated)?;
        let phnum = u16_at(data, o_phnum).ok_or(truncated)?;
        let shentsize = u16_at(data, o_shentsize).ok_or(truncated)?;
        let shnum = u16_at(data, o_shnum).ok_or(truncated)?;

        if phnum == 0 {
            return Err(LoadError::NoProgramHeaders);
        }
        if usize::from(phnum) > crate::MAX_PROGRAM_HEADERS {
            return Err(LoadError::TooManyProgramHeaders(phnum));
        }
        if phentsize != class.phent_len() {
            return Err(LoadError::BadProgramHeaderSize(phentsize));
        }
        let table = u64::from(phnum).saturating_mul(u64::from(phentsize));
        let outside = LoadError::ProgramHeadersOutsideFile {
            offset: phoff,
            size: table,
            file_len: data.len(),
        };
        let phoff_us = usize::try_from(phoff).map_err(|_| outside)?;
        let end = entry_offset(phoff_us, usize::from(phnum), phentsize).ok_or(outside)?;
        if end > data.len() {
            return Err(outside);
        }
        Ok(Elf {
            data,
            class,
            phoff: phoff_us,
            phnum: usize::from(phnum),
            // An unrepresentable shoff is reported when sections are needed.
            shoff: usize::try_from(shoff).unwrap_or(usize::MAX),
            shnum: usize::from(shnum),
            shentsize,
        })
    }

    /// The whole file.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Program header `index`; `None` only if `index >= phnum`.
    pub fn phdr(&self, index: usize) -> Option<Phdr> {
        if index >= self.phnum {
            return None;
        }
        let base = entry_offset(self.phoff, index, self.class.phent_len())?;
        let d = self.data;
        let c = self.class;
        Some(match c {
            ElfClass::Elf64 => Phdr {
                p_type: u32_at(d, base)?,
                flags: u32_at(d, base.checked_add(4)?)?,
                offset: u64_at(d, base.checked_add(8)?)?,
                paddr: u64_at(d, base.checked_add(24)?)?,
                filesz: u64_at(d, base.checked_add(32)?)?,
                memsz: u64_at(d, base.checked_add(40)?)?,
                align: u64_at(d, base.checked_add(48)?)?,
            },
            ElfClass::Elf32 => Phdr {
                p_type: u32_at(d, base)?,
                offset: u32_at(d, base.checked_add(4)?)?.into(),
                paddr: u32_at(d, base.checked_add(12)?)?.into(),
                filesz: u32_at(d, base.checked_add(16)?)?.into(),
                memsz: u32_at(d, base.checked_add(20)?)?.into(),
                flags: u32_at(d, base.checked_add(24)?)?,
                align: u32_at(d, base.checked_add(28)?)?.into(),
            },
        })
    }

    /// Iterates over all program headers with their indices.
    pub fn phdrs(&self) -> impl Iterator<Item = (usize, Phdr)> + '_ {
        (0..self.phnum).filter_map(move |i| self.phdr(i).map(|p| (i, p)))
    }

    /// Validates the section header table and returns the number of sections.
    fn section_count(&self) -> Result<usize, LoadError> {
        if self.shnum == 0 {
            // No sections (or extended numbering, which a PVH kernel never needs).
            return Ok(0);
        }
        let shnum = u16::try_from(self.shnum).unwrap_or(u16::MAX);
        if self.shnum > crate::MAX_SECTION_HEADERS {
            return Err(LoadError::TooManySectionHeaders(shnum));
        }
        if self.shentsize != self.class.shent_len() {
            return Err(LoadError::BadSectionHeaderSize(self.shentsize));
        }
        let outside = LoadError::SectionHeadersOutsideFile {
            offset: u64::try_from(self.shoff).unwrap_or(u64::MAX),
            size: u64::from(shnum).saturating_mul(u64::from(self.shentsize)),
            file_len: self.data.len(),
        };
        let end = entry_offset(self.shoff, self.shnum, self.shentsize).ok_or(outside)?;
        if end > self.data.len() {
            return Err(outside);
        }
        Ok(self.shnum)
    }

    fn shdr(&self, index: usize) -> Option<Shdr> {
        let base = entry_offset(self.shoff, index, self.class.shent_len())?;
        let d = self.data;
        let c = self.class;
        let (o_offset, o_size, o_align) = match c {
            ElfClass::Elf32 => (16, 20, 32),
            ElfClass::Elf64 => (24, 32, 48),
        };
        Some(Shdr {
            sh_type: u32_at(d, base.checked_add(4)?)?,
            offset: word_at(d, base.checked_add(o_offset)?, c)?,
            size: word_at(d, base.checked_add(o_size)?, c)?,
            addralign: word_at(d, base.checked_add(o_align)?, c)?,
        })
    }

    /// Finds the PVH entry point: first in `PT_NOTE` segments, then (only if
    /// none of those carries it) in `SHT_NOTE` sections.
    pub fn pvh_entry(&self) -> Result<u64, LoadError> {
        let mut found = None;
        for (i, ph) in self.phdrs() {
            if ph.p_type == PT_NOTE {
                self.scan_notes(
                    ph.offset,
                    ph.filesz,
                    ph.align,
                    NoteSource::Segment(i),
                    &mut found,
                )?;
            }
        }
        if found.is_none() {
            for i in 0..self.section_count()? {
                let sh = self
                    .shdr(i)
                    .ok_or(LoadError::NotesOutsideFile(NoteSource::Section(i)))?;
                if sh.sh_type == SHT_NOTE {
                    self.scan_notes(
                        sh.offset,
                        sh.size,
                        sh.addralign,
                        NoteSource::Section(i),
                        &mut found,
                    )?;
                }
            }
        }
        found.ok_or(LoadError::NoPvhNote)
    }

    /// Walks the notes in `[offset, offset + size)` of the file.
    ///
    /// Notes are 4-byte aligned unless the container is 8-byte aligned (as
    /// the gABI allows for ELF64 and as QEMU's PVH loader assumes).
    fn scan_notes(
        &self,
        offset: u64,
        size: u64,
        align: u64,
        source: NoteSource,
        found: &mut Option<u64>,
    ) -> Result<(), LoadError> {
        let outside = LoadError::NotesOutsideFile(source);
        let start = usize::try_from(offset).map_err(|_| outside)?;
        let len = usize::try_from(size).map_err(|_| outside)?;
        let end = start.checked_add(len).ok_or(outside)?;
        let region = self.data.get(start..end).ok_or(outside)?;
        let align = if align == 8 { 8 } else { 4 };

        let mut pos = 0usize;
        // Each iteration consumes at least the 12-byte note header, so this ends.
        while region.len().saturating_sub(pos) >= 12 {
            let malformed = LoadError::MalformedNote {
                source,
                offset: pos,
            };
            let namesz = u32_at(region, pos).ok_or(malformed)?;
            let descsz = u32_at(region, pos.wrapping_add(4)).ok_or(malformed)?;
            let ntype = u32_at(region, pos.wrapping_add(8)).ok_or(malformed)?;
            let name_start = pos.checked_add(12).ok_or(malformed)?;
            let name_end = usize::try_from(namesz)
                .ok()
                .and_then(|n| name_start.checked_add(n))
                .ok_or(malformed)?;
            let desc_start = align_up(name_end, align).ok_or(malformed)?;
            let desc_end = usize::try_from(descsz)
                .ok()
                .and_then(|n| desc_start.checked_add(n))
                .ok_or(malformed)?;
            let name = region.get(name_start..name_end).ok_or(malformed)?;
            let desc = region.get(desc_start..desc_end).ok_or(malformed)?;

            if ntype == XEN_ELFNOTE_PHYS32_ENTRY && (name == b"Xen\0" || name == b"Xen") {
                let entry = if let Ok(b) = <[u8; 4]>::try_from(desc) {
                    u64::from(u32::from_le_bytes(b))
                } else if let Ok(b) = <[u8; 8]>::try_from(desc) {
                    u64::from_le_bytes(b)
                } else {
                    return Err(LoadError::BadPvhNoteSize(descsz));
                };
                match *found {
                    Some(first) if first != entry => {
                        return Err(LoadError::ConflictingPvhNotes {
                            first,
                            second: entry,
                        })
                    }
                    _ => *found = Some(entry),
                }
            }
            // Trailing padding after the last note may be shorter than `align`.
            pos = match align_up(desc_end, align) {
                Some(next) => next,
                None => break,
            };
        }
        Ok(())
    }
}
