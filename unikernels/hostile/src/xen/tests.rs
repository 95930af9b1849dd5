//! The battery against the VMM's own hub (`xen_abi::Hub`) on its model
//! platform, set up as the full-system test's VMs are (the store, a peer
//! and this domain, introduced by the toolstack), with cloister's platform
//! rule (special pages and grant mappings only above RAM and below 4 GiB)
//! and the runtime's address space (identity map of [4 KiB, 8 GiB), page 0
//! unmapped; hypercall arguments reach only RAM). Every case must come out
//! as the battery expects, and nobody else's state may change.

extern crate std;

use std::boxed::Box;
use std::collections::{BTreeMap, BTreeSet};
use std::string::{String, ToString};
use std::vec::Vec;

use xen_abi::abi::{gnttabop, hvmop, xenmem};
use xen_abi::decode::AddToPhysmap;
use xen_abi::gnttab::{locate, EntryV1};
use xen_abi::model::ModelPlatform;
use xen_abi::{
    GrantMapping, GuestMem, Hub, HubConfig, MemFault, Platform, Regs, SpecialPage, XenError,
};

use super::*;

const STORE: DomId = 1;
const PEER: DomId = 2;
const ME: DomId = 3;
/// 4 MiB of RAM, as the full-system test gives each VM.
const RAM_PAGES: u64 = 1024;
const RAM_END: u64 = RAM_PAGES * 4096;
/// The runtime's identity map ends here.
const IDENTITY_MAP_END: u64 = 8 << 30;
/// Where the simulated guest keeps its scratch buffer.
const SCRATCH: u64 = 0x30_1000;

/// The facts of the simulated system (the runtime's window at 2 GiB).
fn facts() -> Facts {
    Facts {
        me: ME,
        peer: PEER,
        store: STORE,
        ram_end: RAM_END,
        store_ring: RAM_END - 4096,
        shared_info: 0x8000_0000,
        grant_frame: 0x8000_1000,
        free_frame: 0x8010_0000 + 4095 * 4096,
        hypercall_page: 0x20_0000,
        own_page: 0x30_0000,
        grant_rw: 8,
        grant_ro: 9,
        grant_not_ram: 10,
    }
}

/// The model platform with cloister's rule for where special pages and
/// grant mappings may go.
struct Cloister<'a>(&'a mut ModelPlatform);

fn in_window(gfn: u64) -> bool {
    xen_abi::policy::foreign_gfn_allowed(RAM_PAGES, gfn)
}

impl Platform for Cloister<'_> {
    type Page = [u8];
    fn shared_info(&mut self, dom: DomId) -> Option<&mut [u8]> {
        self.0.shared_info(dom)
    }
    fn grant_frame(&mut self, dom: DomId, index: u32) -> Option<&mut [u8]> {
        self.0.grant_frame(dom, index)
    }
    fn grow_grant_table(&mut self, dom: DomId, nr_frames: u32) -> bool {
        self.0.grow_grant_table(dom, nr_frames)
    }
    fn ram_page(&mut self, dom: DomId, gfn: u64) -> Option<&mut [u8]> {
        self.0.ram_page(dom, gfn)
    }
    fn map_grant(&mut self, m: &GrantMapping) -> bool {
        in_window(m.gfn) && self.0.map_grant(m)
    }
    fn unmap_grant(&mut self, m: &GrantMapping) {
        self.0.unmap_grant(m)
    }
    fn place_page(&mut self, dom: DomId, page: SpecialPage, old: Option<u64>, gfn: u64) -> bool {
        in_window(gfn) && self.0.place_page(dom, page, old, gfn)
    }
}

/// This domain's linear address space as the runtime sets it up, with the
/// VMM's rule that hypercall arguments must be RAM.
struct Linear<'a>(&'a mut BTreeMap<u64, Box<[u8; 4096]>>);

