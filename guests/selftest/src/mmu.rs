//! `mmu.*`: the PV MMU. A new 4-level address space built from free pages of the
//! bootstrap region's padding (which stays mapped read-write there until each page is
//! remapped read-only to become a page table), pinned, switched to with `NEW_BASEPTR` and
//! back; `update_va_mapping` with each flush kind; pins and unpins; a batch `mmu_update`
//! that fails in the middle; `MMU_MACHPHYS_UPDATE` read back through the M2P; and the
//! updates Xen refuses, with its errno, the domain carrying on afterwards.
//!
//! Every page used here is a padding page: nothing in Rust refers to it, so mapping it
//! read-only, using it as a page table or mapping it elsewhere changes no memory the rest
//! of the kernel relies on. The new address space maps everything the bootstrap one does
//! (it shares the bootstrap L3 tables), so the code, stack and data stay mapped across
//! `NEW_BASEPTR`.

use guest_abi::arch::{MACH2PHYS_VIRT_START, PteFlags};
use guest_abi::hypercall::Hypercall;
use guest_abi::memory::MemoryOp;
use guest_abi::runtime::hypercall::{self, call};
use guest_abi::xen::{
    MmuUpdate, MmuUpdateCmd, MmuextCmd, MmuextOp, StartInfo, UVMF_ALL, UVMF_INVLPG, UVMF_LOCAL,
    UVMF_TLB_FLUSH,
};
use guest_abi::{DomId, PAGE_SHIFT, PAGE_SIZE, VirtAddr, XenError, println};

use crate::check::{Report, Why, ensure, eq, ok};
use crate::domain;
use crate::traps::{emulate, provoke};

/// Where the new address space maps its test page: L4 slot 32, L3/L2/L1 slot 0. The
/// bootstrap tables map nothing there.
const TEST_VA: u64 = 0x0000_1000_0000_0000;
/// `TEST_VA`'s L4 slot.
const TEST_SLOT: usize = 32;
/// The first and last L4 slots of the hypervisor range.
const XEN_SLOTS: core::ops::RangeInclusive<usize> = 256..=271;
/// An L4 slot nothing uses, for the linear (self-map) entry.
const LINEAR_SLOT: usize = 300;
/// What the two data pages hold in their first word.
const PATTERN_A: u64 = 0xaaaa_0000_5e1f_7e57;
/// See [`PATTERN_A`].
const PATTERN_B: u64 = 0xbbbb_0000_5e1f_7e57;
/// A pseudo-physical frame number written into the M2P (and then put back).
const M2P_TEST_PFN: u64 = 0x1_2345;
/// The local APIC's frame (its default address), which the hypervisor uses.
const LAPIC_MFN: u64 = 0xfee00;

/// A read-only kernel mapping.
const RO: PteFlags = PteFlags::PRESENT.union(PteFlags::ACCESSED);
/// A read-write kernel mapping.
const RW: PteFlags = RO.union(PteFlags::RW).union(PteFlags::DIRTY);
/// An entry pointing to a lower-level table (Linux's `_PAGE_TABLE`).
const TABLE: PteFlags = RW.union(PteFlags::USER);

/// A page of the bootstrap region: its virtual address there and its machine frame.
#[derive(Clone, Copy, Debug)]
struct Frame {
    va: u64,
    mfn: u64,
}

impl Frame {
    /// An entry mapping this frame with `flags`.
    fn entry(self, flags: PteFlags) -> u64 {
        (self.mfn << PAGE_SHIFT) | flags.bits()
    }

    /// The machine address of entry `i` (when the frame is a page table).
    fn slot(self, i: usize) -> u64 {
        (self.mfn << PAGE_SHIFT) + 8 * i as u64
    }

    /// Word `i`, read through the bootstrap mapping (read-only or read-write).
    fn read(self, i: usize) -> u64 {
        assert!(i < 512);
        // SAFETY: `va` maps the page for the whole run (read-only at least); the
        // hypervisor may change table entries behind our back, hence volatile.
        unsafe { (self.va as *const u64).add(i).read_volatile() }
    }

    /// Writes word `i`; the page must be mapped read-write (not yet a page table).
    fn write(self, i: usize, value: u64) {
        assert!(i < 512);
        // SAFETY: a padding page nothing else uses, mapped read-write (module doc).
        unsafe { (self.va as *mut u64).add(i).write_volatile(value) }
    }

