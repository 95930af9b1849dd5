//! The x86_64 `syscall` stubs. Message registers 0–3 travel in R10, R8, R9
//! and R15; the rest in the thread's IPC buffer. The kernel returns with RSP
//! cleared, so each stub keeps the stack pointer in R14, which the kernel
//! saves and restores with the rest of the thread's registers.

use crate::{sys, CPtr, IpcBuffer, MessageInfo};
use core::arch::asm;

/// The result of a `seL4_VMEnter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmEnterResult {
    /// The guest exited; the fault message registers describe why.
    Fault,
    /// A notification bound to the vCPU's thread arrived with this badge.
    Notification(u64),
}

/// Performs a send-receive style syscall, returning (info, badge) and
/// updating the four register message registers in place.
#[inline(always)]
fn send_recv(sys_no: i64, dest: u64, info: u64, mr: &mut [u64; 4]) -> (u64, u64) {
    let out_info: u64;
    let out_badge: u64;
    // SAFETY: this is the seL4 x86_64 syscall ABI: RDX = syscall number,
    // RDI = capability/badge, RSI = message info, R10/R8/R9/R15 = MR0-3. The
    // kernel clobbers RCX and R11 (sysret) and zeroes RSP, which is restored
    // from R14; it preserves every other register. Memory is clobbered
    // because the kernel reads and writes the IPC buffer.
    unsafe {
        asm!(
            "mov r14, rsp",
            "syscall",
            "mov rsp, r14",
            inout("rdx") sys_no => _,
            inout("rdi") dest => out_badge,
            inout("rsi") info => out_info,
            inout("r10") mr[0],
            inout("r8") mr[1],
            inout("r9") mr[2],
            inout("r15") mr[3],
            out("rcx") _,
            out("r11") _,
            out("r14") _,
        );
    }
    (out_info, out_badge)
}

/// A thread's connection to the kernel: its IPC buffer. Every syscall that
/// moves more than four message registers goes through one.
pub struct Ipc {
    buf: *mut IpcBuffer,
}

// SAFETY: an `Ipc` is only ever used by the thread that owns the buffer; it is
// moved to that thread once, at thread creation.
unsafe impl Send for Ipc {}

impl Ipc {
    /// Wraps the calling thread's IPC buffer.
    ///
    /// # Safety
    /// `buf` must be the IPC buffer the kernel has registered for the thread
    /// that will use this `Ipc`, mapped read-write, and used by nobody else.
    pub unsafe fn new(buf: *mut IpcBuffer) -> Self {
        Ipc { buf }
    }

    fn buffer(&mut self) -> &mut IpcBuffer {
        // SAFETY: the constructor's contract: the buffer is mapped, and
        // `&mut self` makes this the only reference.
        unsafe { &mut *self.buf }
    }

    /// Reads message register `i` (registers 0–3 come from `regs`).
    pub fn mr(&mut self, i: usize) -> u64 {
        self.buffer().msg.get(i).copied().unwrap_or(0)
    }

    /// Writes message register `i` in the IPC buffer.
    pub fn set_mr(&mut self, i: usize, v: u64) {
        if let Some(slot) = self.buffer().msg.get_mut(i) {
            *slot = v;
        }
    }

    /// Invokes capability `cap` with `label`, word arguments `args` and
    /// capability arguments `caps`; returns the reply's message registers 0–3.
    pub fn invoke(
        &mut self,
        cap: CPtr,
        label: u64,
        args: &[u64],
        caps: &[CPtr],
    ) -> Result<[u64; 4], crate::Error> {
        let b = self.buffer();
        for (i, c) in caps.iter().enumerate().take(crate::MSG_MAX_EXTRA_CAPS) {
            b.caps_or_badges[i] = *c;
        }
        let mut mr = [0u64; 4];
        for (i, a) in args.iter().enumerate().take(crate::MSG_MAX_LENGTH) {
            match mr.get_mut(i) {
                Some(r) => *r = *a,
                None => b.msg[i] = *a,
            }
        }
        let info = MessageInfo::new(label, 0, caps.len() as u64, args.len() as u64);
        let (out, _) = send_recv(sys::SYS_CALL, cap, info.0, &mut mr);
        crate::Error::check(MessageInfo(out).label())?;
        Ok(mr)
    }

    /// `seL4_VMEnter`: runs the vCPU bound to this thread. `rip`, `ppc`
    /// (primary processor controls) and `interruption` (VM-entry interruption
    /// information) set up the entry; on return, the fault message registers
    /// 0–3 are in the returned array and the rest in the IPC buffer.
    pub fn vm_enter(&mut self, rip: u64, ppc: u64, interruption: u64) -> (VmEnterResult, [u64; 4]) {
        let mut mr = [rip, ppc, interruption, 0];
        let (info, badge) = send_recv(sys::SYS_VM_ENTER, 0, 0, &mut mr);
        let result = if info == sys::VMENTER_RESULT_FAULT {
            VmEnterResult::Fault
        } else {
            VmEnterResult::Notification(badge)
        };
        (result, mr)
    }
}

/// Invokes `cap` with at most four word arguments and no capabilities: the
/// message travels in registers only, so no IPC buffer is involved.
pub fn invoke_regs(cap: CPtr, label: u64, args: &[u64]) -> Result<[u64; 4], crate::Error> {
    if args.len() > 4 {
        return Err(crate::Error::TruncatedMessage);
    }
    let mut mr = [0u64; 4];
    let n = args.len();
    mr[..n].copy_from_slice(&args[..n]);
    let info = MessageInfo::new(label, 0, 0, n as u64);
    let (out, _) = send_recv(sys::SYS_CALL, cap, info.0, &mut mr);
    crate::Error::check(MessageInfo(out).label())?;
    Ok(mr)
}

/// `seL4_Signal` on a notification capability.
pub fn signal(ntfn: CPtr) {
    let mut mr = [0u64; 4];
    let info = MessageInfo::new(0, 0, 0, 0);
    let _ = send_recv(sys::SYS_SEND, ntfn, info.0, &mut mr);
}

/// `seL4_Wait` on a notification capability; returns the badge.
pub fn wait(ntfn: CPtr) -> u64 {
    let mut mr = [0u64; 4];
    send_recv(sys::SYS_RECV, ntfn, 0, &mut mr).1
}

/// `seL4_Poll` on a notification capability: the badge if it was signalled,
/// 0 if not; never blocks.
pub fn poll(ntfn: CPtr) -> u64 {
    let mut mr = [0u64; 4];
    send_recv(sys::SYS_NB_RECV, ntfn, 0, &mut mr).1
}

/// `seL4_Yield`.
pub fn yield_now() {
    let mut mr = [0u64; 4];
    let _ = send_recv(sys::SYS_YIELD, 0, 0, &mut mr);
}

/// `seL4_DebugPutChar` (debug kernels only).
pub fn debug_put_char(c: u8) {
    let mut mr = [0u64; 4];
    let _ = send_recv(sys::SYS_DEBUG_PUT_CHAR, u64::from(c), 0, &mut mr);
}
