//! The natural logarithm.

use crate::float::Float;
use crate::ops::{Saved, unary};
use crate::tape::Var;

impl<'t, T: Float> Var<'t, T> {
    /// `ln x`, elementwise. The shape is kept.
    ///
    /// VJP: `∂L/∂x = g / x`.
    ///
    /// Outside the domain the values are IEEE 754's, as `f64::ln` gives, with no error:
    /// `ln 0 = −inf` (gradient `g / 0 = ±inf`), and `ln x = NaN` for `x < 0` (the gradient
    /// there is the finite `g / x`, as in PyTorch). Clamp the input, or use
    /// [`Var::log1p`] near `x = 1`, when that matters.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 4.0], [2]));
    /// let y = x.log();
    /// assert_eq!(y.value().to_vec(), vec![0.0, 4.0f64.ln()]);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![1.0, 0.25]);
    /// ```
    #[track_caller]
    pub fn log(self) -> Var<'t, T> {
        unary(self, "log", |v| v.ln(), Saved::Input, |g, x, _| g / x)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::check_unary;

    use crate::tape::Tape;
    use crate::tensor::Tensor;

    #[test]
    fn gradcheck_shapes() {
        check_unary("log", |x| (0.7 * x).exp(), |x| x.log());
    }

    #[test]
    fn known_values_f32_f64() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::from_vec(
            vec![1.0, std::f32::consts::E, 0.5, 8.0],
            [2, 2],
        ));
        let y = x.log();
        assert_eq!(y.op(), "log");
        let want = [
            0.0f32,
            1.0,
            -std::f32::consts::LN_2,
            3.0 * std::f32::consts::LN_2,
        ];
        for (a, b) in y.value().data().iter().zip(want) {
            approx::assert_abs_diff_eq!(*a, b, epsilon = 1e-6);
        }
        assert_eq!(
            tape.backward(y.sum())[x].to_vec(),
            vec![1.0, 1.0 / std::f32::consts::E, 2.0, 0.125]
        );

        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::scalar(1e-300));
        let y = x.log();
        approx::assert_relative_eq!(y.value().item(), -300.0 * 10f64.ln(), max_relative = 1e-15);
        approx::assert_relative_eq!(tape.backward(y)[x].item(), 1e300, max_relative = 1e-15);
    }

    #[test]
    fn outside_the_domain_as_ieee() {
        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::from_vec(vec![0.0, -2.0], [2]));
        let y = x.log();
        let v = y.value();
        assert_eq!(v[[0]], f64::NEG_INFINITY);
        assert!(v[[1]].is_nan());
        let g = tape.backward(y.sum());
        assert_eq!(g[x].to_vec(), vec![f64::INFINITY, -0.5]);
    }
}
