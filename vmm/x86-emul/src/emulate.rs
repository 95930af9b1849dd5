//! Fetching, address resolution and execution against a device.

use core::fmt;

use crate::alu;
use crate::decode::{decode, AddrSize, Instruction, Mode, Op, Operand, Segment, MAX_INSN_LEN};
use crate::mem::{GuestMemory, MemError, Mmio, MmioError, Size};
use crate::paging::{translate, Access, AccessKind, PageFault, Paging, WalkError, PAGE_SIZE};
use crate::regs::{flags, Gpr, RegOperand, Regs};

/// Why an instruction was not emulated.
///
/// The guest cannot have executed the access this way if its page tables
/// and code stayed put, so for [`PageFault`](EmulError::PageFault),
/// [`NonCanonical`](EmulError::NonCanonical),
/// [`GpaMismatch`](EmulError::GpaMismatch) and
/// [`TooLong`](EmulError::TooLong) the VMM may simply resume the guest at
/// the same RIP: the CPU redoes the access and raises the right fault
/// itself. Injecting the fault directly is also correct.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmulError {
    /// An instruction this crate does not emulate. `bytes` holds the bytes
    /// at RIP (the first `len` were fetched), for the VMM's message.
    Unsupported {
        /// The bytes.
        bytes: [u8; MAX_INSN_LEN],
        /// How many of them are valid.
        len: u8,
    },
    /// [`decode`] was given fewer bytes than the instruction needs.
    Truncated,
    /// The instruction would be longer than 15 bytes (#GP(0) on the CPU).
    TooLong,
    /// Translating the instruction fetch or the operand faulted.
    PageFault(PageFault),
    /// A linear address was not canonical (#GP(0) or #SS(0) on the CPU).
    NonCanonical {
        /// The address.
        address: u64,
    },
    /// A page-table entry or the instruction bytes are not in guest RAM.
    Memory(MemError),
    /// The operand translates to a page other than the faulting one: the
    /// guest changed its page tables (or code) under the access.
    GpaMismatch {
        /// The faulting guest-physical address the VMM passed.
        fault_gpa: u64,
        /// Where the operand translates now.
        operand_gpa: u64,
    },
    /// The operand crosses a 4 KiB boundary; its two halves may live in
    /// different places and the emulator does not split accesses.
    SplitAccess {
        /// The operand's linear address.
        linear: u64,
        /// Its width.
        size: Size,
    },
    /// The device refused the access.
    Mmio(MmioError),
}

impl EmulError {
    /// [`EmulError::Unsupported`] with the first (up to 15) bytes of `bytes`.
    pub fn unsupported(bytes: &[u8]) -> EmulError {
        let mut out = [0u8; MAX_INSN_LEN];
        let len = bytes.len().min(MAX_INSN_LEN);
        if let (Some(dst), Some(src)) = (out.get_mut(..len), bytes.get(..len)) {
            dst.copy_from_slice(src);
        }
        EmulError::Unsupported {
            bytes: out,
            len: len as u8,
        }
    }
}

impl From<WalkError> for EmulError {
    fn from(e: WalkError) -> Self {
        match e {
            WalkError::PageFault(pf) => EmulError::PageFault(pf),
            WalkError::NonCanonical { address } => EmulError::NonCanonical { address },
            WalkError::Memory(m) => EmulError::Memory(m),
        }
    }
}

impl From<MmioError> for EmulError {
    fn from(e: MmioError) -> Self {
        EmulError::Mmio(e)
    }
}