    /// Zeroes the page (mapped read-write).
    fn zero(self) {
        for i in 0..512 {
            self.write(i, 0);
        }
    }

    /// Replaces its bootstrap mapping by one with `flags` (`update_va_mapping`, INVLPG).
    fn remap(self, flags: PteFlags) -> Result<u64, XenError> {
        // SAFETY: a padding page nothing else uses (module doc); the frame stays the same.
        unsafe { hypercall::update_va_mapping(VirtAddr(self.va), self.entry(flags), UVMF_INVLPG) }
    }
}

/// The padding at the end of the bootstrap region: from the end of the boot stack to the
/// region's end, which Xen's dom0 builder rounds up to 4 MiB with at least 512 KiB of
/// padding. Our hypervisor lays dom0 out the same way (xen-tests.sh checks it).
struct Padding<'a> {
    si: &'a StartInfo,
    next: u64,
    end: u64,
}

impl<'a> Padding<'a> {
    fn new(si: &'a StartInfo) -> Self {
        const ALIGN: u64 = 4 << 20;
        let stack_end = si.pt_base + (si.nr_pt_frames + 1) * PAGE_SIZE;
        let mut end = (stack_end + ALIGN - 1) & !(ALIGN - 1);
        if end - stack_end < 512 << 10 {
            end += ALIGN;
        }
        Self {
            si,
            next: stack_end,
            end,
        }
    }

    /// The next free page, zeroed.
    fn take(&mut self) -> Frame {
        assert!(self.next < self.end, "bootstrap padding exhausted");
        let va = self.next;
        self.next += PAGE_SIZE;
        let frame = Frame {
            va,
            mfn: domain::mfn_of(self.si, va),
        };
        frame.zero();
        frame
    }
}

/// `mmu_update` of `reqs` for ourselves: the result and the done count.
fn update(reqs: &[MmuUpdate]) -> (Result<u64, XenError>, u32) {
    let mut done = u32::MAX;
    // SAFETY: every request names one of this module's padding frames (or is one the
    // hypervisor must refuse); none changes a mapping Rust relies on (module doc).
    let res = unsafe { hypercall::mmu_update(reqs, &mut done, DomId::SELF) };
    (res, done)
}

/// A normal update of entry `i` of `table`.
fn set(table: Frame, i: usize, val: u64) -> Result<u64, XenError> {
    update(&[normal(table, i, val)]).0
}

fn normal(table: Frame, i: usize, val: u64) -> MmuUpdate {
    MmuUpdate {
        ptr: table.slot(i) | MmuUpdateCmd::NormalPtUpdate as u64,
        val,
    }
}

/// One `mmuext_op` for ourselves.
fn ext(cmd: MmuextCmd, arg1: u64) -> Result<u64, XenError> {
    let op = MmuextOp {
        cmd: cmd as u32,
        _hole: 0,
        arg1,
        arg2: 0,
    };
    let mut done = 0;
    // SAFETY: pins, unpins and base pointers of this module's tables, which map the
    // kernel as the bootstrap tables do (module doc), or of the bootstrap L4 itself.
    unsafe { hypercall::mmuext_op(&[op], &mut done, DomId::SELF) }
}

/// `update_va_mapping(TEST_VA, pte, flags)`.
fn map_test_va(pte: u64, flags: u64) -> Result<u64, XenError> {
    // SAFETY: TEST_VA is this module's test address; nothing in Rust refers to it.
    unsafe { hypercall::update_va_mapping(VirtAddr(TEST_VA), pte, flags) }
}

/// The first word at `TEST_VA` (mapped).
fn read_test_va() -> u64 {
    // SAFETY: only called while TEST_VA maps one of the data pages.
    unsafe { (TEST_VA as *const u64).read_volatile() }
}

/// M2P entry of `mfn`, read through the read-only table at `MACH2PHYS_VIRT_START`.
fn m2p(mfn: u64) -> u64 {
    // SAFETY: the hypervisor maps the M2P read-only there for every guest (guest-abi's
    // runtime assumptions); `mfn` is one of ours, below the machine's frame count.
    unsafe { ((MACH2PHYS_VIRT_START + 8 * mfn) as *const u64).read_volatile() }
}

