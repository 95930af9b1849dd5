//! The cloister system builder and runner.
//!
//! From a system description ([`system`]) it builds the guests and the seL4
//! root task that embeds them ([`build`]), packs seL4 and the root task into a
//! GRUB ISO ([`iso`]) and boots it in Bochs ([`bochs`]), reading the VMM's
//! report from the serial console ([`summary`]). [`qemu`] boots a single
//! unikernel bare, without seL4. [`fulltest`] is the harness of the
//! full-system tests.

pub mod bochs;
pub mod build;
pub mod fulltest;
pub mod iso;
pub mod qemu;
pub mod summary;
pub mod system;

use std::fmt;
use std::path::PathBuf;

pub use build::Builder;
pub use system::System;

/// Any failure of the builder or runner.
#[derive(Debug)]
pub enum Error {
    /// The system description is invalid.
    System(system::SystemError),
    /// Building the guests or the VMM failed (or seL4 is missing).
    Build(build::BuildError),
    /// Making the ISO failed.
    Iso(iso::IsoError),
    /// Running Bochs failed.
    Bochs(bochs::BochsError),
    /// Running QEMU failed.
    Qemu(qemu::QemuError),
    /// Building the AppVM images failed.
    Appvm(appvm_images::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::System(e) => e.fmt(f),
            Error::Build(e) => e.fmt(f),
            Error::Iso(e) => e.fmt(f),
            Error::Bochs(e) => e.fmt(f),
            Error::Qemu(e) => e.fmt(f),
            Error::Appvm(e) => write!(f, "building the AppVM images: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<system::SystemError> for Error {
    fn from(e: system::SystemError) -> Self {
        Error::System(e)
    }
}
impl From<build::BuildError> for Error {
    fn from(e: build::BuildError) -> Self {
        Error::Build(e)
    }
}
impl From<iso::IsoError> for Error {
    fn from(e: iso::IsoError) -> Self {
        Error::Iso(e)
    }
}
impl From<bochs::BochsError> for Error {
    fn from(e: bochs::BochsError) -> Self {
        Error::Bochs(e)
    }
}
impl From<qemu::QemuError> for Error {
    fn from(e: qemu::QemuError) -> Self {
        Error::Qemu(e)
    }
}

/// A built system, ready to boot.
#[derive(Clone, Debug)]
pub struct BuiltSystem {
    /// The guests it boots, by name.
    pub guests: build::Guests,
    /// The root task and its system table.
    pub vmm: build::Vmm,
    /// The seL4 kernel it was built against.
    pub kernel: PathBuf,
    /// The boot ISO.
    pub iso: PathBuf,
}

/// Checks that everything a full-system run needs is installed (seL4, the
/// ISO tools, Bochs), so a missing piece is reported before any build.
pub fn check_prerequisites(builder: &Builder) -> Result<(), Error> {
    builder.sel4_kernel()?;
    iso::check_tools()?;
    bochs::check_installed()?;
    Ok(())
}

/// Builds the guests, the VMM and the ISO for `system`. The ISO goes to
/// `target/cloister-iso/<hash of the system table>/cloister.iso`.
pub fn build_system(builder: &Builder, system: &System) -> Result<BuiltSystem, Error> {
    let kernel = builder.sel4_kernel()?;
    iso::check_tools()?;
    let mut system = system.clone();
    if system.uses_appvm() {
        eprintln!("cloister: building the AppVM kernel and initramfs from Debian packages…");
        let images =
            appvm_images::build(&appvm_images::default_cache_dir()).map_err(Error::Appvm)?;
        system.resolve_appvm(&images.kernel, &images.initramfs);
    }
    let system = &system;
    let guests = builder.build_guests(&system.guests())?;
    let vmm = builder.build_vmm(system, &guests)?;
    let work = builder.target_dir().join("cloister-iso").join(&vmm.hash);
    let iso = iso::build_iso(&kernel, &vmm.binary, &work)?;
    Ok(BuiltSystem {
        guests,
        vmm,
        kernel,
        iso,
    })
}
