//! Booting a unikernel ELF bare in QEMU (TCG), through its PVH note.
//!
//! The guest ends the run by writing its exit code to QEMU's `isa-debug-exit`
//! device (port 0xf4), which makes QEMU exit with status `(code << 1) | 1`.

use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";

/// What a QEMU run produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuRun {
    /// The guest's serial console (carriage returns removed).
    pub output: String,
    /// QEMU's exit status, if it exited by itself.
    pub status: Option<i32>,
    /// Whether the timeout ended the run.
    pub timed_out: bool,
    /// What QEMU printed on stderr.
    pub stderr: String,
}

impl QemuRun {
    /// The guest's exit code, decoded from QEMU's status (odd statuses only;
    /// 0 means QEMU quit otherwise, e.g. on a triple fault with `-no-reboot`).
    pub fn guest_exit_code(&self) -> Option<u8> {
        match self.status {
            Some(s) if s & 1 == 1 && (1..=255).contains(&s) => u8::try_from(s >> 1).ok(),
            _ => None,
        }
    }

    /// The console's lines.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.output.lines()
    }

    /// QEMU's status, the guest's exit code, whether the run timed out, the
    /// console and QEMU's stderr: the context of a failure message.
    pub fn context(&self) -> String {
        format!(
            "QEMU status {:?} (guest exit {:?}), timed out {}\n--- console ---\n{}\n\
             --- stderr ---\n{}",
            self.status,
            self.guest_exit_code(),
            self.timed_out,
            self.output,
            self.stderr
        )
    }
}

/// Why QEMU could not be run.
#[derive(Debug)]
pub enum QemuError {
    /// `qemu-system-x86_64` is not installed.
    NotInstalled,
    /// The ELF does not exist.
    NoImage(PathBuf),
    /// Starting or talking to QEMU failed.
    Io(io::Error),
}

impl fmt::Display for QemuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QemuError::NotInstalled => write!(
                f,
                "{QEMU} is not installed: install the Debian package qemu-system-x86 \
                 (apt-get install qemu-system-x86)"
            ),
            QemuError::NoImage(p) => write!(f, "the guest image {} does not exist", p.display()),
            QemuError::Io(e) => write!(f, "running {QEMU}: {e}"),
        }
    }
}

impl std::error::Error for QemuError {}

/// The QEMU command that boots `elf` through PVH with `cmdline`: TCG, the
/// serial console on stdout, no display, no reboot, and the exit port.
fn qemu_command(
    elf: &Path,
    cmdline: &str,
    machine: &str,
    mem_mib: u32,
) -> Result<Command, QemuError> {
    if crate::iso::which(QEMU).is_none() {
        return Err(QemuError::NotInstalled);
    }
    if !elf.is_file() {
        return Err(QemuError::NoImage(elf.to_path_buf()));
    }
    let mut cmd = Command::new(QEMU);
    cmd.args(["-machine", machine, "-accel", "tcg", "-m"])
        .arg(mem_mib.to_string())
        .arg("-kernel")
        .arg(elf)
        .arg("-append")
        .arg(cmdline)
        .args([
            "-display",
            "none",
            "-serial",
            "stdio",
            "-monitor",
            "none",
            "-no-reboot",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ]);
    Ok(cmd)
}

