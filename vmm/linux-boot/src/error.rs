//! Why a kernel could not be loaded.

use core::fmt;

use pvh_loader::{MemoryError, Size};

/// Everything that can stop [`parse`](crate::parse), [`plan`](crate::plan) or
/// [`load`](crate::load).
///
/// Each variant names one defect; its `Display` says what is wrong in terms a
/// person configuring a VM can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootError {
    /// The file ends before the end of the protocol 2.12 setup header.
    TooShort {
        /// File length.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// `boot_flag` (offset 0x1fe) is not 0xAA55.
    BadBootFlag(u16),
    /// `header` (offset 0x202) is not "HdrS".
    BadHeaderMagic(u32),
    /// The boot protocol is older than 2.12 (no 64-bit entry description).
    ProtocolTooOld(u16),
    /// The jump at 0x200 says the setup header ends before the 2.12 fields do.
    HeaderTooShort {
        /// `0x202 + byte at 0x201`.
        header_end: usize,
    },
    /// The file ends inside the real-mode setup code (`(setup_sects + 1) * 512` bytes).
    SetupTruncated {
        /// Length of the setup code the header announces.
        setup_len: usize,
        /// File length.
        len: usize,
    },
    /// `loadflags` lacks `LOADED_HIGH`: a zImage, not a bzImage.
    NotLoadedHigh {
        /// `loadflags` found.
        loadflags: u8,
    },
    /// `xloadflags` lacks `XLF_KERNEL_64`: no 64-bit entry point.
    No64BitEntry {
        /// `xloadflags` found.
        xloadflags: u16,
    },
    /// `syssize` is 0.
    EmptyKernel,
    /// The file ends before the `syssize` bytes of protected-mode kernel.
    KernelTruncated {
        /// `syssize * 16`.
        syssize_bytes: u64,
        /// Bytes after the setup code.
        available: u64,
    },
    /// The protected-mode kernel is too short to hold the 64-bit entry at offset 0x200.
    KernelTooSmallForEntry {
        /// Bytes after the setup code.
        kernel_len: usize,
    },
    /// `init_size` is smaller than the protected-mode kernel itself.
    KernelLargerThanInitSize {
        /// Bytes after the setup code.
        kernel_len: usize,
        /// `init_size`.
        init_size: u32,
    },
    /// A relocatable kernel's `kernel_alignment` is not a power of two.
    BadKernelAlignment(u32),
    /// Guest RAM does not even hold the low boot data.
    RamTooSmall {
        /// Guest RAM size.
        ram: u64,
        /// Bytes needed.
        need: u64,
    },
    /// The command line contains a NUL byte.
    CmdlineContainsNul {
        /// Byte offset of the NUL.
        at: usize,
    },
    /// The command line is longer than the kernel (`cmdline_size`) or the loader accepts.
    CmdlineTooLong {
        /// Its length without NUL.
        len: usize,
        /// The largest length accepted.
        max: usize,
    },
    /// More memory map entries than `boot_params` holds (128).
    TooManyMemmapEntries(usize),
    /// A memory map entry is empty or wraps around the address space.
    BadMemmapEntry {
        /// Entry index.
        index: usize,
        /// Its base.
        addr: u64,
        /// Its size.
        size: u64,
    },
    /// A RAM entry of the memory map lies (partly) outside guest RAM.
    MemmapRamOutsideGuest {
        /// Entry index.
        index: usize,
        /// Its base.
        addr: u64,
        /// Its size.
        size: u64,
        /// Guest RAM size.
        ram: u64,
    },
    /// Two memory map entries overlap.
    MemmapOverlap {
        /// Lower entry index.
        first: usize,
        /// Higher entry index.
        second: usize,
    },
    /// No RAM range of the memory map holds the kernel's `init_size` bytes at
    /// an address it accepts (at or above 1 MiB, below 4 GiB).
    KernelDoesNotFit {
        /// Bytes needed (`init_size`).
        init_size: u32,
        /// Preferred (non-relocatable: required) load address.
        pref_address: u64,
        /// Whether the kernel may be placed elsewhere.
        relocatable: bool,
    },
    /// No RAM range holds the initrd below the kernel's `initrd_addr_max`
    /// without overlapping the kernel.
    InitrdDoesNotFit {
        /// Initrd size.
        size: u64,
        /// Highest byte address allowed.
        max_addr: u64,
    },
    /// The ACPI RSDP address given for `boot_params` lies outside guest RAM.
    RsdpOutsideRam(u64),
    /// Guest memory refused a write (after validation succeeded).
    Memory(MemoryError),
}

