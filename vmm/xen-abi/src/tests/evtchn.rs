//! Event channels: every op, success and error paths, and 2-level delivery.

use super::*;
use crate::abi::evtchnop::*;
use crate::abi::shared_info::VCPU_INFO_SIZE;
use crate::abi::virq;
use crate::evtchn::{Channel, StatusDetail};

#[test]
fn alloc_unbound_allocates_from_port_1() {
    let mut w = world(2);
    assert_eq!(w.hub.evtchn_alloc_unbound(1, DOMID_SELF, 2), Ok(1));
    assert_eq!(w.hub.evtchn_alloc_unbound(1, 1, 2), Ok(2));
    assert_eq!(
        w.hub.port(1, 1).unwrap().chan,
        Channel::Unbound { remote: 2 }
    );
    assert_eq!(w.hub.port(1, 0).unwrap().chan, Channel::Reserved);
    // DOMID_SELF as remote means the caller (loopback).
    let p = w
        .hub
        .evtchn_alloc_unbound(1, DOMID_SELF, DOMID_SELF)
        .unwrap();
    assert_eq!(
        w.hub.port(1, p).unwrap().chan,
        Channel::Unbound { remote: 1 }
    );
    w.check();
}

#[test]
fn alloc_unbound_errors() {
    let mut w = world(2);
    assert_eq!(w.hub.evtchn_alloc_unbound(1, 2, 1), Err(XenError::Perm));
    assert_eq!(w.hub.evtchn_alloc_unbound(1, 9, 1), Err(XenError::Srch));
    assert_eq!(
        w.hub.evtchn_alloc_unbound(9, DOMID_SELF, 1),
        Err(XenError::Srch)
    );
    w.add(
        3,
        DomainConfig {
            max_ports: 3,
            ..DomainConfig::default()
        },
    );
    assert_eq!(w.hub.evtchn_alloc_unbound(3, DOMID_SELF, 1), Ok(1));
    assert_eq!(w.hub.evtchn_alloc_unbound(3, DOMID_SELF, 1), Ok(2));
    assert_eq!(
        w.hub.evtchn_alloc_unbound(3, DOMID_SELF, 1),
        Err(XenError::NoSpc)
    );
    // Freed ports are reused, lowest first.
    w.hub.evtchn_close(3, 1, &mut w.plat).unwrap();
    assert_eq!(w.hub.evtchn_alloc_unbound(3, DOMID_SELF, 1), Ok(1));
}

#[test]
fn max_ports_capped_by_width() {
    let mut w = world(0);
    w.add(
        1,
        DomainConfig {
            max_ports: 100_000,
            width: Width::W32,
            ..DomainConfig::default()
        },
    );
    assert!(w.hub.port(1, 1023).is_some());
    assert!(w.hub.port(1, 1024).is_none());
}

#[test]
fn bind_interdomain_connects_both_ends() {
    let mut w = world(2);
    let pa = w.hub.evtchn_alloc_unbound(1, DOMID_SELF, 2).unwrap();
    let (pb, up) = w
        .hub
        .evtchn_bind_interdomain(2, 1, pa, &mut w.plat)
        .unwrap();
    assert_eq!(pb, 1);
    assert_eq!(
        w.hub.port(1, pa).unwrap().chan,
        Channel::Interdomain {
            remote: 2,
            remote_port: pb
        }
    );
    assert_eq!(
        w.hub.port(2, pb).unwrap().chan,
        Channel::Interdomain {
            remote: 1,
            remote_port: pa
        }
    );
    // Xen marks the new local port pending (lost notifications).
    assert!(w.pending(2, pb));
    assert_eq!(up, Some(Upcall { dom: 2, vcpu: 0 }));
    w.check();
}

#[test]
fn bind_interdomain_refuses_a_third_domain() {
    let mut w = world(3);
    let pa = w.hub.evtchn_alloc_unbound(1, DOMID_SELF, 2).unwrap();
    assert_eq!(
        w.hub.evtchn_bind_interdomain(3, 1, pa, &mut w.plat),
        Err(XenError::Inval)
    );
    assert_eq!(
        w.hub.port(1, pa).unwrap().chan,
        Channel::Unbound { remote: 2 }
    );
    assert_eq!(w.hub.ports(3).count(), 0);
    // The named domain still can.
    assert!(w.hub.evtchn_bind_interdomain(2, 1, pa, &mut w.plat).is_ok());
    // Once bound it is no longer unbound: nobody else binds it.
    assert_eq!(
        w.hub.evtchn_bind_interdomain(2, 1, pa, &mut w.plat),
        Err(XenError::Inval)
    );
    w.check();
}

