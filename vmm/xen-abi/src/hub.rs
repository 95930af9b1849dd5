//! The hub: every domain's event channels, grant tables, physmap placements
//! and HVM params, and the rules that connect them.
//!
//! One [`Hub`] serves all domains, so an operation that touches two domains
//! (bind, close, send, map, copy) updates both ends in one call. The caller
//! of every operation is a domain id supplied by the VMM (the domain whose
//! vCPU exited), never a value from the guest; a guest names another domain
//! only where Xen lets it (a bind's remote, a grant's granter, a copy's
//! gref side), and the hub then checks that domain's own consent (an
//! unbound port naming the caller, a grant entry naming the caller).
//!
//! All calls must be serialized (one lock around the hub); the per-page
//! atomicity against running guests is the [`SharedPage`] implementation's.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use crate::abi::gnttabop::{
    COPY_LAYOUT_32, COPY_LAYOUT_64, GNTMAP_CONTAINS_PTE, GNTMAP_DEVICE_MAP, GNTMAP_HOST_MAP,
    GNTMAP_READONLY,
};
use crate::abi::{
    hvmop, virq, xenmem, xenver, DomId, GrantHandle, GrantRef, Port, DOMID_SELF, PAGE_SHIFT,
    PAGE_SIZE,
};
use crate::decode::{
    decode, elem, span, AddToPhysmap, CopyPtr, EvtchnOp, GnttabOp, GrantCopy, HvmOp, Hypercall,
    MapGrantRef, Mode, Regs, UnmapGrantRef, VersionOp,
};
use crate::error::{GntStatus, XenError, GNTST_OKAY};
use crate::evtchn::{Channel, ChannelStatus, PortEntry, PortTable};
use crate::gnttab::{self, locate, Active, EntryV1, GrantTable};
use crate::mem::{GrantMapping, GuestMem, Platform, SharedPage, SpecialPage};
use crate::shinfo::{self, Width};

/// Limits and ABI of one domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainConfig {
    /// vCPUs (at most 32: the `vcpu_info`s inside `shared_info`).
    pub nr_vcpus: u32,
    /// Event-channel ports `0..max_ports` (capped at the width's 2-level limit).
    pub max_ports: u32,
    /// Grant-table frames the domain may grow to.
    pub max_grant_frames: u32,
    /// Grant mappings the domain may hold at once.
    pub max_maptrack: u32,
    /// Word width of the domain's `shared_info` bitmaps.
    pub width: Width,
}

impl Default for DomainConfig {
    fn default() -> Self {
        DomainConfig {
            nr_vcpus: 1,
            max_ports: 1024,
            max_grant_frames: 64,
            max_maptrack: 1024,
            width: Width::W64,
        }
    }
}

/// Hub-wide settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HubConfig {
    /// Reported by `XENVER_version` (major, minor).
    pub version: (u16, u16),
    /// Feature word 0 reported by `XENVER_get_features`.
    pub features: u32,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            version: (4, 19),
            features: (1 << xenver::FEAT_AUTO_TRANSLATED_PHYSMAP)
                | (1 << xenver::FEAT_HVM_CALLBACK_VECTOR),
        }
    }
}

/// A vCPU whose `evtchn_upcall_pending` just went 0 → 1: the VMM must wake
/// it (seL4 notification to its thread) and inject its upcall vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Upcall {
    /// The domain.
    pub dom: DomId,
    /// The vCPU.
    pub vcpu: u32,
}

/// How a vCPU's event upcall is delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpcallRoute {
    /// `HVMOP_set_evtchn_upcall_vector`: set the vector in the vCPU's LAPIC
    /// IRR on each [`Upcall`] (edge; the guest EOIs it).
    Lapic(u8),
    /// `HVM_PARAM_CALLBACK_IRQ` of vector type: inject the vector directly
    /// (no LAPIC state) at every VM entry while
    /// [`Hub::upcall_pending`] holds and the guest accepts interrupts.
    CallbackVector(u8),
}

/// The result of one hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The return value (0, a positive value, or `-errno`).
    pub ret: i64,
    /// A vCPU to notify, if the call made an upcall due.
    pub upcall: Option<Upcall>,
}

impl Outcome {
    fn ok(ret: i64) -> Outcome {
        Outcome { ret, upcall: None }
    }
    fn err(e: XenError) -> Outcome {
        Outcome::ok(e.ret())
    }
    /// The value for the guest's RAX (in 32-bit mode, EAX zero-extended).
    pub fn rax(&self, mode: Mode) -> u64 {
        match mode {
            Mode::Long => self.ret as u64,
            Mode::Compat => u64::from(self.ret as i32 as u32),
        }
    }
    /// The error, if the call failed as a whole.
    pub fn error(&self) -> Option<i64> {
        (self.ret < 0).then_some(self.ret)
    }
}

/// The HVM params a domain has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Params {
    callback_irq: u64,
    store_pfn: u64,
    store_evtchn: u64,
    console_pfn: u64,
    console_evtchn: u64,
}

