//! Fuzzes the PVH ELF loader: `pvh_loader::validate` and `pvh_loader::load`.
//!
//! Input layout: `[body][cmdline bytes][n]`, where the last byte `n` says how
//! the command line is formed (0..=250: the `n` bytes before it; 251..=255: a
//! line of `CMDLINE_MAX - 3 + (n - 251)` bytes, to hit the length limit).
//!
//! * A body starting with `0x7f` (the ELF magic) is used as the ELF file as
//!   is, so real images make good seeds: append one zero byte to an ELF file.
//! * Any other body is decoded (with `arbitrary`) into a description of a
//!   PVH image: segments, notes (in a `PT_NOTE` segment or an `SHT_NOTE`
//!   section), a memory map and a few byte patches. That reaches the checks
//!   behind the ELF header far more often than random bytes do.
//!
//! Invariants:
//! * `load` returns exactly `validate`'s error when `validate` fails, and
//!   then never calls the guest-memory interface (no write, no fill).
//! * When `validate` succeeds, `load` fails only for a bad command line or
//!   memory map (and then writes nothing), and succeeds otherwise.
//! * On success: `image_start >= LOW_RESERVED_END`, the entry lies in
//!   `[image_start, image_end)`, `image_end <= RAM`, the segments' total size
//!   fits in the span; `load` agrees with `validate`; every write lies in the
//!   boot data `0x1000..0x4000` or the image; the start info, memory map and
//!   NUL-terminated command line read back as written.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use pvh_loader::{
    default_memmap, load, validate, GuestMemory, LoadError, MemMapEntry, MemoryError, MemoryType,
    SliceMemory, StartInfo, BOOT_DATA_END, CMDLINE_GPA, CMDLINE_MAX, HVM_START_MAGIC,
    LOW_RESERVED_END, MAX_PROGRAM_HEADERS, MEMMAP_ENTRY_SIZE, MEMMAP_GPA, START_INFO_GPA,
    START_INFO_SIZE,
};
use std::cell::RefCell;

/// Guest RAM for the target: small, so placement checks bite.
const RAM: usize = 4 << 20;

thread_local! {
    static GUEST_RAM: RefCell<Vec<u8>> = RefCell::new(vec![0; RAM]);
}

/// `SliceMemory` plus a record of every call `load` makes through
/// `GuestMemory` (gpa, len), so "nothing written" is checked exactly.
struct Watched<'a> {
    mem: SliceMemory<'a>,
    calls: Vec<(u64, u64)>,
}

impl GuestMemory for Watched<'_> {
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemoryError> {
        self.calls.push((gpa, data.len() as u64));
        self.mem.write(gpa, data)
    }
    fn fill(&mut self, gpa: u64, len: u64, byte: u8) -> Result<(), MemoryError> {
        self.calls.push((gpa, len));
        self.mem.fill(gpa, len, byte)
    }
    fn size(&self) -> u64 {
        self.mem.size()
    }
}

// ---------------------------------------------------------------------------
// Structured images.

#[derive(Arbitrary, Debug)]
struct Spec {
    elf64: bool,
    segs: Vec<SegSpec>,
    notes: Vec<NoteSpec>,
    /// Put the notes in an SHT_NOTE section instead of a PT_NOTE segment.
    notes_in_section: bool,
    /// Alignment field of the note container (4 or 8 matter).
    note_align8: bool,
    memmap: Option<Vec<MapSpec>>,
    patches: Vec<(u16, u8)>,
}

#[derive(Arbitrary, Debug)]
enum SegKind {
    Load,
    Note,
    Other(u32),
}

#[derive(Arbitrary, Debug)]
enum Addr {
    /// `LOW_RESERVED_END + 64 * v`: inside a 4 MiB RAM.
    InRam(u16),
    /// Just below 1 MiB, to cross the reserved boundary.
    BelowReserved(u8),
    /// Anything.
    Raw(u64),
}

#[derive(Arbitrary, Debug)]
struct SegSpec {
    kind: SegKind,
    flags: u8,
    paddr: Addr,
    filesz: u16,
    bss: u16,
    /// Make the header lie: `p_filesz` / `p_offset` taken from here instead.
    lie: Option<(u64, u64)>,
}

#[derive(Arbitrary, Debug)]
enum EntrySpec {
    /// `offset` bytes into segment `seg` (modulo the segment count).
    InSeg {
        seg: u8,
        offset: u16,
    },
    Raw(u64),
}

#[derive(Arbitrary, Debug)]
struct NoteSpec {
    entry: EntrySpec,
    desc_len: u8,
    /// 0: "Xen\0", 1: "Xen", else "Linux".
    name: u8,
    /// Use type XEN_ELFNOTE_PHYS32_ENTRY (18), else this type.
    ntype: Option<u32>,
}

