//! A xenstore client over the domain's own ring page
//! (`HVM_PARAM_STORE_PFN`, notified through `HVM_PARAM_STORE_EVTCHN`).
//!
//! Messages use the store engine's wire format (`xenstore_engine::wire`,
//! `xenstore_engine::client`): a 16-byte header {type, req_id, tx_id, len}
//! and at most 4096 bytes of payload, mostly NUL-terminated strings. One
//! request is outstanding at a time: [`XenStore`] writes it into the
//! request ring ([`super::ring`]), notifies the store, and reads messages
//! from the reply ring until the reply with its `req_id` arrives; watch
//! events read meanwhile are queued (at most [`MAX_QUEUED_EVENTS`]) for
//! [`XenStore::next_event`] / [`XenStore::wait_event`].
//!
//! The store is not trusted. Every wait has a deadline ([`XenStore::set_timeout`],
//! default [`DEFAULT_TIMEOUT`]). Ring indices more than 1024 apart, a
//! header announcing more than 4096 bytes, a reply with another `req_id`
//! or type, a reply nobody asked for, or a timeout in the middle of an
//! exchange leave the stream unusable: the client then answers every call
//! with that first error ([`XenStore::broken`]). An `XS_ERROR` reply is an
//! ordinary [`StoreError::Store`].
//!
//! The transport is a [`StoreLink`], so the whole client runs in host tests
//! against the store engine over a plain page.

use super::alloc;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use xenstore_engine::client::{self, Reply};
use xenstore_engine::wire::{self, Header, MsgType, HEADER_LEN, PAYLOAD_MAX};

pub use xenstore_engine::perms::{Access, Perm};
pub use xenstore_engine::wire::ErrorCode;

use super::error::Errno;
use super::page::Page;
use super::ring::{Consumer, Producer, Ring, RingError};
use crate::time::Instant;

/// How long a request may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Watch events kept for the program at most; more are dropped (counted
/// in [`XenStore::dropped_events`]).
pub const MAX_QUEUED_EVENTS: usize = 256;

/// What the client needs from its surroundings.
pub trait StoreLink {
    /// The ring page.
    fn ring(&self) -> Page<'_>;
    /// Signals the store that the ring changed.
    fn notify(&mut self) -> Result<(), Errno>;
    /// Sleeps until the store signals (since the last call) or `deadline`
    /// passes; false on timeout.
    fn wait(&mut self, deadline: Instant) -> bool;
    /// The current time.
    fn now(&self) -> Instant;
}

/// A transaction; [`Tx::NONE`] for requests outside any.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tx(pub u32);

impl Tx {
    /// No transaction.
    pub const NONE: Tx = Tx(0);
}

/// A watch fired: `path` changed (or the watch was just set), `token` as
/// given to [`XenStore::watch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// The path that changed.
    pub path: String,
    /// The watch's token.
    pub token: String,
}

/// The store did not follow the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// A header announced more than `XENSTORE_PAYLOAD_MAX` bytes.
    PayloadTooLong(u32),
    /// A reply carried another request's id.
    ReqId {
        /// The outstanding request's id.
        expected: u32,
        /// The reply's.
        got: u32,
    },
    /// A reply of another type than the request (and not `XS_ERROR`).
    Type {
        /// The request's type.
        expected: u32,
        /// The reply's.
        got: u32,
    },
    /// A reply arrived while no request was outstanding.
    Unsolicited(u32),
    /// A reply's payload is malformed for its type.
    BadPayload(MsgType),
}

/// Why a store request failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The store answered `XS_ERROR` with this error.
    Store(ErrorCode),
    /// The store answered `XS_ERROR` with a name `xs_wire.h` does not list.
    UnknownError(String),
    /// The store did not answer (or take the request) in time.
    Timeout,
    /// The ring's indices are corrupt.
    Ring(RingError),
    /// The store broke the protocol.
    Protocol(ProtocolError),
    /// The request would exceed `XENSTORE_PAYLOAD_MAX`.
    TooLong(usize),
    /// A path or token contains a NUL byte.
    BadArgument,
    /// Notifying the store failed.
    Notify(Errno),
    /// The domain has no store (its store params are 0 or unusable).
    NoStore,
    /// The store connection is already taken.
    InUse,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Store(e) => write!(f, "xenstore error {e}"),
            StoreError::UnknownError(s) => write!(f, "xenstore error {s:?} (unknown)"),
            StoreError::Timeout => f.write_str("xenstore did not answer in time"),
            StoreError::Ring(e) => write!(f, "xenstore ring: {e}"),
            StoreError::Protocol(p) => match *p {
                ProtocolError::PayloadTooLong(n) => write!(
                    f,
                    "xenstore sent a {n}-byte payload (XENSTORE_PAYLOAD_MAX is {PAYLOAD_MAX})"
                ),
                ProtocolError::ReqId { expected, got } => {
                    write!(f, "xenstore replied to request {got}, expected {expected}")
                }
                ProtocolError::Type { expected, got } => {
                    write!(
                        f,
                        "xenstore replied with type {got} to a type-{expected} request"
                    )
                }
                ProtocolError::Unsolicited(t) => {
                    write!(f, "xenstore sent a type-{t} reply nobody asked for")
                }
                ProtocolError::BadPayload(t) => write!(f, "xenstore sent a malformed {t:?} reply"),
            },
            StoreError::TooLong(n) => write!(
                f,
                "request payload of {n} bytes exceeds XENSTORE_PAYLOAD_MAX ({PAYLOAD_MAX})"
            ),
            StoreError::BadArgument => f.write_str("path or token contains a NUL byte"),
            StoreError::Notify(e) => write!(f, "notifying xenstore failed: {e}"),
            StoreError::NoStore => f.write_str("this domain has no xenstore ring"),
            StoreError::InUse => f.write_str("the xenstore connection is already in use"),
        }
    }
}

