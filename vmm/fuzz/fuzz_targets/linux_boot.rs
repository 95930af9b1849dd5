//! Fuzzes the bzImage loader: `linux_boot::parse`, `plan` and `load`.
//!
//! Input layout:
//! * starting with `MZ` (as every x86 bzImage does): the whole input is the
//!   kernel image, loaded with a fixed configuration (96 MiB, PC memory map,
//!   a small initrd, a short command line). A real bzImage is a good seed
//!   with `-max_len` raised to its size.
//! * anything else is decoded (with `arbitrary`) into a configuration (RAM
//!   size, command line, initrd size, memory map, RSDP) and either a
//!   description of a bzImage — every setup header field, plus byte patches —
//!   or raw image bytes. The description reaches the checks behind the
//!   magic numbers far more often than random bytes do.
//!
//! Invariants:
//! * `load` returns exactly `plan`'s error when `plan` fails, and then never
//!   calls the guest-memory interface.
//! * On success: every write lies inside guest RAM and inside the documented
//!   regions (GDT page, zero page, stack and page tables, command line, the
//!   kernel's bytes, the initrd); the kernel and initrd lie in one RAM entry
//!   of the memory map each, at or above 1 MiB, below 4 GiB, not overlapping;
//!   the initrd ends at or below `initrd_addr_max + 1`; the entry point is
//!   the load address + 0x200; the zero page, command line and kernel bytes
//!   read back as written; the page tables identity-map the entry point.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use linux_boot::{
    load, parse, pc_memmap, plan, BootConfig, BootError, GuestMemory, LinuxBoot, MemMapEntry,
    MemoryError, MemoryType, SliceMemory, CMDLINE_GPA, CMDLINE_MAX, GDT_GPA, IDENTITY_MAP_END,
    KERNEL_MIN_GPA, PAGE_TABLES_END, STACK_TOP, ZERO_PAGE_GPA, ZERO_PAGE_SIZE,
};
use std::cell::RefCell;

/// Guest RAM for raw images (room for Debian's 64 MiB `init_size` at 16 MiB).
const MAX_RAM: usize = 96 << 20;
/// Largest guest RAM of a structured input.
const MAX_STRUCTURED_RAM: usize = 32 << 20;

thread_local! {
    static GUEST_RAM: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_RAM]);
}

/// `SliceMemory` plus a record of every call (gpa, len).
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
// Structured inputs.

#[derive(Arbitrary, Debug)]
struct Spec {
    cfg: CfgSpec,
    image: ImageKind,
}

