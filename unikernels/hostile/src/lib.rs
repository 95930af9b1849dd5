//! Command-line handling of the `hostile` unikernel, shared with host tests.
//!
//! The command line is a list of words naming steps, run in the fixed order
//! `ports`, `msr`, `xen`, `revoke`, `mem`, `triple` whatever order they are
//! given in. No step words means every step but `xen` and `revoke` (which
//! need the Xen ABI).
//! Words containing `=` are options: `peer=<domid>` for the `xen` step
//! ([`peer`]); the others are for someone else (the VMM, the runtime) and
//! are ignored.
//!
//! The `xen` step's battery of bad hypercalls, its expected results and its
//! console lines are in [`xen`].

#![no_std]
#![forbid(unsafe_code)]

use core::fmt;

pub mod xen;

/// One probe `hostile` can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Write and read unassigned I/O ports.
    Ports,
    /// Read and write unknown MSRs, expecting `#GP`.
    Msr,
    /// Bad hypercalls through the Xen ABI, each refused (see [`xen`]).
    Xen,
    /// Grant revocation: map a grant of its own page, unmap it, and touch
    /// the old address. The VMM must stop the VM (nothing is mapped there).
    Revoke,
    /// Read and write guest-physical memory outside RAM.
    Mem,
    /// Triple-fault: load an empty IDT and raise an exception. Ends the VM.
    Triple,
}

impl Step {
    /// Every step, in the order they run.
    pub const ALL: [Step; 6] = [
        Step::Ports,
        Step::Msr,
        Step::Xen,
        Step::Revoke,
        Step::Mem,
        Step::Triple,
    ];

    /// The steps run when the command line names none: all but `xen` and
    /// `revoke`.
    pub const DEFAULT: [Step; 4] = [Step::Ports, Step::Msr, Step::Mem, Step::Triple];

    /// The command-line word for the step.
    pub const fn name(self) -> &'static str {
        match self {
            Step::Ports => "ports",
            Step::Msr => "msr",
            Step::Xen => "xen",
            Step::Revoke => "revoke",
            Step::Mem => "mem",
            Step::Triple => "triple",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Steps(u8);

impl Steps {
    /// Whether `step` is in the set.
    pub fn contains(self, step: Step) -> bool {
        self.0 & step.bit() != 0
    }

    /// The selected steps in running order.
    pub fn iter(self) -> impl Iterator<Item = Step> {
        Step::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

/// A command-line word that names no step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownStep<'a>(pub &'a str);

impl fmt::Display for UnknownStep<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown step `{}` (known: ports msr xen mem triple)",
            self.0
        )
    }
}

/// Parses the command line into the steps to run.
pub fn parse_steps(cmdline: &str) -> Result<Steps, UnknownStep<'_>> {
    let mut set = 0u8;
    for word in cmdline
        .split_ascii_whitespace()
        .filter(|w| !w.contains('='))
    {
        let step = Step::ALL
            .into_iter()
            .find(|s| s.name() == word)
            .ok_or(UnknownStep(word))?;
        set |= step.bit();
    }
    Ok(Steps(if set == 0 {
        Step::DEFAULT.iter().fold(0, |a, s| a | s.bit())
    } else {
        set
    }))
}

/// A `peer=` option whose value is not a domain id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadPeer<'a>(pub &'a str);

impl fmt::Display for BadPeer<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer={} is not a domain id", self.0)
    }
}

/// The `peer=<domid>` option (the last one counts): another running domain
/// that grants this one nothing, for the `xen` step's calls that name a
/// domain other than their caller.
pub fn peer(cmdline: &str) -> Result<Option<u16>, BadPeer<'_>> {
    cmdline
        .split_ascii_whitespace()
        .filter_map(|w| w.strip_prefix("peer="))
        .next_back()
        .map(|v| v.parse().map_err(|_| BadPeer(v)))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: Steps) -> [Option<&'static str>; 5] {
        let mut out = [None; 5];
        for (slot, step) in out.iter_mut().zip(s.iter()) {
            *slot = Some(step.name());
        }
        out
    }

    #[test]
    fn default_is_all_in_order() {
        for cmdline in ["", "   ", "console=ttyS0 foo=bar"] {
            let s = parse_steps(cmdline).expect("valid");
            assert_eq!(
                names(s),
                [
                    Some("ports"),
                    Some("msr"),
                    Some("mem"),
                    Some("triple"),
                    None
                ]
            );
            assert!(
                !s.contains(Step::Xen) && !s.contains(Step::Revoke),
                "xen and revoke need the Xen ABI: not defaults"
            );
        }
    }

    #[test]
    fn selection_runs_in_fixed_order() {
        let s = parse_steps("mem ports  mem").expect("valid");
        assert_eq!(names(s), [Some("ports"), Some("mem"), None, None, None]);
        assert!(!s.contains(Step::Triple));
        let s = parse_steps("triple x=1 msr").expect("valid");
        assert_eq!(names(s), [Some("msr"), Some("triple"), None, None, None]);
        let s = parse_steps("mem xen peer=2 ports").expect("valid");
        assert_eq!(
            names(s),
            [Some("ports"), Some("xen"), Some("mem"), None, None]
        );
    }

    #[test]
    fn the_peer_option() {
        assert_eq!(peer("xen peer=2"), Ok(Some(2)));
        assert_eq!(peer("peer=9 xen peer=3"), Ok(Some(3)));
        assert_eq!(peer("xen"), Ok(None));
        assert_eq!(peer("xen peer=x"), Err(BadPeer("x")));
        assert_eq!(peer("xen peer=65536"), Err(BadPeer("65536")));
    }

    #[test]
    fn unknown_words_are_errors() {
        assert_eq!(parse_steps("ports tripel"), Err(UnknownStep("tripel")));
        assert_eq!(parse_steps("PORTS"), Err(UnknownStep("PORTS")));
        assert_eq!(parse_steps("XEN"), Err(UnknownStep("XEN")));
    }
}
