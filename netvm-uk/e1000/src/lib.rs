//! Driver core for the Intel 82540EM (e1000), the NIC QEMU calls `e1000`.
//!
//! The driver talks to the device through two small traits, so the same code
//! runs against the real (or QEMU's) device in the unikernel and against a
//! software model ([`mock`]) in host tests and the fuzzer:
//!
//! * [`Regs`]: the 32-bit registers of BAR 0;
//! * [`Dma`]: one region of device-visible memory per ring, holding the
//!   descriptors and, after them, one 2 KiB buffer per descriptor.
//!
//! [`E1000::new`] resets the device, reads the MAC address from the EEPROM
//! (checksummed; the receive-address register is the fallback), sets the link
//! up and programs both rings (legacy descriptors, 2 KiB buffers, CRC
//! stripped). Frames then move through [`E1000::receive`]/[`RxFrame`] and
//! [`E1000::transmit`], or through smoltcp's `phy::Device` (feature `smoltcp`).
//!
//! # What the device is not trusted with
//!
//! Everything the device writes is validated before use:
//! * an RX descriptor's length must be 14..=2048 bytes, with end-of-packet set
//!   and no frame error; frames spanning descriptors are discarded whole;
//! * descriptor addresses are never read back: buffers are found from the
//!   driver's own index, and every recycled descriptor gets its address
//!   rewritten;
//! * head registers must lie inside the ring and inside the window the driver
//!   handed to the device ([`E1000::check_heads`]); a head out of range or
//!   wrapped past the tail is [`Error::BadHead`], and a transmitter that
//!   claims to be idle while queued descriptors were never written back is
//!   [`Error::TxStalled`]; after either the caller resets the device
//!   ([`E1000::reinit`]);
//! * the number of descriptors examined per call is bounded by the ring size,
//!   so a device that keeps marking descriptors done cannot stall the caller.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::arithmetic_side_effects
    )
)]

pub mod regs;

#[cfg(any(test, feature = "mock"))]
extern crate alloc;

#[cfg(any(test, feature = "mock"))]
pub mod mock;

#[cfg(feature = "smoltcp")]
mod phy;

#[cfg(test)]
mod tests;

use core::fmt;
use core::sync::atomic::{fence, Ordering};

use regs::*;

/// Size of every packet buffer (RCTL.BSIZE = 2048).
pub const BUF_SIZE: usize = 2048;
/// Largest frame the driver sends: Ethernet MTU 1500 + 14-byte header (the
/// device appends the FCS).
pub const MAX_FRAME: usize = 1514;
/// Smallest frame accepted from the device (an Ethernet header).
pub const MIN_FRAME: usize = 14;
/// Bytes per descriptor.
pub const DESC_SIZE: usize = 16;
/// Smallest ring (RDLEN/TDLEN must be a multiple of 128 bytes).
pub const MIN_DESCS: u16 = 8;
/// Largest ring this driver sets up.
pub const MAX_DESCS: u16 = 4096;
/// Polls of a self-clearing bit (reset, EEPROM read) before giving up.
const POLL_LIMIT: u32 = 100_000;

/// The device's registers (BAR 0).
pub trait Regs {
    /// Reads the 32-bit register at byte offset `reg`.
    fn read(&self, reg: u32) -> u32;
    /// Writes the 32-bit register at byte offset `reg`.
    fn write(&self, reg: u32, value: u32);
    /// Waits about `micros` microseconds (used after reset); the default does
    /// not wait.
    fn delay_us(&self, micros: u32) {
        let _ = micros;
    }
}

/// A region of memory the device reaches by DMA.
///
/// Implementations must be total: out-of-range accesses return `None`, drop
/// the write, or give the closure an empty slice — never panic.
pub trait Dma {
    /// Device-visible (guest-physical) address of byte 0.
    fn paddr(&self) -> u64;
    /// Length in bytes.
    fn len(&self) -> usize;
    /// Whether the region is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Volatile read of the aligned 64-bit little-endian word at `offset`.
    fn read_u64(&self, offset: usize) -> Option<u64>;
    /// Volatile write of the aligned 64-bit little-endian word at `offset`.
    fn write_u64(&mut self, offset: usize, value: u64);
    /// Calls `f` with bytes `[offset, offset + len)` (an empty slice if out of
    /// range).
    fn with_bytes<T>(&self, offset: usize, len: usize, f: impl FnOnce(&[u8]) -> T) -> T;
    /// Calls `f` with bytes `[offset, offset + len)`, writable (an empty slice
    /// if out of range).
    fn with_bytes_mut<T>(&mut self, offset: usize, len: usize, f: impl FnOnce(&mut [u8]) -> T)
        -> T;
}

