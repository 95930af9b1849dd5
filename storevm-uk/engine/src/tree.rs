//! The node tree, and the transaction overlay that reads and writes it.
//!
//! The tree maps absolute paths to [`Node`]s; every node but the root has
//! its parent, which lists it among its children. Each change to a node
//! stamps it with a fresh generation number. A transaction is an overlay
//! over the tree plus the generation of every tree node it looked at; it
//! commits only if none of those nodes changed meanwhile (otherwise
//! `EAGAIN`). A read of a missing path records its nearest existing
//! ancestor instead, whose child list changes when the path is created, so
//! the record stays bounded by the nodes that exist.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

use crate::path;
use crate::perms::Permissions;
use crate::DomId;

/// One node: a value, permissions and children.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// The value (binary).
    pub value: Vec<u8>,
    /// Its permissions.
    pub perms: Permissions,
    /// Names (last components) of its children.
    children: BTreeSet<String>,
    /// Bytes of the child list on the wire (each name plus a NUL).
    children_len: usize,
    /// Generation: changes whenever the node does.
    pub generation: u64,
}

impl Node {
    /// A childless node.
    pub fn new(value: Vec<u8>, perms: Permissions) -> Node {
        Node {
            value,
            perms,
            children: BTreeSet::new(),
            children_len: 0,
            generation: 0,
        }
    }

    /// Child names, sorted.
    pub fn children(&self) -> impl Iterator<Item = &str> {
        self.children.iter().map(String::as_str)
    }

    /// Number of children.
    pub fn child_count(&self) -> usize {
        self.children.len()
    }

    /// Whether `name` is a child.
    pub fn has_child(&self, name: &str) -> bool {
        self.children.contains(name)
    }

    /// Adds a child name.
    pub fn add_child(&mut self, name: &str) {
        if self.children.insert(String::from(name)) {
            self.children_len = self
                .children_len
                .saturating_add(name.len().saturating_add(1));
        }
    }

    /// Removes a child name.
    pub fn remove_child(&mut self, name: &str) {
        if self.children.remove(name) {
            self.children_len = self
                .children_len
                .saturating_sub(name.len().saturating_add(1));
        }
    }

    /// The `XS_DIRECTORY` payload: each child name NUL-terminated.
    pub fn child_list(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.children_len);
        for c in &self.children {
            out.extend_from_slice(c.as_bytes());
            out.push(0);
        }
        out
    }

    /// The size the entry-size quota measures: value, child list and 8
    /// bytes per permission entry (xenstored's record without its header).
    pub fn entry_size(&self) -> usize {
        self.value
            .len()
            .saturating_add(self.children_len)
            .saturating_add(self.perms.len().saturating_mul(8))
    }
}

/// Reads and writes of nodes, on the tree itself or through a transaction.
pub trait View {
    /// The node at `p`.
    fn get(&mut self, p: &str) -> Option<&Node>;
    /// Stores `node` at `p` (its parent must already list it).
    fn put(&mut self, p: &str, node: Node);
    /// Removes the node at `p` alone (not its children).
    fn delete(&mut self, p: &str);
    /// Nodes owned by `domid` as this view sees them.
    fn owned(&self, domid: DomId) -> usize;
    /// Whether this is a transaction.
    fn in_transaction(&self) -> bool;
}

/// The tree.
#[derive(Clone, Debug)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
    owned: BTreeMap<DomId, usize>,
    next_generation: u64,
}

impl Tree {
    /// A tree holding the root, owned by `owner` with no default access.
    pub fn new(root_perms: Permissions) -> Tree {
        let mut t = Tree {
            nodes: BTreeMap::new(),
            owned: BTreeMap::new(),
            next_generation: 1,
        };
        t.put("/", Node::new(Vec::new(), root_perms));
        t
    }

    /// The node at `p`.
    pub fn node(&self, p: &str) -> Option<&Node> {
        self.nodes.get(p)
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Never true: the root always exists.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Nodes owned by `domid`.
    pub fn owned_by(&self, domid: DomId) -> usize {
        self.owned.get(&domid).copied().unwrap_or(0)
    }

    /// Every path, sorted (for tests and consistency checks).
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }

    fn count(&mut self, domid: DomId, add: bool) {
        let c = self.owned.entry(domid).or_insert(0);
        *c = if add {
            c.saturating_add(1)
        } else {
            c.saturating_sub(1)
        };
        if *c == 0 {
            self.owned.remove(&domid);
        }
    }

    /// Rewrites every node's permissions with `f` (used when a domain goes
    /// away); nodes whose permissions change get a new generation.
    pub fn rewrite_perms(&mut self, mut f: impl FnMut(&mut Permissions)) {
        let mut owned = BTreeMap::new();
        for node in self.nodes.values_mut() {
            let before = node.perms.clone();
            f(&mut node.perms);
            if node.perms != before {
                node.generation = self.next_generation;
                self.next_generation = self.next_generation.wrapping_add(1);
            }
            let c: &mut usize = owned.entry(node.perms.owner()).or_insert(0);
            *c = c.saturating_add(1);
        }
        self.owned = owned;
    }
}

