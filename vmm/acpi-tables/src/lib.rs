//! Generates the ACPI tables a cloister Linux guest needs and writes them
//! into guest RAM: RSDP (revision 2) → XSDT → FADT (→ FACS, DSDT), MADT,
//! and optionally MCFG (PCI ECAM) and HPET.
//!
//! ```
//! # use acpi_tables::*;
//! # fn demo(ram: &mut [u8]) -> Result<(), AcpiError> {
//! let mut mem = pvh_loader::SliceMemory::new(ram);
//! let cfg = AcpiConfig::pc();
//! let tables = write_tables(&cfg, &mut mem)?;
//! // boot_params.acpi_rsdp_addr = tables.rsdp; the e820 map must not call
//! // [cfg.base, tables.end) RAM.
//! # let _ = tables; Ok(()) }
//! ```
//!
//! # What the guest sees
//!
//! * FADT (revision 6, not hardware-reduced): PM1a event block (4 bytes) and
//!   PM1a control block (2 bytes) in I/O space, optional PM timer, no GPE
//!   blocks, SCI on [`AcpiConfig::sci_irq`], `CENTURY`, `SMI_CMD` = 0 (the platform is
//!   always in ACPI mode: the VMM's PM1a_CNT must read back `SCI_EN` set),
//!   the reset register in I/O space (0xCF9 ← 0x06 by default),
//!   `IAPC_BOOT_ARCH` from [`BootArch`] and [`AcpiConfig::rtc`], flags
//!   `WBINVD`, `PROC_C1`, `SLP_BUTTON`, `PWR_BUTTON` (unless a fixed power
//!   button is configured), `TMR_VAL_EXT` with a 32-bit PM timer, `RESET_REG_SUP`.
//! * ACPI power-off: the DSDT's `\_S5_` package holds
//!   [`AcpiConfig::s5_sleep_type`]; Linux writes `SLP_TYP` = that value
//!   (bits 12:10) together with `SLP_EN` (bit 13) to PM1a_CNT.
//! * DSDT: `\_S5_`; `\_SB.PCI0` (`PNP0A03`, or `PNP0A08` with `_CID`
//!   `PNP0A03` when ECAM is configured) with `_CRS` (bus range, config
//!   ports 0xCF8–0xCFF, I/O windows around them, 32- and 64-bit memory
//!   windows) and `_PRT` (INTA–INTD of every slot, swizzled onto four GSIs);
//!   `\_SB.COM1` (`PNP0501`, 0x3F8, IRQ 4); `\_SB.RTC_` (`PNP0B00`, 0x70, IRQ 8).
//! * MADT: one local APIC per CPU (IDs 0..n), one IOAPIC, interrupt source
//!   overrides IRQ 0 → GSI base + 2 (the PIT on IOAPIC pin 2) and SCI →
//!   GSI base + SCI (level, active high), LINT1 as NMI on every CPU,
//!   `PCAT_COMPAT` when an 8259 pair exists (present but masked).
//!
//! # Layout
//!
//! From [`AcpiConfig::base`] (default 0xE0000, in the BIOS area Linux scans
//! for the RSDP), each table 16-byte aligned (the FACS 64-byte aligned):
//! RSDP, XSDT, FADT, FACS, MADT, MCFG, HPET, DSDT. [`layout`] computes the
//! addresses without writing; [`write_tables`] validates everything, then
//! writes. Nothing is written if validation fails.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::arithmetic_side_effects
    )
)]

pub mod aml;
mod error;
mod tables;

#[cfg(test)]
mod parse;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use error::AcpiError;
pub use pvh_loader::{GuestMemory, MemoryError};

/// OEM ID written to every table.
pub const OEM_ID: [u8; 6] = *b"CLOIST";
/// OEM table ID written to every table.
pub const OEM_TABLE_ID: [u8; 8] = *b"CLOISTER";
/// Creator ID written to every table.
pub const CREATOR_ID: [u8; 4] = *b"CLST";

/// Size of the RSDP (revision 2).
pub const RSDP_SIZE: u64 = 36;
/// Size of a system description table header.
pub const HEADER_SIZE: u64 = 36;
/// Size of the FADT (revision 6).
pub const FADT_SIZE: u64 = 276;
/// Size of the FACS.
pub const FACS_SIZE: u64 = 64;
/// Size of an MCFG with one allocation.
pub const MCFG_SIZE: u64 = 60;
/// Size of the HPET table.
pub const HPET_SIZE: u64 = 56;