impl fmt::Display for EmulError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmulError::Unsupported { bytes, len } => {
                f.write_str("unsupported instruction:")?;
                for b in bytes.iter().take(usize::from(*len)) {
                    write!(f, " {b:02x}")?;
                }
                Ok(())
            }
            EmulError::Truncated => f.write_str("instruction bytes end early"),
            EmulError::TooLong => f.write_str("instruction longer than 15 bytes"),
            EmulError::PageFault(pf) => write!(
                f,
                "page fault at {:#x}, error code {:#x}",
                pf.address, pf.error_code
            ),
            EmulError::NonCanonical { address } => {
                write!(f, "non-canonical address {address:#x}")
            }
            EmulError::Memory(e) => e.fmt(f),
            EmulError::GpaMismatch {
                fault_gpa,
                operand_gpa,
            } => write!(
                f,
                "operand at guest-physical {operand_gpa:#x}, but the exit was for {fault_gpa:#x}"
            ),
            EmulError::SplitAccess { linear, size } => write!(
                f,
                "{}-byte access at {linear:#x} crosses a page boundary",
                size.bytes()
            ),
            EmulError::Mmio(e) => e.fmt(f),
        }
    }
}

/// The bases of the segment registers (from the VMCS guest-state area).
/// In 64-bit mode only `fs` and `gs` are used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub struct SegmentBases {
    pub es: u64,
    pub cs: u64,
    pub ss: u64,
    pub ds: u64,
    pub fs: u64,
    pub gs: u64,
}

impl SegmentBases {
    /// The base of `seg`.
    pub const fn get(&self, seg: Segment) -> u64 {
        match seg {
            Segment::Es => self.es,
            Segment::Cs => self.cs,
            Segment::Ss => self.ss,
            Segment::Ds => self.ds,
            Segment::Fs => self.fs,
            Segment::Gs => self.gs,
        }
    }
}

/// The vCPU state, besides [`Regs`], that fetching and addressing need.
/// Segment limits and access rights are not checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CpuState {
    /// The code size (see [`Mode::from_cs`]).
    pub mode: Mode,
    /// The current privilege level (SS.DPL); 3 makes accesses user-mode.
    pub cpl: u8,
    /// Control registers and EFER for the page walk.
    pub paging: Paging,
    /// Segment bases.
    pub segments: SegmentBases,
}

/// Emulates one MMIO access for a vCPU: reads guest RAM through `mem` for
/// page walks and instruction bytes.
#[derive(Clone, Copy, Debug)]
pub struct Emulator<'m, M: GuestMemory + ?Sized> {
    /// The vCPU's state at the exit.
    pub cpu: CpuState,
    /// Guest RAM.
    pub mem: &'m M,
}

impl<'m, M: GuestMemory + ?Sized> Emulator<'m, M> {
    /// An emulator for `cpu` over guest RAM `mem`.
    pub const fn new(cpu: CpuState, mem: &'m M) -> Self {
        Emulator { cpu, mem }
    }

    fn access(&self, kind: AccessKind, regs: &Regs) -> Access {
        Access {
            kind,
            user: self.cpu.cpl == 3,
            ac: regs.rflags & flags::AC != 0,
        }
    }

    /// The linear address of `offset` in `seg` (segment base applied as the
    /// mode dictates; wraps at 4 GiB outside 64-bit mode).
    fn linear(&self, mode: Mode, seg: Segment, offset: u64) -> u64 {
        match mode {
            Mode::Bits64 => match seg {
                Segment::Fs | Segment::Gs => self.cpu.segments.get(seg).wrapping_add(offset),
                _ => offset,
            },
            Mode::Bits32 | Mode::Bits16 => {
                self.cpu.segments.get(seg).wrapping_add(offset) & 0xFFFF_FFFF
            }
        }
    }

