//! An empty, read-only xenstore: dom0's end of each domU's xenstore ring (`io/xs_wire.h`).
//!
//! There is no store daemon here, yet guests that talk to xenstore without checking
//! `start_info.store_evtchn` (GRUB's Xen port looks for disks under `device/vbd` at start) wait
//! forever for an answer. This server gives one: every request is answered as a store with
//! nothing in it would answer it: reads, directory listings and watches with `ENOENT`, writes
//! and removals with `EACCES`, transactions with `ENOSYS`, each as an `XS_ERROR` reply with the
//! request's id. A message longer than the protocol's limit breaks the connection: the
//! server answers `E2BIG` and drops what it holds. The guest polls (the domain has no store
//! event channel), so nothing is notified.

use alloc::vec::Vec;

use crate::console::{Barrier, SharedPage};

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
const HEADER: usize = 16;
/// `XENSTORE_PAYLOAD_MAX`.
pub const PAYLOAD_MAX: u32 = 4096;

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

/// One domain's connection: request bytes not yet forming a whole message, and reply bytes
/// not yet written (the response ring may be full).
#[derive(Debug, Default)]
pub struct StoreServer {
    partial: Vec<u8>,
    replies: Vec<u8>,
}

impl StoreServer {
    /// Takes the guest's new requests, answers each whole one, and writes as much of the
    /// answers as the response ring has room for. Returns whether anything moved.
    pub fn service(&mut self, page: &impl SharedPage) -> bool {
        let took = self.take_requests(page);
        while let Some(reply) = self.next_reply() {
            self.replies.extend_from_slice(&reply);
        }
        let gave = self.give_replies(page);
        took || gave
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
        } else {
            for i in 0..pending {
                let at = REQ + (cons.wrapping_add(i) % RING_SIZE) as usize;
                self.partial.push(page.load_u8(at));
            }
        }
        page.fence(Barrier::Full);
        page.store_u32(REQ_CONS, prod);
        true
    }

    /// The reply to the first whole request held, if there is one.
    fn next_reply(&mut self) -> Option<Vec<u8>> {
        let header: [u8; HEADER] = self.partial.get(..HEADER)?.try_into().ok()?;
        let word =
            |i: usize| u32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
        let (ty, req_id, tx_id, len) = (word(0), word(4), word(8), word(12));
        if len > PAYLOAD_MAX {
            self.break_connection();
            return Some(error_reply(req_id, tx_id, "E2BIG"));
        }
        let total = HEADER + len as usize;
        if self.partial.len() < total {
            return None;
        }
        self.partial.drain(..total);
        Some(error_reply(req_id, tx_id, error_for(ty)))
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

    fn break_connection(&mut self) {
        self.partial.clear();
    }
}

/// An `XS_ERROR` reply carrying `errno_name` (NUL-terminated, as xenstored sends it).
fn error_reply(req_id: u32, tx_id: u32, errno_name: &str) -> Vec<u8> {
    let len = errno_name.len() as u32 + 1;
    let mut v = Vec::with_capacity(HEADER + len as usize);
    for w in [msg::ERROR, req_id, tx_id, len] {
        v.extend_from_slice(&w.to_le_bytes());
    }
    v.extend_from_slice(errno_name.as_bytes());
    v.push(0);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::{AtomicRing, zeroed_page};
    use alloc::boxed::Box;

    type Ring = AtomicRing<Box<crate::console::Page>>;

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
