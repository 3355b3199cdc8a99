//! dom0's xenstore (`dom0_tools::xenstore::StoreServer` over `dom0_tools::store::Store`)
//! against a hostile guest: the page's bytes and indexes change arbitrarily between many
//! rounds of `service`, and the guest sends well-formed requests of every type (paths
//! from a small vocabulary, transactions, watches, permissions) among the garbage, while
//! dom0 changes the nodes the guest may watch. Never panics; the ring server never holds
//! more than `xenstore::HELD_MAX` bytes; one call reads at most a ring of requests and
//! writes at most a ring of replies, and moves `req_cons` by at most a ring (or, for a
//! broken ring, to `req_prod`); the store stays consistent, and what the guest makes it
//! hold stays within its quotas (`store::quota::MEMORY_MAX`, `EVENTS_MAX`).
#![no_main]

use std::cell::Cell;

use arbitrary::{Arbitrary, Unstructured};
use dom0_tools::shared_page::{AtomicRing, Barrier, Page, SharedPage, zeroed_page};
use dom0_tools::store::perms::{Access, Perms};
use dom0_tools::store::quota::{EVENTS_MAX, MEMORY_MAX};
use dom0_tools::store::{Store, tree};
use dom0_tools::xenstore::{HEADER, HELD_MAX, RING_SIZE, StoreServer, msg};
use guest_abi::DomId;
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
    /// Sends a well-formed request: a type, a path from the vocabulary, more arguments.
    Store {
        ty: u8,
        tx: u8,
        path: u8,
        arg: Vec<u8>,
    },
    /// dom0 writes a node (firing the guest's watches).
    Dom0Write(u8, u8),
    /// dom0 removes a node.
    Dom0Rm(u8),
    /// Moves `req_prod` by this much.
    Bump(u32),
    /// Takes every reply (`rsp_cons = rsp_prod`).
    TakeReplies,
    /// dom0 services the ring.
    Service,
    /// dom0 services the ring this many times in a row.
    Services(u8),
}

fn p_ring(c: &Counted) -> &AtomicRing<Box<Page>> {
    &c.page
}

fn send(p: &AtomicRing<Box<Page>>, bytes: &[u8]) {
    let prod = p.load_u32(REQ_PROD);
    for (i, &b) in bytes.iter().enumerate() {
        p.store_u8((prod.wrapping_add(i as u32) % RING_SIZE) as usize, b);
    }
    p.store_u32(REQ_PROD, prod.wrapping_add(bytes.len() as u32));
}

/// The guest's domain.
const GUEST: DomId = DomId(1);

/// Paths the well-formed requests name.
const PATHS: &[&str] = &[
    "data",
    "data/a",
    "data/a/b",
    "name",
    "control/shutdown",
    "/local/domain/1",
    "/local/domain/2/data",
    "/",
    "@releaseDomain",
    "/vm",
    "device/vbd",
    "",
];

/// Every request type, and a few that are none.
const TYPES: &[u32] = &[
    msg::READ,
    msg::WRITE,
    msg::MKDIR,
    msg::RM,
    msg::DIRECTORY,
    msg::DIRECTORY_PART,
    msg::GET_PERMS,
    msg::SET_PERMS,
    msg::WATCH,
    msg::UNWATCH,
    msg::RESET_WATCHES,
    msg::TRANSACTION_START,
    msg::TRANSACTION_END,
    msg::INTRODUCE,
    msg::RELEASE,
    msg::GET_DOMAIN_PATH,
    msg::IS_DOMAIN_INTRODUCED,
    msg::CONTROL,
    msg::ERROR,
    msg::WATCH_EVENT,
    0xffff,
];

/// A store as the toolstack leaves it for domain 1 (and 2): homes readable by their
/// domain, a `data` node of their own.
fn store() -> Store {
    let mut s = Store::new();
    for d in [1u16, 2] {
        let home = format!("/local/domain/{d}");
        let data = format!("{home}/data");
        s.write(&data, b"").unwrap();
        s.set_perms(&home, Perms::new(DomId(0), Access::None).with(DomId(d), Access::Read))
            .unwrap();
        s.set_perms(&data, Perms::new(DomId(d), Access::None)).unwrap();
        s.introduce(DomId(d));
    }
    s
}

fn service(s: &mut StoreServer, store: &mut Store, c: &Counted) {
    let (req_cons, req_prod) = (c.page.load_u32(REQ_CONS), c.page.load_u32(REQ_PROD));
    let rsp_prod = c.page.load_u32(RSP_PROD);
    c.loads.set(0);
    c.stores.set(0);
    s.service(c, store, GUEST);
    assert!(c.loads.get() <= RING_SIZE as usize);
    assert!(c.stores.get() <= RING_SIZE as usize);
    assert!(c.page.load_u32(RSP_PROD).wrapping_sub(rsp_prod) <= RING_SIZE);
    let taken = c.page.load_u32(REQ_CONS).wrapping_sub(req_cons);
    assert!(taken <= RING_SIZE || c.page.load_u32(REQ_CONS) == req_prod);
    assert!(s.held_bytes() <= HELD_MAX, "{}", s.held_bytes());
    assert!(store.usage(GUEST).bytes <= MEMORY_MAX);
    assert!(store.event_bytes(GUEST) <= EVENTS_MAX);
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
    let mut st = store();
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
            Op::Store { ty, tx, path, arg } => {
                let ty = TYPES[usize::from(ty) % TYPES.len()];
                let p = PATHS[usize::from(path) % PATHS.len()];
                let mut payload = Vec::with_capacity(p.len() + 1 + arg.len());
                payload.extend_from_slice(p.as_bytes());
                payload.push(0);
                payload.extend_from_slice(&arg[..arg.len().min(3000)]);
                let mut m = Vec::with_capacity(HEADER + payload.len());
                for w in [ty, 7, u32::from(tx % 4), payload.len() as u32] {
                    m.extend_from_slice(&w.to_le_bytes());
                }
                m.extend_from_slice(&payload);
                // A ring at a time, as a driver writes it while dom0 reads.
                for chunk in m.chunks(RING_SIZE as usize / 2) {
                    send(p_ring(&c), chunk);
                    service(&mut s, &mut st, &c);
                    p_ring(&c).store_u32(RSP_CONS, p_ring(&c).load_u32(RSP_PROD));
                }
            }
            Op::Dom0Write(path, v) => {
                let p = PATHS[usize::from(path) % PATHS.len()];
                let _ = st.write(&format!("/local/domain/1/{p}"), &[v]);
            }
            Op::Dom0Rm(path) => {
                let p = PATHS[usize::from(path) % PATHS.len()];
                let _ = st.rm(&format!("/local/domain/1/{p}"));
            }
            Op::Bump(n) => p.store_u32(REQ_PROD, p.load_u32(REQ_PROD).wrapping_add(n)),
            Op::TakeReplies => p.store_u32(RSP_CONS, p.load_u32(RSP_PROD)),
            Op::Service => service(&mut s, &mut st, &c),
            Op::Services(n) => {
                for _ in 0..n % 32 {
                    service(&mut s, &mut st, &c);
                }
            }
        }
        assert!(tree::consistent(st.tree()));
    }
});
