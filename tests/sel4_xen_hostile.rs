//! Tier 3: hostile hypercalls on the full system. Builds the ISO for
//! `tests/systems/xen-hostile.toml` — seL4, the cloister VMM, storevm
//! serving every domain's xenstore ring, a well-behaved `storeprobe` client
//! and `hostile` running its `xen` step — boots it in Bochs and checks on
//! the serial console that guest input stays hostile input ("an error for
//! the guest … never a VMM panic, never another VM affected"):
//!
//! * every call of hostile's battery (`unikernels/hostile/src/xen.rs`: bad
//!   hypercall numbers, bad pointers for every implemented operation, bad
//!   commands, event-channel, grant-table, physmap and HVM-param abuse, bad
//!   hypercall-page MSR writes) came out with exactly the error Xen's rules
//!   give it, and no call came out otherwise;
//! * the VMM reported each refused MSR write as a misdeed and went on;
//! * afterwards hostile's own event channel and grant still worked, and it
//!   printed its last line with the number of calls refused;
//! * the store client, running at the same time, got every result right
//!   (its `every operation as expected` line), including `EACCES` on the
//!   hostile domain's node;
//! * there was no VMM panic, both guests were released by the VMM and by
//!   storevm, and every VM exited with status 0.
//!
//! Needs seL4 (`SEL4_PREFIX`, default /opt/sel4-16.0.0), Bochs and the ISO
//! tools; without them the test is skipped loudly, or fails if
//! `CLOISTER_REQUIRE_FULL=1`.

use cloister::fulltest::{self, guest_line};
use hostile::xen::{cases, refusals, Done, Line, Op, PREFIX};
use std::time::Duration;

/// The system under test.
const SYSTEM: &str = "tests/systems/xen-hostile.toml";
/// Wall-clock limit for Bochs.
const TIMEOUT: Duration = Duration::from_secs(900);

/// The VMs and their domain ids (position in the description + 1).
const STORE: (&str, u16) = ("store", 1);
const CLIENT: (&str, u16) = ("client", 2);
const HOSTILE: (&str, u16) = ("hostile", 3);
/// Probes grant revocation; the VMM stops it.
const REVOKE: (&str, u16) = ("revoke", 4);
/// The VMs that must exit with status 0.
const VMS: [(&str, u16); 3] = [STORE, CLIENT, HOSTILE];
/// Every VM of the description, in order.
const ALL_VMS: [(&str, u16); 4] = [STORE, CLIENT, HOSTILE, REVOKE];

/// revoke's line before its probe (a prefix: the reference, address and
/// value follow), and the VMM's verdict on the probe (a prefix: the address
/// and RIP follow).
const REVOKE_PROBE: &str = "hostile: revoke: own grant ";
const REVOKE_STOPPED: &str =
    "cloister: vm revoke: stopped: read of unmapped guest-physical address 0x";

/// The store client's results that involve the hostile domain (3), and its
/// last line, printed only if every operation came out right.
const CLIENT_LINES: [&str; 3] = [
    "storeprobe: good: read /local/domain/3/name -> EACCES",
    "storeprobe: good: write /local/domain/3/name -> EACCES",
    "storeprobe: good: every operation as expected",
];

/// Start of the VMM's report of a refused hypercall-page MSR write by
/// hostile (vmm-core: `install_hypercall_page`).
const MSR_MISDEED: &str = "cloister: vm hostile: misdeed: hypercall page at ";

/// What the VMM's panic handler prints.
const VMM_PANIC: &str = "cloister: VMM panic";

#[test]
fn hostile_hypercalls_are_refused_and_hurt_nobody() {
    let Some(console) = fulltest::boot_system("sel4_xen_hostile", SYSTEM, &ALL_VMS, TIMEOUT) else {
        return;
    };
    console.assert_ran();
    let context = console.context();
    let lines: Vec<&str> = console.lines().collect();

    assert!(
        !lines.iter().any(|l| l.contains(VMM_PANIC)),
        "the VMM panicked\n{context}"
    );
    let hostile_prefix = guest_line(HOSTILE.0, PREFIX);
    let odd: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with(&hostile_prefix))
        .filter(|l| l.contains("UNEXPECTED") || l.contains("FAILED"))
        .collect();
    assert!(
        odd.is_empty(),
        "hostile saw calls come out wrong: {odd:#?}\n{context}"
    );
    if let Some(failed) = lines
        .iter()
        .find(|l| l.contains("storeprobe: ") && l.contains(": FAILED: "))
    {
        panic!("the store client failed: `{failed}`\n{context}");
    }

    // Every call of the battery, with its exact outcome, in order.
    let mut last = 0;
    for case in cases() {
        let at = console.position(HOSTILE.0, &Line::expected(&case).to_string());
        assert!(
            at > last,
            "`{}` came out of order\n{context}",
            Line::expected(&case)
        );
        last = at;
    }
    let done = console.position(HOSTILE.0, &Done(refusals()).to_string());
    assert!(last < done, "hostile's last line came early\n{context}");

    // The VMM reported each refused MSR write (up to its report limit).
    let msr_cases = cases().filter(|c| matches!(c.op, Op::Msr(_))).count();
    let reported = lines
        .iter()
        .filter(|l| l.starts_with(MSR_MISDEED) && l.contains("refused: injected #GP"))
        .count();
    assert_eq!(
        reported, msr_cases,
        "expected the VMM to report {msr_cases} refused hypercall-page MSR writes\n{context}"
    );

    // The other guest, running meanwhile, was unaffected.
    for line in CLIENT_LINES {
        console.need(CLIENT.0, line);
    }

    // A revoked grant mapping is gone: the read through it stopped the VM,
    // and nothing else in the run was disturbed.
    let context = console.context();
    let probe = guest_line(REVOKE.0, REVOKE_PROBE);
    assert!(console.has_prefix(&probe), "missing `{probe}…`\n{context}");
    assert!(
        !console.has_prefix(&guest_line(REVOKE.0, "hostile: revoke: FAILED")),
        "the revoked mapping still answered\n{context}"
    );
    assert!(
        console.has_prefix(REVOKE_STOPPED),
        "revoke was not stopped at the revoked address: no `{REVOKE_STOPPED}…`\n{context}"
    );

    // The guests released by the VMM and by the store; the others exited 0.
    console.assert_released(&[CLIENT, HOSTILE, REVOKE]);
    for (vm, dom) in [CLIENT, HOSTILE, REVOKE] {
        let store = guest_line(
            STORE.0,
            &format!("storevm: released domain {dom} (\"{vm}\")"),
        );
        assert!(
            console.has_prefix(&store),
            "the store did not report releasing domain {dom} ({vm}): no `{store}…`\n{context}"
        );
    }
    console.need(STORE.0, "storevm: all domains released; exiting");
    console.assert_exited_0(&VMS);
    console.assert_all_as_expected();
}
