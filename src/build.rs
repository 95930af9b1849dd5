//! Building a system: the guests, the generated system table and the seL4 root
//! task (the VMM), each by a nested `cargo build` for `x86_64-unknown-none`.
//!
//! Every nested build has its own target directory under `<root>/target/`
//! (`cloister-guests`, `cloister-vmm/<hash of the system table>`), and runs
//! without the variables an outer cargo leaks into build scripts, tests and
//! `cargo run` (flags, wrappers, target selection).
//!
//! This file is shared with the package's `build.rs`: it may only use `std`
//! and the [`system`](crate::system) module.

use crate::system::{Image, System};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The target every guest and the root task are built for.
pub const TARGET: &str = "x86_64-unknown-none";
/// Where the seL4 install is looked for when `SEL4_PREFIX` is unset.
pub const DEFAULT_SEL4_PREFIX: &str = "/opt/sel4-16.0.0";
/// The root task's package (and binary) name.
pub const VMM_PACKAGE: &str = "cloister-vmm";
/// Rust flags for the `x86_64-unknown-none` builds (`CARGO_ENCODED_RUSTFLAGS`,
/// `\x1f`-separated): nothing in the guests' or root task's build setup picks a
/// relocation model, and both link as static non-PIE executables.
pub const TARGET_RUSTFLAGS: &str = "-C\x1frelocation-model=static";

/// Variables an outer cargo sets that must not reach a nested cargo.
const LEAKY_VARS: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "RUSTDOCFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_WRAPPER",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_MANIFEST_LINKS",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_TARGET_TMPDIR",
    "OUT_DIR",
    "TARGET",
    "HOST",
    "PROFILE",
    "OPT_LEVEL",
    "DEBUG",
    "NUM_JOBS",
    "CLOISTER_SYSTEM_RS",
];
/// Prefixes of per-package variables an outer cargo sets for build scripts.
const LEAKY_PREFIXES: &[&str] = &["CARGO_CFG_", "CARGO_FEATURE_", "CARGO_PKG_", "DEP_"];

/// Why a build failed.
#[derive(Debug)]
pub enum BuildError {
    /// `$SEL4_PREFIX/bin/kernel.elf` does not exist.
    Sel4Missing {
        /// The install prefix looked at.
        prefix: PathBuf,
        /// Whether it came from `SEL4_PREFIX` (else it is the default).
        from_env: bool,
    },
    /// A program could not be started.
    Spawn {
        /// The program.
        program: String,
        /// The error.
        error: io::Error,
    },
    /// A nested cargo build failed.
    Cargo {
        /// What was being built.
        what: String,
        /// Its exit status.
        status: String,
        /// The command line.
        command: String,
    },
    /// A file operation failed.
    Io {
        /// What was being done.
        what: String,
        /// The file.
        path: PathBuf,
        /// The error.
        error: io::Error,
    },
    /// Something the build needs is missing or unusable.
    Other(String),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Sel4Missing { prefix, from_env } => write!(
                f,
                "seL4 kernel not found at {} ({}): build seL4 16.0.0 for x86_64 (pc99) with VT-x \
                 and 64-bit guests on, install it and set SEL4_PREFIX — see README.md",
                prefix.display(),
                if *from_env {
                    "SEL4_PREFIX"
                } else {
                    "the default; SEL4_PREFIX is not set"
                }
            ),
            BuildError::Spawn { program, error } => {
                write!(f, "cannot run `{program}`: {error}")
            }
            BuildError::Cargo {
                what,
                status,
                command,
            } => write!(
                f,
                "building {what} failed ({status}); cargo's messages are above. Command: {command}"
            ),
            BuildError::Io { what, path, error } => {
                write!(f, "{what} {}: {error}", path.display())
            }
            BuildError::Other(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for BuildError {}

/// The built guests, by name.
pub type Guests = BTreeMap<String, PathBuf>;

/// A built root task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vmm {
    /// The root task ELF.
    pub binary: PathBuf,
    /// The generated system table it embeds.
    pub system_rs: PathBuf,
    /// Hash of the system table (names the target directory).
    pub hash: String,
}

/// Runs the nested builds of one workspace.
#[derive(Clone, Debug)]
pub struct Builder {
    /// The workspace root (this package's manifest directory).
    pub root: PathBuf,
    /// The cargo to run (`CARGO`, else `cargo`).
    pub cargo: OsString,
    /// The seL4 install prefix.
    pub sel4_prefix: PathBuf,
    /// Whether `sel4_prefix` came from `SEL4_PREFIX`.
    pub sel4_from_env: bool,
}

impl Builder {
    /// A builder for the workspace this crate was compiled in, with cargo and
    /// the seL4 prefix taken from the environment.
    pub fn from_env() -> Builder {
        let (sel4_prefix, sel4_from_env) = match std::env::var_os("SEL4_PREFIX") {
            Some(p) if !p.is_empty() => (PathBuf::from(p), true),
            _ => (PathBuf::from(DEFAULT_SEL4_PREFIX), false),
        };
        Builder {
            root: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            cargo: std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
            sel4_prefix,
            sel4_from_env,
        }
    }

