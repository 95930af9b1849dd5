//! An endpoint: stream and packet I/O, notifications, shutdown.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{fence, Ordering};

use crate::layout::*;
use crate::platform::{GrantRef, Notify, Port, Wait};
use crate::ring::{Ring, RingData};
use crate::{SharedMem, VchanError};

/// Which end of the channel this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Granted the pages; reads the left ring, writes the right one.
    Server,
    /// Mapped the pages; writes the left ring, reads the right one.
    Client,
}

/// The peer's live byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// 0: the peer closed the channel (or crashed).
    Closed,
    /// 1: the peer is connected.
    Connected,
    /// 2: no client has connected yet (seen by a server).
    Unconnected,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    Shutdown,
    Corrupt,
}

/// What [`Vchan::close`] gives back to the platform.
pub(crate) enum Owned {
    /// Nothing (from [`Vchan::attach`]).
    Attached,
    /// Own pages granted to `peer`; grants in page order (shared page,
    /// left ring's pages, right ring's pages); the store directory to
    /// remove.
    Server {
        grants: Vec<GrantRef>,
        xs_path: Option<String>,
    },
    /// Mapped grants of the server's.
    Client,
}

/// One end of a vchan.
///
/// Non-blocking: operations that cannot proceed return
/// [`VchanError::WouldBlock`] after asking the peer to notify this end's
/// port when they could; the `*_blocking` variants then call a [`Wait`].
/// Any protocol violation by the peer yields [`VchanError::Corrupt`] and
/// shuts this end down.
pub struct Vchan<M, N> {
    pub(crate) role: Role,
    pub(crate) page: M,
    pub(crate) rd: Ring<M>,
    pub(crate) wr: Ring<M>,
    pub(crate) port: Port,
    pub(crate) notifier: N,
    state: State,
    pub(crate) owned: Owned,
}

impl<M: SharedMem, N: Notify> Vchan<M, N> {
    /// Takes over an already set-up shared page (and the ring pages listed
    /// in its grant list, already mapped) without any handshake: for tests,
    /// fuzzing, and channels set up by other means.
    ///
    /// Validates the orders and the memory sizes and reads this end's
    /// indices from the page; live bytes and notify bits are left alone.
    pub fn attach(
        role: Role,
        page: M,
        left_pages: Vec<M>,
        right_pages: Vec<M>,
        port: Port,
        notifier: N,
    ) -> Result<Self, VchanError> {
        if page.len() < PAGE_SIZE {
            return Err(VchanError::InvalidArgument);
        }
        let geo = Geometry::new(page.load_u16(LEFT_ORDER), page.load_u16(RIGHT_ORDER))?;
        if left_pages.len() != geo.left_pages()
            || right_pages.len() != geo.right_pages()
            || left_pages
                .iter()
                .chain(&right_pages)
                .any(|p| p.len() < PAGE_SIZE)
        {
            return Err(VchanError::InvalidArgument);
        }
        let v = Self::assemble(
            role,
            page,
            geo,
            left_pages,
            right_pages,
            port,
            notifier,
            Owned::Attached,
        );
        v.check_indices()?;
        Ok(v)
    }

