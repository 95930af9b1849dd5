//! The CPUID policy: what a guest sees for every leaf.
//!
//! The policy is the table [`POLICY`]: one row per leaf range, each with a
//! [`Rule`] and a sentence saying why. A leaf no row names reads as all zeros.
//! Feature bits are *allow-listed*: a host bit reaches the guest only if a
//! mask below names it, so a newer host CPU never leaks a feature the VMM
//! does not handle.

use core::fmt;

/// The four registers CPUID returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CpuidResult {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
}

impl CpuidResult {
    /// All four registers zero: what an unknown leaf returns.
    pub const ZERO: CpuidResult = CpuidResult {
        eax: 0,
        ebx: 0,
        ecx: 0,
        edx: 0,
    };

    /// Bitwise AND of each register with `mask`'s.
    pub fn and(self, mask: CpuidResult) -> CpuidResult {
        CpuidResult {
            eax: self.eax & mask.eax,
            ebx: self.ebx & mask.ebx,
            ecx: self.ecx & mask.ecx,
            edx: self.edx & mask.edx,
        }
    }
}

impl fmt::Display for CpuidResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "eax={:#010x} ebx={:#010x} ecx={:#010x} edx={:#010x}",
            self.eax, self.ebx, self.ecx, self.edx
        )
    }
}

/// The per-vCPU inputs to the policy.
///
/// Most fields are fixed when the VM is configured. `guest_osxsave` and
/// `guest_xcr0` mirror live guest state: the caller refreshes them from the
/// VMCS (guest CR4.OSXSAVE) and its XCR0 shadow before each CPUID exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuidConfig {
    /// The vCPU's (x2)APIC ID: leaf 1 EBX bits 31:24 (low 8 bits), leaf 0xB EDX.
    pub apic_id: u32,
    /// The VMM's LAPIC model implements x2APIC mode: sets leaf 1 ECX.x2APIC.
    pub x2apic: bool,
    /// The VMM's LAPIC model implements TSC-deadline mode: sets leaf 1 ECX.TSC-deadline.
    pub tsc_deadline: bool,
    /// The VMM handles XSETBV and switches XCR0: exposes XSAVE (x87/SSE/AVX state only).
    pub xsave: bool,
    /// Guest CR4.OSXSAVE, reported as leaf 1 ECX.OSXSAVE (only if XSAVE is exposed).
    pub guest_osxsave: bool,
    /// Guest XCR0, for leaf 0xD EBX (save-area size of the enabled features).
    pub guest_xcr0: u64,
    /// Advertise MTRRs (leaf 1 EDX.MTRR). The MSR side reports no ranges
    /// (MTRRCAP = 0); Linux 6.1 still wants the bit to keep PAT enabled.
    pub mtrr: bool,
    /// TSC frequency in kHz, 0 if unknown (then leaves 0x15, 0x16 and 0x40000010 read 0).
    pub tsc_khz: u32,
    /// LAPIC timer (bus) frequency in kHz, 0 if unknown.
    pub apic_bus_khz: u32,
}

impl CpuidConfig {
    /// The MSR configuration that agrees with this CPUID configuration.
    pub fn msr_config(&self) -> crate::msr::MsrConfig {
        crate::msr::MsrConfig {
            x2apic: self.x2apic,
            tsc_deadline: self.tsc_deadline,
            mtrr: self.mtrr,
            mtrrs_enabled: true,
        }
    }
}

/// The highest basic leaf the guest is told about (leaf 0 EAX). Fixed so that
/// the TSC leaves 0x15/0x16 exist on every host; leaves above it read 0.
pub const MAX_BASIC_LEAF: u32 = 0x16;
/// The highest extended leaf the guest may be told about (leaf 0x8000_0000 EAX).
pub const MAX_EXTENDED_LEAF: u32 = 0x8000_0008;
/// The highest hypervisor leaf (leaf 0x4000_0000 EAX).
pub const MAX_HYPERVISOR_LEAF: u32 = 0x4000_0010;
/// The hypervisor signature in leaf 0x4000_0000 EBX, ECX, EDX.
pub const HYPERVISOR_SIGNATURE: &[u8; 12] = b"cloisterVMM ";

