//! Hypercall decoding: registers, layouts (64- and 32-bit), and rejections.

use crate::abi::{evtchnop, gnttabop, hvmop, hypercall, xenmem, xenver};
use crate::decode::*;
use crate::model::FlatMem;
use crate::*;

pub const BASE: u64 = 0x10_0000;

pub fn mem() -> FlatMem {
    FlatMem::new(BASE, 0x4000)
}

pub fn r64(nr: u64, a1: u64, a2: u64, a3: u64) -> Regs {
    Regs {
        rax: nr,
        rdi: a1,
        rsi: a2,
        rdx: a3,
        // Registers the 64-bit ABI doesn't use for these args.
        rbx: 0xBAD,
        rcx: 0xBAD,
        ..Regs::default()
    }
}

pub fn r32(nr: u64, a1: u64, a2: u64, a3: u64) -> Regs {
    let junk = 0xFFFF_FFFF_0000_0000;
    Regs {
        rax: nr | junk,
        rbx: a1 | junk,
        rcx: a2 | junk,
        rdx: a3 | junk,
        rdi: 0xBAD,
        rsi: 0xBAD,
        mode: Mode::Compat,
        ..Regs::default()
    }
}

pub fn put(m: &mut FlatMem, addr: u64, bytes: &[u8]) {
    m.write(addr, bytes).unwrap();
}

#[test]
fn register_conventions() {
    let r = Regs {
        rax: 0x1_0000_0020,
        rbx: 1,
        rcx: 2,
        rdx: 3,
        rsi: 4,
        rdi: 5,
        r8: 6,
        r10: 7,
        ..Regs::default()
    };
    assert_eq!(r.number(), 0x1_0000_0020);
    assert_eq!(r.args(), [5, 4, 3, 7, 6]);
    let c = Regs {
        mode: Mode::Compat,
        rbx: 0xFFFF_FFFF_0000_0001,
        ..r
    };
    assert_eq!(c.number(), 0x20);
    assert_eq!(c.args(), [1, 2, 3, 4, 5]);
}

#[test]
fn rejects_user_mode_unknown_and_unimplemented() {
    let mut m = mem();
    let mut r = r64(hypercall::EVENT_CHANNEL_OP, evtchnop::SEND.into(), BASE, 0);
    r.cpl = 3;
    assert_eq!(decode(&r, &mut m), Err(XenError::Perm));
    for nr in [
        0,
        1,
        13,
        24,
        29,
        33,
        35,
        36,
        41,
        48,
        0x1_0000_0020,
        u64::MAX,
    ] {
        assert_eq!(
            decode(&r64(nr, 0, BASE, 1), &mut m),
            Err(XenError::NoSys),
            "{nr}"
        );
    }
    // Unimplemented sub-ops.
    for cmd in [2, 7, 10, 11, 12, 13, 14, 99, u32::MAX] {
        let r = r64(hypercall::EVENT_CHANNEL_OP, cmd.into(), BASE, 0);
        assert_eq!(decode(&r, &mut m), Err(XenError::NoSys), "evtchn {cmd}");
    }
    for cmd in [3, 4, 7, 9, 11, 12, 0xFFF] {
        let r = r64(hypercall::GRANT_TABLE_OP, cmd, BASE, 1);
        assert_eq!(decode(&r, &mut m), Err(XenError::NoSys), "gnttab {cmd}");
    }
    for cmd in [0, 1, 6, 8, 14, 0x3F] {
        let r = r64(hypercall::MEMORY_OP, cmd, BASE, 0);
        assert_eq!(decode(&r, &mut m), Err(XenError::NoSys), "memory {cmd}");
    }
    for op in [2, 3, 22, 24, u64::MAX] {
        let r = r64(hypercall::HVM_OP, op, BASE, 0);
        assert_eq!(decode(&r, &mut m), Err(XenError::NoSys), "hvm {op}");
    }
    for cmd in [1, 2, 5, 7] {
        let r = r64(hypercall::XEN_VERSION, cmd, BASE, 0);
        assert_eq!(decode(&r, &mut m), Err(XenError::NoSys), "xenver {cmd}");
    }
}

