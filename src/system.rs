//! The system description: which VMs a cloister system runs, read from TOML.
//!
//! ```toml
//! [[vm]]
//! name = "hello"            # unique, [a-z0-9-]{1,32}
//! image = "hello"           # a guest the builder builds, or a path to a PVH ELF
//!                           # (relative to this file, e.g. "./guests/foo.elf")
//! ram = "8M"                # "16M", "1G", or bytes; a multiple of 2 MiB, 2 MiB..=4 GiB
//! cmdline = "greeting=world" # optional, default "", at most 2048 bytes, no NUL
//! expect = "clean"          # optional: "clean" (exit status 0, the default) or
//!                           # "stopped" (stopped by the VMM: hostile test guests)
//! console = true            # optional: this VM's COM1 receives the machine's
//!                           # console input (at most one VM)
//! xen = "guest"             # optional: the Xen inter-VM ABI (event channels,
//!                           # grants, a store ring); "store" for the VM that
//!                           # serves the store (at most one); PVH guests only,
//!                           # RAM at most 256 MiB (built from 4 KiB frames)
//!
//! [[vm]]                    # a Linux AppVM: `kernel` instead of `image`
//! name = "work"
//! kernel = "appvm"          # the Debian kernel appvm-images builds, or a bzImage path
//! initrd = "./initrd.gz"    # optional; with kernel = "appvm" its busybox initramfs
//! ram = "256M"
//! cmdline = "console=ttyS0 quiet"
//! ```
//!
//! This file is shared with the package's `build.rs`: it may only use `std`,
//! `serde` and `toml`.

use serde::Deserialize;
use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

/// Guests the builder knows how to build (workspace packages with a binary of
/// the same name: `unikernels/hello`, `unikernels/hostile`,
/// `unikernels/rtcheck`, `netvm-uk/netvm`, `storevm-uk/storevm`,
/// `fileserver-uk/fileserver`, `unikernels/blkback/blkback`,
/// `unikernels/vchancheck`, `storevm-uk/probe`).
pub const GUESTS: &[&str] = &[
    "hello",
    "hostile",
    "rtcheck",
    "netvm",
    "storevm",
    "fileserver",
    "blkback",
    "vchancheck",
    "storeprobe",
];
/// Most VMs in one system (the VMM's limit).
pub const MAX_VMS: usize = 32;
/// Longest VM name.
pub const MAX_NAME_LEN: usize = 32;
/// Longest guest command line, in bytes.
pub const MAX_CMDLINE_LEN: usize = 2048;
/// Guest RAM comes in 2 MiB frames.
pub const RAM_GRANULE: u64 = 2 << 20;
/// Largest guest RAM (4 GiB).
pub const MAX_RAM: u64 = 4 << 30;

/// A validated system description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct System {
    /// The file it was read from (used in messages and to resolve image paths).
    pub source: PathBuf,
    /// The VMs, in the order the file lists them.
    pub vms: Vec<Vm>,
}

/// One VM of a system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vm {
    /// Unique name, `[a-z0-9-]{1,32}`.
    pub name: String,
    /// What it boots.
    pub image: Image,
    /// Guest RAM in bytes (a multiple of 2 MiB).
    pub ram: u64,
    /// The guest's command line.
    pub cmdline: String,
    /// How the VM is expected to end.
    pub expect: Expect,
    /// The machine's console input goes to this VM's COM1.
    pub console: bool,
    /// A Linux VM's initial RAM disk.
    pub initrd: Option<PathBuf>,
    /// The VM's part in inter-VM communication.
    pub xen: Xen,
}

/// A VM's part in inter-VM communication (the Xen-compatible ABI).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Xen {
    /// No Xen ABI: VMCALL is refused, no Xen CPUID leaves.
    #[default]
    None,
    /// A domain with event channels, grants and a store ring.
    Guest,
    /// The domain that serves every other domain's store ring.
    Store,
}

