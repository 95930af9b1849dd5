//! Fuzzes the file server (`fileserver_engine`): its request parser on raw
//! bytes, and `FileServer::handle` on up to 32 requests against a small FAT
//! volume (made once with `fileserver_engine::format` and filled with a few
//! files and folders), optionally corrupted first by up to 32 byte writes in
//! its first 64 KiB (boot sector, FATs, root directory). Requests are raw
//! frames or built from a dictionary of good and hostile paths (`..`,
//! absolute escapes, NUL, backslashes, empty components).
//!
//! Invariants:
//! * No panics, no hangs (each request has an I/O budget of 20 000 calls).
//! * `parse_request` never panics; every response parses, echoes the
//!   request id when the header was readable, and has an empty body on
//!   errors.
//! * A request whose path `path::split` rejects never succeeds.
//! * A successful `READ` returns at most the length asked and at most
//!   `MAX_DATA` bytes; on the uncorrupted volume, before any write, it
//!   returns exactly the bytes the file was filled with.
#![no_main]

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use block_device::{BlockDevice, MemDisk, RangeError, ReadBlocks};
use fileserver_engine::proto::{self, Op, RequestBuilder, Response, MAX_DATA};
use fileserver_engine::{path, Config, FileServer, Kind};
use libfuzzer_sys::fuzz_target;

const PATHS: [&str; 16] = [
    "",
    "/",
    "hello.txt",
    "/dir",
    "dir/inner",
    "dir/inner/data.bin",
    "DIR/INNER/DATA.BIN",
    "../hello.txt",
    "/dir/../../x",
    "dir/./inner",
    "dir//inner",
    "hello.txt\0",
    "new",
    "dir/new file with a long name.txt",
    "C:\\x",
    "dir/inner/",
];

fn content(len: usize) -> Vec<u8> {
    (0..len).map(|x| (x * 7 + len) as u8).collect()
}

/// A disk the fuzzer keeps a handle to after the server takes it.
#[derive(Clone)]
struct Shared(Rc<RefCell<MemDisk>>);

impl ReadBlocks for Shared {
    type Error = RangeError;
    fn sector_count(&self) -> u64 {
        self.0.borrow().sector_count()
    }
    fn read_sectors(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), RangeError> {
        self.0.borrow_mut().read_sectors(lba, buf)
    }
}

impl BlockDevice for Shared {
    fn write_sectors(&mut self, lba: u64, buf: &[u8]) -> Result<(), RangeError> {
        self.0.borrow_mut().write_sectors(lba, buf)
    }
}

fn image() -> &'static [u8] {
    static IMG: OnceLock<Vec<u8>> = OnceLock::new();
    IMG.get_or_init(|| {
        let disk = fileserver_engine::format(MemDisk::zeroed(1024), *b"FUZZ       ").unwrap();
        let shared = Shared(Rc::new(RefCell::new(disk)));
        let mut s = FileServer::mount(shared.clone(), Config::default()).unwrap();
        s.create("hello.txt", Kind::File).unwrap();
        s.write("hello.txt", 0, &content(100)).unwrap();
        s.create("dir", Kind::Dir).unwrap();
        s.create("dir/inner", Kind::Dir).unwrap();
        s.create("dir/inner/data.bin", Kind::File).unwrap();
        s.write("dir/inner/data.bin", 0, &content(20_000)).unwrap();
        s.unmount().unwrap();
        let bytes = shared.0.borrow().as_bytes().to_vec();
        bytes
    })
}

#[derive(Arbitrary, Debug)]
enum Frame {
    Raw(Vec<u8>),
    Built {
        op: u8,
        id: u32,
        path: u8,
        a: u64,
        b: u32,
        data: Vec<u8>,
    },
}

fn path_of(frame: &[u8]) -> Option<String> {
    let body = frame.get(proto::HEADER_LEN..)?;
    let n = usize::from(u16::from_le_bytes([*body.first()?, *body.get(1)?]));
    Some(String::from_utf8_lossy(body.get(2..2 + n)?).into_owned())
}

fuzz_target!(|input: (Vec<(u16, u8)>, Vec<Frame>)| {
    let (flips, frames) = input;
    let mut bytes = image().to_vec();
    let pristine = flips.is_empty();
    for (off, v) in flips.iter().take(32) {
        let off = usize::from(*off) % bytes.len();
        bytes[off] = *v;
    }
    let config = Config {
        io_budget: 20_000,
        ..Config::default()
    };
    let Ok(mut s) = FileServer::mount(MemDisk::from_bytes(bytes), config) else {
        assert!(!pristine, "the pristine volume must mount");
        return;
    };
    let mut written = false;
    for f in frames.iter().take(32) {
        let frame = match f {
            Frame::Raw(b) => b.clone(),
            Frame::Built {
                op,
                id,
                path,
                a,
                b,
                data,
            } => {
                let p = PATHS[usize::from(*path) % PATHS.len()];
                let op = match Op::from_code(op % 9) {
                    Some(op) => op,
                    None => Op::StatFs,
                };
                let r = RequestBuilder::new(op, *id);
                match op {
                    Op::List => r.path(p).u32(*b % 4),
                    Op::Stat | Op::Delete => r.path(p),
                    Op::Read => r.path(p).u64(*a % 30_000).u32(*b % (MAX_DATA as u32 + 2)),
                    Op::Write => r
                        .path(p)
                        .u64(*a % 30_000)
                        .bytes(&data[..data.len().min(4096)]),
                    Op::Create => r.path(p).u8((*b % 3) as u8),
                    Op::Truncate => r.path(p).u64(*a % 30_000),
                    Op::StatFs => r,
                }
                .build()
            }
        };
        let parsed = proto::parse_request(&frame);
        let resp = s.handle(&frame);
        let r = Response::parse(&resp).expect("well-formed response");
        if let Ok(h) = proto::Header::parse(&frame) {
            assert_eq!(r.id, h.id);
        }
        if r.status.is_err() {
            assert!(r.body.is_empty());
        }
        let Ok((_, req)) = parsed else {
            assert!(r.status.is_err(), "a malformed request succeeded");
            continue;
        };
        if r.status.is_ok() {
            if let Some(p) = path_of(&frame) {
                if !matches!(req, proto::Request::StatFs) {
                    assert!(path::split(&p).is_ok(), "{p:?} accepted");
                }
            }
        }
        match req {
            proto::Request::Read {
                path: p,
                offset,
                length,
            } if r.status.is_ok() => {
                assert!(r.body.len() <= length as usize && r.body.len() <= MAX_DATA);
                if pristine && !written {
                    let want = match path::split(p).unwrap().as_slice() {
                        ["hello.txt"] => Some(content(100)),
                        [d, i, f]
                            if d.eq_ignore_ascii_case("dir")
                                && i.eq_ignore_ascii_case("inner")
                                && f.eq_ignore_ascii_case("data.bin") =>
                        {
                            Some(content(20_000))
                        }
                        _ => None,
                    };
                    if let Some(w) = want {
                        let start = (offset as usize).min(w.len());
                        let end = (start + length as usize).min(w.len());
                        assert_eq!(r.body, &w[start..end], "wrong bytes for {p}");
                    }
                }
            }
            proto::Request::Write { .. }
            | proto::Request::Create { .. }
            | proto::Request::Delete { .. }
            | proto::Request::Truncate { .. } => written = true,
            _ => {}
        }
    }
});