impl StoreError {
    /// The nearest errno, for interfaces that only carry one: the store's
    /// error name as Xen's errno, `ETIMEDOUT`, `EIO` for a broken or
    /// unknown answer, `E2BIG`, `EINVAL`, the notify's own, `ENODEV`
    /// without a store, `EBUSY` when taken.
    pub fn errno(&self) -> Errno {
        match self {
            StoreError::Store(code) => Errno::from_name(code.as_str()).unwrap_or(Errno::EIO),
            StoreError::UnknownError(_) | StoreError::Ring(_) | StoreError::Protocol(_) => {
                Errno::EIO
            }
            StoreError::Timeout => Errno::ETIMEDOUT,
            StoreError::TooLong(_) => Errno::E2BIG,
            StoreError::BadArgument => Errno::EINVAL,
            StoreError::Notify(e) => *e,
            StoreError::NoStore => Errno::ENODEV,
            StoreError::InUse => Errno::EBUSY,
        }
    }
}

/// A xenstore connection over a [`StoreLink`].
pub struct XenStore<L: StoreLink> {
    link: L,
    req: Producer,
    rsp: Consumer,
    next_id: u32,
    timeout: Duration,
    /// The message being received (header first).
    rx: Vec<u8>,
    events: VecDeque<WatchEvent>,
    dropped: usize,
    broken: Option<StoreError>,
}

fn no_nul(s: &str) -> Result<&[u8], StoreError> {
    if s.as_bytes().contains(&0) {
        Err(StoreError::BadArgument)
    } else {
        Ok(s.as_bytes())
    }
}

impl<L: StoreLink> XenStore<L> {
    /// A client over `link`, taking the ring's indices as they are.
    pub fn new(link: L) -> XenStore<L> {
        let page = link.ring();
        let req = Producer::attach(&page, Ring::Req);
        let rsp = Consumer::attach(&page, Ring::Rsp);
        XenStore {
            link,
            req,
            rsp,
            next_id: 1,
            timeout: DEFAULT_TIMEOUT,
            rx: Vec::new(),
            events: VecDeque::new(),
            dropped: 0,
            broken: None,
        }
    }

    /// The link.
    pub fn link(&self) -> &L {
        &self.link
    }

    /// The link, mutably.
    pub fn link_mut(&mut self) -> &mut L {
        &mut self.link
    }

    /// Sets how long one request may take.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The error that made the connection unusable, if one did.
    pub fn broken(&self) -> Option<&StoreError> {
        self.broken.as_ref()
    }

    /// Watch events dropped because the queue was full or they were not UTF-8.
    pub fn dropped_events(&self) -> usize {
        self.dropped
    }

    fn fail(&mut self, e: StoreError) -> StoreError {
        if self.broken.is_none() {
            self.broken = Some(e.clone());
        }
        e
    }

    fn notify(&mut self) -> Result<(), StoreError> {
        self.link.notify().map_err(StoreError::Notify)
    }

    /// Writes all of `msg`, waiting for space until `deadline`.
    fn send(&mut self, msg: &[u8], deadline: Instant) -> Result<(), StoreError> {
        let mut sent = 0;
        while sent < msg.len() {
            let mut page = self.link.ring();
            let rest = msg.get(sent..).unwrap_or_default();
            let n = self.req.write(&mut page, rest).map_err(StoreError::Ring)?;
            if n > 0 {
                sent += n;
                self.notify()?;
            } else if !self.wait_until(deadline) {
                return Err(StoreError::Timeout);
            }
        }
        Ok(())
    }

