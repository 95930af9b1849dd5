//! The MSR policy: a per-vCPU allow-list of model-specific registers.
//!
//! [`MsrState::read`] and [`MsrState::write`] answer the guest's RDMSR and
//! WRMSR exits. An `Err` always means "inject #GP(0) into the guest"; the
//! variant says why, for the log. A successful write returns an
//! [`MsrEffect`] telling the caller what it must propagate (VMCS fields,
//! the seL4 VCPU's MSR state, timers). See the crate docs for the table.

use core::fmt;

/// IA32_TIME_STAMP_COUNTER.
pub const IA32_TSC: u32 = 0x10;
/// IA32_PLATFORM_ID.
pub const IA32_PLATFORM_ID: u32 = 0x17;
/// IA32_APIC_BASE.
pub const IA32_APIC_BASE: u32 = 0x1B;
/// IA32_FEATURE_CONTROL.
pub const IA32_FEATURE_CONTROL: u32 = 0x3A;
/// IA32_BIOS_SIGN_ID (microcode revision).
pub const IA32_BIOS_SIGN_ID: u32 = 0x8B;
/// MSR_PLATFORM_INFO.
pub const MSR_PLATFORM_INFO: u32 = 0xCE;
/// IA32_MTRRCAP.
pub const IA32_MTRRCAP: u32 = 0xFE;
/// IA32_SYSENTER_CS.
pub const IA32_SYSENTER_CS: u32 = 0x174;
/// IA32_SYSENTER_ESP.
pub const IA32_SYSENTER_ESP: u32 = 0x175;
/// IA32_SYSENTER_EIP.
pub const IA32_SYSENTER_EIP: u32 = 0x176;
/// IA32_MISC_ENABLE.
pub const IA32_MISC_ENABLE: u32 = 0x1A0;
/// IA32_DEBUGCTL.
pub const IA32_DEBUGCTL: u32 = 0x1D9;
/// IA32_PAT.
pub const IA32_PAT: u32 = 0x277;
/// IA32_MTRR_DEF_TYPE.
pub const IA32_MTRR_DEF_TYPE: u32 = 0x2FF;
/// IA32_TSC_DEADLINE.
pub const IA32_TSC_DEADLINE: u32 = 0x6E0;
/// First x2APIC register MSR.
pub const X2APIC_FIRST: u32 = 0x800;
/// Last x2APIC register MSR.
pub const X2APIC_LAST: u32 = 0x8FF;
/// IA32_EFER.
pub const IA32_EFER: u32 = 0xC000_0080;
/// IA32_STAR.
pub const IA32_STAR: u32 = 0xC000_0081;
/// IA32_LSTAR.
pub const IA32_LSTAR: u32 = 0xC000_0082;
/// IA32_CSTAR.
pub const IA32_CSTAR: u32 = 0xC000_0083;
/// IA32_FMASK.
pub const IA32_FMASK: u32 = 0xC000_0084;
/// IA32_FS_BASE.
pub const IA32_FS_BASE: u32 = 0xC000_0100;
/// IA32_GS_BASE.
pub const IA32_GS_BASE: u32 = 0xC000_0101;
/// IA32_KERNEL_GS_BASE.
pub const IA32_KERNEL_GS_BASE: u32 = 0xC000_0102;

/// The xAPIC MMIO base the guest's LAPIC lives at.
pub const APIC_BASE_ADDR: u64 = 0xFEE0_0000;
/// IA32_APIC_BASE.BSP: this is the bootstrap processor.
pub const APIC_BASE_BSP: u64 = 1 << 8;
/// IA32_APIC_BASE.EXTD: x2APIC mode.
pub const APIC_BASE_EXTD: u64 = 1 << 10;
/// IA32_APIC_BASE.EN: APIC globally enabled.
pub const APIC_BASE_EN: u64 = 1 << 11;
/// IA32_FEATURE_CONTROL as read: locked, VMX disabled inside and outside SMX.
pub const FEATURE_CONTROL_VALUE: u64 = 1;
/// IA32_MISC_ENABLE as read: fast strings (bit 0), BTS unavailable (11),
/// PEBS unavailable (12). Everything else (e.g. Enhanced SpeedStep, MONITOR,
/// limit-CPUID, XD disable) is off.
pub const MISC_ENABLE_VALUE: u64 = (1 << 0) | (1 << 11) | (1 << 12);
/// IA32_PAT at reset: WB, WT, UC-, UC, repeated.
pub const PAT_RESET: u64 = 0x0007_0406_0007_0406;

