//! Errors.

use core::fmt;

/// A positive errno value from the platform (Xen's numbering: `EACCES` = 13).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    /// No such entry (store path, grant, port).
    pub const ENOENT: Errno = Errno(2);
    /// Out of memory or resources.
    pub const ENOMEM: Errno = Errno(12);
    /// Permission denied (store node, grant).
    pub const EACCES: Errno = Errno(13);
    /// Resource busy (e.g. a grant still mapped by the peer).
    pub const EBUSY: Errno = Errno(16);
    /// Invalid argument.
    pub const EINVAL: Errno = Errno(22);
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "errno {}", self.0)
    }
}

/// What can go wrong on a vchan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VchanError {
    /// Nothing can be done now: no data to read, no room to write, or no
    /// client yet. The peer has been asked to notify when that changes.
    WouldBlock,
    /// The peer has closed the channel (and, for reads, nothing is left).
    PeerClosed,
    /// This end was shut down.
    Shutdown,
    /// The peer broke the protocol (indices out of range, bad live byte);
    /// this end has been shut down.
    Corrupt,
    /// A packet larger than the ring can never be sent or received whole.
    TooLarge,
    /// A bad argument (e.g. a ring size over 1 MiB, a short memory view).
    InvalidArgument,
    /// The server's store keys or shared page are malformed.
    BadHandshake,
    /// The platform failed (grant, event channel or store operation).
    Platform(Errno),
}

impl fmt::Display for VchanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VchanError::WouldBlock => f.write_str("operation would block"),
            VchanError::PeerClosed => f.write_str("peer closed the vchan"),
            VchanError::Shutdown => f.write_str("vchan was shut down"),
            VchanError::Corrupt => f.write_str("peer corrupted the shared ring"),
            VchanError::TooLarge => f.write_str("packet larger than the ring"),
            VchanError::InvalidArgument => f.write_str("invalid argument"),
            VchanError::BadHandshake => f.write_str("malformed vchan handshake"),
            VchanError::Platform(e) => write!(f, "platform error: {e}"),
        }
    }
}

impl core::error::Error for VchanError {}

impl From<Errno> for VchanError {
    fn from(e: Errno) -> Self {
        VchanError::Platform(e)
    }
}
