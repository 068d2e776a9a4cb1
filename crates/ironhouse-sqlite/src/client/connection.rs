//! The task behind a [`Client`](super::Client): one DEALER socket, many
//! requests in flight, Lazy Pirate retries.
//!
//! # Why a DEALER and request ids
//!
//! A REQ socket allows one request at a time, so a client's throughput is
//! one query per round trip. Here each request goes out as
//! `[id][empty][body]`. To a ROUTER server (ours) or a REP server
//! (sqlite_rx's, libzmq's REP echoes the whole envelope) `[id]` is just one
//! more envelope frame, returned with the reply, so replies are matched to
//! requests whatever order they come back in (a file database serves reads
//! on several threads). The wire stays exactly what those servers already
//! accept.
//!
//! # Retries
//!
//! Every request has its own deadline (`request_timeout` after it was
//! sent). When one passes without a reply, the server is presumed gone or
//! the connection broken (as in Lazy Pirate), and the socket is replaced by
//! a fresh one — a new connection and, with CURVE, a new handshake. Then
//! every request still waiting is resent on it with a new deadline, under
//! the same id (a late reply from the old socket cannot arrive: that
//! socket is closed), except:
//!
//! - the request that timed out, after `retries` timeouts in all: it fails
//!   with [`ClientError::Timeout`];
//! - requests that may write (unless `resend_writes`): resending a
//!   delivered-but-slow INSERT would run it twice, so the one that timed
//!   out fails with [`ClientError::Timeout`], and the others that were in
//!   flight on the abandoned socket fail with [`ClientError::Interrupted`]
//!   (they may or may not have run).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use ironhouse::{Message, Socket, SocketType};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::{ClientConfig, ClientError};

/// What a [`Client`](super::Client) asks of its connection task.
pub(super) enum Command {
    /// Send a request.
    Request(Request),
    /// Close the socket; requests in flight or waiting fail with
    /// [`ClientError::Closed`]. Acknowledged once the socket is closed.
    Close(oneshot::Sender<()>),
}

/// A request body and where its outcome goes: the reply body (still
/// compressed) or an error.
pub(super) struct Request {
    pub(super) body: Bytes,
    /// May be resent after a timeout (a plain read, or `resend_writes`).
    pub(super) resend: bool,
    pub(super) reply: oneshot::Sender<Result<Bytes, ClientError>>,
}

/// A request sent and not yet answered.
struct Pending {
    request: Request,
    /// Timeouts so far (each one made an attempt fail).
    timeouts: u32,
    deadline: Instant,
}

/// The connection task's state.
struct Connection {
    config: Arc<ClientConfig>,
    socket: Option<Socket>,
    pending: HashMap<u32, Pending>,
    /// `(deadline, id)` in send order. Every deadline is "sent + the same
    /// timeout", so the front is always the earliest; entries whose request
    /// was answered (or resent, with a later deadline) are skipped lazily.
    deadlines: VecDeque<(Instant, u32)>,
    next_id: u32,
    /// Requests past `max_in_flight` wait here, not in the channel, so
    /// that a close is seen at once however full the connection is.
    queued: VecDeque<Request>,
}

/// Runs a connection until it is closed, or until every [`Client`] handle
/// is gone (no caller can be waiting then: each one holds a handle).
///
/// [`Client`]: super::Client
pub(super) async fn run(config: Arc<ClientConfig>, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut conn = Connection {
        config,
        socket: None,
        pending: HashMap::new(),
        deadlines: VecDeque::new(),
        next_id: 0,
        queued: VecDeque::new(),
    };
    loop {
        conn.send_queued().await;
        let next_deadline = conn.next_deadline();
        tokio::select! {
            biased;
            msg = recv(&mut conn.socket) => match msg {
                Ok(msg) => conn.on_reply(msg),
                Err(e) => {
                    // Only a closed socket fails here; treat it as a broken
                    // connection (resend what may be resent).
                    tracing::debug!("the client socket failed: {e}");
                    conn.replace_socket(None).await;
                }
            },
            cmd = commands.recv() => match cmd {
                Some(Command::Request(request)) => conn.queued.push_back(request),
                Some(Command::Close(done)) => {
                    conn.close().await;
                    let _ = done.send(());
                    return;
                }
                None => break,
            },
            () = tokio::time::sleep_until(next_deadline.unwrap_or_else(Instant::now)),
                if next_deadline.is_some() => conn.on_deadline().await,
        }
    }
    if let Some(s) = conn.socket.take() {
        s.close().await;
    }
}

