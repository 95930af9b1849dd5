//! 2-level event delivery in `shared_info` / `vcpu_info`, as Xen does it.
//!
//! Layout (both guest widths): `vcpu_info[32]` of 64 bytes each at 0, with
//! `evtchn_upcall_pending` (u8) at +0, `evtchn_upcall_mask` (u8) at +1 and
//! `evtchn_pending_sel` (an `unsigned long`) at +8 (64-bit) or +4 (32-bit);
//! then `evtchn_pending[W]` and `evtchn_mask[W]` of `unsigned long`s at 2048,
//! where W is the word's bit count — 64 × 64 = 4096 ports for a 64-bit
//! guest, 32 × 32 = 1024 for a 32-bit one. Bitmaps are little-endian, so
//! port `p` is bit `p % 8` of byte `p / 8` of the array, and selector bit `k`
//! (one per pending word) likewise of the selector.
//!
//! Setting a port pending ([`set_pending`]): set its PENDING bit; if it was
//! clear and the port is not MASKed, set the selector bit of its word in the
//! notified vCPU's `evtchn_pending_sel`; if *that* was clear, set the vCPU's
//! `evtchn_upcall_pending`; if that was clear, an upcall must be raised.
//! [`unmask`] clears MASK and, if the port is pending, does the second half.
//! The guest clears `evtchn_upcall_pending`, then the selector, then pending.

use crate::abi::shared_info::{EVTCHN_PENDING, LEGACY_MAX_VCPUS, UPCALL_PENDING, VCPU_INFO_SIZE};
use crate::mem::SharedPage;

/// The word width of a domain's `shared_info` bitmaps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Width {
    /// 64-bit guest: 8-byte words, 4096 ports.
    #[default]
    W64,
    /// 32-bit guest: 4-byte words, 1024 ports.
    W32,
}

impl Width {
    /// Bytes in an `unsigned long`.
    pub const fn word_bytes(self) -> usize {
        match self {
            Width::W64 => 8,
            Width::W32 => 4,
        }
    }
    /// Bits in an `unsigned long` (ports per selector bit).
    pub const fn word_bits(self) -> u32 {
        match self {
            Width::W64 => 64,
            Width::W32 => 32,
        }
    }
    /// Ports the 2-level ABI can address (`word_bits²`).
    pub const fn max_ports(self) -> u32 {
        match self {
            Width::W64 => 4096,
            Width::W32 => 1024,
        }
    }
    /// Offset of `evtchn_pending` in `shared_info`.
    pub const fn pending_offset(self) -> usize {
        EVTCHN_PENDING
    }
    /// Offset of `evtchn_mask` in `shared_info`.
    pub const fn mask_offset(self) -> usize {
        match self {
            Width::W64 => EVTCHN_PENDING + 512,
            Width::W32 => EVTCHN_PENDING + 128,
        }
    }
    /// Offset of `evtchn_pending_sel` within a `vcpu_info`.
    pub const fn pending_sel_offset(self) -> usize {
        self.word_bytes()
    }
}

/// Byte offset and bit of bit `nr` of a little-endian bitmap at `base`.
fn bit_at(base: usize, nr: u32) -> Option<(usize, u8)> {
    let byte = usize::try_from(nr / 8).ok()?;
    // nr % 8 < 8 always fits.
    let bit = u8::try_from(nr % 8).ok()?;
    Some((base.checked_add(byte)?, bit))
}

/// Offset of vCPU `vcpu`'s `vcpu_info`, if it is one of the embedded 32.
pub fn vcpu_info_offset(vcpu: u32) -> Option<usize> {
    if vcpu >= LEGACY_MAX_VCPUS {
        return None;
    }
    usize::try_from(vcpu).ok()?.checked_mul(VCPU_INFO_SIZE)
}

fn port_ok(w: Width, port: u32) -> Option<()> {
    (port < w.max_ports()).then_some(())
}

