//! A peer that scribbles on the shared page after connecting.

mod common;

use common::*;
use vchan::layout::*;
use vchan::{heap_page, PeerState, Role, SharedMem, Vchan, VchanError};

/// The endpoint reported corruption, shut itself down (live byte 0, kick)
/// and refuses everything afterwards.
fn assert_dead(
    ep: &mut Vchan<Page, Counter>,
    page: &Page,
    live: usize,
    kicks: &Counter,
    before: usize,
) {
    assert!(!ep.is_open());
    assert_eq!(page.load_u8(live), LIVE_CLOSED);
    assert_eq!(kicks.get(), before + 1, "peer notified of the close");
    let mut b = [0u8; 8];
    assert_eq!(ep.read(&mut b), Err(VchanError::Corrupt));
    assert_eq!(ep.write(&b), Err(VchanError::Corrupt));
    assert_eq!(ep.send(&b), Err(VchanError::Corrupt));
    assert_eq!(ep.recv(&mut b), Err(VchanError::Corrupt));
    assert_eq!(ep.data_ready(), Err(VchanError::Corrupt));
    assert_eq!(ep.buffer_space(), Err(VchanError::Corrupt));
    assert_eq!(ep.peer_state(), Err(VchanError::Corrupt));
}

#[test]
fn producer_index_beyond_the_ring() {
    for (start, bogus) in [
        (0u32, 1025u32),
        (0, u32::MAX),
        (100, u32::MAX - 98),
        (u32::MAX - 5, 1025),
    ] {
        let ((_srv, mut cli), page, _, cn) = attached_pair(11, 10, start);
        // The server's prod runs more than a ring ahead of the client's cons,
        // or behind it.
        page.store_u32(RIGHT_PROD, start.wrapping_add(bogus));
        let before = cn.get();
        let mut b = [0u8; 16];
        assert_eq!(
            cli.read(&mut b),
            Err(VchanError::Corrupt),
            "start {start} +{bogus}"
        );
        assert_dead(&mut cli, &page, CLI_LIVE, &cn, before);
    }
}

#[test]
fn consumer_index_ahead_of_producer() {
    let ((mut srv, _cli), page, sn, _) = attached_pair(12, 13, 500);
    srv.write(&[1u8; 100]).unwrap();
    // The client claims to have consumed more than was produced.
    page.store_u32(RIGHT_CONS, 601);
    let before = sn.get();
    assert_eq!(srv.write(b"x"), Err(VchanError::Corrupt));
    assert_dead(&mut srv, &page, SRV_LIVE, &sn, before);
}

#[test]
fn consumer_index_far_behind() {
    let ((_srv, mut cli), page, _, cn) = attached_pair(12, 12, 0);
    page.store_u32(LEFT_CONS, 0u32.wrapping_sub(4097));
    let before = cn.get();
    assert_eq!(cli.buffer_space(), Err(VchanError::Corrupt));
    assert_dead(&mut cli, &page, CLI_LIVE, &cn, before);
}

#[test]
fn bad_live_byte() {
    let ((mut srv, _cli), page, sn, _) = attached_pair(10, 11, 0);
    page.store_u8(CLI_LIVE, 7);
    let before = sn.get();
    assert_eq!(srv.peer_state(), Err(VchanError::Corrupt));
    assert_dead(&mut srv, &page, SRV_LIVE, &sn, before);
}

#[test]
fn rewriting_orders_or_our_index_changes_nothing() {
    let ((mut srv, mut cli), page, _, _) = attached_pair(10, 11, 0);
    cli.write(&[5u8; 300]).unwrap();
    // The server rewrites the orders (to make us index past the page) and
    // the client's own producer index.
    page.store_u32(LEFT_ORDER, 20 | 20 << 16);
    page.store_u32(LEFT_PROD, 0x1234_5678);
    assert_eq!(cli.write_size(), 1024);
    // The client keeps its private prod: the next write republishes it.
    assert_eq!(cli.write(&[6u8; 10]), Ok(10));
    assert_eq!(page.load_u32(LEFT_PROD), 310);
    let mut b = [0u8; 400];
    assert_eq!(srv.read(&mut b), Ok(310));
    assert_eq!(srv.peer_state(), Ok(PeerState::Connected));
}

#[test]
fn attach_validates() {
    let page = heap_page();
    let c = Counter::default();
    let attach = |page: &Page, l: Vec<Page>, r: Vec<Page>| {
        Vchan::attach(Role::Client, page.clone(), l, r, 1, c.clone()).err()
    };
    page.store_u32(LEFT_ORDER, 10 | 10 << 16);
    assert_eq!(
        attach(&page, vec![], vec![]),
        Some(VchanError::BadHandshake)
    );
    page.store_u32(LEFT_ORDER, 12 | 11 << 16);
    assert_eq!(
        attach(&page, vec![], vec![]),
        Some(VchanError::InvalidArgument)
    );
    let short: Page = (0..16)
        .map(|_| std::sync::atomic::AtomicU32::new(0))
        .collect();
    assert_eq!(
        attach(&page, vec![short.clone()], vec![]),
        Some(VchanError::InvalidArgument)
    );
    assert_eq!(
        attach(&short, vec![], vec![]),
        Some(VchanError::InvalidArgument)
    );
    assert_eq!(attach(&page, vec![heap_page()], vec![]), None);
    page.store_u32(RIGHT_PROD, 2049);
    assert_eq!(
        attach(&page, vec![heap_page()], vec![]),
        Some(VchanError::Corrupt)
    );
}
