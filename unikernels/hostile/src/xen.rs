//! The `xen` step: a battery of bad hypercalls that the hypervisor must each
//! refuse with Xen's error for it — never by stopping, never by touching
//! another VM — and the console lines that report them.
//!
//! Every [`Case`] is one call: a hypercall number with its command, an
//! argument struct (written into a scratch buffer of this guest's RAM) or a
//! pointer somewhere bad, and the [`Outcome`] Xen's rules give for it as
//! cloister's VMM implements them (`vmm/xen-abi`: `decode.rs`, `hub.rs`; and
//! the VMM's platform, `vmm/roottask/src/xen.rs`: special pages and grant
//! mappings only above RAM and below 4 GiB; argument pointers reach only
//! this VM's RAM). The battery covers:
//!
//! * hypercall numbers without an implementation (with a stub in the
//!   hypercall page or not, `iret`'s included, with high bits set):
//!   `-ENOSYS`;
//! * each implemented operation with its argument pointer at page 0, beyond
//!   the runtime's page tables, at a non-canonical address, wrapping around
//!   the address space, crossing from RAM's last page into what is not RAM,
//!   and at `shared_info` (a VMM page above RAM): `-EFAULT`; and with its
//!   argument in the hypercall page, which is ordinary RAM of this guest and
//!   read as data (the values found there are then refused);
//! * unknown and malformed commands: `-ENOSYS`, `-EINVAL`;
//! * event channels: ports out of range, free, reserved; another domain's
//!   ports and domains that do not exist (`-EINVAL`, `-ENOENT`, `-EPERM`,
//!   `-ESRCH`);
//! * grant maps, unmaps and copies refused with `GNTST_*` statuses: bad
//!   flags, huge references, references the granter never made or made for
//!   another domain, read-only grants written, grants of frames that are not
//!   RAM, `host_addr` in its own RAM, on the store ring, on `shared_info` or
//!   a grant-table frame, at 4 GiB and above 2^52, copies whose offset and
//!   length cross the page — and, between them, one map at an address that
//!   is not page-aligned, which Xen (and cloister) accept at the frame the
//!   address is in, so that unmaps with a wrong address or a device address
//!   can be refused on a live mapping;
//! * `XENMEM_add_to_physmap` of `shared_info` inside RAM and at or above
//!   4 GiB, bad indices and spaces, another domain: `-EINVAL`,
//!   `-EOPNOTSUPP`, `-EPERM`, `-ESRCH`;
//! * `HVMOP_set_param` of the store's frame (`-EPERM`) and of bad callback
//!   values (`-EINVAL`), parameters out of range or not readable, another
//!   domain's, and bad upcall vectors;
//! * the hypercall-page MSR written with a misaligned address or one that is
//!   not a page of RAM: `#GP`.
//!
//! Every call that the VMM accepted would have written only into the
//! scratch buffer or into this domain's own state, and none changes what
//! the runtime relies on (the store's channel, `shared_info`, the grant
//! table's frames, the upcall): a hypervisor that got one of them wrong
//! shows up as an `UNEXPECTED` line, not as a broken runtime.
//!
//! [`run`] makes the calls on a [`Machine`] (the real one in the unikernel,
//! a simulation over the VMM's hub in this crate's tests) and reports each
//! as a [`Line`]: `hostile: xen: <call>: <how> -> <outcome>`, with
//! ` UNEXPECTED (expected <outcome>)` appended when the outcome differs.

use core::fmt;

use rt::xen::abi::{
    evtchnop, gnttabop, hvmop, hypercall, virq, xenmem, xenver, DomId, GrantRef, DOMID_SELF,
    PAGE_SIZE,
};
use rt::xen::{Errno, GntStatus};

/// Bytes of the scratch buffer (the largest argument struct is 40).
pub const SCRATCH_LEN: usize = 64;

/// What the battery needs to know about the running system. Addresses are
/// guest-physical, which the runtime's identity map makes linear too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts {
    /// This domain's id.
    pub me: DomId,
    /// Another running domain that grants this one nothing.
    pub peer: DomId,
    /// The store's domain.
    pub store: DomId,
    /// The first byte past this domain's RAM.
    pub ram_end: u64,
    /// This domain's store ring page (RAM's last page).
    pub store_ring: u64,
    /// Where this domain placed `shared_info`.
    pub shared_info: u64,
    /// Where this domain placed grant-table frame 0.
    pub grant_frame: u64,
    /// A free frame of the GPA window (above RAM, below 4 GiB) that nothing
    /// maps and the runtime will not use.
    pub free_frame: u64,
    /// The hypercall page.
    pub hypercall_page: u64,
    /// A page of this domain's RAM that only the battery uses.
    pub own_page: u64,
    /// A writable grant of `own_page` to this domain itself.
    pub grant_rw: GrantRef,
    /// A read-only grant of `own_page` to this domain itself.
    pub grant_ro: GrantRef,
    /// A grant to this domain itself of its `shared_info` frame (not RAM).
    pub grant_not_ram: GrantRef,
}

/// A domain id as a case names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dom {
    /// This domain, by number.
    Me,
    /// `DOMID_SELF`.
    SelfId,
    /// [`Facts::peer`].
    Peer,
    /// [`Facts::store`].
    Store,
    /// A domain id no VM has ([`ABSENT`]).
    Absent,
    /// Domain 0: cloister has no privileged dom0.
    Zero,
}

/// A domain id that no VM has: cloister gives VMs ids from 1 up to its
/// limit of 32 VMs.
pub const ABSENT: DomId = 0x7fef;

impl Dom {
    fn id(self, f: &Facts) -> DomId {
        match self {
            Dom::Me => f.me,
            Dom::SelfId => DOMID_SELF,
            Dom::Peer => f.peer,
            Dom::Store => f.store,
            Dom::Absent => ABSENT,
            Dom::Zero => 0,
        }
    }
}

/// An address a case uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// This address.
    Fixed(u64),
    /// [`Facts::own_page`].
    OwnPage,
    /// [`Facts::store_ring`].
    StoreRing,
    /// [`Facts::shared_info`].
    SharedInfo,
    /// [`Facts::grant_frame`].
    GrantFrame,
    /// [`Facts::free_frame`] plus this offset.
    FreeFrame(u64),
    /// [`Facts::hypercall_page`] plus this offset.
    HypercallPage(u64),
    /// [`Facts::ram_end`].
    RamEnd,
    /// [`Facts::ram_end`] minus this many bytes.
    BeforeRamEnd(u64),
}

impl At {
    fn addr(self, f: &Facts) -> u64 {
        match self {
            At::Fixed(a) => a,
            At::OwnPage => f.own_page,
            At::StoreRing => f.store_ring,
            At::SharedInfo => f.shared_info,
            At::GrantFrame => f.grant_frame,
            At::FreeFrame(off) => f.free_frame.wrapping_add(off),
            At::HypercallPage(off) => f.hypercall_page.wrapping_add(off),
            At::RamEnd => f.ram_end,
            At::BeforeRamEnd(n) => f.ram_end.wrapping_sub(n),
        }
    }

    fn frame(self, f: &Facts) -> u64 {
        self.addr(f) >> 12
    }
}

/// A grant reference a case uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ref {
    /// This reference.
    Fixed(GrantRef),
    /// [`Facts::grant_rw`].
    Rw,
    /// [`Facts::grant_ro`].
    Ro,
    /// [`Facts::grant_not_ram`].
    NotRam,
}

impl Ref {
    fn get(self, f: &Facts) -> GrantRef {
        match self {
            Ref::Fixed(r) => r,
            Ref::Rw => f.grant_rw,
            Ref::Ro => f.grant_ro,
            Ref::NotRam => f.grant_not_ram,
        }
    }
}

/// A grant mapping handle a case uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handle {
    /// This handle.
    Fixed(u32),
    /// The handle of the last map that succeeded.
    LastMap,
}

/// One side of a grant copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// A frame (`GNTCOPY` without the gref flag).
    Frame {
        /// The domain named.
        dom: Dom,
        /// The frame.
        frame: At,
        /// Byte offset.
        offset: u16,
    },
    /// A grant reference.
    Gref {
        /// The granter.
        dom: Dom,
        /// The reference.
        gref: Ref,
        /// Byte offset.
        offset: u16,
    },
}

impl Side {
    /// Writes the side at `base` of a 64-bit `gnttab_copy`; whether it is a gref.
    fn encode(self, f: &Facts, b: &mut [u8], base: usize) -> bool {
        let (u, dom, offset, gref) = match self {
            Side::Frame { dom, frame, offset } => (frame.frame(f), dom, offset, false),
            Side::Gref { dom, gref, offset } => (u64::from(gref.get(f)), dom, offset, true),
        };
        put(b, base, &u.to_le_bytes());
        put(b, base + 8, &dom.id(f).to_le_bytes());
        put(b, base + 10, &offset.to_le_bytes());
        gref
    }
}

