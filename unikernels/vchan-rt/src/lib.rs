//! vchan over cloister-rt's Xen support: the one place where the
//! platform-abstract [`vchan`] protocol meets the runtime's event channels,
//! grant table and xenstore client (`rt::xen`).
//!
//! * `XenPlatform` implements [`vchan::Platform`]: pages are
//!   `rt::xen::OwnedPage`s (granted with `rt::xen::GrantTable`) or
//!   `rt::xen::MappedPage`s (a peer's grants mapped into the GPA window),
//!   ports come from `rt::xen::Xen`, store keys go through the domain's
//!   `rt::xen::Store`.
//! * `XenMem` implements [`vchan::SharedMem`] over [`rt::xen::Page`]'s
//!   bounds-checked atomics (8 bytes at a time for ring copies).
//! * `XenNotify` kicks a port ([`vchan::Notify`]); `XenWait` halts until
//!   a port fires ([`vchan::Wait`]).
//!
//! Errors keep Xen's numbering: a hypercall's errno, the errno of a store
//! error (`EACCES` for a node the domain may not read), and the errno Linux
//! reports for a grant status ([`rt::xen::GntStatus::errno`]).
//!
//! Only the error and permission conversions exist on other targets (for
//! host tests); the glue itself is built for `x86_64-unknown-none`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

use rt::xen::store::{Access as XsAccess, Perm as XsPerm};

/// The vchan form of a Xen errno (both use Xen's numbers).
pub fn errno(e: rt::xen::Errno) -> vchan::Errno {
    vchan::Errno(e.errno())
}

/// The store's form of a vchan permission entry.
pub fn xs_perm(p: vchan::Perm) -> XsPerm {
    XsPerm {
        domid: p.domid,
        access: match p.access {
            vchan::Access::None => XsAccess::None,
            vchan::Access::Read => XsAccess::Read,
            vchan::Access::Write => XsAccess::Write,
            vchan::Access::Both => XsAccess::Both,
        },
    }
}

#[cfg(target_os = "none")]
mod glue;

#[cfg(target_os = "none")]
pub use glue::{XenMem, XenNotify, XenPlatform, XenVchan, XenWait, STORE_TIMEOUT};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_keep_xens_numbers() {
        assert_eq!(errno(rt::xen::Errno::EACCES), vchan::Errno::EACCES);
        assert_eq!(errno(rt::xen::Errno::ENOENT), vchan::Errno::ENOENT);
        assert_eq!(errno(rt::xen::Errno::EBUSY), vchan::Errno::EBUSY);
        assert_eq!(errno(rt::xen::Errno(95)), vchan::Errno(95));
    }

    #[test]
    fn perms_map_letter_for_letter() {
        let cases = [
            (vchan::Access::None, "n2"),
            (vchan::Access::Read, "r2"),
            (vchan::Access::Write, "w2"),
            (vchan::Access::Both, "b2"),
        ];
        for (access, wire) in cases {
            let p = vchan::Perm { domid: 2, access };
            assert_eq!(xs_perm(p).to_wire(), wire);
            assert_eq!(p.to_string(), wire);
        }
    }
}
