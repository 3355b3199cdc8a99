//! A fake machine and guest for host tests of the hypercall handlers.

use super::{Action, Ctx, DomainInfo, HcResult, Host};
use crate::event::abi as eabi;
use crate::event::channel::{Channel, EventChannels};
use crate::event::ops::{DomainEvents, Domains};
use crate::event::shared::{DomainShared, MovedVcpuInfo, SharedInfo, VcpuInfo};
use crate::hypercall::event::{Sched, Timers, World};
use crate::pv::guest_mem::GuestMemory;
use crate::pv::guest_mem::fake::FakeGuest;
use crate::pv::vcpu::PvVcpu;
use crate::x86::regs::Regs;
use guest_abi::{DomId, Hypercall, XenError};
use std::vec;
use std::vec::Vec;

/// Records what handlers asked of the machine.
pub struct FakeHost {
    pub console: Vec<u8>,
    pub input: Vec<u8>,
    pub synced: Vec<(bool, Option<crate::mm::Mfn>)>,
    pub fs_base: u64,
    pub fpu_trap: bool,
    pub shared: DomainShared,
    pub doms: FakeDoms,
    pub sched: Sched,
    pub timers: Timers,
    pub now: u64,
    pub next_shared_frame: u64,
    /// `preempt_check` answers yes every this many calls (0: never).
    pub preempt_every: u32,
    /// How many times `preempt_check` was asked.
    pub preempt_checks: u32,
}

/// One domain (id 0, one vCPU) as event channels see it.
pub struct FakeDoms {
    pub channels: EventChannels<Vec<Channel>>,
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

    fn controller_paused(&self, _: eabi::DomId) -> bool {
        false
    }
}

impl Host for FakeHost {
    type Doms = FakeDoms;

    fn shared(&self) -> &DomainShared {
        &self.shared
    }
    fn register_vcpu_info(&mut self, vcpu: u32, mfn: u64, _offset: u32) -> Result<(), XenError> {
        if mfn == Self::BAD_MFN {
            return Err(XenError::Inval);
        }
        let info: &'static VcpuInfo = std::boxed::Box::leak(std::boxed::Box::default());
        self.shared
            .relocate(eabi::VcpuId(vcpu), MovedVcpuInfo { mfn, info })
            .then_some(())
            .ok_or(XenError::Inval)
    }
    fn read_descriptor(&self, _vcpu: &PvVcpu, selector: u16) -> Option<u64> {
        // One data segment with base 0x1234_5000 at GDT entry 5 (selector 0x2b).
        let desc = crate::x86::descriptors::data(3) | (0x34_5000 << 16) | (0x12 << 56);
        (selector & !3 == 0x28).then_some(desc)
    }
    fn alloc_shared_frame(&mut self, _dom: DomId) -> Option<u64> {
        self.next_shared_frame += 1;
        Some(self.next_shared_frame)
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
        self.console.extend_from_slice(bytes);
    }
    fn console_read(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input.drain(..n);
        n
    }
    fn sync_mode(&mut self, vcpu: &PvVcpu) {
        self.synced.push((vcpu.kernel_mode, vcpu.active_table()));
    }
    fn set_fs_base(&mut self, base: u64) {
        self.fs_base = base;
    }
    fn set_fpu_trap(&mut self, ts: bool) {
        self.fpu_trap = ts;
    }
    fn max_mfn(&self) -> u64 {
        0x1_0000
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
        _: &mut super::DomainInfo,
    ) -> HcResult {
        // A stand-in for a long mmu_update: does 10 requests per pass.
        if nr != Hypercall::MmuUpdate {
            return Err(guest_abi::XenError::NoSys);
        }
        let count = args[1] & 0x7fff_ffff;
        if count > 10 {
            args[0] += 10 * 16;
            args[1] = (count - 10) | 0x8000_0000;
            return Err(guest_abi::XenError::Restart);
        }
        Ok(0)
    }
}

impl FakeHost {
    /// A frame `register_vcpu_info` refuses, as one that cannot take a writable type.
    pub const BAD_MFN: u64 = 0xbad;
}

/// Guest memory with helpers that map what they touch.
pub struct Mem(pub FakeGuest);

impl Mem {
    pub fn write_bytes(&mut self, va: u64, bytes: &[u8]) {
        self.0.map(va, bytes.len() as u64);
        self.0.write(va, bytes).unwrap();
    }
    pub fn read_bytes(&mut self, va: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.0.read(va, &mut v).unwrap();
        v
    }
}

impl GuestMemory for Mem {
    fn read(&mut self, va: u64, buf: &mut [u8]) -> Result<(), crate::pv::guest_mem::GuestFault> {
        self.0.read(va, buf)
    }
    fn write(&mut self, va: u64, buf: &[u8]) -> Result<(), crate::pv::guest_mem::GuestFault> {
        self.0.write(va, buf)
    }
}

/// One vCPU of one domain, with a mapped scratch area at 0x1000..0x9000.
pub struct Fixture {
    pub regs: Regs,
    pub vcpu: PvVcpu,
    pub domain: DomainInfo,
    pub mem: Mem,
    pub host: FakeHost,
    pub action: Action,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    pub fn new() -> Self {
        let shared: &'static SharedInfo =
            std::boxed::Box::leak(std::boxed::Box::new(SharedInfo::new()));
        let mut sched = Sched::new(crate::sched::scheduler::DEFAULT_SLICE_NS);
        let me = crate::sched::scheduler::vcpu(eabi::DomId(0), eabi::VcpuId(0));
        sched.add_domain(me.domain).expect("room for a domain");
        sched
            .add_vcpu(me, crate::sched::CpuId(0), true)
            .expect("room for a vCPU");
        let mut mem = Mem(FakeGuest::default());
        mem.0.map(0x1000, 0x8000);
        Self {
            regs: Regs {
                cs: 0xe033,
                ss: 0xe02b,
                rsp: 0x8000,
                ..Regs::default()
            },
            vcpu: PvVcpu::default(),
            domain: DomainInfo {
                id: DomId(0),
                privileged: true,
                tot_pages: 1024,
                max_pages: 2048,
                nr_vcpus: 1,
                vm_assist: 0,
                handle: [0; 16],
                grant_frames: Default::default(),
            },
            mem,
            host: FakeHost {
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
            },
            action: Action::Resume,
        }
    }
}

/// Runs hypercall `nr` with `args` through the real register path and returns its result.
pub fn call(f: &mut Fixture, nr: Hypercall, args: [u64; 5]) -> HcResult {
    f.regs.rax = u64::from(nr.raw());
    [f.regs.rdi, f.regs.rsi, f.regs.rdx, f.regs.r10, f.regs.r8] = args;
    let mut ctx = Ctx {
        regs: &mut f.regs,
        vcpu: &mut f.vcpu,
        vcpu_id: 0,
        domain: &mut f.domain,
        mem: &mut f.mem,
        host: &mut f.host,
        action: Action::Resume,
        regs_loaded: false,
    };
    super::handle(&mut ctx);
    f.action = ctx.action;
    let rax = f.regs.rax as i64;
    if (-4095..0).contains(&rax) {
        let e = i32::try_from(-rax)
            .ok()
            .and_then(guest_abi::XenError::from_raw);
        Err(e.expect("a Xen errno"))
    } else {
        Ok(rax as u64)
    }
}
