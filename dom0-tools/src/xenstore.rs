//! dom0's end of a domain's xenstore ring (`io/xs_wire.h`): reads whole requests off the
//! request ring, has the [`Store`] answer each for that domain, and writes the replies
//! and the domain's watch events to the response ring.
//!
//! A message longer than the protocol's limit breaks the connection: the server answers
//! `E2BIG` and drops the request it was reading. The toolstack calls [`StoreServer::service`]
//! when the domain's store event channel fires (and on every wake), and notifies the
//! domain when it says something moved.
//!
//! # Bounds
//!
//! The guest writes the ring and its indexes at will, so what dom0 spends on it is bounded
//! whatever it writes:
//! - **memory**: at most [`PARTIAL_MAX`] bytes of the request being read (one whole message,
//!   header and [`PAYLOAD_MAX`] payload) and at most [`REPLIES_MAX`] bytes of replies and
//!   events the response ring had no room for: [`HELD_MAX`] in all per domain
//!   ([`StoreServer::held_bytes`] counts the capacity actually allocated); what the store
//!   itself holds for the domain is bounded by its quotas ([`crate::store`]);
//! - **back-pressure**, as xenstored applies it: while another reply might not fit under
//!   [`REPLIES_MAX`] (a guest that never advances `rsp_cons`), no request byte is taken
//!   from the ring, so the request ring fills and a well-behaved guest waits; a guest that
//!   moves `req_prod` more than [`RING_SIZE`] ahead of `req_cons` has broken its ring and
//!   what is in it is dropped;
//! - **work per [`StoreServer::service`] call**: at most [`RING_SIZE`] request bytes read
//!   (so at most `RING_SIZE / 16` = 64 messages answered) and at most [`RING_SIZE`] reply
//!   bytes written.

use alloc::vec::Vec;

use guest_abi::DomId;
use guest_abi::xenstore::XenstoreDomainInterface as Iface;

use crate::shared_page::{Barrier, SharedPage};
use crate::store::Store;
use crate::store::wire::{self, Header};
pub use crate::store::wire::{HEADER, msg};

/// Size of each of the two rings (`XENSTORE_RING_SIZE`).
pub const RING_SIZE: u32 = guest_abi::xenstore::XENSTORE_RING_SIZE;
/// Offset of the request ring.
const REQ: usize = Iface::REQ;
/// Offset of the response ring.
const RSP: usize = Iface::RSP;
const REQ_CONS: usize = Iface::REQ_CONS;
const REQ_PROD: usize = Iface::REQ_PROD;
const RSP_CONS: usize = Iface::RSP_CONS;
const RSP_PROD: usize = Iface::RSP_PROD;
/// `XENSTORE_PAYLOAD_MAX`.
pub const PAYLOAD_MAX: u32 = wire::PAYLOAD_MAX as u32;
/// Most bytes of an unfinished request held: one whole message of the largest size.
pub const PARTIAL_MAX: usize = HEADER + PAYLOAD_MAX as usize;
/// The longest reply or event: a header and a whole payload.
pub const REPLY_MAX: usize = HEADER + PAYLOAD_MAX as usize;
/// Most bytes of replies and events held that the response ring had no room for. No
/// request byte is taken, and no event queued, while another might not fit under it.
pub const REPLIES_MAX: usize = 2 * REPLY_MAX;
/// Most bytes a connection holds in all ([`StoreServer::held_bytes`] never exceeds it).
pub const HELD_MAX: usize = PARTIAL_MAX + REPLIES_MAX;

/// One domain's connection: the request being read (whole messages are answered as soon
/// as their last byte is read, so at most one is held), and reply bytes not yet written
/// (the response ring may be full).
#[derive(Debug, Default)]
pub struct StoreServer {
    partial: Vec<u8>,
    replies: Vec<u8>,
}

impl StoreServer {
    /// Writes what replies the response ring has room for, takes the guest's new request
    /// bytes while the replies held stay under [`REPLIES_MAX`], has `store` answer each
    /// whole request as `dom`'s, queues `dom`'s watch events, and writes again. Returns
    /// whether anything moved (the caller then notifies the domain).
    pub fn service(&mut self, page: &impl SharedPage, store: &mut Store, dom: DomId) -> bool {
        let gave = self.give_replies(page);
        let took = self.take_requests(page, store, dom);
        self.take_events(store, dom);
        let gave_more = self.give_replies(page);
        gave || took || gave_more
    }

