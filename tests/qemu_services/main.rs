//! Tier 2: the service unikernels (issue 4) booted bare under QEMU TCG, their
//! self-check output asserted: the file server and the block backend with
//! their storage on virtio-blk (a FAT image made with dosfstools/mtools; a raw
//! template, a copy-on-write overlay and a private volume), the store on its
//! scripted session (it needs no storage).

mod blkback;
mod fileserver;
mod store;
