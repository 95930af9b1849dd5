//! Guest page-table walks: linear to guest-physical translation with the
//! CPU's permission checks and page-fault error codes.
//!
//! [`translate`] walks the tables the way the CPU does (Intel SDM vol. 3,
//! chapter 4) for the paging mode that CR0.PG, CR4.PAE, EFER.LMA and
//! CR4.LA57 select. It only reads guest memory: accessed and dirty bits
//! are not set (the hardware walk that led to the exit already set them).
//! Protection keys (CR4.PKE/PKS) are not checked.

use core::fmt;

use crate::mem::{GuestMemory, MemError};

/// CR0.PE: protected mode.
pub const CR0_PE: u64 = 1 << 0;
/// CR0.WP: supervisor writes honor read-only pages.
pub const CR0_WP: u64 = 1 << 16;
/// CR0.PG: paging.
pub const CR0_PG: u64 = 1 << 31;
/// CR4.PSE: 4 MiB pages in 32-bit paging.
pub const CR4_PSE: u64 = 1 << 4;
/// CR4.PAE: 64-bit page-table entries.
pub const CR4_PAE: u64 = 1 << 5;
/// CR4.LA57: 5-level paging in long mode.
pub const CR4_LA57: u64 = 1 << 12;
/// CR4.SMEP: supervisor-mode execution prevention.
pub const CR4_SMEP: u64 = 1 << 20;
/// CR4.SMAP: supervisor-mode access prevention.
pub const CR4_SMAP: u64 = 1 << 21;
/// EFER.LMA: long mode active.
pub const EFER_LMA: u64 = 1 << 10;
/// EFER.NXE: the execute-disable bit is enabled.
pub const EFER_NXE: u64 = 1 << 11;

/// Page-fault error code: the page was present (a protection or
/// reserved-bit fault) rather than not present.
pub const PF_PRESENT: u32 = 1 << 0;
/// Page-fault error code: the access was a write.
pub const PF_WRITE: u32 = 1 << 1;
/// Page-fault error code: the access was made at CPL 3.
pub const PF_USER: u32 = 1 << 2;
/// Page-fault error code: a reserved bit was set in a paging entry.
pub const PF_RSVD: u32 = 1 << 3;
/// Page-fault error code: an instruction fetch (reported only with SMEP,
/// or with PAE-format entries and EFER.NXE).
pub const PF_FETCH: u32 = 1 << 4;

const P: u64 = 1 << 0;
const RW: u64 = 1 << 1;
const US: u64 = 1 << 2;
const PS: u64 = 1 << 7;
const NX: u64 = 1 << 63;

/// The smallest page, and the granule of the emulator's address checks.
pub const PAGE_SIZE: u64 = 4096;

/// How linear addresses map to guest-physical ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PagingMode {
    /// CR0.PG clear: linear addresses (32 bits) are physical.
    None,
    /// 32-bit paging: two levels of 4-byte entries, 4 MiB pages with CR4.PSE.
    Bits32,
    /// PAE paging: four PDPTEs, then two levels of 8-byte entries.
    Pae,
    /// 4-level paging (long mode): 48-bit linear addresses.
    Level4,
    /// 5-level paging (long mode with CR4.LA57): 57-bit linear addresses.
    Level5,
}

impl PagingMode {
    /// The mode selected by CR0.PG, CR4.PAE, EFER.LMA and CR4.LA57.
    pub const fn from_regs(cr0: u64, cr4: u64, efer: u64) -> PagingMode {
        if cr0 & CR0_PG == 0 {
            PagingMode::None
        } else if cr4 & CR4_PAE == 0 {
            PagingMode::Bits32
        } else if efer & EFER_LMA == 0 {
            PagingMode::Pae
        } else if cr4 & CR4_LA57 == 0 {
            PagingMode::Level4
        } else {
            PagingMode::Level5
        }
    }
}

