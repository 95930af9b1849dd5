//! The store unikernel under QEMU: `storevm` boots bare on q35 with no
//! device and, with `mode=selfcheck`, runs the xenstore engine's scripted
//! session (dom0 and two domains, see `xenstore_engine::selfcheck`) and
//! prints its transcript.
//! The test checks what a user reading it would check — the replies to
//! particular requests, the watch events each one caused, the summary, the
//! footprint — and that the guest exits 0.
//!
//! RAM: [`RAM_MIB`] = 2 MiB is the smallest QEMU RAM that works (with 1 MiB
//! the guest never starts: the firmware and the image at 1 MiB do not fit);
//! the store uses about 380 KiB of it (image 344 KiB with a 64 KiB stack, of
//! which about 20 KiB is used, and a heap high-water mark of about 33 KiB).

use cloister::qemu::{self, QemuConfig};
use std::path::Path;
use std::time::{Duration, Instant};

/// The storevm ELF, built by build.rs.
const STOREVM_ELF: &str = env!("CLOISTER_GUEST_STOREVM");
/// Guest RAM: the smallest that works.
const RAM_MIB: u32 = 2;
/// Boot and session under TCG take about a second.
const TIMEOUT: Duration = Duration::from_secs(60);
/// The scripted session, not the store service (storevm's default).
const CMDLINE: &str = "mode=selfcheck";
/// Every line the guest prints starts with this.
const PREFIX: &str = "storevm: ";
/// dom2's watch on the frontend's state, as it fires.
const FE: &str = "  event dom2 /local/domain/1/device/vif/0/state fe";

/// The guest's transcript lines (prefix removed) and the whole run for
/// failure messages.
struct Transcript {
    lines: Vec<String>,
    context: String,
}

impl Transcript {
    /// Where the request line `req` is; it must occur exactly once.
    fn position(&self, req: &str) -> usize {
        let hits: Vec<usize> = (0..self.lines.len())
            .filter(|&i| self.lines[i] == req)
            .collect();
        match hits[..] {
            [i] => i,
            _ => panic!(
                "`{req}` should appear once, appears {} times\n{}",
                hits.len(),
                self.context
            ),
        }
    }

    /// The event lines right after the request line `req`.
    fn events_after(&self, req: &str) -> Vec<&str> {
        let i = self.position(req);
        self.lines[i + 1..]
            .iter()
            .take_while(|l| l.starts_with("  event "))
            .map(String::as_str)
            .collect()
    }

    /// Checks that `req` is answered as shown and causes exactly `events`.
    fn expect(&self, req: &str, events: &[&str]) {
        assert_eq!(
            self.events_after(req),
            events,
            "events after `{req}`\n{}",
            self.context
        );
    }

    /// Checks that the request lines `reqs` come in this order.
    fn in_order(&self, reqs: &[&str]) {
        let at: Vec<usize> = reqs.iter().map(|r| self.position(r)).collect();
        assert!(
            at.windows(2).all(|w| w[0] < w[1]),
            "expected in this order: {reqs:#?}\n{}",
            self.context
        );
    }
}

