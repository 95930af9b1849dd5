//! cloister's VM exit handling, independent of seL4.
//!
//! The seL4 root task runs each vCPU in a loop around `seL4_VMEnter`; on every
//! exit it hands the decoded [`exit::Exit`] and the guest registers to this
//! crate, which decides what happens: which VMCS fields to write, what to put
//! in registers, whether to inject a fault, or to stop the VM. Everything here
//! is plain logic with host tests; the glue that talks to seL4 stays thin.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod exit;
pub mod mode;
pub mod stats;
pub mod untyped;
pub mod vm;
pub mod vmx;
pub mod xen;