const fn bit(n: u32) -> u32 {
    1 << n
}

/// Leaf 1 ECX bits passed from the host (others are hidden or set by config).
pub mod leaf1_ecx {
    use super::bit;
    /// SSE3.
    pub const SSE3: u32 = bit(0);
    /// PCLMULQDQ.
    pub const PCLMULQDQ: u32 = bit(1);
    /// MONITOR/MWAIT (hidden: an idle guest must HLT, which exits).
    pub const MONITOR: u32 = bit(3);
    /// VMX (hidden: no nested virtualisation).
    pub const VMX: u32 = bit(5);
    /// SSSE3.
    pub const SSSE3: u32 = bit(9);
    /// FMA (needs AVX state).
    pub const FMA: u32 = bit(12);
    /// CMPXCHG16B.
    pub const CX16: u32 = bit(13);
    /// PDCM (hidden: no perf capabilities MSR).
    pub const PDCM: u32 = bit(15);
    /// PCID.
    pub const PCID: u32 = bit(17);
    /// SSE4.1.
    pub const SSE4_1: u32 = bit(19);
    /// SSE4.2.
    pub const SSE4_2: u32 = bit(20);
    /// x2APIC (config).
    pub const X2APIC: u32 = bit(21);
    /// MOVBE.
    pub const MOVBE: u32 = bit(22);
    /// POPCNT.
    pub const POPCNT: u32 = bit(23);
    /// TSC-deadline timer (config).
    pub const TSC_DEADLINE: u32 = bit(24);
    /// AES-NI.
    pub const AES: u32 = bit(25);
    /// XSAVE (config and host).
    pub const XSAVE: u32 = bit(26);
    /// OSXSAVE (guest CR4).
    pub const OSXSAVE: u32 = bit(27);
    /// AVX (needs AVX state).
    pub const AVX: u32 = bit(28);
    /// F16C (needs AVX state).
    pub const F16C: u32 = bit(29);
    /// RDRAND.
    pub const RDRAND: u32 = bit(30);
    /// Hypervisor present (always set).
    pub const HYPERVISOR: u32 = bit(31);

    /// Passed through when the host has them.
    pub const ALLOWED: u32 =
        SSE3 | PCLMULQDQ | SSSE3 | CX16 | PCID | SSE4_1 | SSE4_2 | MOVBE | POPCNT | AES | RDRAND;
    /// Passed through only when AVX state is allowed in XCR0.
    pub const NEEDS_AVX: u32 = FMA | AVX | F16C;
}

/// Leaf 1 EDX bits passed from the host.
pub mod leaf1_edx {
    use super::bit;
    /// x87 FPU.
    pub const FPU: u32 = bit(0);
    /// Virtual-8086 mode extensions.
    pub const VME: u32 = bit(1);
    /// Debugging extensions.
    pub const DE: u32 = bit(2);
    /// Page size extension.
    pub const PSE: u32 = bit(3);
    /// Time stamp counter.
    pub const TSC: u32 = bit(4);
    /// RDMSR/WRMSR.
    pub const MSR: u32 = bit(5);
    /// PAE.
    pub const PAE: u32 = bit(6);
    /// Machine check exception (hidden: no MCE MSRs).
    pub const MCE: u32 = bit(7);
    /// CMPXCHG8B.
    pub const CX8: u32 = bit(8);
    /// On-chip APIC (always set: the VMM emulates one).
    pub const APIC: u32 = bit(9);
    /// SYSENTER/SYSEXIT.
    pub const SEP: u32 = bit(11);
    /// MTRRs (config).
    pub const MTRR: u32 = bit(12);
    /// Global pages.
    pub const PGE: u32 = bit(13);
    /// Machine check architecture (hidden).
    pub const MCA: u32 = bit(14);
    /// CMOV.
    pub const CMOV: u32 = bit(15);
    /// Page attribute table.
    pub const PAT: u32 = bit(16);
    /// 36-bit page size extension.
    pub const PSE36: u32 = bit(17);
    /// CLFLUSH.
    pub const CLFSH: u32 = bit(19);
    /// MMX.
    pub const MMX: u32 = bit(23);
    /// FXSAVE/FXRSTOR.
    pub const FXSR: u32 = bit(24);
    /// SSE.
    pub const SSE: u32 = bit(25);
    /// SSE2.
    pub const SSE2: u32 = bit(26);
    /// Self snoop.
    pub const SS: u32 = bit(27);
    /// Hyper-threading (hidden: one logical processor).
    pub const HTT: u32 = bit(28);

