//! Property tests: any configuration either is rejected without a write or
//! yields tables that read back with valid checksums, inside their area.

use proptest::prelude::*;

use crate::parse::{self, Mem};
use crate::tests::{build, RAM};
use crate::*;

fn window(max_base: u64) -> impl Strategy<Value = Option<MemWindow>> {
    prop::option::of((0..max_base, 0u64..1 << 33).prop_map(|(base, size)| MemWindow { base, size }))
}

fn pci() -> impl Strategy<Value = Option<PciHostBridge>> {
    prop::option::of(
        (
            any::<u8>(),
            prop::option::of(prop_oneof![
                (0u64..0x1000).prop_map(|m| m << 20),
                any::<u64>()
            ]),
            any::<bool>(),
            window(1 << 32),
            window(u64::MAX),
            prop::option::of(any::<[u32; 4]>()),
        )
            .prop_map(
                |(bus_end, ecam, io, mmio32, mmio64, intx_gsi)| PciHostBridge {
                    bus_end,
                    ecam,
                    io,
                    mmio32,
                    mmio64,
                    intx_gsi,
                },
            ),
    )
}

fn config() -> impl Strategy<Value = AcpiConfig> {
    (
        (
            0u64..0x1_0000,
            0u64..0x2_0000,
            0u32..300,
            any::<u32>(),
            any::<bool>(),
        ),
        (any::<u8>(), any::<u32>(), any::<u32>(), 0u8..20),
        (
            any::<u16>(),
            any::<u16>(),
            prop::option::of(any::<u16>()),
            0u8..10,
        ),
        (
            prop::option::of((any::<u16>(), any::<u8>())),
            any::<bool>(),
            any::<[bool; 7]>(),
            any::<u8>(),
        ),
        pci(),
        prop::option::of((any::<u64>(), 0u8..40, any::<bool>(), any::<bool>())),
    )
        .prop_map(
            |(
                (base, span, cpus, lapic, pic),
                (io_id, io_addr, gsi_base, sci),
                (evt, cnt, tmr, s5),
                (reset, power_button, b, century_index),
                pci,
                hpet,
            )| AcpiConfig {
                base: 0xC_0000 + base,
                limit: 0xC_0000 + base + span,
                cpus,
                lapic_address: lapic,
                pic,
                ioapic: IoApic {
                    id: io_id,
                    address: io_addr,
                    gsi_base,
                },
                sci_irq: sci,
                pm1a_evt: evt,
                pm1a_cnt: cnt,
                pm_timer: tmr,
                pm_timer_32bit: b[6],
                s5_sleep_type: s5,
                reset: reset.map(|(port, value)| ResetRegister { port, value }),
                power_button,
                boot_arch: BootArch {
                    legacy_devices: b[0],
                    i8042: b[1],
                    vga: b[2],
                    msi: b[3],
                },
                rtc: b[4],
                century_index,
                com1: b[5],
                pci,
                hpet: hpet.map(
                    |(address, comparators, counter_64bit, legacy_replacement)| Hpet {
                        address,
                        comparators,
                        counter_64bit,
                        legacy_replacement,
                    },
                ),
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_config_is_rejected_or_reads_back(cfg in config()) {
        match build(&cfg, RAM) {
            Err(e) => {
                prop_assert!(!matches!(e, AcpiError::Memory(_) | AcpiError::DsdtTooLarge), "{e}");
                prop_assert_eq!(layout(&cfg).err().is_some(), !matches!(e, AcpiError::OutsideRam { .. }));
            }
            Ok((t, r)) => {
                let acpi = parse::read(&Mem(&r), t.rsdp);
                prop_assert_eq!(acpi.madt().data.len(), 44 + 8 * cfg.cpus as usize + 12 + 20 + 6);
                let ns = parse::namespace(&acpi.dsdt.data[36..]);
                let s5 = ns["\\_S5_"].pkg();
                prop_assert_eq!(s5[0].int(), u64::from(cfg.s5_sleep_type));
                prop_assert_eq!(ns.contains_key("\\_SB_.PCI0"), cfg.pci.is_some());
                prop_assert_eq!(acpi.get(b"MCFG").is_some(), cfg.pci.is_some_and(|p| p.ecam.is_some()));
                prop_assert_eq!(acpi.get(b"HPET").is_some(), cfg.hpet.is_some());
                prop_assert!(t.end <= cfg.limit);
            }
        }
    }
}
