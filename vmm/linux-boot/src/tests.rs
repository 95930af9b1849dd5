//! Unit tests: header checks (one test per error), placement, the zero page,
//! the long-mode tables, and the real Debian kernel when it is installed.

use crate::test_image::{debian_kernel, kernel_byte, Image, PAYLOAD_OFFSET};
use crate::*;

pub const MIB: u64 = 1 << 20;

/// `SliceMemory` that records every write and fill (gpa, len).
pub struct Recording<'a> {
    pub inner: SliceMemory<'a>,
    pub calls: Vec<(u64, u64)>,
}

impl<'a> Recording<'a> {
    pub fn new(ram: &'a mut [u8]) -> Self {
        Recording {
            inner: SliceMemory::new(ram),
            calls: Vec::new(),
        }
    }
}

impl GuestMemory for Recording<'_> {
    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), MemoryError> {
        self.calls.push((gpa, data.len() as u64));
        self.inner.write(gpa, data)
    }
    fn fill(&mut self, gpa: u64, len: u64, byte: u8) -> Result<(), MemoryError> {
        self.calls.push((gpa, len));
        self.inner.fill(gpa, len, byte)
    }
    fn size(&self) -> u64 {
        self.inner.size()
    }
}

pub fn rd16(m: &[u8], at: u64) -> u16 {
    let at = at as usize;
    u16::from_le_bytes(m[at..at + 2].try_into().unwrap())
}
pub fn rd32(m: &[u8], at: u64) -> u32 {
    let at = at as usize;
    u32::from_le_bytes(m[at..at + 4].try_into().unwrap())
}
pub fn rd64(m: &[u8], at: u64) -> u64 {
    let at = at as usize;
    u64::from_le_bytes(m[at..at + 8].try_into().unwrap())
}

/// Translates a linear address through the 4-level tables at `cr3` in `m`.
pub fn translate(m: &[u8], cr3: u64, va: u64) -> Option<u64> {
    let mut table = cr3 & !0xfff;
    for (level, shift) in [(4, 39), (3, 30), (2, 21), (1, 12)] {
        let e = rd64(m, table + ((va >> shift) & 0x1ff) * 8);
        if e & 1 == 0 {
            return None;
        }
        let addr = e & 0x000f_ffff_ffff_f000;
        if e & 0x80 != 0 && (level == 2 || level == 3) {
            let size = 1u64 << shift;
            return Some((addr & !(size - 1)) | (va & (size - 1)));
        }
        if level == 1 {
            return Some(addr | (va & 0xfff));
        }
        table = addr;
    }
    None
}

/// Every byte range a successful load may write.
pub fn allowed_regions(boot: &LinuxBoot) -> Vec<(u64, u64)> {
    vec![
        (GDT_GPA, GDT_GPA + 0x1000),
        (ZERO_PAGE_GPA, ZERO_PAGE_GPA + ZERO_PAGE_SIZE),
        (STACK_TOP - 0x1000, PAGE_TABLES_END),
        (CMDLINE_GPA, CMDLINE_GPA + CMDLINE_MAX as u64),
        (
            boot.kernel_start,
            boot.kernel_start + boot.info.kernel_len as u64,
        ),
        (boot.initrd_start, boot.initrd_start + boot.initrd_size),
    ]
}

pub fn assert_writes_allowed(calls: &[(u64, u64)], boot: &LinuxBoot, ram: u64) {
    let regions = allowed_regions(boot);
    for &(gpa, len) in calls {
        let end = gpa.checked_add(len).expect("write wraps");
        assert!(end <= ram, "write {gpa:#x}+{len:#x} beyond RAM {ram:#x}");
        assert!(
            regions.iter().any(|&(s, e)| s <= gpa && end <= e),
            "write {gpa:#x}+{len:#x} outside the documented regions {regions:x?}"
        );
    }
}

fn ram(size: u64) -> Vec<u8> {
    vec![0u8; size as usize]
}

fn cfg<'a>(map: &'a [MemMapEntry], initrd: Option<&'a [u8]>) -> BootConfig<'a> {
    BootConfig {
        cmdline: "console=ttyS0 root=/dev/ram0",
        initrd,
        memmap: map,
        acpi_rsdp: Some(0xE0000),
    }
}

