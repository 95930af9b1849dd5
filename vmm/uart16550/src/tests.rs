//! Unit and property tests for the UART model and the line gatherer.

use std::collections::VecDeque;

use proptest::prelude::*;

use crate::*;

fn write(u: &mut Uart16550, off: u8, v: u8) -> Vec<u8> {
    let mut sent = Vec::new();
    u.write(off, v, &mut |b| sent.push(b));
    sent
}

#[test]
fn reset_state() {
    let mut u = Uart16550::new();
    assert_eq!(u.read(reg::LSR), LSR_THRE | LSR_TEMT);
    assert_eq!(u.read(reg::IIR_FCR), IIR_NONE);
    assert_eq!(u.read(reg::MSR), MSR_DCD | MSR_DSR | MSR_CTS);
    assert_eq!(u.read(reg::IER), 0);
    assert_eq!(u.read(reg::MCR), 0);
    assert_eq!(u.read(reg::RBR_THR), 0);
    assert_eq!(u.divisor(), 12);
    assert!(!u.irq_pending());
    assert_eq!(u, Uart16550::default());
}

#[test]
fn transmit_goes_to_sink_and_thr_stays_empty() {
    let mut u = Uart16550::new();
    assert_eq!(write(&mut u, reg::RBR_THR, b'h'), b"h");
    assert_eq!(write(&mut u, reg::RBR_THR, b'i'), b"i");
    assert_eq!(
        u.read(reg::LSR) & (LSR_THRE | LSR_TEMT),
        LSR_THRE | LSR_TEMT
    );
}

#[test]
fn divisor_latch() {
    let mut u = Uart16550::new();
    write(&mut u, reg::IER, 0x05);
    write(&mut u, reg::LCR, 0x83);
    assert!(write(&mut u, reg::RBR_THR, 0x01).is_empty(), "DLL, not THR");
    write(&mut u, reg::IER, 0x00);
    assert_eq!(u.read(reg::RBR_THR), 0x01);
    assert_eq!(u.read(reg::IER), 0x00);
    assert_eq!(u.divisor(), 1);
    write(&mut u, reg::LCR, 0x03);
    assert_eq!(u.read(reg::IER), 0x05, "IER untouched by DLM writes");
    assert_eq!(u.lcr(), 0x03);
    write(&mut u, reg::IER, 0xFF);
    assert_eq!(u.read(reg::IER), 0x0F);
}

#[test]
fn thr_empty_interrupt() {
    let mut u = Uart16550::new();
    write(&mut u, reg::MCR, MCR_OUT2);
    write(&mut u, reg::IER, IER_THRI);
    assert!(u.irq_pending());
    assert_eq!(u.read(reg::IIR_FCR), IIR_THRI);
    assert!(!u.irq_pending(), "reading IIR acknowledges THRE");
    assert_eq!(u.read(reg::IIR_FCR), IIR_NONE);
    write(&mut u, reg::RBR_THR, b'x');
    assert!(u.irq_pending(), "THR empty again after the write");
    // OUT2 gates the line.
    write(&mut u, reg::MCR, 0);
    assert!(!u.irq_pending());
    assert_eq!(u.read(reg::IIR_FCR), IIR_THRI);

    // Linux's UART_BUG_THRE probe: IER=THRI, read IIR, IER=0, IER=THRI, read IIR.
    let mut u = Uart16550::new();
    write(&mut u, reg::IER, IER_THRI);
    assert_eq!(u.read(reg::IIR_FCR) & 0x0F, IIR_THRI);
    write(&mut u, reg::IER, 0);
    write(&mut u, reg::IER, IER_THRI);
    assert_eq!(u.read(reg::IIR_FCR) & 0x0F, IIR_THRI);
    // Rewriting IER with THRI already on does not re-raise it.
    write(&mut u, reg::IER, IER_THRI | IER_RDI);
    assert_eq!(u.read(reg::IIR_FCR), IIR_NONE);
}

