//! Tier 2: the unikernel runtime's device support, through the `rtcheck`
//! guest under QEMU on both machine types: PCI through ECAM (q35) and
//! configuration mechanism #1 (pc), MSI and IOAPIC (INTx) interrupts from
//! QEMU's `edu` device, the APIC timer, and virtio-blk through
//! `virtio-drivers` (sector 0's checksum, and a write of sector 1 that must
//! reach the image file).

use cloister::build::fnv1a64;
use cloister::qemu::{self, QemuConfig};
use std::path::Path;
use std::time::Duration;

/// The rtcheck ELF, built by build.rs.
const RTCHECK_ELF: &str = env!("CLOISTER_GUEST_RTCHECK");
const SECTOR: usize = 512;

fn check(machine: &str, mechanism: &str) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let image = dir.join(format!("rtcheck-{machine}.img"));
    let bytes: Vec<u8> = (0..1u32 << 20)
        .map(|i| i.wrapping_mul(2_654_435_761).rotate_left(7) as u8)
        .collect();
    std::fs::write(&image, &bytes).expect("write the disk image");
    let config = QemuConfig {
        machine: machine.into(),
        mem_mib: 4,
        extra: vec![
            "-nic".into(),
            "none".into(),
            "-device".into(),
            "edu".into(),
            "-drive".into(),
            format!("file={},if=none,id=d0,format=raw", image.display()),
            "-device".into(),
            "virtio-blk-pci,drive=d0".into(),
        ],
    };
    let run =
        qemu::spawn_or_panic(Path::new(RTCHECK_ELF), "", &config).finish(Duration::from_secs(120));
    let context = format!("machine {machine}: {}", run.context());
    let lines: Vec<&str> = run.lines().collect();
    let has = |prefix: &str| lines.iter().any(|l| l.starts_with(prefix));
    for want in [
        format!("rtcheck: pci: {mechanism}, "),
        "rtcheck: pci: 00:".into(),
        "rtcheck: timer: waited ".into(),
        "rtcheck: edu: MSI vector ".into(),
        "rtcheck: edu: INTx pin 1 on IOAPIC GSI ".into(),
        "rtcheck: virtio-blk at 00:0".into(),
        "rtcheck: virtio-blk: sector 1 written and read back: ok".into(),
    ] {
        assert!(has(&want), "no line starting `{want}`\n{context}");
    }
    let sum = format!(
        "2048 sectors, sector 0 fnv1a64={:#018x}",
        fnv1a64(&bytes[..SECTOR])
    );
    assert!(
        lines.iter().any(|l| l.ends_with(&sum)),
        "no `{sum}` (the checksum the host computes)\n{context}"
    );
    assert!(lines.contains(&"rtcheck: ok"), "{context}");
    assert_eq!(run.guest_exit_code(), Some(0), "{context}");
    let disk = std::fs::read(&image).expect("read the image back");
    let want: Vec<u8> = (0..SECTOR).map(|i| (i as u8) ^ 0xa5).collect();
    assert_eq!(
        &disk[SECTOR..2 * SECTOR],
        &want[..],
        "sector 1 on disk\n{context}"
    );
    assert_eq!(
        &disk[2 * SECTOR..],
        &bytes[2 * SECTOR..],
        "the rest is untouched"
    );
}

#[test]
fn runtime_devices_on_q35() {
    check("q35", "ECAM");
}

#[test]
fn runtime_devices_on_pc() {
    check("pc", "config mechanism #1");
}