    /// Passed through when the host has them.
    pub const ALLOWED: u32 = FPU
        | VME
        | DE
        | PSE
        | TSC
        | MSR
        | PAE
        | CX8
        | SEP
        | PGE
        | CMOV
        | PAT
        | PSE36
        | CLFSH
        | MMX
        | FXSR
        | SSE
        | SSE2
        | SS;
}

/// Leaf 7 subleaf 0 bits passed from the host.
pub mod leaf7 {
    use super::bit;
    /// EBX: FSGSBASE, BMI1, FDP_EXCPTN_ONLY, SMEP, BMI2, ERMS, FPU CS/DS
    /// deprecation, RDSEED, ADX, SMAP, CLFLUSHOPT, CLWB, SHA. Hidden among
    /// others: TSC_ADJUST, SGX, HLE, RTM, INVPCID, MPX, RDT, AVX-512, PT.
    pub const EBX: u32 = bit(0)
        | bit(3)
        | bit(6)
        | bit(7)
        | bit(8)
        | bit(9)
        | bit(13)
        | bit(18)
        | bit(19)
        | bit(20)
        | bit(23)
        | bit(24)
        | bit(29);
    /// EBX bits needing AVX state: AVX2.
    pub const EBX_NEEDS_AVX: u32 = bit(5);
    /// ECX: GFNI. Hidden among others: UMIP, PKU, WAITPKG, LA57, RDPID, SGX_LC, CET.
    pub const ECX: u32 = bit(8);
    /// ECX bits needing AVX state: VAES, VPCLMULQDQ.
    pub const ECX_NEEDS_AVX: u32 = bit(9) | bit(10);
    /// EDX: FSRM, MD_CLEAR, SERIALIZE. Hidden: speculation-control bits
    /// (their MSRs are not emulated), hybrid, AMX, CET, arch LBR.
    pub const EDX: u32 = bit(4) | bit(10) | bit(14);
}

/// XCR0 state components the guest may enable: x87, SSE, AVX.
pub const XCR0_X87: u64 = 1;
/// XCR0 SSE state.
pub const XCR0_SSE: u64 = 2;
/// XCR0 AVX (YMM upper halves) state.
pub const XCR0_AVX: u64 = 4;
const XCR0_POLICY: u64 = XCR0_X87 | XCR0_SSE | XCR0_AVX;

/// The XCR0 bits the guest may set: x87|SSE|AVX as far as the host supports
/// them, or 0 if XSAVE is not exposed. The XSETBV handler uses this too.
pub fn xcr0_allowed(host: &dyn Fn(u32, u32) -> CpuidResult, cfg: &CpuidConfig) -> u64 {
    if !cfg.xsave {
        return 0;
    }
    let max = host(0, 0).eax;
    if max < 0xD || host(1, 0).ecx & leaf1_ecx::XSAVE == 0 {
        return 0;
    }
    let h = host(0xD, 0);
    let supported = u64::from(h.eax) | (u64::from(h.edx) << 32);
    let allowed = supported & XCR0_POLICY;
    if allowed & (XCR0_X87 | XCR0_SSE) != XCR0_X87 | XCR0_SSE {
        return 0;
    }
    allowed
}