/// Whether `mfn` is in our P2M list.
fn ours(si: &StartInfo, mfn: u64) -> bool {
    let list = si.mfn_list as *const u64;
    // SAFETY: the builder maps the P2M list (nr_pages entries) in the bootstrap region.
    (0..si.nr_pages as usize).any(|pfn| unsafe { list.add(pfn).read_volatile() } == mfn)
}

/// A RAM frame that is not ours: the first one at or above the middle of RAM that is not
/// in our P2M list (another domain's, the hypervisor's or free).
fn foreign_frame(si: &StartInfo) -> u64 {
    // SAFETY: XENMEM_maximum_ram_page takes no argument.
    let max = unsafe {
        call(
            Hypercall::MemoryOp,
            [MemoryOp::MaximumRamPage as u64, 0, 0, 0, 0],
        )
    }
    .unwrap_or(si.nr_pages * 2);
    let mut mfn = max / 2;
    while ours(si, mfn) {
        mfn += 1;
    }
    mfn
}

/// The address space under test.
struct Space {
    l4: Frame,
    l3: Frame,
    l2: Frame,
    l1: Frame,
    a: Frame,
    b: Frame,
    /// The bootstrap L4's frame.
    boot_l4: u64,
}

pub fn run(r: &mut Report, si: &StartInfo, on_ours: bool) {
    let mut pad = Padding::new(si);
    let s = Space {
        l4: pad.take(),
        l3: pad.take(),
        l2: pad.take(),
        l1: pad.take(),
        a: pad.take(),
        b: pad.take(),
        boot_l4: domain::l4_mfn(si),
    };
    let foreign = foreign_frame(si);
    println!(
        "selftest: mmu padding {:#x}..{:#x}, foreign frame {foreign:#x}",
        pad.next, pad.end
    );
    s.a.write(0, PATTERN_A);
    s.b.write(0, PATTERN_B);

    // The new tables: the bootstrap L4's guest slots (so the kernel stays mapped) and a
    // chain L4[32] -> L3[0] -> L2[0] -> L1[0] -> page A.
    let boot = Frame {
        va: si.pt_base,
        mfn: s.boot_l4,
    };
    for i in (0..512).filter(|i| !XEN_SLOTS.contains(i)) {
        s.l4.write(i, boot.read(i));
    }
    s.l4.write(TEST_SLOT, s.l3.entry(TABLE));
    s.l3.write(0, s.l2.entry(TABLE));
    s.l2.write(0, s.l1.entry(TABLE));
    s.l1.write(0, s.a.entry(RW));

    pin_refused(r, &mut pad, foreign);
    let tables = [s.l4, s.l3, s.l2, s.l1];
    r.check_eq(
        "mmu.update_va_mapping drops RW of the new tables",
        tables.iter().try_for_each(|t| t.remap(RO).map(drop)),
        Ok(()),
    );
    let pinned = ext(MmuextCmd::PinL4Table, s.l4.mfn);
    r.check_eq("mmu.pin L4 of a new address space", pinned, Ok(0));
    if pinned.is_err() {
        r.fail(
            "mmu.new address space",
            format_args!("not run: the pin failed"),
        );
        return;
    }
    r.check_eq(
        "mmu.pin an L4 already pinned",
        ext(MmuextCmd::PinL4Table, s.l4.mfn),
        Err(XenError::Inval),
    );
    mapping_refused(r, &s, si, foreign);
    batch(r, &s, foreign);
    l4_slots(r, &s, on_ours);
    machphys(r, &s, foreign);
    base_ptr_refused(r, &mut pad, &s);
    switch(r, &s);
    ptwr(r, &s);
    ldt(r, &mut pad);
    r.check_eq(
        "mmu.domain still running after the refusals",
        hypercall::xen_version(),
        Ok((4, 17)),
    );
}

/// An L1 entry without the bits the hypervisor adds to a 64-bit PV guest's entries: `USER`
/// (its kernel runs in ring 3) and Xen's software bit 52 for guest-kernel mappings.
fn as_written(entry: u64) -> u64 {
    entry & !((1 << 52) | PteFlags::USER.bits())
}

