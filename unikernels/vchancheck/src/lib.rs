//! The vchan end-to-end check (`tests/sel4_vchan.rs`): what the `vchancheck`
//! unikernel does in each role, the data it moves and the exact lines it
//! prints, shared with the host test that checks them.
//!
//! # The system (`tests/systems/vchan.toml`)
//!
//! The store (storevm, domain 1), a **server** (domain 2), a **client**
//! (domain 3) and an **intruder** (domain 4). Each `vchancheck` VM's command
//! line is `role=<server|client|intruder> peer=<domid>` (the client's domain
//! for the server, the server's for the others).
//!
//! # The flow
//!
//! 1. The server offers one vchan per entry of [`CHANNELS`] at
//!    `/local/domain/<server>/data/vchan/<client>/<label>` ([`channel_path`];
//!    libxenvchan's keys `ring-ref` and `event-channel`, permissions
//!    `n<server> r<client>`), choosing `read_min`/`write_min` so that the
//!    rings get orders 10 to 14 (channel 10: client→server order 10,
//!    server→client 11; channel 11 the other way round; channels 12–14 both
//!    rings of that order).
//! 2. The client watches `/local/domain/<server>/data/vchan/<client>` and
//!    connects to each channel once its keys are readable. When all are
//!    connected, the server publishes [`Ready`] at [`ready_path`], readable
//!    by every domain: the grant references and ports of its channels.
//! 3. Bulk: channel by channel, in the order of [`CHANNELS`], both sides
//!    write their [`Channel::bytes`] (pseudorandom, [`Stream`] from
//!    [`seed`]) and read the peer's at the same time, hashing with FNV-1a-64;
//!    each prints a [`transfer_line`] per direction (the test compares them
//!    with [`expected_sum`]) and a [`throughput_line`]. The shares add up to
//!    [`EACH_WAY`] (8 MiB) per direction. Every share is at least 32 times
//!    its ring, so each ring's write and read positions wrap around the end
//!    of the ring buffer at least 32 times (positions are the free-running
//!    32-bit indices modulo the ring size; the indices themselves do not
//!    pass 2^32 in 8 MiB).
//! 4. Ping-pong on channel [`CONTROL`]: [`ROUND_TRIPS`] packets of
//!    [`PING_LEN`] bytes from the client, each echoed by the server; the
//!    client prints the emulated-instruction ticks per round trip, both the
//!    VM exits per message ([`pingpong_line`]).
//! 5. Intruder, meanwhile: reads [`Ready`], then tries to read the keys of
//!    every channel (the store must answer `EACCES`), to map every grant
//!    (`GNTST_general_error`: the grant names another domain, as Xen answers)
//!    and to bind every port (`EINVAL`: not an unbound port offered to it),
//!    printing one [`refusal_line`] each, then [`intruder_ok`].
//! 6. Hostile peer: the server offers one more channel at [`hostile_path`];
//!    the client maps its shared page like a client, but writes garbage ring
//!    indices ([`HOSTILE_SKEW`]) and notifies. The server's read reports
//!    corruption and the channel shuts down ([`HOSTILE_DETECTED`]); the
//!    client sees that ([`HOSTILE_SEEN`]), unmaps and says so over channel
//!    [`CONTROL`] ([`MSG_UNMAPPED`]); the server closes the hostile channel
//!    for good ([`HOSTILE_CLOSED`]) and answers [`MSG_CLOSED`]: both still
//!    run ([`AFTER_OK`]).
//! 7. The client closes its channels and writes [`done_path`]; the server,
//!    watching it, closes its own (every grant must end: nobody maps them any
//!    more), and both print [`CLOSED_OK`] and their `ok` line and exit 0.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use hello::{Fnv1a64, Pattern};
use rt::stats::{Ratio, VmExits};

/// What every line starts with.
pub const PREFIX: &str = "vchancheck: ";

/// What this VM does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Offers the channels.
    Server,
    /// Connects to them.
    Client,
    /// Tries to get at them.
    Intruder,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Server => "server",
            Role::Client => "client",
            Role::Intruder => "intruder",
        })
    }
}

