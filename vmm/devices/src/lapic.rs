//! The local APIC of the guest's single vCPU: xAPIC MMIO and x2APIC MSRs,
//! interrupt priority, and the APIC timer.
//!
//! # Registers
//!
//! | xAPIC offset | x2APIC MSR | register | notes |
//! |------|------|----------|-------|
//! | 0x020 | 0x802 | ID | read-only here; xAPIC reads `id << 24`, x2APIC the full id |
//! | 0x030 | 0x803 | version | [`VERSION`]: 0x14, max LVT 5, no EOI-broadcast suppression |
//! | 0x080 | 0x808 | TPR | bits 7:0 |
//! | 0x090 | — | APR | computed (x2APIC: #GP) |
//! | 0x0A0 | 0x80A | PPR | computed from TPR and the highest in-service vector |
//! | 0x0B0 | 0x80B | EOI | write-only; x2APIC: a non-zero value #GP |
//! | 0x0C0 | — | RRD | reads 0 |
//! | 0x0D0 | 0x80D | LDR | xAPIC bits 31:24 writable; x2APIC derived from the id, read-only |
//! | 0x0E0 | — | DFR | model bits 31:28 writable (x2APIC: #GP) |
//! | 0x0F0 | 0x80F | SVR | bits 9:0; clearing bit 8 masks every LVT |
//! | 0x100–0x170 | 0x810–0x817 | ISR | read-only |
//! | 0x180–0x1F0 | 0x818–0x81F | TMR | read-only |
//! | 0x200–0x270 | 0x820–0x827 | IRR | read-only |
//! | 0x280 | 0x828 | ESR | a write latches the errors seen since the last write (x2APIC: must write 0) |
//! | 0x300/0x310 | 0x830 | ICR | x2APIC: one 64-bit MSR, destination in 63:32 |
//! | 0x320–0x370 | 0x832–0x837 | LVT timer, thermal, perf, LINT0, LINT1, error | |
//! | 0x380 | 0x838 | timer initial count | ignored in TSC-deadline mode |
//! | 0x390 | 0x839 | timer current count | read-only |
//! | 0x3E0 | 0x83E | timer divide configuration | bits 3, 1:0 |
//! | — | 0x83F | SELF IPI | write-only, x2APIC only |
//!
//! Any other x2APIC MSR, a write to a read-only one, a read of a write-only
//! one, or set bits 63:32 (except in the ICR) is a #GP ([`X2ApicError`]).
//! xAPIC MMIO writes must be aligned 32-bit stores; reads may be 1, 2 or 4
//! bytes within a register's first dword.
//!
//! # IPIs
//!
//! There is one vCPU. Fixed and lowest-priority IPIs that reach it (self,
//! all-including-self, or a destination matching its ID or logical ID) set
//! IRR; NMIs to it set [`Lapic::take_nmi`]; everything else (INIT, SIPI, SMI,
//! IPIs to other CPUs) goes nowhere and is remembered for the VMM's log
//! ([`Lapic::take_dropped_ipi`]). The ICR's delivery-status bit always reads 0.
//!
//! # Timer
//!
//! The timer counts at [`LapicConfig::bus_hz`] divided by the divide
//! configuration, with `now` in nanoseconds. One-shot and periodic modes
//! count down from the initial count; the current count reads back exactly
//! `initial − floor(elapsed × rate)` (periodic: modulo the initial count).
//! A divide change while counting continues from the current count at the
//! new rate. TSC-deadline mode (if [`LapicConfig::tsc_deadline`]) arms from
//! [`Lapic::set_tsc_deadline`]. Any change of timer mode disarms the timer
//! and clears the initial count. A masked timer keeps counting but does not
//! interrupt. Late expiries are coalesced into one interrupt; periodic
//! deadlines are at least [`MIN_PERIOD_NS`] apart.
//!
//! # What the model never does
//!
//! It never delivers the spurious vector (the VMM injects only what
//! [`Lapic::pending_vector`] offers, at an interrupt window, so the race that
//! makes hardware deliver it cannot happen), never asserts LINT0/LINT1
//! (the PIC is masked and there is no NMI button), and never raises the
//! thermal or performance-counter LVTs.

use core::fmt;

use vcpu_policy::{ApicMode, MsrEffect};

use crate::time::{scale_ceil, scale_floor, MIN_PERIOD_NS, NANOS_PER_SEC};
use crate::{AccessError, ConfigError};

/// Guest-physical base of the xAPIC register page.
pub const LAPIC_BASE: u64 = 0xFEE0_0000;
/// Size of the xAPIC register page.
pub const LAPIC_SIZE: u64 = 0x1000;
/// The version register: integrated APIC version 0x14, six LVT entries
/// (max LVT 5), no directed-EOI support (bit 24 clear).
pub const VERSION: u32 = 0x0005_0014;

/// First x2APIC MSR.
pub const X2APIC_MSR_FIRST: u32 = 0x800;
/// Last x2APIC MSR.
pub const X2APIC_MSR_LAST: u32 = 0x8FF;