/// Writes `value` to `va` with a plain `mov`; whether it trapped, and the trap's vector.
fn mov_to(va: u64, value: u64) -> Option<u64> {
    let o = emulate!("mov qword ptr [{p}], {v}"; p = in(reg) va, v = in(reg) value);
    (o.traps != 0).then_some(o.frame.vector)
}

/// Writable page tables: with `VMASST_TYPE_writable_pagetables`, plain writes through the
/// read-only mapping of one of our L1 tables (pinned on its own) are done for us, as
/// `mmu_update` would do them, and refused ones raise a page fault.
fn ptwr(r: &mut Report, s: &Space) {
    use guest_abi::xen::{VmAssistCmd, VmAssistType};
    const SLOT: usize = 3;
    let at = s.l1.va + 8 * SLOT as u64;
    let assist = |cmd| hypercall::vm_assist(cmd, VmAssistType::WritablePagetables);
    let pinned =
        s.l1.remap(RO)
            .and_then(|_| ext(MmuextCmd::PinL1Table, s.l1.mfn));
    r.check_eq("mmu.ptwr L1 read-only and pinned", pinned, Ok(0));
    if pinned.is_err() {
        return;
    }
    r.check_eq(
        "mmu.ptwr enable writable_pagetables",
        assist(VmAssistCmd::Enable),
        Ok(0),
    );
    let b = s.b.entry(RO);
    r.check(
        "mmu.ptwr mov into a read-only L1",
        ensure(mov_to(at, b).is_none(), "the write faulted")
            .and_then(|_| eq("entry", as_written(s.l1.read(SLOT)), b)),
    );
    let old: u64;
    let o = emulate!("xchg qword ptr [{p}], {v}"; p = in(reg) at, v = inout(reg) 0u64 => old);
    r.check(
        "mmu.ptwr xchg returns the old entry",
        ensure(o.traps == 0, "the write faulted")
            .and_then(|_| eq("returned", as_written(old), b))
            .and_then(|_| eq("entry", s.l1.read(SLOT), 0)),
    );
    let a = s.a.entry(RO);
    let seen: u64;
    let o = emulate!("lock cmpxchg qword ptr [{p}], {v}"; p = in(reg) at, v = in(reg) a,
        inout("rax") 0u64 => seen);
    r.check(
        "mmu.ptwr lock cmpxchg",
        ensure(o.traps == 0, "the write faulted")
            .and_then(|_| eq("rax", seen, 0))
            .and_then(|_| eq("entry", as_written(s.l1.read(SLOT)), a)),
    );
    r.check(
        "mmu.ptwr writable mapping of a page table: #PF",
        eq("vector", mov_to(at, s.l1.entry(RW)).unwrap_or(0), 14)
            .and_then(|_| eq("entry", as_written(s.l1.read(SLOT)), a)),
    );
    r.check_eq("mmu.ptwr clear the entry", mov_to(at, 0), None);
    r.check_eq(
        "mmu.ptwr disable writable_pagetables",
        assist(VmAssistCmd::Disable),
        Ok(0),
    );
    // Xen emulates these writes for 64-bit PV guests whether or not the assist is on.
    r.check(
        "mmu.ptwr with the assist off: still done",
        ensure(mov_to(at, b).is_none(), "the write faulted")
            .and_then(|_| eq("entry", as_written(s.l1.read(SLOT)), b))
            .and_then(|_| ensure(mov_to(at, 0).is_none(), "clearing it faulted")),
    );
    r.check_eq(
        "mmu.ptwr L1 unpinned and read-write again",
        ext(MmuextCmd::UnpinTable, s.l1.mfn).and_then(|_| s.l1.remap(RW)),
        Ok(0),
    );
}

/// A data descriptor (DPL 3, byte granular) with `limit`.
const fn ldt_data(limit: u64) -> u64 {
    (limit & 0xffff)
        | (((limit >> 16) & 0xf) << 48)
        | (0x3 << 40)
        | (1 << 44)
        | (3 << 45)
        | (1 << 47)
}

