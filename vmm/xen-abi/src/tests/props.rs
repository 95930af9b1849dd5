//! Property tests: random operation sequences across three domains.
//!
//! After every step: a port is bound at both ends or neither (and VIRQ
//! tables agree), every mapping is backed by a pin of its grantee, the
//! model's EPT holds exactly the hub's mappings, and — while granters follow
//! the grant protocol — pinned entries show GTF_reading/GTF_writing. Per
//! step: a map succeeds only through an entry that named the mapper (and
//! allowed writing, if asked); close leaves the peer unbound. A restart
//! removes a domain (others' mappings of its grants survive, orphaned, and
//! stay usable) and re-creates it once no orphaned mapping keeps its id
//! taken; a dead domain does nothing meanwhile.

use proptest::prelude::*;

use super::decode::{mem, BASE};
use super::*;
use crate::abi::gnttabop::{GTF_PERMIT_ACCESS, GTF_READING, GTF_READONLY, GTF_WRITING};
use crate::abi::xenmem;
use crate::decode::{AddToPhysmap, CopyPtr, GrantCopy, UnmapGrantRef};
use crate::evtchn::Channel;
use crate::model::FlatMem;

#[derive(Clone, Debug)]
enum Op {
    AllocUnbound {
        d: u16,
        remote: u16,
    },
    Bind {
        d: u16,
        rd: u16,
        port: u32,
        pick: Option<u8>,
    },
    BindVirq {
        d: u16,
        virq: u32,
        vcpu: u32,
    },
    Close {
        d: u16,
        port: u32,
        pick: Option<u8>,
    },
    Send {
        d: u16,
        port: u32,
        pick: Option<u8>,
    },
    Unmask {
        d: u16,
        port: u32,
    },
    BindVcpu {
        d: u16,
        port: u32,
        vcpu: u32,
    },
    Mask {
        d: u16,
        port: u32,
    },
    Ack {
        d: u16,
    },
    Grant {
        d: u16,
        gref: u32,
        grantee: u16,
        frame: u32,
        ro: bool,
    },
    Revoke {
        d: u16,
        gref: u32,
    },
    Map {
        d: u16,
        granter: u16,
        gref: u32,
        gfn: u64,
        ro: bool,
        pick: Option<u8>,
    },
    Unmap {
        d: u16,
        handle: u32,
        pick: Option<u8>,
    },
    Copy {
        d: u16,
        granter: u16,
        gref: u32,
        gfn: u64,
        off: u16,
        len: u16,
        to_grant: bool,
        pick: Option<u8>,
    },
    Setup {
        d: u16,
        frames: u32,
    },
    Place {
        d: u16,
        grant: bool,
        idx: u64,
        gfn: u64,
    },
    Restart {
        d: u16,
    },
    /// `d`'s vCPU writes a byte through one of its grant mappings, then
    /// reads it back.
    Touch {
        d: u16,
        pick: u8,
        off: u16,
        byte: u8,
    },
    /// A hostile granter or guest writes raw bytes into its own shared pages.
    Scribble {
        d: u16,
        grant_table: bool,
        off: usize,
        bytes: Vec<u8>,
    },
}

fn dom() -> impl Strategy<Value = u16> {
    prop_oneof![8 => 1u16..=3, 1 => Just(4u16), 1 => Just(DOMID_SELF)]
}

fn port() -> impl Strategy<Value = u32> {
    prop_oneof![10 => 0u32..10, 1 => Just(1023u32), 1 => Just(1024u32), 1 => any::<u32>()]
}

/// `Some(i)`: pick the i-th plausible target from the current state.
fn pick() -> impl Strategy<Value = Option<u8>> {
    proptest::option::weighted(0.7, any::<u8>())
}

fn nth<T: Copy>(v: &[T], i: u8) -> Option<T> {
    (!v.is_empty()).then(|| v[usize::from(i) % v.len()])
}

/// Ports of `d` in use.
fn used_ports(w: &World, d: DomId) -> Vec<Port> {
    w.hub.ports(d).map(|(p, _)| p).collect()
}

