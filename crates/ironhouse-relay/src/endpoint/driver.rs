//! The endpoint's background task: owns the DEALER socket, introduces the
//! endpoint on every (re)connection, resends what the relay has not
//! confirmed, acknowledges work items and fills the local queue.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ironhouse::{Message, Socket, SocketEvent, TrySendError};
use tokio::sync::{broadcast, mpsc};

use super::queue::{Kind, Received};
use super::{ConnectionState, EndpointEvent, Shared};
use crate::protocol::{Hello, PackedBuilder, ToEndpoint, ToRelay};

/// What the API asks of the task.
#[derive(Debug)]
pub(super) enum Command {
    Publish {
        dest: Vec<(String, i64)>,
        payload: Bytes,
    },
    Notify(Vec<(String, i64)>),
    Stop,
}

/// Most messages handled per wake-up before looking at the other sources.
const BATCH: usize = 4096;

/// Broadcasts queued together by the application leave as one OBJS of at
/// most this many bytes: per-message costs (framing, queues, wake-ups, the
/// relay's routing) are paid once per batch. Only what is already queued is
/// batched, so nothing waits for a batch to fill.
const BATCH_BYTES: usize = 64 << 10;
/// Objects larger than this are sent alone (batching saves nothing there).
const BATCH_OBJECT_MAX: usize = 8 << 10;

/// A destination, its encoded frame, and whether it only broadcasts (so its
/// objects may be batched).
struct LastDest {
    dest: Vec<(String, i64)>,
    frame: Bytes,
    broadcast_only: bool,
}

/// A publish (OBJ) or a batch of them (OBJS) sent and not yet confirmed.
struct Sent {
    first_seq: u64,
    last_seq: u64,
    objects: usize,
    bytes: usize,
    message: Message,
}

/// Broadcasts being gathered into one OBJS.
#[derive(Default)]
struct Gathering {
    objects: PackedBuilder,
    first_seq: u64,
    dest: Bytes,
    bytes: usize,
}

pub(super) struct Driver {
    pub(super) socket: Socket,
    pub(super) shared: Arc<Shared>,
    pub(super) commands: mpsc::UnboundedReceiver<Command>,
    pub(super) monitor: broadcast::Receiver<SocketEvent>,
    pub(super) session: Bytes,
    pub(super) groups: Vec<String>,
    epoch: Option<Bytes>,
    seen: HashMap<String, u64>,
    credit: HashMap<String, u64>,
    next_seq: u64,
    /// Publishes the relay has not confirmed, oldest first, as sent.
    unconfirmed: VecDeque<Sent>,
    gathering: Gathering,
    /// Notifies made while not joined that the last HELLO did not carry:
    /// grabs (`n < 0`) and credit added after that HELLO went out. Sent
    /// after WELCOME.
    pending: Vec<(String, i64)>,
    joined: bool,
    /// A connection is up (the socket has a peer to queue for).
    connected: bool,
    /// Messages for the current connection, in order, not yet queued.
    out: VecDeque<Message>,
    last_item: u64,
    acked: u64,
    arrived: Vec<Received>,
    /// The last destination and its encoding.
    last_dest: Option<LastDest>,
}

impl Driver {
    pub(super) fn new(
        socket: Socket,
        monitor: broadcast::Receiver<SocketEvent>,
        shared: Arc<Shared>,
        commands: mpsc::UnboundedReceiver<Command>,
        session: Bytes,
        groups: Vec<String>,
    ) -> Self {
        Driver {
            socket,
            shared,
            commands,
            monitor,
            session,
            groups,
            epoch: None,
            seen: HashMap::new(),
            credit: HashMap::new(),
            next_seq: 1,
            unconfirmed: VecDeque::new(),
            gathering: Gathering::default(),
            pending: Vec::new(),
            joined: false,
            connected: false,
            out: VecDeque::new(),
            last_item: 0,
            acked: 0,
            arrived: Vec::new(),
            last_dest: None,
        }
    }

    pub(super) async fn run(mut self) {
        loop {
            self.flush_out();
            let backlog = self.connected && !self.out.is_empty();
            tokio::select! {
                biased;
                cmd = self.commands.recv() => {
                    let Some(cmd) = cmd else { break };
                    if !self.command(cmd) {
                        break;
                    }
                    let mut stop = false;
                    for _ in 0..BATCH {
                        match self.commands.try_recv() {
                            Ok(c) => if !self.command(c) { stop = true; break; },
                            Err(_) => break,
                        }
                    }
                    self.send_gathered();
                    if stop {
                        break;
                    }
                }
                m = self.socket.recv() => {
                    let Ok(m) = m else { break };
                    self.incoming(&m);
                    for _ in 0..BATCH {
                        match self.socket.try_recv() {
                            Ok(Some(m)) => self.incoming(&m),
                            _ => break,
                        }
                    }
                    self.after_batch();
                }
                ev = self.monitor.recv() => self.socket_event(ev),
                // The socket's queue was full: try again shortly.
                // (An async block: the timer is only made when the branch runs.)
                () = async { tokio::time::sleep(Duration::from_millis(1)).await }, if backlog => {}
            }
        }
        self.shared.queue.stop();
        self.shared.set_state(ConnectionState::Stopped);
        // Confirmed or not, what is queued gets a short chance to leave.
        self.flush_out();
        self.socket.close().await;
    }

