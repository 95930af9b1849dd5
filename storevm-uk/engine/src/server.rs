//! Serving the store over xenstore rings: the transport between
//! [`Store::handle`] and every domain's ring page, with the mapping of
//! pages and the event channels left to a [`Host`] (in `storevm`, the Xen
//! ABI; in tests, byte arrays).
//!
//! * The **toolstack** ([`TOOLSTACK`], dom0, privileged) talks to the store
//!   over the store domain's own ring page; the store is the server there as
//!   on every other page: it consumes requests and produces replies.
//!   `XS_INTRODUCE` from it makes the server [`Host::connect`] the domain's
//!   ring page and event channel; `XS_RELEASE` [`Host::disconnect`]s them.
//! * A [`Connection`] per domain reads the request ring header first: a
//!   header announcing more than `XENSTORE_PAYLOAD_MAX` bytes, or ring
//!   indices that cannot come from a correct peer, break that connection
//!   for good (logged once, reported in the page's `error` field); nothing
//!   else about the domain changes until the toolstack releases it, and no
//!   other domain notices. Partial messages wait for the rest.
//! * Output goes to a per-domain queue, flushed into the domain's reply ring
//!   as space appears (clients notify after consuming). While more than
//!   [`REPLY_BACKLOG`] bytes wait, no further request of that domain is
//!   read, so a domain that never reads its replies only stops itself; watch
//!   events for a domain with more than [`EVENT_BACKLOG`] bytes waiting are
//!   dropped (counted, logged once), so a domain cannot make the store hold
//!   unbounded memory on its behalf.
//! * [`Server::run`] serves the domains whose ports fired ([`Server::kick`])
//!   at most [`BUDGET`] messages each per call, the toolstack first (so a
//!   release is seen before the released domain's ring would be touched
//!   again), then flushes output and notifies every domain whose rings
//!   moved.

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::ring::{
    Consumer, Producer, Ring, RingError, RingMem, ERROR, ERROR_PROTO, ERROR_RINGIDX,
    SERVER_FEATURES, SERVER_FEATURE_ERROR,
};
use crate::wire::{self, Header, MsgType, HEADER_LEN};
use crate::{DomId, DomainEvent, Output, Store};

/// The toolstack's domain id: privileged, reached over the store domain's
/// own ring page.
pub const TOOLSTACK: DomId = 0;
/// While more than this many bytes wait to be sent to a domain, its
/// requests are not read.
pub const REPLY_BACKLOG: usize = 8 * 1024;
/// Watch events for a domain with more than this many bytes waiting are
/// dropped.
pub const EVENT_BACKLOG: usize = 32 * 1024;
/// Messages taken from one domain per [`Server::run`].
pub const BUDGET: usize = 32;
/// Longest name shown in log lines.
const NAME_MAX: usize = 32;

/// Why a connection was given up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broken {
    /// The ring indices were inconsistent.
    Ring(RingError),
    /// A request header announced this many payload bytes (more than
    /// `XENSTORE_PAYLOAD_MAX`): the stream cannot be resynchronised.
    PayloadTooLong(u32),
    /// The domain's ring page or event channel could not be connected.
    Unreachable,
}

impl Broken {
    /// The value for the page's `error` field, if it has a page.
    fn error_code(self) -> Option<u32> {
        match self {
            Broken::Ring(_) => Some(ERROR_RINGIDX),
            Broken::PayloadTooLong(_) => Some(ERROR_PROTO),
            Broken::Unreachable => None,
        }
    }
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Broken::Ring(e) => write!(f, "{e}"),
            Broken::PayloadTooLong(n) => write!(
                f,
                "a request header announces {n} payload bytes (XENSTORE_PAYLOAD_MAX is {})",
                wire::PAYLOAD_MAX
            ),
            Broken::Unreachable => f.write_str("its ring could not be connected"),
        }
    }
}

/// What moved over one connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Complete messages received.
    pub messages_in: u64,
    /// Bytes taken from the request ring.
    pub bytes_in: u64,
    /// Bytes put into the reply ring.
    pub bytes_out: u64,
    /// Watch events dropped because too much output was waiting.
    pub dropped_events: u64,
}

/// The store's side of one ring page: it consumes the request ring and
/// produces the reply ring, keeping its own indices.
#[derive(Clone, Debug)]
pub struct Connection {
    /// `None`: never connected.
    io: Option<(Consumer, Producer)>,
    /// The message being received (header first).
    rx: Vec<u8>,
    /// Whole messages waiting for space in the reply ring.
    tx: VecDeque<u8>,
    broken: Option<Broken>,
    /// Rings moved since the last [`Connection::take_notify`].
    moved: bool,
    stats: ConnStats,
}

impl Connection {
    /// Serves the ring page `m` from its indices as they are now, and
    /// announces `XENSTORE_SERVER_FEATURE_ERROR` in it.
    pub fn attach<M: RingMem + ?Sized>(m: &mut M) -> Connection {
        let io = (
            Consumer::attach(m, Ring::Req),
            Producer::attach(m, Ring::Rsp),
        );
        let features = m.load_u32(SERVER_FEATURES);
        m.store_u32(SERVER_FEATURES, features | SERVER_FEATURE_ERROR);
        Connection {
            io: Some(io),
            rx: Vec::new(),
            tx: VecDeque::new(),
            broken: None,
            moved: false,
            stats: ConnStats::default(),
        }
    }

    /// A connection to a domain whose page could not be reached: broken
    /// from the start.
    pub fn unreachable() -> Connection {
        Connection {
            io: None,
            rx: Vec::new(),
            tx: VecDeque::new(),
            broken: Some(Broken::Unreachable),
            moved: false,
            stats: ConnStats::default(),
        }
    }

    /// Why the connection was given up, if it was.
    pub fn broken(&self) -> Option<Broken> {
        self.broken
    }

    /// Whether a page is attached.
    pub fn is_attached(&self) -> bool {
        self.io.is_some()
    }

    /// Bytes waiting to be sent.
    pub fn backlog(&self) -> usize {
        self.tx.len()
    }

