//! The 16550A register model.

/// Receive FIFO depth of a 16550A.
pub const FIFO_SIZE: usize = 16;

/// Register offsets (from the port base, COM1 = 0x3F8).
pub mod reg {
    /// Receiver buffer (read) / transmitter holding (write); divisor latch low with DLAB.
    pub const RBR_THR: u8 = 0;
    /// Interrupt enable; divisor latch high with DLAB.
    pub const IER: u8 = 1;
    /// Interrupt identification (read) / FIFO control (write).
    pub const IIR_FCR: u8 = 2;
    /// Line control.
    pub const LCR: u8 = 3;
    /// Modem control.
    pub const MCR: u8 = 4;
    /// Line status.
    pub const LSR: u8 = 5;
    /// Modem status.
    pub const MSR: u8 = 6;
    /// Scratch.
    pub const SCR: u8 = 7;
}

/// IER: received data available.
pub const IER_RDI: u8 = 0x01;
/// IER: transmitter holding register empty.
pub const IER_THRI: u8 = 0x02;
/// IER: receiver line status.
pub const IER_RLSI: u8 = 0x04;
/// IER: modem status.
pub const IER_MSI: u8 = 0x08;

/// IIR: no interrupt pending.
pub const IIR_NONE: u8 = 0x01;
/// IIR: modem status change (lowest priority).
pub const IIR_MSI: u8 = 0x00;
/// IIR: transmitter holding register empty.
pub const IIR_THRI: u8 = 0x02;
/// IIR: received data at or above the trigger level.
pub const IIR_RDI: u8 = 0x04;
/// IIR: receiver line status (highest priority).
pub const IIR_RLSI: u8 = 0x06;
/// IIR: character timeout (data below the trigger level).
pub const IIR_CTI: u8 = 0x0C;
/// IIR bits 7:6 when the FIFOs are enabled.
pub const IIR_FIFO: u8 = 0xC0;

/// FCR: enable FIFOs.
pub const FCR_ENABLE: u8 = 0x01;
/// FCR: clear the receive FIFO.
pub const FCR_CLEAR_RX: u8 = 0x02;
/// FCR: clear the transmit FIFO.
pub const FCR_CLEAR_TX: u8 = 0x04;
/// FCR: receive trigger level bits.
pub const FCR_TRIGGER: u8 = 0xC0;

/// LCR: divisor latch access bit.
pub const LCR_DLAB: u8 = 0x80;

/// MCR: data terminal ready.
pub const MCR_DTR: u8 = 0x01;
/// MCR: request to send.
pub const MCR_RTS: u8 = 0x02;
/// MCR: OUT1.
pub const MCR_OUT1: u8 = 0x04;
/// MCR: OUT2, which gates the IRQ line on PCs.
pub const MCR_OUT2: u8 = 0x08;
/// MCR: loopback.
pub const MCR_LOOP: u8 = 0x10;

/// LSR: data ready.
pub const LSR_DR: u8 = 0x01;
/// LSR: overrun error.
pub const LSR_OE: u8 = 0x02;
/// LSR: transmitter holding register empty.
pub const LSR_THRE: u8 = 0x20;
/// LSR: transmitter empty.
pub const LSR_TEMT: u8 = 0x40;

/// MSR: delta CTS.
pub const MSR_DCTS: u8 = 0x01;
/// MSR: delta DSR.
pub const MSR_DDSR: u8 = 0x02;
/// MSR: trailing edge of RI.
pub const MSR_TERI: u8 = 0x04;
/// MSR: delta DCD.
pub const MSR_DDCD: u8 = 0x08;
/// MSR: clear to send.
pub const MSR_CTS: u8 = 0x10;
/// MSR: data set ready.
pub const MSR_DSR: u8 = 0x20;
/// MSR: ring indicator.
pub const MSR_RI: u8 = 0x40;
/// MSR: data carrier detect.
pub const MSR_DCD: u8 = 0x80;

/// Divisor after reset: 12, i.e. 9600 baud from the 1.8432 MHz clock.
pub const RESET_DIVISOR: u16 = 12;

/// A 16550A UART as the guest's COM1.
///
/// Transmission is instantaneous: a byte written to THR goes to the output
/// sink during the write, so THR and the transmitter are always empty (LSR
/// THRE and TEMT always set) and there is no transmit FIFO to model.
///
/// Reception: the host pushes bytes with [`push_input`](Self::push_input)
/// into a 16-byte FIFO (1 byte when the guest has FIFOs disabled). A full
/// FIFO refuses the byte and the host keeps it, so host input is never lost;
/// only loopback transmissions into a full FIFO overrun (LSR.OE), as on
/// hardware. Without a clock, the FIFO's character-timeout interrupt fires at
/// once: data below the trigger level reports IIR 0x0C, at or above it 0x04.
///
/// The modem lines read as a connected peer (DCD, DSR, CTS set) except in
/// loopback, where MSR mirrors MCR (RTS→CTS, DTR→DSR, OUT1→RI, OUT2→DCD)
/// with delta bits. Register offsets are taken modulo 8 (`offset & 7`); the
/// caller's port decoding rejects anything outside the 8-port window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Uart16550 {
    ier: u8,
    lcr: u8,
    mcr: u8,
    scr: u8,
    dll: u8,
    dlm: u8,
    /// FIFO enable (bit 0) and trigger level (bits 7:6), as last programmed.
    fcr: u8,
    overrun: bool,
    thr_pending: bool,
    msr_delta: u8,
    rx: [u8; FIFO_SIZE],
    rx_head: usize,
    rx_len: usize,
}

