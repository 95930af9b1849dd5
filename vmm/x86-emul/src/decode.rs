//! Decoding the instructions that access MMIO.

pub use crate::alu::{AluOp, BitOp, UnaryOp};
use crate::emulate::EmulError;
use crate::mem::Size;
use crate::regs::{Gpr, RegOperand, Regs};

/// The architectural limit on an instruction's length.
pub const MAX_INSN_LEN: usize = 15;

/// The code size of the running code segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// 16-bit code: real mode, virtual-8086 mode, or a 16-bit segment.
    Bits16,
    /// 32-bit code: a 32-bit segment in protected or compatibility mode.
    Bits32,
    /// 64-bit mode (EFER.LMA and CS.L).
    Bits64,
}

impl Mode {
    /// The mode for EFER.LMA, CS.L and CS.D/B.
    pub const fn from_cs(efer_lma: bool, cs_l: bool, cs_db: bool) -> Mode {
        if efer_lma && cs_l {
            Mode::Bits64
        } else if cs_db {
            Mode::Bits32
        } else {
            Mode::Bits16
        }
    }
}

/// A segment register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Segment {
    Es,
    Cs,
    Ss,
    Ds,
    Fs,
    Gs,
}

/// The width of an effective address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddrSize {
    /// 16-bit addressing (BX/BP/SI/DI forms).
    A16,
    /// 32-bit addressing.
    A32,
    /// 64-bit addressing.
    A64,
}

impl AddrSize {
    /// All-ones in the address width.
    pub const fn mask(self) -> u64 {
        match self {
            AddrSize::A16 => 0xFFFF,
            AddrSize::A32 => 0xFFFF_FFFF,
            AddrSize::A64 => u64::MAX,
        }
    }
}

/// A memory operand: `segment:[base + index * scale + disp]`, or
/// `[next RIP + disp]` when `rip_relative`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemOperand {
    /// The segment (after overrides). In 64-bit mode only FS and GS have a
    /// base.
    pub segment: Segment,
    /// The base register.
    pub base: Option<Gpr>,
    /// The index register.
    pub index: Option<Gpr>,
    /// The index multiplier: 1, 2, 4 or 8.
    pub scale: u8,
    /// The displacement (sign-extended; a moffs offset verbatim).
    pub disp: i64,
    /// RIP-relative addressing: the base is the next instruction's RIP.
    pub rip_relative: bool,
    /// The address size; the sum wraps at this width.
    pub addr_size: AddrSize,
}

/// A source operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operand {
    /// A register.
    Reg(RegOperand),
    /// An immediate, sign-extended to 64 bits as the instruction specifies.
    Imm(u64),
}

/// How a load widens its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Extend {
    /// Same width, or zero-extended (`MOVZX`).
    Zero,
    /// Sign-extended (`MOVSX`, `MOVSXD`).
    Sign,
}

/// What the instruction does with its memory operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `MOV`, `MOVZX`, `MOVSX`, `MOVSXD`: `dst = extend(mem)`.
    Load {
        /// The destination register.
        dst: RegOperand,
        /// The destination width (at least the memory width).
        dst_size: Size,
        /// Zero or sign extension.
        extend: Extend,
    },
    /// `MOV`, `MOVNTI`: `mem = src`.
    Store {
        /// The value stored.
        src: Operand,
    },
    /// `mem = mem op src` (flags only for `CMP` and `TEST`).
    Alu {
        /// The operation.
        op: AluOp,
        /// The second operand.
        src: Operand,
    },
    /// `dst = dst op mem` (flags only for `CMP`).
    AluToReg {
        /// The operation.
        op: AluOp,
        /// The first operand and destination.
        dst: RegOperand,
    },
    /// `mem = op mem`.
    Unary {
        /// The operation.
        op: UnaryOp,
    },
    /// `XCHG mem, reg`.
    Xchg {
        /// The register exchanged with memory.
        reg: RegOperand,
    },
    /// `BT`/`BTS`/`BTR`/`BTC`. A register offset is a signed bit index that
    /// may reach outside the addressed operand; an immediate is taken
    /// modulo the operand width.
    Bit {
        /// The operation.
        op: BitOp,
        /// The bit offset.
        offset: Operand,
    },
    /// `STOS` without `REP`: `ES:[rDI] = rAX`, then rDI steps by the size.
    Stos,
    /// `LODS` without `REP`: `rAX = [rSI]`, then rSI steps by the size.
    Lods,
}

