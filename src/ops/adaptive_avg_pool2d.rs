//! Adaptive average pooling over the last two axes: a fixed output size, global pooling
//! included.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::kernels::resample::{PlaneMap, Taps};
use crate::ops::Pair;
use crate::ops::resample::Names;
use crate::tape::Var;
use std::rc::Rc;

impl<'t, T: Float> Var<'t, T> {
    /// The mean over windows of the last two axes that tile them into `size = (oh, ow)`:
    /// output row `i` of `oh` averages input rows `floor(i H / oh)` to `ceil((i + 1) H / oh)`
    /// (excluded), as PyTorch's `adaptive_avg_pool2d`; `size` 1 is global average pooling
    /// (the output keeps its 1 × 1 axes).
    ///
    /// VJP: each output gradient spread evenly over its window; its VJP is the pooling again.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec((0..6).map(f64::from).collect(), [1, 1, 2, 3]));
    /// let y = x.adaptive_avg_pool2d(1);
    /// assert_eq!(y.value().to_vec(), vec![2.5]);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![1.0 / 6.0; 6]);
    /// ```
    #[track_caller]
    pub fn try_adaptive_avg_pool2d(self, size: impl Into<Pair>) -> Result<Var<'t, T>, Error> {
        const OP: &str = "adaptive_avg_pool2d";
        let Pair(oh, ow) = size.into();
        let shape = self.shape();
        let r = shape.len();
        if r < 2 || shape[r - 2] == 0 || shape[r - 1] == 0 || oh == 0 || ow == 0 {
            return Err(Error::bad_shape(
                OP,
                &shape,
                format!(
                    "pooling to ({oh}, {ow}) needs two non-empty trailing axes and a non-empty size"
                ),
            ));
        }
        let (h, w) = (shape[r - 2], shape[r - 1]);
        let map = PlaneMap::separable(&[h, w], &[window_taps(h, oh), window_taps(w, ow)]);
        let names = Names {
            op: OP,
            backward: "adaptive_avg_pool2d_backward",
        };
        Ok(self.resample(names, Rc::new(map), T::ZERO))
    }

    /// [`Var::try_adaptive_avg_pool2d`], panicking at the caller's line on a bad shape.
    #[track_caller]
    pub fn adaptive_avg_pool2d(self, size: impl Into<Pair>) -> Var<'t, T> {
        self.try_adaptive_avg_pool2d(size).or_panic()
    }
}

/// Window `j` of `m` over `n` inputs: `floor(j n / m) .. ceil((j + 1) n / m)`, each input
/// weighted by one over the window's length.
fn window_taps<T: Float>(n: usize, m: usize) -> Vec<Taps<T>> {
    (0..m)
        .map(|j| {
            let (start, end) = (j * n / m, ((j + 1) * n).div_ceil(m));
            let w = T::ONE / T::from_usize(end - start);
            (start..end).map(|i| (i, w)).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::check_resizes;

    #[test]
    fn gradcheck_sizes() {
        check_resizes("adaptive_avg_pool2d", |x, size| x.adaptive_avg_pool2d(size));
    }
}
