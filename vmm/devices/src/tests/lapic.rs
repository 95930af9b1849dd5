//! LAPIC: registers, priority, IPIs, timer modes, x2APIC rules.

use vcpu_policy::{ApicMode, MsrEffect};

use crate::lapic::*;
use crate::time::MIN_PERIOD_NS;
use crate::{AccessError, ConfigError};

const TSC_HZ: u64 = 2_000_000_000;

fn lapic() -> Lapic {
    Lapic::new(LapicConfig {
        tsc_hz: TSC_HZ,
        tsc_deadline: true,
        ..LapicConfig::default()
    })
    .unwrap()
}

fn w(l: &mut Lapic, now: u64, off: u32, v: u32) -> Option<u8> {
    l.mmio_write(now, u64::from(off), 4, v).unwrap()
}

fn r(l: &mut Lapic, now: u64, off: u32) -> u32 {
    l.mmio_read(now, u64::from(off), 4).unwrap()
}

fn enabled() -> Lapic {
    let mut l = lapic();
    w(&mut l, 0, reg::SVR, 0x1FF);
    l
}

#[test]
fn config_errors() {
    let bad = LapicConfig {
        bus_hz: 0,
        ..LapicConfig::default()
    };
    assert_eq!(Lapic::new(bad), Err(ConfigError::ZeroBusFrequency));
    let bad = LapicConfig {
        tsc_deadline: true,
        ..LapicConfig::default()
    };
    assert_eq!(Lapic::new(bad), Err(ConfigError::ZeroTscFrequency));
}

#[test]
fn reset_state() {
    let mut l = lapic();
    assert_eq!(r(&mut l, 0, reg::ID), 0);
    assert_eq!(r(&mut l, 0, reg::VERSION), 0x0005_0014);
    assert_eq!(r(&mut l, 0, reg::SVR), 0xFF);
    assert_eq!(r(&mut l, 0, reg::DFR), 0xFFFF_FFFF);
    assert_eq!(r(&mut l, 0, reg::LDR), 0);
    assert_eq!(r(&mut l, 0, reg::TPR), 0);
    assert_eq!(r(&mut l, 0, reg::PPR), 0);
    for off in (reg::LVT_TIMER..=reg::LVT_ERROR).step_by(0x10) {
        assert_eq!(r(&mut l, 0, off), LVT_MASKED, "LVT {off:#x}");
    }
    assert_eq!(r(&mut l, 0, reg::TMICT), 0);
    assert_eq!(r(&mut l, 0, reg::TMCCT), 0);
    assert_eq!(r(&mut l, 0, reg::TDCR), 0);
    assert_eq!(l.mode(), ApicMode::XApic);
    assert!(!l.software_enabled());
    assert_eq!(l.pending_vector(), None);
    assert_eq!(l.next_deadline(), None);
}

#[test]
fn id_and_ldr_in_both_modes() {
    let mut l = Lapic::new(LapicConfig {
        apic_id: 0x12,
        ..LapicConfig::default()
    })
    .unwrap();
    assert_eq!(r(&mut l, 0, reg::ID), 0x1200_0000);
    w(&mut l, 0, reg::LDR, 0xAB12_3456);
    assert_eq!(r(&mut l, 0, reg::LDR), 0xAB00_0000);
    w(&mut l, 0, reg::DFR, 0x0000_0000);
    assert_eq!(r(&mut l, 0, reg::DFR), 0x0FFF_FFFF);
    assert_eq!(
        l.mmio_write(0, u64::from(reg::ID), 4, 0),
        Err(AccessError::ReadOnly)
    );
    l.set_mode(ApicMode::X2Apic);
    assert_eq!(l.msr_read(0, 0x802), Ok(0x12));
    // Cluster 1, bit 2.
    assert_eq!(l.msr_read(0, 0x80D), Ok(0x0001_0004));
}

