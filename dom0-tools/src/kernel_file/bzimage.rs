//! The x86 boot protocol's setup header (Linux's `Documentation/arch/x86/boot.rst`): where a
//! `bzImage` keeps its compressed kernel.
//!
//! A bzImage is the real-mode setup code (`setup_sects + 1` sectors of 512 bytes; a
//! `setup_sects` of 0 means 4), then the protected-mode code, which holds the compressed
//! kernel at `payload_offset` for `payload_length` bytes (both relative to the start of
//! the protected-mode code, boot protocol 2.08 and later). Only these fields are read.

use super::UnpackError;

/// `"HdrS"` at [`HEADER_MAGIC_AT`]: the file has a setup header.
pub const HEADER_MAGIC: &[u8; 4] = b"HdrS";
/// Where the setup header's magic is.
pub const HEADER_MAGIC_AT: usize = 0x202;
/// The boot protocol version (u16, `major << 8 | minor`).
const VERSION_AT: usize = 0x206;
/// `setup_sects` (u8).
const SETUP_SECTS_AT: usize = 0x1f1;
/// `payload_offset` and `payload_length` (u32 each).
const PAYLOAD_OFFSET_AT: usize = 0x248;
const PAYLOAD_LENGTH_AT: usize = 0x24c;
/// The first boot protocol with `payload_offset` and `payload_length`.
pub const MIN_PROTOCOL: u16 = 0x0208;
const SECTOR: usize = 512;

/// Whether `file` has a setup header (the magic alone; [`payload`] checks the rest).
pub fn is_bzimage(file: &[u8]) -> bool {
    file.get(HEADER_MAGIC_AT..HEADER_MAGIC_AT + 4) == Some(HEADER_MAGIC)
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    let v = u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?);
    usize::try_from(v).ok()
}

/// The compressed kernel inside a bzImage.
pub fn payload(file: &[u8]) -> Result<&[u8], UnpackError> {
    if !is_bzimage(file) {
        return Err(UnpackError::NotBzImage);
    }
    let version = u16_at(file, VERSION_AT).ok_or(UnpackError::TruncatedHeader)?;
    if version < MIN_PROTOCOL {
        return Err(UnpackError::OldBootProtocol(version));
    }
    let sects = file
        .get(SETUP_SECTS_AT)
        .ok_or(UnpackError::TruncatedHeader)?;
    let sects = if *sects == 0 { 4 } else { usize::from(*sects) };
    let offset = u32_at(file, PAYLOAD_OFFSET_AT).ok_or(UnpackError::TruncatedHeader)?;
    let length = u32_at(file, PAYLOAD_LENGTH_AT).ok_or(UnpackError::TruncatedHeader)?;
    let start = (sects + 1)
        .checked_mul(SECTOR)
        .and_then(|pm| pm.checked_add(offset))
        .ok_or(UnpackError::PayloadOutsideFile)?;
    let end = start
        .checked_add(length)
        .ok_or(UnpackError::PayloadOutsideFile)?;
    if length == 0 {
        return Err(UnpackError::PayloadOutsideFile);
    }
    file.get(start..end).ok_or(UnpackError::PayloadOutsideFile)
}
