//! The store: requests in, replies and watch events out.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use crate::path::{self, INTRODUCE_DOMAIN, RELEASE_DOMAIN};
use crate::perms::{Access, Caller, Permissions, Rights};
use crate::tree::{Node, Tree, TxState, TxView, View};
use crate::wire::{
    self, ErrorCode, Header, MsgType, Request, WireError, DOMID_FIRST_RESERVED, PAYLOAD_MAX,
};
use crate::DomId;

/// Per-domain limits for unprivileged domains (privileged ones have none).
/// The defaults are xenstored's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Nodes a domain may own (`ENOSPC` beyond).
    pub max_nodes: usize,
    /// Largest node entry (value + child list + 8 bytes per permission;
    /// `ENOSPC` beyond).
    pub max_entry_size: usize,
    /// Watches per domain (`E2BIG` beyond).
    pub max_watches: usize,
    /// Open transactions per domain (`ENOSPC` beyond).
    pub max_transactions: usize,
    /// Permission entries per node (`ENOSPC` beyond).
    pub max_perms: usize,
}

impl Default for Quota {
    fn default() -> Quota {
        Quota {
            max_nodes: 1000,
            max_entry_size: 2048,
            max_watches: 128,
            max_transactions: 10,
            max_perms: 5,
        }
    }
}

/// How the store is set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Privileged domains (full access, always connected, may introduce and
    /// release others). The first one takes over the nodes of a released
    /// domain. Default: dom0.
    pub privileged: Vec<DomId>,
    /// Limits for everyone else.
    pub quota: Quota,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            privileged: vec![0],
            quota: Quota::default(),
        }
    }
}

/// One message for one domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing {
    /// The domain to send it to.
    pub to: DomId,
    /// The whole message, header included.
    pub msg: Vec<u8>,
}

/// Something the transport has to act on besides sending messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainEvent {
    /// A domain was introduced: connect its ring.
    Introduced {
        /// The domain.
        domid: DomId,
        /// Frame of its ring page, as given.
        mfn: i64,
        /// Its event channel, as given.
        evtchn: u32,
    },
    /// A domain was released: disconnect its ring.
    Released {
        /// The domain.
        domid: DomId,
    },
}

/// Everything one call produced, in the order it should be sent: the reply
/// to the request first, then watch events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Output {
    /// Messages, each for one domain.
    pub messages: Vec<Outgoing>,
    /// Domains to connect or disconnect.
    pub domain_events: Vec<DomainEvent>,
}

impl Output {
    /// Messages for `domid`.
    pub fn for_domain(&self, domid: DomId) -> impl Iterator<Item = &[u8]> {
        self.messages
            .iter()
            .filter(move |m| m.to == domid)
            .map(|m| m.msg.as_slice())
    }

    fn push(&mut self, to: DomId, msg_type: u32, req_id: u32, tx_id: u32, payload: &[u8]) {
        match wire::encode(msg_type, req_id, tx_id, payload) {
            Some(msg) => self.messages.push(Outgoing { to, msg }),
            None => self.push_error(to, req_id, tx_id, ErrorCode::E2big),
        }
    }

    fn push_error(&mut self, to: DomId, req_id: u32, tx_id: u32, code: ErrorCode) {
        let mut payload = Vec::from(code.as_str().as_bytes());
        payload.push(0);
        if let Some(msg) = wire::encode(MsgType::Error.code(), req_id, tx_id, &payload) {
            self.messages.push(Outgoing { to, msg });
        }
    }
}

/// A change watches may fire on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    /// The node changed (or the special event's name).
    path: String,
    /// Fires only watches on exactly this path (nodes removed with a parent).
    exact: bool,
    /// A watcher must be able to read under one of these (the node's,
    /// its parent's, its old permissions).
    perms: Vec<Permissions>,
}

#[derive(Clone, Debug)]
struct Watch {
    /// Canonical path or `@special`.
    path: String,
    token: Vec<u8>,
    relative: bool,
}

#[derive(Clone, Debug, Default)]
struct Conn {
    /// `Some` once introduced (privileged domains need no introduction).
    ring: Option<(i64, u32)>,
    watches: Vec<Watch>,
    txs: BTreeMap<u32, TxState>,
    next_tx: u32,
    target: Option<DomId>,
}