#[test]
fn bind_interdomain_errors() {
    let mut w = world(2);
    // No such remote domain.
    assert_eq!(
        w.hub.evtchn_bind_interdomain(2, 9, 1, &mut w.plat),
        Err(XenError::Srch)
    );
    // Remote port out of range, reserved, free, or a VIRQ.
    for port in [0, 5, 1024, u32::MAX] {
        assert_eq!(
            w.hub.evtchn_bind_interdomain(2, 1, port, &mut w.plat),
            Err(XenError::Inval)
        );
    }
    let v = w.hub.evtchn_bind_virq(1, virq::TIMER, 0).unwrap();
    assert_eq!(
        w.hub.evtchn_bind_interdomain(2, 1, v, &mut w.plat),
        Err(XenError::Inval)
    );
    // Local table full.
    w.add(
        3,
        DomainConfig {
            max_ports: 2,
            ..DomainConfig::default()
        },
    );
    let pa = w.hub.evtchn_alloc_unbound(1, DOMID_SELF, 3).unwrap();
    w.hub.evtchn_alloc_unbound(3, DOMID_SELF, 1).unwrap();
    assert_eq!(
        w.hub.evtchn_bind_interdomain(3, 1, pa, &mut w.plat),
        Err(XenError::NoSpc)
    );
    w.check();
}

#[test]
fn loopback_channel() {
    let mut w = world(1);
    let a = w
        .hub
        .evtchn_alloc_unbound(1, DOMID_SELF, DOMID_SELF)
        .unwrap();
    let (b, _) = w
        .hub
        .evtchn_bind_interdomain(1, DOMID_SELF, a, &mut w.plat)
        .unwrap();
    assert_ne!(a, b);
    w.shinfo(1).fill(0);
    assert_eq!(
        w.hub.evtchn_send(1, a, &mut w.plat),
        Ok(Some(Upcall { dom: 1, vcpu: 0 }))
    );
    assert!(w.pending(1, b));
    w.hub.evtchn_close(1, b, &mut w.plat).unwrap();
    assert_eq!(
        w.hub.port(1, a).unwrap().chan,
        Channel::Unbound { remote: 1 }
    );
    w.check();
}

#[test]
fn send_delivers_like_xen() {
    let mut w = world(2);
    let (pa, pb) = w.connect(1, 2);
    w.shinfo(2).fill(0);
    // First send: pending, selector bit, upcall_pending, upcall.
    assert_eq!(
        w.hub.evtchn_send(1, pa, &mut w.plat),
        Ok(Some(Upcall { dom: 2, vcpu: 0 }))
    );
    assert!(w.pending(2, pb));
    let si = w.shinfo(2);
    assert_eq!(si[0], 1, "evtchn_upcall_pending");
    assert_eq!(si[8] & 1, 1, "selector bit 0 (ports 0..63)");
    // Second send while pending: nothing new.
    assert_eq!(w.hub.evtchn_send(1, pa, &mut w.plat), Ok(None));
    // Guest acks everything; a send after the pending bit is cleared but
    // with upcall_pending still set raises no second upcall.
    w.shinfo(2)[Width::W64.pending_offset()] = 0;
    assert_eq!(w.hub.evtchn_send(1, pa, &mut w.plat), Ok(None));
    // Sends go the other way too.
    w.shinfo(1).fill(0);
    assert_eq!(
        w.hub.evtchn_send(2, pb, &mut w.plat),
        Ok(Some(Upcall { dom: 1, vcpu: 0 }))
    );
    assert!(w.pending(1, pa));
}

#[test]
fn send_to_masked_port_sets_pending_only() {
    let mut w = world(2);
    let (pa, pb) = w.connect(1, 2);
    w.shinfo(2).fill(0);
    w.mask(2, pb);
    assert_eq!(w.hub.evtchn_send(1, pa, &mut w.plat), Ok(None));
    assert!(w.pending(2, pb));
    assert_eq!(w.shinfo(2)[0], 0);
    // Unmask delivers it.
    assert_eq!(
        w.hub.evtchn_unmask(2, pb, &mut w.plat),
        Ok(Some(Upcall { dom: 2, vcpu: 0 }))
    );
    assert!(!shinfo::is_masked(w.shinfo(2), Width::W64, pb).unwrap());
    assert_eq!(w.shinfo(2)[0], 1);
}

