//! Test doubles: a [`Hypervisor`] that models host memory, domains, frames and event
//! channels, a tiny PV kernel image, and a guest that prints through its console ring.

use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::string::ToString;
use alloc::vec::Vec;

use guest_abi::arch::{VcpuGuestContext, xen_cr3_to_pfn};
use guest_abi::domctl::{DominfFlags, XenDomctlCreatedomain};
use guest_abi::sched::ShutdownReason;
use guest_abi::xen::StartInfo;
use guest_abi::{DomId, EvtchnPort, Mfn, PAGE_SIZE, Pfn, VcpuId, XenError};
use zerocopy::FromBytes;

use crate::blkback::grants::{GrantCopy, GrantSegment};
use crate::console::RingIndex;
use crate::hv::{DomainInfo, Hypervisor, PhysInfo, VersionInfo};
use crate::shared_page::SharedPage;
use crate::shared_page::{AtomicRing, Page, zeroed_page};

/// The ring type of the fake: a shared page.
pub type FakeRing = AtomicRing<Rc<Page>>;

/// Pages the fake's dom0 owns (not taken from the free pool).
pub const DOM0_PAGES: u64 = 65536;

/// One domain of the fake.
#[derive(Debug)]
pub struct FakeDomain {
    pub pages: Vec<Mfn>,
    pub shared_info: Mfn,
    pub max_kib: u64,
    pub max_vcpus: u32,
    pub paused: bool,
    pub dying: bool,
    pub shutdown: Option<u32>,
    pub context: Option<VcpuGuestContext>,
    pub pinned_l4: Option<Mfn>,
    pub hypercall_page: Option<Mfn>,
    pub unbound: Vec<(EvtchnPort, DomId)>,
    pub handle: [u8; 16],
    /// Its grant table: reference to (frame, whether dom0 may write it).
    pub grants: BTreeMap<u32, (Mfn, bool)>,
}

/// A hypervisor in memory.
#[derive(Debug)]
pub struct FakeHv {
    pub total_pages: u64,
    free: Vec<Mfn>,
    frames: BTreeMap<u64, Rc<Page>>,
    owner: BTreeMap<u64, DomId>,
    pub domains: BTreeMap<u16, FakeDomain>,
    next_id: u16,
    /// The next call of each of these operations fails with its error.
    pub fail_on: Vec<(&'static str, XenError)>,
    /// dom0's local ports: local port to (domain, its port).
    pub bound: BTreeMap<u32, (DomId, EvtchnPort)>,
    next_local_port: u32,
    /// Local ports notified, in order.
    pub sent: Vec<EvtchnPort>,
    /// Console mappings made and not yet unmapped.
    pub mapped_consoles: usize,
    /// Grant mappings made and not yet unmapped.
    pub mapped_grants: usize,
}

impl FakeHv {
    /// A host with `free_pages` free pages, numbered from 0x10000.
    pub fn new(free_pages: u64) -> Self {
        Self {
            total_pages: free_pages + DOM0_PAGES,
            free: (0..free_pages).rev().map(|i| Mfn(0x10000 + i)).collect(),
            frames: BTreeMap::new(),
            owner: BTreeMap::new(),
            domains: BTreeMap::new(),
            next_id: 1,
            fail_on: Vec::new(),
            bound: BTreeMap::new(),
            next_local_port: 1,
            sent: Vec::new(),
            mapped_grants: 0,
            mapped_consoles: 0,
        }
    }

    /// Free pages now.
    pub fn free_pages(&self) -> u64 {
        self.free.len() as u64
    }

    fn check(&mut self, op: &'static str) -> Result<(), XenError> {
        match self.fail_on.iter().position(|(o, _)| *o == op) {
            Some(i) => Err(self.fail_on.remove(i).1),
            None => Ok(()),
        }
    }

    fn dom(&mut self, dom: DomId) -> Result<&mut FakeDomain, XenError> {
        self.domains.get_mut(&dom.0).ok_or(XenError::Srch)
    }

    fn alloc(&mut self, dom: DomId) -> Result<Mfn, XenError> {
        let mfn = self.free.pop().ok_or(XenError::NoMem)?;
        self.owner.insert(mfn.0, dom);
        Ok(mfn)
    }

