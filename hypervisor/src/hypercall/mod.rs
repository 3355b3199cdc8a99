//! Hypercall dispatch: decode the number and arguments from the guest's registers, run the
//! handler, and write the result (a value or `-errno`) back into `rax`.
//!
//! Handlers are pure logic over [`Ctx`]: the caller's registers and PV state, its domain's
//! bookkeeping, its address space ([`GuestMemory`]) and the machine ([`Host`]). Anything that
//! changes what runs next (shutdown, block, yield, a crash) is recorded in [`Ctx::action`] for
//! the exit path to carry out after the handler has returned.

pub mod admission;
pub mod batch;
mod console;
pub mod event;
pub mod exit_times;
pub mod grant;
mod grant_copy;
pub mod grant_entry;
pub mod grant_map;
mod machine_memory_map;
mod memory;
pub mod memory_exchange;
mod multicall;
mod sched;
mod traps;
mod vcpu;
pub mod version;

#[cfg(test)]
pub mod testing;

use crate::event::shared::DomainShared;
use crate::pv::guest_mem::GuestMemory;
use crate::pv::vcpu::PvVcpu;
use crate::x86::regs::Regs;
use core::sync::atomic::AtomicU32;
use guest_abi::sched::ShutdownReason;
use guest_abi::{DomId, Hypercall, XenError};

/// The result of a hypercall: a non-negative value or a Xen error.
pub type HcResult = Result<u64, XenError>;

/// What the machine provides to hypercall handlers.
pub trait Host {
    /// The machine's domains, as event channels see them.
    type Doms: crate::event::evtchn_ops::Domains;
    /// Writes guest console output (`console_io` write).
    fn console_write(&mut self, domain: DomId, bytes: &[u8]);
    /// Reads pending console input into `buf`, returning the number of bytes (dom0 only).
    fn console_read(&mut self, privilege: crate::privilege::Privilege, buf: &mut [u8]) -> usize;
    /// Loads the page tables and GS base the vCPU's current mode needs.
    fn sync_mode(&mut self, vcpu: &PvVcpu);
    /// Loads a new FS base for the running vCPU.
    fn set_fs_base(&mut self, base: u64);
    /// Sets or clears the hardware CR0.TS for the running vCPU.
    fn set_fpu_trap(&mut self, ts: bool);
    /// The calling domain's `shared_info` page and where its vCPUs' `vcpu_info` are.
    fn shared(&self) -> &DomainShared;
    /// Moves vCPU `vcpu`'s `vcpu_info` to `offset` in the caller's frame `mfn`
    /// (`VCPUOP_register_vcpu_info` once its arguments are checked): the frame must take a
    /// writable type reference, which is kept; the time record is published there.
    fn register_vcpu_info(&mut self, vcpu: u32, mfn: u64, offset: u32) -> Result<(), XenError>;
    /// Whether the caller's vCPU `vcpu` is up (`None` when it has no such vCPU).
    fn vcpu_is_up(&self, vcpu: u32) -> Option<bool>;
    /// The descriptor `selector` names in the vCPU's GDT or LDT, if there is one.
    fn read_descriptor(&self, vcpu: &PvVcpu, selector: u16) -> Option<u64>;
    /// Allocates a zeroed frame shared with domain `dom` (mappable writable by it, never a
    /// page table), as a grant-table frame; `None` when memory is short.
    fn alloc_shared_frame(&mut self, dom: DomId) -> Option<u64>;
    /// Whether a frame from [`Host::alloc_shared_frame`] is mapped by nobody.
    fn shared_frame_unused(&self, frame: u64) -> bool;
    /// Takes back a frame from [`Host::alloc_shared_frame`] that nobody maps.
    fn free_shared_frame(&mut self, frame: u64);
    /// The machine frames of the M2P table: the first one and how many (the table is
    /// physically contiguous).
    fn m2p_frames(&self) -> (u64, u64);
    /// Event channels of all domains, the scheduler and the timers.
    fn world(&mut self) -> event::World<'_, Self::Doms>;
    /// The highest machine frame number of the host.
    fn max_mfn(&self) -> u64;
    /// The machine's memory map (sorted E820 entries) and the frames outside RAM that dom0 may
    /// not map.
    fn machine_memory(
        &self,
    ) -> (
        &[guest_abi::memory::E820Entry],
        crate::mm::device_frames::DeniedFrames,
    );
    /// Nanoseconds of system time.
    fn now_ns(&self) -> u64;
    /// Whether this exit has run long enough that a long hypercall must stop at its next
    /// preemption point and continue later ([`exit_times::PREEMPT_TICKS`]).
    fn preempt_check(&mut self) -> bool;
    /// The memory-management hypercalls (`mmu_update`, `mmuext_op`, `update_va_mapping*`,
    /// and the reservation sub-ops of `memory_op`), which the machine's PV MMU handles.
    ///
    /// When the batch is long, the handler may do part of it, rewrite `args` to describe the
    /// rest (Xen's continuation) and answer [`XenError::Restart`]: the guest then re-executes
    /// the call with those arguments.
    fn mmu_hypercall(
        &mut self,
        nr: Hypercall,
        args: &mut [u64; 5],
        vcpu: &mut PvVcpu,
        domain: &mut DomainInfo,
    ) -> HcResult;
    /// The grant table (frames and references in use) of domain `dom`, which is not the
    /// caller; `None` if there is no such domain.
    fn foreign_grant_table(
        &mut self,
        dom: DomId,
    ) -> Option<(&grant::GrantFrames, &mut grant_map::ActiveGrants)>;
    /// Installs or removes the L1 entry of a grant mapping at `at` for the running vCPU
    /// `vcpu` (the PV MMU's `map_grant`/`unmap_grant`), flushing what the change needs.
    fn grant_pte(
        &mut self,
        vcpu: &PvVcpu,
        at: crate::mm::pv::GrantPte,
        op: GrantPteOp,
    ) -> Result<(), FrameRefused>;
    /// The 32-bit word at byte `offset` (4-aligned) of grant-table frame `frame` (a frame the
    /// hypervisor shares with the table's domain, which writes it concurrently).
    fn grant_word(&mut self, frame: u64, offset: usize) -> Option<&'static AtomicU32>;
    /// Takes a reference on frame `mfn`, which must belong to `owner`, for the hypervisor to
    /// read it, or with `writable` to write it too (a writable type reference, which page
    /// and descriptor tables refuse). Released with [`Host::put_frame`].
    fn get_frame(&mut self, owner: DomId, mfn: u64, writable: bool) -> Result<(), FrameRefused>;
    /// Drops what [`Host::get_frame`] took.
    fn put_frame(&mut self, mfn: u64, writable: bool);
    /// Copies `len` bytes from `(frame, offset)` `src` to `dst`; both frames are held by
    /// [`Host::get_frame`] (`dst` writable) and the ranges lie inside them.
    fn copy_frame_bytes(&mut self, dst: (u64, u16), src: (u64, u16), len: u16);
}

