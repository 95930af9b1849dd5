//! Host events: the machine's PIT is the VMM's timer and COM1's receive
//! interrupt brings console input. Both arrive as IOAPIC interrupts on one
//! notification, served by one thread above the vCPU threads' priority.
//!
//! vCPU threads publish the TSC value they must wake at
//! ([`set_deadline`]); the events thread programs the PIT for the earliest
//! one (at most ~50 ms ahead, then re-arms) and signals each VM's
//! notification when its deadline passes. Console bytes go into the queue of
//! the VM the console is attached to, which is then signalled.

use crate::kobj::{Context, KError, Kernel, CNODE_DEPTH};
use crate::vcpu::MAX_VMS;
use core::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use sel4::{sys, CPtr};

const BADGE_PIT: u64 = 1;
const BADGE_COM1: u64 = 2;
const BADGE_KICK: u64 = 4;

const PIT_HZ: u64 = 1_193_182;
const PIT_CH0: u16 = 0x40;
const PIT_CMD: u16 = 0x43;
const COM1: u16 = 0x3f8;
/// The IOAPIC pins the PC wires the PIT (ISA IRQ 0, overridden to GSI 2)
/// and COM1 (ISA IRQ 4) to.
const PIT_PIN: u64 = 2;
const COM1_PIN: u64 = 4;

