//! One VM's exit handler: the devices and policies of a vCPU, and the decision
//! for every VM exit.
//!
//! Guest-facing behaviour (what a guest sees when it does something):
//! * COM1 (ports 0x3f8–0x3ff) is a 16550A; every completed line of output is
//!   handed to the host, which prefixes it with the VM's name.
//! * Port 0xf4 is the exit port (QEMU's `isa-debug-exit` convention): a write
//!   ends the VM with the low byte of the value as its exit status.
//! * Any other port is unassigned: reads return all ones, writes are dropped,
//!   and the VMM reports the access as a misdeed.
//! * CPUID and MSRs follow `vcpu-policy`; an MSR outside the allow-list gets
//!   #GP, as on hardware without that MSR.
//! * CR0/CR4/EFER follow [`crate::mode`]; invalid values get #GP.
//! * An access to guest-physical memory outside RAM, a triple fault, HLT
//!   with interrupts disabled (no interrupt can ever wake it), a failed VM
//!   entry or an exit this VMM does not handle stops the VM with the reason.

use crate::exit::{CrAccess, EptAccess, Exit, GpRegs, IoAccess};
use crate::mode::{Mode, ModeError, VmcsWrites};
use crate::stats::ExitStats;
use crate::vmx::{field, interruption, primary, secondary, ExitReason};
use core::fmt;

/// The exit port: QEMU's `isa-debug-exit` default.
pub const EXIT_PORT: u16 = 0xf4;
/// COM1's base port.
pub const COM1: u16 = 0x3f8;
/// The longest console line passed on whole; longer lines are split.
pub const CONSOLE_LINE: usize = 200;
/// How many misdeeds of one kind are reported individually.
pub const MISDEED_REPORTS: u32 = 8;

const IA32_EFER: u32 = 0xC000_0080;
/// The x2APIC MSR range, served by the platform's LAPIC.
const X2APIC_MSRS: core::ops::RangeInclusive<u32> = 0x800..=0x8FF;

/// Converts TSC ticks to nanoseconds for a `tsc_khz` clock (0 if unknown).
pub fn tsc_to_ns(tsc: u64, tsc_khz: u64) -> u64 {
    if tsc_khz == 0 {
        return 0;
    }
    let ns = u128::from(tsc) * 1_000_000 / u128::from(tsc_khz);
    u64::try_from(ns).unwrap_or(u64::MAX)
}
/// cloister's statistics leaf: a guest reads its own VM exit counts (for
/// benchmarks: exits per operation, measured from inside).
pub const STATS_LEAF: u32 = 0x4000_0002;
const RFLAGS_IF: u64 = 1 << 9;
const VECTOR_GP: u32 = 13;
const VECTOR_UD: u32 = 6;

/// What a VM boots, which decides its platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestKind {
    /// A PVH unikernel: COM1 and the exit port, nothing else.
    Pvh,
    /// Linux: the PC platform of `vmm-devices` (LAPIC, IOAPIC, PIT, RTC,
    /// PCI host bridge, ACPI PM), COM1 on GSI 4.
    Linux {
        /// Wall-clock time for the RTC, seconds since 1970.
        unix_secs: i64,
    },
}

/// Static facts about a VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmConfig {
    /// Bytes of guest RAM, mapped at guest-physical 0.
    pub ram_size: u64,
    /// The TSC frequency in kHz that the guest is told.
    pub tsc_khz: u64,
    /// What it boots.
    pub kind: GuestKind,
    /// The VM's Xen domain id, if it has the Xen inter-VM ABI (CPUID leaves,
    /// hypercall page, VMCALL hypercalls, event upcalls).
    pub xen: Option<u16>,
}

/// The vCPU state an instruction emulation needs beyond the exit's
/// registers, read from the VMCS on demand.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuSnapshot {
    /// RSP.
    pub rsp: u64,
    /// CS access rights (VMX format: L is bit 13, D/B bit 14).
    pub cs_access_rights: u32,
    /// SS access rights (DPL in bits 5-6 is the CPL).
    pub ss_access_rights: u32,
    /// The real CR0 and CR4 (the VMM shadows only some bits).
    pub cr0: u64,
    /// See `cr0`.
    pub cr4: u64,
    /// Segment bases: ES, CS, SS, DS, FS, GS.
    pub bases: [u64; 6],
}

/// The part of the vCPU state that decides how it addresses memory (what a
/// hypercall's pointer arguments need): 4 VMCS fields instead of the 11 of
/// a [`CpuSnapshot`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuMode {
    /// CS access rights (VMX format: L is bit 13).
    pub cs_access_rights: u32,
    /// SS access rights (DPL in bits 5-6 is the CPL).
    pub ss_access_rights: u32,
    /// The real CR0.
    pub cr0: u64,
    /// The real CR4.
    pub cr4: u64,
}

/// COM1's interrupt line on the PC platform.
const COM1_GSI: u32 = 4;
/// The guest-visible APIC timer clock (1 GHz: one count per nanosecond at
/// divide-by-1), reported through CPUID.
const APIC_BUS_HZ: u64 = 1_000_000_000;

/// What the VMM's environment does for the exit handler.
pub trait Host {
    /// A completed line of the guest's console output (no newline).
    fn console_line(&mut self, line: &[u8]);
    /// A message from the VMM about this VM.
    fn report(&mut self, msg: fmt::Arguments);
    /// Executes CPUID on the physical processor.
    fn host_cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4];
    /// Reads the processor's time-stamp counter.
    fn tsc(&self) -> u64;
    /// The next byte of console input for this VM, if any is waiting.
    fn console_input(&mut self) -> Option<u8>;
    /// Reads guest RAM at `gpa`; `false` if any byte is not RAM.
    fn read_guest(&self, gpa: u64, buf: &mut [u8]) -> bool;
    /// Reads what instruction emulation needs from the VMCS; `None` if the
    /// kernel refused.
    fn cpu_snapshot(&mut self) -> Option<CpuSnapshot>;
    /// Reads the vCPU's addressing state from the VMCS; `None` if the
    /// kernel refused.
    fn cpu_mode(&mut self) -> Option<CpuMode>;
    /// Writes guest RAM at `gpa`; `false` if any byte is not RAM.
    fn write_guest(&mut self, gpa: u64, buf: &[u8]) -> bool;
    /// Runs a Xen hypercall of this VM's domain (only asked of VMs with
    /// [`VmConfig::xen`]): argument pointers are linear addresses under
    /// `paging`, accessed as user mode if `user`. Returns the value for RAX.
    fn xen_hypercall(&mut self, regs: &xen_abi::Regs, paging: x86_emul::Paging, user: bool) -> u64;
    /// The vector to inject for this VM's pending event upcall, if any.
    fn xen_upcall(&mut self) -> Option<u8>;
    /// Whether an event upcall can ever reach this VM's vCPU (the guest
    /// set a callback vector the VMM delivers).
    fn xen_upcall_route(&mut self) -> bool;
}

/// Why a VM stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The guest wrote its exit status to the exit port.
    Exited(u8),
    /// The guest triple-faulted.
    TripleFault { rip: u64 },
    /// The guest touched guest-physical memory that is neither RAM nor a device.
    UnmappedAccess {
        gpa: u64,
        access: &'static str,
        rip: u64,
    },
    /// HLT with interrupts disabled: nothing can ever wake the vCPU.
    HaltedForever { rip: u64 },
    /// VM entry failed (the VMM set up an invalid guest state).
    EntryFailed { reason: u32 },
    /// An exit this VMM does not handle.
    Unhandled {
        reason: u32,
        qualification: u64,
        rip: u64,
    },
    /// The exit information was inconsistent (e.g. an impossible instruction
    /// length); the VM cannot be resumed safely.
    Inconsistent { what: &'static str, rip: u64 },
    /// The guest powered itself off (ACPI S5).
    PoweredOff,
    /// The guest asked for a reset (reboot); the VM ends.
    ResetRequested,
    /// An MMIO access by an instruction the emulator does not support.
    UnsupportedInstruction { bytes: [u8; 15], len: u8, rip: u64 },
}

