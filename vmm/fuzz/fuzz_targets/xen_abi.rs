//! Fuzzes the Xen ABI hub, `xen_abi::Hub`, with sequences of hypercalls
//! from three domains interleaved with what guests do to their own shared
//! pages behind the hub's back: raw bytes into grant tables and
//! `shared_info`, well-formed grant entries, reads and writes through grant
//! mappings, and the VMM's own calls (VIRQs, domain restart, toolstack
//! params and grant seeds, EPT refusals).
//!
//! A restart removes a domain and re-creates it only once no other domain
//! holds an orphaned mapping of its grants (the hub refuses the id with
//! `-EBUSY` until then); a dead domain's hypercalls fail meanwhile.
//!
//! Hypercalls come two ways: raw (any number, command, pointer, count, CPL
//! and mode, with input bytes written at the pointer), and well-formed
//! (`Call`: typed fields encoded in the 64- or 32-bit layout, made through
//! registers like any other; a map, copy or bind may `pick` a grant or
//! unbound port that names the caller, so the success paths are reached).
//!
//! The platform is `xen_abi::model::ModelPlatform` (byte-array pages, a
//! table standing in for the EPT); each domain's linear memory is a 16 KiB
//! `FlatMem`. The input may start each domain with a grant mapped by the
//! next one.
//!
//! Invariants, after every step:
//! * No panic; a hypercall returns 0, a positive `xen_version` value, or a
//!   Xen errno (-1..=-95).
//! * `Hub::check_invariants`: interdomain ports point at each other, VIRQ
//!   tables agree with ports, every mapping is backed by a pin of its
//!   grantee for the same frame unless its granter was removed (orphaned),
//!   pin counts equal the mappings, one mapping per GFN.
//! * `ModelPlatform::check_ept`: the model EPT holds exactly the hub's
//!   mappings and no unmap missed.
//! * Isolation: every mapping a hypercall creates went through an entry that,
//!   just before the call, was `GTF_permit_access` naming the mapper (and not
//!   `GTF_readonly` for a writable mapping) of a live domain; every mapped
//!   frame is in the granter's RAM.
//! * Removal: the removed domain holds no mapping; others' mappings of its
//!   grants survive unchanged (orphaned; `check_ept` then also checks that
//!   the model keeps exactly the dead domains' pages they use); a write
//!   through a mapping succeeds iff it is writable and reads back, also
//!   after the granter is gone. Destroying every domain at the end leaves
//!   no mapping at all and no zombie page.
#![no_main]

use std::collections::BTreeSet;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use xen_abi::abi::gnttabop::{
    ENTRIES_PER_FRAME, GNTMAP_HOST_MAP, GTF_PERMIT_ACCESS, GTF_READONLY, GTF_TYPE_MASK,
};
use xen_abi::abi::hypercall;
use xen_abi::decode::MapGrantRef;
use xen_abi::evtchn::Channel;
use xen_abi::gnttab::{locate, EntryV1};
use xen_abi::model::{FlatMem, ModelPlatform};
use xen_abi::{
    DomId, DomainConfig, GrantMapping, Hub, HubConfig, Mode, Platform, Regs, SharedPage, Width,
    XenError, DOMID_SELF,
};

const BASE: u64 = 0x7000_0000;
const MEM: usize = 0x4000;
const RAM_PAGES: u64 = 48;
const DOMS: u16 = 3;
/// The grant and GFN of the optional initial mappings (among those the
/// steps use, so they meet).
const PREMAP_GREF: u32 = 15;
const PREMAP_GFN: u64 = 0x10F;

#[derive(Arbitrary, Debug)]
enum Nr {
    Evtchn,
    Gnttab,
    Memory,
    Hvm,
    Version,
    Raw(u64),
}

/// A domain argument: `DOMID_SELF` or an id (4 and 0 never exist).
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Dom {
    Slf,
    Id(u8),
}

