//! Xen's error numbers (hypercall results) and grant-operation statuses.

use core::fmt;

/// A failed hypercall: Xen's errno (`xen/include/public/errno.h`, the same
/// numbers as Linux x86), from a negative return value in RAX.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

/// Xen's errno names, by number.
const ERRNO_NAMES: &[(i32, &str)] = &[
    (1, "EPERM"),
    (2, "ENOENT"),
    (3, "ESRCH"),
    (4, "EINTR"),
    (5, "EIO"),
    (6, "ENXIO"),
    (7, "E2BIG"),
    (8, "ENOEXEC"),
    (9, "EBADF"),
    (10, "ECHILD"),
    (11, "EAGAIN"),
    (12, "ENOMEM"),
    (13, "EACCES"),
    (14, "EFAULT"),
    (16, "EBUSY"),
    (17, "EEXIST"),
    (18, "EXDEV"),
    (19, "ENODEV"),
    (20, "ENOTDIR"),
    (21, "EISDIR"),
    (22, "EINVAL"),
    (23, "ENFILE"),
    (24, "EMFILE"),
    (28, "ENOSPC"),
    (29, "ESPIPE"),
    (30, "EROFS"),
    (31, "EMLINK"),
    (33, "EDOM"),
    (34, "ERANGE"),
    (35, "EDEADLK"),
    (36, "ENAMETOOLONG"),
    (37, "ENOLCK"),
    (38, "ENOSYS"),
    (39, "ENOTEMPTY"),
    (61, "ENODATA"),
    (62, "ETIME"),
    (74, "EBADMSG"),
    (75, "EOVERFLOW"),
    (84, "EILSEQ"),
    (85, "ERESTART"),
    (88, "ENOTSOCK"),
    (90, "EMSGSIZE"),
    (95, "EOPNOTSUPP"),
    (98, "EADDRINUSE"),
    (99, "EADDRNOTAVAIL"),
    (105, "ENOBUFS"),
    (106, "EISCONN"),
    (107, "ENOTCONN"),
    (110, "ETIMEDOUT"),
    (111, "ECONNREFUSED"),
];

impl Errno {
    /// `EPERM`.
    pub const EPERM: Errno = Errno(1);
    /// `ENOENT`.
    pub const ENOENT: Errno = Errno(2);
    /// `ESRCH`.
    pub const ESRCH: Errno = Errno(3);
    /// `ENOMEM`.
    pub const ENOMEM: Errno = Errno(12);
    /// `EACCES`.
    pub const EACCES: Errno = Errno(13);
    /// `EFAULT`.
    pub const EFAULT: Errno = Errno(14);
    /// `EBUSY`.
    pub const EBUSY: Errno = Errno(16);
    /// `EEXIST`.
    pub const EEXIST: Errno = Errno(17);
    /// `EINVAL`.
    pub const EINVAL: Errno = Errno(22);
    /// `ENOSPC`.
    pub const ENOSPC: Errno = Errno(28);
    /// `ENOSYS`.
    pub const ENOSYS: Errno = Errno(38);
    /// `EOPNOTSUPP`.
    pub const EOPNOTSUPP: Errno = Errno(95);
    /// `EIO`.
    pub const EIO: Errno = Errno(5);
    /// `E2BIG`.
    pub const E2BIG: Errno = Errno(7);
    /// `EAGAIN`.
    pub const EAGAIN: Errno = Errno(11);
    /// `ENODEV`.
    pub const ENODEV: Errno = Errno(19);
    /// `ETIMEDOUT`.
    pub const ETIMEDOUT: Errno = Errno(110);

    /// The errno whose name is `name` (`"ENOENT"`), if Xen defines it.
    pub fn from_name(name: &str) -> Option<Errno> {
        ERRNO_NAMES
            .iter()
            .find(|(_, s)| *s == name)
            .map(|(n, _)| Errno(*n))
    }

    /// Splits a hypercall return value: `Ok(rax)` if it is not negative,
    /// else the errno (numbers Xen does not define are kept, saturated to
    /// `i32`, and named `E?`).
    pub fn check(ret: i64) -> Result<u64, Errno> {
        if ret >= 0 {
            Ok(ret as u64)
        } else {
            Err(Errno(i32::try_from(ret.unsigned_abs()).unwrap_or(i32::MAX)))
        }
    }

    /// The positive errno value.
    pub const fn errno(self) -> i32 {
        self.0
    }

    /// Xen's name for it (`EINVAL`), or `E?` for a number Xen does not define.
    pub fn name(self) -> &'static str {
        ERRNO_NAMES
            .iter()
            .find(|(n, _)| *n == self.0)
            .map_or("E?", |(_, s)| s)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (-{})", self.name(), self.0)
    }
}

/// The per-operation status of a grant-table operation (`GNTST_*`,
/// `int16_t`); the hypercall itself returns 0 when it ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GntStatus(pub i16);

