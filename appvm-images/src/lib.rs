//! Builds the AppVM kernel and initramfs from Debian packages.
//!
//! No kernel is compiled: the kernel is Debian's `vmlinuz` from the package
//! that `linux-image-amd64` depends on, and the initramfs holds
//! `busybox-static`'s `/bin/busybox`, its applet links, `/dev/console` and
//! an `/init` script that mounts `/proc`, `/sys` and devtmpfs, prints
//! [`INIT_MARKER`] and runs a shell on the console.
//!
//! Packages are fetched with `apt-get download` from apt's configured mirror
//! and checked against the SHA256 in apt's (signed) package lists before use
//! ([`apt`]); `.deb` files are read in Rust ([`deb`]: `ar`, then
//! `data.tar.xz` through `xz2` and `tar`), and the initramfs is a newc cpio
//! written here ([`cpio`]) and gzipped with `flate2`. Everything is cached
//! under the cache directory, so a second build only asks apt for the
//! current versions:
//!
//! ```text
//! <cache>/debs/NAME_VERSION_ARCH.deb          verified downloads
//! <cache>/extracted/NAME_VERSION_ARCH/FILE    files taken out of them, with a
//!                                             `.stamp` naming the .deb's SHA256
//! <cache>/initramfs/initramfs-HASH.cpio.gz    HASH = SHA256 of the cpio (first 16 hex)
//! ```

#![forbid(unsafe_code)]

pub mod apt;
pub mod cpio;
pub mod deb;

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The line `/init` prints once `/proc`, `/sys` and `/dev` are mounted, just
/// before it starts the shell (or the commands of
/// [`InitAction::RunThenPowerOff`]).
pub const INIT_MARKER: &str = "appvm: init started";
/// The kernel meta-package whose dependency is the AppVM kernel.
pub const KERNEL_META_PACKAGE: &str = "linux-image-amd64";
/// The package that provides `/bin/busybox`.
pub const BUSYBOX_PACKAGE: &str = "busybox-static";
/// A command line for the AppVM kernel: the console on COM1, and `quiet` so
/// the boot log does not crawl out at 9600 baud (read it with `dmesg`).
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 quiet";

/// Applets linked in the archive itself (the shell and what `/init` runs
/// before `busybox --install` links the rest into `/bin`).
pub const APPLETS: &[&str] = &[
    "sh", "ash", "mount", "umount", "mkdir", "echo", "cat", "ls", "uname", "sleep", "date",
    "dmesg", "grep", "ps", "setsid", "cttyhack", "poweroff", "reboot", "halt", "sync", "ln", "rm",
    "cp", "mv", "chmod", "head", "tail", "wc", "free", "uptime", "time", "true", "false", "test",
    "[", "env", "stty", "tty", "kill", "mdev", "hostname", "ip", "ifconfig",
];

/// What `/init` does after printing [`INIT_MARKER`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitAction {
    /// Runs an interactive shell on the console (`setsid cttyhack sh`, so it
    /// has a controlling terminal and job control); when the shell exits
    /// the VM powers off.
    Shell,
    /// Runs these shell commands, waits for the console to drain, then
    /// powers off (`poweroff -f`). An empty string powers off right after
    /// the marker (used to time the boot).
    RunThenPowerOff(String),
}

/// What to build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// The kernel meta-package (its `linux-image-*` dependency is used).
    pub kernel_meta_package: String,
    /// The busybox package.
    pub busybox_package: String,
    /// What `/init` does after the marker.
    pub init: InitAction,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            kernel_meta_package: KERNEL_META_PACKAGE.into(),
            busybox_package: BUSYBOX_PACKAGE.into(),
            init: InitAction::Shell,
        }
    }
}

/// The built images.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppvmImages {
    /// The kernel (a bzImage, Debian's `/boot/vmlinuz-VERSION`).
    pub kernel: PathBuf,
    /// The gzip-compressed newc initramfs.
    pub initramfs: PathBuf,
    /// The kernel release (`6.1.0-56-amd64`), as `uname -r` prints it.
    pub kernel_version: String,
    /// The kernel package, `NAME=VERSION`.
    pub kernel_package: String,
    /// The busybox package, `NAME=VERSION`.
    pub busybox_package: String,
}

