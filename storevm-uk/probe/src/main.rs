//! `storeprobe`: a client of the store service VM (storevm) for the
//! full-system test `tests/sel4_store.rs` (`tests/systems/store.toml`). It
//! talks to the store over its own xenstore ring (`rt::xen`'s store client,
//! or for the hostile modes the ring page itself) and behaves as its command
//! line says:
//!
//! * `good peer=<domid>`: the ordinary operations through the runtime's
//!   client — its home path and name, a write read back, a directory, a
//!   watch that fires, `EACCES` reading and writing domain `<domid>`'s
//!   `name`, a committed transaction (invisible outside it until the
//!   commit) — then [`ROUND_TRIPS`] timed reads: emulated instructions
//!   (RDTSC ticks under Bochs) and this vCPU's VM exits per round trip.
//! * `garbage`: claims to have consumed 5000 reply bytes the store never
//!   produced (its reply ring's consumer index 5000 past the producer) and
//!   sends one read request; the store, with a reply to write, finds the
//!   ring's indices corrupt.
//! * `oversize`: sends a request header announcing `XENSTORE_PAYLOAD_MAX +
//!   1` payload bytes.
//! * `flood`: after one ordinary read of its name, sends reads of `name` as
//!   fast as its request ring takes them without reading a reply, until the
//!   store stops taking them because it holds more than its
//!   `REPLY_BACKLOG` of replies for it; then reads every reply, checking
//!   that each is the answer to the next request, in order.
//!
//! The hostile modes then sleep until the store signals and check that it
//! gave the ring up with the right code in the page's `error` field
//! (`XENSTORE_SERVER_FEATURE_ERROR`). Every wait halts the vCPU until the
//! store's event channel fires (the store owes a signal whenever it moves
//! one of the ring's indices), so the probe never spins.
//!
//! Output (after the runtime's `rt:` line), e.g. for domain 2 with peer 3:
//!
//! ```text
//! storeprobe: good: domain 2, store port 1
//! storeprobe: good: home /local/domain/2, name "client"
//! storeprobe: good: read back data/greeting: "hello, store"
//! storeprobe: good: directory /local/domain/2/data: ["dir", "greeting"]
//! storeprobe: good: watch data (token tok): fired at once for data, then for data/x
//! storeprobe: good: read /local/domain/3/name -> EACCES
//! storeprobe: good: write /local/domain/3/name -> EACCES
//! storeprobe: good: transaction committed: data/t = "in tx" (ENOENT outside it before the commit)
//! storeprobe: good: 200 reads: 57878 ticks per round trip (fastest 44176); VM exits per round trip 4.00 (VMCALL 3.00, HLT 0.99)
//! storeprobe: good: every operation as expected
//!
//! storeprobe: garbage: domain 3, store port 1
//! storeprobe: garbage: reply ring consumer index set to 5000, 5000 bytes past its producer 0; sent a read request
//! storeprobe: garbage: the store gave the ring up: error field 2 (XENSTORE_ERROR_RINGIDX)
//!
//! storeprobe: oversize: domain 4, store port 1
//! storeprobe: oversize: sent a read request header announcing 4097 payload bytes (XENSTORE_PAYLOAD_MAX is 4096)
//! storeprobe: oversize: the store gave the ring up: error field 3 (XENSTORE_ERROR_PROTO)
//!
//! storeprobe: flood: domain 5, store port 1
//! storeprobe: flood: sent 487 requests without reading a reply; the store took 439 and stopped, owing 8195 reply bytes (REPLY_BACKLOG is 8192)
//! storeprobe: flood: all 487 replies received, in order
//! ```
//!
//! On anything unexpected it prints `storeprobe: <mode>: FAILED: <why>` and
//! exits 1; otherwise it exits 0. Built for the host, it only says what it
//! is.

#![cfg_attr(target_os = "none", no_std, no_main)]
// The host build only says what it is; the logic below is for the
// unikernel (and the host tests).
#![cfg_attr(not(any(test, target_os = "none")), allow(dead_code))]

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;

use xenstore_engine::wire::{self, Header, WireError, HEADER_LEN};

