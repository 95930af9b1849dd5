//! The glue proper (built for `x86_64-unknown-none` only).

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::vec::Vec;

use rt::xen::{GrantTable, MappedPage, OwnedPage, Page, Store, StoreError, Tx, Xen};
use vchan::{DomId, Errno, GrantRef, Perm, Platform, Port, SharedMem, Vchan};

use crate::{errno, xs_perm};

/// A vchan endpoint on this platform.
pub type XenVchan = Vchan<XenMem, XenNotify>;

/// One page a vchan uses: own RAM to grant, or a peer's grant mapped here.
#[derive(Debug)]
pub enum XenMem {
    /// A page of this domain's RAM.
    Owned(OwnedPage),
    /// A peer's page mapped into the GPA window.
    Mapped(MappedPage),
}

impl XenMem {
    /// Atomic access to the page.
    pub fn page(&self) -> Page<'_> {
        match self {
            XenMem::Owned(p) => p.page(),
            XenMem::Mapped(p) => p.page(),
        }
    }
}

/// The part of `[offset, offset + len)` inside a page: its length.
fn in_page(offset: usize, len: usize) -> usize {
    Page::SIZE.saturating_sub(offset).min(len)
}

impl SharedMem for XenMem {
    fn len(&self) -> usize {
        Page::SIZE
    }
    fn load_u32(&self, offset: usize) -> u32 {
        self.page().load_u32(offset).unwrap_or(0)
    }
    fn store_u32(&self, offset: usize, value: u32) {
        let _ = self.page().store_u32(offset, value);
    }
    fn fetch_or_u32(&self, offset: usize, bits: u32) -> u32 {
        self.page().fetch_or_u32(offset, bits).unwrap_or(0)
    }
    fn fetch_and_u32(&self, offset: usize, bits: u32) -> u32 {
        self.page().fetch_and_u32(offset, bits).unwrap_or(0)
    }
    fn compare_exchange_u32(&self, offset: usize, current: u32, new: u32) -> Result<u32, u32> {
        self.page()
            .cmpxchg_u32(offset, current, new)
            .unwrap_or(Ok(current))
    }
    fn load_u8(&self, offset: usize) -> u8 {
        self.page().load_u8(offset).unwrap_or(0)
    }
    fn store_u8(&self, offset: usize, value: u8) {
        let _ = self.page().store_u8(offset, value);
    }
    fn read_bytes(&self, offset: usize, dst: &mut [u8]) {
        let n = in_page(offset, dst.len());
        let (inside, outside) = dst.split_at_mut(n);
        if self.page().read(offset, inside).is_none() {
            inside.fill(0);
        }
        outside.fill(0);
    }
    fn write_bytes(&self, offset: usize, src: &[u8]) {
        let n = in_page(offset, src.len());
        if let Some(inside) = src.get(..n) {
            let _ = self.page().write(offset, inside);
        }
    }
    fn fill(&self, offset: usize, len: usize, value: u8) {
        let _ = self.page().fill(offset, in_page(offset, len), value);
    }
}

/// Signals ports with `EVTCHNOP_send`.
#[derive(Clone, Copy, Debug)]
pub struct XenNotify(&'static Xen);

impl vchan::Notify for XenNotify {
    fn notify(&self, port: Port) -> Result<(), Errno> {
        self.0.send(port).map_err(errno)
    }
}

/// Halts until a port fires ([`Xen::wait_any`]), then takes its flag.
#[derive(Clone, Copy, Debug)]
pub struct XenWait(pub &'static Xen);

impl vchan::Wait for XenWait {
    fn wait(&mut self, port: Port) -> Result<(), Errno> {
        // Taking the flag after the wake-up keeps later events: one that
        // fires after this `take` sets it again, so the caller's next
        // attempt or the next wait sees it.
        self.0.wait_any(&[port]);
        self.0.take(port);
        Ok(())
    }
}

/// How long one store request may take: generous, because the store VM
/// only runs when the other VMs wait.
pub const STORE_TIMEOUT: core::time::Duration = core::time::Duration::from_secs(60);

fn store_errno(e: StoreError) -> Errno {
    errno(e.errno())
}

/// [`vchan::Platform`] over the runtime: grants, event channels, the store.
///
/// It keeps the references it granted and has not ended yet
/// ([`XenPlatform::outstanding_grants`]), so a program can tell that
/// closing its channels really ended every grant.
pub struct XenPlatform {
    xen: &'static Xen,
    grants: &'static GrantTable,
    store: Store,
    domid: DomId,
    outstanding: BTreeSet<GrantRef>,
}

impl XenPlatform {
    /// The platform of domain `domid` (from [`Xen::domid`] or the
    /// toolstack), over an initialised grant table and the store connection
    /// ([`Xen::store`]).
    pub fn new(
        xen: &'static Xen,
        grants: &'static GrantTable,
        store: Store,
        domid: DomId,
    ) -> XenPlatform {
        let mut store = store;
        store.set_timeout(STORE_TIMEOUT);
        XenPlatform {
            xen,
            grants,
            store,
            domid,
            outstanding: BTreeSet::new(),
        }
    }

    /// The grant references made through this platform and not ended yet,
    /// ascending.
    pub fn outstanding_grants(&self) -> impl Iterator<Item = GrantRef> + '_ {
        self.outstanding.iter().copied()
    }

    /// The Xen interface.
    pub fn xen(&self) -> &'static Xen {
        self.xen
    }

    /// The grant table.
    pub fn grants(&self) -> &'static GrantTable {
        self.grants
    }

    /// The store connection, for what vchan does not do (watches, other
    /// keys).
    pub fn store(&mut self) -> &mut Store {
        &mut self.store
    }

    /// A waiter for the `*_blocking` operations.
    pub fn waiter(&self) -> XenWait {
        XenWait(self.xen)
    }
}

