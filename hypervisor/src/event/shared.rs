//! The 2-level event ABI over an abstract view of the guest's `shared_info` page.
//!
//! Xen's `event_2l.c` in Rust: the bit operations on `evtchn_pending`, `evtchn_mask`,
//! `evtchn_pending_sel` and `evtchn_upcall_pending`, done in the order Xen does them so that a
//! guest scanning the page concurrently never loses an edge. The page itself is reached through
//! [`SharedInfoView`], whose methods are atomic read-modify-write operations: the hypervisor
//! implements it over the real page (or uses [`SharedInfo`], a layout-exact atomic mirror of
//! Xen's `struct shared_info`), and host tests use the same type as a fake.

use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use super::abi::{BITS_PER_EVTCHN_WORD, EvtchnPort, MAX_VCPUS, VcpuId};
use crate::time::pvclock::{VcpuTimeInfo, WallclockSink};

/// Atomic access to the parts of a domain's `shared_info` (and its vCPUs' `vcpu_info`) that event
/// delivery touches. Word indices are below 64 and vCPUs below [`MAX_VCPUS`]; callers guarantee
/// both. Every operation must be a single atomic access (on x86 a `lock`-prefixed instruction for
/// the read-modify-writes), because the guest changes the same words concurrently.
pub trait SharedInfoView {
    /// The shared-info page (pending and mask bitmaps).
    fn page(&self) -> &SharedInfo;
    /// Where `vcpu`'s `vcpu_info` is, if the vCPU can have one.
    fn vcpu_slot(&self, vcpu: VcpuId) -> Option<&VcpuInfo>;

    /// `evtchn_pending[word] |= bits`, returning the old word.
    fn pending_fetch_or(&self, word: usize, bits: u64) -> u64 {
        self.page().evtchn_pending[word].fetch_or(bits, Ordering::SeqCst)
    }
    /// `evtchn_pending[word] &= bits`, returning the old word.
    fn pending_fetch_and(&self, word: usize, bits: u64) -> u64 {
        self.page().evtchn_pending[word].fetch_and(bits, Ordering::SeqCst)
    }
    /// `evtchn_pending[word]`.
    fn pending_load(&self, word: usize) -> u64 {
        self.page().evtchn_pending[word].load(Ordering::SeqCst)
    }
    /// `evtchn_mask[word]`.
    fn mask_load(&self, word: usize) -> u64 {
        self.page().evtchn_mask[word].load(Ordering::SeqCst)
    }
    /// `evtchn_mask[word] &= bits`, returning the old word.
    fn mask_fetch_and(&self, word: usize, bits: u64) -> u64 {
        self.page().evtchn_mask[word].fetch_and(bits, Ordering::SeqCst)
    }
    /// `vcpu_info[vcpu].evtchn_pending_sel |= bits`, returning the old selector.
    fn pending_sel_fetch_or(&self, vcpu: VcpuId, bits: u64) -> u64 {
        self.vcpu_slot(vcpu)
            .map_or(0, |v| v.evtchn_pending_sel.fetch_or(bits, Ordering::SeqCst))
    }
    /// Sets `vcpu_info[vcpu].evtchn_upcall_pending`, returning whether it was already set.
    fn upcall_pending_test_and_set(&self, vcpu: VcpuId) -> bool {
        self.vcpu_slot(vcpu)
            .is_some_and(|v| v.evtchn_upcall_pending.swap(1, Ordering::SeqCst) != 0)
    }
    /// `vcpu_info[vcpu].evtchn_upcall_pending != 0`.
    fn upcall_pending(&self, vcpu: VcpuId) -> bool {
        self.vcpu_slot(vcpu)
            .is_some_and(|v| v.evtchn_upcall_pending.load(Ordering::SeqCst) != 0)
    }
    /// `vcpu_info[vcpu].evtchn_upcall_mask != 0`: the guest's virtual interrupt flag, clear.
    fn upcall_masked(&self, vcpu: VcpuId) -> bool {
        self.vcpu_slot(vcpu)
            .is_some_and(|v| v.evtchn_upcall_mask.load(Ordering::SeqCst) != 0)
    }
    /// Writes `vcpu_info[vcpu].evtchn_upcall_mask`.
    fn set_upcall_masked(&self, vcpu: VcpuId, masked: bool) {
        if let Some(v) = self.vcpu_slot(vcpu) {
            v.evtchn_upcall_mask
                .store(u8::from(masked), Ordering::SeqCst);
        }
    }
}

