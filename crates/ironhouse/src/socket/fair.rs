//! Fair-queueing of received messages: one queue per peer, and the socket
//! takes one whole message from each non-empty queue in turn (libzmq's
//! rule), so a chatty peer cannot starve a quiet one. Each queue is still
//! drained in batches, one lock per batch.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;

use ironhouse_zmtp::Message;
use tokio::sync::watch;

use super::peers::{PeerId, Shared};
use crate::pipe::Pipe;

#[derive(Debug)]
struct Source {
    id: PeerId,
    pipe: Arc<Pipe<Message>>,
    /// Messages taken from `pipe` and not yet handed out.
    batch: VecDeque<Message>,
    /// The peer is gone and its queue closed; drop once `batch` is empty.
    finished: bool,
}

/// The receive side of a socket.
#[derive(Debug)]
pub(super) struct FairQueue {
    sources: Vec<Source>,
    cursor: usize,
    /// Its own view of peer-set changes (the send side keeps another).
    changed: watch::Receiver<u64>,
}

impl FairQueue {
    pub(super) fn new(changed: watch::Receiver<u64>) -> Self {
        FairQueue {
            sources: Vec::new(),
            cursor: 0,
            changed,
        }
    }

    /// Picks up peers added since the last call (their queues outlive them,
    /// so nothing they sent is lost when they disconnect).
    fn refresh(&mut self, shared: &Shared) {
        let peers = shared.peers();
        for p in &peers.list {
            if !self.sources.iter().any(|s| s.id == p.id) {
                self.sources.push(Source {
                    id: p.id,
                    pipe: p.inbox.clone(),
                    batch: VecDeque::new(),
                    finished: false,
                });
            }
        }
    }

    /// The next message if one is ready now, without creating any future:
    /// the cheap path of `Socket::try_recv`, called once per message when a
    /// socket drains a batch.
    pub(super) fn try_next(&mut self, shared: &Shared) -> Option<(PeerId, Message)> {
        if self.sources.is_empty() || self.changed.has_changed().unwrap_or(false) {
            self.changed.borrow_and_update();
            self.refresh(shared);
        }
        // An empty pipe keeps this no-op waker until the next real poll,
        // which replaces it and sees anything pushed meanwhile.
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let n = self.sources.len();
        let mut got = None;
        for k in 0..n {
            let i = (self.cursor + k) % n;
            let s = &mut self.sources[i];
            if s.batch.is_empty() && !s.finished {
                if let Poll::Ready(false) = s.pipe.poll_take(&mut cx, &mut s.batch, usize::MAX) {
                    s.finished = true;
                }
            }
            if let Some(m) = s.batch.pop_front() {
                self.cursor = (i + 1) % n;
                got = Some((s.id, m));
                break;
            }
        }
        if got.is_none() {
            self.sources.retain(|s| !(s.finished && s.batch.is_empty()));
            if !self.sources.is_empty() {
                self.cursor %= self.sources.len();
            }
        }
        got
    }

    /// The next message, from the next peer in turn that has one.
    ///
    /// # Cancel safety
    /// Cancel safe: messages stay queued.
    pub(super) async fn next(&mut self, shared: &Shared) -> (PeerId, Message) {
        // Waiting on `changed()` below marks a change as seen, so a wake-up
        // by it must force the refresh itself.
        let mut woken_by_change = false;
        loop {
            if woken_by_change || self.changed.has_changed().unwrap_or(false) {
                self.changed.borrow_and_update();
                self.refresh(shared);
            } else if self.sources.is_empty() {
                self.refresh(shared);
            }
            let FairQueue {
                sources,
                cursor,
                changed,
            } = self;
            let peer_set_changed = changed.changed();
            tokio::pin!(peer_set_changed);
            let got = std::future::poll_fn(|cx| {
                let n = sources.len();
                for k in 0..n {
                    let i = (*cursor + k) % n;
                    let s = &mut sources[i];
                    if s.batch.is_empty() && !s.finished {
                        match s.pipe.poll_take(cx, &mut s.batch, usize::MAX) {
                            Poll::Ready(true) | Poll::Pending => {}
                            Poll::Ready(false) => s.finished = true,
                        }
                    }
                    if let Some(m) = s.batch.pop_front() {
                        *cursor = (i + 1) % n;
                        return Poll::Ready(Some((s.id, m)));
                    }
                }
                if peer_set_changed.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(None);
                }
                Poll::Pending
            })
            .await;
            sources.retain(|s| !(s.finished && s.batch.is_empty()));
            if !sources.is_empty() {
                *cursor %= sources.len();
            }
            match got {
                Some(item) => return item,
                None => woken_by_change = true,
            }
        }
    }
}