/// Why the images could not be built.
#[derive(Debug)]
pub enum Error {
    /// apt could not resolve or download a package.
    Apt {
        /// The command that failed.
        command: String,
        /// What it said.
        detail: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// A `.deb` does not have the SHA256 apt lists for it.
    Checksum {
        /// The file.
        file: PathBuf,
        /// `NAME=VERSION`.
        package: String,
        /// The listed SHA256 values.
        expected: Vec<String>,
        /// The file's SHA256.
        actual: String,
    },
    /// A `.deb` could not be read.
    Deb {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        error: deb::DebError,
    },
    /// The kernel file is not a bzImage.
    NotAKernel {
        /// The file.
        file: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// An initramfs could not be written or read back.
    Cpio(cpio::CpioError),
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

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Apt {
                command,
                detail,
                hint,
            } => write!(f, "`{command}` failed: {detail}; {hint}"),
            Error::Checksum {
                file,
                package,
                expected,
                actual,
            } => write!(
                f,
                "checksum mismatch for {package}: {} has SHA256 {actual}, apt lists {}; the \
                 download is corrupt or the package lists are stale: run `apt-get update` and \
                 build again",
                file.display(),
                expected.join(" or ")
            ),
            Error::Deb { file, error } => write!(
                f,
                "cannot read {}: {error}; delete it and build again to download it anew",
                file.display()
            ),
            Error::NotAKernel { file, why } => {
                write!(f, "{} is not a Linux bzImage: {why}", file.display())
            }
            Error::Cpio(e) => write!(f, "initramfs cpio archive: {e}"),
            Error::Io { what, path, error } => write!(f, "{what} {}: {error}", path.display()),
        }
    }
}

impl std::error::Error for Error {}

/// Prints a progress line on stderr.
pub(crate) fn progress(msg: &str) {
    eprintln!("appvm-images: {msg}");
}

/// A number unique within this process (for temporary file names).
pub(crate) fn unique() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |error| Error::Io { what, path, error }
}

/// Writes `data` to `path` through a temporary file and a rename, so readers
/// never see a partial file.
fn write_atomic(path: &Path, data: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension(format!("tmp-{}-{}", std::process::id(), unique()));
    std::fs::write(&tmp, data).map_err(io_err("cannot write", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err("cannot rename to", path))
}

/// `<workspace>/target/appvm-cache`, the cache the CLI and the tests share.
pub fn default_cache_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .join("target/appvm-cache")
}

/// Builds the default images (the interactive shell) in `cache_dir`.
pub fn build(cache_dir: &Path) -> Result<AppvmImages, Error> {
    build_with(cache_dir, &Options::default())
}

/// Builds the images `options` describe in `cache_dir`.
pub fn build_with(cache_dir: &Path, options: &Options) -> Result<AppvmImages, Error> {
    progress(&format!(
        "resolving {} and {} with apt-cache",
        options.kernel_meta_package, options.busybox_package
    ));
    let kernel_pkg = apt::resolve_kernel(&options.kernel_meta_package)?;
    let busybox_pkg = apt::resolve(&options.busybox_package)?;

    let kernel = extract_cached(cache_dir, &kernel_pkg, deb::Wanted::Prefix("boot/vmlinuz-"))?;
    let kernel_version = kernel
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .unwrap_or_default()
        .to_string();
    let kernel_bytes = std::fs::read(&kernel).map_err(io_err("cannot read", &kernel))?;
    check_bzimage(&kernel_bytes).map_err(|why| Error::NotAKernel {
        file: kernel.clone(),
        why,
    })?;

    let busybox = extract_cached(cache_dir, &busybox_pkg, deb::Wanted::Exact("bin/busybox"))?;
    let busybox_bytes = std::fs::read(&busybox).map_err(io_err("cannot read", &busybox))?;
    let archive = cpio::write(&initramfs_entries(
        busybox_bytes,
        &init_script(&options.init),
    ))
    .map_err(Error::Cpio)?;
    let hash = apt::sha256(&archive);
    let dir = cache_dir.join("initramfs");
    std::fs::create_dir_all(&dir).map_err(io_err("cannot create", &dir))?;
    let initramfs = dir.join(format!("initramfs-{}.cpio.gz", &hash[..16]));
    if initramfs.is_file() {
        progress(&format!("cached {}", initramfs.display()));
    } else {
        let gz = gzip(&archive).map_err(io_err("cannot compress", &initramfs))?;
        write_atomic(&initramfs, &gz)?;
        progress(&format!(
            "wrote {} ({} bytes of cpio, {} gzipped)",
            initramfs.display(),
            archive.len(),
            gz.len()
        ));
    }
    Ok(AppvmImages {
        kernel,
        initramfs,
        kernel_version,
        kernel_package: kernel_pkg.spec(),
        busybox_package: busybox_pkg.spec(),
    })
}

