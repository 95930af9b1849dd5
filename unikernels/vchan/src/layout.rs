//! The shared page (`struct vchan_interface`) and the ring geometry rules.
//!
//! ```text
//! offset  size  field          written by
//!      0     4  left.cons      server (it reads the left ring)
//!      4     4  left.prod      client (it writes the left ring)
//!      8     4  right.cons     client (it reads the right ring)
//!     12     4  right.prod     server (it writes the right ring)
//!     16     2  left_order     server, before sharing
//!     18     2  right_order    server, before sharing
//!     20     1  cli_live       client (server sets 2 before sharing)
//!     21     1  srv_live       server
//!     22     1  cli_notify     bits set by the server, cleared by the client
//!     23     1  srv_notify     bits set by the client, cleared by the server
//!     24  4*n  grants[]        server, before sharing: left ring's pages, then right's
//! ```
//!
//! All fields are little-endian. A ring of order 10 lives at offset 1024 of
//! the shared page, one of order 11 at offset 2048; orders 12 to 20 use
//! `2^(order-12)` separately granted pages.

use crate::VchanError;

/// Size of a page (and of the shared `vchan_interface` page).
pub const PAGE_SIZE: usize = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u8 = 12;

/// Offset of `left.cons` (the server's read index).
pub const LEFT_CONS: usize = 0;
/// Offset of `left.prod` (the client's write index).
pub const LEFT_PROD: usize = 4;
/// Offset of `right.cons` (the client's read index).
pub const RIGHT_CONS: usize = 8;
/// Offset of `right.prod` (the server's write index).
pub const RIGHT_PROD: usize = 12;
/// Offset of `left_order` (u16).
pub const LEFT_ORDER: usize = 16;
/// Offset of `right_order` (u16).
pub const RIGHT_ORDER: usize = 18;
/// Offset of `cli_live` (u8).
pub const CLI_LIVE: usize = 20;
/// Offset of `srv_live` (u8).
pub const SRV_LIVE: usize = 21;
/// Offset of `cli_notify` (u8): what the client must notify the server about.
pub const CLI_NOTIFY: usize = 22;
/// Offset of `srv_notify` (u8): what the server must notify the client about.
pub const SRV_NOTIFY: usize = 23;
/// Offset of `grants[0]` (u32 grant references).
pub const GRANTS: usize = 24;

/// Notify bit: kick the peer after writing (producing) data.
pub const NOTIFY_WRITE: u8 = 0x1;
/// Notify bit: kick the peer after reading (consuming) data.
pub const NOTIFY_READ: u8 = 0x2;

/// Live byte: that side has closed (or crashed).
pub const LIVE_CLOSED: u8 = 0;
/// Live byte: that side is connected.
pub const LIVE_CONNECTED: u8 = 1;
/// Live byte (`cli_live` only): no client has connected yet.
pub const LIVE_UNCONNECTED: u8 = 2;

/// Smallest ring order (1 KiB, at offset 1024 of the shared page).
pub const MIN_ORDER: u8 = 10;
/// Ring order kept at offset 2048 of the shared page (2 KiB).
pub const LARGE_IN_PAGE_ORDER: u8 = 11;
/// Largest ring order (1 MiB, 256 granted pages), as in libxenvchan.
pub const MAX_ORDER: u8 = 20;
/// Largest ring size in bytes.
pub const MAX_RING_SIZE: usize = 1 << MAX_ORDER;

/// Sizes of the two rings, as `left_order` / `right_order` of the page.
///
/// A valid geometry has both orders in `MIN_ORDER..=MAX_ORDER`, does not put
/// both rings at the same in-page offset, and its grant list ends before the
/// first in-page ring (or the end of the page).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    left: u8,
    right: u8,
}

impl Geometry {
    /// Validates orders read from a (possibly hostile) shared page.
    pub fn new(left_order: u16, right_order: u16) -> Result<Self, VchanError> {
        let ok = |o: u16| (u16::from(MIN_ORDER)..=u16::from(MAX_ORDER)).contains(&o);
        if !ok(left_order) || !ok(right_order) {
            return Err(VchanError::BadHandshake);
        }
        let (left, right) = (left_order as u8, right_order as u8);
        if left == right && left < PAGE_SHIFT {
            return Err(VchanError::BadHandshake);
        }
        let g = Geometry { left, right };
        let end = g
            .grant_count()
            .checked_mul(4)
            .and_then(|b| b.checked_add(GRANTS))
            .ok_or(VchanError::BadHandshake)?;
        if end > g.grant_limit() {
            return Err(VchanError::BadHandshake);
        }
        Ok(g)
    }

