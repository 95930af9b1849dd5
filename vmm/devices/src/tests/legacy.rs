//! PIC, PCI host bridge, ACPI PM and the bus tables.

use crate::bus::{BusError, MmioBus, PortBus};
use crate::pci::*;
use crate::pic::Pic;
use crate::pm::*;

// ---- PIC ----

#[test]
fn linux_init_8259a_and_probe() {
    let mut p = Pic::new();
    // probe_8259A: mask the slave, write a pattern to the master's mask.
    p.write(1, 1, 0xFF);
    p.write(0, 1, 0xA5);
    assert_eq!(p.read(0, 1), 0xA5);
    // init_8259A(0): mask all, ICW1-4 on both, then the cached masks.
    p.write(0, 1, 0xFF);
    p.write(1, 1, 0xFF);
    p.write(0, 0, 0x11);
    assert_eq!(p.imr(0), 0, "ICW1 clears the mask");
    p.write(0, 1, 0x30);
    p.write(0, 1, 0x04);
    p.write(0, 1, 0x01);
    p.write(1, 0, 0x11);
    p.write(1, 1, 0x38);
    p.write(1, 1, 0x02);
    p.write(1, 1, 0x01);
    assert!(p.initialized(0) && p.initialized(1));
    assert_eq!((p.vector_base(0), p.vector_base(1)), (0x30, 0x38));
    p.write(0, 1, 0xFB);
    p.write(1, 1, 0xFF);
    assert_eq!((p.read(0, 1), p.read(1, 1)), (0xFB, 0xFF));
    // OCW2 EOIs, OCW3 register selects and poll: nothing pending, ever.
    p.write(0, 0, 0x60 | 2);
    p.write(0, 0, 0x20);
    p.write(0, 0, 0x0B);
    assert_eq!(p.read(0, 0), 0, "ISR");
    p.write(0, 0, 0x0A);
    assert_eq!(p.read(0, 0), 0, "IRR");
    p.write(0, 0, 0x0C);
    assert_eq!(p.read(0, 0), 0, "poll: no interrupt");
    p.write(0, 0, 0x68);
    assert_eq!(p.imr(0), 0xFB, "special mask mode leaves IMR alone");
}

#[test]
fn pic_single_mode_without_icw4() {
    let mut p = Pic::new();
    p.write(0, 0, 0x12); // single, no ICW4
    p.write(0, 1, 0x20);
    assert!(p.initialized(0));
    p.write(0, 1, 0x55);
    assert_eq!(p.imr(0), 0x55);
    assert_eq!(p.read(2, 0), 0xFF);
    p.write(7, 0, 0);
}

#[test]
fn elcr_masks_edge_only_irqs() {
    let mut p = Pic::new();
    p.write_elcr(0, 0xFF);
    p.write_elcr(1, 0xFF);
    assert_eq!((p.read_elcr(0), p.read_elcr(1)), (0xF8, 0xDE));
    assert_eq!(p.read_elcr(2), 0xFF);
}

// ---- PCI ----

struct OneDevice {
    config: [u8; 256],
    writes: Vec<(Bdf, u8, u8, u32)>,
}

impl PciDevices for OneDevice {
    fn config_read(&mut self, bdf: Bdf, offset: u8, size: u8) -> Option<u32> {
        if bdf
            != (Bdf {
                bus: 0,
                device: 3,
                function: 0,
            })
        {
            return None;
        }
        let mut b = [0u8; 4];
        let start = usize::from(offset);
        let n = usize::from(size);
        b[..n].copy_from_slice(&self.config[start..start + n]);
        Some(u32::from_le_bytes(b))
    }
    fn config_write(&mut self, bdf: Bdf, offset: u8, size: u8, value: u32) -> bool {
        self.writes.push((bdf, offset, size, value));
        bdf.device == 3
    }
}

#[test]
fn linux_pci_check_type1() {
    let mut h = PciHost::new(NoPciDevices);
    assert!(h.write(3, 1, 0x01)); // outb(0x01, 0xCFB)
    let tmp = h.read(0, 4).unwrap();
    assert!(h.write(0, 4, 0x8000_0000));
    assert_eq!(h.read(0, 4), Some(0x8000_0000));
    assert!(h.write(0, 4, tmp));
    assert_eq!(h.read(0, 4), Some(0));
    // Byte and word accesses to 0xCF8-0xCFB are not the address register.
    assert_eq!(h.read(0, 1), Some(0xFF));
    assert_eq!(h.read(2, 2), Some(0xFFFF));
    h.write(0, 4, 0xFFFF_FFFF);
    assert_eq!(h.address(), 0x80FF_FFFC);
}

