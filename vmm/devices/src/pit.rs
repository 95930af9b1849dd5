//! The 8254 programmable interval timer, and port 0x61 (NMI status and
//! control) whose bits gate channel 2 and show its output.
//!
//! Ports: 0x40–0x42 channel counters, 0x43 control word (write-only; reads
//! 0xFF), 0x61 (bit 0 gate 2, bit 1 speaker data, bits 2–3 stored, bit 4 the
//! refresh toggle (every 15.085 µs), bit 5 OUT2; bits 6–7 read 0).
//!
//! The input clock is [`PIT_HZ`] (1.193182 MHz) derived from `now`
//! (nanoseconds). Channel 0's gate is tied high and its output is IRQ0;
//! channel 1's gate is high and its output goes nowhere; channel 2's gate is
//! port 0x61 bit 0.
//!
//! All six modes are modelled, with the datasheet's output waveforms
//! (mode 0: low until terminal count; 1: low for N clocks after a gate
//! trigger; 2: low for one clock every N; 3: square wave, high for ⌈N/2⌉;
//! 4 and 5: one low clock N clocks after the count / trigger), binary and
//! BCD counting, LSB/MSB/LSB-then-MSB access, the counter-latch command and
//! the read-back command (count and status, status read first). Writing a
//! control word stops the channel until a count is written (so Linux's
//! "mode 0, count 0, mode 0" shutdown never interrupts). Writing the first
//! byte of a two-byte count stops a mode 0 count. Simplifications: a new
//! count takes effect at once in every mode (the 8254 waits for the end of
//! the current period in modes 2 and 3), the count is live from the write
//! (the 8254 loads it on the next clock edge), and mode 3 counts by two for
//! odd counts as for even ones.
//!
//! IRQ0 is the rising edge of OUT0: [`Pit::advance`] reports whether one or
//! more edges happened since the last call (late edges are coalesced), and
//! [`Pit::next_deadline`] when the next one is due.

use crate::time::{ticks_between, time_of_tick, MIN_PERIOD_NS};