    /// Handles one API command; false to stop.
    fn command(&mut self, cmd: Command) -> bool {
        match cmd {
            Command::Publish { dest, payload } => {
                let seq = self.next_seq;
                self.next_seq += 1;
                let len = payload.len();
                // Senders mostly repeat one destination: encode it once.
                if self.last_dest.as_ref().is_none_or(|d| d.dest != dest) {
                    self.last_dest = Some(LastDest {
                        frame: crate::protocol::dest_frame(&dest),
                        broadcast_only: dest.iter().all(|(_, n)| *n <= 0),
                        dest,
                    });
                }
                let last = self.last_dest.as_ref().expect("set above");
                let (frame, broadcast_only) = (last.frame.clone(), last.broadcast_only);
                if broadcast_only && len <= BATCH_OBJECT_MAX {
                    let g = &self.gathering;
                    if !g.objects.is_empty() && g.dest != frame {
                        self.send_gathered();
                    }
                    let g = &mut self.gathering;
                    if g.objects.is_empty() {
                        g.first_seq = seq;
                        g.dest = frame;
                    }
                    g.objects.push(&payload);
                    g.bytes += len;
                    if g.objects.len() >= BATCH_BYTES {
                        self.send_gathered();
                    }
                } else {
                    // Work items go one by one: the relay may refuse any of
                    // them (max_consumables).
                    self.send_gathered();
                    let m = crate::protocol::publish_message(seq, frame, payload);
                    self.sent(seq, 1, len, m);
                }
            }
            Command::Notify(credit) => {
                self.send_gathered();
                let mut now = Vec::new();
                for (g, n) in credit {
                    if !self.groups.contains(&g) || n == 0 {
                        continue;
                    }
                    if n > 0 {
                        // Counted here too, for the next HELLO.
                        let e = self.credit.entry(g.clone()).or_default();
                        *e = e.saturating_add(n.unsigned_abs());
                    }
                    if self.joined {
                        now.push((g, n));
                    } else {
                        self.pending.push((g, n));
                    }
                }
                if !now.is_empty() {
                    self.out.push_back(ToRelay::Notify(now).encode());
                }
            }
            Command::Stop => {
                self.send_gathered();
                return false;
            }
        }
        true
    }

    /// Sends the broadcasts gathered so far: an OBJ for one, an OBJS for more.
    fn send_gathered(&mut self) {
        let g = &mut self.gathering;
        let Some(objects) = g.objects.finish() else {
            return;
        };
        let (first, bytes, dest) = (
            g.first_seq,
            std::mem::take(&mut g.bytes),
            std::mem::take(&mut g.dest),
        );
        let n = objects.count();
        let m = if n == 1 {
            let obj = objects.last();
            crate::protocol::publish_message(first, dest, obj)
        } else {
            crate::protocol::publish_batch_message(first, dest, &objects)
        };
        self.sent(first, n, bytes, m);
    }

    /// Keeps a publish message until the relay confirms it; sends it now if
    /// joined (otherwise WELCOME resends it).
    fn sent(&mut self, first_seq: u64, objects: usize, bytes: usize, message: Message) {
        if self.joined {
            self.out.push_back(message.clone());
        }
        self.unconfirmed.push_back(Sent {
            first_seq,
            last_seq: first_seq + objects as u64 - 1,
            objects,
            bytes,
            message,
        });
    }

    fn hello(&mut self) {
        // Whatever was queued for the old connection is obsolete: the
        // relay gets HELLO, then every unconfirmed publish again.
        self.out.clear();
        self.joined = false;
        // This HELLO carries all the credit: only grabs stay pending.
        self.pending.retain(|(_, n)| *n < 0);
        let h = Hello {
            session: self.session.clone(),
            groups: self.groups.clone(),
            epoch: self.epoch.clone(),
            seen: self.seen.iter().map(|(g, s)| (g.clone(), *s)).collect(),
            credit: self.credit.iter().map(|(g, c)| (g.clone(), *c)).collect(),
            batch: true,
        };
        self.out.push_back(ToRelay::Hello(h).encode());
    }

