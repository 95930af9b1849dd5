//! Fuzzes a vchan endpoint (`vchan::Vchan`) against a hostile peer that owns
//! the shared page: the page starts as arbitrary bytes (orders, indices,
//! live and notify bytes, grant list), optionally with a valid pair of ring
//! orders patched in so the I/O paths are reached, and between operations
//! the peer rewrites any word of the page or of a ring page.
//!
//! The endpoint (server or client, chosen by the input) is created with
//! `Vchan::attach` over word pages (`Arc<[AtomicU32]>`) and then driven
//! with up to 256 reads, writes, sends, receives, `data_ready`,
//! `buffer_space`, `peer_state` and shutdowns of arbitrary sizes.
//!
//! Invariants:
//! * No panic, no hang.
//! * `attach` fails exactly when the orders are invalid (per
//!   `vchan::Geometry::new`) or this end's indices are out of range.
//! * A read/recv returns at most what was asked, a write at most what was
//!   given; a stream read of a non-empty buffer returns `Ok(0)` only when
//!   the peer's live byte was 0; this end's published index moves by exactly
//!   what was transferred, and by nothing on an error.
//! * After `Corrupt` the endpoint is closed, its live byte is 0, and every
//!   later operation fails.
#![no_main]

use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use vchan::layout::*;
use vchan::{heap_page, Errno, Geometry, Notify, Port, Role, SharedMem, Vchan, VchanError};

type Page = Arc<[AtomicU32]>;

/// Valid geometries the input may force (the raw orders are mostly invalid).
const GEOMETRIES: [(u16, u16); 8] = [
    (10, 11),
    (11, 10),
    (11, 12),
    (12, 11),
    (12, 12),
    (13, 10),
    (14, 11),
    (15, 12),
];

#[derive(Arbitrary, Debug)]
enum Op {
    Read(u16),
    Write(u16),
    Send(u16),
    Recv(u16),
    DataReady,
    BufferSpace,
    PeerState,
    Shutdown,
    /// The peer stores a word in the shared page (offset / 4 modulo 1024).
    Poke(u16, u32),
    /// The peer stores a word in a ring page.
    PokeRing(u8, u16, u32),
    /// The peer produces or consumes on its side: adds to its index.
    PeerAdvance(bool, u16),
}

#[derive(Arbitrary, Debug)]
struct Input {
    client: bool,
    /// Index into `GEOMETRIES`, or raw orders from `page` when out of range.
    geometry: u8,
    /// This end's live byte and both notify bytes are set as after a
    /// handshake unless this is true.
    raw_header: bool,
    page: Vec<u8>,
    ops: Vec<Op>,
}

#[derive(Default)]
struct Kicks;

impl Notify for Kicks {
    fn notify(&self, _port: Port) -> Result<(), Errno> {
        Ok(())
    }
}

