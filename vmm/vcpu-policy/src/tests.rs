//! Unit and property tests for the CPUID and MSR policies.

use proptest::prelude::*;

use crate::cpuid::{leaf1_ecx, leaf1_edx, HYPERVISOR_SIGNATURE, MAX_HYPERVISOR_LEAF};
use crate::msr::*;
use crate::*;

fn r(eax: u32, ebx: u32, ecx: u32, edx: u32) -> CpuidResult {
    CpuidResult { eax, ebx, ecx, edx }
}

/// A Haswell-like host (i7-4770), answering out-of-range basic leaves with
/// the highest basic leaf's data as Intel hardware does.
fn haswell(leaf: u32, sub: u32) -> CpuidResult {
    let max_basic = 0xD;
    let leaf = if leaf < 0x4000_0000 && leaf > max_basic {
        max_basic
    } else {
        leaf
    };
    match (leaf, sub) {
        (0, _) => r(max_basic, 0x756e_6547, 0x6c65_746e, 0x4965_6e69),
        (1, _) => r(0x0003_06C3, 0x0110_0800, 0x7FFA_FBFF, 0xBFEB_FBFF),
        (2, _) => r(0x7603_6301, 0x00F0_B5FF, 0, 0x00C1_0000),
        (4, 0) => r(0x1C00_4121, 0x01C0_003F, 0x3F, 0),
        (4, 1) => r(0x1C00_4122, 0x01C0_003F, 0x3F, 0),
        (4, 2) => r(0x1C00_4143, 0x01C0_003F, 0x1FF, 0),
        (4, 3) => r(0x1C03_C163, 0x03C0_003F, 0x1FFF, 6),
        (6, _) => r(0x77, 2, 9, 0),
        (7, 0) => r(0, 0x0000_27AB, 0, 0x9C00_0400),
        (0xA, _) => r(0x0730_0403, 0, 0, 0x603),
        (0xD, 0) => r(7, 0x340, 0x340, 0),
        (0xD, 1) => r(1, 0, 0, 0),
        (0xD, 2) => r(0x100, 0x240, 0, 0),
        (0x8000_0000, _) => r(0x8000_0008, 0, 0, 0),
        (0x8000_0001, _) => r(0, 0, 0x21, 0x2C10_0800),
        (0x8000_0002, _) => r(0x6574_6e49, 0x2952_286c, 0x726f_4320, 0x4d54_2865),
        (0x8000_0007, _) => r(0, 0, 0, 0x100),
        (0x8000_0008, _) => r(0x3027, 0x200, 0, 0),
        _ => CpuidResult::ZERO,
    }
}

fn cfg() -> CpuidConfig {
    CpuidConfig {
        apic_id: 3,
        tsc_khz: 50_000,
        apic_bus_khz: 50_000,
        mtrr: true,
        ..CpuidConfig::default()
    }
}

fn q(leaf: u32, sub: u32, c: &CpuidConfig) -> CpuidResult {
    cpuid(leaf, sub, &haswell, c)
}

#[test]
fn leaf0_vendor_and_max() {
    let v = q(0, 0, &cfg());
    assert_eq!(v.eax, 0x16);
    assert_eq!(
        (v.ebx, v.edx, v.ecx),
        (0x756e_6547, 0x4965_6e69, 0x6c65_746e)
    );
}

