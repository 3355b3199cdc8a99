//! The PV MMU over real memory: the frame table (one record per machine frame), the M2P table
//! guests read at `MACH2PHYS_VIRT_START`, and the memory-management hypercalls, whose checks
//! are all in `mm::pv`; this file moves bytes and carries out the hardware effects.
//!
//! Lock order: `MACHINE` → `MMU` → `FRAMES`.

use super::FRAMES;
use crate::arch::x86_64::direct_map;
use crate::arch::x86_64::paging;
use crate::arch::x86_64::uaccess::CurrentGuest;
use crate::hypercall::memory_exchange::memory_exchange;
use crate::hypercall::{DomainInfo, HcResult, batch};
use crate::mm::frames::FrameAllocator;
use crate::mm::pv::{self as mmpv, PageType, TlbScope};
use crate::mm::pv::{
    DomId, Effect, ExtentList, FrameInfo, FramePool, FrameStore, FrameTable, M2pTable, MmuUpdate,
    MmuextOp, Outcome, Pfn, PvMmError,
};
use crate::mm::{Mfn, PAGE_SIZE};
use crate::pv::guest_mem::GuestMemory;
use crate::pv::vcpu::PvVcpu;
use core::sync::atomic::{AtomicU64, Ordering};
use guest_abi::memory::{MEMOP_CMD_MASK, MemoryOp, XenMemoryReservation};
use guest_abi::{Hypercall, XenError};

/// Frame records and contents, through the direct map.
pub struct KernelStore {
    records: &'static mut [FrameInfo],
    hypervisor_slots: [u64; 16],
    /// Frames from here on are beyond the CPU's physical address width.
    io_frame_limit: u64,
}

impl FrameStore for KernelStore {
    fn frame_limit(&self) -> u64 {
        self.records.len() as u64
    }

    fn info(&self, mfn: Mfn) -> &FrameInfo {
        &self.records[mfn.0 as usize]
    }

    fn info_mut(&mut self, mfn: Mfn) -> &mut FrameInfo {
        &mut self.records[mfn.0 as usize]
    }

    fn read_entry(&self, mfn: Mfn, slot: usize) -> u64 {
        direct_map::read_word(mfn, slot)
    }

    fn write_entry(&mut self, mfn: Mfn, slot: usize, value: u64) {
        // The PV MMU writes only frames it has checked.
        direct_map::write_word(mfn, slot, value);
    }

    fn fill_hypervisor_slots(&mut self, l4: Mfn) {
        let slots = self.hypervisor_slots;
        for (i, e) in slots.into_iter().enumerate() {
            self.write_entry(l4, 256 + i, e);
        }
    }

    fn io_permitted(&self, mfn: Mfn) -> bool {
        let madt = crate::boot::madt::MACHINE_MADT.get();
        crate::mm::device_frames::mappable(mfn, self.io_frame_limit, madt)
    }

    fn zero_frame(&mut self, mfn: Mfn) {
        direct_map::zero(mfn);
    }

    fn copy_frame(&mut self, dst: Mfn, src: Mfn) {
        direct_map::copy(dst, src);
    }
}

/// The first frame beyond the CPU's physical address width (36 to 52 bits).
pub fn io_frame_limit() -> u64 {
    let [phys_bits, ..] = crate::arch::x86_64::cpu::cpuid(0x8000_0008, 0);
    1u64 << ((phys_bits & 0xff).clamp(36, 52) - 12)
}

/// Frames for domains come from (and go back to) the machine's allocator.
pub struct KernelPool;

impl FramePool for KernelPool {
    fn alloc(&mut self, order: u32) -> Option<Mfn> {
        let mut frames = FRAMES.lock();
        let frames = frames.as_mut()?;
        if order == 0 {
            return frames.alloc().ok();
        }
        let n = 1u64 << order;
        frames.alloc_contiguous(n, n).ok()
    }

    fn alloc_below(&mut self, order: u32, end: u64) -> Option<Mfn> {
        let mut frames = FRAMES.lock();
        let n = 1u64 << order;
        frames.as_mut()?.alloc_contiguous_below(n, n, end).ok()
    }

