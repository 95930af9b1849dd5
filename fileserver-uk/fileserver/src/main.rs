//! `fileserver`: the file server unikernel. Finds its virtio-blk disk on
//! PCI, mounts the FAT volume on it with `fileserver-engine`, and checks
//! itself through the request protocol (frames encoded, handled by the
//! server, decoded: the path a remote client takes). Every line it prints
//! starts with `fileserver: `:
//!
//! ```text
//! fileserver: virtio-blk at 00:02.0: 32768 sectors (16 MiB)
//! fileserver: volume: FAT16, 8167 clusters of 2048 bytes, 6557 free
//! fileserver: dir / entries=5 files=3 dirs=2
//! fileserver: file /A rather long file name with spaces.txt size=43 fnv1a64=0x7d21cabac3a56c1e
//! fileserver: file /README size=33 fnv1a64=0xae52a3c266ccb9e1
//! …                                   (a `dir` line per directory, a `file` line per file)
//! fileserver: walked 6 directories, 8 files, 3276917 bytes
//! fileserver: write: /fileserver self-check/pattern written at boot.bin size=150000 in 3 writes, read back fnv1a64=0x7b5d1b165f557cda: ok
//! fileserver: refused: READ ../x: invalid path
//! …                                   (a `refused` line per bad request)
//! fileserver: past end: READ /fileserver self-check/pattern written at boot.bin at 150000: 0 bytes (end of file)
//! fileserver: delete: /fileserver self-check/pattern written at boot.bin and /fileserver self-check deleted, STAT says: no such file or directory
//! fileserver: unmounted
//! fileserver: footprint: used 936 KiB of 2543 KiB RAM: image 356 KiB (…), heap high-water 580 KiB of 1548 KiB (…)
//! fileserver: ok
//! ```
//!
//! Directories are walked depth-first in directory order; a file's line
//! gives its size and the FNV-1a-64 of its contents, read in 64 KiB
//! `READ`s. The write check creates a directory and a file in it, writes a
//! known pattern, reads it back, checks that path traversal, an oversize
//! read, a write past the end and deleting a non-empty directory get the
//! protocol's errors (a read at or past the end is an empty answer, not an
//! error), and deletes both (see `fileserver::write_check`); leftovers of an
//! interrupted check are removed first. On a read-only disk it is skipped.
//!
//! Any failure (no disk, a volume that does not mount, a corrupt file, an
//! unexpected answer) prints `fileserver: FAILED: <reason>` after the
//! footprint and exits 1. Built for the host, it only says what it is.

#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod unikernel {
    use alloc::format;
    use alloc::rc::Rc;
    use alloc::string::String;
    use core::cell::Cell;

    use fileserver_engine::{Config, FileServer};
    use rt::println;
    use virtio_disk::{DiskError, VirtioDisk};

    rt::entry!(main, stack = 64 * 1024);

    /// Finds and opens the disk; its first failure goes to `first_error`.
    fn open_disk(first_error: Rc<Cell<Option<DiskError>>>) -> Result<VirtioDisk, String> {
        let dev = virtio_disk::open_first().map_err(|e| format!("{e}"))?;
        println!(
            "fileserver: virtio-blk at {}: {} sectors ({} MiB){}",
            dev.bdf,
            dev.sectors,
            dev.sectors / 2048,
            if dev.read_only { ", read-only" } else { "" }
        );
        let mut disk = dev.disk;
        disk.keep_first_error(first_error);
        Ok(disk)
    }

    fn run(first_error: &Rc<Cell<Option<DiskError>>>) -> Result<(), String> {
        let disk = open_disk(first_error.clone())?;
        let config = Config {
            read_only: disk.read_only(),
            ..Config::default()
        };
        let mut server = FileServer::mount(disk, config).map_err(|e| format!("mount: {e}"))?;
        fileserver::self_check(&mut server, &mut |line| println!("{line}")).map_err(|f| f.0)?;
        server.unmount().map_err(|e| format!("unmount: {e}"))?;
        println!("fileserver: unmounted");
        Ok(())
    }

    fn main() -> u8 {
        let first_error = Rc::new(Cell::new(None));
        let result = run(&first_error);
        println!("fileserver: footprint: {}", rt::footprint());
        match result {
            Ok(()) => {
                println!("fileserver: ok");
                rt::exit::SUCCESS
            }
            Err(why) => {
                match first_error.get() {
                    Some(e) => println!("fileserver: FAILED: {why} (disk: {e})"),
                    None => println!("fileserver: FAILED: {why}"),
                }
                rt::exit::FAILURE
            }
        }
    }
}

#[cfg(not(target_os = "none"))]
fn main() {
    println!(
        "fileserver is a cloister unikernel: build it with `--target x86_64-unknown-none` and \
         boot the ELF with QEMU (-kernel) next to a virtio-blk disk holding a FAT volume"
    );
}
