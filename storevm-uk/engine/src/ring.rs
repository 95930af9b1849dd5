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
//!
//! A side that talks over the ring for a while keeps its own index in a
//! [`Producer`] or [`Consumer`] and never reads it back from the page; the
//! free functions ([`produce`], [`consume`], ...) are the same operations
//! for a side that keeps no state and takes both indices from the page.
//! Ordering follows Linux's `xenbus_comms`: the other side's index is
//! loaded (acquire) before the data is touched, and this side's index is
//! published (release) after. After a call that moved data, the caller
//! notifies the other side through the event channel.
//!
//! Every user of the xenstore ring goes through this module: the store
//! (`storevm`, [`crate::server`]), the VMM's toolstack connection and the
//! unikernel runtime's client (`rt::xen::store`).

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
/// `server_features` bit: the server reports errors in `error`
/// (`XENSTORE_SERVER_FEATURE_ERROR`).
pub const SERVER_FEATURE_ERROR: u32 = 2;
/// `error`: no error (`XENSTORE_ERROR_NONE`).
pub const ERROR_NONE: u32 = 0;
/// `error`: the ring indices were inconsistent (`XENSTORE_ERROR_RINGIDX`).
pub const ERROR_RINGIDX: u32 = 2;
/// `error`: the peer broke the wire protocol, e.g. a header announcing an
/// oversized payload (`XENSTORE_ERROR_PROTO`).
pub const ERROR_PROTO: u32 = 3;

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

/// `prod - cons`, checked: more than [`RING_SIZE`] apart is corruption.
fn used(cons: u32, prod: u32) -> Result<u32, RingError> {
    let n = prod.wrapping_sub(cons);
    if n > RING_SIZE {
        return Err(RingError::Corrupt { cons, prod });
    }
    Ok(n)
}

/// The (up to two) pieces of the ring's data area from index `at` for `len`
/// bytes, as (page offset, length) pairs.
fn pieces(ring: Ring, at: u32, len: usize) -> [(usize, usize); 2] {
    let (base, _, _) = ring.layout();
    let start = (at % RING_SIZE) as usize;
    let first = len.min(RING_SIZE as usize - start);
    [(base + start, first), (base, len - first)]
}

/// The producing side of one ring. It keeps its own index: the page's copy
/// is only ever written (published), never read back, so a peer scribbling
/// on it cannot move this side. Only the consumer's index is read from the
/// page, once per call, and checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Producer {
    ring: Ring,
    prod: u32,
}

impl Producer {
    /// Takes over the producer index of `ring` as the page has it now.
    pub fn attach<M: RingMem + ?Sized>(m: &M, ring: Ring) -> Producer {
        let (_, _, p) = ring.layout();
        Producer {
            ring,
            prod: m.load_u32(p),
        }
    }

    /// The ring.
    pub fn ring(&self) -> Ring {
        self.ring
    }

    /// This side's index: bytes produced so far (wrapping).
    pub fn index(&self) -> u32 {
        self.prod
    }

    /// Bytes that can be written now.
    pub fn space<M: RingMem + ?Sized>(&self, m: &M) -> Result<u32, RingError> {
        let (_, c, _) = self.ring.layout();
        Ok(RING_SIZE - used(m.load_u32(c), self.prod)?)
    }

    /// Copies as much of `data` as fits into the ring and publishes it (the
    /// data is written before the index, with release ordering); returns
    /// the bytes written.
    pub fn write<M: RingMem + ?Sized>(
        &mut self,
        m: &mut M,
        data: &[u8],
    ) -> Result<usize, RingError> {
        let n = data.len().min(self.space(m)? as usize);
        let mut done = 0;
        for (off, len) in pieces(self.ring, self.prod, n) {
            if let Some(src) = data.get(done..done + len) {
                m.write(off, src);
            }
            done += len;
        }
        if n > 0 {
            self.prod = self.prod.wrapping_add(n as u32);
            let (_, _, p) = self.ring.layout();
            m.store_u32(p, self.prod);
        }
        Ok(n)
    }
}

/// The consuming side of one ring; as [`Producer`], it keeps its own index
/// and only reads (and checks) the producer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Consumer {
    ring: Ring,
    cons: u32,
}

impl Consumer {
    /// Takes over the consumer index of `ring` as the page has it now.
    pub fn attach<M: RingMem + ?Sized>(m: &M, ring: Ring) -> Consumer {
        let (_, c, _) = ring.layout();
        Consumer {
            ring,
            cons: m.load_u32(c),
        }
    }

    /// The ring.
    pub fn ring(&self) -> Ring {
        self.ring
    }

    /// This side's index: bytes consumed so far (wrapping).
    pub fn index(&self) -> u32 {
        self.cons
    }

    /// Bytes waiting to be read.
    pub fn available<M: RingMem + ?Sized>(&self, m: &M) -> Result<u32, RingError> {
        let (_, _, p) = self.ring.layout();
        used(self.cons, m.load_u32(p))
    }

    /// Copies up to `buf.len()` waiting bytes out of the ring without
    /// consuming them; returns the bytes copied.
    pub fn peek<M: RingMem + ?Sized>(&self, m: &M, buf: &mut [u8]) -> Result<usize, RingError> {
        let n = buf.len().min(self.available(m)? as usize);
        let mut done = 0;
        for (off, len) in pieces(self.ring, self.cons, n) {
            if let Some(dst) = buf.get_mut(done..done + len) {
                m.read(off, dst);
            }
            done += len;
        }
        Ok(n)
    }

