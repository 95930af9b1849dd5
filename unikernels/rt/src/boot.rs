//! PVH entry: the 32-bit trampoline, the ELF note, and the 64-bit start in Rust.
//!
//! The VMM (QEMU or cloister) enters `pvh_start32` in 32-bit protected mode with
//! paging off, flat segments and `ebx` = guest-physical address of
//! `struct hvm_start_info`. The trampoline zeroes `.bss`, builds identity-mapped
//! page tables for [`IDENTITY_MAP_END`] bytes with 2 MiB pages (the 3–4 GiB MMIO
//! window uncached), loads a boot GDT, enables PAE, long mode and paging, and jumps
//! to 64-bit code, which calls [`rt_start64`] on the boot stack.
//!
//! Once the start info is copied, [`install_guard_pages`] splits two 2 MiB pages
//! into 4 KiB pages to unmap page 0 (null pointers fault) and the page below the
//! boot stack (a stack overflow faults, and `#DF` reports it on its own stack).

use core::cell::UnsafeCell;
use core::fmt::Write;

use x86_64::registers::control::Cr3;
use x86_64::structures::paging::{PageTable, PageTableFlags};
use x86_64::PhysAddr;

use crate::exit::{self, exit};
use crate::heap::{self, LockedHeap};
use crate::serial::SerialPort;
use crate::start_info::{BootInfo, PhysMemory, Unreadable};
use crate::{println, BOOT_INFO, IDENTITY_MAP_END, MMIO_WINDOW};

/// Page directories: one per GiB of identity map.
const PD_COUNT: u64 = IDENTITY_MAP_END >> 30;

core::arch::global_asm!(
    r#"
    /* Xen PVH entry note. QEMU reads the descriptor as a host size_t, so it is
       8 bytes here, like Linux's; the section must stay 4-aligned. */
    .section .note.Xen, "a", @note
    .balign 4
    .long 4                 /* namesz: "Xen\0" */
    .long 8                 /* descsz */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .quad pvh_start32
    .balign 4

    .section .text.boot32, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    movl %ebx, %esi                 /* keep the start-info address */

    movl $__bss_start, %edi         /* zero .bss (page tables and stack live there) */
    movl $__bss_end, %ecx
    subl %edi, %ecx
    xorl %eax, %eax
    rep stosb
    movl $rt_boot_stack_top, %esp

    movl $rt_boot_pdpt, %eax        /* PML4[0] -> PDPT */
    orl $0x3, %eax
    movl %eax, rt_boot_pml4

    movl $rt_boot_pds, %eax         /* PDPT[i] -> PD i */
    orl $0x3, %eax
    xorl %ecx, %ecx
1:  movl %eax, rt_boot_pdpt(,%ecx,8)
    addl $0x1000, %eax
    incl %ecx
    cmpl ${pd_count}, %ecx
    jb 1b

    xorl %ecx, %ecx                 /* PD entry i maps 2 MiB at i << 21 */
2:  movl %ecx, %eax
    shll $21, %eax
    orl $0x83, %eax                 /* present, writable, 2 MiB page */
    cmpl ${uc_first}, %ecx
    jb 3f
    cmpl ${uc_end}, %ecx
    jae 3f
    orl $0x18, %eax                 /* PWT | PCD in the MMIO window */
3:  movl %eax, rt_boot_pds(,%ecx,8)
    movl %ecx, %edx
    shrl $11, %edx
    movl %edx, rt_boot_pds+4(,%ecx,8)
    incl %ecx
    cmpl ${pd_entries}, %ecx
    jb 2b

    lgdt rt_boot_gdt_ptr
    movl %cr4, %eax
    orl $0x20, %eax                 /* CR4.PAE */
    movl %eax, %cr4
    movl $rt_boot_pml4, %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx          /* EFER.LME */
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80010001, %eax           /* CR0.PG | CR0.WP | CR0.PE */
    movl %eax, %cr0
    ljmp $0x08, $pvh_start64

    .code64
pvh_start64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorl %eax, %eax
    movw %ax, %fs
    movw %ax, %gs
    movq $rt_boot_stack_top, %rsp
    movl %esi, %edi                 /* rt_start64(start_info_paddr) */
    xorl %ebp, %ebp
    call rt_start64
4:  cli
    hlt
    jmp 4b

    .section .rodata.rt_boot_gdt, "a"
    .balign 16
rt_boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff        /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff        /* 0x10: flat data */
rt_boot_gdt_end:
    .balign 4
rt_boot_gdt_ptr:
    .word rt_boot_gdt_end - rt_boot_gdt - 1
    .long rt_boot_gdt

    .section .bss.rt_boot, "aw", @nobits
    .balign 4096
rt_boot_pml4:
    .skip 4096
rt_boot_pdpt:
    .skip 4096
rt_boot_pds:
    .skip 4096 * {pd_count}
    /* The boot stack (rt_boot_stack_guard, a page unmapped by
       install_guard_pages, then the stack up to rt_boot_stack_top) is defined
       by the guest's `entry!`, which picks its size. */
    "#,
    pd_count = const PD_COUNT,
    pd_entries = const PD_COUNT * 512,
    uc_first = const MMIO_WINDOW.0 >> 21,
    uc_end = const MMIO_WINDOW.1 >> 21,
    options(att_syntax)
);

