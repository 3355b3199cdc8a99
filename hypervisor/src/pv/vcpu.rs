//! The paravirtual state of one vCPU: which guest mode it is in, its two page-table bases, its
//! virtual IDT and callbacks, its kernel stack and segment bases.

use crate::mm::Mfn;
use guest_abi::arch::TrapInfo;

/// Where the guest wants an event or callback delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Callback {
    /// Guest-kernel address of the handler (0: none registered).
    pub address: u64,
    /// Set the event upcall mask on entry (`CALLBACKF_mask_events`).
    pub mask_events: bool,
}

/// Bit 2 of `trap_info.flags`: mask events on entry to the handler.
pub const TRAP_FLAG_MASK_EVENTS: u8 = 1 << 2;

/// A vCPU's paravirtual state.
#[derive(Clone, Debug)]
pub struct PvVcpu {
    /// Running the guest kernel (as opposed to guest user space).
    pub kernel_mode: bool,
    /// The kernel-mode L4 (`NEW_BASEPTR`).
    pub kernel_table: Option<Mfn>,
    /// The user-mode L4 (`NEW_USER_BASEPTR`).
    pub user_table: Option<Mfn>,
    /// The virtual IDT from `set_trap_table`, indexed by vector.
    pub traps: [TrapInfo; 256],
    /// `CALLBACKTYPE_event`.
    pub event_callback: Callback,
    /// `CALLBACKTYPE_failsafe`.
    pub failsafe_callback: Callback,
    /// `CALLBACKTYPE_syscall`: 64-bit `syscall` from guest user mode.
    pub syscall_callback: Callback,
    /// `CALLBACKTYPE_syscall32`.
    pub syscall32_callback: Callback,
    /// `CALLBACKTYPE_sysenter`.
    pub sysenter_callback: Callback,
    /// `CALLBACKTYPE_nmi`.
    pub nmi_callback: Callback,
    /// Kernel stack selector from `stack_switch`.
    pub kernel_ss: u64,
    /// Kernel stack pointer from `stack_switch`: where bounces from user mode land.
    pub kernel_sp: u64,
    /// FS base (shared by both modes).
    pub fs_base: u64,
    /// GS base in kernel mode.
    pub gs_base_kernel: u64,
    /// GS base in user mode.
    pub gs_base_user: u64,
    /// Virtual I/O privilege level (`physdev_op(set_iopl)`), 0–3.
    pub iopl: u8,
    /// Virtual CR0.TS (`fpu_taskswitch`): the next FPU use raises #NM in the guest.
    pub fpu_ts: bool,
    /// Debug registers from `set_debugreg`.
    pub debugreg: [u64; 8],
    /// Periodic-timer state.
    pub timers: crate::sched::VcpuTimers,
    /// Page-table state as the PV MMU keeps it (base pointers with their references).
    pub mm: Option<crate::mm::pv::VcpuMm>,
    /// The frames of the guest's GDT (`set_gdt`), each holding a descriptor-page type
    /// reference.
    pub gdt_frames: [u64; GDT_GUEST_FRAMES],
    /// Number of guest GDT entries (0: only the hypervisor's flat selectors).
    pub gdt_ents: u32,
    /// The frames of the guest's LDT (`MMUEXT_SET_LDT`), each holding a descriptor-page type
    /// reference, 0 where the page was not mapped or could not be a descriptor page.
    pub ldt_frames: [u64; LDT_FRAMES],
    /// Number of LDT entries (0: no LDT).
    pub ldt_ents: u32,
    /// Time spent running, runnable, blocked and offline.
    pub runstate: crate::pv::runstate::RunstateClock,
    /// Where the guest mirrors its runstate.
    pub runstate_area: crate::pv::runstate::RunstateArea,
}

/// Frames a guest GDT may span: the 14 pages below the hypervisor's reserved entries.
pub const GDT_GUEST_FRAMES: usize = 14;

/// Frames an LDT may span: 8192 entries.
pub const LDT_FRAMES: usize = 16;

impl Default for PvVcpu {
    fn default() -> Self {
        Self {
            kernel_mode: true,
            kernel_table: None,
            user_table: None,
            traps: [TrapInfo::default(); 256],
            event_callback: Callback::default(),
            failsafe_callback: Callback::default(),
            syscall_callback: Callback::default(),
            syscall32_callback: Callback::default(),
            sysenter_callback: Callback::default(),
            nmi_callback: Callback::default(),
            kernel_ss: 0,
            kernel_sp: 0,
            fs_base: 0,
            gs_base_kernel: 0,
            gs_base_user: 0,
            iopl: 0,
            fpu_ts: false,
            // DR6 and DR7 reset values.
            debugreg: [0, 0, 0, 0, 0, 0, 0xffff_0ff0, 0x400],
            timers: crate::sched::VcpuTimers::PV_DEFAULT,
            mm: None,
            gdt_frames: [0; GDT_GUEST_FRAMES],
            gdt_ents: 0,
            ldt_frames: [0; LDT_FRAMES],
            ldt_ents: 0,
            runstate: Default::default(),
            runstate_area: Default::default(),
        }
    }
}

impl PvVcpu {
    /// The L4 that must be in CR3 for the current mode.
    pub fn active_table(&self) -> Option<Mfn> {
        if self.kernel_mode {
            self.kernel_table
        } else {
            self.user_table
        }
    }

    /// The GS base that must be live for the current mode.
    pub fn active_gs_base(&self) -> u64 {
        if self.kernel_mode {
            self.gs_base_kernel
        } else {
            self.gs_base_user
        }
    }

    /// Switches between guest kernel and guest user mode.
    pub fn toggle_mode(&mut self) {
        self.kernel_mode = !self.kernel_mode;
    }

    /// The handler for `vector`, if the guest registered one.
    pub fn trap_handler(&self, vector: u8) -> Option<&TrapInfo> {
        self.traps
            .get(usize::from(vector))
            .filter(|t| t.address != 0)
    }
}