impl Params {
    fn slot(&mut self, index: u32) -> Option<&mut u64> {
        Some(match index {
            hvmop::PARAM_CALLBACK_IRQ => &mut self.callback_irq,
            hvmop::PARAM_STORE_PFN => &mut self.store_pfn,
            hvmop::PARAM_STORE_EVTCHN => &mut self.store_evtchn,
            hvmop::PARAM_CONSOLE_PFN => &mut self.console_pfn,
            hvmop::PARAM_CONSOLE_EVTCHN => &mut self.console_evtchn,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug)]
struct Domain {
    cfg: DomainConfig,
    ports: PortTable,
    grants: GrantTable,
    shared_info_gfn: Option<u64>,
    params: Params,
    upcall_vector: Vec<u8>,
}

impl Domain {
    fn special_at(&self, gfn: u64) -> Option<SpecialPage> {
        if self.shared_info_gfn == Some(gfn) {
            return Some(SpecialPage::SharedInfo);
        }
        (0..self.grants.nr_frames())
            .find(|&i| self.grants.frame_gfn(i) == Some(gfn))
            .map(SpecialPage::GrantFrame)
    }

    fn special_gfn(&self, page: SpecialPage) -> Option<u64> {
        match page {
            SpecialPage::SharedInfo => self.shared_info_gfn,
            SpecialPage::GrantFrame(i) => self.grants.frame_gfn(i),
        }
    }

    fn set_special_gfn(&mut self, page: SpecialPage, gfn: Option<u64>) {
        match page {
            SpecialPage::SharedInfo => self.shared_info_gfn = gfn,
            SpecialPage::GrantFrame(i) => self.grants.set_frame_gfn(i, gfn),
        }
    }
}

/// One side of a copy, resolved.
#[derive(Clone, Copy, Debug)]
struct Side {
    dom: DomId,
    gfn: u64,
    offset: usize,
    /// (granter, gref, write) if the side holds a temporary pin.
    pin: Option<(DomId, GrantRef, bool)>,
}

/// All domains' inter-VM state. See the module docs.
#[derive(Clone, Debug, Default)]
pub struct Hub {
    cfg: HubConfig,
    domains: BTreeMap<DomId, Domain>,
}

/// GFNs at or above this are beyond any x86-64 physical address (52 bits).
const GFN_LIMIT: u64 = 1 << (52 - PAGE_SHIFT);

impl Hub {
    /// An empty hub.
    pub fn new(cfg: HubConfig) -> Hub {
        Hub {
            cfg,
            domains: BTreeMap::new(),
        }
    }

    // ----- domains -------------------------------------------------------

    /// Adds domain `id` with one grant-table frame (Xen's initial size).
    /// `-EEXIST` if present, `-EINVAL` for a reserved id or a bad config,
    /// `-ENOMEM` if the VMM can't allocate the first grant frame.
    ///
    /// `-EBUSY` while other domains still hold orphaned mappings of a
    /// removed domain `id`'s grants ([`Hub::orphaned_mappings`]): the id is
    /// a zombie's until the last of them is unmapped, so a new domain never
    /// inherits them (Xen keeps a dying domain's id taken too; it reports
    /// `-EEXIST`, this hub `-EBUSY` so the VMM can tell a zombie from a live
    /// domain). Checked before the VMM is asked for anything.
    pub fn add_domain<P: Platform>(
        &mut self,
        id: DomId,
        cfg: DomainConfig,
        plat: &mut P,
    ) -> Result<(), XenError> {
        if id >= crate::abi::DOMID_FIRST_RESERVED
            || cfg.nr_vcpus == 0
            || cfg.nr_vcpus > crate::abi::shared_info::LEGACY_MAX_VCPUS
            || cfg.max_grant_frames == 0
        {
            return Err(XenError::Inval);
        }
        if self.domains.contains_key(&id) {
            return Err(XenError::Exist);
        }
        if self.orphaned_mappings(id) != 0 {
            return Err(XenError::Busy);
        }
        let max_ports = cfg.max_ports.min(cfg.width.max_ports());
        let mut grants = GrantTable::new(cfg.max_grant_frames, cfg.max_maptrack);
        if !plat.grow_grant_table(id, 1) {
            return Err(XenError::NoMem);
        }
        grants.set_frames(1);
        let vcpus = usize::try_from(cfg.nr_vcpus).map_err(|_| XenError::Inval)?;
        self.domains.insert(
            id,
            Domain {
                cfg,
                ports: PortTable::new(max_ports, cfg.nr_vcpus),
                grants,
                shared_info_gfn: None,
                params: Params::default(),
                upcall_vector: alloc::vec![0; vcpus],
            },
        );
        Ok(())
    }

    /// Removes domain `id` as Xen's domain destruction does: closes its
    /// ports (peers go back to unbound, naming `id`) and unmaps every grant
    /// mapping `id` holds (through [`Platform::unmap_grant`], dropping its
    /// pins in the granters' tables). `-ESRCH` if there is no such domain.
    ///
    /// Mappings that *other* domains hold of `id`'s grants stay in place, as
    /// in Xen, where the dead domain lingers as a zombie that keeps its pages
    /// until every foreign mapping of them is gone: such an *orphaned*
    /// mapping keeps working (the grantee reads and writes the page as
    /// before) until the grantee unmaps it with `GNTTABOP_unmap_grant_ref`
    /// or is removed itself; both call [`Platform::unmap_grant`] as usual,
    /// and there is no pin left to drop. So the VMM must keep a removed
    /// domain's frames (never give them to another domain) while
    /// [`Hub::orphaned_mappings`] counts any. New maps and copies of `id`'s
    /// grants fail with `GNTST_bad_domain`, and [`Hub::add_domain`] refuses
    /// `id` with `-EBUSY` until the last orphaned mapping is gone.
    pub fn remove_domain<P: Platform>(&mut self, id: DomId, plat: &mut P) -> Result<(), XenError> {
        let d = self.domains.get(&id).ok_or(XenError::Srch)?;
        let ports: Vec<Port> = d.ports.in_use().map(|(p, _)| p).collect();
        let mine: Vec<GrantHandle> = d.grants.mappings().map(|(h, _)| h).collect();
        for p in ports {
            let _ = self.evtchn_close(id, p, plat);
        }
        for h in mine {
            let _ = self.unmap_handle(id, h, plat);
        }
        self.domains.remove(&id);
        Ok(())
    }

    /// How many grant mappings other domains still hold of removed domain
    /// `granter`'s grants ("orphaned": see [`Hub::remove_domain`]); 0 while
    /// `granter` exists. While it is not 0, `granter`'s frames must stay
    /// allocated and [`Hub::add_domain`] refuses the id.
    pub fn orphaned_mappings(&self, granter: DomId) -> usize {
        if self.domains.contains_key(&granter) {
            return 0;
        }
        self.domains
            .values()
            .flat_map(|d| d.grants.mappings())
            .filter(|(_, m)| m.granter == granter)
            .count()
    }

    /// Whether domain `id` exists.
    pub fn has_domain(&self, id: DomId) -> bool {
        self.domains.contains_key(&id)
    }

    /// Domain ids, ascending.
    pub fn domain_ids(&self) -> impl Iterator<Item = DomId> + '_ {
        self.domains.keys().copied()
    }

    fn dom(&self, id: DomId) -> Result<&Domain, XenError> {
        self.domains.get(&id).ok_or(XenError::Srch)
    }

    fn dom_mut(&mut self, id: DomId) -> Result<&mut Domain, XenError> {
        self.domains.get_mut(&id).ok_or(XenError::Srch)
    }

    /// Resolves a domain argument that must be the caller: `DOMID_SELF` or
    /// the caller's id; another existing domain is `-EPERM`, none `-ESRCH`.
    fn target(&self, caller: DomId, dom: DomId) -> Result<DomId, XenError> {
        if !self.domains.contains_key(&caller) {
            return Err(XenError::Srch);
        }
        if dom == DOMID_SELF || dom == caller {
            Ok(caller)
        } else if self.domains.contains_key(&dom) {
            Err(XenError::Perm)
        } else {
            Err(XenError::Srch)
        }
    }

    fn gnt_target(&self, caller: DomId, dom: DomId) -> Result<DomId, GntStatus> {
        self.target(caller, dom).map_err(|e| match e {
            XenError::Perm => GntStatus::PermissionDenied,
            _ => GntStatus::BadDomain,
        })
    }

    fn resolve(caller: DomId, dom: DomId) -> DomId {
        if dom == DOMID_SELF {
            caller
        } else {
            dom
        }
    }

    // ----- queries -------------------------------------------------------

    /// The state of `dom`'s `port` (`Free` if unused), `None` if either is invalid.
    pub fn port(&self, dom: DomId, port: Port) -> Option<PortEntry> {
        self.domains.get(&dom)?.ports.get(port)
    }

    /// `dom`'s ports in use.
    pub fn ports(&self, dom: DomId) -> impl Iterator<Item = (Port, PortEntry)> + '_ {
        self.domains
            .get(&dom)
            .into_iter()
            .flat_map(|d| d.ports.in_use())
    }

