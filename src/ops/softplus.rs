//! Softplus, the smooth ReLU, computed without overflow.

use crate::float::Float;
use crate::ops::sigmoid::sigmoid_scalar;
use crate::ops::{Saved, unary};
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
        unary(
            self,
            "softplus",
            |x| {
                let relu = if x > T::ZERO { x } else { T::ZERO };
                relu + (-x.abs()).exp().ln_1p()
            },
            Saved::Input,
            |g, x| g * sigmoid_scalar(x),
        )
    }
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