#[test]
fn leaf1_filtering() {
    let v = q(1, 0, &cfg());
    assert_eq!(v.eax, 0x0003_06C3, "family/model/stepping pass through");
    assert_eq!(v.ebx >> 24, 3, "APIC ID from config");
    assert_eq!((v.ebx >> 16) & 0xFF, 1);
    assert_eq!((v.ebx >> 8) & 0xFF, 8, "CLFLUSH line size kept");
    assert_ne!(v.ecx & leaf1_ecx::HYPERVISOR, 0);
    for (bit, what) in [
        (2, "DTES64"),
        (3, "MONITOR"),
        (4, "DS-CPL"),
        (5, "VMX"),
        (6, "SMX"),
        (7, "EST"),
        (8, "TM2"),
        (14, "xTPR"),
        (15, "PDCM"),
        (18, "DCA"),
        (21, "x2APIC"),
        (24, "TSC-deadline"),
        (26, "XSAVE"),
        (27, "OSXSAVE"),
        (28, "AVX"),
        (12, "FMA"),
        (29, "F16C"),
    ] {
        assert_eq!(v.ecx & (1 << bit), 0, "ECX {what} must be clear");
    }
    for bit in [0, 1, 9, 13, 17, 19, 20, 22, 23, 25, 30] {
        assert_ne!(v.ecx & (1 << bit), 0, "ECX bit {bit} passes through");
    }
    for (bit, what) in [
        (7, "MCE"),
        (14, "MCA"),
        (18, "PSN"),
        (21, "DS"),
        (22, "ACPI"),
        (28, "HTT"),
        (29, "TM"),
        (31, "PBE"),
    ] {
        assert_eq!(v.edx & (1 << bit), 0, "EDX {what} must be clear");
    }
    assert_ne!(v.edx & leaf1_edx::APIC, 0);
    assert_ne!(v.edx & leaf1_edx::MTRR, 0);
    assert_ne!(v.edx & leaf1_edx::PAT, 0);
    let no_mtrr = CpuidConfig {
        mtrr: false,
        ..cfg()
    };
    assert_eq!(q(1, 0, &no_mtrr).edx & leaf1_edx::MTRR, 0);
}

#[test]
fn leaf1_config_bits() {
    let c = CpuidConfig {
        x2apic: true,
        tsc_deadline: true,
        ..cfg()
    };
    let v = q(1, 0, &c);
    assert_ne!(v.ecx & leaf1_ecx::X2APIC, 0);
    assert_ne!(v.ecx & leaf1_ecx::TSC_DEADLINE, 0);
}

#[test]
fn xsave_and_osxsave() {
    let mut c = CpuidConfig {
        xsave: true,
        ..cfg()
    };
    let v = q(1, 0, &c);
    assert_ne!(v.ecx & leaf1_ecx::XSAVE, 0);
    assert_eq!(v.ecx & leaf1_ecx::OSXSAVE, 0, "guest CR4.OSXSAVE is off");
    assert_ne!(v.ecx & leaf1_ecx::AVX, 0);
    assert_ne!(v.ecx & leaf1_ecx::FMA, 0);
    assert_ne!(q(7, 0, &c).ebx & (1 << 5), 0, "AVX2 with AVX state");
    c.guest_osxsave = true;
    assert_ne!(q(1, 0, &c).ecx & leaf1_ecx::OSXSAVE, 0);

    assert_eq!(xcr0_allowed(&haswell, &c), 7);
    c.guest_xcr0 = 3;
    assert_eq!(q(0xD, 0, &c), r(7, 576, 832, 0));
    c.guest_xcr0 = 7;
    assert_eq!(q(0xD, 0, &c), r(7, 832, 832, 0));
    assert_eq!(q(0xD, 1, &c), r(1, 0, 0, 0));
    assert_eq!(q(0xD, 2, &c), r(0x100, 0x240, 0, 0));
    assert_eq!(q(0xD, 3, &c), CpuidResult::ZERO);

    // Without XSAVE: no XSAVE state, no VEX features, empty leaf 0xD.
    let off = cfg();
    let v = q(
        1,
        0,
        &CpuidConfig {
            guest_osxsave: true,
            ..off
        },
    );
    assert_eq!(
        v.ecx & (leaf1_ecx::XSAVE | leaf1_ecx::OSXSAVE | leaf1_ecx::NEEDS_AVX),
        0
    );
    assert_eq!(q(7, 0, &off).ebx & (1 << 5), 0);
    assert_eq!(q(0xD, 0, &off), CpuidResult::ZERO);
    assert_eq!(xcr0_allowed(&haswell, &off), 0);
}

#[test]
fn xsave_needs_host_support() {
    // A host with max basic leaf 7 answers leaf 0xD with leaf 7's data.
    let old = |leaf: u32, sub: u32| match leaf {
        0 => r(7, 0, 0, 0),
        1 => r(0, 0, leaf1_ecx::XSAVE, 0),
        0xD => r(0xFF, 0xFF, 0xFF, 0xFF),
        _ => haswell(leaf, sub),
    };
    let c = CpuidConfig {
        xsave: true,
        ..cfg()
    };
    assert_eq!(xcr0_allowed(&old, &c), 0);
    assert_eq!(cpuid(0xD, 0, &old, &c), CpuidResult::ZERO);
    assert_eq!(cpuid(1, 0, &old, &c).ecx & leaf1_ecx::XSAVE, 0);
}

