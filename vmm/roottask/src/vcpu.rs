//! One VM on seL4: its kernel objects (guest RAM, EPT, VCPU, thread) and the
//! vCPU thread's loop around `seL4_VMEnter`, which hands every exit to
//! `vmm_core::vm::Vm` and applies its decision.

use crate::kobj::{Context, KError, Kernel};
use crate::system::VmSpec;
use alloc::boxed::Box;
use core::fmt;
use core::sync::atomic::Ordering;
use sel4::{sys, CPtr, Ipc, VcpuContext, VmEnterResult};
use spin::Mutex;
use vmm_core::exit::{Exit, GpRegs};
use vmm_core::stats::ExitStats;
use vmm_core::vm::{Action, Host, StopReason, Vm, VmConfig};

/// Where guest RAM windows start in the VMM's address space (PML4 slot 2;
/// slot 0 holds the root task's image, whose tables the kernel made).
const GUEST_WINDOW_BASE: u64 = 0x100_0000_0000;
/// Address-space stride between VMs' RAM windows (the largest guest RAM).
const GUEST_WINDOW_SIZE: u64 = 0x1_0000_0000;
/// Where vCPU threads' IPC buffers are mapped (PML4 slot 1).
pub const IPC_AREA: u64 = 0x80_0000_0000;
/// Guest RAM is built from 2 MiB frames.
const LARGE: u64 = 1 << 21;
/// Most VMs one system may have.
pub const MAX_VMS: usize = 32;
const VCPU_STACK: usize = 32 * 1024;

#[repr(C, align(16))]
struct Stacks([[u8; VCPU_STACK]; MAX_VMS]);

static mut VCPU_STACKS: Stacks = Stacks([[0; VCPU_STACK]; MAX_VMS]);

/// How a VM ended, as the manager reports it.
pub struct Summary {
    /// Why it stopped.
    pub outcome: StopReason,
    /// Its exits by reason.
    pub stats: ExitStats,
    /// Its misdeeds.
    pub misdeeds: u32,
}

/// Shared between a VM's vCPU thread and the manager.
pub struct VmHandle {
    /// The VM's name.
    pub name: &'static str,
    /// Whether it should exit cleanly.
    pub expect_clean: bool,
    tcb: CPtr,
    result: &'static Mutex<Option<Summary>>,
}

impl VmHandle {
    /// The VM's summary; only meaningful once it has stopped.
    pub fn summary(&self) -> Summary {
        match self.result.lock().take() {
            Some(s) => s,
            None => Summary {
                outcome: StopReason::Inconsistent {
                    what: "no result recorded",
                    rip: 0,
                },
                stats: ExitStats::default(),
                misdeeds: 0,
            },
        }
    }
}

/// Everything the vCPU thread owns.
struct Runner {
    name: &'static str,
    index: usize,
    vm: Vm,
    vcpu: CPtr,
    tcb: CPtr,
    ipc: Ipc,
    rip: u64,
    done: CPtr,
    result: &'static Mutex<Option<Summary>>,
}

/// Guest RAM as the loader writes it: the VM's window in the VMM.
struct GuestRam {
    base: *mut u8,
    size: u64,
}

impl pvh_loader::GuestMemory for GuestRam {
    fn size(&self) -> u64 {
        self.size
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), pvh_loader::MemoryError> {
        let end = gpa
            .checked_add(data.len() as u64)
            .filter(|e| *e <= self.size);
        if end.is_none() {
            return Err(pvh_loader::MemoryError {
                gpa,
                len: data.len() as u64,
            });
        }
        // SAFETY: [gpa, gpa+len) lies inside the window, which maps this VM's
        // RAM frames read-write into the VMM and is used by nothing else
        // while the VM is being built.
        unsafe {
            core::ptr::copy_nonoverlapping(data.as_ptr(), self.base.add(gpa as usize), data.len())
        };
        Ok(())
    }

