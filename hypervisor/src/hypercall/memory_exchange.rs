//! `XENMEM_exchange`: the argument checks in the order of Xen's `memory_exchange()`
//! (xen/common/memory.c), the progress count `nr_exchanged` written back on every exit, and the
//! continuation (the same call again, picking up at `nr_exchanged`). The frames themselves move
//! in the frame table ([`crate::mm::pv::FrameTable::exchange`]).
//!
//! Order of checks: the larger extent order above the caller's maximum (9 for a domU, 18 for
//! dom0, the control domain, as Xen's `domu_max_order`/`ctldom_max_order`) is `-EPERM`; then a progress
//! count beyond the input, different domains in and out, a list size that overflows, or input
//! and output of different sizes is `-EINVAL`; nothing left is success; a list outside guest
//! memory is `-EFAULT`; a NUMA node the caller may not ask for is `-EINVAL`; an unknown domain
//! is `-ESRCH` and another domain without privilege `-EPERM`. In the work: an input frame that is
//! not RAM, or not the domain's alone, is `-EINVAL`, no memory below the address width
//! `-ENOMEM`, an unreadable list `-EFAULT`.

use super::HcResult;
use crate::mm::pv::{
    Chunks, DomId, DomainRef, ExchangeLists, FramePool, FrameStore, FrameTable, M2pTable, Outcome,
    PvMmError,
};
use crate::pv::guest_mem::{GuestMemory, access_ok};
use core::mem::offset_of;
use guest_abi::XenError;
use guest_abi::memory::{
    XENMEMF_EXACT_NODE_REQUEST, XenMemoryExchange, mem_flags_address_bits, mem_flags_node,
};

/// Largest extent order a domU may exchange (Xen's `CONFIG_DOMU_MAX_ORDER`).
pub const DOMU_MAX_ORDER: u32 = 9;
/// Largest extent order dom0 may exchange: it is the control domain as well as the hardware
/// domain, and Xen's `ctldom_max_order` (`CONFIG_PAGEALLOC_MAX_ORDER`, 18 on x86) is the larger.
pub const CTLDOM_MAX_ORDER: u32 = 18;
/// Frames moved in one pass before the call is continued (at least one chunk).
const FRAMES_PER_PASS: u64 = 512;
/// Xen's `MAX_NUMNODES` on x86: a node number the hardware domain may name.
const MAX_NUMNODES: u8 = 64;
/// `NUMA_NO_NODE`.
const NO_NODE: u8 = 0xff;

/// Whether `count` 8-byte elements from element `first` of the list at `base` lie in guest
/// memory (Xen's `guest_handle_subrange_okay`).
fn list_ok(base: u64, first: u64, count: u64) -> bool {
    let start = base.wrapping_add(first.wrapping_mul(8));
    count < u64::MAX / 8 && access_ok(start, count.checked_mul(8))
}

/// The guest's lists, read and written through its memory.
struct GuestLists<'a, M> {
    mem: &'a mut M,
    input: u64,
    output: u64,
}

impl<M: GuestMemory> ExchangeLists for GuestLists<'_, M> {
    fn input(&mut self, index: u64) -> Result<u64, PvMmError> {
        let at = self.input.wrapping_add(index.wrapping_mul(8));
        self.mem.read_obj(at).map_err(|_| PvMmError::Fault)
    }
    fn output(&mut self, index: u64) -> Result<u64, PvMmError> {
        let at = self.output.wrapping_add(index.wrapping_mul(8));
        self.mem.read_obj(at).map_err(|_| PvMmError::Fault)
    }
    fn set_output(&mut self, index: u64, mfn: u64) -> Result<(), PvMmError> {
        let at = self.output.wrapping_add(index.wrapping_mul(8));
        self.mem.write_obj(at, &mfn).map_err(|_| PvMmError::Fault)
    }
}

/// What the checks decided: nothing to do, or the chunks to exchange for `target`.
enum Plan {
    Nothing,
    Work {
        target: DomainRef,
        chunks: Chunks,
        total: u64,
    },
}

