//! dom0's console backend (`dom0_tools::console::Console`) against a hostile guest: the ring
//! page's bytes and indexes change arbitrarily between many rounds of `poll` (attached or not)
//! and `input`. Never panics; dom0 never holds more than `console::HELD_MAX` bytes; one poll
//! reads at most a ring and writes at most `poll_output_max` bytes, and in `[name] line` form
//! only printable ASCII, TAB and newlines; one input writes at most a ring.
#![no_main]

use std::cell::Cell;

use arbitrary::{Arbitrary, Unstructured};
use dom0_tools::console::{Console, ConsoleRing, HELD_MAX, RingIndex, poll_output_max};
use dom0_tools::shared_page::{AtomicRing, Barrier, Page, zeroed_page};
use guest_abi::EvtchnPort;
use guest_abi::console::XenconsInterface;
use libfuzzer_sys::fuzz_target;

/// The ring, counting the bytes dom0 reads and writes.
struct Counted {
    ring: AtomicRing<Box<Page>>,
    loads: Cell<usize>,
    stores: Cell<usize>,
}

impl ConsoleRing for Counted {
    fn load_index(&self, index: RingIndex) -> u32 {
        self.ring.load_index(index)
    }
    fn store_index(&self, index: RingIndex, value: u32) {
        self.ring.store_index(index, value);
    }
    fn load_out(&self, pos: usize) -> u8 {
        self.loads.set(self.loads.get() + 1);
        self.ring.load_out(pos)
    }
    fn store_in(&self, pos: usize, byte: u8) {
        self.stores.set(self.stores.get() + 1);
        self.ring.store_in(pos, byte);
    }
    fn barrier(&self, kind: Barrier) {
        self.ring.barrier(kind);
    }
}

/// What the guest (or dom0's user) does next.
#[derive(Arbitrary, Debug)]
enum Op {
    /// The guest sets an index.
    Index(u8, u32),
    /// The guest writes output bytes from ring position `at`.
    Print { at: u16, bytes: Vec<u8> },
    /// The guest prints bytes as a driver would, moving `out_prod`.
    Produce(Vec<u8>),
    /// The guest moves `out_prod` by this much.
    Bump(u32),
    /// dom0 polls.
    Poll { attached: bool },
    /// dom0 sends input; the guest may take it.
    Input { bytes: Vec<u8>, take: bool },
}

const INDEXES: [RingIndex; 4] = [
    RingIndex::InCons,
    RingIndex::InProd,
    RingIndex::OutCons,
    RingIndex::OutProd,
];
const NAME: &str = "guest";

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(ops) = Vec::<Op>::arbitrary(&mut u) else {
        return;
    };
    let ring = Counted {
        ring: AtomicRing(Box::new(zeroed_page())),
        loads: Cell::new(0),
        stores: Cell::new(0),
    };
    let mut c = Console::new(ring, EvtchnPort(1));
    let out_size = XenconsInterface::OUT_SIZE as usize;
    let mut out = Vec::new();
    for op in ops.into_iter().take(1024) {
        let r = &c.ring.ring;
        match op {
            Op::Index(i, v) => r.store_index(INDEXES[usize::from(i % 4)], v),
            Op::Print { at, bytes } => {
                for (i, b) in bytes.into_iter().take(out_size).enumerate() {
                    r.store_out(usize::from(at) + i, b);
                }
            }
            Op::Produce(bytes) => {
                let prod = r.load_index(RingIndex::OutProd);
                let n = bytes.len().min(out_size);
                for (i, &b) in bytes[..n].iter().enumerate() {
                    r.store_out(prod.wrapping_add(i as u32) as usize, b);
                }
                r.store_index(RingIndex::OutProd, prod.wrapping_add(n as u32));
            }
            Op::Bump(n) => {
                let prod = r.load_index(RingIndex::OutProd);
                r.store_index(RingIndex::OutProd, prod.wrapping_add(n));
            }
            Op::Poll { attached } => {
                out.clear();
                c.ring.loads.set(0);
                c.poll(NAME, attached, &mut out);
                assert!(c.ring.loads.get() <= out_size);
                assert!(out.len() <= poll_output_max(NAME.len()), "{}", out.len());
                if !attached {
                    assert!(
                        out.iter()
                            .all(|&b| b == b'\t' || b == b'\n' || (0x20..0x7f).contains(&b))
                    );
                }
                let _ = c.has_printed(b"login: ");
            }
            Op::Input { bytes, take } => {
                c.ring.stores.set(0);
                let n = c.input(&bytes);
                assert!(n <= bytes.len() && n <= XenconsInterface::IN_SIZE as usize);
                assert_eq!(c.ring.stores.get(), n);
                if take {
                    let prod = c.ring.ring.load_index(RingIndex::InProd);
                    c.ring.ring.store_index(RingIndex::InCons, prod);
                }
            }
        }
        assert!(c.held_bytes() <= HELD_MAX, "{}", c.held_bytes());
    }
    out.clear();
    c.flush(NAME, &mut out);
    assert!(out.len() <= poll_output_max(NAME.len()));
});
