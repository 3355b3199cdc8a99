//! `domctl` and `sysctl`: how dom0's toolstack creates, inspects, pauses and destroys domains,
//! in Xen 4.17's layout and with its interface version. dom0 only; others get `-EPERM`.

use super::FRAMES;
use super::domain::{DomainEventState, MACHINE, Machine, Vcpu};
use super::mmu::{MMU, honour};
use crate::arch::x86_64::direct_map;
use crate::arch::x86_64::uaccess::CurrentGuest;
use crate::event::abi as eabi;
use crate::event::shared::SharedInfo;
use crate::hypercall::grant::GrantFrames;
use crate::hypercall::{DomainInfo, HcResult, admission, grant_map};
use crate::mm::Mfn;
use crate::mm::pv::{
    self as mmpv, DomainConfig, MmuextCmd, MmuextOp, Teardown, TeardownLimits, VcpuMm,
};
use crate::pv::guest_mem::{GuestMemory, is_canonical};
use crate::pv::hypercall_page;
use crate::pv::vcpu::{Callback, PvVcpu};
use crate::sched::scheduler::vcpu as vcpu_ref;
use crate::sched::{CpuId, RunState};
use crate::x86::descriptors;
use crate::x86::regs::Regs;
use crate::{info, lifecycle};
use alloc::boxed::Box;
use alloc::vec::Vec;
use guest_abi::arch::{VcpuGuestContext, VgcfFlags, xen_cr3_to_pfn, xen_pfn_to_cr3};
use guest_abi::domctl::{
    CdfFlags, DomctlCmd, DominfFlags, XEN_DOMINF_SHUTDOWNSHIFT, XenDomctl, XenDomctlCreatedomain,
    XenDomctlGetdomaininfo, XenDomctlMaxMem, XenDomctlMaxVcpus, XenDomctlVcpucontext,
};
use guest_abi::sysctl::{SysctlCmd, XenSysctl, XenSysctlGetdomaininfolist, XenSysctlPhysinfo};
use guest_abi::{DomId, XenError};
use zerocopy::FromZeros;

