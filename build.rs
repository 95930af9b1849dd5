//! Builds every guest, generates the default system's table and, when an seL4
//! install is present, the root task, so `cargo build` proves the whole
//! system compiles. Without seL4 only the guests are built (with a warning).
//!
//! Exports to the package (`env!`/`option_env!`):
//! * `CLOISTER_GUEST_<NAME>`: each guest's ELF (`-` in names becomes `_`);
//! * `CLOISTER_DEFAULT_SYSTEM_RS`: the default system's generated table;
//! * `CLOISTER_DEFAULT_VMM`: the root task for it, when it was built.
//!
//! `CLOISTER_SKIP_VMM=1` skips the root task even with seL4 installed.
//! The build logic is shared with the library (src/build.rs, src/system.rs).

#[allow(dead_code)]
#[path = "src/system.rs"]
mod system;

#[allow(dead_code)]
#[path = "src/build.rs"]
mod build;

use std::path::PathBuf;

fn fail(msg: &dyn std::fmt::Display) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1);
}

fn main() {
    for path in ["unikernels", "vmm", "src/default-system.toml"] {
        println!("cargo:rerun-if-changed={path}");
    }
    println!("cargo:rerun-if-env-changed=SEL4_PREFIX");
    println!("cargo:rerun-if-env-changed=CLOISTER_SKIP_VMM");

    let builder = build::Builder::from_env();
    let guests = builder
        .build_guests(system::GUESTS)
        .unwrap_or_else(|e| fail(&e));
    for (name, elf) in &guests {
        let var = name.to_ascii_uppercase().replace('-', "_");
        println!("cargo:rustc-env=CLOISTER_GUEST_{var}={}", elf.display());
    }

    let mut system = system::System::load(&builder.default_system()).unwrap_or_else(|e| fail(&e));
    // AppVM images come from Debian packages: `cargo run` fetches them at run
    // time. Here the VMs the builder can build itself prove the VMM compiles.
    system.vms.retain(|vm| vm.image != system::Image::Appvm);
    let table = build::system_rs(&system, &guests).unwrap_or_else(|e| fail(&e));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let table_path = out_dir.join("default-system.rs");
    std::fs::write(&table_path, table).unwrap_or_else(|e| fail(&e));
    println!(
        "cargo:rustc-env=CLOISTER_DEFAULT_SYSTEM_RS={}",
        table_path.display()
    );

    if std::env::var_os("CLOISTER_SKIP_VMM").is_some_and(|v| v == "1") {
        println!("cargo:warning=CLOISTER_SKIP_VMM=1: the root task (full system) is not built");
        return;
    }
    match builder.sel4_kernel() {
        Ok(_) => {
            let vmm = builder
                .build_vmm(&system, &guests)
                .unwrap_or_else(|e| fail(&e));
            println!(
                "cargo:rustc-env=CLOISTER_DEFAULT_VMM={}",
                vmm.binary.display()
            );
        }
        Err(e) => {
            println!("cargo:warning=the full system (seL4 root task) is skipped: {e}");
        }
    }
}
