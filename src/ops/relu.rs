//! Rectified linear unit.

use crate::float::Float;
use crate::ops::{Saved, pointwise, unary};
use crate::tape::Var;

impl<'t, T: Float> Var<'t, T> {
    /// `relu(x) = max(x, 0)`, elementwise. The shape is kept.
    ///
    /// VJP: `∂L/∂x = g ⊙ [x > 0]`. At `x = 0` the function has no derivative; the gradient
    /// used there is 0, as in PyTorch. As in PyTorch too, `relu(NaN)` is NaN and passes the
    /// gradient (a NaN in the data shows in the loss, instead of vanishing into a 0).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.param(Tensor::from_vec(vec![-1.0, 2.0], [2]));
    /// let y = x.relu();
    /// assert_eq!(y.value().to_vec(), vec![0.0, 2.0]);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![0.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn relu(self) -> Var<'t, T> {
        // `<=` rather than `>`, so that NaN (which compares false) passes through, as in
        // PyTorch: a NaN in the data must not vanish from the loss.
        let f = |v| if v <= T::ZERO { T::ZERO } else { v };
        unary(self, "relu", f, Saved::Output, |g, _, y| {
            relu_backward(g, y)
        })
    }
}

/// PyTorch's threshold_backward: `g` where the output is > 0 (which NaN is not counted as
/// failing: zero where `y <= 0`), else 0. Linear in `g`; zero derivative in `y` almost
/// everywhere.
fn relu_backward<'s, T: Float>(g: Var<'s, T>, y: Var<'s, T>) -> Var<'s, T> {
    let f = |g, y| if y <= T::ZERO { T::ZERO } else { g };
    pointwise("relu_backward", g, y, f, |a| {
        [a.then(0, || relu_backward(a.g(), a.input(1))), None].into()
    })
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::check_unary;

    #[test]
    fn gradcheck_shapes() {
        // Shifted away from the kink at 0.
        check_unary("relu", |x| x + 0.1 * x.signum(), |x| x.relu());
    }
}