    /// Builds an endpoint over validated memory; own indices come from the
    /// page.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn assemble(
        role: Role,
        page: M,
        geo: Geometry,
        left_pages: Vec<M>,
        right_pages: Vec<M>,
        port: Port,
        notifier: N,
        owned: Owned,
    ) -> Self {
        let ring = |shared: usize, order: u8, pages: Vec<M>, own: usize| Ring {
            shared,
            order,
            data: match in_page_offset(order) {
                Some(off) => RingData::InPage(off),
                None => RingData::Pages(pages),
            },
            own: page.load_u32(own),
        };
        let left = ring(
            LEFT_CONS,
            geo.left_order(),
            left_pages,
            match role {
                Role::Server => LEFT_CONS,
                Role::Client => LEFT_PROD,
            },
        );
        let right = ring(
            RIGHT_CONS,
            geo.right_order(),
            right_pages,
            match role {
                Role::Server => RIGHT_PROD,
                Role::Client => RIGHT_CONS,
            },
        );
        let (rd, wr) = match role {
            Role::Server => (left, right),
            Role::Client => (right, left),
        };
        Vchan {
            role,
            page,
            rd,
            wr,
            port,
            notifier,
            state: State::Open,
            owned,
        }
    }

    /// Checks the peer's indices against ours without changing anything.
    pub(crate) fn check_indices(&self) -> Result<(), VchanError> {
        let ready = self
            .page
            .load_u32(self.rd.prod_off())
            .wrapping_sub(self.rd.own);
        let used = self
            .wr
            .own
            .wrapping_sub(self.page.load_u32(self.wr.cons_off()));
        if ready > self.rd.size() || used > self.wr.size() {
            return Err(VchanError::Corrupt);
        }
        Ok(())
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The local event-channel port (what [`Wait::wait`] is given).
    pub fn port(&self) -> Port {
        self.port
    }

    /// Size of the ring this end reads, in bytes.
    pub fn read_size(&self) -> usize {
        self.rd.size() as usize
    }

    /// Size of the ring this end writes, in bytes.
    pub fn write_size(&self) -> usize {
        self.wr.size() as usize
    }

    /// Whether this end is still usable (not shut down, no corruption seen).
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// The peer's live byte. A value other than 0, 1 or 2 is corruption.
    pub fn peer_state(&mut self) -> Result<PeerState, VchanError> {
        self.usable()?;
        self.peer_live()
    }

    /// Bytes ready to read; asks the peer to notify on its next write
    /// (`libxenvchan_data_ready`).
    pub fn data_ready(&mut self) -> Result<usize, VchanError> {
        self.usable()?;
        self.request_notify(NOTIFY_WRITE);
        self.raw_ready().map(|n| n as usize)
    }

    /// Bytes that can be written now; asks the peer to notify on its next
    /// read (`libxenvchan_buffer_space`).
    pub fn buffer_space(&mut self) -> Result<usize, VchanError> {
        self.usable()?;
        self.request_notify(NOTIFY_READ);
        self.raw_space().map(|n| n as usize)
    }

    /// Stream read (`libxenvchan_read`): reads up to `buf.len()` bytes.
    ///
    /// Returns what was there (at least one byte); `Ok(0)` only at end of
    /// stream — the peer closed and everything it wrote has been read — or
    /// for an empty `buf`. [`VchanError::WouldBlock`] when nothing is there
    /// yet. A notify error is returned after the bytes were consumed.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, VchanError> {
        self.usable()?;
        if buf.is_empty() {
            return Ok(0);
        }
        // The live byte first: a peer writes its last data before clearing
        // it, so "closed" plus "nothing ready" read in this order is EOF.
        let live = self.peer_live()?;
        let ready = self.ready_for(clamp(buf.len()))? as usize;
        if ready == 0 {
            return match live {
                PeerState::Closed => Ok(0),
                _ => Err(VchanError::WouldBlock),
            };
        }
        let n = ready.min(buf.len());
        let dst = buf.get_mut(..n).ok_or(VchanError::InvalidArgument)?;
        self.do_recv(dst)
    }

    /// Stream write (`libxenvchan_write`): writes as much of `data` as fits.
    ///
    /// Returns how much was written (at least one byte, or `Ok(0)` for empty
    /// `data`); [`VchanError::WouldBlock`] when the ring is full,
    /// [`VchanError::PeerClosed`] once the peer has closed.
    pub fn write(&mut self, data: &[u8]) -> Result<usize, VchanError> {
        self.usable()?;
        if self.peer_live()? == PeerState::Closed {
            return Err(VchanError::PeerClosed);
        }
        if data.is_empty() {
            return Ok(0);
        }
        let space = self.space_for(clamp(data.len()))? as usize;
        if space == 0 {
            return Err(VchanError::WouldBlock);
        }
        let src = data
            .get(..space.min(data.len()))
            .ok_or(VchanError::InvalidArgument)?;
        self.do_send(src)
    }

    /// Packet write (`libxenvchan_send`): all of `pkt` or nothing.
    ///
    /// [`VchanError::TooLarge`] if it exceeds the ring,
    /// [`VchanError::WouldBlock`] until there is room for all of it.
    pub fn send(&mut self, pkt: &[u8]) -> Result<(), VchanError> {
        self.usable()?;
        if self.peer_live()? == PeerState::Closed {
            return Err(VchanError::PeerClosed);
        }
        let len = clamp(pkt.len());
        if pkt.len() > self.write_size() {
            return Err(VchanError::TooLarge);
        }
        if pkt.is_empty() {
            return Ok(());
        }
        if self.space_for(len)? < len {
            return Err(VchanError::WouldBlock);
        }
        self.do_send(pkt).map(drop)
    }

    /// Packet read (`libxenvchan_recv`): fills all of `buf` or nothing.
    ///
    /// [`VchanError::TooLarge`] if `buf` exceeds the ring,
    /// [`VchanError::WouldBlock`] until enough data is there,
    /// [`VchanError::PeerClosed`] if the peer closed with less left.
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<(), VchanError> {
        self.usable()?;
        if buf.is_empty() {
            return Ok(());
        }
        if buf.len() > self.read_size() {
            return Err(VchanError::TooLarge);
        }
        let live = self.peer_live()?;
        let len = clamp(buf.len());
        if self.ready_for(len)? >= len {
            return self.do_recv(buf).map(drop);
        }
        match live {
            PeerState::Closed => Err(VchanError::PeerClosed),
            _ => Err(VchanError::WouldBlock),
        }
    }

    /// [`read`](Self::read), waiting while it would block.
    pub fn read_blocking(
        &mut self,
        w: &mut impl Wait,
        buf: &mut [u8],
    ) -> Result<usize, VchanError> {
        self.blocking(w, |v| v.read(buf))
    }

    /// Writes all of `data` with [`write`](Self::write), waiting for room.
    pub fn write_all_blocking(&mut self, w: &mut impl Wait, data: &[u8]) -> Result<(), VchanError> {
        let mut rest = data;
        while !rest.is_empty() {
            let n = self.blocking(w, |v| v.write(rest))?;
            rest = rest.get(n..).unwrap_or(&[]);
        }
        Ok(())
    }

    /// [`send`](Self::send), waiting for room.
    pub fn send_blocking(&mut self, w: &mut impl Wait, pkt: &[u8]) -> Result<(), VchanError> {
        self.blocking(w, |v| v.send(pkt))
    }

    /// [`recv`](Self::recv), waiting for data.
    pub fn recv_blocking(&mut self, w: &mut impl Wait, buf: &mut [u8]) -> Result<(), VchanError> {
        self.blocking(w, |v| v.recv(buf))
    }

    /// Shuts this end down (`libxenvchan_close`'s part on the page): clears
    /// our live byte and notifies the peer, which can still read what we
    /// wrote. Further operations return [`VchanError::Shutdown`].
    pub fn shutdown(&mut self) -> Result<(), VchanError> {
        if self.state != State::Open {
            return Ok(());
        }
        self.state = State::Shutdown;
        self.mark_closed()
    }

    /// Marks this end shut down without touching the page (failed setup).
    pub(crate) fn state_closed_quietly(&mut self) {
        self.state = State::Shutdown;
    }

    fn blocking<T>(
        &mut self,
        w: &mut impl Wait,
        mut op: impl FnMut(&mut Self) -> Result<T, VchanError>,
    ) -> Result<T, VchanError> {
        loop {
            match op(self) {
                Err(VchanError::WouldBlock) => w.wait(self.port)?,
                r => return r,
            }
        }
    }

    fn usable(&self) -> Result<(), VchanError> {
        match self.state {
            State::Open => Ok(()),
            State::Shutdown => Err(VchanError::Shutdown),
            State::Corrupt => Err(VchanError::Corrupt),
        }
    }

    /// Offsets of (our live byte, the peer's live byte, the notify byte we
    /// set to ask the peer, the notify byte the peer sets to ask us).
    fn offsets(&self) -> (usize, usize, usize, usize) {
        match self.role {
            Role::Server => (SRV_LIVE, CLI_LIVE, CLI_NOTIFY, SRV_NOTIFY),
            Role::Client => (CLI_LIVE, SRV_LIVE, SRV_NOTIFY, CLI_NOTIFY),
        }
    }

    fn peer_live(&mut self) -> Result<PeerState, VchanError> {
        let live = self.page.load_u8(self.offsets().1);
        fence(Ordering::SeqCst);
        match live {
            LIVE_CLOSED => Ok(PeerState::Closed),
            LIVE_CONNECTED => Ok(PeerState::Connected),
            LIVE_UNCONNECTED => Ok(PeerState::Unconnected),
            _ => Err(self.corrupt()),
        }
    }

    /// Shuts down after a protocol violation; returns the error to report.
    fn corrupt(&mut self) -> VchanError {
        if self.state == State::Open {
            self.state = State::Corrupt;
            // Best effort: the peer is misbehaving anyway.
            let _ = self.mark_closed();
        }
        VchanError::Corrupt
    }

    fn mark_closed(&mut self) -> Result<(), VchanError> {
        fence(Ordering::SeqCst);
        self.page.store_u8(self.offsets().0, LIVE_CLOSED);
        fence(Ordering::SeqCst);
        self.notifier
            .notify(self.port)
            .map_err(VchanError::Platform)
    }

    /// Bytes in the read ring; the peer's `prod` is read exactly once.
    fn raw_ready(&mut self) -> Result<u32, VchanError> {
        let prod = self.page.load_u32(self.rd.prod_off());
        fence(Ordering::SeqCst);
        let ready = prod.wrapping_sub(self.rd.own);
        if ready > self.rd.size() {
            return Err(self.corrupt());
        }
        Ok(ready)
    }

    /// Free bytes in the write ring; the peer's `cons` is read exactly once.
    fn raw_space(&mut self) -> Result<u32, VchanError> {
        let cons = self.page.load_u32(self.wr.cons_off());
        fence(Ordering::SeqCst);
        let used = self.wr.own.wrapping_sub(cons);
        if used > self.wr.size() {
            return Err(self.corrupt());
        }
        Ok(self.wr.size().wrapping_sub(used))
    }

    /// Asks the peer to notify us on `bit`; the caller then re-reads.
    fn request_notify(&self, bit: u8) {
        self.page.fetch_or_u8(self.offsets().2, bit);
        fence(Ordering::SeqCst);
    }

    /// Notifies the peer if it asked about `bit`, clearing its request.
    fn send_notify(&self, bit: u8) -> Result<(), VchanError> {
        fence(Ordering::SeqCst);
        let prev = self.page.fetch_and_u8(self.offsets().3, !bit);
        if prev & bit != 0 {
            self.notifier.notify(self.port)?;
        }
        Ok(())
    }

    /// Data ready, requesting a notification (and re-reading, so a write
    /// racing the request is not missed) if less than `want`.
    fn ready_for(&mut self, want: u32) -> Result<u32, VchanError> {
        let ready = self.raw_ready()?;
        if ready >= want {
            return Ok(ready);
        }
        self.request_notify(NOTIFY_WRITE);
        self.raw_ready()
    }

    /// Space available, requesting a notification (and re-reading) if less
    /// than `want`.
    fn space_for(&mut self, want: u32) -> Result<u32, VchanError> {
        let space = self.raw_space()?;
        if space >= want {
            return Ok(space);
        }
        self.request_notify(NOTIFY_READ);
        self.raw_space()
    }

    /// Consumes `dst.len()` bytes (the caller checked they are there).
    fn do_recv(&mut self, dst: &mut [u8]) -> Result<usize, VchanError> {
        let start = self.rd.own;
        self.rd.copy_out(&self.page, start, dst);
        // Data reads complete before the slots are handed back.
        fence(Ordering::SeqCst);
        self.rd.own = start.wrapping_add(clamp(dst.len()));
        self.page.store_u32(self.rd.cons_off(), self.rd.own);
        self.send_notify(NOTIFY_READ)?;
        Ok(dst.len())
    }

    /// Produces `src` (the caller checked it fits).
    fn do_send(&mut self, src: &[u8]) -> Result<usize, VchanError> {
        let start = self.wr.own;
        self.wr.copy_in(&self.page, start, src);
        // Data is visible before the index that publishes it.
        fence(Ordering::Release);
        self.wr.own = start.wrapping_add(clamp(src.len()));
        self.page.store_u32(self.wr.prod_off(), self.wr.own);
        self.send_notify(NOTIFY_WRITE)?;
        Ok(src.len())
    }
}

/// A length as u32 (rings are at most 1 MiB, so saturating is exact enough).
fn clamp(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}
