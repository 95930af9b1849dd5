//! The xenstore wire format (`xen/include/public/io/xs_wire.h`): message
//! types, error names, the 16-byte header and the request payload parser.
//!
//! Every message is a header of four little-endian `u32`s — `type`,
//! `req_id`, `tx_id`, `len` — followed by `len` bytes of payload, with
//! `len <= XENSTORE_PAYLOAD_MAX` (4096) in both directions. Payloads are
//! mostly NUL-terminated strings; [`parse_request`] turns one into a typed
//! [`Request`] or the [`ErrorCode`] the protocol answers malformed input with.
#![deny(clippy::arithmetic_side_effects)]

use alloc::vec::Vec;
use core::fmt;

use crate::path;
use crate::perms::{Perm, Permissions};
use crate::DomId;

/// Size of the message header in bytes.
pub const HEADER_LEN: usize = 16;
/// `XENSTORE_PAYLOAD_MAX`: the largest payload in either direction.
pub const PAYLOAD_MAX: usize = 4096;
/// `XENSTORE_ABS_PATH_MAX`: the longest absolute path.
pub const ABS_PATH_MAX: usize = 3072;
/// `XENSTORE_REL_PATH_MAX`: the longest relative path (and special watch path).
pub const REL_PATH_MAX: usize = 2048;
/// The first reserved domain id (`DOMID_FIRST_RESERVED`): ids from here up
/// name no real domain.
pub const DOMID_FIRST_RESERVED: u32 = 0x7ff0;

/// The message types of `enum xsd_sockmsg_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum MsgType {
    /// `XS_CONTROL` (formerly `XS_DEBUG`), 0.
    Control,
    /// `XS_DIRECTORY`, 1.
    Directory,
    /// `XS_READ`, 2.
    Read,
    /// `XS_GET_PERMS`, 3.
    GetPerms,
    /// `XS_WATCH`, 4.
    Watch,
    /// `XS_UNWATCH`, 5.
    Unwatch,
    /// `XS_TRANSACTION_START`, 6.
    TransactionStart,
    /// `XS_TRANSACTION_END`, 7.
    TransactionEnd,
    /// `XS_INTRODUCE`, 8.
    Introduce,
    /// `XS_RELEASE`, 9.
    Release,
    /// `XS_GET_DOMAIN_PATH`, 10.
    GetDomainPath,
    /// `XS_WRITE`, 11.
    Write,
    /// `XS_MKDIR`, 12.
    Mkdir,
    /// `XS_RM`, 13.
    Rm,
    /// `XS_SET_PERMS`, 14.
    SetPerms,
    /// `XS_WATCH_EVENT`, 15 (server to client only).
    WatchEvent,
    /// `XS_ERROR`, 16 (server to client only).
    Error,
    /// `XS_IS_DOMAIN_INTRODUCED`, 17.
    IsDomainIntroduced,
    /// `XS_RESUME`, 18.
    Resume,
    /// `XS_SET_TARGET`, 19.
    SetTarget,
    /// `XS_RESET_WATCHES`, 21 (20 was `XS_RESTRICT`, now unused).
    ResetWatches,
    /// `XS_DIRECTORY_PART`, 22.
    DirectoryPart,
}

impl MsgType {
    /// Every type, in wire order.
    pub const ALL: [MsgType; 22] = [
        MsgType::Control,
        MsgType::Directory,
        MsgType::Read,
        MsgType::GetPerms,
        MsgType::Watch,
        MsgType::Unwatch,
        MsgType::TransactionStart,
        MsgType::TransactionEnd,
        MsgType::Introduce,
        MsgType::Release,
        MsgType::GetDomainPath,
        MsgType::Write,
        MsgType::Mkdir,
        MsgType::Rm,
        MsgType::SetPerms,
        MsgType::WatchEvent,
        MsgType::Error,
        MsgType::IsDomainIntroduced,
        MsgType::Resume,
        MsgType::SetTarget,
        MsgType::ResetWatches,
        MsgType::DirectoryPart,
    ];