/// Ring sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// RX descriptors (a multiple of 8, 8..=4096).
    pub rx_descs: u16,
    /// TX descriptors (a multiple of 8, 8..=4096).
    pub tx_descs: u16,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            rx_descs: 64,
            tx_descs: 64,
        }
    }
}

/// Bytes of DMA memory a ring of `descs` descriptors needs: the descriptors,
/// rounded up to 4 KiB, then one [`BUF_SIZE`] buffer each.
pub const fn ring_bytes(descs: u16) -> usize {
    buffers_offset(descs).saturating_add((descs as usize).saturating_mul(BUF_SIZE))
}

const fn buffers_offset(descs: u16) -> usize {
    (descs as usize)
        .saturating_mul(DESC_SIZE)
        .div_ceil(4096)
        .saturating_mul(4096)
}

/// Which ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ring {
    /// Receive.
    Rx,
    /// Transmit.
    Tx,
}

/// Why the driver stopped or refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A ring size is not a multiple of 8 in 8..=4096.
    BadRingSize(u16),
    /// A DMA region is too small for its ring.
    DmaTooSmall {
        /// Which ring.
        ring: Ring,
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        have: usize,
    },
    /// A DMA region's address is not 128-byte aligned or wraps.
    DmaAddress(u64),
    /// The reset bit did not clear.
    ResetTimeout,
    /// Neither the EEPROM nor the receive-address register gave a usable MAC.
    NoMacAddress,
    /// The device reported a head outside the ring or outside the window the
    /// driver gave it (a wrapped head). Reset with [`E1000::reinit`].
    BadHead {
        /// Which ring.
        ring: Ring,
        /// The value read.
        head: u32,
    },
    /// The device says it has sent everything, but the oldest queued TX
    /// descriptor was never written back (seen on two checks in a row). Reset
    /// with [`E1000::reinit`].
    TxStalled,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::BadRingSize(n) => write!(f, "ring size {n} is not a multiple of 8 in 8..=4096"),
            Error::DmaTooSmall { ring, need, have } => {
                write!(f, "{ring:?} DMA region holds {have} bytes, needs {need}")
            }
            Error::DmaAddress(a) => write!(f, "DMA region at {a:#x} is unusable"),
            Error::ResetTimeout => f.write_str("device reset did not complete"),
            Error::NoMacAddress => f.write_str("no valid MAC address in EEPROM or RAL/RAH"),
            Error::BadHead { ring, head } => {
                write!(
                    f,
                    "device reported {ring:?} head {head}, outside the ring window"
                )
            }
            Error::TxStalled => {
                f.write_str("device skipped TX descriptors without writing them back")
            }
        }
    }
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames received and handed up.
    pub rx_frames: u64,
    /// Bytes received and handed up.
    pub rx_bytes: u64,
    /// RX descriptors dropped for a bad length.
    pub rx_bad_length: u64,
    /// RX descriptors dropped for frame errors.
    pub rx_errors: u64,
    /// RX descriptors dropped as parts of multi-descriptor frames.
    pub rx_fragments: u64,
    /// Receiver overruns reported by the device.
    pub rx_overruns: u64,
    /// Frames queued for transmission.
    pub tx_frames: u64,
    /// Bytes queued for transmission.
    pub tx_bytes: u64,
    /// Frames not sent (no free descriptor, or too long).
    pub tx_dropped: u64,
    /// Interrupt causes handled.
    pub interrupts: u64,
    /// Link state changes.
    pub link_changes: u64,
    /// Device resets after a bad head.
    pub resets: u64,
}

fn valid_mac(mac: &[u8; 6]) -> bool {
    mac[0] & 1 == 0 && mac.iter().any(|&b| b != 0)
}

