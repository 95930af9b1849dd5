//! COM1 16550 UART console and the `print!`/`println!` macros.
//!
//! Writes wait a bounded time for the transmitter to be ready and then write
//! anyway, so output keeps flowing to a VMM model whose line-status register is
//! incomplete.

use core::convert::Infallible;
use core::fmt;

use x86_64::instructions::port::Port;

/// I/O base of COM1.
pub const COM1: u16 = 0x3f8;
/// Divisor for 115200 baud from the 1.8432 MHz UART clock.
const DIVISOR_115200: u16 = 1;
/// Line-status polls before writing regardless.
const TX_SPINS: u32 = 100_000;
/// Line-status bit: transmit holding register empty.
const LSR_THRE: u8 = 1 << 5;

/// A 16550 UART at an I/O base. Writing is stateless, so any number of these may
/// exist; the console lock only keeps lines from interleaving.
pub struct SerialPort {
    base: u16,
}

impl SerialPort {
    /// The UART at COM1.
    pub const fn com1() -> Self {
        SerialPort { base: COM1 }
    }

    fn out(&self, reg: u16, value: u8) {
        let mut port: Port<u8> = Port::new(self.base + reg);
        // SAFETY: writes to the UART's own registers; no memory effects.
        unsafe { port.write(value) }
    }

    fn inb(&self, reg: u16) -> u8 {
        let mut port: Port<u8> = Port::new(self.base + reg);
        // SAFETY: reads the UART's own registers; no memory effects.
        unsafe { port.read() }
    }

    /// Programs 115200 baud, 8N1, FIFOs on, interrupts off.
    pub fn init(&mut self) {
        self.out(1, 0x00); // IER: no interrupts
        self.out(3, 0x80); // LCR: DLAB on
        self.out(0, DIVISOR_115200 as u8);
        self.out(1, (DIVISOR_115200 >> 8) as u8);
        self.out(3, 0x03); // LCR: 8 data bits, no parity, 1 stop bit
        self.out(2, 0xc7); // FCR: enable and clear FIFOs, 14-byte trigger
        self.out(4, 0x03); // MCR: DTR, RTS
    }

    /// Sends one byte.
    pub fn write_byte(&mut self, byte: u8) {
        for _ in 0..TX_SPINS {
            if self.inb(5) & LSR_THRE != 0 {
                break;
            }
            core::hint::spin_loop();
        }
        self.out(0, byte);
    }
}

impl embedded_io::ErrorType for SerialPort {
    type Error = Infallible;
}

impl embedded_io::Write for SerialPort {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        for &b in buf {
            self.write_byte(b);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Text output: `\n` goes out as `\r\n`, as a serial terminal expects.
impl fmt::Write for SerialPort {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.write_byte(b'\r');
            }
            self.write_byte(b);
        }
        Ok(())
    }
}

/// The shared console.
static CONSOLE: spin::Mutex<SerialPort> = spin::Mutex::new(SerialPort::com1());

/// Initialises COM1; called by the runtime before anything is printed.
pub(crate) fn init() {
    CONSOLE.lock().init();
}

/// Writes formatted text to the console (used by [`print!`](crate::print)).
#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    use fmt::Write;
    // Output errors cannot be reported anywhere else; SerialPort never fails.
    let _ = CONSOLE.lock().write_fmt(args);
}

/// Prints to the COM1 console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::serial::_print(format_args!($($arg)*)) };
}

/// Prints a line to the COM1 console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::serial::_print(format_args!("{}\n", format_args!($($arg)*))) };
}
