//! Grant tables: setup/query, map/unmap, copy, flags, and the checks.

use super::*;
use crate::abi::gnttabop::*;
use crate::decode::{CopyPtr, GrantCopy, UnmapGrantRef};
use crate::gnttab::{set_status, Active};
use crate::mem::SharedPage;

fn unmap(w: &mut World, caller: DomId, handle: GrantHandle) -> Result<(), GntStatus> {
    let req = UnmapGrantRef {
        host_addr: 0,
        dev_bus_addr: 0,
        handle,
    };
    w.hub.gnttab_unmap(caller, &req, &mut w.plat)
}

#[test]
fn new_domain_has_one_frame() {
    let w = world(1);
    let g = w.hub.grant_table(1).unwrap();
    assert_eq!(
        (g.nr_frames(), g.max_frames(), g.nr_entries()),
        (1, 64, 512)
    );
}

#[test]
fn setup_table_and_query_size() {
    let mut w = world(2);
    assert_eq!(
        w.hub.gnttab_setup_table(1, DOMID_SELF, 4, &mut w.plat),
        Ok(())
    );
    assert_eq!(w.hub.gnttab_query_size(1, DOMID_SELF), Ok((4, 64)));
    // Asking for fewer keeps the table.
    assert_eq!(w.hub.gnttab_setup_table(1, 1, 2, &mut w.plat), Ok(()));
    assert_eq!(w.hub.gnttab_query_size(1, 1), Ok((4, 64)));
    assert_eq!(
        w.hub.gnttab_setup_table(1, DOMID_SELF, 65, &mut w.plat),
        Err(GntStatus::GeneralError)
    );
    assert_eq!(
        w.hub.gnttab_setup_table(1, 2, 1, &mut w.plat),
        Err(GntStatus::PermissionDenied)
    );
    assert_eq!(
        w.hub.gnttab_setup_table(1, 9, 1, &mut w.plat),
        Err(GntStatus::BadDomain)
    );
    assert_eq!(
        w.hub.gnttab_query_size(1, 2),
        Err(GntStatus::PermissionDenied)
    );
    assert_eq!(w.hub.gnttab_query_size(1, 9), Err(GntStatus::BadDomain));
    w.plat.grant_frame_limit = Some(5);
    assert_eq!(
        w.hub.gnttab_setup_table(1, DOMID_SELF, 6, &mut w.plat),
        Err(GntStatus::GeneralError)
    );
    assert_eq!(w.hub.gnttab_query_size(1, DOMID_SELF), Ok((4, 64)));
}

#[test]
fn map_sets_flags_maps_frame_and_unmap_clears() {
    let mut w = world(2);
    w.grant_rw(1, 7, 2, 10);
    let h = w.map(2, 1, 7, 0x1000, false).unwrap();
    let e = w.entry(1, 7);
    assert_eq!(e.flags, GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING);
    let m = *w.hub.grant_table(2).unwrap().mapping(h).unwrap();
    assert_eq!(
        m,
        GrantMapping {
            grantee: 2,
            gfn: 0x1000,
            granter: 1,
            gref: 7,
            frame: 10,
            writable: true
        }
    );
    assert_eq!(w.plat.domain(2).unwrap().ept_grants.get(&0x1000), Some(&m));
    w.check();
    unmap(&mut w, 2, h).unwrap();
    assert_eq!(w.entry(1, 7).flags, GTF_PERMIT_ACCESS);
    assert!(w.plat.domain(2).unwrap().ept_grants.is_empty());
    assert!(w.hub.grant_table(1).unwrap().active(7).is_none());
    w.check();
}

#[test]
fn readonly_map_sets_only_reading() {
    let mut w = world(2);
    w.grant_ro(1, 3, 2, 11);
    assert_eq!(w.map(2, 1, 3, 0x2000, false), Err(GntStatus::GeneralError));
    assert_eq!(w.entry(1, 3).flags, GTF_PERMIT_ACCESS | GTF_READONLY);
    let h = w.map(2, 1, 3, 0x2000, true).unwrap();
    assert_eq!(
        w.entry(1, 3).flags,
        GTF_PERMIT_ACCESS | GTF_READONLY | GTF_READING
    );
    assert!(!w.hub.grant_table(2).unwrap().mapping(h).unwrap().writable);
    w.check();
}

