//! A scripted session for the unikernel's self-check: dom0 sets up two
//! domains, they exchange state through watches and transactions, one
//! transaction conflicts and is retried, the domains run into what their
//! permissions forbid and into their quotas, and dom0 sees the domains come
//! and go through `@introduceDomain` and `@releaseDomain`.
//!
//! Each request is one transcript line, `dom<N> <REQUEST> <args> -> <reply>`
//! (`dom<N> tx<T> <REQUEST> ...` inside transaction `T`), where the reply
//! is the payload (NULs shown as `|`) or the error name. The watch events
//! the request caused follow it, one line each, `  event dom<N> <path>
//! <token>`. Every request states the reply it expects;
//! [`Transcript::unexpected`] lists those answered otherwise.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::client::{self, Reply};
use crate::wire::{ErrorCode, MsgType};
use crate::{Config, DomId, Output, Quota, Store};

/// What the session did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transcript {
    /// One line per request and per watch event (see the module doc).
    pub lines: Vec<String>,
    /// Requests sent.
    pub requests: usize,
    /// Requests answered otherwise than the script expects, each as
    /// `<request line>: expected <reply>`.
    pub unexpected: Vec<String>,
}

/// The reply a request expects.
#[derive(Clone, Copy, Debug)]
enum Want {
    /// This payload, as the transcript shows it.
    Reply(&'static str),
    /// A transaction id: a nonzero decimal number.
    TxId,
    /// This error.
    Error(ErrorCode),
}

struct Session {
    store: Store,
    t: Transcript,
    req: u32,
}

impl Session {
    /// Sends `msg` (built for request id `self.req`) from `from`, records
    /// the request and its events, checks the reply against `want` and
    /// returns the reply's payload (empty for an error).
    fn step(
        &mut self,
        from: DomId,
        tx: u32,
        what: String,
        msg: Option<Vec<u8>>,
        want: Want,
    ) -> Vec<u8> {
        let what = match tx {
            0 => format!("dom{from} {what}"),
            t => format!("dom{from} tx{t} {what}"),
        };
        self.t.requests = self.t.requests.saturating_add(1);
        let Some(msg) = msg else {
            self.t.lines.push(format!("{what} -> (too long to send)"));
            self.t
                .unexpected
                .push(format!("{what}: the request does not fit in a message"));
            return Vec::new();
        };
        let out = self.store.handle(from, &msg);
        let (text, payload, ok) = reply_of(from, &out, want);
        let line = format!("{what} -> {text}");
        if !ok {
            self.t.unexpected.push(format!("{line}: expected {want}"));
        }
        self.t.lines.push(line);
        for m in &out.messages {
            if let Some((p, t)) = Reply::parse(&m.msg).ok().and_then(|r| r.event()) {
                self.t.lines.push(format!(
                    "  event dom{} {} {}",
                    m.to,
                    printable(p),
                    printable(t)
                ));
            }
        }
        payload
    }

    fn send(&mut self, from: DomId, kind: MsgType, tx: u32, args: &[&str], want: Want) -> Vec<u8> {
        self.req = self.req.wrapping_add(1);
        let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let mut what = format!("{kind:?}");
        for a in args.iter().filter(|a| !a.is_empty()) {
            what.push(' ');
            what.push_str(a);
        }
        let msg = client::request(kind, self.req, tx, &bytes);
        self.step(from, tx, what, msg, want)
    }

    fn write(&mut self, from: DomId, tx: u32, path: &str, value: &str, want: Want) {
        self.req = self.req.wrapping_add(1);
        let msg = client::write(self.req, tx, path, value.as_bytes());
        self.step(from, tx, format!("Write {path} {value}"), msg, want);
    }

    /// Starts a transaction for `from`; its id, or 0 if it did not start.
    fn start(&mut self, from: DomId) -> u32 {
        let id = self.send(from, MsgType::TransactionStart, 0, &[""], Want::TxId);
        tx_id(&id).unwrap_or(0)
    }
}

impl core::fmt::Display for Want {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Want::Reply(r) => f.write_str(r),
            Want::TxId => f.write_str("a transaction id"),
            Want::Error(e) => f.write_str(e.as_str()),
        }
    }
}

