//! cloister's interface to the seL4 kernel (x86_64, VT-x, non-MCS).
//!
//! Every number — object types, invocation labels, syscall numbers, structure
//! layouts — comes from [`sys`], generated at build time from the kernel
//! install at `$SEL4_PREFIX`. The invocation wrappers marshal arguments the way
//! the kernel's XML interface description defines them (word arguments into
//! message registers in order, capability arguments into the extra caps).
//!
//! This crate is the seL4 boundary: the syscall stubs are the only `unsafe`
//! code, and each thread talks to the kernel through its own [`IpcBuffer`].
#![no_std]

/// Constants generated from the installed libsel4 headers.
#[allow(missing_docs)]
pub mod sys {
    include!(concat!(env!("OUT_DIR"), "/generated.rs"));
}

mod bootinfo;
mod invocations;
mod syscalls;

pub use bootinfo::{BootInfo, UntypedDesc};
pub use invocations::*;
pub use syscalls::*;

/// A capability address in the caller's CSpace.
pub type CPtr = u64;

/// Number of message registers.
pub const MSG_MAX_LENGTH: usize = sys::MSG_MAX_LENGTH as usize;
/// Number of extra capabilities a message can carry.
pub const MSG_MAX_EXTRA_CAPS: usize = sys::MSG_MAX_EXTRA_CAPS as usize;

/// A thread's IPC buffer, laid out as `seL4_IPCBuffer`.
#[repr(C)]
pub struct IpcBuffer {
    /// Message tag.
    pub tag: u64,
    /// Message registers.
    pub msg: [u64; MSG_MAX_LENGTH],
    /// User data word.
    pub user_data: u64,
    /// Extra capabilities to send, or badges received.
    pub caps_or_badges: [u64; MSG_MAX_EXTRA_CAPS],
    /// Receive CNode.
    pub receive_cnode: u64,
    /// Receive index.
    pub receive_index: u64,
    /// Receive depth.
    pub receive_depth: u64,
}

const _: () = {
    assert!(core::mem::size_of::<IpcBuffer>() == sys::IPC_BUFFER_SIZE as usize);
    assert!(core::mem::offset_of!(IpcBuffer, msg) == sys::IPC_BUFFER_MSG as usize);
    assert!(core::mem::offset_of!(IpcBuffer, caps_or_badges) == sys::IPC_BUFFER_CAPS as usize);
    assert!(
        core::mem::offset_of!(IpcBuffer, receive_cnode) == sys::IPC_BUFFER_RECEIVE_CNODE as usize
    );
};

/// An `seL4_MessageInfo_t`, encoded with the layout probed from libsel4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageInfo(pub u64);

const fn shift_of(one: u64) -> u32 {
    one.trailing_zeros()
}

impl MessageInfo {
    /// Builds a message tag.
    pub const fn new(label: u64, caps_unwrapped: u64, extra_caps: u64, length: u64) -> Self {
        let w = ((label & sys::MSGINFO_LABEL_MAX) << shift_of(sys::MSGINFO_LABEL_ONE))
            | ((caps_unwrapped & 7) << shift_of(sys::MSGINFO_CAPS_UNWRAPPED_ONE))
            | ((extra_caps & 3) << shift_of(sys::MSGINFO_EXTRA_CAPS_ONE))
            | ((length & sys::MSGINFO_LENGTH_MAX) << shift_of(sys::MSGINFO_LENGTH_ONE));
        MessageInfo(w)
    }

    /// The label (the error code of an invocation reply).
    pub const fn label(self) -> u64 {
        (self.0 >> shift_of(sys::MSGINFO_LABEL_ONE)) & sys::MSGINFO_LABEL_MAX
    }

    /// The number of message registers.
    pub const fn length(self) -> u64 {
        (self.0 >> shift_of(sys::MSGINFO_LENGTH_ONE)) & sys::MSGINFO_LENGTH_MAX
    }
}

/// An error returned by a kernel invocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// `seL4_InvalidArgument`.
    InvalidArgument,
    /// `seL4_InvalidCapability`.
    InvalidCapability,
    /// `seL4_IllegalOperation`.
    IllegalOperation,
    /// `seL4_RangeError`.
    RangeError,
    /// `seL4_AlignmentError`.
    AlignmentError,
    /// `seL4_FailedLookup`.
    FailedLookup,
    /// `seL4_TruncatedMessage`.
    TruncatedMessage,
    /// `seL4_DeleteFirst`.
    DeleteFirst,
    /// `seL4_RevokeFirst`.
    RevokeFirst,
    /// `seL4_NotEnoughMemory`.
    NotEnoughMemory,
    /// A code this crate does not know.
    Unknown(u64),
}

impl Error {
    /// Maps an invocation reply label to a result.
    pub fn check(label: u64) -> Result<(), Error> {
        let l = label as i64;
        Err(match l {
            x if x == sys::ERR_NO_ERROR => return Ok(()),
            x if x == sys::ERR_INVALID_ARGUMENT => Error::InvalidArgument,
            x if x == sys::ERR_INVALID_CAPABILITY => Error::InvalidCapability,
            x if x == sys::ERR_ILLEGAL_OPERATION => Error::IllegalOperation,
            x if x == sys::ERR_RANGE_ERROR => Error::RangeError,
            x if x == sys::ERR_ALIGNMENT_ERROR => Error::AlignmentError,
            x if x == sys::ERR_FAILED_LOOKUP => Error::FailedLookup,
            x if x == sys::ERR_TRUNCATED_MESSAGE => Error::TruncatedMessage,
            x if x == sys::ERR_DELETE_FIRST => Error::DeleteFirst,
            x if x == sys::ERR_REVOKE_FIRST => Error::RevokeFirst,
            x if x == sys::ERR_NOT_ENOUGH_MEMORY => Error::NotEnoughMemory,
            _ => Error::Unknown(label),
        })
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Unknown(code) => write!(f, "seL4 error {code}"),
            other => write!(f, "seL4_{other:?}"),
        }
    }
}
