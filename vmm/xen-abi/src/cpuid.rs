//! The Xen CPUID leaves and the hypercall page.
//!
//! A guest finds Xen by scanning 0x4000_0000, 0x4000_0100, … for the
//! signature "XenVMMXenVMM". cloister's own hypervisor leaf sits at
//! 0x4000_0000 (vcpu-policy), so the Xen leaves go at [`XEN_BASE_ALT`]
//! (0x4000_0100), which Xen itself uses when another interface owns the
//! first block; guests look there too. Leaves, relative to the base:
//!
//! | leaf | EAX | EBX | ECX | EDX |
//! |------|-----|-----|-----|-----|
//! | +0 | highest Xen leaf (+4) | "XenV" | "MMXe" | "nVMM" |
//! | +1 | version, major << 16 \| minor | 0 | 0 | 0 |
//! | +2 | hypercall pages (1) | MSR that installs the page | 0 | 0 |
//! | +3 | 0 (no TSC info) | 0 | 0 | 0 |
//! | +4 | VCPU_ID_PRESENT \| DOMID_PRESENT | vCPU id | domain id | 0 |
//!
//! Writing a guest-physical address to the MSR asks for the hypercall page
//! there ([`hypercall_msr_write`]); the VMM fills that page with
//! [`write_hypercall_page`]: 32-byte stubs `mov eax, N; vmcall; ret`.

use crate::abi::{hypercall, DomId, PAGE_SIZE};
use crate::error::XenError;

/// The first block of hypervisor leaves.
pub const XEN_BASE: u32 = 0x4000_0000;
/// The second block, used when the first belongs to another interface.
pub const XEN_BASE_ALT: u32 = 0x4000_0100;
/// "XenV", "MMXe", "nVMM" as EBX, ECX, EDX.
pub const SIGNATURE: [u32; 3] = [0x566e_6558, 0x6558_4d4d, 0x4d4d_566e];
/// Leaf +4 EAX: EBX holds the vCPU id.
pub const HVM_CPUID_VCPU_ID_PRESENT: u32 = 1 << 3;
/// Leaf +4 EAX: ECX holds the domain id.
pub const HVM_CPUID_DOMID_PRESENT: u32 = 1 << 4;
/// Xen's hypercall-page MSR without another interface present.
pub const HYPERCALL_MSR: u32 = 0x4000_0000;
/// Xen's hypercall-page MSR when the first MSR block is taken.
pub const HYPERCALL_MSR_ALT: u32 = 0x4000_0200;

/// How the Xen leaves are presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenCpuid {
    /// [`XEN_BASE`] or [`XEN_BASE_ALT`].
    pub base: u32,
    /// The MSR advertised in leaf +2.
    pub msr: u32,
    /// Version reported in leaf +1 (major, minor).
    pub version: (u16, u16),
}

impl Default for XenCpuid {
    fn default() -> Self {
        XenCpuid {
            base: XEN_BASE_ALT,
            msr: HYPERCALL_MSR_ALT,
            version: (4, 19),
        }
    }
}

impl XenCpuid {
    /// EAX, EBX, ECX, EDX of `leaf` for vCPU `vcpu` of `dom`, or `None` if
    /// `leaf` is not one of the Xen leaves.
    pub fn leaf(&self, leaf: u32, dom: DomId, vcpu: u32) -> Option<[u32; 4]> {
        let rel = leaf.checked_sub(self.base)?;
        let [b, c, d] = SIGNATURE;
        Some(match rel {
            0 => [self.base.checked_add(4)?, b, c, d],
            1 => [
                (u32::from(self.version.0) << 16) | u32::from(self.version.1),
                0,
                0,
                0,
            ],
            2 => [1, self.msr, 0, 0],
            3 => [0; 4],
            4 => [
                HVM_CPUID_VCPU_ID_PRESENT | HVM_CPUID_DOMID_PRESENT,
                vcpu,
                u32::from(dom),
                0,
            ],
            _ => return None,
        })
    }
}

/// The guest-physical address of the page to fill, from a write of `value`
/// to the hypercall MSR. Bits 11:0 select the page: only page 0 exists, so
/// anything else is refused (the VMM injects #GP).
pub fn hypercall_msr_write(value: u64) -> Result<u64, XenError> {
    if value & 0xFFF != 0 {
        return Err(XenError::Inval);
    }
    Ok(value)
}

/// Fills a hypercall page: `int3` everywhere, then stub `N` at `32 * N`:
/// `mov eax, N` (B8 imm32), `vmcall` (0F 01 C1), `ret` (C3); the `iret`
/// stub is `ud2` (0F 0B), as in Xen for HVM guests.
pub fn write_hypercall_page(page: &mut [u8; PAGE_SIZE]) {
    page.fill(0xCC);
    for (n, stub) in page.chunks_exact_mut(32).enumerate() {
        let n = n as u32;
        let code: &[u8] = if u64::from(n) == hypercall::IRET {
            &[0x0F, 0x0B]
        } else {
            let [i0, i1, i2, i3] = n.to_le_bytes();
            &[0xB8, i0, i1, i2, i3, 0x0F, 0x01, 0xC1, 0xC3]
        };
        if let Some(dst) = stub.get_mut(..code.len()) {
            dst.copy_from_slice(code);
        }
    }
}
