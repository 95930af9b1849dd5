//! The unikernel heap: a power-of-two size-class allocator over one region.
//!
//! Every block is a power of two between 16 bytes and the region size and is
//! aligned to its own size, so any `Layout` whose size and alignment fit the class
//! is satisfied. Fresh blocks come from a bump pointer; when the pointer has to be
//! aligned up, the skipped gap is split into smaller naturally aligned blocks and put
//! on their free lists, so nothing is lost. Freed blocks go on a per-class free list
//! (an intrusive singly linked list) and are reused by the next allocation of the
//! same class. Blocks are never split or merged across classes: a service that frees
//! many small blocks and then wants large ones will not get that memory back.
//!
//! Page runs for device memory come from the other end: [`Heap::allocate_pages`]
//! takes exactly the pages asked for from the top of the region downwards (no
//! power-of-two rounding: a 132 KiB DMA ring costs 132 KiB), and freed runs are
//! reused first-fit, merged with their neighbours and with the top.
//!
//! [`plan_region`] picks the region from the PVH memory map; it is plain logic with
//! host tests, like the allocator core.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr;

use crate::start_info::{MemmapEntry, MemoryType};

/// log2 of the smallest block (16 bytes: room for the free-list link, and the
/// alignment of every `u128`).
const MIN_SHIFT: u32 = 4;
/// Number of size classes (16 B .. 2^63 B).
const CLASSES: usize = (usize::BITS - MIN_SHIFT) as usize;
/// Page size for [`Heap::allocate_pages`].
pub const PAGE: usize = 4096;
/// Free page runs remembered; a run freed when all slots are taken is lost.
const RUNS: usize = 16;

/// Allocator state for one region. Use through [`LockedHeap`].
pub struct Heap {
    /// Next never-used address (always a multiple of 16).
    next: usize,
    /// End of the region.
    end: usize,
    /// Heads of the free lists, one per class; 0 is the empty list.
    free: [usize; CLASSES],
    /// First address of the region.
    start: usize,
    /// Lowest address handed to page runs (the blocks grow up to it).
    top: usize,
    /// Lowest `top` ever.
    top_low: usize,
    /// Free page runs `(address, length)`; length 0 is an empty slot.
    runs: [(usize, usize); RUNS],
}

/// Size class of `layout`: index into `free` and block size.
fn class_of(layout: Layout) -> Option<(usize, usize)> {
    let want = layout.size().max(layout.align()).max(1 << MIN_SHIFT);
    let size = want.checked_next_power_of_two()?;
    Some(((size.trailing_zeros() - MIN_SHIFT) as usize, size))
}

impl Heap {
    /// A heap with no memory: every allocation fails until [`Heap::init`].
    pub const fn empty() -> Self {
        Heap {
            next: 0,
            end: 0,
            free: [0; CLASSES],
            start: 0,
            top: 0,
            top_low: 0,
            runs: [(0, 0); RUNS],
        }
    }

    /// Hands the region `[start, start + size)` to the heap.
    ///
    /// # Safety
    ///
    /// The region must be valid, writable memory that nothing else uses for the rest
    /// of the program, and `init` must be called at most once.
    pub unsafe fn init(&mut self, start: usize, size: usize) {
        let Some(end) = start.checked_add(size) else {
            return;
        };
        let Some(first) = start.checked_add(15).map(|a| a & !15) else {
            return;
        };
        if first >= end {
            return;
        }
        self.start = first;
        self.next = first;
        self.end = end;
        self.top = end & !(PAGE - 1);
        self.top_low = self.top;
        if self.top < first {
            self.top = first;
            self.top_low = first;
        }
    }

    /// First address and length of the region (0, 0 before [`Heap::init`]).
    pub fn region(&self) -> (usize, usize) {
        (self.start, self.end - self.start)
    }

    /// Bytes handed out by the bump pointer so far (free-list reuse not counted).
    pub fn bump_used(&self) -> usize {
        self.next - self.start
    }

    /// Bytes of the region ever used: the blocks' bump pointer plus the deepest
    /// the page runs reached from the top. Everything allocated lies in there.
    pub fn high_water(&self) -> usize {
        (self.next - self.start) + (self.end - self.top_low)
    }

