//! dom0's xenstore: a tree of nodes with Xen's semantics (`docs/misc/xenstore.txt`,
//! `io/xs_wire.h`), served on each domain's ring by [`crate::xenstore::StoreServer`] and
//! used by the toolstack itself as dom0.
//!
//! - [`path`]: which strings are paths, relative paths (`/local/domain/N/...`);
//! - [`perms`]: node permissions (owner, `n`/`r`/`w`/`b` per domain; dom0 may do all);
//! - [`tree`]: the nodes, and `READ`, `WRITE`, `MKDIR`, `RM`, `DIRECTORY`, `GET_PERMS`,
//!   `SET_PERMS` over a [`tree::View`];
//! - [`transaction`]: a domain's private copies, committed or refused with `EAGAIN`;
//! - [`watch`]: which changes fire which watches, and the `WATCH_EVENT` messages;
//! - [`quota`]: the limits per domain, and the accounting;
//! - [`wire`]: the message format; [`request`]: a decoded message to its reply.
//!
//! Pure and `no_std`: guest input never reaches a panic or an unchecked index.
//!
//! # Invariants
//!
//! Every node but `/` has its parent, and the parent lists it ([`tree::consistent`]).
//! A domain other than dom0 only ever reads what a node's permissions let it read, and
//! only changes what they let it write. Each change gives the changed node a new
//! generation, and a transaction commits only if no node it touched has a new one.
//!
//! # Bounds (what a domain can make dom0 hold)
//!
//! Per domain other than dom0, whatever it sends:
//! - nodes it owns: at most [`quota::NODES_MAX`] nodes, each value and permissions at most
//!   [`quota::NODE_SIZE_MAX`] bytes with at most [`quota::PERMS_MAX`] entries;
//! - watches: at most [`quota::WATCHES_MAX`]; transactions: at most
//!   [`quota::TRANSACTIONS_MAX`] open, each touching at most
//!   [`quota::TRANSACTION_NODES_MAX`] nodes;
//! - memory: its nodes, watches and transaction copies together at most
//!   [`quota::MEMORY_MAX`] bytes as accounted ([`Store::usage`]);
//! - watch events waiting for it: at most [`quota::EVENTS_MAX`] bytes; more are dropped;
//! - requests: each is answered when read, so none is outstanding; the ring server bounds
//!   the replies waiting for room ([`crate::xenstore::HELD_MAX`]).
//!
//! dom0 (the toolstack) has no limits. A request's work is bounded by the size of the
//! tree it may touch, which the limits above bound.

pub mod path;
pub mod perms;
pub mod quota;
pub mod request;
pub mod transaction;
pub mod tree;
pub mod watch;
pub mod wire;

#[cfg(test)]
mod tests;

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use guest_abi::DomId;

use path::PathError;
use perms::{Perms, PermsError};
use quota::{EVENTS_MAX, QuotaError, Usage};
use transaction::Transaction;
use tree::{Tree, TreeView};
use watch::{Change, Watch};

/// Why a request failed; [`StoreError::errno`] is the name xenstored answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// No such node (`ENOENT`), or no such transaction or watch.
    NoEntry,
    /// Not allowed (`EACCES`).
    Access,
    /// Not allowed to give a node away (`EPERM`).
    Perm,
    /// Malformed arguments (`EINVAL`).
    Invalid,
    /// A bad path (`EINVAL`).
    Path(PathError),
    /// Bad permissions (`EINVAL`).
    Perms(PermsError),
    /// The watch exists (`EEXIST`).
    Exists,
    /// A limit reached (see [`QuotaError::errno`]).
    Quota(QuotaError),
    /// The transaction conflicted (`EAGAIN`).
    Again,
    /// The reply would be longer than a message may be (`E2BIG`).
    TooBig,
    /// Not implemented here (`ENOSYS`).
    NoSys,
}

impl StoreError {
    /// Xen's errno name (`io/xs_wire.h`'s `xsd_errors`).
    pub fn errno(self) -> &'static str {
        match self {
            Self::NoEntry => "ENOENT",
            Self::Access => "EACCES",
            Self::Perm => "EPERM",
            Self::Invalid | Self::Path(_) | Self::Perms(_) => "EINVAL",
            Self::Exists => "EEXIST",
            Self::Quota(q) => q.errno(),
            Self::Again => "EAGAIN",
            Self::TooBig => "E2BIG",
            Self::NoSys => "ENOSYS",
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(e) => write!(f, "{e} (EINVAL)"),
            Self::Perms(e) => write!(f, "{e} (EINVAL)"),
            Self::Quota(e) => write!(f, "{e} ({})", e.errno()),
            e => f.write_str(e.errno()),
        }
    }
}