/// A case's argument struct (64-bit ABI layouts, `xen_abi::abi`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// Zeros: the call fails before it reads them.
    None,
    /// `evtchn_alloc_unbound`.
    AllocUnbound {
        /// `dom`.
        dom: Dom,
        /// `remote_dom`.
        remote: Dom,
    },
    /// `evtchn_bind_interdomain`.
    BindInterdomain {
        /// `remote_dom`.
        remote: Dom,
        /// `remote_port`.
        port: u32,
    },
    /// `evtchn_bind_virq`.
    BindVirq {
        /// `virq`.
        virq: u32,
        /// `vcpu`.
        vcpu: u32,
    },
    /// `evtchn_close`, `evtchn_send`, `evtchn_unmask`.
    Port(u32),
    /// `evtchn_status`.
    Status {
        /// `dom`.
        dom: Dom,
        /// `port`.
        port: u32,
    },
    /// `evtchn_bind_vcpu`.
    BindVcpu {
        /// `port`.
        port: u32,
        /// `vcpu`.
        vcpu: u32,
    },
    /// `gnttab_setup_table`.
    SetupTable {
        /// `dom`.
        dom: Dom,
        /// `nr_frames`.
        frames: u32,
        /// `frame_list`.
        list: At,
    },
    /// `gnttab_query_size`.
    QuerySize {
        /// `dom`.
        dom: Dom,
    },
    /// `gnttab_set_version`.
    SetVersion(u32),
    /// `gnttab_get_version`.
    GetVersion {
        /// `dom`.
        dom: Dom,
    },
    /// `gnttab_map_grant_ref`.
    Map {
        /// `host_addr`.
        at: At,
        /// `flags`.
        flags: u32,
        /// `ref`.
        gref: Ref,
        /// `dom`.
        dom: Dom,
    },
    /// `gnttab_unmap_grant_ref`.
    Unmap {
        /// `host_addr`.
        at: At,
        /// `dev_bus_addr`.
        dev: u64,
        /// `handle`.
        handle: Handle,
    },
    /// `gnttab_copy`.
    Copy {
        /// `source`.
        src: Side,
        /// `dest`.
        dst: Side,
        /// `len`.
        len: u16,
    },
    /// `xen_add_to_physmap`.
    Physmap {
        /// `domid`.
        dom: Dom,
        /// `space`.
        space: u32,
        /// `idx`.
        idx: u64,
        /// `gpfn`: the frame of this address.
        gfn: At,
    },
    /// `xen_hvm_param`.
    Param {
        /// `domid`.
        dom: Dom,
        /// `index`.
        index: u32,
        /// `value`.
        value: u64,
    },
    /// `xen_hvm_evtchn_upcall_vector`.
    UpcallVector {
        /// `vcpu`.
        vcpu: u32,
        /// `vector`.
        vector: u8,
    },
    /// `xen_feature_info`.
    Features(u32),
}

fn put(b: &mut [u8], off: usize, bytes: &[u8]) {
    if let Some(dst) = b.get_mut(off..off + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

fn get<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = b.get(off..off + N) {
        out.copy_from_slice(src);
    }
    out
}

impl Arg {
    /// The struct's bytes and the offset of its `int16_t status`, if it
    /// has one.
    fn encode(self, f: &Facts, last_handle: u32) -> ([u8; SCRATCH_LEN], Option<usize>) {
        let mut b = [0u8; SCRATCH_LEN];
        let mut status = None;
        match self {
            Arg::None => {}
            Arg::AllocUnbound { dom, remote } => {
                put(&mut b, 0, &dom.id(f).to_le_bytes());
                put(&mut b, 2, &remote.id(f).to_le_bytes());
            }
            Arg::BindInterdomain { remote, port } => {
                put(&mut b, 0, &remote.id(f).to_le_bytes());
                put(&mut b, 4, &port.to_le_bytes());
            }
            Arg::BindVirq { virq, vcpu } | Arg::BindVcpu { port: virq, vcpu } => {
                put(&mut b, 0, &virq.to_le_bytes());
                put(&mut b, 4, &vcpu.to_le_bytes());
            }
            Arg::Port(p) | Arg::SetVersion(p) | Arg::Features(p) => {
                put(&mut b, 0, &p.to_le_bytes())
            }
            Arg::Status { dom, port } => {
                put(&mut b, 0, &dom.id(f).to_le_bytes());
                put(&mut b, 4, &port.to_le_bytes());
            }
            Arg::SetupTable { dom, frames, list } => {
                put(&mut b, 0, &dom.id(f).to_le_bytes());
                put(&mut b, 4, &frames.to_le_bytes());
                put(&mut b, 16, &list.addr(f).to_le_bytes());
                status = Some(8);
            }
            Arg::QuerySize { dom } => {
                put(&mut b, 0, &dom.id(f).to_le_bytes());
                status = Some(12);
            }
            Arg::GetVersion { dom } => put(&mut b, 0, &dom.id(f).to_le_bytes()),
            Arg::Map {
                at,
                flags,
                gref,
                dom,
            } => {
                put(&mut b, 0, &at.addr(f).to_le_bytes());
                put(&mut b, 8, &flags.to_le_bytes());
                put(&mut b, 12, &gref.get(f).to_le_bytes());
                put(&mut b, 16, &dom.id(f).to_le_bytes());
                status = Some(18);
            }
            Arg::Unmap { at, dev, handle } => {
                let h = match handle {
                    Handle::Fixed(h) => h,
                    Handle::LastMap => last_handle,
                };
                put(&mut b, 0, &at.addr(f).to_le_bytes());
                put(&mut b, 8, &dev.to_le_bytes());
                put(&mut b, 16, &h.to_le_bytes());
                status = Some(20);
            }
            Arg::Copy { src, dst, len } => {
                let (_, dest, len_off, status_off) = gnttabop::COPY_LAYOUT_64;
                let mut flags = 0;
                if src.encode(f, &mut b, 0) {
                    flags |= gnttabop::GNTCOPY_SOURCE_GREF;
                }
                if dst.encode(f, &mut b, dest) {
                    flags |= gnttabop::GNTCOPY_DEST_GREF;
                }
                put(&mut b, len_off, &len.to_le_bytes());
                put(&mut b, len_off + 2, &flags.to_le_bytes());
                status = Some(status_off);
            }
            Arg::Physmap {
                dom,
                space,
                idx,
                gfn,
            } => {
                put(&mut b, 0, &dom.id(f).to_le_bytes());
                put(&mut b, 4, &space.to_le_bytes());
                put(&mut b, 8, &idx.to_le_bytes());
                put(&mut b, 16, &gfn.frame(f).to_le_bytes());
            }
            Arg::Param { dom, index, value } => {
                put(&mut b, 0, &dom.id(f).to_le_bytes());
                put(&mut b, 4, &index.to_le_bytes());
                put(&mut b, 8, &value.to_le_bytes());
            }
            Arg::UpcallVector { vcpu, vector } => {
                put(&mut b, 0, &vcpu.to_le_bytes());
                put(&mut b, 4, &[vector]);
            }
        }
        (b, status)
    }
}

/// What a case does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Hypercall `nr` with arguments (`cmd`, pointer, `count`, 0, 0). The
    /// pointer is the scratch buffer holding `arg`, or `at`.
    Call {
        /// The hypercall number (RAX).
        nr: u64,
        /// Argument 1.
        cmd: u64,
        /// The struct argument 2 points at.
        arg: Arg,
        /// Where argument 2 points instead of the scratch buffer.
        at: Option<At>,
        /// Argument 3.
        count: u64,
    },
    /// A write of this address to the hypercall-page MSR.
    Msr(At),
}

/// How a case came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The hypercall failed.
    Err(Errno),
    /// The hypercall returned this (not negative), and its struct has no
    /// status.
    Ret(i64),
    /// The hypercall returned 0 and the struct's status says this.
    Status(GntStatus),
    /// The MSR write raised `#GP`.
    Gp,
    /// The MSR write was accepted.
    Accepted,
}

impl Outcome {
    /// Whether the hypervisor refused the call.
    pub fn is_refusal(self) -> bool {
        match self {
            Outcome::Err(_) | Outcome::Gp => true,
            Outcome::Status(s) => s != GntStatus::OKAY,
            Outcome::Ret(_) | Outcome::Accepted => false,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Err(e) => write!(f, "{e}"),
            Outcome::Ret(r) => write!(f, "returned {r}"),
            Outcome::Status(s) => write!(f, "status {} ({})", s.name(), s.code()),
            Outcome::Gp => f.write_str("#GP"),
            Outcome::Accepted => f.write_str("accepted"),
        }
    }
}

/// One call of the battery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Case {
    /// The operation, e.g. `event_channel_op(EVTCHNOP_send)`.
    pub call: &'static str,
    /// What is wrong with it.
    pub how: &'static str,
    /// The call.
    pub op: Op,
    /// Its outcome by Xen's rules as cloister implements them.
    pub expect: Outcome,
}

/// The start of every line of the step.
pub const PREFIX: &str = "hostile: xen: ";

/// The console line for a case and its outcome.
#[derive(Clone, Copy, Debug)]
pub struct Line<'a> {
    /// The case.
    pub case: &'a Case,
    /// Its outcome.
    pub got: Outcome,
}

