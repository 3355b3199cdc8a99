//! The compressed kernels of a bzImage, decompressed with no_std crates: gzip
//! (`miniz_oxide`, the gzip header read here), LZ4 in its legacy frame (`lz4_flex` for each
//! block), zstd (`ruzstd`), xz with its x86 BCJ filter (`xz4rust`) and the old `.lzma`
//! format (`lzma-rust2`). bzip2 and LZO have no `no_std` decoder we accept
//! (`docs/TOOLSTACK.md`) and are refused by name.
//!
//! Linux appends the decompressed size to every payload as a little-endian u32 (gzip's own
//! `ISIZE` trailer is the same field), so the output is allocated once, at that size, and
//! the decoders write into it; a decoder that wants to write more, or stops short, makes
//! the payload [`UnpackError::Corrupt`].

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;

use super::UnpackError;

/// The largest decompressed kernel accepted (Linux's are 30 to 60 MiB).
pub const MAX_KERNEL_SIZE: usize = 256 << 20;
/// The largest xz or lzma dictionary accepted (Linux uses 32 MiB).
pub const MAX_DICT_SIZE: usize = 64 << 20;

/// A compression format, told by its magic number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// gzip (RFC 1952).
    Gzip,
    /// bzip2.
    Bzip2,
    /// The `.lzma` ("LZMA alone") format.
    Lzma,
    /// xz.
    Xz,
    /// lzop.
    Lzo,
    /// LZ4's legacy frame (what `lz4 -l` writes).
    Lz4,
    /// zstd.
    Zstd,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Gzip => "gzip",
            Self::Bzip2 => "bzip2",
            Self::Lzma => "lzma",
            Self::Xz => "xz",
            Self::Lzo => "lzo",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        })
    }
}

const LZ4_LEGACY_MAGIC: u32 = 0x184c_2102;

impl Format {
    /// The format whose magic number `data` starts with.
    pub fn detect(data: &[u8]) -> Option<Self> {
        const MAGICS: [(&[u8], Format); 7] = [
            (&[0x1f, 0x8b], Format::Gzip),
            (b"BZh", Format::Bzip2),
            (&[0x5d, 0x00, 0x00], Format::Lzma),
            (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], Format::Xz),
            (&[0x89, b'L', b'Z', b'O'], Format::Lzo),
            (&LZ4_LEGACY_MAGIC.to_le_bytes(), Format::Lz4),
            (&[0x28, 0xb5, 0x2f, 0xfd], Format::Zstd),
        ];
        MAGICS
            .iter()
            .find(|(magic, _)| data.starts_with(magic))
            .map(|&(_, format)| format)
    }
}

/// Decompresses a bzImage payload: the compressed stream followed by the decompressed
/// size (u32, little-endian).
pub fn decompress(payload: &[u8]) -> Result<Vec<u8>, UnpackError> {
    let format = Format::detect(payload).ok_or_else(|| {
        let mut magic = [0u8; 4];
        for (m, b) in magic.iter_mut().zip(payload) {
            *m = *b;
        }
        UnpackError::UnknownCompression(magic)
    })?;
    let corrupt = UnpackError::Corrupt(format);
    let split = payload.len().checked_sub(4).ok_or(corrupt)?;
    let (stream, size) = payload.split_at(split);
    let size = usize::try_from(u32::from_le_bytes(size.try_into().map_err(|_| corrupt)?))
        .map_err(|_| corrupt)?;
    if size == 0 {
        return Err(corrupt);
    }
    if size > MAX_KERNEL_SIZE {
        return Err(UnpackError::TooLarge(size));
    }
    let mut out = Vec::new();
    out.try_reserve_exact(size)
        .map_err(|_| UnpackError::OutOfMemory(size))?;
    out.resize(size, 0);
    let written = match format {
        // gzip's trailer (CRC32, ISIZE) is part of its stream.
        Format::Gzip => gzip(payload, &mut out),
        Format::Lz4 => lz4_legacy(stream, &mut out),
        Format::Zstd => zstd(stream, &mut out),
        Format::Xz => xz(stream, &mut out),
        Format::Lzma => lzma(stream, &mut out),
        Format::Bzip2 | Format::Lzo => return Err(UnpackError::Unsupported(format)),
    };
    match written {
        Some(n) if n == size => Ok(out),
        _ => Err(corrupt),
    }
}

