//! Unit tests: one per error variant, plus the layout of what gets written.

use crate::elf::{PT_LOAD, XEN_ELFNOTE_PHYS32_ENTRY};
use crate::test_elf::{note, pvh_note, Builder, Seg, DATA, TEXT};
use crate::*;

const MIB: u64 = 1 << 20;
const RAM: u64 = 4 * MIB;

/// Wraps SliceMemory and counts the calls that change guest memory.
pub(crate) struct Recording<'a> {
    pub inner: SliceMemory<'a>,
    pub writes: usize,
}

impl GuestMemory for Recording<'_> {
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemoryError> {
        self.writes += 1;
        self.inner.write(gpa, data)
    }
    fn fill(&mut self, gpa: u64, len: u64, byte: u8) -> Result<(), MemoryError> {
        self.writes += 1;
        self.inner.fill(gpa, len, byte)
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
}

fn ram() -> Vec<u8> {
    vec![0xAA; RAM as usize]
}

fn check(elf: &[u8]) -> Result<ImageInfo, LoadError> {
    validate(elf, RAM)
}

fn load_into(elf: &[u8], ram: &mut [u8], cmdline: &str) -> Result<PvhBoot, LoadError> {
    let mut mem = SliceMemory::new(ram);
    let map = default_memmap(mem.size());
    load(elf, &mut mem, cmdline, &map)
}

#[test]
fn loads_elf64_and_writes_everything() {
    let b = Builder::pvh(ElfClass::Elf64);
    let elf = b.build();
    let mut ram = ram();
    let boot = load_into(&elf, &mut ram, "console=ttyS0 quiet").unwrap();
    assert_eq!(boot.entry as u64, TEXT + 0x10);
    assert_eq!(boot.start_info as u64, START_INFO_GPA);
    assert_eq!(boot.image_start, TEXT);
    assert_eq!(boot.image_end, DATA + 0x5000);

    // Segments: file bytes copied, bss zeroed, nothing else touched.
    let text = &b.segs[0].data;
    assert_eq!(&ram[TEXT as usize..][..text.len()], &text[..]);
    assert!(ram[TEXT as usize + text.len()..(TEXT + 0x2000) as usize]
        .iter()
        .all(|&x| x == 0));
    assert!(ram[(TEXT + 0x2000) as usize..DATA as usize]
        .iter()
        .all(|&x| x == 0xAA));
    let data = &b.segs[1].data;
    assert_eq!(&ram[DATA as usize..][..data.len()], &data[..]);
    assert!(ram[DATA as usize + data.len()..(DATA + 0x5000) as usize]
        .iter()
        .all(|&x| x == 0));
    assert_eq!(ram[(DATA + 0x5000) as usize], 0xAA);

    // Page 0 is never written; 0x4000.. below the image neither.
    assert!(ram[..0x1000].iter().all(|&x| x == 0xAA));
    assert!(ram[0x4000..TEXT as usize].iter().all(|&x| x == 0xAA));

    // Start info, byte for byte as start_info.h lays it out.
    let si = &ram[0x1000..0x1000 + START_INFO_SIZE];
    assert_eq!(&si[0..4], &0x336e_c578u32.to_le_bytes());
    assert_eq!(&si[4..8], &1u32.to_le_bytes()); // version
    assert_eq!(&si[8..16], &[0; 8]); // flags, nr_modules
    assert_eq!(&si[16..24], &[0; 8]); // modlist_paddr
    assert_eq!(&si[24..32], &0x3000u64.to_le_bytes()); // cmdline_paddr
    assert_eq!(&si[32..40], &[0; 8]); // rsdp_paddr
    assert_eq!(&si[40..48], &0x2000u64.to_le_bytes()); // memmap_paddr
    assert_eq!(&si[48..52], &1u32.to_le_bytes()); // memmap_entries
    assert_eq!(&si[52..56], &[0; 4]); // reserved
    assert!(ram[0x1000 + START_INFO_SIZE..0x2000]
        .iter()
        .all(|&x| x == 0));

    // Memory map entry {addr, size, type, reserved}.
    let e = &ram[0x2000..0x2000 + MEMMAP_ENTRY_SIZE];
    assert_eq!(&e[0..8], &0u64.to_le_bytes());
    assert_eq!(&e[8..16], &RAM.to_le_bytes());
    assert_eq!(&e[16..20], &1u32.to_le_bytes());
    assert_eq!(&e[20..24], &[0; 4]);

    // Command line, NUL-terminated.
    let cl = b"console=ttyS0 quiet\0";
    assert_eq!(&ram[0x3000..0x3000 + cl.len()], cl);
}

