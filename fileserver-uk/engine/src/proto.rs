//! The request protocol: framing, requests, responses, status codes.
//! The layout is documented in the crate root.
#![deny(clippy::arithmetic_side_effects)]

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Bytes in a request or response header.
pub const HEADER_LEN: usize = 12;
/// Longest path, in bytes.
pub const MAX_PATH: usize = 1024;
/// Most data one `READ` returns or one `WRITE` carries.
pub const MAX_DATA: usize = 64 * 1024;
/// Longest request body: a `WRITE` of [`MAX_DATA`] bytes to a
/// [`MAX_PATH`]-byte path.
pub const MAX_REQUEST_BODY: usize = 2 + MAX_PATH + 8 + MAX_DATA;
/// Longest response body.
pub const MAX_RESPONSE_BODY: usize = MAX_DATA;

/// Operation codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// List a directory.
    List = 1,
    /// Describe a file or directory.
    Stat = 2,
    /// Read a byte range of a file.
    Read = 3,
    /// Write a byte range of a file.
    Write = 4,
    /// Create a file or directory.
    Create = 5,
    /// Delete a file or an empty directory.
    Delete = 6,
    /// Shorten a file.
    Truncate = 7,
    /// Describe the volume.
    StatFs = 8,
}

impl Op {
    /// The operation with code `c`.
    pub fn from_code(c: u8) -> Option<Op> {
        Some(match c {
            1 => Op::List,
            2 => Op::Stat,
            3 => Op::Read,
            4 => Op::Write,
            5 => Op::Create,
            6 => Op::Delete,
            7 => Op::Truncate,
            8 => Op::StatFs,
            _ => return None,
        })
    }
}

/// Whether an entry is a file or a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A regular file.
    File = 1,
    /// A directory.
    Dir = 2,
}

impl Kind {
    fn from_code(c: u8) -> Option<Kind> {
        match c {
            1 => Some(Kind::File),
            2 => Some(Kind::Dir),
            _ => None,
        }
    }
}

/// Every way a request can fail; the `u8` is the response status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FsError {
    /// No such file or directory.
    NotFound = 1,
    /// The name is taken.
    AlreadyExists = 2,
    /// A path component (or a `LIST` target) is a file.
    NotADirectory = 3,
    /// A file operation named a directory.
    IsADirectory = 4,
    /// `DELETE` of a directory that has entries.
    NotEmpty = 5,
    /// The path is malformed or tries to leave the volume: `..`, `.`, empty
    /// components, NUL or control characters, characters FAT forbids,
    /// names over 255 UTF-16 units, over [`MAX_PATH`] bytes.
    InvalidPath = 6,
    /// A read or write over [`MAX_DATA`] bytes, or past 4 GiB.
    TooLarge = 7,
    /// The volume is full.
    NoSpace = 8,
    /// The volume's structures are inconsistent (bad boot sector, cyclic or
    /// broken cluster chains, runaway directories, I/O budget exhausted).
    Corrupt = 9,
    /// The block device failed.
    Io = 10,
    /// The request is not well-formed.
    Malformed = 11,
    /// Unknown operation code.
    Unsupported = 12,
    /// The server was started read-only.
    ReadOnly = 13,
    /// A field is out of range (a write starting past the end of the file,
    /// a truncation that would grow the file, an unknown kind).
    InvalidArgument = 14,
}

impl FsError {
    /// Every error.
    pub const ALL: [FsError; 14] = [
        FsError::NotFound,
        FsError::AlreadyExists,
        FsError::NotADirectory,
        FsError::IsADirectory,
        FsError::NotEmpty,
        FsError::InvalidPath,
        FsError::TooLarge,
        FsError::NoSpace,
        FsError::Corrupt,
        FsError::Io,
        FsError::Malformed,
        FsError::Unsupported,
        FsError::ReadOnly,
        FsError::InvalidArgument,
    ];