/// The argument checks, in Xen's order.
fn check<S: FrameStore, P: FramePool, M: M2pTable, const D: usize>(
    ft: &FrameTable<S, P, M, D>,
    me: DomainRef,
    hardware: bool,
    x: &XenMemoryExchange,
) -> Result<Plan, XenError> {
    let (i, o) = (&x.in_, &x.out);
    let max_order = if hardware {
        CTLDOM_MAX_ORDER
    } else {
        DOMU_MAX_ORDER
    };
    if i.extent_order.max(o.extent_order) > max_order {
        return Err(XenError::Perm);
    }
    let sane = x.nr_exchanged <= i.nr_extents
        && i.domid == o.domid
        && (u64::MAX >> i.extent_order) >= i.nr_extents
        && (u64::MAX >> o.extent_order) >= o.nr_extents
        && i.nr_extents << i.extent_order == o.nr_extents << o.extent_order;
    if !sane {
        return Err(XenError::Inval);
    }
    if x.nr_exchanged == i.nr_extents {
        return Ok(Plan::Nothing);
    }
    let in_first = x.nr_exchanged;
    if !list_ok(i.extent_start, in_first, i.nr_extents - in_first) {
        return Err(XenError::Fault);
    }
    let shape = Chunks {
        in_order: i.extent_order,
        out_order: o.extent_order,
        below: 0,
        first: 0,
        end: 0,
    };
    let out_first = if i.extent_order <= o.extent_order {
        x.nr_exchanged >> shape.in_per_chunk()
    } else {
        x.nr_exchanged << shape.out_per_chunk()
    };
    if !list_ok(
        o.extent_start,
        out_first,
        o.nr_extents.wrapping_sub(out_first),
    ) {
        return Err(XenError::Fault);
    }
    let node = mem_flags_node(o.mem_flags);
    let node_ok = node == NO_NODE
        || if hardware {
            node < MAX_NUMNODES
        } else {
            o.mem_flags & XENMEMF_EXACT_NODE_REQUEST == 0
        };
    if !node_ok {
        return Err(XenError::Inval);
    }
    let target = ft
        .resolve_target(me, DomId(i.domid))
        .map_err(PvMmError::errno)?;
    let bits = mem_flags_address_bits(o.mem_flags);
    let below = match bits {
        0 => u64::MAX,
        b if b <= 12 => 0,
        b if b - 12 >= 64 => u64::MAX,
        b => 1 << (b - 12),
    };
    Ok(Plan::Work {
        target,
        chunks: Chunks {
            below,
            first: x.nr_exchanged >> shape.in_per_chunk(),
            end: i.nr_extents >> shape.in_per_chunk(),
            ..shape
        },
        total: i.nr_extents,
    })
}

