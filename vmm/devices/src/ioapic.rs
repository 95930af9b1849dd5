//! One I/O APIC (82093AA-style register window, version 0x20) with 24
//! redirection entries, delivering to the single [`Lapic`].
//!
//! MMIO window (32-bit accesses only):
//!
//! | offset | register |
//! |--------|----------|
//! | 0x00 | IOREGSEL: index of the register IOWIN reaches (bits 7:0) |
//! | 0x10 | IOWIN |
//! | 0x40 | EOI (version 0x20): write a vector to end a level interrupt |
//!
//! Indirect registers: 0x00 ID (bits 27:24), 0x01 version
//! ([`VERSION`]: 24 entries, version 0x20), 0x02 arbitration ID, 0x10 +
//! 2·pin (low half) and 0x11 + 2·pin (high half) of each redirection entry.
//!
//! Delivery: a fixed or lowest-priority entry whose destination matches the
//! LAPIC sets the vector in its IRR. An edge entry delivers on each rising
//! edge of its line while unmasked (edges while masked are lost, as on
//! hardware). A level entry delivers while its line is asserted, unmasked and
//! remote IRR is clear, and sets remote IRR when the LAPIC accepts; an EOI
//! for the vector (LAPIC broadcast or the EOI register) clears remote IRR
//! and re-delivers if the line is still asserted. Switching an entry to edge
//! clears its remote IRR. NMI entries raise the LAPIC's NMI; SMI, INIT and
//! ExtINT entries deliver nothing.
//!
//! Lines are logical: `set_level(pin, true)` means "asserted". The polarity
//! bit is stored and read back but not applied, so a device model never has
//! to know whether the MADT declared its line active-low.

use crate::lapic::Lapic;
use crate::AccessError;

/// Guest-physical base of the IOAPIC window.
pub const IOAPIC_BASE: u64 = 0xFEC0_0000;
/// Size of the IOAPIC window.
pub const IOAPIC_SIZE: u64 = 0x1000;
/// Number of redirection entries (GSIs 0–23).
pub const IOAPIC_PINS: usize = 24;
/// The version register: max redirection entry 23, version 0x20.
pub const VERSION: u32 = 0x0017_0020;

/// IOREGSEL offset.
pub const IOREGSEL: u64 = 0x00;
/// IOWIN offset.
pub const IOWIN: u64 = 0x10;
/// EOI register offset.
pub const IOAPIC_EOI: u64 = 0x40;

/// Redirection entry: mask bit.
pub const RTE_MASKED: u64 = 1 << 16;
/// Redirection entry: level-triggered.
pub const RTE_LEVEL: u64 = 1 << 15;
/// Redirection entry: remote IRR (read-only).
pub const RTE_REMOTE_IRR: u64 = 1 << 14;
/// Redirection entry: logical destination mode.
pub const RTE_LOGICAL: u64 = 1 << 11;
/// Writable bits of a redirection entry: vector, delivery mode, destination
/// mode, polarity, trigger mode, mask, destination (bits 63:56).
const RTE_WRITABLE: u64 = 0xFF00_0000_0001_AFFF;

/// The I/O APIC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoApic {
    id: u8,
    sel: u8,
    rte: [u64; IOAPIC_PINS],
    /// Asserted lines, bit per pin.
    lines: u32,
}

impl IoApic {
    /// An IOAPIC with this ID (bits 3:0) in its reset state: every entry
    /// masked, every line low.
    pub fn new(id: u8) -> Self {
        IoApic {
            id: id & 0xF,
            sel: 0,
            rte: [RTE_MASKED; IOAPIC_PINS],
            lines: 0,
        }
    }

    /// The redirection entry of `pin`.
    pub fn entry(&self, pin: u32) -> Option<u64> {
        self.rte.get(usize::try_from(pin).ok()?).copied()
    }

    /// Whether line `pin` is asserted.
    pub fn line(&self, pin: u32) -> bool {
        pin < 32 && self.lines & (1u32 << pin) != 0
    }

    /// Drives line `pin` (a GSI). Pins beyond 23 do not exist: ignored.
    pub fn set_level(&mut self, pin: u32, level: bool, lapic: &mut Lapic) {
        let Ok(i) = usize::try_from(pin) else { return };
        if i >= IOAPIC_PINS {
            return;
        }
        let bit = 1u32 << pin;
        let was = self.lines & bit != 0;
        if level {
            self.lines |= bit;
        } else {
            self.lines &= !bit;
        }
        let Some(&rte) = self.rte.get(i) else { return };
        if rte & RTE_LEVEL != 0 {
            if level {
                self.service(i, lapic);
            }
        } else if level && !was {
            self.deliver(i, lapic);
        }
    }

