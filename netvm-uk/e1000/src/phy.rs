//! smoltcp's `phy::Device` for [`E1000`]: frames go between smoltcp and the
//! DMA buffers without an intermediate copy.
//!
//! One `Interface::poll` takes at most a ring's worth of frames before the
//! ring has drained or [`E1000::handle_interrupt`] ran again, so a device that
//! refills descriptors as fast as they are returned cannot keep smoltcp busy
//! forever.

use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

use crate::{Dma, Regs, RxRing, TxRing, E1000, MAX_FRAME};

/// Receive token: one frame in its RX buffer.
pub struct RxToken<'a, R: Regs, D: Dma> {
    ring: &'a mut RxRing<D>,
    regs: &'a R,
    index: u16,
    len: usize,
}

/// Transmit token: the next TX descriptor.
pub struct TxToken<'a, R: Regs, D: Dma> {
    ring: &'a mut TxRing<D>,
    regs: &'a R,
}

impl<R: Regs, D: Dma> phy::RxToken for RxToken<'_, R, D> {
    fn consume<T, F>(self, f: F) -> T
    where
        F: FnOnce(&[u8]) -> T,
    {
        self.ring.consume(self.regs, self.index, self.len, f)
    }
}

impl<R: Regs, D: Dma> phy::TxToken for TxToken<'_, R, D> {
    fn consume<T, F>(self, len: usize, f: F) -> T
    where
        F: FnOnce(&mut [u8]) -> T,
    {
        self.ring.send(self.regs, len, f)
    }
}

impl<R: Regs, D: Dma> phy::Device for E1000<R, D> {
    type RxToken<'a>
        = RxToken<'a, R, D>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, R, D>
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        // A reply needs a free TX descriptor; without one, leave the frame in
        // the ring until the device has sent something.
        if !self.tx.has_space() {
            return None;
        }
        if self.rx_budget == 0 {
            return None;
        }
        let Some((index, len)) = self.rx.poll(&self.regs) else {
            // Drained: the next burst may be a whole ring again.
            self.rx_budget = u32::from(self.rx.descs);
            return None;
        };
        self.rx_budget = self.rx_budget.saturating_sub(1);
        Some((
            RxToken {
                ring: &mut self.rx,
                regs: &self.regs,
                index,
                len,
            },
            TxToken {
                ring: &mut self.tx,
                regs: &self.regs,
            },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        if !self.tx.has_space() {
            return None;
        }
        Some(TxToken {
            ring: &mut self.tx,
            regs: &self.regs,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = MAX_FRAME;
        caps.max_burst_size = Some(usize::from(self.tx.descs.saturating_sub(1)));
        caps
    }
}
