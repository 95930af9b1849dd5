//! Kernel objects for the root task: retyping untyped memory into objects,
//! handing out CSpace slots, and mapping frames into the VMM's own address
//! space and into guests' EPTs (creating the paging structures on demand).

use alloc::vec::Vec;
use sel4::{sys, BootInfo, CPtr, Ipc};
use vmm_core::untyped::{AllocError, SlotAllocator, UntypedPool};

/// Why building something out of kernel objects failed.
#[derive(Clone, Copy, Debug)]
pub enum KError {
    /// The memory or slot model refused.
    Alloc(AllocError),
    /// The kernel refused an invocation.
    Kernel(&'static str, sel4::Error),
}

impl From<AllocError> for KError {
    fn from(e: AllocError) -> Self {
        KError::Alloc(e)
    }
}

impl core::fmt::Display for KError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            KError::Alloc(e) => write!(f, "{e}"),
            KError::Kernel(what, e) => write!(f, "{what} failed: {e}"),
        }
    }
}

/// Tags a kernel error with what was being done.
pub trait Context<T> {
    /// Names the operation.
    fn ctx(self, what: &'static str) -> Result<T, KError>;
}

impl<T> Context<T> for Result<T, sel4::Error> {
    fn ctx(self, what: &'static str) -> Result<T, KError> {
        self.map_err(|e| KError::Kernel(what, e))
    }
}

/// Depth of the root CNode for slot addressing.
pub const CNODE_DEPTH: u8 = 64;

/// The root task's allocator of kernel objects.
pub struct Kernel {
    pub ipc: Ipc,
    untyped: UntypedPool,
    slots: SlotAllocator,
    /// Bytes of RAM the untypeds described at boot.
    pub ram_bytes: u64,
    /// Paging structures created but not yet mapped, by object type.
    spare: Vec<(u64, CPtr)>,
}

impl Kernel {
    /// Takes over the boot information's free slots and RAM untypeds.
    pub fn new(ipc: Ipc, bi: &BootInfo) -> Result<Self, KError> {
        let (start, end) = bi.empty();
        let mut untyped = UntypedPool::default();
        let mut ram_bytes = 0;
        for u in bi.untypeds() {
            if !u.is_device && u.size_bits >= 4 && u.size_bits < 48 {
                untyped.add(u.cap, u.size_bits)?;
                ram_bytes += 1u64 << u.size_bits;
            }
        }
        Ok(Kernel {
            ipc,
            untyped,
            slots: SlotAllocator::new(start, end),
            ram_bytes,
            spare: Vec::new(),
        })
    }

    /// Free capability slots.
    pub fn free_slots(&self) -> u64 {
        self.slots.remaining()
    }

    /// Free untyped bytes.
    pub fn free_bytes(&self) -> u64 {
        self.untyped.free_bytes()
    }

    /// A free slot.
    pub fn slot(&mut self) -> Result<CPtr, KError> {
        Ok(self.slots.alloc(1)?)
    }

    /// Creates one object of `object_type`, `2^size_bits` bytes, returning
    /// its capability.
    pub fn create(
        &mut self,
        object_type: u64,
        size_bits: u64,
        what: &'static str,
    ) -> Result<CPtr, KError> {
        let slot = self.slot()?;
        let ut = self.untyped.alloc(size_bits as u8, 1)?;
        // Fixed-size objects ignore the size argument; variable-size ones
        // (untyped, CNodes) take it.
        let arg = if object_type == sys::CAP_TABLE_OBJECT || object_type == sys::UNTYPED_OBJECT {
            size_bits
        } else {
            0
        };
        self.ipc
            .untyped_retype(
                ut,
                object_type,
                arg,
                sys::CAP_INIT_THREAD_CNODE,
                0,
                0,
                slot,
                1,
            )
            .ctx(what)?;
        Ok(slot)
    }

    /// A copy of capability `cap` with `rights`.
    pub fn copy(&mut self, cap: CPtr, rights: u64) -> Result<CPtr, KError> {
        let slot = self.slot()?;
        self.ipc
            .cnode_copy(
                sys::CAP_INIT_THREAD_CNODE,
                slot,
                CNODE_DEPTH,
                sys::CAP_INIT_THREAD_CNODE,
                cap,
                CNODE_DEPTH,
                rights,
            )
            .ctx("copying a capability")?;
        Ok(slot)
    }

