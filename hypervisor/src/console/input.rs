//! Serial input routing, as Xen does it: input goes to dom0 (read with
//! `console_io(CONSOLEIO_read)`, announced with `VIRQ_CONSOLE`) until Ctrl-A is typed three
//! times in a row, which switches it to the hypervisor, where each key is a debug key; three
//! more Ctrl-A switch back. One or two Ctrl-A followed by another key are passed on as typed.

/// The switch character, Ctrl-A.
pub const SWITCH_CHAR: u8 = 0x01;
/// How many switch characters in a row switch the input.
const SWITCH_COUNT: u8 = 3;

/// Who serial input goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    /// dom0's console.
    Dom0,
    /// The hypervisor's debug keys.
    Hypervisor,
}

/// What one received byte (plus any Ctrl-A held back before it) amounts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// A byte for dom0.
    Guest(u8),
    /// A debug key for the hypervisor.
    DebugKey(u8),
    /// The input switched.
    Switched(Focus),
}

/// Counts Ctrl-A and routes everything else.
#[derive(Clone, Copy, Debug)]
pub struct InputSwitch {
    focus: Focus,
    held: u8,
}

impl Default for InputSwitch {
    fn default() -> Self {
        Self::new()
    }
}

impl InputSwitch {
    /// Input goes to dom0.
    pub const fn new() -> Self {
        Self {
            focus: Focus::Dom0,
            held: 0,
        }
    }

    /// Who input goes to now.
    pub fn focus(&self) -> Focus {
        self.focus
    }

    /// Routes one received byte, calling `out` for each resulting input in order.
    pub fn feed(&mut self, byte: u8, mut out: impl FnMut(Input)) {
        if byte == SWITCH_CHAR {
            self.held += 1;
            if self.held == SWITCH_COUNT {
                self.held = 0;
                self.focus = match self.focus {
                    Focus::Dom0 => Focus::Hypervisor,
                    Focus::Hypervisor => Focus::Dom0,
                };
                out(Input::Switched(self.focus));
            }
            return;
        }
        for b in core::iter::repeat_n(SWITCH_CHAR, usize::from(self.held)).chain([byte]) {
            out(self.route(b));
        }
        self.held = 0;
    }

    fn route(&self, b: u8) -> Input {
        match self.focus {
            Focus::Dom0 => Input::Guest(b),
            Focus::Hypervisor => Input::DebugKey(b),
        }
    }
}

/// Bytes for dom0 waiting to be read: a fixed ring that drops new bytes when full (as Xen's
/// serial receive ring does).
#[derive(Clone, Debug)]
pub struct InputRing<const N: usize> {
    buf: [u8; N],
    head: usize,
    len: usize,
}

impl<const N: usize> Default for InputRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> InputRing<N> {
    /// An empty ring.
    pub const fn new() -> Self {
        Self {
            buf: [0; N],
            head: 0,
            len: 0,
        }
    }

    /// Appends `b`; returns false (and drops it) when full.
    pub fn push(&mut self, b: u8) -> bool {
        if self.len == N {
            return false;
        }
        self.buf[(self.head + self.len) % N] = b;
        self.len += 1;
        true
    }

    /// Moves up to `out.len()` bytes out, oldest first; returns how many.
    pub fn pop_into(&mut self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len);
        for o in out.iter_mut().take(n) {
            *o = self.buf[self.head];
            self.head = (self.head + 1) % N;
        }
        self.len -= n;
        n
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn feed_all(s: &mut InputSwitch, bytes: &[u8]) -> Vec<Input> {
        let mut v = Vec::new();
        for &b in bytes {
            s.feed(b, |i| v.push(i));
        }
        v
    }

    #[test]
    fn three_ctrl_a_switch_and_switch_back() {
        let mut s = InputSwitch::new();
        assert_eq!(feed_all(&mut s, b"a"), [Input::Guest(b'a')]);
        assert_eq!(
            feed_all(&mut s, b"\x01\x01\x01q"),
            [Input::Switched(Focus::Hypervisor), Input::DebugKey(b'q')]
        );
        assert_eq!(s.focus(), Focus::Hypervisor);
        assert_eq!(
            feed_all(&mut s, b"\x01\x01\x01x"),
            [Input::Switched(Focus::Dom0), Input::Guest(b'x')]
        );
    }

    #[test]
    fn fewer_ctrl_a_are_passed_on_before_the_next_key() {
        let mut s = InputSwitch::new();
        assert_eq!(
            feed_all(&mut s, b"\x01\x01z"),
            [
                Input::Guest(SWITCH_CHAR),
                Input::Guest(SWITCH_CHAR),
                Input::Guest(b'z')
            ]
        );
        // Five in a row: one switch, then two held, released by the next key.
        assert_eq!(
            feed_all(&mut s, b"\x01\x01\x01\x01\x01k"),
            [
                Input::Switched(Focus::Hypervisor),
                Input::DebugKey(SWITCH_CHAR),
                Input::DebugKey(SWITCH_CHAR),
                Input::DebugKey(b'k')
            ]
        );
    }

    #[test]
    fn ring_keeps_order_and_drops_when_full() {
        let mut r = InputRing::<4>::new();
        assert!(r.is_empty());
        for b in 1..=4 {
            assert!(r.push(b));
        }
        assert!(!r.push(5), "full");
        let mut out = [0; 3];
        assert_eq!(r.pop_into(&mut out), 3);
        assert_eq!(out, [1, 2, 3]);
        assert!(r.push(6) && r.push(7));
        let mut out = [0; 8];
        assert_eq!(r.pop_into(&mut out), 3);
        assert_eq!(&out[..3], &[4, 6, 7]);
        assert_eq!(r.len(), 0);
    }
}