    /// `<root>/target`.
    pub fn target_dir(&self) -> PathBuf {
        self.root.join("target")
    }

    /// The target directory of the guest builds.
    pub fn guests_target_dir(&self) -> PathBuf {
        self.target_dir().join("cloister-guests")
    }

    /// The default system description, `<root>/src/default-system.toml`.
    pub fn default_system(&self) -> PathBuf {
        self.root.join("src/default-system.toml")
    }

    /// The installed seL4 kernel, `$SEL4_PREFIX/bin/kernel.elf`.
    pub fn sel4_kernel(&self) -> Result<PathBuf, BuildError> {
        let kernel = self.sel4_prefix.join("bin/kernel.elf");
        if kernel.is_file() {
            Ok(kernel)
        } else {
            Err(BuildError::Sel4Missing {
                prefix: self.sel4_prefix.clone(),
                from_env: self.sel4_from_env,
            })
        }
    }

    /// A `cargo` command with the outer cargo's leaked variables removed and
    /// the target flags set.
    fn cargo_command(&self) -> Command {
        let mut cmd = Command::new(&self.cargo);
        for var in LEAKY_VARS {
            cmd.env_remove(var);
        }
        for (key, _) in std::env::vars_os() {
            if let Some(k) = key.to_str() {
                if LEAKY_PREFIXES.iter().any(|p| k.starts_with(p)) {
                    cmd.env_remove(&key);
                }
            }
        }
        cmd.env("CARGO_ENCODED_RUSTFLAGS", TARGET_RUSTFLAGS)
            .current_dir(&self.root)
            // Cargo reports on stderr; keep its stdout off ours (a build
            // script's stdout is read by cargo).
            .stdout(Stdio::from(io::stderr()))
            .stdin(Stdio::null());
        cmd
    }

    fn run_cargo(&self, mut cmd: Command, what: &str) -> Result<(), BuildError> {
        let command = render(&cmd);
        let status = cmd.status().map_err(|error| BuildError::Spawn {
            program: self.cargo.to_string_lossy().into_owned(),
            error,
        })?;
        if status.success() {
            Ok(())
        } else {
            Err(BuildError::Cargo {
                what: what.to_string(),
                status: status.to_string(),
                command,
            })
        }
    }

    /// `cargo build --release --target TARGET` of `manifest` into `target_dir`.
    fn release_build(&self, manifest: &Path, target_dir: &Path) -> Command {
        let mut cmd = self.cargo_command();
        cmd.arg("build")
            .arg("--release")
            .arg("--target")
            .arg(TARGET)
            .arg("--manifest-path")
            .arg(manifest)
            .arg("--target-dir")
            .arg(target_dir);
        cmd
    }

    /// Builds the named guests (release, [`TARGET`]) and returns their ELFs.
    pub fn build_guests(&self, names: &[&str]) -> Result<Guests, BuildError> {
        if names.is_empty() {
            return Ok(Guests::new());
        }
        eprintln!("cloister: building guests ({TARGET})…");
        let dir = self.guests_target_dir();
        let mut cmd = self.release_build(&self.root.join("Cargo.toml"), &dir);
        for name in names {
            cmd.arg("-p").arg(name);
        }
        self.run_cargo(cmd, &format!("the guests ({})", names.join(", ")))?;
        let mut out = Guests::new();
        for name in names {
            let elf = dir.join(TARGET).join("release").join(name);
            if !elf.is_file() {
                return Err(BuildError::Other(format!(
                    "cargo built guest `{name}` but {} does not exist: does the package have a \
                     binary named `{name}`?",
                    elf.display()
                )));
            }
            out.insert((*name).to_string(), elf);
        }
        Ok(out)
    }

