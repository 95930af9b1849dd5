//! Property tests: the decoder on arbitrary bytes, MOV against a reference
//! model, and the page walk against a reference walker on random tables.

use proptest::prelude::*;

use super::support::*;
use crate::paging::*;
use crate::*;

// ---- decoding arbitrary bytes ---------------------------------------------

/// Bytes that steer the decoder into its interesting paths.
const INTERESTING: &[u8] = &[
    0x66, 0x67, 0xF0, 0xF2, 0xF3, 0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x40, 0x41, 0x44, 0x48, 0x4C,
    0x4F, 0x0F, 0x00, 0x01, 0x08, 0x09, 0x0B, 0x21, 0x31, 0x39, 0x3B, 0x63, 0x80, 0x81, 0x82, 0x83,
    0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8B, 0xA0, 0xA1, 0xA2, 0xA3, 0xAA, 0xAB, 0xAC, 0xAD,
    0xC6, 0xC7, 0xF6, 0xF7, 0xFE, 0xFF, 0xA3, 0xAB, 0xB3, 0xBB, 0xBA, 0xB6, 0xB7, 0xBE, 0xBF, 0xC3,
    0x04, 0x05, 0x07, 0x24, 0x25, 0x44, 0x45, 0x84, 0x85, 0xC0,
];

fn insn_bytes() -> impl Strategy<Value = [u8; 15]> {
    proptest::array::uniform15(prop_oneof![
        any::<u8>(),
        proptest::sample::select(INTERESTING),
    ])
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![Just(Mode::Bits16), Just(Mode::Bits32), Just(Mode::Bits64)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn decode_never_panics_and_len_is_bounded(bytes in insn_bytes(), mode in mode()) {
        match decode(&bytes, mode) {
            Ok(insn) => {
                let len = usize::from(insn.len);
                prop_assert!((1..=15).contains(&len));
                prop_assert_eq!(insn.bytes(), &bytes[..len]);
                // The instruction needs exactly its own bytes.
                prop_assert_eq!(decode(&bytes[..len], mode), Ok(insn));
                prop_assert_eq!(decode(&bytes[..len - 1], mode), Err(EmulError::Truncated));
                prop_assert!([1, 2, 4, 8].contains(&insn.size.bytes()));
                prop_assert!([1, 2, 4, 8].contains(&insn.mem.scale));
                if mode != Mode::Bits64 {
                    prop_assert!(!insn.mem.rip_relative);
                    prop_assert!(insn.size != Size::B8);
                }
            }
            Err(EmulError::Unsupported { bytes: b, len }) => {
                prop_assert!(usize::from(len) <= 15);
                prop_assert_eq!(&b[..], &bytes[..]);
            }
            Err(EmulError::TooLong) => {}
            Err(e) => prop_assert!(false, "unexpected {:?}", e),
        }
        // Any prefix of the bytes decodes without panicking too.
        for n in 0..15 {
            let _ = decode(&bytes[..n], mode);
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5_000))]

    /// Decoding then executing arbitrary bytes against the mock never
    /// panics; a success advances RIP by the length and touches only the
    /// operand's page, with well-formed accesses.
    #[test]
    fn execute_never_panics(
        bytes in insn_bytes(),
        mode in mode(),
        gprs in proptest::array::uniform16(prop_oneof![
            any::<u64>(),
            (0u64..0x1_0000_0000),
            Just(0xFEE0_0000u64),
        ]),
        rflags in any::<u64>(),
        fault in any::<u64>(),
    ) {
        let (cpu, ram) = machine(mode, &bytes);
        let mut r = regs();
        for (i, v) in gprs.iter().enumerate() {
            *r.gpr_mut(Gpr::from_low4(i as u8)) = *v;
        }
        r.rip = if mode == Mode::Bits16 { 0 } else { CODE };
        r.rflags = rflags;
        let emu = Emulator::new(cpu, &ram);
        let mut fault = fault;
        for _ in 0..2 {
            let before = r;
            let mut dev = Dev::default();
            match emu.emulate(&mut r, &mut dev, fault) {
                Ok(insn) => {
                    prop_assert!((1..=15).contains(&insn.len));
                    let mask = match mode {
                        Mode::Bits16 => 0xFFFF,
                        Mode::Bits32 => 0xFFFF_FFFF,
                        Mode::Bits64 => u64::MAX,
                    };
                    prop_assert_eq!(r.rip, (before.rip + u64::from(insn.len)) & mask);
                    prop_assert!(dev.log.len() <= 2);
                    for io in &dev.log {
                        let (gpa, size) = match *io {
                            Io::Read(g, s) | Io::Write(g, s, _) => (g, s),
                        };
                        prop_assert_eq!(gpa & !0xFFF, fault & !0xFFF);
                        prop_assert!((gpa & 0xFFF) + u64::from(size.bytes()) <= 0x1000);
                    }
                    break;
                }
                Err(EmulError::GpaMismatch { operand_gpa, .. }) => {
                    prop_assert_eq!(r, before);
                    fault = operand_gpa;
                }
                Err(EmulError::Unsupported { len, .. }) => {
                    prop_assert!(usize::from(len) <= 15);
                    prop_assert_eq!(r, before);
                    break;
                }
                Err(_) => {
                    prop_assert_eq!(r, before);
                    break;
                }
            }
        }
    }
}

