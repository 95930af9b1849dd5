//! Tier 2: the `hello` unikernel boots bare in QEMU (TCG) through its PVH
//! note, greets, echoes its command line, prints the checksum the host
//! computes, and exits with code 0.

use cloister::qemu;
use hello::{checksum_line, expected_checksum, PATTERN_LEN, PATTERN_SEED};
use std::path::Path;
use std::time::Duration;

/// The `hello` ELF, built by build.rs.
const HELLO_ELF: &str = env!("CLOISTER_GUEST_HELLO");
/// The greeting `hello` prints first.
const GREETING: &str = "hello: cloister unikernel says hello";
/// Start of the line echoing the command line.
const CMDLINE_PREFIX: &str = "hello: cmdline: ";
/// A command line with spaces and quotes, to show it arrives verbatim.
const CMDLINE: &str = "greeting=world note=\"from the qemu test\" x=1";

#[test]
fn hello_boots_bare_in_qemu() {
    let run = qemu::run_elf_or_panic(Path::new(HELLO_ELF), CMDLINE, 64, Duration::from_secs(120));
    let context = run.context();
    assert!(!run.timed_out, "QEMU timed out\n{context}");
    let lines: Vec<&str> = run.lines().collect();
    assert!(
        lines.contains(&GREETING),
        "no greeting `{GREETING}`\n{context}"
    );
    let cmdline = format!("{CMDLINE_PREFIX}{CMDLINE}");
    assert!(
        lines.contains(&cmdline.as_str()),
        "the command line was not echoed as `{cmdline}`\n{context}"
    );
    let checksum =
        checksum_line(expected_checksum(PATTERN_LEN, PATTERN_SEED), PATTERN_LEN).to_string();
    assert!(
        lines.contains(&checksum.as_str()),
        "no checksum line `{checksum}` (the value the host computes)\n{context}"
    );
    assert_eq!(
        run.guest_exit_code(),
        Some(0),
        "hello did not exit with code 0 (QEMU status 1)\n{context}"
    );
    eprintln!(
        "qemu_hello: {} console lines, guest exit code 0",
        lines.len()
    );
}
