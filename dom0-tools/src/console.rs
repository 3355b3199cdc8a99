//! The console backend: dom0's end of each domU's console ring (`io/console.h`), the job
//! xenconsoled does under Xen.
//!
//! The ring page is shared with the guest, which may change it at any moment, so it is
//! reached only through [`ConsoleRing`]: loads and stores of single indexes and bytes, and
//! explicit barriers, in the order xenconsoled uses them:
//! - output (guest to dom0): read `out_cons` and `out_prod`, full barrier, copy the bytes
//!   between them (indexes masked with the ring size), full barrier, store `out_cons`,
//!   notify the guest;
//! - input (dom0 to guest): read `in_cons` and `in_prod`, full barrier, write bytes into
//!   the free space, write barrier, store `in_prod`, notify.
//!
//! A guest that sets `out_prod` more than a ring's size ahead of `out_cons` has broken its
//! ring: the backend skips what it cannot trust (it keeps the last ring's worth) and says
//! so; nothing a guest writes can make it panic or loop.
//!
//! Output is split into lines and shown as `[name] line`, except for the domain the console
//! is attached to (`console DOM`), whose bytes pass through unchanged (it is the user's own
//! terminal session with that guest, as with `xl console`). Ctrl-] (0x1d, as in xl)
//! detaches.
//!
//! In `[name] line` form the guest shares the operator's terminal with dom0 and the other
//! domains, so its bytes are shown, not obeyed ([`escape_line`]): printable ASCII and TAB as
//! they are, every other byte (CR, ESC and the other control bytes, DEL, and every byte from
//! 0x80, which covers C1 controls such as the one-byte CSI 0x9b and all of UTF-8) as the four
//! characters `\xHH`. CRs at the start or the end of a line (CRLF or LFCR line ends) are
//! dropped. A guest can then neither move the cursor to overwrite a line, nor erase one, nor
//! print something that reads as another domain's or dom0's line.
//!
//! # Bounds
//!
//! Whatever the guest writes, per domain: dom0 holds at most [`MAX_LINE`] bytes of an
//! unfinished line and [`HISTORY`] bytes of recent output ([`Console::held_bytes`],
//! [`HELD_MAX`] in all); one [`Console::poll`] reads at most one ring
//! (`XenconsInterface::OUT_SIZE`, 2048 bytes) and writes at most [`poll_output_max`] bytes;
//! one [`Console::input`] writes at most one ring (`IN_SIZE`, 1024 bytes).

use alloc::vec::Vec;
use core::mem::offset_of;
use core::ops::Deref;
use core::sync::atomic::Ordering;

use crate::shared_page::{AtomicRing, Barrier, Page, SharedPage};

use guest_abi::EvtchnPort;
use guest_abi::console::XenconsInterface;

/// The byte that detaches from a console: Ctrl-] (`^]`), as in `xl console`.
pub const ESCAPE: u8 = 0x1d;
/// A line longer than this is shown in pieces.
pub const MAX_LINE: usize = 1024;
/// How much of a domain's recent output is kept for `wait-for`.
pub const HISTORY: usize = 16 * 1024;
/// Most bytes a [`Console`] holds ([`Console::held_bytes`] never exceeds it).
pub const HELD_MAX: usize = MAX_LINE + HISTORY;

/// Most bytes one [`Console::poll`] of a domain called `name_len` bytes writes: every byte of
/// a ring and of an unfinished line escaped (4 bytes each), a `[name] ` prefix and a newline
/// for each line (a ring of newlines, the unfinished line and the broken-ring note), and the
/// note's text.
pub const fn poll_output_max(name_len: usize) -> usize {
    let ring = XenconsInterface::OUT_SIZE as usize;
    4 * (ring + MAX_LINE) + (ring + 2) * (name_len + 4) + 64
}

/// Writes `line` as text that cannot drive a terminal: printable ASCII (0x20 to 0x7e) and
/// TAB as they are, every other byte as `\xHH` (lower-case hex).
pub fn escape_line(line: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in line {
        if b == b'\t' || (0x20..0x7f).contains(&b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]);
        }
    }
}

