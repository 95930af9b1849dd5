//! ACPI fixed hardware: the PM1a event and control blocks, the PM timer,
//! and the reset control register at 0xCF9.
//!
//! Ports (defaults in [`PmConfig`], the same layout as QEMU's PIIX4 PM so
//! an FADT written for it fits): PM1a_EVT_BLK 0x600 (4 bytes),
//! PM1a_CNT_BLK 0x604 (2 bytes), PM_TMR_BLK 0x608 (4 bytes), reset 0xCF9.
//! There is no PM1b block, no GPE block and no SMI command port: the
//! platform is always in ACPI mode (the FADT's SMI_CMD must be 0), so
//! SCI_EN reads 1.
//!
//! * PM1_STS (event block +0, 16 bits): TMR_STS (0), BM_STS (4), GBL_STS (5),
//!   PWRBTN_STS (8), SLPBTN_STS (9), RTC_STS (10), WAK_STS (15); writing 1
//!   clears a bit.
//! * PM1_EN (event block +2): TMR_EN, GBL_EN, PWRBTN_EN, SLPBTN_EN, RTC_EN.
//! * PM1_CNT (control block, 16 bits): SCI_EN (0, reads 1), BM_RLD (1),
//!   GBL_RLS (2, write-only), bit 9 (preserved), SLP_TYP (12:10), SLP_EN (13,
//!   write-only). Writing SLP_EN requests a sleep: the S5 type
//!   ([`PmConfig::s5_slp_typ`], which must match the DSDT's `\_S5`) is
//!   [`PowerRequest::Off`], any other type [`PowerRequest::Sleep`] (the VMM
//!   has no sleep states; it should treat one as a power-off or ignore it).
//! * PM_TMR: a free-running 3.579545 MHz counter, 24 bits (or 32 with
//!   [`PmConfig::timer_32bit`], the FADT's TMR_VAL_EXT); TMR_STS is set each
//!   time its top bit changes.
//! * 0xCF9 (byte): the reset control register; writing a value with bit 2
//!   (RST_CPU) set, e.g. 0x06 or 0x0E, requests [`PowerRequest::Reset`].
//!   Bits 1 and 3 are kept; bit 2 reads 0. Point the FADT's RESET_REG here
//!   with RESET_VALUE 0x06.
//!
//! All registers take byte, word or dword accesses inside their block.
//! The SCI ([`AcpiPm::sci`]) is asserted while a status bit is set with its
//! enable bit.

use crate::time::{ticks_between, time_of_tick};

/// The PM timer's frequency in Hz.
pub const PM_TIMER_HZ: u64 = 3_579_545;

/// PM1_STS / PM1_EN: timer.
pub const TMR: u16 = 1 << 0;
/// PM1_STS: bus master.
pub const BM: u16 = 1 << 4;
/// PM1_STS / PM1_EN: global lock release.
pub const GBL: u16 = 1 << 5;
/// PM1_STS / PM1_EN: power button.
pub const PWRBTN: u16 = 1 << 8;
/// PM1_STS / PM1_EN: sleep button.
pub const SLPBTN: u16 = 1 << 9;
/// PM1_STS / PM1_EN: RTC alarm.
pub const RTC: u16 = 1 << 10;
/// PM1_STS: wake.
pub const WAK: u16 = 1 << 15;
/// PM1_CNT: SCI enable.
pub const SCI_EN: u16 = 1 << 0;
/// PM1_CNT: sleep enable.
pub const SLP_EN: u16 = 1 << 13;

/// Status bits that exist.
const STS_MASK: u16 = TMR | BM | GBL | PWRBTN | SLPBTN | RTC | WAK;
/// Enable bits that exist (and can raise the SCI).
const EN_MASK: u16 = TMR | GBL | PWRBTN | SLPBTN | RTC;
/// Stored PM1_CNT bits: BM_RLD, bit 9, SLP_TYP.
const CNT_MASK: u16 = 0x1E02;

/// Where the ACPI registers are and how they behave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PmConfig {
    /// PM1a_EVT_BLK (4 ports).
    pub pm1a_evt: u16,
    /// PM1a_CNT_BLK (2 ports).
    pub pm1a_cnt: u16,
    /// PM_TMR_BLK (4 ports).
    pub pm_tmr: u16,
    /// The reset control register (1 port; the FADT's RESET_REG).
    pub reset: u16,
    /// The PM timer is 32 bits wide (FADT flag TMR_VAL_EXT), not 24.
    pub timer_32bit: bool,
    /// The SLP_TYP value of `\_S5` in the DSDT.
    pub s5_slp_typ: u8,
    /// The SCI's GSI (the FADT's SCI_INT).
    pub sci_gsi: u32,
}

impl Default for PmConfig {
    fn default() -> Self {
        PmConfig {
            pm1a_evt: 0x600,
            pm1a_cnt: 0x604,
            pm_tmr: 0x608,
            reset: 0xCF9,
            timer_32bit: false,
            s5_slp_typ: 5,
            sci_gsi: 9,
        }
    }
}

/// What the guest asked of the platform's power.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerRequest {
    /// Soft off (S5): stop the VM.
    Off,
    /// Reset: restart the VM.
    Reset,
    /// A sleep state other than S5, with its SLP_TYP.
    Sleep(u8),
}

/// Which ACPI register block a port belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PmBlock {
    /// PM1a event block.
    Event,
    /// PM1a control block.
    Control,
    /// PM timer.
    Timer,
    /// Reset control register.
    Reset,
}