/// Short name for [`Uart16550`].
pub type Uart = Uart16550;

impl Default for Uart16550 {
    fn default() -> Self {
        Self::new()
    }
}

impl Uart16550 {
    /// A UART in its reset state: no interrupts enabled, FIFOs off, MCR 0
    /// (so OUT2 is off and no IRQ reaches the guest until its driver sets it).
    pub const fn new() -> Self {
        Uart16550 {
            ier: 0,
            lcr: 0,
            mcr: 0,
            scr: 0,
            dll: RESET_DIVISOR.to_le_bytes()[0],
            dlm: RESET_DIVISOR.to_le_bytes()[1],
            fcr: 0,
            overrun: false,
            thr_pending: false,
            msr_delta: 0,
            rx: [0; FIFO_SIZE],
            rx_head: 0,
            rx_len: 0,
        }
    }

    /// Returns to the reset state (as after power-on or a guest reboot).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Guest read of register `offset & 7`.
    pub fn read(&mut self, offset: u8) -> u8 {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset & 7 {
            reg::RBR_THR if dlab => self.dll,
            reg::RBR_THR => self.rx_pop().unwrap_or(0),
            reg::IER if dlab => self.dlm,
            reg::IER => self.ier,
            reg::IIR_FCR => {
                let iir = self.iir();
                // Reading IIR acknowledges a THR-empty interrupt.
                if iir & 0x0F == IIR_THRI {
                    self.thr_pending = false;
                }
                iir
            }
            reg::LCR => self.lcr,
            reg::MCR => self.mcr,
            reg::LSR => {
                let lsr = self.lsr();
                // Reading LSR clears the error bits.
                self.overrun = false;
                lsr
            }
            reg::MSR => {
                let msr = self.modem_lines() | self.msr_delta;
                self.msr_delta = 0;
                msr
            }
            _ => self.scr,
        }
    }

    /// Guest write of `value` to register `offset & 7`; transmitted bytes go to `out`.
    pub fn write(&mut self, offset: u8, value: u8, out: &mut impl FnMut(u8)) {
        let dlab = self.lcr & LCR_DLAB != 0;
        match offset & 7 {
            reg::RBR_THR if dlab => self.dll = value,
            reg::RBR_THR => {
                if self.mcr & MCR_LOOP != 0 {
                    self.loopback_receive(value);
                } else {
                    out(value);
                }
                // Sent at once: THR is empty again, which raises THRE.
                self.thr_pending = true;
            }
            reg::IER if dlab => self.dlm = value,
            reg::IER => {
                let enabling_thri = value & IER_THRI != 0 && self.ier & IER_THRI == 0;
                self.ier = value & 0x0F;
                // Enabling the THRE interrupt while THR is empty raises it.
                if enabling_thri {
                    self.thr_pending = true;
                }
            }
            reg::IIR_FCR => self.write_fcr(value),
            reg::LCR => self.lcr = value,
            reg::MCR => {
                let before = self.modem_lines();
                self.mcr = value & 0x1F;
                let after = self.modem_lines();
                let changed = (before ^ after) >> 4;
                let mut delta = changed & (MSR_DCTS | MSR_DDSR | MSR_DDCD);
                // TERI: RI went from 1 to 0.
                if before & MSR_RI != 0 && after & MSR_RI == 0 {
                    delta |= MSR_TERI;
                }
                self.msr_delta |= delta;
            }
            // LSR and MSR are read-only (writes are a factory test mode).
            reg::LSR | reg::MSR => {}
            _ => self.scr = value,
        }
    }

    /// Offers one byte of host input to the guest. Returns `false` (and
    /// keeps nothing) if the receive FIFO is full or the UART is in loopback,
    /// where the receiver is disconnected from the line.
    pub fn push_input(&mut self, byte: u8) -> bool {
        if self.mcr & MCR_LOOP != 0 || self.rx_len >= self.rx_capacity() {
            return false;
        }
        self.rx_push(byte)
    }

    /// How many bytes [`push_input`](Self::push_input) would accept now.
    pub fn rx_space(&self) -> usize {
        if self.mcr & MCR_LOOP != 0 {
            0
        } else {
            self.rx_capacity().saturating_sub(self.rx_len)
        }
    }

