//! The vCPU's processor mode as the VMM manages it: CR0, CR4 and EFER, the
//! switch into long mode, and the initial state of a PVH boot.
//!
//! Policy:
//! * CR0.PG, CD, NW and NE are owned by the VMM (guest/host mask). The guest
//!   reads back what it wrote (the read shadow); the real CR0 always has NE set
//!   and caching enabled (CD = NW = 0) — a VM has no business disabling the
//!   host's caches, and this is what lets Linux's MTRR setup (which sets and
//!   later clears CD) run unmodified. Enabling paging with EFER.LME set turns
//!   on long mode (EFER.LMA and the "IA-32e mode guest" entry control).
//! * CR4.VMXE is owned by the VMM: the guest sees it clear and may not set it.
//!   CR4.PAE is intercepted too, so the VMM knows it when paging is enabled.
//! * EFER is kept in the VMCS ("load IA32_EFER" on entry); the guest writes it
//!   with WRMSR, which the VMM validates.

use crate::vmx::{cr0, cr4, efer, entry, field};

/// Maximum number of VMCS writes one exit can ask for.
pub const MAX_VMCS_WRITES: usize = 64;

/// VMCS fields the glue must write before the next VM entry, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmcsWrites {
    items: [(u32, u64); MAX_VMCS_WRITES],
    len: usize,
}

impl Default for VmcsWrites {
    fn default() -> Self {
        VmcsWrites {
            items: [(0, 0); MAX_VMCS_WRITES],
            len: 0,
        }
    }
}

impl VmcsWrites {
    /// Appends a write. Capacity is a compile-time property of the callers in
    /// this crate; exceeding it is a bug, reported by returning `false`.
    pub fn push(&mut self, field: u32, value: u64) -> bool {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = (field, value);
                self.len += 1;
                true
            }
            None => false,
        }
    }

    /// The writes, in order.
    pub fn as_slice(&self) -> &[(u32, u64)] {
        self.items.get(..self.len).unwrap_or(&[])
    }

    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value queued for `field`, if any (the last one wins).
    pub fn get(&self, field: u32) -> Option<u64> {
        self.as_slice()
            .iter()
            .rev()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| *v)
    }
}

/// CR0 bits the VMM intercepts.
pub const CR0_OWNED: u64 = cr0::PG | cr0::CD | cr0::NW | cr0::NE;
/// CR4 bits the VMM intercepts: VMXE (hidden from the guest) and PAE (which
/// decides whether enabling paging enters long mode).
pub const CR4_OWNED: u64 = cr4::VMXE | cr4::PAE;
/// EFER bits a guest may set.
pub const EFER_WRITABLE: u64 = efer::SCE | efer::LME | efer::NXE;

/// Why a control-register or EFER write is refused: the guest gets #GP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeError {
    /// Reserved bits set.
    Reserved,
    /// A combination the architecture forbids (PG without PE, NW without CD,
    /// long mode without PAE, ...).
    Invalid,
    /// A feature the VMM does not offer (VMX inside the guest).
    Unsupported,
}

/// The mode-related state of one vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mode {
    /// CR0 as the guest believes it is.
    pub cr0_shadow: u64,
    /// CR4 as the guest believes it is.
    pub cr4_shadow: u64,
    /// The guest's EFER (LMA included).
    pub efer: u64,
    /// The VM-entry controls the VMM last wrote.
    pub entry_controls: u32,
}

impl Mode {
    /// The state at a PVH entry: 32-bit protected mode, paging off.
    pub fn pvh() -> Self {
        Mode {
            cr0_shadow: cr0::PE | cr0::ET,
            cr4_shadow: 0,
            efer: 0,
            entry_controls: entry::LOAD_EFER | entry::LOAD_PAT | entry::LOAD_DEBUG_CONTROLS,
        }
    }

    /// The real CR0 for a guest-visible value.
    pub fn real_cr0(shadow: u64) -> u64 {
        (shadow & !(cr0::CD | cr0::NW)) | cr0::NE | cr0::ET
    }