    /// Reads what is available of the current message; returns it once
    /// complete. Never blocks.
    fn pump(&mut self) -> Result<Option<(Header, Vec<u8>)>, StoreError> {
        loop {
            let header = self
                .rx
                .get(..HEADER_LEN)
                .map(|h| Header::parse(h).unwrap_or_default());
            let need = match header {
                None => HEADER_LEN,
                Some(h) => match wire::frame_len(&h) {
                    Ok(n) => n,
                    Err(_) => {
                        return Err(StoreError::Protocol(ProtocolError::PayloadTooLong(h.len)))
                    }
                },
            };
            if let (Some(h), true) = (header, self.rx.len() >= need) {
                let mut msg = core::mem::take(&mut self.rx);
                let payload = msg.split_off(HEADER_LEN.min(msg.len()));
                return Ok(Some((h, payload)));
            }
            let have = self.rx.len();
            self.rx.resize(need, 0);
            let mut page = self.link.ring();
            let got = self
                .rsp
                .read(&mut page, self.rx.get_mut(have..).unwrap_or_default());
            let n = match got {
                Ok(n) => n,
                Err(e) => {
                    self.rx.truncate(have);
                    return Err(StoreError::Ring(e));
                }
            };
            self.rx.truncate(have + n);
            if n == 0 {
                return Ok(None);
            }
            self.notify()?;
        }
    }

    /// Whether `deadline` has passed; else waits for a signal from the store
    /// (false on timeout).
    fn wait_until(&mut self, deadline: Instant) -> bool {
        self.link.now() < deadline && self.link.wait(deadline)
    }

    /// Queues a watch event.
    fn queue_event(&mut self, payload: &[u8], header: Header) {
        let reply = Reply { header, payload };
        let event = reply.event().and_then(|(p, t)| {
            Some(WatchEvent {
                path: String::from(core::str::from_utf8(p).ok()?),
                token: String::from(core::str::from_utf8(t).ok()?),
            })
        });
        match event {
            Some(e) if self.events.len() < MAX_QUEUED_EVENTS => self.events.push_back(e),
            _ => self.dropped += 1,
        }
    }

    /// Takes in the complete messages available (at most
    /// [`MAX_QUEUED_EVENTS`], so a store that keeps writing cannot hold the
    /// caller), queueing watch events; any other message is unsolicited.
    fn drain(&mut self) -> Result<(), StoreError> {
        for _ in 0..MAX_QUEUED_EVENTS {
            let Some((h, payload)) = self.pump()? else {
                break;
            };
            if h.msg_type == MsgType::WatchEvent.code() {
                self.queue_event(&payload, h);
            } else {
                return Err(StoreError::Protocol(ProtocolError::Unsolicited(h.msg_type)));
            }
        }
        Ok(())
    }