#[test]
fn software_disable_masks_every_lvt() {
    let mut l = enabled();
    w(&mut l, 0, reg::LVT_TIMER, 0x20);
    w(&mut l, 0, reg::LVT_LINT0, 0x700);
    assert_eq!(r(&mut l, 0, reg::LVT_TIMER), 0x20);
    assert_eq!(r(&mut l, 0, reg::LVT_LINT0), 0x700);
    w(&mut l, 0, reg::SVR, 0xFF);
    assert_eq!(r(&mut l, 0, reg::LVT_TIMER), 0x10020);
    assert_eq!(r(&mut l, 0, reg::LVT_LINT0), 0x10700);
    // While disabled, LVT writes keep the mask.
    w(&mut l, 0, reg::LVT_ERROR, 0xFE);
    assert_eq!(r(&mut l, 0, reg::LVT_ERROR), 0x100FE);
    // And interrupts are not accepted.
    assert!(!l.accept(0x40, false));
    assert!(!l.irr(0x40));
}

#[test]
fn lvt_writable_bits() {
    let mut l = enabled();
    w(&mut l, 0, reg::LVT_TIMER, 0xFFFF_FFFF);
    assert_eq!(r(&mut l, 0, reg::LVT_TIMER), 0x0007_00FF);
    w(&mut l, 0, reg::LVT_LINT1, 0xFFFF_FFFF);
    // No remote IRR (14) or delivery status (12).
    assert_eq!(r(&mut l, 0, reg::LVT_LINT1), 0x0001_A7FF);
    w(&mut l, 0, reg::LVT_ERROR, 0xFFFF_FFFF);
    assert_eq!(r(&mut l, 0, reg::LVT_ERROR), 0x0001_00FF);
    // Without TSC-deadline support the timer mode is 1 bit.
    let mut l = Lapic::new(LapicConfig::default()).unwrap();
    w(&mut l, 0, reg::SVR, 0x1FF);
    w(&mut l, 0, reg::LVT_TIMER, TIMER_TSC_DEADLINE | 0x30);
    assert_eq!(r(&mut l, 0, reg::LVT_TIMER), 0x30);
}

#[test]
fn priority_rules() {
    let mut l = enabled();
    assert!(l.accept(0x31, false));
    assert!(l.accept(0x52, false));
    assert_eq!(l.pending_vector(), Some(0x52));
    w(&mut l, 0, reg::TPR, 0x50);
    assert_eq!(r(&mut l, 0, reg::PPR), 0x50);
    assert_eq!(l.pending_vector(), None, "class 5 does not beat PPR 0x50");
    w(&mut l, 0, reg::TPR, 0x4F);
    assert_eq!(l.pending_vector(), Some(0x52));
    w(&mut l, 0, reg::TPR, 0);
    l.acknowledge(0x52).unwrap();
    assert!(l.isr(0x52) && !l.irr(0x52));
    assert_eq!(r(&mut l, 0, reg::PPR), 0x50);
    assert_eq!(
        l.pending_vector(),
        None,
        "0x31 waits for the in-service 0x52"
    );
    // A higher class preempts.
    l.accept(0x61, false);
    assert_eq!(l.pending_vector(), Some(0x61));
    l.acknowledge(0x61).unwrap();
    assert_eq!(r(&mut l, 0, reg::PPR), 0x60);
    assert_eq!(w(&mut l, 0, reg::EOI, 0), None);
    assert!(!l.isr(0x61));
    assert_eq!(w(&mut l, 0, reg::EOI, 0), None);
    assert_eq!(l.pending_vector(), Some(0x31));
    assert_eq!(l.acknowledge(0x99), Err(NotPending(0x99)));
    // ISR register words.
    l.acknowledge(0x31).unwrap();
    assert_eq!(r(&mut l, 0, reg::ISR + 0x10), 1 << (0x31 - 32));
}

#[test]
fn apr_readback() {
    let mut l = enabled();
    w(&mut l, 0, reg::TPR, 0x35);
    assert_eq!(r(&mut l, 0, reg::APR), 0x35);
    l.accept(0x72, false);
    assert_eq!(r(&mut l, 0, reg::APR), 0x70);
}

#[test]
fn level_eoi_is_broadcast() {
    let mut l = enabled();
    l.accept(0x40, true);
    assert_eq!(r(&mut l, 0, reg::TMR + 0x20), 1);
    l.acknowledge(0x40).unwrap();
    assert_eq!(w(&mut l, 0, reg::EOI, 0), Some(0x40));
    l.accept(0x40, false);
    assert!(!l.tmr(0x40), "an edge acceptance clears TMR");
    l.acknowledge(0x40).unwrap();
    assert_eq!(w(&mut l, 0, reg::EOI, 0), None);
}