/// Unbound ports anywhere that `d` may bind.
fn bindable(w: &World, d: DomId) -> Vec<(DomId, Port)> {
    let mut v = Vec::new();
    for g in w.hub.domain_ids() {
        for (p, e) in w.hub.ports(g) {
            if e.chan == (Channel::Unbound { remote: d }) {
                v.push((g, p));
            }
        }
    }
    v
}

/// Grant entries (first frame) that name `d`.
fn granted_to(w: &mut World, d: DomId) -> Vec<(DomId, GrantRef)> {
    let mut v = Vec::new();
    for g in w.hub.domain_ids().collect::<Vec<_>>() {
        for r in 0..8 {
            let e = w.entry(g, r);
            if e.flags & 3 == GTF_PERMIT_ACCESS && e.domid == d {
                v.push((g, r));
            }
        }
    }
    v
}

fn op(hostile: bool) -> impl Strategy<Value = Op> {
    let d = 1u16..=3;
    let base = prop_oneof![
        1 => (d.clone(), dom()).prop_map(|(d, remote)| Op::AllocUnbound { d, remote }),
        2 => (d.clone(), dom(), port(), pick()).prop_map(|(d, rd, port, pick)| Op::Bind { d, rd, port, pick }),
        1 => (d.clone(), 0u32..26, 0u32..3).prop_map(|(d, virq, vcpu)| Op::BindVirq { d, virq, vcpu }),
        1 => (d.clone(), port(), pick()).prop_map(|(d, port, pick)| Op::Close { d, port, pick }),
        2 => (d.clone(), port(), pick()).prop_map(|(d, port, pick)| Op::Send { d, port, pick }),
        1 => (d.clone(), port()).prop_map(|(d, port)| Op::Unmask { d, port }),
        1 => (d.clone(), port(), 0u32..3).prop_map(|(d, port, vcpu)| Op::BindVcpu { d, port, vcpu }),
        1 => (d.clone(), 0u32..10).prop_map(|(d, port)| Op::Mask { d, port }),
        1 => d.clone().prop_map(|d| Op::Ack { d }),
        3 => (d.clone(), 0u32..8, 1u16..=4, 0u32..70, any::<bool>())
            .prop_map(|(d, gref, grantee, frame, ro)| Op::Grant { d, gref, grantee, frame, ro }),
        1 => (d.clone(), 0u32..8).prop_map(|(d, gref)| Op::Revoke { d, gref }),
        3 => (d.clone(), dom(), prop_oneof![9 => 0u32..10, 1 => Just(600u32)], 0x100u64..0x108, any::<bool>(), pick())
            .prop_map(|(d, granter, gref, gfn, ro, pick)| Op::Map { d, granter, gref, gfn, ro, pick }),
        3 => (d.clone(), 0u32..8, pick()).prop_map(|(d, handle, pick)| Op::Unmap { d, handle, pick }),
        1 => (d.clone(), dom(), 0u32..10, 0u64..70, prop_oneof![3 => 0u16..4000, 1 => 4000u16..4100], 0u16..300, any::<bool>(), pick()).prop_map(
            |(d, granter, gref, gfn, off, len, to_grant, pick)| Op::Copy { d, granter, gref, gfn, off, len, to_grant, pick }
        ),
        1 => (d.clone(), 0u32..5).prop_map(|(d, frames)| Op::Setup { d, frames }),
        1 => (d.clone(), any::<bool>(), 0u64..4, 0x100u64..0x108)
            .prop_map(|(d, grant, idx, gfn)| Op::Place { d, grant, idx, gfn }),
        1 => (d.clone()).prop_map(|d| Op::Restart { d }),
        1 => (d.clone(), any::<u8>(), 0u16..4096, any::<u8>())
            .prop_map(|(d, pick, off, byte)| Op::Touch { d, pick, off, byte }),
    ];
    let scribble = (
        d,
        any::<bool>(),
        0usize..4100,
        proptest::collection::vec(any::<u8>(), 1..16),
    )
        .prop_map(|(d, grant_table, off, bytes)| Op::Scribble {
            d,
            grant_table,
            off,
            bytes,
        });
    if hostile {
        prop_oneof![6 => base, 1 => scribble].boxed()
    } else {
        base.boxed()
    }
}