    /// The real CR4 for a guest-visible value.
    pub fn real_cr4(shadow: u64) -> u64 {
        shadow | cr4::VMXE
    }

    /// The VMCS writes that establish the PVH entry state: flat 32-bit
    /// segments, paging off, `rip` = entry, the start-info address in RBX is
    /// the caller's job (it is a general-purpose register).
    pub fn pvh_entry_state(&self, entry_point: u64) -> VmcsWrites {
        let mut w = VmcsWrites::default();
        let code = 0xC09B; // G, D/B, present, DPL 0, code exec/read accessed
        let data = 0xC093; // G, D/B, present, DPL 0, data read/write accessed
        for (sel, base, limit, ar, value) in [
            (
                field::GUEST_CS_SELECTOR,
                field::GUEST_CS_BASE,
                field::GUEST_CS_LIMIT,
                field::GUEST_CS_ACCESS_RIGHTS,
                code,
            ),
            (
                field::GUEST_DS_SELECTOR,
                field::GUEST_DS_BASE,
                field::GUEST_DS_LIMIT,
                field::GUEST_DS_ACCESS_RIGHTS,
                data,
            ),
            (
                field::GUEST_ES_SELECTOR,
                field::GUEST_ES_BASE,
                field::GUEST_ES_LIMIT,
                field::GUEST_ES_ACCESS_RIGHTS,
                data,
            ),
            (
                field::GUEST_SS_SELECTOR,
                field::GUEST_SS_BASE,
                field::GUEST_SS_LIMIT,
                field::GUEST_SS_ACCESS_RIGHTS,
                data,
            ),
            (
                field::GUEST_FS_SELECTOR,
                field::GUEST_FS_BASE,
                field::GUEST_FS_LIMIT,
                field::GUEST_FS_ACCESS_RIGHTS,
                data,
            ),
            (
                field::GUEST_GS_SELECTOR,
                field::GUEST_GS_BASE,
                field::GUEST_GS_LIMIT,
                field::GUEST_GS_ACCESS_RIGHTS,
                data,
            ),
        ] {
            let selector = if value == code { 0x08 } else { 0x10 };
            w.push(sel, selector);
            w.push(base, 0);
            w.push(limit, 0xffff_ffff);
            w.push(ar, value);
        }
        // LDTR unusable; TR a busy 32-bit TSS, as VM entry requires.
        w.push(field::GUEST_LDTR_SELECTOR, 0);
        w.push(field::GUEST_LDTR_BASE, 0);
        w.push(field::GUEST_LDTR_LIMIT, 0);
        w.push(field::GUEST_LDTR_ACCESS_RIGHTS, 1 << 16);
        w.push(field::GUEST_TR_SELECTOR, 0);
        w.push(field::GUEST_TR_BASE, 0);
        w.push(field::GUEST_TR_LIMIT, 0x67);
        w.push(field::GUEST_TR_ACCESS_RIGHTS, 0x8B);
        w.push(field::GUEST_GDTR_BASE, 0);
        w.push(field::GUEST_GDTR_LIMIT, 0);
        w.push(field::GUEST_IDTR_BASE, 0);
        w.push(field::GUEST_IDTR_LIMIT, 0);
        w.push(field::GUEST_CR0, Self::real_cr0(self.cr0_shadow));
        w.push(field::CR0_READ_SHADOW, self.cr0_shadow);
        w.push(field::CR0_MASK, CR0_OWNED);
        w.push(field::GUEST_CR4, Self::real_cr4(self.cr4_shadow));
        w.push(field::CR4_READ_SHADOW, self.cr4_shadow);
        w.push(field::CR4_MASK, CR4_OWNED);
        w.push(field::GUEST_CR3, 0);
        w.push(field::GUEST_EFER, self.efer);
        w.push(field::GUEST_PAT, 0x0007_0406_0007_0406);
        w.push(field::GUEST_RFLAGS, 0x2);
        w.push(field::GUEST_RSP, 0);
        w.push(field::GUEST_RIP, entry_point);
        w.push(field::GUEST_INTERRUPTIBILITY, 0);
        w.push(field::GUEST_ACTIVITY, 0);
        w.push(field::ENTRY_CONTROLS, u64::from(self.entry_controls));
        w
    }

