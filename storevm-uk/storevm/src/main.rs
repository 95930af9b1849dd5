//! `storevm`: the store service unikernel. It runs cloister's xenstore
//! engine (`xenstore-engine`), which takes whole requests from a domain and
//! returns replies and watch events; the command line picks the transport:
//!
//! * `mode=serve` (the default): the store **service VM** of a cloister
//!   system (`xen = "store"`). It serves every domain's xenstore ring with
//!   `xenstore_engine::server`: the toolstack (the VMM, privileged dom0)
//!   talks to it over this domain's own store ring page
//!   (`HVM_PARAM_STORE_PFN`, where the store is the server) and signals it
//!   with `VIRQ_DOM_EXC`; `XS_INTRODUCE` makes it map the domain's ring page
//!   (grant reference 1, `GNTTAB_RESERVED_XENSTORE`) and bind its event
//!   channel, `XS_RELEASE` undoes both. It exits 0 once the toolstack has
//!   released every domain it introduced.
//! * `mode=selfcheck`: the engine's scripted session
//!   (`xenstore_engine::selfcheck`), no Xen needed (the QEMU test).
//!
//! Every line it prints starts with `storevm: `. Serving:
//!
//! ```text
//! storevm: serving the store as domain 1: toolstack ring frame 0x7ff, VIRQ_DOM_EXC on port 1
//! storevm: introduced domain 2 ("client"): ring frame 0x7ff, port 1
//! storevm: domain 3 ("evil"): bad connection: corrupt ring indices (...); ignoring it until it is released
//! storevm: released domain 2 ("client") (7 requests, 301 bytes in, 412 bytes out)
//! storevm: all domains released; exiting
//! storevm: footprint: used ... KiB of ... KiB RAM: ...
//! ```
//!
//! The self-check prints its transcript instead:
//!
//! ```text
//! storevm: self-check: quota per unprivileged domain: nodes 8, watches 2, open transactions 1, permissions per node 5, entry size 2048 bytes
//! storevm: dom0 Watch @introduceDomain intro -> OK
//! storevm:   event dom0 @introduceDomain intro
//! storevm: dom1 tx2 TransactionEnd T -> EAGAIN
//! ...
//! storevm: self-check: 46 requests, 13 events, every reply as expected
//! storevm: footprint: used 377 KiB of 1531 KiB RAM: image 344 KiB (stack 64 KiB, deepest 20 KiB), ...
//! ```
//!
//! The transcript lines are the session's: `dom<N> [tx<T> ]<REQUEST> <args>
//! -> <reply>` for each request (the reply's payload with NULs shown as `|`,
//! or the error name), then `  event dom<N> <path> <token>` for each watch
//! event it caused. If a reply is not the one the session expects, it prints
//! `storevm: self-check: unexpected reply: <line>: expected <reply>` for
//! each, then `storevm: self-check: FAILED: ...`, and exits 1; otherwise it
//! exits 0 after the footprint line. Built for the host, it only says what
//! it is.

#![cfg_attr(target_os = "none", no_std, no_main)]
// The host build only says what it is; the mode parser is for the unikernel
// (and the host tests).
#![cfg_attr(not(any(test, target_os = "none")), allow(dead_code))]

#[cfg(target_os = "none")]
extern crate alloc;

/// What the command line asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Serve the domains' store rings (the service VM).
    Serve,
    /// Run the engine's scripted self-check session.
    SelfCheck,
}

/// The mode a command line selects: the last `mode=` word, `serve` without
/// one; `Err` with the value if it is neither `serve` nor `selfcheck`.
/// Other words are left to others (the runtime, future options).
fn mode(cmdline: &str) -> Result<Mode, &str> {
    let Some(value) = cmdline
        .split_ascii_whitespace()
        .filter_map(|w| w.strip_prefix("mode="))
        .next_back()
    else {
        return Ok(Mode::Serve);
    };
    match value {
        "serve" => Ok(Mode::Serve),
        "selfcheck" => Ok(Mode::SelfCheck),
        other => Err(other),
    }
}

#[cfg(target_os = "none")]
mod unikernel {
    use alloc::collections::BTreeMap;
    use alloc::vec::Vec;
    use core::fmt;

    use rt::println;
    use rt::xen::abi::gnttabop::RESERVED_XENSTORE;
    use rt::xen::ring::RingMem;
    use rt::xen::{DomId, Errno, GrantError, GrantTable, MappedPage, Page, Port, Xen};
    use xenstore_engine::server::{Host, Server, TOOLSTACK};
    use xenstore_engine::{selfcheck, Config, Store};

    use super::{mode, Mode};

    /// Deepest use seen under QEMU is about 20 KiB.
    const STACK: usize = 64 * 1024;

