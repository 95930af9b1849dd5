//! Xen's guest ABI for cloister's VMM: the logic of inter-VM channels.
//!
//! Every cloister guest talks to its peers the way a Xen HVM guest does, so
//! stock Xen drivers and libxenvchan work unmodified: it finds Xen through
//! CPUID ([`cpuid`]), installs a hypercall page, and makes hypercalls with
//! VMCALL. This crate is everything about those hypercalls that is not
//! memory or seL4: decoding ([`decode()`]), the cross-domain state in one
//! [`Hub`] (event channels, grant tables, physmap placement, HVM params),
//! and 2-level event delivery into `shared_info` ([`shinfo`]).
//!
//! | hypercall | ops |
//! |-----------|-----|
//! | `event_channel_op` (32) | alloc_unbound, bind_interdomain, bind_virq, close, send, status, bind_vcpu, unmask |
//! | `grant_table_op` (20) | setup_table, query_size, map_grant_ref, unmap_grant_ref, copy, set_version (v1), get_version |
//! | `memory_op` (12) | add_to_physmap: shared_info, grant_table |
//! | `hvm_op` (34) | get_param/set_param (allow-list), set_evtchn_upcall_vector |
//! | `xen_version` (17) | version, get_features |
//!
//! Anything else is `-ENOSYS`. Results are Xen's: negative errno values
//! ([`XenError`]) in RAX, `GNTST_*` ([`GntStatus`]) per grant op.
//!
//! # What the VMM does around it
//!
//! * On a VMCALL exit: fill [`Regs`], call [`Hub::hypercall`] with the
//!   calling domain's id, a [`GuestMem`] for the calling vCPU (linear
//!   addresses: the VMM walks the guest page tables) and its [`Platform`];
//!   put [`Outcome::rax`] in RAX, skip the VMCALL, and for
//!   [`Outcome::upcall`] wake that vCPU (seL4 notification) to deliver its
//!   [`UpcallRoute`]; before each VM entry of a vCPU with a callback vector,
//!   inject it while [`Hub::upcall_pending`].
//! * Own the pages: each domain's `shared_info` and grant-table frames, and
//!   give atomic access to them and to granted RAM ([`SharedPage`]: locked
//!   bit operations, `lock cmpxchg` for grant flags). A removed domain's
//!   RAM that other domains still map stays theirs to use until they unmap
//!   it ([`Hub::remove_domain`], [`Hub::orphaned_mappings`]).
//! * Change the EPT when told: [`Platform::map_grant`] /
//!   [`Platform::unmap_grant`] (flushing), [`Platform::place_page`].
//! * Act as the toolstack: [`Hub::add_domain`], [`Hub::remove_domain`],
//!   [`Hub::toolstack_alloc_unbound`], [`Hub::toolstack_set_param`],
//!   [`Hub::toolstack_seed_grant`]; serve the Xen CPUID leaves and the
//!   hypercall MSR ([`cpuid`]).
//! * Serialize all calls into the hub.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::arithmetic_side_effects
    )
)]

extern crate alloc;

pub mod abi;
pub mod cpuid;
pub mod decode;
mod error;
pub mod evtchn;
pub mod gnttab;
mod hub;
mod mem;
pub mod model;
pub mod policy;
pub mod shinfo;

#[cfg(test)]
mod tests;

pub use abi::{DomId, GrantHandle, GrantRef, Port, DOMID_SELF, PAGE_SIZE};
pub use decode::{decode, Hypercall, Mode, Regs};
pub use error::{GntStatus, XenError, GNTST_OKAY};
pub use hub::{DomainConfig, Hub, HubConfig, Outcome, Upcall, UpcallRoute};
pub use mem::{zero_page, GrantMapping, GuestMem, MemFault, Platform, SharedPage, SpecialPage};
pub use shinfo::Width;
