//! A tiny ELF64 writer for tests: builds kernel images with chosen segments and notes, so
//! the tests can make each thing the loader checks go wrong on its own.

#![allow(dead_code)]

use guest_abi::elfnote::ElfNoteType;

pub const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;

/// One `PT_LOAD` segment.
#[derive(Clone, Copy, Debug)]
pub struct Seg {
    pub paddr: u64,
    pub filesz: u64,
    pub memsz: u64,
}

/// An image description; `build` turns it into bytes.
#[derive(Clone, Debug)]
pub struct Image {
    pub class: u8,
    pub data: u8,
    pub machine: u16,
    pub e_type: u16,
    pub phentsize: u16,
    pub entry: u64,
    pub segs: Vec<Seg>,
    /// (type, desc) of each note named "Xen".
    pub notes: Vec<(u32, Vec<u8>)>,
}

pub fn str_desc(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

impl Image {
    /// A valid kernel: one 64 KiB text segment at physical 1 MiB, linked with
    /// `VIRT_BASE`/`PADDR_OFFSET` = (VIRT_BASE, 0), entry at its start, hypercall page
    /// at +4 KiB.
    pub fn good() -> Self {
        Self {
            class: 2,
            data: 1,
            machine: 62,
            e_type: 2,
            phentsize: 56,
            entry: 0,
            segs: vec![Seg {
                paddr: 0x10_0000,
                filesz: 0x8000,
                memsz: 0x1_0000,
            }],
            notes: vec![
                (ElfNoteType::GuestOs as u32, str_desc("test")),
                (ElfNoteType::XenVersion as u32, str_desc("xen-3.0")),
                (ElfNoteType::Loader as u32, str_desc("generic")),
                (
                    ElfNoteType::VirtBase as u32,
                    VIRT_BASE.to_le_bytes().to_vec(),
                ),
                (ElfNoteType::PaddrOffset as u32, 0u64.to_le_bytes().to_vec()),
                (
                    ElfNoteType::Entry as u32,
                    (VIRT_BASE + 0x10_0000).to_le_bytes().to_vec(),
                ),
                (
                    ElfNoteType::HypercallPage as u32,
                    (VIRT_BASE + 0x10_1000).to_le_bytes().to_vec(),
                ),
                (
                    ElfNoteType::Features as u32,
                    str_desc("!writable_page_tables|dom0"),
                ),
            ],
        }
    }

    /// The good image moved to `VIRT_BASE` = `base` (entry and hypercall page follow).
    pub fn at(self, base: u64) -> Self {
        self.note(ElfNoteType::VirtBase, base.to_le_bytes().to_vec())
            .note(
                ElfNoteType::Entry,
                (base + 0x10_0000).to_le_bytes().to_vec(),
            )
            .note(
                ElfNoteType::HypercallPage,
                (base + 0x10_1000).to_le_bytes().to_vec(),
            )
    }

    pub fn note(mut self, ty: ElfNoteType, desc: Vec<u8>) -> Self {
        self.notes.retain(|(t, _)| *t != ty as u32);
        self.notes.push((ty as u32, desc));
        self
    }

    pub fn add_note(mut self, ty: ElfNoteType, desc: Vec<u8>) -> Self {
        self.notes.push((ty as u32, desc));
        self
    }

    pub fn without(mut self, ty: ElfNoteType) -> Self {
        self.notes.retain(|(t, _)| *t != ty as u32);
        self
    }

    pub fn build(&self) -> Vec<u8> {
        let nphdr = self.segs.len() + 1;
        let phoff = 64u64;
        let notes_off = phoff + 56 * nphdr as u64;
        let mut notes = Vec::new();
        for (ty, desc) in &self.notes {
            notes.extend_from_slice(&4u32.to_le_bytes());
            notes.extend_from_slice(&(desc.len() as u32).to_le_bytes());
            notes.extend_from_slice(&ty.to_le_bytes());
            notes.extend_from_slice(b"Xen\0");
            notes.extend_from_slice(desc);
            notes.resize(notes.len().next_multiple_of(4), 0);
        }
        let mut data_off = (notes_off + notes.len() as u64).next_multiple_of(16);
        let mut out = vec![0u8; 64];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = self.class;
        out[5] = self.data;
        out[6] = 1;
        out[16..18].copy_from_slice(&self.e_type.to_le_bytes());
        out[18..20].copy_from_slice(&self.machine.to_le_bytes());
        out[20..24].copy_from_slice(&1u32.to_le_bytes());
        out[24..32].copy_from_slice(&self.entry.to_le_bytes());
        out[32..40].copy_from_slice(&phoff.to_le_bytes());
        out[52..54].copy_from_slice(&64u16.to_le_bytes());
        out[54..56].copy_from_slice(&self.phentsize.to_le_bytes());
        out[56..58].copy_from_slice(&(nphdr as u16).to_le_bytes());
        let mut payload = Vec::new();
        for seg in &self.segs {
            out.extend_from_slice(&phdr(1, data_off, seg.paddr, seg.filesz, seg.memsz));
            payload.push((data_off, seg.filesz));
            data_off += seg.filesz;
        }
        out.extend_from_slice(&phdr(
            4,
            notes_off,
            0,
            notes.len() as u64,
            notes.len() as u64,
        ));
        out.extend_from_slice(&notes);
        for (off, len) in payload {
            out.resize(off as usize, 0);
            out.extend((0..len).map(|i| i as u8 | 1));
        }
        out
    }
}

fn phdr(p_type: u32, offset: u64, paddr: u64, filesz: u64, memsz: u64) -> [u8; 56] {
    let mut p = [0u8; 56];
    p[0..4].copy_from_slice(&p_type.to_le_bytes());
    p[4..8].copy_from_slice(&5u32.to_le_bytes());
    p[8..16].copy_from_slice(&offset.to_le_bytes());
    p[16..24].copy_from_slice(&paddr.to_le_bytes());
    p[24..32].copy_from_slice(&paddr.to_le_bytes());
    p[32..40].copy_from_slice(&filesz.to_le_bytes());
    p[40..48].copy_from_slice(&memsz.to_le_bytes());
    p[48..56].copy_from_slice(&8u64.to_le_bytes());
    p
}