fn load_image(
    img: &[u8],
    ram_size: u64,
    initrd: Option<&[u8]>,
) -> Result<(LinuxBoot, Vec<u8>), BootError> {
    let mut r = ram(ram_size);
    let map = pc_memmap(ram_size).unwrap();
    let mut mem = Recording::new(&mut r);
    let res = load(img, &mut mem, &cfg(&map, initrd));
    let calls = std::mem::take(&mut mem.calls);
    match res {
        Ok(boot) => {
            assert_writes_allowed(&calls, &boot, ram_size);
            Ok((boot, r))
        }
        Err(e) => {
            assert!(calls.is_empty(), "{e} after writes {calls:x?}");
            Err(e)
        }
    }
}

fn parse_err(img: &Image) -> BootError {
    parse(&img.build()).unwrap_err()
}

// ---------------------------------------------------------------------------
// Header checks: one per error.

#[test]
fn default_image_parses() {
    let info = parse(&Image::default().build()).unwrap();
    assert_eq!(info.protocol, 0x020f);
    assert_eq!(info.setup_sects, 4);
    assert_eq!(info.kernel_offset, 5 * 512);
    assert_eq!(info.kernel_len, 0x3000);
    assert_eq!(info.header_end, 0x26c);
    assert!(info.relocatable);
    assert_eq!(info.payload_format, PayloadFormat::Xz);
    assert!(info.can_be_loaded_above_4g());
}

#[test]
fn too_short() {
    let img = Image::default().build();
    for len in [0, 1, 0x1ff, 0x267] {
        assert_eq!(
            parse(&img[..len]),
            Err(BootError::TooShort { len, need: 0x268 })
        );
    }
}

#[test]
fn bad_boot_flag() {
    let mut img = Image::default().build();
    img[0x1fe] = 0;
    assert_eq!(parse(&img), Err(BootError::BadBootFlag(0xaa00)));
}

#[test]
fn bad_magic() {
    let mut img = Image::default().build();
    img[0x205] = b's';
    assert!(matches!(parse(&img), Err(BootError::BadHeaderMagic(_))));
}

#[test]
fn old_protocol() {
    let e = parse_err(&Image {
        version: 0x020b,
        ..Image::default()
    });
    assert_eq!(e, BootError::ProtocolTooOld(0x020b));
    assert!(e.to_string().contains("2.11"), "{e}");
}

#[test]
fn header_too_short() {
    let e = parse_err(&Image {
        jump_len: 0x65,
        ..Image::default()
    });
    assert_eq!(e, BootError::HeaderTooShort { header_end: 0x267 });
}

#[test]
fn setup_sects_zero_means_four() {
    let info = parse(
        &Image {
            setup_sects: 0,
            ..Image::default()
        }
        .build(),
    )
    .unwrap();
    assert_eq!(info.setup_sects, 4);
    assert_eq!(info.kernel_offset, 5 * 512);
}

#[test]
fn setup_truncated() {
    let mut img = Image::default().build();
    img[0x1f1] = 200; // 201 * 512 bytes of setup, more than the file
    let len = img.len();
    assert_eq!(
        parse(&img),
        Err(BootError::SetupTruncated {
            setup_len: 201 * 512,
            len
        })
    );
}

#[test]
fn not_loaded_high() {
    let e = parse_err(&Image {
        loadflags: 0x80,
        ..Image::default()
    });
    assert_eq!(e, BootError::NotLoadedHigh { loadflags: 0x80 });
}

#[test]
fn no_64bit_entry() {
    let e = parse_err(&Image {
        xloadflags: 0x7e,
        ..Image::default()
    });
    assert_eq!(e, BootError::No64BitEntry { xloadflags: 0x7e });
}

#[test]
fn empty_kernel() {
    let e = parse_err(&Image {
        syssize: Some(0),
        ..Image::default()
    });
    assert_eq!(e, BootError::EmptyKernel);
}

#[test]
fn kernel_truncated() {
    let img = Image::default().build();
    let cut = &img[..img.len() - 16];
    assert_eq!(
        parse(cut),
        Err(BootError::KernelTruncated {
            syssize_bytes: 0x3000,
            available: 0x3000 - 16
        })
    );
}

#[test]
fn kernel_too_small_for_entry() {
    let e = parse_err(&Image {
        kernel_len: 0x200,
        ..Image::default()
    });
    assert_eq!(e, BootError::KernelTooSmallForEntry { kernel_len: 0x200 });
}

