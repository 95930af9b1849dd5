//! The engine of cloister's store (storevm-uk): Xen's xenstore, speaking
//! its wire protocol (`xen/include/public/io/xs_wire.h`, semantics of
//! `docs/misc/xenstore.txt`), independent of any transport.
//!
//! [`Store::handle`] takes one complete message from a domain and returns
//! an [`Output`]: the reply for that domain, then any watch events for any
//! domain, then any domains to connect or disconnect. The transport (a ring
//! per domain, a channel to the VMM) only moves bytes: [`ring`] is the
//! xenstore ring page, [`server`] serves every domain's ring page with the
//! engine (what `storevm` runs as the store service VM).
//!
//! What it implements:
//!
//! * **Tree**: `/`-separated paths of `[A-Za-z0-9-/_@]`, at most 3072 bytes;
//!   relative paths are taken against `/local/domain/<domid>`; every node has
//!   a (possibly empty) binary value and children. `XS_WRITE` and
//!   `XS_MKDIR` create missing parents; `XS_RM` removes a subtree.
//! * **Permissions** ([`perms`]): owner plus default, then per-domain
//!   `r`/`w`/`b`/`n`; privileged domains (dom0 by default) and owners have
//!   full access; new nodes inherit their parent's list and an unprivileged
//!   creator becomes the owner; only a privileged domain may give a node away
//!   (`EPERM`). A request on a node the caller may not see answers `EACCES`
//!   rather than `ENOENT` unless the nearest existing ancestor would allow
//!   the same access, so existence does not leak.
//! * **Watches**: a change to a path fires every watch on it or on an
//!   ancestor, with the changed path; removing a subtree also fires watches
//!   set exactly on removed descendants. Each watch gets at most one event per
//!   path per request (or per committed transaction), only if its domain may
//!   read the node or its parent (before or after a permission change). A new
//!   watch fires once at once. `@introduceDomain` and `@releaseDomain` fire on
//!   introduction and release, for domains allowed to read those special
//!   paths (privileged ones by default; see `XS_SET_PERMS` on them).
//! * **Transactions**: an overlay plus the generation of every node read or
//!   written; `XS_TRANSACTION_END T` answers `EAGAIN` if any of them changed
//!   meanwhile, and fires the transaction's watch events only when it
//!   commits.
//! * **Quotas** ([`Quota`]) for unprivileged domains: nodes owned, entry
//!   size, permissions per node (`ENOSPC`), watches (`E2BIG`), open
//!   transactions (`ENOSPC`).
//! * **Domains**: `XS_INTRODUCE` / `XS_RELEASE` (privileged only), also as
//!   [`Store::introduce`] / [`Store::release`] for the VMM. A released
//!   domain's nodes pass to the first privileged domain and entries naming
//!   it are dropped, so a later domain with the same id inherits nothing.
//!
//! Differences from C xenstored, all deliberate: watch events are never
//! duplicated for one change; `/` watches do not see `@` special events;
//! `XS_CONTROL` knows only `print` and `help`; transaction conflicts are
//! detected per node (a transaction conflicts with a change to any node it
//! read or wrote, or to the nearest existing ancestor of a missing node it
//! looked up), as the protocol document plans.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

extern crate alloc;

pub mod client;
pub mod path;
pub mod perms;
pub mod ring;
pub mod selfcheck;
pub mod server;
mod store;
pub mod tree;
pub mod wire;

#[cfg(test)]
mod tests;

pub use store::{Config, DomainEvent, Outgoing, Output, Quota, Store};
pub use wire::{ErrorCode, Header, MsgType, Request};

/// A Xen domain id.
pub type DomId = u16;
