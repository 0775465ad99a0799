//! Maximum over all elements or over chosen axes.
//!
//! # Ties
//! The gradient of each maximum goes, whole, to the *first* element (in row-major order)
//! that attains it. This matches the index semantics of PyTorch's `torch.max(x, dim)`,
//! whose backward routes the gradient to the returned index (the first maximum). It
//! differs from PyTorch's `torch.amax` and the all-element `torch.max(x)`, which split the
//! gradient evenly among tied maxima. Both are valid subgradients; routing to one element
//! is what max-pooling does too, and keeps the VJP a plain scatter.
//!
//! NaN counts as larger than every number, so a NaN in a window is the maximum (and gets
//! the gradient), as in PyTorch.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::kernels::reduce::max_axes;
use crate::ops::sum::{check_axes, reduced_shape};
use crate::tape::Held;
use crate::tape::Var;
use crate::tensor::Tensor;
use std::rc::Rc;

impl<'t, T: Float> Var<'t, T> {
    /// The largest element, as a rank-0 tensor: `y = maxᵢ xᵢ`.
    ///
    /// VJP: `∂L/∂xᵢ = g` at the first index attaining the maximum, 0 elsewhere (see the
    /// module docs on ties, which differ from `torch.amax`).
    ///
    /// Errors: an empty tensor, which has no maximum.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 7.0, 3.0, 7.0], [2, 2]));
    /// let y = x.max();
    /// assert_eq!(y.value().item(), 7.0);
    /// // The tie goes to the first seven.
    /// assert_eq!(tape.backward(y)[x].to_vec(), vec![0.0, 1.0, 0.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn try_max(self) -> Result<Var<'t, T>, Error> {
        let axes: Vec<usize> = (0..self.shape().rank()).collect();
        self.try_max_axes(&axes, false)
    }

    /// [`Var::try_max`], panicking on an empty tensor.
    ///
    /// # Panics
    /// With the message of [`Var::try_max`]'s error.
    #[track_caller]
    pub fn max(self) -> Var<'t, T> {
        self.try_max().or_panic()
    }

    /// The maximum over `axes`; with `keepdim` the reduced axes stay as extent 1, otherwise
    /// they are dropped. An empty `axes` reduces nothing (the result equals `x`).
    ///
    /// Shapes: `x: [d₀, …, dᵣ₋₁]` → the shape with the listed axes dropped (or set to 1).
    ///
    /// VJP: for each output element, `g` goes to the first input element (in row-major
    /// order) of its window that attains the maximum; every other element gets 0. This is
    /// the semantics of `torch.max(x, dim)` (gradient to the returned index), not of
    /// `torch.amax`, which splits the gradient evenly among ties.
    ///
    /// Errors: an axis not below the rank, an axis listed twice, or a reduced axis of
    /// extent 0 (its windows are empty and have no maximum).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 5.0, 2.0, 4.0, 0.0, 6.0], [2, 3]));
    /// let y = x.max_axes(&[1], false);
    /// assert_eq!(y.value().to_vec(), vec![5.0, 6.0]);
    /// let g = tape.backward(y.sum());
    /// assert_eq!(g[x].to_vec(), vec![0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
    /// assert_eq!(x.max_axes(&[0], true).shape(), [1, 3]);
    /// ```
    #[track_caller]
    pub fn try_max_axes(self, axes: &[usize], keepdim: bool) -> Result<Var<'t, T>, Error> {
        let x = self.value();
        let axes = check_axes("max", axes, x.shape())?;
        let in_shape = x.shape().clone();
        if let Some(&a) = axes.iter().find(|&&a| in_shape[a] == 0) {
            return Err(Error::bad_shape(
                "max",
                &in_shape,
                format!("cannot take the maximum over axis {a}, which has extent 0"),
            ));
        }
        let (y, arg) = max_axes(x.data(), &in_shape, &axes);
        let y = Tensor::from_vec(y, reduced_shape(&in_shape, &axes, keepdim));
        let held = std::mem::size_of_val(&arg[..]);
        let arg: Rc<[usize]> = arg.into();
        self.tape()
            .try_record_graph("max", &[self], y, &[Held::bytes(held)], move |a| {
                // g has the kept shape's row-major order whether or not keepdim dropped axes,
                // and each output element has its own argmax.
                [Some(a.g().scatter(&arg, in_shape.clone()))].into()
            })
    }

    /// [`Var::try_max_axes`], panicking on a bad axis.
    ///
    /// # Panics
    /// With the message of [`Var::try_max_axes`]'s error.
    #[track_caller]
    pub fn max_axes(self, axes: &[usize], keepdim: bool) -> Var<'t, T> {
        self.try_max_axes(axes, keepdim).or_panic()
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::tape::Tape;
    use crate::tensor::Tensor;
    use rand::SeedableRng;
    use rand::seq::SliceRandom;

    /// Distinct values at least 0.1 apart in random order, so no window has a near-tie that
    /// a finite-difference step could cross.
    fn distinct(shape: &[usize], seed: u64) -> Tensor<f64> {
        let n: usize = shape.iter().product();
        let mut v: Vec<f64> = (0..n).map(|i| 0.1 * i as f64 - 0.05 * n as f64).collect();
        v.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        Tensor::from_vec(v, shape)
    }

    #[test]
    fn gradcheck_over_axes_and_keepdim() {
        let table: &[(&[usize], &[usize])] = &[
            (&[5], &[0]),
            (&[1], &[0]),
            (&[3, 4], &[0]),
            (&[3, 4], &[1]),
            (&[3, 4], &[1, 0]),
            (&[2, 3, 4], &[1]),
            (&[2, 3, 4], &[0, 2]),
            (&[2, 3, 4], &[0, 1, 2]),
            (&[2, 3, 1, 3], &[0]),
            (&[2, 3, 2, 3], &[3]),
            (&[2, 3, 2, 3], &[1, 2]),
            (&[2, 3, 2, 3], &[0, 3]),
            (&[2, 1, 2, 3], &[0, 1, 2, 3]),
            (&[3, 2], &[]),
        ];
        let mut passed = 0;
        let mut worst: f64 = 0.0;
        for (k, &(shape, axes)) in table.iter().enumerate() {
            for keepdim in [false, true] {
                let x = distinct(shape, k as u64);
                let r = gradcheck(|v| v[0].max_axes(axes, keepdim), &[x]);
                match r {
                    Ok(rep) => worst = worst.max(rep.max_abs_err()),
                    Err(e) => panic!("shape {shape:?} axes {axes:?} keepdim {keepdim}: {e}"),
                }
                passed += 1;
            }
        }
        for (k, shape) in [&[4][..], &[2, 3], &[2, 3, 2], &[1, 2, 3, 2]]
            .iter()
            .enumerate()
        {
            let x = distinct(shape, 100 + k as u64);
            let r = gradcheck(|v| v[0].max(), &[x]);
            match r {
                Ok(rep) => worst = worst.max(rep.max_abs_err()),
                Err(e) => panic!("max() of {shape:?}: {e}"),
            }
            passed += 1;
        }
        println!("max: {passed} gradcheck configurations, max |error| {worst:.3e}");
    }

    #[test]
    fn known_values_f32_and_f64() {
        // [2, 3, 2]
        let data = vec![
            1.0f32, 9.0, 4.0, -2.0, 3.0, 5.0, //
            8.0, 0.0, -1.0, 7.0, 2.0, 6.0,
        ];
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::from_vec(data, [2, 3, 2]));
        let y = x.max_axes(&[1], false);
        assert_eq!(y.shape(), [2, 2]);
        assert_eq!(y.value().to_vec(), vec![4.0, 9.0, 8.0, 7.0]);
        let y2 = x.max_axes(&[0, 2], true);
        assert_eq!(y2.shape(), [1, 3, 1]);
        assert_eq!(y2.value().to_vec(), vec![9.0, 7.0, 6.0]);
        let g = tape.backward(y.sum() + y2.sum());
        #[rustfmt::skip]
        let want = vec![
            0.0f32, 2.0, 1.0, 0.0, 0.0, 0.0,
            1.0, 0.0, 0.0, 2.0, 0.0, 1.0,
        ];
        assert_eq!(g[x].to_vec(), want);

        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::from_vec(vec![-3.0, -1.5, -2.0], [3]));
        let y = x.max();
        assert_eq!(y.shape().rank(), 0);
        assert_eq!(y.value().item(), -1.5);
        assert_eq!(tape.backward(y * 3.0)[x].to_vec(), vec![0.0, 3.0, 0.0]);

        // A scalar is its own maximum; an empty non-reduced axis gives an empty result.
        let t = Tape::<f64>::new();
        assert_eq!(t.scalar(-4.0).max().value().item(), -4.0);
        assert_eq!(
            t.input(Tensor::zeros([0, 3])).max_axes(&[1], true).shape(),
            [0, 1]
        );
        // NaN propagates and takes the gradient.
        let t = Tape::<f64>::new();
        let x = t.param(Tensor::from_vec(vec![1.0, f64::NAN, 2.0], [3]));
        let y = x.max();
        assert!(y.value().item().is_nan());
        assert_eq!(t.backward(y)[x].to_vec(), vec![0.0, 1.0, 0.0]);
    }

    #[test]
    fn ties_send_the_whole_gradient_to_the_first_maximum() {
        let tape = Tape::<f64>::new();
        // Rows: [3, 1, 3], [2, 2, 2], [0, 5, 5].
        let x = tape.param(Tensor::from_vec(
            vec![3.0, 1.0, 3.0, 2.0, 2.0, 2.0, 0.0, 5.0, 5.0],
            [3, 3],
        ));
        let y = x.max_axes(&[1], false);
        assert_eq!(y.value().to_vec(), vec![3.0, 2.0, 5.0]);
        let g = tape.backward(y.sum());
        assert_eq!(
            g[x].to_vec(),
            vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        );
        // Over the columns, ties are decided in row-major order too: first row wins.
        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::from_vec(vec![4.0, 4.0, 4.0, 4.0], [2, 2]));
        let g = tape.backward(x.max());
        assert_eq!(g[x].to_vec(), vec![1.0, 0.0, 0.0, 0.0]);
        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::from_vec(vec![4.0, 4.0, 4.0, 4.0], [2, 2]));
        let g = tape.backward(x.max_axes(&[0], false).sum());
        assert_eq!(g[x].to_vec(), vec![1.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn axis_out_of_range_is_refused() {
        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::zeros([2, 3]));
        let s = x.try_max_axes(&[5], true).unwrap_err().to_string();
        assert!(
            s.starts_with(
                "max: axis 5 is out of range for a tensor of rank 2 (called at src/ops/max.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    fn repeated_axis_is_refused() {
        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::zeros([2, 3]));
        let s = x.try_max_axes(&[0, 1, 0], false).unwrap_err().to_string();
        assert!(
            s.starts_with("max: axis listed twice in [0, 1, 0] (called at src/ops/max.rs:"),
            "{s}"
        );
    }

    #[test]
    fn empty_window_is_refused() {
        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::zeros([2, 0]));
        let s = x.try_max_axes(&[1], false).unwrap_err().to_string();
        assert!(
            s.starts_with(
                "max: shape [2, 0] refused: cannot take the maximum over axis 1, which has extent 0 (called at src/ops/max.rs:"
            ),
            "{s}"
        );
        let s = tape
            .input(Tensor::zeros([0]))
            .try_max()
            .unwrap_err()
            .to_string();
        assert!(
            s.starts_with(
                "max: shape [0] refused: cannot take the maximum over axis 0, which has extent 0 (called at src/ops/max.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    #[should_panic(expected = "max: shape [0, 2] refused")]
    fn plain_max_of_empty_panics() {
        let tape = Tape::<f32>::new();
        tape.input(Tensor::zeros([0, 2])).max();
    }
}
