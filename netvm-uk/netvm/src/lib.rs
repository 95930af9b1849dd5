//! NetVM: the network service domain as a unikernel.
//!
//! The unikernel (`main.rs`, built for `x86_64-unknown-none`) finds the e1000
//! on PCI, maps its registers, gives it DMA rings, wires its interrupt (MSI,
//! else an IOAPIC line found by making the NIC interrupt itself, else polling)
//! and runs smoltcp over it. This library holds what can be tested on the host:
//!
//! * [`settings`]: the command line;
//! * [`port`]: interfaces — one uplink and any number of AppVM downlinks;
//! * [`uplink`]: DHCPv4 client, ping of the gateway, TCP echo service, and the
//!   log line for each event.
//!
//! The host tests run all of it over the e1000 driver and its mock device,
//! against a scripted DHCP server and a smoltcp peer on the same wire.
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

pub mod port;
pub mod settings;
pub mod uplink;

#[cfg(test)]
mod tests;

/// A MAC address as text (`52:54:00:12:34:56`).
pub struct Mac(pub [u8; 6]);

impl core::fmt::Display for Mac {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}
