//! `hypercall.*`: each hypercall and sub-op a PV kernel uses at boot, with the answers
//! Xen 4.17 gives (including its errors for unknown sub-ops and bad arguments).

use guest_abi::arch::{
    FLAT_KERNEL_SS, HYPERVISOR_VIRT_START, MACH2PHYS_VIRT_START, SEGBASE_FS, SEGBASE_GS_KERNEL,
    SEGBASE_GS_USER,
};
use guest_abi::callback::{CALLBACKF_MASK_EVENTS, CallbackRegister, CallbackType};
use guest_abi::hypercall::Hypercall;
use guest_abi::memory::{E820Entry, MemoryOp, XenMachphysMapping, XenMemoryMap};
use guest_abi::runtime::AsmCell;
use guest_abi::runtime::hypercall::{self, call, raw_nr};
use guest_abi::vcpu::{Runstate, VcpuOp, VcpuRunstateInfo};
use guest_abi::version::{XenCompileInfo, XenPlatformParameters, XenVersionOp};
use guest_abi::xen::{StartInfo, VmAssistCmd, VmAssistType};
use guest_abi::{DomId, VcpuId, XenError, XenFeature, println};

use crate::check::{Report, c_str, ensure, eq, ok, refused};
use crate::traps::Entry;

/// The stack the hypervisor switches to for traps and syscalls from user mode.
#[repr(C, align(16))]
struct KernelStack([u8; 16384]);

static KERNEL_STACK: AsmCell<KernelStack> = AsmCell::new(KernelStack([0; 16384]));

/// The top of [`KERNEL_STACK`], what `stack_switch` installs.
pub fn kernel_stack_top() -> u64 {
    KERNEL_STACK.addr() + size_of::<KernelStack>() as u64
}

/// Values the segment-base checks read back through `fs:` and `gs:`.
pub static FS_DATA: AsmCell<[u64; 2]> = AsmCell::new([0x4653_4241_5345_3031, 0x4653_2d32]);
/// See [`FS_DATA`]: the kernel GS base points here.
pub static GS_KERNEL_DATA: AsmCell<u64> = AsmCell::new(0x4b45_524e_454c_4753);
/// See [`FS_DATA`]: the user GS base points here.
pub static GS_USER_DATA: AsmCell<u64> = AsmCell::new(0x5553_4552_5f47_5321);

/// `VMASST_TYPE_*` 6 is not defined (nor valid for any guest).
const BAD_VMASST_TYPE: u64 = 6;

pub fn run(r: &mut Report, si: &StartInfo) {
    console(r);
    version(r);
    sched(r);
    callbacks(r);
    r.check_eq(
        "hypercall.stack_switch",
        // SAFETY: the stack is ours, static and unused by anything else.
        unsafe { hypercall::stack_switch(FLAT_KERNEL_SS, kernel_stack_top()) },
        Ok(0),
    );
    r.check_eq(
        "hypercall.fpu_taskswitch",
        hypercall::fpu_taskswitch(true).and(hypercall::fpu_taskswitch(false)),
        Ok(0),
    );
    segment_bases(r);
    debugregs(r);
    physdev(r);
    vm_assist(r);
    vcpu(r);
    memory(r, si);
    unknown(r);
}

fn console(r: &mut Report) {
    r.check_eq(
        "hypercall.console_io write",
        hypercall::console_write(b"selftest: console_io write\n"),
        Ok(0),
    );
    let mut buf = [0u8; 16];
    let read = hypercall::console_read(&mut buf);
    r.check(
        "hypercall.console_io read (dom0)",
        ok("CONSOLEIO_read", read).and_then(|n| ensure(n <= 16, "read more than asked")),
    );
    // SAFETY: an unknown command; Xen reads no memory for it.
    unsafe {
        refused(
            r,
            "hypercall.console_io unknown cmd",
            Hypercall::ConsoleIo,
            [2, 0, 0, 0, 0],
            XenError::NoSys,
        )
    };
}

