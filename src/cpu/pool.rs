//! What the threads of one forward share: a spin barrier between phases, and buffers that
//! several threads write at once, each its own elements.
//!
//! A forward runs as one team of threads for its whole length (on the model's persistent
//! pool); between two phases (the input projection, a time step, the step's projection) every
//! thread waits at the barrier. Within a phase each thread writes only the columns of the
//! hidden units it owns, and reads only what no thread writes in that phase.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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

/// The part of `0..items` that thread `id` of `threads` owns: contiguous, sizes differing by
/// at most one.
pub(crate) fn share(items: usize, threads: usize, id: usize) -> std::ops::Range<usize> {
    (id * items / threads)..((id + 1) * items / threads)
}

#[cfg(test)]
mod tests {
    use super::*;

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
