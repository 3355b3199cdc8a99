//! Building dom0 from the first boot module and entering it.
//!
//! The layout comes from `guest_abi::boot` (the same code the toolstack uses for domUs); this
//! file only fetches frames, copies bytes through the direct map and writes the tables. The
//! bootstrap page tables are mapped read-only in the guest, as the PV MMU requires.

use super::domain::{Domain, DomainEventState, MACHINE, Machine, Vcpu};
use crate::event::abi as eabi;
use crate::hypercall::event::{Sched, Timers};
use crate::sched::CpuId;
use crate::time::pvclock;

use super::FRAMES;
use super::host::MAX_MFN;
use super::mmu::{MMU, honour};
use crate::arch::x86_64::direct_map;
use crate::arch::x86_64::{guest, guest_entry};
use crate::hypercall::DomainInfo;
use crate::mm::frames::FrameError;
use crate::mm::pv::{
    self as mmdom, DomainConfig, ExtentList, MmuextCmd, MmuextOp, PvMmError, VcpuMm,
};
use crate::mm::{Mfn, PAGE_SIZE};
use crate::pv::hypercall_page;
use crate::pv::vcpu::PvVcpu;
use crate::x86::regs::Regs;
use crate::{info, mm};
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::Ordering;
use guest_abi::boot::{BootRequest, LayoutError, StartInfoParams, plan_boot};
use guest_abi::image::{ImageError, KernelImage};
use guest_abi::xen::SifFlags;
use guest_abi::{DomId, EvtchnPort, Pfn};
use zerocopy::IntoBytes;

/// Why dom0 could not be built.
#[derive(Debug)]
pub enum BuildError {
    /// The kernel image is not a usable Xen PV64 kernel.
    Image(ImageError),
    /// The kernel does not fit in the memory given.
    Layout(LayoutError),
    /// Not enough free frames.
    Memory(FrameError),
    /// The PV MMU refused something.
    Mmu(&'static str),
    /// Its event-channel table could not be set up.
    Events,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Image(e) => write!(f, "bad kernel image: {e}"),
            Self::Layout(e) => write!(f, "cannot lay out the domain: {e}"),
            Self::Memory(e) => write!(f, "cannot allocate the domain's memory: {e}"),
            Self::Mmu(e) => write!(f, "{e}"),
            Self::Events => write!(f, "cannot set up its event channels"),
        }
    }
}

/// Copies `data` into the domain's pseudo-physical memory at byte offset `offset`.
fn copy_in(p2m: &[Mfn], offset: u64, data: &[u8]) {
    let mut done = 0usize;
    while done < data.len() {
        let at = offset + done as u64;
        let page = (at / PAGE_SIZE) as usize;
        let in_page = (at % PAGE_SIZE) as usize;
        let n = (PAGE_SIZE as usize - in_page).min(data.len() - done);
        direct_map::write_bytes(p2m[page], in_page, &data[done..done + n]);
        done += n;
    }
}

/// An in-memory extent list: guest frame numbers in, machine frame numbers out.
struct Extents(Vec<u64>);

impl ExtentList for Extents {
    fn read(&mut self, index: u32) -> Result<u64, PvMmError> {
        self.0.get(index as usize).copied().ok_or(PvMmError::Fault)
    }

    fn write(&mut self, index: u32, value: u64) -> Result<(), PvMmError> {
        *self.0.get_mut(index as usize).ok_or(PvMmError::Fault)? = value;
        Ok(())
    }
}

/// What the boot loader handed over for dom0.
pub struct Dom0Modules<'a> {
    /// The kernel ELF.
    pub kernel: &'a [u8],
    /// Its command line.
    pub cmdline: &'a str,
    /// The ramdisk, if any.
    pub ramdisk: Option<&'a [u8]>,
}

