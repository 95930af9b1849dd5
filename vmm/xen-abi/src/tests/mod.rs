//! Unit and property tests.

mod decode;
mod dispatch;
mod evtchn;
mod gnttab;
mod misc;
mod props;

use crate::abi::gnttabop::{GTF_PERMIT_ACCESS, GTF_READONLY};
use crate::abi::PAGE_SIZE;
use crate::decode::MapGrantRef;
use crate::gnttab::{locate, EntryV1};
use crate::model::ModelPlatform;
use crate::*;

/// RAM pages each test domain gets.
pub const RAM_PAGES: u64 = 64;

/// A hub and its model platform with domains 1..=n (2 vCPUs each).
pub struct World {
    pub hub: Hub,
    pub plat: ModelPlatform,
}

pub fn world(n: u16) -> World {
    let mut w = World {
        hub: Hub::new(HubConfig::default()),
        plat: ModelPlatform::new(),
    };
    for d in 1..=n {
        w.add(
            d,
            DomainConfig {
                nr_vcpus: 2,
                ..DomainConfig::default()
            },
        );
    }
    w
}

impl World {
    pub fn add(&mut self, d: DomId, cfg: DomainConfig) {
        self.plat.add_domain(d, RAM_PAGES);
        self.hub.add_domain(d, cfg, &mut self.plat).unwrap();
    }

    /// Writes `granter`'s entry `gref` as the granter would.
    pub fn grant(
        &mut self,
        granter: DomId,
        gref: GrantRef,
        grantee: DomId,
        frame: u32,
        flags: u16,
    ) {
        let (fi, off) = locate(gref);
        if self.plat.grant_frame(granter, fi).is_none() {
            assert!(self.plat.grow_grant_table(granter, fi + 1));
        }
        let e = EntryV1 {
            flags,
            domid: grantee,
            frame,
        };
        self.plat
            .grant_frame(granter, fi)
            .unwrap()
            .write(off, &e.to_bytes())
            .unwrap();
    }

    pub fn grant_rw(&mut self, granter: DomId, gref: GrantRef, grantee: DomId, frame: u32) {
        self.grant(granter, gref, grantee, frame, GTF_PERMIT_ACCESS);
    }

    pub fn grant_ro(&mut self, granter: DomId, gref: GrantRef, grantee: DomId, frame: u32) {
        self.grant(
            granter,
            gref,
            grantee,
            frame,
            GTF_PERMIT_ACCESS | GTF_READONLY,
        );
    }

    pub fn entry(&mut self, granter: DomId, gref: GrantRef) -> EntryV1 {
        let (fi, off) = locate(gref);
        EntryV1::read(self.plat.grant_frame(granter, fi).unwrap(), off).unwrap()
    }

    pub fn map(
        &mut self,
        caller: DomId,
        granter: DomId,
        gref: GrantRef,
        gfn: u64,
        readonly: bool,
    ) -> Result<GrantHandle, GntStatus> {
        let mut flags = abi::gnttabop::GNTMAP_HOST_MAP;
        if readonly {
            flags |= abi::gnttabop::GNTMAP_READONLY;
        }
        let req = MapGrantRef {
            host_addr: gfn << 12,
            flags,
            gref,
            dom: granter,
        };
        self.hub.gnttab_map(caller, &req, &mut self.plat)
    }

    pub fn shinfo(&mut self, d: DomId) -> &mut [u8] {
        self.plat.shared_info(d).unwrap()
    }

    pub fn pending(&mut self, d: DomId, port: Port) -> bool {
        shinfo::is_pending(self.shinfo(d), Width::W64, port).unwrap()
    }

    pub fn mask(&mut self, d: DomId, port: Port) {
        let off = Width::W64.mask_offset() + port as usize / 8;
        self.shinfo(d)[off] |= 1 << (port % 8);
    }

    pub fn ram(&mut self, d: DomId, gfn: u64) -> &mut [u8] {
        self.plat.ram_page(d, gfn).unwrap()
    }

    /// Alloc-unbound in `a` for `b`, bound by `b`: (port in a, port in b).
    pub fn connect(&mut self, a: DomId, b: DomId) -> (Port, Port) {
        let pa = self.hub.evtchn_alloc_unbound(a, DOMID_SELF, b).unwrap();
        let (pb, _) = self
            .hub
            .evtchn_bind_interdomain(b, a, pa, &mut self.plat)
            .unwrap();
        (pa, pb)
    }

    pub fn check(&mut self) {
        self.hub.check_invariants().unwrap();
        self.hub.check_grant_flags(&mut self.plat).unwrap();
        self.plat.check_ept(&self.hub).unwrap();
    }
}

#[test]
fn page_size_is_4k() {
    assert_eq!(PAGE_SIZE, 4096);
}