    /// Bytes of a partly received message.
    pub fn partial(&self) -> usize {
        self.rx.len()
    }

    /// What moved so far.
    pub fn stats(&self) -> ConnStats {
        self.stats
    }

    /// Whether requests should be read now: not broken, and not too much
    /// output waiting.
    pub fn wants_requests(&self) -> bool {
        self.broken.is_none() && self.tx.len() <= REPLY_BACKLOG
    }

    /// Whether the rings moved since the last call (the peer is then owed a
    /// notification).
    pub fn take_notify(&mut self) -> bool {
        core::mem::take(&mut self.moved)
    }

    /// Gives the connection up: reports why in the page's `error` field and
    /// drops whatever was buffered. The first reason sticks.
    fn fail<M: RingMem + ?Sized>(&mut self, m: &mut M, why: Broken) -> Broken {
        if self.broken.is_none() {
            self.broken = Some(why);
            if let Some(code) = why.error_code() {
                m.store_u32(ERROR, code);
            }
        }
        self.rx = Vec::new();
        self.tx = VecDeque::new();
        self.broken.unwrap_or(why)
    }

    /// The next complete message from the request ring (header included),
    /// `None` until one is complete. Reads the header first and checks its
    /// length before reading any payload.
    pub fn receive<M: RingMem + ?Sized>(&mut self, m: &mut M) -> Result<Option<Vec<u8>>, Broken> {
        if let Some(b) = self.broken {
            return Err(b);
        }
        loop {
            let need = match self.rx.get(..HEADER_LEN).map(Header::parse) {
                Some(Ok(h)) => match wire::frame_len(&h) {
                    Ok(n) => n,
                    Err(_) => return Err(self.fail(m, Broken::PayloadTooLong(h.len))),
                },
                _ => HEADER_LEN,
            };
            if self.rx.len() >= HEADER_LEN && self.rx.len() >= need {
                self.stats.messages_in += 1;
                return Ok(Some(core::mem::take(&mut self.rx)));
            }
            let Some((req, _)) = self.io.as_mut() else {
                return Err(Broken::Unreachable);
            };
            let have = self.rx.len();
            self.rx.resize(need, 0);
            let got = req.read(m, self.rx.get_mut(have..).unwrap_or_default());
            match got {
                Ok(n) => {
                    self.rx.truncate(have + n);
                    if n == 0 {
                        return Ok(None);
                    }
                    self.moved = true;
                    self.stats.bytes_in += n as u64;
                }
                Err(e) => {
                    self.rx.truncate(have);
                    return Err(self.fail(m, Broken::Ring(e)));
                }
            }
        }
    }

    /// Queues a reply (always taken unless the connection is broken).
    pub fn queue_reply(&mut self, msg: &[u8]) -> bool {
        if self.broken.is_some() {
            return false;
        }
        self.tx.extend(msg);
        true
    }

    /// Queues a watch event unless more than [`EVENT_BACKLOG`] bytes wait
    /// already (then it is dropped and counted).
    pub fn queue_event(&mut self, msg: &[u8]) -> bool {
        if self.broken.is_some() {
            return false;
        }
        if self.tx.len() > EVENT_BACKLOG {
            self.stats.dropped_events += 1;
            return false;
        }
        self.tx.extend(msg);
        true
    }

    /// Moves as much queued output into the reply ring as fits; returns the
    /// bytes moved.
    pub fn flush<M: RingMem + ?Sized>(&mut self, m: &mut M) -> Result<usize, Broken> {
        if let Some(b) = self.broken {
            return Err(b);
        }
        let Some((_, rsp)) = self.io.as_mut() else {
            return Err(Broken::Unreachable);
        };
        let mut moved = 0;
        while !self.tx.is_empty() {
            let written = rsp.write(m, self.tx.make_contiguous());
            match written {
                Ok(0) => break,
                Ok(n) => {
                    self.tx.drain(..n);
                    moved += n;
                }
                Err(e) => return Err(self.fail(m, Broken::Ring(e))),
            }
        }
        if moved > 0 {
            self.moved = true;
            self.stats.bytes_out += moved as u64;
        }
        Ok(moved)
    }
}

/// What the server needs from its surroundings.
pub trait Host {
    /// Why connecting a domain failed.
    type Error: fmt::Display;

    /// Connects introduced domain `domid`: maps its ring page (frame `mfn`
    /// as the toolstack gave it; under Xen, its grant reference 1) and binds
    /// its event channel `port`. All or nothing.
    fn connect(&mut self, domid: DomId, mfn: i64, port: u32) -> Result<(), Self::Error>;

    /// Undoes [`Host::connect`] for a released domain.
    fn disconnect(&mut self, domid: DomId);

    /// The ring page of a connected domain, or for [`TOOLSTACK`] the store
    /// domain's own page.
    fn ring(&mut self, domid: DomId) -> Option<&mut dyn RingMem>;

    /// Signals `domid` that its rings moved (for [`TOOLSTACK`], however the
    /// toolstack wants it, possibly not at all).
    fn notify(&mut self, domid: DomId);

    /// Writes a line to the console.
    fn log(&mut self, line: fmt::Arguments<'_>);
}

/// The store served over rings.
pub struct Server {
    store: Store,
    conns: BTreeMap<DomId, Connection>,
    /// Domains to serve at the next [`Server::run`].
    ready: BTreeSet<DomId>,
    /// Introductions not yet logged: (domain, frame, port).
    announce: Vec<(DomId, i64, u32)>,
    introduced: usize,
    released: usize,
}

impl Server {
    /// Serves `store`, starting with the toolstack's connection on the page
    /// `host.ring(TOOLSTACK)` (which may already hold requests).
    pub fn new<H: Host>(store: Store, host: &mut H) -> Server {
        let toolstack = match host.ring(TOOLSTACK) {
            Some(m) => Connection::attach(m),
            None => {
                host.log(format_args!("the toolstack's ring page is missing"));
                Connection::unreachable()
            }
        };
        let mut conns = BTreeMap::new();
        conns.insert(TOOLSTACK, toolstack);
        Server {
            store,
            conns,
            ready: BTreeSet::from([TOOLSTACK]),
            announce: Vec::new(),
            introduced: 0,
            released: 0,
        }
    }

