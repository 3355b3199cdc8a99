//! Grant tables, version 1 (`grant_table.h`): `GNTTABOP_*`, `GTF_*` and the v1 structs.

use bitflags::bitflags;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::macros::xen_enum;

/// `GNTTAB_NR_RESERVED_ENTRIES`: grant references reserved for the toolstack.
pub const GNTTAB_NR_RESERVED_ENTRIES: u32 = 8;
/// `GNTTAB_RESERVED_CONSOLE`: the console ring's grant.
pub const GNTTAB_RESERVED_CONSOLE: u32 = 0;
/// `GNTTAB_RESERVED_XENSTORE`: the xenstore ring's grant.
pub const GNTTAB_RESERVED_XENSTORE: u32 = 1;

xen_enum! {
    /// `grant_table_op` sub-ops.
    pub enum GnttabOp: u32, prefix "GNTTABOP_" {
        /// Map granted frames (`gnttab_map_grant_ref`).
        MapGrantRef = 0 => "map_grant_ref",
        /// Unmap them (`gnttab_unmap_grant_ref`).
        UnmapGrantRef = 1 => "unmap_grant_ref",
        /// Set up the grant table frames (`gnttab_setup_table`).
        SetupTable = 2 => "setup_table",
        /// Dump the table to the console.
        DumpTable = 3 => "dump_table",
        /// Transfer a page.
        Transfer = 4 => "transfer",
        /// Copy between granted frames.
        Copy = 5 => "copy",
        /// Table size (`gnttab_query_size`).
        QuerySize = 6 => "query_size",
        /// Unmap and replace with another mapping.
        UnmapAndReplace = 7 => "unmap_and_replace",
        /// Select the grant table version.
        SetVersion = 8 => "set_version",
        /// Status frames (v2).
        GetStatusFrames = 9 => "get_status_frames",
        /// Current version.
        GetVersion = 10 => "get_version",
        /// Swap two grant entries.
        SwapGrantRef = 11 => "swap_grant_ref",
        /// Cache flush (Arm).
        CacheFlush = 12 => "cache_flush",
    }
}

bitflags! {
    /// `grant_entry_v1.flags` (`GTF_*`), besides the type in the low 2 bits.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct GtfFlags: u16 {
        /// Type: the grantee may map or access the frame.
        const PERMIT_ACCESS = 1;
        /// Type: the grantee may transfer a page to us.
        const ACCEPT_TRANSFER = 2;
        /// The type field (`GTF_type_mask`).
        const TYPE_MASK = 3;
        /// Read-only access.
        const READONLY = 1 << 2;
        /// Set by Xen while the grantee has it mapped for reading.
        const READING = 1 << 3;
        /// Set by Xen while the grantee has it mapped for writing.
        const WRITING = 1 << 4;
        /// Cache attribute: write-through.
        const PWT = 1 << 5;
        /// Cache attribute: cache disabled.
        const PCD = 1 << 6;
        /// Cache attribute: PAT.
        const PAT = 1 << 7;
        /// Sub-page grant (v2).
        const SUB_PAGE = 1 << 8;
    }
}

/// `struct grant_entry_v1`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GrantEntryV1 {
    /// `GTF_*`.
    pub flags: u16,
    /// The domain being granted access.
    pub domid: u16,
    /// The frame granted (for a PV guest an MFN).
    pub frame: u32,
}

/// `struct gnttab_map_grant_ref`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GnttabMapGrantRef {
    /// IN: where to map (virtual address or PTE machine address).
    pub host_addr: u64,
    /// IN: `GNTMAP_*`.
    pub flags: u32,
    /// IN: the grant reference.
    pub ref_: u32,
    /// IN: the granting domain.
    pub dom: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// OUT: handle for the unmap.
    pub handle: u32,
    /// OUT: bus address for DMA.
    pub dev_bus_addr: u64,
}

/// `struct gnttab_unmap_grant_ref`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GnttabUnmapGrantRef {
    /// IN: where it is mapped.
    pub host_addr: u64,
    /// IN: the bus address.
    pub dev_bus_addr: u64,
    /// IN: the handle from the map.
    pub handle: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole: [u8; 2],
}

/// `struct gnttab_unmap_and_replace`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GnttabUnmapAndReplace {
    /// IN: where the grant is mapped.
    pub host_addr: u64,
    /// IN: the address whose mapping takes its place (left unmapped).
    pub new_addr: u64,
    /// IN: the handle from the map.
    pub handle: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole: [u8; 2],
}

/// `struct gnttab_setup_table`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GnttabSetupTable {
    /// IN: the domain.
    pub dom: u16,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole0: u16,
    /// IN: frames wanted.
    pub nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole1: [u8; 6],
    /// Guest handle of the array that receives the frame numbers.
    pub frame_list: u64,
}