/// Handles `domctl(arg)` for the running domain, which is `caller`.
pub fn domctl(caller: &DomainInfo, arg: u64) -> HcResult {
    let mut op: XenDomctl = CurrentGuest.read_obj(arg)?;
    let mut guard = MACHINE.lock();
    let m = guard.as_mut().ok_or(XenError::Srch)?;
    // Xen's order (version, target domain, privilege, command): `hypercall::admission`.
    let (cmd, _dom0) = admission::domctl(caller, op.interface_version, op.cmd, op.domain, |d| {
        m.index_of(d).is_some()
    })?;
    let copy_back = match cmd {
        DomctlCmd::Createdomain => {
            let c: XenDomctlCreatedomain = op.u.read().ok_or(XenError::Inval)?;
            op.domain = create(m, op.domain, &c)?;
            true
        }
        DomctlCmd::Destroydomain => {
            destroy(m, op.domain)?;
            false
        }
        // A dying domain never runs again: pausing it changes nothing (Xen counts the pause
        // and answers 0).
        DomctlCmd::Pausedomain | DomctlCmd::Unpausedomain if dying(m, op.domain) => false,
        DomctlCmd::Pausedomain => {
            target(m, op.domain)?;
            m.sched
                .pause_by_controller(eabi::DomId(op.domain))
                .map_err(|_| XenError::Inval)?;
            false
        }
        DomctlCmd::Unpausedomain => {
            target(m, op.domain)?;
            m.sched
                .unpause_by_controller(eabi::DomId(op.domain))
                .map_err(|_| XenError::Inval)?;

            publish_time(m, op.domain);
            false
        }
        DomctlCmd::Getdomaininfo => {
            let info = domain_info_from(m, op.domain).ok_or(XenError::Srch)?;
            op.domain = info.domain;
            op.u.write(&info);
            true
        }
        DomctlCmd::MaxMem => {
            let mm: XenDomctlMaxMem = op.u.read().ok_or(XenError::Inval)?;
            let dom = live_target(m, op.domain)?;
            let pages = mm.max_memkb / 4;
            let d = m.domain_mut(dom).ok_or(XenError::Srch)?;
            let mut mmu = MMU.lock();
            mmu.as_mut()
                .ok_or(XenError::NoSys)?
                .set_max_pages(d.mm, pages)
                .map_err(mmpv::PvMmError::errno)?;
            d.info.max_pages = pages;
            false
        }
        DomctlCmd::MaxVcpus => {
            let mv: XenDomctlMaxVcpus = op.u.read().ok_or(XenError::Inval)?;
            let dom = live_target(m, op.domain)?;
            let d = m.domain_mut(dom).ok_or(XenError::Srch)?;
            // vCPUs are created with the domain (as in Xen 4.17); this only confirms the number.
            if mv.max != d.info.nr_vcpus {
                return Err(XenError::Inval);
            }
            false
        }
        DomctlCmd::Setvcpucontext => {
            let vc: XenDomctlVcpucontext = op.u.read().ok_or(XenError::Inval)?;
            let dom = live_target(m, op.domain)?;
            let ctxt: VcpuGuestContext = CurrentGuest.read_obj(vc.ctxt)?;
            set_vcpu_context(m, dom, vc.vcpu, &ctxt)?;
            false
        }
        DomctlCmd::Getvcpucontext => {
            let vc: XenDomctlVcpucontext = op.u.read().ok_or(XenError::Inval)?;
            let dom = live_target(m, op.domain)?;
            let ctxt = vcpu_context(m, dom, vc.vcpu)?;
            CurrentGuest.write_obj(vc.ctxt, &ctxt)?;
            false
        }
        DomctlCmd::HypercallInit => {
            let gmfn: u64 = op.u.read().ok_or(XenError::Inval)?;
            let dom = live_target(m, op.domain)?;
            hypercall_init(m, dom, Mfn(gmfn))?;
            false
        }
        _ => return Err(XenError::NoSys),
    };
    drop(guard);
    if copy_back {
        CurrentGuest.write_obj(arg, &op)?;
    }
    Ok(0)
}

/// Whether `dom` is being destroyed.
fn dying(m: &Machine, dom: u16) -> bool {
    m.index_of(dom)
        .is_some_and(|i| m.domains[i].teardown.is_some())
}

/// Resolves the target of a domctl that changes a domain's state or memory: an existing domain
/// other than dom0 itself that is not being destroyed (`EINVAL` for a dying one).
fn live_target(m: &Machine, dom: u16) -> Result<u16, XenError> {
    target(m, dom)?;
    if dying(m, dom) {
        return Err(XenError::Inval);
    }
    Ok(dom)
}

/// Resolves a domctl's target: an existing domain other than dom0 itself.
fn target(m: &Machine, dom: u16) -> Result<u16, XenError> {
    if dom == 0 || m.index_of(dom).is_none() {
        return Err(if dom == 0 {
            XenError::Inval
        } else {
            XenError::Srch
        });
    }
    Ok(dom)
}

/// Publishes the clock into every `vcpu_info` of `dom` and its wallclock again: the
/// toolstack rewrites the whole shared info page while it builds the domain (as libxc does),
/// which clears what `create` published. Xen refreshes the record whenever a vCPU is
/// scheduled; here the record of a CPU changes only when it is restamped.
fn publish_time(m: &Machine, dom: u16) {
    let Some(i) = m.index_of(dom) else { return };
    let d = &m.domains[i];
    publish_clock(d.shared(), d.vcpus.len(), &m.clock);
}

