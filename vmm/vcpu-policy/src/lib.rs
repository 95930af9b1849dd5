//! What a cloister guest vCPU sees of the processor: the CPUID and MSR policies.
//!
//! Both are pure functions of configuration, host CPUID values and per-vCPU
//! state, so the seL4 exit handler stays thin: on a CPUID exit it calls
//! [`cpuid()`]; on RDMSR/WRMSR it calls [`MsrState::read`] / [`MsrState::write`]
//! and injects #GP on `Err`.
//!
//! # CPUID
//!
//! Table-driven: [`POLICY`] lists every leaf range the guest may see, with a
//! rule ([`Rule::Zero`], [`Rule::Host`], [`Rule::HostMasked`],
//! [`Rule::Computed`]) and a one-line reason. Summary:
//!
//! | leaf | guest sees |
//! |------|------------|
//! | 0 | max basic leaf [`MAX_BASIC_LEAF`] (0x16), host vendor |
//! | 1 | host family/model/stepping; APIC ID from config; allow-listed features; hypervisor bit set; VMX, SMX, MONITOR, DS/DS-CPL, TM/TM2, EST, PDCM, xTPR, DCA, MCE/MCA, HTT clear; x2APIC, TSC-deadline, MTRR from config; XSAVE if config allows and host has it; OSXSAVE = guest CR4.OSXSAVE; AVX/FMA/F16C only with AVX state |
//! | 2 | host cache descriptors |
//! | 3, 5, 6, 8–0xA, 0xC, 0xE–0x14 | zeros (serial number, MONITOR, thermal/power, DCA, perfmon, RDT, SGX, PT) |
//! | 4 | host cache geometry, one core and one thread per cache |
//! | 7 | subleaf 0 only, allow-listed (see [`cpuid::leaf7`]); SGX, HLE/RTM, PT, MPX, AVX-512, TSC_ADJUST, INVPCID, PKU, WAITPKG, speculation-control MSR bits hidden |
//! | 0xB | one thread, one core; EDX = x2APIC ID from config |
//! | 0xD | XSAVE with x87/SSE/AVX only (if allowed); no XSAVES |
//! | 0x15 | EAX/EBX = TSC/bus ratio, ECX = APIC bus Hz (Linux uses it as the LAPIC timer clock) |
//! | 0x16 | TSC MHz (base and max), bus MHz |
//! | 0x4000_0000 | max hypervisor leaf 0x4000_0010, signature `"cloisterVMM "` |
//! | 0x4000_0002 | filled by the exit handler (vmm-core), not this policy: the vCPU's VM exit counts, for benchmarks |
//! | 0x4000_0010 | TSC kHz, APIC bus kHz (the VMware/KVM timing leaf) |
//! | 0x8000_0000 | max extended leaf, at most 0x8000_0008 |
//! | 0x8000_0001 | LAHF, LZCNT, PREFETCHW, SYSCALL, NX, 1 GiB pages, LM (no RDTSCP) |
//! | 0x8000_0002–6 | host brand string and cache descriptors |
//! | 0x8000_0007 | invariant TSC only |
//! | 0x8000_0008 | host address sizes only |
//! | anything else | zeros |
//!
//! A leaf above the maximum reads as zeros (not as the highest basic leaf, as
//! Intel hardware does): simpler, and no guest relies on the Intel quirk.
//! The guest's CR4 must accept the bits the advertised features imply
//! (PCIDE, OSXSAVE, FSGSBASE, SMEP, SMAP); that is the CR-access handler's job.
//!
//! # MSRs
//!
//! | MSR | read | write |
//! |-----|------|-------|
//! | 0x10 IA32_TSC | host TSC + offset | sets the offset → [`MsrEffect::TscOffset`] |
//! | 0x17 IA32_PLATFORM_ID | 0 | #GP |
//! | 0x1B IA32_APIC_BASE | 0xFEE00900 (xAPIC, enabled, BSP) | same value: ok; setting EXTD only if config allows x2APIC → [`MsrEffect::ApicMode`]; anything else #GP |
//! | 0x3A IA32_FEATURE_CONTROL | 1 (locked, VMX off) | #GP |
//! | 0x8B IA32_BIOS_SIGN_ID | 0 | ignored |
//! | 0xCE MSR_PLATFORM_INFO | 0 | #GP |
//! | 0xFE IA32_MTRRCAP | 0 (no ranges, no WC, no fixed) | #GP |
//! | 0x1A0 IA32_MISC_ENABLE | fast strings, BTS/PEBS unavailable | same value: ok; else #GP |
//! | 0x1D9 IA32_DEBUGCTL | 0 | 0: ok; else #GP |
//! | 0x277 IA32_PAT | stored | valid memory types → [`MsrEffect::Sync`]; else #GP |
//! | 0x2FF IA32_MTRR_DEF_TYPE | stored (0x806 at reset) | UC/WT/WP/WB + E bit; FE or reserved bits #GP |
//! | 0x6E0 IA32_TSC_DEADLINE | stored | stored → [`MsrEffect::TscDeadline`] (if config has TSC-deadline, else #GP) |
//! | 0xC000_0081 STAR, 0x84 FMASK | stored | stored (FMASK bits 63:32 reserved) → Sync |
//! | 0xC000_0082 LSTAR, 0x83 CSTAR, 0x100 FS_BASE, 0x101 GS_BASE, 0x102 KERNEL_GS_BASE | stored | canonical only → Sync |
//! | 0xC000_0080 EFER, 0x174–0x176 SYSENTER_* | #GP, [`MsrError::Elsewhere`]: VMCS fields, handled by the caller |
//! | 0x800–0x8FF x2APIC | in x2APIC mode: `Elsewhere` (LAPIC model); otherwise #GP |
//! | anything else | #GP ([`MsrError::Unknown`]) |
//!
//! The caller may pass FS/GS base, PAT and the SYSCALL MSRs through with the
//! MSR bitmap and VMCS/VCPU MSR switching instead; then those exits never
//! reach this module. Stored-only is not enough for them: the guest's SYSCALL
//! and segment bases use the real registers, hence [`MsrEffect::Sync`].
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::arithmetic_side_effects
    )
)]

pub mod cpuid;
pub mod msr;

#[cfg(test)]
mod tests;

pub use cpuid::{
    cpuid, xcr0_allowed, xcr0_valid, CpuidConfig, CpuidResult, LeafPolicy, Rule, MAX_BASIC_LEAF,
    POLICY,
};
pub use msr::{ApicMode, MsrConfig, MsrEffect, MsrError, MsrState, Owner};
