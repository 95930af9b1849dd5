//! Numbers and layouts of Xen's public headers that the guest side uses
//! (`xen.h`, `event_channel.h`, `grant_table.h`, `memory.h`,
//! `hvm/hvm_op.h`, `hvm/params.h`, `io/xs_wire.h`), 64-bit ABI only.
//!
//! They restate `vmm/xen-abi/src/abi.rs` (the VMM's side of the contract);
//! the host tests check the two agree.

/// A domain id (`domid_t`).
pub type DomId = u16;
/// An event-channel port (`evtchn_port_t`).
pub type Port = u32;
/// A grant reference (`grant_ref_t`).
pub type GrantRef = u32;
/// A grant mapping handle (`grant_handle_t`).
pub type GrantHandle = u32;

/// "The calling domain" wherever a domain id is accepted.
pub const DOMID_SELF: DomId = 0x7ff0;
/// Bytes in a page.
pub const PAGE_SIZE: usize = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

/// Hypercall numbers (the stub at `32 * N` in the hypercall page).
pub mod hypercall {
    /// `memory_op(cmd, arg)`.
    pub const MEMORY_OP: u64 = 12;
    /// `xen_version(cmd, arg)`.
    pub const XEN_VERSION: u64 = 17;
    /// `grant_table_op(cmd, uop, count)`.
    pub const GRANT_TABLE_OP: u64 = 20;
    /// `event_channel_op(cmd, arg)`.
    pub const EVENT_CHANNEL_OP: u64 = 32;
    /// `hvm_op(op, arg)`.
    pub const HVM_OP: u64 = 34;
    /// Stubs in the page (4096 / 32).
    pub const STUBS: u64 = 128;
}

/// `EVTCHNOP_*` commands and argument sizes.
pub mod evtchnop {
    /// `evtchn_bind_interdomain`: remote_dom u16 @0, remote_port u32 @4, OUT local_port u32 @8.
    pub const BIND_INTERDOMAIN: u64 = 0;
    /// `evtchn_bind_virq`: virq u32 @0, vcpu u32 @4, OUT port u32 @8.
    pub const BIND_VIRQ: u64 = 1;
    /// `evtchn_close`: port u32 @0.
    pub const CLOSE: u64 = 3;
    /// `evtchn_send`: port u32 @0.
    pub const SEND: u64 = 4;
    /// `evtchn_status`: dom u16 @0, port u32 @4, OUT status u32 @8, vcpu u32 @12, union @16.
    pub const STATUS: u64 = 5;
    /// `evtchn_alloc_unbound`: dom u16 @0, remote_dom u16 @2, OUT port u32 @4.
    pub const ALLOC_UNBOUND: u64 = 6;
    /// `evtchn_unmask`: port u32 @0.
    pub const UNMASK: u64 = 9;

    /// `EVTCHNSTAT_closed`.
    pub const STAT_CLOSED: u32 = 0;
    /// `EVTCHNSTAT_unbound`.
    pub const STAT_UNBOUND: u32 = 1;
    /// `EVTCHNSTAT_interdomain`.
    pub const STAT_INTERDOMAIN: u32 = 2;
    /// `EVTCHNSTAT_pirq`.
    pub const STAT_PIRQ: u32 = 3;
    /// `EVTCHNSTAT_virq`.
    pub const STAT_VIRQ: u32 = 4;
    /// `EVTCHNSTAT_ipi`.
    pub const STAT_IPI: u32 = 5;
}

/// `GNTTABOP_*` commands, entry flags, map flags.
pub mod gnttabop {
    /// `gnttab_map_grant_ref` (32 bytes): host_addr u64 @0, flags u32 @8,
    /// ref u32 @12, dom u16 @16, OUT status i16 @18, handle u32 @20, dev_bus_addr u64 @24.
    pub const MAP_GRANT_REF: u64 = 0;
    /// `gnttab_unmap_grant_ref` (24 bytes): host_addr u64 @0, dev_bus_addr u64 @8,
    /// handle u32 @16, OUT status i16 @20.
    pub const UNMAP_GRANT_REF: u64 = 1;
    /// `gnttab_query_size` (16 bytes): dom u16 @0, OUT nr_frames u32 @4,
    /// max_nr_frames u32 @8, status i16 @12.
    pub const QUERY_SIZE: u64 = 6;

    /// `GTF_permit_access`.
    pub const GTF_PERMIT_ACCESS: u16 = 1;
    /// `GTF_readonly`.
    pub const GTF_READONLY: u16 = 1 << 2;
    /// `GTF_reading`: set by the hypervisor while the peer has it mapped or copies from it.
    pub const GTF_READING: u16 = 1 << 3;
    /// `GTF_writing`: set by the hypervisor while the peer has it mapped writable.
    pub const GTF_WRITING: u16 = 1 << 4;