/// Timed reads in `good` mode.
pub const ROUND_TRIPS: u32 = 200;

/// What the command line asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Ordinary store operations; `peer` is the domain whose node it must
    /// not be allowed to read or write.
    Good {
        /// Another domain's id.
        peer: u16,
    },
    /// Corrupt reply-ring indices.
    Garbage,
    /// An oversized request header.
    Oversize,
    /// Requests without reading replies.
    Flood,
}

impl Mode {
    /// The mode's name, as on the command line.
    fn name(self) -> &'static str {
        match self {
            Mode::Good { .. } => "good",
            Mode::Garbage => "garbage",
            Mode::Oversize => "oversize",
            Mode::Flood => "flood",
        }
    }
}

/// A command line that names no mode, or names one badly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ModeError<'a> {
    /// No mode word.
    Missing,
    /// The first word is not a mode.
    Unknown(&'a str),
    /// `good` without `peer=<domid>`, or with a value that is not one.
    Peer(Option<&'a str>),
}

impl fmt::Display for ModeError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModeError::Missing => f.write_str("no mode"),
            ModeError::Unknown(w) => write!(f, "unknown mode {w:?}"),
            ModeError::Peer(None) => f.write_str("good needs peer=<domain id>"),
            ModeError::Peer(Some(v)) => write!(f, "peer={v} is not a domain id"),
        }
    }
}

/// The mode a command line selects: its first word, and for `good` a
/// `peer=<domid>` word (the last one counts).
fn mode(cmdline: &str) -> Result<Mode, ModeError<'_>> {
    let mut words = cmdline.split_ascii_whitespace();
    let first = words.next().ok_or(ModeError::Missing)?;
    match first {
        "good" => {
            let value = words
                .filter_map(|w| w.strip_prefix("peer="))
                .next_back()
                .ok_or(ModeError::Peer(None))?;
            let peer = value.parse().map_err(|_| ModeError::Peer(Some(value)))?;
            Ok(Mode::Good { peer })
        }
        "garbage" => Ok(Mode::Garbage),
        "oversize" => Ok(Mode::Oversize),
        "flood" => Ok(Mode::Flood),
        other => Err(ModeError::Unknown(other)),
    }
}

/// Reply bytes the store owes a client that is not reading: the replies to
/// the `consumed` bytes of `req_len`-byte requests it has taken (`reply_len`
/// bytes each) less the `produced` bytes already in the reply ring. `None`
/// if the store produced more than that (it cannot have, honestly).
fn owed(consumed: usize, req_len: usize, reply_len: usize, produced: usize) -> Option<usize> {
    consumed
        .checked_div(req_len)?
        .checked_mul(reply_len)?
        .checked_sub(produced)
}

/// Takes the first complete message off the front of `buf` (bytes read from
/// the reply ring): its header and payload, or `None` until it is complete.
fn next_message(buf: &mut Vec<u8>) -> Result<Option<(Header, Vec<u8>)>, WireError> {
    let Some(head) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let header = Header::parse(head)?;
    let len = wire::frame_len(&header)?;
    let Some(msg) = buf.get(..len) else {
        return Ok(None);
    };
    let (_, payload) = wire::parse_message(msg)?;
    let payload = payload.to_vec();
    buf.drain(..len);
    Ok(Some((header, payload)))
}

#[cfg(target_os = "none")]
mod unikernel {
    use alloc::format;
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;
    use core::fmt::{self, Display};
    use core::time::Duration;

    use rt::println;
    use rt::stats::{vm_exits, Ratio};
    use rt::time::ticks;
    use rt::xen::store::ErrorCode;
    use rt::xen::{DomId, Page, Port, Store, StoreError, StoreLink, Tx, WatchEvent, Xen};
    use xenstore_engine::client;
    use xenstore_engine::ring::{
        Consumer, Producer, Ring, RingMem, ERROR, ERROR_NONE, ERROR_PROTO, ERROR_RINGIDX,
        RING_SIZE, RSP_CONS, RSP_PROD, SERVER_FEATURES, SERVER_FEATURE_ERROR,
    };
    use xenstore_engine::server::REPLY_BACKLOG;
    use xenstore_engine::wire::{Header, MsgType, HEADER_LEN, PAYLOAD_MAX};

