//! Reading the boot information the kernel hands the root task.

use crate::sys;

/// One untyped capability described by the boot information.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UntypedDesc {
    /// Slot of the untyped capability in the root CNode.
    pub cap: u64,
    /// Physical address of the region.
    pub paddr: u64,
    /// log2 of the region's size.
    pub size_bits: u8,
    /// Device memory (not RAM).
    pub is_device: bool,
}

/// A view of the `seL4_BootInfo` frame.
#[derive(Clone, Copy)]
pub struct BootInfo {
    base: *const u8,
}

impl BootInfo {
    /// Wraps the boot information frame the kernel mapped for the root task.
    ///
    /// # Safety
    /// `ptr` must be the address seL4 passed to the root task, and the frame
    /// (plus `extraLen` bytes after it) must stay mapped and unmodified.
    pub unsafe fn from_ptr(ptr: *const u8) -> Self {
        BootInfo { base: ptr }
    }

    fn word(&self, offset: u64) -> u64 {
        // SAFETY: every offset used is a field offset generated from
        // sizeof/offsetof(seL4_BootInfo), inside the mapped boot info frame
        // (BOOTINFO_SIZE <= BOOTINFO_FRAME_SIZE is asserted by libsel4).
        unsafe { core::ptr::read_unaligned(self.base.add(offset as usize) as *const u64) }
    }

    fn byte(&self, offset: u64) -> u8 {
        // SAFETY: as for `word`.
        unsafe { core::ptr::read(self.base.add(offset as usize)) }
    }

    /// The initial thread's IPC buffer.
    pub fn ipc_buffer(&self) -> *mut crate::IpcBuffer {
        self.word(sys::BOOTINFO_IPC_BUFFER) as *mut crate::IpcBuffer
    }

    /// The range of empty slots in the root CNode.
    pub fn empty(&self) -> (u64, u64) {
        (
            self.word(sys::BOOTINFO_EMPTY + sys::SLOT_REGION_START),
            self.word(sys::BOOTINFO_EMPTY + sys::SLOT_REGION_END),
        )
    }

    /// The range of the root task's own image frame caps.
    pub fn user_image_frames(&self) -> (u64, u64) {
        (
            self.word(sys::BOOTINFO_USER_IMAGE_FRAMES + sys::SLOT_REGION_START),
            self.word(sys::BOOTINFO_USER_IMAGE_FRAMES + sys::SLOT_REGION_END),
        )
    }

    /// log2 of the number of slots in the root CNode.
    pub fn cnode_size_bits(&self) -> u64 {
        self.word(sys::BOOTINFO_CNODE_SIZE_BITS)
    }

    /// The untyped capabilities.
    pub fn untypeds(&self) -> impl Iterator<Item = UntypedDesc> + '_ {
        let start = self.word(sys::BOOTINFO_UNTYPED + sys::SLOT_REGION_START);
        let end = self.word(sys::BOOTINFO_UNTYPED + sys::SLOT_REGION_END);
        let max = (sys::BOOTINFO_SIZE - sys::BOOTINFO_UNTYPED_LIST) / sys::UNTYPED_DESC_SIZE;
        let count = end.saturating_sub(start).min(max);
        (0..count).map(move |i| {
            let d = sys::BOOTINFO_UNTYPED_LIST + i * sys::UNTYPED_DESC_SIZE;
            UntypedDesc {
                cap: start + i,
                paddr: self.word(d + sys::UNTYPED_DESC_PADDR),
                size_bits: self.byte(d + sys::UNTYPED_DESC_SIZE_BITS),
                is_device: self.byte(d + sys::UNTYPED_DESC_IS_DEVICE) != 0,
            }
        })
    }

    /// The TSC frequency in MHz that the kernel calibrated, from the extra
    /// boot information chunks, if present.
    pub fn tsc_mhz(&self) -> Option<u64> {
        let extra_len = self.word(sys::BOOTINFO_EXTRA_LEN);
        let mut off = sys::BOOTINFO_FRAME_SIZE;
        let end = sys::BOOTINFO_FRAME_SIZE.checked_add(extra_len)?;
        while off.checked_add(16)? <= end {
            let id = self.word(off);
            let len = self.word(off + 8);
            if id == sys::BOOTINFO_HEADER_X86_TSC_FREQ && len >= 20 {
                // SAFETY: the chunk lies within the extra boot info region the
                // kernel mapped after the boot info frame.
                let mhz = unsafe {
                    core::ptr::read_unaligned(self.base.add(off as usize + 16) as *const u32)
                };
                return Some(u64::from(mhz));
            }
            if len < 16 {
                return None;
            }
            off = off.checked_add(len)?;
        }
        None
    }
}
