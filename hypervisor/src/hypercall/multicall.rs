//! `multicall`: a batch of hypercalls, each entry's result written back into the entry.
//! Entries run in order; a multicall may not contain `multicall` (`-EINVAL`). An `iret` entry
//! does what Xen does: the guest resumes from the `iret` frame (the entry's result is its
//! `rax`) and the rest of the batch is skipped. Processing also stops after an entry that
//! shuts down, blocks or crashes.
//!
//! A multicall is bounded in time as every hypercall is: between entries, once the exit has
//! run for its time ([`Host::preempt_check`]), the rest of the list is a continuation; an
//! entry that is itself continued (a long `mmu_update`) gets its rewritten arguments stored
//! back in the guest's entry, and the multicall continues from that entry, as Xen does. An
//! entry that needs the whole machine (`domctl`, `sysctl`, remote shutdown) ends the pass: the
//! exit path carries it out and stores its result in the entry, and the rest of the list is a
//! continuation.

use super::{Action, Call, Ctx, HcResult, Host, MulticallSlot, dispatch, encode};
use crate::pv::guest_mem::GuestMemory;
use guest_abi::XenError;
use guest_abi::xen::MulticallEntry;

/// Size of one `multicall_entry`.
const ENTRY_SIZE: u64 = size_of::<MulticallEntry>() as u64;

/// Offsets of `result` and `args` in a `multicall_entry`.
const RESULT_OFFSET: u64 = core::mem::offset_of!(MulticallEntry, result) as u64;
const ARGS_OFFSET: u64 = core::mem::offset_of!(MulticallEntry, args) as u64;

impl MulticallSlot {
    /// Where the entry's result goes in guest memory.
    pub fn result_addr(&self) -> u64 {
        self.entry.wrapping_add(RESULT_OFFSET)
    }
}

