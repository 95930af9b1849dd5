//! `appvm-images [--cache DIR] [--power-off] OUT_DIR`: builds the AppVM
//! kernel and initramfs and copies them to `OUT_DIR/vmlinuz` and
//! `OUT_DIR/initrd.gz`. Progress goes to stderr; stdout gets one
//! `key: value` line per result.

use appvm_images::{build_with, default_cache_dir, InitAction, Options};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: appvm-images [--cache DIR] [--power-off] OUT_DIR

Builds the AppVM kernel (Debian's linux-image-amd64 dependency) and a busybox
initramfs from Debian packages fetched with apt-get, checksummed and cached
(default cache: <workspace>/target/appvm-cache), and copies them to
OUT_DIR/vmlinuz and OUT_DIR/initrd.gz.

  --cache DIR   cache directory
  --power-off   /init powers off right after its marker line instead of
                starting a shell (for timing the boot)";

fn main() -> ExitCode {
    let mut cache = default_cache_dir();
    let mut out: Option<PathBuf> = None;
    let mut options = Options::default();
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("-h" | "--help") => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            Some("--cache") => match args.next() {
                Some(dir) => cache = dir.into(),
                None => return usage("--cache needs a directory"),
            },
            Some("--power-off") => options.init = InitAction::RunThenPowerOff(String::new()),
            Some(a) if a.starts_with('-') => return usage(&format!("unknown option {a}")),
            _ if out.is_none() => out = Some(arg.into()),
            _ => return usage("only one OUT_DIR"),
        }
    }
    let Some(out) = out else {
        return usage("missing OUT_DIR");
    };
    match run(&cache, &out, &options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("appvm-images: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("appvm-images: {msg}\n\n{USAGE}");
    ExitCode::from(2)
}

fn run(
    cache: &std::path::Path,
    out: &std::path::Path,
    options: &Options,
) -> Result<(), Box<dyn std::error::Error>> {
    let images = build_with(cache, options)?;
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let kernel = out.join("vmlinuz");
    let initrd = out.join("initrd.gz");
    for (from, to) in [(&images.kernel, &kernel), (&images.initramfs, &initrd)] {
        std::fs::copy(from, to)
            .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))?;
    }
    println!("kernel: {}", kernel.display());
    println!("initramfs: {}", initrd.display());
    println!("kernel_version: {}", images.kernel_version);
    println!("kernel_package: {}", images.kernel_package);
    println!("busybox_package: {}", images.busybox_package);
    Ok(())
}