fn version(r: &mut Report) {
    r.check_eq(
        "hypercall.xen_version version",
        hypercall::xen_version(),
        Ok((4, 17)),
    );

    let mut extra = [0u8; 16];
    let res = hypercall::xen_version_string(XenVersionOp::Extraversion, &mut extra);
    println!("selftest: extraversion \"{}\"", c_str(&extra));
    r.check(
        "hypercall.xen_version extraversion",
        ok("XENVER_extraversion", res)
            .and_then(|_| ensure(extra.contains(&0), "not NUL-terminated")),
    );

    let mut info = XenCompileInfo {
        compiler: [0; 64],
        compile_by: [0; 16],
        compile_domain: [0; 32],
        compile_date: [0; 32],
    };
    // SAFETY: XENVER_compile_info writes one xen_compile_info, which `info` is.
    let res = unsafe {
        call(
            Hypercall::XenVersion,
            [
                XenVersionOp::CompileInfo as u64,
                &raw mut info as u64,
                0,
                0,
                0,
            ],
        )
    };
    println!("selftest: compiler \"{}\"", c_str(&info.compiler));
    r.check(
        "hypercall.xen_version compile_info",
        ok("XENVER_compile_info", res)
            .and_then(|_| ensure(info.compiler[0] != 0, "empty compiler string")),
    );

    let mut caps = [0u8; 1024];
    let res = hypercall::xen_version_string(XenVersionOp::Capabilities, &mut caps);
    println!("selftest: capabilities \"{}\"", c_str(&caps));
    r.check(
        "hypercall.xen_version capabilities",
        ok("XENVER_capabilities", res).and_then(|_| {
            ensure(
                c_str(&caps).split(' ').any(|c| c == "xen-3.0-x86_64"),
                "no xen-3.0-x86_64",
            )
        }),
    );

    let mut changeset = [0u8; 64];
    let res = hypercall::xen_version_string(XenVersionOp::Changeset, &mut changeset);
    println!("selftest: changeset \"{}\"", c_str(&changeset));
    // Debian's build has an empty changeset: only the call and the NUL are checked.
    r.check(
        "hypercall.xen_version changeset",
        ok("XENVER_changeset", res)
            .and_then(|_| ensure(changeset.contains(&0), "not NUL-terminated")),
    );

    let mut params = XenPlatformParameters::default();
    // SAFETY: XENVER_platform_parameters writes one xen_platform_parameters.
    let res = unsafe {
        call(
            Hypercall::XenVersion,
            [
                XenVersionOp::PlatformParameters as u64,
                &raw mut params as u64,
                0,
                0,
                0,
            ],
        )
    };
    r.check(
        "hypercall.xen_version platform_parameters",
        ok("XENVER_platform_parameters", res)
            .and_then(|_| eq("virt_start", params.virt_start, HYPERVISOR_VIRT_START)),
    );

    let features = hypercall::xen_features(0);
    let want = XenFeature::MmuPtUpdatePreserveAd.bit()
        | XenFeature::GnttabMapAvailBits.bit()
        | XenFeature::Dom0.bit();
    r.check(
        "hypercall.xen_version get_features submap 0",
        ok("XENVER_get_features", features.map(u64::from)).and_then(|bits| {
            eq(
                "preserve_ad|avail_bits|dom0",
                bits & u64::from(want),
                want.into(),
            )
        }),
    );
    r.check_eq(
        "hypercall.xen_version get_features submap 1",
        hypercall::xen_features(1),
        Err(XenError::Inval),
    );

    // SAFETY: XENVER_pagesize takes no buffer.
    let res = unsafe {
        call(
            Hypercall::XenVersion,
            [XenVersionOp::Pagesize as u64, 0, 0, 0, 0],
        )
    };
    r.check_eq("hypercall.xen_version pagesize", res, Ok(4096));

    let mut handle = [0xffu8; 16];
    let res = hypercall::xen_version_string(XenVersionOp::GuestHandle, &mut handle);
    r.check(
        "hypercall.xen_version guest_handle",
        ok("XENVER_guest_handle", res)
            .and_then(|_| ensure(handle == [0; 16], "dom0's handle is not all zeros")),
    );

    // SAFETY: an unknown sub-op; Xen reads no memory for it.
    unsafe {
        refused(
            r,
            "hypercall.xen_version unknown sub-op",
            Hypercall::XenVersion,
            [100, 0, 0, 0, 0],
            XenError::NoSys,
        )
    };
}

