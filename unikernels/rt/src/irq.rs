//! External interrupts: local APIC, IOAPIC routing, MSI vectors, and waiting.
//!
//! Interrupts are only ever enabled inside [`wait`] (`sti; hlt; cli`), so a
//! handler never runs in the middle of the unikernel's own code: it records the
//! vector as pending, masks a level-triggered IOAPIC input (the device keeps the
//! line asserted until its driver acknowledges it, see [`Irq::rearm`]), and
//! sends the EOI. Drivers poll [`Irq::take`] after a wait.
//!
//! [`init`] sets up the local APIC from the ACPI MADT (or the architectural
//! defaults), masks the 8259 PICs after moving them to vectors 0x20–0x2F, masks
//! every IOAPIC input, and calibrates the APIC timer against the TSC clock. If
//! the CPU has no APIC, [`init`] fails and [`wait`] spins until the deadline:
//! drivers then fall back to polling.
//!
//! Vectors: 0x20–0x2F the (masked) PICs' spurious interrupts, 0x30–0xDF
//! allocated to devices, [`TIMER_VECTOR`], [`crate::xen::UPCALL_VECTOR`]
//! (injected by the hypervisor without the APIC, so it gets no EOI),
//! [`ERROR_VECTOR`], and [`SPURIOUS_VECTOR`].

use core::fmt;
use core::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};

use x86_64::instructions::port::Port;

use crate::apic::{IoApic, LocalApic, Redirection};
use crate::mmio::MmioError;
use crate::time::{self, Instant};

/// The APIC timer's vector.
pub const TIMER_VECTOR: u8 = 0xef;
/// The APIC error vector.
pub const ERROR_VECTOR: u8 = 0xfe;
/// The APIC spurious vector.
pub const SPURIOUS_VECTOR: u8 = 0xff;
/// First vector handed to devices.
const FIRST_DEVICE_VECTOR: u8 = 0x30;
/// Number of device vectors (0x30..0xE0).
const DEVICE_VECTORS: u8 = 0xb0;
/// Most IOAPICs used.
const MAX_IOAPICS: usize = crate::acpi::MAX_IOAPICS;

// Entry stubs for vectors 32..=255, 16 bytes apart: push the vector, then the
// common path saves the caller-saved registers (the unikernel target has no
// SSE state), calls `rt_irq_dispatch` with RSP aligned, and returns.
core::arch::global_asm!(
    r#"
    .section .text.rt_irq, "ax"
    .balign 16
    .global rt_irq_stubs
rt_irq_stubs:
    .set rt_irq_vec, 32
    .rept 224
    .balign 16
    pushq $rt_irq_vec
    jmp rt_irq_common
    .set rt_irq_vec, rt_irq_vec + 1
    .endr

    .balign 16
rt_irq_common:
    pushq %rax
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %rbx
    cld
    movq 80(%rsp), %rdi
    movq %rsp, %rbx
    andq $-16, %rsp
    call rt_irq_dispatch
    movq %rbx, %rsp
    popq %rbx
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rax
    addq $8, %rsp
    iretq
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    /// The first stub (vector 32); vector `v`'s is `16 * (v - 32)` bytes on.
    safe static rt_irq_stubs: u8;
}

/// Address of the entry stub for `vector` (32..=255).
pub(crate) fn stub_address(vector: u8) -> u64 {
    (&raw const rt_irq_stubs) as u64 + 16 * u64::from(vector.saturating_sub(32))
}

/// Pending vectors, one bit each.
static PENDING: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
/// For level-triggered IOAPIC inputs: `(ioapic << 8 | pin) + 1` per vector.
static LEVEL: [AtomicU16; 256] = [const { AtomicU16::new(0) }; 256];
/// Allocated device vectors, one bit each (relative to FIRST_DEVICE_VECTOR).
static ALLOCATED: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
/// Interrupts seen on vectors nothing asked for (PIC spurious, APIC errors).
static STRAY: AtomicUsize = AtomicUsize::new(0);

/// Why interrupts cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqError {
    /// CPUID says there is no local APIC.
    NoApic,
    /// The APIC base MSR is unreadable or the APIC cannot be enabled.
    ApicBase,
    /// A controller's registers could not be mapped.
    Mmio(MmioError),
    /// No IOAPIC serves this GSI.
    NoIoApic(u32),
    /// All device vectors are in use.
    NoVectors,
    /// [`init`] has not succeeded.
    NotInitialised,
}