/// xAPIC MMIO register offsets (x2APIC MSR = 0x800 + offset / 16).
pub mod reg {
    /// ID.
    pub const ID: u32 = 0x020;
    /// Version.
    pub const VERSION: u32 = 0x030;
    /// Task priority.
    pub const TPR: u32 = 0x080;
    /// Arbitration priority.
    pub const APR: u32 = 0x090;
    /// Processor priority.
    pub const PPR: u32 = 0x0A0;
    /// End of interrupt.
    pub const EOI: u32 = 0x0B0;
    /// Remote read.
    pub const RRD: u32 = 0x0C0;
    /// Logical destination.
    pub const LDR: u32 = 0x0D0;
    /// Destination format.
    pub const DFR: u32 = 0x0E0;
    /// Spurious interrupt vector.
    pub const SVR: u32 = 0x0F0;
    /// In-service register, first of eight.
    pub const ISR: u32 = 0x100;
    /// Trigger mode register, first of eight.
    pub const TMR: u32 = 0x180;
    /// Interrupt request register, first of eight.
    pub const IRR: u32 = 0x200;
    /// Error status.
    pub const ESR: u32 = 0x280;
    /// LVT CMCI (absent: max LVT is 5).
    pub const LVT_CMCI: u32 = 0x2F0;
    /// Interrupt command, low half.
    pub const ICR_LO: u32 = 0x300;
    /// Interrupt command, high half (xAPIC only).
    pub const ICR_HI: u32 = 0x310;
    /// LVT timer.
    pub const LVT_TIMER: u32 = 0x320;
    /// LVT thermal sensor.
    pub const LVT_THERMAL: u32 = 0x330;
    /// LVT performance counters.
    pub const LVT_PERF: u32 = 0x340;
    /// LVT LINT0.
    pub const LVT_LINT0: u32 = 0x350;
    /// LVT LINT1.
    pub const LVT_LINT1: u32 = 0x360;
    /// LVT error.
    pub const LVT_ERROR: u32 = 0x370;
    /// Timer initial count.
    pub const TMICT: u32 = 0x380;
    /// Timer current count.
    pub const TMCCT: u32 = 0x390;
    /// Timer divide configuration.
    pub const TDCR: u32 = 0x3E0;
    /// Self IPI (x2APIC only, MSR 0x83F).
    pub const SELF_IPI: u32 = 0x3F0;
}

/// LVT index of the timer entry.
pub const LVT_TIMER: usize = 0;
/// LVT index of the thermal entry.
pub const LVT_THERMAL: usize = 1;
/// LVT index of the performance-counter entry.
pub const LVT_PERF: usize = 2;
/// LVT index of LINT0.
pub const LVT_LINT0: usize = 3;
/// LVT index of LINT1.
pub const LVT_LINT1: usize = 4;
/// LVT index of the error entry.
pub const LVT_ERROR: usize = 5;
/// Number of LVT entries.
pub const LVT_COUNT: usize = 6;

/// LVT mask bit.
pub const LVT_MASKED: u32 = 1 << 16;
/// SVR: APIC software enable.
pub const SVR_ENABLE: u32 = 1 << 8;
/// LVT timer mode field (bits 18:17).
pub const TIMER_MODE_MASK: u32 = 3 << 17;
/// LVT timer mode: one-shot.
pub const TIMER_ONESHOT: u32 = 0;
/// LVT timer mode: periodic.
pub const TIMER_PERIODIC: u32 = 1 << 17;
/// LVT timer mode: TSC deadline.
pub const TIMER_TSC_DEADLINE: u32 = 2 << 17;
/// ESR: send illegal vector.
pub const ESR_SEND_ILLEGAL: u32 = 1 << 5;
/// ESR: receive illegal vector.
pub const ESR_RECV_ILLEGAL: u32 = 1 << 6;

/// Writable ICR bits 31:0: vector, delivery mode, destination mode, level,
/// trigger mode, shorthand (delivery status is read-only and always 0).
const ICR_LO_MASK: u32 = 0x000C_CFFF;
/// Writable bits of the LVT entries, by index.
const LVT_WRITABLE: [u32; LVT_COUNT] = [
    LVT_MASKED | TIMER_MODE_MASK | 0xFF, // timer (TSC-deadline bit dropped if unsupported)
    LVT_MASKED | 0x7FF,                  // thermal: vector, delivery mode
    LVT_MASKED | 0x7FF,                  // perf
    LVT_MASKED | 0xA7FF,                 // LINT0: + polarity, trigger mode
    LVT_MASKED | 0xA7FF,                 // LINT1
    LVT_MASKED | 0xFF,                   // error
];