fn cfg() -> DomainConfig {
    DomainConfig {
        nr_vcpus: 2,
        max_ports: 16,
        max_grant_frames: 4,
        max_maptrack: 6,
        width: Width::W64,
    }
}

fn real(caller: DomId, d: DomId) -> DomId {
    if d == DOMID_SELF {
        caller
    } else {
        d
    }
}

impl Op {
    /// The domain acting.
    fn actor(&self) -> u16 {
        match *self {
            Op::AllocUnbound { d, .. }
            | Op::Bind { d, .. }
            | Op::BindVirq { d, .. }
            | Op::Close { d, .. }
            | Op::Send { d, .. }
            | Op::Unmask { d, .. }
            | Op::BindVcpu { d, .. }
            | Op::Mask { d, .. }
            | Op::Ack { d }
            | Op::Grant { d, .. }
            | Op::Revoke { d, .. }
            | Op::Map { d, .. }
            | Op::Unmap { d, .. }
            | Op::Copy { d, .. }
            | Op::Setup { d, .. }
            | Op::Place { d, .. }
            | Op::Restart { d }
            | Op::Touch { d, .. }
            | Op::Scribble { d, .. } => d,
        }
    }
}

/// Mappings other domains hold of `g`'s grants.
fn mappings_of(w: &World, g: DomId) -> Vec<GrantMapping> {
    let mut v = Vec::new();
    for other in w.hub.domain_ids().filter(|&o| o != g) {
        for (_, m) in w.hub.grant_table(other).unwrap().mappings() {
            if m.granter == g {
                v.push(*m);
            }
        }
    }
    v
}