#[test]
fn esr_linux_setup_sequence() {
    let mut l = enabled();
    // A fixed self-IPI with an illegal vector.
    w(&mut l, 0, reg::ICR_LO, 0x0004_0003);
    assert!(!l.irr(3));
    // lapic_setup_esr: write 0, read, program LVTERR, write 0, read.
    w(&mut l, 0, reg::ESR, 0);
    assert_eq!(r(&mut l, 0, reg::ESR), ESR_SEND_ILLEGAL);
    w(&mut l, 0, reg::LVT_ERROR, 0xFE);
    w(&mut l, 0, reg::ESR, 0);
    assert_eq!(r(&mut l, 0, reg::ESR), 0);
    // With the error LVT unmasked an error interrupts.
    l.accept(5, false);
    assert_eq!(l.pending_vector(), Some(0xFE));
    w(&mut l, 0, reg::ESR, 0);
    assert_eq!(r(&mut l, 0, reg::ESR), ESR_RECV_ILLEGAL);
}

#[test]
fn ipis_in_xapic_mode() {
    let mut l = enabled();
    // Physical destination 0 (this APIC), fixed.
    w(&mut l, 0, reg::ICR_HI, 0);
    w(&mut l, 0, reg::ICR_LO, 0x4041);
    assert!(l.irr(0x41));
    assert_eq!(r(&mut l, 0, reg::ICR_LO) & (1 << 12), 0, "delivery idle");
    // Shorthand self, all-including-self, all-excluding-self.
    w(&mut l, 0, reg::ICR_LO, 0x0004_0042);
    w(&mut l, 0, reg::ICR_LO, 0x0008_0043);
    assert!(l.irr(0x42) && l.irr(0x43));
    w(&mut l, 0, reg::ICR_LO, 0x000C_0044);
    assert!(!l.irr(0x44));
    assert!(l.take_dropped_ipi().is_some());
    // Another physical destination, and the broadcast.
    w(&mut l, 0, reg::ICR_HI, 0x0500_0000);
    w(&mut l, 0, reg::ICR_LO, 0x45);
    assert!(!l.irr(0x45));
    w(&mut l, 0, reg::ICR_HI, 0xFF00_0000);
    w(&mut l, 0, reg::ICR_LO, 0x46);
    assert!(l.irr(0x46));
    assert_eq!(r(&mut l, 0, reg::ICR_HI), 0xFF00_0000);
    // Logical flat.
    w(&mut l, 0, reg::LDR, 0x0100_0000);
    w(&mut l, 0, reg::ICR_HI, 0x0100_0000);
    w(&mut l, 0, reg::ICR_LO, 0x847);
    assert!(l.irr(0x47));
    w(&mut l, 0, reg::ICR_HI, 0x0200_0000);
    w(&mut l, 0, reg::ICR_LO, 0x848);
    assert!(!l.irr(0x48));
    // Logical cluster: cluster 1, member bit 0.
    w(&mut l, 0, reg::DFR, 0x0FFF_FFFF);
    w(&mut l, 0, reg::LDR, 0x1100_0000);
    for (dest, hit) in [(0x11, true), (0x21, false), (0xF1, true), (0x12, false)] {
        w(&mut l, 0, reg::ICR_HI, dest << 24);
        w(&mut l, 0, reg::ICR_LO, 0x849);
        assert_eq!(l.irr(0x49), hit, "cluster dest {dest:#x}");
        if hit {
            l.acknowledge(0x49).unwrap();
            w(&mut l, 0, reg::EOI, 0);
        }
    }
    // NMI to self; INIT and SIPI go nowhere.
    w(&mut l, 0, reg::ICR_LO, 0x0004_0400);
    assert!(l.take_nmi());
    assert!(!l.take_nmi());
    w(&mut l, 0, reg::ICR_LO, 0x0004_0500);
    assert_eq!(
        l.take_dropped_ipi().map(|d| d.icr & 0xFFFF_FFFF),
        Some(0x0004_0500)
    );
}

