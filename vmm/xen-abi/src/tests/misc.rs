//! Physmap placement, HVM params, domains, CPUID and the hypercall page.

use super::*;
use crate::abi::hvmop::*;
use crate::abi::xenmem::*;
use crate::cpuid::{self, XenCpuid};
use crate::decode::AddToPhysmap;

fn place(w: &mut World, caller: DomId, space: u32, idx: u64, gpfn: u64) -> Result<(), XenError> {
    let req = AddToPhysmap {
        domid: DOMID_SELF,
        space,
        idx,
        gpfn,
    };
    w.hub.add_to_physmap(caller, &req, &mut w.plat)
}

#[test]
fn shared_info_placement_and_moves() {
    let mut w = world(2);
    place(&mut w, 1, SPACE_SHARED_INFO, 0, 0x80).unwrap();
    assert_eq!(w.hub.special_gfn(1, SpecialPage::SharedInfo), Some(0x80));
    assert_eq!(
        w.plat.domain(1).unwrap().placed.get(&0x80),
        Some(&SpecialPage::SharedInfo)
    );
    // Moving it removes the old placement.
    place(&mut w, 1, SPACE_SHARED_INFO, 0, 0x81).unwrap();
    assert_eq!(w.hub.special_gfn(1, SpecialPage::SharedInfo), Some(0x81));
    assert!(!w.plat.domain(1).unwrap().placed.contains_key(&0x80));
    // Same place again: no-op.
    place(&mut w, 1, SPACE_SHARED_INFO, 0, 0x81).unwrap();
    assert_eq!(
        place(&mut w, 1, SPACE_SHARED_INFO, 1, 0x81),
        Err(XenError::Inval)
    );
}

#[test]
fn grant_frames_placement_grows_the_table() {
    let mut w = world(1);
    place(&mut w, 1, SPACE_GRANT_TABLE, 0, 0x90).unwrap();
    place(&mut w, 1, SPACE_GRANT_TABLE, 3, 0x93).unwrap();
    let g = w.hub.grant_table(1).unwrap();
    assert_eq!(g.nr_frames(), 4);
    assert_eq!(g.frame_gfn(0), Some(0x90));
    assert_eq!(g.frame_gfn(1), None);
    assert_eq!(g.frame_gfn(3), Some(0x93));
    assert_eq!(
        place(&mut w, 1, SPACE_GRANT_TABLE, 64, 0x94),
        Err(XenError::Inval)
    );
    assert_eq!(
        place(&mut w, 1, SPACE_GRANT_TABLE, IDX_GRANT_TABLE_STATUS, 0x94),
        Err(XenError::Inval)
    );
    assert_eq!(
        place(&mut w, 1, SPACE_GRANT_TABLE, u64::MAX, 0x94),
        Err(XenError::Inval)
    );
    w.plat.grant_frame_limit = Some(4);
    assert_eq!(
        place(&mut w, 1, SPACE_GRANT_TABLE, 4, 0x94),
        Err(XenError::NoMem)
    );
    // Placing frame 1 over frame 0's GFN evicts frame 0.
    place(&mut w, 1, SPACE_GRANT_TABLE, 1, 0x90).unwrap();
    let g = w.hub.grant_table(1).unwrap();
    assert_eq!((g.frame_gfn(0), g.frame_gfn(1)), (None, Some(0x90)));
    // Shared info over a grant frame evicts it too.
    place(&mut w, 1, SPACE_SHARED_INFO, 0, 0x93).unwrap();
    assert_eq!(w.hub.grant_table(1).unwrap().frame_gfn(3), None);
}

#[test]
fn physmap_errors() {
    let mut w = world(2);
    for s in [
        SPACE_GMFN,
        SPACE_GMFN_RANGE,
        SPACE_GMFN_FOREIGN,
        SPACE_DEV_MMIO,
    ] {
        assert_eq!(place(&mut w, 1, s, 0, 0x10), Err(XenError::OpNotSupp));
    }
    assert_eq!(place(&mut w, 1, 6, 0, 0x10), Err(XenError::Inval));
    assert_eq!(place(&mut w, 1, u32::MAX, 0, 0x10), Err(XenError::Inval));
    assert_eq!(
        place(&mut w, 1, SPACE_SHARED_INFO, 0, 1 << 40),
        Err(XenError::Inval)
    );
    let req = AddToPhysmap {
        domid: 2,
        space: SPACE_SHARED_INFO,
        idx: 0,
        gpfn: 0x10,
    };
    assert_eq!(
        w.hub.add_to_physmap(1, &req, &mut w.plat),
        Err(XenError::Perm)
    );
    let req = AddToPhysmap { domid: 9, ..req };
    assert_eq!(
        w.hub.add_to_physmap(1, &req, &mut w.plat),
        Err(XenError::Srch)
    );
    // A grant mapping occupies the GFN.
    w.grant_rw(2, 0, 1, 5);
    w.map(1, 2, 0, 0x10, true).unwrap();
    assert_eq!(
        place(&mut w, 1, SPACE_SHARED_INFO, 0, 0x10),
        Err(XenError::Busy)
    );
    // The VMM refuses.
    w.plat.refuse_place = true;
    assert_eq!(
        place(&mut w, 1, SPACE_SHARED_INFO, 0, 0x11),
        Err(XenError::Inval)
    );
    assert_eq!(w.hub.special_gfn(1, SpecialPage::SharedInfo), None);
}

