//! Intel VMX architectural constants: VMCS field encodings, control bits and
//! exit reasons (Intel SDM Vol. 3, Appendices A–C). These are fixed by the
//! architecture, not by seL4's configuration.

/// VMCS field encodings the VMM reads or writes.
pub mod field {
    pub const GUEST_ES_SELECTOR: u32 = 0x0800;
    pub const GUEST_CS_SELECTOR: u32 = 0x0802;
    pub const GUEST_SS_SELECTOR: u32 = 0x0804;
    pub const GUEST_DS_SELECTOR: u32 = 0x0806;
    pub const GUEST_FS_SELECTOR: u32 = 0x0808;
    pub const GUEST_GS_SELECTOR: u32 = 0x080A;
    pub const GUEST_LDTR_SELECTOR: u32 = 0x080C;
    pub const GUEST_TR_SELECTOR: u32 = 0x080E;
    pub const GUEST_PAT: u32 = 0x2804;
    pub const GUEST_EFER: u32 = 0x2806;
    pub const PRIMARY_CONTROLS: u32 = 0x4002;
    pub const EXCEPTION_BITMAP: u32 = 0x4004;
    pub const ENTRY_CONTROLS: u32 = 0x4012;
    pub const ENTRY_INTERRUPTION_INFO: u32 = 0x4016;
    pub const ENTRY_EXCEPTION_ERROR_CODE: u32 = 0x4018;
    pub const SECONDARY_CONTROLS: u32 = 0x401E;
    pub const GUEST_ES_LIMIT: u32 = 0x4800;
    pub const GUEST_CS_LIMIT: u32 = 0x4802;
    pub const GUEST_SS_LIMIT: u32 = 0x4804;
    pub const GUEST_DS_LIMIT: u32 = 0x4806;
    pub const GUEST_FS_LIMIT: u32 = 0x4808;
    pub const GUEST_GS_LIMIT: u32 = 0x480A;
    pub const GUEST_LDTR_LIMIT: u32 = 0x480C;
    pub const GUEST_TR_LIMIT: u32 = 0x480E;
    pub const GUEST_GDTR_LIMIT: u32 = 0x4810;
    pub const GUEST_IDTR_LIMIT: u32 = 0x4812;
    pub const GUEST_ES_ACCESS_RIGHTS: u32 = 0x4814;
    pub const GUEST_CS_ACCESS_RIGHTS: u32 = 0x4816;
    pub const GUEST_SS_ACCESS_RIGHTS: u32 = 0x4818;
    pub const GUEST_DS_ACCESS_RIGHTS: u32 = 0x481A;
    pub const GUEST_FS_ACCESS_RIGHTS: u32 = 0x481C;
    pub const GUEST_GS_ACCESS_RIGHTS: u32 = 0x481E;
    pub const GUEST_LDTR_ACCESS_RIGHTS: u32 = 0x4820;
    pub const GUEST_TR_ACCESS_RIGHTS: u32 = 0x4822;
    pub const GUEST_INTERRUPTIBILITY: u32 = 0x4824;
    pub const GUEST_ACTIVITY: u32 = 0x4826;
    pub const CR0_MASK: u32 = 0x6000;
    pub const CR4_MASK: u32 = 0x6002;
    pub const CR0_READ_SHADOW: u32 = 0x6004;
    pub const CR4_READ_SHADOW: u32 = 0x6006;
    pub const GUEST_CR0: u32 = 0x6800;
    pub const GUEST_CR3: u32 = 0x6802;
    pub const GUEST_CR4: u32 = 0x6804;
    pub const GUEST_ES_BASE: u32 = 0x6806;
    pub const GUEST_CS_BASE: u32 = 0x6808;
    pub const GUEST_SS_BASE: u32 = 0x680A;
    pub const GUEST_DS_BASE: u32 = 0x680C;
    pub const GUEST_FS_BASE: u32 = 0x680E;
    pub const GUEST_GS_BASE: u32 = 0x6810;
    pub const GUEST_LDTR_BASE: u32 = 0x6812;
    pub const GUEST_TR_BASE: u32 = 0x6814;
    pub const GUEST_GDTR_BASE: u32 = 0x6816;
    pub const GUEST_IDTR_BASE: u32 = 0x6818;
    pub const GUEST_RSP: u32 = 0x681C;
    pub const GUEST_RIP: u32 = 0x681E;
    pub const GUEST_RFLAGS: u32 = 0x6820;
}

