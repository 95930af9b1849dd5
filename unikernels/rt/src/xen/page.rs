//! [`Page`]: access to a 4 KiB page that another domain or the hypervisor
//! reads and writes at the same time (`shared_info`, grant-table frames,
//! the store ring, granted and mapped pages).
//!
//! Nothing here makes a Rust reference to the page's bytes: every access is
//! an atomic load, store or read-modify-write of one naturally aligned
//! 8/16/32/64-bit word (loads `Acquire`, stores `Release`, read-modify-writes
//! `SeqCst`, which on x86 are plain moves and `lock`-prefixed instructions),
//! or a byte copy made of relaxed atomic loads or stores and a fence. Offsets are checked: an access outside the page
//! or misaligned returns `None` and touches nothing.

use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};

use super::abi::PAGE_SIZE;

/// A view of a shared 4 KiB page, valid for `'a`.
#[derive(Clone, Copy, Debug)]
pub struct Page<'a> {
    base: NonNull<u8>,
    _life: PhantomData<&'a [AtomicU8]>,
}

// SAFETY: a `Page` only does atomic accesses, which any thread
// (and any other agent) may do concurrently.
unsafe impl Send for Page<'_> {}
// SAFETY: as for `Send`.
unsafe impl Sync for Page<'_> {}

impl<'a> Page<'a> {
    /// Bytes in the page.
    pub const SIZE: usize = PAGE_SIZE;

