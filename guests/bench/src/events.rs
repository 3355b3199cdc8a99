//! Event channels: the shared info page (mapped over a spare page), the event upcall (its
//! assembly entry and its Rust half), and the loopback channel the event benchmarks send on.
//!
//! The loopback: `EVTCHNOP_alloc_unbound(DOMID_SELF, DOMID_SELF)` gives port `a`;
//! `EVTCHNOP_bind_interdomain(DOMID_SELF, a)` gives port `b`, its other end. A send on `b`
//! makes `a` pending, which raises an upcall when `a` and the vCPU's events are unmasked.

use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering, fence};

use guest_abi::callback::{CallbackRegister, CallbackType};
use guest_abi::event_channel::{EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindVirq};
use guest_abi::runtime::{hypercall, user};
use guest_abi::xen::{SharedInfo, UVMF_INVLPG, VcpuTimeInfo, Virq};
use guest_abi::{DomId, PAGE_SHIFT, VirtAddr};

use crate::error::Error;
use crate::pt::{DATA, Spare};
use crate::stats;
use crate::traps::Entry;

/// The shared info page once mapped (0 before).
static SHARED: AtomicU64 = AtomicU64::new(0);
/// The port whose upcalls are counted (0: none yet).
static COUNTED_PORT: AtomicU64 = AtomicU64::new(0);
/// Upcalls that found [`COUNTED_PORT`] pending.
pub static UPCALLS: AtomicU64 = AtomicU64::new(0);
/// Other ports found pending by the upcall.
pub static OTHER_EVENTS: AtomicU64 = AtomicU64::new(0);
/// The port `VIRQ_TIMER` is bound to (0: none), whose upcall [`TIMER_TSC`] records.
static TIMER_PORT: AtomicU64 = AtomicU64::new(0);
/// The TSC when the upcall last found [`TIMER_PORT`] pending (0: not since cleared).
pub static TIMER_TSC: AtomicU64 = AtomicU64::new(0);

fn shared() -> Option<*mut SharedInfo> {
    match SHARED.load(Ordering::Relaxed) {
        0 => None,
        va => Some(va as *mut SharedInfo),
    }
}

/// Maps the shared info page (`start_info.shared_info` is its machine address) over
/// [`Spare::SharedInfo`].
pub fn map_shared_info(shared_info_maddr: u64) -> Result<(), Error> {
    let va = Spare::SharedInfo.va();
    let pte = ((shared_info_maddr >> PAGE_SHIFT) << PAGE_SHIFT) | DATA;
    // SAFETY: the spare page is ours and unused; replacing its frame by the shared info
    // frame changes no memory Rust relies on.
    unsafe { hypercall::update_va_mapping(VirtAddr(va), pte, UVMF_INVLPG) }
        .map_err(|e| Error::xen("update_va_mapping(shared_info)", e))?;
    SHARED.store(va, Ordering::Relaxed);
    Ok(())
}

/// `vcpu_info[0].evtchn_upcall_mask`, as an atomic byte.
fn upcall_mask() -> Option<&'static AtomicU8> {
    let p = shared()?;
    // SAFETY: the shared info page stays mapped; the hypervisor writes the byte
    // concurrently, so it is only accessed atomically.
    Some(unsafe { AtomicU8::from_ptr(&raw mut (*p).vcpu_info[0].evtchn_upcall_mask) })
}

/// Masks (`true`) or unmasks vCPU 0's event upcalls. Unmasking does not itself deliver
/// what is pending: the next exit to the hypervisor does.
pub fn mask_upcalls(masked: bool) {
    if let Some(m) = upcall_mask() {
        m.store(u8::from(masked), Ordering::SeqCst);
    }
}

/// Word `port / 64` of `evtchn_pending` or `evtchn_mask`, as an atomic.
fn word(mask: bool, port: u64) -> Option<&'static AtomicU64> {
    let p = shared()?;
    let w = (port / 64) as usize % 64;
    // SAFETY: as in `upcall_mask`; the words are 8-byte aligned.
    Some(unsafe {
        if mask {
            AtomicU64::from_ptr(&raw mut (*p).evtchn_mask[w])
        } else {
            AtomicU64::from_ptr(&raw mut (*p).evtchn_pending[w])
        }
    })
}