#[test]
fn timer_one_shot_and_current_count() {
    let mut l = enabled();
    w(&mut l, 0, reg::TDCR, 0x3); // divide by 16: 16 ns per count at 1 GHz
    w(&mut l, 0, reg::LVT_TIMER, 0x30);
    w(&mut l, 0, reg::TMICT, 1000);
    assert_eq!(l.next_deadline(), Some(16_000));
    assert_eq!(r(&mut l, 160, reg::TMCCT), 990);
    assert_eq!(r(&mut l, 15_999, reg::TMCCT), 1);
    assert!(!l.irr(0x30));
    l.advance(16_000);
    assert!(l.irr(0x30));
    assert_eq!(r(&mut l, 16_000, reg::TMCCT), 0);
    assert_eq!(r(&mut l, 16_000, reg::TMICT), 1000);
    assert_eq!(l.next_deadline(), None);
    // Writing 0 stops a running count.
    w(&mut l, 20_000, reg::TMICT, 500);
    w(&mut l, 20_100, reg::TMICT, 0);
    assert_eq!(r(&mut l, 20_200, reg::TMCCT), 0);
    assert_eq!(l.next_deadline(), None);
}

#[test]
fn timer_divide_values() {
    for (tdcr, div) in [
        (0x0, 2),
        (0x1, 4),
        (0x2, 8),
        (0x3, 16),
        (0x8, 32),
        (0x9, 64),
        (0xA, 128),
        (0xB, 1),
    ] {
        let mut l = enabled();
        w(&mut l, 0, reg::TDCR, tdcr | 0xF0);
        assert_eq!(r(&mut l, 0, reg::TDCR), tdcr);
        w(&mut l, 0, reg::LVT_TIMER, 0x30);
        w(&mut l, 0, reg::TMICT, 100);
        assert_eq!(l.next_deadline(), Some(100 * div), "TDCR {tdcr:#x}");
    }
}

#[test]
fn timer_periodic() {
    let mut l = enabled();
    w(&mut l, 0, reg::TDCR, 0xB);
    w(&mut l, 0, reg::LVT_TIMER, TIMER_PERIODIC | 0x30);
    w(&mut l, 0, reg::TMICT, 1_000_000);
    assert_eq!(l.next_deadline(), Some(1_000_000));
    l.advance(1_000_000);
    assert!(l.irr(0x30));
    assert_eq!(l.next_deadline(), Some(2_000_000));
    assert_eq!(r(&mut l, 1_500_000, reg::TMCCT), 500_000);
    assert_eq!(r(&mut l, 2_000_000, reg::TMCCT), 1_000_000);
    l.acknowledge(0x30).unwrap();
    w(&mut l, 2_000_001, reg::EOI, 0);
    // A late VMM: three periods pass, one interrupt, phase kept.
    l.advance(5_500_000);
    assert!(l.irr(0x30));
    assert_eq!(l.next_deadline(), Some(6_000_000));
    assert_eq!(r(&mut l, 5_750_000, reg::TMCCT), 250_000);
}

#[test]
fn timer_periodic_minimum_period() {
    let mut l = enabled();
    w(&mut l, 0, reg::TDCR, 0xB);
    w(&mut l, 0, reg::LVT_TIMER, TIMER_PERIODIC | 0x30);
    w(&mut l, 0, reg::TMICT, 10);
    l.advance(10);
    assert_eq!(l.next_deadline(), Some(10 + MIN_PERIOD_NS));
    // The count still reads the true 10 ns period.
    assert_eq!(r(&mut l, 15, reg::TMCCT), 5);
}

#[test]
fn divide_change_continues_from_current_count() {
    let mut l = enabled();
    w(&mut l, 0, reg::TDCR, 0xB);
    w(&mut l, 0, reg::LVT_TIMER, 0x30);
    w(&mut l, 0, reg::TMICT, 1000);
    assert_eq!(r(&mut l, 500, reg::TMCCT), 500);
    w(&mut l, 500, reg::TDCR, 0x0); // divide by 2
    assert_eq!(r(&mut l, 500, reg::TMCCT), 500);
    assert_eq!(r(&mut l, 700, reg::TMCCT), 400);
    assert_eq!(l.next_deadline(), Some(1500));
}

