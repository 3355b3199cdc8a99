//! The kernel files the builder accepts, turned into the ELF image it loads: an ELF file
//! as it is, or a Linux `bzImage` (what distributions ship as `/boot/vmlinuz-*`), whose
//! compressed kernel dom0 takes out of the setup header's payload ([`bzimage`]) and
//! decompresses ([`decompress`]). The hypervisor's own dom0 builder takes ELF files only.
//!
//! A file that is neither is passed on as it is, for [`KernelImage::parse`] to say what is
//! wrong with it. Nothing here panics on any input; a corrupt or truncated payload is
//! [`UnpackError::Corrupt`].
//!
//! [`KernelImage::parse`]: guest_abi::image::KernelImage::parse

pub mod bzimage;
pub mod decompress;

use alloc::borrow::Cow;
use core::fmt;

pub use decompress::Format;

/// Why a kernel file could not be turned into an ELF image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnpackError {
    /// No setup header (`"HdrS"` at 0x202).
    NotBzImage,
    /// The file ends inside the setup header.
    TruncatedHeader,
    /// Boot protocol older than 2.08: no payload fields.
    OldBootProtocol(u16),
    /// `payload_offset`/`payload_length` point outside the file, or the payload is empty.
    PayloadOutsideFile,
    /// The payload starts with no compression magic we know (its first four bytes).
    UnknownCompression([u8; 4]),
    /// A format we know but have no decoder for.
    Unsupported(Format),
    /// The payload is corrupt or truncated, or decompresses to another size than it
    /// declares.
    Corrupt(Format),
    /// The declared decompressed size is over [`decompress::MAX_KERNEL_SIZE`].
    TooLarge(usize),
    /// dom0 cannot allocate the decompressed kernel (this many bytes).
    OutOfMemory(usize),
    /// The decompressed payload is not an ELF file.
    NotElfInside(Format),
}

impl fmt::Display for UnpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotBzImage => write!(f, "not a bzImage (no setup header)"),
            Self::TruncatedHeader => write!(f, "the bzImage ends inside its setup header"),
            Self::OldBootProtocol(v) => write!(
                f,
                "bzImage boot protocol {}.{:02} is older than 2.08 (no payload fields)",
                v >> 8,
                v & 0xff
            ),
            Self::PayloadOutsideFile => {
                write!(f, "the bzImage's payload lies outside the file")
            }
            Self::UnknownCompression(m) => write!(
                f,
                "the bzImage's payload has an unknown compression (starts {:02x}{:02x}{:02x}{:02x})",
                m[0], m[1], m[2], m[3]
            ),
            Self::Unsupported(format) => write!(
                f,
                "the bzImage's payload is {format}-compressed, which this builder cannot \
                 decompress (gzip, xz, lzma, lz4 and zstd are supported)"
            ),
            Self::Corrupt(format) => {
                write!(f, "the bzImage's {format} payload is corrupt or truncated")
            }
            Self::TooLarge(n) => write!(
                f,
                "the bzImage's payload declares {n} bytes, more than the {} MiB accepted",
                decompress::MAX_KERNEL_SIZE >> 20
            ),
            Self::OutOfMemory(n) => write!(
                f,
                "dom0 has no room for the {} MiB decompressed kernel (give dom0 more memory)",
                n.div_ceil(1 << 20)
            ),
            Self::NotElfInside(format) => {
                write!(f, "the bzImage's {format} payload is not an ELF file")
            }
        }
    }
}

impl core::error::Error for UnpackError {}

/// The ELF image of a kernel file: `file` itself, or the kernel a bzImage carries.
pub fn unpack(file: &[u8]) -> Result<Cow<'_, [u8]>, UnpackError> {
    if !bzimage::is_bzimage(file) || file.starts_with(b"\x7fELF") {
        return Ok(Cow::Borrowed(file));
    }
    let payload = bzimage::payload(file)?;
    let format = Format::detect(payload);
    let elf = decompress::decompress(payload)?;
    match format {
        Some(f) if !elf.starts_with(b"\x7fELF") => Err(UnpackError::NotElfInside(f)),
        _ => Ok(Cow::Owned(elf)),
    }
}

#[cfg(test)]
pub(crate) mod tests;
