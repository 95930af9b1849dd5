//! One VM on seL4: its kernel objects (guest RAM, EPT, VCPU, thread) and the
//! vCPU thread's loop around `seL4_VMEnter`, which hands every exit to
//! `vmm_core::vm::Vm` and applies its decision.

use crate::kobj::{Context, KError, Kernel};
use crate::system::{VmSpec, Xen};
use alloc::boxed::Box;
use core::fmt;
use core::sync::atomic::{AtomicU8, Ordering};
use sel4::{sys, CPtr, Ipc, VcpuContext, VmEnterResult};
use spin::Mutex;
use vmm_core::exit::{Exit, GpRegs};
use vmm_core::stats::ExitStats;
use vmm_core::vm::{
    Action, CpuMode, CpuSnapshot, GuestKind, Host, Resume, StopReason, Vm, VmConfig,
};
use vmm_core::vmx::{field, primary};

/// Where guest RAM windows start in the VMM's address space (PML4 slot 2;
/// slot 0 holds the root task's image, whose tables the kernel made).
const GUEST_WINDOW_BASE: u64 = 0x100_0000_0000;
/// Address-space stride between VMs' RAM windows (the largest guest RAM).
const GUEST_WINDOW_SIZE: u64 = 0x1_0000_0000;
/// Where vCPU threads' IPC buffers are mapped (PML4 slot 1).
pub const IPC_AREA: u64 = 0x80_0000_0000;
/// Guest RAM is built from 2 MiB frames (4 KiB ones for Xen VMs).
const LARGE: u64 = 1 << 21;
const PAGE: u64 = 4096;
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
    /// The notification bound to the vCPU thread (timer and input wake-ups).
    wake: CPtr,
    /// The VM's RAM in the VMM's address space, and its size.
    window: u64,
    ram: u64,
    /// Its Xen domain id, if it has the Xen ABI.
    domid: Option<u16>,
    vm: Vm,
    vcpu: CPtr,
    tcb: CPtr,
    ipc: Ipc,
    rip: u64,
    done: CPtr,
    result: &'static Mutex<Option<Summary>>,
}

/// Guest RAM as the loader writes it, while the VM is being built (nothing
/// else touches it then, so plain copies are fine).
impl pvh_loader::GuestMemory for RamWindow {
    fn size(&self) -> u64 {
        self.size
    }

    fn write(&mut self, gpa: u64, data: &[u8]) -> Result<(), pvh_loader::MemoryError> {
        let len = data.len() as u64;
        let dst = self
            .at(gpa, data.len())
            .ok_or(pvh_loader::MemoryError { gpa, len })?;
        // SAFETY: `at` checked [gpa, gpa+len) lies inside the window, which
        // maps this VM's RAM frames read-write into the VMM and is used by
        // nothing else while the VM is being built.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), dst as *mut u8, data.len()) };
        Ok(())
    }

    fn fill(&mut self, gpa: u64, len: u64, byte: u8) -> Result<(), pvh_loader::MemoryError> {
        let n = usize::try_from(len).map_err(|_| pvh_loader::MemoryError { gpa, len })?;
        let dst = self
            .at(gpa, n)
            .ok_or(pvh_loader::MemoryError { gpa, len })?;
        // SAFETY: as for `write`.
        unsafe { core::ptr::write_bytes(dst as *mut u8, byte, n) };
        Ok(())
    }
}

