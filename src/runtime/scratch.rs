//! Per-thread scratch buffers that outlive one call, so that a training step, after its
//! first run, allocates nothing inside the kernels (im2col columns, partial sums).
//!
//! Each thread (the caller's and every pool worker) keeps a small stack of buffers per
//! element type. [`Scratch::take`] takes the smallest one that fits (else the largest, grown,
//! or a new one) and hands out a slice of the requested length; dropping the guard pushes the
//! buffer back. Nested takes on one thread get distinct buffers.

use std::any::Any;
use std::cell::RefCell;
use std::ops::{Deref, DerefMut};

use crate::float::Float;

thread_local! {
    static F32: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
    static F64: RefCell<Vec<Vec<f64>>> = const { RefCell::new(Vec::new()) };
}

/// A scratch slice of `len` elements borrowed from this thread's stack; its contents are
/// whatever the last user left (callers overwrite or [`Scratch::zeroed`]).
pub struct Scratch<T: Float> {
    buf: Vec<T>,
    len: usize,
}

/// Takes a buffer for `len` elements off this thread's stack for `T` (f32 and f64 have one;
/// other types none).
fn pop<T: Float>(len: usize) -> Option<Vec<T>> {
    let mut out: Option<Vec<T>> = None;
    let slot = &mut out as &mut dyn Any;
    if let Some(s) = slot.downcast_mut::<Option<Vec<f32>>>() {
        *s = F32.with(|p| best(&mut p.borrow_mut(), len));
    } else if let Some(s) = slot.downcast_mut::<Option<Vec<f64>>>() {
        *s = F64.with(|p| best(&mut p.borrow_mut(), len));
    }
    out
}

/// The smallest buffer holding `len` elements, or else the largest (which the caller
/// grows): a buffer grows only when none fits, so the order in which nested takes come
/// (it varies with the pool's scheduling) does not make small buffers grow over and over.
fn best<U>(stack: &mut Vec<Vec<U>>, len: usize) -> Option<Vec<U>> {
    let sizes = stack.iter().map(Vec::len).enumerate();
    let fits = sizes
        .clone()
        .filter(|&(_, l)| l >= len)
        .min_by_key(|&(_, l)| l);
    let (i, _) = fits.or_else(|| sizes.max_by_key(|&(_, l)| l))?;
    Some(stack.swap_remove(i))
}

/// Pushes a buffer back on this thread's stack (dropped for types without one).
fn push<T: Float>(buf: Vec<T>) {
    let mut slot = Some(buf);
    let any = &mut slot as &mut dyn Any;
    if let Some(s) = any.downcast_mut::<Option<Vec<f32>>>() {
        let b = s.take();
        // During thread teardown the stack may be gone already; the buffer is then freed.
        let _ = F32.try_with(|p| p.borrow_mut().extend(b));
    } else if let Some(s) = any.downcast_mut::<Option<Vec<f64>>>() {
        let b = s.take();
        let _ = F64.try_with(|p| p.borrow_mut().extend(b));
    }
}

impl<T: Float> Scratch<T> {
    /// A slice of `len` elements with unspecified (but initialised) contents.
    pub fn take(len: usize) -> Self {
        let mut buf = pop::<T>(len).unwrap_or_default();
        if buf.len() < len {
            // Grow once to the largest size seen; later takes reuse it without writing.
            buf.resize(len, T::ZERO);
        }
        Scratch { buf, len }
    }

    /// A slice of `len` zeros.
    pub fn zeroed(len: usize) -> Self {
        let mut s = Self::take(len);
        s.fill(T::ZERO);
        s
    }
}

impl<T: Float> Deref for Scratch<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.buf[..self.len]
    }
}

impl<T: Float> DerefMut for Scratch<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.buf[..self.len]
    }
}

impl<T: Float> Drop for Scratch<T> {
    fn drop(&mut self) {
        push(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_and_nested_takes_are_distinct() {
        let p = {
            let mut a = Scratch::<f32>::take(1000);
            a[0] = 7.0;
            a.as_ptr()
        };
        let a = Scratch::<f32>::take(10);
        assert_eq!(a.as_ptr(), p, "the buffer comes back");
        assert_eq!(a.len(), 10);
        let b = Scratch::<f32>::zeroed(10);
        assert_ne!(a.as_ptr(), b.as_ptr());
        assert!(b.iter().all(|&v| v == 0.0));
        let c = Scratch::<f64>::take(3);
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn a_take_gets_the_smallest_buffer_that_fits() {
        let (big, small) = {
            let a = Scratch::<f64>::take(5000);
            let b = Scratch::<f64>::take(7);
            (a.as_ptr(), b.as_ptr())
        };
        // Taken the other way round, each request still gets the buffer that fits it, so
        // neither grows.
        let b = Scratch::<f64>::take(7);
        let a = Scratch::<f64>::take(5000);
        assert_eq!((a.as_ptr(), b.as_ptr()), (big, small));
        // None fits: the largest grows.
        drop((a, b));
        let c = Scratch::<f64>::take(6000);
        assert_eq!(c.len(), 6000);
        assert_eq!(Scratch::<f64>::take(7).as_ptr(), small);
    }
}