    /// Fetches the bytes at CS:RIP into `buf`: as many as are readable, up
    /// to 15. Returns how many were read and, if fewer than 15, why the
    /// next one could not be.
    pub fn fetch(&self, regs: &Regs, buf: &mut [u8; MAX_INSN_LEN]) -> (usize, Option<EmulError>) {
        let mode = self.cpu.mode;
        let ip = match mode {
            Mode::Bits16 => regs.rip & 0xFFFF,
            Mode::Bits32 => regs.rip & 0xFFFF_FFFF,
            Mode::Bits64 => regs.rip,
        };
        let access = self.access(AccessKind::Execute, regs);
        let mut n = 0usize;
        while n < MAX_INSN_LEN {
            let la = self.linear(mode, Segment::Cs, ip.wrapping_add(n as u64));
            let t = match translate(self.mem, &self.cpu.paging, la, access) {
                Ok(t) => t,
                Err(e) => return (n, Some(e.into())),
            };
            let in_page = PAGE_SIZE.wrapping_sub(la & (PAGE_SIZE - 1)) as usize;
            let end = n.saturating_add(in_page).min(MAX_INSN_LEN);
            let Some(chunk) = buf.get_mut(n..end) else {
                break;
            };
            if let Err(e) = self.mem.read(t.gpa, chunk) {
                return (n, Some(EmulError::Memory(e)));
            }
            n = end;
        }
        (n, None)
    }

    /// Fetches and decodes the instruction at CS:RIP.
    ///
    /// A fault on the second page of an instruction that straddles two is
    /// reported only if the instruction needs bytes from it.
    pub fn fetch_decode(&self, regs: &Regs) -> Result<Instruction, EmulError> {
        let mut buf = [0u8; MAX_INSN_LEN];
        let (n, stop) = self.fetch(regs, &mut buf);
        match decode(buf.get(..n).unwrap_or(&[]), self.cpu.mode) {
            Err(EmulError::Truncated) => Err(stop.unwrap_or(EmulError::Truncated)),
            r => r,
        }
    }

    /// Resolves the memory operand to linear and guest-physical addresses,
    /// and checks it against the exit's `fault_gpa`. Returns the operand's
    /// guest-physical address.
    fn resolve(&self, insn: &Instruction, regs: &Regs, fault_gpa: u64) -> Result<u64, EmulError> {
        let ea = insn.operand_offset(regs);
        let linear = self.linear(insn.mode, insn.mem.segment, ea);
        let size = u64::from(insn.size.bytes());
        if (linear & (PAGE_SIZE - 1)) > PAGE_SIZE.wrapping_sub(size) {
            return Err(EmulError::SplitAccess {
                linear,
                size: insn.size,
            });
        }
        let kind = if insn.writes_memory() {
            AccessKind::Write
        } else {
            AccessKind::Read
        };
        let t = translate(self.mem, &self.cpu.paging, linear, self.access(kind, regs))?;
        if t.gpa & !(PAGE_SIZE - 1) != fault_gpa & !(PAGE_SIZE - 1) {
            return Err(EmulError::GpaMismatch {
                fault_gpa,
                operand_gpa: t.gpa,
            });
        }
        Ok(t.gpa)
    }

    /// The guest-physical address `insn`'s memory operand translates to
    /// now, checked against `fault_gpa` as [`Emulator::execute`] does.
    pub fn operand_gpa(
        &self,
        insn: &Instruction,
        regs: &Regs,
        fault_gpa: u64,
    ) -> Result<u64, EmulError> {
        self.resolve(insn, regs, fault_gpa)
    }

