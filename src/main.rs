//! `cloister`: builds a cloister system (seL4 + the VMM + its guests) and
//! boots it in Bochs. See `cloister help`.

use cloister::bochs::{self, BochsConfig};
use cloister::{summary, Builder, System};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "\
cloister — build and run a cloister system: seL4 + the cloister VMM + its guests

USAGE:
    cloister [run] [--system FILE] [--timeout SECS]
    cloister build [--system FILE]
    cloister help

COMMANDS:
    run      Build the system, boot it in Bochs and stream its serial console to
             stdout (the default). Exit status: 0 if the VMM reports every VM as
             expected, 1 if some VM was not, 2 if building or booting failed or
             timed out.
    build    Build the system's boot ISO (GRUB + seL4 + the VMM) and print its path.
    help     Print this message.

OPTIONS:
    --system FILE    The system description (TOML); default src/default-system.toml.
    --timeout SECS   Wall-clock limit for the Bochs run (default 600).

SYSTEM DESCRIPTION:
    [[vm]]
    name = \"hello\"            # unique, [a-z0-9-]{1,32}
    image = \"hello\"           # a guest the builder builds (hello, hostile, ...) or the
                              # path of a PVH ELF, relative to the TOML file
    ram = \"16M\"               # \"16M\", \"1G\" or bytes: a multiple of 2 MiB, 2M..4G
    cmdline = \"\"              # optional, at most 2048 bytes
    expect = \"clean\"          # optional: \"clean\" (exit status 0) or \"stopped\"
                              # (stopped by the VMM: hostile test guests)
    At most 32 VMs.

ENVIRONMENT:
    SEL4_PREFIX      The seL4 16.0.0 install (default /opt/sel4-16.0.0); needs
                     bin/kernel.elf and libsel4. See README.md.
";

/// A parsed command line.
#[derive(Debug, PartialEq)]
enum Cmd {
    Run {
        system: Option<PathBuf>,
        timeout: Duration,
    },
    Build {
        system: Option<PathBuf>,
    },
    Help,
}

fn parse_args(args: &[String]) -> Result<Cmd, String> {
    let (sub, rest) = match args.first().map(String::as_str) {
        None => ("run", &args[..0]),
        Some(a) if a.starts_with('-') && a != "-h" && a != "--help" => ("run", args),
        Some(a) => (a, &args[1..]),
    };
    let mut system = None;
    let mut timeout = Duration::from_secs(600);
    let mut it = rest.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--system" => system = Some(PathBuf::from(value("--system")?)),
            "--timeout" if sub == "run" => {
                let v = value("--timeout")?;
                let secs: u64 = v
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("--timeout {v}: give a whole number of seconds"))?;
                timeout = Duration::from_secs(secs);
            }
            "-h" | "--help" => return Ok(Cmd::Help),
            other => return Err(format!("unexpected argument `{other}` for `{sub}`")),
        }
    }
    match sub {
        "run" => Ok(Cmd::Run { system, timeout }),
        "build" => Ok(Cmd::Build { system }),
        "help" | "-h" | "--help" => Ok(Cmd::Help),
        other => Err(format!("unknown command `{other}`")),
    }
}

fn load(builder: &Builder, system: Option<PathBuf>) -> Result<System, cloister::Error> {
    let path = system.unwrap_or_else(|| builder.default_system());
    Ok(System::load(&path)?)
}

fn build(system: Option<PathBuf>) -> Result<(), cloister::Error> {
    let builder = Builder::from_env();
    let system = load(&builder, system)?;
    let built = cloister::build_system(&builder, &system)?;
    eprintln!(
        "cloister: built the ISO for {} VMs (system table {})",
        system.vms.len(),
        built.vmm.system_rs.display()
    );
    println!("{}", built.iso.display());
    Ok(())
}