/// The command line: `role=<role> peer=<domid>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// This VM's part.
    pub role: Role,
    /// The client's domain (server) or the server's (client, intruder).
    pub peer: u16,
}

impl Config {
    /// Parses the command line; unknown keys, repeats, and a missing or
    /// malformed role or peer are errors.
    pub fn parse(cmdline: &str) -> Result<Config, String> {
        let (mut role, mut peer) = (None, None);
        for word in cmdline.split_ascii_whitespace() {
            let (key, value) = word
                .split_once('=')
                .ok_or_else(|| format!("`{word}` is not key=value"))?;
            match key {
                "role" if role.is_none() => {
                    role = Some(match value {
                        "server" => Role::Server,
                        "client" => Role::Client,
                        "intruder" => Role::Intruder,
                        _ => return Err(format!("unknown role `{value}`")),
                    })
                }
                "peer" if peer.is_none() => {
                    peer = Some(
                        parse_domid(value).ok_or_else(|| format!("bad peer domain `{value}`"))?,
                    )
                }
                _ => return Err(format!("unexpected `{word}`")),
            }
        }
        Ok(Config {
            role: role.ok_or("no role=")?,
            peer: peer.ok_or("no peer=")?,
        })
    }
}

/// A domain id as the command line or the store writes it: decimal, 1 to
/// 0x7fef (below Xen's reserved ids).
pub fn parse_domid(s: &str) -> Option<u16> {
    parse_decimal(s)
        .and_then(|v| u16::try_from(v).ok())
        .filter(|&d| (1..0x7ff0).contains(&d))
}

/// A non-zero decimal `u32` of at most 10 digits, nothing else.
pub fn parse_decimal(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u32>().ok().filter(|&v| v != 0)
}

/// One vchan of the bulk phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Channel {
    /// Its name in the store path: the order it exists to test.
    pub label: u8,
    /// The server's `read_min` (the client → server ring).
    pub read_min: usize,
    /// The server's `write_min` (the server → client ring).
    pub write_min: usize,
    /// Bytes moved each way.
    pub bytes: u64,
    /// Expected ring orders (client → server, server → client).
    pub orders: (u8, u8),
}

impl Channel {
    /// Pages the server grants for it: the shared page and the rings'
    /// separate pages.
    pub fn grants(&self) -> usize {
        1 + vchan::layout::ring_pages(self.orders.0) + vchan::layout::ring_pages(self.orders.1)
    }
}

/// Grant references the server publishes in [`Ready`]: every page of every
/// bulk channel.
pub fn bulk_grants() -> usize {
    CHANNELS.iter().map(Channel::grants).sum()
}

const KIB: u64 = 1024;

/// The bulk channels, in the order they run. The shares favour the large
/// rings, which move a byte for fewer notifications.
pub const CHANNELS: [Channel; 5] = [
    Channel {
        label: 10,
        read_min: 1024,
        write_min: 2048,
        bytes: 512 * KIB,
        orders: (10, 11),
    },
    Channel {
        label: 11,
        read_min: 2048,
        write_min: 1024,
        bytes: 512 * KIB,
        orders: (11, 10),
    },
    Channel {
        label: 12,
        read_min: 4096,
        write_min: 4096,
        bytes: 1024 * KIB,
        orders: (12, 12),
    },
    Channel {
        label: 13,
        read_min: 8192,
        write_min: 8192,
        bytes: 2048 * KIB,
        orders: (13, 13),
    },
    Channel {
        label: 14,
        read_min: 16384,
        write_min: 16384,
        bytes: 4096 * KIB,
        orders: (14, 14),
    },
];

/// Bytes moved in each direction over all channels (8 MiB).
pub const EACH_WAY: u64 = 8 << 20;

/// The channel that carries the ping-pong and the control messages.
pub const CONTROL: u8 = 10;

/// The hostile channel's `read_min` and `write_min` (one page each way).
pub const HOSTILE_RING: usize = 4096;

