//! Host tests of the store against xenstore's semantics.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use proptest::prelude::*;

use crate::client::{self, Reply};
use crate::wire::{self, ErrorCode, Header, MsgType};
use crate::{Config, DomId, DomainEvent, Output, Quota, Store};

/// A store with dom0 and introduced domains, and a request counter.
struct H {
    s: Store,
    req: u32,
}

type Res = Result<Vec<u8>, ErrorCode>;

impl H {
    /// dom0 plus domains 1..=n, each with a home owned by itself.
    fn with(n: DomId, config: Config) -> H {
        let mut h = H {
            s: Store::new(config),
            req: 100,
        };
        for d in 1..=n {
            h.introduce(d);
            let home = alloc::format!("/local/domain/{d}");
            h.ok(0, MsgType::Mkdir, 0, &[home.as_bytes()]);
            let owner = alloc::format!("n{d}");
            h.ok(
                0,
                MsgType::SetPerms,
                0,
                &[home.as_bytes(), owner.as_bytes()],
            );
        }
        h
    }

    fn new(n: DomId) -> H {
        H::with(n, Config::default())
    }

    fn introduce(&mut self, d: DomId) -> Output {
        let id = d.to_string();
        let mfn = (1000 + u32::from(d)).to_string();
        let out = self.send(
            0,
            MsgType::Introduce,
            0,
            &[id.as_bytes(), mfn.as_bytes(), b"7"],
        );
        assert_eq!(reply(&out, 0).error(), None, "introduce {d}");
        out
    }

    fn send(&mut self, dom: DomId, kind: MsgType, tx: u32, args: &[&[u8]]) -> Output {
        self.req = self.req.wrapping_add(1);
        let msg = client::request(kind, self.req, tx, args).expect("request fits");
        self.raw(dom, &msg)
    }

    fn raw(&mut self, dom: DomId, msg: &[u8]) -> Output {
        let out = self.s.handle(dom, msg);
        check_output(&out);
        // The reply comes first and goes to the sender.
        let first = out.messages.first().expect("a reply");
        assert_eq!(first.to, dom);
        out
    }

    fn call(&mut self, dom: DomId, kind: MsgType, tx: u32, args: &[&[u8]]) -> Res {
        let out = self.send(dom, kind, tx, args);
        let r = reply(&out, dom);
        assert_eq!(r.header.req_id, self.req);
        assert_eq!(r.header.tx_id, tx);
        match r.error() {
            Some(e) => Err(e),
            None => {
                assert_eq!(r.header.msg_type, kind.code());
                Ok(r.payload.to_vec())
            }
        }
    }

    fn ok(&mut self, dom: DomId, kind: MsgType, tx: u32, args: &[&[u8]]) -> Vec<u8> {
        match self.call(dom, kind, tx, args) {
            Ok(p) => p,
            Err(e) => panic!("{kind:?} {args:?} from dom{dom}: {e}"),
        }
    }

    fn err(&mut self, dom: DomId, kind: MsgType, tx: u32, args: &[&[u8]]) -> ErrorCode {
        match self.call(dom, kind, tx, args) {
            Ok(p) => panic!("{kind:?} {args:?} from dom{dom} succeeded: {p:?}"),
            Err(e) => e,
        }
    }

    fn write_tx(&mut self, dom: DomId, tx: u32, path: &str, value: &[u8]) -> Output {
        self.req = self.req.wrapping_add(1);
        let msg = client::write(self.req, tx, path, value).expect("fits");
        self.raw(dom, &msg)
    }

    fn write(&mut self, dom: DomId, path: &str, value: &[u8]) -> Result<(), ErrorCode> {
        let out = self.write_tx(dom, 0, path, value);
        match reply(&out, dom).error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn read(&mut self, dom: DomId, path: &str) -> Res {
        self.call(dom, MsgType::Read, 0, &[path.as_bytes()])
    }

    fn watch(&mut self, dom: DomId, path: &str, token: &str) -> Output {
        let out = self.send(dom, MsgType::Watch, 0, &[path.as_bytes(), token.as_bytes()]);
        assert_eq!(reply(&out, dom).error(), None, "watch {path}");
        out
    }

    fn tx_start(&mut self, dom: DomId) -> u32 {
        let p = self.ok(dom, MsgType::TransactionStart, 0, &[b""]);
        let s = core::str::from_utf8(p.strip_suffix(&[0]).expect("NUL")).expect("utf8");
        s.parse().expect("number")
    }

    fn tx_end(&mut self, dom: DomId, tx: u32, commit: bool) -> (Result<(), ErrorCode>, Output) {
        let out = self.send(
            dom,
            MsgType::TransactionEnd,
            tx,
            &[if commit { b"T" } else { b"F" }],
        );
        let r = match reply(&out, dom).error() {
            Some(e) => Err(e),
            None => Ok(()),
        };
        (r, out)
    }
}

/// The first message for `dom` (the reply).
fn reply(out: &Output, dom: DomId) -> Reply<'_> {
    let m = out
        .for_domain(dom)
        .next()
        .expect("a message for the sender");
    Reply::parse(m).expect("well-formed reply")
}

/// Watch events `(to, path, token)` in `out`.
fn events(out: &Output) -> Vec<(DomId, String, String)> {
    out.messages
        .iter()
        .filter_map(|m| {
            let r = Reply::parse(&m.msg).ok()?;
            let (p, t) = r.event()?;
            Some((
                m.to,
                String::from_utf8_lossy(p).into_owned(),
                String::from_utf8_lossy(t).into_owned(),
            ))
        })
        .collect()
}

fn ev(to: DomId, p: &str, t: &str) -> (DomId, String, String) {
    (to, p.to_string(), t.to_string())
}

/// Every outgoing message is well-formed, within the payload limit.
fn check_output(out: &Output) {
    for m in &out.messages {
        let r = Reply::parse(&m.msg).expect("well-formed");
        assert!(r.payload.len() <= wire::PAYLOAD_MAX);
        if r.kind() == Some(MsgType::WatchEvent) {
            assert_eq!((r.header.req_id, r.header.tx_id), (0, 0));
            assert!(r.event().is_some(), "event payload {:?}", r.payload);
        }
        if r.kind() == Some(MsgType::Error) {
            assert!(r.error().is_some(), "error payload {:?}", r.payload);
        }
    }
}

/// Structural invariants of the committed tree.
fn check_tree(s: &Store) {
    let t = s.tree();
    let mut owned: alloc::collections::BTreeMap<DomId, usize> = Default::default();
    for p in t.paths() {
        let n = t.node(p).expect("listed");
        *owned.entry(n.perms.owner()).or_default() += 1;
        assert!(!n.perms.is_empty());
        if let Some(parent) = crate::path::parent(p) {
            let pn = t
                .node(parent)
                .unwrap_or_else(|| panic!("{p} has no parent"));
            assert!(pn.has_child(crate::path::basename(p)), "{parent} lacks {p}");
        } else {
            assert_eq!(p, "/");
        }
        for c in n.children() {
            let cp = crate::path::join(p, c);
            assert!(t.node(&cp).is_some(), "{p} lists missing {c}");
        }
    }
    for (d, c) in owned {
        assert_eq!(t.owned_by(d), c, "owned count of dom{d}");
    }
}

// ---------------------------------------------------------------- wire ----

