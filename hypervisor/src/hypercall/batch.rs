//! The arithmetic of a batch of MMU requests (`mmu_update`, `mmuext_op`) that is done in
//! passes: how many requests this pass takes, and how the call is continued when the pass
//! ends before the batch does.
//!
//! Xen's encoding, which guests see: a continued call's count carries `MMU_UPDATE_PREEMPTED`
//! (bit 31) and the requests left; the requests already done are kept in the guest's done
//! count (`pdone`), which the continued call reads back and adds to. A done count the
//! hypervisor cannot write is ignored, as Xen ignores it.

use super::HcResult;
use crate::pv::guest_mem::GuestMemory;
use guest_abi::XenError;

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
}
