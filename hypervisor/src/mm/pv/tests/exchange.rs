//! `XENMEM_exchange` on the frame table: chunks of either shape, the address limit, and every
//! refusal leaving the domain's frames as they were.

use std::vec;
use std::vec::Vec;

use super::super::*;
use super::fake::*;
use crate::mm::Mfn;

/// The guest's two lists as vectors; `fail_output` makes every output access fault.
struct Lists {
    input: Vec<u64>,
    output: Vec<u64>,
    fail_output: bool,
}

impl ExchangeLists for Lists {
    fn input(&mut self, index: u64) -> Result<u64, PvMmError> {
        self.input
            .get(index as usize)
            .copied()
            .ok_or(PvMmError::Fault)
    }
    fn output(&mut self, index: u64) -> Result<u64, PvMmError> {
        if self.fail_output {
            return Err(PvMmError::Fault);
        }
        self.output
            .get(index as usize)
            .copied()
            .ok_or(PvMmError::Fault)
    }
    fn set_output(&mut self, index: u64, mfn: u64) -> Result<(), PvMmError> {
        let slot = self
            .output
            .get_mut(index as usize)
            .ok_or(PvMmError::Fault)?;
        *slot = mfn;
        Ok(())
    }
}

fn lists(input: &[Mfn], output: Vec<u64>) -> Lists {
    Lists {
        input: input.iter().map(|m| m.0).collect(),
        output,
        fail_output: false,
    }
}

fn chunks(in_order: u32, out_order: u32, below: u64, end: u64) -> Chunks {
    Chunks {
        in_order,
        out_order,
        below,
        first: 0,
        end,
    }
}

/// The domain's frames are unchanged: owned, allocated, one reference each.
fn untouched(w: &World, d: Dom, frames: &[Mfn]) {
    for &m in frames {
        let f = w.info(m);
        assert_eq!(
            (f.owner(), f.is_allocated(), f.count()),
            (Some(d.d.id()), true, 1),
            "{m}"
        );
    }
}

#[test]
fn four_frames_for_one_contiguous_extent_below_a_limit() {
    let mut w = World::new(256);
    let d = w.domain(1, dom0(64));
    let old = w.alloc(d, 4);
    for &m in &old {
        w.poke(m, 5, 0xdead);
    }
    let mut l = lists(&old, vec![0x40]);
    // Input order 0, output order 2: one chunk of four input extents and one output extent.
    let o = w.ft.exchange(d.d, &chunks(0, 2, 128, 1), &mut l);
    assert!(o.flush_all_cpus, "freed frames need a flush before reuse");
    assert_eq!(
        o.result,
        ExchangeEnd {
            next: 1,
            result: Ok(())
        }
    );
    let base = Mfn(l.output[0]);
    assert_eq!(base.0 % 4, 0);
    assert!(base.0 + 4 <= 128);
    for k in 0..4 {
        let m = Mfn(base.0 + k);
        assert_eq!(w.ft.m2p().get(m), Pfn(0x40 + k));
        assert_eq!(w.peek(m, 5), 0, "new frames are zeroed");
        assert!(!old.contains(&m) || w.info(m).owner() == Some(d.d.id()));
    }
    untouched(&w, d, &(0..4).map(|k| Mfn(base.0 + k)).collect::<Vec<_>>());
    for &m in old.iter().filter(|m| m.0 < base.0 || m.0 >= base.0 + 4) {
        assert_eq!(w.info(m), FrameInfo::FREE);
        assert_eq!(w.ft.m2p().get(m), Pfn::INVALID);
    }
    assert_eq!(
        w.ft.domain(d.d).unwrap().tot_pages(),
        4,
        "the page count is kept"
    );
    w.check();
}

