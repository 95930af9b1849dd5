//! Views of memory shared with another domain.
//!
//! The peer may change any byte at any time, so every access is an atomic
//! (relaxed) access: nothing is cached, nothing is assumed to stay put, and
//! there is no data race in the Rust sense. Ordering is the caller's job
//! (the endpoint issues the fences libxenvchan issues).

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// How many times [`SharedMem::store_u8`]'s default retries its
/// compare-exchange before giving up on atomicity (see there).
const CAS_TRIES: usize = 1024;

/// A view of shared memory, addressed by byte offset; multi-byte values are
/// little-endian.
///
/// Implementors provide relaxed atomic 32-bit operations at 4-aligned
/// offsets; everything else has a default built on them (override for speed,
/// e.g. with native byte atomics). Offsets at or past [`len`](Self::len) must
/// not panic: loads return 0 and stores are dropped. vchan only uses
/// offsets it has checked against `len`.
pub trait SharedMem {
    /// Length of the view in bytes (a multiple of 4).
    fn len(&self) -> usize;
    /// Relaxed atomic load of the u32 at `offset` (4-aligned).
    fn load_u32(&self, offset: usize) -> u32;
    /// Relaxed atomic store of the u32 at `offset` (4-aligned).
    fn store_u32(&self, offset: usize, value: u32);
    /// Relaxed atomic OR into the u32 at `offset`; returns the old value.
    fn fetch_or_u32(&self, offset: usize, bits: u32) -> u32;
    /// Relaxed atomic AND into the u32 at `offset`; returns the old value.
    fn fetch_and_u32(&self, offset: usize, bits: u32) -> u32;
    /// Relaxed compare-exchange of the u32 at `offset`: `Ok(old)` if it held
    /// `current` and now holds `new`, else `Err(actual)`.
    fn compare_exchange_u32(&self, offset: usize, current: u32, new: u32) -> Result<u32, u32>;

    /// Whether the view is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Relaxed load of the u16 at `offset` (2-aligned).
    fn load_u16(&self, offset: usize) -> u16 {
        (self.load_u32(offset & !3) >> shift(offset & 2)) as u16
    }

    /// Relaxed load of the byte at `offset`.
    fn load_u8(&self, offset: usize) -> u8 {
        (self.load_u32(offset & !3) >> shift(offset & 3)) as u8
    }

    /// Atomic OR of `bits` into the byte at `offset`; returns the old byte.
    fn fetch_or_u8(&self, offset: usize, bits: u8) -> u8 {
        let s = shift(offset & 3);
        (self.fetch_or_u32(offset & !3, u32::from(bits) << s) >> s) as u8
    }

    /// Atomic AND of `bits` into the byte at `offset`; returns the old byte.
    fn fetch_and_u8(&self, offset: usize, bits: u8) -> u8 {
        let s = shift(offset & 3);
        let mask = (u32::from(bits) << s) | !(0xff << s);
        (self.fetch_and_u32(offset & !3, mask) >> s) as u8
    }

