//! Page-walk unit tests: each paging mode, page size and permission rule.

use super::support::Ram;
use crate::paging::*;
use crate::*;

const R: Access = Access {
    kind: AccessKind::Read,
    user: false,
    ac: false,
};
const W: Access = Access {
    kind: AccessKind::Write,
    user: false,
    ac: false,
};
const X: Access = Access {
    kind: AccessKind::Execute,
    user: false,
    ac: false,
};
const UR: Access = Access {
    kind: AccessKind::Read,
    user: true,
    ac: false,
};
const UW: Access = Access {
    kind: AccessKind::Write,
    user: true,
    ac: false,
};
const UX: Access = Access {
    kind: AccessKind::Execute,
    user: true,
    ac: false,
};

const P: u64 = 1;
const RW: u64 = 2;
const US: u64 = 4;
const PS: u64 = 0x80;
const NX: u64 = 1 << 63;

fn long_mode(cr3: u64) -> Paging {
    Paging::new(CR0_PE | CR0_PG | CR0_WP, cr3, CR4_PAE, EFER_LMA | EFER_NXE)
}

fn pf(address: u64, error_code: u32) -> Result<Translation, WalkError> {
    Err(WalkError::PageFault(PageFault {
        address,
        error_code,
    }))
}

fn ok(gpa: u64, page_size: u64) -> Result<Translation, WalkError> {
    Ok(Translation { gpa, page_size })
}

/// 4-level tables: PML4 0x1000, PDPT 0x2000, PD 0x3000, PT 0x4000,
/// mapping linear 0x4000_0000_0000 + ... (PML4 index 128).
fn four_level(pte: u64, pde: u64, pdpte: u64, pml4e: u64) -> Ram {
    let mut ram = Ram::new(0x10_0000);
    ram.write_u64(0x1000 + 128 * 8, pml4e);
    ram.write_u64(0x2000 + 8, pdpte); // PDPT index 1
    ram.write_u64(0x3000 + 2 * 8, pde); // PD index 2
    ram.write_u64(0x4000 + 3 * 8, pte); // PT index 3
    ram
}

/// The linear address for PML4 128, PDPT 1, PD 2, PT 3, offset 0x123.
const LA: u64 = (128 << 39) | (1 << 30) | (2 << 21) | (3 << 12) | 0x123;

#[test]
fn no_paging_is_identity_truncated_to_32_bits() {
    let ram = Ram::new(0);
    let p = Paging::new(CR0_PE, 0, 0, 0);
    assert_eq!(p.mode(), PagingMode::None);
    assert_eq!(
        translate(&ram, &p, 0x1_FEE0_0020, UW),
        ok(0xFEE0_0020, 4096)
    );
}

#[test]
fn mode_selection() {
    assert_eq!(PagingMode::from_regs(CR0_PG, 0, 0), PagingMode::Bits32);
    assert_eq!(PagingMode::from_regs(CR0_PG, CR4_PAE, 0), PagingMode::Pae);
    assert_eq!(
        PagingMode::from_regs(CR0_PG, CR4_PAE, EFER_LMA),
        PagingMode::Level4
    );
    assert_eq!(
        PagingMode::from_regs(CR0_PG, CR4_PAE | CR4_LA57, EFER_LMA),
        PagingMode::Level5
    );
}

#[test]
fn four_level_4k_page() {
    let ram = four_level(
        0xABCD_E000 | P | RW | US,
        0x4000 | P | RW | US,
        0x3000 | P | RW | US,
        0x2000 | P | RW | US,
    );
    let p = long_mode(0x1000);
    for a in [R, W, X, UR, UW, UX] {
        assert_eq!(translate(&ram, &p, LA, a), ok(0xABCD_E123, 4096));
    }
}

#[test]
fn four_level_large_pages() {
    // 2 MiB page at PD level.
    let ram = four_level(
        0,
        0x4060_0000 | P | RW | PS,
        0x3000 | P | RW,
        0x2000 | P | RW,
    );
    let p = long_mode(0x1000);
    assert_eq!(
        translate(&ram, &p, LA, W),
        ok(0x4060_0000 | (3 << 12) | 0x123, 0x20_0000)
    );
    // 1 GiB page at PDPT level.
    let ram = four_level(0, 0, 0x8000_0000 | P | RW | PS, 0x2000 | P | RW);
    assert_eq!(
        translate(&ram, &p, LA, W),
        ok(0x8000_0000 | (2 << 21) | (3 << 12) | 0x123, 0x4000_0000)
    );
    // Reserved bits in a large page's address field.
    let ram = four_level(0, 0x4060_0000 | (1 << 13) | P | PS, 0x3000 | P, 0x2000 | P);
    assert_eq!(translate(&ram, &p, LA, R), pf(LA, PF_PRESENT | PF_RSVD));
    let ram = four_level(0, 0, 0x8000_0000 | (1 << 29) | P | PS, 0x2000 | P);
    assert_eq!(translate(&ram, &p, LA, R), pf(LA, PF_PRESENT | PF_RSVD));
    // PS is reserved in a PML4E.
    let ram = four_level(0, 0, 0, 0x2000 | P | PS);
    assert_eq!(translate(&ram, &p, LA, R), pf(LA, PF_PRESENT | PF_RSVD));
}