    /// Maps `frame` at `vaddr` in the root task's address space, creating
    /// paging structures as needed. `large` is a 2 MiB frame.
    pub fn map_vmm(&mut self, frame: CPtr, vaddr: u64, large: bool) -> Result<(), KError> {
        const LEVELS: [(u64, u64, u64); 3] = [
            (
                sys::X86_PAGE_TABLE_OBJECT,
                sys::PAGE_TABLE_BITS,
                sys::X86_PAGE_TABLE_MAP,
            ),
            (
                sys::X86_PAGE_DIRECTORY_OBJECT,
                sys::PAGE_DIR_BITS,
                sys::X86_PAGE_DIRECTORY_MAP,
            ),
            (sys::X86_PDPT_OBJECT, sys::PDPT_BITS, sys::X86_PDPT_MAP),
        ];
        let vspace = sys::CAP_INIT_THREAD_VSPACE;
        self.map_with(
            &LEVELS,
            usize::from(large),
            |k, obj, label| k.ipc.paging_map(label, obj, vspace, vaddr),
            |k| k.ipc.page_map(frame, vspace, vaddr, sys::RIGHTS_READ_WRITE),
        )
    }

    /// Maps `frame` at guest-physical `gpa` in the EPT rooted at `pml4`,
    /// creating EPT structures as needed. `large` is a 2 MiB frame.
    pub fn map_ept(
        &mut self,
        pml4: CPtr,
        frame: CPtr,
        gpa: u64,
        large: bool,
    ) -> Result<(), KError> {
        const LEVELS: [(u64, u64, u64); 3] = [
            (
                sys::X86_EPT_PT_OBJECT,
                sys::EPT_PT_BITS,
                sys::X86_EPT_PT_MAP,
            ),
            (
                sys::X86_EPT_PD_OBJECT,
                sys::EPT_PD_BITS,
                sys::X86_EPT_PD_MAP,
            ),
            (
                sys::X86_EPT_PDPT_OBJECT,
                sys::EPT_PDPT_BITS,
                sys::X86_EPT_PDPT_MAP,
            ),
        ];
        self.map_with(
            &LEVELS,
            usize::from(large),
            |k, obj, label| k.ipc.ept_map(label, obj, pml4, gpa),
            |k| k.ipc.page_map_ept(frame, pml4, gpa, sys::RIGHTS_ALL),
        )
    }

    /// The shared mapping algorithm: try the leaf mapping; while the kernel
    /// reports a missing level, create and map structures from the lowest
    /// level the leaf needs upwards until one fits, then retry.
    fn map_with(
        &mut self,
        levels: &[(u64, u64, u64); 3],
        first_level: usize,
        mut map_level: impl FnMut(&mut Self, CPtr, u64) -> Result<(), sel4::Error>,
        mut map_leaf: impl FnMut(&mut Self) -> Result<(), sel4::Error>,
    ) -> Result<(), KError> {
        for _ in 0..4 {
            match map_leaf(self) {
                Ok(()) => return Ok(()),
                Err(sel4::Error::FailedLookup) => {}
                Err(e) => return Err(KError::Kernel("mapping a frame", e)),
            }
            let mut mapped = false;
            for &(ty, bits, label) in levels.iter().skip(first_level) {
                let obj = match self.spare.iter().position(|&(t, _)| t == ty) {
                    Some(i) => self.spare.swap_remove(i).1,
                    None => self.create(ty, bits, "creating a paging structure")?,
                };
                match map_level(self, obj, label) {
                    Ok(()) => {
                        mapped = true;
                        break;
                    }
                    // The level above is missing too: keep this object for
                    // the next attempt and try the level above.
                    Err(sel4::Error::FailedLookup) => {
                        self.spare.push((ty, obj));
                        continue;
                    }
                    Err(e) => return Err(KError::Kernel("mapping a paging structure", e)),
                }
            }
            if !mapped {
                break;
            }
        }
        Err(KError::Kernel("mapping a frame", sel4::Error::FailedLookup))
    }
}
