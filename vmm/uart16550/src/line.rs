//! Gathers a guest's console bytes into lines, so the VMM can print each
//! line with the VM's name in front.

/// The byte that stands in for a control character in a line.
pub const REPLACEMENT: u8 = b'?';

/// The default longest line of a [`LineBuffer`], in bytes.
pub const DEFAULT_LINE_MAX: usize = 256;

/// A fixed-size line gatherer holding at most `N` bytes (default
/// [`DEFAULT_LINE_MAX`]).
///
/// Feed it every byte the guest transmits; it hands back each completed line
/// without its terminator. A line ends at `\n`, or when `N` bytes have piled
/// up without one (an overlong line is split; a `\n` right after such a split
/// is swallowed so it does not produce an empty line).
///
/// The guest is not trusted with the host's terminal: `\r` is dropped (so
/// CRLF reads as a line end and a guest cannot return to column 0 and
/// overwrite the VM-name prefix), and every other control character except
/// tab (bytes 0x00–0x1F and 0x7F, which include ESC) becomes
/// [`REPLACEMENT`]. Bytes ≥ 0x80 pass unchanged, so UTF-8 text survives.
#[derive(Clone, Debug)]
pub struct LineBuffer<const N: usize = DEFAULT_LINE_MAX> {
    buf: [u8; N],
    len: usize,
    /// The last call returned a line: start over on the next byte.
    emitted: bool,
    /// The last line was split for length: swallow an immediate `\n`.
    split: bool,
}

impl<const N: usize> Default for LineBuffer<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LineBuffer<N> {
    /// An empty buffer. `N`, the longest line, must be at least 1 (checked at compile time).
    pub const fn new() -> Self {
        const { assert!(N > 0, "a LineBuffer needs room for at least one byte") };
        LineBuffer {
            buf: [0; N],
            len: 0,
            emitted: false,
            split: false,
        }
    }

    /// Adds one byte; returns the completed line if this byte completed one.
    pub fn push(&mut self, byte: u8) -> Option<&[u8]> {
        if self.emitted {
            self.emitted = false;
            self.len = 0;
        }
        let after_split = core::mem::take(&mut self.split);
        match byte {
            b'\n' if after_split && self.len == 0 => None,
            b'\n' => self.emit(false),
            b'\r' => {
                self.split = after_split;
                None
            }
            b'\t' => self.append(byte),
            0x00..=0x1F | 0x7F => self.append(REPLACEMENT),
            _ => self.append(byte),
        }
    }

    /// Returns the partial line gathered so far, if any, and empties the buffer
    /// (e.g. when the VM stops).
    pub fn flush(&mut self) -> Option<&[u8]> {
        if self.emitted {
            self.emitted = false;
            self.len = 0;
        }
        self.split = false;
        if self.len == 0 {
            return None;
        }
        self.emit(false)
    }

    /// The bytes of the unfinished line.
    pub fn pending(&self) -> &[u8] {
        if self.emitted {
            return &[];
        }
        self.buf.get(..self.len).unwrap_or_default()
    }

    fn append(&mut self, byte: u8) -> Option<&[u8]> {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = byte;
            self.len = self.len.saturating_add(1);
        }
        if self.len >= N {
            return self.emit(true);
        }
        None
    }

    fn emit(&mut self, split: bool) -> Option<&[u8]> {
        self.emitted = true;
        self.split = split;
        Some(self.buf.get(..self.len).unwrap_or_default())
    }
}