// ---- MOV against a reference model ----------------------------------------

/// A MOV between a register or immediate and memory, described
/// structurally; [`MovCase::encode`] assembles it independently of the
/// decoder.
#[derive(Clone, Debug)]
struct MovCase {
    mode: Mode,
    kind: MovKind,
    size: Size,
    reg: u8,
    force_rex: bool,
    base: Option<u8>,
    index: Option<u8>,
    scale_log: u8,
    disp: Disp,
    rip_relative: bool,
    imm: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum MovKind {
    Load,
    Store,
    StoreImm,
    Movzx,
    Movsx,
}

#[derive(Clone, Copy, Debug)]
enum Disp {
    None,
    D8(i8),
    D32(i32),
}

impl MovCase {
    fn rex_needed(&self) -> bool {
        self.size == Size::B8
            || self.reg >= 8
            || self.base.is_some_and(|b| b >= 8)
            || self.index.is_some_and(|i| i >= 8)
            || self.force_rex
    }

    /// The memory width of the access.
    fn mem_size(&self) -> Size {
        match self.kind {
            MovKind::Movzx | MovKind::Movsx => {
                if self.size == Size::B1 {
                    Size::B1
                } else {
                    Size::B2
                }
            }
            _ => self.size,
        }
    }

    /// The destination width of MOVZX/MOVSX.
    fn ext_dst(&self) -> Size {
        match self.size {
            Size::B1 | Size::B2 => Size::B4,
            s => s,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let opsize = match self.kind {
            MovKind::Movzx | MovKind::Movsx => self.ext_dst(),
            _ => self.size,
        };
        let p66 = match self.mode {
            Mode::Bits16 => opsize == Size::B4,
            _ => opsize == Size::B2,
        };
        if p66 {
            out.push(0x66);
        }
        if self.mode == Mode::Bits64 && self.rex_needed() {
            let mut rex = 0x40;
            if opsize == Size::B8 {
                rex |= 8;
            }
            if self.reg >= 8 {
                rex |= 4;
            }
            if self.index.is_some_and(|i| i >= 8) {
                rex |= 2;
            }
            if self.base.is_some_and(|b| b >= 8) {
                rex |= 1;
            }
            out.push(rex);
        }
        let byte = self.size == Size::B1;
        match self.kind {
            MovKind::Load => out.push(if byte { 0x8A } else { 0x8B }),
            MovKind::Store => out.push(if byte { 0x88 } else { 0x89 }),
            MovKind::StoreImm => out.push(if byte { 0xC6 } else { 0xC7 }),
            MovKind::Movzx => out.extend([0x0F, if byte { 0xB6 } else { 0xB7 }]),
            MovKind::Movsx => out.extend([0x0F, if byte { 0xBE } else { 0xBF }]),
        }
        let reg = if self.kind == MovKind::StoreImm {
            0
        } else {
            self.reg & 7
        };
        // ModRM, SIB, displacement.
        let disp_bytes: Vec<u8>;
        let (md, rm, sib) = if self.rip_relative {
            disp_bytes = match self.disp {
                Disp::D32(d) => d.to_le_bytes().to_vec(),
                Disp::D8(d) => i32::from(d).to_le_bytes().to_vec(),
                Disp::None => vec![0; 4],
            };
            (0, 5, None)
        } else {
            let need_sib = self.index.is_some()
                || self.base.is_none()
                || self.base.is_some_and(|b| b & 7 == 4);
            let base_low = self.base.map(|b| b & 7);
            let (md, d) = match (self.base, self.disp) {
                // No base: disp32 always, mod 00.
                (None, Disp::D8(d)) => (0, i32::from(d).to_le_bytes().to_vec()),
                (None, Disp::D32(d)) => (0, d.to_le_bytes().to_vec()),
                (None, Disp::None) => (0, vec![0; 4]),
                // rBP/r13 base needs a displacement.
                (Some(_), Disp::None) if base_low == Some(5) => (1, vec![0]),
                (Some(_), Disp::None) => (0, vec![]),
                (Some(_), Disp::D8(d)) => (1, vec![d as u8]),
                (Some(_), Disp::D32(d)) => (2, d.to_le_bytes().to_vec()),
            };
            disp_bytes = d;
            if need_sib {
                let index = self.index.map_or(4, |i| i & 7);
                let base = base_low.unwrap_or(5);
                (md, 4, Some((self.scale_log << 6) | (index << 3) | base))
            } else {
                (md, base_low.unwrap_or(0), None)
            }
        };
        out.push((md << 6) | (reg << 3) | rm);
        if let Some(s) = sib {
            out.push(s);
        }
        out.extend(&disp_bytes);
        if self.kind == MovKind::StoreImm {
            let n = match self.size {
                Size::B1 => 1,
                Size::B2 => 2,
                _ => 4,
            };
            out.extend(&self.imm.to_le_bytes()[..n]);
        }
        out
    }

    fn disp_value(&self) -> i64 {
        match self.disp {
            Disp::None => 0,
            Disp::D8(d) => d.into(),
            Disp::D32(d) => d.into(),
        }
    }
}

fn mov_case() -> impl Strategy<Value = MovCase> {
    (
        prop_oneof![Just(Mode::Bits64), Just(Mode::Bits32)],
        prop_oneof![
            Just(MovKind::Load),
            Just(MovKind::Store),
            Just(MovKind::StoreImm),
            Just(MovKind::Movzx),
            Just(MovKind::Movsx)
        ],
        prop_oneof![
            Just(Size::B1),
            Just(Size::B2),
            Just(Size::B4),
            Just(Size::B8)
        ],
        0u8..16,
        any::<bool>(),
        proptest::option::weighted(0.8, 0u8..16),
        proptest::option::weighted(0.5, 0u8..16),
        0u8..4,
        prop_oneof![
            Just(Disp::None),
            any::<i8>().prop_map(Disp::D8),
            any::<i32>().prop_map(Disp::D32)
        ],
        proptest::bool::weighted(0.15),
        any::<u64>(),
    )
        .prop_map(
            |(mode, kind, size, reg, force_rex, base, index, scale_log, disp, rip, imm)| {
                let mut c = MovCase {
                    mode,
                    kind,
                    size,
                    reg,
                    force_rex,
                    base,
                    index: index.filter(|&i| i != 4),
                    scale_log,
                    disp,
                    rip_relative: rip,
                    imm,
                };
                if mode == Mode::Bits32 {
                    c.reg &= 7;
                    c.base = c.base.map(|b| b & 7);
                    c.index = c.index.map(|i| i & 7).filter(|&i| i != 4);
                    c.force_rex = false;
                    c.rip_relative = false;
                    if c.size == Size::B8 {
                        c.size = Size::B4;
                    }
                }
                if c.rip_relative {
                    c.base = None;
                    c.index = None;
                }
                c
            },
        )
}

/// The reference: register effects of a MOV written from the SDM's
/// description, not from the emulator's helpers.
fn ref_write_reg(regs: &mut Regs, n: u8, rex: bool, size: Size, v: u64) {
    let (g, high) = if size == Size::B1 && !rex && (4..8).contains(&n) {
        (Gpr::from_low4(n - 4), true)
    } else {
        (Gpr::from_low4(n), false)
    };
    let old = regs.gpr(g);
    let new = match (size, high) {
        (Size::B1, true) => (old & !0xFF00) | ((v & 0xFF) << 8),
        (Size::B1, false) => (old & !0xFF) | (v & 0xFF),
        (Size::B2, _) => (old & !0xFFFF) | (v & 0xFFFF),
        (Size::B4, _) => v & 0xFFFF_FFFF,
        (Size::B8, _) => v,
    };
    *regs.gpr_mut(g) = new;
}

fn ref_read_reg(regs: &Regs, n: u8, rex: bool, size: Size) -> u64 {
    if size == Size::B1 && !rex && (4..8).contains(&n) {
        (regs.gpr(Gpr::from_low4(n - 4)) >> 8) & 0xFF
    } else {
        let v = regs.gpr(Gpr::from_low4(n));
        match size {
            Size::B1 => v & 0xFF,
            Size::B2 => v & 0xFFFF,
            Size::B4 => v & 0xFFFF_FFFF,
            Size::B8 => v,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5_000))]