#[test]
fn not_present_at_each_level() {
    let p = long_mode(0x1000);
    let full = [
        0x5000 | P | RW | US,
        0x4000 | P | RW | US,
        0x3000 | P | RW | US,
        0x2000 | P | RW | US,
    ];
    for level in 0..4 {
        let mut e = full;
        e[level] &= !P;
        let ram = four_level(e[0], e[1], e[2], e[3]);
        assert_eq!(translate(&ram, &p, LA, R), pf(LA, 0), "level {level}");
        assert_eq!(translate(&ram, &p, LA, UW), pf(LA, PF_WRITE | PF_USER));
        assert_eq!(translate(&ram, &p, LA, X), pf(LA, PF_FETCH));
    }
}

#[test]
fn write_protection() {
    let ram = four_level(
        0x5000 | P | US,
        0x4000 | P | RW | US,
        0x3000 | P | RW | US,
        0x2000 | P | RW | US,
    );
    let mut p = long_mode(0x1000);
    assert_eq!(translate(&ram, &p, LA, R), ok(0x5123, 4096));
    assert_eq!(translate(&ram, &p, LA, W), pf(LA, PF_PRESENT | PF_WRITE));
    assert_eq!(
        translate(&ram, &p, LA, UW),
        pf(LA, PF_PRESENT | PF_WRITE | PF_USER)
    );
    // CR0.WP clear: supervisor writes ignore R/W, user writes do not.
    p.cr0 &= !CR0_WP;
    assert_eq!(translate(&ram, &p, LA, W), ok(0x5123, 4096));
    assert_eq!(
        translate(&ram, &p, LA, UW),
        pf(LA, PF_PRESENT | PF_WRITE | PF_USER)
    );
    // R/W clear at a higher level counts too.
    let ram = four_level(
        0x5000 | P | RW,
        0x4000 | P | RW,
        0x3000 | P,
        0x2000 | P | RW,
    );
    p.cr0 |= CR0_WP;
    assert_eq!(translate(&ram, &p, LA, W), pf(LA, PF_PRESENT | PF_WRITE));
}

#[test]
fn user_supervisor() {
    // U/S clear in the PDE only.
    let ram = four_level(
        0x5000 | P | RW | US,
        0x4000 | P | RW,
        0x3000 | P | RW | US,
        0x2000 | P | RW | US,
    );
    let p = long_mode(0x1000);
    assert_eq!(translate(&ram, &p, LA, R), ok(0x5123, 4096));
    assert_eq!(translate(&ram, &p, LA, UR), pf(LA, PF_PRESENT | PF_USER));
    assert_eq!(
        translate(&ram, &p, LA, UX),
        pf(LA, PF_PRESENT | PF_USER | PF_FETCH)
    );
}

#[test]
fn execute_disable() {
    let ram = four_level(
        0x5000 | P | RW | US | NX,
        0x4000 | P | RW | US,
        0x3000 | P | RW | US,
        0x2000 | P | RW | US,
    );
    let mut p = long_mode(0x1000);
    assert_eq!(translate(&ram, &p, LA, R), ok(0x5123, 4096));
    assert_eq!(translate(&ram, &p, LA, X), pf(LA, PF_PRESENT | PF_FETCH));
    assert_eq!(
        translate(&ram, &p, LA, UX),
        pf(LA, PF_PRESENT | PF_USER | PF_FETCH)
    );
    // Without EFER.NXE, bit 63 is reserved.
    p.efer &= !EFER_NXE;
    assert_eq!(translate(&ram, &p, LA, R), pf(LA, PF_PRESENT | PF_RSVD));
    // ... and a fetch fault has no I/D bit (no SMEP, no NXE).
    assert_eq!(translate(&ram, &p, LA, X), pf(LA, PF_PRESENT | PF_RSVD));
}