/// Sets `port` pending for delivery to `vcpu`, exactly as Xen's 2-level
/// `set_pending`. Returns `Some(true)` if an upcall must be raised on `vcpu`
/// (its `evtchn_upcall_pending` went 0 → 1), `None` if port or vCPU are out
/// of range (nothing is changed then).
pub fn set_pending<P: SharedPage + ?Sized>(
    page: &mut P,
    w: Width,
    port: u32,
    vcpu: u32,
) -> Option<bool> {
    port_ok(w, port)?;
    let vi = vcpu_info_offset(vcpu)?;
    let (pb, pbit) = bit_at(w.pending_offset(), port)?;
    if page.test_and_set_bit(pb, pbit)? {
        return Some(false);
    }
    let (mb, mbit) = bit_at(w.mask_offset(), port)?;
    if page.test_bit(mb, mbit)? {
        return Some(false);
    }
    select_and_mark(page, w, port, vi)
}

/// Second half of delivery: selector bit, then `evtchn_upcall_pending`.
fn select_and_mark<P: SharedPage + ?Sized>(
    page: &mut P,
    w: Width,
    port: u32,
    vi: usize,
) -> Option<bool> {
    let (sb, sbit) = bit_at(
        vi.checked_add(w.pending_sel_offset())?,
        port.checked_div(w.word_bits())?,
    )?;
    if page.test_and_set_bit(sb, sbit)? {
        return Some(false);
    }
    mark_events_pending(page, vi)
}

/// Sets `evtchn_upcall_pending`; true if it was clear (an upcall is due).
fn mark_events_pending<P: SharedPage + ?Sized>(page: &mut P, vi: usize) -> Option<bool> {
    let was = page.test_and_set_bit(vi.checked_add(UPCALL_PENDING)?, 0)?;
    Some(!was)
}

/// Clears `port`'s MASK bit and, if it is pending, delivers it to `vcpu`
/// (Xen's 2-level `unmask`). Returns whether an upcall must be raised.
pub fn unmask<P: SharedPage + ?Sized>(
    page: &mut P,
    w: Width,
    port: u32,
    vcpu: u32,
) -> Option<bool> {
    port_ok(w, port)?;
    let vi = vcpu_info_offset(vcpu)?;
    let (mb, mbit) = bit_at(w.mask_offset(), port)?;
    if !page.test_and_clear_bit(mb, mbit)? {
        return Some(false);
    }
    let (pb, pbit) = bit_at(w.pending_offset(), port)?;
    if !page.test_bit(pb, pbit)? {
        return Some(false);
    }
    select_and_mark(page, w, port, vi)
}

/// Clears `port`'s PENDING bit (when a port is freed, so a re-bind starts clean).
pub fn clear_pending<P: SharedPage + ?Sized>(page: &mut P, w: Width, port: u32) -> Option<()> {
    port_ok(w, port)?;
    let (pb, pbit) = bit_at(w.pending_offset(), port)?;
    page.test_and_clear_bit(pb, pbit)?;
    Some(())
}

/// Whether `port` is pending.
pub fn is_pending<P: SharedPage + ?Sized>(page: &P, w: Width, port: u32) -> Option<bool> {
    port_ok(w, port)?;
    let (pb, pbit) = bit_at(w.pending_offset(), port)?;
    page.test_bit(pb, pbit)
}

/// Whether `port` is masked.
pub fn is_masked<P: SharedPage + ?Sized>(page: &P, w: Width, port: u32) -> Option<bool> {
    port_ok(w, port)?;
    let (mb, mbit) = bit_at(w.mask_offset(), port)?;
    page.test_bit(mb, mbit)
}

/// Whether `vcpu`'s `evtchn_upcall_pending` byte is non-zero: the condition
/// under which Xen keeps asserting the HVM callback vector.
pub fn upcall_pending<P: SharedPage + ?Sized>(page: &P, vcpu: u32) -> Option<bool> {
    let vi = vcpu_info_offset(vcpu)?;
    let mut b = [0u8];
    page.read(vi.checked_add(UPCALL_PENDING)?, &mut b)?;
    Some(b[0] != 0)
}