/// The LAPIC's fixed parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LapicConfig {
    /// The APIC ID (the MADT's).
    pub apic_id: u32,
    /// The timer's input clock in Hz, before the divide configuration.
    /// Linux calibrates it (or reads it from CPUID); default 1 GHz, which
    /// makes one count one nanosecond at divide-by-1.
    pub bus_hz: u64,
    /// Guest TSC frequency in Hz, for TSC-deadline mode.
    pub tsc_hz: u64,
    /// Whether the LVT timer accepts TSC-deadline mode (match CPUID.1:ECX.24).
    pub tsc_deadline: bool,
}

impl Default for LapicConfig {
    fn default() -> Self {
        LapicConfig {
            apic_id: 0,
            bus_hz: NANOS_PER_SEC,
            tsc_hz: 0,
            tsc_deadline: false,
        }
    }
}

/// Why an x2APIC MSR access faults: the VMM injects #GP(0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum X2ApicError {
    /// The LAPIC is not in x2APIC mode.
    NotX2Apic(u32),
    /// No register at this MSR.
    Reserved(u32),
    /// A write to a read-only register.
    ReadOnly(u32),
    /// A read of a write-only register (EOI, SELF IPI).
    WriteOnly(u32),
    /// A write with reserved bits set (bits 63:32; any bit of EOI and ESR).
    ReservedBits {
        /// The MSR.
        msr: u32,
        /// The value written.
        value: u64,
    },
}

impl fmt::Display for X2ApicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            X2ApicError::NotX2Apic(m) => write!(f, "x2APIC MSR {m:#x} outside x2APIC mode"),
            X2ApicError::Reserved(m) => write!(f, "x2APIC MSR {m:#x} does not exist"),
            X2ApicError::ReadOnly(m) => write!(f, "write to read-only x2APIC MSR {m:#x}"),
            X2ApicError::WriteOnly(m) => write!(f, "read of write-only x2APIC MSR {m:#x}"),
            X2ApicError::ReservedBits { msr, value } => {
                write!(
                    f,
                    "x2APIC MSR {msr:#x} write of {value:#x} sets reserved bits"
                )
            }
        }
    }
}

/// Why [`Lapic::acknowledge`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotPending(pub u8);

impl fmt::Display for NotPending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vector {:#x} is not pending in the IRR", self.0)
    }
}

/// A 256-bit vector bitmap (IRR, ISR, TMR).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct VecBits([u32; 8]);

impl VecBits {
    fn word_bit(v: u8) -> (usize, u32) {
        (usize::from(v >> 5), 1u32 << (v & 31))
    }

    fn set(&mut self, v: u8) {
        let (w, b) = Self::word_bit(v);
        if let Some(word) = self.0.get_mut(w) {
            *word |= b;
        }
    }

    fn clear(&mut self, v: u8) {
        let (w, b) = Self::word_bit(v);
        if let Some(word) = self.0.get_mut(w) {
            *word &= !b;
        }
    }

    fn get(&self, v: u8) -> bool {
        let (w, b) = Self::word_bit(v);
        self.0.get(w).is_some_and(|word| word & b != 0)
    }

    fn word(&self, i: usize) -> u32 {
        self.0.get(i).copied().unwrap_or(0)
    }

    fn highest(&self) -> Option<u8> {
        self.0
            .iter()
            .enumerate()
            .rev()
            .find(|(_, w)| **w != 0)
            .and_then(|(i, w)| {
                let bit = 31u32.saturating_sub(w.leading_zeros());
                u8::try_from(i.checked_mul(32)?.checked_add(bit as usize)?).ok()
            })
    }
}

/// The register behind an x2APIC index (offset / 16).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reg {
    Id,
    Version,
    Tpr,
    Apr,
    Ppr,
    Eoi,
    Rrd,
    Ldr,
    Dfr,
    Svr,
    Isr(usize),
    Tmr(usize),
    Irr(usize),
    Esr,
    Icr,
    IcrHi,
    Lvt(usize),
    InitialCount,
    CurrentCount,
    DivideConfig,
    SelfIpi,
}

impl Reg {
    fn decode(index: u32) -> Option<Reg> {
        let low = |base: u32| usize::try_from(index.wrapping_sub(base)).unwrap_or(0);
        Some(match index {
            0x02 => Reg::Id,
            0x03 => Reg::Version,
            0x08 => Reg::Tpr,
            0x09 => Reg::Apr,
            0x0A => Reg::Ppr,
            0x0B => Reg::Eoi,
            0x0C => Reg::Rrd,
            0x0D => Reg::Ldr,
            0x0E => Reg::Dfr,
            0x0F => Reg::Svr,
            0x10..=0x17 => Reg::Isr(low(0x10)),
            0x18..=0x1F => Reg::Tmr(low(0x18)),
            0x20..=0x27 => Reg::Irr(low(0x20)),
            0x28 => Reg::Esr,
            0x30 => Reg::Icr,
            0x31 => Reg::IcrHi,
            0x32..=0x37 => Reg::Lvt(low(0x32)),
            0x38 => Reg::InitialCount,
            0x39 => Reg::CurrentCount,
            0x3E => Reg::DivideConfig,
            0x3F => Reg::SelfIpi,
            _ => return None,
        })
    }
}