/// The word of the pending/mask arrays holding `port`, and the port's bit in it.
pub const fn port_bit(port: EvtchnPort) -> (usize, u64) {
    let p = port.index();
    (p / BITS_PER_EVTCHN_WORD, 1u64 << (p % BITS_PER_EVTCHN_WORD))
}

/// What [`set_pending`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Raised {
    /// The port was already pending: nothing changed, nobody is told (Xen drops the edge).
    AlreadyPending,
    /// The pending bit went from 0 to 1. `kick` says that `evtchn_upcall_pending` went from 0
    /// to 1 too, so the vCPU must be kicked: unblocked, and interrupted if it is running, so
    /// that it takes the upcall.
    Newly {
        /// The vCPU needs a kick.
        kick: bool,
    },
}

/// Xen's `evtchn_2l_set_pending` (without the poller check, which needs the port table):
/// test-and-set the pending bit; if it was clear and the port is unmasked, set the selector
/// bit; if that was clear, set `evtchn_upcall_pending` (Xen's `vcpu_mark_events_pending`).
pub fn set_pending<S: SharedInfoView + ?Sized>(
    shared: &S,
    vcpu: VcpuId,
    port: EvtchnPort,
) -> Raised {
    let (word, bit) = port_bit(port);
    if shared.pending_fetch_or(word, bit) & bit != 0 {
        return Raised::AlreadyPending;
    }
    let kick = shared.mask_load(word) & bit == 0 && raise_selector(shared, vcpu, word);
    Raised::Newly { kick }
}

/// Sets the selector bit for `word`; if it was clear, marks events pending on the vCPU.
/// Returns whether the vCPU needs a kick.
fn raise_selector<S: SharedInfoView + ?Sized>(shared: &S, vcpu: VcpuId, word: usize) -> bool {
    let sel = 1u64 << word;
    shared.pending_sel_fetch_or(vcpu, sel) & sel == 0 && !shared.upcall_pending_test_and_set(vcpu)
}

/// Xen's `evtchn_2l_clear_pending`.
pub fn clear_pending<S: SharedInfoView + ?Sized>(shared: &S, port: EvtchnPort) {
    let (word, bit) = port_bit(port);
    shared.pending_fetch_and(word, !bit);
}

/// Xen's `evtchn_2l_unmask`: clear the mask bit; if it was set and the port is pending,
/// re-raise the selector and `evtchn_upcall_pending` on `vcpu` (the port's notify vCPU).
/// Returns whether the vCPU needs a kick.
pub fn unmask<S: SharedInfoView + ?Sized>(shared: &S, vcpu: VcpuId, port: EvtchnPort) -> bool {
    let (word, bit) = port_bit(port);
    shared.mask_fetch_and(word, !bit) & bit != 0
        && shared.pending_load(word) & bit != 0
        && raise_selector(shared, vcpu, word)
}

/// Whether `port` is pending.
pub fn is_pending<S: SharedInfoView + ?Sized>(shared: &S, port: EvtchnPort) -> bool {
    let (word, bit) = port_bit(port);
    shared.pending_load(word) & bit != 0
}

/// Whether `port` is masked.
pub fn is_masked<S: SharedInfoView + ?Sized>(shared: &S, port: EvtchnPort) -> bool {
    let (word, bit) = port_bit(port);
    shared.mask_load(word) & bit != 0
}

/// Xen's `local_events_need_delivery` for a PV vCPU: an upcall is pending and not masked.
pub fn events_need_delivery<S: SharedInfoView + ?Sized>(shared: &S, vcpu: VcpuId) -> bool {
    shared.upcall_pending(vcpu) && !shared.upcall_masked(vcpu)
}