/// `x` lies in the cyclic window `[from, to]` of a ring of `n` slots.
fn in_window(from: u16, x: u16, to: u16, n: u16) -> bool {
    let n = u32::from(n);
    let d = |a: u16, b: u16| {
        u32::from(b)
            .wrapping_add(n)
            .wrapping_sub(u32::from(a))
            .checked_rem(n)
            .unwrap_or(0)
    };
    u32::from(x) < n && d(from, x) <= d(from, to)
}

fn next(i: u16, n: u16) -> u16 {
    if i.saturating_add(1) >= n {
        0
    } else {
        i.saturating_add(1)
    }
}

/// The receive ring.
pub struct RxRing<D: Dma> {
    mem: D,
    descs: u16,
    /// Next descriptor the driver looks at.
    next: u16,
    /// Discarding the rest of a multi-descriptor frame.
    discarding: bool,
    stats: RxStats,
}

#[derive(Clone, Copy, Debug, Default)]
struct RxStats {
    frames: u64,
    bytes: u64,
    bad_length: u64,
    errors: u64,
    fragments: u64,
}

/// Offset of descriptor `i`'s first word.
fn desc_off(i: u16) -> usize {
    usize::from(i).saturating_mul(DESC_SIZE)
}

/// Offset of descriptor `i`'s second word (length, status, errors).
fn status_off(i: u16) -> usize {
    desc_off(i).saturating_add(8)
}

/// Offset of buffer `i` in a ring of `descs`.
fn buf_off(descs: u16, i: u16) -> usize {
    buffers_offset(descs).saturating_add(usize::from(i).saturating_mul(BUF_SIZE))
}

impl<D: Dma> RxRing<D> {
    fn buf_off(&self, i: u16) -> usize {
        buf_off(self.descs, i)
    }

    /// Gives descriptor `i` a fresh buffer address and clears its status.
    fn arm(&mut self, i: u16) {
        let addr = self.mem.paddr().wrapping_add(self.buf_off(i) as u64);
        self.mem.write_u64(desc_off(i), addr);
        self.mem.write_u64(status_off(i), 0);
    }

    fn setup(&mut self, regs: &impl Regs) {
        for i in 0..self.descs {
            self.arm(i);
        }
        self.next = 0;
        self.discarding = false;
        fence(Ordering::SeqCst);
        let base = self.mem.paddr();
        regs.write(RDBAL, base as u32);
        regs.write(RDBAH, (base >> 32) as u32);
        regs.write(
            RDLEN,
            u32::from(self.descs).saturating_mul(DESC_SIZE as u32),
        );
        regs.write(RDH, 0);
        regs.write(RDT, u32::from(self.descs).saturating_sub(1));
    }

    /// Returns descriptor `i` to the device.
    fn recycle(&mut self, regs: &impl Regs, i: u16) {
        self.arm(i);
        fence(Ordering::SeqCst);
        regs.write(RDT, u32::from(i));
        self.next = next(i, self.descs);
    }

    /// The next good frame `(descriptor, length)`, dropping (and returning to
    /// the device) every bad descriptor before it. Looks at most at one ring's
    /// worth of descriptors.
    fn poll(&mut self, regs: &impl Regs) -> Option<(u16, usize)> {
        for _ in 0..self.descs {
            let i = self.next;
            let word = self.mem.read_u64(status_off(i))?;
            let status = (word >> 32) as u8;
            if status & RXD_STAT_DD == 0 {
                return None;
            }
            fence(Ordering::Acquire);
            let len = usize::from(word as u16);
            let errors = (word >> 40) as u8;
            let eop = status & RXD_STAT_EOP != 0;
            if self.discarding || !eop {
                // Part of a frame larger than one buffer: drop it all.
                self.stats.fragments = self.stats.fragments.saturating_add(1);
                self.discarding = !eop;
            } else if errors & RXD_ERR_FRAME != 0 {
                self.stats.errors = self.stats.errors.saturating_add(1);
            } else if !(MIN_FRAME..=BUF_SIZE).contains(&len) {
                self.stats.bad_length = self.stats.bad_length.saturating_add(1);
            } else {
                return Some((i, len));
            }
            self.recycle(regs, i);
        }
        None
    }