/// The reply to `from` in `out` as the transcript shows it, its payload
/// (empty for an error) and whether it is what `want` says.
fn reply_of(from: DomId, out: &Output, want: Want) -> (String, Vec<u8>, bool) {
    let first = out
        .messages
        .first()
        .filter(|m| m.to == from)
        .and_then(|m| Reply::parse(&m.msg).ok())
        .filter(|r| r.kind() != Some(MsgType::WatchEvent));
    let Some(r) = first else {
        return (String::from("(no reply)"), Vec::new(), false);
    };
    if let Some(e) = r.error() {
        let ok = matches!(want, Want::Error(w) if w == e);
        return (String::from(e.as_str()), Vec::new(), ok);
    }
    let text = printable(r.payload);
    let ok = match want {
        Want::Reply(w) => text == w,
        Want::TxId => tx_id(r.payload).is_some(),
        Want::Error(_) => false,
    };
    (text, r.payload.to_vec(), ok)
}

/// A transaction id from `XS_TRANSACTION_START`'s reply.
fn tx_id(payload: &[u8]) -> Option<u32> {
    let s = core::str::from_utf8(payload.strip_suffix(&[0]).unwrap_or(payload)).ok()?;
    s.parse().ok().filter(|&t| t != 0)
}

/// NUL-separated strings as `a|b|c` (NULs shown as `|`), other bytes
/// outside printable ASCII as `.`.
fn printable(b: &[u8]) -> String {
    let b = b.strip_suffix(&[0]).unwrap_or(b);
    b.iter()
        .map(|&c| match c {
            0 => '|',
            0x20..=0x7e => char::from(c),
            _ => '.',
        })
        .collect()
}

/// The session's store configuration: xenstored's defaults, except that
/// an unprivileged domain may own 8 nodes, set 2 watches and have 1
/// transaction open, so the session reaches those quotas in a few steps.
pub fn config() -> Config {
    Config {
        quota: Quota {
            max_nodes: 8,
            max_watches: 2,
            max_transactions: 1,
            ..Quota::default()
        },
        ..Config::default()
    }
}

