//! The memory pattern and checksum of the `hello` unikernel, shared with host tests.
//!
//! `hello` fills a [`PATTERN_LEN`]-byte heap buffer with [`fill_pattern`] from
//! [`PATTERN_SEED`], reads it back with [`fnv1a64`] and prints
//! `hello: checksum fnv1a64=0x<16 hex digits> bytes=<PATTERN_LEN>`; the value must be
//! [`EXPECTED_CHECKSUM`], which [`expected_checksum`] recomputes without a buffer.

#![no_std]
#![forbid(unsafe_code)]

/// Bytes in the pattern buffer (1 MiB).
pub const PATTERN_LEN: usize = 1 << 20;
/// Seed of the pattern generator.
pub const PATTERN_SEED: u64 = 0x636c_6f69_7374_6572; // "cloister"
/// FNV-1a-64 of the [`PATTERN_LEN`]-byte pattern from [`PATTERN_SEED`].
pub const EXPECTED_CHECKSUM: u64 = 0x2e98_5a62_9595_d075;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The pattern generator: xorshift64* (Marsaglia / Vigna), never zero-state.
#[derive(Clone, Debug)]
pub struct Pattern {
    state: u64,
}

impl Pattern {
    /// A generator from `seed` (a zero seed is replaced by a fixed constant).
    pub const fn new(seed: u64) -> Self {
        Pattern {
            state: if seed == 0 { FNV_OFFSET } else { seed },
        }
    }

    /// The next 64-bit word.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Fills `buf` with the pattern from `seed`: successive words, little-endian, the
/// last one truncated.
pub fn fill_pattern(buf: &mut [u8], seed: u64) {
    let mut gen = Pattern::new(seed);
    for chunk in buf.chunks_mut(8) {
        let word = gen.next_u64().to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

/// Incremental FNV-1a (64-bit).
#[derive(Clone, Debug)]
pub struct Fnv1a64(u64);

impl Default for Fnv1a64 {
    fn default() -> Self {
        Fnv1a64(FNV_OFFSET)
    }
}

impl Fnv1a64 {
    /// Hashes more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
    }

    /// The hash so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// FNV-1a (64-bit) of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a64::default();
    h.update(bytes);
    h.finish()
}

/// FNV-1a-64 of the `len`-byte pattern from `seed`, computed without a buffer.
pub fn expected_checksum(len: usize, seed: u64) -> u64 {
    let mut gen = Pattern::new(seed);
    let mut h = Fnv1a64::default();
    let mut left = len;
    while left > 0 {
        let word = gen.next_u64().to_le_bytes();
        let n = left.min(8);
        h.update(&word[..n]);
        left -= n;
    }
    h.finish()
}

/// The exact checksum line `hello` prints for a buffer of `len` bytes hashing to `sum`.
pub fn checksum_line(sum: u64, len: usize) -> ChecksumLine {
    ChecksumLine { sum, len }
}

/// Display form of the checksum line (see [`checksum_line`]).
#[derive(Clone, Copy, Debug)]
pub struct ChecksumLine {
    sum: u64,
    len: usize,
}

impl core::fmt::Display for ChecksumLine {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "hello: checksum fnv1a64={:#018x} bytes={}",
            self.sum, self.len
        )
    }
}