#[test]
fn loads_elf32() {
    let elf = Builder::pvh(ElfClass::Elf32).build();
    let mut ram = ram();
    let boot = load_into(&elf, &mut ram, "").unwrap();
    assert_eq!(boot.entry as u64, TEXT + 0x10);
    assert_eq!(ram[0x3000], 0);
    let info = check(&elf).unwrap();
    assert_eq!(info.class, ElfClass::Elf32);
    assert_eq!(info.segments, 2);
    assert_eq!(info.image_bytes, 0x7000);
}

#[test]
fn four_byte_note_and_section_note() {
    let mut b = Builder::pvh(ElfClass::Elf64);
    b.segs[2] = Seg::note(pvh_note(TEXT + 0x20, 4), 4);
    assert_eq!(check(&b.build()).unwrap().entry as u64, TEXT + 0x20);

    let elf = Builder::pvh(ElfClass::Elf64).note_as_section().build();
    assert_eq!(check(&elf).unwrap().entry as u64, TEXT + 0x10);
    let elf = Builder::pvh(ElfClass::Elf32).note_as_section().build();
    assert_eq!(check(&elf).unwrap().entry as u64, TEXT + 0x10);
}

#[test]
fn pvh_note_among_other_notes_and_8_byte_alignment() {
    let mut b = Builder::pvh(ElfClass::Elf64);
    let mut notes = note(b"GNU\0", 3, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 8);
    notes.extend(note(b"Xen\0", 6, b"linux\0", 8)); // XEN_ELFNOTE_GUEST_OS
    notes.extend(note(
        b"Xen\0",
        XEN_ELFNOTE_PHYS32_ENTRY,
        &(TEXT + 0x40).to_le_bytes(),
        8,
    ));
    b.segs[2] = Seg::note(notes, 8);
    assert_eq!(check(&b.build()).unwrap().entry as u64, TEXT + 0x40);
}

#[test]
fn wrong_note_name_or_type_is_not_pvh() {
    let mut b = Builder::pvh(ElfClass::Elf64);
    b.segs[2] = Seg::note(note(b"Xem\0", 18, &(TEXT).to_le_bytes(), 4), 4);
    assert_eq!(check(&b.build()), Err(LoadError::NoPvhNote));
    b.segs[2] = Seg::note(note(b"Xen\0", 17, &(TEXT).to_le_bytes(), 4), 4);
    assert_eq!(check(&b.build()), Err(LoadError::NoPvhNote));
    b.segs.pop();
    assert_eq!(check(&b.build()), Err(LoadError::NoPvhNote));
}

#[test]
fn bad_pvh_note_size_and_conflicts() {
    let mut b = Builder::pvh(ElfClass::Elf64);
    b.segs[2] = Seg::note(note(b"Xen\0", 18, &[1, 2, 3, 4, 5, 6], 4), 4);
    assert_eq!(check(&b.build()), Err(LoadError::BadPvhNoteSize(6)));

    let mut notes = pvh_note(TEXT, 8);
    notes.extend(pvh_note(TEXT + 4, 4));
    b.segs[2] = Seg::note(notes, 4);
    assert_eq!(
        check(&b.build()),
        Err(LoadError::ConflictingPvhNotes {
            first: TEXT,
            second: TEXT + 4
        })
    );
    // The same entry twice is fine.
    let mut notes = pvh_note(TEXT, 8);
    notes.extend(pvh_note(TEXT, 4));
    b.segs[2] = Seg::note(notes, 4);
    assert!(check(&b.build()).is_ok());
}