/// Names of the MSRs this module knows, for logs.
pub const MSR_NAMES: &[(u32, &str)] = &[
    (IA32_TSC, "IA32_TSC"),
    (IA32_PLATFORM_ID, "IA32_PLATFORM_ID"),
    (IA32_APIC_BASE, "IA32_APIC_BASE"),
    (IA32_FEATURE_CONTROL, "IA32_FEATURE_CONTROL"),
    (IA32_BIOS_SIGN_ID, "IA32_BIOS_SIGN_ID"),
    (MSR_PLATFORM_INFO, "MSR_PLATFORM_INFO"),
    (IA32_MTRRCAP, "IA32_MTRRCAP"),
    (IA32_SYSENTER_CS, "IA32_SYSENTER_CS"),
    (IA32_SYSENTER_ESP, "IA32_SYSENTER_ESP"),
    (IA32_SYSENTER_EIP, "IA32_SYSENTER_EIP"),
    (IA32_MISC_ENABLE, "IA32_MISC_ENABLE"),
    (IA32_DEBUGCTL, "IA32_DEBUGCTL"),
    (IA32_PAT, "IA32_PAT"),
    (IA32_MTRR_DEF_TYPE, "IA32_MTRR_DEF_TYPE"),
    (IA32_TSC_DEADLINE, "IA32_TSC_DEADLINE"),
    (IA32_EFER, "IA32_EFER"),
    (IA32_STAR, "IA32_STAR"),
    (IA32_LSTAR, "IA32_LSTAR"),
    (IA32_CSTAR, "IA32_CSTAR"),
    (IA32_FMASK, "IA32_FMASK"),
    (IA32_FS_BASE, "IA32_FS_BASE"),
    (IA32_GS_BASE, "IA32_GS_BASE"),
    (IA32_KERNEL_GS_BASE, "IA32_KERNEL_GS_BASE"),
];

/// The name of `msr`, if this module knows it.
pub fn msr_name(msr: u32) -> Option<&'static str> {
    if (X2APIC_FIRST..=X2APIC_LAST).contains(&msr) {
        return Some("x2APIC register");
    }
    MSR_NAMES.iter().find(|(i, _)| *i == msr).map(|(_, n)| *n)
}

/// Who handles an MSR that is not stored here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// A VMCS guest-state field (EFER, SYSENTER_*): the exit handler reads or writes the VMCS.
    Vmcs,
    /// The LAPIC model (x2APIC registers, once x2APIC mode is on).
    Lapic,
}

/// Why an MSR access is refused. Every variant means: inject #GP(0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsrError {
    /// The MSR is not on the allow-list.
    Unknown(u32),
    /// The MSR exists but belongs to a feature this vCPU does not have.
    Disabled(u32),
    /// The MSR cannot be written (or only with its current value).
    ReadOnly {
        /// The MSR.
        msr: u32,
        /// The value the guest tried to write.
        value: u64,
    },
    /// The value sets reserved bits or names an invalid memory type.
    Reserved {
        /// The MSR.
        msr: u32,
        /// The value the guest tried to write.
        value: u64,
    },
    /// An address MSR was given a non-canonical address.
    NonCanonical {
        /// The MSR.
        msr: u32,
        /// The value the guest tried to write.
        value: u64,
    },
    /// An IA32_APIC_BASE write that would move, disable or mode-switch the
    /// APIC in a way the VMM does not support.
    ApicBase(u64),
    /// The MSR lives elsewhere; the caller should have routed it there. If it
    /// reaches this module anyway, #GP is the safe answer.
    Elsewhere {
        /// The MSR.
        msr: u32,
        /// Where it lives.
        owner: Owner,
    },
}

