//! One test per opcode form, on encodings produced by GNU as (the Intel
//! syntax in each comment), checking registers, device accesses and flags.

use super::support::*;
use crate::regs::flags::*;
use crate::*;

/// The MMIO address the `[rdi]` tests use (a LAPIC register).
const A: u64 = 0xFEE0_0020;

const ALL_GPRS: [Gpr; 16] = [
    Gpr::Rax,
    Gpr::Rcx,
    Gpr::Rdx,
    Gpr::Rbx,
    Gpr::Rsp,
    Gpr::Rbp,
    Gpr::Rsi,
    Gpr::Rdi,
    Gpr::R8,
    Gpr::R9,
    Gpr::R10,
    Gpr::R11,
    Gpr::R12,
    Gpr::R13,
    Gpr::R14,
    Gpr::R15,
];

struct Out {
    before: Regs,
    after: Regs,
    dev: Dev,
    insn: Instruction,
}

impl Out {
    /// Asserts that exactly the listed GPRs changed, to the given values.
    fn gprs(&self, changed: &[(Gpr, u64)]) -> &Self {
        for g in ALL_GPRS {
            let want = changed
                .iter()
                .find(|(r, _)| *r == g)
                .map_or(self.before.gpr(g), |(_, v)| *v);
            assert_eq!(
                self.after.gpr(g),
                want,
                "{g:?} after {:02x?}",
                self.insn.bytes()
            );
        }
        self
    }

    /// Asserts the status flags (all six) after the instruction.
    fn flags(&self, f: u64) -> &Self {
        assert_eq!(
            self.after.rflags & STATUS,
            f,
            "flags after {:02x?}: got {:#x}",
            self.insn.bytes(),
            self.after.rflags & STATUS
        );
        assert_eq!(
            self.after.rflags & !STATUS,
            self.before.rflags & !STATUS,
            "non-status flags changed"
        );
        self
    }

    fn flags_unchanged(&self) -> &Self {
        assert_eq!(self.after.rflags, self.before.rflags, "flags changed");
        self
    }

    fn io(&self, log: &[Io]) -> &Self {
        assert_eq!(
            self.dev.log,
            log,
            "device log of {:02x?}",
            self.insn.bytes()
        );
        self
    }

    fn mem(&self, gpa: u64, size: Size, v: u64) -> &Self {
        assert_eq!(self.dev.peek(gpa, size), v, "device memory at {gpa:#x}");
        self
    }
}

/// Runs `code` in `mode` with rdi = [`A`] (unless `setup` changes it) and
/// the device word at `fault` preset by `setup`; checks success, the
/// length and the RIP advance.
fn go(mode: Mode, code: &[u8], fault: u64, setup: impl FnOnce(&mut Regs, &mut Dev)) -> Out {
    let mut r = regs();
    r.rdi = A;
    if mode == Mode::Bits16 {
        // CS base is CODE (see `machine`).
        r.rip = 0;
    }
    let mut dev = Dev::default();
    setup(&mut r, &mut dev);
    dev.log.clear();
    let before = r;
    let insn = run(mode, code, &mut r, &mut dev, fault)
        .unwrap_or_else(|e| panic!("{code:02x?}: {e} ({e:?})"));
    assert_eq!(usize::from(insn.len), code.len(), "length of {code:02x?}");
    assert_eq!(insn.bytes(), code);
    assert_eq!(
        r.rip,
        before.rip + code.len() as u64,
        "RIP after {code:02x?}"
    );
    Out {
        before,
        after: r,
        dev,
        insn,
    }
}

fn go64(code: &[u8], setup: impl FnOnce(&mut Regs, &mut Dev)) -> Out {
    go(Mode::Bits64, code, A, setup)
}

fn dev_with(v: u64, size: Size) -> impl FnOnce(&mut Regs, &mut Dev) {
    move |_, d| d.poke(A, size, v)
}

// ---- MOV loads -------------------------------------------------------

#[test]
fn mov_load_32_zero_extends() {
    // mov eax, dword ptr [rdi]
    go64(&[0x8b, 0x07], dev_with(0x1234_5678, Size::B4))
        .gprs(&[(Gpr::Rax, 0x1234_5678)])
        .io(&[Io::Read(A, Size::B4)])
        .flags_unchanged();
}

#[test]
fn mov_load_rip_relative() {
    // mov rax, qword ptr [rip+0x100]: the operand is at the next RIP + 0x100.
    let target = CODE + 7 + 0x100;
    let mut r = regs();
    let mut d = Dev::default();
    // The test RAM ends at 2 MiB; place the "device" at the target anyway
    // by asking for exactly that GPA (the mock has no RAM/MMIO split).
    d.poke(target, Size::B8, 0x0102_0304_0506_0708);
    let insn = run(
        Mode::Bits64,
        &[0x48, 0x8b, 0x05, 0x00, 0x01, 0x00, 0x00],
        &mut r,
        &mut d,
        target,
    )
    .unwrap();
    assert!(insn.mem.rip_relative);
    assert_eq!(r.rax, 0x0102_0304_0506_0708);
    assert_eq!(d.log, [Io::Read(target, Size::B8)]);
}

#[test]
fn mov_load_byte_registers() {
    // mov al, byte ptr [rdi+4]
    go(Mode::Bits64, &[0x8a, 0x47, 0x04], A + 4, |_, d| {
        d.poke(A + 4, Size::B1, 0xAB)
    })
    .gprs(&[(Gpr::Rax, 0x1111_1111_1111_11AB)])
    .io(&[Io::Read(A + 4, Size::B1)]);
    // mov ah, byte ptr [rdi+4]
    go(Mode::Bits64, &[0x8a, 0x67, 0x04], A + 4, |_, d| {
        d.poke(A + 4, Size::B1, 0xAB)
    })
    .gprs(&[(Gpr::Rax, 0x1111_1111_1111_AB11)]);
    // mov sil, byte ptr [rdi+4]: with REX, 6 is SIL, not DH.
    go(Mode::Bits64, &[0x40, 0x8a, 0x77, 0x04], A + 4, |_, d| {
        d.poke(A + 4, Size::B1, 0xAB)
    })
    .gprs(&[(Gpr::Rsi, 0x7777_7777_7777_77AB)]);
    // mov r8b, byte ptr [rdi+4]
    go(Mode::Bits64, &[0x44, 0x8a, 0x47, 0x04], A + 4, |_, d| {
        d.poke(A + 4, Size::B1, 0xAB)
    })
    .gprs(&[(Gpr::R8, 0x9999_9999_9999_99AB)]);
}

#[test]
fn mov_load_16_and_64() {
    // mov ax, word ptr [rdi]: bits 63:16 kept.
    go64(&[0x66, 0x8b, 0x07], dev_with(0xBEEF, Size::B2))
        .gprs(&[(Gpr::Rax, 0x1111_1111_1111_BEEF)])
        .io(&[Io::Read(A, Size::B2)]);
    // mov rax, qword ptr [rdi]
    go64(
        &[0x48, 0x8b, 0x07],
        dev_with(0x8000_0000_0000_0001, Size::B8),
    )
    .gprs(&[(Gpr::Rax, 0x8000_0000_0000_0001)])
    .io(&[Io::Read(A, Size::B8)]);
    // mov r15d, dword ptr [rdi]
    go64(&[0x44, 0x8b, 0x3f], dev_with(0xFFFF_FFFF, Size::B4)).gprs(&[(Gpr::R15, 0xFFFF_FFFF)]);
}

// ---- MOV stores ------------------------------------------------------