    /// A guest write of `value` to CR0. On success returns the VMCS writes
    /// that implement it.
    pub fn write_cr0(&mut self, value: u64) -> Result<VmcsWrites, ModeError> {
        if value >> 32 != 0 {
            return Err(ModeError::Reserved);
        }
        if value & cr0::PG != 0 && value & cr0::PE == 0 {
            return Err(ModeError::Invalid);
        }
        if value & cr0::NW != 0 && value & cr0::CD == 0 {
            return Err(ModeError::Invalid);
        }
        let was_paging = self.cr0_shadow & cr0::PG != 0;
        let paging = value & cr0::PG != 0;
        let mut efer = self.efer;
        let mut entry_controls = self.entry_controls;
        if paging && !was_paging && efer & efer::LME != 0 {
            if self.cr4_shadow & cr4::PAE == 0 {
                return Err(ModeError::Invalid);
            }
            efer |= efer::LMA;
            entry_controls |= entry::IA32E_MODE_GUEST;
        } else if !paging && was_paging && efer & efer::LMA != 0 {
            efer &= !efer::LMA;
            entry_controls &= !entry::IA32E_MODE_GUEST;
        }
        let mut w = VmcsWrites::default();
        w.push(field::GUEST_CR0, Self::real_cr0(value));
        w.push(field::CR0_READ_SHADOW, value);
        if efer != self.efer {
            w.push(field::GUEST_EFER, efer);
        }
        if entry_controls != self.entry_controls {
            w.push(field::ENTRY_CONTROLS, u64::from(entry_controls));
        }
        self.cr0_shadow = value;
        self.efer = efer;
        self.entry_controls = entry_controls;
        Ok(w)
    }

    /// A guest write of `value` to CR4.
    pub fn write_cr4(&mut self, value: u64) -> Result<VmcsWrites, ModeError> {
        if value & cr4::VMXE != 0 {
            return Err(ModeError::Unsupported);
        }
        // Bits above 24 are reserved on the processors this VMM targets.
        if value >> 25 != 0 {
            return Err(ModeError::Reserved);
        }
        if self.efer & efer::LMA != 0 && value & cr4::PAE == 0 {
            return Err(ModeError::Invalid);
        }
        let mut w = VmcsWrites::default();
        w.push(field::GUEST_CR4, Self::real_cr4(value));
        w.push(field::CR4_READ_SHADOW, value);
        self.cr4_shadow = value;
        Ok(w)
    }

