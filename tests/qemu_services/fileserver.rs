//! The `fileserver` unikernel under QEMU, on FAT volumes the test builds
//! with dosfstools and mtools (`mkfs.fat`, `mmd`, `mcopy`): long names with
//! spaces, folders four deep, an empty folder, a 3 MiB file of seeded
//! pseudorandom bytes, files at the 64 KiB `READ` boundary, small and empty
//! files. The guest walks the volume through the request protocol; every
//! file must appear with the size and FNV-1a-64 the host computes, nothing
//! else, every directory with its counts; its write round trip must read
//! back the pattern, the bad requests must get the protocol's errors, and
//! afterwards `fsck.fat` must find the volume clean with the host's files
//! unchanged and the scratch files gone. On FAT16 and FAT32.
//!
//! Two corrupt volumes, a zeroed boot sector and a file whose cluster chain
//! loops, must each end in `fileserver: FAILED: …` and exit 1: no panic,
//! exception, triple fault or hang.
//!
//! RAM: [`RAM_MIB`] = 3 MiB, the smallest that works. The guest uses
//! about 940 KiB (image 356 KiB with its 64 KiB stack, heap high-water
//! 580 KiB); with 2 MiB its heap is only 524 KiB.

use crate::{pseudorandom, Scratch};
use cloister::build::fnv1a64;
use cloister::qemu::{self, QemuConfig, QemuRun};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// The fileserver ELF, built by build.rs.
const ELF: &str = env!("CLOISTER_GUEST_FILESERVER");
/// Guest RAM.
const RAM_MIB: u32 = 3;
/// How long a run may take under TCG (a run takes seconds).
const TIMEOUT: Duration = Duration::from_secs(120);
/// Seed of the big file's bytes (printed on failure through the context).
const SEED: u64 = 0x6669_6c65_7365_7276;

/// What the guest's write check writes: `fileserver::SCRATCH_*`,
/// `fileserver::PATTERN_LEN` and `fileserver::pattern_byte`, restated here
/// as the host's independent expectation.
const SCRATCH_DIR: &str = "/fileserver self-check";
const SCRATCH_FILE: &str = "/fileserver self-check/pattern written at boot.bin";
const PATTERN_LEN: usize = 150_000;
fn pattern_byte(i: usize) -> u8 {
    ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8
}

/// A dosfstools or mtools command: found in `PATH`, else in the sbin
/// directories (`mkfs.fat` is in /usr/sbin, often not in a user's `PATH`).
fn tool(name: &str) -> Command {
    let package = if name.ends_with(".fat") {
        "dosfstools"
    } else {
        "mtools"
    };
    let found = cloister::iso::which(name).or_else(|| {
        ["/usr/sbin", "/sbin"]
            .iter()
            .map(|d| Path::new(d).join(name))
            .find(|p| p.is_file())
    });
    let Some(path) = found else {
        panic!(
            "{name} is not installed: install the Debian package {package} \
             (apt-get install {package}; ./setup.sh does)"
        )
    };
    let mut cmd = Command::new(path);
    // mtools refuses images whose geometry it finds odd unless told not to.
    cmd.env("MTOOLS_SKIP_CHECK", "1");
    cmd
}

fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