/// Boots `elf` with `cmdline` and `mem_mib` MiB of RAM; kills QEMU after
/// `timeout`.
pub fn run_elf(
    elf: &Path,
    cmdline: &str,
    mem_mib: u32,
    timeout: Duration,
) -> Result<QemuRun, QemuError> {
    let mut child = qemu_command(elf, cmdline, "pc", mem_mib)?
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(QemuError::Io)?;
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = reader(child.stdout.take().map(|p| Box::new(p) as _));
    let err = reader(child.stderr.take().map(|p| Box::new(p) as _));
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(QemuError::Io)? {
            break s.code();
        }
        if start.elapsed() >= timeout {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = |h: std::thread::JoinHandle<Vec<u8>>| {
        String::from_utf8_lossy(&h.join().unwrap_or_default()).replace('\r', "")
    };
    Ok(QemuRun {
        output: text(out),
        status,
        timed_out,
        stderr: text(err),
    })
}

/// [`run_elf`] for tests: the run, or a panic saying why QEMU could not
/// run (and, when it is not installed, how to install it).
#[track_caller]
pub fn run_elf_or_panic(elf: &Path, cmdline: &str, mem_mib: u32, timeout: Duration) -> QemuRun {
    or_panic(run_elf(elf, cmdline, mem_mib, timeout))
}

/// [`spawn`] for tests: the running QEMU, or a panic saying why it could not
/// start (and, when it is not installed, how to install it).
#[track_caller]
pub fn spawn_or_panic(elf: &Path, cmdline: &str, config: &QemuConfig) -> Running {
    or_panic(spawn(elf, cmdline, config))
}

/// The value, or a panic with the error; when QEMU is not installed, it
/// also points at the README's test command, which installs it.
#[track_caller]
fn or_panic<T>(result: Result<T, QemuError>) -> T {
    match result {
        Ok(v) => v,
        Err(e @ QemuError::NotInstalled) => panic!(
            "{e}\n(the README's test command installs it: apt-get install -y qemu-system-x86)"
        ),
        Err(e) => panic!("{e}"),
    }
}

/// How to run a guest that talks to the outside while it runs (the NetVM):
/// machine type, RAM and extra arguments (devices, networks).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuConfig {
    /// `-machine` value (`pc`, `q35`).
    pub machine: String,
    /// RAM in MiB.
    pub mem_mib: u32,
    /// More arguments, e.g. `-netdev user,...` and `-device e1000,...`.
    pub extra: Vec<String>,
}

/// A QEMU that is still running: its console arrives line by line.
pub struct Running {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    console: Vec<String>,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
    status: Option<i32>,
    timed_out: bool,
}

/// Boots `elf` with `cmdline` under `config` and returns at once.
pub fn spawn(elf: &Path, cmdline: &str, config: &QemuConfig) -> Result<Running, QemuError> {
    let mut child = qemu_command(elf, cmdline, &config.machine, config.mem_mib)?
        .args(&config.extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(QemuError::Io)?;
    let (tx, lines) = std::sync::mpsc::channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in io::BufReader::new(out).split(b'\n') {
                let Ok(line) = line else { break };
                let text = String::from_utf8_lossy(&line).replace('\r', "");
                if tx.send(text).is_err() {
                    break;
                }
            }
        });
    }
    let stderr = child.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = e.read_to_end(&mut buf);
            buf
        })
    });
    Ok(Running {
        child,
        lines,
        console: Vec::new(),
        stderr,
        status: None,
        timed_out: false,
    })
}

impl Running {
    /// Waits until a console line satisfies `want` (returning it), QEMU's
    /// console closes, or `timeout` passes.
    pub fn wait_for(&mut self, timeout: Duration, want: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = want(&line);
                    self.console.push(line.clone());
                    if hit {
                        return Some(line);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// The console lines seen so far.
    pub fn console(&self) -> &[String] {
        &self.console
    }

    /// Waits for QEMU to exit (killing it after `timeout`) and returns the
    /// whole run.
    pub fn finish(mut self, timeout: Duration) -> QemuRun {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(s)) => {
                    self.status = s.code();
                    break;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    self.timed_out = true;
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
            }
        }
        // The reader ends when QEMU's stdout closes.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.console.push(line);
        }
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let mut output = self.console.join("\n");
        if !output.is_empty() {
            output.push('\n');
        }
        QemuRun {
            output,
            status: self.status,
            timed_out: self.timed_out,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for `hostfwd`).
pub fn free_local_port() -> io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(status: Option<i32>) -> QemuRun {
        QemuRun {
            output: String::new(),
            status,
            timed_out: false,
            stderr: String::new(),
        }
    }

    #[test]
    fn exit_code_decoding() {
        assert_eq!(run(Some(1)).guest_exit_code(), Some(0));
        assert_eq!(run(Some(3)).guest_exit_code(), Some(1));
        assert_eq!(run(Some(255)).guest_exit_code(), Some(127));
        assert_eq!(run(Some(0)).guest_exit_code(), None);
        assert_eq!(run(Some(2)).guest_exit_code(), None);
        assert_eq!(run(None).guest_exit_code(), None);
    }
}
