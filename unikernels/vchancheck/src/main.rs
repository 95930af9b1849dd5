//! `vchancheck`: the vchan end-to-end check, in the role its command line
//! names (`role=server|client|intruder peer=<domid>`); the flow and every
//! line it prints are described in the library (`vchancheck::`).
//!
//! Each role prints `vchancheck: <role>: ok` and exits 0 when everything
//! went as expected; otherwise `vchancheck: <role>: FAILED: <why>` and exit
//! 1. Built for the host, it only says what it is.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod guest;

#[cfg(not(target_os = "none"))]
fn main() {
    println!("vchancheck is a cloister unikernel: build it with --target x86_64-unknown-none");
}
