//! The guest side proper: CPUID, the hypercall page, `shared_info` and the
//! upcall, waiting, the grant table and the store ring.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use x86_64::instructions::interrupts;

use super::abi::{hvmop, hypercall, shared_info, xenmem, DomId, GrantRef, Port, PAGE_SIZE};
use super::events::{self, PortSet};
use super::grant::{GrantError, Grants, Mapping};
use super::ops::{self, ChannelStatus, Hypercall};
use super::page::Page;
use super::store::{StoreError, StoreLink, XenStore};
use super::window::{self, Window};
use super::{detect_with, stub_ok, Errno, InitError, XenInfo, HYPERCALLS_USED, UPCALL_VECTOR};
use crate::dma::{DmaError, DmaRegion};
use crate::time::{self, Instant};

/// Finds Xen's CPUID leaves (see [`super::detect_with`]); `None` without
/// the CPUID hypervisor bit.
pub fn detect() -> Option<XenInfo> {
    use core::arch::x86_64::__cpuid;
    if __cpuid(1).ecx & (1 << 31) == 0 {
        return None;
    }
    detect_with(|leaf| {
        let r = __cpuid(leaf);
        [r.eax, r.ebx, r.ecx, r.edx]
    })
}

/// The hypercall page: RAM in `.bss`, filled in by the hypervisor.
#[repr(C, align(4096))]
struct HypercallArea(UnsafeCell<[u8; PAGE_SIZE]>);

// SAFETY: only the hypervisor writes the page; the program reads it
// volatilely once and otherwise only executes it.
unsafe impl Sync for HypercallArea {}

static HYPERCALL_AREA: HypercallArea = HypercallArea(UnsafeCell::new([0; PAGE_SIZE]));

/// Set once the hypercall page has been checked.
static HYPERCALLS_READY: AtomicBool = AtomicBool::new(false);

fn hypercall_page_gpa() -> u64 {
    HYPERCALL_AREA.0.get() as u64
}

/// Hypercalls through the page.
struct HypercallPage;

static HYPERCALLS: HypercallPage = HypercallPage;

/// Offset of the VMCALL in a stub, after its 5-byte `mov eax, imm32`:
/// entered there, the stub makes the hypercall RAX already names.
const STUB_VMCALL: u64 = 5;
/// Offset of the stub's `ret`, after the 3-byte VMCALL/VMMCALL (where Xen
/// and cloister's VMM put it; [`stub_ok`] checks the bytes before it).
const STUB_RET: u64 = 8;
/// `ret`.
const RET: u8 = 0xc3;

/// Where [`Xen::raw_hypercall`] enters the page: the VMCALL of a stub that
/// [`init`] checked, `ret` included (0: none qualified).
static RAW_ENTRY: AtomicU64 = AtomicU64::new(0);

impl HypercallPage {
    /// Calls `entry` in the hypercall page with RAX = `rax` and arguments
    /// 1–5 in RDI, RSI, RDX, R10, R8; returns RAX.
    ///
    /// # Safety
    ///
    /// `entry` must be a stub of the page, or the VMCALL inside one, that
    /// [`init`] checked (so it ends in `ret`), and the call must be one the
    /// caller may make: the hypervisor reads and writes what its pointer
    /// arguments point at.
    unsafe fn call(entry: u64, rax: u64, args: [u64; 5]) -> i64 {
        let ret: i64;
        // SAFETY: per the contract, `entry` runs `[mov eax, nr;] vmcall;
        // ret`; the call reads and writes only the memory its arguments
        // point at (the caller's business) and the registers named here;
        // the C ABI's caller-saved registers are treated as clobbered. The
        // target has no red zone, so `call` may push below RSP.
        unsafe {
            core::arch::asm!(
                "call {entry}",
                entry = in(reg) entry,
                inlateout("rax") rax => ret,
                inlateout("rdi") args[0] => _,
                inlateout("rsi") args[1] => _,
                inlateout("rdx") args[2] => _,
                inlateout("r10") args[3] => _,
                inlateout("r8") args[4] => _,
                clobber_abi("C"),
            );
        }
        ret
    }
}

impl Hypercall for HypercallPage {
    fn hypercall(&self, nr: u64, args: [u64; 5]) -> i64 {
        if !HYPERCALLS_READY.load(Ordering::Acquire) || nr >= hypercall::STUBS {
            return -i64::from(Errno::ENOSYS.errno());
        }
        let entry = hypercall_page_gpa() + hypercall::STUB_SIZE as u64 * nr;
        // SAFETY: the hypervisor filled the page with Xen's stubs (checked
        // before HYPERCALLS_READY was set): `mov eax, nr; vmcall; ret`. The
        // runtime's operations pass live, identity-mapped argument buffers
        // of the sizes Xen's ABI reads and writes.
        unsafe { Self::call(entry, nr, args) }
    }
}

