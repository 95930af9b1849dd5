//! Tier 2: the service unikernels (issue 4) booted bare under QEMU TCG, their
//! self-check output asserted: the file server and the block backend with
//! their storage on virtio-blk (a FAT image made with dosfstools/mtools; a raw
//! template, a copy-on-write overlay and a private volume), the store on its
//! scripted session (it needs no storage).

mod blkback;
mod fileserver;
mod store;

use std::path::{Path, PathBuf};

/// A directory of its own under the target's temporary directory, removed
/// when dropped (also when the test fails).
struct Scratch(PathBuf);

impl Scratch {
    /// `<CARGO_TARGET_TMPDIR>/<name>-<process id>`, empty.
    fn new(name: &str) -> Scratch {
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `len` bytes of xorshift64* output seeded by `seed` (`hello`'s pattern).
fn pseudorandom(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    hello::fill_pattern(&mut bytes, seed);
    bytes
}
