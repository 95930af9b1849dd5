//! The Xen inter-VM ABI on seL4: one `xen_abi::Hub` for every VM that has
//! the ABI, and the seL4 side of its `Platform` (pages the VMM owns, EPT
//! changes for grants and special pages, wake-ups between vCPU threads).
//!
//! * Each Xen VM's RAM is built from 4 KiB frames (so one page can be
//!   granted); its `shared_info` and grant-table frames are VMM frames mapped
//!   into the VMM and, when the guest places them, into its EPT.
//! * Special pages and foreign (granted) frames may only be placed at
//!   guest-physical frames above the VM's RAM and below 4 GiB: nothing of
//!   the guest's own RAM is ever replaced.
//! * An event for another VM sets its pending bits (in its `shared_info`)
//!   and signals its vCPU thread's notification; the thread injects the
//!   upcall vector (`vmm_core::vm::Host::xen_upcall`).
//! * The VMM is the toolstack: it gives each domain a store ring (the last
//!   page of its RAM, reserved in its memory map), an unbound port for the
//!   store, grant reference 1 to the store's domain, and introduces the
//!   domain to the store with `XS_INTRODUCE` on the store's own ring page —
//!   the toolstack's connection. When a domain stops, it is removed from the
//!   hub (its channels closed, the grant mappings it holds undone; others'
//!   mappings of its pages stay until they unmap them, as in Xen — its frames
//!   are never given to another VM),
//!   `XS_RELEASE` goes to the store and `VIRQ_DOM_EXC` is raised there.
//!
//! All hub state is behind one lock; seL4 invocations made under it use the
//! calling thread's IPC buffer (swapped into the shared [`Kernel`]).

use crate::kobj::{KError, Kernel};
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::sync::atomic::{fence, AtomicU32, AtomicU8, Ordering};
use sel4::{sys, CPtr, Ipc};
use spin::Mutex;
use xen_abi::abi::{gnttabop, hvmop, virq};
use xen_abi::{
    DomId, GrantMapping, GuestMem, Hub, HubConfig, Platform, Regs, SharedPage, SpecialPage,
    PAGE_SIZE,
};
use xenstore_engine::client;
use xenstore_engine::ring::{self, Ring, RingMem};
use xenstore_engine::wire::MsgType;

/// Where the VMM maps the pages it owns (PML4 slot 3).
const SPECIAL_AREA: u64 = 0x180_0000_0000;
const PAGE: u64 = PAGE_SIZE as u64;

/// A page the VMM owns (shared_info or a grant-table frame).
struct Special {
    /// Its address in the VMM.
    vaddr: u64,
    /// The frame, mapped in the VMM.
    cap: CPtr,
    /// A copy for the guest's EPT (made on first placement).
    guest: Option<CPtr>,
    /// Where the guest placed it.
    gfn: Option<u64>,
}

/// One Xen domain's memory as the platform sees it.
struct Dom {
    /// The VM's RAM in the VMM's address space.
    window: u64,
    /// RAM pages (guest-physical frames `0..pages`).
    pages: u64,
    /// The EPT-mapped 4 KiB frames of its RAM: frame `gfn` is `ram + gfn`.
    ram: CPtr,
    /// Its EPT.
    ept: CPtr,
    /// Its vCPU thread's notification.
    wake: CPtr,
    /// The VM's name.
    name: &'static str,
    shared_info: Special,
    grant_frames: Vec<Special>,
    /// Foreign frames mapped into its EPT: gfn → the copied frame capability.
    foreign: BTreeMap<u64, CPtr>,
}

/// Everything the hub's platform owns.
struct State {
    doms: BTreeMap<DomId, Dom>,
    next_vaddr: u64,
    /// The store's domain, if the system has one.
    store: Option<DomId>,
    /// Request id for toolstack messages to the store.
    next_req: u32,
    /// Toolstack requests waiting for room in the store's ring (it holds
    /// 1024 bytes; introducing a domain takes about 135).
    toolstack: VecDeque<Vec<u8>>,
}

