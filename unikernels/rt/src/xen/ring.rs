//! The xenstore ring (`struct xenstore_domain_interface`, `io/xs_wire.h`):
//! two 1024-byte byte rings in one page, requests (guest → store) at 0 and
//! replies (store → guest) at 1024, with free-running `u32` indices
//! `req_cons`, `req_prod`, `rsp_cons`, `rsp_prod` at 2048.
//!
//! A side owns one index of each ring and keeps its own copy of it (the
//! page's copy is only published, never trusted back), and reads the
//! other side's index from the page. `prod - cons` (wrapping) is the number
//! of unread bytes; byte `i` of the stream is at `i & 1023`. A distance
//! over 1024 means the other side wrote nonsense: [`RingError`], and
//! nothing is read or written. Ordering follows Linux's `xenbus_comms`:
//! the other side's index is loaded with acquire ordering before the data
//! is touched, and our index is published with release ordering after.
//! After a [`Producer::write`] or [`Consumer::read`] that moved data the
//! caller notifies the other side through the event channel.

use core::fmt;

use super::abi::xenstore::{REQ, REQ_CONS, REQ_PROD, RING_SIZE, RSP, RSP_CONS, RSP_PROD};
use super::page::Page;

/// Where one ring and its two indices are in the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingLayout {
    data: usize,
    cons: usize,
    prod: usize,
}

/// The request ring: the guest produces, the store consumes.
pub const REQUESTS: RingLayout = RingLayout {
    data: REQ,
    cons: REQ_CONS,
    prod: REQ_PROD,
};

/// The reply ring: the store produces, the guest consumes.
pub const RESPONSES: RingLayout = RingLayout {
    data: RSP,
    cons: RSP_CONS,
    prod: RSP_PROD,
};

/// The other side broke the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// `prod - cons` is more than the ring holds.
    BadIndices {
        /// The producer index.
        prod: u32,
        /// The consumer index.
        cons: u32,
    },
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RingError::BadIndices { prod, cons } => write!(
                f,
                "ring indices prod {prod:#x} and cons {cons:#x} are {} bytes apart (ring size {RING_SIZE})",
                prod.wrapping_sub(cons)
            ),
        }
    }
}

/// Unread bytes between `cons` and `prod`, checked.
fn used(prod: u32, cons: u32) -> Result<u32, RingError> {
    let n = prod.wrapping_sub(cons);
    if n > RING_SIZE {
        return Err(RingError::BadIndices { prod, cons });
    }
    Ok(n)
}

fn mask(idx: u32) -> usize {
    (idx & (RING_SIZE - 1)) as usize
}

/// The producing side of a ring.
#[derive(Clone, Copy, Debug)]
pub struct Producer {
    ring: RingLayout,
    prod: u32,
}

impl Producer {
    /// Takes over the producer index as the page has it now.
    pub fn attach(page: &Page<'_>, ring: RingLayout) -> Producer {
        Producer {
            ring,
            prod: page.load_u32(ring.prod).unwrap_or(0),
        }
    }

    /// Our producer index.
    pub fn index(&self) -> u32 {
        self.prod
    }

    /// Bytes that can be written now.
    pub fn space(&self, page: &Page<'_>) -> Result<u32, RingError> {
        let cons = page.load_u32(self.ring.cons).unwrap_or(0);
        Ok(RING_SIZE - used(self.prod, cons)?)
    }

    /// Writes as much of `src` as fits and publishes it; returns how much.
    pub fn write(&mut self, page: &Page<'_>, src: &[u8]) -> Result<usize, RingError> {
        // Acquire: the data is written only after the consumer index is read.
        let space = self.space(page)? as usize;
        let n = src.len().min(space);
        let mut done = 0;
        while done < n {
            let at = mask(self.prod.wrapping_add(done as u32));
            let chunk = (n - done).min(RING_SIZE as usize - at);
            let Some(bytes) = src.get(done..done + chunk) else {
                break;
            };
            if page.write(self.ring.data + at, bytes).is_none() {
                break;
            }
            done += chunk;
        }
        if done > 0 {
            self.prod = self.prod.wrapping_add(done as u32);
            // Release: the data is visible before the new index.
            let _ = page.store_u32(self.ring.prod, self.prod);
        }
        Ok(done)
    }
}

/// The consuming side of a ring.
#[derive(Clone, Copy, Debug)]
pub struct Consumer {
    ring: RingLayout,
    cons: u32,
}

impl Consumer {
    /// Takes over the consumer index as the page has it now.
    pub fn attach(page: &Page<'_>, ring: RingLayout) -> Consumer {
        Consumer {
            ring,
            cons: page.load_u32(ring.cons).unwrap_or(0),
        }
    }

    /// Our consumer index.
    pub fn index(&self) -> u32 {
        self.cons
    }

    /// Bytes waiting to be read.
    pub fn available(&self, page: &Page<'_>) -> Result<u32, RingError> {
        let prod = page.load_u32(self.ring.prod).unwrap_or(0);
        used(prod, self.cons)
    }

