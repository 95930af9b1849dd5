//! The file server: typed operations, and [`FileServer::handle`] for frames.

use alloc::collections::BTreeSet;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::Cell;

use block_device::BlockDevice;
use fatfs::{Read as _, Seek as _, Write as _};

use crate::io::{BlockIo, IoFault};
use crate::path;
use crate::proto::{
    self, Entry, FsError, FsStat, Kind, Request, Stat, MAX_DATA, MAX_RESPONSE_BODY,
};

/// Most entries one directory may have (FAT's own limit); more means the
/// directory's cluster chain loops.
pub const MAX_DIR_ENTRIES: usize = 65536;

/// How the server runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Refuse every change (`ReadOnly`); the device is never written.
    pub read_only: bool,
    /// Byte-level I/O calls one request may make before it fails as
    /// `Corrupt`. Bounds the work of any request on a looping volume.
    pub io_budget: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            read_only: false,
            io_budget: 1 << 22,
        }
    }
}

type Fs<D> = fatfs::FileSystem<BlockIo<D>>;
type Dir<'a, D> =
    fatfs::Dir<'a, BlockIo<D>, fatfs::DefaultTimeProvider, fatfs::LossyOemCpConverter>;
type DirEntry<'a, D> =
    fatfs::DirEntry<'a, BlockIo<D>, fatfs::DefaultTimeProvider, fatfs::LossyOemCpConverter>;
type File<'a, D> =
    fatfs::File<'a, BlockIo<D>, fatfs::DefaultTimeProvider, fatfs::LossyOemCpConverter>;

fn conv(e: fatfs::Error<IoFault>) -> FsError {
    match e {
        fatfs::Error::Io(IoFault::ReadOnly) => FsError::ReadOnly,
        fatfs::Error::Io(IoFault::Budget | IoFault::Eof) => FsError::Corrupt,
        fatfs::Error::Io(_) => FsError::Io,
        fatfs::Error::UnexpectedEof => FsError::Corrupt,
        fatfs::Error::WriteZero => FsError::Io,
        fatfs::Error::InvalidInput => FsError::InvalidArgument,
        fatfs::Error::NotFound => FsError::NotFound,
        fatfs::Error::AlreadyExists => FsError::AlreadyExists,
        fatfs::Error::DirectoryIsNotEmpty => FsError::NotEmpty,
        fatfs::Error::CorruptedFileSystem => FsError::Corrupt,
        fatfs::Error::NotEnoughSpace => FsError::NoSpace,
        fatfs::Error::InvalidFileNameLength | fatfs::Error::UnsupportedFileNameCharacter => {
            FsError::InvalidPath
        }
        _ => FsError::Io,
    }
}

/// What a path names.
enum Target<'a, D: BlockDevice> {
    Root,
    Entry(Dir<'a, D>, DirEntry<'a, D>),
}

/// A FAT volume served over the request protocol.
pub struct FileServer<D: BlockDevice> {
    fs: Fs<D>,
    fuel: Rc<Cell<u64>>,
    config: Config,
    volume_bytes: u64,
    /// Files whose cluster chains were checked: (first data offset, size).
    verified: BTreeSet<(u64, u64)>,
}

