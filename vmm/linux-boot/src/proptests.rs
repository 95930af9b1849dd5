//! Property tests: hostile images never panic the loader, a rejected image
//! writes nothing, corrupted headers are rejected or still load safely, and
//! accepted kernels land in RAM where the protocol allows.

use proptest::prelude::*;

use crate::test_image::{debian_kernel, Image};
use crate::tests::{assert_writes_allowed, Recording, MIB};
use crate::*;

/// Loads with a recording memory and checks the invariants of the result.
fn load_checked(
    img: &[u8],
    ram_size: u64,
    map: &[MemMapEntry],
    initrd: Option<&[u8]>,
    cmdline: &str,
) -> Result<LinuxBoot, BootError> {
    let mut r = vec![0u8; ram_size as usize];
    let mut mem = Recording::new(&mut r);
    let cfg = BootConfig {
        cmdline,
        initrd,
        memmap: map,
        acpi_rsdp: None,
    };
    let planned = plan(img, ram_size, &cfg);
    let res = load(img, &mut mem, &cfg);
    let calls = std::mem::take(&mut mem.calls);
    match &res {
        Err(e) => {
            assert_eq!(planned.as_ref().err(), Some(e), "plan and load disagree");
            assert!(calls.is_empty(), "{e} after writes {calls:x?}");
            assert!(
                !matches!(e, BootError::Memory(_)),
                "validated load failed: {e}"
            );
            let _ = e.to_string();
        }
        Ok(boot) => {
            let p = planned.unwrap();
            assert_eq!(p.kernel_gpa, boot.kernel_start);
            assert_writes_allowed(&calls, boot, ram_size);
            check_accepted(boot, map, ram_size);
        }
    }
    res
}

fn in_one_ram_entry(map: &[MemMapEntry], start: u64, end: u64) -> bool {
    map.iter()
        .any(|e| e.kind == MemoryType::Ram && e.addr <= start && end <= e.addr + e.size)
}

fn check_accepted(boot: &LinuxBoot, map: &[MemMapEntry], ram_size: u64) {
    let info = &boot.info;
    assert_eq!(boot.entry_64, boot.kernel_start + 0x200);
    assert_eq!(
        boot.kernel_end,
        boot.kernel_start + u64::from(info.init_size)
    );
    assert!(boot.kernel_start >= KERNEL_MIN_GPA);
    assert!(boot.kernel_end <= IDENTITY_MAP_END.min(ram_size));
    assert!(in_one_ram_entry(map, boot.kernel_start, boot.kernel_end));
    if info.relocatable {
        let min = if (1..32).contains(&info.min_alignment) {
            (1u64 << info.min_alignment).min(u64::from(info.kernel_alignment))
        } else {
            u64::from(info.kernel_alignment)
        };
        assert_eq!(boot.kernel_start % min, 0, "kernel misaligned: {boot:x?}");
    }
    if boot.initrd_size != 0 {
        let (s, e) = (boot.initrd_start, boot.initrd_start + boot.initrd_size);
        assert_eq!(s % 0x1000, 0);
        assert!(s >= KERNEL_MIN_GPA);
        assert!(e <= u64::from(info.initrd_addr_max) + 1);
        assert!(in_one_ram_entry(map, s, e));
        assert!(
            e <= boot.kernel_start || s >= boot.kernel_end,
            "initrd overlaps kernel"
        );
    }
}

fn image_strategy() -> impl Strategy<Value = Image> {
    (
        (
            0u8..8,
            0x020au16..0x0210,
            0x60u8..0x70,
            any::<u8>(),
            any::<u16>(),
        ),
        (
            0x180usize..0x3000,
            prop::option::of(0u32..0x400),
            0u32..0x80_0000,
        ),
        (
            0u32..24,
            any::<bool>(),
            0u8..40,
            prop_oneof![Just(0u64), 0u64..0x400_0000],
        ),
        (0u32..0x900, any::<u32>()),
    )
        .prop_map(
            |(
                (setup_sects, version, jump_len, loadflags, xloadflags),
                (kernel_len, syssize, init_size),
                (align_log, relocatable, min_alignment, pref_address),
                (cmdline_size, initrd_addr_max),
            )| Image {
                setup_sects,
                version,
                jump_len,
                loadflags,
                xloadflags,
                kernel_len,
                syssize,
                init_size,
                kernel_alignment: 1 << align_log,
                relocatable,
                min_alignment,
                pref_address,
                cmdline_size,
                initrd_addr_max,
                ..Image::default()
            },
        )
}