impl PmBlock {
    /// Ports in the block.
    pub const fn ports(self) -> u16 {
        match self {
            PmBlock::Event | PmBlock::Timer => 4,
            PmBlock::Control => 2,
            PmBlock::Reset => 1,
        }
    }
}

/// The ACPI PM registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcpiPm {
    cfg: PmConfig,
    sts: u16,
    en: u16,
    cnt: u16,
    reset_ctl: u8,
    /// Top-bit epochs of the timer already reflected in TMR_STS.
    tmr_epoch: u64,
    request: Option<PowerRequest>,
}

impl AcpiPm {
    /// The registers in their reset state (SCI_EN set, nothing enabled).
    pub fn new(cfg: PmConfig) -> Self {
        AcpiPm {
            cfg,
            sts: 0,
            en: 0,
            cnt: SCI_EN,
            reset_ctl: 0,
            tmr_epoch: 0,
            request: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &PmConfig {
        &self.cfg
    }

    /// The PM timer's value at `now`.
    pub fn timer(&self, now: u64) -> u32 {
        let ticks = ticks_between(0, now, PM_TIMER_HZ);
        let mask = if self.cfg.timer_32bit {
            0xFFFF_FFFF
        } else {
            0x00FF_FFFF
        };
        (ticks & mask) as u32
    }

    fn top_bit(&self) -> u32 {
        if self.cfg.timer_32bit {
            31
        } else {
            23
        }
    }

    /// Sets TMR_STS for every change of the timer's top bit up to `now`.
    pub fn advance(&mut self, now: u64) {
        let epoch = ticks_between(0, now, PM_TIMER_HZ) >> self.top_bit();
        if epoch > self.tmr_epoch {
            self.tmr_epoch = epoch;
            self.sts |= TMR;
        }
    }

    /// When the timer's top bit next changes, if TMR_EN would make it an SCI.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.en & TMR == 0 {
            return None;
        }
        let tick = self
            .tmr_epoch
            .saturating_add(1)
            .checked_shl(self.top_bit())?;
        Some(time_of_tick(0, tick, PM_TIMER_HZ))
    }

    /// Whether the SCI is asserted.
    pub fn sci(&self) -> bool {
        self.cnt & SCI_EN != 0 && self.sts & self.en & EN_MASK != 0
    }

    /// The power button was pressed (sets PWRBTN_STS; an SCI if enabled).
    pub fn press_power_button(&mut self) {
        self.sts |= PWRBTN;
    }

    /// Takes the guest's last power request.
    pub fn take_request(&mut self) -> Option<PowerRequest> {
        self.request.take()
    }

    /// Guest read of `size` bytes at `offset` in `block`; `None` if the
    /// access leaves the block.
    pub fn read(&mut self, now: u64, block: PmBlock, offset: u16, size: u8) -> Option<u32> {
        self.advance(now);
        let end = offset.checked_add(u16::from(size))?;
        if !matches!(size, 1 | 2 | 4) || end > block.ports() {
            return None;
        }
        let reg: u32 = match block {
            PmBlock::Event => u32::from(self.sts) | (u32::from(self.en) << 16),
            PmBlock::Control => u32::from(self.cnt & (CNT_MASK | SCI_EN)),
            PmBlock::Timer => self.timer(now),
            PmBlock::Reset => u32::from(self.reset_ctl),
        };
        let shift = u32::from(offset).saturating_mul(8);
        let mask = crate::all_ones(size) as u32;
        Some(reg.checked_shr(shift).unwrap_or(0) & mask)
    }

    /// Guest write of `size` bytes at `offset` in `block`; `false` if the
    /// access leaves the block or the block is read-only (the timer).
    pub fn write(&mut self, now: u64, block: PmBlock, offset: u16, size: u8, value: u32) -> bool {
        self.advance(now);
        let Some(end) = offset.checked_add(u16::from(size)) else {
            return false;
        };
        if !matches!(size, 1 | 2 | 4) || end > block.ports() {
            return false;
        }
        let shift = u32::from(offset).saturating_mul(8);
        let mask = (crate::all_ones(size) as u32)
            .checked_shl(shift)
            .unwrap_or(0);
        let bits = value.checked_shl(shift).unwrap_or(0) & mask;
        match block {
            PmBlock::Event => {
                let sts_mask = (mask & 0xFFFF) as u16;
                let sts_bits = (bits & 0xFFFF) as u16;
                self.sts &= !(sts_bits & sts_mask & STS_MASK);
                let en_mask = (mask >> 16) as u16;
                let en_bits = (bits >> 16) as u16;
                self.en = (self.en & !en_mask) | (en_bits & EN_MASK);
                true
            }
            PmBlock::Control => {
                let m = (mask & 0xFFFF) as u16;
                let b = (bits & 0xFFFF) as u16;
                self.cnt = (self.cnt & !(m & CNT_MASK)) | (b & CNT_MASK) | SCI_EN;
                if b & SLP_EN != 0 {
                    let typ = ((self.cnt >> 10) & 7) as u8;
                    self.request = Some(if typ == self.cfg.s5_slp_typ {
                        PowerRequest::Off
                    } else {
                        PowerRequest::Sleep(typ)
                    });
                }
                true
            }
            PmBlock::Timer => false,
            PmBlock::Reset => {
                let v = (bits & 0xFF) as u8;
                self.reset_ctl = v & 0x0A;
                if v & 0x04 != 0 {
                    self.request = Some(PowerRequest::Reset);
                }
                true
            }
        }
    }
}
