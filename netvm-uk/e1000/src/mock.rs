//! A software 82540EM for host tests and fuzzing: registers, EEPROM, and DMA
//! into [`MockMem`] regions, plus hostile behaviour on request (lengths past
//! the buffer, arbitrary status and error bits, heads out of range or wrapped,
//! a reset that never completes, a corrupt EEPROM).
//!
//! The model also checks the *driver*: every descriptor address it is given
//! must point at a whole buffer inside the ring's region; anything else is
//! recorded in [`MockNic::violations`].
//!
//! ```text
//! let (nic, regs, rx, tx) = MockNic::new(MAC, Config::default());
//! let mut e = E1000::new(regs, rx, tx, Config::default())?;
//! nic.deliver(&frame);                   // the wire sends a frame
//! e.receive().unwrap().consume(|b| ...); // the driver gets it
//! e.transmit(60, |b| ...);
//! let sent = nic.take_transmitted();     // the wire gets it
//! ```
#![allow(
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs
)]

use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;

use crate::regs::*;
use crate::{ring_bytes, Config, Dma, Regs, BUF_SIZE, DESC_SIZE};

/// Device address of the RX region.
pub const RX_BASE: u64 = 0x10_0000;
/// Device address of the TX region.
pub const TX_BASE: u64 = 0x80_0000;

/// DMA memory shared between the driver and the model.
#[derive(Clone)]
pub struct MockMem {
    base: u64,
    bytes: Rc<RefCell<Vec<u8>>>,
}

impl MockMem {
    /// `len` zero bytes at device address `base`.
    pub fn new(base: u64, len: usize) -> Self {
        MockMem {
            base,
            bytes: Rc::new(RefCell::new(vec![0; len])),
        }
    }

    fn range(&self, addr: u64, len: usize) -> Option<core::ops::Range<usize>> {
        let off = usize::try_from(addr.checked_sub(self.base)?).ok()?;
        let end = off.checked_add(len)?;
        (end <= self.bytes.borrow().len()).then_some(off..end)
    }

    fn word(&self, addr: u64) -> Option<u64> {
        let r = self.range(addr, 8)?;
        Some(u64::from_le_bytes(self.bytes.borrow()[r].try_into().ok()?))
    }

    fn set_word(&self, addr: u64, v: u64) -> bool {
        match self.range(addr, 8) {
            Some(r) => {
                self.bytes.borrow_mut()[r].copy_from_slice(&v.to_le_bytes());
                true
            }
            None => false,
        }
    }
}

impl Dma for MockMem {
    fn paddr(&self) -> u64 {
        self.base
    }

    fn len(&self) -> usize {
        self.bytes.borrow().len()
    }

    fn read_u64(&self, offset: usize) -> Option<u64> {
        if !offset.is_multiple_of(8) {
            return None;
        }
        self.word(self.base.checked_add(offset as u64)?)
    }

    fn write_u64(&mut self, offset: usize, value: u64) {
        if offset.is_multiple_of(8) {
            if let Some(a) = self.base.checked_add(offset as u64) {
                self.set_word(a, value);
            }
        }
    }

    fn with_bytes<T>(&self, offset: usize, len: usize, f: impl FnOnce(&[u8]) -> T) -> T {
        let bytes = self.bytes.borrow();
        let slice = offset
            .checked_add(len)
            .and_then(|end| bytes.get(offset..end))
            .unwrap_or(&[]);
        f(slice)
    }

    fn with_bytes_mut<T>(
        &mut self,
        offset: usize,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> T,
    ) -> T {
        let mut bytes = self.bytes.borrow_mut();
        let slice = match offset.checked_add(len) {
            Some(end) if end <= bytes.len() => &mut bytes[offset..end],
            _ => &mut [],
        };
        f(slice)
    }
}

struct State {
    regs: Vec<u32>,
    eeprom: [u16; 64],
    icr: u32,
    ims: u32,
    link: bool,
    rdh: u32,
    tdh: u32,
    rdh_lie: Option<u32>,
    tdh_lie: Option<u32>,
    eeprom_dead: bool,
    reset_sticks: bool,
    resets: u32,
    missed: u32,
    transmitted: Vec<Vec<u8>>,
    violations: Vec<String>,
}

const REG_SPACE: usize = 0x6000;

impl State {
    fn reg(&self, r: u32) -> u32 {
        self.regs.get(r as usize / 4).copied().unwrap_or(0)
    }