    /// Moves `dom`'s watch events from the store into the replies, while they fit.
    fn take_events(&mut self, store: &mut Store, dom: DomId) {
        while self.room_for_reply() && store.has_events(dom) {
            let Some(m) = store.take_event(dom) else {
                return;
            };
            self.hold(&m);
        }
    }

    /// Appends a reply or event (at most [`REPLY_MAX`] bytes, checked by the caller's
    /// [`Self::room_for_reply`]).
    fn hold(&mut self, m: &[u8]) {
        if self.replies.capacity() == 0 {
            self.replies.reserve_exact(REPLIES_MAX);
        }
        if self.replies.len() + m.len() <= REPLIES_MAX {
            self.replies.extend_from_slice(m);
        }
    }

    /// Bytes of dom0 memory this connection holds (allocated capacity), at most
    /// [`HELD_MAX`].
    pub fn held_bytes(&self) -> usize {
        self.partial.capacity() + self.replies.capacity()
    }

    /// Whether one more reply could be held under [`REPLIES_MAX`].
    fn room_for_reply(&self) -> bool {
        self.replies.len() + REPLY_MAX <= REPLIES_MAX
    }

    fn take_requests(&mut self, page: &impl SharedPage, store: &mut Store, dom: DomId) -> bool {
        let cons = page.load_u32(REQ_CONS);
        let prod = page.load_u32(REQ_PROD);
        page.fence(Barrier::Full);
        let pending = prod.wrapping_sub(cons);
        if pending == 0 {
            return false;
        }
        if pending > RING_SIZE {
            // Indexes more than a ring apart: nothing in the ring can be trusted.
            self.break_connection();
            page.fence(Barrier::Full);
            page.store_u32(REQ_CONS, prod);
            return true;
        }
        let mut taken = 0;
        while taken < pending && self.room_for_reply() {
            // Read up to the end of the header, then up to the end of the message.
            let want = match self.header() {
                None => HEADER - self.partial.len(),
                Some(h) => HEADER + h.len as usize - self.partial.len(),
            };
            let n = (want as u32).min(pending - taken);
            if self.partial.capacity() == 0 {
                self.partial.reserve_exact(HEADER);
            }
            for i in 0..n {
                let at = REQ + (cons.wrapping_add(taken + i) % RING_SIZE) as usize;
                self.partial.push(page.load_u8(at));
            }
            taken += n;
            self.answer_whole_request(store, dom);
        }
        if taken == 0 {
            return false;
        }
        page.fence(Barrier::Full);
        page.store_u32(REQ_CONS, cons.wrapping_add(taken));
        true
    }

    /// The header of the request being read, once whole.
    fn header(&self) -> Option<Header> {
        Header::parse(&self.partial)
    }

    /// Answers the request being read if it is whole (or too long to be read), and starts
    /// the next one.
    fn answer_whole_request(&mut self, store: &mut Store, dom: DomId) {
        let Some(h) = self.header() else {
            return;
        };
        let reply = if h.len > PAYLOAD_MAX {
            wire::error_message(h.req_id, h.tx_id, "E2BIG")
        } else if self.partial.len() < HEADER + h.len as usize {
            // Room for the rest of the message, once, exactly (at most PARTIAL_MAX).
            self.partial
                .reserve_exact(HEADER + h.len as usize - self.partial.len());
            return;
        } else {
            store.answer(dom, h, self.partial.get(HEADER..).unwrap_or(&[]))
        };
        self.break_connection();
        self.hold(&reply);
    }

