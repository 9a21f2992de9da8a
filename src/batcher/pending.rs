//! A result on its way: the scheduling thread fills a [`Reply`], the caller holds the
//! [`Pending`] that reads it — blocking with [`Pending::wait`] or as a [`Future`] (any
//! executor; the library needs none). Dropping a `Pending` before its result is ready
//! cancels what it waits for.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};

use crate::error::{Error, Result};

/// The shared cell a result is delivered through.
#[derive(Debug)]
pub(crate) struct Reply<T> {
    slot: Mutex<Slot<T>>,
    ready: Condvar,
    /// Set when the caller dropped its [`Pending`] before the result came.
    cancelled: AtomicBool,
}

#[derive(Debug)]
struct Slot<T> {
    result: Option<Result<T>>,
    /// Taken by the caller.
    taken: bool,
    waker: Option<Waker>,
}

impl<T> Reply<T> {
    /// A reply and the caller's side of it.
    pub fn new() -> (Arc<Reply<T>>, Pending<T>) {
        let reply = Arc::new(Reply {
            slot: Mutex::new(Slot {
                result: None,
                taken: false,
                waker: None,
            }),
            ready: Condvar::new(),
            cancelled: AtomicBool::new(false),
        });
        let pending = Pending {
            reply: Some(reply.clone()),
        };
        (reply, pending)
    }

    /// Delivers the result (the first one delivered counts) and wakes the caller (its waker
    /// called after the lock is released: it may poll the `Pending` at once).
    pub fn send(&self, result: Result<T>) {
        let waker = {
            let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            if slot.result.is_some() || slot.taken {
                return;
            }
            slot.result = Some(result);
            self.ready.notify_all();
            slot.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether the caller dropped its [`Pending`] without the result.
    pub fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }
}

/// A result the batcher is computing: [`wait`](Pending::wait) for it, or `.await` it.
/// Dropping it first cancels the request (for a stream's chunk, see
/// [`BatchStream::feed`](crate::BatchStream::feed)).
#[derive(Debug)]
#[must_use = "dropping a Pending cancels its request"]
pub struct Pending<T> {
    reply: Option<Arc<Reply<T>>>,
}

impl<T> Pending<T> {
    /// Blocks until the result is ready.
    pub fn wait(mut self) -> Result<T> {
        let reply = self
            .reply
            .take()
            .expect("a Pending holds its reply until taken");
        let mut slot = reply.slot.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(result) = slot.result.take() {
                slot.taken = true;
                return result;
            }
            slot = reply.ready.wait(slot).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The result if it is ready, without blocking; `Err(self)` otherwise.
    pub fn try_take(mut self) -> std::result::Result<Result<T>, Self> {
        let reply = self
            .reply
            .as_ref()
            .expect("a Pending holds its reply until taken");
        let taken = {
            let mut slot = reply.slot.lock().unwrap_or_else(|e| e.into_inner());
            let r = slot.result.take();
            slot.taken |= r.is_some();
            r
        };
        match taken {
            Some(r) => {
                self.reply = None;
                Ok(r)
            }
            None => Err(self),
        }
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        let Some(reply) = self.reply.as_ref() else {
            return Poll::Ready(Err(Error::Closed("the result was already taken".into())));
        };
        let mut slot = reply.slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(result) = slot.result.take() {
            slot.taken = true;
            drop(slot);
            self.reply = None;
            return Poll::Ready(result);
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl<T> Drop for Pending<T> {
    fn drop(&mut self) {
        if let Some(reply) = &self.reply {
            let slot = reply.slot.lock().unwrap_or_else(|e| e.into_inner());
            if slot.result.is_none() && !slot.taken {
                reply.cancelled.store(true, Ordering::Release);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_gets_what_was_sent_once() {
        let (reply, pending) = Reply::new();
        reply.send(Ok(3));
        reply.send(Ok(4));
        assert_eq!(pending.wait().unwrap(), 3);
        assert!(!reply.cancelled());
    }

    #[test]
    fn dropping_before_the_result_cancels() {
        let (reply, pending) = Reply::<u8>::new();
        drop(pending);
        assert!(reply.cancelled());
        let (reply, pending) = Reply::new();
        reply.send(Ok(1u8));
        drop(pending);
        assert!(
            !reply.cancelled(),
            "a result already delivered is not a cancellation"
        );
    }

    #[test]
    fn wait_blocks_until_another_thread_sends() {
        let (reply, pending) = Reply::new();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            reply.send(Ok("done"));
        });
        assert_eq!(pending.wait().unwrap(), "done");
        t.join().unwrap();
    }

    #[test]
    fn polls_as_a_future() {
        let (reply, pending) = Reply::new();
        let t = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            reply.send(Ok(7));
        });
        assert_eq!(pollster::block_on(pending).unwrap(), 7);
        t.join().unwrap();
    }
}