fn memmap_strategy() -> impl Strategy<Value = Vec<MemMapEntry>> {
    prop::collection::vec(
        (0u64..40, 1u64..20, 0u32..5).prop_map(|(a, s, k)| MemMapEntry {
            addr: a * MIB / 2,
            size: s * MIB / 2,
            kind: MemoryType::from_value(k + 1).unwrap(),
        }),
        0..6,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        let map = pc_memmap(8 * MIB).unwrap();
        let _ = load_checked(&bytes, 8 * MIB, &map, None, "");
    }

    #[test]
    fn header_garbage_after_valid_magic(
        body in prop::collection::vec(any::<u8>(), 0x268..0x1800),
    ) {
        let mut img = body;
        img[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
        img[0x202..0x206].copy_from_slice(b"HdrS");
        let map = pc_memmap(8 * MIB).unwrap();
        let _ = load_checked(&img, 8 * MIB, &map, Some(b"initrd"), "x");
    }

    #[test]
    fn structured_images_load_safely(
        img in image_strategy(),
        map in prop_oneof![memmap_strategy(), Just(pc_memmap(24 * MIB).unwrap().to_vec())],
        initrd_len in prop_oneof![Just(0usize), 1usize..0x30_0000],
        cmdline_len in 0usize..0x900,
    ) {
        let bytes = img.build();
        let initrd = vec![0x5au8; initrd_len];
        let cmdline = "c".repeat(cmdline_len);
        let _ = load_checked(&bytes, 24 * MIB, &map, Some(&initrd), &cmdline);
    }

    #[test]
    fn corrupted_header_field(off in 0x1f1usize..0x270, val in any::<u8>(), twice in any::<bool>()) {
        let mut img = Image::default().build();
        img[off] = val;
        if twice && off + 1 < img.len() {
            img[off + 1] = val.rotate_left(3);
        }
        let map = pc_memmap(24 * MIB).unwrap();
        let _ = load_checked(&img, 24 * MIB, &map, Some(&[1, 2, 3]), "console=ttyS0");
    }

    #[test]
    fn strict_prefixes_are_rejected(cut in 0usize..(5 * 512 + 0x3000)) {
        // kernel_len 0x3000 is a multiple of 16: syssize covers the whole file.
        let img = Image::default().build();
        prop_assert!(parse(&img[..cut]).is_err());
    }
}

/// Corrupted copies of the real Debian kernel: every single-byte change to
/// its setup header is either rejected or loads within the rules.
#[test]
fn corrupted_debian_headers() {
    let Some((_, real)) = debian_kernel() else {
        eprintln!("SKIPPED corrupted_debian_headers: no /boot/vmlinuz-*");
        return;
    };
    let info = parse(&real).unwrap();
    let ram_size = (u64::from(info.init_size) + 32 * MIB).next_multiple_of(MIB);
    let map = pc_memmap(ram_size).unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    });
    let fields = [
        0x1f1usize, 0x1f4, 0x1f5, 0x1f6, 0x1f7, 0x1fe, 0x1ff, 0x201, 0x202, 0x206, 0x207, 0x211,
        0x22c, 0x22f, 0x230, 0x232, 0x233, 0x234, 0x235, 0x236, 0x238, 0x239, 0x258, 0x25a, 0x25b,
        0x260, 0x262, 0x263,
    ];
    let rejected = std::cell::Cell::new(0);
    runner
        .run(
            &(prop::sample::select(fields.to_vec()), any::<u8>()),
            |(off, val)| {
                let mut img = real.clone();
                img[off] = val;
                if load_checked(&img, ram_size, &map, Some(&[9; 4096]), "console=ttyS0").is_err() {
                    rejected.set(rejected.get() + 1);
                }
                Ok(())
            },
        )
        .unwrap();
    eprintln!(
        "corrupted_debian_headers: {}/48 corrupted copies rejected",
        rejected.get()
    );
}