    use super::{mode, next_message, owed, Mode, ROUND_TRIPS};

    rt::entry!(main);

    /// Why a mode failed.
    struct Fail(String);

    /// Attaches what was being done to an error.
    trait Context<T> {
        /// The error, prefixed with `what`.
        fn ctx(self, what: &str) -> Result<T, Fail>;
    }

    impl<T, E: Display> Context<T> for Result<T, E> {
        fn ctx(self, what: &str) -> Result<T, Fail> {
            self.map_err(|e| Fail(format!("{what}: {e}")))
        }
    }

    /// Fails with `why` unless `ok`.
    fn ensure(ok: bool, why: impl FnOnce() -> String) -> Result<(), Fail> {
        if ok {
            Ok(())
        } else {
            Err(Fail(why()))
        }
    }

    /// Bytes as a quoted string (invalid UTF-8 replaced).
    fn quoted(bytes: &[u8]) -> String {
        format!("{:?}", String::from_utf8_lossy(bytes))
    }

    fn main() -> u8 {
        let mode = match mode(rt::cmdline()) {
            Ok(m) => m,
            Err(e) => {
                println!(
                    "storeprobe: FAILED: command line {:?}: {e} (good peer=<domid> | garbage | \
                     oversize | flood)",
                    rt::cmdline()
                );
                return rt::exit::FAILURE;
            }
        };
        match run(mode) {
            Ok(()) => rt::exit::SUCCESS,
            Err(Fail(why)) => {
                println!("storeprobe: {}: FAILED: {why}", mode.name());
                rt::exit::FAILURE
            }
        }
    }

    fn run(mode: Mode) -> Result<(), Fail> {
        let xen = rt::xen::init().ctx("Xen support")?;
        let me = xen
            .domid()
            .ok_or_else(|| Fail("CPUID does not report the domain id".to_string()))?;
        let mut store = xen.store().ctx("store connection")?;
        println!(
            "storeprobe: {}: domain {me}, store port {}",
            mode.name(),
            store.link().port()
        );
        match mode {
            Mode::Good { peer } => good(&mut store, me, peer),
            Mode::Garbage => garbage(RawRing::of(xen, &store)),
            Mode::Oversize => oversize(RawRing::of(xen, &store)),
            Mode::Flood => flood(xen, &mut store),
        }
    }

    // ---- good ----

    /// What `good` writes and reads back (relative to its home).
    const GREETING_PATH: &str = "data/greeting";
    const GREETING: &[u8] = b"hello, store";
    /// Its watch.
    const WATCH_PATH: &str = "data";
    const WATCH_TOKEN: &str = "tok";
    /// Written under the watch.
    const WATCHED_PATH: &str = "data/x";
    /// Written in the transaction.
    const TX_PATH: &str = "data/t";
    const TX_VALUE: &[u8] = b"in tx";
    /// How long a watch event may take.
    const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

    /// The next watch event, waiting for it at most [`EVENT_TIMEOUT`].
    fn next_event(st: &mut Store, what: &str) -> Result<WatchEvent, Fail> {
        let deadline = rt::time::now().saturating_add(EVENT_TIMEOUT);
        st.wait_event(deadline)
            .ctx(what)?
            .ok_or_else(|| Fail(format!("{what}: no watch event")))
    }

    /// Checks that `result` is the store's `EACCES` and says so.
    fn refused<T: fmt::Debug>(result: Result<T, StoreError>, what: &str) -> Result<(), Fail> {
        match result {
            Err(StoreError::Store(ErrorCode::Eacces)) => {
                println!("storeprobe: good: {what} -> EACCES");
                Ok(())
            }
            Err(e) => Err(Fail(format!("{what}: {e}, expected EACCES"))),
            Ok(v) => Err(Fail(format!("{what} was allowed ({v:?}), expected EACCES"))),
        }
    }

