//! Booting an ISO in Bochs, the emulator that gives seL4 VT-x with EPT.
//!
//! Each run gets a work directory with a generated `bochsrc`, a debugger
//! command file that only continues (Debian's Bochs is built with its
//! debugger), the serial console (`serial.log`), Bochs's own log
//! (`bochs.log`) and whatever the `term` display wrote (`bochs.out`). The
//! serial log is polled and streamed line by line while Bochs runs. Bochs
//! ignores SIGTERM, so a run past its timeout is ended with SIGKILL.
//!
//! A run ends when the root task writes `Shutdown` to port 0x8900: Bochs then
//! exits with status 1 and a `>>PANIC<<` line, so success is judged from the
//! serial log, not from the exit status.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Bochs's BIOS image (Debian package `bochsbios`).
pub const BIOS: &str = "/usr/share/bochs/BIOS-bochs-latest";
/// The VGA BIOS image (Debian package `vgabios`).
pub const VGA_BIOS: &str = "/usr/share/vgabios/vgabios.bin";
/// The bochs.log line written when the shutdown port is used.
const SHUTDOWN_MARK: &str = "Shutdown port: shutdown requested";
/// The bochs.log line written when the simulation ends.
const QUIT_MARK: &str = "quit_sim called";

/// How to run Bochs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BochsConfig {
    /// The ISO to boot from its CD-ROM drive.
    pub iso: PathBuf,
    /// Where the run's files go (created if missing; earlier logs are removed).
    pub work_dir: PathBuf,
    /// Wall-clock limit; Bochs is killed after it.
    pub timeout: Duration,
    /// Emulated RAM in MiB.
    pub megs: u32,
    /// Emulated instructions per second (also the TSC rate).
    pub ips: u64,
    /// Bochs CPU model (needs VMX with EPT: Haswell or newer).
    pub cpu_model: String,
    /// Log every COM1 register access with its tick, so [`BochsRun::tick_of`]
    /// works. Slow, and makes `bochs.log` large.
    pub serial_ticks: bool,
    /// Connect COM1 to a TCP socket on 127.0.0.1 at this port (Bochs is the
    /// server) instead of a file, so input can be sent to the machine's
    /// serial line; the output still lands in `serial.log`.
    pub serial_socket: Option<u16>,
}

impl BochsConfig {
    /// The standard configuration: Haswell, 60 M instructions/s, 512 MiB,
    /// ten-minute timeout.
    pub fn new(iso: impl Into<PathBuf>, work_dir: impl Into<PathBuf>) -> BochsConfig {
        BochsConfig {
            iso: iso.into(),
            work_dir: work_dir.into(),
            timeout: Duration::from_secs(600),
            megs: 512,
            ips: 60_000_000,
            cpu_model: "corei7_haswell_4770".into(),
            serial_ticks: false,
            serial_socket: None,
        }
    }

    /// The `bochsrc` for this configuration (paths relative to the work dir).
    pub fn bochsrc(&self) -> String {
        let mut rc = format!(
            "megs: {megs}\n\
             cpu: model={model}, count=1, ips={ips}, reset_on_triple_fault=0\n\
             romimage: file={BIOS}\n\
             vgaromimage: file={VGA_BIOS}\n\
             display_library: term\n\
             ata0-master: type=cdrom, path=boot.iso, status=inserted\n\
             boot: cdrom\n\
             {com1}\n\
             log: bochs.log\n\
             clock: sync=none, time0=1767225600\n\
             mouse: enabled=0\n\
             speaker: enabled=0\n\
             sound: waveoutdrv=dummy, waveindrv=dummy, midioutdrv=dummy\n",
            megs = self.megs,
            model = self.cpu_model,
            ips = self.ips,
            com1 = match self.serial_socket {
                Some(port) => format!("com1: enabled=1, mode=socket-server, dev=127.0.0.1:{port}"),
                None => "com1: enabled=1, mode=file, dev=serial.log".to_string(),
            },
        );
        if self.serial_ticks {
            rc.push_str("debug: action=ignore, serial=report\n");
        }
        rc
    }
}

