//! A scripted session for the unikernel's self-check: dom0 sets up two
//! domains, they exchange state through watches and a transaction, and one
//! of them tries what its permissions forbid. Each step is one transcript
//! line, `dom<N> <REQUEST> <args> -> <reply>`, followed by lines for the
//! watch events it caused, `  event dom<N> <path> <token>`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::client::{self, Reply};
use crate::wire::MsgType;
use crate::{Config, DomId, Output, Store};

struct Session {
    store: Store,
    lines: Vec<String>,
    req: u32,
}

impl Session {
    fn record(&mut self, from: DomId, what: String, out: &Output) -> Vec<u8> {
        let mut reply = Vec::new();
        let mut text = String::from("(no reply)");
        for (i, m) in out.messages.iter().enumerate() {
            let Ok(r) = Reply::parse(&m.msg) else {
                continue;
            };
            if i == 0 && m.to == from {
                text = match r.error() {
                    Some(e) => String::from(e.as_str()),
                    None => {
                        reply = r.payload.to_vec();
                        printable(r.payload)
                    }
                };
            }
        }
        self.lines.push(format!("dom{from} {what} -> {text}"));
        for m in &out.messages {
            if let Some((p, t)) = Reply::parse(&m.msg).ok().and_then(|r| r.event()) {
                self.lines.push(format!(
                    "  event dom{} {} {}",
                    m.to,
                    printable(p),
                    printable(t)
                ));
            }
        }
        reply
    }

    fn send(&mut self, from: DomId, kind: MsgType, tx: u32, args: &[&str]) -> Vec<u8> {
        self.req = self.req.wrapping_add(1);
        let bytes: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let what = format!("{kind:?} {}", args.join(" "));
        match client::request(kind, self.req, tx, &bytes) {
            Some(msg) => {
                let out = self.store.handle(from, &msg);
                self.record(from, what, &out)
            }
            None => Vec::new(),
        }
    }

    fn write(&mut self, from: DomId, tx: u32, path: &str, value: &str) {
        self.req = self.req.wrapping_add(1);
        if let Some(msg) = client::write(self.req, tx, path, value.as_bytes()) {
            let out = self.store.handle(from, &msg);
            self.record(from, format!("Write {path} {value}"), &out);
        }
    }
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

/// Runs the session on a fresh store and returns its transcript.
pub fn scripted_session() -> Vec<String> {
    let mut s = Session {
        store: Store::new(Config::default()),
        lines: Vec::new(),
        req: 0,
    };
    s.send(0, MsgType::Watch, 0, &["@introduceDomain", "intro"]);
    for d in ["1", "2"] {
        s.send(0, MsgType::Introduce, 0, &[d, "4096", "1"]);
        let home = format!("/local/domain/{d}");
        s.send(0, MsgType::Mkdir, 0, &[&home]);
        let owner = format!("n{d}");
        s.send(0, MsgType::SetPerms, 0, &[&home, &owner]);
    }
    s.send(0, MsgType::Mkdir, 0, &["/local/domain/1/device/vif/0"]);
    s.send(
        0,
        MsgType::SetPerms,
        0,
        &["/local/domain/1/device/vif/0", "n1", "r2"],
    );
    s.send(
        2,
        MsgType::Watch,
        0,
        &["/local/domain/1/device/vif/0/state", "fe"],
    );
    let tx = s.send(1, MsgType::TransactionStart, 0, &[""]);
    let tx: u32 = core::str::from_utf8(tx.strip_suffix(&[0]).unwrap_or(&tx))
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    s.write(1, tx, "device/vif/0/tx-ring-ref", "8");
    s.write(1, tx, "device/vif/0/state", "4");
    s.send(1, MsgType::TransactionEnd, tx, &["T"]);
    s.send(
        2,
        MsgType::Read,
        0,
        &["/local/domain/1/device/vif/0/tx-ring-ref"],
    );
    s.send(2, MsgType::Directory, 0, &["/local/domain/1/device/vif/0"]);
    s.write(2, 0, "/local/domain/1/device/vif/0/state", "6");
    s.send(2, MsgType::Read, 0, &["/local/domain/1/secret"]);
    s.send(1, MsgType::Read, 0, &["secret"]);
    s.send(1, MsgType::GetPerms, 0, &["device/vif/0/state"]);
    s.send(0, MsgType::Rm, 0, &["/local/domain/1/device"]);
    s.send(0, MsgType::Release, 0, &["1"]);
    s.send(0, MsgType::IsDomainIntroduced, 0, &["1"]);
    s.lines
}
