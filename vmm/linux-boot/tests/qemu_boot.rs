//! Tier 2 for the boot protocol: the real Debian kernel boots in QEMU (TCG)
//! from guest memory that `linux-boot` and `acpi-tables` prepared — our
//! zero page, e820 map, command line, initrd placement, identity page
//! tables, GDT and ACPI tables — and powers off through the DSDT's `\_S5_`.
//!
//! QEMU gets no firmware of ours beyond a 128 KiB "BIOS" image: the ACPI
//! tables as they lie at 0xE0000..0x100000, plus a trampoline at the reset
//! vector that does only what a VMM does before the first VM entry: load
//! the GDT, CR3, CR4.PAE, EFER.LME, CR0.PE|PG, the segment registers, RSP
//! and RSI from `LinuxBoot::cpu`, and jump to `LinuxBoot::entry_64`. (It also
//! points the PIIX4 PM I/O block at 0x600, which firmware does on a real PC.)
//! The rest of guest memory comes from our image through `-device loader`.
//!
//! The initramfs holds one static `/init` (built here, byte by byte) that
//! prints a marker and calls `reboot(POWER_OFF)`; QEMU exits only if the
//! kernel's ACPI S5 write reached the PM1a control block.
//!
//! Skipped, with a message, without `/boot/vmlinuz-*` or `qemu-system-x86_64`.

use acpi_tables::{AcpiConfig, Hpet};
use linux_boot::{load, pc_memmap, BootConfig, LinuxBoot, SliceMemory};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RAM: usize = 256 << 20;
const BIOS_BASE: usize = 0xE_0000;
const BIOS_SIZE: usize = 0x2_0000;
const MARKER: &str = "LINUXBOOT: init says hello";
const CMDLINE: &str = "console=ttyS0 earlyprintk=serial,ttyS0 panic=-1 loglevel=7 linuxboot.test=1";

fn debian_kernel() -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/boot")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .collect();
    v.sort();
    v.pop()
}