/// The file `wanted` from `pkg`, extracted once into
/// `<cache>/extracted/NAME_VERSION_ARCH/`. A `.stamp` file records the SHA256
/// of the `.deb` it came from and of the file itself; when both still match,
/// neither download nor extraction is repeated.
fn extract_cached(cache: &Path, pkg: &apt::Package, wanted: deb::Wanted) -> Result<PathBuf, Error> {
    let dir = cache.join("extracted").join(pkg.file_stem());
    let stamp = dir.join(".stamp");
    if let Ok(text) = std::fs::read_to_string(&stamp) {
        let words: Vec<&str> = text.split_whitespace().collect();
        if let [deb_sha, file_sha, name] = words[..] {
            let file = dir.join(name);
            if pkg.sha256.iter().any(|s| s == deb_sha)
                && !name.contains('/')
                && std::fs::read(&file).is_ok_and(|d| apt::sha256(&d) == file_sha)
            {
                progress(&format!("cached {} from {}", file.display(), pkg.spec()));
                return Ok(file);
            }
        }
    }
    let deb_path = apt::download(pkg, &cache.join("debs"))?;
    let bytes = std::fs::read(&deb_path).map_err(io_err("cannot read", &deb_path))?;
    // Check the bytes actually parsed, not only the file as it was hashed.
    let deb_sha = apt::sha256(&bytes);
    if !pkg.sha256.contains(&deb_sha) {
        return Err(Error::Checksum {
            file: deb_path,
            package: pkg.spec(),
            expected: pkg.sha256.clone(),
            actual: deb_sha,
        });
    }
    progress(&format!("extracting {wanted} from {}", deb_path.display()));
    let mut got = deb::extract(&bytes, &[wanted]).map_err(|error| Error::Deb {
        file: deb_path.clone(),
        error,
    })?;
    let file = got.pop().ok_or_else(|| Error::Deb {
        file: deb_path.clone(),
        error: deb::DebError::Missing(wanted.to_string()),
    })?;
    let name = file
        .path
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("file")
        .to_string();
    std::fs::create_dir_all(&dir).map_err(io_err("cannot create", &dir))?;
    let out = dir.join(&name);
    write_atomic(&out, &file.data)?;
    write_atomic(
        &stamp,
        format!("{deb_sha} {} {name}\n", apt::sha256(&file.data)).as_bytes(),
    )?;
    Ok(out)
}

/// Checks the Linux x86 boot protocol header of a bzImage: the `HdrS`
/// signature at 0x202 and protocol version 2.06 or later.
pub fn check_bzimage(image: &[u8]) -> Result<(), String> {
    let magic = image
        .get(0x202..0x206)
        .ok_or("shorter than the setup header")?;
    if magic != b"HdrS" {
        return Err("no `HdrS` setup-header signature at 0x202".into());
    }
    let version = image
        .get(0x206..0x208)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .ok_or("shorter than the setup header")?;
    if version < 0x0206 {
        return Err(format!("boot protocol {version:#x} is older than 2.06"));
    }
    Ok(())
}

/// The `/init` script for `action`.
pub fn init_script(action: &InitAction) -> String {
    let mut s = format!(
        "#!/bin/sh\n\
         # cloister AppVM init (built by appvm-images)\n\
         export PATH=/bin:/sbin:/usr/bin:/usr/sbin\n\
         mount -t proc proc /proc\n\
         mount -t sysfs sysfs /sys\n\
         mount -t devtmpfs devtmpfs /dev\n\
         mkdir -p /dev/pts && mount -t devpts devpts /dev/pts\n\
         /bin/busybox --install -s /bin\n\
         echo '{INIT_MARKER}'\n"
    );
    match action {
        InitAction::Shell => s.push_str(
            "while true; do\n\
             \x20   setsid cttyhack sh\n\
             \x20   echo 'appvm: shell exited, powering off'\n\
             \x20   poweroff -f\n\
             done\n",
        ),
        InitAction::RunThenPowerOff(commands) => {
            s.push_str(commands);
            if !commands.is_empty() && !commands.ends_with('\n') {
                s.push('\n');
            }
            // Setting a terminal attribute waits for the console to drain
            // (TCSADRAIN), so no output is lost to the power-off.
            s.push_str(
                "stty -F /dev/console echo 2>/dev/null\n\
                 poweroff -f\n\
                 while true; do sleep 1; done\n",
            );
        }
    }
    s
}