#[test]
fn mixed_pins_keep_flags_until_last_unmap() {
    let mut w = world(2);
    w.grant_rw(1, 1, 2, 12);
    let ro = w.map(2, 1, 1, 0x3000, true).unwrap();
    let rw = w.map(2, 1, 1, 0x3001, false).unwrap();
    assert_eq!(
        w.hub.grant_table(1).unwrap().active(1),
        Some(&Active {
            grantee: 2,
            frame: 12,
            readers: 1,
            writers: 1
        })
    );
    unmap(&mut w, 2, rw).unwrap();
    assert_eq!(w.entry(1, 1).flags, GTF_PERMIT_ACCESS | GTF_READING);
    w.check();
    unmap(&mut w, 2, ro).unwrap();
    assert_eq!(w.entry(1, 1).flags, GTF_PERMIT_ACCESS);
    w.check();
}

#[test]
fn map_refuses_grants_not_naming_the_caller() {
    let mut w = world(3);
    w.grant_rw(1, 5, 2, 10);
    // Domain 3 is not named.
    assert_eq!(w.map(3, 1, 5, 0x100, false), Err(GntStatus::GeneralError));
    assert_eq!(w.map(3, 1, 5, 0x100, true), Err(GntStatus::GeneralError));
    assert_eq!(w.entry(1, 5).flags, GTF_PERMIT_ACCESS);
    assert!(w.plat.domain(3).unwrap().ept_grants.is_empty());
    // Invalid and other-typed entries.
    w.grant(1, 6, 2, 10, GTF_INVALID_FOR_TEST);
    assert_eq!(w.map(2, 1, 6, 0x100, true), Err(GntStatus::GeneralError));
    w.grant(1, 6, 2, 10, 2); // GTF_accept_transfer
    assert_eq!(w.map(2, 1, 6, 0x100, true), Err(GntStatus::GeneralError));
    w.grant(1, 6, 2, 10, GTF_PERMIT_ACCESS | GTF_SUB_PAGE);
    assert_eq!(w.map(2, 1, 6, 0x100, true), Err(GntStatus::GeneralError));
    w.check();
}

const GTF_INVALID_FOR_TEST: u16 = 0;

#[test]
fn map_errors() {
    let mut w = world(2);
    w.grant_rw(1, 0, 2, 10);
    // Beyond the table.
    assert_eq!(w.map(2, 1, 512, 0x100, false), Err(GntStatus::BadGntref));
    assert_eq!(
        w.map(2, 1, u32::MAX, 0x100, false),
        Err(GntStatus::BadGntref)
    );
    // No such granter.
    assert_eq!(w.map(2, 9, 0, 0x100, false), Err(GntStatus::BadDomain));
    // Flags.
    let mut req = MapGrantRef {
        host_addr: 0x100 << 12,
        flags: 0,
        gref: 0,
        dom: 1,
    };
    assert_eq!(
        w.hub.gnttab_map(2, &req, &mut w.plat),
        Err(GntStatus::BadGntref)
    );
    req.flags = GNTMAP_DEVICE_MAP;
    assert_eq!(
        w.hub.gnttab_map(2, &req, &mut w.plat),
        Err(GntStatus::GeneralError)
    );
    req.flags = GNTMAP_HOST_MAP | GNTMAP_CONTAINS_PTE;
    assert_eq!(
        w.hub.gnttab_map(2, &req, &mut w.plat),
        Err(GntStatus::GeneralError)
    );
    // GFN beyond 52-bit physical.
    req.flags = GNTMAP_HOST_MAP;
    req.host_addr = u64::MAX;
    assert_eq!(
        w.hub.gnttab_map(2, &req, &mut w.plat),
        Err(GntStatus::GeneralError)
    );
    // Frame not RAM of the granter: refused, flags restored.
    w.grant_rw(1, 1, 2, RAM_PAGES as u32 + 5);
    assert_eq!(w.map(2, 1, 1, 0x100, false), Err(GntStatus::BadPage));
    assert_eq!(w.entry(1, 1).flags, GTF_PERMIT_ACCESS);
    // The VMM refuses the mapping: refused, flags restored.
    w.plat.refuse_map = true;
    assert_eq!(w.map(2, 1, 0, 0x100, false), Err(GntStatus::GeneralError));
    assert_eq!(w.entry(1, 0).flags, GTF_PERMIT_ACCESS);
    w.plat.refuse_map = false;
    // Already a mapping at that GFN.
    w.map(2, 1, 0, 0x100, true).unwrap();
    assert_eq!(w.map(2, 1, 0, 0x100, true), Err(GntStatus::GeneralError));
    // A special page at that GFN.
    let req = crate::decode::AddToPhysmap {
        domid: DOMID_SELF,
        space: abi::xenmem::SPACE_SHARED_INFO,
        idx: 0,
        gpfn: 0x200,
    };
    w.hub.add_to_physmap(2, &req, &mut w.plat).unwrap();
    assert_eq!(w.map(2, 1, 0, 0x200, true), Err(GntStatus::GeneralError));
    w.check();
}

