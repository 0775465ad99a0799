//! `a + b` with NumPy broadcasting, and `a + s` for a scalar.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::kernels::elementwise::{broadcast_zip, map};
use crate::ops::{broadcast_pair, unbroadcast};
use crate::tape::Var;
use crate::tensor::Tensor;
use smallvec::smallvec;

impl<'t, T: Float> Var<'t, T> {
    /// Elementwise `y = a + b` for `a = self`, `b = other`, broadcasting as NumPy does;
    /// also the `+` operator.
    ///
    /// Shapes: the two shapes broadcast to one, aligned from the right, each pair of
    /// extents equal or one of them 1 (`[2, 3]` and `[3]` give `[2, 3]`, `[2, 1]` and `[1, 4]`
    /// give `[2, 4]`); an error otherwise, or when the operands are on different tapes.
    ///
    /// VJP: `∂L/∂a = unbroadcast(g)`, `∂L/∂b = unbroadcast(g)`: the upstream gradient summed
    /// over the axes along which each operand was broadcast.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let a = tape.param(Tensor::ones([2, 3]));
    /// let b = tape.param(Tensor::ones([3]));
    /// let g = tape.backward((a + b).sum());
    /// assert_eq!(g[b].to_vec(), vec![2.0; 3]); // b was broadcast over 2 rows
    /// ```
    #[track_caller]
    pub fn try_add(self, other: Var<'t, T>) -> Result<Var<'t, T>, Error> {
        let (a, b, out) = broadcast_pair("add", self, other)?;
        let y = broadcast_zip(a.data(), a.shape(), b.data(), b.shape(), &out, |x, y| x + y);
        let (sa, sb) = (a.shape().clone(), b.shape().clone());
        self.tape().try_record(
            "add",
            &[self, other],
            Tensor::from_vec(y, out),
            move |g, _| smallvec![Some(unbroadcast(g, &sa)), Some(unbroadcast(g, &sb))],
        )
    }

    /// `self + s` for a scalar `s`, `y = x + s` elementwise; also `x + s` and `s + x`. The
    /// shape is kept.
    ///
    /// VJP: `∂L/∂x = g`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, -2.0], [2]));
    /// let y = 1.5 + x; // add_scalar
    /// assert_eq!(y.value().to_vec(), vec![2.5, -0.5]);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![1.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn add_scalar(self, s: T) -> Var<'t, T> {
        let x = self.value();
        let y = Tensor::from_vec(map(x.data(), |v| v + s), x.shape().clone());
        self.tape()
            .record("add_scalar", &[self], y, |g, _| smallvec![Some(g.clone())])
    }
}

impl<'t, T: Float> std::ops::Add for Var<'t, T> {
    type Output = Var<'t, T>;
    /// `a + b`, as [`Var::try_add`].
    ///
    /// # Panics
    /// With the message of [`Var::try_add`]'s error.
    #[track_caller]
    fn add(self, rhs: Var<'t, T>) -> Var<'t, T> {
        self.try_add(rhs).or_panic()
    }
}

impl<'t, T: Float> std::ops::Add<T> for Var<'t, T> {
    type Output = Var<'t, T>;
    #[track_caller]
    fn add(self, s: T) -> Var<'t, T> {
        self.add_scalar(s)
    }
}

macro_rules! scalar_lhs_add {
    ($t:ty) => {
        impl<'t> std::ops::Add<Var<'t, $t>> for $t {
            type Output = Var<'t, $t>;
            #[track_caller]
            fn add(self, x: Var<'t, $t>) -> Var<'t, $t> {
                x.add_scalar(self)
            }
        }
    };
}
scalar_lhs_add!(f32);
scalar_lhs_add!(f64);

#[cfg(test)]
mod tests {
    use crate::ops::testing::{UNARY_SHAPES, check, check_binary, randn};

    #[test]
    fn gradcheck_broadcasting() {
        check_binary("add", |a, b| a + b);
    }

    #[test]
    fn gradcheck_scalar_forms() {
        for (k, &s) in UNARY_SHAPES.iter().enumerate() {
            let x = [randn(k as u64, s)];
            check("add scalar", &x, |v| {
                let x = v[0];
                x + 2.5
            });
            check("add scalar on the left", &x, |v| 0.5 + v[0]);
        }
    }
}
