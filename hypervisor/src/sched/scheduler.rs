//! The scheduler model: round-robin with a time slice, one run queue per physical CPU.
//!
//! A vCPU is *runnable* when it is not blocked (`SCHEDOP_block`/`poll`), not down
//! (`VCPUOP_down`, or never brought up) and its domain's pause count is zero (Xen's
//! `vcpu_runnable`). Runnable vCPUs that are not running wait in their CPU's run queue; blocked,
//! down and paused ones are in no queue. A woken vCPU joins the tail of its queue. At each
//! scheduling decision the running vCPU keeps its CPU until its slice ends or it yields,
//! blocks or is paused; then the queue head runs for a fresh slice. With nothing runnable the
//! CPU idles until the next timer deadline.
//!
//! Invariants (checked by [`Scheduler::check`]): every vCPU is at most once in at most one
//! place (its CPU's queue or its CPU's `current`); every queued vCPU is runnable; the `queued`
//! flag matches queue membership. A `current` vCPU may stop being runnable between decisions
//! (it blocked or was paused): the result of that operation tells the caller to reschedule
//! that CPU.

use super::VcpuRef;
use super::runqueue::RunQueue;
use crate::event::abi::{DomId, MAX_VCPUS, VcpuId};
use crate::event::evtchn_ops::Wake;
use guest_abi::XenError;

/// A physical CPU number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CpuId(pub u16);

impl CpuId {
    /// The CPU as an index.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// A set of physical CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuSet(u64);

impl CpuSet {
    /// No CPU.
    pub const EMPTY: Self = Self(0);

    /// Adds `cpu`.
    pub fn insert(&mut self, cpu: CpuId) {
        self.0 |= 1 << (cpu.0 % 64);
    }

    /// Whether `cpu` is in the set.
    pub const fn contains(self, cpu: CpuId) -> bool {
        self.0 & (1 << (cpu.0 % 64)) != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The members, lowest first.
    pub fn iter(self) -> impl Iterator<Item = CpuId> {
        (0..64u16).map(CpuId).filter(move |c| self.contains(*c))
    }
}

/// Xen's run states, as `VCPUOP_get_runstate_info` reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// On a CPU now.
    Running,
    /// Waiting for a CPU.
    Runnable,
    /// Blocked waiting for an event.
    Blocked,
    /// Paused or down.
    Offline,
}

/// Why a scheduler table operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedError {
    /// No such domain.
    NoSuchDomain(DomId),
    /// No such vCPU.
    NoSuchVcpu(VcpuRef),
    /// The domain or vCPU is already known.
    Exists,
    /// The scheduler's tables are full.
    Full,
    /// The CPU number is beyond the scheduler's CPUs.
    NoSuchCpu(CpuId),
    /// Unpausing something that is not paused.
    NotPaused,
}

impl SchedError {
    /// The errno for a hypercall that hits this error.
    pub const fn errno(self) -> XenError {
        match self {
            Self::NoSuchDomain(_) => XenError::Srch,
            Self::NoSuchVcpu(_) => XenError::NoEnt,
            Self::Exists => XenError::Exist,
            Self::Full => XenError::NoSpc,
            Self::NoSuchCpu(_) | Self::NotPaused => XenError::Inval,
        }
    }
}

/// What a CPU does next, from [`Scheduler::schedule`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The vCPU that was running before this decision (if any).
    pub prev: Option<VcpuRef>,
    /// The vCPU to run, or `None` to idle.
    pub next: Option<VcpuRef>,
    /// When the CPU must enter the scheduler again: the end of `next`'s slice or the next
    /// timer deadline, whichever is first; `None` to idle until an interrupt.
    pub until: Option<u64>,
}

impl Decision {
    /// Whether the CPU switches vCPU (the caller then saves `prev`, stops its periodic timer,
    /// publishes `next`'s time and restarts its periodic timer).
    pub fn switches(&self) -> bool {
        self.prev != self.next
    }
}

#[derive(Clone, Copy, Debug)]
struct VcpuEntry {
    id: VcpuRef,
    dom: u16,
    cpu: CpuId,
    /// The CPU this vCPU is running on, if any (normally `cpu`; the old CPU while a
    /// running vCPU migrates).
    running: Option<CpuId>,
    blocked: bool,
    down: bool,
    queued: bool,
    yielded: bool,
    runtime: u64,
}