impl core::error::Error for StoreError {}

impl From<PathError> for StoreError {
    fn from(e: PathError) -> Self {
        Self::Path(e)
    }
}

impl From<PermsError> for StoreError {
    fn from(e: PermsError) -> Self {
        Self::Perms(e)
    }
}

impl From<QuotaError> for StoreError {
    fn from(e: QuotaError) -> Self {
        Self::Quota(e)
    }
}

/// One domain's connection: its watches, open transactions and undelivered events.
#[derive(Clone, Debug, Default)]
struct Conn {
    watches: Vec<Watch>,
    transactions: BTreeMap<u32, Transaction>,
    next_tx: u32,
    events: VecDeque<Vec<u8>>,
    event_bytes: usize,
    dropped: u64,
}

impl Conn {
    /// Bytes held outside the tree, except transaction `but`'s.
    fn extra(&self, but: u32) -> usize {
        let watches: usize = self.watches.iter().map(Watch::cost).sum();
        let txs: usize = self
            .transactions
            .iter()
            .filter(|(id, _)| **id != but)
            .map(|(_, t)| t.bytes())
            .sum();
        watches + txs
    }
}

/// The store and its connections (dom0 is always connected).
#[derive(Clone, Debug)]
pub struct Store {
    tree: Tree,
    conns: BTreeMap<u16, Conn>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// A store holding only `/`, with dom0 connected.
    pub fn new() -> Self {
        let mut conns = BTreeMap::new();
        conns.insert(0, Conn::default());
        Self {
            tree: Tree::new(),
            conns,
        }
    }

    /// The nodes.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// `INTRODUCE`: connects `dom` and fires `@introduceDomain`. Returns whether it was
    /// new.
    pub fn introduce(&mut self, dom: DomId) -> bool {
        if self.conns.contains_key(&dom.0) {
            return false;
        }
        self.conns.insert(dom.0, Conn::default());
        self.fire(&[Change::special(path::INTRODUCE_DOMAIN)]);
        true
    }

    /// `RELEASE` (or the domain is gone): drops its watches, transactions and events and
    /// fires `@releaseDomain`. Its nodes stay until removed.
    pub fn release(&mut self, dom: DomId) {
        if dom.0 != 0 && self.conns.remove(&dom.0).is_some() {
            self.fire(&[Change::special(path::RELEASE_DOMAIN)]);
        }
    }

    /// A domain shut down (or crashed): fires `@releaseDomain`, as xenstored does when
    /// `VIRQ_DOM_EXC` reports it; its connection stays until [`Self::release`].
    pub fn domain_stopped(&mut self) {
        self.fire(&[Change::special(path::RELEASE_DOMAIN)]);
    }

    /// Whether `dom` is connected.
    pub fn is_introduced(&self, dom: DomId) -> bool {
        self.conns.contains_key(&dom.0)
    }

    /// What `dom` holds: the nodes it owns, and the bytes of those, its watches and its
    /// transactions' copies.
    pub fn usage(&self, dom: DomId) -> Usage {
        let mut u = self.tree.owned(dom);
        if let Some(c) = self.conns.get(&dom.0) {
            u.bytes += c.extra(0);
            u.watches = c.watches.len();
            u.transactions = c.transactions.len();
        }
        u
    }

    /// Bytes of watch events waiting for `dom`.
    pub fn event_bytes(&self, dom: DomId) -> usize {
        self.conns.get(&dom.0).map_or(0, |c| c.event_bytes)
    }

    /// Watch events dropped because `dom` did not take them.
    pub fn dropped_events(&self, dom: DomId) -> u64 {
        self.conns.get(&dom.0).map_or(0, |c| c.dropped)
    }

    /// The next watch event for `dom` (a whole `WATCH_EVENT` message).
    pub fn take_event(&mut self, dom: DomId) -> Option<Vec<u8>> {
        let c = self.conns.get_mut(&dom.0)?;
        let m = c.events.pop_front()?;
        c.event_bytes = c.event_bytes.saturating_sub(m.len());
        Some(m)
    }

