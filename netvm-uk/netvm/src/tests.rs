//! The NetVM's uplink services over the e1000 driver and its mock device, on a
//! simulated wire with a scripted DHCP server and a smoltcp peer (the
//! "gateway", 10.0.2.2) that answers ARP and pings and runs a TCP client.

use std::collections::VecDeque;
use std::vec::Vec;

use e1000::mock::{MockMem, MockNic, MockRegs};
use e1000::{Config as NicConfig, E1000};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, HardwareAddress, IpAddress, IpCidr, IpProtocol, Ipv4Address, Ipv4Packet,
    Ipv4Repr, UdpPacket, UdpRepr,
};

use crate::port::{Port, Ports, Role};
use crate::settings::Settings;
use crate::uplink::{Event, Uplink};

const NIC_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const GW_MAC: [u8; 6] = [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02];
const GW: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);
const GUEST: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);

/// A device whose frames are queues the test moves by hand.
#[derive(Default)]
struct QueueDev {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
}

struct QRx(Vec<u8>);
struct QTx<'a>(&'a mut Vec<Vec<u8>>);

impl phy::RxToken for QRx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for QTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = std::vec![0; len];
        let r = f(&mut buf);
        self.0.push(buf);
        r
    }
}

impl Device for QueueDev {
    type RxToken<'a> = QRx;
    type TxToken<'a> = QTx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(QRx, QTx<'_>)> {
        let f = self.rx.pop_front()?;
        Some((QRx(f), QTx(&mut self.tx)))
    }

    fn transmit(&mut self, _: Instant) -> Option<QTx<'_>> {
        Some(QTx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = 1514;
        c
    }
}

/// Answers a DHCP discover/request frame with an offer/ack for GUEST.
fn dhcp_reply(frame: &[u8]) -> Option<Vec<u8>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Udp {
        return None;
    }
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    if udp.dst_port() != 67 {
        return None;
    }
    let dhcp = DhcpPacket::new_checked(udp.payload()).ok()?;
    let req = DhcpRepr::parse(&dhcp).ok()?;
    let message_type = match req.message_type {
        DhcpMessageType::Discover => DhcpMessageType::Offer,
        DhcpMessageType::Request => DhcpMessageType::Ack,
        _ => return None,
    };
    let reply = DhcpRepr {
        message_type,
        transaction_id: req.transaction_id,
        secs: 0,
        client_hardware_address: req.client_hardware_address,
        client_ip: Ipv4Address::UNSPECIFIED,
        your_ip: GUEST,
        server_ip: GW,
        router: Some(GW),
        subnet_mask: Some(Ipv4Address::new(255, 255, 255, 0)),
        relay_agent_ip: Ipv4Address::UNSPECIFIED,
        broadcast: false,
        requested_ip: None,
        client_identifier: None,
        server_identifier: Some(GW),
        parameter_request_list: None,
        dns_servers: None,
        max_size: None,
        lease_duration: Some(86400),
        renew_duration: None,
        rebind_duration: None,
        additional_options: &[],
    };
    let udp = UdpRepr {
        src_port: 67,
        dst_port: 68,
    };
    let ip = Ipv4Repr {
        src_addr: GW,
        dst_addr: Ipv4Address::BROADCAST,
        next_header: IpProtocol::Udp,
        payload_len: udp.header_len() + reply.buffer_len(),
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(GW_MAC),
        dst_addr: EthernetAddress::BROADCAST,
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut buf = std::vec![0u8; eth.buffer_len() + ip.buffer_len() + ip.payload_len];
    let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.emit(&mut f);
    let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
    ip.emit(&mut p, &Default::default());
    let mut u = UdpPacket::new_unchecked(p.payload_mut());
    udp.emit(
        &mut u,
        &IpAddress::Ipv4(GW),
        &IpAddress::Ipv4(Ipv4Address::BROADCAST),
        reply.buffer_len(),
        |b| {
            reply
                .emit(&mut DhcpPacket::new_unchecked(b))
                .expect("dhcp emit");
        },
        &Default::default(),
    );
    Some(buf)
}