#[test]
fn map_handle_table_full() {
    let mut w = world(0);
    w.add(1, DomainConfig::default());
    w.add(
        2,
        DomainConfig {
            max_maptrack: 2,
            ..DomainConfig::default()
        },
    );
    w.grant_rw(1, 0, 2, 10);
    assert_eq!(w.map(2, 1, 0, 0x100, true), Ok(0));
    assert_eq!(w.map(2, 1, 0, 0x101, true), Ok(1));
    assert_eq!(w.map(2, 1, 0, 0x102, true), Err(GntStatus::NoDeviceSpace));
    unmap(&mut w, 2, 0).unwrap();
    assert_eq!(w.map(2, 1, 0, 0x102, true), Ok(0));
    w.check();
}

#[test]
fn entry_retargeted_while_pinned_is_refused_for_the_new_domain() {
    let mut w = world(3);
    w.grant_rw(1, 0, 2, 10);
    let h = w.map(2, 1, 0, 0x100, false).unwrap();
    // A misbehaving granter rewrites the in-use entry to name domain 3.
    w.grant(1, 0, 3, 20, GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING);
    assert_eq!(w.map(3, 1, 0, 0x100, false), Err(GntStatus::GeneralError));
    // And domain 2 can no longer add mappings through it.
    assert_eq!(w.map(2, 1, 0, 0x101, false), Err(GntStatus::GeneralError));
    // Its existing mapping keeps the frame it was made with.
    assert_eq!(w.hub.grant_table(2).unwrap().mapping(h).unwrap().frame, 10);
    unmap(&mut w, 2, h).unwrap();
    // After the last unmap the new grantee can map the new frame.
    let h3 = w.map(3, 1, 0, 0x100, false).unwrap();
    assert_eq!(w.hub.grant_table(3).unwrap().mapping(h3).unwrap().frame, 20);
    w.hub.check_invariants().unwrap();
}

#[test]
fn frame_change_while_pinned_keeps_first_frame() {
    let mut w = world(2);
    w.grant_rw(1, 0, 2, 10);
    w.map(2, 1, 0, 0x100, true).unwrap();
    w.grant(1, 0, 2, 11, GTF_PERMIT_ACCESS | GTF_READING);
    let h = w.map(2, 1, 0, 0x101, true).unwrap();
    assert_eq!(w.hub.grant_table(2).unwrap().mapping(h).unwrap().frame, 10);
    w.check();
}