/// The PIT's input clock in Hz (Linux's `PIT_TICK_RATE`).
pub const PIT_HZ: u64 = 1_193_182;
/// Channel 0's port.
pub const PORT_CH0: u16 = 0x40;
/// The control-word port.
pub const PORT_CONTROL: u16 = 0x43;
/// The NMI status and control port.
pub const PORT_61: u16 = 0x61;
/// Port 0x61 refresh-toggle half period, ns.
const REFRESH_NS: u64 = 15_085;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    /// No count written since the control word.
    Idle,
    /// A count is loaded; waiting for a gate rising edge (modes 1 and 5, or
    /// modes 2 and 3 with the gate low).
    Armed,
    /// Counting since `load` (ns).
    Counting { load: u64 },
    /// Modes 0 and 4 with the gate low: paused after `d` clocks.
    Frozen { d: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Channel {
    /// Mode bits as programmed (0–7), for the status byte.
    mode_bits: u8,
    /// Effective mode, 0–5.
    mode: u8,
    /// Read/write access: 1 LSB, 2 MSB, 3 LSB then MSB.
    access: u8,
    bcd: bool,
    /// Loaded count in clocks, 1..=65536 (BCD: 1..=10000).
    count: u64,
    run: Run,
    gate: bool,
    null_count: bool,
    /// LSB of a two-byte count, waiting for the MSB.
    write_lsb: Option<u8>,
    /// The next byte read (live or latched, access 3) is the MSB.
    read_msb: bool,
    latched: Option<u16>,
    status: Option<u8>,
    /// Rising output edges reported since the count was loaded.
    edges: u64,
    /// When the last edge was reported (ns).
    last_edge: u64,
}

impl Channel {
    const fn new(gate: bool) -> Self {
        Channel {
            mode_bits: 0,
            mode: 0,
            access: 3,
            bcd: false,
            count: 0x1_0000,
            run: Run::Idle,
            gate,
            null_count: true,
            write_lsb: None,
            read_msb: false,
            latched: None,
            status: None,
            edges: 0,
            last_edge: 0,
        }
    }

    fn modulus(&self) -> u64 {
        if self.bcd {
            10_000
        } else {
            0x1_0000
        }
    }

    /// Clocks counted at `now`, if counting or paused.
    fn clocks(&self, now: u64) -> Option<u64> {
        match self.run {
            Run::Counting { load } => Some(ticks_between(load, now, PIT_HZ)),
            Run::Frozen { d } => Some(d),
            Run::Idle | Run::Armed => None,
        }
    }

    fn output(&self, now: u64) -> bool {
        let n = self.count;
        match self.clocks(now) {
            None => !(self.mode == 0 && self.run == Run::Idle),
            Some(d) => match self.mode {
                0 | 1 => d >= n,
                2 => d.checked_rem(n) != n.checked_sub(1),
                3 => d.checked_rem(n).unwrap_or(0) < n.div_ceil(2),
                _ => d != n,
            },
        }
    }

    /// The counting element at `now`, in the channel's number format.
    fn counter(&self, now: u64) -> u16 {
        let n = self.count;
        let m = self.modulus();
        let value = match self.clocks(now) {
            None => n,
            Some(d) => match self.mode {
                2 => n.wrapping_sub(d.checked_rem(n).unwrap_or(0)),
                3 => {
                    let twice = d.wrapping_mul(2).checked_rem(n).unwrap_or(0);
                    n.wrapping_sub(twice) & !1
                }
                _ => {
                    let r = d.checked_rem(m).unwrap_or(0);
                    n.wrapping_add(m).wrapping_sub(r)
                }
            },
        };
        let value = value.checked_rem(m).unwrap_or(0);
        if self.bcd {
            bin_to_bcd(value)
        } else {
            value as u16
        }
    }

    /// Rising output edges after `d` clocks.
    fn edges_at(&self, d: u64) -> u64 {
        let n = self.count;
        match self.mode {
            2 | 3 => d.checked_div(n).unwrap_or(0),
            0 | 1 => u64::from(d >= n),
            _ => u64::from(d > n),
        }
    }

    /// The clock count at which rising edge `k` (1-based) happens.
    fn edge_clock(&self, k: u64) -> Option<u64> {
        let n = self.count;
        match self.mode {
            2 | 3 => k.checked_mul(n),
            0 | 1 => (k == 1).then_some(n),
            _ => (k == 1).then(|| n.saturating_add(1)),
        }
    }

    fn status_byte(&self, now: u64) -> u8 {
        (u8::from(self.output(now)) << 7)
            | (u8::from(self.null_count) << 6)
            | (self.access << 4)
            | (self.mode_bits << 1)
            | u8::from(self.bcd)
    }

    fn control(&mut self, value: u8) {
        let access = (value >> 4) & 3;
        let mode_bits = (value >> 1) & 7;
        self.mode_bits = mode_bits;
        self.mode = if mode_bits > 5 {
            mode_bits & 3
        } else {
            mode_bits
        };
        self.access = access;
        self.bcd = value & 1 != 0;
        self.run = Run::Idle;
        self.null_count = true;
        self.write_lsb = None;
        self.read_msb = false;
        self.latched = None;
        self.status = None;
        self.edges = 0;
    }

    fn latch(&mut self, now: u64) {
        if self.latched.is_none() {
            self.latched = Some(self.counter(now));
        }
    }

    fn latch_status(&mut self, now: u64) {
        if self.status.is_none() {
            self.status = Some(self.status_byte(now));
        }
    }

    fn read(&mut self, now: u64) -> u8 {
        if let Some(status) = self.status.take() {
            return status;
        }
        let (value, latched) = match self.latched {
            Some(v) => (v, true),
            None => (self.counter(now), false),
        };
        let [lsb, msb] = value.to_le_bytes();
        let (byte, done) = match self.access {
            1 => (lsb, true),
            2 => (msb, true),
            _ => {
                let msb_now = self.read_msb;
                self.read_msb = !msb_now;
                if msb_now {
                    (msb, true)
                } else {
                    (lsb, false)
                }
            }
        };
        if latched && done {
            self.latched = None;
        }
        byte
    }

    fn write(&mut self, now: u64, value: u8) {
        match self.access {
            1 => self.load(now, u16::from(value)),
            2 => self.load(now, u16::from(value) << 8),
            _ => match self.write_lsb.take() {
                Some(lsb) => self.load(now, u16::from_le_bytes([lsb, value])),
                None => {
                    self.write_lsb = Some(value);
                    if self.mode == 0 {
                        self.run = Run::Idle;
                    }
                }
            },
        }
    }

    fn load(&mut self, now: u64, raw: u16) {
        let n = if self.bcd {
            bcd_to_bin(raw)
        } else {
            u64::from(raw)
        };
        self.count = if n == 0 { self.modulus() } else { n };
        self.edges = 0;
        self.null_count = false;
        self.run = match (self.mode, self.gate) {
            (0 | 4, true) | (2 | 3, true) => Run::Counting { load: now },
            (0 | 4, false) => Run::Frozen { d: 0 },
            _ => Run::Armed,
        };
    }

    fn set_gate(&mut self, now: u64, gate: bool) {
        if gate == self.gate {
            return;
        }
        self.gate = gate;
        self.run = match (self.mode, gate, self.run) {
            (0 | 4, false, Run::Counting { load }) => Run::Frozen {
                d: ticks_between(load, now, PIT_HZ),
            },
            (0 | 4, true, Run::Frozen { d }) => {
                // Resume so that exactly `d` clocks have been counted at `now`.
                let back = time_of_tick(0, d, PIT_HZ);
                Run::Counting {
                    load: now.saturating_sub(back),
                }
            }
            (2 | 3, false, Run::Counting { .. }) => Run::Armed,
            (1..=3 | 5, true, Run::Armed | Run::Counting { .. }) => {
                self.edges = 0;
                Run::Counting { load: now }
            }
            (_, _, run) => run,
        };
    }
}

/// The 8254 and port 0x61.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pit {
    ch: [Channel; 3],
    /// Port 0x61 bits 3:0.
    port61: u8,
}

