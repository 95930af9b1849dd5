//! Reading the VMM's end-of-run report from the serial console.
//!
//! The root task ends a run with one line per VM,
//! `cloister: vm NAME: OUTCOME (as expected); STATS; N misdeeds` (or
//! `(UNEXPECTED)`), then `cloister: run complete (status N); shutting down`,
//! where N is 0 when every VM ended as expected, 1 when some did not and 2
//! after a fatal VMM error.

/// Prefix of every VMM line.
pub const VMM_PREFIX: &str = "cloister: ";
/// Marks a per-VM summary line that matched the description.
pub const AS_EXPECTED: &str = " (as expected)";
/// Marks a per-VM summary line that did not.
pub const UNEXPECTED: &str = " (UNEXPECTED)";
/// Start of the final line, followed by the status and `)`.
pub const RUN_COMPLETE: &str = "cloister: run complete (status ";
/// seL4's last boot line before it starts the root task.
pub const SEL4_BOOTED: &str = "Booting all finished, dropped to user space";

/// One VM's line of the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmReport {
    /// The VM's name.
    pub name: String,
    /// How it ended, e.g. `exited with status 0`.
    pub outcome: String,
    /// Whether that was what the description expected.
    pub expected: bool,
    /// Its VM exits, if the line says.
    pub exits: Option<u64>,
    /// Its misdeeds, if the line says.
    pub misdeeds: Option<u64>,
    /// The whole line.
    pub line: String,
}

/// The VMM's report on a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunReport {
    /// Whether seL4 reached user space.
    pub sel4_booted: bool,
    /// The status of `run complete`, if the VMM got that far.
    pub status: Option<u8>,
    /// Per-VM summary lines, in order.
    pub vms: Vec<VmReport>,
}

impl RunReport {
    /// Whether the run completed with status 0 and no VM line says
    /// `UNEXPECTED`.
    pub fn all_as_expected(&self) -> bool {
        self.status == Some(0) && self.vms.iter().all(|v| v.expected)
    }

    /// The report line of VM `name`.
    pub fn vm(&self, name: &str) -> Option<&VmReport> {
        self.vms.iter().find(|v| v.name == name)
    }
}

/// Reads the report from serial console lines.
pub fn parse(serial: &str) -> RunReport {
    let mut report = RunReport::default();
    for line in serial.lines() {
        if line.contains(SEL4_BOOTED) {
            report.sel4_booted = true;
        }
        if let Some(rest) = line.split_once(RUN_COMPLETE).map(|(_, r)| r) {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            report.status = digits.parse().ok();
        }
        if let Some(vm) = parse_vm_line(line) {
            report.vms.push(vm);
        }
    }
    report
}

fn parse_vm_line(line: &str) -> Option<VmReport> {
    let rest = line.split_once("cloister: vm ")?.1;
    let (name, body) = rest.split_once(": ")?;
    let (outcome, expected, after) = if let Some((o, a)) = body.split_once(AS_EXPECTED) {
        (o, true, a)
    } else if let Some((o, a)) = body.split_once(UNEXPECTED) {
        (o, false, a)
    } else {
        return None;
    };
    let count = |word: &str| {
        after.split(';').find_map(|part| {
            let mut w = part.split_whitespace();
            let n = w.next()?.parse().ok()?;
            (w.next()?.trim_end_matches(':') == word).then_some(n)
        })
    };
    Some(VmReport {
        name: name.to_string(),
        outcome: outcome.to_string(),
        expected,
        exits: count("exits"),
        misdeeds: count("misdeeds"),
        line: line.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
Booting all finished, dropped to user space
cloister: seL4 root task up: 480 MiB RAM in untypeds, 524000 free slots, TSC 59 MHz
[hello] hello: cloister unikernel says hello
cloister: vm hostile: misdeed: 1-byte write of 0xa5 to unassigned I/O port 0x200 at rip 0x100123: ignored
cloister: vm hello: exited with status 0
cloister: summary: 3 of 3 VMs ran
cloister: vm hello: exited with status 0 (as expected); 57 exits: io=50 cpuid=7; 0 misdeeds
cloister: vm hostile: stopped: read of unmapped guest-physical address 0x800000 at rip 0x1001 (as expected); 120 exits: io=100; 20 misdeeds
cloister: vm hostile-tf: stopped: triple fault at rip 0x1002 (UNEXPECTED); 0 exits; 3 misdeeds
cloister: run complete (status 1); shutting down
";

    #[test]
    fn parses_the_report() {
        let r = parse(LOG);
        assert!(r.sel4_booted);
        assert_eq!(r.status, Some(1));
        assert_eq!(r.vms.len(), 3);
        let hello = r.vm("hello").unwrap();
        assert_eq!(hello.outcome, "exited with status 0");
        assert!(hello.expected);
        assert_eq!(hello.exits, Some(57));
        assert_eq!(hello.misdeeds, Some(0));
        let h = r.vm("hostile").unwrap();
        assert!(h.outcome.starts_with("stopped: read of unmapped"));
        assert_eq!((h.exits, h.misdeeds), (Some(120), Some(20)));
        let tf = r.vm("hostile-tf").unwrap();
        assert!(!tf.expected);
        assert_eq!(tf.exits, Some(0));
        assert!(!r.all_as_expected());
    }

    #[test]
    fn incomplete_run() {
        let r = parse("Boot config: debug_port = 0x3f8\n");
        assert!(!r.sel4_booted);
        assert_eq!(r.status, None);
        assert!(r.vms.is_empty());
        assert!(!r.all_as_expected());
        let ok = parse("cloister: vm a: exited with status 0 (as expected)\ncloister: run complete (status 0); shutting down\n");
        assert!(ok.all_as_expected());
    }
}