/// `lsl` of `selector`: its limit, if the descriptor is usable from here.
fn segment_limit(selector: u64) -> Option<u64> {
    let limit: u64;
    let ok: u8;
    // SAFETY: `lsl` reads the descriptor tables and sets ZF; it never faults on a bad
    // selector and changes no memory.
    unsafe {
        core::arch::asm!(
            "lsl {l}, {s}",
            "setz {ok}",
            s = in(reg) selector,
            l = out(reg) limit,
            ok = out(reg_byte) ok,
            options(nostack),
        );
    }
    (ok != 0).then_some(limit)
}

/// `MMUEXT_SET_LDT`: a read-only page of descriptors becomes the LDT (its entries are seen
/// through LDT selectors), `update_descriptor` changes one, and an empty LDT drops them.
fn ldt(r: &mut Report, pad: &mut Padding<'_>) {
    /// LDT entry 1, RPL 3.
    const SEL: u64 = (1 << 3) | 4 | 3;
    /// LDT entry 0, RPL 3.
    const SEL0: u64 = 4 | 3;
    let page = pad.take();
    page.write(1, ldt_data(0x1234));
    let set = |base: u64, entries: u64| {
        let op = MmuextOp {
            cmd: MmuextCmd::SetLdt as u32,
            _hole: 0,
            arg1: base,
            arg2: entries,
        };
        let mut done = 0;
        // SAFETY: the LDT is a padding page of this module's, mapped read-only, or none.
        unsafe { hypercall::mmuext_op(&[op], &mut done, DomId::SELF) }
    };
    r.check_eq("mmu.LDT page mapped read-only", page.remap(RO), Ok(0));
    r.check(
        "mmu.SET_LDT: its entries through LDT selectors",
        ok("MMUEXT_SET_LDT", set(page.va, 2))
            .and_then(|_| eq("limit of entry 1", segment_limit(SEL).unwrap_or(0), 0x1234))
            .and_then(|_| ensure(segment_limit(SEL0).is_none(), "empty entry 0 usable")),
    );
    // SAFETY: one descriptor of this module's LDT page, checked by the hypervisor.
    let updated = unsafe {
        call(
            Hypercall::UpdateDescriptor,
            [page.slot(1), ldt_data(0x5678), 0, 0, 0],
        )
    };
    r.check(
        "mmu.update_descriptor in the LDT",
        ok("update_descriptor", updated)
            .and_then(|_| eq("new limit", segment_limit(SEL).unwrap_or(0), 0x5678)),
    );
    r.check(
        "mmu.SET_LDT to none",
        ok("MMUEXT_SET_LDT", set(0, 0))
            .and_then(|_| ensure(segment_limit(SEL).is_none(), "entry still usable")),
    );
    r.check_eq(
        "mmu.former LDT page maps read-write again",
        page.remap(RW),
        Ok(0),
    );
}

/// Pinning tables with a bad entry, a page still mapped read-write, and a plain pin and
/// unpin.
fn pin_refused(r: &mut Report, pad: &mut Padding<'_>, foreign: u64) {
    let bad_l1 = pad.take();
    bad_l1.write(5, (foreign << PAGE_SHIFT) | RO.bits());
    let bad_l2 = pad.take();
    let target = pad.take();
    bad_l2.write(
        7,
        ((target.mfn & !0x1ff) << PAGE_SHIFT) | (RW | PteFlags::PSE).bits(),
    );
    let plain = pad.take();
    let still_rw = pad.take();
    let setup = [bad_l1, bad_l2, plain]
        .iter()
        .try_for_each(|t| t.remap(RO).map(drop));
    r.check_eq("mmu.update_va_mapping read-only remaps", setup, Ok(()));

    for (name, cmd, table, want) in [
        (
            "mmu.pin L1 mapping a frame it does not own",
            MmuextCmd::PinL1Table,
            bad_l1,
            XenError::Busy,
        ),
        (
            "mmu.pin L2 with a superpage (PSE) entry",
            MmuextCmd::PinL2Table,
            bad_l2,
            XenError::Inval,
        ),
        (
            "mmu.pin L1 of a page still mapped read-write",
            MmuextCmd::PinL1Table,
            still_rw,
            XenError::Inval,
        ),
    ] {
        r.check_eq(name, ext(cmd, table.mfn), Err(want));
    }
    r.check_eq(
        "mmu.refused pins leave plain pages (remap read-write)",
        [bad_l1, bad_l2]
            .iter()
            .try_for_each(|t| t.remap(RW).map(drop)),
        Ok(()),
    );

    r.check_eq(
        "mmu.pin L1 (empty table)",
        ext(MmuextCmd::PinL1Table, plain.mfn),
        Ok(0),
    );
    r.check_eq(
        "mmu.writable mapping of a pinned L1",
        plain.remap(RW),
        Err(XenError::Busy),
    );
    r.check_eq("mmu.unpin L1", ext(MmuextCmd::UnpinTable, plain.mfn), Ok(0));
    r.check_eq(
        "mmu.unpin a table not pinned",
        ext(MmuextCmd::UnpinTable, plain.mfn),
        Err(XenError::Inval),
    );
    r.check_eq(
        "mmu.unpinned L1 is a plain page (remap read-write)",
        plain.remap(RW),
        Ok(0),
    );
}

