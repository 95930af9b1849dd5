//! What a vchan needs from its platform: grants, event channels, the store.

use alloc::string::String;
use core::fmt;

use crate::{Errno, SharedMem};

/// A domain id (`domid_t`).
pub type DomId = u16;
/// A local event-channel port (`evtchn_port_t`).
pub type Port = u32;
/// A grant reference (`grant_ref_t`).
pub type GrantRef = u32;

/// Sends an event to the peer over the vchan's port (`EVTCHNOP_send`).
pub trait Notify {
    /// Signals `port`.
    fn notify(&self, port: Port) -> Result<(), Errno>;
}

/// Blocks until something happens on a port: the hook behind the
/// `*_blocking` operations (a unikernel halts until its upcall fires).
pub trait Wait {
    /// Returns once an event may have arrived on `port` since the last call
    /// (spurious returns are fine; lost events are not).
    fn wait(&mut self, port: Port) -> Result<(), Errno>;
}

/// Access a store node grants to one domain (xenstore permission letters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `n`: none.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: read and write.
    Both,
}

/// One xenstore permission entry. The first entry of a list names the owner
/// and gives the access of every domain not listed after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perm {
    /// The domain.
    pub domid: DomId,
    /// Its access.
    pub access: Access,
}

impl fmt::Display for Perm {
    /// The wire form: a letter and the domain id, e.g. `n3` or `r5`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = match self.access {
            Access::None => 'n',
            Access::Read => 'r',
            Access::Write => 'w',
            Access::Both => 'b',
        };
        write!(f, "{c}{}", self.domid)
    }
}

/// The grant, event-channel and store operations of the handshake and of
/// teardown (`Vchan::server`, `Vchan::client`, `Vchan::close`).
pub trait Platform {
    /// A view of one page: own RAM or a mapped foreign grant.
    type Mem: SharedMem;
    /// The endpoint's handle for notifying the peer.
    type Notify: Notify;

    /// This domain's id (the owner of the store keys a server writes).
    fn domid(&self) -> DomId;
    /// A notifier the endpoint keeps for its lifetime.
    fn notifier(&self) -> Self::Notify;

    /// Allocates one zeroed, page-aligned page of own RAM.
    fn alloc_page(&mut self) -> Result<Self::Mem, Errno>;
    /// Returns a page from [`alloc_page`](Self::alloc_page) whose grant has
    /// ended (never called while a grant to it may still be mapped).
    fn free_page(&mut self, page: Self::Mem);
    /// Grants `peer` access to `page`; returns the grant reference.
    fn grant_access(
        &mut self,
        page: &Self::Mem,
        peer: DomId,
        readonly: bool,
    ) -> Result<GrantRef, Errno>;
    /// Ends a grant; fails (e.g. `EBUSY`) while the peer has it mapped.
    fn end_access(&mut self, gref: GrantRef) -> Result<(), Errno>;
    /// Maps `peer`'s grant `gref` (`GNTTABOP_map_grant_ref`).
    fn map_grant(
        &mut self,
        peer: DomId,
        gref: GrantRef,
        readonly: bool,
    ) -> Result<Self::Mem, Errno>;
    /// Unmaps a page from [`map_grant`](Self::map_grant).
    fn unmap_grant(&mut self, page: Self::Mem) -> Result<(), Errno>;

    /// Allocates a port that `remote` may bind (`EVTCHNOP_alloc_unbound`).
    fn alloc_unbound(&mut self, remote: DomId) -> Result<Port, Errno>;
    /// Binds to `remote`'s unbound `remote_port` (`EVTCHNOP_bind_interdomain`);
    /// returns the local port.
    fn bind_interdomain(&mut self, remote: DomId, remote_port: Port) -> Result<Port, Errno>;
    /// Closes a local port (`EVTCHNOP_close`).
    fn close_port(&mut self, port: Port) -> Result<(), Errno>;

    /// Reads a store node.
    fn store_read(&mut self, path: &str) -> Result<String, Errno>;
    /// Writes a store node (creating it).
    fn store_write(&mut self, path: &str, value: &str) -> Result<(), Errno>;
    /// Sets a node's permissions (`XS_SET_PERMS`).
    fn store_set_perms(&mut self, path: &str, perms: &[Perm]) -> Result<(), Errno>;
    /// Removes a node and everything under it.
    fn store_rm(&mut self, path: &str) -> Result<(), Errno>;
}