#[test]
fn receive_without_fifo() {
    let mut u = Uart16550::new();
    write(&mut u, reg::MCR, MCR_OUT2);
    write(&mut u, reg::IER, IER_RDI);
    assert_eq!(u.rx_space(), 1);
    assert!(u.push_input(b'a'));
    assert!(!u.push_input(b'b'), "one-byte holding register");
    assert_eq!(u.read(reg::LSR) & LSR_DR, LSR_DR);
    assert_eq!(u.read(reg::IIR_FCR), IIR_RDI);
    assert!(u.irq_pending());
    assert_eq!(u.read(reg::RBR_THR), b'a');
    assert_eq!(u.read(reg::LSR) & LSR_DR, 0);
    assert!(!u.irq_pending());
    assert_eq!(u.read(reg::IIR_FCR), IIR_NONE);
}

#[test]
fn receive_fifo_and_trigger_levels() {
    let mut u = Uart16550::new();
    write(&mut u, reg::IIR_FCR, FCR_ENABLE);
    assert_eq!(u.read(reg::IIR_FCR), IIR_FIFO | IIR_NONE);
    write(&mut u, reg::IER, IER_RDI);
    for i in 0..16 {
        assert!(u.push_input(i));
    }
    assert!(!u.push_input(16), "FIFO full");
    assert_eq!(u.rx_space(), 0);
    assert_eq!(u.read(reg::LSR) & LSR_OE, 0, "host input never overruns");
    assert_eq!(u.read(reg::IIR_FCR), IIR_FIFO | IIR_RDI);
    for i in 0..16 {
        assert_eq!(u.read(reg::RBR_THR), i);
    }
    assert_eq!(u.read(reg::LSR) & LSR_DR, 0);

    // Trigger level 14: below it the (instant) character timeout fires.
    write(&mut u, reg::IIR_FCR, FCR_ENABLE | 0xC0);
    for i in 0..3 {
        u.push_input(i);
    }
    assert_eq!(u.read(reg::IIR_FCR), IIR_FIFO | IIR_CTI);
    for i in 3..14 {
        u.push_input(i);
    }
    assert_eq!(u.read(reg::IIR_FCR), IIR_FIFO | IIR_RDI);
    // Clear RX.
    write(
        &mut u,
        reg::IIR_FCR,
        FCR_ENABLE | FCR_CLEAR_RX | FCR_CLEAR_TX,
    );
    assert_eq!(u.rx_len(), 0);
    assert_eq!(u.read(reg::LSR) & LSR_DR, 0);

    // Disabling FIFOs clears them; trigger bits are ignored without enable.
    u.push_input(1);
    write(&mut u, reg::IIR_FCR, 0xC0);
    assert_eq!(u.rx_len(), 0);
    assert_eq!(u.read(reg::IIR_FCR), IIR_NONE);
    assert_eq!(u.rx_space(), 1);
}

#[test]
fn linux_probe_sequence() {
    let mut u = Uart16550::new();
    // Scratch and IER tests.
    write(&mut u, reg::SCR, 0xA5);
    assert_eq!(u.read(reg::SCR), 0xA5);
    write(&mut u, reg::IER, 0);
    assert_eq!(u.read(reg::IER) & 0x0F, 0);
    write(&mut u, reg::IER, 0x0F);
    assert_eq!(u.read(reg::IER) & 0x0F, 0x0F);
    write(&mut u, reg::IER, 0);
    // Loopback test: MCR = LOOP | RTS | OUT2 -> MSR lines CTS | DCD.
    write(&mut u, reg::MCR, MCR_LOOP | 0x0A);
    assert_eq!(u.read(reg::MSR) & 0xF0, 0x90);
    write(&mut u, reg::MCR, 0);
    // FIFO type: 16550A (IIR bits 7:6 = 3), and not a 16750 (bit 5 never set).
    write(&mut u, reg::IIR_FCR, FCR_ENABLE);
    assert_eq!(u.read(reg::IIR_FCR) >> 6, 3);
    write(&mut u, reg::IIR_FCR, FCR_ENABLE | 0x20);
    assert_eq!((u.read(reg::IIR_FCR) >> 5) & 1, 0);
    write(&mut u, reg::LCR, 0xBF);
    assert_ne!(u.read(2), 0, "no EFR at offset 2");
}