    /// Hands frame `(i, len)` to `f`, then returns the descriptor.
    fn consume<T>(
        &mut self,
        regs: &impl Regs,
        i: u16,
        len: usize,
        f: impl FnOnce(&[u8]) -> T,
    ) -> T {
        let out = self.mem.with_bytes(self.buf_off(i), len, f);
        self.stats.frames = self.stats.frames.saturating_add(1);
        self.stats.bytes = self.stats.bytes.saturating_add(len as u64);
        self.recycle(regs, i);
        out
    }
}

/// The transmit ring.
pub struct TxRing<D: Dma> {
    mem: D,
    descs: u16,
    /// Next descriptor to fill.
    tail: u16,
    /// Oldest descriptor not yet known to be done.
    clean: u16,
    stats: TxStats,
}

#[derive(Clone, Copy, Debug, Default)]
struct TxStats {
    frames: u64,
    bytes: u64,
    dropped: u64,
}

impl<D: Dma> TxRing<D> {
    fn buf_off(&self, i: u16) -> usize {
        buf_off(self.descs, i)
    }

    fn setup(&mut self, regs: &impl Regs) {
        for i in 0..self.descs {
            self.mem.write_u64(desc_off(i), 0);
            self.mem.write_u64(status_off(i), 0);
        }
        self.tail = 0;
        self.clean = 0;
        fence(Ordering::SeqCst);
        let base = self.mem.paddr();
        regs.write(TDBAL, base as u32);
        regs.write(TDBAH, (base >> 32) as u32);
        regs.write(
            TDLEN,
            u32::from(self.descs).saturating_mul(DESC_SIZE as u32),
        );
        regs.write(TDH, 0);
        regs.write(TDT, 0);
    }

    /// Moves `clean` past descriptors the device has finished.
    fn reclaim(&mut self) {
        while self.clean != self.tail {
            let Some(word) = self.mem.read_u64(status_off(self.clean)) else {
                return;
            };
            if (word >> 32) as u8 & TXD_STAT_DD == 0 {
                return;
            }
            self.clean = next(self.clean, self.descs);
        }
    }

    /// Whether a descriptor is free (after reclaiming finished ones).
    fn has_space(&mut self) -> bool {
        self.reclaim();
        next(self.tail, self.descs) != self.clean
    }

    /// Fills the next descriptor with a `len`-byte frame written by `f`, and
    /// hands it to the device. Without a free descriptor, or for a frame
    /// longer than [`MAX_FRAME`], `f` writes into the buffer anyway (its
    /// result is needed) but nothing is sent.
    fn send<T>(&mut self, regs: &impl Regs, len: usize, f: impl FnOnce(&mut [u8]) -> T) -> T {
        let fits = (1..=MAX_FRAME).contains(&len);
        let space = self.has_space();
        let i = self.tail;
        let out = self
            .mem
            .with_bytes_mut(self.buf_off(i), len.min(BUF_SIZE), f);
        if !fits || !space {
            self.stats.dropped = self.stats.dropped.saturating_add(1);
            return out;
        }
        let addr = self.mem.paddr().wrapping_add(self.buf_off(i) as u64);
        let cmd = TXD_CMD_EOP | TXD_CMD_IFCS | TXD_CMD_RS;
        self.mem.write_u64(desc_off(i), addr);
        self.mem
            .write_u64(status_off(i), (len as u64) | (u64::from(cmd) << 24));
        fence(Ordering::SeqCst);
        self.tail = next(i, self.descs);
        regs.write(TDT, u32::from(self.tail));
        self.stats.frames = self.stats.frames.saturating_add(1);
        self.stats.bytes = self.stats.bytes.saturating_add(len as u64);
        out
    }
}

/// What an interrupt (or a poll of the cause register) reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Causes(pub u32);

impl Causes {
    /// A frame arrived or RX descriptors ran low.
    pub fn rx(&self) -> bool {
        self.0 & (INT_RXT0 | INT_RXDMT0 | INT_RXO) != 0
    }
    /// TX descriptors were written back.
    pub fn tx(&self) -> bool {
        self.0 & INT_TXDW != 0
    }
    /// The link changed.
    pub fn link(&self) -> bool {
        self.0 & INT_LSC != 0
    }
    /// Nothing at all (for a shared line: not this device).
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
}

