//! The VMM's serial console: COM1 of the machine, driven through an seL4 I/O
//! port capability. Shared by every thread; each message is written whole
//! under a lock so lines from different VMs never interleave.

use core::fmt::{self, Write};
use sel4::CPtr;
use spin::Mutex;

const COM1: u16 = 0x3f8;
const LSR: u16 = 5;
const LSR_THRE: u8 = 0x20;

struct Port {
    cap: CPtr,
}

impl Port {
    fn put(&mut self, byte: u8) {
        // Wait (bounded) for the transmitter; a missing UART must not hang us.
        for _ in 0..10_000 {
            match sel4::ioport_in8(self.cap, COM1 + LSR) {
                Ok(lsr) if lsr & LSR_THRE == 0 => continue,
                _ => break,
            }
        }
        let _ = sel4::ioport_out8(self.cap, COM1, byte);
    }
}

impl Write for Port {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
        Ok(())
    }
}

static CONSOLE: Mutex<Option<Port>> = Mutex::new(None);

/// Starts the console on the I/O port capability `cap` (covering COM1).
pub fn init(cap: CPtr) {
    *lock() = Some(Port { cap });
}

/// Takes the console lock, yielding the CPU while another thread holds it
/// (threads of equal priority share one core).
fn lock() -> spin::MutexGuard<'static, Option<Port>> {
    loop {
        if let Some(g) = CONSOLE.try_lock() {
            return g;
        }
        sel4::yield_now();
    }
}

/// Writes formatted text; before [`init`] it goes to the kernel's debug
/// console instead.
pub fn write_fmt(args: fmt::Arguments) {
    let mut g = lock();
    match g.as_mut() {
        Some(port) => {
            let _ = port.write_fmt(args);
        }
        None => {
            let _ = DebugConsole.write_fmt(args);
        }
    }
}

/// Writes raw bytes as one unit (a guest's console line), replacing control
/// characters other than tab so a guest cannot drive the terminal.
pub fn write_line(prefix: fmt::Arguments, line: &[u8]) {
    let mut g = lock();
    if let Some(port) = g.as_mut() {
        let _ = port.write_fmt(prefix);
        for &b in line {
            let b = if b == b'\t' || (0x20..0x7f).contains(&b) {
                b
            } else {
                b'.'
            };
            port.put(b);
        }
        let _ = port.write_str("\n");
    }
}

struct DebugConsole;

impl Write for DebugConsole {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            sel4::debug_put_char(b);
        }
        Ok(())
    }
}

/// Prints a line prefixed with `cloister: `.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => {
        $crate::console::write_fmt(format_args!("cloister: {}\n", format_args!($($arg)*)))
    };
}
