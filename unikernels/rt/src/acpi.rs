//! The few ACPI tables a unikernel needs: MCFG (where PCI ECAM is) and MADT
//! (where the local APIC and IOAPICs are, and how ISA IRQs map to GSIs).
//!
//! Everything here reads guest-physical memory through [`PhysMemory`] and trusts
//! none of it: signatures, checksums, lengths and counts are checked, every
//! address computation is checked for overflow, and the number of tables and
//! entries looked at is bounded. A table that fails a check is ignored (and
//! named in [`Acpi::rejected`]); nothing panics.
//!
//! Plain logic with host tests; the runtime calls [`Acpi::discover`] with its
//! identity-mapped memory reader.

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

use crate::start_info::PhysMemory;

/// Most tables listed in the RSDT/XSDT that are looked at.
pub const MAX_TABLES: usize = 64;
/// Longest table accepted (bytes).
pub const MAX_TABLE_LEN: u32 = 1 << 20;
/// Most IOAPICs remembered from the MADT.
pub const MAX_IOAPICS: usize = 4;
/// Most interrupt source overrides remembered from the MADT.
pub const MAX_OVERRIDES: usize = 16;
/// Most tables remembered as rejected.
pub const MAX_REJECTED: usize = 8;

/// Length of an ACPI system description table header.
const SDT_HEADER_LEN: u32 = 36;
/// Default local APIC base when there is no MADT.
pub const DEFAULT_LAPIC: u64 = 0xfee0_0000;
/// Default IOAPIC base when there is no MADT.
pub const DEFAULT_IOAPIC: u64 = 0xfec0_0000;

/// One ECAM window (MCFG allocation entry) for PCI segment 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ecam {
    /// Guest-physical address of bus 0's configuration space in the window
    /// (the MCFG base; bus `b` is at `base + (b << 20)`).
    pub base: u64,
    /// First bus decoded.
    pub start_bus: u8,
    /// Last bus decoded.
    pub end_bus: u8,
}

impl Ecam {
    /// Guest-physical `[start, end)` of the part of the window that decodes
    /// `start_bus..=end_bus`, or `None` if it overflows.
    pub fn range(&self) -> Option<(u64, u64)> {
        let first = self.base.checked_add(u64::from(self.start_bus) << 20)?;
        let end = self.base.checked_add((u64::from(self.end_bus) + 1) << 20)?;
        Some((first, end))
    }
}

/// An IOAPIC from the MADT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoApicInfo {
    /// Its APIC id.
    pub id: u8,
    /// Guest-physical base of its registers.
    pub address: u64,
    /// First global system interrupt it serves.
    pub gsi_base: u32,
}

/// An ISA IRQ routed to a different GSI or with non-ISA polarity/trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqOverride {
    /// ISA IRQ number.
    pub source: u8,
    /// The GSI it arrives on.
    pub gsi: u32,
    /// MPS INTI flags (bits 1:0 polarity, 3:2 trigger mode).
    pub flags: u16,
}

/// What the MADT says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Madt {
    /// Local APIC base.
    pub lapic: u64,
    /// Whether the machine also has dual 8259 PICs (which must be masked).
    pub pcat_compat: bool,
    ioapics: [Option<IoApicInfo>; MAX_IOAPICS],
    overrides: [Option<IrqOverride>; MAX_OVERRIDES],
}

impl Madt {
    /// The IOAPICs listed (at most [`MAX_IOAPICS`]).
    pub fn ioapics(&self) -> impl Iterator<Item = &IoApicInfo> {
        self.ioapics.iter().flatten()
    }

    /// The interrupt source overrides listed (at most [`MAX_OVERRIDES`]).
    pub fn overrides(&self) -> impl Iterator<Item = &IrqOverride> {
        self.overrides.iter().flatten()
    }

    /// The GSI an ISA IRQ arrives on (identity unless overridden).
    pub fn isa_irq_gsi(&self, irq: u8) -> u32 {
        self.overrides()
            .find(|o| o.source == irq)
            .map_or(u32::from(irq), |o| o.gsi)
    }
}

