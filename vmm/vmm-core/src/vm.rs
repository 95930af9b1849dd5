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
const RFLAGS_IF: u64 = 1 << 9;
const VECTOR_GP: u32 = 13;
const VECTOR_UD: u32 = 6;

/// Static facts about a VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmConfig {
    /// Bytes of guest RAM, mapped at guest-physical 0.
    pub ram_size: u64,
    /// The TSC frequency in kHz that the guest is told.
    pub tsc_khz: u64,
}

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
}

impl StopReason {
    /// Whether this is a clean, successful end (exit status 0).
    pub fn is_clean(&self) -> bool {
        matches!(self, StopReason::Exited(0))
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
            StopReason::HaltedForever { rip } => {
                write!(f, "stopped: HLT with interrupts disabled at rip {rip:#x}")
            }
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
}

/// The decision for one VM exit. (`Resume` carries its VMCS writes inline:
/// the exit path allocates nothing.)
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Enter the guest again.
    Resume(Resume),
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
}

impl Vm {
    /// A VM about to start at a PVH entry point.
    pub fn new(cfg: VmConfig) -> Self {
        let cpuid = vcpu_policy::CpuidConfig {
            tsc_khz: u32::try_from(cfg.tsc_khz).unwrap_or(0),
            ..vcpu_policy::CpuidConfig::default()
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
        }
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
                let r = vcpu_policy::cpuid(regs.rax as u32, regs.rcx as u32, &host_fn, &self.cpuid);
                regs.rax = u64::from(r.eax);
                regs.rbx = u64::from(r.ebx);
                regs.rcx = u64::from(r.ecx);
                regs.rdx = u64::from(r.edx);
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
                if exit.rflags & RFLAGS_IF == 0 {
                    Action::Stop(StopReason::HaltedForever { rip: exit.rip })
                } else {
                    // No interrupt source exists yet, so a halted vCPU could
                    // never wake: treat it like HLT with interrupts off.
                    Action::Stop(StopReason::HaltedForever { rip: exit.rip })
                }
            }
            ExitReason::TripleFault => Action::Stop(StopReason::TripleFault { rip: exit.rip }),
            ExitReason::EptViolation => {
                let access = EptAccess::decode(exit.qualification).describe();
                if exit.guest_physical < self.cfg.ram_size {
                    return self.inconsistent("EPT violation inside guest RAM", exit);
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
            rip,
            interruption: 0,
            regs_dirty,
            vmcs,
            msr: None,
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
            rip: exit.rip,
            interruption: info,
            regs_dirty,
            vmcs,
            msr: None,
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
            EXIT_PORT if !io.input => return Action::Stop(StopReason::Exited(value as u8)),
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
        } else {
            self.msrs.read(msr, host.tsc())
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
            // seL4 does not let the VMM set the TSC offset, and the LAPIC
            // model arrives with the Linux platform: until then these writes
            // are refused rather than silently not taking effect.
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
            1000
        }
        fn console_input(&mut self) -> Option<u8> {
            self.input.pop_front()
        }
    }

    fn vm() -> Vm {
        Vm::new(VmConfig {
            ram_size: 8 << 20,
            tsc_khz: 50_000,
        })
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
            Action::Stop(s) => panic!("stopped: {s}"),
        }
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