    /// Sends one request and returns its reply's payload.
    fn exchange(
        &mut self,
        msg: Option<Vec<u8>>,
        kind: MsgType,
        id: u32,
    ) -> Result<Vec<u8>, StoreError> {
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        let msg = msg.ok_or(StoreError::TooLong(0))?;
        let deadline = self.link.now().saturating_add(self.timeout);
        let result = self.exchange_inner(&msg, kind, id, deadline);
        match result {
            Ok(Ok(payload)) => Ok(payload),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// `Err`: fatal; `Ok(Err)`: the store's answer was an error.
    fn exchange_inner(
        &mut self,
        msg: &[u8],
        kind: MsgType,
        id: u32,
        deadline: Instant,
    ) -> Result<Result<Vec<u8>, StoreError>, StoreError> {
        self.drain()?;
        self.send(msg, deadline)?;
        loop {
            let Some((h, payload)) = self.pump()? else {
                if !self.wait_until(deadline) {
                    return Err(StoreError::Timeout);
                }
                continue;
            };
            if h.msg_type == MsgType::WatchEvent.code() {
                self.queue_event(&payload, h);
                // A store that only ever sends events still runs out of time.
                if self.link.now() >= deadline {
                    return Err(StoreError::Timeout);
                }
                continue;
            }
            if h.req_id != id {
                return Err(StoreError::Protocol(ProtocolError::ReqId {
                    expected: id,
                    got: h.req_id,
                }));
            }
            if h.msg_type == MsgType::Error.code() {
                let reply = Reply {
                    header: h,
                    payload: &payload,
                };
                return Ok(Err(match reply.error() {
                    Some(code) => StoreError::Store(code),
                    None => {
                        let name = payload.strip_suffix(&[0]).unwrap_or(&payload);
                        StoreError::UnknownError(String::from_utf8_lossy(name).into_owned())
                    }
                }));
            }
            if h.msg_type != kind.code() {
                return Err(StoreError::Protocol(ProtocolError::Type {
                    expected: kind.code(),
                    got: h.msg_type,
                }));
            }
            return Ok(Ok(payload));
        }
    }

    fn next_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id = id.wrapping_add(1).max(1);
        id
    }

    fn request(&mut self, kind: MsgType, tx: Tx, args: &[&[u8]]) -> Result<Vec<u8>, StoreError> {
        let len: usize = args.iter().map(|a| a.len() + 1).sum();
        if len > PAYLOAD_MAX {
            return Err(StoreError::TooLong(len));
        }
        let id = self.next_id();
        let msg = client::request(kind, id, tx.0, args);
        self.exchange(msg, kind, id)
    }

    fn strings(kind: MsgType, payload: &[u8]) -> Result<Vec<String>, StoreError> {
        let reply = Reply {
            header: Header::default(),
            payload,
        };
        reply
            .strings()
            .into_iter()
            .map(|s| {
                core::str::from_utf8(s)
                    .map(String::from)
                    .map_err(|_| StoreError::Protocol(ProtocolError::BadPayload(kind)))
            })
            .collect()
    }

    /// The value of `path`.
    pub fn read(&mut self, tx: Tx, path: &str) -> Result<Vec<u8>, StoreError> {
        let p = no_nul(path)?;
        self.request(MsgType::Read, tx, &[p])
    }

    /// Sets the value of `path` (creating it and missing parents).
    pub fn write(&mut self, tx: Tx, path: &str, value: &[u8]) -> Result<(), StoreError> {
        let p = no_nul(path)?;
        let len = p.len() + 1 + value.len();
        if len > PAYLOAD_MAX {
            return Err(StoreError::TooLong(len));
        }
        let id = self.next_id();
        let msg = client::write(id, tx.0, path, value);
        self.exchange(msg, MsgType::Write, id).map(drop)
    }

    /// Creates `path` (and missing parents) with an empty value.
    pub fn mkdir(&mut self, tx: Tx, path: &str) -> Result<(), StoreError> {
        let p = no_nul(path)?;
        self.request(MsgType::Mkdir, tx, &[p]).map(drop)
    }

    /// Removes `path` and everything below it.
    pub fn rm(&mut self, tx: Tx, path: &str) -> Result<(), StoreError> {
        let p = no_nul(path)?;
        self.request(MsgType::Rm, tx, &[p]).map(drop)
    }

    /// The names of `path`'s children.
    pub fn directory(&mut self, tx: Tx, path: &str) -> Result<Vec<String>, StoreError> {
        let p = no_nul(path)?;
        let payload = self.request(MsgType::Directory, tx, &[p])?;
        Self::strings(MsgType::Directory, &payload)
    }

    /// `path`'s permissions: owner and default access first.
    pub fn get_perms(&mut self, tx: Tx, path: &str) -> Result<Vec<Perm>, StoreError> {
        let p = no_nul(path)?;
        let payload = self.request(MsgType::GetPerms, tx, &[p])?;
        let bad = || StoreError::Protocol(ProtocolError::BadPayload(MsgType::GetPerms));
        let reply = Reply {
            header: Header::default(),
            payload: &payload,
        };
        let perms = reply
            .strings()
            .into_iter()
            .map(|s| Perm::parse(s).map_err(|_| bad()))
            .collect::<Result<Vec<_>, _>>()?;
        if perms.is_empty() {
            return Err(bad());
        }
        Ok(perms)
    }

    /// Sets `path`'s permissions: `perms[0]` names the owner and everyone's
    /// default access, later entries one domain each.
    pub fn set_perms(&mut self, tx: Tx, path: &str, perms: &[Perm]) -> Result<(), StoreError> {
        let p = no_nul(path)?;
        let wire: Vec<String> = perms.iter().map(Perm::to_wire).collect();
        let mut args: Vec<&[u8]> = Vec::with_capacity(wire.len() + 1);
        args.push(p);
        args.extend(wire.iter().map(|s| s.as_bytes()));
        self.request(MsgType::SetPerms, tx, &args).map(drop)
    }

    /// Watches `path` (and everything below it); events carry `token`. The
    /// store fires the watch once at once.
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), StoreError> {
        let (p, t) = (no_nul(path)?, no_nul(token)?);
        self.request(MsgType::Watch, Tx::NONE, &[p, t]).map(drop)
    }

