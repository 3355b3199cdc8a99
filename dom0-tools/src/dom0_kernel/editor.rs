//! Line editing on a serial terminal in raw mode: the kernel echoes what is typed, since
//! the terminal does not.
//!
//! Enter (CR, LF or CR LF) ends the line; Backspace or DEL erases a character; Ctrl-U
//! erases the line; Ctrl-C abandons it. Printable ASCII is taken, other control bytes and
//! escape sequences (arrow keys) are dropped, and a line stops growing at [`MAX_LINE`].

use alloc::string::String;
use alloc::vec::Vec;

/// Longest line kept; further characters are dropped.
pub const MAX_LINE: usize = 4096;

/// What a key finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    /// Enter: the line typed.
    Line(String),
    /// Ctrl-C: the line was abandoned.
    Interrupt,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Normal,
    /// After a CR: a LF right after it is part of the same Enter.
    AfterCr,
    /// After ESC.
    Escape,
    /// Inside `ESC [ ...` until its final byte.
    Csi,
}

/// The line being typed.
#[derive(Clone, Debug, Default)]
pub struct LineEditor {
    line: String,
    state: State,
}

const BACKSPACE: u8 = 0x08;
const DEL: u8 = 0x7f;
const CTRL_C: u8 = 0x03;
const CTRL_U: u8 = 0x15;
const ESC: u8 = 0x1b;
const ERASE: &[u8] = b"\x08 \x08";

impl LineEditor {
    /// The text typed so far (to draw it again after other output).
    pub fn text(&self) -> &str {
        &self.line
    }

    /// Takes one typed byte; appends what the terminal should show to `echo`.
    pub fn key(&mut self, byte: u8, echo: &mut Vec<u8>) -> Option<Key> {
        let state = core::mem::take(&mut self.state);
        match (state, byte) {
            (State::AfterCr, b'\n') => None,
            (State::Escape, b'[') => {
                self.state = State::Csi;
                None
            }
            (State::Escape, _) => None,
            (State::Csi, 0x40..=0x7e) => None,
            (State::Csi, _) => {
                self.state = State::Csi;
                None
            }
            (_, b'\r' | b'\n') => {
                if byte == b'\r' {
                    self.state = State::AfterCr;
                }
                echo.push(b'\n');
                Some(Key::Line(core::mem::take(&mut self.line)))
            }
            (_, BACKSPACE | DEL) => {
                if self.line.pop().is_some() {
                    echo.extend_from_slice(ERASE);
                }
                None
            }
            (_, CTRL_U) => {
                for _ in 0..self.line.len() {
                    echo.extend_from_slice(ERASE);
                }
                self.line.clear();
                None
            }
            (_, CTRL_C) => {
                self.line.clear();
                echo.extend_from_slice(b"^C\n");
                Some(Key::Interrupt)
            }
            (_, ESC) => {
                self.state = State::Escape;
                None
            }
            (_, 0x20..=0x7e) if self.line.len() < MAX_LINE => {
                self.line.push(char::from(byte));
                echo.push(byte);
                None
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Types `bytes`; returns the keys finished and the echo.
    fn typed(e: &mut LineEditor, bytes: &[u8]) -> (Vec<Key>, Vec<u8>) {
        let mut echo = Vec::new();
        let keys = bytes.iter().filter_map(|&b| e.key(b, &mut echo)).collect();
        (keys, echo)
    }

    fn line(s: &str) -> Key {
        Key::Line(s.into())
    }

    #[test]
    fn echoes_and_ends_lines_on_any_enter() {
        let mut e = LineEditor::default();
        let (keys, echo) = typed(&mut e, b"list\r\ninfo\nhelp\rx\r\r");
        assert_eq!(
            keys,
            [
                line("list"),
                line("info"),
                line("help"),
                line("x"),
                line("")
            ]
        );
        assert_eq!(echo, b"list\ninfo\nhelp\nx\n\n");
    }

    #[test]
    fn backspace_ctrl_u_and_ctrl_c() {
        let mut e = LineEditor::default();
        let (keys, echo) = typed(&mut e, b"lisx\x7f\x08t\x08t\r");
        assert_eq!(keys, [line("lit")]);
        assert_eq!(echo, b"lisx\x08 \x08\x08 \x08t\x08 \x08t\n");
        let (keys, echo) = typed(&mut e, b"\x7fab\x15c\r");
        assert_eq!(keys, [line("c")]);
        assert_eq!(echo, b"ab\x08 \x08\x08 \x08c\n");
        let (keys, echo) = typed(&mut e, b"oops\x03");
        assert_eq!(keys, [Key::Interrupt]);
        assert_eq!(echo, b"oops^C\n");
        assert_eq!(e.text(), "");
    }

    #[test]
    fn drops_escape_sequences_and_control_bytes() {
        let mut e = LineEditor::default();
        let (keys, echo) = typed(&mut e, b"a\x1b[A\x1b[1;5Cb\x1bOc\x01\t\xc3\xa9d\r");
        // ESC O is a two-byte sequence: its 'O' goes, the 'c' after it stays.
        assert_eq!(keys, [line("abcd")]);
        assert_eq!(echo, b"abcd\n");
    }

    #[test]
    fn long_lines_stop_growing() {
        let mut e = LineEditor::default();
        let (_, echo) = typed(&mut e, &[b'x'; MAX_LINE + 10]);
        assert_eq!((e.text().len(), echo.len()), (MAX_LINE, MAX_LINE));
    }
}