    fn give_replies(&mut self, page: &impl SharedPage) -> bool {
        if self.replies.is_empty() {
            return false;
        }
        let cons = page.load_u32(RSP_CONS);
        let prod = page.load_u32(RSP_PROD);
        page.fence(Barrier::Full);
        let used = prod.wrapping_sub(cons);
        let room = RING_SIZE.saturating_sub(used) as usize;
        let n = room.min(self.replies.len());
        if n == 0 {
            return false;
        }
        for (i, &b) in self.replies[..n].iter().enumerate() {
            let at = RSP + (prod.wrapping_add(i as u32) % RING_SIZE) as usize;
            page.store_u8(at, b);
        }
        page.fence(Barrier::Write);
        page.store_u32(RSP_PROD, prod.wrapping_add(n as u32));
        self.replies.drain(..n);
        true
    }

    /// Drops the request being read.
    fn break_connection(&mut self) {
        self.partial.clear();
    }
}

/// The guest's side of the ring, for tests.
#[cfg(test)]
pub(crate) mod guest_side {
    use super::*;

    /// The guest's side: appends a request.
    pub fn send(r: &impl SharedPage, ty: u32, req_id: u32, payload: &[u8]) {
        let mut m = Vec::new();
        for w in [ty, req_id, 0, payload.len() as u32] {
            m.extend_from_slice(&w.to_le_bytes());
        }
        m.extend_from_slice(payload);
        let prod = r.load_u32(REQ_PROD);
        for (i, &b) in m.iter().enumerate() {
            r.store_u8(REQ + ((prod + i as u32) % RING_SIZE) as usize, b);
        }
        r.store_u32(REQ_PROD, prod + m.len() as u32);
    }

    /// The guest's side: takes one reply (type, id, payload).
    pub fn recv(r: &impl SharedPage) -> Option<(u32, u32, Vec<u8>)> {
        let cons = r.load_u32(RSP_CONS);
        let prod = r.load_u32(RSP_PROD);
        let avail: Vec<u8> = (cons..prod)
            .map(|i| r.load_u8(RSP + (i % RING_SIZE) as usize))
            .collect();
        if avail.len() < HEADER {
            return None;
        }
        let w = |i: usize| u32::from_le_bytes(avail[i..i + 4].try_into().unwrap());
        let len = w(12) as usize;
        if avail.len() < HEADER + len {
            return None;
        }
        let payload = avail[HEADER..HEADER + len].to_vec();
        r.store_u32(RSP_CONS, cons + (HEADER + len) as u32);
        Some((w(0), w(4), payload))
    }
}

#[cfg(test)]
mod tests {
    use super::guest_side::{recv, send};
    use super::*;
    use crate::shared_page::{AtomicRing, zeroed_page};
    use alloc::boxed::Box;

    type Ring = AtomicRing<Box<crate::shared_page::Page>>;

    fn ring() -> Ring {
        AtomicRing(Box::new(zeroed_page()))
    }

    /// The server of domain 1's ring, over a store holding domain 1's home (`n0`, `r1`)
    /// with `device/` in it.
    struct Served {
        server: StoreServer,
        store: Store,
    }

    impl Served {
        fn new() -> Self {
            let mut store = Store::new();
            let ro = crate::store::perms::Perms::new(DomId(0), crate::store::perms::Access::None)
                .with(DomId(1), crate::store::perms::Access::Read);
            store.write("/local/domain/1/device", b"").unwrap();
            store.set_perms("/local/domain/1", ro.clone()).unwrap();
            store.set_perms("/local/domain/1/device", ro).unwrap();
            store.introduce(DomId(1));
            Self {
                server: StoreServer::default(),
                store,
            }
        }

        fn service(&mut self, r: &Ring) -> bool {
            self.server.service(r, &mut self.store, DomId(1))
        }

        fn held_bytes(&self) -> usize {
            self.server.held_bytes()
        }
    }