    fn set_reg(&mut self, r: u32, v: u32) {
        if let Some(slot) = self.regs.get_mut(r as usize / 4) {
            *slot = v;
        }
    }

    fn reset(&mut self) {
        self.regs.iter_mut().for_each(|r| *r = 0);
        self.icr = 0;
        self.ims = 0;
        self.rdh = 0;
        self.tdh = 0;
        self.rdh_lie = None;
        self.tdh_lie = None;
        self.resets += 1;
        // RAL/RAH reload from the EEPROM, as on the real part.
        let w = |i: usize| self.eeprom[i].to_le_bytes();
        let (a, b, c) = (w(0), w(1), w(2));
        self.set_reg(RAL0, u32::from_le_bytes([a[0], a[1], b[0], b[1]]));
        self.set_reg(RAH0, u32::from_le_bytes([c[0], c[1], 0, 0]) | (1 << 31));
        if self.reset_sticks {
            self.set_reg(CTRL, CTRL_RST);
        }
    }

    fn ring_len(&self, len_reg: u32) -> u32 {
        self.reg(len_reg) / DESC_SIZE as u32
    }
}

/// The device's register file, as the driver sees it.
#[derive(Clone)]
pub struct MockRegs {
    dev: Rc<RefCell<State>>,
}

impl Regs for MockRegs {
    fn read(&self, reg: u32) -> u32 {
        let mut s = self.dev.borrow_mut();
        match reg {
            ICR => core::mem::take(&mut s.icr),
            IMS => s.ims,
            STATUS => u32::from(s.link) << 1 | 1,
            RDH => s.rdh_lie.unwrap_or(s.rdh),
            TDH => s.tdh_lie.unwrap_or(s.tdh),
            MPC => core::mem::take(&mut s.missed),
            _ => s.reg(reg),
        }
    }

    fn write(&self, reg: u32, value: u32) {
        let mut s = self.dev.borrow_mut();
        match reg {
            IMS => s.ims |= value,
            IMC => s.ims &= !value,
            ICS => s.icr |= value,
            ICR => s.icr &= !value,
            CTRL if value & CTRL_RST != 0 => s.reset(),
            RDH => {
                s.rdh = value;
                s.rdh_lie = None;
            }
            TDH => {
                s.tdh = value;
                s.tdh_lie = None;
            }
            EERD if value & EERD_START != 0 => {
                let addr = (value >> EERD_ADDR_SHIFT) & 0xff;
                let data = s.eeprom.get(addr as usize).copied().unwrap_or(0);
                let done = if s.eeprom_dead { 0 } else { EERD_DONE };
                s.set_reg(
                    EERD,
                    (u32::from(data) << 16) | (addr << EERD_ADDR_SHIFT) | done,
                );
            }
            _ => s.set_reg(reg, value),
        }
    }
}

/// The device and its wire.
pub struct MockNic {
    dev: Rc<RefCell<State>>,
    rx: MockMem,
    tx: MockMem,
}

/// An EEPROM image with `mac` and a valid checksum.
pub fn eeprom_with_mac(mac: [u8; 6]) -> [u16; 64] {
    let mut e = [0u16; 64];
    e[0] = u16::from_le_bytes([mac[0], mac[1]]);
    e[1] = u16::from_le_bytes([mac[2], mac[3]]);
    e[2] = u16::from_le_bytes([mac[4], mac[5]]);
    e[10] = 0x1234;
    let sum = e[..63].iter().fold(0u16, |a, &w| a.wrapping_add(w));
    e[63] = EEPROM_SUM.wrapping_sub(sum);
    e
}

impl MockNic {
    /// A device with `mac` in its EEPROM, link up, and DMA regions sized for
    /// `config`. Returns the device and the driver's handles.
    pub fn new(mac: [u8; 6], config: Config) -> (MockNic, MockRegs, MockMem, MockMem) {
        let mut state = State {
            regs: vec![0; REG_SPACE / 4],
            eeprom: eeprom_with_mac(mac),
            icr: 0,
            ims: 0,
            link: true,
            rdh: 0,
            tdh: 0,
            rdh_lie: None,
            tdh_lie: None,
            eeprom_dead: false,
            reset_sticks: false,
            resets: 0,
            missed: 0,
            transmitted: Vec::new(),
            violations: Vec::new(),
        };
        state.reset();
        state.resets = 0;
        let dev = Rc::new(RefCell::new(state));
        let rx = MockMem::new(RX_BASE, ring_bytes(config.rx_descs));
        let tx = MockMem::new(TX_BASE, ring_bytes(config.tx_descs));
        let nic = MockNic {
            dev: dev.clone(),
            rx: rx.clone(),
            tx: tx.clone(),
        };
        (nic, MockRegs { dev }, rx, tx)
    }