/// A decoded instruction with one memory operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Instruction {
    /// The instruction's bytes (the first `len` are meaningful).
    bytes: [u8; MAX_INSN_LEN],
    /// Its length in bytes, 1 to 15.
    pub len: u8,
    /// The code size it was decoded for.
    pub mode: Mode,
    /// What it does.
    pub op: Op,
    /// The width of the memory access (for `Load`, of the memory operand).
    pub size: Size,
    /// The memory operand.
    pub mem: MemOperand,
    /// It carried a `LOCK` prefix (`XCHG` is locked regardless).
    pub lock: bool,
}

impl Instruction {
    /// The instruction's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.bytes
            .get(..usize::from(self.len))
            .unwrap_or(&self.bytes)
    }

    /// The offset in its segment (effective address) of the bytes the
    /// instruction accesses, with `regs` as they were before it: the
    /// ModRM/SIB sum, RIP-relative to the next instruction, wrapped at the
    /// address size. For `BT*` with a register bit offset this includes the
    /// displacement to the word holding the bit.
    pub fn operand_offset(&self, regs: &Regs) -> u64 {
        let m = &self.mem;
        let mut ea = m.disp as u64;
        if m.rip_relative {
            ea = ea.wrapping_add(regs.rip.wrapping_add(u64::from(self.len)));
        }
        if let Some(b) = m.base {
            ea = ea.wrapping_add(regs.gpr(b));
        }
        if let Some(i) = m.index {
            ea = ea.wrapping_add(regs.gpr(i).wrapping_mul(u64::from(m.scale)));
        }
        if let Op::Bit {
            offset: Operand::Reg(r),
            ..
        } = self.op
        {
            // The bit offset is signed; the operand holding the bit is
            // offset / width operands away.
            let off = self.size.sign_extend(regs.read(r, self.size)) as i64;
            let shift = self.size.bits().trailing_zeros();
            let disp = (off >> shift).wrapping_mul(i64::from(self.size.bytes()));
            ea = ea.wrapping_add(disp as u64);
        }
        ea & m.addr_size.mask()
    }

    /// Whether it reads its memory operand.
    pub const fn reads_memory(&self) -> bool {
        !matches!(self.op, Op::Store { .. } | Op::Stos)
    }

    /// Whether it writes its memory operand.
    pub const fn writes_memory(&self) -> bool {
        match self.op {
            Op::Load { .. } | Op::AluToReg { .. } | Op::Lods => false,
            Op::Store { .. } | Op::Stos | Op::Unary { .. } | Op::Xchg { .. } => true,
            Op::Alu { op, .. } => op.writes_result(),
            Op::Bit { op, .. } => op.writes_result(),
        }
    }
}

/// Why decoding stopped early (internal; mapped to [`EmulError`]).
enum Stop {
    /// The bytes ran out before the instruction ended.
    Truncated,
    /// Longer than 15 bytes.
    TooLong,
    /// Not an instruction this crate emulates.
    Unsupported,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn u8(&mut self) -> Result<u8, Stop> {
        if self.pos >= MAX_INSN_LEN {
            return Err(Stop::TooLong);
        }
        let b = *self.bytes.get(self.pos).ok_or(Stop::Truncated)?;
        self.pos = self.pos.saturating_add(1);
        Ok(b)
    }

    /// A little-endian value of `n` bytes (at most 8), zero-extended.
    fn le(&mut self, n: usize) -> Result<u64, Stop> {
        let mut v = 0u64;
        for shift in [0u32, 8, 16, 24, 32, 40, 48, 56].into_iter().take(n) {
            v |= u64::from(self.u8()?) << shift;
        }
        Ok(v)
    }
}

#[derive(Default)]
struct Prefixes {
    opsize: bool,
    addrsize: bool,
    lock: bool,
    rep: bool,
    segment: Option<Segment>,
    rex: u8,
}

