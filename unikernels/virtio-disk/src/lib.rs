//! virtio-blk disks for cloister's unikernels, on `cloister-rt`'s
//! `virtio-drivers` (`rt::virtio`).
//!
//! * `VirtioDisk` wraps a `VirtIOBlk` as a [`block_device::BlockDevice`]:
//!   every transfer is checked with [`block_device::check_range`] against
//!   the capacity the device reported before it reaches the driver, a write
//!   to a device that negotiated `VIRTIO_BLK_F_RO` is refused before it is
//!   sent, and an empty transfer does nothing (the driver would refuse it).
//!   Optionally it keeps its first error in a shared cell, for a caller that
//!   handed the disk away to say later why it failed.
//! * `enumerate` opens every virtio-blk PCI function and reports, for each,
//!   its address, the opened disk, its capacity, whether it is read-only and
//!   its serial (`GET_ID`, validated by [`parse_serial`]); a function that
//!   fails validation is reported as `Unusable`. `open_first` opens only the
//!   first one.
//!
//! Everything that touches the device exists only when built for the
//! unikernel target (`target_os = "none"`), as `rt::virtio` does; on the host
//! only [`parse_serial`] is built, so that it can be unit-tested.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::arithmetic_side_effects
    )
)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod disk;

#[cfg(target_os = "none")]
pub use disk::{
    enumerate, open_first, Device, DiskError, FindError, OpenError, Unusable, VirtioDisk,
    DEVICE_IDS,
};

/// Bytes of a virtio-blk serial (the answer to `GET_ID`).
pub const SERIAL_LEN: usize = 20;

/// The serial in a device's `GET_ID` answer: the bytes before the first NUL
/// (all [`SERIAL_LEN`] when there is none), or `None` when they are empty
/// (the device has no serial) or not all printable ASCII (space included).
pub fn parse_serial(id: &[u8; SERIAL_LEN]) -> Option<&str> {
    let len = id.iter().position(|&b| b == 0).unwrap_or(id.len());
    let bytes = id.get(..len).filter(|b| !b.is_empty())?;
    if bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        core::str::from_utf8(bytes).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_validated() {
        let mut id = [0u8; SERIAL_LEN];
        id[..15].copy_from_slice(b"blkback-overlay");
        assert_eq!(parse_serial(&id), Some("blkback-overlay"));
        assert_eq!(parse_serial(&[b'x'; 20]), Some("xxxxxxxxxxxxxxxxxxxx"));
        assert_eq!(
            parse_serial(b"a serial\0\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"),
            Some("a serial")
        );
        assert_eq!(parse_serial(&[0; 20]), None);
        id[3] = 0xff;
        assert_eq!(parse_serial(&id), None);
        id[3] = b'\n';
        assert_eq!(parse_serial(&id), None);
    }
}