    /// The status byte.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The error with status `c` (0 is success, not an error).
    pub fn from_code(c: u8) -> Option<FsError> {
        FsError::ALL.iter().copied().find(|e| e.code() == c)
    }
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FsError::NotFound => "no such file or directory",
            FsError::AlreadyExists => "already exists",
            FsError::NotADirectory => "not a directory",
            FsError::IsADirectory => "is a directory",
            FsError::NotEmpty => "directory not empty",
            FsError::InvalidPath => "invalid path",
            FsError::TooLarge => "too large",
            FsError::NoSpace => "no space left on the volume",
            FsError::Corrupt => "corrupt volume",
            FsError::Io => "device I/O error",
            FsError::Malformed => "malformed request",
            FsError::Unsupported => "unsupported operation",
            FsError::ReadOnly => "read-only file server",
            FsError::InvalidArgument => "invalid argument",
        })
    }
}

/// A frame header (requests and responses share the layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Header {
    /// Bytes of body after the header.
    pub len: u32,
    /// Request id, echoed in the response.
    pub id: u32,
    /// Request: the [`Op`] code. Response: 0 or an [`FsError`] code.
    pub code: u8,
}

impl Header {
    /// Decodes the header at the start of `b`. The three reserved bytes must
    /// be zero.
    pub fn parse(b: &[u8]) -> Result<Header, FsError> {
        let h = b.get(..HEADER_LEN).ok_or(FsError::Malformed)?;
        let mut r = Reader(h);
        let len = r.u32()?;
        let id = r.u32()?;
        let code = r.u8()?;
        if r.bytes(3)? != [0, 0, 0] {
            return Err(FsError::Malformed);
        }
        Ok(Header { len, id, code })
    }

    /// Encodes the header.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let (a, rest) = out.split_at_mut(4);
        a.copy_from_slice(&self.len.to_le_bytes());
        let (b, rest) = rest.split_at_mut(4);
        b.copy_from_slice(&self.id.to_le_bytes());
        if let Some(c) = rest.first_mut() {
            *c = self.code;
        }
        out
    }
}

/// For a transport reading a stream: the total size of the request whose
/// header this is, or `Malformed` if it announces more than
/// [`MAX_REQUEST_BODY`] (the stream cannot be trusted after that).
pub fn request_frame_len(h: &Header) -> Result<usize, FsError> {
    let len = usize::try_from(h.len).map_err(|_| FsError::Malformed)?;
    if len > MAX_REQUEST_BODY {
        return Err(FsError::Malformed);
    }
    HEADER_LEN.checked_add(len).ok_or(FsError::Malformed)
}

/// A parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// `LIST path start`.
    List {
        /// Directory.
        path: &'a str,
        /// Index of the first entry to return.
        start: u32,
    },
    /// `STAT path`.
    Stat {
        /// File or directory.
        path: &'a str,
    },
    /// `READ path offset length`.
    Read {
        /// File.
        path: &'a str,
        /// First byte.
        offset: u64,
        /// Bytes wanted.
        length: u32,
    },
    /// `WRITE path offset data`.
    Write {
        /// File.
        path: &'a str,
        /// First byte (at most the file's size).
        offset: u64,
        /// Bytes to write.
        data: &'a [u8],
    },
    /// `CREATE path kind`.
    Create {
        /// New entry.
        path: &'a str,
        /// File or directory.
        kind: Kind,
    },
    /// `DELETE path`.
    Delete {
        /// File or empty directory.
        path: &'a str,
    },
    /// `TRUNCATE path size`.
    Truncate {
        /// File.
        path: &'a str,
        /// New size, at most the current one.
        size: u64,
    },
    /// `STATFS`.
    StatFs,
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], FsError> {
        if n > self.0.len() {
            return Err(FsError::Malformed);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, FsError> {
        self.bytes(1)?.first().copied().ok_or(FsError::Malformed)
    }
    fn u16(&mut self) -> Result<u16, FsError> {
        let mut a = [0u8; 2];
        a.copy_from_slice(self.bytes(2)?);
        Ok(u16::from_le_bytes(a))
    }
    fn u32(&mut self) -> Result<u32, FsError> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.bytes(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn u64(&mut self) -> Result<u64, FsError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.bytes(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn path(&mut self) -> Result<&'a str, FsError> {
        let n = usize::from(self.u16()?);
        if n > MAX_PATH {
            return Err(FsError::InvalidPath);
        }
        core::str::from_utf8(self.bytes(n)?).map_err(|_| FsError::InvalidPath)
    }
    fn end(self) -> Result<(), FsError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(FsError::Malformed)
        }
    }
}

