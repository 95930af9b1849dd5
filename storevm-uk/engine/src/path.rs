//! Node paths: validation, canonicalisation against a domain's home, and the
//! parent/child relation watches use (docs/misc/xenstore.txt).

use alloc::format;
use alloc::string::String;

use crate::wire::{ErrorCode, ABS_PATH_MAX, REL_PATH_MAX};
use crate::DomId;

/// The two special watch paths xenstored itself fires.
pub const INTRODUCE_DOMAIN: &str = "@introduceDomain";
/// Fired when a domain is released or dies.
pub const RELEASE_DOMAIN: &str = "@releaseDomain";

/// ASCII alphanumerics and `-/_@`, the characters xenstore paths may hold.
pub fn valid_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'@')
}

/// A domain's home, which relative paths are taken against.
pub fn domain_path(domid: DomId) -> String {
    format!("/local/domain/{domid}")
}

/// An absolute path xenstore accepts: starts with `/`, no `//`, no trailing
/// `/` (except the root itself), at most [`ABS_PATH_MAX`] bytes, valid
/// characters only.
pub fn is_valid_node_path(p: &str) -> bool {
    p.starts_with('/')
        && (p == "/" || !p.ends_with('/'))
        && !p.contains("//")
        && p.len() <= ABS_PATH_MAX
        && p.bytes().all(valid_char)
}

/// The absolute form of `raw` as sent by `domid`, validated.
pub fn canonicalize(domid: DomId, raw: &str) -> Result<String, ErrorCode> {
    if raw.starts_with('@') {
        return Err(ErrorCode::Einval);
    }
    let p = if raw.starts_with('/') {
        String::from(raw)
    } else {
        format!("{}/{}", domain_path(domid), raw)
    };
    if is_valid_node_path(&p) {
        Ok(p)
    } else {
        Err(ErrorCode::Einval)
    }
}

/// A watch path: a special `@name` (at most [`REL_PATH_MAX`] bytes) is kept
/// as is; anything else is canonicalised. Returns the path and whether it
/// was relative (events on relative watches are reported relative).
pub fn canonicalize_watch(domid: DomId, raw: &str) -> Result<(String, bool), ErrorCode> {
    if raw.starts_with('@') {
        if raw.len() > REL_PATH_MAX || !raw.bytes().all(valid_char) {
            return Err(ErrorCode::Einval);
        }
        return Ok((String::from(raw), false));
    }
    Ok((canonicalize(domid, raw)?, !raw.starts_with('/')))
}

/// The parent of a valid absolute path; the root's parent is `None`.
pub fn parent(p: &str) -> Option<&str> {
    if p == "/" {
        return None;
    }
    match p.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => p.get(..i),
        None => None,
    }
}

/// The last component of a valid absolute path (empty for the root).
pub fn basename(p: &str) -> &str {
    match p.rfind('/') {
        Some(i) => p.get(i.saturating_add(1)..).unwrap_or(""),
        None => p,
    }
}

/// `child` joined under `parent`.
pub fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// Whether `child` is `parent` or lies below it (the root is everyone's
/// parent). This is the watch-matching rule.
pub fn is_child(child: &str, parent: &str) -> bool {
    if parent == "/" {
        return child.starts_with('/');
    }
    match child.strip_prefix(parent) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// `p` as a relative watch sees it: with `home/` stripped.
pub fn relative_to<'a>(p: &'a str, home: &str) -> &'a str {
    match p.strip_prefix(home) {
        Some(rest) if rest.is_empty() => rest,
        Some(rest) => rest.strip_prefix('/').unwrap_or(p),
        None => p,
    }
}
