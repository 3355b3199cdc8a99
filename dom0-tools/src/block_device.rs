//! dom0's disks as the block backend sees them: a synchronous device of 512-byte sectors.
//!
//! The dom0 kernel implements [`BlockDevice`] over each virtio disk it finds on PCI and hands
//! the disks to the toolstack by name (`/dev/vda`, `/dev/vdb`, …); the block backend serves
//! guests' requests from them, and host tests use [`MemoryDisk`].
//!
//! Durability contract: when [`BlockDevice::write`] returns `Ok`, the device has completed the
//! write (it is in the device's cache at least); when [`BlockDevice::flush`] returns `Ok`,
//! every write completed before it is on stable storage. A backend answers a guest's write
//! only after `write` returned, and a flush or barrier only after `flush` returned.

use alloc::vec;
use alloc::vec::Vec;

/// Bytes in a sector, as `blkif` counts them whatever the device's own sector size.
pub const SECTOR_SIZE: usize = 512;

/// Why a disk operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskError {
    /// The range runs past the end of the device, or the buffer is not whole sectors.
    OutOfRange,
    /// A write to a read-only device.
    ReadOnly,
    /// The device reported an error.
    Io,
}

impl core::fmt::Display for DiskError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::OutOfRange => "sector range outside the device",
            Self::ReadOnly => "the device is read-only",
            Self::Io => "device I/O error",
        })
    }
}

/// A disk of 512-byte sectors. Buffers are whole sectors; every call completes before it
/// returns.
pub trait BlockDevice {
    /// The device's size in 512-byte sectors.
    fn sectors(&self) -> u64;
    /// Whether the device refuses writes.
    fn read_only(&self) -> bool;
    /// Reads `buf.len() / 512` sectors starting at `sector`.
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), DiskError>;
    /// Writes `buf.len() / 512` sectors starting at `sector`; returns once the device completed it.
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), DiskError>;
    /// Returns once every completed write is on stable storage.
    fn flush(&mut self) -> Result<(), DiskError>;
}

/// Checks that `len` bytes from `sector` are whole sectors inside a device of `sectors`.
pub fn check_range(sectors: u64, sector: u64, len: usize) -> Result<(), DiskError> {
    if !len.is_multiple_of(SECTOR_SIZE) {
        return Err(DiskError::OutOfRange);
    }
    let count = (len / SECTOR_SIZE) as u64;
    match sector.checked_add(count) {
        Some(end) if end <= sectors => Ok(()),
        _ => Err(DiskError::OutOfRange),
    }
}

/// A disk in memory, for host tests.
#[derive(Debug, Clone)]
pub struct MemoryDisk {
    data: Vec<u8>,
    read_only: bool,
    /// Flushes performed, for tests that check a flush reached the device.
    pub flushes: u64,
}

impl MemoryDisk {
    /// A zeroed disk of `sectors` sectors.
    pub fn new(sectors: u64, read_only: bool) -> Self {
        Self {
            data: vec![0; sectors as usize * SECTOR_SIZE],
            read_only,
            flushes: 0,
        }
    }

    /// The disk's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }
}

impl BlockDevice for MemoryDisk {
    fn sectors(&self) -> u64 {
        (self.data.len() / SECTOR_SIZE) as u64
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        check_range(self.sectors(), sector, buf.len())?;
        let start = sector as usize * SECTOR_SIZE;
        buf.copy_from_slice(&self.data[start..start + buf.len()]);
        Ok(())
    }

    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), DiskError> {
        if self.read_only {
            return Err(DiskError::ReadOnly);
        }
        check_range(self.sectors(), sector, buf.len())?;
        let start = sector as usize * SECTOR_SIZE;
        self.data[start..start + buf.len()].copy_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DiskError> {
        self.flushes += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked_without_overflow() {
        assert_eq!(check_range(8, 0, 8 * SECTOR_SIZE), Ok(()));
        assert_eq!(
            check_range(8, 1, 8 * SECTOR_SIZE),
            Err(DiskError::OutOfRange)
        );
        assert_eq!(
            check_range(8, u64::MAX, SECTOR_SIZE),
            Err(DiskError::OutOfRange)
        );
        assert_eq!(check_range(8, 0, 100), Err(DiskError::OutOfRange));
    }

    #[test]
    fn memory_disk_round_trips_and_refuses_when_read_only() {
        let mut d = MemoryDisk::new(4, false);
        d.write(1, &[7; SECTOR_SIZE]).unwrap();
        let mut buf = [0; SECTOR_SIZE];
        d.read(1, &mut buf).unwrap();
        assert_eq!(buf, [7; SECTOR_SIZE]);
        let mut ro = MemoryDisk::new(4, true);
        assert_eq!(ro.write(0, &buf), Err(DiskError::ReadOnly));
    }
}