#[test]
fn header_round_trip_and_framing_errors() {
    let h = Header {
        msg_type: 2,
        req_id: 0xdead_beef,
        tx_id: 7,
        len: 3,
    };
    let b = h.to_bytes();
    assert_eq!(Header::parse(&b), Ok(h));
    assert_eq!(&b[..4], &[2, 0, 0, 0]);
    let mut msg = b.to_vec();
    msg.extend_from_slice(b"/a\0");
    assert_eq!(wire::parse_message(&msg).map(|(_, p)| p), Ok(&b"/a\0"[..]));
    assert_eq!(
        wire::parse_message(&msg[..10]),
        Err(wire::WireError::Truncated)
    );
    assert!(matches!(
        wire::parse_message(&msg[..18]),
        Err(wire::WireError::LengthMismatch {
            header: 3,
            actual: 2
        })
    ));
    let big = Header { len: 4097, ..h };
    assert_eq!(
        wire::frame_len(&big),
        Err(wire::WireError::PayloadTooLong(4097))
    );
    assert_eq!(wire::frame_len(&Header { len: 4096, ..h }), Ok(4112));
    assert!(wire::encode(1, 0, 0, &[0u8; 4097]).is_none());
}

#[test]
fn every_type_and_error_round_trips() {
    for t in MsgType::ALL {
        assert_eq!(MsgType::from_code(t.code()), Some(t));
    }
    assert_eq!(MsgType::from_code(20), None);
    assert_eq!(MsgType::from_code(23), None);
    for e in ErrorCode::ALL {
        assert_eq!(ErrorCode::from_name(e.as_str().as_bytes()), Some(e));
    }
    assert_eq!(ErrorCode::Eagain.as_str(), "EAGAIN");
    assert_eq!(ErrorCode::E2big.as_str(), "E2BIG");
}

#[test]
fn malformed_framing_gets_protocol_errors() {
    let mut h = H::new(1);
    // Too short for a header: EINVAL with ids 0.
    let out = h.s.handle(1, &[1, 2, 3]);
    let r = reply(&out, 1);
    assert_eq!(r.error(), Some(ErrorCode::Einval));
    assert_eq!((r.header.req_id, r.header.tx_id), (0, 0));
    // Over-long announced payload: E2BIG, ids echoed.
    let hdr = Header {
        msg_type: 2,
        req_id: 9,
        tx_id: 0,
        len: 5000,
    };
    let out = h.s.handle(1, &hdr.to_bytes());
    let r = reply(&out, 1);
    assert_eq!(r.error(), Some(ErrorCode::E2big));
    assert_eq!(r.header.req_id, 9);
    // Length mismatch: EINVAL.
    let mut m = client::request(MsgType::Read, 5, 0, &[b"/x"]).unwrap();
    m.push(0);
    assert_eq!(
        reply(&h.s.handle(1, &m), 1).error(),
        Some(ErrorCode::Einval)
    );
    // Unknown type, and types only the server sends.
    for t in [20u32, 23, 0xffff, u32::MAX] {
        let m = wire::encode(t, 1, 0, b"/x\0").unwrap();
        assert_eq!(
            reply(&h.s.handle(1, &m), 1).error(),
            Some(ErrorCode::Enosys)
        );
    }
    for t in [MsgType::WatchEvent, MsgType::Error] {
        assert_eq!(h.err(1, t, 0, &[b"x"]), ErrorCode::Enosys);
    }
}

#[test]
fn malformed_payloads_get_einval() {
    let mut h = H::new(1);
    let cases: &[(MsgType, &[u8])] = &[
        (MsgType::Read, b""),
        (MsgType::Read, b"/a"),          // no NUL
        (MsgType::Read, b"/a\0/b\0"),    // two args
        (MsgType::Read, b"\0"),          // empty path
        (MsgType::Read, b"/a b\0"),      // bad character
        (MsgType::Read, b"/a/\0"),       // trailing slash
        (MsgType::Read, b"/a//b\0"),     // double slash
        (MsgType::Read, b"@foo\0"),      // special path is not a node
        (MsgType::Read, b"/\xff\0"),     // not ASCII
        (MsgType::Write, b"/a"),         // no NUL after the path
        (MsgType::Mkdir, b"x\0y"),       // trailing bytes
        (MsgType::Watch, b"/a\0"),       // no token
        (MsgType::Watch, b"/a\0t\0x\0"), // extra string
        (MsgType::TransactionStart, b"x\0"),
        (MsgType::TransactionEnd, b"X\0"),
        (MsgType::TransactionEnd, b"T"),
        (MsgType::SetPerms, b"/a\0"),         // no permission
        (MsgType::SetPerms, b"/a\0x1\0"),     // bad letter
        (MsgType::SetPerms, b"/a\0r\0"),      // no domid
        (MsgType::SetPerms, b"/a\0r65536\0"), // out of range
        (MsgType::SetPerms, b"/a\0r-1\0"),
        (MsgType::GetDomainPath, b"1x\0"),
        (MsgType::GetDomainPath, b"99999999999999999999999\0"),
        (MsgType::DirectoryPart, b"/a\0"),
        (MsgType::DirectoryPart, b"/a\0-1\0"),
    ];
    for (t, p) in cases {
        h.req += 1;
        let m = wire::encode(t.code(), h.req, 0, p).unwrap();
        let out = h.raw(1, &m);
        assert_eq!(
            reply(&out, 1).error(),
            Some(ErrorCode::Einval),
            "{t:?} {p:?}"
        );
    }
    let long = alloc::format!("/{}", "a".repeat(3072));
    assert_eq!(
        h.err(0, MsgType::Read, 0, &[long.as_bytes()]),
        ErrorCode::Einval
    );
    let ok_len = alloc::format!("/{}", "a".repeat(3071));
    assert_eq!(
        h.err(0, MsgType::Read, 0, &[ok_len.as_bytes()]),
        ErrorCode::Enoent
    );
}

#[test]
fn reply_echoes_ids_and_type() {
    let mut h = H::new(1);
    h.ok(1, MsgType::Write, 0, &[b"x"]);
    let m = client::request(MsgType::Read, 0x1234_5678, 0, &[b"x"]).unwrap();
    let out = h.s.handle(1, &m);
    let r = reply(&out, 1);
    assert_eq!(r.header.req_id, 0x1234_5678);
    assert_eq!(r.header.msg_type, MsgType::Read.code());
}

// ---------------------------------------------------------------- tree ----

#[test]
fn write_read_directory_mkdir_rm() {
    let mut h = H::new(1);
    h.write(0, "/a/b/c", b"v1").unwrap();
    assert_eq!(h.read(0, "/a/b/c").unwrap(), b"v1");
    assert_eq!(h.read(0, "/a/b").unwrap(), b"", "parents are created empty");
    h.write(0, "/a/b/d", b"\0bin\0ary").unwrap();
    assert_eq!(h.read(0, "/a/b/d").unwrap(), b"\0bin\0ary");
    assert_eq!(h.ok(0, MsgType::Directory, 0, &[b"/a/b"]), b"c\0d\0");
    assert_eq!(h.ok(0, MsgType::Directory, 0, &[b"/a/b/c"]), b"");
    h.ok(0, MsgType::Mkdir, 0, &[b"/a/b/c"]);
    assert_eq!(h.read(0, "/a/b/c").unwrap(), b"v1", "mkdir keeps a value");
    h.ok(0, MsgType::Mkdir, 0, &[b"/m/n"]);
    assert_eq!(h.read(0, "/m/n").unwrap(), b"");
    h.ok(0, MsgType::Rm, 0, &[b"/a/b"]);
    assert_eq!(h.read(0, "/a/b/c"), Err(ErrorCode::Enoent));
    assert_eq!(h.read(0, "/a/b"), Err(ErrorCode::Enoent));
    assert_eq!(h.ok(0, MsgType::Directory, 0, &[b"/a"]), b"");
    // Removing something missing is fine if its parent exists.
    h.ok(0, MsgType::Rm, 0, &[b"/a/zz"]);
    assert_eq!(h.err(0, MsgType::Rm, 0, &[b"/nope/zz"]), ErrorCode::Enoent);
    assert_eq!(h.err(0, MsgType::Rm, 0, &[b"/"]), ErrorCode::Einval);
    assert_eq!(h.ok(0, MsgType::Read, 0, &[b"/"]), b"");
    check_tree(&h.s);
}

