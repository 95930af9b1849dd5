//! The whole path: registers → decode → execute → results in guest memory.

use super::decode::{mem, put, r32, r64, BASE};
use super::*;
use crate::abi::{evtchnop, gnttabop, hvmop, hypercall, xenmem, xenver};
use crate::model::FlatMem;

fn call(w: &mut World, dom: DomId, r: Regs, m: &mut FlatMem) -> Outcome {
    w.hub.hypercall(dom, &r, m, &mut w.plat)
}

fn u32_at(m: &mut FlatMem, a: u64) -> u32 {
    let mut b = [0; 4];
    m.read(a, &mut b).unwrap();
    u32::from_le_bytes(b)
}

fn i16_at(m: &mut FlatMem, a: u64) -> i16 {
    let mut b = [0; 2];
    m.read(a, &mut b).unwrap();
    i16::from_le_bytes(b)
}

fn u64_at(m: &mut FlatMem, a: u64) -> u64 {
    let mut b = [0; 8];
    m.read(a, &mut b).unwrap();
    u64::from_le_bytes(b)
}

#[test]
fn event_channel_round_trip_through_registers() {
    let mut w = world(2);
    let (mut m1, mut m2) = (mem(), mem());
    let e = hypercall::EVENT_CHANNEL_OP;
    // Domain 1: alloc_unbound(DOMID_SELF, 2).
    put(&mut m1, BASE, &[0xF0, 0x7F, 2, 0, 0, 0, 0, 0]);
    let o = call(
        &mut w,
        1,
        r64(e, evtchnop::ALLOC_UNBOUND.into(), BASE, 0),
        &mut m1,
    );
    assert_eq!(
        o,
        Outcome {
            ret: 0,
            upcall: None
        }
    );
    let p1 = u32_at(&mut m1, BASE + 4);
    assert_eq!(p1, 1);
    // Domain 2 (32-bit mode): bind_interdomain(1, p1).
    let mut b = [0u8; 12];
    b[0..2].copy_from_slice(&1u16.to_le_bytes());
    b[4..8].copy_from_slice(&p1.to_le_bytes());
    put(&mut m2, BASE, &b);
    let o = call(
        &mut w,
        2,
        r32(e, evtchnop::BIND_INTERDOMAIN.into(), BASE, 0),
        &mut m2,
    );
    assert_eq!(o.ret, 0);
    assert_eq!(o.upcall, Some(Upcall { dom: 2, vcpu: 0 }));
    let p2 = u32_at(&mut m2, BASE + 8);
    // Domain 1 sends; domain 2 is notified.
    w.shinfo(2).fill(0);
    put(&mut m1, BASE + 0x40, &p1.to_le_bytes());
    let o = call(
        &mut w,
        1,
        r64(e, evtchnop::SEND.into(), BASE + 0x40, 0),
        &mut m1,
    );
    assert_eq!(o.upcall, Some(Upcall { dom: 2, vcpu: 0 }));
    assert!(w.pending(2, p2));
    // Status of domain 2's port.
    let mut s = [0u8; 24];
    s[0..2].copy_from_slice(&DOMID_SELF.to_le_bytes());
    s[4..8].copy_from_slice(&p2.to_le_bytes());
    put(&mut m2, BASE + 0x80, &s);
    assert_eq!(
        call(
            &mut w,
            2,
            r64(e, evtchnop::STATUS.into(), BASE + 0x80, 0),
            &mut m2
        )
        .ret,
        0
    );
    assert_eq!(u32_at(&mut m2, BASE + 0x88), evtchnop::STAT_INTERDOMAIN);
    assert_eq!(u32_at(&mut m2, BASE + 0x90) & 0xFFFF, 1);
    assert_eq!(u32_at(&mut m2, BASE + 0x94), p1);
    // Errors come back as -errno, in EAX for 32-bit callers.
    put(&mut m2, BASE + 0xC0, &999u32.to_le_bytes());
    let o = call(
        &mut w,
        2,
        r32(e, evtchnop::CLOSE.into(), BASE + 0xC0, 0),
        &mut m2,
    );
    assert_eq!(o.ret, -22);
    assert_eq!(o.rax(Mode::Compat), 0xFFFF_FFEA);
    assert_eq!(o.rax(Mode::Long), (-22i64) as u64);
    assert_eq!(o.error(), Some(-22));
    w.check();
}

/// Readable but not writable guest memory.
struct ReadOnly(FlatMem);

