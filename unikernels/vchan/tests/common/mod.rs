//! A fake Xen for host tests: grant tables, event channels and a store as
//! maps behind one lock, shared by every domain's `FakeXen` handle, with
//! the permission checks Xen and xenstored make. Pages are word buffers
//! shared by reference, so two endpoints in one process see the same bytes.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use vchan::{
    heap_page, Access, DomId, Errno, GrantRef, Notify, Perm, Platform, Port, SharedMem, Wait,
};

/// A page as a domain sees it: writes through a read-only mapping are
/// dropped and counted.
#[derive(Clone)]
pub struct FakeMem {
    pub words: Arc<[AtomicU32]>,
    writable: bool,
    /// (granter, ref) for a mapping.
    origin: Option<(DomId, GrantRef)>,
    violations: Arc<AtomicUsize>,
}

impl FakeMem {
    fn denied(&self) -> bool {
        if !self.writable {
            self.violations.fetch_add(1, Ordering::Relaxed);
        }
        !self.writable
    }
}

impl SharedMem for FakeMem {
    fn len(&self) -> usize {
        SharedMem::len(&*self.words)
    }
    fn load_u32(&self, o: usize) -> u32 {
        self.words.load_u32(o)
    }
    fn store_u32(&self, o: usize, v: u32) {
        if !self.denied() {
            self.words.store_u32(o, v)
        }
    }
    fn fetch_or_u32(&self, o: usize, b: u32) -> u32 {
        if self.denied() {
            return self.words.load_u32(o);
        }
        self.words.fetch_or_u32(o, b)
    }
    fn fetch_and_u32(&self, o: usize, b: u32) -> u32 {
        if self.denied() {
            return self.words.load_u32(o);
        }
        self.words.fetch_and_u32(o, b)
    }
    fn compare_exchange_u32(&self, o: usize, c: u32, n: u32) -> Result<u32, u32> {
        if self.denied() {
            return Err(self.words.load_u32(o));
        }
        self.words.compare_exchange_u32(o, c, n)
    }
}

struct Grant {
    page: Arc<[AtomicU32]>,
    grantee: DomId,
    readonly: bool,
    maps: usize,
}

struct Chan {
    remote: DomId,
    peer: Option<(DomId, Port)>,
    pending: bool,
    sent: usize,
}

struct Node {
    value: String,
    perms: Vec<Perm>,
}

#[derive(Default)]
struct State {
    grants: HashMap<(DomId, GrantRef), Grant>,
    next_gref: HashMap<DomId, GrantRef>,
    chans: HashMap<(DomId, Port), Chan>,
    next_port: HashMap<DomId, Port>,
    store: BTreeMap<String, Node>,
    pages_alive: HashMap<DomId, usize>,
}

/// The whole fake system.
#[derive(Clone, Default)]
pub struct Fabric {
    inner: Arc<(Mutex<State>, Condvar)>,
    pub violations: Arc<AtomicUsize>,
}

impl Fabric {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn dom(&self, dom: DomId) -> FakeXen {
        FakeXen {
            dom,
            fabric: self.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.0.lock().unwrap()
    }

    /// Raw store access (as the store domain), for tests.
    pub fn store_get(&self, path: &str) -> Option<(String, Vec<String>)> {
        let s = self.lock();
        s.store.get(path).map(|n| {
            (
                n.value.clone(),
                n.perms.iter().map(|p| p.to_string()).collect(),
            )
        })
    }

    /// Overwrites a store value (as the store domain), for hostile tests.
    pub fn store_poke(&self, path: &str, value: &str) {
        if let Some(n) = self.lock().store.get_mut(path) {
            n.value = value.to_string();
        }
    }

    /// The page behind `dom`'s grant `gref`, for tests that play a hostile
    /// server.
    pub fn granted_page(&self, dom: DomId, gref: GrantRef) -> Option<Arc<[AtomicU32]>> {
        self.lock().grants.get(&(dom, gref)).map(|g| g.page.clone())
    }