/// Guest-physical address of `shared_info` once placed (0 before).
static SHARED_INFO: AtomicU64 = AtomicU64::new(0);

/// Ports that fired and were not taken.
static FIRED: PortSet = PortSet::new();

fn shared_info_page() -> Option<Page<'static>> {
    let gpa = SHARED_INFO.load(Ordering::Acquire);
    if gpa == 0 {
        return None;
    }
    // SAFETY: `gpa` is the window frame where add_to_physmap placed
    // shared_info (the hypercall succeeded before it was stored); the window
    // is identity mapped, outside RAM, and nothing makes references to it.
    unsafe { Page::from_raw(gpa as *mut u8) }
}

/// The upcall: called by the interrupt dispatcher for [`UPCALL_VECTOR`].
pub(crate) fn upcall() {
    if let Some(page) = shared_info_page() {
        events::scan(&page, &FIRED, false);
    }
}

/// The initialised Xen interface: hypercalls, event channels, the store.
#[derive(Debug)]
pub struct Xen {
    info: XenInfo,
    version: (u16, u16),
    window: Window,
    shared_info: Page<'static>,
    store_params: (u64, u64),
    store: Option<(u64, Port)>,
}

static XEN: spin::Once<Result<Xen, InitError>> = spin::Once::new();

/// Sets up Xen support (once; later calls return the first result):
/// installs the hypercall page, places `shared_info` at the base of the
/// GPA window, registers [`UPCALL_VECTOR`] as the event upcall, and reads
/// the store's params.
pub fn init() -> Result<&'static Xen, InitError> {
    match XEN.call_once(setup) {
        Ok(x) => Ok(x),
        Err(e) => Err(*e),
    }
}

/// The interface, if [`init`] succeeded.
pub fn get() -> Option<&'static Xen> {
    XEN.get()?.as_ref().ok()
}

fn failed(op: &'static str) -> impl FnOnce(Errno) -> InitError {
    move |errno| InitError::Hypercall { op, errno }
}

/// The store ring's address if the params name a usable page: not 0, not
/// in usable RAM or the image, identity mapped.
fn check_store(pfn: u64, port: u64, info: &crate::start_info::BootInfo) -> Option<(u64, Port)> {
    let port = Port::try_from(port).ok().filter(|&p| p != 0)?;
    let gpa = pfn.checked_mul(PAGE_SIZE as u64).filter(|&a| a != 0)?;
    let end = crate::mmio::check_range(info.memmap(), crate::image_range(), gpa, PAGE_SIZE as u64)
        .ok()?;
    (end <= crate::IDENTITY_MAP_END).then_some((gpa, port))
}

