//! Time and event channels, without an event callback: dom0 runs with event delivery
//! masked (as the hypervisor starts it) and sleeps with `SCHEDOP_poll` on the ports it
//! cares about, with a timeout. Poll wakes on a pending port whether or not the port or
//! the vCPU is masked; the kernel then clears the pending bits itself in the shared info
//! page (`evtchn_pending`), which it maps by its machine address
//! (`start_info.shared_info`). The clock is the pvclock record of vCPU 0 in the same page.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

use guest_abi::event_channel::EvtchnBindVirq;
use guest_abi::runtime::hypercall;
use guest_abi::xen::{SharedInfo, StartInfo, VcpuTimeInfo, Virq};
use guest_abi::{DomId, EvtchnPort, Mfn, PAGE_SHIFT, XenError};

use super::mapping::{self, Mapping};

/// `SCHEDOP_poll` takes at most this many ports (Xen's limit).
pub const MAX_POLL_PORTS: usize = 128;

/// The shared info page, the clock and the `VIRQ_DOM_EXC` port.
pub struct Events {
    shared: Mapping,
    dom_exc: Option<EvtchnPort>,
}

impl Events {
    /// Maps the shared info page and binds `VIRQ_DOM_EXC` (if the hypervisor refuses,
    /// [`Self::dom_exc_port`] is `None` and the caller checks the domains by itself).
    pub fn new(si: &StartInfo) -> Result<Self, XenError> {
        let shared = mapping::map(DomId::SELF, Mfn(si.shared_info >> PAGE_SHIFT))?;
        let mut bind = EvtchnBindVirq {
            virq: Virq::DomExc as u32,
            vcpu: 0,
            port: 0,
        };
        let dom_exc = hypercall::event_channel_op(&mut bind)
            .map(|_| EvtchnPort(bind.port))
            .map_err(|e| guest_abi::println!("dom0: cannot bind VIRQ_DOM_EXC: {e}"))
            .ok();
        Ok(Self { shared, dom_exc })
    }

    /// The port `VIRQ_DOM_EXC` is bound to.
    pub fn dom_exc_port(&self) -> Option<EvtchnPort> {
        self.dom_exc
    }

    fn info(&self) -> *const SharedInfo {
        self.shared.va().0 as *const SharedInfo
    }

    /// Word `i` of `evtchn_pending`.
    fn pending_word(&self, i: usize) -> &AtomicU64 {
        // SAFETY: the shared info page stays mapped while `self` lives; the hypervisor sets
        // bits concurrently, so the word is only touched atomically (AtomicU64 has u64's
        // layout, and the field is 8-byte aligned).
        unsafe {
            AtomicU64::from_ptr((&raw const (*self.info()).evtchn_pending[i % 64]).cast_mut())
        }
    }

    /// Clears `port`'s pending bit; returns whether it was set.
    fn take_pending(&self, port: EvtchnPort) -> bool {
        let (word, bit) = (port.0 as usize / 64, port.0 % 64);
        self.pending_word(word)
            .fetch_and(!(1 << bit), Ordering::SeqCst)
            & (1 << bit)
            != 0
    }

    /// Sleeps until an event on one of `ports` or `VIRQ_DOM_EXC`, or for `millis`;
    /// clears the pending bits of all of them; returns whether `VIRQ_DOM_EXC` fired.
    pub fn wait(&mut self, ports: &[EvtchnPort], millis: u64) -> bool {
        let mut list: Vec<EvtchnPort> = self.dom_exc.into_iter().collect();
        list.extend(ports.iter().take(MAX_POLL_PORTS - list.len()));
        let deadline = self.now_ns() + millis * 1_000_000;
        if let Err(e) = hypercall::sched_poll(&list, deadline) {
            guest_abi::println!("dom0: SCHEDOP_poll failed: {e}");
        }
        for &p in ports {
            self.take_pending(p);
        }
        self.take_dom_exc()
    }

    /// Clears `VIRQ_DOM_EXC`'s pending bit; returns whether it was set.
    pub fn take_dom_exc(&self) -> bool {
        self.dom_exc.is_some_and(|p| self.take_pending(p))
    }

    /// System time in nanoseconds (the hypervisor's clock since boot), from the pvclock
    /// record of vCPU 0.
    pub fn now_ns(&self) -> u64 {
        // SAFETY: only the address of the record is taken; the page is mapped.
        let time = unsafe { &raw const (*self.info()).vcpu_info[0].time };
        loop {
            // SAFETY: the record is in the mapped shared info page; the hypervisor rewrites
            // it at any time, so `version` is read atomically (odd: update in progress) and
            // the rest volatile, then `version` again to check nothing changed.
            let (v0, t, v1) = unsafe {
                let version = AtomicU32::from_ptr((&raw const (*time).version).cast_mut());
                let v0 = version.load(Ordering::Acquire);
                let t: VcpuTimeInfo = time.read_volatile();
                fence(Ordering::Acquire);
                (v0, t, version.load(Ordering::Acquire))
            };
            if v0 % 2 == 0 && v0 == v1 {
                return pvclock_ns(&t, rdtsc());
            }
        }
    }
}

/// The pvclock formula: system time at `tsc`.
pub fn pvclock_ns(t: &VcpuTimeInfo, tsc: u64) -> u64 {
    let mut delta = tsc.wrapping_sub(t.tsc_timestamp);
    if t.tsc_shift >= 0 {
        delta <<= t.tsc_shift;
    } else {
        delta >>= -i32::from(t.tsc_shift);
    }
    let scaled = (u128::from(delta) * u128::from(t.tsc_to_system_mul)) >> 32;
    t.system_time.wrapping_add(scaled as u64)
}

fn rdtsc() -> u64 {
    // SAFETY: rdtsc only reads the time-stamp counter (PV guests may execute it).
    unsafe { core::arch::x86_64::_rdtsc() }
}