    /// Removes a watch set with the same `path` and `token`.
    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), StoreError> {
        let (p, t) = (no_nul(path)?, no_nul(token)?);
        self.request(MsgType::Unwatch, Tx::NONE, &[p, t]).map(drop)
    }

    /// Starts a transaction.
    pub fn transaction_start(&mut self) -> Result<Tx, StoreError> {
        let payload = self.request(MsgType::TransactionStart, Tx::NONE, &[b""])?;
        let digits = payload.strip_suffix(&[0]).unwrap_or(&payload);
        let bad = StoreError::Protocol(ProtocolError::BadPayload(MsgType::TransactionStart));
        let text = core::str::from_utf8(digits).map_err(|_| bad.clone())?;
        match text.parse::<u32>() {
            Ok(id) if id != 0 => Ok(Tx(id)),
            _ => Err(bad),
        }
    }

    /// Ends `tx`, committing it if `commit`; `Err(Store(Eagain))` means it
    /// conflicted with another change and should be retried.
    pub fn transaction_end(&mut self, tx: Tx, commit: bool) -> Result<(), StoreError> {
        let arg: &[u8] = if commit { b"T" } else { b"F" };
        self.request(MsgType::TransactionEnd, tx, &[arg]).map(drop)
    }

    /// The home path of domain `domid` (`/local/domain/<domid>`).
    pub fn domain_path(&mut self, domid: u16) -> Result<String, StoreError> {
        let id = alloc::format!("{domid}");
        let payload = self.request(MsgType::GetDomainPath, Tx::NONE, &[id.as_bytes()])?;
        let s = payload.strip_suffix(&[0]).unwrap_or(&payload);
        core::str::from_utf8(s)
            .map(String::from)
            .map_err(|_| StoreError::Protocol(ProtocolError::BadPayload(MsgType::GetDomainPath)))
    }

    /// The next queued watch event, after taking in whatever the store has
    /// sent (does not wait).
    pub fn next_event(&mut self) -> Result<Option<WatchEvent>, StoreError> {
        if let Some(e) = self.events.pop_front() {
            return Ok(Some(e));
        }
        if let Some(e) = &self.broken {
            return Err(e.clone());
        }
        if let Err(e) = self.drain() {
            return Err(self.fail(e));
        }
        Ok(self.events.pop_front())
    }

    /// Waits until a watch event arrives or `deadline` passes (`Ok(None)`).
    pub fn wait_event(&mut self, deadline: Instant) -> Result<Option<WatchEvent>, StoreError> {
        loop {
            if let Some(e) = self.next_event()? {
                return Ok(Some(e));
            }
            if !self.wait_until(deadline) {
                return self.next_event();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::page::testing::TestPage;
    use super::super::ring::{REQ_CONS, REQ_PROD, RING_SIZE, RSP_CONS, RSP_PROD};
    use super::*;
    use alloc::boxed::Box;
    use alloc::string::ToString;
    use alloc::vec;
    use xenstore_engine::{Config, Store};

    const DOM: u16 = 5;
    const TIMEOUT: Duration = Duration::from_millis(100);

    /// The store's side of the ring, serving the store engine, with knobs
    /// to make it misbehave.
    struct Sim {
        page: Box<TestPage>,
        store: Store,
        req: Consumer,
        rsp: Producer,
        inbuf: Vec<u8>,
        out: VecDeque<u8>,
        now: u64,
        notified: usize,
        /// Bytes taken from / put into the rings per wake-up.
        req_chunk: usize,
        rsp_chunk: usize,
        /// Never serves.
        silent: bool,
        /// Signals even when nothing happened.
        always_signal: bool,
        /// Sends a watch event on every wake-up.
        spam: bool,
        /// Applied to every message the store sends.
        rewrite: Option<fn(&mut Vec<u8>)>,
    }

    fn msg(kind: MsgType, req_id: u32, args: &[&[u8]]) -> Vec<u8> {
        client::request(kind, req_id, 0, args).unwrap()
    }

    impl Sim {
        fn new() -> Sim {
            let mut config = Config::default();
            config.quota.max_entry_size = 8192;
            let mut store = Store::new(config);
            store.introduce(DOM, 0, 1).unwrap();
            let home = b"/local/domain/5";
            for m in [
                msg(MsgType::Mkdir, 1, &[home]),
                msg(MsgType::SetPerms, 2, &[home, b"n5"]),
            ] {
                let out = store.handle(0, &m);
                let reply = Reply::parse(out.for_domain(0).next().unwrap()).unwrap();
                assert_eq!(reply.error(), None);
            }
            let page = TestPage::new();
            let (req, rsp) = {
                let p = page.page();
                (
                    Consumer::attach(&p, Ring::Req),
                    Producer::attach(&p, Ring::Rsp),
                )
            };
            Sim {
                page,
                store,
                req,
                rsp,
                inbuf: Vec::new(),
                out: VecDeque::new(),
                now: 0,
                notified: 0,
                req_chunk: usize::MAX,
                rsp_chunk: usize::MAX,
                silent: false,
                always_signal: false,
                spam: false,
                rewrite: None,
            }
        }

        fn send(&mut self, mut m: Vec<u8>) {
            if let Some(f) = self.rewrite {
                f(&mut m);
            }
            self.out.extend(m);
        }

        /// One wake-up of the store: whether anything moved.
        fn serve(&mut self) -> bool {
            if self.silent {
                return false;
            }
            let mut moved = false;
            let mut buf = vec![0u8; self.req_chunk.min(RING_SIZE as usize)];
            let n = self.req.read(&mut self.page.page(), &mut buf).unwrap();
            self.inbuf.extend_from_slice(&buf[..n]);
            moved |= n > 0;
            while self.inbuf.len() >= HEADER_LEN {
                let h = Header::parse(&self.inbuf).unwrap();
                let total = HEADER_LEN + h.len as usize;
                if self.inbuf.len() < total {
                    break;
                }
                let m: Vec<u8> = self.inbuf.drain(..total).collect();
                let out = self.store.handle(DOM, &m);
                for reply in out.for_domain(DOM) {
                    self.send(reply.to_vec());
                }
            }
            if self.spam {
                self.send(msg(MsgType::WatchEvent, 0, &[b"spam", b"spam"]));
            }
            let (a, _) = self.out.as_slices();
            let take = a.len().min(self.rsp_chunk);
            let chunk: Vec<u8> = a[..take].to_vec();
            let n = self.rsp.write(&mut self.page.page(), &chunk).unwrap();
            self.out.drain(..n);
            moved | (n > 0)
        }
    }

    impl StoreLink for Sim {
        fn ring(&self) -> Page<'_> {
            self.page.page()
        }
        fn notify(&mut self) -> Result<(), Errno> {
            self.notified += 1;
            Ok(())
        }
        fn wait(&mut self, deadline: Instant) -> bool {
            self.now += 1_000_000;
            let moved = self.serve();
            (moved || self.always_signal) && self.now < deadline.as_nanos()
        }
        fn now(&self) -> Instant {
            Instant::from_nanos(self.now)
        }
    }

    fn client() -> XenStore<Sim> {
        let mut c = XenStore::new(Sim::new());
        c.set_timeout(TIMEOUT);
        c
    }

    #[test]
    fn reads_writes_and_lists() {
        let mut c = client();
        c.write(Tx::NONE, "/local/domain/5/data/x", b"hello")
            .unwrap();
        c.write(Tx::NONE, "data/y", b"").unwrap();
        assert_eq!(c.read(Tx::NONE, "data/x").unwrap(), b"hello");
        assert_eq!(c.read(Tx::NONE, "/local/domain/5/data/y").unwrap(), b"");
        assert_eq!(c.directory(Tx::NONE, "data").unwrap(), ["x", "y"]);
        c.mkdir(Tx::NONE, "data/dir").unwrap();
        assert_eq!(c.directory(Tx::NONE, "data").unwrap(), ["dir", "x", "y"]);
        c.rm(Tx::NONE, "data/x").unwrap();
        assert_eq!(
            c.read(Tx::NONE, "data/x"),
            Err(StoreError::Store(ErrorCode::Enoent))
        );
        assert_eq!(
            c.directory(Tx::NONE, "data/dir").unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            c.write(Tx::NONE, "/local/domain/0/x", b"no"),
            Err(StoreError::Store(ErrorCode::Eacces))
        );
        assert_eq!(c.domain_path(7).unwrap(), "/local/domain/7");
        assert!(c.link().notified >= 8);
        assert!(c.broken().is_none());
    }

    #[test]
    fn errnos() {
        for code in ErrorCode::ALL {
            let e = StoreError::Store(code).errno();
            assert_eq!(e.name(), code.as_str(), "{code}");
        }
        assert_eq!(StoreError::Timeout.errno(), Errno::ETIMEDOUT);
        assert_eq!(
            StoreError::UnknownError("X".to_string()).errno(),
            Errno::EIO
        );
        assert_eq!(StoreError::Notify(Errno::EINVAL).errno(), Errno::EINVAL);
    }

    #[test]
    fn permissions() {
        let mut c = client();
        c.write(Tx::NONE, "data/x", b"1").unwrap();
        let owner = Perm {
            domid: DOM,
            access: Access::None,
        };
        assert_eq!(c.get_perms(Tx::NONE, "data/x").unwrap(), [owner]);
        let reader = Perm {
            domid: 7,
            access: Access::Read,
        };
        c.set_perms(Tx::NONE, "data/x", &[owner, reader]).unwrap();
        assert_eq!(c.get_perms(Tx::NONE, "data/x").unwrap(), [owner, reader]);
        // Only a privileged domain may give a node away.
        let other = Perm {
            domid: 7,
            access: Access::Both,
        };
        assert_eq!(
            c.set_perms(Tx::NONE, "data/x", &[other]),
            Err(StoreError::Store(ErrorCode::Eperm))
        );
    }

    #[test]
    fn large_values_cross_the_ring_in_pieces() {
        let mut c = client();
        c.link_mut().req_chunk = 100;
        c.link_mut().rsp_chunk = 7;
        c.set_timeout(Duration::from_secs(1));
        let value: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
        c.write(Tx::NONE, "data/big", &value).unwrap();
        assert_eq!(c.read(Tx::NONE, "data/big").unwrap(), value);
        // One byte at a time still works, within the deadline.
        c.link_mut().rsp_chunk = 1;
        c.set_timeout(Duration::from_secs(5));
        assert_eq!(c.read(Tx::NONE, "data/big").unwrap(), value);
        // Over the payload limit: refused before anything is sent.
        let sent = c.link().page.page().load_u32(REQ_PROD).unwrap();
        assert_eq!(
            c.write(Tx::NONE, "data/big", &[0; 4096]),
            Err(StoreError::TooLong(4105))
        );
        assert_eq!(c.link().page.page().load_u32(REQ_PROD), Some(sent));
        assert_eq!(c.read(Tx::NONE, "data/\0x"), Err(StoreError::BadArgument));
        assert!(c.broken().is_none());
    }

    #[test]
    fn watches_queue_events() {
        let mut c = client();
        c.watch("data", "tok").unwrap();
        // A new watch fires once at once.
        let e = c.next_event().unwrap().unwrap();
        assert_eq!((e.path.as_str(), e.token.as_str()), ("data", "tok"));
        assert_eq!(c.next_event().unwrap(), None);
        c.write(Tx::NONE, "data/a", b"1").unwrap();
        let e = c
            .wait_event(Instant::from_nanos(u64::MAX))
            .unwrap()
            .unwrap();
        assert_eq!((e.path.as_str(), e.token.as_str()), ("data/a", "tok"));
        c.unwatch("data", "tok").unwrap();
        c.write(Tx::NONE, "data/b", b"1").unwrap();
        let deadline = c.link().now().saturating_add(Duration::from_millis(5));
        assert_eq!(c.wait_event(deadline).unwrap(), None);
        assert_eq!(
            c.unwatch("data", "tok"),
            Err(StoreError::Store(ErrorCode::Enoent))
        );
    }

    #[test]
    fn transactions() {
        let mut c = client();
        let t = c.transaction_start().unwrap();
        assert_ne!(t, Tx::NONE);
        c.write(t, "data/t", b"1").unwrap();
        assert_eq!(
            c.read(Tx::NONE, "data/t"),
            Err(StoreError::Store(ErrorCode::Enoent))
        );
        assert_eq!(c.read(t, "data/t").unwrap(), b"1");
        c.transaction_end(t, true).unwrap();
        assert_eq!(c.read(Tx::NONE, "data/t").unwrap(), b"1");
        // A conflicting change makes the commit fail with EAGAIN.
        let t = c.transaction_start().unwrap();
        assert_eq!(c.read(t, "data/t").unwrap(), b"1");
        c.write(Tx::NONE, "data/t", b"2").unwrap();
        c.write(t, "data/t", b"3").unwrap();
        assert_eq!(
            c.transaction_end(t, true),
            Err(StoreError::Store(ErrorCode::Eagain))
        );
        assert_eq!(c.read(Tx::NONE, "data/t").unwrap(), b"2");
        // Discarding.
        let t = c.transaction_start().unwrap();
        c.write(t, "data/t", b"4").unwrap();
        c.transaction_end(t, false).unwrap();
        assert_eq!(c.read(Tx::NONE, "data/t").unwrap(), b"2");
        assert_eq!(
            c.transaction_end(Tx(999), true),
            Err(StoreError::Store(ErrorCode::Enoent))
        );
    }

    /// After a fatal error every call answers the same.
    fn assert_broken(c: &mut XenStore<Sim>, e: &StoreError) {
        assert_eq!(c.broken(), Some(e));
        assert_eq!(c.read(Tx::NONE, "data").as_ref(), Err(e));
        assert_eq!(c.next_event().as_ref(), Err(e));
    }

    #[test]
    fn hostile_indices() {
        let mut c = client();
        c.write(Tx::NONE, "data/x", b"1").unwrap();
        let p = c.link().page.page();
        let cons = p.load_u32(RSP_CONS).unwrap();
        p.store_u32(RSP_PROD, cons.wrapping_add(2000)).unwrap();
        let e = c.read(Tx::NONE, "data/x").unwrap_err();
        assert!(
            matches!(e, StoreError::Ring(RingError::Corrupt { .. })),
            "{e}"
        );
        assert_broken(&mut c, &e);
        // The request ring too.
        let mut c = client();
        let p = c.link().page.page();
        p.store_u32(REQ_CONS, 4000).unwrap();
        assert!(matches!(c.read(Tx::NONE, "x"), Err(StoreError::Ring(_))));
    }

    #[test]
    fn oversized_payload() {
        let mut c = client();
        c.link_mut().rewrite = Some(|m| m[12..16].copy_from_slice(&5000u32.to_le_bytes()));
        let e = c.read(Tx::NONE, "data").unwrap_err();
        assert_eq!(e, StoreError::Protocol(ProtocolError::PayloadTooLong(5000)));
        assert_eq!(
            e.to_string(),
            "xenstore sent a 5000-byte payload (XENSTORE_PAYLOAD_MAX is 4096)"
        );
        assert_broken(&mut c, &e);
    }

    #[test]
    fn wrong_req_id_or_type() {
        let mut c = client();
        c.link_mut().rewrite = Some(|m| m[4] ^= 0x40);
        let e = c.read(Tx::NONE, "data").unwrap_err();
        assert_eq!(
            e,
            StoreError::Protocol(ProtocolError::ReqId {
                expected: 1,
                got: 0x41
            })
        );
        assert_broken(&mut c, &e);
        let mut c = client();
        c.link_mut().rewrite = Some(|m| m[0] = MsgType::Directory.code() as u8);
        let e = c.read(Tx::NONE, "data").unwrap_err();
        assert_eq!(
            e,
            StoreError::Protocol(ProtocolError::Type {
                expected: 2,
                got: 1
            })
        );
    }

    #[test]
    fn silent_or_chattering_store_times_out() {
        let mut c = client();
        c.link_mut().silent = true;
        assert_eq!(c.read(Tx::NONE, "data"), Err(StoreError::Timeout));
        assert_broken(&mut c, &StoreError::Timeout);
        // Signals without answering: bounded by the deadline.
        let mut c = client();
        c.link_mut().silent = true;
        c.link_mut().always_signal = true;
        assert_eq!(c.read(Tx::NONE, "data"), Err(StoreError::Timeout));
        assert!(c.link().now <= 2 * TIMEOUT.as_nanos() as u64);
        // Floods watch events instead of replying: still bounded, the
        // queue stays bounded.
        let mut c = client();
        c.link_mut().spam = true;
        c.link_mut().rewrite = Some(|m| {
            if m[0] != MsgType::WatchEvent.code() as u8 {
                m.clear();
            }
        });
        assert_eq!(c.read(Tx::NONE, "data"), Err(StoreError::Timeout));
        assert!(c.events.len() <= MAX_QUEUED_EVENTS);
        assert!(c.dropped_events() > 0 || c.events.len() < MAX_QUEUED_EVENTS);
    }

    #[test]
    fn odd_replies() {
        // An error name xs_wire.h does not have.
        let mut c = client();
        c.link_mut().rewrite = Some(|m| {
            *m = msg(MsgType::Error, 1, &[b"EWHAT"]);
        });
        assert_eq!(
            c.read(Tx::NONE, "data"),
            Err(StoreError::UnknownError("EWHAT".to_string()))
        );
        assert!(c.broken().is_none(), "an error reply is an answer");
        // A directory entry that is not UTF-8.
        let mut c = client();
        c.mkdir(Tx::NONE, "data").unwrap();
        c.link_mut().rewrite = Some(|m| *m = msg(MsgType::Directory, 2, &[b"ok", b"\xff"]));
        assert_eq!(
            c.directory(Tx::NONE, "data"),
            Err(StoreError::Protocol(ProtocolError::BadPayload(
                MsgType::Directory
            )))
        );
        // A transaction id that is not a number.
        let mut c = client();
        c.link_mut().rewrite = Some(|m| *m = msg(MsgType::TransactionStart, 1, &[b"x1"]));
        assert!(matches!(
            c.transaction_start(),
            Err(StoreError::Protocol(_))
        ));
        // A reply while nothing was asked.
        let mut c = client();
        c.link_mut().out.extend(msg(MsgType::Read, 9, &[b"x"]));
        c.link_mut().serve();
        assert_eq!(
            c.next_event(),
            Err(StoreError::Protocol(ProtocolError::Unsolicited(2)))
        );
        // Watch events that are not UTF-8 or malformed are dropped.
        let mut c = client();
        c.link_mut()
            .out
            .extend(msg(MsgType::WatchEvent, 0, &[b"\xff", b"t"]));
        c.link_mut()
            .out
            .extend(msg(MsgType::WatchEvent, 0, &[b"only-path"]));
        c.link_mut().serve();
        assert_eq!(c.next_event(), Ok(None));
        assert_eq!(c.dropped_events(), 2);
    }
}