/// Why [`Host::get_frame`] or [`Host::grant_pte`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameRefused {
    /// The frame is not the named domain's (or not RAM).
    NotOwned,
    /// It is, but cannot be written (a page table, a descriptor table), or the mapping's
    /// entry is not where it was said to be.
    NotWritable,
}

/// What [`Host::grant_pte`] does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantPteOp {
    /// Install `pte`, which maps a frame of `granter`.
    Map {
        /// The granting domain.
        granter: DomId,
        /// The entry.
        pte: u64,
    },
    /// Remove the entry, which must still map `pte`'s frame with its present and RW bits;
    /// with `new_va`, the entry mapping that address moves into its place
    /// (`GNTTABOP_unmap_and_replace`).
    Unmap {
        /// The entry as it was installed.
        pte: u64,
        /// The address whose entry replaces it.
        new_va: Option<u64>,
    },
}

/// The hypervisor's bookkeeping of the calling domain, as hypercalls see it.
#[derive(Clone, Debug)]
pub struct DomainInfo {
    /// Domain id.
    pub id: DomId,
    /// dom0's privilege (`SIF_PRIVILEGED | SIF_INITDOMAIN`), for the operations only it may
    /// use; `None` for every other domain.
    pub privilege: Option<crate::privilege::Privilege>,
    /// Pages the domain owns.
    pub tot_pages: u64,
    /// Most pages the domain may own.
    pub max_pages: u64,
    /// Number of vCPUs.
    pub nr_vcpus: u32,
    /// Enabled VM assists, a bitmap of `VMASST_TYPE_*`.
    pub vm_assist: u64,
    /// The domain's handle (`xen_domain_handle_t`).
    pub handle: [u8; 16],
    /// Its grant table's frames.
    pub grant_frames: grant::GrantFrames,
    /// Its grant references that other domains (or itself) have mapped.
    pub grant_active: grant_map::ActiveGrants,
    /// The grants it has mapped, by handle.
    pub maptrack: grant_map::Maptrack,
}