#[derive(Arbitrary, Debug)]
struct MapSpec {
    addr: u64,
    size: u64,
    kind: u8,
}

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const SHT_NOTE: u32 = 7;

fn paddr(a: &Addr) -> u64 {
    match *a {
        Addr::InRam(v) => LOW_RESERVED_END + 64 * u64::from(v),
        Addr::BelowReserved(v) => LOW_RESERVED_END - 256 + u64::from(v),
        Addr::Raw(v) => v,
    }
}

fn note_bytes(name: &[u8], ntype: u32, desc: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(name.len() as u32).to_le_bytes());
    v.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    v.extend_from_slice(&ntype.to_le_bytes());
    v.extend_from_slice(name);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v.extend_from_slice(desc);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

/// Builds an ELF file from `spec`; returns it and the memory map to use.
fn build(spec: &Spec) -> (Vec<u8>, Option<Vec<MemMapEntry>>) {
    let segs: Vec<&SegSpec> = spec.segs.iter().take(MAX_PROGRAM_HEADERS + 2).collect();
    let seg_addrs: Vec<u64> = segs.iter().map(|s| paddr(&s.paddr)).collect();

    let mut notes = Vec::new();
    for n in spec.notes.iter().take(4) {
        let entry = match n.entry {
            EntrySpec::InSeg { seg, offset } if !seg_addrs.is_empty() => {
                seg_addrs[usize::from(seg) % seg_addrs.len()].wrapping_add(u64::from(offset))
            }
            EntrySpec::InSeg { offset, .. } => LOW_RESERVED_END + u64::from(offset),
            EntrySpec::Raw(v) => v,
        };
        let desc_len = match n.desc_len % 4 {
            0 | 1 => 8,
            2 => 4,
            _ => usize::from(n.desc_len % 12),
        };
        let mut desc = entry.to_le_bytes().to_vec();
        desc.resize(desc_len, 0);
        let name: &[u8] = match n.name % 3 {
            0 => b"Xen\0",
            1 => b"Xen",
            _ => b"Linux\0",
        };
        notes.extend(note_bytes(name, n.ntype.unwrap_or(18), &desc));
    }

    let (ehsize, phentsize, shentsize) = if spec.elf64 {
        (64usize, 56usize, 64usize)
    } else {
        (52, 32, 40)
    };
    let note_seg = !spec.notes_in_section;
    let phnum = segs.len() + usize::from(note_seg);
    let mut data_off = ehsize + phnum * phentsize;

    // File contents of each segment (and of the note container) after the headers.
    let mut blobs: Vec<(usize, Vec<u8>)> = Vec::new();
    for (i, s) in segs.iter().enumerate() {
        data_off = data_off.next_multiple_of(8);
        let len = usize::from(s.filesz % 0x2000);
        let bytes: Vec<u8> = (0..len).map(|j| (j * 7 + i) as u8).collect();
        blobs.push((data_off, bytes));
        data_off += len;
    }
    data_off = data_off.next_multiple_of(8);
    let note_off = data_off;
    data_off += notes.len();
    let shnum = if spec.notes_in_section { 2 } else { 0 };
    let shoff = data_off.next_multiple_of(8);
    let note_align = if spec.note_align8 { 8u64 } else { 4 };

    let mut out = Vec::new();
    let word = |out: &mut Vec<u8>, v: u64| {
        if spec.elf64 {
            out.extend_from_slice(&v.to_le_bytes());
        } else {
            out.extend_from_slice(&(v as u32).to_le_bytes());
        }
    };
    out.extend_from_slice(b"\x7fELF");
    out.push(if spec.elf64 { 2 } else { 1 });
    out.extend_from_slice(&[1, 1, 0]);
    out.resize(16, 0);
    out.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    out.extend_from_slice(&(if spec.elf64 { 62u16 } else { 3 }).to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    word(&mut out, 0xdead_0000);
    word(&mut out, ehsize as u64);
    word(&mut out, if shnum == 0 { 0 } else { shoff as u64 });
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(ehsize as u16).to_le_bytes());
    out.extend_from_slice(&(phentsize as u16).to_le_bytes());
    out.extend_from_slice(&(phnum as u16).to_le_bytes());
    out.extend_from_slice(&(shentsize as u16).to_le_bytes());
    out.extend_from_slice(&(shnum as u16).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());

    let mut phdrs: Vec<(u32, u32, u64, u64, u64, u64, u64)> = Vec::new();
    for ((s, (off, bytes)), &addr) in segs.iter().zip(&blobs).zip(&seg_addrs) {
        let p_type = match s.kind {
            SegKind::Load => PT_LOAD,
            SegKind::Note => PT_NOTE,
            SegKind::Other(t) => t,
        };
        let filesz = bytes.len() as u64;
        let (filesz, offset) = s.lie.unwrap_or((filesz, *off as u64));
        let memsz = bytes.len() as u64 + u64::from(s.bss);
        phdrs.push((
            p_type,
            u32::from(s.flags & 7),
            offset,
            addr,
            filesz,
            memsz,
            0x1000,
        ));
    }
    if note_seg {
        let n = notes.len() as u64;
        phdrs.push((PT_NOTE, 4, note_off as u64, 0, n, n, note_align));
    }
    for (p_type, flags, offset, addr, filesz, memsz, align) in phdrs {
        out.extend_from_slice(&p_type.to_le_bytes());
        if spec.elf64 {
            out.extend_from_slice(&flags.to_le_bytes());
            for v in [offset, addr, addr, filesz, memsz, align] {
                out.extend_from_slice(&v.to_le_bytes());
            }
        } else {
            for v in [offset, addr, addr, filesz, memsz] {
                out.extend_from_slice(&(v as u32).to_le_bytes());
            }
            out.extend_from_slice(&flags.to_le_bytes());
            out.extend_from_slice(&(align as u32).to_le_bytes());
        }
    }
    for (off, bytes) in &blobs {
        out.resize(*off, 0);
        out.extend_from_slice(bytes);
    }
    out.resize(note_off, 0);
    out.extend_from_slice(&notes);
    if shnum != 0 {
        out.resize(shoff + shentsize, 0); // the null section
        out.extend_from_slice(&0u32.to_le_bytes()); // sh_name
        out.extend_from_slice(&SHT_NOTE.to_le_bytes());
        word(&mut out, 0); // sh_flags
        word(&mut out, 0); // sh_addr
        word(&mut out, note_off as u64);
        word(&mut out, notes.len() as u64);
        out.extend_from_slice(&0u32.to_le_bytes()); // sh_link
        out.extend_from_slice(&0u32.to_le_bytes()); // sh_info
        word(&mut out, note_align);
        word(&mut out, 0); // sh_entsize
    }
    if !out.is_empty() {
        for &(at, byte) in spec.patches.iter().take(8) {
            let at = usize::from(at) % out.len();
            out[at] = byte;
        }
    }

    let memmap = spec.memmap.as_ref().map(|m| {
        m.iter()
            .take(130)
            .map(|e| MemMapEntry {
                addr: e.addr,
                size: e.size,
                kind: match e.kind % 5 {
                    0 => MemoryType::Ram,
                    1 => MemoryType::Reserved,
                    2 => MemoryType::Acpi,
                    3 => MemoryType::Nvs,
                    _ => MemoryType::Unusable,
                },
            })
            .collect()
    });
    (out, memmap)
}

