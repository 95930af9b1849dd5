//! Table encoders (ACPI 6.x, chapter 5) and the layout.

use crate::aml::{res, Aml};
use crate::*;

const MIB: u64 = 1 << 20;
const FOUR_GIB: u64 = 1 << 32;

/// MADT: header + local APIC address + flags.
const MADT_FIXED: u64 = HEADER_SIZE + 8;
const MADT_LAPIC: u64 = 8;
const MADT_IOAPIC: u64 = 12;
const MADT_ISO: u64 = 10;
const MADT_LAPIC_NMI: u64 = 6;

/// Generic address structure address-space IDs.
const SPACE_MEMORY: u8 = 0;
const SPACE_IO: u8 = 1;

// FADT flags.
const FADT_WBINVD: u32 = 1 << 0;
const FADT_PROC_C1: u32 = 1 << 2;
const FADT_PWR_BUTTON: u32 = 1 << 4;
const FADT_SLP_BUTTON: u32 = 1 << 5;
const FADT_TMR_VAL_EXT: u32 = 1 << 8;
const FADT_RESET_REG_SUP: u32 = 1 << 10;

// IAPC_BOOT_ARCH flags.
const BOOT_LEGACY_DEVICES: u16 = 1 << 0;
const BOOT_8042: u16 = 1 << 1;
const BOOT_NO_VGA: u16 = 1 << 2;
const BOOT_NO_MSI: u16 = 1 << 3;
const BOOT_NO_CMOS_RTC: u16 = 1 << 5;

pub(crate) fn check(cfg: &AcpiConfig) -> Result<(), AcpiError> {
    if !cfg.base.is_multiple_of(16) {
        return Err(AcpiError::BaseMisaligned(cfg.base));
    }
    if cfg.cpus == 0 || cfg.cpus > 255 {
        return Err(AcpiError::BadCpuCount(cfg.cpus));
    }
    if cfg.s5_sleep_type > 7 {
        return Err(AcpiError::BadSleepType(cfg.s5_sleep_type));
    }
    if cfg.sci_irq > 15 {
        return Err(AcpiError::BadSciIrq(cfg.sci_irq));
    }
    if let Some(h) = cfg.hpet {
        if h.comparators == 0 || h.comparators > 32 {
            return Err(AcpiError::BadHpetComparators(h.comparators));
        }
    }
    if let Some(pci) = cfg.pci {
        if let Some(ecam) = pci.ecam {
            let size = (u64::from(pci.bus_end).saturating_add(1)).saturating_mul(MIB);
            if !ecam.is_multiple_of(MIB) || ecam.checked_add(size).is_none() {
                return Err(AcpiError::BadEcam(ecam));
            }
        }
        if let Some(w) = pci.mmio32 {
            let ok = w.size != 0 && w.base.checked_add(w.size).is_some_and(|e| e <= FOUR_GIB);
            if !ok {
                return Err(AcpiError::BadPciWindow(w.base));
            }
        }
        if let Some(w) = pci.mmio64 {
            if w.size == 0 || w.base.checked_add(w.size).is_none() {
                return Err(AcpiError::BadPciWindow(w.base));
            }
        }
    }
    Ok(())
}

fn align(x: u64, a: u64) -> Result<u64, AcpiError> {
    let mask = a.saturating_sub(1);
    x.checked_add(mask)
        .map(|v| v & !mask)
        .ok_or(AcpiError::Above4GiB(u64::MAX))
}

fn add(a: u64, b: u64) -> Result<u64, AcpiError> {
    a.checked_add(b).ok_or(AcpiError::Above4GiB(u64::MAX))
}

/// Number of XSDT entries: FADT, MADT, and MCFG / HPET when configured.
fn xsdt_entries(cfg: &AcpiConfig) -> u64 {
    2u64.saturating_add(u64::from(cfg.pci.is_some_and(|p| p.ecam.is_some())))
        .saturating_add(u64::from(cfg.hpet.is_some()))
}

