//! The whole emulated platform, wired together, behind one dispatch.
//!
//! | ports | device |
//! |-------|--------|
//! | 0x20–0x21, 0xA0–0xA1 | PICs (masked) |
//! | 0x40–0x43 | PIT |
//! | 0x61 | PIT gate 2 / OUT2, refresh toggle |
//! | 0x70–0x71 | RTC/CMOS |
//! | 0x80 | POST code: writes kept, reads return the last one (Linux's `outb_p` delay writes here) |
//! | 0x4D0–0x4D1 | ELCR |
//! | 0xCF8 (dword), 0xCFA–0xCFB, 0xCFC–0xCFF | PCI configuration mechanism #1 |
//! | 0xCF9 (byte) | reset control ([`PmConfig::reset`]) |
//! | 0x600–0x603, 0x604–0x605, 0x608–0x60B | PM1a event, PM1a control, PM timer ([`PmConfig`]) |
//!
//! | MMIO | device |
//! |------|--------|
//! | 0xFEE0_0000, 4 KiB | LAPIC (xAPIC mode only; in x2APIC mode the page is unassigned) |
//! | 0xFEC0_0000, 4 KiB | IOAPIC |
//!
//! Interrupt wiring (the MADT must say the same): PIT OUT0 → GSI 2 (the
//! usual ISA IRQ 0 → GSI 2 override), RTC → GSI 8, SCI → GSI 9
//! ([`PmConfig::sci_gsi`]); other devices (COM1 on GSI 4) drive lines with
//! [`Platform::set_irq`].
//!
//! Port accesses to the byte-wide devices (PIC, PIT, RTC, POST, reset) of 2
//! or 4 bytes are split into byte accesses at consecutive ports, as the ISA
//! bus does; each byte is routed on its own and a byte nobody decodes reads
//! 0xFF. PCI and ACPI registers take their wide accesses whole. An access
//! whose first port nobody decodes is [`AccessError::Unassigned`].

use vcpu_policy::{ApicMode, MsrEffect};

use crate::bus::{MmioBus, PortBus};
use crate::ioapic::{IoApic, IOAPIC_BASE, IOAPIC_PINS, IOAPIC_SIZE};
use crate::irq::Interrupts;
use crate::lapic::{Lapic, LapicConfig, NotPending, X2ApicError, LAPIC_BASE, LAPIC_SIZE};
use crate::pci::{NoPciDevices, PciDevices, PciHost};
use crate::pic::Pic;
use crate::pit::Pit;
use crate::pm::{AcpiPm, PmBlock, PmConfig, PowerRequest};
use crate::rtc::{Rtc, RtcConfig};
use crate::{AccessError, ConfigError};

/// The POST code port.
pub const PORT_POST: u16 = 0x80;

/// The platform's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlatformConfig {
    /// The LAPIC.
    pub lapic: LapicConfig,
    /// The IOAPIC's ID (the MADT's).
    pub ioapic_id: u8,
    /// The RTC's starting time and century register.
    pub rtc: RtcConfig,
    /// The ACPI registers' ports and SCI.
    pub pm: PmConfig,
    /// The GSI of the PIT's IRQ 0.
    pub pit_gsi: u32,
    /// The GSI of the RTC's IRQ 8.
    pub rtc_gsi: u32,
}

impl Default for PlatformConfig {
    fn default() -> Self {
        PlatformConfig {
            lapic: LapicConfig::default(),
            ioapic_id: 0,
            rtc: RtcConfig::default(),
            pm: PmConfig::default(),
            pit_gsi: 2,
            rtc_gsi: 8,
        }
    }
}

/// A port range's device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortDevice {
    /// PIC 0 (master) or 1 (slave).
    Pic(u8),
    /// The ELCR pair.
    Elcr,
    /// PIT channels and control.
    Pit,
    /// Port 0x61.
    Port61,
    /// RTC index and data.
    Rtc,
    /// POST code.
    Post,
    /// 0xCF8.
    PciAddress,
    /// 0xCFA–0xCFB.
    PciLegacy,
    /// 0xCFC–0xCFF.
    PciData,
    /// An ACPI register block.
    Pm(PmBlock),
}

/// An MMIO range's device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioDevice {
    /// The xAPIC page.
    Lapic,
    /// The IOAPIC window.
    IoApic,
}