impl MsrError {
    /// The MSR the guest accessed, if the error names it.
    pub fn msr(&self) -> Option<u32> {
        match *self {
            MsrError::Unknown(m) | MsrError::Disabled(m) => Some(m),
            MsrError::ReadOnly { msr, .. }
            | MsrError::Reserved { msr, .. }
            | MsrError::NonCanonical { msr, .. }
            | MsrError::Elsewhere { msr, .. } => Some(msr),
            MsrError::ApicBase(_) => Some(IA32_APIC_BASE),
        }
    }
}

struct Name(u32);

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match msr_name(self.0) {
            Some(n) => write!(f, "MSR {:#x} ({n})", self.0),
            None => write!(f, "MSR {:#x}", self.0),
        }
    }
}

impl fmt::Display for MsrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MsrError::Unknown(m) => write!(f, "{} is not emulated", Name(m)),
            MsrError::Disabled(m) => write!(f, "{} belongs to a feature this vCPU lacks", Name(m)),
            MsrError::ReadOnly { msr, value } => {
                write!(f, "{} is read-only (write of {value:#x})", Name(msr))
            }
            MsrError::Reserved { msr, value } => write!(
                f,
                "{} write of {value:#x} sets reserved bits or an invalid type",
                Name(msr)
            ),
            MsrError::NonCanonical { msr, value } => {
                write!(f, "{} write of non-canonical address {value:#x}", Name(msr))
            }
            MsrError::ApicBase(v) => write!(
                f,
                "IA32_APIC_BASE write of {v:#x} would move, disable or leave x2APIC mode"
            ),
            MsrError::Elsewhere { msr, owner } => write!(
                f,
                "{} is handled by the {}, not the MSR policy",
                Name(msr),
                match owner {
                    Owner::Vmcs => "VMCS",
                    Owner::Lapic => "LAPIC model",
                }
            ),
        }
    }
}

/// What the caller must do after a successful write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum MsrEffect {
    /// Nothing beyond the stored value.
    None,
    /// The guest wrote its TSC: load this value into the VMCS TSC offset.
    TscOffset(u64),
    /// Arm the LAPIC deadline timer at this guest TSC value (0 disarms).
    TscDeadline(u64),
    /// The APIC switched mode: tell the LAPIC model.
    ApicMode(ApicMode),
    /// Propagate the value to where the hardware uses it: FS/GS base and PAT
    /// into the VMCS guest fields; STAR, LSTAR, CSTAR, FMASK and
    /// KERNEL_GS_BASE into the vCPU's MSR switching (the guest's SYSCALL uses
    /// the real MSRs). A caller that passes these MSRs through never sees this.
    Sync {
        /// The MSR.
        msr: u32,
        /// Its new value.
        value: u64,
    },
}

/// The LAPIC's mode as IA32_APIC_BASE shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApicMode {
    /// xAPIC: registers in MMIO at [`APIC_BASE_ADDR`].
    XApic,
    /// x2APIC: registers as MSRs 0x800–0x8FF.
    X2Apic,
}

/// Which optional MSRs a vCPU has; keep it consistent with the CPUID policy
/// ([`CpuidConfig::msr_config`](crate::CpuidConfig::msr_config)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsrConfig {
    /// The LAPIC model supports x2APIC: IA32_APIC_BASE may switch to x2APIC mode.
    pub x2apic: bool,
    /// IA32_TSC_DEADLINE exists.
    pub tsc_deadline: bool,
    /// IA32_MTRRCAP and IA32_MTRR_DEF_TYPE exist (CPUID MTRR bit).
    pub mtrr: bool,
    /// IA32_MTRR_DEF_TYPE starts as 0x806 (MTRRs enabled, default write-back)
    /// rather than 0x006 (disabled). With MTRRs "enabled" Linux 6.1 keeps PAT
    /// but runs its cache-disable dance on CR0 at boot.
    pub mtrrs_enabled: bool,
}

impl Default for MsrConfig {
    fn default() -> Self {
        MsrConfig {
            x2apic: false,
            tsc_deadline: false,
            mtrr: true,
            mtrrs_enabled: true,
        }
    }
}

