//! 2-level event delivery, the guest's half: scanning `shared_info` for
//! fired ports ([`scan`]) and the per-port "fired" flags the program polls
//! ([`PortSet`]).
//!
//! The hypervisor marks port `p` pending by setting bit `p` of
//! `evtchn_pending`; if the port is not masked it also sets bit `p / 64` of
//! vCPU 0's `evtchn_pending_sel` and then `evtchn_upcall_pending`, and
//! injects the upcall vector. [`scan`] undoes it in the opposite order, as
//! Linux does: clear `evtchn_upcall_pending`, exchange the selector with 0,
//! and for each selected word take every bit that is pending and not
//! masked with a locked test-and-clear, recording the port in a
//! [`PortSet`]. All accesses are atomic, so a scan in the upcall handler
//! and one from the program (with interrupts off) cannot lose or double a
//! port.

use core::sync::atomic::{AtomicU64, Ordering};

use xen_abi::abi::shared_info::{EVTCHN_PENDING, UPCALL_PENDING};
use xen_abi::shinfo::Width;

use super::abi::Port;
use super::page::Page;

/// The runtime is a 64-bit guest: `shared_info`'s words are 64 bits.
const WIDTH: Width = Width::W64;
/// Offset of vCPU 0's `evtchn_pending_sel` (u64).
const PENDING_SEL: usize = WIDTH.pending_sel_offset();
/// Offset of `evtchn_mask[64]` (u64 each).
const EVTCHN_MASK: usize = WIDTH.mask_offset();
/// Ports of the 2-level ABI (64 words × 64 bits).
const MAX_PORTS: u32 = WIDTH.max_ports();

/// Words in the 2-level bitmaps.
const WORDS: usize = (MAX_PORTS / 64) as usize;

/// How often [`scan`] goes round again when the hypervisor keeps setting
/// `evtchn_upcall_pending` while it runs (it is re-injected later anyway).
const MAX_ROUNDS: usize = 8;

/// One bit per port (`0..4096`): which ports fired and were not taken yet.
#[derive(Debug)]
pub struct PortSet {
    words: [AtomicU64; WORDS],
}

impl Default for PortSet {
    fn default() -> Self {
        PortSet::new()
    }
}

fn split(port: Port) -> Option<(usize, u64)> {
    if port >= MAX_PORTS {
        return None;
    }
    Some(((port / 64) as usize, 1 << (port % 64)))
}

impl PortSet {
    /// No port set.
    pub const fn new() -> PortSet {
        PortSet {
            words: [const { AtomicU64::new(0) }; WORDS],
        }
    }

    /// Marks `port` (ignored if out of range).
    pub fn insert(&self, port: Port) {
        if let Some((w, bit)) = split(port) {
            self.words[w].fetch_or(bit, Ordering::AcqRel);
        }
    }

    /// Whether `port` is marked (does not clear it).
    pub fn contains(&self, port: Port) -> bool {
        split(port).is_some_and(|(w, bit)| self.words[w].load(Ordering::Acquire) & bit != 0)
    }

    /// Clears `port`; whether it was marked.
    pub fn take(&self, port: Port) -> bool {
        split(port)
            .is_some_and(|(w, bit)| self.words[w].fetch_and(!bit, Ordering::AcqRel) & bit != 0)
    }

    /// The first of `ports` that is marked (not cleared).
    pub fn first_of(&self, ports: &[Port]) -> Option<Port> {
        ports.iter().copied().find(|&p| self.contains(p))
    }

    /// Whether any port is marked.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| w.load(Ordering::Acquire) == 0)
    }
}

/// Takes every fired port out of `shared_info` into `fired`; returns how
/// many. With `full`, every word is looked at, not only those the selector
/// names (for the first scan, when events may predate the selector).
pub fn scan(shinfo: &Page<'_>, fired: &PortSet, full: bool) -> usize {
    let mut count = 0;
    for round in 0..MAX_ROUNDS {
        let _ = shinfo.store_u8(UPCALL_PENDING, 0);
        let mut sel = shinfo.swap_u64(PENDING_SEL, 0).unwrap_or(0);
        if full && round == 0 {
            sel = u64::MAX;
        }
        while sel != 0 {
            let w = sel.trailing_zeros() as usize;
            sel &= sel - 1;
            count += scan_word(shinfo, fired, w);
        }
        if shinfo.load_u8(UPCALL_PENDING) != Some(1) {
            break;
        }
    }
    count
}

/// Takes the pending, unmasked bits of word `w`.
fn scan_word(shinfo: &Page<'_>, fired: &PortSet, w: usize) -> usize {
    let pending_off = EVTCHN_PENDING + 8 * w;
    let mask_off = EVTCHN_MASK + 8 * w;
    let pending = shinfo.load_u64(pending_off).unwrap_or(0);
    let mask = shinfo.load_u64(mask_off).unwrap_or(u64::MAX);
    let mut bits = pending & !mask;
    let mut count = 0;
    while bits != 0 {
        let b = bits.trailing_zeros();
        bits &= bits - 1;
        if shinfo.test_and_clear_bit(pending_off, b) == Some(true) {
            fired.insert(w as u32 * 64 + b);
            count += 1;
        }
    }
    count
}