/// Publishes `clock` into the first `vcpus` `vcpu_info` of a shared-info page, and the
/// wallclock.
fn publish_clock(shared: &SharedInfo, vcpus: usize, clock: &crate::time::pvclock::PvClock) {
    let record = clock.record();
    for v in shared.vcpu_info.iter().take(vcpus) {
        crate::time::pvclock::publish(&v.time, &record, 0);
    }
    crate::time::pvclock::publish_wallclock(shared, crate::arch::x86_64::time::boot_wallclock(), 0);
}

/// `XEN_DOMCTL_createdomain`: a new PV domain with its vCPUs, paused until its toolstack has
/// built it and unpauses it. Returns its id. The steps and their undoing are
/// [`lifecycle::create`]'s; this is the machine under them.
fn create(m: &mut Machine, requested: u16, c: &XenDomctlCreatedomain) -> Result<u16, XenError> {
    let req = lifecycle::create::Request {
        domid: requested,
        vcpus: c.max_vcpus,
        hvm: CdfFlags::from_bits_retain(c.flags).intersects(CdfFlags::HVM | CdfFlags::HAP),
        grant_opts: c.grant_opts,
    };
    let id = lifecycle::create::create(
        &mut MachineResources {
            m,
            handle: c.handle,
            max_grant_version: c.grant_opts & lifecycle::create::GRANT_VERSION_MASK,
        },
        req,
    )?;
    info!("Domain {} created ({} vCPUs)", id.0, c.max_vcpus);
    Ok(id.0)
}

/// The running machine as domain creation sees it.
struct MachineResources<'a> {
    m: &'a mut Machine,
    /// The new domain's handle (`xen_domain_handle_t`).
    handle: [u8; 16],
    /// The highest grant-table version it may use (checked by `lifecycle::create`).
    max_grant_version: u32,
}

impl lifecycle::create::Resources for MachineResources<'_> {
    type Frame = Mfn;
    type Mm = mmpv::DomainRef;

    fn exists(&self, id: DomId) -> bool {
        self.m.index_of(id.0).is_some()
    }

    fn domains(&self) -> usize {
        self.m.domains.len()
    }

    fn free_vcpu_slots(&self) -> usize {
        self.m.sched.free_vcpu_slots()
    }

    fn take_shared_info(&mut self) -> Result<Mfn, XenError> {
        let frame = FRAMES
            .lock()
            .as_mut()
            .ok_or(XenError::NoMem)?
            .alloc()
            .map_err(|_| XenError::NoMem)?;
        direct_map::zero(frame);
        Ok(frame)
    }

    fn release_shared_info(&mut self, frame: Mfn) {
        if let Some(f) = FRAMES.lock().as_mut() {
            let _ = f.free(frame);
        }
    }

    fn add_mm(&mut self, id: DomId, frame: Mfn) -> Result<mmpv::DomainRef, XenError> {
        let mut guard = MMU.lock();
        let mmu = guard.as_mut().ok_or(XenError::NoSys)?;
        let config = DomainConfig {
            max_pages: 0,
            privileged: false,
            superpages: false,
            iomem_access: false,
        };
        let d = mmu
            .create_domain(id, config)
            .map_err(mmpv::PvMmError::errno)?;
        if let Err(e) = mmu.share_hypervisor_frame(frame, id, true) {
            let _ = mmu.destroy_domain(d, &mut []);
            return Err(e.errno());
        }
        Ok(d)
    }

    fn remove_mm(&mut self, d: mmpv::DomainRef, frame: Mfn) {
        if let Some(mmu) = MMU.lock().as_mut() {
            let _ = mmu.unshare_hypervisor_frame(frame);
            let _ = mmu.destroy_domain(d, &mut []);
        }
    }

    fn add_to_scheduler(&mut self, id: DomId, vcpus: u32) -> Result<(), XenError> {
        let sched = &mut self.m.sched;
        sched.add_domain(id).map_err(|_| XenError::NoSpc)?;
        let _ = sched.pause_by_controller(id);
        for v in 0..vcpus {
            if sched
                .add_vcpu(vcpu_ref(id, eabi::VcpuId(v)), CpuId(0), false)
                .is_err()
            {
                let _ = sched.remove_domain(id);
                return Err(XenError::NoSpc);
            }
        }
        Ok(())
    }

    fn publish(&mut self, id: DomId, vcpus: u32, shared_info: Mfn, d: mmpv::DomainRef) {
        let m = &mut *self.m;
        let shared = super::domain::shared_view(shared_info);
        for v in &shared.vcpu_info {
            v.evtchn_upcall_mask
                .store(1, core::sync::atomic::Ordering::SeqCst);
        }
        publish_clock(shared, vcpus as usize, &m.clock);
        // `vcpus` is within 1..=MAX_VCPUS (checked by `lifecycle::create`), so the table is
        // always made; an empty one would only refuse every port.
        let events = DomainEventState::new(shared_info, vcpus)
            .expect("vCPU count checked before the domain was made");
        let vcpu_records = (0..vcpus)
            .map(|v| {
                Vcpu::new(
                    v,
                    PvVcpu {
                        mm: Some(VcpuMm::new(d)),
                        ..PvVcpu::default()
                    },
                )
            })
            .collect();
        m.domains.push(Box::new(super::domain::Domain {
            info: DomainInfo {
                id,
                privilege: None,
                tot_pages: 0,
                max_pages: 0,
                nr_vcpus: vcpus,
                vm_assist: 0,
                handle: self.handle,
                grant_frames: GrantFrames::with_max_version(self.max_grant_version),
                grant_active: Default::default(),
                maptrack: Default::default(),
            },
            events,
            p2m: Vec::new(),
            shared_info,
            vcpus: vcpu_records,
            mm: d,
            shutdown: None,
            console_mid_line: false,
            pci_cf8: 0,
            teardown: None,
        }));
    }
}

