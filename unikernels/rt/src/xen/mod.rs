//! Xen guest support: what a cloister unikernel needs to talk to its peers
//! through the Xen HVM ABI the VMM implements (`vmm/xen-abi`): hypercalls,
//! event channels, grant tables and the xenstore.
//!
//! # The ABI, as this module uses it
//!
//! * **Detection** ([`detect`]): CPUID leaves from 0x4000_0000 in steps of
//!   0x100 up to 0x4001_0000, looking for "XenVMMXenVMM" (under cloister at
//!   0x4000_0100). Leaf base+1 gives the version, base+2 the MSR that
//!   installs the hypercall page, base+4 (ECX, if EAX bit 4) the domain id.
//! * **Hypercalls**: writing the guest-physical address of a page-aligned
//!   RAM page (here in `.bss`) to that MSR makes the hypervisor fill it with
//!   32-byte stubs (`mov eax, N; vmcall; ret`); hypercall `N` is `call
//!   page + 32 * N` with arguments in RDI, RSI, RDX, R10, R8 and the result
//!   in RAX, negative [`Errno`] on failure. Argument structs are passed by
//!   address (identity mapped, so linear = guest-physical).
//! * **Events** ([`Xen`]): `shared_info` is placed in the window below, the
//!   upcall vector [`UPCALL_VECTOR`] registered through
//!   `HVM_PARAM_CALLBACK_IRQ = 2 << 56 | vector`. The hypervisor injects it
//!   (no local APIC involved, no EOI) while `evtchn_upcall_pending` is set
//!   and interrupts are enabled — in the runtime, only while a wait halts.
//!   The handler does the 2-level scan ([`events`]) and records fired ports;
//!   the program polls them with [`Xen::take`] or blocks in
//!   [`Xen::wait_any`]. Ports are also collected without interrupts on every
//!   poll, so nothing depends on the upcall being delivered.
//! * **Grants** ([`grant`]): v1 entries in frames placed with
//!   `XENMEM_add_to_physmap` (space grant_table); peers' pages mapped with
//!   `GNTMAP_host_map` at free frames of the window.
//! * **Store** ([`store`]): the ring page at `HVM_PARAM_STORE_PFN` (RAM the
//!   VMM keeps out of the usable memory map) and the port at
//!   `HVM_PARAM_STORE_EVTCHN`.
//!
//! # The GPA window
//!
//! Pages the hypervisor provides (`shared_info`, grant-table frames, mapped
//! grants) go at guest-physical frames outside RAM, in a window that starts
//! at 2 GiB unless RAM or something else is there, and must end below the
//! 3 GiB MMIO window: `shared_info` at the base, grant frames from base +
//! 4 KiB (at most 64), mapped grants from base + 1 MiB (4096 frames). See
//! [`window`].
//!
//! The ABI's numbers and layouts are the VMM's own ([`abi`], from
//! `xen_abi`), so guest and hypervisor cannot disagree on them.
//!
//! On other targets only the logic is built ([`Errno`], [`ops`] encodings, [`events`] scanning, [`grant`] entries, [`ring`]
//! arithmetic, the [`store`] client, [`window`] planning), for host tests.

pub(crate) extern crate alloc;

mod error;
pub mod events;
pub mod grant;
pub mod ops;
mod page;
pub mod ring;
pub mod store;
pub mod window;

#[cfg(target_os = "none")]
mod hw;
#[cfg(test)]
mod sim;

pub use error::{Errno, GntStatus};
pub use grant::GrantError;
pub use ops::ChannelStatus;
pub use page::Page;
pub use store::{StoreError, StoreLink, Tx, WatchEvent, XenStore};
/// Xen's public numbers and layouts (`xen.h`, `event_channel.h`, …) as the
/// VMM implements them.
pub use xen_abi::abi;
pub use xen_abi::abi::{DomId, GrantHandle, GrantRef, Port, DOMID_SELF};
/// Xen's signature in EBX, ECX, EDX of the base leaf: "XenVMMXenVMM".
pub use xen_abi::cpuid::SIGNATURE;

