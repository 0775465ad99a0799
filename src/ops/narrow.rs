//! A contiguous range of indices along one axis: `narrow` and `slice`.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::shape::Shape;
use crate::tape::Var;
use crate::tensor::Tensor;
use std::ops::Range;

impl<'t, T: Float> Var<'t, T> {
    /// The `len` indices of `axis` from `start`, as `torch.narrow(x, axis, start, len)`:
    /// `y[…, i, …] = x[…, start + i, …]` for `i < len`. The result is a copy (the whole
    /// range shares the buffer). `len` may be 0 and `start` may equal the extent when it is.
    ///
    /// Shapes: `[…, d, …] → […, len, …]`, with `start + len ≤ d`.
    ///
    /// VJP: `∂L/∂x` is zero except `∂L/∂x[…, start..start + len, …] = g`: `g` scattered
    /// into zeros of the shape of `x`.
    ///
    /// Errors: `axis` not below the rank, `start` beyond the extent, or `start + len` past
    /// it.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]));
    /// let y = x.narrow(1, 1, 2);
    /// assert_eq!(y.value().to_vec(), vec![2.0, 3.0, 5.0, 6.0]);
    /// let g = tape.backward(y.sum());
    /// assert_eq!(g[x].to_vec(), vec![0.0, 1.0, 1.0, 0.0, 1.0, 1.0]);
    /// assert!(x.try_narrow(1, 2, 2).is_err());
    /// ```
    #[track_caller]
    pub fn try_narrow(self, axis: usize, start: usize, len: usize) -> Result<Var<'t, T>, Error> {
        let shape = self.shape();
        Error::check_axis("narrow", axis, shape.rank())?;
        let d = shape[axis];
        if start > d {
            return Err(Error::bad_argument(
                "narrow",
                format!("start {start} is beyond the extent {d} of axis {axis} (shape {shape})"),
            ));
        }
        // Compared as `len > d - start` so that a huge `len` cannot overflow `start + len`.
        if len > d - start {
            return Err(Error::bad_argument(
                "narrow",
                format!(
                    "start {start} with length {len} runs past the extent {d} of axis {axis} (shape {shape}); the largest length from there is {}",
                    d - start
                ),
            ));
        }
        Ok(self.narrow_unchecked("narrow", axis, start, len))
    }

    /// [`Var::try_narrow`], panicking on an axis or range out of bounds.
    ///
    /// # Panics
    /// With the message of [`Var::try_narrow`]'s error.
    #[track_caller]
    pub fn narrow(self, axis: usize, start: usize, len: usize) -> Var<'t, T> {
        self.try_narrow(axis, start, len).or_panic()
    }

    /// The indices `range` of `axis`, as `x[…, range, …]` in NumPy or PyTorch (without
    /// steps or negative indices): `narrow(axis, range.start, range.len())`. An empty range
    /// (`start == end`) gives an extent of 0.
    ///
    /// Shapes: `[…, d, …] → […, range.end − range.start, …]`, with `range.end ≤ d`.
    ///
    /// VJP: `g` scattered into zeros of the shape of `x` at `range` along `axis`.
    ///
    /// Errors: `axis` not below the rank, `range.start > range.end`, or `range.end` past
    /// the extent.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.param(Tensor::arange(5));
    /// assert_eq!(x.slice(0, 1..4).value().to_vec(), vec![1.0, 2.0, 3.0]);
    /// assert!(x.try_slice(0, 3..6).is_err());
    /// ```
    #[track_caller]
    pub fn try_slice(self, axis: usize, range: Range<usize>) -> Result<Var<'t, T>, Error> {
        let shape = self.shape();
        Error::check_axis("slice", axis, shape.rank())?;
        let d = shape[axis];
        if range.start > range.end {
            return Err(Error::bad_argument(
                "slice",
                format!(
                    "range {range:?} of axis {axis} is decreasing; the start must not exceed the end"
                ),
            ));
        }
        if range.end > d {
            return Err(Error::bad_argument(
                "slice",
                format!("range {range:?} runs past the extent {d} of axis {axis} (shape {shape})"),
            ));
        }
        Ok(self.narrow_unchecked("slice", axis, range.start, range.len()))
    }

    /// [`Var::try_slice`], panicking on an axis or range out of bounds.
    ///
    /// # Panics
    /// With the message of [`Var::try_slice`]'s error.
    #[track_caller]
    pub fn slice(self, axis: usize, range: Range<usize>) -> Var<'t, T> {
        self.try_slice(axis, range).or_panic()
    }

    /// Records `narrow`, its arguments already checked to lie within the shape.
    #[track_caller]
    fn narrow_unchecked(
        self,
        op: &'static str,
        axis: usize,
        start: usize,
        len: usize,
    ) -> Var<'t, T> {
        let x = self.value();
        let in_shape = x.shape().clone();
        let d = in_shape[axis];
        let inner: usize = in_shape[axis + 1..].iter().product();
        // Everything before `axis` is `outer` rows; the range is one block of each row.
        let b = Blocks {
            outer: in_shape[..axis].iter().product(),
            row: d * inner,
            start: start * inner,
            len: len * inner,
        };
        let mut out_shape = in_shape.clone();
        out_shape[axis] = len;
        let y = if start == 0 && len == d {
            x // the whole axis: share the buffer
        } else {
            Tensor::from_vec(gather_blocks(x.data(), b), out_shape)
        };
        self.tape().record_differentiable(op, &[self], y, move |a| {
            [Some(a.g().unnarrow(
                b,
                in_shape.clone(),
                (axis, start, len),
            ))]
            .into()
        })
    }

    /// The VJP of narrow, an op of its own: the gradient placed back in its range of a
    /// tensor of zeros of the input's shape. Its own VJP is the narrow.
    #[track_caller]
    fn unnarrow(self, b: Blocks, in_shape: Shape, range: (usize, usize, usize)) -> Var<'t, T> {
        let gx = self.with_value(|g| Tensor::from_vec(scatter_blocks(g.data(), b), in_shape));
        self.tape()
            .record_differentiable("narrow_backward", &[self], gx, move |a| {
                let (axis, start, len) = range;
                [Some(a.g().narrow_unchecked("narrow", axis, start, len))].into()
            })
    }
}