#[test]
fn loopback_behaves_like_hardware() {
    let mut u = Uart16550::new();
    write(&mut u, reg::IIR_FCR, FCR_ENABLE);
    write(&mut u, reg::IER, IER_RDI | IER_RLSI | IER_MSI);
    write(&mut u, reg::MCR, MCR_LOOP | MCR_OUT2);
    assert!(!u.push_input(b'z'), "receiver disconnected from the line");
    assert_eq!(u.rx_space(), 0);
    for i in 0..16u8 {
        assert!(
            write(&mut u, reg::RBR_THR, i).is_empty(),
            "nothing leaves in loopback"
        );
    }
    write(&mut u, reg::RBR_THR, 99);
    // Overrun outranks received data; the loopback IRQ line stays quiet.
    assert_eq!(u.read(reg::IIR_FCR), IIR_FIFO | IIR_RLSI);
    assert!(!u.irq_pending());
    let lsr = u.read(reg::LSR);
    assert_eq!(lsr & (LSR_OE | LSR_DR), LSR_OE | LSR_DR);
    assert_eq!(u.read(reg::LSR) & LSR_OE, 0, "OE cleared by reading LSR");
    for i in 0..16u8 {
        assert_eq!(u.read(reg::RBR_THR), i, "FIFO contents kept on overrun");
    }

    // Modem lines follow MCR, with deltas.
    let _ = u.read(reg::MSR);
    write(&mut u, reg::MCR, MCR_LOOP | MCR_RTS | MCR_DTR | MCR_OUT1);
    let msr = u.read(reg::MSR);
    assert_eq!(msr & 0xF0, MSR_CTS | MSR_DSR | MSR_RI);
    assert_eq!(msr & 0x0F, MSR_DCTS | MSR_DDSR | MSR_DDCD);
    assert_eq!(u.read(reg::MSR) & 0x0F, 0, "deltas cleared by reading");
    write(&mut u, reg::MCR, MCR_LOOP);
    assert_eq!(u.read(reg::IIR_FCR), IIR_FIFO | IIR_MSI);
    let msr = u.read(reg::MSR);
    assert_eq!(msr & MSR_TERI, MSR_TERI, "RI fell");
    assert_eq!(u.read(reg::IIR_FCR), IIR_FIFO | IIR_NONE);

    // Leaving loopback: transmit resumes, the lines read as connected again.
    write(&mut u, reg::MCR, MCR_OUT2);
    assert_eq!(write(&mut u, reg::RBR_THR, b'k'), b"k");
    assert_eq!(u.read(reg::MSR) & 0xF0, MSR_DCD | MSR_DSR | MSR_CTS);
}

#[test]
fn loopback_overrun_without_fifo_overwrites() {
    let mut u = Uart16550::new();
    write(&mut u, reg::MCR, MCR_LOOP);
    write(&mut u, reg::RBR_THR, 1);
    write(&mut u, reg::RBR_THR, 2);
    assert_eq!(u.read(reg::LSR) & (LSR_OE | LSR_DR), LSR_OE | LSR_DR);
    assert_eq!(u.read(reg::RBR_THR), 2);
}

#[test]
fn offsets_wrap_modulo_8() {
    let mut u = Uart16550::new();
    write(&mut u, 15, 0x42);
    assert_eq!(u.read(7), 0x42);
    assert_eq!(u.read(0xFF), 0x42);
    assert_eq!(write(&mut u, 8, b'q'), b"q");
    // LSR/MSR writes are ignored.
    write(&mut u, reg::LSR, 0);
    write(&mut u, reg::MSR, 0);
    assert_eq!(u.read(reg::LSR), LSR_THRE | LSR_TEMT);
}