#[test]
fn bad_counts_and_reserved_bits() {
    let mut m = mem();
    let g = hypercall::GRANT_TABLE_OP;
    for single in [
        gnttabop::SETUP_TABLE,
        gnttabop::QUERY_SIZE,
        gnttabop::SET_VERSION,
        gnttabop::GET_VERSION,
    ] {
        for count in [0, 2, u64::from(u32::MAX)] {
            let r = r64(g, single.into(), BASE, count);
            assert_eq!(
                decode(&r, &mut m),
                Err(XenError::Inval),
                "op {single} count {count}"
            );
        }
    }
    // Batches: zero is fine; beyond the cap or "negative" is not.
    assert_eq!(
        decode(&r64(g, gnttabop::MAP_GRANT_REF.into(), BASE, 0), &mut m),
        Ok(Hypercall::Gnttab {
            op: GnttabOp::Map(vec![]),
            uop: BASE
        })
    );
    for count in [u64::from(MAX_BATCH) + 1, 0x8000_0000] {
        let r = r64(g, gnttabop::COPY.into(), BASE, count);
        assert_eq!(decode(&r, &mut m), Err(XenError::Inval));
    }
    // Continuation bits in the command word.
    let r = r64(g, u64::from(gnttabop::MAP_GRANT_REF) | 0x1000, BASE, 1);
    assert_eq!(decode(&r, &mut m), Err(XenError::Inval));
    let r = r64(
        hypercall::MEMORY_OP,
        u64::from(xenmem::ADD_TO_PHYSMAP) | 0x40,
        BASE,
        0,
    );
    assert_eq!(decode(&r, &mut m), Err(XenError::Inval));
    // Upper halves of `unsigned int` args are ignored (64-bit).
    let r = r64(
        g,
        0xFFFF_FFFF_0000_0000 | u64::from(gnttabop::MAP_GRANT_REF),
        BASE,
        0x1_0000_0000,
    );
    assert!(
        matches!(decode(&r, &mut m), Ok(Hypercall::Gnttab { op: GnttabOp::Map(v), .. }) if v.is_empty())
    );
}

#[test]
fn faults_on_unreadable_arguments() {
    let mut m = mem();
    let end = BASE + 0x4000;
    let cases = [
        r64(
            hypercall::EVENT_CHANNEL_OP,
            evtchnop::STATUS.into(),
            end - 20,
            0,
        ),
        r64(hypercall::EVENT_CHANNEL_OP, evtchnop::SEND.into(), 0, 0),
        r64(
            hypercall::GRANT_TABLE_OP,
            gnttabop::MAP_GRANT_REF.into(),
            end - 64,
            3,
        ),
        r64(
            hypercall::GRANT_TABLE_OP,
            gnttabop::COPY.into(),
            u64::MAX - 8,
            1,
        ),
        r64(
            hypercall::MEMORY_OP,
            xenmem::ADD_TO_PHYSMAP.into(),
            end - 16,
            0,
        ),
        r64(hypercall::HVM_OP, hvmop::GET_PARAM, end - 8, 0),
        r64(
            hypercall::XEN_VERSION,
            xenver::GET_FEATURES.into(),
            end - 4,
            0,
        ),
        // 32-bit: a struct crossing 4 GiB.
        r32(
            hypercall::EVENT_CHANNEL_OP,
            evtchnop::STATUS.into(),
            0xFFFF_FFF0,
            0,
        ),
    ];
    for r in cases {
        assert_eq!(decode(&r, &mut m), Err(XenError::Fault), "{r:?}");
    }
}