impl Dom {
    fn id(self) -> u16 {
        match self {
            Dom::Slf => DOMID_SELF,
            Dom::Id(i) => u16::from(i % 5),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct MapArg {
    /// Use the i-th grant that names the caller instead of `gref`/`dom`.
    pick: Option<u8>,
    gref: u16,
    dom: Dom,
    gfn: u8,
    flags: u8,
}

#[derive(Arbitrary, Debug)]
struct CopyArg {
    /// Use the i-th grant that names the caller for the gref side(s).
    pick: Option<u8>,
    src_gref: bool,
    dst_gref: bool,
    src: (u16, Dom, u16),
    dst: (u16, Dom, u16),
    len: u16,
}

/// A well-formed hypercall: typed fields, encoded into the caller's memory
/// in its ABI's layout, then made through registers like any other.
#[derive(Arbitrary, Debug)]
enum Call {
    AllocUnbound {
        dom: Dom,
        remote: Dom,
    },
    /// `pick`: use the i-th unbound port that names the caller.
    BindInterdomain {
        remote: Dom,
        port: u8,
        pick: Option<u8>,
    },
    BindVirq {
        virq: u8,
        vcpu: u8,
    },
    Close {
        port: u8,
    },
    Send {
        port: u8,
    },
    Unmask {
        port: u8,
    },
    BindVcpu {
        port: u8,
        vcpu: u8,
    },
    Status {
        dom: Dom,
        port: u8,
    },
    Map(Vec<MapArg>),
    Unmap(Vec<(u8, Option<u8>)>),
    Copy(Vec<CopyArg>),
    SetupTable {
        dom: Dom,
        frames: u8,
    },
    QuerySize {
        dom: Dom,
    },
    AddToPhysmap {
        dom: Dom,
        space: u8,
        idx: u8,
        gfn: u8,
    },
    SetParam {
        index: u8,
        value: u64,
    },
    GetParam {
        dom: Dom,
        index: u8,
    },
    UpcallVector {
        vcpu: u8,
        vector: u8,
    },
    Version {
        cmd: u8,
    },
}

/// What the caller could use right now: grants naming it, unbound ports
/// naming it (as (domain, ref/port)).
#[derive(Default)]
struct Known {
    grants: Vec<(u16, u32)>,
    unbound: Vec<(u16, u32)>,
}

fn nth<T: Copy>(v: &[T], i: u8) -> Option<T> {
    (!v.is_empty()).then(|| v[usize::from(i) % v.len()])
}

/// Mostly one of 16 references (so grants and their uses meet), sometimes
/// anywhere in (or beyond) a 4-frame table.
fn gref(r: u16) -> u32 {
    if r & 0x8000 != 0 {
        u32::from(r & 0x7FF)
    } else {
        u32::from(r % 16)
    }
}

fn le(buf: &mut [u8], off: usize, v: &[u8]) {
    buf[off..off + v.len()].copy_from_slice(v);
}

/// Encodes `call` at offset 0x100 of a fresh argument area (lists at
/// 0x2000); returns (hypercall number, cmd, count) and the bytes.
fn encode(call: &Call, compat: bool, known: &Known) -> (u64, u64, u64, Vec<u8>) {
    use xen_abi::abi::{evtchnop as e, gnttabop as g, hvmop as h, xenmem as x};
    let mut b = vec![0u8; MEM];
    let a = 0x100;
    let w = if compat { 4 } else { 8 };
    let word = |b: &mut [u8], off: usize, v: u64| {
        if compat {
            le(b, off, &(v as u32).to_le_bytes())
        } else {
            le(b, off, &v.to_le_bytes())
        }
    };
    let ev = hypercall::EVENT_CHANNEL_OP;
    let gt = hypercall::GRANT_TABLE_OP;
    let port = |p: u8| u32::from(p % 70);
    let (nr, cmd, count) = match *call {
        Call::AllocUnbound { dom, remote } => {
            le(&mut b, a, &dom.id().to_le_bytes());
            le(&mut b, a + 2, &remote.id().to_le_bytes());
            (ev, e::ALLOC_UNBOUND, 0)
        }
        Call::BindInterdomain {
            remote,
            port: p,
            pick,
        } => {
            let (rd, rp) = match pick.and_then(|i| nth(&known.unbound, i)) {
                Some(x) => x,
                None => (remote.id(), port(p)),
            };
            le(&mut b, a, &rd.to_le_bytes());
            le(&mut b, a + 4, &rp.to_le_bytes());
            (ev, e::BIND_INTERDOMAIN, 0)
        }
        Call::BindVirq { virq, vcpu } => {
            le(&mut b, a, &u32::from(virq % 30).to_le_bytes());
            le(&mut b, a + 4, &u32::from(vcpu % 3).to_le_bytes());
            (ev, e::BIND_VIRQ, 0)
        }
        Call::Close { port: p } | Call::Send { port: p } | Call::Unmask { port: p } => {
            le(&mut b, a, &port(p).to_le_bytes());
            let cmd = match *call {
                Call::Close { .. } => e::CLOSE,
                Call::Send { .. } => e::SEND,
                _ => e::UNMASK,
            };
            (ev, cmd, 0)
        }
        Call::BindVcpu { port: p, vcpu } => {
            le(&mut b, a, &port(p).to_le_bytes());
            le(&mut b, a + 4, &u32::from(vcpu % 3).to_le_bytes());
            (ev, e::BIND_VCPU, 0)
        }
        Call::Status { dom, port: p } => {
            le(&mut b, a, &dom.id().to_le_bytes());
            le(&mut b, a + 4, &port(p).to_le_bytes());
            (ev, e::STATUS, 0)
        }
        Call::Map(ref ops) => {
            for (i, op) in ops.iter().take(32).enumerate() {
                let o = a + i * g::MAP_SIZE;
                le(
                    &mut b,
                    o,
                    &((0x100 + u64::from(op.gfn % 16)) << 12).to_le_bytes(),
                );
                le(&mut b, o + 8, &u32::from(op.flags & 0x1F).to_le_bytes());
                let (dom, r) = match op.pick.and_then(|i| nth(&known.grants, i)) {
                    Some(x) => x,
                    None => (op.dom.id(), gref(op.gref)),
                };
                le(&mut b, o + 12, &r.to_le_bytes());
                le(&mut b, o + 16, &dom.to_le_bytes());
            }
            (gt, g::MAP_GRANT_REF, ops.len().min(32))
        }
        Call::Unmap(ref ops) => {
            for (i, &(h, gfn)) in ops.iter().take(32).enumerate() {
                let o = a + i * g::UNMAP_SIZE;
                let addr = gfn.map_or(0, |f| (0x100 + u64::from(f % 16)) << 12);
                le(&mut b, o, &addr.to_le_bytes());
                le(&mut b, o + 16, &u32::from(h % 20).to_le_bytes());
            }
            (gt, g::UNMAP_GRANT_REF, ops.len().min(32))
        }
        Call::Copy(ref ops) => {
            let (size, dest, len, _) = if compat {
                g::COPY_LAYOUT_32
            } else {
                g::COPY_LAYOUT_64
            };
            for (i, op) in ops.iter().take(32).enumerate() {
                let o = a + i * size;
                let picked = op.pick.and_then(|i| nth(&known.grants, i));
                for (base, (v, dom, off), is_gref) in
                    [(o, op.src, op.src_gref), (o + dest, op.dst, op.dst_gref)]
                {
                    let mut dom = dom.id();
                    if is_gref {
                        let mut r = gref(v);
                        if let Some((g, pr)) = picked {
                            (dom, r) = (g, pr);
                        }
                        le(&mut b, base, &r.to_le_bytes());
                    } else {
                        word(&mut b, base, u64::from(v % 64));
                    }
                    le(&mut b, base + w, &dom.to_le_bytes());
                    le(&mut b, base + w + 2, &(off % 4200).to_le_bytes());
                }
                le(&mut b, o + len, &(op.len % 4200).to_le_bytes());
                let flags = u16::from(op.src_gref) | (u16::from(op.dst_gref) << 1);
                le(&mut b, o + len + 2, &flags.to_le_bytes());
            }
            (gt, g::COPY, ops.len().min(32))
        }
        Call::SetupTable { dom, frames } => {
            le(&mut b, a, &dom.id().to_le_bytes());
            le(&mut b, a + 4, &u32::from(frames % 6).to_le_bytes());
            word(&mut b, if compat { a + 12 } else { a + 16 }, BASE + 0x2000);
            (gt, g::SETUP_TABLE, 1)
        }
        Call::QuerySize { dom } => {
            le(&mut b, a, &dom.id().to_le_bytes());
            (gt, g::QUERY_SIZE, 1)
        }
        Call::AddToPhysmap {
            dom,
            space,
            idx,
            gfn,
        } => {
            le(&mut b, a, &dom.id().to_le_bytes());
            le(&mut b, a + 4, &u32::from(space % 7).to_le_bytes());
            word(&mut b, a + 8, u64::from(idx % 6));
            word(&mut b, a + 8 + w, 0x100 + u64::from(gfn % 16));
            (hypercall::MEMORY_OP, x::ADD_TO_PHYSMAP, 0)
        }
        Call::SetParam { index, value } => {
            le(&mut b, a, &DOMID_SELF.to_le_bytes());
            le(&mut b, a + 4, &u32::from(index % 40).to_le_bytes());
            le(&mut b, a + 8, &value.to_le_bytes());
            return (hypercall::HVM_OP, h::SET_PARAM, 0, b);
        }
        Call::GetParam { dom, index } => {
            le(&mut b, a, &dom.id().to_le_bytes());
            le(&mut b, a + 4, &u32::from(index % 40).to_le_bytes());
            return (hypercall::HVM_OP, h::GET_PARAM, 0, b);
        }
        Call::UpcallVector { vcpu, vector } => {
            le(&mut b, a, &u32::from(vcpu % 3).to_le_bytes());
            b[a + 4] = vector;
            return (hypercall::HVM_OP, h::SET_EVTCHN_UPCALL_VECTOR, 0, b);
        }
        Call::Version { cmd } => {
            return (hypercall::XEN_VERSION, u64::from(cmd % 8), 0, b);
        }
    };
    (nr, u64::from(cmd), count as u64, b)
}

#[derive(Arbitrary, Debug)]
enum Step {
    /// A well-formed hypercall (see [`Call`]).
    Call { dom: u8, call: Call, compat: bool },
    Hypercall {
        dom: u8,
        nr: Nr,
        cmd: u64,
        /// Offset of the argument in the caller's memory (or a raw pointer).
        arg: u16,
        raw_ptr: Option<u64>,
        count: u16,
        compat: bool,
        user: bool,
        /// Written at `arg` first.
        bytes: Vec<u8>,
    },
    /// A guest writes raw bytes into its own grant table.
    GrantBytes {
        dom: u8,
        frame: u8,
        off: u16,
        bytes: Vec<u8>,
    },
    /// A guest writes a well-formed grant entry.
    GrantEntry {
        dom: u8,
        gref: u16,
        grantee: u8,
        frame: u8,
        ro: bool,
        flags: Option<u16>,
    },
    /// A guest writes raw bytes into its `shared_info`.
    SharedInfoBytes { dom: u8, off: u16, bytes: Vec<u8> },
    /// The VMM raises a VIRQ.
    Virq { dom: u8, virq: u8, vcpu: u8 },
    /// The toolstack destroys a domain (if alive) and re-creates it (if no
    /// orphaned mapping keeps its id taken).
    Restart { dom: u8 },
    /// A vCPU writes a byte through one of its domain's grant mappings (the
    /// `pick`-th) and reads it back.
    Touch {
        dom: u8,
        pick: u8,
        off: u16,
        byte: u8,
    },
    /// The toolstack sets a param or seeds a grant.
    Toolstack {
        dom: u8,
        index: u8,
        value: u64,
        gref: u16,
        grantee: u8,
    },
    /// The VMM refuses (or again accepts) EPT changes.
    Refuse { map: bool, place: bool },
}

#[derive(Arbitrary, Debug)]
struct Input {
    widths: [bool; 3],
    /// Bit d-1: domain d starts with its grant 15 mapped by the next domain
    /// (so that a restart orphans a mapping from the first step on).
    premap: u8,
    steps: Vec<Step>,
}

fn cfg(w32: bool) -> DomainConfig {
    DomainConfig {
        nr_vcpus: 2,
        max_ports: 64,
        max_grant_frames: 4,
        max_maptrack: 16,
        width: if w32 { Width::W32 } else { Width::W64 },
    }
}

fn dom(d: u8) -> DomId {
    1 + DomId::from(d) % (DOMS + 1) // 4 is never created
}

struct World {
    hub: Hub,
    plat: ModelPlatform,
    mem: Vec<FlatMem>,
    widths: [bool; 3],
}

impl World {
    fn add(&mut self, d: DomId) {
        self.plat.add_domain(d, RAM_PAGES);
        let w32 = self.widths[usize::from(d - 1)];
        self.hub.add_domain(d, cfg(w32), &mut self.plat).unwrap();
        self.mem[usize::from(d - 1)] = FlatMem::new(BASE, MEM);
    }

    fn entry(&mut self, g: DomId, r: u32) -> Option<EntryV1> {
        let (fi, off) = locate(r);
        EntryV1::read(self.plat.grant_frame(g, fi)?, off)
    }

    /// Mappings other domains hold of `g`'s grants.
    fn mappings_of(&self, g: DomId) -> Vec<GrantMapping> {
        let mut v = Vec::new();
        for o in self.hub.domain_ids().filter(|&o| o != g) {
            for (_, m) in self.hub.grant_table(o).unwrap().mappings() {
                if m.granter == g {
                    v.push(*m);
                }
            }
        }
        v
    }

    fn mappings(&self, d: DomId) -> BTreeSet<(u32, (u16, u64, u16, u32, u64, bool))> {
        let key = |m: &GrantMapping| (m.grantee, m.gfn, m.granter, m.gref, m.frame, m.writable);
        self.hub
            .grant_table(d)
            .map(|g| g.mappings().map(|(h, m)| (h, key(m))).collect())
            .unwrap_or_default()
    }
}

/// Makes a hypercall and checks its result and every mapping it created.
fn hypercall_checked(w: &mut World, d: DomId, regs: &Regs) {
    // Snapshot every grant entry, and the caller's mappings.
    let mut before = Vec::new();
    for g in 1..=DOMS {
        let nr_entries = w.hub.grant_table(g).map_or(0, |t| t.nr_entries());
        let mut es = Vec::new();
        for r in 0..nr_entries.min(4 * ENTRIES_PER_FRAME) {
            es.push(w.entry(g, r));
        }
        before.push(es);
    }
    let old = w.mappings(d);
    let i = usize::from(d.min(DOMS) - 1);
    let nr = regs.number();
    let o = w.hub.hypercall(d, regs, &mut w.mem[i], &mut w.plat);
    assert!(
        o.ret == 0 || (-95..0).contains(&o.ret) || (nr == hypercall::XEN_VERSION && o.ret > 0),
        "return value {}",
        o.ret
    );
    if let Some(up) = o.upcall {
        assert!(w.hub.has_domain(up.dom) && up.vcpu < 2);
    }
    for (_, m) in w.mappings(d).difference(&old) {
        let (grantee, _, granter, gref, _, writable) = *m;
        assert_eq!(grantee, d);
        assert!(w.hub.has_domain(granter), "mapped a dead domain's grant");
        let e = before[usize::from(granter - 1)]
            .get(gref as usize)
            .copied()
            .flatten()
            .expect("mapped entry existed");
        assert_eq!(e.flags & GTF_TYPE_MASK, GTF_PERMIT_ACCESS, "{e:?}");
        assert_eq!(e.domid, d, "mapped an entry naming d{}", e.domid);
        assert!(
            !writable || e.flags & GTF_READONLY == 0,
            "writable map of r/o grant"
        );
    }
}

fn check(w: &World) {
    if let Err(e) = w.hub.check_invariants() {
        panic!("hub invariant: {e}");
    }
    if let Err(e) = w.plat.check_ept(&w.hub) {
        panic!("EPT: {e}");
    }
    for d in w.hub.domain_ids() {
        for (_, m) in w.hub.grant_table(d).unwrap().mappings() {
            assert!(
                m.frame < RAM_PAGES,
                "mapped frame outside the granter's RAM: {m:?}"
            );
        }
    }
    for d in 1..=DOMS {
        // A dead domain has no model pages but those orphans use.
        assert_eq!(w.hub.has_domain(d), w.plat.domain(d).is_some());
        if w.hub.has_domain(d) {
            assert_eq!(w.hub.orphaned_mappings(d), 0);
        } else {
            assert_eq!(w.hub.orphaned_mappings(d), w.mappings_of(d).len());
        }
    }
}

fuzz_target!(|input: Input| {
    let mut w = World {
        hub: Hub::new(HubConfig::default()),
        plat: ModelPlatform::new(),
        mem: (0..DOMS).map(|_| FlatMem::new(BASE, MEM)).collect(),
        widths: input.widths,
    };
    for d in 1..=DOMS {
        w.add(d);
    }
    for d in 1..=DOMS {
        if input.premap & (1 << (d - 1)) != 0 {
            let grantee = d % DOMS + 1;
            w.hub
                .toolstack_seed_grant(d, PREMAP_GREF, grantee, u32::from(d), false, &mut w.plat)
                .unwrap();
            let req = MapGrantRef {
                host_addr: PREMAP_GFN << 12,
                flags: GNTMAP_HOST_MAP,
                gref: PREMAP_GREF,
                dom: d,
            };
            w.hub.gnttab_map(grantee, &req, &mut w.plat).unwrap();
        }
    }
    check(&w);
    for step in input.steps.iter().take(512) {
        match *step {
            Step::Call {
                dom: d,
                ref call,
                compat,
            } => {
                let d = dom(d);
                let mut known = Known::default();
                for g in 1..=DOMS {
                    for r in 0..16 {
                        if let Some(e) = w.entry(g, r) {
                            if e.flags & GTF_TYPE_MASK == GTF_PERMIT_ACCESS && e.domid == d {
                                known.grants.push((g, r));
                            }
                        }
                    }
                    for (p, e) in w.hub.ports(g) {
                        if e.chan == (Channel::Unbound { remote: d }) {
                            known.unbound.push((g, p));
                        }
                    }
                }
                let (nr, cmd, count, bytes) = encode(call, compat, &known);
                let i = usize::from(d.min(DOMS) - 1);
                w.mem[i].bytes.copy_from_slice(&bytes);
                let regs = Regs {
                    rax: nr,
                    rdi: cmd,
                    rsi: BASE + 0x100,
                    rdx: count,
                    rbx: cmd,
                    rcx: BASE + 0x100,
                    mode: if compat { Mode::Compat } else { Mode::Long },
                    ..Regs::default()
                };
                hypercall_checked(&mut w, d, &regs);
            }
            Step::Hypercall {
                dom: d,
                ref nr,
                cmd,
                arg,
                raw_ptr,
                count,
                compat,
                user,
                ref bytes,
            } => {
                let d = dom(d);
                let i = usize::from(d.min(DOMS) - 1);
                let at = usize::from(arg) % MEM;
                let n = bytes.len().min(MEM - at);
                w.mem[i].bytes[at..at + n].copy_from_slice(&bytes[..n]);
                let ptr = raw_ptr.unwrap_or(BASE + at as u64);
                let nr = match *nr {
                    Nr::Evtchn => hypercall::EVENT_CHANNEL_OP,
                    Nr::Gnttab => hypercall::GRANT_TABLE_OP,
                    Nr::Memory => hypercall::MEMORY_OP,
                    Nr::Hvm => hypercall::HVM_OP,
                    Nr::Version => hypercall::XEN_VERSION,
                    Nr::Raw(x) => x,
                };
                let regs = Regs {
                    rax: nr,
                    rdi: cmd,
                    rsi: ptr,
                    rdx: u64::from(count),
                    rbx: cmd,
                    rcx: ptr,
                    mode: if compat { Mode::Compat } else { Mode::Long },
                    cpl: if user { 3 } else { 0 },
                    ..Regs::default()
                };
                hypercall_checked(&mut w, d, &regs);
            }
            Step::GrantBytes {
                dom: d,
                frame,
                off,
                ref bytes,
            } => {
                let d = dom(d);
                if let Some(p) = w.plat.grant_frame(d, u32::from(frame % 4)) {
                    let off = usize::from(off) % 4096;
                    let n = bytes.len().min(4096 - off);
                    let _ = p.write(off, &bytes[..n]);
                }
            }
            Step::GrantEntry {
                dom: d,
                gref,
                grantee,
                frame,
                ro,
                flags,
            } => {
                let d = dom(d);
                let (fi, off) = locate(self::gref(gref));
                let flags = flags.unwrap_or(GTF_PERMIT_ACCESS | if ro { GTF_READONLY } else { 0 });
                let e = EntryV1 {
                    flags,
                    domid: dom(grantee),
                    frame: u32::from(frame % 64),
                };
                if let Some(p) = w.plat.grant_frame(d, fi) {
                    let _ = p.write(off, &e.to_bytes());
                }
            }
            Step::SharedInfoBytes {
                dom: d,
                off,
                ref bytes,
            } => {
                let d = dom(d);
                if let Some(p) = w.plat.shared_info(d) {
                    let off = usize::from(off) % 4096;
                    let n = bytes.len().min(4096 - off);
                    let _ = p.write(off, &bytes[..n]);
                }
            }
            Step::Virq { dom: d, virq, vcpu } => {
                let _ = w
                    .hub
                    .raise_virq(dom(d), u32::from(virq), u32::from(vcpu), &mut w.plat);
            }
            Step::Restart { dom: d } => {
                let d = dom(d);
                if w.hub.has_domain(d) {
                    let theirs = w.mappings_of(d);
                    w.hub.remove_domain(d, &mut w.plat).unwrap();
                    assert!(w.plat.domain(d).unwrap().ept_grants.is_empty());
                    assert_eq!(w.mappings_of(d), theirs, "others' mappings survive");
                    w.plat.remove_domain(d);
                }
                if d <= DOMS {
                    if w.hub.orphaned_mappings(d) == 0 {
                        w.add(d);
                    } else {
                        let w32 = w.widths[usize::from(d - 1)];
                        let r = w.hub.add_domain(d, cfg(w32), &mut w.plat);
                        assert_eq!(r, Err(XenError::Busy));
                    }
                }
            }
            Step::Touch {
                dom: d,
                pick,
                off,
                byte,
            } => {
                let d = dom(d);
                let maps: Vec<GrantMapping> = w
                    .hub
                    .grant_table(d)
                    .map(|t| t.mappings().map(|(_, m)| *m).collect())
                    .unwrap_or_default();
                if let Some(m) = nth(&maps, pick) {
                    let off = usize::from(off) % 4096;
                    let r = w.plat.write_gfn(d, m.gfn, off, &[byte]);
                    assert_eq!(r.is_ok(), m.writable, "write through {m:?}");
                    let mut b = [0u8];
                    w.plat.read_gfn(d, m.gfn, off, &mut b).unwrap();
                    if m.writable {
                        assert_eq!(b[0], byte);
                    }
                    let g = w.plat.granted_page(&m).expect("mapped page exists")[off];
                    assert_eq!(g, b[0], "grantee and granter disagree");
                }
            }
            Step::Toolstack {
                dom: d,
                index,
                value,
                gref,
                grantee,
            } => {
                let d = dom(d);
                let _ = w.hub.toolstack_set_param(d, u32::from(index % 40), value);
                let _ = w.hub.toolstack_alloc_unbound(d, dom(grantee));
                let _ = w.hub.toolstack_seed_grant(
                    d,
                    u32::from(gref),
                    dom(grantee),
                    value as u32,
                    index & 1 == 1,
                    &mut w.plat,
                );
            }
            Step::Refuse { map, place } => {
                w.plat.refuse_map = map;
                w.plat.refuse_place = place;
            }
        }
        check(&w);
    }
    // Destroying every domain (grantees included) leaves nothing mapped
    // anywhere, not even orphaned, and frees every zombie page.
    for d in 1..=DOMS {
        if w.hub.has_domain(d) {
            w.hub.remove_domain(d, &mut w.plat).unwrap();
        }
    }
    for d in 1..=DOMS {
        if let Some(md) = w.plat.domain(d) {
            assert!(md.ept_grants.is_empty());
        }
        assert_eq!(w.hub.orphaned_mappings(d), 0);
    }
    assert!(w.plat.zombie_ram.is_empty(), "zombie pages left");
    assert_eq!(w.plat.stray_unmaps, 0);
});
