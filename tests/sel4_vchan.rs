//! Tier 3: vchan between unikernels on the full system. Builds the ISO for
//! `tests/systems/vchan.toml` — seL4, the cloister VMM, the store VM
//! (storevm serving every domain's xenstore ring) and three `vchancheck`
//! unikernels with the Xen ABI — boots it in Bochs and checks on the serial
//! console (the flow: `unikernels/vchancheck/src/lib.rs`):
//!
//! * the server (domain 2) offers five vchans whose rings have orders 10 to
//!   14, the client (domain 3) finds them by watching the store, and both
//!   move their share of 8 MiB each way over every channel at once in both
//!   directions; for each channel and direction, the checksum the sender
//!   prints, the one the receiver prints and the one computed here agree.
//!   Each share is at least 32 times its ring, so the read and write
//!   positions wrap around the end of every ring buffer many times (the
//!   free-running 32-bit indices themselves stay below 2^32 in 8 MiB);
//! * a third domain is refused the channels' store keys (`EACCES`), the
//!   mapping of every grant the server made (`GNTST_general_error`, what
//!   Xen answers for a grant to another domain) and the binding of every
//!   port (`EINVAL`);
//! * a client that writes garbage ring indices into a shared page is
//!   detected, that channel is shut down and then closed (grants ended),
//!   and both VMs go on: a clean exchange follows, every channel closes
//!   cleanly, every VM exits with status 0 and the store releases them all.
//!
//! The measured figures (ping-pong round trip in emulated instructions and
//! VM exits per message, bytes moved per million emulated instructions for
//! each ring order) are printed with `--nocapture`; nothing asserts on them.
//!
//! Needs seL4 (`SEL4_PREFIX`, default /opt/sel4-16.0.0), Bochs and the ISO
//! tools; without them the test is skipped loudly, or fails if
//! `CLOISTER_REQUIRE_FULL=1`.

use cloister::fulltest::{self, guest_line};
use std::time::Duration;
use vchancheck::{
    bind_attempt, bulk_grants, channel_path, expected_sum, intruder_ok, map_attempt, ok_line,
    read_attempt, ready_path, refusal_line, transfer_line, Dir, Ready, Role, AFTER_OK, CHANNELS,
    CLOSED_OK, EACH_WAY, EXPECT_BIND, EXPECT_MAP, EXPECT_READ, HOSTILE_CLOSED, HOSTILE_DETECTED,
    HOSTILE_SEEN, HOSTILE_WROTE,
};

/// The system under test.
const SYSTEM: &str = "tests/systems/vchan.toml";
/// Wall-clock limit for Bochs (a passing run takes well under a minute).
const TIMEOUT: Duration = Duration::from_secs(900);

/// The VMs, their domain ids (position in the description + 1).
const STORE: (&str, u16) = ("store", 1);
const SERVER: (&str, u16) = ("server", 2);
const CLIENT: (&str, u16) = ("client", 3);
const INTRUDER: (&str, u16) = ("intruder", 4);
const VMS: [(&str, u16); 4] = [STORE, SERVER, CLIENT, INTRUDER];

/// The VM that writes direction `dir`.
fn sender(dir: Dir) -> &'static str {
    match dir {
        Dir::ClientToServer => CLIENT.0,
        Dir::ServerToClient => SERVER.0,
    }
}

fn receiver(dir: Dir) -> &'static str {
    sender(dir.reverse())
}

#[test]
fn vchan_between_unikernels_with_an_intruder_and_a_hostile_peer() {
    assert_eq!(
        CHANNELS.iter().map(|c| c.bytes).sum::<u64>(),
        EACH_WAY,
        "the channels' shares must add up to 8 MiB each way"
    );

    let Some(console) = fulltest::boot_system("sel4_vchan", SYSTEM, &VMS, TIMEOUT) else {
        return;
    };
    let lines: Vec<&str> = console.lines().collect();
    for l in &lines {
        if l.contains("bytes per million ticks") || l.contains("vchancheck: ping-pong") {
            eprintln!("sel4_vchan: {l}");
        }
    }

    console.assert_ran();
    let context = console.context();

    // Every channel, both directions: sender, receiver and this test agree.
    for c in &CHANNELS {
        for dir in Dir::BOTH {
            let sum = expected_sum(c.label, dir, c.bytes);
            console.need(
                sender(dir),
                &transfer_line(c.label, dir, true, c.bytes, sum),
            );
            console.need(
                receiver(dir),
                &transfer_line(c.label, dir, false, c.bytes, sum),
            );
        }
    }

    // The intruder was refused everything the server published.
    let ready_prefix = guest_line(
        SERVER.0,
        &format!("vchancheck: server: published {}: ", ready_path(SERVER.1)),
    );
    let ready = lines
        .iter()
        .find_map(|l| l.strip_prefix(ready_prefix.as_str()))
        .and_then(Ready::parse)
        .unwrap_or_else(|| panic!("the server did not publish its ready node\n{context}"));
    assert_eq!(ready.client, CLIENT.1, "ready node names another client");
    assert_eq!(
        ready.refs.len(),
        bulk_grants(),
        "the server published {} grant references, its channels have {} pages",
        ready.refs.len(),
        bulk_grants()
    );
    assert_eq!(ready.ports.len(), CHANNELS.len());
    let mut attempts = 0;
    for c in &CHANNELS {
        let dir = channel_path(SERVER.1, CLIENT.1, c.label);
        for key in ["ring-ref", "event-channel"] {
            let path = format!("{dir}/{key}");
            console.need(INTRUDER.0, &refusal_line(&read_attempt(&path), EXPECT_READ));
            attempts += 1;
        }
    }
    for &gref in &ready.refs {
        console.need(
            INTRUDER.0,
            &refusal_line(&map_attempt(SERVER.1, gref), EXPECT_MAP),
        );
        attempts += 1;
    }
    for &port in &ready.ports {
        console.need(
            INTRUDER.0,
            &refusal_line(&bind_attempt(SERVER.1, port), EXPECT_BIND),
        );
        attempts += 1;
    }
    console.need(INTRUDER.0, &intruder_ok(attempts));

    // The hostile peer: detected, shut down, closed; both went on.
    console.need(CLIENT.0, HOSTILE_WROTE);
    console.need(CLIENT.0, HOSTILE_SEEN);
    let detected = console.position(SERVER.0, HOSTILE_DETECTED);
    let closed = console.position(SERVER.0, HOSTILE_CLOSED);
    let after = console.position(SERVER.0, AFTER_OK);
    assert!(
        detected < closed && closed < after,
        "the server's hostile-channel lines are out of order\n{context}"
    );
    console.need(CLIENT.0, AFTER_OK);
    for vm in [SERVER.0, CLIENT.0] {
        console.need(vm, CLOSED_OK);
    }
    for (vm, role) in [
        (SERVER.0, Role::Server),
        (CLIENT.0, Role::Client),
        (INTRUDER.0, Role::Intruder),
    ] {
        console.need(vm, &ok_line(role));
    }

    // The VMM's summary: every VM exited with status 0; the VMM released
    // each guest domain and the store took note.
    console.assert_exited_0(&VMS);
    console.assert_released(&[SERVER, CLIENT, INTRUDER]);
    for (vm, dom) in [SERVER, CLIENT, INTRUDER] {
        let store = guest_line(STORE.0, &format!("storevm: released domain {dom} "));
        assert!(
            console.has_prefix(&store),
            "the store did not report releasing domain {dom} ({vm}): no `{store}…`\n{context}"
        );
    }
    console.assert_all_as_expected();
}