#[test]
fn smep_and_smap() {
    let ram = four_level(
        0x5000 | P | RW | US,
        0x4000 | P | RW | US,
        0x3000 | P | RW | US,
        0x2000 | P | RW | US,
    );
    let mut p = long_mode(0x1000);
    p.cr4 |= CR4_SMEP | CR4_SMAP;
    assert_eq!(translate(&ram, &p, LA, X), pf(LA, PF_PRESENT | PF_FETCH));
    assert_eq!(translate(&ram, &p, LA, R), pf(LA, PF_PRESENT));
    assert_eq!(translate(&ram, &p, LA, W), pf(LA, PF_PRESENT | PF_WRITE));
    let ac = |a: Access| Access { ac: true, ..a };
    assert_eq!(translate(&ram, &p, LA, ac(R)), ok(0x5123, 4096));
    assert_eq!(translate(&ram, &p, LA, ac(W)), ok(0x5123, 4096));
    // AC does not lift SMEP.
    assert_eq!(
        translate(&ram, &p, LA, ac(X)),
        pf(LA, PF_PRESENT | PF_FETCH)
    );
    // User accesses are unaffected.
    assert_eq!(translate(&ram, &p, LA, UW), ok(0x5123, 4096));
}

#[test]
fn reserved_physical_address_bits() {
    let ram = four_level((1 << 40) | 0x5000 | P, 0x4000 | P, 0x3000 | P, 0x2000 | P);
    let mut p = long_mode(0x1000);
    assert_eq!(translate(&ram, &p, LA, R), ok((1 << 40) | 0x5123, 4096));
    p.max_phys_bits = 40;
    assert_eq!(translate(&ram, &p, LA, R), pf(LA, PF_PRESENT | PF_RSVD));
    // Bits 62:52 are ignored.
    let ram = four_level(
        (0x7FF << 52) | 0x5000 | P,
        0x4000 | P,
        0x3000 | P,
        0x2000 | P,
    );
    assert_eq!(translate(&ram, &p, LA, R), ok(0x5123, 4096));
}

#[test]
fn canonical_addresses() {
    let ram = Ram::new(0x10_0000);
    let p = long_mode(0x1000);
    assert_eq!(
        translate(&ram, &p, 0x0000_8000_0000_0000, R),
        Err(WalkError::NonCanonical {
            address: 0x0000_8000_0000_0000
        })
    );
    // Canonical upper half: not present in an empty PML4.
    assert_eq!(
        translate(&ram, &p, 0xFFFF_8000_0000_0000, R),
        pf(0xFFFF_8000_0000_0000, 0)
    );
    // With LA57 the same address is canonical, and bit 56 is the sign.
    let mut p5 = p;
    p5.cr4 |= CR4_LA57;
    assert_eq!(
        translate(&ram, &p5, 0x0000_8000_0000_0000, R),
        pf(0x0000_8000_0000_0000, 0)
    );
    assert!(matches!(
        translate(&ram, &p5, 0x0100_0000_0000_0000, R),
        Err(WalkError::NonCanonical { .. })
    ));
}

#[test]
fn five_level() {
    let mut ram = four_level(
        0x5000 | P | RW,
        0x4000 | P | RW,
        0x3000 | P | RW,
        0x2000 | P | RW,
    );
    // PML5 at 0x6000, index 3, pointing at the PML4 at 0x1000.
    ram.write_u64(0x6000 + 3 * 8, 0x1000 | P | RW);
    let mut p = long_mode(0x6000);
    p.cr4 |= CR4_LA57;
    assert_eq!(p.mode(), PagingMode::Level5);
    assert_eq!(translate(&ram, &p, (3 << 48) | LA, W), ok(0x5123, 4096));
    // PS is reserved in a PML5E.
    ram.write_u64(0x6000 + 3 * 8, 0x1000 | P | RW | PS);
    assert_eq!(
        translate(&ram, &p, (3 << 48) | LA, R),
        pf((3 << 48) | LA, PF_PRESENT | PF_RSVD)
    );
}

