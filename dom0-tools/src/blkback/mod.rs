//! The block backend (blkback): guests' virtual block devices served from dom0's disks.
//!
//! - [`disks`]: dom0's disks and which domains use them (xl's "already in use" rule).
pub mod disks;