#[test]
fn relative_paths_are_under_the_domain_home() {
    let mut h = H::new(2);
    h.write(1, "device/vif/0/state", b"1").unwrap();
    assert_eq!(
        h.read(0, "/local/domain/1/device/vif/0/state").unwrap(),
        b"1"
    );
    assert_eq!(h.read(1, "device/vif/0/state").unwrap(), b"1");
    assert_eq!(h.read(2, "device/vif/0/state"), Err(ErrorCode::Enoent));
    assert_eq!(
        h.ok(1, MsgType::GetDomainPath, 0, &[b"1"]),
        b"/local/domain/1\0"
    );
    assert_eq!(
        h.ok(2, MsgType::GetDomainPath, 0, &[b"65535"]),
        b"/local/domain/65535\0"
    );
}

#[test]
fn directory_part_pages_through_a_long_list() {
    let mut h = H::new(0);
    let mut want = Vec::new();
    for i in 0..400 {
        let name = alloc::format!("child-with-a-long-name-{i:04}");
        h.ok(
            0,
            MsgType::Mkdir,
            0,
            &[alloc::format!("/big/{name}").as_bytes()],
        );
        want.push(name);
    }
    want.sort();
    // The full list exceeds the payload limit.
    assert_eq!(
        h.err(0, MsgType::Directory, 0, &[b"/big"]),
        ErrorCode::E2big
    );
    let mut got: Vec<String> = Vec::new();
    let mut offset = 0usize;
    let mut generation = None;
    for _ in 0..100 {
        let off = offset.to_string();
        let p = h.ok(0, MsgType::DirectoryPart, 0, &[b"/big", off.as_bytes()]);
        assert!(p.len() <= wire::PAYLOAD_MAX);
        let mut parts = p.split(|&b| b == 0);
        let g = parts.next().unwrap().to_vec();
        assert_eq!(*generation.get_or_insert(g.clone()), g, "generation stable");
        let body = &p[g.len() + 1..];
        if body == b"\0" || body.is_empty() {
            break;
        }
        let done = body.ends_with(b"\0\0");
        let names = body.strip_suffix(b"\0").unwrap();
        let names = if done {
            names.strip_suffix(b"\0").unwrap()
        } else {
            names
        };
        for n in names.split(|&b| b == 0) {
            got.push(String::from_utf8(n.to_vec()).unwrap());
            offset += n.len() + 1;
        }
        if done {
            break;
        }
    }
    assert_eq!(got, want);
}

// --------------------------------------------------------- permissions ----

#[test]
fn unprivileged_domains_see_only_what_perms_allow() {
    let mut h = H::new(2);
    // The root and /local/domain are dom0's, no default access.
    assert_eq!(h.read(1, "/"), Err(ErrorCode::Eacces));
    assert_eq!(
        h.err(1, MsgType::Directory, 0, &[b"/local/domain"]),
        ErrorCode::Eacces
    );
    assert_eq!(h.write(1, "/evil", b"x"), Err(ErrorCode::Eacces));
    assert_eq!(
        h.err(1, MsgType::Mkdir, 0, &[b"/local/domain/2/x"]),
        ErrorCode::Eacces
    );
    // Its own home is its own.
    h.write(1, "data", b"secret").unwrap();
    assert_eq!(h.read(2, "/local/domain/1/data"), Err(ErrorCode::Eacces));
    assert_eq!(
        h.write(2, "/local/domain/1/data", b"x"),
        Err(ErrorCode::Eacces)
    );
    assert_eq!(
        h.err(2, MsgType::Rm, 0, &[b"/local/domain/1/data"]),
        ErrorCode::Eacces
    );
    assert_eq!(
        h.err(2, MsgType::GetPerms, 0, &[b"/local/domain/1/data"]),
        ErrorCode::Eacces
    );
    // Existence does not leak: missing and forbidden look alike to dom2 ...
    assert_eq!(h.read(2, "/local/domain/1/missing"), Err(ErrorCode::Eacces));
    // ... but not to dom1, which may read the parent.
    assert_eq!(h.read(1, "missing"), Err(ErrorCode::Enoent));
    // dom0 sees everything.
    assert_eq!(h.read(0, "/local/domain/1/data").unwrap(), b"secret");
}

#[test]
fn created_nodes_inherit_perms_and_creator_owns_them() {
    let mut h = H::new(2);
    // dom1 shares a subtree with dom2 read-only, with default none.
    h.ok(1, MsgType::Mkdir, 0, &[b"shared"]);
    h.ok(1, MsgType::SetPerms, 0, &[b"shared", b"n1", b"r2"]);
    h.write(1, "shared/a/b", b"hello").unwrap();
    assert_eq!(h.ok(1, MsgType::GetPerms, 0, &[b"shared/a/b"]), b"n1\0r2\0");
    assert_eq!(h.read(2, "/local/domain/1/shared/a/b").unwrap(), b"hello");
    assert_eq!(
        h.write(2, "/local/domain/1/shared/a/b", b"x"),
        Err(ErrorCode::Eacces)
    );
    // A node dom0 creates in dom1's tree is dom0's? No: privileged creators
    // keep the inherited owner.
    h.write(0, "/local/domain/1/shared/by0", b"").unwrap();
    assert_eq!(
        h.ok(0, MsgType::GetPerms, 0, &[b"/local/domain/1/shared/by0"]),
        b"n1\0r2\0"
    );
    // A writable area for dom2: the nodes it creates are dom2's.
    h.ok(1, MsgType::Mkdir, 0, &[b"inbox"]);
    h.ok(1, MsgType::SetPerms, 0, &[b"inbox", b"n1", b"w2"]);
    h.write(2, "/local/domain/1/inbox/msg", b"hi").unwrap();
    assert_eq!(
        h.ok(0, MsgType::GetPerms, 0, &[b"/local/domain/1/inbox/msg"]),
        b"n2\0w2\0"
    );
    // write-only: dom2 can write the inbox but not read or list it.
    assert_eq!(
        h.err(2, MsgType::Directory, 0, &[b"/local/domain/1/inbox"]),
        ErrorCode::Eacces
    );
    // but it owns what it created.
    assert_eq!(h.read(2, "/local/domain/1/inbox/msg").unwrap(), b"hi");
    // Default access applies to everyone not listed.
    h.ok(1, MsgType::SetPerms, 0, &[b"shared", b"r1"]);
    assert_eq!(h.ok(2, MsgType::Read, 0, &[b"/local/domain/1/shared"]), b"");
    // 'b' is both, 'n' overrides the default.
    h.ok(1, MsgType::SetPerms, 0, &[b"shared", b"b1", b"n2"]);
    assert_eq!(h.read(2, "/local/domain/1/shared"), Err(ErrorCode::Eacces));
    check_tree(&h.s);
}