    /// An EOI for `vector` (LAPIC broadcast, or a write to the EOI
    /// register): level entries with that vector drop remote IRR and
    /// re-deliver if still asserted.
    pub fn eoi(&mut self, vector: u8, lapic: &mut Lapic) {
        for i in 0..IOAPIC_PINS {
            let Some(rte) = self.rte.get_mut(i) else {
                continue;
            };
            if (*rte & 0xFF) as u8 == vector && *rte & RTE_REMOTE_IRR != 0 {
                *rte &= !RTE_REMOTE_IRR;
                self.service(i, lapic);
            }
        }
    }

    /// Guest MMIO read at `offset` in the window.
    pub fn mmio_read(&mut self, offset: u64, size: u8) -> Result<u32, AccessError> {
        if size != 4 || offset & 3 != 0 {
            return Err(AccessError::BadWidth);
        }
        match offset {
            IOREGSEL => Ok(u32::from(self.sel)),
            IOWIN => Ok(self.read_indirect()),
            _ => Err(AccessError::Reserved),
        }
    }

    /// Guest MMIO write at `offset` in the window.
    pub fn mmio_write(
        &mut self,
        offset: u64,
        size: u8,
        value: u32,
        lapic: &mut Lapic,
    ) -> Result<(), AccessError> {
        if size != 4 || offset & 3 != 0 {
            return Err(AccessError::BadWidth);
        }
        match offset {
            IOREGSEL => {
                self.sel = (value & 0xFF) as u8;
                Ok(())
            }
            IOWIN => self.write_indirect(value, lapic),
            IOAPIC_EOI => {
                self.eoi((value & 0xFF) as u8, lapic);
                Ok(())
            }
            _ => Err(AccessError::Reserved),
        }
    }

    fn read_indirect(&self) -> u32 {
        match self.sel {
            0x00 | 0x02 => u32::from(self.id) << 24,
            0x01 => VERSION,
            sel @ 0x10..=0x3F => {
                let (pin, high) = Self::rte_index(sel);
                let rte = self.rte.get(pin).copied().unwrap_or(0);
                if high {
                    (rte >> 32) as u32
                } else {
                    rte as u32
                }
            }
            _ => 0,
        }
    }

    fn write_indirect(&mut self, value: u32, lapic: &mut Lapic) -> Result<(), AccessError> {
        match self.sel {
            0x00 => {
                self.id = ((value >> 24) & 0xF) as u8;
                Ok(())
            }
            0x01 | 0x02 => Err(AccessError::ReadOnly),
            sel @ 0x10..=0x3F => {
                let (pin, high) = Self::rte_index(sel);
                let Some(rte) = self.rte.get_mut(pin) else {
                    return Err(AccessError::Reserved);
                };
                let new = if high {
                    (*rte & 0xFFFF_FFFF) | (u64::from(value) << 32)
                } else {
                    (*rte & !0xFFFF_FFFF) | u64::from(value)
                };
                *rte = (new & RTE_WRITABLE) | (*rte & RTE_REMOTE_IRR);
                if *rte & RTE_LEVEL == 0 {
                    *rte &= !RTE_REMOTE_IRR;
                }
                // Unmasking (or retargeting) an asserted level line delivers.
                self.service(pin, lapic);
                Ok(())
            }
            _ => Err(AccessError::Reserved),
        }
    }

    fn rte_index(sel: u8) -> (usize, bool) {
        let n = sel.wrapping_sub(0x10);
        (usize::from(n >> 1), n & 1 != 0)
    }

    /// Delivers a level entry if its line is asserted, it is unmasked and
    /// remote IRR is clear.
    fn service(&mut self, pin: usize, lapic: &mut Lapic) {
        let Some(&rte) = self.rte.get(pin) else {
            return;
        };
        let asserted = u32::try_from(pin).is_ok_and(|p| self.line(p));
        if rte & RTE_LEVEL != 0 && asserted && rte & RTE_REMOTE_IRR == 0 {
            self.deliver(pin, lapic);
        }
    }

    /// Sends entry `pin`'s interrupt message if the entry is unmasked.
    fn deliver(&mut self, pin: usize, lapic: &mut Lapic) {
        let Some(rte) = self.rte.get_mut(pin) else {
            return;
        };
        if *rte & RTE_MASKED != 0 {
            return;
        }
        let vector = (*rte & 0xFF) as u8;
        let level = *rte & RTE_LEVEL != 0;
        let dest = (*rte >> 56) as u32;
        if !lapic.matches_destination(dest, *rte & RTE_LOGICAL != 0, true) {
            return;
        }
        match (*rte >> 8) & 7 {
            0 | 1 => {
                // Remote IRR records that a LAPIC accepted a level interrupt.
                let accepted = lapic.accept(vector, level);
                *rte |= if accepted && level { RTE_REMOTE_IRR } else { 0 };
            }
            4 => lapic.accept_nmi(),
            // SMI, INIT, ExtINT (the PIC is masked) and reserved modes.
            _ => {}
        }
    }
}