    /// `dom`'s grant-table state (size, placements, pins, mappings held).
    pub fn grant_table(&self, dom: DomId) -> Option<&GrantTable> {
        self.domains.get(&dom).map(|d| &d.grants)
    }

    /// Where `dom` placed `page`, if it did.
    pub fn special_gfn(&self, dom: DomId, page: SpecialPage) -> Option<u64> {
        self.domains.get(&dom)?.special_gfn(page)
    }

    /// How `dom`'s vCPU `vcpu` receives upcalls, if the guest set it up.
    pub fn upcall_route(&self, dom: DomId, vcpu: u32) -> Option<UpcallRoute> {
        let d = self.domains.get(&dom)?;
        let v = *d.upcall_vector.get(usize::try_from(vcpu).ok()?)?;
        if v != 0 {
            return Some(UpcallRoute::Lapic(v));
        }
        let cb = d.params.callback_irq;
        if cb >> hvmop::CALLBACK_TYPE_SHIFT == hvmop::CALLBACK_TYPE_VECTOR {
            let vector = (cb & 0xFF) as u8;
            return (vector != 0).then_some(UpcallRoute::CallbackVector(vector));
        }
        None
    }

    /// Whether `dom`'s vCPU `vcpu` has `evtchn_upcall_pending` set.
    pub fn upcall_pending<P: Platform>(&self, dom: DomId, vcpu: u32, plat: &mut P) -> bool {
        plat.shared_info(dom)
            .and_then(|p| shinfo::upcall_pending(p, vcpu))
            .unwrap_or(false)
    }

    /// An HVM param's value as the toolstack sees it (any allow-listed index).
    pub fn param(&self, dom: DomId, index: u32) -> Option<u64> {
        let mut p = self.domains.get(&dom)?.params;
        p.slot(index).map(|v| *v)
    }

    // ----- event channels ------------------------------------------------

    /// Sets `port` of `dom` pending on its vCPU; the upcall to raise, if any.
    fn set_pending<P: Platform>(&self, dom: DomId, port: Port, plat: &mut P) -> Option<Upcall> {
        let d = self.domains.get(&dom)?;
        let e = d.ports.get(port)?;
        let page = plat.shared_info(dom)?;
        shinfo::set_pending(page, d.cfg.width, port, e.vcpu)?
            .then_some(Upcall { dom, vcpu: e.vcpu })
    }

    /// `EVTCHNOP_alloc_unbound`: a fresh port of `dom` (the caller) that
    /// only `remote_dom` may bind to.
    pub fn evtchn_alloc_unbound(
        &mut self,
        caller: DomId,
        dom: DomId,
        remote_dom: DomId,
    ) -> Result<Port, XenError> {
        let d = self.target(caller, dom)?;
        let remote = Self::resolve(caller, remote_dom);
        let t = &mut self.dom_mut(d)?.ports;
        let port = t.find_free()?;
        t.set(
            port,
            PortEntry {
                chan: Channel::Unbound { remote },
                vcpu: 0,
            },
        )?;
        Ok(port)
    }

    /// `EVTCHNOP_bind_interdomain`: connects a fresh local port to
    /// `remote_dom`'s `remote_port`, which must be unbound and name the
    /// caller (`-EINVAL` otherwise). Like Xen, marks the new local port
    /// pending, since events sent while unbound were dropped.
    pub fn evtchn_bind_interdomain<P: Platform>(
        &mut self,
        caller: DomId,
        remote_dom: DomId,
        remote_port: Port,
        plat: &mut P,
    ) -> Result<(Port, Option<Upcall>), XenError> {
        let rd = Self::resolve(caller, remote_dom);
        let lport = self.dom(caller)?.ports.find_free()?;
        let r = self.dom(rd)?;
        let re = r.ports.get(remote_port).ok_or(XenError::Inval)?;
        if re.chan != (Channel::Unbound { remote: caller }) {
            return Err(XenError::Inval);
        }
        self.dom_mut(caller)?.ports.set(
            lport,
            PortEntry {
                chan: Channel::Interdomain {
                    remote: rd,
                    remote_port,
                },
                vcpu: 0,
            },
        )?;
        self.dom_mut(rd)?.ports.set(
            remote_port,
            PortEntry {
                chan: Channel::Interdomain {
                    remote: caller,
                    remote_port: lport,
                },
                vcpu: re.vcpu,
            },
        )?;
        Ok((lport, self.set_pending(caller, lport, plat)))
    }

    /// `EVTCHNOP_bind_virq`: a fresh port for `virq` on `vcpu` (global
    /// VIRQs only on vCPU 0). `-EINVAL`, `-ENOENT` (no such vCPU), `-EEXIST`.
    pub fn evtchn_bind_virq(
        &mut self,
        caller: DomId,
        virq: u32,
        vcpu: u32,
    ) -> Result<Port, XenError> {
        if virq >= virq::NR_VIRQS || (virq::is_global(virq) && vcpu != 0) {
            return Err(XenError::Inval);
        }
        let t = &mut self.dom_mut(caller)?.ports;
        if vcpu >= t.nr_vcpus() {
            return Err(XenError::NoEnt);
        }
        if t.virq_port(vcpu, virq) != Some(0) {
            return Err(XenError::Exist);
        }
        let port = t.find_free()?;
        t.set(
            port,
            PortEntry {
                chan: Channel::Virq { virq },
                vcpu,
            },
        )?;
        t.set_virq_port(vcpu, virq, port);
        Ok(port)
    }

    /// `EVTCHNOP_close`: frees a local port; an interdomain peer goes back
    /// to unbound (naming the caller). `-EINVAL` for a free or invalid port.
    pub fn evtchn_close<P: Platform>(
        &mut self,
        caller: DomId,
        port: Port,
        plat: &mut P,
    ) -> Result<(), XenError> {
        let d = self.dom_mut(caller)?;
        let e = d.ports.get(port).ok_or(XenError::Inval)?;
        match e.chan {
            Channel::Free | Channel::Reserved => return Err(XenError::Inval),
            Channel::Unbound { .. } => {}
            Channel::Virq { virq } => {
                for v in 0..d.ports.nr_vcpus() {
                    if d.ports.virq_port(v, virq) == Some(port) {
                        d.ports.set_virq_port(v, virq, 0);
                    }
                }
            }
            Channel::Interdomain {
                remote,
                remote_port,
            } => {
                if let Some(r) = self.domains.get_mut(&remote) {
                    if let Some(re) = r.ports.get(remote_port) {
                        if re.chan
                            == (Channel::Interdomain {
                                remote: caller,
                                remote_port: port,
                            })
                        {
                            r.ports.set(
                                remote_port,
                                PortEntry {
                                    chan: Channel::Unbound { remote: caller },
                                    vcpu: re.vcpu,
                                },
                            )?;
                        }
                    }
                }
            }
        }
        let d = self.dom_mut(caller)?;
        let width = d.cfg.width;
        d.ports.set(
            port,
            PortEntry {
                chan: Channel::Free,
                vcpu: 0,
            },
        )?;
        if let Some(page) = plat.shared_info(caller) {
            let _ = shinfo::clear_pending(page, width, port);
        }
        Ok(())
    }