#[test]
fn mov_store_register() {
    // mov dword ptr [rdi], eax
    go64(&[0x89, 0x07], |_, _| {})
        .gprs(&[])
        .io(&[Io::Write(A, Size::B4, 0x1111_1111)])
        .flags_unchanged();
    // mov byte ptr [rdi], al
    go64(&[0x88, 0x07], |r, _| r.rax = 0x12).io(&[Io::Write(A, Size::B1, 0x12)]);
    // mov byte ptr [rdi], bh
    go64(&[0x88, 0x3f], |r, _| r.rbx = 0xCD00).io(&[Io::Write(A, Size::B1, 0xCD)]);
    // mov byte ptr [rdi], dil (REX: 7 is DIL)
    go64(&[0x40, 0x88, 0x3f], |_, _| {}).io(&[Io::Write(A, Size::B1, A & 0xFF)]);
    // mov word ptr [rdi], ax
    go64(&[0x66, 0x89, 0x07], |_, _| {}).io(&[Io::Write(A, Size::B2, 0x1111)]);
    // mov qword ptr [rdi], rax
    go64(&[0x48, 0x89, 0x07], |_, _| {}).io(&[Io::Write(A, Size::B8, 0x1111_1111_1111_1111)]);
    // mov qword ptr [rdi], r8
    go64(&[0x4c, 0x89, 0x07], |_, _| {}).io(&[Io::Write(A, Size::B8, 0x9999_9999_9999_9999)]);
}

#[test]
fn mov_store_immediate() {
    // mov byte ptr [rdi], 0x5a
    go64(&[0xc6, 0x07, 0x5a], |_, _| {}).io(&[Io::Write(A, Size::B1, 0x5a)]);
    // mov word ptr [rdi], 0x1234
    go64(&[0x66, 0xc7, 0x07, 0x34, 0x12], |_, _| {}).io(&[Io::Write(A, Size::B2, 0x1234)]);
    // mov dword ptr [rdi], 0x89abcdef
    go64(&[0xc7, 0x07, 0xef, 0xcd, 0xab, 0x89], |_, _| {}).io(&[Io::Write(
        A,
        Size::B4,
        0x89ab_cdef,
    )]);
    // mov qword ptr [rdi], -2 (imm32 sign-extended)
    go64(&[0x48, 0xc7, 0x07, 0xfe, 0xff, 0xff, 0xff], |_, _| {}).io(&[Io::Write(
        A,
        Size::B8,
        0xFFFF_FFFF_FFFF_FFFE,
    )]);
    // mov dword ptr [rip+0x100], 0x11223344: RIP-relative with an
    // immediate after the displacement; the base is the *next* RIP.
    let code = [0xc7, 0x05, 0x00, 0x01, 0x00, 0x00, 0x44, 0x33, 0x22, 0x11];
    let target = CODE + code.len() as u64 + 0x100;
    go(Mode::Bits64, &code, target, |_, _| {}).io(&[Io::Write(target, Size::B4, 0x1122_3344)]);
}

#[test]
fn movnti_store() {
    // movnti dword ptr [rdi], eax ; movnti qword ptr [rdi], rax
    go64(&[0x0f, 0xc3, 0x07], |_, _| {}).io(&[Io::Write(A, Size::B4, 0x1111_1111)]);
    go64(&[0x48, 0x0f, 0xc3, 0x07], |_, _| {}).io(&[Io::Write(A, Size::B8, 0x1111_1111_1111_1111)]);
}

// ---- MOVZX / MOVSX / MOVSXD ------------------------------------------

#[test]
fn movzx_movsx() {
    // movzx eax, byte ptr [rdi]
    go64(&[0x0f, 0xb6, 0x07], dev_with(0xF0, Size::B1))
        .gprs(&[(Gpr::Rax, 0xF0)])
        .io(&[Io::Read(A, Size::B1)]);
    // movzx eax, word ptr [rdi]
    go64(&[0x0f, 0xb7, 0x07], dev_with(0xF00D, Size::B2))
        .gprs(&[(Gpr::Rax, 0xF00D)])
        .io(&[Io::Read(A, Size::B2)]);
    // movsx rax, byte ptr [rdi]
    go64(&[0x48, 0x0f, 0xbe, 0x07], dev_with(0x80, Size::B1))
        .gprs(&[(Gpr::Rax, 0xFFFF_FFFF_FFFF_FF80)]);
    // movsx eax, word ptr [rdi]: sign-extended to 32, then zero-extended.
    go64(&[0x0f, 0xbf, 0x07], dev_with(0x8001, Size::B2)).gprs(&[(Gpr::Rax, 0xFFFF_8001)]);
    // movzx ax, byte ptr [rdi]
    go64(&[0x66, 0x0f, 0xb6, 0x07], dev_with(0x7F, Size::B1))
        .gprs(&[(Gpr::Rax, 0x1111_1111_1111_007F)]);
    // movsx rcx, word ptr [rdi]
    go64(&[0x48, 0x0f, 0xbf, 0x0f], dev_with(0x7FFF, Size::B2)).gprs(&[(Gpr::Rcx, 0x7FFF)]);
    // movsxd rax, dword ptr [rdi]
    go64(&[0x48, 0x63, 0x07], dev_with(0x8000_0000, Size::B4))
        .gprs(&[(Gpr::Rax, 0xFFFF_FFFF_8000_0000)])
        .io(&[Io::Read(A, Size::B4)]);
}

// ---- MOV moffs ---------------------------------------------------------

#[test]
fn mov_moffs() {
    // movabs eax, ds:0xfee00020
    let code = [0xa1, 0x20, 0x00, 0xe0, 0xfe, 0, 0, 0, 0];
    go(Mode::Bits64, &code, A, dev_with(0xCAFE_F00D, Size::B4)).gprs(&[(Gpr::Rax, 0xCAFE_F00D)]);
    // movabs ds:0xfee00030, rax
    let code = [0x48, 0xa3, 0x30, 0x00, 0xe0, 0xfe, 0, 0, 0, 0];
    go(Mode::Bits64, &code, 0xFEE0_0030, |_, _| {}).io(&[Io::Write(
        0xFEE0_0030,
        Size::B8,
        0x1111_1111_1111_1111,
    )]);
    // movabs al, ds:0xfee00020
    let code = [0xa0, 0x20, 0x00, 0xe0, 0xfe, 0, 0, 0, 0];
    go(Mode::Bits64, &code, A, dev_with(0x42, Size::B1)).gprs(&[(Gpr::Rax, 0x1111_1111_1111_1142)]);
    // movabs ds:0xfee00030, al
    let code = [0xa2, 0x30, 0x00, 0xe0, 0xfe, 0, 0, 0, 0];
    go(Mode::Bits64, &code, 0xFEE0_0030, |_, _| {}).io(&[Io::Write(0xFEE0_0030, Size::B1, 0x11)]);
    // addr32 mov eax, ds:0xfee00020 (a 4-byte offset)
    let code = [0x67, 0xa1, 0x20, 0x00, 0xe0, 0xfe];
    go(Mode::Bits64, &code, A, dev_with(7, Size::B4)).gprs(&[(Gpr::Rax, 7)]);
    // 32-bit mode: mov eax, ds:0xfec00010 ; mov ds:0xfec00000, eax (IOAPIC)
    go(
        Mode::Bits32,
        &[0xa1, 0x10, 0x00, 0xc0, 0xfe],
        0xFEC0_0010,
        |_, d| d.poke(0xFEC0_0010, Size::B4, 0x0017_0011),
    )
    .gprs(&[(Gpr::Rax, 0x0017_0011)]);
    go(
        Mode::Bits32,
        &[0xa3, 0x00, 0x00, 0xc0, 0xfe],
        0xFEC0_0000,
        |_, _| {},
    )
    .io(&[Io::Write(0xFEC0_0000, Size::B4, 0x1111_1111)]);
}