/// Whether XSETBV may load `value` into XCR0 (else the VMM injects #GP):
/// x87 set, only allowed bits, and AVX only together with SSE.
pub fn xcr0_valid(value: u64, allowed: u64) -> bool {
    value & XCR0_X87 != 0
        && value & !allowed == 0
        && (value & XCR0_AVX == 0 || value & XCR0_SSE != 0)
}

/// How one leaf range is answered.
#[derive(Clone, Copy)]
pub enum Rule {
    /// All registers zero.
    Zero,
    /// The host's values unchanged: descriptive leaves (cache geometry, brand string).
    Host,
    /// The host's values ANDed with these masks.
    HostMasked(CpuidResult),
    /// Computed from the host's values and the config.
    Computed(fn(&Ctx<'_>) -> CpuidResult),
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Zero => f.write_str("Zero"),
            Rule::Host => f.write_str("Host"),
            Rule::HostMasked(m) => write!(f, "HostMasked({m})"),
            Rule::Computed(_) => f.write_str("Computed"),
        }
    }
}

/// One row of the policy.
#[derive(Clone, Copy, Debug)]
pub struct LeafPolicy {
    /// First leaf of the range.
    pub first: u32,
    /// Last leaf of the range (inclusive).
    pub last: u32,
    /// How the leaves are answered.
    pub rule: Rule,
    /// What the guest sees, and why.
    pub doc: &'static str,
}

const fn row(first: u32, last: u32, rule: Rule, doc: &'static str) -> LeafPolicy {
    LeafPolicy {
        first,
        last,
        rule,
        doc,
    }
}

const fn masks(eax: u32, ebx: u32, ecx: u32, edx: u32) -> Rule {
    Rule::HostMasked(CpuidResult { eax, ebx, ecx, edx })
}

/// The CPUID policy, in leaf order. Leaves no row covers read as zeros.
pub const POLICY: &[LeafPolicy] = &[
    row(0x0, 0x0, Rule::Computed(leaf_0), "max basic leaf 0x16; host vendor string"),
    row(0x1, 0x1, Rule::Computed(leaf_1), "host family/model/stepping; APIC ID from config; allow-listed features; hypervisor bit set; VMX, SMX, MONITOR, PDCM, DS, TM, EST, MCE/MCA, HTT hidden"),
    row(0x2, 0x2, Rule::Host, "cache and TLB descriptors, as the host"),
    row(0x3, 0x3, Rule::Zero, "processor serial number: none"),
    row(0x4, 0x4, Rule::Computed(leaf_4), "host cache geometry; one core, one thread shares each cache"),
    row(0x5, 0x6, Rule::Zero, "MONITOR/MWAIT and thermal/power management: hidden"),
    row(0x7, 0x7, Rule::Computed(leaf_7), "structured extended features, allow-listed; subleaf 0 only"),
    row(0x8, 0xA, Rule::Zero, "reserved, DCA, architectural perfmon: hidden"),
    row(0xB, 0xB, Rule::Computed(leaf_b), "x2APIC topology: one thread, one core; x2APIC ID from config"),
    row(0xC, 0xC, Rule::Zero, "reserved"),
    row(0xD, 0xD, Rule::Computed(leaf_d), "XSAVE: x87/SSE/AVX state only, if config allows; no XSAVES"),
    row(0xE, 0x14, Rule::Zero, "RDT, SGX, PT and reserved leaves: hidden"),
    row(0x15, 0x15, Rule::Computed(leaf_15), "TSC/crystal ratio: crystal = APIC bus clock, ratio = TSC/bus, from config"),
    row(0x16, 0x16, Rule::Computed(leaf_16), "base/max/bus frequency in MHz, from config"),
    row(0x4000_0000, 0x4000_0000, Rule::Computed(leaf_hv), "max hypervisor leaf 0x40000010; signature \"cloisterVMM \""),
    row(0x4000_0001, 0x4000_000F, Rule::Zero, "reserved hypervisor leaves"),
    row(0x4000_0010, 0x4000_0010, Rule::Computed(leaf_hv_timing), "timing leaf: TSC kHz (EAX), APIC bus kHz (EBX), from config"),
    row(0x8000_0000, 0x8000_0000, Rule::Computed(leaf_ext_max), "max extended leaf, at most 0x80000008"),
    row(0x8000_0001, 0x8000_0001, masks(u32::MAX, 0, EXT1_ECX, EXT1_EDX), "LAHF, LZCNT, PREFETCHW; SYSCALL, NX, 1 GiB pages, long mode. RDTSCP hidden (no TSC_AUX)"),
    row(0x8000_0002, 0x8000_0004, Rule::Host, "processor brand string, as the host"),
    row(0x8000_0005, 0x8000_0006, Rule::Host, "cache descriptors, as the host"),
    row(0x8000_0007, 0x8000_0007, masks(0, 0, 0, 1 << 8), "invariant TSC only"),
    row(0x8000_0008, 0x8000_0008, masks(0xFFFF, 0, 0, 0), "physical and linear address sizes"),
];