    fn good(st: &mut Store, me: DomId, peer: DomId) -> Result<(), Fail> {
        let home = st.domain_path(me).ctx("XS_GET_DOMAIN_PATH")?;
        let want = format!("/local/domain/{me}");
        ensure(home == want, || {
            format!("home is {home:?}, expected {want}")
        })?;
        let name = st.read(Tx::NONE, "name").ctx("reading name")?;
        println!("storeprobe: good: home {home}, name {}", quoted(&name));

        st.write(Tx::NONE, GREETING_PATH, GREETING)
            .ctx("writing data/greeting")?;
        let back = st
            .read(Tx::NONE, GREETING_PATH)
            .ctx("reading data/greeting")?;
        ensure(back == GREETING, || {
            format!("data/greeting read back as {}", quoted(&back))
        })?;
        println!(
            "storeprobe: good: read back {GREETING_PATH}: {}",
            quoted(&back)
        );

        st.mkdir(Tx::NONE, "data/dir").ctx("mkdir data/dir")?;
        let data = format!("{home}/data");
        let mut dir = st.directory(Tx::NONE, &data).ctx("listing data")?;
        dir.sort();
        ensure(dir == ["dir", "greeting"], || {
            format!("{data} lists {dir:?}, expected dir and greeting")
        })?;
        println!("storeprobe: good: directory {data}: {dir:?}");

        st.watch(WATCH_PATH, WATCH_TOKEN).ctx("watching data")?;
        let first = next_event(st, "the watch's first event")?;
        st.write(Tx::NONE, WATCHED_PATH, b"1")
            .ctx("writing data/x")?;
        let fired = next_event(st, "the watch event for data/x")?;
        for (e, path) in [(&first, WATCH_PATH), (&fired, WATCHED_PATH)] {
            ensure(e.path == path && e.token == WATCH_TOKEN, || {
                format!("watch event {e:?}, expected {path} (token {WATCH_TOKEN})")
            })?;
        }
        println!(
            "storeprobe: good: watch {WATCH_PATH} (token {WATCH_TOKEN}): fired at once for {}, \
             then for {}",
            first.path, fired.path
        );
        st.unwatch(WATCH_PATH, WATCH_TOKEN)
            .ctx("removing the watch")?;

        let other = format!("/local/domain/{peer}/name");
        refused(st.read(Tx::NONE, &other), &format!("read {other}"))?;
        refused(st.write(Tx::NONE, &other, b"x"), &format!("write {other}"))?;

        let t = st.transaction_start().ctx("starting a transaction")?;
        st.write(t, TX_PATH, TX_VALUE)
            .ctx("writing data/t in the transaction")?;
        match st.read(Tx::NONE, TX_PATH) {
            Err(StoreError::Store(ErrorCode::Enoent)) => {}
            other => {
                return Err(Fail(format!(
                    "outside the transaction, reading data/t gave {other:?}, expected ENOENT"
                )))
            }
        }
        st.transaction_end(t, true).ctx("committing")?;
        let v = st.read(Tx::NONE, TX_PATH).ctx("reading data/t")?;
        ensure(v == TX_VALUE, || {
            format!("data/t is {} after the commit", quoted(&v))
        })?;
        println!(
            "storeprobe: good: transaction committed: {TX_PATH} = {} (ENOENT outside it before \
             the commit)",
            quoted(&v)
        );

        // Round trips: each read is one request and its reply.
        let (mut total, mut fastest) = (0u64, u64::MAX);
        let e0 = vm_exits();
        for _ in 0..ROUND_TRIPS {
            let t0 = ticks();
            let v = st.read(Tx::NONE, GREETING_PATH).ctx("timed read")?;
            let dt = ticks().wrapping_sub(t0);
            ensure(v == GREETING, || {
                format!("timed read of data/greeting gave {}", quoted(&v))
            })?;
            total = total.saturating_add(dt);
            fastest = fastest.min(dt);
        }
        let e = vm_exits().since(e0);
        let n = u64::from(ROUND_TRIPS);
        println!(
            "storeprobe: good: {ROUND_TRIPS} reads: {} ticks per round trip (fastest {fastest}); \
             VM exits per round trip {} (VMCALL {}, HLT {})",
            total / n,
            Ratio(e.total, n),
            Ratio(u64::from(e.vmcall), n),
            Ratio(u64::from(e.hlt), n),
        );
        println!("storeprobe: good: every operation as expected");
        Ok(())
    }

