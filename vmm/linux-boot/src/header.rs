//! The bzImage setup header: offsets, flags and validation.
//!
//! Offsets are from the start of the image file, which are also the offsets
//! of the same fields inside `boot_params` (the header sits at 0x1f1 in both).

use crate::error::BootError;

/// Offset of the setup header in the image and in `boot_params`.
pub const HDR_START: usize = 0x1f1;
/// End of the fields protocol 2.12 defines (`handover_offset` ends here).
pub const HDR_MIN_END: usize = 0x268;
/// End of the room `boot_params` has for the header (`edd_mbr_sig_buffer` starts here).
pub const HDR_MAX_END: usize = 0x290;

pub(crate) const OFF_SETUP_SECTS: usize = 0x1f1;
pub(crate) const OFF_SYSSIZE: usize = 0x1f4;
pub(crate) const OFF_BOOT_FLAG: usize = 0x1fe;
pub(crate) const OFF_JUMP_LEN: usize = 0x201;
pub(crate) const OFF_HEADER: usize = 0x202;
pub(crate) const OFF_VERSION: usize = 0x206;
pub(crate) const OFF_TYPE_OF_LOADER: usize = 0x210;
pub(crate) const OFF_LOADFLAGS: usize = 0x211;
pub(crate) const OFF_CODE32_START: usize = 0x214;
pub(crate) const OFF_RAMDISK_IMAGE: usize = 0x218;
pub(crate) const OFF_RAMDISK_SIZE: usize = 0x21c;
pub(crate) const OFF_EXT_LOADER_VER: usize = 0x226;
pub(crate) const OFF_CMD_LINE_PTR: usize = 0x228;
pub(crate) const OFF_INITRD_ADDR_MAX: usize = 0x22c;
pub(crate) const OFF_KERNEL_ALIGNMENT: usize = 0x230;
pub(crate) const OFF_RELOCATABLE: usize = 0x234;
pub(crate) const OFF_MIN_ALIGNMENT: usize = 0x235;
pub(crate) const OFF_XLOADFLAGS: usize = 0x236;
pub(crate) const OFF_CMDLINE_SIZE: usize = 0x238;
pub(crate) const OFF_HARDWARE_SUBARCH: usize = 0x23c;
pub(crate) const OFF_PAYLOAD_OFFSET: usize = 0x248;
pub(crate) const OFF_PAYLOAD_LENGTH: usize = 0x24c;
pub(crate) const OFF_SETUP_DATA: usize = 0x250;
pub(crate) const OFF_PREF_ADDRESS: usize = 0x258;
pub(crate) const OFF_INIT_SIZE: usize = 0x260;

/// `boot_flag`: the old boot-sector signature.
pub const BOOT_FLAG: u16 = 0xAA55;
/// `header`: "HdrS".
pub const HDRS_MAGIC: u32 = 0x5372_6448;
/// Oldest protocol accepted: 2.12, the first with `xloadflags`.
pub const MIN_PROTOCOL: u16 = 0x020C;

/// `loadflags` bit 0: the protected-mode code is loaded at 0x100000 (bzImage).
pub const LOADED_HIGH: u8 = 1 << 0;
/// `loadflags` bit 1: set by the kernel itself when it randomised its address.
pub const KASLR_FLAG: u8 = 1 << 1;
/// `loadflags` bit 5: suppress early messages.
pub const QUIET_FLAG: u8 = 1 << 5;
/// `loadflags` bit 6: obsolete "do not reload segment registers".
pub const KEEP_SEGMENTS: u8 = 1 << 6;
/// `loadflags` bit 7: `heap_end_ptr` is valid (real-mode setup code only).
pub const CAN_USE_HEAP: u8 = 1 << 7;

/// `xloadflags` bit 0: the kernel has the 64-bit entry at `startup_32 + 0x200`.
pub const XLF_KERNEL_64: u16 = 1 << 0;
/// `xloadflags` bit 1: kernel, boot_params, command line and initrd may be above 4 GiB.
pub const XLF_CAN_BE_LOADED_ABOVE_4G: u16 = 1 << 1;

/// Offset of the 64-bit entry point from the start of the protected-mode code.
pub const ENTRY_64_OFFSET: u64 = 0x200;