/// `XENMEM_exchange` with its argument at `arg`, for the caller `me` (`hardware`: the hardware
/// domain). `Err(Restart)` continues the call.
pub fn memory_exchange<S: FrameStore, P: FramePool, M: M2pTable, const D: usize>(
    ft: &mut FrameTable<S, P, M, D>,
    me: DomainRef,
    hardware: bool,
    mem: &mut impl GuestMemory,
    arg: u64,
) -> Outcome<HcResult> {
    let done = |result| Outcome {
        result,
        flush_all_cpus: false,
    };
    let Ok(x) = mem.read_obj::<XenMemoryExchange>(arg) else {
        return done(Err(XenError::Fault));
    };
    let report = |mem: &mut dyn FnMut(u64) -> bool, n: u64, rc: HcResult| {
        if mem(n) { rc } else { Err(XenError::Fault) }
    };
    let at = arg.wrapping_add(offset_of!(XenMemoryExchange, nr_exchanged) as u64);
    let (target, chunks, total) = match check(ft, me, hardware, &x) {
        Ok(Plan::Nothing) => return done(Ok(0)),
        Ok(Plan::Work {
            target,
            chunks,
            total,
        }) => (target, chunks, total),
        Err(e) => {
            let rc = report(
                &mut |n| mem.write_obj(at, &n).is_ok(),
                x.nr_exchanged,
                Err(e),
            );
            return done(rc);
        }
    };
    let chunk_frames = 1u64 << (chunks.in_per_chunk() + chunks.in_order);
    let per_pass = (FRAMES_PER_PASS / chunk_frames).max(1);
    let pass = Chunks {
        end: chunks.end.min(chunks.first.saturating_add(per_pass)),
        ..chunks
    };
    let mut lists = GuestLists {
        mem,
        input: x.in_.extent_start,
        output: x.out.extent_start,
    };
    let outcome = ft.exchange(target, &pass, &mut lists);
    let end = outcome.result;
    let mem = lists.mem;
    let mut write = |n: u64| mem.write_obj(at, &n).is_ok();
    let result = match end.result {
        Err(e) => report(&mut write, end.next << pass.in_per_chunk(), Err(e.errno())),
        Ok(()) if end.next < pass.end => {
            // The domain is dying: stop where the work stopped, as Xen does.
            report(&mut write, end.next << pass.in_per_chunk(), Ok(0))
        }
        Ok(()) if pass.end < chunks.end => report(
            &mut write,
            pass.end << pass.in_per_chunk(),
            Err(XenError::Restart),
        ),
        Ok(()) => report(&mut write, total, Ok(0)),
    };
    Outcome {
        result,
        flush_all_cpus: outcome.flush_all_cpus,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mm::Mfn;
    use crate::mm::pv::DomainConfig;
    use crate::mm::pv::fake::{Table, VecList, machine};
    use crate::pv::guest_mem::fake::FakeGuest;
    use guest_abi::arch::HYPERVISOR_VIRT_END;
    use guest_abi::memory::XenMemoryReservation;
    use std::vec::Vec;

    const ARG: u64 = 0x1000;
    const IN_LIST: u64 = 0x2000;
    const OUT_LIST: u64 = 0x8000;

    struct Setup {
        ft: Table,
        me: DomainRef,
        mem: FakeGuest,
    }

    fn setup(privileged: bool, frames: u32) -> (Setup, Vec<u64>) {
        let mut ft = machine(4096);
        let config = DomainConfig {
            max_pages: 2048,
            privileged,
            superpages: false,
            iomem_access: privileged,
        };
        let me = ft.create_domain(DomId(1), config).unwrap();
        let _other = ft.create_domain(DomId(2), config).unwrap();
        let mut list = VecList::new(Vec::new());
        assert_eq!(
            ft.increase_reservation(me, frames, 0, &mut list).result,
            frames
        );
        let mut mem = FakeGuest::default();
        mem.map(ARG, size_of::<XenMemoryExchange>() as u64);
        mem.map(IN_LIST, 0x6000);
        mem.map(OUT_LIST, 0x6000);
        for (i, &m) in list.items.iter().enumerate() {
            mem.write_obj(IN_LIST + 8 * i as u64, &m).unwrap();
        }
        (Setup { ft, me, mem }, list.items)
    }

    fn exchange(
        in_order: u32,
        n_in: u64,
        out_order: u32,
        n_out: u64,
        flags: u32,
    ) -> XenMemoryExchange {
        let r = |extent_start, nr_extents, extent_order, mem_flags| XenMemoryReservation {
            extent_start,
            nr_extents,
            extent_order,
            mem_flags,
            domid: DomId::SELF.0,
            _hole: [0; 3],
        };
        XenMemoryExchange {
            in_: r(IN_LIST, n_in, in_order, 0),
            out: r(OUT_LIST, n_out, out_order, flags),
            nr_exchanged: 0,
        }
    }

    fn call(s: &mut Setup, x: &XenMemoryExchange, hardware: bool) -> (HcResult, u64) {
        s.mem.write_obj(ARG, x).unwrap();
        let r = memory_exchange(&mut s.ft, s.me, hardware, &mut s.mem, ARG).result;
        let back: XenMemoryExchange = s.mem.read_obj(ARG).unwrap();
        (r, back.nr_exchanged)
    }

    #[test]
    fn contiguous_extent_below_32_bits_with_its_mfn_written_back() {
        let (mut s, _) = setup(true, 8);
        for i in 0..2u64 {
            s.mem
                .write_obj(OUT_LIST + 8 * i, &(0x100 * (i + 1)))
                .unwrap();
        }
        let x = exchange(0, 8, 2, 2, 32);
        assert_eq!(call(&mut s, &x, true), (Ok(0), 8));
        for i in 0..2u64 {
            let mfn: u64 = s.mem.read_obj(OUT_LIST + 8 * i).unwrap();
            assert_eq!(mfn % 4, 0);
            assert!(mfn < 1 << 20);
            // (A chunk may get frames an earlier chunk gave up.)
            assert_eq!(s.ft.frame(Mfn(mfn)).and_then(|f| f.owner()), Some(DomId(1)));
            assert_eq!(
                s.ft.m2p().get(Mfn(mfn + 3)),
                crate::mm::pv::Pfn(0x100 * (i + 1) + 3)
            );
        }
    }

    #[test]
    fn checks_in_xens_order() {
        let (mut s, _) = setup(false, 8);
        let mut x = exchange(10, 1, 0, 1024, 0);
        x.in_.domid = 7;
        x.nr_exchanged = 5;
        // The order first (-EPERM), with the progress written back as it came.
        assert_eq!(call(&mut s, &x, false), (Err(XenError::Perm), 5));
        // Sizes that differ, a progress beyond the input, different domains: -EINVAL.
        let x = exchange(0, 4, 1, 1, 0);
        assert_eq!(call(&mut s, &x, false).0, Err(XenError::Inval));
        let mut x = exchange(0, 4, 2, 1, 0);
        x.nr_exchanged = 5;
        assert_eq!(call(&mut s, &x, false).0, Err(XenError::Inval));
        let mut x = exchange(0, 4, 2, 1, 0);
        x.out.domid = 1;
        assert_eq!(call(&mut s, &x, false).0, Err(XenError::Inval));
        // Nothing left to do: success, before the lists are looked at.
        let mut x = exchange(0, 4, 2, 1, 0);
        x.nr_exchanged = 4;
        x.in_.extent_start = HYPERVISOR_VIRT_END - 0x1000_0000;
        assert_eq!(call(&mut s, &x, false), (Ok(0), 4));
        // A list in the hypervisor's range: -EFAULT.
        x.nr_exchanged = 0;
        assert_eq!(call(&mut s, &x, false).0, Err(XenError::Fault));
        let mut x = exchange(0, 4, 2, 1, 0);
        x.out.extent_start = 0xffff_8000_0000_0000;
        assert_eq!(call(&mut s, &x, false).0, Err(XenError::Fault));
        // An exact NUMA node from a domU, a node beyond Xen's count from dom0: -EINVAL.
        let x = exchange(0, 4, 2, 1, XENMEMF_EXACT_NODE_REQUEST | (1 << 8));
        assert_eq!(call(&mut s, &x, false).0, Err(XenError::Inval));
        let x = exchange(0, 4, 2, 1, 71 << 8);
        assert_eq!(call(&mut s, &x, true).0, Err(XenError::Inval));
        // An unknown domain, then another domain without privilege.
        let mut x = exchange(0, 4, 2, 1, 0);
        (x.in_.domid, x.out.domid) = (9, 9);
        assert_eq!(call(&mut s, &x, false).0, Err(XenError::Srch));
        (x.in_.domid, x.out.domid) = (2, 2);
        assert_eq!(call(&mut s, &x, false).0, Err(XenError::Perm));
    }

    #[test]
    fn domu_orders_stop_at_9_and_dom0_at_18() {
        let (mut s, _) = setup(false, 8);
        let x = exchange(9, 0, 0, 0, 0);
        assert_eq!(call(&mut s, &x, false).0, Ok(0));
        let x = exchange(0, 0, 10, 0, 0);
        assert_eq!(call(&mut s, &x, false).0, Err(XenError::Perm));
        assert_eq!(call(&mut s, &x, true).0, Ok(0));
        let x = exchange(0, 0, 19, 0, 0);
        assert_eq!(call(&mut s, &x, true).0, Err(XenError::Perm));
    }

    #[test]
    fn a_frame_not_the_callers_is_einval_with_the_chunks_before_it_counted() {
        let (mut s, _) = setup(false, 8);
        s.mem.write_obj(IN_LIST + 8 * 5, &3u64).unwrap();
        let x = exchange(0, 8, 1, 4, 0);
        assert_eq!(call(&mut s, &x, false), (Err(XenError::Inval), 4));
        // Too few address bits for any frame: -ENOMEM, nothing counted past the progress.
        let mut x = exchange(0, 8, 1, 4, 12);
        x.nr_exchanged = 6;
        assert_eq!(call(&mut s, &x, false), (Err(XenError::NoMem), 6));
    }

    #[test]
    fn long_exchanges_continue_where_they_stopped() {
        let (mut s, _) = setup(true, 600);
        let mut x = exchange(0, 600, 0, 600, 0);
        let (r, done) = call(&mut s, &x, true);
        assert_eq!((r, done), (Err(XenError::Restart), 512));
        x.nr_exchanged = done;
        assert_eq!(call(&mut s, &x, true), (Ok(0), 600));
        for i in 0..600u64 {
            let mfn: u64 = s.mem.read_obj(OUT_LIST + 8 * i).unwrap();
            assert_eq!(s.ft.frame(Mfn(mfn)).and_then(|f| f.owner()), Some(DomId(1)));
        }
    }
}
