//! The harness of the full-system tests (`tests/sel4_*.rs`): seL4 + cloister
//! built from a system description, booted in Bochs and judged from the
//! serial console.
//!
//! [`FullTest::start`] checks the prerequisites (seL4, the ISO tools, Bochs):
//! without them the test is skipped loudly, or fails with
//! `CLOISTER_REQUIRE_FULL=1`. [`FullTest::boot`] builds the system, runs it
//! (echoing the console as `  | line`), prints the measured figures and
//! returns a [`Console`], whose checks panic with the run's logs.
//! [`boot_system`] does all of that for a description in the repository.
//! `CLOISTER_SERIAL_TICKS=1` also records the tick of every serial line.
//!
//! Everything here panics instead of returning errors: it is for tests.

use crate::bochs::{self, BochsConfig, BochsRun};
use crate::summary::{self, RunReport};
use crate::{Builder, BuiltSystem, System};
use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::time::Duration;

/// The variable that turns a missing prerequisite into a failure.
pub const REQUIRE_FULL: &str = "CLOISTER_REQUIRE_FULL";
/// The variable that records the tick of every serial line (slower).
pub const SERIAL_TICKS: &str = "CLOISTER_SERIAL_TICKS";

/// Whether the environment variable `name` is `1`.
fn env_flag(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| v == "1")
}

/// How the VMM prefixes a guest's console line: `[VM] LINE`.
pub fn guest_line(vm: &str, line: &str) -> String {
    format!("[{vm}] {line}")
}

/// The usual test in one call: [`FullTest::start`] as `name`, then
/// [`FullTest::load`] of `path` with `vms` and [`FullTest::boot`] for at most
/// `timeout`. `None` if the test is skipped.
pub fn boot_system(
    name: &str,
    path: &str,
    vms: &[(&str, u16)],
    timeout: Duration,
) -> Option<Console> {
    let test = FullTest::start(name)?;
    let system = test.load(path, vms);
    Some(test.boot(&system, timeout))
}

/// One full-system test: its name (which prefixes what it prints and names
/// its work directory) and the builder.
#[derive(Clone, Debug)]
pub struct FullTest {
    name: String,
    builder: Builder,
}

impl FullTest {
    /// The test `name` if everything it needs is installed. Otherwise `None`
    /// after a loud SKIPPED banner, or a panic under
    /// `CLOISTER_REQUIRE_FULL=1`.
    pub fn start(name: &str) -> Option<FullTest> {
        let builder = Builder::from_env();
        if let Err(reason) = crate::check_prerequisites(&builder) {
            if env_flag(REQUIRE_FULL) {
                panic!("{REQUIRE_FULL}=1 but the full-system test {name} cannot run: {reason}");
            }
            eprintln!(
                "\n*****************************************************************\n\
                 SKIPPED: full-system test {name} needs seL4, Bochs and the ISO tools:\n  \
                 {reason}\n\
                 (set SEL4_PREFIX to a seL4 16.0.0 install; set {REQUIRE_FULL}=1 to make this \
                 a failure)\n\
                 *****************************************************************\n"
            );
            return None;
        }
        Some(FullTest {
            name: name.to_string(),
            builder,
        })
    }

    /// `target/cloister-run/test-<name>`.
    pub fn work_dir(&self) -> PathBuf {
        self.builder
            .target_dir()
            .join(format!("cloister-run/test-{}", self.name))
    }

    /// Loads the system description at `path` (relative to the workspace
    /// root, or absolute) and checks that its VMs are `vms` in order: (name,
    /// domain id = position + 1).
    #[track_caller]
    pub fn load(&self, path: impl AsRef<Path>, vms: &[(&str, u16)]) -> System {
        let path = path.as_ref();
        let system = System::load(&self.builder.root.join(path)).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = system.vms.iter().map(|v| v.name.as_str()).collect();
        for (i, (name, dom)) in vms.iter().enumerate() {
            assert_eq!(
                names.get(i),
                Some(name),
                "{}: VM {i} (domain {dom}) must be `{name}`",
                path.display()
            );
        }
        assert_eq!(
            names.len(),
            vms.len(),
            "{}: expected {} VMs",
            path.display(),
            vms.len()
        );
        system
    }

    /// Builds `system` (guests, VMM, ISO).
    pub fn build(&self, system: &System) -> BuiltSystem {
        let built = crate::build_system(&self.builder, system).unwrap_or_else(|e| panic!("{e}"));
        eprintln!("{}: booting {} in Bochs", self.name, built.iso.display());
        built
    }

    /// The Bochs configuration for `built`: the standard one, in
    /// [`FullTest::work_dir`], with `timeout`, and serial ticks if
    /// `CLOISTER_SERIAL_TICKS=1`.
    pub fn bochs_config(&self, built: &BuiltSystem, timeout: Duration) -> BochsConfig {
        let mut cfg = BochsConfig::new(&built.iso, self.work_dir());
        cfg.timeout = timeout;
        cfg.serial_ticks = env_flag(SERIAL_TICKS);
        cfg
    }

    /// Builds `system` and runs it in Bochs for at most `timeout`.
    pub fn boot(&self, system: &System, timeout: Duration) -> Console {
        let built = self.build(system);
        self.run(&self.bochs_config(&built, timeout))
    }

    /// Runs Bochs with `cfg`, echoing the console.
    pub fn run(&self, cfg: &BochsConfig) -> Console {
        self.run_with_input(cfg, &mut |_| {}, None)
    }

