//! Fuzzes the MMIO instruction emulator (`x86_emul`): the page walk, the
//! fetch, `decode` and `Emulator::execute`, against a mock device.
//!
//! The input picks the code size, the paging mode and control-register
//! bits, CPL, segment bases, registers, the exit's guest-physical address,
//! the device's behaviour, 15 instruction bytes, and the contents of a
//! 64 KiB guest RAM that also holds the page tables CR3 points into (or,
//! if the input asks, identity-mapping tables the harness writes). The
//! instruction bytes are written where RIP translates (when that is RAM),
//! so decoding sees them whatever the tables say. An exit whose operand
//! maps elsewhere (`GpaMismatch`) is retried once with the address the
//! emulator reported, to reach the device paths.
//!
//! Invariants:
//! * Nothing panics.
//! * `decode` of the raw bytes: a decoded length is 1..=15 and equals what
//!   `bytes()` returns; re-decoding exactly those bytes gives the same
//!   instruction; `Unsupported` carries at most 15 bytes.
//! * On success: RIP advanced by the length (wrapped to the code size);
//!   at most two device accesses (a read and a write), each inside the
//!   exit's 4 KiB page, none crossing a page boundary, and written values
//!   fit the access width.
//! * On any error the registers are unchanged.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use x86_emul::paging::{
    translate, CR0_PE, CR0_PG, CR0_WP, CR4_LA57, CR4_PAE, CR4_PSE, CR4_SMAP, CR4_SMEP, EFER_LMA,
    EFER_NXE,
};
use x86_emul::{
    decode, Access, AccessKind, CpuState, EmulError, Emulator, Gpr, GuestMemory, MemError, Mmio,
    MmioError, Mode, Paging, Regs, SegmentBases, Size,
};

const RAM: usize = 0x1_0000;

#[derive(Arbitrary, Debug)]
struct Input {
    mode: u8,
    paging: u8,
    flags: u8,
    cpl3: bool,
    cr3: u16,
    max_phys_bits: u8,
    segments: [u64; 6],
    gprs: [u64; 16],
    rip: u64,
    rflags: u64,
    fault: u64,
    device: u64,
    refuse: u8,
    code: [u8; 15],
    ram: Vec<u8>,
}

struct Ram(Vec<u8>);

impl GuestMemory for Ram {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let err = MemError {
            gpa,
            len: buf.len(),
        };
        let start = usize::try_from(gpa).map_err(|_| err)?;
        let end = start.checked_add(buf.len()).ok_or(err)?;
        buf.copy_from_slice(self.0.get(start..end).ok_or(err)?);
        Ok(())
    }
}

#[derive(Default)]
struct Dev {
    value: u64,
    refuse_read: bool,
    refuse_write: bool,
    log: Vec<(bool, u64, Size, u64)>,
}

impl Mmio for Dev {
    fn read(&mut self, gpa: u64, size: Size) -> Result<u64, MmioError> {
        self.log.push((false, gpa, size, 0));
        if self.refuse_read {
            return Err(MmioError::Unmapped { gpa });
        }
        // Deliberately wider than the access: the emulator must mask.
        Ok(self.value)
    }

    fn write(&mut self, gpa: u64, size: Size, value: u64) -> Result<(), MmioError> {
        self.log.push((true, gpa, size, value));
        if self.refuse_write {
            return Err(MmioError::Refused {
                gpa,
                size,
                write: true,
            });
        }
        Ok(())
    }
}

fn check_decode(bytes: &[u8], mode: Mode) {
    match decode(bytes, mode) {
        Ok(insn) => {
            let len = usize::from(insn.len);
            assert!((1..=15).contains(&len), "length {len}");
            assert_eq!(insn.bytes(), &bytes[..len]);
            assert_eq!(decode(&bytes[..len], mode), Ok(insn), "re-decode");
        }
        Err(EmulError::Unsupported { len, .. }) => assert!(usize::from(len) <= 15),
        Err(_) => {}
    }
}

