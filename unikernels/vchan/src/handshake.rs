//! Setting a vchan up (`libxenvchan_server_init` / `libxenvchan_client_init`)
//! and tearing it down (`libxenvchan_close`).

use alloc::format;
use alloc::string::ToString;
use alloc::vec::Vec;
use core::sync::atomic::{fence, Ordering};

use crate::endpoint::Owned;
use crate::layout::*;
use crate::platform::{Access, DomId, GrantRef, Notify, Perm, Platform};
use crate::{Role, SharedMem, Vchan, VchanError};

impl<M: SharedMem, N: Notify> Vchan<M, N> {
    /// Offers a vchan to `peer` (`libxenvchan_server_init`).
    ///
    /// Picks the ring orders as libxenvchan does for rings of at least
    /// `read_min` (left, client → server) and `write_min` (right,
    /// server → client) bytes, each at most 1 MiB; allocates an unbound
    /// port for `peer`; allocates, fills and grants the shared page and the
    /// ring pages (writable, to `peer` only); then writes
    /// `<xs_path>/event-channel` and `<xs_path>/ring-ref` (in that order, so a
    /// client that finds `ring-ref` finds both) as decimal numbers, each
    /// with permissions `n<own domid>`, `r<peer>`.
    ///
    /// Returns at once: the client connects later (`cli_live` goes from 2 to
    /// 1 and the port fires). On failure everything done is undone.
    pub fn server<P>(
        plat: &mut P,
        peer: DomId,
        xs_path: &str,
        read_min: usize,
        write_min: usize,
    ) -> Result<Self, VchanError>
    where
        P: Platform<Mem = M, Notify = N>,
    {
        let geo = Geometry::for_server(read_min, write_min)?;
        let port = plat.alloc_unbound(peer)?;
        let mut grants = Vec::new();
        let mut pages = Vec::new();
        match share_pages(plat, peer, geo, &mut grants, &mut pages) {
            Ok(()) => {}
            Err(e) => {
                // Best-effort unwinding; the first error is what matters.
                let _ = release_granted(plat, &grants, pages);
                let _ = plat.close_port(port);
                return Err(e);
            }
        }
        let mut it = pages.into_iter();
        let Some(page) = it.next() else {
            return Err(VchanError::InvalidArgument);
        };
        let left: Vec<M> = it.by_ref().take(geo.left_pages()).collect();
        let right: Vec<M> = it.collect();
        // The shared page's grant comes first.
        let ring_ref = grants.first().copied().unwrap_or(0);
        let owned = Owned::Server {
            grants,
            xs_path: Some(xs_path.to_string()),
        };
        let notifier = plat.notifier();
        let mut v = Self::assemble(Role::Server, page, geo, left, right, port, notifier, owned);
        let perms = [
            Perm {
                domid: plat.domid(),
                access: Access::None,
            },
            Perm {
                domid: peer,
                access: Access::Read,
            },
        ];
        let publish = |plat: &mut P, key: &str, value: u32| -> Result<(), VchanError> {
            let path = format!("{xs_path}/{key}");
            plat.store_write(&path, &format!("{value}"))?;
            plat.store_set_perms(&path, &perms)?;
            Ok(())
        };
        let stored =
            publish(plat, "event-channel", port).and_then(|()| publish(plat, "ring-ref", ring_ref));
        if let Err(e) = stored {
            v.state_closed_quietly();
            let _ = v.close(plat);
            return Err(e);
        }
        Ok(v)
    }

