//! Hypercall decoding: registers at a VMCALL exit plus argument structs read
//! through [`GuestMem`] into typed requests.
//!
//! Register convention (Xen's `xen.h`): RAX holds the hypercall number; in
//! 64-bit mode the arguments are RDI, RSI, RDX, R10, R8; in any 32-bit mode
//! they are EBX, ECX, EDX, ESI, EDI (upper halves ignored) and struct layouts
//! are those of the 32-bit ABI (`unsigned long`, pointers and `xen_pfn_t`
//! 4 bytes). The return value goes back in RAX ([`crate::Outcome::rax`]).
//!
//! Decoding never changes state. It fails with `-EPERM` for a hypercall from
//! CPL > 0, `-ENOSYS` for an unknown hypercall or command, `-EINVAL` for a bad
//! count or reserved command bits, and `-EFAULT` when an argument can't be
//! read. Batched grant ops are read in full before any is executed.

use alloc::vec::Vec;

use crate::abi::{
    evtchnop, gnttabop, hvmop, hypercall, xenmem, xenver, DomId, GrantHandle, GrantRef, Port,
};
use crate::error::XenError;
use crate::mem::GuestMem;

/// The guest's execution mode at the VMCALL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// 64-bit mode (EFER.LMA and CS.L set): the 64-bit ABI.
    #[default]
    Long,
    /// Protected mode or compatibility mode: the 32-bit ABI.
    Compat,
}

impl Mode {
    /// Bytes in an `unsigned long` / pointer / `xen_pfn_t` in this ABI.
    pub const fn word(self) -> usize {
        match self {
            Mode::Long => 8,
            Mode::Compat => 4,
        }
    }
}

/// The guest registers a hypercall reads, captured at the VMCALL exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Regs {
    /// RAX: the hypercall number.
    pub rax: u64,
    /// RBX (arg 1 in 32-bit mode).
    pub rbx: u64,
    /// RCX (arg 2 in 32-bit mode).
    pub rcx: u64,
    /// RDX (arg 3 in both modes).
    pub rdx: u64,
    /// RSI (arg 2 in 64-bit mode, arg 4 in 32-bit mode).
    pub rsi: u64,
    /// RDI (arg 1 in 64-bit mode, arg 5 in 32-bit mode).
    pub rdi: u64,
    /// R8 (arg 5 in 64-bit mode).
    pub r8: u64,
    /// R10 (arg 4 in 64-bit mode).
    pub r10: u64,
    /// The ABI the guest is executing in.
    pub mode: Mode,
    /// The current privilege level (CS.RPL / SS.DPL); hypercalls need 0.
    pub cpl: u8,
}

impl Regs {
    /// A 64-bit hypercall from CPL 0 as a guest makes it through the
    /// hypercall page: `nr` in RAX, arguments in RDI, RSI, RDX, R10, R8.
    pub fn long(nr: u64, args: [u64; 5]) -> Regs {
        let [rdi, rsi, rdx, r10, r8] = args;
        Regs {
            rax: nr,
            rdi,
            rsi,
            rdx,
            r10,
            r8,
            mode: Mode::Long,
            cpl: 0,
            ..Regs::default()
        }
    }

    /// The hypercall number.
    pub fn number(&self) -> u64 {
        match self.mode {
            Mode::Long => self.rax,
            Mode::Compat => self.rax & 0xFFFF_FFFF,
        }
    }

    /// Arguments 1–5.
    pub fn args(&self) -> [u64; 5] {
        match self.mode {
            Mode::Long => [self.rdi, self.rsi, self.rdx, self.r10, self.r8],
            Mode::Compat => {
                [self.rbx, self.rcx, self.rdx, self.rsi, self.rdi].map(|r| r & 0xFFFF_FFFF)
            }
        }
    }
}

/// Most ops one batched `grant_table_op` may carry. Xen splits longer
/// batches with continuations; this implementation refuses them (`-EINVAL`).
pub const MAX_BATCH: u32 = 4096;

/// A decoded hypercall.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hypercall {
    /// `event_channel_op`; `arg` is the struct's linear address (for results).
    Evtchn {
        /// The operation.
        op: EvtchnOp,
        /// Linear address of the argument struct.
        arg: u64,
    },
    /// `grant_table_op`; `uop` is the first struct's linear address.
    Gnttab {
        /// The operation(s).
        op: GnttabOp,
        /// Linear address of the first argument struct.
        uop: u64,
    },
    /// `memory_op(XENMEM_add_to_physmap)`.
    AddToPhysmap(AddToPhysmap),
    /// `hvm_op`; `arg` is the struct's linear address.
    Hvm {
        /// The operation.
        op: HvmOp,
        /// Linear address of the argument struct.
        arg: u64,
    },
    /// `xen_version`; `arg` is the struct's linear address (if any).
    Version {
        /// The operation.
        op: VersionOp,
        /// Linear address of the argument struct.
        arg: u64,
    },
}