#[test]
fn send_errors_and_unbound_drop() {
    let mut w = world(2);
    let u = w.hub.evtchn_alloc_unbound(1, DOMID_SELF, 2).unwrap();
    assert_eq!(w.hub.evtchn_send(1, u, &mut w.plat), Ok(None));
    let v = w.hub.evtchn_bind_virq(1, virq::TIMER, 0).unwrap();
    assert_eq!(w.hub.evtchn_send(1, v, &mut w.plat), Err(XenError::Inval));
    for p in [0, 77, 1024, u32::MAX] {
        assert_eq!(w.hub.evtchn_send(1, p, &mut w.plat), Err(XenError::Inval));
    }
    // Another domain's port number means the sender's own port of that number.
    let (pa, _) = w.connect(1, 2);
    assert_eq!(
        w.hub.evtchn_send(2, pa + 10, &mut w.plat),
        Err(XenError::Inval)
    );
}

#[test]
fn close_returns_peer_to_unbound_and_allows_rebind() {
    let mut w = world(2);
    let (pa, pb) = w.connect(1, 2);
    assert!(w.pending(2, pb));
    w.hub.evtchn_close(2, pb, &mut w.plat).unwrap();
    assert_eq!(w.hub.port(2, pb).unwrap().chan, Channel::Free);
    assert!(!w.pending(2, pb), "close clears the pending bit");
    assert_eq!(
        w.hub.port(1, pa).unwrap().chan,
        Channel::Unbound { remote: 2 }
    );
    w.check();
    // The closer may bind again to the now-unbound peer port.
    let (pb2, _) = w
        .hub
        .evtchn_bind_interdomain(2, 1, pa, &mut w.plat)
        .unwrap();
    assert_eq!(pb2, pb);
    // Closing the other end: the first closer's port becomes unbound for 1.
    w.hub.evtchn_close(1, pa, &mut w.plat).unwrap();
    assert_eq!(
        w.hub.port(2, pb2).unwrap().chan,
        Channel::Unbound { remote: 1 }
    );
    w.check();
}

#[test]
fn close_errors() {
    let mut w = world(1);
    for p in [0, 1, 1024, u32::MAX] {
        assert_eq!(w.hub.evtchn_close(1, p, &mut w.plat), Err(XenError::Inval));
    }
    assert_eq!(w.hub.evtchn_close(7, 1, &mut w.plat), Err(XenError::Srch));
}

#[test]
fn bind_virq_rules() {
    let mut w = world(1);
    let t0 = w.hub.evtchn_bind_virq(1, virq::TIMER, 0).unwrap();
    let t1 = w.hub.evtchn_bind_virq(1, virq::TIMER, 1).unwrap();
    assert_ne!(t0, t1);
    assert_eq!(w.hub.port(1, t1).unwrap().vcpu, 1);
    assert_eq!(
        w.hub.evtchn_bind_virq(1, virq::TIMER, 0),
        Err(XenError::Exist)
    );
    assert_eq!(
        w.hub.evtchn_bind_virq(1, virq::TIMER, 2),
        Err(XenError::NoEnt)
    );
    assert_eq!(
        w.hub.evtchn_bind_virq(1, virq::CONSOLE, 1),
        Err(XenError::Inval)
    );
    assert_eq!(
        w.hub.evtchn_bind_virq(1, virq::NR_VIRQS, 0),
        Err(XenError::Inval)
    );
    assert_eq!(w.hub.evtchn_bind_virq(1, u32::MAX, 0), Err(XenError::Inval));
    let c = w.hub.evtchn_bind_virq(1, virq::CONSOLE, 0).unwrap();
    w.check();
    // Closing frees the VIRQ for re-binding.
    w.hub.evtchn_close(1, t0, &mut w.plat).unwrap();
    assert_eq!(w.hub.evtchn_bind_virq(1, virq::TIMER, 0), Ok(t0));
    // Raising a VIRQ sets its port pending on the bound vCPU.
    w.shinfo(1).fill(0);
    assert_eq!(
        w.hub.raise_virq(1, virq::TIMER, 1, &mut w.plat),
        Some(Upcall { dom: 1, vcpu: 1 })
    );
    assert!(w.pending(1, t1));
    // A global VIRQ moved to vCPU 1 is delivered there.
    w.hub.evtchn_bind_vcpu(1, c, 1).unwrap();
    w.shinfo(1).fill(0);
    assert_eq!(
        w.hub.raise_virq(1, virq::CONSOLE, 0, &mut w.plat),
        Some(Upcall { dom: 1, vcpu: 1 })
    );
    assert_eq!(w.hub.raise_virq(1, virq::DEBUG, 0, &mut w.plat), None);
    w.check();
}

