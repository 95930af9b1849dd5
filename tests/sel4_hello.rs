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

use cloister::bochs::{self, BochsConfig};
use cloister::{summary, Builder, System};
use hello::{checksum_line, expected_checksum, PATTERN_LEN, PATTERN_SEED};
use std::path::Path;
use std::time::Duration;

// ---- Expected console lines (the VMM's formats live here) ----

/// seL4's last boot line.
const SEL4_BOOTED: &str = "Booting all finished, dropped to user space";
/// How the VMM prefixes a guest's console line: `[NAME] `.
fn guest_line(vm: &str, line: &str) -> String {
    format!("[{vm}] {line}")
}
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
/// The VMM's last line on a good run.
/// seL4's first line on the serial console (its boot configuration).
const SEL4_FIRST_LINE: &str = "Boot config: debug_port";
const RUN_COMPLETE_OK: &str = "cloister: run complete (status 0)";

/// The system under test.
const SYSTEM: &str = "tests/systems/hello.toml";
/// Wall-clock limit for Bochs.
const TIMEOUT: Duration = Duration::from_secs(600);

fn has_line(lines: &[&str], line: &str) -> bool {
    lines.contains(&line)
}

fn has_words(lines: &[&str], prefix: &str, words: &[&str]) -> bool {
    lines
        .iter()
        .any(|l| l.starts_with(prefix) && words.iter().all(|w| l.contains(w)))
}

#[test]
fn sel4_boots_hello_and_stops_hostile_guests() {
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

    let system_path = Path::new(env!("CARGO_MANIFEST_DIR")).join(SYSTEM);
    let system = System::load(&system_path).unwrap_or_else(|e| panic!("{e}"));
    let built = cloister::build_system(&builder, &system).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("sel4_hello: booting {} in Bochs", built.iso.display());

    let mut cfg = BochsConfig::new(
        &built.iso,
        builder.target_dir().join("cloister-run/test-sel4_hello"),
    );
    cfg.timeout = TIMEOUT;
    cfg.serial_ticks = std::env::var_os("CLOISTER_SERIAL_TICKS").is_some_and(|v| v == "1");
    let run =
        bochs::run(&cfg, &mut |line| eprintln!("  | {line}")).unwrap_or_else(|e| panic!("{e}"));
    let report = summary::parse(&run.serial);

    // Measured figures.
    eprintln!(
        "sel4_hello: wall {:.1} s, Bochs exit code {:?}",
        run.wall.as_secs_f64(),
        run.exit_code
    );
    match run.power_off_tick {
        Some(t) => eprintln!(
            "sel4_hello: power-off at tick {t} ({:.1} M emulated instructions)",
            t as f64 / 1e6
        ),
        None => eprintln!("sel4_hello: power-off tick not found in bochs.log"),
    }
    for vm in &report.vms {
        eprintln!(
            "sel4_hello: vm {}: {} — exits {}, misdeeds {}",
            vm.name,
            vm.outcome,
            vm.exits.map_or("?".into(), |n| n.to_string()),
            vm.misdeeds.map_or("?".into(), |n| n.to_string()),
        );
    }
    if cfg.serial_ticks {
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

    let context = format!(
        "logs in {}\n--- serial (tail) ---\n{}\n--- bochs.log (tail) ---\n{}",
        run.work_dir.display(),
        run.serial_tail(60),
        run.log_tail(25)
    );
    assert!(
        !run.timed_out,
        "Bochs timed out after {} s\n{context}",
        TIMEOUT.as_secs()
    );
    let lines: Vec<&str> = run.lines().collect();
    assert!(
        lines.iter().any(|l| l.contains(SEL4_BOOTED)),
        "seL4 did not boot\n{context}"
    );

    // hello ran to a clean exit.
    for line in [HELLO_GREETING, HELLO_CMDLINE, HELLO_PATTERN_OK] {
        let want = guest_line("hello", line);
        assert!(has_line(&lines, &want), "missing `{want}`\n{context}");
    }
    let checksum =
        checksum_line(expected_checksum(PATTERN_LEN, PATTERN_SEED), PATTERN_LEN).to_string();
    let want = guest_line("hello", &checksum);
    assert!(
        has_line(&lines, &want),
        "missing the checksum line `{want}`\n{context}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(HELLO_SUMMARY)),
        "missing `{HELLO_SUMMARY}`\n{context}"
    );

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
            let want = guest_line(vm, line);
            assert!(has_line(&lines, &want), "missing `{want}`\n{context}");
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
    assert!(
        lines.iter().any(|l| l.starts_with(RUN_COMPLETE_OK)),
        "missing `{RUN_COMPLETE_OK}`\n{context}"
    );
    assert!(
        report.all_as_expected(),
        "the VMM's report has UNEXPECTED lines\n{context}"
    );
}