/// Primary processor-based VM-execution controls.
pub mod primary {
    pub const INTERRUPT_WINDOW_EXITING: u32 = 1 << 2;
    pub const HLT_EXITING: u32 = 1 << 7;
    pub const MWAIT_EXITING: u32 = 1 << 10;
    pub const RDPMC_EXITING: u32 = 1 << 11;
    pub const CR8_LOAD_EXITING: u32 = 1 << 19;
    pub const CR8_STORE_EXITING: u32 = 1 << 20;
    pub const MOV_DR_EXITING: u32 = 1 << 23;
    pub const USE_IO_BITMAPS: u32 = 1 << 25;
    pub const USE_MSR_BITMAPS: u32 = 1 << 28;
    pub const MONITOR_EXITING: u32 = 1 << 29;
    pub const SECONDARY_CONTROLS: u32 = 1 << 31;
}

/// Secondary processor-based VM-execution controls.
pub mod secondary {
    pub const ENABLE_EPT: u32 = 1 << 1;
    pub const ENABLE_VPID: u32 = 1 << 5;
    pub const WBINVD_EXITING: u32 = 1 << 6;
    pub const UNRESTRICTED_GUEST: u32 = 1 << 7;
}

/// VM-entry controls.
pub mod entry {
    pub const LOAD_DEBUG_CONTROLS: u32 = 1 << 2;
    pub const IA32E_MODE_GUEST: u32 = 1 << 9;
    pub const LOAD_PAT: u32 = 1 << 14;
    pub const LOAD_EFER: u32 = 1 << 15;
}

/// CR0 bits.
pub mod cr0 {
    pub const PE: u64 = 1 << 0;
    pub const MP: u64 = 1 << 1;
    pub const EM: u64 = 1 << 2;
    pub const TS: u64 = 1 << 3;
    pub const ET: u64 = 1 << 4;
    pub const NE: u64 = 1 << 5;
    pub const WP: u64 = 1 << 16;
    pub const AM: u64 = 1 << 18;
    pub const NW: u64 = 1 << 29;
    pub const CD: u64 = 1 << 30;
    pub const PG: u64 = 1 << 31;
}

/// CR4 bits.
pub mod cr4 {
    pub const PAE: u64 = 1 << 5;
    pub const VMXE: u64 = 1 << 13;
}

/// IA32_EFER bits.
pub mod efer {
    pub const SCE: u64 = 1 << 0;
    pub const LME: u64 = 1 << 8;
    pub const LMA: u64 = 1 << 10;
    pub const NXE: u64 = 1 << 11;
}

/// Basic VM-exit reasons (the low 16 bits of the exit-reason field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum ExitReason {
    ExceptionOrNmi = 0,
    ExternalInterrupt = 1,
    TripleFault = 2,
    Init = 3,
    Sipi = 4,
    InterruptWindow = 7,
    NmiWindow = 8,
    TaskSwitch = 9,
    Cpuid = 10,
    Getsec = 11,
    Hlt = 12,
    Invd = 13,
    Invlpg = 14,
    Rdpmc = 15,
    Rdtsc = 16,
    Rsm = 17,
    Vmcall = 18,
    Vmclear = 19,
    Vmlaunch = 20,
    Vmptrld = 21,
    Vmptrst = 22,
    Vmread = 23,
    Vmresume = 24,
    Vmwrite = 25,
    Vmxoff = 26,
    Vmxon = 27,
    CrAccess = 28,
    DrAccess = 29,
    IoInstruction = 30,
    Rdmsr = 31,
    Wrmsr = 32,
    EntryFailGuestState = 33,
    EntryFailMsrLoad = 34,
    Mwait = 36,
    MonitorTrapFlag = 37,
    Monitor = 39,
    Pause = 40,
    EntryFailMachineCheck = 41,
    TprBelowThreshold = 43,
    ApicAccess = 44,
    VirtualizedEoi = 45,
    GdtrIdtrAccess = 46,
    LdtrTrAccess = 47,
    EptViolation = 48,
    EptMisconfig = 49,
    Invept = 50,
    Rdtscp = 51,
    PreemptionTimer = 52,
    Invvpid = 53,
    Wbinvd = 54,
    Xsetbv = 55,
    ApicWrite = 56,
    Rdrand = 57,
    Invpcid = 58,
    Vmfunc = 59,
    Encls = 60,
    Rdseed = 61,
    PmlFull = 62,
    Xsaves = 63,
    Xrstors = 64,
}

