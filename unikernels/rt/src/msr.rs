//! Model-specific registers, including probes that survive a `#GP`.
//!
//! [`read_safe`] and [`write_safe`] run `rdmsr`/`wrmsr` at a known address with a
//! probe flag armed. If the instruction raises `#GP` (unknown MSR, reserved bits,
//! or a VMM that refuses the access), the exception dispatcher sees the armed flag
//! and the faulting RIP, records the fault and resumes after the 2-byte
//! instruction. Any other `#GP` is still fatal.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::interrupts::TrapFrame;

// The probes. System V: msr in edi, value in rsi; result in rax.
core::arch::global_asm!(
    r#"
    .section .text.rt_msr, "ax"
    .global rt_rdmsr_probe
rt_rdmsr_probe:
    movl %edi, %ecx
    xorl %eax, %eax
    xorl %edx, %edx
    .global rt_rdmsr_probe_insn
rt_rdmsr_probe_insn:
    rdmsr
    shlq $32, %rdx
    orq %rdx, %rax
    ret

    .global rt_wrmsr_probe
rt_wrmsr_probe:
    movl %edi, %ecx
    movl %esi, %eax
    movq %rsi, %rdx
    shrq $32, %rdx
    .global rt_wrmsr_probe_insn
rt_wrmsr_probe_insn:
    wrmsr
    ret
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    fn rt_rdmsr_probe(msr: u32) -> u64;
    fn rt_wrmsr_probe(msr: u32, value: u64);
    /// The `rdmsr` instruction inside `rt_rdmsr_probe`.
    safe static rt_rdmsr_probe_insn: u8;
    /// The `wrmsr` instruction inside `rt_wrmsr_probe`.
    safe static rt_wrmsr_probe_insn: u8;
}

/// Length of `rdmsr` (0f 32) and `wrmsr` (0f 30).
const MSR_INSN_LEN: u64 = 2;

static PROBE_ARMED: AtomicBool = AtomicBool::new(false);
static PROBE_FAULTED: AtomicBool = AtomicBool::new(false);

/// Called by the `#GP` dispatcher: skips a probing `rdmsr`/`wrmsr` that faulted.
pub(crate) fn recover_gp(frame: &mut TrapFrame) -> bool {
    let rd = (&raw const rt_rdmsr_probe_insn) as u64;
    let wr = (&raw const rt_wrmsr_probe_insn) as u64;
    if PROBE_ARMED.load(Ordering::SeqCst) && (frame.rip == rd || frame.rip == wr) {
        PROBE_FAULTED.store(true, Ordering::SeqCst);
        frame.rip += MSR_INSN_LEN;
        true
    } else {
        false
    }
}

fn probe(run: impl FnOnce() -> u64) -> Option<u64> {
    PROBE_FAULTED.store(false, Ordering::SeqCst);
    PROBE_ARMED.store(true, Ordering::SeqCst);
    let value = run();
    PROBE_ARMED.store(false, Ordering::SeqCst);
    if PROBE_FAULTED.swap(false, Ordering::SeqCst) {
        None
    } else {
        Some(value)
    }
}

/// Reads MSR `msr`; `None` if the read raised `#GP`.
pub fn read_safe(msr: u32) -> Option<u64> {
    // SAFETY: `rdmsr` changes no memory and no state the program relies on; if it
    // faults, the armed probe makes the `#GP` handler resume after it.
    probe(|| unsafe { rt_rdmsr_probe(msr) })
}

/// Writes `value` to MSR `msr`; `false` if the write raised `#GP`.
///
/// # Safety
///
/// Writing an MSR can change paging, segmentation, interrupt delivery or anything
/// else about the CPU: the caller must know the write is harmless to the program.
pub unsafe fn write_safe(msr: u32, value: u64) -> bool {
    // SAFETY: the caller vouches for the write; a `#GP` is recovered as above.
    probe(|| unsafe {
        rt_wrmsr_probe(msr, value);
        0
    })
    .is_some()
}