    /// Reads up to `dst.len()` waiting bytes and frees their space; returns
    /// how many.
    pub fn read(&mut self, page: &Page<'_>, dst: &mut [u8]) -> Result<usize, RingError> {
        // Acquire: the data is read only after the producer index is.
        let avail = self.available(page)? as usize;
        let n = dst.len().min(avail);
        let mut done = 0;
        while done < n {
            let at = mask(self.cons.wrapping_add(done as u32));
            let chunk = (n - done).min(RING_SIZE as usize - at);
            let Some(bytes) = dst.get_mut(done..done + chunk) else {
                break;
            };
            if page.read(self.ring.data + at, bytes).is_none() {
                break;
            }
            done += chunk;
        }
        if done > 0 {
            self.cons = self.cons.wrapping_add(done as u32);
            // Release: the data is read before its space is handed back.
            let _ = page.store_u32(self.ring.cons, self.cons);
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::super::alloc::vec::Vec;
    use super::super::page::testing::TestPage;
    use super::*;

    #[test]
    fn layout_is_xs_wire() {
        assert_eq!(
            (REQ, RSP, REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD),
            (0, 1024, 2048, 2052, 2056, 2060)
        );
    }

    #[test]
    fn round_trip_with_wrap_around() {
        let buf = TestPage::new();
        let p = buf.page();
        // Start near the u32 wrap so both the index and the ring wrap.
        p.store_u32(REQ_PROD, u32::MAX - 700).unwrap();
        p.store_u32(REQ_CONS, u32::MAX - 700).unwrap();
        let mut tx = Producer::attach(&p, REQUESTS);
        let mut rx = Consumer::attach(&p, REQUESTS);
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut got = Vec::new();
        let mut sent = 0;
        let mut rounds = 0;
        while got.len() < data.len() {
            sent += tx.write(&p, &data[sent..]).unwrap();
            assert_eq!(p.load_u32(REQ_PROD), Some(tx.index()));
            assert!(rx.available(&p).unwrap() <= RING_SIZE);
            let mut chunk = [0u8; 333];
            let n = rx.read(&p, &mut chunk).unwrap();
            got.extend_from_slice(&chunk[..n]);
            rounds += 1;
            assert!(rounds < 100);
        }
        assert_eq!(got, data);
        assert_eq!(tx.index(), rx.index());
        assert!(tx.index() < 5000, "the index wrapped");
    }

    #[test]
    fn full_and_empty() {
        let buf = TestPage::new();
        let p = buf.page();
        let mut tx = Producer::attach(&p, RESPONSES);
        let mut rx = Consumer::attach(&p, RESPONSES);
        assert_eq!(rx.read(&p, &mut [0; 10]).unwrap(), 0);
        assert_eq!(tx.write(&p, &[1; 2000]).unwrap(), 1024);
        assert_eq!(tx.space(&p).unwrap(), 0);
        assert_eq!(tx.write(&p, &[1; 10]).unwrap(), 0);
        assert_eq!(rx.read(&p, &mut [0; 1]).unwrap(), 1);
        assert_eq!(tx.write(&p, &[2; 10]).unwrap(), 1);
        let mut all = [0u8; 2048];
        assert_eq!(rx.read(&p, &mut all).unwrap(), 1024);
        assert_eq!(all[1023], 2);
        // The other ring was not touched.
        assert_eq!(p.load_u32(REQ_PROD), Some(0));
        assert_eq!(p.load_u32(REQ_CONS), Some(0));
    }

    #[test]
    fn hostile_indices_are_refused() {
        let buf = TestPage::new();
        let p = buf.page();
        let mut rx = Consumer::attach(&p, RESPONSES);
        // The store claims 1025 bytes.
        p.store_u32(RSP_PROD, 1025).unwrap();
        assert_eq!(
            rx.read(&p, &mut [0; 4]),
            Err(RingError::BadIndices {
                prod: 1025,
                cons: 0
            })
        );
        assert_eq!(rx.index(), 0, "nothing consumed");
        // Moves backwards.
        p.store_u32(RSP_PROD, u32::MAX).unwrap();
        assert!(rx.available(&p).is_err());
        let mut tx = Producer::attach(&p, REQUESTS);
        // The store claims to have consumed more than was produced.
        p.store_u32(REQ_CONS, 5).unwrap();
        assert!(tx.write(&p, &[0; 4]).is_err());
        p.store_u32(REQ_CONS, 0).unwrap();
        // The store scribbles our own index: we keep ours.
        assert_eq!(tx.write(&p, &[9; 4]).unwrap(), 4);
        p.store_u32(REQ_PROD, 999).unwrap();
        assert_eq!(tx.write(&p, &[9; 4]).unwrap(), 4);
        assert_eq!(tx.index(), 8);
        assert_eq!(p.load_u32(REQ_PROD), Some(8));
        use super::super::alloc::string::ToString;
        assert_eq!(
            RingError::BadIndices {
                prod: 1025,
                cons: 0
            }
            .to_string(),
            "ring indices prod 0x401 and cons 0x0 are 1025 bytes apart (ring size 1024)"
        );
    }
}