impl Prefixes {
    fn rex_w(&self) -> bool {
        self.rex & 8 != 0
    }
    fn rex_r(&self) -> u8 {
        (self.rex & 4) << 1
    }
    fn rex_x(&self) -> u8 {
        (self.rex & 2) << 2
    }
    fn rex_b(&self) -> u8 {
        (self.rex & 1) << 3
    }
}

/// A ModRM byte's `reg` field (extended by REX.R) and its memory operand.
struct ModRm {
    reg: u8,
    mem: MemOperand,
}

fn modrm(cur: &mut Cursor<'_>, p: &Prefixes, addr_size: AddrSize) -> Result<ModRm, Stop> {
    let b = cur.u8()?;
    let md = b >> 6;
    let reg = ((b >> 3) & 7) | p.rex_r();
    let rm = b & 7;
    if md == 3 {
        // A register operand: no memory access to emulate.
        return Err(Stop::Unsupported);
    }
    let mut mem = MemOperand {
        segment: Segment::Ds,
        base: None,
        index: None,
        scale: 1,
        disp: 0,
        rip_relative: false,
        addr_size,
    };
    let mut stack = false;
    if addr_size == AddrSize::A16 {
        let (base, index) = match rm {
            0 => (Some(Gpr::Rbx), Some(Gpr::Rsi)),
            1 => (Some(Gpr::Rbx), Some(Gpr::Rdi)),
            2 => (Some(Gpr::Rbp), Some(Gpr::Rsi)),
            3 => (Some(Gpr::Rbp), Some(Gpr::Rdi)),
            4 => (Some(Gpr::Rsi), None),
            5 => (Some(Gpr::Rdi), None),
            6 if md == 0 => (None, None),
            6 => (Some(Gpr::Rbp), None),
            _ => (Some(Gpr::Rbx), None),
        };
        mem.base = base;
        mem.index = index;
        stack = base == Some(Gpr::Rbp);
        mem.disp = match (md, base) {
            (0, None) | (2, _) => i64::from(cur.le(2)? as u16 as i16),
            (1, _) => i64::from(cur.u8()? as i8),
            _ => 0,
        };
    } else {
        let mut no_base_disp32 = false;
        if rm == 4 {
            let sib = cur.u8()?;
            let scale = sib >> 6;
            let index = ((sib >> 3) & 7) | p.rex_x();
            let base = sib & 7;
            mem.scale = 1 << scale;
            if index != 4 {
                mem.index = Some(Gpr::from_low4(index));
            }
            if base == 5 && md == 0 {
                no_base_disp32 = true;
            } else {
                let g = Gpr::from_low4(base | p.rex_b());
                mem.base = Some(g);
                stack = matches!(g, Gpr::Rsp | Gpr::Rbp);
            }
        } else if rm == 5 && md == 0 {
            // RIP-relative in 64-bit mode (also with 0x67), a plain disp32
            // elsewhere: the caller clears the flag outside 64-bit mode.
            no_base_disp32 = true;
            mem.rip_relative = true;
        } else {
            let g = Gpr::from_low4(rm | p.rex_b());
            mem.base = Some(g);
            stack = g == Gpr::Rbp;
        }
        mem.disp = if md == 2 || no_base_disp32 {
            i64::from(cur.le(4)? as u32 as i32)
        } else if md == 1 {
            i64::from(cur.u8()? as i8)
        } else {
            0
        };
    }
    if stack {
        mem.segment = Segment::Ss;
    }
    Ok(ModRm { reg, mem })
}

/// A register operand from a 4-bit register number: for byte operands
/// without REX, numbers 4–7 are AH, CH, DH, BH.
fn reg_operand(n: u8, size: Size, p: &Prefixes) -> RegOperand {
    if size == Size::B1 && p.rex == 0 && (4..8).contains(&n) {
        RegOperand {
            gpr: Gpr::from_low4(n & 3),
            high8: true,
        }
    } else {
        RegOperand::full(Gpr::from_low4(n))
    }
}