#[derive(Arbitrary, Debug)]
enum ImageKind {
    Described(ImageSpec),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct CfgSpec {
    /// RAM = (1 + ram_mib % 32) MiB, plus `ram_extra` pages.
    ram_mib: u8,
    ram_extra: u8,
    cmdline: CmdlineSpec,
    /// Initrd size: `initrd_kib` KiB plus `initrd_bytes`.
    initrd_kib: Option<(u16, u16)>,
    memmap: Option<Vec<MapSpec>>,
    acpi_rsdp: Option<u64>,
}

#[derive(Arbitrary, Debug)]
enum CmdlineSpec {
    Text(String),
    /// `n` bytes of 'x', to probe the length limits.
    Long(u16),
}

#[derive(Arbitrary, Debug)]
struct MapSpec {
    /// Address in 64 KiB units (or raw when `raw`).
    addr: u32,
    size: u32,
    raw: Option<(u64, u64)>,
    kind: u8,
}

#[derive(Arbitrary, Debug)]
struct ImageSpec {
    setup_sects: u8,
    /// Protocol 2.(minor % 32), or raw.
    version: Result<u8, u16>,
    jump_len: u8,
    loadflags: u8,
    xloadflags: u16,
    /// Protected-mode kernel length: 0x100 + kernel_len % 0x4000.
    kernel_len: u16,
    /// `None`: derived from the kernel length.
    syssize: Option<u32>,
    /// init_size: small (KiB units) or raw.
    init_size: Result<u16, u32>,
    kernel_alignment: Result<u8, u32>,
    relocatable: bool,
    min_alignment: u8,
    pref_address: Result<u16, u64>,
    cmdline_size: u32,
    initrd_addr_max: Result<u16, u32>,
    payload_offset: u32,
    payload_length: u32,
    payload_magic: u8,
    /// Truncate the file by this many bytes.
    truncate: u16,
    patches: Vec<(u16, u8)>,
}

fn build(s: &ImageSpec) -> Vec<u8> {
    let sects = if s.setup_sects == 0 { 4 } else { s.setup_sects };
    let setup_len = (usize::from(sects % 16) + 1) * 512;
    let kernel_len = 0x100 + usize::from(s.kernel_len % 0x4000);
    let mut v = vec![0u8; setup_len.max(0x300) + kernel_len];
    v[0] = b'M';
    v[1] = b'Z';
    v[0x1f1] = if s.setup_sects == 0 { 0 } else { sects % 16 };
    let syssize = s.syssize.unwrap_or((kernel_len / 16) as u32);
    v[0x1f4..0x1f8].copy_from_slice(&syssize.to_le_bytes());
    v[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
    v[0x200] = 0xeb;
    v[0x201] = s.jump_len;
    v[0x202..0x206].copy_from_slice(b"HdrS");
    let version = match s.version {
        Ok(minor) => 0x0200 | u16::from(minor % 32),
        Err(raw) => raw,
    };
    v[0x206..0x208].copy_from_slice(&version.to_le_bytes());
    v[0x211] = s.loadflags;
    let iam = match s.initrd_addr_max {
        Ok(mib) => (u32::from(mib % 64) << 20).wrapping_sub(1),
        Err(raw) => raw,
    };
    v[0x22c..0x230].copy_from_slice(&iam.to_le_bytes());
    let align = match s.kernel_alignment {
        Ok(log) => 1u32 << (log % 32),
        Err(raw) => raw,
    };
    v[0x230..0x234].copy_from_slice(&align.to_le_bytes());
    v[0x234] = u8::from(s.relocatable);
    v[0x235] = s.min_alignment;
    v[0x236..0x238].copy_from_slice(&s.xloadflags.to_le_bytes());
    v[0x238..0x23c].copy_from_slice(&s.cmdline_size.to_le_bytes());
    v[0x248..0x24c].copy_from_slice(&s.payload_offset.to_le_bytes());
    v[0x24c..0x250].copy_from_slice(&s.payload_length.to_le_bytes());
    let pref = match s.pref_address {
        Ok(units) => u64::from(units) << 16,
        Err(raw) => raw,
    };
    v[0x258..0x260].copy_from_slice(&pref.to_le_bytes());
    let init = match s.init_size {
        Ok(kib) => u32::from(kib) << 10,
        Err(raw) => raw,
    };
    v[0x260..0x264].copy_from_slice(&init.to_le_bytes());
    let k = setup_len;
    if k < v.len() {
        for (i, b) in v[k..].iter_mut().enumerate() {
            *b = (i * 7) as u8;
        }
        let magic: &[u8] = match s.payload_magic % 4 {
            0 => b"\x7fELF",
            1 => &[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00],
            2 => &[0x1f, 0x8b],
            _ => b"",
        };
        let at = k + (s.payload_offset as usize % kernel_len);
        for (j, &m) in magic.iter().enumerate() {
            if let Some(b) = v.get_mut(at + j) {
                *b = m;
            }
        }
    }
    for &(at, byte) in s.patches.iter().take(8) {
        let at = usize::from(at) % v.len();
        v[at] = byte;
    }
    let cut = usize::from(s.truncate) % (v.len() + 1);
    if s.truncate % 4 == 0 {
        v.truncate(v.len() - cut);
    }
    v
}

fn memmap(specs: &[MapSpec]) -> Vec<MemMapEntry> {
    specs
        .iter()
        .take(130)
        .map(|m| {
            let (addr, size) = m.raw.unwrap_or((
                u64::from(m.addr % 1024) << 16,
                u64::from(m.size % 1024) << 16,
            ));
            MemMapEntry {
                addr,
                size,
                kind: MemoryType::from_value(u32::from(m.kind % 5) + 1).unwrap(),
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------

fn in_ram_entry(map: &[MemMapEntry], start: u64, end: u64) -> bool {
    map.iter().any(|e| {
        e.kind == MemoryType::Ram
            && e.addr <= start
            && e.addr.checked_add(e.size).is_some_and(|x| end <= x)
    })
}

fn rd64(m: &[u8], at: u64) -> u64 {
    let at = at as usize;
    u64::from_le_bytes(m[at..at + 8].try_into().unwrap())
}

/// Walks the 4-level tables at `cr3`.
fn translate(m: &[u8], cr3: u64, va: u64) -> Option<u64> {
    let mut table = cr3 & !0xfff;
    for (level, shift) in [(4, 39), (3, 30), (2, 21), (1, 12)] {
        let e = rd64(m, table + ((va >> shift) & 0x1ff) * 8);
        if e & 1 == 0 {
            return None;
        }
        let addr = e & 0x000f_ffff_ffff_f000;
        if e & 0x80 != 0 && level != 4 && level != 1 {
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

fn check_success(
    image: &[u8],
    cfg: &BootConfig,
    boot: &LinuxBoot,
    calls: &[(u64, u64)],
    ram: &[u8],
) {
    let ram_size = ram.len() as u64;
    let info = boot.info;
    assert_eq!(parse(image), Ok(info));
    assert_eq!(boot.entry_64, boot.kernel_start + 0x200);
    assert_eq!(
        boot.kernel_end,
        boot.kernel_start + u64::from(info.init_size)
    );
    assert!(boot.kernel_start >= KERNEL_MIN_GPA && boot.kernel_end <= IDENTITY_MAP_END);
    assert!(
        in_ram_entry(cfg.memmap, boot.kernel_start, boot.kernel_end),
        "{boot:x?}"
    );
    if boot.initrd_size != 0 {
        let (s, e) = (boot.initrd_start, boot.initrd_start + boot.initrd_size);
        assert!(s >= KERNEL_MIN_GPA && s % 0x1000 == 0, "{boot:x?}");
        assert!(e <= u64::from(info.initrd_addr_max) + 1, "{boot:x?}");
        assert!(in_ram_entry(cfg.memmap, s, e), "{boot:x?}");
        assert!(
            e <= boot.kernel_start || s >= boot.kernel_end,
            "initrd overlaps kernel {boot:x?}"
        );
    }
    let kernel_end_bytes = boot.kernel_start + info.kernel_len as u64;
    let regions = [
        (GDT_GPA, GDT_GPA + 0x1000),
        (ZERO_PAGE_GPA, ZERO_PAGE_GPA + ZERO_PAGE_SIZE),
        (STACK_TOP - 0x1000, PAGE_TABLES_END),
        (CMDLINE_GPA, CMDLINE_GPA + CMDLINE_MAX as u64),
        (boot.kernel_start, kernel_end_bytes),
        (boot.initrd_start, boot.initrd_start + boot.initrd_size),
    ];
    for &(gpa, len) in calls {
        let end = gpa.checked_add(len).expect("write range wraps");
        assert!(
            end <= ram_size,
            "write {gpa:#x}+{len:#x} beyond RAM {ram_size:#x}"
        );
        assert!(
            regions.iter().any(|&(s, e)| s <= gpa && end <= e),
            "write {gpa:#x}+{len:#x} outside the documented regions {boot:x?}"
        );
    }
    // Read back.
    let zp = ZERO_PAGE_GPA as usize;
    assert_eq!(&ram[zp + 0x1fe..zp + 0x200], &[0x55, 0xaa]);
    assert_eq!(&ram[zp + 0x202..zp + 0x206], b"HdrS");
    assert_eq!(ram[zp + 0x210], 0xff);
    assert_eq!(ram[zp + 0x1e8] as usize, cfg.memmap.len());
    let c = CMDLINE_GPA as usize;
    assert_eq!(&ram[c..c + cfg.cmdline.len()], cfg.cmdline.as_bytes());
    assert_eq!(ram[c + cfg.cmdline.len()], 0);
    let k = boot.kernel_start as usize;
    assert_eq!(&ram[k..k + info.kernel_len], &image[info.kernel_offset..]);
    assert_eq!(
        translate(ram, boot.cpu.cr3, boot.entry_64),
        Some(boot.entry_64)
    );
    assert_eq!(
        translate(ram, boot.cpu.cr3, ZERO_PAGE_GPA),
        Some(ZERO_PAGE_GPA)
    );
}

fn check(image: &[u8], ram_size: usize, cfg: &BootConfig) {
    let planned = plan(image, ram_size as u64, cfg);
    if let Err(e) = &planned {
        let _ = e.to_string();
    }
    GUEST_RAM.with(|ram| {
        let mut ram = ram.borrow_mut();
        let slice = &mut ram[..ram_size];
        let mut mem = Watched {
            mem: SliceMemory::new(slice),
            calls: Vec::new(),
        };
        let loaded = load(image, &mut mem, cfg);
        let calls = std::mem::take(&mut mem.calls);
        if std::env::var_os("FUZZ_DEBUG").is_some() {
            match &loaded {
                Ok(b) => eprintln!(
                    "linux_boot: loaded at {:#x}, initrd {:#x}",
                    b.kernel_start, b.initrd_size
                ),
                Err(e) => eprintln!("linux_boot: {e:?}"),
            }
        }
        match (&planned, &loaded) {
            (Err(p), Err(l)) => {
                assert_eq!(p, l, "load's error differs from plan's");
                assert!(calls.is_empty(), "load wrote after plan failed: {calls:x?}");
                assert!(!matches!(l, BootError::Memory(_)));
            }
            (Ok(p), Ok(b)) => {
                assert_eq!(p.kernel_gpa, b.kernel_start);
                assert_eq!(p.initrd_gpa, b.initrd_start);
                check_success(image, cfg, b, &calls, &ram[..ram_size]);
            }
            (p, l) => panic!("plan {p:?} but load {l:?}"),
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
    if data.starts_with(b"MZ") {
        let map = pc_memmap(MAX_RAM as u64).unwrap();
        let initrd = [0x5a; 3000];
        let cfg = BootConfig {
            cmdline: "console=ttyS0",
            initrd: Some(&initrd),
            memmap: &map,
            acpi_rsdp: Some(0xE0000),
        };
        check(data, MAX_RAM, &cfg);
        return;
    }
    let Ok(spec) = Spec::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let c = &spec.cfg;
    let ram_size = ((1 + usize::from(c.ram_mib % 32)) << 20) + usize::from(c.ram_extra) * 0x1000;
    let ram_size = ram_size.min(MAX_STRUCTURED_RAM);
    let cmdline = match &c.cmdline {
        CmdlineSpec::Text(s) => s.clone(),
        CmdlineSpec::Long(n) => "x".repeat(usize::from(*n % 0x1100)),
    };
    let initrd = c.initrd_kib.map(|(kib, extra)| {
        vec![0xa5u8; (usize::from(kib % 8192) << 10) + usize::from(extra % 4096)]
    });
    let map = match &c.memmap {
        Some(specs) => memmap(specs),
        None => pc_memmap(ram_size as u64)
            .map(|m| m.to_vec())
            .unwrap_or_default(),
    };
    let cfg = BootConfig {
        cmdline: &cmdline,
        initrd: initrd.as_deref(),
        memmap: &map,
        acpi_rsdp: c.acpi_rsdp,
    };
    let image = match &spec.image {
        ImageKind::Described(s) => build(s),
        ImageKind::Raw(bytes) => bytes.clone(),
    };
    check(&image, ram_size, &cfg);
});
