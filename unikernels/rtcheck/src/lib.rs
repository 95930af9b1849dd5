//! The disk side of `rtcheck`: it prints the FNV-1a-64 of sector 0 of its
//! virtio-blk disk and writes [`sector1_pattern`] to sector 1. The host test
//! (`tests/qemu_rt.rs`) checks both against the image file.

#![no_std]
#![forbid(unsafe_code)]

/// Sector size.
pub const SECTOR: usize = 512;

/// FNV-1a (64-bit).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Byte `i` of what `rtcheck` writes to sector 1.
pub fn sector1_pattern(i: usize) -> u8 {
    (i as u8) ^ 0xa5
}