#[test]
fn init_size_smaller_than_kernel() {
    let e = parse_err(&Image {
        init_size: 0x2fff,
        ..Image::default()
    });
    assert_eq!(
        e,
        BootError::KernelLargerThanInitSize {
            kernel_len: 0x3000,
            init_size: 0x2fff
        }
    );
}

#[test]
fn bad_alignment() {
    let e = parse_err(&Image {
        kernel_alignment: 0x30_0000,
        ..Image::default()
    });
    assert_eq!(e, BootError::BadKernelAlignment(0x30_0000));
    // Zero is not a power of two either.
    let e = parse_err(&Image {
        kernel_alignment: 0,
        ..Image::default()
    });
    assert_eq!(e, BootError::BadKernelAlignment(0));
    // A non-relocatable kernel's alignment is irrelevant.
    assert!(parse(
        &Image {
            kernel_alignment: 0,
            relocatable: false,
            ..Image::default()
        }
        .build()
    )
    .is_ok());
}

#[test]
fn every_error_message_is_specific() {
    let errors = [
        BootError::TooShort {
            len: 3,
            need: 0x268,
        },
        BootError::BadBootFlag(0),
        BootError::BadHeaderMagic(0),
        BootError::ProtocolTooOld(0x0200),
        BootError::HeaderTooShort { header_end: 0x202 },
        BootError::SetupTruncated {
            setup_len: 2560,
            len: 700,
        },
        BootError::NotLoadedHigh { loadflags: 0 },
        BootError::No64BitEntry { xloadflags: 0 },
        BootError::EmptyKernel,
        BootError::KernelTruncated {
            syssize_bytes: 32,
            available: 16,
        },
        BootError::KernelTooSmallForEntry { kernel_len: 4 },
        BootError::KernelLargerThanInitSize {
            kernel_len: 9,
            init_size: 8,
        },
        BootError::BadKernelAlignment(3),
        BootError::RamTooSmall { ram: 0, need: MIB },
        BootError::CmdlineContainsNul { at: 2 },
        BootError::CmdlineTooLong {
            len: 5000,
            max: 2047,
        },
        BootError::TooManyMemmapEntries(129),
        BootError::BadMemmapEntry {
            index: 0,
            addr: 0,
            size: 0,
        },
        BootError::MemmapRamOutsideGuest {
            index: 0,
            addr: 0,
            size: 1,
            ram: 0,
        },
        BootError::MemmapOverlap {
            first: 0,
            second: 1,
        },
        BootError::KernelDoesNotFit {
            init_size: 1,
            pref_address: 0,
            relocatable: true,
        },
        BootError::KernelDoesNotFit {
            init_size: 1,
            pref_address: 0,
            relocatable: false,
        },
        BootError::InitrdDoesNotFit {
            size: 1,
            max_addr: 0,
        },
        BootError::RsdpOutsideRam(1),
        BootError::Memory(MemoryError { gpa: 0, len: 1 }),
    ];
    let mut seen = std::collections::HashSet::new();
    for e in errors {
        let s = e.to_string();
        assert!(s.len() > 20, "{e:?}: {s}");
        assert!(seen.insert(s.clone()), "duplicate message {s}");
    }
}

// ---------------------------------------------------------------------------
// Loading.