#[test]
fn malformed_notes() {
    let mut b = Builder::pvh(ElfClass::Elf64);
    let mut n = pvh_note(TEXT, 8);
    n[4..8].copy_from_slice(&0x1000u32.to_le_bytes()); // descsz past the end
    b.segs[2] = Seg::note(n, 4);
    assert_eq!(
        check(&b.build()),
        Err(LoadError::MalformedNote {
            source: NoteSource::Segment(2),
            offset: 0
        })
    );
    let mut n = pvh_note(TEXT, 8);
    n[0..4].copy_from_slice(&u32::MAX.to_le_bytes()); // namesz huge
    b.segs[2] = Seg::note(n, 4);
    assert!(matches!(
        check(&b.build()),
        Err(LoadError::MalformedNote { .. })
    ));

    // A note segment pointing outside the file.
    let mut elf = Builder::pvh(ElfClass::Elf64).build();
    let ph2 = 64 + 2 * 56;
    elf[ph2 + 8..ph2 + 16].copy_from_slice(&(u64::MAX - 4).to_le_bytes());
    assert_eq!(
        check(&elf),
        Err(LoadError::NotesOutsideFile(NoteSource::Segment(2)))
    );
}

#[test]
fn trailing_note_padding_is_ignored() {
    let mut b = Builder::pvh(ElfClass::Elf64);
    let mut n = pvh_note(TEXT, 8);
    n.extend_from_slice(&[0; 7]);
    b.segs[2] = Seg::note(n, 4);
    assert!(check(&b.build()).is_ok());
}

#[test]
fn header_errors() {
    let good = Builder::pvh(ElfClass::Elf64).build();
    assert_eq!(check(b""), Err(LoadError::NotElf));
    assert_eq!(check(b"MZ\x90\x00"), Err(LoadError::NotElf));
    assert_eq!(
        check(&good[..5]),
        Err(LoadError::TruncatedHeader { len: 5, need: 64 })
    );
    assert_eq!(
        check(&good[..4]),
        Err(LoadError::TruncatedHeader { len: 4, need: 16 })
    );
    assert_eq!(
        check(&good[..63]),
        Err(LoadError::TruncatedHeader { len: 63, need: 64 })
    );

    let patch = |at: usize, bytes: &[u8]| {
        let mut e = good.clone();
        e[at..at + bytes.len()].copy_from_slice(bytes);
        check(&e)
    };
    assert_eq!(patch(4, &[3]), Err(LoadError::UnsupportedClass(3)));
    assert_eq!(patch(5, &[2]), Err(LoadError::NotLittleEndian(2)));
    assert_eq!(patch(6, &[0]), Err(LoadError::BadVersion(0)));
    assert_eq!(patch(16, &3u16.to_le_bytes()), Err(LoadError::WrongType(3)));
    assert_eq!(
        patch(18, &40u16.to_le_bytes()),
        Err(LoadError::WrongMachine {
            class_bits: 64,
            machine: 40
        })
    );
    assert_eq!(
        patch(20, &2u32.to_le_bytes()),
        Err(LoadError::BadVersion(2))
    );
    assert_eq!(
        patch(54, &32u16.to_le_bytes()),
        Err(LoadError::BadProgramHeaderSize(32))
    );
    assert_eq!(
        patch(56, &0u16.to_le_bytes()),
        Err(LoadError::NoProgramHeaders)
    );
    assert_eq!(
        patch(56, &65u16.to_le_bytes()),
        Err(LoadError::TooManyProgramHeaders(65))
    );
    assert_eq!(
        patch(56, &0xffffu16.to_le_bytes()),
        Err(LoadError::TooManyProgramHeaders(0xffff))
    );
    assert!(matches!(
        patch(32, &(good.len() as u64 - 100).to_le_bytes()),
        Err(LoadError::ProgramHeadersOutsideFile { .. })
    ));
    assert!(matches!(
        patch(32, &u64::MAX.to_le_bytes()),
        Err(LoadError::ProgramHeadersOutsideFile { .. })
    ));

    // ELF32 with the x86-64 machine number is rejected: class and machine must agree.
    let mut b = Builder::pvh(ElfClass::Elf32);
    b.machine = 62;
    assert_eq!(
        check(&b.build()),
        Err(LoadError::WrongMachine {
            class_bits: 32,
            machine: 62
        })
    );
}