#[test]
fn unmap_errors() {
    let mut w = world(2);
    w.grant_rw(1, 0, 2, 10);
    let h = w.map(2, 1, 0, 0x100, false).unwrap();
    assert_eq!(unmap(&mut w, 2, h + 1), Err(GntStatus::BadHandle));
    assert_eq!(unmap(&mut w, 2, u32::MAX), Err(GntStatus::BadHandle));
    // Handles are per domain: domain 1 has no handle 0.
    assert_eq!(unmap(&mut w, 1, h), Err(GntStatus::BadHandle));
    let mut req = UnmapGrantRef {
        host_addr: 0x555 << 12,
        dev_bus_addr: 0,
        handle: h,
    };
    assert_eq!(
        w.hub.gnttab_unmap(2, &req, &mut w.plat),
        Err(GntStatus::GeneralError)
    );
    req.host_addr = 0;
    req.dev_bus_addr = 0x1000;
    assert_eq!(
        w.hub.gnttab_unmap(2, &req, &mut w.plat),
        Err(GntStatus::BadDevAddr)
    );
    req.dev_bus_addr = 0;
    req.host_addr = 0x100 << 12;
    assert_eq!(w.hub.gnttab_unmap(2, &req, &mut w.plat), Ok(()));
    assert_eq!(unmap(&mut w, 2, h), Err(GntStatus::BadHandle));
    w.check();
}

fn copy(
    w: &mut World,
    caller: DomId,
    source: CopyPtr,
    dest: CopyPtr,
    len: u16,
) -> Result<(), GntStatus> {
    let req = GrantCopy { source, dest, len };
    w.hub.gnttab_copy(caller, &req, &mut w.plat)
}

fn gref(dom: DomId, gref: GrantRef, offset: u16) -> CopyPtr {
    CopyPtr::Gref { dom, gref, offset }
}

fn local(gfn: u64, offset: u16) -> CopyPtr {
    CopyPtr::Gmfn {
        dom: DOMID_SELF,
        gfn,
        offset,
    }
}

#[test]
fn copy_from_and_to_grants() {
    let mut w = world(2);
    w.ram(1, 10)[100..105].copy_from_slice(b"hello");
    w.grant_ro(1, 4, 2, 10);
    copy(&mut w, 2, gref(1, 4, 100), local(3, 7), 5).unwrap();
    assert_eq!(&w.ram(2, 3)[7..12], b"hello");
    assert_eq!(
        w.entry(1, 4).flags,
        GTF_PERMIT_ACCESS | GTF_READONLY,
        "pin released"
    );
    // A read-only grant can't be a destination.
    assert_eq!(
        copy(&mut w, 2, local(3, 7), gref(1, 4, 0), 5),
        Err(GntStatus::GeneralError)
    );
    w.grant_rw(1, 5, 2, 11);
    copy(&mut w, 2, local(3, 7), gref(1, 5, 4090), 5).unwrap();
    assert_eq!(&w.ram(1, 11)[4090..4095], b"hello");
    assert_eq!(w.entry(1, 5).flags, GTF_PERMIT_ACCESS);
    // Grant to grant, and local to local, and zero length.
    copy(&mut w, 2, gref(1, 4, 100), gref(1, 5, 0), 5).unwrap();
    assert_eq!(&w.ram(1, 11)[0..5], b"hello");
    copy(&mut w, 2, local(3, 7), local(4, 0), 5).unwrap();
    assert_eq!(&w.ram(2, 4)[0..5], b"hello");
    copy(&mut w, 2, local(3, 7), local(4, 4096), 0).unwrap();
    w.check();
}

#[test]
fn copy_while_mapped_keeps_flags() {
    let mut w = world(2);
    w.grant_rw(1, 5, 2, 11);
    w.map(2, 1, 5, 0x100, false).unwrap();
    copy(&mut w, 2, local(3, 0), gref(1, 5, 0), 16).unwrap();
    assert_eq!(
        w.entry(1, 5).flags,
        GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING
    );
    w.check();
}

