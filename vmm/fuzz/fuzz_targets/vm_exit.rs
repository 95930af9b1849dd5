//! Fuzzes the VM exit handler, `vmm_core::vm::Vm::handle`, with a sequence of
//! exits whose every field (and the guest registers) comes from the input.
//!
//! The registers persist across exits, as they do for a real vCPU: each step
//! changes a few of them and then hands them to `handle`. The sequence stops
//! at the first `Action::Stop`. A fake `Host` answers CPUID (a realistic table
//! or input-derived values), counts TSC reads, offers console input from the
//! fuzz input and checks every console line.
//! An input may start with the three exits that switch the vCPU to long mode
//! (CR4.PAE, EFER.LME, CR0.PG), which random exits rarely find on their own.
//!
//! Invariants:
//! * `handle` never panics; neither does formatting a report or a stop reason.
//! * An injected event (non-zero interruption info) has the VALID bit, resumes
//!   at the exit's RIP, and a delivered error code comes with its VMCS field.
//! * Without an injection, the exit's instruction length is in 1..=15 and the
//!   resumed RIP is `rip + instruction_len` (wrapping), truncated to 32 bits
//!   unless the vCPU is in long mode (EFER.LMA) after the exit — the rule in
//!   `Vm::advance`. LMA is tracked from the GUEST_EFER writes the handler asks for.
//! * An ENTRY_CONTROLS write agrees with that LMA (IA-32e mode guest bit).
//! * Registers are changed only when the resume says `regs_dirty`.
//! * Console lines are at most `CONSOLE_LINE` bytes with no control
//!   characters other than tab (the `LineBuffer` guarantee).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use vmm_core::exit::{Exit, GpRegs};
use vmm_core::vm::{
    Action, CpuSnapshot, GuestKind, Host, Vm, VmConfig, COM1, CONSOLE_LINE, EXIT_PORT,
};
use vmm_core::vmx::{cr0, cr4, efer, entry, field, interruption, ExitReason};

#[derive(Arbitrary, Debug)]
struct Input {
    ram_size: RamSize,
    tsc_khz: u64,
    /// 0: a realistic host CPUID table; otherwise input-derived values.
    cpuid_seed: u32,
    tsc_start: u64,
    tsc_step: u32,
    /// Console input the host offers the guest (read through COM1).
    console_input: Vec<u8>,
    /// Switch to long mode first, starting at this RIP.
    long_mode_prelude: Option<u64>,
    /// The VM has the Xen ABI with this domain id.
    xen: Option<u16>,
    /// The upcall vector the hub reports pending (Xen VMs).
    upcall: Option<u8>,
    steps: Vec<Step>,
}

#[derive(Arbitrary, Debug)]
enum RamSize {
    Mib(u8),
    Raw(u64),
}

#[derive(Arbitrary, Debug)]
struct Step {
    reason: Reason,
    qualification: Qual,
    len: Len,
    guest_physical: u64,
    rip: Rip,
    rflags: u64,
    interruptibility: u64,
    cr3: u64,
    /// Register updates before the exit: (register index 0..16, value).
    regs: Vec<(u8, RegVal)>,
}

#[derive(Arbitrary, Debug)]
enum Reason {
    /// A basic exit reason 0..=64 (every reason the VMM names).
    Basic(u8),
    Raw(u32),
}

#[derive(Arbitrary, Debug)]
enum Qual {
    Raw(u64),
    Io {
        port: Port,
        size: u8,
        input: bool,
        string: bool,
        rep: bool,
    },
    Cr {
        cr: u8,
        kind: u8,
        gpr: u8,
        lmsw: u16,
    },
    Dr {
        dr: u8,
        read: bool,
        gpr: u8,
    },
    Ept(u8),
}

#[derive(Arbitrary, Debug)]
enum Port {
    Com1(u8),
    Exit,
    Raw(u16),
}

#[derive(Arbitrary, Debug)]
enum Len {
    Small(u8),
    Raw(u64),
}

#[derive(Arbitrary, Debug)]
enum Rip {
    Raw(u64),
    /// Just below 4 GiB, to wrap a 32-bit RIP.
    Below4G(u8),
    /// Just below 2^64.
    Top(u8),
    Low(u32),
}