#[test]
fn loads_default_image() {
    let img = Image::default().build();
    let initrd: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    let ram_size = 64 * MIB;
    let (boot, m) = load_image(&img, ram_size, Some(&initrd)).unwrap();

    // Kernel at pref_address, entry 0x200 in.
    assert_eq!(boot.kernel_start, 16 * MIB);
    assert_eq!(boot.entry_64, 16 * MIB + 0x200);
    assert_eq!(boot.kernel_end, 16 * MIB + 0x10_0000);
    assert_eq!(boot.boot_params_gpa, ZERO_PAGE_GPA);
    let k = boot.kernel_start as usize;
    for i in [0usize, 1, 0x1ff, 0x200, 0x2fff] {
        assert_eq!(m[k + i], img[5 * 512 + i]);
        if i < PAYLOAD_OFFSET {
            assert_eq!(m[k + i], kernel_byte(i));
        }
    }

    // Initrd: page aligned, as high as RAM allows.
    assert_eq!(boot.initrd_size, 10_000);
    assert_eq!(boot.initrd_start, (ram_size - 10_000) & !0xfff);
    let i = boot.initrd_start as usize;
    assert_eq!(&m[i..i + initrd.len()], &initrd[..]);

    // The zero page.
    let zp = ZERO_PAGE_GPA;
    assert_eq!(rd16(&m, zp + 0x1fe), 0xaa55);
    assert_eq!(rd32(&m, zp + 0x202), HDRS_MAGIC);
    assert_eq!(m[(zp + 0x210) as usize], 0xff, "type_of_loader");
    assert_eq!(m[(zp + 0x211) as usize], LOADED_HIGH, "loadflags");
    assert_eq!(rd32(&m, zp + 0x214), 16 << 20, "code32_start");
    assert_eq!(rd32(&m, zp + 0x218), boot.initrd_start as u32);
    assert_eq!(rd32(&m, zp + 0x21c), 10_000);
    assert_eq!(rd32(&m, zp + 0x228), CMDLINE_GPA as u32);
    assert_eq!(rd32(&m, zp + 0x230), 0x20_0000, "kernel_alignment");
    assert_eq!(
        rd32(&m, zp + 0x268),
        0x1234_5678,
        "header copied to its end"
    );
    assert_eq!(
        m[(zp + 0x26c) as usize],
        0,
        "nothing copied past the header"
    );
    assert_eq!(rd64(&m, zp + 0x70), 0xE0000, "acpi_rsdp_addr");
    assert_eq!(rd32(&m, zp + 0xc0), 0);
    assert_eq!(rd32(&m, zp + 0xc8), 0);
    assert_eq!(m[(zp + 0x1ef) as usize], 0, "sentinel");
    // e820.
    assert_eq!(m[(zp + 0x1e8) as usize], 3);
    let map = pc_memmap(ram_size).unwrap();
    for (n, e) in map.iter().enumerate() {
        let at = zp + 0x2d0 + 20 * n as u64;
        assert_eq!(rd64(&m, at), e.addr);
        assert_eq!(rd64(&m, at + 8), e.size);
        assert_eq!(rd32(&m, at + 16), e.kind.value());
    }
    // Command line, NUL-terminated.
    let c = CMDLINE_GPA as usize;
    let line = b"console=ttyS0 root=/dev/ram0";
    assert_eq!(&m[c..c + line.len()], line);
    assert_eq!(m[c + line.len()], 0);

    // CPU state.
    assert_eq!(boot.cpu.rip, boot.entry_64);
    assert_eq!(boot.cpu.rsi, ZERO_PAGE_GPA);
    assert_eq!(boot.cpu.cr3, PML4_GPA);
    assert_eq!(boot.cpu.cs.selector, 0x10);
    assert_eq!(boot.cpu.ds.selector, 0x18);
    assert_eq!(boot.cpu.gdt.base, GDT_GPA);
    assert_eq!(boot.cpu.gdt.limit, 47);
    assert_eq!(boot.cpu.rflags & 0x200, 0, "interrupts off");
}

#[test]
fn identity_map_covers_everything_loaded() {
    let img = Image::default().build();
    let initrd = vec![1u8; 5000];
    let (boot, m) = load_image(&img, 64 * MIB, Some(&initrd)).unwrap();
    let cr3 = boot.cpu.cr3;
    for va in [
        0u64,
        ZERO_PAGE_GPA,
        CMDLINE_GPA,
        GDT_GPA,
        boot.kernel_start,
        boot.entry_64,
        boot.kernel_end - 1,
        boot.initrd_start,
        boot.initrd_start + boot.initrd_size - 1,
        0xFEE0_0000,
        (1 << 32) - 1,
    ] {
        assert_eq!(translate(&m, cr3, va), Some(va), "{va:#x}");
    }
    assert_eq!(translate(&m, cr3, 1 << 32), None);
    // Every 2 MiB page is writable and present.
    for pd in 0..4u64 {
        for i in 0..512u64 {
            let e = rd64(&m, PD_GPA + pd * 0x1000 + i * 8);
            assert_eq!(e, ((pd * 512 + i) << 21) | 0x83);
        }
    }
}

