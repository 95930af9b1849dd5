//! The AppVM images (issue 6): Debian's kernel and a busybox initramfs built
//! by `appvm-images` from packages apt downloads (cached in
//! `target/appvm-cache`, about 71 MB on the first run).
//!
//! * `images_are_built_from_debian_packages`: the kernel is a bzImage of the
//!   version apt names, the initramfs holds busybox, `/init`, `/dev/console`.
//! * `images_boot_to_a_shell_bare_in_qemu`: the default images boot bare in
//!   QEMU (TCG, a few seconds) to the interactive shell, which runs commands
//!   typed on the serial line and powers off on `exit`.
//! * `bare_bochs_baseline` (ignored, several minutes): boots the same kernel
//!   and initramfs bare in Bochs from a GRUB ISO, as the baseline the AppVM
//!   under cloister is measured against, and prints the emulated
//!   instructions (Bochs ticks) to the init marker, split into GRUB and
//!   Linux. Run it with
//!   `cargo test --release --test appvm_images -- --ignored --nocapture`.
//!
//! When apt cannot resolve or download the packages the tests are skipped
//! loudly, or fail with `CLOISTER_REQUIRE_FULL=1`.

use appvm_images::{cpio, AppvmImages, Error, InitAction, Options, INIT_MARKER};
use cloister::bochs::{self, BochsConfig};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The kernel command line of the bare baseline (no workarounds; `quiet`
/// keeps the 9600-baud console out of the measurement). Override with
/// `APPVM_CMDLINE`.
const BARE_CMDLINE: &str = appvm_images::DEFAULT_CMDLINE;

fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/appvm-cache")
}

fn require_full() -> bool {
    std::env::var_os("CLOISTER_REQUIRE_FULL").is_some_and(|v| v == "1")
}

/// Builds the images, or returns None (after a loud skip message) when apt
/// cannot provide the packages.
fn images_or_skip(test: &str, options: &Options) -> Option<AppvmImages> {
    // One build at a time in this process: the first one downloads.
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    match appvm_images::build_with(&cache_dir(), options) {
        Ok(images) => Some(images),
        Err(e @ Error::Apt { .. }) if !require_full() => {
            eprintln!(
                "\n*****************************************************************\n\
                 SKIPPED {test}: apt cannot provide the AppVM packages:\n  {e}\n\
                 (set CLOISTER_REQUIRE_FULL=1 to make this a failure)\n\
                 *****************************************************************\n"
            );
            None
        }
        Err(e) => panic!("{test}: building the AppVM images failed: {e}"),
    }
}

#[test]
fn images_are_built_from_debian_packages() {
    let Some(images) = images_or_skip("images_are_built_from_debian_packages", &Options::default())
    else {
        return;
    };
    eprintln!("{images:#?}");
    assert!(
        images.kernel_version.starts_with("6.1.") && images.kernel_version.ends_with("-amd64"),
        "{images:?}"
    );
    assert!(images
        .kernel_package
        .starts_with(&format!("linux-image-{}=", images.kernel_version)));
    let kernel = std::fs::read(&images.kernel).unwrap();
    appvm_images::check_bzimage(&kernel).unwrap();
    assert!(
        kernel.len() > 4 << 20,
        "kernel is only {} bytes",
        kernel.len()
    );

    let gz_len = std::fs::metadata(&images.initramfs).unwrap().len();
    let entries = appvm_images::read_initramfs(&images.initramfs).unwrap();
    let find = |name: &str| {
        entries
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("no {name} in the initramfs"))
    };
    let cpio::Kind::File(busybox) = &find("bin/busybox").kind else {
        panic!("bin/busybox is not a file");
    };
    assert_eq!(&busybox[..4], b"\x7fELF");
    assert_eq!(find("bin/busybox").perm, 0o755);
    let cpio::Kind::File(init) = &find("init").kind else {
        panic!("init is not a file");
    };
    let init = String::from_utf8_lossy(init);
    assert!(init.contains(INIT_MARKER) && init.contains("setsid cttyhack sh"));
    assert_eq!(
        find("dev/console").kind,
        cpio::Kind::CharDev { major: 5, minor: 1 }
    );
    assert_eq!(find("bin/sh").kind, cpio::Kind::Symlink("busybox".into()));
    for dir in ["proc", "sys", "dev", "tmp"] {
        assert_eq!(find(dir).kind, cpio::Kind::Dir);
    }
    eprintln!(
        "initramfs: {} entries, busybox {} bytes, {} bytes gzipped",
        entries.len(),
        busybox.len(),
        gz_len
    );
    assert!(gz_len < 2 << 20, "initramfs is {gz_len} bytes");

    // A second build is served from the cache and gives the same files.
    let start = Instant::now();
    let again = appvm_images::build(&cache_dir()).unwrap();
    assert_eq!(again, images);
    eprintln!("cached rebuild: {:.2} s", start.elapsed().as_secs_f64());
}

