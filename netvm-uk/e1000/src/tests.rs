//! Host tests against the mock device, including hostile behaviour.

use crate::mock::{eeprom_with_mac, MockMem, MockNic, MockRegs, RX_BASE};
use crate::regs::*;
use crate::*;
use proptest::prelude::*;
use std::vec::Vec;

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const SMALL: Config = Config {
    rx_descs: 8,
    tx_descs: 8,
};

type Nic = E1000<MockRegs, MockMem>;

fn up(config: Config) -> (MockNic, Nic) {
    let (mock, regs, rx, tx) = MockNic::new(MAC, config);
    let nic = E1000::new(regs, rx, tx, config).expect("bring-up");
    (mock, nic)
}

fn frame(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

fn recv(nic: &mut Nic) -> Option<Vec<u8>> {
    nic.receive().map(|f| f.consume(<[u8]>::to_vec))
}

#[test]
fn bring_up_programs_the_device() {
    let (mock, nic) = up(Config::default());
    assert_eq!(nic.mac(), MAC);
    assert!(nic.link_up());
    assert_eq!(mock.reg(RDLEN), 64 * 16);
    assert_eq!(mock.reg(TDLEN), 64 * 16);
    assert_eq!(mock.reg(RDT), 63);
    assert_eq!(mock.reg(TDT), 0);
    assert_eq!(mock.reg(RDBAL), RX_BASE as u32);
    assert_ne!(mock.reg(RCTL) & RCTL_EN, 0);
    assert_ne!(mock.reg(RCTL) & RCTL_SECRC, 0);
    assert_ne!(mock.reg(TCTL) & TCTL_EN, 0);
    assert_eq!(mock.reg(RAL0), 0x1200_5452);
    assert_eq!(mock.reg(RAH0), 0x8000_5634);
    assert_eq!(mock.resets(), 1);
    assert!(mock.violations().is_empty());
    assert!(!mock.irq(), "interrupts stay masked");
}

#[test]
fn mac_sources() {
    // Bad EEPROM checksum: fall back to RAL/RAH as the device loaded it.
    let (mock, regs, rx, tx) = MockNic::new(MAC, SMALL);
    let mut bad = eeprom_with_mac(MAC);
    bad[63] ^= 1;
    mock.set_eeprom(bad);
    mock.set_receive_address(0x0300_0002, 0x8000_0504);
    let nic = E1000::new(regs, rx, tx, SMALL).expect("RAL fallback");
    assert_eq!(nic.mac(), [2, 0, 0, 3, 4, 5]);
    // Dead EEPROM, RAL/RAH not marked valid: no address.
    let (mock, regs, rx, tx) = MockNic::new(MAC, SMALL);
    mock.kill_eeprom();
    mock.set_receive_address(0x0300_0002, 0x0000_0504);
    assert_eq!(
        E1000::new(regs, rx, tx, SMALL).err(),
        Some(Error::NoMacAddress)
    );
    // A multicast MAC in a checksummed EEPROM is refused too.
    let (mock, regs, rx, tx) = MockNic::new(MAC, SMALL);
    mock.set_eeprom(eeprom_with_mac([1, 2, 3, 4, 5, 6]));
    mock.set_receive_address(0, 0);
    assert_eq!(
        E1000::new(regs, rx, tx, SMALL).err(),
        Some(Error::NoMacAddress)
    );
}

#[test]
fn bad_configs_are_refused() {
    for n in [0u16, 4, 12, 4104, u16::MAX] {
        let (_m, regs, rx, tx) = MockNic::new(MAC, SMALL);
        let cfg = Config {
            rx_descs: n,
            tx_descs: 8,
        };
        assert_eq!(
            E1000::new(regs, rx, tx, cfg).err(),
            Some(Error::BadRingSize(n))
        );
    }
    let (_m, regs, _rx, tx) = MockNic::new(MAC, SMALL);
    let small = MockMem::new(RX_BASE, ring_bytes(8) - 1);
    assert!(matches!(
        E1000::new(regs, small, tx, SMALL),
        Err(Error::DmaTooSmall { ring: Ring::Rx, .. })
    ));
    let (_m, regs, rx, _tx) = MockNic::new(MAC, SMALL);
    let unaligned = MockMem::new(0x1040, ring_bytes(8));
    assert_eq!(
        E1000::new(regs, rx, unaligned, SMALL).err(),
        Some(Error::DmaAddress(0x1040))
    );
    let (_m, regs, rx, _tx) = MockNic::new(MAC, SMALL);
    let wrapping = MockMem::new(!127, ring_bytes(8));
    assert!(matches!(
        E1000::new(regs, rx, wrapping, SMALL),
        Err(Error::DmaAddress(_))
    ));
    let (mock, regs, rx, tx) = MockNic::new(MAC, SMALL);
    mock.stick_reset();
    assert_eq!(
        E1000::new(regs, rx, tx, SMALL).err(),
        Some(Error::ResetTimeout)
    );
    assert_eq!(ring_bytes(8), 4096 + 8 * 2048);
    assert_eq!(ring_bytes(512), 8192 + 512 * 2048);
}

#[test]
fn frames_round_the_ring_many_times() {
    let (mock, mut nic) = up(SMALL);
    for k in 0..1000usize {
        let f = frame(14 + k % 1500, k as u8);
        assert!(mock.deliver(&f), "frame {k} found no descriptor");
        assert_eq!(recv(&mut nic).as_deref(), Some(&f[..]), "frame {k}");
        assert_eq!(recv(&mut nic), None);
    }
    let s = nic.stats();
    assert_eq!(s.rx_frames, 1000);
    // The ring holds 7 frames when the driver does not keep up; the 8th is
    // missed; they come out in order.
    for k in 0..8u8 {
        assert_eq!(mock.deliver(&frame(60, k)), k < 7);
    }
    for k in 0..7u8 {
        assert_eq!(recv(&mut nic), Some(frame(60, k)));
    }
    assert_eq!(recv(&mut nic), None);
    assert!(mock.violations().is_empty());
}

#[test]
fn unconsumed_frame_is_offered_again() {
    let (mock, mut nic) = up(SMALL);
    mock.deliver(&frame(100, 1));
    mock.deliver(&frame(100, 2));
    {
        let f = nic.receive().expect("frame");
        assert_eq!(f.len(), 100);
    }
    assert_eq!(recv(&mut nic), Some(frame(100, 1)));
    assert_eq!(recv(&mut nic), Some(frame(100, 2)));
}

#[test]
fn hostile_rx_descriptors_are_dropped() {
    let (mock, mut nic) = up(Config {
        rx_descs: 16,
        tx_descs: 8,
    });
    let good = frame(64, 9);
    let dd_eop = RXD_STAT_DD | RXD_STAT_EOP;
    // Length past the 2 KiB buffer, zero, shorter than a header.
    assert!(mock.deliver_raw(&good, 4000, dd_eop, 0));
    assert!(mock.deliver_raw(&good, u16::MAX, dd_eop, 0));
    assert!(mock.deliver_raw(&good, 0, dd_eop, 0));
    assert!(mock.deliver_raw(&good, 13, dd_eop, 0));
    // Frame errors (CRC, RX data error).
    assert!(mock.deliver_raw(&good, 64, dd_eop, 0x01));
    assert!(mock.deliver_raw(&good, 64, dd_eop, 0x80));
    // A multi-descriptor frame (no EOP, then EOP): dropped whole.
    assert!(mock.deliver_raw(&good, 64, RXD_STAT_DD, 0));
    assert!(mock.deliver_raw(&good, 64, dd_eop, 0));
    // Checksum-offload error bits alone do not matter (offload is off).
    assert!(mock.deliver_raw(&good, 64, dd_eop, 0x60));
    // Exactly one buffer is fine.
    assert!(mock.deliver_raw(&frame(2048, 3), 2048, dd_eop, 0));
    assert_eq!(recv(&mut nic), Some(good.clone()));
    assert_eq!(recv(&mut nic), Some(frame(2048, 3)));
    assert_eq!(recv(&mut nic), None);
    let s = nic.stats();
    assert_eq!(
        (s.rx_bad_length, s.rx_errors, s.rx_fragments, s.rx_frames),
        (4, 2, 2, 2)
    );
    // A long frame delivered over two descriptors is dropped, the next is not.
    assert!(mock.deliver(&frame(3000, 4)));
    assert!(mock.deliver(&frame(70, 5)));
    assert_eq!(recv(&mut nic), Some(frame(70, 5)));
    assert_eq!(nic.stats().rx_fragments, 4);
    assert!(mock.violations().is_empty());
}

#[test]
fn device_marking_every_descriptor_done_cannot_stall_or_overflow() {
    let (mock, mut nic) = up(SMALL);
    // The device writes "done, 1 MiB, EOP" into every descriptor.
    for i in 0..8 {
        mock.scribble_rx_desc(i, 0xffff | (u64::from(RXD_STAT_DD | RXD_STAT_EOP) << 32));
    }
    for _ in 0..3 {
        assert_eq!(recv(&mut nic), None);
    }
    // Done with a plausible length: garbage frames within the buffer.
    for i in 0..8 {
        mock.scribble_rx_desc(i, 1500 | (u64::from(RXD_STAT_DD | RXD_STAT_EOP) << 32));
    }
    let mut got = 0;
    while let Some(f) = recv(&mut nic) {
        assert_eq!(f.len(), 1500);
        got += 1;
        assert!(got <= 64, "the driver must not loop forever");
    }
    assert!(mock.violations().is_empty());
}

#[test]
fn transmit_and_ring_full() {
    let (mock, mut nic) = up(SMALL);
    for k in 0..7u8 {
        assert!(nic.transmit(60 + usize::from(k), |b| b
            .copy_from_slice(&frame(b.len(), k))));
    }
    // 7 in flight: the 8th slot is the one that tells full from empty.
    assert!(!nic.can_transmit());
    assert!(!nic.transmit(60, |_| {}));
    assert_eq!(mock.process_tx(), 7);
    let sent = mock.take_transmitted();
    for (k, f) in sent.iter().enumerate() {
        assert_eq!(f, &frame(60 + k, k as u8));
    }
    assert!(nic.can_transmit());
    // Oversize and empty frames are not sent.
    assert!(!nic.transmit(MAX_FRAME + 1, |_| {}));
    assert!(!nic.transmit(0, |_| {}));
    assert!(nic.transmit(MAX_FRAME, |b| b.fill(7)));
    assert_eq!(mock.process_tx(), 1);
    assert_eq!(mock.take_transmitted()[0].len(), MAX_FRAME);
    let s = nic.stats();
    assert_eq!((s.tx_frames, s.tx_dropped), (8, 3));
    // Many times round the ring.
    for k in 0..500usize {
        assert!(nic.transmit(100, |b| b.fill(k as u8)));
        assert_eq!(mock.process_tx(), 1);
        assert_eq!(mock.take_transmitted(), [std::vec![k as u8; 100]]);
    }
    assert!(mock.violations().is_empty());
}

#[test]
fn premature_tx_done_does_not_break_the_ring() {
    let (mock, mut nic) = up(SMALL);
    for _ in 0..5 {
        assert!(nic.transmit(60, |b| b.fill(1)));
    }
    mock.mark_all_tx_done();
    // The driver reclaims only up to its tail.
    for _ in 0..7 {
        assert!(nic.transmit(60, |b| b.fill(2)));
    }
    assert!(!nic.can_transmit());
    // The device lost the frames it lied about; what it sends is still made
    // of whole frames inside the TX region, and the heads stay consistent.
    assert!(mock.process_tx() <= 7);
    // Here it skipped descriptors: the ring would stay full forever. The
    // driver notices (on the second look) and a reset recovers.
    assert_eq!(nic.check_heads(), Ok(()));
    assert_eq!(nic.check_heads(), Err(Error::TxStalled));
    nic.reinit().expect("reinit");
    assert!(nic.can_transmit());
    assert!(nic.transmit(60, |b| b.fill(3)));
    assert_eq!(mock.process_tx(), 1);
    assert!(mock.violations().is_empty());
}

#[test]
fn heads_out_of_range_or_wrapped() {
    let (mock, mut nic) = up(SMALL);
    assert_eq!(nic.check_heads(), Ok(()));
    mock.lie_rx_head(8);
    assert_eq!(
        nic.check_heads(),
        Err(Error::BadHead {
            ring: Ring::Rx,
            head: 8
        })
    );
    mock.lie_rx_head(u32::MAX);
    assert!(nic.check_heads().is_err());
    mock.lie_rx_head(3);
    assert_eq!(nic.check_heads(), Ok(()));
    // TX: 3 frames queued (clean 0, tail 3): heads 0..=3 are possible, a head
    // past the tail has wrapped.
    for _ in 0..3 {
        assert!(nic.transmit(60, |_| {}));
    }
    for h in 0..=3 {
        mock.lie_tx_head(h);
        assert_eq!(nic.check_heads(), Ok(()), "head {h}");
    }
    for h in [4, 7, 8, 0x1_0000, u32::MAX] {
        mock.lie_tx_head(h);
        assert_eq!(
            nic.check_heads(),
            Err(Error::BadHead {
                ring: Ring::Tx,
                head: h
            })
        );
    }
    // Recovery: reset and go on.
    nic.reinit().expect("reinit");
    assert_eq!(nic.check_heads(), Ok(()));
    assert_eq!(nic.stats().resets, 1);
    assert!(mock.deliver(&frame(80, 1)));
    assert_eq!(recv(&mut nic), Some(frame(80, 1)));
    assert!(nic.transmit(80, |b| b.fill(3)));
    assert_eq!(mock.process_tx(), 1);
    assert!(mock.violations().is_empty());
}

#[test]
fn interrupts_and_link() {
    let (mock, mut nic) = up(SMALL);
    mock.deliver(&frame(60, 0));
    assert!(!mock.irq());
    nic.enable_interrupts();
    assert!(mock.irq());
    let c = nic.handle_interrupt();
    assert!(c.rx() && !c.link());
    assert!(!mock.irq(), "reading ICR clears the causes");
    mock.set_link(false);
    let c = nic.handle_interrupt();
    assert!(c.link());
    assert!(!nic.link_up());
    assert_eq!(nic.stats().link_changes, 1);
    nic.trigger_interrupt();
    assert!(mock.irq());
    assert!(nic.handle_interrupt().link());
    nic.disable_interrupts();
    mock.deliver(&frame(60, 1));
    assert!(!mock.irq());
    // A reinit keeps the interrupt mask the driver chose.
    nic.enable_interrupts();
    nic.reinit().expect("reinit");
    mock.deliver(&frame(60, 1));
    assert!(mock.irq());
    let (_, _, _) = nic.shutdown();
    assert_eq!(mock.reg(RCTL) & RCTL_EN, 0);
}

#[test]
fn window_arithmetic() {
    assert!(in_window(6, 7, 1, 8));
    assert!(in_window(6, 0, 1, 8));
    assert!(in_window(6, 1, 1, 8));
    assert!(!in_window(6, 2, 1, 8));
    assert!(!in_window(6, 5, 1, 8));
    assert!(in_window(3, 3, 3, 8));
    assert!(!in_window(3, 4, 3, 8));
    assert!(!in_window(0, 8, 7, 8));
    assert_eq!(next(7, 8), 0);
    assert_eq!(next(u16::MAX, 8), 0);
}

#[derive(Clone, Debug)]
enum Op {
    Deliver(usize, u8),
    DeliverRaw(u16, u8, u8, usize),
    Scribble(u32, u64),
    LieRx(u32),
    LieTx(u32),
    ProcessTx,
    MarkTxDone,
    Transmit(usize, u8),
    Receive(bool),
    Interrupt,
    Check,
    Link(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..3000, any::<u8>()).prop_map(|(l, s)| Op::Deliver(l, s)),
        2 => (any::<u16>(), any::<u8>(), any::<u8>(), 0usize..2100)
            .prop_map(|(l, st, e, n)| Op::DeliverRaw(l, st, e, n)),
        1 => (0u32..10, any::<u64>()).prop_map(|(i, w)| Op::Scribble(i, w)),
        1 => prop_oneof![0u32..10, any::<u32>()].prop_map(Op::LieRx),
        1 => prop_oneof![0u32..10, any::<u32>()].prop_map(Op::LieTx),
        2 => Just(Op::ProcessTx),
        1 => Just(Op::MarkTxDone),
        3 => (0usize..1600, any::<u8>()).prop_map(|(l, s)| Op::Transmit(l, s)),
        4 => any::<bool>().prop_map(Op::Receive),
        1 => Just(Op::Interrupt),
        2 => Just(Op::Check),
        1 => any::<bool>().prop_map(Op::Link),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the device does, the driver never panics, never hands up a
    /// frame outside 14..=2048 bytes, never gives the device a buffer outside
    /// its regions, and recovers with a reset when a head is bad.
    #[test]
    fn hostile_device_never_breaks_the_driver(ops in proptest::collection::vec(op(), 1..200)) {
        let (mock, mut nic) = up(SMALL);
        nic.enable_interrupts();
        for op in ops {
            match op {
                Op::Deliver(len, seed) => { mock.deliver(&frame(len, seed)); }
                Op::DeliverRaw(len, status, errors, n) => {
                    mock.deliver_raw(&frame(n, 1), len, status, errors);
                }
                Op::Scribble(i, w) => mock.scribble_rx_desc(i, w),
                Op::LieRx(h) => mock.lie_rx_head(h),
                Op::LieTx(h) => mock.lie_tx_head(h),
                Op::ProcessTx => { mock.process_tx(); }
                Op::MarkTxDone => mock.mark_all_tx_done(),
                Op::Transmit(len, seed) => {
                    let sent = nic.transmit(len, |b| b.fill(seed));
                    prop_assert!(!sent || (1..=MAX_FRAME).contains(&len));
                }
                Op::Receive(consume) => {
                    if let Some(f) = nic.receive() {
                        prop_assert!((MIN_FRAME..=BUF_SIZE).contains(&f.len()));
                        if consume {
                            let n = f.consume(|b| b.len());
                            prop_assert!((MIN_FRAME..=BUF_SIZE).contains(&n));
                        }
                    }
                }
                Op::Interrupt => { nic.handle_interrupt(); }
                Op::Check => {
                    if nic.check_heads().is_err() {
                        nic.reinit().expect("reinit");
                        prop_assert_eq!(nic.check_heads(), Ok(()));
                    }
                }
                Op::Link(up) => mock.set_link(up),
            }
            prop_assert!(mock.reg(RDT) < 8);
            prop_assert!(mock.reg(TDT) < 8);
        }
        prop_assert_eq!(mock.violations(), Vec::<std::string::String>::new());
    }

    /// With an honest device, frames arrive exactly and in order, and frames
    /// the driver accepted leave exactly and in order.
    #[test]
    fn honest_device_is_lossless(
        ops in proptest::collection::vec((any::<bool>(), 14usize..1514, any::<u8>(), any::<bool>()), 1..300)
    ) {
        let (mock, mut nic) = up(SMALL);
        let mut delivered = std::collections::VecDeque::new();
        let mut queued = Vec::new();
        for (rx, len, seed, drain) in ops {
            if rx {
                let f = frame(len, seed);
                if mock.deliver(&f) {
                    delivered.push_back(f);
                }
                if drain {
                    while let Some(got) = recv(&mut nic) {
                        prop_assert_eq!(Some(got), delivered.pop_front());
                    }
                }
            } else {
                if nic.transmit(len, |b| b.fill(seed)) {
                    queued.push(std::vec![seed; len]);
                }
                if drain {
                    mock.process_tx();
                }
            }
        }
        while let Some(got) = recv(&mut nic) {
            prop_assert_eq!(Some(got), delivered.pop_front());
        }
        prop_assert!(delivered.is_empty());
        mock.process_tx();
        prop_assert_eq!(mock.take_transmitted(), queued);
        prop_assert!(mock.violations().is_empty());
    }
}

#[cfg(feature = "smoltcp")]
mod smoltcp_device {
    use super::*;
    use smoltcp::iface::{Config as IfConfig, Interface, SocketSet};
    use smoltcp::time::Instant;
    use smoltcp::wire::{
        ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
        EthernetRepr, HardwareAddress, IpAddress, IpCidr, Ipv4Address,
    };

    const PEER: [u8; 6] = [0x52, 0x55, 0x0a, 0x00, 0x02, 0x02];

    fn arp_request(target: Ipv4Address) -> Vec<u8> {
        let arp = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress(PEER),
            source_protocol_addr: Ipv4Address::new(10, 0, 2, 2),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        };
        let eth = EthernetRepr {
            src_addr: EthernetAddress(PEER),
            dst_addr: EthernetAddress::BROADCAST,
            ethertype: EthernetProtocol::Arp,
        };
        let mut buf = std::vec![0u8; eth.buffer_len() + arp.buffer_len()];
        let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
        eth.emit(&mut f);
        arp.emit(&mut ArpPacket::new_unchecked(f.payload_mut()));
        buf
    }

    #[test]
    fn one_poll_takes_at_most_a_ring_of_frames() {
        use smoltcp::phy::{Device, RxToken};
        let (mock, mut nic) = up(SMALL);
        let take = |nic: &mut Nic| {
            Device::receive(nic, Instant::ZERO).map(|(rx, _tx)| rx.consume(|b| b.len()))
        };
        // A device that refills as fast as frames are taken: 7, then 7 more.
        for _ in 0..7 {
            assert!(mock.deliver(&frame(60, 1)));
        }
        for _ in 0..7 {
            assert_eq!(take(&mut nic), Some(60));
        }
        for _ in 0..7 {
            assert!(mock.deliver(&frame(60, 2)));
        }
        // The budget (8 frames) runs out with frames still waiting...
        assert_eq!(take(&mut nic), Some(60));
        assert_eq!(take(&mut nic), None);
        // ...until the next interrupt (or a drained ring) refills it.
        nic.handle_interrupt();
        for _ in 0..6 {
            assert_eq!(take(&mut nic), Some(60));
        }
        assert_eq!(take(&mut nic), None);
    }

    #[test]
    fn smoltcp_answers_arp_through_the_rings() {
        let (mock, mut nic) = up(SMALL);
        let mac = EthernetAddress(nic.mac());
        let mut iface = Interface::new(
            IfConfig::new(HardwareAddress::Ethernet(mac)),
            &mut nic,
            Instant::ZERO,
        );
        let me = Ipv4Address::new(10, 0, 2, 15);
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::Ipv4(me), 24)).expect("addr");
        });
        let mut sockets = SocketSet::new(std::vec![]);
        for round in 0..20 {
            assert!(mock.deliver(&arp_request(me)));
            iface.poll(Instant::from_millis(round), &mut nic, &mut sockets);
            mock.process_tx();
            let out = mock.take_transmitted();
            assert_eq!(out.len(), 1, "round {round}");
            let f = EthernetFrame::new_checked(&out[0][..]).expect("ethernet");
            assert_eq!(f.dst_addr(), EthernetAddress(PEER));
            assert_eq!(f.ethertype(), EthernetProtocol::Arp);
            let arp = ArpRepr::parse(&ArpPacket::new_checked(f.payload()).expect("arp"))
                .expect("arp repr");
            assert!(matches!(
                arp,
                ArpRepr::EthernetIpv4 {
                    operation: ArpOperation::Reply,
                    source_protocol_addr,
                    ..
                } if source_protocol_addr == me
            ));
        }
        // ARP for someone else: no reply.
        assert!(mock.deliver(&arp_request(Ipv4Address::new(10, 0, 2, 99))));
        iface.poll(Instant::from_millis(100), &mut nic, &mut sockets);
        mock.process_tx();
        assert!(mock.take_transmitted().is_empty());
        assert_eq!(nic.stats().rx_frames, 21);
    }
}
