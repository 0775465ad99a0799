//! Mean over all elements or over chosen axes.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::kernels::elementwise::broadcast_to;
use crate::kernels::reduce::{kept_shape, sum_axes};
use crate::ops::sum::{check_axes, reduced_shape};
use crate::shape::Shape;
use crate::tape::Var;
use crate::tensor::Tensor;

impl<'t, T: Float> Var<'t, T> {
    /// The mean of every element, as a rank-0 tensor: `y = (1/n) Σᵢ xᵢ` with `n` the number
    /// of elements. The mean of an empty tensor is NaN (0/0), as in PyTorch.
    ///
    /// VJP: `∂L/∂x = g / n`, broadcast to the shape of `x`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 2.0, 3.0, 6.0], [2, 2]));
    /// let y = x.mean();
    /// assert_eq!(y.value().item(), 3.0);
    /// assert_eq!(tape.backward(y)[x].to_vec(), vec![0.25; 4]);
    /// ```
    #[track_caller]
    pub fn mean(self) -> Var<'t, T> {
        let axes: Vec<usize> = (0..self.shape().rank()).collect();
        self.try_mean_axes(&axes, false).or_panic()
    }

    /// The mean over `axes`: `y = (1/n) Σ x` over the listed axes, `n` the product of their
    /// extents. With `keepdim` the reduced axes stay as extent 1, otherwise they are dropped.
    /// An empty `axes` reduces nothing (the result equals `x`), as in [`Var::sum_axes`] and
    /// unlike PyTorch, where `mean(dim=[])` reduces over every axis.
    ///
    /// Shapes: `x: [d₀, …, dᵣ₋₁]` → the shape with the listed axes dropped (or set to 1).
    ///
    /// VJP: `∂L/∂x = g / n`, reshaped to the kept shape and broadcast back over the reduced
    /// axes.
    ///
    /// Errors: an axis not below the rank, or an axis listed twice.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.input(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]));
    /// assert_eq!(x.mean_axes(&[1], false).value().to_vec(), vec![2.0, 5.0]);
    /// assert_eq!(x.mean_axes(&[0], true).value().to_vec(), vec![2.5, 3.5, 4.5]);
    /// assert_eq!(x.mean_axes(&[0], true).shape(), [1, 3]);
    /// assert!(x.try_mean_axes(&[2], false).is_err());
    /// ```
    #[track_caller]
    pub fn try_mean_axes(self, axes: &[usize], keepdim: bool) -> Result<Var<'t, T>, Error> {
        let x = self.value();
        let axes = check_axes("mean", axes, x.shape())?;
        let in_shape = x.shape().clone();
        let kept = kept_shape(&in_shape, &axes);
        let count: usize = axes.iter().map(|&a| in_shape[a]).product();
        // Multiplying by 1/n rounds once more than dividing; divide to match a plain mean.
        let n = T::from_usize(count);
        let mut y = sum_axes(x.data(), &in_shape, &axes);
        for v in &mut y {
            *v /= n;
        }
        let y = Tensor::from_vec(y, reduced_shape(&in_shape, &axes, keepdim));
        self.tape()
            .try_record_differentiable("mean", &[self], y, move |a| {
                [Some(spread_mean(a.g(), &kept, &in_shape, n))].into()
            })
    }

    /// [`Var::try_mean_axes`], panicking on a bad axis.
    ///
    /// # Panics
    /// With the message of [`Var::try_mean_axes`]'s error.
    #[track_caller]
    pub fn mean_axes(self, axes: &[usize], keepdim: bool) -> Var<'t, T> {
        self.try_mean_axes(axes, keepdim).or_panic()
    }
}

