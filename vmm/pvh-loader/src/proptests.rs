//! Property tests: hostile bytes never panic the loader, a rejected image
//! writes nothing, and accepted images land exactly where their headers say.

use proptest::prelude::*;

use crate::test_elf::{note, pvh_note, Builder, Seg, TEXT};
use crate::tests::Recording;
use crate::*;

const RAM: u64 = 2 << 20;

fn classes() -> impl Strategy<Value = ElfClass> {
    prop_oneof![Just(ElfClass::Elf32), Just(ElfClass::Elf64)]
}

/// Loads with a recording memory; checks the "nothing written on error" rule
/// and that validation guarantees in-range writes.
fn load_checked(elf: &[u8], cmdline: &str) -> Result<(PvhBoot, Vec<u8>), LoadError> {
    let mut ram = vec![0u8; RAM as usize];
    let mut mem = Recording {
        inner: SliceMemory::new(&mut ram),
        writes: 0,
    };
    let r = load(elf, &mut mem, cmdline, &default_memmap(RAM));
    match r {
        Ok(boot) => Ok((boot, ram)),
        Err(e) => {
            assert_eq!(mem.writes, 0, "error {e} after writes");
            assert!(
                !matches!(e, LoadError::Memory(_)),
                "validated load failed: {e}"
            );
            Err(e)
        }
    }
}

