//! A fake machine for the hypercall handlers ([`Host`]): one domain (id 0) with one vCPU on the
//! scheduler, a 4095-port event channel table, and a recording of what handlers asked of the
//! machine. It also checks what a handler may only ever pass on after its own checks: segment
//! bases are canonical, a `vcpu_info` offset fits its frame and is aligned, a console write is
//! at most 1 MiB.

extern crate std;

use std::boxed::Box;
use std::vec;
use std::vec::Vec;

use crate::event::abi as eabi;
use crate::event::channel::{Channel, EventChannels};
use crate::event::evtchn_ops::{DomainEvents, Domains};
use crate::event::shared::{DomainShared, MovedVcpuInfo, SharedInfo, VcpuInfo};
use crate::hypercall::event::{Sched, Timers, World};
use crate::hypercall::grant::GrantFrames;
use crate::hypercall::grant_map::ActiveGrants;
use crate::hypercall::{DomainInfo, FrameRefused, GrantPteOp, HcResult, Host};
use crate::mm::Mfn;
use crate::mm::device_frames::DeniedFrames;
use crate::mm::pv::GrantPte;
use crate::pv::guest_mem::is_canonical;
use crate::pv::vcpu::PvVcpu;
use crate::sched::CpuId;
use crate::sched::scheduler::{DEFAULT_SLICE_NS, vcpu as vcpu_ref};
use crate::x86::regs::Regs;
use core::sync::atomic::{AtomicU32, Ordering};
use guest_abi::memory::E820Entry;
use guest_abi::{DomId, Hypercall, XenError};
use std::collections::BTreeMap;

/// Frames one fake host may touch (grant tables, status frames, data frames).
const FRAME_POOL_FRAMES: usize = 256;

type Words = [AtomicU32; 1024];

std::thread_local! {
    /// The frames fake hosts on this thread hand out, made once per thread.
    static FRAME_POOL: Vec<&'static Words> = (0..FRAME_POOL_FRAMES)
        .map(|_| &*Box::leak(Box::new([const { AtomicU32::new(0) }; 1024])))
        .collect();
}

/// One domain (id 0, one vCPU) as event channels see it.
pub struct FakeDoms {
    /// Its event channels.
    pub channels: EventChannels<Vec<Channel>>,
    /// Its `shared_info`.
    pub shared: &'static SharedInfo,
}

impl Domains for FakeDoms {
    type Store = Vec<Channel>;
    type Shared = SharedInfo;

    fn events(&mut self, id: eabi::DomId) -> Option<DomainEvents<'_, Vec<Channel>, SharedInfo>> {
        (id == eabi::DomId(0)).then_some(DomainEvents {
            channels: &mut self.channels,
            shared: self.shared,
        })
    }
}

/// Records what handlers asked of the machine.
pub struct FakeHost {
    /// Console output, in order.
    pub console: Vec<u8>,
    /// Console input not read yet.
    pub input: Vec<u8>,
    /// Each `sync_mode`: the vCPU's mode (kernel or not) and active table.
    pub synced: Vec<(bool, Option<Mfn>)>,
    /// The FS base last loaded.
    pub fs_base: u64,
    /// The `CR0.TS` last set.
    pub fpu_trap: bool,
    /// The domain's `shared_info` and where its `vcpu_info`s are.
    pub shared: DomainShared,
    /// The domain as event channels see it.
    pub doms: FakeDoms,
    /// The scheduler, with the domain's vCPU on CPU 0.
    pub sched: Sched,
    /// The timers.
    pub timers: Timers,
    /// What `now_ns` answers.
    pub now: u64,
    /// `alloc_shared_frame` hands out the frame after this one (and counts on).
    pub next_shared_frame: u64,
    /// `preempt_check` answers yes every this many calls (0: never).
    pub preempt_every: u32,
    /// How many times `preempt_check` was asked.
    pub preempt_checks: u32,
    /// Where `register_vcpu_info` moves a `vcpu_info`: `None` leaks a fresh one for each call
    /// (for tests, which make few).
    pub moved_info: Option<&'static VcpuInfo>,
    /// `read_descriptor`'s GDT: the descriptor of the selector (RPL ignored), if any.
    pub descriptor: Option<(u16, u64)>,
    /// `mmu_hypercall` stands in for a long `mmu_update`, 10 requests a pass with a
    /// continuation for the rest; otherwise it answers `ENOSYS` to every MMU hypercall.
    pub mmu_update_stand_in: bool,
    /// Frames grant operations touch, as words (created zeroed on first use).
    pub frames: BTreeMap<u64, &'static [AtomicU32; 1024]>,
    /// The slots of this thread's frame pool that `frames` has used.
    pub next_slot: usize,
    /// Which domain owns which frame (`get_frame` refuses any other).
    pub owners: BTreeMap<u64, DomId>,
    /// Owned frames that refuse a writable type (page tables, descriptor tables).
    pub not_writable: Vec<u64>,
    /// References `get_frame` gave and `put_frame` has not taken back: (frame, writable).
    pub held: Vec<(u64, bool)>,
    /// Other domains and their grant tables.
    pub foreign: Vec<(DomId, GrantFrames, ActiveGrants)>,
    /// Shared frames the guest is taken to map (`shared_frame_unused` says no).
    pub mapped_shared: Vec<u64>,
    /// Shared frames given back, in order.
    pub freed_shared: Vec<u64>,
    /// Grant mappings' L1 entries: (where, the granter's frame, the entry).
    pub grant_ptes: Vec<(GrantPte, u64)>,
}

