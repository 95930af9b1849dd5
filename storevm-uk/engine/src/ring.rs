//! The xenstore ring page (`struct xenstore_domain_interface`, xs_wire.h):
//! two 1024-byte byte rings with free-running 32-bit indices.
//!
//! | offset | field |
//! |--------|-------|
//! | 0 | `req[1024]`: client → store |
//! | 1024 | `rsp[1024]`: store → client |
//! | 2048 | `req_cons`, 2052 `req_prod`, 2056 `rsp_cons`, 2060 `rsp_prod` (u32) |
//! | 2064 | `server_features`, 2068 `connection`, 2072 `error` (u32) |
//!
//! The page is shared with a peer that may be hostile: every index is read
//! once per operation, and a producer more than a ring's size ahead of the
//! consumer is reported as [`RingError::Corrupt`] rather than trusted.
//! Byte transport only; messages are framed by [`crate::wire`].

/// Bytes in each ring (`XENSTORE_RING_SIZE`).
pub const RING_SIZE: u32 = 1024;
/// Offset of `req_cons`.
pub const REQ_CONS: usize = 2048;
/// Offset of `req_prod`.
pub const REQ_PROD: usize = 2052;
/// Offset of `rsp_cons`.
pub const RSP_CONS: usize = 2056;
/// Offset of `rsp_prod`.
pub const RSP_PROD: usize = 2060;
/// Offset of `server_features`.
pub const SERVER_FEATURES: usize = 2064;
/// Offset of `connection`.
pub const CONNECTION: usize = 2068;
/// Offset of `error`.
pub const ERROR: usize = 2072;

/// The shared page as the ring code needs it. Implementations make each
/// call one access to the real page: `load_u32` with acquire and
/// `store_u32` with release ordering, so data copied before a store of an
/// index is visible to a peer that loads the index.
pub trait RingMem {
    /// Loads the u32 at `offset` (4-aligned, inside the page).
    fn load_u32(&self, offset: usize) -> u32;
    /// Stores `value` at `offset` (4-aligned, inside the page).
    fn store_u32(&mut self, offset: usize, value: u32);
    /// Copies bytes out of the page at `offset` (inside the page).
    fn read(&self, offset: usize, buf: &mut [u8]);
    /// Copies bytes into the page at `offset` (inside the page).
    fn write(&mut self, offset: usize, buf: &[u8]);
}

/// Which ring of the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ring {
    /// Requests, client → store.
    Req,
    /// Responses and watch events, store → client.
    Rsp,
}

impl Ring {
    /// (data offset, consumer index offset, producer index offset).
    const fn layout(self) -> (usize, usize, usize) {
        match self {
            Ring::Req => (0, REQ_CONS, REQ_PROD),
            Ring::Rsp => (1024, RSP_CONS, RSP_PROD),
        }
    }
}

/// The peer broke the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The producer index is more than [`RING_SIZE`] ahead of the consumer
    /// index (or behind it): the indices cannot come from a correct peer.
    Corrupt {
        /// The consumer index read.
        cons: u32,
        /// The producer index read.
        prod: u32,
    },
}

impl core::fmt::Display for RingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RingError::Corrupt { cons, prod } => write!(
                f,
                "corrupt ring indices (consumer {cons}, producer {prod}: more than {RING_SIZE} \
                 bytes apart)"
            ),
        }
    }
}

fn indices<M: RingMem + ?Sized>(m: &M, ring: Ring) -> Result<(u32, u32), RingError> {
    let (_, c, p) = ring.layout();
    let cons = m.load_u32(c);
    let prod = m.load_u32(p);
    if prod.wrapping_sub(cons) > RING_SIZE {
        return Err(RingError::Corrupt { cons, prod });
    }
    Ok((cons, prod))
}

/// Bytes waiting to be consumed in `ring`.
pub fn available<M: RingMem + ?Sized>(m: &M, ring: Ring) -> Result<u32, RingError> {
    indices(m, ring).map(|(c, p)| p.wrapping_sub(c))
}

/// Free space in `ring`.
pub fn space<M: RingMem + ?Sized>(m: &M, ring: Ring) -> Result<u32, RingError> {
    available(m, ring).map(|a| RING_SIZE - a)
}

/// The (up to two) pieces of the ring's data area from index `at` for `len`
/// bytes, as (page offset, length) pairs.
fn pieces(ring: Ring, at: u32, len: usize) -> [(usize, usize); 2] {
    let (base, _, _) = ring.layout();
    let start = (at % RING_SIZE) as usize;
    let first = len.min(RING_SIZE as usize - start);
    [(base + start, first), (base, len - first)]
}

/// Copies as much of `data` into `ring` as fits and publishes it; returns
/// the bytes written.
pub fn produce<M: RingMem + ?Sized>(
    m: &mut M,
    ring: Ring,
    data: &[u8],
) -> Result<usize, RingError> {
    let (cons, prod) = indices(m, ring)?;
    let free = (RING_SIZE - prod.wrapping_sub(cons)) as usize;
    let n = data.len().min(free);
    let mut done = 0;
    for (off, len) in pieces(ring, prod, n) {
        if let Some(src) = data.get(done..done + len) {
            m.write(off, src);
        }
        done += len;
    }
    let (_, _, p) = ring.layout();
    m.store_u32(p, prod.wrapping_add(n as u32));
    Ok(n)
}

