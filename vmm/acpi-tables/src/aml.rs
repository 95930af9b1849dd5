//! A small AML (ACPI Machine Language) encoder into a fixed buffer: just
//! the constructs the DSDT needs (names, scopes, devices, packages,
//! integers, strings, EISA IDs and resource-template buffers).

/// Largest AML body the encoder holds; the DSDT body must fit.
pub const AML_MAX: usize = 4096;

const NAME_OP: u8 = 0x08;
const SCOPE_OP: u8 = 0x10;
const BUFFER_OP: u8 = 0x11;
const PACKAGE_OP: u8 = 0x12;
const EXT_OP_PREFIX: u8 = 0x5B;
const DEVICE_OP: u8 = 0x82;
const ZERO_OP: u8 = 0x00;
const ONE_OP: u8 = 0x01;
const ONES_OP: u8 = 0xFF;
const BYTE_PREFIX: u8 = 0x0A;
const WORD_PREFIX: u8 = 0x0B;
const DWORD_PREFIX: u8 = 0x0C;
const QWORD_PREFIX: u8 = 0x0E;
const STRING_PREFIX: u8 = 0x0D;

/// AML being built; `overflow` records that something did not fit.
pub struct Aml {
    buf: [u8; AML_MAX],
    len: usize,
    overflow: bool,
}

impl Aml {
    /// An empty body.
    pub fn new() -> Self {
        Aml {
            buf: [0; AML_MAX],
            len: 0,
            overflow: false,
        }
    }

    /// The bytes so far, or `None` if the buffer overflowed.
    pub fn bytes(&self) -> Option<&[u8]> {
        if self.overflow {
            None
        } else {
            self.buf.get(..self.len)
        }
    }

    /// Appends raw bytes.
    pub fn raw(&mut self, data: &[u8]) {
        let end = self.len.checked_add(data.len());
        match end.and_then(|e| self.buf.get_mut(self.len..e).map(|d| (d, e))) {
            Some((dst, e)) => {
                dst.copy_from_slice(data);
                self.len = e;
            }
            None => self.overflow = true,
        }
    }

    fn byte(&mut self, b: u8) {
        self.raw(&[b]);
    }

    /// Opens a package-length-prefixed body; pass the mark to [`Aml::close`].
    fn open(&mut self) -> usize {
        self.len
    }

    /// Inserts the PkgLength of everything written since `mark` in front of it.
    fn close(&mut self, mark: usize) {
        let body = self.len.saturating_sub(mark);
        let Some((enc, n)) = pkg_length(body) else {
            self.overflow = true;
            return;
        };
        let Some(new_len) = self.len.checked_add(n) else {
            self.overflow = true;
            return;
        };
        if new_len > AML_MAX {
            self.overflow = true;
            return;
        }
        self.buf.copy_within(mark..self.len, mark.saturating_add(n));
        if let Some(dst) = self.buf.get_mut(mark..mark.saturating_add(n)) {
            if let Some(src) = enc.get(..n) {
                dst.copy_from_slice(src);
            }
        }
        self.len = new_len;
    }

    /// A NameString: `\` for root-relative paths, then segments of four
    /// characters (padded with `_`), joined by DualNamePrefix when there are two.
    pub fn name_string(&mut self, path: &str) {
        let (root, rest) = match path.strip_prefix('\\') {
            Some(r) => (true, r),
            None => (false, path),
        };
        if root {
            self.byte(b'\\');
        }
        let mut segs = rest.split('.').filter(|s| !s.is_empty());
        let first = segs.next();
        let second = segs.next();
        match (first, second) {
            (Some(a), Some(b)) => {
                self.byte(0x2E); // DualNamePrefix
                self.name_seg(a);
                self.name_seg(b);
            }
            (Some(a), None) => self.name_seg(a),
            _ => self.byte(0), // NullName
        }
        if segs.next().is_some() {
            self.overflow = true; // more than two segments are not needed here
        }
    }

    fn name_seg(&mut self, seg: &str) {
        let mut out = [b'_'; 4];
        for (o, c) in out.iter_mut().zip(seg.bytes()) {
            *o = c;
        }
        if seg.len() > 4 {
            self.overflow = true;
        }
        self.raw(&out);
    }

    /// The smallest encoding of an integer constant.
    pub fn integer(&mut self, v: u64) {
        let (enc, n) = integer_encoding(v);
        if let Some(e) = enc.get(..n) {
            self.raw(e);
        }
    }

