//! Hypercall argument encoding: each operation builds its argument struct
//! as bytes at the offsets of Xen's public headers (64-bit ABI; the numbers,
//! sizes and offsets are those of [`xen_abi::abi`]), makes the call through
//! a [`Hypercall`] implementation and decodes the results.
//!
//! Argument pointers are linear addresses of the caller's stack buffers;
//! under the runtime's identity mapping they are also guest-physical.

use super::abi::{
    evtchnop, gnttabop, hvmop, hypercall, xenmem, xenver, DomId, GrantHandle, GrantRef, Port,
    DOMID_SELF,
};
use super::error::{Errno, GntStatus};

/// Something that makes hypercalls: the hypercall page on the guest, a
/// simulated hypervisor in host tests.
pub trait Hypercall {
    /// Calls hypercall `nr` with arguments 1–5 (RDI, RSI, RDX, R10, R8) and
    /// returns RAX. Pointers in the arguments are linear addresses of live
    /// buffers that the call may read and write.
    fn hypercall(&self, nr: u64, args: [u64; 5]) -> i64;
}

fn put(buf: &mut [u8], off: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(off..off + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

fn get<const N: usize>(buf: &[u8], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = buf.get(off..off + N) {
        out.copy_from_slice(src);
    }
    out
}

fn get_u16(buf: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(get(buf, off))
}

fn get_u32(buf: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(get(buf, off))
}

fn get_u64(buf: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(get(buf, off))
}

fn call(h: &impl Hypercall, nr: u64, a1: u64, arg: &mut [u8], a3: u64) -> Result<u64, Errno> {
    Errno::check(h.hypercall(nr, [a1, arg.as_mut_ptr() as u64, a3, 0, 0]))
}

fn evtchn(h: &impl Hypercall, cmd: u32, arg: &mut [u8]) -> Result<(), Errno> {
    call(h, hypercall::EVENT_CHANNEL_OP, cmd.into(), arg, 0).map(drop)
}

/// `EVTCHNOP_alloc_unbound`: a new port of this domain that `remote` may bind.
pub fn alloc_unbound(h: &impl Hypercall, remote: DomId) -> Result<Port, Errno> {
    let mut a = [0u8; evtchnop::ALLOC_UNBOUND_SIZE];
    put(&mut a, 0, &DOMID_SELF.to_le_bytes());
    put(&mut a, 2, &remote.to_le_bytes());
    evtchn(h, evtchnop::ALLOC_UNBOUND, &mut a)?;
    Ok(get_u32(&a, 4))
}

/// `EVTCHNOP_bind_interdomain`: a new local port connected to `remote`'s
/// unbound `remote_port`.
pub fn bind_interdomain(
    h: &impl Hypercall,
    remote: DomId,
    remote_port: Port,
) -> Result<Port, Errno> {
    let mut a = [0u8; evtchnop::BIND_INTERDOMAIN_SIZE];
    put(&mut a, 0, &remote.to_le_bytes());
    put(&mut a, 4, &remote_port.to_le_bytes());
    evtchn(h, evtchnop::BIND_INTERDOMAIN, &mut a)?;
    Ok(get_u32(&a, 8))
}

/// `EVTCHNOP_bind_virq`: a new port for virtual IRQ `virq` on `vcpu`.
pub fn bind_virq(h: &impl Hypercall, virq: u32, vcpu: u32) -> Result<Port, Errno> {
    let mut a = [0u8; evtchnop::BIND_VIRQ_SIZE];
    put(&mut a, 0, &virq.to_le_bytes());
    put(&mut a, 4, &vcpu.to_le_bytes());
    evtchn(h, evtchnop::BIND_VIRQ, &mut a)?;
    Ok(get_u32(&a, 8))
}

fn port_op(h: &impl Hypercall, cmd: u32, port: Port) -> Result<(), Errno> {
    let mut a: [u8; evtchnop::PORT_ONLY_SIZE] = port.to_le_bytes();
    evtchn(h, cmd, &mut a)
}

/// `EVTCHNOP_send`.
pub fn send(h: &impl Hypercall, port: Port) -> Result<(), Errno> {
    port_op(h, evtchnop::SEND, port)
}

/// `EVTCHNOP_close`.
pub fn close(h: &impl Hypercall, port: Port) -> Result<(), Errno> {
    port_op(h, evtchnop::CLOSE, port)
}

/// `EVTCHNOP_unmask`.
pub fn unmask(h: &impl Hypercall, port: Port) -> Result<(), Errno> {
    port_op(h, evtchnop::UNMASK, port)
}

/// What `EVTCHNOP_status` says about a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelStatus {
    /// Not in use.
    Closed,
    /// Waiting for `remote` to bind.
    Unbound {
        /// The domain allowed to bind.
        remote: DomId,
    },
    /// Connected to `remote`'s `remote_port`.
    Interdomain {
        /// The peer domain.
        remote: DomId,
        /// The peer's port.
        remote_port: Port,
    },
    /// Bound to a virtual IRQ.
    Virq(u32),
    /// Another state (`EVTCHNSTAT_pirq`, `_ipi`, or unknown), by number.
    Other(u32),
}

/// `EVTCHNOP_status` of this domain's `port`; also the vCPU it notifies.
pub fn status(h: &impl Hypercall, port: Port) -> Result<(ChannelStatus, u32), Errno> {
    let mut a = [0u8; evtchnop::STATUS_SIZE];
    put(&mut a, 0, &DOMID_SELF.to_le_bytes());
    put(&mut a, 4, &port.to_le_bytes());
    evtchn(h, evtchnop::STATUS, &mut a)?;
    let s = match get_u32(&a, 8) {
        evtchnop::STAT_CLOSED => ChannelStatus::Closed,
        evtchnop::STAT_UNBOUND => ChannelStatus::Unbound {
            remote: get_u16(&a, 16),
        },
        evtchnop::STAT_INTERDOMAIN => ChannelStatus::Interdomain {
            remote: get_u16(&a, 16),
            remote_port: get_u32(&a, 20),
        },
        evtchnop::STAT_VIRQ => ChannelStatus::Virq(get_u32(&a, 16)),
        other => ChannelStatus::Other(other),
    };
    Ok((s, get_u32(&a, 12)))
}

/// Why a grant-table operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GntOpError {
    /// The hypercall failed as a whole.
    Errno(Errno),
    /// The operation ran and reported this status.
    Status(GntStatus),
}

