//! Reading a PV kernel image: the ELF64 headers, its loadable segments and its Xen notes.
//!
//! [`KernelImage::parse`] checks everything the domain builder relies on, once, and
//! returns a typed [`ImageError`] for any input it cannot accept; it never panics and never
//! allocates. It follows Xen's own loader (`libelf`): notes come from `PT_NOTE` segments,
//! or from `SHT_NOTE` sections when no segment holds a Xen note; the kernel occupies
//! `[p_paddr - PADDR_OFFSET + VIRT_BASE, ...)`; the loader must be `"generic"` (or the
//! guest `"linux"`) and the Xen version `"xen-3.0"`. Unlike libelf it rejects a note given
//! twice with different values, malformed notes and overlapping segments.

use core::fmt;

use crate::arch::{HYPERVISOR_VIRT_END, HYPERVISOR_VIRT_START};
use crate::elfnote::ElfNoteType;
use crate::features::XenFeature;
use crate::types::{PAGE_SIZE, VirtAddr};

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const SHDR_SIZE: usize = 64;
const EM_X86_64: u16 = 62;
const ET_EXEC: u16 = 2;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const SHT_NOTE: u32 = 7;
/// More loadable segments than this is refused (real kernels have a handful).
pub const MAX_LOAD_SEGMENTS: usize = 64;

/// Why a kernel image was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// The file ends before a header or table it declares.
    Truncated,
    /// No ELF magic.
    NotElf,
    /// Not a 64-bit ELF.
    WrongClass,
    /// Not little-endian.
    WrongEndianness,
    /// Not x86-64.
    WrongMachine,
    /// Not an executable (`ET_EXEC`).
    WrongType,
    /// The program or section header entry size is not the ELF64 one.
    BadHeaderSize,
    /// A segment's file bytes lie outside the file, `p_filesz > p_memsz`, or there are
    /// more than [`MAX_LOAD_SEGMENTS`] loadable segments.
    BadSegment,
    /// No loadable segment with a non-zero size.
    NoLoadableSegments,
    /// Two loadable segments overlap.
    SegmentsOverlap,
    /// A note header or its name/desc runs past its segment or section.
    BadNoteTable,
    /// No Xen note at all: not a Xen PV kernel.
    NoXenNotes,
    /// A note's desc has the wrong size or is not a terminated string.
    BadNote(ElfNoteType),
    /// The same note twice with different values.
    ConflictingNote(ElfNoteType),
    /// A note the loader needs is absent (`XEN_VERSION`, or both `LOADER` and `GUEST_OS`).
    MissingNote(ElfNoteType),
    /// `LOADER` is not `"generic"` and `GUEST_OS` is not `"linux"`.
    UnsupportedLoader,
    /// `XEN_VERSION` is not `"xen-3.0"`.
    UnsupportedXenVersion,
    /// `FEATURES` requires (with `!`) a feature this loader does not know.
    UnknownRequiredFeature,
    /// `PADDR_OFFSET` without `VIRT_BASE`.
    PaddrOffsetWithoutVirtBase,
    /// The kernel's virtual range wraps around or is not canonical.
    BadAddressRange,
    /// `VIRT_BASE` lies above the kernel's start.
    VirtBaseAboveKernel,
    /// The entry point is outside the kernel.
    EntryOutOfBounds,
    /// The hypercall page is unaligned or outside the kernel.
    BadHypercallPage,
    /// `INIT_P2M` points into the kernel.
    P2mInsideKernel,
    /// The kernel overlaps the hypervisor's reserved virtual range.
    OverlapsHypervisor,
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadNote(t) => write!(f, "malformed ELF note {}", t.c_name()),
            Self::ConflictingNote(t) => write!(
                f,
                "ELF note {} given twice with different values",
                t.c_name()
            ),
            Self::MissingNote(t) => write!(f, "missing ELF note {}", t.c_name()),
            other => write!(f, "bad kernel image: {other:?}"),
        }
    }
}

impl core::error::Error for ImageError {}

