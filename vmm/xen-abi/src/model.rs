//! In-memory stand-ins for the VMM's side: a [`Platform`] whose pages are
//! byte arrays and whose "EPT" is a table, and a flat [`GuestMem`]. For unit
//! and property tests, the fuzz target, and host-side simulations of guests
//! (a vchan library can run two "domains" against a [`crate::Hub`] with them).
//!
//! Single-threaded: the byte-array pages do their "atomic" operations as
//! plain read-check-write.
//!
//! Like the VMM, the model keeps a removed domain's RAM pages that other
//! domains still map (orphaned mappings, see [`Hub::remove_domain`]) as
//! "zombie" pages, and frees each when its last mapping is unmapped.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use crate::abi::DomId;
use crate::hub::Hub;
use crate::mem::{zero_page, GrantMapping, GuestMem, MemFault, Platform, SharedPage, SpecialPage};

/// One domain's pages and second-level mappings in the model.
#[derive(Clone, Debug, Default)]
pub struct ModelDomain {
    /// The `shared_info` page.
    pub shared_info: Option<Box<[u8]>>,
    /// Grant-table frames.
    pub grant_frames: Vec<Box<[u8]>>,
    /// RAM pages touched so far (GFN → bytes); GFNs `0..ram_pages` are RAM.
    pub ram: BTreeMap<u64, Box<[u8]>>,
    /// Size of RAM in pages.
    pub ram_pages: u64,
    /// Foreign frames mapped in, by GFN (the model's EPT entries for grants).
    pub ept_grants: BTreeMap<u64, GrantMapping>,
    /// Special pages placed, by GFN.
    pub placed: BTreeMap<u64, SpecialPage>,
}

/// A [`Platform`] made of byte arrays.
#[derive(Clone, Debug, Default)]
pub struct ModelPlatform {
    /// The domains, by id.
    pub doms: BTreeMap<DomId, ModelDomain>,
    /// Make [`Platform::map_grant`] refuse.
    pub refuse_map: bool,
    /// Make [`Platform::place_page`] refuse.
    pub refuse_place: bool,
    /// Most grant-table frames any domain can get (`None`: unlimited).
    pub grant_frame_limit: Option<u32>,
    /// Unmaps of mappings the model did not have (should stay 0).
    pub stray_unmaps: u32,
    /// RAM pages of removed domains that orphaned grant mappings still use,
    /// by (granter, GFN): kept by [`ModelPlatform::remove_domain`], freed
    /// when the last mapping of each is unmapped.
    pub zombie_ram: BTreeMap<(DomId, u64), Box<[u8]>>,
}

impl ModelPlatform {
    /// An empty model.
    pub fn new() -> ModelPlatform {
        ModelPlatform::default()
    }

    /// Gives domain `dom` a `shared_info` page and `ram_pages` pages of RAM.
    pub fn add_domain(&mut self, dom: DomId, ram_pages: u64) {
        self.doms.insert(
            dom,
            ModelDomain {
                shared_info: Some(zero_page()),
                ram_pages,
                ..ModelDomain::default()
            },
        );
    }

    /// Drops domain `dom`'s pages, except the RAM pages other domains'
    /// grant mappings still use (orphaned by [`Hub::remove_domain`]; call
    /// this after it): those move to [`ModelPlatform::zombie_ram`] until
    /// their last mapping is unmapped. Don't add `dom` again before then
    /// (the hub refuses the id meanwhile, and [`ModelPlatform::check_ept`]
    /// reports a zombie page of a live domain).
    pub fn remove_domain(&mut self, dom: DomId) {
        let Some(mut d) = self.doms.remove(&dom) else {
            return;
        };
        let used: BTreeSet<u64> = self
            .doms
            .values()
            .flat_map(|o| o.ept_grants.values())
            .filter(|m| m.granter == dom)
            .map(|m| m.frame)
            .collect();
        for gfn in used {
            let page = d.ram.remove(&gfn).unwrap_or_else(zero_page);
            self.zombie_ram.insert((dom, gfn), page);
        }
    }

    /// Whether any domain's EPT still maps `granter`'s frame `gfn`.
    fn frame_mapped(&self, granter: DomId, gfn: u64) -> bool {
        self.doms
            .values()
            .flat_map(|d| d.ept_grants.values())
            .any(|m| m.granter == granter && m.frame == gfn)
    }