impl Line<'_> {
    /// The line a case prints when it comes out as expected.
    pub fn expected(case: &Case) -> Line<'_> {
        Line {
            case,
            got: case.expect,
        }
    }
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.case;
        write!(f, "{PREFIX}{}: {} -> {}", c.call, c.how, self.got)?;
        if self.got != c.expect {
            write!(f, " UNEXPECTED (expected {})", c.expect)?;
        }
        Ok(())
    }
}

/// The step's last line, after `refused` bad calls were refused as
/// expected and the domain's own channels worked.
#[derive(Clone, Copy, Debug)]
pub struct Done(pub usize);

impl fmt::Display for Done {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}{} bad calls refused; own channels still work",
            self.0
        )
    }
}

/// What the step's machine does for the battery.
pub trait Machine {
    /// The linear address of the scratch buffer: [`SCRATCH_LEN`] bytes of
    /// this domain's RAM that only the battery uses.
    fn scratch(&self) -> u64;
    /// Replaces the scratch buffer's contents.
    fn put_scratch(&mut self, bytes: &[u8; SCRATCH_LEN]);
    /// The scratch buffer's contents.
    fn get_scratch(&mut self) -> [u8; SCRATCH_LEN];
    /// VMCALL with RAX = `nr` and arguments 1–5; returns RAX.
    fn hypercall(&mut self, nr: u64, args: [u64; 5]) -> i64;
    /// Writes `value` to the hypercall-page MSR; false if that raised `#GP`.
    fn write_hypercall_msr(&mut self, value: u64) -> bool;
}

/// How the battery went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Calls refused as expected.
    pub refused: usize,
    /// Calls accepted as expected.
    pub accepted: usize,
    /// Calls that did not come out as expected.
    pub unexpected: usize,
}

/// Runs `case` on `m`; `last_handle` is the handle of the last map that
/// succeeded (updated).
fn run_one(m: &mut impl Machine, f: &Facts, case: &Case, last_handle: &mut u32) -> Outcome {
    let (nr, cmd, arg, at, count) = match case.op {
        Op::Msr(at) => {
            return if m.write_hypercall_msr(at.addr(f)) {
                Outcome::Accepted
            } else {
                Outcome::Gp
            };
        }
        Op::Call {
            nr,
            cmd,
            arg,
            at,
            count,
        } => (nr, cmd, arg, at, count),
    };
    let (bytes, status) = arg.encode(f, *last_handle);
    m.put_scratch(&bytes);
    let ptr = at.map_or(m.scratch(), |a| a.addr(f));
    let ret = m.hypercall(nr, [cmd, ptr, count, 0, 0]);
    if let Err(e) = Errno::check(ret) {
        return Outcome::Err(e);
    }
    match (ret, status, at) {
        (0, Some(off), None) => {
            let after = m.get_scratch();
            let s = GntStatus(i16::from_le_bytes(get(&after, off)));
            if s == GntStatus::OKAY && matches!(arg, Arg::Map { .. }) {
                *last_handle = u32::from_le_bytes(get(&after, 20));
            }
            Outcome::Status(s)
        }
        _ => Outcome::Ret(ret),
    }
}

/// Runs every case of [`cases`] on `m` in order, passing each with its
/// outcome to `report`.
pub fn run(m: &mut impl Machine, f: &Facts, mut report: impl FnMut(&Case, Outcome)) -> Tally {
    let mut tally = Tally::default();
    let mut last_handle = u32::MAX;
    for case in cases() {
        let got = run_one(m, f, &case, &mut last_handle);
        if got != case.expect {
            tally.unexpected += 1;
        } else if got.is_refusal() {
            tally.refused += 1;
        } else {
            tally.accepted += 1;
        }
        report(&case, got);
    }
    tally
}

/// How many cases expect a refusal.
pub fn refusals() -> usize {
    cases().filter(|c| c.expect.is_refusal()).count()
}

// ---- The cases ----

const EPERM: Outcome = Outcome::Err(Errno::EPERM);
const ENOENT: Outcome = Outcome::Err(Errno::ENOENT);
const ESRCH: Outcome = Outcome::Err(Errno::ESRCH);
const EFAULT: Outcome = Outcome::Err(Errno::EFAULT);
const EINVAL: Outcome = Outcome::Err(Errno::EINVAL);
const ENOSYS: Outcome = Outcome::Err(Errno::ENOSYS);
const EOPNOTSUPP: Outcome = Outcome::Err(Errno::EOPNOTSUPP);
const OKAY: Outcome = Outcome::Status(GntStatus::OKAY);
/// `GNTST_general_error`.
const GENERAL_ERROR: Outcome = Outcome::Status(GntStatus::GENERAL_ERROR);
/// `GNTST_bad_domain`.
const BAD_DOMAIN: Outcome = Outcome::Status(GntStatus::BAD_DOMAIN);
/// `GNTST_bad_gntref`.
const BAD_GNTREF: Outcome = Outcome::Status(GntStatus::BAD_GNTREF);
/// `GNTST_bad_handle`.
const BAD_HANDLE: Outcome = Outcome::Status(GntStatus::BAD_HANDLE);
/// `GNTST_bad_virt_addr`.
const BAD_VIRT_ADDR: Outcome = Outcome::Status(GntStatus(-5));
/// `GNTST_bad_dev_addr`.
const BAD_DEV_ADDR: Outcome = Outcome::Status(GntStatus(-6));
/// `GNTST_permission_denied`.
const PERMISSION_DENIED: Outcome = Outcome::Status(GntStatus::PERMISSION_DENIED);
/// `GNTST_bad_page`.
const BAD_PAGE: Outcome = Outcome::Status(GntStatus(-9));
/// `GNTST_bad_copy_arg`.
const BAD_COPY_ARG: Outcome = Outcome::Status(GntStatus(-10));

/// 4 GiB: the first address above the GPA window.
const FOUR_GIB: u64 = 1 << 32;
/// An address whose frame is at 2^40, beyond any x86-64 physical address.
const ABOVE_52_BITS: u64 = 1 << 52;
/// A port beyond the domain's 1024 (cloister gives each domain ports
/// 0..1024).
const PORT_OUT: u32 = 1024;
/// A port below that limit that this domain never allocates.
const PORT_FREE: u32 = 1023;
/// The port the toolstack allocates first in every domain: its store
/// channel.
const STORE_PORT: u32 = 1;
/// A reference the peer never granted (its first non-reserved one).
const NEVER_GRANTED: GrantRef = gnttabop::NR_RESERVED_ENTRIES;
/// A valid upcall vector.
const VECTOR: u64 = (hvmop::CALLBACK_TYPE_VECTOR << hvmop::CALLBACK_TYPE_SHIFT) | 0xf3;

const fn call(nr: u64, cmd: u64, arg: Arg, count: u64) -> Op {
    Op::Call {
        nr,
        cmd,
        arg,
        at: None,
        count,
    }
}

const fn evtchn(cmd: u32, arg: Arg) -> Op {
    call(hypercall::EVENT_CHANNEL_OP, cmd as u64, arg, 0)
}

const fn gnttab(cmd: u32, arg: Arg) -> Op {
    call(hypercall::GRANT_TABLE_OP, cmd as u64, arg, 1)
}

const fn memory(cmd: u64, arg: Arg) -> Op {
    call(hypercall::MEMORY_OP, cmd, arg, 0)
}

const fn hvm(cmd: u64, arg: Arg) -> Op {
    call(hypercall::HVM_OP, cmd, arg, 0)
}

const fn version(cmd: u32, arg: Arg) -> Op {
    call(hypercall::XEN_VERSION, cmd as u64, arg, 0)
}

const fn case(call: &'static str, how: &'static str, op: Op, expect: Outcome) -> Case {
    Case {
        call,
        how,
        op,
        expect,
    }
}

const ALLOC_UNBOUND: &str = "event_channel_op(EVTCHNOP_alloc_unbound)";
const BIND_INTERDOMAIN: &str = "event_channel_op(EVTCHNOP_bind_interdomain)";
const BIND_VIRQ: &str = "event_channel_op(EVTCHNOP_bind_virq)";
const CLOSE: &str = "event_channel_op(EVTCHNOP_close)";
const SEND: &str = "event_channel_op(EVTCHNOP_send)";
const STATUS: &str = "event_channel_op(EVTCHNOP_status)";
const BIND_VCPU: &str = "event_channel_op(EVTCHNOP_bind_vcpu)";
const UNMASK: &str = "event_channel_op(EVTCHNOP_unmask)";
const EVTCHN: &str = "event_channel_op";
const SETUP_TABLE: &str = "grant_table_op(GNTTABOP_setup_table)";
const QUERY_SIZE: &str = "grant_table_op(GNTTABOP_query_size)";
const MAP: &str = "grant_table_op(GNTTABOP_map_grant_ref)";
const UNMAP: &str = "grant_table_op(GNTTABOP_unmap_grant_ref)";
const COPY: &str = "grant_table_op(GNTTABOP_copy)";
const SET_VERSION: &str = "grant_table_op(GNTTABOP_set_version)";
const GET_VERSION: &str = "grant_table_op(GNTTABOP_get_version)";
const GNTTAB: &str = "grant_table_op";
const ADD_TO_PHYSMAP: &str = "memory_op(XENMEM_add_to_physmap)";
const MEMORY: &str = "memory_op";
const SET_PARAM: &str = "hvm_op(HVMOP_set_param)";
const GET_PARAM: &str = "hvm_op(HVMOP_get_param)";
const UPCALL_VECTOR: &str = "hvm_op(HVMOP_set_evtchn_upcall_vector)";
const HVM: &str = "hvm_op";
const GET_FEATURES: &str = "xen_version(XENVER_get_features)";
const VERSION: &str = "xen_version";
const MSR: &str = "wrmsr to the hypercall-page MSR";