/// How much of a domain's memory one `destroydomain` call releases before the call is
/// continued: frame records examined and frames released (as `REQUESTS_PER_PASS` bounds an
/// MMU batch).
const TEARDOWN_LIMITS: TeardownLimits = TeardownLimits {
    records: 32 * 1024,
    releases: 1024,
};

/// `XEN_DOMCTL_destroydomain`, Xen's `domain_kill`: the first call makes the domain dying
/// (it is taken off the scheduler for good, its timers are cancelled and its event channels
/// closed, so peers see their ends unbound), then each call releases a bounded part of its
/// memory ([`TEARDOWN_LIMITS`]) and answers [`XenError::Restart`] while some is left: the
/// hypercall is continued (re-executed by the caller) until the last call removes the domain
/// and gives its shared-info frame back.
fn destroy(m: &mut Machine, dom: u16) -> Result<(), XenError> {
    target(m, dom)?;
    if dom == m.current {
        return Err(XenError::Busy);
    }
    let eid = eabi::DomId(dom);
    let index = m.index_of(dom).ok_or(XenError::Srch)?;
    let first = m.domains[index].teardown.is_none();
    let mut moved_infos: Vec<u64> = Vec::new();
    let mut device_refs: Vec<(u64, bool)> = Vec::new();
    if first {
        moved_infos.extend(m.domains[index].events.shared.all_moved().map(|v| v.mfn));
        device_refs = forget_grant_mappings(m, index);
        crate::event::evtchn_ops::kill(&mut m.events(), eid);
        for v in &m.domains[index].vcpus {
            m.timers.cancel_vcpu(vcpu_ref(eid, eabi::VcpuId(v.id)));
        }
        let _ = m.sched.remove_domain(eid);
        m.domains[index].teardown = Some(Teardown::default());
    }
    let d = &mut m.domains[index];
    let mut teardown = d.teardown.unwrap_or_default();
    let mut vmms: Vec<VcpuMm> = d.vcpus.iter().filter_map(|v| v.pv.mm).collect();
    let mut guard = MMU.lock();
    let mmu = guard.as_mut().ok_or(XenError::NoSys)?;
    if first {
        // The references the hypervisor holds on the domain's own frames go first, so that
        // the frames are freed with the rest.
        for v in d.vcpus.iter_mut() {
            super::mmu::release_vcpu_frames(mmu, &v.pv);
            super::mmu::release_ldt(mmu, &mut v.pv);
        }
        for mfn in moved_infos {
            honour(mmu.put_page_and_type(Mfn(mfn)));
        }
        for (frame, writable) in device_refs {
            if writable {
                honour(mmu.put_page_and_type(Mfn(frame)));
            } else {
                honour(mmu.put_page(Mfn(frame)));
            }
        }
    }
    let step = mmu.destroy_domain_step(d.mm, &mut vmms, &mut teardown, TEARDOWN_LIMITS);
    let done = honour(step).map_err(mmpv::PvMmError::errno)?;
    for (v, vmm) in d.vcpus.iter_mut().filter(|v| v.pv.mm.is_some()).zip(vmms) {
        v.pv.mm = Some(vmm);
    }
    d.teardown = Some(teardown);
    let Some(report) = done else {
        return Err(XenError::Restart);
    };
    // Nothing refers to its shared-info page once its record is gone (removed below, with
    // the MMU lock released; the frame is free only for later allocations).
    super::mmu::free_shared_frame(mmu, d.shared_info);
    for f in d.info.grant_frames.all_frames() {
        super::mmu::free_shared_frame(mmu, Mfn(f));
    }
    drop(guard);
    m.domains.remove(index);
    info!(
        "Domain {dom} destroyed ({} frames freed, {} still referenced)",
        report.freed, report.still_referenced
    );
    Ok(())
}