#[test]
fn section_table_errors() {
    let good = Builder::pvh(ElfClass::Elf64).note_as_section().build();
    let patch = |at: usize, bytes: &[u8]| {
        let mut e = good.clone();
        e[at..at + bytes.len()].copy_from_slice(bytes);
        check(&e)
    };
    assert_eq!(
        patch(58, &40u16.to_le_bytes()),
        Err(LoadError::BadSectionHeaderSize(40))
    );
    assert_eq!(
        patch(60, &2000u16.to_le_bytes()),
        Err(LoadError::TooManySectionHeaders(2000))
    );
    assert!(matches!(
        patch(40, &u64::MAX.to_le_bytes()),
        Err(LoadError::SectionHeadersOutsideFile { .. })
    ));
    assert!(matches!(
        patch(60, &100u16.to_le_bytes()),
        Err(LoadError::SectionHeadersOutsideFile { .. })
    ));
    // No sections at all and no note segment: not PVH.
    assert_eq!(patch(60, &0u16.to_le_bytes()), Err(LoadError::NoPvhNote));
}

#[test]
fn segment_shape_errors() {
    let mut b = Builder::pvh(ElfClass::Elf64);
    b.segs[1].memsz = 0x100; // < filesz 0x300
    assert_eq!(
        check(&b.build()),
        Err(LoadError::SegmentFileSizeExceedsMemSize {
            index: 1,
            filesz: 0x300,
            memsz: 0x100
        })
    );

    let mut elf = Builder::pvh(ElfClass::Elf64).build();
    let ph1 = 64 + 56;
    let near_end = elf.len() as u64 - 0x10;
    elf[ph1 + 8..ph1 + 16].copy_from_slice(&near_end.to_le_bytes());
    assert!(matches!(
        check(&elf),
        Err(LoadError::SegmentOutsideFile { index: 1, .. })
    ));
    elf[ph1 + 8..ph1 + 16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        check(&elf),
        Err(LoadError::SegmentOutsideFile { index: 1, .. })
    ));

    let mut b = Builder::pvh(ElfClass::Elf64);
    b.segs[1].paddr = u64::MAX - 0x10;
    assert!(matches!(
        check(&b.build()),
        Err(LoadError::SegmentAddressOverflow { index: 1, .. })
    ));
}

#[test]
fn placement_errors() {
    let mut b = Builder::pvh(ElfClass::Elf64);
    b.segs[1].paddr = 0x8000;
    assert_eq!(
        check(&b.build()),
        Err(LoadError::SegmentInReservedLowMemory {
            index: 1,
            paddr: 0x8000,
            memsz: 0x5000
        })
    );
    let mut b = Builder::pvh(ElfClass::Elf64);
    b.segs[1].paddr = RAM - 0x1000;
    let err = check(&b.build()).unwrap_err();
    assert_eq!(
        err,
        LoadError::SegmentOutsideRam {
            index: 1,
            paddr: RAM - 0x1000,
            memsz: 0x5000,
            ram: RAM
        }
    );
    assert_eq!(
        err.to_string(),
        "ELF segment 1 at 0x3ff000 +0x5000 lies outside guest RAM (4 MiB)"
    );

    let mut b = Builder::pvh(ElfClass::Elf64);
    b.segs[1].memsz = 8 * MIB;
    let err = check(&b.build()).unwrap_err();
    assert_eq!(
        err,
        LoadError::ImageLargerThanRam {
            image: 8 * MIB + 0x2000,
            ram: RAM
        }
    );

    let mut b = Builder::pvh(ElfClass::Elf64);
    b.segs[1].paddr = TEXT + 0x1000;
    assert_eq!(
        check(&b.build()),
        Err(LoadError::SegmentsOverlap {
            first: 0,
            second: 1
        })
    );
    // Adjacent segments do not overlap.
    b.segs[1].paddr = TEXT + 0x2000;
    assert!(check(&b.build()).is_ok());

    let mut b = Builder::pvh(ElfClass::Elf64);
    b.segs.retain(|s| s.p_type != PT_LOAD);
    assert_eq!(check(&b.build()), Err(LoadError::NoLoadableSegments));

    assert_eq!(
        validate(&Builder::pvh(ElfClass::Elf64).build(), 0x3fff),
        Err(LoadError::RamTooSmall {
            ram: 0x3fff,
            need: 0x4000
        })
    );
}

