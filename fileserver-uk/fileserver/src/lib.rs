//! The file server unikernel's logic, independent of the device under it:
//! a [`Client`] that drives a [`FileServer`] through request and response
//! frames (the path a remote client takes), and the [`self_check`] the
//! unikernel runs over it at boot. Generic over the block device, so the
//! host tests run both on an in-memory disk.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use block_device::BlockDevice;
use fileserver_engine::proto::{Op, RequestBuilder, HEADER_LEN, MAX_DATA};
use fileserver_engine::{fnv1a64, FileServer, FsError, FsStat, Kind, Response, Stat, FNV_OFFSET};

#[cfg(test)]
mod tests;

/// Why a call through the protocol failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The server answered with this status.
    Status(FsError),
    /// The response frame or body could not be decoded, or answered another
    /// request.
    BadResponse(&'static str),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Status(e) => write!(f, "{e}"),
            CallError::BadResponse(why) => write!(f, "bad response: {why}"),
        }
    }
}

/// A client of a [`FileServer`] in the same address space: every call
/// encodes a request frame, hands it to [`FileServer::handle`] and decodes
/// the response frame.
pub struct Client<'a, D: BlockDevice> {
    server: &'a mut FileServer<D>,
    next_id: u32,
}

impl<'a, D: BlockDevice> Client<'a, D> {
    /// A client of `server`.
    pub fn new(server: &'a mut FileServer<D>) -> Self {
        Client { server, next_id: 1 }
    }

