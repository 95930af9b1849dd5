//! Path validation: every path names something inside the volume, or is
//! rejected before the file system sees it.

use alloc::vec::Vec;

use crate::proto::{FsError, MAX_PATH};

/// Deepest path accepted.
pub const MAX_DEPTH: usize = 64;
/// Longest name, in UTF-16 code units (FAT's long-name limit).
pub const MAX_NAME_UNITS: usize = 255;

/// Splits `p` into validated components. An empty path or `/` is the root
/// (no components). One leading `/` is allowed; everything is relative to
/// the volume's root either way.
///
/// Rejected, as [`FsError::InvalidPath`]: over [`MAX_PATH`] bytes or
/// [`MAX_DEPTH`] components; empty components (`a//b`, a trailing `/`);
/// `.` and `..`; NUL and other control characters; `\ : * ? " < > |`;
/// names ending in a space or a dot (Windows would alias them); names over
/// [`MAX_NAME_UNITS`] UTF-16 units.
pub fn split(p: &str) -> Result<Vec<&str>, FsError> {
    if p.len() > MAX_PATH {
        return Err(FsError::InvalidPath);
    }
    let rel = p.strip_prefix('/').unwrap_or(p);
    if rel.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for c in rel.split('/') {
        if out.len() >= MAX_DEPTH || !valid_name(c) {
            return Err(FsError::InvalidPath);
        }
        out.push(c);
    }
    Ok(out)
}

/// Whether `name` is a valid single component.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.ends_with(' ')
        && !name.ends_with('.')
        && name.encode_utf16().count() <= MAX_NAME_UNITS
        && name.chars().all(|c| {
            !c.is_control() && !matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
        })
}

/// Case-insensitive name comparison, as FAT looks names up.
pub fn same_name(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_uppercase)
        .eq(b.chars().flat_map(char::to_uppercase))
}