/// An 82540EM.
pub struct E1000<R: Regs, D: Dma> {
    regs: R,
    mac: [u8; 6],
    rx: RxRing<D>,
    tx: TxRing<D>,
    link_up: bool,
    interrupts_on: bool,
    /// Frames smoltcp may still take before the ring must drain or an
    /// interrupt be handled (bounds one `Interface::poll` against a device
    /// that refills descriptors as fast as they are returned).
    rx_budget: u32,
    /// The last check saw the TX ring idle with descriptors not written back.
    tx_stall_seen: bool,
    overruns: u64,
    interrupts: u64,
    link_changes: u64,
    resets: u64,
}

fn check_ring(ring: Ring, descs: u16, mem: &impl Dma) -> Result<(), Error> {
    if !(MIN_DESCS..=MAX_DESCS).contains(&descs) || !descs.is_multiple_of(8) {
        return Err(Error::BadRingSize(descs));
    }
    let need = ring_bytes(descs);
    if mem.len() < need {
        return Err(Error::DmaTooSmall {
            ring,
            need,
            have: mem.len(),
        });
    }
    let base = mem.paddr();
    if !base.is_multiple_of(128) || base.checked_add(need as u64).is_none() {
        return Err(Error::DmaAddress(base));
    }
    Ok(())
}

impl<R: Regs, D: Dma> E1000<R, D> {
    /// Resets the device and brings it up with the given DMA regions (each at
    /// least [`ring_bytes`] of its ring size, 128-byte aligned). Interrupts
    /// stay masked until [`E1000::enable_interrupts`].
    pub fn new(regs: R, rx_mem: D, tx_mem: D, config: Config) -> Result<Self, Error> {
        check_ring(Ring::Rx, config.rx_descs, &rx_mem)?;
        check_ring(Ring::Tx, config.tx_descs, &tx_mem)?;
        let mut nic = E1000 {
            regs,
            mac: [0; 6],
            rx: RxRing {
                mem: rx_mem,
                descs: config.rx_descs,
                next: 0,
                discarding: false,
                stats: RxStats::default(),
            },
            tx: TxRing {
                mem: tx_mem,
                descs: config.tx_descs,
                tail: 0,
                clean: 0,
                stats: TxStats::default(),
            },
            link_up: false,
            interrupts_on: false,
            rx_budget: u32::from(config.rx_descs),
            tx_stall_seen: false,
            overruns: 0,
            interrupts: 0,
            link_changes: 0,
            resets: 0,
        };
        nic.mac = nic.read_mac().ok_or(Error::NoMacAddress)?;
        nic.bring_up()?;
        Ok(nic)
    }

    fn reset(&self) -> Result<(), Error> {
        let r = &self.regs;
        r.write(IMC, u32::MAX);
        r.write(RCTL, 0);
        r.write(TCTL, 0);
        r.write(CTRL, r.read(CTRL) | CTRL_RST);
        r.delay_us(10);
        let mut cleared = false;
        for _ in 0..POLL_LIMIT {
            if r.read(CTRL) & CTRL_RST == 0 {
                cleared = true;
                break;
            }
            r.delay_us(1);
        }
        if !cleared {
            return Err(Error::ResetTimeout);
        }
        r.write(IMC, u32::MAX);
        let _ = r.read(ICR);
        Ok(())
    }

    /// One EEPROM word through EERD, if the read completes.
    fn eeprom_word(&self, addr: u16) -> Option<u16> {
        self.regs
            .write(EERD, (u32::from(addr) << EERD_ADDR_SHIFT) | EERD_START);
        for _ in 0..POLL_LIMIT {
            let v = self.regs.read(EERD);
            if v & EERD_DONE != 0 {
                return Some((v >> 16) as u16);
            }
        }
        None
    }

