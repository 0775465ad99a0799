//! `a * b` with NumPy broadcasting, and `a * s` for a scalar.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::kernels::elementwise::{broadcast_zip, map};
use crate::ops::{broadcast_pair, unbroadcast_to};
use crate::tape::{Held, Var};
use crate::tensor::Tensor;

impl<'t, T: Float> Var<'t, T> {
    /// Elementwise `y = a · b` for `a = self`, `b = other`, broadcasting as NumPy does;
    /// also the `*` operator.
    ///
    /// Shapes: the two shapes broadcast to one, aligned from the right, each pair of
    /// extents equal or one of them 1 (`[2, 3]` and `[3]` give `[2, 3]`, `[2, 1]` and `[1, 4]`
    /// give `[2, 4]`); an error otherwise, or when the operands are on different tapes.
    ///
    /// VJP: `∂L/∂a = unbroadcast(g ⊙ b)`, `∂L/∂b = unbroadcast(g ⊙ a)`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let a = tape.param(Tensor::from_vec(vec![1.0, 2.0], [2]));
    /// let b = tape.param(Tensor::from_vec(vec![3.0, 4.0], [2]));
    /// let g = tape.backward((a * b).sum());
    /// assert_eq!(g[a].to_vec(), vec![3.0, 4.0]);
    /// ```
    #[track_caller]
    pub fn try_mul(self, other: Var<'t, T>) -> Result<Var<'t, T>, Error> {
        let (a, b, out) = broadcast_pair("mul", self, other)?;
        let y = broadcast_zip(a.data(), a.shape(), b.data(), b.shape(), &out, |x, y| x * y);
        self.tape().try_record_graph(
            "mul",
            &[self, other],
            Tensor::from_vec(y, out),
            &[Held::tensor(&a), Held::tensor(&b)],
            |a| {
                let (x0, x1) = (a.input(0), a.input(1));
                [
                    a.then(0, || unbroadcast_to(a.g() * x1, x0)),
                    a.then(1, || unbroadcast_to(a.g() * x0, x1)),
                ]
                .into()
            },
        )
    }

    /// `self * s` for a scalar `s`, `y = s · x` elementwise; also `x * s` and `s * x`. The
    /// shape is kept.
    ///
    /// VJP: `∂L/∂x = s · g`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, -2.0], [2]));
    /// let y = x * 3.0; // mul_scalar
    /// assert_eq!(y.value().to_vec(), vec![3.0, -6.0]);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![3.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn mul_scalar(self, s: T) -> Var<'t, T> {
        let x = self.value();
        let y = Tensor::from_vec(map(x.data(), |v| v * s), x.shape().clone());
        self.tape()
            .record_differentiable("mul_scalar", &[self], y, move |a| {
                [Some(a.g().mul_scalar(s))].into()
            })
    }
}

impl<'t, T: Float> std::ops::Mul for Var<'t, T> {
    type Output = Var<'t, T>;
    /// `a * b`, as [`Var::try_mul`].
    ///
    /// # Panics
    /// With the message of [`Var::try_mul`]'s error.
    #[track_caller]
    fn mul(self, rhs: Var<'t, T>) -> Var<'t, T> {
        self.try_mul(rhs).or_panic()
    }
}

impl<'t, T: Float> std::ops::Mul<T> for Var<'t, T> {
    type Output = Var<'t, T>;
    #[track_caller]
    fn mul(self, s: T) -> Var<'t, T> {
        self.mul_scalar(s)
    }
}

macro_rules! scalar_lhs_mul {
    ($t:ty) => {
        impl<'t> std::ops::Mul<Var<'t, $t>> for $t {
            type Output = Var<'t, $t>;
            #[track_caller]
            fn mul(self, x: Var<'t, $t>) -> Var<'t, $t> {
                x.mul_scalar(self)
            }
        }
    };
}
scalar_lhs_mul!(f32);
scalar_lhs_mul!(f64);

#[cfg(test)]
mod tests {
    use crate::ops::testing::{UNARY_SHAPES, check, check_binary, randn};

    #[test]
    fn gradcheck_broadcasting() {
        check_binary("mul", |a, b| a * b);
    }

    #[test]
    fn gradcheck_scalar_forms() {
        for (k, &s) in UNARY_SHAPES.iter().enumerate() {
            let x = [randn(k as u64, s)];
            check("mul scalar", &x, |v| {
                let x = v[0];
                x * -1.5
            });
            check("mul scalar on the left", &x, |v| 0.5 * v[0]);
        }
    }
}
