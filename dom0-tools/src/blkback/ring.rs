//! The backend's end of a blkif shared ring spread over one or more granted pages
//! (`ring-ref` or `ring-ref0..ring-refN`).
//!
//! The frontend may change the pages at any moment, so a request is copied out word by word
//! once ([`BackRing::take_request`]) and only the copy is looked at afterwards. Indexes
//! are free-running and wrap; a slot is `index % size`. The backend's own indexes
//! (`req_cons`, `rsp_prod_pvt`) live here, never in shared memory.

use alloc::vec::Vec;

use guest_abi::PAGE_SIZE;
use guest_abi::io::blkif::{BLKIF_ENTRY_SIZE, BlkifResponse};
use guest_abi::io::ring::{
    REQ_EVENT_OFFSET, REQ_PROD_OFFSET, RING_ENTRIES_OFFSET, RSP_EVENT_OFFSET, RSP_PROD_OFFSET,
    RingIdx, needs_notify, ring_size,
};
use zerocopy::IntoBytes;

use crate::shared_page::{Barrier, SharedPage};

const PAGE: usize = PAGE_SIZE as usize;

/// One request as copied from the ring.
pub type RawRequest = [u8; BLKIF_ENTRY_SIZE];

/// What the ring's indexes say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pending {
    /// Nothing to consume.
    Empty,
    /// At least one request is there.
    Request,
    /// `req_prod` is more than a ring ahead of what the backend consumed: the frontend is
    /// broken or hostile.
    Overflow,
}

/// The backend's end of a ring.
#[derive(Debug)]
pub struct BackRing<P: SharedPage> {
    pages: Vec<P>,
    size: u32,
    req_cons: RingIdx,
    rsp_prod_pvt: RingIdx,
}

impl<P: SharedPage> BackRing<P> {
    /// The ring over `pages` (in `ring-ref` order); both sides start at index 0, as the
    /// frontend initialised it (`SHARED_RING_INIT`, `BACK_RING_INIT`).
    pub fn new(pages: Vec<P>) -> Self {
        let size = ring_size(pages.len() * PAGE, BLKIF_ENTRY_SIZE);
        Self {
            pages,
            size,
            req_cons: 0,
            rsp_prod_pvt: 0,
        }
    }

    /// Entries in the ring (zero if the pages hold none).
    pub fn size(&self) -> u32 {
        self.size
    }

    /// The pages, to unmap them.
    pub fn into_pages(self) -> Vec<P> {
        self.pages
    }

    fn load(&self, offset: usize) -> u32 {
        match self.pages.get(offset / PAGE) {
            Some(p) => p.load_u32(offset % PAGE),
            None => 0,
        }
    }

    fn store(&self, offset: usize, value: u32) {
        if let Some(p) = self.pages.get(offset / PAGE) {
            p.store_u32(offset % PAGE, value);
        }
    }

    fn fence(&self, kind: Barrier) {
        if let Some(p) = self.pages.first() {
            p.fence(kind);
        }
    }

    fn slot_offset(&self, index: RingIdx) -> usize {
        RING_ENTRIES_OFFSET + (index % self.size.max(1)) as usize * BLKIF_ENTRY_SIZE
    }

    /// Whether a request waits, and whether the indexes are sane.
    pub fn pending(&self) -> Pending {
        if self.size == 0 {
            return Pending::Overflow;
        }
        let prod = self.load(REQ_PROD_OFFSET);
        self.fence(Barrier::Read);
        match prod.wrapping_sub(self.req_cons) {
            0 => Pending::Empty,
            n if n > self.size => Pending::Overflow,
            _ => Pending::Request,
        }
    }

    /// Copies the next request out of the ring and consumes it. Call only after
    /// [`Self::pending`] said [`Pending::Request`].
    pub fn take_request(&mut self) -> RawRequest {
        let mut raw = [0u8; BLKIF_ENTRY_SIZE];
        let base = self.slot_offset(self.req_cons);
        for (i, word) in raw.chunks_exact_mut(4).enumerate() {
            word.copy_from_slice(&self.load(base + i * 4).to_le_bytes());
        }
        self.req_cons = self.req_cons.wrapping_add(1);
        raw
    }

    /// Writes a response into the next response slot (not yet visible to the frontend).
    pub fn put_response(&mut self, response: &BlkifResponse) {
        let base = self.slot_offset(self.rsp_prod_pvt);
        for (i, word) in response.as_bytes().chunks_exact(4).enumerate() {
            let mut w = [0; 4];
            w.copy_from_slice(word);
            self.store(base + i * 4, u32::from_le_bytes(w));
        }
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
    }

    /// Makes the responses written visible; returns whether the frontend asked for an event.
    pub fn push_responses(&mut self) -> bool {
        let old = self.load(RSP_PROD_OFFSET);
        self.fence(Barrier::Write);
        self.store(RSP_PROD_OFFSET, self.rsp_prod_pvt);
        self.fence(Barrier::Full);
        needs_notify(old, self.rsp_prod_pvt, self.load(RSP_EVENT_OFFSET))
    }

    /// Asks for an event at the next request, then looks again so a request that arrived
    /// meanwhile is not missed (`RING_FINAL_CHECK_FOR_REQUESTS`).
    pub fn final_check(&mut self) -> Pending {
        match self.pending() {
            Pending::Empty => {}
            other => return other,
        }
        self.store(REQ_EVENT_OFFSET, self.req_cons.wrapping_add(1));
        self.fence(Barrier::Full);
        self.pending()
    }
}