struct World {
    hub: Hub,
    state: State,
    /// The kernel-object allocator, once the manager hands it over.
    kernel: Option<Kernel>,
}

impl World {
    fn new() -> World {
        World {
            hub: Hub::new(HubConfig::default()),
            state: State {
                doms: BTreeMap::new(),
                next_vaddr: SPECIAL_AREA,
                store: None,
                next_req: 1,
                toolstack: VecDeque::new(),
            },
            kernel: None,
        }
    }
}

static WORLD: Mutex<Option<World>> = Mutex::new(None);

/// Takes the hub's lock, yielding the core while another vCPU thread holds
/// it (a preempted holder would otherwise be spun against for a whole time
/// slice).
fn world() -> spin::MutexGuard<'static, Option<World>> {
    loop {
        if let Some(g) = WORLD.try_lock() {
            return g;
        }
        sel4::yield_now();
    }
}

/// A VMM page shared with guests: every access is one atomic access.
#[repr(transparent)]
pub struct Page([AtomicU8; PAGE_SIZE]);

impl Page {
    /// # Safety
    /// `vaddr` must be a page mapped read-write in the VMM for the rest of
    /// its life (guest RAM windows and VMM-owned frames are never unmapped).
    unsafe fn at<'a>(vaddr: u64) -> &'a mut Page {
        // SAFETY: per the contract; `Page` is bytes of atomics, so a guest
        // writing the same memory concurrently is not a data race.
        unsafe { &mut *(vaddr as *mut Page) }
    }

    fn u32_at(&self, offset: usize) -> Option<&AtomicU32> {
        if !offset.is_multiple_of(4) || offset.checked_add(4)? > PAGE_SIZE {
            return None;
        }
        let p = self.0.as_ptr().wrapping_add(offset) as *const AtomicU32;
        // SAFETY: 4-aligned (the page is), inside the page, and AtomicU32
        // has the size and alignment of u32.
        Some(unsafe { &*p })
    }
}

impl SharedPage for Page {
    fn read(&self, offset: usize, buf: &mut [u8]) -> Option<()> {
        let src = self.0.get(offset..offset.checked_add(buf.len())?)?;
        for (d, s) in buf.iter_mut().zip(src) {
            *d = s.load(Ordering::Relaxed);
        }
        fence(Ordering::Acquire);
        Some(())
    }
    fn write(&mut self, offset: usize, buf: &[u8]) -> Option<()> {
        let dst = self.0.get(offset..offset.checked_add(buf.len())?)?;
        fence(Ordering::Release);
        for (d, s) in dst.iter().zip(buf) {
            d.store(*s, Ordering::Relaxed);
        }
        Some(())
    }
    fn test_and_set_bit(&mut self, offset: usize, bit: u8) -> Option<bool> {
        let m = 1u8.checked_shl(u32::from(bit))?;
        Some(self.0.get(offset)?.fetch_or(m, Ordering::SeqCst) & m != 0)
    }
    fn test_and_clear_bit(&mut self, offset: usize, bit: u8) -> Option<bool> {
        let m = 1u8.checked_shl(u32::from(bit))?;
        Some(self.0.get(offset)?.fetch_and(!m, Ordering::SeqCst) & m != 0)
    }
    fn cmpxchg_u32(&mut self, offset: usize, old: u32, new: u32) -> Option<u32> {
        let a = self.u32_at(offset)?;
        Some(
            match a.compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(v) | Err(v) => v,
            },
        )
    }
    fn load_u32(&self, offset: usize) -> Option<u32> {
        Some(self.u32_at(offset)?.load(Ordering::Acquire))
    }
}

impl RingMem for Page {
    fn load_u32(&self, offset: usize) -> u32 {
        SharedPage::load_u32(self, offset).unwrap_or(0)
    }
    fn store_u32(&mut self, offset: usize, value: u32) {
        if let Some(a) = self.u32_at(offset) {
            a.store(value, Ordering::Release);
        }
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        let _ = SharedPage::read(self, offset, buf);
    }
    fn write(&mut self, offset: usize, buf: &[u8]) {
        let _ = SharedPage::write(self, offset, buf);
    }
}

