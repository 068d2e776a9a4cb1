//! A bounded queue between a socket and its connection tasks, built for
//! batches.
//!
//! tokio's bounded `mpsc` pays a semaphore lock per received message; at
//! millions of small messages per second that dominates. Here producers push
//! single items (one uncontended lock), and the consumer takes *everything*
//! queued in one lock, so per-message cost is a push and a pop on a
//! `VecDeque`. The consumer is woken only when it sleeps on an empty queue;
//! producers are woken only when a take frees room in a full one.
//!
//! Two marks bound what waits in the pipe: a message count (ZeroMQ's HWM)
//! and a byte total, so large messages cannot pile up gigabytes (one item
//! always fits, however large, so a big message is never refused outright).
//! The marks bound what waits in the pipe. Items a consumer has
//! already taken into its own batch are not counted, so up to twice the mark
//! can be in flight between two parties (libzmq's marks are approximate too).

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::sync::Notify;

/// Why a push failed; the item is handed back.
#[derive(Debug)]
pub(crate) enum PushError<T> {
    /// At the high-water mark.
    Full(T),
    /// The consumer is gone, or the producers' side was closed.
    Closed(T),
}

/// How many bytes an item holds, for the byte mark.
pub(crate) trait Weigh {
    fn weight(&self) -> usize;
}

impl Weigh for ironhouse_zmtp::Message {
    fn weight(&self) -> usize {
        self.size()
    }
}

#[derive(Debug)]
struct State<T> {
    queue: VecDeque<T>,
    /// Sum of the queued items' weights.
    bytes: usize,
    /// The consumer, parked on an empty queue.
    consumer: Option<Waker>,
    /// No more items will come (the consumer drains what is left).
    producers_closed: bool,
    /// Nobody will take items any more.
    consumer_closed: bool,
}

/// A multi-producer, single-consumer bounded queue. Share it in an `Arc`.
#[derive(Debug)]
pub(crate) struct Pipe<T> {
    state: Mutex<State<T>>,
    room: Notify,
    hwm: usize,
    max_bytes: usize,
}

impl<T> State<T> {
    /// Whether an item of `weight` bytes may join the queue now.
    fn admits(&self, weight: usize, hwm: usize, max_bytes: usize) -> bool {
        self.queue.is_empty()
            || (self.queue.len() < hwm && self.bytes.saturating_add(weight) <= max_bytes)
    }
}

