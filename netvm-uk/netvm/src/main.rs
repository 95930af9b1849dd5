//! `netvm`: the NetVM unikernel. Finds the e1000 on PCI, brings it up with
//! DMA rings and an interrupt (MSI, else an IOAPIC line found by probing, else
//! polling), gets a DHCP lease on the uplink, pings the gateway and serves TCP
//! echo. Every line it prints starts with `netvm: `:
//!
//! ```text
//! netvm: clock: TSC 2994 MHz (PIT calibration)
//! netvm: pci: ECAM, e1000 at 00:02.0, BAR0 0xfeb80000+128 KiB
//! netvm: e1000: MAC 52:54:00:12:34:56, link up, rings 64/64, DMA 264 KiB
//! netvm: e1000: interrupt IOAPIC GSI 22 (level) vector 0x30
//! netvm: eth0: dhcp: lease 10.0.2.15/24 router 10.0.2.2 dns 10.0.2.3 server 10.0.2.2
//! netvm: eth0: echo: listening on tcp port 7
//! netvm: eth0: ping: reply from 10.0.2.2 seq 1 time 1.234 ms
//! netvm: footprint: used 912 KiB of 3559 KiB RAM: image ... heap high-water ...
//! ```
//!
//! With `exit-after=N` it exits 0 once N echo connections have closed, after
//! printing its counters and footprint. Exit 1 means no usable NIC. See
//! `netvm::settings` for the command line. Built for the host, it only says
//! what it is.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod unikernel {
    use core::time::Duration;

    use e1000::{Config, Dma, Regs, E1000};
    use netvm::port::{Port, Role};
    use netvm::settings::{IrqMode, Settings};
    use netvm::uplink::Uplink;
    use netvm::Mac;
    use rt::dma::DmaRegion;
    use rt::irq::{self, Irq};
    use rt::mmio::Mmio;
    use rt::pci::{self, Bar, Function};
    use rt::println;
    use rt::time;

    /// Deepest use seen under QEMU is about 20 KiB.
    const STACK: usize = 64 * 1024;

    rt::entry!(main, stack = STACK);

    /// PCI ids of the 82540EM.
    const E1000_IDS: (u16, u16) = (0x8086, 0x100e);
    /// How often the head registers are checked when nothing else happens.
    const HOUSEKEEPING: Duration = Duration::from_millis(100);
    /// Polling interval without interrupts.
    const POLL_INTERVAL: Duration = Duration::from_millis(1);
    /// How long an interrupt probe waits for the NIC's self-interrupt.
    const PROBE_WAIT: Duration = Duration::from_millis(20);

    /// BAR 0 of the NIC.
    struct Bar0(Mmio);

    impl Regs for Bar0 {
        fn read(&self, reg: u32) -> u32 {
            self.0.read32(u64::from(reg))
        }
        fn write(&self, reg: u32, value: u32) {
            self.0.write32(u64::from(reg), value)
        }
        fn delay_us(&self, micros: u32) {
            time::spin(Duration::from_micros(u64::from(micros)));
        }
    }

    /// A ring's DMA region.
    struct RingMem(DmaRegion);

    impl Dma for RingMem {
        fn paddr(&self) -> u64 {
            self.0.paddr()
        }
        fn len(&self) -> usize {
            self.0.len()
        }
        fn read_u64(&self, offset: usize) -> Option<u64> {
            self.0.read_u64(offset)
        }
        fn write_u64(&mut self, offset: usize, value: u64) {
            let _ = self.0.write_u64(offset, value);
        }
        fn with_bytes<T>(&self, offset: usize, len: usize, f: impl FnOnce(&[u8]) -> T) -> T {
            f(self.0.bytes(offset, len).unwrap_or(&[]))
        }
        fn with_bytes_mut<T>(
            &mut self,
            offset: usize,
            len: usize,
            f: impl FnOnce(&mut [u8]) -> T,
        ) -> T {
            match self.0.bytes_mut(offset, len) {
                Some(b) => f(b),
                None => f(&mut []),
            }
        }
    }

    type Nic = E1000<Bar0, RingMem>;

    fn smol_now() -> smoltcp::time::Instant {
        smoltcp::time::Instant::from_micros(time::now().as_micros() as i64)
    }

    fn smol_to_rt(d: smoltcp::time::Duration) -> Duration {
        Duration::from_micros(d.total_micros())
    }

    /// Finds the e1000 and maps its registers.
    fn find_nic() -> Option<(Function, Mmio)> {
        let Some(access) = pci::init() else {
            println!("netvm: pci: no configuration mechanism");
            return None;
        };
        let mut found = None;
        pci::enumerate(access, access.first_bus(), |f| {
            if found.is_none() && (f.vendor, f.device) == E1000_IDS {
                found = Some(f);
            }
        });
        let Some(func) = found else {
            println!(
                "netvm: pci: {}, no e1000 (8086:100e) found",
                access.describe()
            );
            return None;
        };
        let (addr, size) = match pci::read_bar(access, &func, 0) {
            Ok(Bar::Memory { addr, size, .. }) => (addr, size),
            Ok(Bar::Io { .. }) => {
                println!("netvm: pci: e1000 at {}: BAR0 is I/O, not memory", func.bdf);
                return None;
            }
            Err(e) => {
                println!("netvm: pci: e1000 at {}: {e}", func.bdf);
                return None;
            }
        };
        // The 82540EM's register window is 128 KiB.
        if size < 0x2_0000 {
            println!(
                "netvm: pci: e1000 at {}: BAR0 of {size:#x} bytes is too small",
                func.bdf
            );
            return None;
        }
        let mmio = match rt::mmio::map(addr, size) {
            Ok(m) => m,
            Err(e) => {
                println!("netvm: pci: e1000 at {}: {e}", func.bdf);
                return None;
            }
        };
        pci::update_command(
            access,
            func.bdf,
            pci::command::MEMORY | pci::command::BUS_MASTER,
            pci::command::IO,
        );
        println!(
            "netvm: pci: {}, e1000 at {}, BAR0 {addr:#x}+{} KiB",
            access.describe(),
            func.bdf,
            size / 1024
        );
        Some((func, mmio))
    }

    /// Whether `irq` fires when the NIC interrupts itself, and stays quiet
    /// once the cause is read.
    fn probe(nic: &mut Nic, irq: &Irq) -> bool {
        let _ = nic.handle_interrupt();
        irq.rearm();
        let _ = irq.take();
        nic.trigger_interrupt();
        irq::wait(Some(time::now().saturating_add(PROBE_WAIT)));
        if !irq.take() {
            return false;
        }
        let _ = nic.handle_interrupt();
        irq.rearm();
        irq::wait(Some(time::now().saturating_add(PROBE_WAIT)));
        !irq.take()
    }

    /// MSI if the function has it, else the first IOAPIC input the NIC's
    /// self-interrupt arrives on: the ISA IRQ in the interrupt-line register
    /// (PIIX), then the PCI GSIs 16–23 (ICH9). `None`: poll.
    fn setup_irq(nic: &mut Nic, func: &Function) -> Option<Irq> {
        if let Err(e) = irq::init() {
            println!("netvm: e1000: interrupts unavailable ({e}); polling");
            return None;
        }
        nic.enable_interrupts();
        let access = pci::access()?;
        if pci::find_capability(access, func.bdf, pci::CAP_MSI).is_some() {
            if let Ok((irq, addr, data)) = irq::msi() {
                if pci::enable_msi(access, func.bdf, addr, data).is_ok() && probe(nic, &irq) {
                    return Some(irq);
                }
                irq.disable();
            }
        }
        let mut candidates = [u32::MAX; 9];
        if func.irq_pin != 0 && func.irq_line < 16 {
            candidates[0] = irq::isa_irq_gsi(func.irq_line);
        }
        for (slot, gsi) in candidates[1..].iter_mut().zip(16u32..24) {
            *slot = gsi;
        }
        for gsi in candidates.into_iter().filter(|&g| g != u32::MAX) {
            let Ok(irq) = irq::route_gsi(gsi, true, false) else {
                continue;
            };
            if probe(nic, &irq) {
                return Some(irq);
            }
            irq.disable();
        }
        println!("netvm: e1000: its interrupt arrived on no IOAPIC input; polling");
        nic.disable_interrupts();
        None
    }

    fn bring_up(settings: &Settings) -> Option<(Nic, Option<Irq>)> {
        let (func, mmio) = find_nic()?;
        let config = Config {
            rx_descs: settings.rx_descs,
            tx_descs: settings.tx_descs,
        };
        let region = |n| match DmaRegion::new(e1000::ring_bytes(n)) {
            Ok(r) => Some(RingMem(r)),
            Err(e) => {
                println!("netvm: e1000: {e}");
                None
            }
        };
        let (rx, tx) = (region(config.rx_descs)?, region(config.tx_descs)?);
        let dma = rx.len() + tx.len();
        let mut nic = match E1000::new(Bar0(mmio), rx, tx, config) {
            Ok(n) => n,
            Err(e) => {
                println!("netvm: e1000: {e}");
                return None;
            }
        };
        println!(
            "netvm: e1000: MAC {}, link {}, rings {}/{}, DMA {} KiB",
            Mac(nic.mac()),
            if nic.link_up() { "up" } else { "down" },
            config.rx_descs,
            config.tx_descs,
            dma / 1024
        );
        let irq = match settings.irq {
            IrqMode::Poll => {
                // The APIC timer still ends each wait, if there is one.
                let _ = irq::init();
                println!("netvm: e1000: polling (irq=poll)");
                None
            }
            IrqMode::Auto => setup_irq(&mut nic, &func),
        };
        if let Some(i) = &irq {
            println!("netvm: e1000: interrupt {i}");
        }
        Some((nic, irq))
    }

    fn main() -> u8 {
        let mut settings_ok = true;
        let settings = Settings::parse(rt::cmdline(), |w| {
            println!("netvm: ignoring unknown command-line word `{w}`");
        })
        .unwrap_or_else(|e| {
            println!("netvm: {e}; using the defaults");
            settings_ok = false;
            Settings::default()
        });
        let clock = time::init();
        println!(
            "netvm: clock: TSC {} MHz ({})",
            clock.tsc_hz / 1_000_000,
            clock.source
        );
        let Some((nic, irq)) = bring_up(&settings) else {
            return rt::exit::FAILURE;
        };
        let seed = clock.tsc_start ^ u64::from_le_bytes([0, 0, 1, 2, 3, 4, 5, 6]);
        let mac = nic.mac();
        let mut port = Port::new("eth0", Role::Uplink, nic, mac, seed, smol_now());
        let mut uplink = Uplink::new(&mut port, &settings);
        let mut footprint_said = false;
        let mut next_check = time::now();
        loop {
            let now = time::now();
            let interrupted = irq.as_ref().is_some_and(Irq::take);
            if interrupted || irq.is_none() {
                let _ = port.device.handle_interrupt();
                if let Some(i) = &irq {
                    i.rearm();
                }
            }
            if interrupted || now >= next_check {
                next_check = now.saturating_add(HOUSEKEEPING);
                if let Err(e) = port.device.check_heads() {
                    println!("netvm: e1000: {e}; resetting the device");
                    if let Err(e) = port.device.reinit() {
                        println!("netvm: e1000: reset failed: {e}");
                        return rt::exit::FAILURE;
                    }
                }
            }
            loop {
                let t = smol_now();
                port.poll(t);
                let more = uplink.poll(&mut port, t, |e| println!("netvm: eth0: {e}"));
                if !more {
                    break;
                }
            }
            if !footprint_said && uplink.lease().is_some() && uplink.ping_done() {
                footprint_said = true;
                println!("netvm: footprint: {}", rt::footprint());
            }
            if settings
                .exit_after
                .is_some_and(|n| uplink.echo_closed() >= n)
            {
                let s = port.device.stats();
                println!(
                    "netvm: e1000: rx {} frames {} bytes, tx {} frames {} bytes, dropped rx {} tx {}, \
                     interrupts {}, resets {}",
                    s.rx_frames,
                    s.rx_bytes,
                    s.tx_frames,
                    s.tx_bytes,
                    s.rx_bad_length + s.rx_errors + s.rx_fragments,
                    s.tx_dropped,
                    s.interrupts,
                    s.resets
                );
                println!("netvm: footprint: {}", rt::footprint());
                println!(
                    "netvm: done after {} echo connections",
                    uplink.echo_closed()
                );
                return if settings_ok {
                    rt::exit::SUCCESS
                } else {
                    rt::exit::FAILURE
                };
            }
            // Sleep until smoltcp, the ping timer or housekeeping need us, or
            // the NIC interrupts.
            let t = smol_now();
            let mut wait = port.poll_delay(t).map_or(HOUSEKEEPING, smol_to_rt);
            if let Some(d) = uplink.deadline() {
                wait = if d > t {
                    wait.min(smol_to_rt(d - t))
                } else {
                    Duration::ZERO
                };
            }
            wait = wait.min(if irq.is_some() {
                HOUSEKEEPING
            } else {
                POLL_INTERVAL
            });
            if !wait.is_zero() {
                irq::wait(Some(time::now().saturating_add(wait)));
            }
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    println!(
        "netvm is a cloister unikernel: build it with `--target x86_64-unknown-none` and boot the \
         ELF with QEMU (-kernel, -device e1000) or cloister"
    );
}