/// Writable mappings of page tables, and mappings of frames that are not ours.
fn mapping_refused(r: &mut Report, s: &Space, si: &StartInfo, foreign: u64) {
    r.check_eq(
        "mmu.writable mapping of its own L1 (update_va_mapping)",
        s.l1.remap(RW),
        Err(XenError::Busy),
    );
    let boot = Frame {
        va: si.pt_base,
        mfn: s.boot_l4,
    };
    r.check_eq(
        "mmu.writable mapping of the L4 in use (update_va_mapping)",
        boot.remap(RW),
        Err(XenError::Busy),
    );
    r.check_eq(
        "mmu.writable mapping of its own L2 (mmu_update)",
        set(s.l1, 9, s.l2.entry(RW)),
        Err(XenError::Busy),
    );
    r.check_eq(
        "mmu.read-only mapping of its own L2 (mmu_update)",
        set(s.l1, 9, s.l2.entry(RO)).and_then(|_| set(s.l1, 9, 0)),
        Ok(0),
    );
    r.check_eq(
        "mmu.mapping a RAM frame it does not own",
        set(s.l1, 10, (foreign << PAGE_SHIFT) | RO.bits()),
        Err(XenError::Busy),
    );
    // Dom0 may map I/O memory (Xen grants it the whole physical address width) but not
    // beyond that width, nor the hypervisor's local APIC; the all-ones frame number is
    // refused with -EINVAL rather than -EPERM.
    for (name, mfn, want) in [
        (
            "mmu.mapping frame 2^40-2 (beyond the physical address width)",
            (1 << 40) - 2,
            XenError::Perm,
        ),
        (
            "mmu.mapping frame 2^40-1 (all ones)",
            (1 << 40) - 1,
            XenError::Inval,
        ),
        (
            "mmu.mapping the local APIC (frame 0xfee00)",
            LAPIC_MFN,
            XenError::Perm,
        ),
    ] {
        let res = set(s.l1, 11, (mfn << PAGE_SHIFT) | RO.bits());
        if res.is_ok() {
            let _ = set(s.l1, 11, 0);
        }
        r.check_eq(name, res, Err(want));
    }
    let zero = set(s.l1, 12, RO.bits());
    r.check_eq(
        "mmu.mapping machine frame 0 (dom0: the low 1 MiB is I/O memory)",
        zero.and_then(|_| set(s.l1, 12, 0)),
        Ok(0),
    );
}

/// A batch of five L1 updates whose third fails.
fn batch(r: &mut Report, s: &Space, foreign: u64) {
    let reqs = [
        normal(s.l1, 1, s.a.entry(RO)),
        normal(s.l1, 2, s.b.entry(RO)),
        normal(s.l1, 3, (foreign << PAGE_SHIFT) | RO.bits()),
        normal(s.l1, 4, s.a.entry(RO)),
        normal(s.l1, 5, s.b.entry(RO)),
    ];
    let (res, done) = update(&reqs);
    let frames = [1, 2, 3, 4, 5].map(|i| s.l1.read(i) & PteFlags::ADDR_MASK);
    println!("selftest: mmu batch {res:?} done {done} entries {frames:#x?}");
    r.check_eq(
        "mmu.mmu_update batch failing at request 2: error and done count",
        (res, done),
        (Err(XenError::Busy), 2),
    );
    r.check(
        "mmu.mmu_update batch failing at request 2: entries 0-1 written, 2-4 not",
        eq("entry 1", frames[0], s.a.mfn << PAGE_SHIFT)
            .and_then(|_| eq("entry 2", frames[1], s.b.mfn << PAGE_SHIFT))
            .and_then(|_| eq("entry 3", frames[2], 0))
            .and_then(|_| eq("entry 4", frames[3], 0))
            .and_then(|_| eq("entry 5", frames[4], 0)),
    );
    let (res, done) = update(&[normal(s.l1, 1, 0), normal(s.l1, 2, 0)]);
    r.check_eq(
        "mmu.mmu_update batch of 2 clears: done count",
        (res, done),
        (Ok(0), 2),
    );
}

