//! An empty, read-only xenstore: dom0's end of each domU's xenstore ring (`io/xs_wire.h`).
//!
//! There is no store daemon here, yet guests that talk to xenstore without checking
//! `start_info.store_evtchn` (GRUB's Xen port looks for disks under `device/vbd` at start) wait
//! forever for an answer. This server gives one: every request is answered as a store with
//! nothing in it would answer it: reads, directory listings and watches with `ENOENT`, writes
//! and removals with `EACCES`, transactions with `ENOSYS`, each as an `XS_ERROR` reply with the
//! request's id. A message longer than the protocol's limit breaks the connection: the
//! server answers `E2BIG` and drops the request it was reading. The guest polls (the domain
//! has no store event channel), so nothing is notified.
//!
//! # Bounds
//!
//! The guest writes the ring and its indexes at will, so what dom0 spends on it is bounded
//! whatever it writes:
//! - **memory**: at most [`PARTIAL_MAX`] bytes of the request being read (one whole message,
//!   header and [`PAYLOAD_MAX`] payload) and at most [`REPLIES_MAX`] bytes of replies the
//!   response ring had no room for: [`HELD_MAX`] in all per domain ([`StoreServer::held_bytes`]
//!   counts the capacity actually allocated);
//! - **back-pressure**, as xenstored applies it: while undelivered replies are at their bound
//!   (a guest that never advances `rsp_cons`), no request byte is taken from the ring, so the
//!   request ring fills and a well-behaved guest waits; a guest that moves `req_prod` more
//!   than [`RING_SIZE`] ahead of `req_cons` has broken its ring and what is in it is dropped;
//! - **work per [`StoreServer::service`] call**: at most [`RING_SIZE`] request bytes read
//!   (so at most `RING_SIZE / 16` = 64 messages answered) and at most [`RING_SIZE`] reply
//!   bytes written.

use alloc::vec::Vec;

use crate::shared_page::{Barrier, SharedPage};

/// Size of each of the two rings (`XENSTORE_RING_SIZE`).
pub const RING_SIZE: u32 = 1024;
/// Offset of the request ring.
const REQ: usize = 0;
/// Offset of the response ring.
const RSP: usize = 1024;
const REQ_CONS: usize = 2048;
const REQ_PROD: usize = 2052;
const RSP_CONS: usize = 2056;
const RSP_PROD: usize = 2060;
/// `struct xsd_sockmsg`: type, req_id, tx_id, len.
pub const HEADER: usize = 16;
/// `XENSTORE_PAYLOAD_MAX`.
pub const PAYLOAD_MAX: u32 = 4096;
/// Most bytes of an unfinished request held: one whole message of the largest size.
pub const PARTIAL_MAX: usize = HEADER + PAYLOAD_MAX as usize;
/// The longest reply this server sends: a header and the longest errno name with its NUL.
pub const REPLY_MAX: usize = HEADER + 8;
/// Most bytes of replies held that the response ring had no room for. No request byte is
/// taken while another reply might not fit under this bound.
pub const REPLIES_MAX: usize = 2 * RING_SIZE as usize;
/// Most bytes a connection holds in all ([`StoreServer::held_bytes`] never exceeds it).
pub const HELD_MAX: usize = PARTIAL_MAX + REPLIES_MAX;

/// `enum xsd_sockmsg_type` values this server tells apart.
pub mod msg {
    /// `XS_DIRECTORY`.
    pub const DIRECTORY: u32 = 1;
    /// `XS_READ`.
    pub const READ: u32 = 2;
    /// `XS_GET_PERMS`.
    pub const GET_PERMS: u32 = 3;
    /// `XS_WATCH`.
    pub const WATCH: u32 = 4;
    /// `XS_UNWATCH`.
    pub const UNWATCH: u32 = 5;
    /// `XS_TRANSACTION_START`.
    pub const TRANSACTION_START: u32 = 6;
    /// `XS_TRANSACTION_END`.
    pub const TRANSACTION_END: u32 = 7;
    /// `XS_GET_DOMAIN_PATH`.
    pub const GET_DOMAIN_PATH: u32 = 10;
    /// `XS_WRITE`.
    pub const WRITE: u32 = 11;
    /// `XS_MKDIR`.
    pub const MKDIR: u32 = 12;
    /// `XS_RM`.
    pub const RM: u32 = 13;
    /// `XS_SET_PERMS`.
    pub const SET_PERMS: u32 = 14;
    /// `XS_ERROR`.
    pub const ERROR: u32 = 16;
    /// `XS_DIRECTORY_PART`.
    pub const DIRECTORY_PART: u32 = 22;
}