    /// Replaces the EEPROM (before the driver starts).
    pub fn set_eeprom(&self, words: [u16; 64]) {
        self.dev.borrow_mut().eeprom = words;
    }

    /// Makes EEPROM reads never complete.
    pub fn kill_eeprom(&self) {
        self.dev.borrow_mut().eeprom_dead = true;
    }

    /// Makes the reset bit stick.
    pub fn stick_reset(&self) {
        self.dev.borrow_mut().reset_sticks = true;
        self.dev.borrow_mut().set_reg(CTRL, CTRL_RST);
    }

    /// Sets RAL0/RAH0 directly.
    pub fn set_receive_address(&self, ral: u32, rah: u32) {
        let mut s = self.dev.borrow_mut();
        s.set_reg(RAL0, ral);
        s.set_reg(RAH0, rah);
    }

    /// Changes the link state and raises a link-change cause.
    pub fn set_link(&self, up: bool) {
        let mut s = self.dev.borrow_mut();
        s.link = up;
        s.icr |= INT_LSC;
    }

    /// Whether the interrupt line is asserted (a cause is set and unmasked).
    pub fn irq(&self) -> bool {
        let s = self.dev.borrow();
        s.icr & s.ims != 0
    }

    /// Device resets so far.
    pub fn resets(&self) -> u32 {
        self.dev.borrow().resets
    }

    /// Frames dropped because the driver had no RX descriptor available.
    pub fn missed(&self) -> u32 {
        self.dev.borrow().missed
    }

    /// What the model saw the driver do wrong.
    pub fn violations(&self) -> Vec<String> {
        self.dev.borrow().violations.clone()
    }

    fn violation(&self, what: String) {
        self.dev.borrow_mut().violations.push(what);
    }

    /// Register value the driver last wrote (or the model holds).
    pub fn reg(&self, r: u32) -> u32 {
        self.dev.borrow().reg(r)
    }

    /// The RX head the model really uses.
    pub fn rx_head(&self) -> u32 {
        self.dev.borrow().rdh
    }

    /// Makes RDH read as `value` (until the driver writes RDH or resets).
    pub fn lie_rx_head(&self, value: u32) {
        self.dev.borrow_mut().rdh_lie = Some(value);
    }

    /// Makes TDH read as `value` (until the driver writes TDH or resets).
    pub fn lie_tx_head(&self, value: u32) {
        self.dev.borrow_mut().tdh_lie = Some(value);
    }

    fn rx_desc_addr(&self, i: u32) -> Option<u64> {
        let base = u64::from(self.reg(RDBAL)) | (u64::from(self.reg(RDBAH)) << 32);
        base.checked_add(u64::from(i) * DESC_SIZE as u64)
    }

    /// Takes the next RX descriptor the device owns: `(index, buffer address)`.
    fn take_rx_slot(&self) -> Option<(u32, u64)> {
        let (n, rdh, rdt, en) = {
            let s = self.dev.borrow();
            (
                s.ring_len(RDLEN),
                s.rdh,
                s.reg(RDT),
                s.reg(RCTL) & RCTL_EN != 0,
            )
        };
        if !en || n == 0 || rdh == rdt || rdh >= n {
            self.dev.borrow_mut().missed += 1;
            return None;
        }
        let at = self.rx_desc_addr(rdh)?;
        let Some(buf) = self.rx.word(at) else {
            self.violation(format!(
                "RX descriptor {rdh} at {at:#x} is outside the RX region"
            ));
            return None;
        };
        if self.rx.range(buf, BUF_SIZE).is_none() {
            self.violation(format!(
                "RX descriptor {rdh} points at {buf:#x}, outside the RX region"
            ));
            return None;
        }
        Some((rdh, buf))
    }

    fn complete_rx(&self, index: u32, len: u16, status: u8, errors: u8) {
        if let Some(at) = self.rx_desc_addr(index) {
            let word = u64::from(len) | (u64::from(status) << 32) | (u64::from(errors) << 40);
            self.rx.set_word(at + 8, word);
        }
        let mut s = self.dev.borrow_mut();
        let n = s.ring_len(RDLEN).max(1);
        s.rdh = (index + 1) % n;
        s.icr |= INT_RXT0;
    }

