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
use crate::protocol::{Hello, ToEndpoint, ToRelay};

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
    unconfirmed: VecDeque<(u64, usize, Message)>,
    /// `notify(n < 0)` made while not joined: sent after WELCOME.
    grabs: Vec<(String, i64)>,
    joined: bool,
    /// A connection is up (the socket has a peer to queue for).
    connected: bool,
    /// Messages for the current connection, in order, not yet queued.
    out: VecDeque<Message>,
    last_item: u64,
    acked: u64,
    arrived: Vec<Received>,
    /// The last destination and its encoded frame.
    last_dest: Option<(Vec<(String, i64)>, Bytes)>,
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
            grabs: Vec::new(),
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
                if self.last_dest.as_ref().is_none_or(|(d, _)| *d != dest) {
                    let frame = crate::protocol::dest_frame(&dest);
                    self.last_dest = Some((dest, frame));
                }
                let frame = self.last_dest.as_ref().expect("set above").1.clone();
                let m = crate::protocol::publish_message(seq, frame, payload);
                if self.joined {
                    self.out.push_back(m.clone());
                }
                self.unconfirmed.push_back((seq, len, m));
            }
            Command::Notify(credit) => {
                let mut now = Vec::new();
                for (g, n) in credit {
                    if !self.groups.contains(&g) || n == 0 {
                        continue;
                    }
                    if n > 0 {
                        let e = self.credit.entry(g.clone()).or_default();
                        *e = e.saturating_add(n.unsigned_abs());
                        if self.joined {
                            now.push((g, n));
                        }
                    } else if self.joined {
                        now.push((g, n));
                    } else {
                        self.grabs.push((g, n));
                    }
                }
                if !now.is_empty() {
                    self.out.push_back(ToRelay::Notify(now).encode());
                }
            }
            Command::Stop => return false,
        }
        true
    }

    fn hello(&mut self) {
        // Whatever was queued for the old connection is obsolete: the
        // relay gets HELLO, then every unconfirmed publish again.
        self.out.clear();
        self.joined = false;
        let h = Hello {
            session: self.session.clone(),
            groups: self.groups.clone(),
            epoch: self.epoch.clone(),
            seen: self.seen.iter().map(|(g, s)| (g.clone(), *s)).collect(),
            credit: self.credit.iter().map(|(g, c)| (g.clone(), *c)).collect(),
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
                for (_, _, m) in &self.unconfirmed {
                    self.out.push_back(m.clone());
                }
                let grabs = std::mem::take(&mut self.grabs);
                if !grabs.is_empty() {
                    self.out.push_back(ToRelay::Notify(grabs).encode());
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
                if let Some(i) = self.unconfirmed.iter().position(|(s, _, _)| *s == seq) {
                    let (_, len, _) = self.unconfirmed.remove(i).expect("found");
                    self.shared.confirmed(1, len, Some(reason.clone()));
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
        while self.unconfirmed.front().is_some_and(|(s, _, _)| *s <= upto) {
            let (_, len, _) = self.unconfirmed.pop_front().expect("checked");
            n += 1;
            bytes += len;
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