/// Sets `port`'s mask bit (the hypervisor then only marks it pending).
pub fn mask(shinfo: &Page<'_>, port: Port) {
    if let Some((w, bit)) = split(port) {
        let _ = shinfo.fetch_or_u64(EVTCHN_MASK + 8 * w, bit);
    }
}

/// Whether `port`'s mask bit is set.
pub fn is_masked(shinfo: &Page<'_>, port: Port) -> bool {
    split(port).is_some_and(|(w, bit)| shinfo.load_u64(EVTCHN_MASK + 8 * w).unwrap_or(0) & bit != 0)
}

/// Clears `port`'s pending bit (after closing it, so a re-use starts clean).
pub fn clear_pending(shinfo: &Page<'_>, port: Port) {
    if let Some((w, bit)) = split(port) {
        let _ = shinfo.fetch_and_u64(EVTCHN_PENDING + 8 * w, !bit);
    }
}

#[cfg(test)]
mod tests {
    use super::super::page::testing::TestPage;
    use super::*;
    use xen_abi::shinfo as vmm;

    /// The VMM's `set_pending` on the same bytes.
    fn vmm_set(p: &Page<'_>, port: Port) -> bool {
        let mut bytes = [0u8; 4096];
        p.read(0, &mut bytes).unwrap();
        let raise = vmm::set_pending(&mut bytes[..], Width::W64, port, 0).unwrap();
        p.write(0, &bytes).unwrap();
        raise
    }

    #[test]
    fn scan_takes_what_the_vmm_set() {
        let buf = TestPage::new();
        let p = buf.page();
        let fired = PortSet::new();
        assert_eq!(scan(&p, &fired, false), 0);
        assert!(vmm_set(&p, 3), "first event raises an upcall");
        assert!(!vmm_set(&p, 64), "upcall already pending");
        assert!(!vmm_set(&p, 4095));
        assert_eq!(p.load_u8(UPCALL_PENDING), Some(1));
        assert_eq!(scan(&p, &fired, false), 3);
        assert_eq!(p.load_u8(UPCALL_PENDING), Some(0));
        assert_eq!(p.load_u64(PENDING_SEL), Some(0));
        for w in 0..64 {
            assert_eq!(p.load_u64(EVTCHN_PENDING + 8 * w), Some(0));
        }
        assert_eq!(fired.first_of(&[1, 2, 64]), Some(64));
        assert!(fired.take(3) && !fired.take(3));
        assert!(fired.take(64) && fired.take(4095));
        assert!(fired.is_empty());
        // The next event raises an upcall again.
        assert!(vmm_set(&p, 7));
        assert_eq!(scan(&p, &fired, false), 1);
        assert!(fired.take(7));
    }

    #[test]
    fn masked_ports_stay_pending_until_unmasked() {
        let buf = TestPage::new();
        let p = buf.page();
        let fired = PortSet::new();
        mask(&p, 9);
        assert!(is_masked(&p, 9));
        assert!(!vmm_set(&p, 9), "masked: no upcall");
        assert_eq!(scan(&p, &fired, true), 0);
        assert!(!fired.contains(9));
        // The VMM's unmask delivers it.
        let mut bytes = [0u8; 4096];
        p.read(0, &mut bytes).unwrap();
        assert_eq!(vmm::unmask(&mut bytes[..], Width::W64, 9, 0), Some(true));
        p.write(0, &bytes).unwrap();
        assert!(!is_masked(&p, 9));
        assert_eq!(scan(&p, &fired, false), 1);
        assert!(fired.take(9));
    }

    #[test]
    fn full_scan_finds_events_without_a_selector() {
        let buf = TestPage::new();
        let p = buf.page();
        let fired = PortSet::new();
        p.store_u64(EVTCHN_PENDING + 8 * 5, 0b101).unwrap();
        assert_eq!(scan(&p, &fired, false), 0);
        assert_eq!(scan(&p, &fired, true), 2);
        assert!(fired.take(320) && fired.take(322));
        clear_pending(&p, 1);
        p.store_u64(EVTCHN_PENDING, 2).unwrap();
        clear_pending(&p, 1);
        assert_eq!(p.load_u64(EVTCHN_PENDING), Some(0));
    }

    #[test]
    fn out_of_range_ports_are_ignored() {
        let s = PortSet::new();
        s.insert(4096);
        assert!(s.is_empty());
        assert!(!s.take(u32::MAX));
        assert!(!s.contains(4096));
        let buf = TestPage::new();
        mask(&buf.page(), 5000);
        assert!(!is_masked(&buf.page(), 5000));
    }

    #[test]
    fn every_selector_bit_at_once() {
        // Every selector bit set but only word 0 pending: the other words
        // are looked at and yield nothing.
        let buf = TestPage::new();
        let p = buf.page();
        p.store_u64(PENDING_SEL, u64::MAX).unwrap();
        p.store_u64(EVTCHN_PENDING, u64::MAX).unwrap();
        let fired = PortSet::new();
        assert_eq!(scan(&p, &fired, false), 64);
        assert!((0..64).all(|port| fired.take(port)));
    }
}
