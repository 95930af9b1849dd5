//! A 16550A UART model for a guest's COM1, and a line gatherer for its output.
//!
//! [`Uart16550`] answers the guest's port I/O on the eight UART registers
//! (offsets 0–7 from the base; the caller maps COM1's 0x3F8–0x3FF to
//! 0–7): RBR/THR, IER, IIR/FCR, LCR, MCR, LSR, MSR, SCR, with LCR.DLAB
//! switching offsets 0 and 1 to the divisor latch. Bytes the guest transmits
//! go straight to a sink closure; host input enters through
//! [`Uart16550::push_input`]; the VMM asks [`Uart16550::irq_pending`] after
//! each access (and after pushing input) to drive the guest's IRQ 4 line.
//!
//! | offset | read | write |
//! |--------|------|-------|
//! | 0 | RBR: next received byte (DLAB: DLL) | THR: transmit now (DLAB: DLL) |
//! | 1 | IER (DLAB: DLM) | IER, bits 3:0 (DLAB: DLM) |
//! | 2 | IIR: highest-priority interrupt; bits 7:6 set with FIFOs | FCR: FIFO enable, RX clear, trigger level |
//! | 3 | LCR | LCR |
//! | 4 | MCR | MCR, bits 4:0 (loopback, OUT2, OUT1, RTS, DTR) |
//! | 5 | LSR: DR, OE (cleared by the read), THRE and TEMT always set | ignored |
//! | 6 | MSR: lines + deltas (deltas cleared by the read) | ignored |
//! | 7 | SCR | SCR |
//!
//! Interrupt priority, as on the 16550A: receiver line status (overrun),
//! received data (or character timeout), THR empty, modem status.
//!
//! [`LineBuffer`] turns the transmitted byte stream into lines that are safe
//! to print on the host's console behind a VM-name prefix.
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

mod line;
mod uart;

#[cfg(test)]
mod tests;

pub use line::{LineBuffer, DEFAULT_LINE_MAX, REPLACEMENT};
pub use uart::*;