    /// The type's number on the wire.
    pub const fn code(self) -> u32 {
        match self {
            MsgType::Control => 0,
            MsgType::Directory => 1,
            MsgType::Read => 2,
            MsgType::GetPerms => 3,
            MsgType::Watch => 4,
            MsgType::Unwatch => 5,
            MsgType::TransactionStart => 6,
            MsgType::TransactionEnd => 7,
            MsgType::Introduce => 8,
            MsgType::Release => 9,
            MsgType::GetDomainPath => 10,
            MsgType::Write => 11,
            MsgType::Mkdir => 12,
            MsgType::Rm => 13,
            MsgType::SetPerms => 14,
            MsgType::WatchEvent => 15,
            MsgType::Error => 16,
            MsgType::IsDomainIntroduced => 17,
            MsgType::Resume => 18,
            MsgType::SetTarget => 19,
            MsgType::ResetWatches => 21,
            MsgType::DirectoryPart => 22,
        }
    }

    /// The type with wire number `code`, if there is one.
    pub fn from_code(code: u32) -> Option<MsgType> {
        MsgType::ALL.iter().copied().find(|t| t.code() == code)
    }

    /// Only privileged domains may send this request (`XS_FLAG_PRIV`).
    pub const fn privileged_only(self) -> bool {
        matches!(
            self,
            MsgType::Control
                | MsgType::Introduce
                | MsgType::Release
                | MsgType::IsDomainIntroduced
                | MsgType::Resume
                | MsgType::SetTarget
        )
    }

    /// The request ignores the header's `tx_id` (`XS_FLAG_NOTID`).
    pub const fn ignores_tx_id(self) -> bool {
        matches!(self, MsgType::Watch | MsgType::Unwatch)
    }

    /// The request runs inside the transaction named by `tx_id`, if any.
    pub const fn transactional(self) -> bool {
        matches!(
            self,
            MsgType::Directory
                | MsgType::DirectoryPart
                | MsgType::Read
                | MsgType::GetPerms
                | MsgType::Write
                | MsgType::Mkdir
                | MsgType::Rm
                | MsgType::SetPerms
        )
    }
}

/// The error names of `xsd_errors[]`, sent as strings in `XS_ERROR` replies.
///
/// Quota violations use the names Xen's xenstored uses: `ENOSPC` for nodes,
/// entry size, permissions per node and transactions, `E2BIG` for watches
/// and over-long payloads. (There is no `EQUOTA` in `xs_wire.h`.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// Invalid argument: malformed payload, bad path, bad domain id.
    Einval,
    /// Permission denied.
    Eacces,
    /// Already exists (a duplicate watch, a re-introduction with other rings).
    Eexist,
    /// Is a directory (unused by this store, listed for completeness).
    Eisdir,
    /// No such node, transaction, watch or domain.
    Enoent,
    /// Out of memory.
    Enomem,
    /// Quota exceeded (nodes, entry size, permissions, transactions).
    Enospc,
    /// I/O error.
    Eio,
    /// Directory not empty (unused by this store).
    Enotempty,
    /// Unknown or unsupported request type.
    Enosys,
    /// Read-only (unused by this store).
    Erofs,
    /// Busy: a transaction started inside a transaction.
    Ebusy,
    /// A transaction conflicted with another change; retry it.
    Eagain,
    /// Already connected (unused by this store).
    Eisconn,
    /// Too big: a reply over the payload limit, or the watch quota.
    E2big,
    /// Not permitted: an unprivileged domain tried to change a node's owner.
    Eperm,
}