fn madt_size(cfg: &AcpiConfig) -> u64 {
    MADT_FIXED
        .saturating_add(MADT_LAPIC.saturating_mul(u64::from(cfg.cpus)))
        .saturating_add(MADT_IOAPIC)
        .saturating_add(MADT_ISO.saturating_mul(2))
        .saturating_add(MADT_LAPIC_NMI)
}

pub(crate) fn layout(cfg: &AcpiConfig, aml_len: usize) -> Result<AcpiTables, AcpiError> {
    let rsdp = cfg.base;
    let xsdt = align(add(rsdp, RSDP_SIZE)?, 16)?;
    let xsdt_len = HEADER_SIZE.saturating_add(8u64.saturating_mul(xsdt_entries(cfg)));
    let fadt = align(add(xsdt, xsdt_len)?, 16)?;
    let facs = align(add(fadt, FADT_SIZE)?, 64)?;
    let madt = align(add(facs, FACS_SIZE)?, 16)?;
    let mut next = add(madt, madt_size(cfg))?;
    let mut mcfg = None;
    if cfg.pci.is_some_and(|p| p.ecam.is_some()) {
        let at = align(next, 16)?;
        mcfg = Some(at);
        next = add(at, MCFG_SIZE)?;
    }
    let mut hpet = None;
    if cfg.hpet.is_some() {
        let at = align(next, 16)?;
        hpet = Some(at);
        next = add(at, HPET_SIZE)?;
    }
    let dsdt = align(next, 16)?;
    let dsdt_len = HEADER_SIZE.saturating_add(u64::try_from(aml_len).unwrap_or(u64::MAX));
    let end = add(dsdt, dsdt_len)?;
    if end > FOUR_GIB {
        return Err(AcpiError::Above4GiB(end));
    }
    if end > cfg.limit {
        return Err(AcpiError::DoesNotFit {
            need: end.saturating_sub(cfg.base),
            have: cfg.limit.saturating_sub(cfg.base),
        });
    }
    Ok(AcpiTables {
        rsdp,
        xsdt,
        fadt,
        facs,
        madt,
        mcfg,
        hpet,
        dsdt,
        dsdt_len,
        end,
    })
}

/// The DSDT body (the AML after the table header).
pub(crate) fn dsdt_aml(cfg: &AcpiConfig) -> Aml {
    let mut a = Aml::new();
    let s5 = u64::from(cfg.s5_sleep_type);
    a.name("\\_S5", |a| {
        a.package(4, |a| {
            a.integer(s5);
            a.integer(s5);
            a.integer(0);
            a.integer(0);
        })
    });
    a.scope("\\_SB", |a| {
        if let Some(pci) = cfg.pci {
            pci_host_bridge(a, &pci);
        }
        if cfg.com1 {
            a.device("COM1", |a| {
                a.name("_HID", |a| a.eisa_id("PNP0501"));
                a.name("_UID", |a| a.integer(1));
                a.name("_CRS", |a| {
                    a.buffer(|a| {
                        res::io(a, 0x3F8, 8);
                        res::irq_no_flags(a, 4);
                        res::end_tag(a);
                    })
                });
            });
        }
        if cfg.rtc {
            a.device("RTC", |a| {
                a.name("_HID", |a| a.eisa_id("PNP0B00"));
                a.name("_CRS", |a| {
                    a.buffer(|a| {
                        res::io(a, 0x70, 2);
                        res::irq_no_flags(a, 8);
                        res::end_tag(a);
                    })
                });
            });
        }
    });
    a
}

