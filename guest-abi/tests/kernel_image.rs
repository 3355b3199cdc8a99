//! Kernel image parsing: a valid image, then one table row per thing that can be wrong,
//! each giving its own typed error; and property tests that no input makes it panic.

mod common;

use common::elf::{Image, Seg, VIRT_BASE, str_desc};
use guest_abi::XenFeature;
use guest_abi::elfnote::ElfNoteType as T;
use guest_abi::image::{ImageError as E, KernelImage};
use proptest::prelude::*;

/// Linux's `FEATURES` note has no NUL in its description (the note's zero padding ends the
/// string); Xen's loader reads it, and so do we.
#[test]
fn string_notes_without_nul_are_read_whole() {
    let bytes = Image::good()
        .note(T::GuestOs, b"linux".to_vec())
        .note(
            T::Features,
            b"!writable_page_tables|pae_pgdir_above_4gb".to_vec(),
        )
        .build();
    let k = KernelImage::parse(&bytes).unwrap();
    assert_eq!(k.notes.guest_os, Some(&b"linux"[..]));
    assert!(k.features.requires(XenFeature::WritablePageTables));
}

#[test]
fn good_image_parses() {
    let bytes = Image::good().build();
    let k = KernelImage::parse(&bytes).unwrap();
    assert_eq!(k.virt_base, VIRT_BASE);
    assert_eq!(k.virt_kstart, VIRT_BASE + 0x10_0000);
    assert_eq!(k.virt_kend, VIRT_BASE + 0x11_0000);
    assert_eq!(k.entry, VIRT_BASE + 0x10_0000);
    assert_eq!(k.hypercall_page, Some(VIRT_BASE + 0x10_1000));
    assert_eq!(k.notes.guest_os, Some(&b"test"[..]));
    assert!(k.features.requires(XenFeature::WritablePageTables));
    assert!(k.features.supports(XenFeature::Dom0) && !k.features.requires(XenFeature::Dom0));
    let segs: Vec<_> = k.segments().collect();
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].dest.0, VIRT_BASE + 0x10_0000);
    assert_eq!((segs[0].data.len(), segs[0].mem_size), (0x8000, 0x1_0000));
}

#[test]
fn repeated_identical_notes_are_fine_and_unknown_optional_features_ignored() {
    let img = Image::good()
        .add_note(T::Loader, str_desc("generic"))
        .note(T::Features, str_desc("frobnicate|dom0"))
        .add_note(T::Info, vec![1, 2, 3]);
    let bytes = img.build();
    let k = KernelImage::parse(&bytes).unwrap();
    assert!(k.features.supports(XenFeature::Dom0));
}

#[test]
fn linux_needs_no_generic_loader() {
    let bytes = Image::good()
        .without(T::Loader)
        .note(T::GuestOs, str_desc("linux"))
        .build();
    assert!(KernelImage::parse(&bytes).is_ok());
}

#[test]
fn entry_defaults_to_e_entry() {
    let mut img = Image::good().without(T::Entry);
    img.entry = VIRT_BASE + 0x10_0010;
    let bytes = img.build();
    assert_eq!(
        KernelImage::parse(&bytes).unwrap().entry,
        VIRT_BASE + 0x10_0010
    );
}

fn with_header(f: impl Fn(&mut Image)) -> Vec<u8> {
    let mut img = Image::good();
    f(&mut img);
    img.build()
}

