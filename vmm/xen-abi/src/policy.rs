//! cloister's choices for every domain, shared by the VMM and the tests that
//! model it: the limits each domain gets, and where in a domain's
//! guest-physical space the VMM places pages it does not own as RAM
//! (`shared_info`, grant-table frames, frames mapped from other domains).

use crate::hub::DomainConfig;

/// Guest-physical frames at and above this (4 GiB) are never used for
/// special or foreign pages (it bounds the EPT structures a guest can make
/// the VMM build).
pub const FOREIGN_GFN_END: u64 = (4 << 30) >> 12;

/// The configuration every domain gets: one vCPU, 1024 ports, a grant table
/// of up to 4 frames (2048 entries) and 256 grant mappings at once.
pub fn domain_config() -> DomainConfig {
    DomainConfig {
        nr_vcpus: 1,
        max_ports: 1024,
        max_grant_frames: 4,
        max_maptrack: 256,
        ..DomainConfig::default()
    }
}

/// Whether a domain with `ram_pages` pages of RAM (frames `0..ram_pages`)
/// may have a special or foreign page at `gfn`: above its RAM, below
/// [`FOREIGN_GFN_END`]. Nothing of a guest's own RAM is ever replaced.
pub fn foreign_gfn_allowed(ram_pages: u64, gfn: u64) -> bool {
    gfn >= ram_pages && gfn < FOREIGN_GFN_END
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_above_ram_and_below_4_gib() {
        assert!(!foreign_gfn_allowed(1024, 0));
        assert!(!foreign_gfn_allowed(1024, 1023));
        assert!(foreign_gfn_allowed(1024, 1024));
        assert!(foreign_gfn_allowed(1024, FOREIGN_GFN_END - 1));
        assert!(!foreign_gfn_allowed(1024, FOREIGN_GFN_END));
        assert!(!foreign_gfn_allowed(1024, u64::MAX));
    }
}
