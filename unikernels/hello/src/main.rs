//! `hello`: greets, prints its command line, checks a 1 MiB heap pattern, exits 0.
//!
//! Output under QEMU or cloister (after the runtime's `rt:` line):
//! ```text
//! hello: cloister unikernel says hello
//! hello: cmdline: <command line>
//! hello: checksum fnv1a64=0x<EXPECTED_CHECKSUM> bytes=1048576
//! hello: pattern ok
//! ```
//! Exit code 0, or 1 if the checksum is wrong. Built for the host, it only says
//! what it is.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod unikernel {
    use alloc::vec;
    use rt::println;

    rt::entry!(main);

    fn main() -> u8 {
        println!("hello: cloister unikernel says hello");
        println!("hello: cmdline: {}", rt::cmdline());
        let mut buf = vec![0u8; hello::PATTERN_LEN];
        hello::fill_pattern(&mut buf, hello::PATTERN_SEED);
        // Make the compiler write the buffer out and read it back from memory.
        let buf = core::hint::black_box(buf);
        let sum = hello::fnv1a64(&buf);
        println!("{}", hello::checksum_line(sum, buf.len()));
        if sum == hello::EXPECTED_CHECKSUM {
            println!("hello: pattern ok");
            rt::exit::SUCCESS
        } else {
            println!(
                "hello: pattern MISMATCH, expected {:#018x}",
                hello::EXPECTED_CHECKSUM
            );
            rt::exit::FAILURE
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    println!(
        "hello is a cloister unikernel: build it with `--target x86_64-unknown-none` and boot the ELF \
         with QEMU (-kernel) or cloister"
    );
}
