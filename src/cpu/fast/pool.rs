//! What the threads of one forward share: a spin barrier between phases, and buffers that
//! several threads write at once, each its own elements.
//!
//! A forward runs as one team of threads for its whole length (on the model's persistent
//! pool); between two phases (the input projection, a time step, the step's projection) every
//! thread waits at the barrier. Within a phase each thread writes only the columns of the
//! hidden units it owns, and reads only what no thread writes in that phase. A time step's
//! items (tiles of hidden units) start out shared evenly; a thread that has done its own takes
//! the last ones of a thread that has not ([`ItemQueue`]), so that a thread slowed down by the
//! rest of the machine does not hold the whole team at the barrier.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a thread spins at the barrier before it yields the core. Long enough for a partner
/// that is running to arrive (a step of a small model lasts a few microseconds): yielding on a
/// busy machine hands the core to another process for a whole time slice. Short enough that a
/// partner that is not running (descheduled, or waiting for this very core) is not kept
/// waiting long.
const SPIN_BEFORE_YIELD: Duration = Duration::from_micros(20);

/// Spins between two looks at the clock.
const SPINS_PER_CLOCK: u32 = 64;

/// A reusable barrier for a fixed number of threads, spinning rather than sleeping (a step of
/// a small model lasts a few microseconds; waking a sleeping thread costs tens).
#[derive(Debug)]
pub(crate) struct SpinBarrier {
    threads: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    poisoned: AtomicBool,
    /// Waits that spun out their time and yielded.
    yields: AtomicUsize,
    /// Yields after which the team hands every remaining phase to its first thread.
    solo_after: usize,
    /// Set (by the last thread to arrive at a barrier, before it releases the others) once
    /// `solo_after` waits have yielded: from then on thread 0 runs alone and `wait` returns at
    /// once.
    solo: AtomicBool,
}

impl SpinBarrier {
    /// A barrier for `threads` threads that goes solo after `solo_after` yields (`usize::MAX`:
    /// never).
    pub(crate) fn new(threads: usize, solo_after: usize) -> Self {
        SpinBarrier {
            threads,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            poisoned: AtomicBool::new(false),
            yields: AtomicUsize::new(0),
            solo_after,
            solo: AtomicBool::new(false),
        }
    }

    /// Whether the team went solo: its threads did not all run at once (a busy machine).
    /// Every thread sees the same answer after the same `wait`.
    pub(crate) fn solo(&self) -> bool {
        self.solo.load(Ordering::Acquire)
    }

    /// Waits until every thread of the team has arrived. Everything a thread wrote before it
    /// arrived is visible to every thread after the wait.
    ///
    /// # Panics
    /// If another thread of the team panicked (its [`PoisonOnPanic`] guard marks the barrier),
    /// instead of waiting for it forever.
    pub(crate) fn wait(&self) {
        if self.threads == 1 || self.solo.load(Ordering::Acquire) {
            return;
        }
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.threads {
            // The last to arrive resets the count before releasing the others, so that none
            // of them can arrive at the next wait before the reset.
            self.arrived.store(0, Ordering::Relaxed);
            if self.yields.load(Ordering::Relaxed) >= self.solo_after {
                self.solo.store(true, Ordering::Relaxed);
            }
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        let mut since: Option<Instant> = None;
        let mut spinning = true;
        while self.generation.load(Ordering::Acquire) == generation {
            if self.poisoned.load(Ordering::Relaxed) {
                panic!("another thread of the CPU forward panicked");
            }
            if spinning {
                spins += 1;
                std::hint::spin_loop();
                if spins.is_multiple_of(SPINS_PER_CLOCK)
                    && since.get_or_insert_with(Instant::now).elapsed() >= SPIN_BEFORE_YIELD
                {
                    spinning = false;
                    self.yields.fetch_add(1, Ordering::Relaxed);
                }
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// Marks the barrier poisoned when the thread holding it unwinds, so that the team's other
/// threads stop waiting at the barrier.
pub(crate) struct PoisonOnPanic<'a>(pub(crate) &'a SpinBarrier);

impl Drop for PoisonOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.poisoned.store(true, Ordering::Relaxed);
        }
    }
}

/// A buffer that the threads of one forward read and write concurrently, each thread its own
/// elements (see the module docs for the rule that makes this sound).
pub(crate) struct Shared<'a> {
    ptr: *mut f32,
    len: usize,
    _buffer: PhantomData<&'a mut [f32]>,
}

// SAFETY: `Shared` is a `&mut [f32]` handed to several threads; every access goes through the
// `unsafe` methods below, whose callers guarantee that no element is written by one thread
// while another thread reads or writes it (phases separated by `SpinBarrier::wait`, which
// orders memory with acquire/release).
unsafe impl Send for Shared<'_> {}
// SAFETY: as above.
unsafe impl Sync for Shared<'_> {}

impl<'a> Shared<'a> {
    pub(crate) fn new(buffer: &'a mut [f32]) -> Self {
        Shared {
            ptr: buffer.as_mut_ptr(),
            len: buffer.len(),
            _buffer: PhantomData,
        }
    }