fn setup() -> Result<Xen, InitError> {
    let info = detect().ok_or(InitError::NotXen)?;
    let gpa = hypercall_page_gpa();
    // SAFETY: writing the hypercall MSR only makes the hypervisor fill the
    // page at `gpa`, which is ours, page-aligned and unused.
    if !unsafe { crate::msr::write_safe(info.msr, gpa) } {
        return Err(InitError::HypercallMsr { msr: info.msr, gpa });
    }
    let mut copy = [0u8; PAGE_SIZE];
    for (i, b) in copy.iter_mut().enumerate() {
        // SAFETY: inside the static page; volatile, because the hypervisor
        // wrote it behind the compiler's back.
        *b = unsafe { core::ptr::read_volatile((gpa as *const u8).add(i)) };
    }
    if !HYPERCALLS_USED.iter().all(|&nr| stub_ok(&copy, nr)) {
        return Err(InitError::HypercallPage(gpa));
    }
    let stub = |nr: u64| nr * hypercall::STUB_SIZE as u64;
    let raw = HYPERCALLS_USED
        .iter()
        .find(|&&nr| copy.get((stub(nr) + STUB_RET) as usize) == Some(&RET))
        .map_or(0, |&nr| gpa + stub(nr) + STUB_VMCALL);
    RAW_ENTRY.store(raw, Ordering::Release);
    HYPERCALLS_READY.store(true, Ordering::Release);
    let h = &HYPERCALLS;
    let version = ops::version(h).map_err(failed("xen_version(XENVER_version)"))?;
    let store_pfn = ops::get_param(h, hvmop::PARAM_STORE_PFN)
        .map_err(failed("hvm_op(get_param HVM_PARAM_STORE_PFN)"))?;
    let store_port = ops::get_param(h, hvmop::PARAM_STORE_EVTCHN)
        .map_err(failed("hvm_op(get_param HVM_PARAM_STORE_EVTCHN)"))?;
    let boot = crate::boot_info().ok_or(InitError::NoBootInfo)?;
    let store = check_store(store_pfn, store_port, boot);
    let (img_start, img_end) = crate::image_range();
    let mut avoid = [(0u64, 0u64); 2 + crate::start_info::MAX_MODULES];
    avoid[0] = (img_start, img_end - img_start);
    avoid[1] = (store_pfn.saturating_mul(PAGE_SIZE as u64), PAGE_SIZE as u64);
    for (slot, m) in avoid[2..].iter_mut().zip(boot.modules()) {
        *slot = (m.paddr, m.size);
    }
    let window = window::plan(boot.memmap(), &avoid).ok_or(InitError::NoWindow)?;
    ops::add_to_physmap(h, xenmem::SPACE_SHARED_INFO, 0, window.shared_info() >> 12)
        .map_err(failed("memory_op(add_to_physmap shared_info)"))?;
    SHARED_INFO.store(window.shared_info(), Ordering::Release);
    let shinfo = shared_info_page().ok_or(InitError::NoWindow)?;
    let _ = shinfo.store_u8(shared_info::UPCALL_MASK, 0);
    ops::set_param(
        h,
        hvmop::PARAM_CALLBACK_IRQ,
        ops::callback_vector(UPCALL_VECTOR),
    )
    .map_err(failed("hvm_op(set_param HVM_PARAM_CALLBACK_IRQ)"))?;
    events::scan(&shinfo, &FIRED, true);
    Ok(Xen {
        info,
        version,
        window,
        shared_info: shinfo,
        store_params: (store_pfn, store_port),
        store,
    })
}

/// `sti; hlt; cli`: sleeps until an interrupt (the upcall among them).
fn halt() {
    // SAFETY: `sti; hlt` is atomic with respect to interrupts (the STI
    // shadow), so an upcall made due while interrupts were off wakes the
    // HLT; the handlers save what they use and touch only atomics;
    // interrupts are off again afterwards.
    unsafe { core::arch::asm!("sti", "hlt", "cli", options(nostack)) };
}

impl Xen {
    /// What CPUID said.
    pub fn info(&self) -> XenInfo {
        self.info
    }

    /// The version `xen_version` reports (major, minor).
    pub fn version(&self) -> (u16, u16) {
        self.version
    }

    /// This domain's id, if CPUID reports it.
    pub fn domid(&self) -> Option<DomId> {
        self.info.domid
    }

    /// The guest-physical (and linear) address of the hypercall page.
    pub fn hypercall_page(&self) -> u64 {
        hypercall_page_gpa()
    }

    /// Makes a hypercall exactly as given, for probing the hypervisor with
    /// malformed calls (programs use the typed operations): VMCALL with
    /// RAX = `nr` — all 64 bits, any number, whether or not the page has a
    /// stub for it (`iret`'s stub is `ud2`; this path never runs it) — and
    /// arguments 1–5 in RDI, RSI, RDX, R10, R8; returns RAX (negative
    /// [`Errno`] on failure).
    ///
    /// It is the path of every other hypercall, entered at the VMCALL of a
    /// stub [`init`] checked (after the stub's `mov eax, N`). If no checked
    /// stub ends in `ret` where Xen's do, it returns `-ENOSYS` without a
    /// VMCALL.
    ///
    /// # Safety
    ///
    /// The hypervisor acts on the call as on any other. Its pointer
    /// arguments let it read and write this guest's memory wherever they
    /// point (through the guest's page tables): every byte the call may
    /// write, by Xen's ABI for `nr` and its command, must be memory no live
    /// Rust object depends on (a buffer passed for the purpose, or
    /// something that is not RAM). And it can change hypervisor state the
    /// runtime relies on (close the store's port, move `shared_info` or
    /// grant-table frames, change the upcall, unmap the runtime's grant
    /// mappings): the call must leave those alone.
    pub unsafe fn raw_hypercall(&self, nr: u64, args: [u64; 5]) -> i64 {
        let entry = RAW_ENTRY.load(Ordering::Acquire);
        if entry == 0 {
            return -i64::from(Errno::ENOSYS.errno());
        }
        // SAFETY: `entry` is the VMCALL of a stub `init` checked, `ret`
        // included; what the call may touch is the caller's contract.
        unsafe { HypercallPage::call(entry, nr, args) }
    }

