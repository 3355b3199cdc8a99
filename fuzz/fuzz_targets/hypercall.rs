//! The hypercall dispatcher (`hypervisor::hypercall::handle`) with every handler but the PV MMU
//! (fuzzed by `pv_mmu`; here `mmu_hypercall` answers ENOSYS), over the hypervisor's fake machine
//! (`hypervisor::testing::host`, the one its unit tests use) with one domain and a 16 KiB window
//! of guest memory filled by the fuzzer. Arguments are raw words or pointers into the window,
//! the hypervisor range, non-canonical space or unmapped memory; multicalls read their entries
//! from the window (so they nest, overlap and point into themselves). After every call: the
//! result is a value or a Xen errno, and no state the guest set names the hypervisor (trap
//! handlers, callbacks, breakpoints, segment bases), the IOPL is at most 3, and an `iret` that
//! succeeded returns to ring 3 at a canonical address; the fake host checks what reaches it
//! (canonical segment bases, a valid `vcpu_info` offset, console writes of at most 1 MiB).
//! A `domctl`, `sysctl` or remote shutdown the dispatcher leaves to the machine goes through
//! the admission checks (`hypercall::admission`) with its request read from the window: only
//! the privileged domain, and only Xen 4.17's interface versions, are admitted.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use fuzz::Window;
use guest_abi::{DomId, Hypercall};
use guest_abi::domctl::{XEN_DOMCTL_INTERFACE_VERSION, XenDomctl};
use guest_abi::sched::SchedRemoteShutdown;
use guest_abi::sysctl::{XEN_SYSCTL_INTERFACE_VERSION, XenSysctl};
use hypervisor::event::shared::{SharedInfo, VcpuInfo};
use hypervisor::hypercall::{Action, Ctx, DomainInfo, MachineCall, admission, handle};
use hypervisor::pv::guest_mem::{GuestMemory, check_guest_range, is_canonical};
use hypervisor::pv::vcpu::PvVcpu;
use hypervisor::testing::host::{FakeHost, domain_info, guest_regs};
use libfuzzer_sys::fuzz_target;

const WINDOW: u64 = 0x1000;
const WINDOW_LEN: usize = 0x4000;

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
    let moved_box = Box::into_raw(Box::new(VcpuInfo::default()));
    let mut host = FakeHost {
        input: b"console input".to_vec(),
        // Every third `preempt_check` asks for a continuation.
        preempt_every: 3,
        // Where `VCPUOP_register_vcpu_info` moves vCPU 0's `vcpu_info` (freed with the run).
        // SAFETY: freed at the end of this run, after everything that borrows it is dropped.
        moved_info: Some(unsafe { &*moved_box }),
        // No descriptor tables: every selector is unloadable.
        descriptor: None,
        // The PV MMU is fuzzed by `pv_mmu`: here every MMU hypercall answers ENOSYS.
        mmu_update_stand_in: false,
        ..FakeHost::new(shared)
    };
    // A granting domain 7 whose one table frame holds the first bytes of guest memory as
    // entries, over frames 0x10..0x20 it owns (0x12 a page table); dom0 owns 0x20..0x30.
    let mut grants = hypervisor::hypercall::grant::GrantFrames::default();
    let _ = grants.push(0x200);
    host.foreign.push((DomId(7), grants, Default::default()));
    for f in 0x10..0x20 {
        host.owners.insert(f, DomId(7));
    }
    for f in 0x20..0x30 {
        host.owners.insert(f, DomId(0));
    }
    host.not_writable.push(0x12);
    let mut bytes = input.memory;
    bytes.resize(WINDOW_LEN, 0);
    for (i, chunk) in bytes.chunks(4).take(256).enumerate() {
        let word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        host.frame(0x200)[i].store(word, core::sync::atomic::Ordering::SeqCst);
    }
    let mut mem = Window {
        base: WINDOW,
        bytes,
    };
    let mut vcpu = PvVcpu {
        kernel_mode: input.kernel_mode,
        ..PvVcpu::default()
    };
    let mut domain = domain_info(input.privileged);
    let mut regs = guest_regs();
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
        // Every frame reference a grant operation took belongs to a live mapping: an L1
        // entry the fake holds, or a device mapping in the maptrack.
        let devices = domain
            .maptrack
            .iter()
            .filter(|m| m.frame_reference().is_some())
            .count();
        assert_eq!(
            host.held.len(),
            host.grant_ptes.len() + devices,
            "frame references not given back"
        );
        if let Action::Machine { call, .. } = action {
            admit(&domain, call, &mut mem);
        }
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

/// A call across domains the dispatcher left to the machine: its request, read as the machine
/// would, goes through the admission checks, which admit only the privileged domain, and for
/// `domctl` and `sysctl` only the interface version Xen 4.17 speaks. A `vcpu_op` left to the
/// machine names one of the caller's own vCPUs.
fn admit(domain: &DomainInfo, call: MachineCall, mem: &mut Window) {
    let exists = |d: u16| d == 0 || d == 1;
    let admitted = match call {
        MachineCall::Domctl(arg) => {
            let Ok(op) = mem.read_obj::<XenDomctl>(arg) else {
                return;
            };
            let r = admission::domctl(domain, op.interface_version, op.cmd, op.domain, exists);
            assert!(r.is_err() || op.interface_version == XEN_DOMCTL_INTERFACE_VERSION);
            r.is_ok()
        }
        MachineCall::Sysctl(arg) => {
            let Ok(op) = mem.read_obj::<XenSysctl>(arg) else {
                return;
            };
            let r = admission::sysctl(domain, op.interface_version, op.cmd);
            assert!(r.is_err() || op.interface_version == XEN_SYSCTL_INTERFACE_VERSION);
            r.is_ok()
        }
        MachineCall::RemoteShutdown(arg) => {
            let Ok(req) = mem.read_obj::<SchedRemoteShutdown>(arg) else {
                return;
            };
            admission::remote_shutdown(domain, req.domain_id, exists).is_ok()
        }
        // A vCPU of the caller's own domain, which the dispatcher checked it has: no admission.
        MachineCall::VcpuOp { vcpu, .. } => {
            assert!(vcpu < domain.nr_vcpus, "vcpu_op on vCPU {vcpu} left to the machine");
            return;
        }
    };
    assert!(
        !admitted || domain.privilege.is_some(),
        "an unprivileged call admitted"
    );
}

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
