//! Numbers and layouts of Xen's public interface that this crate implements.
//!
//! Values are those of Xen's public headers (`xen.h`, `event_channel.h`,
//! `grant_table.h`, `memory.h`, `hvm/hvm_op.h`, `hvm/params.h`, `errno.h`,
//! `arch-x86/cpuid.h`), restated here; only what cloister implements is
//! listed. Struct offsets are given for both x86 guest ABIs: 64-bit
//! (`unsigned long` and pointers 8 bytes, `uint64_t` 8-aligned) and 32-bit
//! (both 4 bytes, `uint64_t` 4-aligned), as Xen's compat layer reads them.

/// A domain id (`domid_t`).
pub type DomId = u16;
/// An event-channel port (`evtchn_port_t`).
pub type Port = u32;
/// A grant reference (`grant_ref_t`): an index into the granter's table.
pub type GrantRef = u32;
/// A grant mapping handle (`grant_handle_t`).
pub type GrantHandle = u32;

/// Bytes in a page and in every frame this crate names.
pub const PAGE_SIZE: usize = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

/// Domain ids at or above this are reserved names, not domains.
pub const DOMID_FIRST_RESERVED: DomId = 0x7FF0;
/// "The calling domain" wherever a domain id is accepted.
pub const DOMID_SELF: DomId = 0x7FF0;

/// Hypercall numbers (RAX/EAX at the VMCALL).
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
    /// `iret`: PV only; its hypercall-page stub is `ud2`.
    pub const IRET: u64 = 23;
    /// Bytes of one stub in the hypercall page: hypercall `N` is a call to
    /// `page + STUB_SIZE * N`.
    pub const STUB_SIZE: usize = 32;
    /// Stubs in the hypercall page (`PAGE_SIZE / STUB_SIZE`): hypercall
    /// numbers at or above this have none.
    pub const STUBS: u64 = (super::PAGE_SIZE / STUB_SIZE) as u64;
}

/// `EVTCHNOP_*` commands and their argument layouts (identical in both ABIs).
pub mod evtchnop {
    /// `evtchn_bind_interdomain`: remote_dom u16 @0, remote_port u32 @4, OUT local_port u32 @8.
    pub const BIND_INTERDOMAIN: u32 = 0;
    /// `evtchn_bind_virq`: virq u32 @0, vcpu u32 @4, OUT port u32 @8.
    pub const BIND_VIRQ: u32 = 1;
    /// `evtchn_close`: port u32 @0.
    pub const CLOSE: u32 = 3;
    /// `evtchn_send`: port u32 @0.
    pub const SEND: u32 = 4;
    /// `evtchn_status`: dom u16 @0, port u32 @4, OUT status u32 @8, vcpu u32 @12, union @16.
    pub const STATUS: u32 = 5;
    /// `evtchn_alloc_unbound`: dom u16 @0, remote_dom u16 @2, OUT port u32 @4.
    pub const ALLOC_UNBOUND: u32 = 6;
    /// `evtchn_bind_vcpu`: port u32 @0, vcpu u32 @4.
    pub const BIND_VCPU: u32 = 8;
    /// `evtchn_unmask`: port u32 @0.
    pub const UNMASK: u32 = 9;

    /// Size of `evtchn_alloc_unbound`.
    pub const ALLOC_UNBOUND_SIZE: usize = 8;
    /// Size of `evtchn_bind_interdomain`.
    pub const BIND_INTERDOMAIN_SIZE: usize = 12;
    /// Size of `evtchn_bind_virq`.
    pub const BIND_VIRQ_SIZE: usize = 12;
    /// Size of `evtchn_close`, `evtchn_send`, `evtchn_unmask`.
    pub const PORT_ONLY_SIZE: usize = 4;
    /// Size of `evtchn_status`.
    pub const STATUS_SIZE: usize = 24;
    /// Size of `evtchn_bind_vcpu`.
    pub const BIND_VCPU_SIZE: usize = 8;