/// Xen's `struct vcpu_info` for x86-64 with every field atomic (the guest writes it
/// concurrently). 64 bytes.
#[repr(C)]
#[derive(Debug, Default)]
pub struct VcpuInfo {
    /// `evtchn_upcall_pending`: set by the hypervisor, cleared by the guest before it scans.
    pub evtchn_upcall_pending: AtomicU8,
    /// `evtchn_upcall_mask`: non-zero while the guest has event delivery disabled.
    pub evtchn_upcall_mask: AtomicU8,
    _pad0: [AtomicU8; 6],
    /// `evtchn_pending_sel`: one bit per word of `evtchn_pending` with news for this vCPU.
    pub evtchn_pending_sel: AtomicU64,
    /// `arch.cr2`: the faulting address of the last page fault bounced to the guest.
    pub arch_cr2: AtomicU64,
    _arch_pad: AtomicU64,
    /// `time`: this vCPU's pvclock record.
    pub time: VcpuTimeInfo,
}

/// Xen's `struct shared_info` for x86-64 with every field atomic. It is the first 3136 bytes
/// of the domain's shared_info frame; the rest of the frame is unused.
#[repr(C)]
#[derive(Debug)]
pub struct SharedInfo {
    /// `vcpu_info[XEN_LEGACY_MAX_VCPUS]`.
    pub vcpu_info: [VcpuInfo; MAX_VCPUS],
    /// `evtchn_pending[64]`: one bit per port.
    pub evtchn_pending: [AtomicU64; BITS_PER_EVTCHN_WORD],
    /// `evtchn_mask[64]`: one bit per port, written only by the guest.
    pub evtchn_mask: [AtomicU64; BITS_PER_EVTCHN_WORD],
    /// `wc_version`: odd while the wallclock is being updated.
    pub wc_version: AtomicU32,
    /// `wc_sec`: low 32 bits of the wallclock seconds at system time 0.
    pub wc_sec: AtomicU32,
    /// `wc_nsec`: nanoseconds part of the wallclock at system time 0.
    pub wc_nsec: AtomicU32,
    /// `wc_sec_hi`: high 32 bits of the wallclock seconds.
    pub wc_sec_hi: AtomicU32,
    /// `arch`: `struct arch_shared_info` (max_pfn, P2M frame list, NMI reason, P2M CR3, P2M
    /// virtual address, P2M generation), opaque here.
    pub arch: [AtomicU64; 6],
}

impl Default for SharedInfo {
    fn default() -> Self {
        Self::new()
    }
}

