//! Publishes the path of the shared unikernel linker script to dependent packages.
//!
//! A guest's build script reads it from `DEP_CLOISTER_RT_LINKER_SCRIPT` and passes
//! `-T<path>` to the linker for its binary (see `unikernels/hello/build.rs`).

use std::path::PathBuf;

fn main() {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let script = dir.unwrap_or_default().join("link.ld");
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:linker_script={}", script.display());
}