/// Invariants of any accepted image.
fn check_accepted(elf: &[u8], info: &ImageInfo) {
    assert!(info.image_start >= LOW_RESERVED_END);
    assert!(info.image_end <= RAM);
    assert!(info.image_start < info.image_end);
    assert!(u64::from(info.entry) >= info.image_start);
    assert!(u64::from(info.entry) < info.image_end);
    assert!(info.image_bytes <= RAM);
    // Validation is deterministic and load agrees with it.
    assert_eq!(validate(elf, RAM), Ok(*info));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = validate(&bytes, RAM);
        let _ = load_checked(&bytes, "x");
    }

    #[test]
    fn elf_magic_then_garbage(class in 0u8..4, rest in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let mut bytes = b"\x7fELF".to_vec();
        bytes.push(class);
        bytes.extend_from_slice(&[1, 1]);
        bytes.extend(rest);
        if let Ok(info) = validate(&bytes, RAM) {
            check_accepted(&bytes, &info);
        }
        let _ = load_checked(&bytes, "");
    }

    #[test]
    fn mutated_valid_image(
        class in classes(),
        section_note in any::<bool>(),
        muts in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
    ) {
        let mut b = Builder::pvh(class);
        if section_note {
            b = b.note_as_section();
        }
        let mut elf = b.build();
        let len = elf.len();
        for (i, v) in muts {
            elf[i.index(len)] = v;
        }
        match validate(&elf, RAM) {
            Ok(info) => {
                check_accepted(&elf, &info);
                let (boot, _) = load_checked(&elf, "console=ttyS0").unwrap();
                prop_assert_eq!(boot.entry, info.entry);
            }
            Err(e) => {
                prop_assert!(!e.to_string().is_empty());
                prop_assert_eq!(load_checked(&elf, ""), Err(e));
            }
        }
    }

    #[test]
    fn hostile_header_fields(
        class in classes(),
        field in 0usize..32,
        value in prop_oneof![Just(0u64), Just(1), Just(u64::MAX), Just(u64::MAX / 2),
                             Just(0xffff_ffff), Just(0x1_0000_0000), any::<u64>()],
    ) {
        // Overwrite one header or program-header word with a hostile value.
        let mut elf = Builder::pvh(class).build();
        let (ehsize, word) = match class { ElfClass::Elf32 => (52, 4), ElfClass::Elf64 => (64, 8) };
        let off = (16 + field * 2) % (ehsize + 3 * 32);
        let n = word.min(elf.len() - off);
        elf[off..off + n].copy_from_slice(&value.to_le_bytes()[..n]);
        if let Ok(info) = validate(&elf, RAM) {
            check_accepted(&elf, &info);
        }
        let _ = load_checked(&elf, "");
    }

    #[test]
    fn hostile_note_contents(
        class in classes(),
        notes in proptest::collection::vec(any::<u8>(), 0..256),
        align in prop_oneof![Just(0u64), Just(4), Just(8), any::<u64>()],
        as_section in any::<bool>(),
    ) {
        let mut b = Builder::pvh(class);
        b.segs[2] = Seg::note(notes, align);
        if as_section {
            b = b.note_as_section();
        }
        let elf = b.build();
        if let Ok(info) = validate(&elf, RAM) {
            check_accepted(&elf, &info);
        }
    }

    #[test]
    fn note_fields_fuzzed(
        namesz in prop_oneof![Just(3u32), Just(4), any::<u32>()],
        descsz in prop_oneof![Just(4u32), Just(8), any::<u32>()],
        ntype in prop_oneof![Just(18u32), any::<u32>()],
        tail in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let mut n = Vec::new();
        n.extend_from_slice(&namesz.to_le_bytes());
        n.extend_from_slice(&descsz.to_le_bytes());
        n.extend_from_slice(&ntype.to_le_bytes());
        n.extend_from_slice(b"Xen\0");
        n.extend_from_slice(&(TEXT + 8).to_le_bytes());
        n.extend(tail);
        let mut b = Builder::pvh(ElfClass::Elf64);
        b.segs[2] = Seg::note(n, 4);
        let elf = b.build();
        let r = validate(&elf, RAM);
        if namesz == 4 && descsz == 8 && ntype == 18 {
            // The PVH note parses; the random tail may still be a broken note.
            match r {
                Ok(info) => prop_assert_eq!(u64::from(info.entry), TEXT + 8),
                Err(LoadError::MalformedNote { offset, .. }) => prop_assert!(offset >= 24),
                Err(e) => prop_assert!(
                    matches!(e, LoadError::ConflictingPvhNotes { .. } | LoadError::BadPvhNoteSize(_)),
                    "{}", e
                ),
            }
        } else if let Ok(info) = r {
            check_accepted(&elf, &info);
        }
    }

    /// Random segment layouts against a reference model of the placement rules.
    #[test]
    fn segment_layouts(
        class in classes(),
        segs in proptest::collection::vec(
            (0u64..0x30_0000, 0usize..0x800, 0u64..0x4000, any::<bool>()),
            1..6,
        ),
    ) {
        let mut b = Builder::new(class);
        let mut model: Vec<(u64, u64)> = Vec::new();
        for (k, &(paddr, filesz, extra, exec)) in segs.iter().enumerate() {
            let paddr = paddr & !0xf;
            let data: Vec<u8> = (0..filesz).map(|i| (i + k * 31) as u8).collect();
            let memsz = filesz as u64 + extra;
            b.segs.push(Seg::load(paddr, if exec || k == 0 { 5 } else { 6 }, data, memsz));
            if memsz != 0 {
                model.push((paddr, paddr + memsz));
            }
        }
        // Entry: first byte of the first segment with file bytes, if it is executable.
        let entry = b.segs[0].paddr;
        b.segs.push(Seg::note(pvh_note(entry, 4), 4));
        let elf = b.build();

        let total: u64 = model.iter().map(|(s, e)| e - s).sum();
        let placed = model.iter().all(|&(s, e)| s >= LOW_RESERVED_END && e <= RAM);
        let disjoint = model.iter().enumerate().all(|(i, a)| {
            model.iter().skip(i + 1).all(|b| a.1 <= b.0 || b.1 <= a.0)
        });
        let entry_ok = b.segs.iter().take(segs.len()).any(|s| {
            s.memsz != 0 && s.flags & 1 != 0 && entry >= s.paddr
                && entry < s.paddr + s.data.len() as u64
        });
        let expect_ok = !model.is_empty() && total <= RAM && placed && disjoint && entry_ok;

        let r = validate(&elf, RAM);
        prop_assert_eq!(r.is_ok(), expect_ok, "{:?}", r);
        if let Ok(info) = r {
            check_accepted(&elf, &info);
            let (boot, ram) = load_checked(&elf, "").unwrap();
            prop_assert_eq!(u64::from(boot.entry), entry);
            for s in &b.segs[..segs.len()] {
                let at = s.paddr as usize;
                prop_assert_eq!(&ram[at..at + s.data.len()], &s.data[..]);
                let end = (s.paddr + s.memsz) as usize;
                prop_assert!(ram[at + s.data.len()..end].iter().all(|&x| x == 0));
            }
        }
    }

    #[test]
    fn cmdlines(s in ".{0,20}", n in 0usize..5000, nul in proptest::option::of(0usize..5000)) {
        let mut cmd: String = s.chars().cycle().take(n).collect();
        if let Some(at) = nul {
            let at = cmd.char_indices().map(|(i, _)| i).nth(at).unwrap_or(cmd.len());
            cmd.insert(at, '\0');
        }
        let elf = Builder::pvh(ElfClass::Elf64).build();
        let r = load_checked(&elf, &cmd);
        let bytes = cmd.as_bytes();
        if let Some(at) = bytes.iter().position(|&b| b == 0) {
            prop_assert_eq!(r.map(|_| ()), Err(LoadError::CmdlineContainsNul { at }));
        } else if bytes.len() >= CMDLINE_MAX {
            prop_assert_eq!(r.map(|_| ()), Err(LoadError::CmdlineTooLong { len: bytes.len() }));
        } else {
            let (_, ram) = r.unwrap();
            prop_assert_eq!(&ram[0x3000..0x3000 + bytes.len()], bytes);
            prop_assert_eq!(ram[0x3000 + bytes.len()], 0);
        }
    }

    #[test]
    fn memmaps(entries in proptest::collection::vec((any::<u64>(), any::<u64>(), 1u32..6), 0..140)) {
        let map: Vec<MemMapEntry> = entries
            .iter()
            .map(|&(addr, size, t)| MemMapEntry {
                addr: addr % (2 * RAM),
                size: size % (2 * RAM),
                kind: MemoryType::from_value(t).unwrap(),
            })
            .collect();
        let elf = Builder::pvh(ElfClass::Elf64).build();
        let mut ram = vec![0u8; RAM as usize];
        let mut mem = Recording { inner: SliceMemory::new(&mut ram), writes: 0 };
        let r = load(&elf, &mut mem, "", &map);
        let valid = map.len() <= MAX_MEMMAP_ENTRIES
            && map.iter().all(|e| e.size != 0 && (e.kind != MemoryType::Ram || e.addr + e.size <= RAM));
        prop_assert_eq!(r.is_ok(), valid);
        if valid {
            for (i, e) in map.iter().enumerate() {
                let at = 0x2000 + i * MEMMAP_ENTRY_SIZE;
                let got = MemMapEntry::from_bytes(ram[at..at + 24].try_into().unwrap());
                prop_assert_eq!(got, Some(*e));
            }
        } else {
            prop_assert_eq!(mem.writes, 0);
        }
    }

    #[test]
    fn any_ram_size(ram in any::<u64>()) {
        let elf = Builder::pvh(ElfClass::Elf64).build();
        let r = validate(&elf, ram);
        if ram < 0x4000 {
            prop_assert!(matches!(r, Err(LoadError::RamTooSmall { .. })), "{:?}", r);
        } else if ram >= 0x10_9000 {
            prop_assert!(r.is_ok());
        }
    }
}

#[test]
fn note_helper_pads() {
    assert_eq!(note(b"Xen", 1, &[1], 4).len(), 12 + 4 + 4);
    assert_eq!(note(b"Xen\0", 1, &[1; 8], 8).len(), 12 + 4 + 8);
}