impl SharedInfo {
    /// An all-zero page: nothing pending, nothing masked, upcalls enabled.
    pub fn new() -> Self {
        Self {
            vcpu_info: core::array::from_fn(|_| VcpuInfo::default()),
            evtchn_pending: core::array::from_fn(|_| AtomicU64::new(0)),
            evtchn_mask: core::array::from_fn(|_| AtomicU64::new(0)),
            wc_version: AtomicU32::new(0),
            wc_sec: AtomicU32::new(0),
            wc_nsec: AtomicU32::new(0),
            wc_sec_hi: AtomicU32::new(0),
            arch: core::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Sets or clears the mask bit of `port`, as the guest does.
    pub fn set_masked(&self, port: EvtchnPort, masked: bool) {
        let (word, bit) = port_bit(port);
        if masked {
            self.evtchn_mask[word].fetch_or(bit, Ordering::SeqCst);
        } else {
            self.evtchn_mask[word].fetch_and(!bit, Ordering::SeqCst);
        }
    }
}

impl SharedInfoView for SharedInfo {
    fn page(&self) -> &SharedInfo {
        self
    }

    /// The legacy slot; vCPUs beyond the array have none (updates for them are dropped:
    /// their `vcpu_info` must be registered elsewhere).
    fn vcpu_slot(&self, vcpu: VcpuId) -> Option<&VcpuInfo> {
        self.vcpu_info.get(vcpu.index())
    }
}

/// A vCPU's `vcpu_info` moved out of the shared-info page by `VCPUOP_register_vcpu_info`.
#[derive(Clone, Copy, Debug)]
pub struct MovedVcpuInfo {
    /// The guest frame holding it (the registration keeps a writable type reference on it).
    pub mfn: u64,
    /// The structure itself, inside that frame.
    pub info: &'static VcpuInfo,
}

/// A domain's shared-info page together with where each vCPU's `vcpu_info` is: its legacy
/// slot in the page until the guest registers another place, as Xen's `v->vcpu_info` pointer.
#[derive(Clone, Copy, Debug)]
pub struct DomainShared {
    page: &'static SharedInfo,
    moved: [Option<MovedVcpuInfo>; MAX_VCPUS],
}

impl DomainShared {
    /// Every vCPU's `vcpu_info` in its slot of `page`.
    pub fn new(page: &'static SharedInfo) -> Self {
        Self {
            page,
            moved: [None; MAX_VCPUS],
        }
    }

    /// The shared-info page.
    pub fn page(&self) -> &'static SharedInfo {
        self.page
    }

    /// Where the vCPU's `vcpu_info` is (its legacy slot unless registered elsewhere).
    pub fn vcpu_info(&self, vcpu: VcpuId) -> Option<&'static VcpuInfo> {
        match self.moved.get(vcpu.index())? {
            Some(m) => Some(m.info),
            None => self.page.vcpu_info.get(vcpu.index()),
        }
    }

    /// The registration of the vCPU's `vcpu_info`, if it moved.
    pub fn moved(&self, vcpu: VcpuId) -> Option<MovedVcpuInfo> {
        self.moved.get(vcpu.index()).copied().flatten()
    }

    /// Every registration (to release their frames when the domain goes).
    pub fn all_moved(&self) -> impl Iterator<Item = MovedVcpuInfo> + '_ {
        self.moved.iter().flatten().copied()
    }

    /// Moves the vCPU's `vcpu_info` to `to`, as Xen's `map_vcpu_info`: the mask and pending
    /// state are carried over, the time record is left for the caller to publish, and every
    /// selector bit plus `evtchn_upcall_pending` are set so that the guest rescans the pending
    /// bitmap and no event raised during the move is lost. Returns false (nothing changed)
    /// when the vCPU is out of range or already moved.
    pub fn relocate(&mut self, vcpu: VcpuId, moved: MovedVcpuInfo) -> bool {
        let (Some(old), Some(slot)) = (self.vcpu_info(vcpu), self.moved.get_mut(vcpu.index()))
        else {
            return false;
        };
        if slot.is_some() {
            return false;
        }
        let new = moved.info;
        let mask = old.evtchn_upcall_mask.load(Ordering::SeqCst);
        new.evtchn_upcall_mask.store(mask, Ordering::SeqCst);
        new.arch_cr2
            .store(old.arch_cr2.load(Ordering::SeqCst), Ordering::SeqCst);
        *slot = Some(moved);
        new.evtchn_pending_sel.store(!0, Ordering::SeqCst);
        new.evtchn_upcall_pending.store(1, Ordering::SeqCst);
        true
    }
}

impl SharedInfoView for DomainShared {
    fn page(&self) -> &SharedInfo {
        self.page
    }

    fn vcpu_slot(&self, vcpu: VcpuId) -> Option<&VcpuInfo> {
        self.vcpu_info(vcpu)
    }
}

/// The wallclock words of the page (`wc_*`), where `pvclock::publish_wallclock` writes.
impl WallclockSink for SharedInfo {
    fn wc_version(&self) -> &AtomicU32 {
        &self.wc_version
    }