/// Parses one complete request frame. On failure, also returns the request
/// id if the header could be read (so the error can be answered).
pub fn parse_request(frame: &[u8]) -> Result<(u32, Request<'_>), (u32, FsError)> {
    let h = Header::parse(frame).map_err(|e| (0, e))?;
    let fail = |e| (h.id, e);
    request_frame_len(&h).map_err(fail)?;
    let body = frame.get(HEADER_LEN..).ok_or((h.id, FsError::Malformed))?;
    if body.len() != h.len as usize {
        return Err(fail(FsError::Malformed));
    }
    let op = Op::from_code(h.code).ok_or((h.id, FsError::Unsupported))?;
    let mut r = Reader(body);
    let req = match op {
        Op::List => {
            let path = r.path().map_err(fail)?;
            let start = r.u32().map_err(fail)?;
            Request::List { path, start }
        }
        Op::Stat => Request::Stat {
            path: r.path().map_err(fail)?,
        },
        Op::Read => {
            let path = r.path().map_err(fail)?;
            let offset = r.u64().map_err(fail)?;
            let length = r.u32().map_err(fail)?;
            Request::Read {
                path,
                offset,
                length,
            }
        }
        Op::Write => {
            let path = r.path().map_err(fail)?;
            let offset = r.u64().map_err(fail)?;
            let data = r.0;
            r = Reader(&[]);
            if data.len() > MAX_DATA {
                return Err(fail(FsError::TooLarge));
            }
            Request::Write { path, offset, data }
        }
        Op::Create => {
            let path = r.path().map_err(fail)?;
            let kind =
                Kind::from_code(r.u8().map_err(fail)?).ok_or((h.id, FsError::InvalidArgument))?;
            Request::Create { path, kind }
        }
        Op::Delete => Request::Delete {
            path: r.path().map_err(fail)?,
        },
        Op::Truncate => {
            let path = r.path().map_err(fail)?;
            let size = r.u64().map_err(fail)?;
            Request::Truncate { path, size }
        }
        Op::StatFs => Request::StatFs,
    };
    r.end().map_err(fail)?;
    Ok((h.id, req))
}

/// Builds request frames (for clients, tests and fuzzing).
pub struct RequestBuilder {
    body: Vec<u8>,
    id: u32,
    op: Op,
}

