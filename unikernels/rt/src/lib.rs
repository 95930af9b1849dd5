//! `cloister-rt` (crate `rt`): the runtime every cloister service unikernel shares.
//!
//! A unikernel is a `no_std`, `no_main` binary for `x86_64-unknown-none` that links
//! this crate and names its entry point with [`entry!`]:
//!
//! ```text
//! #![no_std]
//! #![no_main]
//! rt::entry!(main);
//! fn main() -> u8 {
//!     rt::println!("cmdline: {}", rt::cmdline());
//!     0 // exit code, see `exit`
//! }
//! ```
//!
//! Its build script links it with this crate's `link.ld` (path in
//! `DEP_CLOISTER_RT_LINKER_SCRIPT`) and `--no-pie`; see `unikernels/hello/build.rs`.
//! The result is a static ELF loaded at 1 MiB that boots through the Xen PVH entry
//! under QEMU (`-kernel`) and under cloister.
//!
//! At boot the runtime:
//! 1. enters at `pvh_start32` (32-bit, paging off), zeroes `.bss`, identity-maps the
//!    first [`IDENTITY_MAP_END`] bytes with 2 MiB pages and switches to long mode;
//! 2. initialises COM1 (115200 8N1) as the console (`print!`, `println!`);
//! 3. loads a GDT/TSS and an IDT whose exception handlers report and exit;
//! 4. copies the `hvm_start_info` ([`start_info`]) into [`boot_info`];
//! 5. puts a heap ([`heap`]) on the largest RAM range above the image;
//! 6. calls the guest's entry and passes its return value to `exit::exit`.
//!
//! Panics and unexpected CPU exceptions print a line starting `rt: ` and exit
//! with [`exit::PANIC`] or [`exit::EXCEPTION`].
//!
//! On other targets only the hardware-independent modules ([`start_info`],
//! [`heap`], [`mod@exit`] constants) are built, so they can be unit-tested on the host.

#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

#[cfg(target_os = "none")]
mod boot;
pub mod exit;
pub mod heap;
#[cfg(target_os = "none")]
pub mod interrupts;
#[cfg(target_os = "none")]
pub mod msr;
#[cfg(target_os = "none")]
pub mod serial;
pub mod start_info;

#[cfg(target_os = "none")]
pub use boot::heap_region;
#[cfg(target_os = "none")]
pub use exit::exit;

use start_info::BootInfo;

/// The boot page tables identity-map guest-physical `[0, IDENTITY_MAP_END)`.
pub const IDENTITY_MAP_END: u64 = 8 << 30;

/// `[start, end)` of the 32-bit MMIO window, mapped uncached (LAPIC, IOAPIC, HPET,
/// PCI BARs under QEMU and cloister). The start-info parser never reads from it.
pub const MMIO_WINDOW: (u64, u64) = (0xc000_0000, 0x1_0000_0000);

/// The copied start info, set once during boot.
static BOOT_INFO: spin::Once<BootInfo> = spin::Once::new();

/// What the VMM passed at boot; `None` before the runtime has parsed it (and on
/// hosted targets).
pub fn boot_info() -> Option<&'static BootInfo> {
    BOOT_INFO.get()
}

/// The guest's command line: at most 4095 bytes, empty if absent or not UTF-8.
pub fn cmdline() -> &'static str {
    boot_info().map_or("", BootInfo::cmdline)
}

/// Defines the unikernel's entry point: `entry!(path)` where `path` is a
/// `fn() -> u8`. The runtime calls it after boot and exits the VM with the
/// returned code (see [`mod@exit`]).
///
/// The link-level contract is a Rust-ABI function named `cloister_unikernel_main`
/// taking nothing and returning `u8`; a guest that does not use this macro fails to
/// link.
#[macro_export]
macro_rules! entry {
    ($path:path) => {
        #[export_name = "cloister_unikernel_main"]
        #[doc(hidden)]
        pub extern "Rust" fn __cloister_unikernel_main() -> u8 {
            let main: fn() -> u8 = $path;
            main()
        }
    };
}