    /// The wire sends `frame`; frames longer than one buffer are spread over
    /// several descriptors (end-of-packet on the last), as with long-packet
    /// reception. Returns false if the driver had no descriptor ready.
    pub fn deliver(&self, frame: &[u8]) -> bool {
        let chunks: Vec<&[u8]> = if frame.is_empty() {
            vec![frame]
        } else {
            frame.chunks(BUF_SIZE).collect()
        };
        let last = chunks.len() - 1;
        for (k, chunk) in chunks.into_iter().enumerate() {
            let Some((i, buf)) = self.take_rx_slot() else {
                return false;
            };
            if let Some(r) = self.rx.range(buf, chunk.len()) {
                self.rx.bytes.borrow_mut()[r].copy_from_slice(chunk);
            }
            let status = RXD_STAT_DD | if k == last { RXD_STAT_EOP } else { 0 };
            self.complete_rx(i, chunk.len() as u16, status, 0);
        }
        true
    }

    /// A hostile delivery: writes `bytes` (at most one buffer) and reports
    /// `len`, `status` and `errors` as given.
    pub fn deliver_raw(&self, bytes: &[u8], len: u16, status: u8, errors: u8) -> bool {
        let Some((i, buf)) = self.take_rx_slot() else {
            return false;
        };
        let n = bytes.len().min(BUF_SIZE);
        if let Some(r) = self.rx.range(buf, n) {
            self.rx.bytes.borrow_mut()[r].copy_from_slice(&bytes[..n]);
        }
        self.complete_rx(i, len, status, errors);
        true
    }

    /// A hostile write of descriptor `index`'s status word in the RX ring,
    /// regardless of ownership.
    pub fn scribble_rx_desc(&self, index: u32, word: u64) {
        if let Some(at) = self.rx_desc_addr(index) {
            self.rx.set_word(at + 8, word);
        }
    }

    /// The device sends every frame the driver queued; returns how many.
    pub fn process_tx(&self) -> usize {
        let (n, mut tdh, tdt, en, base) = {
            let s = self.dev.borrow();
            (
                s.ring_len(TDLEN),
                s.tdh,
                s.reg(TDT),
                s.reg(TCTL) & TCTL_EN != 0,
                u64::from(s.reg(TDBAL)) | (u64::from(s.reg(TDBAH)) << 32),
            )
        };
        if !en || n == 0 {
            return 0;
        }
        let mut sent = 0;
        let mut guard = 0;
        while tdh != tdt && tdh < n && guard < n {
            guard += 1;
            let at = base + u64::from(tdh) * DESC_SIZE as u64;
            let (Some(addr), Some(word)) = (self.tx.word(at), self.tx.word(at + 8)) else {
                self.violation(format!(
                    "TX descriptor {tdh} at {at:#x} is outside the TX region"
                ));
                break;
            };
            let len = (word & 0xffff) as usize;
            let cmd = (word >> 24) as u8;
            match self.tx.range(addr, len) {
                Some(r) if len > 0 && cmd & TXD_CMD_EOP != 0 => {
                    let frame = self.tx.bytes.borrow()[r].to_vec();
                    self.dev.borrow_mut().transmitted.push(frame);
                    sent += 1;
                }
                _ => self.violation(format!(
                    "TX descriptor {tdh}: buffer {addr:#x}+{len} cmd {cmd:#x} is not a whole frame in the TX region"
                )),
            }
            self.tx
                .set_word(at + 8, word | (u64::from(TXD_STAT_DD) << 32));
            tdh = (tdh + 1) % n;
        }
        let mut s = self.dev.borrow_mut();
        s.tdh = tdh;
        if sent > 0 {
            s.icr |= INT_TXDW;
        }
        sent
    }

    /// A hostile write-back: marks every TX descriptor done.
    pub fn mark_all_tx_done(&self) {
        let n = self.dev.borrow().ring_len(TDLEN);
        let base = u64::from(self.reg(TDBAL));
        for i in 0..n {
            let at = base + u64::from(i) * DESC_SIZE as u64;
            if let Some(w) = self.tx.word(at + 8) {
                self.tx.set_word(at + 8, w | (u64::from(TXD_STAT_DD) << 32));
            }
        }
    }

    /// Frames the device has sent since the last call.
    pub fn take_transmitted(&self) -> Vec<Vec<u8>> {
        core::mem::take(&mut self.dev.borrow_mut().transmitted)
    }
}
