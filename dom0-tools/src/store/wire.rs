//! The xenstore wire format (`io/xs_wire.h`): message types, the 16-byte header
//! (`struct xsd_sockmsg`: type, req_id, tx_id, len, little-endian) and the payload limit.

use alloc::vec::Vec;

use guest_abi::xenstore::{XENSTORE_PAYLOAD_MAX, XsdSockmsg};

/// `struct xsd_sockmsg`'s size.
pub const HEADER: usize = size_of::<XsdSockmsg>();
/// `XENSTORE_PAYLOAD_MAX`.
pub const PAYLOAD_MAX: usize = XENSTORE_PAYLOAD_MAX as usize;

/// `enum xsd_sockmsg_type`, by short names (guest-abi's `XS_*`, checked against Xen's
/// headers).
pub mod msg {
    pub use guest_abi::xenstore::{
        XS_CONTROL as CONTROL, XS_DIRECTORY as DIRECTORY, XS_DIRECTORY_PART as DIRECTORY_PART,
        XS_ERROR as ERROR, XS_GET_DOMAIN_PATH as GET_DOMAIN_PATH, XS_GET_PERMS as GET_PERMS,
        XS_INTRODUCE as INTRODUCE, XS_IS_DOMAIN_INTRODUCED as IS_DOMAIN_INTRODUCED,
        XS_MKDIR as MKDIR, XS_READ as READ, XS_RELEASE as RELEASE,
        XS_RESET_WATCHES as RESET_WATCHES, XS_RESUME as RESUME, XS_RM as RM,
        XS_SET_PERMS as SET_PERMS, XS_SET_TARGET as SET_TARGET,
        XS_TRANSACTION_END as TRANSACTION_END, XS_TRANSACTION_START as TRANSACTION_START,
        XS_UNWATCH as UNWATCH, XS_WATCH as WATCH, XS_WATCH_EVENT as WATCH_EVENT, XS_WRITE as WRITE,
    };
}

/// A message's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// `XS_*`.
    pub ty: u32,
    /// The request's id, copied into its reply.
    pub req_id: u32,
    /// The transaction (0: none).
    pub tx_id: u32,
    /// Payload bytes that follow.
    pub len: u32,
}

impl Header {
    /// Decodes the first [`HEADER`] bytes.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let h = bytes.get(..HEADER)?;
        let word = |i: usize| {
            h.get(i..i + 4)
                .and_then(|w| w.try_into().ok())
                .map_or(0, u32::from_le_bytes)
        };
        Some(Self {
            ty: word(0),
            req_id: word(4),
            tx_id: word(8),
            len: word(12),
        })
    }
}

/// A whole message: header and payload.
pub fn message(ty: u32, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(HEADER + payload.len());
    for w in [ty, req_id, tx_id, payload.len() as u32] {
        m.extend_from_slice(&w.to_le_bytes());
    }
    m.extend_from_slice(payload);
    m
}

/// An `XS_ERROR` reply carrying `errno_name` with its NUL, as xenstored sends it.
pub fn error_message(req_id: u32, tx_id: u32, errno_name: &str) -> Vec<u8> {
    let mut payload = Vec::with_capacity(errno_name.len() + 1);
    payload.extend_from_slice(errno_name.as_bytes());
    payload.push(0);
    message(msg::ERROR, req_id, tx_id, &payload)
}

/// The NUL-terminated strings of a payload (a last string without its NUL counts too).
pub fn strings(payload: &[u8]) -> Vec<&[u8]> {
    let body = payload.strip_suffix(&[0]).unwrap_or(payload);
    if payload.is_empty() {
        return Vec::new();
    }
    body.split(|&b| b == 0).collect()
}