    /// The engine.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The connection of `domid` (the toolstack's is [`TOOLSTACK`]).
    pub fn connection(&self, domid: DomId) -> Option<&Connection> {
        self.conns.get(&domid)
    }

    /// Connected domains, the toolstack excluded.
    pub fn domains(&self) -> impl Iterator<Item = DomId> + '_ {
        self.conns.keys().copied().filter(|&d| d != TOOLSTACK)
    }

    /// Domains introduced so far.
    pub fn introduced(&self) -> usize {
        self.introduced
    }

    /// Domains released so far.
    pub fn released(&self) -> usize {
        self.released
    }

    /// Whether the toolstack introduced domains and has released every one
    /// of them.
    pub fn finished(&self) -> bool {
        self.introduced > 0 && self.domains().next().is_none()
    }

    /// `domid` signalled (its port, or for [`TOOLSTACK`] the toolstack's
    /// VIRQ): serve it at the next [`Server::run`].
    pub fn kick(&mut self, domid: DomId) {
        if self.conns.contains_key(&domid) {
            self.ready.insert(domid);
        }
    }

    /// Serves every kicked domain (toolstack first), flushes output and
    /// notifies. Returns whether work is left (a domain used its whole
    /// [`BUDGET`]): call again before waiting.
    pub fn run<H: Host>(&mut self, host: &mut H) -> bool {
        let todo = core::mem::take(&mut self.ready);
        for d in todo {
            if self.service(host, d) {
                self.ready.insert(d);
            }
        }
        self.flush_all(host);
        self.log_introductions(host);
        !self.ready.is_empty()
    }

    /// Takes up to [`BUDGET`] messages from `d`; whether more may wait.
    fn service<H: Host>(&mut self, host: &mut H, d: DomId) -> bool {
        for _ in 0..BUDGET {
            let Some(conn) = self.conns.get_mut(&d) else {
                return false;
            };
            if conn.broken().is_some() {
                return false;
            }
            let Some(mem) = host.ring(d) else {
                return false;
            };
            // Room for replies first, so a waiting client gets them.
            let got = conn.flush(mem).and_then(|_| {
                if conn.wants_requests() {
                    conn.receive(mem)
                } else {
                    Ok(None)
                }
            });
            match got {
                Ok(Some(msg)) => {
                    let out = self.store.handle(d, &msg);
                    self.deliver(host, out);
                }
                Ok(None) => return false,
                Err(e) => {
                    self.report(host, d, e);
                    return false;
                }
            }
        }
        true
    }

    /// Queues the engine's messages and acts on its domain events.
    fn deliver<H: Host>(&mut self, host: &mut H, out: Output) {
        let Output {
            messages,
            domain_events,
        } = out;
        for o in messages {
            let Some(conn) = self.conns.get_mut(&o.to) else {
                continue;
            };
            let event = Header::parse(&o.msg).is_ok_and(|h| h.kind() == Some(MsgType::WatchEvent));
            if !event {
                conn.queue_reply(&o.msg);
            } else if !conn.queue_event(&o.msg) && conn.stats().dropped_events == 1 {
                let name = self.name(o.to);
                host.log(format_args!(
                    "domain {}{name}: not reading its ring: dropping watch events while more \
                     than {EVENT_BACKLOG} bytes wait",
                    o.to
                ));
            }
        }
        for e in domain_events {
            match e {
                DomainEvent::Introduced { domid, mfn, evtchn } => {
                    self.connect(host, domid, mfn, evtchn)
                }
                DomainEvent::Released { domid } => self.disconnect(host, domid),
            }
        }
    }

    fn connect<H: Host>(&mut self, host: &mut H, domid: DomId, mfn: i64, port: u32) {
        if domid == TOOLSTACK {
            return;
        }
        if self.conns.contains_key(&domid) {
            self.disconnect(host, domid);
        }
        let conn = match host.connect(domid, mfn, port) {
            Ok(()) => match host.ring(domid) {
                Some(m) => Connection::attach(m),
                None => Connection::unreachable(),
            },
            Err(e) => {
                host.log(format_args!(
                    "domain {domid}: cannot connect its ring (frame {mfn:#x}, port {port}): {e}"
                ));
                Connection::unreachable()
            }
        };
        self.conns.insert(domid, conn);
        // It may have written requests before it was introduced.
        self.ready.insert(domid);
        self.introduced += 1;
        self.announce.push((domid, mfn, port));
    }

    fn disconnect<H: Host>(&mut self, host: &mut H, domid: DomId) {
        if domid == TOOLSTACK {
            return;
        }
        let Some(conn) = self.conns.remove(&domid) else {
            return;
        };
        self.log_introductions(host);
        self.ready.remove(&domid);
        if conn.is_attached() {
            host.disconnect(domid);
        }
        self.released += 1;
        let name = self.name(domid);
        let s = conn.stats();
        host.log(format_args!(
            "released domain {domid}{name} ({} requests, {} bytes in, {} bytes out)",
            s.messages_in, s.bytes_in, s.bytes_out
        ));
    }

    /// Moves queued output into every ring with room and notifies every
    /// domain whose rings moved; a domain whose backlog drained is served
    /// again.
    fn flush_all<H: Host>(&mut self, host: &mut H) {
        let mut failed = Vec::new();
        for (&d, conn) in self.conns.iter_mut() {
            if conn.backlog() > 0 && conn.broken().is_none() {
                if let Some(mem) = host.ring(d) {
                    match conn.flush(mem) {
                        Ok(n) if n > 0 && conn.wants_requests() => {
                            self.ready.insert(d);
                        }
                        Ok(_) => {}
                        Err(e) => failed.push((d, e)),
                    }
                }
            }
            if conn.take_notify() {
                host.notify(d);
            }
        }
        for (d, e) in failed {
            self.report(host, d, e);
        }
    }

