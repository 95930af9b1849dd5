//! Host tests of the self-check on an in-memory volume the engine formats.

use std::string::{String, ToString};
use std::vec::Vec;

use block_device::{BlockDevice, MemDisk};
use fileserver_engine::{format, Config, FileServer};

use super::*;

/// A fresh 4 MiB volume holding `files` (directories made as needed).
fn volume(files: &[(&str, Vec<u8>)]) -> MemDisk {
    let mut disk = format(MemDisk::zeroed(8192), *b"SELFCHECK  ").unwrap();
    let mut fs = FileServer::mount(&mut disk, Config::default()).unwrap();
    for (path, data) in files {
        let mut at = String::new();
        let comps: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        for dir in &comps[..comps.len() - 1] {
            at = format!("{at}/{dir}");
            let _ = fs.create(&at, Kind::Dir);
        }
        fs.create(path, Kind::File).unwrap();
        for (i, c) in data.chunks(MAX_DATA).enumerate() {
            fs.write(path, (i * MAX_DATA) as u64, c).unwrap();
        }
    }
    fs.unmount().unwrap();
    disk
}

fn mount(disk: &mut MemDisk, read_only: bool) -> FileServer<&mut MemDisk> {
    let config = Config {
        read_only,
        ..Config::default()
    };
    FileServer::mount(disk, config).unwrap()
}

fn run<D: BlockDevice>(fs: &mut FileServer<D>) -> (Result<Totals, Failure>, Vec<String>) {
    let mut lines = Vec::new();
    let r = self_check(fs, &mut |l| lines.push(l.to_string()));
    (r, lines)
}

fn sum(data: &[u8]) -> u64 {
    fnv1a64(FNV_OFFSET, data)
}

#[test]
fn walks_reads_writes_and_refuses() {
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 300) as u8).collect();
    let files = [
        ("/top.txt", b"top level".to_vec()),
        ("/a/b/c/deep file with a long name.txt", b"deep".to_vec()),
        ("/a/big.bin", big),
        ("/a/empty", Vec::new()),
    ];
    let mut disk = volume(&files);
    let mut fs = mount(&mut disk, false);
    let (r, lines) = run(&mut fs);
    let text = lines.join("\n");
    let totals = r.unwrap_or_else(|f| panic!("{f}\n{text}"));
    assert_eq!(
        totals,
        Totals {
            dirs: 4,
            files: 4,
            bytes: 200_013
        }
    );
    let file_lines: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("fileserver: file "))
        .collect();
    assert_eq!(file_lines.len(), files.len(), "{text}");
    for (path, data) in &files {
        let want = format!(
            "fileserver: file {path} size={} fnv1a64={:#018x}",
            data.len(),
            sum(data)
        );
        assert!(lines.contains(&want), "no `{want}`\n{text}");
    }
    for want in [
        "fileserver: dir / entries=2 files=1 dirs=1",
        "fileserver: dir /a entries=3 files=2 dirs=1",
        "fileserver: dir /a/b entries=1 files=0 dirs=1",
        "fileserver: dir /a/b/c entries=1 files=1 dirs=0",
        "fileserver: refused: READ ../x: invalid path",
        "fileserver: refused: READ a/../../b: invalid path",
        "fileserver: refused: CREATE ../escaped.txt: invalid path",
    ] {
        assert!(lines.iter().any(|l| l == want), "no `{want}`\n{text}");
    }
    let pattern: Vec<u8> = (0..PATTERN_LEN).map(pattern_byte).collect();
    let want = format!(
        "fileserver: write: {SCRATCH_FILE} size={PATTERN_LEN} in 3 writes, read back fnv1a64={:#018x}: ok",
        sum(&pattern)
    );
    assert!(lines.contains(&want), "no `{want}`\n{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("of 65537 bytes: too large")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("past its end: invalid argument")),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("not empty: directory not empty")),
        "{text}"
    );
    // The scratch directory is gone and the volume is as before.
    let (root, _) = fs.list("/", 0).unwrap();
    let names: Vec<&str> = root.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["top.txt", "a"]);
    let (again, _) = run(&mut fs);
    assert_eq!(again, Ok(totals));
}

#[test]
fn a_read_only_server_skips_the_write_check() {
    let mut disk = volume(&[("/f", b"x".to_vec())]);
    let before = disk.clone();
    let mut ro = mount(&mut disk, true);
    let (r, lines) = run(&mut ro);
    assert!(r.is_ok(), "{lines:?}");
    assert!(lines.contains(&"fileserver: write: skipped, the disk is read-only".to_string()));
    drop(ro);
    assert!(disk == before, "a read-only self-check changed the disk");
}

#[test]
fn a_file_shorter_than_its_entry_fails_the_walk() {
    // A client reading a file must get exactly its size: `read_all`
    // refuses an empty answer before the end.
    let mut disk = volume(&[("/f", b"0123456789".to_vec())]);
    let mut fs = mount(&mut disk, false);
    let mut client = Client::new(&mut fs);
    let r = client.read_all("/f", 20, |_| {});
    assert_eq!(
        r,
        Err(Failure(
            "READ /f at 10: end of file, but its size is 20".to_string()
        ))
    );
    let r = client.read_all("/f", 5, |_| {});
    assert_eq!(
        r,
        Err(Failure("READ /f: more than its 5 bytes".to_string()))
    );
    let r = client.read_all("/missing", 1, |_| {});
    assert_eq!(
        r,
        Err(Failure(
            "READ /missing at 0: no such file or directory".to_string()
        ))
    );
}

#[test]
fn a_leftover_scratch_file_is_removed_but_not_a_user_s_directory() {
    let mut disk = volume(&[("/t.txt", b"t".to_vec())]);
    {
        let mut fs = mount(&mut disk, false);
        fs.create(SCRATCH_DIR, Kind::Dir).unwrap();
        fs.create(SCRATCH_FILE, Kind::File).unwrap();
        fs.write(SCRATCH_FILE, 0, b"half").unwrap();
        let (r, lines) = run(&mut fs);
        assert!(r.is_ok(), "{r:?} {lines:?}");
        for gone in [SCRATCH_FILE, SCRATCH_DIR] {
            let want = format!("fileserver: write: removed {gone}, left over");
            assert!(lines.contains(&want), "no `{want}` in {lines:?}");
            assert_eq!(fs.stat(gone), Err(FsError::NotFound));
        }
        fs.unmount().unwrap();
    }
    let mut disk = volume(&[("/fileserver self-check/mine.txt", b"x".to_vec())]);
    let mut fs = mount(&mut disk, false);
    let (r, _) = run(&mut fs);
    assert_eq!(
        r,
        Err(Failure(format!(
            "DELETE {SCRATCH_DIR} (left over): directory not empty"
        )))
    );
    assert!(fs.stat("/fileserver self-check/mine.txt").is_ok());
}
