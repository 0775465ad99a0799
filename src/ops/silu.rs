//! Sigmoid linear unit (swish).

use crate::float::Float;
use crate::ops::sigmoid::sigmoid_scalar;
use crate::ops::{Saved, pointwise, unary};
use crate::tape::Var;

impl<'t, T: Float> Var<'t, T> {
    /// `silu(x) = x σ(x)`, elementwise (also called swish). The shape is kept.
    ///
    /// VJP: `∂L/∂x = g ⊙ σ(x) (1 + x (1 − σ(x)))`; the second derivative is
    /// `σ (1 − σ) (2 + x (1 − 2σ))`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![0.0, 1.0], [2]));
    /// let y = x.silu();
    /// assert!((y.value().to_vec()[1] - 0.731_058_578_630_004_9).abs() < 1e-15);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec()[0], 0.5);
    /// ```
    #[track_caller]
    pub fn silu(self) -> Var<'t, T> {
        let f = |v: T| v * sigmoid_scalar(v);
        unary(self, "silu", f, Saved::Input, |g, x, _| silu_backward(g, x))
    }
}

/// `g ⊙ σ(x) (1 + x (1 − σ(x)))`.
fn silu_backward<'s, T: Float>(g: Var<'s, T>, x: Var<'s, T>) -> Var<'s, T> {
    let f = |g: T, x: T| {
        let s = sigmoid_scalar(x);
        g * s * (T::ONE + x * (T::ONE - s))
    };
    pointwise("silu_backward", g, x, f, |a| {
        let x = a.input(1);
        [
            a.then(0, || silu_backward(a.g(), x)),
            a.then(1, || {
                let s = x.sigmoid();
                let ds = s * s.rsub_scalar(T::ONE);
                let inner =
                    (x * (s * T::from_f64(-2.0)).add_scalar(T::ONE)).add_scalar(T::from_f64(2.0));
                a.g() * a.input(0) * ds * inner
            }),
        ]
        .into()
    })
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::check_unary;

    #[test]
    fn gradcheck_shapes() {
        check_unary("silu", |x| 3.0 * x, |x| x.silu());
    }
}