fn sched(r: &mut Report) {
    r.check_eq("hypercall.sched_op yield", hypercall::sched_yield(), Ok(0));
    // SAFETY: an unknown sub-op; Xen reads no memory for it.
    unsafe {
        refused(
            r,
            "hypercall.sched_op unknown sub-op",
            Hypercall::SchedOp,
            [100, 0, 0, 0, 0],
            XenError::NoSys,
        )
    };
}

/// Registers `ty` at `address` with `callback_op`.
fn register(ty: u16, address: u64) -> Result<u64, XenError> {
    let cb = CallbackRegister {
        type_: ty,
        flags: CALLBACKF_MASK_EVENTS,
        _hole: 0,
        address,
    };
    // SAFETY: every address used is one of the callbacks in `traps`.
    unsafe { hypercall::callback_register(&cb) }
}

fn callbacks(r: &mut Report) {
    let (event, failsafe, syscall) = (
        Entry::Event.addr(),
        Entry::Failsafe.addr(),
        Entry::Syscall.addr(),
    );
    r.check_eq(
        "hypercall.set_callbacks",
        // SAFETY: the three are the callbacks `traps` defines for them.
        unsafe { hypercall::set_callbacks(event, failsafe, syscall) },
        Ok(0),
    );
    r.check_eq(
        "hypercall.callback_op register event",
        register(CallbackType::Event as u16, event),
        Ok(0),
    );
    r.check_eq(
        "hypercall.callback_op register failsafe",
        register(CallbackType::Failsafe as u16, failsafe),
        Ok(0),
    );
    r.check_eq(
        "hypercall.callback_op register syscall",
        register(CallbackType::Syscall as u16, syscall),
        Ok(0),
    );
    r.check_eq(
        "hypercall.callback_op register unknown type",
        register(99, event),
        Err(XenError::NoSys),
    );
    r.check_eq(
        "hypercall.callback_op unregister event",
        hypercall::callback_unregister(CallbackType::Event),
        Err(XenError::Inval),
    );
    r.check_eq(
        "hypercall.callback_op unregister nmi",
        hypercall::callback_unregister(CallbackType::Nmi),
        Ok(0),
    );
    // SAFETY: an unknown sub-op; Xen reads no memory for it.
    unsafe {
        refused(
            r,
            "hypercall.callback_op unknown sub-op",
            Hypercall::CallbackOp,
            [7, 0, 0, 0, 0],
            XenError::NoSys,
        )
    };
}

/// `mov rax, fs:[offset]` (or `gs:`).
fn read_fs(offset: usize) -> u64 {
    let value: u64;
    // SAFETY: a load through FS, whose base the caller pointed at FS_DATA.
    unsafe {
        core::arch::asm!("mov {v}, qword ptr fs:[{o}]", v = out(reg) value, o = in(reg) offset,
            options(nostack, readonly, preserves_flags));
    }
    value
}

/// `mov rax, gs:[0]`.
pub fn read_gs() -> u64 {
    let value: u64;
    // SAFETY: a load through GS, whose base the caller pointed at mapped data.
    unsafe {
        core::arch::asm!("mov {v}, qword ptr gs:[0]", v = out(reg) value,
            options(nostack, readonly, preserves_flags));
    }
    value
}

