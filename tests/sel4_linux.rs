//! Full system, Linux: seL4 + cloister in Bochs boot the stock Debian kernel
//! (`linux-image-amd64`) with a busybox initramfs alongside the `hello`
//! unikernel, on an ordinary command line. The test types commands at the
//! initramfs shell over the machine's serial line, which the VMM forwards to
//! the AppVM's COM1 (`uname -r`, `/proc/cpuinfo`, a timed `sleep 5`, a scan
//! of the kernel log), then powers the VM off (ACPI S5).
//!
//! Skipped loudly without seL4 (or failed with `CLOISTER_REQUIRE_FULL=1`).
//! Takes several minutes: Linux boots in about 7 billion emulated
//! instructions.

use cloister::bochs;
use cloister::fulltest::{guest_line, FullTest};
use std::time::Duration;

/// The guest's command line: nothing but the console (and `quiet`, so the
/// kernel log is read with dmesg rather than paced over the serial line).
const CMDLINE: &str = "console=ttyS0 quiet";
/// What the test types at the shell, each with the start of the output line
/// it waits for before typing the next (the shell echoes what is typed, so
/// the output is told apart by its `check:` prefix at the start of a line).
const COMMANDS: &[(&str, &str)] = &[
    ("echo \"check: uname $(uname -r)\"\n", "check: uname "),
    (
        "echo \"check: flags $(grep -m1 '^flags' /proc/cpuinfo | grep -o -w hypervisor)\"\n",
        "check: flags",
    ),
    (
        "echo \"check: model $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2)\"\n",
        "check: model",
    ),
    (
        "echo check: sleep-start; sleep 5; echo check: sleep-end\n",
        "check: sleep-end",
    ),
    (
        "echo \"check: kernel-log-problems $(dmesg | grep -cE 'BUG|WARNING|panic|Call Trace')\"\n",
        "check: kernel-log-problems",
    ),
    (
        "dmesg | grep -E 'BUG|WARNING|panic|Call Trace' | head -20; poweroff -f\n",
        "",
    ),
];
const TIMEOUT: Duration = Duration::from_secs(1800);

fn guest(line: &str) -> String {
    guest_line("appvm", line)
}

#[test]
fn sel4_boots_debian_linux_beside_hello() {
    let Some(test) = FullTest::start("sel4_linux") else {
        return;
    };
    let images = appvm_images::build(&appvm_images::default_cache_dir())
        .unwrap_or_else(|e| panic!("building the AppVM images: {e}"));

    let dir = test.work_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let toml = format!(
        "[[vm]]\nname = \"hello\"\nimage = \"hello\"\nram = \"4M\"\ncmdline = \"greeting=world\"\n\n\
         [[vm]]\nname = \"appvm\"\nkernel = {:?}\ninitrd = {:?}\nram = \"256M\"\ncmdline = {CMDLINE:?}\nconsole = true\n",
        images.kernel.display().to_string(),
        images.initramfs.display().to_string(),
    );
    let system_path = dir.join("system.toml");
    std::fs::write(&system_path, toml).unwrap();
    let system = test.load(&system_path, &[("hello", 1), ("appvm", 2)]);
    eprintln!("sel4_linux: Linux boots in about 7 billion emulated instructions: several minutes");
    let built = test.build(&system);

    let mut cfg = test.bochs_config(&built, TIMEOUT);
    cfg.work_dir = dir.join("bochs");
    cfg.serial_ticks = true;
    cfg.serial_socket = Some(bochs::free_local_port().expect("a free local port"));
    let (keys, typed) = std::sync::mpsc::channel::<Vec<u8>>();
    // Type the next command once the shell is up, then after each answer.
    let mut next = 0usize;
    // The busybox shell's banner: it has taken the terminal and reads next.
    let shell_ready = guest("Enter 'help' for a list of built-in commands.");
    let mut on_line = |line: &str| {
        let ready = if next == 0 {
            line == shell_ready
        } else {
            let wait = COMMANDS[next - 1].1;
            !wait.is_empty() && line.starts_with(&guest(wait))
        };
        if ready && next < COMMANDS.len() {
            let _ = keys.send(COMMANDS[next].0.as_bytes().to_vec());
            next += 1;
        }
    };
    let console = test.run_with_input(&cfg, &mut on_line, Some(typed));
    let run = &console.run;
    if let Some(t) = run.tick_of(&guest(appvm_images::INIT_MARKER)) {
        eprintln!(
            "sel4_linux: init marker at tick {t} ({:.1} M)",
            t as f64 / 1e6
        );
    }
    console.assert_ran();
    let context = console.context();
    let has = |l: &str| console.has(l);

    assert!(
        has(&guest(appvm_images::INIT_MARKER)),
        "Linux did not reach init\n{context}"
    );
    let uname = guest(&format!("check: uname {}", images.kernel_version));
    assert!(has(&uname), "missing `{uname}`\n{context}");
    assert!(
        has(&guest("check: flags hypervisor")),
        "/proc/cpuinfo lacks the hypervisor flag\n{context}"
    );
    assert!(
        has(&guest("check: kernel-log-problems 0")),
        "the kernel log has BUG/WARNING/panic/Call Trace lines\n{context}"
    );
    assert!(
        console.has_prefix("cloister: vm appvm: powered off (as expected)"),
        "the AppVM did not power off cleanly\n{context}"
    );
    assert!(
        console.has_prefix("cloister: vm hello: exited with status 0 (as expected)"),
        "hello did not run to a clean exit beside Linux\n{context}"
    );
    assert!(
        console.has_prefix("cloister: run complete (status 0)"),
        "the run did not complete cleanly\n{context}"
    );

    // `sleep 5` takes five seconds of the VMM's clock (the TSC, which under
    // Bochs counts emulated instructions at the rate seL4 calibrated).
    let start = run.tick_of(&guest("check: sleep-start"));
    let end = run.tick_of(&guest("check: sleep-end"));
    let mhz = console
        .lines()
        .find_map(|l| {
            l.split(", TSC ")
                .nth(1)?
                .split(" MHz")
                .next()?
                .parse::<f64>()
                .ok()
        })
        .unwrap_or_else(|| panic!("no TSC frequency in the VMM's log\n{context}"));
    let (Some(start), Some(end)) = (start, end) else {
        panic!("no ticks for the sleep lines\n{context}")
    };
    let secs = end.saturating_sub(start) as f64 / (mhz * 1e6);
    eprintln!("sel4_linux: `sleep 5` took {secs:.3} s of TSC time at {mhz} MHz");
    assert!(
        (4.85..=5.25).contains(&secs),
        "`sleep 5` took {secs:.3} s\n{context}"
    );
}
