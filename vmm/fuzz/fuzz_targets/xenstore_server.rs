//! Fuzzes the store's ring transport (`xenstore_engine::server`): a
//! `Server` over the toolstack's page and three domains' ring pages (byte
//! arrays). The toolstack introduces domain 1 first, then introduces and
//! releases domains 2 and 3 (well-formed requests, any order, repeats
//! included, connecting may be refused); domain 1 is a well-behaved client
//! (well-formed requests written as the ring takes them, replies read in
//! input-chosen amounts); domains 2 and 3 are hostile: they write raw bytes
//! into their request rings, poke any word of their pages (indices included)
//! and read replies or not. Up to 256 steps, each followed by kicks and runs.
//!
//! Invariants:
//! * No panic, no hang: `Server::run` settles within a bounded number of
//!   calls after every step.
//! * Domain 1's connection is never broken, and every message it receives is
//!   a well-formed message with a payload ≤ 4096; replies echo the req_id of
//!   one of its requests, in order.
//! * Every connection's queued output stays bounded (the reply backlog plus
//!   one message, the event backlog plus one message) and a partial request
//!   is never longer than a whole message.
//! * `connect` is asked only for introduced domains not connected, and
//!   `disconnect` only for connected ones.
#![no_main]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use xenstore_engine::client::{self, Reply};
use xenstore_engine::ring::{self, Ring, RingMem};
use xenstore_engine::server::{Host, Server, EVENT_BACKLOG, REPLY_BACKLOG, TOOLSTACK};
use xenstore_engine::wire::{self, Header, MsgType, HEADER_LEN, PAYLOAD_MAX};
use xenstore_engine::{Config, DomId, Quota, Store};

#[derive(Default)]
struct Sim {
    /// Ring pages (`Vec<u8>` is a `RingMem`).
    pages: BTreeMap<DomId, Vec<u8>>,
    connected: BTreeSet<DomId>,
    refuse: BTreeSet<DomId>,
}

impl Host for Sim {
    type Error = &'static str;
    fn connect(&mut self, domid: DomId, _mfn: i64, _port: u32) -> Result<(), &'static str> {
        assert!(domid != TOOLSTACK);
        assert!(!self.connected.contains(&domid), "connected twice");
        if self.refuse.contains(&domid) || !self.pages.contains_key(&domid) {
            return Err("refused");
        }
        self.connected.insert(domid);
        Ok(())
    }
    fn disconnect(&mut self, domid: DomId) {
        assert!(self.connected.remove(&domid), "disconnect of a stranger");
    }
    fn ring(&mut self, domid: DomId) -> Option<&mut dyn RingMem> {
        if domid != TOOLSTACK && !self.connected.contains(&domid) {
            return None;
        }
        self.pages.get_mut(&domid).map(|p| p as &mut dyn RingMem)
    }
    fn notify(&mut self, _domid: DomId) {}
    fn log(&mut self, line: fmt::Arguments<'_>) {
        let _ = line.to_string();
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// The toolstack introduces domain 2 + (d % 2).
    Introduce(u8),
    /// The toolstack releases domain 2 + (d % 2).
    Release(u8),
    /// The good client sends a request built from the dictionary.
    Request { kind: u8, path: u8, value: u8 },
    /// The good client reads up to this many reply bytes.
    Read(u16),
    /// A hostile domain (2 + d % 2) writes raw bytes into its request ring.
    Bytes(u8, Vec<u8>),
    /// A hostile domain stores a word anywhere in its page.
    Poke(u8, u16, u32),
    /// A hostile domain writes a header announcing `len` bytes.
    Header(u8, u32),
    /// A hostile domain reads up to this many reply bytes.
    HostileRead(u8, u16),
    /// Connecting domain 2 + (d % 2) fails from now on.
    Refuse(u8),
}

const PATHS: [&str; 8] = [
    "data",
    "data/a",
    "data/a/b",
    "/local/domain/2/x",
    "/local/domain/1/data",
    "@introduceDomain",
    "/",
    "name",
];

fn request(kind: u8, path: u8, value: u8, id: u32) -> Vec<u8> {
    let p = PATHS[usize::from(path) % PATHS.len()];
    let r = |k, args: &[&[u8]]| client::request(k, id, 0, args).expect("short request");
    match kind % 8 {
        0 => client::write(id, 0, p, &vec![value; usize::from(value) * 8]).expect("fits"),
        1 => r(MsgType::Read, &[p.as_bytes()]),
        2 => r(MsgType::Directory, &[p.as_bytes()]),
        3 => r(MsgType::Rm, &[p.as_bytes()]),
        4 => r(MsgType::Watch, &[p.as_bytes(), b"t"]),
        5 => r(MsgType::SetPerms, &[p.as_bytes(), b"n1", b"r2", b"r3"]),
        6 => r(MsgType::Unwatch, &[p.as_bytes(), b"t"]),
        _ => r(MsgType::Mkdir, &[p.as_bytes()]),
    }
}

/// The good client: bytes not yet in its ring, req_ids awaiting replies,
/// reply bytes not yet a whole message.
#[derive(Default)]
struct Good {
    out: VecDeque<u8>,
    pending: VecDeque<u32>,
    inbox: Vec<u8>,
    next: u32,
}

fn settle(server: &mut Server, sim: &mut Sim) {
    for d in 0..=3 {
        server.kick(d);
    }
    let mut rounds = 0;
    while server.run(sim) {
        rounds += 1;
        assert!(rounds < 10_000, "the server does not settle");
    }
    let max_msg = HEADER_LEN + PAYLOAD_MAX;
    for d in 0..=3 {
        if let Some(c) = server.connection(d) {
            assert!(c.backlog() <= EVENT_BACKLOG + REPLY_BACKLOG + 2 * max_msg);
            assert!(c.partial() <= max_msg);
        }
    }
}