#[test]
fn reset_clears_everything() {
    let mut u = Uart16550::new();
    write(&mut u, reg::IIR_FCR, FCR_ENABLE);
    write(&mut u, reg::MCR, 0x1F);
    u.push_input(3);
    write(&mut u, reg::SCR, 9);
    u.reset();
    assert_eq!(u, Uart16550::new());
}

// ---------------------------------------------------------------- LineBuffer

fn lines<const N: usize>(lb: &mut LineBuffer<N>, input: &[u8]) -> Vec<Vec<u8>> {
    input
        .iter()
        .filter_map(|&b| lb.push(b).map(<[u8]>::to_vec))
        .collect()
}

#[test]
fn line_buffer_basics() {
    let mut lb = LineBuffer::<16>::new();
    assert_eq!(
        lines(&mut lb, b"hello\r\nworld\n\nx"),
        vec![b"hello".to_vec(), b"world".to_vec(), vec![]]
    );
    assert_eq!(lb.pending(), b"x");
    assert_eq!(lb.flush(), Some(&b"x"[..]));
    assert_eq!(lb.flush(), None);
    assert_eq!(lb.pending(), b"");
}

#[test]
fn line_buffer_splits_overlong_lines() {
    let mut lb = LineBuffer::<4>::new();
    assert_eq!(
        lines(&mut lb, b"abcdefgh\nij\r\nklmn\r\nop"),
        vec![
            b"abcd".to_vec(),
            b"efgh".to_vec(),
            b"ij".to_vec(),
            b"klmn".to_vec()
        ]
    );
    assert_eq!(lb.pending(), b"op");
    let mut one = LineBuffer::<1>::new();
    assert_eq!(
        lines(&mut one, b"ab\n\n"),
        vec![b"a".to_vec(), b"b".to_vec(), vec![]]
    );
}

#[test]
fn line_buffer_neutralises_control_characters() {
    let mut lb = LineBuffer::<64>::new();
    let got = lines(&mut lb, b"\x1b[2J\rfake\x07 \tok \xc3\xa9\x7f\n");
    assert_eq!(got, vec![b"?[2Jfake? \tok \xc3\xa9?".to_vec()]);
}

// ---------------------------------------------------------------- properties

#[derive(Clone, Debug)]
enum Op {
    Read(u8),
    Write(u8, u8),
    Push(u8),
    Reset,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u8>().prop_map(Op::Read),
        4 => (0u8..8, any::<u8>()).prop_map(|(o, v)| Op::Write(o, v)),
        1 => (8u8..=255, any::<u8>()).prop_map(|(o, v)| Op::Write(o, v)),
        3 => any::<u8>().prop_map(Op::Push),
        1 => Just(Op::Reset),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    /// Any guest/host interleaving keeps the model's invariants, and data
    /// flows in order through a reference model of transmit and receive.
    #[test]
    fn uart_invariants_and_data_order(ops in proptest::collection::vec(op(), 0..200)) {
        let mut u = Uart16550::new();
        let mut rx_model: VecDeque<u8> = VecDeque::new();
        for op in ops {
            let dlab = u.lcr() & LCR_DLAB != 0;
            let lp = u.mcr() & MCR_LOOP != 0;
            let fifo = u.read_iir_peek() & IIR_FIFO != 0;
            let cap = if fifo { 16 } else { 1 };
            match op {
                Op::Read(off) => {
                    let v = u.read(off);
                    if off & 7 == 0 && !dlab {
                        prop_assert_eq!(v, rx_model.pop_front().unwrap_or(0));
                    }
                    if off & 7 == 2 {
                        prop_assert!(matches!(v & 0x0F, 0x00 | 0x01 | 0x02 | 0x04 | 0x06 | 0x0C));
                        prop_assert_eq!(v & 0x30, 0);
                    }
                    if off & 7 == 5 {
                        prop_assert_eq!(v & (LSR_THRE | LSR_TEMT), LSR_THRE | LSR_TEMT);
                        prop_assert_eq!(v & LSR_DR != 0, !rx_model.is_empty());
                    }
                }
                Op::Write(off, v) => {
                    let mut sent = Vec::new();
                    u.write(off, v, &mut |b| sent.push(b));
                    let is_thr = off & 7 == 0 && !dlab;
                    if is_thr && !lp {
                        prop_assert_eq!(sent, vec![v]);
                    } else {
                        prop_assert!(sent.is_empty());
                    }
                    if is_thr && lp {
                        if rx_model.len() < cap {
                            rx_model.push_back(v);
                        } else if !fifo {
                            rx_model.clear();
                            rx_model.push_back(v);
                        }
                    }
                    if off & 7 == 2 {
                        let now_fifo = v & FCR_ENABLE != 0;
                        if now_fifo != fifo || (now_fifo && v & FCR_CLEAR_RX != 0) {
                            rx_model.clear();
                        }
                    }
                }
                Op::Push(b) => {
                    let ok = u.push_input(b);
                    prop_assert_eq!(ok, !lp && rx_model.len() < cap);
                    if ok {
                        rx_model.push_back(b);
                    }
                }
                Op::Reset => {
                    u.reset();
                    rx_model.clear();
                }
            }
            prop_assert_eq!(u.rx_len(), rx_model.len());
            prop_assert!(u.rx_len() <= FIFO_SIZE);
            if u.irq_pending() {
                prop_assert_eq!(u.mcr() & (MCR_OUT2 | MCR_LOOP), MCR_OUT2);
                prop_assert_eq!(u.read_iir_peek() & IIR_NONE, 0);
                prop_assert_ne!(u.ier(), 0);
            }
        }
    }