impl DomainInfo {
    /// Whether the domain enabled VM assist `t`.
    pub fn has_vm_assist(&self, t: guest_abi::xen::VmAssistType) -> bool {
        self.vm_assist & (1 << t.raw()) != 0
    }
}

/// A hypercall that reaches across domains (`domctl`, `sysctl`, `SCHEDOP_remote_shutdown`):
/// decoded here like every other call, carried out by the exit path once the caller's own
/// state is released, because it needs the whole machine. The argument is the guest address
/// of its request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MachineCall {
    /// `domctl(arg)`.
    Domctl(u64),
    /// `sysctl(arg)`.
    Sysctl(u64),
    /// `sched_op(SCHEDOP_remote_shutdown, arg)`.
    RemoteShutdown(u64),
    /// A `vcpu_op` that acts on a vCPU other than the caller, or takes the caller down:
    /// `VCPUOP_initialise`, `up`, `down`, and another vCPU's runstate area or information.
    VcpuOp {
        /// The sub-op.
        cmd: guest_abi::vcpu::VcpuOp,
        /// The target vCPU of the caller's domain (checked to exist).
        vcpu: u32,
        /// The argument's guest address.
        arg: u64,
    },
}

/// Where the result of a [`MachineCall`] made from a multicall goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MulticallSlot {
    /// The guest address of the entry.
    pub entry: u64,
    /// Entries left from this one on (the multicall continues after it; it is re-executed from
    /// this entry when the call itself is continued).
    pub rest: u64,
}

/// What the exit path must do once the hypercall has returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Carry out a call that needs the whole machine; its result goes to `rax` (the register
    /// still holds the hypercall number until then) or, from a multicall, into its entry.
    Machine {
        /// The call.
        call: MachineCall,
        /// The multicall entry it came from, if any.
        slot: Option<MulticallSlot>,
    },
    /// Return to the guest.
    Resume,
    /// The domain shut itself down.
    Shutdown(ShutdownReason),
    /// The vCPU blocks until an event is pending.
    Block,
    /// The vCPU gives up the CPU.
    Yield,
    /// The domain did something it cannot survive.
    Crash(&'static str),
}

/// Everything a handler may look at or change.
pub struct Ctx<'a, M: GuestMemory, H: Host> {
    /// The caller's registers (arguments in, result out).
    pub regs: &'a mut Regs,
    /// The caller's PV state.
    pub vcpu: &'a mut PvVcpu,
    /// Its vCPU id.
    pub vcpu_id: u32,
    /// Its domain.
    pub domain: &'a mut DomainInfo,
    /// Its address space.
    pub mem: &'a mut M,
    /// The machine.
    pub host: &'a mut H,
    /// What happens after the call.
    pub action: Action,
    /// The call loaded a whole new register frame (`iret`), result included: `rax` is not
    /// to be overwritten with a return value.
    pub regs_loaded: bool,
}

/// A decoded hypercall: number and the five argument registers (`rdi rsi rdx r10 r8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Call {
    /// The hypercall number from `rax`.
    pub nr: u64,
    /// Arguments.
    pub args: [u64; 5],
}

impl<M: GuestMemory, H: Host> Ctx<'_, M, H> {
    /// The caller's `vcpu_info` (vCPU ids are below the legacy limit, so it always exists).
    pub fn vcpu_info(&self) -> &'static crate::event::shared::VcpuInfo {
        let shared = self.host.shared();
        shared
            .vcpu_info(crate::event::abi::VcpuId(self.vcpu_id))
            .unwrap_or(&shared.page().vcpu_info[0])
    }
}

impl Call {
    /// Reads a hypercall from the guest's registers.
    pub fn from_regs(regs: &Regs) -> Self {
        Self {
            nr: regs.rax,
            args: [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8],
        }
    }
}