/// The xenstore engine.
#[derive(Clone, Debug)]
pub struct Store {
    config: Config,
    tree: Tree,
    conns: BTreeMap<DomId, Conn>,
    special_introduce: Permissions,
    special_release: Permissions,
}

const OK: &[u8] = b"OK\0";
const READ: Rights = Rights {
    read: true,
    write: false,
    owner: false,
};
const WRITE: Rights = Rights {
    read: false,
    write: true,
    owner: false,
};
const WRITE_OWNER: Rights = Rights {
    read: false,
    write: true,
    owner: true,
};

impl Store {
    /// A store with `/`, `/local` and `/local/domain`, owned by the first
    /// privileged domain with no access for others.
    pub fn new(config: Config) -> Store {
        let admin = config.privileged.first().copied().unwrap_or(0);
        let admin_only = Permissions::owned(admin, Access::None);
        let mut tree = Tree::new(admin_only.clone());
        let mut root = Node::new(Vec::new(), admin_only.clone());
        root.add_child("local");
        tree.put("/", root);
        let mut local = Node::new(Vec::new(), admin_only.clone());
        local.add_child("domain");
        tree.put("/local", local);
        tree.put("/local/domain", Node::new(Vec::new(), admin_only.clone()));
        Store {
            config,
            tree,
            conns: BTreeMap::new(),
            special_introduce: admin_only.clone(),
            special_release: admin_only,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The committed tree (read-only).
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// Whether `domid` is privileged.
    pub fn is_privileged(&self, domid: DomId) -> bool {
        self.config.privileged.contains(&domid)
    }

    /// Whether `domid` may talk to the store: privileged, or introduced.
    pub fn is_connected(&self, domid: DomId) -> bool {
        self.is_privileged(domid) || self.conns.get(&domid).is_some_and(|c| c.ring.is_some())
    }

    /// Domains introduced and not yet released.
    pub fn introduced(&self) -> impl Iterator<Item = DomId> + '_ {
        self.conns
            .iter()
            .filter(|(_, c)| c.ring.is_some())
            .map(|(d, _)| *d)
    }

    /// Watches `domid` has set.
    pub fn watch_count(&self, domid: DomId) -> usize {
        self.conns.get(&domid).map_or(0, |c| c.watches.len())
    }

    /// Transactions `domid` has open.
    pub fn transaction_count(&self, domid: DomId) -> usize {
        self.conns.get(&domid).map_or(0, |c| c.txs.len())
    }

    fn caller(&self, domid: DomId) -> Caller {
        Caller {
            domid,
            privileged: self.is_privileged(domid),
            target: self.conns.get(&domid).and_then(|c| c.target),
        }
    }

    /// Handles one complete message from `from` (header and payload).
    ///
    /// Malformed framing, unknown types, bad payloads, missing rights and
    /// quota violations all get an `XS_ERROR` reply with the protocol's
    /// error name; nothing panics. A domain that is neither privileged nor
    /// introduced gets `EACCES`.
    pub fn handle(&mut self, from: DomId, msg: &[u8]) -> Output {
        let mut out = Output::default();
        let (header, payload) = match wire::parse_message(msg) {
            Ok(v) => v,
            Err(e) => {
                let h = Header::parse(msg).unwrap_or_default();
                let code = match e {
                    WireError::PayloadTooLong(_) => ErrorCode::E2big,
                    _ => ErrorCode::Einval,
                };
                out.push_error(from, h.req_id, h.tx_id, code);
                return out;
            }
        };
        if !self.is_connected(from) {
            out.push_error(from, header.req_id, header.tx_id, ErrorCode::Eacces);
            return out;
        }
        let mut after = Output::default();
        match self.dispatch(from, &header, payload, &mut after) {
            Ok(reply) => out.push(from, header.msg_type, header.req_id, header.tx_id, &reply),
            Err(code) => out.push_error(from, header.req_id, header.tx_id, code),
        }
        out.messages.append(&mut after.messages);
        out.domain_events.append(&mut after.domain_events);
        out
    }

    /// Introduces `domid` directly (as `XS_INTRODUCE` from a privileged
    /// domain would), for a VMM that sets domains up itself.
    pub fn introduce(&mut self, domid: DomId, mfn: i64, evtchn: u32) -> Result<Output, ErrorCode> {
        let mut out = Output::default();
        self.do_introduce(domid, mfn, evtchn, &mut out)?;
        Ok(out)
    }

    /// Forgets a domain that went away (as `XS_RELEASE` would): its watches
    /// and transactions go, its nodes pass to the first privileged domain,
    /// permission entries naming it are dropped, `@releaseDomain` fires.
    pub fn release(&mut self, domid: DomId) -> Result<Output, ErrorCode> {
        let mut out = Output::default();
        self.do_release(domid, &mut out)?;
        Ok(out)
    }

    fn dispatch(
        &mut self,
        from: DomId,
        header: &Header,
        payload: &[u8],
        out: &mut Output,
    ) -> Result<Vec<u8>, ErrorCode> {
        let kind = header.kind().ok_or(ErrorCode::Enosys)?;
        if matches!(kind, MsgType::WatchEvent | MsgType::Error) {
            return Err(ErrorCode::Enosys);
        }
        let caller = self.caller(from);
        if kind.privileged_only() && !caller.privileged {
            return Err(ErrorCode::Eacces);
        }
        let tx_id = if kind.ignores_tx_id() {
            0
        } else {
            header.tx_id
        };
        if tx_id != 0
            && !self
                .conns
                .get(&from)
                .is_some_and(|c| c.txs.contains_key(&tx_id))
        {
            return Err(ErrorCode::Enoent);
        }
        let request = wire::parse_request(kind, payload)?;
        if kind.transactional() {
            return self.run_node_op(caller, tx_id, &request, out);
        }
        match request {
            Request::Watch { path, token } => self.do_watch(caller, path, token, out),
            Request::Unwatch { path, token } => {
                let (canon, _) = path::canonicalize_watch(from, path)?;
                let conn = self.conns.entry(from).or_default();
                let pos = conn
                    .watches
                    .iter()
                    .position(|w| w.path == canon && w.token == token)
                    .ok_or(ErrorCode::Enoent)?;
                conn.watches.remove(pos);
                Ok(OK.into())
            }
            Request::TransactionStart => {
                if tx_id != 0 {
                    return Err(ErrorCode::Ebusy);
                }
                let max = self.config.quota.max_transactions;
                let conn = self.conns.entry(from).or_default();
                if !caller.privileged && conn.txs.len() >= max {
                    return Err(ErrorCode::Enospc);
                }
                let mut id = conn.next_tx;
                while id == 0 || conn.txs.contains_key(&id) {
                    id = id.wrapping_add(1);
                }
                conn.next_tx = id.wrapping_add(1);
                conn.txs.insert(id, TxState::default());
                Ok(format!("{id}\0").into_bytes())
            }
            Request::TransactionEnd { commit } => {
                let tx = self
                    .conns
                    .get_mut(&from)
                    .and_then(|c| c.txs.remove(&tx_id))
                    .ok_or(ErrorCode::Enoent)?;
                if !commit {
                    return Ok(OK.into());
                }
                if !tx.is_current(&self.tree) {
                    return Err(ErrorCode::Eagain);
                }
                if !caller.privileged
                    && tx.growing_owners().any(|d| {
                        d == from && tx.owned_after(&self.tree, d) > self.config.quota.max_nodes
                    })
                {
                    return Err(ErrorCode::Enospc);
                }
                let changes = tx.apply(&mut self.tree);
                self.fire(&changes, out);
                Ok(OK.into())
            }
            Request::Introduce { domid, mfn, evtchn } => {
                self.do_introduce(domid, mfn, evtchn, out)?;
                Ok(OK.into())
            }
            Request::Release { domid } => {
                self.do_release(domid, out)?;
                Ok(OK.into())
            }
            Request::GetDomainPath { domid } => {
                let mut p = path::domain_path(domid).into_bytes();
                p.push(0);
                Ok(p)
            }
            Request::IsDomainIntroduced { domid } => Ok(if self.is_connected(domid) {
                b"T\0".to_vec()
            } else {
                b"F\0".to_vec()
            }),
            Request::Resume { domid } => {
                if self.is_connected(domid) {
                    Ok(OK.into())
                } else {
                    Err(ErrorCode::Enoent)
                }
            }
            Request::SetTarget { domid, target } => {
                if !self.is_connected(domid) || !self.is_connected(target) || domid == target {
                    return Err(if domid == target {
                        ErrorCode::Einval
                    } else {
                        ErrorCode::Enoent
                    });
                }
                self.conns.entry(domid).or_default().target = Some(target);
                Ok(OK.into())
            }
            Request::ResetWatches => {
                let conn = self.conns.entry(from).or_default();
                conn.watches.clear();
                conn.txs.clear();
                Ok(OK.into())
            }
            Request::Control { args } => match args.first().copied() {
                Some(b"print") => Ok(OK.into()),
                Some(b"help") => Ok(b"print\nhelp\n\0".to_vec()),
                _ => Err(ErrorCode::Einval),
            },
            // Transactional requests were handled above.
            _ => Err(ErrorCode::Einval),
        }
    }

    /// Runs a request on nodes, directly or inside transaction `tx_id`.
    fn run_node_op(
        &mut self,
        caller: Caller,
        tx_id: u32,
        request: &Request<'_>,
        out: &mut Output,
    ) -> Result<Vec<u8>, ErrorCode> {
        // Special paths are not nodes.
        match request {
            Request::GetPerms { path } | Request::SetPerms { path, .. }
                if path.starts_with('@') =>
            {
                return self.special_perms(caller, path, request);
            }
            _ => {}
        }
        let quota = self.config.quota;
        let mut changes = Vec::new();
        let reply = if tx_id == 0 {
            node_op(&mut self.tree, caller, &quota, request, &mut changes)?
        } else {
            let tx = self
                .conns
                .get_mut(&caller.domid)
                .and_then(|c| c.txs.get_mut(&tx_id))
                .ok_or(ErrorCode::Enoent)?;
            let mut view = TxView {
                tree: &self.tree,
                tx,
            };
            let reply = node_op(&mut view, caller, &quota, request, &mut changes)?;
            view.tx.changes.append(&mut changes);
            reply
        };
        self.fire(&changes, out);
        Ok(reply)
    }

    fn special_perms(
        &mut self,
        caller: Caller,
        p: &str,
        request: &Request<'_>,
    ) -> Result<Vec<u8>, ErrorCode> {
        let slot = match p {
            INTRODUCE_DOMAIN => &mut self.special_introduce,
            RELEASE_DOMAIN => &mut self.special_release,
            _ => return Err(ErrorCode::Einval),
        };
        match request {
            Request::GetPerms { .. } => {
                if !slot.rights(&caller).read {
                    return Err(ErrorCode::Eacces);
                }
                Ok(slot.to_wire())
            }
            Request::SetPerms { perms, .. } => {
                if !slot.rights(&caller).covers(WRITE_OWNER) {
                    return Err(ErrorCode::Eacces);
                }
                if !caller.privileged && perms.owner() != slot.owner() {
                    return Err(ErrorCode::Eperm);
                }
                *slot = perms.clone();
                Ok(OK.into())
            }
            _ => Err(ErrorCode::Einval),
        }
    }

    fn do_watch(
        &mut self,
        caller: Caller,
        raw: &str,
        token: &[u8],
        out: &mut Output,
    ) -> Result<Vec<u8>, ErrorCode> {
        let (canon, relative) = path::canonicalize_watch(caller.domid, raw)?;
        let max = self.config.quota.max_watches;
        let conn = self.conns.entry(caller.domid).or_default();
        if conn
            .watches
            .iter()
            .any(|w| w.path == canon && w.token == token)
        {
            return Err(ErrorCode::Eexist);
        }
        if !caller.privileged && conn.watches.len() >= max {
            return Err(ErrorCode::E2big);
        }
        conn.watches.push(Watch {
            path: canon,
            token: token.to_vec(),
            relative,
        });
        // Fired once straight away, with the path as the client gave it.
        let mut payload = Vec::from(raw.as_bytes());
        payload.push(0);
        payload.extend_from_slice(token);
        payload.push(0);
        if let Some(msg) = wire::encode(MsgType::WatchEvent.code(), 0, 0, &payload) {
            out.messages.push(Outgoing {
                to: caller.domid,
                msg,
            });
        }
        Ok(OK.into())
    }

    fn do_introduce(
        &mut self,
        domid: DomId,
        mfn: i64,
        evtchn: u32,
        out: &mut Output,
    ) -> Result<(), ErrorCode> {
        if domid == 0 || self.is_privileged(domid) || u32::from(domid) >= DOMID_FIRST_RESERVED {
            return Err(ErrorCode::Einval);
        }
        let conn = self.conns.entry(domid).or_default();
        match conn.ring {
            Some(r) if r == (mfn, evtchn) => return Ok(()),
            Some(_) => return Err(ErrorCode::Eexist),
            None => conn.ring = Some((mfn, evtchn)),
        }
        out.domain_events
            .push(DomainEvent::Introduced { domid, mfn, evtchn });
        let perms = vec![self.special_introduce.clone()];
        self.fire(
            &[Change {
                path: String::from(INTRODUCE_DOMAIN),
                exact: false,
                perms,
            }],
            out,
        );
        Ok(())
    }

    fn do_release(&mut self, domid: DomId, out: &mut Output) -> Result<(), ErrorCode> {
        if domid == 0 || self.is_privileged(domid) || u32::from(domid) >= DOMID_FIRST_RESERVED {
            return Err(ErrorCode::Einval);
        }
        if self.conns.get(&domid).is_none_or(|c| c.ring.is_none()) {
            return Err(ErrorCode::Enoent);
        }
        self.conns.remove(&domid);
        for c in self.conns.values_mut() {
            if c.target == Some(domid) {
                c.target = None;
            }
        }
        // A later domain with the same id must not inherit anything.
        let admin = self.config.privileged.first().copied().unwrap_or(0);
        let fix = |p: &mut Permissions| {
            if p.owner() == domid {
                p.set_owner(admin);
            }
            p.forget(domid);
        };
        self.tree.rewrite_perms(fix);
        fix(&mut self.special_introduce);
        fix(&mut self.special_release);
        out.domain_events.push(DomainEvent::Released { domid });
        let perms = vec![self.special_release.clone()];
        self.fire(
            &[Change {
                path: String::from(RELEASE_DOMAIN),
                exact: false,
                perms,
            }],
            out,
        );
        Ok(())
    }

    /// Sends an event for each (watch, event path) pair the changes hit,
    /// once per pair, to watchers allowed to see it.
    fn fire(&self, changes: &[Change], out: &mut Output) {
        if changes.is_empty() {
            return;
        }
        for (&domid, conn) in &self.conns {
            let caller = Caller {
                domid,
                privileged: self.is_privileged(domid),
                target: conn.target,
            };
            let home = path::domain_path(domid);
            for w in &conn.watches {
                let mut sent: BTreeSet<&str> = BTreeSet::new();
                for ch in changes {
                    let hit = if ch.exact {
                        ch.path == w.path
                    } else {
                        path::is_child(&ch.path, &w.path)
                    };
                    if !hit || !ch.perms.iter().any(|p| p.rights(&caller).read) {
                        continue;
                    }
                    let epath = if w.relative {
                        path::relative_to(&ch.path, &home)
                    } else {
                        ch.path.as_str()
                    };
                    if !sent.insert(epath) {
                        continue;
                    }
                    let mut payload = Vec::from(epath.as_bytes());
                    payload.push(0);
                    payload.extend_from_slice(&w.token);
                    payload.push(0);
                    // Over-long events are dropped, as xenstored does.
                    if let Some(msg) = wire::encode(MsgType::WatchEvent.code(), 0, 0, &payload) {
                        out.messages.push(Outgoing { to: domid, msg });
                    }
                }
            }
        }
    }
}

/// Runs one node request against `view`.
fn node_op(
    view: &mut dyn View,
    caller: Caller,
    quota: &Quota,
    request: &Request<'_>,
    changes: &mut Vec<Change>,
) -> Result<Vec<u8>, ErrorCode> {
    let cx = Cx { caller, quota };
    let canon = |raw: &str| path::canonicalize(caller.domid, raw);
    match request {
        Request::Read { path } => {
            let p = canon(path)?;
            cx.check(view, &p, READ)?;
            Ok(view.get(&p).map(|n| n.value.clone()).unwrap_or_default())
        }
        Request::Directory { path } => {
            let p = canon(path)?;
            cx.check(view, &p, READ)?;
            Ok(view.get(&p).map(Node::child_list).unwrap_or_default())
        }
        Request::DirectoryPart { path, offset } => {
            let p = canon(path)?;
            cx.check(view, &p, READ)?;
            let (generation, list) = view
                .get(&p)
                .map(|n| (n.generation, n.child_list()))
                .ok_or(ErrorCode::Enoent)?;
            Ok(directory_part(generation, &list, *offset as usize))
        }
        Request::GetPerms { path } => {
            let p = canon(path)?;
            cx.check(view, &p, READ)?;
            Ok(view.get(&p).map(|n| n.perms.to_wire()).unwrap_or_default())
        }
        Request::Write { path, value } => {
            let p = canon(path)?;
            match cx.check(view, &p, WRITE) {
                Ok(()) => {
                    let mut node = view.get(&p).cloned().ok_or(ErrorCode::Enoent)?;
                    node.value = value.to_vec();
                    cx.check_entry(&node)?;
                    let perms = cx.change_perms(view, &p, &node.perms);
                    view.put(&p, node);
                    changes.push(Change {
                        path: p,
                        exact: false,
                        perms,
                    });
                }
                Err(ErrorCode::Enoent) => cx.create(view, &p, value, changes)?,
                Err(e) => return Err(e),
            }
            Ok(OK.into())
        }
        Request::Mkdir { path } => {
            let p = canon(path)?;
            match cx.check(view, &p, WRITE) {
                Ok(()) => {}
                Err(ErrorCode::Enoent) => cx.create(view, &p, &[], changes)?,
                Err(e) => return Err(e),
            }
            Ok(OK.into())
        }
        Request::Rm { path } => {
            let p = canon(path)?;
            match cx.check(view, &p, WRITE) {
                Ok(()) => cx.remove(view, &p, changes)?,
                Err(ErrorCode::Enoent) => {
                    let parent = path::parent(&p).ok_or(ErrorCode::Enoent)?;
                    if view.get(parent).is_none() {
                        return Err(ErrorCode::Enoent);
                    }
                }
                Err(e) => return Err(e),
            }
            Ok(OK.into())
        }
        Request::SetPerms { path, perms } => {
            let p = canon(path)?;
            if !caller.privileged && perms.len() > quota.max_perms {
                return Err(ErrorCode::Enospc);
            }
            cx.check(view, &p, WRITE_OWNER)?;
            let mut node = view.get(&p).cloned().ok_or(ErrorCode::Enoent)?;
            if !caller.privileged && perms.owner() != node.perms.owner() {
                return Err(ErrorCode::Eperm);
            }
            let old = core::mem::replace(&mut node.perms, perms.clone());
            cx.check_entry(&node)?;
            let mut candidates = cx.change_perms(view, &p, &node.perms);
            candidates.push(old);
            view.put(&p, node);
            changes.push(Change {
                path: p,
                exact: false,
                perms: candidates,
            });
            Ok(OK.into())
        }
        _ => Err(ErrorCode::Einval),
    }
}

/// `XS_DIRECTORY_PART`'s reply: the generation, then as many whole child
/// names from byte `offset` on as fit, and an empty string at the end of
/// the list.
fn directory_part(generation: u64, list: &[u8], offset: usize) -> Vec<u8> {
    let mut out = format!("{generation}\0").into_bytes();
    let Some(rest) = list.get(offset..).filter(|r| !r.is_empty()) else {
        out.push(0);
        return out;
    };
    let room = PAYLOAD_MAX.saturating_sub(out.len()).saturating_sub(1);
    let mut taken = 0usize;
    let mut complete = true;
    for name in rest.split_inclusive(|&b| b == 0) {
        if taken.saturating_add(name.len()) > room {
            complete = false;
            break;
        }
        taken = taken.saturating_add(name.len());
    }
    out.extend_from_slice(rest.get(..taken).unwrap_or_default());
    if complete {
        out.push(0);
    }
    out
}

/// Per-request context for node operations.
struct Cx<'q> {
    caller: Caller,
    quota: &'q Quota,
}