impl Linear<'_> {
    fn byte(&mut self, gla: u64) -> Result<&mut u8, MemFault> {
        if !(4096..IDENTITY_MAP_END.min(RAM_END)).contains(&gla) {
            return Err(MemFault);
        }
        let page = self
            .0
            .entry(gla >> 12)
            .or_insert_with(|| Box::new([0; 4096]));
        Ok(&mut page[(gla & 0xfff) as usize])
    }
}

impl GuestMem for Linear<'_> {
    fn read(&mut self, gla: u64, buf: &mut [u8]) -> Result<(), MemFault> {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = *self.byte(gla.checked_add(i as u64).ok_or(MemFault)?)?;
        }
        Ok(())
    }
    fn write(&mut self, gla: u64, buf: &[u8]) -> Result<(), MemFault> {
        // Check first: the VMM's writes are per page, and the battery never
        // needs a partial one.
        for i in 0..buf.len() {
            self.byte(gla.checked_add(i as u64).ok_or(MemFault)?)?;
        }
        for (i, b) in buf.iter().enumerate() {
            *self.byte(gla + i as u64)? = *b;
        }
        Ok(())
    }
}

struct Sim {
    hub: Hub,
    plat: ModelPlatform,
    ram: BTreeMap<u64, Box<[u8; 4096]>>,
    calls: usize,
}

impl Sim {
    /// The store, the peer and this domain, as the VMM's toolstack leaves
    /// them (each guest's store port bound by the store, ring granted to
    /// it), after this domain's runtime placed `shared_info` and grant
    /// frame 0, registered its upcall, and granted its own page to itself.
    fn new() -> Sim {
        let f = facts();
        let mut hub = Hub::new(HubConfig::default());
        let mut plat = ModelPlatform::new();
        for id in [STORE, PEER, ME] {
            plat.add_domain(id, RAM_PAGES);
            hub.add_domain(
                id,
                xen_abi::policy::domain_config(),
                &mut Cloister(&mut plat),
            )
            .unwrap();
            hub.toolstack_set_param(id, hvmop::PARAM_STORE_PFN, RAM_PAGES - 1)
                .unwrap();
        }
        for id in [PEER, ME] {
            let port = hub.toolstack_alloc_unbound(id, STORE).unwrap();
            assert_eq!(port, STORE_PORT);
            hub.toolstack_set_param(id, hvmop::PARAM_STORE_EVTCHN, port.into())
                .unwrap();
            hub.toolstack_seed_grant(
                id,
                gnttabop::RESERVED_XENSTORE,
                STORE,
                (RAM_PAGES - 1) as u32,
                false,
                &mut Cloister(&mut plat),
            )
            .unwrap();
            hub.evtchn_bind_interdomain(STORE, id, port, &mut Cloister(&mut plat))
                .unwrap();
        }
        for (space, at) in [
            (xenmem::SPACE_SHARED_INFO, f.shared_info),
            (xenmem::SPACE_GRANT_TABLE, f.grant_frame),
        ] {
            let req = AddToPhysmap {
                domid: DOMID_SELF,
                space,
                idx: 0,
                gpfn: at >> 12,
            };
            hub.add_to_physmap(ME, &req, &mut Cloister(&mut plat))
                .unwrap();
        }
        hub.hvm_set_param(ME, DOMID_SELF, hvmop::PARAM_CALLBACK_IRQ, VECTOR)
            .unwrap();
        let own = (f.own_page >> 12) as u32;
        let shinfo = (f.shared_info >> 12) as u32;
        let permit = gnttabop::GTF_PERMIT_ACCESS;
        for (gref, flags, frame) in [
            (f.grant_rw, permit, own),
            (f.grant_ro, permit | gnttabop::GTF_READONLY, own),
            (f.grant_not_ram, permit, shinfo),
        ] {
            let (fi, off) = locate(gref);
            let e = EntryV1 {
                flags,
                domid: ME,
                frame,
            };
            plat.grant_frame(ME, fi).unwrap()[off..off + 8].copy_from_slice(&e.to_bytes());
        }
        let mut sim = Sim {
            hub,
            plat,
            ram: BTreeMap::new(),
            calls: 0,
        };
        let mut page = [0u8; 4096];
        xen_abi::cpuid::write_hypercall_page(&mut page);
        Linear(&mut sim.ram).write(f.hypercall_page, &page).unwrap();
        sim
    }
}

