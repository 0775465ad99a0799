//! Gaussian error linear unit, exact (`erf`) and in its tanh approximation.

use crate::float::Float;
use crate::ops::{Saved, pointwise, unary};
use crate::tape::Var;

/// `1/√(2π)`.
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
/// `√(2/π)` and the cubic coefficient of the tanh form.
const C: f64 = 0.797_884_560_802_865_4;
const K: f64 = 0.044_715;

impl<'t, T: Float> Var<'t, T> {
    /// `gelu(x) = x Φ(x) = x/2 (1 + erf(x/√2))`, elementwise: PyTorch's `gelu` with
    /// `approximate="none"`. The shape is kept.
    ///
    /// VJP: `∂L/∂x = g ⊙ (Φ(x) + x φ(x))`, with `φ` the standard normal density; the second
    /// derivative is `φ(x) (2 − x²)`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![0.0, 1.0], [2]));
    /// let y = x.gelu();
    /// assert!((y.value().to_vec()[1] - 0.841_344_746_068_542_9).abs() < 1e-15);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec()[0], 0.5);
    /// ```
    #[track_caller]
    pub fn gelu(self) -> Var<'t, T> {
        let half = T::from_f64(0.5);
        let r = T::from_f64(std::f64::consts::FRAC_1_SQRT_2);
        let f = move |v: T| half * v * (T::ONE + (v * r).erf());
        unary(self, "gelu", f, Saved::Input, |g, x, _| gelu_backward(g, x))
    }

    /// `gelu_tanh(x) = x/2 (1 + tanh(√(2/π) (x + 0.044715 x³)))`, elementwise: PyTorch's
    /// `gelu` with `approximate="tanh"`. The shape is kept.
    ///
    /// VJP, with `t` the tanh and `u' = √(2/π) (1 + 3 · 0.044715 x²)`:
    /// `∂L/∂x = g ⊙ (½ (1 + t) + ½ x (1 − t²) u')`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![0.0, 1.0], [2]));
    /// let y = x.gelu_tanh();
    /// assert!((y.value().to_vec()[1] - 0.841_191_990_608_276_8).abs() < 1e-15);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec()[0], 0.5);
    /// ```
    #[track_caller]
    pub fn gelu_tanh(self) -> Var<'t, T> {
        let (half, c, k) = (T::from_f64(0.5), T::from_f64(C), T::from_f64(K));
        let f = move |v: T| half * v * (T::ONE + (c * (v + k * v * v * v)).tanh());
        unary(self, "gelu_tanh", f, Saved::Input, |g, x, _| {
            gelu_tanh_backward(g, x)
        })
    }
}

/// `g ⊙ (Φ(x) + x φ(x))`.
fn gelu_backward<'s, T: Float>(g: Var<'s, T>, x: Var<'s, T>) -> Var<'s, T> {
    let (half, r) = (
        T::from_f64(0.5),
        T::from_f64(std::f64::consts::FRAC_1_SQRT_2),
    );
    let p = T::from_f64(INV_SQRT_2PI);
    let f = move |g: T, x: T| {
        let cdf = half * (T::ONE + (x * r).erf());
        let pdf = p * (-half * x * x).exp();
        g * (cdf + x * pdf)
    };
    pointwise("gelu_backward", g, x, f, move |a| {
        let x = a.input(1);
        [
            a.then(0, || gelu_backward(a.g(), x)),
            a.then(1, || {
                let x2 = x.square();
                let pdf = (x2 * T::from_f64(-0.5)).exp() * p;
                a.g() * a.input(0) * pdf * x2.rsub_scalar(T::from_f64(2.0))
            }),
        ]
        .into()
    })
}

/// `g ⊙ (½ (1 + t) + ½ x (1 − t²) u')`.
fn gelu_tanh_backward<'s, T: Float>(g: Var<'s, T>, x: Var<'s, T>) -> Var<'s, T> {
    let (half, c, k) = (T::from_f64(0.5), T::from_f64(C), T::from_f64(K));
    let three_k = T::from_f64(3.0 * K);
    let f = move |g: T, x: T| {
        let x2 = x * x;
        let t = (c * (x + k * x2 * x)).tanh();
        let du = c * (T::ONE + three_k * x2);
        g * (half * (T::ONE + t) + half * x * (T::ONE - t * t) * du)
    };
    pointwise("gelu_tanh_backward", g, x, f, move |a| {
        let x = a.input(1);
        [
            a.then(0, || gelu_tanh_backward(a.g(), x)),
            a.then(1, || {
                // The second derivative, (1 − t²)(u' − x t u'² + 3·0.044715·√(2/π) x²).
                let x2 = x.square();
                let t = ((x2 * x * k + x) * c).tanh();
                let s = t.square().rsub_scalar(T::ONE);
                let du = x2 * (three_k * c) + c;
                let inner = du - x * t * du.square() + x2 * (three_k * c);
                a.g() * a.input(0) * s * inner
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
        check_unary("gelu", |x| 2.0 * x, |x| x.gelu());
        check_unary("gelu_tanh", |x| 2.0 * x, |x| x.gelu_tanh());
    }
}