    /// `VIRQ_DOM_EXC` (xen.h): a domain died; the toolstack's signal.
    const VIRQ_DOM_EXC: u32 = 3;

    rt::entry!(main, stack = STACK);

    fn main() -> u8 {
        let code = match mode(rt::cmdline()) {
            Ok(Mode::SelfCheck) => {
                if self_check() {
                    rt::exit::SUCCESS
                } else {
                    rt::exit::FAILURE
                }
            }
            Ok(Mode::Serve) => serve(),
            Err(other) => {
                println!("storevm: unknown mode={other} (mode=serve or mode=selfcheck)");
                return rt::exit::FAILURE;
            }
        };
        println!("storevm: footprint: {}", rt::footprint());
        code
    }

    /// Runs the scripted session on a fresh engine and prints its
    /// transcript; whether every reply was the expected one.
    fn self_check() -> bool {
        let q = selfcheck::config().quota;
        println!(
            "storevm: self-check: quota per unprivileged domain: nodes {}, watches {}, open \
             transactions {}, permissions per node {}, entry size {} bytes",
            q.max_nodes, q.max_watches, q.max_transactions, q.max_perms, q.max_entry_size
        );
        let t = selfcheck::scripted_session();
        for line in &t.lines {
            println!("storevm: {line}");
        }
        for u in &t.unexpected {
            println!("storevm: self-check: unexpected reply: {u}");
        }
        if !t.unexpected.is_empty() {
            println!(
                "storevm: self-check: FAILED: {} of {} requests answered otherwise than expected",
                t.unexpected.len(),
                t.requests
            );
            return false;
        }
        let events = t.lines.iter().filter(|l| l.starts_with("  event ")).count();
        println!(
            "storevm: self-check: {} requests, {events} events, every reply as expected",
            t.requests
        );
        true
    }