/// Builds a VM: RAM, EPT, image, VCPU, thread. The thread is not started.
pub fn create(
    k: &mut Kernel,
    index: usize,
    spec: &VmSpec,
    tsc_mhz: u64,
    unix_secs: i64,
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
    let domid = (spec.xen != Xen::None).then_some(index as u16 + 1);
    // A Xen VM's RAM is 4 KiB frames, so that single pages can be granted.
    let mut xen_frames = 0;
    if domid.is_some() {
        let pages = ram / PAGE;
        xen_frames = k.create_frames(pages, "allocating guest RAM")?;
        for i in 0..pages {
            let frame = xen_frames + i;
            k.map_ept(ept, frame, i * PAGE, false)?;
            let vmm_copy = k.copy(frame, sys::RIGHTS_ALL)?;
            k.map_vmm(vmm_copy, window + i * PAGE, false)?;
        }
    } else {
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
    }
    let mut mem = RamWindow { window, size: ram };
    let tsc_khz = tsc_mhz * 1000;
    let kind = if spec.linux {
        GuestKind::Linux { unix_secs }
    } else {
        GuestKind::Pvh
    };
    let mut vm = Vm::new(
        VmConfig {
            ram_size: ram,
            tsc_khz,
            kind,
            xen: domid,
        },
        vmm_core::vm::tsc_to_ns(crate::rdtsc(), tsc_khz),
    );
    let (writes, regs, entry) = if spec.linux {
        let memmap = linux_boot::pc_memmap(ram)
            .map_err(|e| boot_error("sizing the Linux memory map", &e))?;
        let tables = acpi_tables::write_tables(&acpi_tables::AcpiConfig::pc(), &mut mem)
            .map_err(|e| boot_error("writing the ACPI tables", &e))?;
        let cfg = linux_boot::BootConfig {
            cmdline: spec.cmdline,
            initrd: Some(spec.initrd),
            memmap: &memmap,
            acpi_rsdp: Some(tables.rsdp),
        };
        let boot = linux_boot::load(spec.image, &mut mem, &cfg)
            .map_err(|e| boot_error("loading the Linux kernel", &e))?;
        let (w, r) = vm.linux_boot_state(&boot.cpu);
        (w, r, boot.cpu.rip)
    } else {
        // A Xen VM's last page is its store ring, not RAM to use.
        let store_page = crate::xen::store_gfn(ram) * PAGE;
        let xen_memmap = [
            pvh_loader::MemMapEntry {
                addr: 0,
                size: store_page,
                kind: pvh_loader::MemoryType::Ram,
            },
            pvh_loader::MemMapEntry {
                addr: store_page,
                size: PAGE,
                kind: pvh_loader::MemoryType::Reserved,
            },
        ];
        let plain_memmap = pvh_loader::default_memmap(ram);
        let memmap: &[pvh_loader::MemMapEntry] = if domid.is_some() {
            &xen_memmap
        } else {
            &plain_memmap
        };
        let boot = pvh_loader::load(spec.image, &mut mem, spec.cmdline, memmap)
            .map_err(|e| boot_error("loading the image", &e))?;
        let (w, r) = vm.boot_state(u64::from(boot.entry), u64::from(boot.start_info));
        (w, r, u64::from(boot.entry))
    };

    let ipc_vaddr = IPC_AREA + index as u64 * 4096;
    let tcb = k.create_thread(ipc_vaddr, crate::VCPU_PRIORITY)?;
    let vcpu = k.create(sys::X86_VCPU_OBJECT, sys::VCPU_BITS, "creating the VCPU")?;
    k.ipc
        .vcpu_set_tcb(vcpu, tcb)
        .ctx("binding the VCPU to its thread")?;
    k.ipc
        .tcb_set_ept_root(tcb, ept)
        .ctx("giving the thread the EPT")?;

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
    if let Some(id) = domid {
        crate::xen::add_domain(
            k,
            &crate::xen::NewDomain {
                id,
                window,
                ram,
                frames: xen_frames,
                ept,
                wake,
                store: spec.xen == Xen::Store,
                name: spec.name,
            },
        )?;
    }
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
        rip: entry,
        wake,
        window,
        ram,
        domid,
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
struct ThreadHost<'a> {
    name: &'static str,
    index: usize,
    /// The vCPU's thread connection and VCPU (for VMCS reads); `None` once
    /// the VM has stopped.
    vcpu: Option<(&'a mut Ipc, CPtr)>,
    ram: RamWindow,
    domid: Option<u16>,
}

/// A VM's RAM through its window in the VMM.
struct RamWindow {
    window: u64,
    size: u64,
}

impl RamWindow {
    /// The VMM address of `[gpa, gpa+len)`, if it is all RAM.
    fn at(&self, gpa: u64, len: usize) -> Option<u64> {
        let end = gpa.checked_add(len as u64)?;
        (end <= self.size).then_some(self.window + gpa)
    }
}

impl RamWindow {
    /// The bytes `[gpa, gpa+len)` of RAM as atomics, if it is all RAM.
    fn bytes(&self, gpa: u64, len: usize) -> Option<&[AtomicU8]> {
        let start = self.at(gpa, len)?;
        // SAFETY: [gpa, gpa+len) lies inside the VM's RAM window, mapped
        // read-write into the VMM for the life of the VM (foreign frames
        // and VMM pages are never inside it). Other vCPU threads may write
        // the same bytes (a grantee of one of these pages), so they are
        // only ever accessed as atomics.
        Some(unsafe { core::slice::from_raw_parts(start as *const AtomicU8, len) })
    }
}

impl vmm_core::xen::PhysMem for RamWindow {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> bool {
        let Some(src) = self.bytes(gpa, buf.len()) else {
            return false;
        };
        for (d, s) in buf.iter_mut().zip(src) {
            *d = s.load(Ordering::Relaxed);
        }
        true
    }

    fn write(&mut self, gpa: u64, buf: &[u8]) -> bool {
        let Some(dst) = self.bytes(gpa, buf.len()) else {
            return false;
        };
        for (d, s) in dst.iter().zip(buf) {
            d.store(*s, Ordering::Relaxed);
        }
        true
    }
}

impl Host for ThreadHost<'_> {
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

    fn read_guest(&self, gpa: u64, buf: &mut [u8]) -> bool {
        vmm_core::xen::PhysMem::read(&self.ram, gpa, buf)
    }

    fn cpu_mode(&mut self) -> Option<CpuMode> {
        let (ipc, vcpu) = self.vcpu.as_mut()?;
        let mut read = |f: u32| ipc.vcpu_read_vmcs(*vcpu, f).ok();
        Some(CpuMode {
            cs_access_rights: read(field::GUEST_CS_ACCESS_RIGHTS)? as u32,
            ss_access_rights: read(field::GUEST_SS_ACCESS_RIGHTS)? as u32,
            cr0: read(field::GUEST_CR0)?,
            cr4: read(field::GUEST_CR4)?,
        })
    }

    fn write_guest(&mut self, gpa: u64, buf: &[u8]) -> bool {
        vmm_core::xen::PhysMem::write(&mut self.ram, gpa, buf)
    }

    fn xen_hypercall(&mut self, regs: &xen_abi::Regs, paging: x86_emul::Paging, user: bool) -> u64 {
        let (Some(dom), Some((ipc, _))) = (self.domid, self.vcpu.as_mut()) else {
            return xen_abi::XenError::NoSys.ret() as u64;
        };
        let mut mem = vmm_core::xen::LinearMem::new(&mut self.ram, paging, user);
        crate::xen::hypercall(dom, regs, &mut mem, ipc)
    }

    fn xen_upcall(&mut self) -> Option<u8> {
        crate::xen::upcall_vector(self.domid?)
    }

    fn xen_upcall_route(&mut self) -> bool {
        self.domid.is_some_and(crate::xen::has_callback_vector)
    }

    fn cpu_snapshot(&mut self) -> Option<CpuSnapshot> {
        let (ipc, vcpu) = self.vcpu.as_mut()?;
        let mut read = |f: u32| ipc.vcpu_read_vmcs(*vcpu, f).ok();
        Some(CpuSnapshot {
            rsp: read(field::GUEST_RSP)?,
            cs_access_rights: read(field::GUEST_CS_ACCESS_RIGHTS)? as u32,
            ss_access_rights: read(field::GUEST_SS_ACCESS_RIGHTS)? as u32,
            cr0: read(field::GUEST_CR0)?,
            cr4: read(field::GUEST_CR4)?,
            bases: [
                read(field::GUEST_ES_BASE)?,
                read(field::GUEST_CS_BASE)?,
                read(field::GUEST_SS_BASE)?,
                read(field::GUEST_DS_BASE)?,
                read(field::GUEST_FS_BASE)?,
                read(field::GUEST_GS_BASE)?,
            ],
        })
    }
}

