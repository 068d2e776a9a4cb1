//! The relay's state machine: groups, retained broadcasts, work queues,
//! credit and deliveries. No I/O and no clock: the driver ([`crate::relay`])
//! feeds it what connections say and sends what it outputs, so every rule
//! here is tested without a network.
//!
//! Rules (each fixes a defect measured in tlspyo, see the crate docs):
//! - the last broadcast of a group is kept and given to each joiner once:
//!   an endpoint that rejoins and says it has seen it does not get it again;
//! - produced objects wait in their group's queue until a member with
//!   credit takes one; they are handed out round-robin among such members;
//! - a delivered object stays unacknowledged until its consumer says it
//!   arrived; if the consumer goes first, the object goes back to the front
//!   of its queue (at-least-once);
//! - `max_count` members and `max_consumables` queued objects per group, with
//!   a reason given to whoever hits the limit;
//! - publishes are numbered per endpoint session, so a resend after a
//!   reconnect is taken once.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use crate::protocol::Packed;

/// A connection, numbered by the driver.
pub type ConnId = u64;

/// Per-group limits. `None` means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupLimits {
    /// Most endpoints in the group at once.
    pub max_count: Option<usize>,
    /// Most produced objects waiting in the group's queue.
    pub max_consumables: Option<usize>,
}

/// Which groups exist: any (with default limits), or only those listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupPolicy {
    /// Any group name, each with these limits.
    Any(GroupLimits),
    /// Only these groups (tlspyo's `accepted_groups`).
    Only(HashMap<String, GroupLimits>),
}

impl Default for GroupPolicy {
    /// Any group; at most 1,000,000 queued objects per group so one runaway
    /// producer cannot exhaust the relay's memory.
    fn default() -> Self {
        GroupPolicy::Any(GroupLimits {
            max_count: None,
            max_consumables: Some(1_000_000),
        })
    }
}

impl GroupPolicy {
    fn limits(&self, group: &str) -> Option<GroupLimits> {
        match self {
            GroupPolicy::Any(l) => Some(*l),
            GroupPolicy::Only(m) => m.get(group).copied(),
        }
    }
}

/// A joining connection's introduction (the native HELLO, or what a tlspyo
/// endpoint's HELLO amounts to).
#[derive(Debug, Clone, Default)]
pub struct Join {
    /// Recognises the same endpoint across reconnections (native only).
    pub session: Option<Bytes>,
    /// Groups to join.
    pub groups: Vec<String>,
    /// The relay epoch the endpoint last saw.
    pub epoch: Option<Bytes>,
    /// Group → sequence number of the last broadcast it received.
    pub seen: Vec<(String, u64)>,
    /// Group → unused credit it still holds.
    pub credit: Vec<(String, u64)>,
    /// It reads batched broadcasts ([`Output::Broadcasts`]).
    pub batch: bool,
}

/// What the relay sends to a connection: the native protocol's messages
/// (a tlspyo connection gets their tlspyo equivalent).
pub use crate::protocol::ToEndpoint as Output;

#[derive(Debug, Default)]
struct Group {
    limits: GroupLimits,
    /// Members in join order.
    members: Vec<ConnId>,
    /// The last broadcast and its number.
    retained: Option<(u64, Bytes)>,
    next_bseq: u64,
    queue: VecDeque<Bytes>,
    /// Round-robin position among members.
    cursor: usize,
}

#[derive(Debug)]
struct Unacked {
    id: u64,
    group: String,
    payload: Bytes,
}

#[derive(Debug, Default)]
struct Conn {
    session: Option<Bytes>,
    groups: Vec<String>,
    credit: HashMap<String, u64>,
    unacked: VecDeque<Unacked>,
    unacked_bytes: usize,
    next_id: u64,
    /// Highest publish seq taken on this connection, not yet reported.
    done_pending: Option<u64>,
    /// It reads batched broadcasts.
    batch: bool,
}

/// What the relay remembers of an endpoint session between connections.
#[derive(Debug, Default)]
struct Session {
    conn: Option<ConnId>,
    last_seq: u64,
}

