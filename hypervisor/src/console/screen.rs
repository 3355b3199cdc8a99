//! The VGA text screen's contents: an 80×25 grid of character cells (a code page 437 byte and
//! an attribute byte each, as the hardware stores them) written as a terminal would, so the
//! hypervisor's and dom0's console output reads the same on a screen as on the serial line.
//!
//! Bytes are handled as a simple terminal: printable ASCII is drawn at the cursor, `\n` moves
//! to the next line, `\r` to the line's start, `\t` to the next multiple of 8, backspace one
//! column left; the screen scrolls up when the cursor passes its last line. Escape sequences
//! (`ESC [ ... final`, what dom0's line editor sends) are consumed, and the few it uses act:
//! `K` (erase to the end of the line), `J` with 2 (clear), `C`/`D` (cursor right/left),
//! `H` (home). Any other byte is shown as a box so that no input is invisible.
//!
//! Invariants: the cursor is always inside the grid (`row < ROWS`, `col < COLS`); `dirty`
//! covers every cell changed since [`Screen::take_dirty`] last ran.

/// Columns of the text screen.
pub const COLS: usize = 80;
/// Rows of the text screen.
pub const ROWS: usize = 25;
/// Light grey on black.
const ATTR: u16 = 0x07 << 8;
/// A blank cell.
const BLANK: u16 = ATTR | b' ' as u16;
/// What a byte with no glyph of its own is drawn as (CP437's filled square).
const UNPRINTABLE: u8 = 0xfe;
/// Longest escape sequence kept; longer ones are dropped whole.
const MAX_ESCAPE: usize = 16;

/// Where the terminal is in an escape sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    None,
    /// After `ESC`.
    Start,
    /// Inside `ESC [`, with the parameter bytes read so far.
    Csi {
        len: usize,
    },
}

/// The screen's cells and cursor.
#[derive(Debug, Clone)]
pub struct Screen {
    cells: [u16; COLS * ROWS],
    row: usize,
    col: usize,
    escape: Escape,
    params: [u8; MAX_ESCAPE],
    /// Cells `[start, end)` changed since the last [`Screen::take_dirty`].
    dirty: Option<(usize, usize)>,
}

impl Default for Screen {
    fn default() -> Self {
        Self::new()
    }
}

impl Screen {
    /// A blank screen with the cursor at the top left, all of it dirty.
    pub const fn new() -> Self {
        Self {
            cells: [BLANK; COLS * ROWS],
            row: 0,
            col: 0,
            escape: Escape::None,
            params: [0; MAX_ESCAPE],
            dirty: Some((0, COLS * ROWS)),
        }
    }

    /// The cells, row by row, as the hardware lays them out.
    pub fn cells(&self) -> &[u16; COLS * ROWS] {
        &self.cells
    }

    /// The cursor as (row, column).
    pub fn cursor(&self) -> (usize, usize) {
        (self.row, self.col)
    }

    /// The range of cells changed since the last call, and forgets it.
    pub fn take_dirty(&mut self) -> Option<(usize, usize)> {
        self.dirty.take()
    }

