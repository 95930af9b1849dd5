//! The build script of every unikernel guest (each guest's Cargo.toml names
//! this file as `build`). Links the unikernel binary with cloister-rt's linker
//! script when building for `x86_64-unknown-none`, as a non-PIE static ELF.
//! Host builds are left alone.

fn main() {
    // This file sits next to the linker script; guests live at different
    // depths, so name it by that absolute path.
    let script = std::env::var("DEP_CLOISTER_RT_LINKER_SCRIPT");
    if let Ok(s) = &script {
        let me = std::path::Path::new(s).with_file_name("guest-build.rs");
        println!("cargo:rerun-if-changed={}", me.display());
    }
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    match script {
        Ok(script) => {
            println!("cargo:rerun-if-changed={script}");
            println!("cargo:rustc-link-arg-bins=-T{script}");
            println!("cargo:rustc-link-arg-bins=--no-pie");
        }
        Err(_) => panic!("cloister-rt did not publish DEP_CLOISTER_RT_LINKER_SCRIPT"),
    }
}