/// Copies up to `buf.len()` waiting bytes out of `ring` and frees them;
/// returns the bytes read.
pub fn consume<M: RingMem + ?Sized>(
    m: &mut M,
    ring: Ring,
    buf: &mut [u8],
) -> Result<usize, RingError> {
    let (cons, prod) = indices(m, ring)?;
    let n = buf.len().min(prod.wrapping_sub(cons) as usize);
    let mut done = 0;
    for (off, len) in pieces(ring, cons, n) {
        if let Some(dst) = buf.get_mut(done..done + len) {
            m.read(off, dst);
        }
        done += len;
    }
    let (_, c, _) = ring.layout();
    m.store_u32(c, cons.wrapping_add(n as u32));
    Ok(n)
}

/// Copies up to `buf.len()` waiting bytes out of `ring` without consuming
/// them; returns the bytes copied.
pub fn peek<M: RingMem + ?Sized>(m: &M, ring: Ring, buf: &mut [u8]) -> Result<usize, RingError> {
    let (cons, prod) = indices(m, ring)?;
    let n = buf.len().min(prod.wrapping_sub(cons) as usize);
    let mut done = 0;
    for (off, len) in pieces(ring, cons, n) {
        if let Some(dst) = buf.get_mut(done..done + len) {
            m.read(off, dst);
        }
        done += len;
    }
    Ok(n)
}

/// A ring page in ordinary memory (tests; pages nobody else touches).
impl RingMem for [u8] {
    fn load_u32(&self, offset: usize) -> u32 {
        let mut b = [0u8; 4];
        RingMem::read(self, offset, &mut b);
        u32::from_le_bytes(b)
    }
    fn store_u32(&mut self, offset: usize, value: u32) {
        RingMem::write(self, offset, &value.to_le_bytes());
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        if let Some(src) = offset
            .checked_add(buf.len())
            .and_then(|end| self.get(offset..end))
        {
            buf.copy_from_slice(src);
        }
    }
    fn write(&mut self, offset: usize, buf: &[u8]) {
        if let Some(dst) = offset
            .checked_add(buf.len())
            .and_then(|end| self.get_mut(offset..end))
        {
            dst.copy_from_slice(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;
    use std::vec;
    use std::vec::Vec;

    #[test]
    fn bytes_wrap_around_the_ring() {
        let mut page = vec![0u8; 4096];
        page.store_u32(REQ_CONS, 1000);
        page.store_u32(REQ_PROD, 1000);
        let data: Vec<u8> = (0..100).collect();
        assert_eq!(produce(&mut page[..], Ring::Req, &data), Ok(100));
        assert_eq!(&page[1000..1024], &data[..24]);
        assert_eq!(&page[0..76], &data[24..]);
        let mut out = [0u8; 200];
        assert_eq!(consume(&mut page[..], Ring::Req, &mut out), Ok(100));
        assert_eq!(&out[..100], &data[..]);
        assert_eq!(page.load_u32(REQ_CONS), 1100);
    }

    #[test]
    fn a_full_ring_takes_nothing_more() {
        let mut page = vec![0u8; 4096];
        page.store_u32(RSP_PROD, u32::MAX - 10);
        page.store_u32(RSP_CONS, u32::MAX - 10);
        assert_eq!(produce(&mut page[..], Ring::Rsp, &[7; 2000]), Ok(1024));
        assert_eq!(space(&page[..], Ring::Rsp), Ok(0));
        assert_eq!(produce(&mut page[..], Ring::Rsp, &[7; 10]), Ok(0));
        // The request ring is untouched.
        assert_eq!(available(&page[..], Ring::Req), Ok(0));
    }

    #[test]
    fn hostile_indices_are_reported() {
        let mut page = vec![0u8; 4096];
        page.store_u32(REQ_CONS, 5);
        page.store_u32(REQ_PROD, 5 + RING_SIZE + 1);
        let e = Err(RingError::Corrupt {
            cons: 5,
            prod: 5 + RING_SIZE + 1,
        });
        assert_eq!(consume(&mut page[..], Ring::Req, &mut [0; 8]), e);
        assert_eq!(produce(&mut page[..], Ring::Req, &[0; 8]), e);
        // Consumer ahead of producer.
        page.store_u32(REQ_PROD, 4);
        assert!(available(&page[..], Ring::Req).is_err());
    }

    proptest! {
        /// Any interleaving of writes and reads of any sizes, from any
        /// starting index, matches a FIFO.
        #[test]
        fn matches_a_fifo(start: u32, ops in proptest::collection::vec((any::<bool>(), 0usize..1500), 1..60)) {
            let mut page = vec![0u8; 4096];
            page.store_u32(REQ_CONS, start);
            page.store_u32(REQ_PROD, start);
            let mut model = VecDeque::new();
            let mut next = 0u8;
            for (write, len) in ops {
                if write {
                    let data: Vec<u8> = (0..len).map(|_| { next = next.wrapping_add(1); next }).collect();
                    let n = produce(&mut page[..], Ring::Req, &data).unwrap();
                    prop_assert_eq!(n, len.min(1024 - model.len()));
                    model.extend(&data[..n]);
                } else {
                    let mut buf = vec![0u8; len];
                    let n = consume(&mut page[..], Ring::Req, &mut buf).unwrap();
                    prop_assert_eq!(n, len.min(model.len()));
                    let want: Vec<u8> = model.drain(..n).collect();
                    prop_assert_eq!(&buf[..n], &want[..]);
                }
            }
        }
    }
}