#[test]
fn storevm_runs_the_store_session() {
    let start = Instant::now();
    let config = QemuConfig {
        machine: "q35".into(),
        mem_mib: RAM_MIB,
        extra: Vec::new(),
    };
    let result = qemu::spawn_or_panic(Path::new(STOREVM_ELF), CMDLINE, &config).finish(TIMEOUT);
    let context = result.context();
    assert_eq!(
        result.guest_exit_code(),
        Some(0),
        "storevm did not exit 0\n{context}"
    );
    let ours: Vec<&str> = result
        .lines()
        .filter_map(|l| l.strip_prefix(PREFIX))
        .collect();
    let t = Transcript {
        lines: ours
            .iter()
            .filter(|l| !l.starts_with("self-check: ") && !l.starts_with("footprint: "))
            .map(|l| l.to_string())
            .collect(),
        context: context.clone(),
    };

    // The session's quotas, then its 46 requests with their 13 events, all
    // answered as the session expects.
    assert!(
        ours.contains(
            &"self-check: quota per unprivileged domain: nodes 8, watches 2, open transactions \
              1, permissions per node 5, entry size 2048 bytes"
        ),
        "{context}"
    );
    assert!(
        ours.contains(&"self-check: 46 requests, 13 events, every reply as expected"),
        "{context}"
    );
    assert!(
        !ours.iter().any(|l| l.contains("unexpected reply")),
        "{context}"
    );
    let requests = t.lines.iter().filter(|l| l.starts_with("dom")).count();
    let events = t.lines.iter().filter(|l| l.starts_with("  event ")).count();
    assert_eq!((requests, events), (46, 13), "{context}");
    assert_eq!(requests + events, t.lines.len(), "stray lines\n{context}");

    // dom0 hears of each domain's introduction and release, once.
    t.expect(
        "dom0 Watch @introduceDomain intro -> OK",
        &["  event dom0 @introduceDomain intro"],
    );
    t.expect(
        "dom0 Watch @releaseDomain release -> OK",
        &["  event dom0 @releaseDomain release"],
    );
    for d in [1, 2] {
        t.expect(
            &format!("dom0 Introduce {d} 4096 1 -> OK"),
            &["  event dom0 @introduceDomain intro"],
        );
    }
    t.expect(
        "dom0 Release 1 -> OK",
        &["  event dom0 @releaseDomain release"],
    );
    t.in_order(&[
        "dom0 Release 1 -> OK",
        "dom1 Read secret -> EACCES",
        "dom0 IsDomainIntroduced 1 -> F",
        "dom0 IsDomainIntroduced 2 -> T",
    ]);

    // dom1 writes in a transaction and dom2 reads it back; dom2's watch on
    // the state fires once when set and once at commit, though the state
    // was written twice.
    t.expect(
        "dom2 Watch /local/domain/1/device/vif/0/state fe -> OK",
        &[FE],
    );
    t.expect("dom1 tx1 Write device/vif/0/tx-ring-ref 8 -> OK", &[]);
    t.expect("dom1 tx1 Write device/vif/0/state 3 -> OK", &[]);
    t.expect("dom1 tx1 Write device/vif/0/state 4 -> OK", &[]);
    t.expect("dom1 tx1 TransactionEnd T -> OK", &[FE]);
    t.expect(
        "dom2 Read /local/domain/1/device/vif/0/tx-ring-ref -> 8",
        &[],
    );
    t.expect(
        "dom2 Directory /local/domain/1/device/vif/0 -> state|tx-ring-ref",
        &[],
    );
    t.in_order(&[
        "dom1 TransactionStart -> 1",
        "dom1 tx1 TransactionEnd T -> OK",
        "dom2 Read /local/domain/1/device/vif/0/tx-ring-ref -> 8",
    ]);

    // Permissions: dom2 may read the vif but not write it, and may not
    // learn whether dom1's other nodes exist; dom1 may not give a node away.
    t.expect(
        "dom2 Write /local/domain/1/device/vif/0/state 6 -> EACCES",
        &[],
    );
    t.expect("dom2 Read /local/domain/1/secret -> EACCES", &[]);
    t.expect("dom1 Read secret -> ENOENT", &[]);
    t.expect("dom1 GetPerms device/vif/0/state -> n1|r2", &[]);
    t.expect("dom1 SetPerms device/vif/0/state n2 -> EPERM", &[]);

    // A transaction overtaken by dom0's write: EAGAIN, nothing applied, no
    // event; the retry commits and fires once.
    t.in_order(&[
        "dom1 TransactionStart -> 2",
        "dom1 tx2 Read device/vif/0/state -> 4",
        "dom0 Write /local/domain/1/device/vif/0/state 5 -> OK",
        "dom1 tx2 Write device/vif/0/state 6 -> OK",
        "dom1 tx2 TransactionEnd T -> EAGAIN",
        "dom1 Read device/vif/0/state -> 5",
        "dom1 TransactionStart -> 3",
        "dom1 tx3 Read device/vif/0/state -> 5",
        "dom1 tx3 Write device/vif/0/state 6 -> OK",
        "dom1 tx3 TransactionEnd T -> OK",
    ]);
    t.expect(
        "dom0 Write /local/domain/1/device/vif/0/state 5 -> OK",
        &[FE],
    );
    t.expect("dom1 tx2 Write device/vif/0/state 6 -> OK", &[]);
    t.expect("dom1 tx2 TransactionEnd T -> EAGAIN", &[]);
    t.expect("dom1 tx3 TransactionEnd T -> OK", &[FE]);

    // Quotas: one open transaction, five permissions per node, two
    // watches, eight nodes (dom2 owns its home: seven new nodes fit, eight
    // do not, and then not one more).
    t.in_order(&[
        "dom1 TransactionStart -> 2",
        "dom1 TransactionStart -> ENOSPC",
        "dom1 tx2 TransactionEnd T -> EAGAIN",
    ]);
    t.expect(
        "dom1 SetPerms device/vif/0/state n1 r2 r3 r4 r5 r6 -> ENOSPC",
        &[],
    );
    t.expect(
        "dom2 Watch /local/domain/2 home -> OK",
        &["  event dom2 /local/domain/2 home"],
    );
    t.expect("dom2 Watch /local/domain/1/device/vif/0 vif -> E2BIG", &[]);
    t.expect("dom2 Write scratch/1/2/3/4/5/6/7 x -> ENOSPC", &[]);
    t.expect(
        "dom2 Write scratch/1/2/3/4/5/6 x -> OK",
        &["  event dom2 /local/domain/2/scratch/1/2/3/4/5/6 home"],
    );
    t.expect("dom2 Write scratch/more x -> ENOSPC", &[]);
    t.expect(
        "dom0 Rm /local/domain/2/scratch -> OK",
        &["  event dom2 /local/domain/2/scratch home"],
    );

    // Removing the subtree fires the watch set inside it; in all, dom2's
    // state watch fired five times: when set, two commits, dom0's write,
    // the removal.
    t.expect("dom0 Rm /local/domain/1/device -> OK", &[FE]);
    assert_eq!(t.lines.iter().filter(|l| *l == FE).count(), 5, "{context}");

    let footprint = ours
        .iter()
        .find(|l| l.starts_with("footprint: used "))
        .unwrap_or_else(|| panic!("no footprint line\n{context}"));
    eprintln!("qemu_services: storevm {footprint}");
    eprintln!(
        "qemu_services: storevm: RAM {RAM_MIB} MiB, whole test {:.1} s",
        start.elapsed().as_secs_f64()
    );
}