/// How the kernel payload (the compressed `vmlinux`) is encoded, from its magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadFormat {
    /// gzip (`1f 8b`).
    Gzip,
    /// xz (`fd 37 7a 58 5a 00`): Debian's choice.
    Xz,
    /// zstd (`28 b5 2f fd`).
    Zstd,
    /// LZ4 legacy frame (`02 21 4c 18`).
    Lz4,
    /// LZO (`89 4c 5a 4f`).
    Lzo,
    /// bzip2 (`BZh`).
    Bzip2,
    /// LZMA (`5d 00 00`).
    Lzma,
    /// An uncompressed ELF `vmlinux` (`CONFIG_KERNEL_UNCOMPRESSED`): bootable through PVH.
    Elf,
    /// Absent, outside the image, or not recognised.
    Unknown,
}

impl PayloadFormat {
    fn detect(bytes: &[u8]) -> Self {
        let starts = |m: &[u8]| bytes.starts_with(m);
        if starts(b"\x7fELF") {
            PayloadFormat::Elf
        } else if starts(&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) {
            PayloadFormat::Xz
        } else if starts(&[0x1f, 0x8b]) {
            PayloadFormat::Gzip
        } else if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
            PayloadFormat::Zstd
        } else if starts(&[0x02, 0x21, 0x4c, 0x18]) {
            PayloadFormat::Lz4
        } else if starts(&[0x89, 0x4c, 0x5a, 0x4f]) {
            PayloadFormat::Lzo
        } else if starts(b"BZh") {
            PayloadFormat::Bzip2
        } else if starts(&[0x5d, 0x00, 0x00]) {
            PayloadFormat::Lzma
        } else {
            PayloadFormat::Unknown
        }
    }
}

/// What [`parse`](crate::parse) learned from a valid bzImage's setup header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelInfo {
    /// Boot protocol version, e.g. `0x020f` for 2.15.
    pub protocol: u16,
    /// Number of 512-byte setup sectors after the boot sector (0 in the file means 4).
    pub setup_sects: u8,
    /// File offset of the protected-mode kernel: `(setup_sects + 1) * 512`.
    pub kernel_offset: usize,
    /// Bytes of protected-mode kernel in the file (everything after the setup code).
    pub kernel_len: usize,
    /// `syssize` in bytes (`syssize * 16`), at most `kernel_len`.
    pub syssize_bytes: u64,
    /// End of the setup header in the file (`0x202 + byte at 0x201`).
    pub header_end: usize,
    /// `loadflags` as found in the image.
    pub loadflags: u8,
    /// `xloadflags` as found in the image.
    pub xloadflags: u16,
    /// `relocatable_kernel != 0`.
    pub relocatable: bool,
    /// Preferred alignment of the load address (a power of two).
    pub kernel_alignment: u32,
    /// Minimum alignment as a power of two (`min_alignment`), 0 if unset.
    pub min_alignment: u8,
    /// Preferred load address (0 if unset).
    pub pref_address: u64,
    /// Contiguous memory the kernel needs from its load address, in bytes.
    pub init_size: u32,
    /// Longest command line without its NUL.
    pub cmdline_size: u32,
    /// Highest address the initrd may occupy (inclusive).
    pub initrd_addr_max: u32,
    /// Offset of the payload inside the protected-mode kernel.
    pub payload_offset: u32,
    /// Length of the payload.
    pub payload_length: u32,
    /// Encoding of the payload.
    pub payload_format: PayloadFormat,
}

impl KernelInfo {
    /// Whether the kernel accepts being placed above 4 GiB (`XLF_CAN_BE_LOADED_ABOVE_4G`).
    pub fn can_be_loaded_above_4g(&self) -> bool {
        self.xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G != 0
    }
}

pub(crate) fn u8_at(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut w = [0u8; 2];
    if let Some(s) = at.checked_add(2).and_then(|e| b.get(at..e)) {
        w.copy_from_slice(s);
    }
    u16::from_le_bytes(w)
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(s) = at.checked_add(4).and_then(|e| b.get(at..e)) {
        w.copy_from_slice(s);
    }
    u32::from_le_bytes(w)
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(s) = at.checked_add(8).and_then(|e| b.get(at..e)) {
        w.copy_from_slice(s);
    }
    u64::from_le_bytes(w)
}

