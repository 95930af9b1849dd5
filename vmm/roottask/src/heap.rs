//! The root task's heap: a fixed region in its image.

use linked_list_allocator::LockedHeap;

const HEAP_SIZE: usize = 4 * 1024 * 1024;

#[repr(C, align(4096))]
struct Arena([u8; HEAP_SIZE]);

static mut ARENA: Arena = Arena([0; HEAP_SIZE]);

#[global_allocator]
static ALLOCATOR: LockedHeap = LockedHeap::empty();

/// Hands the arena to the allocator. Call once, before any allocation.
pub fn init() {
    // SAFETY: called once at start-up before any other thread exists; the
    // arena is used by nothing but the allocator.
    unsafe {
        let start = core::ptr::addr_of_mut!(ARENA) as *mut u8;
        ALLOCATOR.lock().init(start, HEAP_SIZE);
    }
}
