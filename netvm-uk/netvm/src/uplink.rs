//! The uplink's services: the DHCPv4 client, a ping of the gateway, and a TCP
//! echo service for tests.
//!
//! [`Uplink::poll`] runs after each `Interface::poll` of the uplink port and
//! reports what happened as [`Event`]s, whose `Display` is the NetVM's log
//! line for each.

use alloc::vec;
use core::fmt;

use smoltcp::iface::SocketHandle;
use smoltcp::phy::{ChecksumCapabilities, Device};
use smoltcp::socket::{dhcpv4, icmp, tcp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress, IpEndpoint, Ipv4Address, Ipv4Cidr};

use crate::port::Port;
use crate::settings::{PingTarget, Settings};

/// ICMP identifier of the NetVM's echo requests ("NV").
pub const PING_IDENT: u16 = 0x4e56;
/// How long to wait for an echo reply before sending again.
pub const PING_TIMEOUT: Duration = Duration::from_secs(1);
/// Echo requests per sequence number before giving up.
pub const PING_TRIES: u8 = 3;
/// Bytes moved per copy step of the echo service.
const ECHO_CHUNK: usize = 4096;

/// What DHCP gave the uplink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Address and prefix.
    pub address: Ipv4Cidr,
    /// Default gateway.
    pub router: Option<Ipv4Address>,
    /// First DNS server.
    pub dns: Option<Ipv4Address>,
    /// The DHCP server.
    pub server: Ipv4Address,
}

impl fmt::Display for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.address)?;
        match self.router {
            Some(r) => write!(f, " router {r}")?,
            None => f.write_str(" router none")?,
        }
        match self.dns {
            Some(d) => write!(f, " dns {d}")?,
            None => f.write_str(" dns none")?,
        }
        write!(f, " server {}", self.server)
    }
}