fn pci_host_bridge(a: &mut Aml, pci: &PciHostBridge) {
    a.device("PCI0", |a| {
        if pci.ecam.is_some() {
            a.name("_HID", |a| a.eisa_id("PNP0A08"));
            a.name("_CID", |a| a.eisa_id("PNP0A03"));
        } else {
            a.name("_HID", |a| a.eisa_id("PNP0A03"));
        }
        a.name("_UID", |a| a.integer(0));
        a.name("_SEG", |a| a.integer(0));
        a.name("_BBN", |a| a.integer(0));
        a.name("_CRS", |a| {
            a.buffer(|a| {
                res::word_bus_number(a, 0, u16::from(pci.bus_end));
                res::io(a, 0xCF8, 8);
                if pci.io {
                    res::word_io(a, 0x0000, 0x0CF7);
                    res::word_io(a, 0x0D00, 0xFFFF);
                }
                if let Some(w) = pci.mmio32 {
                    let min = u32::try_from(w.base).unwrap_or(u32::MAX);
                    let max = u32::try_from(w.base.saturating_add(w.size).saturating_sub(1))
                        .unwrap_or(u32::MAX);
                    res::dword_memory(a, min, max, false);
                }
                if let Some(w) = pci.mmio64 {
                    let max = w.base.saturating_add(w.size).saturating_sub(1);
                    res::qword_memory(a, w.base, max, true);
                }
                res::end_tag(a);
            })
        });
        if let Some(gsi) = pci.intx_gsi {
            a.name("_PRT", |a| {
                a.package(128, |a| {
                    for slot in 0u64..32 {
                        for pin in 0u64..4 {
                            let idx = usize::try_from((slot.saturating_add(pin)) % 4).unwrap_or(0);
                            let g = gsi.get(idx).copied().unwrap_or(0);
                            a.package(4, |a| {
                                a.integer((slot << 16) | 0xFFFF);
                                a.integer(pin);
                                a.integer(0);
                                a.integer(u64::from(g));
                            });
                        }
                    }
                })
            });
        }
    });
}

/// Streams one table into guest memory, keeping its checksum; the header
/// is written last, when the length is known.
struct Table<'m, M: GuestMemory + ?Sized> {
    mem: &'m mut M,
    start: u64,
    pos: u64,
    sum: u8,
}

impl<'m, M: GuestMemory + ?Sized> Table<'m, M> {
    fn new(mem: &'m mut M, start: u64) -> Self {
        Table {
            mem,
            start,
            pos: start.saturating_add(HEADER_SIZE),
            sum: 0,
        }
    }

    fn put(&mut self, data: &[u8]) -> Result<(), MemoryError> {
        self.mem.write(self.pos, data)?;
        self.sum = self.sum.wrapping_add(checksum(data));
        self.pos = self
            .pos
            .saturating_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
        Ok(())
    }

    fn finish(self, signature: &[u8; 4], revision: u8) -> Result<u64, MemoryError> {
        let len = self.pos.saturating_sub(self.start);
        let mut h = header(signature, u32::try_from(len).unwrap_or(u32::MAX), revision);
        let sum = checksum(&h).wrapping_add(self.sum);
        h[9] = 0u8.wrapping_sub(sum);
        self.mem.write(self.start, &h)?;
        Ok(len)
    }
}

/// A table header with checksum 0 (to be patched).
fn header(signature: &[u8; 4], length: u32, revision: u8) -> [u8; 36] {
    let mut h = [0u8; 36];
    let mut w = Cursor::new(&mut h);
    w.put(signature);
    w.put(&length.to_le_bytes());
    w.put(&[revision, 0]);
    w.put(&OEM_ID);
    w.put(&OEM_TABLE_ID);
    w.put(&1u32.to_le_bytes());
    w.put(&CREATOR_ID);
    w.put(&1u32.to_le_bytes());
    h
}