fn run(cmd: &mut Command) {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The volume's contents: directories (root excluded) and files, by path.
struct Tree {
    dirs: Vec<&'static str>,
    files: Vec<(&'static str, Vec<u8>)>,
}

fn tree() -> Tree {
    let text = |s: &str| s.as_bytes().to_vec();
    Tree {
        dirs: vec![
            "/Projects",
            "/Projects/Level Two",
            "/Projects/Level Two/Third level folder",
            "/Projects/Level Two/Third level folder/Fourth",
            "/Empty folder",
        ],
        files: vec![
            (
                "/A rather long file name with spaces.txt",
                text("A file whose name needs long-name entries.\n"),
            ),
            ("/README", text("cloister file server test volume\n")),
            ("/notes.txt", text("lower-case 8.3 name\n")),
            ("/Projects/empty.txt", Vec::new()),
            (
                "/Projects/Level Two/big random.bin",
                pseudorandom(SEED, 3 << 20),
            ),
            (
                "/Projects/Level Two/exactly one read.bin",
                pseudorandom(SEED ^ 1, 64 << 10),
            ),
            (
                "/Projects/Level Two/one read and one byte.bin",
                pseudorandom(SEED ^ 2, (64 << 10) + 1),
            ),
            (
                "/Projects/Level Two/Third level folder/Fourth/deep file.md",
                text("# four folders down\n"),
            ),
        ],
    }
}

impl Tree {
    /// The `dir` lines the guest must print, root included.
    fn dir_lines(&self) -> BTreeSet<String> {
        let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        counts.insert("/", (0, 0));
        for d in &self.dirs {
            counts.insert(d, (0, 0));
        }
        let parent = |p: &'static str| match p.rfind('/') {
            Some(0) | None => "/",
            Some(i) => &p[..i],
        };
        for d in &self.dirs {
            counts.get_mut(parent(d)).expect("parent listed").1 += 1;
        }
        for (f, _) in &self.files {
            counts.get_mut(parent(f)).expect("parent listed").0 += 1;
        }
        counts
            .into_iter()
            .map(|(d, (files, dirs))| {
                format!(
                    "fileserver: dir {d} entries={} files={files} dirs={dirs}",
                    files + dirs
                )
            })
            .collect()
    }

    /// The `file` lines the guest must print.
    fn file_lines(&self) -> BTreeSet<String> {
        self.files
            .iter()
            .map(|(p, data)| {
                format!(
                    "fileserver: file {p} size={} fnv1a64={:#018x}",
                    data.len(),
                    fnv1a64(data)
                )
            })
            .collect()
    }

    fn bytes(&self) -> usize {
        self.files.iter().map(|(_, d)| d.len()).sum()
    }
}

/// Makes a FAT image at `img` of `kib` KiB with `mkfs_args` and fills it
/// with `tree` through mtools.
fn build_image(scratch: &Path, img: &Path, kib: u32, mkfs_args: &[&str], tree: &Tree) {
    run(tool("mkfs.fat")
        .args(mkfs_args)
        .args(["-C", "-n", "CLOISTER"])
        .arg(img)
        .arg(kib.to_string()));
    for d in &tree.dirs {
        run(tool("mmd").arg("-i").arg(img).arg(format!("::{d}")));
    }
    let host = scratch.join("host-file");
    for (path, data) in &tree.files {
        std::fs::write(&host, data).expect("write a host file");
        run(tool("mcopy")
            .arg("-i")
            .arg(img)
            .arg(&host)
            .arg(format!("::{path}")));
    }
    let _ = std::fs::remove_file(&host);
}

/// Boots the guest on `img`.
fn boot(img: &Path) -> QemuRun {
    let config = QemuConfig {
        machine: "q35".into(),
        mem_mib: RAM_MIB,
        extra: vec![
            "-nic".into(),
            "none".into(),
            "-drive".into(),
            format!("file={},if=none,format=raw,id=d0", img.display()),
            "-device".into(),
            "virtio-blk-pci,drive=d0".into(),
        ],
    };
    qemu::spawn_or_panic(Path::new(ELF), "", &config).finish(TIMEOUT)
}

fn context(run: &QemuRun) -> String {
    format!("big file seed {SEED:#x}: {}", run.context())
}

/// The whole self-check on a volume made by `mkfs.fat <mkfs_args>`.
fn serves_volume(name: &str, kib: u32, mkfs_args: &[&str], fat_bits: u8) {
    let scratch = Scratch::new(&format!("fileserver-{name}"));
    let img = scratch.0.join("volume.img");
    let tree = tree();
    build_image(&scratch.0, &img, kib, mkfs_args, &tree);
    let run = boot(&img);
    let context = context(&run);
    let lines: Vec<&str> = run.lines().collect();
    let has = |want: &str| lines.contains(&want);

    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("fileserver: virtio-blk at 00:")
                && l.ends_with(&format!(": {} sectors ({} MiB)", kib * 2, kib / 1024))),
        "no virtio-blk line for the {kib} KiB disk\n{context}"
    );
    let volume = format!("fileserver: volume: FAT{fat_bits}, ");
    assert!(
        lines.iter().any(|l| l.starts_with(&volume)),
        "no `{volume}…`\n{context}"
    );

    // Every file with its size and checksum, nothing else; every directory.
    let files: BTreeSet<String> = lines
        .iter()
        .filter(|l| l.starts_with("fileserver: file "))
        .map(|l| l.to_string())
        .collect();
    let want_files = tree.file_lines();
    assert_eq!(
        files,
        want_files,
        "file lines differ: missing {:?}, extra {:?}\n{context}",
        want_files.difference(&files).collect::<Vec<_>>(),
        files.difference(&want_files).collect::<Vec<_>>()
    );
    let dirs: BTreeSet<String> = lines
        .iter()
        .filter(|l| l.starts_with("fileserver: dir "))
        .map(|l| l.to_string())
        .collect();
    assert_eq!(dirs, tree.dir_lines(), "directory lines\n{context}");
    let walked = format!(
        "fileserver: walked {} directories, {} files, {} bytes",
        tree.dirs.len() + 1,
        tree.files.len(),
        tree.bytes()
    );
    assert!(has(&walked), "no `{walked}`\n{context}");

    // The write round trip, the refusals, the deletion.
    let pattern: Vec<u8> = (0..PATTERN_LEN).map(pattern_byte).collect();
    let wrote = format!(
        "fileserver: write: {SCRATCH_FILE} size={PATTERN_LEN} in 3 writes, \
         read back fnv1a64={:#018x}: ok",
        fnv1a64(&pattern)
    );
    let end = PATTERN_LEN;
    for want in [
        wrote,
        "fileserver: refused: READ ../x: invalid path".into(),
        "fileserver: refused: READ a/../../b: invalid path".into(),
        "fileserver: refused: CREATE ../escaped.txt: invalid path".into(),
        format!("fileserver: refused: READ {SCRATCH_FILE} of 65537 bytes: too large"),
        format!(
            "fileserver: refused: WRITE {SCRATCH_FILE} at {}, past its end: invalid argument",
            end + 1
        ),
        format!("fileserver: refused: DELETE {SCRATCH_DIR}, not empty: directory not empty"),
        format!("fileserver: past end: READ {SCRATCH_FILE} at {end}: 0 bytes (end of file)"),
        format!(
            "fileserver: delete: {SCRATCH_FILE} and {SCRATCH_DIR} deleted, \
             STAT says: no such file or directory"
        ),
        "fileserver: unmounted".into(),
        "fileserver: ok".into(),
    ] {
        assert!(has(&want), "no `{want}`\n{context}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("fileserver: footprint: used ")),
        "no footprint\n{context}"
    );
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("FAILED") || l.contains("panic")),
        "{context}"
    );
    assert_eq!(run.guest_exit_code(), Some(0), "{context}");

    // The volume afterwards: clean, the host's files intact, no scratch.
    let fsck = output(tool("fsck.fat").arg("-n").arg(&img));
    let report =
        String::from_utf8_lossy(&fsck.stdout).into_owned() + &String::from_utf8_lossy(&fsck.stderr);
    assert!(
        fsck.status.success() && !report.contains("Dirty bit"),
        "fsck.fat -n after the guest's writes:\n{report}\n{context}"
    );
    let back = scratch.0.join("back");
    for (path, data) in &tree.files {
        let _ = std::fs::remove_file(&back);
        run_copy_out(&img, path, &back);
        let got = std::fs::read(&back).expect("read a file copied out");
        assert!(got == *data, "{path} changed on the volume\n{context}");
    }
    let gone = output(
        tool("mdir")
            .arg("-i")
            .arg(&img)
            .arg(format!("::{SCRATCH_DIR}")),
    );
    assert!(
        !gone.status.success(),
        "{SCRATCH_DIR} is still on the volume: {}",
        String::from_utf8_lossy(&gone.stdout)
    );
}