/// The initramfs: the directory tree, `/dev/console` (char 5:1, so the
/// kernel can open the console before devtmpfs is mounted), busybox with
/// the [`APPLETS`] links, and `/init` running `init`.
pub fn initramfs_entries(busybox: Vec<u8>, init: &str) -> Vec<cpio::Entry> {
    use cpio::Entry;
    let mut e = vec![];
    for dir in [
        "bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "mnt", "dev", "proc", "sys",
        "run",
    ] {
        e.push(Entry::dir(dir, 0o755));
    }
    e.push(Entry::dir("tmp", 0o1777));
    e.push(Entry::char_dev("dev/console", 0o600, 5, 1));
    e.push(Entry::file("bin/busybox", 0o755, busybox));
    for applet in APPLETS {
        e.push(Entry::symlink(&format!("bin/{applet}"), "busybox"));
    }
    e.push(Entry::file("init", 0o755, init.as_bytes().to_vec()));
    e
}

/// gzip at the best compression, with no name and mtime 0 (reproducible).
pub fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut enc = flate2::GzBuilder::new().mtime(0).write(
        Vec::with_capacity(data.len() / 2),
        flate2::Compression::best(),
    );
    enc.write_all(data)?;
    enc.finish()
}

/// Reads a gzip-compressed newc initramfs back into its entries.
pub fn read_initramfs(path: &Path) -> Result<Vec<cpio::Entry>, Error> {
    use std::io::Read;
    let gz = std::fs::read(path).map_err(io_err("cannot read", path))?;
    let mut archive = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut archive)
        .map_err(io_err("cannot decompress", path))?;
    cpio::read(&archive).map_err(Error::Cpio)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn initramfs_has_what_the_kernel_and_init_need() {
        let init = init_script(&InitAction::Shell);
        let entries = initramfs_entries(b"BB".to_vec(), &init);
        let bytes = cpio::write(&entries).unwrap();
        let back = cpio::read(&bytes).unwrap();
        let find = |n: &str| back.iter().find(|e| e.name == n).unwrap();
        assert_eq!(
            find("dev/console").kind,
            cpio::Kind::CharDev { major: 5, minor: 1 }
        );
        for d in ["proc", "sys", "dev", "tmp"] {
            assert_eq!(find(d).kind, cpio::Kind::Dir);
        }
        assert_eq!(find("tmp").perm, 0o1777);
        assert_eq!(find("bin/sh").kind, cpio::Kind::Symlink("busybox".into()));
        assert_eq!(
            find("bin/cttyhack").kind,
            cpio::Kind::Symlink("busybox".into())
        );
        assert_eq!(find("init").perm, 0o755);
        // Every parent comes before its children.
        for (i, e) in back.iter().enumerate() {
            if let Some((parent, _)) = e.name.rsplit_once('/') {
                assert!(back[..i].iter().any(|p| p.name == parent), "{}", e.name);
            }
        }
    }

    #[test]
    fn init_scripts() {
        let shell = init_script(&InitAction::Shell);
        assert!(shell.starts_with("#!/bin/sh\n"));
        for needle in [
            "mount -t proc proc /proc",
            "mount -t sysfs sysfs /sys",
            "mount -t devtmpfs devtmpfs /dev",
            "setsid cttyhack sh",
            INIT_MARKER,
        ] {
            assert!(shell.contains(needle), "{needle}");
        }
        let marker = shell.find(INIT_MARKER).unwrap();
        assert!(shell.find("devtmpfs").unwrap() < marker);
        let off = init_script(&InitAction::RunThenPowerOff(String::new()));
        assert!(off[off.find(INIT_MARKER).unwrap()..].contains("\npoweroff -f\n"));
        assert!(off.contains("stty -F /dev/console echo 2>/dev/null\npoweroff -f\n"));
        assert!(!off.contains("cttyhack"));
        let cmds = init_script(&InitAction::RunThenPowerOff("uname -r".into()));
        assert!(cmds.contains("uname -r\nstty"));
    }

    #[test]
    fn gzip_round_trips_reproducibly() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 97) as u8).collect();
        let gz = gzip(&data).unwrap();
        assert_eq!(gz, gzip(&data).unwrap());
        assert_eq!(&gz[..2], &[0x1f, 0x8b]);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }

    #[test]
    fn bzimage_header_checks() {
        let mut img = vec![0u8; 0x300];
        assert!(check_bzimage(&img).is_err());
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
        assert!(check_bzimage(&img).is_ok());
        img[0x206..0x208].copy_from_slice(&0x0204u16.to_le_bytes());
        assert!(check_bzimage(&img).unwrap_err().contains("older"));
        assert!(check_bzimage(&img[..0x204]).is_err());
    }

    #[test]
    fn errors_say_what_to_do() {
        let e = Error::Apt {
            command: "apt-get download x=1".into(),
            detail: "E: Unable to locate package x".into(),
            hint: "run `apt-get update` first",
        };
        assert!(e.to_string().contains("apt-get update"));
    }
}