impl ExitReason {
    /// Decodes the basic exit reason (low 16 bits); `None` for reasons this
    /// VMM does not know.
    pub fn from_raw(raw: u32) -> Option<Self> {
        use ExitReason::*;
        Some(match raw & 0xffff {
            0 => ExceptionOrNmi,
            1 => ExternalInterrupt,
            2 => TripleFault,
            3 => Init,
            4 => Sipi,
            7 => InterruptWindow,
            8 => NmiWindow,
            9 => TaskSwitch,
            10 => Cpuid,
            11 => Getsec,
            12 => Hlt,
            13 => Invd,
            14 => Invlpg,
            15 => Rdpmc,
            16 => Rdtsc,
            17 => Rsm,
            18 => Vmcall,
            19 => Vmclear,
            20 => Vmlaunch,
            21 => Vmptrld,
            22 => Vmptrst,
            23 => Vmread,
            24 => Vmresume,
            25 => Vmwrite,
            26 => Vmxoff,
            27 => Vmxon,
            28 => CrAccess,
            29 => DrAccess,
            30 => IoInstruction,
            31 => Rdmsr,
            32 => Wrmsr,
            33 => EntryFailGuestState,
            34 => EntryFailMsrLoad,
            36 => Mwait,
            37 => MonitorTrapFlag,
            39 => Monitor,
            40 => Pause,
            41 => EntryFailMachineCheck,
            43 => TprBelowThreshold,
            44 => ApicAccess,
            45 => VirtualizedEoi,
            46 => GdtrIdtrAccess,
            47 => LdtrTrAccess,
            48 => EptViolation,
            49 => EptMisconfig,
            50 => Invept,
            51 => Rdtscp,
            52 => PreemptionTimer,
            53 => Invvpid,
            54 => Wbinvd,
            55 => Xsetbv,
            56 => ApicWrite,
            57 => Rdrand,
            58 => Invpcid,
            59 => Vmfunc,
            60 => Encls,
            61 => Rdseed,
            62 => PmlFull,
            63 => Xsaves,
            64 => Xrstors,
            _ => return None,
        })
    }

    /// A short lower-case name for logs and summaries.
    pub fn name(self) -> &'static str {
        use ExitReason::*;
        match self {
            ExceptionOrNmi => "exception",
            ExternalInterrupt => "external-interrupt",
            TripleFault => "triple-fault",
            Init => "init",
            Sipi => "sipi",
            InterruptWindow => "interrupt-window",
            NmiWindow => "nmi-window",
            TaskSwitch => "task-switch",
            Cpuid => "cpuid",
            Getsec => "getsec",
            Hlt => "hlt",
            Invd => "invd",
            Invlpg => "invlpg",
            Rdpmc => "rdpmc",
            Rdtsc => "rdtsc",
            Rsm => "rsm",
            Vmcall => "vmcall",
            Vmclear | Vmlaunch | Vmptrld | Vmptrst | Vmread | Vmresume | Vmwrite | Vmxoff
            | Vmxon | Invept | Invvpid | Vmfunc => "vmx-instruction",
            CrAccess => "cr-access",
            DrAccess => "dr-access",
            IoInstruction => "io",
            Rdmsr => "rdmsr",
            Wrmsr => "wrmsr",
            EntryFailGuestState => "entry-fail-guest-state",
            EntryFailMsrLoad => "entry-fail-msr-load",
            Mwait => "mwait",
            MonitorTrapFlag => "mtf",
            Monitor => "monitor",
            Pause => "pause",
            EntryFailMachineCheck => "entry-fail-machine-check",
            TprBelowThreshold => "tpr-below-threshold",
            ApicAccess => "apic-access",
            VirtualizedEoi => "virtualized-eoi",
            GdtrIdtrAccess => "gdtr-idtr",
            LdtrTrAccess => "ldtr-tr",
            EptViolation => "ept-violation",
            EptMisconfig => "ept-misconfig",
            Rdtscp => "rdtscp",
            PreemptionTimer => "preemption-timer",
            Wbinvd => "wbinvd",
            Xsetbv => "xsetbv",
            ApicWrite => "apic-write",
            Rdrand => "rdrand",
            Invpcid => "invpcid",
            Encls => "encls",
            Rdseed => "rdseed",
            PmlFull => "pml-full",
            Xsaves => "xsaves",
            Xrstors => "xrstors",
        }
    }
}

/// VM-entry interruption-information field values.
pub mod interruption {
    /// The field is valid.
    pub const VALID: u32 = 1 << 31;
    /// An error code is delivered.
    pub const DELIVER_ERROR_CODE: u32 = 1 << 11;
    /// Type: hardware exception.
    pub const TYPE_HW_EXCEPTION: u32 = 3 << 8;
    /// Type: external interrupt.
    pub const TYPE_EXTERNAL: u32 = 0;
}
