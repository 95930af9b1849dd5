//! Command-line handling of the `hostile` unikernel, shared with host tests.
//!
//! The command line is a list of words naming steps, run in the fixed order
//! `ports`, `msr`, `mem`, `triple` whatever order they are given in. No step
//! words means every step. Words containing `=` are options for someone else (the
//! VMM, the runtime) and are ignored.

#![no_std]
#![forbid(unsafe_code)]

use core::fmt;

/// One probe `hostile` can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Write and read unassigned I/O ports.
    Ports,
    /// Read and write unknown MSRs, expecting `#GP`.
    Msr,
    /// Read and write guest-physical memory outside RAM.
    Mem,
    /// Triple-fault: load an empty IDT and raise an exception. Ends the VM.
    Triple,
}

impl Step {
    /// Every step, in the order they run.
    pub const ALL: [Step; 4] = [Step::Ports, Step::Msr, Step::Mem, Step::Triple];

    /// The command-line word for the step.
    pub const fn name(self) -> &'static str {
        match self {
            Step::Ports => "ports",
            Step::Msr => "msr",
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
        write!(f, "unknown step `{}` (known: ports msr mem triple)", self.0)
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
        Step::ALL.iter().fold(0, |a, s| a | s.bit())
    } else {
        set
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: Steps) -> [Option<&'static str>; 4] {
        let mut out = [None; 4];
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
                [Some("ports"), Some("msr"), Some("mem"), Some("triple")]
            );
        }
    }

    #[test]
    fn selection_runs_in_fixed_order() {
        let s = parse_steps("mem ports  mem").expect("valid");
        assert_eq!(names(s), [Some("ports"), Some("mem"), None, None]);
        assert!(!s.contains(Step::Triple));
        let s = parse_steps("triple x=1 msr").expect("valid");
        assert_eq!(names(s), [Some("msr"), Some("triple"), None, None]);
    }

    #[test]
    fn unknown_words_are_errors() {
        assert_eq!(parse_steps("ports tripel"), Err(UnknownStep("tripel")));
        assert_eq!(parse_steps("PORTS"), Err(UnknownStep("PORTS")));
    }
}