#[derive(Clone, Copy, Debug)]
struct DomEntry {
    id: DomId,
    pause_count: u32,
    controller_pauses: u32,
    /// Slot + 1 of each vCPU, 0 for none.
    vcpus: [u16; MAX_VCPUS],
}

#[derive(Clone, Debug)]
struct CpuState<const N: usize> {
    queue: RunQueue<N>,
    current: Option<u16>,
    started: u64,
    slice_end: u64,
}

/// A round-robin scheduler for up to `N` vCPUs (of up to `N` domains) on `CPUS` CPUs. All
/// tables are fixed-size: nothing allocates.
pub struct Scheduler<const N: usize, const CPUS: usize> {
    vcpus: [Option<VcpuEntry>; N],
    doms: [Option<DomEntry>; N],
    cpus: [CpuState<N>; CPUS],
    slice: u64,
}

/// Xen credit1's default time slice, 30 ms.
pub const DEFAULT_SLICE_NS: u64 = 30_000_000;

impl<const N: usize, const CPUS: usize> Scheduler<N, CPUS> {
    const SLOTS_FIT: () = assert!(N <= u16::MAX as usize && CPUS <= 64);

    /// An empty scheduler giving each vCPU `slice_ns` at a time (at least 1 ns).
    pub fn new(slice_ns: u64) -> Self {
        let () = Self::SLOTS_FIT;
        Self {
            vcpus: [None; N],
            doms: [None; N],
            cpus: core::array::from_fn(|_| CpuState {
                queue: RunQueue::new(),
                current: None,
                started: 0,
                slice_end: 0,
            }),
            slice: slice_ns.max(1),
        }
    }

    /// The time slice.
    pub fn slice(&self) -> u64 {
        self.slice
    }

    fn dom_slot(&self, id: DomId) -> Option<usize> {
        self.doms.iter().position(|d| d.is_some_and(|d| d.id == id))
    }

    fn slot(&self, v: VcpuRef) -> Option<usize> {
        let d = self.doms[self.dom_slot(v.domain)?]?;
        match *d.vcpus.get(v.vcpu.index())? {
            0 => None,
            s => Some(usize::from(s) - 1),
        }
    }

    fn entry(&self, slot: usize) -> &VcpuEntry {
        self.vcpus[slot]
            .as_ref()
            .expect("scheduler slot tables are consistent")
    }

    fn entry_mut(&mut self, slot: usize) -> &mut VcpuEntry {
        self.vcpus[slot]
            .as_mut()
            .expect("scheduler slot tables are consistent")
    }

    /// Registers a domain (unpaused, no vCPUs).
    pub fn add_domain(&mut self, id: DomId) -> Result<(), SchedError> {
        if self.dom_slot(id).is_some() {
            return Err(SchedError::Exists);
        }
        let free = self
            .doms
            .iter()
            .position(Option::is_none)
            .ok_or(SchedError::Full)?;
        self.doms[free] = Some(DomEntry {
            id,
            pause_count: 0,
            controller_pauses: 0,
            vcpus: [0; MAX_VCPUS],
        });
        Ok(())
    }

    /// vCPU slots not in use.
    pub fn free_vcpu_slots(&self) -> usize {
        self.vcpus.iter().filter(|v| v.is_none()).count()
    }

    /// Registers vCPU `v` on `cpu`, up (runnable unless its domain is paused) or down.
    pub fn add_vcpu(&mut self, v: VcpuRef, cpu: CpuId, up: bool) -> Result<(), SchedError> {
        if cpu.index() >= CPUS {
            return Err(SchedError::NoSuchCpu(cpu));
        }
        if v.vcpu.index() >= MAX_VCPUS {
            return Err(SchedError::NoSuchVcpu(v));
        }
        let dom = self
            .dom_slot(v.domain)
            .ok_or(SchedError::NoSuchDomain(v.domain))?;
        if self.slot(v).is_some() {
            return Err(SchedError::Exists);
        }
        let slot = self
            .vcpus
            .iter()
            .position(Option::is_none)
            .ok_or(SchedError::Full)?;
        self.vcpus[slot] = Some(VcpuEntry {
            id: v,
            dom: dom as u16,
            cpu,
            running: None,
            blocked: false,
            down: !up,
            queued: false,
            yielded: false,
            runtime: 0,
        });
        if let Some(d) = self.doms[dom].as_mut() {
            d.vcpus[v.vcpu.index()] = slot as u16 + 1;
        }
        self.enqueue_if_runnable(slot);
        Ok(())
    }