    #[test]
    fn mov_agrees_with_reference_model(
        c in mov_case(),
        target in 0x20_0000u64..0xFFFF_F000,
        vals in proptest::array::uniform16(any::<u64>()),
        devval in any::<u64>(),
    ) {
        let code = c.encode();
        let (cpu, ram) = machine(c.mode, &code);
        let mut r = regs();
        for (i, v) in vals.iter().enumerate() {
            *r.gpr_mut(Gpr::from_low4(i as u8)) = *v;
        }
        // Solve for the base (or index) so the operand lands on `target`.
        let len = code.len() as u64;
        let scale = 1u64 << c.scale_log;
        let disp = c.disp_value() as u64;
        let amask = if c.mode == Mode::Bits64 { u64::MAX } else { 0xFFFF_FFFF };
        let ea = |r: &Regs| {
            let mut ea = disp;
            if c.rip_relative {
                ea = ea.wrapping_add(r.rip + len);
            }
            if let Some(b) = c.base {
                ea = ea.wrapping_add(r.gpr(Gpr::from_low4(b)));
            }
            if let Some(i) = c.index {
                ea = ea.wrapping_add(r.gpr(Gpr::from_low4(i)).wrapping_mul(scale));
            }
            ea & amask
        };
        if let Some(b) = c.base {
            let idx = c.index.map_or(0, |i| r.gpr(Gpr::from_low4(i)).wrapping_mul(scale));
            let want = target.wrapping_sub(disp).wrapping_sub(idx);
            if c.index == Some(b) {
                *r.gpr_mut(Gpr::from_low4(b)) =
                    target.wrapping_sub(disp) / (scale + 1);
            } else {
                *r.gpr_mut(Gpr::from_low4(b)) = want;
            }
        } else if let Some(i) = c.index {
            *r.gpr_mut(Gpr::from_low4(i)) = target.wrapping_sub(disp) / scale;
        }
        let t = ea(&r);
        let size = c.mem_size();
        // Only addresses the identity map covers, within one page.
        prop_assume!(t < 0x1_0000_0000 && (t & 0xFFF) + u64::from(size.bytes()) <= 0x1000);

        let rex = c.mode == Mode::Bits64 && c.rex_needed();
        let mut want = r;
        let mut want_log = Vec::new();
        let dv = devval & size.mask();
        match c.kind {
            MovKind::Load => {
                want_log.push(Io::Read(t, size));
                ref_write_reg(&mut want, c.reg, rex, size, dv);
            }
            MovKind::Movzx => {
                want_log.push(Io::Read(t, size));
                ref_write_reg(&mut want, c.reg, rex, c.ext_dst(), dv);
            }
            MovKind::Movsx => {
                want_log.push(Io::Read(t, size));
                let s = if size == Size::B1 { dv as i8 as i64 } else { dv as i16 as i64 };
                ref_write_reg(&mut want, c.reg, rex, c.ext_dst(), s as u64);
            }
            MovKind::Store => {
                want_log.push(Io::Write(t, size, ref_read_reg(&r, c.reg, rex, size)));
            }
            MovKind::StoreImm => {
                let v = match size {
                    Size::B1 => c.imm & 0xFF,
                    Size::B2 => c.imm & 0xFFFF,
                    Size::B4 => c.imm & 0xFFFF_FFFF,
                    Size::B8 => c.imm as u32 as i32 as i64 as u64,
                };
                want_log.push(Io::Write(t, size, v));
            }
        }
        want.rip += len;

        let mut dev = Dev::default();
        dev.poke(t, size, devval);
        dev.log.clear();
        let insn = Emulator::new(cpu, &ram)
            .emulate(&mut r, &mut dev, t)
            .map_err(|e| TestCaseError::fail(format!("{code:02x?}: {e:?}")))?;
        prop_assert_eq!(u64::from(insn.len), len, "{:02x?}", code);
        prop_assert_eq!(dev.log, want_log, "{:02x?}", code);
        prop_assert_eq!(r, want, "{:02x?}", code);
    }
}

// ---- page walk against a reference walker ---------------------------------

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Pages of test RAM; entries point at pages up to a few beyond it.
const PAGES: u64 = 8;

/// A random paging-structure entry from one 64-bit draw: mostly present,
/// pointing into (or just past) RAM, with random R/W, U/S, PWT, PCD, PS,
/// G and NX, and occasionally one stray bit at 12 or above (large-page
/// address bits, reserved bits, ignored bits).
fn random_entry(rng: &mut Rng, wide: bool) -> u64 {
    let r = rng.next();
    let page = (r & 0xFF) % (PAGES + 2);
    let mut e = page << 12;
    if (r >> 8) % 100 < 85 {
        e |= 1;
    }
    // R/W, U/S, PWT, PCD, G from bits 16..21 (about 60% each: two draws).
    for (i, bit) in [1u64, 2, 3, 4, 8].into_iter().enumerate() {
        if (r >> (16 + 2 * i)) & 3 != 0 {
            e |= 1 << bit;
        }
    }
    if (r >> 26) & 3 == 0 {
        e |= 1 << 7;
        // Mostly a well-aligned large page: clear the low address bits
        // that are reserved (or must be zero) in one.
        if (r >> 32) & 3 != 0 {
            e &= !0x3FFF_E000;
        }
    }
    if (r >> 28) % 100 < 5 {
        let top = if wide { 64 } else { 32 };
        e |= 1 << (12 + (r >> 40) % (top - 12));
    }
    if wide && (r >> 35) % 100 < 15 {
        e |= 1 << 63;
    }
    if !wide {
        e &= 0xFFFF_FFFF;
    }
    e
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Ok(u64, u64),
    Fault(u64, u32),
    NonCanonical,
    Mem(u64),
}

fn outcome(r: Result<Translation, WalkError>) -> Outcome {
    match r {
        Ok(t) => Outcome::Ok(t.gpa, t.page_size),
        Err(WalkError::PageFault(pf)) => Outcome::Fault(pf.address, pf.error_code),
        Err(WalkError::NonCanonical { .. }) => Outcome::NonCanonical,
        Err(WalkError::Memory(m)) => Outcome::Mem(m.gpa),
    }
}

/// The reference walker: SDM vol. 3 §4.3–4.6, one mode at a time.
fn reference(ram: &Ram, p: &Paging, linear: u64, a: Access) -> Outcome {
    let bit = |v: u64, n: u32| (v >> n) & 1 == 1;
    let m = u32::from(p.max_phys_bits.clamp(32, 52));
    let nxe = bit(p.efer, 11);
    let pae = bit(p.cr4, 5);
    let fetch = a.kind == AccessKind::Execute;
    let write = a.kind == AccessKind::Write;
    let mut ec = 0u32;
    if write {
        ec |= 2;
    }
    if a.user {
        ec |= 4;
    }
    if fetch && (bit(p.cr4, 20) || (pae && nxe)) {
        ec |= 16;
    }
    let rd = |gpa: u64, n: usize| -> Result<u64, Outcome> {
        let mut b = [0u8; 8];
        ram.read(gpa, &mut b[..n]).map_err(|_| Outcome::Mem(gpa))?;
        Ok(u64::from_le_bytes(b))
    };
    let mask = |hi: u32, lo: u32| -> u64 {
        let mut v = 0;
        for i in lo..=hi {
            v |= 1u64 << i;
        }
        v
    };
    if !bit(p.cr0, 31) {
        return Outcome::Ok(linear & 0xFFFF_FFFF, 4096);
    }
    // Each mode yields the entries that grant rights, the physical address
    // and the page size, or an early outcome.
    let walk = || -> Result<(Vec<u64>, u64, u64, u64), Outcome> {
        if !pae {
            let la = linear & 0xFFFF_FFFF;
            let pde = rd((p.cr3 & 0xFFFF_F000) + (la >> 22) * 4, 4)?;
            if !bit(pde, 0) {
                return Err(Outcome::Fault(la, ec));
            }
            if bit(pde, 7) && bit(p.cr4, 4) {
                let mut rsvd = 1u64 << 21;
                for b in 13..=20u32 {
                    if 32 + (b - 13) >= m {
                        rsvd |= 1 << b;
                    }
                }
                if pde & rsvd != 0 {
                    return Err(Outcome::Fault(la, ec | 9));
                }
                let pa = (pde & 0xFFC0_0000) + (((pde >> 13) & 0xFF) << 32) + (la % (4 << 20));
                return Ok((vec![pde], pa, 4 << 20, la));
            }
            let pte = rd((pde & 0xFFFF_F000) + ((la >> 12) % 1024) * 4, 4)?;
            if !bit(pte, 0) {
                return Err(Outcome::Fault(la, ec));
            }
            return Ok((vec![pde, pte], (pte & 0xFFFF_F000) + la % 4096, 4096, la));
        }
        let addr = mask(m - 1, 12);
        if !bit(p.efer, 10) {
            let la = linear & 0xFFFF_FFFF;
            let i = la >> 30;
            let pdpte = match p.pdptes {
                Some(a) => a[i as usize],
                None => rd((p.cr3 & 0xFFFF_FFE0) + i * 8, 8)?,
            };
            if !bit(pdpte, 0) {
                return Err(Outcome::Fault(la, ec));
            }
            if pdpte & (mask(2, 1) | mask(8, 5) | mask(63, m)) != 0 {
                return Err(Outcome::Fault(la, ec | 9));
            }
            let mut rsvd = mask(62, m);
            if !nxe {
                rsvd |= 1 << 63;
            }
            let pde = rd((pdpte & addr) + ((la >> 21) % 512) * 8, 8)?;
            if !bit(pde, 0) {
                return Err(Outcome::Fault(la, ec));
            }
            if bit(pde, 7) {
                if pde & (rsvd | mask(20, 13)) != 0 {
                    return Err(Outcome::Fault(la, ec | 9));
                }
                let pa = (pde & addr & !0x1F_FFFF) + la % (2 << 20);
                return Ok((vec![pde], pa, 2 << 20, la));
            }
            if pde & rsvd != 0 {
                return Err(Outcome::Fault(la, ec | 9));
            }
            let pte = rd((pde & addr) + ((la >> 12) % 512) * 8, 8)?;
            if !bit(pte, 0) {
                return Err(Outcome::Fault(la, ec));
            }
            if pte & rsvd != 0 {
                return Err(Outcome::Fault(la, ec | 9));
            }
            return Ok((vec![pde, pte], (pte & addr) + la % 4096, 4096, la));
        }
        let levels: u32 = if bit(p.cr4, 12) { 5 } else { 4 };
        let va_bits = 12 + 9 * levels;
        let sext = ((linear << (64 - va_bits)) as i64 >> (64 - va_bits)) as u64;
        if sext != linear {
            return Err(Outcome::NonCanonical);
        }
        let mut rsvd = mask(51, m);
        if !nxe {
            rsvd |= 1 << 63;
        }
        let mut table = p.cr3 & addr;
        let mut path = Vec::new();
        for level in (1..=levels).rev() {
            let shift = 12 + 9 * (level - 1);
            let e = rd(table + ((linear >> shift) % 512) * 8, 8)?;
            if !bit(e, 0) {
                return Err(Outcome::Fault(linear, ec));
            }
            let ps = bit(e, 7);
            let mut r = rsvd;
            if level >= 4 {
                r |= 1 << 7;
            }
            if level == 3 && ps {
                r |= mask(29, 13);
            }
            if level == 2 && ps {
                r |= mask(20, 13);
            }
            if e & r != 0 {
                return Err(Outcome::Fault(linear, ec | 9));
            }
            path.push(e);
            if level == 1 || (ps && level <= 3) {
                let size = 1u64 << shift;
                return Ok((path, (e & addr & !(size - 1)) + linear % size, size, linear));
            }
            table = e & addr;
        }
        unreachable!()
    };
    let (path, pa, size, la) = match walk() {
        Ok(x) => x,
        Err(o) => return o,
    };
    let user_page = path.iter().all(|e| bit(*e, 2));
    let writable = path.iter().all(|e| bit(*e, 1));
    let xd = nxe && path.iter().any(|e| bit(*e, 63));
    let smep = bit(p.cr4, 20);
    let smap = bit(p.cr4, 21);
    let wp = bit(p.cr0, 16);
    let fault = if a.user {
        !user_page || (write && !writable) || (fetch && xd)
    } else if fetch {
        xd || (smep && user_page)
    } else {
        (smap && user_page && !a.ac) || (write && wp && !writable)
    };
    if fault {
        Outcome::Fault(la, ec | 1)
    } else {
        Outcome::Ok(pa, size)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn walk_agrees_with_reference(
        seed in any::<u64>(),
        mode in 0u8..4,
        linear in any::<u64>(),
        canonical in proptest::bool::weighted(0.9),
        cr3_page in 0..PAGES,
        cr3_low in 0u64..0x1000,
        wp in any::<bool>(),
        pse in any::<bool>(),
        nxe in any::<bool>(),
        smep in any::<bool>(),
        smap in any::<bool>(),
        maxphy in prop_oneof![Just(36u8), Just(39), Just(46), Just(52), Just(20), Just(60)],
        pdptes in proptest::option::weighted(0.3, proptest::array::uniform4(any::<u64>())),
        kind in prop_oneof![Just(AccessKind::Read), Just(AccessKind::Write), Just(AccessKind::Execute)],
        user in any::<bool>(),
        ac in any::<bool>(),
    ) {
        let mut rng = Rng(seed | 1);
        let wide = mode != 0;
        let mut ram = Ram::new((PAGES * 4096) as usize);
        let step = if wide { 8 } else { 4 };
        for a in (0..PAGES * 4096).step_by(step) {
            let e = random_entry(&mut rng, wide);
            if wide {
                ram.write_u64(a, e);
            } else {
                ram.write_u32(a, e as u32);
            }
        }
        let mut cr0 = CR0_PE | CR0_PG;
        if wp {
            cr0 |= CR0_WP;
        }
        let mut cr4 = 0;
        let mut efer = 0;
        match mode {
            0 => {}
            1 => cr4 |= CR4_PAE,
            2 => {
                cr4 |= CR4_PAE;
                efer |= EFER_LMA;
            }
            _ => {
                cr4 |= CR4_PAE | CR4_LA57;
                efer |= EFER_LMA;
            }
        }
        for (on, bit) in [(pse, CR4_PSE), (smep, CR4_SMEP), (smap, CR4_SMAP)] {
            if on {
                cr4 |= bit;
            }
        }
        if nxe {
            efer |= EFER_NXE;
        }
        let linear = if canonical && mode >= 2 {
            let bits = if mode == 3 { 57 } else { 48 };
            ((linear << (64 - bits)) as i64 >> (64 - bits)) as u64
        } else {
            linear
        };
        // PAE PDPTEs have more reserved bits than other entries: make them
        // mostly valid.
        let pdpte_fix = |e: u64, r: u64| {
            if !r.is_multiple_of(4) { e & !0x8000_0000_0000_01E6 } else { e }
        };
        if mode == 1 {
            let base = ((cr3_page << 12) | cr3_low) & 0xFFFF_FFE0;
            for i in 0..4 {
                let mut b = [0u8; 8];
                if ram.read(base + 8 * i, &mut b).is_ok() {
                    let e = pdpte_fix(u64::from_le_bytes(b), rng.next());
                    ram.write_u64(base + 8 * i, e);
                }
            }
        }
        let pdptes = pdptes.map(|a| a.map(|_| {
            let e = random_entry(&mut rng, true);
            pdpte_fix(e, rng.next())
        }));
        let p = Paging {
            cr0,
            cr3: (cr3_page << 12) | cr3_low,
            cr4,
            efer,
            max_phys_bits: maxphy,
            pdptes,
        };
        let a = Access { kind, user, ac };
        prop_assert_eq!(
            outcome(translate(&ram, &p, linear, a)),
            reference(&ram, &p, linear, a),
            "mode {} linear {:#x}", mode, linear
        );
    }
}