/// Counters, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Objects taken from publishers.
    pub published: u64,
    /// Items handed to consumers (redeliveries included).
    pub delivered: u64,
    /// Items put back in a queue because their consumer left.
    pub requeued: u64,
    /// Publishes refused.
    pub refused: u64,
    /// Publishes dropped as repeats of one already taken.
    pub duplicates: u64,
    /// Joins refused (group not accepted, group full).
    pub rejected: u64,
}

/// Most unacknowledged items per connection: keeps a fast producer from
/// piling a queue's whole content onto one consumer's socket.
pub const WINDOW_ITEMS: usize = 1024;
/// Most unacknowledged item bytes per connection (one item always fits).
pub const WINDOW_BYTES: usize = 16 << 20;
/// Most sessions remembered after their connection ended.
const MAX_IDLE_SESSIONS: usize = 100_000;

/// The relay's state.
#[derive(Debug)]
pub struct RelayCore {
    epoch: Bytes,
    policy: GroupPolicy,
    groups: HashMap<String, Group>,
    conns: HashMap<ConnId, Conn>,
    sessions: HashMap<Bytes, Session>,
    idle_sessions: VecDeque<Bytes>,
    out: VecDeque<(ConnId, Output)>,
    stats: Stats,
}

impl RelayCore {
    /// A relay with no groups yet; `epoch` must differ between relay runs.
    pub fn new(policy: GroupPolicy, epoch: Bytes) -> Self {
        RelayCore {
            epoch,
            policy,
            groups: HashMap::new(),
            conns: HashMap::new(),
            sessions: HashMap::new(),
            idle_sessions: VecDeque::new(),
            out: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    /// This relay's epoch.
    pub fn epoch(&self) -> &Bytes {
        &self.epoch
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Whether the connection has joined.
    pub fn is_joined(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    /// Number of queued objects in a group (0 if it does not exist).
    pub fn queued(&self, group: &str) -> usize {
        self.groups.get(group).map_or(0, |g| g.queue.len())
    }

    /// The next thing to send.
    pub fn poll_output(&mut self) -> Option<(ConnId, Output)> {
        self.out.pop_front()
    }

    fn group(&mut self, name: &str) -> Option<&mut Group> {
        if !self.groups.contains_key(name) {
            let limits = self.policy.limits(name)?;
            self.groups.insert(
                name.to_owned(),
                Group {
                    limits,
                    next_bseq: 1,
                    ..Group::default()
                },
            );
        }
        self.groups.get_mut(name)
    }

    /// A connection introduces itself. A second HELLO on a joined
    /// connection is a rejoin.
    pub fn join(&mut self, conn: ConnId, join: Join) {
        if self.conns.contains_key(&conn) {
            self.leave(conn);
        }
        // The same session on another connection: that one is stale.
        if let Some(old) = join
            .session
            .as_ref()
            .and_then(|s| self.sessions.get(s))
            .and_then(|s| s.conn)
        {
            if old != conn {
                self.leave(old);
            }
        }
        if let Err(reason) = self.admit(&join.groups) {
            self.stats.rejected += 1;
            self.out.push_back((conn, Output::Reject(reason)));
            return;
        }
        let mut groups = join.groups;
        groups.dedup();
        let accepted = match &join.session {
            Some(s) => {
                let sess = self.sessions.entry(s.clone()).or_default();
                sess.conn = Some(conn);
                sess.last_seq
            }
            None => 0,
        };
        self.out.push_back((
            conn,
            Output::Welcome {
                epoch: self.epoch.clone(),
                accepted,
            },
        ));
        let same_epoch = join.epoch.as_ref() == Some(&self.epoch);
        let mut credit = HashMap::new();
        for g in &groups {
            let seen = join
                .seen
                .iter()
                .find(|(n, _)| n == g)
                .map_or(0, |(_, s)| *s);
            let c = join
                .credit
                .iter()
                .find(|(n, _)| n == g)
                .map_or(0, |(_, c)| *c);
            if c > 0 {
                credit.insert(g.clone(), c);
            }
            let grp = self.group(g).expect("admitted above");
            grp.members.push(conn);
            if let Some((bseq, payload)) = &grp.retained {
                if !(same_epoch && seen >= *bseq) {
                    let o = Output::Broadcast {
                        group: g.clone(),
                        bseq: *bseq,
                        payload: payload.clone(),
                    };
                    self.out.push_back((conn, o));
                }
            }
        }
        self.conns.insert(
            conn,
            Conn {
                session: join.session,
                groups: groups.clone(),
                credit,
                next_id: 1,
                batch: join.batch,
                ..Conn::default()
            },
        );
        for g in &groups {
            self.dispatch(g);
        }
    }

    fn admit(&self, groups: &[String]) -> Result<(), String> {
        if groups.is_empty() {
            return Err("an endpoint must join at least one group".into());
        }
        for g in groups {
            let Some(limits) = self
                .groups
                .get(g)
                .map(|grp| grp.limits)
                .or_else(|| self.policy.limits(g))
            else {
                return Err(format!("group {g:?} is not accepted by this relay"));
            };
            let members = self.groups.get(g).map_or(0, |grp| grp.members.len());
            if let Some(max) = limits.max_count {
                if members >= max {
                    return Err(format!(
                        "group {g:?} is full ({members} of max_count {max} endpoints)"
                    ));
                }
            }
        }
        Ok(())
    }

    /// A connection ended (or was replaced): its unacknowledged items go
    /// back to the front of their queues, in order.
    pub fn leave(&mut self, conn: ConnId) {
        let Some(mut c) = self.conns.remove(&conn) else {
            return;
        };
        if let Some(s) = c.session.as_ref() {
            if let Some(sess) = self.sessions.get_mut(s) {
                if sess.conn == Some(conn) {
                    sess.conn = None;
                    self.idle_sessions.push_back(s.clone());
                }
            }
            self.forget_old_sessions();
        }
        while let Some(u) = c.unacked.pop_back() {
            if let Some(g) = self.groups.get_mut(&u.group) {
                g.queue.push_front(u.payload);
                self.stats.requeued += 1;
            }
        }
        for g in &c.groups {
            if let Some(grp) = self.groups.get_mut(g) {
                grp.members.retain(|m| *m != conn);
            }
        }
        for g in &c.groups {
            self.dispatch(g);
        }
    }

    fn forget_old_sessions(&mut self) {
        while self.idle_sessions.len() > MAX_IDLE_SESSIONS {
            if let Some(s) = self.idle_sessions.pop_front() {
                if self.sessions.get(&s).is_some_and(|x| x.conn.is_none()) {
                    self.sessions.remove(&s);
                }
            }
        }
    }

    /// An object to groups: per group n < 0 broadcasts, n > 0 queues n
    /// copies, 0 only creates the group. `seq` 0 means unnumbered (tlspyo).
    pub fn publish(&mut self, conn: ConnId, seq: u64, dest: &[(String, i64)], payload: Bytes) {
        if !self.conns.contains_key(&conn) {
            self.out.push_back((conn, Output::Reset));
            return;
        }
        if seq != 0 && self.taken_before(conn, seq, seq).is_none() {
            return;
        }
        // Check every group first: a publish is taken whole or refused whole.
        if let Err(reason) = self.check_publish(dest) {
            self.stats.refused += 1;
            if seq != 0 {
                self.out.push_back((conn, Output::Fail { seq, reason }));
            } else {
                tracing::warn!(%reason, "publish refused");
            }
            return;
        }
        self.stats.published += 1;
        for (g, n) in dest {
            let grp = self.group(g).expect("checked above");
            if *n < 0 {
                let bseq = grp.next_bseq;
                grp.next_bseq += 1;
                grp.retained = Some((bseq, payload.clone()));
                let members = grp.members.clone();
                for m in members {
                    let o = Output::Broadcast {
                        group: g.clone(),
                        bseq,
                        payload: payload.clone(),
                    };
                    self.out.push_back((m, o));
                }
            } else if *n > 0 {
                for _ in 0..*n {
                    grp.queue.push_back(payload.clone());
                }
                self.dispatch(g);
            }
        }
        if seq != 0 {
            self.mark_done(conn, seq);
        }
    }

    /// Several objects to the same destination, numbered from `first_seq`
    /// (OBJS): the same as publishing them one by one, but a broadcast batch
    /// goes to each batch-capable member as one output holding the very
    /// same frame. Refused whole, with one [`Output::Fail`] naming a `seq`
    /// of the batch.
    pub fn publish_batch(
        &mut self,
        conn: ConnId,
        first_seq: u64,
        dest: &[(String, i64)],
        objects: Packed,
    ) {
        // Work items are counted against limits and handed out one by one.
        if first_seq == 0 || dest.iter().any(|(_, n)| *n > 0) {
            for (i, obj) in objects.iter().enumerate() {
                let seq = if first_seq == 0 {
                    0
                } else {
                    first_seq + i as u64
                };
                self.publish(conn, seq, dest, obj);
            }
            return;
        }
        if !self.conns.contains_key(&conn) {
            self.out.push_back((conn, Output::Reset));
            return;
        }
        let last_seq = first_seq.saturating_add(objects.count() as u64 - 1);
        let objects = match self.taken_before(conn, first_seq, last_seq) {
            None => return,
            Some(0) => objects,
            // A resend after a reconnect that the relay partly took.
            Some(taken) => objects.skip(taken as usize).expect("some remain"),
        };
        let count = objects.count() as u64;
        if let Err(reason) = self.check_publish(dest) {
            self.stats.refused += count;
            self.out.push_back((
                conn,
                Output::Fail {
                    seq: last_seq,
                    reason,
                },
            ));
            return;
        }
        self.stats.published += count;
        for (g, n) in dest {
            if *n >= 0 {
                // 0 only creates the group (done by check_publish's caller).
                self.group(g);
                continue;
            }
            let grp = self.group(g).expect("checked above");
            let first_bseq = grp.next_bseq;
            grp.next_bseq += count;
            grp.retained = Some((first_bseq + count - 1, objects.last()));
            let members = grp.members.clone();
            for m in members {
                if self.conns.get(&m).is_some_and(|c| c.batch) {
                    let o = Output::Broadcasts {
                        group: g.clone(),
                        first_bseq,
                        objects: objects.clone(),
                    };
                    self.out.push_back((m, o));
                } else {
                    for (i, payload) in objects.iter().enumerate() {
                        let o = Output::Broadcast {
                            group: g.clone(),
                            bseq: first_bseq + i as u64,
                            payload,
                        };
                        self.out.push_back((m, o));
                    }
                }
            }
        }
        self.mark_done(conn, last_seq);
    }

    /// Per-session de-duplication of the publishes numbered
    /// `first..=last` (the connection is known): how many of them, from the
    /// first, the relay took before; `None` when it took them all (they
    /// count as duplicates and are confirmed again). The rest are taken now.
    fn taken_before(&mut self, conn: ConnId, first: u64, last: u64) -> Option<u64> {
        let sess = self.conns[&conn]
            .session
            .as_ref()
            .and_then(|s| self.sessions.get_mut(s));
        let Some(sess) = sess else {
            return Some(0);
        };
        if last <= sess.last_seq {
            self.stats.duplicates += last - first + 1;
            self.mark_done(conn, last);
            return None;
        }
        let taken = (sess.last_seq + 1).saturating_sub(first);
        sess.last_seq = last;
        self.stats.duplicates += taken;
        Some(taken)
    }

    fn check_publish(&self, dest: &[(String, i64)]) -> Result<(), String> {
        if dest.is_empty() {
            return Err("no destination group".into());
        }
        for (g, n) in dest {
            let limits = match self.groups.get(g) {
                Some(grp) => grp.limits,
                None => self
                    .policy
                    .limits(g)
                    .ok_or_else(|| format!("group {g:?} is not accepted by this relay"))?,
            };
            if *n > 0 {
                let queued = self.queued(g);
                if let Some(max) = limits.max_consumables {
                    if queued.saturating_add(*n as usize) > max {
                        return Err(format!(
                            "group {g:?} queue is full ({queued} of max_consumables {max} objects)"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn mark_done(&mut self, conn: ConnId, seq: u64) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.done_pending = Some(c.done_pending.map_or(seq, |d| d.max(seq)));
        }
    }

    /// Sends the cumulative DONE of every connection that published since
    /// the last call. The driver calls it after each batch of input, so one
    /// DONE covers many publishes.
    pub fn flush_done(&mut self) {
        for (id, c) in &mut self.conns {
            if let Some(seq) = c.done_pending.take() {
                self.out.push_back((*id, Output::Done(seq)));
            }
        }
    }

    /// Consumer credit: n > 0 adds credit for later objects; n < 0 takes
    /// everything queued now without using credit. Groups the connection
    /// is not a member of are ignored.
    pub fn notify(&mut self, conn: ConnId, credit: &[(String, i64)]) {
        let Some(c) = self.conns.get_mut(&conn) else {
            self.out.push_back((conn, Output::Reset));
            return;
        };
        let mut touched = Vec::new();
        let mut grab = Vec::new();
        for (g, n) in credit {
            if !c.groups.contains(g) {
                continue;
            }
            if *n > 0 {
                let add = u64::try_from(*n).unwrap_or(0);
                let e = c.credit.entry(g.clone()).or_default();
                *e = e.saturating_add(add);
                touched.push(g.clone());
            } else if *n < 0 {
                grab.push(g.clone());
            }
        }
        for g in grab {
            // Everything queued now, to this consumer, regardless of window.
            let all: Vec<Bytes> = match self.groups.get_mut(&g) {
                Some(grp) => grp.queue.drain(..).collect(),
                None => continue,
            };
            for payload in all {
                self.deliver(conn, &g, payload, false);
            }
        }
        for g in touched {
            self.dispatch(&g);
        }
    }

    /// The consumer has every item up to `upto`.
    pub fn ack(&mut self, conn: ConnId, upto: u64) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        while c.unacked.front().is_some_and(|u| u.id <= upto) {
            let u = c.unacked.pop_front().expect("checked");
            c.unacked_bytes -= u.payload.len();
        }
        let groups = c.groups.clone();
        for g in &groups {
            self.dispatch(g);
        }
    }

    fn has_room(c: &Conn, next: usize) -> bool {
        c.unacked.is_empty()
            || (c.unacked.len() < WINDOW_ITEMS && c.unacked_bytes + next <= WINDOW_BYTES)
    }

    fn deliver(&mut self, conn: ConnId, group: &str, payload: Bytes, credited: bool) {
        let c = self.conns.get_mut(&conn).expect("caller checked");
        let id = c.next_id;
        c.next_id += 1;
        c.unacked_bytes += payload.len();
        c.unacked.push_back(Unacked {
            id,
            group: group.to_owned(),
            payload: payload.clone(),
        });
        self.stats.delivered += 1;
        self.out.push_back((
            conn,
            Output::Item {
                group: group.to_owned(),
                id,
                credited,
                payload,
            },
        ));
    }

    /// Hands queued objects of `group` to members with credit and room,
    /// round-robin.
    fn dispatch(&mut self, group: &str) {
        loop {
            let Some(grp) = self.groups.get_mut(group) else {
                return;
            };
            let Some(next_len) = grp.queue.front().map(Bytes::len) else {
                return;
            };
            let n = grp.members.len();
            let mut chosen = None;
            for k in 0..n {
                let i = (grp.cursor + k) % n;
                let m = grp.members[i];
                let Some(c) = self.conns.get(&m) else {
                    continue;
                };
                if c.credit.get(group).copied().unwrap_or(0) > 0 && Self::has_room(c, next_len) {
                    chosen = Some((i, m));
                    break;
                }
            }
            let Some((i, m)) = chosen else {
                return;
            };
            grp.cursor = (i + 1) % n;
            let payload = grp.queue.pop_front().expect("checked");
            let c = self.conns.get_mut(&m).expect("checked");
            let credit = c.credit.get_mut(group).expect("checked");
            *credit -= 1;
            if *credit == 0 {
                c.credit.remove(group);
            }
            self.deliver(m, group, payload, true);
        }
    }
}

#[cfg(test)]
mod tests;