/// A map of this domain's own writable grant at `at`.
const fn map_own(at: At) -> Arg {
    Arg::Map {
        at,
        flags: gnttabop::GNTMAP_HOST_MAP,
        gref: Ref::Rw,
        dom: Dom::SelfId,
    }
}

/// A map of `dom`'s `gref` at the free frame.
const fn map_of(dom: Dom, gref: Ref) -> Arg {
    Arg::Map {
        at: At::FreeFrame(0),
        flags: gnttabop::GNTMAP_HOST_MAP,
        gref,
        dom,
    }
}

/// The battery's own page as a copy side.
const fn own(offset: u16) -> Side {
    Side::Frame {
        dom: Dom::SelfId,
        frame: At::OwnPage,
        offset,
    }
}

/// `add_to_physmap` of `shared_info` at `gfn`'s frame.
const fn shared_info_at(gfn: At) -> Arg {
    Arg::Physmap {
        dom: Dom::SelfId,
        space: xenmem::SPACE_SHARED_INFO,
        idx: 0,
        gfn,
    }
}

const fn set_param(dom: Dom, index: u32, value: u64) -> Arg {
    Arg::Param { dom, index, value }
}

/// The cases whose struct is in the scratch buffer, in order (the map and
/// unmaps of the unaligned address depend on it).
const FIXED: &[Case] = &[
    // ---- event channels ----
    case(
        ALLOC_UNBOUND,
        "in another domain",
        evtchn(
            evtchnop::ALLOC_UNBOUND,
            Arg::AllocUnbound {
                dom: Dom::Peer,
                remote: Dom::SelfId,
            },
        ),
        EPERM,
    ),
    case(
        ALLOC_UNBOUND,
        "in a domain that does not exist",
        evtchn(
            evtchnop::ALLOC_UNBOUND,
            Arg::AllocUnbound {
                dom: Dom::Absent,
                remote: Dom::SelfId,
            },
        ),
        ESRCH,
    ),
    case(
        BIND_INTERDOMAIN,
        "to a domain that does not exist",
        evtchn(
            evtchnop::BIND_INTERDOMAIN,
            Arg::BindInterdomain {
                remote: Dom::Absent,
                port: STORE_PORT,
            },
        ),
        ESRCH,
    ),
    case(
        BIND_INTERDOMAIN,
        "to domain 0 (cloister has no dom0)",
        evtchn(
            evtchnop::BIND_INTERDOMAIN,
            Arg::BindInterdomain {
                remote: Dom::Zero,
                port: STORE_PORT,
            },
        ),
        ESRCH,
    ),
    case(
        BIND_INTERDOMAIN,
        "to the peer's store port (not offered to this domain)",
        evtchn(
            evtchnop::BIND_INTERDOMAIN,
            Arg::BindInterdomain {
                remote: Dom::Peer,
                port: STORE_PORT,
            },
        ),
        EINVAL,
    ),
    case(
        BIND_INTERDOMAIN,
        "to the store's reserved port 0",
        evtchn(
            evtchnop::BIND_INTERDOMAIN,
            Arg::BindInterdomain {
                remote: Dom::Store,
                port: 0,
            },
        ),
        EINVAL,
    ),
    case(
        BIND_INTERDOMAIN,
        "to the store's port 0xffffffff",
        evtchn(
            evtchnop::BIND_INTERDOMAIN,
            Arg::BindInterdomain {
                remote: Dom::Store,
                port: u32::MAX,
            },
        ),
        EINVAL,
    ),
    case(
        BIND_INTERDOMAIN,
        "to its own free port 1023",
        evtchn(
            evtchnop::BIND_INTERDOMAIN,
            Arg::BindInterdomain {
                remote: Dom::SelfId,
                port: PORT_FREE,
            },
        ),
        EINVAL,
    ),
    case(
        BIND_VIRQ,
        "VIRQ 24 (there are 24)",
        evtchn(
            evtchnop::BIND_VIRQ,
            Arg::BindVirq {
                virq: virq::NR_VIRQS,
                vcpu: 0,
            },
        ),
        EINVAL,
    ),
    case(
        BIND_VIRQ,
        "VIRQ 0xffffffff",
        evtchn(
            evtchnop::BIND_VIRQ,
            Arg::BindVirq {
                virq: u32::MAX,
                vcpu: 0,
            },
        ),
        EINVAL,
    ),
    case(
        BIND_VIRQ,
        "global VIRQ_DOM_EXC on vCPU 1",
        evtchn(
            evtchnop::BIND_VIRQ,
            Arg::BindVirq {
                virq: virq::DOM_EXC,
                vcpu: 1,
            },
        ),
        EINVAL,
    ),
    case(
        BIND_VIRQ,
        "per-vCPU VIRQ_TIMER on vCPU 1 (there is one vCPU)",
        evtchn(
            evtchnop::BIND_VIRQ,
            Arg::BindVirq {
                virq: virq::TIMER,
                vcpu: 1,
            },
        ),
        ENOENT,
    ),
    case(
        CLOSE,
        "reserved port 0",
        evtchn(evtchnop::CLOSE, Arg::Port(0)),
        EINVAL,
    ),
    case(
        CLOSE,
        "free port 1023",
        evtchn(evtchnop::CLOSE, Arg::Port(PORT_FREE)),
        EINVAL,
    ),
    case(
        CLOSE,
        "port 1024 (out of range)",
        evtchn(evtchnop::CLOSE, Arg::Port(PORT_OUT)),
        EINVAL,
    ),
    case(
        CLOSE,
        "port 0xffffffff",
        evtchn(evtchnop::CLOSE, Arg::Port(u32::MAX)),
        EINVAL,
    ),
    case(
        SEND,
        "reserved port 0",
        evtchn(evtchnop::SEND, Arg::Port(0)),
        EINVAL,
    ),
    case(
        SEND,
        "free port 1023",
        evtchn(evtchnop::SEND, Arg::Port(PORT_FREE)),
        EINVAL,
    ),
    case(
        SEND,
        "port 1024 (out of range)",
        evtchn(evtchnop::SEND, Arg::Port(PORT_OUT)),
        EINVAL,
    ),
    case(
        STATUS,
        "of the peer's store port",
        evtchn(
            evtchnop::STATUS,
            Arg::Status {
                dom: Dom::Peer,
                port: STORE_PORT,
            },
        ),
        EPERM,
    ),
    case(
        STATUS,
        "in a domain that does not exist",
        evtchn(
            evtchnop::STATUS,
            Arg::Status {
                dom: Dom::Absent,
                port: STORE_PORT,
            },
        ),
        ESRCH,
    ),
    case(
        STATUS,
        "of port 1024 (out of range)",
        evtchn(
            evtchnop::STATUS,
            Arg::Status {
                dom: Dom::SelfId,
                port: PORT_OUT,
            },
        ),
        EINVAL,
    ),
    case(
        BIND_VCPU,
        "its store port to vCPU 1 (there is one vCPU)",
        evtchn(
            evtchnop::BIND_VCPU,
            Arg::BindVcpu {
                port: STORE_PORT,
                vcpu: 1,
            },
        ),
        ENOENT,
    ),
    case(
        BIND_VCPU,
        "port 1024 (out of range)",
        evtchn(
            evtchnop::BIND_VCPU,
            Arg::BindVcpu {
                port: PORT_OUT,
                vcpu: 0,
            },
        ),
        EINVAL,
    ),
    case(
        BIND_VCPU,
        "reserved port 0",
        evtchn(evtchnop::BIND_VCPU, Arg::BindVcpu { port: 0, vcpu: 0 }),
        EINVAL,
    ),
    case(
        UNMASK,
        "port 1024 (out of range)",
        evtchn(evtchnop::UNMASK, Arg::Port(PORT_OUT)),
        EINVAL,
    ),
    case(
        UNMASK,
        "port 0xffffffff",
        evtchn(evtchnop::UNMASK, Arg::Port(u32::MAX)),
        EINVAL,
    ),
    case(
        EVTCHN,
        "command 2 (EVTCHNOP_bind_pirq: not implemented)",
        evtchn(2, Arg::None),
        ENOSYS,
    ),
    case(
        EVTCHN,
        "command 7 (EVTCHNOP_bind_ipi: not implemented)",
        evtchn(7, Arg::None),
        ENOSYS,
    ),
    case(
        EVTCHN,
        "command 11 (EVTCHNOP_init_control: not implemented)",
        evtchn(11, Arg::None),
        ENOSYS,
    ),
    case(
        EVTCHN,
        "command 0xffffffff",
        evtchn(u32::MAX, Arg::None),
        ENOSYS,
    ),
    // ---- grant tables: commands, sizes, versions ----
    case(
        GNTTAB,
        "command 3 (GNTTABOP_dump_table: not implemented)",
        gnttab(3, Arg::None),
        ENOSYS,
    ),
    case(
        GNTTAB,
        "command 4 (GNTTABOP_transfer: not implemented)",
        gnttab(4, Arg::None),
        ENOSYS,
    ),
    case(
        GNTTAB,
        "command 7 (GNTTABOP_unmap_and_replace: not implemented)",
        gnttab(7, Arg::None),
        ENOSYS,
    ),
    case(
        GNTTAB,
        "command 0xfff",
        gnttab(gnttabop::CMD_MASK, Arg::None),
        ENOSYS,
    ),
    case(
        GNTTAB,
        "GNTTABOP_query_size with continuation bits set",
        gnttab(
            gnttabop::QUERY_SIZE | (1 << 12),
            Arg::QuerySize { dom: Dom::SelfId },
        ),
        EINVAL,
    ),
    case(
        QUERY_SIZE,
        "count 0",
        call(
            hypercall::GRANT_TABLE_OP,
            gnttabop::QUERY_SIZE as u64,
            Arg::QuerySize { dom: Dom::SelfId },
            0,
        ),
        EINVAL,
    ),
    case(
        QUERY_SIZE,
        "count 2",
        call(
            hypercall::GRANT_TABLE_OP,
            gnttabop::QUERY_SIZE as u64,
            Arg::QuerySize { dom: Dom::SelfId },
            2,
        ),
        EINVAL,
    ),
    case(
        MAP,
        "count 4097 (more than one call may carry)",
        call(
            hypercall::GRANT_TABLE_OP,
            gnttabop::MAP_GRANT_REF as u64,
            map_own(At::FreeFrame(0)),
            4097,
        ),
        EINVAL,
    ),
    case(
        SETUP_TABLE,
        "of another domain",
        gnttab(
            gnttabop::SETUP_TABLE,
            Arg::SetupTable {
                dom: Dom::Peer,
                frames: 1,
                list: At::Fixed(0),
            },
        ),
        PERMISSION_DENIED,
    ),
    case(
        SETUP_TABLE,
        "of a domain that does not exist",
        gnttab(
            gnttabop::SETUP_TABLE,
            Arg::SetupTable {
                dom: Dom::Absent,
                frames: 1,
                list: At::Fixed(0),
            },
        ),
        BAD_DOMAIN,
    ),
    case(
        SETUP_TABLE,
        "0xffffffff frames",
        gnttab(
            gnttabop::SETUP_TABLE,
            Arg::SetupTable {
                dom: Dom::SelfId,
                frames: u32::MAX,
                list: At::Fixed(0),
            },
        ),
        GENERAL_ERROR,
    ),
    case(
        SETUP_TABLE,
        "frame list at 0x0 (page 0, unmapped)",
        gnttab(
            gnttabop::SETUP_TABLE,
            Arg::SetupTable {
                dom: Dom::SelfId,
                frames: 1,
                list: At::Fixed(0),
            },
        ),
        BAD_VIRT_ADDR,
    ),
    case(
        SETUP_TABLE,
        "frame list at shared_info (a VMM page above RAM)",
        gnttab(
            gnttabop::SETUP_TABLE,
            Arg::SetupTable {
                dom: Dom::SelfId,
                frames: 1,
                list: At::SharedInfo,
            },
        ),
        BAD_VIRT_ADDR,
    ),
    case(
        QUERY_SIZE,
        "of another domain",
        gnttab(gnttabop::QUERY_SIZE, Arg::QuerySize { dom: Dom::Peer }),
        PERMISSION_DENIED,
    ),
    case(
        QUERY_SIZE,
        "of a domain that does not exist",
        gnttab(gnttabop::QUERY_SIZE, Arg::QuerySize { dom: Dom::Absent }),
        BAD_DOMAIN,
    ),
    case(
        SET_VERSION,
        "version 2 (only version 1 is offered)",
        gnttab(gnttabop::SET_VERSION, Arg::SetVersion(2)),
        EOPNOTSUPP,
    ),
    case(
        SET_VERSION,
        "version 0",
        gnttab(gnttabop::SET_VERSION, Arg::SetVersion(0)),
        EINVAL,
    ),
    case(
        GET_VERSION,
        "of another domain",
        gnttab(gnttabop::GET_VERSION, Arg::GetVersion { dom: Dom::Peer }),
        EPERM,
    ),
    case(
        GET_VERSION,
        "of a domain that does not exist",
        gnttab(gnttabop::GET_VERSION, Arg::GetVersion { dom: Dom::Absent }),
        ESRCH,
    ),
    // ---- grant maps ----
    case(
        MAP,
        "no map flags",
        gnttab(
            gnttabop::MAP_GRANT_REF,
            Arg::Map {
                at: At::FreeFrame(0),
                flags: 0,
                gref: Ref::Rw,
                dom: Dom::SelfId,
            },
        ),
        BAD_GNTREF,
    ),
    case(
        MAP,
        "GNTMAP_device_map only",
        gnttab(
            gnttabop::MAP_GRANT_REF,
            Arg::Map {
                at: At::FreeFrame(0),
                flags: gnttabop::GNTMAP_DEVICE_MAP,
                gref: Ref::Rw,
                dom: Dom::SelfId,
            },
        ),
        GENERAL_ERROR,
    ),
    case(
        MAP,
        "GNTMAP_contains_pte (PV only)",
        gnttab(
            gnttabop::MAP_GRANT_REF,
            Arg::Map {
                at: At::FreeFrame(0),
                flags: gnttabop::GNTMAP_HOST_MAP | gnttabop::GNTMAP_CONTAINS_PTE,
                gref: Ref::Rw,
                dom: Dom::SelfId,
            },
        ),
        GENERAL_ERROR,
    ),
    case(
        MAP,
        "a grant of a domain that does not exist",
        gnttab(gnttabop::MAP_GRANT_REF, map_of(Dom::Absent, Ref::Fixed(8))),
        BAD_DOMAIN,
    ),
    case(
        MAP,
        "a grant of domain 0 (cloister has no dom0)",
        gnttab(gnttabop::MAP_GRANT_REF, map_of(Dom::Zero, Ref::Fixed(8))),
        BAD_DOMAIN,
    ),
    case(
        MAP,
        "the store's reference 0xffffffff",
        gnttab(
            gnttabop::MAP_GRANT_REF,
            map_of(Dom::Store, Ref::Fixed(u32::MAX)),
        ),
        BAD_GNTREF,
    ),
    case(
        MAP,
        "the peer's reference 0x100000 (beyond its table)",
        gnttab(
            gnttabop::MAP_GRANT_REF,
            map_of(Dom::Peer, Ref::Fixed(1 << 20)),
        ),
        BAD_GNTREF,
    ),
    case(
        MAP,
        "a reference the peer never granted",
        gnttab(
            gnttabop::MAP_GRANT_REF,
            map_of(Dom::Peer, Ref::Fixed(NEVER_GRANTED)),
        ),
        GENERAL_ERROR,
    ),
    case(
        MAP,
        "the peer's store-ring grant (to the store, not this domain)",
        gnttab(
            gnttabop::MAP_GRANT_REF,
            map_of(Dom::Peer, Ref::Fixed(gnttabop::RESERVED_XENSTORE)),
        ),
        GENERAL_ERROR,
    ),
    case(
        MAP,
        "its own read-only grant, writable",
        gnttab(gnttabop::MAP_GRANT_REF, map_of(Dom::SelfId, Ref::Ro)),
        GENERAL_ERROR,
    ),
    case(
        MAP,
        "its own grant of a frame that is not RAM (shared_info's)",
        gnttab(gnttabop::MAP_GRANT_REF, map_of(Dom::SelfId, Ref::NotRam)),
        BAD_PAGE,
    ),
    case(
        MAP,
        "host_addr in its own RAM",
        gnttab(gnttabop::MAP_GRANT_REF, map_own(At::OwnPage)),
        GENERAL_ERROR,
    ),
    case(
        MAP,
        "host_addr on its store ring (RAM)",
        gnttab(gnttabop::MAP_GRANT_REF, map_own(At::StoreRing)),
        GENERAL_ERROR,
    ),
    case(
        MAP,
        "host_addr on shared_info",
        gnttab(gnttabop::MAP_GRANT_REF, map_own(At::SharedInfo)),
        GENERAL_ERROR,
    ),
    case(
        MAP,
        "host_addr on grant-table frame 0",
        gnttab(gnttabop::MAP_GRANT_REF, map_own(At::GrantFrame)),
        GENERAL_ERROR,
    ),
    case(
        MAP,
        "host_addr 0x100000000 (4 GiB, above the window)",
        gnttab(gnttabop::MAP_GRANT_REF, map_own(At::Fixed(FOUR_GIB))),
        GENERAL_ERROR,
    ),
    case(
        MAP,
        "host_addr 0x10000000000000 (beyond 52 bits)",
        gnttab(gnttabop::MAP_GRANT_REF, map_own(At::Fixed(ABOVE_52_BITS))),
        GENERAL_ERROR,
    ),
    case(
        MAP,
        "host_addr 0xffffffffffffffff",
        gnttab(gnttabop::MAP_GRANT_REF, map_own(At::Fixed(u64::MAX))),
        GENERAL_ERROR,
    ),
    // Not refused: Xen maps at the frame `host_addr` is in (HVM:
    // `gaddr_to_gfn`), and so does cloister. The unmaps below need it.
    case(
        MAP,
        "its own grant at a free frame + 0x123 (not page-aligned: mapped at that frame, as Xen \
         does)",
        gnttab(gnttabop::MAP_GRANT_REF, map_own(At::FreeFrame(0x123))),
        OKAY,
    ),
    case(
        MAP,
        "its own grant again at that frame (a mapping is there)",
        gnttab(gnttabop::MAP_GRANT_REF, map_own(At::FreeFrame(0))),
        GENERAL_ERROR,
    ),
    // ---- grant unmaps ----
    case(
        UNMAP,
        "that mapping with a device address",
        gnttab(
            gnttabop::UNMAP_GRANT_REF,
            Arg::Unmap {
                at: At::Fixed(0),
                dev: 0x1000,
                handle: Handle::LastMap,
            },
        ),
        BAD_DEV_ADDR,
    ),
    case(
        UNMAP,
        "that mapping at the next frame",
        gnttab(
            gnttabop::UNMAP_GRANT_REF,
            Arg::Unmap {
                at: At::FreeFrame(PAGE_SIZE as u64),
                dev: 0,
                handle: Handle::LastMap,
            },
        ),
        GENERAL_ERROR,
    ),
    case(
        UNMAP,
        "that mapping at its address + 0x123 (its frame: unmapped)",
        gnttab(
            gnttabop::UNMAP_GRANT_REF,
            Arg::Unmap {
                at: At::FreeFrame(0x123),
                dev: 0,
                handle: Handle::LastMap,
            },
        ),
        OKAY,
    ),
    case(
        UNMAP,
        "that mapping again (its handle is gone)",
        gnttab(
            gnttabop::UNMAP_GRANT_REF,
            Arg::Unmap {
                at: At::Fixed(0),
                dev: 0,
                handle: Handle::LastMap,
            },
        ),
        BAD_HANDLE,
    ),
    case(
        UNMAP,
        "handle 0xffffffff",
        gnttab(
            gnttabop::UNMAP_GRANT_REF,
            Arg::Unmap {
                at: At::Fixed(0),
                dev: 0,
                handle: Handle::Fixed(u32::MAX),
            },
        ),
        BAD_HANDLE,
    ),
    // ---- grant copies ----
    case(
        COPY,
        "source offset 4000 + length 200 (crosses the page)",
        gnttab(
            gnttabop::COPY,
            Arg::Copy {
                src: own(4000),
                dst: own(0),
                len: 200,
            },
        ),
        BAD_COPY_ARG,
    ),
    case(
        COPY,
        "destination offset 4095 + length 2 (crosses the page)",
        gnttab(
            gnttabop::COPY,
            Arg::Copy {
                src: own(0),
                dst: own(4095),
                len: 2,
            },
        ),
        BAD_COPY_ARG,
    ),
    case(
        COPY,
        "length 0xffff",
        gnttab(
            gnttabop::COPY,
            Arg::Copy {
                src: own(0),
                dst: own(0),
                len: u16::MAX,
            },
        ),
        BAD_COPY_ARG,
    ),
    case(
        COPY,
        "source offset 0xffff, length 0",
        gnttab(
            gnttabop::COPY,
            Arg::Copy {
                src: own(u16::MAX),
                dst: own(0),
                len: 0,
            },
        ),
        BAD_COPY_ARG,
    ),
    case(
        COPY,
        "from a frame of another domain",
        gnttab(
            gnttabop::COPY,
            Arg::Copy {
                src: Side::Frame {
                    dom: Dom::Peer,
                    frame: At::OwnPage,
                    offset: 0,
                },
                dst: own(0),
                len: 8,
            },
        ),
        PERMISSION_DENIED,
    ),
    case(
        COPY,
        "from a frame of a domain that does not exist",
        gnttab(
            gnttabop::COPY,
            Arg::Copy {
                src: Side::Frame {
                    dom: Dom::Absent,
                    frame: At::OwnPage,
                    offset: 0,
                },
                dst: own(0),
                len: 8,
            },
        ),
        BAD_DOMAIN,
    ),
    case(
        COPY,
        "from its shared_info frame (not RAM)",
        gnttab(
            gnttabop::COPY,
            Arg::Copy {
                src: Side::Frame {
                    dom: Dom::SelfId,
                    frame: At::SharedInfo,
                    offset: 0,
                },
                dst: own(0),
                len: 8,
            },
        ),
        BAD_PAGE,
    ),
    case(
        COPY,
        "from frame 0x10000000000 (beyond 52 bits)",
        gnttab(
            gnttabop::COPY,
            Arg::Copy {
                src: Side::Frame {
                    dom: Dom::SelfId,
                    frame: At::Fixed(ABOVE_52_BITS),
                    offset: 0,
                },
                dst: own(0),
                len: 8,
            },
        ),
        BAD_PAGE,
    ),
    case(
        COPY,
        "to frame 0x100000 (4 GiB, not RAM)",
        gnttab(
            gnttabop::COPY,
            Arg::Copy {
                src: own(0),
                dst: Side::Frame {
                    dom: Dom::SelfId,
                    frame: At::Fixed(FOUR_GIB),
                    offset: 0,
                },
                len: 8,
            },
        ),
        BAD_PAGE,
    ),
    case(
        COPY,
        "from a reference the peer never granted",
        gnttab(
            gnttabop::COPY,
            Arg::Copy {
                src: Side::Gref {
                    dom: Dom::Peer,
                    gref: Ref::Fixed(NEVER_GRANTED),
                    offset: 0,
                },
                dst: own(0),
                len: 8,
            },
        ),
        GENERAL_ERROR,
    ),
    case(
        COPY,
        "from the peer's store-ring grant (to the store)",
        gnttab(
            gnttabop::COPY,
            Arg::Copy {
                src: Side::Gref {
                    dom: Dom::Peer,
                    gref: Ref::Fixed(gnttabop::RESERVED_XENSTORE),
                    offset: 0,
                },
                dst: own(0),
                len: 8,
            },
        ),
        GENERAL_ERROR,
    ),
    case(
        COPY,
        "from the store's reference 0xffffffff",
        gnttab(
            gnttabop::COPY,
            Arg::Copy {
                src: Side::Gref {
                    dom: Dom::Store,
                    gref: Ref::Fixed(u32::MAX),
                    offset: 0,
                },
                dst: own(0),
                len: 8,
            },
        ),
        BAD_GNTREF,
    ),
    case(
        COPY,
        "from a grant of a domain that does not exist",
        gnttab(
            gnttabop::COPY,
            Arg::Copy {
                src: Side::Gref {
                    dom: Dom::Absent,
                    gref: Ref::Fixed(8),
                    offset: 0,
                },
                dst: own(0),
                len: 8,
            },
        ),
        BAD_DOMAIN,
    ),
    case(
        COPY,
        "into its own read-only grant",
        gnttab(
            gnttabop::COPY,
            Arg::Copy {
                src: own(0),
                dst: Side::Gref {
                    dom: Dom::SelfId,
                    gref: Ref::Ro,
                    offset: 0,
                },
                len: 8,
            },
        ),
        GENERAL_ERROR,
    ),
    case(
        COPY,
        "from its own grant of a frame that is not RAM",
        gnttab(
            gnttabop::COPY,
            Arg::Copy {
                src: Side::Gref {
                    dom: Dom::SelfId,
                    gref: Ref::NotRam,
                    offset: 0,
                },
                dst: own(0),
                len: 8,
            },
        ),
        BAD_PAGE,
    ),
    // ---- memory_op ----
    case(
        MEMORY,
        "command 0 (XENMEM_increase_reservation: not implemented)",
        memory(0, Arg::None),
        ENOSYS,
    ),
    case(
        MEMORY,
        "command 1 (XENMEM_decrease_reservation: not implemented)",
        memory(1, Arg::None),
        ENOSYS,
    ),
    case(
        MEMORY,
        "command 6 (XENMEM_populate_physmap: not implemented)",
        memory(6, Arg::None),
        ENOSYS,
    ),
    case(
        MEMORY,
        "command 0x3f",
        memory(xenmem::CMD_MASK, Arg::None),
        ENOSYS,
    ),
    case(
        MEMORY,
        "XENMEM_add_to_physmap with continuation bits set",
        memory(
            xenmem::ADD_TO_PHYSMAP as u64 | (1 << 6),
            shared_info_at(At::FreeFrame(0)),
        ),
        EINVAL,
    ),
    case(
        ADD_TO_PHYSMAP,
        "shared_info at a frame of its own RAM",
        memory(xenmem::ADD_TO_PHYSMAP as u64, shared_info_at(At::OwnPage)),
        EINVAL,
    ),
    case(
        ADD_TO_PHYSMAP,
        "shared_info at its store ring (RAM)",
        memory(xenmem::ADD_TO_PHYSMAP as u64, shared_info_at(At::StoreRing)),
        EINVAL,
    ),
    case(
        ADD_TO_PHYSMAP,
        "shared_info at frame 0x100000 (4 GiB, above the window)",
        memory(
            xenmem::ADD_TO_PHYSMAP as u64,
            shared_info_at(At::Fixed(FOUR_GIB)),
        ),
        EINVAL,
    ),
    case(
        ADD_TO_PHYSMAP,
        "shared_info at frame 0x10000000000 (beyond 52 bits)",
        memory(
            xenmem::ADD_TO_PHYSMAP as u64,
            shared_info_at(At::Fixed(ABOVE_52_BITS)),
        ),
        EINVAL,
    ),
    case(
        ADD_TO_PHYSMAP,
        "shared_info index 1",
        memory(
            xenmem::ADD_TO_PHYSMAP as u64,
            Arg::Physmap {
                dom: Dom::SelfId,
                space: xenmem::SPACE_SHARED_INFO,
                idx: 1,
                gfn: At::FreeFrame(0),
            },
        ),
        EINVAL,
    ),
    case(
        ADD_TO_PHYSMAP,
        "grant-table frame 0xffff (beyond the table's maximum)",
        memory(
            xenmem::ADD_TO_PHYSMAP as u64,
            Arg::Physmap {
                dom: Dom::SelfId,
                space: xenmem::SPACE_GRANT_TABLE,
                idx: 0xffff,
                gfn: At::FreeFrame(0),
            },
        ),
        EINVAL,
    ),
    case(
        ADD_TO_PHYSMAP,
        "grant-table status frame 0 (version 2 only)",
        memory(
            xenmem::ADD_TO_PHYSMAP as u64,
            Arg::Physmap {
                dom: Dom::SelfId,
                space: xenmem::SPACE_GRANT_TABLE,
                idx: xenmem::IDX_GRANT_TABLE_STATUS,
                gfn: At::FreeFrame(0),
            },
        ),
        EINVAL,
    ),
    case(
        ADD_TO_PHYSMAP,
        "space XENMAPSPACE_gmfn (moving RAM: not offered)",
        memory(
            xenmem::ADD_TO_PHYSMAP as u64,
            Arg::Physmap {
                dom: Dom::SelfId,
                space: xenmem::SPACE_GMFN,
                idx: 0x100,
                gfn: At::FreeFrame(0),
            },
        ),
        EOPNOTSUPP,
    ),
    case(
        ADD_TO_PHYSMAP,
        "space 99",
        memory(
            xenmem::ADD_TO_PHYSMAP as u64,
            Arg::Physmap {
                dom: Dom::SelfId,
                space: 99,
                idx: 0,
                gfn: At::FreeFrame(0),
            },
        ),
        EINVAL,
    ),
    case(
        ADD_TO_PHYSMAP,
        "into another domain",
        memory(
            xenmem::ADD_TO_PHYSMAP as u64,
            Arg::Physmap {
                dom: Dom::Peer,
                space: xenmem::SPACE_SHARED_INFO,
                idx: 0,
                gfn: At::FreeFrame(0),
            },
        ),
        EPERM,
    ),
    case(
        ADD_TO_PHYSMAP,
        "into a domain that does not exist",
        memory(
            xenmem::ADD_TO_PHYSMAP as u64,
            Arg::Physmap {
                dom: Dom::Absent,
                space: xenmem::SPACE_SHARED_INFO,
                idx: 0,
                gfn: At::FreeFrame(0),
            },
        ),
        ESRCH,
    ),
    // ---- hvm_op ----
    case(
        SET_PARAM,
        "HVM_PARAM_STORE_PFN (the toolstack's)",
        hvm(
            hvmop::SET_PARAM,
            set_param(Dom::SelfId, hvmop::PARAM_STORE_PFN, 0x100),
        ),
        EPERM,
    ),
    case(
        SET_PARAM,
        "HVM_PARAM_CALLBACK_IRQ vector 0x0f (below 0x10)",
        hvm(
            hvmop::SET_PARAM,
            set_param(
                Dom::SelfId,
                hvmop::PARAM_CALLBACK_IRQ,
                (hvmop::CALLBACK_TYPE_VECTOR << hvmop::CALLBACK_TYPE_SHIFT) | 0x0f,
            ),
        ),
        EINVAL,
    ),
    case(
        SET_PARAM,
        "HVM_PARAM_CALLBACK_IRQ of type 0 (GSI 5: only vectors are offered)",
        hvm(
            hvmop::SET_PARAM,
            set_param(Dom::SelfId, hvmop::PARAM_CALLBACK_IRQ, 5),
        ),
        EINVAL,
    ),
    case(
        SET_PARAM,
        "HVM_PARAM_CALLBACK_IRQ of type 1 (PCI INTx)",
        hvm(
            hvmop::SET_PARAM,
            set_param(Dom::SelfId, hvmop::PARAM_CALLBACK_IRQ, (1 << 56) | 0x1000),
        ),
        EINVAL,
    ),
    case(
        SET_PARAM,
        "HVM_PARAM_CALLBACK_IRQ vector 0x1f3 (more than 8 bits)",
        hvm(
            hvmop::SET_PARAM,
            set_param(
                Dom::SelfId,
                hvmop::PARAM_CALLBACK_IRQ,
                (hvmop::CALLBACK_TYPE_VECTOR << hvmop::CALLBACK_TYPE_SHIFT) | 0x1f3,
            ),
        ),
        EINVAL,
    ),
    case(
        SET_PARAM,
        "HVM_PARAM_CALLBACK_IRQ of type 0xff",
        hvm(
            hvmop::SET_PARAM,
            set_param(Dom::SelfId, hvmop::PARAM_CALLBACK_IRQ, (0xff << 56) | 0xf3),
        ),
        EINVAL,
    ),
    case(
        SET_PARAM,
        "index 39 (HVM_NR_PARAMS)",
        hvm(
            hvmop::SET_PARAM,
            set_param(Dom::SelfId, hvmop::NR_PARAMS, 0),
        ),
        EINVAL,
    ),
    case(
        SET_PARAM,
        "index 0xffffffff",
        hvm(hvmop::SET_PARAM, set_param(Dom::SelfId, u32::MAX, 0)),
        EINVAL,
    ),
    case(
        SET_PARAM,
        "another domain's HVM_PARAM_CALLBACK_IRQ",
        hvm(
            hvmop::SET_PARAM,
            set_param(Dom::Peer, hvmop::PARAM_CALLBACK_IRQ, VECTOR),
        ),
        EPERM,
    ),
    case(
        SET_PARAM,
        "in a domain that does not exist",
        hvm(
            hvmop::SET_PARAM,
            set_param(Dom::Absent, hvmop::PARAM_CALLBACK_IRQ, VECTOR),
        ),
        ESRCH,
    ),
    case(
        GET_PARAM,
        "index 39 (HVM_NR_PARAMS)",
        hvm(
            hvmop::GET_PARAM,
            set_param(Dom::SelfId, hvmop::NR_PARAMS, 0),
        ),
        EINVAL,
    ),
    case(
        GET_PARAM,
        "HVM_PARAM_IOREQ_PFN (not readable by the guest)",
        hvm(hvmop::GET_PARAM, set_param(Dom::SelfId, 5, 0)),
        EPERM,
    ),
    case(
        GET_PARAM,
        "another domain's HVM_PARAM_STORE_PFN",
        hvm(
            hvmop::GET_PARAM,
            set_param(Dom::Peer, hvmop::PARAM_STORE_PFN, 0),
        ),
        EPERM,
    ),
    case(
        UPCALL_VECTOR,
        "vCPU 1 (there is one vCPU)",
        hvm(
            hvmop::SET_EVTCHN_UPCALL_VECTOR,
            Arg::UpcallVector {
                vcpu: 1,
                vector: 0xf3,
            },
        ),
        ENOENT,
    ),
    case(
        UPCALL_VECTOR,
        "vector 0x0f (below 0x10)",
        hvm(
            hvmop::SET_EVTCHN_UPCALL_VECTOR,
            Arg::UpcallVector {
                vcpu: 0,
                vector: 0x0f,
            },
        ),
        EINVAL,
    ),
    case(
        HVM,
        "op 2 (HVMOP_set_pci_intx_level: not implemented)",
        hvm(2, Arg::None),
        ENOSYS,
    ),
    case(HVM, "op 0xffff", hvm(0xffff, Arg::None), ENOSYS),
    case(
        HVM,
        "op 0x100000000 (HVMOP_set_param in the low 32 bits)",
        hvm(1 << 32, Arg::None),
        ENOSYS,
    ),
    // ---- xen_version ----
    case(
        VERSION,
        "command 1 (XENVER_extraversion: not implemented)",
        version(1, Arg::None),
        ENOSYS,
    ),
    case(VERSION, "command 99", version(99, Arg::None), ENOSYS),
    case(
        GET_FEATURES,
        "feature word 1 (there is one)",
        version(xenver::GET_FEATURES, Arg::Features(1)),
        EINVAL,
    ),
    case(
        GET_FEATURES,
        "feature word 0xffffffff",
        version(xenver::GET_FEATURES, Arg::Features(u32::MAX)),
        EINVAL,
    ),
];

