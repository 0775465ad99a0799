//! The exponential function.

use crate::float::Float;
use crate::ops::{Saved, unary};
use crate::tape::Var;

impl<'t, T: Float> Var<'t, T> {
    /// `e^x`, elementwise. The shape is kept. Overflows to `inf` beyond `x ≈ 88.7` in `f32`
    /// and `x ≈ 709.8` in `f64`.
    ///
    /// VJP: `∂L/∂x = y g`, with the saved output `y = e^x`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![0.0, 1.0], [2]));
    /// let y = x.exp();
    /// assert_eq!(y.value().to_vec(), vec![1.0, std::f64::consts::E]);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![1.0, std::f64::consts::E]);
    /// ```
    #[track_caller]
    pub fn exp(self) -> Var<'t, T> {
        unary(self, "exp", |v| v.exp(), Saved::Output, |g, _, y| g * y)
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::check_unary;

    use crate::tape::Tape;
    use crate::tensor::Tensor;

    #[test]
    fn gradcheck_shapes() {
        check_unary("exp", |x| x, |x| x.exp());
    }

    #[test]
    fn known_values_f32_f64() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::from_vec(vec![0.0, 1.0, -1.0, 2.0], [2, 2]));
        let y = x.exp();
        assert_eq!(y.op(), "exp");
        let want = [1.0f32, std::f32::consts::E, 0.367_879_43, 7.389_056];
        for (a, b) in y.value().data().iter().zip(want) {
            approx::assert_relative_eq!(*a, b, max_relative = 1e-6);
        }
        let g = tape.backward(y.sum());
        for (a, b) in g[x].data().iter().zip(want) {
            approx::assert_relative_eq!(*a, b, max_relative = 1e-6);
        }

        let tape = Tape::<f64>::new();
        let x = tape.input(Tensor::from_vec(vec![f64::NEG_INFINITY, 710.0], [2]));
        assert_eq!(x.exp().value().to_vec(), vec![0.0, f64::INFINITY]);
    }
}