/// The paging state of a vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Paging {
    /// CR0 (PG and WP matter).
    pub cr0: u64,
    /// CR3: the root table's address.
    pub cr3: u64,
    /// CR4 (PSE, PAE, LA57, SMEP and SMAP matter).
    pub cr4: u64,
    /// IA32_EFER (LMA and NXE matter).
    pub efer: u64,
    /// The guest's MAXPHYADDR (CPUID 0x80000008 EAX bits 7:0), clamped to
    /// 32..=52. Entry bits at and above it are reserved.
    pub max_phys_bits: u8,
    /// PAE paging only: the four PDPTEs the CPU loaded with CR3 (the VMCS
    /// guest PDPTE fields, with EPT). `None` reads them from memory at CR3.
    pub pdptes: Option<[u64; 4]>,
}

impl Paging {
    /// Paging state with `max_phys_bits` 52 and PDPTEs read from memory.
    pub const fn new(cr0: u64, cr3: u64, cr4: u64, efer: u64) -> Paging {
        Paging {
            cr0,
            cr3,
            cr4,
            efer,
            max_phys_bits: 52,
            pdptes: None,
        }
    }

    /// The paging mode these registers select.
    pub const fn mode(&self) -> PagingMode {
        PagingMode::from_regs(self.cr0, self.cr4, self.efer)
    }

    fn maxphy(&self) -> u32 {
        u32::from(self.max_phys_bits.clamp(32, 52))
    }
}

/// What an access does with the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessKind {
    /// A data read.
    Read,
    /// A data write (read-modify-write accesses are checked as writes).
    Write,
    /// An instruction fetch.
    Execute,
}

/// An access to check against the page tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Access {
    /// Read, write or fetch.
    pub kind: AccessKind,
    /// Made at CPL 3 (a user-mode access).
    pub user: bool,
    /// RFLAGS.AC, which lets supervisor data accesses reach user pages
    /// under SMAP.
    pub ac: bool,
}

/// A page fault to inject: CR2 and the error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PageFault {
    /// The faulting linear address (the guest's CR2).
    pub address: u64,
    /// The error code pushed with #PF (`PF_*` bits).
    pub error_code: u32,
}

/// Why a linear address did not translate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// The CPU would raise #PF.
    PageFault(PageFault),
    /// The address is not canonical for the paging mode: the CPU would raise
    /// #GP(0) (#SS(0) for a stack access).
    NonCanonical {
        /// The address.
        address: u64,
    },
    /// A paging-structure entry lies outside guest RAM.
    Memory(MemError),
}

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalkError::PageFault(pf) => write!(
                f,
                "page fault at {:#x}, error code {:#x}",
                pf.address, pf.error_code
            ),
            WalkError::NonCanonical { address } => {
                write!(f, "non-canonical linear address {address:#x}")
            }
            WalkError::Memory(e) => e.fmt(f),
        }
    }
}

impl From<MemError> for WalkError {
    fn from(e: MemError) -> Self {
        WalkError::Memory(e)
    }
}

/// A successful translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Translation {
    /// The guest-physical address.
    pub gpa: u64,
    /// The size of the page that maps it (4 KiB, 2 MiB, 4 MiB or 1 GiB;
    /// 4 KiB without paging).
    pub page_size: u64,
}

/// Rights accumulated over the levels of a walk.
struct Rights {
    writable: bool,
    user: bool,
    no_exec: bool,
}

/// Bits `hi..=lo` set (`lo <= hi < 64`).
const fn bits(hi: u32, lo: u32) -> u64 {
    (u64::MAX >> 63u32.wrapping_sub(hi)) & (u64::MAX << lo)
}

