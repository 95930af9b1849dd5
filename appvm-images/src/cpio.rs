//! The "newc" cpio format (`070701`, what the Linux kernel unpacks as an
//! initramfs): a writer, and a strict reader for checking archives.
//!
//! Each entry is a 110-byte ASCII header (magic and 13 eight-digit hex
//! fields), the NUL-terminated name padded to a multiple of four bytes, then
//! the data (a symlink's data is its target) padded likewise. The archive ends
//! with an entry named `TRAILER!!!`.

use std::fmt;

/// The newc magic.
pub const MAGIC: &[u8; 6] = b"070701";
/// The name of the entry that ends an archive.
pub const TRAILER: &str = "TRAILER!!!";
const HEADER_LEN: usize = 110;

/// File type bits of `mode` (as in `st_mode`).
pub const S_IFMT: u32 = 0o170000;
/// Directory.
pub const S_IFDIR: u32 = 0o040000;
/// Regular file.
pub const S_IFREG: u32 = 0o100000;
/// Symbolic link.
pub const S_IFLNK: u32 = 0o120000;
/// Character device.
pub const S_IFCHR: u32 = 0o020000;

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file with its contents.
    File(Vec<u8>),
    /// A symbolic link to the target.
    Symlink(String),
    /// A character device node.
    CharDev {
        /// Device major number.
        major: u32,
        /// Device minor number.
        minor: u32,
    },
}

/// One archive entry. Names are relative (`bin/busybox`, no leading `/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the archive.
    pub name: String,
    /// Permission bits (`0o755`); the type bits come from `kind`.
    pub perm: u32,
    /// What it is.
    pub kind: Kind,
}

impl Entry {
    /// A directory.
    pub fn dir(name: &str, perm: u32) -> Entry {
        Entry {
            name: name.into(),
            perm,
            kind: Kind::Dir,
        }
    }

    /// A regular file.
    pub fn file(name: &str, perm: u32, data: Vec<u8>) -> Entry {
        Entry {
            name: name.into(),
            perm,
            kind: Kind::File(data),
        }
    }

    /// A symbolic link (permissions 0777, as for any symlink).
    pub fn symlink(name: &str, target: &str) -> Entry {
        Entry {
            name: name.into(),
            perm: 0o777,
            kind: Kind::Symlink(target.into()),
        }
    }

    /// A character device node.
    pub fn char_dev(name: &str, perm: u32, major: u32, minor: u32) -> Entry {
        Entry {
            name: name.into(),
            perm,
            kind: Kind::CharDev { major, minor },
        }
    }

    /// The full `st_mode`: type bits and permissions.
    pub fn mode(&self) -> u32 {
        let kind = match self.kind {
            Kind::Dir => S_IFDIR,
            Kind::File(_) => S_IFREG,
            Kind::Symlink(_) => S_IFLNK,
            Kind::CharDev { .. } => S_IFCHR,
        };
        kind | (self.perm & 0o7777)
    }

    fn data(&self) -> &[u8] {
        match &self.kind {
            Kind::File(d) => d,
            Kind::Symlink(t) => t.as_bytes(),
            Kind::Dir | Kind::CharDev { .. } => &[],
        }
    }
}

/// Why an archive could not be written or read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CpioError {
    /// A name is empty, absolute, contains NUL or `..`, or is the trailer's.
    BadName(String),
    /// A field does not fit in eight hex digits.
    TooLarge(String),
    /// The input ends inside an entry or before the trailer.
    Truncated {
        /// Byte offset of the entry.
        offset: usize,
    },
    /// An entry does not start with the newc magic.
    BadMagic {
        /// Byte offset of the entry.
        offset: usize,
    },
    /// A header field is not hexadecimal.
    BadField {
        /// Byte offset of the entry.
        offset: usize,
        /// The field's name.
        field: &'static str,
    },
    /// An entry's type bits are not one this reader supports.
    UnsupportedType {
        /// The entry's name.
        name: String,
        /// Its mode.
        mode: u32,
    },
}

impl fmt::Display for CpioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpioError::BadName(n) => write!(f, "invalid cpio entry name {n:?}"),
            CpioError::TooLarge(n) => write!(f, "cpio entry {n:?} is too large for newc"),
            CpioError::Truncated { offset } => {
                write!(f, "cpio archive truncated in the entry at byte {offset}")
            }
            CpioError::BadMagic { offset } => write!(f, "no newc magic at byte {offset}"),
            CpioError::BadField { offset, field } => {
                write!(f, "cpio header at byte {offset}: field {field} is not hex")
            }
            CpioError::UnsupportedType { name, mode } => {
                write!(f, "cpio entry {name:?} has unsupported mode {mode:o}")
            }
        }
    }
}

