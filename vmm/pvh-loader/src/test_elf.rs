//! Builds ELF files for tests: valid PVH images and deliberately broken ones.

use crate::elf::{PT_LOAD, PT_NOTE, SHT_NOTE, XEN_ELFNOTE_PHYS32_ENTRY};
use crate::ElfClass;

/// A program header plus the file bytes it covers.
#[derive(Clone, Debug)]
pub struct Seg {
    pub p_type: u32,
    pub flags: u32,
    pub paddr: u64,
    pub data: Vec<u8>,
    pub memsz: u64,
    pub align: u64,
}

impl Seg {
    pub fn load(paddr: u64, flags: u32, data: Vec<u8>, memsz: u64) -> Self {
        Seg {
            p_type: PT_LOAD,
            flags,
            paddr,
            data,
            memsz,
            align: 0x1000,
        }
    }
    pub fn note(data: Vec<u8>, align: u64) -> Self {
        let len = data.len() as u64;
        Seg {
            p_type: PT_NOTE,
            flags: 4,
            paddr: 0,
            data,
            memsz: len,
            align,
        }
    }
}

/// An ELF file under construction.
#[derive(Clone, Debug)]
pub struct Builder {
    pub class: ElfClass,
    pub e_type: u16,
    pub machine: u16,
    pub segs: Vec<Seg>,
    /// (sh_type, bytes, sh_addralign)
    pub sections: Vec<(u32, Vec<u8>, u64)>,
}

/// Encodes one ELF note with 4- or 8-byte padding.
pub fn note(name: &[u8], ntype: u32, desc: &[u8], align: usize) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(name.len() as u32).to_le_bytes());
    v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    v.extend_from_slice(&ntype.to_le_bytes());
    v.extend_from_slice(name);
    while v.len() % align != 0 {
        v.push(0);
    }
    v.extend_from_slice(desc);
    while v.len() % align != 0 {
        v.push(0);
    }
    v
}

/// The Xen PVH entry note with a 4- or 8-byte descriptor.
pub fn pvh_note(entry: u64, desc_len: usize) -> Vec<u8> {
    let desc = &entry.to_le_bytes()[..desc_len];
    note(b"Xen\0", XEN_ELFNOTE_PHYS32_ENTRY, desc, 4)
}

pub const TEXT: u64 = 0x10_0000;
pub const DATA: u64 = 0x10_4000;

impl Builder {
    pub fn new(class: ElfClass) -> Self {
        Builder {
            class,
            e_type: 2,
            machine: match class {
                ElfClass::Elf32 => 3,
                ElfClass::Elf64 => 62,
            },
            segs: Vec::new(),
            sections: Vec::new(),
        }
    }

    /// A valid image: text at 1 MiB (R X), data with bss after it, PVH note.
    pub fn pvh(class: ElfClass) -> Self {
        let mut b = Builder::new(class);
        let text: Vec<u8> = (0..0x1800u32).map(|i| (i * 7 + 3) as u8).collect();
        let data: Vec<u8> = (0..0x300u32).map(|i| (i * 13 + 1) as u8).collect();
        b.segs.push(Seg::load(TEXT, 5, text, 0x2000));
        b.segs.push(Seg::load(DATA, 6, data, 0x5000));
        b.segs.push(Seg::note(pvh_note(TEXT + 0x10, 8), 4));
        b
    }

    fn ehsize(&self) -> usize {
        match self.class {
            ElfClass::Elf32 => 52,
            ElfClass::Elf64 => 64,
        }
    }
    fn phentsize(&self) -> usize {
        match self.class {
            ElfClass::Elf32 => 32,
            ElfClass::Elf64 => 56,
        }
    }
    fn shentsize(&self) -> usize {
        match self.class {
            ElfClass::Elf32 => 40,
            ElfClass::Elf64 => 64,
        }
    }

    fn word(&self, out: &mut Vec<u8>, v: u64) {
        match self.class {
            ElfClass::Elf32 => out.extend_from_slice(&(v as u32).to_le_bytes()),
            ElfClass::Elf64 => out.extend_from_slice(&v.to_le_bytes()),
        }
    }