    /// A view of the 4096 bytes at `base`; `None` if `base` is null or not
    /// 8-byte aligned (real pages are 4 KiB aligned).
    ///
    /// # Safety
    ///
    /// `[base, base + 4096)` must be mapped memory, readable and writable,
    /// for all of `'a`, and must not be accessed through Rust references
    /// (only atomically) while the view is used.
    pub unsafe fn from_raw(base: *mut u8) -> Option<Page<'a>> {
        let base = NonNull::new(base)?;
        if !(base.as_ptr() as usize).is_multiple_of(8) {
            return None;
        }
        Some(Page {
            base,
            _life: PhantomData,
        })
    }

    /// The page's address (its guest-physical address under the runtime's
    /// identity mapping).
    pub fn addr(&self) -> u64 {
        self.base.as_ptr() as u64
    }

    /// Its guest frame number.
    pub fn gfn(&self) -> u64 {
        self.addr() >> 12
    }

    /// Pointer to `size` bytes at `offset`, if in the page and aligned to `size`.
    fn at(&self, offset: usize, size: usize) -> Option<*mut u8> {
        let end = offset.checked_add(size)?;
        if end > PAGE_SIZE || !offset.is_multiple_of(size) {
            return None;
        }
        // SAFETY: `offset + size <= 4096`, inside the page `from_raw` vouched for.
        Some(unsafe { self.base.as_ptr().add(offset) })
    }

    fn u8_at(&self, offset: usize) -> Option<&'a AtomicU8> {
        // SAFETY: in bounds (checked by `at`), valid for 'a and only accessed
        // atomically (`from_raw`'s contract).
        self.at(offset, 1).map(|p| unsafe { AtomicU8::from_ptr(p) })
    }

    fn u16_at(&self, offset: usize) -> Option<&'a AtomicU16> {
        // SAFETY: as in `u8_at`, and 2-aligned (`at` checks the offset, the
        // base is 8-aligned).
        self.at(offset, 2)
            .map(|p| unsafe { AtomicU16::from_ptr(p.cast()) })
    }

    fn u32_at(&self, offset: usize) -> Option<&'a AtomicU32> {
        // SAFETY: as in `u16_at`, 4-aligned.
        self.at(offset, 4)
            .map(|p| unsafe { AtomicU32::from_ptr(p.cast()) })
    }

    fn u64_at(&self, offset: usize) -> Option<&'a AtomicU64> {
        // SAFETY: as in `u16_at`, 8-aligned.
        self.at(offset, 8)
            .map(|p| unsafe { AtomicU64::from_ptr(p.cast()) })
    }

    /// Loads the byte at `offset`.
    pub fn load_u8(&self, offset: usize) -> Option<u8> {
        Some(self.u8_at(offset)?.load(Ordering::Acquire))
    }

    /// Stores the byte at `offset`.
    pub fn store_u8(&self, offset: usize, value: u8) -> Option<()> {
        self.u8_at(offset)?.store(value, Ordering::Release);
        Some(())
    }

    /// Loads the `u16` at `offset` (2-aligned).
    pub fn load_u16(&self, offset: usize) -> Option<u16> {
        Some(self.u16_at(offset)?.load(Ordering::Acquire))
    }

    /// Stores the `u16` at `offset` (2-aligned).
    pub fn store_u16(&self, offset: usize, value: u16) -> Option<()> {
        self.u16_at(offset)?.store(value, Ordering::Release);
        Some(())
    }

    /// `lock cmpxchg` on the `u16` at `offset`: `Ok(old)` if it held `old`
    /// and now holds `new`, else `Err(found)`.
    pub fn cmpxchg_u16(&self, offset: usize, old: u16, new: u16) -> Option<Result<u16, u16>> {
        Some(
            self.u16_at(offset)?
                .compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst),
        )
    }

    /// Loads the `u32` at `offset` (4-aligned).
    pub fn load_u32(&self, offset: usize) -> Option<u32> {
        Some(self.u32_at(offset)?.load(Ordering::Acquire))
    }

    /// Stores the `u32` at `offset` (4-aligned).
    pub fn store_u32(&self, offset: usize, value: u32) -> Option<()> {
        self.u32_at(offset)?.store(value, Ordering::Release);
        Some(())
    }

    /// `lock cmpxchg` on the `u32` at `offset`, as [`Page::cmpxchg_u16`].
    pub fn cmpxchg_u32(&self, offset: usize, old: u32, new: u32) -> Option<Result<u32, u32>> {
        Some(
            self.u32_at(offset)?
                .compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst),
        )
    }

    /// Locked OR into the `u32` at `offset`; returns the old value.
    pub fn fetch_or_u32(&self, offset: usize, bits: u32) -> Option<u32> {
        Some(self.u32_at(offset)?.fetch_or(bits, Ordering::SeqCst))
    }

    /// Locked AND into the `u32` at `offset`; returns the old value.
    pub fn fetch_and_u32(&self, offset: usize, bits: u32) -> Option<u32> {
        Some(self.u32_at(offset)?.fetch_and(bits, Ordering::SeqCst))
    }

    /// Loads the `u64` at `offset` (8-aligned).
    pub fn load_u64(&self, offset: usize) -> Option<u64> {
        Some(self.u64_at(offset)?.load(Ordering::Acquire))
    }

    /// Stores the `u64` at `offset` (8-aligned).
    pub fn store_u64(&self, offset: usize, value: u64) -> Option<()> {
        self.u64_at(offset)?.store(value, Ordering::Release);
        Some(())
    }

    /// `xchg` of the `u64` at `offset`; returns the old value.
    pub fn swap_u64(&self, offset: usize, value: u64) -> Option<u64> {
        Some(self.u64_at(offset)?.swap(value, Ordering::SeqCst))
    }

    /// Locked OR into the `u64` at `offset`; returns the old value.
    pub fn fetch_or_u64(&self, offset: usize, bits: u64) -> Option<u64> {
        Some(self.u64_at(offset)?.fetch_or(bits, Ordering::SeqCst))
    }

    /// Locked AND into the `u64` at `offset`; returns the old value.
    pub fn fetch_and_u64(&self, offset: usize, bits: u64) -> Option<u64> {
        Some(self.u64_at(offset)?.fetch_and(bits, Ordering::SeqCst))
    }

    /// Atomically clears bit `bit` (0–63) of the `u64` at `offset`; whether
    /// it was set.
    pub fn test_and_clear_bit(&self, offset: usize, bit: u32) -> Option<bool> {
        let mask = 1u64.checked_shl(bit)?;
        Some(self.fetch_and_u64(offset, !mask)? & mask != 0)
    }

    /// Atomically sets bit `bit` (0–63) of the `u64` at `offset`; whether
    /// it was set.
    pub fn test_and_set_bit(&self, offset: usize, bit: u32) -> Option<bool> {
        let mask = 1u64.checked_shl(bit)?;
        Some(self.fetch_or_u64(offset, mask)? & mask != 0)
    }

    /// Checks that `[offset, offset + len)` lies in the page.
    fn span(offset: usize, len: usize) -> Option<()> {
        (offset.checked_add(len)? <= PAGE_SIZE).then_some(())
    }

    /// Copies `buf.len()` bytes out of the page from `offset`: relaxed
    /// atomic loads (8 bytes at a time where aligned), then an acquire
    /// fence. The bytes may change meanwhile; the caller's protocol decides
    /// when they are stable.
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> Option<()> {
        Self::span(offset, buf.len())?;
        let mut i = 0;
        while i < buf.len() {
            let at = offset + i;
            let rest = buf.len() - i;
            if at.is_multiple_of(8) && rest >= 8 {
                let w = self.u64_at(at)?.load(Ordering::Relaxed);
                buf.get_mut(i..i + 8)?.copy_from_slice(&w.to_le_bytes());
                i += 8;
            } else {
                *buf.get_mut(i)? = self.u8_at(at)?.load(Ordering::Relaxed);
                i += 1;
            }
        }
        core::sync::atomic::fence(Ordering::Acquire);
        Some(())
    }

    /// Copies `buf` into the page at `offset`: a release fence, then relaxed
    /// atomic stores (8 bytes at a time where aligned).
    pub fn write(&self, offset: usize, buf: &[u8]) -> Option<()> {
        Self::span(offset, buf.len())?;
        core::sync::atomic::fence(Ordering::Release);
        let mut i = 0;
        while i < buf.len() {
            let at = offset + i;
            let rest = buf.len() - i;
            if at.is_multiple_of(8) && rest >= 8 {
                let mut w = [0u8; 8];
                w.copy_from_slice(buf.get(i..i + 8)?);
                self.u64_at(at)?
                    .store(u64::from_le_bytes(w), Ordering::Relaxed);
                i += 8;
            } else {
                self.u8_at(at)?.store(*buf.get(i)?, Ordering::Relaxed);
                i += 1;
            }
        }
        Some(())
    }

    /// Sets `[offset, offset + len)` to `byte` (as [`Page::write`]).
    pub fn fill(&self, offset: usize, len: usize, byte: u8) -> Option<()> {
        Self::span(offset, len)?;
        core::sync::atomic::fence(Ordering::Release);
        for at in offset..offset + len {
            self.u8_at(at)?.store(byte, Ordering::Relaxed);
        }
        Some(())
    }
}