fn run_copy_out(img: &Path, path: &str, to: &Path) {
    run(tool("mcopy")
        .arg("-n")
        .arg("-i")
        .arg(img)
        .arg(format!("::{path}"))
        .arg(to));
}

#[test]
fn fileserver_serves_a_fat16_volume() {
    serves_volume("fat16", 16 << 10, &["-F", "16"], 16);
}

#[test]
fn fileserver_serves_a_fat32_volume() {
    // FAT32 needs at least 65525 clusters: one sector each on 40 MiB.
    serves_volume("fat32", 40 << 10, &["-F", "32", "-s", "1"], 32);
}

/// A corrupt volume: the guest must say why and exit 1.
fn fails_cleanly(run: &QemuRun, reason: &str) {
    let context = context(run);
    let failed = format!("fileserver: FAILED: {reason}");
    assert!(run.lines().any(|l| l == failed), "no `{failed}`\n{context}");
    assert!(!run.lines().any(|l| l == "fileserver: ok"), "{context}");
    assert!(!run.timed_out, "the guest hung\n{context}");
    // 1, not 127 (panic), 126 (exception), or no code (triple fault).
    assert_eq!(run.guest_exit_code(), Some(1), "{context}");
}

#[test]
fn fileserver_rejects_a_zeroed_boot_sector() {
    let scratch = Scratch::new("fileserver-zeroed");
    let img = scratch.0.join("volume.img");
    let tree = Tree {
        dirs: vec!["/d"],
        files: vec![("/d/f.txt", b"some data\n".to_vec())],
    };
    build_image(&scratch.0, &img, 4 << 10, &[], &tree);
    let mut bytes = std::fs::read(&img).expect("read the image");
    bytes[..512].fill(0);
    std::fs::write(&img, &bytes).expect("write the image");
    fails_cleanly(&boot(&img), "mount: corrupt volume");
}