#[test]
fn evtchn_layouts() {
    let mut m = mem();
    let e = hypercall::EVENT_CHANNEL_OP;
    put(
        &mut m,
        BASE,
        &[0xF0, 0x7F, 0x05, 0x00, 0xAA, 0xAA, 0xAA, 0xAA],
    );
    for r in [r64(e, 6, BASE, 0), r32(e, 6, BASE, 0)] {
        assert_eq!(
            decode(&r, &mut m).unwrap(),
            Hypercall::Evtchn {
                op: EvtchnOp::AllocUnbound {
                    dom: DOMID_SELF,
                    remote_dom: 5
                },
                arg: BASE
            }
        );
    }
    put(&mut m, BASE, &[3, 0, 0xEE, 0xEE, 9, 0, 0, 0, 0, 0, 0, 0]);
    assert!(matches!(
        decode(&r64(e, 0, BASE, 0), &mut m).unwrap(),
        Hypercall::Evtchn {
            op: EvtchnOp::BindInterdomain {
                remote_dom: 3,
                remote_port: 9
            },
            ..
        }
    ));
    put(&mut m, BASE, &[1, 0, 0, 0, 2, 0, 0, 0]);
    assert!(matches!(
        decode(&r64(e, 1, BASE, 0), &mut m).unwrap(),
        Hypercall::Evtchn {
            op: EvtchnOp::BindVirq { virq: 1, vcpu: 2 },
            ..
        }
    ));
    assert!(matches!(
        decode(&r64(e, 8, BASE, 0), &mut m).unwrap(),
        Hypercall::Evtchn {
            op: EvtchnOp::BindVcpu { port: 1, vcpu: 2 },
            ..
        }
    ));
    for (cmd, want) in [
        (3, EvtchnOp::Close { port: 1 }),
        (4, EvtchnOp::Send { port: 1 }),
        (9, EvtchnOp::Unmask { port: 1 }),
    ] {
        assert_eq!(
            decode(&r64(e, cmd, BASE, 0), &mut m).unwrap(),
            Hypercall::Evtchn {
                op: want,
                arg: BASE
            }
        );
    }
    put(&mut m, BASE + 0x100, &[0xF0, 0x7F, 0, 0, 4, 0, 0, 0]);
    assert!(matches!(
        decode(&r64(e, 5, BASE + 0x100, 0), &mut m).unwrap(),
        Hypercall::Evtchn {
            op: EvtchnOp::Status {
                dom: DOMID_SELF,
                port: 4
            },
            ..
        }
    ));
}

fn map_struct(host_addr: u64, flags: u32, gref: u32, dom: u16) -> [u8; 32] {
    let mut b = [0xEEu8; 32];
    b[0..8].copy_from_slice(&host_addr.to_le_bytes());
    b[8..12].copy_from_slice(&flags.to_le_bytes());
    b[12..16].copy_from_slice(&gref.to_le_bytes());
    b[16..18].copy_from_slice(&dom.to_le_bytes());
    b
}