    pub fn grants_of(&self, dom: DomId) -> usize {
        self.lock().grants.keys().filter(|k| k.0 == dom).count()
    }

    pub fn mappings_of_grants_by(&self, dom: DomId) -> usize {
        self.lock()
            .grants
            .iter()
            .filter(|(k, _)| k.0 == dom)
            .map(|(_, g)| g.maps)
            .sum()
    }

    pub fn ports_of(&self, dom: DomId) -> usize {
        self.lock().chans.keys().filter(|k| k.0 == dom).count()
    }

    pub fn pages_alive(&self, dom: DomId) -> usize {
        self.lock().pages_alive.get(&dom).copied().unwrap_or(0)
    }

    /// Takes `dom`'s pending flag on `port`.
    pub fn take_pending(&self, dom: DomId, port: Port) -> bool {
        let mut s = self.lock();
        match s.chans.get_mut(&(dom, port)) {
            Some(c) => std::mem::take(&mut c.pending),
            None => false,
        }
    }

    /// How many events `dom` has sent on `port`.
    pub fn sent(&self, dom: DomId, port: Port) -> usize {
        self.lock().chans.get(&(dom, port)).map_or(0, |c| c.sent)
    }

    pub fn waiter(&self, dom: DomId) -> FakeWait {
        FakeWait {
            dom,
            fabric: self.clone(),
        }
    }
}

/// One domain's view of the fake.
pub struct FakeXen {
    pub dom: DomId,
    pub fabric: Fabric,
}

/// Notifies from one domain.
pub struct FakeNotify {
    dom: DomId,
    fabric: Fabric,
}

impl Notify for FakeNotify {
    fn notify(&self, port: Port) -> Result<(), Errno> {
        let mut s = self.fabric.lock();
        let peer = match s.chans.get_mut(&(self.dom, port)) {
            None => return Err(Errno::EINVAL),
            Some(c) => {
                c.sent += 1;
                c.peer
            }
        };
        // Like Xen, an event on an unbound port is dropped silently.
        if let Some(p) = peer {
            if let Some(c) = s.chans.get_mut(&p) {
                c.pending = true;
            }
        }
        self.fabric.inner.1.notify_all();
        Ok(())
    }
}

/// Blocks a domain until its port is pending (panics after 20 s: a lost
/// wake-up is a test failure, not a hang).
pub struct FakeWait {
    dom: DomId,
    fabric: Fabric,
}

impl Wait for FakeWait {
    fn wait(&mut self, port: Port) -> Result<(), Errno> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut s = self.fabric.lock();
        loop {
            match s.chans.get_mut(&(self.dom, port)) {
                None => return Err(Errno::EINVAL),
                Some(c) if c.pending => {
                    c.pending = false;
                    return Ok(());
                }
                Some(_) => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "dom{} waited 20 s on port {port}: lost wake-up",
                self.dom
            );
            s = self.fabric.inner.1.wait_timeout(s, left).unwrap().0;
        }
    }
}

fn may(perms: &[Perm], dom: DomId, write: bool) -> bool {
    let Some(owner) = perms.first() else {
        return false;
    };
    if owner.domid == dom {
        return true;
    }
    let access = perms[1..]
        .iter()
        .find(|p| p.domid == dom)
        .map_or(owner.access, |p| p.access);
    match access {
        Access::None => false,
        Access::Read => !write,
        Access::Write => write,
        Access::Both => true,
    }
}

impl Platform for FakeXen {
    type Mem = FakeMem;
    type Notify = FakeNotify;

    fn domid(&self) -> DomId {
        self.dom
    }

    fn notifier(&self) -> FakeNotify {
        FakeNotify {
            dom: self.dom,
            fabric: self.fabric.clone(),
        }
    }

    fn alloc_page(&mut self) -> Result<FakeMem, Errno> {
        *self.fabric.lock().pages_alive.entry(self.dom).or_default() += 1;
        Ok(FakeMem {
            words: heap_page(),
            writable: true,
            origin: None,
            violations: self.fabric.violations.clone(),
        })
    }