impl ErrorCode {
    /// Every code, in `xsd_errors[]` order.
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::Einval,
        ErrorCode::Eacces,
        ErrorCode::Eexist,
        ErrorCode::Eisdir,
        ErrorCode::Enoent,
        ErrorCode::Enomem,
        ErrorCode::Enospc,
        ErrorCode::Eio,
        ErrorCode::Enotempty,
        ErrorCode::Enosys,
        ErrorCode::Erofs,
        ErrorCode::Ebusy,
        ErrorCode::Eagain,
        ErrorCode::Eisconn,
        ErrorCode::E2big,
        ErrorCode::Eperm,
    ];

    /// The name sent on the wire (without the terminating NUL).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Einval => "EINVAL",
            ErrorCode::Eacces => "EACCES",
            ErrorCode::Eexist => "EEXIST",
            ErrorCode::Eisdir => "EISDIR",
            ErrorCode::Enoent => "ENOENT",
            ErrorCode::Enomem => "ENOMEM",
            ErrorCode::Enospc => "ENOSPC",
            ErrorCode::Eio => "EIO",
            ErrorCode::Enotempty => "ENOTEMPTY",
            ErrorCode::Enosys => "ENOSYS",
            ErrorCode::Erofs => "EROFS",
            ErrorCode::Ebusy => "EBUSY",
            ErrorCode::Eagain => "EAGAIN",
            ErrorCode::Eisconn => "EISCONN",
            ErrorCode::E2big => "E2BIG",
            ErrorCode::Eperm => "EPERM",
        }
    }

    /// The code named `name` (no NUL), if any.
    pub fn from_name(name: &[u8]) -> Option<ErrorCode> {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|e| e.as_str().as_bytes() == name)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `struct xsd_sockmsg`: the header in front of every message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Header {
    /// Message type (an [`MsgType`] code; unknown values are possible).
    pub msg_type: u32,
    /// Request id, echoed in the reply.
    pub req_id: u32,
    /// Transaction id (0 outside transactions), echoed in the reply.
    pub tx_id: u32,
    /// Payload length in bytes.
    pub len: u32,
}

impl Header {
    /// Decodes the first [`HEADER_LEN`] bytes of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Header, WireError> {
        let word = |i: usize| -> Result<u32, WireError> {
            let start = i.checked_mul(4).ok_or(WireError::Truncated)?;
            let end = start.checked_add(4).ok_or(WireError::Truncated)?;
            let b = bytes.get(start..end).ok_or(WireError::Truncated)?;
            let mut a = [0u8; 4];
            a.copy_from_slice(b);
            Ok(u32::from_le_bytes(a))
        };
        Ok(Header {
            msg_type: word(0)?,
            req_id: word(1)?,
            tx_id: word(2)?,
            len: word(3)?,
        })
    }

    /// Encodes the header.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        for (chunk, v) in
            out.chunks_exact_mut(4)
                .zip([self.msg_type, self.req_id, self.tx_id, self.len])
        {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// The known message type, if the number is one.
    pub fn kind(&self) -> Option<MsgType> {
        MsgType::from_code(self.msg_type)
    }
}

/// A framing error: the bytes are not one well-formed message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// Fewer than [`HEADER_LEN`] bytes.
    Truncated,
    /// The header announces more than [`PAYLOAD_MAX`] bytes of payload.
    /// xenstored drops such a connection: the stream cannot be resynchronised.
    PayloadTooLong(u32),
    /// The header's `len` does not match the bytes that follow it.
    LengthMismatch {
        /// What the header says.
        header: u32,
        /// What followed the header.
        actual: usize,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => write!(f, "message shorter than its {HEADER_LEN}-byte header"),
            WireError::PayloadTooLong(n) => {
                write!(
                    f,
                    "payload of {n} bytes exceeds XENSTORE_PAYLOAD_MAX ({PAYLOAD_MAX})"
                )
            }
            WireError::LengthMismatch { header, actual } => write!(
                f,
                "header announces {header} payload bytes but {actual} follow"
            ),
        }
    }
}

/// For a transport reading a byte stream (the ring): how many bytes the
/// message starting with this header occupies in total, or the error that
/// must end the connection.
pub fn frame_len(header: &Header) -> Result<usize, WireError> {
    let len = usize::try_from(header.len).map_err(|_| WireError::PayloadTooLong(header.len))?;
    if len > PAYLOAD_MAX {
        return Err(WireError::PayloadTooLong(header.len));
    }
    HEADER_LEN
        .checked_add(len)
        .ok_or(WireError::PayloadTooLong(header.len))
}