    /// Sends the request `build` makes (given a builder for `op` with a
    /// fresh id) and returns the response body.
    fn call(
        &mut self,
        op: Op,
        build: impl FnOnce(RequestBuilder) -> RequestBuilder,
    ) -> Result<Vec<u8>, CallError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let mut answer = {
            let frame = build(RequestBuilder::new(op, id)).build();
            self.server.handle(&frame)
        };
        let r = Response::parse(&answer).map_err(|_| CallError::BadResponse("malformed frame"))?;
        if r.id != id {
            return Err(CallError::BadResponse("id of another request"));
        }
        r.status.map_err(CallError::Status)?;
        // The body, in place.
        answer.drain(..HEADER_LEN);
        Ok(answer)
    }

    /// Decodes a body with `f`, a decoding failure being a bad response.
    fn decode<T>(
        body: &[u8],
        f: impl FnOnce(&Response<'_>) -> Result<T, FsError>,
    ) -> Result<T, CallError> {
        let r = Response {
            id: 0,
            status: Ok(()),
            body,
        };
        f(&r).map_err(|_| CallError::BadResponse("malformed body"))
    }

    /// `LIST path start`: entries and whether more follow.
    pub fn list(
        &mut self,
        path: &str,
        start: u32,
    ) -> Result<(Vec<fileserver_engine::Entry>, bool), CallError> {
        let body = self.call(Op::List, |b| b.path(path).u32(start))?;
        Self::decode(&body, |r: &Response<'_>| r.list())
    }

    /// `STAT path`.
    pub fn stat(&mut self, path: &str) -> Result<Stat, CallError> {
        let body = self.call(Op::Stat, |b| b.path(path))?;
        Self::decode(&body, |r: &Response<'_>| r.stat())
    }

    /// `READ path offset length`: the bytes.
    pub fn read(&mut self, path: &str, offset: u64, length: u32) -> Result<Vec<u8>, CallError> {
        self.call(Op::Read, |b| b.path(path).u64(offset).u32(length))
    }

    /// `WRITE path offset data`: the file's new size.
    pub fn write(&mut self, path: &str, offset: u64, data: &[u8]) -> Result<u64, CallError> {
        let body = self.call(Op::Write, |b| b.path(path).u64(offset).bytes(data))?;
        Self::decode(&body, |r: &Response<'_>| r.new_size())
    }

    /// `CREATE path kind`.
    pub fn create(&mut self, path: &str, kind: Kind) -> Result<(), CallError> {
        self.call(Op::Create, |b| b.path(path).u8(kind as u8))
            .map(drop)
    }

    /// `DELETE path`.
    pub fn delete(&mut self, path: &str) -> Result<(), CallError> {
        self.call(Op::Delete, |b| b.path(path)).map(drop)
    }

    /// `STATFS`.
    pub fn statfs(&mut self) -> Result<FsStat, CallError> {
        let body = self.call(Op::StatFs, |b| b)?;
        Self::decode(&body, |r: &Response<'_>| r.statfs())
    }

    /// Reads all `size` bytes of file `path` in [`MAX_DATA`] chunks,
    /// passing each to `chunk`. A short file or a chunk past `size` fails.
    pub fn read_all(
        &mut self,
        path: &str,
        size: u64,
        mut chunk: impl FnMut(&[u8]),
    ) -> Result<(), Failure> {
        let mut off = 0u64;
        while off < size {
            let data = self
                .read(path, off, CHUNK)
                .map_err(|e| Failure::call(format!("READ {path} at {off}"), e))?;
            if data.is_empty() {
                return Err(Failure::new(format!(
                    "READ {path} at {off}: end of file, but its size is {size}"
                )));
            }
            off = off.saturating_add(data.len() as u64);
            if off > size {
                return Err(Failure::new(format!(
                    "READ {path}: more than its {size} bytes"
                )));
            }
            chunk(&data);
        }
        Ok(())
    }
}

/// Bytes one `READ` of the self-check asks for: the protocol's maximum.
pub const CHUNK: u32 = MAX_DATA as u32;

/// Most entries the walk visits before it gives up (a corrupt volume may
/// nest directories without end).
pub const MAX_WALK_ENTRIES: usize = 100_000;

/// The file the write check creates, in [`SCRATCH_DIR`].
pub const SCRATCH_FILE: &str = "/fileserver self-check/pattern written at boot.bin";
/// The directory the write check creates and removes.
pub const SCRATCH_DIR: &str = "/fileserver self-check";
/// Bytes the write check writes: three `WRITE`s, the last one partial.
pub const PATTERN_LEN: usize = 150_000;

/// Byte `i` of what the write check writes.
pub fn pattern_byte(i: usize) -> u8 {
    ((i as u32).wrapping_mul(2_654_435_761) >> 24) as u8
}

/// Why the self-check stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure(pub String);

impl Failure {
    fn new(why: String) -> Failure {
        Failure(why)
    }
    fn call(what: String, e: CallError) -> Failure {
        Failure(format!("{what}: {e}"))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the walk found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Directories listed, the root included.
    pub dirs: usize,
    /// Files read.
    pub files: usize,
    /// Bytes read.
    pub bytes: u64,
}

/// `path` as the self-check prints it: `/` for the root.
fn shown(path: &str) -> &str {
    if path.is_empty() {
        "/"
    } else {
        path
    }
}

/// Lists every directory and reads every file of the volume through the
/// protocol, depth-first in directory order, calling `out` with a line per
/// directory and per file (see the unikernel's documentation). A file's
/// `STAT` must agree with its `LIST` entry, and reading it must give exactly
/// its size.
pub fn walk<D: BlockDevice>(
    client: &mut Client<'_, D>,
    out: &mut dyn FnMut(&str),
) -> Result<Totals, Failure> {
    let mut totals = Totals::default();
    let mut stack: Vec<String> = alloc::vec![String::new()];
    let mut seen = 0usize;
    while let Some(dir) = stack.pop() {
        let mut entries = Vec::new();
        loop {
            let start = u32::try_from(entries.len())
                .map_err(|_| Failure::new(format!("LIST {}: too many entries", shown(&dir))))?;
            let (mut page, more) = client
                .list(&dir, start)
                .map_err(|e| Failure::call(format!("LIST {} from {start}", shown(&dir)), e))?;
            if more && page.is_empty() {
                return Err(Failure::new(format!(
                    "LIST {}: an empty page that says more follow",
                    shown(&dir)
                )));
            }
            seen = seen.saturating_add(page.len());
            entries.append(&mut page);
            if seen > MAX_WALK_ENTRIES {
                return Err(Failure::new(format!(
                    "over {MAX_WALK_ENTRIES} entries: the volume loops"
                )));
            }
            if !more {
                break;
            }
        }
        totals.dirs = totals.dirs.saturating_add(1);
        let files = entries.iter().filter(|e| e.kind == Kind::File).count();
        out(&format!(
            "fileserver: dir {} entries={} files={} dirs={}",
            shown(&dir),
            entries.len(),
            files,
            entries.len().saturating_sub(files)
        ));
        let mut subdirs = Vec::new();
        for e in entries {
            let path = format!("{dir}/{}", e.name);
            match e.kind {
                Kind::Dir => subdirs.push(path),
                Kind::File => {
                    let st = client
                        .stat(&path)
                        .map_err(|err| Failure::call(format!("STAT {path}"), err))?;
                    if st.kind != Kind::File || st.size != e.size {
                        return Err(Failure::new(format!(
                            "STAT {path} says {:?} of {} bytes, LIST said a file of {}",
                            st.kind, st.size, e.size
                        )));
                    }
                    let mut hash = FNV_OFFSET;
                    client.read_all(&path, e.size, |c| hash = fnv1a64(hash, c))?;
                    out(&format!(
                        "fileserver: file {path} size={} fnv1a64={hash:#018x}",
                        e.size
                    ));
                    totals.files = totals.files.saturating_add(1);
                    totals.bytes = totals.bytes.saturating_add(e.size);
                }
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(totals)
}

/// Expects `result` to be the protocol error `want`; prints it as refused.
fn expect_refusal<T>(
    what: &str,
    result: Result<T, CallError>,
    want: FsError,
    out: &mut dyn FnMut(&str),
) -> Result<(), Failure> {
    match result {
        Err(CallError::Status(e)) if e == want => {
            out(&format!("fileserver: refused: {what}: {e}"));
            Ok(())
        }
        Err(e) => Err(Failure::new(format!("{what}: {e}, expected: {want}"))),
        Ok(_) => Err(Failure::new(format!("{what}: accepted, expected: {want}"))),
    }
}

/// Creates [`SCRATCH_DIR`] and [`SCRATCH_FILE`] in it, writes
/// [`PATTERN_LEN`] bytes of [`pattern_byte`] and reads them back, checks
/// that bad requests get the protocol's errors, then deletes both and
/// checks they are gone.
pub fn write_check<D: BlockDevice>(
    client: &mut Client<'_, D>,
    out: &mut dyn FnMut(&str),
) -> Result<(), Failure> {
    let (dir, file) = (SCRATCH_DIR, SCRATCH_FILE);
    // A boot that stopped halfway through this check leaves them behind.
    for leftover in [file, dir] {
        if client.stat(leftover).is_ok() {
            client
                .delete(leftover)
                .map_err(|e| Failure::call(format!("DELETE {leftover} (left over)"), e))?;
            out(&format!("fileserver: write: removed {leftover}, left over"));
        }
    }
    client
        .create(dir, Kind::Dir)
        .map_err(|e| Failure::call(format!("CREATE {dir}"), e))?;
    client
        .create(file, Kind::File)
        .map_err(|e| Failure::call(format!("CREATE {file}"), e))?;
    let len = PATTERN_LEN as u64;
    let (mut wrote, mut writes, mut chunk) = (FNV_OFFSET, 0usize, Vec::with_capacity(MAX_DATA));
    let mut off = 0usize;
    while off < PATTERN_LEN {
        let end = off.saturating_add(MAX_DATA).min(PATTERN_LEN);
        chunk.clear();
        chunk.extend((off..end).map(pattern_byte));
        wrote = fnv1a64(wrote, &chunk);
        let size = client
            .write(file, off as u64, &chunk)
            .map_err(|e| Failure::call(format!("WRITE {file} at {off}"), e))?;
        if size != end as u64 {
            return Err(Failure::new(format!(
                "WRITE {file} at {off}: new size {size}, expected {end}"
            )));
        }
        writes = writes.saturating_add(1);
        off = end;
    }
    drop(chunk);
    let st = client
        .stat(file)
        .map_err(|e| Failure::call(format!("STAT {file}"), e))?;
    if st.kind != Kind::File || st.size != len {
        return Err(Failure::new(format!(
            "STAT {file} after writing: {:?} of {} bytes, expected a file of {len}",
            st.kind, st.size
        )));
    }
    let (listed, _) = client
        .list(dir, 0)
        .map_err(|e| Failure::call(format!("LIST {dir}"), e))?;
    let name = file.rsplit('/').next().unwrap_or(file);
    if !listed
        .iter()
        .any(|e| e.name == name && e.kind == Kind::File && e.size == len)
    {
        return Err(Failure::new(format!(
            "LIST {dir} does not show {name} with {len} bytes"
        )));
    }
    let (mut read, mut at, mut first_bad) = (FNV_OFFSET, 0usize, None);
    client.read_all(file, len, |c| {
        read = fnv1a64(read, c);
        if first_bad.is_none() {
            first_bad = c
                .iter()
                .zip(at..)
                .find(|&(&b, i)| b != pattern_byte(i))
                .map(|(_, i)| i);
        }
        at = at.saturating_add(c.len());
    })?;
    if let Some(i) = first_bad {
        return Err(Failure::new(format!(
            "{file}: read back fnv1a64={read:#018x}, wrote {wrote:#018x}: first difference at byte {i}"
        )));
    }
    out(&format!(
        "fileserver: write: {file} size={len} in {writes} writes, read back fnv1a64={read:#018x}: ok"
    ));

    // Requests the protocol must refuse.
    expect_refusal(
        "READ ../x",
        client.read("../x", 0, 16),
        FsError::InvalidPath,
        out,
    )?;
    expect_refusal(
        "READ a/../../b",
        client.read("a/../../b", 0, 16),
        FsError::InvalidPath,
        out,
    )?;
    expect_refusal(
        "CREATE ../escaped.txt",
        client.create("../escaped.txt", Kind::File),
        FsError::InvalidPath,
        out,
    )?;
    let over = CHUNK.saturating_add(1);
    expect_refusal(
        &format!("READ {file} of {over} bytes"),
        client.read(file, 0, over),
        FsError::TooLarge,
        out,
    )?;
    let past = len.saturating_add(1);
    expect_refusal(
        &format!("WRITE {file} at {past}, past its end"),
        client.write(file, past, b"x"),
        FsError::InvalidArgument,
        out,
    )?;
    expect_refusal(
        &format!("DELETE {dir}, not empty"),
        client.delete(dir),
        FsError::NotEmpty,
        out,
    )?;
    // Reading at the end of a file is not an error: it is an empty answer.
    for off in [len, len.saturating_add(4096)] {
        let got = client
            .read(file, off, 16)
            .map_err(|e| Failure::call(format!("READ {file} at {off}"), e))?;
        if !got.is_empty() {
            return Err(Failure::new(format!(
                "READ {file} at {off}, past its end: {} bytes",
                got.len()
            )));
        }
        out(&format!(
            "fileserver: past end: READ {file} at {off}: 0 bytes (end of file)"
        ));
    }

    client
        .delete(file)
        .map_err(|e| Failure::call(format!("DELETE {file}"), e))?;
    client
        .delete(dir)
        .map_err(|e| Failure::call(format!("DELETE {dir}"), e))?;
    for gone in [file, dir] {
        match client.stat(gone) {
            Err(CallError::Status(FsError::NotFound)) => {}
            Err(e) => return Err(Failure::call(format!("STAT {gone} after DELETE"), e)),
            Ok(_) => return Err(Failure::new(format!("{gone} still exists after DELETE"))),
        }
    }
    out(&format!(
        "fileserver: delete: {file} and {dir} deleted, STAT says: {}",
        FsError::NotFound
    ));
    Ok(())
}

/// The whole self-check: the volume's `STATFS`, [`walk`], then (unless the
/// server is read-only) [`write_check`].
pub fn self_check<D: BlockDevice>(
    server: &mut FileServer<D>,
    out: &mut dyn FnMut(&str),
) -> Result<Totals, Failure> {
    let read_only = server.config().read_only;
    let mut client = Client::new(server);
    let fs = client
        .statfs()
        .map_err(|e| Failure::call(String::from("STATFS"), e))?;
    out(&format!(
        "fileserver: volume: FAT{}, {} clusters of {} bytes, {} free",
        fs.fat_bits, fs.total_clusters, fs.cluster_size, fs.free_clusters
    ));
    let totals = walk(&mut client, out)?;
    out(&format!(
        "fileserver: walked {} directories, {} files, {} bytes",
        totals.dirs, totals.files, totals.bytes
    ));
    if read_only {
        out("fileserver: write: skipped, the disk is read-only");
    } else {
        write_check(&mut client, out)?;
    }
    Ok(totals)
}