/// An `EVTCHNOP_*` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvtchnOp {
    /// Allocate a port in `dom` that `remote_dom` may bind to.
    AllocUnbound {
        /// The domain to allocate in (`DOMID_SELF` or the caller).
        dom: DomId,
        /// The only domain that may bind (`DOMID_SELF` = the caller).
        remote_dom: DomId,
    },
    /// Connect a fresh local port to `remote_dom`'s unbound `remote_port`.
    BindInterdomain {
        /// The remote domain (`DOMID_SELF` = loopback).
        remote_dom: DomId,
        /// The remote unbound port.
        remote_port: Port,
    },
    /// Bind a fresh port to VIRQ `virq` on `vcpu`.
    BindVirq {
        /// The VIRQ number.
        virq: u32,
        /// The vCPU (0 for a global VIRQ).
        vcpu: u32,
    },
    /// Close a local port.
    Close {
        /// The port.
        port: Port,
    },
    /// Notify the remote end of a local port.
    Send {
        /// The port.
        port: Port,
    },
    /// Report the state of `dom`'s `port`.
    Status {
        /// The domain (`DOMID_SELF` or the caller).
        dom: DomId,
        /// The port.
        port: Port,
    },
    /// Change the vCPU a port notifies.
    BindVcpu {
        /// The port.
        port: Port,
        /// The new vCPU.
        vcpu: u32,
    },
    /// Unmask a port, delivering it if pending.
    Unmask {
        /// The port.
        port: Port,
    },
}

/// A `gnttab_map_grant_ref`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapGrantRef {
    /// Guest-physical address at which to map (HVM: `host_addr >> 12` is the GFN).
    pub host_addr: u64,
    /// `GNTMAP_*` flags.
    pub flags: u32,
    /// The grant reference in `dom`'s table.
    pub gref: GrantRef,
    /// The granting domain.
    pub dom: DomId,
}

/// A `gnttab_unmap_grant_ref`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnmapGrantRef {
    /// 0, or the guest-physical address the mapping was made at.
    pub host_addr: u64,
    /// 0 (device mappings are never handed out).
    pub dev_bus_addr: u64,
    /// The handle `map_grant_ref` returned.
    pub handle: GrantHandle,
}

/// One side of a `gnttab_copy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyPtr {
    /// A grant reference in `dom`'s table (`GNTCOPY_*_gref`).
    Gref {
        /// The granting domain.
        dom: DomId,
        /// The reference.
        gref: GrantRef,
        /// Byte offset in the frame.
        offset: u16,
    },
    /// A frame of the caller's own memory (`dom` must name the caller).
    Gmfn {
        /// The domain named (`DOMID_SELF` or the caller).
        dom: DomId,
        /// The guest frame number.
        gfn: u64,
        /// Byte offset in the frame.
        offset: u16,
    },
}

/// A `gnttab_copy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantCopy {
    /// Where bytes come from.
    pub source: CopyPtr,
    /// Where they go.
    pub dest: CopyPtr,
    /// Byte count.
    pub len: u16,
}

/// A `GNTTABOP_*` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GnttabOp {
    /// Grow `dom`'s table to `nr_frames` and list its frames' GFNs.
    SetupTable {
        /// The domain (`DOMID_SELF` or the caller).
        dom: DomId,
        /// Frames wanted.
        nr_frames: u32,
        /// Linear address of the `xen_pfn_t` output list.
        frame_list: u64,
    },
    /// Report current and maximum table size.
    QuerySize {
        /// The domain (`DOMID_SELF` or the caller).
        dom: DomId,
    },
    /// Map grants.
    Map(Vec<MapGrantRef>),
    /// Unmap grants.
    Unmap(Vec<UnmapGrantRef>),
    /// Copy through grants.
    Copy(Vec<GrantCopy>),
    /// Choose the table format (only 1 is offered).
    SetVersion {
        /// Requested version.
        version: u32,
    },
    /// Report the table format.
    GetVersion {
        /// The domain (`DOMID_SELF` or the caller).
        dom: DomId,
    },
}