/// What the hostile client adds to the producer index the server reads:
/// far more than any ring holds.
pub const HOSTILE_SKEW: u32 = 0x8000_0000;

/// A direction of a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// The left ring.
    ClientToServer,
    /// The right ring.
    ServerToClient,
}

impl Dir {
    /// Both directions.
    pub const BOTH: [Dir; 2] = [Dir::ClientToServer, Dir::ServerToClient];

    /// The direction `role` writes (the server writes server → client).
    pub fn sent_by(role: Role) -> Dir {
        match role {
            Role::Server => Dir::ServerToClient,
            _ => Dir::ClientToServer,
        }
    }

    /// The other direction.
    pub fn reverse(self) -> Dir {
        match self {
            Dir::ClientToServer => Dir::ServerToClient,
            Dir::ServerToClient => Dir::ClientToServer,
        }
    }
}

impl fmt::Display for Dir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Dir::ClientToServer => "client->server",
            Dir::ServerToClient => "server->client",
        })
    }
}

/// The data seed of channel `label` in direction `dir`.
pub fn seed(label: u8, dir: Dir) -> u64 {
    let d = match dir {
        Dir::ClientToServer => 1,
        Dir::ServerToClient => 2,
    };
    0x7663_6861_6e00_0000 | u64::from(label) << 8 | d
}

/// FNV-1a-64 of the `bytes` bytes a channel carries in direction `dir` from
/// `seed(label, dir)`.
pub fn expected_sum(label: u8, dir: Dir, bytes: u64) -> u64 {
    hello::expected_checksum(bytes as usize, seed(label, dir))
}

/// `hello`'s pattern as an endless byte stream, the same however it is cut
/// into chunks: word `i` (little-endian) gives bytes `8i..8i+8`.
#[derive(Clone, Debug)]
pub struct Stream {
    gen: Pattern,
    word: [u8; 8],
    used: usize,
}

impl Stream {
    /// The stream from `seed`.
    pub fn new(seed: u64) -> Stream {
        Stream {
            gen: Pattern::new(seed),
            word: [0; 8],
            used: 8,
        }
    }

    /// Fills `buf` with the next `buf.len()` bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut rest = buf;
        // Finish the word in hand.
        while self.used < 8 {
            let Some((b, tail)) = rest.split_first_mut() else {
                return;
            };
            *b = self.word[self.used];
            self.used += 1;
            rest = tail;
        }
        let mut chunks = rest.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.gen.next_u64().to_le_bytes());
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            self.word = self.gen.next_u64().to_le_bytes();
            let n = tail.len();
            tail.copy_from_slice(&self.word[..n]);
            self.used = n;
        }
    }
}

/// The running checksum both sides keep.
pub type Checksum = Fnv1a64;

/// Where the server offers channel `label` to `client`.
pub fn channel_path(server: u16, client: u16, label: u8) -> String {
    format!("/local/domain/{server}/data/vchan/{client}/{label}")
}

/// The directory the client watches.
pub fn vchan_dir(server: u16, client: u16) -> String {
    format!("/local/domain/{server}/data/vchan/{client}")
}

/// Where the server offers the hostile channel.
pub fn hostile_path(server: u16, client: u16) -> String {
    format!("/local/domain/{server}/data/vchan/{client}/hostile")
}

/// The server's world-readable "ready" node.
pub fn ready_path(server: u16) -> String {
    format!("/local/domain/{server}/data/ready")
}

/// The node the client writes once it has closed its channels (readable by
/// the server).
pub fn done_path(client: u16) -> String {
    format!("/local/domain/{client}/data/vchancheck-done")
}

/// What [`done_path`] holds.
pub const DONE_VALUE: &str = "closed";

/// Most grant references or ports a [`Ready`] may list.
pub const READY_MAX: usize = 64;

