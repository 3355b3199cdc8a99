//! The nodes, and the operations on them that every request and the toolstack use.
//!
//! The store is a map from absolute path to [`Node`]; a node lists its children's names,
//! and every node's parent exists (`/` always does). Each change gives the node it
//! touches a new generation from one counter, so a transaction can tell whether a node
//! changed since it looked ([`super::transaction`]). Operations reach the nodes through a
//! [`View`]: the [`Tree`] itself, or a transaction's copy of the nodes it touched, so one
//! implementation of `write`, `rm`, ... serves both. Every operation checks the caller's
//! permissions ([`super::perms`]) and, for a domain other than dom0, its limits
//! ([`super::quota`]) before it changes anything, and reports what changed for watches.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use guest_abi::DomId;

use super::StoreError;
use super::path::{is_child, join, leaf, parent};
use super::perms::{Access, Perms};
use super::quota::{self, NODE_OVERHEAD, QuotaError, Usage};
use super::watch::Change;

/// One node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Its value (any bytes).
    pub value: Vec<u8>,
    /// Who may do what.
    pub perms: Perms,
    /// Its children's names.
    pub children: BTreeSet<String>,
    /// When it last changed (the store's counter).
    pub generation: u64,
}

impl Node {
    fn new(value: Vec<u8>, perms: Perms) -> Self {
        Self {
            value,
            perms,
            children: BTreeSet::new(),
            generation: 0,
        }
    }
}

/// Bytes a node at `path` is charged to its owner.
pub fn cost(path: &str, node: &Node) -> usize {
    path.len() + node.value.len() + node.perms.cost() + NODE_OVERHEAD
}

/// How operations reach nodes: the tree, or a transaction's view of it.
pub trait View {
    /// The node at `path`, if any (a transaction records that it looked).
    fn get(&mut self, path: &str) -> Result<Option<Node>, StoreError>;
    /// Sets (`Some`) or removes (`None`) the node at `path`; callers keep the children
    /// lists right and have checked the limits.
    fn put(&mut self, path: &str, node: Option<Node>) -> Result<(), StoreError>;
    /// What `dom` holds now.
    fn usage(&self, dom: DomId) -> Usage;
}

/// The nodes, their generations and what each domain owns.
#[derive(Clone, Debug)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
    generation: u64,
    usage: BTreeMap<u16, Usage>,
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    /// A store holding only `/`, owned by dom0 and closed to everyone else (`n0`).
    pub fn new() -> Self {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            String::from("/"),
            Node::new(Vec::new(), Perms::new(DomId(0), Access::None)),
        );
        Self {
            nodes,
            generation: 0,
            usage: BTreeMap::new(),
        }
    }

    /// The node at `path`.
    pub fn node(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// The generation of the node at `path` (`None` if there is none).
    pub fn generation_of(&self, path: &str) -> Option<u64> {
        self.nodes.get(path).map(|n| n.generation)
    }

    /// What `dom` owns.
    pub fn owned(&self, dom: DomId) -> Usage {
        self.usage.get(&dom.0).copied().unwrap_or_default()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether only `/` is left (never: `/` cannot be removed).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every path, in order (for tests and consistency checks).
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }

    /// Sets or removes a node, giving it the next generation and moving what it costs
    /// between owners.
    pub fn set(&mut self, path: &str, node: Option<Node>) {
        if let Some(old) = self.nodes.remove(path) {
            let u = self.usage.entry(old.perms.owner().0).or_default();
            u.nodes = u.nodes.saturating_sub(1);
            u.bytes = u.bytes.saturating_sub(cost(path, &old));
        }
        if let Some(mut node) = node {
            self.generation += 1;
            node.generation = self.generation;
            let u = self.usage.entry(node.perms.owner().0).or_default();
            u.nodes += 1;
            u.bytes += cost(path, &node);
            self.nodes.insert(String::from(path), node);
        }
    }
}

/// The tree as a [`View`] for `caller`, who also holds `extra` bytes elsewhere (its
/// watches and open transactions).
pub struct TreeView<'t> {
    /// The tree.
    pub tree: &'t mut Tree,
    /// The caller.
    pub caller: DomId,
    /// Bytes the caller holds outside the tree.
    pub extra: usize,
}