#[test]
fn hvm_params_allow_list() {
    let mut w = world(2);
    let cb = (2u64 << 56) | 0xF3;
    assert_eq!(
        w.hub.hvm_set_param(1, DOMID_SELF, PARAM_CALLBACK_IRQ, cb),
        Ok(())
    );
    assert_eq!(
        w.hub.hvm_get_param(1, DOMID_SELF, PARAM_CALLBACK_IRQ),
        Ok(cb)
    );
    assert_eq!(w.hub.hvm_set_param(1, 1, PARAM_CALLBACK_IRQ, 0), Ok(()));
    for bad in [
        (2u64 << 56) | 0x0F,
        (2u64 << 56) | 0x1FF,
        5,
        (1u64 << 56) | 0x20,
        u64::MAX,
    ] {
        assert_eq!(
            w.hub.hvm_set_param(1, DOMID_SELF, PARAM_CALLBACK_IRQ, bad),
            Err(XenError::Inval),
            "{bad:#x}"
        );
    }
    // Store and console params are the toolstack's.
    for p in [
        PARAM_STORE_PFN,
        PARAM_STORE_EVTCHN,
        PARAM_CONSOLE_PFN,
        PARAM_CONSOLE_EVTCHN,
        4,
        38,
    ] {
        assert_eq!(
            w.hub.hvm_set_param(1, DOMID_SELF, p, 1),
            Err(XenError::Perm)
        );
    }
    assert_eq!(
        w.hub.hvm_set_param(1, DOMID_SELF, NR_PARAMS, 1),
        Err(XenError::Inval)
    );
    assert_eq!(
        w.hub.hvm_set_param(1, 2, PARAM_CALLBACK_IRQ, 0),
        Err(XenError::Perm)
    );
    assert_eq!(
        w.hub.hvm_set_param(1, 9, PARAM_CALLBACK_IRQ, 0),
        Err(XenError::Srch)
    );
    w.hub
        .toolstack_set_param(1, PARAM_STORE_PFN, 0xFEFFF)
        .unwrap();
    w.hub.toolstack_set_param(1, PARAM_STORE_EVTCHN, 3).unwrap();
    assert_eq!(
        w.hub.hvm_get_param(1, DOMID_SELF, PARAM_STORE_PFN),
        Ok(0xFEFFF)
    );
    assert_eq!(
        w.hub.hvm_get_param(1, DOMID_SELF, PARAM_STORE_EVTCHN),
        Ok(3)
    );
    assert_eq!(w.hub.hvm_get_param(1, DOMID_SELF, PARAM_CONSOLE_PFN), Ok(0));
    assert_eq!(w.hub.hvm_get_param(1, DOMID_SELF, 4), Err(XenError::Perm));
    assert_eq!(
        w.hub.hvm_get_param(1, DOMID_SELF, NR_PARAMS),
        Err(XenError::Inval)
    );
    assert_eq!(
        w.hub.hvm_get_param(1, 2, PARAM_STORE_PFN),
        Err(XenError::Perm)
    );
    assert_eq!(w.hub.toolstack_set_param(1, 4, 1), Err(XenError::Inval));
    assert_eq!(
        w.hub.toolstack_set_param(1, PARAM_CALLBACK_IRQ, 7),
        Err(XenError::Inval)
    );
    assert_eq!(
        w.hub.toolstack_set_param(9, PARAM_STORE_PFN, 1),
        Err(XenError::Srch)
    );
    assert_eq!(w.hub.param(2, PARAM_STORE_PFN), Some(0));
}

#[test]
fn upcall_vector_op() {
    let mut w = world(1);
    assert_eq!(w.hub.hvm_set_upcall_vector(1, 0, 0xF0), Ok(()));
    assert_eq!(
        w.hub.hvm_set_upcall_vector(1, 2, 0xF0),
        Err(XenError::NoEnt)
    );
    assert_eq!(
        w.hub.hvm_set_upcall_vector(1, 1, 0x0F),
        Err(XenError::Inval)
    );
    assert_eq!(w.hub.hvm_set_upcall_vector(9, 0, 0xF0), Err(XenError::Srch));
}