    /// `EVTCHNSTAT_closed`: not in use.
    pub const STAT_CLOSED: u32 = 0;
    /// `EVTCHNSTAT_unbound`: waiting for an interdomain connection.
    pub const STAT_UNBOUND: u32 = 1;
    /// `EVTCHNSTAT_interdomain`: connected to a remote port.
    pub const STAT_INTERDOMAIN: u32 = 2;
    /// `EVTCHNSTAT_virq`: bound to a virtual IRQ.
    pub const STAT_VIRQ: u32 = 4;
}

/// Virtual IRQs (`VIRQ_*`).
pub mod virq {
    /// Number of VIRQs (`NR_VIRQS`).
    pub const NR_VIRQS: u32 = 24;
    /// `VIRQ_TIMER` (per-vCPU).
    pub const TIMER: u32 = 0;
    /// `VIRQ_DEBUG` (per-vCPU).
    pub const DEBUG: u32 = 1;
    /// `VIRQ_CONSOLE` (global).
    pub const CONSOLE: u32 = 2;
    /// `VIRQ_DOM_EXC` (global): a domain died (raised to the store's domain).
    pub const DOM_EXC: u32 = 3;
    /// `VIRQ_XENOPROF` (per-vCPU).
    pub const XENOPROF: u32 = 7;
    /// `VIRQ_XENPMU` (per-vCPU).
    pub const XENPMU: u32 = 13;

    /// Whether `virq` is global (bound on vCPU 0, re-bindable) rather than per-vCPU.
    pub const fn is_global(virq: u32) -> bool {
        !matches!(virq, TIMER | DEBUG | XENOPROF | XENPMU)
    }
}

/// `GNTTABOP_*` commands, grant-entry flags, map flags and status codes.
pub mod gnttabop {
    /// `gnttab_map_grant_ref`: host_addr u64 @0, flags u32 @8, ref u32 @12,
    /// dom u16 @16, OUT status i16 @18, handle u32 @20, dev_bus_addr u64 @24.
    pub const MAP_GRANT_REF: u32 = 0;
    /// `gnttab_unmap_grant_ref`: host_addr u64 @0, dev_bus_addr u64 @8,
    /// handle u32 @16, OUT status i16 @20.
    pub const UNMAP_GRANT_REF: u32 = 1;
    /// `gnttab_setup_table`: dom u16 @0, nr_frames u32 @4, OUT status i16 @8,
    /// frame_list handle @16 (64-bit) / @12 (32-bit).
    pub const SETUP_TABLE: u32 = 2;
    /// `gnttab_copy`: source {u @0, domid u16, offset u16}, dest {…}, len u16,
    /// flags u16, OUT status i16 (see [`COPY_LAYOUT_64`], [`COPY_LAYOUT_32`]).
    pub const COPY: u32 = 5;
    /// `gnttab_query_size`: dom u16 @0, OUT nr_frames u32 @4,
    /// max_nr_frames u32 @8, status i16 @12.
    pub const QUERY_SIZE: u32 = 6;
    /// `gnttab_set_version`: version u32 @0 (IN/OUT).
    pub const SET_VERSION: u32 = 8;
    /// `gnttab_get_version`: dom u16 @0, pad u16, OUT version u32 @4.
    pub const GET_VERSION: u32 = 10;

    /// `GNTTAB_RESERVED_XENSTORE`: the entry the toolstack seeds with the
    /// domain's store ring, granted to the store's domain.
    pub const RESERVED_XENSTORE: u32 = 1;
    /// `GNTTAB_NR_RESERVED_ENTRIES`: references below this are the
    /// toolstack's; a guest hands out only those at or above it.
    pub const NR_RESERVED_ENTRIES: u32 = 8;

    /// Bits of the command word above this mask are continuation state; a
    /// guest must pass zero there.
    pub const CMD_MASK: u32 = (1 << 12) - 1;

    /// Size of `gnttab_map_grant_ref` (both ABIs).
    pub const MAP_SIZE: usize = 32;
    /// Size of `gnttab_unmap_grant_ref` (both ABIs).
    pub const UNMAP_SIZE: usize = 24;
    /// Size of `gnttab_setup_table`, 64-bit ABI.
    pub const SETUP_SIZE_64: usize = 24;
    /// Size of `gnttab_setup_table`, 32-bit ABI.
    pub const SETUP_SIZE_32: usize = 16;
    /// Size of `gnttab_query_size` (both ABIs).
    pub const QUERY_SIZE_SIZE: usize = 16;
    /// Size of `gnttab_set_version`.
    pub const SET_VERSION_SIZE: usize = 4;
    /// Size of `gnttab_get_version`.
    pub const GET_VERSION_SIZE: usize = 8;