    /// `GNTMAP_host_map`.
    pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
    /// `GNTMAP_readonly`.
    pub const GNTMAP_READONLY: u32 = 1 << 2;

    /// Bytes in a `grant_entry_v1` {flags u16, domid u16, frame u32}.
    pub const ENTRY_SIZE: usize = 8;
    /// Entries per grant-table frame.
    pub const ENTRIES_PER_FRAME: u32 = 512;
    /// `GNTTAB_NR_RESERVED_ENTRIES`: references below this are the toolstack's.
    pub const NR_RESERVED_ENTRIES: u32 = 8;
    /// `GNTTAB_RESERVED_XENSTORE`.
    pub const RESERVED_XENSTORE: u32 = 1;
}

/// `XENMEM_*` commands.
pub mod xenmem {
    /// `XENMEM_add_to_physmap` (24 bytes): domid u16 @0, size u16 @2,
    /// space u32 @4, idx u64 @8, gpfn u64 @16.
    pub const ADD_TO_PHYSMAP: u64 = 7;
    /// `XENMAPSPACE_shared_info`.
    pub const SPACE_SHARED_INFO: u32 = 0;
    /// `XENMAPSPACE_grant_table`.
    pub const SPACE_GRANT_TABLE: u32 = 1;
}

/// `HVMOP_*` commands and `HVM_PARAM_*` indices.
pub mod hvmop {
    /// `HVMOP_set_param`: `xen_hvm_param` {domid u16 @0, index u32 @4, value u64 @8}.
    pub const SET_PARAM: u64 = 0;
    /// `HVMOP_get_param`.
    pub const GET_PARAM: u64 = 1;
    /// `HVM_PARAM_CALLBACK_IRQ`.
    pub const PARAM_CALLBACK_IRQ: u32 = 0;
    /// `HVM_PARAM_STORE_PFN`.
    pub const PARAM_STORE_PFN: u32 = 1;
    /// `HVM_PARAM_STORE_EVTCHN`.
    pub const PARAM_STORE_EVTCHN: u32 = 2;
    /// `HVM_PARAM_CONSOLE_PFN`.
    pub const PARAM_CONSOLE_PFN: u32 = 17;
    /// `HVM_PARAM_CONSOLE_EVTCHN`.
    pub const PARAM_CONSOLE_EVTCHN: u32 = 18;
    /// `HVM_PARAM_CALLBACK_TYPE_VECTOR` in bits 63:56 of the callback value.
    pub const CALLBACK_TYPE_VECTOR: u64 = 2 << 56;
}

/// `XENVER_*` commands.
pub mod xenver {
    /// `XENVER_version`: returns `major << 16 | minor`.
    pub const VERSION: u64 = 0;
}

/// Layout of `shared_info` (64-bit guest, vCPU 0).
pub mod shared_info {
    /// `vcpu_info[0].evtchn_upcall_pending` (u8).
    pub const UPCALL_PENDING: usize = 0;
    /// `vcpu_info[0].evtchn_upcall_mask` (u8).
    pub const UPCALL_MASK: usize = 1;
    /// `vcpu_info[0].evtchn_pending_sel` (u64).
    pub const PENDING_SEL: usize = 8;
    /// `evtchn_pending[64]` (u64 each).
    pub const EVTCHN_PENDING: usize = 2048;
    /// `evtchn_mask[64]` (u64 each).
    pub const EVTCHN_MASK: usize = 2560;
    /// Ports of the 2-level ABI (64 words × 64 bits).
    pub const MAX_PORTS: u32 = 4096;
}

/// `struct xenstore_domain_interface` (`io/xs_wire.h`).
pub mod xenstore {
    /// `XENSTORE_RING_SIZE`: bytes in each ring.
    pub const RING_SIZE: u32 = 1024;
    /// `req[]`: requests, guest → store.
    pub const REQ: usize = 0;
    /// `rsp[]`: replies and watch events, store → guest.
    pub const RSP: usize = 1024;
    /// `req_cons` (u32).
    pub const REQ_CONS: usize = 2048;
    /// `req_prod` (u32).
    pub const REQ_PROD: usize = 2052;
    /// `rsp_cons` (u32).
    pub const RSP_CONS: usize = 2056;
    /// `rsp_prod` (u32).
    pub const RSP_PROD: usize = 2060;
    /// `server_features` (u32).
    pub const SERVER_FEATURES: usize = 2064;
    /// `connection` (u32).
    pub const CONNECTION: usize = 2068;
    /// `error` (u32).
    pub const ERROR: usize = 2072;
}