#[test]
fn copy_errors() {
    let mut w = world(3);
    w.grant_rw(1, 5, 2, 11);
    assert_eq!(
        copy(&mut w, 2, gref(1, 5, 4000), local(3, 0), 97),
        Err(GntStatus::BadCopyArg)
    );
    assert_eq!(
        copy(&mut w, 2, local(3, 0), gref(1, 5, 4096), 1),
        Err(GntStatus::BadCopyArg)
    );
    assert_eq!(
        copy(&mut w, 2, gref(1, 5, u16::MAX), local(3, 0), u16::MAX),
        Err(GntStatus::BadCopyArg)
    );
    // Naming another domain's frame directly.
    let other = CopyPtr::Gmfn {
        dom: 1,
        gfn: 11,
        offset: 0,
    };
    assert_eq!(
        copy(&mut w, 2, other, local(3, 0), 8),
        Err(GntStatus::PermissionDenied)
    );
    assert_eq!(
        copy(&mut w, 2, local(3, 0), other, 8),
        Err(GntStatus::PermissionDenied)
    );
    let nobody = CopyPtr::Gmfn {
        dom: 9,
        gfn: 1,
        offset: 0,
    };
    assert_eq!(
        copy(&mut w, 2, nobody, local(3, 0), 8),
        Err(GntStatus::BadDomain)
    );
    assert_eq!(
        copy(&mut w, 2, gref(9, 0, 0), local(3, 0), 8),
        Err(GntStatus::BadDomain)
    );
    // A grant not naming the caller.
    assert_eq!(
        copy(&mut w, 3, gref(1, 5, 0), local(3, 0), 8),
        Err(GntStatus::GeneralError)
    );
    assert_eq!(
        copy(&mut w, 2, gref(1, 9999, 0), local(3, 0), 8),
        Err(GntStatus::BadGntref)
    );
    // Local frame that isn't RAM; the source pin is released.
    assert_eq!(
        copy(&mut w, 2, gref(1, 5, 0), local(RAM_PAGES, 0), 8),
        Err(GntStatus::BadPage)
    );
    assert_eq!(
        copy(&mut w, 2, local(RAM_PAGES + 1, 0), gref(1, 5, 0), 8),
        Err(GntStatus::BadPage)
    );
    // Dest pin fails after the source pinned: the source is released.
    w.grant_ro(1, 6, 2, 12);
    assert_eq!(
        copy(&mut w, 2, gref(1, 5, 0), gref(1, 6, 0), 8),
        Err(GntStatus::GeneralError)
    );
    assert_eq!(w.entry(1, 5).flags, GTF_PERMIT_ACCESS);
    assert_eq!(w.entry(1, 6).flags, GTF_PERMIT_ACCESS | GTF_READONLY);
    // A granted frame that isn't the granter's RAM.
    w.grant_rw(1, 7, 2, RAM_PAGES as u32);
    assert_eq!(
        copy(&mut w, 2, gref(1, 7, 0), local(3, 0), 8),
        Err(GntStatus::BadPage)
    );
    w.check();
}

#[test]
fn sub_page_grants_copy_but_do_not_map() {
    let mut w = world(2);
    w.grant(1, 2, 2, 10, GTF_PERMIT_ACCESS | GTF_SUB_PAGE);
    assert_eq!(w.map(2, 1, 2, 0x100, true), Err(GntStatus::GeneralError));
    assert_eq!(copy(&mut w, 2, gref(1, 2, 0), local(3, 0), 8), Ok(()));
}

/// A page whose grant word changes under every compare-and-swap.
struct Unstable([u8; 4096]);

impl SharedPage for Unstable {
    fn read(&self, offset: usize, buf: &mut [u8]) -> Option<()> {
        self.0[..].read(offset, buf)
    }
    fn write(&mut self, offset: usize, buf: &[u8]) -> Option<()> {
        self.0[..].write(offset, buf)
    }
    fn test_and_set_bit(&mut self, offset: usize, bit: u8) -> Option<bool> {
        self.0[..].test_and_set_bit(offset, bit)
    }
    fn test_and_clear_bit(&mut self, offset: usize, bit: u8) -> Option<bool> {
        self.0[..].test_and_clear_bit(offset, bit)
    }
    fn cmpxchg_u32(&mut self, offset: usize, _old: u32, _new: u32) -> Option<u32> {
        // The granter toggles GTF_readonly between our read and our swap.
        let cur = self.0[..].load_u32(offset)?;
        let next = cur ^ u32::from(GTF_READONLY);
        self.0[..].write(offset, &next.to_le_bytes())?;
        Some(next)
    }
}