    /// Logs a connection given up.
    fn report<H: Host>(&mut self, host: &mut H, d: DomId, e: Broken) {
        let name = self.name(d);
        host.log(format_args!(
            "domain {d}{name}: bad connection: {e}; ignoring it until it is released"
        ));
    }

    fn log_introductions<H: Host>(&mut self, host: &mut H) {
        for (d, mfn, port) in core::mem::take(&mut self.announce) {
            let name = self.name(d);
            host.log(format_args!(
                "introduced domain {d}{name}: ring frame {mfn:#x}, port {port}"
            ));
        }
    }

    /// ` ("<name>")` from `/local/domain/<d>/name`, printable ASCII only and
    /// at most [`NAME_MAX`] characters (the domain may have written it), or
    /// nothing.
    fn name(&self, d: DomId) -> String {
        let path = alloc::format!("/local/domain/{d}/name");
        let Some(node) = self.store.tree().node(&path) else {
            return String::new();
        };
        if node.value.is_empty() {
            return String::new();
        }
        let mut s = String::from(" (\"");
        for &b in node.value.iter().take(NAME_MAX) {
            s.push(if b.is_ascii_graphic() && b != b'"' || b == b' ' {
                char::from(b)
            } else {
                '?'
            });
        }
        if node.value.len() > NAME_MAX {
            s.push_str("...");
        }
        s.push_str("\")");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{self, Reply};
    use crate::ring::{self, RING_SIZE};
    use crate::wire::ErrorCode;
    use crate::Config;
    use proptest::prelude::*;
    use std::string::ToString;
    use std::vec;

    /// Domains' ring frames and ports as the VMM would give them.
    fn frame(d: DomId) -> i64 {
        0x1000 * i64::from(d) - 1
    }
    fn port(d: DomId) -> u32 {
        u32::from(d) + 4
    }

    /// The host: a page per domain (0 = the store domain's own page, the
    /// toolstack's), and a record of what the server asked for.
    #[derive(Default)]
    struct Sim {
        pages: BTreeMap<DomId, Vec<u8>>,
        connected: BTreeSet<DomId>,
        refuse: BTreeSet<DomId>,
        connects: Vec<(DomId, i64, u32)>,
        disconnects: Vec<DomId>,
        notified: Vec<DomId>,
        logs: Vec<String>,
        /// Reply bytes read by each client and not yet a whole message.
        inbox: BTreeMap<DomId, Vec<u8>>,
        next_req: u32,
    }

    impl Host for Sim {
        type Error = &'static str;
        fn connect(&mut self, domid: DomId, mfn: i64, port: u32) -> Result<(), &'static str> {
            self.connects.push((domid, mfn, port));
            if self.refuse.contains(&domid) || !self.pages.contains_key(&domid) {
                return Err("grant map refused");
            }
            assert!(self.connected.insert(domid), "connected twice");
            Ok(())
        }
        fn disconnect(&mut self, domid: DomId) {
            assert!(self.connected.remove(&domid), "not connected");
            self.disconnects.push(domid);
        }
        fn ring(&mut self, domid: DomId) -> Option<&mut dyn RingMem> {
            if domid != TOOLSTACK && !self.connected.contains(&domid) {
                return None;
            }
            self.pages.get_mut(&domid).map(|p| p as &mut dyn RingMem)
        }
        fn notify(&mut self, domid: DomId) {
            self.notified.push(domid);
        }
        fn log(&mut self, line: fmt::Arguments<'_>) {
            self.logs.push(line.to_string());
        }
    }

    impl Sim {
        /// Domains 1..=n with pages, introduced by the toolstack as the VMM
        /// does it (before the store runs).
        fn with_domains(names: &[&str]) -> Sim {
            let mut sim = Sim {
                next_req: 1,
                ..Sim::default()
            };
            sim.pages.insert(TOOLSTACK, vec![0; 4096]);
            for (i, name) in names.iter().enumerate() {
                let d = i as DomId + 1;
                sim.pages.insert(d, vec![0; 4096]);
                sim.introduce(d, name);
            }
            sim
        }

        fn introduce(&mut self, d: DomId, name: &str) {
            let home = format!("/local/domain/{d}");
            let (id, f, p) = (d.to_string(), frame(d).to_string(), port(d).to_string());
            let owner = format!("n{d}");
            let r = self.next_req;
            self.next_req += 4;
            self.send(
                TOOLSTACK,
                &client::request(
                    MsgType::Introduce,
                    r,
                    0,
                    &[id.as_bytes(), f.as_bytes(), p.as_bytes()],
                )
                .unwrap(),
            );
            self.send(
                TOOLSTACK,
                &client::request(MsgType::Mkdir, r + 1, 0, &[home.as_bytes()]).unwrap(),
            );
            self.send(
                TOOLSTACK,
                &client::request(
                    MsgType::SetPerms,
                    r + 2,
                    0,
                    &[home.as_bytes(), owner.as_bytes()],
                )
                .unwrap(),
            );
            self.send(
                TOOLSTACK,
                &client::write(r + 3, 0, &format!("{home}/name"), name.as_bytes()).unwrap(),
            );
        }

        fn release(&mut self, d: DomId) {
            let id = d.to_string();
            let r = self.next_req;
            self.next_req += 1;
            self.send(
                TOOLSTACK,
                &client::request(MsgType::Release, r, 0, &[id.as_bytes()]).unwrap(),
            );
        }

        /// Client `d` writes `bytes` into its request ring (all must fit).
        fn send(&mut self, d: DomId, bytes: &[u8]) {
            let page = self.pages.get_mut(&d).unwrap();
            assert_eq!(
                ring::produce(&mut page[..], Ring::Req, bytes),
                Ok(bytes.len())
            );
        }