fn have_qemu() -> bool {
    Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A static x86-64 ELF whose code writes [`MARKER`] to stdout and powers off.
fn init_elf() -> Vec<u8> {
    let mut code = vec![
        0xb8, 0x01, 0x00, 0x00, 0x00, // mov $1, %eax          (write)
        0xbf, 0x01, 0x00, 0x00, 0x00, // mov $1, %edi          (stdout)
        0x48, 0x8d, 0x35, 0x1f, 0x00, 0x00, 0x00, // lea msg(%rip), %rsi
        0xba, 0x00, 0x00, 0x00, 0x00, // mov $len, %edx        (patched)
        0x0f, 0x05, // syscall
        0xb8, 0xa9, 0x00, 0x00, 0x00, // mov $169, %eax        (reboot)
        0xbf, 0xad, 0xde, 0xe1, 0xfe, // mov $0xfee1dead, %edi
        0xbe, 0x69, 0x19, 0x12, 0x28, // mov $672274793, %esi
        0xba, 0xdc, 0xfe, 0x21, 0x43, // mov $0x4321fedc, %edx (POWER_OFF)
        0x0f, 0x05, // syscall
        0xeb, 0xfe, // 1: jmp 1b
    ];
    assert_eq!(code.len(), 0x30);
    let msg = format!("{MARKER}\n");
    code[18..22].copy_from_slice(&(msg.len() as u32).to_le_bytes());
    code.extend_from_slice(msg.as_bytes());

    const VADDR: u64 = 0x40_0000;
    let hdr_len = 64 + 56;
    let file_len = (hdr_len + code.len()) as u64;
    let mut e = Vec::new();
    e.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    e.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    e.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    e.extend_from_slice(&1u32.to_le_bytes());
    e.extend_from_slice(&(VADDR + hdr_len as u64).to_le_bytes()); // e_entry
    e.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
    e.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    e.extend_from_slice(&0u32.to_le_bytes());
    for v in [64u16, 56, 1, 64, 0, 0] {
        e.extend_from_slice(&v.to_le_bytes());
    }
    e.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    e.extend_from_slice(&5u32.to_le_bytes()); // R+X
    for v in [0u64, VADDR, VADDR, file_len, file_len, 0x1000] {
        e.extend_from_slice(&v.to_le_bytes());
    }
    e.extend_from_slice(&code);
    e
}

/// An uncompressed newc cpio archive.
fn cpio(entries: &[(&str, u32, u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut push = |name: &str, mode: u32, rdev_minor: u32, data: &[u8], ino: u32| {
        let rdev_major = if rdev_minor != 0 { 5 } else { 0 };
        let fields = [
            ino,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            rdev_major,
            rdev_minor,
            name.len() as u32 + 1,
            0,
        ];
        out.extend_from_slice(b"070701");
        for f in fields {
            out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out.extend_from_slice(data);
        while out.len() % 4 != 0 {
            out.push(0);
        }
    };
    for (i, (name, mode, minor, data)) in entries.iter().enumerate() {
        push(name, *mode, *minor, data, i as u32 + 1);
    }
    push("TRAILER!!!", 0, 0, &[], 0);
    out
}

/// The reset-vector trampoline: real mode → long mode with `boot.cpu`.
fn trampoline(bios: &mut [u8], boot: &LinuxBoot) {
    let cpu = &boot.cpu;
    let cr3 = u32::try_from(cpu.cr3).unwrap();
    let gdt_base = u32::try_from(cpu.gdt.base).unwrap();
    assert_eq!(cpu.cr4, 0x20, "the trampoline sets CR4.PAE only");
    assert_eq!(
        cpu.efer, 0x500,
        "the trampoline sets EFER.LME (LMA follows)"
    );
    assert_eq!(cpu.cr0 & 0x8000_0001, 0x8000_0001);
    // Real mode at CS base 0xFFFF0000, IP 0xF000 (BIOS offset 0x1F000).
    let mut c16: Vec<u8> = vec![0xfa]; // cli
    c16.extend([0x66, 0xb8, 0x40, 0x0b, 0x00, 0x80]); // mov $0x80000B40, %eax (00:01.3 PMBA)
    c16.extend([0xba, 0xf8, 0x0c, 0x66, 0xef]); // mov $0xcf8, %dx; out %eax, %dx
    c16.extend([0x66, 0xb8, 0x01, 0x06, 0x00, 0x00]); // mov $0x601, %eax
    c16.extend([0xba, 0xfc, 0x0c, 0x66, 0xef]); // mov $0xcfc, %dx; out %eax, %dx
    c16.extend([0x66, 0xb8, 0x80, 0x0b, 0x00, 0x80]); // mov $0x80000B80, %eax (PMREGMISC)
    c16.extend([0xba, 0xf8, 0x0c, 0x66, 0xef]); // mov $0xcf8, %dx; out %eax, %dx
    c16.extend([0xb0, 0x01, 0xba, 0xfc, 0x0c, 0xee]); // mov $1, %al; mov $0xcfc, %dx; out %al, %dx
    c16.extend([0x2e, 0x66, 0x0f, 0x01, 0x16, 0x80, 0xf0]); // lgdtl %cs:0xF080
    c16.extend([0x0f, 0x20, 0xe0, 0x66, 0x83, 0xc8, 0x20, 0x0f, 0x22, 0xe0]); // cr4 |= PAE
    c16.extend([0x66, 0xb8]); // mov $cr3, %eax
    c16.extend(cr3.to_le_bytes());
    c16.extend([0x0f, 0x22, 0xd8]); // mov %eax, %cr3
    c16.extend([0x66, 0xb9, 0x80, 0x00, 0x00, 0xc0, 0x0f, 0x32]); // mov $EFER, %ecx; rdmsr
    c16.extend([0x66, 0x0d, 0x00, 0x01, 0x00, 0x00, 0x0f, 0x30]); // or $LME, %eax; wrmsr
    c16.extend([
        0x0f, 0x20, 0xc0, 0x66, 0x0d, 0x01, 0x00, 0x00, 0x80, 0x0f, 0x22, 0xc0,
    ]); // cr0 |= PE|PG
    c16.extend([0x66, 0xea, 0x00, 0xf1, 0x0f, 0x00]); // ljmpl $cs, $0xFF100
    c16.extend(cpu.cs.selector.to_le_bytes());
    assert!(c16.len() < 0x80);
    bios[0x1_F000..0x1_F000 + c16.len()].copy_from_slice(&c16);
    // The GDTR operand at CS:0xF080.
    bios[0x1_F080..0x1_F082].copy_from_slice(&cpu.gdt.limit.to_le_bytes());
    bios[0x1_F082..0x1_F086].copy_from_slice(&gdt_base.to_le_bytes());

    // Long mode at 0xFF100 (BIOS offset 0x1F100, identity-mapped).
    let ds = u32::from(cpu.ds.selector);
    let mut c64 = vec![0xb8]; // mov $ds, %eax
    c64.extend(ds.to_le_bytes());
    c64.extend([0x8e, 0xd8, 0x8e, 0xc0, 0x8e, 0xd0, 0x8e, 0xe0, 0x8e, 0xe8]); // ds es ss fs gs
    c64.push(0xbc); // mov $rsp, %esp
    c64.extend(u32::try_from(cpu.rsp).unwrap().to_le_bytes());
    c64.push(0xbe); // mov $rsi, %esi
    c64.extend(u32::try_from(cpu.rsi).unwrap().to_le_bytes());
    c64.push(0xb8); // mov $rip, %eax
    c64.extend(u32::try_from(cpu.rip).unwrap().to_le_bytes());
    c64.extend([0xff, 0xe0]); // jmp *%rax
    bios[0x1_F100..0x1_F100 + c64.len()].copy_from_slice(&c64);

    // Reset vector (CS:IP = F000:FFF0): jmp 0xF000.
    bios[0x1_FFF0..0x1_FFF3].copy_from_slice(&[0xe9, 0x0d, 0xf0]);
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

#[test]
fn debian_kernel_boots_in_qemu_and_powers_off_via_acpi() {
    let Some(kernel_path) = debian_kernel() else {
        eprintln!("SKIPPED qemu_boot: no /boot/vmlinuz-* (apt-get install linux-image-amd64)");
        return;
    };
    if !have_qemu() {
        eprintln!(
            "SKIPPED qemu_boot: qemu-system-x86_64 not installed (apt-get install qemu-system-x86)"
        );
        return;
    }
    let image = std::fs::read(&kernel_path).unwrap();
    let initrd = cpio(&[
        ("dev", 0o040755, 0, &[]),
        ("dev/console", 0o020600, 1, &[]),
        ("init", 0o100755, 0, &init_elf()),
    ]);

    // Guest memory, as the VMM would build it.
    let mut ram = vec![0u8; RAM];
    let acpi = AcpiConfig {
        // QEMU's PIIX4 powers off on SLP_TYP 0 (cloister's PM model on 5);
        // everything else is cloister's default platform, which lays its
        // ACPI registers out as the PIIX4 does (PM base 0x600, 24-bit timer).
        s5_sleep_type: 0,
        hpet: Some(Hpet {
            address: 0xFED0_0000,
            comparators: 3,
            counter_64bit: true,
            legacy_replacement: true,
        }),
        ..AcpiConfig::pc()
    };
    let map = pc_memmap(RAM as u64).unwrap();
    let mut mem = SliceMemory::new(&mut ram);
    let tables = acpi_tables::write_tables(&acpi, &mut mem).unwrap();
    let boot = load(
        &image,
        &mut mem,
        &BootConfig {
            cmdline: CMDLINE,
            initrd: Some(&initrd),
            memmap: &map,
            acpi_rsdp: Some(tables.rsdp),
        },
    )
    .unwrap();
    assert!(tables.end <= (BIOS_BASE + BIOS_SIZE) as u64);
    assert!(tables.end <= 0xF_F000, "tables overlap the trampoline");

    let dir = std::env::temp_dir().join(format!("linux-boot-qemu-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut bios = ram[BIOS_BASE..BIOS_BASE + BIOS_SIZE].to_vec();
    trampoline(&mut bios, &boot);
    let bios_path = write(&dir, "bios.bin", &bios);
    let low_end = 0x2_1000;
    let low = write(&dir, "low.bin", &ram[..low_end]);
    let k = boot.kernel_start as usize;
    let kernel = write(&dir, "kernel.bin", &ram[k..k + boot.info.kernel_len]);
    let i = boot.initrd_start as usize;
    let initrd_path = write(&dir, "initrd.bin", &ram[i..i + boot.initrd_size as usize]);
    let console = dir.join("console.log");

    let loader =
        |p: &Path, addr: u64| format!("loader,file={},addr={addr:#x},force-raw=on", p.display());
    let mut child = Command::new("qemu-system-x86_64")
        .args(["-M", "pc", "-accel", "tcg", "-m", "256M", "-smp", "1"])
        .args(["-nodefaults", "-display", "none", "-no-reboot"])
        .arg("-bios")
        .arg(&bios_path)
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .args(["-device", &loader(&low, 0)])
        .args(["-device", &loader(&kernel, boot.kernel_start)])
        .args(["-device", &loader(&initrd_path, boot.initrd_start)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let timeout = Duration::from_secs(180);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let log = std::fs::read_to_string(&console).unwrap_or_default();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    let context = format!(
        "QEMU {status:?} after {:.1?}\n--- console ---\n{log}\n--- stderr ---\n{stderr}",
        start.elapsed()
    );
    assert!(
        status.is_some(),
        "QEMU timed out: the guest did not power off\n{context}"
    );

    for want in [
        format!("Command line: {CMDLINE}"),
        "BIOS-e820: [mem 0x0000000000000000-0x000000000009ffff] usable".into(),
        "BIOS-e820: [mem 0x00000000000e0000-0x00000000000fffff] reserved".into(),
        "BIOS-e820: [mem 0x0000000000100000-0x000000000fffffff] usable".into(),
        "ACPI: RSDP 0x00000000000E0000 000024 (v02 CLOIST)".into(),
        "ACPI: XSDT".into(),
        "ACPI: FACP".into(),
        "ACPI: DSDT".into(),
        "ACPI: FACS".into(),
        "ACPI: APIC".into(),
        "ACPI: HPET".into(),
        "IOAPIC[0]: apic_id 0".into(),
        "ACPI: INT_SRC_OVR (bus 0 bus_irq 0 global_irq 2 dfl dfl)".into(),
        "ACPI: INT_SRC_OVR (bus 0 bus_irq 9 global_irq 9 high level)".into(),
        "ACPI: PM-Timer IO Port: 0x608".into(),
        "ACPI: HPET id: 0x8086a201 base: 0xfed00000".into(),
        "hpet0: 3 comparators, 64-bit".into(),
        "ACPI: PM: (supports S0 S5)".into(),
        "clocksource: acpi_pm: mask: 0xffffff".into(),
        "ACPI: PCI Root Bridge [PCI0] (domain 0000 [bus 00])".into(),
        "pci_bus 0000:00: root bus resource [io  0x0000-0x0cf7 window]".into(),
        "pci_bus 0000:00: root bus resource [mem 0xc0000000-0xfebfffff window]".into(),
        "pnp: PnP ACPI: found 2 devices".into(),
        "00:00: ttyS0 at I/O 0x3f8 (irq = 4".into(),
        "rtc_cmos 00:01: registered as rtc0".into(),
        format!(
            "RAMDISK: [mem {:#010x}-{:#010x}]",
            boot.initrd_start & !0xfff,
            (boot.initrd_start + boot.initrd_size).next_multiple_of(0x1000) - 1
        ),
        "Trying to unpack rootfs image as initramfs...".into(),
        "Freeing initrd memory".into(),
        "Run /init as init process".into(),
        MARKER.into(),
        "ACPI: PM: Preparing to enter system sleep state S5".into(),
        "reboot: Power down".into(),
    ] {
        assert!(log.contains(&want), "console lacks `{want}`\n{context}");
    }
    for bad in [
        "ACPI Error",
        "ACPI BIOS Error",
        "ACPI Warning",
        "BUG",
        "WARNING",
        "Call Trace",
        "Kernel panic",
    ] {
        assert!(!log.contains(bad), "console contains `{bad}`\n{context}");
    }
    eprintln!(
        "qemu_boot: {} booted from our memory image to /init and powered off via ACPI S5 in {:.1?} ({} console lines)",
        kernel_path.display(),
        start.elapsed(),
        log.lines().count()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