fn read_u64<M: GuestMemory + ?Sized>(mem: &M, gpa: u64) -> Result<u64, MemError> {
    let mut b = [0u8; 8];
    mem.read(gpa, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn read_u32<M: GuestMemory + ?Sized>(mem: &M, gpa: u64) -> Result<u64, MemError> {
    let mut b = [0u8; 4];
    mem.read(gpa, &mut b)?;
    Ok(u64::from(u32::from_le_bytes(b)))
}

/// Translates `linear` for `access` under `paging`, reading paging
/// structures from `mem`.
///
/// Without paging the address is truncated to 32 bits. With 32-bit and PAE
/// paging only its low 32 bits are used. With 4- and 5-level paging it must
/// be canonical.
pub fn translate<M: GuestMemory + ?Sized>(
    mem: &M,
    paging: &Paging,
    linear: u64,
    access: Access,
) -> Result<Translation, WalkError> {
    let mode = paging.mode();
    let m = paging.maxphy();
    let nxe = paging.efer & EFER_NXE != 0;
    let pae_format = paging.cr4 & CR4_PAE != 0;

    let fetch = access.kind == AccessKind::Execute;
    let mut code = 0;
    if access.kind == AccessKind::Write {
        code |= PF_WRITE;
    }
    if access.user {
        code |= PF_USER;
    }
    if fetch && (paging.cr4 & CR4_SMEP != 0 || (pae_format && nxe)) {
        code |= PF_FETCH;
    }
    let not_present = |addr: u64| {
        WalkError::PageFault(PageFault {
            address: addr,
            error_code: code,
        })
    };
    let reserved = |addr: u64| {
        WalkError::PageFault(PageFault {
            address: addr,
            error_code: code | PF_PRESENT | PF_RSVD,
        })
    };

    // Physical-address bits of an 8-byte entry: 51:12, less those at and
    // above MAXPHYADDR (which are reserved).
    let above_maxphy = bits(51, m);
    let addr_bits = bits(m.saturating_sub(1), 12);
    let nx_reserved = if nxe { 0 } else { NX };

    let mut rights = Rights {
        writable: true,
        user: true,
        no_exec: false,
    };
    let mut take = |entry: u64| {
        rights.writable &= entry & RW != 0;
        rights.user &= entry & US != 0;
        rights.no_exec |= nxe && entry & NX != 0;
    };

    let (gpa, page_size) = match mode {
        PagingMode::None => {
            return Ok(Translation {
                gpa: linear & 0xFFFF_FFFF,
                page_size: PAGE_SIZE,
            })
        }
        PagingMode::Bits32 => {
            let la = linear & 0xFFFF_FFFF;
            let pde_addr = (paging.cr3 & 0xFFFF_F000) | ((la >> 22) << 2);
            let pde = read_u32(mem, pde_addr)?;
            if pde & P == 0 {
                return Err(not_present(la));
            }
            take(pde);
            if pde & PS != 0 && paging.cr4 & CR4_PSE != 0 {
                // 4 MiB page: PDE bits 20:13 are physical bits 39:32; bit 21
                // and the bits for physical bits at or above MAXPHYADDR are
                // reserved.
                let high_ok = m.min(40).saturating_sub(32);
                let rsvd = bits(21, high_ok.saturating_add(13));
                if pde & rsvd != 0 {
                    return Err(reserved(la));
                }
                let base = (pde & 0xFFC0_0000) | (((pde >> 13) & 0xFF) << 32);
                (base | (la & 0x3F_FFFF), 0x40_0000)
            } else {
                let pte_addr = (pde & 0xFFFF_F000) | (((la >> 12) & 0x3FF) << 2);
                let pte = read_u32(mem, pte_addr)?;
                if pte & P == 0 {
                    return Err(not_present(la));
                }
                take(pte);
                ((pte & 0xFFFF_F000) | (la & 0xFFF), PAGE_SIZE)
            }
        }
        PagingMode::Pae => {
            let la = linear & 0xFFFF_FFFF;
            let index = (la >> 30) & 3;
            let pdpte = match paging.pdptes {
                Some(p) => match index {
                    0 => p[0],
                    1 => p[1],
                    2 => p[2],
                    _ => p[3],
                },
                None => read_u64(mem, (paging.cr3 & 0xFFFF_FFE0) | (index << 3))?,
            };
            if pdpte & P == 0 {
                return Err(not_present(la));
            }
            // PDPTEs have no access-rights bits; bits 2:1, 8:5 and 63:M are
            // reserved.
            if pdpte & (bits(2, 1) | bits(8, 5) | bits(63, m)) != 0 {
                return Err(reserved(la));
            }
            // The page directory (shift 21), then the page table (12).
            let mut table = pdpte & addr_bits;
            let mut found = None;
            for shift in [21u32, 12] {
                let entry = read_u64(mem, table | (((la >> shift) & 0x1FF) << 3))?;
                if entry & P == 0 {
                    return Err(not_present(la));
                }
                let leaf = shift == 12 || entry & PS != 0;
                let mut rsvd = bits(62, m) | nx_reserved;
                if leaf && shift == 21 {
                    rsvd |= bits(20, 13);
                }
                if entry & rsvd != 0 {
                    return Err(reserved(la));
                }
                take(entry);
                if leaf {
                    let offset = !(u64::MAX << shift);
                    found = Some(((entry & addr_bits & !offset) | (la & offset), 1u64 << shift));
                    break;
                }
                table = entry & addr_bits;
            }
            // The loop always ends at a leaf: the last level is one.
            found.unwrap_or((0, PAGE_SIZE))
        }
        PagingMode::Level4 | PagingMode::Level5 => {
            // Bit 47 (56 with LA57) and all above it must be equal.
            let (sign_bit, shifts) = if mode == PagingMode::Level5 {
                (56u32, &[48u32, 39, 30, 21, 12][..])
            } else {
                (47, &[39u32, 30, 21, 12][..])
            };
            let upper = linear >> sign_bit;
            if upper != 0 && upper != (u64::MAX >> sign_bit) {
                return Err(WalkError::NonCanonical { address: linear });
            }
            let mut table = paging.cr3 & addr_bits;
            let mut found = None;
            for &shift in shifts {
                let entry = read_u64(mem, table | (((linear >> shift) & 0x1FF) << 3))?;
                if entry & P == 0 {
                    return Err(not_present(linear));
                }
                let ps = entry & PS != 0;
                let mut rsvd = above_maxphy | nx_reserved;
                let leaf = match shift {
                    12 => true,
                    // PDEs map 2 MiB pages with PS; bits 20:13 are reserved.
                    21 if ps => {
                        rsvd |= bits(20, 13);
                        true
                    }
                    // PDPTEs map 1 GiB pages with PS; bits 29:13 reserved.
                    30 if ps => {
                        rsvd |= bits(29, 13);
                        true
                    }
                    21 | 30 => false,
                    // PS is reserved in PML4Es and PML5Es.
                    _ => {
                        rsvd |= PS;
                        false
                    }
                };
                if entry & rsvd != 0 {
                    return Err(reserved(linear));
                }
                take(entry);
                if leaf {
                    let offset = !(u64::MAX << shift);
                    found = Some((
                        (entry & addr_bits & !offset) | (linear & offset),
                        1u64 << shift,
                    ));
                    break;
                }
                table = entry & addr_bits;
            }
            // The loop always ends at a leaf: the last level is one.
            found.unwrap_or((0, PAGE_SIZE))
        }
    };

    let la = if matches!(mode, PagingMode::Bits32 | PagingMode::Pae) {
        linear & 0xFFFF_FFFF
    } else {
        linear
    };
    let smep = paging.cr4 & CR4_SMEP != 0;
    let smap = paging.cr4 & CR4_SMAP != 0;
    let wp = paging.cr0 & CR0_WP != 0;
    let allowed = match (access.kind, access.user) {
        (AccessKind::Execute, true) => rights.user && !rights.no_exec,
        (AccessKind::Execute, false) => !(rights.no_exec || smep && rights.user),
        (AccessKind::Read, true) => rights.user,
        (AccessKind::Read, false) => !(smap && rights.user && !access.ac),
        (AccessKind::Write, true) => rights.user && rights.writable,
        (AccessKind::Write, false) => {
            let smap_blocks = smap && rights.user && !access.ac;
            let wp_blocks = wp && !rights.writable;
            !(smap_blocks || wp_blocks)
        }
    };
    if !allowed {
        return Err(WalkError::PageFault(PageFault {
            address: la,
            error_code: code | PF_PRESENT,
        }));
    }
    Ok(Translation { gpa, page_size })
}