#[test]
fn xcr0_rules() {
    assert!(xcr0_valid(1, 7));
    assert!(xcr0_valid(3, 7));
    assert!(xcr0_valid(7, 7));
    assert!(!xcr0_valid(0, 7), "x87 must be set");
    assert!(!xcr0_valid(2, 7));
    assert!(!xcr0_valid(5, 7), "AVX needs SSE");
    assert!(!xcr0_valid(7, 3), "AVX not allowed");
    assert!(!xcr0_valid(0xE7, 7), "AVX-512 never allowed");
}

#[test]
fn leaf7_filtering() {
    let c = cfg();
    let v = q(7, 0, &c);
    assert_eq!(v.eax, 0);
    // Host EBX 0x27AB: FSGSBASE, TSC_ADJUST, BMI1, AVX2, SMEP, BMI2, ERMS, INVPCID,
    // FPU CS/DS deprecation (no HLE/RTM on this stepping).
    assert_eq!(
        v.ebx,
        (1 << 0) | (1 << 3) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 13)
    );
    // Host EDX: MD_CLEAR kept; IBRS/STIBP/L1D_FLUSH/SSBD dropped.
    assert_eq!(v.edx, 1 << 10);
    assert_eq!(q(7, 1, &c), CpuidResult::ZERO);
}

#[test]
fn cache_and_topology() {
    let c = cfg();
    let l0 = q(4, 0, &c);
    assert_eq!(l0.eax, 0x1C00_4121 & 0x3FFF);
    assert_eq!((l0.ebx, l0.ecx), (0x01C0_003F, 0x3F));
    assert_eq!(q(4, 3, &c).eax >> 14, 0);
    assert_eq!(q(4, 4, &c), CpuidResult::ZERO);
    assert_eq!(q(0xB, 0, &c), r(0, 1, 0x100, 3));
    assert_eq!(q(0xB, 1, &c), r(0, 1, 0x201, 3));
    assert_eq!(q(0xB, 2, &c), r(0, 0, 2, 3));
}

#[test]
fn hidden_leaves() {
    let c = cfg();
    for leaf in [
        3, 5, 6, 8, 9, 0xA, 0xC, 0xE, 0xF, 0x10, 0x12, 0x14, 0x17, 0x1F, 0xFFFF,
    ] {
        assert_eq!(q(leaf, 0, &c), CpuidResult::ZERO, "leaf {leaf:#x}");
    }
    for leaf in [
        0x4000_0001,
        0x4000_0011,
        0x4000_0100,
        0x8000_0009,
        0x8000_001F,
        0xC000_0000,
        u32::MAX,
    ] {
        assert_eq!(q(leaf, 0, &c), CpuidResult::ZERO, "leaf {leaf:#x}");
    }
}

#[test]
fn hypervisor_leaves() {
    let c = cfg();
    let v = q(0x4000_0000, 0, &c);
    assert_eq!(v.eax, MAX_HYPERVISOR_LEAF);
    let mut sig = Vec::new();
    for w in [v.ebx, v.ecx, v.edx] {
        sig.extend_from_slice(&w.to_le_bytes());
    }
    assert_eq!(&sig[..], &HYPERVISOR_SIGNATURE[..]);
    assert_eq!(&sig[..], b"cloisterVMM ");
    assert_eq!(q(0x4000_0010, 0, &c), r(50_000, 50_000, 0, 0));
}

#[test]
fn tsc_leaves() {
    let c = cfg();
    assert_eq!(q(0x15, 0, &c), r(1, 1, 50_000_000, 0));
    assert_eq!(q(0x16, 0, &c), r(50, 50, 50, 0));

    let c = CpuidConfig {
        tsc_khz: 2_400_000,
        apic_bus_khz: 100_000,
        ..cfg()
    };
    let v = q(0x15, 0, &c);
    assert_eq!(v, r(1, 24, 100_000_000, 0));
    // Linux: crystal_khz * ebx / eax in 32 bits.
    assert_eq!((v.ecx / 1000) * v.ebx / v.eax, 2_400_000);

    let c = CpuidConfig {
        tsc_khz: 3_000_001,
        apic_bus_khz: 25_000,
        ..cfg()
    };
    assert_eq!(
        q(0x15, 0, &c),
        CpuidResult::ZERO,
        "32-bit product would overflow"
    );
    assert_eq!(q(0x16, 0, &c).eax, 3000);

    let c = CpuidConfig {
        tsc_khz: 0,
        ..cfg()
    };
    assert_eq!(q(0x15, 0, &c), CpuidResult::ZERO);
    assert_eq!(q(0x16, 0, &c), CpuidResult::ZERO);
    assert_eq!(q(0x4000_0010, 0, &c).eax, 0);
}