/// Why a table was ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// Its memory could not be read.
    Unreadable,
    /// Its length is below the header or above [`MAX_TABLE_LEN`].
    BadLength(u32),
    /// Its bytes do not sum to zero.
    BadChecksum,
    /// Its contents are inconsistent (an entry runs past the end, ...).
    Malformed,
}

impl core::fmt::Display for TableError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            TableError::Unreadable => f.write_str("unreadable"),
            TableError::BadLength(l) => write!(f, "bad length {l}"),
            TableError::BadChecksum => f.write_str("bad checksum"),
            TableError::Malformed => f.write_str("malformed"),
        }
    }
}

/// Why no ACPI tables were found at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcpiError {
    /// No valid RSDP at the given address or in the BIOS areas.
    NoRsdp,
    /// The RSDT/XSDT the RSDP points at is invalid.
    BadRoot(TableError),
}

impl core::fmt::Display for AcpiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AcpiError::NoRsdp => f.write_str("no valid ACPI RSDP"),
            AcpiError::BadRoot(e) => write!(f, "ACPI root table {e}"),
        }
    }
}

/// The ACPI facts the runtime uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acpi {
    /// Where the RSDP was found.
    pub rsdp: u64,
    /// ECAM window for segment 0, from the MCFG.
    pub ecam: Option<Ecam>,
    /// The MADT, if present and valid.
    pub madt: Option<Madt>,
    rejected: [Option<([u8; 4], TableError)>; MAX_REJECTED],
}

impl Acpi {
    /// Tables that were listed but ignored, with the reason.
    pub fn rejected(&self) -> impl Iterator<Item = &([u8; 4], TableError)> {
        self.rejected.iter().flatten()
    }

    fn reject(&mut self, sig: [u8; 4], e: TableError) {
        if let Some(slot) = self.rejected.iter_mut().find(|s| s.is_none()) {
            *slot = Some((sig, e));
        }
    }

    /// Finds the RSDP (at `hint` if given, else in the EBDA and the BIOS area
    /// 0xE0000–0xFFFFF) and reads the MCFG and MADT it leads to.
    pub fn discover(mem: &impl PhysMemory, hint: Option<u64>) -> Result<Acpi, AcpiError> {
        let rsdp = hint
            .and_then(|a| parse_rsdp(mem, a).map(|r| (a, r)))
            .or_else(|| scan_rsdp(mem))
            .ok_or(AcpiError::NoRsdp)?;
        let (rsdp_addr, (root, entry_size)) = rsdp;
        let root_len = read_table(mem, root).map_err(AcpiError::BadRoot)?;
        let entries = root_len
            .saturating_sub(SDT_HEADER_LEN)
            .checked_div(entry_size)
            .unwrap_or(0);
        let mut acpi = Acpi {
            rsdp: rsdp_addr,
            ecam: None,
            madt: None,
            rejected: [None; MAX_REJECTED],
        };
        let entries = entries.min(MAX_TABLES as u32);
        for i in 0..entries {
            // i < MAX_TABLES and entry_size <= 8: no overflow in the offset.
            let off = u64::from(i.saturating_mul(entry_size).saturating_add(SDT_HEADER_LEN));
            let Some(at) = root.checked_add(off) else {
                break;
            };
            let mut raw = [0u8; 8];
            let Some(raw) = raw.get_mut(..entry_size as usize) else {
                break;
            };
            if mem.read(at, raw).is_err() {
                break;
            }
            let mut word = [0u8; 8];
            if let Some(dst) = word.get_mut(..raw.len()) {
                dst.copy_from_slice(raw);
            }
            let table = u64::from_le_bytes(word);
            let mut sig = [0u8; 4];
            if mem.read(table, &mut sig).is_err() {
                acpi.reject(*b"????", TableError::Unreadable);
                continue;
            }
            match &sig {
                b"MCFG" if acpi.ecam.is_none() => match parse_mcfg(mem, table) {
                    Ok(e) => acpi.ecam = e,
                    Err(e) => acpi.reject(sig, e),
                },
                b"APIC" if acpi.madt.is_none() => match parse_madt(mem, table) {
                    Ok(m) => acpi.madt = Some(m),
                    Err(e) => acpi.reject(sig, e),
                },
                _ => {}
            }
        }
        Ok(acpi)
    }
}

