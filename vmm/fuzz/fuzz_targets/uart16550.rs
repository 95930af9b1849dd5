//! Fuzzes the 16550A model (`uart16550::Uart16550`) with arbitrary sequences
//! of guest reads and writes and host input, and feeds everything it
//! transmits to `LineBuffer`s of three sizes (1, 7 and the default).
//!
//! Invariants:
//! * No panics.
//! * Each completed line (from `push` or `flush`) is at most the buffer size
//!   and holds no control character other than tab: no byte in 0x00–0x1F or
//!   0x7F except 0x09 (so no CR, LF or ESC) — the guarantee in line.rs.
//! * A write transmits exactly one byte (the value written) when it is a THR
//!   write (offset 0, DLAB clear) outside loopback, and nothing otherwise.
//! * `push_input` accepts a byte exactly when `rx_space()` was non-zero, and
//!   then `rx_len()` grows by one; the receive FIFO never exceeds
//!   `FIFO_SIZE`; LSR always reads with THRE and TEMT set.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use uart16550::{
    LineBuffer, Uart16550, DEFAULT_LINE_MAX, FIFO_SIZE, LCR_DLAB, LSR_TEMT, LSR_THRE, MCR_LOOP,
};

#[derive(Arbitrary, Debug)]
enum Op {
    Read(u8),
    Write(u8, u8),
    Push(u8),
    Flush,
    Reset,
}

fn check_line<const N: usize>(line: &[u8]) {
    assert!(
        line.len() <= N,
        "line of {} bytes from LineBuffer<{N}>",
        line.len()
    );
    assert!(
        line.iter().all(|&b| b == b'\t' || !(b < 0x20 || b == 0x7f)),
        "control character in line {line:?} from LineBuffer<{N}>"
    );
}

struct Lines {
    one: LineBuffer<1>,
    seven: LineBuffer<7>,
    default: LineBuffer<DEFAULT_LINE_MAX>,
}

impl Lines {
    fn push(&mut self, b: u8) {
        if let Some(l) = self.one.push(b) {
            check_line::<1>(l);
        }
        if let Some(l) = self.seven.push(b) {
            check_line::<7>(l);
        }
        if let Some(l) = self.default.push(b) {
            check_line::<DEFAULT_LINE_MAX>(l);
        }
        assert!(self.one.pending().len() <= 1);
        assert!(self.seven.pending().len() <= 7);
        assert!(self.default.pending().len() <= DEFAULT_LINE_MAX);
    }

    fn flush(&mut self) {
        if let Some(l) = self.one.flush() {
            check_line::<1>(l);
        }
        if let Some(l) = self.seven.flush() {
            check_line::<7>(l);
        }
        if let Some(l) = self.default.flush() {
            check_line::<DEFAULT_LINE_MAX>(l);
        }
        assert!(self.one.pending().is_empty());
        assert!(self.seven.pending().is_empty());
        assert!(self.default.pending().is_empty());
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut uart = Uart16550::new();
    let mut lines = Lines {
        one: LineBuffer::new(),
        seven: LineBuffer::new(),
        default: LineBuffer::new(),
    };
    for op in ops {
        match op {
            Op::Read(offset) => {
                let v = uart.read(offset);
                if offset & 7 == 5 {
                    assert_eq!(
                        v & (LSR_THRE | LSR_TEMT),
                        LSR_THRE | LSR_TEMT,
                        "LSR {v:#x} without THRE/TEMT"
                    );
                }
            }
            Op::Write(offset, value) => {
                let thr =
                    offset & 7 == 0 && uart.lcr() & LCR_DLAB == 0 && uart.mcr() & MCR_LOOP == 0;
                let mut sent = Vec::new();
                uart.write(offset, value, &mut |b| sent.push(b));
                if thr {
                    assert_eq!(
                        sent,
                        [value],
                        "THR write of {value:#x} transmitted {sent:?}"
                    );
                } else {
                    assert!(
                        sent.is_empty(),
                        "write to offset {offset} transmitted {sent:?}"
                    );
                }
                for b in sent {
                    lines.push(b);
                }
            }
            Op::Push(byte) => {
                let space = uart.rx_space();
                let len = uart.rx_len();
                let accepted = uart.push_input(byte);
                assert_eq!(accepted, space > 0, "push_input with rx_space {space}");
                assert_eq!(uart.rx_len(), len + usize::from(accepted));
            }
            Op::Flush => lines.flush(),
            Op::Reset => uart.reset(),
        }
        assert!(uart.rx_len() <= FIFO_SIZE, "rx_len {}", uart.rx_len());
        let _ = uart.irq_pending();
        let _ = uart.divisor();
        let _ = uart.ier();
    }
    lines.flush();
});
