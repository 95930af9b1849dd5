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
//! Devices (the unikernel calls these when it needs them; none runs at boot):
//! * [`pci`]: enumeration through ECAM (from the ACPI MCFG, [`acpi`]) or
//!   configuration mechanism #1, validated BARs, capabilities, MSI;
//! * [`mmio`]: uncached mappings of device memory, refused over RAM;
//! * [`irq`]: local APIC + IOAPIC routing and MSI vectors, and [`irq::wait`]
//!   (halt until an interrupt or a deadline), with polling as the fallback;
//! * [`time`]: a monotonic clock from the TSC (CPUID 0x15/0x16, the hypervisor
//!   leaf, or PIT calibration), and the raw TSC ([`time::ticks`]);
//! * [`dma`]: page-aligned device-visible memory with known addresses;
//! * [`virtio`]: `virtio-drivers` with the runtime's HAL and PCI transport;
//! * [`footprint`]: the guest RAM the unikernel uses;
//! * [`stats`]: this vCPU's VM exits as cloister counts them.
//!
//! On other targets only the hardware-independent logic ([`start_info`],
//! [`heap`], [`acpi`], [`pci`] without `hw`, [`mmio::check_range`], [`time`]
//! and [`stats`] arithmetic, [`apic`] encodings, [`mod@exit`] constants) is
//! built, so it can be unit-tested on the host.

#![cfg_attr(not(test), no_std)]
#![warn(missing_docs)]

#[cfg(target_os = "none")]
extern crate alloc;

pub mod acpi;
pub mod apic;
#[cfg(target_os = "none")]
mod boot;
#[cfg(target_os = "none")]
pub mod dma;
pub mod exit;
pub mod heap;
#[cfg(target_os = "none")]
pub mod interrupts;
#[cfg(target_os = "none")]
pub mod irq;
pub mod mmio;
#[cfg(target_os = "none")]
pub mod msr;
pub mod pci;
#[cfg(target_os = "none")]
pub mod serial;
pub mod start_info;
pub mod stats;
pub mod time;
#[cfg(target_os = "none")]
pub mod virtio;
pub mod xen;

#[cfg(target_os = "none")]
pub use boot::{heap_high_water, heap_region, image_range, stack_high_water};
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

/// Stack size `entry!` gives a guest that does not choose one.
pub const DEFAULT_STACK_SIZE: usize = 256 * 1024;

/// Defines the unikernel's entry point and its stack: `entry!(path)` or
/// `entry!(path, stack = bytes)`, where `path` is a `fn() -> u8` and `bytes` a
/// constant multiple of 4096 (default [`DEFAULT_STACK_SIZE`]). The runtime
/// runs it on that stack after boot and exits the VM with the returned code
/// (see [`mod@exit`]). The stack lives in the image's `.bss`, below it an
/// unmapped guard page; [`footprint`] reports how deep it got.
///
/// The link-level contract is a Rust-ABI function named `cloister_unikernel_main`
/// taking nothing and returning `u8`, and the symbols `rt_boot_stack_guard` and
/// `rt_boot_stack_top`; a guest that does not use this macro fails to link.
#[macro_export]
macro_rules! entry {
    ($path:path) => {
        $crate::entry!($path, stack = $crate::DEFAULT_STACK_SIZE);
    };
    ($path:path, stack = $size:expr) => {
        #[export_name = "cloister_unikernel_main"]
        #[doc(hidden)]
        pub extern "Rust" fn __cloister_unikernel_main() -> u8 {
            let main: fn() -> u8 = $path;
            main()
        }

        const _: () = assert!(
            ($size) % 4096 == 0 && ($size) >= 16384,
            "the stack must be a multiple of 4096 bytes, at least 16 KiB"
        );

        ::core::arch::global_asm!(
            ".pushsection .bss.rt_stack, \"aw\", @nobits",
            ".balign 4096",
            ".global rt_boot_stack_guard",
            "rt_boot_stack_guard:",
            ".skip 4096",
            ".skip {size}",
            ".global rt_boot_stack_top",
            "rt_boot_stack_top:",
            ".popsection",
            size = const $size,
        );
    };
}

/// The guest RAM a unikernel uses, for its footprint report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// RAM the VMM gave (bytes of RAM in the memory map).
    pub ram: u64,
    /// The loaded image: code, data, `.bss` (boot stack and page tables included).
    pub image: u64,
    /// Boot stack size (part of `image`).
    pub stack: u64,
    /// Deepest boot stack use.
    pub stack_used: u64,
    /// Heap region size.
    pub heap: u64,
    /// Heap high-water mark (everything allocated is below it).
    pub heap_used: u64,
    /// Peak DMA memory (allocated from the heap, so part of `heap_used`).
    pub dma: u64,
}

impl Footprint {
    /// RAM the unikernel has touched: the image plus the heap high-water mark.
    pub fn used(&self) -> u64 {
        self.image.saturating_add(self.heap_used)
    }
}

impl core::fmt::Display for Footprint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let k = |b: u64| b.div_ceil(1024);
        write!(
            f,
            "used {} KiB of {} KiB RAM: image {} KiB (stack {} KiB, deepest {} KiB), heap \
             high-water {} KiB of {} KiB (DMA {} KiB of it)",
            k(self.used()),
            k(self.ram),
            k(self.image),
            k(self.stack),
            k(self.stack_used),
            k(self.heap_used),
            k(self.heap),
            k(self.dma)
        )
    }
}

/// The footprint now.
#[cfg(target_os = "none")]
pub fn footprint() -> Footprint {
    let (start, end) = image_range();
    let (stack, stack_used) = stack_high_water();
    Footprint {
        ram: boot_info().map_or(0, BootInfo::ram_bytes),
        image: end.saturating_sub(start),
        stack,
        stack_used,
        heap: heap_region().1 as u64,
        heap_used: heap_high_water() as u64,
        dma: dma::stats().peak as u64,
    }
}