    /// `len` bytes (rounded up to whole pages) of page-aligned memory from
    /// the top of the region; null if it does not fit.
    pub fn allocate_pages(&mut self, len: usize) -> *mut u8 {
        let Some(len) = len.checked_add(PAGE - 1).map(|l| l & !(PAGE - 1)) else {
            return ptr::null_mut();
        };
        if len == 0 {
            return ptr::null_mut();
        }
        if let Some(run) = self.runs.iter_mut().find(|r| r.1 >= len) {
            let at = run.0;
            run.0 += len;
            run.1 -= len;
            return at as *mut u8;
        }
        match self.top.checked_sub(len) {
            Some(new_top) if new_top >= self.next => {
                self.top = new_top;
                self.top_low = self.top_low.min(new_top);
                new_top as *mut u8
            }
            _ => ptr::null_mut(),
        }
    }

    /// Returns a run from [`Heap::allocate_pages`].
    ///
    /// # Safety
    ///
    /// `at` and `len` must be what `allocate_pages` was given and returned, and
    /// the run must not be used afterwards.
    pub unsafe fn deallocate_pages(&mut self, at: *mut u8, len: usize) {
        let (mut at, mut len) = (at as usize, (len + PAGE - 1) & !(PAGE - 1));
        // Merge with free neighbours.
        for run in self.runs.iter_mut().filter(|r| r.1 != 0) {
            if run.0 + run.1 == at {
                at = run.0;
                len += run.1;
                *run = (0, 0);
            } else if at + len == run.0 {
                len += run.1;
                *run = (0, 0);
            }
        }
        if at == self.top {
            self.top += len;
            // A free run that now starts at the top goes back to it too.
            loop {
                let top = self.top;
                let Some(run) = self.runs.iter_mut().find(|r| r.1 != 0 && r.0 == top) else {
                    break;
                };
                self.top += run.1;
                *run = (0, 0);
            }
        } else if let Some(slot) = self.runs.iter_mut().find(|r| r.1 == 0) {
            *slot = (at, len);
        }
    }

    fn push(&mut self, class: usize, block: usize) {
        // SAFETY: `block` is a block of at least 16 bytes, aligned to 16, inside the
        // region given to `init`, and owned by the heap (free); its first word is
        // the free-list link.
        unsafe { ptr::write(block as *mut usize, self.free[class]) };
        self.free[class] = block;
    }

    fn pop(&mut self, class: usize) -> Option<usize> {
        let block = self.free[class];
        if block == 0 {
            return None;
        }
        // SAFETY: `block` came from `push`, which wrote its link; it is still free.
        self.free[class] = unsafe { ptr::read(block as *const usize) };
        Some(block)
    }

    /// Allocates a block for `layout`; null if the heap is exhausted.
    pub fn allocate(&mut self, layout: Layout) -> *mut u8 {
        let Some((class, size)) = class_of(layout) else {
            return ptr::null_mut();
        };
        if class >= CLASSES {
            return ptr::null_mut();
        }
        if let Some(block) = self.pop(class) {
            return block as *mut u8;
        }
        let Some(aligned) = self.next.checked_add(size - 1).map(|a| a & !(size - 1)) else {
            return ptr::null_mut();
        };
        let Some(block_end) = aligned.checked_add(size) else {
            return ptr::null_mut();
        };
        if block_end > self.top {
            return ptr::null_mut();
        }
        // Split the alignment gap into naturally aligned power-of-two blocks: the
        // lowest set bit of `next` is always a block that fits before `aligned`.
        while self.next < aligned {
            let chunk = 1usize << self.next.trailing_zeros();
            let chunk_class = (chunk.trailing_zeros() - MIN_SHIFT) as usize;
            let at = self.next;
            self.push(chunk_class, at);
            self.next += chunk;
        }
        self.next = block_end;
        aligned as *mut u8
    }

    /// Returns a block to its free list.
    ///
    /// # Safety
    ///
    /// `block` must come from [`Heap::allocate`] on this heap with the same `layout`,
    /// and must not be used afterwards.
    pub unsafe fn deallocate(&mut self, block: *mut u8, layout: Layout) {
        if let Some((class, _)) = class_of(layout) {
            self.push(class, block as usize);
        }
    }
}

/// A [`Heap`] behind a spin lock, usable as `#[global_allocator]`.
pub struct LockedHeap(spin::Mutex<Heap>);