/// gzip: the member header (RFC 1952 section 2.3), then raw deflate into `out`.
fn gzip(data: &[u8], out: &mut [u8]) -> Option<usize> {
    use miniz_oxide::inflate::TINFLStatus;
    use miniz_oxide::inflate::core::{DecompressorOxide, decompress, inflate_flags};

    const FHCRC: u8 = 1 << 1;
    const FEXTRA: u8 = 1 << 2;
    const FNAME: u8 = 1 << 3;
    const FCOMMENT: u8 = 1 << 4;
    if data.get(2) != Some(&8) {
        return None; // Not deflate.
    }
    let flags = *data.get(3)?;
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let len = u16::from_le_bytes(data.get(at..at + 2)?.try_into().ok()?);
        at += 2 + usize::from(len);
    }
    for field in [FNAME, FCOMMENT] {
        if flags & field != 0 {
            at += data.get(at..)?.iter().position(|&b| b == 0)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    let deflate = data.get(at..)?;
    let mut state = Box::<DecompressorOxide>::default();
    let (status, read, written) = decompress(
        &mut state,
        deflate,
        out,
        0,
        inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF,
    );
    // The member ends with its CRC32 and ISIZE (8 bytes), and the payload there.
    let whole = read.checked_add(8) == Some(deflate.len());
    (status == TINFLStatus::Done && whole).then_some(written)
}

/// LZ4's legacy frame: the magic, then blocks each preceded by its compressed size (u32);
/// the magic may appear again between blocks (concatenated frames).
fn lz4_legacy(data: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut rest = data.get(4..)?;
    let mut written = 0;
    while !rest.is_empty() {
        let (len, tail) = rest.split_at_checked(4)?;
        let len = u32::from_le_bytes(len.try_into().ok()?);
        if len == LZ4_LEGACY_MAGIC {
            rest = tail;
            continue;
        }
        let (block, tail) = tail.split_at_checked(usize::try_from(len).ok()?)?;
        written += lz4_flex::block::decompress_into(block, out.get_mut(written..)?).ok()?;
        rest = tail;
    }
    Some(written)
}

fn zstd(data: &[u8], out: &mut [u8]) -> Option<usize> {
    ruzstd::decoding::FrameDecoder::new()
        .decode_all(data, out)
        .ok()
}

fn xz(data: &[u8], out: &mut [u8]) -> Option<usize> {
    use xz4rust::{XzDecoder, XzNextBlockResult};

    let mut decoder = XzDecoder::in_heap_with_alloc_dict_size(1 << 16, MAX_DICT_SIZE);
    let (mut read, mut written) = (0, 0);
    loop {
        let input = data.get(read..)?;
        let output = out.get_mut(written..)?;
        let step = decoder.decode(input, output).ok()?;
        if !step.made_progress() && !step.is_end_of_stream() {
            return None; // Truncated, or the output is full.
        }
        read += step.input_consumed();
        written += step.output_produced();
        if let XzNextBlockResult::EndOfStream(..) = step {
            return Some(written);
        }
    }
}

fn lzma(data: &[u8], out: &mut [u8]) -> Option<usize> {
    use lzma_rust2::{LzmaReader, Read};

    let limit_kib = u32::try_from(MAX_DICT_SIZE / 1024).ok()?;
    let mut reader = LzmaReader::new_mem_limit(data, limit_kib, None).ok()?;
    let mut written = 0;
    loop {
        let output = out.get_mut(written..)?;
        if output.is_empty() {
            // Full: the stream must end here.
            let mut probe = [0u8; 1];
            return (reader.read(&mut probe).ok()? == 0).then_some(written);
        }
        match reader.read(output).ok()? {
            0 => return Some(written),
            n => written += n,
        }
    }
}
