//! The client side of the wire: building requests and reading replies and
//! watch events (for tests, fuzzing and the unikernel's self-check).

use alloc::vec::Vec;

use crate::wire::{self, ErrorCode, Header, MsgType, WireError};

/// A request whose payload is `args`, each NUL-terminated. `None` if the
/// payload would exceed the protocol's limit.
pub fn request(kind: MsgType, req_id: u32, tx_id: u32, args: &[&[u8]]) -> Option<Vec<u8>> {
    let mut payload = Vec::new();
    for a in args {
        payload.extend_from_slice(a);
        payload.push(0);
    }
    wire::encode(kind.code(), req_id, tx_id, &payload)
}

/// An `XS_WRITE` request: `path`, NUL, then the value (not terminated).
pub fn write(req_id: u32, tx_id: u32, path: &str, value: &[u8]) -> Option<Vec<u8>> {
    let mut payload = Vec::from(path.as_bytes());
    payload.push(0);
    payload.extend_from_slice(value);
    wire::encode(MsgType::Write.code(), req_id, tx_id, &payload)
}

/// A reply or event from the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply<'a> {
    /// Its header.
    pub header: Header,
    /// Its payload.
    pub payload: &'a [u8],
}

impl<'a> Reply<'a> {
    /// Splits a complete message.
    pub fn parse(msg: &'a [u8]) -> Result<Reply<'a>, WireError> {
        let (header, payload) = wire::parse_message(msg)?;
        Ok(Reply { header, payload })
    }

    /// Its type, if known.
    pub fn kind(&self) -> Option<MsgType> {
        self.header.kind()
    }

    /// The error, for an `XS_ERROR` reply.
    pub fn error(&self) -> Option<ErrorCode> {
        if self.kind() != Some(MsgType::Error) {
            return None;
        }
        ErrorCode::from_name(self.payload.strip_suffix(&[0]).unwrap_or(self.payload))
    }

    /// The payload's NUL-terminated strings (a last unterminated piece is
    /// included as is).
    pub fn strings(&self) -> Vec<&'a [u8]> {
        let body = self.payload.strip_suffix(&[0]).unwrap_or(self.payload);
        if body.is_empty() && self.payload.len() <= 1 {
            return Vec::new();
        }
        body.split(|&b| b == 0).collect()
    }

    /// `(path, token)` of an `XS_WATCH_EVENT`.
    pub fn event(&self) -> Option<(&'a [u8], &'a [u8])> {
        if self.kind() != Some(MsgType::WatchEvent) {
            return None;
        }
        match self.strings().as_slice() {
            [p, t] => Some((p, t)),
            _ => None,
        }
    }
}
