//! The host-testable parts of the `blkback` unikernel: its command line, how
//! it tells its virtio-blk devices apart, and the pattern it writes to the
//! private volume.
//!
//! The command line is `key=value` words, each optional: `seed=` (the
//! workload's seed, decimal or `0x` hex, default 1), `ops=` (writes in the
//! workload, each followed by a checked read; at most [`MAX_OPS`], default
//! [`DEFAULT_OPS`]) and `chunk=` (the overlay's chunk size in bytes, a power
//! of two from 512 B to 1 MiB, default [`DEFAULT_CHUNK`]). Any other word is
//! an error, so that a mistyped key does not silently run the defaults.
//!
//! Devices are told apart by their virtio-blk serial (the `GET_ID` request;
//! QEMU's `-device virtio-blk-pci,serial=...`), never by PCI slot order:
//! [`Role::from_serial`].

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::arithmetic_side_effects
    )
)]

use blkback_engine::{MAX_CHUNK_SIZE, MIN_CHUNK_SIZE};
use core::fmt;

/// Workload writes when the command line names none.
pub const DEFAULT_OPS: u64 = 3000;
/// Most workload writes the command line may ask for.
pub const MAX_OPS: u64 = 1_000_000;
/// Overlay chunk size when the command line names none: 4 KiB, so that the
/// workload's 1–16-sector writes both cover whole chunks and land inside
/// or across chunks.
pub const DEFAULT_CHUNK: usize = 4096;

/// What the self-check runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Seed of the random workload and of the private volume's pattern.
    pub seed: u64,
    /// Workload writes.
    pub ops: u64,
    /// Overlay chunk size in bytes.
    pub chunk: usize,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            seed: 1,
            ops: DEFAULT_OPS,
            chunk: DEFAULT_CHUNK,
        }
    }
}

/// A command line `blkback` cannot run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettingsError<'a> {
    /// A word that is not `seed=`, `ops=` or `chunk=`.
    UnknownWord(&'a str),
    /// A value that is not a number (or does not fit).
    BadNumber {
        /// The key.
        key: &'a str,
        /// The value given.
        value: &'a str,
    },
    /// `ops=` above [`MAX_OPS`].
    TooManyOps(u64),
    /// `chunk=` not a power of two in 512 B..=1 MiB.
    BadChunk(u64),
}

impl fmt::Display for SettingsError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SettingsError::UnknownWord(w) => {
                write!(
                    f,
                    "unknown command-line word `{w}` (known: seed= ops= chunk=)"
                )
            }
            SettingsError::BadNumber { key, value } => {
                write!(f, "`{key}={value}`: not a number (decimal or 0x hex)")
            }
            SettingsError::TooManyOps(n) => write!(f, "ops={n}: at most {MAX_OPS}"),
            SettingsError::BadChunk(n) => write!(
                f,
                "chunk={n}: not a power of two between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE}"
            ),
        }
    }
}

/// A `u64` in decimal or `0x` hex.
fn number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

impl Settings {
    /// Parses the command line (see the crate documentation).
    pub fn parse(cmdline: &str) -> Result<Settings, SettingsError<'_>> {
        let mut s = Settings::default();
        for word in cmdline.split_ascii_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                return Err(SettingsError::UnknownWord(word));
            };
            let n = number(value).ok_or(SettingsError::BadNumber { key, value });
            match key {
                "seed" => s.seed = n?,
                "ops" => {
                    let n = n?;
                    if n > MAX_OPS {
                        return Err(SettingsError::TooManyOps(n));
                    }
                    s.ops = n;
                }
                "chunk" => {
                    let n = n?;
                    s.chunk = usize::try_from(n)
                        .ok()
                        .filter(|c| {
                            c.is_power_of_two() && (MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(c)
                        })
                        .ok_or(SettingsError::BadChunk(n))?;
                }
                _ => return Err(SettingsError::UnknownWord(word)),
            }
        }
        Ok(s)
    }
}

/// What a virtio-blk device is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// The read-only template every VM's root disk starts from.
    Template,
    /// Where one VM's copy-on-write chunks go.
    Overlay,
    /// The VM's private writable volume (optional).
    Private,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::Template, Role::Overlay, Role::Private];

    /// The serial a device of this role carries.
    pub const fn serial(self) -> &'static str {
        match self {
            Role::Template => "blkback-template",
            Role::Overlay => "blkback-overlay",
            Role::Private => "blkback-private",
        }
    }

    /// A short name for messages.
    pub const fn name(self) -> &'static str {
        match self {
            Role::Template => "template",
            Role::Overlay => "overlay",
            Role::Private => "private",
        }
    }

    /// The role whose serial is exactly `serial`, if any.
    pub fn from_serial(serial: &[u8]) -> Option<Role> {
        Role::ALL
            .into_iter()
            .find(|r| r.serial().as_bytes() == serial)
    }
}

/// Fills `buf` with the pattern `blkback` writes to the private volume at
/// sector `lba`: xorshift64 output seeded by `seed` and `lba`, so each
/// seed and position gives different bytes.
pub fn fill_pattern(seed: u64, lba: u64, buf: &mut [u8]) {
    let mut x = (seed ^ lba.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        for (b, v) in chunk.iter_mut().zip(x.to_le_bytes()) {
            *b = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_values() {
        assert_eq!(Settings::parse(""), Ok(Settings::default()));
        assert_eq!(
            Settings::parse(" seed=0x2a ops=10  chunk=65536 "),
            Ok(Settings {
                seed: 42,
                ops: 10,
                chunk: 65536
            })
        );
        assert_eq!(Settings::parse("seed=7").map(|s| s.seed), Ok(7));
    }

    #[test]
    fn rejects_what_it_cannot_run() {
        assert_eq!(
            Settings::parse("seed=1 verbose"),
            Err(SettingsError::UnknownWord("verbose"))
        );
        assert_eq!(
            Settings::parse("sede=1"),
            Err(SettingsError::UnknownWord("sede=1"))
        );
        assert_eq!(
            Settings::parse("ops=lots"),
            Err(SettingsError::BadNumber {
                key: "ops",
                value: "lots"
            })
        );
        assert_eq!(
            Settings::parse("seed=0x1ffffffffffffffff"),
            Err(SettingsError::BadNumber {
                key: "seed",
                value: "0x1ffffffffffffffff"
            })
        );
        assert_eq!(
            Settings::parse("ops=1000001"),
            Err(SettingsError::TooManyOps(1_000_001))
        );
        for bad in ["chunk=4000", "chunk=256", "chunk=2097152", "chunk=0"] {
            assert!(
                matches!(Settings::parse(bad), Err(SettingsError::BadChunk(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn roles_by_exact_serial() {
        for r in Role::ALL {
            assert_eq!(Role::from_serial(r.serial().as_bytes()), Some(r));
            assert!(r.serial().len() <= 20);
        }
        assert_eq!(Role::from_serial(b"blkback-templat"), None);
        assert_eq!(Role::from_serial(b"blkback-template2"), None);
        assert_eq!(Role::from_serial(b""), None);
    }

    #[test]
    fn pattern_depends_on_seed_and_sector() {
        let fill = |seed, lba| {
            let mut b = [0u8; 512];
            fill_pattern(seed, lba, &mut b);
            b
        };
        assert_eq!(fill(1, 5), fill(1, 5));
        assert_ne!(fill(1, 5), fill(2, 5));
        assert_ne!(fill(1, 5), fill(1, 6));
        assert!(fill(0, 0).iter().any(|&b| b != 0));
    }
}
