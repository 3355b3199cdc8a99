//! The block device protocol (`io/blkif.h`): requests a frontend puts on the shared ring,
//! the responses a backend returns, the operations and status codes, and the `info` bits
//! the backend publishes in the store.
//!
//! A request names up to [`BLKIF_MAX_SEGMENTS_PER_REQUEST`] segments, each a granted page
//! and an inclusive range of 512-byte sectors within it (`first_sect..=last_sect`, at most
//! 7); the data are the segments' sectors one after another, from `sector_number` on.
//! An indirect request names pages of [`BlkifRequestSegment`]s instead.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `BLKIF_OP_READ`.
pub const BLKIF_OP_READ: u8 = 0;
/// `BLKIF_OP_WRITE`.
pub const BLKIF_OP_WRITE: u8 = 1;
/// `BLKIF_OP_WRITE_BARRIER`: a write ordered after everything before it, and durable.
pub const BLKIF_OP_WRITE_BARRIER: u8 = 2;
/// `BLKIF_OP_FLUSH_DISKCACHE`: everything completed before is made durable.
pub const BLKIF_OP_FLUSH_DISKCACHE: u8 = 3;
/// `BLKIF_OP_RESERVED_1`.
pub const BLKIF_OP_RESERVED_1: u8 = 4;
/// `BLKIF_OP_DISCARD`.
pub const BLKIF_OP_DISCARD: u8 = 5;
/// `BLKIF_OP_INDIRECT`: the segments are in granted pages.
pub const BLKIF_OP_INDIRECT: u8 = 6;

/// `BLKIF_MAX_SEGMENTS_PER_REQUEST`.
pub const BLKIF_MAX_SEGMENTS_PER_REQUEST: usize = 11;
/// `BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST`.
pub const BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST: usize = 8;
/// `BLKIF_DISCARD_SECURE`.
pub const BLKIF_DISCARD_SECURE: u8 = 1;

/// `BLKIF_RSP_EOPNOTSUPP`.
pub const BLKIF_RSP_EOPNOTSUPP: i16 = -2;
/// `BLKIF_RSP_ERROR`.
pub const BLKIF_RSP_ERROR: i16 = -1;
/// `BLKIF_RSP_OKAY`.
pub const BLKIF_RSP_OKAY: i16 = 0;

/// `VDISK_CDROM` (in the `info` node).
pub const VDISK_CDROM: u32 = 0x1;
/// `VDISK_REMOVABLE`.
pub const VDISK_REMOVABLE: u32 = 0x2;
/// `VDISK_READONLY`.
pub const VDISK_READONLY: u32 = 0x4;

/// Sectors of 512 bytes in a page: a segment's `last_sect` is below this.
pub const SECTORS_PER_PAGE: u8 = 8;

/// `struct blkif_request_segment`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct BlkifRequestSegment {
    /// The granted page.
    pub gref: u32,
    /// First sector of the page transferred.
    pub first_sect: u8,
    /// Last sector of the page transferred (inclusive).
    pub last_sect: u8,
    /// Padding.
    pub _hole: [u8; 2],
}

/// `struct blkif_request` (read, write, barrier, flush).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BlkifRequest {
    /// `BLKIF_OP_*`.
    pub operation: u8,
    /// Segments used.
    pub nr_segments: u8,
    /// The virtual device.
    pub handle: u16,
    /// Padding.
    pub _hole: [u8; 4],
    /// The guest's tag, echoed in the response.
    pub id: u64,
    /// First sector.
    pub sector_number: u64,
    /// The segments.
    pub seg: [BlkifRequestSegment; BLKIF_MAX_SEGMENTS_PER_REQUEST],
}

/// `struct blkif_request_discard`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BlkifRequestDiscard {
    /// [`BLKIF_OP_DISCARD`].
    pub operation: u8,
    /// [`BLKIF_DISCARD_SECURE`] or zero.
    pub flag: u8,
    /// The virtual device.
    pub handle: u16,
    /// Padding.
    pub _hole: [u8; 4],
    /// The guest's tag.
    pub id: u64,
    /// First sector.
    pub sector_number: u64,
    /// Sectors to discard.
    pub nr_sectors: u64,
}

/// `struct blkif_request_indirect`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BlkifRequestIndirect {
    /// [`BLKIF_OP_INDIRECT`].
    pub operation: u8,
    /// The real operation: read or write.
    pub indirect_op: u8,
    /// Segments, in the indirect pages.
    pub nr_segments: u16,
    /// Padding.
    pub _hole: [u8; 4],
    /// The guest's tag.
    pub id: u64,
    /// First sector.
    pub sector_number: u64,
    /// The virtual device.
    pub handle: u16,
    /// Padding.
    pub _hole2: [u8; 2],
    /// Granted pages holding the segments.
    pub indirect_grefs: [u32; BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST],
    /// Padding.
    pub _hole3: [u8; 4],
}

/// `struct blkif_response`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BlkifResponse {
    /// The request's `id`.
    pub id: u64,
    /// The request's operation.
    pub operation: u8,
    /// Padding.
    pub _hole: u8,
    /// `BLKIF_RSP_*`.
    pub status: i16,
    /// Padding.
    pub _hole2: [u8; 4],
}

/// Bytes of one ring entry: the larger of a request and a response.
pub const BLKIF_ENTRY_SIZE: usize = core::mem::size_of::<BlkifRequest>();

/// Segments one indirect page holds.
pub const SEGMENTS_PER_INDIRECT_PAGE: usize =
    crate::PAGE_SIZE as usize / core::mem::size_of::<BlkifRequestSegment>();