    /// Executes `insn` (decoded at `regs.rip`) whose memory operand caused
    /// an exit at guest-physical `fault_gpa`: checks that the operand maps
    /// to `fault_gpa`'s page, makes the device accesses, updates registers
    /// and flags, and advances RIP past the instruction.
    ///
    /// On error, `regs` is unchanged; a device access that already
    /// happened (the read of a read-modify-write whose write failed) is
    /// not undone.
    pub fn execute<D: Mmio + ?Sized>(
        &self,
        insn: &Instruction,
        regs: &mut Regs,
        mmio: &mut D,
        fault_gpa: u64,
    ) -> Result<(), EmulError> {
        let size = insn.size;
        let gpa = self.resolve(insn, regs, fault_gpa)?;
        let mut out = *regs;
        let value = |regs: &Regs, o: Operand, s: Size| match o {
            Operand::Reg(r) => regs.read(r, s),
            Operand::Imm(v) => v & s.mask(),
        };
        match insn.op {
            Op::Load {
                dst,
                dst_size,
                extend,
            } => {
                let v = mmio.read(gpa, size)? & size.mask();
                let v = match extend {
                    crate::decode::Extend::Zero => v,
                    crate::decode::Extend::Sign => size.sign_extend(v),
                };
                out.write(dst, dst_size, v);
            }
            Op::Store { src } => {
                mmio.write(gpa, size, value(regs, src, size))?;
            }
            Op::Alu { op, src } => {
                let a = mmio.read(gpa, size)?;
                let (r, f) = alu::alu(op, size, a, value(regs, src, size), regs.rflags);
                if op.writes_result() {
                    mmio.write(gpa, size, r)?;
                }
                out.rflags = f;
            }
            Op::AluToReg { op, dst } => {
                let b = mmio.read(gpa, size)?;
                let (r, f) = alu::alu(op, size, regs.read(dst, size), b, regs.rflags);
                if op.writes_result() {
                    out.write(dst, size, r);
                }
                out.rflags = f;
            }
            Op::Unary { op } => {
                let a = mmio.read(gpa, size)?;
                let (r, f) = alu::unary(op, size, a, regs.rflags);
                mmio.write(gpa, size, r)?;
                out.rflags = f;
            }
            Op::Xchg { reg } => {
                let a = mmio.read(gpa, size)? & size.mask();
                mmio.write(gpa, size, regs.read(reg, size))?;
                out.write(reg, size, a);
            }
            Op::Bit { op, offset } => {
                let a = mmio.read(gpa, size)?;
                let bit = match offset {
                    Operand::Reg(r) => regs.read(r, size),
                    Operand::Imm(v) => v,
                };
                let (r, f) = alu::bit(op, size, a, bit, regs.rflags);
                if op.writes_result() {
                    mmio.write(gpa, size, r)?;
                }
                out.rflags = f;
            }
            Op::Stos => {
                mmio.write(gpa, size, regs.read(RegOperand::full(Gpr::Rax), size))?;
                step_string(&mut out, insn, Gpr::Rdi);
            }
            Op::Lods => {
                let v = mmio.read(gpa, size)? & size.mask();
                out.write(RegOperand::full(Gpr::Rax), size, v);
                step_string(&mut out, insn, Gpr::Rsi);
            }
        }
        out.rip = next_rip(insn, regs.rip);
        *regs = out;
        Ok(())
    }

    /// Fetches, decodes and executes the instruction at CS:RIP; returns it.
    pub fn emulate<D: Mmio + ?Sized>(
        &self,
        regs: &mut Regs,
        mmio: &mut D,
        fault_gpa: u64,
    ) -> Result<Instruction, EmulError> {
        let insn = self.fetch_decode(regs)?;
        self.execute(&insn, regs, mmio, fault_gpa)?;
        Ok(insn)
    }
}

/// RIP after `insn`, wrapped at the code size.
fn next_rip(insn: &Instruction, rip: u64) -> u64 {
    let next = rip.wrapping_add(u64::from(insn.len));
    match insn.mode {
        Mode::Bits16 => next & 0xFFFF,
        Mode::Bits32 => next & 0xFFFF_FFFF,
        Mode::Bits64 => next,
    }
}

/// Steps rSI or rDI by the operand size (down when RFLAGS.DF is set), at
/// the address size.
fn step_string(regs: &mut Regs, insn: &Instruction, reg: Gpr) {
    let step = u64::from(insn.size.bytes());
    let old = regs.gpr(reg);
    let new = if regs.rflags & flags::DF != 0 {
        old.wrapping_sub(step)
    } else {
        old.wrapping_add(step)
    };
    let size = match insn.mem.addr_size {
        AddrSize::A16 => Size::B2,
        AddrSize::A32 => Size::B4,
        AddrSize::A64 => Size::B8,
    };
    regs.write(RegOperand::full(reg), size, new);
}