/// Sets or clears `port`'s mask bit.
pub fn mask_port(port: u64, masked: bool) {
    if let Some(w) = word(true, port) {
        let bit = 1u64 << (port % 64);
        if masked {
            w.fetch_or(bit, Ordering::SeqCst);
        } else {
            w.fetch_and(!bit, Ordering::SeqCst);
        }
    }
}

/// Whether `port` is pending.
pub fn is_pending(port: u64) -> bool {
    word(false, port).is_some_and(|w| w.load(Ordering::SeqCst) & (1u64 << (port % 64)) != 0)
}

/// Clears `port`'s pending bit.
pub fn clear_pending(port: u64) {
    if let Some(w) = word(false, port) {
        w.fetch_and(!(1u64 << (port % 64)), Ordering::SeqCst);
    }
}

core::arch::global_asm!(
    ".pushsection .text.bench_events, \"ax\", @progbits",
    // The event upcall (like the handlers of `traps`, it runs only inside a benchmark's
    // hypercalls, on the stack it interrupts, and preserves every register): the Rust half
    // clears what is pending; iret restores the event mask from the frame's IF.
    ".balign 16",
    ".globl bench_event_entry",
    "bench_event_entry:",
    "push rax",
    "push rdx",
    "push rsi",
    "push rdi",
    "push r8",
    "push r9",
    "push r10",
    "push rbp",
    "mov rbp, rsp",
    "and rsp, -16",
    "call {upcall}",
    "mov rsp, rbp",
    "pop rbp",
    "pop r10",
    "pop r9",
    "pop r8",
    "pop rdi",
    "pop rsi",
    "pop rdx",
    "pop rax",
    "jmp {bounce_return}",
    ".popsection",
    upcall = sym upcall,
    bounce_return = sym user::bounce_return,
);

// The label of the assembly above, declared as a function only to take its address.
unsafe extern "C" {
    fn bench_event_entry();
}