    fn free(&mut self, mfn: Mfn) {
        if let Some(frames) = FRAMES.lock().as_mut()
            && let Err(e) = frames.free(mfn)
        {
            crate::error!("PV MMU returned {mfn} to the pool: {e}");
        }
    }
}

/// The M2P array, written through the direct map and mapped read-only for guests.
pub struct KernelM2p {
    table: &'static mut [u64],
}

impl M2pTable for KernelM2p {
    fn set(&mut self, mfn: Mfn, pfn: Pfn) {
        if let Some(e) = self.table.get_mut(mfn.0 as usize) {
            *e = pfn.0;
        }
    }

    fn get(&self, mfn: Mfn) -> Pfn {
        Pfn(self
            .table
            .get(mfn.0 as usize)
            .copied()
            .unwrap_or(Pfn::INVALID.0))
    }
}

/// The machine's PV MMU.
pub type Mmu = FrameTable<KernelStore, KernelPool, KernelM2p>;

/// The PV MMU, once memory is set up.
pub static MMU: spin::Mutex<Option<Mmu>> = spin::Mutex::new(None);

/// The frames a domain owns now (Xen's `tot_pages`), 0 for a domain the PV MMU no longer knows.
pub fn tot_pages(dom: mmpv::DomainRef) -> u64 {
    MMU.lock()
        .as_ref()
        .and_then(|mmu| mmu.domain(dom).ok().map(|d| d.tot_pages()))
        .unwrap_or(0)
}

/// The first machine frame of the M2P table and its length in frames, set once at boot.
static M2P_FRAMES: (AtomicU64, AtomicU64) = (AtomicU64::new(0), AtomicU64::new(0));

/// The M2P table's machine frames: the first and how many (the run is contiguous).
pub fn m2p_frames() -> (u64, u64) {
    (
        M2P_FRAMES.0.load(Ordering::Relaxed),
        M2P_FRAMES.1.load(Ordering::Relaxed),
    )
}

/// Why the PV MMU could not be set up.
#[derive(Debug)]
pub struct MmuInitError(&'static str);

impl core::fmt::Display for MmuInitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.0)
    }
}

/// Allocates the frame table and the M2P for frames `0..=max_frame`, maps the M2P for guests
/// (read-only, in L4 slot 256), records the hypervisor's L4 slots for guest tables, and marks
/// the frames of `io_ranges` (firmware areas and holes below `max_frame`) as I/O memory, which
/// dom0 may map as Xen lets it.
pub fn init(
    frames: &mut FrameAllocator<'_>,
    max_frame: u64,
    io_ranges: &[crate::mm::PhysRange],
) -> Result<(), MmuInitError> {
    let n = max_frame + 1;
    let m2p_bytes = n * 8;
    let pages = |bytes: u64| bytes.div_ceil(PAGE_SIZE);
    let (_, records) = direct_map::alloc_table(frames, n as usize, FrameInfo::FREE)
        .map_err(|_| MmuInitError("no memory for the frame table"))?;
    let (m2p_at, table) = direct_map::alloc_table(frames, n as usize, Pfn::INVALID.0)
        .map_err(|_| MmuInitError("no memory for the M2P table"))?;
    paging::map_m2p(frames, m2p_at.addr(), pages(m2p_bytes) * PAGE_SIZE)
        .map_err(|_| MmuInitError("cannot map the M2P table"))?;
    M2P_FRAMES.0.store(m2p_at.0, Ordering::Relaxed);
    M2P_FRAMES.1.store(pages(m2p_bytes), Ordering::Relaxed);
    let io_frame_limit = io_frame_limit();
    let store = KernelStore {
        records,
        hypervisor_slots: paging::hypervisor_l4_entries(),
        io_frame_limit,
    };
    let mut table = FrameTable::new(store, KernelPool, KernelM2p { table });
    for r in io_ranges {
        let (first, end) = r.touched_frames();
        for mfn in first..end.min(n) {
            let _ = table.mark_io_frame(Mfn(mfn));
        }
    }
    *MMU.lock() = Some(table);
    Ok(())
}

/// Flushes this CPU's TLB, global entries included.
pub fn flush_tlb_all() {
    crate::arch::x86_64::cpu::flush_tlb_global();
}

