//! The server: offers the channels, moves data, echoes the ping-pong,
//! survives the hostile client, and closes everything.

use alloc::vec::Vec;

use rt::println;
use vchan::{Access, PeerState, Perm, Platform, Vchan, VchanError, Wait};
use vchan_rt::{XenPlatform, XenVchan};
use vchancheck::{
    channel_path, done_path, hostile_path, ready_path, Ready, Role, AFTER_OK, CHANNELS, CLOSED_OK,
    CONTROL, DONE_VALUE, HOSTILE_CLOSED, HOSTILE_DETECTED, HOSTILE_RING, MSG_CLOSED, MSG_UNMAPPED,
    PING_LEN,
};

use super::{bulk_all, close_all, fail, not_yet, orders, ping_server, wait_store, Context, Fail};

pub fn run(mut plat: XenPlatform, client: u16) -> Result<(), Fail> {
    let server = plat.domid();
    let mut w = plat.waiter();

    // Offer every channel.
    let mut chans: Vec<XenVchan> = Vec::new();
    for c in &CHANNELS {
        let path = channel_path(server, client, c.label);
        let v = Vchan::server(&mut plat, client, &path, c.read_min, c.write_min)
            .ctx(&alloc::format!("offering {path}"))?;
        let o = orders(&v, Role::Server);
        if o != c.orders {
            return fail(alloc::format!(
                "{path}: ring orders {o:?}, expected {:?}",
                c.orders
            ));
        }
        println!(
            "vchancheck: server: offered {path}: orders {}/{}, port {}",
            o.0,
            o.1,
            v.port()
        );
        chans.push(v);
    }
    let refs: Vec<u32> = plat.outstanding_grants().collect();
    let ports: Vec<u32> = chans.iter().map(|v| v.port()).collect();

    // Wait for the client on every channel.
    loop {
        let mut pending = None;
        for v in &mut chans {
            match v.peer_state().ctx("waiting for the client")? {
                PeerState::Connected => {}
                PeerState::Unconnected => pending = Some(v.port()),
                PeerState::Closed => return fail("the client closed a channel before using it"),
            }
        }
        match pending {
            Some(port) => w.wait(port).ctx("waiting for the client")?,
            None => break,
        }
    }
    println!(
        "vchancheck: server: the client connected to all {} channels",
        chans.len()
    );

    // Tell everyone (the intruder) what there is to try.
    let ready = Ready {
        client,
        refs,
        ports,
    };
    let rpath = ready_path(server);
    let value = alloc::format!("{ready}");
    plat.store_write(&rpath, &value)
        .ctx("writing the ready node")?;
    let everyone_reads = [Perm {
        domid: server,
        access: Access::Read,
    }];
    plat.store_set_perms(&rpath, &everyone_reads)
        .ctx("opening the ready node")?;
    println!("vchancheck: server: published {rpath}: {value}");

    // Watch for the client's final word early: no event is missed.
    let dpath = done_path(client);
    plat.store()
        .watch(&dpath, "done")
        .ctx("watching the done node")?;

    // Bulk, channel by channel.
    bulk_all(&mut chans, &mut w, Role::Server)?;

    let control = CHANNELS
        .iter()
        .position(|c| c.label == CONTROL)
        .ok_or(Fail("no control channel".into()))?;
    ping_server(&mut chans[control], &mut w)?;

    // The hostile client.
    let hpath = hostile_path(server, client);
    let mut hostile = Vchan::server(&mut plat, client, &hpath, HOSTILE_RING, HOSTILE_RING)
        .ctx(&alloc::format!("offering {hpath}"))?;
    println!(
        "vchancheck: server: offered {hpath}, port {}",
        hostile.port()
    );
    let mut buf = [0u8; 64];
    loop {
        match hostile.read(&mut buf) {
            Err(VchanError::Corrupt) => break,
            Err(VchanError::WouldBlock) => w.wait(hostile.port()).ctx("hostile channel")?,
            Ok(n) => {
                return fail(alloc::format!(
                    "hostile channel: read {n} bytes, no corruption"
                ))
            }
            Err(e) => return Err(e).ctx("hostile channel: unexpected"),
        }
    }
    if hostile.is_open() || hostile.write(b"x") != Err(VchanError::Corrupt) {
        return fail("hostile channel: still usable after corruption");
    }
    println!("{HOSTILE_DETECTED}");

    // Once the client has unmapped it, release it for good; then answer.
    let ctl = &mut chans[control];
    let mut msg = [0u8; PING_LEN];
    ctl.recv_blocking(&mut w, &mut msg)
        .ctx("control channel after the corruption")?;
    if msg != MSG_UNMAPPED {
        return fail("control channel: unexpected message after the corruption");
    }
    hostile
        .close(&mut plat)
        .ctx("closing the hostile channel")?;
    println!("{HOSTILE_CLOSED}");
    let ctl = &mut chans[control];
    ctl.send_blocking(&mut w, &MSG_CLOSED)
        .ctx("control channel after the corruption")?;
    println!("{AFTER_OK}");

    // Wait for the client to have closed (and unmapped) everything.
    loop {
        match plat.store_read(&dpath) {
            Ok(v) if v == DONE_VALUE => break,
            Ok(v) => return fail(alloc::format!("{dpath} holds {v:?}")),
            Err(e) if not_yet(&VchanError::Platform(e)) => wait_store(&mut plat)?,
            Err(e) => return Err(e).ctx(&alloc::format!("reading {dpath}")),
        }
    }
    println!("vchancheck: server: the client has closed its ends");
    let n = chans.len();
    close_all(&mut plat, chans)?;
    let left: Vec<u32> = plat.outstanding_grants().collect();
    if !left.is_empty() {
        return fail(alloc::format!("grants {left:?} still outstanding"));
    }
    if n != CHANNELS.len() {
        return fail("lost a channel");
    }
    println!("{CLOSED_OK}");
    plat.store_rm(&rpath).ctx("removing the ready node")?;
    Ok(())
}