    #[test]
    fn requests_are_answered_by_the_store() {
        let r = ring();
        let mut s = Served::new();
        assert!(!s.service(&r), "nothing to do");
        send(&r, msg::DIRECTORY, 7, b"device/vbd\0");
        send(&r, msg::WRITE, 8, b"data/x\0y");
        assert!(s.service(&r));
        assert_eq!(recv(&r), Some((msg::ERROR, 7, b"ENOENT\0".to_vec())));
        assert_eq!(recv(&r), Some((msg::ERROR, 8, b"EACCES\0".to_vec())));
        assert_eq!(recv(&r), None);
        send(&r, msg::READ, 9, b"/local/domain/1/device\0");
        send(&r, msg::WATCH, 10, b"device\0tok\0");
        s.service(&r);
        assert_eq!(recv(&r), Some((msg::READ, 9, b"".to_vec())));
        assert_eq!(recv(&r), Some((msg::WATCH, 10, b"OK\0".to_vec())));
        assert_eq!(
            recv(&r),
            Some((msg::WATCH_EVENT, 0, b"device\0tok\0".to_vec()))
        );
        assert_eq!(r.load_u32(REQ_CONS), r.load_u32(REQ_PROD));
    }

    #[test]
    fn a_request_split_across_services_is_answered_once_whole() {
        let r = ring();
        let mut s = Served::new();
        send(&r, msg::READ, 1, b"name\0");
        // Pretend only the header had arrived: move the producer back.
        let full = r.load_u32(REQ_PROD);
        r.store_u32(REQ_PROD, HEADER as u32);
        s.service(&r);
        assert_eq!(recv(&r), None);
        r.store_u32(REQ_PROD, full);
        s.service(&r);
        assert_eq!(recv(&r), Some((msg::ERROR, 1, b"ENOENT\0".to_vec())));
    }

    #[test]
    fn replies_wait_for_room_and_wrap() {
        let r = ring();
        let mut s = Served::new();
        // 100 requests' replies (23 bytes each) exceed the response ring.
        for round in 0..5u32 {
            for i in 0..20 {
                send(&r, msg::READ, round * 20 + i, b"k\0");
            }
            s.service(&r);
            let mut got = 0;
            while let Some((ty, _, _)) = recv(&r) {
                assert_eq!(ty, msg::ERROR);
                got += 1;
                s.service(&r);
            }
            assert_eq!(got, 20);
        }
    }

    /// The attack of issue 13: a guest fills its request ring with zero-length `XS_READ`
    /// headers, never takes a reply, and bumps `req_prod` again whenever the ring looks
    /// consumed. dom0's memory stays bounded and the ring is no longer consumed once the
    /// replies held are at their bound.
    #[test]
    fn a_guest_that_never_takes_replies_cannot_grow_dom0() {
        let r = ring();
        let mut s = Served::new();
        let mut most = 0;
        for round in 0..5000u32 {
            let cons = r.load_u32(REQ_CONS);
            let prod = r.load_u32(REQ_PROD);
            if prod.wrapping_sub(cons) < RING_SIZE {
                // Whatever is in the ring reads as zero-length XS_READs: refill it all.
                for i in 0..RING_SIZE / HEADER as u32 {
                    let at = (i as usize * HEADER) % RING_SIZE as usize;
                    for (j, w) in [msg::READ, round, 0, 0].iter().enumerate() {
                        r.store_u32(REQ + at + 4 * j, *w);
                    }
                }
                r.store_u32(REQ_PROD, cons.wrapping_add(RING_SIZE));
            }
            s.service(&r);
            most = most.max(s.held_bytes());
            assert!(
                s.held_bytes() <= HELD_MAX,
                "round {round}: {}",
                s.held_bytes()
            );
        }
        assert!(most <= HELD_MAX);
        // The response ring is full and the replies held are at their bound: back-pressure.
        assert_eq!(
            r.load_u32(RSP_PROD).wrapping_sub(r.load_u32(RSP_CONS)),
            RING_SIZE
        );
        let cons = r.load_u32(REQ_CONS);
        assert!(
            !s.service(&r),
            "nothing moves while the guest takes no reply"
        );
        assert_eq!(r.load_u32(REQ_CONS), cons);
        // Once the guest reads its replies, the server goes on.
        while recv(&r).is_some() {}
        assert!(s.service(&r));
        assert!(recv(&r).is_some());
    }

    /// A guest that moves `req_prod` more than a ring ahead each time is disconnected each
    /// time; nothing accumulates.
    #[test]
    fn a_guest_racing_req_prod_ahead_holds_nothing() {
        let r = ring();
        let mut s = Served::new();
        for i in 0..2000u32 {
            let cons = r.load_u32(REQ_CONS);
            r.store_u32(REQ_PROD, cons.wrapping_add(RING_SIZE + 1 + i));
            assert!(s.service(&r));
            assert_eq!(r.load_u32(REQ_CONS), r.load_u32(REQ_PROD));
            assert!(s.held_bytes() <= HELD_MAX);
        }
    }