#[test]
fn host_bridge_config_space() {
    let mut h = PciHost::new(NoPciDevices);
    h.write(0, 4, 0x8000_0000);
    assert_eq!(h.read(4, 4), Some(0x1237_8086));
    assert_eq!(h.read(4, 2), Some(0x8086));
    assert_eq!(h.read(6, 2), Some(0x1237));
    assert_eq!(h.read(5, 1), Some(0x80));
    assert_eq!(h.read(7, 1), Some(0x12));
    h.write(0, 4, 0x8000_0008);
    assert_eq!(h.read(4, 4), Some(0x0600_0002));
    h.write(0, 4, 0x8000_000C);
    assert_eq!(h.read(6, 1), Some(0x00), "header type 0, single function");
    h.write(0, 4, 0x8000_00FC);
    assert_eq!(h.read(4, 4), Some(0));
    // Read-only.
    h.write(0, 4, 0x8000_0000);
    assert!(h.write(4, 4, 0));
    assert_eq!(h.read(4, 4), Some(0x1237_8086));
    // Accesses that cross the dword.
    assert_eq!(h.read(7, 2), None);
    assert_eq!(h.read(6, 4), None);
    assert!(!h.write(5, 4, 0));
}

#[test]
fn absent_functions_and_disabled_cycles_read_all_ones() {
    let mut h = PciHost::new(NoPciDevices);
    for addr in [0x8000_0800, 0x8000_0100, 0x8001_0000, 0x80FF_F800] {
        h.write(0, 4, addr);
        assert_eq!(h.read(4, 4), Some(0xFFFF_FFFF), "{addr:#x}");
        assert_eq!(h.read(6, 2), Some(0xFFFF));
    }
    h.write(0, 4, 0x0000_0000);
    assert_eq!(h.read(4, 4), Some(0xFFFF_FFFF), "enable bit clear");
}

#[test]
fn devices_attach_through_the_hook() {
    let mut dev = OneDevice {
        config: [0; 256],
        writes: Vec::new(),
    };
    dev.config[..4].copy_from_slice(&[0xF4, 0x1A, 0x41, 0x10]);
    let mut h = PciHost::new(dev);
    h.write(0, 4, 0x8000_1800); // 00:03.0
    assert_eq!(h.read(4, 4), Some(0x1041_1AF4));
    assert_eq!(h.read(6, 2), Some(0x1041));
    h.write(0, 4, 0x8000_1810);
    h.write(4, 4, 0xFFFF_FFFF);
    h.write(6, 1, 0x1234);
    let want = Bdf {
        bus: 0,
        device: 3,
        function: 0,
    };
    assert_eq!(
        h.devices().writes,
        [(want, 0x10, 4, 0xFFFF_FFFF), (want, 0x12, 1, 0x34)]
    );
    h.write(0, 4, 0x8000_2000);
    assert_eq!(h.read(4, 4), Some(0xFFFF_FFFF));
    assert_eq!(h.devices_mut().writes.len(), 2);
}

// ---- ACPI PM ----

#[test]
fn pm_timer_runs_at_3_579545_mhz() {
    let mut pm = AcpiPm::new(PmConfig::default());
    assert_eq!(pm.read(0, PmBlock::Timer, 0, 4), Some(0));
    assert_eq!(
        pm.read(1_000_000_000, PmBlock::Timer, 0, 4),
        Some(3_579_545)
    );
    // 24 bits wide by default.
    assert_eq!(
        pm.read(10_000_000_000, PmBlock::Timer, 0, 4),
        Some(35_795_450 & 0xFF_FFFF)
    );
    assert_eq!(pm.read(1_000_000_000, PmBlock::Timer, 2, 2), Some(0x0036));
    assert_eq!(pm.read(1_000_000_000, PmBlock::Timer, 3, 2), None);
    assert!(!pm.write(0, PmBlock::Timer, 0, 4, 0));
    let pm32 = AcpiPm::new(PmConfig {
        timer_32bit: true,
        ..PmConfig::default()
    });
    assert_eq!(pm32.timer(10_000_000_000), 35_795_450);
    // Reads are monotonic (Linux's acpi_pm_read_verified).
    let mut last = 0;
    for t in (0..100_000u64).map(|i| i * 977) {
        let v = pm32.timer(t);
        assert!(v >= last);
        last = v;
    }
}

#[test]
fn linux_s5_sequence_requests_power_off() {
    let mut pm = AcpiPm::new(PmConfig::default());
    // acpi_hw_legacy_sleep: clear WAK_STS and all fixed status, write
    // SLP_TYP, then SLP_TYP | SLP_EN.
    assert!(pm.write(0, PmBlock::Event, 0, 2, 0x8000));
    assert!(pm.write(0, PmBlock::Event, 0, 2, 0x8731));
    let cnt = pm.read(0, PmBlock::Control, 0, 2).unwrap();
    assert_eq!(cnt & 1, 1, "SCI_EN: always in ACPI mode");
    let typ = (5 << 10) | cnt;
    assert!(pm.write(0, PmBlock::Control, 0, 2, typ));
    assert_eq!(pm.take_request(), None);
    assert_eq!(pm.read(0, PmBlock::Control, 0, 2), Some(typ));
    assert!(pm.write(0, PmBlock::Control, 0, 2, typ | SLP_EN as u32));
    assert_eq!(pm.take_request(), Some(PowerRequest::Off));
    assert_eq!(pm.take_request(), None);
    assert_eq!(
        pm.read(0, PmBlock::Control, 0, 2),
        Some(typ),
        "SLP_EN reads 0"
    );
    // Another sleep type; and a byte write of the high byte.
    assert!(pm.write(0, PmBlock::Control, 1, 1, (1 << 2) | 0x20));
    assert_eq!(pm.take_request(), Some(PowerRequest::Sleep(1)));
}