/// Hypervisor slots and the linear (self-map) entry of an L4.
fn l4_slots(r: &mut Report, s: &Space, on_ours: bool) {
    let l3 = s.l4.read(TEST_SLOT);
    for (name, slot) in [
        ("mmu.L4 slot 256 (hypervisor range) refused", 256),
        ("mmu.L4 slot 271 (hypervisor range) refused", 271),
    ] {
        r.check_eq(name, set(s.l4, slot, l3), Err(XenError::Inval));
    }
    r.check_eq(
        "mmu.L4 slot 272 (guest range) takes an L3",
        set(s.l4, 272, l3).and_then(|_| set(s.l4, 272, 0)),
        Ok(0),
    );
    r.check_eq(
        "mmu.L4 writable self-map refused",
        set(s.l4, LINEAR_SLOT, s.l4.entry(TABLE)),
        Err(XenError::Inval),
    );
    let res = set(s.l4, LINEAR_SLOT, s.l4.entry(RO));
    if on_ours {
        r.check_eq(
            "mmu.L4 read-only self-map: refused on ours (EINVAL), Xen accepts",
            res,
            Err(XenError::Inval),
        );
    } else {
        r.check_eq(
            "mmu.L4 read-only self-map: accepted on Xen (ours refuses, EINVAL)",
            res,
            Ok(0),
        );
    }
    r.check_eq(
        "mmu.L4 self-map slot cleared",
        set(s.l4, LINEAR_SLOT, 0),
        Ok(0),
    );
}

/// `MMU_MACHPHYS_UPDATE` of one of our frames, read back through the M2P, and of a frame
/// that is not ours.
fn machphys(r: &mut Report, s: &Space, foreign: u64) {
    let machphys = |mfn: u64, pfn: u64| {
        let req = MmuUpdate {
            ptr: (mfn << PAGE_SHIFT) | MmuUpdateCmd::MachphysUpdate as u64,
            val: pfn,
        };
        update(&[req]).0
    };
    let pfn = (s.a.va - guest_abi::runtime::VIRT_BASE) >> PAGE_SHIFT;
    r.check_eq("mmu.M2P of one of its frames", m2p(s.a.mfn), pfn);
    let set = machphys(s.a.mfn, M2P_TEST_PFN);
    let seen = m2p(s.a.mfn);
    let back = machphys(s.a.mfn, pfn);
    r.check(
        "mmu.MMU_MACHPHYS_UPDATE, read back in the M2P",
        ok("MMU_MACHPHYS_UPDATE", set)
            .and_then(|_| eq("M2P after the update", seen, M2P_TEST_PFN))
            .and_then(|_| ok("MMU_MACHPHYS_UPDATE back", back))
            .and_then(|_| eq("M2P restored", m2p(s.a.mfn), pfn)),
    );
    r.check_eq(
        "mmu.MMU_MACHPHYS_UPDATE of a frame it does not own",
        machphys(foreign, 1),
        Err(XenError::Inval),
    );
}