/// The result of a PV MMU operation, after the TLB flush it asked for.
pub fn honour<T>(outcome: Outcome<T>) -> T {
    if outcome.flush_all_cpus {
        flush_tlb_all();
    }
    outcome.result
}

/// Carries out an effect of an MMU operation for the running vCPU.
/// Reads the vCPU bitmap of a flush to several vCPUs; with one vCPU per CPU every flush is
/// local, but the bitmap must still be readable, as Xen requires.
fn check_scope(scope: TlbScope) -> Result<(), PvMmError> {
    match scope {
        TlbScope::VcpuMask(at) => CurrentGuest
            .read_obj::<u64>(at)
            .map(drop)
            .map_err(|_| PvMmError::Fault),
        TlbScope::Local | TlbScope::AllVcpus => Ok(()),
    }
}

/// Carries out an effect of an MMU operation for the running vCPU; a vCPU bitmap that cannot
/// be read is a fault.
fn apply(effect: Effect, vcpu: &mut PvVcpu) -> Result<(), PvMmError> {
    match effect {
        Effect::FlushTlb(scope) => {
            check_scope(scope)?;
            flush_tlb_all();
        }
        Effect::InvalidatePage { va, scope } => {
            check_scope(scope)?;
            x86_64::instructions::tlb::flush(x86_64::VirtAddr::new_truncate(va));
        }
        Effect::LoadKernelTable(mfn) => {
            vcpu.kernel_table = Some(mfn);
            if vcpu.kernel_mode {
                crate::arch::x86_64::guest::load_mode(vcpu);
            }
        }
        // Carried out after the batch, which holds the MMU (`set_ldt`).
        Effect::LoadLdt { .. } => {}
        Effect::FlushCache { .. } => {
            crate::arch::x86_64::cpu::wbinvd();
        }
    }
    Ok(())
}

/// Reads the guest's array of `T` at `base` as an iterator of requests.
fn requests<'a, T: zerocopy::FromBytes + zerocopy::IntoBytes + 'a>(
    mem: &'a mut CurrentGuest,
    base: u64,
    count: u64,
) -> impl Iterator<Item = Result<T, PvMmError>> + 'a {
    (0..count).map(move |i| {
        let at = base
            .checked_add(i * size_of::<T>() as u64)
            .ok_or(PvMmError::Fault)?;
        mem.read_obj::<T>(at).map_err(|_| PvMmError::Fault)
    })
}

/// A guest's `extent_start` array.
struct GuestExtents<'a> {
    mem: &'a mut CurrentGuest,
    base: u64,
}

impl ExtentList for GuestExtents<'_> {
    fn read(&mut self, index: u32) -> Result<u64, PvMmError> {
        let at = self.base.wrapping_add(8 * u64::from(index));
        self.mem.read_obj(at).map_err(|_| PvMmError::Fault)
    }

    fn write(&mut self, index: u32, value: u64) -> Result<(), PvMmError> {
        if self.base == 0 {
            return Ok(());
        }
        let at = self.base.wrapping_add(8 * u64::from(index));
        self.mem.write_obj(at, &value).map_err(|_| PvMmError::Fault)
    }
}