impl LockedHeap {
    /// An allocator with no memory yet.
    pub const fn empty() -> Self {
        LockedHeap(spin::Mutex::new(Heap::empty()))
    }

    /// Hands a region to the heap.
    ///
    /// # Safety
    ///
    /// As [`Heap::init`].
    pub unsafe fn init(&self, start: usize, size: usize) {
        // SAFETY: forwarded contract.
        unsafe { self.0.lock().init(start, size) }
    }

    /// First address and length of the heap region.
    pub fn region(&self) -> (usize, usize) {
        self.0.lock().region()
    }

    /// Bytes handed out by the bump pointer so far.
    pub fn bump_used(&self) -> usize {
        self.0.lock().bump_used()
    }

    /// See [`Heap::high_water`].
    pub fn high_water(&self) -> usize {
        self.0.lock().high_water()
    }

    /// See [`Heap::allocate_pages`].
    pub fn allocate_pages(&self, len: usize) -> *mut u8 {
        self.0.lock().allocate_pages(len)
    }

    /// See [`Heap::deallocate_pages`].
    ///
    /// # Safety
    ///
    /// As [`Heap::deallocate_pages`].
    pub unsafe fn deallocate_pages(&self, at: *mut u8, len: usize) {
        // SAFETY: forwarded contract.
        unsafe { self.0.lock().deallocate_pages(at, len) }
    }
}

// SAFETY: `allocate` returns blocks of at least `layout.size()` bytes aligned to at
// least `layout.align()` (its class is a power of two >= both, and blocks are
// naturally aligned), blocks are never handed out twice while live, and the lock
// serialises all access to the free lists.
unsafe impl GlobalAlloc for LockedHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.0.lock().allocate(layout)
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        // SAFETY: the GlobalAlloc contract gives us a live block from `alloc`.
        unsafe { self.0.lock().deallocate(block, layout) }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return ptr::null_mut();
        };
        if class_of(layout) == class_of(new_layout) {
            return block;
        }
        // SAFETY: `new_layout` is valid (checked above).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live, distinct and at least `min(size)` long.
            unsafe {
                ptr::copy_nonoverlapping(block, new, layout.size().min(new_size));
                self.dealloc(block, layout);
            }
        }
        new
    }
}