/// The timer's run state; times in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TimerRun {
    /// Not counting (current count 0, no deadline).
    Stopped,
    /// Counting down from `base` since `start`; in periodic mode reloading
    /// the initial count after each expiry. `next` is the next expiry.
    Counting { start: u64, base: u64, next: u64 },
    /// TSC-deadline mode, armed to expire at `at`.
    Deadline { at: u64 },
}

/// An IPI the model did not deliver (for the VMM's log).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DroppedIpi {
    /// The ICR value (x2APIC layout: destination in bits 63:32).
    pub icr: u64,
}

/// The local APIC of a single-vCPU guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lapic {
    cfg: LapicConfig,
    mode: ApicMode,
    tpr: u8,
    svr: u32,
    ldr: u32,
    dfr: u32,
    irr: VecBits,
    isr: VecBits,
    tmr: VecBits,
    /// ESR as last latched, and the errors seen since.
    esr: u32,
    esr_pending: u32,
    /// ICR in x2APIC layout (destination in bits 63:32; xAPIC's ICR high
    /// bits 31:24 are stored in bits 63:56).
    icr: u64,
    lvt: [u32; LVT_COUNT],
    initial: u32,
    tdcr: u32,
    run: TimerRun,
    nmi: bool,
    dropped_ipi: Option<DroppedIpi>,
}

