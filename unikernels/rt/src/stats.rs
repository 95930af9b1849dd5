//! This vCPU's VM exits, as cloister counts them, for measuring exits per
//! operation from inside a guest; [`Ratio`] prints such figures.
//!
//! cloister answers CPUID leaf [`STATS_LEAF`] with the exits of the vCPU
//! that asks (`vmm_core::vm::STATS_LEAF`). Reading the leaf is itself an
//! exit, which [`VmExits::since`] leaves out. [`vm_exits`] reads it (on
//! `x86_64-unknown-none`); the rest is plain logic with host tests.

use core::fmt;

/// cloister's statistics CPUID leaf: EAX = all VM exits of this vCPU so far
/// (this CPUID's included), low 32 bits, EBX the high 32 bits; ECX = VMCALL
/// exits, EDX = HLT exits (low 32 bits each).
pub const STATS_LEAF: u32 = 0x4000_0002;

/// VM exits of this vCPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmExits {
    /// All exits.
    pub total: u64,
    /// VMCALL exits (hypercalls).
    pub vmcall: u32,
    /// HLT exits.
    pub hlt: u32,
}

impl VmExits {
    /// From the registers of leaf [`STATS_LEAF`].
    pub fn from_leaf(eax: u32, ebx: u32, ecx: u32, edx: u32) -> VmExits {
        VmExits {
            total: u64::from(ebx) << 32 | u64::from(eax),
            vmcall: ecx,
            hlt: edx,
        }
    }

    /// Exits between `earlier` and `self`, less the CPUID that read `self`.
    pub fn since(self, earlier: VmExits) -> VmExits {
        VmExits {
            total: self.total.wrapping_sub(earlier.total).saturating_sub(1),
            vmcall: self.vmcall.wrapping_sub(earlier.vmcall),
            hlt: self.hlt.wrapping_sub(earlier.hlt),
        }
    }
}

/// This vCPU's VM exits so far (leaf [`STATS_LEAF`]).
#[cfg(target_os = "none")]
pub fn vm_exits() -> VmExits {
    let r = core::arch::x86_64::__cpuid(STATS_LEAF);
    VmExits::from_leaf(r.eax, r.ebx, r.ecx, r.edx)
}

/// `a / b` with two decimals (truncated; `b` = 0 counts as 1), e.g. VM
/// exits per operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ratio(pub u64, pub u64);

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hundredths = u128::from(self.0) * 100 / u128::from(self.1.max(1));
        write!(f, "{}.{:02}", hundredths / 100, hundredths % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_from_the_leaf_and_between_reads() {
        assert_eq!(VmExits::from_leaf(5, 2, 0, 0).total, (2 << 32) + 5);
        let e = VmExits::from_leaf(1000, 1, 30, 7).since(VmExits::from_leaf(100, 1, 10, 2));
        assert_eq!(
            e,
            VmExits {
                total: 899,
                vmcall: 20,
                hlt: 5
            }
        );
        // The 32-bit counters wrap.
        let wrapped = VmExits::from_leaf(0, 0, 3, 1).since(VmExits::from_leaf(0, 0, u32::MAX, 0));
        assert_eq!((wrapped.total, wrapped.vmcall, wrapped.hlt), (0, 4, 1));
    }

    #[test]
    fn ratios_have_two_decimals() {
        assert_eq!(Ratio(801, 200).to_string(), "4.00");
        assert_eq!(Ratio(1, 3).to_string(), "0.33");
        assert_eq!(Ratio(800, 400).to_string(), "2.00");
        assert_eq!(Ratio(5, 0).to_string(), "5.00", "no division by zero");
    }
}
