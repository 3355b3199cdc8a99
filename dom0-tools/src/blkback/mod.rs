//! The block backend (blkback): guests' virtual block devices served from dom0's disks.
//!
//! - [`disks`]: dom0's disks and which domains use them (xl's "already in use" rule);
//! - [`ring`]: the backend's end of a shared ring, read without trusting the frontend;
//! - [`request`]: a request checked, or the status refusing it;
//! - [`grants`]: data moved with `GNTTABOP_copy` batches;
//! - [`vbd`]: one connected device, served with bounded work per wake-up;
//! - [`xenbus`]: a device's store nodes and the handshake with its frontend.
pub mod disks;
pub mod grants;
pub mod request;
pub mod ring;
pub mod vbd;
pub mod xenbus;

#[cfg(test)]
mod tests;