// ---- ALU with a register ---------------------------------------------

/// Runs a 2-byte `op [rdi], eax`-style instruction with memory `m` and
/// EAX `a`.
fn alu_mem_reg(code: &[u8], m: u64, a: u64, cf: bool) -> Out {
    go64(code, move |r, d| {
        d.poke(A, Size::B4, m);
        r.rax = a;
        if cf {
            r.rflags |= CF;
        }
    })
}

#[test]
fn alu_memory_destination() {
    // or dword ptr [rdi], eax
    alu_mem_reg(&[0x09, 0x07], 0x0000_00F0, 0x0000_000F, false)
        .io(&[Io::Read(A, Size::B4), Io::Write(A, Size::B4, 0xFF)])
        .flags(PF)
        .gprs(&[]);
    // and dword ptr [rdi], eax
    alu_mem_reg(&[0x21, 0x07], 0xF0, 0x0F, false)
        .mem(A, Size::B4, 0)
        .flags(ZF | PF);
    // xor dword ptr [rdi], eax
    alu_mem_reg(&[0x31, 0x07], 0x8000_0001, 0x1, false)
        .mem(A, Size::B4, 0x8000_0000)
        .flags(SF | PF);
    // add dword ptr [rdi], eax: 0xFFFFFFFF + 1 = 0, CF ZF AF PF.
    alu_mem_reg(&[0x01, 0x07], 0xFFFF_FFFF, 1, false)
        .mem(A, Size::B4, 0)
        .flags(CF | ZF | AF | PF);
    // add: 0x7FFFFFFF + 1 overflows.
    alu_mem_reg(&[0x01, 0x07], 0x7FFF_FFFF, 1, false)
        .mem(A, Size::B4, 0x8000_0000)
        .flags(OF | SF | AF | PF);
    // sub dword ptr [rdi], eax: 0 - 1 borrows.
    alu_mem_reg(&[0x29, 0x07], 0, 1, false)
        .mem(A, Size::B4, 0xFFFF_FFFF)
        .flags(CF | SF | AF | PF);
    // cmp dword ptr [rdi], eax: flags only, no write.
    alu_mem_reg(&[0x39, 0x07], 5, 5, false)
        .io(&[Io::Read(A, Size::B4)])
        .flags(ZF | PF);
    // test dword ptr [rdi], eax
    alu_mem_reg(&[0x85, 0x07], 0x100, 0x100, true)
        .io(&[Io::Read(A, Size::B4)])
        .flags(PF);
    // adc dword ptr [rdi], eax with CF: 1 + 1 + 1 = 3.
    alu_mem_reg(&[0x11, 0x07], 1, 1, true)
        .mem(A, Size::B4, 3)
        .flags(PF);
    // sbb dword ptr [rdi], eax with CF: 1 - 1 - 1 = -1.
    alu_mem_reg(&[0x19, 0x07], 1, 1, true)
        .mem(A, Size::B4, 0xFFFF_FFFF)
        .flags(CF | SF | AF | PF);
}

#[test]
fn alu_register_destination() {
    // or eax, dword ptr [rdi]
    alu_mem_reg(&[0x0b, 0x07], 0xF0, 0x0F, false)
        .gprs(&[(Gpr::Rax, 0xFF)])
        .io(&[Io::Read(A, Size::B4)])
        .flags(PF);
    // and eax, dword ptr [rdi]
    alu_mem_reg(&[0x23, 0x07], 0xF0, 0x1_0000_00FF, false).gprs(&[(Gpr::Rax, 0xF0)]);
    // xor eax, dword ptr [rdi]
    alu_mem_reg(&[0x33, 0x07], 0xFF, 0xFF, false)
        .gprs(&[(Gpr::Rax, 0)])
        .flags(ZF | PF);
    // add eax, dword ptr [rdi]
    alu_mem_reg(&[0x03, 0x07], 2, 3, false).gprs(&[(Gpr::Rax, 5)]);
    // sub eax, dword ptr [rdi]: 3 - 5
    alu_mem_reg(&[0x2b, 0x07], 5, 3, false)
        .gprs(&[(Gpr::Rax, 0xFFFF_FFFE)])
        .flags(CF | SF | AF);
    // cmp eax, dword ptr [rdi]: no register change
    alu_mem_reg(&[0x3b, 0x07], 5, 3, false)
        .gprs(&[])
        .flags(CF | SF | AF);
    // adc eax, dword ptr [rdi]
    alu_mem_reg(&[0x13, 0x07], 5, 3, true).gprs(&[(Gpr::Rax, 9)]);
    // sbb eax, dword ptr [rdi]
    alu_mem_reg(&[0x1b, 0x07], 5, 9, true).gprs(&[(Gpr::Rax, 3)]);
    // cmp cl, byte ptr [rdi]
    go64(&[0x3a, 0x0f], |r, d| {
        r.rcx = 0x80;
        d.poke(A, Size::B1, 1);
    })
    .gprs(&[])
    .io(&[Io::Read(A, Size::B1)])
    .flags(OF | AF);
}

#[test]
fn alu_byte_forms() {
    // or byte ptr [rdi], al
    go64(&[0x08, 0x07], |r, d| {
        r.rax = 0x01;
        d.poke(A, Size::B4, 0xAAAA_AA80);
    })
    .io(&[Io::Read(A, Size::B1), Io::Write(A, Size::B1, 0x81)])
    .mem(A, Size::B4, 0xAAAA_AA81)
    .flags(SF | PF);
    // add byte ptr [rdi], cl
    go64(&[0x00, 0x0f], |r, d| {
        r.rcx = 0xFF;
        d.poke(A, Size::B1, 0x01);
    })
    .mem(A, Size::B1, 0)
    .flags(CF | ZF | AF | PF);
    // test byte ptr [rdi], dl
    go64(&[0x84, 0x17], |r, d| {
        r.rdx = 0x0F;
        d.poke(A, Size::B1, 0xF0);
    })
    .io(&[Io::Read(A, Size::B1)])
    .flags(ZF | PF);
}

// ---- ALU with an immediate ---------------------------------------------

fn alu_imm(code: &[u8], size: Size, m: u64) -> Out {
    go64(code, move |_, d| d.poke(A, size, m))
}

#[test]
fn alu_imm32_forms() {
    // or dword ptr [rdi], 0x80000000
    alu_imm(&[0x81, 0x0f, 0x00, 0x00, 0x00, 0x80], Size::B4, 1)
        .io(&[Io::Read(A, Size::B4), Io::Write(A, Size::B4, 0x8000_0001)])
        .flags(SF);
    // and dword ptr [rdi], 0x7fffffff
    alu_imm(&[0x81, 0x27, 0xff, 0xff, 0xff, 0x7f], Size::B4, 0xFFFF_FFFF)
        .mem(A, Size::B4, 0x7FFF_FFFF)
        .flags(PF);
    // xor dword ptr [rdi], 0x55555555
    alu_imm(&[0x81, 0x37, 0x55, 0x55, 0x55, 0x55], Size::B4, 0xFFFF_FFFF)
        .mem(A, Size::B4, 0xAAAA_AAAA)
        .flags(SF | PF);
    // add dword ptr [rdi], 0x100
    alu_imm(&[0x81, 0x07, 0x00, 0x01, 0x00, 0x00], Size::B4, 0xFFFF_FF00)
        .mem(A, Size::B4, 0)
        .flags(CF | ZF | PF);
    // sub dword ptr [rdi], 0x100
    alu_imm(&[0x81, 0x2f, 0x00, 0x01, 0x00, 0x00], Size::B4, 0x100)
        .mem(A, Size::B4, 0)
        .flags(ZF | PF);
    // cmp dword ptr [rdi], 0x100
    alu_imm(&[0x81, 0x3f, 0x00, 0x01, 0x00, 0x00], Size::B4, 0xFF)
        .io(&[Io::Read(A, Size::B4)])
        .flags(CF | SF | PF);
}