#[test]
fn add_domain_checks() {
    let mut w = world(1);
    let add = |w: &mut World, id, cfg| {
        w.plat.add_domain(id, 4);
        w.hub.add_domain(id, cfg, &mut w.plat)
    };
    assert_eq!(
        add(&mut w, 1, DomainConfig::default()),
        Err(XenError::Exist)
    );
    assert_eq!(
        add(&mut w, DOMID_SELF, DomainConfig::default()),
        Err(XenError::Inval)
    );
    let zero = DomainConfig {
        nr_vcpus: 0,
        ..DomainConfig::default()
    };
    assert_eq!(add(&mut w, 5, zero), Err(XenError::Inval));
    let many = DomainConfig {
        nr_vcpus: 33,
        ..DomainConfig::default()
    };
    assert_eq!(add(&mut w, 5, many), Err(XenError::Inval));
    let nogrant = DomainConfig {
        max_grant_frames: 0,
        ..DomainConfig::default()
    };
    assert_eq!(add(&mut w, 5, nogrant), Err(XenError::Inval));
    w.plat.grant_frame_limit = Some(0);
    assert_eq!(
        add(&mut w, 5, DomainConfig::default()),
        Err(XenError::NoMem)
    );
    assert!(!w.hub.has_domain(5));
    assert_eq!(w.hub.domain_ids().collect::<Vec<_>>(), [1]);
}

#[test]
fn xen_cpuid_leaves() {
    let c = XenCpuid::default();
    assert_eq!(c.base, 0x4000_0100);
    let l0 = c.leaf(0x4000_0100, 3, 1).unwrap();
    assert_eq!(l0[0], 0x4000_0104);
    let sig: Vec<u8> = l0[1..].iter().flat_map(|r| r.to_le_bytes()).collect();
    assert_eq!(&sig, b"XenVMMXenVMM");
    assert_eq!(c.leaf(0x4000_0101, 3, 1).unwrap()[0], (4 << 16) | 19);
    assert_eq!(c.leaf(0x4000_0102, 3, 1).unwrap(), [1, 0x4000_0200, 0, 0]);
    assert_eq!(
        c.leaf(0x4000_0104, 3, 1).unwrap(),
        [
            cpuid::HVM_CPUID_VCPU_ID_PRESENT | cpuid::HVM_CPUID_DOMID_PRESENT,
            1,
            3,
            0
        ]
    );
    assert_eq!(c.leaf(0x4000_0105, 3, 1), None);
    assert_eq!(c.leaf(0x4000_0000, 3, 1), None);
    let first = XenCpuid {
        base: cpuid::XEN_BASE,
        msr: cpuid::HYPERCALL_MSR,
        version: (4, 17),
    };
    assert_eq!(first.leaf(0x4000_0002, 0, 0).unwrap()[1], 0x4000_0000);
}

#[test]
fn hypercall_page_and_msr() {
    let mut page = [0u8; 4096];
    cpuid::write_hypercall_page(&mut page);
    // event_channel_op (32): mov eax, 32; vmcall; ret.
    assert_eq!(
        &page[32 * 32..32 * 32 + 9],
        &[0xB8, 32, 0, 0, 0, 0x0F, 0x01, 0xC1, 0xC3]
    );
    assert_eq!(&page[0..9], &[0xB8, 0, 0, 0, 0, 0x0F, 0x01, 0xC1, 0xC3]);
    assert_eq!(page[9], 0xCC);
    assert_eq!(&page[23 * 32..23 * 32 + 3], &[0x0F, 0x0B, 0xCC]);
    assert_eq!(&page[127 * 32..127 * 32 + 2], &[0xB8, 127]);
    assert_eq!(cpuid::hypercall_msr_write(0x1234_5000), Ok(0x1234_5000));
    assert_eq!(
        cpuid::hypercall_msr_write(0x1234_5001),
        Err(XenError::Inval)
    );
}

#[test]
fn errors_display_and_codes() {
    assert_eq!(XenError::Inval.ret(), -22);
    assert_eq!(XenError::NoSys.ret(), -38);
    assert_eq!(XenError::Access.errno(), 13);
    assert_eq!(format!("{}", XenError::Perm), "EPERM (-1)");
    assert_eq!(GntStatus::BadCopyArg.code(), -10);
    assert!(format!("{}", GntStatus::BadHandle).contains("-4"));
    let all = [
        XenError::Perm,
        XenError::NoEnt,
        XenError::Srch,
        XenError::NoMem,
        XenError::Access,
        XenError::Fault,
        XenError::Busy,
        XenError::Exist,
        XenError::Inval,
        XenError::NoSpc,
        XenError::NoSys,
        XenError::OpNotSupp,
    ];
    let codes: std::collections::BTreeSet<_> = all.iter().map(|e| e.errno()).collect();
    assert_eq!(codes.len(), all.len());
}