    /// Whether the UART drives its IRQ line: an enabled interrupt is pending
    /// and MCR.OUT2 is set (OUT2 gates the IRQ on PCs; in loopback the OUT2
    /// pin is forced inactive, so no IRQ reaches the interrupt controller).
    pub fn irq_pending(&self) -> bool {
        self.iir() & IIR_NONE == 0 && self.mcr & (MCR_OUT2 | MCR_LOOP) == MCR_OUT2
    }

    /// The current divisor latch value (baud = 115200 / divisor).
    pub fn divisor(&self) -> u16 {
        u16::from_le_bytes([self.dll, self.dlm])
    }

    /// The line control register (word length, stop bits, parity, DLAB).
    pub fn lcr(&self) -> u8 {
        self.lcr
    }

    /// The modem control register.
    pub fn mcr(&self) -> u8 {
        self.mcr
    }

    /// The interrupt enable register.
    pub fn ier(&self) -> u8 {
        self.ier
    }

    /// Bytes waiting in the receive FIFO.
    pub fn rx_len(&self) -> usize {
        self.rx_len
    }

    fn fifo_enabled(&self) -> bool {
        self.fcr & FCR_ENABLE != 0
    }

    fn rx_capacity(&self) -> usize {
        if self.fifo_enabled() {
            FIFO_SIZE
        } else {
            1
        }
    }

    fn trigger_level(&self) -> usize {
        match self.fcr & FCR_TRIGGER {
            0x00 => 1,
            0x40 => 4,
            0x80 => 8,
            _ => 14,
        }
    }

    fn write_fcr(&mut self, value: u8) {
        let enable = value & FCR_ENABLE != 0;
        if enable != self.fifo_enabled() {
            self.rx_clear();
        }
        if !enable {
            // The other FCR bits are only programmed together with FIFO enable.
            self.fcr = 0;
            return;
        }
        if value & FCR_CLEAR_RX != 0 {
            self.rx_clear();
        }
        // FCR_CLEAR_TX: there is no transmit FIFO to clear. DMA mode is ignored.
        self.fcr = value & (FCR_ENABLE | FCR_TRIGGER);
    }

    /// The interrupt identification value, highest-priority source first.
    fn iir(&self) -> u8 {
        let id = if self.ier & IER_RLSI != 0 && self.overrun {
            IIR_RLSI
        } else if self.ier & IER_RDI != 0 && self.rx_len > 0 {
            if self.fifo_enabled() && self.rx_len < self.trigger_level() {
                IIR_CTI
            } else {
                IIR_RDI
            }
        } else if self.ier & IER_THRI != 0 && self.thr_pending {
            IIR_THRI
        } else if self.ier & IER_MSI != 0 && self.msr_delta != 0 {
            IIR_MSI
        } else {
            IIR_NONE
        };
        if self.fifo_enabled() {
            id | IIR_FIFO
        } else {
            id
        }
    }

    fn lsr(&self) -> u8 {
        let mut lsr = LSR_THRE | LSR_TEMT;
        if self.rx_len > 0 {
            lsr |= LSR_DR;
        }
        if self.overrun {
            lsr |= LSR_OE;
        }
        lsr
    }

    /// MSR bits 7:4: the modem input lines.
    fn modem_lines(&self) -> u8 {
        if self.mcr & MCR_LOOP == 0 {
            return MSR_DCD | MSR_DSR | MSR_CTS;
        }
        let m = self.mcr;
        let mut lines = 0;
        if m & MCR_RTS != 0 {
            lines |= MSR_CTS;
        }
        if m & MCR_DTR != 0 {
            lines |= MSR_DSR;
        }
        if m & MCR_OUT1 != 0 {
            lines |= MSR_RI;
        }
        if m & MCR_OUT2 != 0 {
            lines |= MSR_DCD;
        }
        lines
    }

    /// A byte transmitted in loopback arrives at the receiver.
    fn loopback_receive(&mut self, byte: u8) {
        if self.rx_len < self.rx_capacity() {
            self.rx_push(byte);
        } else if self.fifo_enabled() {
            // FIFO full: the character in the shift register is lost.
            self.overrun = true;
        } else {
            // No FIFO: the new character overwrites the unread one.
            self.rx_clear();
            self.rx_push(byte);
            self.overrun = true;
        }
    }

    fn rx_push(&mut self, byte: u8) -> bool {
        let slot = self.rx_head.wrapping_add(self.rx_len) % FIFO_SIZE;
        match self.rx.get_mut(slot) {
            Some(s) if self.rx_len < FIFO_SIZE => {
                *s = byte;
                self.rx_len = self.rx_len.saturating_add(1);
                true
            }
            _ => false,
        }
    }

    fn rx_pop(&mut self) -> Option<u8> {
        if self.rx_len == 0 {
            return None;
        }
        let byte = self.rx.get(self.rx_head).copied();
        self.rx_head = self.rx_head.wrapping_add(1) % FIFO_SIZE;
        self.rx_len = self.rx_len.saturating_sub(1);
        byte
    }

    fn rx_clear(&mut self) {
        self.rx_head = 0;
        self.rx_len = 0;
    }
}
