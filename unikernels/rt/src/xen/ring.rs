//! The xenstore ring (`struct xenstore_domain_interface`, `io/xs_wire.h`)
//! over a shared [`Page`].
//!
//! The ring code is the store engine's (`xenstore_engine::ring`, re-exported
//! here): [`Producer`] and [`Consumer`] keep their own index and check the
//! other side's, the free functions do the same for a side without state.
//! This module only lets them work on a [`Page`]: each `RingMem` call is one
//! atomic access (index loads acquire, stores release) or a byte copy with
//! a fence, as [`Page`] makes them.

pub use xenstore_engine::ring::{
    available, consume, peek, produce, space, Consumer, Producer, Ring, RingError, RingMem,
    CONNECTION, ERROR, ERROR_NONE, ERROR_PROTO, ERROR_RINGIDX, REQ_CONS, REQ_PROD, RING_SIZE,
    RSP_CONS, RSP_PROD, SERVER_FEATURES, SERVER_FEATURE_ERROR,
};

use super::page::Page;

/// Accesses outside the page (which the ring code never makes) read as 0
/// and write nothing.
impl RingMem for Page<'_> {
    fn load_u32(&self, offset: usize) -> u32 {
        Page::load_u32(self, offset).unwrap_or(0)
    }

    fn store_u32(&mut self, offset: usize, value: u32) {
        let _ = Page::store_u32(self, offset, value);
    }

    fn read(&self, offset: usize, buf: &mut [u8]) {
        if Page::read(self, offset, buf).is_none() {
            buf.fill(0);
        }
    }

    fn write(&mut self, offset: usize, buf: &[u8]) {
        let _ = Page::write(self, offset, buf);
    }
}

#[cfg(test)]
mod tests {
    use super::super::alloc::vec::Vec;
    use super::super::page::testing::TestPage;
    use super::*;

    /// The engine's ring code on a real shared page: data and indices land
    /// where xs_wire.h puts them, across the wrap of the ring and the index.
    #[test]
    fn round_trip_through_a_page() {
        let buf = TestPage::new();
        let mut p = buf.page();
        p.store_u32(REQ_PROD, u32::MAX - 700).unwrap();
        p.store_u32(REQ_CONS, u32::MAX - 700).unwrap();
        let mut tx = Producer::attach(&p, Ring::Req);
        let mut rx = Consumer::attach(&p, Ring::Req);
        let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 + 3) as u8).collect();
        let (mut got, mut sent) = (Vec::new(), 0);
        while got.len() < data.len() {
            sent += tx.write(&mut p, &data[sent..]).unwrap();
            assert_eq!(Page::load_u32(&p, REQ_PROD), Some(tx.index()));
            let mut chunk = [0u8; 333];
            let n = rx.read(&mut p, &mut chunk).unwrap();
            got.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(got, data);
        // Byte 0 of the stream sat at index u32::MAX - 700, i.e. at
        // offset (u32::MAX - 700) % 1024 of the request ring.
        let at = ((u32::MAX - 700) % RING_SIZE) as usize;
        let mut b = [0u8; 1];
        Page::read(&p, at, &mut b).unwrap();
        assert_eq!(b[0], data[0]);
        // The reply ring's indices were not touched.
        assert_eq!(Page::load_u32(&p, RSP_PROD), Some(0));
        // A peer's nonsense is refused.
        p.store_u32(RSP_PROD, 1025).unwrap();
        let mut rsp = Consumer::attach(&p, Ring::Rsp);
        assert_eq!(
            rsp.read(&mut p, &mut [0; 4]),
            Err(RingError::Corrupt {
                cons: 0,
                prod: 1025
            })
        );
        // Out-of-page accesses read as 0.
        assert_eq!(RingMem::load_u32(&p, 4096), 0);
    }
}