/// The socket's next message, or never without a socket.
async fn recv(socket: &mut Option<Socket>) -> ironhouse::Result<Message> {
    match socket {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

impl Connection {
    fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(&(deadline, id)) = self.deadlines.front() {
            match self.pending.get(&id) {
                Some(p) if p.deadline == deadline => return Some(deadline),
                _ => {
                    self.deadlines.pop_front();
                }
            }
        }
        None
    }

    fn on_reply(&mut self, msg: Message) {
        // `[id][empty][body]`; anything else is not an answer to us.
        let frames = msg.frames();
        let id = match frames.first().map(|f| <[u8; 4]>::try_from(&f[..])) {
            Some(Ok(id)) => u32::from_be_bytes(id),
            _ => {
                tracing::debug!(
                    frames = frames.len(),
                    "a reply without a request id; dropped"
                );
                return;
            }
        };
        if let Some(p) = self.pending.remove(&id) {
            let body = frames.last().cloned().unwrap_or_default();
            // The caller may have given up (cancelled); nothing to do then.
            let _ = p.request.reply.send(Ok(body));
        }
    }

    async fn socket(&mut self) -> Result<&mut Socket, ClientError> {
        if self.socket.is_none() {
            let mut s = Socket::with_options(SocketType::Dealer, self.config.options.clone());
            s.connect(&self.config.endpoint).await?;
            self.socket = Some(s);
        }
        // Just set.
        Ok(self.socket.as_mut().expect("socket present"))
    }

    /// Sends waiting requests while there is room in flight (a request
    /// whose caller gave up is dropped unsent).
    async fn send_queued(&mut self) {
        while self.pending.len() < self.config.max_in_flight {
            let Some(request) = self.queued.pop_front() else {
                break;
            };
            if request.reply.is_closed() {
                continue;
            }
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            let deadline = Instant::now() + self.config.request_timeout;
            if let Err(e) = self.transmit(id, &request.body, deadline).await {
                let _ = request.reply.send(Err(e));
                continue;
            }
            self.pending.insert(
                id,
                Pending {
                    request,
                    timeouts: 0,
                    deadline,
                },
            );
            self.deadlines.push_back((deadline, id));
        }
    }

    /// Puts a request on the socket. A send that cannot complete before the
    /// deadline (no server connected) is dropped whole; the deadline then
    /// fails or resends the request like a lost reply.
    async fn transmit(
        &mut self,
        id: u32,
        body: &Bytes,
        deadline: Instant,
    ) -> Result<(), ClientError> {
        let socket = self.socket().await?;
        let msg = Message::from(vec![
            Bytes::copy_from_slice(&id.to_be_bytes()),
            Bytes::new(),
            body.clone(),
        ]);
        match tokio::time::timeout_at(deadline, socket.send(msg)).await {
            Ok(Ok(())) | Err(_) => Ok(()),
            Ok(Err(e)) => Err(e.into()),
        }
    }

    async fn on_deadline(&mut self) {
        let now = Instant::now();
        let mut timed_out = Vec::new();
        while let Some(&(deadline, id)) = self.deadlines.front() {
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            match self.pending.get_mut(&id) {
                Some(p) if p.deadline == deadline => {
                    if p.request.reply.is_closed() {
                        // Cancelled by its caller: forget it, the connection
                        // is not suspect for that.
                        self.pending.remove(&id);
                    } else {
                        p.timeouts += 1;
                        timed_out.push(id);
                    }
                }
                _ => {}
            }
        }
        if !timed_out.is_empty() {
            tracing::debug!(
                requests = timed_out.len(),
                "no reply in time; replacing the socket"
            );
            self.replace_socket(Some(&timed_out)).await;
        }
    }

    /// Closes the socket and resends what may be resent on a fresh one
    /// (see the module docs). `timed_out`: the requests whose own deadline
    /// passed (`None`: the socket failed under every request alike).
    async fn replace_socket(&mut self, timed_out: Option<&[u32]>) {
        if let Some(s) = self.socket.take() {
            s.close().await;
        }
        let retries = self.config.retries;
        // One deadline for the whole resend: if no server is there, the
        // first send waits for it and the rest give up at the same moment.
        let deadline = Instant::now() + self.config.request_timeout;
        let mut ids: Vec<u32> = self.pending.keys().copied().collect();
        // Resend in the order they were first sent (ids are sequential).
        ids.sort_unstable_by_key(|id| id.wrapping_sub(self.next_id));
        for id in ids {
            let Some(p) = self.pending.get(&id) else {
                continue;
            };
            let own_timeout = timed_out.is_some_and(|t| t.contains(&id));
            let resend = p.request.resend;
            if own_timeout && (!resend || p.timeouts >= retries) {
                let p = self.pending.remove(&id).expect("present");
                let _ = p.request.reply.send(Err(ClientError::Timeout {
                    endpoint: self.config.endpoint.clone(),
                    attempts: p.timeouts,
                    timeout: self.config.request_timeout,
                    resend_refused: !resend && p.timeouts < retries,
                }));
            } else if !resend {
                let p = self.pending.remove(&id).expect("present");
                let _ = p.request.reply.send(Err(ClientError::Interrupted {
                    endpoint: self.config.endpoint.clone(),
                }));
            } else {
                let body = p.request.body.clone();
                if let Err(e) = self.transmit(id, &body, deadline).await {
                    if let Some(p) = self.pending.remove(&id) {
                        let _ = p.request.reply.send(Err(e));
                    }
                    continue;
                }
                if let Some(p) = self.pending.get_mut(&id) {
                    p.deadline = deadline;
                    self.deadlines.push_back((deadline, id));
                }
            }
        }
    }

    /// Fails every request in flight or waiting with
    /// [`ClientError::Closed`] and closes the socket.
    async fn close(&mut self) {
        let waiting = self.queued.drain(..);
        let in_flight = self.pending.drain().map(|(_, p)| p.request);
        for request in in_flight.chain(waiting) {
            let _ = request.reply.send(Err(ClientError::Closed));
        }
        self.deadlines.clear();
        if let Some(s) = self.socket.take() {
            s.close().await;
        }
    }
}