    /// Offsets in `gnttab_copy`: (size, dest offset, len offset, status offset);
    /// within each of source/dest: u @0, domid @+8, offset @+10.
    pub const COPY_LAYOUT_64: (usize, usize, usize, usize) = (40, 16, 32, 36);
    /// As [`COPY_LAYOUT_64`] for the 32-bit ABI; domid @+4, offset @+6.
    pub const COPY_LAYOUT_32: (usize, usize, usize, usize) = (24, 8, 16, 20);

    /// `GTF_permit_access`: the entry lets `domid` map/access `frame`.
    pub const GTF_PERMIT_ACCESS: u16 = 1;
    /// `GTF_type_mask`: the entry's type bits.
    pub const GTF_TYPE_MASK: u16 = 3;
    /// `GTF_readonly`: only read-only mappings and accesses.
    pub const GTF_READONLY: u16 = 1 << 2;
    /// Bit number of `GTF_reading` (set by the hypervisor while in use).
    pub const GTF_READING_BIT: u8 = 3;
    /// `GTF_reading`.
    pub const GTF_READING: u16 = 1 << GTF_READING_BIT;
    /// Bit number of `GTF_writing` (set by the hypervisor while writably in use).
    pub const GTF_WRITING_BIT: u8 = 4;
    /// `GTF_writing`.
    pub const GTF_WRITING: u16 = 1 << GTF_WRITING_BIT;
    /// `GTF_sub_page`: copy-only grant of part of a page; never mappable.
    pub const GTF_SUB_PAGE: u16 = 1 << 8;

    /// Bytes in a `grant_entry_v1` {flags u16, domid u16, frame u32}.
    pub const ENTRY_V1_SIZE: usize = 8;
    /// `grant_entry_v1`s per 4 KiB grant-table frame.
    pub const ENTRIES_PER_FRAME: u32 = 512;

    /// `GNTMAP_device_map`.
    pub const GNTMAP_DEVICE_MAP: u32 = 1 << 0;
    /// `GNTMAP_host_map`.
    pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
    /// `GNTMAP_readonly`.
    pub const GNTMAP_READONLY: u32 = 1 << 2;
    /// `GNTMAP_contains_pte` (PV only).
    pub const GNTMAP_CONTAINS_PTE: u32 = 1 << 4;

    /// `GNTCOPY_source_gref`: the copy source is a grant reference.
    pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
    /// `GNTCOPY_dest_gref`: the copy destination is a grant reference.
    pub const GNTCOPY_DEST_GREF: u16 = 1 << 1;
}

/// `XENMEM_*` commands and the `xen_add_to_physmap` layout.
pub mod xenmem {
    /// `XENMEM_add_to_physmap`: domid u16 @0, size u16 @2, space u32 @4,
    /// idx @8 (8 bytes; 4 in 32-bit), gpfn @16 (8 bytes; @12, 4 in 32-bit).
    pub const ADD_TO_PHYSMAP: u32 = 7;
    /// Low bits of the memory_op command; the rest is continuation state.
    pub const CMD_MASK: u64 = 0x3F;
    /// Size of `xen_add_to_physmap`, 64-bit ABI.
    pub const ADD_TO_PHYSMAP_SIZE_64: usize = 24;
    /// Size of `xen_add_to_physmap`, 32-bit ABI.
    pub const ADD_TO_PHYSMAP_SIZE_32: usize = 16;
    /// `XENMAPSPACE_shared_info`.
    pub const SPACE_SHARED_INFO: u32 = 0;
    /// `XENMAPSPACE_grant_table`.
    pub const SPACE_GRANT_TABLE: u32 = 1;
    /// `XENMAPSPACE_gmfn`.
    pub const SPACE_GMFN: u32 = 2;
    /// `XENMAPSPACE_gmfn_range`.
    pub const SPACE_GMFN_RANGE: u32 = 3;
    /// `XENMAPSPACE_gmfn_foreign`.
    pub const SPACE_GMFN_FOREIGN: u32 = 4;
    /// `XENMAPSPACE_dev_mmio`.
    pub const SPACE_DEV_MMIO: u32 = 5;
    /// `XENMAPIDX_grant_table_status`: asks for a v2 status frame.
    pub const IDX_GRANT_TABLE_STATUS: u64 = 0x8000_0000;
}