    /// The orders libxenvchan's `libxenvchan_server_init` picks for a server
    /// that wants to read at least `read_min` bytes (left ring) and write at
    /// least `write_min` bytes (right ring) at a time: the smallest
    /// power of two of at least a page, except that one or both rings go
    /// into the shared page (orders 10 and 11) when they fit.
    pub fn for_server(read_min: usize, write_min: usize) -> Result<Self, VchanError> {
        if read_min > MAX_RING_SIZE || write_min > MAX_RING_SIZE {
            return Err(VchanError::InvalidArgument);
        }
        let min_order = |n: usize| {
            let mut o = PAGE_SHIFT;
            while o < MAX_ORDER && n > (1usize << o) {
                o = o.saturating_add(1);
            }
            o
        };
        let (small, large) = (1usize << MIN_ORDER, 1usize << LARGE_IN_PAGE_ORDER);
        let (mut left, mut right) = (min_order(read_min), min_order(write_min));
        if read_min <= small && write_min <= large {
            (left, right) = (MIN_ORDER, LARGE_IN_PAGE_ORDER);
        } else if read_min <= large && write_min <= small {
            (left, right) = (LARGE_IN_PAGE_ORDER, MIN_ORDER);
        } else if read_min <= large {
            left = LARGE_IN_PAGE_ORDER;
        } else if write_min <= large {
            right = LARGE_IN_PAGE_ORDER;
        }
        Geometry::new(left.into(), right.into())
    }

    /// Order of the left ring (client → server).
    pub fn left_order(self) -> u8 {
        self.left
    }

    /// Order of the right ring (server → client).
    pub fn right_order(self) -> u8 {
        self.right
    }

    /// Number of granted pages of the left ring (0 when it is in the page).
    pub fn left_pages(self) -> usize {
        ring_pages(self.left)
    }

    /// Number of granted pages of the right ring (0 when it is in the page).
    pub fn right_pages(self) -> usize {
        ring_pages(self.right)
    }

    /// Length of the grant list.
    pub fn grant_count(self) -> usize {
        self.left_pages().saturating_add(self.right_pages())
    }

    /// Where the grant list must end: at the first in-page ring, or the end
    /// of the page.
    fn grant_limit(self) -> usize {
        [self.left, self.right]
            .into_iter()
            .filter_map(in_page_offset)
            .min()
            .unwrap_or(PAGE_SIZE)
    }
}

/// Offset of an in-page ring of `order` in the shared page, if it is one.
pub fn in_page_offset(order: u8) -> Option<usize> {
    match order {
        MIN_ORDER => Some(1024),
        LARGE_IN_PAGE_ORDER => Some(2048),
        _ => None,
    }
}

/// Number of separately granted pages of a ring of `order` (0 in-page).
pub fn ring_pages(order: u8) -> usize {
    match order.checked_sub(PAGE_SHIFT) {
        Some(shift) if order <= MAX_ORDER => 1usize << shift,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_orders_match_libxenvchan() {
        let g = |r, w| Geometry::for_server(r, w).map(|g| (g.left_order(), g.right_order()));
        assert_eq!(g(0, 0), Ok((10, 11)));
        assert_eq!(g(1024, 2048), Ok((10, 11)));
        assert_eq!(g(2048, 1024), Ok((11, 10)));
        assert_eq!(g(2048, 2048), Ok((11, 12)));
        assert_eq!(g(1025, 2049), Ok((11, 12)));
        assert_eq!(g(4096, 2048), Ok((12, 11)));
        assert_eq!(g(4097, 4096), Ok((13, 12)));
        assert_eq!(g(1 << 20, 1 << 20), Ok((20, 20)));
        assert_eq!(g(1 << 20, 1), Ok((20, 11)));
        assert_eq!(g((1 << 20) + 1, 0), Err(VchanError::InvalidArgument));
    }

    #[test]
    fn hostile_orders_are_rejected() {
        assert!(Geometry::new(9, 11).is_err());
        assert!(Geometry::new(10, 21).is_err());
        assert!(Geometry::new(10, 10).is_err());
        assert!(Geometry::new(11, 11).is_err());
        assert!(Geometry::new(0xffff, 12).is_err());
        // 256 grants (1 KiB + 24) would run into the ring at 1024.
        assert!(Geometry::new(20, 10).is_err());
        assert!(Geometry::new(19, 10).is_ok());
        assert!(Geometry::new(20, 11).is_ok());
        assert!(Geometry::new(12, 12).is_ok());
        assert_eq!(Geometry::new(20, 20).map(|g| g.grant_count()), Ok(512));
    }
}