impl FakeHost {
    /// A frame `register_vcpu_info` refuses, as one that cannot take a writable type.
    pub const BAD_MFN: u64 = 0xbad;
    /// The descriptor [`FakeHost::new`] puts in its GDT: a data segment with base
    /// `0x1234_5000` at entry 5 (selector `0x2b`).
    pub const DATA_SELECTOR: u16 = 0x28;

    /// A machine whose domain's `shared_info` is `shared`: no console input, time 1 ms, the
    /// `DATA_SELECTOR` descriptor, no preemption, the `mmu_update` stand-in.
    pub fn new(shared: &'static SharedInfo) -> Self {
        let mut sched = Sched::new(DEFAULT_SLICE_NS);
        let me = vcpu_ref(eabi::DomId(0), eabi::VcpuId(0));
        sched.add_domain(me.domain).expect("room for a domain");
        sched.add_vcpu(me, CpuId(0), true).expect("room for a vCPU");
        let desc = crate::x86::descriptors::data(3) | (0x34_5000 << 16) | (0x12 << 56);
        Self {
            console: Vec::new(),
            input: Vec::new(),
            synced: Vec::new(),
            fs_base: 0,
            fpu_trap: false,
            shared: DomainShared::new(shared),
            doms: FakeDoms {
                channels: EventChannels::new(
                    vec![Channel::FREE; EventChannels::<Vec<Channel>>::storage_len(4095)],
                    1,
                    4095,
                )
                .expect("a valid port table"),
                shared,
            },
            sched,
            timers: Timers::new(),
            now: 1_000_000,
            next_shared_frame: 0x5000,
            preempt_every: 0,
            preempt_checks: 0,
            moved_info: None,
            descriptor: Some((Self::DATA_SELECTOR, desc)),
            mmu_update_stand_in: true,
            frames: BTreeMap::new(),
            next_slot: 0,
            owners: BTreeMap::new(),
            not_writable: Vec::new(),
            held: Vec::new(),
            foreign: Vec::new(),
            grant_ptes: Vec::new(),
            mapped_shared: Vec::new(),
            freed_shared: Vec::new(),
        }
    }

    /// Frame `frame`'s words, made zeroed on first use.
    pub fn frame(&mut self, frame: u64) -> &'static [AtomicU32; 1024] {
        if let Some(f) = self.frames.get(&frame) {
            return f;
        }
        // Frames come from a pool made once per thread (a fuzz target builds a host for every
        // run, and leaking a page each time would exhaust memory); a new host reuses it.
        let slot = self.next_slot;
        self.next_slot += 1;
        let words = FRAME_POOL.with(|pool| pool.get(slot).copied());
        let words = words.expect("a fake host touches at most FRAME_POOL_FRAMES frames");
        for w in words {
            w.store(0, Ordering::SeqCst);
        }
        self.frames.insert(frame, words);
        words
    }

    /// Byte `offset` of frame `frame`.
    pub fn byte(&mut self, frame: u64, offset: usize) -> u8 {
        let w = self.frame(frame)[offset / 4].load(Ordering::SeqCst);
        (w >> (8 * (offset % 4))) as u8
    }

    /// Sets byte `offset` of frame `frame`.
    pub fn set_byte(&mut self, frame: u64, offset: usize, value: u8) {
        let shift = 8 * (offset % 4);
        let w = &self.frame(frame)[offset / 4];
        let old = w.load(Ordering::SeqCst);
        w.store(
            (old & !(0xff << shift)) | (u32::from(value) << shift),
            Ordering::SeqCst,
        );
    }
}