impl GuestMem for ReadOnly {
    fn read(&mut self, gla: u64, buf: &mut [u8]) -> Result<(), MemFault> {
        self.0.read(gla, buf)
    }
    fn write(&mut self, _: u64, _: &[u8]) -> Result<(), MemFault> {
        Err(MemFault)
    }
}

#[test]
fn results_that_cannot_be_written_are_efault() {
    let mut w = world(2);
    let e = hypercall::EVENT_CHANNEL_OP;
    let mut m = ReadOnly(mem());
    put(&mut m.0, BASE, &[0xF0, 0x7F, 2, 0, 0, 0, 0, 0]);
    // Like Xen, the port stays allocated (cleaning up "would be a mess").
    let r = r64(e, evtchnop::ALLOC_UNBOUND.into(), BASE, 0);
    assert_eq!(w.hub.hypercall(1, &r, &mut m, &mut w.plat).ret, -14);
    assert!(w
        .hub
        .port(1, 1)
        .is_some_and(|p| p.chan != crate::evtchn::Channel::Free));
    // A bind whose result can't be written still reports its upcall.
    let mut b = [0u8; 12];
    b[0..2].copy_from_slice(&1u16.to_le_bytes());
    b[4..8].copy_from_slice(&1u32.to_le_bytes());
    put(&mut m.0, BASE + 0x20, &b);
    let r = r64(e, evtchnop::BIND_INTERDOMAIN.into(), BASE + 0x20, 0);
    let o = w.hub.hypercall(2, &r, &mut m, &mut w.plat);
    assert_eq!(
        o,
        Outcome {
            ret: -14,
            upcall: Some(Upcall { dom: 2, vcpu: 0 })
        }
    );
    // A grant batch stops at the first status it can't write.
    w.grant_rw(1, 0, 2, 10);
    let mut g = [0u8; 32];
    g[0..8].copy_from_slice(&(0x100u64 << 12).to_le_bytes());
    g[8..12].copy_from_slice(&gnttabop::GNTMAP_HOST_MAP.to_le_bytes());
    g[16..18].copy_from_slice(&1u16.to_le_bytes());
    put(&mut m.0, BASE + 0x40, &g);
    let r = r64(hypercall::GRANT_TABLE_OP, 0, BASE + 0x40, 1);
    assert_eq!(w.hub.hypercall(2, &r, &mut m, &mut w.plat).ret, -14);
    w.check();
    // Status at the end of memory: 24 bytes can't be read.
    let mut m = FlatMem::new(BASE, 20);
    assert_eq!(
        call(&mut w, 2, r64(e, evtchnop::STATUS.into(), BASE, 0), &mut m).ret,
        -14
    );
    // Unknown caller.
    let mut m = mem();
    assert_eq!(
        call(&mut w, 9, r64(e, evtchnop::SEND.into(), BASE, 0), &mut m).ret,
        -3
    );
}

#[test]
fn grant_map_batch_writes_status_and_handles() {
    let mut w = world(3);
    w.grant_rw(1, 7, 2, 10);
    let mut m = mem();
    let mk = |gref: u32, dom: u16, gfn: u64, flags: u32| {
        let mut b = [0u8; 32];
        b[0..8].copy_from_slice(&(gfn << 12).to_le_bytes());
        b[8..12].copy_from_slice(&flags.to_le_bytes());
        b[12..16].copy_from_slice(&gref.to_le_bytes());
        b[16..18].copy_from_slice(&dom.to_le_bytes());
        b[20..24].copy_from_slice(&0xAAAA_AAAAu32.to_le_bytes());
        b
    };
    put(&mut m, BASE, &mk(7, 1, 0x100, gnttabop::GNTMAP_HOST_MAP));
    put(
        &mut m,
        BASE + 32,
        &mk(7, 3, 0x101, gnttabop::GNTMAP_HOST_MAP),
    );
    put(
        &mut m,
        BASE + 64,
        &mk(600, 1, 0x102, gnttabop::GNTMAP_HOST_MAP),
    );
    let o = call(
        &mut w,
        2,
        r64(hypercall::GRANT_TABLE_OP, 0, BASE, 3),
        &mut m,
    );
    assert_eq!(o.ret, 0);
    assert_eq!(i16_at(&mut m, BASE + 18), 0);
    assert_eq!(u32_at(&mut m, BASE + 20), 0, "handle");
    assert_eq!(u64_at(&mut m, BASE + 24), 0, "dev_bus_addr");
    assert_eq!(
        i16_at(&mut m, BASE + 32 + 18),
        GntStatus::GeneralError.code()
    );
    assert_eq!(
        u32_at(&mut m, BASE + 32 + 20),
        0xAAAA_AAAA,
        "handle untouched on error"
    );
    assert_eq!(i16_at(&mut m, BASE + 64 + 18), GntStatus::BadGntref.code());
    w.check();
    // Unmap it through the hypercall (32-bit caller: same layout).
    let mut u = [0u8; 24];
    u[16..20].copy_from_slice(&0u32.to_le_bytes());
    put(&mut m, BASE + 0x200, &u);
    u[16..20].copy_from_slice(&5u32.to_le_bytes());
    put(&mut m, BASE + 0x218, &u);
    let o = call(
        &mut w,
        2,
        r32(hypercall::GRANT_TABLE_OP, 1, BASE + 0x200, 2),
        &mut m,
    );
    assert_eq!(o.ret, 0);
    assert_eq!(i16_at(&mut m, BASE + 0x200 + 20), 0);
    assert_eq!(
        i16_at(&mut m, BASE + 0x218 + 20),
        GntStatus::BadHandle.code()
    );
    assert!(w.plat.domain(2).unwrap().ept_grants.is_empty());
    w.check();
}