impl Lapic {
    /// A LAPIC in its power-on state (xAPIC mode, software-disabled, every
    /// LVT masked, timer stopped).
    pub fn new(cfg: LapicConfig) -> Result<Self, ConfigError> {
        if cfg.bus_hz == 0 {
            return Err(ConfigError::ZeroBusFrequency);
        }
        if cfg.tsc_deadline && cfg.tsc_hz == 0 {
            return Err(ConfigError::ZeroTscFrequency);
        }
        Ok(Lapic {
            cfg,
            mode: ApicMode::XApic,
            tpr: 0,
            svr: 0xFF,
            ldr: 0,
            dfr: 0xFFFF_FFFF,
            irr: VecBits::default(),
            isr: VecBits::default(),
            tmr: VecBits::default(),
            esr: 0,
            esr_pending: 0,
            icr: 0,
            lvt: [LVT_MASKED; LVT_COUNT],
            initial: 0,
            tdcr: 0,
            run: TimerRun::Stopped,
            nmi: false,
            dropped_ipi: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LapicConfig {
        &self.cfg
    }

    /// xAPIC or x2APIC.
    pub fn mode(&self) -> ApicMode {
        self.mode
    }

    /// Switches mode, as IA32_APIC_BASE did (the MSR policy allows only
    /// xAPIC → x2APIC). Entering x2APIC mode makes the LDR the value derived
    /// from the APIC ID; other state is kept, as on hardware.
    pub fn set_mode(&mut self, mode: ApicMode) {
        if mode == self.mode {
            return;
        }
        self.mode = mode;
        match mode {
            ApicMode::X2Apic => {
                let id = self.cfg.apic_id;
                self.ldr = ((id >> 4) << 16) | (1u32 << (id & 0xF));
            }
            ApicMode::XApic => {
                self.ldr = 0;
                self.dfr = 0xFFFF_FFFF;
            }
        }
    }

    /// Applies what the MSR policy reported for an IA32_APIC_BASE or
    /// IA32_TSC_DEADLINE write; `guest_tsc` is the guest's TSC at `now`.
    /// Returns whether the effect was the LAPIC's.
    pub fn apply_msr_effect(&mut self, now: u64, guest_tsc: u64, effect: MsrEffect) -> bool {
        match effect {
            MsrEffect::ApicMode(mode) => {
                self.set_mode(mode);
                true
            }
            MsrEffect::TscDeadline(deadline) => {
                self.set_tsc_deadline(now, guest_tsc, deadline);
                true
            }
            _ => false,
        }
    }

    /// The guest wrote IA32_TSC_DEADLINE = `deadline` (guest TSC ticks) when
    /// its TSC read `guest_tsc`. Ignored unless the LVT timer is in
    /// TSC-deadline mode; 0 disarms; a deadline already passed fires now.
    pub fn set_tsc_deadline(&mut self, now: u64, guest_tsc: u64, deadline: u64) {
        self.advance(now);
        if self.timer_mode() != TIMER_TSC_DEADLINE {
            return;
        }
        if deadline == 0 {
            self.run = TimerRun::Stopped;
            return;
        }
        let delta = deadline.saturating_sub(guest_tsc);
        let at = now.saturating_add(scale_ceil(delta, NANOS_PER_SEC, self.cfg.tsc_hz));
        self.run = TimerRun::Deadline { at };
        self.advance(now);
    }

    /// The armed TSC deadline, in nanoseconds of `now`'s clock.
    pub fn tsc_deadline_ns(&self) -> Option<u64> {
        match self.run {
            TimerRun::Deadline { at } => Some(at),
            _ => None,
        }
    }

    /// Runs the timer up to `now`: an expiry sets the timer vector in IRR
    /// (once, however many periods passed).
    pub fn advance(&mut self, now: u64) {
        match self.run {
            TimerRun::Counting { start, base, next } if now >= next => {
                self.fire_timer();
                let initial = u64::from(self.initial);
                if self.timer_mode() == TIMER_PERIODIC && initial != 0 {
                    let elapsed = self.counts_since(start, now);
                    let periods = elapsed
                        .saturating_sub(base)
                        .checked_div(initial)
                        .unwrap_or(0)
                        .saturating_add(1);
                    let count = base.saturating_add(periods.saturating_mul(initial));
                    let due = start.saturating_add(self.ns_for_counts(count));
                    let next = due.max(now.saturating_add(MIN_PERIOD_NS));
                    self.run = TimerRun::Counting { start, base, next };
                } else {
                    self.run = TimerRun::Stopped;
                }
            }
            TimerRun::Deadline { at } if now >= at => {
                self.fire_timer();
                self.run = TimerRun::Stopped;
            }
            _ => {}
        }
    }

    /// When the timer next needs [`advance`](Self::advance): its next expiry,
    /// if it would interrupt (armed and unmasked).
    pub fn next_deadline(&self) -> Option<u64> {
        if self.lvt[LVT_TIMER] & LVT_MASKED != 0 {
            return None;
        }
        match self.run {
            TimerRun::Stopped => None,
            TimerRun::Counting { next, .. } => Some(next),
            TimerRun::Deadline { at } => Some(at),
        }
    }

    /// The timer's current count at `now`.
    pub fn current_count(&self, now: u64) -> u32 {
        let TimerRun::Counting { start, base, .. } = self.run else {
            return 0;
        };
        let elapsed = self.counts_since(start, now);
        let count = if elapsed < base {
            base.wrapping_sub(elapsed)
        } else if self.timer_mode() == TIMER_PERIODIC {
            let initial = u64::from(self.initial);
            match elapsed.wrapping_sub(base).checked_rem(initial) {
                Some(r) => initial.wrapping_sub(r),
                None => 0,
            }
        } else {
            0
        };
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// The highest vector that may be delivered now: the highest IRR vector
    /// whose priority class (bits 7:4) exceeds the PPR's.
    pub fn pending_vector(&self) -> Option<u8> {
        let v = self.irr.highest()?;
        ((v & 0xF0) > (self.ppr() & 0xF0)).then_some(v)
    }

    /// The VMM injected `vector`: it moves from IRR to ISR.
    pub fn acknowledge(&mut self, vector: u8) -> Result<(), NotPending> {
        if !self.irr.get(vector) {
            return Err(NotPending(vector));
        }
        self.irr.clear(vector);
        self.isr.set(vector);
        Ok(())
    }

    /// Takes a pending NMI (from an NMI IPI or an IOAPIC NMI entry).
    pub fn take_nmi(&mut self) -> bool {
        core::mem::take(&mut self.nmi)
    }

    /// Takes the last IPI that went nowhere (INIT, SIPI, SMI, another CPU).
    pub fn take_dropped_ipi(&mut self) -> Option<DroppedIpi> {
        self.dropped_ipi.take()
    }

    /// Processor priority: the TPR, or the class of the highest in-service
    /// vector if that is higher.
    pub fn ppr(&self) -> u8 {
        let isrv = self.isr.highest().unwrap_or(0);
        if (self.tpr & 0xF0) >= (isrv & 0xF0) {
            self.tpr
        } else {
            isrv & 0xF0
        }
    }

    /// Task priority.
    pub fn tpr(&self) -> u8 {
        self.tpr
    }

    /// Sets the task priority (a CR8 write sets `cr8 << 4`).
    pub fn set_tpr(&mut self, tpr: u8) {
        self.tpr = tpr;
    }

    /// The spurious-interrupt vector register's vector.
    pub fn spurious_vector(&self) -> u8 {
        (self.svr & 0xFF) as u8
    }

    /// Whether the APIC is software-enabled (SVR bit 8).
    pub fn software_enabled(&self) -> bool {
        self.svr & SVR_ENABLE != 0
    }

    /// An LVT entry.
    pub fn lvt(&self, index: usize) -> Option<u32> {
        self.lvt.get(index).copied()
    }

    /// Whether `vector` is set in IRR.
    pub fn irr(&self, vector: u8) -> bool {
        self.irr.get(vector)
    }

    /// Whether `vector` is set in ISR.
    pub fn isr(&self, vector: u8) -> bool {
        self.isr.get(vector)
    }

    /// Whether `vector` is set in TMR (accepted level-triggered).
    pub fn tmr(&self, vector: u8) -> bool {
        self.tmr.get(vector)
    }

    /// Whether an interrupt message with this destination reaches this
    /// LAPIC. `short` marks an 8-bit destination (IOAPIC, xAPIC ICR), where
    /// 0xFF is the broadcast even in x2APIC mode.
    pub fn matches_destination(&self, dest: u32, logical: bool, short: bool) -> bool {
        let x2 = self.mode == ApicMode::X2Apic;
        if (short && dest == 0xFF) || (x2 && dest == u32::MAX) {
            return true;
        }
        if !logical {
            return if x2 {
                dest == self.cfg.apic_id
            } else {
                dest == self.cfg.apic_id & 0xFF
            };
        }
        if x2 {
            return (dest >> 16) == (self.ldr >> 16) && (dest & self.ldr & 0xFFFF) != 0;
        }
        let logical_id = self.ldr >> 24;
        if self.dfr >> 28 == 0xF {
            // Flat model: a bit mask of up to 8 APICs.
            logical_id & dest & 0xFF != 0
        } else {
            // Cluster model: cluster in bits 7:4 (0xF: all), mask in 3:0.
            let cluster = (dest >> 4) & 0xF;
            (cluster == 0xF || cluster == logical_id >> 4) && (dest & logical_id & 0xF) != 0
        }
    }

    /// A fixed or lowest-priority interrupt message for `vector` reached this
    /// LAPIC (from the IOAPIC or an IPI). Returns whether it was accepted
    /// (a software-disabled APIC drops it; vectors 0–15 are illegal).
    pub fn accept(&mut self, vector: u8, level: bool) -> bool {
        if !self.software_enabled() {
            return false;
        }
        if vector < 16 {
            self.error(ESR_RECV_ILLEGAL);
            return false;
        }
        self.irr.set(vector);
        if level {
            self.tmr.set(vector);
        } else {
            self.tmr.clear(vector);
        }
        true
    }

    /// An NMI message reached this LAPIC.
    pub fn accept_nmi(&mut self) {
        self.nmi = true;
    }

    /// EOI: clears the highest in-service vector; returns it if it was
    /// level-triggered, for the broadcast to the IOAPIC.
    pub fn eoi(&mut self) -> Option<u8> {
        let v = self.isr.highest()?;
        self.isr.clear(v);
        self.tmr.get(v).then_some(v)
    }

    // ---- xAPIC MMIO ----

    /// Guest read of `size` bytes at `offset` in the xAPIC page.
    pub fn mmio_read(&mut self, now: u64, offset: u64, size: u8) -> Result<u32, AccessError> {
        self.advance(now);
        if self.mode != ApicMode::XApic {
            return Err(AccessError::Unassigned);
        }
        let within = offset & 0xF;
        if !matches!(size, 1 | 2 | 4)
            || offset >= LAPIC_SIZE
            || within.saturating_add(u64::from(size)) > 4
        {
            return Err(AccessError::BadWidth);
        }
        let index = u32::try_from(offset >> 4).unwrap_or(u32::MAX);
        let reg = Reg::decode(index).ok_or(AccessError::Reserved)?;
        let value = match reg {
            Reg::Id => self.cfg.apic_id << 24,
            Reg::Apr => u32::from(self.apr()),
            Reg::Eoi | Reg::Rrd => 0,
            Reg::Icr => self.icr as u32,
            Reg::IcrHi => ((self.icr >> 32) as u32) & 0xFF00_0000,
            Reg::SelfIpi => return Err(AccessError::Reserved),
            other => self.read_common(other, now),
        };
        let shift = u32::try_from(within.saturating_mul(8)).unwrap_or(0);
        let mask = u32::try_from(crate::all_ones(size)).unwrap_or(u32::MAX);
        Ok(value.checked_shr(shift).unwrap_or(0) & mask)
    }

    /// Guest write at `offset` in the xAPIC page. Only aligned 32-bit writes
    /// take effect. Returns a level-triggered EOI's vector for the IOAPIC.
    pub fn mmio_write(
        &mut self,
        now: u64,
        offset: u64,
        size: u8,
        value: u32,
    ) -> Result<Option<u8>, AccessError> {
        self.advance(now);
        if self.mode != ApicMode::XApic {
            return Err(AccessError::Unassigned);
        }
        if size != 4 || offset & 0xF != 0 || offset >= LAPIC_SIZE {
            return Err(AccessError::BadWidth);
        }
        let index = u32::try_from(offset >> 4).unwrap_or(u32::MAX);
        let reg = Reg::decode(index).ok_or(AccessError::Reserved)?;
        let mut eoi = None;
        match reg {
            Reg::Id
            | Reg::Version
            | Reg::Apr
            | Reg::Ppr
            | Reg::Rrd
            | Reg::Isr(_)
            | Reg::Tmr(_)
            | Reg::Irr(_)
            | Reg::CurrentCount => return Err(AccessError::ReadOnly),
            Reg::SelfIpi => return Err(AccessError::Reserved),
            Reg::Eoi => eoi = self.eoi(),
            Reg::Ldr => self.ldr = value & 0xFF00_0000,
            Reg::Dfr => self.dfr = value | 0x0FFF_FFFF,
            Reg::Esr => self.latch_esr(),
            Reg::Icr => {
                self.icr = (self.icr & 0xFFFF_FFFF_0000_0000) | u64::from(value & ICR_LO_MASK);
                self.send_ipi(self.icr >> 56 << 32 | (self.icr & 0xFFFF_FFFF), false);
            }
            Reg::IcrHi => {
                self.icr = (self.icr & 0xFFFF_FFFF) | (u64::from(value & 0xFF00_0000) << 32);
            }
            other => self.write_common(other, now, value),
        }
        Ok(eoi)
    }

    // ---- x2APIC MSRs ----

    /// Guest RDMSR of an x2APIC register.
    pub fn msr_read(&mut self, now: u64, msr: u32) -> Result<u64, X2ApicError> {
        self.advance(now);
        let reg = self.x2apic_reg(msr)?;
        Ok(match reg {
            Reg::Id => u64::from(self.cfg.apic_id),
            Reg::Icr => self.icr,
            Reg::Eoi | Reg::SelfIpi => return Err(X2ApicError::WriteOnly(msr)),
            Reg::Apr | Reg::Rrd | Reg::Dfr | Reg::IcrHi => return Err(X2ApicError::Reserved(msr)),
            other => u64::from(self.read_common(other, now)),
        })
    }

    /// Guest WRMSR of an x2APIC register. Returns a level-triggered EOI's
    /// vector for the IOAPIC.
    pub fn msr_write(&mut self, now: u64, msr: u32, value: u64) -> Result<Option<u8>, X2ApicError> {
        self.advance(now);
        let reg = self.x2apic_reg(msr)?;
        let bad_bits = X2ApicError::ReservedBits { msr, value };
        if reg != Reg::Icr && value >> 32 != 0 {
            return Err(bad_bits);
        }
        let low = value as u32;
        let mut eoi = None;
        match reg {
            Reg::Id
            | Reg::Version
            | Reg::Ppr
            | Reg::Ldr
            | Reg::Isr(_)
            | Reg::Tmr(_)
            | Reg::Irr(_)
            | Reg::CurrentCount => return Err(X2ApicError::ReadOnly(msr)),
            Reg::Apr | Reg::Rrd | Reg::Dfr | Reg::IcrHi => return Err(X2ApicError::Reserved(msr)),
            Reg::Eoi if value != 0 => return Err(bad_bits),
            Reg::Eoi => eoi = self.eoi(),
            Reg::Esr if value != 0 => return Err(bad_bits),
            Reg::Esr => self.latch_esr(),
            Reg::Icr => {
                self.icr = value & (0xFFFF_FFFF_0000_0000 | u64::from(ICR_LO_MASK));
                self.send_ipi(self.icr, true);
            }
            Reg::SelfIpi => {
                let vector = (low & 0xFF) as u8;
                if vector < 16 {
                    self.error(ESR_SEND_ILLEGAL);
                } else {
                    self.accept(vector, false);
                }
            }
            other => self.write_common(other, now, low),
        }
        Ok(eoi)
    }

    fn x2apic_reg(&self, msr: u32) -> Result<Reg, X2ApicError> {
        if !(X2APIC_MSR_FIRST..=X2APIC_MSR_LAST).contains(&msr) {
            return Err(X2ApicError::Reserved(msr));
        }
        if self.mode != ApicMode::X2Apic {
            return Err(X2ApicError::NotX2Apic(msr));
        }
        Reg::decode(msr.wrapping_sub(X2APIC_MSR_FIRST)).ok_or(X2ApicError::Reserved(msr))
    }

    // ---- shared register logic ----

    fn read_common(&self, reg: Reg, now: u64) -> u32 {
        match reg {
            Reg::Version => VERSION,
            Reg::Tpr => u32::from(self.tpr),
            Reg::Ppr => u32::from(self.ppr()),
            Reg::Ldr => self.ldr,
            Reg::Dfr => self.dfr,
            Reg::Svr => self.svr,
            Reg::Isr(i) => self.isr.word(i),
            Reg::Tmr(i) => self.tmr.word(i),
            Reg::Irr(i) => self.irr.word(i),
            Reg::Esr => self.esr,
            Reg::Lvt(i) => self.lvt.get(i).copied().unwrap_or(0),
            Reg::InitialCount => self.initial,
            Reg::CurrentCount => self.current_count(now),
            Reg::DivideConfig => self.tdcr,
            // Mode-specific registers are handled by the callers.
            Reg::Id | Reg::Apr | Reg::Eoi | Reg::Rrd | Reg::Icr | Reg::IcrHi | Reg::SelfIpi => 0,
        }
    }

    fn write_common(&mut self, reg: Reg, now: u64, value: u32) {
        match reg {
            Reg::Tpr => self.tpr = (value & 0xFF) as u8,
            Reg::Svr => {
                self.svr = value & 0x3FF;
                if !self.software_enabled() {
                    for lvt in &mut self.lvt {
                        *lvt |= LVT_MASKED;
                    }
                }
            }
            Reg::Lvt(i) => self.write_lvt(i, now, value),
            Reg::InitialCount if self.timer_mode() != TIMER_TSC_DEADLINE => {
                self.initial = value;
                self.run = self.counting_from(now, u64::from(value));
            }
            Reg::DivideConfig => {
                let current = self.current_count(now);
                let counting = matches!(self.run, TimerRun::Counting { .. });
                self.tdcr = value & 0xB;
                if counting {
                    self.run = self.counting_from(now, u64::from(current));
                }
            }
            // Registers with mode-specific or no write behaviour are handled
            // (or refused) by the callers.
            _ => {}
        }
    }

    fn write_lvt(&mut self, i: usize, now: u64, value: u32) {
        let Some(&writable) = LVT_WRITABLE.get(i) else {
            return;
        };
        let mut v = value & writable;
        if i == LVT_TIMER && !self.cfg.tsc_deadline {
            v &= !TIMER_TSC_DEADLINE;
        }
        if !self.software_enabled() {
            v |= LVT_MASKED;
        }
        let old_mode = self.timer_mode();
        let Some(slot) = self.lvt.get_mut(i) else {
            return;
        };
        // Remote IRR (bit 14) and delivery status (bit 12) are read-only.
        *slot = v | (*slot & !writable & 0x4000);
        if i == LVT_TIMER && self.timer_mode() != old_mode {
            self.initial = 0;
            self.run = TimerRun::Stopped;
        }
        // The timer keeps its state across a mask change; bring it up to date.
        self.advance(now);
    }

    fn timer_mode(&self) -> u32 {
        self.lvt[LVT_TIMER] & TIMER_MODE_MASK
    }

    fn divisor(&self) -> u64 {
        let code = ((self.tdcr >> 1) & 4) | (self.tdcr & 3);
        1u64 << (code.wrapping_add(1) & 7)
    }

    /// Counts elapsed at the current divide between `start` and `now`.
    fn counts_since(&self, start: u64, now: u64) -> u64 {
        let per = self.divisor().saturating_mul(NANOS_PER_SEC);
        scale_floor(now.saturating_sub(start), self.cfg.bus_hz, per)
    }

    /// Nanoseconds until `counts` counts have elapsed at the current divide.
    fn ns_for_counts(&self, counts: u64) -> u64 {
        let per = self.divisor().saturating_mul(NANOS_PER_SEC);
        scale_ceil(counts, per, self.cfg.bus_hz)
    }

    fn counting_from(&self, now: u64, base: u64) -> TimerRun {
        if base == 0 {
            TimerRun::Stopped
        } else {
            TimerRun::Counting {
                start: now,
                base,
                next: now.saturating_add(self.ns_for_counts(base)),
            }
        }
    }

    fn fire_timer(&mut self) {
        let lvt = self.lvt[LVT_TIMER];
        if lvt & LVT_MASKED == 0 {
            self.accept((lvt & 0xFF) as u8, false);
        }
    }

    /// Records an APIC error and raises the error LVT.
    fn error(&mut self, bits: u32) {
        self.esr_pending |= bits;
        let lvt = self.lvt[LVT_ERROR];
        let vector = (lvt & 0xFF) as u8;
        if lvt & LVT_MASKED == 0 && self.software_enabled() {
            if vector < 16 {
                // No recursion: an illegal error vector is only recorded.
                self.esr_pending |= ESR_RECV_ILLEGAL;
            } else {
                self.irr.set(vector);
                self.tmr.clear(vector);
            }
        }
    }

    fn latch_esr(&mut self) {
        self.esr = core::mem::take(&mut self.esr_pending);
    }

    fn apr(&self) -> u8 {
        let tpr = self.tpr & 0xF0;
        let irrv = self.irr.highest().unwrap_or(0) & 0xF0;
        let isrv = self.isr.highest().unwrap_or(0) & 0xF0;
        if tpr >= irrv && tpr > isrv {
            self.tpr
        } else {
            tpr.max(irrv).max(isrv)
        }
    }

    /// Sends an IPI; `icr` in x2APIC layout, `x2` whether the destination
    /// is 32-bit.
    fn send_ipi(&mut self, icr: u64, x2: bool) {
        let vector = (icr & 0xFF) as u8;
        let delivery = (icr >> 8) & 7;
        let logical = icr & (1 << 11) != 0;
        let dest = (icr >> 32) as u32;
        let to_self = match (icr >> 18) & 3 {
            0 => self.matches_destination(dest, logical, !x2),
            1 | 2 => true,
            _ => false,
        };
        match delivery {
            0 | 1 if to_self => {
                if vector < 16 {
                    self.error(ESR_SEND_ILLEGAL);
                } else {
                    self.accept(vector, false);
                }
            }
            4 if to_self => self.nmi = true,
            _ => self.dropped_ipi = Some(DroppedIpi { icr }),
        }
    }
}