#[test]
fn extended_leaves() {
    let c = cfg();
    assert_eq!(q(0x8000_0000, 0, &c).eax, 0x8000_0008);
    let v = q(0x8000_0001, 0, &c);
    assert_eq!(v.ecx, 0x21);
    // SYSCALL, NX, 1 GiB pages, LM; RDTSCP (27) dropped.
    assert_eq!(v.edx, (1 << 11) | (1 << 20) | (1 << 26) | (1 << 29));
    assert_eq!(q(0x8000_0002, 0, &c), haswell(0x8000_0002, 0));
    assert_eq!(q(0x8000_0007, 0, &c), r(0, 0, 0, 0x100));
    assert_eq!(q(0x8000_0008, 0, &c), r(0x3027, 0, 0, 0));

    // A host with a larger extended range is capped; a host with a smaller
    // one does not leak its out-of-range answers.
    let big = |leaf: u32, sub: u32| match leaf {
        0x8000_0000 => r(0x8000_0021, 1, 2, 3),
        _ => haswell(leaf, sub),
    };
    assert_eq!(cpuid(0x8000_0000, 0, &big, &c), r(0x8000_0008, 1, 2, 3));
    let small = |leaf: u32, sub: u32| match leaf {
        0x8000_0000 => r(0x8000_0004, 0, 0, 0),
        l if l > 0x8000_0004 => r(9, 9, 9, 9),
        _ => haswell(leaf, sub),
    };
    assert_eq!(cpuid(0x8000_0000, 0, &small, &c).eax, 0x8000_0004);
    assert_eq!(cpuid(0x8000_0008, 0, &small, &c), CpuidResult::ZERO);
}

#[test]
fn policy_table_is_sorted_and_disjoint() {
    for w in POLICY.windows(2) {
        assert!(w[0].first <= w[0].last);
        assert!(w[0].last < w[1].first, "{:?} / {:?}", w[0], w[1]);
    }
    assert!(POLICY.iter().all(|p| !p.doc.is_empty()));
    assert!(POLICY
        .iter()
        .all(|p| p.last <= MAX_BASIC_LEAF || p.first >= 0x4000_0000));
}

// ---------------------------------------------------------------- MSRs

fn msrs() -> MsrState {
    MsrState::new(MsrConfig::default())
}

#[test]
fn msr_reset_values() {
    let m = msrs();
    assert_eq!(m.read(IA32_APIC_BASE, 0), Ok(0xFEE0_0900));
    assert_eq!(m.read(IA32_FEATURE_CONTROL, 0), Ok(1));
    assert_eq!(m.read(IA32_MISC_ENABLE, 0), Ok(0x1801));
    assert_eq!(m.read(IA32_PAT, 0), Ok(0x0007_0406_0007_0406));
    assert_eq!(m.read(IA32_MTRRCAP, 0), Ok(0));
    assert_eq!(m.read(IA32_MTRR_DEF_TYPE, 0), Ok(0x806));
    assert_eq!(m.read(IA32_BIOS_SIGN_ID, 0), Ok(0));
    assert_eq!(m.read(MSR_PLATFORM_INFO, 0), Ok(0));
    assert_eq!(m.read(IA32_PLATFORM_ID, 0), Ok(0));
    assert_eq!(m.read(IA32_DEBUGCTL, 0), Ok(0));
    assert_eq!(m.read(IA32_LSTAR, 0), Ok(0));
    assert_eq!(m.apic_mode(), ApicMode::XApic);
    let off = MsrState::new(MsrConfig {
        mtrrs_enabled: false,
        ..MsrConfig::default()
    });
    assert_eq!(off.read(IA32_MTRR_DEF_TYPE, 0), Ok(6));
}

#[test]
fn msr_tsc() {
    let mut m = msrs();
    assert_eq!(m.read(IA32_TSC, 1000), Ok(1000));
    assert_eq!(
        m.write(IA32_TSC, 10, 1000),
        Ok(MsrEffect::TscOffset(10u64.wrapping_sub(1000)))
    );
    assert_eq!(m.read(IA32_TSC, 1000), Ok(10));
    assert_eq!(m.read(IA32_TSC, 1500), Ok(510));
    assert_eq!(m.tsc_offset(), 10u64.wrapping_sub(1000));
}