/// `HVMOP_*` commands and `HVM_PARAM_*` indices.
pub mod hvmop {
    /// `HVMOP_set_param`: `xen_hvm_param` {domid u16 @0, index u32 @4, value u64 @8}.
    pub const SET_PARAM: u64 = 0;
    /// `HVMOP_get_param`: as [`SET_PARAM`], value is OUT.
    pub const GET_PARAM: u64 = 1;
    /// `HVMOP_set_evtchn_upcall_vector`: {vcpu u32 @0, vector u8 @4}.
    pub const SET_EVTCHN_UPCALL_VECTOR: u64 = 23;
    /// Size of `xen_hvm_param`.
    pub const PARAM_SIZE: usize = 16;
    /// Size of `xen_hvm_evtchn_upcall_vector`.
    pub const UPCALL_VECTOR_SIZE: usize = 8;

    /// `HVM_PARAM_CALLBACK_IRQ`: how event upcalls reach the guest.
    pub const PARAM_CALLBACK_IRQ: u32 = 0;
    /// `HVM_PARAM_STORE_PFN`: the store ring's frame.
    pub const PARAM_STORE_PFN: u32 = 1;
    /// `HVM_PARAM_STORE_EVTCHN`: the store ring's event channel.
    pub const PARAM_STORE_EVTCHN: u32 = 2;
    /// `HVM_PARAM_CONSOLE_PFN`.
    pub const PARAM_CONSOLE_PFN: u32 = 17;
    /// `HVM_PARAM_CONSOLE_EVTCHN`.
    pub const PARAM_CONSOLE_EVTCHN: u32 = 18;
    /// `HVM_NR_PARAMS`: indices at or above are invalid.
    pub const NR_PARAMS: u32 = 39;

    /// Callback-via type field: bits 63:56 of the CALLBACK_IRQ value.
    pub const CALLBACK_TYPE_SHIFT: u32 = 56;
    /// `HVM_PARAM_CALLBACK_TYPE_VECTOR`: bits 7:0 are an IDT vector.
    pub const CALLBACK_TYPE_VECTOR: u64 = 2;
}

/// `XENVER_*` commands of `xen_version`.
pub mod xenver {
    /// `XENVER_version`: returns `major << 16 | minor`.
    pub const VERSION: u32 = 0;
    /// `XENVER_get_features`: `xen_feature_info` {submap_idx u32 @0, OUT submap u32 @4}.
    pub const GET_FEATURES: u32 = 6;
    /// Size of `xen_feature_info`.
    pub const FEATURE_INFO_SIZE: usize = 8;
    /// `XENFEAT_auto_translated_physmap`.
    pub const FEAT_AUTO_TRANSLATED_PHYSMAP: u32 = 2;
    /// `XENFEAT_hvm_callback_vector`.
    pub const FEAT_HVM_CALLBACK_VECTOR: u32 = 8;
}

/// Layout of `shared_info` and `vcpu_info` (for the 2-level event ABI).
pub mod shared_info {
    /// Bytes of one `vcpu_info`.
    pub const VCPU_INFO_SIZE: usize = 64;
    /// `vcpu_info`s embedded in `shared_info` (`XEN_LEGACY_MAX_VCPUS`).
    pub const LEGACY_MAX_VCPUS: u32 = 32;
    /// Offset of `evtchn_upcall_pending` (u8) in `vcpu_info`.
    pub const UPCALL_PENDING: usize = 0;
    /// Offset of `evtchn_upcall_mask` (u8) in `vcpu_info`.
    pub const UPCALL_MASK: usize = 1;
    /// Offset of `evtchn_pending` in `shared_info` (after the `vcpu_info`s).
    pub const EVTCHN_PENDING: usize = 2048;
}