    fn store_wc(&self, sec: u32, nsec: u32, sec_hi: u32) {
        self.wc_sec.store(sec, Ordering::Relaxed);
        self.wc_nsec.store(nsec, Ordering::Relaxed);
        self.wc_sec_hi.store(sec_hi, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    /// Offsets printed by a C probe compiled against Xen's public headers (`xen/xen.h`,
    /// x86-64, interface version 0x00040e00).
    #[test]
    fn layout_matches_xen_headers() {
        assert_eq!(size_of::<VcpuInfo>(), 64);
        assert_eq!(offset_of!(VcpuInfo, evtchn_upcall_pending), 0);
        assert_eq!(offset_of!(VcpuInfo, evtchn_upcall_mask), 1);
        assert_eq!(offset_of!(VcpuInfo, evtchn_pending_sel), 8);
        assert_eq!(offset_of!(VcpuInfo, arch_cr2), 16);
        assert_eq!(offset_of!(VcpuInfo, time), 32);
        assert_eq!(size_of::<SharedInfo>(), 3136);
        assert_eq!(offset_of!(SharedInfo, evtchn_pending), 2048);
        assert_eq!(offset_of!(SharedInfo, evtchn_mask), 2560);
        assert_eq!(offset_of!(SharedInfo, wc_version), 3072);
        assert_eq!(offset_of!(SharedInfo, wc_sec), 3076);
        assert_eq!(offset_of!(SharedInfo, wc_nsec), 3080);
        assert_eq!(offset_of!(SharedInfo, wc_sec_hi), 3084);
        assert_eq!(offset_of!(SharedInfo, arch), 3088);
    }

    fn sel(s: &SharedInfo, v: u32) -> u64 {
        s.vcpu_info[v as usize]
            .evtchn_pending_sel
            .load(Ordering::SeqCst)
    }

    #[test]
    fn first_pending_edge_raises_selector_and_upcall() {
        let s = SharedInfo::new();
        let v = VcpuId(1);
        assert_eq!(
            set_pending(&s, v, EvtchnPort(70)),
            Raised::Newly { kick: true }
        );
        assert!(is_pending(&s, EvtchnPort(70)));
        assert_eq!(sel(&s, 1), 1 << 1);
        assert!(s.upcall_pending(v));
        // Same port again: the edge is lost, nothing changes.
        assert_eq!(set_pending(&s, v, EvtchnPort(70)), Raised::AlreadyPending);
        // Another port in the same word: selector already set, no new kick.
        assert_eq!(
            set_pending(&s, v, EvtchnPort(71)),
            Raised::Newly { kick: false }
        );
        // A port in another word: selector gains a bit but upcall_pending was already set.
        assert_eq!(
            set_pending(&s, v, EvtchnPort(3)),
            Raised::Newly { kick: false }
        );
        assert_eq!(sel(&s, 1), 0b11);
    }

    #[test]
    fn masked_port_is_pending_without_upcall_until_unmasked() {
        let s = SharedInfo::new();
        let v = VcpuId(0);
        s.set_masked(EvtchnPort(9), true);
        assert_eq!(
            set_pending(&s, v, EvtchnPort(9)),
            Raised::Newly { kick: false }
        );
        assert_eq!(sel(&s, 0), 0);
        assert!(!s.upcall_pending(v));
        assert!(
            unmask(&s, v, EvtchnPort(9)),
            "unmask of a pending port re-raises"
        );
        assert!(!is_masked(&s, EvtchnPort(9)));
        assert_eq!(sel(&s, 0), 1);
        assert!(s.upcall_pending(v));
        // Unmasking an unmasked port does nothing, even though it is pending.
        assert!(!unmask(&s, v, EvtchnPort(9)));
    }

    #[test]
    fn unmask_without_pending_only_clears_the_mask() {
        let s = SharedInfo::new();
        s.set_masked(EvtchnPort(100), true);
        assert!(!unmask(&s, VcpuId(0), EvtchnPort(100)));
        assert!(!is_masked(&s, EvtchnPort(100)));
        assert!(!s.upcall_pending(VcpuId(0)));
    }

    #[test]
    fn guest_cleared_upcall_pending_is_raised_again() {
        let s = SharedInfo::new();
        let v = VcpuId(0);
        assert_eq!(
            set_pending(&s, v, EvtchnPort(1)),
            Raised::Newly { kick: true }
        );
        // The guest handles the event: clears upcall_pending, the selector and the bit.
        s.vcpu_info[0]
            .evtchn_upcall_pending
            .store(0, Ordering::SeqCst);
        s.vcpu_info[0].evtchn_pending_sel.store(0, Ordering::SeqCst);
        clear_pending(&s, EvtchnPort(1));
        assert_eq!(
            set_pending(&s, v, EvtchnPort(1)),
            Raised::Newly { kick: true }
        );
    }

    #[test]
    fn delivery_needs_pending_and_unmasked_upcall() {
        let s = SharedInfo::new();
        let v = VcpuId(2);
        assert!(!events_need_delivery(&s, v));
        let _ = set_pending(&s, v, EvtchnPort(5));
        assert!(events_need_delivery(&s, v));
        s.set_upcall_masked(v, true);
        assert!(!events_need_delivery(&s, v));
    }

    #[test]
    fn vcpus_beyond_the_legacy_array_are_ignored_not_panicking() {
        let s = SharedInfo::new();
        let v = VcpuId(MAX_VCPUS as u32);
        let _ = set_pending(&s, v, EvtchnPort(5));
        assert!(!s.upcall_pending(v));
        s.set_upcall_masked(v, true);
        assert!(!s.upcall_masked(v));
    }

    fn leaked_page() -> &'static SharedInfo {
        std::boxed::Box::leak(std::boxed::Box::new(SharedInfo::new()))
    }

    fn leaked_info() -> &'static VcpuInfo {
        std::boxed::Box::leak(std::boxed::Box::new(VcpuInfo::default()))
    }

