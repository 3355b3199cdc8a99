//! Event channels from the guest's side: the shared info page (mapped on first use over a
//! page of the runtime's own image), a port's pending bit, waiting on a port with
//! `SCHEDOP_poll` (events stay masked, as the runtime assumes), and system time from the
//! pvclock of vCPU 0.

use core::sync::atomic::{AtomicU64, Ordering, fence};

use super::{AsmCell, hypercall, start_info};
use crate::arch::PteFlags;
use crate::event_channel::{EVTCHN_2L_NR_CHANNELS, EvtchnStatus};
use crate::xen::{SharedInfo, UVMF_INVLPG, VcpuTimeInfo};
use crate::{DomId, EvtchnPort, VirtAddr, XenError};

/// A page of the image whose frame is replaced by the shared info frame.
#[repr(C, align(4096))]
struct Page([u8; 4096]);

static SHARED_INFO_PAGE: AsmCell<Page> = AsmCell::new(Page([0; 4096]));
/// The virtual address of the shared info page once mapped (0 before).
static SHARED_INFO: AtomicU64 = AtomicU64::new(0);

/// The shared info page, mapped with `update_va_mapping` the first time it is asked for
/// (`start_info.shared_info` is its machine address).
pub fn shared_info() -> Result<*mut SharedInfo, XenError> {
    let va = SHARED_INFO.load(Ordering::Relaxed);
    if va != 0 {
        return Ok(va as *mut SharedInfo);
    }
    let va = SHARED_INFO_PAGE.addr();
    let flags = PteFlags::PRESENT | PteFlags::RW | PteFlags::ACCESSED | PteFlags::DIRTY;
    let pte = (start_info().shared_info & PteFlags::ADDR_MASK) | flags.bits();
    // SAFETY: the page belongs to this static, which nothing else reads or writes; giving its
    // virtual address the shared info frame instead changes no memory Rust relies on.
    unsafe { hypercall::update_va_mapping(VirtAddr(va), pte, UVMF_INVLPG) }?;
    SHARED_INFO.store(va, Ordering::Relaxed);
    Ok(va as *mut SharedInfo)
}

/// The word of `evtchn_pending` that holds `port`'s bit, and the bit.
fn pending_word(port: EvtchnPort) -> Result<(&'static AtomicU64, u64), XenError> {
    if port.0 >= EVTCHN_2L_NR_CHANNELS {
        return Err(XenError::Inval);
    }
    let si = shared_info()?;
    // SAFETY: `si` maps the shared info page for the rest of the guest's life; its pending
    // words are shared with the hypervisor, which changes them atomically, so they are only
    // accessed as atomics here. The index is below 64 (checked above).
    let word = unsafe { AtomicU64::from_ptr(&raw mut (*si).evtchn_pending[port.0 as usize / 64]) };
    Ok((word, 1 << (port.0 % 64)))
}

/// Clears `port`'s pending bit; returns whether it was set.
pub fn take_pending(port: EvtchnPort) -> Result<bool, XenError> {
    let (word, bit) = pending_word(port)?;
    Ok(word.fetch_and(!bit, Ordering::SeqCst) & bit != 0)
}

/// Waits until `port` is pending (with `SCHEDOP_poll`, no timeout), and clears it: one event
/// received. Events that arrived before the call count.
pub fn wait(port: EvtchnPort) -> Result<(), XenError> {
    while !take_pending(port)? {
        hypercall::sched_poll(&[port], 0)?;
    }
    Ok(())
}

/// Waits until `port` is pending or system time reaches `deadline_ns`; clears the pending
/// bit and returns whether it was set.
pub fn wait_until(port: EvtchnPort, deadline_ns: u64) -> Result<bool, XenError> {
    loop {
        if take_pending(port)? {
            return Ok(true);
        }
        if now_ns()? >= deadline_ns {
            return Ok(false);
        }
        hypercall::sched_poll(&[port], deadline_ns)?;
    }
}

/// System time in nanoseconds: vCPU 0's pvclock record, read under its version protocol
/// (`ENOSYS` if the hypervisor has published none).
pub fn now_ns() -> Result<u64, XenError> {
    let si = shared_info()?;
    // SAFETY: `si` maps the shared info page (see `pending_word`); the hypervisor rewrites
    // the record concurrently, hence volatile reads through a raw pointer, checked by the
    // version protocol below.
    let record = unsafe { &raw const (*si).vcpu_info[0].time };
    loop {
        // SAFETY: as above.
        let version = unsafe { (&raw const (*record).version).read_volatile() };
        fence(Ordering::Acquire);
        // SAFETY: as above.
        let time: VcpuTimeInfo = unsafe { record.read_volatile() };
        // SAFETY: rdtsc only reads the time-stamp counter.
        let tsc = unsafe { core::arch::x86_64::_rdtsc() };
        fence(Ordering::Acquire);
        // SAFETY: as above.
        let again = unsafe { (&raw const (*record).version).read_volatile() };
        if version % 2 == 0 && version == again {
            // A record never published (all zero) gives no time at all.
            if time.tsc_to_system_mul == 0 {
                return Err(XenError::NoSys);
            }
            return Ok(time.system_time_at(tsc));
        }
    }
}

/// `EVTCHNOP_status` of the guest's own `port`.
pub fn status(port: EvtchnPort) -> Result<EvtchnStatus, XenError> {
    let mut arg = EvtchnStatus {
        dom: DomId::SELF.0,
        port: port.0,
        ..EvtchnStatus::default()
    };
    hypercall::event_channel_op(&mut arg)?;
    Ok(arg)
}
