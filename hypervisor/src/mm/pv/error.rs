//! The PV MMU's errors and the Xen errno each one becomes at the hypercall boundary.

use super::{DomId, PageType};
use crate::mm::Mfn;
use guest_abi::XenError;

/// Why a PV MMU operation was refused. Each variant maps to the errno Xen returns in the same
/// situation ([`PvMmError::errno`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PvMmError {
    /// A present entry sets flags its level does not allow (reserved, cache or superpage bits).
    BadFlags {
        /// Level of the table holding the entry (1 to 4).
        level: u8,
        /// The refused bits.
        flags: u64,
    },
    /// An update named an L4 slot that belongs to the hypervisor (256–271).
    HypervisorSlot {
        /// The slot.
        slot: usize,
    },
    /// The frame named as a page table is not the page-table owner's, or cannot be updated that
    /// way (a descriptor page, a read-only shared frame, a foreign page-table level).
    BadTable {
        /// The frame.
        mfn: Mfn,
    },
    /// An L1 entry maps a frame the mapping domain may not map: another domain's, the
    /// hypervisor's, or a free one.
    NotMappable {
        /// The frame.
        mfn: Mfn,
    },
    /// A writable L1 entry maps a frame in use as a page table or descriptor page.
    WritableConflict {
        /// The frame.
        mfn: Mfn,
    },
    /// A mapping of I/O memory or of a frame outside RAM by a domain without I/O access.
    IoMemory {
        /// The frame.
        mfn: Mfn,
    },
    /// A frame named by an L2–L4 entry, a pin, a base pointer or a memory operation is not one
    /// of the domain's frames.
    BadReference {
        /// The frame.
        mfn: Mfn,
    },
    /// The frame's type is in use as another type.
    TypeConflict {
        /// The frame.
        mfn: Mfn,
        /// Its type.
        current: PageType,
        /// The type asked for.
        wanted: PageType,
    },
    /// A superpage entry whose frame is not aligned to the superpage size.
    Misaligned {
        /// The frame.
        mfn: Mfn,
    },
    /// A reference or type count would overflow.
    CountOverflow {
        /// The frame.
        mfn: Mfn,
    },
    /// `PIN_*_TABLE` of a frame that is already pinned.
    AlreadyPinned {
        /// The frame.
        mfn: Mfn,
    },
    /// `UNPIN_TABLE` of a frame that is not pinned.
    NotPinned {
        /// The frame.
        mfn: Mfn,
    },
    /// A descriptor page holds a descriptor the guest may not install.
    BadDescriptor {
        /// The frame.
        mfn: Mfn,
        /// Index of the first bad descriptor.
        index: usize,
    },
    /// `update_va_mapping`: no L1 table maps the address in the current page tables.
    NoL1Table {
        /// The address.
        va: u64,
    },
    /// An argument is out of range (`SET_LDT` base or size, reserved domain ID, ...).
    BadArgument,
    /// The caller may not do this (a foreign operation without privilege, or an operation that
    /// only the domain itself may do).
    NotPermitted,
    /// A grant mapping's entry is not where the grant table says: not in one of the caller's
    /// L1 tables, or not mapping the granted frame as granted.
    GrantMismatch,
    /// No such domain.
    NoSuchDomain(DomId),
    /// A domain with that ID exists already.
    DomainExists(DomId),
    /// No room left (domain table full).
    OutOfMemory,
    /// Cache flushes need I/O access.
    CacheFlushDenied,
    /// A command Xen knows but we do not offer (`MMUEXT_[UN]MARK_SUPER`).
    Unsupported,
    /// An unknown command number.
    UnknownCommand(u32),
    /// A guest buffer could not be read or written (raised by the caller's guest-memory access).
    Fault,
}

impl PvMmError {
    /// The Xen errno this error becomes.
    pub const fn errno(self) -> XenError {
        match self {
            Self::BadFlags { .. }
            | Self::HypervisorSlot { .. }
            | Self::BadTable { .. }
            | Self::BadReference { .. }
            | Self::TypeConflict { .. }
            | Self::Misaligned { .. }
            | Self::CountOverflow { .. }
            | Self::AlreadyPinned { .. }
            | Self::NotPinned { .. }
            | Self::BadDescriptor { .. }
            | Self::NoL1Table { .. }
            | Self::GrantMismatch
            | Self::BadArgument => XenError::Inval,
            Self::NotMappable { .. } | Self::WritableConflict { .. } => XenError::Busy,
            Self::IoMemory { .. } | Self::NotPermitted => XenError::Perm,
            Self::NoSuchDomain(_) => XenError::Srch,
            Self::DomainExists(_) => XenError::Exist,
            Self::OutOfMemory => XenError::NoMem,
            Self::CacheFlushDenied => XenError::Acces,
            Self::Unsupported => XenError::OpNotSupp,
            Self::UnknownCommand(_) => XenError::NoSys,
            Self::Fault => XenError::Fault,
        }
    }
}

impl core::fmt::Display for PvMmError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadFlags { level, flags } => write!(f, "bad L{level} flags {flags:#x}"),
            Self::HypervisorSlot { slot } => write!(f, "L4 slot {slot} belongs to the hypervisor"),
            Self::BadTable { mfn } => write!(f, "{mfn} is not an updatable page table"),
            Self::NotMappable { mfn } => write!(f, "{mfn} may not be mapped by this domain"),
            Self::WritableConflict { mfn } => write!(f, "{mfn} may not be mapped writable"),
            Self::IoMemory { mfn } => write!(f, "{mfn} is I/O memory"),
            Self::BadReference { mfn } => write!(f, "{mfn} is not the domain's"),
            Self::TypeConflict {
                mfn,
                current,
                wanted,
            } => write!(f, "{mfn} is {current:?}, not {wanted:?}"),
            Self::Misaligned { mfn } => write!(f, "superpage at {mfn} is misaligned"),
            Self::CountOverflow { mfn } => write!(f, "reference count of {mfn} overflows"),
            Self::AlreadyPinned { mfn } => write!(f, "{mfn} already pinned"),
            Self::NotPinned { mfn } => write!(f, "{mfn} not pinned"),
            Self::BadDescriptor { mfn, index } => write!(f, "bad descriptor {index} in {mfn}"),
            Self::NoL1Table { va } => write!(f, "no L1 table maps {va:#x}"),
            Self::BadArgument => write!(f, "bad argument"),
            Self::NotPermitted => write!(f, "not permitted"),
            Self::GrantMismatch => write!(f, "no grant mapping there"),
            Self::NoSuchDomain(d) => write!(f, "no domain {d}"),
            Self::DomainExists(d) => write!(f, "domain {d} exists"),
            Self::OutOfMemory => write!(f, "out of memory"),
            Self::CacheFlushDenied => write!(f, "cache flush needs I/O access"),
            Self::Unsupported => write!(f, "operation not supported"),
            Self::UnknownCommand(c) => write!(f, "unknown command {c}"),
            Self::Fault => write!(f, "bad guest address"),
        }
    }
}