impl fmt::Display for IrqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IrqError::NoApic => f.write_str("no local APIC"),
            IrqError::ApicBase => f.write_str("local APIC cannot be enabled"),
            IrqError::Mmio(e) => write!(f, "{e}"),
            IrqError::NoIoApic(g) => write!(f, "no IOAPIC serves GSI {g}"),
            IrqError::NoVectors => f.write_str("out of interrupt vectors"),
            IrqError::NotInitialised => f.write_str("interrupts not initialised"),
        }
    }
}

struct Controller {
    lapic: LocalApic,
    ioapics: [Option<IoApic>; MAX_IOAPICS],
    apic_id: u8,
    /// APIC timer ticks per second (after the divider).
    timer_hz: u64,
}

static CONTROLLER: spin::Once<Result<Controller, IrqError>> = spin::Once::new();

fn controller() -> Option<&'static Controller> {
    CONTROLLER.get().and_then(|r| r.as_ref().ok())
}

/// Moves the 8259 PICs to vectors 0x20–0x2F and masks every input.
fn mask_pics() {
    let ports = [(0x20u16, 0x21u16, 0x20u8, 4u8), (0xa0, 0xa1, 0x28, 2)];
    for (cmd, data, base, wiring) in ports {
        let mut c: Port<u8> = Port::new(cmd);
        let mut d: Port<u8> = Port::new(data);
        // SAFETY: the standard 8259 initialisation sequence (ICW1–ICW4) and a
        // full mask; the PICs only deliver interrupts, which stay masked.
        unsafe {
            c.write(0x11);
            d.write(base);
            d.write(wiring);
            d.write(0x01);
            d.write(0xff);
        }
    }
}

fn setup() -> Result<Controller, IrqError> {
    if core::arch::x86_64::__cpuid(1).edx & (1 << 9) == 0 {
        return Err(IrqError::NoApic);
    }
    const APIC_BASE_MSR: u32 = 0x1b;
    const APIC_GLOBAL_ENABLE: u64 = 1 << 11;
    let msr = crate::msr::read_safe(APIC_BASE_MSR).ok_or(IrqError::ApicBase)?;
    if msr & APIC_GLOBAL_ENABLE == 0 {
        // SAFETY: setting the global enable bit of IA32_APIC_BASE at the same
        // base only turns the local APIC on.
        let ok = unsafe { crate::msr::write_safe(APIC_BASE_MSR, msr | APIC_GLOBAL_ENABLE) };
        if !ok {
            return Err(IrqError::ApicBase);
        }
    }
    let base = msr & 0x000f_ffff_ffff_f000;
    let madt = crate::acpi::tables().and_then(|a| a.madt);
    if madt.is_none_or(|m| m.pcat_compat) {
        mask_pics();
    }
    let lapic = LocalApic::map(base).map_err(IrqError::Mmio)?;
    lapic.enable(SPURIOUS_VECTOR, ERROR_VECTOR);
    let mut ioapics: [Option<IoApic>; MAX_IOAPICS] = Default::default();
    match madt {
        Some(m) => {
            for (slot, info) in ioapics.iter_mut().zip(m.ioapics()) {
                *slot = Some(IoApic::map(info.address, info.gsi_base).map_err(IrqError::Mmio)?);
            }
        }
        None => {
            ioapics[0] = Some(IoApic::map(crate::acpi::DEFAULT_IOAPIC, 0).map_err(IrqError::Mmio)?);
        }
    }
    // APIC timer rate: count down for 10 ms of TSC time.
    lapic.start_masked(u32::MAX);
    time::spin(core::time::Duration::from_millis(10));
    let elapsed = u32::MAX - lapic.current();
    lapic.start_masked(0);
    Ok(Controller {
        apic_id: lapic.id(),
        lapic,
        ioapics,
        timer_hz: u64::from(elapsed) * 100,
    })
}

/// Sets up the interrupt controllers (once; later calls return the first
/// result).
pub fn init() -> Result<(), IrqError> {
    match CONTROLLER.call_once(setup) {
        Ok(_) => Ok(()),
        Err(e) => Err(*e),
    }
}