#[test]
fn grant_copy_statuses_both_abis() {
    let mut w = world(2);
    w.ram(1, 10)[0..4].copy_from_slice(b"xen!");
    w.grant_ro(1, 3, 2, 10);
    let mut m = mem();
    // 64-bit: gref(1,3)@0 → local gfn 5 @ 8, len 4; then an out-of-page copy.
    let mut c = [0u8; 80];
    c[0..4].copy_from_slice(&3u32.to_le_bytes());
    c[8..10].copy_from_slice(&1u16.to_le_bytes());
    c[16..24].copy_from_slice(&5u64.to_le_bytes());
    c[24..26].copy_from_slice(&DOMID_SELF.to_le_bytes());
    c[26..28].copy_from_slice(&8u16.to_le_bytes());
    c[32..34].copy_from_slice(&4u16.to_le_bytes());
    c[34..36].copy_from_slice(&gnttabop::GNTCOPY_SOURCE_GREF.to_le_bytes());
    c[36..38].copy_from_slice(&0x5555u16.to_le_bytes());
    c.copy_within(0..40, 40);
    c[40 + 26..40 + 28].copy_from_slice(&4095u16.to_le_bytes());
    put(&mut m, BASE, &c);
    let o = call(
        &mut w,
        2,
        r64(hypercall::GRANT_TABLE_OP, 5, BASE, 2),
        &mut m,
    );
    assert_eq!(o.ret, 0);
    assert_eq!(i16_at(&mut m, BASE + 36), 0);
    assert_eq!(i16_at(&mut m, BASE + 40 + 36), GntStatus::BadCopyArg.code());
    assert_eq!(&w.ram(2, 5)[8..12], b"xen!");
    // 32-bit: same copy to gfn 6, status at 20.
    let mut c = [0u8; 24];
    c[0..4].copy_from_slice(&3u32.to_le_bytes());
    c[4..6].copy_from_slice(&1u16.to_le_bytes());
    c[8..12].copy_from_slice(&6u32.to_le_bytes());
    c[12..14].copy_from_slice(&DOMID_SELF.to_le_bytes());
    c[16..18].copy_from_slice(&4u16.to_le_bytes());
    c[18..20].copy_from_slice(&gnttabop::GNTCOPY_SOURCE_GREF.to_le_bytes());
    put(&mut m, BASE + 0x100, &c);
    let o = call(
        &mut w,
        2,
        r32(hypercall::GRANT_TABLE_OP, 5, BASE + 0x100, 1),
        &mut m,
    );
    assert_eq!(o.ret, 0);
    assert_eq!(i16_at(&mut m, BASE + 0x100 + 20), 0);
    assert_eq!(&w.ram(2, 6)[0..4], b"xen!");
    w.check();
}

