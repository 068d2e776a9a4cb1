//! An endpoint's local receive queue: what arrived from the relay and was
//! not taken yet. Bounded: when full, the oldest *broadcast* makes room
//! (broadcasts are state, the newest wins); work items are never dropped —
//! their number is bounded by the credit the user gave.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

/// How an object reached this endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A broadcast to one of its groups.
    Broadcast,
    /// A work item it asked for with `notify`.
    Item,
}

/// An object as received, before decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The group it was sent to.
    pub group: String,
    /// Broadcast or work item.
    pub kind: Kind,
    /// The encoded object.
    pub payload: Bytes,
}

/// How long a receive call may wait for a first object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Wait {
    /// Return at once, possibly with nothing.
    #[default]
    No,
    /// Wait until something arrives (or the endpoint stops).
    Forever,
    /// Wait at most this long.
    For(Duration),
}

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Received>,
    dropped_broadcasts: u64,
    stopped: bool,
}

#[derive(Debug)]
pub(crate) struct LocalQueue {
    state: Mutex<State>,
    arrived: Notify,
    capacity: usize,
}

impl LocalQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        LocalQueue {
            state: Mutex::new(State::default()),
            arrived: Notify::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds what arrived; wakes waiters once.
    pub(crate) fn push_all(&self, batch: impl IntoIterator<Item = Received>) {
        let mut s = self.lock();
        for r in batch {
            if s.items.len() >= self.capacity {
                if let Some(i) = s.items.iter().position(|x| x.kind == Kind::Broadcast) {
                    s.items.remove(i);
                    s.dropped_broadcasts += 1;
                } else if r.kind == Kind::Broadcast {
                    s.dropped_broadcasts += 1;
                    continue;
                }
            }
            s.items.push_back(r);
        }
        drop(s);
        self.arrived.notify_waiters();
    }

    pub(crate) fn stop(&self) {
        self.lock().stopped = true;
        self.arrived.notify_waiters();
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().items.len()
    }

    pub(crate) fn dropped_broadcasts(&self) -> u64 {
        self.lock().dropped_broadcasts
    }

    /// Puts items back at the front (a decode failed: nothing is lost).
    pub(crate) fn unget(&self, items: Vec<Received>) {
        let mut s = self.lock();
        for r in items.into_iter().rev() {
            s.items.push_front(r);
        }
    }

    /// Waits per `wait` until there is at least one item, then takes what
    /// `take` chooses. Returns an empty batch on timeout or stop.
    pub(crate) async fn take(
        &self,
        wait: Wait,
        take: impl Fn(&mut VecDeque<Received>) -> Vec<Received>,
    ) -> Vec<Received> {
        let deadline = match wait {
            Wait::For(d) => Some(tokio::time::Instant::now() + d),
            _ => None,
        };
        {
            // Fast path: something is there (or no waiting is wanted).
            let mut s = self.lock();
            if !s.items.is_empty() || s.stopped || wait == Wait::No {
                return take(&mut s.items);
            }
        }
        loop {
            let notified = self.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut s = self.lock();
                if !s.items.is_empty() || s.stopped || wait == Wait::No {
                    return take(&mut s.items);
                }
            }
            match deadline {
                Some(d) => {
                    if tokio::time::timeout_at(d, notified).await.is_err() {
                        return take(&mut self.lock().items);
                    }
                }
                None => notified.await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(kind: Kind, p: &'static str) -> Received {
        Received {
            group: "g".into(),
            kind,
            payload: Bytes::from_static(p.as_bytes()),
        }
    }

    #[test]
    fn full_queue_drops_oldest_broadcast_never_items() {
        let q = LocalQueue::new(2);
        q.push_all([r(Kind::Item, "i1"), r(Kind::Broadcast, "b1")]);
        q.push_all([r(Kind::Broadcast, "b2")]);
        q.push_all([r(Kind::Item, "i2")]);
        let s = q.lock();
        let got: Vec<_> = s.items.iter().map(|x| x.payload.clone()).collect();
        assert_eq!(got, vec![Bytes::from("i1"), Bytes::from("i2")]);
        assert_eq!(s.dropped_broadcasts, 2);
    }

    #[tokio::test]
    async fn take_waits_then_times_out_empty() {
        let q = LocalQueue::new(8);
        let got = q
            .take(Wait::For(Duration::from_millis(20)), |i| {
                i.drain(..).collect()
            })
            .await;
        assert!(got.is_empty());
        q.push_all([r(Kind::Item, "x")]);
        let got = q.take(Wait::Forever, |i| i.drain(..).collect()).await;
        assert_eq!(got.len(), 1);
    }
}
