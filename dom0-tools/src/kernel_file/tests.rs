//! Round trips through every supported format, with payloads compressed at test time, and
//! the refusals: truncation, corruption, old headers, unknown and unsupported formats.

use alloc::vec::Vec;
use lzma_rust2::Write as _;

use proptest::prelude::*;

use super::decompress::Format;
use super::{UnpackError, unpack};

/// Something ELF-like and compressible, `len` bytes.
fn fake_elf(len: usize) -> Vec<u8> {
    let mut elf = b"\x7fELF\x02\x01\x01".to_vec();
    elf.extend((0..len.saturating_sub(7)).map(|i| (i * 7 / 13) as u8 ^ (i >> 9) as u8));
    elf
}

/// A bzImage around `payload` (also for the builder's tests): 2 setup sectors, protocol `version`, the payload 0x40 bytes
/// into the protected-mode code, and some bytes after it.
pub(crate) fn bzimage(payload: &[u8], version: u16) -> Vec<u8> {
    let mut file = alloc::vec![0u8; 3 * 512 + 0x40];
    file[0x1f1] = 2;
    file[0x202..0x206].copy_from_slice(b"HdrS");
    file[0x206..0x208].copy_from_slice(&version.to_le_bytes());
    file[0x248..0x24c].copy_from_slice(&0x40u32.to_le_bytes());
    file[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    file.extend_from_slice(payload);
    file.extend_from_slice(&[0xcc; 100]);
    file
}

fn with_size(mut stream: Vec<u8>, size: usize) -> Vec<u8> {
    stream.extend_from_slice(&(size as u32).to_le_bytes());
    stream
}

fn gzip(data: &[u8]) -> Vec<u8> {
    // A header with a file name, as `gzip` writes; no CRC check is made on it.
    let mut out = alloc::vec![0x1f, 0x8b, 8, 1 << 3, 0, 0, 0, 0, 0, 3];
    out.extend_from_slice(b"vmlinux.bin\0");
    out.extend(miniz_oxide::deflate::compress_to_vec(data, 6));
    out.extend_from_slice(&[0; 4]); // CRC32 (not checked)
    with_size(out, data.len())
}

pub(crate) fn lz4(data: &[u8]) -> Vec<u8> {
    // The legacy frame: magic, then blocks of at most 8 MiB, each with its size.
    let mut out = 0x184c_2102u32.to_le_bytes().to_vec();
    for chunk in data.chunks(3000) {
        let block = lz4_flex::block::compress(chunk);
        out.extend_from_slice(&(block.len() as u32).to_le_bytes());
        out.extend(block);
    }
    with_size(out, data.len())
}

fn zstd(data: &[u8]) -> Vec<u8> {
    let stream =
        ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest);
    with_size(stream, data.len())
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut w = lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(1))
        .expect("xz writer");
    w.write_all(data).expect("xz write");
    with_size(w.finish().expect("xz finish"), data.len())
}

fn lzma(data: &[u8]) -> Vec<u8> {
    let options = lzma_rust2::LzmaOptions::with_preset(1);
    let mut w =
        lzma_rust2::LzmaWriter::new_use_header(Vec::new(), &options, None).expect("lzma writer");
    w.write_all(data).expect("lzma write");
    with_size(w.finish().expect("lzma finish"), data.len())
}

type Compressor = fn(&[u8]) -> Vec<u8>;
const FORMATS: [(Format, Compressor); 5] = [
    (Format::Gzip, gzip),
    (Format::Lz4, lz4),
    (Format::Zstd, zstd),
    (Format::Xz, xz),
    (Format::Lzma, lzma),
];

#[test]
fn every_supported_format_round_trips() {
    let elf = fake_elf(20_000);
    for (format, compress) in FORMATS {
        let payload = compress(&elf);
        assert_eq!(Format::detect(&payload), Some(format));
        let file = bzimage(&payload, 0x020f);
        let out = unpack(&file).unwrap_or_else(|e| panic!("{format}: {e}"));
        assert_eq!(&*out, &elf[..], "{format}");
    }
}