fn le16(b: &[u8], at: usize) -> u16 {
    let mut w = [0u8; 2];
    if let Some(s) = b.get(at..at.saturating_add(2)) {
        w.copy_from_slice(s);
    }
    u16::from_le_bytes(w)
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = b.get(at..at.saturating_add(4)) {
        w.copy_from_slice(s);
    }
    u32::from_le_bytes(w)
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(s) = b.get(at..at.saturating_add(8)) {
        w.copy_from_slice(s);
    }
    u64::from_le_bytes(w)
}

fn byte_sum(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |a, &x| a.wrapping_add(x))
}

/// Validates an RSDP at `addr`; returns the root table address and its entry
/// size (8 for the XSDT, 4 for the RSDT).
fn parse_rsdp(mem: &impl PhysMemory, addr: u64) -> Option<(u64, u32)> {
    let mut b = [0u8; 36];
    mem.read(addr, b.get_mut(..20)?).ok()?;
    if b.get(..8)? != b"RSD PTR " || byte_sum(b.get(..20)?) != 0 {
        return None;
    }
    let revision = *b.get(15)?;
    if revision >= 2 && mem.read(addr, &mut b).is_ok() {
        let len = le32(&b, 20);
        let xsdt = le64(&b, 24);
        if len >= 36 && byte_sum(&b) == 0 && xsdt != 0 {
            return Some((xsdt, 8));
        }
    }
    let rsdt = u64::from(le32(&b, 16));
    (rsdt != 0).then_some((rsdt, 4))
}

/// Looks for the RSDP where the BIOS puts it.
fn scan_rsdp(mem: &impl PhysMemory) -> Option<(u64, (u64, u32))> {
    let mut seg = [0u8; 2];
    let ebda = if mem.read(0x40e, &mut seg).is_ok() {
        u64::from(u16::from_le_bytes(seg)) << 4
    } else {
        0
    };
    let mut areas = [(0xe_0000u64, 0x10_0000u64), (0, 0)];
    if (0x8_0000..0xa_0000).contains(&ebda) {
        areas[1] = (ebda, ebda.saturating_add(1024));
    }
    for (start, end) in areas {
        let mut chunk = [0u8; 4096];
        let mut at = start;
        while at < end {
            let n = end.saturating_sub(at).min(4096) as usize;
            let Some(buf) = chunk.get_mut(..n) else {
                break;
            };
            if mem.read(at, buf).is_ok() {
                for (i, w) in buf.chunks_exact(16).enumerate() {
                    if w.starts_with(b"RSD PTR ") {
                        let cand = at.saturating_add((i as u64) << 4);
                        if let Some(r) = parse_rsdp(mem, cand) {
                            return Some((cand, r));
                        }
                    }
                }
            }
            at = at.saturating_add(4096);
        }
    }
    None
}

/// Checks the table at `addr` (length bounds and checksum); returns its length.
fn read_table(mem: &impl PhysMemory, addr: u64) -> Result<u32, TableError> {
    let mut hdr = [0u8; SDT_HEADER_LEN as usize];
    mem.read(addr, &mut hdr)
        .map_err(|_| TableError::Unreadable)?;
    let len = le32(&hdr, 4);
    if !(SDT_HEADER_LEN..=MAX_TABLE_LEN).contains(&len) {
        return Err(TableError::BadLength(len));
    }
    addr.checked_add(u64::from(len))
        .ok_or(TableError::BadLength(len))?;
    let mut sum = 0u8;
    let mut chunk = [0u8; 256];
    let mut off = 0u32;
    while off < len {
        let n = len.saturating_sub(off).min(256) as usize;
        let buf = chunk.get_mut(..n).ok_or(TableError::Malformed)?;
        mem.read(addr.saturating_add(u64::from(off)), buf)
            .map_err(|_| TableError::Unreadable)?;
        sum = sum.wrapping_add(byte_sum(buf));
        off = off.saturating_add(256);
    }
    if sum != 0 {
        return Err(TableError::BadChecksum);
    }
    Ok(len)
}

/// Reads `len` bytes of a checked table into `buf` (at most its size).
fn table_bytes<'b>(
    mem: &impl PhysMemory,
    addr: u64,
    len: u32,
    buf: &'b mut [u8],
) -> Result<&'b [u8], TableError> {
    let b = buf
        .get_mut(..len as usize)
        .ok_or(TableError::BadLength(len))?;
    mem.read(addr, b).map_err(|_| TableError::Unreadable)?;
    Ok(b)
}