    /// `EVTCHNOP_send`: sets the peer's port pending. A send on an unbound
    /// port is dropped silently (as Xen does); other states are `-EINVAL`.
    pub fn evtchn_send<P: Platform>(
        &mut self,
        caller: DomId,
        port: Port,
        plat: &mut P,
    ) -> Result<Option<Upcall>, XenError> {
        let e = self.dom(caller)?.ports.get(port).ok_or(XenError::Inval)?;
        match e.chan {
            Channel::Interdomain {
                remote,
                remote_port,
            } => Ok(self.set_pending(remote, remote_port, plat)),
            Channel::Unbound { .. } => Ok(None),
            _ => Err(XenError::Inval),
        }
    }

    /// `EVTCHNOP_status` of the caller's own `port`.
    pub fn evtchn_status(
        &self,
        caller: DomId,
        dom: DomId,
        port: Port,
    ) -> Result<ChannelStatus, XenError> {
        let d = self.target(caller, dom)?;
        let e = self.dom(d)?.ports.get(port).ok_or(XenError::Inval)?;
        Ok(e.status())
    }

    /// `EVTCHNOP_bind_vcpu`: re-targets an unbound, interdomain or global
    /// VIRQ port to `vcpu` (`-ENOENT` if no such vCPU, `-EINVAL` otherwise).
    pub fn evtchn_bind_vcpu(
        &mut self,
        caller: DomId,
        port: Port,
        vcpu: u32,
    ) -> Result<(), XenError> {
        let t = &mut self.dom_mut(caller)?.ports;
        if vcpu >= t.nr_vcpus() {
            return Err(XenError::NoEnt);
        }
        let mut e = t.get(port).ok_or(XenError::Inval)?;
        match e.chan {
            Channel::Unbound { .. } | Channel::Interdomain { .. } => {}
            Channel::Virq { virq } if virq::is_global(virq) => {}
            _ => return Err(XenError::Inval),
        }
        e.vcpu = vcpu;
        t.set(port, e)
    }

    /// `EVTCHNOP_unmask`: clears the mask and delivers the port if pending.
    pub fn evtchn_unmask<P: Platform>(
        &mut self,
        caller: DomId,
        port: Port,
        plat: &mut P,
    ) -> Result<Option<Upcall>, XenError> {
        let d = self.dom(caller)?;
        let e = d.ports.get(port).ok_or(XenError::Inval)?;
        let Some(page) = plat.shared_info(caller) else {
            return Ok(None);
        };
        Ok(shinfo::unmask(page, d.cfg.width, port, e.vcpu)
            .unwrap_or(false)
            .then_some(Upcall {
                dom: caller,
                vcpu: e.vcpu,
            }))
    }

    /// Raises `virq` in `dom` (for a per-vCPU VIRQ on `vcpu`, a global one on
    /// whatever vCPU its port notifies). `None` if unbound or no upcall is due.
    pub fn raise_virq<P: Platform>(
        &self,
        dom: DomId,
        virq: u32,
        vcpu: u32,
        plat: &mut P,
    ) -> Option<Upcall> {
        let d = self.domains.get(&dom)?;
        let on = if virq::is_global(virq) { 0 } else { vcpu };
        let port = d.ports.virq_port(on, virq)?;
        if port == 0 {
            return None;
        }
        self.set_pending(dom, port, plat)
    }

    /// The toolstack's `alloc_unbound` on behalf of `dom` (e.g. the store's
    /// channel, before `dom` runs).
    pub fn toolstack_alloc_unbound(&mut self, dom: DomId, remote: DomId) -> Result<Port, XenError> {
        self.evtchn_alloc_unbound(dom, DOMID_SELF, remote)
    }

    // ----- grant tables --------------------------------------------------

    fn grow_grants<P: Platform>(&mut self, dom: DomId, nr: u32, plat: &mut P) -> bool {
        let Some(d) = self.domains.get_mut(&dom) else {
            return false;
        };
        if nr <= d.grants.nr_frames() {
            return true;
        }
        if nr > d.grants.max_frames() || !plat.grow_grant_table(dom, nr) {
            return false;
        }
        d.grants.set_frames(nr);
        true
    }

    /// `GNTTABOP_setup_table`: grows the caller's table to `nr_frames`.
    pub fn gnttab_setup_table<P: Platform>(
        &mut self,
        caller: DomId,
        dom: DomId,
        nr_frames: u32,
        plat: &mut P,
    ) -> Result<(), GntStatus> {
        let d = self.gnt_target(caller, dom)?;
        if !self.grow_grants(d, nr_frames, plat) {
            return Err(GntStatus::GeneralError);
        }
        Ok(())
    }

    /// `GNTTABOP_query_size`: (current frames, maximum frames).
    pub fn gnttab_query_size(&self, caller: DomId, dom: DomId) -> Result<(u32, u32), GntStatus> {
        let d = self.gnt_target(caller, dom)?;
        let g = &self.domains.get(&d).ok_or(GntStatus::BadDomain)?.grants;
        Ok((g.nr_frames(), g.max_frames()))
    }

    /// Pins `granter`'s entry `gref` for `grantee`: checks it (type, domid,
    /// read-only vs `write`; `map` also refuses sub-page grants), sets
    /// `GTF_reading`/`GTF_writing`, counts the pin. Returns the frame.
    fn pin<P: Platform>(
        &mut self,
        granter: DomId,
        gref: GrantRef,
        grantee: DomId,
        write: bool,
        map: bool,
        plat: &mut P,
    ) -> Result<u64, GntStatus> {
        let g = self.domains.get(&granter).ok_or(GntStatus::BadDomain)?;
        if gref >= g.grants.nr_entries() {
            return Err(GntStatus::BadGntref);
        }
        let existing = g.grants.active(gref).copied();
        if existing.is_some_and(|a| a.grantee != grantee) {
            return Err(GntStatus::GeneralError);
        }
        let (fi, off) = locate(gref);
        let page = plat
            .grant_frame(granter, fi)
            .ok_or(GntStatus::GeneralError)?;
        gnttab::set_status(page, off, grantee, write, map)?;
        let mut act = match existing {
            Some(a) => a,
            None => Active {
                grantee,
                frame: EntryV1::read(page, off).map_or(u64::MAX, |e| u64::from(e.frame)),
                readers: 0,
                writers: 0,
            },
        };
        let counted = if write {
            act.writers.checked_add(1).map(|w| act.writers = w)
        } else {
            act.readers.checked_add(1).map(|r| act.readers = r)
        };
        let status = if counted.is_none() {
            Err(GntStatus::GeneralError)
        } else if existing.is_none() && plat.ram_page(granter, act.frame).is_none() {
            Err(GntStatus::BadPage)
        } else {
            Ok(())
        };
        if let Err(e) = status {
            // Undo the flags this attempt may have set.
            if let Some(page) = plat.grant_frame(granter, fi) {
                gnttab::sync_flags(page, off, existing.as_ref());
            }
            return Err(e);
        }
        if let Some(d) = self.domains.get_mut(&granter) {
            d.grants.active.insert(gref, act);
        }
        Ok(act.frame)
    }