#[test]
fn mode_change_disarms() {
    let mut l = enabled();
    w(&mut l, 0, reg::LVT_TIMER, 0x30);
    w(&mut l, 0, reg::TMICT, 1000);
    w(&mut l, 10, reg::LVT_TIMER, TIMER_PERIODIC | 0x30);
    assert_eq!(r(&mut l, 20, reg::TMICT), 0);
    assert_eq!(r(&mut l, 20, reg::TMCCT), 0);
    assert_eq!(l.next_deadline(), None);
    // Re-writing the same mode (e.g. unmasking) keeps the count.
    w(&mut l, 30, reg::TMICT, 1000);
    w(
        &mut l,
        40,
        reg::LVT_TIMER,
        TIMER_PERIODIC | LVT_MASKED | 0x30,
    );
    assert_eq!(r(&mut l, 40, reg::TMICT), 1000);
}

#[test]
fn masked_timer_counts_without_interrupting() {
    let mut l = enabled();
    w(&mut l, 0, reg::TDCR, 0xB);
    w(&mut l, 0, reg::LVT_TIMER, LVT_MASKED | 0x30);
    w(&mut l, 0, reg::TMICT, 1000);
    assert_eq!(l.next_deadline(), None);
    assert_eq!(r(&mut l, 400, reg::TMCCT), 600);
    l.advance(2000);
    assert!(!l.irr(0x30));
    assert_eq!(r(&mut l, 2000, reg::TMCCT), 0);
}

#[test]
fn tsc_deadline_mode() {
    let mut l = enabled();
    w(&mut l, 0, reg::LVT_TIMER, TIMER_TSC_DEADLINE | 0x30);
    // TMICT is ignored in TSC-deadline mode.
    w(&mut l, 0, reg::TMICT, 1234);
    assert_eq!(r(&mut l, 0, reg::TMICT), 0);
    // 2000 TSC ticks at 2 GHz: 1000 ns after the write.
    assert!(l.apply_msr_effect(1000, 5000, MsrEffect::TscDeadline(7000)));
    assert_eq!(l.next_deadline(), Some(2000));
    assert_eq!(l.tsc_deadline_ns(), Some(2000));
    assert_eq!(r(&mut l, 1500, reg::TMCCT), 0);
    l.advance(1999);
    assert!(!l.irr(0x30));
    l.advance(2000);
    assert!(l.irr(0x30));
    assert_eq!(l.next_deadline(), None);
    l.acknowledge(0x30).unwrap();
    w(&mut l, 2000, reg::EOI, 0);
    // A deadline already passed fires at once; 0 disarms.
    l.set_tsc_deadline(3000, 10_000, 9_000);
    assert!(l.irr(0x30));
    l.acknowledge(0x30).unwrap();
    w(&mut l, 3000, reg::EOI, 0);
    l.set_tsc_deadline(3000, 10_000, 20_000);
    assert_eq!(l.next_deadline(), Some(8000));
    l.set_tsc_deadline(3000, 10_000, 0);
    assert_eq!(l.next_deadline(), None);
    // Leaving TSC-deadline mode disarms it; outside it the MSR is ignored.
    l.set_tsc_deadline(3000, 10_000, 20_000);
    w(&mut l, 3100, reg::LVT_TIMER, 0x30);
    assert_eq!(l.next_deadline(), None);
    l.set_tsc_deadline(3200, 10_000, 20_000);
    assert_eq!(l.next_deadline(), None);
    // Not the LAPIC's effects.
    assert!(!l.apply_msr_effect(0, 0, MsrEffect::None));
}

#[test]
fn xapic_mmio_widths() {
    let mut l = lapic();
    assert_eq!(l.mmio_read(0, 0x30, 1), Ok(0x14));
    assert_eq!(l.mmio_read(0, 0x32, 1), Ok(0x05));
    assert_eq!(l.mmio_read(0, 0x32, 2), Ok(0x0005));
    assert_eq!(l.mmio_read(0, 0x33, 2), Err(AccessError::BadWidth));
    assert_eq!(l.mmio_read(0, 0x34, 4), Err(AccessError::BadWidth));
    assert_eq!(l.mmio_read(0, 0x30, 8), Err(AccessError::BadWidth));
    assert_eq!(l.mmio_read(0, 0x1000, 4), Err(AccessError::BadWidth));
    assert_eq!(l.mmio_write(0, 0x80, 2, 0x20), Err(AccessError::BadWidth));
    assert_eq!(l.mmio_write(0, 0x84, 4, 0x20), Err(AccessError::BadWidth));
    assert_eq!(l.tpr(), 0);
    assert_eq!(l.mmio_read(0, 0x2F0, 4), Err(AccessError::Reserved));
    assert_eq!(l.mmio_read(0, 0x3F0, 4), Err(AccessError::Reserved));
    assert_eq!(l.mmio_read(0, 0x400, 4), Err(AccessError::Reserved));
    assert_eq!(l.mmio_write(0, 0x30, 4, 0), Err(AccessError::ReadOnly));
    assert_eq!(l.mmio_write(0, 0x390, 4, 0), Err(AccessError::ReadOnly));
    assert_eq!(l.mmio_read(0, 0xB0, 4), Ok(0));
}