    fn fill(&mut self, gpa: u64, len: u64, byte: u8) -> Result<(), pvh_loader::MemoryError> {
        let end = gpa.checked_add(len).filter(|e| *e <= self.size);
        if end.is_none() {
            return Err(pvh_loader::MemoryError { gpa, len });
        }
        // SAFETY: as for `write`.
        unsafe { core::ptr::write_bytes(self.base.add(gpa as usize), byte, len as usize) };
        Ok(())
    }
}

/// Builds a VM: RAM, EPT, image, VCPU, thread. The thread is not started.
pub fn create(
    k: &mut Kernel,
    index: usize,
    spec: &VmSpec,
    tsc_mhz: u64,
    done: CPtr,
) -> Result<VmHandle, KError> {
    if index >= MAX_VMS {
        return Err(KError::Kernel(
            "creating a VM beyond the VMM's limit",
            sel4::Error::RangeError,
        ));
    }
    let ram = spec.ram;
    if ram == 0 || !ram.is_multiple_of(LARGE) || ram > GUEST_WINDOW_SIZE {
        return Err(KError::Kernel(
            "sizing guest RAM (must be a multiple of 2 MiB, at most 4 GiB)",
            sel4::Error::InvalidArgument,
        ));
    }
    let ept = k.create(
        sys::X86_EPT_PML4_OBJECT,
        sys::EPT_PML4_BITS,
        "creating the EPT",
    )?;
    k.ipc
        .asid_pool_assign(sys::CAP_INIT_THREAD_ASID_POOL, ept)
        .ctx("assigning an ASID to the EPT")?;
    let window = GUEST_WINDOW_BASE + index as u64 * GUEST_WINDOW_SIZE;
    let mut gpa = 0;
    while gpa < ram {
        let frame = k.create(
            sys::X86_LARGE_PAGE_OBJECT,
            sys::LARGE_PAGE_BITS,
            "allocating guest RAM",
        )?;
        let vmm_copy = k.copy(frame, sys::RIGHTS_ALL)?;
        k.map_ept(ept, frame, gpa, true)?;
        k.map_vmm(vmm_copy, window + gpa, true)?;
        gpa += LARGE;
    }
    let mut mem = GuestRam {
        base: window as *mut u8,
        size: ram,
    };
    let memmap = pvh_loader::default_memmap(ram);
    let boot = pvh_loader::load(spec.image, &mut mem, spec.cmdline, &memmap).map_err(|_| {
        KError::Kernel(
            "loading the image (it was validated before)",
            sel4::Error::InvalidArgument,
        )
    })?;

    let tcb = k.create(sys::TCB_OBJECT, sys::TCB_BITS, "creating the vCPU thread")?;
    let vcpu = k.create(sys::X86_VCPU_OBJECT, sys::VCPU_BITS, "creating the VCPU")?;
    let ipc_frame = k.create(
        sys::X86_4K_OBJECT,
        sys::PAGE_BITS,
        "creating the vCPU thread's IPC buffer",
    )?;
    let ipc_vaddr = IPC_AREA + index as u64 * 4096;
    k.map_vmm(ipc_frame, ipc_vaddr, false)?;
    k.ipc
        .tcb_configure(
            tcb,
            0,
            sys::CAP_INIT_THREAD_CNODE,
            0,
            sys::CAP_INIT_THREAD_VSPACE,
            0,
            ipc_vaddr,
            ipc_frame,
        )
        .ctx("configuring the vCPU thread")?;
    k.ipc
        .tcb_set_sched_params(tcb, sys::CAP_INIT_THREAD_TCB, 0, crate::VCPU_PRIORITY)
        .ctx("setting the vCPU thread's priority")?;
    k.ipc
        .vcpu_set_tcb(vcpu, tcb)
        .ctx("binding the VCPU to its thread")?;
    k.ipc
        .tcb_set_ept_root(tcb, ept)
        .ctx("giving the thread the EPT")?;

    let vm = Vm::new(VmConfig {
        ram_size: ram,
        tsc_khz: tsc_mhz * 1000,
    });
    let (writes, regs) = vm.boot_state(u64::from(boot.entry), u64::from(boot.start_info));
    for &(field, value) in writes.as_slice() {
        k.ipc
            .vcpu_write_vmcs(vcpu, field, value)
            .ctx("writing the initial VMCS")?;
    }
    k.ipc
        .vcpu_write_registers(vcpu, &to_context(&regs))
        .ctx("writing the initial guest registers")?;

    let result: &'static Mutex<Option<Summary>> = Box::leak(Box::new(Mutex::new(None)));
    // SAFETY: the IPC buffer frame was just mapped at `ipc_vaddr` and
    // registered for this thread, which is its only user.
    let ipc = unsafe { Ipc::new(ipc_vaddr as *mut sel4::IpcBuffer) };
    let wake = k.create(
        sys::NOTIFICATION_OBJECT,
        sys::NOTIFICATION_BITS,
        "creating the VM's wake-up notification",
    )?;
    k.ipc
        .tcb_bind_notification(tcb, wake)
        .ctx("binding the wake-up notification to the vCPU thread")?;
    crate::events::register_vm(index, wake);
    if spec.console {
        crate::events::attach_console(index);
    }
    let runner = Box::leak(Box::new(Runner {
        name: spec.name,
        index,
        vm,
        vcpu,
        tcb,
        ipc,
        rip: u64::from(boot.entry),
        done,
        result,
    }));
    // SAFETY: each VM index owns one stack; only its thread uses it.
    let stack_top =
        unsafe { core::ptr::addr_of_mut!(VCPU_STACKS.0[index]) as u64 } + VCPU_STACK as u64;
    k.ipc
        .tcb_write_entry(
            tcb,
            vcpu_main as *const () as u64,
            stack_top - 8,
            runner as *mut Runner as u64,
        )
        .ctx("setting the vCPU thread's entry point")?;
    Ok(VmHandle {
        name: spec.name,
        expect_clean: spec.expect_clean,
        tcb,
        result,
    })
}

