//! Local APIC (xAPIC) and IOAPIC registers.
//!
//! The redirection-entry encoding is plain logic with host tests; the register
//! access is the unikernel part, used by [`crate::irq`].

/// Where an IOAPIC input goes and how it is signalled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Redirection {
    /// Vector delivered to the CPU.
    pub vector: u8,
    /// Level-triggered (PCI INTx) rather than edge-triggered (ISA).
    pub level: bool,
    /// Active low.
    pub active_low: bool,
    /// Masked.
    pub masked: bool,
    /// Destination local APIC id (physical mode).
    pub dest: u8,
}

impl Redirection {
    /// The 64-bit redirection table entry (fixed delivery, physical destination).
    pub const fn encode(&self) -> u64 {
        (self.vector as u64)
            | ((self.active_low as u64) << 13)
            | ((self.level as u64) << 15)
            | ((self.masked as u64) << 16)
            | ((self.dest as u64) << 56)
    }

    /// Decodes an entry (delivery and destination modes are ignored).
    pub const fn decode(raw: u64) -> Redirection {
        Redirection {
            vector: raw as u8,
            active_low: raw & (1 << 13) != 0,
            level: raw & (1 << 15) != 0,
            masked: raw & (1 << 16) != 0,
            dest: (raw >> 56) as u8,
        }
    }
}

/// Number of redirection entries an IOAPIC version register announces.
pub const fn ioapic_pins(version: u32) -> u8 {
    (((version >> 16) & 0xff) as u8).saturating_add(1)
}

#[cfg(target_os = "none")]
pub use hw::{IoApic, LocalApic};

#[cfg(target_os = "none")]
mod hw {
    use super::{ioapic_pins, Redirection};
    use crate::mmio::{self, Mmio, MmioError};

    /// Local APIC register offsets.
    mod reg {
        pub const ID: u64 = 0x20;
        pub const TPR: u64 = 0x80;
        pub const EOI: u64 = 0xb0;
        pub const SVR: u64 = 0xf0;
        pub const LVT_TIMER: u64 = 0x320;
        pub const LVT_LINT0: u64 = 0x350;
        pub const LVT_ERROR: u64 = 0x370;
        pub const TIMER_INIT: u64 = 0x380;
        pub const TIMER_CURRENT: u64 = 0x390;
        pub const TIMER_DIVIDE: u64 = 0x3e0;
    }

    /// LVT mask bit.
    const LVT_MASKED: u32 = 1 << 16;

    /// The local APIC in xAPIC (MMIO) mode.
    pub struct LocalApic {
        mmio: Mmio,
    }

    impl LocalApic {
        /// Maps the local APIC at `base` (4 KiB).
        pub fn map(base: u64) -> Result<LocalApic, MmioError> {
            Ok(LocalApic {
                mmio: mmio::map(base, 4096)?,
            })
        }

        /// Software-enables it with `spurious` as the spurious vector, accepts
        /// every priority, masks LINT0 (the 8259's virtual wire) and the timer,
        /// and sends errors to `error_vector`.
        pub fn enable(&self, spurious: u8, error_vector: u8) {
            self.mmio.write32(reg::TPR, 0);
            self.mmio.write32(reg::LVT_LINT0, LVT_MASKED);
            self.mmio.write32(reg::LVT_TIMER, LVT_MASKED);
            self.mmio.write32(reg::LVT_ERROR, u32::from(error_vector));
            self.mmio.write32(reg::SVR, 0x100 | u32::from(spurious));
        }

        /// This CPU's APIC id.
        pub fn id(&self) -> u8 {
            (self.mmio.read32(reg::ID) >> 24) as u8
        }

        /// Signals end of interrupt.
        pub fn eoi(&self) {
            self.mmio.write32(reg::EOI, 0);
        }