/// Hypercall numbers without an implementation, made as a bare VMCALL:
/// (number, name).
const NUMBERS: &[(u64, &str)] = &[
    (0, "hypercall 0 (set_trap_table)"),
    (1, "hypercall 1 (mmu_update)"),
    (13, "hypercall 13 (multicall)"),
    (23, "hypercall 23 (iret: its stub is ud2)"),
    (24, "hypercall 24 (vcpu_op)"),
    (29, "hypercall 29 (sched_op)"),
    (33, "hypercall 33 (physdev_op)"),
    (35, "hypercall 35 (sysctl)"),
    (36, "hypercall 36 (domctl)"),
    (63, "hypercall 63"),
    (64, "hypercall 64 (beyond Xen's table)"),
    (127, "hypercall 127 (the page's last stub)"),
    (128, "hypercall 128 (no stub: beyond the page)"),
    (
        (1 << 32) | hypercall::EVENT_CHANNEL_OP,
        "hypercall 0x100000020 (event_channel_op in the low 32 bits)",
    ),
    (u64::MAX, "hypercall 0xffffffffffffffff"),
];

/// Every implemented operation that takes an argument struct: (name,
/// hypercall, command, count).
const POINTER_OPS: &[(&str, u64, u64, u64)] = &[
    (
        ALLOC_UNBOUND,
        hypercall::EVENT_CHANNEL_OP,
        evtchnop::ALLOC_UNBOUND as u64,
        0,
    ),
    (
        BIND_INTERDOMAIN,
        hypercall::EVENT_CHANNEL_OP,
        evtchnop::BIND_INTERDOMAIN as u64,
        0,
    ),
    (
        BIND_VIRQ,
        hypercall::EVENT_CHANNEL_OP,
        evtchnop::BIND_VIRQ as u64,
        0,
    ),
    (
        CLOSE,
        hypercall::EVENT_CHANNEL_OP,
        evtchnop::CLOSE as u64,
        0,
    ),
    (SEND, hypercall::EVENT_CHANNEL_OP, evtchnop::SEND as u64, 0),
    (
        STATUS,
        hypercall::EVENT_CHANNEL_OP,
        evtchnop::STATUS as u64,
        0,
    ),
    (
        BIND_VCPU,
        hypercall::EVENT_CHANNEL_OP,
        evtchnop::BIND_VCPU as u64,
        0,
    ),
    (
        UNMASK,
        hypercall::EVENT_CHANNEL_OP,
        evtchnop::UNMASK as u64,
        0,
    ),
    (
        SETUP_TABLE,
        hypercall::GRANT_TABLE_OP,
        gnttabop::SETUP_TABLE as u64,
        1,
    ),
    (
        QUERY_SIZE,
        hypercall::GRANT_TABLE_OP,
        gnttabop::QUERY_SIZE as u64,
        1,
    ),
    (
        MAP,
        hypercall::GRANT_TABLE_OP,
        gnttabop::MAP_GRANT_REF as u64,
        1,
    ),
    (
        UNMAP,
        hypercall::GRANT_TABLE_OP,
        gnttabop::UNMAP_GRANT_REF as u64,
        1,
    ),
    (COPY, hypercall::GRANT_TABLE_OP, gnttabop::COPY as u64, 1),
    (
        SET_VERSION,
        hypercall::GRANT_TABLE_OP,
        gnttabop::SET_VERSION as u64,
        1,
    ),
    (
        GET_VERSION,
        hypercall::GRANT_TABLE_OP,
        gnttabop::GET_VERSION as u64,
        1,
    ),
    (
        ADD_TO_PHYSMAP,
        hypercall::MEMORY_OP,
        xenmem::ADD_TO_PHYSMAP as u64,
        0,
    ),
    (SET_PARAM, hypercall::HVM_OP, hvmop::SET_PARAM, 0),
    (GET_PARAM, hypercall::HVM_OP, hvmop::GET_PARAM, 0),
    (
        UPCALL_VECTOR,
        hypercall::HVM_OP,
        hvmop::SET_EVTCHN_UPCALL_VECTOR,
        0,
    ),
    (
        GET_FEATURES,
        hypercall::XEN_VERSION,
        xenver::GET_FEATURES as u64,
        0,
    ),
];

