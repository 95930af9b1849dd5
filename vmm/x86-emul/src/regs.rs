//! The guest registers the emulator reads and writes.

use crate::mem::Size;

/// RFLAGS bits.
pub mod flags {
    /// Carry flag.
    pub const CF: u64 = 1 << 0;
    /// Parity flag (even parity of the result's low byte).
    pub const PF: u64 = 1 << 2;
    /// Auxiliary carry flag (carry out of bit 3).
    pub const AF: u64 = 1 << 4;
    /// Zero flag.
    pub const ZF: u64 = 1 << 6;
    /// Sign flag.
    pub const SF: u64 = 1 << 7;
    /// Direction flag: string instructions step down when set.
    pub const DF: u64 = 1 << 10;
    /// Overflow flag.
    pub const OF: u64 = 1 << 11;
    /// Alignment check / access control (SMAP override when set).
    pub const AC: u64 = 1 << 18;
    /// The six arithmetic status flags.
    pub const STATUS: u64 = CF | PF | AF | ZF | SF | OF;
}

/// A general-purpose register, numbered as in the instruction encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Gpr {
    Rax = 0,
    Rcx = 1,
    Rdx = 2,
    Rbx = 3,
    Rsp = 4,
    Rbp = 5,
    Rsi = 6,
    Rdi = 7,
    R8 = 8,
    R9 = 9,
    R10 = 10,
    R11 = 11,
    R12 = 12,
    R13 = 13,
    R14 = 14,
    R15 = 15,
}

impl Gpr {
    /// The register with encoding number `n & 15`.
    pub const fn from_low4(n: u8) -> Gpr {
        match n & 15 {
            0 => Gpr::Rax,
            1 => Gpr::Rcx,
            2 => Gpr::Rdx,
            3 => Gpr::Rbx,
            4 => Gpr::Rsp,
            5 => Gpr::Rbp,
            6 => Gpr::Rsi,
            7 => Gpr::Rdi,
            8 => Gpr::R8,
            9 => Gpr::R9,
            10 => Gpr::R10,
            11 => Gpr::R11,
            12 => Gpr::R12,
            13 => Gpr::R13,
            14 => Gpr::R14,
            _ => Gpr::R15,
        }
    }
}

/// A register operand: a [`Gpr`], or for byte operands without REX one of
/// AH, CH, DH, BH (`high8`, with `gpr` then RAX, RCX, RDX or RBX).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RegOperand {
    /// The register.
    pub gpr: Gpr,
    /// Bits 15:8 of `gpr` rather than its low bits.
    pub high8: bool,
}

impl RegOperand {
    /// The full register `gpr`.
    pub const fn full(gpr: Gpr) -> Self {
        RegOperand { gpr, high8: false }
    }
}

/// The guest's general-purpose registers, RIP and RFLAGS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub struct Regs {
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rbx: u64,
    pub rsp: u64,
    pub rbp: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    /// The address of the instruction being emulated (not yet advanced).
    pub rip: u64,
    pub rflags: u64,
}

impl Regs {
    /// The 64-bit value of `r`.
    pub fn gpr(&self, r: Gpr) -> u64 {
        match r {
            Gpr::Rax => self.rax,
            Gpr::Rcx => self.rcx,
            Gpr::Rdx => self.rdx,
            Gpr::Rbx => self.rbx,
            Gpr::Rsp => self.rsp,
            Gpr::Rbp => self.rbp,
            Gpr::Rsi => self.rsi,
            Gpr::Rdi => self.rdi,
            Gpr::R8 => self.r8,
            Gpr::R9 => self.r9,
            Gpr::R10 => self.r10,
            Gpr::R11 => self.r11,
            Gpr::R12 => self.r12,
            Gpr::R13 => self.r13,
            Gpr::R14 => self.r14,
            Gpr::R15 => self.r15,
        }
    }

    /// Mutable access to `r`.
    pub fn gpr_mut(&mut self, r: Gpr) -> &mut u64 {
        match r {
            Gpr::Rax => &mut self.rax,
            Gpr::Rcx => &mut self.rcx,
            Gpr::Rdx => &mut self.rdx,
            Gpr::Rbx => &mut self.rbx,
            Gpr::Rsp => &mut self.rsp,
            Gpr::Rbp => &mut self.rbp,
            Gpr::Rsi => &mut self.rsi,
            Gpr::Rdi => &mut self.rdi,
            Gpr::R8 => &mut self.r8,
            Gpr::R9 => &mut self.r9,
            Gpr::R10 => &mut self.r10,
            Gpr::R11 => &mut self.r11,
            Gpr::R12 => &mut self.r12,
            Gpr::R13 => &mut self.r13,
            Gpr::R14 => &mut self.r14,
            Gpr::R15 => &mut self.r15,
        }
    }

    /// Reads operand `r` at width `size`, zero-extended.
    pub fn read(&self, r: RegOperand, size: Size) -> u64 {
        let v = self.gpr(r.gpr);
        if r.high8 {
            (v >> 8) & 0xFF
        } else {
            v & size.mask()
        }
    }

    /// Writes operand `r` at width `size` as the CPU does: 8- and 16-bit
    /// writes keep the other bits, 32-bit writes zero bits 63:32.
    pub fn write(&mut self, r: RegOperand, size: Size, value: u64) {
        let slot = self.gpr_mut(r.gpr);
        *slot = if r.high8 {
            (*slot & !0xFF00) | ((value & 0xFF) << 8)
        } else {
            match size {
                Size::B1 | Size::B2 => (*slot & !size.mask()) | (value & size.mask()),
                Size::B4 => value & 0xFFFF_FFFF,
                Size::B8 => value,
            }
        };
    }
}