#[test]
fn one_extent_for_single_frames() {
    let mut w = World::new(256);
    let d = w.domain(1, domu(64));
    let mut list = VecList::new(vec![]);
    assert_eq!(w.ft.increase_reservation(d.d, 1, 2, &mut list).result, 1);
    let base = Mfn(list.items[0]);
    let mut l = lists(&[base], vec![7, 3, 9, 1]);
    let o = w.ft.exchange(d.d, &chunks(2, 0, u64::MAX, 1), &mut l);
    assert_eq!(o.result.result, Ok(()));
    for (i, gpfn) in [7, 3, 9, 1].into_iter().enumerate() {
        let m = Mfn(l.output[i]);
        assert_eq!(w.ft.m2p().get(m), Pfn(gpfn));
        assert_eq!(w.info(m).owner(), Some(d.d.id()));
    }
    w.check();
}

#[test]
fn a_frame_in_use_or_not_the_domains_is_refused_and_nothing_moves() {
    let mut w = World::new(256);
    let d = w.domain(1, domu(64));
    let other = w.domain(2, domu(64));
    let mine = w.alloc(d, 3);
    let theirs = w.alloc(other, 1);
    w.pin(d, Level::L1, mine[2]).unwrap();
    let cases: [(&[Mfn], &str); 4] = [
        (&[mine[0], mine[1], mine[2], mine[0]], "pinned"),
        (&[mine[0], mine[1], theirs[0], mine[0]], "another domain's"),
        (&[mine[0], mine[1], mine[0], mine[1]], "listed twice"),
        (&[mine[0], mine[1], Mfn(1 << 40), mine[0]], "not RAM"),
    ];
    for (input, why) in cases {
        let mut l = lists(input, vec![0]);
        let o = w.ft.exchange(d.d, &chunks(0, 2, u64::MAX, 1), &mut l);
        assert_eq!(
            o.result,
            ExchangeEnd {
                next: 0,
                result: Err(PvMmError::BadArgument)
            },
            "{why}"
        );
        assert_eq!(l.output, [0], "{why}: nothing written");
        untouched(&w, d, &mine[..2]);
        untouched(&w, other, &theirs);
    }
    w.check();
}

#[test]
fn no_memory_below_the_limit_gives_the_frames_back() {
    let mut w = World::new(256);
    let d = w.domain(1, domu(64));
    let mine = w.alloc(d, 2);
    let mut l = lists(&mine, vec![0]);
    // Frames below 16 are the fake machine's reserved ones: nothing can be allocated there.
    let o = w.ft.exchange(d.d, &chunks(0, 1, 16, 1), &mut l);
    assert_eq!(o.result.result, Err(PvMmError::OutOfMemory));
    untouched(&w, d, &mine);
    w.check();
}

#[test]
fn an_unwritable_output_list_is_a_fault_after_the_chunk_is_done() {
    let mut w = World::new(256);
    let d = w.domain(1, domu(64));
    let mine = w.alloc(d, 2);
    let mut l = lists(&mine, vec![0]);
    l.fail_output = true;
    let o = w.ft.exchange(d.d, &chunks(0, 1, u64::MAX, 1), &mut l);
    // As Xen: the chunk is exchanged but not counted.
    assert_eq!(
        o.result,
        ExchangeEnd {
            next: 0,
            result: Err(PvMmError::Fault)
        }
    );
    for &m in &mine {
        assert_eq!(w.info(m), FrameInfo::FREE);
    }
    assert_eq!(w.ft.domain(d.d).unwrap().tot_pages(), 2);
    w.check();
}

#[test]
fn a_pass_does_its_chunks_and_stops_at_the_first_failure() {
    let mut w = World::new(256);
    let d = w.domain(1, domu(64));
    let mine = w.alloc(d, 6);
    let mut input: Vec<Mfn> = mine.clone();
    input[4] = Mfn(3); // a reserved frame, not the domain's
    let mut l = lists(&input, vec![0x10, 0x20, 0x30]);
    let o = w.ft.exchange(d.d, &chunks(0, 1, u64::MAX, 3), &mut l);
    assert_eq!(
        o.result,
        ExchangeEnd {
            next: 2,
            result: Err(PvMmError::BadArgument)
        }
    );
    untouched(&w, d, &mine[4..]);
    w.check();
}