/// Whether [`init`] succeeded, so [`wait`] with a deadline sleeps on the
/// APIC timer instead of spinning.
pub(crate) fn has_timer() -> bool {
    controller().is_some()
}

/// This CPU's local APIC id (0 before [`init`]).
pub fn apic_id() -> u8 {
    controller().map_or(0, |c| c.apic_id)
}

/// The GSI an ISA IRQ arrives on, from the MADT's overrides.
pub fn isa_irq_gsi(irq: u8) -> u32 {
    crate::acpi::tables()
        .and_then(|a| a.madt)
        .map_or(u32::from(irq), |m| m.isa_irq_gsi(irq))
}

fn alloc_vector() -> Option<u8> {
    for (word, slot) in ALLOCATED.iter().enumerate() {
        let mut cur = slot.load(Ordering::Acquire);
        loop {
            let free = (!cur).trailing_zeros();
            let v = word * 64 + free as usize;
            if free >= 64 || v >= usize::from(DEVICE_VECTORS) {
                break;
            }
            match slot.compare_exchange(cur, cur | (1 << free), Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(FIRST_DEVICE_VECTOR + v as u8),
                Err(now) => cur = now,
            }
        }
    }
    None
}

fn free_vector(vector: u8) {
    if let Some(v) = vector.checked_sub(FIRST_DEVICE_VECTOR) {
        if let Some(slot) = ALLOCATED.get(usize::from(v / 64)) {
            slot.fetch_and(!(1 << (v % 64)), Ordering::AcqRel);
        }
    }
}

fn set_pending(vector: u8) {
    PENDING[usize::from(vector / 64)].fetch_or(1 << (vector % 64), Ordering::AcqRel);
}

fn take_pending(vector: u8) -> bool {
    let bit = 1 << (vector % 64);
    PENDING[usize::from(vector / 64)].fetch_and(!bit, Ordering::AcqRel) & bit != 0
}

/// How an [`Irq`] reaches the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// A message-signalled interrupt.
    Msi,
    /// An IOAPIC input.
    IoApic {
        /// The global system interrupt.
        gsi: u32,
        /// Level-triggered.
        level: bool,
        /// Which IOAPIC (index in the MADT order).
        apic: u8,
        /// Its input.
        pin: u8,
    },
}

/// An interrupt source with its own vector.
#[derive(Debug)]
pub struct Irq {
    vector: u8,
    route: Route,
}

impl Irq {
    /// Its vector.
    pub fn vector(&self) -> u8 {
        self.vector
    }

    /// How it is routed.
    pub fn route(&self) -> Route {
        self.route
    }

    /// Whether it fired since the last call (clears the flag).
    pub fn take(&self) -> bool {
        take_pending(self.vector)
    }

    /// Re-enables a level-triggered input after the device was serviced (the
    /// handler masked it); nothing for MSI and edge inputs.
    pub fn rearm(&self) {
        if let Route::IoApic {
            level: true,
            apic,
            pin,
            ..
        } = self.route
        {
            if let Some(io) = ioapic(apic) {
                io.set_masked(pin, false);
            }
        }
    }

    /// Masks the source and frees its vector.
    pub fn disable(self) {
        if let Route::IoApic { apic, pin, .. } = self.route {
            if let Some(io) = ioapic(apic) {
                io.set_masked(pin, true);
            }
        }
        LEVEL[usize::from(self.vector)].store(0, Ordering::Release);
        take_pending(self.vector);
        free_vector(self.vector);
    }
}

impl fmt::Display for Irq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.route {
            Route::Msi => write!(f, "MSI vector {:#x}", self.vector),
            Route::IoApic { gsi, level, .. } => write!(
                f,
                "IOAPIC GSI {gsi} ({}) vector {:#x}",
                if level { "level" } else { "edge" },
                self.vector
            ),
        }
    }
}

fn ioapic(index: u8) -> Option<&'static IoApic> {
    controller()?.ioapics.get(usize::from(index))?.as_ref()
}