const EXT1_ECX: u32 = bit(0) | bit(5) | bit(8);
const EXT1_EDX: u32 = bit(11) | bit(20) | bit(26) | bit(29);

/// What a [`Rule::Computed`] function may look at.
pub struct Ctx<'a> {
    /// The leaf asked for.
    pub leaf: u32,
    /// The subleaf (ECX) asked for.
    pub subleaf: u32,
    /// The vCPU's configuration.
    pub cfg: &'a CpuidConfig,
    host: &'a dyn Fn(u32, u32) -> CpuidResult,
}

impl Ctx<'_> {
    /// The host's answer for this leaf and subleaf, or zeros if the host's
    /// maximum (basic or extended) leaf is below it. (Intel CPUs answer an
    /// out-of-range leaf with the highest basic leaf's data, which must not
    /// leak through.)
    pub fn host(&self) -> CpuidResult {
        self.host_leaf(self.leaf, self.subleaf)
    }

    /// The host's answer for any leaf and subleaf, with the same range check.
    pub fn host_leaf(&self, leaf: u32, subleaf: u32) -> CpuidResult {
        let max = if leaf >= 0x8000_0000 {
            (self.host)(0x8000_0000, 0).eax
        } else if leaf >= 0x4000_0000 {
            return CpuidResult::ZERO;
        } else {
            (self.host)(0, 0).eax
        };
        if leaf > max {
            CpuidResult::ZERO
        } else {
            (self.host)(leaf, subleaf)
        }
    }

    /// [`xcr0_allowed`] for this vCPU.
    pub fn xcr0_allowed(&self) -> u64 {
        xcr0_allowed(self.host, self.cfg)
    }
}

/// The guest's CPUID result for `leaf`/`subleaf`, given the host's CPUID.
///
/// `host` executes the real CPUID instruction (or returns recorded values in
/// tests). Never panics; any leaf outside [`POLICY`] reads as zeros.
pub fn cpuid(
    leaf: u32,
    subleaf: u32,
    host: &dyn Fn(u32, u32) -> CpuidResult,
    cfg: &CpuidConfig,
) -> CpuidResult {
    let ctx = Ctx {
        leaf,
        subleaf,
        cfg,
        host,
    };
    match rule_for(leaf) {
        None | Some(Rule::Zero) => CpuidResult::ZERO,
        Some(Rule::Host) => ctx.host(),
        Some(Rule::HostMasked(m)) => ctx.host().and(m),
        Some(Rule::Computed(f)) => f(&ctx),
    }
}

