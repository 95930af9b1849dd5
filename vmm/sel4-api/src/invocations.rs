//! Object invocations, marshalled as the kernel's interface description
//! (`object-api*.xml`) defines them: word arguments fill message registers in
//! order, capability arguments travel as extra caps.

use crate::{sys, CPtr, Error, Ipc};

/// Guest general-purpose registers as `seL4_VCPUContext` orders them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuContext {
    /// RAX, RBX, RCX, RDX, RSI, RDI, RBP, R8–R15, in that order.
    pub regs: [u64; 15],
}

const _: () = assert!(sys::VCPU_CONTEXT_WORDS == 15);

impl Ipc {
    /// `seL4_Untyped_Retype`: carves `count` objects of `object_type` (size
    /// `size_bits` where the type has a variable size) out of `untyped` into
    /// slots `dest_offset..` of the CNode at `root`/`node_index`/`node_depth`.
    #[allow(clippy::too_many_arguments)]
    pub fn untyped_retype(
        &mut self,
        untyped: CPtr,
        object_type: u64,
        size_bits: u64,
        root: CPtr,
        node_index: u64,
        node_depth: u64,
        dest_offset: u64,
        count: u64,
    ) -> Result<(), Error> {
        self.invoke(
            untyped,
            sys::UNTYPED_RETYPE,
            &[
                object_type,
                size_bits,
                node_index,
                node_depth,
                dest_offset,
                count,
            ],
            &[root],
        )
        .map(drop)
    }

    /// `seL4_CNode_Copy` within one CNode.
    #[allow(clippy::too_many_arguments)]
    pub fn cnode_copy(
        &mut self,
        cnode: CPtr,
        dest_index: u64,
        dest_depth: u8,
        src_root: CPtr,
        src_index: u64,
        src_depth: u8,
        rights: u64,
    ) -> Result<(), Error> {
        self.invoke(
            cnode,
            sys::CNODE_COPY,
            &[
                dest_index,
                u64::from(dest_depth),
                src_index,
                u64::from(src_depth),
                rights,
            ],
            &[src_root],
        )
        .map(drop)
    }

    /// `seL4_CNode_Delete`: empties slot `index` of `cnode`.
    pub fn cnode_delete(&mut self, cnode: CPtr, index: u64, depth: u8) -> Result<(), Error> {
        self.invoke(cnode, sys::CNODE_DELETE, &[index, u64::from(depth)], &[])
            .map(drop)
    }

    /// `seL4_CNode_Mint`: a copy of `src_index` with `rights` and `badge`.
    #[allow(clippy::too_many_arguments)]
    pub fn cnode_mint(
        &mut self,
        cnode: CPtr,
        dest_index: u64,
        dest_depth: u8,
        src_root: CPtr,
        src_index: u64,
        src_depth: u8,
        rights: u64,
        badge: u64,
    ) -> Result<(), Error> {
        self.invoke(
            cnode,
            sys::CNODE_MINT,
            &[
                dest_index,
                u64::from(dest_depth),
                src_index,
                u64::from(src_depth),
                rights,
                badge,
            ],
            &[src_root],
        )
        .map(drop)
    }

    /// `seL4_IRQControl_GetIOAPIC`: a handler capability for IOAPIC `pin`,
    /// delivered as user IRQ number `irq` (0-based), into slot `index`.
    #[allow(clippy::too_many_arguments)]
    pub fn irq_get_ioapic(
        &mut self,
        control: CPtr,
        root: CPtr,
        index: u64,
        depth: u8,
        ioapic: u64,
        pin: u64,
        level_triggered: bool,
        active_low: bool,
        irq: u64,
    ) -> Result<(), Error> {
        self.invoke(
            control,
            sys::X86_IRQ_ISSUE_IRQ_HANDLER_IOAPIC,
            &[
                index,
                u64::from(depth),
                ioapic,
                pin,
                u64::from(level_triggered),
                u64::from(active_low),
                irq,
            ],
            &[root],
        )
        .map(drop)
    }

    /// `seL4_IRQHandler_SetNotification`.
    pub fn irq_set_notification(&mut self, handler: CPtr, ntfn: CPtr) -> Result<(), Error> {
        self.invoke(handler, sys::IRQ_SET_IRQ_HANDLER, &[], &[ntfn])
            .map(drop)
    }

    /// `seL4_TCB_Configure` (non-MCS).
    #[allow(clippy::too_many_arguments)]
    pub fn tcb_configure(
        &mut self,
        tcb: CPtr,
        fault_ep: u64,
        cspace_root: CPtr,
        cspace_root_data: u64,
        vspace_root: CPtr,
        vspace_root_data: u64,
        buffer: u64,
        buffer_frame: CPtr,
    ) -> Result<(), Error> {
        self.invoke(
            tcb,
            sys::TCB_CONFIGURE,
            &[fault_ep, cspace_root_data, vspace_root_data, buffer],
            &[cspace_root, vspace_root, buffer_frame],
        )
        .map(drop)
    }