#[derive(Arbitrary, Debug)]
enum RegVal {
    Raw(u64),
    Small(u8),
    /// An MSR number from the policy's list (for RCX).
    Msr(u8),
    /// A CR0/CR4/EFER value that changes the vCPU mode.
    Mode(u8),
}

const MSRS: &[u32] = &[
    0x10,
    0x17,
    0x1B,
    0x3A,
    0x8B,
    0xCE,
    0xFE,
    0x174,
    0x175,
    0x176,
    0x1A0,
    0x1D9,
    0x277,
    0x2FF,
    0x6E0,
    0x800,
    0x830,
    0x8FF,
    0xC000_0080,
    0xC000_0081,
    0xC000_0082,
    0xC000_0083,
    0xC000_0084,
    0xC000_0100,
    0xC000_0101,
    0xC000_0102,
    0xC000_0103,
    0x48,
    0x49,
    0x10A,
    0x3B,
];

const MODE_VALUES: &[u64] = &[
    0,
    cr0::PE | cr0::ET,
    cr0::PE | cr0::ET | cr0::PG,
    cr0::PE | cr0::ET | cr0::PG | cr0::WP | cr0::NE,
    cr0::PG,
    cr0::CD | cr0::NW | cr0::PE,
    cr0::NW | cr0::PE,
    cr4::PAE,
    cr4::PAE | cr4::VMXE,
    efer::LME,
    efer::LME | efer::SCE | efer::NXE,
    efer::LME | efer::LMA,
    efer::LMA,
    1 << 32,
];

impl RegVal {
    fn value(&self) -> u64 {
        match *self {
            RegVal::Raw(v) => v,
            RegVal::Small(v) => u64::from(v),
            RegVal::Msr(i) => u64::from(MSRS[usize::from(i) % MSRS.len()]),
            RegVal::Mode(i) => MODE_VALUES[usize::from(i) % MODE_VALUES.len()],
        }
    }
}

impl Qual {
    fn value(&self) -> u64 {
        match *self {
            Qual::Raw(v) => v,
            Qual::Io {
                ref port,
                size,
                input,
                string,
                rep,
            } => {
                let port = match *port {
                    Port::Com1(o) => COM1 + u16::from(o % 8),
                    Port::Exit => EXIT_PORT,
                    Port::Raw(p) => p,
                };
                (u64::from(port) << 16)
                    | u64::from(size & 7)
                    | (u64::from(input) << 3)
                    | (u64::from(string) << 4)
                    | (u64::from(rep) << 5)
            }
            Qual::Cr {
                cr,
                kind,
                gpr,
                lmsw,
            } => {
                u64::from(cr & 0xf)
                    | (u64::from(kind & 3) << 4)
                    | (u64::from(gpr & 0xf) << 8)
                    | (u64::from(lmsw) << 16)
            }
            Qual::Dr { dr, read, gpr } => {
                u64::from(dr & 7) | (u64::from(read) << 4) | (u64::from(gpr & 0xf) << 8)
            }
            Qual::Ept(bits) => u64::from(bits),
        }
    }
}

struct FakeHost {
    input: VecDeque<u8>,
    cpuid_seed: u32,
    tsc: Cell<u64>,
    tsc_step: u64,
    upcall: Option<u8>,
}