    // ---- the hostile modes ----

    /// How far past the reply ring's producer `garbage` puts the consumer.
    const GARBAGE_AHEAD: u32 = 5000;
    /// The path `garbage` and `flood` read (their `name`).
    const NAME: &[u8] = b"name";
    /// Signals the probe waits through for the store to report an error.
    const MAX_SIGNALS: usize = 16;
    /// Requests `flood` sends at most before it gives up on the store
    /// ever stopping.
    const FLOOD_MAX: u32 = 4096;

    /// This domain's store ring used directly: the page and the store's
    /// event channel.
    struct RawRing<'a> {
        xen: &'static Xen,
        page: Page<'a>,
        port: Port,
    }

    impl<'a> RawRing<'a> {
        /// The ring of the connection `store` (which is not used meanwhile).
        fn of(xen: &'static Xen, store: &'a Store) -> RawRing<'a> {
            RawRing {
                xen,
                page: store.link().ring(),
                port: store.link().port(),
            }
        }

        /// Signals the store.
        fn notify(&self) -> Result<(), Fail> {
            self.xen.send(self.port).ctx("signalling the store")
        }

        /// Sleeps until the store signals (the vCPU halts).
        fn wait(&self) {
            self.xen.wait_any(&[self.port]);
            self.xen.take(self.port);
        }

        /// Sleeps until the store reports an error in the page (through at
        /// most [`MAX_SIGNALS`] of its signals); the code.
        fn wait_for_error(&self) -> Result<u32, Fail> {
            let mut signals = 0;
            loop {
                let e = RingMem::load_u32(&self.page, ERROR);
                if e != ERROR_NONE {
                    return Ok(e);
                }
                ensure(signals < MAX_SIGNALS, || {
                    format!("the store signalled {MAX_SIGNALS} times without reporting an error")
                })?;
                self.wait();
                signals += 1;
                let features = RingMem::load_u32(&self.page, SERVER_FEATURES);
                ensure(features & SERVER_FEATURE_ERROR != 0, || {
                    format!(
                        "the store signalled but does not announce \
                         XENSTORE_SERVER_FEATURE_ERROR (server_features {features:#x})"
                    )
                })?;
            }
        }

        /// Writes all of `msg` into the (empty enough) request ring.
        fn send(&mut self, msg: &[u8]) -> Result<(), Fail> {
            let mut req = Producer::attach(&self.page, Ring::Req);
            let n = req
                .write(&mut self.page, msg)
                .ctx("writing the request ring")?;
            ensure(n == msg.len(), || {
                format!("only {n} of {} bytes fit in the request ring", msg.len())
            })
        }
    }

    /// The name of a value of the page's `error` field.
    fn error_name(code: u32) -> &'static str {
        match code {
            ERROR_NONE => "XENSTORE_ERROR_NONE",
            ERROR_RINGIDX => "XENSTORE_ERROR_RINGIDX",
            ERROR_PROTO => "XENSTORE_ERROR_PROTO",
            _ => "unknown",
        }
    }

    /// Waits for the store to give the ring up with `want`.
    fn given_up(raw: &RawRing<'_>, mode: &str, want: u32) -> Result<(), Fail> {
        let got = raw.wait_for_error()?;
        ensure(got == want, || {
            format!(
                "the store's error field says {got} ({}), expected {want} ({})",
                error_name(got),
                error_name(want)
            )
        })?;
        println!(
            "storeprobe: {mode}: the store gave the ring up: error field {got} ({})",
            error_name(got)
        );
        Ok(())
    }

    /// A read request for `name`.
    fn read_name(req_id: u32) -> Result<Vec<u8>, Fail> {
        client::request(MsgType::Read, req_id, 0, &[NAME])
            .ok_or_else(|| Fail("a read request does not encode".to_string()))
    }

    fn garbage(mut raw: RawRing<'_>) -> Result<(), Fail> {
        let prod = RingMem::load_u32(&raw.page, RSP_PROD);
        let cons = prod.wrapping_add(GARBAGE_AHEAD);
        RingMem::store_u32(&mut raw.page, RSP_CONS, cons);
        raw.send(&read_name(1)?)?;
        raw.notify()?;
        println!(
            "storeprobe: garbage: reply ring consumer index set to {cons}, {GARBAGE_AHEAD} bytes \
             past its producer {prod}; sent a read request"
        );
        given_up(&raw, "garbage", ERROR_RINGIDX)
    }

    fn oversize(mut raw: RawRing<'_>) -> Result<(), Fail> {
        let len = PAYLOAD_MAX as u32 + 1;
        let header = Header {
            msg_type: MsgType::Read.code(),
            req_id: 1,
            tx_id: 0,
            len,
        };
        raw.send(&header.to_bytes())?;
        raw.notify()?;
        println!(
            "storeprobe: oversize: sent a read request header announcing {len} payload bytes \
             (XENSTORE_PAYLOAD_MAX is {PAYLOAD_MAX})"
        );
        given_up(&raw, "oversize", ERROR_PROTO)
    }

    fn flood(xen: &'static Xen, st: &mut Store) -> Result<(), Fail> {
        // One ordinary exchange: the connection works, and every reply
        // below must carry this value.
        let name = st.read(Tx::NONE, "name").ctx("reading name")?;
        let reply_len = HEADER_LEN + name.len();
        let mut raw = RawRing::of(xen, st);
        let req_len = read_name(0)?.len();
        let mut req = Producer::attach(&raw.page, Ring::Req);
        let mut rsp = Consumer::attach(&raw.page, Ring::Rsp);
        let ring = RING_SIZE as usize;

        // Requests as fast as the ring takes them, replies unread, until
        // the store holds more than REPLY_BACKLOG bytes for this domain
        // and so stops reading (it then owes no signal: stop waiting).
        let mut sent = 0u32;
        let (taken, owing) = loop {
            let mut wrote = false;
            while sent < FLOOD_MAX && req.space(&raw.page).ctx("request ring")? as usize >= req_len
            {
                let msg = read_name(1 + sent)?;
                let n = req
                    .write(&mut raw.page, &msg)
                    .ctx("writing the request ring")?;
                ensure(n == msg.len(), || {
                    format!("the request ring took {n} of {} bytes", msg.len())
                })?;
                sent += 1;
                wrote = true;
            }
            if wrote {
                raw.notify()?;
            }
            let unread = ring - req.space(&raw.page).ctx("request ring")? as usize;
            let consumed = (sent as usize * req_len)
                .checked_sub(unread)
                .ok_or_else(|| Fail(format!("{unread} request bytes unread of {sent} requests")))?;
            let produced = rsp.available(&raw.page).ctx("reply ring")? as usize;
            let owing = owed(consumed, req_len, reply_len, produced).ok_or_else(|| {
                Fail(format!(
                    "the store produced {produced} reply bytes for {} requests",
                    consumed / req_len
                ))
            })?;
            if owing > REPLY_BACKLOG {
                break (consumed / req_len, owing);
            }
            ensure(sent < FLOOD_MAX, || {
                format!("the store still takes requests after {FLOOD_MAX} unanswered ones")
            })?;
            if !wrote {
                raw.wait();
            }
        };
        println!(
            "storeprobe: flood: sent {sent} requests without reading a reply; the store took \
             {taken} and stopped, owing {owing} reply bytes (REPLY_BACKLOG is {REPLY_BACKLOG})"
        );

        // Every reply, in order.
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = [0u8; RING_SIZE as usize];
        let mut got = 0u32;
        while got < sent {
            let n = rsp.read(&mut raw.page, &mut chunk).ctx("reply ring")?;
            if n == 0 {
                raw.wait();
                continue;
            }
            raw.notify()?;
            buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
            while let Some((h, payload)) = next_message(&mut buf).ctx("reply")? {
                let id = 1 + got;
                ensure(
                    h.msg_type == MsgType::Read.code() && h.req_id == id && payload == name,
                    || {
                        format!(
                            "reply {got}: type {}, request {}, {}; expected a read reply to \
                             request {id} with {}",
                            h.msg_type,
                            h.req_id,
                            quoted(&payload),
                            quoted(&name)
                        )
                    },
                )?;
                got += 1;
                ensure(got < sent || buf.is_empty(), || {
                    format!("{} bytes follow the last reply", buf.len())
                })?;
            }
        }
        println!("storeprobe: flood: all {sent} replies received, in order");
        Ok(())
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    println!(
        "storeprobe is a cloister unikernel (a store client for storevm's full-system test): \
         build it with --target x86_64-unknown-none"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use xenstore_engine::client;
    use xenstore_engine::wire::MsgType;

    #[test]
    fn the_command_line_picks_the_mode() {
        assert_eq!(mode("good peer=3"), Ok(Mode::Good { peer: 3 }));
        assert_eq!(
            mode("good peer=3 x peer=5"),
            Ok(Mode::Good { peer: 5 }),
            "last wins"
        );
        assert_eq!(mode("garbage"), Ok(Mode::Garbage));
        assert_eq!(mode(" oversize  other"), Ok(Mode::Oversize));
        assert_eq!(mode("flood"), Ok(Mode::Flood));
        for m in [
            Mode::Good { peer: 7 },
            Mode::Garbage,
            Mode::Oversize,
            Mode::Flood,
        ] {
            assert_eq!(mode(&format!("{} peer=7", m.name())), Ok(m));
        }
        assert_eq!(mode(""), Err(ModeError::Missing));
        assert_eq!(mode("peer=3 good"), Err(ModeError::Unknown("peer=3")));
        assert_eq!(mode("good"), Err(ModeError::Peer(None)));
        assert_eq!(mode("good peer=x"), Err(ModeError::Peer(Some("x"))));
        assert_eq!(mode("good peer=70000"), Err(ModeError::Peer(Some("70000"))));
        assert_eq!(
            ModeError::Peer(None).to_string(),
            "good needs peer=<domain id>"
        );
    }

    #[test]
    fn owed_reply_bytes() {
        // 10 whole requests of 21 bytes and part of the 11th taken; 100
        // bytes of 25-byte replies in the ring.
        assert_eq!(owed(10 * 21 + 16, 21, 25, 100), Some(150));
        assert_eq!(owed(0, 21, 25, 0), Some(0));
        // More replies than requests taken: impossible from a real store.
        assert_eq!(owed(21, 21, 25, 26), None);
        assert_eq!(owed(21, 0, 25, 0), None);
    }

    #[test]
    fn messages_come_off_the_stream_whole() {
        let a = client::request(MsgType::Read, 1, 0, &[b"x"]).unwrap();
        let b = client::request(MsgType::Read, 2, 0, &[b"yz"]).unwrap();
        let mut buf = Vec::new();
        buf.extend_from_slice(&a[..10]);
        assert_eq!(next_message(&mut buf), Ok(None));
        buf.extend_from_slice(&a[10..]);
        buf.extend_from_slice(&b[..HEADER_LEN + 1]);
        let (h, p) = next_message(&mut buf).unwrap().unwrap();
        assert_eq!((h.req_id, p), (1, b"x\0".to_vec()));
        assert_eq!(next_message(&mut buf), Ok(None));
        buf.extend_from_slice(&b[HEADER_LEN + 1..]);
        let (h, p) = next_message(&mut buf).unwrap().unwrap();
        assert_eq!((h.req_id, p), (2, b"yz\0".to_vec()));
        assert!(buf.is_empty());
        // A header announcing too much is an error, not a wait.
        let mut bad = vec![0u8; HEADER_LEN];
        bad[12..16].copy_from_slice(&4097u32.to_le_bytes());
        assert_eq!(next_message(&mut bad), Err(WireError::PayloadTooLong(4097)));
    }
}