/// Runs the session on a fresh store with [`config`] and returns its
/// transcript.
pub fn scripted_session() -> Transcript {
    use MsgType::*;
    use Want::Reply as R;
    const OK: Want = R("OK");
    const EACCES: Want = Want::Error(ErrorCode::Eacces);
    const ENOENT: Want = Want::Error(ErrorCode::Enoent);
    const EPERM: Want = Want::Error(ErrorCode::Eperm);
    const EAGAIN: Want = Want::Error(ErrorCode::Eagain);
    const ENOSPC: Want = Want::Error(ErrorCode::Enospc);
    const E2BIG: Want = Want::Error(ErrorCode::E2big);
    const VIF: &str = "/local/domain/1/device/vif/0";
    const STATE: &str = "/local/domain/1/device/vif/0/state";
    let mut s = Session {
        store: Store::new(config()),
        t: Transcript::default(),
        req: 0,
    };

    // dom0 watches domains come and go, introduces dom1 and dom2 and gives
    // each its home.
    s.send(0, Watch, 0, &["@introduceDomain", "intro"], OK);
    s.send(0, Watch, 0, &["@releaseDomain", "release"], OK);
    for d in ["1", "2"] {
        s.send(0, Introduce, 0, &[d, "4096", "1"], OK);
        let home = format!("/local/domain/{d}");
        s.send(0, Mkdir, 0, &[&home], OK);
        let owner = format!("n{d}");
        s.send(0, SetPerms, 0, &[&home, &owner], OK);
    }

    // A vif frontend in dom1 that its backend, dom2, may read.
    s.send(0, Mkdir, 0, &[VIF], OK);
    s.send(0, SetPerms, 0, &[VIF, "n1", "r2"], OK);
    s.send(2, Watch, 0, &[STATE, "fe"], OK);
    // dom1 writes state twice in one transaction: one event at commit.
    let tx = s.start(1);
    s.write(1, tx, "device/vif/0/tx-ring-ref", "8", OK);
    s.write(1, tx, "device/vif/0/state", "3", OK);
    s.write(1, tx, "device/vif/0/state", "4", OK);
    s.send(1, TransactionEnd, tx, &["T"], OK);
    s.send(
        2,
        Read,
        0,
        &["/local/domain/1/device/vif/0/tx-ring-ref"],
        R("8"),
    );
    s.send(2, Directory, 0, &[VIF], R("state|tx-ring-ref"));

    // dom2 may read but not write; dom1's other nodes it may not even see.
    s.write(2, 0, STATE, "6", EACCES);
    s.send(2, Read, 0, &["/local/domain/1/secret"], EACCES);
    s.send(1, Read, 0, &["secret"], ENOENT);
    s.send(1, GetPerms, 0, &["device/vif/0/state"], R("n1|r2"));
    // Only dom0 may give a node away.
    s.send(1, SetPerms, 0, &["device/vif/0/state", "n2"], EPERM);

    // A transaction whose read is overtaken by dom0's write: EAGAIN, and
    // nothing of it is applied. A second one while it is open is over quota.
    let tx = s.start(1);
    s.send(1, TransactionStart, 0, &[""], ENOSPC);
    s.send(1, Read, tx, &["device/vif/0/state"], R("4"));
    s.write(0, 0, STATE, "5", OK);
    s.write(1, tx, "device/vif/0/state", "6", OK);
    s.send(1, TransactionEnd, tx, &["T"], EAGAIN);
    s.send(1, Read, 0, &["device/vif/0/state"], R("5"));
    // The retry commits.
    let tx = s.start(1);
    s.send(1, Read, tx, &["device/vif/0/state"], R("5"));
    s.write(1, tx, "device/vif/0/state", "6", OK);
    s.send(1, TransactionEnd, tx, &["T"], OK);

    // Quotas: permissions per node, watches, nodes.
    s.send(
        1,
        SetPerms,
        0,
        &["device/vif/0/state", "n1", "r2", "r3", "r4", "r5", "r6"],
        ENOSPC,
    );
    s.send(2, Watch, 0, &["/local/domain/2", "home"], OK);
    s.send(2, Watch, 0, &[VIF, "vif"], E2BIG);
    // dom2 owns its home; 8 new nodes would make 9, 7 make 8.
    s.write(2, 0, "scratch/1/2/3/4/5/6/7", "x", ENOSPC);
    s.write(2, 0, "scratch/1/2/3/4/5/6", "x", OK);
    s.write(2, 0, "scratch/more", "x", ENOSPC);
    s.send(0, Rm, 0, &["/local/domain/2/scratch"], OK);

    // Tear-down: removing a subtree fires the watch set inside it; a
    // released domain may no longer talk to the store.
    s.send(0, Rm, 0, &["/local/domain/1/device"], OK);
    s.send(0, Release, 0, &["1"], OK);
    s.send(1, Read, 0, &["secret"], EACCES);
    s.send(0, IsDomainIntroduced, 0, &["1"], R("F"));
    s.send(0, IsDomainIntroduced, 0, &["2"], R("T"));
    s.t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{wire, Outgoing};

    fn out(to: DomId, kind: MsgType, payload: &[u8]) -> Output {
        let msg = wire::encode(kind.code(), 1, 0, payload).unwrap();
        Output {
            messages: alloc::vec![Outgoing { to, msg }],
            ..Output::default()
        }
    }

    #[test]
    fn replies_are_checked_against_the_script() {
        let read = out(1, MsgType::Read, b"8");
        assert_eq!(
            reply_of(1, &read, Want::Reply("8")),
            (String::from("8"), b"8".to_vec(), true)
        );
        assert!(!reply_of(1, &read, Want::Reply("9")).2);
        assert!(!reply_of(1, &read, Want::Error(ErrorCode::Eacces)).2);
        // A reply to another domain is no reply.
        assert_eq!(
            reply_of(2, &read, Want::Reply("8")),
            (String::from("(no reply)"), Vec::new(), false)
        );
        assert!(!reply_of(1, &Output::default(), Want::Reply("OK")).2);
        assert!(
            !reply_of(
                1,
                &out(1, MsgType::WatchEvent, b"a\0t\0"),
                Want::Reply("a|t")
            )
            .2
        );

        let again = out(1, MsgType::Error, b"EAGAIN\0");
        assert_eq!(
            reply_of(1, &again, Want::Error(ErrorCode::Eagain)),
            (String::from("EAGAIN"), Vec::new(), true)
        );
        assert!(!reply_of(1, &again, Want::Error(ErrorCode::Enospc)).2);
        assert!(!reply_of(1, &again, Want::Reply("OK")).2);

        let start = |p: &[u8]| reply_of(1, &out(1, MsgType::TransactionStart, p), Want::TxId).2;
        assert!(start(b"7\0"));
        assert!(!start(b"0\0"));
        assert!(!start(b"x\0"));
    }
}