/// Every platform device of one VM.
#[derive(Clone, Debug)]
pub struct Platform<D: PciDevices = NoPciDevices> {
    /// IOAPIC and LAPIC.
    pub irq: Interrupts,
    /// The PIT.
    pub pit: Pit,
    /// The RTC.
    pub rtc: Rtc,
    /// The PICs.
    pub pic: Pic,
    /// The PCI host bridge.
    pub pci: PciHost<D>,
    /// The ACPI registers.
    pub pm: AcpiPm,
    post: u8,
    pit_gsi: u32,
    rtc_gsi: u32,
    ports: PortBus<PortDevice, 20>,
    mmio: MmioBus<MmioDevice, 2>,
}

impl Platform<NoPciDevices> {
    /// A platform with only the host bridge on PCI.
    pub fn without_pci_devices(cfg: PlatformConfig, now: u64) -> Result<Self, ConfigError> {
        Platform::new(cfg, NoPciDevices, now)
    }
}

impl<D: PciDevices> Platform<D> {
    /// Builds the platform at time `now`, with `devices` behind the PCI
    /// host bridge.
    pub fn new(cfg: PlatformConfig, devices: D, now: u64) -> Result<Self, ConfigError> {
        for gsi in [cfg.pit_gsi, cfg.rtc_gsi, cfg.pm.sci_gsi] {
            if usize::try_from(gsi).map_or(true, |g| g >= IOAPIC_PINS) {
                return Err(ConfigError::BadGsi(gsi));
            }
        }
        let mut ports = PortBus::new();
        let map = [
            (0x20, 2, PortDevice::Pic(0)),
            (0xA0, 2, PortDevice::Pic(1)),
            (0x4D0, 2, PortDevice::Elcr),
            (0x40, 4, PortDevice::Pit),
            (0x61, 1, PortDevice::Port61),
            (0x70, 2, PortDevice::Rtc),
            (PORT_POST, 1, PortDevice::Post),
            (0xCF8, 1, PortDevice::PciAddress),
            (0xCFA, 2, PortDevice::PciLegacy),
            (0xCFC, 4, PortDevice::PciData),
            (cfg.pm.pm1a_evt, 4, PortDevice::Pm(PmBlock::Event)),
            (cfg.pm.pm1a_cnt, 2, PortDevice::Pm(PmBlock::Control)),
            (cfg.pm.pm_tmr, 4, PortDevice::Pm(PmBlock::Timer)),
            (cfg.pm.reset, 1, PortDevice::Pm(PmBlock::Reset)),
        ];
        for (base, len, dev) in map {
            ports
                .insert(base, len, dev)
                .map_err(|_| ConfigError::PortOverlap(base))?;
        }
        let mut mmio = MmioBus::new();
        for (base, len, dev) in [
            (LAPIC_BASE, LAPIC_SIZE, MmioDevice::Lapic),
            (IOAPIC_BASE, IOAPIC_SIZE, MmioDevice::IoApic),
        ] {
            mmio.insert(base, len, dev)
                .map_err(|_| ConfigError::MmioOverlap(base))?;
        }
        Ok(Platform {
            irq: Interrupts::new(Lapic::new(cfg.lapic)?, IoApic::new(cfg.ioapic_id)),
            pit: Pit::new(),
            rtc: Rtc::new(cfg.rtc, now),
            pic: Pic::new(),
            pci: PciHost::new(devices),
            pm: AcpiPm::new(cfg.pm),
            post: 0,
            pit_gsi: cfg.pit_gsi,
            rtc_gsi: cfg.rtc_gsi,
            ports,
            mmio,
        })
    }

    /// Which device decodes `port`, if any (and the offset into its range).
    pub fn port_device(&self, port: u16) -> Option<(PortDevice, u16)> {
        self.ports.route(port)
    }

    /// Which device decodes `gpa`, if any (and the offset into its range).
    /// The LAPIC page counts only in xAPIC mode.
    pub fn mmio_device(&self, gpa: u64) -> Option<(MmioDevice, u64)> {
        self.mmio.route(gpa).filter(|(dev, _)| {
            *dev != MmioDevice::Lapic || self.irq.lapic.mode() == ApicMode::XApic
        })
    }

    /// The last POST code written to port 0x80.
    pub fn post_code(&self) -> u8 {
        self.post
    }