/// What a Bochs run produced.
#[derive(Clone, Debug, Default)]
pub struct BochsRun {
    /// The serial console, one line per line, with terminal escape sequences,
    /// carriage returns and other control characters removed.
    pub serial: String,
    /// Bochs's log (`bochs.log`), without the per-access serial lines.
    pub bochs_log: String,
    /// Whether the timeout ended the run.
    pub timed_out: bool,
    /// Bochs's exit code (1 after a shutdown-port power-off), if it exited.
    pub exit_code: Option<i32>,
    /// The emulated-instruction tick at power-off, from `bochs.log`.
    pub power_off_tick: Option<u64>,
    /// Serial lines with the tick of their newline (only with
    /// [`BochsConfig::serial_ticks`]).
    pub serial_ticks: Vec<(u64, String)>,
    /// Wall-clock time of the run.
    pub wall: Duration,
    /// The run's work directory.
    pub work_dir: PathBuf,
}

impl BochsRun {
    /// The serial console's lines.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.serial.lines()
    }

    /// The tick at which the first serial line containing `marker` was
    /// complete (needs [`BochsConfig::serial_ticks`]).
    pub fn tick_of(&self, marker: &str) -> Option<u64> {
        self.serial_ticks
            .iter()
            .find(|(_, line)| line.contains(marker))
            .map(|(t, _)| *t)
    }

    /// The last `n` lines of the serial console.
    pub fn serial_tail(&self, n: usize) -> String {
        tail(&self.serial, n)
    }

    /// The last `n` lines of Bochs's log.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.bochs_log, n)
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Why Bochs could not be run.
#[derive(Debug)]
pub enum BochsError {
    /// Part of Bochs is not installed.
    NotInstalled {
        /// What is missing.
        what: String,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// A file operation or starting Bochs failed.
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        error: io::Error,
    },
}

impl fmt::Display for BochsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BochsError::NotInstalled { what, package } => write!(
                f,
                "{what} is not installed; the full system runs in Bochs: install the Debian \
                 package {package} (apt-get install {package})"
            ),
            BochsError::Io { what, path, error } => {
                write!(f, "{what} {}: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for BochsError {}

/// Checks that Bochs, its `term` display and its BIOS images are installed.
pub fn check_installed() -> Result<(), BochsError> {
    let missing = |what: &str, package| BochsError::NotInstalled {
        what: what.to_string(),
        package,
    };
    if crate::iso::which("bochs").is_none() {
        return Err(missing("bochs", "bochs"));
    }
    // Plugins live in /usr/lib/<multiarch>/bochs/plugins on Debian.
    let plugin_dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bochs/plugins"))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    let has_term = plugin_dirs.iter().any(|dir| {
        std::fs::read_dir(dir).is_ok_and(|rd| {
            rd.filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().starts_with("libbx_term"))
        })
    });
    if !plugin_dirs.is_empty() && !has_term {
        return Err(missing("Bochs's term display (libbx_term)", "bochs-term"));
    }
    if !Path::new(BIOS).is_file() {
        return Err(missing(BIOS, "bochsbios"));
    }
    if !Path::new(VGA_BIOS).is_file() {
        return Err(missing(VGA_BIOS, "vgabios"));
    }
    Ok(())
}

/// Splits polled serial bytes into cleaned lines.
#[derive(Default)]
struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    fn push(&mut self, bytes: &[u8], out: &mut dyn FnMut(String)) {
        for &b in bytes {
            if b == b'\n' {
                out(clean_line(&self.pending));
                self.pending.clear();
            } else {
                self.pending.push(b);
            }
        }
    }

    fn finish(&mut self, out: &mut dyn FnMut(String)) {
        if !self.pending.is_empty() {
            out(clean_line(&self.pending));
            self.pending.clear();
        }
    }
}