impl<D: BlockDevice> FileServer<D> {
    /// Mounts the FAT volume on `dev`. A device that does not hold a valid
    /// FAT12/16/32 volume gives `Corrupt` (or `Io`).
    pub fn mount(dev: D, config: Config) -> Result<FileServer<D>, FsError> {
        let fuel = Rc::new(Cell::new(config.io_budget));
        let volume_bytes = dev
            .sector_count()
            .saturating_mul(block_device::SECTOR_SIZE_U64);
        let io = BlockIo::new(dev, fuel.clone(), config.read_only);
        let fs = fatfs::FileSystem::new(io, fatfs::FsOptions::new()).map_err(conv)?;
        Ok(FileServer {
            fs,
            fuel,
            config,
            volume_bytes,
            verified: BTreeSet::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> Config {
        self.config
    }

    /// Writes back the volume's bookkeeping (free-cluster count, clean
    /// flag) and ends the mount. Without it a written volume stays marked
    /// dirty, and the next mount recounts free clusters.
    pub fn unmount(self) -> Result<(), FsError> {
        self.fuel.set(self.config.io_budget);
        self.fs.unmount().map_err(conv)
    }

    fn refuel(&self) {
        self.fuel.set(self.config.io_budget);
    }

    fn writable(&mut self) -> Result<(), FsError> {
        if self.config.read_only {
            return Err(FsError::ReadOnly);
        }
        self.verified.clear();
        Ok(())
    }

    /// Handles one request frame and returns the response frame. Never
    /// panics; every failure is a status.
    pub fn handle(&mut self, frame: &[u8]) -> Vec<u8> {
        let (id, req) = match proto::parse_request(frame) {
            Ok(v) => v,
            Err((id, e)) => return proto::response(id, Err(e), &[]),
        };
        match self.execute(&req) {
            Ok(body) => proto::response(id, Ok(()), &body),
            Err(e) => proto::response(id, Err(e), &[]),
        }
    }

    /// Runs a parsed request; the `Ok` value is the response body.
    pub fn execute(&mut self, req: &Request<'_>) -> Result<Vec<u8>, FsError> {
        Ok(match *req {
            Request::List { path, start } => {
                let (entries, more) = self.list(path, start)?;
                let mut body = Vec::new();
                body.extend_from_slice(&u32::try_from(entries.len()).unwrap_or(0).to_le_bytes());
                body.push(u8::from(more));
                for e in &entries {
                    proto::put_entry(&mut body, e);
                }
                body
            }
            Request::Stat { path } => {
                let s = self.stat(path)?;
                let mut body = vec![s.kind as u8];
                body.extend_from_slice(&s.size.to_le_bytes());
                let (y, mo, d, h, mi, se) = s.modified;
                body.extend_from_slice(&y.to_le_bytes());
                body.extend_from_slice(&[mo, d, h, mi, se]);
                body
            }
            Request::Read {
                path,
                offset,
                length,
            } => self.read(path, offset, length)?,
            Request::Write { path, offset, data } => {
                self.write(path, offset, data)?.to_le_bytes().to_vec()
            }
            Request::Create { path, kind } => {
                self.create(path, kind)?;
                Vec::new()
            }
            Request::Delete { path } => {
                self.delete(path)?;
                Vec::new()
            }
            Request::Truncate { path, size } => {
                self.truncate(path, size)?;
                Vec::new()
            }
            Request::StatFs => {
                let s = self.statfs()?;
                let mut body = Vec::new();
                body.extend_from_slice(&s.cluster_size.to_le_bytes());
                body.extend_from_slice(&s.total_clusters.to_le_bytes());
                body.extend_from_slice(&s.free_clusters.to_le_bytes());
                body.push(s.fat_bits);
                body
            }
        })
    }

    /// Up to a response's worth of entries of directory `path`, from index
    /// `start` on (`.` and `..` are not listed), and whether more follow.
    pub fn list(&mut self, p: &str, start: u32) -> Result<(Vec<Entry>, bool), FsError> {
        self.refuel();
        let comps = path::split(p)?;
        let dir = match resolve(&self.fs, &comps)? {
            Target::Root => self.fs.root_dir(),
            Target::Entry(_, e) if e.is_dir() => e.to_dir(),
            Target::Entry(..) => return Err(FsError::NotADirectory),
        };
        let mut out = Vec::new();
        let mut used = 5usize;
        let mut index = 0u64;
        for e in bounded(&dir) {
            let e = e?;
            let name = e.file_name();
            if name == "." || name == ".." {
                continue;
            }
            index = index.saturating_add(1);
            if index <= u64::from(start) {
                continue;
            }
            let entry = Entry {
                kind: if e.is_dir() { Kind::Dir } else { Kind::File },
                size: if e.is_dir() { 0 } else { e.len() },
                name,
            };
            let len = proto::entry_len(&entry);
            if used.saturating_add(len) > MAX_RESPONSE_BODY {
                return Ok((out, true));
            }
            used = used.saturating_add(len);
            out.push(entry);
        }
        Ok((out, false))
    }

    /// Kind, size and modification time of `path`.
    pub fn stat(&mut self, p: &str) -> Result<Stat, FsError> {
        self.refuel();
        let comps = path::split(p)?;
        Ok(match resolve(&self.fs, &comps)? {
            Target::Root => Stat {
                kind: Kind::Dir,
                size: 0,
                modified: (0, 0, 0, 0, 0, 0),
            },
            Target::Entry(_, e) => {
                let m = e.modified();
                let b = |v: u16| u8::try_from(v).unwrap_or(0);
                Stat {
                    kind: if e.is_dir() { Kind::Dir } else { Kind::File },
                    size: if e.is_dir() { 0 } else { e.len() },
                    modified: (
                        m.date.year,
                        b(m.date.month),
                        b(m.date.day),
                        b(m.time.hour),
                        b(m.time.min),
                        b(m.time.sec),
                    ),
                }
            }
        })
    }

    /// Up to `length` bytes of file `path` from `offset` (fewer only at the
    /// end of the file). `length` over [`MAX_DATA`] is `TooLarge`.
    pub fn read(&mut self, p: &str, offset: u64, length: u32) -> Result<Vec<u8>, FsError> {
        self.refuel();
        let want = usize::try_from(length).map_err(|_| FsError::TooLarge)?;
        if want > MAX_DATA {
            return Err(FsError::TooLarge);
        }
        let comps = path::split(p)?;
        let Target::Entry(_, e) = resolve(&self.fs, &comps)? else {
            return Err(FsError::IsADirectory);
        };
        if e.is_dir() {
            return Err(FsError::IsADirectory);
        }
        let size = e.len();
        if offset >= size {
            return Ok(Vec::new());
        }
        let n = usize::try_from(size.saturating_sub(offset).min(want as u64)).unwrap_or(want);
        let mut file = e.to_file();
        verify_chain(
            &mut file,
            size,
            self.fs.cluster_size(),
            self.volume_bytes,
            &mut self.verified,
        )?;
        file.seek(fatfs::SeekFrom::Start(offset)).map_err(conv)?;
        let mut buf = vec![0u8; n];
        let mut filled = 0usize;
        while filled < n {
            let dst = buf.get_mut(filled..).ok_or(FsError::Corrupt)?;
            let got = file.read(dst).map_err(conv)?;
            if got == 0 {
                // The chain ended before the size the entry claims.
                return Err(FsError::Corrupt);
            }
            filled = filled.saturating_add(got);
        }
        Ok(buf)
    }

    /// Writes `data` into file `path` at `offset` (at most its size: no
    /// holes), growing it as needed; returns the new size.
    pub fn write(&mut self, p: &str, offset: u64, data: &[u8]) -> Result<u64, FsError> {
        self.refuel();
        self.writable()?;
        if data.len() > MAX_DATA {
            return Err(FsError::TooLarge);
        }
        let comps = path::split(p)?;
        let Target::Entry(_, e) = resolve(&self.fs, &comps)? else {
            return Err(FsError::IsADirectory);
        };
        if e.is_dir() {
            return Err(FsError::IsADirectory);
        }
        let size = e.len();
        if offset > size {
            return Err(FsError::InvalidArgument);
        }
        let end = offset.saturating_add(data.len() as u64);
        if end > u64::from(u32::MAX) {
            return Err(FsError::TooLarge);
        }
        let mut file = e.to_file();
        verify_chain(
            &mut file,
            size,
            self.fs.cluster_size(),
            self.volume_bytes,
            &mut BTreeSet::new(),
        )?;
        file.seek(fatfs::SeekFrom::Start(offset)).map_err(conv)?;
        file.write_all(data).map_err(conv)?;
        file.flush().map_err(conv)?;
        Ok(end.max(size))
    }

    /// Creates an empty file or directory at `path`; its parent must exist.
    pub fn create(&mut self, p: &str, kind: Kind) -> Result<(), FsError> {
        self.refuel();
        self.writable()?;
        let comps = path::split(p)?;
        let (name, parent) = comps.split_last().ok_or(FsError::AlreadyExists)?;
        let dir = open_dir(&self.fs, parent)?;
        if find(&dir, name)?.is_some() {
            return Err(FsError::AlreadyExists);
        }
        match kind {
            Kind::File => {
                let mut f = dir.create_file(name).map_err(conv)?;
                f.flush().map_err(conv)?;
            }
            Kind::Dir => {
                dir.create_dir(name).map_err(conv)?;
            }
        }
        Ok(())
    }

    /// Deletes file or empty directory `path`.
    pub fn delete(&mut self, p: &str) -> Result<(), FsError> {
        self.refuel();
        self.writable()?;
        let comps = path::split(p)?;
        match resolve(&self.fs, &comps)? {
            Target::Root => Err(FsError::InvalidPath),
            Target::Entry(dir, e) => {
                if e.is_dir() {
                    // Refuse early, with a bounded scan.
                    let sub = e.to_dir();
                    for x in bounded(&sub) {
                        let n = x?.file_name();
                        if n != "." && n != ".." {
                            return Err(FsError::NotEmpty);
                        }
                    }
                }
                dir.remove(&e.file_name()).map_err(conv)
            }
        }
    }

    /// Shortens file `path` to `size` bytes.
    pub fn truncate(&mut self, p: &str, size: u64) -> Result<(), FsError> {
        self.refuel();
        self.writable()?;
        let comps = path::split(p)?;
        let Target::Entry(_, e) = resolve(&self.fs, &comps)? else {
            return Err(FsError::IsADirectory);
        };
        if e.is_dir() {
            return Err(FsError::IsADirectory);
        }
        if size > e.len() {
            return Err(FsError::InvalidArgument);
        }
        let mut file = e.to_file();
        verify_chain(
            &mut file,
            e.len(),
            self.fs.cluster_size(),
            self.volume_bytes,
            &mut BTreeSet::new(),
        )?;
        file.seek(fatfs::SeekFrom::Start(size)).map_err(conv)?;
        file.truncate().map_err(conv)?;
        file.flush().map_err(conv)
    }

    /// Cluster size, cluster counts and FAT type.
    pub fn statfs(&mut self) -> Result<FsStat, FsError> {
        self.refuel();
        let s = self.fs.stats().map_err(conv)?;
        Ok(FsStat {
            cluster_size: s.cluster_size(),
            total_clusters: s.total_clusters(),
            free_clusters: s.free_clusters(),
            fat_bits: match self.fs.fat_type() {
                fatfs::FatType::Fat12 => 12,
                fatfs::FatType::Fat16 => 16,
                fatfs::FatType::Fat32 => 32,
            },
        })
    }
}

/// Writes a fresh FAT file system (type chosen by size, like mkfs.fat)
/// with volume label `label` over all of `dev`, and gives the device back.
pub fn format<D: BlockDevice>(dev: D, label: [u8; 11]) -> Result<D, FsError> {
    let fuel = Rc::new(Cell::new(u64::MAX));
    let mut io = BlockIo::new(dev, fuel, false);
    let opts = fatfs::FormatVolumeOptions::new().volume_label(label);
    fatfs::format_volume(&mut io, opts).map_err(conv)?;
    Ok(io.into_inner())
}

/// A directory's entries, failing as `Corrupt` past [`MAX_DIR_ENTRIES`] or
/// at a short name seen before in the same scan: a directory never holds
/// two entries with one short name (not even `.`), so a repeat means its
/// cluster chain loops back on itself.
fn bounded<'a, D: BlockDevice>(
    dir: &Dir<'a, D>,
) -> impl Iterator<Item = Result<DirEntry<'a, D>, FsError>> {
    let mut n = 0usize;
    let mut seen: BTreeSet<[u8; 13]> = BTreeSet::new();
    dir.iter().map(move |e| {
        n = n.saturating_add(1);
        if n > MAX_DIR_ENTRIES {
            return Err(FsError::Corrupt);
        }
        let e = e.map_err(conv)?;
        let mut key = [0u8; 13];
        for (k, b) in key.iter_mut().zip(e.short_file_name_as_bytes()) {
            *k = *b;
        }
        if !seen.insert(key) {
            return Err(FsError::Corrupt);
        }
        Ok(e)
    })
}

/// The entry of `dir` named `name` (long or short name, any case).
fn find<'a, D: BlockDevice>(
    dir: &Dir<'a, D>,
    name: &str,
) -> Result<Option<DirEntry<'a, D>>, FsError> {
    for e in bounded(dir) {
        let e = e?;
        let long = e.file_name();
        if long == "." || long == ".." {
            continue;
        }
        if path::same_name(&long, name) || path::same_name(&e.short_file_name(), name) {
            return Ok(Some(e));
        }
    }
    Ok(None)
}