/// The hub's view of the VMM, for one call.
struct Plat<'a> {
    k: Option<&'a mut Kernel>,
    s: &'a mut State,
}

impl Plat<'_> {
    fn kernel(&mut self) -> Option<&mut Kernel> {
        self.k.as_deref_mut()
    }

    fn new_special(&mut self) -> Option<Special> {
        let vaddr = self.s.next_vaddr;
        let k = self.k.as_deref_mut()?;
        let cap = k
            .create(sys::X86_4K_OBJECT, sys::PAGE_BITS, "allocating a Xen page")
            .ok()?;
        k.map_vmm(cap, vaddr, false).ok()?;
        self.s.next_vaddr = vaddr + PAGE;
        Some(Special {
            vaddr,
            cap,
            guest: None,
            gfn: None,
        })
    }

    /// Whether `gfn` is somewhere `dom` may have special or foreign pages.
    fn in_window(d: &Dom, gfn: u64) -> bool {
        xen_abi::policy::foreign_gfn_allowed(d.pages, gfn)
    }
}

impl Platform for Plat<'_> {
    type Page = Page;

    fn shared_info(&mut self, dom: DomId) -> Option<&mut Page> {
        let d = self.s.doms.get(&dom)?;
        // SAFETY: VMM-owned frame, mapped at `vaddr` for good.
        Some(unsafe { Page::at(d.shared_info.vaddr) })
    }

    fn grant_frame(&mut self, dom: DomId, index: u32) -> Option<&mut Page> {
        let d = self.s.doms.get(&dom)?;
        let f = d.grant_frames.get(usize::try_from(index).ok()?)?;
        // SAFETY: as for shared_info.
        Some(unsafe { Page::at(f.vaddr) })
    }

    fn grow_grant_table(&mut self, dom: DomId, nr_frames: u32) -> bool {
        let want = nr_frames as usize;
        loop {
            let have = match self.s.doms.get(&dom) {
                Some(d) => d.grant_frames.len(),
                None => return false,
            };
            if have >= want {
                return true;
            }
            let Some(f) = self.new_special() else {
                return false;
            };
            if let Some(d) = self.s.doms.get_mut(&dom) {
                d.grant_frames.push(f);
            }
        }
    }

    fn ram_page(&mut self, dom: DomId, gfn: u64) -> Option<&mut Page> {
        let d = self.s.doms.get(&dom)?;
        if gfn >= d.pages {
            return None;
        }
        // SAFETY: inside the VM's RAM window, mapped in the VMM for good.
        Some(unsafe { Page::at(d.window + gfn * PAGE) })
    }

    fn map_grant(&mut self, m: &GrantMapping) -> bool {
        let (frame, ok) = match (self.s.doms.get(&m.granter), self.s.doms.get(&m.grantee)) {
            (Some(r), Some(g)) => (
                r.ram + m.frame,
                m.frame < r.pages
                    && Plat::in_window(g, m.gfn)
                    && !g.foreign.contains_key(&m.gfn)
                    && g.shared_info.gfn != Some(m.gfn)
                    && g.grant_frames.iter().all(|f| f.gfn != Some(m.gfn)),
            ),
            _ => return false,
        };
        if !ok {
            return false;
        }
        let Some(ept) = self.s.doms.get(&m.grantee).map(|g| g.ept) else {
            return false;
        };
        let Some(slot) = self.kernel().and_then(|k| k.slot().ok()) else {
            return false;
        };
        let rights = if m.writable {
            sys::RIGHTS_READ_WRITE
        } else {
            sys::RIGHTS_READ
        };
        let Some(k) = self.kernel() else {
            return false;
        };
        let mapped = k.copy_into(slot, frame, rights).is_ok()
            && k.map_ept(ept, slot, m.gfn * PAGE, false).is_ok();
        if !mapped {
            if k.delete(slot).is_ok() {
                k.release(slot);
            }
            return false;
        }
        if let Some(g) = self.s.doms.get_mut(&m.grantee) {
            g.foreign.insert(m.gfn, slot);
        }
        true
    }

    fn unmap_grant(&mut self, m: &GrantMapping) {
        let Some(slot) = self
            .s
            .doms
            .get(&m.grantee)
            .and_then(|g| g.foreign.get(&m.gfn).copied())
        else {
            return;
        };
        // seL4 16.0.0 issues no INVEPT when it unmaps an EPT page (and its
        // INVEPT operand lacks the EPTP's type bits): on hardware a stale
        // translation may outlive this unmap until the TLB drops it. Under
        // Bochs a read after the unmap faults (tests/sel4_xen_hostile.rs).
        let unmapped = self
            .kernel()
            .is_some_and(|k| k.ipc.page_unmap(slot).is_ok());
        if !unmapped {
            // Still mapped: keep tracking it, so the frame is never reused.
            log!(
                "domain {}: unmapping a grant at frame {:#x} failed; the mapping stays",
                m.grantee,
                m.gfn
            );
            return;
        }
        if let Some(g) = self.s.doms.get_mut(&m.grantee) {
            g.foreign.remove(&m.gfn);
        }
        if let Some(k) = self.kernel() {
            if k.delete(slot).is_ok() {
                k.release(slot);
            }
        }
    }

    fn place_page(
        &mut self,
        dom: DomId,
        page: SpecialPage,
        _old_gfn: Option<u64>,
        gfn: u64,
    ) -> bool {
        // Everything that can fail happens before anything is unmapped, so
        // a refusal leaves the EPT as the hub believes it is.
        let Some(k) = self.k.as_deref_mut() else {
            return false;
        };
        let Some(d) = self.s.doms.get_mut(&dom) else {
            return false;
        };
        if !Plat::in_window(d, gfn) || d.foreign.contains_key(&gfn) {
            return false;
        }
        let ept = d.ept;
        let target = match page {
            SpecialPage::SharedInfo => Some(&mut d.shared_info),
            SpecialPage::GrantFrame(i) => d.grant_frames.get_mut(i as usize),
        };
        let Some(target) = target else {
            return false;
        };
        let guest = match target.guest {
            Some(g) => g,
            None => match k.copy(target.cap, sys::RIGHTS_ALL) {
                Ok(g) => g,
                Err(_) => return false,
            },
        };
        target.guest = Some(guest);
        if k.ept_tables(ept, gfn * PAGE, false).is_err() {
            return false;
        }
        // Evict whichever of this domain's special pages sits at `gfn`,
        // then move the target there.
        for f in core::iter::once(&mut d.shared_info).chain(d.grant_frames.iter_mut()) {
            let here = f.gfn == Some(gfn);
            let moving = f.guest == Some(guest) && f.gfn.is_some();
            if here || moving {
                if let Some(cap) = f.guest {
                    if k.ipc.page_unmap(cap).is_err() {
                        log!("domain {dom}: unmapping a Xen page failed");
                        return false;
                    }
                }
                f.gfn = None;
            }
        }
        if k.ipc
            .page_map_ept(guest, ept, gfn * PAGE, sys::RIGHTS_ALL)
            .is_err()
        {
            log!("domain {dom}: mapping a Xen page at frame {gfn:#x} failed");
            return false;
        }
        let target = match page {
            SpecialPage::SharedInfo => Some(&mut d.shared_info),
            SpecialPage::GrantFrame(i) => d.grant_frames.get_mut(i as usize),
        };
        if let Some(t) = target {
            t.gfn = Some(gfn);
        }
        true
    }
}