/// The rule for `leaf`, if the policy names it.
pub fn rule_for(leaf: u32) -> Option<Rule> {
    POLICY
        .iter()
        .find(|r| r.first <= leaf && leaf <= r.last)
        .map(|r| r.rule)
}

fn leaf_0(c: &Ctx<'_>) -> CpuidResult {
    let h = c.host_leaf(0, 0);
    CpuidResult {
        eax: MAX_BASIC_LEAF,
        ..h
    }
}

fn leaf_1(c: &Ctx<'_>) -> CpuidResult {
    use leaf1_ecx as ecx;
    use leaf1_edx as edx;
    let h = c.host();
    let avx_ok = c.xcr0_allowed() & XCR0_AVX != 0;
    let xsave = c.xcr0_allowed() != 0;

    let mut out_ecx = (h.ecx & ecx::ALLOWED) | ecx::HYPERVISOR;
    if avx_ok {
        out_ecx |= h.ecx & ecx::NEEDS_AVX;
    }
    if xsave {
        out_ecx |= ecx::XSAVE;
        if c.cfg.guest_osxsave {
            out_ecx |= ecx::OSXSAVE;
        }
    }
    if c.cfg.x2apic {
        out_ecx |= ecx::X2APIC;
    }
    if c.cfg.tsc_deadline {
        out_ecx |= ecx::TSC_DEADLINE;
    }

    let mut out_edx = (h.edx & edx::ALLOWED) | edx::APIC;
    if c.cfg.mtrr {
        out_edx |= edx::MTRR;
    }

    CpuidResult {
        eax: h.eax,
        // Keep brand index and CLFLUSH size; one logical processor; APIC ID.
        ebx: (h.ebx & 0xFFFF) | (1 << 16) | ((c.cfg.apic_id & 0xFF) << 24),
        ecx: out_ecx,
        edx: out_edx,
    }
}

fn leaf_4(c: &Ctx<'_>) -> CpuidResult {
    let h = c.host();
    if h.eax & 0x1F == 0 {
        return CpuidResult::ZERO; // no more caches
    }
    CpuidResult {
        // Clear EAX[31:26] (cores per package - 1) and [25:14] (threads sharing - 1).
        eax: h.eax & 0x3FFF,
        ..h
    }
}

fn leaf_7(c: &Ctx<'_>) -> CpuidResult {
    if c.subleaf != 0 {
        return CpuidResult::ZERO;
    }
    let h = c.host();
    let avx_ok = c.xcr0_allowed() & XCR0_AVX != 0;
    let mut ebx = h.ebx & leaf7::EBX;
    let mut ecx = h.ecx & leaf7::ECX;
    if avx_ok {
        ebx |= h.ebx & leaf7::EBX_NEEDS_AVX;
        ecx |= h.ecx & leaf7::ECX_NEEDS_AVX;
    }
    CpuidResult {
        eax: 0, // highest subleaf: 0
        ebx,
        ecx,
        edx: h.edx & leaf7::EDX,
    }
}

fn leaf_b(c: &Ctx<'_>) -> CpuidResult {
    let (ebx, level_type) = match c.subleaf {
        0 => (1, 1), // SMT level: one thread
        1 => (1, 2), // core level: one core
        _ => (0, 0), // invalid level
    };
    CpuidResult {
        eax: 0, // no APIC ID bits to shift at any level
        ebx,
        ecx: (level_type << 8) | (c.subleaf & 0xFF),
        edx: c.cfg.apic_id,
    }
}

/// Size of the standard-format XSAVE area holding the components in `mask`.
fn xsave_size(c: &Ctx<'_>, mask: u64) -> u32 {
    const LEGACY_AND_HEADER: u32 = 512 + 64;
    if mask & XCR0_AVX == 0 {
        return LEGACY_AND_HEADER;
    }
    let avx = c.host_leaf(0xD, 2);
    avx.ebx.saturating_add(avx.eax).max(LEGACY_AND_HEADER)
}