/// Starts a VM's vCPU thread.
pub fn start(k: &mut Kernel, vm: &VmHandle) -> Result<(), KError> {
    k.ipc.tcb_resume(vm.tcb).ctx("starting a vCPU thread")
}

fn to_context(r: &GpRegs) -> VcpuContext {
    VcpuContext {
        regs: [
            r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.r8, r.r9, r.r10, r.r11, r.r12,
            r.r13, r.r14, r.r15,
        ],
    }
}

/// The VMM's side of a VM's console and reports.
struct ThreadHost {
    name: &'static str,
    index: usize,
}

impl Host for ThreadHost {
    fn console_line(&mut self, line: &[u8]) {
        crate::console::write_line(format_args!("[{}] ", self.name), line);
    }

    fn report(&mut self, msg: fmt::Arguments) {
        log!("vm {}: {}", self.name, msg);
    }

    fn host_cpuid(&self, leaf: u32, subleaf: u32) -> [u32; 4] {
        // CPUID is available in user mode and has no side effects.
        let r = core::arch::x86_64::__cpuid_count(leaf, subleaf);
        [r.eax, r.ebx, r.ecx, r.edx]
    }

    fn tsc(&self) -> u64 {
        crate::rdtsc()
    }

    fn console_input(&mut self) -> Option<u8> {
        crate::events::console_input(self.index)
    }
}