    fn release(&mut self, mfn: Mfn) {
        self.owner.remove(&mfn.0);
        self.frames.remove(&mfn.0);
        self.free.push(mfn);
    }

    fn frame(&mut self, mfn: Mfn) -> Rc<Page> {
        self.frames
            .entry(mfn.0)
            .or_insert_with(|| Rc::new(zeroed_page()))
            .clone()
    }

    /// Reads bytes of a frame (zero if never written).
    pub fn read(&self, mfn: Mfn, offset: usize, len: usize) -> Vec<u8> {
        let Some(page) = self.frames.get(&mfn.0) else {
            return alloc::vec![0; len];
        };
        let ring = AtomicRing(page.clone());
        (offset..offset + len)
            .map(|i| {
                let w = ring.0[i / 4].load(core::sync::atomic::Ordering::Relaxed);
                (w >> ((i % 4) * 8)) as u8
            })
            .collect()
    }

    fn read_u64(&self, mfn: Mfn, index: usize) -> u64 {
        let b = self.read(mfn, index * 8, 8);
        u64::from_le_bytes(b.try_into().unwrap_or([0; 8]))
    }

    /// Walks `dom`'s page tables from its vCPU 0's CR3: the frame behind `va`, if it is
    /// mapped, and whether it is writable.
    pub fn translate(&self, dom: DomId, va: u64) -> Option<(Mfn, bool)> {
        let ctx = self.domains.get(&dom.0)?.context?;
        let mut table = Mfn(xen_cr3_to_pfn(ctx.ctrlreg[3]));
        let mut writable = true;
        for level in (1..=4u32).rev() {
            let index = ((va >> (12 + 9 * (level - 1))) & 511) as usize;
            let entry = self.read_u64(table, index);
            if entry & 1 == 0 {
                return None;
            }
            writable &= entry & 2 != 0;
            let next = Mfn((entry & 0x000f_ffff_ffff_f000) >> 12);
            if self.owner.get(&next.0) != Some(&dom) {
                return None; // The fake's PV MMU rule: only the domain's own frames.
            }
            table = next;
        }
        Some((table, writable))
    }

    /// Reads guest-virtual memory of `dom` through its page tables.
    pub fn read_virt(&self, dom: DomId, va: u64, len: usize) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = va;
        while out.len() < len {
            let (mfn, _) = self.translate(dom, at)?;
            let offset = (at % PAGE_SIZE) as usize;
            let n = (PAGE_SIZE as usize - offset).min(len - out.len());
            out.extend(self.read(mfn, offset, n));
            at += n as u64;
        }
        Some(out)
    }

    /// `dom`'s `start_info`, found as the guest finds it: `rsi` through its page tables.
    pub fn start_info(&self, dom: DomId) -> Option<StartInfo> {
        let rsi = self.domains.get(&dom.0)?.context?.user_regs.rsi;
        let bytes = self.read_virt(dom, rsi, size_of::<StartInfo>())?;
        StartInfo::read_from_bytes(&bytes).ok()
    }

    /// The guest's view of its console ring.
    pub fn guest_ring(&mut self, dom: DomId) -> FakeRing {
        let si = self.start_info(dom).expect("domain was built");
        AtomicRing(self.frame(Mfn(si.console.mfn)))
    }

    /// The guest's view of its xenstore ring.
    pub fn guest_store(&mut self, dom: DomId) -> FakeRing {
        let si = self.start_info(dom).expect("domain was built");
        AtomicRing(self.frame(Mfn(si.store_mfn)))
    }

    /// The guest prints `text` on its console and notifies dom0.
    pub fn guest_print(&mut self, dom: DomId, text: &[u8]) {
        let r = self.guest_ring(dom);
        let prod = crate::console::ConsoleRing::load_index(&r, RingIndex::OutProd);
        for (i, &b) in text.iter().enumerate() {
            r.store_out(
                guest_abi::console::XenconsInterface::out_index(prod.wrapping_add(i as u32)),
                b,
            );
        }
        crate::console::ConsoleRing::store_index(
            &r,
            RingIndex::OutProd,
            prod.wrapping_add(text.len() as u32),
        );
    }