    /// The text of row `row` without trailing blanks (for tests and diagnostics).
    pub fn row_text(&self, row: usize, out: &mut [u8; COLS]) -> usize {
        let cells = &self.cells[row * COLS..(row + 1) * COLS];
        for (o, c) in out.iter_mut().zip(cells) {
            *o = *c as u8;
        }
        out.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1)
    }

    /// Writes bytes as a terminal would.
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.byte(b);
        }
    }

    fn byte(&mut self, b: u8) {
        match self.escape {
            Escape::None => self.plain(b),
            Escape::Start => {
                self.escape = if b == b'[' {
                    Escape::Csi { len: 0 }
                } else {
                    // Two-byte sequences (`ESC O`, `ESC c`, ...) end here.
                    Escape::None
                };
            }
            Escape::Csi { len } => {
                if (0x40..=0x7e).contains(&b) {
                    self.escape = Escape::None;
                    self.csi(b, len);
                } else if len < MAX_ESCAPE {
                    self.params[len] = b;
                    self.escape = Escape::Csi { len: len + 1 };
                } else {
                    self.escape = Escape::None;
                }
            }
        }
    }

    fn plain(&mut self, b: u8) {
        match b {
            0x1b => self.escape = Escape::Start,
            b'\n' => self.newline(),
            b'\r' => self.col = 0,
            b'\t' => {
                let next = (self.col / 8 + 1) * 8;
                if next >= COLS {
                    self.newline();
                } else {
                    self.col = next;
                }
            }
            0x08 => self.col = self.col.saturating_sub(1),
            0x07 => {} // bell
            0x20..=0x7e => self.put(b),
            _ => self.put(UNPRINTABLE),
        }
    }

    /// Draws `glyph` at the cursor and advances it, wrapping at the line's end.
    fn put(&mut self, glyph: u8) {
        let at = self.row * COLS + self.col;
        self.cells[at] = ATTR | u16::from(glyph);
        self.mark(at, at + 1);
        self.col += 1;
        if self.col == COLS {
            self.newline();
        }
    }

    fn newline(&mut self) {
        self.col = 0;
        if self.row + 1 < ROWS {
            self.row += 1;
        } else {
            self.cells.copy_within(COLS.., 0);
            self.cells[(ROWS - 1) * COLS..].fill(BLANK);
            self.mark(0, COLS * ROWS);
        }
    }

    /// Acts on `ESC [ params final`.
    fn csi(&mut self, fin: u8, len: usize) {
        let n = self.params[..len]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .fold(0usize, |n, &d| (n * 10 + usize::from(d - b'0')).min(COLS));
        match fin {
            b'K' => {
                let (start, end) = (self.row * COLS + self.col, (self.row + 1) * COLS);
                self.cells[start..end].fill(BLANK);
                self.mark(start, end);
            }
            b'J' if n == 2 => {
                self.cells.fill(BLANK);
                self.mark(0, COLS * ROWS);
            }
            b'C' => self.col = (self.col + n.max(1)).min(COLS - 1),
            b'D' => self.col = self.col.saturating_sub(n.max(1)),
            b'H' if len == 0 => (self.row, self.col) = (0, 0),
            _ => {}
        }
    }

    fn mark(&mut self, start: usize, end: usize) {
        self.dirty = Some(match self.dirty {
            Some((s, e)) => (s.min(start), e.max(end)),
            None => (start, end),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text(s: &Screen, row: usize) -> std::string::String {
        let mut buf = [0; COLS];
        let n = s.row_text(row, &mut buf);
        std::string::String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn lines_wrap_and_scroll() {
        let mut s = Screen::new();
        s.write(b"first\r\nsecond\n");
        assert_eq!(
            (text(&s, 0), text(&s, 1)),
            ("first".into(), "second".into())
        );
        for i in 0..ROWS {
            s.write(std::format!("line {i}\n").as_bytes());
        }
        assert_eq!(text(&s, ROWS - 2), std::format!("line {}", ROWS - 1));
        assert_eq!(text(&s, ROWS - 1), "");
        s.write(&[b'x'; COLS + 3]);
        assert_eq!(s.cursor(), (ROWS - 1, 3));
    }

    #[test]
    fn the_line_editors_sequences_act_and_vanish() {
        let mut s = Screen::new();
        s.write(b"xl> helo\x08\x08lo\r\x1b[Kxl> ok\x1b[1;5C\x1bOc");
        assert_eq!(text(&s, 0), "xl> ok c");
        s.write(b"\x1b[2J\x1b[H!");
        assert_eq!(text(&s, 0), "!");
        s.write(b"\x01\xc3");
        assert_eq!(s.cells()[1] as u8, UNPRINTABLE);
    }

    #[test]
    fn dirty_covers_changes_and_resets() {
        let mut s = Screen::new();
        assert_eq!(s.take_dirty(), Some((0, COLS * ROWS)));
        assert_eq!(s.take_dirty(), None);
        s.write(b"\n ab");
        assert_eq!(s.take_dirty(), Some((COLS, COLS + 3)));
    }

    proptest! {
        #[test]
        fn any_bytes_keep_the_cursor_inside(bytes in proptest::collection::vec(any::<u8>(), 0..4000)) {
            let mut s = Screen::new();
            s.write(&bytes);
            let (row, col) = s.cursor();
            prop_assert!(row < ROWS && col < COLS);
            if let Some((a, b)) = s.take_dirty() {
                prop_assert!(a < b && b <= COLS * ROWS);
            }
        }
    }
}
