//! Resizing the last two axes: nearest and bilinear interpolation, as PyTorch's
//! `F.interpolate` (bilinear with `align_corners=False`).

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::kernels::resample::{PlaneMap, Taps};
use crate::ops::Pair;
use crate::ops::resample::Names;
use crate::tape::Var;
use std::rc::Rc;

/// How [`Var::interpolate`] computes a sample between input samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interpolation {
    /// The input sample at `floor(out_index · in / out)`.
    Nearest,
    /// The weighted mean of the four nearest samples, with pixel centres at `i + 0.5`
    /// (PyTorch's `align_corners=False`); clamped at the edges.
    Bilinear,
}

impl<'t, T: Float> Var<'t, T> {
    /// The last two axes resized to `size = (height, width)` by `mode` (larger or smaller;
    /// no anti-aliasing when smaller, as in PyTorch).
    ///
    /// VJP: each output gradient spread back onto the input samples it was taken from, with
    /// the same weights (the transposed map); its VJP is the interpolation again.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 3.0], [1, 1, 1, 2]));
    /// let y = x.interpolate((1, 4), Interpolation::Bilinear);
    /// assert_eq!(y.value().to_vec(), vec![1.0, 1.5, 2.5, 3.0]);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![2.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn try_interpolate(
        self,
        size: impl Into<Pair>,
        mode: Interpolation,
    ) -> Result<Var<'t, T>, Error> {
        let Pair(oh, ow) = size.into();
        let shape = self.shape();
        let op = match mode {
            Interpolation::Nearest => "upsample_nearest",
            Interpolation::Bilinear => "upsample_bilinear",
        };
        if shape.len() < 2
            || shape[shape.len() - 2] == 0
            || shape[shape.len() - 1] == 0
            || oh == 0
            || ow == 0
        {
            return Err(Error::bad_shape(
                op,
                &shape,
                format!(
                    "resizing to ({oh}, {ow}) needs two non-empty trailing axes and a non-empty size"
                ),
            ));
        }
        let (h, w) = (shape[shape.len() - 2], shape[shape.len() - 1]);
        let taps = |n, m| match mode {
            Interpolation::Nearest => nearest_taps(n, m),
            Interpolation::Bilinear => bilinear_taps(n, m),
        };
        let map = PlaneMap::separable(&[h, w], &[taps(h, oh), taps(w, ow)]);
        let backward = match mode {
            Interpolation::Nearest => "upsample_nearest_backward",
            Interpolation::Bilinear => "upsample_bilinear_backward",
        };
        Ok(self.resample(Names { op, backward }, Rc::new(map), T::ZERO))
    }

    /// [`Var::try_interpolate`], panicking at the caller's line on a bad shape or size.
    #[track_caller]
    pub fn interpolate(self, size: impl Into<Pair>, mode: Interpolation) -> Var<'t, T> {
        self.try_interpolate(size, mode).or_panic()
    }

    /// Each sample of the last two axes repeated `scale = (sh, sw)` times along them
    /// (PyTorch's `F.interpolate(x, scale_factor=s, mode="nearest")` for whole `s`).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 2.0], [1, 1, 1, 2]));
    /// assert_eq!(x.upsample_nearest(2).value().to_vec(), vec![1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 2.0, 2.0]);
    /// ```
    #[track_caller]
    pub fn upsample_nearest(self, scale: impl Into<Pair>) -> Var<'t, T> {
        self.try_upsample(scale.into(), Interpolation::Nearest)
            .or_panic()
    }

    /// The last two axes enlarged `scale = (sh, sw)` times by bilinear interpolation
    /// (PyTorch's `F.interpolate(x, scale_factor=s, mode="bilinear")` for whole `s`).
    #[track_caller]
    pub fn upsample_bilinear(self, scale: impl Into<Pair>) -> Var<'t, T> {
        self.try_upsample(scale.into(), Interpolation::Bilinear)
            .or_panic()
    }

    /// The last two axes resized to `scale` times their size.
    #[track_caller]
    fn try_upsample(self, Pair(sh, sw): Pair, mode: Interpolation) -> Result<Var<'t, T>, Error> {
        let s = self.shape();
        let hw = match s.len() {
            0 | 1 => (0, 0), // refused by try_interpolate, with the shape
            r => (s[r - 2] * sh, s[r - 1] * sw),
        };
        self.try_interpolate(hw, mode)
    }
}

/// Output coordinate `j` of `m` reads input `floor(j n / m)` of `n` (exact, in integers).
fn nearest_taps<T: Float>(n: usize, m: usize) -> Vec<Taps<T>> {
    (0..m)
        .map(|j| vec![((j * n / m).min(n - 1), T::ONE)])
        .collect()
}

/// Output coordinate `j` of `m` sits at `(j + ½) n / m − ½` on the input axis of `n`,
/// clamped to 0 below, between samples `i0` and `i1 = min(i0 + 1, n − 1)`.
fn bilinear_taps<T: Float>(n: usize, m: usize) -> Vec<Taps<T>> {
    let scale = n as f64 / m as f64;
    (0..m)
        .map(|j| {
            let src = ((j as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (src.floor() as usize).min(n - 1);
            let i1 = (i0 + 1).min(n - 1);
            let l1 = src - i0 as f64;
            vec![(i0, T::from_f64(1.0 - l1)), (i1, T::from_f64(l1))]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::check_resizes;

    #[test]
    fn gradcheck_sizes() {
        for mode in [Interpolation::Nearest, Interpolation::Bilinear] {
            check_resizes(&format!("interpolate {mode:?}"), |x, size| {
                x.interpolate(size, mode)
            });
        }
    }

    #[test]
    fn bad_sizes_are_errors() {
        let tape = crate::tape::Tape::<f32>::new();
        let x = tape.input(crate::tensor::Tensor::zeros([2, 0, 3]));
        let e = x
            .try_interpolate(4, Interpolation::Bilinear)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("upsample_bilinear") && e.contains("[2, 0, 3]"),
            "{e}"
        );
    }
}