    /// A string constant.
    pub fn string(&mut self, s: &str) {
        self.byte(STRING_PREFIX);
        self.raw(s.as_bytes());
        self.byte(0);
    }

    /// `Name(path, <value>)`: the caller writes the value in `value`.
    pub fn name(&mut self, path: &str, value: impl FnOnce(&mut Aml)) {
        self.byte(NAME_OP);
        self.name_string(path);
        value(self);
    }

    /// `Scope(path) { body }`.
    pub fn scope(&mut self, path: &str, body: impl FnOnce(&mut Aml)) {
        self.byte(SCOPE_OP);
        let m = self.open();
        self.name_string(path);
        body(self);
        self.close(m);
    }

    /// `Device(name) { body }`.
    pub fn device(&mut self, name: &str, body: impl FnOnce(&mut Aml)) {
        self.raw(&[EXT_OP_PREFIX, DEVICE_OP]);
        let m = self.open();
        self.name_string(name);
        body(self);
        self.close(m);
    }

    /// `Package(count) { elements }`: `elements` must write `count` data objects.
    pub fn package(&mut self, count: u8, elements: impl FnOnce(&mut Aml)) {
        self.byte(PACKAGE_OP);
        let m = self.open();
        self.byte(count);
        elements(self);
        self.close(m);
    }

    /// `Buffer() { bytes written by `data` }`, with the size computed.
    pub fn buffer(&mut self, data: impl FnOnce(&mut Aml)) {
        self.byte(BUFFER_OP);
        let m = self.open();
        // The size operand comes first but depends on the data: write the
        // data, then insert the size in front of it.
        let data_start = self.len;
        data(self);
        let size = self.len.saturating_sub(data_start);
        let (enc, n) = integer_encoding(u64::try_from(size).unwrap_or(u64::MAX));
        match enc.get(..n) {
            Some(e) => self.insert(data_start, e),
            None => self.overflow = true,
        }
        self.close(m);
    }

    fn insert(&mut self, at: usize, data: &[u8]) {
        let n = data.len();
        let Some(new_len) = self.len.checked_add(n).filter(|&l| l <= AML_MAX) else {
            self.overflow = true;
            return;
        };
        self.buf.copy_within(at..self.len, at.saturating_add(n));
        if let Some(dst) = self.buf.get_mut(at..at.saturating_add(n)) {
            dst.copy_from_slice(data);
        }
        self.len = new_len;
    }

    /// `EisaId("PNP0A03")` as its compressed 32-bit integer.
    pub fn eisa_id(&mut self, id: &str) {
        self.integer(u64::from(eisa_id(id)));
    }
}

impl Default for Aml {
    fn default() -> Self {
        Self::new()
    }
}

/// The smallest encoding of an integer constant: bytes and length.
fn integer_encoding(v: u64) -> ([u8; 9], usize) {
    let b = v.to_le_bytes();
    let mut out = [0u8; 9];
    let (prefix, n) = match v {
        0 => return ([ZERO_OP, 0, 0, 0, 0, 0, 0, 0, 0], 1),
        1 => return ([ONE_OP, 0, 0, 0, 0, 0, 0, 0, 0], 1),
        u64::MAX => return ([ONES_OP, 0, 0, 0, 0, 0, 0, 0, 0], 1),
        v if v <= 0xFF => (BYTE_PREFIX, 1usize),
        v if v <= 0xFFFF => (WORD_PREFIX, 2),
        v if v <= 0xFFFF_FFFF => (DWORD_PREFIX, 4),
        _ => (QWORD_PREFIX, 8),
    };
    out[0] = prefix;
    for (o, v) in out.iter_mut().skip(1).zip(b.iter().take(n)) {
        *o = *v;
    }
    (out, n.saturating_add(1))
}

/// Encodes a PkgLength for a body of `body` bytes: the encoding and its length.
fn pkg_length(body: usize) -> Option<([u8; 4], usize)> {
    for n in 1..=4usize {
        let total = body.checked_add(n)?;
        let fits = match n {
            1 => total <= 0x3F,
            2 => total <= 0xFFF,
            3 => total <= 0xF_FFFF,
            _ => total <= 0xFFF_FFFF,
        };
        if !fits {
            continue;
        }
        let t = u32::try_from(total).ok()?.to_le_bytes();
        let v = u32::from_le_bytes(t);
        let enc = if n == 1 {
            [t[0], 0, 0, 0]
        } else {
            let lead = u8::try_from((n.saturating_sub(1) << 6) & 0xC0).ok()? | (t[0] & 0x0F);
            [
                lead,
                ((v >> 4) & 0xFF).to_le_bytes()[0],
                ((v >> 12) & 0xFF).to_le_bytes()[0],
                ((v >> 20) & 0xFF).to_le_bytes()[0],
            ]
        };
        return Some((enc, n));
    }
    None
}

