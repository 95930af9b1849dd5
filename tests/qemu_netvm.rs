//! Tier 2: the NetVM unikernel on QEMU's e1000 test network.
//!
//! QEMU (TCG) boots `netvm` bare with an e1000 on a user-mode (slirp) network
//! and a host port forwarded to the guest's echo port. The guest must get a
//! DHCP lease (10.0.2.15, gateway 10.0.2.2), ping the gateway and serve TCP
//! echo; the test pushes 4 MiB of random bytes through the echo service from
//! the host and checks every byte came back, then the guest exits 0 and
//! reports its RAM footprint.
//!
//! Network traffic stays on this machine: the host side only connects to
//! 127.0.0.1, and the guest only talks to slirp's own addresses (DHCP server,
//! gateway) and answers the forwarded connection.
//!
//! RAM: [`RAM_MIB`] = 2 MiB is the smallest QEMU RAM that works (1 MiB does
//! not boot: the firmware and the image at 1 MiB do not fit) — netvm uses
//! about 712 KiB of it (image 296 KiB with a 64 KiB stack, heap high-water
//! 416 KiB including 264 KiB of DMA rings). The second test runs the other
//! paths: the `pc` machine (configuration mechanism #1 instead of ECAM) and
//! polling instead of interrupts.

use cloister::qemu::{self, QemuConfig, Running};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

/// The netvm ELF, built by build.rs.
const NETVM_ELF: &str = env!("CLOISTER_GUEST_NETVM");
/// Guest RAM: the smallest that works.
const RAM_MIB: u32 = 2;
/// The guest's echo port.
const ECHO_PORT: u16 = 7;
/// How long boot, DHCP and the ping may take under TCG.
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the echo transfer may take.
const ECHO_TIMEOUT: Duration = Duration::from_secs(180);

/// Lines the guest prints (prefixes).
const LEASE: &str = "netvm: eth0: dhcp: lease 10.0.2.15/24 router 10.0.2.2";
const PING_REPLY: &str = "netvm: eth0: ping: reply from 10.0.2.2 seq 1";
const LISTENING: &str = "netvm: eth0: echo: listening on tcp port 7";
const FOOTPRINT: &str = "netvm: footprint: ";
const DONE: &str = "netvm: done after 1 echo connections";

fn boot(machine: &str, cmdline: &str) -> (Running, u16) {
    let port = qemu::free_local_port().expect("a free local port");
    let config = QemuConfig {
        machine: machine.into(),
        mem_mib: RAM_MIB,
        extra: vec![
            "-netdev".into(),
            format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:{ECHO_PORT}"),
            "-device".into(),
            "e1000,netdev=n0".into(),
        ],
    };
    (
        qemu::spawn_or_panic(Path::new(NETVM_ELF), cmdline, &config),
        port,
    )
}

/// The first console line starting with `prefix`, already seen or within
/// `timeout` (the guest's lines may come in any order).
fn expect_line(run: &mut Running, prefix: &str, timeout: Duration) -> String {
    if let Some(l) = run.console().iter().find(|l| l.starts_with(prefix)) {
        return l.clone();
    }
    match run.wait_for(timeout, |l| l.starts_with(prefix)) {
        Some(l) => l,
        None => panic!(
            "no line starting `{prefix}` within {timeout:?}\n--- console ---\n{}",
            run.console().join("\n")
        ),
    }
}

/// Sends `data` through the echo service at 127.0.0.1:`port` and returns what
/// came back (writer and reader run concurrently; the write side is shut down
/// at the end so the guest closes).
fn echo(port: u16, data: &[u8]) -> Vec<u8> {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the forwarded port");
    stream
        .set_read_timeout(Some(ECHO_TIMEOUT))
        .expect("timeout");
    stream.set_nodelay(true).expect("nodelay");
    let mut reader = stream.try_clone().expect("clone");
    let want = data.len();
    let reading = std::thread::spawn(move || {
        let mut got = Vec::with_capacity(want);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!("reading the echo after {} bytes: {e}", got.len()),
            }
        }
        got
    });
    let mut writer = stream;
    for chunk in data.chunks(64 * 1024) {
        writer.write_all(chunk).expect("write to the echo service");
    }
    writer.shutdown(Shutdown::Write).expect("shutdown");
    reading.join().expect("reader thread")
}