/// The memory-management hypercalls of the running vCPU.
pub fn hypercall(
    nr: Hypercall,
    args: &mut [u64; 5],
    vcpu: &mut PvVcpu,
    domain: &mut DomainInfo,
) -> HcResult {
    let mut guard = MMU.lock();
    let mmu = guard.as_mut().ok_or(XenError::NoSys)?;
    let me = mmu.lookup(domain.id).ok_or(XenError::Srch)?;
    let mem = &mut CurrentGuest;
    let [a0, a1, a2, a3, _] = *args;
    let result = match nr {
        Hypercall::MmuUpdate => {
            let pass = batch::plan(mem, a1, a2, batch::REQUESTS_PER_PASS);
            let reqs = requests::<MmuUpdate>(mem, a0, pass.len);
            let b = honour(mmu.mmu_update(me, a3 as u32, reqs));
            let size = size_of::<MmuUpdate>() as u64;
            let result = b.result.map_err(PvMmError::errno);
            return batch::finish(mem, args, pass, b.done, result, size);
        }
        Hypercall::MmuextOp => {
            let pass = batch::plan(mem, a1, a2, batch::REQUESTS_PER_PASS);
            let Some(mut vmm) = vcpu.mm else {
                return Err(XenError::Inval);
            };
            let ops = requests::<MmuextOp>(mem, a0, pass.len);
            // An unreadable vCPU bitmap is -EINVAL here (Xen's answer for mmuext_op).
            let mut new_ldt = None;
            let b = honour(mmu.mmuext_op(me, &mut vmm, a3 as u16, ops, |e| {
                if let Effect::LoadLdt { base, entries } = e {
                    new_ldt = Some((base, entries));
                }
                apply(e, vcpu).map_err(|_| PvMmError::BadArgument)
            }));
            if let Some((base, entries)) = new_ldt {
                set_ldt(mmu, me, vcpu, base, entries);
            }
            vcpu.mm = Some(vmm);
            vcpu.user_table = vmm.user_table();
            let size = size_of::<MmuextOp>() as u64;
            let result = b.result.map_err(PvMmError::errno);
            return batch::finish(mem, args, pass, b.done, result, size);
        }
        Hypercall::UpdateVaMapping | Hypercall::UpdateVaMappingOtherdomain => {
            let Some(vmm) = vcpu.mm.as_ref() else {
                return Err(XenError::Inval);
            };
            let domid = if nr == Hypercall::UpdateVaMapping {
                DomId::SELF
            } else {
                DomId(a3 as u16)
            };
            match honour(mmu.update_va_mapping_otherdomain(me, vmm, a0, a1, a2, domid)) {
                // An unreadable vCPU bitmap is -EFAULT here (Xen's answer).
                Ok(effect) => effect.map_or(Ok(()), |e| apply(e, vcpu)).map(|()| 0),
                Err(e) => Err(e),
            }
        }
        Hypercall::MemoryOp => {
            let op = MemoryOp::from_raw((a0 & MEMOP_CMD_MASK) as u32).ok_or(XenError::NoSys)?;
            if op == MemoryOp::Exchange {
                // The page count does not change in an exchange.
                let hardware = domain.privilege.is_some();
                return honour(memory_exchange(mmu, me, hardware, mem, a1));
            }
            let start = batch::start_extent(a0)?;
            let r: XenMemoryReservation = mem.read_obj(a1).map_err(|_| XenError::Fault)?;
            // Xen answers "the extents done so far" (`start_extent`) rather than an error for a
            // count its continuation cannot encode, a target it cannot find or the caller may
            // not touch, and nothing left to do.
            let pass = match batch::reservation(start, r.nr_extents, r.extent_order) {
                batch::Reservation::Done(extents) => return Ok(extents),
                batch::Reservation::Pass(p) => p,
            };
            let Ok(target) = mmu.resolve_target(me, DomId(r.domid)) else {
                return Ok(u64::from(start));
            };
            let mut list = GuestExtents {
                mem,
                base: pass.list_base(r.extent_start),
            };
            let done = match op {
                MemoryOp::IncreaseReservation => {
                    honour(mmu.increase_reservation(target, pass.len, r.extent_order, &mut list))
                }
                MemoryOp::DecreaseReservation => {
                    honour(mmu.decrease_reservation(target, pass.len, r.extent_order, &mut list))
                }
                MemoryOp::PopulatePhysmap => {
                    honour(mmu.populate_physmap(target, pass.len, r.extent_order, &mut list))
                }
                _ => return Err(XenError::NoSys),
            };
            if target == me
                && let Ok(d) = mmu.domain(target)
            {
                domain.tot_pages = d.tot_pages();
            }
            return pass.finish(args, done);
        }
        Hypercall::SetGdt => set_gdt(mmu, me, vcpu, a0, a1),
        Hypercall::UpdateDescriptor => update_descriptor(mmu, me, vcpu, a0, a1),
        _ => return Err(XenError::NoSys),
    };
    result.map_err(PvMmError::errno)
}

