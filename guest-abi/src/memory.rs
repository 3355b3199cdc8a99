//! Memory operations (`memory.h`): `XENMEM_*` and the structs of the sub-ops PV guests and
//! the toolstack use, plus the E820 entry that `XENMEM_memory_map` returns.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::macros::xen_enum;

/// `memory_op`'s `cmd` carries the sub-op in its low bits (`MEMOP_CMD_MASK`) and, for a
/// continued reservation call, the extents already done above them (`MEMOP_EXTENT_SHIFT`).
pub const MEMOP_CMD_MASK: u64 = (1 << MEMOP_EXTENT_SHIFT) - 1;
/// `MEMOP_EXTENT_SHIFT`.
pub const MEMOP_EXTENT_SHIFT: u32 = 6;

xen_enum! {
    /// `memory_op` sub-ops.
    pub enum MemoryOp: u32, prefix "XENMEM_" {
        /// Allocate extents to a domain (`xen_memory_reservation`).
        IncreaseReservation = 0 => "increase_reservation",
        /// Release extents.
        DecreaseReservation = 1 => "decrease_reservation",
        /// Highest machine frame in the system.
        MaximumRamPage = 2 => "maximum_ram_page",
        /// Current pages of a domain.
        CurrentReservation = 3 => "current_reservation",
        /// Maximum pages of a domain.
        MaximumReservation = 4 => "maximum_reservation",
        /// Frames holding the M2P table.
        MachphysMfnList = 5 => "machphys_mfn_list",
        /// Allocate and map extents at given PFNs.
        PopulatePhysmap = 6 => "populate_physmap",
        /// Map a special page (shared info, grant table) into the physmap.
        AddToPhysmap = 7 => "add_to_physmap",
        /// The domain's pseudo-physical memory map.
        MemoryMap = 9 => "memory_map",
        /// The host's memory map (dom0).
        MachineMemoryMap = 10 => "machine_memory_map",
        /// Exchange extents.
        Exchange = 11 => "exchange",
        /// Where the M2P table is mapped (`xen_machphys_mapping`).
        MachphysMapping = 12 => "machphys_mapping",
        /// Set a domain's memory map (toolstack).
        SetMemoryMap = 13 => "set_memory_map",
        /// Highest guest frame in use.
        MaximumGpfn = 14 => "maximum_gpfn",
        /// Remove a page from the physmap.
        RemoveFromPhysmap = 15 => "remove_from_physmap",
        /// Set the populate-on-demand target.
        SetPodTarget = 16 => "set_pod_target",
        /// Read the populate-on-demand target.
        GetPodTarget = 17 => "get_pod_target",
        /// Freed shared pages.
        GetSharingFreedPages = 18 => "get_sharing_freed_pages",
        /// Shared pages.
        GetSharingSharedPages = 19 => "get_sharing_shared_pages",
        /// Paging operations.
        PagingOp = 20 => "paging_op",
        /// Memory access operations.
        AccessOp = 21 => "access_op",
        /// Memory sharing operations.
        SharingOp = 22 => "sharing_op",
        /// Batched `add_to_physmap`.
        AddToPhysmapBatch = 23 => "add_to_physmap_batch",
        /// Claim pages for a domain.
        ClaimPages = 24 => "claim_pages",
        /// 32-bit M2P frames.
        MachphysCompatMfnList = 25 => "machphys_compat_mfn_list",
        /// vNUMA information.
        GetVnumainfo = 26 => "get_vnumainfo",
        /// Reserved device memory map.
        ReservedDeviceMemoryMap = 27 => "reserved_device_memory_map",
        /// Map a resource's frames.
        AcquireResource = 28 => "acquire_resource",
    }
}

