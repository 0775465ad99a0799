//! How many threads the kernels use.
//!
//! Every parallel kernel of the crate runs on one shared pool, so several tapes driven from
//! several user threads queue their work on the same workers instead of each starting its
//! own (no oversubscription). The size comes, in order, from [`set_num_threads`], the
//! `TAPEGRAD_THREADS` environment variable, or the number of cores.
//!
//! ```
//! tapegrad::threads::set_num_threads(1); // e.g. to benchmark single-threaded
//! assert_eq!(tapegrad::threads::num_threads(), 1);
//! tapegrad::threads::set_num_threads(0); // back to the default
//! assert!(tapegrad::threads::num_threads() >= 1);
//! ```

use std::sync::{Arc, RwLock};

use rayon::prelude::*;

use crate::float::Float;
use crate::runtime::scratch::Scratch;
use rayon::{ThreadPool, ThreadPoolBuilder};

/// An output pointer that may cross to pool threads, each of which writes only its own
/// disjoint elements (a block of C, an image, a band's columns): the one place such a
/// pointer is declared `Send`.
#[derive(Clone, Copy)]
pub(crate) struct SharedOut<T>(pub(crate) *mut T);
impl<T> SharedOut<T> {
    /// The pointer (a method, so that closures capture the `Send` wrapper, not the field).
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}
// SAFETY: users give different threads disjoint elements, and read none of them meanwhile.
unsafe impl<T: Send> Send for SharedOut<T> {}
unsafe impl<T: Send> Sync for SharedOut<T> {}

/// The pool, built on first use; replaced by [`set_num_threads`].
static POOL: RwLock<Option<Arc<ThreadPool>>> = RwLock::new(None);

/// The size the pool gets when nobody chose one: `TAPEGRAD_THREADS` when it holds a positive
/// integer, otherwise every core the process may use.
pub fn default_num_threads() -> usize {
    std::env::var("TAPEGRAD_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn build(n: usize) -> Arc<ThreadPool> {
    let pool = ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("tapegrad-{i}"))
        .build();
    // Building fails only when the OS refuses to start threads; a pool of one thread (which
    // runs work on its caller's behalf) is then the best there is.
    Arc::new(pool.unwrap_or_else(|_| {
        ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("tapegrad: cannot start even one worker thread")
    }))
}

/// Sets the number of threads every kernel uses from now on; `0` restores the default
/// ([`default_num_threads`]). Work already running finishes on the old pool.
pub fn set_num_threads(n: usize) {
    let n = if n == 0 { default_num_threads() } else { n };
    let mut slot = POOL.write().unwrap_or_else(|e| e.into_inner());
    if slot.as_ref().is_none_or(|p| p.current_num_threads() != n) {
        *slot = Some(build(n));
    }
}

/// The number of threads the kernels use.
pub fn num_threads() -> usize {
    pool().current_num_threads()
}

/// The shared pool (built with the default size on first use).
pub(crate) fn pool() -> Arc<ThreadPool> {
    if let Some(p) = POOL.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        return p.clone();
    }
    let mut slot = POOL.write().unwrap_or_else(|e| e.into_inner());
    slot.get_or_insert_with(|| build(default_num_threads()))
        .clone()
}

/// Runs `f` on the pool when there is more than one thread and the work is big enough to
/// pay for the hand-over (`flops` of arithmetic, roughly); runs it on the caller otherwise.
/// Inside `f`, rayon's parallel iterators and the GEMM use the pool's threads.
pub(crate) fn run<R: Send>(flops: usize, f: impl FnOnce(usize) -> R + Send) -> R {
    // Below this a hand-over to the pool (a few microseconds) costs more than it saves.
    const MIN_PARALLEL_FLOPS: usize = 200_000;
    if flops < MIN_PARALLEL_FLOPS {
        return f(1);
    }
    let pool = pool();
    let n = pool.current_num_threads();
    if n == 1 {
        return f(1);
    }
    pool.install(|| f(n))
}

/// Items per chunk when `items` are split over `threads` threads: two chunks per thread
/// (room for work stealing), or `None` (one chunk) for one thread or fewer items than
/// threads. The one rule of [`for_each_chunk`], [`for_each_range`] and [`sum_chunks`].
fn chunk_len(items: usize, threads: usize) -> Option<usize> {
    (threads > 1 && items >= threads).then(|| items.div_ceil(2 * threads))
}

/// Splits `out` (`per_item` elements for each of its items) into chunks of whole items and
/// runs `f(first_item, chunk, threads)` on each: on the caller for small `work`; across the
/// pool, two chunks per thread (room for work stealing), when there are at least as many
/// items as threads; otherwise as one chunk with `threads` for `f` to split inside (a
/// GEMM's own threads).
pub(crate) fn for_each_chunk<U: Send>(
    work: usize,
    per_item: usize,
    out: &mut [U],
    f: impl Fn(usize, &mut [U], usize) + Sync + Send,
) {
    if out.is_empty() || per_item == 0 {
        return;
    }
    let items = out.len() / per_item;
    run(work, |threads| {
        // Parallel iterators only inside the pool: outside it they would start rayon's
        // global one.
        let Some(chunk) = chunk_len(items, threads) else {
            return f(0, out, threads);
        };
        out.par_chunks_mut(chunk * per_item)
            .enumerate()
            .for_each(|(i, o)| f(i * chunk, o, 1));
    });
}

/// Runs `f(range)` over the items `0..n` in ranges, split like [`for_each_chunk`] splits a
/// slice: for work whose outputs are not one slice (raw pointers into uninitialised
/// memory, say).
pub(crate) fn for_each_range(
    work: usize,
    n: usize,
    f: impl Fn(std::ops::Range<usize>) + Sync + Send,
) {
    if n == 0 {
        return;
    }
    run(work, |threads| {
        let Some(chunk) = chunk_len(n, threads) else {
            return f(0..n);
        };
        (0..n.div_ceil(chunk))
            .into_par_iter()
            .for_each(|i| f(i * chunk..((i + 1) * chunk).min(n)));
    });
}

/// Sums `n` items into `out` with `sum(items, acc, threads)`, which adds the items `items`
/// into `acc` (as long as `out`): on the caller for small `work` or few items; otherwise
/// each chunk of items (two per thread) sums into a zeroed partial of its own and the
/// partials are added into `out` in chunk order, so that a given thread count always gives
/// the same bits.
pub(crate) fn sum_chunks<T: Float>(
    work: usize,
    n: usize,
    out: &mut [T],
    sum: impl Fn(std::ops::Range<usize>, &mut [T], usize) + Sync + Send,
) {
    run(work, |threads| {
        let Some(chunk) = chunk_len(n, threads) else {
            return sum(0..n, out, threads);
        };
        let len = out.len();
        let mut parts = Scratch::<T>::zeroed(n.div_ceil(chunk) * len);
        parts
            .par_chunks_mut(len.max(1))
            .enumerate()
            .for_each(|(k, part)| sum(k * chunk..((k + 1) * chunk).min(n), part, 1));
        for part in parts.chunks_exact(len.max(1)) {
            for (t, &p) in out.iter_mut().zip(part) {
                *t += p;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_work_stays_on_the_caller() {
        let caller = std::thread::current().id();
        assert_eq!(run(10, |_| std::thread::current().id()), caller);
    }

    #[test]
    fn big_work_sees_the_pool_size() {
        let (n, seen) = run(usize::MAX, |n| (n, rayon::current_num_threads()));
        assert!(n >= 1);
        if n > 1 {
            assert_eq!(seen, n, "inside the pool, rayon sees the pool");
        }
    }
}
