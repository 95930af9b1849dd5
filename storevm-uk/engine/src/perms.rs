//! Node permissions as Xen defines them.
//!
//! A node's permission list is never empty. Its first entry names the
//! node's **owner** and the access every domain not listed gets by default;
//! each later entry grants one domain `r` (read), `w` (write), `b` (both) or
//! `n` (none). The owner, a privileged domain (dom0) and a domain whose
//! target is the owner have full access; otherwise the first later entry
//! naming the domain (or its target) decides, else the default does. Only
//! those with full access may change the permissions, and only a privileged
//! domain may give a node to another owner.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::wire::{parse_domid, ErrorCode};
use crate::DomId;

/// One permission letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// `n`: no access.
    None,
    /// `r`: read only.
    Read,
    /// `w`: write only.
    Write,
    /// `b`: read and write.
    Both,
}

impl Access {
    /// The letter on the wire.
    pub const fn letter(self) -> char {
        match self {
            Access::None => 'n',
            Access::Read => 'r',
            Access::Write => 'w',
            Access::Both => 'b',
        }
    }

    /// May read.
    pub const fn read(self) -> bool {
        matches!(self, Access::Read | Access::Both)
    }

    /// May write.
    pub const fn write(self) -> bool {
        matches!(self, Access::Write | Access::Both)
    }
}

/// One entry of a permission list: a domain and its access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perm {
    /// The domain (for the first entry: the owner).
    pub domid: DomId,
    /// Its access (for the first entry: everyone's default).
    pub access: Access,
}

impl Perm {
    /// Parses `<letter><domid>` such as `r5` or `b0`.
    pub fn parse(s: &[u8]) -> Result<Perm, ErrorCode> {
        let (letter, id) = s.split_first().ok_or(ErrorCode::Einval)?;
        let access = match letter {
            b'n' => Access::None,
            b'r' => Access::Read,
            b'w' => Access::Write,
            b'b' => Access::Both,
            _ => return Err(ErrorCode::Einval),
        };
        Ok(Perm {
            domid: parse_domid(id)?,
            access,
        })
    }

    /// The wire form, such as `r5`.
    pub fn to_wire(&self) -> String {
        format!("{}{}", self.access.letter(), self.domid)
    }
}

/// What a domain may do with a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Rights {
    /// May read the node.
    pub read: bool,
    /// May write (and create children, remove).
    pub write: bool,
    /// Owns it: may change its permissions.
    pub owner: bool,
}

impl Rights {
    /// Everything.
    pub const ALL: Rights = Rights {
        read: true,
        write: true,
        owner: true,
    };

    /// Whether these rights include every right in `want`.
    pub fn covers(self, want: Rights) -> bool {
        (self.read || !want.read) && (self.write || !want.write) && (self.owner || !want.owner)
    }
}

/// Who is asking: a domain, whether it is privileged, and its target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The domain.
    pub domid: DomId,
    /// A privileged domain (dom0): full access everywhere.
    pub privileged: bool,
    /// `XS_SET_TARGET`: the domain this one may act for.
    pub target: Option<DomId>,
}

impl Caller {
    fn is(&self, id: DomId) -> bool {
        self.domid == id || self.target == Some(id)
    }
}

/// A node's permission list (never empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permissions(Vec<Perm>);

impl Permissions {
    /// A list from its entries; `None` if empty.
    pub fn new(perms: Vec<Perm>) -> Option<Permissions> {
        if perms.is_empty() {
            None
        } else {
            Some(Permissions(perms))
        }
    }

    /// Owned by `owner`, with `default` access for everyone else.
    pub fn owned(owner: DomId, default: Access) -> Permissions {
        Permissions(alloc::vec![Perm {
            domid: owner,
            access: default,
        }])
    }

    /// The entries, owner first.
    pub fn entries(&self) -> &[Perm] {
        &self.0
    }

    /// The owner.
    pub fn owner(&self) -> DomId {
        self.0.first().map_or(0, |p| p.domid)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true (the list is never empty); for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Makes `owner` the owner, keeping the default and the other entries.
    pub fn set_owner(&mut self, owner: DomId) {
        if let Some(first) = self.0.first_mut() {
            first.domid = owner;
        }
    }

    /// Removes the entries (after the first) naming `domid`.
    pub fn forget(&mut self, domid: DomId) {
        let mut first = true;
        self.0
            .retain(|p| core::mem::replace(&mut first, false) || p.domid != domid);
    }

    /// The rights `caller` has on a node with these permissions.
    pub fn rights(&self, caller: &Caller) -> Rights {
        let Some((first, rest)) = self.0.split_first() else {
            return Rights::default();
        };
        if caller.privileged || caller.is(first.domid) {
            return Rights::ALL;
        }
        let access = rest
            .iter()
            .find(|p| caller.is(p.domid))
            .map_or(first.access, |p| p.access);
        Rights {
            read: access.read(),
            write: access.write(),
            owner: false,
        }
    }

    /// The `XS_GET_PERMS` payload: every entry, NUL-terminated.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.0 {
            out.extend_from_slice(p.to_wire().as_bytes());
            out.push(0);
        }
        out
    }
}