#[test]
fn unstable_entry_gives_up() {
    let mut p = Unstable([0; 4096]);
    let e = crate::gnttab::EntryV1 {
        flags: GTF_PERMIT_ACCESS,
        domid: 2,
        frame: 1,
    };
    p.write(8, &e.to_bytes()).unwrap();
    assert_eq!(
        set_status(&mut p, 8, 2, false, true),
        Err(GntStatus::GeneralError)
    );
}

#[test]
fn set_status_cmpxchg_is_on_flags_and_domid() {
    let mut page = [0u8; 4096];
    let e = crate::gnttab::EntryV1 {
        flags: GTF_PERMIT_ACCESS,
        domid: 2,
        frame: 77,
    };
    page[..].write(16, &e.to_bytes()).unwrap();
    assert_eq!(
        set_status(&mut page[..], 16, 3, false, true),
        Err(GntStatus::GeneralError)
    );
    assert_eq!(set_status(&mut page[..], 16, 2, true, true), Ok(()));
    let got = crate::gnttab::EntryV1::read(&page[..], 16).unwrap();
    assert_eq!(got.flags, GTF_PERMIT_ACCESS | GTF_READING | GTF_WRITING);
    assert_eq!((got.domid, got.frame), (2, 77));
    // Out of the page: an error, not a panic.
    assert_eq!(
        set_status(&mut page[..], 4094, 2, true, true),
        Err(GntStatus::GeneralError)
    );
}

#[test]
fn set_version_and_seed() {
    let mut w = world(2);
    assert_eq!(w.hub.gnttab_set_version(1, 1), Ok(()));
    assert_eq!(w.hub.gnttab_set_version(1, 2), Err(XenError::OpNotSupp));
    assert_eq!(w.hub.gnttab_set_version(1, 0), Err(XenError::Inval));
    // The toolstack seeds a grant (the store ring) that the store domain maps.
    w.hub
        .toolstack_seed_grant(1, 1, 2, 20, false, &mut w.plat)
        .unwrap();
    let h = w.map(2, 1, 1, 0x100, false).unwrap();
    assert_eq!(w.hub.grant_table(2).unwrap().mapping(h).unwrap().frame, 20);
    // Not over an entry in use, nor outside the table.
    assert_eq!(
        w.hub.toolstack_seed_grant(1, 1, 2, 21, false, &mut w.plat),
        Err(XenError::Inval)
    );
    assert_eq!(
        w.hub
            .toolstack_seed_grant(1, 512, 2, 21, false, &mut w.plat),
        Err(XenError::Inval)
    );
    assert_eq!(
        w.hub.toolstack_seed_grant(9, 0, 2, 21, false, &mut w.plat),
        Err(XenError::Srch)
    );
    w.hub
        .toolstack_seed_grant(1, 0, 2, 22, true, &mut w.plat)
        .unwrap();
    assert_eq!(w.map(2, 1, 0, 0x101, false), Err(GntStatus::GeneralError));
    w.check();
}