    fn free_page(&mut self, page: FakeMem) {
        assert!(page.origin.is_none(), "freeing a mapping");
        *self.fabric.lock().pages_alive.entry(self.dom).or_default() -= 1;
    }

    fn grant_access(&mut self, page: &FakeMem, peer: DomId, ro: bool) -> Result<GrantRef, Errno> {
        let mut s = self.fabric.lock();
        let next = s.next_gref.entry(self.dom).or_insert(8);
        let gref = *next;
        *next += 1;
        s.grants.insert(
            (self.dom, gref),
            Grant {
                page: page.words.clone(),
                grantee: peer,
                readonly: ro,
                maps: 0,
            },
        );
        Ok(gref)
    }

    fn end_access(&mut self, gref: GrantRef) -> Result<(), Errno> {
        let mut s = self.fabric.lock();
        match s.grants.get(&(self.dom, gref)) {
            None => Err(Errno::ENOENT),
            Some(g) if g.maps > 0 => Err(Errno::EBUSY),
            Some(_) => {
                s.grants.remove(&(self.dom, gref));
                Ok(())
            }
        }
    }

    fn map_grant(&mut self, peer: DomId, gref: GrantRef, ro: bool) -> Result<FakeMem, Errno> {
        let mut s = self.fabric.lock();
        let g = s.grants.get_mut(&(peer, gref)).ok_or(Errno::ENOENT)?;
        if g.grantee != self.dom || (g.readonly && !ro) {
            return Err(Errno::EACCES);
        }
        g.maps += 1;
        Ok(FakeMem {
            words: g.page.clone(),
            writable: !ro,
            origin: Some((peer, gref)),
            violations: self.fabric.violations.clone(),
        })
    }

    fn unmap_grant(&mut self, page: FakeMem) -> Result<(), Errno> {
        let mut s = self.fabric.lock();
        let key = page.origin.ok_or(Errno::EINVAL)?;
        let g = s.grants.get_mut(&key).ok_or(Errno::ENOENT)?;
        g.maps = g.maps.checked_sub(1).ok_or(Errno::EINVAL)?;
        Ok(())
    }

    fn alloc_unbound(&mut self, remote: DomId) -> Result<Port, Errno> {
        let mut s = self.fabric.lock();
        let next = s.next_port.entry(self.dom).or_insert(1);
        let port = *next;
        *next += 1;
        s.chans.insert(
            (self.dom, port),
            Chan {
                remote,
                peer: None,
                pending: false,
                sent: 0,
            },
        );
        Ok(port)
    }

    fn bind_interdomain(&mut self, remote: DomId, rport: Port) -> Result<Port, Errno> {
        let mut s = self.fabric.lock();
        match s.chans.get(&(remote, rport)) {
            Some(c) if c.peer.is_none() && c.remote == self.dom => {}
            Some(_) => return Err(Errno::EACCES),
            None => return Err(Errno::EINVAL),
        }
        let next = s.next_port.entry(self.dom).or_insert(1);
        let port = *next;
        *next += 1;
        s.chans.insert(
            (self.dom, port),
            Chan {
                remote,
                peer: Some((remote, rport)),
                pending: false,
                sent: 0,
            },
        );
        if let Some(c) = s.chans.get_mut(&(remote, rport)) {
            c.peer = Some((self.dom, port));
        }
        Ok(port)
    }

    fn close_port(&mut self, port: Port) -> Result<(), Errno> {
        let mut s = self.fabric.lock();
        let c = s.chans.remove(&(self.dom, port)).ok_or(Errno::EINVAL)?;
        if let Some(p) = c.peer {
            if let Some(pc) = s.chans.get_mut(&p) {
                pc.peer = None;
            }
        }
        Ok(())
    }

    fn store_read(&mut self, path: &str) -> Result<String, Errno> {
        let s = self.fabric.lock();
        let n = s.store.get(path).ok_or(Errno::ENOENT)?;
        if !may(&n.perms, self.dom, false) {
            return Err(Errno::EACCES);
        }
        Ok(n.value.clone())
    }