/// A serial line as text: terminal escape sequences (CSI, OSC, two-byte
/// escapes), carriage returns and other control characters except tab
/// removed; invalid UTF-8 replaced.
pub fn clean_line(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == 0x1b {
            match raw.get(i + 1) {
                Some(b'[') => {
                    // CSI: parameters and intermediates, then a final byte.
                    i += 2;
                    while i < raw.len() && !(0x40..=0x7e).contains(&raw[i]) {
                        i += 1;
                    }
                    i += 1;
                }
                Some(b']') => {
                    // OSC: up to BEL or ESC '\'.
                    i += 2;
                    while i < raw.len() && raw[i] != 0x07 && raw[i] != 0x1b {
                        i += 1;
                    }
                    i += if raw.get(i) == Some(&0x1b) { 2 } else { 1 };
                }
                Some(_) => {
                    // Other escapes: intermediate bytes, then a final byte.
                    i += 1;
                    while i < raw.len() && (0x20..=0x2f).contains(&raw[i]) {
                        i += 1;
                    }
                    i += 1;
                }
                None => i += 1,
            }
            continue;
        }
        if b == b'\t' || b >= 0x20 && b != 0x7f {
            out.push(b);
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The tick a `bochs.log` line starts with (`00329444861i[CPU0 ] ...`).
pub fn line_tick(line: &str) -> Option<u64> {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    line[..digits].parse().ok()
}

/// The tick at power-off: of the shutdown-port line, else of the end of the
/// simulation.
pub fn power_off_tick(bochs_log: &str) -> Option<u64> {
    let find = |mark: &str| {
        bochs_log
            .lines()
            .find(|l| l.contains(mark))
            .and_then(line_tick)
    };
    find(SHUTDOWN_MARK).or_else(|| find(QUIT_MARK))
}

/// Tracks COM1's transmit register from `serial=report` log lines.
#[derive(Default)]
struct SerialTicks {
    dlab: bool,
    line: Vec<u8>,
    lines: Vec<(u64, String)>,
}

impl SerialTicks {
    /// Feeds one bochs.log line; returns whether it was a serial debug line.
    fn feed(&mut self, line: &str) -> bool {
        let Some(rest) = line.split_once("[SER").map(|(_, r)| r) else {
            return false;
        };
        let Some(tick) = line_tick(line) else {
            return true;
        };
        // "] com1 register write to address: 0x03f8 = 0x41"
        let words: Vec<&str> = rest.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "address:");
        if let (true, Some(at)) = (words.contains(&"write"), at) {
            let (Some(reg), Some(value)) = (words.get(at + 1), words.get(at + 3)) else {
                return true;
            };
            let value = value.trim_start_matches("0x");
            let Ok(value) = u8::from_str_radix(value, 16) else {
                return true;
            };
            match *reg {
                "0x03fb" => self.dlab = value & 0x80 != 0,
                "0x03f8" if !self.dlab => {
                    if value == b'\n' {
                        self.lines.push((tick, clean_line(&self.line)));
                        self.line.clear();
                    } else {
                        self.line.push(value);
                    }
                }
                _ => {}
            }
        }
        true
    }
}

fn read_log(path: &Path, serial_ticks: bool) -> (String, Vec<(u64, String)>) {
    let Ok(file) = File::open(path) else {
        return (String::new(), Vec::new());
    };
    let mut log = String::new();
    let mut ser = SerialTicks::default();
    let mut reader = BufReader::new(file);
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match reader.read_until(b'\n', &mut raw) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&raw);
        if serial_ticks && ser.feed(&line) {
            continue;
        }
        log.push_str(&line);
    }
    (log, ser.lines)
}

/// Boots `cfg.iso` in Bochs, calling `on_line` with each serial line as it
/// appears, until Bochs exits or the timeout passes.
pub fn run(cfg: &BochsConfig, on_line: &mut dyn FnMut(&str)) -> Result<BochsRun, BochsError> {
    run_with_input(cfg, on_line, None)
}

