//! The hypercall dispatcher (`hypervisor::hypercall::handle`) with every handler but the PV MMU
//! (fuzzed by `pv_mmu`; here `mmu_hypercall` answers ENOSYS), over a fake machine with one
//! domain and a 16 KiB window of guest memory filled by the fuzzer. Arguments are raw words or
//! pointers into the window, the hypervisor range, non-canonical space or unmapped memory;
//! multicalls read their entries from the window (so they nest, overlap and point into
//! themselves). After every call: the result is a value or a Xen errno, and no state the guest
//! set names the hypervisor (trap handlers, callbacks, breakpoints, segment bases), the IOPL is
//! at most 3, and an `iret` that succeeded returns to ring 3 at a canonical address.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use fuzz::Window;
use guest_abi::{DomId, Hypercall};
use hypervisor::event::abi as eabi;
use hypervisor::event::channel::{Channel, EventChannels};
use hypervisor::event::ops::{DomainEvents, Domains};
use hypervisor::event::shared::{DomainShared, MovedVcpuInfo, SharedInfo, VcpuInfo};
use hypervisor::hypercall::event::{Sched, Timers, World};
use hypervisor::hypercall::{Action, Ctx, DomainInfo, HcResult, Host, handle};
use hypervisor::pv::guest_mem::{check_guest_range, is_canonical};
use hypervisor::pv::vcpu::PvVcpu;
use hypervisor::x86::regs::Regs;
use hypervisor::sched::CpuId;
use hypervisor::sched::scheduler::{DEFAULT_SLICE_NS, vcpu as vcpu_ref};
use libfuzzer_sys::fuzz_target;

const WINDOW: u64 = 0x1000;
const WINDOW_LEN: usize = 0x4000;

struct Doms {
    channels: EventChannels<Vec<Channel>>,
    shared: &'static SharedInfo,
}

impl Domains for Doms {
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

struct FakeHost {
    shared: DomainShared,
    /// Where `VCPUOP_register_vcpu_info` moves vCPU 0's `vcpu_info` (freed with the run).
    moved: &'static VcpuInfo,
    next_frame: u64,
    /// Counts `preempt_check` calls: every third one asks for a continuation.
    preempt_checks: u32,
    doms: Doms,
    sched: Sched,
    timers: Timers,
    input: Vec<u8>,
}

impl Host for FakeHost {
    type Doms = Doms;

    fn console_write(&mut self, _: DomId, bytes: &[u8]) {
        assert!(bytes.len() <= 1 << 20);
    }
    fn console_read(&mut self, buf: &mut [u8]) -> usize {
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
    }
    fn set_fs_base(&mut self, base: u64) {
        assert!(is_canonical(base), "FS base {base:#x}");
    }
    fn set_fpu_trap(&mut self, _: bool) {}
    fn shared(&self) -> &DomainShared {
        &self.shared
    }
    fn register_vcpu_info(
        &mut self,
        vcpu: u32,
        mfn: u64,
        offset: u32,
    ) -> Result<(), guest_abi::XenError> {
        assert!(
            offset <= 4096 - 64 && offset % 8 == 0,
            "offset {offset} passed the checks"
        );
        let moved = MovedVcpuInfo {
            mfn,
            info: self.moved,
        };
        self.shared
            .relocate(eabi::VcpuId(vcpu), moved)
            .then_some(())
            .ok_or(guest_abi::XenError::Inval)
    }
    fn read_descriptor(&self, _: &PvVcpu, _: u16) -> Option<u64> {
        None
    }
    fn alloc_shared_frame(&mut self, _: DomId) -> Option<u64> {
        self.next_frame += 1;
        Some(self.next_frame)
    }
    fn m2p_frames(&self) -> (u64, u64) {
        (0x400, 0x300)
    }
    fn world(&mut self) -> World<'_, Doms> {
        World {
            doms: &mut self.doms,
            sched: &mut self.sched,
            timers: &mut self.timers,
        }
    }
    fn max_mfn(&self) -> u64 {
        0x1_0000
    }
    fn now_ns(&self) -> u64 {
        1_000_000
    }
    fn preempt_check(&mut self) -> bool {
        self.preempt_checks += 1;
        self.preempt_checks.is_multiple_of(3)
    }
    fn mmu_hypercall(
        &mut self,
        _: Hypercall,
        _: &mut [u64; 5],
        _: &mut PvVcpu,
        _: &mut DomainInfo,
    ) -> HcResult {
        Err(guest_abi::XenError::NoSys)
    }
}

/// One argument word.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Arg {
    /// A small number.
    Small(u8),
    /// A pointer into the window.
    Window(u16),
    /// A pointer into the hypervisor's range.
    Hypervisor(u32),
    /// A non-canonical pointer.
    NonCanonical(u32),
    /// Anything.
    Raw(u64),
}