/// One vCPU's MSR state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsrState {
    cfg: MsrConfig,
    tsc_offset: u64,
    apic_base: u64,
    pat: u64,
    mtrr_def_type: u64,
    tsc_deadline: u64,
    star: u64,
    lstar: u64,
    cstar: u64,
    fmask: u64,
    fs_base: u64,
    gs_base: u64,
    kernel_gs_base: u64,
}

/// Whether `v` is a canonical 48-bit linear address (bits 63:47 all equal).
pub fn is_canonical(v: u64) -> bool {
    let top = v >> 47;
    top == 0 || top == 0x1_FFFF
}

/// PAT and MTRR memory types: UC 0, WC 1, WT 4, WP 5, WB 6 (and UC- 7, PAT only).
fn valid_pat(v: u64) -> bool {
    v.to_le_bytes()
        .iter()
        .all(|b| matches!(b, 0 | 1 | 4 | 5 | 6 | 7))
}

impl MsrState {
    /// Reset state: TSC offset 0, xAPIC enabled at 0xFEE00000 as the BSP,
    /// PAT at its reset value, MTRR default type per `cfg`, everything else 0.
    pub fn new(cfg: MsrConfig) -> Self {
        MsrState {
            cfg,
            tsc_offset: 0,
            apic_base: APIC_BASE_ADDR | APIC_BASE_EN | APIC_BASE_BSP,
            pat: PAT_RESET,
            mtrr_def_type: if cfg.mtrrs_enabled { 0x806 } else { 0x006 },
            tsc_deadline: 0,
            star: 0,
            lstar: 0,
            cstar: 0,
            fmask: 0,
            fs_base: 0,
            gs_base: 0,
            kernel_gs_base: 0,
        }
    }

    /// The configuration this state was made with.
    pub fn config(&self) -> MsrConfig {
        self.cfg
    }

    /// Guest TSC = host TSC + this (wrapping); the VMCS TSC-offset value.
    pub fn tsc_offset(&self) -> u64 {
        self.tsc_offset
    }

    /// The armed TSC deadline in guest TSC units (0: disarmed).
    pub fn tsc_deadline(&self) -> u64 {
        self.tsc_deadline
    }

    /// The LAPIC's current mode.
    pub fn apic_mode(&self) -> ApicMode {
        if self.apic_base & APIC_BASE_EXTD != 0 {
            ApicMode::X2Apic
        } else {
            ApicMode::XApic
        }
    }

    /// Guest RDMSR. `host_tsc` is the host's TSC now (used for IA32_TSC).
    pub fn read(&self, msr: u32, host_tsc: u64) -> Result<u64, MsrError> {
        Ok(match msr {
            IA32_TSC => host_tsc.wrapping_add(self.tsc_offset),
            IA32_PLATFORM_ID | IA32_BIOS_SIGN_ID | MSR_PLATFORM_INFO | IA32_DEBUGCTL => 0,
            IA32_APIC_BASE => self.apic_base,
            IA32_FEATURE_CONTROL => FEATURE_CONTROL_VALUE,
            IA32_MISC_ENABLE => MISC_ENABLE_VALUE,
            IA32_PAT => self.pat,
            IA32_MTRRCAP | IA32_MTRR_DEF_TYPE if !self.cfg.mtrr => {
                return Err(MsrError::Disabled(msr))
            }
            IA32_MTRRCAP => 0,
            IA32_MTRR_DEF_TYPE => self.mtrr_def_type,
            IA32_TSC_DEADLINE if !self.cfg.tsc_deadline => return Err(MsrError::Disabled(msr)),
            IA32_TSC_DEADLINE => self.tsc_deadline,
            IA32_STAR => self.star,
            IA32_LSTAR => self.lstar,
            IA32_CSTAR => self.cstar,
            IA32_FMASK => self.fmask,
            IA32_FS_BASE => self.fs_base,
            IA32_GS_BASE => self.gs_base,
            IA32_KERNEL_GS_BASE => self.kernel_gs_base,
            _ => return Err(self.not_here(msr)),
        })
    }