impl View for TreeView<'_> {
    fn get(&mut self, path: &str) -> Result<Option<Node>, StoreError> {
        Ok(self.tree.node(path).cloned())
    }

    fn put(&mut self, path: &str, node: Option<Node>) -> Result<(), StoreError> {
        self.tree.set(path, node);
        Ok(())
    }

    fn usage(&self, dom: DomId) -> Usage {
        let mut u = self.tree.owned(dom);
        if dom == self.caller {
            u.bytes = u.bytes.saturating_add(self.extra);
        }
        u
    }
}

fn privileged(dom: DomId) -> bool {
    dom.0 == 0
}

/// The error for a node that is not there: `ENOENT` if the caller may read the nearest
/// node above it, `EACCES` if not (so that absence tells nothing about unreadable parts).
fn missing(v: &mut impl View, caller: DomId, path: &str) -> StoreError {
    let mut at = parent(path);
    while let Some(p) = at {
        match v.get(p) {
            Ok(Some(n)) if n.perms.access(caller).can_read() => return StoreError::NoEntry,
            Ok(Some(_)) => return StoreError::Access,
            Ok(None) => at = parent(p),
            Err(e) => return e,
        }
    }
    StoreError::NoEntry
}

/// The node at `path` if `caller` may do what `want` says with it.
fn get_checked(
    v: &mut impl View,
    caller: DomId,
    path: &str,
    want: fn(Access) -> bool,
) -> Result<Node, StoreError> {
    match v.get(path)? {
        Some(n) if want(n.perms.access(caller)) => Ok(n),
        Some(_) => Err(StoreError::Access),
        None => Err(missing(v, caller, path)),
    }
}

/// `READ`.
pub fn read(v: &mut impl View, caller: DomId, path: &str) -> Result<Vec<u8>, StoreError> {
    Ok(get_checked(v, caller, path, Access::can_read)?.value)
}

/// `DIRECTORY`: the children's names.
pub fn directory(
    v: &mut impl View,
    caller: DomId,
    path: &str,
) -> Result<(u64, Vec<String>), StoreError> {
    let n = get_checked(v, caller, path, Access::can_read)?;
    Ok((n.generation, n.children.into_iter().collect()))
}

/// `GET_PERMS`.
pub fn get_perms(v: &mut impl View, caller: DomId, path: &str) -> Result<Perms, StoreError> {
    Ok(get_checked(v, caller, path, Access::can_read)?.perms)
}

/// `WRITE`: sets the value, creating the node and missing parents (empty) as needed.
pub fn write(
    v: &mut impl View,
    caller: DomId,
    path: &str,
    value: &[u8],
    changes: &mut Vec<Change>,
) -> Result<(), StoreError> {
    match v.get(path)? {
        Some(mut n) => {
            if !n.perms.access(caller).can_write() {
                return Err(StoreError::Access);
            }
            if !privileged(caller) {
                quota::check_node_size(value.len(), n.perms.cost(), n.perms.entries().len())?;
                let owner = n.perms.owner();
                let grows = value.len().saturating_sub(n.value.len());
                if !privileged(owner) {
                    v.usage(owner).check_bytes(grows)?;
                }
            }
            let perms = n.perms.clone();
            n.value = value.to_vec();
            v.put(path, Some(n))?;
            changes.push(Change::node(path, perms));
            Ok(())
        }
        None => create(v, caller, path, value, changes),
    }
}

/// `MKDIR`: makes sure the node exists (a node that does keeps its value).
pub fn mkdir(
    v: &mut impl View,
    caller: DomId,
    path: &str,
    changes: &mut Vec<Change>,
) -> Result<(), StoreError> {
    match v.get(path)? {
        Some(n) if n.perms.access(caller).can_write() => Ok(()),
        Some(_) => Err(StoreError::Access),
        None => create(v, caller, path, &[], changes),
    }
}