    /// The MAC from a checksummed EEPROM, else from RAL0/RAH0 if marked valid.
    fn read_mac(&self) -> Option<[u8; 6]> {
        let mut sum = 0u16;
        let mut words = [0u16; 3];
        let mut eeprom_ok = true;
        for addr in 0..EEPROM_CHECKSUM_WORDS {
            match self.eeprom_word(addr) {
                Some(w) => {
                    sum = sum.wrapping_add(w);
                    if let Some(slot) = words.get_mut(usize::from(addr)) {
                        *slot = w;
                    }
                }
                None => {
                    eeprom_ok = false;
                    break;
                }
            }
        }
        if eeprom_ok && sum == EEPROM_SUM {
            let [a, b, c] = words.map(u16::to_le_bytes);
            let mac = [a[0], a[1], b[0], b[1], c[0], c[1]];
            if valid_mac(&mac) {
                return Some(mac);
            }
        }
        let (lo, hi) = (self.regs.read(RAL0), self.regs.read(RAH0));
        let [l0, l1, l2, l3] = lo.to_le_bytes();
        let [h0, h1, _, _] = hi.to_le_bytes();
        let mac = [l0, l1, l2, l3, h0, h1];
        (hi & (1 << 31) != 0 && valid_mac(&mac)).then_some(mac)
    }

    fn bring_up(&mut self) -> Result<(), Error> {
        self.reset()?;
        let r = &self.regs;
        let ctrl = r.read(CTRL) & !(CTRL_LRST | CTRL_PHY_RST);
        r.write(CTRL, ctrl | CTRL_SLU | CTRL_ASDE);
        let [m0, m1, m2, m3, m4, m5] = self.mac;
        r.write(RAL0, u32::from_le_bytes([m0, m1, m2, m3]));
        r.write(RAH0, u32::from_le_bytes([m4, m5, 0, 0]) | (1 << 31));
        for reg in (MTA..MTA_END).step_by(4) {
            r.write(reg, 0);
        }
        self.rx.setup(&self.regs);
        self.tx.setup(&self.regs);
        let r = &self.regs;
        r.write(RXCSUM, 0);
        r.write(RDTR, 0);
        r.write(
            RCTL,
            RCTL_EN | RCTL_BAM | RCTL_SECRC | RCTL_RDMTS_HALF_BSIZE_2048,
        );
        r.write(TIPG, TIPG_COPPER);
        r.write(TCTL, TCTL_EN | TCTL_PSP | TCTL_CT | TCTL_COLD | TCTL_RTLC);
        self.link_up = r.read(STATUS) & STATUS_LU != 0;
        if self.interrupts_on {
            r.write(IMS, INT_ENABLED);
        }
        Ok(())
    }

    /// Resets the device and sets both rings up again (after [`Error::BadHead`]).
    /// Frames in flight are lost.
    pub fn reinit(&mut self) -> Result<(), Error> {
        self.resets = self.resets.saturating_add(1);
        self.tx_stall_seen = false;
        self.bring_up()
    }

    /// The MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Whether the link was up when last looked at (bring-up or a link-change
    /// interrupt).
    pub fn link_up(&self) -> bool {
        self.link_up
    }

    /// Reads the link state from the device.
    pub fn refresh_link(&mut self) -> bool {
        let up = self.regs.read(STATUS) & STATUS_LU != 0;
        if up != self.link_up {
            self.link_changes = self.link_changes.saturating_add(1);
            self.link_up = up;
        }
        up
    }

    /// Unmasks the interrupt causes the driver handles.
    pub fn enable_interrupts(&mut self) {
        self.interrupts_on = true;
        self.regs.write(IMS, INT_ENABLED);
    }

    /// Masks every interrupt cause.
    pub fn disable_interrupts(&mut self) {
        self.interrupts_on = false;
        self.regs.write(IMC, u32::MAX);
    }

    /// Makes the device raise a link-change interrupt now (to find out which
    /// line it is wired to).
    pub fn trigger_interrupt(&self) {
        self.regs.write(ICS, INT_LSC);
    }

    /// Reads (and so clears) the interrupt causes, and acts on the link and
    /// overrun causes. Call after an interrupt, or periodically when polling.
    pub fn handle_interrupt(&mut self) -> Causes {
        self.rx_budget = u32::from(self.rx.descs);
        let causes = Causes(self.regs.read(ICR));
        if !causes.is_empty() {
            self.interrupts = self.interrupts.saturating_add(1);
        }
        if causes.link() {
            self.refresh_link();
        }
        if causes.0 & INT_RXO != 0 {
            self.overruns = self.overruns.saturating_add(1);
        }
        causes
    }