    /// `seL4_TCB_SetSchedParams` (non-MCS).
    pub fn tcb_set_sched_params(
        &mut self,
        tcb: CPtr,
        authority: CPtr,
        mcp: u64,
        priority: u64,
    ) -> Result<(), Error> {
        self.invoke(
            tcb,
            sys::TCB_SET_SCHED_PARAMS,
            &[mcp, priority],
            &[authority],
        )
        .map(drop)
    }

    /// `seL4_TCB_WriteRegisters` with the instruction pointer, stack pointer,
    /// flags and first argument register set, not resuming the thread.
    pub fn tcb_write_entry(
        &mut self,
        tcb: CPtr,
        rip: u64,
        rsp: u64,
        rdi: u64,
    ) -> Result<(), Error> {
        let count = sys::USER_CONTEXT_WORDS;
        let mut regs = [0u64; 24];
        let n = (count as usize).min(regs.len());
        let slot = |i: u64| i as usize;
        if let Some(r) = regs.get_mut(slot(sys::USER_CONTEXT_RIP)) {
            *r = rip;
        }
        if let Some(r) = regs.get_mut(slot(sys::USER_CONTEXT_RSP)) {
            *r = rsp;
        }
        if let Some(r) = regs.get_mut(slot(sys::USER_CONTEXT_RFLAGS)) {
            *r = 0x202;
        }
        if let Some(r) = regs.get_mut(slot(sys::USER_CONTEXT_RDI)) {
            *r = rdi;
        }
        let mut args = [0u64; 26];
        args[0] = 0; // resume_target = false, arch_flags = 0
        args[1] = n as u64;
        args[2..2 + n].copy_from_slice(&regs[..n]);
        self.invoke(tcb, sys::TCB_WRITE_REGISTERS, &args[..2 + n], &[])
            .map(drop)
    }

    /// `seL4_TCB_Resume`.
    pub fn tcb_resume(&mut self, tcb: CPtr) -> Result<(), Error> {
        self.invoke(tcb, sys::TCB_RESUME, &[], &[]).map(drop)
    }

    /// `seL4_TCB_SetEPTRoot`.
    pub fn tcb_set_ept_root(&mut self, tcb: CPtr, ept_pml4: CPtr) -> Result<(), Error> {
        self.invoke(tcb, sys::TCB_SET_EPT_ROOT, &[], &[ept_pml4])
            .map(drop)
    }

    /// `seL4_TCB_BindNotification`.
    pub fn tcb_bind_notification(&mut self, tcb: CPtr, ntfn: CPtr) -> Result<(), Error> {
        self.invoke(tcb, sys::TCB_BIND_NOTIFICATION, &[], &[ntfn])
            .map(drop)
    }

    /// `seL4_X86_ASIDPool_Assign`.
    pub fn asid_pool_assign(&mut self, pool: CPtr, vspace: CPtr) -> Result<(), Error> {
        self.invoke(pool, sys::X86_ASID_POOL_ASSIGN, &[], &[vspace])
            .map(drop)
    }

    /// Maps a paging structure (`label` = PDPT, page directory or page table
    /// map) into `vspace` at `vaddr`.
    pub fn paging_map(
        &mut self,
        label: u64,
        object: CPtr,
        vspace: CPtr,
        vaddr: u64,
    ) -> Result<(), Error> {
        self.invoke(
            object,
            label,
            &[vaddr, sys::X86_DEFAULT_VM_ATTRIBUTES],
            &[vspace],
        )
        .map(drop)
    }

    /// `seL4_X86_Page_Map`.
    pub fn page_map(
        &mut self,
        frame: CPtr,
        vspace: CPtr,
        vaddr: u64,
        rights: u64,
    ) -> Result<(), Error> {
        self.invoke(
            frame,
            sys::X86_PAGE_MAP,
            &[vaddr, rights, sys::X86_DEFAULT_VM_ATTRIBUTES],
            &[vspace],
        )
        .map(drop)
    }

    /// `seL4_X86_Page_Unmap`: removes the frame's mapping (VSpace or EPT).
    pub fn page_unmap(&mut self, frame: CPtr) -> Result<(), Error> {
        self.invoke(frame, sys::X86_PAGE_UNMAP, &[], &[]).map(drop)
    }

    /// `seL4_X86_Page_GetAddress`: the frame's physical address.
    pub fn page_get_address(&mut self, frame: CPtr) -> Result<u64, Error> {
        self.invoke(frame, sys::X86_PAGE_GET_ADDRESS, &[], &[])
            .map(|mr| mr[0])
    }

    /// Maps an EPT paging structure (`label` = EPT PDPT, PD or PT map) for
    /// guest-physical `gpa`.
    pub fn ept_map(&mut self, label: u64, object: CPtr, pml4: CPtr, gpa: u64) -> Result<(), Error> {
        self.invoke(
            object,
            label,
            &[gpa, sys::X86_EPT_DEFAULT_VM_ATTRIBUTES],
            &[pml4],
        )
        .map(drop)
    }