impl From<MemoryError> for BootError {
    fn from(e: MemoryError) -> Self {
        BootError::Memory(e)
    }
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use BootError::*;
        match *self {
            TooShort { len, need } => write!(
                f,
                "kernel image is {len} bytes, too short for a bzImage setup header (need at least {need})"
            ),
            BadBootFlag(v) => write!(
                f,
                "not a Linux bzImage: boot_flag at 0x1fe is {v:#06x}, expected 0xaa55"
            ),
            BadHeaderMagic(v) => write!(
                f,
                "not a Linux bzImage: setup header magic at 0x202 is {v:#010x}, expected \"HdrS\""
            ),
            ProtocolTooOld(v) => write!(
                f,
                "kernel boot protocol {}.{:02} is too old: 2.12 or later is needed for the 64-bit entry",
                v >> 8,
                v & 0xff
            ),
            HeaderTooShort { header_end } => write!(
                f,
                "setup header ends at {header_end:#x}, before the protocol 2.12 fields (end 0x268)"
            ),
            SetupTruncated { setup_len, len } => write!(
                f,
                "kernel image is truncated: the setup code needs {setup_len} bytes but the file has {len}"
            ),
            NotLoadedHigh { loadflags } => write!(
                f,
                "kernel is not a bzImage: loadflags {loadflags:#04x} lack LOADED_HIGH"
            ),
            No64BitEntry { xloadflags } => write!(
                f,
                "kernel has no 64-bit entry point: xloadflags {xloadflags:#06x} lack XLF_KERNEL_64"
            ),
            EmptyKernel => write!(f, "kernel image declares no protected-mode code (syssize is 0)"),
            KernelTruncated {
                syssize_bytes,
                available,
            } => write!(
                f,
                "kernel image is truncated: syssize says {} of protected-mode code, the file has {}",
                Size(syssize_bytes),
                Size(available)
            ),
            KernelTooSmallForEntry { kernel_len } => write!(
                f,
                "protected-mode kernel is {kernel_len} bytes, too short to hold the 64-bit entry at offset 0x200"
            ),
            KernelLargerThanInitSize {
                kernel_len,
                init_size,
            } => write!(
                f,
                "kernel header is inconsistent: init_size {} is smaller than the {} of protected-mode code",
                Size(u64::from(init_size)),
                Size(u64::try_from(kernel_len).unwrap_or(u64::MAX))
            ),
            BadKernelAlignment(a) => write!(
                f,
                "relocatable kernel has kernel_alignment {a:#x}, which is not a power of two"
            ),
            RamTooSmall { ram, need } => write!(
                f,
                "guest RAM of {} is too small for the boot data (need at least {})",
                Size(ram),
                Size(need)
            ),
            CmdlineContainsNul { at } => {
                write!(f, "kernel command line contains a NUL byte at offset {at}")
            }
            CmdlineTooLong { len, max } => write!(
                f,
                "kernel command line is {len} bytes, longer than the {max} the kernel accepts"
            ),
            TooManyMemmapEntries(n) => write!(
                f,
                "memory map has {n} entries, boot_params holds at most 128"
            ),
            BadMemmapEntry { index, addr, size } => write!(
                f,
                "memory map entry {index} ({addr:#x} +{size:#x}) is empty or wraps around"
            ),
            MemmapRamOutsideGuest {
                index,
                addr,
                size,
                ram,
            } => write!(
                f,
                "memory map entry {index} declares RAM at {addr:#x} +{size:#x}, outside the guest's {} of RAM",
                Size(ram)
            ),
            MemmapOverlap { first, second } => {
                write!(f, "memory map entries {first} and {second} overlap")
            }
            KernelDoesNotFit {
                init_size,
                pref_address,
                relocatable,
            } => {
                if relocatable {
                    write!(
                        f,
                        "no RAM range between 1 MiB and 4 GiB holds the kernel's {} (init_size); give the VM more RAM",
                        Size(u64::from(init_size))
                    )
                } else {
                    write!(
                        f,
                        "non-relocatable kernel needs {} of RAM at {pref_address:#x}, which the memory map does not provide",
                        Size(u64::from(init_size))
                    )
                }
            }
            InitrdDoesNotFit { size, max_addr } => write!(
                f,
                "no RAM range below {max_addr:#x} holds the {} initrd beside the kernel; give the VM more RAM or use a smaller initrd",
                Size(size)
            ),
            RsdpOutsideRam(a) => write!(f, "ACPI RSDP address {a:#x} is outside guest RAM"),
            Memory(e) => write!(f, "{e}"),
        }
    }
}

impl From<pvh_loader::MemmapError> for BootError {
    fn from(e: pvh_loader::MemmapError) -> Self {
        match e {
            pvh_loader::MemmapError::TooMany(n) => BootError::TooManyMemmapEntries(n),
            pvh_loader::MemmapError::BadEntry { index, addr, size } => {
                BootError::BadMemmapEntry { index, addr, size }
            }
            pvh_loader::MemmapError::RamOutsideGuest {
                index,
                addr,
                size,
                ram,
            } => BootError::MemmapRamOutsideGuest {
                index,
                addr,
                size,
                ram,
            },
        }
    }
}