/// Chooses the heap region: the largest stretch of RAM in `memmap` that lies at or
/// above `floor` (the end of the image), below `limit` (the end of the identity
/// map), and outside every range in `exclude` (boot modules, for example).
///
/// Returns `[start, end)` with both ends 4 KiB aligned, or `None` if no page is left.
pub fn plan_region(
    memmap: &[MemmapEntry],
    floor: u64,
    limit: u64,
    exclude: &[(u64, u64)],
) -> Option<(u64, u64)> {
    const PAGE: u64 = 4096;
    let mut best: Option<(u64, u64)> = None;
    let mut consider = |start: u64, end: u64| {
        let start = start.checked_add(PAGE - 1).map(|a| a & !(PAGE - 1));
        let end = end & !(PAGE - 1);
        if let Some(start) = start {
            if start < end && best.is_none_or(|(bs, be)| end - start > be - bs) {
                best = Some((start, end));
            }
        }
    };
    for e in memmap.iter().filter(|e| e.kind == MemoryType::Ram) {
        let start = e.addr.max(floor);
        let end = e.end().min(limit);
        if start >= end {
            continue;
        }
        // Cut [start, end) by every excluded range: walk left to right over the
        // excluded ranges that overlap, in address order.
        let mut cursor = start;
        loop {
            let next_cut = exclude
                .iter()
                .filter(|&&(s, l)| s < end && s.saturating_add(l) > cursor && l > 0)
                .min_by_key(|&&(s, _)| s);
            match next_cut {
                Some(&(s, l)) => {
                    if s > cursor {
                        consider(cursor, s);
                    }
                    cursor = s.saturating_add(l);
                    if cursor >= end {
                        break;
                    }
                }
                None => {
                    consider(cursor, end);
                    break;
                }
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::start_info::ram;
    use std::vec::Vec;

    #[test]
    fn plan_picks_ram_above_image() {
        let map = [
            ram(0, 0x9_fc00),
            MemmapEntry {
                addr: 0xf_0000,
                size: 0x1_0000,
                kind: MemoryType::Reserved,
            },
            ram(0x10_0000, 0x3f0_0000),
        ];
        assert_eq!(
            plan_region(&map, 0x13_4567, 1 << 33, &[]),
            Some((0x13_5000, 0x400_0000))
        );
        // The limit clips the end.
        assert_eq!(
            plan_region(&map, 0x20_0000, 0x300_0800, &[]),
            Some((0x20_0000, 0x300_0000))
        );
        // Nothing above the floor.
        assert_eq!(plan_region(&map, 0x400_0000, 1 << 33, &[]), None);
        assert_eq!(plan_region(&[], 0, 1 << 33, &[]), None);
    }

    #[test]
    fn plan_avoids_excluded_ranges() {
        let map = [ram(0x10_0000, 0x3f0_0000)];
        // A module in the middle: the larger side wins.
        let got = plan_region(&map, 0x20_0000, 1 << 33, &[(0x100_0000, 0x1000)]);
        assert_eq!(got, Some((0x100_1000, 0x400_0000)));
        let got = plan_region(
            &map,
            0x20_0000,
            1 << 33,
            &[(0x380_0000, 0x10), (0x10_0000, 0x30_0000)],
        );
        assert_eq!(got, Some((0x40_0000, 0x380_0000)));
        // Covering everything leaves nothing.
        assert_eq!(
            plan_region(&map, 0x20_0000, 1 << 33, &[(0, u64::MAX)]),
            None
        );
    }

    #[test]
    fn plan_handles_extreme_entries() {
        let map = [ram(u64::MAX - 0x1000, 0x1000), ram(0x1000_0000, 0x10)];
        assert_eq!(plan_region(&map, 0, u64::MAX, &[]), None);
    }

    /// A heap over a leaked host buffer, starting 1 MiB aligned.
    fn test_heap(len: usize) -> (Heap, usize) {
        const ALIGN: usize = 1 << 20;
        let buf: &'static mut [u8] = Vec::leak(std::vec![0u8; len + ALIGN]);
        let base = (buf.as_mut_ptr() as usize + ALIGN - 1) & !(ALIGN - 1);
        let mut heap = Heap::empty();
        // SAFETY: the leaked buffer is ours for the rest of the test process.
        unsafe { heap.init(base, len) };
        (heap, base)
    }

    #[test]
    fn allocations_are_aligned_disjoint_and_reused() {
        let (mut heap, base) = test_heap(1 << 20);
        let mut blocks = Vec::new();
        for (size, align) in [
            (1, 1),
            (24, 8),
            (100, 4),
            (4096, 4096),
            (17, 64),
            (3000, 16),
            (8192, 8192),
        ] {
            let layout = Layout::from_size_align(size, align).expect("layout");
            let p = heap.allocate(layout) as usize;
            assert_ne!(p, 0);
            assert_eq!(p % align, 0, "align {align}");
            assert!(p >= base && p + size <= base + (1 << 20));
            blocks.push((p, layout));
        }
        let mut sorted: Vec<(usize, usize)> =
            blocks.iter().map(|&(p, l)| (p, p + l.size())).collect();
        sorted.sort();
        for w in sorted.windows(2) {
            assert!(w[0].1 <= w[1].0, "overlap {w:?}");
        }
        // Freed blocks are reused for the same class.
        let (p, l) = blocks[3];
        // SAFETY: `p` came from `allocate` with layout `l`.
        unsafe { heap.deallocate(p as *mut u8, l) };
        assert_eq!(
            heap.allocate(Layout::from_size_align(4000, 8).expect("layout")) as usize,
            p
        );
    }

    #[test]
    fn alignment_gaps_are_recycled() {
        let (mut heap, base) = test_heap(1 << 20);
        let small = heap.allocate(Layout::from_size_align(16, 16).expect("layout")) as usize;
        assert_eq!(small, base);
        let big = heap.allocate(Layout::from_size_align(65536, 8).expect("layout")) as usize;
        assert_eq!(big, base + 65536);
        // The gap [base+16, base+65536) was split into one block of each class
        // from 16 B to 32 KiB; those serve the next allocations, below `big`.
        for shift in 4..16 {
            let p = heap.allocate(Layout::from_size_align(1 << shift, 8).expect("layout")) as usize;
            assert!(p > base && p < big, "class {shift}");
            assert_eq!(p % (1 << shift), 0);
        }
        assert_eq!(heap.bump_used(), 2 * 65536);
    }

    #[test]
    fn exhaustion_returns_null() {
        let (mut heap, _) = test_heap(64 * 1024);
        let l = Layout::from_size_align(16 * 1024, 8).expect("layout");
        for _ in 0..4 {
            assert!(!heap.allocate(l).is_null());
        }
        assert!(heap.allocate(l).is_null());
        assert!(heap
            .allocate(Layout::from_size_align(1 << 40, 8).expect("layout"))
            .is_null());
        assert!(heap
            .allocate(Layout::from_size_align(usize::MAX / 2, 1).expect("layout"))
            .is_null());
        let mut empty = Heap::empty();
        assert!(empty
            .allocate(Layout::from_size_align(1, 1).expect("layout"))
            .is_null());
    }

    #[test]
    fn page_runs_come_from_the_top_exactly() {
        let (mut heap, base) = test_heap(1 << 20);
        let top = base + (1 << 20);
        let a = heap.allocate_pages(132 * 1024) as usize;
        assert_eq!(a, top - 132 * 1024);
        let b = heap.allocate_pages(1) as usize;
        assert_eq!(b, a - PAGE);
        assert_eq!(heap.high_water(), 136 * 1024);
        // Blocks and runs do not overlap; blocks stop at the runs.
        let l = Layout::from_size_align(512 * 1024, 8).expect("layout");
        let big = heap.allocate(l) as usize;
        assert_eq!(big, base);
        assert!(heap
            .allocate(Layout::from_size_align(512 * 1024, 8).expect("layout"))
            .is_null());
        assert!(heap.allocate_pages(512 * 1024).is_null());
        assert!(heap.allocate_pages(0).is_null());
        assert!(heap.allocate_pages(usize::MAX).is_null());
        // Freeing the lower run, then the upper, returns everything to the top.
        // SAFETY: both runs came from allocate_pages with these lengths.
        unsafe {
            heap.deallocate_pages(b as *mut u8, 1);
            assert_eq!(heap.top, a);
            heap.deallocate_pages(a as *mut u8, 132 * 1024);
        }
        assert_eq!(heap.top, top);
        assert_eq!(heap.high_water(), 512 * 1024 + 136 * 1024);
    }

    #[test]
    fn freed_runs_are_reused_and_merged() {
        let (mut heap, base) = test_heap(1 << 20);
        let top = base + (1 << 20);
        let runs: Vec<usize> = (0..4)
            .map(|_| heap.allocate_pages(2 * PAGE) as usize)
            .collect();
        // Free the middle two: they merge into one 4-page run.
        // SAFETY: runs from allocate_pages with these lengths.
        unsafe {
            heap.deallocate_pages(runs[1] as *mut u8, 2 * PAGE);
            heap.deallocate_pages(runs[2] as *mut u8, 2 * PAGE);
        }
        assert_eq!(heap.allocate_pages(4 * PAGE) as usize, runs[2]);
        // SAFETY: as above.
        unsafe {
            heap.deallocate_pages(runs[2] as *mut u8, 4 * PAGE);
            // The lowest run touches the top, then the merged run does, then the
            // highest: all return.
            heap.deallocate_pages(runs[3] as *mut u8, 2 * PAGE);
            heap.deallocate_pages(runs[0] as *mut u8, 2 * PAGE);
        }
        assert_eq!(heap.top, top);
        assert!(heap.runs.iter().all(|r| r.1 == 0));
    }

    #[test]
    fn global_alloc_realloc_keeps_data() {
        let (heap, _) = test_heap(1 << 20);
        let locked = LockedHeap(spin::Mutex::new(heap));
        let l = Layout::from_size_align(10, 1).expect("layout");
        // SAFETY: standard GlobalAlloc use on a heap over a leaked buffer.
        unsafe {
            let p = locked.alloc(l);
            assert!(!p.is_null());
            ptr::copy_nonoverlapping(b"0123456789".as_ptr(), p, 10);
            // Same class: same block.
            assert_eq!(locked.realloc(p, l, 16), p);
            let q = locked.realloc(p, l, 1000);
            assert!(!q.is_null() && q != p);
            assert_eq!(core::slice::from_raw_parts(q, 10), b"0123456789");
            locked.dealloc(q, Layout::from_size_align(1000, 1).expect("layout"));
        }
        assert_eq!(locked.region().1, 1 << 20);
    }
}