impl RequestBuilder {
    /// A request `op` with id `id` and an empty body.
    pub fn new(op: Op, id: u32) -> RequestBuilder {
        RequestBuilder {
            body: Vec::new(),
            id,
            op,
        }
    }
    /// Appends a path (u16 length + bytes; longer paths are cut, which the
    /// server then rejects as a length mismatch or bad path).
    pub fn path(mut self, p: &str) -> Self {
        let n = u16::try_from(p.len()).unwrap_or(u16::MAX);
        self.body.extend_from_slice(&n.to_le_bytes());
        self.body
            .extend_from_slice(p.as_bytes().get(..usize::from(n)).unwrap_or_default());
        self
    }
    /// Appends a byte.
    pub fn u8(mut self, v: u8) -> Self {
        self.body.push(v);
        self
    }
    /// Appends a little-endian u32.
    pub fn u32(mut self, v: u32) -> Self {
        self.body.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a little-endian u64.
    pub fn u64(mut self, v: u64) -> Self {
        self.body.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends raw bytes.
    pub fn bytes(mut self, b: &[u8]) -> Self {
        self.body.extend_from_slice(b);
        self
    }
    /// The frame.
    pub fn build(self) -> Vec<u8> {
        let h = Header {
            len: u32::try_from(self.body.len()).unwrap_or(u32::MAX),
            id: self.id,
            code: self.op as u8,
        };
        let mut out = Vec::with_capacity(HEADER_LEN.saturating_add(self.body.len()));
        out.extend_from_slice(&h.to_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

/// One entry of a `LIST` response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// File or directory.
    pub kind: Kind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Long name (or the short name when there is none).
    pub name: String,
}

/// A `STAT` response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// File or directory.
    pub kind: Kind,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Last modification: year, month, day, hour, minute, second (zeros
    /// for the root).
    pub modified: (u16, u8, u8, u8, u8, u8),
}

/// A `STATFS` response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsStat {
    /// Bytes per cluster.
    pub cluster_size: u32,
    /// Data clusters.
    pub total_clusters: u32,
    /// Free clusters.
    pub free_clusters: u32,
    /// 12, 16 or 32.
    pub fat_bits: u8,
}

/// A decoded response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response<'a> {
    /// The request id.
    pub id: u32,
    /// Success, or why not.
    pub status: Result<(), FsError>,
    /// The body (empty on errors).
    pub body: &'a [u8],
}

impl<'a> Response<'a> {
    /// Decodes a complete response frame.
    pub fn parse(frame: &'a [u8]) -> Result<Response<'a>, FsError> {
        let h = Header::parse(frame)?;
        let body = frame.get(HEADER_LEN..).ok_or(FsError::Malformed)?;
        if body.len() != h.len as usize {
            return Err(FsError::Malformed);
        }
        let status = match h.code {
            0 => Ok(()),
            c => Err(FsError::from_code(c).ok_or(FsError::Malformed)?),
        };
        Ok(Response {
            id: h.id,
            status,
            body,
        })
    }

    /// A `LIST` body: the entries and whether more follow.
    pub fn list(&self) -> Result<(Vec<Entry>, bool), FsError> {
        let mut r = Reader(self.body);
        let count = r.u32()?;
        let more = r.u8()? != 0;
        let mut v = Vec::new();
        for _ in 0..count {
            let kind = Kind::from_code(r.u8()?).ok_or(FsError::Malformed)?;
            let size = r.u64()?;
            let name = String::from(r.path()?);
            v.push(Entry { kind, size, name });
        }
        r.end()?;
        Ok((v, more))
    }

    /// A `STAT` body.
    pub fn stat(&self) -> Result<Stat, FsError> {
        let mut r = Reader(self.body);
        let kind = Kind::from_code(r.u8()?).ok_or(FsError::Malformed)?;
        let size = r.u64()?;
        let modified = (r.u16()?, r.u8()?, r.u8()?, r.u8()?, r.u8()?, r.u8()?);
        r.end()?;
        Ok(Stat {
            kind,
            size,
            modified,
        })
    }

    /// A `STATFS` body.
    pub fn statfs(&self) -> Result<FsStat, FsError> {
        let mut r = Reader(self.body);
        let s = FsStat {
            cluster_size: r.u32()?,
            total_clusters: r.u32()?,
            free_clusters: r.u32()?,
            fat_bits: r.u8()?,
        };
        r.end()?;
        Ok(s)
    }

    /// A `WRITE` body: the file's new size.
    pub fn new_size(&self) -> Result<u64, FsError> {
        let mut r = Reader(self.body);
        let v = r.u64()?;
        r.end()?;
        Ok(v)
    }
}

/// Encodes a response frame.
pub fn response(id: u32, status: Result<(), FsError>, body: &[u8]) -> Vec<u8> {
    let body = if status.is_ok() { body } else { &[] };
    let h = Header {
        len: u32::try_from(body.len()).unwrap_or(0),
        id,
        code: status.err().map_or(0, FsError::code),
    };
    let mut out = Vec::with_capacity(HEADER_LEN.saturating_add(body.len()));
    out.extend_from_slice(&h.to_bytes());
    out.extend_from_slice(body);
    out
}

/// Appends a `LIST` entry to `out`.
pub(crate) fn put_entry(out: &mut Vec<u8>, e: &Entry) {
    out.push(e.kind as u8);
    out.extend_from_slice(&e.size.to_le_bytes());
    let n = u16::try_from(e.name.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(e.name.as_bytes().get(..usize::from(n)).unwrap_or_default());
}

/// Encoded size of a `LIST` entry.
pub(crate) fn entry_len(e: &Entry) -> usize {
    1usize
        .saturating_add(8)
        .saturating_add(2)
        .saturating_add(e.name.len())
}