/// The Xen facts of one VM, for its creation.
pub struct NewDomain {
    /// The domain id.
    pub id: DomId,
    /// The VM's RAM window in the VMM.
    pub window: u64,
    /// Bytes of RAM.
    pub ram: u64,
    /// The first of its RAM frames (EPT-mapped, consecutive slots).
    pub frames: CPtr,
    /// Its EPT.
    pub ept: CPtr,
    /// Its vCPU thread's notification.
    pub wake: CPtr,
    /// It serves the store.
    pub store: bool,
    /// The VM's name (written to `/local/domain/<id>/name`).
    pub name: &'static str,
}

/// Adds a VM to the hub (during boot, with the manager's kernel).
pub fn add_domain(k: &mut Kernel, nd: &NewDomain) -> Result<(), KError> {
    let mut w = world();
    let w = w.get_or_insert_with(World::new);
    let refused = |what| KError::Kernel(what, sel4::Error::InvalidArgument);
    let shared_info = Plat {
        k: Some(&mut *k),
        s: &mut w.state,
    }
    .new_special()
    .ok_or(refused("allocating the shared_info page"))?;
    w.state.doms.insert(
        nd.id,
        Dom {
            window: nd.window,
            pages: nd.ram / PAGE,
            ram: nd.frames,
            ept: nd.ept,
            wake: nd.wake,
            name: nd.name,
            shared_info,
            grant_frames: Vec::new(),
            foreign: BTreeMap::new(),
        },
    );
    let mut plat = Plat {
        k: Some(k),
        s: &mut w.state,
    };
    if w.hub
        .add_domain(nd.id, xen_abi::policy::domain_config(), &mut plat)
        .is_err()
    {
        // The VM will not run: forget it, so the toolstack skips it.
        w.state.doms.remove(&nd.id);
        return Err(refused("adding the domain to the hub"));
    }
    if nd.store {
        w.state.store = Some(nd.id);
    }
    Ok(())
}