    /// Connects to `server`'s vchan at `xs_path` (`libxenvchan_client_init`).
    ///
    /// Reads `ring-ref` and `event-channel` (decimal, non-zero), binds the
    /// port, maps the shared page, validates the orders and the grant
    /// list's placement, maps the left ring's pages writable and the right
    /// ring's read-only, checks the indices, then sets `cli_live` to 1 and
    /// `srv_notify` to `NOTIFY_WRITE` and notifies. On failure everything
    /// done is undone (and the page left as it was, unless that last notify
    /// fails: then `cli_live` is 0).
    pub fn client<P>(plat: &mut P, server: DomId, xs_path: &str) -> Result<Self, VchanError>
    where
        P: Platform<Mem = M, Notify = N>,
    {
        let ring_ref = parse_key(&plat.store_read(&format!("{xs_path}/ring-ref"))?)?;
        let remote_port = parse_key(&plat.store_read(&format!("{xs_path}/event-channel"))?)?;
        let port = plat.bind_interdomain(server, remote_port)?;
        let page = match plat.map_grant(server, ring_ref, false) {
            Ok(p) => p,
            Err(e) => {
                let _ = plat.close_port(port);
                return Err(e.into());
            }
        };
        let mut left = Vec::new();
        let mut right = Vec::new();
        let geo = match map_rings(plat, server, &page, &mut left, &mut right) {
            Ok(geo) => geo,
            Err(e) => {
                for p in left.into_iter().chain(right).chain(core::iter::once(page)) {
                    let _ = plat.unmap_grant(p);
                }
                let _ = plat.close_port(port);
                return Err(e);
            }
        };
        let notifier = plat.notifier();
        let mut v = Self::assemble(
            Role::Client,
            page,
            geo,
            left,
            right,
            port,
            notifier,
            Owned::Client,
        );
        if let Err(e) = v.check_indices() {
            v.state_closed_quietly();
            let _ = v.close(plat);
            return Err(e);
        }
        v.page.store_u8(CLI_LIVE, LIVE_CONNECTED);
        v.page.store_u8(SRV_NOTIFY, NOTIFY_WRITE);
        fence(Ordering::SeqCst);
        if let Err(e) = v.notifier.notify(v.port) {
            let _ = v.close(plat);
            return Err(e.into());
        }
        Ok(v)
    }

