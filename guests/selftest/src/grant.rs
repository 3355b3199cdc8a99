//! `grant.*`: the caller's own grant table. `GNTTABOP_set_version(1)`, `setup_table` for one
//! frame (status okay, a frame the domain may map writable: it is mapped over a page of the
//! image and written and read back), `query_size` (at least that frame, within the maximum),
//! `get_version`, and the refusals of more than one operation per call and of an unknown
//! domain.

use guest_abi::arch::PteFlags;
use guest_abi::grant_table::{
    GntStatus, GnttabGetVersion, GnttabOp, GnttabQuerySize, GnttabSetVersion, GnttabSetupTable,
};
use guest_abi::runtime::hypercall;
use guest_abi::xen::UVMF_INVLPG;
use guest_abi::{DomId, VirtAddr, XenError};

use crate::check::{Report, Why, ensure, eq, ok};
use guest_abi::runtime::AsmCell;

/// A page of the image the grant frame is mapped over.
#[repr(C, align(4096))]
struct Page([u64; 512]);
static WINDOW: AsmCell<Page> = AsmCell::new(Page([0; 512]));

/// A domain that does not exist.
const NO_DOMAIN: u16 = 100;

pub fn run(r: &mut Report, si: &guest_abi::xen::StartInfo) {
    let mut v = [GnttabSetVersion { version: 1 }];
    // SAFETY: one gnttab_set_version, read and written by the hypervisor.
    let res = unsafe { hypercall::grant_table_op(GnttabOp::SetVersion, &mut v) };
    r.check(
        "grant.set_version 1",
        ok("GNTTABOP_set_version", res).and_then(|_| eq("version", v[0].version.into(), 1)),
    );

    let mut frame = 0u64;
    let (res, status) = setup(DomId::SELF.0, &mut frame);
    r.check(
        "grant.setup_table one frame",
        ok("GNTTABOP_setup_table", res)
            .and_then(|_| eq("status", status as u64, 0))
            .and_then(|_| ensure(frame != 0, "no frame")),
    );
    let mapped = map_and_use(frame);
    let usable = mapped.is_ok();
    r.check("grant.table frame maps writable", mapped);
    if usable {
        // The selftest runs as dom0.
        crate::grant_copy::run(r, si, WINDOW.addr() as *mut u64, 0);
        crate::grant_map::run(r, si, WINDOW.addr() as *mut u64, 0);
        crate::grant_v2::run(r, si, WINDOW.addr() as *mut u64, 0);
    }

    let mut q = [GnttabQuerySize {
        dom: DomId::SELF.0,
        ..Default::default()
    }];
    // SAFETY: one gnttab_query_size.
    let res = unsafe { hypercall::grant_table_op(GnttabOp::QuerySize, &mut q) };
    r.check(
        "grant.query_size",
        ok("GNTTABOP_query_size", res)
            .and_then(|_| eq("status", q[0].status as u64, 0))
            .and_then(|_| ensure(q[0].nr_frames >= 1, "no frames"))
            .and_then(|_| ensure(q[0].max_nr_frames >= q[0].nr_frames, "over the maximum")),
    );

    let mut g = [GnttabGetVersion {
        dom: DomId::SELF.0,
        ..Default::default()
    }];
    // SAFETY: one gnttab_get_version.
    let res = unsafe { hypercall::grant_table_op(GnttabOp::GetVersion, &mut g) };
    r.check(
        "grant.get_version",
        ok("GNTTABOP_get_version", res).and_then(|_| eq("version", g[0].version.into(), 1)),
    );

    let mut two = [GnttabQuerySize::default(); 2];
    // SAFETY: two gnttab_query_size; the hypervisor refuses the call before reading them.
    let res = unsafe { hypercall::grant_table_op(GnttabOp::QuerySize, &mut two) };
    r.check_eq("grant.query_size count 2", res, Err(XenError::Inval));

    let mut unused = 0u64;
    let (res, status) = setup(NO_DOMAIN, &mut unused);
    r.check(
        "grant.setup_table unknown domain",
        ok("GNTTABOP_setup_table", res)
            .and_then(|_| eq("status", status as u64, GntStatus::BadDomain.raw() as u64)),
    );
}

fn setup(dom: u16, frame: &mut u64) -> (Result<u64, XenError>, i16) {
    let mut op = [GnttabSetupTable {
        dom,
        nr_frames: 1,
        frame_list: frame as *mut u64 as u64,
        ..Default::default()
    }];
    // SAFETY: one gnttab_setup_table whose list has room for its one frame.
    let res = unsafe { hypercall::grant_table_op(GnttabOp::SetupTable, &mut op) };
    (res, op[0].status)
}

fn map_and_use(frame: u64) -> Result<(), Why> {
    let va = WINDOW.addr();
    let flags = PteFlags::PRESENT | PteFlags::RW | PteFlags::ACCESSED | PteFlags::DIRTY;
    let pte = ((frame << 12) & PteFlags::ADDR_MASK) | flags.bits();
    // SAFETY: the page is ours and unused; its frame is replaced by the grant frame.
    ok("update_va_mapping", unsafe {
        hypercall::update_va_mapping(VirtAddr(va), pte, UVMF_INVLPG)
    })?;
    let word = va as *mut u64;
    // SAFETY: `word` is the first word of the mapped grant frame, ours to write.
    let back = unsafe {
        word.write_volatile(0x1234_5678);
        word.read_volatile()
    };
    // SAFETY: as above; the entry is left zero, an unused grant.
    unsafe { word.write_volatile(0) };
    eq("word read back", back, 0x1234_5678)
}
