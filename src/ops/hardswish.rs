//! Hard swish, MobileNetV3's piecewise-quadratic swish.

use crate::float::Float;
use crate::ops::{Saved, pointwise, unary};
use crate::tape::Var;

impl<'t, T: Float> Var<'t, T> {
    /// `hardswish(x) = x · min(max(x + 3, 0), 6) / 6`, elementwise: 0 below −3, `x` above 3,
    /// `x (x + 3) / 6` between. The shape is kept.
    ///
    /// VJP, with PyTorch's choice at the joins: `∂L/∂x = 0` for `x < −3`,
    /// `g ⊙ (x/3 + 1/2)` for `−3 ≤ x ≤ 3`, `g` above. The second derivative is 1/3 inside
    /// (−3, 3) and 0 outside.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![-4.0, 0.0, 3.0], [3]));
    /// let y = x.hardswish();
    /// assert_eq!(y.value().to_vec(), vec![0.0, 0.0, 3.0]);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![0.0, 0.5, 1.5]);
    /// ```
    #[track_caller]
    pub fn hardswish(self) -> Var<'t, T> {
        let (three, six) = (T::from_f64(3.0), T::from_f64(6.0));
        let f = move |v: T| v * (v + three).max(T::ZERO).min(six) / six;
        unary(self, "hardswish", f, Saved::Input, |g, x, _| {
            hardswish_backward(g, x)
        })
    }
}

/// `g ⊙ hardswish'(x)`.
fn hardswish_backward<'s, T: Float>(g: Var<'s, T>, x: Var<'s, T>) -> Var<'s, T> {
    let (three, half) = (T::from_f64(3.0), T::from_f64(0.5));
    let f = move |g: T, x: T| {
        if x < -three {
            T::ZERO
        } else if x <= three {
            g * (x / three + half)
        } else {
            g
        }
    };
    pointwise("hardswish_backward", g, x, f, |a| {
        let x = a.input(1);
        [
            a.then(0, || hardswish_backward(a.g(), x)),
            a.then(1, || hardswish_second(a.g() * a.input(0), x)),
        ]
        .into()
    })
}

/// `g ⊙ hardswish''(x)`: `g/3` inside (−3, 3), 0 outside; linear in `g`, constant in `x`.
fn hardswish_second<'s, T: Float>(g: Var<'s, T>, x: Var<'s, T>) -> Var<'s, T> {
    let three = T::from_f64(3.0);
    let f = move |g: T, x: T| {
        if x > -three && x < three {
            g / three
        } else {
            T::ZERO
        }
    };
    pointwise("hardswish_backward_backward", g, x, f, |a| {
        [a.then(0, || hardswish_second(a.g(), a.input(1))), None].into()
    })
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::check_unary;

    #[test]
    fn gradcheck_shapes() {
        // Spread over the three pieces, away from the joins at ±3.
        let away = |x: f64| {
            let v = 3.0 * x;
            if (v.abs() - 3.0).abs() < 0.1 {
                v + 0.2
            } else {
                v
            }
        };
        check_unary("hardswish", away, |x| x.hardswish());
    }
}