/// Like [`run`], and with [`BochsConfig::serial_socket`] set, bytes sent on
/// `input` are typed on the machine's serial line (COM1) as they arrive.
pub fn run_with_input(
    cfg: &BochsConfig,
    on_line: &mut dyn FnMut(&str),
    input: Option<std::sync::mpsc::Receiver<Vec<u8>>>,
) -> Result<BochsRun, BochsError> {
    check_installed()?;
    let dir = &cfg.work_dir;
    let io_err = |what, path: &Path| {
        let path = path.to_path_buf();
        move |error| BochsError::Io { what, path, error }
    };
    std::fs::create_dir_all(dir).map_err(io_err("cannot create", dir))?;
    let iso = std::path::absolute(&cfg.iso).map_err(io_err("cannot resolve", &cfg.iso))?;
    if !iso.is_file() {
        return Err(BochsError::Io {
            what: "cannot find the ISO",
            path: iso,
            error: io::ErrorKind::NotFound.into(),
        });
    }
    for name in ["boot.iso", "serial.log", "bochs.log", "bochs.out"] {
        let p = dir.join(name);
        if p.symlink_metadata().is_ok() {
            std::fs::remove_file(&p).map_err(io_err("cannot remove", &p))?;
        }
    }
    let link = dir.join("boot.iso");
    std::os::unix::fs::symlink(&iso, &link).map_err(io_err("cannot link the ISO as", &link))?;
    let rc = dir.join("bochsrc");
    std::fs::write(&rc, cfg.bochsrc()).map_err(io_err("cannot write", &rc))?;
    let cont = dir.join("bochs.rc");
    std::fs::write(&cont, "c\n").map_err(io_err("cannot write", &cont))?;
    let out_path = dir.join("bochs.out");
    let out = File::create(&out_path).map_err(io_err("cannot create", &out_path))?;
    let err = out
        .try_clone()
        .map_err(io_err("cannot reopen", &out_path))?;

    let start = Instant::now();
    let mut child = Command::new("bochs")
        .args(["-q", "-f", "bochsrc", "-rc", "bochs.rc"])
        .current_dir(dir)
        .env("TERM", "dumb")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(io_err("cannot start bochs in", dir))?;

    let serial_path = dir.join("serial.log");
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let bridge = cfg.serial_socket.map(|port| {
        let finished = finished.clone();
        let path = serial_path.clone();
        std::thread::spawn(move || serial_bridge(port, &path, input, &finished))
    });
    let mut serial_file: Option<File> = None;
    let mut splitter = LineSplitter::default();
    let mut serial = String::new();
    let mut emit = |line: String| {
        on_line(&line);
        serial.push_str(&line);
        serial.push('\n');
    };
    let mut poll = |file: &mut Option<File>, emit: &mut dyn FnMut(String)| {
        if file.is_none() {
            *file = File::open(&serial_path).ok();
        }
        if let Some(f) = file.as_mut() {
            let mut buf = Vec::new();
            if f.read_to_end(&mut buf).is_ok() {
                splitter.push(&buf, emit);
            }
        }
    };
    let mut timed_out = false;
    let exit_code = loop {
        let status = child.try_wait().ok().flatten();
        poll(&mut serial_file, &mut emit);
        if let Some(status) = status {
            break status.code();
        }
        if start.elapsed() >= cfg.timeout {
            timed_out = true;
            // The term display ignores SIGTERM; Child::kill sends SIGKILL to
            // this PID.
            let _ = child.kill();
            let _ = child.wait();
            poll(&mut serial_file, &mut emit);
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let wall = start.elapsed();
    finished.store(true, std::sync::atomic::Ordering::Release);
    if let Some(b) = bridge {
        let _ = b.join();
    }
    poll(&mut serial_file, &mut emit);
    splitter.finish(&mut emit);
    let (bochs_log, serial_ticks) = read_log(&dir.join("bochs.log"), cfg.serial_ticks);
    Ok(BochsRun {
        power_off_tick: power_off_tick(&bochs_log),
        serial,
        bochs_log,
        timed_out,
        exit_code,
        serial_ticks,
        wall,
        work_dir: dir.clone(),
    })
}

/// Connects to Bochs's COM1 socket, appends what the machine sends to
/// `serial.log`, and sends what arrives on `input`, until `finished`.
fn serial_bridge(
    port: u16,
    log: &Path,
    input: Option<std::sync::mpsc::Receiver<Vec<u8>>>,
    finished: &std::sync::atomic::AtomicBool,
) {
    use std::io::Write;
    use std::sync::atomic::Ordering;
    let mut socket = None;
    while socket.is_none() && !finished.load(Ordering::Acquire) {
        socket = std::net::TcpStream::connect(("127.0.0.1", port)).ok();
        if socket.is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let Some(mut socket) = socket else { return };
    let _ = socket.set_read_timeout(Some(Duration::from_millis(20)));
    let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    else {
        return;
    };
    let mut buf = [0u8; 4096];
    while !finished.load(Ordering::Acquire) {
        match socket.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let _ = file.write_all(&buf[..n]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
        if let Some(rx) = &input {
            while let Ok(bytes) = rx.try_recv() {
                let _ = socket.write_all(&bytes);
            }
        }
    }
}

/// A free TCP port on 127.0.0.1 (for Bochs's serial socket).
pub fn free_local_port() -> Option<u16> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .ok()?
        .local_addr()
        .ok()
        .map(|a| a.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_terminal_noise() {
        assert_eq!(
            clean_line(b"\x1b[0m\x1b[30m\x1b[47m  Booting `seL4'\x1b[m\r"),
            "  Booting `seL4'"
        );
        assert_eq!(clean_line(b"a\x1b]0;title\x07b\x1b(Bc\td"), "abc\td");
        assert_eq!(clean_line(b"bad \xff byte\x00"), "bad \u{fffd} byte");
        assert_eq!(clean_line(b"trailing\x1b"), "trailing");
        assert_eq!(clean_line(b"\x1b[12;3"), "");
    }

    #[test]
    fn splits_lines_across_polls() {
        let mut s = LineSplitter::default();
        let mut got = Vec::new();
        s.push(b"one\r\ntw", &mut |l| got.push(l));
        s.push(b"o\r\nthr", &mut |l| got.push(l));
        s.finish(&mut |l| got.push(l));
        assert_eq!(got, ["one", "two", "thr"]);
    }

    #[test]
    fn power_off_tick_from_log() {
        let log = "00000000000i[      ] Bochs x86 Emulator 2.7\n\
                   00321281268e[CPU0  ] RDMSR: Unknown register 0xce\n\
                   00329444861p[UNMAP ] >>PANIC<< Shutdown port: shutdown requested\n\
                   00329444861i[CPU0  ] CPU is in long mode (active)\n\
                   00329444999i[SIM   ] quit_sim called with exit code 1\n";
        assert_eq!(power_off_tick(log), Some(329_444_861));
        assert_eq!(
            power_off_tick("00000000005i[SIM   ] quit_sim called with exit code 1\n"),
            Some(5)
        );
        assert_eq!(power_off_tick("nothing\n"), None);
        assert_eq!(line_tick("x00012"), None);
    }

    #[test]
    fn serial_ticks_rebuild_lines() {
        let mut s = SerialTicks::default();
        let log = [
            "00000000100d[SER   ] com1 register write to address: 0x03fb = 0x83",
            "00000000101d[SER   ] com1 register write to address: 0x03f8 = 0x01",
            "00000000102d[SER   ] com1 register write to address: 0x03fb = 0x03",
            "00000000200d[SER   ] com1 register write to address: 0x03f8 = 0x68",
            "00000000201d[SER   ] com1 register read from address: 0x03fd = 0x60",
            "00000000300d[SER   ] com1 register write to address: 0x03f8 = 0x69",
            "00000000400d[SER   ] com1 register write to address: 0x03f8 = 0x0d",
            "00000000500d[SER   ] com1 register write to  address: 0x03f8 = 0x0a",
        ];
        for l in log {
            assert!(s.feed(l));
        }
        assert!(!s.feed("00000000600i[CPU0  ] something"));
        assert_eq!(s.lines, [(500, "hi".to_string())]);
        let run = BochsRun {
            serial_ticks: s.lines,
            ..BochsRun::default()
        };
        assert_eq!(run.tick_of("h"), Some(500));
        assert_eq!(run.tick_of("x"), None);
    }

    #[test]
    fn bochsrc_has_the_pitfall_fixes() {
        let rc = BochsConfig::new("/x.iso", "/w").bochsrc();
        for needle in [
            "model=corei7_haswell_4770",
            "ips=60000000",
            "megs: 512",
            "display_library: term",
            "com1: enabled=1, mode=file, dev=serial.log",
            "log: bochs.log",
            "clock: sync=none",
            "sound: waveoutdrv=dummy",
            "speaker: enabled=0",
            "mouse: enabled=0",
        ] {
            assert!(rc.contains(needle), "{needle}");
        }
        assert!(!rc.contains("debug:"));
    }
}