unsafe extern "C" {
    /// Start of the loaded image (linker script).
    safe static __image_start: u8;
    /// End of the loaded image and its `.bss` (linker script), page aligned.
    safe static __image_end: u8;
    /// The page below the boot stack (defined by `entry!`).
    safe static rt_boot_stack_guard: u8;
    /// The top of the boot stack (defined by `entry!`).
    safe static rt_boot_stack_top: u8;
}

/// `[start, end)` of the image in guest-physical memory, `.bss` and the boot
/// stack included.
pub fn image_range() -> (u64, u64) {
    (
        (&raw const __image_start) as u64,
        (&raw const __image_end) as u64,
    )
}

/// What [`paint_stack`] fills the unused stack with.
const STACK_PAINT: u64 = 0x5f5f_4b43_4154_535f;

/// Lowest usable address of the boot stack.
fn stack_bottom() -> u64 {
    (&raw const rt_boot_stack_guard) as u64 + 4096
}

/// Fills the boot stack below the current frame (minus a 4 KiB margin) with
/// [`STACK_PAINT`], so [`stack_high_water`] can tell how deep it ever got.
fn paint_stack() {
    let rsp: u64;
    // SAFETY: reads the stack pointer only.
    unsafe { core::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack)) };
    let top = rsp.saturating_sub(4096) & !7;
    let mut at = stack_bottom();
    while at < top {
        // SAFETY: [stack_bottom, rsp - 4 KiB) is the unused part of the boot
        // stack (mapped, in .bss, below every live frame; the target has no red
        // zone), aligned to 8.
        unsafe { core::ptr::write_volatile(at as *mut u64, STACK_PAINT) };
        at += 8;
    }
}

/// `(size, deepest use)` of the boot stack in bytes.
pub fn stack_high_water() -> (u64, u64) {
    let bottom = stack_bottom();
    let mut at = bottom;
    let top = (&raw const rt_boot_stack_top) as u64;
    // SAFETY: reads within the boot stack, below the current frame until the
    // first word that is not paint; aligned to 8.
    while at < top && unsafe { core::ptr::read_volatile(at as *const u64) } == STACK_PAINT {
        at += 8;
    }
    (top - bottom, top - at)
}

/// 4 KiB page tables for the 2 MiB regions holding page 0 and the stack guard.
struct GuardTables(UnsafeCell<[PageTable; 2]>);

// SAFETY: the tables are written once, by `install_guard_pages` on the only CPU,
// and afterwards only the MMU reads them.
unsafe impl Sync for GuardTables {}