/// Builds dom0 with `nr_pages` pages and returns it with its initial registers.
pub fn build(modules: &Dom0Modules<'_>, nr_pages: u64) -> Result<(Domain, Regs), BuildError> {
    let image = KernelImage::parse(modules.kernel).map_err(BuildError::Image)?;
    let flags = SifFlags::PRIVILEGED | SifFlags::INITDOMAIN;
    let req = BootRequest {
        nr_pages,
        ramdisk_len: modules.ramdisk.map_or(0, |r| r.len() as u64),
        flags,
    };
    let layout = plan_boot(&image, &req).map_err(BuildError::Layout)?;

    // Memory comes through the PV MMU, which scrubs every frame, records its owner and
    // fills the M2P table.
    let mut guard = MMU.lock();
    let mmu = guard
        .as_mut()
        .ok_or(BuildError::Mmu("the PV MMU is not set up"))?;
    let config = DomainConfig {
        max_pages: nr_pages,
        privileged: true,
        superpages: false,
        iomem_access: true,
    };
    let d = mmu
        .create_domain(mmdom::DomId(0), config)
        .map_err(|_| BuildError::Mmu("cannot create dom0"))?;
    let mut list = Extents((0..nr_pages).collect());
    let done = honour(mmu.populate_physmap(d, nr_pages as u32, 0, &mut list));
    if u64::from(done) != nr_pages {
        return Err(BuildError::Memory(FrameError::OutOfMemory));
    }
    let p2m: Vec<Mfn> = list.0.iter().map(|&m| Mfn(m)).collect();
    let shared_info = FRAMES
        .lock()
        .as_mut()
        .map_or(Err(FrameError::OutOfMemory), |f| f.alloc())
        .map_err(BuildError::Memory)?;
    direct_map::zero(shared_info);
    mmu.share_hypervisor_frame(shared_info, mmdom::DomId(0), true)
        .map_err(|_| BuildError::Mmu("cannot share the shared-info frame"))?;
    for v in &super::domain::shared_view(shared_info).vcpu_info {
        v.evtchn_upcall_mask.store(1, Ordering::SeqCst);
    }

    let base = layout.virt_base.0;
    for seg in image.segments() {
        copy_in(&p2m, seg.dest.0 - base, seg.data);
    }
    if let (Some(region), Some(rd)) = (layout.ramdisk, modules.ramdisk) {
        copy_in(&p2m, region.start.0 - base, rd);
    }
    let p2m_raw: Vec<u64> = p2m.iter().map(|m| m.0).collect();
    copy_in(&p2m, layout.p2m.start.0 - base, p2m_raw.as_bytes());

    let mfn_of = |pfn: Pfn| p2m[pfn.0 as usize];
    for e in layout.page_table_entries() {
        let entry = (mfn_of(e.target).addr()) | e.flags.bits();
        direct_map::write_word(mfn_of(e.table), e.index, entry);
    }
    let l4 = mfn_of(layout.l4_pfn());

    let params = StartInfoParams {
        shared_info_maddr: shared_info.addr(),
        store_evtchn: EvtchnPort(0),
        console_evtchn: EvtchnPort(0),
        cmdline: modules.cmdline.as_bytes(),
    };
    let start_info = layout.start_info(&params, |pfn| guest_abi::Mfn(mfn_of(pfn).0));
    copy_in(
        &p2m,
        layout.start_info.start.0 - base,
        start_info.as_bytes(),
    );
    if let Some(page) = layout.hypercall_page {
        let mut stubs = [0u8; 4096];
        hypercall_page::fill(&mut stubs);
        copy_in(&p2m, page.0 - base, &stubs);
    }

    // The PV MMU validates the bootstrap tables (and fills the hypervisor's L4 slots) as it
    // pins the L4 and installs it as the vCPU's kernel base pointer.
    let mut vmm = VcpuMm::new(d);
    let ops = [
        MmuextOp::new(MmuextCmd::PinL4Table as u32, l4.0, 0),
        MmuextOp::new(MmuextCmd::NewBaseptr as u32, l4.0, 0),
    ];
    let batch = honour(mmu.mmuext_op(d, &mut vmm, mmdom::DomId::SELF.0, ops.map(Ok), |_| Ok(())));
    if let Err(e) = batch.result {
        crate::error!("dom0: bootstrap page tables refused: {e}");
        return Err(BuildError::Mmu("the bootstrap page tables are not valid"));
    }
    drop(guard);

    let init = layout.initial_registers();
    let regs = Regs {
        rip: init.rip,
        rsp: init.rsp,
        rsi: init.rsi,
        cs: u64::from(crate::x86::descriptors::FLAT_RING3_CS64),
        ss: u64::from(crate::x86::descriptors::FLAT_RING3_DS),
        rflags: init.rflags,
        ..Regs::default()
    };
    let pv = PvVcpu {
        kernel_mode: true,
        kernel_table: vmm.kernel_table(),
        mm: Some(vmm),
        kernel_ss: u64::from(crate::x86::descriptors::FLAT_RING3_DS),
        kernel_sp: init.rsp,
        ..PvVcpu::default()
    };
    info!(
        "dom0: {} pages, kernel {:#x}-{:#x}, entry {:#x}, start_info {:#x}, {} page-table frames{}",
        nr_pages,
        layout.kernel.start.0,
        layout.kernel.end().0,
        layout.entry.0,
        layout.start_info.start.0,
        layout.page_tables.pages,
        if layout.hypercall_page.is_some() {
            ", hypercall page"
        } else {
            ""
        }
    );
    let domain = Domain {
        info: DomainInfo {
            id: DomId(0),
            privilege: Some(crate::privilege::Privilege::hardware_domain()),
            tot_pages: nr_pages,
            max_pages: nr_pages,
            nr_vcpus: 1,
            vm_assist: 0,
            handle: [0; 16],
            grant_frames: Default::default(),
            grant_active: Default::default(),
            maptrack: Default::default(),
        },
        events: DomainEventState::new(shared_info, 1).map_err(|_| BuildError::Events)?,
        p2m,
        shared_info,
        vcpus: vec![Vcpu {
            regs,
            initialised: true,
            ..Vcpu::new(0, pv)
        }],
        mm: d,
        shutdown: None,
        console_mid_line: false,
        pci_cf8: 0,
        teardown: None,
    };
    Ok((domain, regs))
}