#[test]
fn remove_domain_keeps_others_mappings_until_unmapped() {
    let mut w = world(3);
    // 1 grants to 2 (mapped by 2); 2 grants to 1 (mapped by 1); channels 1-2, 1-3.
    w.grant_rw(1, 0, 2, 10);
    w.grant_rw(2, 0, 1, 10);
    let h2 = w.map(2, 1, 0, 0x100, false).unwrap();
    w.map(1, 2, 0, 0x100, false).unwrap();
    let (p12, p21) = w.connect(1, 2);
    let (p13, p31) = w.connect(1, 3);
    let _ = (p12, p13);
    w.check();
    let orphan = *w.hub.grant_table(2).unwrap().mapping(h2).unwrap();
    w.hub.remove_domain(1, &mut w.plat).unwrap();
    assert!(!w.hub.has_domain(1));
    // Peers go back to unbound, naming the dead domain.
    assert_eq!(
        w.hub.port(2, p21).unwrap().chan,
        crate::evtchn::Channel::Unbound { remote: 1 }
    );
    assert_eq!(
        w.hub.port(3, p31).unwrap().chan,
        crate::evtchn::Channel::Unbound { remote: 1 }
    );
    // 1's mapping of 2's grant is gone and 2's entry no longer shows it in use.
    assert_eq!(w.entry(2, 0).flags, GTF_PERMIT_ACCESS);
    assert!(w.hub.grant_table(2).unwrap().active(0).is_none());
    // 2's mapping of 1's grant survives, orphaned, in the hub and the EPT.
    assert_eq!(
        w.hub.grant_table(2).unwrap().mapping(h2),
        Some(&orphan),
        "orphaned mapping kept"
    );
    assert_eq!(
        w.plat.domain(2).unwrap().ept_grants.get(&0x100),
        Some(&orphan)
    );
    assert_eq!(w.hub.orphaned_mappings(1), 1);
    assert_eq!(w.hub.orphaned_mappings(2), 0, "2 is alive");
    // The model keeps the mapped page of the dead domain, and only that.
    w.plat.remove_domain(1);
    assert_eq!(
        w.plat.zombie_ram.keys().copied().collect::<Vec<_>>(),
        [(1, 10)]
    );
    w.check();
    // New maps and copies of the dead domain's grants are refused.
    assert_eq!(w.map(2, 1, 0, 0x101, false), Err(GntStatus::BadDomain));
    assert_eq!(
        copy(&mut w, 2, gref(1, 0, 0), local(3, 0), 8),
        Err(GntStatus::BadDomain)
    );
    // The orphaned mapping's GFN stays taken.
    assert_eq!(w.map(2, 3, 0, 0x100, true), Err(GntStatus::GeneralError));
    assert_eq!(w.hub.remove_domain(1, &mut w.plat), Err(XenError::Srch));
    // The grantee unmaps it: EPT entry gone, zombie page released.
    unmap(&mut w, 2, h2).unwrap();
    assert!(w.plat.domain(2).unwrap().ept_grants.is_empty());
    assert_eq!(w.hub.grant_table(2).unwrap().mappings().count(), 0);
    assert!(w.plat.zombie_ram.is_empty());
    assert_eq!(w.hub.orphaned_mappings(1), 0);
    assert_eq!(w.plat.stray_unmaps, 0);
    w.check();
    assert_eq!(unmap(&mut w, 2, h2), Err(GntStatus::BadHandle));
}

