//! Test doubles: Vec-backed guest RAM, a logging MMIO device, and vCPUs in
//! each mode with identity-mapped page tables.

use std::collections::BTreeMap;

use crate::paging::{CR0_PE, CR0_PG, CR0_WP, CR4_PAE, CR4_PSE, EFER_LMA, EFER_NXE};
use crate::*;

/// Guest RAM: `bytes` at guest-physical 0.
#[derive(Clone, Debug)]
pub struct Ram {
    pub bytes: Vec<u8>,
}

impl Ram {
    pub fn new(size: usize) -> Self {
        Ram {
            bytes: vec![0; size],
        }
    }

    pub fn write(&mut self, gpa: u64, data: &[u8]) {
        let a = gpa as usize;
        self.bytes[a..a + data.len()].copy_from_slice(data);
    }

    pub fn write_u64(&mut self, gpa: u64, v: u64) {
        self.write(gpa, &v.to_le_bytes());
    }

    pub fn write_u32(&mut self, gpa: u64, v: u32) {
        self.write(gpa, &v.to_le_bytes());
    }
}

impl GuestMemory for Ram {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let err = MemError {
            gpa,
            len: buf.len(),
        };
        let start = usize::try_from(gpa).map_err(|_| err)?;
        let end = start.checked_add(buf.len()).ok_or(err)?;
        let src = self.bytes.get(start..end).ok_or(err)?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

/// One device access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Io {
    Read(u64, Size),
    Write(u64, Size, u64),
}

/// A device that behaves like memory (little-endian, zero when never
/// written) and logs every access.
#[derive(Clone, Debug, Default)]
pub struct Dev {
    pub mem: BTreeMap<u64, u8>,
    pub log: Vec<Io>,
    /// Refuse writes (after logging nothing).
    pub refuse_writes: bool,
}

impl Dev {
    pub fn poke(&mut self, gpa: u64, size: Size, v: u64) {
        for i in 0..u64::from(size.bytes()) {
            self.mem.insert(gpa + i, (v >> (8 * i)) as u8);
        }
    }

    pub fn peek(&self, gpa: u64, size: Size) -> u64 {
        let mut v = 0;
        for i in 0..u64::from(size.bytes()) {
            v |= u64::from(*self.mem.get(&(gpa + i)).unwrap_or(&0)) << (8 * i);
        }
        v
    }
}

impl Mmio for Dev {
    fn read(&mut self, gpa: u64, size: Size) -> Result<u64, MmioError> {
        self.log.push(Io::Read(gpa, size));
        Ok(self.peek(gpa, size))
    }

    fn write(&mut self, gpa: u64, size: Size, value: u64) -> Result<(), MmioError> {
        if self.refuse_writes {
            return Err(MmioError::Refused {
                gpa,
                size,
                write: true,
            });
        }
        assert_eq!(value & !size.mask(), 0, "value wider than the access");
        self.log.push(Io::Write(gpa, size, value));
        self.poke(gpa, size, value);
        Ok(())
    }
}

/// Where test code is placed.
pub const CODE: u64 = 0x10000;
/// Size of test RAM; anything above is "MMIO".
pub const RAM_SIZE: usize = 0x20_0000;

/// A vCPU in `mode` with RAM holding identity-mapped page tables (4-level
/// with 1 GiB pages for 64-bit, 32-bit paging with 4 MiB pages for 32-bit,
/// no paging for 16-bit) for the low 4 GiB, and `code` at [`CODE`] (the CS
/// base in 16-bit mode).
pub fn machine(mode: Mode, code: &[u8]) -> (CpuState, Ram) {
    let mut ram = Ram::new(RAM_SIZE);
    ram.write(CODE, code);
    let paging = match mode {
        Mode::Bits64 => {
            ram.write_u64(0x1000, 0x2000 | 0x7);
            for i in 0..4u64 {
                ram.write_u64(0x2000 + 8 * i, (i << 30) | 0x87);
            }
            Paging::new(
                CR0_PE | CR0_PG | CR0_WP,
                0x1000,
                CR4_PAE,
                EFER_LMA | EFER_NXE | (1 << 8),
            )
        }
        Mode::Bits32 => {
            for i in 0..1024u64 {
                ram.write_u32(0x1000 + 4 * i, ((i << 22) | 0x87) as u32);
            }
            Paging::new(CR0_PE | CR0_PG | CR0_WP, 0x1000, CR4_PSE, 0)
        }
        Mode::Bits16 => Paging::new(0, 0, 0, 0),
    };
    let mut segments = SegmentBases::default();
    if mode == Mode::Bits16 {
        // 16-bit code runs at CS:0 with CS based at CODE.
        segments.cs = CODE;
    }
    let cpu = CpuState {
        mode,
        cpl: 0,
        paging,
        segments,
    };
    (cpu, ram)
}

/// Registers with every GPR set to a distinct recognizable value and RIP at
/// [`CODE`].
pub fn regs() -> Regs {
    Regs {
        rax: 0x1111_1111_1111_1111,
        rcx: 0x2222_2222_2222_2222,
        rdx: 0x3333_3333_3333_3333,
        rbx: 0x4444_4444_4444_4444,
        rsp: 0x5555_5555_5555_5555,
        rbp: 0x6666_6666_6666_6666,
        rsi: 0x7777_7777_7777_7777,
        rdi: 0x8888_8888_8888_8888,
        r8: 0x9999_9999_9999_9999,
        r9: 0xAAAA_AAAA_AAAA_AAAA,
        r10: 0xBBBB_BBBB_BBBB_BBBB,
        r11: 0xCCCC_CCCC_CCCC_CCCC,
        r12: 0xDDDD_DDDD_DDDD_DDDD,
        r13: 0xEEEE_EEEE_EEEE_EEEE,
        r14: 0xF0F0_F0F0_F0F0_F0F0,
        r15: 0x0F0F_0F0F_0F0F_0F0F,
        rip: CODE,
        rflags: 0x2,
    }
}

/// Emulates `code` in `mode` with `regs` and `dev`, for an exit at
/// `fault_gpa`.
pub fn run(
    mode: Mode,
    code: &[u8],
    regs: &mut Regs,
    dev: &mut Dev,
    fault_gpa: u64,
) -> Result<Instruction, EmulError> {
    let (cpu, ram) = machine(mode, code);
    Emulator::new(cpu, &ram).emulate(regs, dev, fault_gpa)
}
