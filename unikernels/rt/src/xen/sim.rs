//! Host tests against the VMM's side: the guest's hypercall encodings
//! ([`super::ops`]), event scanning and grant logic run against
//! `xen_abi::Hub` on its model platform, as two domains would under
//! cloister.
//!
//! Each simulated domain's `shared_info` and grant-table frames are
//! [`TestPage`]s the guest code uses through [`Page`]; around every
//! hypercall they are copied to and from the model's pages, which is exact
//! because the hub only touches them during calls.

use super::alloc;
use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::cell::RefCell;

use xen_abi::model::ModelPlatform;
use xen_abi::{DomainConfig, GuestMem, Hub, HubConfig, MemFault, Platform, Regs};

use super::abi::{gnttabop, hvmop, shared_info, xenmem, DomId, Port};
use super::events::{self, PortSet};
use super::grant::{GrantError, Grants};
use super::ops::{self, ChannelStatus, GntOpError, Hypercall};
use super::page::testing::TestPage;
use super::page::Page;
use super::{Errno, GntStatus};

/// Grant frames mirrored per domain.
const FRAMES: usize = 4;

/// The test's own memory as the "guest's linear address space": argument
/// buffers are host stack arrays.
struct HostMem;

impl GuestMem for HostMem {
    fn read(&mut self, gla: u64, buf: &mut [u8]) -> Result<(), MemFault> {
        if gla == 0 {
            return Err(MemFault);
        }
        // SAFETY: the guest code passes addresses of live argument buffers
        // of the struct's size (what the hub reads).
        unsafe { core::ptr::copy_nonoverlapping(gla as *const u8, buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }
    fn write(&mut self, gla: u64, buf: &[u8]) -> Result<(), MemFault> {
        if gla == 0 {
            return Err(MemFault);
        }
        // SAFETY: as in `read`; the buffers are mutable and unborrowed during the call.
        unsafe { core::ptr::copy_nonoverlapping(buf.as_ptr(), gla as *mut u8, buf.len()) };
        Ok(())
    }
}

struct Mirror {
    shinfo: Box<TestPage>,
    frames: Vec<Box<TestPage>>,
    fired: PortSet,
}

/// A hub with domains, and their pages as the guests see them.
pub struct World {
    hub: RefCell<Hub>,
    plat: RefCell<ModelPlatform>,
    doms: BTreeMap<DomId, Mirror>,
}

fn copy(from: &[u8], to: &Page<'_>) {
    to.write(0, from).unwrap();
}

impl World {
    pub fn new(ids: &[DomId]) -> World {
        let mut hub = Hub::new(HubConfig::default());
        let mut plat = ModelPlatform::new();
        let mut doms = BTreeMap::new();
        for &id in ids {
            plat.add_domain(id, 1024);
            hub.add_domain(id, DomainConfig::default(), &mut plat)
                .unwrap();
            doms.insert(
                id,
                Mirror {
                    shinfo: TestPage::new(),
                    frames: (0..FRAMES).map(|_| TestPage::new()).collect(),
                    fired: PortSet::new(),
                },
            );
        }
        let w = World {
            hub: RefCell::new(hub),
            plat: RefCell::new(plat),
            doms,
        };
        w.pull();
        w
    }

    /// Model → guest pages.
    pub fn pull(&self) {
        let mut plat = self.plat.borrow_mut();
        for (&id, m) in &self.doms {
            copy(plat.shared_info(id).unwrap(), &m.shinfo.page());
            for (i, f) in m.frames.iter().enumerate() {
                if let Some(src) = plat.grant_frame(id, i as u32) {
                    copy(src, &f.page());
                }
            }
        }
    }

    /// Guest pages → model.
    fn push(&self) {
        let mut plat = self.plat.borrow_mut();
        for (&id, m) in &self.doms {
            m.shinfo
                .page()
                .read(0, plat.shared_info(id).unwrap())
                .unwrap();
            for (i, f) in m.frames.iter().enumerate() {
                if let Some(dst) = plat.grant_frame(id, i as u32) {
                    f.page().read(0, dst).unwrap();
                }
            }
        }
    }

    pub fn dom(&self, id: DomId) -> Dom<'_> {
        Dom { w: self, id }
    }

    pub fn hub(&self) -> core::cell::RefMut<'_, Hub> {
        self.hub.borrow_mut()
    }