    /// Drops one pin taken by [`Hub::pin`] and clears flags no longer held.
    /// Nothing to do if the granter is gone (an orphaned mapping: its pins
    /// went with it, and [`Hub::add_domain`] keeps the id free meanwhile).
    fn unpin<P: Platform>(&mut self, granter: DomId, gref: GrantRef, write: bool, plat: &mut P) {
        let Some(d) = self.domains.get_mut(&granter) else {
            return;
        };
        let Some(a) = d.grants.active.get_mut(&gref) else {
            return;
        };
        if write {
            a.writers = a.writers.saturating_sub(1);
        } else {
            a.readers = a.readers.saturating_sub(1);
        }
        let left = *a;
        if left.total() == 0 {
            d.grants.active.remove(&gref);
        }
        let (fi, off) = locate(gref);
        if let Some(page) = plat.grant_frame(granter, fi) {
            gnttab::sync_flags(page, off, (left.total() != 0).then_some(&left));
        }
    }

    /// `GNTTABOP_map_grant_ref` (HVM: `GNTMAP_host_map`, `host_addr` a
    /// guest-physical address): checks the granter's entry, pins it, has the
    /// VMM map the frame at `host_addr >> 12`, and returns the handle.
    pub fn gnttab_map<P: Platform>(
        &mut self,
        caller: DomId,
        req: &MapGrantRef,
        plat: &mut P,
    ) -> Result<GrantHandle, GntStatus> {
        if req.flags & (GNTMAP_HOST_MAP | GNTMAP_DEVICE_MAP) == 0 {
            return Err(GntStatus::BadGntref);
        }
        if req.flags & GNTMAP_HOST_MAP == 0 || req.flags & GNTMAP_CONTAINS_PTE != 0 {
            return Err(GntStatus::GeneralError);
        }
        let granter = Self::resolve(caller, req.dom);
        if !self.domains.contains_key(&granter) {
            return Err(GntStatus::BadDomain);
        }
        let me = self.domains.get(&caller).ok_or(GntStatus::BadDomain)?;
        let handle = me.grants.free_handle().ok_or(GntStatus::NoDeviceSpace)?;
        let gfn = req.host_addr >> PAGE_SHIFT;
        if gfn >= GFN_LIMIT || me.grants.has_mapping_at(gfn) || me.special_at(gfn).is_some() {
            return Err(GntStatus::GeneralError);
        }
        let write = req.flags & GNTMAP_READONLY == 0;
        let frame = self.pin(granter, req.gref, caller, write, true, plat)?;
        let m = GrantMapping {
            grantee: caller,
            gfn,
            granter,
            gref: req.gref,
            frame,
            writable: write,
        };
        if !plat.map_grant(&m) {
            self.unpin(granter, req.gref, write, plat);
            return Err(GntStatus::GeneralError);
        }
        let inserted = self
            .domains
            .get_mut(&caller)
            .is_some_and(|d| d.grants.insert_mapping(handle, m));
        if !inserted {
            plat.unmap_grant(&m);
            self.unpin(granter, req.gref, write, plat);
            return Err(GntStatus::GeneralError);
        }
        Ok(handle)
    }

    fn unmap_handle<P: Platform>(
        &mut self,
        caller: DomId,
        handle: GrantHandle,
        plat: &mut P,
    ) -> Result<(), GntStatus> {
        let m = self
            .domains
            .get_mut(&caller)
            .and_then(|d| d.grants.take_mapping(handle))
            .ok_or(GntStatus::BadHandle)?;
        plat.unmap_grant(&m);
        self.unpin(m.granter, m.gref, m.writable, plat);
        Ok(())
    }

    /// `GNTTABOP_unmap_grant_ref`: has the VMM remove the mapping, then drops
    /// the pin (clearing `GTF_writing`/`GTF_reading` when none remain). An
    /// orphaned mapping (its granter removed) is unmapped the same way and
    /// has no pin to drop.
    pub fn gnttab_unmap<P: Platform>(
        &mut self,
        caller: DomId,
        req: &UnmapGrantRef,
        plat: &mut P,
    ) -> Result<(), GntStatus> {
        let m = *self
            .domains
            .get(&caller)
            .and_then(|d| d.grants.mapping(req.handle))
            .ok_or(GntStatus::BadHandle)?;
        if req.host_addr != 0 && req.host_addr >> PAGE_SHIFT != m.gfn {
            return Err(GntStatus::GeneralError);
        }
        if req.dev_bus_addr != 0 {
            return Err(GntStatus::BadDevAddr);
        }
        self.unmap_handle(caller, req.handle, plat)
    }

    fn copy_side<P: Platform>(
        &mut self,
        caller: DomId,
        ptr: CopyPtr,
        write: bool,
        plat: &mut P,
    ) -> Result<Side, GntStatus> {
        match ptr {
            CopyPtr::Gref { dom, gref, offset } => {
                let granter = Self::resolve(caller, dom);
                let frame = self.pin(granter, gref, caller, write, false, plat)?;
                Ok(Side {
                    dom: granter,
                    gfn: frame,
                    offset: usize::from(offset),
                    pin: Some((granter, gref, write)),
                })
            }
            CopyPtr::Gmfn { dom, gfn, offset } => Ok(Side {
                dom: self.gnt_target(caller, dom)?,
                gfn,
                offset: usize::from(offset),
                pin: None,
            }),
        }
    }

    fn release<P: Platform>(&mut self, s: &Side, plat: &mut P) {
        if let Some((g, r, w)) = s.pin {
            self.unpin(g, r, w, plat);
        }
    }

    /// `GNTTABOP_copy`: copies `len` bytes; each side is a grant reference
    /// (checked and pinned for the copy's duration, like a mapping) or a
    /// frame of the caller's own RAM. Offset + length must stay in the page.
    pub fn gnttab_copy<P: Platform>(
        &mut self,
        caller: DomId,
        req: &GrantCopy,
        plat: &mut P,
    ) -> Result<(), GntStatus> {
        let offset_of = |p: &CopyPtr| match *p {
            CopyPtr::Gref { offset, .. } | CopyPtr::Gmfn { offset, .. } => usize::from(offset),
        };
        let len = usize::from(req.len);
        for p in [&req.source, &req.dest] {
            if offset_of(p).saturating_add(len) > PAGE_SIZE {
                return Err(GntStatus::BadCopyArg);
            }
        }
        let src = self.copy_side(caller, req.source, false, plat)?;
        let dst = match self.copy_side(caller, req.dest, true, plat) {
            Ok(d) => d,
            Err(e) => {
                self.release(&src, plat);
                return Err(e);
            }
        };
        let result = Self::copy_bytes(&src, &dst, len, plat);
        self.release(&dst, plat);
        self.release(&src, plat);
        result
    }

