//! A GRUB rescue ISO that boots seL4 with the cloister root task.
//!
//! Layout: `/boot/kernel.elf` (the installed kernel, stripped: GRUB reads it
//! through BIOS disk calls, which are slow under Bochs), `/boot/cloister-vmm`
//! (the root task, stripped, loaded as the first multiboot module) and
//! `/boot/grub/grub.cfg` (no menu delay, console on COM1).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The GRUB configuration of the ISO.
pub const GRUB_CFG: &str = "\
set timeout=0
set default=0
serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
menuentry \"cloister\" {
    multiboot /boot/kernel.elf
    module /boot/cloister-vmm cloister-vmm
    boot
}
";

/// Why the ISO could not be made.
#[derive(Debug)]
pub enum IsoError {
    /// A tool is not installed.
    MissingTool {
        /// What is missing.
        tool: String,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// A tool failed.
    ToolFailed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed.
        output: String,
    },
    /// A file operation failed.
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        error: io::Error,
    },
}

impl fmt::Display for IsoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IsoError::MissingTool { tool, package } => write!(
                f,
                "{tool} is not installed; it is needed to make the boot ISO: install the Debian \
                 package {package} (apt-get install {package})"
            ),
            IsoError::ToolFailed {
                command,
                status,
                output,
            } => write!(f, "`{command}` failed ({status}):\n{}", output.trim_end()),
            IsoError::Io { what, path, error } => {
                write!(f, "{what} {}: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for IsoError {}

/// Finds `program` in `PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// Checks that the tools the ISO needs are installed, naming the Debian
/// package to install for the first one missing.
pub fn check_tools() -> Result<(), IsoError> {
    let missing = |tool: &str, package| IsoError::MissingTool {
        tool: tool.to_string(),
        package,
    };
    if which("grub-mkrescue").is_none() {
        return Err(missing("grub-mkrescue", "grub-common"));
    }
    if !Path::new("/usr/lib/grub/i386-pc").is_dir() {
        return Err(missing(
            "GRUB's BIOS modules (/usr/lib/grub/i386-pc)",
            "grub-pc-bin",
        ));
    }
    if which("xorriso").is_none() {
        return Err(missing("xorriso", "xorriso"));
    }
    if which("mformat").is_none() {
        return Err(missing("mformat", "mtools"));
    }
    strip_tool().map(|_| ())
}

fn strip_tool() -> Result<(&'static str, &'static [&'static str]), IsoError> {
    if which("strip").is_some() {
        Ok(("strip", &["--strip-all"]))
    } else if which("objcopy").is_some() {
        Ok(("objcopy", &["--strip-all"]))
    } else {
        Err(IsoError::MissingTool {
            tool: "strip (or objcopy)".into(),
            package: "binutils",
        })
    }
}

fn run(cmd: &mut Command) -> Result<(), IsoError> {
    let command = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|error| IsoError::ToolFailed {
            command: command.clone(),
            status: "could not start".into(),
            output: error.to_string(),
        })?;
    if out.status.success() {
        return Ok(());
    }
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    Err(IsoError::ToolFailed {
        command,
        status: out.status.to_string(),
        output,
    })
}

fn strip_into(input: &Path, output: &Path) -> Result<(), IsoError> {
    let (tool, args) = strip_tool()?;
    run(Command::new(tool)
        .args(args)
        .arg("-o")
        .arg(output)
        .arg(input))
}

/// Makes `<work_dir>/cloister.iso` from the seL4 `kernel` and the root task
/// `vmm`, staging the files in `<work_dir>/iso/`. Returns the ISO's path.
pub fn build_iso(kernel: &Path, vmm: &Path, work_dir: &Path) -> Result<PathBuf, IsoError> {
    check_tools()?;
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |error| IsoError::Io { what, path, error }
    };
    let tree = work_dir.join("iso");
    if tree.exists() {
        std::fs::remove_dir_all(&tree).map_err(io("cannot clear", &tree))?;
    }
    let grub = tree.join("boot/grub");
    std::fs::create_dir_all(&grub).map_err(io("cannot create", &grub))?;
    strip_into(kernel, &tree.join("boot/kernel.elf"))?;
    strip_into(vmm, &tree.join("boot/cloister-vmm"))?;
    let cfg = grub.join("grub.cfg");
    std::fs::write(&cfg, GRUB_CFG).map_err(io("cannot write", &cfg))?;
    let iso = work_dir.join("cloister.iso");
    run(Command::new("grub-mkrescue").arg("-o").arg(&iso).arg(&tree))?;
    if !iso.is_file() {
        return Err(IsoError::Io {
            what: "grub-mkrescue succeeded but did not write",
            path: iso,
            error: io::ErrorKind::NotFound.into(),
        });
    }
    Ok(iso)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grub_cfg_boots_without_delay_on_serial() {
        assert!(GRUB_CFG.contains("set timeout=0"));
        assert!(GRUB_CFG.contains("serial --unit=0"));
        assert!(GRUB_CFG.contains("terminal_output serial"));
        assert!(GRUB_CFG.contains("multiboot /boot/kernel.elf"));
        assert!(GRUB_CFG.contains("module /boot/cloister-vmm"));
    }

    #[test]
    fn missing_tool_names_package() {
        let e = IsoError::MissingTool {
            tool: "xorriso".into(),
            package: "xorriso",
        };
        assert!(e.to_string().contains("apt-get install xorriso"));
    }
}