impl Platform for XenPlatform {
    type Mem = XenMem;
    type Notify = XenNotify;

    fn domid(&self) -> DomId {
        self.domid
    }

    fn notifier(&self) -> XenNotify {
        XenNotify(self.xen)
    }

    fn alloc_page(&mut self) -> Result<XenMem, Errno> {
        OwnedPage::new()
            .map(XenMem::Owned)
            .map_err(|_| Errno::ENOMEM)
    }

    fn free_page(&mut self, page: XenMem) {
        match page {
            XenMem::Owned(p) => drop(p),
            // Not ours to free: give the mapping back instead.
            XenMem::Mapped(m) => {
                let _ = self.grants.unmap(m);
            }
        }
    }

    fn grant_access(
        &mut self,
        page: &XenMem,
        peer: DomId,
        readonly: bool,
    ) -> Result<GrantRef, Errno> {
        match page {
            XenMem::Owned(p) => {
                let gref = self
                    .grants
                    .grant_access(peer, p.gfn(), readonly)
                    .map_err(|e| errno(e.errno()))?;
                self.outstanding.insert(gref);
                Ok(gref)
            }
            // Re-granting a peer's page is not something vchan does.
            XenMem::Mapped(_) => Err(Errno::EINVAL),
        }
    }

    fn end_access(&mut self, gref: GrantRef) -> Result<(), Errno> {
        self.grants.end_access(gref).map_err(|e| errno(e.errno()))?;
        self.outstanding.remove(&gref);
        Ok(())
    }

    fn map_grant(&mut self, peer: DomId, gref: GrantRef, readonly: bool) -> Result<XenMem, Errno> {
        self.grants
            .map(peer, gref, readonly)
            .map(XenMem::Mapped)
            .map_err(|e| errno(e.errno()))
    }

    fn unmap_grant(&mut self, page: XenMem) -> Result<(), Errno> {
        match page {
            XenMem::Mapped(m) => self.grants.unmap(m).map_err(|e| errno(e.errno())),
            XenMem::Owned(p) => {
                // Possibly still granted: never return it to the heap here.
                core::mem::forget(p);
                Err(Errno::EINVAL)
            }
        }
    }

    fn alloc_unbound(&mut self, remote: DomId) -> Result<Port, Errno> {
        self.xen.alloc_unbound(remote).map_err(errno)
    }

    fn bind_interdomain(&mut self, remote: DomId, remote_port: Port) -> Result<Port, Errno> {
        self.xen
            .bind_interdomain(remote, remote_port)
            .map_err(errno)
    }

    fn close_port(&mut self, port: Port) -> Result<(), Errno> {
        self.xen.close(port).map_err(errno)
    }

    fn store_read(&mut self, path: &str) -> Result<String, Errno> {
        let bytes = self.store.read(Tx::NONE, path).map_err(store_errno)?;
        String::from_utf8(bytes).map_err(|_| Errno::EINVAL)
    }

    fn store_write(&mut self, path: &str, value: &str) -> Result<(), Errno> {
        self.store
            .write(Tx::NONE, path, value.as_bytes())
            .map_err(store_errno)
    }

    fn store_set_perms(&mut self, path: &str, perms: &[Perm]) -> Result<(), Errno> {
        let perms: Vec<_> = perms.iter().copied().map(xs_perm).collect();
        self.store
            .set_perms(Tx::NONE, path, &perms)
            .map_err(store_errno)
    }

    fn store_rm(&mut self, path: &str) -> Result<(), Errno> {
        self.store.rm(Tx::NONE, path).map_err(store_errno)
    }
}
