//! The event upcall and guest time, for `event.*` and `time.*`.
//!
//! The event callback is an assembly stub: it saves the caller-saved registers, calls
//! [`selftest_upcall`] (which records the bounce frame, clears `evtchn_upcall_pending`,
//! takes `evtchn_pending_sel` and clears and counts every pending, unmasked port of the
//! selected words), restores the registers and returns through the `iret` hypercall, which
//! restores the event mask from the frame's `rflags.IF`. The hypervisor masks events while
//! the callback runs, so the handler never nests.
//!
//! Events stay masked for the whole run except between [`events_on`] and [`events_off`]
//! and inside `SCHEDOP_block`. While they are on, an upcall may interrupt any Rust code:
//! the frame goes below the interrupted `rsp` (this target has no red zone), the handler
//! touches only the atomics below and the shared info page, and uses no SSE.

use core::mem::offset_of;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, compiler_fence};

use guest_abi::callback::{CallbackRegister, CallbackType};
use guest_abi::hypercall::Hypercall;
use guest_abi::runtime::hypercall;
use guest_abi::xen::VcpuInfo;
use guest_abi::{EvtchnPort, XenError};

use crate::domain;

/// Ports whose upcalls are counted one by one (the tests allocate low ports).
pub const COUNTED_PORTS: usize = 256;

/// Upcalls taken.
static COUNT: AtomicU64 = AtomicU64::new(0);
/// Per port: how many upcalls found it pending.
static HITS: [AtomicU32; COUNTED_PORTS] = [const { AtomicU32::new(0) }; COUNTED_PORTS];
/// The last port found pending (`u64::MAX`: none yet).
static LAST_PORT: AtomicU64 = AtomicU64::new(u64::MAX);
/// The last upcall's frame: `rip`, `cs` (saved mask in bits 32-39), `rflags`.
static LAST_RIP: AtomicU64 = AtomicU64::new(0);
static LAST_CS: AtomicU64 = AtomicU64::new(0);
static LAST_RFLAGS: AtomicU64 = AtomicU64::new(0);
/// `evtchn_upcall_mask` as the last upcall found it.
static LAST_MASK: AtomicU64 = AtomicU64::new(0);
/// Guest system time (ns) at the last upcall.
static LAST_TIME: AtomicU64 = AtomicU64::new(0);
/// Guest system time of the last [`TIMES`] upcalls, by upcall number modulo its length.
static TIMES: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];

/// The `iret` stub's offset in the hypercall page.
const IRET_STUB: usize = Hypercall::Iret.stub_offset();

core::arch::global_asm!(
    ".pushsection .text.selftest_upcall, \"ax\", @progbits",
    ".balign 16",
    ".globl selftest_upcall_entry",
    // rsp -> rcx, r11, rip, cs, rflags, rsp, ss; every other register is the interrupted
    // code's.
    "selftest_upcall_entry:",
    "push rax",
    "push rdx",
    "push rsi",
    "push rdi",
    "push r8",
    "push r9",
    "push r10",
    "push rbx",
    "lea rdi, [rsp + 64]",
    "mov rbx, rsp",
    "and rsp, -16",
    "cld",
    "call {handler}",
    "mov rsp, rbx",
    "pop rbx",
    "pop r10",
    "pop r9",
    "pop r8",
    "pop rdi",
    "pop rsi",
    "pop rdx",
    "pop rax",
    // rsp -> rcx, r11, rip, ...: the iret stub wants rcx and r11 in registers and
    // flags, rip, cs, rflags, rsp, ss on the stack.
    "pop rcx",
    "pop r11",
    "push 0",
    "jmp {hypercall_page} + {iret_stub}",
    ".popsection",
    handler = sym selftest_upcall,
    hypercall_page = sym guest_abi::runtime::hypercall_page,
    iret_stub = const IRET_STUB,
);

// The stub above, declared only to take its address.
unsafe extern "C" {
    fn selftest_upcall_entry();
}

/// The bounce frame the stub passes: `rcx, r11, rip, cs, rflags, rsp, ss`.
type Frame = [u64; 7];