    /// Guest `in` of `size` (1, 2 or 4) bytes from `port`.
    pub fn port_read(&mut self, now: u64, port: u16, size: u8) -> Result<u32, AccessError> {
        if !matches!(size, 1 | 2 | 4) {
            return Err(AccessError::BadWidth);
        }
        self.advance(now);
        let (dev, off) = self.ports.route(port).ok_or(AccessError::Unassigned)?;
        let result = if wide(dev, off, size) {
            self.read_dev(now, dev, off, size)
        } else {
            let mut value = 0u32;
            for i in 0..size {
                let byte = match self.ports.route(port.wrapping_add(u16::from(i))) {
                    Some((d, o)) => self.read_dev(now, d, o, 1).unwrap_or(0xFF),
                    None => 0xFF,
                };
                value |= (byte & 0xFF).checked_shl(u32::from(i) * 8).unwrap_or(0);
            }
            Ok(value)
        };
        self.sync_lines();
        result
    }

    /// Guest `out` of `size` (1, 2 or 4) bytes to `port`.
    pub fn port_write(
        &mut self,
        now: u64,
        port: u16,
        size: u8,
        value: u32,
    ) -> Result<(), AccessError> {
        if !matches!(size, 1 | 2 | 4) {
            return Err(AccessError::BadWidth);
        }
        self.advance(now);
        let (dev, off) = self.ports.route(port).ok_or(AccessError::Unassigned)?;
        let result = if wide(dev, off, size) {
            self.write_dev(now, dev, off, size, value)
        } else {
            for i in 0..size {
                if let Some((d, o)) = self.ports.route(port.wrapping_add(u16::from(i))) {
                    let byte = value.checked_shr(u32::from(i) * 8).unwrap_or(0) & 0xFF;
                    // A byte a device refuses is dropped, as on the bus.
                    let _ = self.write_dev(now, d, o, 1, byte);
                }
            }
            Ok(())
        };
        self.sync_lines();
        result
    }

    /// Guest read of `size` bytes at guest-physical `gpa`.
    pub fn mmio_read(&mut self, now: u64, gpa: u64, size: u8) -> Result<u64, AccessError> {
        self.advance(now);
        let (dev, off) = self.mmio_device(gpa).ok_or(AccessError::Unassigned)?;
        let value = match dev {
            MmioDevice::Lapic => self.irq.lapic_mmio_read(now, off, size),
            MmioDevice::IoApic => self.irq.ioapic_mmio_read(off, size),
        }?;
        Ok(u64::from(value))
    }

    /// Guest write of `size` bytes at guest-physical `gpa`.
    pub fn mmio_write(
        &mut self,
        now: u64,
        gpa: u64,
        size: u8,
        value: u64,
    ) -> Result<(), AccessError> {
        self.advance(now);
        let (dev, off) = self.mmio_device(gpa).ok_or(AccessError::Unassigned)?;
        if size > 4 {
            return Err(AccessError::BadWidth);
        }
        let value = value as u32;
        let result = match dev {
            MmioDevice::Lapic => self.irq.lapic_mmio_write(now, off, size, value),
            MmioDevice::IoApic => self.irq.ioapic_mmio_write(off, size, value),
        };
        self.sync_lines();
        result
    }

    /// Guest RDMSR of an x2APIC MSR (0x800–0x8FF); an error is a #GP.
    pub fn msr_read(&mut self, now: u64, msr: u32) -> Result<u64, X2ApicError> {
        self.advance(now);
        self.irq.x2apic_read(now, msr)
    }

    /// Guest WRMSR of an x2APIC MSR (0x800–0x8FF); an error is a #GP.
    pub fn msr_write(&mut self, now: u64, msr: u32, value: u64) -> Result<(), X2ApicError> {
        self.advance(now);
        let result = self.irq.x2apic_write(now, msr, value);
        self.sync_lines();
        result
    }

    /// Applies the MSR policy's effect of an IA32_APIC_BASE or
    /// IA32_TSC_DEADLINE write (`guest_tsc`: the guest TSC at `now`).
    /// Returns whether it concerned the platform.
    pub fn apply_msr_effect(&mut self, now: u64, guest_tsc: u64, effect: MsrEffect) -> bool {
        self.advance(now);
        self.irq.apply_msr_effect(now, guest_tsc, effect)
    }

    /// Drives GSI `gsi` from a device outside the platform (COM1: GSI 4).
    pub fn set_irq(&mut self, gsi: u32, level: bool) {
        self.irq.set_irq(gsi, level);
    }