    fn copy_bytes<P: Platform>(
        src: &Side,
        dst: &Side,
        len: usize,
        plat: &mut P,
    ) -> Result<(), GntStatus> {
        let mut buf = Vec::new();
        buf.try_reserve_exact(len)
            .map_err(|_| GntStatus::GeneralError)?;
        buf.resize(len, 0u8);
        plat.ram_page(src.dom, src.gfn)
            .ok_or(GntStatus::BadPage)?
            .read(src.offset, &mut buf)
            .ok_or(GntStatus::BadCopyArg)?;
        plat.ram_page(dst.dom, dst.gfn)
            .ok_or(GntStatus::BadPage)?
            .write(dst.offset, &buf)
            .ok_or(GntStatus::BadCopyArg)
    }

    /// `GNTTABOP_set_version`: only version 1 is offered.
    pub fn gnttab_set_version(&self, caller: DomId, version: u32) -> Result<(), XenError> {
        self.dom(caller)?;
        match version {
            1 => Ok(()),
            2 => Err(XenError::OpNotSupp),
            _ => Err(XenError::Inval),
        }
    }

    /// The toolstack seeds entry `gref` of `dom`'s table granting `grantee`
    /// frame `gfn` (as Xen's builder does for the store and console rings).
    pub fn toolstack_seed_grant<P: Platform>(
        &mut self,
        dom: DomId,
        gref: GrantRef,
        grantee: DomId,
        gfn: u32,
        readonly: bool,
        plat: &mut P,
    ) -> Result<(), XenError> {
        let d = self.dom(dom)?;
        if gref >= d.grants.nr_entries() || d.grants.active(gref).is_some() {
            return Err(XenError::Inval);
        }
        let (fi, off) = locate(gref);
        let mut flags = crate::abi::gnttabop::GTF_PERMIT_ACCESS;
        if readonly {
            flags |= crate::abi::gnttabop::GTF_READONLY;
        }
        let e = EntryV1 {
            flags,
            domid: grantee,
            frame: gfn,
        };
        plat.grant_frame(dom, fi)
            .and_then(|p| p.write(off, &e.to_bytes()))
            .ok_or(XenError::NoMem)
    }

    // ----- physmap -------------------------------------------------------

    /// `XENMEM_add_to_physmap` for `XENMAPSPACE_shared_info` (idx 0) and
    /// `XENMAPSPACE_grant_table` (idx = frame, growing the table as Xen
    /// does): moves the page to `gpfn` through [`Platform::place_page`].
    /// A special page already at `gpfn` loses its place; a grant mapping
    /// there makes it `-EBUSY`. Other spaces: `-EOPNOTSUPP` / `-EINVAL`.
    pub fn add_to_physmap<P: Platform>(
        &mut self,
        caller: DomId,
        req: &AddToPhysmap,
        plat: &mut P,
    ) -> Result<(), XenError> {
        let d = self.target(caller, req.domid)?;
        let page = match req.space {
            xenmem::SPACE_SHARED_INFO => {
                if req.idx != 0 {
                    return Err(XenError::Inval);
                }
                SpecialPage::SharedInfo
            }
            xenmem::SPACE_GRANT_TABLE => {
                if req.idx & xenmem::IDX_GRANT_TABLE_STATUS != 0 {
                    return Err(XenError::Inval);
                }
                let i = u32::try_from(req.idx).map_err(|_| XenError::Inval)?;
                let max = self.dom(d)?.grants.max_frames();
                if i >= max {
                    return Err(XenError::Inval);
                }
                let want = i.checked_add(1).ok_or(XenError::Inval)?;
                if !self.grow_grants(d, want, plat) {
                    return Err(XenError::NoMem);
                }
                SpecialPage::GrantFrame(i)
            }
            xenmem::SPACE_GMFN
            | xenmem::SPACE_GMFN_RANGE
            | xenmem::SPACE_GMFN_FOREIGN
            | xenmem::SPACE_DEV_MMIO => return Err(XenError::OpNotSupp),
            _ => return Err(XenError::Inval),
        };
        let gfn = req.gpfn;
        if gfn >= GFN_LIMIT {
            return Err(XenError::Inval);
        }
        let dm = self.dom(d)?;
        if dm.grants.has_mapping_at(gfn) {
            return Err(XenError::Busy);
        }
        let old = dm.special_gfn(page);
        if old == Some(gfn) {
            return Ok(());
        }
        let evicted = dm.special_at(gfn);
        if !plat.place_page(d, page, old, gfn) {
            return Err(XenError::Inval);
        }
        let dm = self.dom_mut(d)?;
        if let Some(e) = evicted {
            dm.set_special_gfn(e, None);
        }
        dm.set_special_gfn(page, Some(gfn));
        Ok(())
    }

    // ----- HVM params ----------------------------------------------------

    /// `HVMOP_set_param` from the guest: only `HVM_PARAM_CALLBACK_IRQ` (0 to
    /// disable, or vector type with a vector ≥ 0x10); the store and console
    /// params are the toolstack's (`-EPERM`), as is everything else.
    pub fn hvm_set_param(
        &mut self,
        caller: DomId,
        domid: DomId,
        index: u32,
        value: u64,
    ) -> Result<(), XenError> {
        let d = self.target(caller, domid)?;
        if index >= hvmop::NR_PARAMS {
            return Err(XenError::Inval);
        }
        if index != hvmop::PARAM_CALLBACK_IRQ {
            return Err(XenError::Perm);
        }
        Self::check_callback(value)?;
        self.dom_mut(d)?.params.callback_irq = value;
        Ok(())
    }

    fn check_callback(value: u64) -> Result<(), XenError> {
        if value == 0 {
            return Ok(());
        }
        let ty = value >> hvmop::CALLBACK_TYPE_SHIFT;
        let rest = value & ((1 << hvmop::CALLBACK_TYPE_SHIFT) - 1);
        if ty != hvmop::CALLBACK_TYPE_VECTOR || !(0x10..=0xFF).contains(&rest) {
            return Err(XenError::Inval);
        }
        Ok(())
    }

    /// `HVMOP_get_param` from the guest: the allow-listed params
    /// (callback, store pfn/evtchn, console pfn/evtchn); others `-EPERM`.
    pub fn hvm_get_param(&self, caller: DomId, domid: DomId, index: u32) -> Result<u64, XenError> {
        let d = self.target(caller, domid)?;
        if index >= hvmop::NR_PARAMS {
            return Err(XenError::Inval);
        }
        self.param(d, index).ok_or(XenError::Perm)
    }

    /// The toolstack sets an allow-listed param of `dom` (store and console
    /// pfn/evtchn, callback).
    pub fn toolstack_set_param(
        &mut self,
        dom: DomId,
        index: u32,
        value: u64,
    ) -> Result<(), XenError> {
        if index == hvmop::PARAM_CALLBACK_IRQ {
            Self::check_callback(value)?;
        }
        let slot = self
            .dom_mut(dom)?
            .params
            .slot(index)
            .ok_or(XenError::Inval)?;
        *slot = value;
        Ok(())
    }

