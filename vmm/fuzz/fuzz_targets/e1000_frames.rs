//! Fuzzes the NetVM's frame path: what the e1000 device writes into its RX
//! ring (frames, descriptor lengths, status and error bits, stray write-backs)
//! and reports in its head registers, through the driver (`e1000::E1000` on
//! the mock device) into smoltcp and the uplink services (`netvm::uplink`:
//! DHCP client, ping, TCP echo), and back out through the TX ring.
//!
//! The uplink starts with a static address (10.0.2.15/24, gateway 10.0.2.2),
//! so frames the fuzzer builds for it reach ARP, ICMP and the TCP echo port 7
//! as well as the DHCP client.
//!
//! Invariants:
//! * No panics, in the driver, smoltcp or the services.
//! * Every descriptor the driver hands the device points at a whole buffer in
//!   its own ring region (the mock records any violation).
//! * Every frame the driver receives is 14..=2048 bytes.
//! * A bad head or a stalled transmitter is reported as an error, and a reset
//!   recovers from it: the heads check clean right after.
//! * Tail registers stay inside the rings.
#![no_main]

use arbitrary::Arbitrary;
use e1000::mock::{MockMem, MockNic, MockRegs};
use e1000::{regs, Config, E1000};
use libfuzzer_sys::fuzz_target;
use netvm::port::{Port, Role};
use netvm::settings::Settings;
use netvm::uplink::Uplink;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{
    Icmpv4Packet, IpAddress, Ipv4Address, Ipv4Cidr, TcpPacket, TcpSeqNumber, UdpPacket,
};

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const RING: u16 = 8;

#[derive(Arbitrary, Debug)]
enum Op {
    /// The wire delivers a frame (spread over descriptors if long).
    Frame(Vec<u8>),
    /// A frame with a canned Ethernet/IPv4 header to 10.0.2.15 and the
    /// given protocol, so the fuzzer reaches the IP layer quickly.
    Ipv4 {
        proto: u8,
        payload: Vec<u8>,
    },
    /// A TCP segment from 10.0.2.2 with a valid checksum, to the echo port
    /// or another one.
    Tcp {
        to_echo: bool,
        src_port: u8,
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
        payload: Vec<u8>,
    },
    /// A UDP datagram with a valid checksum to the DHCP client port.
    Dhcp(Vec<u8>),
    /// An ICMP message with a valid checksum.
    Icmp {
        kind: u8,
        code: u8,
        rest: Vec<u8>,
    },
    /// The device writes one descriptor with arbitrary fields.
    Raw {
        bytes: Vec<u8>,
        len: u16,
        status: u8,
        errors: u8,
    },
    /// The device scribbles over an RX descriptor's status word.
    Scribble {
        index: u8,
        word: u64,
    },
    LieRxHead(u32),
    LieTxHead(u32),
    /// The device sends what is queued.
    ProcessTx,
    /// The device marks every TX descriptor done.
    MarkTxDone,
    /// Time passes.
    Advance(u16),
    Link(bool),
}

type Nic = E1000<MockRegs, MockMem>;

fn ipv4_frame(proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(34 + payload.len());
    f.extend_from_slice(&MAC);
    f.extend_from_slice(&[0x52, 0x55, 10, 0, 2, 2]);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + payload.len()).min(0xffff) as u16;
    let mut ip = [
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0x40,
        0,
        64,
        proto,
        0,
        0,
        10,
        0,
        2,
        2,
        10,
        0,
        2,
        15,
    ];
    let mut sum = 0u32;
    for w in ip.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(sum as u16);
    ip[10] = (c >> 8) as u8;
    ip[11] = c as u8;
    f.extend_from_slice(&ip);
    f.extend_from_slice(payload);
    f
}

const GW: IpAddress = IpAddress::Ipv4(Ipv4Address::new(10, 0, 2, 2));
const ME: IpAddress = IpAddress::Ipv4(Ipv4Address::new(10, 0, 2, 15));

#[allow(clippy::too_many_arguments)]
fn tcp_segment(
    to_echo: bool,
    src_port: u8,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    payload: &[u8],
) -> Vec<u8> {
    let payload = &payload[..payload.len().min(1400)];
    let mut buf = vec![0u8; 20 + payload.len()];
    let mut p = TcpPacket::new_unchecked(&mut buf[..]);
    p.set_src_port(40000 + u16::from(src_port % 4));
    p.set_dst_port(if to_echo { 7 } else { 8 });
    p.set_seq_number(TcpSeqNumber(seq as i32));
    p.set_ack_number(TcpSeqNumber(ack as i32));
    p.set_header_len(20);
    p.set_fin(flags & 1 != 0);
    p.set_syn(flags & 2 != 0);
    p.set_rst(flags & 4 != 0);
    p.set_psh(flags & 8 != 0);
    p.set_ack(flags & 16 != 0);
    p.set_window_len(window);
    p.payload_mut().copy_from_slice(payload);
    p.fill_checksum(&GW, &ME);
    buf
}

