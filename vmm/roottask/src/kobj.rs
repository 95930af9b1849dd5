//! Kernel objects for the root task: retyping untyped memory into objects,
//! handing out CSpace slots, and mapping frames into the VMM's own address
//! space and into guests' EPTs (creating the paging structures on demand).

use alloc::collections::BTreeSet;
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

/// A paging-structure level: object type, size bits, map invocation label.
type Level = (u64, u64, u64);

/// Depth of the root CNode for slot addressing.
pub const CNODE_DEPTH: u8 = 64;

/// The root task's allocator of kernel objects.
pub struct Kernel {
    pub ipc: Ipc,
    untyped: UntypedPool,
    slots: SlotAllocator,
    /// Bytes of RAM the untypeds described at boot.
    pub ram_bytes: u64,
    /// Paging structures this allocator has mapped: (root, shift, address >> shift).
    tables: BTreeSet<(CPtr, u32, u64)>,
    /// Emptied slots, reused before new ones.
    released: Vec<CPtr>,
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
            tables: BTreeSet::new(),
            released: Vec::new(),
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

    /// A free slot (one given back with [`Kernel::release`] first).
    pub fn slot(&mut self) -> Result<CPtr, KError> {
        match self.released.pop() {
            Some(s) => Ok(s),
            None => Ok(self.slots.alloc(1)?),
        }
    }

    /// Gives back an empty slot for reuse.
    pub fn release(&mut self, slot: CPtr) {
        self.released.push(slot);
    }

    /// Creates one object of `object_type`, `2^size_bits` bytes, returning
    /// its capability.
    pub fn create(
        &mut self,
        object_type: u64,
        size_bits: u64,
        what: &'static str,
    ) -> Result<CPtr, KError> {
        let ut = self.untyped.alloc(size_bits as u8, 1)?;
        let slot = self.slot()?;
        // Fixed-size objects ignore the size argument; variable-size ones
        // (untyped, CNodes) take it.
        let arg = if object_type == sys::CAP_TABLE_OBJECT || object_type == sys::UNTYPED_OBJECT {
            size_bits
        } else {
            0
        };
        let made = self
            .ipc
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
            .ctx(what);
        if made.is_err() {
            self.release(slot);
        }
        made.map(|()| slot)
    }

    /// Creates `count` 4 KiB frames in consecutive slots (one retype per
    /// 256: the kernel's fan-out limit), returning the first slot.
    pub fn create_frames(&mut self, count: u64, what: &'static str) -> Result<CPtr, KError> {
        const BATCH: u64 = 256;
        let first = self.slots.alloc(count)?;
        let mut done = 0;
        while done < count {
            let n = BATCH.min(count - done);
            let ut = self.untyped.alloc(sys::PAGE_BITS as u8, n)?;
            self.ipc
                .untyped_retype(
                    ut,
                    sys::X86_4K_OBJECT,
                    0,
                    sys::CAP_INIT_THREAD_CNODE,
                    0,
                    0,
                    first + done,
                    n,
                )
                .ctx(what)?;
            done += n;
        }
        Ok(first)
    }

    /// Copies capability `cap` with `rights` into the free slot `slot`.
    pub fn copy_into(&mut self, slot: CPtr, cap: CPtr, rights: u64) -> Result<(), KError> {
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
            .ctx("copying a capability")
    }

    /// Empties slot `slot` (the capability is deleted; the slot can be reused).
    pub fn delete(&mut self, slot: CPtr) -> Result<(), KError> {
        self.ipc
            .cnode_delete(sys::CAP_INIT_THREAD_CNODE, slot, CNODE_DEPTH)
            .ctx("deleting a capability")
    }

    /// Creates a thread in the root task's CSpace and VSpace at `priority`,
    /// with a fresh IPC buffer mapped at `ipc_vaddr` (not started; no entry
    /// point yet). Returns the TCB.
    pub fn create_thread(&mut self, ipc_vaddr: u64, priority: u64) -> Result<CPtr, KError> {
        let tcb = self.create(sys::TCB_OBJECT, sys::TCB_BITS, "creating a thread")?;
        let ipc_frame = self.create(
            sys::X86_4K_OBJECT,
            sys::PAGE_BITS,
            "creating a thread's IPC buffer",
        )?;
        self.map_vmm(ipc_frame, ipc_vaddr, false)?;
        self.ipc
            .tcb_configure(
                tcb,
                0,
                sys::CAP_INIT_THREAD_CNODE,
                0,
                sys::CAP_INIT_THREAD_VSPACE,
                0,
                ipc_vaddr,
                ipc_frame,
            )
            .ctx("configuring a thread")?;
        self.ipc
            .tcb_set_sched_params(tcb, sys::CAP_INIT_THREAD_TCB, 0, priority)
            .ctx("setting a thread's priority")?;
        Ok(tcb)
    }