    fn socket_event(&mut self, ev: Result<SocketEvent, broadcast::error::RecvError>) {
        match ev {
            Ok(SocketEvent::Connected { peer, .. }) => {
                tracing::debug!(%peer, "connected to the relay; joining");
                self.connected = true;
                self.shared.set_state(ConnectionState::Joining);
                self.shared.emit(EndpointEvent::Connected { peer });
                self.hello();
            }
            Ok(SocketEvent::Disconnected { peer, reason }) => {
                self.joined = false;
                self.connected = false;
                self.shared.set_state(ConnectionState::Reconnecting);
                self.shared
                    .emit(EndpointEvent::Disconnected { peer, reason });
            }
            Ok(SocketEvent::HandshakeFailed { peer, reason }) => {
                self.shared.set_state(ConnectionState::Reconnecting);
                self.shared
                    .emit(EndpointEvent::HandshakeFailed { peer, reason });
            }
            Ok(SocketEvent::ConnectFailed { endpoint, reason }) => {
                self.shared
                    .emit(EndpointEvent::ConnectFailed { endpoint, reason });
            }
            Ok(_) => {}
            // Missed events: the connection may have changed; rejoining is
            // always safe.
            Err(broadcast::error::RecvError::Lagged(_)) => self.hello(),
            Err(broadcast::error::RecvError::Closed) => {}
        }
    }

    fn incoming(&mut self, m: &Message) {
        let msg = match ToEndpoint::decode(m) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::warn!(error = %e, "ignored a malformed message from the relay");
                return;
            }
        };
        match msg {
            ToEndpoint::Welcome { epoch, accepted } => {
                self.joined = true;
                self.epoch = Some(epoch);
                self.last_item = 0;
                self.acked = 0;
                self.confirm_upto(accepted);
                for s in &self.unconfirmed {
                    self.out.push_back(s.message.clone());
                }
                let pending = std::mem::take(&mut self.pending);
                if !pending.is_empty() {
                    self.out.push_back(ToRelay::Notify(pending).encode());
                }
                self.shared.set_state(ConnectionState::Joined);
                self.shared.emit(EndpointEvent::Joined);
            }
            ToEndpoint::Reject(reason) => {
                tracing::warn!(%reason, "the relay rejected this endpoint");
                self.joined = false;
                self.shared
                    .set_state(ConnectionState::Rejected(reason.clone()));
                self.shared.emit(EndpointEvent::Rejected { reason });
                // Retrying would be rejected again: stop.
                self.commands.close();
            }
            ToEndpoint::Done(upto) => self.confirm_upto(upto),
            ToEndpoint::Fail { seq, reason } => {
                // For an OBJS, the whole batch was refused.
                let hit = |s: &Sent| s.first_seq <= seq && seq <= s.last_seq;
                if let Some(i) = self.unconfirmed.iter().position(hit) {
                    let s = self.unconfirmed.remove(i).expect("found");
                    self.shared
                        .confirmed(s.objects, s.bytes, Some(reason.clone()));
                }
                tracing::warn!(%reason, "the relay refused an object");
                self.shared.emit(EndpointEvent::Refused { reason });
            }
            ToEndpoint::Broadcast {
                group,
                bseq,
                payload,
            } => {
                let s = self.seen.entry(group.clone()).or_default();
                *s = (*s).max(bseq);
                self.arrived.push(Received {
                    group,
                    kind: Kind::Broadcast,
                    payload,
                });
            }
            ToEndpoint::Broadcasts {
                group,
                first_bseq,
                objects,
            } => {
                let last = first_bseq.saturating_add(objects.count() as u64 - 1);
                let s = self.seen.entry(group.clone()).or_default();
                *s = (*s).max(last);
                self.arrived.extend(objects.iter().map(|payload| Received {
                    group: group.clone(),
                    kind: Kind::Broadcast,
                    payload,
                }));
            }
            ToEndpoint::Item {
                group,
                id,
                credited,
                payload,
            } => {
                if credited {
                    if let Some(c) = self.credit.get_mut(&group) {
                        *c = c.saturating_sub(1);
                        if *c == 0 {
                            self.credit.remove(&group);
                        }
                    }
                }
                self.last_item = self.last_item.max(id);
                self.arrived.push(Received {
                    group,
                    kind: Kind::Item,
                    payload,
                });
            }
            ToEndpoint::Reset => {
                if self.joined {
                    tracing::debug!("the relay does not know this connection; rejoining");
                    self.hello();
                }
            }
        }
    }

    fn confirm_upto(&mut self, upto: u64) {
        let (mut n, mut bytes) = (0, 0);
        while self.unconfirmed.front().is_some_and(|s| s.last_seq <= upto) {
            let s = self.unconfirmed.pop_front().expect("checked");
            n += s.objects;
            bytes += s.bytes;
        }
        if n > 0 {
            self.shared.confirmed(n, bytes, None);
        }
    }

    fn after_batch(&mut self) {
        if !self.arrived.is_empty() {
            self.shared.queue.push_all(self.arrived.drain(..));
        }
        if self.joined && self.last_item > self.acked {
            self.acked = self.last_item;
            self.out.push_back(ToRelay::Ack(self.acked).encode());
        }
    }

    /// Queues what fits on the socket now; the rest waits for room.
    fn flush_out(&mut self) {
        while let Some(m) = self.out.pop_front() {
            match self.socket.try_send(m) {
                Ok(()) => {}
                Err(TrySendError::Full(m)) => {
                    self.out.push_front(m);
                    return;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "cannot send to the relay");
                    return;
                }
            }
        }
    }
}
