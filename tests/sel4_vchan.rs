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

use cloister::bochs::{self, BochsConfig};
use cloister::{summary, Builder, System};
use std::path::Path;
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

/// How the VMM prefixes a guest's console line: `[NAME] `.
fn guest_line(vm: &str, line: &str) -> String {
    format!("[{vm}] {line}")
}

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
    let builder = Builder::from_env();
    if let Err(reason) = cloister::check_prerequisites(&builder) {
        if std::env::var_os("CLOISTER_REQUIRE_FULL").is_some_and(|v| v == "1") {
            panic!("CLOISTER_REQUIRE_FULL=1 but the full-system test cannot run: {reason}");
        }
        eprintln!(
            "\n*****************************************************************\n\
             SKIPPED: full-system test needs seL4, Bochs and the ISO tools:\n  {reason}\n\
             (set SEL4_PREFIX to a seL4 16.0.0 install; set CLOISTER_REQUIRE_FULL=1 to make this \
             a failure)\n\
             *****************************************************************\n"
        );
        return;
    }
    assert_eq!(
        CHANNELS.iter().map(|c| c.bytes).sum::<u64>(),
        EACH_WAY,
        "the channels' shares must add up to 8 MiB each way"
    );

    let system_path = Path::new(env!("CARGO_MANIFEST_DIR")).join(SYSTEM);
    let system = System::load(&system_path).unwrap_or_else(|e| panic!("{e}"));
    for (i, (name, dom)) in [STORE, SERVER, CLIENT, INTRUDER].iter().enumerate() {
        assert_eq!(
            system.vms.get(i).map(|v| v.name.as_str()),
            Some(*name),
            "{SYSTEM}: VM {i} (domain {dom}) must be `{name}`"
        );
    }
    let built = cloister::build_system(&builder, &system).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("sel4_vchan: booting {} in Bochs", built.iso.display());

    let mut cfg = BochsConfig::new(
        &built.iso,
        builder.target_dir().join("cloister-run/test-sel4_vchan"),
    );
    cfg.timeout = TIMEOUT;
    let run =
        bochs::run(&cfg, &mut |line| eprintln!("  | {line}")).unwrap_or_else(|e| panic!("{e}"));
    let report = summary::parse(&run.serial);
    let lines: Vec<&str> = run.lines().collect();

    // Measured figures.
    eprintln!(
        "sel4_vchan: wall {:.1} s, Bochs exit code {:?}",
        run.wall.as_secs_f64(),
        run.exit_code
    );
    match run.power_off_tick {
        Some(t) => eprintln!(
            "sel4_vchan: power-off at tick {t} ({:.1} M emulated instructions)",
            t as f64 / 1e6
        ),
        None => eprintln!("sel4_vchan: power-off tick not found in bochs.log"),
    }
    for l in &lines {
        if l.contains("bytes per million ticks") || l.contains("vchancheck: ping-pong") {
            eprintln!("sel4_vchan: {l}");
        }
    }
    for vm in &report.vms {
        eprintln!(
            "sel4_vchan: vm {}: {} — exits {}",
            vm.name,
            vm.outcome,
            vm.exits.map_or("?".into(), |n| n.to_string()),
        );
    }

    let context = format!(
        "logs in {}\n--- serial (tail) ---\n{}\n--- bochs.log (tail) ---\n{}",
        run.work_dir.display(),
        run.serial_tail(80),
        run.log_tail(25)
    );
    assert!(
        !run.timed_out,
        "Bochs timed out after {} s\n{context}",
        TIMEOUT.as_secs()
    );
    assert!(report.sel4_booted, "seL4 did not boot\n{context}");
    let has = |vm: &str, line: &str| lines.contains(&guest_line(vm, line).as_str());
    let need = |vm: &str, line: &str| {
        assert!(
            has(vm, line),
            "missing `{}`\n{context}",
            guest_line(vm, line)
        );
    };
    let position = |vm: &str, line: &str| {
        let want = guest_line(vm, line);
        lines
            .iter()
            .position(|l| *l == want)
            .unwrap_or_else(|| panic!("missing `{want}`\n{context}"))
    };

    // Every channel, both directions: sender, receiver and this test agree.
    for c in &CHANNELS {
        for dir in Dir::BOTH {
            let sum = expected_sum(c.label, dir, c.bytes);
            need(
                sender(dir),
                &transfer_line(c.label, dir, true, c.bytes, sum),
            );
            need(
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
            need(INTRUDER.0, &refusal_line(&read_attempt(&path), EXPECT_READ));
            attempts += 1;
        }
    }
    for &gref in &ready.refs {
        need(
            INTRUDER.0,
            &refusal_line(&map_attempt(SERVER.1, gref), EXPECT_MAP),
        );
        attempts += 1;
    }
    for &port in &ready.ports {
        need(
            INTRUDER.0,
            &refusal_line(&bind_attempt(SERVER.1, port), EXPECT_BIND),
        );
        attempts += 1;
    }
    need(INTRUDER.0, &intruder_ok(attempts));

    // The hostile peer: detected, shut down, closed; both went on.
    need(CLIENT.0, HOSTILE_WROTE);
    need(CLIENT.0, HOSTILE_SEEN);
    let detected = position(SERVER.0, HOSTILE_DETECTED);
    let closed = position(SERVER.0, HOSTILE_CLOSED);
    let after = position(SERVER.0, AFTER_OK);
    assert!(
        detected < closed && closed < after,
        "the server's hostile-channel lines are out of order\n{context}"
    );
    need(CLIENT.0, AFTER_OK);
    for vm in [SERVER.0, CLIENT.0] {
        need(vm, CLOSED_OK);
    }
    for (vm, role) in [
        (SERVER.0, Role::Server),
        (CLIENT.0, Role::Client),
        (INTRUDER.0, Role::Intruder),
    ] {
        need(vm, &ok_line(role));
    }

    // The VMM's summary: every VM exited with status 0; the VMM released
    // each guest domain and the store took note.
    for (vm, dom) in [STORE, SERVER, CLIENT, INTRUDER] {
        let r = report
            .vm(vm)
            .unwrap_or_else(|| panic!("no summary line for vm {vm}\n{context}"));
        assert!(
            r.outcome == "exited with status 0" && r.expected,
            "vm {vm} (domain {dom}): {}\n{context}",
            r.line
        );
    }
    for (vm, dom) in [SERVER, CLIENT, INTRUDER] {
        let vmm = format!("cloister: xen: domain {dom} released");
        assert!(
            lines.iter().any(|l| l.starts_with(&vmm)),
            "missing `{vmm}` ({vm})\n{context}"
        );
        let store = guest_line(STORE.0, &format!("storevm: released domain {dom} "));
        assert!(
            lines.iter().any(|l| l.starts_with(&store)),
            "the store did not report releasing domain {dom} ({vm}): no `{store}…`\n{context}"
        );
    }
    assert!(
        report.all_as_expected(),
        "the VMM's report has UNEXPECTED lines or a non-zero status\n{context}"
    );
}
