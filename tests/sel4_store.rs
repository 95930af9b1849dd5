//! Tier 3: the store service VM on the full system. Builds the ISO for
//! `tests/systems/store.toml` — seL4, the cloister VMM, storevm serving
//! every domain's xenstore ring, and four `storeprobe` clients
//! (storevm-uk/probe) — boots it in Bochs and checks on the serial console:
//!
//! * storevm was introduced to every client by the VMM (acting as Xen's
//!   toolstack) and names each by its `name` node;
//! * the well-behaved client's operations all came out right: its home path
//!   and name, a value read back, a directory listing, a watch that fired,
//!   `EACCES` reading and writing another domain's node, and a committed
//!   transaction;
//! * the client with garbage ring indices and the one announcing an
//!   oversized payload each got storevm's bad-connection line with the exact
//!   reason, and saw the matching code in their ring's `error` field — and
//!   nobody else's connection broke;
//! * the client that floods requests without reading replies was throttled
//!   (the store stopped taking requests while holding more than its reply
//!   backlog) and then received every reply, in order; storevm counted the
//!   same number of requests;
//! * the VMM released every client, storevm reported each release and then
//!   `all domains released; exiting`, and every VM exited with status 0.
//!
//! The measured store round trip (emulated instructions — Bochs ticks — and
//! the client's VM exits per request) is printed with `--nocapture`; nothing
//! asserts on it.
//!
//! Needs seL4 (`SEL4_PREFIX`, default /opt/sel4-16.0.0), Bochs and the ISO
//! tools; without them the test is skipped loudly, or fails if
//! `CLOISTER_REQUIRE_FULL=1`.

use cloister::fulltest::{self, guest_line};
use std::time::Duration;

/// The system under test.
const SYSTEM: &str = "tests/systems/store.toml";
/// Wall-clock limit for Bochs.
const TIMEOUT: Duration = Duration::from_secs(900);

/// The VMs and their domain ids (position in the description + 1).
const STORE: (&str, u16) = ("store", 1);
const CLIENT: (&str, u16) = ("client", 2);
const GARBAGE: (&str, u16) = ("garbage", 3);
const OVERSIZE: (&str, u16) = ("oversize", 4);
const FLOOD: (&str, u16) = ("flood", 5);
/// Every client of the store.
const CLIENTS: [(&str, u16); 4] = [CLIENT, GARBAGE, OVERSIZE, FLOOD];
/// Every VM.
const VMS: [(&str, u16); 5] = [STORE, CLIENT, GARBAGE, OVERSIZE, FLOOD];

// ---- Expected console lines (storevm's and storeprobe's formats) ----

/// Start of storevm's line for introduced domain `dom` named `vm`.
fn introduced(vm: &str, dom: u16) -> String {
    format!("storevm: introduced domain {dom} (\"{vm}\"): ring frame ")
}

/// storevm's line for a connection it gave up.
fn bad_connection(vm: &str, dom: u16, reason: &str) -> String {
    format!(
        "storevm: domain {dom} (\"{vm}\"): bad connection: {reason}; ignoring it until it is \
         released"
    )
}

/// Start of storevm's line for released domain `dom` named `vm` (request
/// and byte counts follow).
fn released(vm: &str, dom: u16) -> String {
    format!("storevm: released domain {dom} (\"{vm}\") (")
}

/// storevm's last line before its footprint.
const STORE_DONE: &str = "storevm: all domains released; exiting";

/// Why storevm gives up `garbage`'s ring: its reply ring's consumer index
/// is 5000 past the producer (0 on a fresh page).
const GARBAGE_REASON: &str =
    "corrupt ring indices (consumer 5000, producer 0: more than 1024 bytes apart)";
/// Why storevm gives up `oversize`'s ring.
const OVERSIZE_REASON: &str =
    "a request header announces 4097 payload bytes (XENSTORE_PAYLOAD_MAX is 4096)";

/// The hostile clients' lines: what they did, and what the store's `error`
/// field then said.
const GARBAGE_LINES: [&str; 2] = [
    "storeprobe: garbage: reply ring consumer index set to 5000, 5000 bytes past its producer 0; \
     sent a read request",
    "storeprobe: garbage: the store gave the ring up: error field 2 (XENSTORE_ERROR_RINGIDX)",
];
const OVERSIZE_LINES: [&str; 2] = [
    "storeprobe: oversize: sent a read request header announcing 4097 payload bytes \
     (XENSTORE_PAYLOAD_MAX is 4096)",
    "storeprobe: oversize: the store gave the ring up: error field 3 (XENSTORE_ERROR_PROTO)",
];

/// The well-behaved client's results, in order (domain 2, its peer domain 3).
const GOOD_LINES: [&str; 7] = [
    "storeprobe: good: home /local/domain/2, name \"client\"",
    "storeprobe: good: read back data/greeting: \"hello, store\"",
    "storeprobe: good: directory /local/domain/2/data: [\"dir\", \"greeting\"]",
    "storeprobe: good: watch data (token tok): fired at once for data, then for data/x",
    "storeprobe: good: read /local/domain/3/name -> EACCES",
    "storeprobe: good: write /local/domain/3/name -> EACCES",
    "storeprobe: good: transaction committed: data/t = \"in tx\" (ENOENT outside it before the \
     commit)",
];
/// Start of the good client's round-trip measurement.
const GOOD_TIMING: &str = "storeprobe: good: 200 reads: ";
/// The good client's last line.
const GOOD_DONE: &str = "storeprobe: good: every operation as expected";

