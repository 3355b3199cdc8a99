//! Where a grant entry's words are, in either version of the table, and how its in-use bits
//! are set and cleared.
//!
//! - **Version 1**: 8-byte entries, 512 per frame: the flags and domain id in the first word,
//!   the frame in the second; `GTF_reading`/`GTF_writing` are flags of the entry itself, set
//!   with a bounded compare-and-swap because the granting domain writes the same word.
//! - **Version 2**: 16-byte entries, 256 per frame: the header (flags, domain id), for a
//!   sub-page grant the offset and length, then a 64-bit frame; the in-use bits live apart, in
//!   the table's status frames (a 16-bit word per entry, written only by the hypervisor and
//!   mapped read-only by the guest), so setting them needs no retry: the header is checked,
//!   the bits set, and the header checked again (a grant withdrawn meanwhile is refused).
//!   Transitive grants are not followed (`general_error`).

use super::grant::GrantFrames;
use core::sync::atomic::{AtomicU32, Ordering};
use guest_abi::grant_table::{GntStatus, GtfFlags};
use guest_abi::{DomId, PAGE_SIZE};

/// How many times a v1 entry's flags are retried when the guest keeps changing them.
const CMPXCHG_RETRIES: u32 = 5;

/// Where an entry's in-use bits are.
#[derive(Clone, Copy)]
enum InUse {
    /// In the entry's own flags (version 1).
    Flags,
    /// In the 16-bit status word at `shift` of this word (version 2).
    Status(&'static AtomicU32, u32),
}

/// A grant entry, located.
#[derive(Clone, Copy)]
pub struct Entry {
    /// Flags (low half) and domain id (high half).
    header: &'static AtomicU32,
    /// The frame's low and (version 2) high word.
    frame: (&'static AtomicU32, Option<&'static AtomicU32>),
    /// Version 2: page offset (low half) and length (high half) of a sub-page grant.
    sub_page: Option<&'static AtomicU32>,
    in_use: InUse,
}

/// Entries per grant-table frame in `version`.
pub const fn per_frame(version: u32) -> u32 {
    if version == 2 {
        PAGE_SIZE as u32 / 16
    } else {
        PAGE_SIZE as u32 / 8
    }
}

/// Status frames a version-2 table of `frames` frames needs (a 16-bit word per entry).
pub const fn status_frames_for(frames: usize) -> usize {
    (frames * per_frame(2) as usize * 2).div_ceil(PAGE_SIZE as usize)
}

/// Where entry `gref` of a table is: its frame and offset, and in version 2 its status
/// word's frame and offset. Plain numbers, so that the table need not stay borrowed while the
/// words are viewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    v2: bool,
    table: (u64, usize),
    status: Option<(u64, usize)>,
}

/// Finds entry `gref` of the table `frames` (`bad_gntref` beyond it).
pub fn place(frames: &GrantFrames, gref: u32) -> Result<Place, GntStatus> {
    let v2 = frames.version() == 2;
    let per = per_frame(frames.version());
    let table = frames
        .frames()
        .get((gref / per) as usize)
        .copied()
        .ok_or(GntStatus::BadGntref)?;
    let at = (gref % per) as usize * if v2 { 16 } else { 8 };
    let status = if v2 {
        let status_at = gref as usize * 2;
        let frame = frames
            .status_frames()
            .get(status_at / PAGE_SIZE as usize)
            .copied()
            .ok_or(GntStatus::GeneralError)?;
        Some((frame, status_at % PAGE_SIZE as usize))
    } else {
        None
    };
    Ok(Place {
        v2,
        table: (table, at),
        status,
    })
}

/// Locates entry `gref` of the table `frames`; `word` views the 32-bit word at a byte offset
/// of a table or status frame.
pub fn locate(
    frames: &GrantFrames,
    gref: u32,
    word: impl FnMut(u64, usize) -> Option<&'static AtomicU32>,
) -> Result<Entry, GntStatus> {
    view(place(frames, gref)?, word)
}

/// The words of the entry at `p`.
pub fn view(
    p: Place,
    mut word: impl FnMut(u64, usize) -> Option<&'static AtomicU32>,
) -> Result<Entry, GntStatus> {
    let mut w = |frame, offset| word(frame, offset).ok_or(GntStatus::GeneralError);
    let (table, at) = p.table;
    let header = w(table, at)?;
    match p.status {
        Some((status_frame, offset)) if p.v2 => Ok(Entry {
            header,
            frame: (w(table, at + 8)?, Some(w(table, at + 12)?)),
            sub_page: Some(w(table, at + 4)?),
            in_use: InUse::Status(w(status_frame, offset & !3)?, (offset as u32 & 2) * 8),
        }),
        _ => Ok(Entry {
            header,
            frame: (w(table, at + 4)?, None),
            sub_page: None,
            in_use: InUse::Flags,
        }),
    }
}

impl Entry {
    /// The frame granted.
    pub fn frame(&self) -> u64 {
        let lo = u64::from(self.frame.0.load(Ordering::SeqCst));
        let hi = self
            .frame
            .1
            .map_or(0, |h| u64::from(h.load(Ordering::SeqCst)));
        lo | hi << 32
    }