/// `struct gnttab_query_size`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GnttabQuerySize {
    /// IN: the domain.
    pub dom: u16,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole0: u16,
    /// OUT: current frames.
    pub nr_frames: u32,
    /// OUT: maximum frames.
    pub max_nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole1: u16,
}

/// `struct gnttab_set_version`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GnttabSetVersion {
    /// IN: the version wanted; OUT: the version in use.
    pub version: u32,
}

/// `struct gnttab_get_status_frames`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GnttabGetStatusFrames {
    /// IN: how many frames to list.
    pub nr_frames: u32,
    /// IN: the domain.
    pub dom: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Guest handle of the array that receives the frame numbers.
    pub frame_list: u64,
}

/// `struct gnttab_get_version`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GnttabGetVersion {
    /// IN: the domain.
    pub dom: u16,
    /// Padding.
    pub pad: u16,
    /// OUT: its grant table version.
    pub version: u32,
}

/// One side of a `gnttab_copy` (`struct gnttab_copy_ptr`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GnttabCopyPtr {
    /// A grant reference (with the side's `GNTCOPY_*_gref` flag) or the caller's own frame.
    pub u: u64,
    /// The domain whose grant or frame it is.
    pub domid: u16,
    /// Byte offset in the frame.
    pub offset: u16,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole: [u8; 4],
}

impl GnttabCopyPtr {
    /// The caller's own frame `mfn` (`DOMID_SELF`), from byte `offset`.
    pub const fn frame(mfn: u64, offset: u16) -> Self {
        Self {
            u: mfn,
            domid: crate::DomId::SELF.0,
            offset,
            _hole: [0; 4],
        }
    }

    /// Grant `gref` of domain `dom`, from byte `offset` (with the side's `GNTCOPY_*_gref`).
    pub const fn grant(dom: u16, gref: u32, offset: u16) -> Self {
        Self {
            u: gref as u64,
            domid: dom,
            offset,
            _hole: [0; 4],
        }
    }
}

/// `struct gnttab_copy`: one copy of at most a page between two frames.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GnttabCopy {
    /// IN: where the bytes come from.
    pub source: GnttabCopyPtr,
    /// IN: where they go.
    pub dest: GnttabCopyPtr,
    /// IN: how many bytes.
    pub len: u16,
    /// IN: `GNTCOPY_*`.
    pub flags: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Rust's spelling of padding C leaves implicit.
    pub _hole: [u8; 2],
}

/// `GNTCOPY_source_gref`: the source is a grant reference, not a frame.
pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
/// `GNTCOPY_dest_gref`: the destination is a grant reference, not a frame.
pub const GNTCOPY_DEST_GREF: u16 = 1 << 1;

/// `GNTMAP_device_map`: map for device access.
pub const GNTMAP_DEVICE_MAP: u32 = 1 << 0;
/// `GNTMAP_host_map`: map into the host's address space.
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
/// `GNTMAP_readonly`: map read-only.
pub const GNTMAP_READONLY: u32 = 1 << 2;
/// `GNTMAP_application_map`: map for user mode.
pub const GNTMAP_APPLICATION_MAP: u32 = 1 << 3;
/// `GNTMAP_contains_pte`: `host_addr` is the machine address of a PTE.
pub const GNTMAP_CONTAINS_PTE: u32 = 1 << 4;

xen_enum! {
    /// Grant operation status (`GNTST_*`, negated in the `status` fields).
    pub enum GntStatus: i32, prefix "GNTST_" {
        /// Success.
        Okay = 0 => "okay",
        /// Unspecified error.
        GeneralError = -1 => "general_error",
        /// Unrecognised domain id.
        BadDomain = -2 => "bad_domain",
        /// Unrecognised or inappropriate grant reference.
        BadGntref = -3 => "bad_gntref",
        /// Unrecognised or inappropriate handle.
        BadHandle = -4 => "bad_handle",
        /// Inappropriate virtual address to map.
        BadVirtAddr = -5 => "bad_virt_addr",
        /// Inappropriate device address to unmap.
        BadDevAddr = -6 => "bad_dev_addr",
        /// Out of space in the I/O MMU.
        NoDeviceSpace = -7 => "no_device_space",
        /// Not enough privilege for the operation.
        PermissionDenied = -8 => "permission_denied",
        /// The specified page was invalid for the operation.
        BadPage = -9 => "bad_page",
        /// Copy arguments cross a page boundary.
        BadCopyArg = -10 => "bad_copy_arg",
        /// The address is not valid for this domain.
        AddressTooBig = -11 => "address_too_big",
        /// The operation would block.
        Eagain = -12 => "eagain",
        /// No space for the mapping.
        NoSpace = -13 => "no_space",
    }
}