impl Cx<'_> {
    /// Whether the caller has `want` on `p`; otherwise the error, which is
    /// `EACCES` unless the nearest existing ancestor would grant `want`
    /// (so that existence leaks only to those who may know).
    fn check(&self, view: &mut dyn View, p: &str, want: Rights) -> Result<(), ErrorCode> {
        let err = match view.get(p) {
            Some(n) if n.perms.rights(&self.caller).covers(want) => return Ok(()),
            Some(_) => ErrorCode::Eacces,
            None => ErrorCode::Enoent,
        };
        let mut cur = p;
        while let Some(parent) = path::parent(cur) {
            if let Some(n) = view.get(parent) {
                return Err(if n.perms.rights(&self.caller).covers(want) {
                    err
                } else {
                    ErrorCode::Eacces
                });
            }
            cur = parent;
        }
        Err(err)
    }

    fn check_entry(&self, node: &Node) -> Result<(), ErrorCode> {
        if !self.caller.privileged && node.entry_size() > self.quota.max_entry_size {
            return Err(ErrorCode::Enospc);
        }
        Ok(())
    }

    /// The permissions a watcher may read under to see a change at `p`.
    fn change_perms(&self, view: &mut dyn View, p: &str, own: &Permissions) -> Vec<Permissions> {
        let mut v = vec![own.clone()];
        if let Some(parent) = path::parent(p).and_then(|pp| view.get(pp)) {
            v.push(parent.perms.clone());
        }
        v
    }

    /// Creates `p` with `value`, and any missing parents with empty values.
    /// New nodes inherit the nearest existing ancestor's permissions; an
    /// unprivileged creator owns them.
    fn create(
        &self,
        view: &mut dyn View,
        p: &str,
        value: &[u8],
        changes: &mut Vec<Change>,
    ) -> Result<(), ErrorCode> {
        let mut missing: Vec<&str> = vec![p];
        let mut cur = path::parent(p).ok_or(ErrorCode::Einval)?;
        while view.get(cur).is_none() {
            missing.push(cur);
            cur = path::parent(cur).ok_or(ErrorCode::Eio)?;
        }
        let existing = cur;
        let mut parent = view.get(existing).cloned().ok_or(ErrorCode::Eio)?;
        let mut perms = parent.perms.clone();
        if !self.caller.privileged {
            perms.set_owner(self.caller.domid);
            let owned = view.owned(self.caller.domid);
            if owned.saturating_add(missing.len()) > self.quota.max_nodes {
                return Err(ErrorCode::Enospc);
            }
        }
        // Top-down: each new node lists the next one as its child.
        let mut top_down: Vec<(&str, Node)> = Vec::with_capacity(missing.len());
        let mut iter = missing.iter().rev().peekable();
        while let Some(&m) = iter.next() {
            let v = if m == p { value.to_vec() } else { Vec::new() };
            let mut node = Node::new(v, perms.clone());
            if let Some(&&child) = iter.peek() {
                node.add_child(path::basename(child));
            }
            self.check_entry(&node)?;
            top_down.push((m, node));
        }
        let first = top_down.first().map(|(m, _)| *m).ok_or(ErrorCode::Eio)?;
        parent.add_child(path::basename(first));
        self.check_entry(&parent)?;
        let parent_perms = parent.perms.clone();
        view.put(existing, parent);
        for (m, node) in top_down {
            view.put(m, node);
        }
        changes.push(Change {
            path: String::from(p),
            exact: false,
            perms: vec![perms, parent_perms],
        });
        Ok(())
    }

    /// Removes `p` and its subtree.
    fn remove(
        &self,
        view: &mut dyn View,
        p: &str,
        changes: &mut Vec<Change>,
    ) -> Result<(), ErrorCode> {
        let parent_path = path::parent(p).ok_or(ErrorCode::Einval)?;
        let mut parent = view.get(parent_path).cloned().ok_or(ErrorCode::Eio)?;
        let own = view
            .get(p)
            .map(|n| n.perms.clone())
            .ok_or(ErrorCode::Enoent)?;
        changes.push(Change {
            path: String::from(p),
            exact: false,
            perms: vec![own, parent.perms.clone()],
        });
        // Every node of the subtree, with its parent's permissions.
        let mut doomed: Vec<String> = Vec::new();
        let mut stack: Vec<String> = vec![String::from(p)];
        while let Some(cur) = stack.pop() {
            let Some(node) = view.get(&cur) else { continue };
            let own = node.perms.clone();
            let kids: Vec<String> = node.children().map(|c| path::join(&cur, c)).collect();
            for k in kids {
                if let Some(child) = view.get(&k) {
                    changes.push(Change {
                        path: k.clone(),
                        exact: true,
                        perms: vec![child.perms.clone(), own.clone()],
                    });
                }
                stack.push(k);
            }
            doomed.push(cur);
        }
        for d in doomed.iter().rev() {
            view.delete(d);
        }
        parent.remove_child(path::basename(p));
        view.put(parent_path, parent);
        Ok(())
    }
}