/// Creates `path` and its missing parents. The caller must be able to write the nearest
/// node that exists; new nodes take their parent's permissions, and a domain other than
/// dom0 owns what it creates.
fn create(
    v: &mut impl View,
    caller: DomId,
    path: &str,
    value: &[u8],
    changes: &mut Vec<Change>,
) -> Result<(), StoreError> {
    // The missing paths, deepest first, and the node above them.
    let mut missing_paths = Vec::new();
    let mut at = path;
    let (base_path, base) = loop {
        missing_paths.push(at);
        let up = parent(at).ok_or(StoreError::Invalid)?;
        if let Some(n) = v.get(up)? {
            break (up, n);
        }
        at = up;
    };
    if !base.perms.access(caller).can_write() {
        return Err(StoreError::Access);
    }
    let mut perms = base.perms.clone();
    if !privileged(caller) {
        perms.set_owner(caller);
        quota::check_node_size(value.len(), perms.cost(), perms.entries().len())?;
        // Check the whole creation first, so that a refused one leaves nothing behind.
        let total: usize = missing_paths
            .iter()
            .map(|p| p.len() + perms.cost() + NODE_OVERHEAD)
            .sum::<usize>()
            + value.len();
        let u = v.usage(caller);
        if u.nodes.saturating_add(missing_paths.len()) > quota::NODES_MAX {
            return Err(QuotaError::Nodes.into());
        }
        u.check_bytes(total)?;
    }
    let mut parent_path = base_path;
    let mut parent_node = base;
    for (i, p) in missing_paths.iter().rev().enumerate() {
        parent_node.children.insert(String::from(leaf(p)));
        v.put(parent_path, Some(parent_node))?;
        let is_last = i + 1 == missing_paths.len();
        let node_value = if is_last { value.to_vec() } else { Vec::new() };
        parent_node = Node::new(node_value, perms.clone());
        parent_path = p;
    }
    v.put(parent_path, Some(parent_node))?;
    changes.push(Change::node(path, perms));
    Ok(())
}

/// `RM`: removes the node and everything below it. A node that is not there is not an
/// error, unless its parent is not there either.
pub fn rm(
    v: &mut impl View,
    caller: DomId,
    path: &str,
    changes: &mut Vec<Change>,
) -> Result<(), StoreError> {
    let up = parent(path).ok_or(StoreError::Invalid)?;
    let Some(node) = v.get(path)? else {
        return match v.get(up)? {
            Some(p) if p.perms.access(caller).can_read() => Ok(()),
            Some(_) => Err(StoreError::Access),
            None => Err(missing(v, caller, up)),
        };
    };
    if !node.perms.access(caller).can_write() {
        return Err(StoreError::Access);
    }
    let perms = node.perms.clone();
    // Every node below, removed deepest last in the order found.
    let mut stack = alloc::vec![(String::from(path), node)];
    while let Some((p, n)) = stack.pop() {
        for child in &n.children {
            let cp = join(&p, child);
            if let Some(cn) = v.get(&cp)? {
                stack.push((cp, cn));
            }
        }
        v.put(&p, None)?;
    }
    if let Some(mut p) = v.get(up)? {
        p.children.remove(leaf(path));
        v.put(up, Some(p))?;
    }
    changes.push(Change::subtree(path, perms));
    Ok(())
}

/// `SET_PERMS`. A domain other than dom0 must own the node and cannot give it away.
pub fn set_perms(
    v: &mut impl View,
    caller: DomId,
    path: &str,
    perms: Perms,
    changes: &mut Vec<Change>,
) -> Result<(), StoreError> {
    let mut n = get_checked(v, caller, path, Access::can_write)?;
    let old = n.perms.clone();
    if !privileged(caller) {
        if old.owner() != caller {
            return Err(StoreError::Access);
        }
        if perms.owner() != old.owner() {
            return Err(StoreError::Perm);
        }
        quota::check_node_size(n.value.len(), perms.cost(), perms.entries().len())?;
        v.usage(caller)
            .check_bytes(perms.cost().saturating_sub(old.cost()))?;
    }
    n.perms = perms;
    v.put(path, Some(n))?;
    changes.push(Change::node(path, old));
    Ok(())
}

/// Whether the tree is consistent: every node but `/` has its parent, which lists it,
/// and every child listed exists (for tests).
pub fn consistent(tree: &Tree) -> bool {
    tree.nodes.iter().all(|(p, n)| {
        let parent_ok = match parent(p) {
            None => p == "/",
            Some(up) => tree
                .node(up)
                .is_some_and(|u| u.children.contains(leaf(p)) && is_child(p, up)),
        };
        parent_ok && n.children.iter().all(|c| tree.node(&join(p, c)).is_some())
    })
}