#[test]
fn alu_imm8_sign_extended_forms() {
    // add dword ptr [rdi], -1 (83 /0 ff)
    alu_imm(&[0x83, 0x07, 0xff], Size::B4, 1)
        .mem(A, Size::B4, 0)
        .flags(CF | ZF | AF | PF);
    // and dword ptr [rdi], -16
    alu_imm(&[0x83, 0x27, 0xf0], Size::B4, 0x1234_5678).mem(A, Size::B4, 0x1234_5670);
    // or dword ptr [rdi], 1
    alu_imm(&[0x83, 0x0f, 0x01], Size::B4, 0x10).mem(A, Size::B4, 0x11);
    // cmp dword ptr [rdi], -1
    alu_imm(&[0x83, 0x3f, 0xff], Size::B4, 0xFFFF_FFFF)
        .io(&[Io::Read(A, Size::B4)])
        .flags(ZF | PF);
    // adc dword ptr [rdi], 1 ; sbb dword ptr [rdi], 1 (CF clear)
    alu_imm(&[0x83, 0x17, 0x01], Size::B4, 1).mem(A, Size::B4, 2);
    alu_imm(&[0x83, 0x1f, 0x01], Size::B4, 1)
        .mem(A, Size::B4, 0)
        .flags(ZF | PF);
    // xor dword ptr [rdi], 1 ; sub dword ptr [rdi], 1
    alu_imm(&[0x83, 0x37, 0x01], Size::B4, 3).mem(A, Size::B4, 2);
    alu_imm(&[0x83, 0x2f, 0x01], Size::B4, 3).mem(A, Size::B4, 2);
    // add qword ptr [rdi], -2
    alu_imm(&[0x48, 0x83, 0x07, 0xfe], Size::B8, 2)
        .io(&[Io::Read(A, Size::B8), Io::Write(A, Size::B8, 0)])
        .flags(CF | ZF | AF | PF);
}

#[test]
fn alu_imm_other_sizes() {
    // or byte ptr [rdi], 0x80
    alu_imm(&[0x80, 0x0f, 0x80], Size::B1, 1)
        .io(&[Io::Read(A, Size::B1), Io::Write(A, Size::B1, 0x81)]);
    // and byte ptr [rdi], 0x7f
    alu_imm(&[0x80, 0x27, 0x7f], Size::B1, 0xFF).mem(A, Size::B1, 0x7F);
    // cmp byte ptr [rdi], 0x10
    alu_imm(&[0x80, 0x3f, 0x10], Size::B1, 0x10).flags(ZF | PF);
    // or word ptr [rdi], 0x8000
    alu_imm(&[0x66, 0x81, 0x0f, 0x00, 0x80], Size::B2, 1)
        .io(&[Io::Read(A, Size::B2), Io::Write(A, Size::B2, 0x8001)])
        .flags(SF);
    // or qword ptr [rdi], 0x10000
    alu_imm(
        &[0x48, 0x81, 0x0f, 0x00, 0x00, 0x01, 0x00],
        Size::B8,
        0x8000_0000_0000_0000,
    )
    .mem(A, Size::B8, 0x8000_0000_0001_0000)
    .flags(SF | PF);
    // 32-bit mode: 82 /1 is an alias of 80 /1: or byte ptr [edi], 0x1
    go(Mode::Bits32, &[0x82, 0x0f, 0x01], A, |_, d| {
        d.poke(A, Size::B1, 2)
    })
    .mem(A, Size::B1, 3);
}

#[test]
fn test_immediate() {
    // test dword ptr [rdi], 0x10000
    alu_imm(&[0xf7, 0x07, 0x00, 0x00, 0x01, 0x00], Size::B4, 0x1_0000)
        .io(&[Io::Read(A, Size::B4)])
        .flags(PF);
    // test byte ptr [rdi], 0x80
    alu_imm(&[0xf6, 0x07, 0x80], Size::B1, 0x7F).flags(ZF | PF);
    // test word ptr [rdi], 0x8000
    alu_imm(&[0x66, 0xf7, 0x07, 0x00, 0x80], Size::B2, 0x8000).flags(SF | PF);
    // test qword ptr [rdi], -1
    alu_imm(
        &[0x48, 0xf7, 0x07, 0xff, 0xff, 0xff, 0xff],
        Size::B8,
        0x8000_0000_0000_0000,
    )
    .flags(SF | PF);
}

// ---- Linux's set_bit / clear_bit and the bit tests ---------------------

#[test]
fn locked_set_and_clear_bit() {
    // lock or byte ptr [rdi], 1
    let o = alu_imm(&[0xf0, 0x80, 0x0f, 0x01], Size::B1, 0x10);
    assert!(o.insn.lock);
    o.io(&[Io::Read(A, Size::B1), Io::Write(A, Size::B1, 0x11)]);
    // lock and byte ptr [rdi], 0xfe
    alu_imm(&[0xf0, 0x80, 0x27, 0xfe], Size::B1, 0x11).mem(A, Size::B1, 0x10);
    // lock bts qword ptr [rdi], rax (rax = 3): CF = old bit.
    go64(&[0xf0, 0x48, 0x0f, 0xab, 0x07], |r, d| {
        r.rax = 3;
        d.poke(A, Size::B8, 0x8);
    })
    .io(&[Io::Read(A, Size::B8), Io::Write(A, Size::B8, 0x8)])
    .flags(CF);
    // lock btr qword ptr [rdi], rax
    go64(&[0xf0, 0x48, 0x0f, 0xb3, 0x07], |r, d| {
        r.rax = 3;
        d.poke(A, Size::B8, 0xF);
    })
    .mem(A, Size::B8, 0x7)
    .flags(CF);
}

#[test]
fn bit_test_register_offset_addresses_other_words() {
    // bt qword ptr [rdi], rax with rax = 64 + 5: the qword at rdi + 8.
    go(Mode::Bits64, &[0x48, 0x0f, 0xa3, 0x07], A + 8, |r, d| {
        r.rax = 69;
        r.rflags |= ZF;
        d.poke(A + 8, Size::B8, 1 << 5);
    })
    .io(&[Io::Read(A + 8, Size::B8)])
    .flags(CF | ZF);
    // bt dword ptr [rdi], ecx with ecx = -1: bit 31 of the dword at rdi - 4.
    go(Mode::Bits64, &[0x0f, 0xa3, 0x0f], A - 4, |r, d| {
        r.rcx = 0xFFFF_FFFF;
        d.poke(A - 4, Size::B4, 0x8000_0000);
    })
    .io(&[Io::Read(A - 4, Size::B4)])
    .flags(CF);
    // btc dword ptr [rdi], ecx with ecx = 33: bit 1 of rdi + 4.
    go(Mode::Bits64, &[0x0f, 0xbb, 0x0f], A + 4, |r, d| {
        r.rcx = 33;
        d.poke(A + 4, Size::B4, 0xF);
    })
    .io(&[Io::Read(A + 4, Size::B4), Io::Write(A + 4, Size::B4, 0xD)])
    .flags(CF);
}