/// The grants domain `index` has mapped are forgotten as it dies: each granter's pin is
/// dropped and its entry's flags settled. Returns the frame references its device mappings
/// hold, for the PV MMU to drop (its host mappings' references go with its page tables).
fn forget_grant_mappings(m: &mut Machine, index: usize) -> Vec<(u64, bool)> {
    let maps = m.domains[index].info.maptrack.take_all();
    for map in &maps {
        if let Some(g) = m.domains.iter_mut().find(|d| d.info.id == map.granter) {
            let info = &mut g.info;
            grant_map::forget(&info.grant_frames, &mut info.grant_active, map, |f, o| {
                direct_map::view(Mfn(f), o)
            });
        }
    }
    maps.iter()
        .filter_map(|map| map.frame_reference())
        .collect()
}

/// Information on the first domain whose id is at least `from` (how Xen lets tools iterate).
fn domain_info_from(m: &Machine, from: u16) -> Option<XenDomctlGetdomaininfo> {
    let d = m
        .domains
        .iter()
        .filter(|d| d.info.id.0 >= from)
        .min_by_key(|d| d.info.id.0)?;
    let id = d.info.id.0;
    let eid = eabi::DomId(id);
    let mut flags = DominfFlags::empty();
    // Online is "has a context" (Xen: not VPF_down), whether or not it is paused now.
    let online = d.vcpus.iter().filter(|v| v.initialised).count() as u32;
    for v in &d.vcpus {
        match m.sched.run_state(vcpu_ref(eid, eabi::VcpuId(v.id))) {
            Some(RunState::Running) => flags |= DominfFlags::RUNNING,
            Some(RunState::Blocked) => flags |= DominfFlags::BLOCKED,
            _ => {}
        }
    }
    if m.sched.controller_paused(eid) {
        flags |= DominfFlags::PAUSED;
    }
    if d.teardown.is_some() {
        flags |= DominfFlags::DYING;
    }
    let mut bits = flags.bits();
    if let Some(reason) = d.shutdown {
        bits |= DominfFlags::SHUTDOWN.bits() | (reason.raw() << XEN_DOMINF_SHUTDOWNSHIFT);
    }
    let tot_pages = super::mmu::tot_pages(d.mm);
    let mut info = XenDomctlGetdomaininfo::new_zeroed();
    info.domain = id;
    info.flags = bits;
    info.tot_pages = tot_pages;
    info.max_pages = d.info.max_pages;
    info.shared_info_frame = d.shared_info.0;
    info.cpu_time = d
        .vcpus
        .iter()
        .filter_map(|v| m.sched.runtime(vcpu_ref(eid, eabi::VcpuId(v.id))))
        .sum();
    info.nr_online_vcpus = online;
    info.max_vcpu_id = d.info.nr_vcpus.saturating_sub(1);
    info.handle = d.info.handle;
    Some(info)
}