fn udp_to_dhcp_client(payload: &[u8]) -> Vec<u8> {
    let payload = &payload[..payload.len().min(1400)];
    let mut buf = vec![0u8; 8 + payload.len()];
    let mut p = UdpPacket::new_unchecked(&mut buf[..]);
    p.set_src_port(67);
    p.set_dst_port(68);
    p.set_len((8 + payload.len()) as u16);
    p.payload_mut().copy_from_slice(payload);
    p.fill_checksum(&GW, &ME);
    buf
}

fn icmp_message(kind: u8, code: u8, rest: &[u8]) -> Vec<u8> {
    let rest = &rest[..rest.len().min(1400)];
    let mut buf = vec![0u8; 4 + rest.len()];
    buf[0] = kind;
    buf[1] = code;
    buf[4..].copy_from_slice(rest);
    Icmpv4Packet::new_unchecked(&mut buf[..]).fill_checksum();
    buf
}

fn settle(mock: &MockNic, port: &mut Port<Nic>, uplink: &mut Uplink, now: Instant) {
    port.device.handle_interrupt();
    if port.device.check_heads().is_err() {
        port.device.reinit().expect("reinit on the mock");
        assert_eq!(
            port.device.check_heads(),
            Ok(()),
            "heads bad right after reset"
        );
    }
    for _ in 0..4 {
        port.poll(now);
        if !uplink.poll(port, now, |e| {
            let _ = e.to_string();
        }) {
            break;
        }
    }
    let _ = port.poll_delay(now);
    let _ = uplink.deadline();
    assert!(mock.reg(regs::RDT) < u32::from(RING));
    assert!(mock.reg(regs::TDT) < u32::from(RING));
}

fuzz_target!(|ops: Vec<Op>| {
    let config = Config {
        rx_descs: RING,
        tx_descs: RING,
    };
    let (mock, regs, rx, tx) = MockNic::new(MAC, config);
    let mut nic = E1000::new(regs, rx, tx, config).expect("bring-up on the mock");
    nic.enable_interrupts();
    let mut now = Instant::ZERO;
    let mut port = Port::new("eth0", Role::Uplink, nic, MAC, 7, now);
    port.set_ipv4(
        Ipv4Cidr::new(Ipv4Address::new(10, 0, 2, 15), 24),
        Some(Ipv4Address::new(10, 0, 2, 2)),
    );
    let settings = Settings::parse("echo=7 tcp-buf=4096", |_| {}).expect("settings");
    let mut uplink = Uplink::new(&mut port, &settings);
    for op in ops.into_iter().take(256) {
        match op {
            Op::Frame(f) => {
                mock.deliver(&f);
            }
            Op::Ipv4 { proto, payload } => {
                mock.deliver(&ipv4_frame(proto, &payload));
            }
            Op::Tcp {
                to_echo,
                src_port,
                seq,
                ack,
                flags,
                window,
                payload,
            } => {
                let seg = tcp_segment(to_echo, src_port, seq, ack, flags, window, &payload);
                mock.deliver(&ipv4_frame(6, &seg));
            }
            Op::Dhcp(payload) => {
                mock.deliver(&ipv4_frame(17, &udp_to_dhcp_client(&payload)));
            }
            Op::Icmp { kind, code, rest } => {
                mock.deliver(&ipv4_frame(1, &icmp_message(kind, code, &rest)));
            }
            Op::Raw {
                bytes,
                len,
                status,
                errors,
            } => {
                mock.deliver_raw(&bytes, len, status, errors);
            }
            Op::Scribble { index, word } => mock.scribble_rx_desc(u32::from(index % 16), word),
            Op::LieRxHead(h) => mock.lie_rx_head(h),
            Op::LieTxHead(h) => mock.lie_tx_head(h),
            Op::ProcessTx => {
                mock.process_tx();
                for f in mock.take_transmitted() {
                    assert!((1..=e1000::MAX_FRAME).contains(&f.len()));
                }
            }
            Op::MarkTxDone => mock.mark_all_tx_done(),
            Op::Advance(ms) => now += Duration::from_millis(u64::from(ms)),
            Op::Link(up) => mock.set_link(up),
        }
        if let Some(f) = port.device.receive() {
            // The frame stays in the ring for smoltcp (not consumed here).
            assert!((e1000::MIN_FRAME..=e1000::BUF_SIZE).contains(&f.len()));
        }
        settle(&mock, &mut port, &mut uplink, now);
    }
    assert_eq!(mock.violations(), Vec::<String>::new());
});