/// FAT16 boot sector fields: (bytes per sector, sectors per cluster,
/// first FAT's byte offset, FAT bytes, FAT count, root directory offset).
fn fat16_layout(b: &[u8]) -> (usize, usize, usize, usize, usize, usize) {
    let u16_at = |o: usize| usize::from(u16::from_le_bytes([b[o], b[o + 1]]));
    let bps = u16_at(11);
    let spc = usize::from(b[13]);
    let reserved = u16_at(14);
    let fats = usize::from(b[16]);
    let fat_sectors = u16_at(22);
    let fat = reserved * bps;
    let root = (reserved + fats * fat_sectors) * bps;
    (bps, spc, fat, fat_sectors * bps, fats, root)
}

#[test]
fn fileserver_reports_a_looping_cluster_chain() {
    let scratch = Scratch::new("fileserver-loop");
    let img = scratch.0.join("volume.img");
    // One sector per cluster: the 8 KiB file spans 16 clusters.
    let tree = Tree {
        dirs: vec![],
        files: vec![
            ("/GOOD.TXT", b"intact\n".to_vec()),
            ("/LOOP.BIN", pseudorandom(SEED, 8 << 10)),
        ],
    };
    build_image(&scratch.0, &img, 8 << 10, &["-F", "16", "-s", "1"], &tree);
    let mut b = std::fs::read(&img).expect("read the image");
    let (bps, spc, fat, fat_len, fats, root) = fat16_layout(&b);
    assert_eq!((bps, spc), (512, 1), "mkfs.fat's layout");
    let entry = (0..512)
        .map(|i| root + 32 * i)
        .find(|&e| &b[e..e + 11] == b"LOOP    BIN")
        .expect("LOOP.BIN's directory entry");
    let first = u16::from_le_bytes([b[entry + 26], b[entry + 27]]);
    // Follow the chain two links, then point the third cluster back at
    // the first, in every FAT copy.
    let next = |b: &[u8], c: u16| {
        let at = fat + 2 * usize::from(c);
        u16::from_le_bytes([b[at], b[at + 1]])
    };
    let third = next(&b, next(&b, first));
    assert!((2..0xfff0).contains(&third), "LOOP.BIN has 16 clusters");
    for copy in 0..fats {
        let at = fat + copy * fat_len + 2 * usize::from(third);
        b[at..at + 2].copy_from_slice(&first.to_le_bytes());
    }
    std::fs::write(&img, &b).expect("write the image");
    let run = boot(&img);
    let good = format!(
        "fileserver: file /GOOD.TXT size=7 fnv1a64={:#018x}",
        fnv1a64(b"intact\n")
    );
    assert!(
        run.lines().any(|l| l == good),
        "no `{good}`\n{}",
        context(&run)
    );
    fails_cleanly(&run, "READ /LOOP.BIN at 0: corrupt volume");
}