#[test]
fn gnttab_layouts() {
    let mut m = mem();
    let g = hypercall::GRANT_TABLE_OP;
    // A batch of two maps, same layout in both modes.
    put(&mut m, BASE, &map_struct(0x5000, 2, 7, 1));
    put(&mut m, BASE + 32, &map_struct(0x6000, 6, 8, DOMID_SELF));
    let want = GnttabOp::Map(vec![
        MapGrantRef {
            host_addr: 0x5000,
            flags: 2,
            gref: 7,
            dom: 1,
        },
        MapGrantRef {
            host_addr: 0x6000,
            flags: 6,
            gref: 8,
            dom: DOMID_SELF,
        },
    ]);
    for r in [r64(g, 0, BASE, 2), r32(g, 0, BASE, 2)] {
        assert_eq!(
            decode(&r, &mut m).unwrap(),
            Hypercall::Gnttab {
                op: want.clone(),
                uop: BASE
            }
        );
    }
    // Unmap: host_addr @0, dev_bus_addr @8, handle @16.
    let mut u = [0u8; 24];
    u[0..8].copy_from_slice(&0x5000u64.to_le_bytes());
    u[16..20].copy_from_slice(&3u32.to_le_bytes());
    put(&mut m, BASE + 0x200, &u);
    assert!(matches!(
        decode(&r64(g, 1, BASE + 0x200, 1), &mut m).unwrap(),
        Hypercall::Gnttab { op: GnttabOp::Unmap(v), .. }
            if v == [UnmapGrantRef { host_addr: 0x5000, dev_bus_addr: 0, handle: 3 }]
    ));
    // setup_table: frame_list at 16 (64-bit) or 12 (32-bit).
    let mut s = [0u8; 24];
    s[0..2].copy_from_slice(&DOMID_SELF.to_le_bytes());
    s[4..8].copy_from_slice(&4u32.to_le_bytes());
    s[12..16].copy_from_slice(&0x1234u32.to_le_bytes());
    s[16..24].copy_from_slice(&0x9_0000_0000u64.to_le_bytes());
    put(&mut m, BASE + 0x300, &s);
    let st = |fl| GnttabOp::SetupTable {
        dom: DOMID_SELF,
        nr_frames: 4,
        frame_list: fl,
    };
    assert_eq!(
        decode(&r64(g, 2, BASE + 0x300, 1), &mut m).unwrap(),
        Hypercall::Gnttab {
            op: st(0x9_0000_0000),
            uop: BASE + 0x300
        }
    );
    assert_eq!(
        decode(&r32(g, 2, BASE + 0x300, 1), &mut m).unwrap(),
        Hypercall::Gnttab {
            op: st(0x1234),
            uop: BASE + 0x300
        }
    );
}

#[test]
fn copy_layouts() {
    let mut m = mem();
    let g = hypercall::GRANT_TABLE_OP;
    // 64-bit: source {u64 @0, domid @8, offset @10}, dest @16, len @32, flags @34.
    let mut c = [0u8; 40];
    c[0..8].copy_from_slice(&0xAB_0000_0007u64.to_le_bytes());
    c[8..10].copy_from_slice(&1u16.to_le_bytes());
    c[10..12].copy_from_slice(&100u16.to_le_bytes());
    c[16..24].copy_from_slice(&0x0000_0042u64.to_le_bytes());
    c[24..26].copy_from_slice(&DOMID_SELF.to_le_bytes());
    c[26..28].copy_from_slice(&200u16.to_le_bytes());
    c[32..34].copy_from_slice(&64u16.to_le_bytes());
    c[34..36].copy_from_slice(&gnttabop::GNTCOPY_SOURCE_GREF.to_le_bytes());
    put(&mut m, BASE, &c);
    let want = GrantCopy {
        source: CopyPtr::Gref {
            dom: 1,
            gref: 7,
            offset: 100,
        },
        dest: CopyPtr::Gmfn {
            dom: DOMID_SELF,
            gfn: 0x42,
            offset: 200,
        },
        len: 64,
    };
    assert!(matches!(
        decode(&r64(g, 5, BASE, 1), &mut m).unwrap(),
        Hypercall::Gnttab { op: GnttabOp::Copy(v), .. } if v == [want]
    ));
    // 32-bit: source {u32 @0, domid @4, offset @6}, dest @8, len @16, flags @18.
    let mut c = [0u8; 24];
    c[0..4].copy_from_slice(&0x99u32.to_le_bytes());
    c[4..6].copy_from_slice(&DOMID_SELF.to_le_bytes());
    c[6..8].copy_from_slice(&8u16.to_le_bytes());
    c[8..12].copy_from_slice(&5u32.to_le_bytes());
    c[12..14].copy_from_slice(&2u16.to_le_bytes());
    c[14..16].copy_from_slice(&16u16.to_le_bytes());
    c[16..18].copy_from_slice(&32u16.to_le_bytes());
    c[18..20].copy_from_slice(&gnttabop::GNTCOPY_DEST_GREF.to_le_bytes());
    put(&mut m, BASE + 0x100, &c);
    let want = GrantCopy {
        source: CopyPtr::Gmfn {
            dom: DOMID_SELF,
            gfn: 0x99,
            offset: 8,
        },
        dest: CopyPtr::Gref {
            dom: 2,
            gref: 5,
            offset: 16,
        },
        len: 32,
    };
    assert!(matches!(
        decode(&r32(g, 5, BASE + 0x100, 1), &mut m).unwrap(),
        Hypercall::Gnttab { op: GnttabOp::Copy(v), .. } if v == [want]
    ));
}

