//! `XEN_DOMCTL_createdomain` as a sequence of steps over the machine's resources, each undone
//! if a later one fails, so that a refused creation leaves nothing behind.
//!
//! The limits are checked before anything is taken, so that hitting one is a clear answer
//! (`-ENOSPC`), never a half-made domain:
//! - at most [`MAX_DOMAINS`] domains exist at once, dom0 and dying domains included;
//! - a domain has 1 to [`MAX_VCPUS_PER_DOMAIN`] vCPUs (`-EINVAL` otherwise, as Xen);
//! - the scheduler has room for [`MAX_VCPUS_IN_ALL`] vCPUs machine-wide, and a domain gets
//!   all of its vCPUs or is not created.
//!
//! Order of the steps, and of their undoing in reverse: the shared-info frame, the PV MMU's
//! record of the domain (which takes the frame as shared with it), the scheduler's entries,
//! then the records that make the domain visible. Only the last step makes it visible, and it
//! cannot fail.

use guest_abi::{DomId, XenError};

/// Most domains at once, dom0 included (the PV MMU's domain slots).
pub const MAX_DOMAINS: usize = crate::mm::pv::DEFAULT_MAX_DOMAINS;
/// Most vCPUs of one domain (`XEN_LEGACY_MAX_VCPUS`: every `vcpu_info` fits in `shared_info`).
pub const MAX_VCPUS_PER_DOMAIN: u32 = crate::event::abi::MAX_VCPUS as u32;
/// Most vCPUs of all domains together (the scheduler's slots).
pub const MAX_VCPUS_IN_ALL: usize = crate::hypercall::event::MAX_SCHED_VCPUS;
/// The first domain id given to a domU.
const FIRST_DOMU: u16 = 1;

/// The machine as domain creation uses it. Each `take_*`/`add_*` step has its undoing.
pub trait Resources {
    /// A frame allocated for the domain's `shared_info`.
    type Frame: Copy;
    /// The PV MMU's handle for the domain.
    type Mm: Copy;
    /// Whether a domain (live or dying) has id `id`.
    fn exists(&self, id: DomId) -> bool;
    /// How many domains exist (live or dying).
    fn domains(&self) -> usize;
    /// Free vCPU slots in the scheduler.
    fn free_vcpu_slots(&self) -> usize;
    /// Allocates and zeroes the `shared_info` frame.
    fn take_shared_info(&mut self) -> Result<Self::Frame, XenError>;
    /// Frees it again.
    fn release_shared_info(&mut self, frame: Self::Frame);
    /// Creates the PV MMU's record of domain `id` and shares `frame` with it, writable.
    fn add_mm(&mut self, id: DomId, frame: Self::Frame) -> Result<Self::Mm, XenError>;
    /// Removes that record and takes the frame back.
    fn remove_mm(&mut self, mm: Self::Mm, frame: Self::Frame);
    /// Registers the domain and its `vcpus` vCPUs with the scheduler, paused by the
    /// controller: all of them, or none.
    fn add_to_scheduler(&mut self, id: DomId, vcpus: u32) -> Result<(), XenError>;
    /// Makes the domain visible (its records, event channels, `vcpu_info` masks, clock).
    fn publish(&mut self, id: DomId, vcpus: u32, frame: Self::Frame, mm: Self::Mm);
}

/// What the toolstack asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// A domain id, or 0 (or a reserved id) for "the first free one".
    pub domid: u16,
    /// vCPUs (`max_vcpus`).
    pub vcpus: u32,
    /// An HVM or HAP domain was asked for, which this hypervisor does not build.
    pub hvm: bool,
    /// `grant_opts`: the highest grant-table version the domain may use (1 or 2), in the
    /// low four bits; nothing else may be set.
    pub grant_opts: u32,
}

/// The grant-version field of `grant_opts` (`XEN_DOMCTL_GRANT_version_mask`).
pub const GRANT_VERSION_MASK: u32 = 0xf;
/// The highest grant-table version offered.
pub const MAX_GRANT_VERSION: u32 = 2;