/// Runs one op and checks what it promises.
fn step(w: &mut World, op: &Op, hostile: bool) -> Result<(), TestCaseError> {
    if !w.hub.has_domain(op.actor()) && !matches!(op, Op::Restart { .. }) {
        // A dead domain runs nothing.
        return Ok(());
    }
    match *op {
        Op::AllocUnbound { d, remote } => {
            if let Ok(p) = w.hub.evtchn_alloc_unbound(d, DOMID_SELF, remote) {
                let chan = w.hub.port(d, p).map(|e| e.chan);
                prop_assert_eq!(
                    chan,
                    Some(Channel::Unbound {
                        remote: real(d, remote)
                    })
                );
            }
        }
        Op::Bind { d, rd, port, pick } => {
            let (rd, port) = pick
                .and_then(|i| nth(&bindable(w, d), i))
                .unwrap_or((rd, port));
            let rdom = real(d, rd);
            let before = w.hub.port(rdom, port).map(|e| e.chan);
            match w.hub.evtchn_bind_interdomain(d, rd, port, &mut w.plat) {
                Ok((l, _)) => {
                    prop_assert_eq!(before, Some(Channel::Unbound { remote: d }));
                    prop_assert_eq!(
                        w.hub.port(rdom, port).map(|e| e.chan),
                        Some(Channel::Interdomain {
                            remote: d,
                            remote_port: l
                        })
                    );
                }
                Err(_) => {
                    if w.hub.has_domain(rdom) {
                        prop_assert_eq!(w.hub.port(rdom, port).map(|e| e.chan), before);
                    }
                }
            }
        }
        Op::BindVirq { d, virq, vcpu } => {
            let _ = w.hub.evtchn_bind_virq(d, virq, vcpu);
        }
        Op::Close { d, port, pick } => {
            let port = pick.and_then(|i| nth(&used_ports(w, d), i)).unwrap_or(port);
            let before = w.hub.port(d, port).map(|e| e.chan);
            if w.hub.evtchn_close(d, port, &mut w.plat).is_ok() {
                prop_assert_eq!(w.hub.port(d, port).map(|e| e.chan), Some(Channel::Free));
                if let Some(Channel::Interdomain {
                    remote,
                    remote_port,
                }) = before
                {
                    prop_assert_eq!(
                        w.hub.port(remote, remote_port).map(|e| e.chan),
                        Some(Channel::Unbound { remote: d })
                    );
                }
            } else {
                prop_assert!(matches!(
                    before,
                    None | Some(Channel::Free | Channel::Reserved)
                ));
            }
        }
        Op::Send { d, port, pick } => {
            let port = pick.and_then(|i| nth(&used_ports(w, d), i)).unwrap_or(port);
            let before = w.hub.port(d, port).map(|e| e.chan);
            let r = w.hub.evtchn_send(d, port, &mut w.plat);
            if let Some(Channel::Interdomain {
                remote,
                remote_port,
            }) = before
            {
                prop_assert!(r.is_ok());
                prop_assert!(
                    w.pending(remote, remote_port),
                    "send leaves the peer pending"
                );
            }
            if let Ok(Some(up)) = r {
                prop_assert!(w.hub.upcall_pending(up.dom, up.vcpu, &mut w.plat));
            }
        }
        Op::Unmask { d, port } => {
            if let Ok(Some(up)) = w.hub.evtchn_unmask(d, port, &mut w.plat) {
                prop_assert_eq!(up.dom, d);
                prop_assert!(w.hub.upcall_pending(d, up.vcpu, &mut w.plat));
            }
        }
        Op::BindVcpu { d, port, vcpu } => {
            let _ = w.hub.evtchn_bind_vcpu(d, port, vcpu);
        }
        Op::Mask { d, port } => w.mask(d, port),
        Op::Ack { d } => {
            // The guest's handler: clear upcall_pending, selectors, pending.
            let si = w.shinfo(d);
            si[..2048].iter_mut().step_by(64).for_each(|b| *b = 0);
            si[8..16].fill(0);
            si[64 + 8..64 + 16].fill(0);
            si[2048..2560].fill(0);
        }
        Op::Grant {
            d,
            gref,
            grantee,
            frame,
            ro,
        } => {
            // The protocol: only (re)write an entry Xen isn't using.
            let e = w.entry(d, gref);
            if hostile || e.flags & (GTF_READING | GTF_WRITING) == 0 {
                let flags = GTF_PERMIT_ACCESS | if ro { GTF_READONLY } else { 0 };
                w.grant(d, gref, grantee, frame, flags);
            }
        }
        Op::Revoke { d, gref } => {
            let e = w.entry(d, gref);
            if hostile || e.flags & (GTF_READING | GTF_WRITING) == 0 {
                w.grant(d, gref, e.domid, e.frame, 0);
            }
        }
        Op::Map {
            d,
            granter,
            gref,
            gfn,
            ro,
            pick,
        } => {
            let (granter, gref) = pick
                .and_then(|i| nth(&granted_to(w, d), i))
                .unwrap_or((granter, gref));
            let g = real(d, granter);
            let entry = if w.hub.has_domain(g) && gref < w.hub.grant_table(g).unwrap().nr_entries()
            {
                Some(w.entry(g, gref))
            } else {
                None
            };
            let pinned = w.hub.grant_table(g).and_then(|t| t.active(gref).copied());
            let held = w.hub.grant_table(d).unwrap().mappings().count();
            let ept = w.plat.domain(d).unwrap().ept_grants.clone();
            let r = w.map(d, granter, gref, gfn, ro);
            let names_me = entry.is_some_and(|e| {
                e.flags & 3 == GTF_PERMIT_ACCESS
                    && e.domid == d
                    && (ro || e.flags & GTF_READONLY == 0)
            });
            if let Ok(h) = r {
                prop_assert!(
                    names_me,
                    "mapped through an entry not granting it: {:?}",
                    entry
                );
                let m = *w.hub.grant_table(d).unwrap().mapping(h).unwrap();
                let want = pinned.map_or(u64::from(entry.unwrap().frame), |a| a.frame);
                prop_assert_eq!(m.frame, want);
                prop_assert_eq!(m.writable, !ro);
                let after = w.entry(g, gref);
                prop_assert!(after.flags & GTF_READING != 0);
                prop_assert!(ro || after.flags & GTF_WRITING != 0);
            } else {
                // Refused: nothing was mapped.
                prop_assert_eq!(w.hub.grant_table(d).unwrap().mappings().count(), held);
                prop_assert_eq!(&w.plat.domain(d).unwrap().ept_grants, &ept);
            }
        }
        Op::Unmap { d, handle, pick } => {
            let handles: Vec<GrantHandle> = w
                .hub
                .grant_table(d)
                .unwrap()
                .mappings()
                .map(|(h, _)| h)
                .collect();
            let handle = pick.and_then(|i| nth(&handles, i)).unwrap_or(handle);
            let req = UnmapGrantRef {
                host_addr: 0,
                dev_bus_addr: 0,
                handle,
            };
            let had = w.hub.grant_table(d).unwrap().mapping(handle).copied();
            let r = w.hub.gnttab_unmap(d, &req, &mut w.plat);
            prop_assert_eq!(r.is_ok(), had.is_some());
        }
        Op::Copy {
            d,
            granter,
            gref,
            gfn,
            off,
            len,
            to_grant,
            pick,
        } => {
            let (granter, gref) = pick
                .and_then(|i| nth(&granted_to(w, d), i))
                .unwrap_or((granter, gref));
            let gside = CopyPtr::Gref {
                dom: granter,
                gref,
                offset: off,
            };
            let lside = CopyPtr::Gmfn {
                dom: DOMID_SELF,
                gfn,
                offset: 0,
            };
            let req = if to_grant {
                GrantCopy {
                    source: lside,
                    dest: gside,
                    len,
                }
            } else {
                GrantCopy {
                    source: gside,
                    dest: lside,
                    len,
                }
            };
            let g = real(d, granter);
            let entry = if w.hub.has_domain(g) && gref < w.hub.grant_table(g).unwrap().nr_entries()
            {
                Some(w.entry(g, gref))
            } else {
                None
            };
            if w.hub.gnttab_copy(d, &req, &mut w.plat).is_ok() {
                let e = entry.unwrap();
                prop_assert!(e.flags & 3 == GTF_PERMIT_ACCESS && e.domid == d);
                prop_assert!(!to_grant || e.flags & GTF_READONLY == 0);
            }
        }
        Op::Setup { d, frames } => {
            let _ = w.hub.gnttab_setup_table(d, DOMID_SELF, frames, &mut w.plat);
        }
        Op::Place { d, grant, idx, gfn } => {
            let space = if grant {
                xenmem::SPACE_GRANT_TABLE
            } else {
                xenmem::SPACE_SHARED_INFO
            };
            let req = AddToPhysmap {
                domid: DOMID_SELF,
                space,
                idx,
                gpfn: gfn,
            };
            if w.hub.add_to_physmap(d, &req, &mut w.plat).is_ok() {
                let page = if grant {
                    SpecialPage::GrantFrame(idx as u32)
                } else {
                    SpecialPage::SharedInfo
                };
                prop_assert_eq!(w.hub.special_gfn(d, page), Some(gfn));
            }
        }
        Op::Restart { d } => {
            if w.hub.has_domain(d) {
                let theirs = mappings_of(w, d);
                w.hub.remove_domain(d, &mut w.plat).unwrap();
                prop_assert!(w.plat.domain(d).unwrap().ept_grants.is_empty());
                // Others' mappings of its grants survive, orphaned.
                prop_assert_eq!(mappings_of(w, d), theirs.clone());
                prop_assert_eq!(w.hub.orphaned_mappings(d), theirs.len());
                for other in w.hub.domain_ids().collect::<Vec<_>>() {
                    for (_, e) in w.hub.ports(other) {
                        let to_dead =
                            matches!(e.chan, Channel::Interdomain { remote, .. } if remote == d);
                        prop_assert!(!to_dead, "channel to a dead domain");
                    }
                }
                w.plat.remove_domain(d);
            }
            // Re-created only once no orphaned mapping keeps the id taken.
            if w.hub.orphaned_mappings(d) == 0 {
                w.add(d, cfg());
            } else {
                prop_assert_eq!(w.hub.add_domain(d, cfg(), &mut w.plat), Err(XenError::Busy));
            }
        }
        Op::Touch { d, pick, off, byte } => {
            let maps: Vec<GrantMapping> = w
                .hub
                .grant_table(d)
                .unwrap()
                .mappings()
                .map(|(_, m)| *m)
                .collect();
            if let Some(m) = nth(&maps, pick) {
                let off = usize::from(off);
                let r = w.plat.write_gfn(d, m.gfn, off, &[byte]);
                prop_assert_eq!(r.is_ok(), m.writable, "write through {:?}", m);
                let mut b = [0u8];
                prop_assert!(w.plat.read_gfn(d, m.gfn, off, &mut b).is_ok());
                if m.writable {
                    prop_assert_eq!(b[0], byte);
                }
                // The grantee and the granter (or its zombie page) agree.
                let g = w.plat.granted_page(&m).unwrap()[off];
                prop_assert_eq!(g, b[0]);
            }
        }
        Op::Scribble {
            d,
            grant_table,
            off,
            ref bytes,
        } => {
            let page = if grant_table {
                w.plat.grant_frame(d, 0)
            } else {
                w.plat.shared_info(d)
            };
            if let Some(p) = page {
                let _ = p.write(off.min(4096 - bytes.len()), bytes);
            }
        }
    }
    Ok(())
}