#[test]
fn msr_apic_base() {
    let mut m = msrs();
    let base = 0xFEE0_0900;
    assert_eq!(m.write(IA32_APIC_BASE, base, 0), Ok(MsrEffect::None));
    for bad in [
        0xFED0_0900,
        base & !APIC_BASE_EN,
        base | APIC_BASE_EXTD,
        base & !APIC_BASE_BSP,
        base | 1,
    ] {
        assert_eq!(
            m.write(IA32_APIC_BASE, bad, 0),
            Err(MsrError::ApicBase(bad))
        );
    }
    assert_eq!(m.read(IA32_APIC_BASE, 0), Ok(base));
    // x2APIC registers are #GP in xAPIC mode.
    assert_eq!(m.read(0x802, 0), Err(MsrError::Unknown(0x802)));

    let mut m = MsrState::new(MsrConfig {
        x2apic: true,
        ..MsrConfig::default()
    });
    assert_eq!(
        m.write(IA32_APIC_BASE, base | APIC_BASE_EXTD, 0),
        Ok(MsrEffect::ApicMode(ApicMode::X2Apic))
    );
    assert_eq!(m.apic_mode(), ApicMode::X2Apic);
    assert_eq!(
        m.read(0x802, 0),
        Err(MsrError::Elsewhere {
            msr: 0x802,
            owner: Owner::Lapic
        })
    );
    // No way back to xAPIC, and no disabling.
    assert!(m.write(IA32_APIC_BASE, base, 0).is_err());
    assert!(m.write(IA32_APIC_BASE, 0, 0).is_err());
    assert_eq!(
        m.write(IA32_APIC_BASE, base | APIC_BASE_EXTD, 0),
        Ok(MsrEffect::None)
    );
}

#[test]
fn msr_read_only_and_fixed() {
    let mut m = msrs();
    assert!(matches!(
        m.write(IA32_FEATURE_CONTROL, 1, 0),
        Err(MsrError::ReadOnly { .. })
    ));
    assert!(matches!(
        m.write(IA32_FEATURE_CONTROL, 5, 0),
        Err(MsrError::ReadOnly { .. })
    ));
    assert!(matches!(
        m.write(IA32_MTRRCAP, 0, 0),
        Err(MsrError::ReadOnly { .. })
    ));
    assert!(matches!(
        m.write(MSR_PLATFORM_INFO, 0, 0),
        Err(MsrError::ReadOnly { .. })
    ));
    assert_eq!(m.write(IA32_MISC_ENABLE, 0x1801, 0), Ok(MsrEffect::None));
    assert!(matches!(
        m.write(IA32_MISC_ENABLE, 0x1800, 0),
        Err(MsrError::ReadOnly { .. })
    ));
    assert_eq!(m.write(IA32_BIOS_SIGN_ID, 0, 0), Ok(MsrEffect::None));
    assert_eq!(m.write(IA32_DEBUGCTL, 0, 0), Ok(MsrEffect::None));
    assert!(matches!(
        m.write(IA32_DEBUGCTL, 1, 0),
        Err(MsrError::Reserved { .. })
    ));
}

#[test]
fn msr_pat_and_mtrr() {
    let mut m = msrs();
    let pat = 0x0007_0106_0007_0406; // WC in entry 5
    assert_eq!(
        m.write(IA32_PAT, pat, 0),
        Ok(MsrEffect::Sync {
            msr: IA32_PAT,
            value: pat
        })
    );
    assert_eq!(m.read(IA32_PAT, 0), Ok(pat));
    for bad in [0x02, 0x03, 0x08, 0x0200_0000_0000_0000, 0xFF] {
        assert!(
            matches!(m.write(IA32_PAT, bad, 0), Err(MsrError::Reserved { .. })),
            "{bad:#x}"
        );
    }
    assert_eq!(m.read(IA32_PAT, 0), Ok(pat));

    for ok in [0x0, 0x6, 0x800, 0x806, 0x804, 0x805] {
        assert_eq!(m.write(IA32_MTRR_DEF_TYPE, ok, 0), Ok(MsrEffect::None));
        assert_eq!(m.read(IA32_MTRR_DEF_TYPE, 0), Ok(ok));
    }
    for bad in [0xC06, 0x406, 0x801, 0x802, 0x807, 0x1806, 1 << 40] {
        assert!(m.write(IA32_MTRR_DEF_TYPE, bad, 0).is_err(), "{bad:#x}");
    }
    let no = MsrState::new(MsrConfig {
        mtrr: false,
        ..MsrConfig::default()
    });
    assert_eq!(
        no.read(IA32_MTRRCAP, 0),
        Err(MsrError::Disabled(IA32_MTRRCAP))
    );
    // Variable-range MTRRs do not exist (MTRRCAP.VCNT = 0).
    assert_eq!(m.read(0x200, 0), Err(MsrError::Unknown(0x200)));
}

