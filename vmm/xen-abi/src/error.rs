//! Errors: hypercall return values (Xen's errno) and grant-op statuses.

use core::fmt;

/// A hypercall failure; [`XenError::ret`] is what the guest sees in RAX.
///
/// The numbers are those of Xen's `errno.h` (the same as Linux x86's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XenError {
    /// `EPERM` (1): the caller may not do this (another domain, a read-only param).
    Perm,
    /// `ENOENT` (2): no such vCPU.
    NoEnt,
    /// `ESRCH` (3): no such domain.
    Srch,
    /// `ENOMEM` (12): the VMM could not allocate what the op needed.
    NoMem,
    /// `EACCES` (13): access refused.
    Access,
    /// `EFAULT` (14): an argument pointer could not be read or written.
    Fault,
    /// `EBUSY` (16): the resource is in use.
    Busy,
    /// `EEXIST` (17): already bound.
    Exist,
    /// `EINVAL` (22): a malformed argument (port, size, count, index, state).
    Inval,
    /// `ENOSPC` (28): no free port.
    NoSpc,
    /// `ENOSYS` (38): unknown or unimplemented hypercall or command.
    NoSys,
    /// `EOPNOTSUPP` (95): a known variant this implementation doesn't offer.
    OpNotSupp,
}

impl XenError {
    /// The positive errno value.
    pub const fn errno(self) -> i32 {
        match self {
            XenError::Perm => 1,
            XenError::NoEnt => 2,
            XenError::Srch => 3,
            XenError::NoMem => 12,
            XenError::Access => 13,
            XenError::Fault => 14,
            XenError::Busy => 16,
            XenError::Exist => 17,
            XenError::Inval => 22,
            XenError::NoSpc => 28,
            XenError::NoSys => 38,
            XenError::OpNotSupp => 95,
        }
    }

    /// The hypercall return value: `-errno`.
    pub const fn ret(self) -> i64 {
        // errno is at most 95, so the negation cannot overflow.
        0i64.wrapping_sub(self.errno() as i64)
    }

    /// Xen's name for the error.
    pub const fn name(self) -> &'static str {
        match self {
            XenError::Perm => "EPERM",
            XenError::NoEnt => "ENOENT",
            XenError::Srch => "ESRCH",
            XenError::NoMem => "ENOMEM",
            XenError::Access => "EACCES",
            XenError::Fault => "EFAULT",
            XenError::Busy => "EBUSY",
            XenError::Exist => "EEXIST",
            XenError::Inval => "EINVAL",
            XenError::NoSpc => "ENOSPC",
            XenError::NoSys => "ENOSYS",
            XenError::OpNotSupp => "EOPNOTSUPP",
        }
    }
}

impl fmt::Display for XenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (-{})", self.name(), self.errno())
    }
}

/// The per-op status of a grant-table operation (`GNTST_*`), written into
/// the op's `status` field; the hypercall itself then returns 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GntStatus {
    /// `GNTST_general_error` (-1): the entry doesn't permit this (wrong type,
    /// wrong domid, read-only, unstable), or the VMM refused the mapping.
    GeneralError,
    /// `GNTST_bad_domain` (-2): no such domain.
    BadDomain,
    /// `GNTST_bad_gntref` (-3): reference outside the granter's table, or no
    /// map type requested.
    BadGntref,
    /// `GNTST_bad_handle` (-4): no such mapping handle.
    BadHandle,
    /// `GNTST_bad_virt_addr` (-5): an output list could not be written.
    BadVirtAddr,
    /// `GNTST_bad_dev_addr` (-6): a device address this VMM never handed out.
    BadDevAddr,
    /// `GNTST_no_device_space` (-7): the caller's handle table is full.
    NoDeviceSpace,
    /// `GNTST_permission_denied` (-8): the caller may not name that domain here.
    PermissionDenied,
    /// `GNTST_bad_page` (-9): the frame is not the domain's RAM.
    BadPage,
    /// `GNTST_bad_copy_arg` (-10): offset + length crosses the page.
    BadCopyArg,
}

impl GntStatus {
    /// The `int16_t` status code.
    pub const fn code(self) -> i16 {
        match self {
            GntStatus::GeneralError => -1,
            GntStatus::BadDomain => -2,
            GntStatus::BadGntref => -3,
            GntStatus::BadHandle => -4,
            GntStatus::BadVirtAddr => -5,
            GntStatus::BadDevAddr => -6,
            GntStatus::NoDeviceSpace => -7,
            GntStatus::PermissionDenied => -8,
            GntStatus::BadPage => -9,
            GntStatus::BadCopyArg => -10,
        }
    }
}

impl fmt::Display for GntStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            GntStatus::GeneralError => "undefined error",
            GntStatus::BadDomain => "unrecognised domain id",
            GntStatus::BadGntref => "invalid grant reference",
            GntStatus::BadHandle => "invalid mapping handle",
            GntStatus::BadVirtAddr => "invalid virtual address",
            GntStatus::BadDevAddr => "invalid device address",
            GntStatus::NoDeviceSpace => "no spare mapping handle",
            GntStatus::PermissionDenied => "permission denied",
            GntStatus::BadPage => "bad page",
            GntStatus::BadCopyArg => "copy arguments cross page boundary",
        };
        write!(f, "{s} ({})", self.code())
    }
}

/// `GNTST_okay`.
pub const GNTST_OKAY: i16 = 0;