/// `GNTST_*` names and meanings, by code.
const GNTST: &[(i16, &str, &str)] = &[
    (0, "GNTST_okay", "okay"),
    (-1, "GNTST_general_error", "undefined error"),
    (-2, "GNTST_bad_domain", "unrecognised domain id"),
    (-3, "GNTST_bad_gntref", "invalid grant reference"),
    (-4, "GNTST_bad_handle", "invalid mapping handle"),
    (-5, "GNTST_bad_virt_addr", "invalid virtual address"),
    (-6, "GNTST_bad_dev_addr", "invalid device address"),
    (-7, "GNTST_no_device_space", "no spare mapping handle"),
    (-8, "GNTST_permission_denied", "permission denied"),
    (-9, "GNTST_bad_page", "bad page"),
    (
        -10,
        "GNTST_bad_copy_arg",
        "copy arguments cross page boundary",
    ),
    (-11, "GNTST_address_too_big", "page address size too large"),
    (-12, "GNTST_eagain", "operation not done; try again"),
    (-13, "GNTST_no_space", "out of space"),
];

impl GntStatus {
    /// `GNTST_okay`.
    pub const OKAY: GntStatus = GntStatus(0);
    /// `GNTST_general_error`.
    pub const GENERAL_ERROR: GntStatus = GntStatus(-1);
    /// `GNTST_bad_domain`.
    pub const BAD_DOMAIN: GntStatus = GntStatus(-2);
    /// `GNTST_bad_gntref`.
    pub const BAD_GNTREF: GntStatus = GntStatus(-3);
    /// `GNTST_bad_handle`.
    pub const BAD_HANDLE: GntStatus = GntStatus(-4);
    /// `GNTST_permission_denied`.
    pub const PERMISSION_DENIED: GntStatus = GntStatus(-8);

    /// The `int16_t` code.
    pub const fn code(self) -> i16 {
        self.0
    }

    /// Xen's name (`GNTST_bad_gntref`), or `GNTST_?` for an unknown code.
    pub fn name(self) -> &'static str {
        GNTST
            .iter()
            .find(|(c, _, _)| *c == self.0)
            .map_or("GNTST_?", |(_, n, _)| n)
    }

    /// The errno Linux's grant drivers report for it: `ESRCH` for a bad
    /// domain, `EPERM` for permission denied, `ENOSPC` when out of handles
    /// or space, `EAGAIN` for try-again, `EINVAL` otherwise.
    pub fn errno(self) -> Errno {
        match self.0 {
            -2 => Errno::ESRCH,
            -8 => Errno::EPERM,
            -7 | -13 => Errno::ENOSPC,
            -12 => Errno::EAGAIN,
            _ => Errno::EINVAL,
        }
    }

    fn meaning(self) -> &'static str {
        GNTST
            .iter()
            .find(|(c, _, _)| *c == self.0)
            .map_or("unknown status", |(_, _, m)| m)
    }
}

impl fmt::Display for GntStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.name(), self.0, self.meaning())
    }
}

#[cfg(test)]
mod tests {
    use super::super::alloc::string::ToString;
    use super::*;

    #[test]
    fn errno_names() {
        assert_eq!(Errno::check(0), Ok(0));
        assert_eq!(Errno::check(0x1234), Ok(0x1234));
        assert_eq!(Errno::check(-13), Err(Errno::EACCES));
        assert_eq!(Errno::EACCES.to_string(), "EACCES (-13)");
        assert_eq!(Errno::check(-22).unwrap_err().name(), "EINVAL");
        assert_eq!(Errno(1).name(), "EPERM");
        assert_eq!(Errno(3).name(), "ESRCH");
        assert_eq!(Errno(95).to_string(), "EOPNOTSUPP (-95)");
        assert_eq!(Errno(15).to_string(), "E? (-15)");
        assert_eq!(Errno::check(i64::MIN), Err(Errno(i32::MAX)));
        assert_eq!(Errno::from_name("ENOENT"), Some(Errno::ENOENT));
        assert_eq!(Errno::from_name("EQUOTA"), None);
        // The VMM's errors all have their Xen names here.
        use xen_abi::XenError as V;
        for e in [
            V::Perm,
            V::NoEnt,
            V::Srch,
            V::NoMem,
            V::Access,
            V::Fault,
            V::Busy,
            V::Exist,
            V::Inval,
            V::NoSpc,
            V::NoSys,
            V::OpNotSupp,
        ] {
            let mine = Errno::check(e.ret()).unwrap_err();
            assert_eq!(mine.name(), e.name());
            assert_eq!(mine.to_string(), e.to_string());
        }
    }

    #[test]
    fn gntst_names() {
        assert_eq!(
            GntStatus(-3).to_string(),
            "GNTST_bad_gntref (-3): invalid grant reference"
        );
        assert_eq!(GntStatus(-99).name(), "GNTST_?");
        use xen_abi::GntStatus as V;
        for (s, name) in [
            (V::GeneralError, "GNTST_general_error"),
            (V::BadDomain, "GNTST_bad_domain"),
            (V::BadGntref, "GNTST_bad_gntref"),
            (V::BadHandle, "GNTST_bad_handle"),
            (V::BadVirtAddr, "GNTST_bad_virt_addr"),
            (V::BadDevAddr, "GNTST_bad_dev_addr"),
            (V::NoDeviceSpace, "GNTST_no_device_space"),
            (V::PermissionDenied, "GNTST_permission_denied"),
            (V::BadPage, "GNTST_bad_page"),
            (V::BadCopyArg, "GNTST_bad_copy_arg"),
        ] {
            assert_eq!(GntStatus(s.code()).name(), name);
        }
    }
}