/// The store ring's frame of a domain with `ram` bytes: its last page.
pub fn store_gfn(ram: u64) -> u64 {
    ram / PAGE - 1
}

/// Acts as the toolstack once every VM exists: gives each domain its store
/// ring and channel, and introduces it to the store. Returns how many
/// domains were introduced.
pub fn toolstack_setup(k: &mut Kernel) -> Result<usize, KError> {
    let mut guard = world();
    let Some(w) = guard.as_mut() else {
        return Ok(0);
    };
    let Some(store) = w.state.store else {
        log!("xen: no VM has xen = \"store\"; domains have no store");
        return Ok(0);
    };
    let refused = |what| KError::Kernel(what, sel4::Error::InvalidArgument);
    let ids: Vec<DomId> = w.hub.domain_ids().collect();
    let mut introduced = 0;
    for id in ids {
        let Some(d) = w.state.doms.get(&id) else {
            continue;
        };
        let gfn = d.pages - 1;
        w.hub
            .toolstack_set_param(id, hvmop::PARAM_STORE_PFN, gfn)
            .map_err(|_| refused("setting the store ring's frame"))?;
        if id == store {
            continue;
        }
        let port = w
            .hub
            .toolstack_alloc_unbound(id, store)
            .map_err(|_| refused("allocating the store's event channel"))?;
        w.hub
            .toolstack_set_param(id, hvmop::PARAM_STORE_EVTCHN, u64::from(port))
            .map_err(|_| refused("setting the store's event channel"))?;
        let mut plat = Plat {
            k: Some(&mut *k),
            s: &mut w.state,
        };
        w.hub
            .toolstack_seed_grant(
                id,
                gnttabop::RESERVED_XENSTORE,
                store,
                gfn as u32,
                false,
                &mut plat,
            )
            .map_err(|_| refused("granting the store ring to the store"))?;
        // As Xen's toolstack: introduce the domain, then give it its home
        // (owned by it, nobody else may read it) and its name.
        let id_s = alloc::format!("{id}");
        let gfn_s = alloc::format!("{gfn}");
        let port_s = alloc::format!("{port}");
        let home = alloc::format!("/local/domain/{id}");
        let name_path = alloc::format!("{home}/name");
        let owner = alloc::format!("n{id}");
        let name = w.state.doms.get(&id).map_or("", |d| d.name);
        let introduce = [id_s.as_bytes(), gfn_s.as_bytes(), port_s.as_bytes()];
        let sent = to_store(&mut w.state, |r| {
            client::request(MsgType::Introduce, r, 0, &introduce)
        }) && to_store(&mut w.state, |r| {
            client::request(MsgType::Mkdir, r, 0, &[home.as_bytes()])
        }) && to_store(&mut w.state, |r| {
            client::request(
                MsgType::SetPerms,
                r,
                0,
                &[home.as_bytes(), owner.as_bytes()],
            )
        }) && to_store(&mut w.state, |r| {
            client::write(r, 0, &name_path, name.as_bytes())
        });
        if !sent {
            return Err(refused("introducing a domain to the store"));
        }
        log!("xen: domain {id} introduced to the store (ring frame {gfn:#x}, port {port})");
        introduced += 1;
    }
    if !w.state.toolstack.is_empty() {
        log!(
            "xen: {} toolstack requests wait for room in the store's ring",
            w.state.toolstack.len()
        );
    }
    Ok(introduced)
}