fn mix(mut x: u64) -> u64 {
    // splitmix64 finaliser
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Host for FakeHost {
    fn console_line(&mut self, line: &[u8]) {
        assert!(
            line.len() <= CONSOLE_LINE,
            "console line of {} bytes",
            line.len()
        );
        assert!(
            line.iter().all(|&b| b == b'\t' || !(b < 0x20 || b == 0x7f)),
            "control character in console line {line:?}"
        );
    }

    fn report(&mut self, msg: fmt::Arguments) {
        let s = msg.to_string();
        assert!(!s.is_empty());
    }

    fn host_cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        if self.cpuid_seed == 0 {
            return match leaf {
                0 => [0x16, 0x756e_6547, 0x6c65_746e, 0x4965_6e69],
                1 => [0x306c3, 0x0010_0800, 0x7ffa_fbff, 0xbfeb_fbff],
                7 if subleaf == 0 => [0, 0x029c_6fbf, 0, 0x9c00_0400],
                0xd => [0x7, 0x340, 0x340, 0],
                0x8000_0000 => [0x8000_0008, 0, 0, 0],
                0x8000_0001 => [0, 0, 0x21, 0x2c10_0800],
                0x8000_0008 => [0x3027, 0, 0, 0],
                _ => [0; 4],
            };
        }
        let h =
            mix((u64::from(self.cpuid_seed) << 32) ^ (u64::from(leaf) << 8) ^ u64::from(subleaf));
        let g = mix(h);
        [h as u32, (h >> 32) as u32, g as u32, (g >> 32) as u32]
    }

    fn tsc(&self) -> u64 {
        let t = self.tsc.get();
        self.tsc.set(t.wrapping_add(self.tsc_step));
        t
    }

    fn console_input(&mut self) -> Option<u8> {
        self.input.pop_front()
    }

    fn read_guest(&self, _gpa: u64, _buf: &mut [u8]) -> bool {
        false
    }

    fn cpu_snapshot(&mut self) -> Option<CpuSnapshot> {
        None
    }

    fn cpu_mode(&mut self) -> Option<vmm_core::vm::CpuMode> {
        None
    }

    fn write_guest(&mut self, _gpa: u64, _buf: &[u8]) -> bool {
        false
    }

    fn xen_hypercall(
        &mut self,
        _regs: &xen_abi::Regs,
        _paging: x86_emul::Paging,
        _user: bool,
    ) -> u64 {
        // -ENOSYS: the hub itself is fuzzed by the xen_abi target.
        (-38i64) as u64
    }

    fn xen_upcall(&mut self) -> Option<u8> {
        self.upcall
    }

    fn xen_upcall_route(&mut self) -> bool {
        self.upcall.is_some()
    }
}

/// Basic exit reason 7: the guest opened its interrupt window.
const INTERRUPT_WINDOW: u32 = 7;

/// Hands one exit to the VM and checks the decision; `true` if the VM stopped.
fn step(vm: &mut Vm, host: &mut FakeHost, regs: &mut GpRegs, lma: &mut bool, exit: &Exit) -> bool {
    let before = *regs;
    match vm.handle(exit, regs, host) {
        Action::Stop(reason) => {
            let _ = reason.to_string();
            let _ = reason.is_clean();
            true
        }
        // Without a platform (or event channels) nothing wakes a halted
        // vCPU here; a halt is the end.
        Action::Halt(_) => true,
        Action::Resume(r) => {
            if let Some(e) = r.vmcs.get(field::GUEST_EFER) {
                *lma = e & efer::LMA != 0;
            }
            let lma = *lma;
            if let Some(ctl) = r.vmcs.get(field::ENTRY_CONTROLS) {
                assert_eq!(
                    ctl & u64::from(entry::IA32E_MODE_GUEST) != 0,
                    lma,
                    "IA-32e entry control disagrees with EFER.LMA: {exit:?} {r:?}"
                );
            }
            // A fault is injected at the faulting instruction; an external
            // interrupt (an event upcall) follows whatever the exit did.
            let fault = r.interruption != 0 && (r.interruption >> 8) & 7 != 0;
            if r.interruption != 0 {
                assert_ne!(
                    r.interruption & interruption::VALID,
                    0,
                    "injected event without VALID: {exit:?} {r:?}"
                );
                if r.interruption & interruption::DELIVER_ERROR_CODE != 0 {
                    assert!(
                        r.vmcs.get(field::ENTRY_EXCEPTION_ERROR_CODE).is_some(),
                        "error code delivered without ENTRY_EXCEPTION_ERROR_CODE: {r:?}"
                    );
                }
            }
            if fault {
                assert_eq!(r.rip, exit.rip, "injection moved RIP: {exit:?} {r:?}");
            } else if exit.raw_reason & 0xffff == INTERRUPT_WINDOW {
                // Nothing executed: the guest resumes where it was.
                assert_eq!(
                    r.rip, exit.rip,
                    "interrupt window moved RIP: {exit:?} {r:?}"
                );
            } else {
                assert!(
                    (1..=15).contains(&exit.instruction_len),
                    "advanced past an instruction of length {}: {exit:?} {r:?}",
                    exit.instruction_len
                );
                let mut want = exit.rip.wrapping_add(exit.instruction_len);
                if !lma {
                    want &= 0xffff_ffff;
                }
                assert_eq!(r.rip, want, "resumed RIP (lma {lma}): {exit:?} {r:?}");
            }
            if !r.regs_dirty {
                assert_eq!(
                    *regs, before,
                    "registers changed without regs_dirty: {exit:?} {r:?}"
                );
            }
            false
        }
    }
}