/// Copies the vCPU's guest GDT into the CPU's GDT (the frames are descriptor pages, read-only
/// to the guest, so the copy stays exact while the guest changes them only through
/// `update_descriptor`).
pub fn load_guest_gdt(vcpu: &PvVcpu, previous_ents: u32) {
    let mut entries = [0u64; 512];
    let mut done = 0usize;
    let total = vcpu.gdt_ents as usize;
    for &frame in vcpu.gdt_frames.iter().take(total.div_ceil(512)) {
        let n = (total - done).min(512);
        for (i, e) in entries.iter_mut().take(n).enumerate() {
            *e = direct_map::read_word(Mfn(frame), i);
        }
        crate::arch::x86_64::gdt::load_guest_entries_at(done, &entries[..n]);
        done += n;
    }
    crate::arch::x86_64::gdt::clear_guest_entries(done, previous_ents as usize);
}

/// Allocates a zeroed frame and shares it writable with domain `dom` (a grant-table frame);
/// `None` when memory is short.
pub fn alloc_shared_frame(dom: u16) -> Option<Mfn> {
    let mut guard = MMU.lock();
    let mmu = guard.as_mut()?;
    let mfn = FRAMES.lock().as_mut()?.alloc().ok()?;
    direct_map::zero(mfn);
    if mmu
        .share_hypervisor_frame(mfn, mmpv::DomId(dom), true)
        .is_err()
    {
        if let Some(f) = FRAMES.lock().as_mut() {
            let _ = f.free(mfn);
        }
        return None;
    }
    Some(mfn)
}

/// Takes back a frame shared with a domain and frees it, once nothing maps it (a mapping
/// left behind keeps it, as Xen keeps a page with references).
pub fn free_shared_frame(mmu: &mut Mmu, mfn: Mfn) {
    if mmu.unshare_hypervisor_frame(mfn).is_ok()
        && let Some(f) = FRAMES.lock().as_mut()
    {
        let _ = f.free(mfn);
    }
}

/// Writable page tables (Xen's ptwr): a guest kernel's write at `fault_va` through a
/// read-only mapping of one of its own L1 tables is decoded (`pv::ptwr`) and the entry it
/// would leave is applied with the checks of `mmu_update`. Returns whether it was; if not, the
/// page fault goes to the guest as it was, registers untouched.
pub fn ptwr(
    regs: &mut crate::x86::regs::Regs,
    vcpu: &PvVcpu,
    domain: &DomainInfo,
    fault_va: u64,
) -> bool {
    use crate::pv::ptwr::{Bases, emulate};
    const ADDR: u64 = 0x000f_ffff_ffff_f000;
    let Some(l4) = vcpu.kernel_table else {
        return false;
    };
    let mut bytes = [0u8; 15];
    let n = crate::pv::emulate::fetch(&mut CurrentGuest, regs.rip, &mut bytes);
    let mut guard = MMU.lock();
    let Some(mmu) = guard.as_mut() else {
        return false;
    };
    let Some(me) = mmu.lookup(domain.id) else {
        return false;
    };
    let Some((l1, slot)) = mmu.walk(l4, fault_va) else {
        return false;
    };
    let pte = mmu.store().read_entry(l1, slot);
    if pte & 0b11 != 0b01 {
        // Not present, or writable: not a write to a read-only mapping.
        return false;
    }
    let table = Mfn((pte & ADDR) >> 12);
    let is_own_l1 = mmu
        .frame(table)
        .is_some_and(|f| f.owner() == Some(me.id()) && f.page_type() == PageType::L1);
    if !is_own_l1 {
        return false;
    }
    let at = (fault_va & 0xfff) / 8;
    let old = mmu.store().read_entry(table, at as usize);
    let bases = Bases {
        fs: vcpu.fs_base,
        gs: vcpu.active_gs_base(),
    };
    let Ok(done) = emulate(&bytes[..n], regs, bases, fault_va, old) else {
        return false;
    };
    if let Some(new) = done.new_entry {
        let req = MmuUpdate {
            ptr: table.addr() + at * 8,
            val: new,
        };
        let batch = honour(mmu.mmu_update(me, u32::from(DomId::SELF.0), [Ok(req)]));
        if batch.result.is_err() {
            return false;
        }
    }
    *regs = done.regs;
    true
}