/// Queues a toolstack request for the store's own ring page and writes what
/// fits. False if there is no store or the request cannot be encoded.
fn to_store(s: &mut State, msg: impl FnOnce(u32) -> Option<Vec<u8>>) -> bool {
    if s.store.is_none() {
        return false;
    }
    let req = s.next_req;
    s.next_req = req.wrapping_add(1);
    let Some(msg) = msg(req).filter(|m| m.len() <= ring::RING_SIZE as usize) else {
        return false;
    };
    s.toolstack.push_back(msg);
    flush_toolstack(s);
    true
}

/// Consumes the store's replies to the toolstack (logging refusals) and
/// writes the queued requests that fit, whole. True if any was written.
fn flush_toolstack(s: &mut State) -> bool {
    let Some(d) = s.store.and_then(|id| s.doms.get(&id)) else {
        return false;
    };
    // SAFETY: the store domain's last RAM page, mapped in the VMM for good.
    let page = unsafe { Page::at(d.window + (d.pages - 1) * PAGE) };
    let mut replies = [0u8; 1024];
    match ring::consume(page, Ring::Rsp, &mut replies) {
        Ok(n) => log_replies(replies.get(..n).unwrap_or_default()),
        Err(e) => {
            log!("xen: the store's toolstack ring: {e}; requests held back");
            return false;
        }
    }
    let mut wrote = false;
    while let Some(msg) = s.toolstack.front() {
        if !matches!(ring::space(page, Ring::Req), Ok(n) if n as usize >= msg.len()) {
            break;
        }
        if !matches!(ring::produce(page, Ring::Req, msg), Ok(n) if n == msg.len()) {
            log!("xen: the store's toolstack ring broke while writing; requests held back");
            break;
        }
        s.toolstack.pop_front();
        wrote = true;
    }
    wrote
}

/// Logs error replies from the store to the toolstack.
fn log_replies(mut bytes: &[u8]) {
    while let Ok((h, payload)) = xenstore_engine::wire::parse_message(bytes) {
        if h.kind() == Some(MsgType::Error) {
            log!(
                "xen: the store refused toolstack request {}: {}",
                h.req_id,
                core::str::from_utf8(payload).unwrap_or("?")
            );
        }
        let Some(rest) = bytes.get(xenstore_engine::wire::HEADER_LEN + payload.len()..) else {
            break;
        };
        bytes = rest;
    }
}

/// Hands the kernel-object allocator to the hub (after boot) and runs `f`
/// with it; later, [`with_kernel`] reaches it.
pub fn adopt_kernel(k: Kernel) {
    world().get_or_insert_with(World::new).kernel = Some(k);
}

/// Runs `f` with the kernel-object allocator (the manager thread, whose IPC
/// buffer it uses).
pub fn with_kernel<T>(f: impl FnOnce(&mut Kernel) -> T) -> Option<T> {
    let mut w = world();
    w.as_mut()?.kernel.as_mut().map(f)
}