fn check_echo(run: &mut Running, port: u16, len: usize) -> Duration {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    // xorshift64*: the random bytes, from a seed printed on failure.
    let mut data = vec![0; len];
    hello::fill_pattern(&mut data, seed);
    let start = Instant::now();
    let got = echo(port, &data);
    let took = start.elapsed();
    if got != data {
        let first = got.iter().zip(&data).position(|(a, b)| a != b);
        panic!(
            "echo differs (seed {seed:#x}): sent {} bytes, got {}, first difference at {first:?}\n\
             --- console ---\n{}",
            data.len(),
            got.len(),
            run.console().join("\n")
        );
    }
    took
}

#[test]
fn netvm_serves_the_e1000_network() {
    let start = Instant::now();
    let (mut run, port) = boot("q35", "echo=7 exit-after=1");
    let lease = expect_line(&mut run, LEASE, BOOT_TIMEOUT);
    let ping = expect_line(&mut run, PING_REPLY, BOOT_TIMEOUT);
    expect_line(&mut run, LISTENING, BOOT_TIMEOUT);
    let booted = start.elapsed();
    const LEN: usize = 4 << 20;
    let took = check_echo(&mut run, port, LEN);
    let closed = format!("closed after {LEN} bytes");
    let closed_line = run
        .wait_for(ECHO_TIMEOUT, |l| l.ends_with(&closed))
        .unwrap_or_else(|| panic!("no `{closed}` line\n{}", run.console().join("\n")));
    let result = run.finish(Duration::from_secs(60));
    let context = result.context();
    assert_eq!(
        result.guest_exit_code(),
        Some(0),
        "netvm did not exit 0\n{context}"
    );
    let lines: Vec<&str> = result.lines().collect();
    assert!(lines.contains(&DONE), "no `{DONE}`\n{context}");
    let interrupt = lines
        .iter()
        .find(|l| l.starts_with("netvm: e1000: interrupt "))
        .unwrap_or_else(|| panic!("q35 should give the e1000 an interrupt\n{context}"));
    assert!(
        lines.iter().any(|l| l.starts_with("netvm: pci: ECAM")),
        "{context}"
    );
    let footprint = lines
        .iter()
        .rev()
        .find(|l| l.starts_with(FOOTPRINT))
        .unwrap_or_else(|| panic!("no footprint line\n{context}"));
    eprintln!("qemu_netvm: {lease}");
    eprintln!("qemu_netvm: {ping}");
    eprintln!("qemu_netvm: {interrupt}");
    eprintln!("qemu_netvm: {closed_line}");
    eprintln!("qemu_netvm: {footprint}");
    eprintln!(
        "qemu_netvm: RAM {RAM_MIB} MiB; boot to listening {:.1} s; 4 MiB echoed in {:.2} s; \
         whole test {:.1} s",
        booted.as_secs_f64(),
        took.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
}

#[test]
fn netvm_polls_on_the_pc_machine() {
    let (mut run, port) = boot("pc", "echo=7 exit-after=1 irq=poll pings=2");
    expect_line(&mut run, LEASE, BOOT_TIMEOUT);
    expect_line(
        &mut run,
        "netvm: eth0: ping: reply from 10.0.2.2 seq 2",
        BOOT_TIMEOUT,
    );
    expect_line(&mut run, LISTENING, BOOT_TIMEOUT);
    check_echo(&mut run, port, 1 << 20);
    let result = run.finish(Duration::from_secs(60));
    let context = result.context();
    assert_eq!(
        result.guest_exit_code(),
        Some(0),
        "netvm did not exit 0\n{context}"
    );
    let lines: Vec<&str> = result.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("netvm: pci: config mechanism #1")),
        "{context}"
    );
    assert!(
        lines.contains(&"netvm: e1000: polling (irq=poll)"),
        "{context}"
    );
    assert!(lines.contains(&DONE), "{context}");
}