/// The descriptor `selector` names in the vCPU's GDT (its own entries or the hypervisor's
/// reserved page) or LDT, if there is one.
pub fn read_descriptor(vcpu: &PvVcpu, selector: u16) -> Option<u64> {
    use crate::x86::descriptors::{FIRST_RESERVED_GDT_ENTRY, reserved_gdt_page};
    let index = usize::from(selector >> 3);
    let (frames, entries): (&[u64], usize) = if selector & 4 != 0 {
        (&vcpu.ldt_frames, vcpu.ldt_ents as usize)
    } else if index >= FIRST_RESERVED_GDT_ENTRY {
        return reserved_gdt_page()
            .get(index - FIRST_RESERVED_GDT_ENTRY)
            .copied();
    } else {
        (&vcpu.gdt_frames, vcpu.gdt_ents as usize)
    };
    if index >= entries {
        return None;
    }
    let frame = *frames.get(index / 512)?;
    if frame == 0 {
        return None;
    }
    Some(direct_map::read_word(Mfn(frame), index))
}

/// Drops the references a vCPU's GDT holds on its frames (when its domain is destroyed, or
/// a new GDT replaces it).
pub fn release_vcpu_frames(mmu: &mut Mmu, vcpu: &PvVcpu) {
    for &f in vcpu
        .gdt_frames
        .iter()
        .take((vcpu.gdt_ents as usize).div_ceil(512))
    {
        honour(mmu.put_page_and_type(Mfn(f)));
    }
}

/// Drops the references the vCPU's LDT holds and leaves it without one.
pub fn release_ldt(mmu: &mut Mmu, vcpu: &mut PvVcpu) {
    let pages = (vcpu.ldt_ents as usize * 8).div_ceil(PAGE_SIZE as usize);
    for f in vcpu.ldt_frames.iter_mut().take(pages) {
        if *f != 0 {
            honour(mmu.put_page_and_type(Mfn(*f)));
        }
        *f = 0;
    }
    vcpu.ldt_ents = 0;
}

/// The frame mapped at guest address `va` under the L4 `l4`, if any.
fn frame_at(mmu: &Mmu, l4: Mfn, va: u64) -> Option<Mfn> {
    const ADDR: u64 = 0x000f_ffff_ffff_f000;
    let (l1, slot) = mmu.walk(l4, va)?;
    let e = mmu.store().read_entry(l1, slot);
    (e & 1 != 0).then_some(Mfn((e & ADDR) >> 12))
}

/// `MMUEXT_SET_LDT` carried out: each page of the new LDT, found through the vCPU's kernel
/// page tables, takes a descriptor-page type reference (which validates its descriptors) and
/// is copied into the CPU's LDT. A page that is not mapped or cannot be a descriptor page
/// stays empty, so loading a selector from it faults, as it does on Xen (which maps LDT pages
/// on first use).
fn set_ldt(mmu: &mut Mmu, me: mmpv::DomainRef, vcpu: &mut PvVcpu, base: u64, entries: u32) {
    use crate::pv::vcpu::LDT_FRAMES;
    release_ldt(mmu, vcpu);
    let pages = (entries as usize * 8)
        .div_ceil(PAGE_SIZE as usize)
        .min(LDT_FRAMES);
    for i in 0..pages {
        let va = base.wrapping_add((i as u64) * PAGE_SIZE);
        let frame = vcpu.kernel_table.and_then(|l4| frame_at(mmu, l4, va));
        vcpu.ldt_frames[i] = match frame {
            Some(f) if honour(mmu.get_page_and_type(me, f, PageType::SegDesc)).is_ok() => f.0,
            _ => 0,
        };
    }
    vcpu.ldt_ents = entries;
    load_guest_ldt(vcpu);
}

/// Copies the vCPU's LDT into the CPU's and loads it (or loads none).
pub fn load_guest_ldt(vcpu: &PvVcpu) {
    let total = vcpu.ldt_ents as usize;
    let mut entries = [0u64; 512];
    for (i, &frame) in vcpu.ldt_frames.iter().take(total.div_ceil(512)).enumerate() {
        for (j, e) in entries.iter_mut().enumerate() {
            *e = if frame == 0 {
                0
            } else {
                // A descriptor page of the guest's, held with a descriptor-page type reference.
                direct_map::read_word(Mfn(frame), j)
            };
        }
        crate::arch::x86_64::gdt::load_ldt_entries_at(i * 512, &entries);
    }
    crate::arch::x86_64::gdt::activate_ldt(vcpu.ldt_ents);
}

