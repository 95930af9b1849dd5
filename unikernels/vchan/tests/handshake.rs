//! Server/client setup and teardown over the fake Xen, byte-level layout,
//! store permissions, and hostile servers.

mod common;

use common::*;
use vchan::layout::*;
use vchan::{Errno, Platform, SharedMem, Vchan, VchanError};

const SRV: u16 = 1;
const CLI: u16 = 2;
const OTHER: u16 = 3;
const PATH: &str = "/local/domain/1/data/vchan/test";

type Ep = Vchan<FakeMem, FakeNotify>;

fn server(f: &Fabric, read_min: usize, write_min: usize) -> Ep {
    Vchan::server(&mut f.dom(SRV), CLI, PATH, read_min, write_min).unwrap()
}

fn ring_ref(f: &Fabric) -> u32 {
    f.store_get(&format!("{PATH}/ring-ref"))
        .unwrap()
        .0
        .parse()
        .unwrap()
}

#[test]
fn handshake_writes_libxenvchan_layout_and_keys() {
    let f = Fabric::new();
    let mut srv = server(&f, 1024, 2048);
    let port = srv.port();

    // Store keys: decimal, owned by the server, readable by the client only.
    let (rr, perms) = f.store_get(&format!("{PATH}/ring-ref")).unwrap();
    assert_eq!(perms, ["n1", "r2"]);
    let (ev, perms) = f.store_get(&format!("{PATH}/event-channel")).unwrap();
    assert_eq!(perms, ["n1", "r2"]);
    assert_eq!(ev, port.to_string());
    let gref: u32 = rr.parse().unwrap();
    assert!(gref >= 8);

    // The page, byte for byte: indices 0, orders 10/11, cli_live 2,
    // srv_live 1, cli_notify WRITE, srv_notify 0, no grants.
    let page = f.granted_page(SRV, gref).unwrap();
    let mut head = [0u8; 28];
    page.read_bytes(0, &mut head);
    assert_eq!(
        head,
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 11, 0, 2, 1, 1, 0, 0, 0, 0, 0]
    );
    assert_eq!((srv.read_size(), srv.write_size()), (1024, 2048));
    assert_eq!(srv.peer_state(), Ok(vchan::PeerState::Unconnected));
    let mut buf = [0u8; 16];
    assert_eq!(srv.read(&mut buf), Err(VchanError::WouldBlock));
    // A server may write before the client connects (as in libxenvchan).
    assert_eq!(srv.write(b"early"), Ok(5));

    let mut cli: Ep = Vchan::client(&mut f.dom(CLI), SRV, PATH).unwrap();
    assert_eq!((cli.read_size(), cli.write_size()), (2048, 1024));
    assert_eq!(page.load_u8(CLI_LIVE), LIVE_CONNECTED);
    // srv_notify = WRITE; the server's read above asked the client (cli_notify).
    assert_eq!(page.load_u8(SRV_NOTIFY), NOTIFY_WRITE);
    assert_eq!(page.load_u8(CLI_NOTIFY), NOTIFY_WRITE);
    assert!(f.take_pending(SRV, port), "client connect kicks the server");
    assert_eq!(srv.peer_state(), Ok(vchan::PeerState::Connected));

    assert_eq!(cli.read(&mut buf), Ok(5));
    assert_eq!(&buf[..5], b"early");
    assert_eq!(cli.write(b"hello server"), Ok(12));
    assert!(f.take_pending(SRV, port));
    assert_eq!(srv.read(&mut buf), Ok(12));
    assert_eq!(&buf[..12], b"hello server");
    assert_eq!(page.load_u32(LEFT_CONS), 12);
    assert_eq!(page.load_u32(LEFT_PROD), 12);
    assert_eq!(page.load_u32(RIGHT_CONS), 5);
    assert_eq!(page.load_u32(RIGHT_PROD), 5);

    // Client closes: server sees EOF after the remaining data.
    cli.write(b"bye").unwrap();
    cli.close(&mut f.dom(CLI)).unwrap();
    assert_eq!(page.load_u8(CLI_LIVE), LIVE_CLOSED);
    assert_eq!(f.mappings_of_grants_by(SRV), 0);
    assert_eq!(f.ports_of(CLI), 0);
    assert_eq!(srv.read(&mut buf), Ok(3));
    assert_eq!(srv.read(&mut buf), Ok(0));
    assert_eq!(srv.write(b"x"), Err(VchanError::PeerClosed));

    srv.close(&mut f.dom(SRV)).unwrap();
    assert_eq!(f.store_get(&format!("{PATH}/ring-ref")), None);
    assert_eq!(f.store_get(&format!("{PATH}/event-channel")), None);
    assert_eq!(f.grants_of(SRV), 0);
    assert_eq!(f.pages_alive(SRV), 0);
    assert_eq!(f.ports_of(SRV), 0);
    assert_eq!(f.violations.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[test]
fn multi_page_rings_list_their_grants() {
    let f = Fabric::new();
    let srv = server(&f, 3 * 4096, 2048);
    assert_eq!((srv.read_size(), srv.write_size()), (16384, 2048));
    let page = f.granted_page(SRV, ring_ref(&f)).unwrap();
    assert_eq!(page.load_u16(LEFT_ORDER), 14);
    assert_eq!(page.load_u16(RIGHT_ORDER), 11);
    for i in 0..4 {
        let g = page.load_u32(GRANTS + 4 * i);
        assert!(f.granted_page(SRV, g).is_some(), "grant {i}");
    }
    assert_eq!(page.load_u32(GRANTS + 16), 0);
    assert_eq!(f.grants_of(SRV), 5);
    assert_eq!(f.pages_alive(SRV), 5);
    let cli: Ep = Vchan::client(&mut f.dom(CLI), SRV, PATH).unwrap();
    assert_eq!(f.mappings_of_grants_by(SRV), 5);
    cli.close(&mut f.dom(CLI)).unwrap();
    srv.close(&mut f.dom(SRV)).unwrap();
    assert_eq!((f.grants_of(SRV), f.pages_alive(SRV)), (0, 0));
}

#[test]
fn third_domain_is_refused() {
    let f = Fabric::new();
    let srv = server(&f, 8192, 8192);
    let mut other = f.dom(OTHER);
    assert_eq!(
        other.store_read(&format!("{PATH}/ring-ref")),
        Err(Errno::EACCES)
    );
    assert_eq!(
        other.store_read(&format!("{PATH}/event-channel")),
        Err(Errno::EACCES)
    );
    // Even knowing the reference, it cannot map the page or a ring page.
    let gref = ring_ref(&f);
    assert_eq!(other.map_grant(SRV, gref, false).err(), Some(Errno::EACCES));
    assert_eq!(other.map_grant(SRV, gref, true).err(), Some(Errno::EACCES));
    let page = f.granted_page(SRV, gref).unwrap();
    assert_eq!(
        other.map_grant(SRV, page.load_u32(GRANTS), true).err(),
        Some(Errno::EACCES)
    );
    let r: Result<Ep, _> = Vchan::client(&mut other, SRV, PATH);
    assert_eq!(r.err(), Some(VchanError::Platform(Errno::EACCES)));
    assert_eq!(f.ports_of(OTHER), 0);
    // Nor can it rewrite the keys.
    assert_eq!(
        other.store_write(&format!("{PATH}/ring-ref"), "9"),
        Err(Errno::EACCES)
    );
    srv.close(&mut f.dom(SRV)).unwrap();
}

#[test]
fn close_with_client_still_mapped_leaks_instead_of_reusing() {
    let f = Fabric::new();
    let srv = server(&f, 4096, 4096);
    let mut cli: Ep = Vchan::client(&mut f.dom(CLI), SRV, PATH).unwrap();
    assert_eq!(
        srv.close(&mut f.dom(SRV)),
        Err(VchanError::Platform(Errno::EBUSY))
    );
    assert_eq!(f.pages_alive(SRV), 3, "mapped pages are not freed");
    assert_eq!(f.ports_of(SRV), 0);
    // The client sees the close.
    let mut b = [0u8; 4];
    assert_eq!(cli.read(&mut b), Ok(0));
    assert_eq!(cli.send(b"x"), Err(VchanError::PeerClosed));
    cli.close(&mut f.dom(CLI)).unwrap();
}

#[test]
fn refuses_oversized_rings() {
    let f = Fabric::new();
    let r: Result<Ep, _> = Vchan::server(&mut f.dom(SRV), CLI, PATH, (1 << 20) + 1, 0);
    assert_eq!(r.err(), Some(VchanError::InvalidArgument));
    assert_eq!(f.ports_of(SRV), 0);
    let s = server(&f, 1 << 20, 1 << 20);
    assert_eq!(f.grants_of(SRV), 513);
    let c: Ep = Vchan::client(&mut f.dom(CLI), SRV, PATH).unwrap();
    assert_eq!(c.read_size(), 1 << 20);
    c.close(&mut f.dom(CLI)).unwrap();
    s.close(&mut f.dom(SRV)).unwrap();
}

/// A hostile server: sets up normally, then rewrites `page` before the
/// client connects. The client must refuse and leave nothing behind.
fn hostile(poke: impl FnOnce(&Page, &Fabric)) -> Option<VchanError> {
    let f = Fabric::new();
    let srv = server(&f, 8192, 4096);
    let page = f.granted_page(SRV, ring_ref(&f)).unwrap();
    poke(&page, &f);
    let r: Result<Ep, _> = Vchan::client(&mut f.dom(CLI), SRV, PATH);
    let err = r.as_ref().err().copied();
    if let Ok(c) = r {
        c.close(&mut f.dom(CLI)).unwrap();
    }
    assert_eq!(f.mappings_of_grants_by(SRV), 0, "client left mappings");
    assert_eq!(f.ports_of(CLI), 0, "client left a port");
    let _ = srv.close(&mut f.dom(SRV));
    err
}

#[test]
fn hostile_server_pages_are_refused() {
    let bad = Some(VchanError::BadHandshake);
    let orders = |l: u16, r: u16| {
        move |p: &Page, _: &Fabric| p.store_u32(LEFT_ORDER, u32::from(l) | u32::from(r) << 16)
    };
    assert_eq!(hostile(orders(9, 12)), bad);
    assert_eq!(hostile(orders(12, 21)), bad);
    assert_eq!(hostile(orders(10, 10)), bad);
    assert_eq!(hostile(orders(11, 11)), bad);
    assert_eq!(hostile(orders(0xffff, 0xffff)), bad);
    assert_eq!(hostile(orders(20, 10)), bad, "grant list into the ring");
    // More pages than were granted: the extra references do not map.
    assert_eq!(
        hostile(orders(13, 13)),
        Some(VchanError::Platform(Errno::ENOENT))
    );
    // A grant reference of someone else's / nothing.
    assert_eq!(
        hostile(|p, _| p.store_u32(GRANTS, 0xdead)),
        Some(VchanError::Platform(Errno::ENOENT))
    );
    // Garbage indices.
    assert_eq!(
        hostile(|p, _| p.store_u32(RIGHT_PROD, 5000)),
        Some(VchanError::Corrupt)
    );
    assert_eq!(
        hostile(|p, _| p.store_u32(LEFT_CONS, 1)),
        Some(VchanError::Corrupt)
    );
    // Still-valid contents connect.
    assert_eq!(hostile(|p, _| p.store_u32(RIGHT_PROD, 4096)), None);
}

#[test]
fn hostile_store_values_are_refused() {
    for (key, value, want) in [
        ("ring-ref", "0", VchanError::BadHandshake),
        ("ring-ref", "abc", VchanError::BadHandshake),
        ("ring-ref", "-8", VchanError::BadHandshake),
        ("ring-ref", "99999999999", VchanError::BadHandshake),
        ("ring-ref", "9999", VchanError::Platform(Errno::ENOENT)),
        ("event-channel", "0", VchanError::BadHandshake),
        ("event-channel", "77", VchanError::Platform(Errno::EINVAL)),
    ] {
        let got = hostile(|_, f| f.store_poke(&format!("{PATH}/{key}"), value));
        assert_eq!(got, Some(want), "{key}={value}");
    }
    let f = Fabric::new();
    let r: Result<Ep, _> = Vchan::client(&mut f.dom(CLI), SRV, PATH);
    assert_eq!(r.err(), Some(VchanError::Platform(Errno::ENOENT)));
}

#[test]
fn client_maps_its_read_ring_read_only() {
    let f = Fabric::new();
    let srv = server(&f, 4096, 8192);
    let mut cli: Ep = Vchan::client(&mut f.dom(CLI), SRV, PATH).unwrap();
    let mut s = srv;
    s.write(&[7u8; 5000]).unwrap();
    let mut buf = vec![0u8; 8192];
    assert_eq!(cli.read(&mut buf), Ok(5000));
    cli.write(&[1u8; 4096]).unwrap();
    assert_eq!(f.violations.load(std::sync::atomic::Ordering::SeqCst), 0);
    cli.close(&mut f.dom(CLI)).unwrap();
    s.close(&mut f.dom(SRV)).unwrap();
}

#[test]
fn failed_publication_is_undone() {
    let f = Fabric::new();
    // Another domain already owns the event-channel node.
    f.dom(OTHER)
        .store_write(&format!("{PATH}/event-channel"), "1")
        .unwrap();
    let r: Result<Ep, _> = Vchan::server(&mut f.dom(SRV), CLI, PATH, 8192, 8192);
    assert_eq!(r.err(), Some(VchanError::Platform(Errno::EACCES)));
    assert_eq!(f.grants_of(SRV), 0);
    assert_eq!(f.pages_alive(SRV), 0);
    assert_eq!(f.ports_of(SRV), 0);
    assert_eq!(f.store_get(&format!("{PATH}/ring-ref")), None);
}
