//! Ending the VM with a status: the `isa-debug-exit` convention.
//!
//! `exit` writes the code with a 32-bit `out` to I/O port [`EXIT_PORT`]. QEMU's
//! `-device isa-debug-exit,iobase=0xf4,iosize=0x04` then exits with status
//! `(code << 1) | 1` (see [`qemu_status`]); cloister's VMM emulates the same port.
//! If nothing ends the VM, the CPU halts forever with interrupts off.
//!
//! Guests should return codes below 128 (QEMU's status is 8 bits). The runtime
//! reserves the top three: [`BAD_BOOT`], [`EXCEPTION`] and [`PANIC`].

/// I/O port of the exit device.
pub const EXIT_PORT: u16 = 0xf4;
/// The guest succeeded (QEMU status 1).
pub const SUCCESS: u8 = 0;
/// Generic guest failure (QEMU status 3).
pub const FAILURE: u8 = 1;
/// The runtime could not use the PVH start info (QEMU status 251).
pub const BAD_BOOT: u8 = 125;
/// An unexpected CPU exception (QEMU status 253).
pub const EXCEPTION: u8 = 126;
/// A Rust panic (QEMU status 255).
pub const PANIC: u8 = 127;

/// Exit status QEMU reports for a guest exit `code` (the low 8 bits of `(code << 1) | 1`).
pub const fn qemu_status(code: u8) -> u8 {
    (code << 1) | 1
}

/// Ends the VM with `code`; never returns.
#[cfg(target_os = "none")]
pub fn exit(code: u8) -> ! {
    use x86_64::instructions::port::Port;
    let mut port: Port<u32> = Port::new(EXIT_PORT);
    // SAFETY: a port write has no effect on memory; 0xf4 is the exit device's
    // port (or unassigned, in which case the VMM ignores or logs the write).
    unsafe { port.write(u32::from(code)) };
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_status_mapping() {
        assert_eq!(qemu_status(SUCCESS), 1);
        assert_eq!(qemu_status(FAILURE), 3);
        assert_eq!(qemu_status(BAD_BOOT), 251);
        assert_eq!(qemu_status(EXCEPTION), 253);
        assert_eq!(qemu_status(PANIC), 255);
    }
}