fn toolstack(sim: &mut Sim, id: &mut u32, msgs: &[Vec<u8>]) {
    let page = sim.pages.get_mut(&TOOLSTACK).expect("toolstack page");
    // The toolstack never reads its replies beyond making room.
    let mut sink = [0u8; 1024];
    let _ = ring::consume(page, Ring::Rsp, &mut sink);
    for m in msgs {
        if ring::space(page, Ring::Req).unwrap_or(0) as usize >= m.len() {
            let _ = ring::produce(page, Ring::Req, m);
        }
        *id += 1;
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut sim = Sim::default();
    for d in 0..=3 {
        sim.pages.insert(d, vec![0; 4096]);
    }
    let mut store = Store::new(Config {
        quota: Quota {
            max_nodes: 30,
            max_entry_size: 1024,
            max_watches: 4,
            max_transactions: 2,
            max_perms: 4,
        },
        ..Config::default()
    });
    // Homes exist from the start so that requests have something to do.
    for d in 1..=3u16 {
        let home = format!("/local/domain/{d}");
        let owner = format!("n{d}");
        for m in [
            client::request(MsgType::Mkdir, 1, 0, &[home.as_bytes()]),
            client::request(
                MsgType::SetPerms,
                2,
                0,
                &[home.as_bytes(), owner.as_bytes()],
            ),
        ] {
            let _ = store.handle(0, &m.expect("short"));
        }
    }
    let mut tid = 1u32;
    let intro = client::request(MsgType::Introduce, 0, 0, &[b"1", b"4095", b"1"]).expect("short");
    toolstack(&mut sim, &mut tid, &[intro]);
    let mut server = Server::new(store, &mut sim);
    settle(&mut server, &mut sim);
    assert!(sim.connected.contains(&1));
    let mut good = Good::default();
    for op in ops.iter().take(256) {
        match op {
            Op::Introduce(d) => {
                let d = 2 + u16::from(*d % 2);
                let args = [d.to_string(), "4095".to_string(), "1".to_string()];
                let refs: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
                let m = client::request(MsgType::Introduce, tid, 0, &refs).expect("short");
                toolstack(&mut sim, &mut tid, &[m]);
            }
            Op::Release(d) => {
                let d = (2 + u16::from(*d % 2)).to_string();
                let m = client::request(MsgType::Release, tid, 0, &[d.as_bytes()]).expect("short");
                toolstack(&mut sim, &mut tid, &[m]);
            }
            Op::Request { kind, path, value } => {
                good.next += 1;
                good.out.extend(request(*kind, *path, *value, good.next));
                good.pending.push_back(good.next);
            }
            Op::Read(n) => {
                let page = sim.pages.get_mut(&1).expect("page 1");
                let mut buf = vec![0u8; usize::from(*n).min(1024)];
                let got = ring::consume(page, Ring::Rsp, &mut buf)
                    .expect("the server keeps its indices sane");
                good.inbox.extend_from_slice(&buf[..got]);
            }
            Op::Bytes(d, bytes) => {
                let page = sim.pages.get_mut(&(2 + u16::from(*d % 2))).expect("page");
                let _ = ring::produce(page, Ring::Req, bytes);
            }
            Op::Poke(d, at, v) => {
                let page = sim.pages.get_mut(&(2 + u16::from(*d % 2))).expect("page");
                page.store_u32(usize::from(*at % 1024) * 4, *v);
            }
            Op::Header(d, len) => {
                let page = sim.pages.get_mut(&(2 + u16::from(*d % 2))).expect("page");
                let h = Header {
                    msg_type: MsgType::Read.code(),
                    req_id: 1,
                    tx_id: 0,
                    len: *len,
                };
                let _ = ring::produce(page, Ring::Req, &h.to_bytes());
            }
            Op::HostileRead(d, n) => {
                let page = sim.pages.get_mut(&(2 + u16::from(*d % 2))).expect("page");
                let mut buf = vec![0u8; usize::from(*n).min(1024)];
                let _ = ring::consume(page, Ring::Rsp, &mut buf);
            }
            Op::Refuse(d) => {
                sim.refuse.insert(2 + u16::from(*d % 2));
            }
        }
        // The good client writes what its ring takes.
        {
            let page = sim.pages.get_mut(&1).expect("page 1");
            let chunk: Vec<u8> = good.out.iter().copied().collect();
            let n =
                ring::produce(page, Ring::Req, &chunk).expect("the server keeps its indices sane");
            good.out.drain(..n);
        }
        settle(&mut server, &mut sim);
        // Whole messages the good client has.
        while good.inbox.len() >= HEADER_LEN {
            let h = Header::parse(&good.inbox).expect("16 bytes");
            let len = wire::frame_len(&h).expect("the server sends legal frames");
            if good.inbox.len() < len {
                break;
            }
            let msg: Vec<u8> = good.inbox.drain(..len).collect();
            let r = Reply::parse(&msg).expect("well-formed");
            if r.kind() == Some(MsgType::WatchEvent) {
                assert!(r.event().is_some());
                continue;
            }
            assert_eq!(
                Some(r.header.req_id),
                good.pending.pop_front(),
                "replies in order"
            );
        }
        assert_eq!(server.connection(1).map(|c| c.broken()), Some(None));
    }
});