xen_enum! {
    /// `xen_add_to_physmap.space`.
    pub enum MapSpace: u32, prefix "XENMAPSPACE_" {
        /// The shared info page.
        SharedInfo = 0 => "shared_info",
        /// A grant table frame.
        GrantTable = 1 => "grant_table",
        /// A guest frame.
        Gmfn = 2 => "gmfn",
        /// A range of guest frames.
        GmfnRange = 3 => "gmfn_range",
        /// A frame of another domain.
        GmfnForeign = 4 => "gmfn_foreign",
        /// Device MMIO (Arm).
        DevMmio = 5 => "dev_mmio",
    }
}

/// `struct xen_memory_reservation`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenMemoryReservation {
    /// Guest handle of an array of frame numbers (in or out).
    pub extent_start: u64,
    /// Number of extents.
    pub nr_extents: u64,
    /// log2 pages per extent.
    pub extent_order: u32,
    /// `XENMEMF_*` flags.
    pub mem_flags: u32,
    /// The domain.
    pub domid: u16,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole: [u16; 3],
}

/// `XENMEMF_exact_node_request`: allocate on the node asked for or fail.
pub const XENMEMF_EXACT_NODE_REQUEST: u32 = 1 << 17;

/// The address width a `mem_flags` word asks the allocated frames to stay below
/// (`XENMEMF_get_address_bits`; 0: no limit).
pub const fn mem_flags_address_bits(mem_flags: u32) -> u32 {
    mem_flags & 0xff
}

/// The NUMA node a `mem_flags` word asks for (`XENMEMF_get_node`; 0xff: any node).
pub const fn mem_flags_node(mem_flags: u32) -> u8 {
    ((mem_flags >> 8) as u8).wrapping_sub(1)
}

/// `struct xen_memory_exchange`: `in`'s extents (machine frames, for a PV guest) traded for
/// `out`'s (guest frame numbers in, the new machine frames written over them).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenMemoryExchange {
    /// The extents given up.
    pub in_: XenMemoryReservation,
    /// The extents received, with `address_bits` in `mem_flags`.
    pub out: XenMemoryReservation,
    /// IN/OUT: input extents exchanged so far (a continued call picks up there).
    pub nr_exchanged: u64,
}

/// `struct xen_machphys_mapping`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenMachphysMapping {
    /// Start of the M2P mapping.
    pub v_start: u64,
    /// End of the M2P mapping.
    pub v_end: u64,
    /// Highest MFN the mapping covers.
    pub max_mfn: u64,
}

/// `struct xen_machphys_mfn_list`: the machine frames backing the M2P table, one per 2 MiB
/// extent of it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenMachphysMfnList {
    /// IN: room in `extent_start`.
    pub max_extents: u32,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole: u32,
    /// Guest handle of an array of `xen_pfn_t`.
    pub extent_start: u64,
    /// OUT: extents written.
    pub nr_extents: u32,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole2: u32,
}

/// `struct xen_add_to_physmap`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenAddToPhysmap {
    /// The domain.
    pub domid: u16,
    /// Number of pages for `XENMAPSPACE_gmfn_range`.
    pub size: u16,
    /// [`MapSpace`].
    pub space: u32,
    /// Index in the space.
    pub idx: u64,
    /// Guest frame to map it at.
    pub gpfn: u64,
}

/// `struct xen_memory_map`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenMemoryMap {
    /// IN: room in the buffer; OUT: entries written.
    pub nr_entries: u32,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole: u32,
    /// Guest handle of an array of [`E820Entry`].
    pub buffer: u64,
}

/// `struct xen_foreign_memory_map`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenForeignMemoryMap {
    /// The domain.
    pub domid: u16,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole: [u16; 3],
    /// Its map.
    pub map: XenMemoryMap,
}

/// An E820 memory map entry as `XENMEM_memory_map` returns it: packed, 20 bytes (the
/// layout of Linux's `struct boot_e820_entry`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C, packed)]
pub struct E820Entry {
    /// Start address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// `E820_*` type.
    pub type_: u32,
}

/// `E820_RAM`: usable RAM.
pub const E820_RAM: u32 = 1;
/// `E820_RESERVED`: reserved.
pub const E820_RESERVED: u32 = 2;