/// Sets a segment base; nothing in this kernel uses FS or GS otherwise.
pub fn set_base(which: u32, base: u64) -> Result<u64, XenError> {
    // SAFETY: this kernel has no thread-local or per-CPU data; only the checks read
    // through FS and GS.
    unsafe { hypercall::set_segment_base(which, base) }
}

fn segment_bases(r: &mut Report) {
    let fs = set_base(SEGBASE_FS, FS_DATA.addr());
    r.check(
        "hypercall.set_segment_base FS",
        ok("set_segment_base", fs)
            .and_then(|_| eq("fs:[0]", read_fs(0), FS_DATA.get()[0]))
            .and_then(|_| eq("fs:[8]", read_fs(8), FS_DATA.get()[1])),
    );
    let gs = set_base(SEGBASE_GS_KERNEL, GS_KERNEL_DATA.addr());
    r.check(
        "hypercall.set_segment_base GS kernel",
        ok("set_segment_base", gs).and_then(|_| eq("gs:[0]", read_gs(), GS_KERNEL_DATA.get())),
    );
    // The user base only shows in user mode (user.*) and as MSR_SHADOW_GS_BASE (privop.*);
    // here it must not disturb the kernel's.
    let gs_user = set_base(SEGBASE_GS_USER, GS_USER_DATA.addr());
    r.check(
        "hypercall.set_segment_base GS user",
        ok("set_segment_base", gs_user)
            .and_then(|_| eq("kernel gs:[0] after", read_gs(), GS_KERNEL_DATA.get())),
    );
    r.check_eq(
        "hypercall.set_segment_base non-canonical base",
        set_base(SEGBASE_FS, 0x0000_8000_0000_0000),
        Err(XenError::Inval),
    );
    r.check_eq(
        "hypercall.set_segment_base unknown selector",
        set_base(7, 0),
        Err(XenError::Inval),
    );
}

fn debugregs(r: &mut Report) {
    let addr = 0x0000_4000_1234_5678;
    // SAFETY: DR7 stays 0, so no breakpoint is armed.
    let set = unsafe { hypercall::set_debugreg(0, addr) };
    r.check(
        "hypercall.set_debugreg/get_debugreg DR0 round trip",
        ok("set_debugreg", set).and_then(|_| eq("DR0", hypercall::get_debugreg(0) as u64, addr)),
    );
    let kernel_addr = guest_abi::runtime::VIRT_BASE + 0x1000;
    // SAFETY: as above.
    let set = unsafe { hypercall::set_debugreg(1, kernel_addr) };
    r.check(
        "hypercall.set_debugreg DR1 guest kernel address",
        ok("set_debugreg", set)
            .and_then(|_| eq("DR1", hypercall::get_debugreg(1) as u64, kernel_addr)),
    );
    r.check_eq(
        "hypercall.set_debugreg DR0 in hypervisor range",
        // SAFETY: refused; nothing changes.
        unsafe { hypercall::set_debugreg(0, HYPERVISOR_VIRT_START) },
        Err(XenError::Perm),
    );
    r.check_eq(
        "hypercall.set_debugreg DR7 general detect",
        // SAFETY: refused; nothing changes.
        unsafe { hypercall::set_debugreg(7, 1 << 13) },
        Err(XenError::Perm),
    );
    r.check_eq(
        "hypercall.set_debugreg DR7 upper half",
        // SAFETY: refused; nothing changes.
        unsafe { hypercall::set_debugreg(7, 1 << 32) },
        Err(XenError::Inval),
    );
    r.check_eq(
        "hypercall.set_debugreg unknown register",
        // SAFETY: refused; nothing changes.
        unsafe { hypercall::set_debugreg(8, 0) },
        Err(XenError::NoDev),
    );
    r.check_eq(
        "hypercall.get_debugreg DR6 and DR7 defaults",
        (hypercall::get_debugreg(6), hypercall::get_debugreg(7)),
        (0xffff_0ff0, 0x400),
    );
    r.check_eq(
        "hypercall.get_debugreg unknown register",
        hypercall::get_debugreg(8),
        XenError::NoDev.to_ret(),
    );
    // SAFETY: clears what the round trips set; DR7 stays 0.
    let _ = unsafe { hypercall::set_debugreg(0, 0).and(hypercall::set_debugreg(1, 0)) };
}