impl Machine for Sim {
    fn scratch(&self) -> u64 {
        SCRATCH
    }
    fn put_scratch(&mut self, bytes: &[u8; SCRATCH_LEN]) {
        Linear(&mut self.ram).write(SCRATCH, bytes).unwrap();
    }
    fn get_scratch(&mut self) -> [u8; SCRATCH_LEN] {
        let mut b = [0u8; SCRATCH_LEN];
        Linear(&mut self.ram).read(SCRATCH, &mut b).unwrap();
        b
    }
    fn hypercall(&mut self, nr: u64, args: [u64; 5]) -> i64 {
        self.calls += 1;
        let regs = Regs::long(nr, args);
        let out = self.hub.hypercall(
            ME,
            &regs,
            &mut Linear(&mut self.ram),
            &mut Cloister(&mut self.plat),
        );
        out.ret
    }
    /// As the VMM: the value must name page 0 of the hypercall area, at a
    /// page of RAM (vmm-core's `install_hypercall_page`).
    fn write_hypercall_msr(&mut self, value: u64) -> bool {
        let mut page = [0u8; 4096];
        xen_abi::cpuid::write_hypercall_page(&mut page);
        xen_abi::cpuid::hypercall_msr_write(value).is_ok()
            && Linear(&mut self.ram).write(value, &page).is_ok()
    }
}

/// Every domain's ports, pins and mappings, and the other domains' pages.
fn others_state(sim: &mut Sim) -> String {
    let mut s = String::new();
    for id in [STORE, PEER, ME] {
        let ports: Vec<_> = sim.hub.ports(id).collect();
        let g = sim.hub.grant_table(id).unwrap();
        let pins: Vec<_> = (0..g.nr_entries()).filter_map(|r| g.active(r)).collect();
        let maps: Vec<_> = g.mappings().collect();
        s += &std::format!("{id}: ports {ports:?} pins {pins:?} maps {maps:?}\n");
        if id != ME {
            s += &std::format!(
                "{:?} {:?}\n",
                sim.plat.shared_info(id).map(|p| p.to_vec()),
                sim.plat.grant_frame(id, 0).map(|p| p.to_vec())
            );
        }
    }
    s
}

#[test]
fn every_case_comes_out_as_expected_against_the_hub() {
    let mut sim = Sim::new();
    let before = others_state(&mut sim);
    let f = facts();
    let mut lines = Vec::new();
    let tally = run(&mut sim, &f, |case, got| {
        lines.push(Line { case, got }.to_string());
    });
    let bad: Vec<&String> = lines.iter().filter(|l| l.contains("UNEXPECTED")).collect();
    assert!(bad.is_empty(), "{} unexpected:\n{bad:#?}", bad.len());
    assert_eq!(tally.unexpected, 0);
    assert_eq!(tally.refused, refusals());
    assert_eq!(tally.accepted, 2, "the unaligned map and its unmap");
    assert_eq!(tally.refused + tally.accepted, cases().count());
    // Only the MSR cases do not reach the hub.
    assert_eq!(sim.calls, cases().count() - MSR_CASES.len());
    sim.hub.check_invariants().unwrap();
    sim.hub
        .check_grant_flags(&mut Cloister(&mut sim.plat))
        .unwrap();
    sim.plat.check_ept(&sim.hub).unwrap();
    assert_eq!(
        others_state(&mut sim),
        before,
        "a bad call changed some domain's state"
    );
    // The hypercall page is intact (the calls that read it wrote nothing).
    let mut page = [0u8; 4096];
    Linear(&mut sim.ram)
        .read(f.hypercall_page, &mut page)
        .unwrap();
    let mut want = [0u8; 4096];
    xen_abi::cpuid::write_hypercall_page(&mut want);
    assert!(page == want);
}