#[test]
fn status_reports_every_state() {
    let mut w = world(2);
    let (pa, pb) = w.connect(1, 2);
    let u = w.hub.evtchn_alloc_unbound(1, DOMID_SELF, 2).unwrap();
    let v = w.hub.evtchn_bind_virq(1, virq::DEBUG, 1).unwrap();
    let s = |w: &World, p| w.hub.evtchn_status(1, DOMID_SELF, p).unwrap();
    assert_eq!(s(&w, 0).status, STAT_CLOSED);
    assert_eq!(s(&w, 100).status, STAT_CLOSED);
    let i = s(&w, pa);
    assert_eq!(
        (i.status, i.detail),
        (STAT_INTERDOMAIN, StatusDetail::Interdomain(2, pb))
    );
    let un = s(&w, u);
    assert_eq!(
        (un.status, un.detail),
        (STAT_UNBOUND, StatusDetail::Unbound(2))
    );
    let vi = s(&w, v);
    assert_eq!(
        (vi.status, vi.vcpu, vi.detail),
        (STAT_VIRQ, 1, StatusDetail::Virq(virq::DEBUG))
    );
    // Encoded OUT part (offsets 8..24 of evtchn_status).
    let b = i.encode_out();
    assert_eq!(&b[0..4], &STAT_INTERDOMAIN.to_le_bytes());
    assert_eq!(&b[8..10], &2u16.to_le_bytes());
    assert_eq!(&b[12..16], &pb.to_le_bytes());
    // Errors.
    assert_eq!(w.hub.evtchn_status(1, 2, pa), Err(XenError::Perm));
    assert_eq!(w.hub.evtchn_status(1, 9, pa), Err(XenError::Srch));
    assert_eq!(w.hub.evtchn_status(1, 1, 1024), Err(XenError::Inval));
}

#[test]
fn bind_vcpu_rules_and_delivery() {
    let mut w = world(2);
    let (pa, pb) = w.connect(1, 2);
    w.hub.evtchn_bind_vcpu(2, pb, 1).unwrap();
    w.shinfo(2).fill(0);
    assert_eq!(
        w.hub.evtchn_send(1, pa, &mut w.plat),
        Ok(Some(Upcall { dom: 2, vcpu: 1 }))
    );
    assert_eq!(w.shinfo(2)[VCPU_INFO_SIZE], 1, "vcpu 1 upcall_pending");
    assert_eq!(w.shinfo(2)[0], 0, "vcpu 0 untouched");
    let t = w.hub.evtchn_bind_virq(2, virq::TIMER, 0).unwrap();
    assert_eq!(w.hub.evtchn_bind_vcpu(2, t, 1), Err(XenError::Inval));
    assert_eq!(w.hub.evtchn_bind_vcpu(2, pb, 2), Err(XenError::NoEnt));
    assert_eq!(w.hub.evtchn_bind_vcpu(2, 50, 0), Err(XenError::Inval));
    assert_eq!(w.hub.evtchn_bind_vcpu(2, 0, 0), Err(XenError::Inval));
    assert_eq!(w.hub.evtchn_bind_vcpu(2, 5000, 0), Err(XenError::Inval));
    let u = w.hub.evtchn_alloc_unbound(2, DOMID_SELF, 1).unwrap();
    assert_eq!(w.hub.evtchn_bind_vcpu(2, u, 1), Ok(()));
    w.check();
}