// ---------------------------------------------------------------------------

fn cmdline_error(e: &LoadError) -> bool {
    matches!(
        e,
        LoadError::CmdlineTooLong { .. } | LoadError::CmdlineContainsNul { .. }
    )
}

fn memmap_error(e: &LoadError) -> bool {
    matches!(
        e,
        LoadError::TooManyMemmapEntries(_)
            | LoadError::BadMemmapEntry { .. }
            | LoadError::MemmapRamOutsideGuest { .. }
    )
}

fn memmap_ok(map: &[MemMapEntry], ram: u64) -> bool {
    map.len() <= 128
        && map.iter().all(|e| {
            e.size != 0
                && e.addr
                    .checked_add(e.size)
                    .is_some_and(|end| e.kind != MemoryType::Ram || end <= ram)
        })
}

fn check(elf: &[u8], cmdline: &str, memmap: &[MemMapEntry]) {
    let ram_size = RAM as u64;
    let validated = validate(elf, ram_size);
    // The error's Display must not panic either.
    if let Err(e) = &validated {
        let _ = e.to_string();
    }
    if let Ok(info) = &validated {
        assert!(info.image_start >= LOW_RESERVED_END, "{info:?}");
        assert!(info.image_start < info.image_end, "{info:?}");
        assert!(info.image_end <= ram_size, "{info:?}");
        let entry = u64::from(info.entry);
        assert!(
            info.image_start <= entry && entry < info.image_end,
            "entry outside image: {info:?}"
        );
        assert!(info.segments >= 1 && info.segments <= MAX_PROGRAM_HEADERS);
        // Segments do not overlap, so their sizes add up to at most the span.
        assert!(
            info.image_bytes <= info.image_end - info.image_start,
            "{info:?}"
        );
    }

    let cmdline_ok = !cmdline.as_bytes().contains(&0) && cmdline.len() < CMDLINE_MAX;
    let map_ok = memmap_ok(memmap, ram_size);

    GUEST_RAM.with(|ram| {
        let mut ram = ram.borrow_mut();
        let mut mem = Watched {
            mem: SliceMemory::new(&mut ram[..]),
            calls: Vec::new(),
        };
        let loaded = load(elf, &mut mem, cmdline, memmap);
        let calls = std::mem::take(&mut mem.calls);
        match (&validated, &loaded) {
            (Err(v), Err(l)) => {
                assert_eq!(v, l, "load's error differs from validate's");
                assert!(calls.is_empty(), "load wrote after validate failed: {calls:?}");
            }
            (Err(v), Ok(b)) => panic!("validate failed ({v:?}) but load succeeded ({b:?})"),
            (Ok(_), Err(l)) => {
                assert!(
                    (cmdline_error(l) && !cmdline_ok) || (memmap_error(l) && !map_ok),
                    "validate succeeded, load failed with {l:?} (cmdline ok {cmdline_ok}, memmap ok {map_ok})"
                );
                assert!(calls.is_empty(), "load wrote before failing: {calls:?}");
            }
            (Ok(info), Ok(boot)) => {
                assert!(cmdline_ok && map_ok, "load accepted a bad cmdline or memmap");
                assert_eq!(boot.entry, info.entry);
                assert_eq!(boot.image_start, info.image_start);
                assert_eq!(boot.image_end, info.image_end);
                assert_eq!(u64::from(boot.start_info), START_INFO_GPA);
                for &(gpa, len) in &calls {
                    let end = gpa.checked_add(len).expect("write range wraps");
                    let in_boot = START_INFO_GPA <= gpa && end <= BOOT_DATA_END;
                    let in_image = boot.image_start <= gpa && end <= boot.image_end;
                    assert!(
                        in_boot || in_image,
                        "write {gpa:#x}+{len:#x} outside boot data and image {boot:?}"
                    );
                }
                let ram = mem.mem.as_slice();
                let si_at = START_INFO_GPA as usize;
                let si: [u8; START_INFO_SIZE] =
                    ram[si_at..si_at + START_INFO_SIZE].try_into().unwrap();
                let si = StartInfo::from_bytes(&si);
                assert_eq!(si.magic, HVM_START_MAGIC);
                assert_eq!(si.version, 1);
                assert_eq!(si.cmdline_paddr, CMDLINE_GPA);
                assert_eq!(si.memmap_entries as usize, memmap.len());
                assert_eq!(
                    si.memmap_paddr,
                    if memmap.is_empty() { 0 } else { MEMMAP_GPA }
                );
                for (i, e) in memmap.iter().enumerate() {
                    let at = MEMMAP_GPA as usize + i * MEMMAP_ENTRY_SIZE;
                    let b: [u8; MEMMAP_ENTRY_SIZE] =
                        ram[at..at + MEMMAP_ENTRY_SIZE].try_into().unwrap();
                    assert_eq!(MemMapEntry::from_bytes(&b).as_ref(), Some(e));
                }
                let c = CMDLINE_GPA as usize;
                assert_eq!(&ram[c..c + cmdline.len()], cmdline.as_bytes());
                assert_eq!(ram[c + cmdline.len()], 0);
            }
        }
        // Leave guest RAM zeroed for the next input.
        for (gpa, len) in calls {
            let (a, n) = (gpa as usize, len as usize);
            if let Some(r) = ram.get_mut(a..a.saturating_add(n)) {
                r.fill(0);
            }
        }
    });
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_last() else {
        return;
    };
    let (body, cmdline) = if n <= 250 {
        let k = rest.len().saturating_sub(usize::from(n));
        let tail = &rest[k..];
        let cmdline = match std::str::from_utf8(tail) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(tail).into_owned(),
        };
        (&rest[..k], cmdline)
    } else {
        let len = CMDLINE_MAX - 3 + usize::from(n - 251);
        (rest, "a".repeat(len))
    };

    let default_map = default_memmap(RAM as u64);
    if body.first() == Some(&0x7f) {
        check(body, &cmdline, &default_map);
    } else {
        let Ok(spec) = Spec::arbitrary_take_rest(Unstructured::new(body)) else {
            return;
        };
        let (elf, memmap) = build(&spec);
        check(&elf, &cmdline, memmap.as_deref().unwrap_or(&default_map));
    }
});