#[test]
fn bit_test_immediate() {
    // bts dword ptr [rdi], 5
    alu_imm(&[0x0f, 0xba, 0x2f, 0x05], Size::B4, 0)
        .io(&[Io::Read(A, Size::B4), Io::Write(A, Size::B4, 0x20)])
        .flags(0);
    // btr dword ptr [rdi], 5
    alu_imm(&[0x0f, 0xba, 0x37, 0x05], Size::B4, 0x21)
        .mem(A, Size::B4, 0x1)
        .flags(CF);
    // bt dword ptr [rdi], 5
    alu_imm(&[0x0f, 0xba, 0x27, 0x05], Size::B4, 0x20)
        .io(&[Io::Read(A, Size::B4)])
        .flags(CF);
    // btc dword ptr [rdi], 31
    alu_imm(&[0x0f, 0xba, 0x3f, 0x1f], Size::B4, 0).mem(A, Size::B4, 0x8000_0000);
    // lock btc qword ptr [rdi], 63
    alu_imm(&[0xf0, 0x48, 0x0f, 0xba, 0x3f, 0x3f], Size::B8, u64::MAX)
        .mem(A, Size::B8, u64::MAX >> 1)
        .flags(CF);
    // bt word ptr [rdi], 17: the immediate is taken modulo 16 (bit 1).
    alu_imm(&[0x66, 0x0f, 0xba, 0x27, 0x11], Size::B2, 0x2)
        .io(&[Io::Read(A, Size::B2)])
        .flags(CF);
}

// ---- XCHG, NOT, NEG, INC, DEC ------------------------------------------

#[test]
fn xchg_with_memory() {
    // xchg dword ptr [rdi], eax
    let o = go64(&[0x87, 0x07], |r, d| {
        r.rax = 0xAAAA_AAAA_1234_5678;
        d.poke(A, Size::B4, 0x9ABC_DEF0);
    });
    assert!(o.insn.lock, "XCHG with memory is always locked");
    o.gprs(&[(Gpr::Rax, 0x9ABC_DEF0)])
        .io(&[Io::Read(A, Size::B4), Io::Write(A, Size::B4, 0x1234_5678)])
        .flags_unchanged();
    // xchg byte ptr [rdi], al
    go64(&[0x86, 0x07], dev_with(0x55, Size::B1))
        .gprs(&[(Gpr::Rax, 0x1111_1111_1111_1155)])
        .io(&[Io::Read(A, Size::B1), Io::Write(A, Size::B1, 0x11)]);
    // xchg qword ptr [rdi], rdx
    go64(&[0x48, 0x87, 0x17], dev_with(7, Size::B8))
        .gprs(&[(Gpr::Rdx, 7)])
        .mem(A, Size::B8, 0x3333_3333_3333_3333);
    // lock xchg dword ptr [rdi], eax
    go64(&[0xf0, 0x87, 0x07], dev_with(7, Size::B4)).gprs(&[(Gpr::Rax, 7)]);
}

#[test]
fn unary_ops() {
    // not dword ptr [rdi]: no flags change.
    alu_imm(&[0xf7, 0x17], Size::B4, 0x0F0F_0F0F)
        .mem(A, Size::B4, 0xF0F0_F0F0)
        .flags_unchanged();
    // neg dword ptr [rdi]
    alu_imm(&[0xf7, 0x1f], Size::B4, 1)
        .mem(A, Size::B4, 0xFFFF_FFFF)
        .flags(CF | SF | AF | PF);
    alu_imm(&[0xf7, 0x1f], Size::B4, 0)
        .mem(A, Size::B4, 0)
        .flags(ZF | PF);
    alu_imm(&[0xf7, 0x1f], Size::B4, 0x8000_0000)
        .mem(A, Size::B4, 0x8000_0000)
        .flags(CF | OF | SF | PF);
    // inc dword ptr [rdi]: CF is kept.
    go64(&[0xff, 0x07], |r, d| {
        r.rflags |= CF;
        d.poke(A, Size::B4, 0x7FFF_FFFF);
    })
    .mem(A, Size::B4, 0x8000_0000)
    .flags(CF | OF | SF | AF | PF);
    // dec dword ptr [rdi]
    alu_imm(&[0xff, 0x0f], Size::B4, 1)
        .mem(A, Size::B4, 0)
        .flags(ZF | PF);
    // inc byte ptr [rdi]
    alu_imm(&[0xfe, 0x07], Size::B1, 0xFF)
        .io(&[Io::Read(A, Size::B1), Io::Write(A, Size::B1, 0)])
        .flags(ZF | AF | PF);
    // dec qword ptr [rdi]
    alu_imm(&[0x48, 0xff, 0x0f], Size::B8, 0)
        .mem(A, Size::B8, u64::MAX)
        .flags(SF | AF | PF);
    // lock inc dword ptr [rdi]
    alu_imm(&[0xf0, 0xff, 0x07], Size::B4, 1).mem(A, Size::B4, 2);
    // not byte ptr [rdi]
    alu_imm(&[0xf6, 0x17], Size::B1, 0x0F).mem(A, Size::B1, 0xF0);
    // neg qword ptr [rdi]
    alu_imm(&[0x48, 0xf7, 0x1f], Size::B8, 2).mem(A, Size::B8, u64::MAX - 1);
}

// ---- STOS / LODS -----------------------------------------------------

#[test]
fn stos_and_lods() {
    // stosb
    go64(&[0xaa], |_, _| {})
        .io(&[Io::Write(A, Size::B1, 0x11)])
        .gprs(&[(Gpr::Rdi, A + 1)]);
    // stosd with DF set steps down
    go64(&[0xab], |r, _| r.rflags |= DF)
        .io(&[Io::Write(A, Size::B4, 0x1111_1111)])
        .gprs(&[(Gpr::Rdi, A - 4)]);
    // stosq ; stosw
    go64(&[0x48, 0xab], |_, _| {}).gprs(&[(Gpr::Rdi, A + 8)]);
    go64(&[0x66, 0xab], |_, _| {})
        .io(&[Io::Write(A, Size::B2, 0x1111)])
        .gprs(&[(Gpr::Rdi, A + 2)]);
    // lodsb ; lodsd ; lodsq
    go64(&[0xac], |r, d| {
        r.rsi = A;
        d.poke(A, Size::B1, 0x99);
    })
    .gprs(&[(Gpr::Rax, 0x1111_1111_1111_1199), (Gpr::Rsi, A + 1)])
    .io(&[Io::Read(A, Size::B1)]);
    go64(&[0xad], |r, d| {
        r.rsi = A;
        d.poke(A, Size::B4, 0x9999_9999);
    })
    .gprs(&[(Gpr::Rax, 0x9999_9999), (Gpr::Rsi, A + 4)]);
    go64(&[0x48, 0xad], |r, _| r.rsi = A).gprs(&[(Gpr::Rax, 0), (Gpr::Rsi, A + 8)]);
    // 32-bit mode: stosd through ES, whatever the ES base.
    let (mut cpu, ram) = machine(Mode::Bits32, &[0xab]);
    cpu.segments.es = 0x1000;
    cpu.segments.ds = 0x2000;
    let mut r = regs();
    r.rdi = A - 0x1000;
    let mut d = Dev::default();
    Emulator::new(cpu, &ram).emulate(&mut r, &mut d, A).unwrap();
    assert_eq!(d.log, [Io::Write(A, Size::B4, 0x1111_1111)]);
    assert_eq!(r.rdi, A - 0x1000 + 4);
    // 16-bit mode: stosw steps DI only.
    go(Mode::Bits16, &[0xab], 0xFFFE, |r, _| {
        r.rdi = 0xAAAA_0000_0000_FFFE;
    })
    .gprs(&[(Gpr::Rdi, 0xAAAA_0000_0000_0000)]);
}