#[test]
fn grantee_uses_orphaned_mapping_then_unmaps_it() {
    let mut w = world(2);
    w.ram(1, 10)[100..105].copy_from_slice(b"hello");
    w.grant_rw(1, 0, 2, 10);
    w.grant_ro(1, 1, 2, 11);
    w.ram(1, 11)[0..2].copy_from_slice(b"ro");
    let rw = w.map(2, 1, 0, 0x100, false).unwrap();
    let ro = w.map(2, 1, 1, 0x101, true).unwrap();
    let mut buf = [0u8; 5];
    w.plat.read_gfn(2, 0x100, 100, &mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    w.hub.remove_domain(1, &mut w.plat).unwrap();
    w.plat.remove_domain(1);
    assert_eq!(w.hub.orphaned_mappings(1), 2);
    w.check();
    // The grantee still reads and writes the dead domain's page.
    w.plat.read_gfn(2, 0x100, 100, &mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    w.plat.write_gfn(2, 0x100, 200, b"still here").unwrap();
    let mut back = [0u8; 10];
    w.plat.read_gfn(2, 0x100, 200, &mut back).unwrap();
    assert_eq!(&back, b"still here");
    assert_eq!(&w.plat.zombie_ram[&(1, 10)][200..210], b"still here");
    // A read-only mapping stays read-only.
    let mut two = [0u8; 2];
    w.plat.read_gfn(2, 0x101, 0, &mut two).unwrap();
    assert_eq!(&two, b"ro");
    assert_eq!(w.plat.write_gfn(2, 0x101, 0, b"xx"), Err(MemFault));
    w.check();
    // Unmapping (with the GFN named, as Linux does) works and frees the pages.
    let req = UnmapGrantRef {
        host_addr: 0x100 << 12,
        dev_bus_addr: 0,
        handle: rw,
    };
    assert_eq!(w.hub.gnttab_unmap(2, &req, &mut w.plat), Ok(()));
    assert_eq!(w.plat.read_gfn(2, 0x100, 0, &mut buf), Err(MemFault));
    assert_eq!(
        w.plat.zombie_ram.keys().copied().collect::<Vec<_>>(),
        [(1, 11)]
    );
    w.check();
    unmap(&mut w, 2, ro).unwrap();
    assert!(w.plat.zombie_ram.is_empty());
    assert_eq!(w.hub.orphaned_mappings(1), 0);
    w.check();
}

#[test]
fn add_domain_refuses_an_id_with_orphaned_mappings() {
    let mut w = world(3);
    w.grant_rw(1, 0, 2, 10);
    w.grant_rw(1, 1, 3, 11);
    w.map(2, 1, 0, 0x100, false).unwrap();
    w.map(3, 1, 1, 0x100, true).unwrap();
    // A live domain: -EEXIST.
    assert_eq!(
        w.hub.add_domain(1, DomainConfig::default(), &mut w.plat),
        Err(XenError::Exist)
    );
    w.hub.remove_domain(1, &mut w.plat).unwrap();
    w.plat.remove_domain(1);
    // A zombie: -EBUSY, before the VMM is asked for anything.
    assert_eq!(
        w.hub.add_domain(1, DomainConfig::default(), &mut w.plat),
        Err(XenError::Busy)
    );
    assert!(!w.hub.has_domain(1));
    w.check();
    // Removing a grantee undoes its orphaned mapping too.
    w.hub.remove_domain(2, &mut w.plat).unwrap();
    assert_eq!(w.hub.orphaned_mappings(1), 1);
    w.plat.remove_domain(2);
    assert_eq!(
        w.plat.zombie_ram.keys().copied().collect::<Vec<_>>(),
        [(1, 11)]
    );
    w.check();
    assert_eq!(
        w.hub.add_domain(1, DomainConfig::default(), &mut w.plat),
        Err(XenError::Busy)
    );
    w.hub.remove_domain(3, &mut w.plat).unwrap();
    w.plat.remove_domain(3);
    assert_eq!(w.hub.orphaned_mappings(1), 0);
    assert!(w.plat.zombie_ram.is_empty());
    // The id is free again; the new domain starts with no pins.
    w.add(1, DomainConfig::default());
    assert!(w.hub.grant_table(1).unwrap().active(0).is_none());
    w.check();
}

#[test]
fn invariants_accept_orphans_and_model_catches_a_freed_zombie_page() {
    let mut w = world(2);
    w.grant_rw(1, 0, 2, 10);
    w.map(2, 1, 0, 0x100, false).unwrap();
    w.hub.remove_domain(1, &mut w.plat).unwrap();
    w.plat.remove_domain(1);
    w.check();
    // A VMM that freed the dead domain's page under the grantee.
    let page = w.plat.zombie_ram.remove(&(1, 10)).unwrap();
    assert_eq!(
        w.plat.check_ept(&w.hub),
        Err("mapping of a removed domain's page that was freed")
    );
    // One that keeps a page nobody maps.
    w.plat.zombie_ram.insert((1, 10), page.clone());
    w.plat.zombie_ram.insert((1, 12), page);
    assert_eq!(
        w.plat.check_ept(&w.hub),
        Err("zombie page that no mapping uses")
    );
}