#[test]
fn setup_table_lists_frames() {
    let mut w = world(1);
    let mut m = mem();
    let place = |w: &mut World, i: u64, gfn: u64| {
        let req = crate::decode::AddToPhysmap {
            domid: DOMID_SELF,
            space: xenmem::SPACE_GRANT_TABLE,
            idx: i,
            gpfn: gfn,
        };
        w.hub.add_to_physmap(1, &req, &mut w.plat).unwrap();
    };
    place(&mut w, 0, 0xF00);
    place(&mut w, 2, 0xF02);
    let list = BASE + 0x800;
    let mut s = [0u8; 24];
    s[0..2].copy_from_slice(&DOMID_SELF.to_le_bytes());
    s[4..8].copy_from_slice(&3u32.to_le_bytes());
    s[16..24].copy_from_slice(&list.to_le_bytes());
    put(&mut m, BASE, &s);
    let o = call(
        &mut w,
        1,
        r64(hypercall::GRANT_TABLE_OP, 2, BASE, 1),
        &mut m,
    );
    assert_eq!(o.ret, 0);
    assert_eq!(i16_at(&mut m, BASE + 8), 0);
    assert_eq!(u64_at(&mut m, list), 0xF00);
    assert_eq!(u64_at(&mut m, list + 8), u64::MAX);
    assert_eq!(u64_at(&mut m, list + 16), 0xF02);
    // 32-bit: 4-byte entries, list pointer @12.
    let mut s = [0u8; 16];
    s[0..2].copy_from_slice(&DOMID_SELF.to_le_bytes());
    s[4..8].copy_from_slice(&3u32.to_le_bytes());
    s[12..16].copy_from_slice(&((list + 0x100) as u32).to_le_bytes());
    put(&mut m, BASE + 0x40, &s);
    let o = call(
        &mut w,
        1,
        r32(hypercall::GRANT_TABLE_OP, 2, BASE + 0x40, 1),
        &mut m,
    );
    assert_eq!(o.ret, 0);
    assert_eq!(u32_at(&mut m, list + 0x100), 0xF00);
    assert_eq!(u32_at(&mut m, list + 0x104), u32::MAX);
    assert_eq!(u32_at(&mut m, list + 0x108), 0xF02);
    // An unwritable list gives GNTST_bad_virt_addr.
    s[12..16].copy_from_slice(&0x10u32.to_le_bytes());
    put(&mut m, BASE + 0x40, &s);
    call(
        &mut w,
        1,
        r32(hypercall::GRANT_TABLE_OP, 2, BASE + 0x40, 1),
        &mut m,
    );
    assert_eq!(i16_at(&mut m, BASE + 0x48), GntStatus::BadVirtAddr.code());
    // Too many frames.
    s[4..8].copy_from_slice(&1000u32.to_le_bytes());
    put(&mut m, BASE + 0x40, &s);
    call(
        &mut w,
        1,
        r32(hypercall::GRANT_TABLE_OP, 2, BASE + 0x40, 1),
        &mut m,
    );
    assert_eq!(i16_at(&mut m, BASE + 0x48), GntStatus::GeneralError.code());
    // query_size.
    put(&mut m, BASE + 0x80, &[0xF0, 0x7F, 0, 0]);
    call(
        &mut w,
        1,
        r64(hypercall::GRANT_TABLE_OP, 6, BASE + 0x80, 1),
        &mut m,
    );
    assert_eq!(u32_at(&mut m, BASE + 0x84), 3);
    assert_eq!(u32_at(&mut m, BASE + 0x88), 64);
    assert_eq!(i16_at(&mut m, BASE + 0x8C), 0);
    put(&mut m, BASE + 0x80, &[9, 0, 0, 0]);
    call(
        &mut w,
        1,
        r64(hypercall::GRANT_TABLE_OP, 6, BASE + 0x80, 1),
        &mut m,
    );
    assert_eq!(i16_at(&mut m, BASE + 0x8C), GntStatus::BadDomain.code());
    // set_version/get_version.
    put(&mut m, BASE + 0xC0, &2u32.to_le_bytes());
    let o = call(
        &mut w,
        1,
        r64(hypercall::GRANT_TABLE_OP, 8, BASE + 0xC0, 1),
        &mut m,
    );
    assert_eq!(o.ret, XenError::OpNotSupp.ret());
    assert_eq!(u32_at(&mut m, BASE + 0xC0), 1);
    put(&mut m, BASE + 0xC0, &1u32.to_le_bytes());
    assert_eq!(
        call(
            &mut w,
            1,
            r64(hypercall::GRANT_TABLE_OP, 8, BASE + 0xC0, 1),
            &mut m
        )
        .ret,
        0
    );
    put(&mut m, BASE + 0xD0, &[0xF0, 0x7F, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        call(
            &mut w,
            1,
            r64(hypercall::GRANT_TABLE_OP, 10, BASE + 0xD0, 1),
            &mut m
        )
        .ret,
        0
    );
    assert_eq!(u32_at(&mut m, BASE + 0xD4), 1);
}

#[test]
fn physmap_hvm_and_version_through_registers() {
    let mut w = world(2);
    let mut m = mem();
    let mut a = [0u8; 24];
    a[0..2].copy_from_slice(&DOMID_SELF.to_le_bytes());
    a[16..24].copy_from_slice(&0xFEFF0u64.to_le_bytes());
    put(&mut m, BASE, &a);
    assert_eq!(
        call(&mut w, 1, r64(hypercall::MEMORY_OP, 7, BASE, 0), &mut m).ret,
        0
    );
    assert_eq!(w.hub.special_gfn(1, SpecialPage::SharedInfo), Some(0xFEFF0));
    // Store params: set by the toolstack, read by the guest, not writable by it.
    w.hub
        .toolstack_set_param(1, hvmop::PARAM_STORE_PFN, 0xFEFFF)
        .unwrap();
    let mut p = [0u8; 16];
    p[0..2].copy_from_slice(&DOMID_SELF.to_le_bytes());
    p[4..8].copy_from_slice(&hvmop::PARAM_STORE_PFN.to_le_bytes());
    put(&mut m, BASE + 0x40, &p);
    assert_eq!(
        call(
            &mut w,
            1,
            r64(hypercall::HVM_OP, hvmop::GET_PARAM, BASE + 0x40, 0),
            &mut m
        )
        .ret,
        0
    );
    assert_eq!(u64_at(&mut m, BASE + 0x48), 0xFEFFF);
    assert_eq!(
        call(
            &mut w,
            1,
            r64(hypercall::HVM_OP, hvmop::SET_PARAM, BASE + 0x40, 0),
            &mut m
        )
        .ret,
        XenError::Perm.ret()
    );
    // Callback vector.
    p[4..8].copy_from_slice(&hvmop::PARAM_CALLBACK_IRQ.to_le_bytes());
    p[8..16].copy_from_slice(&((2u64 << 56) | 0xF3).to_le_bytes());
    put(&mut m, BASE + 0x40, &p);
    assert_eq!(
        call(
            &mut w,
            1,
            r64(hypercall::HVM_OP, hvmop::SET_PARAM, BASE + 0x40, 0),
            &mut m
        )
        .ret,
        0
    );
    assert_eq!(
        w.hub.upcall_route(1, 0),
        Some(UpcallRoute::CallbackVector(0xF3))
    );
    put(&mut m, BASE + 0x60, &[1, 0, 0, 0, 0xE0, 0, 0, 0]);
    assert_eq!(
        call(
            &mut w,
            1,
            r64(
                hypercall::HVM_OP,
                hvmop::SET_EVTCHN_UPCALL_VECTOR,
                BASE + 0x60,
                0
            ),
            &mut m
        )
        .ret,
        0
    );
    assert_eq!(w.hub.upcall_route(1, 1), Some(UpcallRoute::Lapic(0xE0)));
    // xen_version.
    let o = call(
        &mut w,
        1,
        r64(hypercall::XEN_VERSION, xenver::VERSION.into(), 0, 0),
        &mut m,
    );
    assert_eq!(o.ret, (4 << 16) | 19);
    put(&mut m, BASE + 0x80, &[0; 8]);
    assert_eq!(
        call(
            &mut w,
            1,
            r64(hypercall::XEN_VERSION, 6, BASE + 0x80, 0),
            &mut m
        )
        .ret,
        0
    );
    assert_eq!(
        u32_at(&mut m, BASE + 0x84),
        (1 << xenver::FEAT_AUTO_TRANSLATED_PHYSMAP) | (1 << xenver::FEAT_HVM_CALLBACK_VECTOR)
    );
    put(&mut m, BASE + 0x80, &[1, 0, 0, 0]);
    assert_eq!(
        call(
            &mut w,
            1,
            r64(hypercall::XEN_VERSION, 6, BASE + 0x80, 0),
            &mut m
        )
        .ret,
        -22
    );
}

#[test]
fn random_bytes_in_memory_never_panic() {
    // Every op over a page of pseudo-random bytes, both modes.
    let mut w = world(3);
    let mut m = mem();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for round in 0..2000u64 {
        for chunk in m.bytes.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        let nr = [12, 17, 20, 32, 34][(round % 5) as usize];
        let cmd = (x >> 8) % 12;
        let count = (x >> 20) % 5;
        let r = if round % 2 == 0 {
            r64(nr, cmd, BASE + (x % 64) * 8, count)
        } else {
            r32(nr, cmd, BASE + (x % 64) * 8, count)
        };
        let dom = 1 + (round % 3) as u16;
        let _ = call(&mut w, dom, r, &mut m);
        w.hub.check_invariants().unwrap();
        w.plat.check_ept(&w.hub).unwrap();
    }
}