fn bytes_at(b: &[u8], off: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(off).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    b.get(start..end)
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// A program header, as far as the loader cares.
#[derive(Clone, Copy, Debug)]
struct Phdr {
    p_type: u32,
    offset: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
}

impl Phdr {
    fn read(table: &[u8], index: usize) -> Option<Self> {
        let e = table.get(index * PHDR_SIZE..(index + 1) * PHDR_SIZE)?;
        Some(Self {
            p_type: u32_at(e, 0)?,
            offset: u64_at(e, 8)?,
            paddr: u64_at(e, 24)?,
            filesz: u64_at(e, 32)?,
            memsz: u64_at(e, 40)?,
        })
    }
}

/// One loadable segment: copy `data` to `dest` and zero the rest up to `mem_size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadSegment<'a> {
    /// Guest virtual address of the segment's first byte.
    pub dest: VirtAddr,
    /// The bytes from the file.
    pub data: &'a [u8],
    /// Size in memory (`data.len()` or more; the tail is zero).
    pub mem_size: u64,
}

/// What the kernel supports and requires of the hypervisor, as `XENFEAT_*` bit sets
/// (submap 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeatureSet {
    /// Features the kernel can use.
    pub supported: u32,
    /// Features the kernel cannot run without.
    pub required: u32,
}

impl FeatureSet {
    /// Whether the kernel supports `f`.
    pub const fn supports(&self, f: XenFeature) -> bool {
        self.supported & f.bit() != 0
    }

    /// Whether the kernel requires `f`.
    pub const fn requires(&self, f: XenFeature) -> bool {
        self.required & f.bit() != 0
    }
}

/// The Xen notes of a kernel, raw: strings without their NUL, numbers as given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XenNotes<'a> {
    /// `GUEST_OS`.
    pub guest_os: Option<&'a [u8]>,
    /// `GUEST_VERSION`.
    pub guest_version: Option<&'a [u8]>,
    /// `XEN_VERSION`.
    pub xen_version: Option<&'a [u8]>,
    /// `LOADER`.
    pub loader: Option<&'a [u8]>,
    /// `FEATURES`.
    pub features: Option<&'a [u8]>,
    /// `PAE_MODE`.
    pub pae_mode: Option<&'a [u8]>,
    /// `BSD_SYMTAB`.
    pub bsd_symtab: Option<&'a [u8]>,
    /// `ENTRY`.
    pub entry: Option<u64>,
    /// `HYPERCALL_PAGE`.
    pub hypercall_page: Option<u64>,
    /// `VIRT_BASE`.
    pub virt_base: Option<u64>,
    /// `PADDR_OFFSET`.
    pub paddr_offset: Option<u64>,
    /// `HV_START_LOW`.
    pub hv_start_low: Option<u64>,
    /// `L1_MFN_VALID` (first word).
    pub l1_mfn_valid: Option<u64>,
    /// `SUSPEND_CANCEL`.
    pub suspend_cancel: Option<u64>,
    /// `INIT_P2M`.
    pub init_p2m: Option<u64>,
    /// `MOD_START_PFN`.
    pub mod_start_pfn: Option<u64>,
    /// `SUPPORTED_FEATURES`.
    pub supported_features: Option<u64>,
    /// `PHYS32_ENTRY`.
    pub phys32_entry: Option<u64>,
    /// How many Xen notes were read.
    pub count: usize,
}

/// A string note: up to its first NUL, or the whole description when it has none (Linux's
/// `FEATURES` note leaves the NUL to the note's zero padding, which Xen's loader reads).
fn note_string(_ty: ElfNoteType, desc: &[u8]) -> Result<&[u8], ImageError> {
    let end = desc.iter().position(|&b| b == 0).unwrap_or(desc.len());
    Ok(&desc[..end])
}

fn note_number(ty: ElfNoteType, desc: &[u8]) -> Result<u64, ImageError> {
    match desc.len() {
        1 => Ok(u64::from(desc[0])),
        2 => Ok(u64::from(u16::from_le_bytes([desc[0], desc[1]]))),
        4 => u32_at(desc, 0)
            .map(u64::from)
            .ok_or(ImageError::BadNote(ty)),
        8 => u64_at(desc, 0).ok_or(ImageError::BadNote(ty)),
        _ => Err(ImageError::BadNote(ty)),
    }
}

fn set_once<T: PartialEq + Copy>(
    slot: &mut Option<T>,
    value: T,
    ty: ElfNoteType,
) -> Result<(), ImageError> {
    match *slot {
        Some(old) if old != value => Err(ImageError::ConflictingNote(ty)),
        _ => {
            *slot = Some(value);
            Ok(())
        }
    }
}