#[test]
fn gdt_has_flat_boot_segments() {
    let img = Image::default().build();
    let (_, m) = load_image(&img, 64 * MIB, None).unwrap();
    let g = GDT_GPA;
    assert_eq!(rd64(&m, g), 0);
    assert_eq!(rd64(&m, g + 8), 0);
    let decode = |d: u64| {
        let limit = (d & 0xffff) | ((d >> 32) & 0xf_0000);
        let base = ((d >> 16) & 0xff_ffff) | ((d >> 32) & 0xff00_0000);
        let access = (d >> 40) & 0xff;
        let flags = (d >> 52) & 0xf;
        (base, limit, access, flags)
    };
    // __BOOT_CS: present, code, execute/read, L=1, G=1.
    let (base, limit, access, flags) = decode(rd64(&m, g + 0x10));
    assert_eq!((base, limit), (0, 0xfffff));
    assert_eq!(access & 0x9a, 0x9a);
    assert_eq!(flags & 0xa, 0xa);
    // __BOOT_DS: present, data, read/write, G=1.
    let (base, limit, access, flags) = decode(rd64(&m, g + 0x18));
    assert_eq!((base, limit), (0, 0xfffff));
    assert_eq!(access & 0x92, 0x92);
    assert_eq!(access & 0x08, 0, "data, not code");
    assert_eq!(flags & 0x8, 0x8);
    // TSS descriptor at 0x20: base TSS_GPA, limit 0x67, type 0xB.
    let (base, limit, access, _) = decode(rd64(&m, g + 0x20));
    assert_eq!(base | (rd64(&m, g + 0x28) << 32), TSS_GPA);
    assert_eq!(limit, 0x67);
    assert_eq!(access, 0x8b);
    // The state agrees with the descriptors.
    let s = long_mode_state(0x1000200, ZERO_PAGE_GPA);
    assert_eq!(s.cs.access_rights & 0xff, 0x9b);
    assert_eq!(s.ds.access_rights & 0xff, 0x93);
    assert_eq!(s.efer, 0x500);
    assert_eq!(s.cr0 & 0x8000_0001, 0x8000_0001);
    assert_eq!(s.cr4 & 0x20, 0x20);
}

#[test]
fn kernel_relocates_when_pref_does_not_fit() {
    // 8 MiB of RAM: 16 MiB is out; the lowest 2 MiB-aligned spot is 2 MiB.
    let img = Image::default().build();
    let (boot, _) = load_image(&img, 8 * MIB, None).unwrap();
    assert_eq!(boot.kernel_start, 2 * MIB);
    // Non-relocatable: no.
    let img = Image {
        relocatable: false,
        ..Image::default()
    }
    .build();
    assert_eq!(
        load_image(&img, 8 * MIB, None).err(),
        Some(BootError::KernelDoesNotFit {
            init_size: 0x10_0000,
            pref_address: 16 * MIB,
            relocatable: false
        })
    );
    // Non-relocatable with room: at pref_address exactly, even if unaligned.
    let img = Image {
        relocatable: false,
        pref_address: 0x123_4000,
        ..Image::default()
    }
    .build();
    let (boot, _) = load_image(&img, 64 * MIB, None).unwrap();
    assert_eq!(boot.kernel_start, 0x123_4000);
}

#[test]
fn unaligned_pref_address_is_aligned_up() {
    let img = Image {
        pref_address: 0x100_1000,
        ..Image::default()
    }
    .build();
    let (boot, _) = load_image(&img, 64 * MIB, None).unwrap();
    assert_eq!(boot.kernel_start, 0x120_0000);
}

#[test]
fn falls_back_to_min_alignment() {
    // RAM from 1 MiB to 2.5 MiB only: no 2 MiB-aligned 1 MiB slot; 1 MiB
    // alignment (min_alignment 20) works.
    let img = Image {
        min_alignment: 20,
        ..Image::default()
    }
    .build();
    let map = [MemMapEntry {
        addr: MIB,
        size: 3 * MIB / 2,
        kind: MemoryType::Ram,
    }];
    let mut r = ram(4 * MIB);
    let mut mem = SliceMemory::new(&mut r);
    let boot = load(&img, &mut mem, &cfg(&map, None)).unwrap();
    assert_eq!(boot.kernel_start, MIB);
    assert_eq!(rd32(&r, ZERO_PAGE_GPA + 0x230), MIB as u32);
    // With min_alignment = kernel_alignment there is no fallback.
    let img = Image {
        min_alignment: 21,
        ..Image::default()
    }
    .build();
    let mut r = ram(4 * MIB);
    let mut mem = SliceMemory::new(&mut r);
    assert!(matches!(
        load(&img, &mut mem, &cfg(&map, None)),
        Err(BootError::KernelDoesNotFit { .. })
    ));
}

