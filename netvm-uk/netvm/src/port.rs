//! Network interfaces: one uplink (the NIC to the outside) and any number of
//! downlinks (one per AppVM, added when the VMM connects them).
//!
//! Each [`Port`] is a smoltcp `Interface` over its own device with its own
//! sockets. Routing and NAT between ports are the next step; [`Ports`]
//! already polls them together and computes the next deadline for all.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::Device;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

/// What a port is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The link to the outside world (DHCP client, default route).
    Uplink,
    /// The link to one AppVM (static address, the AppVM's gateway).
    Downlink(u16),
}

/// One interface.
pub struct Port<D: Device> {
    /// Name for logs (`eth0`, `vif3`).
    pub name: String,
    /// What it is for.
    pub role: Role,
    /// The device under it.
    pub device: D,
    /// smoltcp's interface.
    pub iface: Interface,
    /// Sockets bound to this interface.
    pub sockets: SocketSet<'static>,
}

impl<D: Device> Port<D> {
    /// A port over `device` with Ethernet address `mac` and no IP address.
    /// `seed` seeds smoltcp's randomness (TCP sequence numbers, DHCP ids).
    pub fn new(
        name: &str,
        role: Role,
        mut device: D,
        mac: [u8; 6],
        seed: u64,
        now: Instant,
    ) -> Port<D> {
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        config.random_seed = seed;
        let iface = Interface::new(config, &mut device, now);
        Port {
            name: String::from(name),
            role,
            device,
            iface,
            sockets: SocketSet::new(Vec::new()),
        }
    }

    /// Processes frames and timers; `true` if a socket may have changed.
    pub fn poll(&mut self, now: Instant) -> bool {
        matches!(
            self.iface.poll(now, &mut self.device, &mut self.sockets),
            smoltcp::iface::PollResult::SocketStateChanged
        )
    }

    /// How long until smoltcp needs polling again (`None`: only on traffic).
    pub fn poll_delay(&mut self, now: Instant) -> Option<Duration> {
        self.iface.poll_delay(now, &self.sockets)
    }

    /// Sets the port's only IPv4 address and, if given, its default route.
    pub fn set_ipv4(&mut self, cidr: Ipv4Cidr, router: Option<Ipv4Address>) {
        self.iface.update_ip_addrs(|addrs| {
            addrs.clear();
            // One address always fits.
            let _ = addrs.push(IpCidr::Ipv4(cidr));
        });
        self.iface.routes_mut().remove_default_ipv4_route();
        if let Some(r) = router {
            let _ = self.iface.routes_mut().add_default_ipv4_route(r);
        }
    }

    /// Removes the port's addresses and default route.
    pub fn clear_ipv4(&mut self) {
        self.iface.update_ip_addrs(|addrs| addrs.clear());
        self.iface.routes_mut().remove_default_ipv4_route();
    }

    /// The port's IPv4 address, if it has one.
    pub fn ipv4(&self) -> Option<Ipv4Cidr> {
        self.iface.ip_addrs().iter().find_map(|a| match a {
            IpCidr::Ipv4(c) => Some(*c),
            #[allow(unreachable_patterns)]
            _ => None,
        })
    }
}

/// Why a downlink was not added.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortError {
    /// A port with that name exists.
    DuplicateName(String),
    /// A port with that role exists.
    DuplicateRole(Role),
    /// Only downlinks can be added.
    NotDownlink,
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortError::DuplicateName(n) => write!(f, "a port named {n} exists"),
            PortError::DuplicateRole(r) => write!(f, "a port for {r:?} exists"),
            PortError::NotDownlink => f.write_str("only downlinks can be added"),
        }
    }
}

/// The uplink and the downlinks.
pub struct Ports<U: Device, D: Device> {
    /// The uplink.
    pub uplink: Port<U>,
    /// The downlinks, in the order they were added.
    pub downlinks: Vec<Port<D>>,
}

impl<U: Device, D: Device> Ports<U, D> {
    /// Just the uplink.
    pub fn new(uplink: Port<U>) -> Self {
        Ports {
            uplink,
            downlinks: Vec::new(),
        }
    }

    /// Adds a downlink (names and downlink numbers are unique).
    pub fn add_downlink(&mut self, port: Port<D>) -> Result<(), PortError> {
        if !matches!(port.role, Role::Downlink(_)) {
            return Err(PortError::NotDownlink);
        }
        if port.name == self.uplink.name || self.downlinks.iter().any(|p| p.name == port.name) {
            return Err(PortError::DuplicateName(port.name));
        }
        if self.downlinks.iter().any(|p| p.role == port.role) {
            return Err(PortError::DuplicateRole(port.role));
        }
        self.downlinks.push(port);
        Ok(())
    }

    /// Polls every port; `true` if any socket may have changed.
    pub fn poll(&mut self, now: Instant) -> bool {
        let mut changed = self.uplink.poll(now);
        for p in &mut self.downlinks {
            changed |= p.poll(now);
        }
        changed
    }

    /// The soonest any port needs polling again.
    pub fn poll_delay(&mut self, now: Instant) -> Option<Duration> {
        let mut d = self.uplink.poll_delay(now);
        for p in &mut self.downlinks {
            d = match (d, p.poll_delay(now)) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        d
    }
}
