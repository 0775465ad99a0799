//! The index of the largest element along an axis: the class a classifier picks.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::tensor::Tensor;

impl<T: Float> Tensor<T> {
    /// The index of the largest element along `axis`, for each position of the other axes
    /// (in row-major order: one per row of `[N, C]` logits for `axis` 1). The first index
    /// wins a tie, and NaN counts as the largest, as in PyTorch's `argmax`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let logits = Tensor::<f32>::from_vec(vec![0.1, 2.0, -1.0, 3.0, 3.0, 0.0], [2, 3]);
    /// assert_eq!(logits.argmax(1), vec![1, 0]);
    /// assert_eq!(logits.argmax(0), vec![1, 1, 1]);
    /// ```
    #[track_caller]
    pub fn try_argmax(&self, axis: usize) -> Result<Vec<usize>, Error> {
        let s = self.shape();
        if axis >= s.len() || s[axis] == 0 {
            return Err(Error::bad_shape(
                "argmax",
                s,
                format!(
                    "axis {axis} is not a non-empty axis of a rank-{} tensor",
                    s.len()
                ),
            ));
        }
        let (n, inner) = (s[axis], s[axis + 1..].iter().product::<usize>());
        let outer = self.numel() / (n * inner).max(1);
        let x = self.data();
        let mut out = Vec::with_capacity(outer * inner);
        for o in 0..outer {
            for i in 0..inner {
                let at = |k: usize| x[(o * n + k) * inner + i];
                let mut best = 0;
                for k in 1..n {
                    let (v, b) = (at(k), at(best));
                    if !b.is_nan() && (v > b || v.is_nan()) {
                        best = k;
                    }
                }
                out.push(best);
            }
        }
        Ok(out)
    }

    /// [`Tensor::try_argmax`], panicking at the caller's line on a bad axis.
    #[track_caller]
    pub fn argmax(&self, axis: usize) -> Vec<usize> {
        self.try_argmax(axis).or_panic()
    }
}

#[cfg(test)]
mod tests {
    use crate::tensor::Tensor;

    #[test]
    fn middle_axis_ties_nan_and_errors() {
        // [2, 3, 2]: argmax over the middle axis.
        let v = vec![
            1.0,
            5.0,
            3.0,
            5.0,
            3.0,
            0.0,
            f64::NAN,
            1.0,
            2.0,
            1.0,
            7.0,
            1.0,
        ];
        let t = Tensor::from_vec(v, [2, 3, 2]);
        assert_eq!(t.argmax(1), vec![1, 0, 0, 0]);
        assert_eq!(t.argmax(2), vec![1, 1, 0, 0, 0, 0]);
        let e = t.try_argmax(3).unwrap_err().to_string();
        assert!(
            e.contains("argmax") && e.contains("[2, 3, 2]") && e.contains("axis 3"),
            "{e}"
        );
    }
}