/// The directory at `comps`.
fn open_dir<'a, D: BlockDevice>(fs: &'a Fs<D>, comps: &[&str]) -> Result<Dir<'a, D>, FsError> {
    let mut dir = fs.root_dir();
    for c in comps {
        match find(&dir, c)? {
            Some(e) if e.is_dir() => dir = e.to_dir(),
            Some(_) => return Err(FsError::NotADirectory),
            None => return Err(FsError::NotFound),
        }
    }
    Ok(dir)
}

/// What `comps` names, with its parent directory.
fn resolve<'a, D: BlockDevice>(fs: &'a Fs<D>, comps: &[&str]) -> Result<Target<'a, D>, FsError> {
    let Some((name, parent)) = comps.split_last() else {
        return Ok(Target::Root);
    };
    let dir = open_dir(fs, parent)?;
    let e = find(&dir, name)?.ok_or(FsError::NotFound)?;
    Ok(Target::Entry(dir, e))
}

/// Checks that a file's cluster chain covers its size without revisiting
/// a cluster and stays inside the volume, so a read can neither loop nor
/// return another file's data through a cycle. Brent's cycle detection:
/// constant memory, and any cycle within the first `needed` clusters is
/// found within `4 * needed + 4` steps.
fn verify_chain<D: BlockDevice>(
    file: &mut File<'_, D>,
    size: u64,
    cluster_size: u32,
    volume_bytes: u64,
    verified: &mut BTreeSet<(u64, u64)>,
) -> Result<(), FsError> {
    let cs = u64::from(cluster_size.max(1));
    let needed = size.div_ceil(cs);
    if needed == 0 {
        return Ok(());
    }
    let limit = usize::try_from(needed.saturating_mul(4).saturating_add(4)).unwrap_or(usize::MAX);
    let mut count = 0u64;
    let mut first = None;
    let mut saved: Option<u64> = None;
    let mut power = 1u64;
    let mut lam = 0u64;
    for ext in file.extents().take(limit) {
        let ext = ext.map_err(conv)?;
        if first.is_none() {
            first = Some(ext.offset);
            if verified.contains(&(ext.offset, size)) {
                return Ok(());
            }
        }
        if ext.offset.saturating_add(cs) > volume_bytes {
            return Err(FsError::Corrupt);
        }
        if saved == Some(ext.offset) {
            return Err(FsError::Corrupt);
        }
        count = count.saturating_add(1);
        lam = lam.saturating_add(1);
        if lam == power {
            saved = Some(ext.offset);
            power = power.saturating_mul(2);
            lam = 0;
        }
    }
    if count < needed {
        return Err(FsError::Corrupt);
    }
    if let Some(f) = first {
        verified.insert((f, size));
    }
    Ok(())
}