#[test]
fn reset_register() {
    let mut pm = AcpiPm::new(PmConfig::default());
    // Linux's BOOT_CF9_FORCE: 0x02, then 0x06.
    assert!(pm.write(0, PmBlock::Reset, 0, 1, 0x02));
    assert_eq!(pm.take_request(), None);
    assert_eq!(pm.read(0, PmBlock::Reset, 0, 1), Some(0x02));
    assert!(pm.write(0, PmBlock::Reset, 0, 1, 0x06));
    assert_eq!(pm.take_request(), Some(PowerRequest::Reset));
    assert_eq!(
        pm.read(0, PmBlock::Reset, 0, 1),
        Some(0x02),
        "RST_CPU reads 0"
    );
    assert!(pm.write(0, PmBlock::Reset, 0, 1, 0x0E));
    assert_eq!(pm.take_request(), Some(PowerRequest::Reset));
    assert_eq!(pm.read(0, PmBlock::Reset, 0, 2), None);
}

#[test]
fn status_enable_and_sci() {
    let mut pm = AcpiPm::new(PmConfig::default());
    assert!(!pm.sci());
    pm.press_power_button();
    assert_eq!(pm.read(0, PmBlock::Event, 0, 2), Some(u32::from(PWRBTN)));
    assert!(!pm.sci(), "not enabled");
    assert!(pm.write(0, PmBlock::Event, 2, 2, 0xFFFF));
    assert_eq!(pm.read(0, PmBlock::Event, 2, 2), Some(0x0721));
    assert!(pm.sci());
    assert_eq!(pm.read(0, PmBlock::Event, 0, 4), Some(0x0721_0100));
    // Writing 0 to a status bit leaves it; 1 clears it.
    assert!(pm.write(0, PmBlock::Event, 0, 2, 0));
    assert!(pm.sci());
    assert!(pm.write(0, PmBlock::Event, 1, 1, 0x01));
    assert!(!pm.sci());
    // TMR_STS each time bit 23 changes (2^23 ticks ≈ 2.34 s).
    assert!(pm.write(0, PmBlock::Event, 2, 2, u32::from(TMR)));
    let flip = pm.next_deadline().unwrap();
    assert_eq!(pm.timer(flip), 1 << 23);
    assert_eq!(pm.timer(flip - 1), (1 << 23) - 1);
    pm.advance(flip - 1);
    assert!(!pm.sci());
    pm.advance(flip);
    assert!(pm.sci());
    assert!(pm.write(flip, PmBlock::Event, 0, 1, 0x01));
    assert!(!pm.sci());
    assert!(pm.next_deadline().unwrap() > flip);
    assert_eq!(pm.read(0, PmBlock::Event, 3, 2), None);
}

// ---- buses ----

#[test]
fn port_bus_routing() {
    let mut bus: PortBus<char, 3> = PortBus::new();
    assert!(bus.is_empty());
    bus.insert(0x40, 4, 'p').unwrap();
    bus.insert(0x70, 2, 'r').unwrap();
    assert_eq!(bus.insert(0x43, 2, 'x'), Err(BusError::Overlap));
    assert_eq!(bus.insert(0x3F, 2, 'x'), Err(BusError::Overlap));
    assert_eq!(bus.insert(0x10, 0, 'x'), Err(BusError::Empty));
    assert_eq!(bus.insert(0xFFFF, 2, 'x'), Err(BusError::Wraps));
    bus.insert(0xFFFF, 1, 'e').unwrap();
    assert_eq!(bus.insert(0x100, 1, 'x'), Err(BusError::Full));
    assert_eq!(bus.route(0x42), Some(('p', 2)));
    assert_eq!(bus.route(0x71), Some(('r', 1)));
    assert_eq!(bus.route(0xFFFF), Some(('e', 0)));
    assert_eq!(bus.route(0x44), None);
    assert_eq!(bus.len(), 3);
    assert_eq!(bus.remove(0x70), Some('r'));
    assert_eq!(bus.remove(0x70), None);
    assert_eq!(bus.route(0x71), None);
}

#[test]
fn mmio_bus_routing() {
    let mut bus: MmioBus<u8, 4> = MmioBus::new();
    bus.insert(0xFEE0_0000, 0x1000, 1).unwrap();
    bus.insert(0xFEC0_0000, 0x1000, 2).unwrap();
    bus.insert(u64::MAX, 1, 3).unwrap();
    assert_eq!(bus.insert(0xFEE0_0FFF, 1, 9), Err(BusError::Overlap));
    assert_eq!(bus.insert(u64::MAX - 1, 3, 9), Err(BusError::Wraps));
    assert_eq!(bus.route(0xFEE0_0030), Some((1, 0x30)));
    assert_eq!(bus.route(0xFEC0_0010), Some((2, 0x10)));
    assert_eq!(bus.route(0xFEE0_1000), None);
    assert_eq!(bus.route(u64::MAX), Some((3, 0)));
}
