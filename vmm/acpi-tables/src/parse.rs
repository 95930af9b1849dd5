//! A tiny ACPI reader for tests: finds tables from the RSDP, checks their
//! checksums and lengths, and decodes the AML subset the DSDT uses into a
//! flat namespace (`\_SB_.PCI0._HID` → value).

use std::collections::BTreeMap;

/// An AML data object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Obj {
    Int(u64),
    Str(String),
    Buf(Vec<u8>),
    Pkg(Vec<Obj>),
}

impl Obj {
    pub fn int(&self) -> u64 {
        match self {
            Obj::Int(v) => *v,
            o => panic!("not an integer: {o:?}"),
        }
    }
    pub fn pkg(&self) -> &[Obj] {
        match self {
            Obj::Pkg(v) => v,
            o => panic!("not a package: {o:?}"),
        }
    }
    pub fn buf(&self) -> &[u8] {
        match self {
            Obj::Buf(v) => v,
            o => panic!("not a buffer: {o:?}"),
        }
    }
}

/// Guest memory view: reads at guest-physical addresses.
pub struct Mem<'a>(pub &'a [u8]);

impl Mem<'_> {
    pub fn bytes(&self, at: u64, n: usize) -> &[u8] {
        let at = at as usize;
        &self.0[at..at + n]
    }
    pub fn u32(&self, at: u64) -> u32 {
        u32::from_le_bytes(self.bytes(at, 4).try_into().unwrap())
    }
    pub fn u64(&self, at: u64) -> u64 {
        u64::from_le_bytes(self.bytes(at, 8).try_into().unwrap())
    }
}

fn sum(b: &[u8]) -> u8 {
    b.iter().fold(0u8, |s, &x| s.wrapping_add(x))
}

/// A checked system description table.
#[derive(Debug)]
pub struct Table {
    pub addr: u64,
    pub sig: [u8; 4],
    pub revision: u8,
    pub data: Vec<u8>,
}

impl Table {
    pub fn u8(&self, off: usize) -> u8 {
        self.data[off]
    }
    pub fn u16(&self, off: usize) -> u16 {
        u16::from_le_bytes(self.data[off..off + 2].try_into().unwrap())
    }
    pub fn u32(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.data[off..off + 4].try_into().unwrap())
    }
    pub fn u64(&self, off: usize) -> u64 {
        u64::from_le_bytes(self.data[off..off + 8].try_into().unwrap())
    }
    /// A generic address structure at `off`: (space, bit width, access size, address).
    pub fn gas(&self, off: usize) -> (u8, u8, u8, u64) {
        (
            self.data[off],
            self.data[off + 1],
            self.data[off + 3],
            self.u64(off + 4),
        )
    }
}

/// Reads and checks the table at `addr`: length ≥ header, checksum 0.
pub fn table(m: &Mem, addr: u64) -> Table {
    let len = m.u32(addr + 4) as usize;
    assert!(len >= 36, "table at {addr:#x} has length {len}");
    let data = m.bytes(addr, len).to_vec();
    let sig: [u8; 4] = data[..4].try_into().unwrap();
    assert_eq!(
        sum(&data),
        0,
        "bad checksum in {} at {addr:#x}",
        String::from_utf8_lossy(&sig)
    );
    assert_eq!(&data[10..16], b"CLOIST");
    Table {
        addr,
        sig,
        revision: data[8],
        data,
    }
}

/// Everything reachable from the RSDP at `rsdp`.
pub struct Acpi {
    pub xsdt: Table,
    pub tables: Vec<Table>,
    pub dsdt: Table,
    pub facs: u64,
}

impl Acpi {
    pub fn get(&self, sig: &[u8; 4]) -> Option<&Table> {
        self.tables.iter().find(|t| &t.sig == sig)
    }
    pub fn fadt(&self) -> &Table {
        self.get(b"FACP").expect("no FADT")
    }
    pub fn madt(&self) -> &Table {
        self.get(b"APIC").expect("no MADT")
    }
}