    /// Runs Bochs with `cfg`, echoing the console and passing each line to
    /// `on_line`; bytes sent on `input` are typed on the serial line (see
    /// [`bochs::run_with_input`]). Prints the measured figures.
    pub fn run_with_input(
        &self,
        cfg: &BochsConfig,
        on_line: &mut dyn FnMut(&str),
        input: Option<Receiver<Vec<u8>>>,
    ) -> Console {
        let mut echo = |line: &str| {
            eprintln!("  | {line}");
            on_line(line);
        };
        let run = bochs::run_with_input(cfg, &mut echo, input).unwrap_or_else(|e| panic!("{e}"));
        let console = Console::new(run, cfg.timeout);
        console.print_figures(&self.name);
        console
    }
}

/// A finished run and the VMM's report on it, with checks that panic with
/// [`Console::context`].
#[derive(Clone, Debug)]
pub struct Console {
    /// What Bochs produced.
    pub run: BochsRun,
    /// The VMM's report, from the console.
    pub report: RunReport,
    timeout: Duration,
    context: String,
}

impl Console {
    /// The console of `run`, which had `timeout`.
    pub fn new(run: BochsRun, timeout: Duration) -> Console {
        let context = format!(
            "logs in {}\n--- serial (tail) ---\n{}\n--- bochs.log (tail) ---\n{}",
            run.work_dir.display(),
            run.serial_tail(80),
            run.log_tail(25)
        );
        Console {
            report: summary::parse(&run.serial),
            run,
            timeout,
            context,
        }
    }

    /// Where the logs are and their last lines, for failure messages.
    pub fn context(&self) -> &str {
        &self.context
    }

    /// The console's lines.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.run.lines()
    }

    /// Prints the wall time, Bochs's exit code, the power-off tick and each
    /// VM's summary, each line prefixed with `name: `.
    pub fn print_figures(&self, name: &str) {
        let run = &self.run;
        eprintln!(
            "{name}: wall {:.1} s, Bochs exit code {:?}",
            run.wall.as_secs_f64(),
            run.exit_code
        );
        match run.power_off_tick {
            Some(t) => eprintln!(
                "{name}: power-off at tick {t} ({:.1} M emulated instructions)",
                t as f64 / 1e6
            ),
            None => eprintln!("{name}: power-off tick not found in bochs.log"),
        }
        let count = |n: Option<u64>| n.map_or("?".into(), |n| n.to_string());
        for vm in &self.report.vms {
            eprintln!(
                "{name}: vm {}: {} — exits {}, misdeeds {}",
                vm.name,
                vm.outcome,
                count(vm.exits),
                count(vm.misdeeds),
            );
        }
    }

    /// Checks that Bochs did not time out and seL4 booted.
    #[track_caller]
    pub fn assert_ran(&self) {
        assert!(
            !self.run.timed_out,
            "Bochs timed out after {} s\n{}",
            self.timeout.as_secs(),
            self.context
        );
        assert!(
            self.report.sel4_booted,
            "seL4 did not boot\n{}",
            self.context
        );
    }

    /// Whether some line is `line`.
    pub fn has(&self, line: &str) -> bool {
        self.lines().any(|l| l == line)
    }

    /// Whether some line starts with `prefix`.
    pub fn has_prefix(&self, prefix: &str) -> bool {
        self.lines().any(|l| l.starts_with(prefix))
    }

    /// Whether VM `vm` printed `line`.
    pub fn has_guest(&self, vm: &str, line: &str) -> bool {
        self.has(&guest_line(vm, line))
    }

    /// Checks that VM `vm` printed `line`.
    #[track_caller]
    pub fn need(&self, vm: &str, line: &str) {
        self.position(vm, line);
    }

    /// Checks that some line starts with `prefix`.
    #[track_caller]
    pub fn need_prefix(&self, prefix: &str) {
        assert!(
            self.has_prefix(prefix),
            "missing `{prefix}…`\n{}",
            self.context
        );
    }

    /// The index of the first line that is VM `vm`'s `line`.
    #[track_caller]
    pub fn position(&self, vm: &str, line: &str) -> usize {
        let want = guest_line(vm, line);
        self.lines()
            .position(|l| l == want)
            .unwrap_or_else(|| panic!("missing `{want}`\n{}", self.context))
    }

    /// The index of the first line of VM `vm` that starts with `prefix`.
    #[track_caller]
    pub fn position_of_prefix(&self, vm: &str, prefix: &str) -> usize {
        let want = guest_line(vm, prefix);
        self.lines()
            .position(|l| l.starts_with(&want))
            .unwrap_or_else(|| panic!("missing `{want}…`\n{}", self.context))
    }

    /// Checks that the VMM's summary says each of `vms` (name, domain id)
    /// exited with status 0, as expected.
    #[track_caller]
    pub fn assert_exited_0(&self, vms: &[(&str, u16)]) {
        for &(vm, dom) in vms {
            let r = self
                .report
                .vm(vm)
                .unwrap_or_else(|| panic!("no summary line for vm {vm}\n{}", self.context));
            assert!(
                r.outcome == "exited with status 0" && r.expected,
                "vm {vm} (domain {dom}): {}\n{}",
                r.line,
                self.context
            );
        }
    }

    /// Checks that the VMM released each of `vms`' Xen domains.
    #[track_caller]
    pub fn assert_released(&self, vms: &[(&str, u16)]) {
        for &(vm, dom) in vms {
            let vmm = format!("cloister: xen: domain {dom} released");
            assert!(
                self.has_prefix(&vmm),
                "missing `{vmm}` ({vm})\n{}",
                self.context
            );
        }
    }

    /// Checks that the run completed with status 0 and no VM line says
    /// `UNEXPECTED`.
    #[track_caller]
    pub fn assert_all_as_expected(&self) {
        assert!(
            self.report.all_as_expected(),
            "the VMM's report has UNEXPECTED lines or a non-zero status\n{}",
            self.context
        );
    }
}