fn gnttab(
    h: &impl Hypercall,
    cmd: u32,
    arg: &mut [u8],
    status_off: usize,
) -> Result<(), GntOpError> {
    call(h, hypercall::GRANT_TABLE_OP, cmd.into(), arg, 1).map_err(GntOpError::Errno)?;
    let st = get_u16(arg, status_off) as i16;
    if st != 0 {
        return Err(GntOpError::Status(GntStatus(st)));
    }
    Ok(())
}

/// `GNTTABOP_query_size` for this domain: (frames now, most frames).
pub fn query_size(h: &impl Hypercall) -> Result<(u32, u32), GntOpError> {
    let mut a = [0u8; gnttabop::QUERY_SIZE_SIZE];
    put(&mut a, 0, &DOMID_SELF.to_le_bytes());
    gnttab(h, gnttabop::QUERY_SIZE, &mut a, 12)?;
    Ok((get_u32(&a, 4), get_u32(&a, 8)))
}

/// `GNTTABOP_map_grant_ref` with `GNTMAP_host_map`: maps `dom`'s grant
/// `gref` at guest-physical `host_addr`; returns the handle.
pub fn map_grant_ref(
    h: &impl Hypercall,
    host_addr: u64,
    dom: DomId,
    gref: GrantRef,
    readonly: bool,
) -> Result<GrantHandle, GntOpError> {
    let mut flags = gnttabop::GNTMAP_HOST_MAP;
    if readonly {
        flags |= gnttabop::GNTMAP_READONLY;
    }
    let mut a = [0u8; gnttabop::MAP_SIZE];
    put(&mut a, 0, &host_addr.to_le_bytes());
    put(&mut a, 8, &flags.to_le_bytes());
    put(&mut a, 12, &gref.to_le_bytes());
    put(&mut a, 16, &dom.to_le_bytes());
    gnttab(h, gnttabop::MAP_GRANT_REF, &mut a, 18)?;
    Ok(get_u32(&a, 20))
}

/// `GNTTABOP_unmap_grant_ref` of the mapping `handle` at `host_addr`.
pub fn unmap_grant_ref(
    h: &impl Hypercall,
    host_addr: u64,
    handle: GrantHandle,
) -> Result<(), GntOpError> {
    let mut a = [0u8; gnttabop::UNMAP_SIZE];
    put(&mut a, 0, &host_addr.to_le_bytes());
    put(&mut a, 16, &handle.to_le_bytes());
    gnttab(h, gnttabop::UNMAP_GRANT_REF, &mut a, 20)
}

/// `XENMEM_add_to_physmap` for this domain: puts page `idx` of `space`
/// at guest frame `gpfn`.
pub fn add_to_physmap(h: &impl Hypercall, space: u32, idx: u64, gpfn: u64) -> Result<(), Errno> {
    let mut a = [0u8; xenmem::ADD_TO_PHYSMAP_SIZE_64];
    put(&mut a, 0, &DOMID_SELF.to_le_bytes());
    put(&mut a, 4, &space.to_le_bytes());
    put(&mut a, 8, &idx.to_le_bytes());
    put(&mut a, 16, &gpfn.to_le_bytes());
    let cmd = xenmem::ADD_TO_PHYSMAP.into();
    call(h, hypercall::MEMORY_OP, cmd, &mut a, 0).map(drop)
}

/// `HVMOP_get_param` of this domain.
pub fn get_param(h: &impl Hypercall, index: u32) -> Result<u64, Errno> {
    let mut a = [0u8; hvmop::PARAM_SIZE];
    put(&mut a, 0, &DOMID_SELF.to_le_bytes());
    put(&mut a, 4, &index.to_le_bytes());
    call(h, hypercall::HVM_OP, hvmop::GET_PARAM, &mut a, 0)?;
    Ok(get_u64(&a, 8))
}

/// `HVMOP_set_param` of this domain.
pub fn set_param(h: &impl Hypercall, index: u32, value: u64) -> Result<(), Errno> {
    let mut a = [0u8; hvmop::PARAM_SIZE];
    put(&mut a, 0, &DOMID_SELF.to_le_bytes());
    put(&mut a, 4, &index.to_le_bytes());
    put(&mut a, 8, &value.to_le_bytes());
    call(h, hypercall::HVM_OP, hvmop::SET_PARAM, &mut a, 0).map(drop)
}

/// `XENVER_version`: (major, minor).
pub fn version(h: &impl Hypercall) -> Result<(u16, u16), Errno> {
    let cmd = xenver::VERSION.into();
    let v = Errno::check(h.hypercall(hypercall::XEN_VERSION, [cmd, 0, 0, 0, 0]))?;
    Ok(((v >> 16) as u16, v as u16))
}

/// The `HVM_PARAM_CALLBACK_IRQ` value that has upcalls injected as IDT
/// vector `vector` (`HVM_PARAM_CALLBACK_TYPE_VECTOR`).
pub const fn callback_vector(vector: u8) -> u64 {
    (hvmop::CALLBACK_TYPE_VECTOR << hvmop::CALLBACK_TYPE_SHIFT) | vector as u64
}