impl StopReason {
    /// Whether this is a clean, successful end (exit status 0).
    pub fn is_clean(&self) -> bool {
        matches!(self, StopReason::Exited(0) | StopReason::PoweredOff)
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            StopReason::Exited(code) => write!(f, "exited with status {code}"),
            StopReason::TripleFault { rip } => write!(f, "stopped: triple fault at rip {rip:#x}"),
            StopReason::UnmappedAccess { gpa, access, rip } => write!(
                f,
                "stopped: {access} of unmapped guest-physical address {gpa:#x} at rip {rip:#x}"
            ),
            StopReason::HaltedForever { rip } => write!(
                f,
                "stopped: HLT that nothing can wake (interrupts disabled or no interrupt source) at rip {rip:#x}"
            ),
            StopReason::EntryFailed { reason } => {
                let why = ExitReason::from_raw(reason)
                    .map(ExitReason::name)
                    .unwrap_or("unknown");
                write!(f, "stopped: VM entry failed (reason {reason:#x}, {why})")
            }
            StopReason::Unhandled {
                reason,
                qualification,
                rip,
            } => {
                let name = ExitReason::from_raw(reason)
                    .map(ExitReason::name)
                    .unwrap_or("unknown");
                write!(
                    f,
                    "stopped: unhandled VM exit {name} (reason {reason:#x}, qualification {qualification:#x}) at rip {rip:#x}"
                )
            }
            StopReason::Inconsistent { what, rip } => {
                write!(
                    f,
                    "stopped: inconsistent exit information ({what}) at rip {rip:#x}"
                )
            }
            StopReason::PoweredOff => write!(f, "powered off"),
            StopReason::ResetRequested => write!(f, "stopped: the guest asked for a reset"),
            StopReason::UnsupportedInstruction { bytes, len, rip } => {
                write!(f, "stopped: unsupported MMIO instruction at rip {rip:#x}:")?;
                for b in bytes.iter().take(usize::from(len)) {
                    write!(f, " {b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// How to resume the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resume {
    /// The guest RIP to enter at.
    pub rip: u64,
    /// VM-entry interruption information (0 = nothing to inject).
    pub interruption: u32,
    /// The general-purpose registers changed and must be written back.
    pub regs_dirty: bool,
    /// VMCS fields to write before entering.
    pub vmcs: VmcsWrites,
    /// A guest MSR the kernel switches for the guest (STAR, LSTAR, CSTAR,
    /// FMASK) and its new value.
    pub msr: Option<(u32, u64)>,
    /// An interrupt is waiting for the guest to open its interrupt window:
    /// enter with interrupt-window exiting on.
    pub interrupt_window: bool,
}

impl Resume {
    /// Resume at `rip` with nothing else to do.
    pub fn at(rip: u64) -> Self {
        Resume {
            rip,
            interruption: 0,
            regs_dirty: false,
            vmcs: VmcsWrites::default(),
            msr: None,
            interrupt_window: false,
        }
    }
}

/// The decision for one VM exit. (`Resume` carries its VMCS writes inline:
/// the exit path allocates nothing.)
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Enter the guest again.
    Resume(Resume),
    /// The guest halted waiting for an interrupt: block until woken (a timer
    /// deadline, console input), then call [`Vm::wake`] with this resume.
    Halt(Resume),
    /// Stop the VM.
    Stop(StopReason),
}

/// Counts of guest misdeeds, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Misdeeds {
    /// Accesses to unassigned I/O ports.
    pub unassigned_ports: u32,
    /// Reads or writes of MSRs outside the allow-list.
    pub unknown_msrs: u32,
    /// Other refused operations (invalid CR values, VMX instructions, ...).
    pub refused: u32,
}

impl Misdeeds {
    /// Total misdeeds.
    pub fn total(&self) -> u32 {
        self.unassigned_ports + self.unknown_msrs + self.refused
    }
}

/// One VM's state as the exit handler sees it.
pub struct Vm {
    cfg: VmConfig,
    mode: Mode,
    msrs: vcpu_policy::MsrState,
    cpuid: vcpu_policy::CpuidConfig,
    uart: uart16550::Uart16550,
    line: uart16550::LineBuffer<CONSOLE_LINE>,
    tpr: u64,
    stats: ExitStats,
    misdeeds: Misdeeds,
    platform: Option<vmm_devices::Platform>,
    /// RFLAGS when the guest halted (its IF decides whether it can wake).
    halted_rflags: u64,
}

impl Vm {
    /// A VM about to start; `now_ns` is the VMM's clock (see
    /// [`Vm::now_ns`]) at creation.
    pub fn new(cfg: VmConfig, now_ns: u64) -> Self {
        let linux = matches!(cfg.kind, GuestKind::Linux { .. });
        let cpuid = vcpu_policy::CpuidConfig {
            tsc_khz: u32::try_from(cfg.tsc_khz).unwrap_or(0),
            x2apic: linux,
            tsc_deadline: linux,
            mtrr: linux,
            apic_bus_khz: if linux {
                (APIC_BUS_HZ / 1000) as u32
            } else {
                0
            },
            ..vcpu_policy::CpuidConfig::default()
        };
        let platform = match cfg.kind {
            GuestKind::Pvh => None,
            GuestKind::Linux { unix_secs } => {
                let pc = vmm_devices::PlatformConfig {
                    lapic: vmm_devices::LapicConfig {
                        apic_id: 0,
                        bus_hz: APIC_BUS_HZ,
                        tsc_hz: cfg.tsc_khz.saturating_mul(1000),
                        tsc_deadline: true,
                    },
                    rtc: vmm_devices::RtcConfig {
                        unix_secs,
                        nanos: 0,
                        century_index: Some(0x32),
                    },
                    ..vmm_devices::PlatformConfig::default()
                };
                vmm_devices::Platform::without_pci_devices(pc, now_ns).ok()
            }
        };
        Vm {
            cfg,
            mode: Mode::pvh(),
            msrs: vcpu_policy::MsrState::new(cpuid.msr_config()),
            cpuid,
            uart: uart16550::Uart16550::new(),
            line: uart16550::LineBuffer::new(),
            tpr: 0,
            stats: ExitStats::default(),
            misdeeds: Misdeeds::default(),
            platform,
            halted_rflags: 0,
        }
    }

    /// The VMM's clock for device models: nanoseconds of TSC time.
    pub fn now_ns(&self, host: &dyn Host) -> u64 {
        tsc_to_ns(host.tsc(), self.cfg.tsc_khz)
    }

    /// The TSC value at which the platform next has work (a timer), if any.
    pub fn deadline_tsc(&self) -> Option<u64> {
        let ns = self.platform.as_ref()?.next_deadline()?;
        let tsc = u128::from(ns) * u128::from(self.cfg.tsc_khz) / 1_000_000;
        Some(u64::try_from(tsc).unwrap_or(u64::MAX))
    }

    /// The VMCS state and registers for entering a Linux kernel in 64-bit
    /// mode as the boot protocol describes it.
    pub fn linux_boot_state(&mut self, s: &linux_boot::LongModeState) -> (VmcsWrites, GpRegs) {
        self.mode = Mode {
            cr0_shadow: s.cr0,
            cr4_shadow: s.cr4,
            efer: s.efer,
            entry_controls: Mode::pvh().entry_controls | crate::vmx::entry::IA32E_MODE_GUEST,
        };
        let mut w = VmcsWrites::default();
        let seg = |w: &mut VmcsWrites, f: [u32; 4], sg: &linux_boot::Segment| {
            w.push(f[0], u64::from(sg.selector));
            w.push(f[1], sg.base);
            w.push(f[2], u64::from(sg.limit));
            w.push(f[3], u64::from(sg.access_rights));
        };
        use field::*;
        seg(
            &mut w,
            [
                GUEST_CS_SELECTOR,
                GUEST_CS_BASE,
                GUEST_CS_LIMIT,
                GUEST_CS_ACCESS_RIGHTS,
            ],
            &s.cs,
        );
        for f in [
            [
                GUEST_DS_SELECTOR,
                GUEST_DS_BASE,
                GUEST_DS_LIMIT,
                GUEST_DS_ACCESS_RIGHTS,
            ],
            [
                GUEST_ES_SELECTOR,
                GUEST_ES_BASE,
                GUEST_ES_LIMIT,
                GUEST_ES_ACCESS_RIGHTS,
            ],
            [
                GUEST_SS_SELECTOR,
                GUEST_SS_BASE,
                GUEST_SS_LIMIT,
                GUEST_SS_ACCESS_RIGHTS,
            ],
            [
                GUEST_FS_SELECTOR,
                GUEST_FS_BASE,
                GUEST_FS_LIMIT,
                GUEST_FS_ACCESS_RIGHTS,
            ],
            [
                GUEST_GS_SELECTOR,
                GUEST_GS_BASE,
                GUEST_GS_LIMIT,
                GUEST_GS_ACCESS_RIGHTS,
            ],
        ] {
            seg(&mut w, f, &s.ds);
        }
        seg(
            &mut w,
            [
                GUEST_TR_SELECTOR,
                GUEST_TR_BASE,
                GUEST_TR_LIMIT,
                GUEST_TR_ACCESS_RIGHTS,
            ],
            &s.tr,
        );
        seg(
            &mut w,
            [
                GUEST_LDTR_SELECTOR,
                GUEST_LDTR_BASE,
                GUEST_LDTR_LIMIT,
                GUEST_LDTR_ACCESS_RIGHTS,
            ],
            &s.ldtr,
        );
        w.push(GUEST_GDTR_BASE, s.gdt.base);
        w.push(GUEST_GDTR_LIMIT, u64::from(s.gdt.limit));
        w.push(GUEST_IDTR_BASE, s.idt.base);
        w.push(GUEST_IDTR_LIMIT, u64::from(s.idt.limit));
        w.push(GUEST_CR0, Mode::real_cr0(s.cr0));
        w.push(CR0_READ_SHADOW, s.cr0);
        w.push(CR0_MASK, crate::mode::CR0_OWNED);
        w.push(GUEST_CR4, Mode::real_cr4(s.cr4));
        w.push(CR4_READ_SHADOW, s.cr4);
        w.push(CR4_MASK, crate::mode::CR4_OWNED);
        w.push(GUEST_CR3, s.cr3);
        w.push(GUEST_EFER, s.efer);
        w.push(GUEST_PAT, 0x0007_0406_0007_0406);
        w.push(GUEST_RFLAGS, s.rflags);
        w.push(GUEST_RSP, s.rsp);
        w.push(GUEST_RIP, s.rip);
        w.push(GUEST_INTERRUPTIBILITY, 0);
        w.push(GUEST_ACTIVITY, 0);
        w.push(ENTRY_CONTROLS, u64::from(self.mode.entry_controls));
        w.push(
            SECONDARY_CONTROLS,
            u64::from(
                secondary::ENABLE_EPT | secondary::UNRESTRICTED_GUEST | secondary::WBINVD_EXITING,
            ),
        );
        w.push(EXCEPTION_BITMAP, 0);
        let regs = GpRegs {
            rsi: s.rsi,
            ..GpRegs::default()
        };
        (w, regs)
    }

    /// The VM's configuration.
    pub fn config(&self) -> &VmConfig {
        &self.cfg
    }

    /// VM exits so far.
    pub fn stats(&self) -> &ExitStats {
        &self.stats
    }

    /// Misdeeds so far.
    pub fn misdeeds(&self) -> Misdeeds {
        self.misdeeds
    }

    /// The primary processor-based controls to run the guest with.
    pub fn primary_controls(&self) -> u32 {
        primary::HLT_EXITING
            | primary::MWAIT_EXITING
            | primary::RDPMC_EXITING
            | primary::CR8_LOAD_EXITING
            | primary::CR8_STORE_EXITING
            | primary::MOV_DR_EXITING
            | primary::USE_IO_BITMAPS
            | primary::USE_MSR_BITMAPS
            | primary::MONITOR_EXITING
            | primary::SECONDARY_CONTROLS
    }

    /// The VMCS state for a PVH entry at `entry` with the start-info
    /// structure at `start_info` (placed in RBX).
    pub fn boot_state(&self, entry: u64, start_info: u64) -> (VmcsWrites, GpRegs) {
        let mut w = self.mode.pvh_entry_state(entry);
        w.push(
            field::SECONDARY_CONTROLS,
            u64::from(
                secondary::ENABLE_EPT | secondary::UNRESTRICTED_GUEST | secondary::WBINVD_EXITING,
            ),
        );
        w.push(field::EXCEPTION_BITMAP, 0);
        let regs = GpRegs {
            rbx: start_info,
            ..GpRegs::default()
        };
        (w, regs)
    }

    /// Flushes a partial console line (when the VM stops).
    pub fn flush_console(&mut self, host: &mut dyn Host) {
        if let Some(line) = self.line.flush() {
            host.console_line(line);
        }
    }

    /// Decides what to do about one VM exit. `regs` are the guest's
    /// general-purpose registers; the handler may change them.
    pub fn handle(&mut self, exit: &Exit, regs: &mut GpRegs, host: &mut dyn Host) -> Action {
        let action = self.handle_exit(exit, regs, host);
        // Leaving an instruction ends an STI / MOV SS interrupt shadow.
        let shadow = exit.interruptibility & 3 != 0;
        let advanced = matches!(&action, Action::Resume(r) | Action::Halt(r) if r.rip != exit.rip);
        let clear_shadow = |mut r: Resume| {
            r.vmcs
                .push(field::GUEST_INTERRUPTIBILITY, exit.interruptibility & !3);
            r
        };
        let action = match action {
            Action::Resume(r) if shadow && advanced => Action::Resume(clear_shadow(r)),
            // `sti; hlt` halts inside the STI shadow: it ends with the HLT,
            // and injecting on wake-up with it still recorded would make the
            // VM entry fail.
            Action::Halt(r) if shadow && advanced => Action::Halt(clear_shadow(r)),
            other => other,
        };
        let blocked = shadow && !advanced;
        self.finish(action, exit.rflags, blocked, host)
    }

    /// The guest was interrupted by a host event (its notification) while
    /// running at `rip`: bring the devices up to date and, if an interrupt
    /// is pending, ask for an interrupt-window exit to deliver it.
    pub fn on_notification(&mut self, rip: u64, host: &mut dyn Host) -> Action {
        let mut r = Resume::at(rip);
        if let Some(stop) = self.poll_devices(host) {
            return Action::Stop(stop);
        }
        let device = self
            .platform
            .as_ref()
            .and_then(|p| p.pending_vector())
            .is_some();
        if device || (self.cfg.xen.is_some() && host.xen_upcall().is_some()) {
            r.interrupt_window = true;
        }
        Action::Resume(r)
    }

    /// A halted guest was woken (deadline or input): resume it with an
    /// interrupt if one can be delivered, else stay halted.
    pub fn wake(&mut self, pending: Resume, host: &mut dyn Host) -> Action {
        let rflags = self.halted_rflags;
        match self.finish(Action::Halt(pending), rflags, false, host) {
            Action::Resume(r) => Action::Resume(r),
            other => other,
        }
    }

    /// Brings the platform up to date: console input into COM1, COM1's
    /// interrupt line, timers. Returns a stop if the guest asked to power
    /// off or reset.
    fn poll_devices(&mut self, host: &mut dyn Host) -> Option<StopReason> {
        let now = self.now_ns(host);
        let platform = self.platform.as_mut()?;
        while self.uart.rx_space() > 0 {
            match host.console_input() {
                Some(b) if self.uart.push_input(b) => {}
                _ => break,
            }
        }
        platform.set_irq(COM1_GSI, self.uart.irq_pending());
        platform.advance(now);
        match platform.take_power_request() {
            Some(vmm_devices::PowerRequest::Off) => Some(StopReason::PoweredOff),
            Some(vmm_devices::PowerRequest::Reset) => Some(StopReason::ResetRequested),
            Some(vmm_devices::PowerRequest::Sleep(_)) | None => None,
        }
    }

    /// After an exit's own work: update devices and deliver a pending
    /// interrupt when the guest can take one (`rflags` as the guest will
    /// resume; `blocked`: an interrupt shadow is still in force).
    fn finish(
        &mut self,
        action: Action,
        rflags: u64,
        blocked: bool,
        host: &mut dyn Host,
    ) -> Action {
        if self.platform.is_none() && self.cfg.xen.is_none() {
            return action;
        }
        let (mut r, halted) = match action {
            Action::Resume(r) => (r, false),
            Action::Halt(r) => (r, true),
            stop => return stop,
        };
        if let Some(stop) = self.poll_devices(host) {
            return Action::Stop(stop);
        }
        let can_take =
            rflags & RFLAGS_IF != 0 && !blocked && r.interruption & interruption::VALID == 0;
        let external =
            |vector: u8| interruption::VALID | interruption::TYPE_EXTERNAL | u32::from(vector);
        if let Some(platform) = self.platform.as_mut() {
            if let Some(vector) = platform.pending_vector() {
                if can_take && platform.acknowledge(vector).is_ok() {
                    r.interruption = external(vector);
                    return Action::Resume(r);
                }
                r.interrupt_window = true;
            }
        }
        // The event upcall is level-like: injected at each entry while the
        // guest's `evtchn_upcall_pending` stays set.
        if self.cfg.xen.is_some() {
            if let Some(vector) = host.xen_upcall() {
                if can_take {
                    r.interruption = external(vector);
                    return Action::Resume(r);
                }
                r.interrupt_window = true;
            }
        }
        if halted {
            self.halted_rflags = rflags;
            Action::Halt(r)
        } else {
            Action::Resume(r)
        }
    }

    fn handle_exit(&mut self, exit: &Exit, regs: &mut GpRegs, host: &mut dyn Host) -> Action {
        self.stats.record(exit.raw_reason);
        if exit.raw_reason == u32::MAX || exit.raw_reason & (1 << 31) != 0 {
            return Action::Stop(StopReason::EntryFailed {
                reason: exit.raw_reason & 0xffff,
            });
        }
        let unhandled = Action::Stop(StopReason::Unhandled {
            reason: exit.raw_reason,
            qualification: exit.qualification,
            rip: exit.rip,
        });
        let Some(reason) = ExitReason::from_raw(exit.raw_reason) else {
            return unhandled;
        };
        match reason {
            ExitReason::Cpuid => {
                let host_fn = |l, s| {
                    let [eax, ebx, ecx, edx] = host.host_cpuid(l, s);
                    vcpu_policy::CpuidResult { eax, ebx, ecx, edx }
                };
                let leaf = regs.rax as u32;
                let xen = self
                    .cfg
                    .xen
                    .and_then(|dom| xen_abi::cpuid::XenCpuid::default().leaf(leaf, dom, 0));
                let [eax, ebx, ecx, edx] = match xen {
                    Some(r) => r,
                    None if leaf == STATS_LEAF => self.stats_leaf(),
                    None => {
                        let r = vcpu_policy::cpuid(leaf, regs.rcx as u32, &host_fn, &self.cpuid);
                        [r.eax, r.ebx, r.ecx, r.edx]
                    }
                };
                regs.rax = u64::from(eax);
                regs.rbx = u64::from(ebx);
                regs.rcx = u64::from(ecx);
                regs.rdx = u64::from(edx);
                self.advance(exit, true, VmcsWrites::default())
            }
            ExitReason::IoInstruction => self.io(exit, regs, host),
            ExitReason::Rdmsr => self.rdmsr(exit, regs, host),
            ExitReason::Wrmsr => self.wrmsr(exit, regs, host),
            ExitReason::CrAccess => self.cr(exit, regs, host),
            ExitReason::DrAccess => {
                // Debug registers are not offered: reads give the reset
                // values, writes are ignored.
                let gpr = ((exit.qualification >> 8) & 0xf) as u8;
                let dr = exit.qualification & 7;
                if exit.qualification & (1 << 4) != 0 {
                    let v = match dr {
                        6 => 0xFFFF_0FF0,
                        7 => 0x400,
                        _ => 0,
                    };
                    if !regs.set(gpr, v) {
                        return self.inconsistent("MOV from DR into RSP", exit);
                    }
                    return self.advance(exit, true, VmcsWrites::default());
                }
                self.advance(exit, false, VmcsWrites::default())
            }
            ExitReason::Hlt => {
                // Without a platform or event channels nothing can ever
                // interrupt the guest; with interrupts off nothing can wake it.
                let wakeable =
                    self.platform.is_some() || (self.cfg.xen.is_some() && host.xen_upcall_route());
                if !wakeable || exit.rflags & RFLAGS_IF == 0 {
                    return Action::Stop(StopReason::HaltedForever { rip: exit.rip });
                }
                match self.advance(exit, false, VmcsWrites::default()) {
                    Action::Resume(r) => Action::Halt(r),
                    other => other,
                }
            }
            ExitReason::InterruptWindow => Action::Resume(Resume::at(exit.rip)),
            ExitReason::TripleFault => Action::Stop(StopReason::TripleFault { rip: exit.rip }),
            ExitReason::EptViolation => {
                let access = EptAccess::decode(exit.qualification).describe();
                if exit.guest_physical < self.cfg.ram_size {
                    return self.inconsistent("EPT violation inside guest RAM", exit);
                }
                let device = self
                    .platform
                    .as_ref()
                    .and_then(|p| p.mmio_device(exit.guest_physical));
                if device.is_some() && !EptAccess::decode(exit.qualification).fetch {
                    return self.mmio(exit, regs, host);
                }
                Action::Stop(StopReason::UnmappedAccess {
                    gpa: exit.guest_physical,
                    access,
                    rip: exit.rip,
                })
            }
            ExitReason::Wbinvd | ExitReason::Invd => {
                self.advance(exit, false, VmcsWrites::default())
            }
            ExitReason::Rdpmc => self.refuse(exit, host, VECTOR_GP, format_args!("RDPMC")),
            ExitReason::Mwait | ExitReason::Monitor => {
                self.refuse(exit, host, VECTOR_UD, format_args!("MONITOR/MWAIT"))
            }
            ExitReason::Vmcall if self.cfg.xen.is_some() => self.hypercall(exit, regs, host),
            ExitReason::Vmcall
            | ExitReason::Vmclear
            | ExitReason::Vmlaunch
            | ExitReason::Vmptrld
            | ExitReason::Vmptrst
            | ExitReason::Vmread
            | ExitReason::Vmresume
            | ExitReason::Vmwrite
            | ExitReason::Vmxoff
            | ExitReason::Vmxon
            | ExitReason::Invept
            | ExitReason::Invvpid
            | ExitReason::Vmfunc => {
                self.refuse(exit, host, VECTOR_UD, format_args!("VMX instruction"))
            }
            _ => unhandled,
        }
    }

    fn inconsistent(&self, what: &'static str, exit: &Exit) -> Action {
        Action::Stop(StopReason::Inconsistent {
            what,
            rip: exit.rip,
        })
    }

    /// Resumes after the exiting instruction.
    fn advance(&self, exit: &Exit, regs_dirty: bool, vmcs: VmcsWrites) -> Action {
        if exit.instruction_len == 0 || exit.instruction_len > 15 {
            return self.inconsistent("instruction length", exit);
        }
        let mut rip = exit.rip.wrapping_add(exit.instruction_len);
        if self.mode.efer & crate::vmx::efer::LMA == 0 {
            rip &= 0xffff_ffff;
        }
        Action::Resume(Resume {
            regs_dirty,
            vmcs,
            ..Resume::at(rip)
        })
    }

    /// Resumes at the same instruction with an exception injected.
    fn inject(&self, exit: &Exit, vector: u32, regs_dirty: bool) -> Action {
        let mut vmcs = VmcsWrites::default();
        let mut info = interruption::VALID | interruption::TYPE_HW_EXCEPTION | vector;
        if vector == VECTOR_GP {
            info |= interruption::DELIVER_ERROR_CODE;
            vmcs.push(field::ENTRY_EXCEPTION_ERROR_CODE, 0);
        }
        Action::Resume(Resume {
            interruption: info,
            regs_dirty,
            vmcs,
            ..Resume::at(exit.rip)
        })
    }

    fn refuse(
        &mut self,
        exit: &Exit,
        host: &mut dyn Host,
        vector: u32,
        what: fmt::Arguments,
    ) -> Action {
        self.misdeeds.refused += 1;
        if self.misdeeds.refused <= MISDEED_REPORTS {
            host.report(format_args!(
                "misdeed: {what} at rip {:#x} refused: injected {}",
                exit.rip,
                if vector == VECTOR_GP { "#GP" } else { "#UD" }
            ));
        }
        self.inject(exit, vector, false)
    }

    fn io(&mut self, exit: &Exit, regs: &mut GpRegs, host: &mut dyn Host) -> Action {
        let Some(io) = IoAccess::decode(exit.qualification) else {
            return self.inconsistent("I/O qualification", exit);
        };
        if io.string {
            return Action::Stop(StopReason::Unhandled {
                reason: exit.raw_reason,
                qualification: exit.qualification,
                rip: exit.rip,
            });
        }
        let mask = io.mask();
        let value = regs.rax & mask;
        match io.port {
            p if (COM1..COM1 + 8).contains(&p) && io.size == 1 => {
                let offset = (p - COM1) as u8;
                if io.input {
                    // Move waiting console input into the receive FIFO (in
                    // loopback the receiver is disconnected and a byte is
                    // dropped, as on the wire).
                    while self.uart.rx_space() > 0 {
                        match host.console_input() {
                            Some(b) if self.uart.push_input(b) => {}
                            _ => break,
                        }
                    }
                    let v = self.uart.read(offset);
                    regs.rax = (regs.rax & !mask) | u64::from(v);
                } else {
                    let line = &mut self.line;
                    self.uart.write(offset, value as u8, &mut |b| {
                        if let Some(l) = line.push(b) {
                            host.console_line(l);
                        }
                    });
                }
            }
            EXIT_PORT if !io.input && self.platform.is_none() => {
                return Action::Stop(StopReason::Exited(value as u8))
            }
            port if self
                .platform
                .as_ref()
                .and_then(|p| p.port_device(port))
                .is_some() =>
            {
                let now = self.now_ns(host);
                if let Some(platform) = self.platform.as_mut() {
                    if io.input {
                        // A device that refuses the access reads as open bus.
                        let v = platform
                            .port_read(now, port, io.size)
                            .map_or(mask, u64::from);
                        regs.rax = (regs.rax & !mask) | (v & mask);
                    } else {
                        let _ = platform.port_write(now, port, io.size, value as u32);
                    }
                }
            }
            port => {
                self.misdeeds.unassigned_ports += 1;
                let n = self.misdeeds.unassigned_ports;
                if n <= MISDEED_REPORTS {
                    if io.input {
                        host.report(format_args!(
                            "misdeed: {}-byte read of unassigned I/O port {port:#x} at rip {:#x}: returned all ones",
                            io.size, exit.rip
                        ));
                    } else {
                        host.report(format_args!(
                            "misdeed: {}-byte write of {value:#x} to unassigned I/O port {port:#x} at rip {:#x}: ignored",
                            io.size, exit.rip
                        ));
                    }
                } else if n == MISDEED_REPORTS + 1 {
                    host.report(format_args!(
                        "misdeed: further unassigned port accesses are counted, not reported"
                    ));
                }
                if io.input {
                    regs.rax = (regs.rax & !mask) | mask;
                }
            }
        }
        self.advance(exit, io.input, VmcsWrites::default())
    }

    fn rdmsr(&mut self, exit: &Exit, regs: &mut GpRegs, host: &mut dyn Host) -> Action {
        let msr = regs.rcx as u32;
        let value = if msr == IA32_EFER {
            Ok(self.mode.efer)
        } else if let (Some(platform), true) = (self.platform.as_mut(), X2APIC_MSRS.contains(&msr))
        {
            let now = tsc_to_ns(host.tsc(), self.cfg.tsc_khz);
            platform.msr_read(now, msr).map_err(|_| ())
        } else {
            self.msrs.read(msr, host.tsc()).map_err(|_| ())
        };
        match value {
            Ok(v) => {
                regs.rax = v & 0xffff_ffff;
                regs.rdx = v >> 32;
                self.advance(exit, true, VmcsWrites::default())
            }
            Err(_) => self.msr_misdeed(exit, host, msr, None),
        }
    }

    fn wrmsr(&mut self, exit: &Exit, regs: &mut GpRegs, host: &mut dyn Host) -> Action {
        let msr = regs.rcx as u32;
        let value = (regs.rdx << 32) | (regs.rax & 0xffff_ffff);
        if msr == IA32_EFER {
            return match self.mode.write_efer(value) {
                Ok(w) => self.advance(exit, false, w),
                Err(_) => self.refuse(
                    exit,
                    host,
                    VECTOR_GP,
                    format_args!("invalid EFER value {value:#x}"),
                ),
            };
        }
        if self.cfg.xen.is_some() && msr == xen_abi::cpuid::XenCpuid::default().msr {
            return self.install_hypercall_page(exit, host, value);
        }
        let now = tsc_to_ns(host.tsc(), self.cfg.tsc_khz);
        if let (Some(platform), true) = (self.platform.as_mut(), X2APIC_MSRS.contains(&msr)) {
            return match platform.msr_write(now, msr, value) {
                Ok(()) => self.advance(exit, false, VmcsWrites::default()),
                Err(_) => self.msr_misdeed(exit, host, msr, Some(value)),
            };
        }
        let before = self.msrs.clone();
        let effect = match self.msrs.write(msr, value, host.tsc()) {
            Ok(effect) => effect,
            Err(_) => return self.msr_misdeed(exit, host, msr, Some(value)),
        };
        let mut vmcs = VmcsWrites::default();
        let mut sync = None;
        match effect {
            vcpu_policy::MsrEffect::Sync { msr: m, value: v } => match m {
                0x277 => {
                    vmcs.push(field::GUEST_PAT, v);
                }
                0xC000_0100 => {
                    vmcs.push(field::GUEST_FS_BASE, v);
                }
                0xC000_0101 => {
                    vmcs.push(field::GUEST_GS_BASE, v);
                }
                _ => sync = Some((m, v)),
            },
            vcpu_policy::MsrEffect::None => {}
            e @ (vcpu_policy::MsrEffect::TscDeadline(_) | vcpu_policy::MsrEffect::ApicMode(_))
                if self.platform.is_some() =>
            {
                let tsc = host.tsc();
                let now = tsc_to_ns(tsc, self.cfg.tsc_khz);
                if let Some(platform) = self.platform.as_mut() {
                    platform.apply_msr_effect(now, tsc, e);
                }
            }
            // seL4 does not let the VMM set the TSC offset, and a VM without
            // the PC platform has no LAPIC: these writes are refused rather
            // than silently not taking effect.
            vcpu_policy::MsrEffect::TscOffset(_)
            | vcpu_policy::MsrEffect::TscDeadline(_)
            | vcpu_policy::MsrEffect::ApicMode(_) => {
                self.msrs = before;
                return self.refuse(
                    exit,
                    host,
                    VECTOR_GP,
                    format_args!("write of {value:#x} to MSR {msr:#x} (not supported yet)"),
                );
            }
        }
        match self.advance(exit, false, vmcs) {
            Action::Resume(mut r) => {
                r.msr = sync;
                Action::Resume(r)
            }
            stop => stop,
        }
    }

    fn msr_misdeed(
        &mut self,
        exit: &Exit,
        host: &mut dyn Host,
        msr: u32,
        write: Option<u64>,
    ) -> Action {
        self.misdeeds.unknown_msrs += 1;
        if self.misdeeds.unknown_msrs <= MISDEED_REPORTS {
            match write {
                None => host.report(format_args!(
                    "misdeed: read of MSR {msr:#x} outside the allow-list at rip {:#x}: injected #GP",
                    exit.rip
                )),
                Some(v) => host.report(format_args!(
                    "misdeed: write of {v:#x} to MSR {msr:#x} outside the allow-list or invalid at rip {:#x}: injected #GP",
                    exit.rip
                )),
            }
        }
        self.inject(exit, VECTOR_GP, false)
    }

    /// Emulates the instruction that touched a platform device's MMIO page.
    fn mmio(&mut self, exit: &Exit, regs: &mut GpRegs, host: &mut dyn Host) -> Action {
        let Some(snap) = host.cpu_snapshot() else {
            return self.inconsistent("reading the vCPU state for MMIO emulation", exit);
        };
        let now = self.now_ns(host);
        let lma = self.mode.efer & crate::vmx::efer::LMA != 0;
        let cpu = x86_emul::CpuState {
            mode: x86_emul::Mode::from_cs(
                lma,
                snap.cs_access_rights & (1 << 13) != 0,
                snap.cs_access_rights & (1 << 14) != 0,
            ),
            cpl: ((snap.ss_access_rights >> 5) & 3) as u8,
            paging: x86_emul::Paging::new(snap.cr0, exit.cr3, snap.cr4, self.mode.efer),
            segments: x86_emul::SegmentBases {
                es: snap.bases[0],
                cs: snap.bases[1],
                ss: snap.bases[2],
                ds: snap.bases[3],
                fs: snap.bases[4],
                gs: snap.bases[5],
            },
        };
        let mut r = x86_emul::Regs {
            rax: regs.rax,
            rcx: regs.rcx,
            rdx: regs.rdx,
            rbx: regs.rbx,
            rsp: snap.rsp,
            rbp: regs.rbp,
            rsi: regs.rsi,
            rdi: regs.rdi,
            r8: regs.r8,
            r9: regs.r9,
            r10: regs.r10,
            r11: regs.r11,
            r12: regs.r12,
            r13: regs.r13,
            r14: regs.r14,
            r15: regs.r15,
            rip: exit.rip,
            rflags: exit.rflags,
        };
        let Some(platform) = self.platform.as_mut() else {
            return self.inconsistent("MMIO without a platform", exit);
        };
        let mem = HostMemory(&*host);
        let mut bus = PlatformMmio { platform, now };
        match x86_emul::Emulator::new(cpu, &mem).emulate(&mut r, &mut bus, exit.guest_physical) {
            Ok(_) => {
                *regs = GpRegs {
                    rax: r.rax,
                    rbx: r.rbx,
                    rcx: r.rcx,
                    rdx: r.rdx,
                    rsi: r.rsi,
                    rdi: r.rdi,
                    rbp: r.rbp,
                    r8: r.r8,
                    r9: r.r9,
                    r10: r.r10,
                    r11: r.r11,
                    r12: r.r12,
                    r13: r.r13,
                    r14: r.r14,
                    r15: r.r15,
                };
                let mut vmcs = VmcsWrites::default();
                if r.rflags != exit.rflags {
                    vmcs.push(field::GUEST_RFLAGS, r.rflags);
                }
                if r.rsp != snap.rsp {
                    vmcs.push(field::GUEST_RSP, r.rsp);
                }
                Action::Resume(Resume {
                    regs_dirty: true,
                    vmcs,
                    ..Resume::at(r.rip)
                })
            }
            Err(x86_emul::EmulError::Unsupported { bytes, len }) => {
                Action::Stop(StopReason::UnsupportedInstruction {
                    bytes,
                    len,
                    rip: exit.rip,
                })
            }
            // The guest changed its page tables under the access, or the
            // instruction faults on its own: re-execute it, and the
            // processor raises whatever fault is due.
            Err(
                x86_emul::EmulError::PageFault { .. }
                | x86_emul::EmulError::NonCanonical { .. }
                | x86_emul::EmulError::GpaMismatch { .. }
                | x86_emul::EmulError::TooLong,
            ) => Action::Resume(Resume::at(exit.rip)),
            Err(_) => self.inconsistent("the MMIO instruction could not be emulated", exit),
        }
    }

    /// Leaf [`STATS_LEAF`]: this vCPU's VM exits so far (this CPUID's
    /// included), low 32 bits in EAX and high in EBX; ECX = VMCALL exits,
    /// EDX = HLT exits (low 32 bits each).
    fn stats_leaf(&self) -> [u32; 4] {
        let total = self.stats.total();
        [
            total as u32,
            (total >> 32) as u32,
            self.stats.count(ExitReason::Vmcall) as u32,
            self.stats.count(ExitReason::Hlt) as u32,
        ]
    }

    /// A VMCALL from a VM with the Xen ABI: the hypercall, its result in RAX.
    fn hypercall(&mut self, exit: &Exit, regs: &mut GpRegs, host: &mut dyn Host) -> Action {
        let Some(snap) = host.cpu_mode() else {
            return self.inconsistent("reading the vCPU state for a hypercall", exit);
        };
        let lma = self.mode.efer & crate::vmx::efer::LMA != 0;
        let long = lma && snap.cs_access_rights & (1 << 13) != 0;
        let cpl = ((snap.ss_access_rights >> 5) & 3) as u8;
        let xregs = xen_abi::Regs {
            rax: regs.rax,
            rbx: regs.rbx,
            rcx: regs.rcx,
            rdx: regs.rdx,
            rsi: regs.rsi,
            rdi: regs.rdi,
            r8: regs.r8,
            r10: regs.r10,
            mode: if long {
                xen_abi::Mode::Long
            } else {
                xen_abi::Mode::Compat
            },
            cpl,
        };
        let paging = x86_emul::Paging::new(snap.cr0, exit.cr3, snap.cr4, self.mode.efer);
        regs.rax = host.xen_hypercall(&xregs, paging, cpl == 3);
        self.advance(exit, true, VmcsWrites::default())
    }

    /// A write to the Xen hypercall MSR: fill the page it names.
    fn install_hypercall_page(&mut self, exit: &Exit, host: &mut dyn Host, value: u64) -> Action {
        let mut page = [0u8; xen_abi::PAGE_SIZE];
        xen_abi::cpuid::write_hypercall_page(&mut page);
        match xen_abi::cpuid::hypercall_msr_write(value) {
            Ok(gpa) if host.write_guest(gpa, &page) => {
                self.advance(exit, false, VmcsWrites::default())
            }
            _ => self.refuse(
                exit,
                host,
                VECTOR_GP,
                format_args!("hypercall page at {value:#x} (not a page of RAM)"),
            ),
        }
    }

    fn cr(&mut self, exit: &Exit, regs: &mut GpRegs, host: &mut dyn Host) -> Action {
        match CrAccess::decode(exit.qualification) {
            CrAccess::MovTo { cr, gpr } => {
                let Some(value) = regs.get(gpr) else {
                    return self.inconsistent("MOV to CR from RSP", exit);
                };
                let result = match cr {
                    0 => self.mode.write_cr0(value),
                    4 => self.mode.write_cr4(value),
                    8 => {
                        if value > 15 {
                            Err(ModeError::Reserved)
                        } else {
                            self.tpr = value;
                            Ok(VmcsWrites::default())
                        }
                    }
                    _ => return self.inconsistent("MOV to an unexpected control register", exit),
                };
                match result {
                    Ok(w) => self.advance(exit, false, w),
                    Err(e) => self.refuse(
                        exit,
                        host,
                        VECTOR_GP,
                        format_args!("MOV to CR{cr} of {value:#x} ({e:?})"),
                    ),
                }
            }
            CrAccess::MovFrom { cr: 8, gpr } => {
                if !regs.set(gpr, self.tpr) {
                    return self.inconsistent("MOV from CR8 into RSP", exit);
                }
                self.advance(exit, true, VmcsWrites::default())
            }
            _ => self.inconsistent("unexpected control-register access", exit),
        }
    }
}

/// Guest RAM for the instruction emulator, through the host.
struct HostMemory<'a>(&'a dyn Host);

impl x86_emul::GuestMemory for HostMemory<'_> {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), x86_emul::MemError> {
        if self.0.read_guest(gpa, buf) {
            Ok(())
        } else {
            Err(x86_emul::MemError {
                gpa,
                len: buf.len(),
            })
        }
    }
}