impl std::error::Error for CpioError {}

fn check_name(name: &str) -> Result<(), CpioError> {
    let bad = name.is_empty()
        || name.starts_with('/')
        || name.contains('\0')
        || name == TRAILER
        || name.split('/').any(|c| c == ".." || c.is_empty());
    if bad {
        Err(CpioError::BadName(name.into()))
    } else {
        Ok(())
    }
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

fn push_header(out: &mut Vec<u8>, fields: &[u32; 13], name: &str) {
    out.extend_from_slice(MAGIC);
    for v in fields {
        out.extend_from_slice(format!("{v:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

/// Writes `entries` as a newc archive, in order, with inode numbers from 1,
/// owner root, mtime 0 (reproducible) and the trailer. Parent directories
/// must be listed before their contents, as the kernel creates entries in
/// archive order.
pub fn write(entries: &[Entry]) -> Result<Vec<u8>, CpioError> {
    let total: usize = entries
        .iter()
        .map(|e| 128 + e.name.len() + e.data().len())
        .sum();
    let mut out = Vec::with_capacity(total + 128);
    for (i, e) in entries.iter().enumerate() {
        check_name(&e.name)?;
        let too_large = || CpioError::TooLarge(e.name.clone());
        let ino = u32::try_from(i + 1).map_err(|_| too_large())?;
        let size = u32::try_from(e.data().len()).map_err(|_| too_large())?;
        let namesize = u32::try_from(e.name.len() + 1).map_err(|_| too_large())?;
        let (rmaj, rmin) = match e.kind {
            Kind::CharDev { major, minor } => (major, minor),
            _ => (0, 0),
        };
        let nlink = if e.kind == Kind::Dir { 2 } else { 1 };
        // ino mode uid gid nlink mtime filesize devmajor devminor
        // rdevmajor rdevminor namesize check
        let fields = [
            ino,
            e.mode(),
            0,
            0,
            nlink,
            0,
            size,
            0,
            0,
            rmaj,
            rmin,
            namesize,
            0,
        ];
        push_header(&mut out, &fields, &e.name);
        out.extend_from_slice(e.data());
        pad4(&mut out);
    }
    let trailer = [0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, TRAILER.len() as u32 + 1, 0];
    push_header(&mut out, &trailer, TRAILER);
    Ok(out)
}

fn hex_field(
    bytes: &[u8],
    offset: usize,
    index: usize,
    field: &'static str,
) -> Result<u32, CpioError> {
    let start = 6 + 8 * index;
    let text = bytes
        .get(start..start + 8)
        .and_then(|b| std::str::from_utf8(b).ok())
        .ok_or(CpioError::BadField { offset, field })?;
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CpioError::BadField { offset, field });
    }
    u32::from_str_radix(text, 16).map_err(|_| CpioError::BadField { offset, field })
}

fn align4(n: usize) -> Option<usize> {
    n.checked_add(3).map(|v| v & !3)
}

/// Reads a newc archive back (up to its trailer): entries in archive order.
/// Rejects truncated input, bad magic or fields, and types other than
/// directory, regular file, symlink and character device.
pub fn read(bytes: &[u8]) -> Result<Vec<Entry>, CpioError> {
    let mut entries = Vec::new();
    let mut pos = 0usize;
    loop {
        let offset = pos;
        let truncated = CpioError::Truncated { offset };
        let header = bytes
            .get(pos..pos + HEADER_LEN)
            .ok_or_else(|| truncated.clone())?;
        if &header[..6] != MAGIC {
            return Err(CpioError::BadMagic { offset });
        }
        let mode = hex_field(header, offset, 1, "mode")?;
        let filesize = hex_field(header, offset, 6, "filesize")? as usize;
        let rdevmajor = hex_field(header, offset, 9, "rdevmajor")?;
        let rdevminor = hex_field(header, offset, 10, "rdevminor")?;
        let namesize = hex_field(header, offset, 11, "namesize")? as usize;
        if namesize == 0 {
            return Err(CpioError::BadField {
                offset,
                field: "namesize",
            });
        }
        let name_start = pos + HEADER_LEN;
        let name_bytes = bytes
            .get(name_start..name_start + namesize)
            .ok_or_else(|| truncated.clone())?;
        let (last, name_bytes) = name_bytes.split_last().ok_or_else(|| truncated.clone())?;
        if *last != 0 {
            return Err(CpioError::BadField {
                offset,
                field: "namesize",
            });
        }
        let name = String::from_utf8_lossy(name_bytes).into_owned();
        let data_start = align4(name_start + namesize).ok_or_else(|| truncated.clone())?;
        let data_end = data_start
            .checked_add(filesize)
            .ok_or_else(|| truncated.clone())?;
        let data = bytes
            .get(data_start..data_end)
            .ok_or_else(|| truncated.clone())?;
        pos = align4(data_end).ok_or(truncated)?;
        if name == TRAILER {
            return Ok(entries);
        }
        let perm = mode & 0o7777;
        let kind = match mode & S_IFMT {
            S_IFDIR => Kind::Dir,
            S_IFREG => Kind::File(data.to_vec()),
            S_IFLNK => Kind::Symlink(String::from_utf8_lossy(data).into_owned()),
            S_IFCHR => Kind::CharDev {
                major: rdevmajor,
                minor: rdevminor,
            },
            _ => return Err(CpioError::UnsupportedType { name, mode }),
        };
        entries.push(Entry { name, perm, kind });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Entry> {
        vec![
            Entry::dir("bin", 0o755),
            Entry::file(
                "bin/busybox",
                0o755,
                (0..=255u8).cycle().take(1001).collect(),
            ),
            Entry::symlink("bin/sh", "busybox"),
            Entry::dir("dev", 0o755),
            Entry::char_dev("dev/console", 0o600, 5, 1),
            Entry::dir("tmp", 0o1777),
            Entry::file("init", 0o755, b"#!/bin/sh\n".to_vec()),
            Entry::file("empty", 0o644, Vec::new()),
        ]
    }

    #[test]
    fn round_trips() {
        let entries = sample();
        let bytes = write(&entries).unwrap();
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(&bytes[..6], MAGIC);
        assert_eq!(read(&bytes).unwrap(), entries);
    }

    #[test]
    fn header_fields_are_as_the_kernel_expects() {
        let bytes = write(&[Entry::char_dev("dev/console", 0o600, 5, 1)]).unwrap();
        let h = std::str::from_utf8(&bytes[..HEADER_LEN]).unwrap();
        // mode 020600, rdevmajor 5, rdevminor 1, namesize 12.
        assert_eq!(&h[14..22], "00002180");
        assert_eq!(&h[78..86], "00000005");
        assert_eq!(&h[86..94], "00000001");
        assert_eq!(&h[94..102], "0000000C");
        assert_eq!(&bytes[HEADER_LEN..HEADER_LEN + 12], b"dev/console\0");
    }

    #[test]
    fn rejects_bad_names() {
        for name in ["", "/abs", "a/../b", "a//b", "nul\0", TRAILER, "x/"] {
            assert!(
                matches!(
                    write(&[Entry::dir(name, 0o755)]),
                    Err(CpioError::BadName(_))
                ),
                "{name:?}"
            );
        }
    }

    #[test]
    fn rejects_truncated_and_corrupt_archives() {
        let bytes = write(&sample()).unwrap();
        for cut in [0, 5, 109, 110, 200, bytes.len() / 2, bytes.len() - 1] {
            assert!(read(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = bytes.clone();
        bad[0] = b'1';
        assert_eq!(read(&bad), Err(CpioError::BadMagic { offset: 0 }));
        let mut bad = bytes.clone();
        bad[6 + 8 * 6] = b'G'; // filesize
        assert!(matches!(read(&bad), Err(CpioError::BadField { .. })));
        let mut bad = bytes.clone();
        bad[6 + 8 * 6..6 + 8 * 7].copy_from_slice(b"FFFFFFFF"); // huge filesize
        assert!(matches!(read(&bad), Err(CpioError::Truncated { .. })));
        let mut bad = bytes;
        bad[6 + 8 + 4] = b'6'; // mode 0x41ED -> 0x61ED: a block device
        assert!(matches!(read(&bad), Err(CpioError::UnsupportedType { .. })));
    }

    /// Cross-checks with GNU cpio when it is installed.
    #[test]
    fn gnu_cpio_lists_it() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let Ok(mut child) = Command::new("cpio")
            .args(["-t", "-v", "--quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        else {
            eprintln!("SKIPPED: GNU cpio is not installed (apt-get install cpio)");
            return;
        };
        let bytes = write(&sample()).unwrap();
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        let listing = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), sample().len(), "{listing}");
        assert!(lines[2].starts_with("lrwxrwxrwx") && lines[2].ends_with("bin/sh -> busybox"));
        assert!(lines[4].starts_with("crw-------") && lines[4].contains("5,   1"));
        assert!(lines[5].starts_with("drwxrwxrwt"));
        assert!(lines[1].starts_with("-rwxr-xr-x") && lines[1].contains(" 1001 "));
    }
}
