//! Sum over all elements or over chosen axes.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::kernels::reduce::{kept_shape, sum_axes};
use crate::shape::Shape;
use crate::tape::Var;
use crate::tensor::Tensor;

/// Validates reduction axes (each below the rank, no repeats) and returns them sorted.
#[track_caller]
pub(crate) fn check_axes(
    op: &'static str,
    axes: &[usize],
    shape: &Shape,
) -> Result<Vec<usize>, Error> {
    let mut ax = axes.to_vec();
    for &a in &ax {
        Error::check_axis(op, a, shape.rank())?;
    }
    ax.sort_unstable();
    if ax.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::bad_argument(
            op,
            format!("axis listed twice in {axes:?}"),
        ));
    }
    Ok(ax)
}

/// The output shape of a reduction: reduced axes kept as 1, or dropped.
pub(crate) fn reduced_shape(shape: &Shape, axes: &[usize], keepdim: bool) -> Shape {
    if keepdim {
        kept_shape(shape, axes)
    } else {
        Shape::new(
            &shape
                .iter()
                .enumerate()
                .filter(|(i, _)| !axes.contains(i))
                .map(|(_, &d)| d)
                .collect::<Vec<_>>(),
        )
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// The sum of every element, `y = Σᵢ xᵢ`, as a rank-0 tensor (shape `[]`).
    ///
    /// VJP: `∂L/∂x = g` broadcast to the shape of `x`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.param(Tensor::arange(4));
    /// assert_eq!(x.sum().value().item(), 6.0);
    /// ```
    #[track_caller]
    pub fn sum(self) -> Var<'t, T> {
        let axes: Vec<usize> = (0..self.shape().rank()).collect();
        self.try_sum_axes(&axes, false).or_panic()
    }

    /// The sum over `axes`: `y = Σ x` over the listed axes, one output element per index
    /// of the others. With `keepdim` the reduced axes stay as extent 1, otherwise they are
    /// dropped; an empty `axes` reduces nothing (the result equals `x`).
    ///
    /// Shapes: `x: [d₀, …, dᵣ₋₁]` → the shape with the listed axes dropped (or set to 1).
    ///
    /// VJP: `∂L/∂x = g` (reshaped to the kept shape) broadcast back over the reduced axes.
    ///
    /// Errors: an axis not below the rank, or an axis listed twice.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.input(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]));
    /// assert_eq!(x.sum_axes(&[1], false).value().to_vec(), vec![6.0, 15.0]);
    /// assert_eq!(x.sum_axes(&[0], true).shape(), [1, 3]);
    /// ```
    #[track_caller]
    pub fn try_sum_axes(self, axes: &[usize], keepdim: bool) -> Result<Var<'t, T>, Error> {
        let x = self.value();
        let axes = check_axes("sum", axes, x.shape())?;
        let in_shape = x.shape().clone();
        let kept = kept_shape(&in_shape, &axes);
        let y = Tensor::from_vec(
            sum_axes(x.data(), &in_shape, &axes),
            reduced_shape(&in_shape, &axes, keepdim),
        );
        self.tape()
            .try_record_differentiable("sum", &[self], y, move |a| {
                [Some(
                    a.g().reshape(kept.clone()).broadcast_to(in_shape.clone()),
                )]
                .into()
            })
    }

    /// [`Var::try_sum_axes`], panicking on a bad axis.
    ///
    /// # Panics
    /// With the message of [`Var::try_sum_axes`]'s error.
    #[track_caller]
    pub fn sum_axes(self, axes: &[usize], keepdim: bool) -> Var<'t, T> {
        self.try_sum_axes(axes, keepdim).or_panic()
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::{check, randn};
    use crate::tape::Tape;
    use crate::tensor::Tensor;

    #[test]
    fn gradcheck_axes_and_keepdim() {
        let cases: &[(&[usize], &[usize])] = &[
            (&[5], &[0]),
            (&[3, 4], &[0]),
            (&[3, 4], &[1]),
            (&[2, 3, 4], &[1]),
            (&[2, 3, 4], &[0, 2]),
            (&[2, 3, 4], &[2, 0]),
            (&[2, 3, 4], &[0, 1, 2]),
            (&[1, 3, 1, 2], &[0, 2]),
            (&[2, 3], &[]),
        ];
        let mut n = 0;
        for (k, &(s, axes)) in cases.iter().enumerate() {
            for keep in [false, true] {
                let x = [randn(k as u64, s)];
                check(
                    &format!("sum {s:?} over {axes:?} keepdim {keep}"),
                    &x,
                    |v| v[0].sum_axes(axes, keep),
                );
                n += 1;
            }
            check(&format!("sum {s:?}"), &[randn(k as u64, s)], |v| v[0].sum());
            n += 1;
        }
        eprintln!("sum: {n} configs");
    }

    #[test]
    fn known_values_and_shapes() {
        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::arange(6).reshape([2, 3]));
        assert_eq!(
            x.sum_axes(&[0], false).value().to_vec(),
            vec![3.0, 5.0, 7.0]
        );
        assert_eq!(x.sum_axes(&[1], true).shape(), [2, 1]);
        assert_eq!(x.sum_axes(&[], false).shape(), [2, 3]);
        let s = x.sum();
        assert_eq!(s.shape().rank(), 0);
        assert_eq!(s.value().item(), 15.0);
        assert_eq!(tape.backward(s)[x].to_vec(), vec![1.0; 6]);
        let t32 = Tape::<f32>::new();
        let y = t32.input(Tensor::ones([4, 5])).sum_axes(&[1], false);
        assert_eq!(y.value().to_vec(), vec![5.0f32; 4]);
    }

    #[test]
    fn bad_axes_are_refused_with_their_values() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::ones([2, 3]));
        let e = x.try_sum_axes(&[2], false).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "sum: axis 2 is out of range for a tensor of rank 2 (called at src/ops/sum.rs:"
            ),
            "{e}"
        );
        let e = x.try_sum_axes(&[1, 1], false).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("sum: axis listed twice in [1, 1]"),
            "{e}"
        );
    }
}