/// One of the ring's four indexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingIndex {
    /// `in_cons` (written by the guest).
    InCons,
    /// `in_prod` (written by dom0).
    InProd,
    /// `out_cons` (written by dom0).
    OutCons,
    /// `out_prod` (written by the guest).
    OutProd,
}

impl RingIndex {
    /// Byte offset in the page.
    pub const fn offset(self) -> usize {
        match self {
            Self::InCons => offset_of!(XenconsInterface, in_cons),
            Self::InProd => offset_of!(XenconsInterface, in_prod),
            Self::OutCons => offset_of!(XenconsInterface, out_cons),
            Self::OutProd => offset_of!(XenconsInterface, out_prod),
        }
    }
}

/// Access to a console ring page shared with a guest.
pub trait ConsoleRing {
    /// Loads an index.
    fn load_index(&self, index: RingIndex) -> u32;
    /// Stores an index.
    fn store_index(&self, index: RingIndex, value: u32);
    /// Loads byte `pos` (`< OUT_SIZE`) of the `out` ring.
    fn load_out(&self, pos: usize) -> u8;
    /// Stores byte `pos` (`< IN_SIZE`) of the `in` ring.
    fn store_in(&self, pos: usize, byte: u8);
    /// A barrier.
    fn barrier(&self, kind: Barrier);
}

impl<P: Deref<Target = Page>> AtomicRing<P> {
    /// Loads byte `pos` of the `in` ring (for fake guests in tests).
    pub fn load_in(&self, pos: usize) -> u8 {
        self.load_byte(offset_of!(XenconsInterface, in_) + pos % XenconsInterface::IN_SIZE as usize)
    }

    /// Stores byte `pos` of the `out` ring (for fake guests in tests).
    pub fn store_out(&self, pos: usize, byte: u8) {
        self.store_byte(
            offset_of!(XenconsInterface, out) + pos % XenconsInterface::OUT_SIZE as usize,
            byte,
        );
    }
}

impl<P: Deref<Target = Page>> ConsoleRing for AtomicRing<P> {
    fn load_index(&self, index: RingIndex) -> u32 {
        self.word(index.offset()).load(Ordering::Relaxed)
    }

    fn store_index(&self, index: RingIndex, value: u32) {
        self.word(index.offset()).store(value, Ordering::Relaxed);
    }

    fn load_out(&self, pos: usize) -> u8 {
        self.load_byte(
            offset_of!(XenconsInterface, out) + pos % XenconsInterface::OUT_SIZE as usize,
        )
    }

    fn store_in(&self, pos: usize, byte: u8) {
        self.store_byte(
            offset_of!(XenconsInterface, in_) + pos % XenconsInterface::IN_SIZE as usize,
            byte,
        );
    }

    fn barrier(&self, kind: Barrier) {
        SharedPage::fence(self, kind);
    }
}

/// What one drain of the output ring found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// The bytes, in order.
    pub bytes: Vec<u8>,
    /// Bytes skipped because the guest's indexes were more than a ring apart.
    pub skipped: u32,
}

/// Copies everything the guest produced out of the ring and frees the space. Returns
/// `None` when the ring was empty (no notification is needed then).
pub fn drain_output(ring: &impl ConsoleRing) -> Option<Drained> {
    let cons = ring.load_index(RingIndex::OutCons);
    let prod = ring.load_index(RingIndex::OutProd);
    ring.barrier(Barrier::Full);
    let pending = prod.wrapping_sub(cons);
    if pending == 0 {
        return None;
    }
    // Never trust more than one ring's worth: a guest could claim 4 GiB.
    let size = XenconsInterface::OUT_SIZE;
    let (start, skipped) = if pending > size {
        (prod.wrapping_sub(size), pending - size)
    } else {
        (cons, 0)
    };
    let len = prod.wrapping_sub(start);
    let bytes = (0..len)
        .map(|i| ring.load_out(XenconsInterface::out_index(start.wrapping_add(i))))
        .collect();
    ring.barrier(Barrier::Full);
    ring.store_index(RingIndex::OutCons, prod);
    Some(Drained { bytes, skipped })
}