fuzz_target!(|input: Input| {
    let ram_size = match input.ram_size {
        RamSize::Mib(m) => (u64::from(m) + 1) << 20,
        RamSize::Raw(v) => v,
    };
    // The PVH platform: the PC platform's models have their own target
    // (`devices`).
    let mut vm = Vm::new(
        VmConfig {
            ram_size,
            tsc_khz: input.tsc_khz,
            kind: GuestKind::Pvh,
            xen: input.xen,
        },
        0,
    );
    let mut host = FakeHost {
        input: input.console_input.iter().copied().collect(),
        cpuid_seed: input.cpuid_seed,
        tsc: Cell::new(input.tsc_start),
        tsc_step: u64::from(input.tsc_step),
        upcall: input.upcall,
    };
    let _ = vm.boot_state(0x10_0000, 0x1000);
    let _ = vm.primary_controls();

    let mut regs = GpRegs::default();
    // The vCPU starts in 32-bit protected mode (PVH): no LMA.
    let mut lma = false;
    if let Some(rip) = input.long_mode_prelude {
        // CR4.PAE, EFER.LME, CR0.PG: the switch to long mode, so the
        // long-mode RIP rule is exercised from the first step on.
        let cr_exit = |q: u64, rip: u64| Exit {
            raw_reason: ExitReason::CrAccess as u32,
            qualification: q,
            instruction_len: 3,
            rip,
            rflags: 2,
            ..Exit::default()
        };
        regs.rax = cr4::PAE;
        if step(
            &mut vm,
            &mut host,
            &mut regs,
            &mut lma,
            &cr_exit(0x004, rip),
        ) {
            return;
        }
        regs.rcx = 0xC000_0080;
        regs.rax = efer::LME;
        regs.rdx = 0;
        let wrmsr = Exit {
            raw_reason: ExitReason::Wrmsr as u32,
            instruction_len: 2,
            rip: rip.wrapping_add(3),
            rflags: 2,
            ..Exit::default()
        };
        if step(&mut vm, &mut host, &mut regs, &mut lma, &wrmsr) {
            return;
        }
        regs.rax = cr0::PE | cr0::ET | cr0::PG;
        if step(
            &mut vm,
            &mut host,
            &mut regs,
            &mut lma,
            &cr_exit(0x000, rip.wrapping_add(5)),
        ) {
            return;
        }
    }
    for s in input.steps.iter().take(256) {
        for (i, v) in s.regs.iter().take(4) {
            regs.set(i % 16, v.value());
        }
        let raw_reason = match s.reason {
            Reason::Basic(r) => u32::from(r % 65),
            Reason::Raw(r) => r,
        };
        let instruction_len = match s.len {
            Len::Small(l) => u64::from(l % 17),
            Len::Raw(l) => l,
        };
        let rip = match s.rip {
            Rip::Raw(r) => r,
            Rip::Below4G(d) => 0x1_0000_0000 - 1 - u64::from(d % 16),
            Rip::Top(d) => u64::MAX - u64::from(d % 16),
            Rip::Low(r) => u64::from(r),
        };
        let exit = Exit {
            raw_reason,
            qualification: s.qualification.value(),
            instruction_len,
            guest_physical: s.guest_physical,
            rip,
            rflags: s.rflags,
            interruptibility: s.interruptibility,
            cr3: s.cr3,
        };
        if step(&mut vm, &mut host, &mut regs, &mut lma, &exit) {
            break;
        }
    }
    vm.flush_console(&mut host);
    let _ = vm.stats().total();
    let _ = vm.misdeeds().total();
});