impl Host for FakeHost {
    type Doms = FakeDoms;

    fn shared(&self) -> &DomainShared {
        &self.shared
    }
    fn register_vcpu_info(&mut self, vcpu: u32, mfn: u64, offset: u32) -> Result<(), XenError> {
        assert!(
            offset <= 4096 - 64 && offset.is_multiple_of(8),
            "offset {offset} passed the checks"
        );
        if mfn == Self::BAD_MFN {
            return Err(XenError::Inval);
        }
        let info = self.moved_info.unwrap_or_else(|| Box::leak(Box::default()));
        self.shared
            .relocate(eabi::VcpuId(vcpu), MovedVcpuInfo { mfn, info })
            .then_some(())
            .ok_or(XenError::Inval)
    }
    fn vcpu_is_up(&self, vcpu: u32) -> Option<bool> {
        self.sched
            .is_up(vcpu_ref(eabi::DomId(0), eabi::VcpuId(vcpu)))
    }
    fn read_descriptor(&self, _vcpu: &PvVcpu, selector: u16) -> Option<u64> {
        self.descriptor
            .and_then(|(sel, desc)| (selector & !3 == sel).then_some(desc))
    }
    fn alloc_shared_frame(&mut self, _dom: DomId) -> Option<u64> {
        self.next_shared_frame += 1;
        Some(self.next_shared_frame)
    }
    fn shared_frame_unused(&self, frame: u64) -> bool {
        !self.mapped_shared.contains(&frame)
    }
    fn free_shared_frame(&mut self, frame: u64) {
        self.freed_shared.push(frame);
    }
    fn m2p_frames(&self) -> (u64, u64) {
        (0x400, 0x300)
    }
    fn world(&mut self) -> World<'_, FakeDoms> {
        World {
            doms: &mut self.doms,
            sched: &mut self.sched,
            timers: &mut self.timers,
        }
    }
    fn console_write(&mut self, _domain: DomId, bytes: &[u8]) {
        assert!(
            bytes.len() <= 1 << 20,
            "console write of {} bytes",
            bytes.len()
        );
        self.console.extend_from_slice(bytes);
    }
    fn console_read(&mut self, _: crate::privilege::Privilege, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input.drain(..n);
        n
    }
    fn sync_mode(&mut self, vcpu: &PvVcpu) {
        assert!(
            is_canonical(vcpu.active_gs_base()),
            "GS base loaded non-canonical"
        );
        self.synced.push((vcpu.kernel_mode, vcpu.active_table()));
    }
    fn set_fs_base(&mut self, base: u64) {
        assert!(is_canonical(base), "FS base {base:#x}");
        self.fs_base = base;
    }
    fn set_fpu_trap(&mut self, ts: bool) {
        self.fpu_trap = ts;
    }
    fn max_mfn(&self) -> u64 {
        0x1_0000
    }
    fn machine_memory(&self) -> (&[E820Entry], DeniedFrames) {
        // QEMU's map for 512 MiB: low RAM, the BIOS area, RAM from 1 MiB, the BIOS ROM at 4 GiB.
        const MAP: [E820Entry; 4] = [
            E820Entry {
                addr: 0,
                size: 0x9fc00,
                type_: 1,
            },
            E820Entry {
                addr: 0x9fc00,
                size: 0x400,
                type_: 2,
            },
            E820Entry {
                addr: 0x10_0000,
                size: 0x1ff0_0000,
                type_: 1,
            },
            E820Entry {
                addr: 0xfffc_0000,
                size: 0x4_0000,
                type_: 2,
            },
        ];
        (&MAP, DeniedFrames::new(None, 1 << 28))
    }
    fn now_ns(&self) -> u64 {
        self.now
    }
    fn preempt_check(&mut self) -> bool {
        self.preempt_checks += 1;
        self.preempt_every != 0 && self.preempt_checks.is_multiple_of(self.preempt_every)
    }
    fn mmu_hypercall(
        &mut self,
        nr: Hypercall,
        args: &mut [u64; 5],
        _: &mut PvVcpu,
        _: &mut DomainInfo,
    ) -> HcResult {
        if !self.mmu_update_stand_in || nr != Hypercall::MmuUpdate {
            return Err(XenError::NoSys);
        }
        // A stand-in for a long mmu_update: does 10 requests per pass, continued as the real
        // one is (the done count, in memory this fake has not got, is left alone).
        let mut no_memory = crate::pv::guest_mem::fake::FakeGuest::default();
        let pass = crate::hypercall::batch::plan(&mut no_memory, args[1], args[2], 10);
        crate::hypercall::batch::finish(&mut no_memory, args, pass, pass.len as u32, Ok(()), 16)
    }
    fn foreign_grant_table(&mut self, dom: DomId) -> Option<(&GrantFrames, &mut ActiveGrants)> {
        self.foreign
            .iter_mut()
            .find(|(d, _, _)| *d == dom)
            .map(|(_, g, a)| (&*g, a))
    }
    fn grant_pte(&mut self, _: &PvVcpu, at: GrantPte, op: GrantPteOp) -> Result<(), FrameRefused> {
        // Addresses from 0x1000_0000 up stand for "no L1 table there".
        let addr = match at {
            GrantPte::Va(a) | GrantPte::Machine(a) => a,
        };
        if addr >= 0x1000_0000 {
            return Err(FrameRefused::NotWritable);
        }
        match op {
            GrantPteOp::Map { granter, pte } => {
                let frame = (pte & 0x000f_ffff_ffff_f000) >> 12;
                self.get_frame(granter, frame, pte & 2 != 0)?;
                if let Some(i) = self.grant_ptes.iter().position(|(a, _)| *a == at) {
                    let (_, old) = self.grant_ptes.remove(i);
                    self.put_frame((old & 0x000f_ffff_ffff_f000) >> 12, old & 2 != 0);
                }
                self.grant_ptes.push((at, pte));
                Ok(())
            }
            GrantPteOp::Unmap { pte, new_va } => {
                if new_va.is_some() && matches!(at, GrantPte::Machine(_)) {
                    return Err(FrameRefused::NotWritable);
                }
                let i = self
                    .grant_ptes
                    .iter()
                    .position(|&(a, p)| a == at && (p ^ pte) & 0x000f_ffff_ffff_f003 == 0)
                    .ok_or(FrameRefused::NotWritable)?;
                self.grant_ptes.remove(i);
                self.put_frame((pte & 0x000f_ffff_ffff_f000) >> 12, pte & 2 != 0);
                Ok(())
            }
        }
    }
    fn grant_word(&mut self, frame: u64, offset: usize) -> Option<&'static AtomicU32> {
        assert!(
            offset.is_multiple_of(4) && offset < 4096,
            "word offset {offset}"
        );
        Some(&self.frame(frame)[offset / 4])
    }
    fn get_frame(&mut self, owner: DomId, mfn: u64, writable: bool) -> Result<(), FrameRefused> {
        if self.owners.get(&mfn) != Some(&owner) {
            return Err(FrameRefused::NotOwned);
        }
        if writable && self.not_writable.contains(&mfn) {
            return Err(FrameRefused::NotWritable);
        }
        self.held.push((mfn, writable));
        Ok(())
    }
    fn put_frame(&mut self, mfn: u64, writable: bool) {
        let i = self
            .held
            .iter()
            .position(|&h| h == (mfn, writable))
            .expect("put_frame of a frame get_frame gave");
        self.held.remove(i);
    }
    fn copy_frame_bytes(&mut self, dst: (u64, u16), src: (u64, u16), len: u16) {
        assert!(
            usize::from(dst.1) + usize::from(len) <= 4096
                && usize::from(src.1) + usize::from(len) <= 4096,
            "copy ranges passed the checks"
        );
        assert!(
            self.held.contains(&(dst.0, true)) && self.held.iter().any(|h| h.0 == src.0),
            "copy between frames not held"
        );
        let bytes: Vec<u8> = (0..usize::from(len))
            .map(|i| self.byte(src.0, usize::from(src.1) + i))
            .collect();
        for (i, b) in bytes.into_iter().enumerate() {
            self.set_byte(dst.0, usize::from(dst.1) + i, b);
        }
    }
}

/// The domain the fakes stand for: dom0 (privileged if asked), 1024 of 2048 pages, one vCPU.
pub fn domain_info(privileged: bool) -> DomainInfo {
    DomainInfo {
        id: DomId(0),
        privilege: privileged.then(crate::privilege::Privilege::hardware_domain),
        tot_pages: 1024,
        max_pages: 2048,
        nr_vcpus: 1,
        vm_assist: 0,
        handle: [0; 16],
        grant_frames: Default::default(),
        grant_active: Default::default(),
        maptrack: Default::default(),
    }
}

/// A guest's registers on entry: ring-3 flat code and stack selectors, everything else zero.
pub fn guest_regs() -> Regs {
    Regs {
        cs: 0xe033,
        ss: 0xe02b,
        ..Regs::default()
    }
}