/// The I/O APIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoApic {
    /// Its APIC ID (what its ID register reads).
    pub id: u8,
    /// MMIO base (0xFEC00000 on a PC).
    pub address: u32,
    /// First global system interrupt of its pins.
    pub gsi_base: u32,
}

/// The FADT reset register: an I/O port and the value that resets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResetRegister {
    /// I/O port (0xCF9 on PIIX/ICH chipsets).
    pub port: u16,
    /// Value Linux writes to reset (0x06 = full reset on 0xCF9).
    pub value: u8,
}

/// What `IAPC_BOOT_ARCH` tells the guest about legacy hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootArch {
    /// ISA/LPC devices (COM1, PIT, RTC) exist.
    pub legacy_devices: bool,
    /// An 8042 keyboard controller exists at ports 0x60/0x64.
    pub i8042: bool,
    /// VGA may be probed.
    pub vga: bool,
    /// MSI may be enabled.
    pub msi: bool,
}

/// A memory window of the PCI host bridge: `[base, base + size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemWindow {
    /// First address.
    pub base: u64,
    /// Size in bytes (non-zero).
    pub size: u64,
}

/// The PCI host bridge `\_SB.PCI0`, segment 0, buses `0..=bus_end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciHostBridge {
    /// Last bus number decoded.
    pub bus_end: u8,
    /// ECAM base for the MCFG table (1 MiB per bus); `None`: port 0xCF8 only.
    pub ecam: Option<u64>,
    /// Forward the I/O space (0x0000–0x0CF7 and 0x0D00–0xFFFF) to PCI.
    pub io: bool,
    /// The 32-bit memory window (below 4 GiB), non-prefetchable.
    pub mmio32: Option<MemWindow>,
    /// The 64-bit memory window, prefetchable.
    pub mmio64: Option<MemWindow>,
    /// GSIs of INTA..INTD for device 0; device `d` pin `p` uses
    /// `intx_gsi[(d + p) % 4]` (level, active low). `None`: no `_PRT`.
    pub intx_gsi: Option<[u32; 4]>,
}

/// An HPET block, described by the HPET table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hpet {
    /// MMIO base (0xFED00000 on a PC).
    pub address: u64,
    /// Number of comparators (1–32), as its capabilities register says.
    pub comparators: u8,
    /// The main counter is 64 bits wide.
    pub counter_64bit: bool,
    /// Legacy replacement routing (IRQ 0 / 8) is supported.
    pub legacy_replacement: bool,
}

/// Everything the tables describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcpiConfig {
    /// Guest-physical address of the RSDP, the first table (16-byte aligned).
    pub base: u64,
    /// End (exclusive) of the area the tables may occupy.
    pub limit: u64,
    /// Number of CPUs (local APIC IDs `0..cpus`), 1–255.
    pub cpus: u32,
    /// Local APIC MMIO base.
    pub lapic_address: u32,
    /// A (masked) 8259 pair exists: MADT `PCAT_COMPAT`.
    pub pic: bool,
    /// The IOAPIC.
    pub ioapic: IoApic,
    /// ISA IRQ of the SCI (also its GSI offset on the IOAPIC).
    pub sci_irq: u8,
    /// I/O port of the PM1a event block (status + enable, 4 bytes).
    pub pm1a_evt: u16,
    /// I/O port of the PM1a control block (2 bytes).
    pub pm1a_cnt: u16,
    /// I/O port of the ACPI PM timer (4 bytes), if emulated.
    pub pm_timer: Option<u16>,
    /// The PM timer counts 32 bits (FADT flag `TMR_VAL_EXT`), not 24.
    pub pm_timer_32bit: bool,
    /// `SLP_TYP` value for S5 (soft off), 0–7.
    pub s5_sleep_type: u8,
    /// The reset register, if any.
    pub reset: Option<ResetRegister>,
    /// A fixed-feature power button (PM1 `PWRBTN_STS`) exists.
    pub power_button: bool,
    /// Legacy hardware flags.
    pub boot_arch: BootArch,
    /// A CMOS RTC at ports 0x70/0x71 (IRQ 8) exists.
    pub rtc: bool,
    /// CMOS index of the RTC's century register (FADT `CENTURY`), 0 for none.
    pub century_index: u8,
    /// A 16550 COM1 at 0x3F8 (IRQ 4) exists.
    pub com1: bool,
    /// The PCI host bridge, if any.
    pub pci: Option<PciHostBridge>,
    /// The HPET, if any.
    pub hpet: Option<Hpet>,
}

