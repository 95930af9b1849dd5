//! Reading Debian binary packages: the `ar` archive around them and the
//! `data.tar.{xz,gz}` inside, without `dpkg`.
//!
//! A `.deb` is an `ar` archive (`!<arch>\n`, then members with 60-byte
//! headers, data padded to even length) whose members are `debian-binary`
//! (`2.0\n`), `control.tar.*` and `data.tar.*`. The data tarball is
//! decompressed as a stream, so extraction stops once the wanted files are
//! found (Debian's kernel package puts `boot/` first, before 60 MB of
//! modules).

use std::fmt;
use std::io::Read;

/// The `ar` archive magic.
pub const AR_MAGIC: &[u8; 8] = b"!<arch>\n";
const AR_HEADER_LEN: usize = 60;

/// Why a package could not be read.
#[derive(Debug)]
pub enum DebError {
    /// Not an `ar` archive.
    NotAr,
    /// A member header is malformed.
    BadHeader {
        /// Byte offset of the header.
        offset: usize,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The archive ends inside a member.
    Truncated {
        /// The member's name.
        member: String,
    },
    /// Not a Debian 2.x binary package.
    NotDeb(String),
    /// No `data.tar.*` member, or one compressed in a way this reader does
    /// not support.
    NoData(String),
    /// The data tarball is corrupt or truncated.
    Data(std::io::Error),
    /// A wanted file is not in the package.
    Missing(String),
}

impl fmt::Display for DebError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DebError::NotAr => write!(f, "not an ar archive (no `!<arch>` magic)"),
            DebError::BadHeader { offset, why } => {
                write!(f, "ar member header at byte {offset}: {why}")
            }
            DebError::Truncated { member } => {
                write!(f, "ar archive truncated in member {member:?}")
            }
            DebError::NotDeb(why) => write!(f, "not a Debian binary package: {why}"),
            DebError::NoData(why) => write!(f, "package data: {why}"),
            DebError::Data(e) => write!(f, "package data tarball is corrupt or truncated: {e}"),
            DebError::Missing(what) => write!(f, "the package has no {what}"),
        }
    }
}

impl std::error::Error for DebError {}

/// One member of an `ar` archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArMember<'a> {
    /// Its name (GNU `/` terminator removed).
    pub name: &'a str,
    /// Its contents.
    pub data: &'a [u8],
}

fn decimal(field: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(field).ok()?.trim_end_matches(' ');
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Splits an `ar` archive into its members. Rejects a missing magic,
/// malformed headers and members that run past the end. BSD long names
/// (`#1/`) and GNU name tables are not used by `.deb` files and are
/// rejected.
pub fn ar_members(bytes: &[u8]) -> Result<Vec<ArMember<'_>>, DebError> {
    if !bytes.starts_with(AR_MAGIC) {
        return Err(DebError::NotAr);
    }
    let mut members = Vec::new();
    let mut pos = AR_MAGIC.len();
    while pos < bytes.len() {
        let offset = pos;
        let bad = |why| DebError::BadHeader { offset, why };
        let header = bytes
            .get(pos..pos + AR_HEADER_LEN)
            .ok_or(bad("truncated header"))?;
        if &header[58..60] != b"`\n" {
            return Err(bad("bad terminator"));
        }
        let name = std::str::from_utf8(&header[..16])
            .map_err(|_| bad("name is not UTF-8"))?
            .trim_end_matches(' ');
        let name = name.strip_suffix('/').unwrap_or(name);
        if name.is_empty() || name.starts_with('/') || name.starts_with("#1/") {
            return Err(bad("unsupported member name"));
        }
        let size = decimal(&header[48..58]).ok_or(bad("size is not a decimal number"))?;
        let start = pos + AR_HEADER_LEN;
        let data = start
            .checked_add(size)
            .and_then(|end| bytes.get(start..end))
            .ok_or_else(|| DebError::Truncated {
                member: name.to_string(),
            })?;
        members.push(ArMember { name, data });
        // Members are padded to an even offset with '\n' (the last one may
        // omit its padding).
        pos = start + size + (size & 1);
    }
    Ok(members)
}

