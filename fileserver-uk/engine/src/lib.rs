//! The engine of cloister's file server (fileserver-uk): files on a FAT
//! volume, served over a small binary request protocol. The VMM fetches
//! guest images and templates through it.
//!
//! [`FileServer`] mounts a FAT12/16/32 volume (long names included) on any
//! [`block_device::BlockDevice`] with the `fatfs` engine, and answers one
//! request frame with one response frame ([`FileServer::handle`]); the
//! typed methods ([`FileServer::list`], [`FileServer::read`], …) do the
//! same without the framing.
//!
//! # Safety properties
//!
//! * Paths never leave the volume: `..`, `.`, empty components, NUL and
//!   control characters, FAT-forbidden characters and over-long names or
//!   paths are `InvalidPath` before the file system sees them
//!   ([`path::split`]).
//! * Reads and writes carry at most [`proto::MAX_DATA`] (64 KiB); more is
//!   `TooLarge`.
//! * A corrupt volume gives errors, never a hang or another file's bytes:
//!   every request has an I/O budget ([`Config::io_budget`]) that bounds any
//!   loop over a cyclic cluster chain; directory scans stop at 65536
//!   entries; a file's chain is checked for cycles and for covering its size
//!   before it is read or written. A boot sector that is not FAT fails the
//!   mount.
//!
//! # Protocol
//!
//! All integers are little-endian. A frame is a 12-byte header and a body:
//!
//! | offset | size | request            | response                     |
//! |--------|------|--------------------|------------------------------|
//! | 0      | 4    | body length        | body length                  |
//! | 4      | 4    | request id         | the request's id             |
//! | 8      | 1    | operation          | status: 0 = OK, else [`FsError`] |
//! | 9      | 3    | zero               | zero                         |
//!
//! A request body is at most [`proto::MAX_REQUEST_BODY`] bytes (a transport
//! can check a header with [`proto::request_frame_len`]); an error response
//! has an empty body. A *path* is a `u16` byte length and that many bytes of
//! UTF-8, `/`-separated, relative to the volume root (one leading `/`
//! allowed; empty or `/` is the root), at most 1024 bytes.
//!
//! | op | name     | request body                         | response body |
//! |----|----------|--------------------------------------|---------------|
//! | 1  | LIST     | path, `u32` start index              | `u32` count, `u8` more, count × (`u8` kind, `u64` size, name as a path) |
//! | 2  | STAT     | path                                 | `u8` kind, `u64` size, `u16` year, `u8` month, day, hour, minute, second |
//! | 3  | READ     | path, `u64` offset, `u32` length     | the bytes (fewer only at end of file) |
//! | 4  | WRITE    | path, `u64` offset, data (rest)      | `u64` new size |
//! | 5  | CREATE   | path, `u8` kind                      | empty |
//! | 6  | DELETE   | path                                 | empty |
//! | 7  | TRUNCATE | path, `u64` new size (≤ current)     | empty |
//! | 8  | STATFS   | (empty)                              | `u32` cluster size, `u32` clusters, `u32` free, `u8` FAT bits |
//!
//! Kind is 1 for a file, 2 for a directory. `LIST` returns as many entries
//! as fit in 64 KiB and sets *more* when the client should ask again from
//! `start + count`; `.` and `..` are never listed. `WRITE` needs an existing
//! file and an offset no greater than its size. Names match
//! case-insensitively, by long or short name, as FAT does.
//!
//! Status codes: 1 NotFound, 2 AlreadyExists, 3 NotADirectory,
//! 4 IsADirectory, 5 NotEmpty, 6 InvalidPath, 7 TooLarge, 8 NoSpace,
//! 9 Corrupt, 10 Io, 11 Malformed, 12 Unsupported, 13 ReadOnly,
//! 14 InvalidArgument.
//!
//! # The `fatfs` crate
//!
//! The published `fatfs` 0.3.6 supports `no_std` only through `core_io`,
//! which needs a particular nightly compiler; the upstream 0.4 line, with its
//! own `no_std` I/O traits, is unreleased. This crate therefore uses
//! `lamfat` 0.4.3, a republish of that upstream line (logic unchanged),
//! under the name `fatfs`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

extern crate alloc;

pub mod io;
pub mod path;
pub mod proto;
mod server;

#[cfg(test)]
mod tests;

pub use proto::{Entry, FsError, FsStat, Kind, Request, Response, Stat};
pub use server::{fnv1a64, format, Config, FileServer, FNV_OFFSET, MAX_DIR_ENTRIES};