/// `NEW_BASEPTR` with frames that are not valid L4s; the vCPU keeps its table.
fn base_ptr_refused(r: &mut Report, pad: &mut Padding<'_>, s: &Space) {
    let still_rw = pad.take();
    let bad_l4 = pad.take();
    // Slot 32 names a page still mapped read-write: it cannot become an L3.
    for i in (0..512).filter(|i| !XEN_SLOTS.contains(i)) {
        bad_l4.write(i, s.l4.read(i));
    }
    bad_l4.write(TEST_SLOT, still_rw.entry(TABLE));
    r.check_eq(
        "mmu.NEW_BASEPTR to a page still mapped read-write",
        ext(MmuextCmd::NewBaseptr, still_rw.mfn),
        Err(XenError::Inval),
    );
    let res = bad_l4
        .remap(RO)
        .and_then(|_| ext(MmuextCmd::NewBaseptr, bad_l4.mfn));
    r.check_eq(
        "mmu.NEW_BASEPTR to an L4 that fails validation",
        res,
        Err(XenError::Inval),
    );
    r.check_eq(
        "mmu.failed NEW_BASEPTR leaves a plain page (remap read-write)",
        bad_l4.remap(RW),
        Ok(0),
    );
}

/// Runs on the new address space: reads through it, maps and unmaps with each flush kind,
/// unpins it while it is CR3 and switches back.
fn switch(r: &mut Report, s: &Space) {
    let res = ext(MmuextCmd::NewBaseptr, s.l4.mfn);
    r.check(
        "mmu.NEW_BASEPTR to the new L4, read through it",
        ok("NEW_BASEPTR", res).and_then(|_| eq("TEST_VA", read_test_va(), PATTERN_A)),
    );
    if res.is_err() {
        return;
    }
    for (name, page, pattern, flags) in [
        (
            "mmu.update_va_mapping UVMF_INVLPG: new page visible",
            s.b,
            PATTERN_B,
            UVMF_INVLPG,
        ),
        (
            "mmu.update_va_mapping UVMF_TLB_FLUSH|UVMF_LOCAL: new page visible",
            s.a,
            PATTERN_A,
            UVMF_TLB_FLUSH | UVMF_LOCAL,
        ),
        (
            "mmu.update_va_mapping UVMF_TLB_FLUSH|UVMF_ALL: new page visible",
            s.b,
            PATTERN_B,
            UVMF_TLB_FLUSH | UVMF_ALL,
        ),
        (
            "mmu.update_va_mapping UVMF_INVLPG|UVMF_ALL: new page visible",
            s.a,
            PATTERN_A,
            UVMF_INVLPG | UVMF_ALL,
        ),
    ] {
        let res = map_test_va(page.entry(RW), flags);
        r.check(
            name,
            ok("update_va_mapping", res).and_then(|_| eq("TEST_VA", read_test_va(), pattern)),
        );
    }
    let res = map_test_va(0, UVMF_INVLPG);
    let o = provoke!(next; "mov {t}, qword ptr [{a}]"; a = in(reg) TEST_VA, t = out(reg) _);
    r.check(
        "mmu.update_va_mapping unmap: a read faults",
        ok("update_va_mapping", res)
            .and_then(|_| eq("traps", o.traps, 1))
            .and_then(|_| eq("vector", o.frame.vector, 14))
            .and_then(|_| eq("error code", o.frame.err, 0)),
    );
    r.check_eq(
        "mmu.update_va_mapping of a VA without L1 table",
        // SAFETY: refused (no L1 maps that address); nothing changes.
        unsafe { hypercall::update_va_mapping(VirtAddr(TEST_VA + (1 << 30)), s.a.entry(RO), 0) },
        Err(XenError::Inval),
    );
    r.check_eq(
        "mmu.unpin the L4 in use as CR3",
        ext(MmuextCmd::UnpinTable, s.l4.mfn),
        Ok(0),
    );
    let back = ext(MmuextCmd::NewBaseptr, s.boot_l4);
    let o = provoke!(next; "mov {t}, qword ptr [{a}]"; a = in(reg) TEST_VA, t = out(reg) _);
    r.check(
        "mmu.NEW_BASEPTR back to the bootstrap L4",
        ok("NEW_BASEPTR", back)
            .and_then(|_| eq("traps reading TEST_VA", o.traps, 1))
            .and_then(|_| ensure(o.frame.vector == 14, "not a #PF")),
    );
    let plain = [s.l4, s.l3, s.l2, s.l1]
        .iter()
        .try_for_each(|t| t.remap(RW).map(drop));
    r.check(
        "mmu.unpinned L4 devalidated when CR3 moved away (tables remap read-write)",
        plain.map_err(|err| Why::Xen {
            what: "update_va_mapping RW",
            err,
        }),
    );
}