#[test]
fn zero_sized_and_non_load_segments_are_ignored() {
    let mut b = Builder::pvh(ElfClass::Elf64);
    b.segs.push(Seg::load(0, 5, vec![], 0)); // empty PT_LOAD at 0
    let mut other = Seg::load(0x10, 5, vec![1, 2, 3], 0x10);
    other.p_type = 0x6474_e551; // PT_GNU_STACK
    b.segs.push(other);
    assert_eq!(check(&b.build()).unwrap().segments, 2);
}

#[test]
fn entry_errors() {
    let mut b = Builder::pvh(ElfClass::Elf64);
    b.segs[2] = Seg::note(pvh_note(0x1_0000_0000 + TEXT, 8), 4);
    assert_eq!(
        check(&b.build()),
        Err(LoadError::EntryAbove4GiB(0x1_0010_0000))
    );
    b.segs[2] = Seg::note(pvh_note(DATA + 0x10, 8), 4);
    assert_eq!(
        check(&b.build()),
        Err(LoadError::EntryNotExecutable {
            entry: DATA + 0x10,
            index: 1
        })
    );
    // In the text segment's bss: not file-backed code.
    b.segs[2] = Seg::note(pvh_note(TEXT + 0x1900, 8), 4);
    assert_eq!(
        check(&b.build()),
        Err(LoadError::EntryOutsideImage(TEXT + 0x1900))
    );
    b.segs[2] = Seg::note(pvh_note(0x50_0000, 8), 4);
    assert_eq!(
        check(&b.build()),
        Err(LoadError::EntryOutsideImage(0x50_0000))
    );
}

#[test]
fn cmdline_and_memmap_errors_write_nothing() {
    let elf = Builder::pvh(ElfClass::Elf64).build();
    let mut ram = ram();
    let mut mem = Recording {
        inner: SliceMemory::new(&mut ram),
        writes: 0,
    };
    let map = default_memmap(RAM);

    let long = "x".repeat(CMDLINE_MAX);
    assert_eq!(
        load(&elf, &mut mem, &long, &map),
        Err(LoadError::CmdlineTooLong { len: CMDLINE_MAX })
    );
    assert_eq!(
        load(&elf, &mut mem, "a\0b", &map),
        Err(LoadError::CmdlineContainsNul { at: 1 })
    );
    let many = vec![map[0]; MAX_MEMMAP_ENTRIES + 1];
    assert_eq!(
        load(&elf, &mut mem, "", &many),
        Err(LoadError::TooManyMemmapEntries(MAX_MEMMAP_ENTRIES + 1))
    );
    let empty = [MemMapEntry {
        addr: 0x1000,
        size: 0,
        kind: MemoryType::Reserved,
    }];
    assert!(matches!(
        load(&elf, &mut mem, "", &empty),
        Err(LoadError::BadMemmapEntry { index: 0, .. })
    ));
    let wrap = [MemMapEntry {
        addr: u64::MAX,
        size: 2,
        kind: MemoryType::Reserved,
    }];
    assert!(matches!(
        load(&elf, &mut mem, "", &wrap),
        Err(LoadError::BadMemmapEntry { index: 0, .. })
    ));
    let big = default_memmap(RAM + 1);
    assert!(matches!(
        load(&elf, &mut mem, "", &big),
        Err(LoadError::MemmapRamOutsideGuest { index: 0, .. })
    ));
    assert_eq!(mem.writes, 0);
    assert!(mem.inner.as_slice().iter().all(|&x| x == 0xAA));

    // A reserved range above RAM (an MMIO hole) is fine.
    let with_hole = [
        map[0],
        MemMapEntry {
            addr: 0xFEC0_0000,
            size: 0x0140_0000,
            kind: MemoryType::Reserved,
        },
    ];
    let longest = "y".repeat(CMDLINE_MAX - 1);
    load(&elf, &mut mem, &longest, &with_hole).unwrap();
    let ram = mem.inner.as_slice();
    assert_eq!(&ram[0x3000..0x3000 + CMDLINE_MAX - 1], longest.as_bytes());
    assert_eq!(ram[0x3000 + CMDLINE_MAX - 1], 0);
    let si = StartInfo::from_bytes(ram[0x1000..0x1038].try_into().unwrap());
    assert_eq!(si.memmap_entries, 2);
    let e1 = MemMapEntry::from_bytes(ram[0x2018..0x2030].try_into().unwrap()).unwrap();
    assert_eq!(e1, with_hole[1]);
}

