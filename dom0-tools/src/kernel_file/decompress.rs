//! The compressed kernels of a bzImage, decompressed with no_std crates: gzip
//! (`miniz_oxide`, the gzip header read here), LZ4 in its legacy frame (`lz4_flex` for each
//! block), zstd (`ruzstd`, its window fitted to the kernel), xz with its x86 BCJ filter (`xz4rust`) and the old `.lzma`
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
/// The largest xz or lzma dictionary accepted (Linux's xz uses 32 MiB, its lzma 64 MiB).
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
    if format == Format::Zstd {
        zstd_room(size)?;
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
        Format::Lzma => lzma(stream, &mut out)?,
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

/// zstd, one frame. Linux's `zstd -22 --ultra` reads a pipe, so its frame declares a
/// 128 MiB window, above what `ruzstd` accepts (100 MiB). No match reaches further back
/// than the bytes decoded so far, so a window as large as the kernel decodes the same
/// frame: the header is given to the decoder with its window lowered to that (and the rest
/// of the frame as it is).
fn zstd(data: &[u8], out: &mut [u8]) -> Option<usize> {
    use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};
    use ruzstd::io::Read;

    let header_len = zstd_header_len(data)?;
    let mut header = data.get(..header_len)?.to_vec();
    fit_zstd_window(&mut header, out.len());
    let mut decoder = FrameDecoder::new();
    decoder.init(&header[..]).ok()?;
    let mut rest = data.get(header_len..)?;
    let mut written = 0;
    while !decoder.is_finished() {
        decoder
            .decode_blocks(&mut rest, BlockDecodingStrategy::UptoBytes(1 << 20))
            .ok()?;
        written += decoder.read(out.get_mut(written..)?).ok()?;
        if decoder.can_collect() != 0 {
            return None; // More than the declared size.
        }
    }
    written += decoder.read(out.get_mut(written..)?).ok()?;
    (rest.is_empty() && decoder.can_collect() == 0).then_some(written)
}

/// `ruzstd` panics when its ring buffer cannot grow, and that buffer holds the whole kernel
/// (the window is fitted to it): its peak, a power of two at least the kernel's size and
/// the half it grew from, must be there to take before decoding starts.
fn zstd_room(size: usize) -> Result<(), UnpackError> {
    let peak = size
        .checked_next_power_of_two()
        .and_then(|cap| cap.checked_add(cap / 2))
        .ok_or(UnpackError::TooLarge(size))?;
    let mut probe: Vec<u8> = Vec::new();
    probe
        .try_reserve_exact(peak)
        .map_err(|_| UnpackError::OutOfMemory(peak))
}

/// The length of a zstd frame header (RFC 8878 section 3.1.1.1): magic, descriptor, window
/// descriptor unless single-segment, dictionary ID, content size.
fn zstd_header_len(frame: &[u8]) -> Option<usize> {
    let descriptor = *frame.get(4)?;
    let single_segment = descriptor & 0x20 != 0;
    let dict_id = [0, 1, 2, 4][usize::from(descriptor & 3)];
    let content_size = match descriptor >> 6 {
        0 => usize::from(single_segment),
        flag => 1 << flag,
    };
    Some(5 + usize::from(!single_segment) + dict_id + content_size)
}

/// Lowers the window descriptor of a zstd frame header to the smallest window of at least
/// `size` bytes, if that is smaller than the one declared.
fn fit_zstd_window(header: &mut [u8], size: usize) {
    fn window(descriptor: u8) -> u64 {
        let base = 1u64 << (10 + (descriptor >> 3));
        base + (base / 8) * u64::from(descriptor & 7)
    }
    let single_segment = header.get(4).is_none_or(|d| d & 0x20 != 0);
    let Some(declared) = header.get_mut(5).filter(|_| !single_segment) else {
        return;
    };
    let fits = (0..=u8::MAX).find(|&d| window(d) >= size as u64);
    if let Some(d) = fits.filter(|&d| window(d) < window(*declared)) {
        *declared = d;
    }
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

/// The `.lzma` format; `Err` when dom0 has no room for the dictionary (which grows by
/// doubling to the declared size: one and a half times that at its peak).
fn lzma(data: &[u8], out: &mut [u8]) -> Result<Option<usize>, UnpackError> {
    use lzma_rust2::{Error, LzmaReader, Read};

    let no_room = |e: &Error| matches!(e, Error::OutOfMemory(_));
    let dict = data
        .get(1..5)
        .and_then(|d| d.try_into().ok())
        .map_or(0, |d| u32::from_le_bytes(d) as usize);
    let room = UnpackError::OutOfMemory(dict + dict / 2);
    // The dictionary (Linux's `lzma -9`: 64 MiB) and the decoder's own few KiB.
    let limit_kib = (MAX_DICT_SIZE / 1024 + 1024) as u32;
    let mut reader = match LzmaReader::new_mem_limit(data, limit_kib, None) {
        Ok(reader) => reader,
        Err(_) => return Ok(None),
    };
    let mut written = 0;
    loop {
        let Some(output) = out.get_mut(written..) else {
            return Ok(None);
        };
        let full = output.is_empty();
        let mut probe = [0u8; 1];
        // Full: the stream must end here.
        let read = reader.read(if full { &mut probe } else { output });
        match read {
            Ok(0) => return Ok(Some(written)),
            Ok(_) if full => return Ok(None),
            Ok(n) => written += n,
            Err(e) if no_room(&e) => return Err(room),
            Err(_) => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header as `zstd -22 --ultra` writes it from a pipe: checksum, no content size, no
    /// dictionary, a 128 MiB window (exponent 17).
    #[test]
    fn a_window_above_the_decoders_limit_is_fitted_to_the_kernel() {
        let mut header = alloc::vec![0x28, 0xb5, 0x2f, 0xfd, 0x04, 17 << 3];
        assert_eq!(zstd_header_len(&header), Some(6));
        // Debian's 50.8 MiB kernel: 32 MiB + 5 * 4 MiB.
        fit_zstd_window(&mut header, 53_243_444);
        assert_eq!(header[5], 15 << 3 | 5);
        // Never raised, and a single-segment header (no window descriptor) is left alone.
        let mut small = alloc::vec![0x28, 0xb5, 0x2f, 0xfd, 0x04, 10 << 3];
        fit_zstd_window(&mut small, 1 << 30);
        assert_eq!(small[5], 10 << 3);
        let mut single = alloc::vec![0x28, 0xb5, 0x2f, 0xfd, 0x20 | 0x80, 0x12, 0x34, 0, 0];
        assert_eq!(zstd_header_len(&single), Some(9));
        fit_zstd_window(&mut single, 100);
        assert_eq!(single[5], 0x12);
    }
}