fn run(ops: &[Op], hostile: bool) -> Result<(), TestCaseError> {
    let mut w = world(0);
    for d in 1..=3 {
        w.add(d, cfg());
    }
    for op in ops {
        step(&mut w, op, hostile)?;
        let inv = w.hub.check_invariants();
        prop_assert!(inv.is_ok(), "{:?} after {:?}", inv, op);
        let ept = w.plat.check_ept(&w.hub);
        prop_assert!(ept.is_ok(), "{:?} after {:?}", ept, op);
        if !hostile {
            let flags = w.hub.check_grant_flags(&mut w.plat);
            prop_assert!(flags.is_ok(), "{:?} after {:?}", flags, op);
        }
    }
    // Tear everything down: once every grantee is gone too, nothing may
    // stay mapped, not even orphaned, and no zombie page is left.
    for d in 1..=3 {
        if w.hub.has_domain(d) {
            w.hub.remove_domain(d, &mut w.plat).unwrap();
        }
    }
    for d in 1..=3 {
        prop_assert_eq!(w.hub.orphaned_mappings(d), 0);
        w.plat.remove_domain(d);
    }
    prop_assert!(w.plat.zombie_ram.is_empty());
    prop_assert_eq!(w.plat.stray_unmaps, 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn protocol_following_domains(ops in proptest::collection::vec(op(false), 1..120)) {
        run(&ops, false)?;
    }

    #[test]
    fn hostile_domains(ops in proptest::collection::vec(op(true), 1..120)) {
        run(&ops, true)?;
    }

    #[test]
    fn random_hypercalls_never_panic(
        calls in proptest::collection::vec(
            (1u16..=3, prop_oneof![Just(12u64), Just(17), Just(20), Just(32), Just(34), any::<u64>()],
             0u64..16, 0u64..0x4000, 0u64..6, any::<bool>(), proptest::collection::vec(any::<u8>(), 0..256)),
            1..60),
    ) {
        let mut w = world(3);
        let mut m: FlatMem = mem();
        for (d, nr, cmd, off, count, compat, bytes) in calls {
            let at = (off as usize).min(m.bytes.len() - bytes.len());
            m.bytes[at..at + bytes.len()].copy_from_slice(&bytes);
            let regs = Regs {
                rax: nr,
                rdi: cmd,
                rsi: BASE + off,
                rdx: count,
                rbx: cmd,
                rcx: BASE + off,
                mode: if compat { Mode::Compat } else { Mode::Long },
                ..Regs::default()
            };
            let o = w.hub.hypercall(d, &regs, &mut m, &mut w.plat);
            prop_assert!(o.ret >= -95 && o.ret <= 0x7FFF_FFFF);
            prop_assert!(w.hub.check_invariants().is_ok());
            prop_assert!(w.plat.check_ept(&w.hub).is_ok());
        }
    }
}