/// Argument pointers that reach nothing the hypervisor may read for this
/// guest.
const BAD_POINTERS: &[(&str, At)] = &[
    ("argument at 0x0 (page 0, unmapped)", At::Fixed(0)),
    (
        "argument at 0x1000000000 (beyond the runtime's page tables)",
        At::Fixed(0x10_0000_0000),
    ),
    (
        "argument at 0x8000000000100000 (non-canonical)",
        At::Fixed(0x8000_0000_0010_0000),
    ),
    (
        "argument at 0xfffffffffffffffe (wraps around)",
        At::Fixed(0xffff_ffff_ffff_fffe),
    ),
    (
        "argument at RAM's last 2 bytes (crosses into what is not RAM)",
        At::BeforeRamEnd(2),
    ),
    (
        "argument at shared_info (a VMM page above RAM)",
        At::SharedInfo,
    ),
];

/// Arguments read from the hypercall page: this guest's RAM, read as data.
const IN_HYPERCALL_PAGE: &[Case] = &[
    // Stub 0 starts B8 00 00 00 00: `dom` 0x00b8 = 184, no such domain.
    case(
        STATUS,
        "argument in the hypercall page (stub 0: dom 184)",
        Op::Call {
            nr: hypercall::EVENT_CHANNEL_OP,
            cmd: evtchnop::STATUS as u64,
            arg: Arg::None,
            at: Some(At::HypercallPage(0)),
            count: 0,
        },
        ESRCH,
    ),
    // Stub 32 starts B8 20 00 00: port 0x20b8, out of range.
    case(
        SEND,
        "argument in the hypercall page (stub 32: port 0x20b8)",
        Op::Call {
            nr: hypercall::EVENT_CHANNEL_OP,
            cmd: evtchnop::SEND as u64,
            arg: Arg::None,
            at: Some(At::HypercallPage(
                hypercall::EVENT_CHANNEL_OP * hypercall::STUB_SIZE as u64,
            )),
            count: 0,
        },
        EINVAL,
    ),
];

