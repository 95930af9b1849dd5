//! Bulk transfers, packets, close detection and notifications.

mod common;

use common::*;
use vchan::layout::*;
use vchan::{PeerState, SharedMem, Vchan, VchanError, Wait};

const SRV: u16 = 1;
const CLI: u16 = 2;
const PATH: &str = "data/vchan/bulk";
const MIB: usize = 1 << 20;

type Ep = Vchan<FakeMem, FakeNotify>;

/// Sends `total` bytes of `Stream::new(seed_out)` while receiving `total`
/// bytes, waiting only when neither direction can move; returns the FNV of
/// what was received after checking it byte for byte against `seed_in`.
fn pump(
    ep: &mut Ep,
    w: &mut impl Wait,
    seed_out: u64,
    seed_in: u64,
    total: usize,
    chunk: usize,
) -> u64 {
    let (mut out, mut expect) = (Stream::new(seed_out), Stream::new(seed_in));
    let mut pending: Vec<u8> = Vec::new();
    let (mut sent, mut got, mut hash) = (0usize, 0usize, FNV_INIT);
    let mut buf = vec![0u8; chunk];
    let mut want = vec![0u8; chunk];
    while sent < total || got < total {
        let mut moved = false;
        if sent < total {
            if pending.is_empty() {
                let n = chunk.min(total - sent);
                pending.resize(n, 0);
                out.fill(&mut pending);
            }
            match ep.write(&pending) {
                Ok(n) => {
                    pending.drain(..n);
                    sent += n;
                    moved = true;
                }
                Err(VchanError::WouldBlock) => {}
                Err(e) => panic!("write: {e}"),
            }
        }
        if got < total {
            let room = chunk.min(total - got);
            match ep.read(&mut buf[..room]) {
                Ok(0) => panic!("EOF after {got} bytes"),
                Ok(n) => {
                    expect.fill(&mut want[..n]);
                    assert_eq!(&buf[..n], &want[..n], "data at {got}");
                    hash = fnv(hash, &buf[..n]);
                    got += n;
                    moved = true;
                }
                Err(VchanError::WouldBlock) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
        if !moved {
            w.wait(ep.port()).unwrap();
        }
    }
    hash
}

fn expected_hash(seed: u64, total: usize) -> u64 {
    let mut v = vec![0u8; total];
    Stream::new(seed).fill(&mut v);
    fnv(FNV_INIT, &v)
}

fn bulk(read_min: usize, write_min: usize, orders: (usize, usize), total: usize, chunk: usize) {
    let f = Fabric::new();
    let mut srv: Ep = Vchan::server(&mut f.dom(SRV), CLI, PATH, read_min, write_min).unwrap();
    assert_eq!(
        (srv.read_size(), srv.write_size()),
        (1 << orders.0, 1 << orders.1)
    );
    let f2 = f.clone();
    let client = std::thread::spawn(move || {
        let mut cli: Ep = Vchan::client(&mut f2.dom(CLI), SRV, PATH).unwrap();
        let h = pump(&mut cli, &mut f2.waiter(CLI), 0xc11e, 0x5e7e, total, chunk);
        cli.close(&mut f2.dom(CLI)).unwrap();
        h
    });
    let hs = pump(&mut srv, &mut f.waiter(SRV), 0x5e7e, 0xc11e, total, chunk);
    let hc = client.join().unwrap();
    assert_eq!(hs, expected_hash(0xc11e, total));
    assert_eq!(hc, expected_hash(0x5e7e, total));
    // After the client's close, the server reads EOF.
    let mut b = [0u8; 1];
    let r = srv.read_blocking(&mut f.waiter(SRV), &mut b);
    assert_eq!(r, Ok(0));
    srv.close(&mut f.dom(SRV)).unwrap();
    assert_eq!((f.grants_of(SRV), f.pages_alive(SRV)), (0, 0));
}

#[test]
fn bulk_orders_10_and_11() {
    bulk(1024, 2048, (10, 11), 2 * MIB, 1500);
}

#[test]
fn bulk_orders_11_and_10() {
    bulk(2048, 1024, (11, 10), 2 * MIB, 777);
}

#[test]
fn bulk_orders_12_and_13() {
    bulk(4096, 8192, (12, 13), 2 * MIB, 5000);
}

#[test]
fn bulk_orders_14_and_11() {
    bulk(16384, 100, (14, 11), 3 * MIB, 65536);
}

#[test]
fn bulk_orders_13_and_14() {
    bulk(5000, 9000, (13, 14), 3 * MIB, 3333);
}

#[test]
fn blocking_helpers_move_megabytes() {
    let f = Fabric::new();
    let mut srv: Ep = Vchan::server(&mut f.dom(SRV), CLI, PATH, 4096, 4096).unwrap();
    let f2 = f.clone();
    let total = 2 * MIB;
    let t = std::thread::spawn(move || {
        let mut cli: Ep = Vchan::client(&mut f2.dom(CLI), SRV, PATH).unwrap();
        let mut data = vec![0u8; total];
        Stream::new(9).fill(&mut data);
        let mut w = f2.waiter(CLI);
        for part in data.chunks(10_000) {
            cli.write_all_blocking(&mut w, part).unwrap();
        }
        // Packets of 4 KiB: the whole ring.
        for i in 0..64u8 {
            cli.send_blocking(&mut w, &[i; 4096]).unwrap();
        }
        cli.close(&mut f2.dom(CLI)).unwrap();
    });
    let mut w = f.waiter(SRV);
    let mut got = vec![0u8; total];
    let mut at = 0;
    while at < total {
        let n = srv.read_blocking(&mut w, &mut got[at..]).unwrap();
        assert_ne!(n, 0);
        at += n;
    }
    let mut want = vec![0u8; total];
    Stream::new(9).fill(&mut want);
    assert!(got == want);
    let mut pkt = [0u8; 4096];
    for i in 0..64u8 {
        srv.recv_blocking(&mut w, &mut pkt).unwrap();
        assert!(pkt.iter().all(|&b| b == i));
    }
    assert_eq!(srv.read_blocking(&mut w, &mut pkt), Ok(0));
    t.join().unwrap();
    srv.close(&mut f.dom(SRV)).unwrap();
}

/// One direction of an attached pair: writes of `size` bytes (partial
/// when the ring is full), reads of another size, all checked.
struct Dir {
    out: Stream,
    inp: Stream,
    pending: Vec<u8>,
    moved: usize,
}

impl Dir {
    fn new(seed: u64) -> Self {
        Dir {
            out: Stream::new(seed),
            inp: Stream::new(seed),
            pending: Vec::new(),
            moved: 0,
        }
    }

    fn step(
        &mut self,
        w: &mut Vchan<Page, Counter>,
        r: &mut Vchan<Page, Counter>,
        wsize: usize,
        rsize: usize,
    ) {
        if self.pending.is_empty() {
            self.pending.resize(wsize, 0);
            self.out.fill(&mut self.pending);
        }
        match w.write(&self.pending) {
            Ok(n) => drop(self.pending.drain(..n)),
            Err(VchanError::WouldBlock) => {}
            Err(e) => panic!("{e}"),
        }
        let mut buf = vec![0u8; rsize];
        let mut want = vec![0u8; rsize];
        match r.read(&mut buf) {
            Ok(n) => {
                assert_ne!(n, 0);
                self.inp.fill(&mut want[..n]);
                assert_eq!(&buf[..n], &want[..n]);
                self.moved += n;
            }
            Err(VchanError::WouldBlock) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

/// Indices that wrap at 2^32 during the transfer, single-threaded.
#[test]
fn indices_wrap_around_u32() {
    let start = u32::MAX - 3000;
    for (l, r) in [(10, 11), (11, 10), (12, 14), (13, 12), (14, 14)] {
        let ((mut srv, mut cli), page, _, _) = attached_pair(l, r, start);
        let (mut left, mut right) = (Dir::new(1), Dir::new(2));
        let mut sizes = Stream::new(3);
        let total = 512 * 1024;
        while left.moved < total || right.moved < total {
            let mut s = [0u8; 4];
            sizes.fill(&mut s);
            let size = |b: u8| 1 + (usize::from(b) * 97) % 20000;
            left.step(&mut cli, &mut srv, size(s[0]), size(s[1]));
            right.step(&mut srv, &mut cli, size(s[2]), size(s[3]));
        }
        for (prod, cons, d) in [
            (LEFT_PROD, LEFT_CONS, &left),
            (RIGHT_PROD, RIGHT_CONS, &right),
        ] {
            let c = page.load_u32(cons);
            assert_eq!(c, start.wrapping_add(d.moved as u32));
            assert!(c < start, "index wrapped");
            assert!(page.load_u32(prod).wrapping_sub(c) <= 1 << 14);
        }
    }
}

#[test]
fn packets_are_all_or_nothing() {
    let ((mut srv, mut cli), page, sn, cn) = attached_pair(10, 11, 0);
    // Too large for the ring, ever.
    assert_eq!(cli.send(&[0u8; 1025]), Err(VchanError::TooLarge));
    assert_eq!(srv.recv(&mut [0u8; 1025]), Err(VchanError::TooLarge));
    assert_eq!(srv.send(&[0u8; 2049]), Err(VchanError::TooLarge));
    // Fill to 1000 of 1024: a 100-byte packet does not fit and writes nothing.
    cli.send(&[1u8; 1000]).unwrap();
    assert_eq!(cli.send(&[2u8; 100]), Err(VchanError::WouldBlock));
    assert_eq!(page.load_u32(LEFT_PROD), 1000);
    assert_eq!(cli.buffer_space(), Ok(24));
    // A partial packet is not received and consumes nothing.
    assert_eq!(srv.recv(&mut [0u8; 1001]), Err(VchanError::WouldBlock));
    assert_eq!(srv.data_ready(), Ok(1000));
    let mut a = [0u8; 600];
    srv.recv(&mut a).unwrap();
    assert!(a.iter().all(|&b| b == 1));
    // The client asked to hear about reads: it was kicked.
    assert!(sn.get() >= 1);
    // Now the packet fits, across the end of the ring.
    cli.send(&[2u8; 100]).unwrap();
    let mut b = [0u8; 500];
    srv.recv(&mut b).unwrap();
    assert!(b[..400].iter().all(|&x| x == 1) && b[400..].iter().all(|&x| x == 2));
    assert_eq!(srv.data_ready(), Ok(0));
    // Empty packets are no-ops.
    cli.send(&[]).unwrap();
    srv.recv(&mut []).unwrap();
    let _ = cn;
}

#[test]
fn close_is_detected_after_the_data() {
    let ((mut srv, mut cli), page, _, cn) = attached_pair(11, 12, 7);
    cli.write(b"last words").unwrap();
    let kicks = cn.get();
    cli.shutdown().unwrap();
    assert_eq!(page.load_u8(CLI_LIVE), 0);
    assert_eq!(cn.get(), kicks + 1, "close always notifies");
    assert_eq!(srv.peer_state(), Ok(PeerState::Closed));
    // Packet read of more than is left: the peer is gone.
    assert_eq!(srv.recv(&mut [0u8; 11]), Err(VchanError::PeerClosed));
    let mut buf = [0u8; 64];
    assert_eq!(srv.read(&mut buf), Ok(10));
    assert_eq!(&buf[..10], b"last words");
    assert_eq!(srv.read(&mut buf), Ok(0));
    assert_eq!(srv.read(&mut buf), Ok(0));
    assert_eq!(srv.write(b"?"), Err(VchanError::PeerClosed));
    assert_eq!(srv.send(b"?"), Err(VchanError::PeerClosed));
    // The closed end refuses further use.
    assert_eq!(cli.write(b"x"), Err(VchanError::Shutdown));
    assert_eq!(cli.read(&mut buf), Err(VchanError::Shutdown));
    assert!(!cli.is_open() && srv.is_open());
}

#[test]
fn peers_are_kicked_only_when_they_asked() {
    let ((mut srv, mut cli), page, sn, cn) = attached_pair(12, 12, 0);
    // Start with no requests on either side.
    page.store_u32(CLI_LIVE, u32::from_le_bytes([1, 1, 0, 0]));
    let mut buf = [0u8; 100];
    cli.write(&[1; 10]).unwrap();
    assert_eq!(cn.get(), 0, "nobody waits: no kick");
    // The server drains the ring and asks to hear about the next write.
    assert_eq!(srv.read(&mut buf), Ok(10));
    assert_eq!(srv.read(&mut buf), Err(VchanError::WouldBlock));
    assert_eq!(page.load_u8(CLI_NOTIFY), NOTIFY_WRITE);
    cli.write(&[2; 10]).unwrap();
    assert_eq!(cn.get(), 1);
    assert_eq!(page.load_u8(CLI_NOTIFY), 0, "request consumed");
    cli.write(&[3; 10]).unwrap();
    assert_eq!(cn.get(), 1);
    // A full ring: the writer asks to hear about reads.
    assert_eq!(srv.read(&mut buf), Ok(20));
    assert_eq!(sn.get(), 0);
    let big = vec![0u8; 4096];
    assert_eq!(cli.write(&big), Ok(4096));
    assert_eq!(cli.write(&big), Err(VchanError::WouldBlock));
    assert_eq!(page.load_u8(SRV_NOTIFY), NOTIFY_READ);
    assert_eq!(srv.read(&mut buf), Ok(100));
    assert_eq!(sn.get(), 1);
    assert_eq!(srv.read(&mut buf), Ok(100));
    assert_eq!(sn.get(), 1);
}

/// A page view that runs a hook (the peer acting) just before its first
/// atomic OR: the moment an endpoint posts a notification request.
struct RacyPage {
    page: Page,
    hook: Hook,
}

type Hook = std::rc::Rc<std::cell::RefCell<Option<Box<dyn FnOnce()>>>>;

impl SharedMem for RacyPage {
    fn len(&self) -> usize {
        self.page.len()
    }
    fn load_u32(&self, o: usize) -> u32 {
        self.page.load_u32(o)
    }
    fn store_u32(&self, o: usize, v: u32) {
        self.page.store_u32(o, v)
    }
    fn fetch_or_u32(&self, o: usize, b: u32) -> u32 {
        let hook = self.hook.borrow_mut().take();
        if let Some(h) = hook {
            h();
        }
        self.page.fetch_or_u32(o, b)
    }
    fn fetch_and_u32(&self, o: usize, b: u32) -> u32 {
        self.page.fetch_and_u32(o, b)
    }
    fn compare_exchange_u32(&self, o: usize, c: u32, n: u32) -> Result<u32, u32> {
        self.page.compare_exchange_u32(o, c, n)
    }
}

/// The peer acts between our "not enough" and our notification request; it
/// saw no request, so it sends no kick: we must notice by re-reading.
#[test]
fn progress_racing_the_notify_request_is_not_missed() {
    for reading in [true, false] {
        let ((_, mut cli), page, _, cn) = attached_pair(10, 11, 0);
        page.store_u32(CLI_LIVE, u32::from_le_bytes([1, 1, 0, 0]));
        if !reading {
            // Fill the server's write ring; the client will drain it.
            page.store_u32(RIGHT_PROD, 2048);
        }
        let hook_slot = Hook::default();
        let racy = RacyPage {
            page: page.clone(),
            hook: hook_slot.clone(),
        };
        let mut srv = Vchan::attach(
            vchan::Role::Server,
            racy,
            vec![],
            vec![],
            1,
            Counter::default(),
        )
        .unwrap();
        let hook: Box<dyn FnOnce()> = if reading {
            Box::new(move || assert_eq!(cli.write(b"hello"), Ok(5)))
        } else {
            Box::new(move || assert_eq!(cli.read(&mut [0u8; 2048]), Ok(2048)))
        };
        *hook_slot.borrow_mut() = Some(hook);
        if reading {
            let mut buf = [0u8; 8];
            assert_eq!(srv.read(&mut buf), Ok(5));
        } else {
            assert_eq!(srv.write(b"more"), Ok(4));
        }
        assert_eq!(cn.get(), 0, "the peer had no request to honour");
    }
}
