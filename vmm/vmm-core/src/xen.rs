//! The exit handler's side of the Xen guest ABI (see `xen-abi`): argument
//! memory addressed the way a hypercall names it (linear addresses through
//! the guest's page tables), and the register view of a VMCALL.
//!
//! The cross-VM state (event channels, grants) is not here: it lives in one
//! `xen_abi::Hub` that the VMM shares between VMs, reached through
//! [`crate::vm::Host::xen_hypercall`].

use x86_emul::{Access, AccessKind, Paging};
use xen_abi::{GuestMem, MemFault};

/// Guest-physical RAM as the host sees it.
pub trait PhysMem {
    /// Reads `buf.len()` bytes at `gpa`; `false` if any byte is not RAM.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> bool;
    /// Writes `buf` at `gpa`; `false` if any byte is not RAM.
    fn write(&mut self, gpa: u64, buf: &[u8]) -> bool;
}

/// The calling vCPU's memory by linear address: each page is translated
/// through the guest's page tables (with the access's rights) and must be
/// RAM. Hypercall arguments never reach MMIO or another domain's pages.
pub struct LinearMem<'a, P: PhysMem + ?Sized> {
    ram: &'a mut P,
    paging: Paging,
    user: bool,
}

impl<'a, P: PhysMem + ?Sized> LinearMem<'a, P> {
    /// Linear memory of a vCPU with `paging`, accessing as user mode if `user`.
    pub fn new(ram: &'a mut P, paging: Paging, user: bool) -> Self {
        LinearMem { ram, paging, user }
    }

    /// The guest-physical address of `gla` for `kind`, if it maps.
    fn translate(&self, gla: u64, kind: AccessKind) -> Result<u64, MemFault> {
        let access = Access {
            kind,
            user: self.user,
            ac: false,
        };
        x86_emul::paging::translate(&Phys(&*self.ram), &self.paging, gla, access)
            .map(|t| t.gpa)
            .map_err(|_| MemFault)
    }

    /// Calls `f(gpa, range)` for each piece of `[gla, gla+len)` that lies
    /// within one page.
    fn pieces(
        &mut self,
        gla: u64,
        len: usize,
        kind: AccessKind,
        mut f: impl FnMut(&mut P, u64, core::ops::Range<usize>) -> bool,
    ) -> Result<(), MemFault> {
        let mut done = 0usize;
        while done < len {
            let addr = gla.checked_add(done as u64).ok_or(MemFault)?;
            let in_page = (0x1000 - (addr & 0xfff)) as usize;
            let n = in_page.min(len - done);
            let gpa = self.translate(addr, kind)?;
            if !f(self.ram, gpa, done..done + n) {
                return Err(MemFault);
            }
            done += n;
        }
        Ok(())
    }
}

impl<P: PhysMem + ?Sized> GuestMem for LinearMem<'_, P> {
    fn read(&mut self, gla: u64, buf: &mut [u8]) -> Result<(), MemFault> {
        let len = buf.len();
        self.pieces(gla, len, AccessKind::Read, |ram, gpa, r| {
            match buf.get_mut(r) {
                Some(b) => ram.read(gpa, b),
                None => false,
            }
        })
    }

    fn write(&mut self, gla: u64, buf: &[u8]) -> Result<(), MemFault> {
        self.pieces(gla, buf.len(), AccessKind::Write, |ram, gpa, r| {
            match buf.get(r) {
                Some(b) => ram.write(gpa, b),
                None => false,
            }
        })
    }
}

/// Page-table reads for the walk.
struct Phys<'a, P: PhysMem + ?Sized>(&'a P);

impl<P: PhysMem + ?Sized> x86_emul::GuestMemory for Phys<'_, P> {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), x86_emul::MemError> {
        if self.0.read(gpa, buf) {
            Ok(())
        } else {
            Err(x86_emul::MemError {
                gpa,
                len: buf.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    struct Ram(Vec<u8>);

    impl PhysMem for Ram {
        fn read(&self, gpa: u64, buf: &mut [u8]) -> bool {
            let s = gpa as usize;
            match self.0.get(s..s + buf.len()) {
                Some(src) => {
                    buf.copy_from_slice(src);
                    true
                }
                None => false,
            }
        }
        fn write(&mut self, gpa: u64, buf: &[u8]) -> bool {
            let s = gpa as usize;
            match self.0.get_mut(s..s + buf.len()) {
                Some(dst) => {
                    dst.copy_from_slice(buf);
                    true
                }
                None => false,
            }
        }
    }

    /// 4-level paging at CR3 0x1000 mapping linear 0x4000_0000 + n*4K to
    /// physical 0x10000 + n*4K for n < 2 (the second page read-only, user).
    fn paged() -> (Ram, Paging) {
        let mut ram = Ram(vec![0u8; 0x20000]);
        let put = |ram: &mut Ram, at: u64, v: u64| {
            ram.write(at, &v.to_le_bytes());
        };
        put(&mut ram, 0x1000, 0x2000 | 7); // PML4[0]
        put(&mut ram, 0x2000 + 8, 0x3000 | 7); // PDPT[1] (1 GiB)
        put(&mut ram, 0x3000, 0x4000 | 7); // PD[0]
        put(&mut ram, 0x4000, 0x10000 | 3); // PT[0]: RW, supervisor
        put(&mut ram, 0x4000 + 8, 0x11000 | 5); // PT[1]: RO, user
        let paging = Paging::new(0x8001_0011, 0x1000, 0x20, 0x500);
        (ram, paging)
    }

    #[test]
    fn reads_across_a_page_boundary_follow_the_page_tables() {
        let (mut ram, paging) = paged();
        ram.write(0x10ffe, &[1, 2]);
        ram.write(0x11000, &[3, 4]);
        let mut mem = LinearMem::new(&mut ram, paging, false);
        let mut buf = [0u8; 4];
        mem.read(0x4000_0ffe, &mut buf).unwrap();
        assert_eq!(buf, [1, 2, 3, 4]);
    }

    #[test]
    fn writes_honour_page_rights() {
        let (mut ram, paging) = paged();
        let mut mem = LinearMem::new(&mut ram, paging, false);
        mem.write(0x4000_0010, &[9; 4]).unwrap();
        // The second page is read-only and CR0.WP is set.
        assert_eq!(mem.write(0x4000_1000, &[9]), Err(MemFault));
        // Unmapped linear addresses fault.
        assert_eq!(mem.read(0x5000_0000, &mut [0u8; 1]), Err(MemFault));
        // User-mode accesses cannot reach supervisor pages.
        let mut user = LinearMem::new(&mut ram, paging, true);
        assert_eq!(user.read(0x4000_0010, &mut [0u8; 1]), Err(MemFault));
        let mut b = [0u8; 1];
        user.read(0x4000_1000, &mut b).unwrap();
    }

    #[test]
    fn pages_outside_ram_fault() {
        let (mut ram, paging) = paged();
        ram.write(0x4000 + 16, &(0x40_0000u64 | 3).to_le_bytes()); // PT[2] beyond RAM
        let mut mem = LinearMem::new(&mut ram, paging, false);
        assert_eq!(mem.read(0x4000_2000, &mut [0u8; 8]), Err(MemFault));
        assert_eq!(mem.read(u64::MAX - 2, &mut [0u8; 8]), Err(MemFault));
    }
}