/// The Rust half of the event callback.
extern "C" fn selftest_upcall(frame: *const Frame) {
    // SAFETY: the stub passes the address of the frame the hypervisor pushed.
    let frame = unsafe { frame.read() };
    LAST_RIP.store(frame[2], Ordering::Relaxed);
    LAST_CS.store(frame[3], Ordering::Relaxed);
    LAST_RFLAGS.store(frame[4], Ordering::Relaxed);
    if let Some(si) = domain::shared_info() {
        let si = si.cast_mut();
        // SAFETY: `si` maps the shared info page read-write (domain::map_shared_info);
        // the hypervisor changes these words concurrently, so they are accessed as
        // atomics (the only way Xen's 2-level ABI is meant to be used).
        unsafe {
            let vcpu = &raw mut (*si).vcpu_info[0];
            LAST_MASK.store(
                (&raw const (*vcpu).evtchn_upcall_mask)
                    .read_volatile()
                    .into(),
                Ordering::Relaxed,
            );
            (&raw mut (*vcpu).evtchn_upcall_pending).write_volatile(0);
            compiler_fence(Ordering::SeqCst);
            let sel =
                AtomicU64::from_ptr(&raw mut (*vcpu).evtchn_pending_sel).swap(0, Ordering::SeqCst);
            for word in bits(sel) {
                let pending = AtomicU64::from_ptr(&raw mut (*si).evtchn_pending[word]);
                let mask = (&raw const (*si).evtchn_mask[word]).read_volatile();
                for bit in bits(pending.load(Ordering::SeqCst) & !mask) {
                    pending.fetch_and(!(1 << bit), Ordering::SeqCst);
                    let port = word * 64 + bit;
                    LAST_PORT.store(port as u64, Ordering::Relaxed);
                    if let Some(hits) = HITS.get(port) {
                        hits.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
    let time = now().unwrap_or(0);
    LAST_TIME.store(time, Ordering::Relaxed);
    let n = COUNT.fetch_add(1, Ordering::SeqCst);
    TIMES[n as usize % TIMES.len()].store(time, Ordering::Relaxed);
}

/// The indices of the set bits of `word`, lowest first.
fn bits(mut word: u64) -> impl Iterator<Item = usize> {
    core::iter::from_fn(move || {
        if word == 0 {
            None
        } else {
            let bit = word.trailing_zeros() as usize;
            word &= word - 1;
            Some(bit)
        }
    })
}

/// Registers the stub as the event callback.
pub fn register() -> Result<u64, XenError> {
    let cb = CallbackRegister {
        type_: CallbackType::Event as u16,
        flags: 0,
        _hole: 0,
        address: selftest_upcall_entry as *const () as u64,
    };
    // SAFETY: the stub takes any upcall and returns through the iret hypercall.
    unsafe { hypercall::callback_register(&cb) }
}

/// What the upcalls recorded so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    /// Upcalls taken.
    pub count: u64,
    /// The last port found pending (`u64::MAX`: none).
    pub last_port: u64,
    /// The last frame's `rip`.
    pub rip: u64,
    /// The last frame's `cs` slot.
    pub cs: u64,
    /// The last frame's `rflags`.
    pub rflags: u64,
    /// `evtchn_upcall_mask` inside the last upcall.
    pub mask: u64,
    /// Guest system time at the last upcall.
    pub time: u64,
}

/// The record of the upcalls so far.
pub fn seen() -> Seen {
    Seen {
        count: COUNT.load(Ordering::SeqCst),
        last_port: LAST_PORT.load(Ordering::Relaxed),
        rip: LAST_RIP.load(Ordering::Relaxed),
        cs: LAST_CS.load(Ordering::Relaxed),
        rflags: LAST_RFLAGS.load(Ordering::Relaxed),
        mask: LAST_MASK.load(Ordering::Relaxed),
        time: LAST_TIME.load(Ordering::Relaxed),
    }
}

/// The times of upcalls `from..to` (by upcall count), as far as [`TIMES`] still holds
/// them, oldest first; the rest of the array is 0.
pub fn times(from: u64, to: u64) -> [u64; 16] {
    let mut out = [0; 16];
    let from = from.max(to.saturating_sub(TIMES.len() as u64));
    for (slot, n) in out.iter_mut().zip(from..to) {
        *slot = TIMES[n as usize % TIMES.len()].load(Ordering::Relaxed);
    }
    out
}

/// How many upcalls found `port` pending.
pub fn hits(port: EvtchnPort) -> u32 {
    HITS.get(port.0 as usize)
        .map_or(0, |h| h.load(Ordering::SeqCst))
}

/// `vcpu_info[0].evtchn_upcall_mask`, and a pointer to it.
fn upcall_mask() -> Option<*mut u8> {
    let si = domain::shared_info()?.cast_mut();
    // SAFETY: only the address is computed; `si` maps the shared info page.
    Some(unsafe { &raw mut (*si).vcpu_info[0].evtchn_upcall_mask })
}

/// Unmasks event delivery; a pending upcall arrives at once (through a null hypercall,
/// as Linux's `xen_irq_enable` does).
pub fn events_on() {
    let Some(mask) = upcall_mask() else { return };
    // SAFETY: `mask` points into the mapped shared info page; the handler is registered
    // before any caller turns events on.
    unsafe { mask.write_volatile(0) };
    compiler_fence(Ordering::SeqCst);
    if vcpu0_byte(offset_of!(VcpuInfo, evtchn_upcall_pending)) != 0 {
        let _ = hypercall::xen_version();
    }
}

/// Masks event delivery again.
pub fn events_off() {
    let Some(mask) = upcall_mask() else { return };
    // SAFETY: as in `events_on`.
    unsafe { mask.write_volatile(1) };
    compiler_fence(Ordering::SeqCst);
}

/// The byte at `offset` in `vcpu_info[0]` (0 if shared info is not mapped).
fn vcpu0_byte(offset: usize) -> u8 {
    let Some(si) = domain::shared_info() else {
        return 0;
    };
    // SAFETY: `si` maps the shared info page and `offset` is inside vcpu_info[0]; read
    // volatile because the hypervisor writes it.
    unsafe {
        (&raw const (*si).vcpu_info[0])
            .cast::<u8>()
            .add(offset)
            .read_volatile()
    }
}

/// `vcpu_info[0].evtchn_upcall_mask`.
pub fn masked() -> bool {
    vcpu0_byte(offset_of!(VcpuInfo, evtchn_upcall_mask)) != 0
}

/// Whether `port`'s bit is set in `evtchn_pending` (or `evtchn_mask` with `mask`).
fn port_bit(port: EvtchnPort, mask: bool) -> Option<&'static AtomicU64> {
    let si = domain::shared_info()?.cast_mut();
    let word = port.0 as usize / 64;
    if word >= 64 {
        return None;
    }
    // SAFETY: `si` maps the shared info page for the rest of the run; the words are
    // shared with the hypervisor and accessed atomically.
    unsafe {
        let ptr: *mut u64 = if mask {
            &raw mut (*si).evtchn_mask[word]
        } else {
            &raw mut (*si).evtchn_pending[word]
        };
        Some(AtomicU64::from_ptr(ptr))
    }
}

/// Whether `port` is pending in shared info.
pub fn pending(port: EvtchnPort) -> bool {
    port_bit(port, false).is_some_and(|w| w.load(Ordering::SeqCst) & (1 << (port.0 % 64)) != 0)
}

/// Whether `port` is masked in shared info.
pub fn is_masked(port: EvtchnPort) -> bool {
    port_bit(port, true).is_some_and(|w| w.load(Ordering::SeqCst) & (1 << (port.0 % 64)) != 0)
}

/// Sets or clears `port`'s bit in `evtchn_mask` (what a guest does itself to mask).
pub fn set_mask(port: EvtchnPort, on: bool) {
    if let Some(w) = port_bit(port, true) {
        let bit = 1 << (port.0 % 64);
        if on {
            w.fetch_or(bit, Ordering::SeqCst);
        } else {
            w.fetch_and(!bit, Ordering::SeqCst);
        }
    }
}

/// Guest system time in ns from `vcpu_info[0].time` (pvclock, with Xen's version
/// protocol), or `None` before shared info is mapped.
pub fn now() -> Option<u64> {
    let si = domain::shared_info()?;
    // SAFETY: `si` maps the shared info page; the hypervisor rewrites the record under
    // its version protocol, so each field is read volatile between two reads of the
    // version.
    unsafe {
        let t = &raw const (*si).vcpu_info[0].time;
        loop {
            let version = (&raw const (*t).version).read_volatile();
            compiler_fence(Ordering::SeqCst);
            let stamp = (&raw const (*t).tsc_timestamp).read_volatile();
            let system = (&raw const (*t).system_time).read_volatile();
            let mul = (&raw const (*t).tsc_to_system_mul).read_volatile();
            let shift = (&raw const (*t).tsc_shift).read_volatile();
            let tsc = core::arch::x86_64::_rdtsc();
            compiler_fence(Ordering::SeqCst);
            if version & 1 != 0 || (&raw const (*t).version).read_volatile() != version {
                continue;
            }
            let delta = tsc.wrapping_sub(stamp);
            let delta = if shift >= 0 {
                delta << shift
            } else {
                delta >> -shift
            };
            return Some(system.wrapping_add(((u128::from(delta) * u128::from(mul)) >> 32) as u64));
        }
    }
}

/// The pvclock record's version, multiplier and shift (for the checks).
pub fn time_info() -> Option<(u32, u32, i8)> {
    let si = domain::shared_info()?;
    // SAFETY: as in `now`.
    unsafe {
        let t = &raw const (*si).vcpu_info[0].time;
        Some((
            (&raw const (*t).version).read_volatile(),
            (&raw const (*t).tsc_to_system_mul).read_volatile(),
            (&raw const (*t).tsc_shift).read_volatile(),
        ))
    }
}