#[test]
fn rep_string_is_unsupported() {
    // rep stosb
    let mut r = regs();
    let e = run(Mode::Bits64, &[0xf3, 0xaa], &mut r, &mut Dev::default(), A).unwrap_err();
    assert!(matches!(e, EmulError::Unsupported { len: 15, .. }), "{e:?}");
    assert_eq!(r, regs());
}

// ---- addressing --------------------------------------------------------

#[test]
fn modrm_sib_forms() {
    let dev = |_: &mut Regs, d: &mut Dev| d.poke(A, Size::B4, 0x5A5A);
    // mov eax, dword ptr [rdi+rcx*4+0x10]
    go64(&[0x8b, 0x44, 0x8f, 0x10], |r, d| {
        r.rdi = A - 0x10 - 0x40;
        r.rcx = 0x10;
        dev(r, d);
    })
    .gprs(&[(Gpr::Rax, 0x5A5A)]);
    // mov eax, dword ptr [r12]
    go64(&[0x41, 0x8b, 0x04, 0x24], |r, d| {
        r.r12 = A;
        dev(r, d);
    })
    .gprs(&[(Gpr::Rax, 0x5A5A)]);
    // mov eax, dword ptr [r13+0x0] (mod=01: r13 has no disp-less form)
    go64(&[0x41, 0x8b, 0x45, 0x00], |r, d| {
        r.r13 = A;
        dev(r, d);
    })
    .gprs(&[(Gpr::Rax, 0x5A5A)]);
    // mov eax, dword ptr [rsp+0x8]
    let o = go64(&[0x8b, 0x44, 0x24, 0x08], |r, d| {
        r.rsp = A - 8;
        dev(r, d);
    });
    assert_eq!(o.insn.mem.segment, Segment::Ss);
    o.gprs(&[(Gpr::Rax, 0x5A5A)]);
    // mov eax, dword ptr [rbp+0x0]
    go64(&[0x8b, 0x45, 0x00], |r, d| {
        r.rbp = A;
        dev(r, d);
    })
    .gprs(&[(Gpr::Rax, 0x5A5A)]);
    // mov eax, dword ptr [rcx*8+0x7ee00000] (SIB with no base)
    let o = go64(&[0x8b, 0x04, 0xcd, 0x00, 0x00, 0xe0, 0x7e], |r, d| {
        r.rcx = (A - 0x7EE0_0000) / 8;
        dev(r, d);
    });
    assert_eq!(o.insn.mem.base, None);
    o.gprs(&[(Gpr::Rax, 0x5A5A)]);
    // mov eax, dword ptr [rdi+r12*4] (REX.X)
    go64(&[0x42, 0x8b, 0x04, 0xa7], |r, d| {
        r.rdi = A - 0x40;
        r.r12 = 0x10;
        dev(r, d);
    })
    .gprs(&[(Gpr::Rax, 0x5A5A)]);
    // mov eax, dword ptr [r9+r15*2-0x20] (REX.B and REX.X)
    go64(&[0x43, 0x8b, 0x44, 0x79, 0xe0], |r, d| {
        r.r9 = A;
        r.r15 = 0x10;
        dev(r, d);
    })
    .gprs(&[(Gpr::Rax, 0x5A5A)]);
}

#[test]
fn segment_overrides_in_64_bit_mode() {
    let (mut cpu, ram) = machine(Mode::Bits64, &[]);
    cpu.segments = SegmentBases {
        es: 0x100,
        cs: 0x200,
        ss: 0x300,
        ds: 0x400,
        fs: 0x1000,
        gs: 0x2000,
    };
    for (code, base) in [
        (&[0x65, 0x8b, 0x07][..], 0x2000u64), // mov eax, dword ptr gs:[rdi]
        (&[0x64, 0x8b, 0x07][..], 0x1000),    // mov eax, dword ptr fs:[rdi]
        (&[0x2e, 0x8b, 0x07][..], 0),         // cs mov eax, dword ptr [rdi]
        (&[0x8b, 0x07][..], 0),
    ] {
        let mut ram = ram.clone();
        ram.write(CODE, code);
        let mut r = regs();
        r.rdi = A - base;
        let mut d = Dev::default();
        Emulator::new(cpu, &ram).emulate(&mut r, &mut d, A).unwrap();
        assert_eq!(d.log, [Io::Read(A, Size::B4)], "{code:02x?}");
    }
}

#[test]
fn address_size_override_in_64_bit_mode() {
    // mov eax, dword ptr [edi]: the upper half of RDI is ignored.
    go64(&[0x67, 0x8b, 0x07], |r, d| {
        r.rdi = 0xFFFF_FFFF_0000_0000 | A;
        d.poke(A, Size::B4, 9);
    })
    .gprs(&[(Gpr::Rax, 9)]);
    // mov eax, dword ptr [eip+0x100]: EIP-relative, wraps at 4 GiB.
    let code = [0x67, 0x8b, 0x05, 0x00, 0x01, 0x00, 0x00];
    let mut r = regs();
    let (cpu, mut ram) = machine(Mode::Bits64, &[]);
    // Code at linear 0x1_0001_0000 would need more page tables; instead
    // check the address the operand resolves to.
    ram.write(CODE, &code);
    let insn = Emulator::new(cpu, &ram).fetch_decode(&r).unwrap();
    r.rip = 0x1_0000_0000 + CODE;
    assert_eq!(insn.operand_offset(&r), CODE + 7 + 0x100);
}

#[test]
fn rex_before_a_legacy_prefix_is_ignored() {
    // 48 66 8b 07: the REX.W is not adjacent to the opcode, so this is
    // mov ax, word ptr [rdi].
    go64(&[0x48, 0x66, 0x8b, 0x07], dev_with(0xFFFF_FFFF, Size::B4))
        .gprs(&[(Gpr::Rax, 0x1111_1111_1111_FFFF)])
        .io(&[Io::Read(A, Size::B2)]);
    // 66 48 8b 07: REX.W wins over 66.
    go64(&[0x66, 0x48, 0x8b, 0x07], dev_with(0xFFFF_FFFF, Size::B8)).io(&[Io::Read(A, Size::B8)]);
}

