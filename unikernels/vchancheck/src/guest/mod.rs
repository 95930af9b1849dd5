//! The unikernel: setup, the helpers every role shares, and the roles.

mod client;
mod intruder;
mod server;

use alloc::string::{String, ToString};
use alloc::vec;
use core::fmt::Display;

use rt::println;
use rt::stats::{vm_exits, VmExits};
use rt::time::ticks;
use rt::xen::GrantTable;
use vchan::{Errno, VchanError, Wait};
use vchan_rt::{XenPlatform, XenVchan, XenWait};
use vchancheck::{
    expected_sum, ok_line, pingpong_line, seed, throughput_line, transfer_line, Channel, Checksum,
    Config, Dir, Role, Stream, CHANNELS, PING_LEN, ROUND_TRIPS,
};

rt::entry!(main, stack = 64 * 1024);

/// Why a role failed.
pub struct Fail(String);

/// Attaches what was being done to an error.
pub trait Context<T> {
    /// The error, prefixed with `what`.
    fn ctx(self, what: &str) -> Result<T, Fail>;
}

impl<T, E: Display> Context<T> for Result<T, E> {
    fn ctx(self, what: &str) -> Result<T, Fail> {
        self.map_err(|e| Fail(alloc::format!("{what}: {e}")))
    }
}

/// A failure described by `msg`.
pub fn fail<T>(msg: impl Into<String>) -> Result<T, Fail> {
    Err(Fail(msg.into()))
}

fn main() -> u8 {
    let cfg = match Config::parse(rt::cmdline()) {
        Ok(c) => c,
        Err(e) => {
            println!("vchancheck: FAILED: command line `{}`: {e}", rt::cmdline());
            return rt::exit::FAILURE;
        }
    };
    let result = setup(cfg.role).and_then(|plat| match cfg.role {
        Role::Server => server::run(plat, cfg.peer),
        Role::Client => client::run(plat, cfg.peer),
        Role::Intruder => intruder::run(plat, cfg.peer),
    });
    println!("vchancheck: footprint: {}", rt::footprint());
    match result {
        Ok(()) => {
            println!("{}", ok_line(cfg.role));
            rt::exit::SUCCESS
        }
        Err(Fail(why)) => {
            println!("vchancheck: {}: FAILED: {why}", cfg.role);
            rt::exit::FAILURE
        }
    }
}

/// Xen support, one grant-table frame (512 references: plenty), the store.
fn setup(role: Role) -> Result<XenPlatform, Fail> {
    let xen = rt::xen::init().ctx("Xen support")?;
    let domid = xen
        .domid()
        .ok_or_else(|| Fail("CPUID does not report the domain id".to_string()))?;
    let grants = GrantTable::init(1).ctx("grant table")?;
    let store = xen.store().ctx("store connection")?;
    println!(
        "vchancheck: {role} in domain {domid} (Xen ABI {}.{})",
        xen.version().0,
        xen.version().1
    );
    Ok(XenPlatform::new(xen, grants, store, domid))
}

/// Sleeps until the store may have sent a watch event: at once if one is
/// queued (events are drained), else until the store's port fires.
pub fn wait_store(plat: &mut XenPlatform) -> Result<(), Fail> {
    let mut had = false;
    while plat
        .store()
        .next_event()
        .ctx("store watch events")?
        .is_some()
    {
        had = true;
    }
    if !had {
        let xen = plat.xen();
        let port = plat.store().link().port();
        xen.wait_any(&[port]);
        xen.take(port);
    }
    Ok(())
}

/// Whether a store or vchan error means "not there (for us) yet".
pub fn not_yet(e: &VchanError) -> bool {
    matches!(e, VchanError::Platform(e) if *e == Errno::ENOENT || *e == Errno::EACCES)
}

/// Xen's name of an errno.
pub fn errno_name(e: Errno) -> &'static str {
    rt::xen::Errno(e.0).name()
}

/// The ring orders of an endpoint: (client → server, server → client).
pub fn orders(v: &XenVchan, role: Role) -> (u8, u8) {
    let log2 = |n: usize| n.trailing_zeros() as u8;
    let (rd, wr) = (log2(v.read_size()), log2(v.write_size()));
    match role {
        Role::Server => (rd, wr),
        _ => (wr, rd),
    }
}

/// Bytes handed to one `write` or `read`: the largest ring.
const CHUNK: usize = 16 * 1024;

/// What one channel's bulk phase measured, printed after every channel
/// ran (printing is slow: one VM exit per character).
pub struct Bulk {
    channel: Channel,
    sent_by: Role,
    tx_sum: u64,
    rx_sum: u64,
    ticks: u64,
    exits: VmExits,
}

impl Bulk {
    /// Prints the two transfer lines and the throughput line; fails if the
    /// received data is not the expected stream.
    pub fn report(&self) -> Result<(), Fail> {
        let c = &self.channel;
        let (out, inn) = (
            Dir::sent_by(self.sent_by),
            Dir::sent_by(self.sent_by).reverse(),
        );
        println!(
            "{}",
            transfer_line(c.label, out, true, c.bytes, self.tx_sum)
        );
        println!(
            "{}",
            transfer_line(c.label, inn, false, c.bytes, self.rx_sum)
        );
        println!(
            "{}",
            throughput_line(c.label, c.orders, c.bytes, self.ticks, self.exits)
        );
        if self.rx_sum != expected_sum(c.label, inn, c.bytes) {
            return fail(alloc::format!(
                "channel {}: received data differs from the {inn} stream",
                c.label
            ));
        }
        Ok(())
    }
}

