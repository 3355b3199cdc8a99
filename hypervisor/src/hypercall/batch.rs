//! The arithmetic of a batch of MMU requests (`mmu_update`, `mmuext_op`) that is done in
//! passes: how many requests this pass takes, and how the call is continued when the pass
//! ends before the batch does.
//!
//! Xen's encoding, which guests see: a continued call's count carries `MMU_UPDATE_PREEMPTED`
//! (bit 31) and the requests left; the requests already done are kept in the guest's done
//! count (`pdone`), which the continued call reads back and adds to. A done count the
//! hypervisor cannot write is ignored, as Xen ignores it.
//!
//! The reservation sub-ops of `memory_op` are done in passes too ([`reservation`]): a continued
//! call carries the extents already done above the sub-op in `cmd` (Xen's `start_extent`,
//! `MEMOP_EXTENT_SHIFT`), and the answer is the number of extents done.

use super::HcResult;
use crate::pv::guest_mem::GuestMemory;
use guest_abi::XenError;
use guest_abi::memory::{MEMOP_CMD_MASK, MEMOP_EXTENT_SHIFT};

/// Requests of one batch handled before the call is continued.
pub const REQUESTS_PER_PASS: u64 = 1024;
/// Xen's flag on the count of a continued batch (`MMU_UPDATE_PREEMPTED`).
pub const BATCH_PREEMPTED: u64 = 1 << 31;

/// One pass over a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pass {
    /// Requests left in the batch, this pass's included.
    pub count: u64,
    /// Requests done by earlier passes (from the guest's done count of a continued call).
    pub done_before: u32,
    /// Requests this pass handles (at most `per_pass`).
    pub len: u64,
}

/// The pass a call with count argument `count_arg` and done-count address `pdone` makes,
/// taking at most `per_pass` requests.
pub fn plan(mem: &mut impl GuestMemory, count_arg: u64, pdone: u64, per_pass: u64) -> Pass {
    let raw = u64::from(count_arg as u32);
    let count = raw & !BATCH_PREEMPTED;
    let done_before = if raw & BATCH_PREEMPTED != 0 && pdone != 0 {
        mem.read_obj(pdone).unwrap_or(0)
    } else {
        0
    };
    Pass {
        count,
        done_before,
        len: count.min(per_pass),
    }
}

/// After a pass that did `done` requests of `size` bytes each and ended with `result`: writes
/// the done count and, if the batch stopped only because the pass ended, rewrites `args` to
/// continue with the rest ([`XenError::Restart`]).
pub fn finish(
    mem: &mut impl GuestMemory,
    args: &mut [u64; 5],
    pass: Pass,
    done: u32,
    result: Result<(), XenError>,
    size: u64,
) -> HcResult {
    let [base, _, pdone, ..] = *args;
    if pdone != 0 {
        let _ = mem.write_obj(pdone, &pass.done_before.wrapping_add(done));
    }
    if result.is_ok() && pass.len < pass.count {
        args[0] = base.wrapping_add(pass.len * size);
        args[1] = (pass.count - pass.len) | BATCH_PREEMPTED;
        return Err(XenError::Restart);
    }
    result.map(|()| 0)
}

/// Frames one pass of a reservation sub-op allocates or frees (at least one extent) before the
/// call is continued.
pub const FRAMES_PER_PASS: u32 = 512;

/// What a reservation call (`memory_op` increase/decrease/populate) does now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reservation {
    /// Nothing: answer this count of extents (Xen's `start_extent`), as Xen does for a count
    /// its continuation cannot encode and when nothing is left.
    Done(u64),
    /// A pass over some of the extents.
    Pass(ReservationPass),
}

/// One pass of a reservation call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReservationPass {
    /// Extents done by earlier passes.
    pub start: u32,
    /// Extents in the whole call.
    pub nr_extents: u32,
    /// Extents this pass handles.
    pub len: u32,
}

/// The extents a continued reservation call already did (`cmd >> MEMOP_EXTENT_SHIFT`).
pub fn start_extent(cmd: u64) -> Result<u32, XenError> {
    u32::try_from(cmd >> MEMOP_EXTENT_SHIFT).map_err(|_| XenError::Inval)
}

/// The pass a reservation call of `nr_extents` extents of order `order` makes, having done
/// `start` of them.
pub fn reservation(start: u32, nr_extents: u64, order: u32) -> Reservation {
    let Some(nr_extents) = u32::try_from(nr_extents)
        .ok()
        .filter(|&n| n <= u32::MAX >> MEMOP_EXTENT_SHIFT && start < n)
    else {
        return Reservation::Done(u64::from(start));
    };
    let per_pass = (FRAMES_PER_PASS >> order.min(31)).max(1);
    Reservation::Pass(ReservationPass {
        start,
        nr_extents,
        len: (nr_extents - start).min(per_pass),
    })
}

impl ReservationPass {
    /// Where this pass's part of the guest's extent list starts (a null list stays null).
    pub fn list_base(&self, extent_start: u64) -> u64 {
        match extent_start {
            0 => 0,
            b => b.wrapping_add(8 * u64::from(self.start)),
        }
    }

