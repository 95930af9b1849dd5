//! `struct boot_params` (the zero page), encoded as
//! `arch/x86/include/uapi/asm/bootparam.h` lays it out.

use crate::header::*;
use crate::{BootConfig, Plan, CMDLINE_GPA, ZERO_PAGE_SIZE};

/// Offset of `e820_table` in `boot_params`.
pub const E820_TABLE_OFFSET: usize = 0x2d0;
/// Size of one `boot_e820_entry` (`addr` u64, `size` u64, `type` u32, packed).
pub const E820_ENTRY_SIZE: usize = 20;
/// `E820_MAX_ENTRIES_ZEROPAGE`.
pub const E820_MAX_ENTRIES: usize = 128;

pub(crate) const OFF_ACPI_RSDP_ADDR: usize = 0x070;
pub(crate) const OFF_EXT_RAMDISK_IMAGE: usize = 0x0c0;
pub(crate) const OFF_EXT_RAMDISK_SIZE: usize = 0x0c4;
pub(crate) const OFF_EXT_CMD_LINE_PTR: usize = 0x0c8;
pub(crate) const OFF_E820_ENTRIES: usize = 0x1e8;

/// `type_of_loader` for a loader without an assigned ID.
pub(crate) const LOADER_UNDEFINED: u8 = 0xFF;

fn put(page: &mut [u8], at: usize, src: &[u8]) {
    if let Some(d) = at
        .checked_add(src.len())
        .and_then(|end| page.get_mut(at..end))
    {
        d.copy_from_slice(src);
    }
}

fn lo32(v: u64) -> [u8; 4] {
    u32::try_from(v & 0xFFFF_FFFF)
        .unwrap_or_default()
        .to_le_bytes()
}

fn hi32(v: u64) -> [u8; 4] {
    u32::try_from(v >> 32).unwrap_or_default().to_le_bytes()
}

/// The zero page for `plan` (validated by [`crate::plan`]).
pub(crate) fn build(
    image: &[u8],
    plan: &Plan,
    cfg: &BootConfig<'_>,
) -> [u8; ZERO_PAGE_SIZE as usize] {
    let mut page = [0u8; ZERO_PAGE_SIZE as usize];
    let info = &plan.info;

    // The setup header, as the image has it.
    let end = info.header_end.min(HDR_MAX_END);
    if let Some(hdr) = image.get(HDR_START..end) {
        put(&mut page, HDR_START, hdr);
    }

    // Fields the loader writes.
    put(&mut page, OFF_TYPE_OF_LOADER, &[LOADER_UNDEFINED]);
    let loadflags = (info.loadflags | LOADED_HIGH) & !(CAN_USE_HEAP | KEEP_SEGMENTS | KASLR_FLAG);
    put(&mut page, OFF_LOADFLAGS, &[loadflags]);
    put(&mut page, OFF_CODE32_START, &lo32(plan.kernel_gpa));
    put(&mut page, OFF_EXT_LOADER_VER, &[0, 0]);
    put(
        &mut page,
        OFF_KERNEL_ALIGNMENT,
        &plan.kernel_alignment.to_le_bytes(),
    );
    put(&mut page, OFF_HARDWARE_SUBARCH, &[0; 12]);
    put(&mut page, OFF_SETUP_DATA, &[0; 8]);

    put(&mut page, OFF_CMD_LINE_PTR, &lo32(CMDLINE_GPA));
    put(&mut page, OFF_EXT_CMD_LINE_PTR, &hi32(CMDLINE_GPA));
    put(&mut page, OFF_RAMDISK_IMAGE, &lo32(plan.initrd_gpa));
    put(&mut page, OFF_RAMDISK_SIZE, &lo32(plan.initrd_size));
    put(&mut page, OFF_EXT_RAMDISK_IMAGE, &hi32(plan.initrd_gpa));
    put(&mut page, OFF_EXT_RAMDISK_SIZE, &hi32(plan.initrd_size));

    put(
        &mut page,
        OFF_ACPI_RSDP_ADDR,
        &cfg.acpi_rsdp.unwrap_or(0).to_le_bytes(),
    );

    // The e820 table (validated: at most 128 entries).
    let mut n = 0u8;
    let mut at = E820_TABLE_OFFSET;
    for e in cfg.memmap.iter().take(E820_MAX_ENTRIES) {
        let mut entry = [0u8; E820_ENTRY_SIZE];
        put(&mut entry, 0, &e.addr.to_le_bytes());
        put(&mut entry, 8, &e.size.to_le_bytes());
        put(&mut entry, 16, &e.kind.value().to_le_bytes());
        put(&mut page, at, &entry);
        at = at.saturating_add(E820_ENTRY_SIZE);
        n = n.saturating_add(1);
    }
    put(&mut page, OFF_E820_ENTRIES, &[n]);
    page
}