#[test]
fn thirty_two_bit_mode() {
    // mov eax, dword ptr [edi] with a DS base; the linear address wraps
    // at 4 GiB.
    let (mut cpu, ram) = machine(Mode::Bits32, &[0x8b, 0x07]);
    cpu.segments.ds = 0x2000_0000;
    let mut r = regs();
    r.rdi = A.wrapping_sub(0x2000_0000);
    let mut d = Dev::default();
    d.poke(A, Size::B4, 0xDEAD);
    Emulator::new(cpu, &ram).emulate(&mut r, &mut d, A).unwrap();
    assert_eq!(r.rax, 0xDEAD);
    assert_eq!(r.rip, CODE + 2);
    // mov eax, dword ptr [ebp+0x8] uses SS.
    let (mut cpu, ram) = machine(Mode::Bits32, &[0x8b, 0x45, 0x08]);
    cpu.segments.ss = 0x100;
    cpu.segments.ds = 0x7777;
    let mut r = regs();
    r.rbp = A - 0x108;
    let mut d = Dev::default();
    Emulator::new(cpu, &ram).emulate(&mut r, &mut d, A).unwrap();
    assert_eq!(d.log, [Io::Read(A, Size::B4)]);
    // mov eax, dword ptr ds:0xfee00020 as ModRM mod=00 rm=101: absolute
    // disp32, not RIP-relative.
    go(
        Mode::Bits32,
        &[0x8b, 0x05, 0x20, 0x00, 0xe0, 0xfe],
        A,
        dev_with(3, Size::B4),
    )
    .gprs(&[(Gpr::Rax, 3)]);
    // mov ax, word ptr [bx+si+0x4] (67: 16-bit addressing)
    go(
        Mode::Bits32,
        &[0x67, 0x66, 0x8b, 0x40, 0x04],
        0xFFF4,
        |r, d| {
            r.rbx = 0xFFFF_0000_0000_FFF0;
            r.rsi = 0x10_0000;
            d.poke(0xFFF4, Size::B2, 0x1234);
        },
    )
    .gprs(&[(Gpr::Rax, 0x1111_1111_1111_1234)]);
    // lock or dword ptr [edi], 0x1
    go(Mode::Bits32, &[0xf0, 0x83, 0x0f, 0x01], A, |_, _| {}).mem(A, Size::B4, 1);
    // mov dword ptr [edi], 0x12345678
    go(
        Mode::Bits32,
        &[0xc7, 0x07, 0x78, 0x56, 0x34, 0x12],
        A,
        |_, _| {},
    )
    .io(&[Io::Write(A, Size::B4, 0x1234_5678)]);
    // mov eax, dword ptr es:[edi]
    go(Mode::Bits32, &[0x26, 0x8b, 0x07], A, |_, _| {}).gprs(&[(Gpr::Rax, 0)]);
}

#[test]
fn sixteen_bit_mode() {
    // mov ax, word ptr [bx]
    go(Mode::Bits16, &[0x8b, 0x07], 0x8000, |r, d| {
        r.rbx = 0x8000;
        d.poke(0x8000, Size::B2, 0x0741);
    })
    .gprs(&[(Gpr::Rax, 0x1111_1111_1111_0741)]);
    // mov eax, dword ptr [bx+si+0x10]
    go(Mode::Bits16, &[0x66, 0x8b, 0x40, 0x10], 0x30, |r, _| {
        r.rbx = 0x10;
        r.rsi = 0x10;
    })
    .gprs(&[(Gpr::Rax, 0)]);
    // mov ax, word ptr [bp+di-0x2] uses SS
    let (mut cpu, ram) = machine(Mode::Bits16, &[0x8b, 0x43, 0xfe]);
    cpu.segments.ss = 0x9_0000;
    let mut r = regs();
    r.rbp = 0x100;
    r.rdi = 0x2;
    let mut d = Dev::default();
    let insn = Emulator::new(cpu, &ram)
        .emulate(&mut r, &mut d, 0x9_0100)
        .unwrap();
    assert_eq!(insn.mem.segment, Segment::Ss);
    assert_eq!(d.log, [Io::Read(0x9_0100, Size::B2)]);
    // mov ax, ds:0x1234 with DS base 0xB0000
    let (mut cpu, ram) = machine(Mode::Bits16, &[0xa1, 0x34, 0x12]);
    cpu.segments.ds = 0xB_0000;
    let mut r = regs();
    let mut d = Dev::default();
    Emulator::new(cpu, &ram)
        .emulate(&mut r, &mut d, 0xB_1234)
        .unwrap();
    assert_eq!(d.log, [Io::Read(0xB_1234, Size::B2)]);
    // mov eax, dword ptr [edi] (67 66)
    go(Mode::Bits16, &[0x67, 0x66, 0x8b, 0x07], A, |_, _| {}).io(&[Io::Read(A, Size::B4)]);
    // mov al, byte ptr [si]
    go(Mode::Bits16, &[0x8a, 0x04], 0x4321, |r, _| r.rsi = 0x4321)
        .io(&[Io::Read(0x4321, Size::B1)]);
    // IP wraps at 64 KiB.
    let (cpu, mut ram) = machine(Mode::Bits16, &[]);
    ram.write(CODE + 0xFFFE, &[0x8a, 0x04]);
    let mut r = regs();
    r.rip = 0xFFFE;
    r.rsi = 0x4321;
    Emulator::new(cpu, &ram)
        .emulate(&mut r, &mut Dev::default(), 0x4321)
        .unwrap();
    assert_eq!(r.rip, 0);
}

// ---- errors ------------------------------------------------------------

fn err64(code: &[u8]) -> EmulError {
    let mut r = regs();
    r.rdi = A;
    let before = r;
    let e = run(Mode::Bits64, code, &mut r, &mut Dev::default(), A).unwrap_err();
    assert_eq!(r, before, "registers changed on error");
    e
}

#[test]
fn unsupported_forms_report_their_bytes() {
    for code in [
        &[0x89, 0xc0][..],               // mov eax, eax (no memory operand)
        &[0x0f, 0x05],                   // syscall
        &[0xf3, 0x0f, 0x6f, 0x07],       // movdqu xmm0, [rdi]
        &[0xf0, 0x8b, 0x07],             // lock mov: #UD
        &[0xf0, 0x39, 0x07],             // lock cmp: #UD
        &[0xf0, 0x0f, 0xa3, 0x07],       // lock bt: #UD
        &[0xf6, 0x27],                   // mul byte ptr [rdi]
        &[0xff, 0x17],                   // call qword ptr [rdi]
        &[0xc6, 0x4f, 0x01, 0x02],       // c6 /1: only /0 is MOV
        &[0x82, 0x0f, 0x01],             // invalid in 64-bit mode
        &[0xc4, 0xe1, 0x7a, 0x6f, 0x07], // VEX
        &[0x0f, 0xb0, 0x0f],             // cmpxchg
        &[0x0f, 0xba, 0x07, 0x01],       // 0f ba /0
    ] {
        match err64(code) {
            EmulError::Unsupported { bytes, len } => {
                assert_eq!(len, 15, "{code:02x?}");
                assert_eq!(&bytes[..code.len()], code);
            }
            e => panic!("{code:02x?}: {e:?}"),
        }
    }
    let e = err64(&[0x0f, 0x05]);
    assert!(e
        .to_string()
        .starts_with("unsupported instruction: 0f 05 00"));
    // Standalone decode reports exactly the bytes it was given.
    assert_eq!(
        decode(&[0x0f, 0x05], Mode::Bits64),
        Err(EmulError::unsupported(&[0x0f, 0x05]))
    );
}

#[test]
fn truncated_and_too_long() {
    assert_eq!(decode(&[0x8b], Mode::Bits64), Err(EmulError::Truncated));
    assert_eq!(decode(&[], Mode::Bits64), Err(EmulError::Truncated));
    assert_eq!(
        decode(&[0xc7, 0x07, 1, 2, 3], Mode::Bits64),
        Err(EmulError::Truncated)
    );
    // 14 prefixes + an opcode + ModRM is 16 bytes.
    let mut long = [0x66u8; 16];
    long[14] = 0x8b;
    long[15] = 0x07;
    assert_eq!(decode(&long, Mode::Bits64), Err(EmulError::TooLong));
    // 13 prefixes + 8b 07 is exactly 15: fine.
    let insn = decode(&long[1..], Mode::Bits64).unwrap();
    assert_eq!(insn.len, 15);
    assert_eq!(insn.size, Size::B2);
}