impl<T: Weigh> Pipe<T> {
    /// A pipe holding at most `hwm` items and (beyond its first item) at most
    /// `max_bytes` bytes.
    pub(crate) fn new(hwm: usize, max_bytes: usize) -> Self {
        Pipe {
            state: Mutex::new(State {
                bytes: 0,
                queue: VecDeque::new(),
                consumer: None,
                producers_closed: false,
                consumer_closed: false,
            }),
            room: Notify::new(),
            hwm: hwm.max(1),
            max_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // The state stays consistent even if a holder panicked.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues an item if there is room.
    pub(crate) fn try_push(&self, item: T) -> Result<(), PushError<T>> {
        let mut s = self.lock();
        if s.consumer_closed || s.producers_closed {
            return Err(PushError::Closed(item));
        }
        let w = item.weight();
        if !s.admits(w, self.hwm, self.max_bytes) {
            return Err(PushError::Full(item));
        }
        s.bytes += w;
        s.queue.push_back(item);
        let waker = s.consumer.take();
        drop(s);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Queues an item even beyond the high-water mark: for the few control
    /// items a socket adds itself (one per peer arrival or departure), which
    /// must not be lost nor wait. Fails only when the pipe is closed.
    pub(crate) fn push_control(&self, item: T) -> Result<(), T> {
        let mut s = self.lock();
        if s.consumer_closed || s.producers_closed {
            return Err(item);
        }
        s.bytes += item.weight();
        s.queue.push_back(item);
        let waker = s.consumer.take();
        drop(s);
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// Queues an item, waiting for room.
    ///
    /// # Cancel safety
    /// Not cancel safe: the item is dropped if cancelled while waiting.
    pub(crate) async fn push(&self, mut item: T) -> Result<(), T> {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.try_push(item) {
                Ok(()) => return Ok(()),
                Err(PushError::Closed(i)) => return Err(i),
                Err(PushError::Full(i)) => item = i,
            }
            room.await;
        }
    }

    /// Moves items from the front of `items` while there is room. Returns
    /// `false` if the consumer is gone.
    pub(crate) fn push_from(&self, items: &mut VecDeque<T>) -> bool {
        let mut s = self.lock();
        if s.consumer_closed {
            return false;
        }
        let mut moved = false;
        while let Some(front) = items.front() {
            let w = front.weight();
            if !s.admits(w, self.hwm, self.max_bytes) {
                break;
            }
            s.bytes += w;
            s.queue.push_back(items.pop_front().expect("front exists"));
            moved = true;
        }
        if !moved {
            return true;
        }
        let waker = s.consumer.take();
        drop(s);
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// Resolves once the queue is below its high-water mark, or closed.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub(crate) async fn room(&self) {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            {
                let s = self.lock();
                if (s.queue.len() < self.hwm && s.bytes < self.max_bytes)
                    || s.queue.is_empty()
                    || s.consumer_closed
                    || s.producers_closed
                {
                    return;
                }
            }
            room.await;
        }
    }

    /// Takes up to `max` items into `out`. `Ready(true)` when items were
    /// taken, `Ready(false)` when the queue is empty and producers closed it,
    /// `Pending` (consumer registered for a wake-up) when empty and open.
    pub(crate) fn poll_take(
        &self,
        cx: &mut Context<'_>,
        out: &mut VecDeque<T>,
        max: usize,
    ) -> Poll<bool> {
        let mut s = self.lock();
        if s.queue.is_empty() {
            if s.producers_closed {
                return Poll::Ready(false);
            }
            s.consumer = Some(cx.waker().clone());
            return Poll::Pending;
        }
        if s.queue.len() <= max && out.is_empty() {
            std::mem::swap(&mut s.queue, out);
            s.bytes = 0;
        } else {
            let n = max.min(s.queue.len());
            let taken: usize = s.queue.iter().take(n).map(Weigh::weight).sum();
            s.bytes -= taken;
            out.extend(s.queue.drain(..n));
        }
        drop(s);
        // Room was freed; a producer may be waiting for it (by count or by bytes).
        self.room.notify_waiters();
        Poll::Ready(true)
    }

    /// Takes up to `max` items, waiting for at least one. `false` when the
    /// producers closed the pipe and it is empty.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub(crate) async fn take(&self, out: &mut VecDeque<T>, max: usize) -> bool {
        std::future::poll_fn(|cx| self.poll_take(cx, out, max)).await
    }

    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.lock().queue.is_empty()
    }

    /// No more items will be pushed; the consumer drains the rest, then sees the end.
    pub(crate) fn close_producers(&self) {
        let mut s = self.lock();
        s.producers_closed = true;
        let waker = s.consumer.take();
        drop(s);
        if let Some(w) = waker {
            w.wake();
        }
        self.room.notify_waiters();
    }

    /// The consumer is gone: pushes fail from now on and queued items are dropped.
    pub(crate) fn close_consumer(&self) {
        let mut s = self.lock();
        s.consumer_closed = true;
        let dropped = std::mem::take(&mut s.queue);
        s.bytes = 0;
        drop(s);
        drop(dropped);
        self.room.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    impl Weigh for i32 {
        fn weight(&self) -> usize {
            0
        }
    }
    impl Weigh for u32 {
        fn weight(&self) -> usize {
            0
        }
    }
    impl Weigh for Vec<u8> {
        fn weight(&self) -> usize {
            self.len()
        }
    }

    #[test]
    fn byte_mark_bounds_but_always_admits_one() {
        let p = Pipe::new(100, 10);
        p.try_push(vec![0u8; 50]).unwrap();
        assert!(matches!(p.try_push(vec![0u8; 1]), Err(PushError::Full(_))));
        let mut out = VecDeque::new();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert_eq!(p.poll_take(&mut cx, &mut out, 10), Poll::Ready(true));
        p.try_push(vec![0u8; 6]).unwrap();
        p.try_push(vec![0u8; 4]).unwrap();
        assert!(matches!(p.try_push(vec![0u8; 1]), Err(PushError::Full(_))));
        let mut items: VecDeque<Vec<u8>> = [vec![0u8; 1]].into();
        assert!(p.push_from(&mut items));
        assert_eq!(items.len(), 1, "no room by bytes");
    }

    #[tokio::test]
    async fn bounded_and_batched() {
        let p = Pipe::new(2, usize::MAX);
        p.try_push(1).unwrap();
        p.try_push(2).unwrap();
        assert!(matches!(p.try_push(3), Err(PushError::Full(3))));
        let mut out = VecDeque::new();
        assert!(p.take(&mut out, 10).await);
        assert_eq!(out, [1, 2]);
        p.try_push(3).unwrap();
        p.close_producers();
        assert!(matches!(p.try_push(4), Err(PushError::Closed(4))));
        out.clear();
        assert!(p.take(&mut out, 10).await);
        assert_eq!(out, [3]);
        assert!(!p.take(&mut out, 10).await, "closed and empty");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn producers_wait_for_room_and_nothing_is_lost() {
        let p = Arc::new(Pipe::new(4, usize::MAX));
        let mut producers = Vec::new();
        for k in 0..3u32 {
            let p = p.clone();
            producers.push(tokio::spawn(async move {
                for i in 0..1000u32 {
                    p.push(k * 1000 + i).await.unwrap();
                }
            }));
        }
        let mut got = Vec::new();
        let mut out = VecDeque::new();
        while got.len() < 3000 {
            let more =
                tokio::time::timeout(std::time::Duration::from_secs(10), p.take(&mut out, 3))
                    .await
                    .expect("no hang");
            assert!(more);
            got.extend(out.drain(..));
        }
        for h in producers {
            h.await.unwrap();
        }
        got.sort_unstable();
        assert_eq!(got, (0..3000).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn consumer_gone_fails_pushes_and_releases_waiters() {
        let p = Arc::new(Pipe::new(1, usize::MAX));
        p.try_push(1).unwrap();
        let waiter = {
            let p = p.clone();
            tokio::spawn(async move { p.push(2).await })
        };
        tokio::task::yield_now().await;
        p.close_consumer();
        assert_eq!(
            tokio::time::timeout(std::time::Duration::from_secs(10), waiter)
                .await
                .unwrap()
                .unwrap(),
            Err(2)
        );
        let mut items: VecDeque<i32> = [5].into();
        assert!(!p.push_from(&mut items));
    }
}