/// The compressed EISA ID of a seven-character ID such as `"PNP0A03"`
/// (three letters, four hex digits); malformed characters count as 0.
pub fn eisa_id(id: &str) -> u32 {
    let b = id.as_bytes();
    let letter = |i: usize| u16::from(b.get(i).copied().unwrap_or(0x40).wrapping_sub(0x40) & 0x1F);
    let hex = |i: usize| {
        let c = b.get(i).copied().unwrap_or(b'0');
        u16::from(match c {
            b'0'..=b'9' => c.wrapping_sub(b'0'),
            b'A'..=b'F' => c.wrapping_sub(b'A').wrapping_add(10),
            b'a'..=b'f' => c.wrapping_sub(b'a').wrapping_add(10),
            _ => 0,
        })
    };
    let vendor = (letter(0) << 10) | (letter(1) << 5) | letter(2);
    let product = (hex(3) << 12) | (hex(4) << 8) | (hex(5) << 4) | hex(6);
    let v = vendor.to_be_bytes();
    let p = product.to_be_bytes();
    u32::from_le_bytes([v[0], v[1], p[0], p[1]])
}

/// Resource descriptors for `_CRS` buffers (ACPI 6.x §6.4).
pub mod res {
    use super::Aml;

    /// General flags of an address-space descriptor: producer, positive
    /// decode, minimum and maximum fixed.
    const PRODUCER_FIXED: u8 = 0x0C;

    /// `WordBusNumber(ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, min, max, 0, len)`.
    pub fn word_bus_number(a: &mut Aml, min: u16, max: u16) {
        word_space(a, 2, 0, min, max);
    }

    /// `WordIO(ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, min, max, 0, len)`.
    pub fn word_io(a: &mut Aml, min: u16, max: u16) {
        word_space(a, 1, 0x03, min, max);
    }

    fn word_space(a: &mut Aml, kind: u8, type_flags: u8, min: u16, max: u16) {
        let len = max.wrapping_sub(min).wrapping_add(1);
        a.raw(&[0x88, 13, 0, kind, PRODUCER_FIXED, type_flags]);
        for v in [0u16, min, max, 0, len] {
            a.raw(&v.to_le_bytes());
        }
    }

    /// `DWordMemory(ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable|Cacheable, ReadWrite, ...)`.
    pub fn dword_memory(a: &mut Aml, min: u32, max: u32, cacheable: bool) {
        let len = max.wrapping_sub(min).wrapping_add(1);
        let tflags = if cacheable { 0x03 } else { 0x01 };
        a.raw(&[0x87, 23, 0, 0, PRODUCER_FIXED, tflags]);
        for v in [0u32, min, max, 0, len] {
            a.raw(&v.to_le_bytes());
        }
    }

    /// `QWordMemory(ResourceProducer, PosDecode, MinFixed, MaxFixed, ..., ReadWrite, ...)`.
    pub fn qword_memory(a: &mut Aml, min: u64, max: u64, cacheable: bool) {
        let len = max.wrapping_sub(min).wrapping_add(1);
        let tflags = if cacheable { 0x03 } else { 0x01 };
        a.raw(&[0x8A, 43, 0, 0, PRODUCER_FIXED, tflags]);
        for v in [0u64, min, max, 0, len] {
            a.raw(&v.to_le_bytes());
        }
    }

    /// `IO(Decode16, min, min, 1, len)`: a fixed 16-bit I/O range.
    pub fn io(a: &mut Aml, base: u16, len: u8) {
        let b = base.to_le_bytes();
        a.raw(&[0x47, 0x01, b[0], b[1], b[0], b[1], 0x01, len]);
    }

    /// `IRQNoFlags() { irq }`: an edge-triggered, active-high ISA IRQ (0–15).
    pub fn irq_no_flags(a: &mut Aml, irq: u8) {
        let mask = 1u16.checked_shl(u32::from(irq)).unwrap_or(0).to_le_bytes();
        a.raw(&[0x22, mask[0], mask[1]]);
    }

    /// The end tag (checksum 0: "treat as valid").
    pub fn end_tag(a: &mut Aml) {
        a.raw(&[0x79, 0x00]);
    }
}