/// Splits one complete message into header and payload.
pub fn parse_message(bytes: &[u8]) -> Result<(Header, &[u8]), WireError> {
    let header = Header::parse(bytes)?;
    frame_len(&header)?;
    let payload = bytes.get(HEADER_LEN..).ok_or(WireError::Truncated)?;
    if payload.len() != header.len as usize {
        return Err(WireError::LengthMismatch {
            header: header.len,
            actual: payload.len(),
        });
    }
    Ok((header, payload))
}

/// Builds a message; `None` when the payload exceeds [`PAYLOAD_MAX`].
pub fn encode(msg_type: u32, req_id: u32, tx_id: u32, payload: &[u8]) -> Option<Vec<u8>> {
    if payload.len() > PAYLOAD_MAX {
        return None;
    }
    let len = u32::try_from(payload.len()).ok()?;
    let header = Header {
        msg_type,
        req_id,
        tx_id,
        len,
    };
    let mut out = Vec::with_capacity(HEADER_LEN.checked_add(payload.len())?);
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(payload);
    Some(out)
}

/// A request, parsed and validated as far as the payload alone allows.
///
/// Paths are as sent (absolute or relative); the store canonicalises them
/// against the sender's home `/local/domain/<domid>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    /// `XS_CONTROL <command>|[<args>|]*`.
    Control {
        /// The command and its arguments.
        args: Vec<&'a [u8]>,
    },
    /// `XS_DIRECTORY <path>|`.
    Directory {
        /// Node whose children to list.
        path: &'a str,
    },
    /// `XS_DIRECTORY_PART <path>|<offset>|`.
    DirectoryPart {
        /// Node whose children to list.
        path: &'a str,
        /// Byte offset into the NUL-separated child list.
        offset: u32,
    },
    /// `XS_READ <path>|`.
    Read {
        /// Node to read.
        path: &'a str,
    },
    /// `XS_GET_PERMS <path>|`.
    GetPerms {
        /// Node (or `@introduceDomain` / `@releaseDomain`).
        path: &'a str,
    },
    /// `XS_WATCH <wpath>|<token>|`.
    Watch {
        /// Path or `@special` to watch.
        path: &'a str,
        /// Opaque token echoed in events.
        token: &'a [u8],
    },
    /// `XS_UNWATCH <wpath>|<token>|`.
    Unwatch {
        /// Path as given to `XS_WATCH`.
        path: &'a str,
        /// Token as given to `XS_WATCH`.
        token: &'a [u8],
    },
    /// `XS_TRANSACTION_START |`.
    TransactionStart,
    /// `XS_TRANSACTION_END T|` or `F|`.
    TransactionEnd {
        /// `T`: commit; `F`: discard.
        commit: bool,
    },
    /// `XS_INTRODUCE <domid>|<mfn>|<evtchn>|`.
    Introduce {
        /// Domain to connect.
        domid: DomId,
        /// Frame of its ring page (signed decimal on the wire).
        mfn: i64,
        /// Its unbound event channel port.
        evtchn: u32,
    },
    /// `XS_RELEASE <domid>|`.
    Release {
        /// Domain to disconnect.
        domid: DomId,
    },
    /// `XS_GET_DOMAIN_PATH <domid>|`.
    GetDomainPath {
        /// Domain whose home path to return.
        domid: DomId,
    },
    /// `XS_IS_DOMAIN_INTRODUCED <domid>|`.
    IsDomainIntroduced {
        /// Domain to ask about.
        domid: DomId,
    },
    /// `XS_RESUME <domid>|`.
    Resume {
        /// Domain to resume.
        domid: DomId,
    },
    /// `XS_SET_TARGET <domid>|<tdomid>|`.
    SetTarget {
        /// Domain that gains access.
        domid: DomId,
        /// Domain whose nodes it may act on.
        target: DomId,
    },
    /// `XS_WRITE <path>|<value|>`.
    Write {
        /// Node to write.
        path: &'a str,
        /// Value (binary; may hold NULs).
        value: &'a [u8],
    },
    /// `XS_MKDIR <path>|`.
    Mkdir {
        /// Node to create.
        path: &'a str,
    },
    /// `XS_RM <path>|`.
    Rm {
        /// Node to remove, with its subtree.
        path: &'a str,
    },
    /// `XS_SET_PERMS <path>|<perm>|+`.
    SetPerms {
        /// Node (or `@introduceDomain` / `@releaseDomain`).
        path: &'a str,
        /// Owner-and-default first, then per-domain entries.
        perms: Permissions,
    },
    /// `XS_RESET_WATCHES |`.
    ResetWatches,
}

