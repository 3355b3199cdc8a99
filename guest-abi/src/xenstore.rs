//! The xenstore ring and wire format (`io/xs_wire.h`): a domain's store is a page shared
//! with the store's server (two byte rings and their indexes) plus an event channel; each
//! message is a [`XsdSockmsg`] header and up to [`XENSTORE_PAYLOAD_MAX`] payload bytes.

use core::mem::offset_of;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `XENSTORE_RING_SIZE`: bytes in each ring.
pub const XENSTORE_RING_SIZE: u32 = 1024;
/// `XENSTORE_PAYLOAD_MAX`: the longest payload, either way.
pub const XENSTORE_PAYLOAD_MAX: u32 = 4096;
/// `XENSTORE_ABS_PATH_MAX`: the longest absolute path.
pub const XENSTORE_ABS_PATH_MAX: u32 = 3072;
/// `XENSTORE_REL_PATH_MAX`: the longest relative path.
pub const XENSTORE_REL_PATH_MAX: u32 = 2048;

/// `XS_CONTROL`.
pub const XS_CONTROL: u32 = 0;
/// `XS_DIRECTORY`.
pub const XS_DIRECTORY: u32 = 1;
/// `XS_READ`.
pub const XS_READ: u32 = 2;
/// `XS_GET_PERMS`.
pub const XS_GET_PERMS: u32 = 3;
/// `XS_WATCH`.
pub const XS_WATCH: u32 = 4;
/// `XS_UNWATCH`.
pub const XS_UNWATCH: u32 = 5;
/// `XS_TRANSACTION_START`.
pub const XS_TRANSACTION_START: u32 = 6;
/// `XS_TRANSACTION_END`.
pub const XS_TRANSACTION_END: u32 = 7;
/// `XS_INTRODUCE`.
pub const XS_INTRODUCE: u32 = 8;
/// `XS_RELEASE`.
pub const XS_RELEASE: u32 = 9;
/// `XS_GET_DOMAIN_PATH`.
pub const XS_GET_DOMAIN_PATH: u32 = 10;
/// `XS_WRITE`.
pub const XS_WRITE: u32 = 11;
/// `XS_MKDIR`.
pub const XS_MKDIR: u32 = 12;
/// `XS_RM`.
pub const XS_RM: u32 = 13;
/// `XS_SET_PERMS`.
pub const XS_SET_PERMS: u32 = 14;
/// `XS_WATCH_EVENT`: unsolicited, ids 0.
pub const XS_WATCH_EVENT: u32 = 15;
/// `XS_ERROR`: the payload is an errno name.
pub const XS_ERROR: u32 = 16;
/// `XS_IS_DOMAIN_INTRODUCED`.
pub const XS_IS_DOMAIN_INTRODUCED: u32 = 17;
/// `XS_RESUME`.
pub const XS_RESUME: u32 = 18;
/// `XS_SET_TARGET`.
pub const XS_SET_TARGET: u32 = 19;
/// `XS_RESET_WATCHES`.
pub const XS_RESET_WATCHES: u32 = 21;
/// `XS_DIRECTORY_PART`.
pub const XS_DIRECTORY_PART: u32 = 22;

/// `struct xsd_sockmsg`: the header of every message.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XsdSockmsg {
    /// `type`: `XS_*`.
    pub type_: u32,
    /// The request's id, copied into its reply.
    pub req_id: u32,
    /// The transaction (0: none).
    pub tx_id: u32,
    /// Payload bytes that follow.
    pub len: u32,
}

/// `struct xenstore_domain_interface`: the shared page.
///
/// Both rings are byte rings indexed by free-running `u32` counters (`MASK_XENSTORE_IDX`
/// masks them): the domain produces requests in `req`, the server replies and watch events
/// in `rsp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct XenstoreDomainInterface {
    /// Requests to the server.
    pub req: [u8; 1024],
    /// Replies and watch events to the domain.
    pub rsp: [u8; 1024],
    /// Consumer index of `req` (the server).
    pub req_cons: u32,
    /// Producer index of `req` (the domain).
    pub req_prod: u32,
    /// Consumer index of `rsp` (the domain).
    pub rsp_cons: u32,
    /// Producer index of `rsp` (the server).
    pub rsp_prod: u32,
    /// `XENSTORE_SERVER_FEATURE_*` the server offers.
    pub server_features: u32,
    /// `XENSTORE_CONNECTED` or `XENSTORE_RECONNECT`.
    pub connection: u32,
    /// `XENSTORE_ERROR_*`.
    pub error: u32,
}

impl XenstoreDomainInterface {
    /// Offset of `req` in the page.
    pub const REQ: usize = offset_of!(Self, req);
    /// Offset of `rsp`.
    pub const RSP: usize = offset_of!(Self, rsp);
    /// Offset of `req_cons`.
    pub const REQ_CONS: usize = offset_of!(Self, req_cons);
    /// Offset of `req_prod`.
    pub const REQ_PROD: usize = offset_of!(Self, req_prod);
    /// Offset of `rsp_cons`.
    pub const RSP_CONS: usize = offset_of!(Self, rsp_cons);
    /// Offset of `rsp_prod`.
    pub const RSP_PROD: usize = offset_of!(Self, rsp_prod);

    /// `MASK_XENSTORE_IDX`: where index `idx` falls in a ring.
    pub const fn index(idx: u32) -> usize {
        (idx & (XENSTORE_RING_SIZE - 1)) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_indexes_wrap_and_fields_sit_after_the_rings() {
        assert_eq!(XenstoreDomainInterface::index(1025), 1);
        assert_eq!(XenstoreDomainInterface::RSP, 1024);
        assert_eq!(XenstoreDomainInterface::REQ_CONS, 2048);
        assert_eq!(XenstoreDomainInterface::RSP_PROD, 2060);
        assert_eq!(size_of::<XsdSockmsg>(), 16);
    }
}