    /// The guest reads its console input.
    pub fn guest_read(&mut self, dom: DomId) -> Vec<u8> {
        use crate::console::ConsoleRing;
        let r = self.guest_ring(dom);
        let cons = r.load_index(RingIndex::InCons);
        let prod = r.load_index(RingIndex::InProd);
        let bytes = (0..prod.wrapping_sub(cons))
            .map(|i| {
                r.load_in(guest_abi::console::XenconsInterface::in_index(
                    cons.wrapping_add(i),
                ))
            })
            .collect();
        r.store_index(RingIndex::InCons, prod);
        bytes
    }

    /// The guest grants its page `index` (of those it was given) to dom0 and returns the
    /// reference; the page as the guest sees it.
    pub fn guest_grant(&mut self, dom: DomId, index: usize, writable: bool) -> (u32, FakeRing) {
        let d = self.domains.get_mut(&dom.0).expect("domain exists");
        let mfn = d.pages[index];
        let gref = d.grants.len() as u32 + 8;
        d.grants.insert(gref, (mfn, writable));
        (gref, AtomicRing(self.frame(mfn)))
    }

    fn granted(&mut self, dom: DomId, gref: u32, write: bool) -> Option<Rc<Page>> {
        let &(mfn, writable) = self.domains.get(&dom.0)?.grants.get(&gref)?;
        (writable || !write).then(|| self.frame(mfn))
    }

    /// The guest calls `SCHEDOP_shutdown`.
    pub fn guest_shutdown(&mut self, dom: DomId, reason: ShutdownReason) {
        if let Ok(d) = self.dom(dom) {
            d.shutdown = Some(reason as u32);
        }
    }

    fn info(&self, id: u16) -> Option<DomainInfo> {
        if id == 0 {
            return Some(DomainInfo {
                id: DomId(0),
                flags: DominfFlags::RUNNING,
                shutdown_code: 0,
                tot_pages: DOM0_PAGES,
                max_pages: DOM0_PAGES,
                shared_info_frame: Mfn(1),
                cpu_time_ns: 12_340_000_000,
                online_vcpus: 1,
            });
        }
        let d = self.domains.get(&id)?;
        let mut flags = DominfFlags::empty();
        if d.paused {
            flags |= DominfFlags::PAUSED;
        } else if d.shutdown.is_none() {
            flags |= DominfFlags::BLOCKED;
        }
        if d.shutdown.is_some() {
            flags |= DominfFlags::SHUTDOWN;
        }
        if d.dying {
            flags |= DominfFlags::DYING;
        }
        Some(DomainInfo {
            id: DomId(id),
            flags,
            shutdown_code: d.shutdown.unwrap_or(0),
            tot_pages: d.pages.len() as u64,
            max_pages: d.max_kib / 4,
            shared_info_frame: d.shared_info,
            cpu_time_ns: 50_000_000,
            online_vcpus: u32::from(d.context.is_some()),
        })
    }
}

impl Hypervisor for FakeHv {
    type Ring = FakeRing;
    type GrantPage = FakeRing;