/// Splits `payload` into NUL-terminated strings. `None` if bytes follow the
/// last NUL (a string without its terminator).
fn strings(payload: &[u8]) -> Option<Vec<&[u8]>> {
    if payload.is_empty() {
        return Some(Vec::new());
    }
    let body = payload.strip_suffix(&[0])?;
    Some(body.split(|&b| b == 0).collect())
}

/// Exactly `N` NUL-terminated strings.
fn exact<const N: usize>(payload: &[u8]) -> Result<[&[u8]; N], ErrorCode> {
    let v = strings(payload).ok_or(ErrorCode::Einval)?;
    <[&[u8]; N]>::try_from(v).map_err(|_| ErrorCode::Einval)
}

/// A path argument: non-empty, and only the characters xenstore allows.
fn path_arg(bytes: &[u8]) -> Result<&str, ErrorCode> {
    if bytes.is_empty() || bytes.len() > ABS_PATH_MAX || !bytes.iter().all(|&b| path::valid_char(b))
    {
        return Err(ErrorCode::Einval);
    }
    core::str::from_utf8(bytes).map_err(|_| ErrorCode::Einval)
}

/// An unsigned decimal with no sign, no spaces and no overflow.
fn decimal(bytes: &[u8], max: u64) -> Result<u64, ErrorCode> {
    if bytes.is_empty() || bytes.len() > 20 {
        return Err(ErrorCode::Einval);
    }
    let mut v: u64 = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return Err(ErrorCode::Einval);
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(b.wrapping_sub(b'0'))))
            .ok_or(ErrorCode::Einval)?;
    }
    if v > max {
        return Err(ErrorCode::Einval);
    }
    Ok(v)
}

/// A domain id in decimal, 0..=65535.
pub fn parse_domid(bytes: &[u8]) -> Result<DomId, ErrorCode> {
    let v = decimal(bytes, u64::from(DomId::MAX))?;
    DomId::try_from(v).map_err(|_| ErrorCode::Einval)
}

fn signed_decimal(bytes: &[u8]) -> Result<i64, ErrorCode> {
    match bytes.split_first() {
        Some((b'-', rest)) => {
            let v = decimal(rest, 1u64 << 63)?;
            0i64.checked_sub_unsigned(v).ok_or(ErrorCode::Einval)
        }
        _ => {
            let v = decimal(bytes, i64::MAX as u64)?;
            i64::try_from(v).map_err(|_| ErrorCode::Einval)
        }
    }
}