        /// Client `d` takes up to `max` bytes of replies and returns the
        /// whole messages it has now.
        fn take(&mut self, d: DomId, max: usize) -> Vec<Vec<u8>> {
            let page = self.pages.get_mut(&d).unwrap();
            let mut buf = vec![0u8; max.min(RING_SIZE as usize)];
            let n = ring::consume(&mut page[..], Ring::Rsp, &mut buf).unwrap();
            let inbox = self.inbox.entry(d).or_default();
            inbox.extend_from_slice(&buf[..n]);
            let mut out = Vec::new();
            while let Ok(h) = Header::parse(inbox) {
                let len = wire::frame_len(&h).unwrap();
                if inbox.len() < len {
                    break;
                }
                out.push(inbox.drain(..len).collect());
            }
            out
        }

        fn replies(&mut self, d: DomId) -> Vec<Vec<u8>> {
            let mut all = Vec::new();
            loop {
                let got = self.take(d, usize::MAX);
                if got.is_empty() {
                    return all;
                }
                all.extend(got);
            }
        }

        fn u32_at(&self, d: DomId, offset: usize) -> u32 {
            self.pages[&d][..].load_u32(offset)
        }
    }

    fn req(kind: MsgType, id: u32, args: &[&[u8]]) -> Vec<u8> {
        client::request(kind, id, 0, args).unwrap()
    }

    /// A whole run: the store's server and its simulated surroundings.
    struct World {
        sim: Sim,
        server: Server,
    }

    impl World {
        fn new(names: &[&str]) -> World {
            let mut sim = Sim::with_domains(names);
            let server = Server::new(Store::new(Config::default()), &mut sim);
            let mut w = World { sim, server };
            w.run();
            let toolstack = w.sim.replies(TOOLSTACK);
            assert_eq!(toolstack.len(), 4 * names.len());
            for r in &toolstack {
                assert_eq!(Reply::parse(r).unwrap().error(), None);
            }
            w
        }

        /// Runs until the server has nothing left to do.
        fn run(&mut self) {
            let mut rounds = 0;
            while self.server.run(&mut self.sim) {
                rounds += 1;
                assert!(rounds < 1000, "the server never settles");
            }
        }

        /// Client `d` sends `msg` (as the ring takes it, notifying each
        /// time), the server runs, the client reads all.
        fn call(&mut self, d: DomId, msg: &[u8]) -> Vec<Vec<u8>> {
            let mut sent = 0;
            while sent < msg.len() {
                let page = self.sim.pages.get_mut(&d).unwrap();
                sent += ring::produce(&mut page[..], Ring::Req, &msg[sent..]).unwrap();
                self.server.kick(d);
                self.run();
            }
            self.sim.replies(d)
        }

        fn kick_all(&mut self) {
            for d in self.sim.pages.keys().copied().collect::<Vec<_>>() {
                self.server.kick(d);
            }
            self.run();
        }
    }

    fn payload(msg: &[u8]) -> Vec<u8> {
        Reply::parse(msg).unwrap().payload.to_vec()
    }

    #[test]
    fn serves_the_domains_the_toolstack_introduces() {
        let mut w = World::new(&["alpha", "beta"]);
        assert_eq!(w.sim.connects, [(1, 0xfff, 5), (2, 0x1fff, 6)]);
        assert_eq!(
            w.sim.logs,
            [
                "introduced domain 1 (\"alpha\"): ring frame 0xfff, port 5",
                "introduced domain 2 (\"beta\"): ring frame 0x1fff, port 6",
            ]
        );
        assert_eq!(w.server.domains().collect::<Vec<_>>(), [1, 2]);
        // The server announces error reporting in every page.
        for d in [0, 1, 2] {
            assert_eq!(w.sim.u32_at(d, SERVER_FEATURES), SERVER_FEATURE_ERROR);
        }
        // dom1 writes in its home; dom2 may not read it.
        let r = w.call(1, &client::write(1, 0, "data/x", b"1").unwrap());
        assert_eq!(r.len(), 1);
        assert_eq!(payload(&r[0]), b"OK\0");
        let r = w.call(2, &req(MsgType::Read, 9, &[b"/local/domain/1/data/x"]));
        assert_eq!(
            Reply::parse(&r[0]).unwrap().error(),
            Some(ErrorCode::Eacces)
        );
        assert_eq!(Reply::parse(&r[0]).unwrap().header.req_id, 9);
        // dom1 lets dom2 read; dom2 watches; dom1's next write fires it.
        let r = w.call(1, &req(MsgType::SetPerms, 2, &[b"data/x", b"n1", b"r2"]));
        assert_eq!(payload(&r[0]), b"OK\0");
        let r = w.call(
            2,
            &req(MsgType::Watch, 10, &[b"/local/domain/1/data/x", b"t"]),
        );
        assert_eq!(r.len(), 2, "the reply and the watch's first event");
        assert_eq!(
            Reply::parse(&r[1]).unwrap().event(),
            Some((&b"/local/domain/1/data/x"[..], &b"t"[..]))
        );
        w.sim.notified.clear();
        let r = w.call(1, &client::write(3, 0, "data/x", b"2").unwrap());
        assert_eq!(payload(&r[0]), b"OK\0");
        let ev = w.sim.replies(2);
        assert_eq!(ev.len(), 1);
        assert_eq!(
            Reply::parse(&ev[0]).unwrap().kind(),
            Some(MsgType::WatchEvent)
        );
        assert!(w.sim.notified.contains(&1) && w.sim.notified.contains(&2));
        assert!(!w.sim.notified.contains(&TOOLSTACK));
        let r = w.call(2, &req(MsgType::Read, 11, &[b"/local/domain/1/data/x"]));
        assert_eq!(payload(&r[0]), b"2");
        let s = w.server.connection(1).unwrap().stats();
        assert_eq!((s.messages_in, s.dropped_events), (3, 0));
    }