extern "C" fn vcpu_main(runner: *mut Runner) -> ! {
    // SAFETY: `create` leaked this Runner for this thread alone.
    let r = unsafe { &mut *runner };
    let outcome = r.run();
    let mut host = ThreadHost {
        name: r.name,
        index: r.index,
        vcpu: None,
        ram: RamWindow {
            window: r.window,
            size: r.ram,
        },
        domid: r.domid,
    };
    r.vm.flush_console(&mut host);
    log!("vm {}: {} (tsc {})", r.name, outcome, crate::rdtsc());
    if let Some(dom) = r.domid {
        crate::xen::domain_stopped(dom, &mut r.ipc);
    }
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

/// The host side of a running VM. A macro rather than a method: the host
/// borrows the runner's IPC buffer while the caller still uses its `vm`.
macro_rules! runner_host {
    ($r:ident) => {
        ThreadHost {
            name: $r.name,
            index: $r.index,
            vcpu: Some((&mut $r.ipc, $r.vcpu)),
            ram: RamWindow {
                window: $r.window,
                size: $r.ram,
            },
            domid: $r.domid,
        }
    };
}

impl Runner {
    fn run(&mut self) -> StopReason {
        let base_ppc = self.vm.primary_controls();
        let mut ppc = base_ppc;
        let mut interruption = 0u64;
        loop {
            let (result, mr) = self.ipc.vm_enter(self.rip, u64::from(ppc), interruption);
            self.rip = mr[0];
            let action = match result {
                VmEnterResult::Notification(_) => {
                    let mut host = runner_host!(self);
                    match self.vm.on_notification(self.rip, &mut host) {
                        // seL4 returns without entering the guest when the
                        // notification was already pending: an event queued
                        // for that entry (MR2) was not delivered; keep it.
                        Action::Resume(mut r) if r.interruption == 0 => {
                            r.interruption = mr[2] as u32;
                            if r.interruption & vmm_core::vmx::interruption::VALID == 0 {
                                r.interruption = 0;
                            }
                            Action::Resume(r)
                        }
                        other => other,
                    }
                }
                VmEnterResult::Fault => {
                    let (exit, mut regs) = self.read_exit(&mr);
                    let mut host = runner_host!(self);
                    let action = self.vm.handle(&exit, &mut regs, &mut host);
                    if let Action::Resume(r) | Action::Halt(r) = &action {
                        if r.regs_dirty {
                            if let Err(e) =
                                self.ipc.vcpu_write_registers(self.vcpu, &to_context(&regs))
                            {
                                log!("vm {}: writing guest registers failed: {e}", self.name);
                                return StopReason::Inconsistent {
                                    what: "register write refused by the kernel",
                                    rip: self.rip,
                                };
                            }
                        }
                    }
                    action
                }
            };
            let resume = match action {
                Action::Stop(reason) => return reason,
                Action::Resume(r) => r,
                Action::Halt(r) => match self.halt(r) {
                    Ok(r) => r,
                    Err(reason) => return reason,
                },
            };
            if let Err(reason) = self.apply(&resume) {
                return reason;
            }
            crate::events::set_deadline(self.index, self.vm.deadline_tsc());
            self.rip = resume.rip;
            interruption = u64::from(resume.interruption);
            ppc = if resume.interrupt_window {
                base_ppc | primary::INTERRUPT_WINDOW_EXITING
            } else {
                base_ppc
            };
        }
    }

    /// Blocks the halted vCPU until an interrupt can be delivered.
    fn halt(&mut self, mut pending: Resume) -> Result<Resume, StopReason> {
        loop {
            crate::events::set_deadline(self.index, self.vm.deadline_tsc());
            sel4::wait(self.wake);
            let mut host = runner_host!(self);
            match self.vm.wake(pending, &mut host) {
                Action::Resume(r) => return Ok(r),
                Action::Halt(r) => pending = r,
                Action::Stop(reason) => return Err(reason),
            }
        }
    }

    /// Writes what a resume asks for into the VMCS and the kernel's copy of
    /// the guest's MSRs.
    fn apply(&mut self, resume: &Resume) -> Result<(), StopReason> {
        for &(field, value) in resume.vmcs.as_slice() {
            if let Err(e) = self.ipc.vcpu_write_vmcs(self.vcpu, field, value) {
                log!(
                    "vm {}: writing VMCS field {field:#x} failed: {e}",
                    self.name
                );
                return Err(StopReason::Inconsistent {
                    what: "VMCS write refused by the kernel",
                    rip: self.rip,
                });
            }
        }
        if let Some((msr, value)) = resume.msr {
            if let Err(e) = self.ipc.vcpu_write_msr(self.vcpu, msr, value) {
                log!("vm {}: setting guest MSR {msr:#x} failed: {e}", self.name);
                return Err(StopReason::Inconsistent {
                    what: "MSR write refused by the kernel",
                    rip: self.rip,
                });
            }
        }
        Ok(())
    }

    /// The exit and guest registers from the fault message.
    fn read_exit(&mut self, mr: &[u64; 4]) -> (Exit, GpRegs) {
        let mut get = |i: u64| match mr.get(i as usize) {
            Some(v) => *v,
            None => self.ipc.mr(i as usize),
        };
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
        let regs = GpRegs {
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
        (exit, regs)
    }
}

/// A loader error as a kernel-object error with the loader's message logged.
fn boot_error(what: &'static str, e: &dyn core::fmt::Display) -> KError {
    log!("{what}: {e}");
    KError::Kernel(what, sel4::Error::InvalidArgument)
}
