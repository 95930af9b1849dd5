//! Fuzzes the store (`xenstore_engine`): its wire parser on raw bytes, and
//! `Store::handle` on sessions of up to 64 messages from five domains
//! (dom0, three introduced domains, one stranger), each either raw bytes or
//! a request built from a small dictionary of paths, tokens, permissions
//! and numbers so that sessions reach deep states (transactions, watches,
//! permission changes, releases).
//!
//! Invariants:
//! * No panics.
//! * `parse_message` accepts exactly the frames whose header length is
//!   ≤ 4096 and matches the bytes; `parse_request` never panics.
//! * Every `handle` returns exactly one non-event message for the sender,
//!   first, echoing `req_id`/`tx_id` when the header was readable; every
//!   message is well-formed with a payload ≤ 4096; error payloads name an
//!   `xsd_errors` entry; events have ids 0 and two strings.
//! * The tree stays consistent: every node's parent lists it, listed
//!   children exist, ownership counts match.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use xenstore_engine::client::{self, Reply};
use xenstore_engine::wire::{self, MsgType};
use xenstore_engine::{path, Config, Quota, Store};

#[derive(Arbitrary, Debug)]
enum Arg {
    Path(u8),
    Token(u8),
    Perm(u8, u8),
    Num(u32),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Msg {
    Raw {
        dom: u8,
        bytes: Vec<u8>,
    },
    Req {
        dom: u8,
        kind: u8,
        tx: u8,
        args: Vec<Arg>,
    },
    Write {
        dom: u8,
        tx: u8,
        path: u8,
        value: Vec<u8>,
    },
}

const PATHS: [&str; 14] = [
    "/",
    "/local/domain",
    "/local/domain/1",
    "/local/domain/2/x",
    "a",
    "a/b",
    "a/b/c",
    "/a",
    "/a/b",
    "@introduceDomain",
    "@releaseDomain",
    "data",
    "/local/domain/1/data",
    "x//y",
];

fn arg(a: &Arg) -> Vec<u8> {
    match a {
        Arg::Path(i) => PATHS[usize::from(*i) % PATHS.len()].as_bytes().to_vec(),
        Arg::Token(i) => format!("tok{}", i % 4).into_bytes(),
        Arg::Perm(l, d) => {
            format!("{}{}", ['n', 'r', 'w', 'b'][usize::from(*l) % 4], d % 5).into_bytes()
        }
        Arg::Num(n) => (n % 8).to_string().into_bytes(),
        Arg::Raw(b) => b.iter().copied().filter(|&b| b != 0).take(64).collect(),
    }
}

fn check_tree(s: &Store) {
    let t = s.tree();
    let mut owned = std::collections::BTreeMap::<u16, usize>::new();
    for p in t.paths() {
        let n = t.node(p).expect("listed node");
        *owned.entry(n.perms.owner()).or_default() += 1;
        match path::parent(p) {
            Some(parent) => assert!(
                t.node(parent)
                    .is_some_and(|pn| pn.has_child(path::basename(p))),
                "{p} not listed by its parent"
            ),
            None => assert_eq!(p, "/"),
        }
        for c in n.children() {
            assert!(t.node(&path::join(p, c)).is_some(), "{p} lists missing {c}");
        }
    }
    for (d, c) in owned {
        assert_eq!(t.owned_by(d), c);
    }
}

fuzz_target!(|input: (Vec<u8>, Vec<Msg>)| {
    let (raw, msgs) = input;
    // The framing parser alone.
    match wire::parse_message(&raw) {
        Ok((h, p)) => {
            assert!(p.len() <= wire::PAYLOAD_MAX && p.len() == h.len as usize);
            if let Some(kind) = h.kind() {
                let _ = wire::parse_request(kind, p);
            }
        }
        Err(_) => {
            let ok = raw.len() >= 16 && {
                let h = wire::Header::parse(&raw).unwrap();
                h.len as usize <= 4096 && raw.len() - 16 == h.len as usize
            };
            assert!(!ok, "rejected a well-formed frame");
        }
    }
    let mut store = Store::new(Config {
        quota: Quota {
            max_nodes: 20,
            max_entry_size: 256,
            max_watches: 4,
            max_transactions: 2,
            max_perms: 3,
        },
        ..Config::default()
    });
    for d in 1..=3u16 {
        store.introduce(d, 100, 1).unwrap();
    }
    let mut txs: Vec<u32> = vec![0];
    for m in msgs.iter().take(64) {
        let (dom, bytes) = match m {
            Msg::Raw { dom, bytes } => (dom % 5, bytes.clone()),
            Msg::Req {
                dom,
                kind,
                tx,
                args,
            } => {
                let kind = MsgType::ALL[usize::from(*kind) % MsgType::ALL.len()];
                let tx = txs[usize::from(*tx) % txs.len()];
                let args: Vec<Vec<u8>> = args.iter().take(6).map(arg).collect();
                let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                match client::request(kind, 7, tx, &refs) {
                    Some(b) => (dom % 5, b),
                    None => continue,
                }
            }
            Msg::Write {
                dom,
                tx,
                path,
                value,
            } => {
                let tx = txs[usize::from(*tx) % txs.len()];
                let p = PATHS[usize::from(*path) % PATHS.len()];
                match client::write(7, tx, p, value) {
                    Some(b) => (dom % 5, b),
                    None => continue,
                }
            }
        };
        let dom = u16::from(dom);
        let out = store.handle(dom, &bytes);
        let header = wire::Header::parse(&bytes).ok();
        let mut replies = 0;
        for (i, o) in out.messages.iter().enumerate() {
            let r = Reply::parse(&o.msg).expect("well-formed output");
            assert!(r.payload.len() <= wire::PAYLOAD_MAX);
            if r.kind() == Some(MsgType::WatchEvent) {
                assert_eq!((r.header.req_id, r.header.tx_id), (0, 0));
                assert!(r.event().is_some());
                continue;
            }
            assert_eq!(o.to, dom, "only the sender gets a reply");
            assert_eq!(i, 0, "the reply comes first");
            replies += 1;
            if r.kind() == Some(MsgType::Error) {
                assert!(r.error().is_some(), "unknown error name");
            }
            if let Some(h) = header {
                assert_eq!(r.header.req_id, h.req_id);
                assert_eq!(r.header.tx_id, h.tx_id);
                if r.kind() == Some(MsgType::TransactionStart) {
                    if let Some(id) =
                        std::str::from_utf8(r.payload.strip_suffix(&[0]).unwrap_or(&[]))
                            .ok()
                            .and_then(|s| s.parse().ok())
                    {
                        txs.push(id);
                    }
                }
            }
        }
        assert_eq!(replies, 1);
        check_tree(&store);
    }
});