/// An immediate of the operand's width (at most 4 bytes, sign-extended for
/// 64-bit operands).
fn imm(cur: &mut Cursor<'_>, size: Size) -> Result<u64, Stop> {
    Ok(match size {
        Size::B1 => cur.le(1)?,
        Size::B2 => cur.le(2)?,
        Size::B4 => cur.le(4)?,
        Size::B8 => Size::B4.sign_extend(cur.le(4)?),
    })
}

/// Decodes the instruction at the start of `bytes` (at most 15 are used)
/// for code size `mode`.
///
/// Only forms with a memory operand decode; the rest, like register-only
/// forms and instructions this crate does not emulate, are
/// [`EmulError::Unsupported`] with the bytes. Input that ends inside the
/// instruction is [`EmulError::Truncated`]; an instruction that would be
/// longer than 15 bytes is [`EmulError::TooLong`].
pub fn decode(bytes: &[u8], mode: Mode) -> Result<Instruction, EmulError> {
    let mut cur = Cursor { bytes, pos: 0 };
    match decode_inner(&mut cur, mode) {
        Ok(mut insn) => {
            let len = cur.pos.min(MAX_INSN_LEN);
            insn.len = len as u8;
            if let (Some(dst), Some(src)) = (insn.bytes.get_mut(..len), bytes.get(..len)) {
                dst.copy_from_slice(src);
            }
            Ok(insn)
        }
        Err(Stop::Truncated) => Err(EmulError::Truncated),
        Err(Stop::TooLong) => Err(EmulError::TooLong),
        Err(Stop::Unsupported) => Err(EmulError::unsupported(bytes)),
    }
}