#[test]
fn set_perms_rules() {
    let mut h = H::new(2);
    h.write(1, "x", b"").unwrap();
    h.ok(1, MsgType::SetPerms, 0, &[b"x", b"n1", b"b2"]);
    // dom2 can write but is not the owner: no permission changes.
    h.write(2, "/local/domain/1/x", b"ok").unwrap();
    assert_eq!(
        h.err(2, MsgType::SetPerms, 0, &[b"/local/domain/1/x", b"b2"]),
        ErrorCode::Eacces
    );
    // The owner cannot give the node away ...
    assert_eq!(
        h.err(1, MsgType::SetPerms, 0, &[b"x", b"n2"]),
        ErrorCode::Eperm
    );
    // ... but dom0 can.
    h.ok(0, MsgType::SetPerms, 0, &[b"/local/domain/1/x", b"n2"]);
    assert_eq!(h.read(1, "x"), Err(ErrorCode::Eacces));
    assert_eq!(h.read(2, "/local/domain/1/x").unwrap(), b"ok");
    // Too many entries for an unprivileged domain.
    h.write(1, "y", b"").unwrap();
    let many: Vec<String> = (0..6).map(|i| alloc::format!("r{}", i + 1)).collect();
    let mut args: Vec<&[u8]> = vec![b"y"];
    args.extend(many.iter().map(|s| s.as_bytes()));
    assert_eq!(h.err(1, MsgType::SetPerms, 0, &args), ErrorCode::Enospc);
    args.pop();
    h.ok(1, MsgType::SetPerms, 0, &args);
    // dom0 has no such limit.
    let lots: Vec<String> = (0..50).map(|i| alloc::format!("r{}", i + 1)).collect();
    let mut args: Vec<&[u8]> = vec![b"/local/domain/1/y"];
    args.extend(lots.iter().map(|s| s.as_bytes()));
    h.ok(0, MsgType::SetPerms, 0, &args);
}

#[test]
fn set_target_grants_the_targets_rights() {
    let mut h = H::new(3);
    h.write(2, "disk", b"d").unwrap();
    assert_eq!(h.read(3, "/local/domain/2/disk"), Err(ErrorCode::Eacces));
    assert_eq!(
        h.err(3, MsgType::SetTarget, 0, &[b"3", b"2"]),
        ErrorCode::Eacces
    );
    h.ok(0, MsgType::SetTarget, 0, &[b"3", b"2"]);
    assert_eq!(h.read(3, "/local/domain/2/disk").unwrap(), b"d");
    h.write(3, "/local/domain/2/disk", b"e").unwrap();
    assert_eq!(
        h.err(0, MsgType::SetTarget, 0, &[b"3", b"9"]),
        ErrorCode::Enoent
    );
}

// ------------------------------------------------------------- watches ----

#[test]
fn watch_fires_once_at_registration_and_once_per_change() {
    let mut h = H::new(2);
    let out = h.watch(1, "device", "tok");
    assert_eq!(
        events(&out),
        [ev(1, "device", "tok")],
        "initial event, relative"
    );
    // Ack before the initial event.
    assert_eq!(reply(&out, 1).kind(), Some(MsgType::Watch));
    let out = h.write_tx(1, 0, "device", b"x");
    assert_eq!(events(&out), [ev(1, "device", "tok")]);
    let out = h.write_tx(1, 0, "device/vbd/51712/state", b"1");
    assert_eq!(events(&out), [ev(1, "device/vbd/51712/state", "tok")]);
    // Siblings and prefixes that are not children do not fire.
    let out = h.write_tx(1, 0, "devices", b"x");
    assert!(events(&out).is_empty());
    let out = h.write_tx(1, 0, "dev", b"x");
    assert!(events(&out).is_empty());
    // mkdir of an existing node changes nothing.
    let out = h.send(1, MsgType::Mkdir, 0, &[b"device"]);
    assert!(events(&out).is_empty());
    // An absolute watch on an ancestor sees the absolute path.
    h.watch(0, "/local", "all");
    let out = h.write_tx(1, 0, "device/x", b"1");
    assert_eq!(
        events(&out),
        [
            ev(0, "/local/domain/1/device/x", "all"),
            ev(1, "device/x", "tok")
        ]
    );
    // Two watches of one domain on one path: one event each.
    h.watch(1, "device", "tok2");
    let out = h.write_tx(1, 0, "device/y", b"1");
    assert_eq!(events(&out).iter().filter(|e| e.0 == 1).count(), 2);
}

