//! A request copied from the ring, checked: what it asks for, or the status that refuses it.
//!
//! Nothing here trusts the frontend: the operation must be one the backend offers, the
//! segment count within [`BLKIF_MAX_SEGMENTS_PER_REQUEST`], each segment inside its page
//! (`first_sect <= last_sect < 8`), and the whole range inside the device.

use guest_abi::io::blkif::{
    BLKIF_MAX_SEGMENTS_PER_REQUEST, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_OP_READ, BLKIF_OP_WRITE,
    BLKIF_OP_WRITE_BARRIER, BLKIF_RSP_EOPNOTSUPP, BLKIF_RSP_ERROR, BlkifRequest,
    BlkifRequestSegment, SECTORS_PER_PAGE,
};
use zerocopy::FromBytes;

use super::ring::RawRequest;
use crate::block_device::{SECTOR_SIZE, check_range};

/// What a checked request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Read the segments' sectors from `sector` on.
    Read,
    /// Write them.
    Write,
    /// Make everything before durable; then write the segments (if any) and make them
    /// durable too (a flush with data is a FUA write, as Linux's blkfront sends it).
    FlushThenWrite,
}

/// A request that passed the checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checked {
    /// What to do.
    pub action: Action,
    /// The first sector.
    pub sector: u64,
    /// The segments (the first `count`).
    pub segments: [BlkifRequestSegment; BLKIF_MAX_SEGMENTS_PER_REQUEST],
    /// Segments used.
    pub count: usize,
    /// Bytes of data, all segments together.
    pub bytes: usize,
}

/// The request's tag and operation, echoed in the response whatever else it holds.
pub fn echo(raw: &RawRequest) -> (u64, u8) {
    let mut id = [0; 8];
    id.copy_from_slice(&raw[8..16]);
    (u64::from_le_bytes(id), raw[0])
}

/// Bytes a segment transfers, if it lies inside its page.
pub fn segment_bytes(seg: &BlkifRequestSegment) -> Option<usize> {
    (seg.first_sect <= seg.last_sect && seg.last_sect < SECTORS_PER_PAGE)
        .then(|| usize::from(seg.last_sect - seg.first_sect + 1) * SECTOR_SIZE)
}

/// Checks a request against a device of `sectors` sectors; `writable` says whether the
/// guest may write. The error is the `BLKIF_RSP_*` status to answer with.
pub fn check(raw: &RawRequest, sectors: u64, writable: bool) -> Result<Checked, i16> {
    let req = BlkifRequest::read_from_bytes(raw).map_err(|_| BLKIF_RSP_ERROR)?;
    let action = match req.operation {
        BLKIF_OP_READ => Action::Read,
        BLKIF_OP_WRITE => Action::Write,
        BLKIF_OP_FLUSH_DISKCACHE | BLKIF_OP_WRITE_BARRIER => Action::FlushThenWrite,
        _ => return Err(BLKIF_RSP_EOPNOTSUPP),
    };
    let count = usize::from(req.nr_segments);
    let data_required = action != Action::FlushThenWrite;
    if count > BLKIF_MAX_SEGMENTS_PER_REQUEST || (data_required && count == 0) {
        return Err(BLKIF_RSP_ERROR);
    }
    if action != Action::Read && count > 0 && !writable {
        return Err(BLKIF_RSP_ERROR);
    }
    let mut bytes = 0;
    for seg in &req.seg[..count] {
        bytes += segment_bytes(seg).ok_or(BLKIF_RSP_ERROR)?;
    }
    // A flush without data names no sectors: Linux's blkfront leaves any position in it.
    if count > 0 {
        check_range(sectors, req.sector_number, bytes).map_err(|_| BLKIF_RSP_ERROR)?;
    }
    Ok(Checked {
        action,
        sector: req.sector_number,
        segments: req.seg,
        count,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::IntoBytes;

    fn raw(op: u8, segs: &[(u8, u8)], sector: u64) -> RawRequest {
        let mut req = BlkifRequest {
            operation: op,
            nr_segments: segs.len() as u8,
            handle: 0,
            _hole: [0; 4],
            id: 0x1234,
            sector_number: sector,
            seg: [BlkifRequestSegment::default(); BLKIF_MAX_SEGMENTS_PER_REQUEST],
        };
        for (s, &(first, last)) in req.seg.iter_mut().zip(segs) {
            s.gref = 9;
            s.first_sect = first;
            s.last_sect = last;
        }
        let mut out = [0; 112];
        out.copy_from_slice(req.as_bytes());
        out
    }

    #[test]
    fn good_requests_pass() {
        let c = check(&raw(BLKIF_OP_READ, &[(0, 7), (2, 3)], 0), 100, false).unwrap();
        assert_eq!((c.action, c.count, c.bytes), (Action::Read, 2, 10 * 512));
        let f = check(&raw(BLKIF_OP_FLUSH_DISKCACHE, &[], 0), 100, false).unwrap();
        assert_eq!(f.bytes, 0);
        let far = check(&raw(BLKIF_OP_FLUSH_DISKCACHE, &[], u64::MAX), 100, false);
        assert_eq!(far.map(|c| c.action), Ok(Action::FlushThenWrite));
        assert_eq!(echo(&raw(BLKIF_OP_WRITE, &[], 0)), (0x1234, BLKIF_OP_WRITE));
    }

    #[test]
    fn hostile_requests_are_refused() {
        assert_eq!(
            check(&raw(9, &[(0, 0)], 0), 100, true),
            Err(BLKIF_RSP_EOPNOTSUPP)
        );
        assert_eq!(
            check(&raw(BLKIF_OP_READ, &[(3, 2)], 0), 100, true),
            Err(BLKIF_RSP_ERROR)
        );
        assert_eq!(
            check(&raw(BLKIF_OP_READ, &[(0, 8)], 0), 100, true),
            Err(BLKIF_RSP_ERROR)
        );
        assert_eq!(
            check(&raw(BLKIF_OP_READ, &[], 0), 100, true),
            Err(BLKIF_RSP_ERROR)
        );
        assert_eq!(
            check(&raw(BLKIF_OP_READ, &[(0, 7)], 93), 100, true),
            Err(BLKIF_RSP_ERROR)
        );
        assert_eq!(
            check(&raw(BLKIF_OP_READ, &[(0, 7)], u64::MAX), 100, true),
            Err(BLKIF_RSP_ERROR)
        );
        assert_eq!(
            check(&raw(BLKIF_OP_WRITE, &[(0, 7)], 0), 100, false),
            Err(BLKIF_RSP_ERROR)
        );
        let mut many = raw(BLKIF_OP_READ, &[(0, 0)], 0);
        many[1] = 12;
        assert_eq!(check(&many, 100, true), Err(BLKIF_RSP_ERROR));
    }
}