/// Runs a hypercall of domain `dom` from its vCPU thread (`ipc` is that
/// thread's IPC buffer). Returns RAX.
pub fn hypercall(dom: DomId, regs: &Regs, mem: &mut dyn GuestMem, ipc: &mut Ipc) -> u64 {
    let mut guard = world();
    let Some(w) = guard.as_mut() else {
        return xen_abi::XenError::NoSys.ret() as u64;
    };
    let World { hub, state, kernel } = w;
    if let Some(k) = kernel.as_mut() {
        core::mem::swap(&mut k.ipc, ipc);
    }
    let out = hub.hypercall(
        dom,
        regs,
        mem,
        &mut Plat {
            k: kernel.as_mut(),
            s: state,
        },
    );
    if let Some(k) = kernel.as_mut() {
        core::mem::swap(&mut k.ipc, ipc);
    }
    if let Some(up) = out.upcall {
        if up.dom != dom {
            if let Some(d) = state.doms.get(&up.dom) {
                sel4::signal(d.wake);
            }
        }
    }
    // The store made room in its ring, perhaps: hand it what waits, and
    // tell it (the same VIRQ a domain's death raises).
    if state.store == Some(dom) && !state.toolstack.is_empty() && flush_toolstack(state) {
        let _ = hub.raise_virq(dom, virq::DOM_EXC, 0, &mut Plat { k: None, s: state });
    }
    out.rax(regs.mode)
}

/// The vector to inject into `dom`'s vCPU now, if its upcall is pending and
/// it asked for a callback vector. (A LAPIC upcall vector needs the LAPIC,
/// which PVH VMs do not have.)
pub fn upcall_vector(dom: DomId) -> Option<u8> {
    let mut guard = world();
    let w = guard.as_mut()?;
    let xen_abi::UpcallRoute::CallbackVector(v) = w.hub.upcall_route(dom, 0)? else {
        return None;
    };
    let d = w.state.doms.get(&dom)?;
    // SAFETY: VMM-owned frame, mapped for good.
    let page = unsafe { Page::at(d.shared_info.vaddr) };
    xen_abi::shinfo::upcall_pending(page, 0)
        .unwrap_or(false)
        .then_some(v)
}

/// Whether `dom` asked for its upcalls as a callback vector (the only route
/// a PVH VM without a LAPIC can be woken by).
pub fn has_callback_vector(dom: DomId) -> bool {
    world().as_ref().is_some_and(|w| {
        matches!(
            w.hub.upcall_route(dom, 0),
            Some(xen_abi::UpcallRoute::CallbackVector(_))
        )
    })
}

/// A domain's VM stopped: remove it from the hub (closing its channels and
/// undoing the grant mappings it holds; other domains keep theirs of its
/// pages until they unmap them) and tell the store.
pub fn domain_stopped(dom: DomId, ipc: &mut Ipc) {
    let mut guard = world();
    let Some(w) = guard.as_mut() else {
        return;
    };
    let World { hub, state, kernel } = w;
    if let Some(k) = kernel.as_mut() {
        core::mem::swap(&mut k.ipc, ipc);
    }
    let removed = hub.remove_domain(
        dom,
        &mut Plat {
            k: kernel.as_mut(),
            s: state,
        },
    );
    if let Some(k) = kernel.as_mut() {
        core::mem::swap(&mut k.ipc, ipc);
    }
    if removed.is_err() {
        return;
    }
    let Some(store) = state.store.filter(|s| *s != dom) else {
        return;
    };
    let id = alloc::format!("{dom}");
    if !to_store(state, |r| {
        client::request(MsgType::Release, r, 0, &[id.as_bytes()])
    }) {
        log!("xen: could not tell the store that domain {dom} is gone");
    }
    let mut plat = Plat { k: None, s: state };
    let up = hub.raise_virq(store, virq::DOM_EXC, 0, &mut plat);
    if up.is_some() {
        if let Some(d) = state.doms.get(&store) {
            sel4::signal(d.wake);
        }
    }
    log!("xen: domain {dom} released");
}