/// The MCFG's entry for segment 0, if any.
fn parse_mcfg(mem: &impl PhysMemory, addr: u64) -> Result<Option<Ecam>, TableError> {
    let len = read_table(mem, addr)?;
    let mut buf = [0u8; 44 + 16 * 16];
    let b = table_bytes(mem, addr, len.min(buf.len() as u32), &mut buf)?;
    if len < 44 {
        return Err(TableError::Malformed);
    }
    for e in b.get(44..).unwrap_or_default().chunks_exact(16) {
        let base = le64(e, 0);
        let segment = le16(e, 8);
        let start_bus = e.get(10).copied().unwrap_or(0);
        let end_bus = e.get(11).copied().unwrap_or(0);
        if segment != 0 {
            continue;
        }
        let ecam = Ecam {
            base,
            start_bus,
            end_bus,
        };
        if base == 0 || base & 0xf_ffff != 0 || end_bus < start_bus || ecam.range().is_none() {
            return Err(TableError::Malformed);
        }
        return Ok(Some(ecam));
    }
    Ok(None)
}

fn parse_madt(mem: &impl PhysMemory, addr: u64) -> Result<Madt, TableError> {
    let len = read_table(mem, addr)?;
    if len < 44 {
        return Err(TableError::Malformed);
    }
    let mut buf = [0u8; 4096];
    let b = table_bytes(mem, addr, len.min(buf.len() as u32), &mut buf)?;
    let mut madt = Madt {
        lapic: u64::from(le32(b, 36)),
        pcat_compat: le32(b, 40) & 1 != 0,
        ioapics: [None; MAX_IOAPICS],
        overrides: [None; MAX_OVERRIDES],
    };
    let mut rest = b.get(44..).unwrap_or_default();
    while let [kind, elen, ..] = *rest {
        let elen = usize::from(elen);
        if elen < 2 || elen > rest.len() {
            return Err(TableError::Malformed);
        }
        let (e, tail) = rest.split_at(elen);
        match (kind, elen) {
            (1, 12..) => {
                let io = IoApicInfo {
                    id: e.get(2).copied().unwrap_or(0),
                    address: u64::from(le32(e, 4)),
                    gsi_base: le32(e, 8),
                };
                if let Some(slot) = madt.ioapics.iter_mut().find(|s| s.is_none()) {
                    *slot = Some(io);
                }
            }
            (2, 10..) => {
                let o = IrqOverride {
                    source: e.get(3).copied().unwrap_or(0),
                    gsi: le32(e, 4),
                    flags: le16(e, 8),
                };
                if let Some(slot) = madt.overrides.iter_mut().find(|s| s.is_none()) {
                    *slot = Some(o);
                }
            }
            (5, 12..) => madt.lapic = le64(e, 4),
            (1 | 2 | 5, _) => return Err(TableError::Malformed),
            _ => {}
        }
        rest = tail;
    }
    Ok(madt)
}

#[cfg(target_os = "none")]
static TABLES: spin::Once<Option<Acpi>> = spin::Once::new();