/// The error an empty, read-only store gives for a request of type `ty`.
pub fn error_for(ty: u32) -> &'static str {
    match ty {
        msg::DIRECTORY
        | msg::DIRECTORY_PART
        | msg::READ
        | msg::GET_PERMS
        | msg::WATCH
        | msg::UNWATCH
        | msg::GET_DOMAIN_PATH => "ENOENT",
        msg::WRITE | msg::MKDIR | msg::RM | msg::SET_PERMS => "EACCES",
        msg::TRANSACTION_START | msg::TRANSACTION_END => "ENOSYS",
        _ => "EINVAL",
    }
}

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
    /// bytes while the replies held stay under [`REPLIES_MAX`], answers each whole request,
    /// and writes again. Returns whether anything moved.
    pub fn service(&mut self, page: &impl SharedPage) -> bool {
        let gave = self.give_replies(page);
        let took = self.take_requests(page);
        let gave_more = self.give_replies(page);
        gave || took || gave_more
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

    fn take_requests(&mut self, page: &impl SharedPage) -> bool {
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
            self.answer_whole_request();
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
        let h = self.partial.get(..HEADER)?;
        let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        Some(Header {
            ty: word(0),
            req_id: word(4),
            tx_id: word(8),
            len: word(12),
        })
    }

    /// Answers the request being read if it is whole (or too long to be read), and starts
    /// the next one.
    fn answer_whole_request(&mut self) {
        let Some(h) = self.header() else {
            return;
        };
        let errno = if h.len > PAYLOAD_MAX {
            "E2BIG"
        } else if self.partial.len() < HEADER + h.len as usize {
            // Room for the rest of the message, once, exactly (at most PARTIAL_MAX).
            self.partial
                .reserve_exact(HEADER + h.len as usize - self.partial.len());
            return;
        } else {
            error_for(h.ty)
        };
        self.break_connection();
        if self.replies.capacity() == 0 {
            self.replies.reserve_exact(REPLIES_MAX);
        }
        error_reply(&mut self.replies, h.req_id, h.tx_id, errno);
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

/// A request's `struct xsd_sockmsg`.
#[derive(Clone, Copy, Debug)]
struct Header {
    ty: u32,
    req_id: u32,
    tx_id: u32,
    len: u32,
}

/// Appends an `XS_ERROR` reply carrying `errno_name` (NUL-terminated, as xenstored sends it).
fn error_reply(out: &mut Vec<u8>, req_id: u32, tx_id: u32, errno_name: &str) {
    let len = errno_name.len() as u32 + 1;
    debug_assert!(HEADER + len as usize <= REPLY_MAX);
    for w in [msg::ERROR, req_id, tx_id, len] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out.extend_from_slice(errno_name.as_bytes());
    out.push(0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared_page::{AtomicRing, zeroed_page};
    use alloc::boxed::Box;

    type Ring = AtomicRing<Box<crate::shared_page::Page>>;

    fn ring() -> Ring {
        AtomicRing(Box::new(zeroed_page()))
    }

    /// The guest's side: appends a request.
    fn send(r: &Ring, ty: u32, req_id: u32, payload: &[u8]) {
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
    fn recv(r: &Ring) -> Option<(u32, u32, Vec<u8>)> {
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

    #[test]
    fn requests_get_the_errors_of_an_empty_read_only_store() {
        let r = ring();
        let mut s = StoreServer::default();
        assert!(!s.service(&r), "nothing to do");
        send(&r, msg::DIRECTORY, 7, b"device/vbd\0");
        send(&r, msg::WRITE, 8, b"data/x\0y");
        assert!(s.service(&r));
        assert_eq!(recv(&r), Some((msg::ERROR, 7, b"ENOENT\0".to_vec())));
        assert_eq!(recv(&r), Some((msg::ERROR, 8, b"EACCES\0".to_vec())));
        assert_eq!(recv(&r), None);
        assert_eq!(r.load_u32(REQ_CONS), r.load_u32(REQ_PROD));
    }

    #[test]
    fn a_request_split_across_services_is_answered_once_whole() {
        let r = ring();
        let mut s = StoreServer::default();
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
        let mut s = StoreServer::default();
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
        let mut s = StoreServer::default();
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
        let mut s = StoreServer::default();
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
        let mut s = StoreServer::default();
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
        assert_eq!(recv(&r), Some((msg::ERROR, 5, b"EACCES\0".to_vec())));
        send(&r, msg::WRITE, 6, &[]);
        let at = REQ + ((r.load_u32(REQ_PROD) - 4) % RING_SIZE) as usize;
        r.store_u32(at, PAYLOAD_MAX + 1);
        s.service(&r);
        assert_eq!(recv(&r), Some((msg::ERROR, 6, b"E2BIG\0".to_vec())));
        assert!(s.partial.is_empty());
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
            let mut s = StoreServer::default();
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
        let mut s = StoreServer::default();
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