    /// `len` elements from `start`, to read.
    ///
    /// # Safety
    /// No thread may write any of these elements while the returned slice lives.
    #[inline(always)]
    pub(crate) unsafe fn slice(&self, start: usize, len: usize) -> &[f32] {
        assert!(start <= self.len && len <= self.len - start);
        // SAFETY: in bounds (checked above) of a live buffer borrowed for 'a; the caller
        // guarantees that nobody writes the range meanwhile.
        unsafe { std::slice::from_raw_parts(self.ptr.add(start), len) }
    }

    /// `len` elements from `start`, to write.
    ///
    /// # Safety
    /// No other thread may read or write any of these elements, and this thread may hold no
    /// other slice of them, while the returned slice lives.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice_mut(&self, start: usize, len: usize) -> &mut [f32] {
        assert!(start <= self.len && len <= self.len - start);
        // SAFETY: in bounds (checked above) of a live buffer borrowed mutably for 'a; the
        // caller guarantees exclusive access to the range meanwhile.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}

/// The items of one phase that one thread has not started yet: its own from the front, another
/// thread's from the back. An item is taken once, whoever takes it; which thread computes it
/// does not change its result (the work is split by output columns, never along a sum).
///
/// Aligned to two cache lines so that the threads' queues share none (each thread updates its
/// own at every item).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct ItemQueue {
    /// `front << 32 | back`: the items `front..back` are left.
    range: AtomicU64,
}

impl ItemQueue {
    fn pack(range: std::ops::Range<usize>) -> u64 {
        let (front, back) = (range.start as u64, range.end as u64);
        debug_assert!(front <= back && back <= u64::from(u32::MAX));
        (front << 32) | back
    }

    /// The owner's items for a new phase. Called by the owner once it is past the barrier
    /// that ended the previous phase, whose items were all taken (so that a thread looking
    /// here before the reset finds nothing left).
    pub(crate) fn reset(&self, items: std::ops::Range<usize>) {
        self.range.store(Self::pack(items), Ordering::Release);
    }

    /// Takes the first item left or the last.
    pub(crate) fn take(&self, from_front: bool) -> Option<usize> {
        let mut cur = self.range.load(Ordering::Acquire);
        loop {
            let (front, back) = ((cur >> 32) as usize, (cur & u64::from(u32::MAX)) as usize);
            if front >= back {
                return None;
            }
            let (item, rest) = if from_front {
                (front, front + 1..back)
            } else {
                (back - 1, front..back - 1)
            };
            match self.range.compare_exchange_weak(
                cur,
                Self::pack(rest),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(item),
                Err(now) => cur = now,
            }
        }
    }
}

/// The next item for thread `id` of a team whose queues are `queues`: its own first, then
/// those of the others. `forwards`: a thread takes its own items from the front and the
/// others' from the back; otherwise the other way round.
pub(crate) fn next_item(queues: &[ItemQueue], id: usize, forwards: bool) -> Option<usize> {
    queues[id]
        .take(forwards)
        .or_else(|| (1..queues.len()).find_map(|o| queues[(id + o) % queues.len()].take(!forwards)))
}

/// The part of `0..items` that thread `id` of `threads` owns: contiguous, sizes differing by
/// at most one.
pub(crate) fn share(items: usize, threads: usize, id: usize) -> std::ops::Range<usize> {
    (id * items / threads)..((id + 1) * items / threads)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_taken_once_whoever_takes_it() {
        for (threads, forwards) in [1, 2, 3, 5]
            .into_iter()
            .flat_map(|t| [(t, true), (t, false)])
        {
            for items in [0, 1, 4, 7, 64] {
                let queues: Vec<ItemQueue> = (0..threads).map(|_| ItemQueue::default()).collect();
                for (id, q) in queues.iter().enumerate() {
                    q.reset(share(items, threads, id));
                }
                let mut taken: Vec<usize> = std::thread::scope(|s| {
                    let handles: Vec<_> = (0..threads)
                        .map(|id| {
                            let queues = &queues;
                            s.spawn(move || {
                                std::iter::from_fn(|| next_item(queues, id, forwards))
                                    .collect::<Vec<_>>()
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .flat_map(|h| h.join().unwrap())
                        .collect()
                });
                taken.sort_unstable();
                assert_eq!(taken, (0..items).collect::<Vec<_>>(), "{threads} threads");
            }
        }
        // A thread alone takes its own items in order, then another's from the back; or, not
        // `forwards`, its own backwards, then another's from the front.
        for (forwards, expect) in [(true, [0, 1, 4, 3, 2]), (false, [1, 0, 2, 3, 4])] {
            let queues = [ItemQueue::default(), ItemQueue::default()];
            queues[0].reset(0..2);
            queues[1].reset(2..5);
            let order: Vec<usize> =
                std::iter::from_fn(|| next_item(&queues, 0, forwards)).collect();
            assert_eq!(order, expect);
        }
    }

    #[test]
    fn every_thread_sees_the_team_go_solo_after_the_same_wait() {
        // `solo_after` 0: the first round goes solo; `usize::MAX`: never.
        for (solo_after, expect) in [(0, true), (usize::MAX, false)] {
            let barrier = SpinBarrier::new(3, solo_after);
            let seen: Vec<bool> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..3)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            barrier.solo()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert_eq!(seen, vec![expect; 3]);
            // Once solo, a wait returns at once, even for one thread alone.
            if expect {
                barrier.wait();
            }
        }
    }
}