    #[test]
    fn partial_messages_wait_for_the_rest() {
        let mut w = World::new(&["a"]);
        let msg = client::write(7, 0, "data/y", &[b'v'; 300]).unwrap();
        for (i, b) in msg.iter().enumerate() {
            w.sim.send(1, &[*b]);
            w.server.kick(1);
            w.run();
            let partial = w.server.connection(1).unwrap().partial();
            if i + 1 < msg.len() {
                assert_eq!(partial, i + 1);
                assert!(w.sim.replies(1).is_empty());
            } else {
                assert_eq!(partial, 0);
            }
        }
        let r = w.sim.replies(1);
        assert_eq!(Reply::parse(&r[0]).unwrap().header.req_id, 7);
        let r = w.call(1, &req(MsgType::Read, 8, &[b"data/y"]));
        assert_eq!(payload(&r[0]), [b'v'; 300]);
        // Every byte consumed was followed by a notification.
        assert!(w.sim.notified.iter().filter(|&&d| d == 1).count() >= msg.len());
    }

    #[test]
    fn garbage_indices_break_only_that_domain() {
        let mut w = World::new(&["good", "evil"]);
        let page = w.sim.pages.get_mut(&2).unwrap();
        page.store_u32(ring::REQ_PROD, 5000);
        w.server.kick(2);
        w.run();
        assert_eq!(
            w.server.connection(2).unwrap().broken(),
            Some(Broken::Ring(RingError::Corrupt {
                cons: 0,
                prod: 5000
            }))
        );
        assert_eq!(w.sim.u32_at(2, ERROR), ERROR_RINGIDX);
        assert_eq!(
            w.sim.logs.last().unwrap(),
            "domain 2 (\"evil\"): bad connection: corrupt ring indices (consumer 0, producer \
             5000: more than 1024 bytes apart); ignoring it until it is released"
        );
        // Kicked again (it may keep signalling): nothing more is logged.
        let logs = w.sim.logs.len();
        for _ in 0..10 {
            w.kick_all();
        }
        assert_eq!(w.sim.logs.len(), logs);
        // Everyone else is served.
        let r = w.call(1, &req(MsgType::Directory, 1, &[b"/local/domain/1"]));
        assert_eq!(payload(&r[0]), b"name\0");
        // Reply-ring nonsense too: a consumer index ahead of the producer.
        let page = w.sim.pages.get_mut(&1).unwrap();
        page.store_u32(ring::RSP_CONS, 3000);
        w.sim.send(1, &req(MsgType::Read, 2, &[b"name"]));
        w.server.kick(1);
        w.run();
        assert!(matches!(
            w.server.connection(1).unwrap().broken(),
            Some(Broken::Ring(_))
        ));
        // The toolstack still releases both.
        w.sim.release(1);
        w.sim.release(2);
        w.server.kick(TOOLSTACK);
        w.run();
        assert_eq!(w.sim.disconnects, [1, 2]);
        assert!(w.server.finished());
    }

    #[test]
    fn an_oversized_header_breaks_the_connection() {
        let mut w = World::new(&["a", "b"]);
        let mut bad = req(MsgType::Read, 1, &[b"x"]);
        bad[12..16].copy_from_slice(&4097u32.to_le_bytes());
        w.sim.send(1, &bad);
        w.server.kick(1);
        w.run();
        assert_eq!(
            w.server.connection(1).unwrap().broken(),
            Some(Broken::PayloadTooLong(4097))
        );
        assert_eq!(w.sim.u32_at(1, ERROR), ERROR_PROTO);
        // Only the header was taken.
        assert_eq!(w.sim.u32_at(1, ring::REQ_CONS), 16);
        assert!(w.sim.replies(1).is_empty());
        assert!(w.sim.logs.last().unwrap().contains(
            "bad connection: a request header announces 4097 payload bytes (XENSTORE_PAYLOAD_MAX \
             is 4096)"
        ));
        // The largest legal message passes.
        let big = client::write(2, 0, "v", &[b'z'; 4094]).unwrap();
        assert_eq!(big.len(), 16 + 4096);
        let mut sent = 0;
        let mut replies = Vec::new();
        while sent < big.len() {
            let page = w.sim.pages.get_mut(&2).unwrap();
            sent += ring::produce(&mut page[..], Ring::Req, &big[sent..]).unwrap();
            w.server.kick(2);
            w.run();
            replies.extend(w.sim.replies(2));
        }
        // Over the quota's entry size, but an answer.
        assert_eq!(replies.len(), 1);
        assert_eq!(
            Reply::parse(&replies[0]).unwrap().error(),
            Some(ErrorCode::Enospc)
        );
        assert_eq!(w.server.connection(2).unwrap().broken(), None);
    }

    #[test]
    fn a_full_reply_ring_queues_in_order() {
        let mut w = World::new(&["a"]);
        let r = w.call(1, &client::write(1, 0, "big", &[b'b'; 2000]).unwrap());
        assert_eq!(payload(&r[0]), b"OK\0");
        for id in 10..13 {
            w.sim.send(1, &req(MsgType::Read, id, &[b"big"]));
        }
        w.server.kick(1);
        w.run();
        // 3 × 2016 bytes do not fit in 1024: most are queued.
        let waiting = w.server.connection(1).unwrap().backlog();
        assert_eq!(waiting, 3 * 2016 - 1024);
        // The client reads a little at a time, notifying each time.
        let mut got = Vec::new();
        for _ in 0..100 {
            got.extend(w.sim.take(1, 300));
            w.server.kick(1);
            w.run();
            if got.len() == 3 {
                break;
            }
        }
        let ids: Vec<u32> = got
            .iter()
            .map(|m| Reply::parse(m).unwrap().header.req_id)
            .collect();
        assert_eq!(ids, [10, 11, 12]);
        assert!(got.iter().all(|m| payload(m) == [b'b'; 2000]));
        assert_eq!(w.server.connection(1).unwrap().backlog(), 0);
    }