fuzz_target!(|input: Input| {
    let mode = match input.mode % 3 {
        0 => Mode::Bits16,
        1 => Mode::Bits32,
        _ => Mode::Bits64,
    };
    check_decode(&input.code, mode);

    // Paging consistent with the mode: long mode needs 4- or 5-level
    // paging; other modes get none, 32-bit or PAE paging.
    let f = input.flags;
    let mut cr0 = CR0_PE;
    let mut cr4 = 0;
    let mut efer = 0;
    if f & 1 != 0 {
        cr0 |= CR0_WP;
    }
    if f & 2 != 0 {
        cr4 |= CR4_PSE;
    }
    if f & 4 != 0 {
        cr4 |= CR4_SMEP;
    }
    if f & 8 != 0 {
        cr4 |= CR4_SMAP;
    }
    if f & 16 != 0 {
        efer |= EFER_NXE;
    }
    match (mode, input.paging % 3) {
        (Mode::Bits64, p) => {
            cr0 |= CR0_PG;
            cr4 |= CR4_PAE;
            efer |= EFER_LMA;
            if p == 2 {
                cr4 |= CR4_LA57;
            }
        }
        (_, 0) => {}
        (_, 1) => cr0 |= CR0_PG,
        (_, _) => {
            cr0 |= CR0_PG;
            cr4 |= CR4_PAE;
        }
    }
    let mut ram = vec![0u8; RAM];
    let n = input.ram.len().min(RAM);
    ram[..n].copy_from_slice(&input.ram[..n]);
    let mut cr3 = u64::from(input.cr3);
    if input.paging & 4 != 0 && cr0 & CR0_PG != 0 {
        // Identity-map the low 4 GiB with tables at the top of RAM (over
        // the input's bytes), so that valid walks are easy to reach.
        let put = |ram: &mut Vec<u8>, at: usize, e: u64| {
            ram[at..at + 8].copy_from_slice(&e.to_le_bytes());
        };
        let leaf = 0x87 | if f & 32 != 0 { 1 << 63 } else { 0 };
        if efer & EFER_LMA != 0 {
            // PML5 0xD000 -> PML4 0xE000 -> PDPT 0xF000 (1 GiB pages).
            put(&mut ram, 0xD000, 0xE007);
            put(&mut ram, 0xE000, 0xF007);
            for i in 0..4u64 {
                put(&mut ram, 0xF000 + 8 * i as usize, (i << 30) | leaf);
            }
            cr3 = if cr4 & CR4_LA57 != 0 { 0xD000 } else { 0xE000 };
        } else if cr4 & CR4_PAE != 0 {
            // PDPT 0xE000 -> PDs 0xA000..0xE000 (2 MiB pages).
            for i in 0..4u64 {
                put(&mut ram, 0xE000 + 8 * i as usize, (0xA000 + (i << 12)) | 1);
                for j in 0..512u64 {
                    let at = 0xA000 + (i as usize) * 0x1000 + 8 * j as usize;
                    put(&mut ram, at, (i << 30) | (j << 21) | leaf);
                }
            }
            cr3 = 0xE000;
        } else {
            // PD 0xF000 (4 MiB pages).
            cr4 |= CR4_PSE;
            for i in 0..1024u64 {
                let e = ((i << 22) | 0x87) as u32;
                let at = 0xF000 + 4 * i as usize;
                ram[at..at + 4].copy_from_slice(&e.to_le_bytes());
            }
            cr3 = 0xF000;
        }
    }
    let mut paging = Paging::new(cr0, cr3, cr4, efer);
    paging.max_phys_bits = input.max_phys_bits;
    let [es, cs, ss, ds, fs, gs] = input.segments;
    let cpu = CpuState {
        mode,
        cpl: if input.cpl3 { 3 } else { 0 },
        paging,
        segments: SegmentBases {
            es,
            cs,
            ss,
            ds,
            fs,
            gs,
        },
    };

    let mut ram = Ram(ram);

    let mut regs = Regs::default();
    for (i, v) in input.gprs.iter().enumerate() {
        *regs.gpr_mut(Gpr::from_low4(i as u8)) = *v;
    }
    regs.rip = input.rip;
    regs.rflags = input.rflags;

    // Put the instruction where CS:RIP translates, byte by byte (it may
    // straddle pages).
    for (i, b) in input.code.iter().enumerate() {
        let ip = match mode {
            Mode::Bits16 => regs.rip & 0xFFFF,
            Mode::Bits32 => regs.rip & 0xFFFF_FFFF,
            Mode::Bits64 => regs.rip,
        }
        .wrapping_add(i as u64);
        let la = match mode {
            Mode::Bits64 => ip,
            _ => cpu.segments.cs.wrapping_add(ip) & 0xFFFF_FFFF,
        };
        let access = Access {
            kind: AccessKind::Execute,
            user: input.cpl3,
            ac: false,
        };
        if let Ok(t) = translate(&ram, &cpu.paging, la, access) {
            if let Some(slot) = usize::try_from(t.gpa).ok().and_then(|a| ram.0.get_mut(a)) {
                *slot = *b;
            }
        }
    }

    let emu = Emulator::new(cpu, &ram);
    if let Ok(insn) = emu.fetch_decode(&regs) {
        assert!((1..=15).contains(&insn.len));
    }
    let mut fault = input.fault;
    for _ in 0..2 {
        let before = regs;
        let mut dev = Dev {
            value: input.device,
            refuse_read: input.refuse & 1 != 0,
            refuse_write: input.refuse & 2 != 0,
            log: Vec::new(),
        };
        let result = emu.emulate(&mut regs, &mut dev, fault);
        for &(write, gpa, size, value) in &dev.log {
            assert_eq!(
                gpa & !0xFFF,
                fault & !0xFFF,
                "access outside the exit's page"
            );
            assert!(
                (gpa & 0xFFF) + u64::from(size.bytes()) <= 0x1000,
                "access crosses a page"
            );
            if write {
                assert_eq!(value & !size.mask(), 0, "value wider than the access");
            }
        }
        match result {
            Ok(insn) => {
                assert!((1..=15).contains(&insn.len));
                let mask = match mode {
                    Mode::Bits16 => 0xFFFF,
                    Mode::Bits32 => 0xFFFF_FFFF,
                    Mode::Bits64 => u64::MAX,
                };
                assert_eq!(
                    regs.rip,
                    before.rip.wrapping_add(u64::from(insn.len)) & mask
                );
                assert!(dev.log.len() <= 2);
                break;
            }
            Err(e) => {
                assert_eq!(regs, before, "registers changed on {e:?}");
                let _ = e.to_string();
                match e {
                    EmulError::GpaMismatch { operand_gpa, .. } => fault = operand_gpa,
                    EmulError::Unsupported { len, .. } => {
                        assert!(usize::from(len) <= 15);
                        break;
                    }
                    _ => break,
                }
            }
        }
    }
});