impl<'a> XenNotes<'a> {
    /// Records one Xen note.
    fn add(&mut self, ty: u32, desc: &'a [u8]) -> Result<(), ImageError> {
        self.count += 1;
        let Some(ty) = ElfNoteType::from_raw(ty) else {
            return Ok(()); // Xen ignores unknown note types too.
        };
        use ElfNoteType as T;
        let string_slot = match ty {
            T::GuestOs => Some(&mut self.guest_os),
            T::GuestVersion => Some(&mut self.guest_version),
            T::XenVersion => Some(&mut self.xen_version),
            T::Loader => Some(&mut self.loader),
            T::Features => Some(&mut self.features),
            T::PaeMode => Some(&mut self.pae_mode),
            T::BsdSymtab => Some(&mut self.bsd_symtab),
            _ => None,
        };
        if let Some(slot) = string_slot {
            return set_once(slot, note_string(ty, desc)?, ty);
        }
        let number_slot = match ty {
            T::Entry => &mut self.entry,
            T::HypercallPage => &mut self.hypercall_page,
            T::VirtBase => &mut self.virt_base,
            T::PaddrOffset => &mut self.paddr_offset,
            T::HvStartLow => &mut self.hv_start_low,
            T::SuspendCancel => &mut self.suspend_cancel,
            T::InitP2m => &mut self.init_p2m,
            T::ModStartPfn => &mut self.mod_start_pfn,
            T::SupportedFeatures => &mut self.supported_features,
            T::Phys32Entry => &mut self.phys32_entry,
            T::L1MfnValid => {
                // A list of (mask, value) words; only its first word is recorded.
                let first = desc.get(..8).ok_or(ImageError::BadNote(ty))?;
                return set_once(&mut self.l1_mfn_valid, note_number(ty, first)?, ty);
            }
            _ => return Ok(()), // INFO, crash and dump-core notes do not affect loading.
        };
        set_once(number_slot, note_number(ty, desc)?, ty)
    }

    /// The feature sets of `FEATURES` and `SUPPORTED_FEATURES`, as Xen's loader reads them.
    pub fn feature_set(&self) -> Result<FeatureSet, ImageError> {
        let mut set = FeatureSet {
            supported: self.supported_features.unwrap_or(0) as u32,
            required: 0,
        };
        for name in self.features.unwrap_or(&[]).split(|&b| b == b'|') {
            let (required, name) = match name.split_first() {
                Some((b'!', rest)) => (true, rest),
                _ => (false, name),
            };
            match XenFeature::from_note_name(name) {
                Some(f) => {
                    set.supported |= f.bit();
                    if required {
                        set.required |= f.bit();
                    }
                }
                None if required => return Err(ImageError::UnknownRequiredFeature),
                None => {}
            }
        }
        Ok(set)
    }

    /// Reads the notes of one note segment or section, keeping those named `"Xen"`.
    fn read_table(&mut self, table: &'a [u8]) -> Result<(), ImageError> {
        let mut rest = table;
        while !rest.is_empty() {
            let namesz = u32_at(rest, 0).ok_or(ImageError::BadNoteTable)? as usize;
            let descsz = u32_at(rest, 4).ok_or(ImageError::BadNoteTable)? as usize;
            let ty = u32_at(rest, 8).ok_or(ImageError::BadNoteTable)?;
            let name_end = 12usize
                .checked_add(namesz)
                .ok_or(ImageError::BadNoteTable)?;
            let desc_start = name_end.next_multiple_of(4);
            let desc_end = desc_start
                .checked_add(descsz)
                .ok_or(ImageError::BadNoteTable)?;
            let name = rest.get(12..name_end).ok_or(ImageError::BadNoteTable)?;
            let desc = rest
                .get(desc_start..desc_end)
                .ok_or(ImageError::BadNoteTable)?;
            if name == b"Xen\0" || name == b"Xen" {
                self.add(ty, desc)?;
            }
            rest = rest.get(desc_end.next_multiple_of(4)..).unwrap_or(&[]);
        }
        Ok(())
    }
}