/// Creates a domain as `req` asks, or changes nothing. Returns its id.
pub fn create<R: Resources>(r: &mut R, req: Request) -> Result<DomId, XenError> {
    let grant_version = req.grant_opts & GRANT_VERSION_MASK;
    if req.hvm
        || req.vcpus == 0
        || req.vcpus > MAX_VCPUS_PER_DOMAIN
        || req.grant_opts & !GRANT_VERSION_MASK != 0
        || !(1..=MAX_GRANT_VERSION).contains(&grant_version)
    {
        return Err(XenError::Inval);
    }
    let id = pick_id(r, req.domid)?;
    if r.domains() >= MAX_DOMAINS || r.free_vcpu_slots() < req.vcpus as usize {
        return Err(XenError::NoSpc);
    }
    let frame = r.take_shared_info()?;
    let mm = match r.add_mm(id, frame) {
        Ok(mm) => mm,
        Err(e) => {
            r.release_shared_info(frame);
            return Err(e);
        }
    };
    if let Err(e) = r.add_to_scheduler(id, req.vcpus) {
        r.remove_mm(mm, frame);
        r.release_shared_info(frame);
        return Err(e);
    }
    r.publish(id, req.vcpus, frame, mm);
    Ok(id)
}

/// The id asked for, if it is a normal one and free, or the first free one.
fn pick_id<R: Resources>(r: &R, requested: u16) -> Result<DomId, XenError> {
    let requested = DomId(requested);
    if requested.0 > 0 && requested.is_normal() {
        return if r.exists(requested) {
            Err(XenError::Exist)
        } else {
            Ok(requested)
        };
    }
    (FIRST_DOMU..DomId::FIRST_RESERVED.0)
        .map(DomId)
        .find(|&i| !r.exists(i))
        .ok_or(XenError::NoSpc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::vec::Vec;

    /// A machine whose steps can be made to fail, recording what is held.
    #[derive(Debug, Default)]
    struct Fake {
        domains: BTreeSet<u16>,
        vcpus_used: usize,
        frames_held: usize,
        mms: BTreeSet<u16>,
        sched: Vec<(u16, u32)>,
        published: usize,
        fail_frame: bool,
        fail_mm: bool,
        fail_sched: bool,
    }

    impl Resources for Fake {
        type Frame = u64;
        type Mm = u16;
        fn exists(&self, id: DomId) -> bool {
            self.domains.contains(&id.0)
        }
        fn domains(&self) -> usize {
            self.domains.len()
        }
        fn free_vcpu_slots(&self) -> usize {
            MAX_VCPUS_IN_ALL - self.vcpus_used
        }
        fn take_shared_info(&mut self) -> Result<u64, XenError> {
            if self.fail_frame {
                return Err(XenError::NoMem);
            }
            self.frames_held += 1;
            Ok(0x1000 + self.frames_held as u64)
        }
        fn release_shared_info(&mut self, _: u64) {
            self.frames_held -= 1;
        }
        fn add_mm(&mut self, id: DomId, _: u64) -> Result<u16, XenError> {
            if self.fail_mm {
                return Err(XenError::NoMem);
            }
            assert!(self.mms.insert(id.0));
            Ok(id.0)
        }
        fn remove_mm(&mut self, mm: u16, _: u64) {
            assert!(self.mms.remove(&mm));
        }
        fn add_to_scheduler(&mut self, id: DomId, vcpus: u32) -> Result<(), XenError> {
            if self.fail_sched {
                return Err(XenError::NoSpc);
            }
            self.sched.push((id.0, vcpus));
            self.vcpus_used += vcpus as usize;
            Ok(())
        }
        fn publish(&mut self, id: DomId, _: u32, _: u64, _: u16) {
            self.domains.insert(id.0);
            self.published += 1;
        }
    }

    fn req(vcpus: u32) -> Request {
        Request {
            domid: 0,
            vcpus,
            hvm: false,
            grant_opts: 1,
        }
    }

    /// Nothing is held but what the published domains hold.
    fn assert_clean(f: &Fake) {
        assert_eq!(f.frames_held, f.published);
        assert_eq!(f.mms.len(), f.published);
        assert_eq!(f.sched.len(), f.published);
    }

    #[test]
    fn domains_get_the_first_free_id_or_the_one_asked_for() {
        let mut f = Fake::default();
        f.domains.insert(0);
        assert_eq!(create(&mut f, req(1)), Ok(DomId(1)));
        assert_eq!(create(&mut f, req(1)), Ok(DomId(2)));
        let asked = Request { domid: 7, ..req(1) };
        assert_eq!(create(&mut f, asked), Ok(DomId(7)));
        assert_eq!(create(&mut f, asked), Err(XenError::Exist));
        assert_eq!(create(&mut f, req(1)), Ok(DomId(3)));
        assert_clean(&f);
    }

    #[test]
    fn vcpus_beyond_the_machine_are_refused_before_anything_is_taken() {
        let mut f = Fake::default();
        f.domains.insert(0);
        f.vcpus_used = 1;
        assert_eq!(create(&mut f, req(32)), Ok(DomId(1)));
        assert_eq!(create(&mut f, req(30)), Ok(DomId(2)));
        // One slot left: a 32-vCPU domain does not fit, and nothing is half made.
        assert_eq!(create(&mut f, req(32)), Err(XenError::NoSpc));
        assert_eq!(create(&mut f, req(1)), Ok(DomId(3)));
        assert_eq!(create(&mut f, req(1)), Err(XenError::NoSpc));
        assert_clean(&f);
        assert_eq!(create(&mut f, req(33)), Err(XenError::Inval));
        assert_eq!(create(&mut f, req(0)), Err(XenError::Inval));
        let hvm = Request {
            hvm: true,
            ..req(1)
        };
        assert_eq!(create(&mut f, hvm), Err(XenError::Inval));
        // Grant versions 1 and 2 only, and no other option bits (as Xen 4.17).
        for grant_opts in [0, 3, 1 << 4 | 1] {
            let bad = Request {
                grant_opts,
                ..req(1)
            };
            assert_eq!(create(&mut f, bad), Err(XenError::Inval), "{grant_opts:#x}");
        }
        let v2 = Request {
            grant_opts: 2,
            ..req(1)
        };
        // Accepted as a request: the machine is full here.
        assert_eq!(create(&mut f, v2), Err(XenError::NoSpc));
    }

    #[test]
    fn the_domain_limit_is_a_clear_answer() {
        let mut f = Fake::default();
        f.domains.insert(0);
        for i in 1..MAX_DOMAINS as u16 {
            assert_eq!(create(&mut f, req(1)), Ok(DomId(i)));
        }
        assert_eq!(create(&mut f, req(1)), Err(XenError::NoSpc));
        assert_clean(&f);
    }

    proptest! {
        /// Whatever step fails, the machine holds exactly what it held before.
        #[test]
        fn a_failed_creation_leaves_nothing_behind(
            fail in 0usize..3,
            vcpus in 1u32..=32,
            before in 0usize..4,
        ) {
            let mut f = Fake::default();
            for _ in 0..before {
                create(&mut f, req(1)).unwrap();
            }
            match fail {
                0 => f.fail_frame = true,
                1 => f.fail_mm = true,
                _ => f.fail_sched = true,
            }
            let held = (f.frames_held, f.mms.len(), f.sched.len(), f.vcpus_used);
            prop_assert!(create(&mut f, req(vcpus)).is_err());
            prop_assert_eq!(held, (f.frames_held, f.mms.len(), f.sched.len(), f.vcpus_used));
            assert_clean(&f);
        }
    }
}