    /// Copies up to `buf.len()` waiting bytes out of the ring and hands
    /// their space back (the index is published after the data is read);
    /// returns the bytes read.
    pub fn read<M: RingMem + ?Sized>(
        &mut self,
        m: &mut M,
        buf: &mut [u8],
    ) -> Result<usize, RingError> {
        let n = self.peek(m, buf)?;
        if n > 0 {
            self.cons = self.cons.wrapping_add(n as u32);
            let (_, c, _) = self.ring.layout();
            m.store_u32(c, self.cons);
        }
        Ok(n)
    }
}

/// Bytes waiting to be consumed in `ring` (both indices from the page).
pub fn available<M: RingMem + ?Sized>(m: &M, ring: Ring) -> Result<u32, RingError> {
    Consumer::attach(m, ring).available(m)
}

/// Free space in `ring` (both indices from the page).
pub fn space<M: RingMem + ?Sized>(m: &M, ring: Ring) -> Result<u32, RingError> {
    Producer::attach(m, ring).space(m)
}

/// Copies as much of `data` into `ring` as fits and publishes it; returns
/// the bytes written. For a side that keeps no state between calls (it
/// takes its own index from the page each time); see [`Producer`].
pub fn produce<M: RingMem + ?Sized>(
    m: &mut M,
    ring: Ring,
    data: &[u8],
) -> Result<usize, RingError> {
    Producer::attach(m, ring).write(m, data)
}

/// Copies up to `buf.len()` waiting bytes out of `ring` and frees them;
/// returns the bytes read. Stateless, as [`produce`]; see [`Consumer`].
pub fn consume<M: RingMem + ?Sized>(
    m: &mut M,
    ring: Ring,
    buf: &mut [u8],
) -> Result<usize, RingError> {
    Consumer::attach(m, ring).read(m, buf)
}

/// Copies up to `buf.len()` waiting bytes out of `ring` without consuming
/// them; returns the bytes copied.
pub fn peek<M: RingMem + ?Sized>(m: &M, ring: Ring, buf: &mut [u8]) -> Result<usize, RingError> {
    Consumer::attach(m, ring).peek(m, buf)
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

/// A ring page in an owned buffer (tests, fuzzing, a host's model of
/// guest pages): the same as `[u8]`, and sized, so it can be a
/// `&mut dyn RingMem`.
impl RingMem for alloc::vec::Vec<u8> {
    fn load_u32(&self, offset: usize) -> u32 {
        self[..].load_u32(offset)
    }
    fn store_u32(&mut self, offset: usize, value: u32) {
        self[..].store_u32(offset, value)
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        RingMem::read(&self[..], offset, buf)
    }
    fn write(&mut self, offset: usize, buf: &[u8]) {
        RingMem::write(&mut self[..], offset, buf)
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

    #[test]
    fn stateful_sides_wrap_the_index_and_the_ring() {
        let mut page = vec![0u8; 4096];
        // Start near the u32 wrap so both the index and the ring wrap.
        page.store_u32(REQ_PROD, u32::MAX - 700);
        page.store_u32(REQ_CONS, u32::MAX - 700);
        let mut tx = Producer::attach(&page[..], Ring::Req);
        let mut rx = Consumer::attach(&page[..], Ring::Req);
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 3) as u8).collect();
        let (mut got, mut sent, mut rounds) = (Vec::new(), 0, 0);
        while got.len() < data.len() {
            sent += tx.write(&mut page[..], &data[sent..]).unwrap();
            assert_eq!(page.load_u32(REQ_PROD), tx.index());
            let mut chunk = [0u8; 333];
            let n = rx.read(&mut page[..], &mut chunk).unwrap();
            got.extend_from_slice(&chunk[..n]);
            rounds += 1;
            assert!(rounds < 100);
        }
        assert_eq!(got, data);
        assert_eq!(tx.index(), rx.index());
        assert!(tx.index() < 5000, "the index wrapped");
        assert_eq!((tx.ring(), rx.ring()), (Ring::Req, Ring::Req));
    }

    #[test]
    fn a_scribbled_own_index_is_ignored() {
        let mut page = vec![0u8; 4096];
        let mut tx = Producer::attach(&page[..], Ring::Rsp);
        assert_eq!(tx.write(&mut page[..], &[9; 4]), Ok(4));
        // The peer writes nonsense into the producer's own index.
        page.store_u32(RSP_PROD, 999);
        assert_eq!(tx.write(&mut page[..], &[9; 4]), Ok(4));
        assert_eq!((tx.index(), page.load_u32(RSP_PROD)), (8, 8));
        let mut rx = Consumer::attach(&page[..], Ring::Rsp);
        assert_eq!(rx.read(&mut page[..], &mut [0; 3]), Ok(3));
        page.store_u32(RSP_CONS, 0);
        assert_eq!(rx.available(&page[..]), Ok(5));
        assert_eq!(rx.index(), 3);
        // The peer claims to have consumed more than was produced.
        page.store_u32(RSP_CONS, 20);
        assert_eq!(
            tx.space(&page[..]),
            Err(RingError::Corrupt { cons: 20, prod: 8 })
        );
        assert_eq!(
            RingError::Corrupt { cons: 20, prod: 8 }.to_string(),
            "corrupt ring indices (consumer 20, producer 8: more than 1024 bytes apart)"
        );
    }

    #[test]
    fn peeking_leaves_the_bytes() {
        let mut page = vec![0u8; 4096];
        assert_eq!(produce(&mut page[..], Ring::Req, b"abcdef"), Ok(6));
        let mut b = [0u8; 4];
        assert_eq!(peek(&page[..], Ring::Req, &mut b), Ok(4));
        assert_eq!(&b, b"abcd");
        assert_eq!(available(&page[..], Ring::Req), Ok(6));
        assert_eq!(consume(&mut page[..], Ring::Req, &mut b), Ok(4));
        assert_eq!(available(&page[..], Ring::Req), Ok(2));
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