fn leaf_d(c: &Ctx<'_>) -> CpuidResult {
    let allowed = c.xcr0_allowed();
    if allowed == 0 {
        return CpuidResult::ZERO;
    }
    match c.subleaf {
        0 => CpuidResult {
            eax: u32::try_from(allowed).unwrap_or(0),
            ebx: xsave_size(c, c.cfg.guest_xcr0 & allowed),
            ecx: xsave_size(c, allowed),
            edx: 0,
        },
        // XSAVEOPT, XSAVEC, XGETBV with ECX=1. Not XSAVES (no IA32_XSS), not XFD.
        1 => CpuidResult {
            eax: c.host().eax & 0b111,
            ..CpuidResult::ZERO
        },
        2 if allowed & XCR0_AVX != 0 => {
            let h = c.host();
            CpuidResult {
                eax: h.eax,
                ebx: h.ebx,
                ..CpuidResult::ZERO
            }
        }
        _ => CpuidResult::ZERO,
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while let Some(t) = a.checked_rem(b) {
        a = b;
        b = t;
    }
    a
}

/// Leaf 0x15. Linux takes ECX as the crystal clock *and* the LAPIC timer
/// clock, and computes `crystal_kHz * EBX / EAX` in 32 bits; so ECX is the
/// APIC bus frequency, EBX/EAX the reduced ratio TSC/bus, and the leaf reads
/// zeros (Linux then falls back to leaf 0x16) when that product would overflow.
fn leaf_15(c: &Ctx<'_>) -> CpuidResult {
    let (tsc, bus) = (c.cfg.tsc_khz, c.cfg.apic_bus_khz);
    if tsc == 0 || bus == 0 {
        return CpuidResult::ZERO;
    }
    let g = gcd(tsc, bus);
    let (num, den) = (tsc.checked_div(g), bus.checked_div(g));
    let (Some(num), Some(den), Some(hz)) = (num, den, bus.checked_mul(1000)) else {
        return CpuidResult::ZERO;
    };
    if bus.checked_mul(num).is_none() {
        return CpuidResult::ZERO;
    }
    CpuidResult {
        eax: den,
        ebx: num,
        ecx: hz,
        edx: 0,
    }
}

fn leaf_16(c: &Ctx<'_>) -> CpuidResult {
    if c.cfg.tsc_khz == 0 {
        return CpuidResult::ZERO;
    }
    let mhz = c.cfg.tsc_khz / 1000;
    CpuidResult {
        eax: mhz & 0xFFFF,
        ebx: mhz & 0xFFFF,
        ecx: (c.cfg.apic_bus_khz / 1000) & 0xFFFF,
        edx: 0,
    }
}

fn sig_word(i: usize) -> u32 {
    let start = i.saturating_mul(4);
    let mut w = [0u8; 4];
    if let Some(s) = HYPERVISOR_SIGNATURE.get(start..start.saturating_add(4)) {
        w.copy_from_slice(s);
    }
    u32::from_le_bytes(w)
}

fn leaf_hv(_: &Ctx<'_>) -> CpuidResult {
    CpuidResult {
        eax: MAX_HYPERVISOR_LEAF,
        ebx: sig_word(0),
        ecx: sig_word(1),
        edx: sig_word(2),
    }
}

fn leaf_hv_timing(c: &Ctx<'_>) -> CpuidResult {
    CpuidResult {
        eax: c.cfg.tsc_khz,
        ebx: c.cfg.apic_bus_khz,
        ecx: 0,
        edx: 0,
    }
}

fn leaf_ext_max(c: &Ctx<'_>) -> CpuidResult {
    let h = c.host_leaf(0x8000_0000, 0);
    CpuidResult {
        eax: h.eax.clamp(0x8000_0000, MAX_EXTENDED_LEAF),
        ..h
    }
}
