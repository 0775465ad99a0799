//! Recycled tensor storage.
//!
//! A training step allocates the same large buffers every time (activations, their
//! gradients, weight gradients) and frees them all at its end. With the system allocator that
//! round trip is not free: glibc hands buffers of more than a few hundred KiB back to the
//! kernel (munmap, or trimming the top of the heap), and every page of the next step's buffers
//! then faults and is cleared again. On the MNIST CNN's training step (batch 50, one thread)
//! those page faults were a fifth of the step.
//!
//! So a tensor's buffer, when its last owner drops it, goes to a cache instead, and the
//! kernels take their output buffers from it. The cache is one for the process (behind a
//! lock taken once per buffer of 64 KiB or more), so a buffer freed on one thread serves an
//! output made on another. Buffers under 64 KiB
//! are left to the allocator, which serves them from its own free lists without faults.
//! The cache holds at most [`cache_limit`] bytes per element type (default
//! 1 GiB, `TAPEGRAD_BUFFER_CACHE_MB` or [`set_cache_limit`] to change it); past that it
//! frees its oldest buffers. The limit binds only on a step that frees more than that: a
//! ResNet-8 step at batch 128 does, and at 256 MiB its buffers went back to the allocator
//! and faulted in again every step (a tenth of an evaluation pass in page clearing), with
//! no lower peak memory for it. A buffer serves a request for its own length or a little less,
//! never holding more than an eighth over what was asked.
//!
//! ```
//! use tapegrad::prelude::*;
//! let before = tapegrad::buffers::cached_bytes();
//! drop(Tensor::<f32>::zeros([256, 256])); // 256 KiB, returned to the cache
//! assert!(tapegrad::buffers::cached_bytes() >= before + 256 * 256 * 4);
//! tapegrad::buffers::clear_cache(); // every cached buffer back to the allocator
//! assert_eq!(tapegrad::buffers::cached_bytes(), 0);
//! ```

use std::any::Any;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::float::Float;

/// Buffers smaller than this are left to the allocator.
const MIN_BYTES: usize = 64 << 10;
/// At most this many buffers per cache, so that a lookup stays a short scan.
const MAX_BUFFERS: usize = 256;
/// `usize::MAX` until [`set_cache_limit`] or the first use reads the default.
static LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Free buffers of one element type, oldest first.
struct Cache<T> {
    bufs: Vec<Vec<T>>,
    bytes: usize,
}

impl<T> Cache<T> {
    const fn new() -> Self {
        Cache {
            bufs: Vec::new(),
            bytes: 0,
        }
    }

    /// The smallest cached buffer that holds `len` elements and at most an eighth more.
    fn take(&mut self, len: usize) -> Option<Vec<T>> {
        let most = len + len / 8;
        let (i, _) = self
            .bufs
            .iter()
            .enumerate()
            .filter(|(_, b)| (len..=most).contains(&b.capacity()))
            .min_by_key(|(_, b)| b.capacity())?;
        let b = self.bufs.remove(i);
        self.bytes -= bytes_of(&b);
        Some(b)
    }

    fn give(&mut self, mut b: Vec<T>, limit: usize) {
        b.clear();
        self.bytes += bytes_of(&b);
        self.bufs.push(b);
        while self.bytes > limit || self.bufs.len() > MAX_BUFFERS {
            let old = self.bufs.remove(0);
            self.bytes -= bytes_of(&old);
        }
    }
}

fn bytes_of<T>(b: &Vec<T>) -> usize {
    b.capacity() * size_of::<T>()
}

static F32: Mutex<Cache<f32>> = Mutex::new(Cache::new());
static F64: Mutex<Cache<f64>> = Mutex::new(Cache::new());

/// Runs `f` on the cache for T (None for element types without one).
fn with_cache<T: Float, R>(f: impl FnOnce(&mut Cache<T>) -> R) -> Option<R> {
    // The caches are typed; T is matched to one of them through `Any`.
    let cache = (&F32 as &dyn Any)
        .downcast_ref::<Mutex<Cache<T>>>()
        .or_else(|| (&F64 as &dyn Any).downcast_ref::<Mutex<Cache<T>>>())?;
    // A panic while the lock was held leaves a consistent cache (no step can be half done
    // by a panic: none of the operations under the lock panics).
    Some(f(&mut cache.lock().unwrap_or_else(|e| e.into_inner())))
}

/// The most bytes the cache keeps per element type.
pub fn cache_limit() -> usize {
    let v = LIMIT.load(Ordering::Relaxed);
    if v != usize::MAX {
        return v;
    }
    static DEFAULT: OnceLock<usize> = OnceLock::new();
    *DEFAULT.get_or_init(|| {
        std::env::var("TAPEGRAD_BUFFER_CACHE_MB")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(1024)
            .saturating_mul(1 << 20)
    })
}

