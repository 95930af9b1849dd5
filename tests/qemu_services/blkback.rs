//! blkback under QEMU (q35, TCG): a template image of seeded pseudorandom
//! bytes attached read-only, an empty overlay image and a private image,
//! each a virtio-blk device told apart by its serial. The guest runs a
//! random write workload through the copy-on-write disk (seed and chunk size
//! on its command line), discards the overlay, and writes the private
//! volume; the test checks what it prints against checksums computed here,
//! and then checks the image files themselves: the template byte for byte
//! unchanged, the overlay written, the private volume changed exactly where
//! the guest says.

use crate::{pseudorandom, Scratch};
use cloister::build::fnv1a64;
use cloister::qemu::{self, QemuConfig, QemuRun};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The blkback ELF, built by build.rs.
const BLKBACK_ELF: &str = env!("CLOISTER_GUEST_BLKBACK");
const SECTOR: usize = 512;
const TEMPLATE_BYTES: usize = 8 << 20;
const PRIVATE_BYTES: usize = 1 << 20;
/// What the private image holds before the guest runs.
const PRIVATE_FILL: u8 = 0x5a;
/// Sectors the guest writes at each end of the private volume.
const PRIVATE_SECTORS: usize = 8;

/// The three images of one run.
struct Images {
    _dir: Scratch,
    template: PathBuf,
    overlay: PathBuf,
    private: PathBuf,
}

fn images(name: &str, template: &[u8]) -> Images {
    let dir = Scratch::new(&format!("blkback-{name}"));
    let images = Images {
        template: dir.0.join("template.img"),
        overlay: dir.0.join("overlay.img"),
        private: dir.0.join("private.img"),
        _dir: dir,
    };
    std::fs::write(&images.template, template).expect("write the template image");
    std::fs::write(&images.overlay, vec![0u8; template.len()]).expect("write the overlay image");
    std::fs::write(&images.private, vec![PRIVATE_FILL; PRIVATE_BYTES])
        .expect("write the private image");
    images
}

/// Boots blkback with `cmdline` and the images; `template_ro` says whether
/// the template is attached `readonly=on`.
fn boot(images: &Images, cmdline: &str, template_ro: bool) -> (QemuRun, String) {
    let drive = |path: &Path, id: &str, ro: bool| {
        format!(
            "file={},if=none,id={id},format=raw{}",
            path.display(),
            if ro { ",readonly=on" } else { "" }
        )
    };
    let mut extra: Vec<String> = vec!["-nic".into(), "none".into()];
    for (path, id, ro) in [
        (&images.template, "template", template_ro),
        (&images.overlay, "overlay", false),
        (&images.private, "private", false),
    ] {
        extra.extend([
            "-drive".into(),
            drive(path, id, ro),
            "-device".into(),
            format!("virtio-blk-pci,drive={id},serial=blkback-{id}"),
        ]);
    }
    let config = QemuConfig {
        machine: "q35".into(),
        mem_mib: 64,
        extra,
    };
    let run = qemu::spawn_or_panic(Path::new(BLKBACK_ELF), cmdline, &config)
        .finish(Duration::from_secs(60));
    let context = format!("cmdline `{cmdline}`: {}", run.context());
    (run, context)
}

/// The line starting with `prefix`, or a panic showing the console.
fn line<'a>(run: &'a QemuRun, prefix: &str, context: &str) -> &'a str {
    run.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting `{prefix}`\n{context}"))
}

/// The number after `key` in `line` (decimal, or hex after `0x`).
fn number_after(line: &str, key: &str, context: &str) -> u64 {
    let at = line
        .find(key)
        .unwrap_or_else(|| panic!("no `{key}` in `{line}`\n{context}"));
    let rest = &line[at + key.len()..];
    let (digits, radix) = match rest.strip_prefix("0x") {
        Some(hex) => (hex, 16),
        None => (rest, 10),
    };
    let end = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    u64::from_str_radix(&digits[..end], radix)
        .unwrap_or_else(|_| panic!("no number after `{key}` in `{line}`\n{context}"))
}