    /// `seL4_X86_Page_MapEPT`.
    pub fn page_map_ept(
        &mut self,
        frame: CPtr,
        pml4: CPtr,
        gpa: u64,
        rights: u64,
    ) -> Result<(), Error> {
        self.invoke(
            frame,
            sys::X86_PAGE_MAP_EPT,
            &[gpa, rights, sys::X86_EPT_DEFAULT_VM_ATTRIBUTES],
            &[pml4],
        )
        .map(drop)
    }

    /// `seL4_X86_IOPortControl_Issue`: an I/O port capability for
    /// `first..=last` into slot `index` of `root`.
    pub fn ioport_issue(
        &mut self,
        control: CPtr,
        first: u16,
        last: u16,
        root: CPtr,
        index: u64,
        depth: u8,
    ) -> Result<(), Error> {
        self.invoke(
            control,
            sys::X86_IO_PORT_CONTROL_ISSUE,
            &[u64::from(first), u64::from(last), index, u64::from(depth)],
            &[root],
        )
        .map(drop)
    }

    /// `seL4_X86_VCPU_SetTCB`.
    pub fn vcpu_set_tcb(&mut self, vcpu: CPtr, tcb: CPtr) -> Result<(), Error> {
        self.invoke(vcpu, sys::X86_VCPU_SET_TCB, &[], &[tcb])
            .map(drop)
    }

    /// `seL4_X86_VCPU_ReadVMCS`.
    pub fn vcpu_read_vmcs(&mut self, vcpu: CPtr, field: u32) -> Result<u64, Error> {
        self.invoke(vcpu, sys::X86_VCPU_READ_VMCS, &[u64::from(field)], &[])
            .map(|mr| mr[0])
    }

    /// `seL4_X86_VCPU_WriteVMCS`; returns the value written (after the
    /// kernel applied the processor's fixed bits).
    pub fn vcpu_write_vmcs(&mut self, vcpu: CPtr, field: u32, value: u64) -> Result<u64, Error> {
        self.invoke(
            vcpu,
            sys::X86_VCPU_WRITE_VMCS,
            &[u64::from(field), value],
            &[],
        )
        .map(|mr| mr[0])
    }

    /// `seL4_X86_VCPU_EnableIOPort`: lets the guest use `low..=high` of the
    /// port capability directly, without exits.
    pub fn vcpu_enable_ioport(
        &mut self,
        vcpu: CPtr,
        ioport: CPtr,
        low: u16,
        high: u16,
    ) -> Result<(), Error> {
        self.invoke(
            vcpu,
            sys::X86_VCPU_ENABLE_IO_PORT,
            &[u64::from(low), u64::from(high)],
            &[ioport],
        )
        .map(drop)
    }

    /// `seL4_X86_VCPU_WriteMSR`: a guest MSR the kernel switches on VM entry
    /// and exit (STAR, LSTAR, CSTAR, FMASK).
    pub fn vcpu_write_msr(&mut self, vcpu: CPtr, msr: u32, value: u64) -> Result<u64, Error> {
        self.invoke(vcpu, sys::X86_VCPU_WRITE_MSR, &[u64::from(msr), value], &[])
            .map(|mr| mr[0])
    }

    /// `seL4_X86_VCPU_WriteRegisters`.
    pub fn vcpu_write_registers(&mut self, vcpu: CPtr, ctx: &VcpuContext) -> Result<(), Error> {
        self.invoke(vcpu, sys::X86_VCPU_WRITE_REGISTERS, &ctx.regs, &[])
            .map(drop)
    }
}

/// `seL4_X86_IOPort_Out8`. Needs no IPC buffer, so any thread may call it.
pub fn ioport_out8(ioport: CPtr, port: u16, value: u8) -> Result<(), Error> {
    crate::invoke_regs(
        ioport,
        sys::X86_IO_PORT_OUT8,
        &[u64::from(port), u64::from(value)],
    )
    .map(drop)
}

/// `seL4_X86_IOPort_In8`. Needs no IPC buffer, so any thread may call it.
pub fn ioport_in8(ioport: CPtr, port: u16) -> Result<u8, Error> {
    crate::invoke_regs(ioport, sys::X86_IO_PORT_IN8, &[u64::from(port)]).map(|mr| mr[0] as u8)
}

/// `seL4_IRQHandler_Ack`. Needs no IPC buffer.
pub fn irq_ack(handler: CPtr) -> Result<(), Error> {
    crate::invoke_regs(handler, sys::IRQ_ACK_IRQ, &[]).map(drop)
}

/// `seL4_TCB_Suspend`. Needs no IPC buffer.
pub fn tcb_suspend(tcb: CPtr) -> Result<(), Error> {
    crate::invoke_regs(tcb, sys::TCB_SUSPEND, &[]).map(drop)
}
