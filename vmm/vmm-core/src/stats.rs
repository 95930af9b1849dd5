//! Per-VM counts of VM exits by reason.

use crate::vmx::ExitReason;

/// Number of basic exit reasons counted individually.
const SLOTS: usize = 66;

/// VM exits of one VM, counted by basic reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitStats {
    counts: [u64; SLOTS],
    /// Failed VM entries.
    pub entry_failures: u64,
}

impl Default for ExitStats {
    fn default() -> Self {
        ExitStats {
            counts: [0; SLOTS],
            entry_failures: 0,
        }
    }
}

impl ExitStats {
    /// Counts one exit with raw reason `raw`.
    pub fn record(&mut self, raw: u32) {
        if raw == u32::MAX || raw & (1 << 31) != 0 {
            self.entry_failures += 1;
        }
        let basic = (raw & 0xffff) as usize;
        let slot = basic.min(SLOTS - 1);
        if let Some(c) = self.counts.get_mut(slot) {
            *c += 1;
        }
    }

    /// All exits counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Exits with this reason.
    pub fn count(&self, reason: ExitReason) -> u64 {
        self.counts.get(reason as usize).copied().unwrap_or(0)
    }

    /// Non-zero counts as (name, count), in reason order.
    pub fn nonzero(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| {
                let name = ExitReason::from_raw(i as u32)
                    .map(ExitReason::name)
                    .unwrap_or("other");
                (name, *c)
            })
    }
}

impl core::fmt::Display for ExitStats {
    /// `total N: io=3 cpuid=2 ...`
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} exits", self.total())?;
        let mut first = true;
        for (name, c) in self.nonzero() {
            write!(f, "{}{name}={c}", if first { ": " } else { " " })?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_formats() {
        let mut s = ExitStats::default();
        s.record(30);
        s.record(30);
        s.record(10);
        s.record(0x8000_0021); // entry failure, invalid guest state
        s.record(u32::MAX);
        assert_eq!(s.count(ExitReason::IoInstruction), 2);
        assert_eq!(s.entry_failures, 2);
        assert_eq!(s.total(), 5);
        let text = std::format!("{s}");
        assert!(
            text.starts_with("5 exits: cpuid=1 io=2 entry-fail-guest-state=1"),
            "{text}"
        );
    }
}
