//! Absolute value.

use crate::float::Float;
use crate::ops::{Saved, pointwise, unary};
use crate::tape::Var;

impl<'t, T: Float> Var<'t, T> {
    /// `|x|`, elementwise. The shape is kept.
    ///
    /// VJP: `∂L/∂x = sign(x) g`. At `x = 0` the function has no derivative; the gradient
    /// used there is 0 (`sign(0) = 0`), as in PyTorch.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.param(Tensor::from_vec(vec![-2.0, 0.0, 3.0], [3]));
    /// let y = x.abs();
    /// assert_eq!(y.value().to_vec(), vec![2.0, 0.0, 3.0]);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![-1.0, 0.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn abs(self) -> Var<'t, T> {
        unary(
            self,
            "abs",
            |v| v.abs(),
            Saved::Input,
            |g, x, _| abs_backward(g, x),
        )
    }
}

/// `g · sign(x)`, with 0 at `x = 0` (PyTorch's choice); its own derivative in `x` is zero
/// almost everywhere.
fn abs_backward<'s, T: Float>(g: Var<'s, T>, x: Var<'s, T>) -> Var<'s, T> {
    let f = |g: T, x: T| {
        if x > T::ZERO {
            g
        } else if x < T::ZERO {
            -g
        } else {
            T::ZERO
        }
    };
    pointwise("abs_backward", g, x, f, |a| {
        [a.then(0, || abs_backward(a.g(), a.input(1))), None].into()
    })
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::check_unary;

    use crate::tape::Tape;
    use crate::tensor::Tensor;

    #[test]
    fn gradcheck_shapes() {
        check_unary("abs", |x| x + 0.1 * x.signum(), |x| x.abs());
    }

    #[test]
    fn known_values_f32_f64() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::from_vec(vec![-1.5, 0.0, 2.0, -0.0], [2, 2]));
        let y = x.abs();
        assert_eq!(y.op(), "abs");
        assert_eq!(y.value().to_vec(), vec![1.5, 0.0, 2.0, 0.0]);
        let g = tape.backward_with(y, Tensor::from_vec(vec![2.0, 3.0, 4.0, 5.0], [2, 2]));
        assert_eq!(g[x].to_vec(), vec![-2.0, 0.0, 4.0, 0.0]);

        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::scalar(-7.25));
        let y = x.abs();
        assert_eq!(y.value().item(), 7.25);
        assert_eq!(tape.backward(y)[x].item(), -1.0);
    }
}