fn decode_inner(cur: &mut Cursor<'_>, mode: Mode) -> Result<Instruction, Stop> {
    let mut p = Prefixes::default();
    let opcode = loop {
        let b = cur.u8()?;
        match b {
            0xF0 => p.lock = true,
            0xF2 | 0xF3 => p.rep = true,
            0x26 => p.segment = Some(Segment::Es),
            0x2E => p.segment = Some(Segment::Cs),
            0x36 => p.segment = Some(Segment::Ss),
            0x3E => p.segment = Some(Segment::Ds),
            0x64 => p.segment = Some(Segment::Fs),
            0x65 => p.segment = Some(Segment::Gs),
            0x66 => p.opsize = true,
            0x67 => p.addrsize = true,
            0x40..=0x4F if mode == Mode::Bits64 => {
                p.rex = b;
                // A REX prefix counts only directly before the opcode.
                continue;
            }
            _ => break b,
        }
        p.rex = 0;
    };

    let opsize = if p.rex_w() {
        Size::B8
    } else if (mode == Mode::Bits16) != p.opsize {
        Size::B2
    } else {
        Size::B4
    };
    let addr_size = match (mode, p.addrsize) {
        (Mode::Bits64, false) => AddrSize::A64,
        (Mode::Bits64, true) | (Mode::Bits32, false) | (Mode::Bits16, true) => AddrSize::A32,
        (Mode::Bits32, true) | (Mode::Bits16, false) => AddrSize::A16,
    };
    // Size of a byte-form opcode (bit 0 clear) or the operand size.
    let w = |op: u8| if op & 1 == 0 { Size::B1 } else { opsize };

    // (op, size, modrm, lockable)
    let (op, size, mem, lockable) = match opcode {
        // ALU r/m, r and r, r/m: 00-03, 08-0B, ... 38-3B.
        0x00..=0x3F if opcode & 7 < 4 => {
            let alu = AluOp::from_digit(opcode >> 3);
            let size = w(opcode);
            let m = modrm(cur, &p, addr_size)?;
            let reg = reg_operand(m.reg, size, &p);
            if opcode & 2 == 0 {
                let op = Op::Alu {
                    op: alu,
                    src: Operand::Reg(reg),
                };
                (op, size, m.mem, alu.writes_result())
            } else {
                (Op::AluToReg { op: alu, dst: reg }, size, m.mem, false)
            }
        }
        // MOVSXD r, r/m32 (64-bit mode; ARPL elsewhere).
        0x63 if mode == Mode::Bits64 => {
            let m = modrm(cur, &p, addr_size)?;
            let size = if opsize == Size::B2 {
                Size::B2
            } else {
                Size::B4
            };
            let op = Op::Load {
                dst: reg_operand(m.reg, opsize, &p),
                dst_size: opsize,
                extend: Extend::Sign,
            };
            (op, size, m.mem, false)
        }
        // ALU r/m, imm: 80 (imm8), 81 (imm16/32), 82 (80 outside 64-bit
        // mode), 83 (sign-extended imm8).
        0x80..=0x83 => {
            if opcode == 0x82 && mode == Mode::Bits64 {
                return Err(Stop::Unsupported);
            }
            let size = w(opcode);
            let m = modrm(cur, &p, addr_size)?;
            let alu = AluOp::from_digit(m.reg);
            let v = if opcode == 0x83 {
                Size::B1.sign_extend(cur.le(1)?) & size.mask()
            } else {
                imm(cur, size)? & size.mask()
            };
            let op = Op::Alu {
                op: alu,
                src: Operand::Imm(v),
            };
            (op, size, m.mem, alu.writes_result())
        }
        // TEST r/m, r.
        0x84 | 0x85 => {
            let size = w(opcode);
            let m = modrm(cur, &p, addr_size)?;
            let op = Op::Alu {
                op: AluOp::Test,
                src: Operand::Reg(reg_operand(m.reg, size, &p)),
            };
            (op, size, m.mem, false)
        }
        // XCHG r/m, r.
        0x86 | 0x87 => {
            let size = w(opcode);
            let m = modrm(cur, &p, addr_size)?;
            let op = Op::Xchg {
                reg: reg_operand(m.reg, size, &p),
            };
            (op, size, m.mem, true)
        }
        // MOV r/m, r.
        0x88 | 0x89 => {
            let size = w(opcode);
            let m = modrm(cur, &p, addr_size)?;
            let op = Op::Store {
                src: Operand::Reg(reg_operand(m.reg, size, &p)),
            };
            (op, size, m.mem, false)
        }
        // MOV r, r/m.
        0x8A | 0x8B => {
            let size = w(opcode);
            let m = modrm(cur, &p, addr_size)?;
            let op = Op::Load {
                dst: reg_operand(m.reg, size, &p),
                dst_size: size,
                extend: Extend::Zero,
            };
            (op, size, m.mem, false)
        }
        // MOV AL/rAX, moffs and MOV moffs, AL/rAX.
        0xA0..=0xA3 => {
            let size = w(opcode);
            let n = match addr_size {
                AddrSize::A16 => 2,
                AddrSize::A32 => 4,
                AddrSize::A64 => 8,
            };
            let mem = MemOperand {
                segment: Segment::Ds,
                base: None,
                index: None,
                scale: 1,
                disp: cur.le(n)? as i64,
                rip_relative: false,
                addr_size,
            };
            let rax = RegOperand::full(Gpr::Rax);
            let op = if opcode < 0xA2 {
                Op::Load {
                    dst: rax,
                    dst_size: size,
                    extend: Extend::Zero,
                }
            } else {
                Op::Store {
                    src: Operand::Reg(rax),
                }
            };
            (op, size, mem, false)
        }
        // STOS, LODS (without REP).
        0xAA..=0xAD => {
            if p.rep {
                return Err(Stop::Unsupported);
            }
            let size = w(opcode);
            let stos = opcode < 0xAC;
            let mem = MemOperand {
                // STOS always writes through ES.
                segment: if stos { Segment::Es } else { Segment::Ds },
                base: Some(if stos { Gpr::Rdi } else { Gpr::Rsi }),
                index: None,
                scale: 1,
                disp: 0,
                rip_relative: false,
                addr_size,
            };
            if stos {
                p.segment = None;
            }
            (if stos { Op::Stos } else { Op::Lods }, size, mem, false)
        }
        // MOV r/m, imm.
        0xC6 | 0xC7 => {
            let size = w(opcode);
            let m = modrm(cur, &p, addr_size)?;
            if m.reg & 7 != 0 {
                return Err(Stop::Unsupported);
            }
            let v = imm(cur, size)? & size.mask();
            (
                Op::Store {
                    src: Operand::Imm(v),
                },
                size,
                m.mem,
                false,
            )
        }
        // TEST r/m, imm; NOT; NEG.
        0xF6 | 0xF7 => {
            let size = w(opcode);
            let m = modrm(cur, &p, addr_size)?;
            match m.reg & 7 {
                0 => {
                    let v = imm(cur, size)? & size.mask();
                    let op = Op::Alu {
                        op: AluOp::Test,
                        src: Operand::Imm(v),
                    };
                    (op, size, m.mem, false)
                }
                2 => (Op::Unary { op: UnaryOp::Not }, size, m.mem, true),
                3 => (Op::Unary { op: UnaryOp::Neg }, size, m.mem, true),
                _ => return Err(Stop::Unsupported),
            }
        }
        // INC, DEC.
        0xFE | 0xFF => {
            let size = w(opcode);
            let m = modrm(cur, &p, addr_size)?;
            match m.reg & 7 {
                0 => (Op::Unary { op: UnaryOp::Inc }, size, m.mem, true),
                1 => (Op::Unary { op: UnaryOp::Dec }, size, m.mem, true),
                _ => return Err(Stop::Unsupported),
            }
        }
        0x0F => {
            let op2 = cur.u8()?;
            match op2 {
                // BT/BTS/BTR/BTC r/m, r.
                0xA3 | 0xAB | 0xB3 | 0xBB => {
                    let m = modrm(cur, &p, addr_size)?;
                    let bit = match op2 {
                        0xA3 => BitOp::Bt,
                        0xAB => BitOp::Bts,
                        0xB3 => BitOp::Btr,
                        _ => BitOp::Btc,
                    };
                    let op = Op::Bit {
                        op: bit,
                        offset: Operand::Reg(reg_operand(m.reg, opsize, &p)),
                    };
                    (op, opsize, m.mem, bit.writes_result())
                }
                // BT/BTS/BTR/BTC r/m, imm8.
                0xBA => {
                    let m = modrm(cur, &p, addr_size)?;
                    let bit = match m.reg & 7 {
                        4 => BitOp::Bt,
                        5 => BitOp::Bts,
                        6 => BitOp::Btr,
                        7 => BitOp::Btc,
                        _ => return Err(Stop::Unsupported),
                    };
                    let v = cur.le(1)?;
                    let op = Op::Bit {
                        op: bit,
                        offset: Operand::Imm(v),
                    };
                    (op, opsize, m.mem, bit.writes_result())
                }
                // MOVZX, MOVSX.
                0xB6 | 0xB7 | 0xBE | 0xBF => {
                    let m = modrm(cur, &p, addr_size)?;
                    let size = if op2 & 1 == 0 { Size::B1 } else { Size::B2 };
                    let op = Op::Load {
                        dst: reg_operand(m.reg, opsize, &p),
                        dst_size: opsize,
                        extend: if op2 >= 0xBE {
                            Extend::Sign
                        } else {
                            Extend::Zero
                        },
                    };
                    (op, size, m.mem, false)
                }
                // MOVNTI m32/m64, r.
                0xC3 => {
                    if opsize == Size::B2 {
                        return Err(Stop::Unsupported);
                    }
                    let m = modrm(cur, &p, addr_size)?;
                    let op = Op::Store {
                        src: Operand::Reg(reg_operand(m.reg, opsize, &p)),
                    };
                    (op, opsize, m.mem, false)
                }
                _ => return Err(Stop::Unsupported),
            }
        }
        _ => return Err(Stop::Unsupported),
    };

    if p.lock && !lockable {
        // #UD on the CPU: not something an MMIO exit can come from.
        return Err(Stop::Unsupported);
    }
    if p.rep && matches!(op, Op::Stos | Op::Lods) {
        return Err(Stop::Unsupported);
    }
    let mut mem = mem;
    if let Some(seg) = p.segment {
        mem.segment = seg;
    }
    if mode != Mode::Bits64 {
        mem.rip_relative = false;
    }
    Ok(Instruction {
        bytes: [0; MAX_INSN_LEN],
        len: 0,
        mode,
        op,
        size,
        mem,
        lock: p.lock || matches!(op, Op::Xchg { .. }),
    })
}