static GUARD_TABLES: GuardTables =
    GuardTables(UnsafeCell::new([PageTable::new(), PageTable::new()]));

/// Replaces the 2 MiB mapping that covers `addr` by `table`, mapping the same
/// addresses with the same attributes in 4 KiB pages, and returns `table`.
///
/// # Safety
///
/// `pdpt` must be the live boot PDPT (identity mapped), `addr` below
/// [`IDENTITY_MAP_END`], and `table` unused by any live mapping.
unsafe fn split_2m<'t>(pdpt: &PageTable, addr: u64, table: &'t mut PageTable) -> &'t mut PageTable {
    // SAFETY: the PDPT entry for `addr` points to one of the trampoline's page
    // directories, identity mapped and used by nothing but the MMU.
    let pd =
        unsafe { &mut *(pdpt[((addr >> 30) & 511) as usize].addr().as_u64() as *mut PageTable) };
    let pde = &mut pd[((addr >> 21) & 511) as usize];
    let base = addr & !0x1f_ffff;
    let flags = pde.flags() - PageTableFlags::HUGE_PAGE;
    for (i, entry) in table.iter_mut().enumerate() {
        entry.set_addr(PhysAddr::new_truncate(base + i as u64 * 4096), flags);
    }
    let table_addr = PhysAddr::new_truncate(table as *const PageTable as u64);
    pde.set_addr(
        table_addr,
        PageTableFlags::PRESENT | PageTableFlags::WRITABLE,
    );
    table
}

/// Unmaps page 0 and the page below the boot stack (see the module docs).
fn install_guard_pages() {
    let guard = (&raw const rt_boot_stack_guard) as u64;
    let (pml4_frame, cr3_flags) = Cr3::read();
    // SAFETY: runs once, on one CPU, before anything else uses GUARD_TABLES; the
    // boot page tables are identity mapped; the new 4 KiB mappings equal the 2 MiB
    // ones except for the two unmapped pages, which hold no live data (page 0 is
    // never used; the guard page is reserved for this); reloading CR3 flushes the
    // stale translations.
    unsafe {
        let pml4 = &*(pml4_frame.start_address().as_u64() as *const PageTable);
        let pdpt = &*(pml4[0].addr().as_u64() as *const PageTable);
        let [low, other] = &mut *GUARD_TABLES.0.get();
        let low = split_2m(pdpt, 0, low);
        low[0].set_unused();
        let guard_table = if guard >> 21 == 0 {
            low
        } else {
            split_2m(pdpt, guard, other)
        };
        guard_table[((guard >> 12) & 511) as usize].set_unused();
        Cr3::write(pml4_frame, cr3_flags);
    }
}

unsafe extern "Rust" {
    /// The guest's entry point, defined by [`crate::entry!`].
    fn cloister_unikernel_main() -> u8;
}

/// The heap behind `alloc`.
#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// First address and length of the heap region (0, 0 if there is no heap).
pub fn heap_region() -> (usize, usize) {
    HEAP.region()
}

/// Bytes of the heap region ever used (its high-water mark): blocks from the
/// bottom plus page runs (DMA) from the top.
pub fn heap_high_water() -> usize {
    HEAP.high_water()
}

/// `len` bytes (whole pages) of page-aligned heap memory, not zeroed; null if
/// the heap is full. For [`crate::dma`].
pub(crate) fn allocate_pages(len: usize) -> *mut u8 {
    HEAP.allocate_pages(len)
}

/// Returns a run from [`allocate_pages`].
///
/// # Safety
///
/// As [`crate::heap::Heap::deallocate_pages`].
pub(crate) unsafe fn deallocate_pages(at: *mut u8, len: usize) {
    // SAFETY: forwarded contract.
    unsafe { HEAP.deallocate_pages(at, len) }
}