// ---------------------------------------------------------------------------------------
// Kernel: the block copies behind narrow (slices and sizes only; no tape). Kept here as
// private functions, beside the one op that uses them.
// ---------------------------------------------------------------------------------------

/// A range of each row of a row-major buffer seen as `outer` rows of `row` elements:
/// elements `start..start + len` of every row.
#[derive(Clone, Copy)]
struct Blocks {
    outer: usize,
    row: usize,
    start: usize,
    len: usize,
}

/// The selected range of every row, packed: `outer · len` elements.
fn gather_blocks<T: Float>(x: &[T], b: Blocks) -> Vec<T> {
    let mut y = Vec::with_capacity(b.outer * b.len);
    for o in 0..b.outer {
        let s = o * b.row + b.start;
        y.extend_from_slice(&x[s..s + b.len]);
    }
    y
}

/// The inverse of [`gather_blocks`]: `g`'s packed ranges placed back into their rows of an
/// `outer · row` buffer of zeros.
fn scatter_blocks<T: Float>(g: &[T], b: Blocks) -> Vec<T> {
    let mut x = crate::runtime::buffers::zeroed(b.outer * b.row);
    for o in 0..b.outer {
        let s = o * b.row + b.start;
        x[s..s + b.len].copy_from_slice(&g[o * b.len..(o + 1) * b.len]);
    }
    x
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::tape::Tape;
    use crate::tensor::Tensor;
    use rand::SeedableRng;

    #[test]
    fn gradcheck_at_start_middle_and_end() {
        let shapes: &[&[usize]] = &[&[5], &[4, 3], &[2, 5, 3], &[2, 3, 2, 4]];
        let mut worst: f64 = 0.0;
        let mut passed = 0;
        for (k, &shape) in shapes.iter().enumerate() {
            let mut rng = rand::rngs::StdRng::seed_from_u64(k as u64);
            let x = Tensor::<f64>::randn(shape, &mut rng);
            for axis in 0..shape.len() {
                let d = shape[axis];
                // At the start, in the middle, at the end, the whole axis, and empty.
                let cases = [(0, 1), (1, d - 2), (d - 1, 1), (0, d), (d / 2, 0)];
                for (start, len) in cases {
                    let r = gradcheck(|v| v[0].narrow(axis, start, len), std::slice::from_ref(&x));
                    match r {
                        Ok(rep) => worst = worst.max(rep.max_abs_err()),
                        Err(e) => panic!("{shape:?} narrow({axis}, {start}, {len}): {e}"),
                    }
                    passed += 1;
                }
                let r = gradcheck(|v| v[0].slice(axis, 1..d), std::slice::from_ref(&x));
                match r {
                    Ok(rep) => worst = worst.max(rep.max_abs_err()),
                    Err(e) => panic!("{shape:?} slice({axis}, 1..{d}): {e}"),
                }
                passed += 1;
            }
        }
        println!("narrow: {passed} gradcheck configurations, max |error| {worst:.3e}");
    }

    #[test]
    fn known_values_f32_and_f64() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::arange(24).reshape([2, 3, 4]));
        let y = x.narrow(1, 1, 2);
        assert_eq!(y.shape(), [2, 2, 4]);
        let want: Vec<f32> = [4..12, 16..24]
            .into_iter()
            .flatten()
            .map(|i| i as f32)
            .collect();
        assert_eq!(y.value().to_vec(), want);
        let z = x.slice(2, 3..4);
        assert_eq!(z.shape(), [2, 3, 1]);
        assert_eq!(z.value().to_vec(), vec![3.0, 7.0, 11.0, 15.0, 19.0, 23.0]);
        let g = tape.backward(y.sum() + z.sum() * 10.0);
        let mut want = vec![0.0f32; 24];
        for i in [4..12, 16..24].into_iter().flatten() {
            want[i] += 1.0;
        }
        for i in [3, 7, 11, 15, 19, 23] {
            want[i] += 10.0;
        }
        assert_eq!(g[x].to_vec(), want);

        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::from_vec(vec![1.0, 2.0, 3.0], [3]));
        assert!(x.narrow(0, 0, 3).value().shares_buffer(&x.value()));
        assert_eq!(x.narrow(0, 3, 0).shape(), [0]);
        assert_eq!(x.slice(0, 2..2).shape(), [0]);
        let y = x.slice(0, 0..2);
        assert_eq!(y.value().to_vec(), vec![1.0, 2.0]);
        assert_eq!(
            tape.backward((y * y).sum())[x].to_vec(),
            vec![2.0, 4.0, 0.0]
        );
    }

    #[test]
    fn start_beyond_the_extent_is_refused() {
        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::zeros([2, 3]));
        let s = x.try_narrow(1, 4, 0).unwrap_err().to_string();
        assert!(
            s.starts_with(
                "narrow: start 4 is beyond the extent 3 of axis 1 (shape [2, 3]) (called at src/ops/narrow.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    fn length_past_the_extent_is_refused() {
        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::zeros([2, 3]));
        let s = x.try_narrow(0, 1, 2).unwrap_err().to_string();
        assert!(
            s.starts_with(
                "narrow: start 1 with length 2 runs past the extent 2 of axis 0 (shape [2, 3]); the largest length from there is 1 (called at src/ops/narrow.rs:"
            ),
            "{s}"
        );
        // A length near usize::MAX must not overflow on the way to the error.
        assert!(x.try_narrow(0, 1, usize::MAX).is_err());
    }

    #[test]
    fn axis_out_of_range_is_refused() {
        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::zeros([2, 3]));
        let s = x.try_narrow(2, 0, 1).unwrap_err().to_string();
        assert!(
            s.starts_with(
                "narrow: axis 2 is out of range for a tensor of rank 2 (called at src/ops/narrow.rs:"
            ),
            "{s}"
        );
        let s = x.try_slice(3, 0..1).unwrap_err().to_string();
        assert!(
            s.starts_with(
                "slice: axis 3 is out of range for a tensor of rank 2 (called at src/ops/narrow.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    fn decreasing_range_is_refused() {
        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::zeros([2, 3]));
        #[allow(clippy::reversed_empty_ranges)] // the point of the test
        let s = x.try_slice(1, 2..1).unwrap_err().to_string();
        assert!(
            s.starts_with(
                "slice: range 2..1 of axis 1 is decreasing; the start must not exceed the end (called at src/ops/narrow.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    fn range_past_the_extent_is_refused() {
        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::zeros([2, 3]));
        let s = x.try_slice(1, 1..4).unwrap_err().to_string();
        assert!(
            s.starts_with(
                "slice: range 1..4 runs past the extent 3 of axis 1 (shape [2, 3]) (called at src/ops/narrow.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    #[should_panic(expected = "narrow: start 1 with length 5 runs past the extent 3")]
    fn plain_form_panics() {
        let tape = Tape::<f32>::new();
        tape.input(Tensor::zeros([3])).narrow(0, 1, 5);
    }
}