/// The machine's ACPI facts, read once (from the RSDP the start info names, or
/// found in the BIOS areas); `None` if there are no valid tables.
#[cfg(target_os = "none")]
pub fn tables() -> Option<&'static Acpi> {
    TABLES
        .call_once(|| {
            let hint = crate::boot_info().and_then(|b| b.rsdp_paddr());
            Acpi::discover(&crate::boot::RamReader, hint).ok()
        })
        .as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::start_info::Unreadable;
    use std::vec::Vec;

    struct Mem(Vec<u8>);

    impl PhysMemory for Mem {
        fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
            let start = usize::try_from(paddr).map_err(|_| Unreadable)?;
            let end = start.checked_add(buf.len()).ok_or(Unreadable)?;
            buf.copy_from_slice(self.0.get(start..end).ok_or(Unreadable)?);
            Ok(())
        }
    }

    fn fix_checksum(t: &mut [u8], at: usize) {
        t[at] = 0;
        t[at] = 0u8.wrapping_sub(byte_sum(t));
    }

    fn sdt(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(sig);
        t.extend_from_slice(&((36 + body.len()) as u32).to_le_bytes());
        t.resize(36, 0);
        t.extend_from_slice(body);
        fix_checksum(&mut t, 9);
        t
    }

    fn put(mem: &mut Mem, at: usize, bytes: &[u8]) {
        mem.0[at..at + bytes.len()].copy_from_slice(bytes);
    }

    const RSDP: usize = 0xf_5a00;
    const XSDT: usize = 0x7f_0000;
    const MCFG: usize = 0x7f_1000;
    const MADT: usize = 0x7f_2000;

    fn mcfg_body(base: u64, seg: u16, start: u8, end: u8) -> Vec<u8> {
        let mut b = std::vec![0u8; 8];
        b.extend_from_slice(&base.to_le_bytes());
        b.extend_from_slice(&seg.to_le_bytes());
        b.push(start);
        b.push(end);
        b.extend_from_slice(&[0; 4]);
        b
    }

    fn madt_body() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&[0, 8, 0, 0, 1, 0, 0, 0]); // local APIC
        b.extend_from_slice(&[1, 12, 0, 0]); // IOAPIC
        b.extend_from_slice(&0xfec0_0000u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&[2, 10, 0, 0]); // IRQ0 -> GSI2
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&[2, 10, 0, 9]); // IRQ9 -> GSI9, level high
        b.extend_from_slice(&9u32.to_le_bytes());
        b.extend_from_slice(&0xdu16.to_le_bytes());
        b
    }

    /// A QEMU-q35-like set of tables: RSDP v2 -> XSDT -> MCFG, MADT.
    fn machine() -> Mem {
        let mut mem = Mem(std::vec![0u8; 0x80_0000]);
        let mut rsdp = std::vec![0u8; 36];
        rsdp[..8].copy_from_slice(b"RSD PTR ");
        rsdp[15] = 2;
        rsdp[16..20].copy_from_slice(&(XSDT as u32).to_le_bytes());
        rsdp[20..24].copy_from_slice(&36u32.to_le_bytes());
        rsdp[24..32].copy_from_slice(&(XSDT as u64).to_le_bytes());
        fix_checksum(&mut rsdp[..20], 8);
        fix_checksum(&mut rsdp, 32);
        put(&mut mem, RSDP, &rsdp);
        let mut entries = Vec::new();
        entries.extend_from_slice(&(MCFG as u64).to_le_bytes());
        entries.extend_from_slice(&(MADT as u64).to_le_bytes());
        put(&mut mem, XSDT, &sdt(b"XSDT", &entries));
        put(
            &mut mem,
            MCFG,
            &sdt(b"MCFG", &mcfg_body(0xb000_0000, 0, 0, 255)),
        );
        put(&mut mem, MADT, &sdt(b"APIC", &madt_body()));
        mem
    }

    #[test]
    fn finds_mcfg_and_madt_by_scan_and_hint() {
        let mem = machine();
        for hint in [None, Some(RSDP as u64), Some(0x1234)] {
            let acpi = Acpi::discover(&mem, hint).expect("tables");
            assert_eq!(acpi.rsdp, RSDP as u64);
            assert_eq!(
                acpi.ecam,
                Some(Ecam {
                    base: 0xb000_0000,
                    start_bus: 0,
                    end_bus: 255
                })
            );
            let madt = acpi.madt.expect("madt");
            assert_eq!(madt.lapic, 0xfee0_0000);
            assert!(madt.pcat_compat);
            let io: Vec<_> = madt.ioapics().copied().collect();
            assert_eq!(
                io,
                [IoApicInfo {
                    id: 0,
                    address: 0xfec0_0000,
                    gsi_base: 0
                }]
            );
            assert_eq!(madt.isa_irq_gsi(0), 2);
            assert_eq!(madt.isa_irq_gsi(9), 9);
            assert_eq!(madt.isa_irq_gsi(11), 11);
            assert_eq!(acpi.rejected().count(), 0);
        }
        assert_eq!(
            Ecam {
                base: 0xb000_0000,
                start_bus: 1,
                end_bus: 2
            }
            .range(),
            Some((0xb010_0000, 0xb030_0000))
        );
    }

    #[test]
    fn rsdt_only_v1() {
        let mut mem = machine();
        let mut rsdp = std::vec![0u8; 20];
        rsdp[..8].copy_from_slice(b"RSD PTR ");
        rsdp[16..20].copy_from_slice(&0x7f_3000u32.to_le_bytes());
        fix_checksum(&mut rsdp, 8);
        put(&mut mem, RSDP, &[0; 36]);
        put(&mut mem, 0xe_0010, &rsdp);
        let mut entries = Vec::new();
        entries.extend_from_slice(&(MADT as u32).to_le_bytes());
        put(&mut mem, 0x7f_3000, &sdt(b"RSDT", &entries));
        let acpi = Acpi::discover(&mem, None).expect("tables");
        assert_eq!(acpi.rsdp, 0xe_0010);
        assert_eq!(acpi.ecam, None);
        assert!(acpi.madt.is_some());
    }

    #[test]
    fn bad_tables_are_rejected_not_trusted() {
        // Corrupt MCFG checksum.
        let mut mem = machine();
        mem.0[MCFG + 40] ^= 1;
        let acpi = Acpi::discover(&mem, None).expect("root ok");
        assert_eq!(acpi.ecam, None);
        assert_eq!(
            acpi.rejected().copied().collect::<Vec<_>>(),
            [(*b"MCFG", TableError::BadChecksum)]
        );
        // MCFG with an unaligned base or reversed buses.
        for body in [
            mcfg_body(0xb000_1000, 0, 0, 255),
            mcfg_body(0xb000_0000, 0, 9, 3),
            mcfg_body(!0xf_ffff, 0, 0, 255),
        ] {
            let mut mem = machine();
            put(&mut mem, MCFG, &sdt(b"MCFG", &body));
            let acpi = Acpi::discover(&mem, None).expect("root ok");
            assert_eq!(acpi.ecam, None);
        }
        // Other segments only: no ECAM, not an error.
        let mut mem = machine();
        put(
            &mut mem,
            MCFG,
            &sdt(b"MCFG", &mcfg_body(0xb000_0000, 1, 0, 255)),
        );
        let acpi = Acpi::discover(&mem, None).expect("root ok");
        assert_eq!((acpi.ecam, acpi.rejected().count()), (None, 0));
        // Huge length.
        let mut mem = machine();
        put(&mut mem, MADT + 4, &u32::MAX.to_le_bytes());
        let acpi = Acpi::discover(&mem, None).expect("root ok");
        assert!(acpi.madt.is_none());
        // MADT entry running past the end / zero-length entry (would loop).
        for bad in [[1u8, 40], [0u8, 0]] {
            let mut mem = machine();
            let mut body = madt_body();
            body.extend_from_slice(&bad);
            put(&mut mem, MADT, &sdt(b"APIC", &body));
            let acpi = Acpi::discover(&mem, None).expect("root ok");
            assert!(acpi.madt.is_none(), "{bad:?}");
        }
        // Root table unreadable.
        let mut mem = machine();
        put(&mut mem, RSDP + 24, &(u64::MAX - 8).to_le_bytes());
        let mut rsdp = mem.0[RSDP..RSDP + 36].to_vec();
        fix_checksum(&mut rsdp, 32);
        put(&mut mem, RSDP, &rsdp);
        assert!(matches!(
            Acpi::discover(&mem, None),
            Err(AcpiError::BadRoot(TableError::Unreadable))
        ));
        // Nothing at all.
        let mem = Mem(std::vec![0u8; 0x10_0000]);
        assert_eq!(Acpi::discover(&mem, None), Err(AcpiError::NoRsdp));
    }

    #[test]
    fn table_pointers_to_nowhere() {
        let mut mem = machine();
        let mut entries = Vec::new();
        entries.extend_from_slice(&u64::MAX.to_le_bytes());
        entries.extend_from_slice(&(MADT as u64).to_le_bytes());
        put(&mut mem, XSDT, &sdt(b"XSDT", &entries));
        let acpi = Acpi::discover(&mem, None).expect("root ok");
        assert!(acpi.madt.is_some());
        assert_eq!(acpi.rejected().count(), 1);
    }
}
