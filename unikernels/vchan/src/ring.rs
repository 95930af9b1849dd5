//! One ring: where its bytes live, and copies in and out with wraparound.

use alloc::vec::Vec;

use crate::layout::PAGE_SIZE;
use crate::SharedMem;

/// Where a ring's bytes are.
pub(crate) enum RingData<M> {
    /// Inside the shared page, at this offset (orders 10 and 11).
    InPage(usize),
    /// In these pages, in order (orders 12 and up).
    Pages(Vec<M>),
}

/// One direction of the channel, as seen by one endpoint.
pub(crate) struct Ring<M> {
    /// Offset of this ring's `cons` in the shared page (`prod` follows it).
    pub(crate) shared: usize,
    /// log2 of the size, validated and private (the page's copy is not
    /// trusted after the handshake).
    pub(crate) order: u8,
    pub(crate) data: RingData<M>,
    /// This endpoint's own index (cons when reading, prod when writing):
    /// a private copy, published to the page but never read back from it.
    pub(crate) own: u32,
}

impl<M: SharedMem> Ring<M> {
    /// Offset of `cons` in the shared page.
    pub(crate) fn cons_off(&self) -> usize {
        self.shared
    }

    /// Offset of `prod` in the shared page.
    pub(crate) fn prod_off(&self) -> usize {
        self.shared.wrapping_add(4)
    }

    /// Size in bytes (at most 1 MiB).
    pub(crate) fn size(&self) -> u32 {
        1u32.checked_shl(self.order.into()).unwrap_or(0)
    }

    /// Copies ring bytes starting at free-running index `start` into `dst`
    /// (`dst.len()` at most the ring size).
    pub(crate) fn copy_out(&self, page: &M, start: u32, dst: &mut [u8]) {
        let (pos, first) = self.split(start, dst.len());
        let (a, b) = dst.split_at_mut(first);
        self.read_at(page, pos, a);
        self.read_at(page, 0, b);
    }

    /// Copies `src` into the ring starting at free-running index `start`
    /// (`src.len()` at most the ring size).
    pub(crate) fn copy_in(&self, page: &M, start: u32, src: &[u8]) {
        let (pos, first) = self.split(start, src.len());
        let (a, b) = src.split_at(first);
        self.write_at(page, pos, a);
        self.write_at(page, 0, b);
    }

    /// Ring offset of `start`, and how many of `len` bytes fit before the
    /// end of the ring.
    fn split(&self, start: u32, len: usize) -> (usize, usize) {
        let size = self.size();
        let pos = (start & size.wrapping_sub(1)) as usize;
        let contig = (size as usize).saturating_sub(pos);
        (pos, contig.min(len))
    }

    fn read_at(&self, page: &M, pos: usize, dst: &mut [u8]) {
        match &self.data {
            RingData::InPage(base) => page.read_bytes(base.wrapping_add(pos), dst),
            RingData::Pages(pages) => {
                let (mut pos, mut rest) = (pos, dst);
                while !rest.is_empty() {
                    let off = pos % PAGE_SIZE;
                    let n = PAGE_SIZE.saturating_sub(off).min(rest.len());
                    let (head, tail) = core::mem::take(&mut rest).split_at_mut(n);
                    if let Some(p) = pages.get(pos / PAGE_SIZE) {
                        p.read_bytes(off, head);
                    }
                    (pos, rest) = (pos.wrapping_add(n), tail);
                }
            }
        }
    }

    fn write_at(&self, page: &M, pos: usize, src: &[u8]) {
        match &self.data {
            RingData::InPage(base) => page.write_bytes(base.wrapping_add(pos), src),
            RingData::Pages(pages) => {
                let (mut pos, mut rest) = (pos, src);
                while !rest.is_empty() {
                    let off = pos % PAGE_SIZE;
                    let n = PAGE_SIZE.saturating_sub(off).min(rest.len());
                    let (head, tail) = rest.split_at(n);
                    if let Some(p) = pages.get(pos / PAGE_SIZE) {
                        p.write_bytes(off, head);
                    }
                    (pos, rest) = (pos.wrapping_add(n), tail);
                }
            }
        }
    }
}