    /// The GPA window.
    pub fn window(&self) -> Window {
        self.window
    }

    /// `HVM_PARAM_STORE_PFN` and `HVM_PARAM_STORE_EVTCHN` as read at init.
    pub fn store_params(&self) -> (u64, u64) {
        self.store_params
    }

    /// The `shared_info` page.
    pub fn shared_info(&self) -> Page<'static> {
        self.shared_info
    }

    /// `HVMOP_get_param` of this domain.
    pub fn hvm_param(&self, index: u32) -> Result<u64, Errno> {
        ops::get_param(&HYPERCALLS, index)
    }

    /// A new port that domain `remote` may bind to.
    pub fn alloc_unbound(&self, remote: DomId) -> Result<Port, Errno> {
        ops::alloc_unbound(&HYPERCALLS, remote)
    }

    /// A new port connected to `remote`'s unbound port `remote_port`. It
    /// starts out fired (events sent while unbound were lost).
    pub fn bind_interdomain(&self, remote: DomId, remote_port: Port) -> Result<Port, Errno> {
        let port = ops::bind_interdomain(&HYPERCALLS, remote, remote_port)?;
        self.poll();
        Ok(port)
    }

    /// A new port for virtual IRQ `virq` on vCPU 0.
    pub fn bind_virq(&self, virq: u32) -> Result<Port, Errno> {
        ops::bind_virq(&HYPERCALLS, virq, 0)
    }

    /// Signals the other end of `port`.
    pub fn send(&self, port: Port) -> Result<(), Errno> {
        ops::send(&HYPERCALLS, port)
    }

    /// Closes `port` (an interdomain peer's end goes back to unbound) and
    /// forgets whether it fired.
    pub fn close(&self, port: Port) -> Result<(), Errno> {
        ops::close(&HYPERCALLS, port)?;
        if let Some(page) = shared_info_page() {
            events::clear_pending(&page, port);
        }
        FIRED.take(port);
        Ok(())
    }

    /// The state of `port`.
    pub fn status(&self, port: Port) -> Result<ChannelStatus, Errno> {
        ops::status(&HYPERCALLS, port).map(|(s, _vcpu)| s)
    }

    /// Stops upcalls for `port` (it still becomes pending).
    pub fn mask(&self, port: Port) {
        if let Some(page) = shared_info_page() {
            events::mask(&page, port);
        }
    }

    /// Re-enables `port` (the hypervisor delivers it if it is pending).
    pub fn unmask(&self, port: Port) -> Result<(), Errno> {
        ops::unmask(&HYPERCALLS, port)?;
        self.poll();
        Ok(())
    }

    /// Collects fired ports from `shared_info` now (the upcall does the
    /// same when interrupts are on).
    pub fn poll(&self) {
        let were = interrupts::are_enabled();
        interrupts::disable();
        if let Some(page) = shared_info_page() {
            events::scan(&page, &FIRED, false);
        }
        if were {
            interrupts::enable();
        }
    }

    /// Whether `port` fired since the last `take` (clears the flag).
    pub fn take(&self, port: Port) -> bool {
        self.poll();
        FIRED.take(port)
    }

    /// Whether `port` fired since the last `take` (leaves the flag).
    pub fn fired(&self, port: Port) -> bool {
        self.poll();
        FIRED.contains(port)
    }

    /// Sleeps until one of `ports` has fired and returns it (its flag
    /// stays set: [`Xen::take`] it). `None` at once if `ports` is empty.
    pub fn wait_any(&self, ports: &[Port]) -> Option<Port> {
        self.wait(ports, None)
    }

    /// As [`Xen::wait_any`], but gives up (`None`) at `deadline`.
    pub fn wait_any_until(&self, ports: &[Port], deadline: Instant) -> Option<Port> {
        self.wait(ports, Some(deadline))
    }

    /// The check runs with interrupts off and the sleep is `sti; hlt`, so
    /// an event arriving in between wakes the halt instead of being missed.
    /// A deadline needs the APIC timer ([`crate::irq::init`]). Without it
    /// (cloister gives PVH guests no LAPIC) the vCPU still halts — a
    /// spinning vCPU would keep the core from every other VM — and the
    /// deadline is checked whenever an event wakes it.
    fn wait(&self, ports: &[Port], deadline: Option<Instant>) -> Option<Port> {
        if ports.is_empty() {
            return None;
        }
        let were = interrupts::are_enabled();
        interrupts::disable();
        let fired = loop {
            if let Some(page) = shared_info_page() {
                events::scan(&page, &FIRED, false);
            }
            if let Some(p) = FIRED.first_of(ports) {
                break Some(p);
            }
            match deadline {
                None => halt(),
                Some(d) if time::now() >= d => break None,
                Some(d) if crate::irq::has_timer() => crate::irq::wait(Some(d)),
                Some(_) => halt(),
            }
        };
        if were {
            interrupts::enable();
        }
        fired
    }

    /// The connection to the store over this domain's ring (once).
    pub fn store(&'static self) -> Result<Store, StoreError> {
        static TAKEN: AtomicBool = AtomicBool::new(false);
        let (gpa, port) = self.store.ok_or(StoreError::NoStore)?;
        if TAKEN.swap(true, Ordering::AcqRel) {
            return Err(StoreError::InUse);
        }
        // SAFETY: `check_store` found the page outside usable RAM and the
        // image, identity mapped; only this one connection uses it.
        let page = unsafe { Page::from_raw(gpa as *mut u8) }.ok_or(StoreError::NoStore)?;
        Ok(XenStore::new(StoreRing {
            xen: self,
            page,
            port,
        }))
    }
}

