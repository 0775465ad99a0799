//! `ln(1 + x)`, accurate for tiny `x`.

use crate::float::Float;
use crate::ops::{Saved, pointwise, unary};
use crate::tape::Var;

impl<'t, T: Float> Var<'t, T> {
    /// `ln(1 + x)`, elementwise, computed with [`Float::ln_1p`]: accurate to the last bits
    /// where `(1 + x).ln()` loses them (for `|x|` far below 1, where `1 + x` rounds). The
    /// shape is kept.
    ///
    /// VJP: `∂L/∂x = g / (1 + x)`. As for [`Var::log`], `x = −1` gives `−inf` and `x < −1`
    /// gives NaN, with no error.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![0.0, 1e-20], [2]));
    /// let y = x.log1p();
    /// assert_eq!(y.value().to_vec(), vec![0.0, 1e-20]); // (1.0 + 1e-20).ln() would be 0
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![1.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn log1p(self) -> Var<'t, T> {
        unary(
            self,
            "log1p",
            |v| v.ln_1p(),
            Saved::Input,
            |g, x, _| log1p_backward(g, x),
        )
    }
}

/// `g / (1 + x)`, in one pass; its derivative in `x` is `-g / (1 + x)^2`.
fn log1p_backward<'s, T: Float>(g: Var<'s, T>, x: Var<'s, T>) -> Var<'s, T> {
    pointwise(
        "log1p_backward",
        g,
        x,
        |g, x| g / (T::ONE + x),
        |a| {
            let x = a.input(1);
            [
                a.then(0, || log1p_backward(a.g(), x)),
                a.then(1, || {
                    -log1p_backward(log1p_backward(a.g() * a.input(0), x), x)
                }),
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
        check_unary("log1p", |x| 0.3 * x.abs() - 0.5, |x| x.log1p());
    }

    #[test]
    fn accurate_for_tiny_x() {
        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::scalar(1e-10));
        let y = x.log1p();
        let v = y.value().item();
        // ln(1 + x) = x − x²/2 + x³/3 − ...: 1e-10 to a relative 5e-11.
        approx::assert_relative_eq!(v, 1e-10, max_relative = 1e-10);
        approx::assert_relative_eq!(v, 1e-10 - 0.5e-20, max_relative = 1e-15);
        // The naive form keeps only about 8 digits here.
        assert!(((1.0f64 + 1e-10).ln() - v).abs() / v > 1e-9);
        approx::assert_relative_eq!(tape.backward(y)[x].item(), 1.0 / (1.0 + 1e-10));

        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::from_vec(vec![1e-10f32, -1e-12], [2]));
        let y = x.log1p().value();
        approx::assert_relative_eq!(y[[0]], 1e-10, max_relative = 1e-6);
        approx::assert_relative_eq!(y[[1]], -1e-12, max_relative = 1e-6);
    }

    #[test]
    fn known_values_f32_f64() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::from_vec(vec![0.0, 1.0, 3.0, -0.5], [2, 2]));
        let y = x.log1p();
        assert_eq!(y.op(), "log1p");
        let ln2 = std::f32::consts::LN_2;
        for (a, b) in y.value().data().iter().zip([0.0, ln2, 2.0 * ln2, -ln2]) {
            approx::assert_abs_diff_eq!(*a, b, epsilon = 1e-6);
        }
        assert_eq!(
            tape.backward(y.sum())[x].to_vec(),
            vec![1.0, 0.5, 0.25, 2.0]
        );

        let tape = Tape::<f64>::new();
        let x = tape.input(Tensor::from_vec(vec![-1.0, -2.0], [2]));
        let y = x.log1p().value();
        assert_eq!(y[[0]], f64::NEG_INFINITY);
        assert!(y[[1]].is_nan());
    }
}