fn physdev(r: &mut Report) {
    r.check_eq(
        "hypercall.physdev_op set_iopl",
        hypercall::set_iopl(1),
        Ok(0),
    );
    r.check_eq(
        "hypercall.physdev_op set_iopl 4",
        hypercall::set_iopl(4),
        Err(XenError::Inval),
    );
    // SAFETY: an unknown sub-op; Xen reads no memory for it.
    unsafe {
        refused(
            r,
            "hypercall.physdev_op unknown sub-op",
            Hypercall::PhysdevOp,
            [1000, 0, 0, 0, 0],
            XenError::NoSys,
        )
    };
}

fn vm_assist(r: &mut Report) {
    for (name, ty) in [
        (
            "hypercall.vm_assist runstate_update_flag",
            VmAssistType::RunstateUpdateFlag,
        ),
        ("hypercall.vm_assist m2p_strict", VmAssistType::M2pStrict),
    ] {
        let on = hypercall::vm_assist(VmAssistCmd::Enable, ty);
        let off = hypercall::vm_assist(VmAssistCmd::Disable, ty);
        r.check_eq(name, (on, off), (Ok(0), Ok(0)));
    }
    // SAFETY: an invalid type; Xen changes nothing.
    unsafe {
        refused(
            r,
            "hypercall.vm_assist unknown type",
            Hypercall::VmAssist,
            [VmAssistCmd::Enable as u64, BAD_VMASST_TYPE, 0, 0, 0],
            XenError::Inval,
        )
    };
    // SAFETY: an invalid command; Xen changes nothing.
    unsafe {
        refused(
            r,
            "hypercall.vm_assist unknown cmd",
            Hypercall::VmAssist,
            [2, VmAssistType::RunstateUpdateFlag as u64, 0, 0, 0],
            XenError::NoSys,
        )
    };
}

fn vcpu(r: &mut Report) {
    let is_up = |vcpu: u32| {
        // SAFETY: VCPUOP_is_up reads no argument.
        unsafe { hypercall::vcpu_op(VcpuOp::IsUp, VcpuId(vcpu), &mut 0u64) }
    };
    r.check_eq("hypercall.vcpu_op is_up 0", is_up(0), Ok(1));
    r.check_eq("hypercall.vcpu_op is_up 1", is_up(1), Err(XenError::NoEnt));
    r.check_eq(
        "hypercall.vcpu_op is_up 8191",
        is_up(8191),
        Err(XenError::NoEnt),
    );

    let mut info = VcpuRunstateInfo::default();
    // SAFETY: VCPUOP_get_runstate_info writes one vcpu_runstate_info.
    let res = unsafe { hypercall::vcpu_op(VcpuOp::GetRunstateInfo, VcpuId(0), &mut info) };
    r.check(
        "hypercall.vcpu_op get_runstate_info",
        ok("VCPUOP_get_runstate_info", res)
            .and_then(|_| eq("state", info.state as u64, Runstate::Running as u64))
            .and_then(|_| ensure(info.time[0] > 0, "no time running")),
    );
    // SAFETY: an unknown sub-op; Xen reads no memory for it.
    unsafe {
        refused(
            r,
            "hypercall.vcpu_op unknown sub-op",
            Hypercall::VcpuOp,
            [100, 0, 0, 0, 0],
            XenError::NoSys,
        )
    };
}