/// Most RAM of a VM with the Xen ABI (its RAM is built from 4 KiB frames so
/// that single pages can be granted).
pub const MAX_XEN_RAM: u64 = 256 << 20;

/// The image a VM boots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Image {
    /// A guest the builder builds (one of [`GUESTS`]).
    Guest(String),
    /// A PVH ELF file (resolved against the description's folder).
    File(PathBuf),
    /// A Linux bzImage file.
    Linux(PathBuf),
    /// The Debian kernel (and, unless `initrd` is given, the busybox
    /// initramfs) that `appvm-images` builds; resolved by
    /// [`System::resolve_appvm`].
    Appvm,
}

/// How a VM is expected to end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// It exits with status 0.
    Clean,
    /// The VMM stops it (a hostile test guest).
    Stopped,
}

impl Expect {
    /// Whether the VM must exit cleanly.
    pub fn is_clean(self) -> bool {
        self == Expect::Clean
    }
}

/// A problem with a system description: which file, which VM, what is wrong
/// and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemError {
    /// The description file.
    pub file: PathBuf,
    /// The VM concerned (its name, or `#N` when it has no valid name).
    pub vm: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl fmt::Display for SystemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file.display())?;
        match &self.vm {
            Some(vm) if vm.starts_with('#') => write!(f, "vm {vm}: ")?,
            Some(vm) => write!(f, "vm `{vm}`: ")?,
            None => {}
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for SystemError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSystem {
    #[serde(default)]
    vm: Vec<RawVm>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVm {
    name: Option<String>,
    image: Option<String>,
    ram: Option<RawRam>,
    cmdline: Option<String>,
    expect: Option<String>,
    console: Option<bool>,
    xen: Option<String>,
    kernel: Option<String>,
    initrd: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawRam {
    Bytes(i64),
    Text(String),
}

impl System {
    /// Reads and validates the description at `path`, and checks that every
    /// image file it names exists and is an ELF.
    pub fn load(path: &Path) -> Result<System, SystemError> {
        let source = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let text = std::fs::read_to_string(&source).map_err(|e| SystemError {
            file: source.clone(),
            vm: None,
            message: format!("cannot read the system description: {e}; check the path"),
        })?;
        let system = System::parse(&text, &source)?;
        for vm in &system.vms {
            if let Image::File(file) = &vm.image {
                check_elf(file).map_err(|message| SystemError {
                    file: source.clone(),
                    vm: Some(vm.name.clone()),
                    message,
                })?;
            }
        }
        Ok(system)
    }

    /// Parses and validates a description read from `source` (which is only
    /// used for messages and to resolve relative image paths).
    pub fn parse(text: &str, source: &Path) -> Result<System, SystemError> {
        let err = |vm: Option<String>, message: String| SystemError {
            file: source.to_path_buf(),
            vm,
            message,
        };
        let raw: RawSystem = toml::from_str(text).map_err(|e| {
            err(
                None,
                format!(
                    "not a valid system description: {}\n(expected [[vm]] tables with the keys \
                     name, image, ram, cmdline, expect)",
                    e.to_string().trim_end()
                ),
            )
        })?;
        if raw.vm.is_empty() {
            return Err(err(
                None,
                "no VMs: add at least one [[vm]] table with name, image and ram".into(),
            ));
        }
        if raw.vm.len() > MAX_VMS {
            return Err(err(
                None,
                format!(
                    "{} VMs, but the VMM runs at most {MAX_VMS}: remove some",
                    raw.vm.len()
                ),
            ));
        }
        let base = source
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut names = BTreeSet::new();
        let mut vms = Vec::with_capacity(raw.vm.len());
        for (i, r) in raw.vm.into_iter().enumerate() {
            let label = format!("#{}", i + 1);
            let name = match r.name {
                None => {
                    return Err(err(
                        Some(label),
                        "no `name`: add name = \"...\" (lowercase letters, digits and `-`)".into(),
                    ))
                }
                Some(n) => {
                    check_name(&n).map_err(|m| err(Some(label.clone()), m))?;
                    n
                }
            };
            if !names.insert(name.clone()) {
                return Err(err(
                    Some(name),
                    "the name is used by an earlier VM: VM names must be unique".into(),
                ));
            }
            let vm_err = |m: String| err(Some(name.clone()), m);
            let image = match (r.image.as_deref(), r.kernel.as_deref()) {
                (Some(_), Some(_)) => {
                    return Err(vm_err(
                        "both `image` and `kernel`: a VM boots either a PVH image or a Linux \
                         kernel; remove one"
                            .into(),
                    ))
                }
                (None, None) => {
                    return Err(vm_err(format!(
                        "no `image`: add image = \"hello\" (a guest the builder builds: {}) or \
                         the path of a PVH ELF relative to this file, or kernel = \"appvm\" for a \
                         Linux AppVM",
                        GUESTS.join(", ")
                    )))
                }
                (Some(s), None) => parse_image(s, base).map_err(vm_err)?,
                (None, Some("appvm")) => Image::Appvm,
                (None, Some(k)) => Image::Linux(base.join(k)),
            };
            let initrd =
                match (&image, r.initrd) {
                    (Image::Linux(_) | Image::Appvm, Some(i)) => Some(base.join(i)),
                    (_, Some(_)) => return Err(vm_err(
                        "`initrd` is for Linux VMs (`kernel = ...`): remove it or boot a kernel"
                            .into(),
                    )),
                    (_, None) => None,
                };
            let ram = match r.ram {
                None => {
                    return Err(vm_err(
                        "no `ram`: add e.g. ram = \"16M\" (a multiple of 2 MiB, 2M..4G)".into(),
                    ))
                }
                Some(RawRam::Bytes(b)) => u64::try_from(b)
                    .map_err(|_| format!("ram = {b} is negative"))
                    .and_then(check_ram),
                Some(RawRam::Text(t)) => parse_ram(&t).and_then(check_ram),
            }
            .map_err(|m| {
                vm_err(format!(
                    "{m}: give a multiple of 2 MiB from 2 MiB to 4 GiB, e.g. \"16M\", \"1G\" or \
                     16777216"
                ))
            })?;
            let cmdline = r.cmdline.unwrap_or_default();
            if cmdline.len() > MAX_CMDLINE_LEN {
                return Err(vm_err(format!(
                    "the cmdline is {} bytes long, more than the {MAX_CMDLINE_LEN} the VMM \
                     passes: shorten it",
                    cmdline.len()
                )));
            }
            if cmdline.contains('\0') {
                return Err(vm_err(
                    "the cmdline contains a NUL character, which would end it early: remove it"
                        .into(),
                ));
            }
            let expect = match r.expect.as_deref() {
                None | Some("clean") => Expect::Clean,
                Some("stopped") => Expect::Stopped,
                Some(other) => {
                    return Err(vm_err(format!(
                        "expect = {other:?} is not known: use \"clean\" (the VM must exit with \
                         status 0; the default) or \"stopped\" (the VMM must stop it; for hostile \
                         test guests)"
                    )))
                }
            };
            let console = r.console.unwrap_or(false);
            if console && vms.iter().any(|v: &Vm| v.console) {
                return Err(vm_err(
                    "console = true is set on more than one VM: the console input can go to \
                     one VM only"
                        .into(),
                ));
            }
            let xen = match r.xen.as_deref() {
                None => Xen::None,
                Some("guest") => Xen::Guest,
                Some("store") => Xen::Store,
                Some(other) => {
                    return Err(vm_err(format!(
                        "xen = {other:?} is not known: use \"guest\" (event channels, grants \
                         and a store ring) or \"store\" (the VM that serves the store)"
                    )))
                }
            };
            if xen != Xen::None {
                if matches!(image, Image::Linux(_) | Image::Appvm) {
                    return Err(vm_err(
                        "xen is only available to PVH guests so far: remove it from this Linux VM"
                            .into(),
                    ));
                }
                if ram > MAX_XEN_RAM {
                    return Err(vm_err(format!(
                        "a VM with xen = {:?} may have at most {} MiB of RAM (built from 4 KiB \
                         frames): lower ram",
                        r.xen.as_deref().unwrap_or_default(),
                        MAX_XEN_RAM >> 20
                    )));
                }
            }
            if xen == Xen::Store && vms.iter().any(|v: &Vm| v.xen == Xen::Store) {
                return Err(vm_err(
                    "xen = \"store\" is set on more than one VM: one VM serves the store".into(),
                ));
            }
            vms.push(Vm {
                name,
                image,
                ram,
                cmdline,
                expect,
                console,
                initrd,
                xen,
            });
        }
        Ok(System {
            source: source.to_path_buf(),
            vms,
        })
    }

    /// Whether any VM boots the appvm-images kernel.
    pub fn uses_appvm(&self) -> bool {
        self.vms.iter().any(|vm| vm.image == Image::Appvm)
    }

    /// Replaces `kernel = "appvm"` with the built kernel and (where no
    /// `initrd` is given) initramfs.
    pub fn resolve_appvm(&mut self, kernel: &Path, initramfs: &Path) {
        for vm in &mut self.vms {
            if vm.image == Image::Appvm {
                vm.image = Image::Linux(kernel.to_path_buf());
                if vm.initrd.is_none() {
                    vm.initrd = Some(initramfs.to_path_buf());
                }
            }
        }
    }

    /// The builder's guests this system boots, sorted, without repeats.
    pub fn guests(&self) -> Vec<&str> {
        let set: BTreeSet<&str> = self
            .vms
            .iter()
            .filter_map(|vm| match &vm.image {
                Image::Guest(g) => Some(g.as_str()),
                Image::File(_) | Image::Linux(_) | Image::Appvm => None,
            })
            .collect();
        set.into_iter().collect()
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if name.is_empty() || name.len() > MAX_NAME_LEN || !ok_chars {
        return Err(format!(
            "name {name:?} is not valid: use 1 to {MAX_NAME_LEN} lowercase letters, digits and `-`"
        ));
    }
    Ok(())
}

fn parse_image(s: &str, base: &Path) -> Result<Image, String> {
    if GUESTS.contains(&s) {
        return Ok(Image::Guest(s.to_string()));
    }
    let looks_like_path = s.contains('/') || s.starts_with('.') || s.ends_with(".elf");
    if s.is_empty() || !looks_like_path {
        return Err(format!(
            "image {s:?} is neither a guest the builder builds ({}) nor a path: name one of \
             those guests, or give the ELF's path relative to this file (e.g. \"./{s}.elf\" or \
             \"./{s}\")",
            GUESTS.join(", ")
        ));
    }
    Ok(Image::File(base.join(s)))
}

fn check_elf(file: &Path) -> Result<(), String> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    let read = std::fs::File::open(file).and_then(|mut f| f.read_exact(&mut magic));
    match read {
        Err(e) => Err(format!(
            "cannot read the image {}: {e}; image paths are relative to the system \
             description's folder",
            file.display()
        )),
        Ok(()) if &magic != b"\x7fELF" => Err(format!(
            "the image {} is not an ELF file: give a PVH ELF (a unikernel built for \
             x86_64-unknown-none)",
            file.display()
        )),
        Ok(()) => Ok(()),
    }
}

/// Parses a RAM size: bytes (`16777216`) or a number with a binary unit
/// (`512K`, `16M`, `1G`, also `16MiB`; case-insensitive). Does not check limits.
pub fn parse_ram(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        _ => return Err(format!("ram = {text:?} is not a size")),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("ram = {text:?} is not a size"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("ram = {text:?} is far too large"))
}

fn check_ram(bytes: u64) -> Result<u64, String> {
    if !(RAM_GRANULE..=MAX_RAM).contains(&bytes) {
        return Err(format!(
            "ram = {bytes} bytes is outside 2 MiB..=4 GiB ({})",
            human(bytes)
        ));
    }
    if !bytes.is_multiple_of(RAM_GRANULE) {
        return Err(format!(
            "ram = {bytes} bytes ({}) is not a multiple of 2 MiB",
            human(bytes)
        ));
    }
    Ok(bytes)
}

fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<System, SystemError> {
        System::parse(text, Path::new("/sys/dir/test.toml"))
    }

    fn err(text: &str) -> String {
        match parse(text) {
            Ok(s) => panic!("accepted: {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn full_description() {
        let s = parse(
            r#"
            [[vm]]
            name = "hello"
            image = "hello"
            ram = "8M"
            cmdline = "greeting=world \"quoted\""

            [[vm]]
            name = "bad-1"
            image = "./guests/bad.elf"
            ram = 1073741824
            expect = "stopped"
            "#,
        )
        .unwrap();
        assert_eq!(s.vms.len(), 2);
        assert_eq!(
            s.vms[0],
            Vm {
                name: "hello".into(),
                image: Image::Guest("hello".into()),
                ram: 8 << 20,
                cmdline: "greeting=world \"quoted\"".into(),
                expect: Expect::Clean,
                console: false,
                initrd: None,
                xen: Xen::None,
            }
        );
        assert_eq!(
            s.vms[1].image,
            Image::File(PathBuf::from("/sys/dir/./guests/bad.elf"))
        );
        assert_eq!(s.vms[1].ram, 1 << 30);
        assert_eq!(s.vms[1].cmdline, "");
        assert_eq!(s.vms[1].expect, Expect::Stopped);
        assert_eq!(s.guests(), vec!["hello"]);
    }

    #[test]
    fn ram_sizes() {
        assert_eq!(parse_ram("16M"), Ok(16 << 20));
        assert_eq!(parse_ram("16MiB"), Ok(16 << 20));
        assert_eq!(parse_ram("1g"), Ok(1 << 30));
        assert_eq!(parse_ram("4096K"), Ok(4 << 20));
        assert_eq!(parse_ram(" 2097152 "), Ok(2 << 20));
        assert!(parse_ram("16 MB").is_err());
        assert!(parse_ram("M").is_err());
        assert!(parse_ram("-2M").is_err());
        assert!(parse_ram("1.5G").is_err());
        assert!(parse_ram("99999999999999999999G").is_err());
        assert!(parse_ram("18446744073709551615G").is_err());
        assert_eq!(check_ram(2 << 20), Ok(2 << 20));
        assert_eq!(check_ram(4 << 30), Ok(4 << 30));
        assert!(check_ram(0).is_err());
        assert!(check_ram(3 << 20).is_err());
        assert!(check_ram((4 << 30) + (2 << 20)).is_err());
    }

    #[test]
    fn bad_ram_names_vm_and_fix() {
        let e = err("[[vm]]\nname = \"a\"\nimage = \"hello\"\nram = \"3M\"\n");
        assert!(e.starts_with("/sys/dir/test.toml: vm `a`: "), "{e}");
        assert!(e.contains("not a multiple of 2 MiB"), "{e}");
        assert!(e.contains("e.g. \"16M\""), "{e}");
        let e = err("[[vm]]\nname = \"a\"\nimage = \"hello\"\nram = \"8G\"\n");
        assert!(e.contains("outside 2 MiB..=4 GiB"), "{e}");
        let e = err("[[vm]]\nname = \"a\"\nimage = \"hello\"\nram = -4\n");
        assert!(e.contains("negative"), "{e}");
        let e = err("[[vm]]\nname = \"a\"\nimage = \"hello\"\nram = \"lots\"\n");
        assert!(e.contains("not a size"), "{e}");
        let e = err("[[vm]]\nname = \"a\"\nimage = \"hello\"\n");
        assert!(e.contains("no `ram`"), "{e}");
    }

    #[test]
    fn xen_roles() {
        let vm = |name: &str, xen: &str, ram: &str| {
            format!(
                "[[vm]]\nname = \"{name}\"\nimage = \"hello\"\nram = \"{ram}\"\nxen = \"{xen}\"\n"
            )
        };
        let s = parse(&(vm("store", "store", "8M") + &vm("a", "guest", "8M"))).unwrap();
        assert_eq!(s.vms[0].xen, Xen::Store);
        assert_eq!(s.vms[1].xen, Xen::Guest);
        let e = err(&(vm("s1", "store", "8M") + &vm("s2", "store", "8M")));
        assert!(
            e.contains("vm `s2`: xen = \"store\" is set on more than one VM"),
            "{e}"
        );
        let e = err(&vm("a", "dom0", "8M"));
        assert!(e.contains("xen = \"dom0\" is not known"), "{e}");
        let e = err(&vm("a", "guest", "512M"));
        assert!(e.contains("at most 256 MiB"), "{e}");
        let e = err("[[vm]]\nname = \"w\"\nkernel = \"appvm\"\nram = \"256M\"\nxen = \"guest\"\n");
        assert!(e.contains("only available to PVH guests"), "{e}");
    }

    #[test]
    fn bad_names() {
        for name in ["", "Hello", "a_b", "a b", "ä", &"x".repeat(33)] {
            let e = err(&format!(
                "[[vm]]\nname = {name:?}\nimage = \"hello\"\nram = \"2M\"\n"
            ));
            assert!(e.contains("vm #1: name"), "{name}: {e}");
            assert!(e.contains("lowercase letters, digits and `-`"), "{e}");
        }
        let ok = parse(&format!(
            "[[vm]]\nname = {:?}\nimage = \"hello\"\nram = \"2M\"\n",
            "a-0".repeat(10)
        ));
        assert!(ok.is_ok());
        let e = err("[[vm]]\nimage = \"hello\"\nram = \"2M\"\n");
        assert!(e.contains("vm #1: no `name`"), "{e}");
        let e = err("[[vm]]\nname = \"a\"\nimage = \"hello\"\nram = \"2M\"\n\
             [[vm]]\nname = \"a\"\nimage = \"hostile\"\nram = \"2M\"\n");
        assert!(
            e.contains("vm `a`: the name is used by an earlier VM"),
            "{e}"
        );
    }

    #[test]
    fn bad_images() {
        let e = err("[[vm]]\nname = \"a\"\nimage = \"helo\"\nram = \"2M\"\n");
        assert!(e.contains("vm `a`: image \"helo\" is neither"), "{e}");
        assert!(e.contains("hello, hostile"), "{e}");
        let e = err("[[vm]]\nname = \"a\"\nimage = \"\"\nram = \"2M\"\n");
        assert!(e.contains("neither"), "{e}");
        let e = err("[[vm]]\nname = \"a\"\nram = \"2M\"\n");
        assert!(e.contains("no `image`"), "{e}");
        let s = parse("[[vm]]\nname = \"a\"\nimage = \"k.elf\"\nram = \"2M\"\n").unwrap();
        assert_eq!(s.vms[0].image, Image::File("/sys/dir/k.elf".into()));
    }

    #[test]
    fn bad_cmdlines() {
        let long = "x".repeat(MAX_CMDLINE_LEN + 1);
        let e = err(&format!(
            "[[vm]]\nname = \"a\"\nimage = \"hello\"\nram = \"2M\"\ncmdline = {long:?}\n"
        ));
        assert!(e.contains("2049 bytes"), "{e}");
        let max = "x".repeat(MAX_CMDLINE_LEN);
        assert!(parse(&format!(
            "[[vm]]\nname = \"a\"\nimage = \"hello\"\nram = \"2M\"\ncmdline = {max:?}\n"
        ))
        .is_ok());
        let e =
            err("[[vm]]\nname = \"a\"\nimage = \"hello\"\nram = \"2M\"\ncmdline = \"a\\u0000b\"\n");
        assert!(e.contains("NUL"), "{e}");
    }

    #[test]
    fn bad_expect() {
        let e = err("[[vm]]\nname = \"a\"\nimage = \"hello\"\nram = \"2M\"\nexpect = \"crash\"\n");
        assert!(e.contains("expect = \"crash\" is not known"), "{e}");
        assert!(e.contains("\"stopped\""), "{e}");
    }

    #[test]
    fn bad_structure() {
        let e = err("");
        assert!(e.contains("no VMs"), "{e}");
        let e = err("[[vm]]\nname = \"a\"\nimage = \"hello\"\nram = \"2M\"\nrma = 3\n");
        assert!(e.contains("unknown field `rma`"), "{e}");
        assert!(e.contains("line 5"), "{e}");
        let e = err("[[vm]]\nname = 5\n");
        assert!(e.contains("invalid type"), "{e}");
        let e = err("[vms]\n");
        assert!(e.contains("unknown field `vms`"), "{e}");
        let e = err("[[vm]\n");
        assert!(e.contains("not a valid system description"), "{e}");
        let many: String = (0..=MAX_VMS)
            .map(|i| format!("[[vm]]\nname = \"v{i}\"\nimage = \"hello\"\nram = \"2M\"\n"))
            .collect();
        let e = err(&many);
        assert!(e.contains("33 VMs, but the VMM runs at most 32"), "{e}");
        let max: String = (0..MAX_VMS)
            .map(|i| format!("[[vm]]\nname = \"v{i}\"\nimage = \"hello\"\nram = \"2M\"\n"))
            .collect();
        assert_eq!(parse(&max).unwrap().vms.len(), MAX_VMS);
    }

    #[test]
    fn load_checks_files() {
        let dir = std::env::temp_dir().join(format!("cloister-system-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let toml = dir.join("s.toml");
        std::fs::write(
            &toml,
            "[[vm]]\nname = \"a\"\nimage = \"./missing.elf\"\nram = \"2M\"\n",
        )
        .unwrap();
        let e = System::load(&toml).unwrap_err().to_string();
        assert!(e.contains("vm `a`: cannot read the image"), "{e}");
        std::fs::write(dir.join("text.elf"), "not an elf").unwrap();
        std::fs::write(
            &toml,
            "[[vm]]\nname = \"a\"\nimage = \"text.elf\"\nram = \"2M\"\n",
        )
        .unwrap();
        let e = System::load(&toml).unwrap_err().to_string();
        assert!(e.contains("is not an ELF file"), "{e}");
        std::fs::write(dir.join("ok.elf"), b"\x7fELF rest").unwrap();
        std::fs::write(
            &toml,
            "[[vm]]\nname = \"a\"\nimage = \"ok.elf\"\nram = \"2M\"\n",
        )
        .unwrap();
        assert!(System::load(&toml).is_ok());
        let e = System::load(&dir.join("nope.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("nope.toml: cannot read the system description"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn default_system_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/default-system.toml");
        let s = System::load(&path).unwrap();
        assert!(s
            .vms
            .iter()
            .any(|vm| vm.name == "hello" && vm.expect.is_clean()));
        // The AppVM gets the terminal.
        assert!(s
            .vms
            .iter()
            .any(|vm| vm.image == Image::Appvm && vm.console));
        // The hostile demonstration lives beside the tests.
        let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/systems/hello.toml");
        let d = System::load(&demo).unwrap();
        assert!(d.vms.iter().any(|vm| vm.expect == Expect::Stopped));
    }
}