/// Encodes a result for `rax`.
pub fn encode(result: HcResult) -> u64 {
    match result {
        Ok(v) => v,
        Err(e) => (-i64::from(e.raw())) as u64,
    }
}

/// Handles the hypercall in the caller's registers and stores its result in `rax`, or makes
/// the guest re-execute it with the arguments of what is left (a continuation).
pub fn handle<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>) {
    let mut call = Call::from_regs(ctx.regs);
    let result = dispatch(ctx, &mut call, false);
    if result == Err(XenError::Restart) {
        continue_later(ctx, call.args);
    } else if !ctx.regs_loaded {
        ctx.regs.rax = encode(result);
    }
}

/// Length of the `syscall` instruction, which a continued hypercall re-executes.
const SYSCALL_INSN_LEN: u64 = 2;

/// Makes the guest re-execute the hypercall with `args` (a continuation): its number stays in
/// `rax`, the arguments go back into their registers, and `rip` moves back onto the `syscall`.
fn continue_later<M: GuestMemory, H: Host>(ctx: &mut Ctx<'_, M, H>, args: [u64; 5]) {
    let r = &mut *ctx.regs;
    [r.rdi, r.rsi, r.rdx, r.r10, r.r8] = args;
    r.rip = r.rip.wrapping_sub(SYSCALL_INSN_LEN);
    ctx.regs_loaded = true;
}

/// Stores the result of a hypercall handled outside [`handle`] (`domctl`, `sysctl`) in `rax`;
/// [`XenError::Restart`] instead makes the guest re-execute the call with the same arguments
/// (Xen's continuation of a preempted `destroydomain`).
pub fn complete(regs: &mut Regs, result: HcResult) {
    if result == Err(XenError::Restart) {
        regs.rip = regs.rip.wrapping_sub(SYSCALL_INSN_LEN);
    } else {
        regs.rax = encode(result);
    }
}

/// Leaves `call` to the exit path; `rax` keeps the hypercall number until its result is known.
pub(crate) fn machine<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    call: MachineCall,
) -> HcResult {
    ctx.action = Action::Machine { call, slot: None };
    ctx.regs_loaded = true;
    Ok(0)
}

