//! A PC keyboard as console input: scan codes (set 1, what the i8042 controller delivers
//! with translation on, as firmware leaves it) turned into the bytes a serial terminal would
//! send for the same keys, so the console input path cannot tell the two apart.
//!
//! US layout. Shift and Caps Lock give upper case, Ctrl with a letter its control code
//! (Ctrl-A is the console switch, Ctrl-C dom0's interrupt); Enter is `\r`, Backspace DEL
//! (0x7f), the arrow, Home, End and Delete keys their VT100 sequences (`ESC [ A` ...), as
//! dom0's line editor expects. Key releases, the `0xe0` prefix and keys with no byte of
//! their own only change state.

/// The bytes of one key press: at most a 4-byte escape sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyBytes {
    bytes: [u8; 4],
    len: u8,
}

impl KeyBytes {
    fn one(b: u8) -> Self {
        Self {
            bytes: [b, 0, 0, 0],
            len: 1,
        }
    }

    fn sequence(s: &[u8]) -> Self {
        let mut k = Self::default();
        let n = s.len().min(4);
        k.bytes[..n].copy_from_slice(&s[..n]);
        k.len = n as u8;
        k
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Set 1 make codes 0x00–0x39 without and with Shift (0 where the key has no byte).
const PLAIN: &[u8; 0x3a] =
    b"\0\x1b1234567890-=\x7f\tqwertyuiop[]\r\0asdfghjkl;'`\0\\zxcvbnm,./\0*\0 ";
const SHIFTED: &[u8; 0x3a] =
    b"\0\x1b!@#$%^&*()_+\x7f\tQWERTYUIOP{}\r\0ASDFGHJKL:\"~\0|ZXCVBNM<>?\0*\0 ";

const LEFT_SHIFT: u8 = 0x2a;
const RIGHT_SHIFT: u8 = 0x36;
const CTRL: u8 = 0x1d;
const CAPS_LOCK: u8 = 0x3a;
const EXTENDED: u8 = 0xe0;
const RELEASE: u8 = 0x80;

/// The decoder's modifier state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keyboard {
    shift: bool,
    ctrl: bool,
    caps: bool,
    extended: bool,
}

impl Keyboard {
    /// A keyboard with no key held.
    pub const fn new() -> Self {
        Self {
            shift: false,
            ctrl: false,
            caps: false,
            extended: false,
        }
    }

    /// Feeds one scan code; returns the bytes of a key press, if it makes any.
    pub fn feed(&mut self, code: u8) -> Option<KeyBytes> {
        if code == EXTENDED {
            self.extended = true;
            return None;
        }
        let extended = core::mem::take(&mut self.extended);
        let released = code & RELEASE != 0;
        let key = code & !RELEASE;
        match key {
            LEFT_SHIFT | RIGHT_SHIFT if !extended => {
                self.shift = !released;
                return None;
            }
            CTRL => {
                self.ctrl = !released;
                return None;
            }
            _ => {}
        }
        if released {
            return None;
        }
        if extended {
            return match key {
                0x48 => Some(KeyBytes::sequence(b"\x1b[A")),
                0x50 => Some(KeyBytes::sequence(b"\x1b[B")),
                0x4d => Some(KeyBytes::sequence(b"\x1b[C")),
                0x4b => Some(KeyBytes::sequence(b"\x1b[D")),
                0x47 => Some(KeyBytes::sequence(b"\x1b[H")),
                0x4f => Some(KeyBytes::sequence(b"\x1b[F")),
                0x53 => Some(KeyBytes::sequence(b"\x1b[3~")),
                0x1c => Some(KeyBytes::one(b'\r')), // keypad Enter
                0x35 => Some(KeyBytes::one(b'/')),  // keypad slash
                _ => None,
            };
        }
        if key == CAPS_LOCK {
            self.caps = !self.caps;
            return None;
        }
        let plain = *PLAIN.get(usize::from(key))?;
        if plain == 0 {
            return None;
        }
        if self.ctrl && plain.is_ascii_lowercase() {
            return Some(KeyBytes::one(plain - b'a' + 1));
        }
        let shifted = SHIFTED[usize::from(key)];
        let byte = if plain.is_ascii_lowercase() {
            if self.shift != self.caps {
                shifted
            } else {
                plain
            }
        } else if self.shift {
            shifted
        } else {
            plain
        };
        Some(KeyBytes::one(byte))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn typed(codes: &[u8]) -> std::vec::Vec<u8> {
        let mut k = Keyboard::new();
        codes
            .iter()
            .filter_map(|&c| k.feed(c))
            .flat_map(|b| b.as_slice().to_vec())
            .collect()
    }

    #[test]
    fn letters_digits_and_shift() {
        // "Hi 1!" then Enter: Shift held for H and !, released in between.
        let codes = [
            0x2a, 0x23, 0xaa, 0xa3, 0x17, 0x97, 0x39, 0x02, 0x2a, 0x02, 0xaa, 0x1c,
        ];
        assert_eq!(typed(&codes), b"Hi 1!\r");
    }

    #[test]
    fn control_caps_and_arrows() {
        // Ctrl-A, Ctrl-C, Caps Lock then a, Shift+a (lower again), Up, Backspace.
        let codes = [
            0x1d, 0x1e, 0x2e, 0x9d, 0x3a, 0x1e, 0x2a, 0x1e, 0xaa, 0xe0, 0x48, 0xe0, 0xc8, 0x0e,
        ];
        assert_eq!(typed(&codes), b"\x01\x03Aa\x1b[A\x7f");
    }

    proptest! {
        #[test]
        fn any_codes_decode_without_panic(codes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut k = Keyboard::new();
            for c in codes {
                if let Some(b) = k.feed(c) {
                    prop_assert!(!b.as_slice().is_empty() && b.as_slice().len() <= 4);
                }
            }
        }
    }
}