/// `set_gdt(frames, entries)`: the guest's GDT, validated as descriptor pages.
fn set_gdt(
    mmu: &mut Mmu,
    me: mmpv::DomainRef,
    vcpu: &mut PvVcpu,
    list: u64,
    entries: u64,
) -> Result<u64, PvMmError> {
    use crate::pv::vcpu::GDT_GUEST_FRAMES;
    if entries > (GDT_GUEST_FRAMES * 512) as u64 {
        return Err(PvMmError::BadArgument);
    }
    let nr = (entries as usize).div_ceil(512);
    let mut frames = [0u64; GDT_GUEST_FRAMES];
    for (i, f) in frames.iter_mut().take(nr).enumerate() {
        *f = CurrentGuest
            .read_obj(list.wrapping_add(8 * i as u64))
            .map_err(|_| PvMmError::Fault)?;
    }
    install_gdt(mmu, me, vcpu, &frames, entries, true)?;
    Ok(0)
}

/// Makes the frames of `frames` holding `entries` descriptors `vcpu`'s GDT (`set_gdt`, or the
/// `gdt_frames` of `VCPUOP_initialise`): each takes a descriptor-page type reference (all or
/// none), the previous GDT's are dropped, and the running vCPU's GDT is loaded.
pub fn install_gdt(
    mmu: &mut Mmu,
    me: mmpv::DomainRef,
    vcpu: &mut PvVcpu,
    frames: &[u64],
    entries: u64,
    running: bool,
) -> Result<(), PvMmError> {
    use crate::pv::vcpu::GDT_GUEST_FRAMES;
    if entries > (GDT_GUEST_FRAMES * 512) as u64 {
        return Err(PvMmError::BadArgument);
    }
    let nr = (entries as usize).div_ceil(512);
    let mut taken = [0u64; GDT_GUEST_FRAMES];
    for (i, (slot, &frame)) in taken.iter_mut().zip(frames).take(nr).enumerate() {
        if let Err(e) = honour(mmu.get_page_and_type(me, Mfn(frame), PageType::SegDesc)) {
            for &f in &frames[..i] {
                honour(mmu.put_page_and_type(Mfn(f)));
            }
            return Err(e);
        }
        *slot = frame;
    }
    let old = vcpu.gdt_ents;
    release_vcpu_frames(mmu, vcpu);
    vcpu.gdt_frames = taken;
    vcpu.gdt_ents = entries as u32;
    if running {
        load_guest_gdt(vcpu, old);
    }
    Ok(())
}

/// `update_descriptor(maddr, desc)`: one descriptor of a descriptor page, checked.
fn update_descriptor(
    mmu: &mut Mmu,
    me: mmpv::DomainRef,
    vcpu: &PvVcpu,
    maddr: u64,
    desc: u64,
) -> Result<u64, PvMmError> {
    if maddr & 7 != 0 {
        return Err(PvMmError::BadArgument);
    }
    let mfn = Mfn(maddr >> 12);
    let fixed = match honour(mmu.get_page_and_type(me, mfn, PageType::SegDesc)) {
        Ok(()) => match mmpv::check_descriptor(desc) {
            Some(fixed) => fixed,
            None => {
                honour(mmu.put_page_and_type(mfn));
                return Err(PvMmError::BadArgument);
            }
        },
        // As in Xen, a page that is not a descriptor page (say, mapped writable) is plain data:
        // the word is written unchecked under a writable type.
        Err(PvMmError::TypeConflict { .. }) => {
            honour(mmu.get_page_and_type(me, mfn, PageType::Writable))?;
            desc
        }
        Err(e) => return Err(e),
    };
    // The frame is the caller's and typed as a descriptor page (checked just above).
    direct_map::write_word(mfn, ((maddr & 0xfff) >> 3) as usize, fixed);
    honour(mmu.put_page_and_type(mfn));
    if vcpu
        .gdt_frames
        .iter()
        .take((vcpu.gdt_ents as usize).div_ceil(512))
        .any(|&f| f == mfn.0)
    {
        load_guest_gdt(vcpu, vcpu.gdt_ents);
    }
    if vcpu.ldt_ents != 0 && vcpu.ldt_frames.contains(&mfn.0) {
        load_guest_ldt(vcpu);
    }
    Ok(0)
}