/// Pieces of the flood client's throttling line:
/// `sent N requests ...; the store took T and stopped, owing B reply bytes
/// (REPLY_BACKLOG is 8192)`.
const FLOOD_SENT: &str = "storeprobe: flood: sent ";
const FLOOD_TOOK: &str = " requests without reading a reply; the store took ";
const FLOOD_OWING: &str = " and stopped, owing ";
const FLOOD_BACKLOG: &str = " reply bytes (REPLY_BACKLOG is 8192)";
/// storevm's reply backlog limit, as the line above names it.
const REPLY_BACKLOG: u64 = 8192;

/// The flood client's last line for `n` requests.
fn flood_done(n: u64) -> String {
    format!("storeprobe: flood: all {n} replies received, in order")
}

/// (sent, taken, owing) from the flood client's throttling line.
fn parse_flood(line: &str) -> Option<(u64, u64, u64)> {
    let rest = line.strip_prefix(FLOOD_SENT)?;
    let (sent, rest) = rest.split_once(FLOOD_TOOK)?;
    let (taken, rest) = rest.split_once(FLOOD_OWING)?;
    let owing = rest.strip_suffix(FLOOD_BACKLOG)?;
    Some((sent.parse().ok()?, taken.parse().ok()?, owing.parse().ok()?))
}

#[test]
fn storevm_serves_good_and_hostile_clients() {
    let Some(console) = fulltest::boot_system("sel4_store", SYSTEM, &VMS, TIMEOUT) else {
        return;
    };
    let lines: Vec<&str> = console.lines().collect();
    let timing = guest_line(CLIENT.0, GOOD_TIMING);
    let flood_prefix = guest_line(FLOOD.0, FLOOD_SENT);
    for l in &lines {
        if l.starts_with(&timing) || l.starts_with(&flood_prefix) || l.contains("footprint") {
            eprintln!("sel4_store: {l}");
        }
    }

    console.assert_ran();
    let context = console.context();
    if let Some(failed) = lines
        .iter()
        .find(|l| l.contains("storeprobe: ") && l.contains(": FAILED: "))
    {
        panic!("a VM failed: `{failed}`\n{context}");
    }

    // storevm was introduced to every client, by name.
    for (vm, dom) in CLIENTS {
        console.position_of_prefix(STORE.0, &introduced(vm, dom));
    }

    // The hostile rings were given up for the right reasons, and only those.
    console.position(
        STORE.0,
        &bad_connection(GARBAGE.0, GARBAGE.1, GARBAGE_REASON),
    );
    console.position(
        STORE.0,
        &bad_connection(OVERSIZE.0, OVERSIZE.1, OVERSIZE_REASON),
    );
    let broken: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains(": bad connection: "))
        .collect();
    assert_eq!(
        broken.len(),
        2,
        "expected exactly two bad connections, got {broken:#?}\n{context}"
    );
    for (vm, expected) in [(GARBAGE.0, GARBAGE_LINES), (OVERSIZE.0, OVERSIZE_LINES)] {
        let did = console.position(vm, expected[0]);
        let saw = console.position(vm, expected[1]);
        assert!(did < saw, "{vm}'s lines are out of order\n{context}");
    }

    // The well-behaved client: every result, in order.
    let mut last = 0;
    for line in GOOD_LINES {
        let at = console.position(CLIENT.0, line);
        assert!(
            at > last,
            "`{line}` came before the line that precedes it\n{context}"
        );
        last = at;
    }
    let timed = console.position_of_prefix(CLIENT.0, GOOD_TIMING);
    let done = console.position(CLIENT.0, GOOD_DONE);
    assert!(
        last < timed && timed < done,
        "good's lines out of order\n{context}"
    );

    // The flood: throttled past the reply backlog, then every reply.
    let flood_prefix = guest_line(FLOOD.0, "");
    let flood = lines
        .iter()
        .filter_map(|l| l.strip_prefix(flood_prefix.as_str()))
        .find_map(parse_flood);
    let Some((sent, taken, owing)) = flood else {
        panic!("the flood client did not report its flood\n{context}");
    };
    assert!(
        owing > REPLY_BACKLOG && taken < sent,
        "the flood was not throttled: sent {sent}, taken {taken}, owing {owing}\n{context}"
    );
    console.position(FLOOD.0, &flood_done(sent));
    // storevm counted the flood plus the one ordinary read before it.
    let flood_release = guest_line(STORE.0, &released(FLOOD.0, FLOOD.1));
    let counted = format!("{flood_release}{} requests, ", sent + 1);
    assert!(
        console.has_prefix(&counted),
        "storevm did not count {} requests from the flood client: no `{counted}…`\n{context}",
        sent + 1
    );

    // Every client released by the VMM and by storevm, then storevm done.
    let store_done = console.position(STORE.0, STORE_DONE);
    console.assert_released(&CLIENTS);
    for (vm, dom) in CLIENTS {
        let at = console.position_of_prefix(STORE.0, &released(vm, dom));
        assert!(
            at < store_done,
            "storevm finished before releasing domain {dom} ({vm})\n{context}"
        );
    }

    // The VMM's summary: every VM exited with status 0.
    console.assert_exited_0(&VMS);
    console.assert_all_as_expected();
}

#[test]
fn the_flood_line_parses() {
    let line = format!("{FLOOD_SENT}487{FLOOD_TOOK}439{FLOOD_OWING}8211{FLOOD_BACKLOG}");
    assert_eq!(parse_flood(&line), Some((487, 439, 8211)));
    assert_eq!(parse_flood(&line.replace("487", "x")), None);
    assert_eq!(parse_flood(&line.replace("8192", "9")), None);
}
