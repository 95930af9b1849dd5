//! In-memory stand-ins for the VMM's side: a [`Platform`] whose pages are
//! byte arrays and whose "EPT" is a table, and a flat [`GuestMem`]. For unit
//! and property tests, the fuzz target, and host-side simulations of guests
//! (a vchan library can run two "domains" against a [`crate::Hub`] with them).
//!
//! Single-threaded: the byte-array pages do their "atomic" operations as
//! plain read-check-write.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::abi::DomId;
use crate::hub::Hub;
use crate::mem::{zero_page, GrantMapping, GuestMem, MemFault, Platform, SpecialPage};

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

    /// Drops domain `dom`'s pages.
    pub fn remove_domain(&mut self, dom: DomId) {
        self.doms.remove(&dom);
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
    /// mappings, and that no unmap missed.
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