    /// Forgets a domain and its vCPUs. Returns the CPUs that were running one of them and
    /// must reschedule.
    pub fn remove_domain(&mut self, id: DomId) -> Result<CpuSet, SchedError> {
        let dom = self.dom_slot(id).ok_or(SchedError::NoSuchDomain(id))?;
        let mut resched = CpuSet::EMPTY;
        for slot in self.domain_slots(dom) {
            let e = *self.entry(slot);
            self.cpus[e.cpu.index()].queue.remove(slot as u16);
            if let Some(cpu) = e.running {
                self.cpus[cpu.index()].current = None;
                resched.insert(cpu);
            }
            self.vcpus[slot] = None;
        }
        self.doms[dom] = None;
        Ok(resched)
    }

    fn domain_slots(&self, dom: usize) -> impl Iterator<Item = usize> + use<N, CPUS> {
        let vcpus = self.doms[dom].map_or([0; MAX_VCPUS], |d| d.vcpus);
        vcpus
            .into_iter()
            .filter(|&s| s != 0)
            .map(|s| usize::from(s) - 1)
    }

    fn runnable(&self, slot: usize) -> bool {
        let e = self.entry(slot);
        let paused = self.doms[usize::from(e.dom)].is_some_and(|d| d.pause_count > 0);
        !e.blocked && !e.down && !paused
    }

    /// Puts a runnable vCPU that is neither queued nor running at the tail of its CPU's
    /// queue. Returns its CPU if that CPU is idle (it should reschedule now).
    fn enqueue_if_runnable(&mut self, slot: usize) -> Option<CpuId> {
        let e = *self.entry(slot);
        if e.queued || !self.runnable(slot) || e.running.is_some() {
            return None;
        }
        let cpu = &mut self.cpus[e.cpu.index()];
        let pushed = cpu.queue.push_back(slot as u16);
        debug_assert!(pushed, "a queue holds every vCPU");
        let idle = cpu.current.is_none();
        self.entry_mut(slot).queued = pushed;
        idle.then_some(e.cpu)
    }

    /// Takes a vCPU that stopped being runnable out of its queue. Returns its CPU if it is
    /// running there (that CPU must reschedule).
    fn dequeue_if_not_runnable(&mut self, slot: usize) -> Option<CpuId> {
        if self.runnable(slot) {
            return None;
        }
        let e = *self.entry(slot);
        if e.queued {
            self.cpus[e.cpu.index()].queue.remove(slot as u16);
            self.entry_mut(slot).queued = false;
        }
        e.running
    }

    fn update(&mut self, v: VcpuRef, f: impl FnOnce(&mut VcpuEntry)) -> Result<usize, SchedError> {
        let slot = self.slot(v).ok_or(SchedError::NoSuchVcpu(v))?;
        f(self.entry_mut(slot));
        Ok(slot)
    }

    /// Blocks `v` (Xen's `_VPF_blocked`). Returns its CPU if it was running: that CPU must
    /// reschedule.
    pub fn block(&mut self, v: VcpuRef) -> Result<Option<CpuId>, SchedError> {
        let slot = self.update(v, |e| e.blocked = true)?;
        Ok(self.dequeue_if_not_runnable(slot))
    }

    /// Unblocks `v` (Xen's `vcpu_unblock` + `vcpu_wake`). Returns its CPU if that CPU is idle
    /// and should reschedule (send it an IPI if it is not this one). Waking a vCPU that is
    /// not blocked does nothing.
    pub fn wake(&mut self, v: VcpuRef) -> Result<Option<CpuId>, SchedError> {
        let slot = self.update(v, |e| e.blocked = false)?;
        Ok(self.enqueue_if_runnable(slot))
    }

    /// Wakes every vCPU an event operation kicked. Unknown vCPUs are ignored. Returns the
    /// CPUs that should reschedule.
    pub fn wake_all(&mut self, wake: Wake) -> CpuSet {
        let mut cpus = CpuSet::EMPTY;
        for vcpu in wake.vcpus.iter() {
            let v = VcpuRef {
                domain: wake.domain,
                vcpu,
            };
            if let Ok(Some(cpu)) = self.wake(v) {
                cpus.insert(cpu);
            }
        }
        cpus
    }

    /// Brings `v` up (`VCPUOP_up`). Returns its CPU if it should reschedule.
    pub fn vcpu_up(&mut self, v: VcpuRef) -> Result<Option<CpuId>, SchedError> {
        let slot = self.update(v, |e| e.down = false)?;
        Ok(self.enqueue_if_runnable(slot))
    }