#[test]
fn unmask_errors_and_no_spurious_upcall() {
    let mut w = world(2);
    let (_, pb) = w.connect(1, 2);
    w.shinfo(2).fill(0);
    // Not masked: nothing.
    assert_eq!(w.hub.evtchn_unmask(2, pb, &mut w.plat), Ok(None));
    // Masked, not pending: mask cleared, nothing.
    w.mask(2, pb);
    assert_eq!(w.hub.evtchn_unmask(2, pb, &mut w.plat), Ok(None));
    assert!(!shinfo::is_masked(w.shinfo(2), Width::W64, pb).unwrap());
    // Free ports below the limit can be unmasked (as in Xen).
    assert_eq!(w.hub.evtchn_unmask(2, 300, &mut w.plat), Ok(None));
    assert_eq!(
        w.hub.evtchn_unmask(2, 1024, &mut w.plat),
        Err(XenError::Inval)
    );
}

#[test]
fn width32_layout() {
    let mut w = world(0);
    w.add(
        1,
        DomainConfig {
            nr_vcpus: 2,
            width: Width::W32,
            ..DomainConfig::default()
        },
    );
    w.add(2, DomainConfig::default());
    // Fill ports so the channel gets port 40 in domain 1 (selector bit 1).
    for _ in 1..40 {
        w.hub.evtchn_alloc_unbound(1, DOMID_SELF, 1).unwrap();
    }
    let (pa, pb) = w.connect(2, 1);
    assert_eq!(pb, 40);
    w.hub.evtchn_bind_vcpu(1, pb, 1).unwrap();
    w.shinfo(1).fill(0);
    assert!(w.hub.evtchn_send(2, pa, &mut w.plat).unwrap().is_some());
    let si = w.shinfo(1);
    assert_eq!(si[2048 + 5] & 1, 1, "pending bit 40");
    assert_eq!(
        si[VCPU_INFO_SIZE + 4] & 0b10,
        0b10,
        "32-bit selector at +4, bit 1"
    );
    assert_eq!(si[VCPU_INFO_SIZE], 1);
    // The 32-bit mask array starts at 2048 + 128.
    si.fill(0);
    si[2048 + 128 + 5] = 1;
    assert_eq!(w.hub.evtchn_send(2, pa, &mut w.plat), Ok(None));
}

#[test]
fn shinfo_functions_reject_out_of_range() {
    let mut page = [0u8; 4096];
    assert_eq!(
        shinfo::set_pending(&mut page[..], Width::W64, 4096, 0),
        None
    );
    assert_eq!(shinfo::set_pending(&mut page[..], Width::W64, 1, 32), None);
    assert_eq!(shinfo::unmask(&mut page[..], Width::W32, 1024, 0), None);
    assert_eq!(shinfo::upcall_pending(&page[..], 32), None);
    assert!(page.iter().all(|&b| b == 0));
    // A short page fails instead of panicking.
    let mut short = [0u8; 100];
    assert_eq!(shinfo::set_pending(&mut short[..], Width::W64, 1, 0), None);
    // Selector per word: port 64 → selector bit 1 on 64-bit.
    assert_eq!(
        shinfo::set_pending(&mut page[..], Width::W64, 64, 3),
        Some(true)
    );
    assert_eq!(page[3 * 64 + 8], 0b10);
    assert_eq!(page[2048 + 8], 1);
    assert_eq!(shinfo::upcall_pending(&page[..], 3), Some(true));
}

#[test]
fn upcall_routes() {
    let mut w = world(1);
    assert_eq!(w.hub.upcall_route(1, 0), None);
    w.hub
        .hvm_set_param(
            1,
            DOMID_SELF,
            abi::hvmop::PARAM_CALLBACK_IRQ,
            (2 << 56) | 0xF3,
        )
        .unwrap();
    assert_eq!(
        w.hub.upcall_route(1, 0),
        Some(UpcallRoute::CallbackVector(0xF3))
    );
    w.hub.hvm_set_upcall_vector(1, 1, 0xE0).unwrap();
    assert_eq!(w.hub.upcall_route(1, 1), Some(UpcallRoute::Lapic(0xE0)));
    assert_eq!(
        w.hub.upcall_route(1, 0),
        Some(UpcallRoute::CallbackVector(0xF3))
    );
    assert_eq!(w.hub.upcall_route(1, 2), None);
    let (_, p) = {
        let a = w.hub.evtchn_alloc_unbound(1, DOMID_SELF, 1).unwrap();
        w.hub.evtchn_bind_interdomain(1, 1, a, &mut w.plat).unwrap()
    };
    assert!(p.is_some());
    assert!(w.hub.upcall_pending(1, 0, &mut w.plat));
    assert!(!w.hub.upcall_pending(1, 1, &mut w.plat));
}