impl AcpiConfig {
    /// cloister's PC platform (the defaults of crate `vmm-devices`): tables
    /// at 0xE0000..0x100000, one CPU, LAPIC at 0xFEE00000, IOAPIC (ID 0) at
    /// 0xFEC00000 with GSI base 0, masked 8259s, SCI 9, PM1a event/control
    /// at 0x600/0x604, a 24-bit PM timer at 0x608, S5 sleep type 5, reset
    /// 0xCF9 ← 0x06, a fixed power button, legacy devices but no 8042 or
    /// VGA, MSI allowed, RTC (century at CMOS 0x32) and COM1, a PCI host
    /// bridge for bus 0 with the I/O windows, a 32-bit window
    /// 0xC0000000..0xFEC00000 and INTx on GSIs 16–19, no ECAM, no HPET.
    pub fn pc() -> Self {
        AcpiConfig {
            base: 0xE_0000,
            limit: 0x10_0000,
            cpus: 1,
            lapic_address: 0xFEE0_0000,
            pic: true,
            ioapic: IoApic {
                id: 0,
                address: 0xFEC0_0000,
                gsi_base: 0,
            },
            sci_irq: 9,
            pm1a_evt: 0x600,
            pm1a_cnt: 0x604,
            pm_timer: Some(0x608),
            pm_timer_32bit: false,
            s5_sleep_type: 5,
            reset: Some(ResetRegister {
                port: 0xCF9,
                value: 0x06,
            }),
            power_button: true,
            boot_arch: BootArch {
                legacy_devices: true,
                i8042: false,
                vga: false,
                msi: true,
            },
            rtc: true,
            century_index: 0x32,
            com1: true,
            pci: Some(PciHostBridge {
                bus_end: 0,
                ecam: None,
                io: true,
                mmio32: Some(MemWindow {
                    base: 0xC000_0000,
                    size: 0xFEC0_0000 - 0xC000_0000,
                }),
                mmio64: None,
                intx_gsi: Some([16, 17, 18, 19]),
            }),
            hpet: None,
        }
    }
}

/// Where each table is (guest-physical addresses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcpiTables {
    /// The RSDP: `boot_params.acpi_rsdp_addr`.
    pub rsdp: u64,
    /// The XSDT.
    pub xsdt: u64,
    /// The FADT ("FACP").
    pub fadt: u64,
    /// The FACS.
    pub facs: u64,
    /// The MADT ("APIC").
    pub madt: u64,
    /// The MCFG, with ECAM.
    pub mcfg: Option<u64>,
    /// The HPET table.
    pub hpet: Option<u64>,
    /// The DSDT.
    pub dsdt: u64,
    /// Length of the DSDT.
    pub dsdt_len: u64,
    /// End (exclusive) of the last table.
    pub end: u64,
}

/// Checks `cfg` and computes where every table goes. Writes nothing.
///
/// Rejects: a base not 16-byte aligned, 0 or more than 255 CPUs, an S5
/// sleep type above 7, an SCI above IRQ 15, an HPET with 0 or more than 32
/// comparators, an ECAM base not 1 MiB aligned or whose window wraps, an
/// empty or wrapping PCI memory window (or a 32-bit one above 4 GiB), a
/// DSDT too large for the encoder, and tables that overflow `[base, limit)`
/// or end above 4 GiB.
pub fn layout(cfg: &AcpiConfig) -> Result<AcpiTables, AcpiError> {
    tables::check(cfg)?;
    let aml = tables::dsdt_aml(cfg);
    let aml_len = aml.bytes().ok_or(AcpiError::DsdtTooLarge)?.len();
    tables::layout(cfg, aml_len)
}

/// Validates `cfg` (see [`layout`]), checks the tables fit in guest RAM,
/// then writes them. Returns their addresses.
pub fn write_tables<M: GuestMemory + ?Sized>(
    cfg: &AcpiConfig,
    mem: &mut M,
) -> Result<AcpiTables, AcpiError> {
    tables::check(cfg)?;
    let aml = tables::dsdt_aml(cfg);
    let body = aml.bytes().ok_or(AcpiError::DsdtTooLarge)?;
    let t = tables::layout(cfg, body.len())?;
    let ram = mem.size();
    if t.end > ram {
        return Err(AcpiError::OutsideRam { end: t.end, ram });
    }
    tables::write(cfg, &t, body, mem)?;
    Ok(t)
}

/// The byte sum of `data` (a table is valid when its sum is 0).
pub fn checksum(data: &[u8]) -> u8 {
    data.iter().fold(0u8, |s, &b| s.wrapping_add(b))
}