#[test]
fn msr_tsc_deadline() {
    let mut m = msrs();
    assert_eq!(
        m.read(IA32_TSC_DEADLINE, 0),
        Err(MsrError::Disabled(IA32_TSC_DEADLINE))
    );
    assert_eq!(
        m.write(IA32_TSC_DEADLINE, 5, 0),
        Err(MsrError::Disabled(IA32_TSC_DEADLINE))
    );
    let mut m = MsrState::new(cfg_with_deadline());
    assert_eq!(
        m.write(IA32_TSC_DEADLINE, 12345, 0),
        Ok(MsrEffect::TscDeadline(12345))
    );
    assert_eq!(m.read(IA32_TSC_DEADLINE, 0), Ok(12345));
    assert_eq!(m.tsc_deadline(), 12345);
}

fn cfg_with_deadline() -> MsrConfig {
    CpuidConfig {
        tsc_deadline: true,
        ..cfg()
    }
    .msr_config()
}

#[test]
fn msr_syscall_and_bases() {
    let mut m = msrs();
    let hi = 0xFFFF_8000_0000_1000;
    for msr in [
        IA32_LSTAR,
        IA32_CSTAR,
        IA32_FS_BASE,
        IA32_GS_BASE,
        IA32_KERNEL_GS_BASE,
    ] {
        assert_eq!(m.write(msr, hi, 0), Ok(MsrEffect::Sync { msr, value: hi }));
        assert_eq!(m.read(msr, 0), Ok(hi));
        assert_eq!(
            m.write(msr, 0x0000_7FFF_FFFF_F000, 0),
            Ok(MsrEffect::Sync {
                msr,
                value: 0x0000_7FFF_FFFF_F000
            })
        );
        for bad in [
            0x0000_8000_0000_0000,
            0xFFFF_7FFF_FFFF_FFFF,
            0x8000_0000_0000_0000,
        ] {
            assert_eq!(
                m.write(msr, bad, 0),
                Err(MsrError::NonCanonical { msr, value: bad })
            );
        }
        assert_eq!(m.read(msr, 0), Ok(0x0000_7FFF_FFFF_F000));
    }
    assert!(m.write(IA32_STAR, 0x0023_0010_0000_0000, 0).is_ok());
    assert_eq!(m.read(IA32_STAR, 0), Ok(0x0023_0010_0000_0000));
    assert!(m.write(IA32_FMASK, 0x4_7700, 0).is_ok());
    assert!(matches!(
        m.write(IA32_FMASK, 1 << 32, 0),
        Err(MsrError::Reserved { .. })
    ));
}

#[test]
fn msr_elsewhere_and_unknown() {
    let mut m = msrs();
    for msr in [
        IA32_EFER,
        IA32_SYSENTER_CS,
        IA32_SYSENTER_ESP,
        IA32_SYSENTER_EIP,
    ] {
        let e = MsrError::Elsewhere {
            msr,
            owner: Owner::Vmcs,
        };
        assert_eq!(m.read(msr, 0), Err(e));
        assert_eq!(m.write(msr, 0, 0), Err(e));
    }
    for msr in [
        0,
        0x48,
        0x49,
        0x10A,
        0x3B,
        0x179,
        0x345,
        0xC000_0103,
        0xC001_0015,
        u32::MAX,
    ] {
        assert_eq!(m.read(msr, 0), Err(MsrError::Unknown(msr)));
        assert_eq!(m.write(msr, 0, 0), Err(MsrError::Unknown(msr)));
    }
}