/// Guest-physical memory through the identity map, for the start-info parser.
struct IdentityMemory;

/// Guest-physical RAM and firmware tables through the identity map, after boot
/// (page 0 is unmapped by then, so it is refused).
pub(crate) struct RamReader;

impl PhysMemory for RamReader {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
        if paddr < 4096 {
            return Err(Unreadable);
        }
        IdentityMemory.read(paddr, buf)
    }
}

impl PhysMemory for IdentityMemory {
    fn read(&self, paddr: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
        let end = paddr.checked_add(buf.len() as u64).ok_or(Unreadable)?;
        let in_mmio = paddr < MMIO_WINDOW.1 && end > MMIO_WINDOW.0;
        // Page 0 is still mapped here (QEMU puts the memory map at 0x5a8); only
        // the null address itself is refused.
        if paddr == 0 || end > IDENTITY_MAP_END || in_mmio {
            return Err(Unreadable);
        }
        for (addr, byte) in (paddr..end).zip(buf.iter_mut()) {
            // SAFETY: `addr` is non-null, below IDENTITY_MAP_END (identity mapped by
            // the trampoline; page 0 is unmapped only after parsing) and outside
            // the MMIO window; a volatile byte read has no alignment requirement
            // and does not assume the bytes are stable.
            *byte = unsafe { core::ptr::read_volatile(addr as *const u8) };
        }
        Ok(())
    }
}

fn init_heap(info: &BootInfo) {
    let floor = (&raw const __image_end) as u64;
    let mut exclude = [(0u64, 0u64); crate::start_info::MAX_MODULES];
    for (slot, m) in exclude.iter_mut().zip(info.modules()) {
        *slot = (m.paddr, m.size);
    }
    match heap::plan_region(info.memmap(), floor, IDENTITY_MAP_END, &exclude) {
        Some((start, end)) => {
            // SAFETY: the region is RAM per the memory map, above the image and its
            // stacks, outside the boot modules, identity mapped, and used by nothing
            // else: the start info was copied into BOOT_INFO before this point.
            unsafe { HEAP.init(start as usize, (end - start) as usize) };
        }
        None => println!("rt: warning: no RAM above the image for a heap; allocation will fail"),
    }
}

/// 64-bit entry from the trampoline: sets up the machine and runs the guest.
#[unsafe(no_mangle)]
extern "C" fn rt_start64(start_info_paddr: u64) -> ! {
    crate::serial::init();
    paint_stack();
    crate::interrupts::init();
    let parsed = BootInfo::parse(&IdentityMemory, start_info_paddr);
    let info = match parsed {
        Ok(info) => BOOT_INFO.call_once(|| info),
        Err(e) => {
            println!("rt: invalid hvm_start_info at {start_info_paddr:#x}: {e}");
            exit(exit::BAD_BOOT);
        }
    };
    install_guard_pages();
    if let Some(e) = info.cmdline_error() {
        println!("rt: warning: {e}; using an empty command line");
    }
    init_heap(info);
    let (heap_start, heap_len) = heap_region();
    println!(
        "rt: cloister-rt {}: start_info v{} at {:#x}, {} KiB RAM, heap {:#x}+{} KiB",
        env!("CARGO_PKG_VERSION"),
        info.version(),
        info.paddr(),
        info.ram_bytes() / 1024,
        heap_start,
        heap_len / 1024
    );
    // SAFETY: `entry!` defines this symbol with exactly this signature; linking
    // fails if the guest did not use it.
    let code = unsafe { cloister_unikernel_main() };
    exit(code)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    // Bypass the console lock: the panic may have happened while it was held.
    let mut out = SerialPort::com1();
    let _ = write!(out, "\nrt: panic: {}", info.message());
    if let Some(loc) = info.location() {
        let _ = write!(out, " at {}:{}:{}", loc.file(), loc.line(), loc.column());
    }
    let _ = writeln!(out);
    exit(exit::PANIC)
}