/// The compressed `data.tar.*` member of a `.deb`, after checking it is a
/// Debian 2.x binary package. Returns the member name and its bytes.
pub fn data_member(deb: &[u8]) -> Result<ArMember<'_>, DebError> {
    let members = ar_members(deb)?;
    let first = members
        .first()
        .ok_or_else(|| DebError::NotDeb("empty archive".into()))?;
    if first.name != "debian-binary" || !first.data.starts_with(b"2.") {
        return Err(DebError::NotDeb(
            "the first member is not debian-binary with format 2.x".into(),
        ));
    }
    members
        .into_iter()
        .find(|m| m.name.starts_with("data.tar"))
        .ok_or_else(|| DebError::NoData("no data.tar member".into()))
}

/// What file to take out of a package's data tarball.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wanted<'a> {
    /// The regular file at exactly this path (`bin/busybox`).
    Exact(&'a str),
    /// The first regular file whose path starts with this (`boot/vmlinuz-`).
    Prefix(&'a str),
}

impl Wanted<'_> {
    fn matches(&self, path: &str) -> bool {
        match self {
            Wanted::Exact(p) => path == *p,
            Wanted::Prefix(p) => path.starts_with(p),
        }
    }
}

impl fmt::Display for Wanted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Wanted::Exact(p) => write!(f, "/{p}"),
            Wanted::Prefix(p) => write!(f, "/{p}*"),
        }
    }
}

/// A file taken out of a package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extracted {
    /// Its path in the package, without the leading `./` (`boot/vmlinuz-6.1.0-56-amd64`).
    pub path: String,
    /// Its contents.
    pub data: Vec<u8>,
    /// Its permission bits.
    pub mode: u32,
}

