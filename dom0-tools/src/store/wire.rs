//! The xenstore wire format (`io/xs_wire.h`): message types, the 16-byte header
//! (`struct xsd_sockmsg`: type, req_id, tx_id, len, little-endian) and the payload limit.

use alloc::vec::Vec;

/// `struct xsd_sockmsg`'s size.
pub const HEADER: usize = 16;
/// `XENSTORE_PAYLOAD_MAX`.
pub const PAYLOAD_MAX: usize = 4096;

/// `enum xsd_sockmsg_type`.
pub mod msg {
    /// `XS_CONTROL`.
    pub const CONTROL: u32 = 0;
    /// `XS_DIRECTORY`.
    pub const DIRECTORY: u32 = 1;
    /// `XS_READ`.
    pub const READ: u32 = 2;
    /// `XS_GET_PERMS`.
    pub const GET_PERMS: u32 = 3;
    /// `XS_WATCH`.
    pub const WATCH: u32 = 4;
    /// `XS_UNWATCH`.
    pub const UNWATCH: u32 = 5;
    /// `XS_TRANSACTION_START`.
    pub const TRANSACTION_START: u32 = 6;
    /// `XS_TRANSACTION_END`.
    pub const TRANSACTION_END: u32 = 7;
    /// `XS_INTRODUCE`.
    pub const INTRODUCE: u32 = 8;
    /// `XS_RELEASE`.
    pub const RELEASE: u32 = 9;
    /// `XS_GET_DOMAIN_PATH`.
    pub const GET_DOMAIN_PATH: u32 = 10;
    /// `XS_WRITE`.
    pub const WRITE: u32 = 11;
    /// `XS_MKDIR`.
    pub const MKDIR: u32 = 12;
    /// `XS_RM`.
    pub const RM: u32 = 13;
    /// `XS_SET_PERMS`.
    pub const SET_PERMS: u32 = 14;
    /// `XS_WATCH_EVENT`.
    pub const WATCH_EVENT: u32 = 15;
    /// `XS_ERROR`.
    pub const ERROR: u32 = 16;
    /// `XS_IS_DOMAIN_INTRODUCED`.
    pub const IS_DOMAIN_INTRODUCED: u32 = 17;
    /// `XS_RESUME`.
    pub const RESUME: u32 = 18;
    /// `XS_SET_TARGET`.
    pub const SET_TARGET: u32 = 19;
    /// `XS_RESET_WATCHES`.
    pub const RESET_WATCHES: u32 = 21;
    /// `XS_DIRECTORY_PART`.
    pub const DIRECTORY_PART: u32 = 22;
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