    /// Takes `v` down (`VCPUOP_down`). Returns its CPU if it was running there.
    pub fn vcpu_down(&mut self, v: VcpuRef) -> Result<Option<CpuId>, SchedError> {
        let slot = self.update(v, |e| e.down = true)?;
        Ok(self.dequeue_if_not_runnable(slot))
    }

    /// Makes the running `v` give up the rest of its slice at the next decision
    /// (`SCHEDOP_yield`). Returns its CPU, which should reschedule, if it is running.
    pub fn yield_now(&mut self, v: VcpuRef) -> Result<Option<CpuId>, SchedError> {
        let slot = self.slot(v).ok_or(SchedError::NoSuchVcpu(v))?;
        let e = self.entry_mut(slot);
        e.yielded = e.running.is_some();
        Ok(e.running)
    }

    /// Moves `v` to `cpu`'s queue. A running vCPU moves when it is next descheduled.
    pub fn migrate(&mut self, v: VcpuRef, cpu: CpuId) -> Result<(), SchedError> {
        if cpu.index() >= CPUS {
            return Err(SchedError::NoSuchCpu(cpu));
        }
        let slot = self.slot(v).ok_or(SchedError::NoSuchVcpu(v))?;
        let e = *self.entry(slot);
        // A running vCPU stays on its CPU until `schedule` there requeues it on the new one.
        if e.queued {
            self.cpus[e.cpu.index()].queue.remove(slot as u16);
            self.entry_mut(slot).queued = false;
        }
        self.entry_mut(slot).cpu = cpu;
        self.enqueue_if_runnable(slot);
        Ok(())
    }

    fn pause_change(
        &mut self,
        id: DomId,
        up: bool,
        controller: bool,
    ) -> Result<CpuSet, SchedError> {
        let dom = self.dom_slot(id).ok_or(SchedError::NoSuchDomain(id))?;
        let d = self.doms[dom]
            .as_mut()
            .ok_or(SchedError::NoSuchDomain(id))?;
        if up {
            d.pause_count += 1;
            d.controller_pauses += u32::from(controller);
        } else {
            if d.pause_count == 0 || (controller && d.controller_pauses == 0) {
                return Err(SchedError::NotPaused);
            }
            d.pause_count -= 1;
            d.controller_pauses -= u32::from(controller);
        }
        let mut cpus = CpuSet::EMPTY;
        for slot in self.domain_slots(dom) {
            let cpu = if up {
                self.dequeue_if_not_runnable(slot)
            } else {
                self.enqueue_if_runnable(slot)
            };
            if let Some(c) = cpu {
                cpus.insert(c);
            }
        }
        Ok(cpus)
    }

    /// Pauses a domain (`domain_pause`; nests). Returns the CPUs that were running one of its
    /// vCPUs and must reschedule.
    pub fn pause_domain(&mut self, id: DomId) -> Result<CpuSet, SchedError> {
        self.pause_change(id, true, false)
    }

    /// Undoes one [`Self::pause_domain`]. Returns idle CPUs that now have work.
    pub fn unpause_domain(&mut self, id: DomId) -> Result<CpuSet, SchedError> {
        self.pause_change(id, false, false)
    }

    /// Pauses a domain on behalf of its controller (toolstack); counted separately so that
    /// `EVTCHNOP_reset` can ask [`Self::controller_paused`].
    pub fn pause_by_controller(&mut self, id: DomId) -> Result<CpuSet, SchedError> {
        self.pause_change(id, true, true)
    }

    /// Undoes one [`Self::pause_by_controller`]; `NotPaused` (`-EINVAL`) if there is none.
    pub fn unpause_by_controller(&mut self, id: DomId) -> Result<CpuSet, SchedError> {
        self.pause_change(id, false, true)
    }

    /// Whether the domain's controller has it paused.
    pub fn controller_paused(&self, id: DomId) -> bool {
        self.dom_slot(id)
            .and_then(|d| self.doms[d])
            .is_some_and(|d| d.controller_pauses > 0)
    }

    /// The vCPU running on `cpu`.
    pub fn current(&self, cpu: CpuId) -> Option<VcpuRef> {
        let slot = self.cpus.get(cpu.index())?.current?;
        Some(self.entry(usize::from(slot)).id)
    }

    /// Whether `v` is up (`VCPUOP_is_up`): brought up and not taken down, whether or not its
    /// domain is paused. `None` for a vCPU the scheduler does not know.
    pub fn is_up(&self, v: VcpuRef) -> Option<bool> {
        self.slot(v).map(|slot| !self.entry(slot).down)
    }