    /// The page behind grant mapping `m`: the granter's RAM frame (whether
    /// or not the granter has since placed something over it), or its
    /// zombie page once the granter is removed.
    pub fn granted_page(&mut self, m: &GrantMapping) -> Option<&mut [u8]> {
        if let Some(p) = self.zombie_ram.get_mut(&(m.granter, m.frame)) {
            return Some(&mut **p);
        }
        let g = self.doms.get_mut(&m.granter)?;
        if m.frame >= g.ram_pages {
            return None;
        }
        Some(&mut **g.ram.entry(m.frame).or_insert_with(zero_page))
    }

    /// The page `dom`'s vCPU reaches at its guest-physical frame `gfn`
    /// through the model's EPT: a mapped grant (none for a write through a
    /// read-only one), a placed special page, or its own RAM.
    fn gfn_page(&mut self, dom: DomId, gfn: u64, write: bool) -> Option<&mut [u8]> {
        let d = self.doms.get(&dom)?;
        if let Some(m) = d.ept_grants.get(&gfn).copied() {
            if write && !m.writable {
                return None;
            }
            return self.granted_page(&m);
        }
        match d.placed.get(&gfn).copied() {
            Some(SpecialPage::SharedInfo) => self.shared_info(dom),
            Some(SpecialPage::GrantFrame(i)) => self.grant_frame(dom, i),
            None => self.ram_page(dom, gfn),
        }
    }

    /// Reads `buf.len()` bytes at `offset` of `dom`'s guest-physical frame
    /// `gfn`, as its vCPU would (see [`ModelPlatform::write_gfn`]).
    pub fn read_gfn(
        &mut self,
        dom: DomId,
        gfn: u64,
        offset: usize,
        buf: &mut [u8],
    ) -> Result<(), MemFault> {
        self.gfn_page(dom, gfn, false)
            .and_then(|p| p.read(offset, buf))
            .ok_or(MemFault)
    }

    /// Writes `buf` at `offset` of `dom`'s guest-physical frame `gfn`, as
    /// its vCPU would through the model's EPT: into a mapped grant's page
    /// (a fault if the mapping is read-only; a removed granter's zombie page
    /// included), a placed special page, or its own RAM. A fault outside
    /// those or across the page's end.
    pub fn write_gfn(
        &mut self,
        dom: DomId,
        gfn: u64,
        offset: usize,
        buf: &[u8],
    ) -> Result<(), MemFault> {
        self.gfn_page(dom, gfn, true)
            .and_then(|p| p.write(offset, buf))
            .ok_or(MemFault)
    }

    /// Domain `dom`'s model state.
    pub fn domain(&self, dom: DomId) -> Option<&ModelDomain> {
        self.doms.get(&dom)
    }

    /// Domain `dom`'s model state, mutably (to play the guest's part).
    pub fn domain_mut(&mut self, dom: DomId) -> Option<&mut ModelDomain> {
        self.doms.get_mut(&dom)
    }

    /// Checks that the model's EPT grant entries are exactly the hub's
    /// mappings, that no unmap missed, and that zombie pages are exactly
    /// the removed domains' frames that mappings still use.
    pub fn check_ept(&self, hub: &Hub) -> Result<(), &'static str> {
        if self.stray_unmaps != 0 {
            return Err("unmap of a mapping the EPT did not have");
        }
        for (&id, d) in &self.doms {
            let held: BTreeMap<u64, GrantMapping> = hub
                .grant_table(id)
                .map(|g| g.mappings().map(|(_, m)| (m.gfn, *m)).collect())
                .unwrap_or_default();
            if held != d.ept_grants {
                return Err("EPT grant entries differ from the hub's mappings");
            }
            for m in d.ept_grants.values() {
                if !self.doms.contains_key(&m.granter)
                    && !self.zombie_ram.contains_key(&(m.granter, m.frame))
                {
                    return Err("mapping of a removed domain's page that was freed");
                }
            }
        }
        for &(g, gfn) in self.zombie_ram.keys() {
            if self.doms.contains_key(&g) {
                return Err("zombie page of a live domain");
            }
            if !self.frame_mapped(g, gfn) {
                return Err("zombie page that no mapping uses");
            }
        }
        Ok(())
    }
}