/// Something worth a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// DHCP configured the uplink.
    Lease(Lease),
    /// DHCP lost the lease; the uplink has no address.
    LeaseLost,
    /// The echo service accepts connections.
    EchoListening(u16),
    /// An echo request went out.
    PingSent {
        /// To whom.
        to: Ipv4Address,
        /// Sequence number.
        seq: u16,
    },
    /// An echo reply came back.
    PingReply {
        /// From whom.
        from: Ipv4Address,
        /// Sequence number.
        seq: u16,
        /// Round trip in microseconds.
        rtt_us: u64,
    },
    /// No reply after [`PING_TRIES`] requests.
    PingFailed {
        /// To whom.
        to: Ipv4Address,
        /// Sequence number.
        seq: u16,
    },
    /// There is no gateway to ping.
    PingNoTarget,
    /// An echo connection opened.
    EchoOpen(IpEndpoint),
    /// An echo connection closed.
    EchoClosed {
        /// The peer.
        peer: IpEndpoint,
        /// Bytes echoed.
        bytes: u64,
    },
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Lease(l) => write!(f, "dhcp: lease {l}"),
            Event::LeaseLost => f.write_str("dhcp: lease lost"),
            Event::EchoListening(p) => write!(f, "echo: listening on tcp port {p}"),
            Event::PingSent { to, seq } => write!(f, "ping: echo request to {to} seq {seq}"),
            Event::PingReply { from, seq, rtt_us } => write!(
                f,
                "ping: reply from {from} seq {seq} time {}.{:03} ms",
                rtt_us / 1000,
                rtt_us % 1000
            ),
            Event::PingFailed { to, seq } => {
                write!(
                    f,
                    "ping: no reply from {to} seq {seq} after {PING_TRIES} tries"
                )
            }
            Event::PingNoTarget => f.write_str("ping: the lease names no gateway"),
            Event::EchoOpen(p) => write!(f, "echo: connection from {p}"),
            Event::EchoClosed { peer, bytes } => {
                write!(f, "echo: connection from {peer} closed after {bytes} bytes")
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ping {
    /// Waiting for a lease (or ping disabled when `target` is `None`).
    Idle,
    /// A request for `seq` is out since `at`, try `tries`.
    Waiting {
        to: Ipv4Address,
        seq: u16,
        at: Instant,
        tries: u8,
    },
    /// Finished (replies collected, or failed).
    Done,
}

/// The uplink's services and their sockets.
pub struct Uplink {
    dhcp: SocketHandle,
    icmp: SocketHandle,
    echo: Option<(SocketHandle, u16)>,
    lease: Option<Lease>,
    ping_target: Option<PingTarget>,
    pings_wanted: u8,
    pings_ok: u8,
    ping: Ping,
    echo_peer: Option<(IpEndpoint, u64)>,
    echo_closed: u32,
    echo_bytes: u64,
    listening_said: bool,
}

impl Uplink {
    /// Adds the DHCP, ICMP and echo sockets to the uplink port.
    pub fn new<D: Device>(port: &mut Port<D>, settings: &Settings) -> Uplink {
        let dhcp = port.sockets.add(dhcpv4::Socket::new());
        let mut icmp_socket = icmp::Socket::new(
            icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 1024]),
            icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 1024]),
        );
        // Binding a fresh socket to an identifier cannot fail.
        let _ = icmp_socket.bind(icmp::Endpoint::Ident(PING_IDENT));
        let icmp = port.sockets.add(icmp_socket);
        let echo = settings.echo_port.map(|p| {
            let mut s = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; settings.tcp_buffer]),
                tcp::SocketBuffer::new(vec![0; settings.tcp_buffer]),
            );
            s.set_nagle_enabled(false);
            s.set_ack_delay(None);
            (port.sockets.add(s), p)
        });
        Uplink {
            dhcp,
            icmp,
            echo,
            lease: None,
            ping_target: settings.ping,
            pings_wanted: settings.pings,
            pings_ok: 0,
            ping: Ping::Idle,
            echo_peer: None,
            echo_closed: 0,
            echo_bytes: 0,
            listening_said: false,
        }
    }

    /// The current lease.
    pub fn lease(&self) -> Option<Lease> {
        self.lease
    }

    /// Echo connections that have closed.
    pub fn echo_closed(&self) -> u32 {
        self.echo_closed
    }

    /// Bytes echoed in all.
    pub fn echo_bytes(&self) -> u64 {
        self.echo_bytes
    }

    /// Whether pinging is over (all replies in, failed, or not wanted).
    pub fn ping_done(&self) -> bool {
        self.ping_target.is_none() || self.ping == Ping::Done
    }

    /// When the services need a poll even without traffic (ping timeout).
    pub fn deadline(&self) -> Option<Instant> {
        match self.ping {
            Ping::Waiting { at, .. } => Some(at + PING_TIMEOUT),
            _ => None,
        }
    }

    /// Runs the services after the port was polled; reports events. Returns
    /// `true` if it queued data (poll the port again to send it).
    pub fn poll<D: Device>(
        &mut self,
        port: &mut Port<D>,
        now: Instant,
        mut event: impl FnMut(Event),
    ) -> bool {
        self.poll_dhcp(port, &mut event);
        let mut queued = self.poll_ping(port, now, &mut event);
        queued |= self.poll_echo(port, &mut event);
        queued
    }

    fn poll_dhcp<D: Device>(&mut self, port: &mut Port<D>, event: &mut impl FnMut(Event)) {
        let ev = port.sockets.get_mut::<dhcpv4::Socket>(self.dhcp).poll();
        match ev {
            None => {}
            Some(dhcpv4::Event::Configured(config)) => {
                let lease = Lease {
                    address: config.address,
                    router: config.router,
                    dns: config.dns_servers.first().copied(),
                    server: config.server.address,
                };
                port.set_ipv4(lease.address, lease.router);
                self.lease = Some(lease);
                event(Event::Lease(lease));
                if let (Some((_, p)), false) = (self.echo, self.listening_said) {
                    self.listening_said = true;
                    event(Event::EchoListening(p));
                }
            }
            Some(dhcpv4::Event::Deconfigured) => {
                port.clear_ipv4();
                // smoltcp also reports this once at start, before any lease.
                if self.lease.take().is_some() {
                    event(Event::LeaseLost);
                }
            }
        }
    }

    fn send_ping<D: Device>(&mut self, port: &mut Port<D>, to: Ipv4Address, seq: u16) -> bool {
        let repr = Icmpv4Repr::EchoRequest {
            ident: PING_IDENT,
            seq_no: seq,
            data: b"cloister netvm ping",
        };
        let socket = port.sockets.get_mut::<icmp::Socket>(self.icmp);
        match socket.send(repr.buffer_len(), IpAddress::Ipv4(to)) {
            Ok(buf) => {
                repr.emit(
                    &mut Icmpv4Packet::new_unchecked(buf),
                    &ChecksumCapabilities::default(),
                );
                true
            }
            Err(_) => false,
        }
    }

    fn poll_ping<D: Device>(
        &mut self,
        port: &mut Port<D>,
        now: Instant,
        event: &mut impl FnMut(Event),
    ) -> bool {
        let Some(target) = self.ping_target else {
            return false;
        };
        let Some(lease) = self.lease else {
            return false;
        };
        match self.ping {
            Ping::Done => false,
            Ping::Idle => {
                let to = match target {
                    PingTarget::Gateway => match lease.router {
                        Some(r) => r,
                        None => {
                            self.ping = Ping::Done;
                            event(Event::PingNoTarget);
                            return false;
                        }
                    },
                    PingTarget::Addr(a) => a,
                };
                self.start_ping(port, to, 1, 1, now, event)
            }
            Ping::Waiting { to, seq, at, tries } => {
                let mut buf = [0u8; 256];
                let socket = port.sockets.get_mut::<icmp::Socket>(self.icmp);
                while socket.can_recv() {
                    let Ok((n, from)) = socket.recv_slice(&mut buf) else {
                        break;
                    };
                    let from = match from {
                        IpAddress::Ipv4(a) => a,
                        #[allow(unreachable_patterns)]
                        _ => continue,
                    };
                    let Some(bytes) = buf.get(..n) else { continue };
                    let Ok(packet) = Icmpv4Packet::new_checked(bytes) else {
                        continue;
                    };
                    let Ok(repr) = Icmpv4Repr::parse(&packet, &ChecksumCapabilities::default())
                    else {
                        continue;
                    };
                    if let Icmpv4Repr::EchoReply {
                        ident: PING_IDENT,
                        seq_no,
                        ..
                    } = repr
                    {
                        if seq_no == seq && from == to {
                            let rtt = now - at;
                            event(Event::PingReply {
                                from,
                                seq,
                                rtt_us: rtt.total_micros(),
                            });
                            self.pings_ok = self.pings_ok.saturating_add(1);
                            if self.pings_ok >= self.pings_wanted {
                                self.ping = Ping::Done;
                                return false;
                            }
                            return self.start_ping(port, to, seq.wrapping_add(1), 1, now, event);
                        }
                    }
                }
                if now >= at + PING_TIMEOUT {
                    if tries >= PING_TRIES {
                        self.ping = Ping::Done;
                        event(Event::PingFailed { to, seq });
                        return false;
                    }
                    return self.start_ping(port, to, seq, tries.saturating_add(1), now, event);
                }
                false
            }
        }
    }

    fn start_ping<D: Device>(
        &mut self,
        port: &mut Port<D>,
        to: Ipv4Address,
        seq: u16,
        tries: u8,
        now: Instant,
        event: &mut impl FnMut(Event),
    ) -> bool {
        let sent = self.send_ping(port, to, seq);
        if sent {
            event(Event::PingSent { to, seq });
        }
        // If the socket was full, the timeout sends again.
        self.ping = Ping::Waiting {
            to,
            seq,
            at: now,
            tries,
        };
        sent
    }

    fn poll_echo<D: Device>(&mut self, port: &mut Port<D>, event: &mut impl FnMut(Event)) -> bool {
        let Some((handle, listen_port)) = self.echo else {
            return false;
        };
        let socket = port.sockets.get_mut::<tcp::Socket>(handle);
        let state = socket.state();
        if matches!(state, tcp::State::Closed | tcp::State::TimeWait) {
            if state == tcp::State::TimeWait {
                // Everything was acknowledged; free the socket for the next
                // connection at once.
                socket.abort();
            }
            if let Some((peer, bytes)) = self.echo_peer.take() {
                self.echo_closed = self.echo_closed.saturating_add(1);
                event(Event::EchoClosed { peer, bytes });
            }
            // Listening on a closed socket with a valid port cannot fail.
            let _ = socket.listen(listen_port);
            return false;
        }
        if self.echo_peer.is_none() {
            if let Some(peer) = socket.remote_endpoint() {
                self.echo_peer = Some((peer, 0));
                event(Event::EchoOpen(peer));
            }
        }
        let mut moved = 0u64;
        let mut chunk = [0u8; ECHO_CHUNK];
        while socket.can_recv() && socket.can_send() {
            let space = socket.send_capacity().saturating_sub(socket.send_queue());
            let want = space.min(ECHO_CHUNK);
            let Some(dst) = chunk.get_mut(..want) else {
                break;
            };
            let n = socket.recv_slice(dst).unwrap_or(0);
            let Some(data) = chunk.get(..n) else { break };
            if n == 0 || socket.send_slice(data).unwrap_or(0) != n {
                break;
            }
            moved = moved.saturating_add(n as u64);
        }
        if state == tcp::State::CloseWait && !socket.can_recv() && socket.send_queue() == 0 {
            // The peer finished sending and has everything back.
            socket.close();
        }
        if let Some((_, bytes)) = &mut self.echo_peer {
            *bytes = bytes.saturating_add(moved);
        }
        self.echo_bytes = self.echo_bytes.saturating_add(moved);
        moved > 0
    }
}
