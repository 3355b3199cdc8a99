//! How the backend moves data between a guest's granted pages and its own buffer: batches
//! of `GNTTABOP_copy`, one operation per segment, with the guest's domain as the granting
//! side, so the hypervisor checks every reference (a bad or another domain's grant fails
//! its operation, and the request gets an error).

use guest_abi::DomId;

/// One segment of a request: bytes `offset..offset + len` of the page `gref` grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantSegment {
    /// The grant reference.
    pub gref: u32,
    /// Byte offset in the page.
    pub offset: u16,
    /// Bytes.
    pub len: u16,
}

/// `GNTTABOP_copy` batches. The dom0 kernel implements it over its hypercall; host tests
/// over a fake grant table.
pub trait GrantCopy {
    /// Copies each segment of `dom`'s pages, in order, into `buf` (back to back; `buf` is
    /// exactly as long as the segments together). Returns whether every copy succeeded.
    fn copy_from_guest(&mut self, dom: DomId, segments: &[GrantSegment], buf: &mut [u8]) -> bool;
    /// Copies `buf` into the segments of `dom`'s pages, in order (the guest must have
    /// granted them writable). Returns whether every copy succeeded.
    fn copy_to_guest(&mut self, dom: DomId, segments: &[GrantSegment], buf: &[u8]) -> bool;
}
