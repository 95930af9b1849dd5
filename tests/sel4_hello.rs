//! Tier 3: the full system. Builds the ISO for `tests/systems/hello.toml`
//! (seL4 + the cloister VMM + hello and two hostile guests), boots it in
//! Bochs and checks from the serial console that hello ran to a clean exit,
//! that the VMM refused the hostile guests' misdeeds and stopped them as
//! expected, and that the run ended by itself.
//!
//! Needs seL4 (`SEL4_PREFIX`, default /opt/sel4-16.0.0), Bochs and the ISO
//! tools; without them the test is skipped loudly, or fails if
//! `CLOISTER_REQUIRE_FULL=1`. `CLOISTER_SERIAL_TICKS=1` also records the tick
//! of every serial line (slower). Run with `--nocapture` to see the console
//! and the measured figures.

use cloister::fulltest;
use cloister::summary::SEL4_BOOTED;
use hello::{checksum_line, expected_checksum, PATTERN_LEN, PATTERN_SEED};
use std::time::Duration;

// ---- Expected console lines (the VMM's formats live here) ----

/// hello's greeting.
const HELLO_GREETING: &str = "hello: cloister unikernel says hello";
/// hello's command line as the description gives it.
const HELLO_CMDLINE: &str = "hello: cmdline: greeting=world";
/// hello's verdict on its memory pattern.
const HELLO_PATTERN_OK: &str = "hello: pattern ok";
/// The VMM's summary line for hello (a prefix: stats follow).
const HELLO_SUMMARY: &str = "cloister: vm hello: exited with status 0 (as expected)";
/// Start of a VMM misdeed report for VM `{}`.
fn misdeed_prefix(vm: &str) -> String {
    format!("cloister: vm {vm}: misdeed: ")
}
/// Words of the misdeed report for an unassigned port.
const MISDEED_PORT: &[&str] = &["unassigned I/O port"];
/// Words of the misdeed report for an unknown MSR.
const MISDEED_MSR: &[&str] = &["MSR", "injected #GP"];
/// hostile's lines showing it got #GP for an unknown MSR and went on.
const HOSTILE_GOT_GP: &str = "hostile: msr: rdmsr 0x12345678 -> #GP";
const HOSTILE_AFTER_MSR_MEM: &str = "hostile: step mem";
const HOSTILE_AFTER_MSR_TRIPLE: &str = "hostile: step triple";
/// Words of the summary line for `hostile` (stopped at its first unmapped access).
const HOSTILE_STOPPED: &[&str] = &[
    "cloister: vm hostile: stopped: ",
    "unmapped guest-physical address",
    "(as expected)",
];
/// Words of the summary line for `hostile-tf`.
const HOSTILE_TF_STOPPED: &[&str] = &[
    "cloister: vm hostile-tf: stopped: triple fault",
    "(as expected)",
];
/// seL4's first line on the serial console (its boot configuration).
const SEL4_FIRST_LINE: &str = "Boot config: debug_port";
/// The VMM's last line on a good run.
const RUN_COMPLETE_OK: &str = "cloister: run complete (status 0)";

/// The system under test and its VMs (name, domain id).
const SYSTEM: &str = "tests/systems/hello.toml";
const VMS: [(&str, u16); 3] = [("hello", 1), ("hostile", 2), ("hostile-tf", 3)];
/// Wall-clock limit for Bochs.
const TIMEOUT: Duration = Duration::from_secs(600);

fn has_words(lines: &[&str], prefix: &str, words: &[&str]) -> bool {
    lines
        .iter()
        .any(|l| l.starts_with(prefix) && words.iter().all(|w| l.contains(w)))
}

#[test]
fn sel4_boots_hello_and_stops_hostile_guests() {
    let Some(console) = fulltest::boot_system("sel4_hello", SYSTEM, &VMS, TIMEOUT) else {
        return;
    };
    let run = &console.run;

    // Measured figures (beyond those `boot_system` printed).
    if !run.serial_ticks.is_empty() {
        for marker in [
            SEL4_FIRST_LINE,
            SEL4_BOOTED,
            HELLO_GREETING,
            HELLO_SUMMARY,
            RUN_COMPLETE_OK,
        ] {
            eprintln!("sel4_hello: tick of `{marker}`: {:?}", run.tick_of(marker));
        }
        if let (Some(a), Some(b)) = (run.tick_of(SEL4_FIRST_LINE), run.tick_of(HELLO_GREETING)) {
            eprintln!(
                "sel4_hello: seL4's first line to hello's greeting: {} emulated instructions ({:.1} M)",
                b.saturating_sub(a),
                b.saturating_sub(a) as f64 / 1e6
            );
        }
    }

    console.assert_ran();
    let context = console.context();
    let lines: Vec<&str> = console.lines().collect();

    // hello ran to a clean exit.
    let checksum =
        checksum_line(expected_checksum(PATTERN_LEN, PATTERN_SEED), PATTERN_LEN).to_string();
    for line in [HELLO_GREETING, HELLO_CMDLINE, HELLO_PATTERN_OK, &checksum] {
        console.need("hello", line);
    }
    console.need_prefix(HELLO_SUMMARY);

    // The hostile guests' misdeeds were refused, and they went on after #GP.
    for (vm, after_gp) in [
        ("hostile", HOSTILE_AFTER_MSR_MEM),
        ("hostile-tf", HOSTILE_AFTER_MSR_TRIPLE),
    ] {
        let prefix = misdeed_prefix(vm);
        assert!(
            has_words(&lines, &prefix, MISDEED_PORT),
            "no unassigned-port misdeed reported for {vm}\n{context}"
        );
        assert!(
            has_words(&lines, &prefix, MISDEED_MSR),
            "no MSR #GP misdeed reported for {vm}\n{context}"
        );
        for line in [HOSTILE_GOT_GP, after_gp] {
            console.need(vm, line);
        }
    }

    // ...and were stopped as expected.
    assert!(
        has_words(&lines, HOSTILE_STOPPED[0], &HOSTILE_STOPPED[1..]),
        "hostile was not stopped at an unmapped access as expected\n{context}"
    );
    assert!(
        has_words(&lines, HOSTILE_TF_STOPPED[0], &HOSTILE_TF_STOPPED[1..]),
        "hostile-tf was not stopped by a triple fault as expected\n{context}"
    );

    // The run ended by itself, all as expected.
    console.need_prefix(RUN_COMPLETE_OK);
    console.assert_all_as_expected();
}