fn run(system: Option<PathBuf>, timeout: Duration) -> Result<ExitCode, cloister::Error> {
    let builder = Builder::from_env();
    let system = load(&builder, system)?;
    cloister::check_prerequisites(&builder)?;
    let built = cloister::build_system(&builder, &system)?;
    eprintln!("cloister: booting seL4 + cloister in Bochs (seconds to minutes)…");
    let mut cfg = BochsConfig::new(
        &built.iso,
        builder
            .target_dir()
            .join("cloister-run")
            .join(format!("cli-{}", built.vmm.hash)),
    );
    cfg.timeout = timeout;
    // A VM with `console = true` gets the terminal's input: COM1 goes to a
    // socket, and each line typed here is sent to the machine's serial line,
    // from where the VMM forwards it to that VM's COM1.
    let input = match system.vms.iter().find(|vm| vm.console) {
        Some(vm) => {
            cfg.serial_socket = bochs::free_local_port();
            eprintln!(
                "cloister: the terminal is attached to vm {}'s COM1: type a command and press \
                 Enter (output appears a line at a time)",
                vm.name
            );
            let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
            std::thread::spawn(move || {
                let mut line = String::new();
                while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {
                    if tx.send(std::mem::take(&mut line).into_bytes()).is_err() {
                        break;
                    }
                }
            });
            Some(rx)
        }
        None => None,
    };
    let stdout = std::io::stdout();
    let result = bochs::run_with_input(
        &cfg,
        &mut |line| {
            let mut out = stdout.lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        },
        input,
    )?;
    let report = summary::parse(&result.serial);
    let ticks = result
        .power_off_tick
        .map(|t| format!(", {:.1} M emulated instructions (ticks)", t as f64 / 1e6))
        .unwrap_or_default();
    eprintln!(
        "cloister: Bochs ran {:.1} s{ticks}; logs in {}",
        result.wall.as_secs_f64(),
        result.work_dir.display()
    );
    let show_tails = || {
        eprintln!("---- last lines of the serial console ----");
        eprintln!("{}", result.serial_tail(40));
        eprintln!("---- last lines of bochs.log ----");
        eprintln!("{}", result.log_tail(20));
    };
    if result.timed_out && report.status.is_none() {
        eprintln!(
            "cloister: the run timed out after {} s without the VMM's report{}",
            timeout.as_secs(),
            if report.sel4_booted {
                ""
            } else {
                " (seL4 never reached user space)"
            }
        );
        show_tails();
        return Ok(ExitCode::from(2));
    }
    match report.status {
        Some(0) if report.all_as_expected() => {
            eprintln!(
                "cloister: every VM ended as expected ({} VMs)",
                report.vms.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(0) | Some(1) => {
            let bad: Vec<&str> = report
                .vms
                .iter()
                .filter(|v| !v.expected)
                .map(|v| v.name.as_str())
                .collect();
            eprintln!(
                "cloister: some VMs did not end as expected: {}",
                if bad.is_empty() {
                    "see the report above".to_string()
                } else {
                    bad.join(", ")
                }
            );
            Ok(ExitCode::from(1))
        }
        Some(n) => {
            eprintln!("cloister: the VMM failed (status {n})");
            show_tails();
            Ok(ExitCode::from(2))
        }
        None => {
            eprintln!(
                "cloister: Bochs stopped (exit code {}) before the VMM reported the run{}",
                result
                    .exit_code
                    .map_or_else(|| "none".to_string(), |c| c.to_string()),
                if report.sel4_booted {
                    ""
                } else {
                    "; seL4 never reached user space"
                }
            );
            show_tails();
            Ok(ExitCode::from(2))
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match parse_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cloister: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = match cmd {
        Cmd::Help => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Cmd::Build { system } => build(system).map(|()| ExitCode::SUCCESS),
        Cmd::Run { system, timeout } => run(system, timeout),
    };
    result.unwrap_or_else(|e| {
        eprintln!("cloister: error: {e}");
        ExitCode::from(2)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cmd, String> {
        parse_args(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn command_lines() {
        let run = |system: Option<&str>, secs| Cmd::Run {
            system: system.map(PathBuf::from),
            timeout: Duration::from_secs(secs),
        };
        assert_eq!(parse(&[]), Ok(run(None, 600)));
        assert_eq!(parse(&["run"]), Ok(run(None, 600)));
        assert_eq!(
            parse(&["run", "--system", "a.toml", "--timeout", "30"]),
            Ok(run(Some("a.toml"), 30))
        );
        assert_eq!(parse(&["--timeout", "5"]), Ok(run(None, 5)));
        assert_eq!(
            parse(&["build", "--system", "s.toml"]),
            Ok(Cmd::Build {
                system: Some("s.toml".into())
            })
        );
        assert_eq!(parse(&["help"]), Ok(Cmd::Help));
        assert_eq!(parse(&["--help"]), Ok(Cmd::Help));
        assert_eq!(parse(&["run", "-h"]), Ok(Cmd::Help));
        assert!(parse(&["build", "--timeout", "3"]).is_err());
        assert!(parse(&["run", "--timeout", "0"]).is_err());
        assert!(parse(&["run", "--timeout", "x"]).is_err());
        assert!(parse(&["run", "--system"]).is_err());
        assert!(parse(&["frobnicate"]).is_err());
    }
}