/// The serial console of a QEMU run, shared with its reader thread.
struct Console {
    text: Arc<Mutex<String>>,
}

impl Console {
    fn snapshot(&self) -> String {
        self.text.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Waits until a cleaned console line after byte `from` satisfies
    /// `pred`; returns the console length after that line.
    fn wait_line(&self, from: usize, timeout: Duration, pred: impl Fn(&str) -> bool) -> usize {
        let start = Instant::now();
        loop {
            let text = self.snapshot();
            let mut pos = from.min(text.len());
            for raw in text[pos..].split_inclusive('\n') {
                pos += raw.len();
                if raw.ends_with('\n') && pred(&bochs::clean_line(raw.as_bytes())) {
                    return pos;
                }
            }
            assert!(
                start.elapsed() < timeout,
                "timed out waiting on the console\n--- console ---\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn images_boot_to_a_shell_bare_in_qemu() {
    let Some(images) = images_or_skip("images_boot_to_a_shell_bare_in_qemu", &Options::default())
    else {
        return;
    };
    if cloister::iso::which(cloister::qemu::QEMU).is_none() {
        panic!("{}", cloister::qemu::QemuError::NotInstalled);
    }
    let mut child = Command::new(cloister::qemu::QEMU)
        .args(["-machine", "pc", "-accel", "tcg", "-m", "256", "-kernel"])
        .arg(&images.kernel)
        .arg("-initrd")
        .arg(&images.initramfs)
        .args(["-append", appvm_images::DEFAULT_CMDLINE])
        .args(["-display", "none", "-serial", "stdio", "-monitor", "none"])
        .arg("-no-reboot")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start QEMU");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let console = Console {
        text: Arc::new(Mutex::new(String::new())),
    };
    let text = console.text.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            if let Ok(mut t) = text.lock() {
                t.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    });
    let limit = Duration::from_secs(120);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut pos = console.wait_line(0, limit, |l| l == INIT_MARKER);
        let mut say = |cmd: &str| {
            stdin
                .write_all(format!("{cmd}\n").as_bytes())
                .expect("write to QEMU");
            stdin.flush().expect("flush");
        };
        say("uname -r");
        pos = console.wait_line(pos, limit, |l| l == images.kernel_version);
        say("echo appvm-$((6 * 7)) $(cat /proc/cmdline)");
        pos = console.wait_line(pos, limit, |l| {
            l == format!("appvm-42 {}", appvm_images::DEFAULT_CMDLINE)
        });
        say("tty");
        pos = console.wait_line(pos, limit, |l| l == "/dev/ttyS0");
        say("exit");
        console.wait_line(pos, limit, |l| {
            l.contains("appvm: shell exited, powering off")
        });
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                assert!(status.success(), "QEMU exited with {status}");
                break;
            }
            assert!(start.elapsed() < limit, "QEMU did not power off");
            std::thread::sleep(Duration::from_millis(50));
        }
    }));
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    eprintln!("--- console ---\n{}", console.snapshot());
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

// ---- The bare Bochs baseline ----