    /// Stores the byte at `offset`, leaving its neighbours alone.
    ///
    /// The default is a compare-exchange loop on the containing word. Should
    /// the peer keep changing that word for 1024 rounds, it falls
    /// back to an AND then an OR (the byte is briefly the AND's result):
    /// this never loops forever.
    fn store_u8(&self, offset: usize, value: u8) {
        let (word, s) = (offset & !3, shift(offset & 3));
        let mask = 0xffu32 << s;
        let want = u32::from(value) << s;
        let mut cur = self.load_u32(word);
        for _ in 0..CAS_TRIES {
            match self.compare_exchange_u32(word, cur, (cur & !mask) | want) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
        self.fetch_and_u32(word, !mask | want);
        self.fetch_or_u32(word, want);
    }

    /// Copies `dst.len()` bytes starting at `offset` into `dst`.
    fn read_bytes(&self, offset: usize, dst: &mut [u8]) {
        let mut pos = offset;
        let mut rest = dst;
        while !rest.is_empty() {
            let skip = pos & 3;
            let word = self.load_u32(pos & !3).to_le_bytes();
            let n = 4usize.saturating_sub(skip).min(rest.len());
            let (head, tail) = core::mem::take(&mut rest).split_at_mut(n);
            if let Some(src) = word.get(skip..skip.saturating_add(n)) {
                head.copy_from_slice(src);
            }
            rest = tail;
            pos = pos.wrapping_add(n);
        }
    }

    /// Copies `src` to the bytes starting at `offset`. Bytes of a partly
    /// covered word outside the range are left untouched (and never stored).
    fn write_bytes(&self, offset: usize, src: &[u8]) {
        let mut pos = offset;
        let mut rest = src;
        while !rest.is_empty() {
            let skip = pos & 3;
            let n = 4usize.saturating_sub(skip).min(rest.len());
            let (head, tail) = rest.split_at(n);
            let mut bytes = [0u8; 4];
            if let Some(dst) = bytes.get_mut(skip..skip.saturating_add(n)) {
                dst.copy_from_slice(head);
            }
            let value = u32::from_le_bytes(bytes);
            if n == 4 {
                self.store_u32(pos, value);
            } else {
                let mask = (u32::MAX >> shift(4usize.wrapping_sub(n))) << shift(skip);
                self.fetch_and_u32(pos & !3, !mask | value);
                self.fetch_or_u32(pos & !3, value);
            }
            rest = tail;
            pos = pos.wrapping_add(n);
        }
    }

    /// Stores `value` into every byte of `offset..offset + len`.
    fn fill(&self, offset: usize, len: usize, value: u8) {
        let chunk = [value; 64];
        let mut done = 0usize;
        while done < len {
            let n = len.saturating_sub(done).min(chunk.len());
            self.write_bytes(offset.wrapping_add(done), chunk.get(..n).unwrap_or(&[]));
            done = done.saturating_add(n);
        }
    }
}

/// Bit shift of byte `i` (0..=3) of a little-endian word.
const fn shift(i: usize) -> u32 {
    ((i & 3) as u32) << 3
}

/// Memory as a slice of words: what a host test allocates, or what a
/// unikernel gets by viewing a mapped page as `&'static [AtomicU32]`.
impl SharedMem for [AtomicU32] {
    fn len(&self) -> usize {
        <[AtomicU32]>::len(self).saturating_mul(4)
    }
    fn load_u32(&self, offset: usize) -> u32 {
        self.get(offset >> 2).map_or(0, |w| w.load(Relaxed))
    }
    fn store_u32(&self, offset: usize, value: u32) {
        if let Some(w) = self.get(offset >> 2) {
            w.store(value, Relaxed);
        }
    }
    fn fetch_or_u32(&self, offset: usize, bits: u32) -> u32 {
        self.get(offset >> 2)
            .map_or(0, |w| w.fetch_or(bits, Relaxed))
    }
    fn fetch_and_u32(&self, offset: usize, bits: u32) -> u32 {
        self.get(offset >> 2)
            .map_or(0, |w| w.fetch_and(bits, Relaxed))
    }
    fn compare_exchange_u32(&self, offset: usize, current: u32, new: u32) -> Result<u32, u32> {
        match self.get(offset >> 2) {
            Some(w) => w.compare_exchange(current, new, Relaxed, Relaxed),
            None => Ok(current),
        }
    }
}

macro_rules! forward {
    ($($t:ty),*) => {$(
        impl<T: SharedMem + ?Sized> SharedMem for $t {
            fn len(&self) -> usize { (**self).len() }
            fn load_u32(&self, o: usize) -> u32 { (**self).load_u32(o) }
            fn store_u32(&self, o: usize, v: u32) { (**self).store_u32(o, v) }
            fn fetch_or_u32(&self, o: usize, b: u32) -> u32 { (**self).fetch_or_u32(o, b) }
            fn fetch_and_u32(&self, o: usize, b: u32) -> u32 { (**self).fetch_and_u32(o, b) }
            fn compare_exchange_u32(&self, o: usize, c: u32, n: u32) -> Result<u32, u32> {
                (**self).compare_exchange_u32(o, c, n)
            }
            fn load_u16(&self, o: usize) -> u16 { (**self).load_u16(o) }
            fn load_u8(&self, o: usize) -> u8 { (**self).load_u8(o) }
            fn fetch_or_u8(&self, o: usize, b: u8) -> u8 { (**self).fetch_or_u8(o, b) }
            fn fetch_and_u8(&self, o: usize, b: u8) -> u8 { (**self).fetch_and_u8(o, b) }
            fn store_u8(&self, o: usize, v: u8) { (**self).store_u8(o, v) }
            fn read_bytes(&self, o: usize, d: &mut [u8]) { (**self).read_bytes(o, d) }
            fn write_bytes(&self, o: usize, s: &[u8]) { (**self).write_bytes(o, s) }
            fn fill(&self, o: usize, n: usize, v: u8) { (**self).fill(o, n, v) }
        }
    )*};
}
forward!(&T, Box<T>, Arc<T>);

/// A zeroed page-sized word buffer, shareable between two endpoints in one
/// process (host tests, fuzzing).
pub fn heap_page() -> Arc<[AtomicU32]> {
    (0..crate::PAGE_SIZE / 4)
        .map(|_| AtomicU32::new(0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn little_endian_sub_word_access() {
        let m = heap_page();
        m.store_u32(20, 0x4433_2211);
        assert_eq!(m.load_u8(21), 0x22);
        assert_eq!(m.load_u16(22), 0x4433);
        m.store_u8(22, 0xaa);
        assert_eq!(m.load_u32(20), 0x44aa_2211);
        assert_eq!(m.fetch_or_u8(23, 0x02), 0x44);
        assert_eq!(m.fetch_and_u8(23, !0x04), 0x46);
        assert_eq!(m.load_u32(20), 0x42aa_2211);
    }

    #[test]
    fn byte_copies_keep_neighbours() {
        let m = heap_page();
        m.fill(0, 64, 0xee);
        for off in 0..8 {
            for len in 0..12 {
                let src: alloc::vec::Vec<u8> = (0..len as u8).map(|b| b ^ 0x5a).collect();
                m.fill(0, 64, 0xee);
                m.write_bytes(16 + off, &src);
                let mut all = [0u8; 64];
                m.read_bytes(0, &mut all);
                for (i, &b) in all.iter().enumerate() {
                    let inside = (16 + off..16 + off + len).contains(&i);
                    let want = if inside { src[i - 16 - off] } else { 0xee };
                    assert_eq!(b, want, "off {off} len {len} byte {i}");
                }
                let mut back = alloc::vec![0u8; len];
                m.read_bytes(16 + off, &mut back);
                assert_eq!(back, src);
            }
        }
    }

    #[test]
    fn out_of_range_is_harmless() {
        let m = heap_page();
        m.store_u32(4096, 1);
        m.write_bytes(4094, &[1, 2, 3, 4]);
        let mut d = [9u8; 4];
        m.read_bytes(4094, &mut d);
        assert_eq!(d, [1, 2, 0, 0]);
        assert_eq!(m.load_u32(1 << 40), 0);
    }
}