/// `XEN_DOMCTL_setvcpucontext`: the vCPU's registers, virtual IDT, callbacks, kernel stack,
/// segment bases and page tables; it comes online.
fn set_vcpu_context(
    m: &mut Machine,
    dom: u16,
    vcpu: u32,
    c: &VcpuGuestContext,
) -> Result<(), XenError> {
    apply_vcpu_context(m, dom, vcpu, c)?;
    let _ = m
        .sched
        .vcpu_up(vcpu_ref(eabi::DomId(dom), eabi::VcpuId(vcpu)));
    Ok(())
}

/// Gives vCPU `vcpu` of domain `dom` the context `c` (registers, page tables, callbacks,
/// trap table, stack), as `setvcpucontext` and `VCPUOP_initialise` do; it stays down. What
/// the guest registered for the vCPU beforehand (its runstate area; its `vcpu_info` lives in
/// the domain's shared state) is kept.
pub(super) fn apply_vcpu_context(
    m: &mut Machine,
    dom: u16,
    vcpu: u32,
    c: &VcpuGuestContext,
) -> Result<(), XenError> {
    let d = m.domain_mut(dom).ok_or(XenError::Srch)?;
    let mm = d.mm;
    let v = d.vcpus.get_mut(vcpu as usize).ok_or(XenError::Inval)?;
    let u = &c.user_regs;
    for addr in [
        u.rip,
        u.rsp,
        c.fs_base,
        c.gs_base_kernel,
        c.gs_base_user,
        c.kernel_sp,
    ] {
        if !is_canonical(addr) {
            return Err(XenError::Inval);
        }
    }
    let mut vmm = v.pv.mm.unwrap_or(VcpuMm::new(mm));
    let l4 = xen_cr3_to_pfn(c.ctrlreg[3]);
    let mut guard = MMU.lock();
    let mmu = guard.as_mut().ok_or(XenError::NoSys)?;
    let ops = [MmuextOp::new(MmuextCmd::NewBaseptr as u32, l4, 0)];
    honour(mmu.mmuext_op(mm, &mut vmm, mmpv::DomId::SELF.0, ops.map(Ok), |_| Ok(())))
        .result
        .map_err(mmpv::PvMmError::errno)?;
    drop(guard);

    let mut pv = PvVcpu {
        mm: Some(vmm),
        runstate_area: v.pv.runstate_area,
        ..PvVcpu::default()
    };
    pv.kernel_mode = c.flags & VgcfFlags::IN_KERNEL.bits() != 0 || u.cs & 3 != 3;
    pv.kernel_mode = true;
    pv.kernel_table = vmm.kernel_table();
    pv.user_table = vmm.user_table();
    for t in &c.trap_ctxt {
        if t.address != 0 && is_canonical(t.address) {
            pv.traps[usize::from(t.vector)] = *t;
        }
    }
    pv.event_callback = Callback {
        address: c.event_callback_eip,
        mask_events: true,
    };
    pv.failsafe_callback = Callback {
        address: c.failsafe_callback_eip,
        mask_events: false,
    };
    pv.syscall_callback = Callback {
        address: c.syscall_callback_eip,
        mask_events: false,
    };
    // The virtual IOPL comes with the flags, as in Xen (Linux starts its other CPUs at 1).
    pv.iopl = ((u.rflags >> 12) & 3) as u8;
    pv.kernel_ss = c.kernel_ss | 3;
    pv.kernel_sp = c.kernel_sp;
    pv.fs_base = c.fs_base;
    pv.gs_base_kernel = c.gs_base_kernel;
    pv.gs_base_user = c.gs_base_user;
    pv.debugreg = c.debugreg;
    v.pv = pv;
    v.regs = Regs {
        rax: u.rax,
        rbx: u.rbx,
        rcx: u.rcx,
        rdx: u.rdx,
        rsi: u.rsi,
        rdi: u.rdi,
        rbp: u.rbp,
        r8: u.r8,
        r9: u.r9,
        r10: u.r10,
        r11: u.r11,
        r12: u.r12,
        r13: u.r13,
        r14: u.r14,
        r15: u.r15,
        rip: u.rip,
        rsp: u.rsp,
        // The flat ring-3 selectors, whatever the toolstack wrote.
        cs: u64::from(descriptors::FLAT_RING3_CS64),
        ss: u64::from(descriptors::FLAT_RING3_DS),
        rflags: (u.rflags & !(3 << 12)) | (1 << 9),
        ..Regs::default()
    };
    v.initialised = true;
    // As Xen: the VM assists come with vCPU 0's context only.
    if vcpu == 0 {
        d.info.vm_assist = c.vm_assist;
    }
    Ok(())
}