        /// Starts the timer in one-shot mode (divide by 16) to fire `vector`
        /// after `count` timer ticks; 0 stops it.
        pub fn oneshot(&self, vector: u8, count: u32) {
            self.mmio.write32(reg::TIMER_DIVIDE, 0b0011);
            self.mmio.write32(reg::LVT_TIMER, u32::from(vector));
            self.mmio.write32(reg::TIMER_INIT, count);
        }

        /// Starts the timer masked from `count` (for calibration).
        pub fn start_masked(&self, count: u32) {
            self.mmio.write32(reg::TIMER_DIVIDE, 0b0011);
            self.mmio.write32(reg::LVT_TIMER, LVT_MASKED);
            self.mmio.write32(reg::TIMER_INIT, count);
        }

        /// The timer's current count.
        pub fn current(&self) -> u32 {
            self.mmio.read32(reg::TIMER_CURRENT)
        }
    }

    /// One IOAPIC.
    pub struct IoApic {
        mmio: Mmio,
        gsi_base: u32,
        pins: u8,
        lock: spin::Mutex<()>,
    }

    impl IoApic {
        /// Maps the IOAPIC at `base` serving GSIs from `gsi_base`, masks all
        /// its inputs.
        pub fn map(base: u64, gsi_base: u32) -> Result<IoApic, MmioError> {
            let mut io = IoApic {
                mmio: mmio::map(base, 0x20)?,
                gsi_base,
                pins: 0,
                lock: spin::Mutex::new(()),
            };
            let version = io.read(1);
            // An all-ones read means nothing answers there.
            io.pins = if version == u32::MAX {
                0
            } else {
                ioapic_pins(version).min(240)
            };
            for pin in 0..io.pins {
                io.set(pin, Redirection::decode(1 << 16));
            }
            Ok(io)
        }

        fn read(&self, index: u32) -> u32 {
            let _g = self.lock.lock();
            self.mmio.write32(0, index);
            self.mmio.read32(0x10)
        }

        fn write(&self, index: u32, value: u32) {
            let _g = self.lock.lock();
            self.mmio.write32(0, index);
            self.mmio.write32(0x10, value);
        }

        /// The input that carries `gsi`, if this IOAPIC serves it.
        pub fn pin_of(&self, gsi: u32) -> Option<u8> {
            let pin = gsi.checked_sub(self.gsi_base)?;
            u8::try_from(pin).ok().filter(|&p| p < self.pins)
        }

        /// First GSI it serves.
        pub fn gsi_base(&self) -> u32 {
            self.gsi_base
        }

        /// Number of inputs.
        pub fn pins(&self) -> u8 {
            self.pins
        }

        /// Programs input `pin` (ignored if out of range).
        pub fn set(&self, pin: u8, r: Redirection) {
            if pin >= self.pins {
                return;
            }
            let index = 0x10 + 2 * u32::from(pin);
            let raw = r.encode();
            // Mask first, so no half-written entry is live.
            self.write(index, (raw as u32) | (1 << 16));
            self.write(index + 1, (raw >> 32) as u32);
            self.write(index, raw as u32);
        }

        /// Masks or unmasks input `pin`, keeping the rest of its entry.
        pub fn set_masked(&self, pin: u8, masked: bool) {
            if pin >= self.pins {
                return;
            }
            let index = 0x10 + 2 * u32::from(pin);
            let low = self.read(index);
            let low = if masked {
                low | (1 << 16)
            } else {
                low & !(1 << 16)
            };
            self.write(index, low);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirection_round_trip() {
        let r = Redirection {
            vector: 0x31,
            level: true,
            active_low: false,
            masked: false,
            dest: 3,
        };
        assert_eq!(r.encode(), 0x0300_0000_0000_8031);
        assert_eq!(Redirection::decode(r.encode()), r);
        let m = Redirection {
            masked: true,
            active_low: true,
            ..r
        };
        assert_eq!(m.encode() & 0x3_ffff, 0x1_a031);
        assert_eq!(ioapic_pins(0x0017_0020), 24);
        assert_eq!(ioapic_pins(0x00ff_0000), 255);
    }
}