    /// Closes the channel (`libxenvchan_close`): shuts this end down (live
    /// byte 0, notify), then a server ends its grants, frees the pages whose
    /// grants ended (a page the client still maps is leaked rather than
    /// reused), closes the port and removes `xs_path`; a client unmaps and
    /// closes the port. Returns the first error; teardown always completes.
    pub fn close<P>(mut self, plat: &mut P) -> Result<(), VchanError>
    where
        P: Platform<Mem = M, Notify = N>,
    {
        let mut first = self.shutdown().err();
        let mut keep = |r: Result<(), VchanError>| {
            if let (Err(e), None) = (r, first) {
                first = Some(e);
            }
        };
        let port = self.port;
        let owned = core::mem::replace(&mut self.owned, Owned::Attached);
        let pages = self.take_pages();
        match owned {
            Owned::Attached => drop(pages),
            Owned::Server { grants, xs_path } => {
                keep(release_granted(plat, &grants, pages));
                keep(plat.close_port(port).map_err(Into::into));
                if let Some(path) = xs_path {
                    keep(plat.store_rm(&path).map_err(Into::into));
                }
            }
            Owned::Client => {
                for p in pages {
                    keep(plat.unmap_grant(p).map_err(Into::into));
                }
                keep(plat.close_port(port).map_err(Into::into));
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// The shared page, then the left ring's pages, then the right's.
    fn take_pages(self) -> Vec<M> {
        let Vchan {
            page, rd, wr, role, ..
        } = self;
        let (left, right) = match role {
            Role::Server => (rd, wr),
            Role::Client => (wr, rd),
        };
        let mut out = Vec::new();
        out.push(page);
        for r in [left, right] {
            if let crate::ring::RingData::Pages(p) = r.data {
                out.extend(p);
            }
        }
        out
    }
}

/// Server: allocates and fills the shared page, allocates the ring pages,
/// grants everything to `peer`. `pages` and `grants` grow in step (shared
/// page first), so a failure leaves a consistent prefix to undo.
fn share_pages<P: Platform>(
    plat: &mut P,
    peer: DomId,
    geo: Geometry,
    grants: &mut Vec<GrantRef>,
    pages: &mut Vec<P::Mem>,
) -> Result<(), VchanError> {
    let page = plat.alloc_page()?;
    if page.len() < PAGE_SIZE {
        plat.free_page(page);
        return Err(VchanError::InvalidArgument);
    }
    page.fill(0, PAGE_SIZE, 0);
    page.store_u32(
        LEFT_ORDER,
        u32::from(geo.left_order()) | u32::from(geo.right_order()) << 16,
    );
    page.store_u32(
        CLI_LIVE,
        u32::from_le_bytes([LIVE_UNCONNECTED, LIVE_CONNECTED, NOTIFY_WRITE, 0]),
    );
    let gref = match plat.grant_access(&page, peer, false) {
        Ok(g) => g,
        Err(e) => {
            plat.free_page(page);
            return Err(e.into());
        }
    };
    grants.push(gref);
    pages.push(page);
    for i in 0..geo.grant_count() {
        let ring_page = plat.alloc_page()?;
        if ring_page.len() < PAGE_SIZE {
            plat.free_page(ring_page);
            return Err(VchanError::InvalidArgument);
        }
        let gref = match plat.grant_access(&ring_page, peer, false) {
            Ok(g) => g,
            Err(e) => {
                plat.free_page(ring_page);
                return Err(e.into());
            }
        };
        grants.push(gref);
        pages.push(ring_page);
        if let Some(shared) = pages.first() {
            shared.store_u32(GRANTS.wrapping_add(i.wrapping_mul(4)), gref);
        }
    }
    Ok(())
}

/// Server: ends each grant, freeing its page when that worked.
fn release_granted<P: Platform>(
    plat: &mut P,
    grants: &[GrantRef],
    pages: Vec<P::Mem>,
) -> Result<(), VchanError> {
    let mut first = None;
    let mut grants = grants.iter();
    for page in pages {
        let ended = match grants.next() {
            Some(&g) => plat.end_access(g),
            None => Ok(()),
        };
        match ended {
            Ok(()) => plat.free_page(page),
            // Still mapped by the peer: leak the page rather than reuse it.
            Err(e) => {
                first.get_or_insert(VchanError::Platform(e));
            }
        }
    }
    first.map_or(Ok(()), Err)
}

/// Client: validates the server's page and maps the rings it lists.
fn map_rings<P: Platform>(
    plat: &mut P,
    server: DomId,
    page: &P::Mem,
    left: &mut Vec<P::Mem>,
    right: &mut Vec<P::Mem>,
) -> Result<Geometry, VchanError> {
    if page.len() < PAGE_SIZE {
        return Err(VchanError::InvalidArgument);
    }
    let geo = Geometry::new(page.load_u16(LEFT_ORDER), page.load_u16(RIGHT_ORDER))?;
    // Read the whole list once; the server may change it under us.
    let refs: Vec<GrantRef> = (0..geo.grant_count())
        .map(|i| page.load_u32(GRANTS.wrapping_add(i.wrapping_mul(4))))
        .collect();
    let (left_refs, right_refs) = refs.split_at(geo.left_pages().min(refs.len()));
    for &g in left_refs {
        left.push(plat.map_grant(server, g, false)?);
    }
    for &g in right_refs {
        right.push(plat.map_grant(server, g, true)?);
    }
    if left.iter().chain(right.iter()).any(|p| p.len() < PAGE_SIZE) {
        return Err(VchanError::InvalidArgument);
    }
    Ok(geo)
}

/// A store value holding a non-zero decimal u32 (what libxenvchan writes
/// with `%d`).
fn parse_key(s: &str) -> Result<u32, VchanError> {
    let s = s.trim_end_matches('\0');
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VchanError::BadHandshake);
    }
    match s.parse::<u32>() {
        Ok(v) if v != 0 => Ok(v),
        _ => Err(VchanError::BadHandshake),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_key;
    use crate::VchanError;

    #[test]
    fn store_values() {
        assert_eq!(parse_key("8"), Ok(8));
        assert_eq!(parse_key("4294967295"), Ok(u32::MAX));
        for bad in [
            "",
            "0",
            "-1",
            "+3",
            " 3",
            "3 ",
            "0x10",
            "4294967296",
            "99999999999",
        ] {
            assert_eq!(parse_key(bad), Err(VchanError::BadHandshake), "{bad:?}");
        }
    }
}