#[test]
fn the_expected_outcomes_are_the_hubs_numbers() {
    use xen_abi::GntStatus as G;
    let pairs = [
        (GENERAL_ERROR, G::GeneralError),
        (BAD_DOMAIN, G::BadDomain),
        (BAD_GNTREF, G::BadGntref),
        (BAD_HANDLE, G::BadHandle),
        (BAD_VIRT_ADDR, G::BadVirtAddr),
        (BAD_DEV_ADDR, G::BadDevAddr),
        (PERMISSION_DENIED, G::PermissionDenied),
        (BAD_PAGE, G::BadPage),
        (BAD_COPY_ARG, G::BadCopyArg),
    ];
    for (ours, hub) in pairs {
        assert_eq!(ours, Outcome::Status(GntStatus(hub.code())));
    }
    for (ours, hub) in [
        (EPERM, XenError::Perm),
        (ENOENT, XenError::NoEnt),
        (ESRCH, XenError::Srch),
        (EFAULT, XenError::Fault),
        (EINVAL, XenError::Inval),
        (ENOSYS, XenError::NoSys),
        (EOPNOTSUPP, XenError::OpNotSupp),
    ] {
        assert_eq!(ours, Outcome::Err(Errno(hub.errno())));
    }
}

#[test]
fn a_hypervisor_that_accepts_everything_is_caught() {
    struct Yes([u8; SCRATCH_LEN]);
    impl Machine for Yes {
        fn scratch(&self) -> u64 {
            SCRATCH
        }
        fn put_scratch(&mut self, bytes: &[u8; SCRATCH_LEN]) {
            self.0 = *bytes;
        }
        fn get_scratch(&mut self) -> [u8; SCRATCH_LEN] {
            // Every status field reads GNTST_okay.
            [0; SCRATCH_LEN]
        }
        fn hypercall(&mut self, _: u64, _: [u64; 5]) -> i64 {
            0
        }
        fn write_hypercall_msr(&mut self, _: u64) -> bool {
            true
        }
    }
    let mut lines = Vec::new();
    let tally = run(&mut Yes([0; SCRATCH_LEN]), &facts(), |case, got| {
        lines.push(Line { case, got }.to_string());
    });
    assert_eq!(tally.refused, 0);
    assert_eq!(tally.unexpected, refusals());
    assert!(lines.contains(
        &"hostile: xen: wrmsr to the hypercall-page MSR: 0x100000000 (4 GiB) -> accepted \
          UNEXPECTED (expected #GP)"
            .to_string()
    ));
    assert!(lines.contains(
        &"hostile: xen: grant_table_op(GNTTABOP_copy): length 0xffff -> status GNTST_okay (0) \
          UNEXPECTED (expected status GNTST_bad_copy_arg (-10))"
            .to_string()
    ));
}

#[test]
fn lines_name_each_case_once() {
    let mut seen = BTreeSet::new();
    for c in cases() {
        let line = Line::expected(&c).to_string();
        assert!(line.starts_with(PREFIX));
        assert!(!line.contains("UNEXPECTED"));
        assert!(seen.insert(line.clone()), "twice: {line}");
    }
    assert_eq!(
        Line::expected(&FIXED[0]).to_string(),
        "hostile: xen: event_channel_op(EVTCHNOP_alloc_unbound): in another domain -> EPERM (-1)"
    );
    assert_eq!(
        Done(7).to_string(),
        "hostile: xen: 7 bad calls refused; own channels still work"
    );
    // Every implemented operation meets every bad pointer.
    let faults = cases().filter(|c| c.expect == EFAULT).count();
    assert_eq!(faults, POINTER_OPS.len() * BAD_POINTERS.len());
}