/// Puts as much of `bytes` into the input ring as fits; returns how many went in (0 means
/// no notification is needed).
pub fn write_input(ring: &impl ConsoleRing, bytes: &[u8]) -> usize {
    let cons = ring.load_index(RingIndex::InCons);
    let prod = ring.load_index(RingIndex::InProd);
    ring.barrier(Barrier::Full);
    let used = prod.wrapping_sub(cons);
    // A guest that moved in_cons past in_prod has broken its ring: treat it as full.
    let space = XenconsInterface::IN_SIZE.saturating_sub(used) as usize;
    let n = space.min(bytes.len());
    if n == 0 {
        return 0;
    }
    for (i, &b) in bytes[..n].iter().enumerate() {
        ring.store_in(XenconsInterface::in_index(prod.wrapping_add(i as u32)), b);
    }
    ring.barrier(Barrier::Write);
    ring.store_index(RingIndex::InProd, prod.wrapping_add(n as u32));
    n
}

/// dom0's end of one domain's console: its ring, its event channel, the unfinished line
/// and recent output.
#[derive(Debug)]
pub struct Console<R> {
    /// The ring page mapping.
    pub ring: R,
    /// dom0's local port bound to the domain's console port.
    pub port: EvtchnPort,
    partial: Vec<u8>,
    history: Vec<u8>,
}

impl<R: ConsoleRing> Console<R> {
    /// A console over `ring`, notified through `port`.
    pub fn new(ring: R, port: EvtchnPort) -> Self {
        Self {
            ring,
            port,
            partial: Vec::new(),
            history: Vec::new(),
        }
    }

    /// Drains the ring. Complete lines go to `out` as `[name] line\n`, escaped with
    /// [`escape_line`] (or, when `attached`, every byte as it is). Writes at most
    /// [`poll_output_max`]`(name.len())` bytes. Returns whether the guest must be notified.
    pub fn poll(&mut self, name: &str, attached: bool, out: &mut Vec<u8>) -> bool {
        let drained = drain_output(&self.ring);
        let bytes = match &drained {
            Some(d) => {
                if d.skipped > 0 {
                    self.flush(name, out);
                    let note = alloc::format!(
                        "[{name}] (console ring broken: {} bytes lost)\n",
                        d.skipped
                    );
                    out.extend_from_slice(note.as_bytes());
                }
                self.remember(&d.bytes);
                &d.bytes[..]
            }
            None => &[],
        };
        if attached {
            // The unfinished line first: it is what the attached user is looking at.
            out.append(&mut self.partial);
            out.extend_from_slice(bytes);
            return drained.is_some();
        }
        for &b in bytes {
            if b == b'\n' {
                self.emit_line(name, out);
            } else {
                if self.partial.capacity() == 0 {
                    self.partial.reserve_exact(MAX_LINE);
                }
                self.partial.push(b);
                if self.partial.len() >= MAX_LINE {
                    self.flush(name, out);
                }
            }
        }
        drained.is_some()
    }

    /// Writes the unfinished line, if any, as a line of its own.
    pub fn flush(&mut self, name: &str, out: &mut Vec<u8>) {
        if !self.partial.is_empty() {
            self.emit_line(name, out);
        }
    }

    fn emit_line(&mut self, name: &str, out: &mut Vec<u8>) {
        // CRs next to the line end (CRLF) or start (LFCR, as GRUB ends lines) are line
        // ends, and dropping them moves nothing.
        let line = &self.partial[..];
        let line = &line[line.iter().take_while(|&&b| b == b'\r').count()..];
        let line = &line[..line.len() - line.iter().rev().take_while(|&&b| b == b'\r').count()];
        out.extend_from_slice(alloc::format!("[{name}] ").as_bytes());
        escape_line(line, out);
        self.partial.clear();
        out.push(b'\n');
    }