/// One full self-check: `ops` workload writes with `seed` on chunks of
/// `chunk` bytes, then the image files checked on the host.
fn self_check(seed: u64, ops: u64, chunk: usize) {
    let template = pseudorandom(seed ^ 0x7465_6d70_6c61_7465, TEMPLATE_BYTES);
    let sum = fnv1a64(&template);
    let images = images(&format!("{seed:x}"), &template);
    let cmdline = format!("seed={seed:#x} ops={ops} chunk={chunk}");
    let (run, context) = boot(&images, &cmdline, true);
    let context = &context;

    line(
        &run,
        &format!("blkback: seed={seed:#x} ops={ops} chunk={chunk}"),
        context,
    );
    let sectors = TEMPLATE_BYTES / SECTOR;
    for (role, size, access) in [
        ("template", sectors, "read-only"),
        ("overlay", sectors, "writable"),
        ("private", PRIVATE_BYTES / SECTOR, "writable"),
    ] {
        let want = format!("serial \"blkback-{role}\", {size} sectors, {access}: {role}");
        assert!(
            run.lines()
                .any(|l| l.starts_with("blkback: virtio-blk at 00:0") && l.ends_with(&want)),
            "no device line ending `{want}`\n{context}"
        );
    }
    line(
        &run,
        "blkback: template: read-only, the device refused a probe write",
        context,
    );
    // The template checksum the guest reads is the one computed here.
    let before = format!("blkback: template: fnv1a64={sum:#018x} before");
    assert!(run.lines().any(|l| l == before), "no `{before}`\n{context}");
    let workload = line(&run, "blkback: workload: ", context);
    assert!(
        workload.starts_with(&format!("blkback: workload: {ops} writes ("))
            && workload.ends_with(&format!(
                "{ops} reads checked against the model, 0 mismatches: verified"
            )),
        "{workload}\n{context}"
    );
    let overlay = line(&run, "blkback: overlay: ", context);
    let used = number_after(overlay, "overlay: ", context);
    let capacity = number_after(overlay, " of ", context);
    assert_eq!(capacity, (TEMPLATE_BYTES / chunk) as u64, "{context}");
    assert!(used > 0 && used <= capacity, "{overlay}\n{context}");
    assert!(
        overlay.contains(&format!(" chunks of {chunk} bytes used, disk fnv1a64=")),
        "{overlay}\n{context}"
    );
    assert_ne!(
        number_after(overlay, "disk fnv1a64=", context),
        sum,
        "the written disk reads as the template\n{context}"
    );
    assert!(
        overlay.ends_with(": differs from the template"),
        "{overlay}\n{context}"
    );
    let discard = line(&run, "blkback: discard: chunk ", context);
    assert!(
        discard.ends_with(&format!(
            ": {} chunks used, reads as the template again: ok",
            used - 1
        )),
        "{discard}\n{context}"
    );
    let reset = format!(
        "blkback: reset (VM gone): 0 chunks used, disk fnv1a64={sum:#018x}: the template again: ok"
    );
    assert!(run.lines().any(|l| l == reset), "no `{reset}`\n{context}");
    let after = format!("blkback: template: fnv1a64={sum:#018x} after: unchanged");
    assert!(run.lines().any(|l| l == after), "no `{after}`\n{context}");
    let private = line(&run, "blkback: private: ", context);
    let last = PRIVATE_BYTES / SECTOR - PRIVATE_SECTORS;
    assert!(
        private.contains(&format!(
            "wrote sectors 0+{PRIVATE_SECTORS} and {last}+{PRIVATE_SECTORS}, flushed, read back: ok; \
             write past the end refused ("
        )),
        "{private}\n{context}"
    );
    line(&run, "blkback: footprint: used ", context);
    assert!(run.lines().any(|l| l == "blkback: ok"), "{context}");
    assert_eq!(run.guest_exit_code(), Some(0), "{context}");

    // The files: the template byte for byte as before.
    let after = std::fs::read(&images.template).expect("read the template back");
    assert_eq!(fnv1a64(&after), sum, "template hash changed\n{context}");
    assert!(after == template, "the template image changed\n{context}");
    // The overlay device holds the chunks: slots are claimed in order, so
    // its first `used` chunks are written and the rest still zero.
    let overlay = std::fs::read(&images.overlay).expect("read the overlay back");
    let (slots, unused) = overlay.split_at(used as usize * chunk);
    assert!(
        slots.chunks(chunk).all(|c| c.iter().any(|&b| b != 0)),
        "an overlay slot below {used} was never written\n{context}"
    );
    assert!(
        unused.iter().all(|&b| b == 0),
        "the overlay image was written past its {used} used chunks\n{context}"
    );
    // The private volume: the guest's checksum is the file's, and only its
    // first and last sectors changed.
    let private_img = std::fs::read(&images.private).expect("read the private image back");
    assert_eq!(
        fnv1a64(&private_img),
        number_after(private, "fnv1a64=", context),
        "the private image is not what the guest read\n{context}"
    );
    let ends = PRIVATE_SECTORS * SECTOR;
    let (head, rest) = private_img.split_at(ends);
    let (middle, tail) = rest.split_at(rest.len() - ends);
    assert!(middle.iter().all(|&b| b == PRIVATE_FILL), "{context}");
    for (name, part) in [("first", head), ("last", tail)] {
        assert!(
            part.chunks(SECTOR)
                .all(|s| s.iter().any(|&b| b != PRIVATE_FILL)),
            "the private image's {name} {PRIVATE_SECTORS} sectors were not written\n{context}"
        );
    }
}

#[test]
fn blkback_cow_workload_seed_2a_4k_chunks() {
    self_check(0x2a, 3000, 4096);
}

#[test]
fn blkback_cow_workload_other_seed_64k_chunks() {
    self_check(0xc10_57e5_b10c, 2000, 64 * 1024);
}

#[test]
fn blkback_cow_workload_third_seed_1k_chunks() {
    self_check(0x5eed_0003, 3000, 1024);
}

#[test]
fn blkback_refuses_a_writable_template() {
    let template = pseudorandom(7, TEMPLATE_BYTES);
    let images = images("writable", &template);
    let (run, context) = boot(&images, "seed=7", false);
    let l = line(&run, "blkback: FAILED: ", &context);
    assert_eq!(
        l,
        "blkback: FAILED: the template device is writable: attach it read-only (QEMU: readonly=on)",
        "{context}"
    );
    assert_eq!(run.guest_exit_code(), Some(1), "{context}");
    assert!(
        std::fs::read(&images.template).expect("read the template back") == template,
        "the template image changed\n{context}"
    );
}