    /// `HVMOP_set_evtchn_upcall_vector`: `vcpu`'s LAPIC upcall vector (≥ 0x10).
    pub fn hvm_set_upcall_vector(
        &mut self,
        caller: DomId,
        vcpu: u32,
        vector: u8,
    ) -> Result<(), XenError> {
        let d = self.dom_mut(caller)?;
        let slot = usize::try_from(vcpu)
            .ok()
            .and_then(|v| d.upcall_vector.get_mut(v))
            .ok_or(XenError::NoEnt)?;
        if vector < 0x10 {
            return Err(XenError::Inval);
        }
        *slot = vector;
        Ok(())
    }

    // ----- the hypercall entry point --------------------------------------

    /// Handles a VMCALL from a vCPU of `caller`: decodes (reading argument
    /// structs through `mem`), executes, writes results back, and returns
    /// the value for RAX plus any upcall to raise. Never panics.
    pub fn hypercall<M: GuestMem + ?Sized, P: Platform>(
        &mut self,
        caller: DomId,
        regs: &Regs,
        mem: &mut M,
        plat: &mut P,
    ) -> Outcome {
        if !self.domains.contains_key(&caller) {
            return Outcome::err(XenError::Srch);
        }
        match decode(regs, mem) {
            Ok(call) => self.execute(caller, regs.mode, call, mem, plat),
            Err(e) => Outcome::err(e),
        }
    }

    /// Executes an already decoded hypercall (see [`Hub::hypercall`]).
    pub fn execute<M: GuestMem + ?Sized, P: Platform>(
        &mut self,
        caller: DomId,
        mode: Mode,
        call: Hypercall,
        mem: &mut M,
        plat: &mut P,
    ) -> Outcome {
        let r = match call {
            Hypercall::Evtchn { op, arg } => self.exec_evtchn(caller, mode, op, arg, mem, plat),
            Hypercall::Gnttab { op, uop } => self.exec_gnttab(caller, mode, op, uop, mem, plat),
            Hypercall::AddToPhysmap(req) => self
                .add_to_physmap(caller, &req, plat)
                .map(|_| Outcome::ok(0)),
            Hypercall::Hvm { op, arg } => self.exec_hvm(caller, mode, op, arg, mem),
            Hypercall::Version { op, arg } => self.exec_version(mode, op, arg, mem),
        };
        r.unwrap_or_else(Outcome::err)
    }

    fn exec_evtchn<M: GuestMem + ?Sized, P: Platform>(
        &mut self,
        caller: DomId,
        mode: Mode,
        op: EvtchnOp,
        arg: u64,
        mem: &mut M,
        plat: &mut P,
    ) -> Result<Outcome, XenError> {
        let mut upcall = None;
        match op {
            EvtchnOp::AllocUnbound { dom, remote_dom } => {
                let p = self.evtchn_alloc_unbound(caller, dom, remote_dom)?;
                put(mem, mode, arg, 4, &p.to_le_bytes())?;
            }
            EvtchnOp::BindInterdomain {
                remote_dom,
                remote_port,
            } => {
                let (p, up) =
                    self.evtchn_bind_interdomain(caller, remote_dom, remote_port, plat)?;
                upcall = up;
                if let Err(e) = put(mem, mode, arg, 8, &p.to_le_bytes()) {
                    return Ok(Outcome {
                        ret: e.ret(),
                        upcall,
                    });
                }
            }
            EvtchnOp::BindVirq { virq, vcpu } => {
                let p = self.evtchn_bind_virq(caller, virq, vcpu)?;
                put(mem, mode, arg, 8, &p.to_le_bytes())?;
            }
            EvtchnOp::Close { port } => self.evtchn_close(caller, port, plat)?,
            EvtchnOp::Send { port } => upcall = self.evtchn_send(caller, port, plat)?,
            EvtchnOp::Status { dom, port } => {
                let s = self.evtchn_status(caller, dom, port)?;
                put(mem, mode, arg, 8, &s.encode_out())?;
            }
            EvtchnOp::BindVcpu { port, vcpu } => self.evtchn_bind_vcpu(caller, port, vcpu)?,
            EvtchnOp::Unmask { port } => upcall = self.evtchn_unmask(caller, port, plat)?,
        }
        Ok(Outcome { ret: 0, upcall })
    }

    fn exec_gnttab<M: GuestMem + ?Sized, P: Platform>(
        &mut self,
        caller: DomId,
        mode: Mode,
        op: GnttabOp,
        uop: u64,
        mem: &mut M,
        plat: &mut P,
    ) -> Result<Outcome, XenError> {
        use crate::abi::gnttabop::{MAP_SIZE, UNMAP_SIZE};
        match op {
            GnttabOp::SetupTable {
                dom,
                nr_frames,
                frame_list,
            } => {
                let mut status = self.gnttab_setup_table(caller, dom, nr_frames, plat);
                if status.is_ok() {
                    let d = Self::resolve(caller, dom);
                    for i in 0..nr_frames {
                        let gfn = self
                            .grant_table(d)
                            .and_then(|g| g.frame_gfn(i))
                            .unwrap_or(u64::MAX);
                        let wrote = elem(mode, frame_list, u64::from(i), mode.word())
                            .and_then(|at| put_word(mem, mode, at, gfn));
                        if wrote.is_err() {
                            status = Err(GntStatus::BadVirtAddr);
                            break;
                        }
                    }
                }
                put(mem, mode, uop, 8, &status_code(status).to_le_bytes())?;
            }
            GnttabOp::QuerySize { dom } => match self.gnttab_query_size(caller, dom) {
                Ok((nr, max)) => {
                    put(mem, mode, uop, 4, &nr.to_le_bytes())?;
                    put(mem, mode, uop, 8, &max.to_le_bytes())?;
                    put(mem, mode, uop, 12, &GNTST_OKAY.to_le_bytes())?;
                }
                Err(e) => put(mem, mode, uop, 12, &e.code().to_le_bytes())?,
            },
            GnttabOp::Map(ops) => {
                for (i, req) in ops.iter().enumerate() {
                    let at = elem(mode, uop, i as u64, MAP_SIZE)?;
                    let r = self.gnttab_map(caller, req, plat);
                    if let Ok(h) = r {
                        put(mem, mode, at, 20, &h.to_le_bytes())?;
                        put(mem, mode, at, 24, &0u64.to_le_bytes())?;
                    }
                    put(mem, mode, at, 18, &status_code(r).to_le_bytes())?;
                }
            }
            GnttabOp::Unmap(ops) => {
                for (i, req) in ops.iter().enumerate() {
                    let at = elem(mode, uop, i as u64, UNMAP_SIZE)?;
                    let r = self.gnttab_unmap(caller, req, plat);
                    put(mem, mode, at, 20, &status_code(r).to_le_bytes())?;
                }
            }
            GnttabOp::Copy(ops) => {
                let (size, _, _, status_off) = match mode {
                    Mode::Long => COPY_LAYOUT_64,
                    Mode::Compat => COPY_LAYOUT_32,
                };
                for (i, req) in ops.iter().enumerate() {
                    let at = elem(mode, uop, i as u64, size)?;
                    let r = self.gnttab_copy(caller, req, plat);
                    put(
                        mem,
                        mode,
                        at,
                        status_off as u64,
                        &status_code(r).to_le_bytes(),
                    )?;
                }
            }
            GnttabOp::SetVersion { version } => {
                let r = self.gnttab_set_version(caller, version);
                put(mem, mode, uop, 0, &1u32.to_le_bytes())?;
                r?;
            }
            GnttabOp::GetVersion { dom } => {
                self.target(caller, dom)?;
                put(mem, mode, uop, 4, &1u32.to_le_bytes())?;
            }
        }
        Ok(Outcome::ok(0))
    }

