//! What the threads of one forward share: a spin barrier between phases, and buffers that
//! several threads write at once, each its own elements.
//!
//! A forward runs as one team of threads for its whole length (on the model's persistent
//! pool); between two phases (the input projection, a time step, the step's projection) every
//! thread waits at the barrier. Within a phase each thread writes only the columns of the
//! hidden units it owns, and reads only what no thread writes in that phase.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Spins (a few microseconds) before yielding the core while waiting at the barrier: on a busy
/// machine a waiting thread must not keep the core its partner needs to arrive.
const SPINS_BEFORE_YIELD: u32 = 100;

/// A reusable barrier for a fixed number of threads, spinning rather than sleeping (a step of
/// a small model lasts a few microseconds; waking a sleeping thread costs tens).
#[derive(Debug)]
pub(crate) struct SpinBarrier {
    threads: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    poisoned: AtomicBool,
}

impl SpinBarrier {
    pub(crate) fn new(threads: usize) -> Self {
        SpinBarrier {
            threads,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            poisoned: AtomicBool::new(false),
        }
    }

    /// Waits until every thread of the team has arrived. Everything a thread wrote before it
    /// arrived is visible to every thread after the wait.
    ///
    /// # Panics
    /// If another thread of the team panicked (its [`PoisonOnPanic`] guard marks the barrier),
    /// instead of waiting for it forever.
    pub(crate) fn wait(&self) {
        if self.threads == 1 {
            return;
        }
        let generation = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.threads {
            // The last to arrive resets the count before releasing the others, so that none
            // of them can arrive at the next wait before the reset.
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == generation {
            if self.poisoned.load(Ordering::Relaxed) {
                panic!("another thread of the CPU forward panicked");
            }
            if spins < SPINS_BEFORE_YIELD {
                spins += 1;
                std::hint::spin_loop();
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
