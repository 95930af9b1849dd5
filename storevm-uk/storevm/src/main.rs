//! `storevm`: the store service unikernel. It runs cloister's xenstore
//! engine (`xenstore-engine`), which takes whole requests from a domain and
//! returns replies and watch events, so the transport is the unikernel's
//! business alone. For now the only transport is the engine's scripted
//! self-check session (`xenstore_engine::selfcheck`); serving the domains'
//! xenstore rings comes next, on the same engine.
//!
//! It needs no device. Every line it prints starts with `storevm: `:
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

#[cfg(target_os = "none")]
mod unikernel {
    use rt::println;
    use xenstore_engine::selfcheck;

    /// Deepest use seen under QEMU is about 20 KiB.
    const STACK: usize = 64 * 1024;

    rt::entry!(main, stack = STACK);

    fn main() -> u8 {
        let passed = self_check();
        println!("storevm: footprint: {}", rt::footprint());
        if passed {
            rt::exit::SUCCESS
        } else {
            rt::exit::FAILURE
        }
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
}

#[cfg(not(target_os = "none"))]
fn main() {
    println!("storevm is a cloister unikernel: build it with --target x86_64-unknown-none");
}