#[test]
fn kernel_skips_non_ram_ranges() {
    // RAM at 1–3 MiB is too small; reserved 3–4 MiB; RAM 4–32 MiB.
    let map = [
        MemMapEntry {
            addr: 0,
            size: 0xA0000,
            kind: MemoryType::Ram,
        },
        MemMapEntry {
            addr: MIB,
            size: 2 * MIB,
            kind: MemoryType::Ram,
        },
        MemMapEntry {
            addr: 3 * MIB,
            size: MIB,
            kind: MemoryType::Reserved,
        },
        MemMapEntry {
            addr: 4 * MIB,
            size: 28 * MIB,
            kind: MemoryType::Ram,
        },
    ];
    let img = Image {
        init_size: 3 * MIB as u32,
        pref_address: 0,
        ..Image::default()
    }
    .build();
    let mut r = ram(32 * MIB);
    let mut mem = SliceMemory::new(&mut r);
    let boot = load(&img, &mut mem, &cfg(&map, None)).unwrap();
    assert_eq!(boot.kernel_start, 4 * MIB);
}

#[test]
fn initrd_respects_initrd_addr_max_and_kernel() {
    let initrd = vec![7u8; 3 * MIB as usize];
    // initrd_addr_max 20 MiB - 1: the initrd ends at or below 20 MiB, and
    // must not overlap the kernel at 16..17 MiB.
    let img = Image {
        initrd_addr_max: (20 * MIB - 1) as u32,
        ..Image::default()
    }
    .build();
    let (boot, _) = load_image(&img, 64 * MIB, Some(&initrd)).unwrap();
    assert_eq!(boot.initrd_start, 17 * MIB);
    assert!(boot.initrd_start + boot.initrd_size <= 20 * MIB);
    // With the limit at 18 MiB it cannot go above the kernel; it goes below.
    let img = Image {
        initrd_addr_max: (18 * MIB - 1) as u32,
        ..Image::default()
    }
    .build();
    let (boot, _) = load_image(&img, 64 * MIB, Some(&initrd)).unwrap();
    assert_eq!(boot.initrd_start, 13 * MIB);
    // Too big for anywhere below the limit ([1 MiB, 3.5 MiB) holds 2.5 MiB).
    let img = Image {
        initrd_addr_max: (7 * MIB / 2 - 1) as u32,
        ..Image::default()
    }
    .build();
    assert_eq!(
        load_image(&img, 64 * MIB, Some(&initrd)).err(),
        Some(BootError::InitrdDoesNotFit {
            size: 3 * MIB,
            max_addr: 7 * MIB / 2 - 1
        })
    );
}

#[test]
fn empty_initrd_is_none() {
    let img = Image::default().build();
    let (boot, m) = load_image(&img, 64 * MIB, Some(&[])).unwrap();
    assert_eq!((boot.initrd_start, boot.initrd_size), (0, 0));
    assert_eq!(rd32(&m, ZERO_PAGE_GPA + 0x218), 0);
}