    fn create_domain(&mut self, config: &XenDomctlCreatedomain) -> Result<DomId, XenError> {
        self.check("createdomain")?;
        if config.flags != 0 || config.max_vcpus == 0 {
            return Err(XenError::Inval);
        }
        while self.domains.contains_key(&self.next_id) || self.next_id == 0 {
            self.next_id = self.next_id.wrapping_add(1) % DomId::FIRST_RESERVED.0;
        }
        let id = DomId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1) % DomId::FIRST_RESERVED.0;
        let shared_info = self.alloc(id)?;
        self.domains.insert(
            id.0,
            FakeDomain {
                pages: Vec::new(),
                shared_info,
                max_kib: 0,
                max_vcpus: 0,
                paused: true,
                dying: false,
                shutdown: None,
                context: None,
                pinned_l4: None,
                hypercall_page: None,
                unbound: Vec::new(),
                handle: config.handle,
                grants: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    fn destroy_domain(&mut self, dom: DomId) -> Result<(), XenError> {
        self.check("destroydomain")?;
        if dom.0 == 0 {
            return Err(XenError::Perm);
        }
        let d = self.domains.remove(&dom.0).ok_or(XenError::Srch)?;
        for mfn in d.pages {
            self.release(mfn);
        }
        self.release(d.shared_info);
        self.bound.retain(|_, (remote, _)| *remote != dom);
        Ok(())
    }

    fn pause_domain(&mut self, dom: DomId) -> Result<(), XenError> {
        self.check("pausedomain")?;
        self.dom(dom)?.paused = true;
        Ok(())
    }

    fn unpause_domain(&mut self, dom: DomId) -> Result<(), XenError> {
        self.check("unpausedomain")?;
        let d = self.dom(dom)?;
        if d.context.is_none() {
            return Err(XenError::Inval);
        }
        d.paused = false;
        Ok(())
    }

    fn domain_info(&mut self, dom: DomId) -> Result<DomainInfo, XenError> {
        self.check("getdomaininfo")?;
        self.info(dom.0).ok_or(XenError::Srch)
    }

    fn list_domains(&mut self) -> Result<Vec<DomainInfo>, XenError> {
        self.check("getdomaininfolist")?;
        let ids = core::iter::once(0).chain(self.domains.keys().copied());
        Ok(ids.filter_map(|id| self.info(id)).collect())
    }

    fn set_max_mem(&mut self, dom: DomId, max_kib: u64) -> Result<(), XenError> {
        self.check("max_mem")?;
        self.dom(dom)?.max_kib = max_kib;
        Ok(())
    }

    fn set_max_vcpus(&mut self, dom: DomId, max: u32) -> Result<(), XenError> {
        self.check("max_vcpus")?;
        self.dom(dom)?.max_vcpus = max;
        Ok(())
    }

    fn set_vcpu_context(
        &mut self,
        dom: DomId,
        vcpu: VcpuId,
        context: &VcpuGuestContext,
    ) -> Result<(), XenError> {
        self.check("setvcpucontext")?;
        let d = self.dom(dom)?;
        let cr3 = Mfn(xen_cr3_to_pfn(context.ctrlreg[3]));
        if vcpu.0 >= d.max_vcpus || d.pinned_l4 != Some(cr3) {
            return Err(XenError::Inval);
        }
        d.context = Some(*context);
        Ok(())
    }

    fn hypercall_init(&mut self, dom: DomId, frame: Mfn) -> Result<(), XenError> {
        self.check("hypercall_init")?;
        if self.owner.get(&frame.0) != Some(&dom) {
            return Err(XenError::Inval);
        }
        let page = self.frame(frame);
        for (i, w) in page.iter().enumerate().take(32 * 8) {
            // Each 32-byte stub: mov $nr, %eax; syscall; ret (as words, enough to check).
            if i % 8 == 0 {
                w.store(
                    0xb8 | ((i as u32 / 8) << 8),
                    core::sync::atomic::Ordering::Relaxed,
                );
            }
        }
        self.dom(dom)?.hypercall_page = Some(frame);
        Ok(())
    }

    fn populate_physmap(
        &mut self,
        dom: DomId,
        pfns: &[Pfn],
        mfns: &mut [Mfn],
    ) -> Result<(), XenError> {
        self.check("populate_physmap")?;
        let d = self.dom(dom)?;
        if pfns.len() != mfns.len() || (d.pages.len() + pfns.len()) as u64 > d.max_kib / 4 {
            return Err(XenError::Inval);
        }
        for (pfn, out) in pfns.iter().zip(mfns.iter_mut()) {
            if pfn.0 != self.dom(dom)?.pages.len() as u64 {
                return Err(XenError::Inval); // The builder fills PFNs in order.
            }
            *out = self.alloc(dom)?;
            self.dom(dom)?.pages.push(*out);
        }
        Ok(())
    }

    fn write_frame(
        &mut self,
        dom: DomId,
        frame: Mfn,
        offset: usize,
        bytes: &[u8],
    ) -> Result<(), XenError> {
        self.check("write_frame")?;
        let d = self.dom(dom)?;
        let pinned = d.pinned_l4 == Some(frame);
        if self.owner.get(&frame.0) != Some(&dom) || pinned {
            return Err(XenError::Perm);
        }
        if offset + bytes.len() > PAGE_SIZE as usize {
            return Err(XenError::Inval);
        }
        let ring = AtomicRing(self.frame(frame));
        for (i, &b) in bytes.iter().enumerate() {
            ring.store_byte(offset + i, b);
        }
        Ok(())
    }

    fn pin_l4_table(&mut self, dom: DomId, frame: Mfn) -> Result<(), XenError> {
        self.check("pin_l4")?;
        if self.owner.get(&frame.0) != Some(&dom) {
            return Err(XenError::Inval);
        }
        self.dom(dom)?.pinned_l4 = Some(frame);
        Ok(())
    }

    fn evtchn_alloc_unbound(&mut self, dom: DomId, remote: DomId) -> Result<EvtchnPort, XenError> {
        self.check("evtchn_alloc_unbound")?;
        let d = self.dom(dom)?;
        let port = EvtchnPort(d.unbound.len() as u32 + 1);
        d.unbound.push((port, remote));
        Ok(port)
    }

    fn evtchn_bind_interdomain(
        &mut self,
        remote_dom: DomId,
        remote_port: EvtchnPort,
    ) -> Result<EvtchnPort, XenError> {
        self.check("evtchn_bind_interdomain")?;
        let d = self.dom(remote_dom)?;
        if !d.unbound.contains(&(remote_port, DomId(0))) {
            return Err(XenError::Inval);
        }
        let local = EvtchnPort(self.next_local_port);
        self.next_local_port += 1;
        self.bound.insert(local.0, (remote_dom, remote_port));
        Ok(local)
    }

    fn evtchn_close(&mut self, port: EvtchnPort) -> Result<(), XenError> {
        self.check("evtchn_close")?;
        self.bound
            .remove(&port.0)
            .map(|_| ())
            .ok_or(XenError::Inval)
    }

    fn evtchn_send(&mut self, port: EvtchnPort) -> Result<(), XenError> {
        self.check("evtchn_send")?;
        if !self.bound.contains_key(&port.0) {
            return Err(XenError::Inval);
        }
        self.sent.push(port);
        Ok(())
    }

    fn map_console(&mut self, dom: DomId, frame: Mfn) -> Result<FakeRing, XenError> {
        self.check("map_console")?;
        if self.owner.get(&frame.0) != Some(&dom) {
            return Err(XenError::Inval);
        }
        self.mapped_consoles += 1;
        Ok(AtomicRing(self.frame(frame)))
    }

    fn unmap_console(&mut self, _ring: FakeRing) {
        self.mapped_consoles -= 1;
    }

    fn map_grant(&mut self, dom: DomId, gref: u32) -> Result<FakeRing, XenError> {
        self.check("map_grant")?;
        let page = self.granted(dom, gref, true).ok_or(XenError::Inval)?;
        self.mapped_grants += 1;
        Ok(AtomicRing(page))
    }

    fn unmap_grant(&mut self, _page: FakeRing) {
        self.mapped_grants -= 1;
    }

    fn remote_shutdown(&mut self, dom: DomId, reason: ShutdownReason) -> Result<(), XenError> {
        self.check("remote_shutdown")?;
        self.dom(dom)?.shutdown = Some(reason as u32);
        Ok(())
    }

    fn physinfo(&mut self) -> Result<PhysInfo, XenError> {
        self.check("physinfo")?;
        Ok(PhysInfo {
            nr_cpus: 1,
            total_pages: self.total_pages,
            free_pages: self.free_pages(),
        })
    }

    fn version(&mut self) -> Result<VersionInfo, XenError> {
        self.check("version")?;
        Ok(VersionInfo {
            major: 4,
            minor: 17,
            extra: ".0".to_string(),
        })
    }
}

/// Where the test kernel is linked.
pub const KERNEL_VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
/// Its entry point.
pub const KERNEL_ENTRY: u64 = KERNEL_VIRT_BASE + 0x2000;
/// Its hypercall page.
pub const KERNEL_HYPERCALL_PAGE: u64 = KERNEL_VIRT_BASE + 0x3000;
/// The first bytes of its text.
pub const KERNEL_TEXT: &[u8] = b"\xf4\xeb\xfd test kernel text";
/// Its bss, bytes after the file data.
pub const KERNEL_BSS: u64 = 0x1800;

/// A minimal Xen PV64 kernel: one loadable segment (3 pages of text, then bss) at
/// `VIRT_BASE + 0x2000`, with the Xen notes a loader needs.
pub fn kernel_image(hypercall_page: bool) -> Vec<u8> {
    kernel_image_with(hypercall_page, None)
}

/// [`kernel_image`], asking with `INIT_P2M` for its P2M list at `init_p2m`, if given.
pub fn kernel_image_with(hypercall_page: bool, init_p2m: Option<u64>) -> Vec<u8> {
    fn note(out: &mut Vec<u8>, ty: u32, desc: &[u8]) {
        out.extend(4u32.to_le_bytes());
        out.extend((desc.len() as u32).to_le_bytes());
        out.extend(ty.to_le_bytes());
        out.extend(b"Xen\0");
        out.extend(desc);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }
    let mut notes = Vec::new();
    note(&mut notes, 5, b"xen-3.0\0"); // XEN_VERSION
    note(&mut notes, 8, b"generic\0"); // LOADER
    note(&mut notes, 6, b"linux\0"); // GUEST_OS
    note(&mut notes, 3, &KERNEL_VIRT_BASE.to_le_bytes()); // VIRT_BASE
    note(&mut notes, 4, &0u64.to_le_bytes()); // PADDR_OFFSET
    note(&mut notes, 1, &KERNEL_ENTRY.to_le_bytes()); // ENTRY
    if hypercall_page {
        note(&mut notes, 2, &KERNEL_HYPERCALL_PAGE.to_le_bytes()); // HYPERCALL_PAGE
    }
    if let Some(va) = init_p2m {
        note(&mut notes, 15, &va.to_le_bytes()); // INIT_P2M
    }
    let text_off = 0x1000u64;
    let text_len = 0x3000u64;
    let mut elf = alloc::vec![0u8; 64];
    elf[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
    elf[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    elf[20..24].copy_from_slice(&1u32.to_le_bytes());
    elf[24..32].copy_from_slice(&KERNEL_ENTRY.to_le_bytes());
    elf[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    elf[52..54].copy_from_slice(&64u16.to_le_bytes());
    elf[54..56].copy_from_slice(&56u16.to_le_bytes());
    elf[56..58].copy_from_slice(&2u16.to_le_bytes());
    elf[58..60].copy_from_slice(&64u16.to_le_bytes());
    let notes_off = 64 + 2 * 56;
    let phdr = |ty: u32, off: u64, vaddr: u64, paddr: u64, filesz: u64, memsz: u64| {
        let mut p = Vec::new();
        p.extend(ty.to_le_bytes());
        p.extend(7u32.to_le_bytes());
        for v in [off, vaddr, paddr, filesz, memsz, 0x1000] {
            p.extend(v.to_le_bytes());
        }
        p
    };
    elf.extend(phdr(
        1,
        text_off,
        KERNEL_ENTRY,
        0x2000,
        text_len,
        text_len + KERNEL_BSS,
    ));
    elf.extend(phdr(
        4,
        notes_off as u64,
        0,
        0,
        notes.len() as u64,
        notes.len() as u64,
    ));
    elf.extend(&notes);
    elf.resize(text_off as usize, 0);
    let mut text = alloc::vec![0x90u8; text_len as usize];
    text[..KERNEL_TEXT.len()].copy_from_slice(KERNEL_TEXT);
    text[text_len as usize - 4..].copy_from_slice(b"END!");
    elf.extend(text);
    elf
}

impl FakeHv {
    /// Runs `each` on every segment's bytes of `dom`'s granted pages (dom0 writing them if
    /// `write`) with the segment's place in the buffer; false at the first bad grant.
    fn each_segment(
        &mut self,
        dom: DomId,
        segments: &[GrantSegment],
        write: bool,
        mut each: impl FnMut(&FakeRing, usize, usize),
    ) -> bool {
        let mut at = 0;
        for s in segments {
            let Some(page) = self.granted(dom, s.gref, write) else {
                return false;
            };
            let ring = AtomicRing(page);
            for i in 0..usize::from(s.len) {
                each(&ring, usize::from(s.offset) + i, at + i);
            }
            at += usize::from(s.len);
        }
        true
    }
}

impl GrantCopy for FakeHv {
    fn copy_from_guest(&mut self, dom: DomId, segments: &[GrantSegment], buf: &mut [u8]) -> bool {
        self.each_segment(dom, segments, false, |page, from, to| {
            buf[to] = page.load_u8(from)
        })
    }

    fn copy_to_guest(&mut self, dom: DomId, segments: &[GrantSegment], buf: &[u8]) -> bool {
        self.each_segment(dom, segments, true, |page, to, from| {
            page.store_u8(to, buf[from])
        })
    }
}