/// Sequential writer into a fixed byte array; writes past the end are dropped.
struct Cursor<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl<'b> Cursor<'b> {
    fn new(buf: &'b mut [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }
    fn put(&mut self, data: &[u8]) {
        let end = self.pos.saturating_add(data.len());
        if let Some(d) = self.buf.get_mut(self.pos..end) {
            d.copy_from_slice(data);
        }
        self.pos = end;
    }
}

/// A generic address structure.
fn gas(space: u8, bit_width: u8, access_size: u8, address: u64) -> [u8; 12] {
    let mut g = [0u8; 12];
    let mut w = Cursor::new(&mut g);
    w.put(&[space, bit_width, 0, access_size]);
    w.put(&address.to_le_bytes());
    g
}

fn io_gas(port: Option<u16>, len: u8) -> [u8; 12] {
    match port {
        Some(p) => gas(SPACE_IO, len.saturating_mul(8), 0, u64::from(p)),
        None => [0; 12],
    }
}

pub(crate) fn write<M: GuestMemory + ?Sized>(
    cfg: &AcpiConfig,
    t: &AcpiTables,
    aml: &[u8],
    mem: &mut M,
) -> Result<(), AcpiError> {
    // Clear the whole area first: alignment gaps read as zero.
    mem.fill(t.rsdp, t.end.saturating_sub(t.rsdp), 0)?;

    // RSDP (ACPI 2.0+): checksum over the first 20 bytes, extended over all 36.
    let mut rsdp = [0u8; RSDP_SIZE as usize];
    {
        let mut w = Cursor::new(&mut rsdp);
        w.put(b"RSD PTR ");
        w.put(&[0]);
        w.put(&OEM_ID);
        w.put(&[2]);
        w.put(&0u32.to_le_bytes()); // no RSDT
        w.put(&(RSDP_SIZE as u32).to_le_bytes());
        w.put(&t.xsdt.to_le_bytes());
        w.put(&[0, 0, 0, 0]);
    }
    let first = checksum(rsdp.get(..20).unwrap_or_default());
    rsdp[8] = 0u8.wrapping_sub(first);
    let all = checksum(&rsdp);
    rsdp[32] = 0u8.wrapping_sub(all);
    mem.write(t.rsdp, &rsdp)?;

    // XSDT.
    let mut x = Table::new(mem, t.xsdt);
    for entry in [Some(t.fadt), Some(t.madt), t.mcfg, t.hpet]
        .into_iter()
        .flatten()
    {
        x.put(&entry.to_le_bytes())?;
    }
    x.finish(b"XSDT", 1)?;

    write_fadt(cfg, t, mem)?;

    // FACS: no checksum; version 2; all-zero waking vectors and lock.
    let mut facs = [0u8; FACS_SIZE as usize];
    {
        let mut w = Cursor::new(&mut facs);
        w.put(b"FACS");
        w.put(&(FACS_SIZE as u32).to_le_bytes());
        w.put(&[0; 24]); // hardware signature, waking vector, global lock, flags, X waking vector
        w.put(&[2]); // version
    }
    mem.write(t.facs, &facs)?;

    write_madt(cfg, t, mem)?;

    if let (Some(at), Some(pci)) = (t.mcfg, cfg.pci) {
        let mut m = Table::new(mem, at);
        m.put(&[0; 8])?;
        m.put(&pci.ecam.unwrap_or(0).to_le_bytes())?;
        m.put(&0u16.to_le_bytes())?; // segment
        m.put(&[0, pci.bus_end])?;
        m.put(&[0; 4])?;
        m.finish(b"MCFG", 1)?;
    }

    if let (Some(at), Some(h)) = (t.hpet, cfg.hpet) {
        let id = (0x8086u32 << 16)
            | (u32::from(h.legacy_replacement) << 15)
            | (u32::from(h.counter_64bit) << 13)
            | ((u32::from(h.comparators.saturating_sub(1)) & 0x1F) << 8)
            | 1;
        let mut p = Table::new(mem, at);
        p.put(&id.to_le_bytes())?;
        p.put(&gas(SPACE_MEMORY, 64, 0, h.address))?;
        p.put(&[0])?; // HPET number
        p.put(&0x80u16.to_le_bytes())?; // minimum periodic tick
        p.put(&[0])?; // no page protection
        p.finish(b"HPET", 1)?;
    }

    let mut d = Table::new(mem, t.dsdt);
    d.put(aml)?;
    d.finish(b"DSDT", 2)?;
    Ok(())
}

fn write_fadt<M: GuestMemory + ?Sized>(
    cfg: &AcpiConfig,
    t: &AcpiTables,
    mem: &mut M,
) -> Result<(), AcpiError> {
    let facs32 = u32::try_from(t.facs).unwrap_or(0);
    let dsdt32 = u32::try_from(t.dsdt).unwrap_or(0);
    let timer_len: u8 = if cfg.pm_timer.is_some() { 4 } else { 0 };

    let mut flags = FADT_WBINVD | FADT_PROC_C1 | FADT_SLP_BUTTON;
    if !cfg.power_button {
        flags |= FADT_PWR_BUTTON;
    }
    if cfg.pm_timer.is_some() && cfg.pm_timer_32bit {
        flags |= FADT_TMR_VAL_EXT;
    }
    if cfg.reset.is_some() {
        flags |= FADT_RESET_REG_SUP;
    }
    let b = cfg.boot_arch;
    let mut boot = 0u16;
    if b.legacy_devices {
        boot |= BOOT_LEGACY_DEVICES;
    }
    if b.i8042 {
        boot |= BOOT_8042;
    }
    if !b.vga {
        boot |= BOOT_NO_VGA;
    }
    if !b.msi {
        boot |= BOOT_NO_MSI;
    }
    if !cfg.rtc {
        boot |= BOOT_NO_CMOS_RTC;
    }

    let mut f = Table::new(mem, t.fadt);
    f.put(&facs32.to_le_bytes())?; // 36 FIRMWARE_CTRL
    f.put(&dsdt32.to_le_bytes())?; // 40 DSDT
    f.put(&[0, 0])?; // 44 reserved, 45 Preferred_PM_Profile (unspecified)
    f.put(&u16::from(cfg.sci_irq).to_le_bytes())?; // 46 SCI_INT
    f.put(&0u32.to_le_bytes())?; // 48 SMI_CMD: none, always in ACPI mode
    f.put(&[0, 0, 0, 0])?; // 52 ACPI_ENABLE, ACPI_DISABLE, S4BIOS_REQ, PSTATE_CNT
    f.put(&u32::from(cfg.pm1a_evt).to_le_bytes())?; // 56 PM1a_EVT_BLK
    f.put(&0u32.to_le_bytes())?; // 60 PM1b_EVT_BLK
    f.put(&u32::from(cfg.pm1a_cnt).to_le_bytes())?; // 64 PM1a_CNT_BLK
    f.put(&0u32.to_le_bytes())?; // 68 PM1b_CNT_BLK
    f.put(&0u32.to_le_bytes())?; // 72 PM2_CNT_BLK
    f.put(&u32::from(cfg.pm_timer.unwrap_or(0)).to_le_bytes())?; // 76 PM_TMR_BLK
    f.put(&0u32.to_le_bytes())?; // 80 GPE0_BLK
    f.put(&0u32.to_le_bytes())?; // 84 GPE1_BLK
    f.put(&[4, 2, 0, timer_len, 0, 0, 0, 0])?; // 88 PM1_EVT_LEN .. CST_CNT
    f.put(&101u16.to_le_bytes())?; // 96 P_LVL2_LAT: C2 unsupported
    f.put(&1001u16.to_le_bytes())?; // 98 P_LVL3_LAT: C3 unsupported
    f.put(&[0, 0, 0, 0])?; // 100 FLUSH_SIZE, FLUSH_STRIDE
    let century = if cfg.rtc { cfg.century_index } else { 0 };
    f.put(&[0, 0, 0, 0, century])?; // 104 DUTY_OFFSET, DUTY_WIDTH, DAY_ALRM, MON_ALRM, CENTURY
    f.put(&boot.to_le_bytes())?; // 109 IAPC_BOOT_ARCH
    f.put(&[0])?; // 111 reserved
    f.put(&flags.to_le_bytes())?; // 112 Flags
    let (reset_gas, reset_value) = match cfg.reset {
        Some(r) => (gas(SPACE_IO, 8, 1, u64::from(r.port)), r.value),
        None => ([0; 12], 0),
    };
    f.put(&reset_gas)?; // 116 RESET_REG
    f.put(&[reset_value])?; // 128 RESET_VALUE
    f.put(&[0, 0, 0])?; // 129 ARM_BOOT_ARCH, 131 FADT minor version (6.0)
    f.put(&0u64.to_le_bytes())?; // 132 X_FIRMWARE_CTRL (FIRMWARE_CTRL is used)
    f.put(&t.dsdt.to_le_bytes())?; // 140 X_DSDT
    f.put(&io_gas(Some(cfg.pm1a_evt), 4))?; // 148 X_PM1a_EVT_BLK
    f.put(&[0; 12])?; // 160 X_PM1b_EVT_BLK
    f.put(&io_gas(Some(cfg.pm1a_cnt), 2))?; // 172 X_PM1a_CNT_BLK
    f.put(&[0; 12])?; // 184 X_PM1b_CNT_BLK
    f.put(&[0; 12])?; // 196 X_PM2_CNT_BLK
    f.put(&io_gas(cfg.pm_timer, 4))?; // 208 X_PM_TMR_BLK
    f.put(&[0; 12])?; // 220 X_GPE0_BLK
    f.put(&[0; 12])?; // 232 X_GPE1_BLK
    f.put(&[0; 12])?; // 244 SLEEP_CONTROL_REG
    f.put(&[0; 12])?; // 256 SLEEP_STATUS_REG
    f.put(&0u64.to_le_bytes())?; // 268 Hypervisor Vendor Identity
    f.finish(b"FACP", 6)?;
    Ok(())
}

fn write_madt<M: GuestMemory + ?Sized>(
    cfg: &AcpiConfig,
    t: &AcpiTables,
    mem: &mut M,
) -> Result<(), AcpiError> {
    const PCAT_COMPAT: u32 = 1;
    let mut m = Table::new(mem, t.madt);
    m.put(&cfg.lapic_address.to_le_bytes())?;
    m.put(&(if cfg.pic { PCAT_COMPAT } else { 0 }).to_le_bytes())?;
    for cpu in 0..cfg.cpus {
        let id = u8::try_from(cpu).unwrap_or(u8::MAX);
        // Processor Local APIC: UID, APIC ID, flags = enabled.
        m.put(&[0, 8, id, id])?;
        m.put(&1u32.to_le_bytes())?;
    }
    let io = cfg.ioapic;
    m.put(&[1, 12, io.id, 0])?;
    m.put(&io.address.to_le_bytes())?;
    m.put(&io.gsi_base.to_le_bytes())?;
    // Interrupt source overrides: the PIT's IRQ 0 on pin 2 (conforming
    // flags), and the SCI level-triggered, active high.
    let iso = |m: &mut Table<'_, M>, irq: u8, gsi: u32, flags: u16| -> Result<(), MemoryError> {
        m.put(&[2, 10, 0, irq])?;
        m.put(&gsi.to_le_bytes())?;
        m.put(&flags.to_le_bytes())
    };
    iso(&mut m, 0, io.gsi_base.saturating_add(2), 0)?;
    iso(
        &mut m,
        cfg.sci_irq,
        io.gsi_base.saturating_add(u32::from(cfg.sci_irq)),
        0x000D,
    )?;
    // Local APIC NMI: all processors (0xFF), conforming, LINT1.
    m.put(&[4, 6, 0xFF, 0, 0, 1])?;
    m.finish(b"APIC", 5)?;
    Ok(())
}