    /// After the pass did `done` extents: the count of extents done in all, or, if the pass
    /// did all of its part and extents are left, `args[0]` (`cmd`) rewritten to continue.
    pub fn finish(&self, args: &mut [u64; 5], done: u32) -> HcResult {
        let total = self.start + done;
        if done == self.len && total < self.nr_extents {
            args[0] = (args[0] & MEMOP_CMD_MASK) | (u64::from(total) << MEMOP_EXTENT_SHIFT);
            return Err(XenError::Restart);
        }
        Ok(u64::from(total))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pv::guest_mem::fake::FakeGuest;

    fn guest() -> FakeGuest {
        let mut g = FakeGuest::default();
        g.map(0x1000, 0x1000);
        g
    }

    #[test]
    fn a_long_batch_is_done_in_passes_and_counted_in_the_guest() {
        let mut g = guest();
        let mut args = [0x10_0000, 2500, 0x1000, 0x7ff0, 0];
        let mut done = 0;
        let mut passes = 0;
        loop {
            let pass = plan(&mut g, args[1], args[2], REQUESTS_PER_PASS);
            passes += 1;
            done += pass.len;
            match finish(&mut g, &mut args, pass, pass.len as u32, Ok(()), 16) {
                Err(XenError::Restart) => {
                    assert_eq!(args[1] & BATCH_PREEMPTED, BATCH_PREEMPTED);
                    assert_eq!(
                        args[0],
                        0x10_0000 + done * 16,
                        "the base follows the requests"
                    );
                }
                r => {
                    assert_eq!(r, Ok(0));
                    break;
                }
            }
        }
        assert_eq!((passes, done), (3, 2500));
        let counted: u32 = g.read_obj(0x1000).unwrap();
        assert_eq!(counted, 2500, "the done count adds up over the passes");
    }

    #[test]
    fn an_error_ends_the_batch_with_the_count_of_what_was_done() {
        let mut g = guest();
        let mut args = [0x10_0000, 2000, 0x1000, 0, 0];
        let pass = plan(&mut g, args[1], args[2], REQUESTS_PER_PASS);
        let r = finish(&mut g, &mut args, pass, 7, Err(XenError::Inval), 16);
        assert_eq!(r, Err(XenError::Inval));
        assert_eq!(args[1], 2000, "not continued");
        assert_eq!(g.read_obj::<u32>(0x1000).unwrap(), 7);
    }

    #[test]
    fn a_fake_continuation_or_an_unwritable_count_is_harmless() {
        let mut g = guest();
        // A guest claiming a continued batch with a huge done count: the count wraps, no panic.
        g.write_obj(0x1000, &u32::MAX).unwrap();
        let mut args = [0x10_0000, 3 | BATCH_PREEMPTED, 0x1000, 0, 0];
        let pass = plan(&mut g, args[1], args[2], REQUESTS_PER_PASS);
        assert_eq!((pass.count, pass.done_before, pass.len), (3, u32::MAX, 3));
        assert_eq!(finish(&mut g, &mut args, pass, 3, Ok(()), 16), Ok(0));
        assert_eq!(g.read_obj::<u32>(0x1000).unwrap(), 2);
        // A done count in unmapped memory: read as 0, the write ignored (Xen's answer).
        let mut args = [0x10_0000, 1 | BATCH_PREEMPTED, 0xdead_0000, 0, 0];
        let pass = plan(&mut g, args[1], args[2], REQUESTS_PER_PASS);
        assert_eq!(pass.done_before, 0);
        assert_eq!(finish(&mut g, &mut args, pass, 1, Ok(()), 16), Ok(0));
    }

    #[test]
    fn a_large_reservation_is_done_in_passes_of_512_frames() {
        let mut args = [6, 0x2000, 0, 0, 0]; // XENMEM_populate_physmap
        let mut passes = 0;
        loop {
            let start = start_extent(args[0]).unwrap();
            let Reservation::Pass(p) = reservation(start, 1300, 0) else {
                panic!("a pass is due");
            };
            assert_eq!(p.list_base(0x8000), 0x8000 + 8 * u64::from(start));
            assert_eq!(p.list_base(0), 0, "a null list stays null");
            passes += 1;
            match p.finish(&mut args, p.len) {
                Err(XenError::Restart) => assert_eq!(args[0] & MEMOP_CMD_MASK, 6),
                r => {
                    assert_eq!(r, Ok(1300));
                    break;
                }
            }
        }
        assert_eq!(passes, 3);
        // Order 9 extents are 512 frames each: one per pass.
        let Reservation::Pass(p) = reservation(0, 4, 9) else {
            panic!("a pass is due");
        };
        assert_eq!(p.len, 1);
    }

    #[test]
    fn a_reservation_that_stops_short_or_has_nothing_left_answers_the_extents_done() {
        let mut args = [6 | (10 << MEMOP_EXTENT_SHIFT), 0, 0, 0, 0];
        let Reservation::Pass(p) = reservation(10, 2000, 0) else {
            panic!("a pass is due");
        };
        // Memory ran out after 7 extents: no continuation, 17 done.
        assert_eq!(p.finish(&mut args, 7), Ok(17));
        assert_eq!(reservation(20, 20, 0), Reservation::Done(20));
        assert_eq!(
            reservation(0, 1 << 26, 0),
            Reservation::Done(0),
            "beyond what cmd encodes"
        );
        assert_eq!(reservation(3, u64::MAX, 0), Reservation::Done(3));
        assert_eq!(start_extent(u64::MAX), Err(XenError::Inval));
    }
}
