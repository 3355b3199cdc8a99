//! A page shared with a guest (a ring page), seen as 32-bit atomics: the guest may change it
//! at any moment, so it is reached only by single loads and stores of words and bytes and
//! explicit barriers, never through references to its contents. The console backend and the
//! xenstore ring server read their rings through it.

use core::ops::Deref;
use core::sync::atomic::{AtomicU32, Ordering, fence};

/// A memory barrier between accesses to the shared page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Barrier {
    /// Earlier loads before later loads (`xen_rmb`).
    Read,
    /// Earlier stores before later stores (`xen_wmb`).
    Write,
    /// Everything before everything after (`xen_mb`).
    Full,
}

/// A page as 32-bit atomic words.
pub type Page = [AtomicU32; 1024];

/// A new zeroed [`Page`].
pub fn zeroed_page() -> Page {
    core::array::from_fn(|_| AtomicU32::new(0))
}

/// A page shared with a guest, mapped and seen as atomics (what the dom0 kernel uses: it turns
/// its mapping into a `&'static Page`); the console ring and the xenstore ring are reached
/// through it. Bytes are read and written inside their word with
/// atomic operations, so the guest's concurrent writes never tear anything.
#[derive(Debug)]
pub struct AtomicRing<P: Deref<Target = Page>>(pub P);

impl<P: Deref<Target = Page>> AtomicRing<P> {
    pub(crate) fn word(&self, byte_offset: usize) -> &AtomicU32 {
        &self.0[(byte_offset / 4) % 1024]
    }

    pub(crate) fn load_byte(&self, byte_offset: usize) -> u8 {
        let w = self.word(byte_offset).load(Ordering::Relaxed);
        (w >> ((byte_offset % 4) * 8)) as u8
    }

    /// Stores a byte of the page (also used by fake guests in tests).
    pub fn store_byte(&self, byte_offset: usize, byte: u8) {
        let shift = (byte_offset % 4) * 8;
        let word = self.word(byte_offset);
        word.fetch_and(!(0xff << shift), Ordering::Relaxed);
        word.fetch_or(u32::from(byte) << shift, Ordering::Relaxed);
    }
}

/// Word and byte access to any page shared with a guest, for ring protocols other than the
/// console's (the xenstore ring).
pub trait SharedPage {
    /// Loads the 32-bit word at byte `offset` (4-aligned).
    fn load_u32(&self, offset: usize) -> u32;
    /// Stores the 32-bit word at byte `offset` (4-aligned).
    fn store_u32(&self, offset: usize, value: u32);
    /// Loads the byte at `offset`.
    fn load_u8(&self, offset: usize) -> u8;
    /// Stores the byte at `offset`.
    fn store_u8(&self, offset: usize, byte: u8);
    /// A barrier.
    fn fence(&self, kind: Barrier);
}

impl<P: Deref<Target = Page>> SharedPage for AtomicRing<P> {
    fn load_u32(&self, offset: usize) -> u32 {
        self.word(offset).load(Ordering::Relaxed)
    }

    fn store_u32(&self, offset: usize, value: u32) {
        self.word(offset).store(value, Ordering::Relaxed);
    }

    fn load_u8(&self, offset: usize) -> u8 {
        self.load_byte(offset)
    }

    fn store_u8(&self, offset: usize, byte: u8) {
        self.store_byte(offset, byte);
    }

    fn fence(&self, kind: Barrier) {
        fence(match kind {
            Barrier::Read => Ordering::Acquire,
            Barrier::Write => Ordering::Release,
            Barrier::Full => Ordering::SeqCst,
        });
    }
}
