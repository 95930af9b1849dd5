//! What a VM exit tells the VMM, decoded from the values seL4 hands back from
//! `seL4_VMEnter` (exit reason, qualification, guest registers).

/// The guest's general-purpose registers as seL4 saves them on a VM exit
/// (RSP lives in the VMCS and is not part of this set).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpRegs {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
}

impl GpRegs {
    /// The register an instruction encodes as `index` (0 = RAX … 15 = R15);
    /// `None` for RSP (index 4), which this set does not hold, or out of range.
    pub fn get(&self, index: u8) -> Option<u64> {
        Some(match index {
            0 => self.rax,
            1 => self.rcx,
            2 => self.rdx,
            3 => self.rbx,
            5 => self.rbp,
            6 => self.rsi,
            7 => self.rdi,
            8 => self.r8,
            9 => self.r9,
            10 => self.r10,
            11 => self.r11,
            12 => self.r12,
            13 => self.r13,
            14 => self.r14,
            15 => self.r15,
            _ => return None,
        })
    }

    /// Sets the register an instruction encodes as `index`; `false` for RSP or
    /// an index out of range.
    pub fn set(&mut self, index: u8, value: u64) -> bool {
        let slot = match index {
            0 => &mut self.rax,
            1 => &mut self.rcx,
            2 => &mut self.rdx,
            3 => &mut self.rbx,
            5 => &mut self.rbp,
            6 => &mut self.rsi,
            7 => &mut self.rdi,
            8 => &mut self.r8,
            9 => &mut self.r9,
            10 => &mut self.r10,
            11 => &mut self.r11,
            12 => &mut self.r12,
            13 => &mut self.r13,
            14 => &mut self.r14,
            15 => &mut self.r15,
            _ => return false,
        };
        *slot = value;
        true
    }
}

/// One VM exit as reported by seL4.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Exit {
    /// The raw exit-reason field; `u32::MAX` when VM entry itself failed.
    pub raw_reason: u32,
    /// The exit qualification.
    pub qualification: u64,
    /// Length of the exiting instruction (valid only for instruction exits).
    pub instruction_len: u64,
    /// Guest-physical address (valid for EPT exits).
    pub guest_physical: u64,
    /// Guest RIP at the exit.
    pub rip: u64,
    /// Guest RFLAGS at the exit.
    pub rflags: u64,
    /// Guest interruptibility state.
    pub interruptibility: u64,
    /// Guest CR3.
    pub cr3: u64,
}

/// A port I/O access (exit reason 30).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoAccess {
    /// The port.
    pub port: u16,
    /// Access width in bytes: 1, 2 or 4.
    pub size: u8,
    /// `IN` (true) or `OUT` (false).
    pub input: bool,
    /// `INS`/`OUTS`.
    pub string: bool,
    /// REP-prefixed.
    pub rep: bool,
}

impl IoAccess {
    /// Decodes an I/O exit qualification; `None` if the size field is invalid.
    pub fn decode(qualification: u64) -> Option<Self> {
        let size = match qualification & 7 {
            0 => 1,
            1 => 2,
            3 => 4,
            _ => return None,
        };
        Some(IoAccess {
            port: ((qualification >> 16) & 0xffff) as u16,
            size,
            input: qualification & (1 << 3) != 0,
            string: qualification & (1 << 4) != 0,
            rep: qualification & (1 << 5) != 0,
        })
    }

    /// The mask of the bits this access moves.
    pub fn mask(&self) -> u64 {
        match self.size {
            1 => 0xff,
            2 => 0xffff,
            _ => 0xffff_ffff,
        }
    }
}

/// A control-register access (exit reason 28).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrAccess {
    /// `MOV CRn, reg`.
    MovTo { cr: u8, gpr: u8 },
    /// `MOV reg, CRn`.
    MovFrom { cr: u8, gpr: u8 },
    /// `CLTS`.
    Clts,
    /// `LMSW` with its 16-bit source.
    Lmsw { source: u16 },
}

impl CrAccess {
    /// Decodes a control-register exit qualification.
    pub fn decode(qualification: u64) -> Self {
        let cr = (qualification & 0xf) as u8;
        let gpr = ((qualification >> 8) & 0xf) as u8;
        match (qualification >> 4) & 3 {
            0 => CrAccess::MovTo { cr, gpr },
            1 => CrAccess::MovFrom { cr, gpr },
            2 => CrAccess::Clts,
            _ => CrAccess::Lmsw {
                source: ((qualification >> 16) & 0xffff) as u16,
            },
        }
    }
}

/// The kind of access an EPT violation reports (exit reason 48).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EptAccess {
    /// A data read.
    pub read: bool,
    /// A data write.
    pub write: bool,
    /// An instruction fetch.
    pub fetch: bool,
}

impl EptAccess {
    /// Decodes an EPT-violation exit qualification.
    pub fn decode(qualification: u64) -> Self {
        EptAccess {
            read: qualification & 1 != 0,
            write: qualification & 2 != 0,
            fetch: qualification & 4 != 0,
        }
    }

    /// "read", "write" or "fetch", for messages.
    pub fn describe(&self) -> &'static str {
        if self.fetch {
            "fetch"
        } else if self.write {
            "write"
        } else {
            "read"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn io_qualification_out_byte() {
        // OUT DX, AL to 0x3f8.
        let io = IoAccess::decode(0x03f8_0000).unwrap();
        assert_eq!(
            io,
            IoAccess {
                port: 0x3f8,
                size: 1,
                input: false,
                string: false,
                rep: false
            }
        );
        // IN EAX, 0xf4 (immediate form sets bit 6).
        let io = IoAccess::decode(0x00f4_0000 | 8 | 3 | 0x40).unwrap();
        assert_eq!((io.port, io.size, io.input), (0xf4, 4, true));
        assert!(IoAccess::decode(2).is_none());
    }

    #[test]
    fn cr_qualification() {
        assert_eq!(CrAccess::decode(0x0000), CrAccess::MovTo { cr: 0, gpr: 0 });
        assert_eq!(
            CrAccess::decode(0x0314),
            CrAccess::MovFrom { cr: 4, gpr: 3 }
        );
        assert_eq!(CrAccess::decode(0x20), CrAccess::Clts);
        assert_eq!(CrAccess::decode(0x0001_0030), CrAccess::Lmsw { source: 1 });
    }

    proptest! {
        #[test]
        fn decoders_never_panic(q in any::<u64>()) {
            let _ = IoAccess::decode(q);
            let _ = CrAccess::decode(q);
            let _ = EptAccess::decode(q).describe();
        }

        #[test]
        fn gpr_roundtrip(i in 0u8..32, v in any::<u64>()) {
            let mut r = GpRegs::default();
            let ok = r.set(i, v);
            prop_assert_eq!(ok, i < 16 && i != 4);
            prop_assert_eq!(r.get(i), if ok { Some(v) } else { None });
        }
    }
}
