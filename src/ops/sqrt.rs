//! Square root.

use crate::float::Float;
use crate::ops::{Saved, pointwise, unary};
use crate::tape::Var;

impl<'t, T: Float> Var<'t, T> {
    /// `√x`, elementwise. The shape is kept.
    ///
    /// VJP: `∂L/∂x = g / (2 √x)`, from the saved output.
    ///
    /// At `x = 0` the value is 0 and the gradient `g / 0 = inf` (NaN where `g = 0`), as in
    /// PyTorch; add a small constant under the root if a gradient must flow there. For
    /// `x < 0` the value and gradient are NaN, with no error.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![4.0, 9.0], [2]));
    /// let y = x.sqrt();
    /// assert_eq!(y.value().to_vec(), vec![2.0, 3.0]);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![0.25, 1.0 / 6.0]);
    /// ```
    #[track_caller]
    pub fn sqrt(self) -> Var<'t, T> {
        unary(
            self,
            "sqrt",
            |v| v.sqrt(),
            Saved::Output,
            |g, _, y| sqrt_backward(g, y),
        )
    }
}

/// `g / (2y)`, in one pass; its derivative in `y` is `-g / (2y^2)`.
fn sqrt_backward<'s, T: Float>(g: Var<'s, T>, y: Var<'s, T>) -> Var<'s, T> {
    let f = |g, y| g / (T::from_f64(2.0) * y);
    pointwise("sqrt_backward", g, y, f, |a| {
        let y = a.input(1);
        [
            a.then(0, || sqrt_backward(a.g(), y)),
            a.then(1, || -(sqrt_backward(a.g() * a.input(0), y) / y)),
        ]
        .into()
    })
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::check_unary;

    use crate::tape::Tape;
    use crate::tensor::Tensor;

    #[test]
    fn gradcheck_shapes() {
        check_unary("sqrt", |x| x.abs() + 0.1, |x| x.sqrt());
    }

    #[test]
    fn known_values_f32_f64() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::from_vec(vec![1.0, 0.25, 16.0, 2.0], [2, 2]));
        let y = x.sqrt();
        assert_eq!(y.op(), "sqrt");
        assert_eq!(
            y.value().to_vec(),
            vec![1.0, 0.5, 4.0, std::f32::consts::SQRT_2]
        );
        let g = tape.backward(y.sum())[x].to_vec();
        assert_eq!(g[..3], [0.5, 1.0, 0.125]);
        approx::assert_relative_eq!(g[3], 0.5 / std::f32::consts::SQRT_2, max_relative = 1e-6);

        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::scalar(1e-8));
        let y = x.sqrt();
        approx::assert_relative_eq!(y.value().item(), 1e-4, max_relative = 1e-15);
        approx::assert_relative_eq!(tape.backward(y)[x].item(), 5e3, max_relative = 1e-12);
    }

    #[test]
    fn at_zero_and_below() {
        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::from_vec(vec![0.0, -1.0], [2]));
        let y = x.sqrt();
        let v = y.value();
        assert_eq!(v[[0]], 0.0);
        assert!(v[[1]].is_nan());
        let g = tape.backward(y.sum())[x].clone();
        assert_eq!(g[[0]], f64::INFINITY);
        assert!(g[[1]].is_nan());
    }
}