#[test]
fn msr_error_display() {
    assert_eq!(
        MsrError::Unknown(0x48).to_string(),
        "MSR 0x48 is not emulated"
    );
    assert_eq!(
        MsrError::NonCanonical {
            msr: IA32_LSTAR,
            value: 1 << 47
        }
        .to_string(),
        "MSR 0xc0000082 (IA32_LSTAR) write of non-canonical address 0x800000000000"
    );
    assert!(MsrError::Elsewhere {
        msr: IA32_EFER,
        owner: Owner::Vmcs
    }
    .to_string()
    .contains("VMCS"));
    assert_eq!(MsrError::ApicBase(0).msr(), Some(IA32_APIC_BASE));
    assert_eq!(msr_name(0x830), Some("x2APIC register"));
    assert_eq!(msr_name(0x1234), None);
}

// ---------------------------------------------------------------- properties

/// A host whose every leaf answers pseudo-random bits (a hostile or future CPU).
fn noisy(seed: u64) -> impl Fn(u32, u32) -> CpuidResult {
    move |leaf, sub| {
        let mut x = seed ^ (u64::from(leaf) << 32 | u64::from(sub));
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u32
        };
        let mut v = r(next(), next(), next(), next());
        if leaf == 0 {
            v.eax %= 0x40;
        }
        if leaf == 0x8000_0000 {
            v.eax = 0x8000_0000 | (v.eax % 0x40);
        }
        v
    }
}

fn any_cfg() -> impl Strategy<Value = CpuidConfig> {
    (
        any::<u32>(),
        any::<[bool; 5]>(),
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(apic_id, b, guest_xcr0, tsc_khz, apic_bus_khz)| CpuidConfig {
                apic_id,
                x2apic: b[0],
                tsc_deadline: b[1],
                xsave: b[2],
                guest_osxsave: b[3],
                mtrr: b[4],
                guest_xcr0,
                tsc_khz,
                apic_bus_khz,
            },
        )
}