/// The store connection over the domain's ring.
pub type Store = XenStore<StoreRing>;

/// The domain's store ring and its event channel, as a [`StoreLink`].
#[derive(Debug)]
pub struct StoreRing {
    xen: &'static Xen,
    page: Page<'static>,
    port: Port,
}

impl StoreRing {
    /// The store's event-channel port.
    pub fn port(&self) -> Port {
        self.port
    }
}

impl StoreLink for StoreRing {
    fn ring(&self) -> Page<'_> {
        self.page
    }

    fn notify(&mut self) -> Result<(), Errno> {
        self.xen.send(self.port)
    }

    fn wait(&mut self, deadline: Instant) -> bool {
        let woke = self.xen.wait_any_until(&[self.port], deadline).is_some();
        FIRED.take(self.port);
        woke
    }

    fn now(&self) -> Instant {
        time::now()
    }
}

/// The grant table (v1), in the window.
pub struct GrantTable {
    inner: spin::Mutex<Grants<'static, HypercallPage>>,
    frames: u32,
}

static GRANT_TABLE: spin::Once<Result<GrantTable, GrantError>> = spin::Once::new();

impl GrantTable {
    /// Places `frames` grant-table frames (512 entries each; at least 1, at
    /// most what `GNTTABOP_query_size` and the window allow) in the window,
    /// once: later calls return the first result.
    pub fn init(frames: u32) -> Result<&'static GrantTable, GrantError> {
        match GRANT_TABLE.call_once(|| Self::setup(frames.max(1))) {
            Ok(t) => Ok(t),
            Err(e) => Err(*e),
        }
    }

    /// The table, if [`GrantTable::init`] succeeded.
    pub fn get() -> Option<&'static GrantTable> {
        GRANT_TABLE.get()?.as_ref().ok()
    }

    fn setup(frames: u32) -> Result<GrantTable, GrantError> {
        let xen = get().ok_or(GrantError::NotInitialised)?;
        let h = &HYPERCALLS;
        let (_, max) =
            ops::query_size(h).map_err(|e| GrantError::from_op("grant_table_op(query_size)", e))?;
        let limit = max.min(window::MAX_GRANT_FRAMES);
        if frames > limit {
            return Err(GrantError::TooManyFrames {
                asked: frames,
                max: limit,
            });
        }
        let w = xen.window();
        let mut pages = alloc::vec::Vec::new();
        for i in 0..frames {
            let gpa = w.grant_frame(i);
            ops::add_to_physmap(h, xenmem::SPACE_GRANT_TABLE, u64::from(i), gpa >> 12).map_err(
                |errno| GrantError::Hypercall {
                    op: "memory_op(add_to_physmap grant_table)",
                    errno,
                },
            )?;
            // SAFETY: the frame was just placed at `gpa` in the window
            // (identity mapped, outside RAM) and stays there; only `Page`
            // accesses it.
            let page =
                unsafe { Page::from_raw(gpa as *mut u8) }.ok_or(GrantError::NotInitialised)?;
            pages.push(page);
        }
        Ok(GrantTable {
            inner: spin::Mutex::new(Grants::new(h, pages, w.map_base(), window::MAP_SLOTS)),
            frames,
        })
    }

    /// Frames placed.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Entries (the 8 reserved ones included).
    pub fn capacity(&self) -> u32 {
        self.inner.lock().capacity()
    }

    /// References granted now.
    pub fn granted(&self) -> u32 {
        self.inner.lock().granted()
    }

    /// Peer pages mapped now.
    pub fn mapped(&self) -> u32 {
        self.inner.lock().mapped()
    }

    /// Grants `domid` access to this domain's frame `gfn` (read-only if
    /// `readonly`); returns the reference (8 or above).
    pub fn grant_access(
        &self,
        domid: DomId,
        gfn: u64,
        readonly: bool,
    ) -> Result<GrantRef, GrantError> {
        self.inner.lock().grant_access(domid, gfn, readonly)
    }

    /// Ends grant `gref`; [`GrantError::InUse`] while the peer still has it
    /// mapped (the grant then stays, and the page must not be reused).
    pub fn end_access(&self, gref: GrantRef) -> Result<(), GrantError> {
        self.inner.lock().end_access(gref)
    }

    /// Maps `domid`'s grant `gref` at a free frame of the window.
    pub fn map(
        &self,
        domid: DomId,
        gref: GrantRef,
        readonly: bool,
    ) -> Result<MappedPage, GrantError> {
        let mut grants = self.inner.lock();
        let m = grants.map(domid, gref, readonly)?;
        // SAFETY: map_grant_ref succeeded at this window frame (identity
        // mapped, outside RAM); it stays mapped until the `MappedPage` is
        // unmapped or dropped, and `MappedPage::page` borrows it meanwhile.
        match unsafe { Page::from_raw(m.gpa as *mut u8) } {
            Some(page) => Ok(MappedPage { m, page }),
            None => {
                let _ = grants.unmap(m);
                Err(GrantError::NoFreeSlot)
            }
        }
    }

    /// Unmaps `page`. If the hypervisor refuses, its frame of the window is
    /// retired (never reused).
    pub fn unmap(&self, page: MappedPage) -> Result<(), GrantError> {
        let m = page.m;
        core::mem::forget(page);
        self.inner.lock().unmap(m)
    }
}