    /// A copy of capability `cap` with `rights`.
    pub fn copy(&mut self, cap: CPtr, rights: u64) -> Result<CPtr, KError> {
        let slot = self.slot()?;
        if let Err(e) = self.copy_into(slot, cap, rights) {
            self.release(slot);
            return Err(e);
        }
        Ok(slot)
    }

    /// Maps `frame` at `vaddr` in the root task's address space, creating
    /// the paging structures it needs. `large` is a 2 MiB frame. `vaddr` must
    /// lie outside the first 512 GiB (PML4 slot 0), where the kernel built the
    /// root task's own image mappings.
    pub fn map_vmm(&mut self, frame: CPtr, vaddr: u64, large: bool) -> Result<(), KError> {
        const LEVELS: [Level; 3] = [
            (sys::X86_PDPT_OBJECT, sys::PDPT_BITS, sys::X86_PDPT_MAP),
            (
                sys::X86_PAGE_DIRECTORY_OBJECT,
                sys::PAGE_DIR_BITS,
                sys::X86_PAGE_DIRECTORY_MAP,
            ),
            (
                sys::X86_PAGE_TABLE_OBJECT,
                sys::PAGE_TABLE_BITS,
                sys::X86_PAGE_TABLE_MAP,
            ),
        ];
        if vaddr >> 39 == 0 {
            return Err(KError::Kernel(
                "mapping into the root task's image region",
                sel4::Error::InvalidArgument,
            ));
        }
        let vspace = sys::CAP_INIT_THREAD_VSPACE;
        self.ensure_tables(vspace, vaddr, large, &LEVELS, |ipc, obj, label| {
            ipc.paging_map(label, obj, vspace, vaddr)
        })?;
        self.ipc
            .page_map(frame, vspace, vaddr, sys::RIGHTS_READ_WRITE)
            .ctx("mapping a frame into the VMM")
    }

    /// Maps `frame` at guest-physical `gpa` in the EPT rooted at `pml4`,
    /// creating the EPT structures it needs. `large` is a 2 MiB frame.
    pub fn map_ept(
        &mut self,
        pml4: CPtr,
        frame: CPtr,
        gpa: u64,
        large: bool,
    ) -> Result<(), KError> {
        self.ept_tables(pml4, gpa, large)?;
        self.ipc
            .page_map_ept(frame, pml4, gpa, sys::RIGHTS_ALL)
            .ctx("mapping guest RAM into the EPT")
    }

    /// Creates the EPT structures a frame at `gpa` needs in the EPT rooted
    /// at `pml4` (so that mapping it can no longer fail for want of them).
    pub fn ept_tables(&mut self, pml4: CPtr, gpa: u64, large: bool) -> Result<(), KError> {
        const LEVELS: [Level; 3] = [
            (
                sys::X86_EPT_PDPT_OBJECT,
                sys::EPT_PDPT_BITS,
                sys::X86_EPT_PDPT_MAP,
            ),
            (
                sys::X86_EPT_PD_OBJECT,
                sys::EPT_PD_BITS,
                sys::X86_EPT_PD_MAP,
            ),
            (
                sys::X86_EPT_PT_OBJECT,
                sys::EPT_PT_BITS,
                sys::X86_EPT_PT_MAP,
            ),
        ];
        self.ensure_tables(pml4, gpa, large, &LEVELS, |ipc, obj, label| {
            ipc.ept_map(label, obj, pml4, gpa)
        })
    }

    /// Creates and maps, top down, the paging structures (PDPT, PD and, for a
    /// 4 KiB leaf, PT) that `addr` needs in the address space rooted at
    /// `root` and that this allocator has not made yet.
    fn ensure_tables(
        &mut self,
        root: CPtr,
        addr: u64,
        large: bool,
        levels: &[Level; 3],
        mut map: impl FnMut(&mut Ipc, CPtr, u64) -> Result<(), sel4::Error>,
    ) -> Result<(), KError> {
        // Each structure is named by the address bits above what it covers.
        const SHIFTS: [u32; 3] = [39, 30, 21];
        let needed = if large { 2 } else { 3 };
        for (&(ty, bits, label), shift) in levels.iter().zip(SHIFTS).take(needed) {
            let key = (root, shift, addr >> shift);
            if self.tables.contains(&key) {
                continue;
            }
            let obj = self.create(ty, bits, "creating a paging structure")?;
            map(&mut self.ipc, obj, label).ctx("mapping a paging structure")?;
            self.tables.insert(key);
        }
        Ok(())
    }
}
