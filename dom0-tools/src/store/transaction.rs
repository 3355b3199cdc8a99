//! Transactions: a domain's private view of the nodes it touched, committed only if none
//! of them changed meanwhile.
//!
//! The first time a transaction reads or writes a node, it keeps a copy and the node's
//! generation (or that it did not exist). Reads and writes then use the copies. At
//! `TRANSACTION_END` with `T`, if any node it touched has another generation in the tree
//! now (changed, created or removed by someone else), the transaction ends with `EAGAIN`
//! and changes nothing; otherwise its writes go into the tree and its watch events fire.
//! So committed transactions are serialisable: each acts as if it ran alone at its
//! commit. A transaction touches at most [`TRANSACTION_NODES_MAX`] nodes and its copies
//! count against its domain's memory ([`super::quota`]).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use guest_abi::DomId;

use super::StoreError;
use super::quota::{NODE_OVERHEAD, QuotaError, TRANSACTION_NODES_MAX, Usage};
use super::tree::{Node, Tree, View};
use super::watch::Change;

/// A node as a transaction saw it first and sees it now.
#[derive(Clone, Debug)]
struct Touched {
    /// Its generation in the tree when first touched (`None`: it did not exist).
    seen: Option<u64>,
    /// The transaction's view of it.
    node: Option<Node>,
    /// Whether the transaction changed it.
    dirty: bool,
}

/// One open transaction.
#[derive(Clone, Debug, Default)]
pub struct Transaction {
    touched: BTreeMap<String, Touched>,
    changes: Vec<Change>,
    bytes: usize,
}

impl Transaction {
    /// Bytes its copies take (charged to its domain).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Watch events it will fire if committed.
    pub fn changes_mut(&mut self) -> &mut Vec<Change> {
        &mut self.changes
    }

    /// Commits into `tree`, or `EAGAIN` if a node it touched changed meanwhile. Returns
    /// its changes for the watches.
    pub fn commit(self, tree: &mut Tree) -> Result<Vec<Change>, StoreError> {
        if self
            .touched
            .iter()
            .any(|(p, t)| tree.generation_of(p) != t.seen)
        {
            return Err(StoreError::Again);
        }
        for (p, t) in self.touched {
            if t.dirty {
                tree.set(&p, t.node);
            }
        }
        Ok(self.changes)
    }
}

/// Bytes a copy takes: path, value, permissions, children's names and a node's overhead
/// (never less than the node costs in the tree once committed).
fn copy_cost(path: &str, node: &Option<Node>) -> usize {
    path.len()
        + node.as_ref().map_or(0, |n| {
            NODE_OVERHEAD
                + n.value.len()
                + n.perms.cost()
                + n.children.iter().map(|c| c.len() + 1).sum::<usize>()
        })
}

/// A transaction over the tree as a [`View`] for its domain, which holds `extra` bytes
/// besides this transaction's copies.
pub struct TxView<'a> {
    /// The transaction.
    pub tx: &'a mut Transaction,
    /// The tree (read only until commit).
    pub tree: &'a Tree,
    /// The transaction's domain.
    pub caller: DomId,
    /// Bytes the domain holds outside the tree and this transaction.
    pub extra: usize,
}

impl TxView<'_> {
    /// Makes sure `path` has a copy, charging its bytes.
    fn touch(&mut self, path: &str) -> Result<&mut Touched, StoreError> {
        if !self.tx.touched.contains_key(path) {
            if self.tx.touched.len() >= TRANSACTION_NODES_MAX {
                return Err(QuotaError::TransactionNodes.into());
            }
            let node = self.tree.node(path).cloned();
            let cost = copy_cost(path, &node);
            if self.caller.0 != 0 {
                self.usage(self.caller).check_bytes(cost)?;
            }
            self.tx.bytes += cost;
            self.tx.touched.insert(
                String::from(path),
                Touched {
                    seen: node.as_ref().map(|n| n.generation),
                    node,
                    dirty: false,
                },
            );
        }
        self.tx.touched.get_mut(path).ok_or(StoreError::NoEntry)
    }
}

impl View for TxView<'_> {
    fn get(&mut self, path: &str) -> Result<Option<Node>, StoreError> {
        Ok(self.touch(path)?.node.clone())
    }

    fn put(&mut self, path: &str, node: Option<Node>) -> Result<(), StoreError> {
        let new = copy_cost(path, &node);
        let caller = self.caller;
        let old = copy_cost(path, &self.touch(path)?.node);
        let grows = new.saturating_sub(old);
        if caller.0 != 0 && grows > 0 {
            self.usage(caller).check_bytes(grows)?;
        }
        self.tx.bytes = (self.tx.bytes + new).saturating_sub(old);
        let t = self.touch(path)?;
        t.node = node;
        t.dirty = true;
        Ok(())
    }

    fn usage(&self, dom: DomId) -> Usage {
        let mut u = self.tree.owned(dom);
        if dom == self.caller {
            u.bytes = u
                .bytes
                .saturating_add(self.extra)
                .saturating_add(self.tx.bytes);
        }
        u
    }
}