    #[test]
    fn line_buffer_reassembles(input in proptest::collection::vec(any::<u8>(), 0..400)) {
        const N: usize = 8;
        let mut lb = LineBuffer::<N>::new();
        let mut out: Vec<Vec<u8>> = Vec::new();
        for &b in &input {
            if let Some(l) = lb.push(b) {
                prop_assert!(l.len() <= N);
                prop_assert!(l.iter().all(|&c| c == b'\t' || (c >= 0x20 && c != 0x7F)));
                out.push(l.to_vec());
            }
        }
        let rest = lb.flush().map(<[u8]>::to_vec);
        // Every printable input byte comes out, in order, as one byte.
        let expected: Vec<u8> = input
            .iter()
            .filter(|&&b| b != b'\r' && b != b'\n')
            .map(|&b| if b != b'\t' && (b < 0x20 || b == 0x7F) { REPLACEMENT } else { b })
            .collect();
        let got: Vec<u8> = out.iter().flatten().chain(rest.iter().flatten()).copied().collect();
        prop_assert_eq!(got, expected);
        // Against a reference model of the documented splitting rules.
        let mut model: Vec<Vec<u8>> = Vec::new();
        let mut cur = Vec::new();
        let mut split = false;
        for &b in &input {
            match b {
                b'\r' => {}
                b'\n' => {
                    if !(split && cur.is_empty()) {
                        model.push(std::mem::take(&mut cur));
                    }
                    split = false;
                }
                _ => {
                    cur.push(if b != b'\t' && (b < 0x20 || b == 0x7F) { REPLACEMENT } else { b });
                    split = false;
                    if cur.len() == N {
                        model.push(std::mem::take(&mut cur));
                        split = true;
                    }
                }
            }
        }
        prop_assert_eq!(out, model);
        prop_assert_eq!(rest, (!cur.is_empty()).then_some(cur));
    }
}

impl Uart16550 {
    /// IIR without the read side effect, for tests.
    fn read_iir_peek(&self) -> u8 {
        self.clone().read(reg::IIR_FCR)
    }
}

#[test]
fn line_buffer_default_size() {
    let mut lb: LineBuffer = LineBuffer::new();
    let long = [b'a'; DEFAULT_LINE_MAX + 1];
    let got = lines(&mut lb, &long);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].len(), DEFAULT_LINE_MAX);
    assert_eq!(lb.pending(), b"a");
}