    fn remember(&mut self, bytes: &[u8]) {
        let bytes = &bytes[bytes.len().saturating_sub(HISTORY / 2)..];
        if self.history.capacity() == 0 {
            self.history.reserve_exact(HISTORY);
        }
        if self.history.len() + bytes.len() > HISTORY {
            // Keep the last HISTORY / 2 bytes, old and new together.
            let cut = (self.history.len() + bytes.len() - HISTORY / 2).min(self.history.len());
            self.history.drain(..cut);
        }
        self.history.extend_from_slice(bytes);
    }

    /// Bytes of dom0 memory this console holds (allocated capacity), at most [`HELD_MAX`].
    pub fn held_bytes(&self) -> usize {
        self.partial.capacity() + self.history.capacity()
    }

    /// Whether `text` appears in the recent output (the last [`HISTORY`] / 2 bytes at
    /// least).
    pub fn has_printed(&self, text: &[u8]) -> bool {
        text.is_empty() || self.history.windows(text.len()).any(|w| w == text)
    }

    /// Sends input to the guest; returns how many bytes fit.
    pub fn input(&mut self, bytes: &[u8]) -> usize {
        write_input(&self.ring, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared_page::zeroed_page;
    use alloc::boxed::Box;
    use alloc::string::String;
    use alloc::vec;
    use core::cell::RefCell;
    use proptest::prelude::*;

    type Ring = AtomicRing<Box<Page>>;

    fn ring() -> Ring {
        AtomicRing(Box::new(zeroed_page()))
    }

    /// What a guest's console driver does to print.
    fn guest_print(r: &Ring, text: &[u8]) {
        let prod = r.load_index(RingIndex::OutProd);
        for (i, &b) in text.iter().enumerate() {
            r.store_out(XenconsInterface::out_index(prod.wrapping_add(i as u32)), b);
        }
        r.store_index(RingIndex::OutProd, prod.wrapping_add(text.len() as u32));
    }

    /// What a guest's console driver does to read input.
    fn guest_read(r: &Ring) -> Vec<u8> {
        let cons = r.load_index(RingIndex::InCons);
        let prod = r.load_index(RingIndex::InProd);
        let bytes = (0..prod.wrapping_sub(cons))
            .map(|i| r.load_in(XenconsInterface::in_index(cons.wrapping_add(i))))
            .collect();
        r.store_index(RingIndex::InCons, prod);
        bytes
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
    }

    #[test]
    fn index_offsets_match_the_header() {
        assert_eq!(RingIndex::InCons.offset(), 3072);
        assert_eq!(RingIndex::InProd.offset(), 3076);
        assert_eq!(RingIndex::OutCons.offset(), 3080);
        assert_eq!(RingIndex::OutProd.offset(), 3084);
    }

    #[test]
    fn lines_are_prefixed_and_partial_lines_wait() {
        let mut c = Console::new(ring(), EvtchnPort(5));
        let mut out = Vec::new();
        assert!(!c.poll("web", false, &mut out));
        guest_print(&c.ring, b"Hello\r\nwor");
        assert!(c.poll("web", false, &mut out));
        assert_eq!(text(&out), "[web] Hello\n");
        guest_print(&c.ring, b"ld\n\nbye");
        c.poll("web", false, &mut out);
        assert_eq!(text(&out), "[web] Hello\n[web] world\n[web] \n");
        c.flush("web", &mut out);
        assert!(text(&out).ends_with("[web] bye\n"));
        assert!(c.has_printed(b"lo\r\nworld"));
        assert!(!c.has_printed(b"nope"));
    }

    #[test]
    fn attached_output_passes_through() {
        let mut c = Console::new(ring(), EvtchnPort(5));
        let mut out = Vec::new();
        guest_print(&c.ring, b"login");
        c.poll("web", false, &mut out);
        assert!(out.is_empty());
        guest_print(&c.ring, b": \x1b[1m");
        c.poll("web", true, &mut out);
        assert_eq!(out, b"login: \x1b[1m");
    }

    /// A guest's bytes cannot forge a line of dom0 or of another domain, nor hide text.
    #[test]
    fn control_bytes_are_shown_not_obeyed() {
        let mut c = Console::new(ring(), EvtchnPort(5));
        let mut out = Vec::new();
        let cases: [(&[u8], &str); 8] = [
            (b"ok\r[dom0] fake\n", "[web] ok\\x0d[dom0] fake\n"),
            (b"\r[dom0] fake\r\r\n", "[web] [dom0] fake\n"),
            (b"\x1b[2K\x1b[1Ghidden\n", "[web] \\x1b[2K\\x1b[1Ghidden\n"),
            (b"\x9b2Kc1 csi\n", "[web] \\x9b2Kc1 csi\n"),
            (
                "caf\u{e9} \u{202e}txt\n".as_bytes(),
                "[web] caf\\xc3\\xa9 \\xe2\\x80\\xaetxt\n",
            ),
            (
                b"bell\x07 del\x7f nul\0 bs\x08\n",
                "[web] bell\\x07 del\\x7f nul\\x00 bs\\x08\n",
            ),
            (b"tab\tkept, CRLF end\r\n", "[web] tab\tkept, CRLF end\n"),
            (b"back\\slash\n", "[web] back\\slash\n"),
        ];
        for (printed, shown) in cases {
            out.clear();
            guest_print(&c.ring, printed);
            c.poll("web", false, &mut out);
            assert_eq!(text(&out), shown);
            assert!(
                out.iter()
                    .all(|&b| b == b'\t' || b == b'\n' || (0x20..0x7f).contains(&b))
            );
        }
        // Attached, the bytes pass through raw: the user's own session with the guest.
        out.clear();
        guest_print(&c.ring, b"\x1b[2K\r\x9b");
        c.poll("web", true, &mut out);
        assert_eq!(out, b"\x1b[2K\r\x9b");
    }

    #[test]
    fn held_memory_is_bounded() {
        let mut c = Console::new(ring(), EvtchnPort(5));
        let mut out = Vec::new();
        for i in 0..200u32 {
            let line: Vec<u8> = (0..2048u32)
                .map(|j| if (i + j) % 1500 == 0 { b'\n' } else { 0x9b })
                .collect();
            guest_print(&c.ring, &line);
            out.clear();
            c.poll("name", false, &mut out);
            assert!(out.len() <= poll_output_max(4));
            assert!(c.held_bytes() <= HELD_MAX, "{}", c.held_bytes());
        }
        assert_eq!(c.held_bytes(), HELD_MAX);
        // The worst output: a ring of newlines after an unfinished line of escapes.
        let mut c = Console::new(ring(), EvtchnPort(5));
        guest_print(&c.ring, &[0x1b; MAX_LINE - 1]);
        c.poll("n", false, &mut out);
        out.clear();
        c.ring.store_index(RingIndex::OutProd, 1_000_000);
        c.poll("n", false, &mut out);
        assert!(out.len() <= poll_output_max(1), "{}", out.len());
    }

    #[test]
    fn long_lines_are_cut() {
        let mut c = Console::new(ring(), EvtchnPort(5));
        let mut out = Vec::new();
        for _ in 0..3 {
            guest_print(&c.ring, &[b'x'; 1000]);
            c.poll("a", false, &mut out);
        }
        assert_eq!(text(&out).lines().count(), 2);
    }

    #[test]
    fn indexes_wrap_around_u32() {
        let r = ring();
        r.store_index(RingIndex::OutCons, u32::MAX - 3);
        r.store_index(RingIndex::OutProd, u32::MAX - 3);
        guest_print(&r, b"wrapping!");
        let d = drain_output(&r).unwrap();
        assert_eq!(d.bytes, b"wrapping!");
        assert_eq!(r.load_index(RingIndex::OutCons), 5);
    }

    #[test]
    fn a_broken_ring_is_survived() {
        let r = ring();
        r.store_index(RingIndex::OutProd, 1_000_000);
        let d = drain_output(&r).unwrap();
        assert_eq!(d.bytes.len(), XenconsInterface::OUT_SIZE as usize);
        assert_eq!(d.skipped, 1_000_000 - 2048);
        assert_eq!(r.load_index(RingIndex::OutCons), 1_000_000);
        let mut c = Console::new(r, EvtchnPort(1));
        c.ring.store_index(RingIndex::OutProd, 1_000_000 + 5000);
        let mut out = Vec::new();
        c.poll("bad", false, &mut out);
        assert!(text(&out).starts_with("[bad] (console ring broken: 2952 bytes lost)\n"));
        // in_cons ahead of in_prod: the ring counts as full.
        c.ring.store_index(RingIndex::InCons, 10);
        assert_eq!(c.input(b"abc"), 0);
    }

    #[test]
    fn input_fills_the_free_space_only() {
        let mut c = Console::new(ring(), EvtchnPort(5));
        assert_eq!(c.input(b"ls\r"), 3);
        assert_eq!(guest_read(&c.ring), b"ls\r");
        assert_eq!(c.input(&[b'y'; 2000]), 1024);
        assert_eq!(c.input(b"z"), 0);
        assert_eq!(guest_read(&c.ring).len(), 1024);
        assert_eq!(c.input(b"z"), 1);
    }

    /// Records the order of accesses to check the barriers are where xenconsoled has them.
    struct Recording {
        inner: Ring,
        log: RefCell<Vec<String>>,
    }

    impl ConsoleRing for Recording {
        fn load_index(&self, i: RingIndex) -> u32 {
            self.log.borrow_mut().push(alloc::format!("load {i:?}"));
            self.inner.load_index(i)
        }
        fn store_index(&self, i: RingIndex, v: u32) {
            self.log.borrow_mut().push(alloc::format!("store {i:?}"));
            self.inner.store_index(i, v);
        }
        fn load_out(&self, pos: usize) -> u8 {
            self.log.borrow_mut().push("load byte".into());
            self.inner.load_out(pos)
        }
        fn store_in(&self, pos: usize, b: u8) {
            self.log.borrow_mut().push("store byte".into());
            self.inner.store_in(pos, b);
        }
        fn barrier(&self, k: Barrier) {
            self.log.borrow_mut().push(alloc::format!("{k:?}"));
        }
    }

    #[test]
    fn barriers_separate_indexes_and_data() {
        let r = Recording {
            inner: ring(),
            log: RefCell::new(Vec::new()),
        };
        guest_print(&r.inner, b"ab");
        drain_output(&r);
        assert_eq!(
            *r.log.borrow(),
            vec![
                "load OutCons",
                "load OutProd",
                "Full",
                "load byte",
                "load byte",
                "Full",
                "store OutCons"
            ]
        );
        r.log.borrow_mut().clear();
        write_input(&r, b"x");
        assert_eq!(
            *r.log.borrow(),
            vec![
                "load InCons",
                "load InProd",
                "Full",
                "store byte",
                "Write",
                "store InProd"
            ]
        );
    }

    proptest! {
        /// Whatever a hostile guest writes to its page, polling never panics and never
        /// returns more than one ring of bytes at a time.
        #[test]
        fn hostile_pages_never_panic(
            words in proptest::collection::vec(any::<u32>(), 4),
            data in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut c = Console::new(ring(), EvtchnPort(1));
            for (i, idx) in [RingIndex::InCons, RingIndex::InProd, RingIndex::OutCons, RingIndex::OutProd].into_iter().enumerate() {
                c.ring.store_index(idx, words[i]);
            }
            let mut out = Vec::new();
            c.poll("x", false, &mut out);
            prop_assert!(out.len() <= poll_output_max(1));
            prop_assert!(c.held_bytes() <= HELD_MAX);
            prop_assert!(c.input(&data) <= data.len());
            c.poll("x", true, &mut out);
        }

        /// Everything printed comes out, in order, whatever the chunking.
        #[test]
        fn output_is_complete_and_ordered(chunks in proptest::collection::vec("[a-z \n]{0,300}", 0..20)) {
            let mut c = Console::new(ring(), EvtchnPort(1));
            let mut out = Vec::new();
            for chunk in &chunks {
                guest_print(&c.ring, chunk.as_bytes());
                c.poll("d", true, &mut out);
            }
            prop_assert_eq!(text(&out), chunks.concat());
        }
    }
}