fn u64d(v: u64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

#[test]
fn every_bad_input_has_its_error() {
    let good = Image::good().build();
    let mut cases: Vec<(&str, Vec<u8>, E)> = vec![
        ("empty", vec![], E::Truncated),
        ("ident only", good[..16].to_vec(), E::Truncated),
        ("header cut", good[..63].to_vec(), E::Truncated),
        ("phdrs cut", good[..100].to_vec(), E::Truncated),
        ("not elf", b"MZ\x90\x00".repeat(32), E::NotElf),
        ("32-bit", with_header(|i| i.class = 1), E::WrongClass),
        (
            "big endian",
            with_header(|i| i.data = 2),
            E::WrongEndianness,
        ),
        ("i386", with_header(|i| i.machine = 3), E::WrongMachine),
        ("aarch64", with_header(|i| i.machine = 183), E::WrongMachine),
        ("shared object", with_header(|i| i.e_type = 3), E::WrongType),
        (
            "phentsize",
            with_header(|i| i.phentsize = 32),
            E::BadHeaderSize,
        ),
        (
            "filesz > memsz",
            with_header(|i| i.segs[0].filesz = i.segs[0].memsz + 1),
            E::BadSegment,
        ),
        (
            "no load segment",
            with_header(|i| i.segs.clear()),
            E::NoLoadableSegments,
        ),
        (
            "overlapping segments",
            with_header(|i| {
                i.segs.push(Seg {
                    paddr: 0x10_8000,
                    filesz: 0,
                    memsz: 0x1000,
                })
            }),
            E::SegmentsOverlap,
        ),
        ("no notes", with_header(|i| i.notes.clear()), E::NoXenNotes),
        (
            "entry 3 bytes",
            Image::good().note(T::Entry, vec![0; 3]).build(),
            E::BadNote(T::Entry),
        ),
        (
            "conflicting entry",
            Image::good()
                .add_note(T::Entry, u64d(VIRT_BASE + 0x10_0004))
                .build(),
            E::ConflictingNote(T::Entry),
        ),
        (
            "conflicting loader",
            Image::good().add_note(T::Loader, str_desc("other")).build(),
            E::ConflictingNote(T::Loader),
        ),
        (
            "no xen version",
            Image::good().without(T::XenVersion).build(),
            E::MissingNote(T::XenVersion),
        ),
        (
            "no loader, no guest os",
            Image::good().without(T::Loader).without(T::GuestOs).build(),
            E::MissingNote(T::Loader),
        ),
        (
            "foreign loader",
            Image::good().note(T::Loader, str_desc("bsd")).build(),
            E::UnsupportedLoader,
        ),
        (
            "xen 2",
            Image::good()
                .note(T::XenVersion, str_desc("xen-2.0"))
                .build(),
            E::UnsupportedXenVersion,
        ),
        (
            "unknown required feature",
            Image::good()
                .note(T::Features, str_desc("dom0|!teleport"))
                .build(),
            E::UnknownRequiredFeature,
        ),
        (
            "paddr offset without virt base",
            Image::good().without(T::VirtBase).build(),
            E::PaddrOffsetWithoutVirtBase,
        ),
        (
            "entry past the end",
            Image::good()
                .note(T::Entry, u64d(VIRT_BASE + 0x11_0000))
                .build(),
            E::EntryOutOfBounds,
        ),
        (
            "entry before the start",
            Image::good().note(T::Entry, u64d(VIRT_BASE)).build(),
            E::EntryOutOfBounds,
        ),
        (
            "hypercall page unaligned",
            Image::good()
                .note(T::HypercallPage, u64d(VIRT_BASE + 0x10_1800))
                .build(),
            E::BadHypercallPage,
        ),
        (
            "hypercall page outside",
            Image::good()
                .note(T::HypercallPage, u64d(VIRT_BASE + 0x11_0000))
                .build(),
            E::BadHypercallPage,
        ),
        (
            "virt base above kernel",
            Image::good()
                .note(T::VirtBase, u64d(VIRT_BASE + 0x20_0000))
                .note(T::PaddrOffset, u64d(0x20_0000))
                .build(),
            E::VirtBaseAboveKernel,
        ),
        (
            "p2m inside kernel",
            Image::good()
                .note(T::InitP2m, u64d(VIRT_BASE + 0x10_4000))
                .build(),
            E::P2mInsideKernel,
        ),
        (
            "kernel in the hypervisor's range",
            Image::good()
                .note(T::VirtBase, u64d(0xffff_8000_0000_0000))
                .note(T::Entry, u64d(0xffff_8000_0010_0000))
                .without(T::HypercallPage)
                .build(),
            E::OverlapsHypervisor,
        ),
        (
            "non-canonical kernel",
            Image::good()
                .note(T::VirtBase, u64d(0x0000_8000_0000_0000))
                .note(T::Entry, u64d(0x0000_8000_0010_0000))
                .without(T::HypercallPage)
                .build(),
            E::BadAddressRange,
        ),
        (
            "kernel wraps around",
            Image::good()
                .note(T::VirtBase, u64d(0xffff_ffff_ffff_0000))
                .note(T::PaddrOffset, u64d(0x10_0000))
                .without(T::HypercallPage)
                .build(),
            E::BadAddressRange,
        ),
    ];
    let mut truncated_note = Image::good().build();
    let notes_at = 64 + 2 * 56;
    truncated_note[notes_at + 4] = 0xff; // descsz of the first note runs past the table
    cases.push((
        "note runs past its segment",
        truncated_note,
        E::BadNoteTable,
    ));

    for (name, bytes, expected) in cases {
        assert_eq!(KernelImage::parse(&bytes).err(), Some(expected), "{name}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = KernelImage::parse(&bytes);
    }

    #[test]
    fn mutated_images_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = Image::good().build();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let len = bytes.len();
        if let Ok(k) = KernelImage::parse(&bytes[..cut.index(len + 1).max(len / 2)]) {
            prop_assert!(k.virt_kstart < k.virt_kend);
            prop_assert!(k.entry >= k.virt_kstart && k.entry < k.virt_kend);
            for seg in k.segments() {
                prop_assert!(seg.data.len() as u64 <= seg.mem_size);
            }
        }
    }

    #[test]
    fn random_notes_never_panic(
        notes in proptest::collection::vec((0u32..20, proptest::collection::vec(any::<u8>(), 0..12)), 0..12),
    ) {
        let mut img = Image::good();
        img.notes.extend(notes);
        let _ = KernelImage::parse(&img.build());
    }
}