    /// Generates the system table for `system`, then builds the root task
    /// that embeds it, in `target/cloister-vmm/<hash>`.
    pub fn build_vmm(&self, system: &System, guests: &Guests) -> Result<Vmm, BuildError> {
        self.sel4_kernel()?;
        let rs = system_rs(system, guests)?;
        let hash = format!("{:016x}", fnv1a64(rs.as_bytes()));
        let dir = self.target_dir().join("cloister-vmm").join(&hash);
        std::fs::create_dir_all(&dir).map_err(|error| BuildError::Io {
            what: "cannot create".into(),
            path: dir.clone(),
            error,
        })?;
        let system_rs = dir.join("system.rs");
        // Rewrite only on change: cargo rebuilds when the file's time changes.
        if std::fs::read_to_string(&system_rs).ok().as_deref() != Some(rs.as_str()) {
            std::fs::write(&system_rs, &rs).map_err(|error| BuildError::Io {
                what: "cannot write".into(),
                path: system_rs.clone(),
                error,
            })?;
        }
        let n = system.vms.len();
        eprintln!(
            "cloister: building the VMM for {n} VM{}…",
            if n == 1 { "" } else { "s" }
        );
        let manifest = self.root.join("vmm/roottask/Cargo.toml");
        let mut cmd = self.release_build(&manifest, &dir);
        cmd.env("CLOISTER_SYSTEM_RS", &system_rs)
            .env("SEL4_PREFIX", &self.sel4_prefix);
        self.run_cargo(cmd, &format!("the VMM ({})", manifest.display()))?;
        let binary = dir.join(TARGET).join("release").join(VMM_PACKAGE);
        if !binary.is_file() {
            return Err(BuildError::Other(format!(
                "cargo built the VMM but {} does not exist",
                binary.display()
            )));
        }
        Ok(Vmm {
            binary,
            system_rs,
            hash,
        })
    }
}

/// The system table the root task includes (`CLOISTER_SYSTEM_RS`): one
/// `VmSpec` per VM, its image embedded with `include_bytes!`.
pub fn system_rs(system: &System, guests: &Guests) -> Result<String, BuildError> {
    let mut out = String::from(
        "// Generated by the cloister builder from a system description; do not edit.\n\
         pub static VMS: &[VmSpec] = &[\n",
    );
    for vm in &system.vms {
        let image = match &vm.image {
            Image::Guest(g) => guests.get(g).cloned().ok_or_else(|| {
                BuildError::Other(format!(
                    "{}: vm `{}`: guest `{g}` was not built",
                    system.source.display(),
                    vm.name
                ))
            })?,
            Image::Appvm => {
                return Err(BuildError::Other(format!(
                    "{}: vm `{}`: kernel = \"appvm\" must be resolved to the built images first \
                     (the cloister CLI and tests do this; build.rs cannot)",
                    system.source.display(),
                    vm.name
                )))
            }
            Image::File(f) | Image::Linux(f) => {
                std::fs::canonicalize(f).map_err(|error| BuildError::Io {
                    what: format!(
                        "{}: vm `{}`: cannot find the image",
                        system.source.display(),
                        vm.name
                    ),
                    path: f.clone(),
                    error,
                })?
            }
        };
        let image = image.to_str().ok_or_else(|| {
            BuildError::Other(format!(
                "{}: vm `{}`: the image path {} is not UTF-8: move or rename the file",
                system.source.display(),
                vm.name,
                image.display()
            ))
        })?;
        let initrd = match &vm.initrd {
            Some(p) => {
                let p = std::fs::canonicalize(p).map_err(|error| BuildError::Io {
                    what: format!(
                        "{}: vm `{}`: cannot find the initrd",
                        system.source.display(),
                        vm.name
                    ),
                    path: p.clone(),
                    error,
                })?;
                format!("include_bytes!({:?})", p.display().to_string())
            }
            None => "b\"\"".to_string(),
        };
        out.push_str(&format!(
            "    VmSpec {{ name: {:?}, ram: {}, cmdline: {:?}, image: include_bytes!({:?}), expect_clean: {}, console: {}, linux: {}, initrd: {initrd}, xen: Xen::{:?} }},\n",
            vm.name,
            vm.ram,
            vm.cmdline,
            image,
            vm.expect.is_clean(),
            vm.console,
            matches!(vm.image, Image::Linux(_)),
            vm.xen
        ));
    }
    out.push_str("];\n");
    Ok(out)
}

/// FNV-1a (64-bit): a hash that is stable across Rust versions, for naming
/// build directories; also the checksum the guests print, which the tests
/// recompute.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A shell-like rendering of `cmd`: the variables it sets, the program and
/// its arguments.
fn render(cmd: &Command) -> String {
    let mut parts: Vec<String> = cmd
        .get_envs()
        .filter_map(|(k, v)| Some(format!("{}={:?}", k.to_string_lossy(), v?)))
        .collect();
    parts.push(cmd.get_program().to_string_lossy().into_owned());
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::system::System;
    use std::path::Path;

    #[test]
    fn system_table() {
        let system = System::parse(
            "[[vm]]\nname = \"hello\"\nimage = \"hello\"\nram = \"8M\"\n\
             cmdline = \"a=\\\"b\\\" \\\\ \\u00e9\"\nxen = \"store\"\n\
             [[vm]]\nname = \"bad\"\nimage = \"hostile\"\nram = \"2M\"\nexpect = \"stopped\"\n",
            Path::new("/x/s.toml"),
        )
        .unwrap();
        let mut guests = Guests::new();
        guests.insert("hello".into(), PathBuf::from("/g/hello"));
        guests.insert("hostile".into(), PathBuf::from("/g/host\"ile"));
        let rs = system_rs(&system, &guests).unwrap();
        let body: Vec<&str> = rs.lines().skip(1).collect();
        assert_eq!(
            body,
            [
                "pub static VMS: &[VmSpec] = &[",
                "    VmSpec { name: \"hello\", ram: 8388608, cmdline: \"a=\\\"b\\\" \\\\ é\", \
                 image: include_bytes!(\"/g/hello\"), expect_clean: true, console: false, linux: false, initrd: b\"\", \
                 xen: Xen::Store },",
                "    VmSpec { name: \"bad\", ram: 2097152, cmdline: \"\", \
                 image: include_bytes!(\"/g/host\\\"ile\"), expect_clean: false, console: false, linux: false, initrd: b\"\", \
                 xen: Xen::None },",
                "];",
            ]
        );
        guests.remove("hostile");
        let e = system_rs(&system, &guests).unwrap_err().to_string();
        assert!(e.contains("vm `bad`: guest `hostile` was not built"), "{e}");
    }

    #[test]
    fn fnv_reference() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn missing_sel4_message() {
        let b = Builder {
            sel4_prefix: PathBuf::from("/nonexistent/sel4"),
            sel4_from_env: true,
            ..Builder::from_env()
        };
        let e = b.sel4_kernel().unwrap_err().to_string();
        assert_eq!(
            e,
            "seL4 kernel not found at /nonexistent/sel4 (SEL4_PREFIX): build seL4 16.0.0 for \
             x86_64 (pc99) with VT-x and 64-bit guests on, install it and set SEL4_PREFIX — see \
             README.md"
        );
    }

    #[test]
    fn nested_cargo_is_clean() {
        let cmd = Builder::from_env().cargo_command();
        let envs: BTreeMap<String, Option<String>> = cmd
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        for var in [
            "RUSTC_WORKSPACE_WRAPPER",
            "CARGO_TARGET_DIR",
            "CARGO_PRIMARY_PACKAGE",
        ] {
            assert_eq!(envs.get(var), Some(&None), "{var}");
        }
        assert_eq!(
            envs.get("CARGO_ENCODED_RUSTFLAGS"),
            Some(&Some("-C\u{1f}relocation-model=static".to_string()))
        );
        assert!(!envs.contains_key("CARGO_MAKEFLAGS"));
    }
}
