//! dom0's xenstore ring server (`dom0_tools::xenstore::StoreServer`) against a hostile guest:
//! the page's bytes and indexes change arbitrarily between many rounds of `service`. Never
//! panics; dom0 never holds more than `xenstore::HELD_MAX` bytes; one call reads at most a
//! ring of requests and writes at most a ring of replies, and moves `req_cons` by at most a
//! ring (or, for a broken ring, to `req_prod`).
#![no_main]

use std::cell::Cell;

use arbitrary::{Arbitrary, Unstructured};
use dom0_tools::shared_page::{AtomicRing, Barrier, Page, SharedPage, zeroed_page};
use dom0_tools::xenstore::{HEADER, HELD_MAX, RING_SIZE, StoreServer, msg};
use libfuzzer_sys::fuzz_target;

const REQ_CONS: usize = 2048;
const REQ_PROD: usize = 2052;
const RSP_CONS: usize = 2056;
const RSP_PROD: usize = 2060;

/// The page, counting the ring bytes dom0 reads and writes.
struct Counted {
    page: AtomicRing<Box<Page>>,
    loads: Cell<usize>,
    stores: Cell<usize>,
}

impl SharedPage for Counted {
    fn load_u32(&self, offset: usize) -> u32 {
        self.page.load_u32(offset)
    }
    fn store_u32(&self, offset: usize, value: u32) {
        self.page.store_u32(offset, value);
    }
    fn load_u8(&self, offset: usize) -> u8 {
        self.loads.set(self.loads.get() + 1);
        self.page.load_u8(offset)
    }
    fn store_u8(&self, offset: usize, byte: u8) {
        self.stores.set(self.stores.get() + 1);
        self.page.store_u8(offset, byte);
    }
    fn fence(&self, kind: Barrier) {
        self.page.fence(kind);
    }
}

/// What the guest does next.
#[derive(Arbitrary, Debug)]
enum Op {
    /// Sets one of the four indexes.
    Index(u8, u32),
    /// Writes bytes of the page from `at`.
    Write { at: u16, bytes: Vec<u8> },
    /// Sends a request as a driver would (header and payload), moving `req_prod`.
    Request {
        ty: u8,
        id: u32,
        len: u32,
        payload: Vec<u8>,
    },
    /// Moves `req_prod` by this much.
    Bump(u32),
    /// Takes every reply (`rsp_cons = rsp_prod`).
    TakeReplies,
    /// dom0 services the ring.
    Service,
    /// dom0 services the ring this many times in a row.
    Services(u8),
}

fn send(p: &AtomicRing<Box<Page>>, bytes: &[u8]) {
    let prod = p.load_u32(REQ_PROD);
    for (i, &b) in bytes.iter().enumerate() {
        p.store_u8((prod.wrapping_add(i as u32) % RING_SIZE) as usize, b);
    }
    p.store_u32(REQ_PROD, prod.wrapping_add(bytes.len() as u32));
}

fn service(s: &mut StoreServer, c: &Counted) {
    let (req_cons, req_prod) = (c.page.load_u32(REQ_CONS), c.page.load_u32(REQ_PROD));
    let rsp_prod = c.page.load_u32(RSP_PROD);
    c.loads.set(0);
    c.stores.set(0);
    s.service(c);
    assert!(c.loads.get() <= RING_SIZE as usize);
    assert!(c.stores.get() <= RING_SIZE as usize);
    assert!(c.page.load_u32(RSP_PROD).wrapping_sub(rsp_prod) <= RING_SIZE);
    let taken = c.page.load_u32(REQ_CONS).wrapping_sub(req_cons);
    assert!(taken <= RING_SIZE || c.page.load_u32(REQ_CONS) == req_prod);
    assert!(s.held_bytes() <= HELD_MAX, "{}", s.held_bytes());
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(ops) = Vec::<Op>::arbitrary(&mut u) else {
        return;
    };
    let c = Counted {
        page: AtomicRing(Box::new(zeroed_page())),
        loads: Cell::new(0),
        stores: Cell::new(0),
    };
    let mut s = StoreServer::default();
    for op in ops.into_iter().take(1024) {
        let p = &c.page;
        match op {
            Op::Index(i, v) => p.store_u32(REQ_CONS + 4 * usize::from(i % 4), v),
            Op::Write { at, bytes } => {
                for (i, b) in bytes.into_iter().take(4096).enumerate() {
                    p.store_u8((usize::from(at) + i) % 4096, b);
                }
            }
            Op::Request {
                ty,
                id,
                len,
                payload,
            } => {
                let mut m = Vec::with_capacity(HEADER + payload.len());
                let ty =
                    [msg::READ, msg::WRITE, msg::DIRECTORY, u32::from(ty)][usize::from(ty % 4)];
                for w in [ty, id, 0, len] {
                    m.extend_from_slice(&w.to_le_bytes());
                }
                m.extend_from_slice(&payload);
                m.truncate(RING_SIZE as usize);
                send(p, &m);
            }
            Op::Bump(n) => p.store_u32(REQ_PROD, p.load_u32(REQ_PROD).wrapping_add(n)),
            Op::TakeReplies => p.store_u32(RSP_CONS, p.load_u32(RSP_PROD)),
            Op::Service => service(&mut s, &c),
            Op::Services(n) => {
                for _ in 0..n % 32 {
                    service(&mut s, &c);
                }
            }
        }
    }
});