    /// Guest WRMSR. `host_tsc` is the host's TSC now (used for IA32_TSC).
    pub fn write(&mut self, msr: u32, value: u64, host_tsc: u64) -> Result<MsrEffect, MsrError> {
        let read_only = MsrError::ReadOnly { msr, value };
        let reserved = MsrError::Reserved { msr, value };
        let canonical = |slot: &mut u64| {
            if is_canonical(value) {
                *slot = value;
                Ok(MsrEffect::Sync { msr, value })
            } else {
                Err(MsrError::NonCanonical { msr, value })
            }
        };
        match msr {
            IA32_TSC => {
                self.tsc_offset = value.wrapping_sub(host_tsc);
                Ok(MsrEffect::TscOffset(self.tsc_offset))
            }
            // Linux writes 0 here before reading the microcode revision.
            IA32_BIOS_SIGN_ID => Ok(MsrEffect::None),
            IA32_PLATFORM_ID | MSR_PLATFORM_INFO | IA32_FEATURE_CONTROL => Err(read_only),
            IA32_APIC_BASE => self.write_apic_base(value),
            IA32_MISC_ENABLE if value == MISC_ENABLE_VALUE => Ok(MsrEffect::None),
            IA32_MISC_ENABLE => Err(read_only),
            IA32_DEBUGCTL if value == 0 => Ok(MsrEffect::None),
            IA32_DEBUGCTL => Err(reserved),
            IA32_PAT if valid_pat(value) => {
                self.pat = value;
                Ok(MsrEffect::Sync { msr, value })
            }
            IA32_PAT => Err(reserved),
            IA32_MTRRCAP | IA32_MTRR_DEF_TYPE if !self.cfg.mtrr => Err(MsrError::Disabled(msr)),
            IA32_MTRRCAP => Err(read_only),
            IA32_MTRR_DEF_TYPE => {
                // Bits 7:0 type, 10 FE, 11 E; FE needs fixed-range MTRRs (none).
                // Types: UC, WT, WP, WB (WC needs MTRRCAP.WC, which is 0).
                let ok = value & !0x8FF == 0 && matches!(value & 0xFF, 0 | 4 | 5 | 6);
                if !ok {
                    return Err(reserved);
                }
                self.mtrr_def_type = value;
                Ok(MsrEffect::None)
            }
            IA32_TSC_DEADLINE if !self.cfg.tsc_deadline => Err(MsrError::Disabled(msr)),
            IA32_TSC_DEADLINE => {
                self.tsc_deadline = value;
                Ok(MsrEffect::TscDeadline(value))
            }
            IA32_STAR => {
                self.star = value;
                Ok(MsrEffect::Sync { msr, value })
            }
            IA32_FMASK if value >> 32 != 0 => Err(reserved),
            IA32_FMASK => {
                self.fmask = value;
                Ok(MsrEffect::Sync { msr, value })
            }
            IA32_LSTAR => canonical(&mut self.lstar),
            IA32_CSTAR => canonical(&mut self.cstar),
            IA32_FS_BASE => canonical(&mut self.fs_base),
            IA32_GS_BASE => canonical(&mut self.gs_base),
            IA32_KERNEL_GS_BASE => canonical(&mut self.kernel_gs_base),
            _ => Err(self.not_here(msr)),
        }
    }

    fn write_apic_base(&mut self, value: u64) -> Result<MsrEffect, MsrError> {
        if value == self.apic_base {
            return Ok(MsrEffect::None);
        }
        // The only change allowed: xAPIC -> x2APIC, everything else kept.
        if self.cfg.x2apic
            && self.apic_mode() == ApicMode::XApic
            && value == self.apic_base | APIC_BASE_EXTD
        {
            self.apic_base = value;
            return Ok(MsrEffect::ApicMode(ApicMode::X2Apic));
        }
        Err(MsrError::ApicBase(value))
    }

    fn not_here(&self, msr: u32) -> MsrError {
        match msr {
            IA32_EFER | IA32_SYSENTER_CS | IA32_SYSENTER_ESP | IA32_SYSENTER_EIP => {
                MsrError::Elsewhere {
                    msr,
                    owner: Owner::Vmcs,
                }
            }
            X2APIC_FIRST..=X2APIC_LAST if self.apic_mode() == ApicMode::X2Apic => {
                MsrError::Elsewhere {
                    msr,
                    owner: Owner::Lapic,
                }
            }
            _ => MsrError::Unknown(msr),
        }
    }
}