    pub fn plat(&self) -> core::cell::RefMut<'_, ModelPlatform> {
        self.plat.borrow_mut()
    }
}

/// One domain making hypercalls.
#[derive(Clone, Copy)]
pub struct Dom<'w> {
    w: &'w World,
    id: DomId,
}

impl Hypercall for Dom<'_> {
    fn hypercall(&self, nr: u64, args: [u64; 5]) -> i64 {
        self.w.push();
        let regs = Regs::long(nr, args);
        let out = {
            let mut plat = self.w.plat.borrow_mut();
            self.w
                .hub
                .borrow_mut()
                .hypercall(self.id, &regs, &mut HostMem, &mut *plat)
        };
        self.w.pull();
        out.ret
    }
}

impl<'w> Dom<'w> {
    fn mirror(&self) -> &'w Mirror {
        &self.w.doms[&self.id]
    }

    pub fn shinfo(&self) -> Page<'w> {
        self.mirror().shinfo.page()
    }

    pub fn frame(&self, i: usize) -> Page<'w> {
        self.mirror().frames[i].page()
    }

    /// Whether `evtchn_upcall_pending` is set (the VMM would inject).
    pub fn upcall_pending(&self) -> bool {
        self.shinfo().load_u8(shared_info::UPCALL_PENDING) == Some(1)
    }

    /// What the upcall handler would do.
    pub fn scan(&self) -> usize {
        events::scan(&self.shinfo(), &self.mirror().fired, false)
    }

    pub fn take(&self, port: Port) -> bool {
        self.scan();
        self.mirror().fired.take(port)
    }

    /// Places `n` grant frames (as `GrantTable::init` does) and returns
    /// the grant logic over them, mapping at fake window addresses.
    pub fn grants(&self, n: u32, slots: u32) -> Grants<'w, Dom<'w>> {
        let (_, max) = ops::query_size(self).unwrap();
        assert!(n <= max);
        for i in 0..n {
            ops::add_to_physmap(
                self,
                xenmem::SPACE_GRANT_TABLE,
                u64::from(i),
                0x80001 + u64::from(i),
            )
            .unwrap();
        }
        let pages = (0..n as usize).map(|i| self.frame(i)).collect();
        // `Grants` keeps a reference to its hypercaller.
        let me: &'w Dom<'w> = Box::leak(Box::new(*self));
        Grants::new(me, pages, 0x8010_0000, slots)
    }
}