/// A parsed and checked PV kernel image.
#[derive(Clone, Copy, Debug)]
pub struct KernelImage<'a> {
    bytes: &'a [u8],
    phdrs: &'a [u8],
    /// The Xen notes as found.
    pub notes: XenNotes<'a>,
    /// Features the kernel supports and requires.
    pub features: FeatureSet,
    /// `VIRT_BASE`, or 0: the virtual address of pseudo-physical address 0.
    pub virt_base: u64,
    /// `VIRT_BASE - PADDR_OFFSET`: added to `p_paddr` to get a segment's virtual address.
    pub virt_offset: u64,
    /// First virtual address of the kernel.
    pub virt_kstart: u64,
    /// End (exclusive) of the kernel's virtual range.
    pub virt_kend: u64,
    /// Entry point (`ENTRY`, or `e_entry`).
    pub entry: u64,
    /// The hypercall page, if the kernel wants one.
    pub hypercall_page: Option<u64>,
}

fn check_header(b: &[u8]) -> Result<(), ImageError> {
    let ident = b.get(..16).ok_or(ImageError::Truncated)?;
    if ident[..4] != *b"\x7fELF" {
        return Err(ImageError::NotElf);
    }
    if ident[4] != 2 {
        return Err(ImageError::WrongClass);
    }
    if ident[5] != 1 {
        return Err(ImageError::WrongEndianness);
    }
    if b.len() < EHDR_SIZE {
        return Err(ImageError::Truncated);
    }
    if u16_at(b, 18) != Some(EM_X86_64) {
        return Err(ImageError::WrongMachine);
    }
    if u16_at(b, 16) != Some(ET_EXEC) {
        return Err(ImageError::WrongType);
    }
    Ok(())
}

/// The `(offset, count)` table of entries of `entsize` bytes at header fields `at`.
fn table(
    b: &[u8],
    off_at: usize,
    entsize_at: usize,
    count_at: usize,
    entsize: usize,
) -> Result<&[u8], ImageError> {
    let off = u64_at(b, off_at).ok_or(ImageError::Truncated)?;
    let count = u64::from(u16_at(b, count_at).ok_or(ImageError::Truncated)?);
    if count == 0 {
        return Ok(&[]);
    }
    if usize::from(u16_at(b, entsize_at).ok_or(ImageError::Truncated)?) != entsize {
        return Err(ImageError::BadHeaderSize);
    }
    bytes_at(b, off, count * entsize as u64).ok_or(ImageError::Truncated)
}

fn canonical_range(start: u64, end: u64) -> bool {
    start < end
        && VirtAddr(start).is_canonical()
        && VirtAddr(end - 1).is_canonical()
        && (start >> 63) == ((end - 1) >> 63)
}

impl<'a> KernelImage<'a> {
    /// Parses and checks a kernel image.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ImageError> {
        check_header(bytes)?;
        let phdrs = table(bytes, 32, 54, 56, PHDR_SIZE)?;
        let (pstart, pend) = Self::check_segments(bytes, phdrs)?;
        let notes = Self::read_notes(bytes, phdrs)?;
        Self::check_loader(&notes)?;
        let features = notes.feature_set()?;