    fn exec_hvm<M: GuestMem + ?Sized>(
        &mut self,
        caller: DomId,
        mode: Mode,
        op: HvmOp,
        arg: u64,
        mem: &mut M,
    ) -> Result<Outcome, XenError> {
        match op {
            HvmOp::SetParam {
                domid,
                index,
                value,
            } => self.hvm_set_param(caller, domid, index, value)?,
            HvmOp::GetParam { domid, index } => {
                let v = self.hvm_get_param(caller, domid, index)?;
                put(mem, mode, arg, 8, &v.to_le_bytes())?;
            }
            HvmOp::SetEvtchnUpcallVector { vcpu, vector } => {
                self.hvm_set_upcall_vector(caller, vcpu, vector)?
            }
        }
        Ok(Outcome::ok(0))
    }

    fn exec_version<M: GuestMem + ?Sized>(
        &self,
        mode: Mode,
        op: VersionOp,
        arg: u64,
        mem: &mut M,
    ) -> Result<Outcome, XenError> {
        match op {
            VersionOp::Version => {
                let (maj, min) = self.cfg.version;
                Ok(Outcome::ok(i64::from(
                    (u32::from(maj) << 16) | u32::from(min),
                )))
            }
            VersionOp::GetFeatures { submap_idx } => {
                if submap_idx != 0 {
                    return Err(XenError::Inval);
                }
                put(mem, mode, arg, 4, &self.cfg.features.to_le_bytes())?;
                Ok(Outcome::ok(0))
            }
        }
    }

    // ----- consistency ----------------------------------------------------

    /// Checks the cross-domain invariants (for tests and fuzzing): every
    /// interdomain port's peer points back at it; VIRQ tables match their
    /// ports; every mapping is held by its grantee, at a GFN of its own (no
    /// other mapping or special page there), and — unless its granter was
    /// removed (an orphaned mapping, which needs no pin) — is backed by a
    /// pin for that grantee and frame; pin counts equal the live granters'
    /// mappings (no copy pin outlives its call).
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let mut pins: BTreeMap<(DomId, GrantRef), (u32, u32)> = BTreeMap::new();
        for (&id, d) in &self.domains {
            for (p, e) in d.ports.in_use() {
                match e.chan {
                    Channel::Interdomain {
                        remote,
                        remote_port,
                    } => {
                        let back = self.port(remote, remote_port).map(|e| e.chan);
                        if back
                            != Some(Channel::Interdomain {
                                remote: id,
                                remote_port: p,
                            })
                        {
                            return Err("interdomain port whose peer does not point back");
                        }
                    }
                    Channel::Virq { virq } => {
                        let bound = (0..d.ports.nr_vcpus())
                            .filter(|&v| d.ports.virq_port(v, virq) == Some(p))
                            .count();
                        if bound != 1 {
                            return Err("VIRQ port not in exactly one VIRQ slot");
                        }
                    }
                    _ => {}
                }
                if e.vcpu >= d.cfg.nr_vcpus {
                    return Err("port notifies a vCPU that does not exist");
                }
            }
            for v in 0..d.ports.nr_vcpus() {
                for q in 0..virq::NR_VIRQS {
                    let p = d.ports.virq_port(v, q).unwrap_or(0);
                    if p != 0 && d.ports.get(p).map(|e| e.chan) != Some(Channel::Virq { virq: q }) {
                        return Err("VIRQ slot names a port not bound to that VIRQ");
                    }
                }
            }
            let mut at = BTreeSet::new();
            for (_, m) in d.grants.mappings() {
                if m.grantee != id {
                    return Err("mapping held by a domain other than its grantee");
                }
                if !at.insert(m.gfn) {
                    return Err("two mappings at one GFN");
                }
                if d.special_at(m.gfn).is_some() {
                    return Err("mapping at the GFN of a special page");
                }
                let Some(g) = self.domains.get(&m.granter) else {
                    // Orphaned: the granter was removed; its pins went with it.
                    continue;
                };
                let a = g.grants.active(m.gref).ok_or("mapping without a pin")?;
                if a.grantee != id || a.frame != m.frame {
                    return Err("mapping disagrees with its pin");
                }
                let c = pins.entry((m.granter, m.gref)).or_insert((0, 0));
                if m.writable {
                    c.1 = c.1.saturating_add(1);
                } else {
                    c.0 = c.0.saturating_add(1);
                }
            }
        }
        for (&id, d) in &self.domains {
            for (&r, a) in &d.grants.active {
                if pins.get(&(id, r)) != Some(&(a.readers, a.writers)) {
                    return Err("pin counts differ from the mappings");
                }
            }
        }
        if pins.keys().any(|(g, r)| {
            self.domains
                .get(g)
                .and_then(|d| d.grants.active(*r))
                .is_none()
        }) {
            return Err("mapping without a pin");
        }
        Ok(())
    }

    /// Checks that every pinned grant entry shows `GTF_reading` (and
    /// `GTF_writing` when writably pinned). Holds while granters follow the
    /// grant protocol (a granter that scribbles its own flags can clear them).
    pub fn check_grant_flags<P: Platform>(&self, plat: &mut P) -> Result<(), &'static str> {
        for (&id, d) in &self.domains {
            for (&r, a) in &d.grants.active {
                let (fi, off) = locate(r);
                let page = plat
                    .grant_frame(id, fi)
                    .ok_or("pinned entry without a frame")?;
                let e = EntryV1::read(page, off).ok_or("pinned entry unreadable")?;
                if !gnttab::flags_cover(&e, a) {
                    return Err("pinned entry without GTF_reading/GTF_writing");
                }
            }
        }
        Ok(())
    }
}

fn status_code<T>(r: Result<T, GntStatus>) -> i16 {
    match r {
        Ok(_) => GNTST_OKAY,
        Err(e) => e.code(),
    }
}

/// Writes `bytes` at `base + off` of the caller's linear space.
fn put<M: GuestMem + ?Sized>(
    mem: &mut M,
    mode: Mode,
    base: u64,
    off: u64,
    bytes: &[u8],
) -> Result<(), XenError> {
    let at = span(mode, base, off, bytes.len() as u64)?;
    mem.write(at, bytes).map_err(|_| XenError::Fault)
}

/// Writes an `unsigned long` / `xen_pfn_t` of `mode` (all-ones truncates to
/// the 32-bit all-ones).
fn put_word<M: GuestMem + ?Sized>(
    mem: &mut M,
    mode: Mode,
    at: u64,
    v: u64,
) -> Result<(), XenError> {
    match mode {
        Mode::Long => put(mem, mode, at, 0, &v.to_le_bytes()),
        Mode::Compat => put(mem, mode, at, 0, &(v as u32).to_le_bytes()),
    }
}
