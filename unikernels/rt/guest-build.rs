//! The build script of every unikernel guest (each guest's Cargo.toml names
//! this file as `build`). Links the unikernel binary with cloister-rt's linker
//! script when building for `x86_64-unknown-none`, as a non-PIE static ELF.
//! Host builds are left alone.

fn main() {
    println!("cargo:rerun-if-changed=../rt/guest-build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    match std::env::var("DEP_CLOISTER_RT_LINKER_SCRIPT") {
        Ok(script) => {
            println!("cargo:rerun-if-changed={script}");
            println!("cargo:rustc-link-arg-bins=-T{script}");
            println!("cargo:rustc-link-arg-bins=--no-pie");
        }
        Err(_) => panic!("cloister-rt did not publish DEP_CLOISTER_RT_LINKER_SCRIPT"),
    }
}