    /// A guest WRMSR to IA32_EFER.
    pub fn write_efer(&mut self, value: u64) -> Result<VmcsWrites, ModeError> {
        // LMA is read-only: writes must leave it as it is.
        let requested = value & !efer::LMA;
        if requested & !EFER_WRITABLE != 0 || (value ^ self.efer) & efer::LMA != 0 {
            return Err(ModeError::Reserved);
        }
        let paging = self.cr0_shadow & cr0::PG != 0;
        if paging && (requested ^ self.efer) & efer::LME != 0 {
            // Changing LME while paging is on is #GP on real hardware.
            return Err(ModeError::Invalid);
        }
        let new = requested | (self.efer & efer::LMA);
        let mut w = VmcsWrites::default();
        w.push(field::GUEST_EFER, new);
        self.efer = new;
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pvh_state_is_protected_mode_without_paging() {
        let m = Mode::pvh();
        let w = m.pvh_entry_state(0x10_0000);
        assert_eq!(w.get(field::GUEST_RIP), Some(0x10_0000));
        let real = w.get(field::GUEST_CR0).unwrap();
        assert_eq!(real & (cr0::PE | cr0::PG | cr0::NE), cr0::PE | cr0::NE);
        assert_eq!(w.get(field::CR0_READ_SHADOW), Some(cr0::PE | cr0::ET));
        assert_eq!(
            w.get(field::ENTRY_CONTROLS).unwrap() & u64::from(entry::IA32E_MODE_GUEST),
            0
        );
        assert_eq!(w.get(field::GUEST_CS_ACCESS_RIGHTS), Some(0xC09B));
        assert_eq!(w.get(field::GUEST_CR4), Some(cr4::VMXE));
        assert_eq!(w.get(field::CR4_READ_SHADOW), Some(0));
    }

    #[test]
    fn long_mode_switch() {
        let mut m = Mode::pvh();
        m.write_cr4(cr4::PAE).unwrap();
        m.write_efer(efer::LME).unwrap();
        let w = m.write_cr0(cr0::PE | cr0::ET | cr0::PG).unwrap();
        assert_eq!(w.get(field::GUEST_EFER), Some(efer::LME | efer::LMA));
        assert_ne!(
            w.get(field::ENTRY_CONTROLS).unwrap() & u64::from(entry::IA32E_MODE_GUEST),
            0
        );
        assert_eq!(m.efer, efer::LME | efer::LMA);
        // Leaving paging drops LMA again.
        let w = m.write_cr0(cr0::PE | cr0::ET).unwrap();
        assert_eq!(w.get(field::GUEST_EFER), Some(efer::LME));
        assert_eq!(m.entry_controls & entry::IA32E_MODE_GUEST, 0);
    }

    #[test]
    fn long_mode_needs_pae() {
        let mut m = Mode::pvh();
        m.write_efer(efer::LME).unwrap();
        assert_eq!(m.write_cr0(cr0::PE | cr0::PG), Err(ModeError::Invalid));
        assert_eq!(m.cr0_shadow, cr0::PE | cr0::ET, "state unchanged on error");
    }

    #[test]
    fn cache_disable_is_shadowed_not_applied() {
        let mut m = Mode::pvh();
        let w = m.write_cr0(cr0::PE | cr0::ET | cr0::CD | cr0::NW).unwrap();
        assert_eq!(
            w.get(field::CR0_READ_SHADOW),
            Some(cr0::PE | cr0::ET | cr0::CD | cr0::NW)
        );
        assert_eq!(w.get(field::GUEST_CR0).unwrap() & (cr0::CD | cr0::NW), 0);
        assert_eq!(m.write_cr0(cr0::PE | cr0::NW), Err(ModeError::Invalid));
    }

    #[test]
    fn guest_cannot_enable_vmx_or_touch_lma() {
        let mut m = Mode::pvh();
        assert_eq!(m.write_cr4(cr4::VMXE), Err(ModeError::Unsupported));
        assert_eq!(m.write_efer(efer::LMA), Err(ModeError::Reserved));
        assert_eq!(m.write_efer(1 << 20), Err(ModeError::Reserved));
    }

    proptest! {
        #[test]
        fn real_cr0_always_valid_for_vmx(shadow in any::<u32>()) {
            let real = Mode::real_cr0(u64::from(shadow));
            prop_assert!(real & cr0::NE != 0);
            prop_assert_eq!(real & (cr0::CD | cr0::NW), 0);
        }

        #[test]
        fn writes_keep_entry_controls_consistent(ops in proptest::collection::vec((0u8..3, any::<u64>()), 0..40)) {
            let mut m = Mode::pvh();
            for (kind, v) in ops {
                let _ = match kind {
                    0 => m.write_cr0(v),
                    1 => m.write_cr4(v),
                    _ => m.write_efer(v),
                };
                // The invariant VM entry checks: IA-32e mode guest == EFER.LMA,
                // and LMA implies paging and PAE.
                let lma = m.efer & efer::LMA != 0;
                prop_assert_eq!(lma, m.entry_controls & entry::IA32E_MODE_GUEST != 0);
                if lma {
                    prop_assert!(m.cr0_shadow & cr0::PG != 0);
                    prop_assert!(m.cr4_shadow & cr4::PAE != 0);
                }
                prop_assert_eq!(m.cr4_shadow & cr4::VMXE, 0);
            }
        }
    }
}