/// A peer's page mapped into the window; unmapped when dropped (or by
/// [`GrantTable::unmap`], which reports failure).
#[derive(Debug)]
pub struct MappedPage {
    m: Mapping,
    page: Page<'static>,
}

impl MappedPage {
    /// Its guest-physical address.
    pub fn gpa(&self) -> u64 {
        self.m.gpa
    }

    /// The hypervisor's handle for the mapping.
    pub fn handle(&self) -> u32 {
        self.m.handle
    }

    /// Mapped read-only: writing through [`MappedPage::page`] then stops
    /// the VM (the hypervisor refuses the access).
    pub fn readonly(&self) -> bool {
        self.m.readonly
    }

    /// Access to the page.
    pub fn page(&self) -> Page<'_> {
        self.page
    }
}

impl Drop for MappedPage {
    fn drop(&mut self) {
        if let Some(t) = GrantTable::get() {
            let _ = t.inner.lock().unmap(self.m);
        }
    }
}

/// A zeroed page of this domain's RAM to grant to a peer.
///
/// Keep it until [`GrantTable::end_access`] of every grant of it succeeded:
/// a peer with the page still mapped would see its next use.
#[derive(Debug)]
pub struct OwnedPage {
    region: DmaRegion,
    page: Page<'static>,
}

impl OwnedPage {
    /// A zeroed page from the heap.
    pub fn new() -> Result<OwnedPage, DmaError> {
        let region = DmaRegion::new(PAGE_SIZE)?;
        // SAFETY: the region is one page of heap memory, page aligned, owned
        // by the `OwnedPage` built here; it is only accessed through `Page`
        // (the region's byte-slice methods are not exposed), and
        // `OwnedPage::page` ties each view to the owner's lifetime.
        let page = unsafe { Page::from_raw(region.paddr() as *mut u8) }
            .ok_or(DmaError { len: PAGE_SIZE })?;
        Ok(OwnedPage { region, page })
    }

    /// Its guest frame number (what [`GrantTable::grant_access`] takes).
    pub fn gfn(&self) -> u64 {
        self.region.paddr() >> 12
    }

    /// Access to the page.
    pub fn page(&self) -> Page<'_> {
        self.page
    }
}