/// A page-aligned page of host memory for host tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::super::alloc::boxed::Box;
    use super::Page;
    use core::cell::UnsafeCell;

    #[repr(C, align(4096))]
    pub struct TestPage(UnsafeCell<[u8; 4096]>);

    impl TestPage {
        pub fn new() -> Box<TestPage> {
            Box::new(TestPage(UnsafeCell::new([0; 4096])))
        }

        pub fn page(&self) -> Page<'_> {
            // SAFETY: the test owns the buffer for the borrow, and only uses
            // it through `Page` meanwhile.
            unsafe { Page::from_raw(self.0.get().cast()) }.unwrap()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::TestPage;
    use super::*;

    #[test]
    fn bounds_and_alignment() {
        let buf = TestPage::new();
        let p = buf.page();
        assert_eq!(p.addr() % 4096, 0);
        assert_eq!(p.store_u32(4092, 7), Some(()));
        assert_eq!(p.load_u32(4092), Some(7));
        assert_eq!(p.load_u32(4094), None, "misaligned");
        assert_eq!(p.load_u32(4096), None, "outside");
        assert_eq!(p.load_u64(usize::MAX - 3), None, "wrapping");
        assert_eq!(p.load_u16(1), None);
        assert_eq!(p.read(4090, &mut [0; 7]), None);
        assert_eq!(p.write(4089, &[1; 7]), Some(()));
        let mut b = [0; 7];
        p.read(4089, &mut b).unwrap();
        assert_eq!(b, [1; 7]);
        assert_eq!(p.fill(0, 4097, 0), None);
        p.fill(0, 4096, 0xaa).unwrap();
        assert_eq!(p.load_u64(8), Some(0xaaaa_aaaa_aaaa_aaaa));
        // SAFETY: null and misaligned pointers are refused before any use.
        unsafe {
            assert!(Page::from_raw(core::ptr::null_mut()).is_none());
            assert!(Page::from_raw((p.addr() + 4) as *mut u8).is_none());
        }
    }

    #[test]
    fn atomics() {
        let buf = TestPage::new();
        let p = buf.page();
        assert_eq!(p.test_and_set_bit(16, 63), Some(false));
        assert_eq!(p.test_and_set_bit(16, 63), Some(true));
        assert_eq!(p.load_u64(16), Some(1 << 63));
        assert_eq!(p.test_and_clear_bit(16, 63), Some(true));
        assert_eq!(p.test_and_clear_bit(16, 63), Some(false));
        assert_eq!(p.test_and_set_bit(16, 64), None);
        assert_eq!(p.swap_u64(16, 5), Some(0));
        assert_eq!(p.swap_u64(16, 0), Some(5));
        assert_eq!(p.cmpxchg_u16(2, 0, 9), Some(Ok(0)));
        assert_eq!(p.cmpxchg_u16(2, 0, 1), Some(Err(9)));
        assert_eq!(p.cmpxchg_u32(4, 0, 3), Some(Ok(0)));
        assert_eq!(p.load_u64(0), Some(0x0000_0003_0009_0000));
        assert_eq!(p.fetch_or_u32(4, 0x10), Some(3));
        assert_eq!(p.fetch_and_u32(4, !1), Some(0x13));
        assert_eq!(p.load_u32(4), Some(0x12));
        assert_eq!(p.fetch_or_u32(6, 1), None);
        p.store_u8(1, 0x42).unwrap();
        assert_eq!(p.load_u8(1), Some(0x42));
    }
}