/// Moves channel `c`'s share both ways at once: writes this side's stream
/// and reads the peer's, waiting only when neither can go on.
pub fn bulk(v: &mut XenVchan, w: &mut XenWait, c: &Channel, role: Role) -> Result<Bulk, Fail> {
    let out = Dir::sent_by(role);
    let total = c.bytes;
    let mut gen = Stream::new(seed(c.label, out));
    let (mut tx_sum, mut rx_sum) = (Checksum::default(), Checksum::default());
    let (mut txbuf, mut rxbuf) = (vec![0u8; CHUNK], vec![0u8; CHUNK]);
    let (mut tx_off, mut tx_len) = (0usize, 0usize);
    let (mut generated, mut sent, mut received) = (0u64, 0u64, 0u64);
    let what = alloc::format!("channel {}", c.label);
    let (start, e0) = (ticks(), vm_exits());
    while sent < total || received < total {
        let mut progress = false;
        if sent < total {
            if tx_off == tx_len {
                let n = (total - generated).min(CHUNK as u64) as usize;
                gen.fill(&mut txbuf[..n]);
                tx_sum.update(&txbuf[..n]);
                (tx_off, tx_len) = (0, n);
                generated += n as u64;
            }
            match v.write(&txbuf[tx_off..tx_len]) {
                Ok(n) => {
                    tx_off += n;
                    sent += n as u64;
                    progress |= n > 0;
                }
                Err(VchanError::WouldBlock) => {}
                Err(e) => return Err(e).ctx(&alloc::format!("{what}: write")),
            }
        }
        if received < total {
            let want = (total - received).min(CHUNK as u64) as usize;
            match v.read(&mut rxbuf[..want]) {
                Ok(0) => return fail(alloc::format!("{what}: the peer closed early")),
                Ok(n) => {
                    rx_sum.update(&rxbuf[..n]);
                    received += n as u64;
                    progress = true;
                }
                Err(VchanError::WouldBlock) => {}
                Err(e) => return Err(e).ctx(&alloc::format!("{what}: read")),
            }
        }
        if !progress {
            w.wait(v.port()).ctx(&what)?;
        }
    }
    Ok(Bulk {
        channel: *c,
        sent_by: role,
        tx_sum: tx_sum.finish(),
        rx_sum: rx_sum.finish(),
        ticks: ticks().wrapping_sub(start),
        exits: vm_exits().since(e0),
    })
}

/// Runs every channel's bulk phase in turn, then reports them all.
pub fn bulk_all(chans: &mut [XenVchan], w: &mut XenWait, role: Role) -> Result<(), Fail> {
    let mut results = alloc::vec::Vec::new();
    for (v, c) in chans.iter_mut().zip(&CHANNELS) {
        results.push(bulk(v, w, c, role)?);
    }
    let mut first = Ok(());
    for r in &results {
        let checked = r.report();
        if first.is_ok() {
            first = checked;
        }
    }
    first
}

/// The client's ping-pong: sends each packet, waits for its echo. The
/// first round trip only brings both sides to the loop (the server may
/// still be reporting its bulk phase); the clock starts after it.
pub fn ping_client(v: &mut XenVchan, w: &mut XenWait) -> Result<(), Fail> {
    let mut back = [0u8; PING_LEN];
    let (mut t0, mut e0) = (ticks(), vm_exits());
    for i in 0..=ROUND_TRIPS {
        let p = vchancheck::ping(i);
        v.send_blocking(w, &p).ctx("ping-pong: send")?;
        v.recv_blocking(w, &mut back).ctx("ping-pong: receive")?;
        if back != p {
            return fail(alloc::format!("ping-pong: echo {i} differs"));
        }
        if i == 0 {
            (t0, e0) = (ticks(), vm_exits());
        }
    }
    let e = vm_exits().since(e0);
    let t = ticks().wrapping_sub(t0);
    println!("{}", pingpong_line(Role::Client, Some(t), e));
    Ok(())
}

/// The server's ping-pong: echoes every packet (counting from the second,
/// as the client does).
pub fn ping_server(v: &mut XenVchan, w: &mut XenWait) -> Result<(), Fail> {
    let mut p = [0u8; PING_LEN];
    let mut e0 = vm_exits();
    for i in 0..=ROUND_TRIPS {
        v.recv_blocking(w, &mut p).ctx("ping-pong: receive")?;
        if p != vchancheck::ping(i) {
            return fail(alloc::format!("ping-pong: packet {i} differs"));
        }
        v.send_blocking(w, &p).ctx("ping-pong: send")?;
        if i == 0 {
            e0 = vm_exits();
        }
    }
    let e = vm_exits().since(e0);
    println!("{}", pingpong_line(Role::Server, None, e));
    Ok(())
}

/// Closes every channel; fails on the first error (after trying all).
pub fn close_all(plat: &mut XenPlatform, chans: alloc::vec::Vec<XenVchan>) -> Result<(), Fail> {
    let mut first = Ok(());
    for v in chans {
        let r = v.close(plat).ctx("closing a channel");
        if first.is_ok() {
            first = r;
        }
    }
    first
}