/// Hypercall-page MSR values the VMM must refuse with `#GP`.
const MSR_CASES: &[Case] = &[
    case(
        MSR,
        "the hypercall page + 1 (bits 11:0 select a page: only page 0 exists)",
        Op::Msr(At::HypercallPage(1)),
        Outcome::Gp,
    ),
    case(
        MSR,
        "the hypercall page + 0xfff",
        Op::Msr(At::HypercallPage(0xfff)),
        Outcome::Gp,
    ),
    case(
        MSR,
        "the first page past RAM",
        Op::Msr(At::RamEnd),
        Outcome::Gp,
    ),
    case(
        MSR,
        "shared_info (a VMM page above RAM)",
        Op::Msr(At::SharedInfo),
        Outcome::Gp,
    ),
    case(
        MSR,
        "0x100000000 (4 GiB)",
        Op::Msr(At::Fixed(FOUR_GIB)),
        Outcome::Gp,
    ),
    case(
        MSR,
        "0x10000000000000 (beyond 52 bits)",
        Op::Msr(At::Fixed(ABOVE_52_BITS)),
        Outcome::Gp,
    ),
];

/// Every case, in the order [`run`] makes them.
pub fn cases() -> impl Iterator<Item = Case> + Clone {
    let numbers = NUMBERS
        .iter()
        .map(|&(nr, name)| case(name, "not implemented", call(nr, 0, Arg::None, 0), ENOSYS));
    let pointers = POINTER_OPS.iter().flat_map(|&(name, nr, cmd, count)| {
        BAD_POINTERS.iter().map(move |&(how, at)| {
            case(
                name,
                how,
                Op::Call {
                    nr,
                    cmd,
                    arg: Arg::None,
                    at: Some(at),
                    count,
                },
                EFAULT,
            )
        })
    });
    numbers
        .chain(FIXED.iter().copied())
        .chain(pointers)
        .chain(IN_HYPERCALL_PAGE.iter().copied())
        .chain(MSR_CASES.iter().copied())
}

#[cfg(test)]
mod tests;
