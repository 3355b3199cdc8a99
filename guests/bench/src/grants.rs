//! Benchmarks of the grant table, as backends use it: a copy of a whole page out of a granted
//! frame (`GNTTABOP_copy`), and a mapping of a grant into the caller's address space and its
//! unmapping (`map_grant_ref` + `unmap_grant_ref`). The domain grants a page of its own to
//! itself (entry 8 of its table, set up here).

use guest_abi::grant_table::{
    GNTCOPY_SOURCE_GREF, GNTMAP_HOST_MAP, GnttabCopy, GnttabCopyPtr, GnttabMapGrantRef, GnttabOp,
    GnttabSetupTable, GnttabUnmapGrantRef, GtfFlags,
};
use guest_abi::runtime::hypercall;
use guest_abi::{DomId, XenError};

use crate::error::Error;
use crate::pt::Spare;
use crate::run::{Spec, bench_each, failed};

/// The grant benchmarked.
const GREF: u32 = 8;
/// The domain benchmarked: dom0.
const ME: u16 = 0;

/// Sets up the table with entry [`GREF`] granting [`Spare::DataA`] to ourselves.
fn set_up() -> Result<(), Error> {
    let mut frame = [0u64; 1];
    let mut op = [GnttabSetupTable {
        dom: DomId::SELF.0,
        nr_frames: 1,
        frame_list: frame.as_mut_ptr() as u64,
        ..GnttabSetupTable::default()
    }];
    // SAFETY: one gnttab_setup_table with room for its one frame.
    unsafe { hypercall::grant_table_op(GnttabOp::SetupTable, &mut op) }
        .map_err(|e| Error::xen("grant setup_table", e))?;
    if op[0].status != 0 {
        return Err(Error::Text("grant setup_table status"));
    }
    Spare::GrantTable.map_frame(frame[0])?;
    let entry =
        u64::from(GtfFlags::PERMIT_ACCESS.bits()) | u64::from(ME) << 16 | Spare::DataA.mfn() << 32;
    // SAFETY: entry GREF of our own grant table, now mapped writable over the spare page.
    unsafe {
        (Spare::GrantTable.ptr() as *mut u64)
            .add(GREF as usize)
            .write_volatile(entry)
    };
    Ok(())
}

/// A call's error or an operation's status, as one error.
fn status(what: &'static str, r: Result<u64, XenError>, status: i16) -> Result<(), Error> {
    r.map_err(|e| Error::xen(what, e))?;
    if status == 0 {
        Ok(())
    } else {
        Err(Error::Text(what))
    }
}

pub fn run() {
    if let Err(e) = set_up() {
        failed("grant_copy_page", e);
        failed("grant_map_unmap", e);
        return;
    }
    let copy = GnttabCopy {
        source: GnttabCopyPtr::grant(ME, GREF, 0),
        dest: GnttabCopyPtr::frame(Spare::DataB.mfn(), 0),
        len: 4096,
        flags: GNTCOPY_SOURCE_GREF,
        ..GnttabCopy::default()
    };
    bench_each(Spec::new("grant_copy_page", 200), |_| {
        let mut op = [copy];
        // SAFETY: copies our own page DataA over our own page DataB.
        let r = unsafe { hypercall::grant_table_op(GnttabOp::Copy, &mut op) };
        status("grant copy", r, op[0].status)
    });
    let window = Spare::GrantWindow.va();
    bench_each(Spec::new("grant_map_unmap", 200), |_| {
        let mut map = [GnttabMapGrantRef {
            host_addr: window,
            flags: GNTMAP_HOST_MAP,
            ref_: GREF,
            dom: ME,
            ..GnttabMapGrantRef::default()
        }];
        // SAFETY: maps our own page DataA over the spare window page.
        let r = unsafe { hypercall::grant_table_op(GnttabOp::MapGrantRef, &mut map) };
        status("grant map", r, map[0].status)?;
        let mut unmap = [GnttabUnmapGrantRef {
            host_addr: window,
            handle: map[0].handle,
            ..GnttabUnmapGrantRef::default()
        }];
        // SAFETY: removes the mapping just made.
        let r = unsafe { hypercall::grant_table_op(GnttabOp::UnmapGrantRef, &mut unmap) };
        status("grant unmap", r, unmap[0].status)
    });
    if let Err(e) = Spare::GrantWindow.remap_own() {
        failed("grant_map_unmap", e);
    }
}