pub fn read(m: &Mem, rsdp: u64) -> Acpi {
    let r = m.bytes(rsdp, 36);
    assert_eq!(&r[..8], b"RSD PTR ");
    assert_eq!(sum(&r[..20]), 0, "RSDP checksum");
    assert_eq!(sum(r), 0, "RSDP extended checksum");
    assert_eq!(r[15], 2, "RSDP revision");
    assert_eq!(m.u32(rsdp + 20), 36, "RSDP length");
    let xsdt = table(m, m.u64(rsdp + 24));
    assert_eq!(&xsdt.sig, b"XSDT");
    let n = (xsdt.data.len() - 36) / 8;
    assert_eq!(36 + 8 * n, xsdt.data.len(), "XSDT length");
    let tables: Vec<Table> = (0..n).map(|i| table(m, xsdt.u64(36 + 8 * i))).collect();
    let fadt = tables.iter().find(|t| &t.sig == b"FACP").expect("no FADT");
    let dsdt_addr = fadt.u64(140);
    assert_eq!(u64::from(fadt.u32(40)), dsdt_addr, "DSDT and X_DSDT differ");
    let dsdt = table(m, dsdt_addr);
    assert_eq!(&dsdt.sig, b"DSDT");
    let facs = u64::from(fadt.u32(36));
    assert_eq!(m.bytes(facs, 4), b"FACS");
    assert_eq!(m.u32(facs + 4), 64);
    assert_eq!(facs % 64, 0, "FACS alignment");
    Acpi {
        xsdt,
        tables,
        dsdt,
        facs,
    }
}

// ---------------------------------------------------------------------------
// AML.

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        let v = self.b[self.pos];
        self.pos += 1;
        v
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        s
    }
    /// A PkgLength; returns the end offset of the package.
    fn pkg_end(&mut self) -> usize {
        let start = self.pos;
        let lead = self.byte();
        let extra = (lead >> 6) as usize;
        let mut len = if extra == 0 {
            (lead & 0x3f) as usize
        } else {
            (lead & 0x0f) as usize
        };
        for i in 0..extra {
            len |= (self.byte() as usize) << (4 + 8 * i);
        }
        if extra > 0 {
            assert_eq!(lead & 0x30, 0, "reserved PkgLength bits set");
        }
        // Minimal encoding, as the encoder promises.
        let min = if len <= 0x3f {
            0
        } else if len <= 0xfff {
            1
        } else if len <= 0xfffff {
            2
        } else {
            3
        };
        assert_eq!(extra, min, "PkgLength {len} not minimally encoded");
        start + len
    }
    fn name_string(&mut self) -> (bool, Vec<String>) {
        let mut root = false;
        if self.b[self.pos] == b'\\' {
            root = true;
            self.pos += 1;
        }
        let count = match self.b[self.pos] {
            0x2e => {
                self.pos += 1;
                2
            }
            0x2f => {
                self.pos += 1;
                self.byte() as usize
            }
            0x00 => {
                self.pos += 1;
                0
            }
            _ => 1,
        };
        let segs = (0..count)
            .map(|_| {
                let s = self.take(4);
                assert!(
                    s.iter()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_'),
                    "bad NameSeg {s:?}"
                );
                assert!(!s[0].is_ascii_digit(), "NameSeg starts with a digit");
                String::from_utf8(s.to_vec()).unwrap()
            })
            .collect();
        (root, segs)
    }
    fn data(&mut self) -> Obj {
        match self.byte() {
            0x00 => Obj::Int(0),
            0x01 => Obj::Int(1),
            0xff => Obj::Int(u64::MAX),
            0x0a => Obj::Int(self.byte() as u64),
            0x0b => Obj::Int(u16::from_le_bytes(self.take(2).try_into().unwrap()) as u64),
            0x0c => Obj::Int(u32::from_le_bytes(self.take(4).try_into().unwrap()) as u64),
            0x0e => Obj::Int(u64::from_le_bytes(self.take(8).try_into().unwrap())),
            0x0d => {
                let start = self.pos;
                while self.b[self.pos] != 0 {
                    self.pos += 1;
                }
                let s = String::from_utf8(self.b[start..self.pos].to_vec()).unwrap();
                self.pos += 1;
                Obj::Str(s)
            }
            0x11 => {
                let end = self.pkg_end();
                let size = self.data().int() as usize;
                let bytes = self.take(end - self.pos).to_vec();
                assert_eq!(bytes.len(), size, "buffer size");
                Obj::Buf(bytes)
            }
            0x12 => {
                let end = self.pkg_end();
                let n = self.byte() as usize;
                let mut v = Vec::new();
                while self.pos < end {
                    v.push(self.data());
                }
                assert_eq!(self.pos, end, "package overran");
                assert_eq!(v.len(), n, "package element count");
                Obj::Pkg(v)
            }
            op => panic!("unsupported data opcode {op:#x} at {}", self.pos - 1),
        }
    }
}