/// Extracts one regular file per `wanted` pattern from the `.deb` in `deb`,
/// in pattern order. Decompression stops once all are found. A missing file,
/// an unsupported compression and a corrupt or truncated tarball are errors.
pub fn extract(deb: &[u8], wanted: &[Wanted<'_>]) -> Result<Vec<Extracted>, DebError> {
    let data = data_member(deb)?;
    let reader: Box<dyn Read + '_> = match data.name {
        "data.tar.xz" => Box::new(xz2::read::XzDecoder::new(data.data)),
        "data.tar.gz" => Box::new(flate2::read::GzDecoder::new(data.data)),
        "data.tar" => Box::new(data.data),
        other => {
            return Err(DebError::NoData(format!(
                "{other} is compressed in a format this reader does not support (xz, gz or none)"
            )))
        }
    };
    let mut found: Vec<Option<Extracted>> = vec![None; wanted.len()];
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(DebError::Data)? {
        let mut entry = entry.map_err(DebError::Data)?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry.path().map_err(DebError::Data)?;
        let path = path.to_string_lossy();
        let path = path.trim_start_matches("./").to_string();
        let Some(slot) = wanted
            .iter()
            .zip(found.iter())
            .position(|(w, f)| f.is_none() && w.matches(&path))
        else {
            continue;
        };
        let mode = entry.header().mode().map_err(DebError::Data)?;
        let mut bytes = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
        entry.read_to_end(&mut bytes).map_err(DebError::Data)?;
        found[slot] = Some(Extracted {
            path,
            data: bytes,
            mode,
        });
        if found.iter().all(Option::is_some) {
            break;
        }
    }
    found
        .into_iter()
        .zip(wanted)
        .map(|(f, w)| f.ok_or_else(|| DebError::Missing(w.to_string())))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// An `ar` archive of `members`.
    pub(crate) fn ar(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = AR_MAGIC.to_vec();
        for (name, data) in members {
            let header = format!(
                "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
                format!("{name}/"),
                0,
                0,
                0,
                "100644",
                data.len()
            );
            assert_eq!(header.len(), AR_HEADER_LEN);
            out.extend_from_slice(header.as_bytes());
            out.extend_from_slice(data);
            if data.len() % 2 == 1 {
                out.push(b'\n');
            }
        }
        out
    }

    /// A `.deb` whose data.tar.xz holds `files` (path, contents).
    pub(crate) fn deb(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o755);
            h.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut h, format!("./{path}"), *data).unwrap();
        }
        let tar = tar.into_inner().unwrap();
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&tar).unwrap();
        let xz = xz.finish().unwrap();
        ar(&[
            ("debian-binary", b"2.0\n"),
            ("control.tar.xz", b"not read"),
            ("data.tar.xz", &xz),
        ])
    }

    #[test]
    fn splits_ar_members() {
        let bytes = ar(&[("a", b"odd"), ("bb", b"even"), ("c", b"")]);
        let m = ar_members(&bytes).unwrap();
        let names: Vec<_> = m.iter().map(|m| (m.name, m.data)).collect();
        assert_eq!(
            names,
            [("a", &b"odd"[..]), ("bb", &b"even"[..]), ("c", &b""[..])]
        );
    }

    #[test]
    fn rejects_truncated_and_corrupt_ar() {
        let bytes = ar(&[("debian-binary", b"2.0\n"), ("data.tar.xz", b"xyz")]);
        assert!(matches!(ar_members(b"!<arc"), Err(DebError::NotAr)));
        assert!(matches!(ar_members(b"garbage!"), Err(DebError::NotAr)));
        let boundary = 8 + 60 + 4; // after debian-binary: a valid, shorter archive
        for cut in 9..bytes.len() - 1 {
            if cut == boundary {
                assert!(matches!(
                    data_member(&bytes[..cut]),
                    Err(DebError::NoData(_))
                ));
            } else {
                // Any other cut before the last member's padding is an error.
                assert!(ar_members(&bytes[..cut]).is_err(), "cut at {cut}");
            }
        }
        let mut bad = bytes.clone();
        bad[8 + 58] = b'x';
        assert!(matches!(
            ar_members(&bad),
            Err(DebError::BadHeader {
                why: "bad terminator",
                ..
            })
        ));
        let mut bad = bytes.clone();
        bad[8 + 48] = b'z';
        assert!(matches!(ar_members(&bad), Err(DebError::BadHeader { .. })));
        let mut bad = bytes;
        bad[8 + 48..8 + 58].copy_from_slice(b"9999999999");
        assert!(matches!(ar_members(&bad), Err(DebError::Truncated { .. })));
    }

    #[test]
    fn extracts_wanted_files() {
        let deb = deb(&[
            ("boot/config-1", b"cfg"),
            ("boot/vmlinuz-1.2-amd64", b"kernel"),
            ("bin/busybox", b"bb"),
        ]);
        let got = extract(
            &deb,
            &[
                Wanted::Exact("bin/busybox"),
                Wanted::Prefix("boot/vmlinuz-"),
            ],
        )
        .unwrap();
        assert_eq!(got[0].path, "bin/busybox");
        assert_eq!(got[0].data, b"bb");
        assert_eq!(got[0].mode, 0o755);
        assert_eq!(got[1].path, "boot/vmlinuz-1.2-amd64");
        assert_eq!(got[1].data, b"kernel");
        assert!(matches!(
            extract(&deb, &[Wanted::Exact("sbin/init")]),
            Err(DebError::Missing(w)) if w == "/sbin/init"
        ));
    }

    #[test]
    fn rejects_bad_packages() {
        let no_binary = ar(&[("data.tar.xz", b"")]);
        assert!(matches!(
            extract(&no_binary, &[Wanted::Exact("x")]),
            Err(DebError::NotDeb(_))
        ));
        let zstd = ar(&[("debian-binary", b"2.0\n"), ("data.tar.zst", b"")]);
        assert!(matches!(
            extract(&zstd, &[Wanted::Exact("x")]),
            Err(DebError::NoData(_))
        ));
        let no_data = ar(&[("debian-binary", b"2.0\n")]);
        assert!(matches!(
            extract(&no_data, &[Wanted::Exact("x")]),
            Err(DebError::NoData(_))
        ));
    }

    #[test]
    fn rejects_corrupt_or_truncated_data() {
        let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7919 % 251) as u8).collect();
        let good = deb(&[("bin/busybox", &big)]);
        // Truncate the xz stream inside the data member: rebuild the ar with a
        // shortened member so the ar layer is valid and the xz layer is not.
        let members = ar_members(&good).unwrap();
        let xz = members[2].data;
        let short = ar(&[
            ("debian-binary", b"2.0\n"),
            ("data.tar.xz", &xz[..xz.len() / 2]),
        ]);
        assert!(matches!(
            extract(&short, &[Wanted::Exact("bin/busybox")]),
            Err(DebError::Data(_))
        ));
        let mut flipped = xz.to_vec();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0xff;
        let corrupt = ar(&[("debian-binary", b"2.0\n"), ("data.tar.xz", &flipped)]);
        assert!(extract(&corrupt, &[Wanted::Exact("bin/busybox")]).is_err());
        // The whole .deb cut short is caught by the ar layer.
        assert!(matches!(
            extract(&good[..good.len() - 10], &[Wanted::Exact("bin/busybox")]),
            Err(DebError::Truncated { .. })
        ));
    }
}