/// Parses the payload of a request of type `kind`.
///
/// Malformed payloads give `EINVAL`; types a client may not send
/// (`XS_WATCH_EVENT`, `XS_ERROR`) give `ENOSYS`. The payload length limit is
/// the framing's business ([`parse_message`]).
pub fn parse_request(kind: MsgType, payload: &[u8]) -> Result<Request<'_>, ErrorCode> {
    use ErrorCode::Einval;
    Ok(match kind {
        MsgType::Control => {
            let args = strings(payload).ok_or(Einval)?;
            if args.is_empty() {
                return Err(Einval);
            }
            Request::Control { args }
        }
        MsgType::Directory => Request::Directory {
            path: path_arg(exact::<1>(payload)?[0])?,
        },
        MsgType::DirectoryPart => {
            let [p, off] = exact::<2>(payload)?;
            Request::DirectoryPart {
                path: path_arg(p)?,
                offset: u32::try_from(decimal(off, u64::from(u32::MAX))?).map_err(|_| Einval)?,
            }
        }
        MsgType::Read => Request::Read {
            path: path_arg(exact::<1>(payload)?[0])?,
        },
        MsgType::GetPerms => Request::GetPerms {
            path: path_arg(exact::<1>(payload)?[0])?,
        },
        MsgType::Watch | MsgType::Unwatch => {
            let [p, token] = exact::<2>(payload)?;
            let path = path_arg(p)?;
            if kind == MsgType::Watch {
                Request::Watch { path, token }
            } else {
                Request::Unwatch { path, token }
            }
        }
        MsgType::TransactionStart => {
            if !(payload.is_empty() || payload == [0]) {
                return Err(Einval);
            }
            Request::TransactionStart
        }
        MsgType::TransactionEnd => match exact::<1>(payload)?[0] {
            b"T" => Request::TransactionEnd { commit: true },
            b"F" => Request::TransactionEnd { commit: false },
            _ => return Err(Einval),
        },
        MsgType::Introduce => {
            let v = strings(payload).ok_or(Einval)?;
            // <domid>|<mfn>|<evtchn>|, optionally followed by one reserved string.
            let (d, m, e) = match v.as_slice() {
                [d, m, e] | [d, m, e, _] => (*d, *m, *e),
                _ => return Err(Einval),
            };
            Request::Introduce {
                domid: parse_domid(d)?,
                mfn: signed_decimal(m)?,
                evtchn: u32::try_from(decimal(e, u64::from(u32::MAX))?).map_err(|_| Einval)?,
            }
        }
        MsgType::Release => Request::Release {
            domid: parse_domid(exact::<1>(payload)?[0])?,
        },
        MsgType::GetDomainPath => Request::GetDomainPath {
            domid: parse_domid(exact::<1>(payload)?[0])?,
        },
        MsgType::IsDomainIntroduced => Request::IsDomainIntroduced {
            domid: parse_domid(exact::<1>(payload)?[0])?,
        },
        MsgType::Resume => Request::Resume {
            domid: parse_domid(exact::<1>(payload)?[0])?,
        },
        MsgType::SetTarget => {
            let [d, t] = exact::<2>(payload)?;
            Request::SetTarget {
                domid: parse_domid(d)?,
                target: parse_domid(t)?,
            }
        }
        MsgType::Write => {
            let nul = payload.iter().position(|&b| b == 0).ok_or(Einval)?;
            let p = payload.get(..nul).ok_or(Einval)?;
            let value = payload
                .get(nul.checked_add(1).ok_or(Einval)?..)
                .ok_or(Einval)?;
            Request::Write {
                path: path_arg(p)?,
                value,
            }
        }
        MsgType::Mkdir => Request::Mkdir {
            path: path_arg(exact::<1>(payload)?[0])?,
        },
        MsgType::Rm => Request::Rm {
            path: path_arg(exact::<1>(payload)?[0])?,
        },
        MsgType::SetPerms => {
            let v = strings(payload).ok_or(Einval)?;
            let (p, rest) = v.split_first().ok_or(Einval)?;
            if rest.is_empty() {
                return Err(Einval);
            }
            let perms = rest
                .iter()
                .map(|s| Perm::parse(s))
                .collect::<Result<Vec<_>, _>>()?;
            Request::SetPerms {
                path: path_arg(p)?,
                perms: Permissions::new(perms).ok_or(Einval)?,
            }
        }
        MsgType::ResetWatches => {
            if !(payload.is_empty() || payload == [0]) {
                return Err(Einval);
            }
            Request::ResetWatches
        }
        MsgType::WatchEvent | MsgType::Error => return Err(ErrorCode::Enosys),
    })
}
