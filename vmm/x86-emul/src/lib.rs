//! Guest page-table walk and x86 instruction emulation for MMIO exits.
//!
//! When a guest touches a guest-physical address that no RAM backs, the
//! VMM gets an EPT violation with that address but not the data or the
//! destination register. This crate recovers them:
//!
//! 1. [`paging::translate`] walks the guest's page tables (none, 32-bit,
//!    PAE, 4-level or 5-level paging, from CR0/CR3/CR4/EFER) through the
//!    [`GuestMemory`] trait, honoring present, R/W, U/S and NX bits, WP,
//!    SMEP and SMAP, large pages and reserved bits, and reports a
//!    [`PageFault`] with the error code the CPU would push.
//! 2. [`Emulator::fetch_decode`] fetches up to 15 bytes at CS:RIP (across
//!    a page boundary if need be) and [`decode`]s them into an
//!    [`Instruction`]: its length, [`Op`], operand [`Size`] and
//!    [`MemOperand`].
//! 3. [`Emulator::execute`] computes the operand's linear address, checks
//!    that it translates to the page of the faulting guest-physical
//!    address, performs the device accesses through the [`Mmio`] trait,
//!    updates registers and arithmetic flags as the CPU would, and
//!    advances RIP.
//!
//! Supported instructions (memory forms only; `LOCK` where the
//! architecture allows it): `MOV` (88, 89, 8A, 8B, C6 /0, C7 /0, A0–A3),
//! `MOVZX`/`MOVSX` (0F B6, B7, BE, BF), `MOVSXD` (63), `MOVNTI` (0F C3),
//! `ADD`/`OR`/`ADC`/`SBB`/`AND`/`SUB`/`XOR`/`CMP` (00–3B with ModRM,
//! 80–83 /x), `TEST` (84, 85, F6 /0, F7 /0), `NOT`/`NEG` (F6/F7 /2, /3),
//! `INC`/`DEC` (FE/FF /0, /1), `XCHG` (86, 87), `BT`/`BTS`/`BTR`/`BTC`
//! (0F A3, AB, B3, BB and 0F BA /4–/7) and `STOS`/`LODS` without `REP`
//! (AA, AB, AC, AD). Anything else is [`EmulError::Unsupported`] with the
//! instruction bytes, so the VMM can stop the VM with them in its message.
//!
//! The crate is `no_std`, allocates nothing, has no `unsafe` code and
//! never panics on guest input.
//!
//! ```
//! use x86_emul::*;
//!
//! /// Guest RAM from guest-physical 0.
//! struct Ram(Vec<u8>);
//! impl GuestMemory for Ram {
//!     fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
//!         let err = MemError { gpa, len: buf.len() };
//!         let start = usize::try_from(gpa).map_err(|_| err)?;
//!         let src = self.0.get(start..start + buf.len()).ok_or(err)?;
//!         buf.copy_from_slice(src);
//!         Ok(())
//!     }
//! }
//!
//! /// A device with one register: the LAPIC version at 0xFEE00030.
//! struct Lapic;
//! impl Mmio for Lapic {
//!     fn read(&mut self, gpa: u64, _size: Size) -> Result<u64, MmioError> {
//!         match gpa {
//!             0xFEE0_0030 => Ok(0x5_0014),
//!             _ => Err(MmioError::Unmapped { gpa }),
//!         }
//!     }
//!     fn write(&mut self, gpa: u64, size: Size, _v: u64) -> Result<(), MmioError> {
//!         Err(MmioError::Refused { gpa, size, write: true })
//!     }
//! }
//!
//! // 32-bit protected mode without paging; `mov eax, [edi]` at 0x1000.
//! let mut ram = vec![0u8; 0x2000];
//! ram[0x1000..0x1002].copy_from_slice(&[0x8b, 0x07]);
//! let cpu = CpuState {
//!     mode: Mode::Bits32,
//!     cpl: 0,
//!     paging: Paging::new(paging::CR0_PE, 0, 0, 0),
//!     segments: SegmentBases::default(),
//! };
//! let mut regs = Regs { rip: 0x1000, rdi: 0xFEE0_0030, ..Regs::default() };
//! // The EPT violation reported guest-physical 0xFEE00030.
//! let ram = Ram(ram);
//! let emu = Emulator::new(cpu, &ram);
//! let insn = emu.emulate(&mut regs, &mut Lapic, 0xFEE0_0030).unwrap();
//! assert_eq!((insn.len, regs.rax, regs.rip), (2, 0x5_0014, 0x1002));
//!
//! // An instruction it does not know stops with its bytes.
//! let err = decode(&[0x0f, 0x0b], Mode::Bits64).unwrap_err();
//! assert_eq!(err.to_string(), "unsupported instruction: 0f 0b");
//! ```
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

pub mod alu;
mod decode;
mod emulate;
mod mem;
pub mod paging;
mod regs;

#[cfg(test)]
mod tests;

pub use decode::{
    decode, AddrSize, AluOp, BitOp, Extend, Instruction, MemOperand, Mode, Op, Operand, Segment,
    UnaryOp, MAX_INSN_LEN,
};
pub use emulate::{CpuState, EmulError, Emulator, SegmentBases};
pub use mem::{GuestMemory, MemError, Mmio, MmioError, Size};
pub use paging::{Access, AccessKind, PageFault, Paging, PagingMode, Translation, WalkError};
pub use regs::{flags, Gpr, RegOperand, Regs};