#[cfg(target_os = "none")]
pub(crate) use hw::upcall;
#[cfg(target_os = "none")]
pub use hw::{detect, get, init, GrantTable, MappedPage, OwnedPage, Store, StoreRing, Xen};

use core::fmt;

/// The interrupt vector the upcall is registered on (Linux's
/// `HYPERVISOR_CALLBACK_VECTOR`); outside the device vectors of [`crate::irq`].
pub const UPCALL_VECTOR: u8 = 0xf3;

/// The first CPUID leaf looked at (Xen's first block of hypervisor leaves).
pub const CPUID_FIRST: u32 = xen_abi::cpuid::XEN_BASE;
/// The last CPUID leaf looked at (as Linux: 0x100 blocks up to here).
pub const CPUID_LAST: u32 = 0x4001_0000;

/// What CPUID says about Xen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenInfo {
    /// The base leaf (0x4000_0100 under cloister).
    pub base: u32,
    /// The MSR that installs the hypercall page.
    pub msr: u32,
    /// Version (major, minor).
    pub version: (u16, u16),
    /// This domain's id, if leaf base+4 reports it.
    pub domid: Option<DomId>,
}

/// Finds Xen's leaves with `cpuid(leaf) -> [eax, ebx, ecx, edx]`.
pub fn detect_with(mut cpuid: impl FnMut(u32) -> [u32; 4]) -> Option<XenInfo> {
    (CPUID_FIRST..=CPUID_LAST).step_by(0x100).find_map(|base| {
        let [max, b, c, d] = cpuid(base);
        if [b, c, d] != SIGNATURE || max < base + 2 || max > base + 0xff {
            return None;
        }
        let [v, ..] = cpuid(base + 1);
        let [pages, msr, ..] = cpuid(base + 2);
        if pages == 0 {
            return None;
        }
        let domid = if max >= base + 4 {
            let [flags, _, id, _] = cpuid(base + 4);
            (flags & xen_abi::cpuid::HVM_CPUID_DOMID_PRESENT != 0)
                .then(|| DomId::try_from(id).ok())
                .flatten()
        } else {
            None
        };
        Some(XenInfo {
            base,
            msr,
            version: ((v >> 16) as u16, v as u16),
            domid,
        })
    })
}

/// Why [`init`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// No Xen CPUID leaves.
    NotXen,
    /// Writing the hypercall MSR raised `#GP`.
    HypercallMsr {
        /// The MSR.
        msr: u32,
        /// The page address written.
        gpa: u64,
    },
    /// The hypercall page was not filled in (or not as Xen's).
    HypercallPage(u64),
    /// A hypercall failed.
    Hypercall {
        /// The operation.
        op: &'static str,
        /// Xen's error.
        errno: Errno,
    },
    /// No room for the GPA window below the MMIO window.
    NoWindow,
    /// The runtime has no boot information (memory map).
    NoBootInfo,
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            InitError::NotXen => f.write_str("no Xen CPUID leaves (not running on Xen's ABI)"),
            InitError::HypercallMsr { msr, gpa } => {
                write!(
                    f,
                    "writing {gpa:#x} to the hypercall MSR {msr:#x} raised #GP"
                )
            }
            InitError::HypercallPage(gpa) => {
                write!(f, "the hypercall page at {gpa:#x} was not filled in")
            }
            InitError::Hypercall { op, errno } => write!(f, "{op} failed: {errno}"),
            InitError::NoWindow => write!(
                f,
                "no room for the {} KiB Xen window between 2 GiB and {:#x}",
                window::LEN / 1024,
                window::LIMIT
            ),
            InitError::NoBootInfo => f.write_str("no boot information (memory map)"),
        }
    }
}

/// The hypercalls the runtime makes: [`init`] checks the page has their stubs.
pub const HYPERCALLS_USED: [u64; 5] = {
    use abi::hypercall::*;
    [
        MEMORY_OP,
        XEN_VERSION,
        GRANT_TABLE_OP,
        EVENT_CHANNEL_OP,
        HVM_OP,
    ]
};