const NO_DEADLINE: u64 = u64::MAX;
static DEADLINE: [AtomicU64; MAX_VMS] = [const { AtomicU64::new(NO_DEADLINE) }; MAX_VMS];
static WAKE: [AtomicU64; MAX_VMS] = [const { AtomicU64::new(0) }; MAX_VMS];
static KICK: AtomicU64 = AtomicU64::new(0);
/// The VM the console is attached to (`usize::MAX`: none).
static CONSOLE_VM: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Console input waiting for the attached VM (single producer: the events
/// thread; single consumer: that VM's vCPU thread).
struct InputQueue {
    buf: [AtomicU8; 256],
    head: AtomicUsize,
    tail: AtomicUsize,
}

static INPUT: InputQueue = InputQueue {
    buf: [const { AtomicU8::new(0) }; 256],
    head: AtomicUsize::new(0),
    tail: AtomicUsize::new(0),
};

impl InputQueue {
    fn push(&self, b: u8) -> bool {
        let tail = self.tail.load(Ordering::Relaxed);
        let head = self.head.load(Ordering::Acquire);
        if tail.wrapping_sub(head) >= self.buf.len() {
            return false;
        }
        self.buf[tail % self.buf.len()].store(b, Ordering::Relaxed);
        self.tail.store(tail.wrapping_add(1), Ordering::Release);
        true
    }

    fn pop(&self) -> Option<u8> {
        let head = self.head.load(Ordering::Relaxed);
        if head == self.tail.load(Ordering::Acquire) {
            return None;
        }
        let b = self.buf[head % self.buf.len()].load(Ordering::Relaxed);
        self.head.store(head.wrapping_add(1), Ordering::Release);
        Some(b)
    }
}

/// Registers `ntfn` as the notification that wakes VM `index`.
pub fn register_vm(index: usize, ntfn: CPtr) {
    if let Some(w) = WAKE.get(index) {
        w.store(ntfn, Ordering::Release);
    }
}

/// Attaches the machine's console input to VM `index`.
pub fn attach_console(index: usize) {
    CONSOLE_VM.store(index, Ordering::Release);
}

/// The next console byte for VM `index`, if the console is attached to it.
pub fn console_input(index: usize) -> Option<u8> {
    if CONSOLE_VM.load(Ordering::Acquire) != index {
        return None;
    }
    INPUT.pop()
}

/// Asks for VM `index` to be woken when the TSC reaches `tsc`
/// (`None`: no deadline).
pub fn set_deadline(index: usize, tsc: Option<u64>) {
    let Some(d) = DEADLINE.get(index) else { return };
    let new = tsc.unwrap_or(NO_DEADLINE);
    let old = d.swap(new, Ordering::AcqRel);
    if new < old {
        let kick = KICK.load(Ordering::Acquire);
        if kick != 0 {
            sel4::signal(kick);
        }
    }
}

struct Thread {
    ntfn: CPtr,
    pit: CPtr,
    pit_irq: CPtr,
    com1: CPtr,
    com1_irq: CPtr,
    tsc_hz: u64,
}

const STACK: usize = 16 * 1024;
#[repr(C, align(16))]
struct Stack([u8; STACK]);
static mut EVENTS_STACK: Stack = Stack([0; STACK]);
static mut THREAD: Option<Thread> = None;

/// Starts the events thread at `priority`. `com1` is the VMM's COM1 port
/// capability; `tsc_mhz` the calibrated TSC frequency.
pub fn start(k: &mut Kernel, com1: CPtr, tsc_mhz: u64, priority: u64) -> Result<(), KError> {
    let ntfn = k.create(
        sys::NOTIFICATION_OBJECT,
        sys::NOTIFICATION_BITS,
        "creating the events notification",
    )?;
    let badged = |k: &mut Kernel, badge: u64| -> Result<CPtr, KError> {
        let slot = k.slot()?;
        k.ipc
            .cnode_mint(
                sys::CAP_INIT_THREAD_CNODE,
                slot,
                CNODE_DEPTH,
                sys::CAP_INIT_THREAD_CNODE,
                ntfn,
                CNODE_DEPTH,
                sys::RIGHTS_ALL,
                badge,
            )
            .ctx("minting a badged notification")?;
        Ok(slot)
    };
    let pit_ntfn = badged(k, BADGE_PIT)?;
    let com1_ntfn = badged(k, BADGE_COM1)?;
    let kick = badged(k, BADGE_KICK)?;

    let pit = k.slot()?;
    k.ipc
        .ioport_issue(
            sys::CAP_IO_PORT_CONTROL,
            PIT_CH0,
            PIT_CMD,
            sys::CAP_INIT_THREAD_CNODE,
            pit,
            CNODE_DEPTH,
        )
        .ctx("getting the PIT's I/O ports")?;
    let irq = |k: &mut Kernel, pin: u64, user_irq: u64, notify: CPtr| -> Result<CPtr, KError> {
        let slot = k.slot()?;
        k.ipc
            .irq_get_ioapic(
                sys::CAP_IRQ_CONTROL,
                sys::CAP_INIT_THREAD_CNODE,
                slot,
                CNODE_DEPTH,
                0,
                pin,
                false,
                false,
                user_irq,
            )
            .ctx("getting an IOAPIC interrupt handler")?;
        k.ipc
            .irq_set_notification(slot, notify)
            .ctx("binding an interrupt to the events notification")?;
        Ok(slot)
    };
    let pit_irq = irq(k, PIT_PIN, 0, pit_ntfn)?;
    let com1_irq = irq(k, COM1_PIN, 1, com1_ntfn)?;
    // Receive interrupts on the machine's COM1: IER.RDA, and MCR.OUT2 which
    // gates the UART's interrupt line on PCs (DTR and RTS stay on).
    sel4::ioport_out8(com1, COM1 + 4, 0x0b).ctx("enabling COM1 interrupts")?;
    sel4::ioport_out8(com1, COM1 + 1, 0x01).ctx("enabling COM1 receive interrupts")?;

    let ipc_vaddr = crate::vcpu::IPC_AREA + (MAX_VMS as u64) * 4096;
    let tcb = k.create_thread(ipc_vaddr, priority)?;
    // SAFETY: written once here, before the thread that reads it starts.
    unsafe {
        THREAD = Some(Thread {
            ntfn,
            pit,
            pit_irq,
            com1,
            com1_irq,
            tsc_hz: tsc_mhz.max(1) * 1_000_000,
        });
    }
    KICK.store(kick, Ordering::Release);
    // The stack is used by this thread alone.
    let top = core::ptr::addr_of_mut!(EVENTS_STACK) as u64 + STACK as u64;
    k.ipc
        .tcb_write_entry(tcb, events_main as *const () as u64, top - 8, 0)
        .ctx("setting the events thread's entry")?;
    k.ipc.tcb_resume(tcb).ctx("starting the events thread")
}

extern "C" fn events_main(_: u64) -> ! {
    // SAFETY: set before this thread started and never written again.
    let t = unsafe { (*core::ptr::addr_of!(THREAD)).as_ref() };
    let Some(t) = t else {
        loop {
            sel4::yield_now();
        }
    };
    loop {
        let badge = sel4::wait(t.ntfn);
        if badge & BADGE_COM1 != 0 {
            t.drain_com1();
            let _ = sel4::irq_ack(t.com1_irq);
        }
        // The interrupt is edge-triggered and masked until acknowledged: a
        // byte that arrived in between raised no edge, and the UART keeps
        // its line high until it is read. Drain after every wake-up.
        t.drain_com1();
        if badge & BADGE_PIT != 0 {
            let _ = sel4::irq_ack(t.pit_irq);
        }
        t.expire_and_rearm();
    }
}

impl Thread {
    fn drain_com1(&self) {
        let mut got = false;
        for _ in 0..64 {
            match sel4::ioport_in8(self.com1, COM1 + 5) {
                Ok(lsr) if lsr & 1 != 0 => {}
                _ => break,
            }
            let Ok(b) = sel4::ioport_in8(self.com1, COM1) else {
                break;
            };
            got |= INPUT.push(b);
        }
        if got {
            let vm = CONSOLE_VM.load(Ordering::Acquire);
            if let Some(w) = WAKE.get(vm) {
                let cap = w.load(Ordering::Acquire);
                if cap != 0 {
                    sel4::signal(cap);
                }
            }
        }
    }

    fn expire_and_rearm(&self) {
        let now = crate::rdtsc();
        let mut next = NO_DEADLINE;
        for (d, w) in DEADLINE.iter().zip(WAKE.iter()) {
            let due = d.load(Ordering::Acquire);
            if due <= now {
                if d.compare_exchange(due, NO_DEADLINE, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    let cap = w.load(Ordering::Acquire);
                    if cap != 0 {
                        sel4::signal(cap);
                    }
                }
            } else {
                next = next.min(due);
            }
        }
        if next != NO_DEADLINE {
            self.arm(next - now);
        }
    }

    /// One-shot (mode 0) on PIT channel 0, `tsc` ticks from now, at most one
    /// full count (~55 ms): a later deadline is re-armed on expiry.
    fn arm(&self, tsc: u64) {
        let count = (u128::from(tsc) * u128::from(PIT_HZ) / u128::from(self.tsc_hz))
            .clamp(1, 0xffff) as u16;
        let _ = sel4::ioport_out8(self.pit, PIT_CMD, 0x30);
        let _ = sel4::ioport_out8(self.pit, PIT_CH0, count as u8);
        let _ = sel4::ioport_out8(self.pit, PIT_CH0, (count >> 8) as u8);
    }
}

/// Blocks VM `index`'s vCPU thread for about `ms` milliseconds using the
/// events thread (used by the start-up self-check).
pub fn sleep_check(index: usize, ntfn: CPtr, tsc_mhz: u64, ms: u64) -> u64 {
    let start = crate::rdtsc();
    set_deadline(index, Some(start + ms * tsc_mhz * 1000));
    sel4::wait(ntfn);
    crate::rdtsc() - start
}
