//! GDT, TSS and IDT, and the CPU-exception path.
//!
//! Every architectural exception vector (0..=31 that the `x86_64` crate names) goes
//! through an assembly stub that saves all general-purpose registers into a
//! [`TrapFrame`] and calls `rt_exception_dispatch`. The dispatcher lets
//! [`crate::msr`] recover an expected `#GP`; anything else is printed (vector,
//! error code, RIP, CR2 for `#PF`) and ends the VM with [`exit::EXCEPTION`].
//! `#DF` runs on its own stack (IST1) so a stack overflow is still reported.
//! Vectors 32..=255 go to the stubs of [`crate::irq`]; external interrupts are
//! only enabled while [`crate::irq::wait`] halts.

use core::fmt::Write;

use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::registers::control::Cr2;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::idt::InterruptDescriptorTable;
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

use crate::exit;
use crate::serial::SerialPort;

/// Size of the `#DF` stack.
const DF_STACK_SIZE: usize = 16 * 1024;

// Exception entry stubs. Vectors that push no error code push a 0 so every frame
// has the same layout; then the vector number; then `rt_isr_common` saves the
// registers, calls the dispatcher with RSP 16-byte aligned, restores and `iretq`s.
core::arch::global_asm!(
    r#"
    .section .text.rt_isr, "ax"

    .macro RT_ISR_NOERR vec
    .balign 16
rt_isr_\vec:
    pushq $0
    pushq $\vec
    jmp rt_isr_common
    .endm

    .macro RT_ISR_ERR vec
    .balign 16
rt_isr_\vec:
    pushq $\vec
    jmp rt_isr_common
    .endm

    .irp vec, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
    RT_ISR_NOERR \vec
    .endr
    .irp vec, 8,10,11,12,13,14,17,21,29,30
    RT_ISR_ERR \vec
    .endr

    .balign 16
rt_isr_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    cld
    movq %rsp, %rdi
    movq %rsp, %rbx
    andq $-16, %rsp
    call rt_exception_dispatch
    movq %rbx, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp
    iretq

    .section .rodata.rt_isr_table, "a"
    .balign 8
    .global rt_isr_table
rt_isr_table:
    .irp vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad rt_isr_\vec
    .endr

    .section .bss.rt_df_stack, "aw", @nobits
    .balign 16
rt_df_stack_bottom:
    .skip {df_stack_size}
    .global rt_df_stack_top
rt_df_stack_top:
    "#,
    df_stack_size = const DF_STACK_SIZE,
    options(att_syntax)
);

unsafe extern "C" {
    /// Entry stub addresses for vectors 0..=31 (defined above).
    safe static rt_isr_table: [u64; 32];
    /// Top of the `#DF` stack (defined above).
    safe static rt_df_stack_top: u8;
}

/// Registers saved by the exception stubs, lowest address first.
#[repr(C)]
#[derive(Debug)]
#[allow(missing_docs)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    /// Exception vector.
    pub vector: u64,
    /// Error code pushed by the CPU, or 0 for vectors without one.
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Short mnemonic of an exception vector.
pub fn vector_name(vector: u64) -> &'static str {
    const NAMES: [&str; 32] = [
        "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "#CSO", "#TS", "#NP", "#SS",
        "#GP", "#PF", "#15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP", "#22", "#23", "#24", "#25",
        "#26", "#27", "#HV", "#VC", "#SX", "#31",
    ];
    usize::try_from(vector)
        .ok()
        .and_then(|v| NAMES.get(v))
        .copied()
        .unwrap_or("?")
}

