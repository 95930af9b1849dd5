//! The two 8259A PICs, present but masked: DESIGN.md's "The PIC is present
//! but masked". They accept the ICW1–ICW4 initialisation sequence and the
//! OCW1–OCW3 commands, read back their masks (Linux's `probe_8259A` writes a
//! mask and reads it back to decide the PIC exists), and never raise an
//! interrupt: their output (the LAPIC's LINT0, ExtINT) is not wired, so IRR,
//! ISR and the poll command always read "nothing pending".
//!
//! Ports: master 0x20 (command) / 0x21 (data), slave 0xA0 / 0xA1, and the
//! edge/level control registers (ELCR) at 0x4D0 / 0x4D1 (IRQs 0, 1, 2, 8
//! and 13 are always edge: those bits read 0).

/// The master's command port.
pub const PORT_MASTER: u16 = 0x20;
/// The slave's command port.
pub const PORT_SLAVE: u16 = 0xA0;
/// The first ELCR port.
pub const PORT_ELCR: u16 = 0x4D0;

/// Writable ELCR bits, master and slave.
const ELCR_MASK: [u8; 2] = [0xF8, 0xDE];

/// One 8259A.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Chip {
    imr: u8,
    icw1: u8,
    icw2: u8,
    icw3: u8,
    icw4: u8,
    /// The next data-port write is this ICW (2, 3 or 4); 0 when initialised.
    expect: u8,
    /// OCW3 selected ISR (not IRR) for command-port reads.
    read_isr: bool,
    /// OCW3 poll command pending.
    poll: bool,
    special_mask: bool,
}

impl Chip {
    fn read(&mut self, offset: u16) -> u8 {
        if offset & 1 != 0 {
            return self.imr;
        }
        // IRR, ISR, or a poll result: nothing is ever pending.
        self.poll = false;
        0
    }

    fn write(&mut self, offset: u16, value: u8) {
        if offset & 1 == 0 {
            if value & 0x10 != 0 {
                // ICW1: starts initialisation and clears the mask.
                *self = Chip {
                    icw1: value,
                    expect: 2,
                    ..Chip::default()
                };
            } else if value & 0x08 != 0 {
                // OCW3.
                if value & 0x02 != 0 {
                    self.read_isr = value & 0x01 != 0;
                }
                self.poll = value & 0x04 != 0;
                if value & 0x40 != 0 {
                    self.special_mask = value & 0x20 != 0;
                }
            }
            // OCW2 (EOI and rotation commands): nothing is in service.
            return;
        }
        let single = self.icw1 & 0x02 != 0;
        let need_icw4 = self.icw1 & 0x01 != 0;
        let after_icw3 = if need_icw4 { 4 } else { 0 };
        match self.expect {
            2 => {
                self.icw2 = value & 0xF8;
                self.expect = if single { after_icw3 } else { 3 };
            }
            3 => {
                self.icw3 = value;
                self.expect = after_icw3;
            }
            4 => {
                self.icw4 = value;
                self.expect = 0;
            }
            // OCW1: the interrupt mask.
            _ => self.imr = value,
        }
    }
}

/// The master and slave 8259A and the ELCR.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pic {
    chips: [Chip; 2],
    elcr: [u8; 2],
}

impl Pic {
    /// Both PICs uninitialised with masks 0 (nothing is wired anyway).
    pub fn new() -> Self {
        Self::default()
    }

    /// Guest read of chip `chip` (0 master, 1 slave) at `offset` (0 or 1).
    pub fn read(&mut self, chip: usize, offset: u16) -> u8 {
        self.chips.get_mut(chip).map_or(0xFF, |c| c.read(offset))
    }

    /// Guest write of chip `chip` at `offset`.
    pub fn write(&mut self, chip: usize, offset: u16, value: u8) {
        if let Some(c) = self.chips.get_mut(chip) {
            c.write(offset, value);
        }
    }

    /// Guest read of ELCR `index` (0 or 1).
    pub fn read_elcr(&self, index: usize) -> u8 {
        self.elcr.get(index).copied().unwrap_or(0xFF)
    }

    /// Guest write of ELCR `index`.
    pub fn write_elcr(&mut self, index: usize, value: u8) {
        if let (Some(r), Some(mask)) = (self.elcr.get_mut(index), ELCR_MASK.get(index)) {
            *r = value & mask;
        }
    }

    /// Chip `chip`'s interrupt mask.
    pub fn imr(&self, chip: usize) -> u8 {
        self.chips.get(chip).map_or(0xFF, |c| c.imr)
    }

    /// Chip `chip`'s vector base (ICW2), once programmed.
    pub fn vector_base(&self, chip: usize) -> u8 {
        self.chips.get(chip).map_or(0, |c| c.icw2)
    }

    /// Whether chip `chip` has completed its initialisation sequence.
    pub fn initialized(&self, chip: usize) -> bool {
        self.chips
            .get(chip)
            .is_some_and(|c| c.icw1 != 0 && c.expect == 0)
    }
}