/// FNV-1a, 64-bit: the checksum the self-checks print.
pub fn fnv1a64(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// FNV-1a-64's starting value.
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

impl<D: BlockDevice> FileServer<D> {
    /// Walks the whole volume depth-first (entries in directory order) and
    /// calls `visit(path, kind, size, fnv1a64 of the contents)` for every
    /// file and directory (directories get size and checksum 0). Stops at
    /// the first error. Bounded: at most [`path::MAX_DEPTH`] levels and
    /// `max_entries` entries in all.
    pub fn walk(
        &mut self,
        max_entries: usize,
        mut visit: impl FnMut(&str, Kind, u64, u64),
    ) -> Result<(), FsError> {
        let mut stack: Vec<alloc::string::String> = vec![alloc::string::String::new()];
        let mut seen = 0usize;
        while let Some(dir) = stack.pop() {
            let mut start = 0u32;
            let mut subdirs = Vec::new();
            loop {
                let (entries, more) = self.list(&dir, start)?;
                start = start.saturating_add(u32::try_from(entries.len()).unwrap_or(u32::MAX));
                for e in entries {
                    seen = seen.saturating_add(1);
                    if seen > max_entries {
                        return Err(FsError::TooLarge);
                    }
                    let p = alloc::format!("{dir}/{}", e.name);
                    match e.kind {
                        Kind::Dir => {
                            visit(&p, Kind::Dir, 0, 0);
                            if p.matches('/').count() < path::MAX_DEPTH {
                                subdirs.push(p);
                            }
                        }
                        Kind::File => {
                            let mut h = FNV_OFFSET;
                            let mut off = 0u64;
                            while off < e.size {
                                let chunk = self.read(&p, off, MAX_DATA as u32)?;
                                if chunk.is_empty() {
                                    return Err(FsError::Corrupt);
                                }
                                h = fnv1a64(h, &chunk);
                                off = off.saturating_add(chunk.len() as u64);
                            }
                            visit(&p, Kind::File, e.size, h);
                        }
                    }
                }
                if !more {
                    break;
                }
            }
            // Depth-first, in directory order.
            stack.extend(subdirs.into_iter().rev());
        }
        Ok(())
    }
}