fn interesting_leaf() -> impl Strategy<Value = u32> {
    prop_oneof![
        0u32..0x20,
        0x4000_0000u32..0x4000_0020,
        0x8000_0000u32..0x8000_0010,
        any::<u32>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn cpuid_never_leaks(seed in any::<u64>(), leaf in interesting_leaf(), sub in any::<u32>(), c in any_cfg()) {
        let host = noisy(seed);
        let v = cpuid(leaf, sub, &host, &c);
        prop_assert_eq!(v, cpuid(leaf, sub, &host, &c), "deterministic");
        if rule_for_test(leaf).is_none() {
            prop_assert_eq!(v, CpuidResult::ZERO);
        }
        if (MAX_BASIC_LEAF + 1..0x4000_0000).contains(&leaf) {
            prop_assert_eq!(v, CpuidResult::ZERO);
        }
        match leaf {
            1 => {
                let allowed_ecx = leaf1_ecx::ALLOWED | leaf1_ecx::NEEDS_AVX | leaf1_ecx::HYPERVISOR
                    | leaf1_ecx::XSAVE | leaf1_ecx::OSXSAVE | leaf1_ecx::X2APIC | leaf1_ecx::TSC_DEADLINE;
                prop_assert_eq!(v.ecx & !allowed_ecx, 0);
                prop_assert_ne!(v.ecx & leaf1_ecx::HYPERVISOR, 0);
                prop_assert_eq!(v.ecx & leaf1_ecx::VMX, 0);
                prop_assert_eq!(v.ecx & leaf1_ecx::X2APIC != 0, c.x2apic);
                prop_assert_eq!(v.ecx & leaf1_ecx::TSC_DEADLINE != 0, c.tsc_deadline);
                if !c.xsave {
                    prop_assert_eq!(v.ecx & (leaf1_ecx::XSAVE | leaf1_ecx::OSXSAVE | leaf1_ecx::NEEDS_AVX), 0);
                }
                if v.ecx & leaf1_ecx::OSXSAVE != 0 {
                    prop_assert!(c.guest_osxsave);
                }
                prop_assert_eq!(v.edx & !(leaf1_edx::ALLOWED | leaf1_edx::APIC | leaf1_edx::MTRR), 0);
                prop_assert_eq!(v.ebx >> 24, c.apic_id & 0xFF);
            }
            7 => {
                let ok_ebx = cpuid::leaf7::EBX | cpuid::leaf7::EBX_NEEDS_AVX;
                let ok_ecx = cpuid::leaf7::ECX | cpuid::leaf7::ECX_NEEDS_AVX;
                prop_assert_eq!(v.ebx & !ok_ebx, 0);
                prop_assert_eq!(v.ecx & !ok_ecx, 0);
                prop_assert_eq!(v.edx & !cpuid::leaf7::EDX, 0);
                prop_assert_eq!(v.eax, 0);
            }
            0xD => {
                prop_assert_eq!(v.edx, 0);
                if sub <= 1 { prop_assert_eq!(v.eax & !7, 0); }
                if sub > 2 { prop_assert_eq!(v, CpuidResult::ZERO); }
                if !c.xsave { prop_assert_eq!(v, CpuidResult::ZERO); }
            }
            0 => prop_assert_eq!(v.eax, MAX_BASIC_LEAF),
            0x8000_0000 => prop_assert!((0x8000_0000..=0x8000_0008).contains(&v.eax)),
            0x8000_0001 => {
                prop_assert_eq!(v.ecx & !((1 << 0) | (1 << 5) | (1 << 8)), 0);
                prop_assert_eq!(v.edx & (1 << 27), 0, "no RDTSCP");
            }
            0x15 if v.eax != 0 => {
                // Linux's 32-bit arithmetic gives back the configured TSC frequency.
                let crystal = v.ecx / 1000;
                let prod = crystal.checked_mul(v.ebx);
                prop_assert!(prod.is_some());
                prop_assert_eq!(prod.unwrap_or(0) / v.eax, c.tsc_khz);
            }
            _ => {}
        }
    }

    #[test]
    fn xcr0_allowed_is_subset(seed in any::<u64>(), c in any_cfg(), value in any::<u64>()) {
        let host = noisy(seed);
        let allowed = xcr0_allowed(&host, &c);
        prop_assert_eq!(allowed & !7, 0);
        if xcr0_valid(value, allowed) {
            prop_assert_eq!(value & !allowed, 0);
            prop_assert_ne!(value & 1, 0);
        }
    }

    #[test]
    fn msr_sequences(
        x2apic in any::<bool>(),
        deadline in any::<bool>(),
        ops in proptest::collection::vec(
            (prop_oneof![
                prop::sample::select(MSR_NAMES.iter().map(|(m, _)| *m).collect::<Vec<_>>()),
                0x800u32..0x900,
                any::<u32>(),
            ],
            prop_oneof![Just(0u64), Just(0xFEE0_0900), Just(0xFEE0_0D00), Just(PAT_RESET),
                        Just(0x806), any::<u64>()],
            any::<u64>(),
            any::<bool>()),
            1..64,
        ),
    ) {
        let mut m = MsrState::new(MsrConfig { x2apic, tsc_deadline: deadline, ..MsrConfig::default() });
        for (msr, value, tsc, is_write) in ops {
            if is_write {
                let before = m.clone();
                match m.write(msr, value, tsc) {
                    Ok(_) => {
                        let expect = match msr {
                            IA32_BIOS_SIGN_ID => 0,
                            _ => value,
                        };
                        prop_assert_eq!(m.read(msr, tsc), Ok(expect), "read-back of {:#x}", msr);
                    }
                    Err(e) => {
                        prop_assert_eq!(&m, &before, "a refused write changes nothing");
                        prop_assert!(!e.to_string().is_empty());
                    }
                }
            } else {
                let _ = m.read(msr, tsc);
            }
            // Invariants.
            let base = m.read(IA32_APIC_BASE, 0).unwrap_or(0);
            prop_assert!(base == 0xFEE0_0900 || (x2apic && base == 0xFEE0_0D00));
            prop_assert!(m.read(IA32_PAT, 0).map(|p| p.to_le_bytes().iter().all(|b| matches!(b, 0 | 1 | 4..=7))).unwrap_or(false));
            for a in [IA32_LSTAR, IA32_CSTAR, IA32_FS_BASE, IA32_GS_BASE, IA32_KERNEL_GS_BASE] {
                prop_assert!(is_canonical(m.read(a, 0).unwrap_or(0)));
            }
            prop_assert_eq!(m.read(IA32_TSC_DEADLINE, 0).is_ok(), deadline);
        }
    }

    #[test]
    fn canonical_matches_sign_extension(v in any::<u64>()) {
        let sext = (((v << 16) as i64) >> 16) as u64;
        prop_assert_eq!(is_canonical(v), sext == v);
    }
}

fn rule_for_test(leaf: u32) -> Option<Rule> {
    cpuid::rule_for(leaf)
}