impl Arg {
    fn word(self) -> u64 {
        match self {
            Arg::Small(n) => u64::from(n),
            Arg::Window(off) => WINDOW + u64::from(off) % WINDOW_LEN as u64,
            Arg::Hypervisor(off) => 0xffff_8000_0000_0000 + u64::from(off),
            Arg::NonCanonical(off) => 0x0000_8000_0000_0000 + u64::from(off),
            Arg::Raw(v) => v,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Call {
    nr: u8,
    args: [Arg; 5],
    rsp: Arg,
}

#[derive(Arbitrary, Debug)]
struct Input {
    privileged: bool,
    kernel_mode: bool,
    memory: Vec<u8>,
    calls: Vec<Call>,
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = Input::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let shared_box = Box::into_raw(Box::new(SharedInfo::new()));
    // SAFETY: freed at the end of this run, after everything that borrows it is dropped.
    let shared: &'static SharedInfo = unsafe { &*shared_box };
    let mut sched = Sched::new(DEFAULT_SLICE_NS);
    let me = vcpu_ref(eabi::DomId(0), eabi::VcpuId(0));
    sched.add_domain(me.domain).expect("room for a domain");
    sched.add_vcpu(me, CpuId(0), true).expect("room for a vCPU");
    let moved_box = Box::into_raw(Box::new(VcpuInfo::default()));
    let mut host = FakeHost {
        shared: DomainShared::new(shared),
        // SAFETY: freed at the end of this run, after everything that borrows it is dropped.
        moved: unsafe { &*moved_box },
        next_frame: 0x5000,
        preempt_checks: 0,
        doms: Doms {
            channels: EventChannels::new(
                vec![Channel::FREE; EventChannels::<Vec<Channel>>::storage_len(4095)],
                1,
                4095,
            )
            .expect("a port table"),
            shared,
        },
        sched,
        timers: Timers::new(),
        input: b"console input".to_vec(),
    };
    let mut bytes = input.memory;
    bytes.resize(WINDOW_LEN, 0);
    let mut mem = Window {
        base: WINDOW,
        bytes,
    };
    let mut vcpu = PvVcpu {
        kernel_mode: input.kernel_mode,
        ..PvVcpu::default()
    };
    let mut domain = DomainInfo {
        id: DomId(0),
        privileged: input.privileged,
        tot_pages: 1024,
        max_pages: 2048,
        nr_vcpus: 1,
        vm_assist: 0,
        handle: [0; 16],
        grant_frames: Default::default(),
    };
    let mut regs = Regs {
        cs: 0xe033,
        ss: 0xe02b,
        ..Regs::default()
    };
    for call in input.calls.iter().take(16) {
        let [a0, a1, a2, a3, a4] = call.args.map(Arg::word);
        regs.rax = u64::from(call.nr % 48);
        (regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8) = (a0, a1, a2, a3, a4);
        regs.rsp = call.rsp.word();
        let mut ctx = Ctx {
            regs: &mut regs,
            vcpu: &mut vcpu,
            vcpu_id: 0,
            domain: &mut domain,
            mem: &mut mem,
            host: &mut host,
            action: Action::Resume,
            regs_loaded: false,
        };
        handle(&mut ctx);
        let (action, loaded) = (ctx.action, ctx.regs_loaded);
        // get_debugreg returns a register's value, which may look negative (Xen's ABI).
        if !loaded && call.nr % 48 != Hypercall::GetDebugreg.raw() as u8 {
            let rax = regs.rax as i64;
            assert!(rax >= -4095, "result {rax} is neither a value nor an errno");
        } else if action == Action::Resume {
            assert_eq!(regs.cs & 3, 3, "iret to ring {}", regs.cs & 3);
            assert_eq!(regs.ss & 3, 3, "iret with stack RPL {}", regs.ss & 3);
            assert!(is_canonical(regs.rip), "iret to {:#x}", regs.rip);
            assert_eq!(regs.rflags & (3 << 12), 0, "iret set the real IOPL");
        }
        check_vcpu(&vcpu);
        if let Action::Shutdown(_) | Action::Crash(_) = action {
            break;
        }
    }
    drop(host);
    // SAFETY: allocated above; `host` (the only holder of `shared` and `moved`) is gone.
    drop(unsafe { Box::from_raw(shared_box) });
    // SAFETY: as above.
    drop(unsafe { Box::from_raw(moved_box) });
});

/// Nothing the guest registers may name the hypervisor.
fn check_vcpu(v: &PvVcpu) {
    let code_ok = |a: u64| a == 0 || check_guest_range(a, 1).is_ok();
    for t in v.traps.iter() {
        assert!(code_ok(t.address), "trap handler at {:#x}", t.address);
    }
    for cb in [
        v.event_callback,
        v.failsafe_callback,
        v.syscall_callback,
        v.syscall32_callback,
        v.sysenter_callback,
        v.nmi_callback,
    ] {
        assert!(code_ok(cb.address), "callback at {:#x}", cb.address);
    }
    for (i, &dr) in v.debugreg[..4].iter().enumerate() {
        assert!(
            check_guest_range(dr, 8).is_ok() || dr == 0,
            "DR{i} = {dr:#x}"
        );
    }
    for base in [v.fs_base, v.gs_base_kernel, v.gs_base_user] {
        assert!(is_canonical(base), "segment base {base:#x}");
    }
    assert!(v.iopl <= 3);
    assert!(
        v.kernel_ss == 0 || v.kernel_ss & 3 == 3,
        "kernel stack selector {:#x}",
        v.kernel_ss
    );
}
