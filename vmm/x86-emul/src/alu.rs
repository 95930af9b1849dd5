//! Integer results and RFLAGS of the arithmetic and logic instructions, as
//! the CPU computes them.
//!
//! Defined flags follow the Intel SDM. Where the SDM leaves a flag
//! undefined, the choice matches what Bochs and current CPUs do: AF is
//! cleared by `AND`/`OR`/`XOR`/`TEST`, and `BT*` change only CF.

use crate::mem::Size;
use crate::regs::flags;

/// A two-operand arithmetic or logic operation (the ModRM `/digit` order of
/// opcodes 80–83, plus `TEST`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AluOp {
    /// `ADD`
    Add,
    /// `OR`
    Or,
    /// `ADC`: add with carry.
    Adc,
    /// `SBB`: subtract with borrow.
    Sbb,
    /// `AND`
    And,
    /// `SUB`
    Sub,
    /// `XOR`
    Xor,
    /// `CMP`: `SUB` without storing the result.
    Cmp,
    /// `TEST`: `AND` without storing the result.
    Test,
}

impl AluOp {
    /// The operation with ModRM `/digit` (or opcode bits 5:3) `n & 7`.
    pub const fn from_digit(n: u8) -> AluOp {
        match n & 7 {
            0 => AluOp::Add,
            1 => AluOp::Or,
            2 => AluOp::Adc,
            3 => AluOp::Sbb,
            4 => AluOp::And,
            5 => AluOp::Sub,
            6 => AluOp::Xor,
            _ => AluOp::Cmp,
        }
    }

    /// Whether the result is stored (false for `CMP` and `TEST`).
    pub const fn writes_result(self) -> bool {
        !matches!(self, AluOp::Cmp | AluOp::Test)
    }
}

/// A one-operand read-modify-write operation (F6/F7 /2, /3 and FE/FF /0, /1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `NOT`: no flags change.
    Not,
    /// `NEG`: two's complement.
    Neg,
    /// `INC`: CF unchanged.
    Inc,
    /// `DEC`: CF unchanged.
    Dec,
}

/// Sets ZF, SF and PF from `result` (already truncated to `size`).
fn zsp(size: Size, result: u64) -> u64 {
    let mut f = 0;
    if result == 0 {
        f |= flags::ZF;
    }
    if result & size.sign_bit() != 0 {
        f |= flags::SF;
    }
    if (result & 0xFF).count_ones().is_multiple_of(2) {
        f |= flags::PF;
    }
    f
}

fn add_flags(size: Size, a: u64, b: u64, carry_in: bool, r: u64) -> u64 {
    let m = size.mask();
    let mut f = zsp(size, r);
    // Carry out of the top bit: the truncated sum is below an addend, or
    // equal to it when a carry came in and the other addend is all ones.
    if r < (a & m) || (carry_in && r == (a & m)) {
        f |= flags::CF;
    }
    if (a ^ r) & (b ^ r) & size.sign_bit() != 0 {
        f |= flags::OF;
    }
    if (a ^ b ^ r) & 0x10 != 0 {
        f |= flags::AF;
    }
    f
}

fn sub_flags(size: Size, a: u64, b: u64, borrow_in: bool, r: u64) -> u64 {
    let m = size.mask();
    let (a, b) = (a & m, b & m);
    let mut f = zsp(size, r);
    if a < b || (borrow_in && a == b) {
        f |= flags::CF;
    }
    if (a ^ b) & (a ^ r) & size.sign_bit() != 0 {
        f |= flags::OF;
    }
    if (a ^ b ^ r) & 0x10 != 0 {
        f |= flags::AF;
    }
    f
}

/// `a op b` at width `size`: the result (truncated to `size`) and the new
/// RFLAGS (`rflags` with CF, PF, AF, ZF, SF and OF replaced). `ADC`/`SBB`
/// take their carry from `rflags`.
pub fn alu(op: AluOp, size: Size, a: u64, b: u64, rflags: u64) -> (u64, u64) {
    let m = size.mask();
    let (a, b) = (a & m, b & m);
    let cf = rflags & flags::CF != 0;
    let (r, f) = match op {
        AluOp::Add | AluOp::Adc => {
            let c = matches!(op, AluOp::Adc) && cf;
            let r = a.wrapping_add(b).wrapping_add(u64::from(c)) & m;
            (r, add_flags(size, a, b, c, r))
        }
        AluOp::Sub | AluOp::Sbb | AluOp::Cmp => {
            let c = matches!(op, AluOp::Sbb) && cf;
            let r = a.wrapping_sub(b).wrapping_sub(u64::from(c)) & m;
            (r, sub_flags(size, a, b, c, r))
        }
        AluOp::Or => {
            let r = a | b;
            (r, zsp(size, r))
        }
        AluOp::And | AluOp::Test => {
            let r = a & b;
            (r, zsp(size, r))
        }
        AluOp::Xor => {
            let r = a ^ b;
            (r, zsp(size, r))
        }
    };
    (r, (rflags & !flags::STATUS) | f)
}

/// `op a` at width `size`: the result and the new RFLAGS.
pub fn unary(op: UnaryOp, size: Size, a: u64, rflags: u64) -> (u64, u64) {
    let m = size.mask();
    let a = a & m;
    match op {
        UnaryOp::Not => (!a & m, rflags),
        UnaryOp::Neg => {
            let r = 0u64.wrapping_sub(a) & m;
            (
                r,
                (rflags & !flags::STATUS) | sub_flags(size, 0, a, false, r),
            )
        }
        UnaryOp::Inc => {
            let r = a.wrapping_add(1) & m;
            let f = add_flags(size, a, 1, false, r) & !flags::CF;
            (r, (rflags & !(flags::STATUS & !flags::CF)) | f)
        }
        UnaryOp::Dec => {
            let r = a.wrapping_sub(1) & m;
            let f = sub_flags(size, a, 1, false, r) & !flags::CF;
            (r, (rflags & !(flags::STATUS & !flags::CF)) | f)
        }
    }
}

/// A bit-test operation (0F A3/AB/B3/BB and 0F BA /4–/7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BitOp {
    /// `BT`: copy the bit to CF.
    Bt,
    /// `BTS`: and set it.
    Bts,
    /// `BTR`: and clear it.
    Btr,
    /// `BTC`: and complement it.
    Btc,
}

impl BitOp {
    /// Whether the operand is written back (all but `BT`).
    pub const fn writes_result(self) -> bool {
        !matches!(self, BitOp::Bt)
    }
}

/// `op` on bit `bit % size.bits()` of `a`: the result and the new RFLAGS
/// (only CF changes).
pub fn bit(op: BitOp, size: Size, a: u64, bit: u64, rflags: u64) -> (u64, u64) {
    let m = size.mask();
    let a = a & m;
    let one = 1u64.wrapping_shl((bit & u64::from(size.bits().wrapping_sub(1))) as u32);
    let rflags = if a & one != 0 {
        rflags | flags::CF
    } else {
        rflags & !flags::CF
    };
    let r = match op {
        BitOp::Bt => a,
        BitOp::Bts => a | one,
        BitOp::Btr => a & !one,
        BitOp::Btc => a ^ one,
    };
    (r, rflags)
}