/// `multicall(list, count)`; when preempted, `args` describe the entries left and the answer
/// is [`XenError::Restart`].
pub fn multicall<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    args: &mut [u64; 5],
) -> HcResult {
    let [list, count, ..] = *args;
    let count = count as u32 as u64;
    let continue_from = |args: &mut [u64; 5], i: u64| {
        args[0] = list.wrapping_add(i * ENTRY_SIZE);
        args[1] = count - i;
        Err(XenError::Restart)
    };
    for i in 0..count {
        if i > 0 && ctx.host.preempt_check() {
            return continue_from(args, i);
        }
        let at = list.checked_add(i * ENTRY_SIZE).ok_or(XenError::Fault)?;
        let entry: MulticallEntry = ctx.mem.read_obj(at)?;
        let a = entry.args;
        let mut call = Call {
            nr: entry.op,
            args: [a[0], a[1], a[2], a[3], a[4]],
        };
        let result = dispatch(ctx, &mut call, true);
        if let Action::Machine { call, slot: None } = ctx.action {
            // A call that needs the whole machine runs after this exit, its result into the
            // entry; the rest of the list is a continuation (possibly of no entries).
            ctx.regs_loaded = false;
            ctx.action = Action::Machine {
                call,
                slot: Some(MulticallSlot {
                    entry: at,
                    rest: count - i,
                }),
            };
            return continue_from(args, i + 1);
        }
        if result == Err(XenError::Restart) {
            ctx.mem.write_obj(at + ARGS_OFFSET, &call.args)?;
            return continue_from(args, i);
        }
        ctx.mem.write_obj(at + RESULT_OFFSET, &encode(result))?;
        if ctx.regs_loaded || !matches!(ctx.action, Action::Resume | Action::Yield) {
            break;
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Fixture, call};
    use super::*;
    use guest_abi::Hypercall;
    use zerocopy::IntoBytes;

    fn entry(op: Hypercall, args: [u64; 6]) -> MulticallEntry {
        MulticallEntry {
            op: u64::from(op.raw()),
            result: 0xdead,
            args,
        }
    }

    fn result(f: &mut Fixture, i: u64) -> u64 {
        u64::from_le_bytes(f.mem.read_bytes(0x1008 + i * 64, 8).try_into().unwrap())
    }

    #[test]
    fn a_long_list_is_continued_between_entries() {
        let mut f = Fixture::new();
        let list = [entry(Hypercall::XenVersion, [0; 6]); 5];
        f.mem.write_bytes(0x1000, list.as_bytes());
        f.regs.rip = 0x40_1002;
        f.host.preempt_every = 3;
        // Entries 0..3 run (the checks before entries 1, 2 say go on, before 3 stop).
        assert_eq!(
            call(&mut f, Hypercall::Multicall, [0x1000, 5, 0, 0, 0]),
            Ok(13)
        );
        assert_eq!(
            (f.regs.rdi, f.regs.rsi, f.regs.rip),
            (0x1000 + 3 * 64, 2, 0x40_1000)
        );
        assert_eq!(result(&mut f, 2), 0x4_0011);
        assert_eq!(result(&mut f, 3), 0xdead, "not run yet");
        f.host.preempt_every = 0;
        let rest = f.regs.rdi;
        assert_eq!(
            call(&mut f, Hypercall::Multicall, [rest, 2, 0, 0, 0]),
            Ok(0)
        );
        assert_eq!(result(&mut f, 4), 0x4_0011);
    }

    #[test]
    fn an_entry_that_needs_the_machine_ends_the_pass() {
        use crate::hypercall::{MachineCall, MulticallSlot};
        let mut f = Fixture::new();
        let list = [
            entry(Hypercall::XenVersion, [0; 6]),
            entry(Hypercall::Domctl, [0x5000, 0, 0, 0, 0, 0]),
            entry(Hypercall::XenVersion, [0; 6]),
        ];
        f.mem.write_bytes(0x1000, list.as_bytes());
        f.regs.rip = 0x40_1002;
        assert_eq!(
            call(&mut f, Hypercall::Multicall, [0x1000, 3, 0, 0, 0]),
            Ok(13)
        );
        assert_eq!(
            f.action,
            Action::Machine {
                call: MachineCall::Domctl(0x5000),
                slot: Some(MulticallSlot {
                    entry: 0x1040,
                    rest: 2
                })
            }
        );
        // The rest of the list is a continuation; the entry's result is the exit path's.
        assert_eq!((f.regs.rdi, f.regs.rsi, f.regs.rip), (0x1080, 1, 0x40_1000));
        assert_eq!(result(&mut f, 0), 0x4_0011);
        assert_eq!(result(&mut f, 1), 0xdead);
        assert_eq!(result(&mut f, 2), 0xdead);
    }

    #[test]
    fn an_entry_that_is_continued_keeps_its_progress_in_the_list() {
        let mut f = Fixture::new();
        // 25 requests: the fake MMU does 10 per pass.
        let list = [
            entry(Hypercall::XenVersion, [0; 6]),
            entry(Hypercall::MmuUpdate, [0x2000, 25, 0, 0x7ff0, 0, 0]),
        ];
        f.mem.write_bytes(0x1000, list.as_bytes());
        f.regs.rip = 0x40_1002;
        call(&mut f, Hypercall::Multicall, [0x1000, 2, 0, 0, 0]).unwrap();
        assert_eq!(
            (f.regs.rdi, f.regs.rsi),
            (0x1040, 1),
            "continued at entry 1"
        );
        let args = f.mem.read_bytes(0x1040 + 16, 16);
        assert_eq!(
            args,
            [
                (0x2000u64 + 160).to_le_bytes(),
                (15u64 | 0x8000_0000).to_le_bytes()
            ]
            .concat()
        );
        assert_eq!(result(&mut f, 1), 0xdead);
        for _ in 0..2 {
            call(&mut f, Hypercall::Multicall, [0x1040, 1, 0, 0, 0]).unwrap();
        }
        assert_eq!(result(&mut f, 1), 0, "done after the third pass");
    }

    #[test]
    fn each_entry_gets_its_own_result() {
        let mut f = Fixture::new();
        let list = [
            entry(Hypercall::XenVersion, [0; 6]),
            entry(Hypercall::Multicall, [0x1000, 1, 0, 0, 0, 0]),
            MulticallEntry {
                op: 999,
                result: 0,
                args: [0; 6],
            },
            entry(Hypercall::XenVersion, [7, 0, 0, 0, 0, 0]),
        ];
        f.mem.write_bytes(0x1000, list.as_bytes());
        assert_eq!(
            call(&mut f, Hypercall::Multicall, [0x1000, 4, 0, 0, 0]),
            Ok(0)
        );
        let result = |f: &mut Fixture, i: u64| {
            u64::from_le_bytes(f.mem.read_bytes(0x1008 + i * 64, 8).try_into().unwrap())
        };
        assert_eq!(result(&mut f, 0), 0x4_0011);
        assert_eq!(
            result(&mut f, 1),
            encode(Err(XenError::Inval)),
            "no nesting"
        );
        assert_eq!(result(&mut f, 2), encode(Err(XenError::NoSys)));
        assert_eq!(result(&mut f, 3), 4096);
    }

    #[test]
    fn iret_inside_a_multicall_resumes_from_its_frame_and_ends_the_batch() {
        use guest_abi::arch::IretContext;
        let mut f = Fixture::new();
        let frame = IretContext {
            rax: 77,
            r11: 1,
            rcx: 2,
            flags: 0,
            rip: 0x40_1000,
            cs: 0xe033,
            rflags: 0x202,
            rsp: 0x7000,
            ss: 0xe02b,
        };
        f.mem.write_bytes(0x6000, frame.as_bytes());
        f.regs.rsp = 0x6000;
        let list = [
            entry(Hypercall::Iret, [0; 6]),
            entry(Hypercall::XenVersion, [0; 6]),
        ];
        f.mem.write_bytes(0x1000, list.as_bytes());
        f.vcpu.user_table = Some(crate::mm::Mfn(1));
        assert_eq!(
            call(&mut f, Hypercall::Multicall, [0x1000, 2, 0, 0, 0]),
            Ok(77),
            "rax from the frame"
        );
        assert_eq!((f.regs.rip, f.regs.rcx, f.regs.r11), (0x40_1000, 2, 1));
        let result = |f: &mut Fixture, i: u64| {
            u64::from_le_bytes(f.mem.read_bytes(0x1008 + i * 64, 8).try_into().unwrap())
        };
        assert_eq!(result(&mut f, 0), 77);
        assert_eq!(result(&mut f, 1), 0xdead, "skipped");
    }

    #[test]
    fn bad_list_faults_and_huge_counts_stop_at_unmapped_memory() {
        let mut f = Fixture::new();
        assert_eq!(
            call(&mut f, Hypercall::Multicall, [0xdead_0000, 1, 0, 0, 0]),
            Err(XenError::Fault)
        );
        f.mem
            .write_bytes(0x1000, entry(Hypercall::XenVersion, [0; 6]).as_bytes());
        assert_eq!(
            call(&mut f, Hypercall::Multicall, [0x1000, u64::MAX, 0, 0, 0]),
            Err(XenError::Fault)
        );
        assert_eq!(
            call(&mut f, Hypercall::Multicall, [0x1000, 0, 0, 0, 0]),
            Ok(0)
        );
    }
}
