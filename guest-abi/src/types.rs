//! Identifier newtypes, so that frame numbers, addresses and ids do not mix.
//!
//! The `#[repr(C)]` ABI structs keep Xen's raw integer fields (they mirror the C headers
//! field for field); code that decodes them turns the raw values into these types at the
//! boundary.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Bytes in a page (x86 4 KiB pages).
pub const PAGE_SIZE: u64 = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

macro_rules! id_newtype {
    ($(#[$meta:meta])* $name:ident($repr:ty)) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        #[derive(FromBytes, IntoBytes, Immutable, KnownLayout)]
        #[repr(transparent)]
        pub struct $name(pub $repr);

        impl From<$repr> for $name {
            fn from(raw: $repr) -> Self {
                Self(raw)
            }
        }

        impl From<$name> for $repr {
            fn from(id: $name) -> $repr {
                id.0
            }
        }
    };
}

id_newtype!(
    /// A machine frame number: a page of host memory.
    Mfn(u64)
);
id_newtype!(
    /// A pseudo-physical frame number: a page of a domain's own contiguous view of its memory.
    Pfn(u64)
);
id_newtype!(
    /// A guest virtual address.
    VirtAddr(u64)
);
id_newtype!(
    /// A domain id (`domid_t`).
    DomId(u16)
);
id_newtype!(
    /// An event channel port (`evtchn_port_t`).
    EvtchnPort(u32)
);
id_newtype!(
    /// A virtual CPU id.
    VcpuId(u32)
);

impl Mfn {
    /// The frame containing machine address `addr`.
    pub const fn containing(addr: u64) -> Self {
        Self(addr >> PAGE_SHIFT)
    }

    /// The machine address of the first byte of this frame.
    pub const fn addr(self) -> u64 {
        self.0 << PAGE_SHIFT
    }
}

impl core::fmt::Display for Mfn {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "mfn {:#x}", self.0)
    }
}

impl Pfn {
    /// The M2P value of a frame no domain has named (`INVALID_M2P_ENTRY`).
    pub const INVALID: Self = Self(!0);

    /// The pseudo-physical address of the first byte of this frame.
    pub const fn addr(self) -> u64 {
        self.0 << PAGE_SHIFT
    }
}

impl VirtAddr {
    /// The address as a raw number.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// Whether the address is canonical (bits 63..47 all equal), as x86-64 requires.
    pub const fn is_canonical(self) -> bool {
        let top = self.0 >> 47;
        top == 0 || top == 0x1_ffff
    }

    /// Index of this address in the page-table level `level` (1 = L1 ... 4 = L4).
    pub const fn table_index(self, level: u32) -> usize {
        ((self.0 >> (PAGE_SHIFT + 9 * (level - 1))) & 511) as usize
    }
}

impl DomId {
    /// `DOMID_FIRST_RESERVED`: ids from here on are special.
    pub const FIRST_RESERVED: Self = Self(0x7FF0);
    /// `DOMID_SELF`: the calling domain.
    pub const SELF: Self = Self(0x7FF0);
    /// `DOMID_IO`: the owner of I/O memory.
    pub const IO: Self = Self(0x7FF1);
    /// `DOMID_XEN`: the hypervisor's own pages.
    pub const XEN: Self = Self(0x7FF2);
    /// `DOMID_COW`: copy-on-write shared pages.
    pub const COW: Self = Self(0x7FF3);
    /// `DOMID_INVALID`: no domain.
    pub const INVALID: Self = Self(0x7FF4);
    /// `DOMID_IDLE`: the idle domain.
    pub const IDLE: Self = Self(0x7FFF);
    /// `DOMID_MASK`: the bits a domain id uses.
    pub const MASK: Self = Self(0x7FFF);

    /// Whether this is an ordinary domain id (not one of the special ones).
    pub const fn is_normal(self) -> bool {
        self.0 < Self::FIRST_RESERVED.0
    }

    /// Whether this is one of the special ids rather than a domain.
    pub const fn is_reserved(self) -> bool {
        !self.is_normal()
    }

    /// `self`, with [`DomId::SELF`] replaced by `caller`.
    pub const fn or_self(self, caller: DomId) -> DomId {
        if self.0 == Self::SELF.0 { caller } else { self }
    }
}

impl core::fmt::Display for DomId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "d{}", self.0)
    }
}

impl VcpuId {
    /// The vCPU as an index into per-vCPU tables.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl EvtchnPort {
    /// The port as an index into per-port tables.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_addresses() {
        assert!(VirtAddr(0).is_canonical());
        assert!(VirtAddr(0x0000_7fff_ffff_ffff).is_canonical());
        assert!(!VirtAddr(0x0000_8000_0000_0000).is_canonical());
        assert!(!VirtAddr(0xffff_7fff_ffff_ffff).is_canonical());
        assert!(VirtAddr(0xffff_8000_0000_0000).is_canonical());
    }

    #[test]
    fn table_indices() {
        let va = VirtAddr(0xffff_ffff_8020_3000);
        assert_eq!(va.table_index(4), 511);
        assert_eq!(va.table_index(3), 510);
        assert_eq!(va.table_index(2), 1);
        assert_eq!(va.table_index(1), 3);
    }

    #[test]
    fn special_domids() {
        assert!(DomId(0).is_normal());
        assert!(!DomId::SELF.is_normal());
        assert_eq!(Mfn(2).addr(), 0x2000);
    }
}