    #[test]
    fn a_flood_is_bounded_and_stops_only_the_flooder() {
        let mut w = World::new(&["flood", "calm"]);
        let r = w.call(1, &client::write(1, 0, "big", &[b'b'; 2000]).unwrap());
        assert_eq!(payload(&r[0]), b"OK\0");
        // Small requests: one run takes at most BUDGET of them.
        let one = req(MsgType::Read, 5, &[b"nothing"]);
        let n = RING_SIZE as usize / one.len();
        for _ in 0..n {
            w.sim.send(1, &one);
        }
        w.server.kick(1);
        let before = w.server.connection(1).unwrap().stats().messages_in;
        assert!(w.server.run(&mut w.sim), "work left after the budget");
        let after = w.server.connection(1).unwrap().stats().messages_in;
        assert_eq!(after - before, BUDGET as u64);
        w.run();
        let _ = w.sim.replies(1);
        // Now requests whose replies are large, never read by the client.
        let heavy = req(MsgType::Read, 6, &[b"big"]);
        for _ in 0..200 {
            let page = w.sim.pages.get_mut(&1).unwrap();
            let _ = ring::produce(&mut page[..], Ring::Req, &heavy);
            w.server.kick(1);
            w.run();
            let c = w.server.connection(1).unwrap();
            assert!(c.backlog() <= REPLY_BACKLOG + 2016, "{}", c.backlog());
        }
        // The server stopped reading: the request ring is full.
        let page = &w.sim.pages[&1][..];
        assert!(ring::space(page, Ring::Req).unwrap() < heavy.len() as u32);
        // The other domain is served meanwhile.
        let r = w.call(2, &req(MsgType::Read, 1, &[b"name"]));
        assert_eq!(payload(&r[0]), b"calm");
        // Once the flooder reads, it is served again.
        let stalled = w.server.connection(1).unwrap().stats().messages_in;
        for _ in 0..50 {
            let _ = w.sim.take(1, usize::MAX);
            w.server.kick(1);
            w.run();
        }
        assert!(w.server.connection(1).unwrap().stats().messages_in > stalled);
        assert_eq!(w.server.connection(1).unwrap().broken(), None);
    }

    #[test]
    fn watch_events_for_a_deaf_domain_are_dropped() {
        let mut w = World::new(&["writer", "deaf"]);
        let _ = w.call(1, &client::write(1, 0, "data", b"0").unwrap());
        let _ = w.call(1, &req(MsgType::SetPerms, 2, &[b"data", b"n1", b"r2"]));
        let _ = w.call(2, &req(MsgType::Watch, 1, &[b"/local/domain/1/data", b"t"]));
        // dom2 stops reading; dom1 writes and writes.
        for i in 0..2000u32 {
            let r = w.call(1, &client::write(i, 0, "data", &[b'x'; 100]).unwrap());
            assert_eq!(r.len(), 1);
        }
        let c = w.server.connection(2).unwrap();
        assert!(c.backlog() <= EVENT_BACKLOG + 64, "{}", c.backlog());
        assert!(c.stats().dropped_events > 1000);
        let drops: Vec<&String> = w
            .sim
            .logs
            .iter()
            .filter(|l| l.contains("dropping watch events"))
            .collect();
        assert_eq!(
            drops,
            [&format!(
                "domain 2 (\"deaf\"): not reading its ring: dropping watch events while more \
                 than {EVENT_BACKLOG} bytes wait"
            )]
        );
        // It is still a working connection: when it reads, it gets what
        // was kept, and its requests are answered.
        let mut events = 0;
        for _ in 0..100 {
            events += w.sim.take(2, usize::MAX).len();
            w.server.kick(2);
            w.run();
        }
        assert!(events > 100);
        let r = w.call(2, &req(MsgType::Read, 3, &[b"/local/domain/1/data"]));
        assert_eq!(payload(&r[0]), [b'x'; 100]);
    }

