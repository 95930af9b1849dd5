//! `rtcheck`: exercises the runtime's device support under QEMU and prints a
//! line per check, then `rtcheck: ok` (exit 0) or `rtcheck: FAILED` (exit 1):
//!
//! * the clock (its calibration source) and the APIC timer (a 50 ms wait that
//!   the TSC must agree with);
//! * PCI enumeration (ECAM on q35, mechanism #1 on pc), every function listed;
//! * interrupts with QEMU's `edu` device (1234:11e8), which raises one when
//!   told to: first by MSI, then by INTx through the IOAPIC;
//! * virtio-blk through `virtio-drivers`: sector 0's checksum, and a write of
//!   sector 1 read back.
//!
//! A check whose device is absent is skipped with a line saying so. Built for
//! the host, it only says what it is.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod unikernel {
    use core::time::Duration;

    use rt::irq::{self, Irq};
    use rt::mmio::Mmio;
    use rt::pci::{self, Bar, ConfigSpace, Function};
    use rt::println;
    use rt::time;
    use rt::virtio::virtio_drivers::device::blk::VirtIOBlk;
    use rtcheck::{fnv1a64, sector1_pattern, SECTOR};

    rt::entry!(main, stack = 64 * 1024);

    const EDU: (u16, u16) = (0x1234, 0x11e8);
    /// edu registers.
    const EDU_ID: u64 = 0x00;
    const EDU_IRQ_STATUS: u64 = 0x24;
    const EDU_IRQ_RAISE: u64 = 0x60;
    const EDU_IRQ_ACK: u64 = 0x64;
    const WAIT: Duration = Duration::from_millis(50);

    fn check_timer() -> bool {
        let before = time::now();
        let deadline = before.saturating_add(WAIT);
        // The APIC timer ends each wait; nothing else is enabled.
        while time::now() < deadline {
            irq::wait(Some(deadline));
        }
        let took = time::now().saturating_duration_since(before);
        let ok = took >= WAIT && took < Duration::from_secs(1);
        println!(
            "rtcheck: timer: waited {} ms for 50 ms by the APIC timer: {}",
            took.as_millis(),
            if ok { "ok" } else { "WRONG" }
        );
        ok
    }

    fn edu_raise(bar: &Mmio, irq: &Irq, value: u32) -> bool {
        let _ = irq.take();
        bar.write32(EDU_IRQ_RAISE, value);
        irq::wait(Some(time::now().saturating_add(WAIT)));
        let fired = irq.take();
        let status = bar.read32(EDU_IRQ_STATUS);
        bar.write32(EDU_IRQ_ACK, status);
        irq.rearm();
        fired && status == value
    }

    fn check_edu(access: &pci::Access, func: &Function) -> bool {
        let (addr, size) = match pci::read_bar(access, func, 0) {
            Ok(Bar::Memory { addr, size, .. }) => (addr, size),
            other => {
                println!("rtcheck: edu: BAR0 unusable: {other:?}");
                return false;
            }
        };
        let bar = match rt::mmio::map(addr, size) {
            Ok(b) => b,
            Err(e) => {
                println!("rtcheck: edu: {e}");
                return false;
            }
        };
        pci::update_command(access, func.bdf, pci::command::MEMORY, 0);
        let id = bar.read32(EDU_ID);
        if id & 0xff != 0xed {
            println!("rtcheck: edu: unexpected id {id:#x}");
            return false;
        }
        // MSI.
        let msi_ok = match irq::msi() {
            Ok((irq, address, data)) => {
                let ok = pci::enable_msi(access, func.bdf, address, data).is_ok()
                    && edu_raise(&bar, &irq, 0x1234);
                println!(
                    "rtcheck: edu: {irq}: {}",
                    if ok { "interrupt ok" } else { "NO INTERRUPT" }
                );
                irq.disable();
                ok
            }
            Err(e) => {
                println!("rtcheck: edu: MSI: {e}");
                false
            }
        };
        // INTx: MSI off, INTx on; find the IOAPIC input like netvm does.
        if let Some(cap) = pci::find_capability(access, func.bdf, pci::CAP_MSI) {
            let control = access.read16(func.bdf, cap + 2);
            access.write16(func.bdf, cap + 2, control & !1);
        }
        pci::update_command(access, func.bdf, 0, pci::command::INTX_DISABLE);
        let mut candidates = [u32::MAX; 9];
        if func.irq_pin != 0 && func.irq_line < 16 {
            candidates[0] = irq::isa_irq_gsi(func.irq_line);
        }
        for (slot, gsi) in candidates[1..].iter_mut().zip(16u32..24) {
            *slot = gsi;
        }
        let mut intx_ok = false;
        for gsi in candidates.into_iter().filter(|&g| g != u32::MAX) {
            let Ok(irq) = irq::route_gsi(gsi, true, false) else {
                continue;
            };
            if edu_raise(&bar, &irq, 0x55) {
                // Acknowledged: the line must now stay quiet.
                irq::wait(Some(time::now().saturating_add(WAIT)));
                if !irq.take() {
                    println!(
                        "rtcheck: edu: INTx pin {} on {irq}: interrupt ok",
                        func.irq_pin
                    );
                    intx_ok = true;
                    irq.disable();
                    break;
                }
            }
            irq.disable();
        }
        if !intx_ok {
            println!("rtcheck: edu: INTx: NO INTERRUPT on any IOAPIC input");
        }
        msi_ok && intx_ok
    }

    fn check_blk(func: &Function) -> bool {
        let transport = match rt::virtio::transport(func) {
            Ok(t) => t,
            Err(e) => {
                println!("rtcheck: virtio-blk: {e}");
                return false;
            }
        };
        let mut blk = match VirtIOBlk::<rt::virtio::RtHal, _>::new(transport) {
            Ok(b) => b,
            Err(e) => {
                println!("rtcheck: virtio-blk: {e}");
                return false;
            }
        };
        let mut sector = [0u8; SECTOR];
        if let Err(e) = blk.read_blocks(0, &mut sector) {
            println!("rtcheck: virtio-blk: read: {e}");
            return false;
        }
        println!(
            "rtcheck: virtio-blk at {}: {} sectors, sector 0 fnv1a64={:#018x}",
            func.bdf,
            blk.capacity(),
            fnv1a64(&sector)
        );
        let mut pattern = [0u8; SECTOR];
        for (i, b) in pattern.iter_mut().enumerate() {
            *b = sector1_pattern(i);
        }
        let mut back = [0u8; SECTOR];
        let ok = blk.write_blocks(1, &pattern).is_ok()
            && blk.read_blocks(1, &mut back).is_ok()
            && back == pattern;
        println!(
            "rtcheck: virtio-blk: sector 1 written and read back: {}",
            if ok { "ok" } else { "MISMATCH" }
        );
        ok
    }

    fn main() -> u8 {
        let clock = time::init();
        println!(
            "rtcheck: clock: TSC {} MHz ({})",
            clock.tsc_hz / 1_000_000,
            clock.source
        );
        let mut ok = true;
        match irq::init() {
            Ok(()) => {
                println!("rtcheck: irq: local APIC id {}", irq::apic_id());
                ok &= check_timer();
            }
            Err(e) => {
                println!("rtcheck: irq: {e}");
                ok = false;
            }
        }
        let Some(access) = pci::init() else {
            println!("rtcheck: pci: no configuration mechanism");
            println!("rtcheck: FAILED");
            return rt::exit::FAILURE;
        };
        let mut funcs = alloc::vec::Vec::new();
        pci::enumerate(access, access.first_bus(), |f| funcs.push(f));
        println!(
            "rtcheck: pci: {}, {} functions",
            access.describe(),
            funcs.len()
        );
        for f in &funcs {
            println!("rtcheck: pci: {f}");
        }
        match funcs.iter().find(|f| (f.vendor, f.device) == EDU) {
            Some(f) => ok &= check_edu(access, f),
            None => println!("rtcheck: edu: absent, skipped"),
        }
        match funcs
            .iter()
            .find(|f| f.vendor == rt::virtio::VENDOR && matches!(f.device, 0x1001 | 0x1042))
        {
            Some(f) => ok &= check_blk(f),
            None => println!("rtcheck: virtio-blk: absent, skipped"),
        }
        let dma = rt::dma::stats();
        println!(
            "rtcheck: dma: {} KiB in use, peak {} KiB",
            dma.current / 1024,
            dma.peak / 1024
        );
        println!("rtcheck: footprint: {}", rt::footprint());
        if ok {
            println!("rtcheck: ok");
            rt::exit::SUCCESS
        } else {
            println!("rtcheck: FAILED");
            rt::exit::FAILURE
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    println!(
        "rtcheck is a cloister unikernel: build it with `--target x86_64-unknown-none` and boot \
         the ELF with QEMU (-kernel) next to `-device edu` and a virtio-blk disk"
    );
}