/// A `xen_add_to_physmap`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddToPhysmap {
    /// The domain (`DOMID_SELF` or the caller).
    pub domid: DomId,
    /// `XENMAPSPACE_*`.
    pub space: u32,
    /// Index in that space (0 for shared_info, the frame for grant_table).
    pub idx: u64,
    /// The GFN at which the page should appear.
    pub gpfn: u64,
}

/// An `HVMOP_*` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HvmOp {
    /// `HVMOP_set_param`.
    SetParam {
        /// The domain (`DOMID_SELF` or the caller).
        domid: DomId,
        /// `HVM_PARAM_*`.
        index: u32,
        /// The value.
        value: u64,
    },
    /// `HVMOP_get_param`.
    GetParam {
        /// The domain (`DOMID_SELF` or the caller).
        domid: DomId,
        /// `HVM_PARAM_*`.
        index: u32,
    },
    /// `HVMOP_set_evtchn_upcall_vector`.
    SetEvtchnUpcallVector {
        /// The vCPU.
        vcpu: u32,
        /// Its upcall vector (≥ 0x10).
        vector: u8,
    },
}

/// A `XENVER_*` request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionOp {
    /// `XENVER_version`.
    Version,
    /// `XENVER_get_features` for feature word `submap_idx`.
    GetFeatures {
        /// Which 32-bit feature word.
        submap_idx: u32,
    },
}

/// Linear address `base + off` for a `len`-byte access, or `-EFAULT` if the
/// span leaves the address space of `mode`.
pub(crate) fn span(mode: Mode, base: u64, off: u64, len: u64) -> Result<u64, XenError> {
    let start = base.checked_add(off).ok_or(XenError::Fault)?;
    let end = start.checked_add(len).ok_or(XenError::Fault)?;
    if mode == Mode::Compat && end > (1u64 << 32) {
        return Err(XenError::Fault);
    }
    Ok(start)
}

/// Address of element `i` of an array of `size`-byte structs at `base`.
pub(crate) fn elem(mode: Mode, base: u64, i: u64, size: usize) -> Result<u64, XenError> {
    let size = size as u64;
    let off = i.checked_mul(size).ok_or(XenError::Fault)?;
    span(mode, base, off, size)
}

const MAX_STRUCT: usize = 40;

/// A struct read from the guest.
struct Raw {
    buf: [u8; MAX_STRUCT],
}

impl Raw {
    fn read<M: GuestMem + ?Sized>(
        mem: &mut M,
        mode: Mode,
        addr: u64,
        size: usize,
    ) -> Result<Raw, XenError> {
        let mut buf = [0u8; MAX_STRUCT];
        let dst = buf.get_mut(..size).ok_or(XenError::Inval)?;
        let at = span(mode, addr, 0, size as u64)?;
        mem.read(at, dst).map_err(|_| XenError::Fault)?;
        Ok(Raw { buf })
    }
    fn bytes<const N: usize>(&self, off: usize) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(s) = off.checked_add(N).and_then(|e| self.buf.get(off..e)) {
            out.copy_from_slice(s);
        }
        out
    }
    fn u16(&self, off: usize) -> u16 {
        u16::from_le_bytes(self.bytes(off))
    }
    fn u32(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.bytes(off))
    }
    fn u64(&self, off: usize) -> u64 {
        u64::from_le_bytes(self.bytes(off))
    }
    /// An `unsigned long` / pointer / `xen_pfn_t` of `mode`.
    fn word(&self, mode: Mode, off: usize) -> u64 {
        match mode {
            Mode::Long => self.u64(off),
            Mode::Compat => u64::from(self.u32(off)),
        }
    }
}

/// Decodes the hypercall at a VMCALL exit, reading its argument structs.
pub fn decode<M: GuestMem + ?Sized>(regs: &Regs, mem: &mut M) -> Result<Hypercall, XenError> {
    if regs.cpl != 0 {
        return Err(XenError::Perm);
    }
    let mode = regs.mode;
    let [a1, a2, a3, _, _] = regs.args();
    match regs.number() {
        hypercall::EVENT_CHANNEL_OP => Ok(Hypercall::Evtchn {
            op: decode_evtchn(a1 as u32, a2, mem, mode)?,
            arg: a2,
        }),
        hypercall::GRANT_TABLE_OP => Ok(Hypercall::Gnttab {
            op: decode_gnttab(a1, a2, a3, mem, mode)?,
            uop: a2,
        }),
        hypercall::MEMORY_OP => decode_memory(a1, a2, mem, mode),
        hypercall::HVM_OP => Ok(Hypercall::Hvm {
            op: decode_hvm(a1, a2, mem, mode)?,
            arg: a2,
        }),
        hypercall::XEN_VERSION => Ok(Hypercall::Version {
            op: decode_version(a1 as u32, a2, mem, mode)?,
            arg: a2,
        }),
        _ => Err(XenError::NoSys),
    }
}