/// Runs one hypercall. `in_multicall` refuses the calls a multicall may not contain.
///
/// A call that stopped part-way answers [`XenError::Restart`] with `call.args` rewritten to
/// describe what is left; the caller makes the guest re-execute it (Xen's continuation).
pub fn dispatch<M: GuestMemory, H: Host>(
    ctx: &mut Ctx<'_, M, H>,
    call: &mut Call,
    in_multicall: bool,
) -> HcResult {
    let Some(nr) = u32::try_from(call.nr).ok().and_then(Hypercall::from_raw) else {
        return Err(XenError::NoSys);
    };
    let [a0, a1, a2, _a3, _a4] = call.args;
    match nr {
        Hypercall::Domctl => machine(ctx, MachineCall::Domctl(a0)),
        Hypercall::Sysctl => machine(ctx, MachineCall::Sysctl(a0)),
        Hypercall::SchedOp if a0 == u64::from(guest_abi::sched::SchedOp::RemoteShutdown.raw()) => {
            machine(ctx, MachineCall::RemoteShutdown(a1))
        }
        Hypercall::ConsoleIo => console::console_io(ctx, &mut call.args),
        Hypercall::XenVersion => version::xen_version(ctx, a0, a1),
        Hypercall::SchedOp => sched::sched_op(ctx, a0, a1),
        Hypercall::EventChannelOp => event::event_channel_op(ctx, a0, a1),
        Hypercall::SetTimerOp => event::set_timer_op(ctx, a0),
        Hypercall::SetTrapTable => traps::set_trap_table(ctx, a0),
        Hypercall::SetCallbacks => traps::set_callbacks(ctx, a0, a1, a2),
        Hypercall::CallbackOp => traps::callback_op(ctx, a0, a1),
        Hypercall::StackSwitch => traps::stack_switch(ctx, a0, a1),
        Hypercall::FpuTaskswitch => traps::fpu_taskswitch(ctx, a0),
        Hypercall::SetSegmentBase => traps::set_segment_base(ctx, a0, a1),
        Hypercall::SetDebugreg => traps::set_debugreg(ctx, a0, a1),
        Hypercall::GetDebugreg => traps::get_debugreg(ctx, a0),
        Hypercall::PhysdevOp => traps::physdev_op(ctx, a0, a1),
        Hypercall::VmAssist => traps::vm_assist(ctx, a0, a1),
        Hypercall::VcpuOp => vcpu::vcpu_op(ctx, a0, a1, a2),
        Hypercall::MemoryOp => memory::memory_op(ctx, &mut call.args),
        Hypercall::GrantTableOp => grant::grant_table_op(ctx, &mut call.args),
        Hypercall::MmuUpdate
        | Hypercall::MmuextOp
        | Hypercall::UpdateVaMapping
        | Hypercall::UpdateVaMappingOtherdomain
        | Hypercall::SetGdt
        | Hypercall::UpdateDescriptor => {
            ctx.host
                .mmu_hypercall(nr, &mut call.args, ctx.vcpu, ctx.domain)
        }
        Hypercall::Multicall if in_multicall => Err(XenError::Inval),
        Hypercall::Multicall => multicall::multicall(ctx, &mut call.args),
        Hypercall::Iret => traps::iret(ctx),
        _ => Err(XenError::NoSys),
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{Fixture, call};
    use guest_abi::Hypercall;

    #[test]
    fn a_long_batch_continues_by_re_executing_the_call() {
        let mut f = Fixture::new();
        f.regs.rip = 0x40_1002;
        // 25 requests at 0x1000: the fake does 10 per pass.
        assert_eq!(
            call(&mut f, Hypercall::MmuUpdate, [0x1000, 25, 0, 0x7ff0, 0]),
            Ok(1)
        );
        assert_eq!(f.regs.rip, 0x40_1000, "back on the syscall");
        assert_eq!(f.regs.rax, 1, "the hypercall number stays");
        assert_eq!((f.regs.rdi, f.regs.rsi), (0x1000 + 160, 15 | 0x8000_0000));
        assert_eq!(f.regs.r10, 0x7ff0, "other arguments kept");
    }

    #[test]
    fn calls_across_domains_are_decoded_here_and_left_to_the_machine() {
        use super::{Action, MachineCall};
        let mut f = Fixture::new();
        // rax keeps the number: the exit path writes the result once it has the machine.
        assert_eq!(
            call(&mut f, Hypercall::Domctl, [0x5000, 0, 0, 0, 0]),
            Ok(36)
        );
        assert_eq!(
            f.action,
            Action::Machine {
                call: MachineCall::Domctl(0x5000),
                slot: None
            }
        );
        assert_eq!(
            call(&mut f, Hypercall::Sysctl, [0x6000, 0, 0, 0, 0]),
            Ok(35)
        );
        assert_eq!(
            f.action,
            Action::Machine {
                call: MachineCall::Sysctl(0x6000),
                slot: None
            }
        );
        // SCHEDOP_remote_shutdown (4) too; the other sched_ops stay where they were.
        assert_eq!(
            call(&mut f, Hypercall::SchedOp, [4, 0x7000, 0, 0, 0]),
            Ok(29)
        );
        assert_eq!(
            f.action,
            Action::Machine {
                call: MachineCall::RemoteShutdown(0x7000),
                slot: None
            }
        );
        assert_eq!(call(&mut f, Hypercall::SchedOp, [0, 0, 0, 0, 0]), Ok(0));
        assert_eq!(f.action, Action::Yield);
    }

    #[test]
    fn a_restarted_domctl_is_re_executed_as_it_was() {
        let mut regs = crate::x86::regs::Regs {
            rax: 36,
            rdi: 0x5000,
            rip: 0x40_1002,
            ..Default::default()
        };
        super::complete(&mut regs, Err(guest_abi::XenError::Restart));
        assert_eq!((regs.rax, regs.rdi, regs.rip), (36, 0x5000, 0x40_1000));
        super::complete(&mut regs, Err(guest_abi::XenError::Inval));
        assert_eq!((regs.rax as i64, regs.rip), (-22, 0x40_1000));
        super::complete(&mut regs, Ok(0));
        assert_eq!(regs.rax, 0);
    }
}
