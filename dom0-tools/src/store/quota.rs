//! What each domain may make the store hold, and the accounting that enforces it.
//!
//! Xen's xenstored limits a guest's nodes, node size, permissions per node, watches,
//! transactions and nodes touched per transaction, with the same defaults as here, and its
//! memory per domain (2.5 MB). dom0's heap is 16 MiB for up to 63 domUs, so the memory
//! limit here is smaller: [`MEMORY_MAX`] bytes per domain, counting the nodes the domain
//! owns, its watches and the copies its open transactions hold. dom0 (the toolstack)
//! has no limits; the nodes it makes for a domain are charged to their owner, so they
//! count against that domain's limits later.

use core::fmt;

/// Nodes a domain may own (Xen's `nodes`).
pub const NODES_MAX: usize = 1000;
/// Bytes of a node's value and permissions (Xen's `node-size`).
pub const NODE_SIZE_MAX: usize = 2048;
/// Entries in a node's permissions (Xen's `node-permissions`).
pub const PERMS_MAX: usize = 5;
/// Watches a domain may have (Xen's `watches`).
pub const WATCHES_MAX: usize = 128;
/// Transactions a domain may have open (Xen's `transactions`).
pub const TRANSACTIONS_MAX: usize = 10;
/// Nodes one transaction may touch (Xen's `transaction-nodes`).
pub const TRANSACTION_NODES_MAX: usize = 1024;
/// Bytes of dom0 memory a domain's nodes, watches and transactions may take (ours; Xen's
/// `memory` is 2.5 MB).
pub const MEMORY_MAX: usize = 64 * 1024;
/// Bytes of watch events queued for a domain that has not taken them; more are dropped
/// (Xen drops events for a domain over its quota too).
pub const EVENTS_MAX: usize = 8 * 1024;
/// Bytes accounted for each node besides its path, value and permissions (the map entry
/// and the node's record).
pub const NODE_OVERHEAD: usize = 64;

/// A limit reached. Each maps to the errno xenstored gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuotaError {
    /// [`NODES_MAX`] (`ENOSPC`).
    Nodes,
    /// [`NODE_SIZE_MAX`] (`ENOSPC`).
    NodeSize,
    /// [`PERMS_MAX`] (`ENOSPC`).
    Perms,
    /// [`WATCHES_MAX`] (`E2BIG`).
    Watches,
    /// [`TRANSACTIONS_MAX`] (`ENOSPC`).
    Transactions,
    /// [`TRANSACTION_NODES_MAX`] (`ENOSPC`).
    TransactionNodes,
    /// [`MEMORY_MAX`] (`ENOMEM`).
    Memory,
}

impl QuotaError {
    /// The errno name xenstored answers with.
    pub fn errno(self) -> &'static str {
        match self {
            Self::Watches => "E2BIG",
            Self::Memory => "ENOMEM",
            _ => "ENOSPC",
        }
    }
}

impl fmt::Display for QuotaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, max) = match self {
            Self::Nodes => ("nodes", NODES_MAX),
            Self::NodeSize => ("bytes in a node", NODE_SIZE_MAX),
            Self::Perms => ("permissions on a node", PERMS_MAX),
            Self::Watches => ("watches", WATCHES_MAX),
            Self::Transactions => ("open transactions", TRANSACTIONS_MAX),
            Self::TransactionNodes => ("nodes in a transaction", TRANSACTION_NODES_MAX),
            Self::Memory => ("bytes of store memory", MEMORY_MAX),
        };
        write!(f, "quota: at most {max} {what}")
    }
}

impl core::error::Error for QuotaError {}

/// What one domain has made the store hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Nodes it owns.
    pub nodes: usize,
    /// Bytes of nodes it owns, watches and open transactions.
    pub bytes: usize,
    /// Its watches.
    pub watches: usize,
    /// Its open transactions.
    pub transactions: usize,
}

impl Usage {
    /// Whether `more` bytes fit.
    pub fn check_bytes(&self, more: usize) -> Result<(), QuotaError> {
        match self.bytes.checked_add(more) {
            Some(b) if b <= MEMORY_MAX => Ok(()),
            _ => Err(QuotaError::Memory),
        }
    }

    /// Whether one more node of `cost` bytes fits.
    pub fn check_node(&self, cost: usize) -> Result<(), QuotaError> {
        if self.nodes >= NODES_MAX {
            return Err(QuotaError::Nodes);
        }
        self.check_bytes(cost)
    }
}

/// Whether a node's value and permissions fit a node.
pub fn check_node_size(value: usize, perms_cost: usize, perms: usize) -> Result<(), QuotaError> {
    if perms > PERMS_MAX {
        return Err(QuotaError::Perms);
    }
    if value.saturating_add(perms_cost) > NODE_SIZE_MAX {
        return Err(QuotaError::NodeSize);
    }
    Ok(())
}