/// Makes `domain` the running domain and enters its first vCPU. Never returns.
pub fn start(mut domain: Domain, regs: Regs, max_mfn: u64) -> ! {
    MAX_MFN.store(max_mfn, Ordering::Relaxed);
    guest_entry::init(crate::arch::x86_64::gdt::ring0_stack_top());
    let pv = domain.vcpus[0].pv.clone();
    let id = domain.info.id;
    let me = crate::sched::scheduler::vcpu(id, eabi::VcpuId(0));
    let shared = domain.shared();
    let mut sched = Sched::new(crate::sched::scheduler::DEFAULT_SLICE_NS);
    if sched
        .add_domain(id)
        .and_then(|()| sched.add_vcpu(me, CpuId(0), true))
        .is_err()
    {
        crate::error!("dom0: cannot add it to the scheduler");
        crate::arch::x86_64::power::dom0_crashed()
    }
    let clock = crate::arch::x86_64::time::pvclock();
    let now = clock.now(crate::arch::x86_64::cpu::rdtsc());
    pvclock::publish(&shared.vcpu_info[0].time, &clock.record(), 0);
    pvclock::publish_wallclock(shared, crate::arch::x86_64::time::boot_wallclock(), 0);
    let _ = sched.schedule(CpuId(0), now, None);
    domain.vcpus[0]
        .pv
        .runstate
        .change(guest_abi::vcpu::Runstate::Running, now);
    *MACHINE.lock() = Some(Machine {
        domains: vec![Box::new(domain)],
        sched,
        timers: Timers::new(),
        clock,
        current: 0,
        current_vcpu: 0,
        current_slot: 0,
    });
    guest::load_mode(&pv);
    guest::set_fs_base(pv.fs_base);
    guest::set_fpu_trap(false);
    info!("dom0: entering the kernel");
    guest_entry::enter_guest(&regs)
}

const _: () = assert!(mm::PAGE_SIZE == guest_abi::PAGE_SIZE);