type Nic = E1000<MockRegs, MockMem>;

struct World {
    mock: MockNic,
    ports: Ports<Nic, QueueDev>,
    uplink: Uplink,
    peer: Interface,
    peer_dev: QueueDev,
    peer_sockets: SocketSet<'static>,
    backlog: VecDeque<Vec<u8>>,
    now: Instant,
    events: Vec<Event>,
}

impl World {
    fn new(settings: &Settings) -> World {
        let cfg = NicConfig {
            rx_descs: 32,
            tx_descs: 32,
        };
        let (mock, regs, rx, tx) = MockNic::new(NIC_MAC, cfg);
        let mut nic = E1000::new(regs, rx, tx, cfg).expect("nic");
        nic.enable_interrupts();
        let now = Instant::ZERO;
        let mut port = Port::new("eth0", Role::Uplink, nic, NIC_MAC, 42, now);
        let uplink = Uplink::new(&mut port, settings);
        let mut peer_dev = QueueDev::default();
        let mut peer = Interface::new(
            Config::new(HardwareAddress::Ethernet(EthernetAddress(GW_MAC))),
            &mut peer_dev,
            now,
        );
        peer.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::Ipv4(GW), 24)).expect("addr");
        });
        World {
            mock,
            ports: Ports::new(port),
            uplink,
            peer,
            peer_dev,
            peer_sockets: SocketSet::new(Vec::new()),
            backlog: VecDeque::new(),
            now,
            events: Vec::new(),
        }
    }

    /// One millisecond of the world.
    fn step(&mut self) {
        self.now += Duration::from_millis(1);
        let now = self.now;
        let port = &mut self.ports.uplink;
        port.device.handle_interrupt();
        port.device.check_heads().expect("honest device");
        let events = &mut self.events;
        loop {
            port.poll(now);
            if !self.uplink.poll(port, now, |e| events.push(e)) {
                break;
            }
        }
        self.mock.process_tx();
        for frame in self.mock.take_transmitted() {
            match dhcp_reply(&frame) {
                Some(reply) => self.backlog.push_back(reply),
                None => self.peer_dev.rx.push_back(frame),
            }
        }
        self.peer
            .poll(now, &mut self.peer_dev, &mut self.peer_sockets);
        self.backlog.extend(self.peer_dev.tx.drain(..));
        while let Some(f) = self.backlog.front() {
            if !self.mock.deliver(f) {
                break;
            }
            self.backlog.pop_front();
        }
    }

    fn run_until(&mut self, limit_ms: u64, mut done: impl FnMut(&mut World) -> bool) {
        for _ in 0..limit_ms {
            if done(self) {
                return;
            }
            self.step();
        }
        panic!("not done after {limit_ms} ms; events {:?}", self.events);
    }
}