    /// Runs every timer up to `now` and delivers what fell due.
    pub fn advance(&mut self, now: u64) {
        self.irq.advance(now);
        if self.pit.advance(now) {
            self.irq.pulse(self.pit_gsi);
        }
        self.rtc.advance(now);
        self.pm.advance(now);
        self.sync_lines();
    }

    /// The earliest time [`advance`](Self::advance) has something to do.
    pub fn next_deadline(&self) -> Option<u64> {
        [
            self.irq.next_deadline(),
            self.pit.next_deadline(),
            self.rtc.next_deadline(),
            self.pm.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The vector to inject when the guest can take an interrupt.
    pub fn pending_vector(&self) -> Option<u8> {
        self.irq.pending_vector()
    }

    /// The VMM injected `vector`.
    pub fn acknowledge(&mut self, vector: u8) -> Result<(), NotPending> {
        self.irq.acknowledge(vector)
    }

    /// Takes a pending NMI.
    pub fn take_nmi(&mut self) -> bool {
        self.irq.take_nmi()
    }

    /// Takes the guest's power-off, reset or sleep request.
    pub fn take_power_request(&mut self) -> Option<PowerRequest> {
        self.pm.take_request()
    }

    /// Presses the ACPI power button.
    pub fn press_power_button(&mut self) {
        self.pm.press_power_button();
        self.sync_lines();
    }

    fn sync_lines(&mut self) {
        self.irq.set_irq(self.rtc_gsi, self.rtc.irq());
        self.irq.set_irq(self.pm.config().sci_gsi, self.pm.sci());
    }

    fn read_dev(
        &mut self,
        now: u64,
        dev: PortDevice,
        off: u16,
        size: u8,
    ) -> Result<u32, AccessError> {
        let byte = |b: u8| Ok(u32::from(b));
        match dev {
            PortDevice::Pic(chip) => byte(self.pic.read(usize::from(chip), off)),
            PortDevice::Elcr => byte(self.pic.read_elcr(usize::from(off))),
            PortDevice::Pit => byte(self.pit.read(now, off)),
            PortDevice::Port61 => byte(self.pit.read_port61(now)),
            PortDevice::Rtc => byte(self.rtc.read(now, off)),
            PortDevice::Post => byte(self.post),
            PortDevice::PciAddress => self.pci.read(0, size).ok_or(AccessError::BadWidth),
            PortDevice::PciLegacy => self
                .pci
                .read(off.saturating_add(2), size)
                .ok_or(AccessError::BadWidth),
            PortDevice::PciData => self
                .pci
                .read(off.saturating_add(4), size)
                .ok_or(AccessError::BadWidth),
            PortDevice::Pm(block) => self
                .pm
                .read(now, block, off, size)
                .ok_or(AccessError::BadWidth),
        }
    }

    fn write_dev(
        &mut self,
        now: u64,
        dev: PortDevice,
        off: u16,
        size: u8,
        value: u32,
    ) -> Result<(), AccessError> {
        let b = (value & 0xFF) as u8;
        let ok = |done: bool| {
            if done {
                Ok(())
            } else {
                Err(AccessError::BadWidth)
            }
        };
        match dev {
            PortDevice::Pic(chip) => self.pic.write(usize::from(chip), off, b),
            PortDevice::Elcr => self.pic.write_elcr(usize::from(off), b),
            PortDevice::Pit => self.pit.write(now, off, b),
            PortDevice::Port61 => self.pit.write_port61(now, b),
            PortDevice::Rtc => self.rtc.write(now, off, b),
            PortDevice::Post => self.post = b,
            PortDevice::PciAddress => return ok(self.pci.write(0, size, value)),
            PortDevice::PciLegacy => return ok(self.pci.write(off.saturating_add(2), size, value)),
            PortDevice::PciData => return ok(self.pci.write(off.saturating_add(4), size, value)),
            PortDevice::Pm(PmBlock::Timer) => return Err(AccessError::ReadOnly),
            PortDevice::Pm(block) => return ok(self.pm.write(now, block, off, size, value)),
        }
        Ok(())
    }
}

/// Whether `dev` takes a `size`-byte access at `off` whole (otherwise it is
/// split into bytes).
fn wide(dev: PortDevice, off: u16, size: u8) -> bool {
    let end = off.saturating_add(u16::from(size));
    size == 1
        || match dev {
            PortDevice::PciAddress => size == 4,
            PortDevice::PciData => end <= 4,
            PortDevice::Pm(block) => end <= block.ports(),
            _ => false,
        }
}
