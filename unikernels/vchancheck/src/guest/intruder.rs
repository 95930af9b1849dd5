//! The intruder: a third domain that tries to read the channels' keys, map
//! their grants and bind their ports. Every attempt must be refused with
//! the error Xen and xenstored give.

use alloc::string::String;

use rt::println;
use rt::xen::GrantError;
use vchan::{Platform, VchanError};
use vchan_rt::XenPlatform;
use vchancheck::{
    bind_attempt, channel_path, intruder_ok, map_attempt, read_attempt, ready_path, refusal_line,
    Ready, CHANNELS, EXPECT_BIND, EXPECT_MAP, EXPECT_READ,
};

use super::{errno_name, fail, not_yet, wait_store, Context, Fail};

/// How one attempt went.
enum Outcome {
    /// Refused with this error.
    Refused(String),
    /// Allowed: the isolation failed.
    Allowed,
}

pub fn run(mut plat: XenPlatform, server: u16) -> Result<(), Fail> {
    let rpath = ready_path(server);
    plat.store()
        .watch(&rpath, "ready")
        .ctx("watching the ready node")?;
    println!("vchancheck: intruder: waiting for {rpath}");
    let value = loop {
        match plat.store_read(&rpath) {
            Ok(v) => break v,
            Err(e) if not_yet(&VchanError::Platform(e)) => wait_store(&mut plat)?,
            Err(e) => return Err(e).ctx(&alloc::format!("reading {rpath}")),
        }
    };
    let ready =
        Ready::parse(&value).ok_or_else(|| Fail(alloc::format!("{rpath} holds {value:?}")))?;
    println!("vchancheck: intruder: {rpath}: {ready}");

    let mut attempts = 0usize;
    let mut wrong = 0usize;
    let mut report = |what: String, expected: &str, outcome: Outcome| {
        attempts += 1;
        match outcome {
            Outcome::Refused(e) => {
                println!("{}", refusal_line(&what, &e));
                if e != expected {
                    println!("vchancheck: intruder: {what}: expected {expected}");
                    wrong += 1;
                }
            }
            Outcome::Allowed => {
                println!("vchancheck: intruder: {what}: ALLOWED");
                wrong += 1;
            }
        }
    };

    for c in &CHANNELS {
        let dir = channel_path(server, ready.client, c.label);
        for key in ["ring-ref", "event-channel"] {
            let path = alloc::format!("{dir}/{key}");
            let outcome = match plat.store_read(&path) {
                Ok(_) => Outcome::Allowed,
                Err(e) => Outcome::Refused(errno_name(e).into()),
            };
            report(read_attempt(&path), EXPECT_READ, outcome);
        }
    }
    for &gref in &ready.refs {
        let outcome = match plat.grants().map(server, gref, false) {
            Ok(page) => {
                let _ = plat.grants().unmap(page);
                Outcome::Allowed
            }
            Err(GrantError::Status { status, .. }) => Outcome::Refused(status.name().into()),
            Err(e) => Outcome::Refused(alloc::format!("{e}")),
        };
        report(map_attempt(server, gref), EXPECT_MAP, outcome);
    }
    for &port in &ready.ports {
        let outcome = match plat.xen().bind_interdomain(server, port) {
            Ok(local) => {
                let _ = plat.xen().close(local);
                Outcome::Allowed
            }
            Err(e) => Outcome::Refused(e.name().into()),
        };
        report(bind_attempt(server, port), EXPECT_BIND, outcome);
    }
    if wrong != 0 {
        return fail(alloc::format!(
            "{wrong} of {attempts} attempts were not refused as expected"
        ));
    }
    println!("{}", intruder_ok(attempts));
    Ok(())
}