    /// Checks both head registers against the driver's view of the rings:
    /// the RX head must lie inside the ring; the TX head must lie between the
    /// oldest unfinished descriptor and the tail (a head past the tail has
    /// wrapped); an idle transmitter must have written back everything
    /// queued. Call it periodically (each check reads two registers).
    pub fn check_heads(&mut self) -> Result<(), Error> {
        // The driver keeps every RX descriptor but one with the device (the
        // window from its next descriptor round to the one before it), so any
        // head inside the ring is possible.
        let rdh = self.regs.read(RDH);
        if u16::try_from(rdh).map_or(true, |h| h >= self.rx.descs) {
            return Err(Error::BadHead {
                ring: Ring::Rx,
                head: rdh,
            });
        }
        self.tx.reclaim();
        let tdh = self.regs.read(TDH);
        let ok = u16::try_from(tdh)
            .is_ok_and(|h| in_window(self.tx.clean, h, self.tx.tail, self.tx.descs));
        if !ok {
            return Err(Error::BadHead {
                ring: Ring::Tx,
                head: tdh,
            });
        }
        // Head at the tail means the device is idle; then every queued
        // descriptor must have been written back (each has RS set). Write-back
        // may trail the head briefly, so only a repeated sighting counts.
        let stalled = tdh == u32::from(self.tx.tail) && self.tx.clean != self.tx.tail;
        if stalled && self.tx_stall_seen {
            return Err(Error::TxStalled);
        }
        self.tx_stall_seen = stalled;
        Ok(())
    }

    /// The next received frame, if one is ready (bad descriptors before it are
    /// dropped and counted).
    pub fn receive(&mut self) -> Option<RxFrame<'_, R, D>> {
        let (index, len) = self.rx.poll(&self.regs)?;
        Some(RxFrame {
            ring: &mut self.rx,
            regs: &self.regs,
            index,
            len,
        })
    }

    /// Whether a transmit descriptor is free.
    pub fn can_transmit(&mut self) -> bool {
        self.tx.has_space()
    }

    /// Sends a `len`-byte frame that `f` writes. Returns `false` (and drops
    /// the frame) if no descriptor is free or `len` is not 1..=[`MAX_FRAME`].
    pub fn transmit(&mut self, len: usize, f: impl FnOnce(&mut [u8])) -> bool {
        let before = self.tx.stats.frames;
        self.tx.send(&self.regs, len, f);
        self.tx.stats.frames != before
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        Stats {
            rx_frames: self.rx.stats.frames,
            rx_bytes: self.rx.stats.bytes,
            rx_bad_length: self.rx.stats.bad_length,
            rx_errors: self.rx.stats.errors,
            rx_fragments: self.rx.stats.fragments,
            rx_overruns: self.overruns,
            tx_frames: self.tx.stats.frames,
            tx_bytes: self.tx.stats.bytes,
            tx_dropped: self.tx.stats.dropped,
            interrupts: self.interrupts,
            link_changes: self.link_changes,
            resets: self.resets,
        }
    }

    /// The register interface.
    pub fn regs(&self) -> &R {
        &self.regs
    }

    /// Masks interrupts and stops both rings (the DMA regions are unused by
    /// the device afterwards), returning the regions.
    pub fn shutdown(self) -> (R, D, D) {
        let _ = self.reset();
        (self.regs, self.rx.mem, self.tx.mem)
    }
}

/// A received frame, still in its DMA buffer. Reading it with
/// [`RxFrame::consume`] returns the buffer to the device; dropping it unread
/// leaves the frame to be returned again by the next [`E1000::receive`].
pub struct RxFrame<'a, R: Regs, D: Dma> {
    ring: &'a mut RxRing<D>,
    regs: &'a R,
    index: u16,
    len: usize,
}

impl<R: Regs, D: Dma> RxFrame<'_, R, D> {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the frame is empty (never: at least [`MIN_FRAME`] bytes).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Calls `f` with the frame's bytes, then gives the buffer back.
    pub fn consume<T>(self, f: impl FnOnce(&[u8]) -> T) -> T {
        self.ring.consume(self.regs, self.index, self.len, f)
    }
}