#[test]
fn event_channels_between_two_domains() {
    let w = World::new(&[1, 2]);
    let (a, b) = (w.dom(1), w.dom(2));
    assert_eq!(ops::version(&a), Ok((4, 19)));
    for d in [a, b] {
        ops::add_to_physmap(&d, xenmem::SPACE_SHARED_INFO, 0, 0x80000).unwrap();
        ops::set_param(&d, hvmop::PARAM_CALLBACK_IRQ, ops::callback_vector(0xf3)).unwrap();
    }
    assert_eq!(
        ops::get_param(&a, hvmop::PARAM_CALLBACK_IRQ),
        Ok((2 << 56) | 0xf3)
    );

    let pa = ops::alloc_unbound(&a, 2).unwrap();
    assert_eq!(
        ops::status(&a, pa).unwrap().0,
        ChannelStatus::Unbound { remote: 2 }
    );
    let pb = ops::bind_interdomain(&b, 1, pa).unwrap();
    assert_eq!(
        ops::status(&b, pb).unwrap(),
        (
            ChannelStatus::Interdomain {
                remote: 1,
                remote_port: pa
            },
            0
        )
    );
    assert_eq!(
        ops::status(&a, pa).unwrap().0,
        ChannelStatus::Interdomain {
            remote: 2,
            remote_port: pb
        }
    );
    // Binding marks the new port pending (events sent meanwhile were lost).
    assert!(b.take(pb));
    assert!(!b.take(pb));

    ops::send(&a, pa).unwrap();
    ops::send(&a, pa).unwrap();
    assert!(b.upcall_pending());
    assert_eq!(b.scan(), 1, "two sends, one event");
    assert!(
        !b.upcall_pending(),
        "the scan cleared evtchn_upcall_pending"
    );
    assert!(b.take(pb));
    ops::send(&b, pb).unwrap();
    assert!(a.take(pa) && !b.take(pb));

    // Masked: pending but no upcall until unmasked.
    events::mask(&b.shinfo(), pb);
    ops::send(&a, pa).unwrap();
    assert!(!b.upcall_pending());
    assert!(!b.take(pb));
    ops::unmask(&b, pb).unwrap();
    assert!(b.upcall_pending());
    assert!(b.take(pb));

    // Closing one end leaves the other unbound (naming the closer).
    ops::close(&b, pb).unwrap();
    assert_eq!(ops::status(&b, pb).unwrap().0, ChannelStatus::Closed);
    assert_eq!(
        ops::status(&a, pa).unwrap().0,
        ChannelStatus::Unbound { remote: 2 }
    );
    // Sending on an unbound port is dropped silently, as Xen does.
    assert_eq!(ops::send(&a, pa), Ok(()));

    // Errors come back as named errnos.
    assert_eq!(ops::send(&b, pb), Err(Errno::EINVAL));
    assert_eq!(ops::close(&b, pb), Err(Errno::EINVAL));
    assert_eq!(ops::bind_interdomain(&b, 1, 999), Err(Errno::EINVAL));
    assert_eq!(ops::bind_interdomain(&b, 9, 1).unwrap_err().name(), "ESRCH");
    let v = ops::bind_virq(&a, 2, 0).unwrap();
    assert_eq!(ops::status(&a, v).unwrap().0, ChannelStatus::Virq(2));
    assert_eq!(ops::bind_virq(&a, 2, 0), Err(Errno::EEXIST));
    assert_eq!(ops::bind_virq(&a, 2, 1), Err(Errno::EINVAL));
    assert_eq!(
        ops::set_param(&a, hvmop::PARAM_STORE_PFN, 5),
        Err(Errno::EPERM)
    );
    assert_eq!(ops::add_to_physmap(&a, 9, 0, 0x80000), Err(Errno::EINVAL));
}

#[test]
fn store_params_come_from_the_toolstack() {
    let w = World::new(&[1, 3]);
    let port = w.hub().toolstack_alloc_unbound(3, 1).unwrap();
    w.hub()
        .toolstack_set_param(3, hvmop::PARAM_STORE_PFN, 0x3fff)
        .unwrap();
    w.hub()
        .toolstack_set_param(3, hvmop::PARAM_STORE_EVTCHN, u64::from(port))
        .unwrap();
    let d = w.dom(3);
    assert_eq!(ops::get_param(&d, hvmop::PARAM_STORE_PFN), Ok(0x3fff));
    assert_eq!(
        ops::get_param(&d, hvmop::PARAM_STORE_EVTCHN),
        Ok(u64::from(port))
    );
    // The store domain binds to it; the guest's sends reach it.
    let s = ops::bind_interdomain(&w.dom(1), 3, port).unwrap();
    assert!(w.dom(1).take(s));
    ops::send(&d, port).unwrap();
    assert!(w.dom(1).take(s));
}

