//! The loader against images produced by GNU as/ld (see tests/fixtures/README.md).

use pvh_loader::{default_memmap, load, validate, ElfClass, SliceMemory, StartInfo};

const PVH64: &[u8] = include_bytes!("fixtures/pvh64.elf");
const PVH32: &[u8] = include_bytes!("fixtures/pvh32.elf");
const RAM: usize = 2 << 20;

fn check(elf: &[u8], class: ElfClass) {
    let info = validate(elf, RAM as u64).unwrap();
    assert_eq!(info.class, class);
    assert_eq!(info.entry, 0x10_0000);
    assert_eq!(info.image_start, 0x10_0000);
    assert_eq!(info.image_end, 0x10_4018);
    assert_eq!(info.segments, 3);

    let mut ram = vec![0x55u8; RAM];
    let mut mem = SliceMemory::new(&mut ram);
    let boot = load(elf, &mut mem, "hello", &default_memmap(RAM as u64)).unwrap();
    assert_eq!(boot.entry, 0x10_0000);
    assert_eq!(boot.start_info, 0x1000);
    // hlt; jmp -3
    assert_eq!(&ram[0x10_0000..0x10_0003], &[0xf4, 0xeb, 0xfd]);
    assert_eq!(ram[0x10_2000], 1); // .data: .quad 1, 2, 3
    assert_eq!(ram[0x10_2008], 2);
    assert!(ram[0x10_2018..0x10_4018].iter().all(|&b| b == 0)); // bss
    assert_eq!(ram[0x10_4018], 0x55);
    let si = StartInfo::from_bytes(ram[0x1000..0x1038].try_into().unwrap());
    assert_eq!(si.magic, 0x336e_c578);
    assert_eq!(si.cmdline_paddr, 0x3000);
    assert_eq!(&ram[0x3000..0x3006], b"hello\0");
}

#[test]
fn gnu_ld_elf64() {
    check(PVH64, ElfClass::Elf64);
}

#[test]
fn gnu_ld_elf32() {
    check(PVH32, ElfClass::Elf32);
}