fn memory(r: &mut Report, si: &StartInfo) {
    let mut map = [E820Entry::default(); 16];
    let mut arg = XenMemoryMap {
        nr_entries: map.len() as u32,
        _hole: 0,
        buffer: map.as_mut_ptr() as u64,
    };
    // SAFETY: the handle points to room for `nr_entries` e820 entries.
    let res = unsafe { hypercall::memory_op(MemoryOp::MemoryMap, &mut arg) };
    println!("selftest: memory_map {res:?}, {} entries", arg.nr_entries);
    r.check_eq("hypercall.memory_op memory_map", res, Err(XenError::NoSys));

    // SAFETY: XENMEM_maximum_ram_page takes no argument.
    let max_ram = unsafe {
        call(
            Hypercall::MemoryOp,
            [MemoryOp::MaximumRamPage as u64, 0, 0, 0, 0],
        )
    };
    r.check(
        "hypercall.memory_op maximum_ram_page",
        ok("XENMEM_maximum_ram_page", max_ram)
            .and_then(|max| ensure(max >= si.nr_pages, "below the domain's own pages")),
    );

    let mut domid = DomId::SELF.0;
    // SAFETY: the reservation queries read one domid_t.
    let current = unsafe { hypercall::memory_op(MemoryOp::CurrentReservation, &mut domid) };
    r.check_eq(
        "hypercall.memory_op current_reservation",
        current,
        Ok(si.nr_pages),
    );
    let mut domid = DomId::SELF.0;
    // SAFETY: as above.
    let maximum = unsafe { hypercall::memory_op(MemoryOp::MaximumReservation, &mut domid) };
    r.check_eq(
        "hypercall.memory_op maximum_reservation",
        maximum,
        Ok(si.nr_pages),
    );

    let mut m2p = XenMachphysMapping::default();
    // SAFETY: XENMEM_machphys_mapping writes one xen_machphys_mapping.
    let res = unsafe { hypercall::memory_op(MemoryOp::MachphysMapping, &mut m2p) };
    r.check(
        "hypercall.memory_op machphys_mapping",
        ok("XENMEM_machphys_mapping", res)
            .and_then(|_| eq("v_start", m2p.v_start, MACH2PHYS_VIRT_START))
            .and_then(|_| ensure(m2p.v_end > m2p.v_start, "empty range"))
            .and_then(|_| ensure(m2p.max_mfn > 0, "max_mfn 0")),
    );
    // SAFETY: an unknown sub-op (63: no continuation bits); Xen reads no memory for it.
    unsafe {
        refused(
            r,
            "hypercall.memory_op unknown sub-op",
            Hypercall::MemoryOp,
            [63, 0, 0, 0, 0],
            XenError::NoSys,
        )
    };
}

/// `xen_version(XENVER_version)` by a `syscall` of our own instead of the page's stub
/// (what Linux 6.1 does since XSA-466).
fn direct_syscall(nr: u64) -> i64 {
    let ret: i64;
    // SAFETY: a hypercall from guest kernel mode; the only argument is rdi = 0
    // (XENVER_version for xen_version; unknown numbers read nothing).
    unsafe {
        core::arch::asm!("syscall", inlateout("rax") nr as i64 => ret, inlateout("rdi") 0u64 => _,
            lateout("rsi") _, lateout("rdx") _, lateout("r10") _, lateout("r8") _,
            lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret
}

fn unknown(r: &mut Report) {
    for (name, nr) in [
        ("hypercall.unknown number 11", 11),
        ("hypercall.unknown number 55 (arch_7)", 55),
        ("hypercall.unknown number 100", 100),
    ] {
        // SAFETY: unknown numbers; Xen reads no memory for them.
        let ret = unsafe { raw_nr(nr, [0; 5]) };
        r.check_eq(name, XenError::from_ret(ret), Err(XenError::NoSys));
    }
    r.check_eq(
        "hypercall.direct syscall xen_version",
        direct_syscall(Hypercall::XenVersion as u64),
        (4 << 16) | 17,
    );
    r.check_eq(
        "hypercall.direct syscall unknown number 1000",
        XenError::from_ret(direct_syscall(1000)),
        Err(XenError::NoSys),
    );
}