extern "C" fn vcpu_main(runner: *mut Runner) -> ! {
    // SAFETY: `create` leaked this Runner for this thread alone.
    let r = unsafe { &mut *runner };
    let outcome = r.run();
    let mut host = ThreadHost {
        name: r.name,
        index: r.index,
    };
    r.vm.flush_console(&mut host);
    log!("vm {}: {} (tsc {})", r.name, outcome, crate::rdtsc());
    *r.result.lock() = Some(Summary {
        outcome,
        stats: r.vm.stats().clone(),
        misdeeds: r.vm.misdeeds().total(),
    });
    crate::STOPPED.fetch_add(1, Ordering::AcqRel);
    sel4::signal(r.done);
    loop {
        let _ = sel4::tcb_suspend(r.tcb);
        sel4::yield_now();
    }
}

impl Runner {
    fn run(&mut self) -> StopReason {
        let mut host = ThreadHost {
            name: self.name,
            index: self.index,
        };
        let ppc = u64::from(self.vm.primary_controls());
        let mut interruption = 0u64;
        loop {
            let (result, mr) = self.ipc.vm_enter(self.rip, ppc, interruption);
            self.rip = mr[0];
            if let VmEnterResult::Notification(_) = result {
                interruption = mr[2];
                continue;
            }
            let m = |i: u64| -> u64 {
                match i {
                    0..=3 => mr[i as usize],
                    _ => 0,
                }
            };
            let mut get = |i: u64| if i < 4 { m(i) } else { self.ipc.mr(i as usize) };
            let exit = Exit {
                raw_reason: get(sys::VMENTER_FAULT_REASON_MR) as u32,
                qualification: get(sys::VMENTER_FAULT_QUALIFICATION_MR),
                instruction_len: get(sys::VMENTER_FAULT_INSTRUCTION_LEN_MR),
                guest_physical: get(sys::VMENTER_FAULT_GUEST_PHYSICAL_MR),
                rip: self.rip,
                rflags: get(sys::VMENTER_FAULT_RFLAGS_MR),
                interruptibility: get(sys::VMENTER_FAULT_GUEST_INT_MR),
                cr3: get(sys::VMENTER_FAULT_CR3_MR),
            };
            let mut g = [0u64; 15];
            for (i, slot) in g.iter_mut().enumerate() {
                *slot = get(sys::VMENTER_FAULT_EAX + i as u64);
            }
            let mut regs = GpRegs {
                rax: g[0],
                rbx: g[1],
                rcx: g[2],
                rdx: g[3],
                rsi: g[4],
                rdi: g[5],
                rbp: g[6],
                r8: g[7],
                r9: g[8],
                r10: g[9],
                r11: g[10],
                r12: g[11],
                r13: g[12],
                r14: g[13],
                r15: g[14],
            };
            match self.vm.handle(&exit, &mut regs, &mut host) {
                Action::Stop(reason) => return reason,
                Action::Resume(resume) => {
                    for &(field, value) in resume.vmcs.as_slice() {
                        if let Err(e) = self.ipc.vcpu_write_vmcs(self.vcpu, field, value) {
                            log!(
                                "vm {}: writing VMCS field {field:#x} failed: {e}",
                                self.name
                            );
                            return StopReason::Inconsistent {
                                what: "VMCS write refused by the kernel",
                                rip: self.rip,
                            };
                        }
                    }
                    if let Some((msr, value)) = resume.msr {
                        if let Err(e) = self.ipc.vcpu_write_msr(self.vcpu, msr, value) {
                            log!("vm {}: setting guest MSR {msr:#x} failed: {e}", self.name);
                            return StopReason::Inconsistent {
                                what: "MSR write refused by the kernel",
                                rip: self.rip,
                            };
                        }
                    }
                    if resume.regs_dirty {
                        if let Err(e) = self.ipc.vcpu_write_registers(self.vcpu, &to_context(&regs))
                        {
                            log!("vm {}: writing guest registers failed: {e}", self.name);
                            return StopReason::Inconsistent {
                                what: "register write refused by the kernel",
                                rip: self.rip,
                            };
                        }
                    }
                    self.rip = resume.rip;
                    interruption = u64::from(resume.interruption);
                }
            }
        }
    }
}