/// Checks the hypercall page: stub `nr` must be `mov eax, nr` (B8 imm32)
/// followed by a `vmcall`/`vmmcall` — what Xen and cloister's VMM write.
pub fn stub_ok(page: &[u8], nr: u64) -> bool {
    let off = (nr * abi::hypercall::STUB_SIZE as u64) as usize;
    let Some(stub) = page.get(off..off + 8) else {
        return false;
    };
    let imm = u32::from_le_bytes([stub[1], stub[2], stub[3], stub[4]]);
    stub[0] == 0xb8
        && u64::from(imm) == nr
        && stub[5] == 0x0f
        && stub[6] == 0x01
        && (stub[7] == 0xc1 || stub[7] == 0xd9)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use xen_abi::cpuid::XenCpuid;

    #[test]
    fn detects_the_vmm_leaves() {
        let leaves = XenCpuid::default();
        let info = detect_with(|leaf| {
            if leaf == 0x4000_0000 {
                // cloister's own leaf comes first.
                return [0x4000_0010, 0x6f6c_6363, 0x7473_6965, 0x7265_2020];
            }
            leaves.leaf(leaf, 7, 0).unwrap_or([0; 4])
        })
        .unwrap();
        assert_eq!(
            info,
            XenInfo {
                base: 0x4000_0100,
                msr: 0x4000_0200,
                version: (4, 19),
                domid: Some(7),
            }
        );
    }

    #[test]
    fn no_xen_no_info() {
        assert_eq!(detect_with(|_| [0; 4]), None);
        // QEMU TCG's own signature.
        assert_eq!(
            detect_with(|l| if l == 0x4000_0000 {
                [0x4000_0001, 0x5447_4354, 0x4354_4743, 0x4743_5447]
            } else {
                [0; 4]
            }),
            None
        );
        // A signature whose max leaf is nonsense, or without a hypercall page.
        let sig = |max: u32, pages: u32| {
            move |l: u32| match l {
                0x4000_0000 => [max, SIGNATURE[0], SIGNATURE[1], SIGNATURE[2]],
                0x4000_0002 => [pages, 0x4000_0000, 0, 0],
                _ => [0; 4],
            }
        };
        assert_eq!(detect_with(sig(0x4000_0001, 1)), None);
        assert_eq!(detect_with(sig(0xffff_ffff, 1)), None);
        assert_eq!(detect_with(sig(0x4000_0002, 0)), None);
        let info = detect_with(sig(0x4000_0002, 1)).unwrap();
        assert_eq!(
            (info.base, info.msr, info.domid),
            (0x4000_0000, 0x4000_0000, None)
        );
        // The last block is scanned too.
        let last = detect_with(|l| match l {
            0x4001_0000 => [0x4001_0004, SIGNATURE[0], SIGNATURE[1], SIGNATURE[2]],
            0x4001_0002 => [1, 0x4000_0200, 0, 0],
            0x4001_0004 => [0x18, 0, 0x1_0005, 0],
            _ => [0; 4],
        })
        .unwrap();
        assert_eq!(
            (last.base, last.domid),
            (0x4001_0000, None),
            "domid over 16 bits"
        );
    }

    #[test]
    fn hypercall_page_check() {
        let mut page = [0u8; 4096];
        xen_abi::cpuid::write_hypercall_page(&mut page);
        for nr in HYPERCALLS_USED {
            assert!(stub_ok(&page, nr));
        }
        assert!(!stub_ok(&page, 23), "iret is ud2");
        assert!(!stub_ok(&page, abi::hypercall::STUBS));
        assert!(!stub_ok(&[0; 4096], 17));
    }

    #[test]
    fn init_errors_name_what_failed() {
        assert_eq!(
            InitError::Hypercall {
                op: "memory_op(add_to_physmap shared_info)",
                errno: Errno::EINVAL
            }
            .to_string(),
            "memory_op(add_to_physmap shared_info) failed: EINVAL (-22)"
        );
        assert_eq!(
            InitError::HypercallMsr {
                msr: 0x4000_0200,
                gpa: 0x20_0000
            }
            .to_string(),
            "writing 0x200000 to the hypercall MSR 0x40000200 raised #GP"
        );
    }
}
