//! `multicall`: a batch of hypercalls, each entry's result written back into the entry.
//! Entries run in order; a multicall may not contain `multicall` (`-EINVAL`). An `iret` entry
//! does what Xen does: the guest resumes from the `iret` frame (the entry's result is its
//! `rax`) and the rest of the batch is skipped. Processing also stops after an entry that
//! shuts down, blocks or crashes.

use super::{Action, Call, Ctx, HcResult, Host, dispatch, encode};
use crate::pv::guest_mem::GuestMemory;
use guest_abi::XenError;
use guest_abi::xen::MulticallEntry;

/// Size of one `multicall_entry`.
const ENTRY_SIZE: u64 = size_of::<MulticallEntry>() as u64;

pub fn multicall<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    list: u64,
    count: u64,
) -> HcResult {
    let count = count as u32 as u64;
    for i in 0..count {
        let at = list.checked_add(i * ENTRY_SIZE).ok_or(XenError::Fault)?;
        let mut entry: MulticallEntry = ctx.mem.read_obj(at)?;
        let a = entry.args;
        let call = Call {
            nr: entry.op,
            args: [a[0], a[1], a[2], a[3], a[4]],
        };
        entry.result = encode(dispatch(ctx, call, true));
        ctx.mem.write_obj(at + 8, &entry.result)?;
        if ctx.regs_loaded || (ctx.action != Action::Resume && ctx.action != Action::Yield) {
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