    /// The store domain's own ring page (`HVM_PARAM_STORE_PFN`): the
    /// toolstack's connection. `None` unless the frame is outside usable
    /// RAM and the image, and identity mapped.
    fn own_ring(pfn: u64) -> Option<Page<'static>> {
        let gpa = pfn.checked_mul(4096).filter(|&a| a != 0)?;
        let boot = rt::boot_info()?;
        let end = rt::mmio::check_range(boot.memmap(), rt::image_range(), gpa, 4096).ok()?;
        if end > rt::IDENTITY_MAP_END {
            return None;
        }
        // SAFETY: the frame the VMM reserved for this domain's store ring:
        // not usable RAM nor the image (checked above), identity mapped, and
        // nothing else in this program uses it (the runtime's own store
        // client needs HVM_PARAM_STORE_EVTCHN, which the store domain does
        // not have). It is only accessed through `Page`, atomically.
        unsafe { Page::from_raw(gpa as *mut u8) }
    }

    /// A connected domain: its mapped ring page and our end of its channel.
    struct Peer {
        ring: PeerRing,
        port: Port,
    }

    /// A domain's ring page mapped through its grant.
    struct PeerRing(MappedPage);

    impl RingMem for PeerRing {
        fn load_u32(&self, offset: usize) -> u32 {
            RingMem::load_u32(&self.0.page(), offset)
        }
        fn store_u32(&mut self, offset: usize, value: u32) {
            RingMem::store_u32(&mut self.0.page(), offset, value)
        }
        fn read(&self, offset: usize, buf: &mut [u8]) {
            RingMem::read(&self.0.page(), offset, buf)
        }
        fn write(&mut self, offset: usize, buf: &[u8]) {
            RingMem::write(&mut self.0.page(), offset, buf)
        }
    }

    /// Why a domain could not be connected.
    enum ConnectError {
        /// Its event channel number does not fit.
        BadPort(u32),
        /// Mapping its grant failed.
        Map(GrantError),
        /// Binding its channel failed.
        Bind(Errno),
    }

    impl fmt::Display for ConnectError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                ConnectError::BadPort(p) => write!(f, "port {p} is not a port"),
                ConnectError::Map(e) => write!(f, "mapping its grant {RESERVED_XENSTORE}: {e}"),
                ConnectError::Bind(e) => write!(f, "binding its event channel: {e}"),
            }
        }
    }

    /// The server's surroundings under Xen.
    struct XenHost {
        xen: &'static Xen,
        grants: &'static GrantTable,
        own: Page<'static>,
        peers: BTreeMap<DomId, Peer>,
    }

    impl Host for XenHost {
        type Error = ConnectError;

        fn connect(&mut self, domid: DomId, _mfn: i64, port: u32) -> Result<(), ConnectError> {
            let port = Port::try_from(port).map_err(|_| ConnectError::BadPort(port))?;
            let map = self
                .grants
                .map(domid, RESERVED_XENSTORE, false)
                .map_err(ConnectError::Map)?;
            let local = match self.xen.bind_interdomain(domid, port) {
                Ok(p) => p,
                Err(e) => {
                    let _ = self.grants.unmap(map);
                    return Err(ConnectError::Bind(e));
                }
            };
            self.peers.insert(
                domid,
                Peer {
                    ring: PeerRing(map),
                    port: local,
                },
            );
            Ok(())
        }

        fn disconnect(&mut self, domid: DomId) {
            let Some(peer) = self.peers.remove(&domid) else {
                return;
            };
            // The VMM already closed the channel and revoked the mapping of
            // a domain that stopped; these undo what is left.
            let _ = self.xen.close(peer.port);
            let _ = self.grants.unmap(peer.ring.0);
        }

        fn ring(&mut self, domid: DomId) -> Option<&mut dyn RingMem> {
            if domid == TOOLSTACK {
                return Some(&mut self.own);
            }
            self.peers
                .get_mut(&domid)
                .map(|p| &mut p.ring as &mut dyn RingMem)
        }

        fn notify(&mut self, domid: DomId) {
            // The toolstack reads its replies when it next writes.
            if let Some(p) = self.peers.get(&domid) {
                let _ = self.xen.send(p.port);
            }
        }

        fn log(&mut self, line: fmt::Arguments<'_>) {
            println!("storevm: {line}");
        }
    }

    /// Serves the store until every introduced domain is released.
    fn serve() -> u8 {
        let xen = match rt::xen::init() {
            Ok(x) => x,
            Err(e) => {
                println!("storevm: cannot serve: Xen: {e}");
                return rt::exit::FAILURE;
            }
        };
        let grants = match GrantTable::init(1) {
            Ok(g) => g,
            Err(e) => {
                println!("storevm: cannot serve: grant table: {e}");
                return rt::exit::FAILURE;
            }
        };
        let virq = match xen.bind_virq(VIRQ_DOM_EXC) {
            Ok(p) => p,
            Err(e) => {
                println!("storevm: cannot serve: binding VIRQ_DOM_EXC: {e}");
                return rt::exit::FAILURE;
            }
        };
        let (pfn, _) = xen.store_params();
        let Some(own) = own_ring(pfn) else {
            println!(
                "storevm: cannot serve: no usable store ring page (HVM_PARAM_STORE_PFN {pfn:#x})"
            );
            return rt::exit::FAILURE;
        };
        match xen.domid() {
            Some(d) => println!(
                "storevm: serving the store as domain {d}: toolstack ring frame {pfn:#x}, \
                 VIRQ_DOM_EXC on port {virq}"
            ),
            None => println!(
                "storevm: serving the store: toolstack ring frame {pfn:#x}, VIRQ_DOM_EXC on \
                 port {virq}"
            ),
        }
        let mut host = XenHost {
            xen,
            grants,
            own,
            peers: BTreeMap::new(),
        };
        let mut server = Server::new(Store::new(Config::default()), &mut host);
        let mut ports: Vec<Port> = Vec::new();
        loop {
            // Whatever fired, the toolstack's signal included, is served
            // next (the toolstack first: see `Server::run`).
            if xen.take(virq) {
                server.kick(TOOLSTACK);
            }
            for (&d, p) in &host.peers {
                if xen.take(p.port) {
                    server.kick(d);
                }
            }
            let more = server.run(&mut host);
            if server.finished() {
                println!("storevm: all domains released; exiting");
                return rt::exit::SUCCESS;
            }
            if !more {
                ports.clear();
                ports.push(virq);
                ports.extend(host.peers.values().map(|p| p.port));
                xen.wait_any(&ports);
            }
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    println!("storevm is a cloister unikernel: build it with --target x86_64-unknown-none");
}

#[cfg(test)]
mod tests {
    use super::{mode, Mode};

    #[test]
    fn the_command_line_picks_the_mode() {
        assert_eq!(mode(""), Ok(Mode::Serve));
        assert_eq!(mode("quiet"), Ok(Mode::Serve));
        assert_eq!(mode("mode=serve"), Ok(Mode::Serve));
        assert_eq!(mode("mode=selfcheck"), Ok(Mode::SelfCheck));
        assert_eq!(mode("x=1  mode=selfcheck\ty"), Ok(Mode::SelfCheck));
        assert_eq!(
            mode("mode=selfcheck mode=serve"),
            Ok(Mode::Serve),
            "last wins"
        );
        assert_eq!(mode("mode=SERVE"), Err("SERVE"));
        assert_eq!(mode("mode="), Err(""));
        assert_eq!(mode("notmode=selfcheck"), Ok(Mode::Serve));
    }
}