impl Default for Pit {
    fn default() -> Self {
        Self::new()
    }
}

impl Pit {
    /// A PIT with every channel in mode 0 and no count (no output edges
    /// until the guest programs it); gate 2 low.
    pub const fn new() -> Self {
        Pit {
            ch: [Channel::new(true), Channel::new(true), Channel::new(false)],
            port61: 0,
        }
    }

    /// Guest read of port 0x40 + `offset` (0–3).
    pub fn read(&mut self, now: u64, offset: u16) -> u8 {
        match self.ch.get_mut(usize::from(offset)) {
            Some(ch) if offset < 3 => ch.read(now),
            _ => 0xFF,
        }
    }

    /// Guest write of port 0x40 + `offset` (0–3).
    pub fn write(&mut self, now: u64, offset: u16, value: u8) {
        if offset == 3 {
            self.control(now, value);
        } else if let Some(ch) = self.ch.get_mut(usize::from(offset)) {
            ch.write(now, value);
        }
    }

    fn control(&mut self, now: u64, value: u8) {
        let sc = usize::from(value >> 6);
        if sc == 3 {
            // Read-back: bit 5 clear latches counts, bit 4 clear latches
            // status, bits 3:1 select channels 2:0.
            for (i, ch) in self.ch.iter_mut().enumerate() {
                if value & (2u8 << i) == 0 {
                    continue;
                }
                if value & 0x20 == 0 {
                    ch.latch(now);
                }
                if value & 0x10 == 0 {
                    ch.latch_status(now);
                }
            }
            return;
        }
        let Some(ch) = self.ch.get_mut(sc) else {
            return;
        };
        if value & 0x30 == 0 {
            ch.latch(now);
        } else {
            ch.control(value);
        }
    }

    /// Guest read of port 0x61.
    pub fn read_port61(&self, now: u64) -> u8 {
        let refresh = (now / REFRESH_NS) & 1 != 0;
        self.port61 | (u8::from(refresh) << 4) | (u8::from(self.ch[2].output(now)) << 5)
    }

    /// Guest write of port 0x61: bits 3:0 are kept, bit 0 is gate 2.
    pub fn write_port61(&mut self, now: u64, value: u8) {
        self.port61 = value & 0x0F;
        self.ch[2].set_gate(now, value & 1 != 0);
    }

    /// Output of channel `ch` at `now`.
    pub fn output(&self, ch: usize, now: u64) -> bool {
        self.ch.get(ch).is_some_and(|c| c.output(now))
    }

    /// The counting element of channel `ch` at `now` (what a latch would
    /// capture).
    pub fn counter(&self, ch: usize, now: u64) -> Option<u16> {
        self.ch.get(ch).map(|c| c.counter(now))
    }

    /// Runs channel 0 up to `now`; returns whether OUT0 rose (IRQ0 edge)
    /// at least once since the last call.
    pub fn advance(&mut self, now: u64) -> bool {
        let ch = &mut self.ch[0];
        let Run::Counting { load } = ch.run else {
            return false;
        };
        let edges = ch.edges_at(ticks_between(load, now, PIT_HZ));
        if edges > ch.edges {
            ch.edges = edges;
            ch.last_edge = now;
            true
        } else {
            false
        }
    }

    /// When OUT0 next rises (periodic edges at least [`MIN_PERIOD_NS`] apart).
    pub fn next_deadline(&self) -> Option<u64> {
        let ch = &self.ch[0];
        let Run::Counting { load } = ch.run else {
            return None;
        };
        let clock = ch.edge_clock(ch.edges.saturating_add(1))?;
        let at = time_of_tick(load, clock, PIT_HZ);
        Some(if ch.edges > 0 {
            at.max(ch.last_edge.saturating_add(MIN_PERIOD_NS))
        } else {
            at
        })
    }
}

/// BCD digits to binary; digits above 9 count at face value (no panic).
fn bcd_to_bin(raw: u16) -> u64 {
    let d = |shift: u32| u64::from((raw >> shift) & 0xF);
    d(12)
        .wrapping_mul(1000)
        .wrapping_add(d(8).wrapping_mul(100))
        .wrapping_add(d(4).wrapping_mul(10))
        .wrapping_add(d(0))
}

/// Binary (below 10000) to four BCD digits.
fn bin_to_bcd(v: u64) -> u16 {
    let digit = |div: u64| (v.checked_div(div).unwrap_or(0) % 10) as u16;
    (digit(1000) << 12) | (digit(100) << 8) | (digit(10) << 4) | digit(1)
}