#[test]
fn thirty_two_bit_paging() {
    let mut ram = Ram::new(0x10_0000);
    // PD at 0x1000; PDE 0x3FB (linear 0xFEC00000) -> PT at 0x2000.
    ram.write_u32(0x1000 + 0x3FB * 4, 0x2000 | 0x7);
    ram.write_u32(0x2000 + 0x200 * 4, 0xFEE0_0000 | 0x3); // supervisor PTE
    let mut p = Paging::new(CR0_PE | CR0_PG | CR0_WP, 0x1000, 0, 0);
    assert_eq!(p.mode(), PagingMode::Bits32);
    assert_eq!(translate(&ram, &p, 0xFEE0_0020, W), ok(0xFEE0_0020, 4096));
    assert_eq!(
        translate(&ram, &p, 0xFEE0_0020, UR),
        pf(0xFEE0_0020, PF_PRESENT | PF_USER)
    );
    // The upper half of a 64-bit linear address is ignored.
    assert_eq!(
        translate(&ram, &p, 0xFFFF_FFFF_FEE0_0020, R),
        ok(0xFEE0_0020, 4096)
    );
    // 32-bit paging has no NX: no I/D bit without SMEP.
    assert_eq!(translate(&ram, &p, 0xFEE0_1000, X), pf(0xFEE0_1000, 0));
    p.cr4 |= CR4_SMEP;
    assert_eq!(
        translate(&ram, &p, 0xFEE0_1000, X),
        pf(0xFEE0_1000, PF_FETCH)
    );

    // A 4 MiB page needs CR4.PSE; without it PS is ignored.
    ram.write_u32(0x1000 + 4, 0x0080_0000 | 0x83);
    p.cr4 = CR4_PSE;
    assert_eq!(
        translate(&ram, &p, 0x0041_2345, R),
        ok(0x0081_2345, 0x40_0000)
    );
    p.cr4 = 0;
    // PS ignored: the PDE names a page table at 0x800000, outside RAM.
    assert_eq!(
        translate(&ram, &p, 0x0041_2345, R),
        Err(WalkError::Memory(MemError {
            gpa: 0x0080_0000 + 0x12 * 4,
            len: 4
        }))
    );
    // PSE-36: PDE bits 20:13 are physical bits 39:32.
    p.cr4 = CR4_PSE;
    p.max_phys_bits = 36;
    ram.write_u32(0x1000 + 2 * 4, 0x0080_0000 | (0xF << 13) | 0x83);
    assert_eq!(
        translate(&ram, &p, 0x0080_0001, R),
        ok(0xF_0080_0001, 0x40_0000)
    );
    // Bit 17 (physical bit 36) is reserved with MAXPHYADDR 36.
    ram.write_u32(0x1000 + 2 * 4, 0x0080_0000 | (0x1F << 13) | 0x83);
    assert_eq!(
        translate(&ram, &p, 0x0080_0001, R),
        pf(0x0080_0001, PF_PRESENT | PF_RSVD)
    );
}

#[test]
fn pae_paging() {
    let mut ram = Ram::new(0x10_0000);
    // PDPT at 0x1020 (32-byte aligned); PDPTE 3 -> PD 0x2000.
    ram.write_u64(0x1020 + 3 * 8, 0x2000 | P);
    // PD index 0x1F7 (0xFEE00000) -> PT 0x3000; PTE 0 -> 0xFEE00000.
    ram.write_u64(0x2000 + 0x1F7 * 8, 0x3000 | P | RW);
    ram.write_u64(0x3000, 0xFEE0_0000 | P | RW | NX);
    // PD index 0 -> a 2 MiB page.
    ram.write_u64(0x2000, 0x0020_0000 | P | PS);
    let mut p = Paging::new(CR0_PE | CR0_PG, 0x1020, CR4_PAE, EFER_NXE);
    assert_eq!(p.mode(), PagingMode::Pae);
    assert_eq!(translate(&ram, &p, 0xFEE0_0020, W), ok(0xFEE0_0020, 4096));
    assert_eq!(
        translate(&ram, &p, 0xFEE0_0020, X),
        pf(0xFEE0_0020, PF_PRESENT | PF_FETCH)
    );
    assert_eq!(
        translate(&ram, &p, 0xC001_2345, R),
        ok(0x0021_2345, 0x20_0000)
    );
    // PDPTE 0 not present.
    assert_eq!(translate(&ram, &p, 0x1000, R), pf(0x1000, 0));
    // PDPTEs supplied by the VMCS win over memory.
    p.pdptes = Some([0x2000 | P, 0, 0, 0]);
    assert_eq!(
        translate(&ram, &p, 0x0001_2345, R),
        ok(0x0021_2345, 0x20_0000)
    );
    assert_eq!(translate(&ram, &p, 0xFEE0_0020, R), pf(0xFEE0_0020, 0));
    // Reserved bits in a PDPTE (bit 1).
    p.pdptes = Some([0x2000 | P | RW, 0, 0, 0]);
    assert_eq!(
        translate(&ram, &p, 0x1000, R),
        pf(0x1000, PF_PRESENT | PF_RSVD)
    );
}

#[test]
fn tables_outside_ram() {
    let ram = four_level(0, 0, 0, 0x9000_0000 | P);
    let p = long_mode(0x1000);
    assert_eq!(
        translate(&ram, &p, LA, R),
        Err(WalkError::Memory(MemError {
            gpa: 0x9000_0000 + 8,
            len: 8
        }))
    );
}
