//! The backend against a fake frontend: pages shared as atomics, grants in a map.

use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;

use guest_abi::DomId;
use guest_abi::io::blkif::*;
use guest_abi::io::ring::{
    REQ_PROD_OFFSET, RING_ENTRIES_OFFSET, RSP_EVENT_OFFSET, RSP_PROD_OFFSET,
};
use proptest::prelude::*;
use zerocopy::{FromBytes, IntoBytes};

use super::grants::{GrantCopy, GrantSegment};
use super::ring::BackRing;
use super::vbd::{REQUESTS_PER_WAKE, Vbd};
use crate::block_device::{BlockDevice, MemoryDisk};
use crate::shared_page::{AtomicRing, Page, SharedPage, zeroed_page};

type Shared = AtomicRing<Rc<Page>>;

const GUEST: DomId = DomId(3);

/// Granted pages by (domain, reference); whether the guest let dom0 write them.
#[derive(Default)]
struct FakeGrants {
    pages: BTreeMap<(u16, u32), (Vec<u8>, bool)>,
}

impl FakeGrants {
    fn segment<'a>(
        &'a mut self,
        dom: DomId,
        s: &GrantSegment,
        write: bool,
    ) -> Option<&'a mut [u8]> {
        let (page, writable) = self.pages.get_mut(&(dom.0, s.gref))?;
        if write && !*writable {
            return None;
        }
        page.get_mut(usize::from(s.offset)..usize::from(s.offset) + usize::from(s.len))
    }
}

impl GrantCopy for FakeGrants {
    fn copy_from_guest(&mut self, dom: DomId, segments: &[GrantSegment], buf: &mut [u8]) -> bool {
        let mut at = 0;
        for s in segments {
            let Some(src) = self.segment(dom, s, false) else {
                return false;
            };
            buf[at..at + src.len()].copy_from_slice(src);
            at += src.len();
        }
        true
    }

    fn copy_to_guest(&mut self, dom: DomId, segments: &[GrantSegment], buf: &[u8]) -> bool {
        let mut at = 0;
        for s in segments {
            let Some(dst) = self.segment(dom, s, true) else {
                return false;
            };
            let n = dst.len();
            dst.copy_from_slice(&buf[at..at + n]);
            at += n;
        }
        true
    }
}

struct Frontend {
    pages: Vec<Rc<Page>>,
    req_prod: u32,
}

impl Frontend {
    fn new(order: u32) -> (Self, BackRing<Shared>) {
        let pages: Vec<Rc<Page>> = (0..1 << order).map(|_| Rc::new(zeroed_page())).collect();
        let back = BackRing::new(pages.iter().map(|p| AtomicRing(p.clone())).collect());
        let front = Self { pages, req_prod: 0 };
        front.store(RSP_EVENT_OFFSET, 1);
        (front, back)
    }

    fn store(&self, offset: usize, value: u32) {
        AtomicRing(self.pages[offset / 4096].clone()).store_u32(offset % 4096, value);
    }

    fn load(&self, offset: usize) -> u32 {
        AtomicRing(self.pages[offset / 4096].clone()).load_u32(offset % 4096)
    }

    fn size(&self) -> u32 {
        guest_abi::io::ring::ring_size(self.pages.len() * 4096, BLKIF_ENTRY_SIZE)
    }

    fn push(&mut self, req: &BlkifRequest) {
        let base = RING_ENTRIES_OFFSET + (self.req_prod % self.size()) as usize * BLKIF_ENTRY_SIZE;
        for (i, w) in req.as_bytes().chunks_exact(4).enumerate() {
            self.store(base + i * 4, u32::from_le_bytes(w.try_into().unwrap()));
        }
        self.req_prod += 1;
        self.store(REQ_PROD_OFFSET, self.req_prod);
    }

    fn response(&self, index: u32) -> BlkifResponse {
        let base = RING_ENTRIES_OFFSET + (index % self.size()) as usize * BLKIF_ENTRY_SIZE;
        let mut bytes = [0u8; 16];
        for i in 0..4 {
            bytes[i * 4..i * 4 + 4].copy_from_slice(&self.load(base + i * 4).to_le_bytes());
        }
        BlkifResponse::read_from_bytes(&bytes).unwrap()
    }
}

fn request(op: u8, id: u64, sector: u64, segs: &[(u32, u8, u8)]) -> BlkifRequest {
    let mut req = BlkifRequest {
        operation: op,
        nr_segments: segs.len() as u8,
        handle: 0,
        _hole: [0; 4],
        id,
        sector_number: sector,
        seg: [BlkifRequestSegment::default(); BLKIF_MAX_SEGMENTS_PER_REQUEST],
    };
    for (s, &(gref, first, last)) in req.seg.iter_mut().zip(segs) {
        *s = BlkifRequestSegment {
            gref,
            first_sect: first,
            last_sect: last,
            _hole: [0; 2],
        };
    }
    req
}

fn setup(order: u32, writable: bool) -> (Frontend, Vbd<Shared>, MemoryDisk, FakeGrants) {
    let (front, back) = Frontend::new(order);
    let mut grants = FakeGrants::default();
    grants.pages.insert((GUEST.0, 1), (vec![0xaa; 4096], true));
    grants.pages.insert((GUEST.0, 2), (vec![0; 4096], true));
    grants.pages.insert((7, 5), (vec![0x55; 4096], true));
    (
        front,
        Vbd::new(GUEST, writable, back),
        MemoryDisk::new(64, false),
        grants,
    )
}

