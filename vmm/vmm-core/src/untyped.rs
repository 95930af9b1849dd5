//! Bookkeeping for the root task's memory: which untyped region an object is
//! carved from, and which CSpace slot receives its capability. The kernel
//! places each new object at the next offset in its untyped aligned to the
//! object's size; this model mirrors that, so "out of memory" is known before
//! the kernel is asked, and is an error, never a panic.

/// Errors from [`UntypedPool`] and [`SlotAllocator`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// No untyped region has room for an object of `2^size_bits` bytes.
    OutOfMemory { size_bits: u8 },
    /// The CSpace has no free slots left.
    OutOfSlots,
    /// The pool's table of regions is full.
    TooManyRegions,
}

impl core::fmt::Display for AllocError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AllocError::OutOfMemory { size_bits } => write!(
                f,
                "out of memory: no untyped region can hold an object of {} KiB",
                (1u64 << size_bits) / 1024
            ),
            AllocError::OutOfSlots => f.write_str("out of capability slots in the root CNode"),
            AllocError::TooManyRegions => f.write_str("too many untyped regions"),
        }
    }
}

/// One untyped region.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Region {
    /// Capability slot of the untyped.
    pub cap: u64,
    /// log2 of its size.
    pub size_bits: u8,
    /// Bytes already used (the kernel's free index).
    pub used: u64,
}

/// Maximum number of untyped regions tracked.
pub const MAX_REGIONS: usize = 256;

/// The untyped RAM regions the root task allocates from.
#[derive(Clone, Debug)]
pub struct UntypedPool {
    regions: [Region; MAX_REGIONS],
    len: usize,
}

impl Default for UntypedPool {
    fn default() -> Self {
        UntypedPool {
            regions: [Region::default(); MAX_REGIONS],
            len: 0,
        }
    }
}

impl UntypedPool {
    /// Adds a RAM untyped region (device regions must not be added).
    pub fn add(&mut self, cap: u64, size_bits: u8) -> Result<(), AllocError> {
        let slot = self
            .regions
            .get_mut(self.len)
            .ok_or(AllocError::TooManyRegions)?;
        *slot = Region {
            cap,
            size_bits: size_bits.min(63),
            used: 0,
        };
        self.len += 1;
        Ok(())
    }

    /// Total bytes not yet handed out (alignment gaps included as free).
    pub fn free_bytes(&self) -> u64 {
        self.regions[..self.len]
            .iter()
            .map(|r| (1u64 << r.size_bits).saturating_sub(r.used))
            .sum()
    }

    /// Chooses the region for `count` objects of `2^size_bits` bytes each and
    /// records the allocation. Returns the untyped capability to retype.
    /// Prefers the smallest region that fits, to keep large regions whole.
    pub fn alloc(&mut self, size_bits: u8, count: u64) -> Result<u64, AllocError> {
        let oom = AllocError::OutOfMemory { size_bits };
        if size_bits >= 63 || count == 0 {
            return Err(oom);
        }
        let size = 1u64 << size_bits;
        let total = size.checked_mul(count).ok_or(oom)?;
        let mut best: Option<(usize, u64)> = None;
        for (i, r) in self.regions[..self.len].iter().enumerate() {
            let start = match align_up(r.used, size) {
                Some(s) => s,
                None => continue,
            };
            let end = match start.checked_add(total) {
                Some(e) => e,
                None => continue,
            };
            if end <= 1u64 << r.size_bits {
                let better = match best {
                    None => true,
                    Some((b, _)) => r.size_bits < self.regions[b].size_bits,
                };
                if better {
                    best = Some((i, end));
                }
            }
        }
        let (i, end) = best.ok_or(oom)?;
        let r = &mut self.regions[i];
        r.used = end;
        Ok(r.cap)
    }
}

fn align_up(v: u64, align: u64) -> Option<u64> {
    let mask = align - 1;
    v.checked_add(mask).map(|x| x & !mask)
}

/// Hands out free slots of the root CNode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotAllocator {
    next: u64,
    end: u64,
}

impl SlotAllocator {
    /// Slots `start..end` are free.
    pub fn new(start: u64, end: u64) -> Self {
        SlotAllocator { next: start, end }
    }

    /// `count` consecutive free slots; returns the first.
    pub fn alloc(&mut self, count: u64) -> Result<u64, AllocError> {
        let first = self.next;
        let after = first.checked_add(count).ok_or(AllocError::OutOfSlots)?;
        if after > self.end {
            return Err(AllocError::OutOfSlots);
        }
        self.next = after;
        Ok(first)
    }

    /// Slots left.
    pub fn remaining(&self) -> u64 {
        self.end - self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn allocates_aligned_and_reports_oom() {
        let mut p = UntypedPool::default();
        p.add(10, 16).unwrap(); // 64 KiB
        assert_eq!(p.alloc(12, 1), Ok(10)); // used = 4 KiB
        assert_eq!(p.alloc(14, 1), Ok(10)); // aligned to 16 KiB: used = 32 KiB
        assert_eq!(p.alloc(15, 1), Ok(10)); // 32..64 KiB
        assert_eq!(
            p.alloc(12, 1),
            Err(AllocError::OutOfMemory { size_bits: 12 })
        );
        assert_eq!(p.free_bytes(), 0);
    }

    #[test]
    fn prefers_smallest_region() {
        let mut p = UntypedPool::default();
        p.add(1, 30).unwrap();
        p.add(2, 13).unwrap();
        assert_eq!(p.alloc(12, 2), Ok(2));
        assert_eq!(p.alloc(12, 1), Ok(1));
    }

    #[test]
    fn slots() {
        let mut s = SlotAllocator::new(100, 104);
        assert_eq!(s.alloc(3), Ok(100));
        assert_eq!(s.alloc(2), Err(AllocError::OutOfSlots));
        assert_eq!(s.alloc(1), Ok(103));
        assert_eq!(s.remaining(), 0);
        assert_eq!(s.alloc(u64::MAX), Err(AllocError::OutOfSlots));
    }

    proptest! {
        /// The model never hands out overlapping ranges or exceeds a region,
        /// whatever the request sequence.
        #[test]
        fn never_overcommits(sizes in proptest::collection::vec((4u8..24, 1u64..8), 1..60)) {
            let mut p = UntypedPool::default();
            p.add(1, 20).unwrap();
            p.add(2, 22).unwrap();
            let mut used = [0u64; 2];
            for (bits, count) in sizes {
                let before = p.free_bytes();
                match p.alloc(bits, count) {
                    Ok(cap) => {
                        let idx = (cap - 1) as usize;
                        let r = p.regions[idx];
                        prop_assert!(r.used <= 1u64 << r.size_bits);
                        prop_assert!(r.used >= used[idx] + (1u64 << bits) * count);
                        used[idx] = r.used;
                    }
                    Err(_) => prop_assert_eq!(before, p.free_bytes()),
                }
            }
        }
    }
}