/// The platform's MMIO devices for the instruction emulator.
struct PlatformMmio<'a> {
    platform: &'a mut vmm_devices::Platform,
    now: u64,
}

impl x86_emul::Mmio for PlatformMmio<'_> {
    fn read(&mut self, gpa: u64, size: x86_emul::Size) -> Result<u64, x86_emul::MmioError> {
        self.platform
            .mmio_read(self.now, gpa, size.bytes())
            .map_err(|_| x86_emul::MmioError::Unmapped { gpa })
    }

    fn write(
        &mut self,
        gpa: u64,
        size: x86_emul::Size,
        value: u64,
    ) -> Result<(), x86_emul::MmioError> {
        self.platform
            .mmio_write(self.now, gpa, size.bytes(), value)
            .map_err(|_| x86_emul::MmioError::Unmapped { gpa })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmx::{cr0, cr4, efer, entry};
    use proptest::prelude::*;
    use std::string::{String, ToString};
    use std::vec::Vec;

    #[derive(Default)]
    struct FakeHost {
        lines: Vec<String>,
        reports: Vec<String>,
        input: std::collections::VecDeque<u8>,
        /// Guest RAM from 0.
        ram: Vec<u8>,
        /// TSC ticks (50 MHz in these tests: 50 ticks per microsecond).
        tsc: std::cell::Cell<u64>,
        /// Hypercalls seen: (number, first argument read through paging).
        hypercalls: Vec<(u64, u64)>,
        /// The upcall vector the fake hub reports pending.
        upcall: Option<u8>,
        /// Whether the guest set up a callback vector.
        route: bool,
    }

    impl Host for FakeHost {
        fn console_line(&mut self, line: &[u8]) {
            self.lines.push(String::from_utf8_lossy(line).into_owned());
        }
        fn report(&mut self, msg: fmt::Arguments) {
            self.reports.push(msg.to_string());
        }
        fn host_cpuid(&self, leaf: u32, _subleaf: u32) -> [u32; 4] {
            match leaf {
                0 => [0x16, 0x756e_6547, 0x6c65_746e, 0x4965_6e69],
                1 => [0x306c3, 0, u32::MAX, u32::MAX],
                _ => [0; 4],
            }
        }
        fn tsc(&self) -> u64 {
            self.tsc.get()
        }
        fn read_guest(&self, gpa: u64, buf: &mut [u8]) -> bool {
            let start = gpa as usize;
            match self.ram.get(start..start + buf.len()) {
                Some(src) => {
                    buf.copy_from_slice(src);
                    true
                }
                None => false,
            }
        }
        fn cpu_snapshot(&mut self) -> Option<CpuSnapshot> {
            // 32-bit protected mode, paging off, CPL 0.
            Some(CpuSnapshot {
                cs_access_rights: 0xC09B,
                ss_access_rights: 0xC093,
                cr0: 0x11,
                ..CpuSnapshot::default()
            })
        }
        fn console_input(&mut self) -> Option<u8> {
            self.input.pop_front()
        }
        fn cpu_mode(&mut self) -> Option<CpuMode> {
            self.cpu_snapshot().map(|s| CpuMode {
                cs_access_rights: s.cs_access_rights,
                ss_access_rights: s.ss_access_rights,
                cr0: s.cr0,
                cr4: s.cr4,
            })
        }
        fn write_guest(&mut self, gpa: u64, buf: &[u8]) -> bool {
            let start = gpa as usize;
            match self.ram.get_mut(start..start + buf.len()) {
                Some(dst) => {
                    dst.copy_from_slice(buf);
                    true
                }
                None => false,
            }
        }
        fn xen_hypercall(
            &mut self,
            regs: &xen_abi::Regs,
            paging: x86_emul::Paging,
            user: bool,
        ) -> u64 {
            // Reads the u64 that RDI points at, through the guest's paging.
            struct Ram<'a>(&'a mut Vec<u8>);
            impl crate::xen::PhysMem for Ram<'_> {
                fn read(&self, gpa: u64, buf: &mut [u8]) -> bool {
                    let s = gpa as usize;
                    self.0
                        .get(s..s + buf.len())
                        .map(|src| buf.copy_from_slice(src))
                        .is_some()
                }
                fn write(&mut self, _gpa: u64, _buf: &[u8]) -> bool {
                    false
                }
            }
            let mut ram = Ram(&mut self.ram);
            let mut mem = crate::xen::LinearMem::new(&mut ram, paging, user);
            let mut arg = [0u8; 8];
            use xen_abi::GuestMem;
            let first = match mem.read(regs.rdi, &mut arg) {
                Ok(()) => u64::from_le_bytes(arg),
                Err(_) => u64::MAX,
            };
            self.hypercalls.push((regs.rax, first));
            (-38i64) as u64
        }
        fn xen_upcall(&mut self) -> Option<u8> {
            self.upcall
        }
        fn xen_upcall_route(&mut self) -> bool {
            self.route
        }
    }

    fn vm() -> Vm {
        Vm::new(
            VmConfig {
                ram_size: 8 << 20,
                tsc_khz: 50_000,
                kind: GuestKind::Pvh,
                xen: None,
            },
            0,
        )
    }

    fn linux_vm() -> Vm {
        Vm::new(
            VmConfig {
                ram_size: 8 << 20,
                tsc_khz: 50_000,
                kind: GuestKind::Linux {
                    unix_secs: 1_800_000_000,
                },
                xen: None,
            },
            0,
        )
    }

    fn wrmsr(vm: &mut Vm, host: &mut FakeHost, msr: u32, value: u64) -> Action {
        let mut regs = GpRegs {
            rcx: u64::from(msr),
            rax: value & 0xffff_ffff,
            rdx: value >> 32,
            ..GpRegs::default()
        };
        vm.handle(&exit(ExitReason::Wrmsr, 0), &mut regs, host)
    }

    fn exit(reason: ExitReason, qualification: u64) -> Exit {
        Exit {
            raw_reason: reason as u32,
            qualification,
            instruction_len: 2,
            rip: 0x1000,
            rflags: 2,
            ..Exit::default()
        }
    }

    fn resume(a: Action) -> Resume {
        match a {
            Action::Resume(r) => r,
            Action::Halt(_) => panic!("halted"),
            Action::Stop(s) => panic!("stopped: {s}"),
        }
    }

    #[test]
    fn x2apic_timer_interrupts_a_halted_linux_guest() {
        let (mut vm, mut host) = (linux_vm(), FakeHost::default());
        // x2APIC mode, software-enabled, one-shot timer on vector 0xec.
        resume(wrmsr(
            &mut vm,
            &mut host,
            0x1b,
            0xfee0_0000 | (1 << 11) | (1 << 10) | (1 << 8),
        ));
        resume(wrmsr(&mut vm, &mut host, 0x80f, 0x1ff));
        resume(wrmsr(&mut vm, &mut host, 0x83e, 0xb)); // divide by 1
        resume(wrmsr(&mut vm, &mut host, 0x832, 0xec));
        resume(wrmsr(&mut vm, &mut host, 0x838, 1_000_000)); // 1 ms at 1 GHz
        let deadline = vm.deadline_tsc().expect("timer armed");
        assert!((49_000..=51_000).contains(&deadline), "{deadline}");
        // HLT with interrupts on: the vCPU halts.
        let mut e = exit(ExitReason::Hlt, 0);
        e.rflags = 0x202;
        let mut regs = GpRegs::default();
        let Action::Halt(pending) = vm.handle(&e, &mut regs, &mut host) else {
            panic!("expected a halt")
        };
        assert_eq!(pending.rip, 0x1002);
        // Woken early: still halted.
        host.tsc.set(10_000);
        let Action::Halt(pending) = vm.wake(pending, &mut host) else {
            panic!("woke without an interrupt")
        };
        // Woken after the deadline: the timer interrupt is injected.
        host.tsc.set(deadline + 1);
        let r = resume(vm.wake(pending, &mut host));
        assert_eq!(r.interruption, interruption::VALID | 0xec);
        assert_eq!(r.rip, 0x1002);
    }

    #[test]
    fn sti_hlt_wakes_without_the_shadow() {
        let (mut vm, mut host) = (linux_vm(), FakeHost::default());
        resume(wrmsr(
            &mut vm,
            &mut host,
            0x1b,
            0xfee0_0000 | (1 << 11) | (1 << 10) | (1 << 8),
        ));
        resume(wrmsr(&mut vm, &mut host, 0x80f, 0x1ff));
        resume(wrmsr(&mut vm, &mut host, 0x832, 0xec));
        resume(wrmsr(&mut vm, &mut host, 0x838, 1000));
        // `sti; hlt`: the HLT exit reports blocking by STI.
        let mut e = exit(ExitReason::Hlt, 0);
        e.rflags = 0x202;
        e.interruptibility = 1;
        let Action::Halt(pending) = vm.handle(&e, &mut GpRegs::default(), &mut host) else {
            panic!("expected a halt")
        };
        assert_eq!(pending.vmcs.get(field::GUEST_INTERRUPTIBILITY), Some(0));
        host.tsc.set(1_000_000);
        let r = resume(vm.wake(pending, &mut host));
        assert_eq!(r.interruption, interruption::VALID | 0xec);
        assert_eq!(
            r.vmcs.get(field::GUEST_INTERRUPTIBILITY),
            Some(0),
            "shadow cleared on entry"
        );
    }

    #[test]
    fn pending_interrupt_waits_for_the_window() {
        let (mut vm, mut host) = (linux_vm(), FakeHost::default());
        resume(wrmsr(
            &mut vm,
            &mut host,
            0x1b,
            0xfee0_0000 | (1 << 11) | (1 << 10) | (1 << 8),
        ));
        resume(wrmsr(&mut vm, &mut host, 0x80f, 0x1ff));
        resume(wrmsr(&mut vm, &mut host, 0x83f, 0x40)); // self-IPI, vector 0x40
                                                        // The wrmsr exit had IF clear (rflags 2): ask for the window.
        let r = resume(wrmsr(&mut vm, &mut host, 0x808, 0));
        assert!(r.interrupt_window);
        assert_eq!(r.interruption, 0);
        let mut e = exit(ExitReason::InterruptWindow, 0);
        e.rflags = 0x202;
        let r = resume(vm.handle(&e, &mut GpRegs::default(), &mut host));
        assert_eq!(r.rip, 0x1000, "a window exit does not advance");
        assert_eq!(r.interruption, interruption::VALID | 0x40);
    }

    #[test]
    fn xapic_mmio_goes_through_the_emulator() {
        let (mut vm, mut host) = (linux_vm(), FakeHost::default());
        host.ram = std::vec![0; 0x2000];
        // At 0x1000: mov [ebx], ecx (89 0b); at 0x1002: mov eax, [ebx] (8b 03).
        host.ram[0x1000..0x1004].copy_from_slice(&[0x89, 0x0b, 0x8b, 0x03]);
        let tpr = 0xfee0_0080;
        let mut e = exit(ExitReason::EptViolation, 2);
        e.guest_physical = tpr;
        let mut regs = GpRegs {
            rbx: tpr,
            rcx: 0x30,
            ..GpRegs::default()
        };
        let r = resume(vm.handle(&e, &mut regs, &mut host));
        assert_eq!(r.rip, 0x1002);
        let mut e = exit(ExitReason::EptViolation, 1);
        e.rip = 0x1002;
        e.guest_physical = tpr;
        let r = resume(vm.handle(&e, &mut regs, &mut host));
        assert_eq!(r.rip, 0x1004);
        assert!(r.regs_dirty);
        assert_eq!(regs.rax, 0x30, "TPR reads back");
    }

    #[test]
    fn unsupported_mmio_instruction_stops_with_its_bytes() {
        let (mut vm, mut host) = (linux_vm(), FakeHost::default());
        host.ram = std::vec![0; 0x2000];
        host.ram[0x1000..0x1003].copy_from_slice(&[0x0f, 0x0b, 0x90]); // ud2
        let mut e = exit(ExitReason::EptViolation, 1);
        e.guest_physical = 0xfee0_0030;
        match vm.handle(&e, &mut GpRegs::default(), &mut host) {
            Action::Stop(s @ StopReason::UnsupportedInstruction { .. }) => {
                assert!(std::format!("{s}").contains("0f 0b"), "{s}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn acpi_power_off_stops_the_vm_cleanly() {
        let (mut vm, mut host) = (linux_vm(), FakeHost::default());
        let a = out(&mut vm, &mut host, 0x604, (5 << 10) | (1 << 13), 2);
        assert_eq!(a, Action::Stop(StopReason::PoweredOff));
        assert!(StopReason::PoweredOff.is_clean());
    }

    fn out(vm: &mut Vm, host: &mut FakeHost, port: u16, value: u64, size: u64) -> Action {
        let mut regs = GpRegs {
            rax: value,
            ..GpRegs::default()
        };
        let q = (u64::from(port) << 16) | (size - 1);
        vm.handle(&exit(ExitReason::IoInstruction, q), &mut regs, host)
    }

    #[test]
    fn console_lines_reach_the_host() {
        let (mut vm, mut host) = (vm(), FakeHost::default());
        for b in b"hi there\n" {
            let r = resume(out(&mut vm, &mut host, COM1, u64::from(*b), 1));
            assert_eq!(r.rip, 0x1002);
        }
        assert_eq!(host.lines, ["hi there"]);
        assert!(host.reports.is_empty());
    }

    #[test]
    fn console_input_reaches_the_receive_register() {
        let (mut vm, mut host) = (vm(), FakeHost::default());
        host.input.extend(b"ok");
        let read = |vm: &mut Vm, host: &mut FakeHost, offset: u64| {
            let mut regs = GpRegs::default();
            let q = ((0x3f8 + offset) << 16) | 8; // IN AL, DX
            resume(vm.handle(&exit(ExitReason::IoInstruction, q), &mut regs, host));
            regs.rax as u8
        };
        assert_eq!(read(&mut vm, &mut host, 5) & 1, 1, "LSR.DR set");
        assert_eq!(read(&mut vm, &mut host, 0), b'o');
        assert_eq!(read(&mut vm, &mut host, 0), b'k');
        assert_eq!(read(&mut vm, &mut host, 5) & 1, 0, "FIFO drained");
    }

    #[test]
    fn exit_port_ends_the_vm_with_its_status() {
        let (mut vm, mut host) = (vm(), FakeHost::default());
        assert_eq!(
            out(&mut vm, &mut host, EXIT_PORT, 0x100, 4),
            Action::Stop(StopReason::Exited(0))
        );
        assert_eq!(
            out(&mut vm, &mut host, EXIT_PORT, 3, 4),
            Action::Stop(StopReason::Exited(3))
        );
    }

    #[test]
    fn unassigned_ports_read_all_ones_and_are_reported() {
        let (mut vm, mut host) = (vm(), FakeHost::default());
        let mut regs = GpRegs {
            rax: 0x1234_5600,
            ..GpRegs::default()
        };
        let q = (0x200u64 << 16) | 8; // IN AL, DX
        let r = resume(vm.handle(&exit(ExitReason::IoInstruction, q), &mut regs, &mut host));
        assert!(r.regs_dirty);
        assert_eq!(regs.rax, 0x1234_56ff);
        assert_eq!(host.reports.len(), 1);
        assert!(
            host.reports[0].contains("unassigned I/O port 0x200"),
            "{:?}",
            host.reports
        );
        for _ in 0..20 {
            resume(out(&mut vm, &mut host, 0x80, 1, 1));
        }
        assert_eq!(host.reports.len(), MISDEED_REPORTS as usize + 1);
        assert_eq!(vm.misdeeds().unassigned_ports, 21);
    }

    #[test]
    fn unknown_msr_injects_gp_without_advancing() {
        let (mut vm, mut host) = (vm(), FakeHost::default());
        let mut regs = GpRegs {
            rcx: 0xC001_1234,
            ..GpRegs::default()
        };
        let r = resume(vm.handle(&exit(ExitReason::Rdmsr, 0), &mut regs, &mut host));
        assert_eq!(r.rip, 0x1000);
        assert_eq!(
            r.interruption,
            interruption::VALID
                | interruption::TYPE_HW_EXCEPTION
                | interruption::DELIVER_ERROR_CODE
                | 13
        );
        assert_eq!(r.vmcs.get(field::ENTRY_EXCEPTION_ERROR_CODE), Some(0));
        assert_eq!(vm.misdeeds().unknown_msrs, 1);
    }

    #[test]
    fn cpuid_hides_vmx_and_names_the_hypervisor() {
        let (mut vm, mut host) = (vm(), FakeHost::default());
        let mut regs = GpRegs {
            rax: 1,
            ..GpRegs::default()
        };
        resume(vm.handle(&exit(ExitReason::Cpuid, 0), &mut regs, &mut host));
        assert_eq!(regs.rcx & (1 << 5), 0, "VMX hidden");
        assert_ne!(regs.rcx & (1 << 31), 0, "hypervisor bit set");
        let mut regs = GpRegs {
            rax: 0x4000_0000,
            ..GpRegs::default()
        };
        resume(vm.handle(&exit(ExitReason::Cpuid, 0), &mut regs, &mut host));
        let mut sig = Vec::new();
        for r in [regs.rbx, regs.rcx, regs.rdx] {
            sig.extend_from_slice(&(r as u32).to_le_bytes());
        }
        assert_eq!(&sig, b"cloisterVMM ");
    }

    fn xen_vm() -> Vm {
        Vm::new(
            VmConfig {
                ram_size: 8 << 20,
                tsc_khz: 50_000,
                kind: GuestKind::Pvh,
                xen: Some(3),
            },
            0,
        )
    }

    #[test]
    fn xen_leaves_and_hypercall_page_only_for_xen_vms() {
        let (mut vm, mut host) = (xen_vm(), FakeHost::default());
        host.ram = vec![0; 0x10000];
        let mut regs = GpRegs {
            rax: 0x4000_0100,
            ..GpRegs::default()
        };
        resume(vm.handle(&exit(ExitReason::Cpuid, 0), &mut regs, &mut host));
        let mut sig = Vec::new();
        for r in [regs.rbx, regs.rcx, regs.rdx] {
            sig.extend_from_slice(&(r as u32).to_le_bytes());
        }
        assert_eq!(&sig, b"XenVMMXenVMM");
        let mut regs = GpRegs {
            rax: 0x4000_0104,
            ..GpRegs::default()
        };
        resume(vm.handle(&exit(ExitReason::Cpuid, 0), &mut regs, &mut host));
        assert_eq!(regs.rcx, 3, "domain id");
        // The hypercall page: stub 32 (event_channel_op) is `mov eax, 32; vmcall; ret`.
        resume(wrmsr(&mut vm, &mut host, 0x4000_0200, 0x3000));
        assert_eq!(
            &host.ram[0x3000 + 32 * 32..0x3000 + 32 * 32 + 9],
            &[0xB8, 32, 0, 0, 0, 0x0F, 0x01, 0xC1, 0xC3]
        );
        // Outside RAM, or not page-aligned: #GP.
        for bad in [0x10_0000_0000, 0x3001] {
            let r = resume(wrmsr(&mut vm, &mut host, 0x4000_0200, bad));
            assert_eq!(r.interruption & 0xff, VECTOR_GP);
        }
        // A VM without the Xen ABI sees neither.
        let (mut plain, mut host) = (vm_plain(), FakeHost::default());
        let mut regs = GpRegs {
            rax: 0x4000_0100,
            ..GpRegs::default()
        };
        resume(plain.handle(&exit(ExitReason::Cpuid, 0), &mut regs, &mut host));
        assert_ne!(regs.rbx as u32, 0x566e_6558);
        let r = resume(plain.handle(
            &exit(ExitReason::Vmcall, 0),
            &mut GpRegs::default(),
            &mut host,
        ));
        assert_eq!(
            r.interruption & 0xff,
            VECTOR_UD,
            "VMCALL is #UD without Xen"
        );
        assert!(host.hypercalls.is_empty());
    }

    fn vm_plain() -> Vm {
        vm()
    }

    #[test]
    fn the_stats_leaf_counts_exits() {
        let (mut vm, mut host) = (xen_vm(), FakeHost::default());
        let mut regs = GpRegs::default();
        let _ = vm.handle(&exit(ExitReason::Vmcall, 0), &mut regs, &mut host);
        let mut regs = GpRegs {
            rax: u64::from(STATS_LEAF),
            ..GpRegs::default()
        };
        resume(vm.handle(&exit(ExitReason::Cpuid, 0), &mut regs, &mut host));
        assert_eq!((regs.rax, regs.rbx, regs.rcx, regs.rdx), (2, 0, 1, 0));
    }

    #[test]
    fn vmcall_reaches_the_hub_with_linear_arguments() {
        let (mut vm, mut host) = (xen_vm(), FakeHost::default());
        host.ram = vec![0; 0x10000];
        host.ram[0x2000..0x2008].copy_from_slice(&0x1234u64.to_le_bytes());
        // Paging is off in the fake snapshot: linear == physical.
        let mut regs = GpRegs {
            rax: 32,
            rdi: 0x2000,
            ..GpRegs::default()
        };
        let r = resume(vm.handle(&exit(ExitReason::Vmcall, 0), &mut regs, &mut host));
        assert_eq!(r.rip, 0x1002, "VMCALL skipped");
        assert!(r.regs_dirty);
        assert_eq!(regs.rax as i64, -38);
        assert_eq!(host.hypercalls, vec![(32, 0x1234)]);
    }

    #[test]
    fn event_upcall_wakes_a_halted_guest_and_waits_for_if() {
        let (mut vm, mut host) = (xen_vm(), FakeHost::default());
        // Without a callback vector nothing can wake a halted vCPU.
        let mut e = exit(ExitReason::Hlt, 0);
        e.rflags = 0x202;
        assert!(matches!(
            vm.handle(&e, &mut GpRegs::default(), &mut host),
            Action::Stop(StopReason::HaltedForever { .. })
        ));
        host.route = true;
        // `sti; hlt` with nothing pending: the VM halts (it can be woken).
        let mut e = exit(ExitReason::Hlt, 0);
        e.rflags = 0x202;
        e.interruptibility = 1;
        let Action::Halt(pending) = vm.handle(&e, &mut GpRegs::default(), &mut host) else {
            panic!("expected a halt")
        };
        // Woken without an event: stays halted.
        let Action::Halt(pending) = vm.wake(pending, &mut host) else {
            panic!("expected to stay halted")
        };
        host.upcall = Some(0xf3);
        let r = resume(vm.wake(pending, &mut host));
        assert_eq!(r.interruption, interruption::VALID | 0xf3);
        // With IF clear the upcall waits for the interrupt window.
        let r = resume(vm.handle(
            &exit(ExitReason::Cpuid, 0),
            &mut GpRegs::default(),
            &mut host,
        ));
        assert_eq!(r.interruption, 0);
        assert!(r.interrupt_window);
        // A notification while the guest runs asks for the window too.
        assert!(resume(vm.on_notification(0x1000, &mut host)).interrupt_window);
        // Halting with interrupts off can never end.
        host.upcall = None;
        assert!(matches!(
            vm.handle(&exit(ExitReason::Hlt, 0), &mut GpRegs::default(), &mut host),
            Action::Stop(StopReason::HaltedForever { .. })
        ));
    }

    #[test]
    fn pvh_guest_enters_long_mode() {
        let (mut vm, mut host) = (vm(), FakeHost::default());
        // mov cr4, rax (PAE)
        let mut regs = GpRegs {
            rax: cr4::PAE,
            ..GpRegs::default()
        };
        resume(vm.handle(&exit(ExitReason::CrAccess, 0x004), &mut regs, &mut host));
        // wrmsr EFER.LME
        let mut regs = GpRegs {
            rcx: 0xC000_0080,
            rax: efer::LME,
            ..GpRegs::default()
        };
        resume(vm.handle(&exit(ExitReason::Wrmsr, 0), &mut regs, &mut host));
        // mov cr0, rax (PG)
        let mut regs = GpRegs {
            rax: cr0::PE | cr0::ET | cr0::PG,
            ..GpRegs::default()
        };
        let r = resume(vm.handle(&exit(ExitReason::CrAccess, 0x000), &mut regs, &mut host));
        assert_eq!(r.vmcs.get(field::GUEST_EFER), Some(efer::LME | efer::LMA));
        let ctl = r.vmcs.get(field::ENTRY_CONTROLS).unwrap();
        assert_ne!(ctl & u64::from(entry::IA32E_MODE_GUEST), 0);
        assert!(host.reports.is_empty());
    }

    #[test]
    fn fatal_exits_stop_the_vm() {
        let (mut vm, mut host) = (vm(), FakeHost::default());
        let mut regs = GpRegs::default();
        let mut e = exit(ExitReason::EptViolation, 1);
        e.guest_physical = 0xfee0_0000;
        assert_eq!(
            vm.handle(&e, &mut regs, &mut host),
            Action::Stop(StopReason::UnmappedAccess {
                gpa: 0xfee0_0000,
                access: "read",
                rip: 0x1000
            })
        );
        assert_eq!(
            vm.handle(&exit(ExitReason::TripleFault, 0), &mut regs, &mut host),
            Action::Stop(StopReason::TripleFault { rip: 0x1000 })
        );
        let e = Exit {
            raw_reason: 0x8000_0021,
            ..Exit::default()
        };
        assert_eq!(
            vm.handle(&e, &mut regs, &mut host),
            Action::Stop(StopReason::EntryFailed { reason: 0x21 })
        );
        assert!(matches!(
            vm.handle(&exit(ExitReason::Hlt, 0), &mut regs, &mut host),
            Action::Stop(StopReason::HaltedForever { .. })
        ));
        assert_eq!(vm.stats().total(), 4);
    }

    #[test]
    fn bad_instruction_length_is_not_trusted() {
        let (mut vm, mut host) = (vm(), FakeHost::default());
        let mut e = exit(ExitReason::Cpuid, 0);
        e.instruction_len = 40;
        let mut regs = GpRegs::default();
        assert!(matches!(
            vm.handle(&e, &mut regs, &mut host),
            Action::Stop(StopReason::Inconsistent { .. })
        ));
    }

    proptest! {
        /// Whatever an exit claims, the handler returns a decision without
        /// panicking, and a resume never injects an invalid event.
        #[test]
        fn any_exit_is_handled(
            reason in prop_oneof![0u32..70, any::<u32>()],
            qualification in any::<u64>(),
            len in any::<u64>(),
            gpa in any::<u64>(),
            rflags in any::<u64>(),
            rax in any::<u64>(),
            rcx in any::<u64>(),
            rdx in any::<u64>(),
        ) {
            let (mut vm, mut host) = (vm(), FakeHost::default());
            let e = Exit { raw_reason: reason, qualification, instruction_len: len, guest_physical: gpa, rip: 0x1000, rflags, ..Exit::default() };
            let mut regs = GpRegs { rax, rcx, rdx, ..GpRegs::default() };
            if let Action::Resume(r) = vm.handle(&e, &mut regs, &mut host) {
                prop_assert!(r.interruption == 0 || r.interruption & interruption::VALID != 0);
                prop_assert!(r.rip == 0x1000 || r.rip == 0x1000 + len);
            }
        }
    }
}
