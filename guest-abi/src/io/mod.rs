//! Split-driver protocols (`xen/include/public/io/`): the shared ring layout every PV device
//! uses ([`ring`]) and the block device's requests and responses ([`blkif`]).

pub mod blkif;
pub mod ring;