impl View for Tree {
    fn get(&mut self, p: &str) -> Option<&Node> {
        self.nodes.get(p)
    }

    fn put(&mut self, p: &str, mut node: Node) {
        node.generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let new_owner = node.perms.owner();
        if let Some(old) = self.nodes.insert(String::from(p), node) {
            self.count(old.perms.owner(), false);
        }
        self.count(new_owner, true);
    }

    fn delete(&mut self, p: &str) {
        if let Some(old) = self.nodes.remove(p) {
            self.count(old.perms.owner(), false);
        }
    }

    fn owned(&self, domid: DomId) -> usize {
        self.owned_by(domid)
    }

    fn in_transaction(&self) -> bool {
        false
    }
}

/// A transaction's private state.
#[derive(Clone, Debug, Default)]
pub struct TxState {
    /// Nodes written (`Some`) or removed (`None`) by the transaction.
    overlay: BTreeMap<String, Option<Node>>,
    /// Generation of every tree node the transaction depends on.
    seen: BTreeMap<String, u64>,
    /// Change in node ownership counts, per domain.
    owned_delta: BTreeMap<DomId, isize>,
    /// Watch-relevant changes, fired on commit.
    pub(crate) changes: Vec<crate::store::Change>,
}

impl TxState {
    /// Whether every node the transaction depends on is unchanged in `tree`.
    pub fn is_current(&self, tree: &Tree) -> bool {
        self.seen
            .iter()
            .all(|(p, g)| tree.node(p).map(|n| n.generation) == Some(*g))
    }

    /// Applies the overlay to `tree`. Call only when [`Self::is_current`].
    pub(crate) fn apply(self, tree: &mut Tree) -> Vec<crate::store::Change> {
        for (p, n) in self.overlay {
            match n {
                Some(node) => tree.put(&p, node),
                None => tree.delete(&p),
            }
        }
        self.changes
    }

    /// Nodes `domid` would own after the commit, from `tree`'s count.
    pub fn owned_after(&self, tree: &Tree, domid: DomId) -> usize {
        let base = tree.owned_by(domid);
        match self.owned_delta.get(&domid) {
            Some(&d) if d >= 0 => base.saturating_add(d.unsigned_abs()),
            Some(&d) => base.saturating_sub(d.unsigned_abs()),
            None => base,
        }
    }

    /// Domains whose ownership count the transaction raises.
    pub fn growing_owners(&self) -> impl Iterator<Item = DomId> + '_ {
        self.owned_delta
            .iter()
            .filter(|(_, d)| **d > 0)
            .map(|(id, _)| *id)
    }

    /// Number of paths in the overlay and dependency record.
    pub fn footprint(&self) -> usize {
        self.overlay.len().saturating_add(self.seen.len())
    }
}

/// A transaction's view of the tree.
pub struct TxView<'a> {
    /// The tree under the transaction.
    pub tree: &'a Tree,
    /// The transaction.
    pub tx: &'a mut TxState,
}

impl TxView<'_> {
    /// Records the tree node `p` (or its nearest existing ancestor) as a
    /// dependency.
    fn depend(&mut self, p: &str) {
        let mut cur = p;
        loop {
            if self.tx.seen.contains_key(cur) {
                return;
            }
            if let Some(n) = self.tree.node(cur) {
                self.tx.seen.insert(String::from(cur), n.generation);
                return;
            }
            match path::parent(cur) {
                Some(parent) => cur = parent,
                None => return,
            }
        }
    }

    fn visible_owner(&mut self, p: &str) -> Option<DomId> {
        self.get(p).map(|n| n.perms.owner())
    }

    fn adjust(&mut self, domid: DomId, add: bool) {
        let d = self.tx.owned_delta.entry(domid).or_insert(0);
        *d = if add {
            d.saturating_add(1)
        } else {
            d.saturating_sub(1)
        };
    }
}

impl View for TxView<'_> {
    fn get(&mut self, p: &str) -> Option<&Node> {
        if self.tx.overlay.contains_key(p) {
            return self.tx.overlay.get(p).and_then(Option::as_ref);
        }
        self.depend(p);
        self.tree.node(p)
    }

    fn put(&mut self, p: &str, node: Node) {
        let old = self.visible_owner(p);
        if let Some(o) = old {
            self.adjust(o, false);
        }
        self.adjust(node.perms.owner(), true);
        self.tx.overlay.insert(String::from(p), Some(node));
    }

    fn delete(&mut self, p: &str) {
        if let Some(o) = self.visible_owner(p) {
            self.adjust(o, false);
        }
        self.tx.overlay.insert(String::from(p), None);
    }

    fn owned(&self, domid: DomId) -> usize {
        self.tx.owned_after(self.tree, domid)
    }

    fn in_transaction(&self) -> bool {
        true
    }
}