/// Validates the setup header of `image`; see [`crate::parse`].
pub(crate) fn parse(image: &[u8]) -> Result<KernelInfo, BootError> {
    let len = image.len();
    if len < HDR_MIN_END {
        return Err(BootError::TooShort {
            len,
            need: HDR_MIN_END,
        });
    }
    let boot_flag = u16_at(image, OFF_BOOT_FLAG);
    if boot_flag != BOOT_FLAG {
        return Err(BootError::BadBootFlag(boot_flag));
    }
    let magic = u32_at(image, OFF_HEADER);
    if magic != HDRS_MAGIC {
        return Err(BootError::BadHeaderMagic(magic));
    }
    let protocol = u16_at(image, OFF_VERSION);
    if protocol < MIN_PROTOCOL {
        return Err(BootError::ProtocolTooOld(protocol));
    }
    // 0x202 + a byte: at most 0x301, no overflow.
    let header_end = OFF_HEADER.saturating_add(usize::from(u8_at(image, OFF_JUMP_LEN)));
    if header_end < HDR_MIN_END {
        return Err(BootError::HeaderTooShort { header_end });
    }
    let raw_sects = u8_at(image, OFF_SETUP_SECTS);
    let setup_sects = if raw_sects == 0 { 4 } else { raw_sects };
    // (255 + 1) * 512 at most: no overflow.
    let kernel_offset = usize::from(setup_sects)
        .saturating_add(1)
        .saturating_mul(512);
    if kernel_offset > len {
        return Err(BootError::SetupTruncated {
            setup_len: kernel_offset,
            len,
        });
    }
    let loadflags = u8_at(image, OFF_LOADFLAGS);
    if loadflags & LOADED_HIGH == 0 {
        return Err(BootError::NotLoadedHigh { loadflags });
    }
    let xloadflags = u16_at(image, OFF_XLOADFLAGS);
    if xloadflags & XLF_KERNEL_64 == 0 {
        return Err(BootError::No64BitEntry { xloadflags });
    }
    let kernel_len = len.saturating_sub(kernel_offset);
    let syssize = u32_at(image, OFF_SYSSIZE);
    if syssize == 0 {
        return Err(BootError::EmptyKernel);
    }
    let syssize_bytes = u64::from(syssize).saturating_mul(16);
    let available = u64::try_from(kernel_len).unwrap_or(u64::MAX);
    if syssize_bytes > available {
        return Err(BootError::KernelTruncated {
            syssize_bytes,
            available,
        });
    }
    if available <= ENTRY_64_OFFSET {
        return Err(BootError::KernelTooSmallForEntry { kernel_len });
    }
    let init_size = u32_at(image, OFF_INIT_SIZE);
    if u64::from(init_size) < available {
        return Err(BootError::KernelLargerThanInitSize {
            kernel_len,
            init_size,
        });
    }
    let relocatable = u8_at(image, OFF_RELOCATABLE) != 0;
    let kernel_alignment = u32_at(image, OFF_KERNEL_ALIGNMENT);
    if relocatable && !kernel_alignment.is_power_of_two() {
        return Err(BootError::BadKernelAlignment(kernel_alignment));
    }
    let min_alignment = u8_at(image, OFF_MIN_ALIGNMENT);
    let pref_address = u64_at(image, OFF_PREF_ADDRESS);
    let payload_offset = u32_at(image, OFF_PAYLOAD_OFFSET);
    let payload_length = u32_at(image, OFF_PAYLOAD_LENGTH);
    let payload_format = payload_range(kernel_offset, kernel_len, payload_offset, payload_length)
        .and_then(|r| image.get(r))
        .map_or(PayloadFormat::Unknown, PayloadFormat::detect);

    Ok(KernelInfo {
        protocol,
        setup_sects,
        kernel_offset,
        kernel_len,
        syssize_bytes,
        header_end,
        loadflags,
        xloadflags,
        relocatable,
        kernel_alignment,
        min_alignment,
        pref_address,
        init_size,
        cmdline_size: u32_at(image, OFF_CMDLINE_SIZE),
        initrd_addr_max: u32_at(image, OFF_INITRD_ADDR_MAX),
        payload_offset,
        payload_length,
        payload_format,
    })
}

/// File range of the payload, if it lies inside the protected-mode kernel.
pub(crate) fn payload_range(
    kernel_offset: usize,
    kernel_len: usize,
    payload_offset: u32,
    payload_length: u32,
) -> Option<core::ops::Range<usize>> {
    let off = usize::try_from(payload_offset).ok()?;
    let n = usize::try_from(payload_length).ok()?;
    let end_in_kernel = off.checked_add(n)?;
    if n == 0 || end_in_kernel > kernel_len {
        return None;
    }
    let start = kernel_offset.checked_add(off)?;
    Some(start..start.checked_add(n)?)
}