/// Called by `rt_isr_common` with the saved frame; returns only if the fault was
/// handled (the frame, possibly with a new RIP, is then resumed).
#[unsafe(no_mangle)]
extern "C" fn rt_exception_dispatch(frame: &mut TrapFrame) {
    if frame.vector == 13 && crate::msr::recover_gp(frame) {
        return;
    }
    // Bypass the console lock: the fault may have hit while it was held.
    let mut out = SerialPort::com1();
    let _ = write!(
        out,
        "\nrt: fatal CPU exception {} (vector {}) error code {:#x} at rip {:#x}",
        vector_name(frame.vector),
        frame.vector,
        frame.error_code,
        frame.rip
    );
    if frame.vector == 14 {
        let _ = write!(out, " cr2 {:#x}", Cr2::read_raw());
    }
    let _ = writeln!(
        out,
        "\nrt:   rsp {:#x} rflags {:#x} cs {:#x} rax {:#x} rbx {:#x} rcx {:#x} rdx {:#x}",
        frame.rsp, frame.rflags, frame.cs, frame.rax, frame.rbx, frame.rcx, frame.rdx
    );
    exit::exit(exit::EXCEPTION);
}

struct Gdt {
    table: GlobalDescriptorTable,
    code: SegmentSelector,
    data: SegmentSelector,
    tss: SegmentSelector,
}

static TSS: spin::Once<TaskStateSegment> = spin::Once::new();
static GDT: spin::Once<Gdt> = spin::Once::new();
static IDT: spin::Once<InterruptDescriptorTable> = spin::Once::new();

/// Loads the runtime's GDT (64-bit code, data, TSS with the `#DF` stack) and IDT.
pub(crate) fn init() {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        tss.interrupt_stack_table[0] = VirtAddr::from_ptr(&raw const rt_df_stack_top);
        tss
    });
    let gdt = GDT.call_once(|| {
        let mut table = GlobalDescriptorTable::new();
        let code = table.append(Descriptor::kernel_code_segment());
        let data = table.append(Descriptor::kernel_data_segment());
        let tss = table.append(Descriptor::tss_segment(tss));
        Gdt {
            table,
            code,
            data,
            tss,
        }
    });
    gdt.table.load();
    // SAFETY: the selectors index the GDT just loaded, which lives in a static;
    // the code segment is 64-bit, the data segment flat, the TSS valid and unused.
    unsafe {
        CS::set_reg(gdt.code);
        SS::set_reg(gdt.data);
        DS::set_reg(gdt.data);
        ES::set_reg(gdt.data);
        load_tss(gdt.tss);
    }

    let idt = IDT.call_once(|| {
        let mut idt = InterruptDescriptorTable::new();
        let stub = |v: usize| VirtAddr::new(rt_isr_table[v]);
        // SAFETY: each address is the stub for that vector, which handles the
        // vector's error-code convention and returns with `iretq`; index 0 of the
        // IST is the `#DF` stack set in the TSS above.
        unsafe {
            idt.divide_error.set_handler_addr(stub(0));
            idt.debug.set_handler_addr(stub(1));
            idt.non_maskable_interrupt.set_handler_addr(stub(2));
            idt.breakpoint.set_handler_addr(stub(3));
            idt.overflow.set_handler_addr(stub(4));
            idt.bound_range_exceeded.set_handler_addr(stub(5));
            idt.invalid_opcode.set_handler_addr(stub(6));
            idt.device_not_available.set_handler_addr(stub(7));
            idt.double_fault
                .set_handler_addr(stub(8))
                .set_stack_index(0);
            idt.invalid_tss.set_handler_addr(stub(10));
            idt.segment_not_present.set_handler_addr(stub(11));
            idt.stack_segment_fault.set_handler_addr(stub(12));
            idt.general_protection_fault.set_handler_addr(stub(13));
            idt.page_fault.set_handler_addr(stub(14));
            idt.x87_floating_point.set_handler_addr(stub(16));
            idt.alignment_check.set_handler_addr(stub(17));
            idt.machine_check.set_handler_addr(stub(18));
            idt.simd_floating_point.set_handler_addr(stub(19));
            idt.virtualization.set_handler_addr(stub(20));
            idt.cp_protection_exception.set_handler_addr(stub(21));
            idt.hv_injection_exception.set_handler_addr(stub(28));
            idt.vmm_communication_exception.set_handler_addr(stub(29));
            idt.security_exception.set_handler_addr(stub(30));
            for vector in 32..=255u8 {
                idt[vector].set_handler_addr(VirtAddr::new(crate::irq::stub_address(vector)));
            }
        }
        idt
    });
    idt.load();
}