    #[test]
    fn relocated_vcpu_info_receives_events_and_keeps_the_mask() {
        let page = leaked_page();
        let mut d = DomainShared::new(page);
        let v = VcpuId(0);
        d.set_upcall_masked(v, true);
        let new = leaked_info();
        assert!(d.relocate(v, MovedVcpuInfo { mfn: 7, info: new }));
        // Carried over, and told to rescan everything.
        assert_eq!(new.evtchn_upcall_mask.load(Ordering::SeqCst), 1);
        assert_eq!(new.evtchn_pending_sel.load(Ordering::SeqCst), !0);
        assert!(d.upcall_pending(v));
        new.evtchn_upcall_pending.store(0, Ordering::SeqCst);
        new.evtchn_pending_sel.store(0, Ordering::SeqCst);
        // Events now land in the new place, never in the old slot.
        d.set_upcall_masked(v, false);
        assert_eq!(
            set_pending(&d, v, EvtchnPort(65)),
            Raised::Newly { kick: true }
        );
        assert_eq!(new.evtchn_pending_sel.load(Ordering::SeqCst), 1 << 1);
        assert!(events_need_delivery(&d, v));
        assert_eq!(sel(page, 0), 0);
        assert_eq!(
            page.vcpu_info[0]
                .evtchn_upcall_pending
                .load(Ordering::SeqCst),
            0
        );
        assert_eq!(d.moved(v).map(|m| m.mfn), Some(7));
        assert_eq!(d.all_moved().count(), 1);
    }

    #[test]
    fn relocation_happens_once_and_only_in_range() {
        let mut d = DomainShared::new(leaked_page());
        let m = MovedVcpuInfo {
            mfn: 1,
            info: leaked_info(),
        };
        assert!(d.relocate(VcpuId(3), m));
        assert!(
            !d.relocate(VcpuId(3), m),
            "a second registration is refused"
        );
        assert!(!d.relocate(VcpuId(MAX_VCPUS as u32), m));
        assert!(d.vcpu_info(VcpuId(MAX_VCPUS as u32)).is_none());
        assert!(core::ptr::eq(d.vcpu_info(VcpuId(3)).unwrap(), m.info));
        assert!(core::ptr::eq(
            d.vcpu_info(VcpuId(2)).unwrap(),
            &d.page().vcpu_info[2]
        ));
    }
}