#[test]
fn memory_hvm_version_layouts() {
    let mut m = mem();
    // add_to_physmap 64-bit: domid @0, space @4, idx @8, gpfn @16.
    let mut a = [0u8; 24];
    a[0..2].copy_from_slice(&DOMID_SELF.to_le_bytes());
    a[4..8].copy_from_slice(&1u32.to_le_bytes());
    a[8..16].copy_from_slice(&3u64.to_le_bytes());
    a[12..16].copy_from_slice(&0x77u32.to_le_bytes()); // 32-bit gpfn (and high half of idx)
    a[16..24].copy_from_slice(&0xFEFF0u64.to_le_bytes());
    put(&mut m, BASE, &a);
    assert_eq!(
        decode(&r64(hypercall::MEMORY_OP, 7, BASE, 0), &mut m).unwrap(),
        Hypercall::AddToPhysmap(AddToPhysmap {
            domid: DOMID_SELF,
            space: 1,
            idx: 0x77_0000_0003,
            gpfn: 0xFEFF0
        })
    );
    assert_eq!(
        decode(&r32(hypercall::MEMORY_OP, 7, BASE, 0), &mut m).unwrap(),
        Hypercall::AddToPhysmap(AddToPhysmap {
            domid: DOMID_SELF,
            space: 1,
            idx: 3,
            gpfn: 0x77
        })
    );
    // hvm param: domid @0, index @4, value @8.
    let mut p = [0u8; 16];
    p[0..2].copy_from_slice(&DOMID_SELF.to_le_bytes());
    p[4..8].copy_from_slice(&2u32.to_le_bytes());
    p[8..16].copy_from_slice(&0x0200_0000_0000_00F3u64.to_le_bytes());
    put(&mut m, BASE + 0x100, &p);
    assert_eq!(
        decode(&r64(hypercall::HVM_OP, 0, BASE + 0x100, 0), &mut m).unwrap(),
        Hypercall::Hvm {
            op: HvmOp::SetParam {
                domid: DOMID_SELF,
                index: 2,
                value: 0x0200_0000_0000_00F3
            },
            arg: BASE + 0x100
        }
    );
    assert!(matches!(
        decode(&r32(hypercall::HVM_OP, 1, BASE + 0x100, 0), &mut m).unwrap(),
        Hypercall::Hvm {
            op: HvmOp::GetParam {
                domid: DOMID_SELF,
                index: 2
            },
            ..
        }
    ));
    put(&mut m, BASE + 0x200, &[1, 0, 0, 0, 0xF3, 0, 0, 0]);
    assert!(matches!(
        decode(&r64(hypercall::HVM_OP, 23, BASE + 0x200, 0), &mut m).unwrap(),
        Hypercall::Hvm {
            op: HvmOp::SetEvtchnUpcallVector {
                vcpu: 1,
                vector: 0xF3
            },
            ..
        }
    ));
    assert!(matches!(
        decode(&r64(hypercall::XEN_VERSION, 0, 0, 0), &mut m).unwrap(),
        Hypercall::Version {
            op: VersionOp::Version,
            ..
        }
    ));
    assert!(matches!(
        decode(&r64(hypercall::XEN_VERSION, 6, BASE + 0x200, 0), &mut m).unwrap(),
        Hypercall::Version {
            op: VersionOp::GetFeatures { submap_idx: 1 },
            ..
        }
    ));
}