#[test]
fn removal_fires_each_watch_exactly_once() {
    let mut h = H::new(1);
    for p in ["a/b/c", "a/b/d", "a/e"] {
        h.write(1, p, b"v").unwrap();
    }
    h.watch(1, "a", "on-a");
    h.watch(1, "a/b", "on-b");
    h.watch(1, "a/b/c", "on-c");
    h.watch(1, "a/b/zz", "on-missing");
    h.watch(1, "/local/domain/1", "home");
    h.watch(1, "x", "unrelated");
    let out = h.send(1, MsgType::Rm, 0, &[b"a/b"]);
    let mut got = events(&out);
    got.sort();
    let mut want = vec![
        ev(1, "a/b", "on-a"),
        ev(1, "a/b", "on-b"),
        ev(1, "a/b/c", "on-c"),
        ev(1, "/local/domain/1/a/b", "home"),
    ];
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn events_respect_read_permission() {
    let mut h = H::new(2);
    h.write(1, "private", b"").unwrap();
    // dom2 watches dom1's node: the watch is accepted, events are not sent.
    let out = h.watch(2, "/local/domain/1/private", "t");
    assert_eq!(events(&out).len(), 1, "only the initial event");
    let out = h.write_tx(1, 0, "private", b"secret");
    assert!(events(&out).iter().all(|e| e.0 != 2));
    // Granting read lets events through.
    h.ok(1, MsgType::SetPerms, 0, &[b"private", b"n1", b"r2"]);
    let out = h.write_tx(1, 0, "private", b"v2");
    assert_eq!(events(&out), [ev(2, "/local/domain/1/private", "t")]);
    // Losing access still produces the event of the permission change.
    let out = h.send(1, MsgType::SetPerms, 0, &[b"private", b"n1"]);
    assert_eq!(events(&out), [ev(2, "/local/domain/1/private", "t")]);
    let out = h.write_tx(1, 0, "private", b"v3");
    assert!(events(&out).is_empty());
}

#[test]
fn watch_bookkeeping() {
    let mut h = H::with(
        1,
        Config {
            quota: Quota {
                max_watches: 3,
                ..Quota::default()
            },
            ..Config::default()
        },
    );
    h.watch(1, "a", "t");
    assert_eq!(
        h.err(1, MsgType::Watch, 0, &[b"a", b"t"]),
        ErrorCode::Eexist
    );
    h.watch(1, "a", "u");
    h.watch(1, "b", "t");
    assert_eq!(h.err(1, MsgType::Watch, 0, &[b"c", b"t"]), ErrorCode::E2big);
    assert_eq!(h.s.watch_count(1), 3);
    // Unwatch by the same (relative or absolute) path.
    h.ok(1, MsgType::Unwatch, 0, &[b"/local/domain/1/a", b"t"]);
    assert_eq!(
        h.err(1, MsgType::Unwatch, 0, &[b"a", b"t"]),
        ErrorCode::Enoent
    );
    let out = h.write_tx(1, 0, "a", b"");
    assert_eq!(events(&out), [ev(1, "a", "u")]);
    // Watch paths are validated.
    assert_eq!(
        h.err(1, MsgType::Watch, 0, &[b"a//b", b"t"]),
        ErrorCode::Einval
    );
    // dom0 is not limited.
    for i in 0..200 {
        h.watch(0, &alloc::format!("/w{i}"), "t");
    }
    // RESET_WATCHES drops the caller's watches and transactions.
    h.tx_start(1);
    h.ok(1, MsgType::ResetWatches, 0, &[b""]);
    assert_eq!(h.s.watch_count(1), 0);
    assert_eq!(h.s.transaction_count(1), 0);
    // The tx id is ignored by WATCH.
    let out = h.send(1, MsgType::Watch, 77, &[b"z", b"t"]);
    assert_eq!(reply(&out, 1).error(), None);
}

#[test]
fn special_watches_for_domain_introduction_and_release() {
    let mut h = H::new(1);
    h.watch(0, "@introduceDomain", "intro");
    h.watch(0, "@releaseDomain", "rel");
    h.watch(0, "/", "root");
    h.watch(1, "@releaseDomain", "rel1");
    let out = h.introduce(5);
    assert_eq!(events(&out), [ev(0, "@introduceDomain", "intro")]);
    assert_eq!(
        out.domain_events,
        [DomainEvent::Introduced {
            domid: 5,
            mfn: 1005,
            evtchn: 7
        }]
    );
    // Unprivileged domains do not get them by default ...
    let out = h.send(0, MsgType::Release, 0, &[b"5"]);
    assert_eq!(events(&out), [ev(0, "@releaseDomain", "rel")]);
    assert_eq!(out.domain_events, [DomainEvent::Released { domid: 5 }]);
    // ... unless the special path's permissions allow it.
    assert_eq!(
        h.err(1, MsgType::GetPerms, 0, &[b"@releaseDomain"]),
        ErrorCode::Eacces
    );
    assert_eq!(
        h.err(1, MsgType::SetPerms, 0, &[b"@releaseDomain", b"r1"]),
        ErrorCode::Eacces
    );
    h.ok(0, MsgType::SetPerms, 0, &[b"@releaseDomain", b"n0", b"r1"]);
    assert_eq!(
        h.ok(1, MsgType::GetPerms, 0, &[b"@releaseDomain"]),
        b"n0\0r1\0"
    );
    assert_eq!(
        h.err(0, MsgType::GetPerms, 0, &[b"@other"]),
        ErrorCode::Einval
    );
    h.introduce(6);
    let out = h.send(0, MsgType::Release, 0, &[b"6"]);
    let mut got = events(&out);
    got.sort();
    assert_eq!(
        got,
        [
            ev(0, "@releaseDomain", "rel"),
            ev(1, "@releaseDomain", "rel1")
        ]
    );
}

// -------------------------------------------------------- transactions ----

#[test]
fn transaction_isolation_and_commit() {
    let mut h = H::new(2);
    h.write(1, "cfg/a", b"0").unwrap();
    h.watch(1, "cfg", "w");
    let tx = h.tx_start(1);
    assert_ne!(tx, 0);
    let out = h.write_tx(1, tx, "cfg/a", b"1");
    assert_eq!(reply(&out, 1).header.tx_id, tx);
    assert!(events(&out).is_empty(), "no events before commit");
    h.write_tx(1, tx, "cfg/new/deep", b"2");
    assert_eq!(h.ok(1, MsgType::Read, tx, &[b"cfg/a"]), b"1");
    assert_eq!(h.ok(1, MsgType::Directory, tx, &[b"cfg"]), b"a\0new\0");
    // Outside, nothing changed yet.
    assert_eq!(h.read(1, "cfg/a").unwrap(), b"0");
    assert_eq!(h.read(1, "cfg/new"), Err(ErrorCode::Enoent));
    let (r, out) = h.tx_end(1, tx, true);
    r.unwrap();
    let mut got = events(&out);
    got.sort();
    assert_eq!(got, [ev(1, "cfg/a", "w"), ev(1, "cfg/new/deep", "w")]);
    assert_eq!(h.read(1, "cfg/new/deep").unwrap(), b"2");
    assert_eq!(h.s.transaction_count(1), 0);
    // The id is gone.
    assert_eq!(h.err(1, MsgType::Read, tx, &[b"cfg/a"]), ErrorCode::Enoent);
    check_tree(&h.s);
}

#[test]
fn transaction_abort_discards() {
    let mut h = H::new(1);
    h.watch(1, "k", "w");
    let tx = h.tx_start(1);
    h.write_tx(1, tx, "k", b"v");
    h.ok(1, MsgType::Rm, tx, &[b"k"]);
    h.ok(1, MsgType::Mkdir, tx, &[b"k/sub"]);
    let (r, out) = h.tx_end(1, tx, false);
    r.unwrap();
    assert!(events(&out).is_empty());
    assert_eq!(h.read(1, "k"), Err(ErrorCode::Enoent));
}

#[test]
fn conflicting_transactions_get_eagain() {
    let mut h = H::new(2);
    h.write(0, "/shared/x", b"0").unwrap();
    h.ok(0, MsgType::SetPerms, 0, &[b"/shared", b"b0"]);
    h.ok(0, MsgType::SetPerms, 0, &[b"/shared/x", b"b0"]);
    // Read-then-write race: the second committer loses.
    let t1 = h.tx_start(1);
    let t2 = h.tx_start(2);
    assert_eq!(h.ok(1, MsgType::Read, t1, &[b"/shared/x"]), b"0");
    assert_eq!(h.ok(2, MsgType::Read, t2, &[b"/shared/x"]), b"0");
    h.write_tx(1, t1, "/shared/x", b"1");
    h.write_tx(2, t2, "/shared/x", b"2");
    h.tx_end(1, t1, true).0.unwrap();
    assert_eq!(h.tx_end(2, t2, true).0, Err(ErrorCode::Eagain));
    assert_eq!(h.read(0, "/shared/x").unwrap(), b"1");
    // A plain write to something the transaction read also conflicts.
    let t = h.tx_start(1);
    h.ok(1, MsgType::Read, t, &[b"/shared/x"]);
    h.write(2, "/shared/x", b"3").unwrap();
    h.write_tx(1, t, "/shared/y", b"");
    assert_eq!(h.tx_end(1, t, true).0, Err(ErrorCode::Eagain));
    assert_eq!(h.read(0, "/shared/y"), Err(ErrorCode::Enoent));
    // Creation of a path the transaction found missing conflicts too.
    let t = h.tx_start(1);
    assert_eq!(
        h.err(1, MsgType::Read, t, &[b"/shared/new"]),
        ErrorCode::Enoent
    );
    h.write(2, "/shared/new", b"!").unwrap();
    assert_eq!(h.tx_end(1, t, true).0, Err(ErrorCode::Eagain));
    // Unrelated activity does not.
    let t = h.tx_start(1);
    h.ok(1, MsgType::Read, t, &[b"/shared/x"]);
    h.write(2, "elsewhere", b"").unwrap();
    h.write_tx(1, t, "mine", b"m");
    h.tx_end(1, t, true).0.unwrap();
    assert_eq!(h.read(1, "mine").unwrap(), b"m");
}

#[test]
fn transaction_bookkeeping_errors() {
    let mut h = H::with(
        1,
        Config {
            quota: Quota {
                max_transactions: 2,
                ..Quota::default()
            },
            ..Config::default()
        },
    );
    let t = h.tx_start(1);
    // TRANSACTION_START inside a transaction.
    assert_eq!(
        h.err(1, MsgType::TransactionStart, t, &[b""]),
        ErrorCode::Ebusy
    );
    assert_eq!(
        h.err(1, MsgType::TransactionStart, 999, &[b""]),
        ErrorCode::Enoent
    );
    let t2 = h.tx_start(1);
    assert_ne!(t, t2);
    assert_eq!(
        h.err(1, MsgType::TransactionStart, 0, &[b""]),
        ErrorCode::Enospc
    );
    // END needs a transaction.
    assert_eq!(
        h.err(1, MsgType::TransactionEnd, 0, &[b"T"]),
        ErrorCode::Enoent
    );
    // Another domain cannot use mine.
    h.introduce(2);
    assert_eq!(h.err(2, MsgType::Read, t, &[b"/x"]), ErrorCode::Enoent);
    h.tx_end(1, t, false).0.unwrap();
    h.tx_start(1);
}

#[test]
fn node_quota_holds_inside_transactions_too() {
    let mut h = H::with(
        1,
        Config {
            quota: Quota {
                max_nodes: 10,
                ..Quota::default()
            },
            ..Config::default()
        },
    );
    // dom1 owns its home already (1 node).
    assert_eq!(h.s.tree().owned_by(1), 1);
    for i in 0..9 {
        h.write(1, &alloc::format!("n{i}"), b"").unwrap();
    }
    assert_eq!(h.write(1, "n9", b""), Err(ErrorCode::Enospc));
    // Several missing parents count at once, all or nothing.
    h.ok(1, MsgType::Rm, 0, &[b"n8"]);
    assert_eq!(h.write(1, "p/q", b""), Err(ErrorCode::Enospc));
    assert_eq!(h.read(1, "p"), Err(ErrorCode::Enoent));
    h.ok(1, MsgType::Rm, 0, &[b"n7"]);
    let tx = h.tx_start(1);
    h.write_tx(1, tx, "p/q", b"");
    let out = h.write_tx(1, tx, "r", b"");
    assert_eq!(reply(&out, 1).error(), Some(ErrorCode::Enospc));
    h.tx_end(1, tx, true).0.unwrap();
    assert_eq!(h.s.tree().owned_by(1), 10);
    // dom0 is not limited, and owns what it creates.
    for i in 0..50 {
        h.write(0, &alloc::format!("/local/domain/1/z{i}"), b"")
            .unwrap();
    }
    check_tree(&h.s);
}

#[test]
fn entry_size_quota() {
    let mut h = H::with(
        1,
        Config {
            quota: Quota {
                max_entry_size: 100,
                ..Quota::default()
            },
            ..Config::default()
        },
    );
    // 8 bytes for the one permission entry.
    h.write(1, "v", &[b'x'; 92]).unwrap();
    assert_eq!(h.write(1, "v", &[b'x'; 93]), Err(ErrorCode::Enospc));
    assert_eq!(h.read(1, "v").unwrap().len(), 92);
    // Child lists count against the parent.
    h.write(1, "d", b"").unwrap();
    let mut n = 0;
    loop {
        let name = alloc::format!("d/child{n:03}");
        match h.write(1, &name, b"") {
            Ok(()) => n += 1,
            Err(e) => {
                assert_eq!(e, ErrorCode::Enospc);
                break;
            }
        }
    }
    assert_eq!(n, 10, "ten 9-byte names fit in 92 bytes");
    // Privileged writes are not limited.
    h.write(0, "/local/domain/1/big", &[0u8; 4000]).unwrap();
}

// ------------------------------------------------------------- domains ----

#[test]
fn introduction_and_release() {
    let mut h = H::new(0);
    // Only introduced domains are served.
    let m = client::request(MsgType::Read, 1, 0, &[b"/"]).unwrap();
    assert_eq!(
        reply(&h.s.handle(4, &m), 4).error(),
        Some(ErrorCode::Eacces)
    );
    assert_eq!(h.ok(0, MsgType::IsDomainIntroduced, 0, &[b"4"]), b"F\0");
    h.introduce(4);
    assert_eq!(h.ok(0, MsgType::IsDomainIntroduced, 0, &[b"4"]), b"T\0");
    assert_eq!(h.ok(0, MsgType::IsDomainIntroduced, 0, &[b"0"]), b"T\0");
    // Re-introducing with the same ring is fine, with another is not.
    let out = h.introduce(4);
    assert!(out.domain_events.is_empty());
    assert_eq!(
        h.err(0, MsgType::Introduce, 0, &[b"4", b"1", b"7"]),
        ErrorCode::Eexist
    );
    assert_eq!(
        h.err(0, MsgType::Introduce, 0, &[b"0", b"1", b"7"]),
        ErrorCode::Einval
    );
    assert_eq!(
        h.err(0, MsgType::Introduce, 0, &[b"32752", b"1", b"7"]),
        ErrorCode::Einval
    );
    h.ok(0, MsgType::Introduce, 0, &[b"9", b"-5", b"3", b""]);
    // Domain management is for privileged domains only.
    assert_eq!(
        h.err(4, MsgType::Introduce, 0, &[b"5", b"1", b"7"]),
        ErrorCode::Eacces
    );
    assert_eq!(h.err(4, MsgType::Release, 0, &[b"9"]), ErrorCode::Eacces);
    assert_eq!(
        h.err(4, MsgType::IsDomainIntroduced, 0, &[b"9"]),
        ErrorCode::Eacces
    );
    assert_eq!(
        h.err(4, MsgType::Control, 0, &[b"print", b"x"]),
        ErrorCode::Eacces
    );
    h.ok(0, MsgType::Control, 0, &[b"print", b"x"]);
    h.ok(0, MsgType::Resume, 0, &[b"4"]);
    assert_eq!(h.err(0, MsgType::Resume, 0, &[b"5"]), ErrorCode::Enoent);
    // dom4 sets up state; dom0 gives it a home.
    h.ok(0, MsgType::Mkdir, 0, &[b"/local/domain/4"]);
    h.ok(0, MsgType::SetPerms, 0, &[b"/local/domain/4", b"n4"]);
    h.write(4, "data", b"old secret").unwrap();
    h.ok(0, MsgType::Mkdir, 0, &[b"/granted"]);
    h.ok(0, MsgType::SetPerms, 0, &[b"/granted", b"n0", b"r4"]);
    assert_eq!(h.read(4, "/granted").unwrap(), b"");
    h.watch(4, "data", "w");
    h.tx_start(4);
    h.ok(0, MsgType::Release, 0, &[b"4"]);
    assert_eq!(h.err(0, MsgType::Release, 0, &[b"4"]), ErrorCode::Enoent);
    assert!(!h.s.is_connected(4));
    assert_eq!(h.s.tree().owned_by(4), 0);
    // A new domain 4 inherits nothing.
    h.introduce(4);
    assert_eq!(h.s.watch_count(4), 0);
    assert_eq!(h.s.transaction_count(4), 0);
    assert_eq!(h.read(4, "data"), Err(ErrorCode::Eacces));
    assert_eq!(h.read(4, "/granted"), Err(ErrorCode::Eacces));
    assert_eq!(
        h.ok(0, MsgType::GetPerms, 0, &[b"/local/domain/4/data"]),
        b"n0\0"
    );
    check_tree(&h.s);
}

#[test]
fn store_api_introduce_and_release() {
    let mut s = Store::new(Config::default());
    let out = s.introduce(3, 42, 1).unwrap();
    assert_eq!(out.domain_events.len(), 1);
    assert!(s.is_connected(3));
    assert_eq!(s.introduced().collect::<Vec<_>>(), [3]);
    assert_eq!(
        s.release(3).unwrap().domain_events,
        [DomainEvent::Released { domid: 3 }]
    );
    assert_eq!(s.release(3), Err(ErrorCode::Enoent));
    assert_eq!(s.introduce(0, 1, 1), Err(ErrorCode::Einval));
}

#[test]
fn scripted_session_like_a_linux_frontend() {
    // What a Linux guest's xenbus does when bringing up a vif, end to end.
    let mut h = H::new(2);
    // The backend (dom2) and frontend (dom1) paths, set up by dom0.
    h.ok(0, MsgType::Mkdir, 0, &[b"/local/domain/1/device/vif/0"]);
    h.ok(
        0,
        MsgType::SetPerms,
        0,
        &[b"/local/domain/1/device/vif/0", b"n1", b"r2"],
    );
    h.write(
        0,
        "/local/domain/1/device/vif/0/backend",
        b"/local/domain/2/backend/vif/1/0",
    )
    .unwrap();
    h.write(0, "/local/domain/1/device/vif/0/state", b"1")
        .unwrap();
    h.ok(0, MsgType::Mkdir, 0, &[b"/local/domain/2/backend/vif/1/0"]);
    h.ok(
        0,
        MsgType::SetPerms,
        0,
        &[b"/local/domain/2/backend/vif/1/0", b"n2", b"r1"],
    );
    h.write(0, "/local/domain/2/backend/vif/1/0/state", b"2")
        .unwrap();
    // The backend watches the frontend's state; the frontend the backend's.
    h.watch(2, "/local/domain/1/device/vif/0/state", "fe");
    h.watch(1, "/local/domain/2/backend/vif/1/0/state", "be");
    // Frontend: a transaction writing ring refs and switching state.
    let tx = h.tx_start(1);
    h.write_tx(1, tx, "device/vif/0/tx-ring-ref", b"8");
    h.write_tx(1, tx, "device/vif/0/rx-ring-ref", b"9");
    h.write_tx(1, tx, "device/vif/0/event-channel", b"5");
    h.write_tx(1, tx, "device/vif/0/state", b"4");
    let (r, out) = h.tx_end(1, tx, true);
    r.unwrap();
    assert_eq!(
        events(&out),
        [ev(2, "/local/domain/1/device/vif/0/state", "fe")]
    );
    // The backend reads what the frontend wrote, and answers.
    assert_eq!(
        h.read(2, "/local/domain/1/device/vif/0/tx-ring-ref")
            .unwrap(),
        b"8"
    );
    let out = h.write_tx(2, 0, "/local/domain/2/backend/vif/1/0/state", b"4");
    assert_eq!(
        events(&out),
        [ev(1, "/local/domain/2/backend/vif/1/0/state", "be")]
    );
    // Teardown: the toolstack removes both and releases the frontend.
    h.ok(0, MsgType::Rm, 0, &[b"/local/domain/1"]);
    h.ok(0, MsgType::Release, 0, &[b"1"]);
    assert_eq!(h.s.watch_count(1), 0);
    check_tree(&h.s);
}

// ----------------------------------------------------- property tests ----

#[derive(Clone, Debug)]
enum Op {
    Write(u8, u8, Vec<u8>),
    Mkdir(u8, u8),
    Rm(u8, u8),
    Read(u8, u8),
    Dir(u8, u8),
    SetPerms(u8, u8, u8, u8),
    Watch(u8, u8),
    Unwatch(u8, u8),
    TxStart(u8),
    TxEnd(u8, bool),
    TxWrite(u8, u8),
    Raw(u8, Vec<u8>),
}

fn path_of(dom: u8, sel: u8) -> String {
    const NAMES: [&str; 8] = [
        "a",
        "a/b",
        "a/b/c",
        "a/d",
        "e",
        "e/f",
        "/local/domain/1/a",
        "/x/y",
    ];
    let n = NAMES[usize::from(sel) % NAMES.len()];
    if n.starts_with('/') {
        n.to_string()
    } else if sel >= 128 {
        alloc::format!("/local/domain/{}/{n}", dom % 3 + 1)
    } else {
        n.to_string()
    }
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let dom = 0u8..4;
    prop_oneof![
        (
            dom.clone(),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..8)
        )
            .prop_map(|(d, p, v)| Op::Write(d, p, v)),
        (dom.clone(), any::<u8>()).prop_map(|(d, p)| Op::Mkdir(d, p)),
        (dom.clone(), any::<u8>()).prop_map(|(d, p)| Op::Rm(d, p)),
        (dom.clone(), any::<u8>()).prop_map(|(d, p)| Op::Read(d, p)),
        (dom.clone(), any::<u8>()).prop_map(|(d, p)| Op::Dir(d, p)),
        (dom.clone(), any::<u8>(), 0u8..4, 0u8..4)
            .prop_map(|(d, p, a, b)| Op::SetPerms(d, p, a, b)),
        (dom.clone(), any::<u8>()).prop_map(|(d, p)| Op::Watch(d, p)),
        (dom.clone(), any::<u8>()).prop_map(|(d, p)| Op::Unwatch(d, p)),
        dom.clone().prop_map(Op::TxStart),
        (dom.clone(), any::<bool>()).prop_map(|(d, c)| Op::TxEnd(d, c)),
        (dom.clone(), any::<u8>()).prop_map(|(d, p)| Op::TxWrite(d, p)),
        (dom, proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(d, b)| Op::Raw(d, b)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random sessions of four domains: every request gets exactly one
    /// reply, first and echoing its ids; messages are well-formed; the tree
    /// stays consistent; no domain ever reads a node it may not.
    #[test]
    fn random_sessions_keep_invariants(ops in proptest::collection::vec(op_strategy(), 1..60)) {
        let mut h = H::new(3);
        let mut open: alloc::collections::BTreeMap<u8, u32> = Default::default();
        for op in ops {
            let before = h.s.tree().clone();
            let (dom, out) = match &op {
                Op::Write(d, p, v) => {
                    let tx = 0;
                    (*d, h.write_tx(DomId::from(*d), tx, &path_of(*d, *p), v))
                }
                Op::Mkdir(d, p) => (*d, h.send(DomId::from(*d), MsgType::Mkdir, 0, &[path_of(*d, *p).as_bytes()])),
                Op::Rm(d, p) => (*d, h.send(DomId::from(*d), MsgType::Rm, 0, &[path_of(*d, *p).as_bytes()])),
                Op::Read(d, p) | Op::Dir(d, p) => {
                    let kind = if matches!(op, Op::Read(..)) { MsgType::Read } else { MsgType::Directory };
                    let path = path_of(*d, *p);
                    let out = h.send(DomId::from(*d), kind, 0, &[path.as_bytes()]);
                    // Permission check against the tree as it was.
                    let r = reply(&out, DomId::from(*d));
                    if r.error().is_none() {
                        let canon = crate::path::canonicalize(DomId::from(*d), &path).unwrap();
                        let n = before.node(&canon).expect("read succeeded on a node");
                        let caller = crate::perms::Caller { domid: DomId::from(*d), privileged: *d == 0, target: None };
                        prop_assert!(n.perms.rights(&caller).read, "dom{} read {}", d, canon);
                    }
                    (*d, out)
                }
                Op::SetPerms(d, p, a, b) => {
                    let l = [b"n", b"r", b"w", b"b"][usize::from(*a)];
                    let first = alloc::format!("{}{}", l[0] as char, d);
                    let second = alloc::format!("{}{}", [b'n', b'r', b'w', b'b'][usize::from(*b)] as char, (d + 1) % 4);
                    (*d, h.send(DomId::from(*d), MsgType::SetPerms, 0,
                        &[path_of(*d, *p).as_bytes(), first.as_bytes(), second.as_bytes()]))
                }
                Op::Watch(d, p) => (*d, h.send(DomId::from(*d), MsgType::Watch, 0, &[path_of(*d, *p).as_bytes(), b"t"])),
                Op::Unwatch(d, p) => (*d, h.send(DomId::from(*d), MsgType::Unwatch, 0, &[path_of(*d, *p).as_bytes(), b"t"])),
                Op::TxStart(d) => {
                    let out = h.send(DomId::from(*d), MsgType::TransactionStart, 0, &[b""]);
                    let r = reply(&out, DomId::from(*d));
                    if r.error().is_none() {
                        let id: u32 = core::str::from_utf8(&r.payload[..r.payload.len() - 1]).unwrap().parse().unwrap();
                        open.insert(*d, id);
                    }
                    (*d, out)
                }
                Op::TxEnd(d, c) => {
                    let tx = open.remove(d).unwrap_or(0);
                    (*d, h.send(DomId::from(*d), MsgType::TransactionEnd, tx, &[if *c { b"T" } else { b"F" }]))
                }
                Op::TxWrite(d, p) => {
                    let tx = open.get(d).copied().unwrap_or(0);
                    (*d, h.write_tx(DomId::from(*d), tx, &path_of(*d, *p), b"t"))
                }
                Op::Raw(d, bytes) => (*d, h.raw(DomId::from(*d), bytes)),
            };
            let dom = DomId::from(dom);
            // Exactly one non-event message for the sender: the reply.
            let replies = out.for_domain(dom)
                .filter(|m| Reply::parse(m).unwrap().kind() != Some(MsgType::WatchEvent))
                .count();
            prop_assert_eq!(replies, 1);
            if !matches!(op, Op::Raw(..)) {
                prop_assert_eq!(reply(&out, dom).header.req_id, h.req);
            }
            // Nobody else gets anything but events.
            for m in out.messages.iter().filter(|m| m.to != dom) {
                prop_assert_eq!(Reply::parse(&m.msg).unwrap().kind(), Some(MsgType::WatchEvent));
            }
            check_tree(&h.s);
        }
    }

    /// Privileged-only writes and removals against a reference map.
    #[test]
    fn matches_a_reference_model(ops in proptest::collection::vec((0u8..3, 0u8..8, any::<u8>()), 1..80)) {
        let mut h = H::new(0);
        let mut model: alloc::collections::BTreeMap<String, Vec<u8>> = Default::default();
        model.insert("/".into(), Vec::new());
        model.insert("/local".into(), Vec::new());
        model.insert("/local/domain".into(), Vec::new());
        for (kind, sel, val) in ops {
            let p = path_of(0, sel);
            let p = crate::path::canonicalize(0, &p).unwrap();
            match kind {
                0 => {
                    h.write(0, &p, &[val]).unwrap();
                    let mut cur = p.as_str();
                    while let Some(parent) = crate::path::parent(cur) {
                        model.entry(parent.to_string()).or_default();
                        cur = parent;
                    }
                    model.insert(p.clone(), vec![val]);
                }
                1 => {
                    let parent_exists = model.contains_key(crate::path::parent(&p).unwrap());
                    let r = h.call(0, MsgType::Rm, 0, &[p.as_bytes()]);
                    if model.contains_key(&p) || parent_exists {
                        prop_assert!(r.is_ok());
                    } else {
                        prop_assert_eq!(r, Err(ErrorCode::Enoent));
                    }
                    let prefix = alloc::format!("{p}/");
                    model.retain(|k, _| k != &p && !k.starts_with(&prefix));
                }
                _ => {
                    let r = h.read(0, &p);
                    match model.get(&p) {
                        Some(v) => prop_assert_eq!(r, Ok(v.clone())),
                        None => prop_assert_eq!(r, Err(ErrorCode::Enoent)),
                    }
                }
            }
        }
        let paths: Vec<String> = h.s.tree().paths().map(String::from).collect();
        let want: Vec<String> = model.keys().cloned().collect();
        prop_assert_eq!(paths, want);
    }

    /// Serializability: a transaction that read a value commits only if the
    /// value is unchanged at commit time.
    #[test]
    fn commits_never_build_on_stale_reads(outside in proptest::collection::vec((any::<bool>(), 0u8..4), 0..6)) {
        let mut h = H::new(2);
        for k in 0..4 {
            h.write(0, &alloc::format!("/s/k{k}"), b"0").unwrap();
        }
        h.ok(0, MsgType::SetPerms, 0, &[b"/s", b"b0"]);
        for k in 0..4 {
            h.ok(0, MsgType::SetPerms, 0, &[alloc::format!("/s/k{k}").as_bytes(), b"b0"]);
        }
        let tx = h.tx_start(1);
        let seen = h.ok(1, MsgType::Read, tx, &[b"/s/k0"]);
        h.write_tx(1, tx, "/s/k1", b"from-tx");
        let mut k0_changed = false;
        for (write, k) in outside {
            let p = alloc::format!("/s/k{k}");
            if write {
                h.write(2, &p, b"outside").unwrap();
                k0_changed |= k == 0;
            } else {
                h.read(2, &p).unwrap();
            }
        }
        let (r, _) = h.tx_end(1, tx, true);
        if k0_changed {
            prop_assert_eq!(r, Err(ErrorCode::Eagain));
        }
        if r.is_ok() {
            prop_assert_eq!(h.read(0, "/s/k0").unwrap(), seen);
            prop_assert_eq!(h.read(0, "/s/k1").unwrap(), b"from-tx".to_vec());
        }
    }

    /// Arbitrary bytes from any domain: one well-formed reply, no panic.
    #[test]
    fn arbitrary_messages_get_one_reply(dom in 0u16..5, kind in 0u32..25, tx in 0u32..3, payload in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut h = H::new(3);
        let m = wire::encode(kind, 1, tx, &payload).unwrap();
        let out = h.s.handle(dom, &m);
        check_output(&out);
        let replies = out.for_domain(dom)
            .filter(|m| Reply::parse(m).unwrap().kind() != Some(MsgType::WatchEvent))
            .count();
        prop_assert_eq!(replies, 1);
    }
}

#[test]
fn the_self_check_session_transcript() {
    let t = crate::selfcheck::scripted_session();
    let text = t.lines.join("\n");
    assert_eq!(t.unexpected, Vec::<String>::new(), "{text}");
    assert_eq!(
        t.requests,
        t.lines.iter().filter(|l| !l.starts_with("  ")).count()
    );
    // Each request line, with exactly the events that follow it.
    let events = |req: &str| -> Vec<&str> {
        let i = t
            .lines
            .iter()
            .position(|l| l == req)
            .unwrap_or_else(|| panic!("missing {req:?} in\n{text}"));
        t.lines[i + 1..]
            .iter()
            .take_while(|l| l.starts_with("  "))
            .map(String::as_str)
            .collect()
    };
    let fe = "  event dom2 /local/domain/1/device/vif/0/state fe";
    for (req, want) in [
        (
            "dom0 Introduce 1 4096 1 -> OK",
            &["  event dom0 @introduceDomain intro"][..],
        ),
        ("dom1 tx1 Write device/vif/0/state 3 -> OK", &[]),
        ("dom1 tx1 TransactionEnd T -> OK", &[fe]),
        (
            "dom2 Read /local/domain/1/device/vif/0/tx-ring-ref -> 8",
            &[],
        ),
        (
            "dom2 Directory /local/domain/1/device/vif/0 -> state|tx-ring-ref",
            &[],
        ),
        (
            "dom2 Write /local/domain/1/device/vif/0/state 6 -> EACCES",
            &[],
        ),
        ("dom2 Read /local/domain/1/secret -> EACCES", &[]),
        ("dom1 Read secret -> ENOENT", &[]),
        ("dom1 GetPerms device/vif/0/state -> n1|r2", &[]),
        ("dom1 SetPerms device/vif/0/state n2 -> EPERM", &[]),
        ("dom1 TransactionStart -> ENOSPC", &[]),
        (
            "dom0 Write /local/domain/1/device/vif/0/state 5 -> OK",
            &[fe],
        ),
        ("dom1 tx2 TransactionEnd T -> EAGAIN", &[]),
        ("dom1 Read device/vif/0/state -> 5", &[]),
        ("dom1 tx3 TransactionEnd T -> OK", &[fe]),
        (
            "dom1 SetPerms device/vif/0/state n1 r2 r3 r4 r5 r6 -> ENOSPC",
            &[],
        ),
        ("dom2 Watch /local/domain/1/device/vif/0 vif -> E2BIG", &[]),
        ("dom2 Write scratch/1/2/3/4/5/6/7 x -> ENOSPC", &[]),
        (
            "dom2 Write scratch/1/2/3/4/5/6 x -> OK",
            &["  event dom2 /local/domain/2/scratch/1/2/3/4/5/6 home"],
        ),
        ("dom2 Write scratch/more x -> ENOSPC", &[]),
        ("dom0 Rm /local/domain/1/device -> OK", &[fe]),
        (
            "dom0 Release 1 -> OK",
            &["  event dom0 @releaseDomain release"],
        ),
        ("dom1 Read secret -> EACCES", &[]),
        ("dom0 IsDomainIntroduced 1 -> F", &[]),
    ] {
        assert_eq!(events(req), want, "after {req:?} in\n{text}");
    }
    // The watch fires once when set and once per change: two commits,
    // dom0's write and the removal.
    assert_eq!(t.lines.iter().filter(|l| *l == fe).count(), 5, "{text}");
}