    /// Whether `dom` has watch events waiting.
    pub fn has_events(&self, dom: DomId) -> bool {
        self.conns.get(&dom.0).is_some_and(|c| !c.events.is_empty())
    }

    /// Queues the events `changes` cause, for every connection whose watch they fire
    /// and which may see them.
    fn fire(&mut self, changes: &[Change]) {
        let tree = &self.tree;
        for (&id, conn) in self.conns.iter_mut() {
            let dom = DomId(id);
            for change in changes {
                if !permitted(tree, dom, change) {
                    continue;
                }
                let fired: Vec<Vec<u8>> = conn
                    .watches
                    .iter()
                    .filter_map(|w| {
                        let p = watch::event_path(w, change)?;
                        Some(watch::event_message(dom, w, &p))
                    })
                    .collect();
                for m in fired {
                    queue_event(conn, m);
                }
            }
        }
    }

    /// The tree as a view for `dom`.
    fn view(&mut self, dom: DomId) -> TreeView<'_> {
        let extra = self.conns.get(&dom.0).map_or(0, |c| c.extra(0));
        TreeView {
            tree: &mut self.tree,
            caller: dom,
            extra,
        }
    }

    /// Reads a node as dom0 (for the toolstack).
    pub fn read(&mut self, path: &str) -> Result<Vec<u8>, StoreError> {
        let p = path::resolve(DomId(0), path)?;
        tree::read(&mut self.view(DomId(0)), DomId(0), &p)
    }

    /// Writes a node as dom0, firing the watches.
    pub fn write(&mut self, path: &str, value: &[u8]) -> Result<(), StoreError> {
        self.change_as_dom0(path, |v, p, ch| tree::write(v, DomId(0), p, value, ch))
    }

    /// Removes a subtree as dom0, firing the watches.
    pub fn rm(&mut self, path: &str) -> Result<(), StoreError> {
        self.change_as_dom0(path, |v, p, ch| tree::rm(v, DomId(0), p, ch))
    }

    /// Sets a node's permissions as dom0, firing the watches.
    pub fn set_perms(&mut self, path: &str, perms: Perms) -> Result<(), StoreError> {
        self.change_as_dom0(path, |v, p, ch| tree::set_perms(v, DomId(0), p, perms, ch))
    }

    /// A node's children, as dom0.
    pub fn directory(&mut self, path: &str) -> Result<Vec<String>, StoreError> {
        let p = path::resolve(DomId(0), path)?;
        Ok(tree::directory(&mut self.view(DomId(0)), DomId(0), &p)?.1)
    }

    /// A node's permissions, as dom0.
    pub fn get_perms(&mut self, path: &str) -> Result<Perms, StoreError> {
        let p = path::resolve(DomId(0), path)?;
        tree::get_perms(&mut self.view(DomId(0)), DomId(0), &p)
    }

    fn change_as_dom0(
        &mut self,
        path: &str,
        op: impl FnOnce(&mut TreeView<'_>, &str, &mut Vec<Change>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let p = path::resolve(DomId(0), path)?;
        let mut changes = Vec::new();
        op(&mut self.view(DomId(0)), &p, &mut changes)?;
        self.fire(&changes);
        Ok(())
    }
}

/// Queues `m` for `conn` unless that would pass [`EVENTS_MAX`] (then it is dropped).
fn queue_event(conn: &mut Conn, m: Vec<u8>) {
    if m.len() > wire::HEADER + wire::PAYLOAD_MAX
        || conn.event_bytes.saturating_add(m.len()) > EVENTS_MAX
    {
        conn.dropped += 1;
        return;
    }
    conn.event_bytes += m.len();
    conn.events.push_back(m);
}

/// Whether `dom` may hear of `change`: dom0 always; for a special event nobody else;
/// else if it could read the node before the change, or can read it or its parent now.
fn permitted(tree: &Tree, dom: DomId, change: &Change) -> bool {
    if dom.0 == 0 {
        return true;
    }
    if path::is_special(&change.path) {
        return false;
    }
    let readable = |p: &str| tree.node(p).is_some_and(|n| n.perms.access(dom).can_read());
    change
        .perms
        .as_ref()
        .is_some_and(|p| p.access(dom).can_read())
        || readable(&change.path)
        || path::parent(&change.path).is_some_and(readable)
}