/// The Rust half of the event upcall (called from `bench_event_entry` with events masked):
/// takes the pending selector, clears every pending unmasked port, counts them.
extern "C" fn upcall() {
    let Some(p) = shared() else { return };
    // SAFETY: the shared info page stays mapped; every field shared with the hypervisor is
    // accessed atomically.
    let (pending_flag, sel) = unsafe {
        (
            AtomicU8::from_ptr(&raw mut (*p).vcpu_info[0].evtchn_upcall_pending),
            AtomicU64::from_ptr(&raw mut (*p).vcpu_info[0].evtchn_pending_sel),
        )
    };
    let tsc = crate::run::rdtsc();
    pending_flag.store(0, Ordering::SeqCst);
    let mut words = sel.swap(0, Ordering::SeqCst);
    let counted = COUNTED_PORT.load(Ordering::Relaxed);
    let timer = TIMER_PORT.load(Ordering::Relaxed);
    while words != 0 {
        let w = u64::from(words.trailing_zeros());
        words &= words - 1;
        let (Some(pending), Some(mask)) = (word(false, w * 64), word(true, w * 64)) else {
            return;
        };
        let mut ports = pending.load(Ordering::SeqCst) & !mask.load(Ordering::SeqCst);
        pending.fetch_and(!ports, Ordering::SeqCst);
        while ports != 0 {
            let port = w * 64 + u64::from(ports.trailing_zeros());
            ports &= ports - 1;
            if port == counted && counted != 0 {
                UPCALLS.fetch_add(1, Ordering::Relaxed);
            } else if port == timer && timer != 0 {
                TIMER_TSC.store(tsc, Ordering::Relaxed);
            } else {
                OTHER_EVENTS.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The two ends of the loopback channel.
#[derive(Clone, Copy, Debug)]
pub struct Loopback {
    /// The end that receives (counted by the upcall).
    pub receiver: u64,
    /// The end the benchmarks send on.
    pub sender: u64,
}

/// Registers the event and failsafe callbacks and creates the loopback channel, both ends
/// masked and not pending.
pub fn setup() -> Result<Loopback, Error> {
    for (ty, address, what) in [
        (
            CallbackType::Event,
            bench_event_entry as *const () as u64,
            "callback_op(event)",
        ),
        (
            CallbackType::Failsafe,
            Entry::Failsafe.addr(),
            "callback_op(failsafe)",
        ),
    ] {
        let cb = CallbackRegister {
            type_: ty as u16,
            flags: 0,
            _hole: 0,
            address,
        };
        // SAFETY: the addresses are the event upcall's entry above and the failsafe entry of
        // `traps`, made for these callbacks.
        unsafe { hypercall::callback_register(&cb) }.map_err(|e| Error::xen(what, e))?;
    }
    let mut alloc = EvtchnAllocUnbound {
        dom: DomId::SELF.0,
        remote_dom: DomId::SELF.0,
        port: 0,
    };
    hypercall::event_channel_op(&mut alloc)
        .map_err(|e| Error::xen("evtchn_alloc_unbound(self,self)", e))?;
    let mut bind = EvtchnBindInterdomain {
        remote_dom: DomId::SELF.0,
        _hole: 0,
        remote_port: alloc.port,
        local_port: 0,
    };
    hypercall::event_channel_op(&mut bind)
        .map_err(|e| Error::xen("evtchn_bind_interdomain(self)", e))?;
    let lb = Loopback {
        receiver: u64::from(alloc.port),
        sender: u64::from(bind.local_port),
    };
    for port in [lb.receiver, lb.sender] {
        mask_port(port, true);
        clear_pending(port);
    }
    COUNTED_PORT.store(lb.receiver, Ordering::Relaxed);
    Ok(lb)
}

/// Binds `VIRQ_TIMER` to a new port (masked, not pending), whose upcalls record the TSC
/// in [`TIMER_TSC`].
pub fn bind_timer() -> Result<u64, Error> {
    let mut bind = EvtchnBindVirq {
        virq: Virq::Timer as u32,
        vcpu: 0,
        port: 0,
    };
    hypercall::event_channel_op(&mut bind).map_err(|e| Error::xen("evtchn_bind_virq(TIMER)", e))?;
    let port = u64::from(bind.port);
    mask_port(port, true);
    clear_pending(port);
    TIMER_PORT.store(port, Ordering::Relaxed);
    Ok(port)
}

/// vCPU 0's pvclock record, read consistently (an even `version` that did not change).
fn time_info() -> Option<VcpuTimeInfo> {
    let p = shared()?;
    // SAFETY: only the record's address is taken; the shared info page stays mapped.
    let time = unsafe { &raw const (*p).vcpu_info[0].time };
    loop {
        // SAFETY: the record is in the mapped shared info page and the hypervisor rewrites
        // it at any time: `version` is read atomically (odd while it is updated), the rest
        // volatile, then `version` again to check that nothing changed in between.
        let (v0, t, v1) = unsafe {
            let version = AtomicU32::from_ptr((&raw const (*time).version).cast_mut());
            let v0 = version.load(Ordering::Acquire);
            let t = time.read_volatile();
            fence(Ordering::Acquire);
            (v0, t, version.load(Ordering::Acquire))
        };
        if v0 % 2 == 0 && v0 == v1 {
            return Some(t);
        }
    }
}

/// System time in ns (pvclock) at TSC value `tsc`; 0 before the shared info page is
/// mapped.
pub fn tsc_to_ns(tsc: u64) -> u64 {
    time_info().map_or(0, |t| {
        stats::pvclock_ns(
            t.system_time,
            tsc.wrapping_sub(t.tsc_timestamp),
            t.tsc_to_system_mul,
            t.tsc_shift,
        )
    })
}

/// System time in ns now.
pub fn now_ns() -> u64 {
    tsc_to_ns(crate::run::rdtsc())
}

/// vCPU 0's pvclock record: `tsc_to_system_mul` and `tsc_shift`.
pub fn pvclock() -> Option<(u32, i8)> {
    let p = shared()?;
    // SAFETY: as in `upcall_mask`; a torn read only spoils an informational line.
    let t = unsafe { (&raw const (*p).vcpu_info[0].time).read_volatile() };
    Some((t.tsc_to_system_mul, t.tsc_shift))
}