#[test]
fn config_errors_write_nothing() {
    let img = Image::default().build();
    let ram_size = 64 * MIB;
    let good = pc_memmap(ram_size).unwrap();
    let long = "x".repeat(0x800);
    let overlapping = [
        MemMapEntry {
            addr: 0,
            size: 2 * MIB,
            kind: MemoryType::Ram,
        },
        MemMapEntry {
            addr: MIB,
            size: MIB,
            kind: MemoryType::Reserved,
        },
    ];
    let too_many = vec![good[0]; 129];
    let outside = [MemMapEntry {
        addr: MIB,
        size: 64 * MIB,
        kind: MemoryType::Ram,
    }];
    let wraps = [MemMapEntry {
        addr: u64::MAX,
        size: 2,
        kind: MemoryType::Reserved,
    }];
    let empty = [MemMapEntry {
        addr: 0,
        size: 0,
        kind: MemoryType::Reserved,
    }];
    let cases: Vec<(BootConfig, BootError)> = vec![
        (
            BootConfig {
                cmdline: "a\0b",
                ..cfg(&good, None)
            },
            BootError::CmdlineContainsNul { at: 1 },
        ),
        (
            BootConfig {
                cmdline: &long,
                ..cfg(&good, None)
            },
            BootError::CmdlineTooLong {
                len: 0x800,
                max: 0x7ff,
            },
        ),
        (
            cfg(&overlapping, None),
            BootError::MemmapOverlap {
                first: 0,
                second: 1,
            },
        ),
        (cfg(&too_many, None), BootError::TooManyMemmapEntries(129)),
        (
            cfg(&outside, None),
            BootError::MemmapRamOutsideGuest {
                index: 0,
                addr: MIB,
                size: 64 * MIB,
                ram: ram_size,
            },
        ),
        (
            cfg(&wraps, None),
            BootError::BadMemmapEntry {
                index: 0,
                addr: u64::MAX,
                size: 2,
            },
        ),
        (
            cfg(&empty, None),
            BootError::BadMemmapEntry {
                index: 0,
                addr: 0,
                size: 0,
            },
        ),
        (
            BootConfig {
                acpi_rsdp: Some(ram_size),
                ..cfg(&good, None)
            },
            BootError::RsdpOutsideRam(ram_size),
        ),
        (
            cfg(&[], None),
            BootError::KernelDoesNotFit {
                init_size: 0x10_0000,
                pref_address: 16 * MIB,
                relocatable: true,
            },
        ),
    ];
    for (c, want) in cases {
        let mut r = ram(ram_size);
        let mut mem = Recording::new(&mut r);
        assert_eq!(load(&img, &mut mem, &c), Err(want));
        assert!(mem.calls.is_empty());
        assert!(r.iter().all(|&b| b == 0));
    }
    // A tiny guest.
    let mut r = ram(MIB - 1);
    let mut mem = Recording::new(&mut r);
    assert_eq!(
        load(&img, &mut mem, &cfg(&good, None)),
        Err(BootError::RamTooSmall {
            ram: MIB - 1,
            need: MIB
        })
    );
}

#[test]
fn cmdline_limit_is_the_smaller_of_kernel_and_loader() {
    let img = Image {
        cmdline_size: 100_000,
        ..Image::default()
    }
    .build();
    let long = "y".repeat(CMDLINE_MAX);
    let map = pc_memmap(64 * MIB).unwrap();
    let mut r = ram(64 * MIB);
    let mut mem = SliceMemory::new(&mut r);
    let c = BootConfig {
        cmdline: &long,
        ..cfg(&map, None)
    };
    assert_eq!(
        load(&img, &mut mem, &c),
        Err(BootError::CmdlineTooLong {
            len: CMDLINE_MAX,
            max: CMDLINE_MAX - 1
        })
    );
    let ok = &long[..CMDLINE_MAX - 1];
    let c = BootConfig {
        cmdline: ok,
        ..cfg(&map, None)
    };
    load(&img, &mut mem, &c).unwrap();
    assert_eq!(r[CMDLINE_GPA as usize + CMDLINE_MAX - 1], 0);
}

#[test]
fn pc_memmap_shape() {
    let m = pc_memmap(128 * MIB).unwrap();
    assert_eq!(
        m[0],
        MemMapEntry {
            addr: 0,
            size: 0xA0000,
            kind: MemoryType::Ram
        }
    );
    assert_eq!(
        m[1],
        MemMapEntry {
            addr: 0xE0000,
            size: 0x20000,
            kind: MemoryType::Reserved
        }
    );
    assert_eq!(
        m[2],
        MemMapEntry {
            addr: MIB,
            size: 127 * MIB,
            kind: MemoryType::Ram
        }
    );
    assert!(pc_memmap(MIB).is_err());
}

#[test]
fn payload_formats() {
    for (magic, want) in [
        (&b"\x1f\x8b\x08"[..], PayloadFormat::Gzip),
        (&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00][..], PayloadFormat::Xz),
        (&[0x28, 0xb5, 0x2f, 0xfd][..], PayloadFormat::Zstd),
        (&[0x02, 0x21, 0x4c, 0x18][..], PayloadFormat::Lz4),
        (&[0x89, 0x4c, 0x5a, 0x4f][..], PayloadFormat::Lzo),
        (&b"BZh9"[..], PayloadFormat::Bzip2),
        (&[0x5d, 0, 0, 0x80][..], PayloadFormat::Lzma),
        (&b"\x7fELF\x02"[..], PayloadFormat::Elf),
        (&b"junk"[..], PayloadFormat::Unknown),
    ] {
        let img = Image {
            payload: magic.to_vec(),
            ..Image::default()
        }
        .build();
        assert_eq!(parse(&img).unwrap().payload_format, want);
        let elf = uncompressed_vmlinux(&img);
        assert_eq!(elf.is_some(), want == PayloadFormat::Elf);
        if let Some(elf) = elf {
            assert_eq!(elf, magic);
        }
    }
    // A payload pointing outside the kernel is Unknown.
    let mut img = Image::default().build();
    img[0x248..0x24c].copy_from_slice(&0xffff_0000u32.to_le_bytes());
    assert_eq!(parse(&img).unwrap().payload_format, PayloadFormat::Unknown);
}

