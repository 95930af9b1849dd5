//! Host tests: FAT images made with dosfstools and mtools (the same tools
//! the QEMU test uses), valid, adversarial and corrupt.

extern crate std;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use block_device::{BlockDevice, MemDisk, ReadBlocks};
use proptest::prelude::*;

use crate::proto::{self, Op, RequestBuilder, Response, MAX_DATA};
use crate::{Config, FileServer, FsError, Kind};

// ------------------------------------------------------------- fixtures ----

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn scratch(name: &str) -> PathBuf {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(alloc::format!(
        "cloister-fileserver-{}-{n}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(cmd: &mut Command) {
    let out = cmd
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (run ./setup.sh for dosfstools and mtools)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mkfs(img: &Path, kib: u32, fat: u8) {
    run(Command::new("mkfs.fat")
        .arg("-C")
        .arg("-F")
        .arg(fat.to_string())
        .arg("-n")
        .arg("CLOISTER")
        .arg(img)
        .arg(kib.to_string()));
}

fn mmd(img: &Path, dir: &str) {
    run(Command::new("mmd")
        .arg("-i")
        .arg(img)
        .arg(alloc::format!("::{dir}")));
}

fn mcopy(img: &Path, host: &Path, dest: &str) {
    run(Command::new("mcopy")
        .arg("-i")
        .arg(img)
        .arg(host)
        .arg(alloc::format!("::{dest}")));
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

const BIG_LEN: usize = 3 * 1024 * 1024 + 12345;

/// The files of the standard fixture: (path, contents).
fn fixture_files() -> Vec<(&'static str, Vec<u8>)> {
    alloc::vec![
        (
            "/A Long File Name, with spaces.txt",
            b"long names work\n".to_vec()
        ),
        ("/README.TXT", b"short name\n".to_vec()),
        ("/EMPTY.TXT", Vec::new()),
        ("/naïve résumé.txt", "unicode ✓\n".as_bytes().to_vec()),
        ("/images/vmlinuz-6.1.0-cloister", pattern(200_000, 1)),
        ("/images/big/multi-megabyte.bin", pattern(BIG_LEN, 2)),
        (
            "/nested/level one/level two/level three/deep file.dat",
            pattern(5000, 3)
        ),
        ("/nested/level one/sibling.txt", b"sibling\n".to_vec()),
    ]
}

/// A FAT image (FAT16 or FAT32) holding the fixture, made with mkfs.fat
/// and mcopy.
fn fixture_image(fat: u8) -> Vec<u8> {
    let dir = scratch("fixture");
    let img = dir.join("vol.img");
    mkfs(&img, if fat == 32 { 40 * 1024 } else { 16 * 1024 }, fat);
    for d in [
        "/images",
        "/images/big",
        "/nested",
        "/nested/level one",
        "/nested/level one/level two",
        "/nested/level one/level two/level three",
    ] {
        mmd(&img, d);
    }
    for (i, (p, data)) in fixture_files().into_iter().enumerate() {
        let host = dir.join(alloc::format!("f{i}"));
        std::fs::write(&host, &data).unwrap();
        mcopy(&img, &host, p);
    }
    let bytes = std::fs::read(&img).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

fn fixture_bytes() -> &'static [u8] {
    static IMG: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    IMG.get_or_init(|| fixture_image(16))
}

fn server(bytes: &[u8]) -> FileServer<MemDisk> {
    FileServer::mount(MemDisk::from_bytes(bytes.to_vec()), Config::default()).expect("mount")
}

fn read_all<D: BlockDevice>(s: &mut FileServer<D>, p: &str) -> Result<Vec<u8>, FsError> {
    let mut out = Vec::new();
    loop {
        let chunk = s.read(p, out.len() as u64, MAX_DATA as u32)?;
        if chunk.is_empty() {
            return Ok(out);
        }
        out.extend_from_slice(&chunk);
    }
}

fn names(s: &mut FileServer<MemDisk>, p: &str) -> Vec<String> {
    let (entries, more) = s.list(p, 0).unwrap();
    assert!(!more);
    let mut v: Vec<String> = entries.into_iter().map(|e| e.name).collect();
    v.sort();
    v
}

// -------------------------------------------------------- valid images ----

#[test]
fn serves_the_fixture_on_fat16_and_fat32() {
    for fat in [16, 32] {
        let img = if fat == 16 {
            fixture_bytes().to_vec()
        } else {
            fixture_image(32)
        };
        let mut s = server(&img);
        assert_eq!(s.statfs().unwrap().fat_bits, fat);
        assert_eq!(
            names(&mut s, "/"),
            [
                "A Long File Name, with spaces.txt",
                "EMPTY.TXT",
                "README.TXT",
                "images",
                "naïve résumé.txt",
                "nested"
            ]
        );
        assert_eq!(
            names(&mut s, "nested/level one"),
            ["level two", "sibling.txt"]
        );
        for (p, data) in fixture_files() {
            assert_eq!(read_all(&mut s, p).unwrap(), data, "{p} on FAT{fat}");
            let st = s.stat(p).unwrap();
            assert_eq!((st.kind, st.size), (Kind::File, data.len() as u64));
            assert!(st.modified.0 >= 1980);
        }
        let (entries, _) = s.list("/images/big", 0).unwrap();
        assert_eq!(entries[0].size, BIG_LEN as u64);
        assert_eq!(s.stat("/").unwrap().kind, Kind::Dir);
        assert_eq!(s.stat("nested/level one").unwrap().kind, Kind::Dir);
    }
}

#[test]
fn format_makes_a_volume_fsck_accepts() {
    let disk = crate::format(MemDisk::zeroed(8192), *b"FRESH      ").unwrap();
    let disk = SharedDisk::new(disk.into_bytes());
    let mut s = FileServer::mount(disk.clone(), Config::default()).unwrap();
    assert!(s.list("/", 0).unwrap().0.is_empty());
    s.create("hello.txt", Kind::File).unwrap();
    s.write("hello.txt", 0, b"hi").unwrap();
    s.unmount().unwrap();
    assert!(disk.writes() > 0);
    let dir = scratch("format");
    let img = dir.join("vol.img");
    std::fs::write(&img, disk.bytes()).unwrap();
    let fsck = Command::new("fsck.fat")
        .arg("-n")
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "{}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn walk_lists_and_checksums_everything() {
    let mut s = server(fixture_bytes());
    let mut seen = Vec::new();
    s.walk(10_000, |p, kind, size, sum| {
        seen.push((p.to_string(), kind, size, sum))
    })
    .unwrap();
    for (p, data) in fixture_files() {
        let e = seen
            .iter()
            .find(|e| e.0 == p)
            .unwrap_or_else(|| panic!("{p} not walked"));
        assert_eq!((e.1, e.2), (Kind::File, data.len() as u64));
        assert_eq!(e.3, crate::fnv1a64(crate::FNV_OFFSET, &data), "{p}");
    }
    assert!(seen
        .iter()
        .any(|e| e.0 == "/nested/level one/level two" && e.1 == Kind::Dir));
    assert_eq!(seen.len(), fixture_files().len() + 6);
    assert_eq!(s.walk(3, |_, _, _, _| {}), Err(FsError::TooLarge));
}

#[test]
fn names_match_case_insensitively_and_by_short_name() {
    let mut s = server(fixture_bytes());
    assert_eq!(read_all(&mut s, "readme.txt").unwrap(), b"short name\n");
    assert_eq!(
        read_all(&mut s, "/a long file name, WITH SPACES.TXT").unwrap(),
        b"long names work\n"
    );
    assert_eq!(
        read_all(&mut s, "/NAÏVE RÉSUMÉ.TXT").unwrap(),
        "unicode ✓\n".as_bytes()
    );
    // The 8.3 alias mtools gave the long name.
    let (entries, _) = s.list("/", 0).unwrap();
    assert!(entries.iter().all(|e| e.name != "ALONGF~1.TXT"));
    assert_eq!(
        read_all(&mut s, "ALONGF~1.TXT").unwrap(),
        b"long names work\n"
    );
}

#[test]
fn read_ranges_and_limits() {
    let mut s = server(fixture_bytes());
    let big = pattern(BIG_LEN, 2);
    let p = "/images/big/multi-megabyte.bin";
    assert_eq!(s.read(p, 0, 10).unwrap(), &big[..10]);
    assert_eq!(
        s.read(p, 1_000_000, 65536).unwrap(),
        &big[1_000_000..1_065_536]
    );
    // Short at the end, empty past it.
    let tail = s.read(p, BIG_LEN as u64 - 5, 100).unwrap();
    assert_eq!(tail, &big[BIG_LEN - 5..]);
    assert!(s.read(p, BIG_LEN as u64, 100).unwrap().is_empty());
    assert!(s.read(p, u64::MAX, 100).unwrap().is_empty());
    assert!(s.read(p, 0, 0).unwrap().is_empty());
    // Oversize reads are refused, not truncated.
    assert_eq!(s.read(p, 0, MAX_DATA as u32 + 1), Err(FsError::TooLarge));
    assert_eq!(s.read(p, 0, u32::MAX), Err(FsError::TooLarge));
    assert!(s.read("/EMPTY.TXT", 0, 10).unwrap().is_empty());
}

#[test]
fn path_traversal_and_bad_paths_are_rejected() {
    let mut s = server(fixture_bytes());
    let long_name = "x".repeat(256);
    let long_path = "/a".repeat(600);
    let bad = [
        "..",
        "/..",
        "../README.TXT",
        "/images/../README.TXT",
        "/images/..",
        "nested/level one/../../README.TXT",
        "./README.TXT",
        "/images/.",
        "images//big",
        "images/",
        "//README.TXT",
        "README.TXT\0",
        "READ\0ME.TXT",
        "\\README.TXT",
        "images\\big",
        "C:README.TXT",
        "READ*.TXT",
        "README.TXT?",
        "a\u{1}b",
        "a\u{7f}b",
        "README.TXT.",
        "README.TXT ",
        long_name.as_str(),
        long_path.as_str(),
    ];
    for p in bad {
        assert_eq!(s.read(p, 0, 10), Err(FsError::InvalidPath), "read {p:?}");
        assert_eq!(s.stat(p), Err(FsError::InvalidPath), "stat {p:?}");
        assert_eq!(
            s.list(p, 0).map(|_| ()),
            Err(FsError::InvalidPath),
            "list {p:?}"
        );
        assert_eq!(
            s.create(p, Kind::File),
            Err(FsError::InvalidPath),
            "create {p:?}"
        );
        assert_eq!(s.delete(p), Err(FsError::InvalidPath), "delete {p:?}");
        assert_eq!(
            s.write(p, 0, b"x"),
            Err(FsError::InvalidPath),
            "write {p:?}"
        );
    }
    // 255 UTF-16 units is the limit, not 255 bytes.
    let ok = "é".repeat(255);
    assert_eq!(s.stat(&ok), Err(FsError::NotFound));
    assert_eq!(s.stat(&"é".repeat(256)), Err(FsError::InvalidPath));
}

#[test]
fn errors_name_the_problem() {
    let mut s = server(fixture_bytes());
    assert_eq!(s.read("missing", 0, 1), Err(FsError::NotFound));
    assert_eq!(s.read("missing/dir/file", 0, 1), Err(FsError::NotFound));
    assert_eq!(
        s.list("README.TXT", 0).map(|_| ()),
        Err(FsError::NotADirectory)
    );
    assert_eq!(s.read("README.TXT/x", 0, 1), Err(FsError::NotADirectory));
    assert_eq!(s.read("images", 0, 1), Err(FsError::IsADirectory));
    assert_eq!(s.read("/", 0, 1), Err(FsError::IsADirectory));
    assert_eq!(s.write("images", 0, b"x"), Err(FsError::IsADirectory));
    assert_eq!(
        s.create("README.TXT", Kind::File),
        Err(FsError::AlreadyExists)
    );
    assert_eq!(
        s.create("readme.txt", Kind::Dir),
        Err(FsError::AlreadyExists)
    );
    assert_eq!(s.create("/", Kind::Dir), Err(FsError::AlreadyExists));
    assert_eq!(s.delete("images"), Err(FsError::NotEmpty));
    assert_eq!(s.delete("/"), Err(FsError::InvalidPath));
    assert_eq!(
        s.write("README.TXT", 100, b"x"),
        Err(FsError::InvalidArgument)
    );
    assert_eq!(s.truncate("README.TXT", 100), Err(FsError::InvalidArgument));
    assert_eq!(
        s.write("README.TXT", 0, &[0; MAX_DATA + 1]),
        Err(FsError::TooLarge)
    );
    assert_eq!(s.create("missing/new", Kind::File), Err(FsError::NotFound));
}

#[test]
fn write_create_delete_truncate_then_fsck_and_mtools_agree() {
    let disk = SharedDisk::new(fixture_bytes().to_vec());
    let mut s = FileServer::mount(disk.clone(), Config::default()).unwrap();
    s.create("/new dir", Kind::Dir).unwrap();
    s.create("/new dir/inner", Kind::Dir).unwrap();
    s.create("/new dir/inner/Written By Cloister.bin", Kind::File)
        .unwrap();
    let data = pattern(300_000, 9);
    let p = "/new dir/inner/Written By Cloister.bin";
    for (i, chunk) in data.chunks(MAX_DATA).enumerate() {
        let size = s.write(p, (i * MAX_DATA) as u64, chunk).unwrap();
        assert_eq!(size, (i * MAX_DATA + chunk.len()) as u64);
    }
    assert_eq!(read_all(&mut s, p).unwrap(), data);
    // Overwrite in the middle.
    s.write(p, 1000, b"OVERWRITE").unwrap();
    let mut want = data.clone();
    want[1000..1009].copy_from_slice(b"OVERWRITE");
    assert_eq!(read_all(&mut s, p).unwrap(), want);
    s.truncate(p, 70_000).unwrap();
    want.truncate(70_000);
    assert_eq!(read_all(&mut s, p).unwrap(), want);
    assert_eq!(s.stat(p).unwrap().size, 70_000);
    // Delete a file and an (emptied) directory.
    s.delete("/README.TXT").unwrap();
    assert_eq!(s.stat("/README.TXT"), Err(FsError::NotFound));
    s.create("/gone", Kind::Dir).unwrap();
    s.delete("/gone").unwrap();
    let free_before = s.statfs().unwrap().free_clusters;
    s.delete("/images/big/multi-megabyte.bin").unwrap();
    assert!(s.statfs().unwrap().free_clusters > free_before);
    // Hand the volume to dosfstools and mtools.
    s.unmount().unwrap();
    let dir = scratch("written");
    let img = dir.join("vol.img");
    std::fs::write(&img, disk.bytes()).unwrap();
    let fsck = Command::new("fsck.fat")
        .arg("-n")
        .arg(&img)
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "fsck.fat: {}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    let out = dir.join("out.bin");
    run(Command::new("mcopy")
        .arg("-i")
        .arg(&img)
        .arg("::/new dir/inner/Written By Cloister.bin")
        .arg(&out));
    assert_eq!(std::fs::read(&out).unwrap(), want);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn list_pages_through_a_big_directory() {
    // 400 names of 200 characters (mcopy'd in one go) need more than one
    // 64 KiB page.
    let dir = scratch("many");
    let src = dir.join("many");
    std::fs::create_dir(&src).unwrap();
    let n = 400;
    for i in 0..n {
        let name = alloc::format!("file number {i:05} {}.txt", "with a long name ".repeat(11));
        std::fs::write(src.join(name), b"").unwrap();
    }
    let img = dir.join("vol.img");
    mkfs(&img, 16 * 1024, 16);
    run(Command::new("mcopy")
        .arg("-s")
        .arg("-i")
        .arg(&img)
        .arg(&src)
        .arg("::/"));
    let mut s = server(&std::fs::read(&img).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    let mut got = Vec::new();
    let mut pages = 0;
    loop {
        let (entries, more) = s.list("many", got.len() as u32).unwrap();
        pages += 1;
        got.extend(entries.into_iter().map(|e| e.name));
        if !more {
            break;
        }
    }
    assert!(pages > 1, "{n} long names need several pages");
    assert_eq!(got.len(), n);
    got.sort();
    got.dedup();
    assert_eq!(got.len(), n);
    // Lookups by name still work in a big directory.
    let last = alloc::format!(
        "many/FILE NUMBER 00399 {}.TXT",
        "WITH A LONG NAME ".repeat(11)
    );
    assert_eq!(s.stat(&last).unwrap().size, 0);
}

#[test]
fn read_only_server_never_writes() {
    let disk = SharedDisk::new(fixture_bytes().to_vec());
    let mut s = FileServer::mount(
        disk.clone(),
        Config {
            read_only: true,
            ..Config::default()
        },
    )
    .unwrap();
    assert_eq!(s.write("README.TXT", 0, b"x"), Err(FsError::ReadOnly));
    assert_eq!(s.create("x", Kind::File), Err(FsError::ReadOnly));
    assert_eq!(s.delete("README.TXT"), Err(FsError::ReadOnly));
    assert_eq!(s.truncate("README.TXT", 0), Err(FsError::ReadOnly));
    assert_eq!(read_all(&mut s, "README.TXT").unwrap(), b"short name\n");
    drop(s);
    assert_eq!(disk.writes(), 0);
    assert_eq!(disk.bytes(), fixture_bytes());
}

// ------------------------------------------------------------ protocol ----

#[test]
fn protocol_round_trips() {
    let mut s = server(fixture_bytes());
    let f = RequestBuilder::new(Op::Read, 77)
        .path("/README.TXT")
        .u64(6)
        .u32(4)
        .build();
    let r = s.handle(&f);
    let resp = Response::parse(&r).unwrap();
    assert_eq!(
        (resp.id, resp.status, resp.body),
        (77, Ok(()), &b"name"[..])
    );
    let r = s.handle(&RequestBuilder::new(Op::List, 1).path("").u32(0).build());
    let (entries, more) = Response::parse(&r).unwrap().list().unwrap();
    assert!(!more);
    assert_eq!(entries.len(), 6);
    let r = s.handle(
        &RequestBuilder::new(Op::Stat, 2)
            .path("images/big/multi-megabyte.bin")
            .build(),
    );
    let st = Response::parse(&r).unwrap().stat().unwrap();
    assert_eq!(st.size, BIG_LEN as u64);
    let r = s.handle(
        &RequestBuilder::new(Op::Create, 3)
            .path("n.txt")
            .u8(1)
            .build(),
    );
    assert_eq!(Response::parse(&r).unwrap().status, Ok(()));
    let r = s.handle(
        &RequestBuilder::new(Op::Write, 4)
            .path("n.txt")
            .u64(0)
            .bytes(b"hello")
            .build(),
    );
    assert_eq!(Response::parse(&r).unwrap().new_size(), Ok(5));
    let r = s.handle(
        &RequestBuilder::new(Op::Truncate, 5)
            .path("n.txt")
            .u64(2)
            .build(),
    );
    assert_eq!(Response::parse(&r).unwrap().status, Ok(()));
    let r = s.handle(
        &RequestBuilder::new(Op::Read, 6)
            .path("n.txt")
            .u64(0)
            .u32(10)
            .build(),
    );
    assert_eq!(Response::parse(&r).unwrap().body, b"he");
    let r = s.handle(&RequestBuilder::new(Op::Delete, 7).path("n.txt").build());
    assert_eq!(Response::parse(&r).unwrap().status, Ok(()));
    let r = s.handle(&RequestBuilder::new(Op::StatFs, 8).build());
    assert_eq!(Response::parse(&r).unwrap().statfs().unwrap().fat_bits, 16);
    let r = s.handle(
        &RequestBuilder::new(Op::Read, 9)
            .path("../x")
            .u64(0)
            .u32(1)
            .build(),
    );
    let resp = Response::parse(&r).unwrap();
    assert_eq!((resp.id, resp.status), (9, Err(FsError::InvalidPath)));
    assert!(resp.body.is_empty());
}

#[test]
fn malformed_frames() {
    let mut s = server(fixture_bytes());
    let status =
        |s: &mut FileServer<MemDisk>, f: &[u8]| Response::parse(&s.handle(f)).unwrap().status;
    assert_eq!(status(&mut s, &[1, 2, 3]), Err(FsError::Malformed));
    let good = RequestBuilder::new(Op::Stat, 1).path("README.TXT").build();
    assert_eq!(status(&mut s, &good), Ok(()));
    // Reserved bytes must be zero.
    let mut f = good.clone();
    f[10] = 1;
    assert_eq!(status(&mut s, &f), Err(FsError::Malformed));
    // Length mismatch, both ways.
    let mut f = good.clone();
    f.push(0);
    assert_eq!(status(&mut s, &f), Err(FsError::Malformed));
    assert_eq!(
        status(&mut s, &good[..good.len() - 1]),
        Err(FsError::Malformed)
    );
    // Trailing bytes inside the body.
    let f = RequestBuilder::new(Op::Stat, 1)
        .path("README.TXT")
        .u8(0)
        .build();
    assert_eq!(status(&mut s, &f), Err(FsError::Malformed));
    // A path length past the body.
    let f = RequestBuilder::new(Op::Stat, 1)
        .bytes(&[200, 0, b'a'])
        .build();
    assert_eq!(status(&mut s, &f), Err(FsError::Malformed));
    // Not UTF-8.
    let f = RequestBuilder::new(Op::Stat, 1)
        .bytes(&[2, 0, 0xff, 0xfe])
        .build();
    assert_eq!(status(&mut s, &f), Err(FsError::InvalidPath));
    // Unknown operation, unknown kind.
    let mut f = good.clone();
    f[8] = 99;
    assert_eq!(status(&mut s, &f), Err(FsError::Unsupported));
    let f = RequestBuilder::new(Op::Create, 1).path("k").u8(3).build();
    assert_eq!(status(&mut s, &f), Err(FsError::InvalidArgument));
    // An announced body over the limit.
    let h = proto::Header {
        len: u32::MAX,
        id: 5,
        code: 3,
    };
    let frame = s.handle(&h.to_bytes());
    let r = Response::parse(&frame).unwrap();
    assert_eq!((r.id, r.status), (5, Err(FsError::Malformed)));
    assert_eq!(proto::request_frame_len(&h), Err(FsError::Malformed));
    // A write body over 64 KiB.
    let f = RequestBuilder::new(Op::Write, 1)
        .path("README.TXT")
        .u64(0)
        .bytes(&[0; MAX_DATA + 1])
        .build();
    assert_eq!(status(&mut s, &f), Err(FsError::TooLarge));
}

// ------------------------------------------------------- corrupt images ----

/// BPB fields of a FAT16 image.
struct Bpb {
    bps: usize,
    spc: usize,
    fat_start: usize,
    root_start: usize,
    data_start: usize,
}

fn bpb(img: &[u8]) -> Bpb {
    let u16at = |o: usize| usize::from(u16::from_le_bytes([img[o], img[o + 1]]));
    let bps = u16at(11);
    let spc = usize::from(img[13]);
    let reserved = u16at(14);
    let fats = usize::from(img[16]);
    let root_entries = u16at(17);
    let fat_sz = u16at(22);
    let fat_start = reserved * bps;
    let root_start = fat_start + fats * fat_sz * bps;
    let data_start = root_start + root_entries * 32;
    Bpb {
        bps,
        spc,
        fat_start,
        root_start,
        data_start,
    }
}

/// First cluster of the root-directory entry whose 8.3 name is `name11`.
fn root_entry_cluster(img: &[u8], b: &Bpb, name11: &[u8; 11]) -> (usize, usize) {
    for off in (b.root_start..b.data_start).step_by(32) {
        if &img[off..off + 11] == name11 {
            let c = usize::from(u16::from_le_bytes([img[off + 26], img[off + 27]]));
            return (off, c);
        }
    }
    panic!("no entry {:?}", String::from_utf8_lossy(name11));
}

fn set_fat16(img: &mut [u8], b: &Bpb, cluster: usize, value: u16) {
    // Both FAT copies.
    let fat_bytes = b.root_start - b.fat_start;
    let per = fat_bytes / 2;
    for copy in 0..2 {
        let o = b.fat_start + copy * per + cluster * 2;
        img[o..o + 2].copy_from_slice(&value.to_le_bytes());
    }
}

fn small_image(files: &[(&str, Vec<u8>)], dirs: &[&str]) -> Vec<u8> {
    let dir = scratch("small");
    let img = dir.join("vol.img");
    run(Command::new("mkfs.fat")
        .args(["-C", "-F", "16", "-s", "1", "-n", "SMALL"])
        .arg(&img)
        .arg("4096"));
    for d in dirs {
        mmd(&img, d);
    }
    for (i, (p, data)) in files.iter().enumerate() {
        let host = dir.join(alloc::format!("f{i}"));
        std::fs::write(&host, data).unwrap();
        mcopy(&img, &host, p);
    }
    let bytes = std::fs::read(&img).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    bytes
}

/// Runs `f` and checks it finished quickly (no hang).
fn quickly<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "{what} took {:?}",
        t.elapsed()
    );
    r
}

#[test]
fn cyclic_file_chain_is_corrupt_not_a_loop_or_wrong_data() {
    let data = pattern(40_000, 5);
    let mut img = small_image(
        &[
            ("/CYCLE.BIN", data.clone()),
            ("/OTHER.BIN", pattern(9000, 6)),
        ],
        &[],
    );
    let b = bpb(&img);
    let (_, c) = root_entry_cluster(&img, &b, b"CYCLE   BIN");
    // Second cluster points back to the first.
    set_fat16(&mut img, &b, c + 1, c as u16);
    let mut s = server(&img);
    assert_eq!(
        quickly("read", || s.read("CYCLE.BIN", 0, 100)),
        Err(FsError::Corrupt)
    );
    assert_eq!(
        quickly("read tail", || s.read("CYCLE.BIN", 39_000, 1000)),
        Err(FsError::Corrupt)
    );
    assert_eq!(
        quickly("write", || s.write("CYCLE.BIN", 0, b"x")),
        Err(FsError::Corrupt)
    );
    // The other file is still fine.
    assert_eq!(read_all(&mut s, "OTHER.BIN").unwrap(), pattern(9000, 6));
    // A self-loop on the first cluster, too.
    let mut img2 = small_image(&[("/CYCLE.BIN", data)], &[]);
    let b = bpb(&img2);
    let (_, c) = root_entry_cluster(&img2, &b, b"CYCLE   BIN");
    set_fat16(&mut img2, &b, c, c as u16);
    let mut s = server(&img2);
    assert_eq!(
        quickly("self loop", || s.read("CYCLE.BIN", 0, 100)),
        Err(FsError::Corrupt)
    );
}

#[test]
fn short_chain_and_out_of_volume_clusters_are_corrupt() {
    let data = pattern(40_000, 5);
    let mut img = small_image(&[("/SHORT.BIN", data.clone()), ("/FAR.BIN", data)], &[]);
    let b = bpb(&img);
    let (_, c) = root_entry_cluster(&img, &b, b"SHORT   BIN");
    set_fat16(&mut img, &b, c, 0xffff); // ends after one cluster
    let (_, far) = root_entry_cluster(&img, &b, b"FAR     BIN");
    set_fat16(&mut img, &b, far, 0xfff0); // a cluster past the volume
    let mut s = server(&img);
    assert_eq!(s.read("SHORT.BIN", 0, 100), Err(FsError::Corrupt));
    assert!(s.read("FAR.BIN", 0, 100).is_err());
    assert!(s.read("FAR.BIN", 30_000, 100).is_err());
}

#[test]
fn cyclic_directory_chain_is_bounded() {
    let mut img = small_image(&[("/LOOP/A.TXT", b"a".to_vec())], &["/LOOP"]);
    let b = bpb(&img);
    let (_, c) = root_entry_cluster(&img, &b, b"LOOP       ");
    set_fat16(&mut img, &b, c, c as u16);
    // Mark every slot after '.', '..' and A.TXT as deleted, so nothing
    // ends the scan but the loop.
    let start = b.data_start + (c - 2) * b.spc * b.bps;
    for off in (start + 3 * 32..start + b.spc * b.bps).step_by(32) {
        img[off] = 0xe5;
    }
    for budget in [1 << 22, 10_000] {
        let mut s = FileServer::mount(
            MemDisk::from_bytes(img.clone()),
            Config {
                io_budget: budget,
                ..Config::default()
            },
        )
        .unwrap();
        let l = quickly("list", || s.list("LOOP", 0));
        assert_eq!(
            l.as_ref().map(|_| ()),
            Err(&FsError::Corrupt),
            "{:?} c={c} spc={} bps={}",
            l.as_ref().map(|(v, m)| (v.len(), *m, v.first().cloned())),
            b.spc,
            b.bps
        );
        assert_eq!(
            quickly("lookup", || s.read("LOOP/B.TXT", 0, 1)),
            Err(FsError::Corrupt)
        );
        let r = quickly("create", || s.create("LOOP/NEW.TXT", Kind::File));
        assert!(r.is_err(), "{r:?}");
        // Entries before the loop are still reachable.
        assert_eq!(
            quickly("hit", || s.read("LOOP/A.TXT", 0, 1)),
            Ok(b"a".to_vec())
        );
    }
}

#[test]
fn garbage_and_truncated_volumes() {
    // Not a FAT volume at all.
    for img in [Vec::new(), alloc::vec![0u8; 4096], pattern(1 << 20, 7)] {
        assert!(FileServer::mount(MemDisk::from_bytes(img), Config::default()).is_err());
    }
    // A valid image cut short: mount may work, then reads fail cleanly.
    let full = fixture_bytes();
    for cut in [512, 4096, 65536, 1 << 20, full.len() / 2] {
        if let Ok(mut s) =
            FileServer::mount(MemDisk::from_bytes(full[..cut].to_vec()), Config::default())
        {
            let _ = s.list("/", 0);
            let _ = s.list("images/big", 0);
            // Either the true bytes (still inside the cut) or an error.
            let r = s.read("/images/big/multi-megabyte.bin", 3_000_000, 1000);
            if let Ok(got) = r {
                assert_eq!(
                    got,
                    &pattern(BIG_LEN, 2)[3_000_000..3_001_000],
                    "cut at {cut}"
                );
            }
        }
    }
    // Garbage over the FAT.
    let mut img = full.to_vec();
    let b = bpb(&img);
    let garbage = pattern(b.root_start - b.fat_start, 11);
    img[b.fat_start..b.root_start].copy_from_slice(&garbage);
    let mut s = server(&img);
    quickly("walk garbage FAT", || {
        for (p, _) in fixture_files() {
            let _ = s.read(p, 0, 1000);
            let _ = s.read(p, 150_000, 1000);
        }
        let _ = s.list("images/big", 0);
        let _ = s.create("/images/new.bin", Kind::File);
        let _ = s.write("/images/new.bin", 0, &[1; 5000]);
        let _ = s.statfs();
    });
}

std::thread_local! {
    static SERVER: std::cell::RefCell<Option<FileServer<MemDisk>>> = const { std::cell::RefCell::new(None) };
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random reads of the multi-megabyte file match the bytes mcopy put
    /// there.
    #[test]
    fn random_ranges_match(offset in 0u64..(BIG_LEN as u64 + 100), len in 0u32..=(MAX_DATA as u32)) {
        static BIG: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let big = BIG.get_or_init(|| pattern(BIG_LEN, 2));
        let got = SERVER.with(|cell| {
            let mut guard = cell.borrow_mut();
            let s = guard.get_or_insert_with(|| server(fixture_bytes()));
            s.read("/images/big/multi-megabyte.bin", offset, len).unwrap()
        });
        let start = (offset as usize).min(BIG_LEN);
        let end = (start + len as usize).min(BIG_LEN);
        prop_assert_eq!(&got[..], &big[start..end]);
    }

    /// Random corruption anywhere in a small volume: every operation ends,
    /// with a result or an error, never a panic.
    #[test]
    fn corrupted_volumes_never_panic_or_hang(
        flips in proptest::collection::vec((0usize..(2048 * 1024), any::<u8>()), 1..64),
    ) {
        static BASE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let base = BASE.get_or_init(|| small_image(
            &[("/dir/Long Name File.txt", pattern(30_000, 1)), ("/B.BIN", pattern(3000, 2))],
            &["/dir"],
        ));
        let mut img = base.clone();
        // Most flips land in the metadata at the front.
        for (off, v) in flips {
            let off = if off % 4 == 0 { off % img.len() } else { off % 65536 };
            img[off] = v;
        }
        let cfg = Config { io_budget: 50_000, ..Config::default() };
        if let Ok(mut s) = FileServer::mount(MemDisk::from_bytes(img), cfg) {
            let _ = s.list("/", 0);
            let _ = s.list("dir", 0);
            let _ = s.stat("dir/Long Name File.txt");
            let _ = s.read("dir/Long Name File.txt", 0, 65536);
            let _ = s.read("B.BIN", 0, 4000);
            let _ = s.create("dir/new", Kind::File);
            let _ = s.write("dir/new", 0, &[7; 3000]);
            let _ = s.delete("B.BIN");
            let _ = s.statfs();
        }
    }

    /// Arbitrary frames get one well-formed response.
    #[test]
    fn arbitrary_frames_get_a_response(op in 0u8..10, body in proptest::collection::vec(any::<u8>(), 0..80)) {
        let mut frame = proto::Header { len: body.len() as u32, id: 42, code: op }.to_bytes().to_vec();
        frame.extend_from_slice(&body);
        let r = SERVER.with(|cell| {
            let mut guard = cell.borrow_mut();
            guard.get_or_insert_with(|| server(fixture_bytes())).handle(&frame)
        });
        let resp = Response::parse(&r).unwrap();
        prop_assert_eq!(resp.id, 42);
        if resp.status.is_err() {
            prop_assert!(resp.body.is_empty());
        }
    }
}

// ------------------------------------------------------ shared device ----

/// A device whose bytes the test keeps access to, counting writes.
#[derive(Clone)]
struct SharedDisk(std::rc::Rc<std::cell::RefCell<(MemDisk, usize)>>);

impl SharedDisk {
    fn new(bytes: Vec<u8>) -> SharedDisk {
        SharedDisk(std::rc::Rc::new(std::cell::RefCell::new((
            MemDisk::from_bytes(bytes),
            0,
        ))))
    }
    fn writes(&self) -> usize {
        self.0.borrow().1
    }
    fn bytes(&self) -> Vec<u8> {
        self.0.borrow().0.as_bytes().to_vec()
    }
}

impl ReadBlocks for SharedDisk {
    type Error = block_device::RangeError;
    fn sector_count(&self) -> u64 {
        self.0.borrow().0.sector_count()
    }
    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        self.0.borrow_mut().0.read_sectors(lba, buf)
    }
}

impl BlockDevice for SharedDisk {
    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<(), Self::Error> {
        let mut d = self.0.borrow_mut();
        d.1 += 1;
        d.0.write_sectors(lba, buf)
    }
}