/// GRUB's line when it starts a menu entry (it then loads the files).
const GRUB_BOOTING: &str = "Booting `appvm-bare'";
/// Where GRUB 2.06 puts a relocatable kernel: its preferred load address
/// (`pref_address`, read from the bzImage header); the first instruction
/// executed there is the kernel's 32-bit entry.
fn pref_address(kernel: &[u8]) -> Option<u64> {
    let b = kernel.get(0x258..0x260)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

fn grub_cfg(cmdline: &str) -> String {
    format!(
        "set timeout=0\n\
         set default=0\n\
         serial --unit=0 --speed=115200\n\
         terminal_input serial\n\
         terminal_output serial\n\
         menuentry \"appvm-bare\" {{\n\
         \x20   linux /vmlinuz {cmdline}\n\
         \x20   initrd /initrd.gz\n\
         \x20   boot\n\
         }}\n"
    )
}

fn make_iso(images: &AppvmImages, cmdline: &str, work: &Path) -> PathBuf {
    cloister::iso::check_tools().unwrap_or_else(|e| panic!("{e}"));
    let tree = work.join("iso");
    if tree.exists() {
        std::fs::remove_dir_all(&tree).unwrap();
    }
    std::fs::create_dir_all(tree.join("boot/grub")).unwrap();
    std::fs::copy(&images.kernel, tree.join("vmlinuz")).unwrap();
    std::fs::copy(&images.initramfs, tree.join("initrd.gz")).unwrap();
    std::fs::write(tree.join("boot/grub/grub.cfg"), grub_cfg(cmdline)).unwrap();
    let iso = work.join("appvm-bare.iso");
    let out = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(&iso)
        .arg(&tree)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run grub-mkrescue");
    assert!(
        out.status.success(),
        "grub-mkrescue failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    iso
}

/// A serial line rebuilt from Bochs's `serial=report` lines.
struct TickedLine {
    /// Tick of the line's first byte written to COM1's THR.
    start: u64,
    /// Tick of its newline.
    end: u64,
    /// The line, cleaned.
    text: String,
}

/// Rebuilds serial lines with their ticks from Bochs's `serial=report`
/// lines (COM1 THR writes, DLAB tracked through LCR).
fn serial_lines_with_ticks(bochs_log: &Path) -> Vec<TickedLine> {
    let Ok(file) = File::open(bochs_log) else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    let mut cur = Vec::new();
    let mut start = None;
    let mut dlab = false;
    for raw in BufReader::new(file).split(b'\n').map_while(Result::ok) {
        let line = String::from_utf8_lossy(&raw);
        let Some((_, rest)) = line.split_once("[SER") else {
            continue;
        };
        let Some(tick) = bochs::line_tick(&line) else {
            continue;
        };
        let words: Vec<&str> = rest.split_whitespace().collect();
        let Some(at) = words.iter().position(|w| *w == "address:") else {
            continue;
        };
        if !words.contains(&"write") {
            continue;
        }
        let (Some(reg), Some(value)) = (words.get(at + 1), words.get(at + 3)) else {
            continue;
        };
        let Ok(value) = u8::from_str_radix(value.trim_start_matches("0x"), 16) else {
            continue;
        };
        match *reg {
            "0x03fb" => dlab = value & 0x80 != 0,
            "0x03f8" if !dlab => {
                if value == b'\n' {
                    lines.push(TickedLine {
                        start: start.take().unwrap_or(tick),
                        end: tick,
                        text: bochs::clean_line(&cur),
                    });
                    cur.clear();
                } else {
                    if value != b'\r' {
                        start.get_or_insert(tick);
                    }
                    cur.push(value);
                }
            }
            _ => {}
        }
    }
    lines
}

/// The `[    26.551478]` timestamp at the start of a kernel log line, in
/// seconds.
fn kernel_timestamp(line: &str) -> Option<f64> {
    let rest = line.trim_start().strip_prefix('[')?;
    let (secs, _) = rest.split_once(']')?;
    secs.trim().parse().ok()
}

/// The tick of the first `Next at t=` after `Breakpoint 1` in the debugger's
/// output.
fn breakpoint_tick(bochs_out: &str) -> Option<u64> {
    let (_, after) = bochs_out.split_once("Breakpoint 1")?;
    let (_, t) = after.split_once("Next at t=")?;
    let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[test]
#[ignore = "boots Linux in Bochs: several minutes; run with --ignored --nocapture"]
fn bare_bochs_baseline() {
    if let Err(e) = bochs::check_installed() {
        panic!("{e}");
    }
    // `APPVM_BARE_COMMANDS`: shell commands to run after the marker (e.g.
    // `dmesg`), before the power-off.
    let commands = std::env::var("APPVM_BARE_COMMANDS").unwrap_or_default();
    let options = Options {
        init: InitAction::RunThenPowerOff(commands),
        ..Options::default()
    };
    let Some(images) = images_or_skip("bare_bochs_baseline", &options) else {
        return;
    };
    let cmdline = std::env::var("APPVM_CMDLINE").unwrap_or_else(|_| BARE_CMDLINE.into());
    let work = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/appvm-bare");
    std::fs::create_dir_all(&work).unwrap();
    let iso = make_iso(&images, &cmdline, &work);
    let kernel = std::fs::read(&images.kernel).unwrap();
    let entry = pref_address(&kernel).unwrap_or(0x100000);

    // Bochs with every COM1 access logged (serial ticks) and a debugger
    // breakpoint at the kernel's entry (its tick is GRUB's end).
    let mut cfg = BochsConfig::new(&iso, work.join("run"));
    cfg.serial_ticks = true;
    let timeout = Duration::from_secs(
        std::env::var("APPVM_BARE_TIMEOUT_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1800),
    );
    let dir = &cfg.work_dir;
    std::fs::create_dir_all(dir).unwrap();
    for name in ["boot.iso", "serial.log", "bochs.log", "bochs.out"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
    std::os::unix::fs::symlink(std::path::absolute(&iso).unwrap(), dir.join("boot.iso")).unwrap();
    std::fs::write(dir.join("bochsrc"), cfg.bochsrc()).unwrap();
    std::fs::write(dir.join("bochs.rc"), format!("pb {entry:#x}\nc\nd 1\nc\n")).unwrap();
    let out = File::create(dir.join("bochs.out")).unwrap();
    let start = Instant::now();
    let mut child = Command::new("bochs")
        .args(["-q", "-f", "bochsrc", "-rc", "bochs.rc"])
        .current_dir(dir)
        .env("TERM", "dumb")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("cannot start bochs");
    eprintln!(
        "bare_bochs_baseline: booting {} in Bochs (cmdline `{cmdline}`, breakpoint {entry:#x})",
        iso.display()
    );

    // Wall-clock times, polled: GRUB's Booting line, the breakpoint, the marker.
    let (mut wall_booting, mut wall_entry, mut wall_marker) = (None, None, None);
    let mut timed_out = false;
    let exit = loop {
        let status = child.try_wait().unwrap();
        let serial = std::fs::read(dir.join("serial.log")).unwrap_or_default();
        let serial = String::from_utf8_lossy(&serial);
        let now = start.elapsed();
        if wall_booting.is_none() && serial.contains(GRUB_BOOTING) {
            wall_booting = Some(now);
            eprintln!("  {:6.1} s  GRUB: {GRUB_BOOTING}", now.as_secs_f64());
        }
        if wall_entry.is_none() {
            let out = std::fs::read(dir.join("bochs.out")).unwrap_or_default();
            if String::from_utf8_lossy(&out).contains("Breakpoint 1") {
                wall_entry = Some(now);
                eprintln!("  {:6.1} s  kernel entry", now.as_secs_f64());
            }
        }
        if wall_marker.is_none() && serial.contains(INIT_MARKER) {
            wall_marker = Some(now);
            eprintln!("  {:6.1} s  {INIT_MARKER}", now.as_secs_f64());
        }
        if let Some(status) = status {
            break status.code();
        }
        if now >= timeout {
            timed_out = true;
            let _ = child.kill(); // SIGKILL: the term display ignores SIGTERM.
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let wall = start.elapsed();

    let lines = serial_lines_with_ticks(&dir.join("bochs.log"));
    let bochs_out =
        String::from_utf8_lossy(&std::fs::read(dir.join("bochs.out")).unwrap()).into_owned();
    let log = String::from_utf8_lossy(&std::fs::read(dir.join("bochs.log")).unwrap_or_default())
        .into_owned();
    let mut log_tail: Vec<&str> = log.lines().filter(|l| !l.contains("[SER")).collect();
    log_tail.drain(..log_tail.len().saturating_sub(15));
    let serial_text: String = lines
        .iter()
        .map(|l| format!("{:>12} {:>12} | {}\n", l.start, l.end, l.text))
        .collect();
    let context = format!(
        "logs in {}\n--- serial (first-byte tick, newline tick) ---\n{serial_text}\
         --- bochs.log (tail) ---\n{}",
        dir.display(),
        log_tail.join("\n")
    );
    assert!(!timed_out, "Bochs timed out after {timeout:?}\n{context}");

    let find = |m: &str| lines.iter().find(|l| l.text.contains(m));
    let booting = find(GRUB_BOOTING).map(|l| l.start);
    let entry_tick = breakpoint_tick(&bochs_out);
    let marker = find(INIT_MARKER).map(|l| l.start);
    let power_off = bochs::power_off_tick(&log);
    // The kernel's first serial line: the first non-empty one after entry.
    let first_line = entry_tick.and_then(|e| {
        lines
            .iter()
            .find(|l| l.start > e && !l.text.trim().is_empty())
    });
    // When the kernel's clock read zero (it counts TSC cycles, and Bochs's
    // TSC advances one per tick): from the last timestamped line, printed
    // synchronously as it was logged.
    let clock_zero = lines.iter().rev().find_map(|l| {
        let ts = kernel_timestamp(&l.text)?;
        Some(l.start.saturating_sub((ts * cfg.ips as f64) as u64))
    });
    let m = |t: Option<u64>| t.map_or("?".to_string(), |t| format!("{:.1} M", t as f64 / 1e6));
    let d = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => format!("{:.1} M", b.saturating_sub(a) as f64 / 1e6),
        _ => "?".into(),
    };
    let w =
        |w: Option<Duration>| w.map_or("?".to_string(), |w| format!("{:.1} s", w.as_secs_f64()));
    let first_tick = first_line.map(|l| l.start);
    let figures = format!(
        "bare Bochs baseline: {} ({} bytes), {}, initramfs {} bytes\n\
         cmdline: {cmdline}\n\
         Bochs: {}, ips={}, megs={}; wall {:.1} s, exit code {:?}\n\
         event                              tick      delta from previous   wall\n\
         GRUB `Booting`               {:>12}   {:>12}   {:>8}  (power-on, BIOS, GRUB start)\n\
         kernel entry ({entry:#x})    {:>12}   {:>12}   {:>8}  (GRUB loads kernel + initrd)\n\
         kernel clock zero (est.)     {:>12}   {:>12}             (decompression, early setup)\n\
         `{INIT_MARKER}`       {:>12}   {:>12}   {:>8}  (kernel boot to /init's marker)\n\
         power-off                    {:>12}   {:>12}   {:>8}\n\
         Linux, kernel entry to marker: {}; first kernel line at {} ({:?})\n",
        images.kernel_package,
        std::fs::metadata(&images.kernel)
            .map(|m| m.len())
            .unwrap_or(0),
        images.busybox_package,
        std::fs::metadata(&images.initramfs)
            .map(|m| m.len())
            .unwrap_or(0),
        cfg.cpu_model,
        cfg.ips,
        cfg.megs,
        wall.as_secs_f64(),
        exit,
        m(booting),
        d(Some(0), booting),
        w(wall_booting),
        m(entry_tick),
        d(booting, entry_tick),
        w(wall_entry),
        m(clock_zero),
        d(entry_tick, clock_zero),
        m(marker),
        d(clock_zero.or(entry_tick), marker),
        w(wall_marker),
        m(power_off),
        d(marker, power_off),
        w(Some(wall)),
        d(entry_tick, marker),
        m(first_tick),
        first_line.map(|l| l.text.as_str()).unwrap_or(""),
    );
    eprintln!("{figures}\n--- serial (first-byte tick, newline tick) ---\n{serial_text}");
    std::fs::write(
        work.join("figures.txt"),
        format!("{figures}\n{serial_text}"),
    )
    .unwrap();
    assert!(
        marker.is_some(),
        "the init marker never appeared\n{context}"
    );
    assert!(
        booting.is_some(),
        "GRUB's Booting line is missing\n{context}"
    );
    assert!(power_off.is_some(), "no power-off in bochs.log\n{context}");
}