    #[test]
    fn a_maximal_request_is_answered_and_a_longer_one_refused() {
        let r = ring();
        let mut s = Served::new();
        let payload = alloc::vec![b'x'; PAYLOAD_MAX as usize];
        // The guest writes it a ring at a time, as the server frees room.
        let mut m = Vec::new();
        for w in [msg::WRITE, 5, 0, PAYLOAD_MAX] {
            m.extend_from_slice(&w.to_le_bytes());
        }
        m.extend_from_slice(&payload);
        let mut sent = 0;
        while sent < m.len() {
            let cons = r.load_u32(REQ_CONS);
            let prod = r.load_u32(REQ_PROD);
            let room = (RING_SIZE - prod.wrapping_sub(cons)) as usize;
            let n = room.min(m.len() - sent);
            for i in 0..n {
                r.store_u8(
                    REQ + ((prod as usize + i) % RING_SIZE as usize),
                    m[sent + i],
                );
            }
            r.store_u32(REQ_PROD, prod + n as u32);
            sent += n;
            s.service(&r);
            assert!(s.held_bytes() <= HELD_MAX);
        }
        // A WRITE without the NUL after its path.
        assert_eq!(recv(&r), Some((msg::ERROR, 5, b"EINVAL\0".to_vec())));
        send(&r, msg::WRITE, 6, &[]);
        let at = REQ + ((r.load_u32(REQ_PROD) - 4) % RING_SIZE) as usize;
        r.store_u32(at, PAYLOAD_MAX + 1);
        s.service(&r);
        assert_eq!(recv(&r), Some((msg::ERROR, 6, b"E2BIG\0".to_vec())));
        assert!(s.server.partial.is_empty());
    }

    proptest::proptest! {
        /// Whatever the guest writes to its page, between any two calls: no panic, dom0
        /// holds at most HELD_MAX, and one call reads and writes at most a ring each way.
        #[test]
        fn hostile_rings_stay_bounded(
            rounds in proptest::collection::vec(
                (proptest::collection::vec((0usize..1024, proptest::prelude::any::<u32>()), 0..8),
                 proptest::prelude::any::<bool>()),
                1..64),
        ) {
            let r = ring();
            let mut s = Served::new();
            for (writes, read_replies) in rounds {
                for (word, value) in writes {
                    r.store_u32(word * 4, value);
                }
                if read_replies {
                    r.store_u32(RSP_CONS, r.load_u32(RSP_PROD));
                }
                let (req_cons, rsp_prod) = (r.load_u32(REQ_CONS), r.load_u32(RSP_PROD));
                s.service(&r);
                proptest::prop_assert!(s.held_bytes() <= HELD_MAX);
                proptest::prop_assert!(r.load_u32(RSP_PROD).wrapping_sub(rsp_prod) <= RING_SIZE);
                let taken = r.load_u32(REQ_CONS).wrapping_sub(req_cons);
                let claimed = r.load_u32(REQ_PROD).wrapping_sub(req_cons);
                proptest::prop_assert!(taken <= RING_SIZE || taken == claimed);
            }
        }
    }

    #[test]
    fn broken_indexes_and_oversized_messages_never_panic() {
        let r = ring();
        let mut s = Served::new();
        r.store_u32(REQ_PROD, 5000);
        assert!(s.service(&r));
        assert_eq!(recv(&r), None);
        send(&r, msg::READ, 9, &[]);
        // Claim a payload far beyond the limit.
        let at = REQ + ((r.load_u32(REQ_PROD) - 4) % RING_SIZE) as usize;
        for (i, b) in 0x10_0000u32.to_le_bytes().iter().enumerate() {
            r.store_u8(at + i, *b);
        }
        s.service(&r);
        assert_eq!(recv(&r), Some((msg::ERROR, 9, b"E2BIG\0".to_vec())));
    }
}