fn decode_evtchn<M: GuestMem + ?Sized>(
    cmd: u32,
    arg: u64,
    mem: &mut M,
    mode: Mode,
) -> Result<EvtchnOp, XenError> {
    use evtchnop::*;
    let size = match cmd {
        ALLOC_UNBOUND => ALLOC_UNBOUND_SIZE,
        BIND_INTERDOMAIN => BIND_INTERDOMAIN_SIZE,
        BIND_VIRQ => BIND_VIRQ_SIZE,
        CLOSE | SEND | UNMASK => PORT_ONLY_SIZE,
        STATUS => STATUS_SIZE,
        BIND_VCPU => BIND_VCPU_SIZE,
        _ => return Err(XenError::NoSys),
    };
    let r = Raw::read(mem, mode, arg, size)?;
    Ok(match cmd {
        ALLOC_UNBOUND => EvtchnOp::AllocUnbound {
            dom: r.u16(0),
            remote_dom: r.u16(2),
        },
        BIND_INTERDOMAIN => EvtchnOp::BindInterdomain {
            remote_dom: r.u16(0),
            remote_port: r.u32(4),
        },
        BIND_VIRQ => EvtchnOp::BindVirq {
            virq: r.u32(0),
            vcpu: r.u32(4),
        },
        CLOSE => EvtchnOp::Close { port: r.u32(0) },
        SEND => EvtchnOp::Send { port: r.u32(0) },
        UNMASK => EvtchnOp::Unmask { port: r.u32(0) },
        STATUS => EvtchnOp::Status {
            dom: r.u16(0),
            port: r.u32(4),
        },
        _ => EvtchnOp::BindVcpu {
            port: r.u32(0),
            vcpu: r.u32(4),
        },
    })
}

fn decode_gnttab<M: GuestMem + ?Sized>(
    cmd: u64,
    uop: u64,
    count: u64,
    mem: &mut M,
    mode: Mode,
) -> Result<GnttabOp, XenError> {
    use gnttabop::*;
    // Both are `unsigned int` parameters.
    let cmd = cmd as u32;
    let count = count as u32;
    if cmd & !CMD_MASK != 0 {
        return Err(XenError::Inval);
    }
    let single = |size: usize, mem: &mut M| -> Result<Raw, XenError> {
        if count != 1 {
            return Err(XenError::Inval);
        }
        Raw::read(mem, mode, uop, size)
    };
    match cmd {
        SETUP_TABLE => {
            let (size, list_off) = match mode {
                Mode::Long => (SETUP_SIZE_64, 16),
                Mode::Compat => (SETUP_SIZE_32, 12),
            };
            let r = single(size, mem)?;
            Ok(GnttabOp::SetupTable {
                dom: r.u16(0),
                nr_frames: r.u32(4),
                frame_list: r.word(mode, list_off),
            })
        }
        QUERY_SIZE => {
            let r = single(QUERY_SIZE_SIZE, mem)?;
            Ok(GnttabOp::QuerySize { dom: r.u16(0) })
        }
        SET_VERSION => {
            let r = single(SET_VERSION_SIZE, mem)?;
            Ok(GnttabOp::SetVersion { version: r.u32(0) })
        }
        GET_VERSION => {
            let r = single(GET_VERSION_SIZE, mem)?;
            Ok(GnttabOp::GetVersion { dom: r.u16(0) })
        }
        MAP_GRANT_REF => {
            let ops = batch(mem, mode, uop, count, MAP_SIZE, |r| MapGrantRef {
                host_addr: r.u64(0),
                flags: r.u32(8),
                gref: r.u32(12),
                dom: r.u16(16),
            })?;
            Ok(GnttabOp::Map(ops))
        }
        UNMAP_GRANT_REF => {
            let ops = batch(mem, mode, uop, count, UNMAP_SIZE, |r| UnmapGrantRef {
                host_addr: r.u64(0),
                dev_bus_addr: r.u64(8),
                handle: r.u32(16),
            })?;
            Ok(GnttabOp::Unmap(ops))
        }
        COPY => {
            let (size, dest, len, _) = match mode {
                Mode::Long => COPY_LAYOUT_64,
                Mode::Compat => COPY_LAYOUT_32,
            };
            let w = mode.word();
            let ops = batch(mem, mode, uop, count, size, |r| {
                let flags = r.u16(len.wrapping_add(2));
                let side = |base: usize, is_gref: bool| {
                    let dom = r.u16(base.wrapping_add(w));
                    let offset = r.u16(base.wrapping_add(w).wrapping_add(2));
                    if is_gref {
                        CopyPtr::Gref {
                            dom,
                            gref: r.u32(base),
                            offset,
                        }
                    } else {
                        CopyPtr::Gmfn {
                            dom,
                            gfn: r.word(mode, base),
                            offset,
                        }
                    }
                };
                GrantCopy {
                    source: side(0, flags & GNTCOPY_SOURCE_GREF != 0),
                    dest: side(dest, flags & GNTCOPY_DEST_GREF != 0),
                    len: r.u16(len),
                }
            })?;
            Ok(GnttabOp::Copy(ops))
        }
        _ => Err(XenError::NoSys),
    }
}