#[test]
fn fetch_across_a_page_boundary() {
    // mov dword ptr [rdi], 0x89abcdef split 3 + 3 across two pages.
    let code = [0xc7, 0x07, 0xef, 0xcd, 0xab, 0x89];
    let (cpu, mut ram) = machine(Mode::Bits64, &[]);
    ram.write(0x10FFD, &code);
    let mut r = regs();
    r.rip = 0x10FFD;
    r.rdi = A;
    let mut d = Dev::default();
    Emulator::new(cpu, &ram).emulate(&mut r, &mut d, A).unwrap();
    assert_eq!(d.log, [Io::Write(A, Size::B4, 0x89ab_cdef)]);

    // With 4 KiB pages and the second one not present: the fetch faults
    // only if the instruction needs it, with the fetch's error code.
    let (mut cpu, mut ram) = machine(Mode::Bits64, &[]);
    // PML4 -> PDPT (0x2000) -> PD at 0x3000 -> PT at 0x4000 for 0..2 MiB.
    ram.write_u64(0x2000, 0x3000 | 0x3);
    ram.write_u64(0x3000, 0x4000 | 0x3);
    for i in 0..512u64 {
        ram.write_u64(0x4000 + 8 * i, (i << 12) | 0x3);
    }
    ram.write_u64(0x4000 + 8 * 0x11, 0); // page 0x11000 not present
    cpu.paging.cr4 |= crate::paging::CR4_SMEP;
    ram.write(0x10FFD, &code[..3]);
    let mut r = regs();
    r.rdi = A;
    r.rip = 0x10FFD;
    assert_eq!(
        Emulator::new(cpu, &ram).fetch_decode(&r),
        Err(EmulError::PageFault(PageFault {
            address: 0x11000,
            error_code: crate::paging::PF_FETCH,
        }))
    );
    // A 2-byte instruction ending at the page boundary decodes.
    ram.write(0x10FFE, &[0x8b, 0x07]);
    r.rip = 0x10FFE;
    assert_eq!(Emulator::new(cpu, &ram).fetch_decode(&r).unwrap().len, 2);
}

#[test]
fn operand_elsewhere_is_a_gpa_mismatch() {
    let mut r = regs();
    r.rdi = A;
    let e = run(
        Mode::Bits64,
        &[0x8b, 0x07],
        &mut r,
        &mut Dev::default(),
        A + 0x1000,
    )
    .unwrap_err();
    assert_eq!(
        e,
        EmulError::GpaMismatch {
            fault_gpa: A + 0x1000,
            operand_gpa: A,
        }
    );
    // Same page, different offset: accepted (the exit's GPA is per page
    // here; the device sees the operand's own address).
    let mut d = Dev::default();
    run(Mode::Bits64, &[0x8b, 0x07], &mut r, &mut d, A & !0xFFF).unwrap();
    assert_eq!(d.log, [Io::Read(A, Size::B4)]);
}

#[test]
fn access_across_a_page_boundary_is_refused() {
    let mut r = regs();
    r.rdi = 0xFEE0_0FFE;
    let e = run(
        Mode::Bits64,
        &[0x8b, 0x07],
        &mut r,
        &mut Dev::default(),
        0xFEE0_0FFE,
    )
    .unwrap_err();
    assert_eq!(
        e,
        EmulError::SplitAccess {
            linear: 0xFEE0_0FFE,
            size: Size::B4
        }
    );
    // The last 4 bytes of a page are fine.
    r.rdi = 0xFEE0_0FFC;
    run(
        Mode::Bits64,
        &[0x8b, 0x07],
        &mut r,
        &mut Dev::default(),
        0xFEE0_0FFC,
    )
    .unwrap();
}

#[test]
fn device_errors_leave_registers_alone() {
    let mut r = regs();
    r.rdi = A;
    let mut d = Dev {
        refuse_writes: true,
        ..Dev::default()
    };
    let before = r;
    // xchg dword ptr [rdi], eax: read done, write refused.
    let e = run(Mode::Bits64, &[0x87, 0x07], &mut r, &mut d, A).unwrap_err();
    assert_eq!(
        e,
        EmulError::Mmio(MmioError::Refused {
            gpa: A,
            size: Size::B4,
            write: true
        })
    );
    assert_eq!(r, before);
}

#[test]
fn user_mode_operand_on_a_supervisor_page_faults() {
    // The identity map's 1 GiB pages are user pages (0x87); make the PDPTE
    // for 3..4 GiB supervisor-only and run at CPL 3.
    let (mut cpu, mut ram) = machine(Mode::Bits64, &[0x89, 0x07]);
    ram.write_u64(0x2000 + 24, (3 << 30) | 0x83);
    cpu.cpl = 3;
    let mut r = regs();
    r.rdi = A;
    let e = Emulator::new(cpu, &ram)
        .emulate(&mut r, &mut Dev::default(), A)
        .unwrap_err();
    assert_eq!(
        e,
        EmulError::PageFault(PageFault {
            address: A,
            error_code: crate::paging::PF_PRESENT
                | crate::paging::PF_WRITE
                | crate::paging::PF_USER,
        })
    );
}

#[test]
fn non_canonical_operand() {
    // mov eax, dword ptr gs:[rdi] with a GS base that makes it non-canonical.
    let (mut cpu, ram) = machine(Mode::Bits64, &[0x65, 0x8b, 0x07]);
    cpu.segments.gs = 0x0000_8000_0000_0000;
    let mut r = regs();
    r.rdi = 0;
    let e = Emulator::new(cpu, &ram)
        .emulate(&mut r, &mut Dev::default(), A)
        .unwrap_err();
    assert_eq!(
        e,
        EmulError::NonCanonical {
            address: 0x0000_8000_0000_0000
        }
    );
}

#[test]
fn rip_wraps_in_32_bit_mode() {
    let (cpu, mut ram) = machine(Mode::Bits32, &[]);
    ram.write(0x10000, &[0x8b, 0x07]);
    let mut cpu = cpu;
    cpu.segments.cs = 0x10002;
    let mut r = regs();
    r.rip = 0xFFFF_FFFE; // CS base + EIP wraps to 0x10000
    r.rdi = A;
    Emulator::new(cpu, &ram)
        .emulate(&mut r, &mut Dev::default(), A)
        .unwrap();
    assert_eq!(r.rip, 0);
}

#[test]
fn instruction_queries() {
    let i = decode(&[0x89, 0x07], Mode::Bits64).unwrap();
    assert!(i.writes_memory() && !i.reads_memory());
    let i = decode(&[0x8b, 0x07], Mode::Bits64).unwrap();
    assert!(!i.writes_memory() && i.reads_memory());
    let i = decode(&[0x09, 0x07], Mode::Bits64).unwrap();
    assert!(i.writes_memory() && i.reads_memory());
    let i = decode(&[0x85, 0x07], Mode::Bits64).unwrap();
    assert!(!i.writes_memory() && i.reads_memory());
    let i = decode(&[0x0f, 0xa3, 0x07], Mode::Bits64).unwrap();
    assert!(!i.writes_memory());
    let i = decode(&[0x0f, 0xab, 0x07], Mode::Bits64).unwrap();
    assert!(i.writes_memory());
    assert_eq!(Mode::from_cs(true, true, false), Mode::Bits64);
    assert_eq!(Mode::from_cs(true, false, true), Mode::Bits32);
    assert_eq!(Mode::from_cs(false, false, false), Mode::Bits16);
}
