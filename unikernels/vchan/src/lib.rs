//! vchan: byte channels between domains, compatible with libxenvchan.
//!
//! A vchan is two rings of bytes in memory the *server* grants to the
//! *client*, plus an event channel for kicks. This crate speaks the exact
//! protocol of Xen's libxenvchan (`tools/libs/vchan`,
//! `xen/include/public/io/libxenvchan.h`), so a cloister unikernel can talk
//! to a Linux guest using libxenvchan (and vice versa) with either role.
//!
//! # The shared page
//!
//! One page, `struct vchan_interface` ([`layout`] has the offsets):
//!
//! * `left` and `right`: `{cons, prod}` u32 pairs. **The left ring carries
//!   client → server data, the right ring server → client.** Each index is
//!   written by one side only: the producer writes `prod`, the consumer
//!   `cons`. Indices run freely and wrap at 2^32; a ring position is
//!   `index & (size - 1)`.
//! * `left_order`, `right_order` (u16): ring sizes as powers of two,
//!   10..=20, written by the server before sharing. Order 10 means the
//!   ring is at offset 1024 of this page, order 11 at offset 2048 (the
//!   two cannot both be in the page at the same offset); orders 12 and
//!   up use `2^(order-12)` extra granted pages, whose grant references
//!   follow in `grants[]` (left ring's first, then right's), ending before
//!   any in-page ring.
//! * `cli_live`, `srv_live`: each side's own byte: 1 connected, 0 closed.
//!   The server starts `cli_live` at 2, "no client yet".
//! * `cli_notify`, `srv_notify`: notification requests. A side that found
//!   too little data (or room) ORs [`NOTIFY_WRITE`] (or [`NOTIFY_READ`])
//!   into the *other* side's byte (the server into `cli_notify`); that side,
//!   after writing (or reading), clears the bit in its own byte and kicks
//!   the event channel only if it was set.
//!
//! # Trust
//!
//! The peer can change any byte of the page and the rings at any time. An
//! endpoint keeps private copies of the orders and of its own index, reads
//! each of the peer's index and live bytes once per use, and treats
//! `prod - cons > size` or a live byte above 2 as corruption: it returns
//! [`VchanError::Corrupt`], marks itself closed, and never indexes out of
//! bounds, panics or spins. A client validates the orders and grant list
//! before mapping anything else.
//!
//! # Using it
//!
//! Implement [`Platform`] (grants, event channels, store), [`Notify`] and,
//! for blocking calls, [`Wait`]; a page is a [`SharedMem`] (`[AtomicU32]`
//! implements it, so a mapped page viewed as `&'static [AtomicU32]` works).
//! Then [`Vchan::server`] / [`Vchan::client`], and [`Vchan::read`],
//! [`write`](Vchan::write) (streams), [`send`](Vchan::send),
//! [`recv`](Vchan::recv) (all-or-nothing packets), all non-blocking.
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

extern crate alloc;

mod endpoint;
mod error;
mod handshake;
pub mod layout;
mod mem;
mod platform;
mod ring;

pub use endpoint::{PeerState, Role, Vchan};
pub use error::{Errno, VchanError};
pub use layout::{Geometry, NOTIFY_READ, NOTIFY_WRITE, PAGE_SIZE};
pub use mem::{heap_page, SharedMem};
pub use platform::{Access, DomId, GrantRef, Notify, Perm, Platform, Port, Wait};
