//! Outputs written once. A kernel that overwrites all of its output can write into a new
//! allocation as it stands: zeroing it first (`vec![0.0; n]`) is one more pass over memory
//! that is not in cache yet, done serially on the caller before the kernel starts. For a
//! convolution that pass cost about a fifth of the forward.

use std::mem::MaybeUninit;

use crate::float::Float;

/// A new vector of `len` elements, each written by `write` (its buffer may come from the
/// [`buffers`](crate::runtime::buffers) cache).
///
/// # Safety
/// `write` must write every element of the slice it is given.
pub(crate) unsafe fn written<T: Float>(
    len: usize,
    write: impl FnOnce(&mut [MaybeUninit<T>]),
) -> Vec<T> {
    let mut v = crate::runtime::buffers::with_capacity(len);
    write(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: the caller promises that `write` wrote all `len` elements.
    unsafe { v.set_len(len) };
    v
}

/// Writes every row of `s` (`row` elements each, dividing its length) with `value(i)` for
/// row `i`, and returns it as the written slice it now is.
pub(crate) fn fill_rows<T: Copy>(
    s: &mut [MaybeUninit<T>],
    row: usize,
    value: impl Fn(usize) -> T,
) -> &mut [T] {
    assert!(s.len().is_multiple_of(row), "fill_rows: ragged rows");
    for (i, r) in s.chunks_exact_mut(row.max(1)).enumerate() {
        r.fill(MaybeUninit::new(value(i)));
    }
    // SAFETY: the rows cover `s` (checked above), each written just above.
    unsafe { &mut *(s as *mut [MaybeUninit<T>] as *mut [T]) }
}

/// Views a written slice as one to write into.
///
/// # Safety
/// Only initialised values may be written through the view, so that `s` stays initialised.
pub(crate) unsafe fn as_uninit<T>(s: &mut [T]) -> &mut [MaybeUninit<T>] {
    // SAFETY: `MaybeUninit<T>` has the layout of `T`; the caller keeps the contents valid.
    unsafe { &mut *(s as *mut [T] as *mut [MaybeUninit<T>]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_rows() {
        // SAFETY: the rows cover all 6 elements.
        let v: Vec<f32> = unsafe {
            written(6, |s| {
                fill_rows(s, 2, |i| i as f32);
            })
        };
        assert_eq!(v, [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]);
        let mut w = vec![1.0f64, 2.0];
        // SAFETY: `fill_rows` writes initialised values only.
        fill_rows(unsafe { as_uninit(&mut w) }, 1, |_| 0.5);
        assert_eq!(w, [0.5, 0.5]);
        assert!(fill_rows::<f32>(&mut [], 3, |_| 0.0).is_empty());
    }
}