/// `XEN_DOMCTL_getvcpucontext`.
fn vcpu_context(m: &mut Machine, dom: u16, vcpu: u32) -> Result<VcpuGuestContext, XenError> {
    let d = m.domain_mut(dom).ok_or(XenError::Srch)?;
    let v = d.vcpus.get(vcpu as usize).ok_or(XenError::Inval)?;
    let mut c = VcpuGuestContext::new_zeroed();
    let r = &v.regs;
    let u = &mut c.user_regs;
    (u.rax, u.rbx, u.rcx, u.rdx, u.rsi, u.rdi, u.rbp) =
        (r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp);
    (u.r8, u.r9, u.r10, u.r11, u.r12, u.r13, u.r14, u.r15) =
        (r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15);
    (u.rip, u.rsp, u.rflags) = (r.rip, r.rsp, r.rflags);
    u.cs = r.cs as u16;
    u.ss = r.ss as u16;
    c.flags = if v.pv.kernel_mode {
        VgcfFlags::IN_KERNEL.bits()
    } else {
        0
    } | VgcfFlags::ONLINE.bits();
    c.trap_ctxt = v.pv.traps;
    c.kernel_ss = v.pv.kernel_ss;
    c.kernel_sp = v.pv.kernel_sp;
    c.ctrlreg[3] = v.pv.kernel_table.map_or(0, |t| xen_pfn_to_cr3(t.0));
    c.ctrlreg[1] = v.pv.user_table.map_or(0, |t| xen_pfn_to_cr3(t.0));
    c.debugreg = v.pv.debugreg;
    c.event_callback_eip = v.pv.event_callback.address;
    c.failsafe_callback_eip = v.pv.failsafe_callback.address;
    c.syscall_callback_eip = v.pv.syscall_callback.address;
    c.vm_assist = d.info.vm_assist;
    c.fs_base = v.pv.fs_base;
    c.gs_base_kernel = v.pv.gs_base_kernel;
    c.gs_base_user = v.pv.gs_base_user;
    Ok(c)
}

/// `XEN_DOMCTL_hypercall_init`: fills the domain's frame `mfn` with hypercall stubs.
fn hypercall_init(m: &mut Machine, dom: u16, mfn: Mfn) -> Result<(), XenError> {
    let d = m.domain_mut(dom).ok_or(XenError::Srch)?;
    let owned = MMU
        .lock()
        .as_ref()
        .and_then(|mmu| mmu.frame(mfn).map(|f| f.owner() == Some(d.info.id)))
        .unwrap_or(false);
    if !owned {
        return Err(XenError::Inval);
    }
    let mut stubs = [0u8; 4096];
    hypercall_page::fill(&mut stubs);
    // The frame is RAM owned by the domain (checked above).
    direct_map::write_bytes(mfn, 0, &stubs);
    Ok(())
}