fn batch<M: GuestMem + ?Sized, T>(
    mem: &mut M,
    mode: Mode,
    uop: u64,
    count: u32,
    size: usize,
    f: impl Fn(&Raw) -> T,
) -> Result<Vec<T>, XenError> {
    if count > MAX_BATCH {
        return Err(XenError::Inval);
    }
    let mut out = Vec::new();
    out.try_reserve_exact(count as usize)
        .map_err(|_| XenError::NoMem)?;
    for i in 0..count {
        let at = elem(mode, uop, u64::from(i), size)?;
        out.push(f(&Raw::read(mem, mode, at, size)?));
    }
    Ok(out)
}

fn decode_memory<M: GuestMem + ?Sized>(
    cmd: u64,
    arg: u64,
    mem: &mut M,
    mode: Mode,
) -> Result<Hypercall, XenError> {
    if cmd & xenmem::CMD_MASK != u64::from(xenmem::ADD_TO_PHYSMAP) {
        return Err(XenError::NoSys);
    }
    if cmd & !xenmem::CMD_MASK != 0 {
        return Err(XenError::Inval);
    }
    let (size, gpfn_off) = match mode {
        Mode::Long => (xenmem::ADD_TO_PHYSMAP_SIZE_64, 16),
        Mode::Compat => (xenmem::ADD_TO_PHYSMAP_SIZE_32, 12),
    };
    let r = Raw::read(mem, mode, arg, size)?;
    Ok(Hypercall::AddToPhysmap(AddToPhysmap {
        domid: r.u16(0),
        space: r.u32(4),
        idx: r.word(mode, 8),
        gpfn: r.word(mode, gpfn_off),
    }))
}

fn decode_hvm<M: GuestMem + ?Sized>(
    op: u64,
    arg: u64,
    mem: &mut M,
    mode: Mode,
) -> Result<HvmOp, XenError> {
    match op {
        hvmop::SET_PARAM | hvmop::GET_PARAM => {
            let r = Raw::read(mem, mode, arg, hvmop::PARAM_SIZE)?;
            let (domid, index) = (r.u16(0), r.u32(4));
            Ok(if op == hvmop::SET_PARAM {
                HvmOp::SetParam {
                    domid,
                    index,
                    value: r.u64(8),
                }
            } else {
                HvmOp::GetParam { domid, index }
            })
        }
        hvmop::SET_EVTCHN_UPCALL_VECTOR => {
            let r = Raw::read(mem, mode, arg, hvmop::UPCALL_VECTOR_SIZE)?;
            Ok(HvmOp::SetEvtchnUpcallVector {
                vcpu: r.u32(0),
                vector: r.bytes::<1>(4)[0],
            })
        }
        _ => Err(XenError::NoSys),
    }
}

fn decode_version<M: GuestMem + ?Sized>(
    cmd: u32,
    arg: u64,
    mem: &mut M,
    mode: Mode,
) -> Result<VersionOp, XenError> {
    match cmd {
        xenver::VERSION => Ok(VersionOp::Version),
        xenver::GET_FEATURES => {
            let r = Raw::read(mem, mode, arg, xenver::FEATURE_INFO_SIZE)?;
            Ok(VersionOp::GetFeatures {
                submap_idx: r.u32(0),
            })
        }
        _ => Err(XenError::NoSys),
    }
}