fn run(input: Input) {
    let page = heap_page();
    page.write_bytes(0, input.page.get(..PAGE_SIZE).unwrap_or(&input.page));
    if let Some(&(l, r)) = GEOMETRIES.get(usize::from(input.geometry)) {
        page.store_u32(LEFT_ORDER, u32::from(l) | u32::from(r) << 16);
    }
    if !input.raw_header {
        page.store_u32(
            CLI_LIVE,
            u32::from_le_bytes([1, 1, NOTIFY_WRITE, NOTIFY_WRITE]),
        );
    }
    let geo = Geometry::new(page.load_u16(LEFT_ORDER), page.load_u16(RIGHT_ORDER));
    let Ok(geo) = geo else {
        let r = Vchan::attach(Role::Server, page.clone(), vec![], vec![], 1, Kicks);
        assert!(r.is_err(), "attach accepted bad orders");
        return;
    };
    let pages = |n: usize| -> Vec<Page> { (0..n).map(|_| heap_page()).collect() };
    let (left, right) = (pages(geo.left_pages()), pages(geo.right_pages()));
    let ring_pages: Vec<Page> = left.iter().chain(&right).cloned().collect();
    let role = if input.client {
        Role::Client
    } else {
        Role::Server
    };
    let (my_live, peer_live, rd_cons, wr_prod, peer_rd, peer_wr) = match role {
        // (own live, peer live, my read cons, my write prod, peer's index
        // on my read ring (prod), peer's index on my write ring (cons))
        Role::Server => (
            SRV_LIVE, CLI_LIVE, LEFT_CONS, RIGHT_PROD, LEFT_PROD, RIGHT_CONS,
        ),
        Role::Client => (
            CLI_LIVE, SRV_LIVE, RIGHT_CONS, LEFT_PROD, RIGHT_PROD, LEFT_CONS,
        ),
    };
    let (rd_size, wr_size) = match role {
        Role::Server => (1u32 << geo.left_order(), 1u32 << geo.right_order()),
        Role::Client => (1u32 << geo.right_order(), 1u32 << geo.left_order()),
    };
    let in_range = page.load_u32(peer_rd).wrapping_sub(page.load_u32(rd_cons)) <= rd_size
        && page.load_u32(wr_prod).wrapping_sub(page.load_u32(peer_wr)) <= wr_size;
    let ep = Vchan::attach(role, page.clone(), left, right, 1, Kicks);
    assert_eq!(
        ep.is_ok(),
        in_range,
        "attach vs index check: {:?}",
        ep.as_ref().err()
    );
    let Ok(mut ep) = ep else { return };

    let mut buf = vec![0u8; 1 << 16];
    let data: Vec<u8> = (0..=u16::MAX).map(|i| i as u8).collect();
    let mut dead = false;
    let mut my_rd = page.load_u32(rd_cons);
    let mut my_wr = page.load_u32(wr_prod);
    for op in input.ops.into_iter().take(256) {
        let live_before = page.load_u8(peer_live);
        let (rd_before, wr_before) = (my_rd, my_wr);
        let result: Result<(usize, usize), VchanError> = match op {
            Op::Read(n) => {
                let n = usize::from(n);
                let r = ep.read(&mut buf[..n]);
                if let Ok(got) = r {
                    assert!(got <= n);
                    assert!(
                        got > 0 || n == 0 || live_before == LIVE_CLOSED,
                        "EOF while live"
                    );
                }
                r.map(|got| (got, 0))
            }
            Op::Recv(n) => {
                let n = usize::from(n);
                ep.recv(&mut buf[..n]).map(|()| (n, 0))
            }
            Op::Write(n) => {
                let n = usize::from(n);
                let r = ep.write(&data[..n]);
                if let Ok(put) = r {
                    assert!(put <= n && (put > 0 || n == 0));
                }
                r.map(|put| (0, put))
            }
            Op::Send(n) => {
                let n = usize::from(n);
                ep.send(&data[..n]).map(|()| (0, n))
            }
            Op::DataReady => ep.data_ready().map(|n| {
                assert!(n <= rd_size as usize);
                (0, 0)
            }),
            Op::BufferSpace => ep.buffer_space().map(|n| {
                assert!(n <= wr_size as usize);
                (0, 0)
            }),
            Op::PeerState => ep.peer_state().map(|_| (0, 0)),
            Op::Shutdown => {
                let was_open = ep.is_open();
                let _ = ep.shutdown();
                assert!(!ep.is_open());
                if was_open {
                    assert_eq!(page.load_u8(my_live), LIVE_CLOSED);
                }
                dead = true;
                continue;
            }
            Op::Poke(off, val) => {
                page.store_u32((usize::from(off) % (PAGE_SIZE / 4)) * 4, val);
                // The peer may overwrite our own published indices: track
                // what we publish, not what the page holds.
                continue;
            }
            Op::PokeRing(p, off, val) => {
                if !ring_pages.is_empty() {
                    let pg = &ring_pages[usize::from(p) % ring_pages.len()];
                    pg.store_u32((usize::from(off) % (PAGE_SIZE / 4)) * 4, val);
                }
                continue;
            }
            Op::PeerAdvance(on_read_ring, n) => {
                let off = if on_read_ring { peer_rd } else { peer_wr };
                page.store_u32(off, page.load_u32(off).wrapping_add(u32::from(n)));
                continue;
            }
        };
        match result {
            Ok((read, written)) => {
                assert!(!dead, "operation succeeded after shutdown");
                my_rd = rd_before.wrapping_add(read as u32);
                my_wr = wr_before.wrapping_add(written as u32);
                if read > 0 {
                    assert_eq!(page.load_u32(rd_cons), my_rd, "published cons");
                }
                if written > 0 {
                    assert_eq!(page.load_u32(wr_prod), my_wr, "published prod");
                }
            }
            Err(VchanError::Corrupt) => {
                if !dead {
                    assert!(!ep.is_open());
                    assert_eq!(page.load_u8(my_live), LIVE_CLOSED);
                }
                dead = true;
            }
            Err(VchanError::Shutdown) => assert!(dead),
            Err(e) => {
                assert!(!dead, "{e} after shutdown");
                assert!(matches!(
                    e,
                    VchanError::WouldBlock | VchanError::PeerClosed | VchanError::TooLarge
                ));
            }
        }
    }
}

fuzz_target!(|input: Input| run(input));