#[test]
fn grants_between_two_domains() {
    let w = World::new(&[1, 2]);
    let (a, b) = (w.dom(1), w.dom(2));
    let mut ga = a.grants(2, 4);
    let mut gb = b.grants(1, 2);
    assert_eq!(ga.capacity(), 1024);
    assert_eq!(ops::query_size(&a), Ok((2, 64)));

    // Domain 1 grants its frame 0x10 to domain 2; references start at 8.
    let r = ga.grant_access(2, 0x10, false).unwrap();
    assert_eq!(r, 8);
    let m = gb.map(1, r, false).unwrap();
    assert_eq!(m.gpa, 0x8010_0000);
    {
        let plat = w.plat();
        let ept = &plat.domain(2).unwrap().ept_grants;
        let e = ept[&0x80100];
        assert_eq!((e.granter, e.gref, e.frame, e.writable), (1, 8, 0x10, true));
    }
    // Mapped: ending the grant is refused and leaves it in place.
    match ga.end_access(r) {
        Err(GrantError::InUse { gref: 8, flags }) => {
            assert_eq!(
                flags & (gnttabop::GTF_READING | gnttabop::GTF_WRITING),
                0x18
            )
        }
        other => panic!("end_access while mapped: {other:?}"),
    }
    assert_eq!(ga.granted(), 1);
    gb.unmap(m).unwrap();
    assert_eq!(gb.mapped(), 0);
    assert_eq!(ga.end_access(r), Ok(()));
    assert_eq!(ga.end_access(r), Err(GrantError::BadRef(8)));
    assert_eq!(ga.granted(), 0);
    // Once ended, the peer can no longer map it.
    assert_eq!(
        gb.map(1, r, false),
        Err(GrantError::Status {
            op: "grant_table_op(map_grant_ref)",
            status: GntStatus(-1)
        })
    );
    assert_eq!(gb.mapped(), 0, "a failed map frees its frame");

    // Read-only grants: only read-only mappings, and only GTF_reading.
    let ro = ga.grant_access(2, 0x11, true).unwrap();
    assert!(matches!(
        gb.map(1, ro, false),
        Err(GrantError::Status { .. })
    ));
    let m = gb.map(1, ro, true).unwrap();
    assert!(m.readonly);
    assert_eq!(
        ga.end_access(ro),
        Err(GrantError::InUse {
            gref: ro,
            flags: gnttabop::GTF_PERMIT_ACCESS | gnttabop::GTF_READONLY | gnttabop::GTF_READING
        })
    );
    gb.unmap(m).unwrap();
    ga.end_access(ro).unwrap();

    // A grant for someone else, a reference out of range, no such domain.
    let other = ga.grant_access(3, 0x12, false).unwrap();
    let err = |s: i16| {
        Err(GrantError::Status {
            op: "grant_table_op(map_grant_ref)",
            status: GntStatus(s),
        })
    };
    assert_eq!(gb.map(1, other, false), err(-1));
    assert_eq!(gb.map(1, 5000, false), err(-3));
    assert_eq!(gb.map(9, 8, false), err(-2));
    // The second frame's entries work too.
    let mut refs = Vec::new();
    for i in 0..600u64 {
        refs.push(ga.grant_access(2, 0x100 + i, true).unwrap());
    }
    let last = *refs.last().unwrap();
    assert!(last >= 512);
    let m = gb.map(1, last, true).unwrap();
    // Out of window frames.
    let m2 = gb.map(1, refs[0], true).unwrap();
    assert_eq!(gb.map(1, refs[1], true), Err(GrantError::NoFreeSlot));
    gb.unmap(m).unwrap();
    gb.unmap(m2).unwrap();
    // A bad handle is named.
    let forged = gb.map(1, refs[2], true).unwrap();
    gb.unmap(forged).unwrap();
    assert_eq!(
        gb.unmap(forged),
        Err(GrantError::Status {
            op: "grant_table_op(unmap_grant_ref)",
            status: GntStatus(-4)
        })
    );
    for r in refs {
        ga.end_access(r).unwrap();
    }
    assert_eq!(ga.granted(), 1);
    w.hub().check_invariants().unwrap();
    // Frames beyond what the domain may have are refused by the hypervisor.
    assert_eq!(
        ops::add_to_physmap(&a, xenmem::SPACE_GRANT_TABLE, 64, 0x90000),
        Err(Errno::EINVAL)
    );
    let _ = GntOpError::Errno(Errno::EINVAL);
}