    /// For a version-2 sub-page grant, the bytes granted: `(offset, length)`.
    pub fn sub_page(&self) -> Option<(u16, u16)> {
        let flags = GtfFlags::from_bits_retain(self.header.load(Ordering::SeqCst) as u16);
        if !flags.contains(GtfFlags::SUB_PAGE) {
            return None;
        }
        let w = self.sub_page?.load(Ordering::SeqCst);
        Some((w as u16, (w >> 16) as u16))
    }

    /// Whether the header grants `caller` access (`writable` too; `mapping` refuses sub-page
    /// grants; transitive grants are never followed).
    fn grants(&self, header: u32, caller: DomId, writable: bool, mapping: bool) -> bool {
        let flags = GtfFlags::from_bits_retain(header as u16);
        let mut mask = GtfFlags::TYPE_MASK;
        if mapping {
            mask |= GtfFlags::SUB_PAGE;
        }
        // Transitive grants (type 3) are not followed: only direct access grants pass.
        flags & mask == GtfFlags::PERMIT_ACCESS
            && header >> 16 == u32::from(caller.0)
            && !(writable && flags.contains(GtfFlags::READONLY))
    }

    /// Marks the entry in use by `caller` (`GTF_reading`, and `GTF_writing` for `writable`),
    /// checking that it grants that access: Xen's `_set_status`.
    pub fn set_status(
        &self,
        caller: DomId,
        writable: bool,
        mapping: bool,
    ) -> Result<(), GntStatus> {
        let mut set = GtfFlags::READING;
        if writable {
            set |= GtfFlags::WRITING;
        }
        match self.in_use {
            InUse::Flags => {
                let mut seen = self.header.load(Ordering::SeqCst);
                for _ in 0..CMPXCHG_RETRIES {
                    if !self.grants(seen, caller, writable, mapping) {
                        return Err(GntStatus::GeneralError);
                    }
                    let new = seen | u32::from(set.bits());
                    match self.header.compare_exchange(
                        seen,
                        new,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    ) {
                        Ok(_) => return Ok(()),
                        Err(now) => seen = now,
                    }
                }
                Err(GntStatus::GeneralError)
            }
            InUse::Status(word, shift) => {
                if !self.grants(
                    self.header.load(Ordering::SeqCst),
                    caller,
                    writable,
                    mapping,
                ) {
                    return Err(GntStatus::GeneralError);
                }
                let before = word.fetch_or(u32::from(set.bits()) << shift, Ordering::SeqCst);
                // Withdrawn meanwhile: undo what this call set, and refuse.
                if !self.grants(
                    self.header.load(Ordering::SeqCst),
                    caller,
                    writable,
                    mapping,
                ) {
                    let ours = (u32::from(set.bits()) << shift) & !before;
                    word.fetch_and(!ours, Ordering::SeqCst);
                    return Err(GntStatus::GeneralError);
                }
                Ok(())
            }
        }
    }

    /// Puts the in-use bits back to what `readers` and `writers` mappings of it need.
    pub fn settle_status(&self, readers: u32, writers: u32) {
        let mut clear = GtfFlags::empty();
        if readers + writers == 0 {
            clear |= GtfFlags::READING;
        }
        if writers == 0 {
            clear |= GtfFlags::WRITING;
        }
        let (word, shift) = match self.in_use {
            InUse::Flags => (self.header, 0),
            InUse::Status(w, shift) => (w, shift),
        };
        word.fetch_and(!(u32::from(clear.bits()) << shift), Ordering::SeqCst);
    }

    /// The entry's flags, without the in-use bits of a version-2 status word.
    pub fn flags(&self) -> u16 {
        self.header.load(Ordering::SeqCst) as u16
    }

    /// The domain granted access.
    pub fn domid(&self) -> u16 {
        (self.header.load(Ordering::SeqCst) >> 16) as u16
    }

    /// `GTF_reading`/`GTF_writing` as they stand (from the flags or the status word).
    pub fn in_use_bits(&self) -> u16 {
        let bits = (GtfFlags::READING | GtfFlags::WRITING).bits();
        match self.in_use {
            InUse::Flags => self.flags() & bits,
            InUse::Status(w, shift) => (w.load(Ordering::SeqCst) >> shift) as u16 & bits,
        }
    }

    /// Writes a whole entry (a reserved one carried across a version change): `flags` may
    /// hold in-use bits, which go where this version keeps them.
    pub fn restore(&self, flags: u16, domid: u16, frame: u64) {
        let bits = (GtfFlags::READING | GtfFlags::WRITING).bits();
        let header_flags = match self.in_use {
            InUse::Flags => flags,
            InUse::Status(w, shift) => {
                w.fetch_or(u32::from(flags & bits) << shift, Ordering::SeqCst);
                flags & !bits
            }
        };
        self.frame.0.store(frame as u32, Ordering::SeqCst);
        if let Some(hi) = self.frame.1 {
            hi.store((frame >> 32) as u32, Ordering::SeqCst);
        }
        self.header.store(
            u32::from(header_flags) | u32::from(domid) << 16,
            Ordering::SeqCst,
        );
    }
}