    /// `v`'s run state.
    pub fn run_state(&self, v: VcpuRef) -> Option<RunState> {
        let slot = self.slot(v)?;
        let e = self.entry(slot);
        Some(if e.blocked {
            RunState::Blocked
        } else if !self.runnable(slot) {
            RunState::Offline
        } else if e.running.is_some() {
            RunState::Running
        } else {
            RunState::Runnable
        })
    }

    /// Nanoseconds `v` has been charged for running.
    pub fn runtime(&self, v: VcpuRef) -> Option<u64> {
        self.slot(v).map(|s| self.entry(s).runtime)
    }

    /// The scheduling decision for `cpu` at time `now`, given the CPU's next timer deadline.
    /// Charges the running vCPU for the time since it started; keeps it if it is still
    /// runnable, its slice has not ended and it did not yield; otherwise queues it (if
    /// runnable) and runs the head of the queue for a fresh slice; idles if the queue is empty.
    pub fn schedule(&mut self, cpu: CpuId, now: u64, next_timer: Option<u64>) -> Decision {
        let Some(state) = self.cpus.get(cpu.index()) else {
            return Decision {
                prev: None,
                next: None,
                until: next_timer,
            };
        };
        let (prev_slot, started, slice_end) = (state.current, state.started, state.slice_end);
        let prev = prev_slot.map(|s| self.entry(usize::from(s)).id);
        if let Some(slot) = prev_slot.map(usize::from) {
            let e = self.entry_mut(slot);
            e.runtime += now.saturating_sub(started);
            let (yielded, home) = (e.yielded, e.cpu);
            e.yielded = false;
            self.cpus[cpu.index()].started = now;
            let keep = self.runnable(slot) && !yielded && now < slice_end && home == cpu;
            if keep {
                return Decision {
                    prev,
                    next: prev,
                    until: Some(next_timer.map_or(slice_end, |t| t.min(slice_end))),
                };
            }
            self.cpus[cpu.index()].current = None;
            self.entry_mut(slot).running = None;
            self.enqueue_if_runnable(slot);
        }
        let state = &mut self.cpus[cpu.index()];
        let Some(slot) = state.queue.pop_front() else {
            return Decision {
                prev,
                next: None,
                until: next_timer,
            };
        };
        let slice_end = now.saturating_add(self.slice);
        state.current = Some(slot);
        state.started = now;
        state.slice_end = slice_end;
        let e = self.entry_mut(usize::from(slot));
        e.queued = false;
        e.running = Some(cpu);
        Decision {
            prev,
            next: Some(e.id),
            until: Some(next_timer.map_or(slice_end, |t| t.min(slice_end))),
        }
    }

    /// Checks the invariants in the module documentation.
    pub fn check(&self) -> Result<(), &'static str> {
        let mut seen = [false; N];
        for (c, cpu) in self.cpus.iter().enumerate() {
            for slot in cpu.queue.iter().chain(cpu.current) {
                let slot = usize::from(slot);
                if core::mem::replace(&mut seen[slot], true) {
                    return Err("a vcpu is in two places");
                }
                let Some(e) = self.vcpus[slot] else {
                    return Err("a queue holds a removed vcpu");
                };
                if cpu.current == Some(slot as u16) {
                    if e.running != Some(CpuId(c as u16)) {
                        return Err("a current vcpu does not know where it runs");
                    }
                } else {
                    if !e.queued || !self.runnable(slot) {
                        return Err("a queued vcpu is not runnable or not marked queued");
                    }
                    if e.cpu.index() != c {
                        return Err("a vcpu is queued on another cpu than its own");
                    }
                }
            }
        }
        for (slot, e) in self.vcpus.iter().enumerate() {
            if let Some(e) = e {
                if e.queued && !seen[slot] {
                    return Err("a vcpu marked queued is in no queue");
                }
                if self.runnable(slot) && !seen[slot] {
                    return Err("a runnable vcpu is neither queued nor running");
                }
                if let Some(c) = e.running
                    && self.cpus[c.index()].current != Some(slot as u16)
                {
                    return Err("a vcpu thinks it runs on a cpu that runs another");
                }
            }
        }
        Ok(())
    }
}

/// A vCPU reference from its parts.
pub const fn vcpu(domain: DomId, vcpu: VcpuId) -> VcpuRef {
    VcpuRef { domain, vcpu }
}
