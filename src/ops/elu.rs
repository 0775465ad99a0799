//! Exponential linear unit.

use crate::float::Float;
use crate::ops::{Saved, pointwise, unary};
use crate::tape::Var;

impl<'t, T: Float> Var<'t, T> {
    /// `elu(x) = x` where `x > 0`, else `α (eˣ − 1)`, elementwise (PyTorch's `alpha`, 1 by
    /// default there). The shape is kept.
    ///
    /// VJP: `∂L/∂x = g ⊙ (x > 0 ? 1 : α eˣ)`. Every higher derivative is `α eˣ` below 0 and
    /// 0 above, so one op of the form `g ⊙ (x > 0 ? c : α eˣ)` is its own derivative's VJP.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![0.0, 2.0], [2]));
    /// let y = x.elu(1.0);
    /// assert_eq!(y.value().to_vec(), vec![0.0, 2.0]);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![1.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn elu(self, alpha: T) -> Var<'t, T> {
        let f = move |v: T| {
            if v > T::ZERO {
                v
            } else {
                alpha * (v.exp() - T::ONE)
            }
        };
        unary(self, "elu", f, Saved::Input, move |g, x, _| {
            elu_derivative(g, x, alpha, T::ONE)
        })
    }
}

/// `g ⊙ (x > 0 ? above : α eˣ)`: `above` is 1 for elu's first derivative, 0 for every
/// later one.
fn elu_derivative<'s, T: Float>(g: Var<'s, T>, x: Var<'s, T>, alpha: T, above: T) -> Var<'s, T> {
    let f = move |g: T, x: T| g * if x > T::ZERO { above } else { alpha * x.exp() };
    pointwise("elu_backward", g, x, f, move |a| {
        let x = a.input(1);
        [
            a.then(0, || elu_derivative(a.g(), x, alpha, above)),
            a.then(1, || elu_derivative(a.g() * a.input(0), x, alpha, T::ZERO)),
        ]
        .into()
    })
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::check_unary;

    #[test]
    fn gradcheck_shapes() {
        for alpha in [1.0, 0.3] {
            check_unary("elu", |x| 2.0 * x + 0.1 * x.signum(), |x| x.elu(alpha));
        }
    }
}