    #[test]
    fn releases_disconnect_and_finish() {
        let mut w = World::new(&["a", "b"]);
        assert!(!w.server.finished());
        let _ = w.call(1, &client::write(1, 0, "x", b"1").unwrap());
        w.sim.release(1);
        w.server.kick(TOOLSTACK);
        // Kicked together with the released domain: the toolstack goes first.
        w.server.kick(1);
        w.run();
        assert_eq!(w.sim.disconnects, [1]);
        assert_eq!(
            w.sim.logs.last().unwrap(),
            "released domain 1 (\"a\") (1 requests, 19 bytes in, 19 bytes out)"
        );
        assert!(!w.server.finished());
        assert_eq!(w.server.domains().collect::<Vec<_>>(), [2]);
        // A kick for a released domain is ignored.
        w.server.kick(1);
        assert!(!w.server.run(&mut w.sim));
        w.sim.release(2);
        w.server.kick(TOOLSTACK);
        w.run();
        assert_eq!(w.sim.disconnects, [1, 2]);
        assert!(w.server.finished());
        assert_eq!((w.server.introduced(), w.server.released()), (2, 2));
        // The toolstack got OK for both releases.
        let r = w.sim.replies(TOOLSTACK);
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|m| payload(m) == b"OK\0"));
    }

    #[test]
    fn a_domain_that_cannot_be_connected_is_only_logged() {
        let mut sim = Sim::with_domains(&["a"]);
        sim.refuse.insert(2);
        sim.pages.insert(2, vec![0; 4096]);
        sim.introduce(2, "far");
        let mut server = Server::new(Store::new(Config::default()), &mut sim);
        while server.run(&mut sim) {}
        assert_eq!(
            sim.logs,
            [
                "domain 2: cannot connect its ring (frame 0x1fff, port 6): grant map refused",
                "introduced domain 1 (\"a\"): ring frame 0xfff, port 5",
                "introduced domain 2 (\"far\"): ring frame 0x1fff, port 6",
            ]
        );
        assert_eq!(
            server.connection(2).unwrap().broken(),
            Some(Broken::Unreachable)
        );
        server.kick(2);
        while server.run(&mut sim) {}
        assert_eq!(sim.logs.len(), 3);
        sim.release(2);
        sim.release(1);
        server.kick(TOOLSTACK);
        while server.run(&mut sim) {}
        assert_eq!(sim.disconnects, [1], "2 was never connected");
        assert!(server.finished());
    }

    #[test]
    fn a_scribbled_server_index_is_not_believed() {
        let mut w = World::new(&["a"]);
        let _ = w.call(1, &req(MsgType::Read, 1, &[b"name"]));
        // The client overwrites the server's own indices.
        let page = w.sim.pages.get_mut(&1).unwrap();
        page.store_u32(ring::REQ_CONS, 0);
        let rsp_prod = page.load_u32(ring::RSP_PROD);
        page.store_u32(ring::RSP_PROD, rsp_prod + 7);
        // The server keeps its own: the next reply lands right after the
        // old one, and both indices are published again.
        let r = w.call(1, &req(MsgType::Read, 2, &[b"name"]));
        assert_eq!(r.len(), 1);
        assert_eq!(payload(&r[0]), b"a");
        let page = &w.sim.pages[&1][..];
        assert_eq!(page.load_u32(ring::RSP_PROD), rsp_prod + 17);
        assert_eq!(page.load_u32(ring::REQ_CONS), page.load_u32(ring::REQ_PROD));
        assert_eq!(w.server.connection(1).unwrap().broken(), None);
    }

    #[test]
    fn a_missing_toolstack_page_is_logged() {
        let mut sim = Sim::default();
        let mut server = Server::new(Store::new(Config::default()), &mut sim);
        assert!(!server.run(&mut sim));
        assert_eq!(sim.logs, ["the toolstack's ring page is missing"]);
        assert!(!server.finished());
    }

    #[test]
    fn names_are_shown_safely() {
        let mut w = World::new(&["ok"]);
        let _ = w.call(
            1,
            &client::write(1, 0, "name", b"\x1b[2J\"evil\"\xff").unwrap(),
        );
        assert_eq!(w.server.name(1), " (\"?[2J?evil??\")");
        let _ = w.call(1, &client::write(2, 0, "name", &[b'n'; 40]).unwrap());
        assert_eq!(w.server.name(1), format!(" (\"{}...\")", "n".repeat(32)));
        let _ = w.call(1, &client::write(3, 0, "name", b"").unwrap());
        assert_eq!(w.server.name(1), "");
    }

    /// A request from a small set, with a fixed req_id.
    fn request(kind: u8, arg: u8, id: u32) -> Vec<u8> {
        let paths: [&[u8]; 4] = [b"data", b"data/a", b"data/a/b", b"/local/domain/1/c"];
        let p = paths[usize::from(arg) % paths.len()];
        match kind % 5 {
            0 => client::write(id, 0, core::str::from_utf8(p).unwrap(), &[arg; 40]).unwrap(),
            1 => req(MsgType::Read, id, &[p]),
            2 => req(MsgType::Directory, id, &[p]),
            3 => req(MsgType::Rm, id, &[p]),
            _ => req(MsgType::Watch, id, &[p, b"tok"]),
        }
    }

    proptest! {
        /// However the client's bytes and the server's runs interleave,
        /// the client gets what the engine answers to the same requests
        /// handed over whole.
        #[test]
        fn any_interleaving_gives_the_engines_answers(
            reqs in proptest::collection::vec((any::<u8>(), any::<u8>()), 1..40),
            chunks in proptest::collection::vec(1usize..300, 1..40),
            reads in proptest::collection::vec(0usize..400, 1..40),
        ) {
            let mut w = World::new(&["p"]);
            let mut reference = Store::new(Config::default());
            reference.introduce(1, frame(1), port(1)).unwrap();
            for m in [
                req(MsgType::Mkdir, 1, &[b"/local/domain/1"]),
                req(MsgType::SetPerms, 2, &[b"/local/domain/1", b"n1"]),
                client::write(3, 0, "/local/domain/1/name", b"p").unwrap(),
            ] {
                let _ = reference.handle(0, &m);
            }
            let mut stream = Vec::new();
            let mut want = Vec::new();
            for (i, (k, a)) in reqs.iter().enumerate() {
                let m = request(*k, *a, i as u32 + 1);
                want.extend(reference.handle(1, &m).for_domain(1).map(<[u8]>::to_vec));
                stream.extend(m);
            }
            let mut got = Vec::new();
            let mut sent = 0;
            let mut step = 0;
            while got.len() < want.len() {
                let c = chunks[step % chunks.len()];
                let end = (sent + c).min(stream.len());
                let page = w.sim.pages.get_mut(&1).unwrap();
                sent += ring::produce(&mut page[..], Ring::Req, &stream[sent..end]).unwrap();
                w.server.kick(1);
                let _ = w.server.run(&mut w.sim);
                got.extend(w.sim.take(1, reads[step % reads.len()]));
                step += 1;
                prop_assert!(step < 100_000, "stuck");
            }
            prop_assert_eq!(got, want);
            prop_assert_eq!(w.server.connection(1).unwrap().broken(), None);
        }

        /// Whatever a hostile domain puts in its page, nothing panics, the
        /// other domain is still served, and the toolstack can release it.
        #[test]
        fn a_hostile_page_harms_nobody_else(
            writes in proptest::collection::vec((0usize..4096, any::<u8>()), 0..64),
            indices in proptest::collection::vec((0usize..4, any::<u32>()), 0..8),
            rounds in 1usize..6,
        ) {
            let mut w = World::new(&["good", "bad"]);
            for _ in 0..rounds {
                let page = w.sim.pages.get_mut(&2).unwrap();
                for &(at, b) in &writes {
                    page[at] = b;
                }
                for &(i, v) in &indices {
                    page.store_u32(ring::REQ_CONS + 4 * i, v);
                }
                w.kick_all();
                let r = w.call(1, &req(MsgType::Read, 4, &[b"name"]));
                prop_assert_eq!(r.len(), 1);
                prop_assert_eq!(payload(&r[0]), b"good".to_vec());
                let c = w.server.connection(2).unwrap();
                prop_assert!(c.backlog() <= EVENT_BACKLOG + REPLY_BACKLOG + 8192);
            }
            w.sim.release(2);
            w.server.kick(TOOLSTACK);
            w.run();
            prop_assert_eq!(w.sim.disconnects.clone(), vec![2]);
            prop_assert!(w.server.connection(1).unwrap().broken().is_none());
        }
    }
}
