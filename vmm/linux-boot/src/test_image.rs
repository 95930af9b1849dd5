//! Synthetic bzImages for tests: a setup header with Debian-like values and
//! a recognisable protected-mode kernel.

/// The real Debian kernel, if installed (`/boot/vmlinuz-*`): path and bytes.
pub fn debian_kernel() -> Option<(std::path::PathBuf, Vec<u8>)> {
    let mut paths: Vec<_> = std::fs::read_dir("/boot")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .collect();
    paths.sort();
    let path = paths.pop()?;
    let bytes = std::fs::read(&path).ok()?;
    Some((path, bytes))
}

/// A bzImage description; [`Image::build`] encodes it.
#[derive(Clone, Debug)]
pub struct Image {
    pub setup_sects: u8,
    pub version: u16,
    pub jump_len: u8,
    pub loadflags: u8,
    pub xloadflags: u16,
    pub kernel_len: usize,
    /// `None`: derived from `kernel_len`.
    pub syssize: Option<u32>,
    pub init_size: u32,
    pub kernel_alignment: u32,
    pub relocatable: bool,
    pub min_alignment: u8,
    pub pref_address: u64,
    pub cmdline_size: u32,
    pub initrd_addr_max: u32,
    pub payload: Vec<u8>,
}

impl Default for Image {
    fn default() -> Self {
        Image {
            setup_sects: 4,
            version: 0x020f,
            jump_len: 0x6a,
            loadflags: 0x01,
            xloadflags: 0x7f,
            kernel_len: 0x3000,
            syssize: None,
            init_size: 0x10_0000,
            kernel_alignment: 0x20_0000,
            relocatable: true,
            min_alignment: 0x15,
            pref_address: 0x100_0000,
            cmdline_size: 0x7ff,
            initrd_addr_max: 0x7fff_ffff,
            payload: vec![0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1, 2, 3],
        }
    }
}

/// Byte `i` of the synthetic protected-mode kernel.
pub fn kernel_byte(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 8)) as u8
}

/// Offset of the payload inside the synthetic protected-mode kernel.
pub const PAYLOAD_OFFSET: usize = 0x400;

impl Image {
    pub fn build(&self) -> Vec<u8> {
        let sects = if self.setup_sects == 0 {
            4
        } else {
            self.setup_sects
        };
        let setup_len = (usize::from(sects) + 1) * 512;
        let mut v = vec![0u8; setup_len + self.kernel_len];
        v[0] = b'M';
        v[1] = b'Z';
        v[0x1f1] = self.setup_sects;
        // Derived: syssize * 16 stays within the file.
        let syssize = self.syssize.unwrap_or((self.kernel_len / 16) as u32);
        v[0x1f4..0x1f8].copy_from_slice(&syssize.to_le_bytes());
        v[0x1fa..0x1fc].copy_from_slice(&0xffffu16.to_le_bytes());
        v[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
        v[0x200] = 0xeb;
        v[0x201] = self.jump_len;
        v[0x202..0x206].copy_from_slice(b"HdrS");
        v[0x206..0x208].copy_from_slice(&self.version.to_le_bytes());
        v[0x211] = self.loadflags;
        v[0x214..0x218].copy_from_slice(&0x10_0000u32.to_le_bytes());
        v[0x224..0x226].copy_from_slice(&0x5be0u16.to_le_bytes());
        v[0x22c..0x230].copy_from_slice(&self.initrd_addr_max.to_le_bytes());
        v[0x230..0x234].copy_from_slice(&self.kernel_alignment.to_le_bytes());
        v[0x234] = u8::from(self.relocatable);
        v[0x235] = self.min_alignment;
        v[0x236..0x238].copy_from_slice(&self.xloadflags.to_le_bytes());
        v[0x238..0x23c].copy_from_slice(&self.cmdline_size.to_le_bytes());
        v[0x248..0x24c].copy_from_slice(&(PAYLOAD_OFFSET as u32).to_le_bytes());
        v[0x24c..0x250].copy_from_slice(&(self.payload.len() as u32).to_le_bytes());
        v[0x258..0x260].copy_from_slice(&self.pref_address.to_le_bytes());
        v[0x260..0x264].copy_from_slice(&self.init_size.to_le_bytes());
        // A marker the header copy must carry over: kernel_info_offset.
        v[0x268..0x26c].copy_from_slice(&0x1234_5678u32.to_le_bytes());
        // Something past the header end that must not be copied.
        v[0x26c] = 0xee;
        for i in 0..self.kernel_len {
            v[setup_len + i] = kernel_byte(i);
        }
        let p = setup_len + PAYLOAD_OFFSET;
        if p + self.payload.len() <= v.len() {
            v[p..p + self.payload.len()].copy_from_slice(&self.payload);
        }
        v
    }
}