/// Sets the most bytes the cache keeps per element type; `0` turns it off (buffers go
/// straight back to the allocator). A cache over the new limit shrinks when a buffer next
/// comes back to it; [`clear_cache`] empties it at once.
pub fn set_cache_limit(bytes: usize) {
    LIMIT.store(bytes.min(usize::MAX - 1), Ordering::Relaxed);
}

/// The bytes the cache holds now (f32 and f64 together).
pub fn cached_bytes() -> usize {
    with_cache::<f32, _>(|c| c.bytes).unwrap_or(0) + with_cache::<f64, _>(|c| c.bytes).unwrap_or(0)
}

/// Returns every buffer the cache holds to the allocator.
pub fn clear_cache() {
    with_cache::<f32, _>(|c| *c = Cache::new());
    with_cache::<f64, _>(|c| *c = Cache::new());
}

/// A cached buffer for `len` elements, if one fits (and `len` is large enough to cache).
fn cached<T: Float>(len: usize) -> Option<Vec<T>> {
    if len.saturating_mul(size_of::<T>()) < MIN_BYTES {
        return None;
    }
    with_cache::<T, _>(|c| c.take(len)).flatten()
}

/// An empty vector with room for `len` elements, from the cache when it has a fit.
pub(crate) fn with_capacity<T: Float>(len: usize) -> Vec<T> {
    cached(len).unwrap_or_else(|| Vec::with_capacity(len))
}

/// `len` zeros. A cached buffer is cleared in place; a new one comes zeroed from the
/// allocator (whose fresh pages are zero already, so nothing is written twice).
pub(crate) fn zeroed<T: Float>(len: usize) -> Vec<T> {
    match cached(len) {
        Some(mut b) => {
            b.resize(len, T::ZERO);
            b
        }
        None => vec![T::ZERO; len],
    }
}

/// The values of `iter` (which yields `len` of them), in a buffer from the cache.
pub(crate) fn collect<T: Float>(len: usize, iter: impl Iterator<Item = T>) -> Vec<T> {
    let mut b = with_capacity(len);
    b.extend(iter);
    b
}

/// Hands a buffer no longer needed to the cache (or to the allocator, when it is small or
/// the cache is off).
pub(crate) fn recycle<T: Float>(b: Vec<T>) {
    if bytes_of(&b) < MIN_BYTES {
        return;
    }
    let limit = cache_limit();
    if limit == 0 {
        return;
    }
    // With no cache for T the closure, and `b` with it, is dropped.
    with_cache::<T, _>(|c| c.give(b, limit));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_for_requests_that_fit() {
        // An odd length that no other test of this binary (sharing the cache) asks for.
        let n = 40_013; // 160 KiB of f32
        let b = zeroed::<f32>(n);
        let p = b.as_ptr();
        recycle(b);
        assert!(cached_bytes() >= n * 4);
        // Shorter, with the buffer at most an eighth over: the same buffer, zeroed again.
        let short = n * 8 / 9 + 1;
        let mut c = with_capacity::<f32>(short);
        assert_eq!((c.as_ptr(), c.len()), (p, 0));
        c.resize(short, 1.0);
        recycle(c);
        let z = zeroed::<f32>(n);
        assert_eq!(z.as_ptr(), p);
        assert!(z.iter().all(|&v| v == 0.0) && z.len() == n);
        // Too short to use it, or longer: a new buffer, the cached one stays.
        recycle(z);
        let (shorter, longer) = (with_capacity::<f32>(n * 8 / 9), with_capacity::<f32>(n + 1));
        assert!(shorter.as_ptr() != p && longer.as_ptr() != p);
        // Other element types are kept apart, and small buffers are not cached.
        let other = with_capacity::<f64>(n / 2);
        assert_ne!(other.as_ptr().cast::<f32>(), p);
        let small = vec![0.0f32; 10];
        let q = small.as_ptr();
        recycle(small);
        assert!(with_cache::<f32, _>(|c| c.bufs.iter().all(|b| b.as_ptr() != q)).unwrap());
        let again = with_capacity::<f32>(n);
        assert_eq!(again.as_ptr(), p);
    }

    #[test]
    fn the_cache_keeps_at_most_its_limit_dropping_the_oldest() {
        let mut c = Cache::<f32>::new();
        let make = |n: usize| Vec::<f32>::with_capacity(n);
        c.give(make(100), 1000);
        c.give(make(150), 1000);
        assert_eq!(c.bytes, 1000);
        c.give(make(50), 1000); // over: the oldest (100) goes
        assert_eq!(c.bytes, 800);
        assert_eq!(
            c.bufs.iter().map(Vec::capacity).collect::<Vec<_>>(),
            [150, 50]
        );
        // The smallest fit is taken.
        c.give(make(52), 10_000);
        assert_eq!(c.take(50).map(|b| b.capacity()), Some(50));
        assert_eq!(c.take(50).map(|b| b.capacity()), Some(52));
        assert!(c.take(50).is_none());
    }
}
