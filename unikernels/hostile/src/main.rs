//! `hostile`: misbehaves on purpose so the VMM's policies can be observed.
//!
//! Steps (see the library docs for command-line selection), each announced with
//! `hostile: step <name>` before it starts:
//! * `ports`: writes 0xa5 to I/O ports 0x200..=0x20f (unassigned under QEMU and
//!   cloister; 0x510 is avoided because it is QEMU's fw_cfg) and reads them back
//!   as bytes, then 0x200 as a word and 0x208 as a dword;
//! * `msr`: reads IA32_EFER (must work) and the unknown MSRs 0xc0011234 and
//!   0x12345678, then writes 0 to 0x12345678 and 0xfff to VM_HSAVE_PA
//!   (0xc0010117, misaligned). Under cloister unknown MSRs are expected to `#GP`;
//!   QEMU's TCG (7.2) returns 0 and ignores writes for unknown MSRs, but does
//!   raise `#GP` for the misaligned VM_HSAVE_PA write, so that line shows the
//!   recovery path on both;
//! * `mem`: reads 32 bits at the first address past low RAM (from the memory
//!   map); then reads, writes 0x5a5a5a5a and reads again at 0xfe000000 and
//!   0x100000000 (each skipped if the memory map says it is RAM);
//! * `triple`: loads an IDT with limit 0 and executes `ud2`; the VM must stop.
//!
//! Without `triple` it prints `hostile: done` and exits 0; a bad command line
//! exits 1.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod unikernel {
    use core::arch::asm;

    use hostile::{parse_steps, Step};
    use rt::println;
    use rt::start_info::MemoryType;
    use x86_64::instructions::port::Port;

    rt::entry!(main);

    fn main() -> u8 {
        let steps = match parse_steps(rt::cmdline()) {
            Ok(s) => s,
            Err(e) => {
                println!("hostile: {e}");
                return rt::exit::FAILURE;
            }
        };
        for step in steps.iter() {
            println!("hostile: step {}", step.name());
            match step {
                Step::Ports => ports(),
                Step::Msr => msr(),
                Step::Mem => mem(),
                Step::Triple => triple(),
            }
        }
        println!("hostile: done");
        rt::exit::SUCCESS
    }

    fn ports() {
        let mut read = [0u8; 16];
        for (port, slot) in (0x200u16..).zip(read.iter_mut()) {
            let mut port: Port<u8> = Port::new(port);
            // SAFETY: port I/O has no memory effects; 0x200..=0x20f are unassigned
            // under QEMU and cloister.
            *slot = unsafe {
                port.write(0xa5);
                port.read()
            };
        }
        println!("hostile: ports: wrote 0xa5 to 0x200..=0x20f, read back {read:02x?}");
        let mut word: Port<u16> = Port::new(0x200);
        let mut dword: Port<u32> = Port::new(0x208);
        // SAFETY: as above.
        let (w, d) = unsafe { (word.read(), dword.read()) };
        println!("hostile: ports: inw 0x200 = {w:#06x}, inl 0x208 = {d:#010x}");
    }

    fn msr() {
        const IA32_EFER: u32 = 0xc000_0080;
        for msr in [IA32_EFER, 0xc001_1234, 0x1234_5678] {
            match rt::msr::read_safe(msr) {
                Some(v) => println!("hostile: msr: rdmsr {msr:#010x} = {v:#x}"),
                None => println!("hostile: msr: rdmsr {msr:#010x} -> #GP"),
            }
        }
        const VM_HSAVE_PA: u32 = 0xc001_0117;
        for (msr, value) in [(0x1234_5678, 0), (VM_HSAVE_PA, 0xfff)] {
            // SAFETY: 0x12345678 is not an architectural MSR, and VM_HSAVE_PA only
            // matters to SVM, which this guest never enables; if a VMM accepts
            // either write, no CPU state the program depends on changes.
            let ok = unsafe { rt::msr::write_safe(msr, value) };
            let result = if ok { "accepted" } else { "-> #GP" };
            println!("hostile: msr: wrmsr {msr:#010x} <- {value:#x} {result}");
        }
    }

    /// Whether the memory map says `addr` is RAM.
    fn is_ram(addr: u64) -> bool {
        rt::boot_info().is_some_and(|info| {
            info.memmap()
                .iter()
                .any(|e| e.kind == MemoryType::Ram && e.addr <= addr && addr < e.end())
        })
    }

    /// First address past the highest RAM range that ends below the MMIO window.
    fn ram_end() -> Option<u64> {
        let info = rt::boot_info()?;
        info.memmap()
            .iter()
            .filter(|e| e.kind == MemoryType::Ram && e.end() <= rt::MMIO_WINDOW.0)
            .map(|e| e.end())
            .max()
    }

    fn mem() {
        if let Some(end) = ram_end().filter(|&a| !is_ram(a)) {
            // SAFETY: `end` is below rt::IDENTITY_MAP_END, so it is mapped, and not
            // RAM per the memory map, so no Rust object lives there. It is only
            // read: under QEMU it holds firmware tables.
            let v = unsafe { core::ptr::read_volatile(end as *const u32) };
            println!("hostile: mem: {end:#x} (end of low RAM): read {v:#010x}");
        }
        for addr in [0xfe00_0000u64, 0x1_0000_0000] {
            if is_ram(addr) {
                println!("hostile: mem: {addr:#x} is RAM in this VM, skipped");
                continue;
            }
            let p = addr as *mut u32;
            // SAFETY: `addr` is below rt::IDENTITY_MAP_END, so it is mapped, and
            // not RAM, so no Rust object lives there. What the VMM does with the
            // access (all-ones, ignore, fault, stop) is what this step shows.
            let (before, after) = unsafe {
                let before = core::ptr::read_volatile(p);
                core::ptr::write_volatile(p, 0x5a5a_5a5a);
                (before, core::ptr::read_volatile(p))
            };
            println!("hostile: mem: {addr:#x}: read {before:#010x}, wrote 0x5a5a5a5a, read {after:#010x}");
        }
    }

    fn triple() -> ! {
        #[repr(C, packed)]
        struct IdtPointer {
            limit: u16,
            base: u64,
        }
        let empty = IdtPointer { limit: 0, base: 0 };
        println!("hostile: triple: lidt limit 0, ud2");
        // SAFETY: deliberately makes every exception unrecoverable; `ud2` then
        // escalates #UD -> #GP -> #DF -> triple fault, which stops the VM.
        unsafe {
            asm!("lidt [{}]", "ud2", in(reg) &empty, options(noreturn, nostack));
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    println!(
        "hostile is a cloister unikernel: build it with `--target x86_64-unknown-none` and boot the ELF \
         with QEMU (-kernel) or cloister"
    );
}
