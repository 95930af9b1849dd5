//! The client: finds the channels through the store, moves data, runs the
//! ping-pong, plays the hostile peer on one more channel, and closes.

use alloc::vec::Vec;

use rt::println;
use vchan::layout::{CLI_LIVE, LEFT_CONS, LEFT_PROD, RIGHT_CONS, RIGHT_PROD, SRV_LIVE};
use vchan::{Access, Perm, Platform, SharedMem, Vchan, VchanError, Wait};
use vchan_rt::{XenPlatform, XenVchan, XenWait};
use vchancheck::{
    channel_path, done_path, hostile_path, parse_decimal, vchan_dir, Role, AFTER_OK, CHANNELS,
    CLOSED_OK, CONTROL, DONE_VALUE, HOSTILE_SEEN, HOSTILE_SKEW, HOSTILE_WROTE, MSG_CLOSED,
    MSG_UNMAPPED, PING_LEN,
};

use super::{bulk_all, close_all, fail, not_yet, orders, ping_client, wait_store, Context, Fail};

pub fn run(mut plat: XenPlatform, server: u16) -> Result<(), Fail> {
    let client = plat.domid();
    let mut w = plat.waiter();
    let dir = vchan_dir(server, client);
    plat.store()
        .watch(&dir, "vchan")
        .ctx("watching the channels")?;

    // Connect to each channel once its keys are there (and readable).
    let mut slots: Vec<Option<XenVchan>> = CHANNELS.iter().map(|_| None).collect();
    println!("vchancheck: client: watching {dir}");
    while slots.iter().any(Option::is_none) {
        for (slot, c) in slots.iter_mut().zip(&CHANNELS) {
            if slot.is_some() {
                continue;
            }
            let path = channel_path(server, client, c.label);
            match Vchan::client(&mut plat, server, &path) {
                Ok(v) => {
                    let o = orders(&v, Role::Client);
                    if o != c.orders {
                        return fail(alloc::format!(
                            "{path}: ring orders {o:?}, expected {:?}",
                            c.orders
                        ));
                    }
                    println!(
                        "vchancheck: client: connected to {path}: orders {}/{}, port {}",
                        o.0,
                        o.1,
                        v.port()
                    );
                    *slot = Some(v);
                }
                Err(e) if not_yet(&e) => {}
                Err(e) => return Err(e).ctx(&alloc::format!("connecting to {path}")),
            }
        }
        if slots.iter().any(Option::is_none) {
            wait_store(&mut plat)?;
        }
    }
    let mut chans: Vec<XenVchan> = slots.into_iter().flatten().collect();

    bulk_all(&mut chans, &mut w, Role::Client)?;

    let control = CHANNELS
        .iter()
        .position(|c| c.label == CONTROL)
        .ok_or(Fail("no control channel".into()))?;
    ping_client(&mut chans[control], &mut w)?;

    hostile(&mut plat, &mut w, server, &hostile_path(server, client))?;

    // Tell the server over the control channel; its answer proves it runs.
    let ctl = &mut chans[control];
    ctl.send_blocking(&mut w, &MSG_UNMAPPED)
        .ctx("control channel after the corruption")?;
    let mut msg = [0u8; PING_LEN];
    ctl.recv_blocking(&mut w, &mut msg)
        .ctx("control channel after the corruption")?;
    if msg != MSG_CLOSED {
        return fail("control channel: unexpected answer after the corruption");
    }
    println!("{AFTER_OK}");

    close_all(&mut plat, chans)?;
    if plat.grants().mapped() != 0 {
        return fail(alloc::format!(
            "{} grants still mapped after closing",
            plat.grants().mapped()
        ));
    }
    println!("{CLOSED_OK}");
    let dpath = done_path(client);
    plat.store_write(&dpath, DONE_VALUE)
        .ctx("writing the done node")?;
    let perms = [
        Perm {
            domid: client,
            access: Access::None,
        },
        Perm {
            domid: server,
            access: Access::Read,
        },
    ];
    plat.store_set_perms(&dpath, &perms)
        .ctx("letting the server read the done node")?;
    Ok(())
}

/// Plays a client that breaks the protocol: connects to the channel at
/// `path` by hand, writes ring indices no ring can hold, notifies, waits for
/// the server to shut the channel down, then unmaps and closes its port.
fn hostile(plat: &mut XenPlatform, w: &mut XenWait, server: u16, path: &str) -> Result<(), Fail> {
    let key = |plat: &mut XenPlatform, k: &str| -> Result<Option<u32>, Fail> {
        match plat.store_read(&alloc::format!("{path}/{k}")) {
            Ok(v) => parse_decimal(&v)
                .map(Some)
                .ok_or_else(|| Fail(alloc::format!("{path}/{k} holds {v:?}"))),
            Err(e) if not_yet(&VchanError::Platform(e)) => Ok(None),
            Err(e) => Err(e).ctx(&alloc::format!("reading {path}/{k}")),
        }
    };
    let (gref, remote) = loop {
        if let Some(gref) = key(plat, "ring-ref")? {
            if let Some(port) = key(plat, "event-channel")? {
                break (gref, port);
            }
        }
        wait_store(plat)?;
    };
    let port = plat
        .bind_interdomain(server, remote)
        .ctx("hostile: binding the port")?;
    let page = plat
        .map_grant(server, gref, false)
        .ctx("hostile: mapping the shared page")?;
    // Connected, as a client announces itself; then indices no ring holds.
    page.store_u8(CLI_LIVE, 1);
    let cons = page.load_u32(LEFT_CONS);
    page.store_u32(LEFT_PROD, cons.wrapping_add(HOSTILE_SKEW));
    let prod = page.load_u32(RIGHT_PROD);
    page.store_u32(RIGHT_CONS, prod.wrapping_add(HOSTILE_SKEW));
    plat.xen().send(port).ctx("hostile: notifying")?;
    println!("{HOSTILE_WROTE}");
    while page.load_u8(SRV_LIVE) != 0 {
        w.wait(port).ctx("hostile: waiting for the server")?;
    }
    println!("{HOSTILE_SEEN}");
    plat.unmap_grant(page).ctx("hostile: unmapping")?;
    plat.close_port(port).ctx("hostile: closing the port")?;
    Ok(())
}
