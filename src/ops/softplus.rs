//! Softplus, the smooth ReLU, computed without overflow.

use crate::float::Float;
use crate::ops::sigmoid::{sigmoid_backward, sigmoid_scalar};
use crate::ops::{Saved, pointwise, unary};
use crate::tape::Var;

impl<'t, T: Float> Var<'t, T> {
    /// `softplus(x) = ln(1 + e^x)`, elementwise, in `(0, ∞)`. The shape is kept.
    ///
    /// Evaluated as `max(x, 0) + ln(1 + e^−|x|)`, so `e^(·)` never overflows: softplus(1e4)
    /// is exactly 1e4 and softplus(−1e4) is 0, where `ln(1 + e^x)` would give `inf` and lose
    /// the tiny values. A NaN input gives NaN.
    ///
    /// VJP: `∂L/∂x = g σ(x)`, with the stable sigmoid of the saved input.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![0.0, 1e4, -1e4], [3]));
    /// let y = x.softplus();
    /// assert_eq!(y.value().to_vec(), vec![2f64.ln(), 1e4, 0.0]);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![0.5, 1.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn softplus(self) -> Var<'t, T> {
        let f = |x: T| {
            let relu = if x > T::ZERO { x } else { T::ZERO };
            relu + (-x.abs()).exp().ln_1p()
        };
        unary(self, "softplus", f, Saved::Input, |g, x, _| {
            softplus_backward(g, x)
        })
    }
}

/// `g · sigmoid(x)`, in one pass; its derivative in `x` is `g · sigmoid'(x)`.
fn softplus_backward<'s, T: Float>(g: Var<'s, T>, x: Var<'s, T>) -> Var<'s, T> {
    pointwise(
        "softplus_backward",
        g,
        x,
        |g, x| g * sigmoid_scalar(x),
        |a| {
            let x = a.input(1);
            [
                a.then(0, || softplus_backward(a.g(), x)),
                a.then(1, || sigmoid_backward(a.g() * a.input(0), x.sigmoid())),
            ]
            .into()
        },
    )
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::check_unary;
    use crate::tape::Tape;
    use crate::tensor::Tensor;

    #[test]
    fn gradcheck_shapes() {
        check_unary("softplus", |x| 3.0 * x, |x| x.softplus());
    }

    #[test]
    fn known_values_and_tails_f32() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::from_vec(vec![0.0, 1.0, -1.0, 40.0, -40.0], [5]));
        let y = x.softplus().value();
        let want = [
            std::f32::consts::LN_2,
            1.313_261_7,
            0.313_261_7,
            40.0,
            4.248_354e-18,
        ];
        for (a, b) in y.data().iter().zip(want) {
            approx::assert_relative_eq!(*a, b, max_relative = 1e-6);
        }
    }
}