fn join(scope: &str, root: bool, segs: &[String]) -> String {
    let mut path = if root {
        String::from("\\")
    } else {
        scope.to_string()
    };
    for s in segs {
        if !(path.ends_with('\\')) {
            path.push('.');
        }
        path.push_str(s);
    }
    path
}

/// The namespace the AML `body` defines: every `Name` with its full path,
/// and every `Device` with value `Obj::Str("Device")`.
pub fn namespace(body: &[u8]) -> BTreeMap<String, Obj> {
    let mut ns = BTreeMap::new();
    let mut r = Reader { b: body, pos: 0 };
    term_list(&mut r, body.len(), "\\", &mut ns);
    assert_eq!(r.pos, body.len());
    ns
}

fn term_list(r: &mut Reader, end: usize, scope: &str, ns: &mut BTreeMap<String, Obj>) {
    while r.pos < end {
        match r.byte() {
            0x08 => {
                let (root, segs) = r.name_string();
                let path = join(scope, root, &segs);
                let v = r.data();
                assert!(ns.insert(path.clone(), v).is_none(), "{path} defined twice");
            }
            0x10 => {
                let e = r.pkg_end();
                let (root, segs) = r.name_string();
                let path = join(scope, root, &segs);
                term_list(r, e, &path, ns);
                assert_eq!(r.pos, e, "scope {path} overran");
            }
            0x5b => {
                assert_eq!(
                    r.byte(),
                    0x82,
                    "only DeviceOp is supported after ExtOpPrefix"
                );
                let e = r.pkg_end();
                let (root, segs) = r.name_string();
                let path = join(scope, root, &segs);
                ns.insert(path.clone(), Obj::Str("Device".into()));
                term_list(r, e, &path, ns);
                assert_eq!(r.pos, e, "device {path} overran");
            }
            op => panic!("unsupported term opcode {op:#x} at {}", r.pos - 1),
        }
    }
}

/// A decoded resource descriptor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Res {
    Io {
        min: u16,
        max: u16,
        align: u8,
        len: u8,
    },
    Irq(u16),
    /// (resource type, min, max, len, type-specific flags).
    Addr(u8, u64, u64, u64, u8),
    End,
}

/// Decodes a resource template; asserts it ends with exactly one end tag.
pub fn resources(b: &[u8]) -> Vec<Res> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let tag = b[i];
        if tag & 0x80 == 0 {
            let len = (tag & 7) as usize;
            let body = &b[i + 1..i + 1 + len];
            match (tag >> 3) & 0xf {
                0x8 => out.push(Res::Io {
                    min: u16::from_le_bytes([body[1], body[2]]),
                    max: u16::from_le_bytes([body[3], body[4]]),
                    align: body[5],
                    len: body[6],
                }),
                0x4 => out.push(Res::Irq(u16::from_le_bytes([body[0], body[1]]))),
                0xf => {
                    out.push(Res::End);
                    assert_eq!(i + 2, b.len(), "data after the end tag");
                }
                t => panic!("unexpected small resource {t:#x}"),
            }
            i += 1 + len;
        } else {
            let len = u16::from_le_bytes([b[i + 1], b[i + 2]]) as usize;
            let body = &b[i + 3..i + 3 + len];
            let (kind, tflags) = (body[0], body[2]);
            let w = match tag {
                0x88 => 2,
                0x87 => 4,
                0x8a => 8,
                t => panic!("unexpected large resource {t:#x}"),
            };
            let field = |k: usize| {
                let mut v = [0u8; 8];
                v[..w].copy_from_slice(&body[3 + k * w..3 + (k + 1) * w]);
                u64::from_le_bytes(v)
            };
            assert_eq!(len, 3 + 5 * w, "address descriptor length");
            let (min, max, len_f) = (field(1), field(2), field(4));
            assert_eq!(max - min + 1, len_f, "address range length");
            out.push(Res::Addr(kind, min, max, len_f, tflags));
            i += 3 + len;
        }
    }
    assert_eq!(out.last(), Some(&Res::End));
    out
}