    fn store_write(&mut self, path: &str, value: &str) -> Result<(), Errno> {
        let mut s = self.fabric.lock();
        let dom = self.dom;
        match s.store.get_mut(path) {
            Some(n) if !may(&n.perms, dom, true) => Err(Errno::EACCES),
            Some(n) => {
                n.value = value.to_string();
                Ok(())
            }
            None => {
                let perms = vec![Perm {
                    domid: dom,
                    access: Access::None,
                }];
                s.store.insert(
                    path.to_string(),
                    Node {
                        value: value.to_string(),
                        perms,
                    },
                );
                Ok(())
            }
        }
    }

    fn store_set_perms(&mut self, path: &str, perms: &[Perm]) -> Result<(), Errno> {
        let mut s = self.fabric.lock();
        let n = s.store.get_mut(path).ok_or(Errno::ENOENT)?;
        if n.perms.first().map(|p| p.domid) != Some(self.dom) || perms.is_empty() {
            return Err(Errno::EACCES);
        }
        n.perms = perms.to_vec();
        Ok(())
    }

    fn store_rm(&mut self, path: &str) -> Result<(), Errno> {
        let mut s = self.fabric.lock();
        let prefix = format!("{path}/");
        let doomed: Vec<String> = s
            .store
            .iter()
            .filter(|(k, _)| *k == path || k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &doomed {
            if !may(&s.store[k].perms, self.dom, true) {
                return Err(Errno::EACCES);
            }
        }
        for k in doomed {
            s.store.remove(&k);
        }
        Ok(())
    }
}

/// Counts the events one side sends (for attach-based pairs).
#[derive(Clone, Default)]
pub struct Counter(pub Arc<AtomicUsize>);

impl Counter {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Notify for Counter {
    fn notify(&self, _port: Port) -> Result<(), Errno> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

pub type Page = Arc<[AtomicU32]>;
pub type Pair = (vchan::Vchan<Page, Counter>, vchan::Vchan<Page, Counter>);

/// A server and a client attached to fresh pages of the given orders, with
/// every index starting at `start` and both sides connected. Returns the
/// pair, the shared page, and the notifiers (server's, client's).
pub fn attached_pair(left: u8, right: u8, start: u32) -> (Pair, Page, Counter, Counter) {
    use vchan::layout::*;
    let page = heap_page();
    page.store_u32(LEFT_ORDER, u32::from(left) | u32::from(right) << 16);
    for off in [LEFT_CONS, LEFT_PROD, RIGHT_CONS, RIGHT_PROD] {
        page.store_u32(off, start);
    }
    page.store_u32(
        CLI_LIVE,
        u32::from_le_bytes([1, 1, NOTIFY_WRITE, NOTIFY_WRITE]),
    );
    let pages = |o: u8| -> Vec<Page> { (0..ring_pages(o)).map(|_| heap_page()).collect() };
    let (lp, rp) = (pages(left), pages(right));
    let (sn, cn) = (Counter::default(), Counter::default());
    let srv = vchan::Vchan::attach(
        vchan::Role::Server,
        page.clone(),
        lp.clone(),
        rp.clone(),
        1,
        sn.clone(),
    )
    .unwrap();
    let cli =
        vchan::Vchan::attach(vchan::Role::Client, page.clone(), lp, rp, 1, cn.clone()).unwrap();
    ((srv, cli), page, sn, cn)
}

/// A deterministic byte stream (xorshift).
#[derive(Clone)]
pub struct Stream(u64);

impl Stream {
    pub fn new(seed: u64) -> Self {
        Stream(seed | 1)
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
    }
}

/// FNV-1a, for checksums of whole transfers.
pub fn fnv(hash: u64, data: &[u8]) -> u64 {
    data.iter().fold(hash, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

pub const FNV_INIT: u64 = 0xcbf2_9ce4_8422_2325;