#[test]
fn an_elf_file_is_passed_through_unchanged() {
    let elf = fake_elf(100);
    assert!(matches!(unpack(&elf), Ok(alloc::borrow::Cow::Borrowed(b)) if b == &elf[..]));
    // So is a file that is neither (KernelImage::parse names the problem).
    assert!(matches!(
        unpack(b"hello"),
        Ok(alloc::borrow::Cow::Borrowed(b"hello"))
    ));
}

#[test]
fn truncated_payloads_are_refused_as_corrupt() {
    let elf = fake_elf(5_000);
    for (format, compress) in FORMATS {
        let payload = compress(&elf);
        // Cut the stream (keeping the size word at the end, as the header declares).
        for cut in [payload.len() / 2, payload.len() - 6, 8] {
            let mut short = payload[..cut].to_vec();
            short.extend_from_slice(&payload[payload.len() - 4..]);
            let err = unpack(&bzimage(&short, 0x020f)).err();
            assert_eq!(
                err,
                Some(UnpackError::Corrupt(format)),
                "{format} cut at {cut}"
            );
        }
    }
}

#[test]
fn a_wrong_declared_size_is_corrupt() {
    let elf = fake_elf(5_000);
    for (format, compress) in FORMATS {
        let mut payload = compress(&elf);
        let n = payload.len();
        for size in [elf.len() - 1, elf.len() + 1] {
            payload[n - 4..].copy_from_slice(&(size as u32).to_le_bytes());
            let err = unpack(&bzimage(&payload, 0x020f)).err();
            assert_eq!(
                err,
                Some(UnpackError::Corrupt(format)),
                "{format} size {size}"
            );
        }
    }
}

#[test]
fn header_problems_are_named() {
    let payload = lz4(&fake_elf(1000));
    assert_eq!(
        unpack(&bzimage(&payload, 0x0207)).unwrap_err(),
        UnpackError::OldBootProtocol(0x0207)
    );
    let mut file = bzimage(&payload, 0x020f);
    file[0x24c..0x250].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(unpack(&file).unwrap_err(), UnpackError::PayloadOutsideFile);
    file[0x24c..0x250].copy_from_slice(&0u32.to_le_bytes());
    assert_eq!(unpack(&file).unwrap_err(), UnpackError::PayloadOutsideFile);
    assert_eq!(
        unpack(&file[..0x207]).unwrap_err(),
        UnpackError::TruncatedHeader
    );
}

#[test]
fn unknown_and_unsupported_formats_are_named() {
    let file = bzimage(b"BZh91AY&SY\x00\x00\x10\x00", 0x020f);
    assert_eq!(
        unpack(&file).unwrap_err(),
        UnpackError::Unsupported(Format::Bzip2)
    );
    let file = bzimage(b"\x89LZO\x00\x0d\x0a\x1a\x0a\x10\x00\x00\x00", 0x020f);
    assert_eq!(
        unpack(&file).unwrap_err(),
        UnpackError::Unsupported(Format::Lzo)
    );
    let file = bzimage(b"ABCDEFGH", 0x020f);
    assert_eq!(
        unpack(&file).unwrap_err(),
        UnpackError::UnknownCompression(*b"ABCD")
    );
}

#[test]
fn a_payload_that_is_not_elf_is_refused() {
    let payload = zstd(b"plain text, not a kernel");
    assert_eq!(
        unpack(&bzimage(&payload, 0x020f)).unwrap_err(),
        UnpackError::NotElfInside(Format::Zstd)
    );
}

#[test]
fn too_large_a_declared_size_is_refused_before_allocating() {
    let mut payload = lz4(&fake_elf(100));
    let n = payload.len();
    payload[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        unpack(&bzimage(&payload, 0x020f)).unwrap_err(),
        UnpackError::TooLarge(u32::MAX as usize)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any bytes changed in any format's payload give an image or an error, never a panic.
    #[test]
    fn corrupted_payloads_never_panic(
        which in 0..FORMATS.len(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
    ) {
        let (_, compress) = FORMATS[which];
        let mut payload = compress(&fake_elf(3_000));
        let n = payload.len();
        for (at, byte) in flips {
            payload[at % n] ^= byte | 1;
        }
        let _ = unpack(&bzimage(&payload, 0x020f));
    }
}