#[test]
fn lease_ping_and_echo_over_the_mock_nic() {
    let settings = Settings::parse("echo=7 pings=2", |_| {}).expect("settings");
    let mut w = World::new(&settings);
    w.run_until(5_000, |w| {
        w.uplink.lease().is_some() && w.uplink.ping_done()
    });
    let lease = w.uplink.lease().expect("lease");
    assert_eq!(lease.address.address(), GUEST);
    assert_eq!(lease.router, Some(GW));
    assert_eq!(
        std::format!("{}", Event::Lease(lease)),
        "dhcp: lease 10.0.2.15/24 router 10.0.2.2 dns none server 10.0.2.2"
    );
    assert_eq!(w.ports.uplink.ipv4().map(|c| c.address()), Some(GUEST));
    let replies: Vec<_> = w
        .events
        .iter()
        .filter(|e| matches!(e, Event::PingReply { from, .. } if *from == GW))
        .collect();
    assert_eq!(replies.len(), 2, "{:?}", w.events);
    assert!(w.events.contains(&Event::EchoListening(7)));

    // The gateway connects to the echo port and pushes 256 KiB through.
    let mut client = tcp::Socket::new(
        tcp::SocketBuffer::new(std::vec![0; 32 * 1024]),
        tcp::SocketBuffer::new(std::vec![0; 32 * 1024]),
    );
    client
        .connect(w.peer.context(), (IpAddress::Ipv4(GUEST), 7), 40000)
        .expect("connect");
    let h: SocketHandle = w.peer_sockets.add(client);
    let data: Vec<u8> = (0..256 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (mut sent, mut got) = (0usize, Vec::new());
    w.run_until(60_000, |w| {
        let s = w.peer_sockets.get_mut::<tcp::Socket>(h);
        if s.can_send() && sent < data.len() {
            sent += s.send_slice(&data[sent..]).expect("send");
            if sent == data.len() {
                s.close();
            }
        }
        while s.can_recv() {
            s.recv(|b| {
                got.extend_from_slice(b);
                (b.len(), ())
            })
            .expect("recv");
        }
        got.len() == data.len()
    });
    assert!(got == data, "echoed bytes differ");
    w.run_until(5_000, |w| w.uplink.echo_closed() == 1);
    assert_eq!(w.uplink.echo_bytes(), data.len() as u64);
    let closed = w
        .events
        .iter()
        .find(|e| matches!(e, Event::EchoClosed { .. }))
        .expect("closed event");
    assert!(std::format!("{closed}").ends_with("closed after 262144 bytes"));
    let s = w.ports.uplink.device.stats();
    assert_eq!((s.rx_bad_length, s.rx_errors, s.resets), (0, 0, 0));
    assert!(w.mock.violations().is_empty());
}

#[test]
fn ping_without_answer_gives_up() {
    let settings = Settings::parse("ping=10.0.2.99 echo=0", |_| {}).expect("settings");
    let mut w = World::new(&settings);
    w.run_until(10_000, |w| w.uplink.ping_done());
    let sent = w
        .events
        .iter()
        .filter(|e| matches!(e, Event::PingSent { .. }))
        .count();
    assert_eq!(sent, 3);
    assert!(w
        .events
        .iter()
        .any(|e| matches!(e, Event::PingFailed { seq: 1, .. })));
}

#[test]
fn downlinks_have_unique_names_and_roles() {
    let settings = Settings::default();
    let w = World::new(&settings);
    let mut ports = w.ports;
    let dl = |name: &str, n: u16| {
        Port::new(
            name,
            Role::Downlink(n),
            QueueDev::default(),
            [2, 0, 0, 0, 0, n as u8],
            1,
            Instant::ZERO,
        )
    };
    let mut a = dl("vif1", 1);
    a.set_ipv4(
        smoltcp::wire::Ipv4Cidr::new(Ipv4Address::new(10, 137, 0, 1), 24),
        None,
    );
    ports.add_downlink(a).expect("first");
    ports.add_downlink(dl("vif2", 2)).expect("second");
    assert!(ports.add_downlink(dl("vif2", 3)).is_err());
    assert!(ports.add_downlink(dl("eth0", 3)).is_err());
    assert!(ports.add_downlink(dl("vif3", 1)).is_err());
    let up = Port::new(
        "x",
        Role::Uplink,
        QueueDev::default(),
        [2; 6],
        1,
        Instant::ZERO,
    );
    assert!(ports.add_downlink(up).is_err());
    assert_eq!(ports.downlinks.len(), 2);
    assert_eq!(
        ports.downlinks[0].ipv4().map(|c| c.address()),
        Some(Ipv4Address::new(10, 137, 0, 1))
    );
    ports.poll(Instant::from_millis(1));
    let _ = ports.poll_delay(Instant::from_millis(1));
    assert_eq!(std::format!("{}", crate::Mac(NIC_MAC)), "52:54:00:12:34:56");
}