/// Routes `gsi` to a new vector and unmasks it.
pub fn route_gsi(gsi: u32, level: bool, active_low: bool) -> Result<Irq, IrqError> {
    let c = controller().ok_or(IrqError::NotInitialised)?;
    let (index, io, pin) = c
        .ioapics
        .iter()
        .enumerate()
        .find_map(|(i, io)| {
            let io = io.as_ref()?;
            Some((i, io, io.pin_of(gsi)?))
        })
        .ok_or(IrqError::NoIoApic(gsi))?;
    let vector = alloc_vector().ok_or(IrqError::NoVectors)?;
    let apic = index as u8;
    if level {
        LEVEL[usize::from(vector)].store(
            ((u16::from(apic) << 8) | u16::from(pin)) + 1,
            Ordering::Release,
        );
    }
    io.set(
        pin,
        Redirection {
            vector,
            level,
            active_low,
            masked: false,
            dest: c.apic_id,
        },
    );
    Ok(Irq {
        vector,
        route: Route::IoApic {
            gsi,
            level,
            apic,
            pin,
        },
    })
}

/// A new vector for an MSI, and the `(address, data)` message to program into
/// the device (see [`crate::pci::enable_msi`]).
pub fn msi() -> Result<(Irq, u64, u16), IrqError> {
    let c = controller().ok_or(IrqError::NotInitialised)?;
    let vector = alloc_vector().ok_or(IrqError::NoVectors)?;
    let (address, data) = crate::pci::msi_message(c.apic_id, vector);
    Ok((
        Irq {
            vector,
            route: Route::Msi,
        },
        address,
        data,
    ))
}

/// Interrupts that arrived on vectors nobody owns (PIC spurious, APIC errors).
pub fn stray_count() -> usize {
    STRAY.load(Ordering::Relaxed)
}

fn any_pending() -> bool {
    PENDING.iter().any(|p| p.load(Ordering::Acquire) != 0)
}

/// Sleeps until an interrupt arrives or `deadline` passes (`None`: no
/// deadline), with interrupts enabled only while halted. Returns at once if an
/// interrupt is already pending. Without a working APIC it busy-waits until the
/// deadline (or returns at once if there is none).
pub fn wait(deadline: Option<Instant>) {
    if any_pending() {
        return;
    }
    let Some(c) = controller() else {
        if let Some(d) = deadline {
            while time::now() < d {
                core::hint::spin_loop();
            }
        }
        return;
    };
    if let Some(d) = deadline {
        let ns = d.as_nanos().saturating_sub(time::now().as_nanos());
        if ns == 0 {
            return;
        }
        let ticks = time::nanos_to_ticks(ns, c.timer_hz).clamp(1, u64::from(u32::MAX));
        c.lapic.oneshot(TIMER_VECTOR, ticks as u32);
    }
    // SAFETY: `sti; hlt` is atomic with respect to interrupts (the STI shadow),
    // so a pending interrupt wakes the HLT; the handlers save what they use and
    // touch only atomics and the interrupt controllers; interrupts are disabled
    // again before returning.
    unsafe { core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack)) };
    if deadline.is_some() {
        c.lapic.oneshot(TIMER_VECTOR, 0);
        take_pending(TIMER_VECTOR);
    }
}

/// Called by the stubs with interrupts off.
#[unsafe(no_mangle)]
extern "C" fn rt_irq_dispatch(vector: u64) {
    let Ok(vector) = u8::try_from(vector) else {
        return;
    };
    if vector == crate::xen::UPCALL_VECTOR {
        // Injected directly by the hypervisor: no APIC state, no EOI.
        crate::xen::upcall();
        return;
    }
    match vector {
        SPURIOUS_VECTOR => {}
        0x20..=0x2f => {
            // The PICs are masked: only their spurious IRQ 7/15 gets here.
            STRAY.fetch_add(1, Ordering::Relaxed);
        }
        _ => {
            if vector == ERROR_VECTOR {
                STRAY.fetch_add(1, Ordering::Relaxed);
            }
            let level = LEVEL[usize::from(vector)].load(Ordering::Acquire);
            if let Some(l) = level.checked_sub(1) {
                if let Some(io) = ioapic((l >> 8) as u8) {
                    io.set_masked(l as u8, true);
                }
            }
            set_pending(vector);
            if let Some(c) = controller() {
                c.lapic.eoi();
            }
        }
    }
}
