//! One connected virtual block device: a guest's ring served from one of dom0's disks.
//!
//! Each wake-up ([`Vbd::service`]) handles at most [`REQUESTS_PER_WAKE`] requests and
//! answers each before taking the next, so a frontend cannot make dom0 hold more than one
//! request's data ([`MAX_REQUEST_BYTES`]) whatever it puts on the ring, and one that never
//! consumes responses only overwrites its own ring. A write is answered only after the
//! disk's `write` returned, a flush only after its `flush` returned.
//!
//! A frontend whose `req_prod` runs more than a ring ahead is broken: the device stops
//! serving it, and the caller disconnects it (state Closing, logged once).

use alloc::vec;
use alloc::vec::Vec;

use guest_abi::DomId;
use guest_abi::io::blkif::{
    BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_RSP_ERROR, BLKIF_RSP_OKAY, BlkifResponse,
};

use super::grants::{GrantCopy, GrantSegment};
use super::request::{self, Action, Checked};
use super::ring::{BackRing, Pending};
use crate::block_device::{BlockDevice, SECTOR_SIZE};
use crate::shared_page::SharedPage;

/// Requests handled per wake-up before giving the others a turn.
pub const REQUESTS_PER_WAKE: usize = 32;
/// The most data one request carries: every segment a whole page.
pub const MAX_REQUEST_BYTES: usize = BLKIF_MAX_SEGMENTS_PER_REQUEST * 4096;

/// What a wake-up did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// Requests answered.
    pub answered: usize,
    /// The frontend asked for an event: send one.
    pub notify: bool,
    /// Requests remain: call again soon.
    pub more: bool,
    /// The frontend broke the ring protocol: disconnect it.
    pub broken: bool,
}

/// A connected device.
#[derive(Debug)]
pub struct Vbd<P: SharedPage> {
    /// The frontend's domain.
    pub dom: DomId,
    /// Whether the guest may write.
    pub writable: bool,
    ring: BackRing<P>,
    buf: Vec<u8>,
    broken: bool,
}

impl<P: SharedPage> Vbd<P> {
    /// A device serving `dom` on `ring`.
    pub fn new(dom: DomId, writable: bool, ring: BackRing<P>) -> Self {
        Self {
            dom,
            writable,
            ring,
            buf: vec![0; MAX_REQUEST_BYTES],
            broken: false,
        }
    }

    /// The ring, to unmap its pages when the device goes.
    pub fn into_ring(self) -> BackRing<P> {
        self.ring
    }

    /// Whether the frontend broke the protocol (the device serves nothing more).
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Serves up to [`REQUESTS_PER_WAKE`] requests.
    pub fn service(&mut self, disk: &mut dyn BlockDevice, grants: &mut dyn GrantCopy) -> Work {
        let mut work = Work::default();
        if self.broken {
            work.broken = true;
            return work;
        }
        loop {
            let pending = if work.answered < REQUESTS_PER_WAKE {
                self.ring.pending()
            } else {
                work.more = self.ring.pending() != Pending::Empty;
                break;
            };
            match pending {
                Pending::Request => {
                    let raw = self.ring.take_request();
                    let (id, operation) = request::echo(&raw);
                    let status = match request::check(&raw, disk.sectors(), self.writable) {
                        Ok(c) => self.perform(&c, disk, grants),
                        Err(status) => status,
                    };
                    self.ring.put_response(&BlkifResponse {
                        id,
                        operation,
                        _hole: 0,
                        status,
                        _hole2: [0; 4],
                    });
                    work.answered += 1;
                }
                Pending::Overflow => {
                    self.broken = true;
                    work.broken = true;
                    break;
                }
                Pending::Empty => match self.ring.final_check() {
                    Pending::Empty => break,
                    _ => continue,
                },
            }
        }
        if work.answered > 0 {
            work.notify = self.ring.push_responses();
        }
        work
    }

    fn perform(
        &mut self,
        c: &Checked,
        disk: &mut dyn BlockDevice,
        grants: &mut dyn GrantCopy,
    ) -> i16 {
        let mut segments = [GrantSegment {
            gref: 0,
            offset: 0,
            len: 0,
        }; BLKIF_MAX_SEGMENTS_PER_REQUEST];
        for (out, seg) in segments.iter_mut().zip(&c.segments[..c.count]) {
            *out = GrantSegment {
                gref: seg.gref,
                offset: u16::from(seg.first_sect) * SECTOR_SIZE as u16,
                len: u16::from(seg.last_sect - seg.first_sect + 1) * SECTOR_SIZE as u16,
            };
        }
        let segments = &segments[..c.count];
        let Some(buf) = self.buf.get_mut(..c.bytes) else {
            return BLKIF_RSP_ERROR;
        };
        let ok = match c.action {
            Action::Read => {
                disk.read(c.sector, buf).is_ok() && grants.copy_to_guest(self.dom, segments, buf)
            }
            Action::Write => {
                grants.copy_from_guest(self.dom, segments, buf) && disk.write(c.sector, buf).is_ok()
            }
            Action::FlushThenWrite => {
                disk.flush().is_ok()
                    && (c.count == 0
                        || (grants.copy_from_guest(self.dom, segments, buf)
                            && disk.write(c.sector, buf).is_ok()
                            && disk.flush().is_ok()))
            }
        };
        if ok { BLKIF_RSP_OKAY } else { BLKIF_RSP_ERROR }
    }
}