        if notes.paddr_offset.is_some() && notes.virt_base.is_none() {
            return Err(ImageError::PaddrOffsetWithoutVirtBase);
        }
        let virt_base = notes.virt_base.unwrap_or(0);
        let virt_offset = virt_base.wrapping_sub(notes.paddr_offset.unwrap_or(0));
        let virt_kstart = pstart.wrapping_add(virt_offset);
        let virt_kend = pend.wrapping_add(virt_offset);
        if virt_kend <= virt_kstart || !canonical_range(virt_kstart, virt_kend) {
            return Err(ImageError::BadAddressRange);
        }
        if virt_base > virt_kstart {
            return Err(ImageError::VirtBaseAboveKernel);
        }
        if virt_kstart < HYPERVISOR_VIRT_END && virt_kend > HYPERVISOR_VIRT_START {
            return Err(ImageError::OverlapsHypervisor);
        }
        let entry = notes
            .entry
            .unwrap_or(u64_at(bytes, 24).ok_or(ImageError::Truncated)?);
        if !(virt_kstart..virt_kend).contains(&entry) {
            return Err(ImageError::EntryOutOfBounds);
        }
        if let Some(hp) = notes.hypercall_page {
            let fits = hp >= virt_kstart
                && hp
                    .checked_add(PAGE_SIZE)
                    .is_some_and(|end| end <= virt_kend);
            if hp % PAGE_SIZE != 0 || !fits {
                return Err(ImageError::BadHypercallPage);
            }
        }
        if notes
            .init_p2m
            .is_some_and(|p| (virt_kstart..virt_kend).contains(&p))
        {
            return Err(ImageError::P2mInsideKernel);
        }
        Ok(Self {
            bytes,
            phdrs,
            notes,
            features,
            virt_base,
            virt_offset,
            virt_kstart,
            virt_kend,
            entry,
            hypercall_page: notes.hypercall_page,
        })
    }

    fn load_phdrs(phdrs: &[u8]) -> impl Iterator<Item = Phdr> + '_ {
        (0..phdrs.len() / PHDR_SIZE)
            .filter_map(|i| Phdr::read(phdrs, i))
            .filter(|p| p.p_type == PT_LOAD && p.memsz > 0)
    }

    /// Checks the loadable segments; returns their physical extent `[pstart, pend)`.
    fn check_segments(bytes: &[u8], phdrs: &[u8]) -> Result<(u64, u64), ImageError> {
        let mut extent: Option<(u64, u64)> = None;
        if Self::load_phdrs(phdrs).count() > MAX_LOAD_SEGMENTS {
            return Err(ImageError::BadSegment);
        }
        for (i, p) in Self::load_phdrs(phdrs).enumerate() {
            if p.filesz > p.memsz || bytes_at(bytes, p.offset, p.filesz).is_none() {
                return Err(ImageError::BadSegment);
            }
            let end = p
                .paddr
                .checked_add(p.memsz)
                .ok_or(ImageError::BadAddressRange)?;
            for q in Self::load_phdrs(phdrs).take(i) {
                if p.paddr < q.paddr + q.memsz && q.paddr < end {
                    return Err(ImageError::SegmentsOverlap);
                }
            }
            extent = Some(match extent {
                None => (p.paddr, end),
                Some((lo, hi)) => (lo.min(p.paddr), hi.max(end)),
            });
        }
        extent.ok_or(ImageError::NoLoadableSegments)
    }

    fn read_notes(bytes: &'a [u8], phdrs: &'a [u8]) -> Result<XenNotes<'a>, ImageError> {
        let mut notes = XenNotes::default();
        for p in (0..phdrs.len() / PHDR_SIZE).filter_map(|i| Phdr::read(phdrs, i)) {
            // Like libelf, skip note segments with offset 0 (old binutils got them wrong).
            if p.p_type == PT_NOTE && p.offset != 0 {
                notes.read_table(
                    bytes_at(bytes, p.offset, p.filesz).ok_or(ImageError::BadNoteTable)?,
                )?;
            }
        }
        if notes.count == 0 {
            let shdrs = table(bytes, 40, 58, 60, SHDR_SIZE)?;
            for e in shdrs.chunks_exact(SHDR_SIZE).skip(1) {
                if u32_at(e, 4) == Some(SHT_NOTE) {
                    let (off, size) = (u64_at(e, 24).unwrap_or(0), u64_at(e, 32).unwrap_or(0));
                    notes
                        .read_table(bytes_at(bytes, off, size).ok_or(ImageError::BadNoteTable)?)?;
                }
            }
        }
        if notes.count == 0 {
            return Err(ImageError::NoXenNotes);
        }
        Ok(notes)
    }

    fn check_loader(notes: &XenNotes<'_>) -> Result<(), ImageError> {
        if notes.loader.is_none() && notes.guest_os.is_none() {
            return Err(ImageError::MissingNote(ElfNoteType::Loader));
        }
        let generic = notes.loader.is_some_and(|l| l.starts_with(b"generic"));
        let linux = notes.guest_os.is_some_and(|os| os.starts_with(b"linux"));
        if !generic && !linux {
            return Err(ImageError::UnsupportedLoader);
        }
        match notes.xen_version {
            None => Err(ImageError::MissingNote(ElfNoteType::XenVersion)),
            Some(v) if !v.starts_with(b"xen-3.0") => Err(ImageError::UnsupportedXenVersion),
            Some(_) => Ok(()),
        }
    }

    /// The loadable segments, at their guest virtual addresses.
    pub fn segments(&self) -> impl Iterator<Item = LoadSegment<'a>> + 'a {
        let (bytes, offset) = (self.bytes, self.virt_offset);
        Self::load_phdrs(self.phdrs).filter_map(move |p| {
            Some(LoadSegment {
                dest: VirtAddr(p.paddr.wrapping_add(offset)),
                data: bytes_at(bytes, p.offset, p.filesz)?,
                mem_size: p.memsz,
            })
        })
    }
}