#[test]
fn empty_memmap_gives_zero_paddr() {
    let elf = Builder::pvh(ElfClass::Elf64).build();
    let mut ram = ram();
    let mut mem = SliceMemory::new(&mut ram);
    load(&elf, &mut mem, "x", &[]).unwrap();
    let si = StartInfo::from_bytes(ram[0x1000..0x1038].try_into().unwrap());
    assert_eq!(si.memmap_paddr, 0);
    assert_eq!(si.memmap_entries, 0);
    assert_eq!(si.cmdline_paddr, CMDLINE_GPA);
}

#[test]
fn invalid_image_writes_nothing() {
    let mut b = Builder::pvh(ElfClass::Elf64);
    b.segs[2] = Seg::note(pvh_note(DATA, 8), 4); // entry not executable
    let elf = b.build();
    let mut ram = ram();
    let mut mem = Recording {
        inner: SliceMemory::new(&mut ram),
        writes: 0,
    };
    assert!(load(&elf, &mut mem, "", &default_memmap(RAM)).is_err());
    assert_eq!(mem.writes, 0);
}

#[test]
fn slice_memory_bounds() {
    let mut ram = vec![0u8; 16];
    let mut m = SliceMemory::new(&mut ram);
    assert_eq!(m.size(), 16);
    m.write(12, &[1, 2, 3, 4]).unwrap();
    assert_eq!(
        m.write(13, &[1, 2, 3, 4]),
        Err(MemoryError { gpa: 13, len: 4 })
    );
    assert!(m.write(u64::MAX, &[1]).is_err());
    assert!(m.fill(u64::MAX, u64::MAX, 0).is_err());
    m.fill(0, 16, 7).unwrap();
    assert!(m.fill(1, 16, 7).is_err());
    assert_eq!(m.as_slice()[15], 7);
}

#[test]
fn display_messages() {
    assert_eq!(Size(16 * MIB).to_string(), "16 MiB");
    assert_eq!(Size(1 << 30).to_string(), "1 GiB");
    assert_eq!(Size(0x3000).to_string(), "12 KiB");
    assert_eq!(Size(0x1001).to_string(), "0x1001 bytes");
    assert_eq!(Size(0).to_string(), "0x0 bytes");
    assert_eq!(
        LoadError::SegmentOutsideRam {
            index: 2,
            paddr: 0x100_0000,
            memsz: 0x20_0000,
            ram: 16 * MIB
        }
        .to_string(),
        "ELF segment 2 at 0x1000000 +0x200000 lies outside guest RAM (16 MiB)"
    );
    assert_eq!(
        LoadError::CmdlineTooLong { len: 5000 }.to_string(),
        "command line is 5000 bytes; at most 4095 fit"
    );
    assert!(LoadError::NoPvhNote.to_string().contains("PVH"));
}

#[test]
fn start_info_round_trip() {
    let si = StartInfo {
        magic: HVM_START_MAGIC,
        version: 1,
        flags: 3,
        nr_modules: 2,
        modlist_paddr: 0x1122_3344_5566_7788,
        cmdline_paddr: 9,
        rsdp_paddr: 10,
        memmap_paddr: 11,
        memmap_entries: 12,
    };
    assert_eq!(StartInfo::from_bytes(&si.to_bytes()), si);
    for t in 1..=5 {
        assert_eq!(MemoryType::from_value(t).unwrap().value(), t);
    }
    assert_eq!(MemoryType::from_value(0), None);
    assert_eq!(MemoryType::from_value(6), None);
}