/// The VJP of a mean: `g / n` spread over the reduced axes, in one buffer (the same
/// arithmetic as before it was an op). Linear in `g`; its adjoint sums back over those
/// axes, divided by `n` again.
fn spread_mean<'s, T: Float>(g: Var<'s, T>, kept: &Shape, in_shape: &Shape, n: T) -> Var<'s, T> {
    let gx = g.with_value(|g| {
        let mut v = broadcast_to(g.data(), kept, in_shape);
        for e in &mut v {
            *e /= n;
        }
        Tensor::from_vec(v, in_shape.clone())
    });
    let kept = kept.clone();
    g.tape()
        .record_differentiable("mean_backward", &[g], gx, move |a| {
            let back = a.g().sum_to(kept.clone()).reshape(a.input(0).shape());
            [Some(back.div_scalar(n))].into()
        })
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::tape::Tape;
    use crate::tensor::Tensor;
    use rand::SeedableRng;

    #[test]
    fn gradcheck_over_axes_and_keepdim() {
        // (shape, axes): single axes (first, middle, last), several axes, every axis.
        let table: &[(&[usize], &[usize])] = &[
            (&[5], &[0]),
            (&[1], &[0]),
            (&[3, 4], &[0]),
            (&[3, 4], &[1]),
            (&[3, 4], &[0, 1]),
            (&[1, 5], &[0]),
            (&[2, 3, 4], &[1]),
            (&[2, 3, 4], &[2, 0]),
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
                let mut rng = rand::rngs::StdRng::seed_from_u64(k as u64);
                let x = Tensor::<f64>::randn(shape, &mut rng);
                let r = gradcheck(|v| v[0].mean_axes(axes, keepdim), &[x]);
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
            let mut rng = rand::rngs::StdRng::seed_from_u64(100 + k as u64);
            let x = Tensor::<f64>::randn(*shape, &mut rng);
            let r = gradcheck(|v| v[0].mean(), &[x]);
            match r {
                Ok(rep) => worst = worst.max(rep.max_abs_err()),
                Err(e) => panic!("mean() of {shape:?}: {e}"),
            }
            passed += 1;
        }
        println!("mean: {passed} gradcheck configurations, max |error| {worst:.3e}");
    }

    #[test]
    fn known_values_f32_and_f64() {
        let tape = Tape::<f32>::new();
        let data: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let x = tape.param(Tensor::from_vec(data, [2, 3, 2]));
        let y = x.mean_axes(&[1], false);
        assert_eq!(y.shape(), [2, 2]);
        assert_eq!(y.value().to_vec(), vec![2.0, 3.0, 8.0, 9.0]);
        let y = x.mean_axes(&[0, 2], true);
        assert_eq!(y.shape(), [1, 3, 1]);
        assert_eq!(y.value().to_vec(), vec![3.5, 5.5, 7.5]);
        let g = tape.backward(y.sum());
        assert_eq!(g[x].to_vec(), vec![0.25f32; 12]);

        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::from_vec(
            vec![1.0, 2.0, 4.0, 8.0, 16.0, 33.0],
            [3, 2],
        ));
        let y = x.mean();
        assert_eq!(y.shape().rank(), 0);
        assert_eq!(y.value().item(), 64.0 / 6.0);
        assert_eq!(tape.backward(y)[x].to_vec(), vec![1.0 / 6.0; 6]);

        // A scalar's mean is itself; an empty tensor's is NaN, as 0/0.
        let t = Tape::<f64>::new();
        assert_eq!(t.scalar(2.5).mean().value().item(), 2.5);
        assert!(
            t.input(Tensor::zeros([0, 3]))
                .mean()
                .value()
                .item()
                .is_nan()
        );
        assert_eq!(
            t.input(Tensor::zeros([0, 3]))
                .mean_axes(&[0], false)
                .shape(),
            [3]
        );
    }

    #[test]
    fn axis_out_of_range_is_refused() {
        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::zeros([2, 3]));
        let e = x.try_mean_axes(&[0, 2], false).unwrap_err();
        let s = e.to_string();
        assert!(
            s.starts_with(
                "mean: axis 2 is out of range for a tensor of rank 2 (called at src/ops/mean.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    fn repeated_axis_is_refused() {
        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::zeros([2, 3]));
        let e = x.try_mean_axes(&[1, 1], true).unwrap_err();
        let s = e.to_string();
        assert!(
            s.starts_with("mean: axis listed twice in [1, 1] (called at src/ops/mean.rs:"),
            "{s}"
        );
    }

    #[test]
    #[should_panic(expected = "mean: axis 3 is out of range for a tensor of rank 2")]
    fn plain_form_panics() {
        let tape = Tape::<f32>::new();
        tape.input(Tensor::zeros([2, 3])).mean_axes(&[3], false);
    }
}