/// Handles `sysctl(arg)` for the running domain.
pub fn sysctl(caller: &DomainInfo, arg: u64) -> HcResult {
    let mut op: XenSysctl = CurrentGuest.read_obj(arg)?;
    let (cmd, _dom0) = admission::sysctl(caller, op.interface_version, op.cmd)?;
    match cmd {
        SysctlCmd::Physinfo => {
            let (total, free, max) = FRAMES.lock().as_ref().map_or((0, 0, 0), |f| {
                (f.managed_frames(), f.free_frames(), f.max_frame())
            });
            let mut p = XenSysctlPhysinfo::new_zeroed();
            p.threads_per_core = 1;
            // CPUs online, each its own core (arch/x86_64/smp.rs); guests run on the first.
            let cpus = crate::arch::x86_64::smp::online();
            p.cores_per_socket = cpus;
            p.nr_cpus = cpus;
            p.nr_nodes = 1;
            p.cpu_khz = (crate::arch::x86_64::time::tsc_hz() / 1000) as u32;
            p.total_pages = total;
            p.free_pages = free;
            p.max_mfn = max;
            op.u.write(&p);
        }
        SysctlCmd::Getdomaininfolist => {
            let mut l: XenSysctlGetdomaininfolist = op.u.read().ok_or(XenError::Inval)?;
            let guard = MACHINE.lock();
            let m = guard.as_ref().ok_or(XenError::Srch)?;
            let mut next = l.first_domain;
            let mut n = 0u32;
            while n < l.max_domains {
                let Some(info) = domain_info_from(m, next) else {
                    break;
                };
                CurrentGuest.write_obj(
                    l.buffer
                        .wrapping_add(u64::from(n) * size_of::<XenDomctlGetdomaininfo>() as u64),
                    &info,
                )?;
                n += 1;
                match info.domain.checked_add(1) {
                    Some(x) => next = x,
                    None => break,
                }
            }
            l.num_domains = n;
            op.u.write(&l);
        }
        _ => return Err(XenError::NoSys),
    }
    CurrentGuest.write_obj(arg, &op)?;
    Ok(0)
}

/// `SCHEDOP_remote_shutdown(arg)`: dom0 shuts another domain down with a reason; the domain
/// stops and dom0 hears of it through `VIRQ_DOM_EXC`, as for a shutdown the domain asked for.
pub fn remote_shutdown(caller: &DomainInfo, arg: u64) -> HcResult {
    let req: guest_abi::sched::SchedRemoteShutdown = CurrentGuest.read_obj(arg)?;
    let mut guard = MACHINE.lock();
    let m = guard.as_mut().ok_or(XenError::Srch)?;
    // Xen looks the domain up before the privilege check.
    let _dom0 = admission::remote_shutdown(caller, req.domain_id, |d| m.index_of(d).is_some())?;
    let reason = guest_abi::sched::ShutdownReason::from_raw(req.reason).ok_or(XenError::Inval)?;
    if req.domain_id == caller.id.0 {
        // dom0 shutting itself down this way is an ordinary shutdown; not supported here.
        return Err(XenError::Inval);
    }
    let d = m.domain_mut(req.domain_id).ok_or(XenError::Srch)?;
    if d.shutdown.is_none() && d.teardown.is_none() {
        d.shutdown = Some(reason);
        info!(
            "Domain {} shut down by dom0: {}",
            req.domain_id,
            reason.c_name()
        );
        let _ = m.sched.pause_domain(eabi::DomId(req.domain_id));
        let wake = crate::event::evtchn_ops::raise_virq(
            &mut m.events(),
            eabi::DomId(0),
            eabi::VcpuId(0),
            eabi::Virq::DOM_EXC,
        );
        let _ = m.sched.wake_all(wake);
    }
    Ok(0)
}