    pub fn build(&self) -> Vec<u8> {
        let ph_off = self.ehsize();
        let mut data_off = ph_off + self.segs.len() * self.phentsize();
        let mut seg_offs = Vec::new();
        for s in &self.segs {
            data_off = data_off.next_multiple_of(8);
            seg_offs.push(data_off);
            data_off += s.data.len();
        }
        let mut sec_offs = Vec::new();
        for (_, d, _) in &self.sections {
            data_off = data_off.next_multiple_of(8);
            sec_offs.push(data_off);
            data_off += d.len();
        }
        let sh_off = data_off.next_multiple_of(8);
        let shnum = if self.sections.is_empty() {
            0
        } else {
            self.sections.len() + 1
        };

        let mut out = Vec::new();
        out.extend_from_slice(b"\x7fELF");
        out.push(match self.class {
            ElfClass::Elf32 => 1,
            ElfClass::Elf64 => 2,
        });
        out.extend_from_slice(&[1, 1, 0]);
        out.resize(16, 0);
        out.extend_from_slice(&self.e_type.to_le_bytes());
        out.extend_from_slice(&self.machine.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        self.word(&mut out, 0xdead_0000); // e_entry: ignored by PVH
        self.word(&mut out, ph_off as u64);
        self.word(&mut out, if shnum == 0 { 0 } else { sh_off as u64 });
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(self.ehsize() as u16).to_le_bytes());
        out.extend_from_slice(&(self.phentsize() as u16).to_le_bytes());
        out.extend_from_slice(&(self.segs.len() as u16).to_le_bytes());
        out.extend_from_slice(&(self.shentsize() as u16).to_le_bytes());
        out.extend_from_slice(&(shnum as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        assert_eq!(out.len(), self.ehsize());

        for (s, &off) in self.segs.iter().zip(&seg_offs) {
            let filesz = s.data.len() as u64;
            match self.class {
                ElfClass::Elf64 => {
                    out.extend_from_slice(&s.p_type.to_le_bytes());
                    out.extend_from_slice(&s.flags.to_le_bytes());
                    for v in [off as u64, s.paddr, s.paddr, filesz, s.memsz, s.align] {
                        out.extend_from_slice(&v.to_le_bytes());
                    }
                }
                ElfClass::Elf32 => {
                    out.extend_from_slice(&s.p_type.to_le_bytes());
                    for v in [off as u64, s.paddr, s.paddr, filesz, s.memsz] {
                        out.extend_from_slice(&(v as u32).to_le_bytes());
                    }
                    out.extend_from_slice(&s.flags.to_le_bytes());
                    out.extend_from_slice(&(s.align as u32).to_le_bytes());
                }
            }
        }
        for (s, &off) in self.segs.iter().zip(&seg_offs) {
            out.resize(off, 0);
            out.extend_from_slice(&s.data);
        }
        for ((_, d, _), &off) in self.sections.iter().zip(&sec_offs) {
            out.resize(off, 0);
            out.extend_from_slice(d);
        }
        if shnum != 0 {
            out.resize(sh_off, 0);
            out.resize(sh_off + self.shentsize(), 0); // the null section
            for ((ty, d, align), &off) in self.sections.iter().zip(&sec_offs) {
                let start = out.len();
                out.extend_from_slice(&0u32.to_le_bytes()); // sh_name
                out.extend_from_slice(&ty.to_le_bytes());
                self.word(&mut out, 0); // sh_flags
                self.word(&mut out, 0); // sh_addr
                self.word(&mut out, off as u64);
                self.word(&mut out, d.len() as u64);
                out.extend_from_slice(&0u32.to_le_bytes()); // sh_link
                out.extend_from_slice(&0u32.to_le_bytes()); // sh_info
                self.word(&mut out, *align);
                self.word(&mut out, 0); // sh_entsize
                assert_eq!(out.len() - start, self.shentsize());
            }
        }
        out
    }

    /// Moves the PVH note from a PT_NOTE segment into an SHT_NOTE section.
    pub fn note_as_section(mut self) -> Self {
        let pos = self.segs.iter().position(|s| s.p_type == PT_NOTE).unwrap();
        let s = self.segs.remove(pos);
        self.sections.push((SHT_NOTE, s.data, 4));
        self
    }
}