#[test]
fn write_then_read_round_trips_and_flush_reaches_the_disk() {
    let (mut front, mut vbd, mut disk, mut grants) = setup(0, true);
    front.push(&request(BLKIF_OP_WRITE, 10, 4, &[(1, 0, 7)]));
    front.push(&request(BLKIF_OP_FLUSH_DISKCACHE, 11, 0, &[]));
    front.push(&request(BLKIF_OP_READ, 12, 5, &[(2, 1, 2)]));
    let work = vbd.service(&mut disk, &mut grants);
    assert_eq!(work.answered, 3);
    assert!(work.notify && !work.more && !work.broken);
    assert_eq!(&disk.bytes()[4 * 512..12 * 512], &[0xaa; 8 * 512][..]);
    assert_eq!(disk.flushes, 1);
    assert_eq!(&grants.pages[&(GUEST.0, 2)].0[512..1536], &[0xaa; 1024][..]);
    assert_eq!(&grants.pages[&(GUEST.0, 2)].0[..512], &[0; 512][..]);
    for (i, id) in [10, 11, 12].into_iter().enumerate() {
        let r = front.response(i as u32);
        assert_eq!((r.id, r.status), (id, BLKIF_RSP_OKAY));
    }
    assert_eq!(front.load(RSP_PROD_OFFSET), 3);
}

#[test]
fn hostile_requests_get_errors_and_the_disk_is_untouched() {
    let (mut front, mut vbd, mut disk, mut grants) = setup(1, true);
    front.push(&request(BLKIF_OP_WRITE, 1, 0, &[(5, 0, 7)])); // another domain's grant
    front.push(&request(BLKIF_OP_WRITE, 2, 0, &[(99, 0, 7)])); // no such grant
    front.push(&request(BLKIF_OP_WRITE, 3, 60, &[(1, 0, 7)])); // past the end
    front.push(&request(BLKIF_OP_READ, 4, 0, &[(1, 7, 0)])); // segment backwards
    front.push(&request(BLKIF_OP_DISCARD, 5, 0, &[]));
    front.push(&request(BLKIF_OP_INDIRECT, 6, 0, &[]));
    front.push(&request(200, 7, 0, &[]));
    let work = vbd.service(&mut disk, &mut grants);
    assert_eq!(work.answered, 7);
    let statuses: Vec<i16> = (0..7).map(|i| front.response(i).status).collect();
    assert_eq!(statuses, [-1, -1, -1, -1, -2, -2, -2]);
    assert!(disk.bytes().iter().all(|&b| b == 0));
}

#[test]
fn a_read_only_attach_refuses_writes() {
    let (mut front, mut vbd, mut disk, mut grants) = setup(0, false);
    front.push(&request(BLKIF_OP_WRITE, 1, 0, &[(1, 0, 7)]));
    front.push(&request(BLKIF_OP_WRITE_BARRIER, 2, 0, &[(1, 0, 7)]));
    vbd.service(&mut disk, &mut grants);
    assert_eq!(front.response(0).status, BLKIF_RSP_ERROR);
    assert_eq!(front.response(1).status, BLKIF_RSP_ERROR);
    assert!(disk.bytes().iter().all(|&b| b == 0));
}

#[test]
fn work_per_wake_is_bounded_and_a_runaway_producer_breaks_the_device() {
    let (mut front, mut vbd, mut disk, mut grants) = setup(2, true);
    for i in 0..100 {
        front.push(&request(BLKIF_OP_READ, i, 0, &[(2, 0, 0)]));
    }
    let work = vbd.service(&mut disk, &mut grants);
    assert_eq!((work.answered, work.more), (REQUESTS_PER_WAKE, true));
    front.store(REQ_PROD_OFFSET, front.req_prod + 1000);
    let work = vbd.service(&mut disk, &mut grants);
    assert!(work.broken && vbd.is_broken());
    assert!(vbd.service(&mut disk, &mut grants).broken);
}

proptest! {
    /// Whatever the frontend puts in its ring pages and indexes, the backend neither panics
    /// nor does more than a wake-up's work, and a read-only device's data never change.
    #[test]
    fn any_ring_content_keeps_the_bounds(
        words in proptest::collection::vec(any::<u32>(), 1024),
        small in proptest::collection::vec(0u32..16, 64),
        req_prod in any::<u32>(),
        order in 0u32..2,
    ) {
        let (front, back) = Frontend::new(order);
        for (i, w) in words.iter().enumerate() {
            // Mix random words with small ones so operations and segments are often valid.
            let v = if i % 3 == 0 { small[i % small.len()] } else { *w };
            front.store(RING_ENTRIES_OFFSET + (i * 4) % (4096 - RING_ENTRIES_OFFSET), v);
        }
        front.store(REQ_PROD_OFFSET, req_prod % 64);
        let mut vbd = Vbd::new(GUEST, false, back);
        let mut disk = MemoryDisk::new(16, false);
        let mut grants = FakeGrants::default();
        grants.pages.insert((GUEST.0, 0), (vec![1; 4096], true));
        for _ in 0..4 {
            let work = vbd.service(&mut disk, &mut grants);
            prop_assert!(work.answered <= REQUESTS_PER_WAKE);
            front.store(REQ_PROD_OFFSET, req_prod);
        }
        prop_assert!(disk.bytes().iter().all(|&b| b == 0));
        prop_assert_eq!(disk.sectors(), 16);
    }
}