#[test]
fn x2apic_msr_rules() {
    let mut l = enabled();
    assert_eq!(l.msr_read(0, 0x808), Err(X2ApicError::NotX2Apic(0x808)));
    assert!(l.apply_msr_effect(0, 0, MsrEffect::ApicMode(ApicMode::X2Apic)));
    assert_eq!(l.mode(), ApicMode::X2Apic);
    // The MMIO page is gone.
    assert_eq!(l.mmio_read(0, 0x30, 4), Err(AccessError::Unassigned));
    assert_eq!(l.msr_read(0, 0x803), Ok(0x0005_0014));
    // Registers that do not exist in x2APIC mode.
    for msr in [0x801, 0x809, 0x80C, 0x80E, 0x82F, 0x831, 0x840, 0x8FF] {
        assert_eq!(l.msr_read(0, msr), Err(X2ApicError::Reserved(msr)));
        assert_eq!(l.msr_write(0, msr, 0), Err(X2ApicError::Reserved(msr)));
    }
    assert_eq!(l.msr_read(0, 0x900), Err(X2ApicError::Reserved(0x900)));
    // Write-only and read-only registers.
    assert_eq!(l.msr_read(0, 0x80B), Err(X2ApicError::WriteOnly(0x80B)));
    assert_eq!(l.msr_read(0, 0x83F), Err(X2ApicError::WriteOnly(0x83F)));
    for msr in [0x802, 0x803, 0x80A, 0x80D, 0x810, 0x818, 0x827, 0x839] {
        assert_eq!(l.msr_write(0, msr, 0), Err(X2ApicError::ReadOnly(msr)));
    }
    // Reserved bits.
    assert_eq!(
        l.msr_write(0, 0x808, 1 << 32),
        Err(X2ApicError::ReservedBits {
            msr: 0x808,
            value: 1 << 32
        })
    );
    assert!(matches!(
        l.msr_write(0, 0x80B, 1),
        Err(X2ApicError::ReservedBits { .. })
    ));
    assert!(matches!(
        l.msr_write(0, 0x828, 1),
        Err(X2ApicError::ReservedBits { .. })
    ));
    // TPR and PPR.
    l.msr_write(0, 0x808, 0x20).unwrap();
    assert_eq!(l.msr_read(0, 0x80A), Ok(0x20));
    l.msr_write(0, 0x808, 0).unwrap();
    // ICR is one 64-bit MSR with a 32-bit destination.
    l.msr_write(0, 0x830, 0x0000_0000_0000_4050).unwrap();
    assert!(l.irr(0x50));
    assert_eq!(l.msr_read(0, 0x830), Ok(0x4050));
    l.msr_write(0, 0x830, 0x0000_0001_0000_0051).unwrap();
    assert!(!l.irr(0x51));
    l.msr_write(0, 0x830, 0xFFFF_FFFF_0000_0052).unwrap();
    assert!(l.irr(0x52), "x2APIC broadcast");
    // SELF IPI.
    l.msr_write(0, 0x83F, 0x61).unwrap();
    assert!(l.irr(0x61));
    assert_eq!(l.msr_read(0, 0x820 + 3), Ok(1 << 1));
    // EOI with 0.
    l.acknowledge(0x61).unwrap();
    l.msr_write(0, 0x80B, 0).unwrap();
    assert!(!l.isr(0x61));
    // Timer through MSRs.
    l.msr_write(0, 0x83E, 0xB).unwrap();
    l.msr_write(0, 0x832, 0x30).unwrap();
    l.msr_write(0, 0x838, 100).unwrap();
    assert_eq!(l.msr_read(40, 0x839), Ok(60));
    assert_eq!(l.msr_read(40, 0x838), Ok(100));
}