// ---------------------------------------------------------------------------
// The real Debian kernel.

#[test]
fn debian_kernel_loads() {
    let Some((path, img)) = debian_kernel() else {
        eprintln!(
            "SKIPPED debian_kernel_loads: no /boot/vmlinuz-* (apt-get install linux-image-amd64)"
        );
        return;
    };
    let info = parse(&img).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    eprintln!("{}: {info:x?}", path.display());
    assert!(info.protocol >= 0x020f, "Debian 6.1 speaks protocol 2.15");
    assert!(info.relocatable);
    assert_eq!(info.xloadflags & XLF_KERNEL_64, XLF_KERNEL_64);
    assert!(info.kernel_alignment.is_power_of_two());
    assert!(info.init_size as usize > info.kernel_len);
    assert!(info.syssize_bytes as usize <= info.kernel_len);
    assert_eq!(
        info.payload_format,
        PayloadFormat::Xz,
        "Debian compresses with xz"
    );
    assert_eq!(uncompressed_vmlinux(&img), None);
    assert!(info.cmdline_size >= 2047);

    let ram_size = 256 * MIB;
    let initrd: Vec<u8> = (0..3_000_000u32).map(|i| (i >> 3) as u8).collect();
    let (boot, m) = load_image(&img, ram_size, Some(&initrd)).unwrap();
    assert_eq!(
        boot.kernel_start, info.pref_address,
        "Debian's pref_address fits"
    );
    assert_eq!(boot.entry_64, info.pref_address + 0x200);
    let k = boot.kernel_start as usize;
    assert_eq!(&m[k..k + info.kernel_len], &img[info.kernel_offset..]);
    assert!(boot.initrd_start >= boot.kernel_end);
    assert!(boot.initrd_start + boot.initrd_size <= ram_size);
    let i = boot.initrd_start as usize;
    assert_eq!(&m[i..i + initrd.len()], &initrd[..]);
    // The header was copied except for the fields the loader writes.
    let zp = ZERO_PAGE_GPA as usize;
    let written = [0x210..0x212, 0x214..0x21c + 4, 0x226..0x22c, 0x230..0x234];
    for off in 0x1f1..info.header_end {
        if !written.iter().any(|r| r.contains(&off)) {
            assert_eq!(m[zp + off], img[off], "header byte {off:#x}");
        }
    }
    assert_eq!(m[zp + 0x210], 0xff);
    assert_eq!(m[zp + 0x211], LOADED_HIGH);
    let cr3 = boot.cpu.cr3;
    for va in [
        boot.entry_64,
        boot.kernel_end - 1,
        boot.initrd_start,
        ZERO_PAGE_GPA,
    ] {
        assert_eq!(translate(&m, cr3, va), Some(va));
    }
    // The 64-bit entry of a Linux bzImage: startup_64 starts with `cld; cli`.
    assert_eq!(
        &m[k + 0x200..k + 0x202],
        &[0xfc, 0xfa],
        "startup_64 prologue"
    );
}

#[test]
fn debian_kernel_needs_room() {
    let Some((_, img)) = debian_kernel() else {
        eprintln!("SKIPPED debian_kernel_needs_room: no /boot/vmlinuz-*");
        return;
    };
    let info = parse(&img).unwrap();
    // Just under what init_size needs above 2 MiB (the first aligned slot).
    let need = 2 * MIB + u64::from(info.init_size);
    let mut r = ram(need - 0x1000);
    let map = pc_memmap(need - 0x1000).unwrap();
    let mut mem = Recording::new(&mut r);
    let e = load(&img, &mut mem, &cfg(&map, None)).unwrap_err();
    assert!(matches!(e, BootError::KernelDoesNotFit { .. }), "{e}");
    assert!(mem.calls.is_empty());
    eprintln!("debian_kernel_needs_room: {e}");
}