impl Platform for ModelPlatform {
    type Page = [u8];

    fn shared_info(&mut self, dom: DomId) -> Option<&mut [u8]> {
        self.doms.get_mut(&dom)?.shared_info.as_deref_mut()
    }

    fn grant_frame(&mut self, dom: DomId, index: u32) -> Option<&mut [u8]> {
        let d = self.doms.get_mut(&dom)?;
        d.grant_frames
            .get_mut(usize::try_from(index).ok()?)
            .map(|b| &mut **b)
    }

    fn grow_grant_table(&mut self, dom: DomId, nr_frames: u32) -> bool {
        if self.grant_frame_limit.is_some_and(|l| nr_frames > l) {
            return false;
        }
        let Some(d) = self.doms.get_mut(&dom) else {
            return false;
        };
        let Ok(n) = usize::try_from(nr_frames) else {
            return false;
        };
        while d.grant_frames.len() < n {
            d.grant_frames.push(zero_page());
        }
        true
    }

    fn ram_page(&mut self, dom: DomId, gfn: u64) -> Option<&mut [u8]> {
        let d = self.doms.get_mut(&dom)?;
        if gfn >= d.ram_pages || d.placed.contains_key(&gfn) || d.ept_grants.contains_key(&gfn) {
            return None;
        }
        Some(&mut **d.ram.entry(gfn).or_insert_with(zero_page))
    }

    fn map_grant(&mut self, m: &GrantMapping) -> bool {
        if self.refuse_map {
            return false;
        }
        let Some(d) = self.doms.get_mut(&m.grantee) else {
            return false;
        };
        if d.ept_grants.contains_key(&m.gfn) || d.placed.contains_key(&m.gfn) {
            return false;
        }
        d.ept_grants.insert(m.gfn, *m);
        true
    }

    fn unmap_grant(&mut self, m: &GrantMapping) {
        let removed = self
            .doms
            .get_mut(&m.grantee)
            .and_then(|d| d.ept_grants.remove(&m.gfn));
        if removed != Some(*m) {
            self.stray_unmaps = self.stray_unmaps.saturating_add(1);
        }
        let key = (m.granter, m.frame);
        if self.zombie_ram.contains_key(&key) && !self.frame_mapped(m.granter, m.frame) {
            self.zombie_ram.remove(&key);
        }
    }

    fn place_page(
        &mut self,
        dom: DomId,
        page: SpecialPage,
        old_gfn: Option<u64>,
        gfn: u64,
    ) -> bool {
        if self.refuse_place {
            return false;
        }
        let Some(d) = self.doms.get_mut(&dom) else {
            return false;
        };
        if let Some(old) = old_gfn {
            if d.placed.get(&old) == Some(&page) {
                d.placed.remove(&old);
            }
        }
        d.placed.insert(gfn, page);
        true
    }
}

/// A flat guest linear address space: `bytes` at `base`, faults elsewhere.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlatMem {
    /// Linear address of `bytes[0]`.
    pub base: u64,
    /// The memory.
    pub bytes: Vec<u8>,
}

impl FlatMem {
    /// `len` zero bytes at `base`.
    pub fn new(base: u64, len: usize) -> FlatMem {
        FlatMem {
            base,
            bytes: alloc::vec![0; len],
        }
    }

    fn range(&self, gla: u64, len: usize) -> Result<core::ops::Range<usize>, MemFault> {
        let off = gla.checked_sub(self.base).ok_or(MemFault)?;
        let off = usize::try_from(off).map_err(|_| MemFault)?;
        let end = off.checked_add(len).ok_or(MemFault)?;
        if end > self.bytes.len() {
            return Err(MemFault);
        }
        Ok(off..end)
    }
}

impl GuestMem for FlatMem {
    fn read(&mut self, gla: u64, buf: &mut [u8]) -> Result<(), MemFault> {
        let r = self.range(gla, buf.len())?;
        buf.copy_from_slice(self.bytes.get(r).ok_or(MemFault)?);
        Ok(())
    }
    fn write(&mut self, gla: u64, buf: &[u8]) -> Result<(), MemFault> {
        let r = self.range(gla, buf.len())?;
        self.bytes.get_mut(r).ok_or(MemFault)?.copy_from_slice(buf);
        Ok(())
    }
}