/// The server's announcement for the intruder: `client=<domid>
/// refs=<r>,<r>,... ports=<p>,<p>,...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ready {
    /// The client the channels are for.
    pub client: u16,
    /// Every grant reference of every channel.
    pub refs: Vec<u32>,
    /// The server's port of every channel.
    pub ports: Vec<u32>,
}

impl fmt::Display for Ready {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |v: &[u32]| {
            v.iter()
                .map(|x| format!("{x}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        write!(
            f,
            "client={} refs={} ports={}",
            self.client,
            list(&self.refs),
            list(&self.ports)
        )
    }
}

impl Ready {
    /// Parses the node's value (from the store: another domain wrote it, so
    /// anything malformed is refused).
    pub fn parse(s: &str) -> Option<Ready> {
        let list = |v: &str| -> Option<Vec<u32>> {
            let items = v
                .split(',')
                .map(parse_decimal)
                .collect::<Option<Vec<_>>>()?;
            (!items.is_empty() && items.len() <= READY_MAX).then_some(items)
        };
        let mut words = s.split(' ');
        let client = parse_domid(words.next()?.strip_prefix("client=")?)?;
        let refs = list(words.next()?.strip_prefix("refs=")?)?;
        let ports = list(words.next()?.strip_prefix("ports=")?)?;
        if words.next().is_some() {
            return None;
        }
        Some(Ready {
            client,
            refs,
            ports,
        })
    }
}

// ---- The lines the test checks ----

/// `vchancheck: channel <label>: <dir> sent|received <n> bytes fnv1a64=0x<sum>`.
pub fn transfer_line(label: u8, dir: Dir, sent: bool, bytes: u64, sum: u64) -> String {
    let verb = if sent { "sent" } else { "received" };
    format!("{PREFIX}channel {label}: {dir} {verb} {bytes} bytes fnv1a64={sum:#018x}")
}

/// `vchancheck: channel <label>: orders <c2s>/<s2c>: <n> bytes each way in
/// <t> ticks: <r> bytes per million ticks; <e> VM exits (VMCALL <v>, HLT
/// <h>)`, where `r` counts both directions: `2n * 10^6 / t`.
pub fn throughput_line(
    label: u8,
    orders: (u8, u8),
    bytes: u64,
    ticks: u64,
    exits: VmExits,
) -> String {
    let rate = u128::from(bytes) * 2 * 1_000_000 / u128::from(ticks.max(1));
    format!(
        "{PREFIX}channel {label}: orders {}/{}: {bytes} bytes each way in {ticks} ticks: {rate} \
         bytes per million ticks; {} VM exits (VMCALL {}, HLT {})",
        orders.0, orders.1, exits.total, exits.vmcall, exits.hlt
    )
}

/// Round trips of the ping-pong phase.
pub const ROUND_TRIPS: u32 = 200;
/// Bytes of each ping-pong packet.
pub const PING_LEN: usize = 32;

/// Packet `i` of the ping-pong.
pub fn ping(i: u32) -> [u8; PING_LEN] {
    let mut p = [0u8; PING_LEN];
    Stream::new(seed(CONTROL, Dir::ClientToServer) ^ u64::from(i) << 32).fill(&mut p);
    p[..4].copy_from_slice(&i.to_le_bytes());
    p
}

/// The ping-pong line: the client's has `ticks` (per round trip), the
/// server's not. Each side handled `2 * ROUND_TRIPS` messages.
pub fn pingpong_line(role: Role, ticks: Option<u64>, exits: VmExits) -> String {
    let msgs = u64::from(ROUND_TRIPS) * 2;
    let timing = match ticks {
        Some(t) => format!(
            "{} ticks per round trip, ",
            t / u64::from(ROUND_TRIPS).max(1)
        ),
        None => String::new(),
    };
    format!(
        "{PREFIX}ping-pong ({role}): {ROUND_TRIPS} round trips of {PING_LEN} bytes: {timing}{} VM \
         exits, {} per message (VMCALL {}, HLT {})",
        exits.total,
        Ratio(exits.total, msgs),
        Ratio(u64::from(exits.vmcall), msgs),
        Ratio(u64::from(exits.hlt), msgs),
    )
}

/// The intruder's report of one refused attempt.
pub fn refusal_line(what: &str, error: &str) -> String {
    format!("{PREFIX}intruder: {what}: refused: {error}")
}

/// What the intruder reads for a key.
pub fn read_attempt(path: &str) -> String {
    format!("read {path}")
}

/// What the intruder maps.
pub fn map_attempt(server: u16, gref: u32) -> String {
    format!("map grant {gref} of domain {server}")
}

/// What the intruder binds.
pub fn bind_attempt(server: u16, port: u32) -> String {
    format!("bind port {port} of domain {server}")
}

/// The intruder's summary when every attempt was refused as expected.
pub fn intruder_ok(attempts: usize) -> String {
    format!("{PREFIX}intruder: all {attempts} attempts refused as expected")
}

/// The store's answer to reading another domain's key.
pub const EXPECT_READ: &str = "EACCES";
/// The hypervisor's status for mapping a grant made to another domain.
pub const EXPECT_MAP: &str = "GNTST_general_error";
/// The hypervisor's error for binding a port not offered to the caller.
pub const EXPECT_BIND: &str = "EINVAL";

/// The server saw the garbage.
pub const HOSTILE_DETECTED: &str =
    "vchancheck: hostile: peer corrupted the shared ring: channel shut down";
/// The server released the hostile channel.
pub const HOSTILE_CLOSED: &str =
    "vchancheck: hostile: channel closed: grants ended, port closed, keys removed";
/// The client wrote the garbage.
pub const HOSTILE_WROTE: &str = "vchancheck: hostile: wrote garbage ring indices and notified";
/// The client saw the server shut the channel down.
pub const HOSTILE_SEEN: &str = "vchancheck: hostile: the server shut the channel down";
/// Both: the exchange after the corruption worked.
pub const AFTER_OK: &str = "vchancheck: after the corruption: clean exchange on channel 10 ok";
/// Both: every channel closed without error.
pub const CLOSED_OK: &str = "vchancheck: closed 5 channels cleanly";

/// The client's control message: the hostile channel is unmapped.
pub const MSG_UNMAPPED: [u8; PING_LEN] = *b"hostile channel unmapped........";
/// The server's answer: it is closed.
pub const MSG_CLOSED: [u8; PING_LEN] = *b"hostile channel closed..........";

/// A role's last line on success.
pub fn ok_line(role: Role) -> String {
    format!("{PREFIX}{role}: ok")
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    #[test]
    fn command_lines() {
        assert_eq!(
            Config::parse("role=server peer=3"),
            Ok(Config {
                role: Role::Server,
                peer: 3
            })
        );
        assert_eq!(
            Config::parse("  peer=2   role=intruder "),
            Ok(Config {
                role: Role::Intruder,
                peer: 2
            })
        );
        for bad in [
            "",
            "role=server",
            "peer=3",
            "role=server peer=0",
            "role=server peer=65535",
            "role=server peer=3 peer=4",
            "role=boss peer=3",
            "role=server peer=3 x",
            "role=server peer=+3",
        ] {
            assert!(Config::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn shares_add_up_and_wrap_every_ring() {
        assert_eq!(CHANNELS.iter().map(|c| c.bytes).sum::<u64>(), EACH_WAY);
        for c in CHANNELS {
            for order in [c.orders.0, c.orders.1] {
                assert!(
                    c.bytes >= 32 << order,
                    "channel {} wraps its order-{order} ring fewer than 32 times",
                    c.label
                );
            }
        }
        let mut orders: Vec<u8> = CHANNELS
            .iter()
            .flat_map(|c| [c.orders.0, c.orders.1])
            .collect();
        orders.sort();
        orders.dedup();
        assert_eq!(orders, [10, 11, 12, 13, 14]);
        assert!(CHANNELS.iter().any(|c| c.label == CONTROL));
        // 1 + 1 + (1 + 2) + (1 + 4) + (1 + 8).
        assert_eq!(bulk_grants(), 19);
        assert!(bulk_grants() <= READY_MAX);
    }

    #[test]
    fn read_and_write_minimums_give_the_orders() {
        for c in CHANNELS {
            let g = vchan::Geometry::for_server(c.read_min, c.write_min).unwrap();
            assert_eq!((g.left_order(), g.right_order()), c.orders, "{}", c.label);
        }
        let g = vchan::Geometry::for_server(HOSTILE_RING, HOSTILE_RING).unwrap();
        assert_eq!((g.left_order(), g.right_order()), (12, 12));
    }

    #[test]
    fn the_stream_does_not_depend_on_chunking() {
        let mut whole = vec![0u8; 1000];
        Stream::new(7).fill(&mut whole);
        let mut pieces = vec![0u8; 1000];
        let mut s = Stream::new(7);
        let mut at = 0;
        for n in [0, 1, 3, 8, 5, 13, 64, 7, 100, 1000] {
            let end = (at + n).min(1000);
            s.fill(&mut pieces[at..end]);
            at = end;
        }
        assert_eq!(at, 1000);
        assert_eq!(whole, pieces);
        let mut h = Checksum::default();
        h.update(&whole);
        assert_eq!(h.finish(), hello::expected_checksum(1000, 7));
        // Directions and channels get different data.
        assert_ne!(seed(10, Dir::ClientToServer), seed(10, Dir::ServerToClient));
        assert_ne!(
            expected_sum(10, Dir::ClientToServer, 64),
            expected_sum(11, Dir::ClientToServer, 64)
        );
    }

    #[test]
    fn ready_round_trips_and_refuses_junk() {
        let r = Ready {
            client: 3,
            refs: vec![8, 9, 10],
            ports: vec![5, 6],
        };
        let s = r.to_string();
        assert_eq!(s, "client=3 refs=8,9,10 ports=5,6");
        assert_eq!(Ready::parse(&s), Some(r));
        let many = (1..=65)
            .map(|i| format!("{i}"))
            .collect::<Vec<_>>()
            .join(",");
        for bad in [
            "",
            "client=3",
            "client=3 refs= ports=1",
            "client=3 refs=1,,2 ports=1",
            "client=3 refs=0 ports=1",
            "client=0 refs=1 ports=1",
            "client=3 refs=1 ports=1 more=2",
            "ports=1 refs=1 client=3",
            "client=3 refs=1 ports=4294967296",
            &format!("client=3 refs={many} ports=1"),
        ] {
            assert_eq!(Ready::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn lines() {
        assert_eq!(
            transfer_line(12, Dir::ClientToServer, true, 1024, 0xab),
            "vchancheck: channel 12: client->server sent 1024 bytes fnv1a64=0x00000000000000ab"
        );
        assert_eq!(
            throughput_line(
                14,
                (14, 14),
                500_000,
                1_000_000,
                VmExits {
                    total: 9,
                    vmcall: 4,
                    hlt: 3
                }
            ),
            "vchancheck: channel 14: orders 14/14: 500000 bytes each way in 1000000 ticks: \
             1000000 bytes per million ticks; 9 VM exits (VMCALL 4, HLT 3)"
        );
        let e = VmExits {
            total: 899,
            vmcall: 20,
            hlt: 5,
        };
        assert_eq!(
            pingpong_line(Role::Client, Some(2000), e),
            "vchancheck: ping-pong (client): 200 round trips of 32 bytes: 10 ticks per round \
             trip, 899 VM exits, 2.24 per message (VMCALL 0.05, HLT 0.01)"
        );
        assert_eq!(
            refusal_line(&map_attempt(2, 9), EXPECT_MAP),
            "vchancheck: intruder: map grant 9 of domain 2: refused: GNTST_general_error"
        );
        assert_eq!(ok_line(Role::Client), "vchancheck: client: ok");
        assert_ne!(ping(0), ping(1));
        assert_eq!(&ping(7)[..4], &7u32.to_le_bytes());
    }
}
