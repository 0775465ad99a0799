//! `a + b` with NumPy broadcasting, and `a + s` for a scalar.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::kernels::elementwise::{broadcast_zip, map};
use crate::ops::{broadcast_pair, unbroadcast_to};
use crate::tape::Var;
use crate::tensor::Tensor;

impl<'t, T: Float> Var<'t, T> {
    /// Elementwise `y = a + b` for `a = self`, `b = other`, broadcasting as NumPy does;
    /// also the `+` operator.
    ///
    /// Shapes: the two shapes broadcast to one, aligned from the right, each pair of
    /// extents equal or one of them 1 (`[2, 3]` and `[3]` give `[2, 3]`, `[2, 1]` and `[1, 4]`
    /// give `[2, 4]`); an error otherwise, or when the operands are on different tapes.
    ///
    /// **Where trailing-axis broadcasting bites.** A vector lines up with the *last* axis.
    /// Against `[N, F]` features that is what a per-feature bias wants, but against
    /// `[N, C, H, W]` maps a `[C]` bias lines up with the width `W`, not the channels, and
    /// when `W == C` NumPy would add it along the width without a word. That case is
    /// refused (here and in `-`, `*`, `/`, `maximum`, `minimum` and the same operators on
    /// [`Tensor`]): a rank-1 operand longer than 1 whose length is axis 1 of a rank-4
    /// operand, on either side, is an error naming the shape meant: `[C, 1, 1]` per channel
    /// (or [`Var::conv2d_bias`] for a convolution's bias), `[1, W]` along the last axis on
    /// purpose. Other ranks follow NumPy unguessed: a `[L]` vector against `[C, L]` or
    /// `[N, C, L]` is added along `L`.
    ///
    /// VJP: `∂L/∂a = unbroadcast(g)`, `∂L/∂b = unbroadcast(g)`: the upstream gradient summed
    /// over the axes along which each operand was broadcast; only for the operands that
    /// need a gradient.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let a = tape.param(Tensor::ones([2, 3]));
    /// let b = tape.param(Tensor::ones([3]));
    /// let g = tape.backward((a + b).sum());
    /// assert_eq!(g[b].to_vec(), vec![2.0; 3]); // b was broadcast over 2 rows
    ///
    /// // A per-channel bias on [N, C, H, W] maps has the shape [C, 1, 1], not [C].
    /// let maps = tape.input(Tensor::zeros([4, 3, 8, 3]));
    /// let bias = tape.param(Tensor::ones([3]));
    /// let e = maps.try_add(bias).unwrap_err();
    /// assert!(e.to_string().contains("reshape it to [3, 1, 1]"), "{e}");
    /// assert_eq!((maps + bias.reshape([3, 1, 1])).shape(), [4, 3, 8, 3]);
    /// ```
    #[track_caller]
    pub fn try_add(self, other: Var<'t, T>) -> Result<Var<'t, T>, Error> {
        let (a, b, out) = broadcast_pair("add", self, other)?;
        let y = broadcast_zip(a.data(), a.shape(), b.data(), b.shape(), &out, |x, y| x + y);
        self.tape().try_record_differentiable(
            "add",
            &[self, other],
            Tensor::from_vec(y, out),
            |a| {
                [
                    a.then(0, || unbroadcast_to(a.g(), a.input(0))),
                    a.then(1, || unbroadcast_to(a.g(), a.input(1))),
                ]
                .into()
            },
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
            .record_differentiable("add_scalar", &[self], y, |a| [Some(a.g())].into())
    }
}

/// The VJP of `add`: `g` summed back to each operand's shape, only for the operands whose
/// `needs` flag is set (an input or a frozen weight costs no reduction).
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
    fn vjp_skips_the_operands_that_need_no_gradient() {
        use crate::tape::Tape;
        use crate::tensor::Tensor;
        let tape = Tape::<f64>::new();
        let a = tape.input(Tensor::ones([2, 3]));
        let b = tape.param(Tensor::ones([3]));
        let y = a + b;
        let before = tape.len();
        assert_eq!(tape.backward(y.sum())[b].to_vec(), vec![2.0; 3]);
        // Only b's gradient was computed (one sum_to node, dropped after use) and the tape
        // is as it was.
        assert_eq!(tape.len(), before + 1);
        let tape = Tape::<f64>::new();
        let (a, b) = (
            tape.param(Tensor::ones([2, 3])),
            tape.param(Tensor::ones([3])),
        );
        let x = tape.input(Tensor::ones([2, 3]));
        let [ga] = tape.grad((a + x).sum(), &[a])[..] else {
            unreachable!()
        };
        assert_eq!(ga.shape(), [2, 3]);
        let [gb] = tape.grad((x + b).sum(), &[b])[..] else {
            unreachable!()
        };
        assert_eq!(gb.value().to_vec(), vec![2.0; 3]);
    }

    #[test]
    fn a_channel_vector_on_nchw_maps_is_refused() {
        use crate::tape::Tape;
        use crate::tensor::Tensor;
        let tape = Tape::<f32>::new();
        let maps = tape.input(Tensor::zeros([2, 3, 4, 3])); // W == C: NumPy would accept
        let bias = tape.param(Tensor::ones([3]));
        let line = line!() + 1;
        let e = maps.try_add(bias).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "add: shapes [2, 3, 4, 3] and [3] are incompatible: a rank-1 operand of length \
                 3 lines up with the last axis of a rank-4 one, not with its axis 1 (the \
                 channels of [N, C, H, W]); reshape it to [3, 1, 1] for a per-channel value \
                 (or use conv2d_bias for a convolution's bias), or to [1, 3] to broadcast \
                 along the last axis on purpose (called at src/ops/add.rs:{line}:22)"
            )
        );
        // Either side, W different from C (NumPy would refuse, the hint is the same), and
        // the other arithmetic ops, on f64 too.
        let e = bias.try_add(maps).unwrap_err().to_string();
        assert!(e.starts_with("add: shapes [3] and [2, 3, 4, 3] are incompatible: a rank-1"));
        let wide = tape.input(Tensor::zeros([2, 3, 4, 5]));
        let e = wide.try_add(bias).unwrap_err().to_string();
        assert!(e.contains("reshape it to [3, 1, 1]"), "{e}");
        let t64 = Tape::<f64>::new();
        let (m, v) = (
            t64.input(Tensor::zeros([1, 2, 2, 2])),
            t64.input(Tensor::ones([2])),
        );
        for e in [m.try_sub(v), m.try_mul(v), v.try_div(m), m.try_maximum(v)] {
            assert!(
                e.unwrap_err()
                    .to_string()
                    .contains("reshape it to [2, 1, 1]")
            );
        }
    }

    #[test]
    fn legitimate_trailing_broadcasts_still_work() {
        use crate::tape::Tape;
        use crate::tensor::Tensor;
        let tape = Tape::<f64>::new();
        let shape = |a: &[usize], b: &[usize]| {
            let (a, b) = (tape.input(Tensor::ones(a)), tape.input(Tensor::ones(b)));
            (a + b).shape().to_vec()
        };
        assert_eq!(shape(&[2, 3, 4, 3], &[3, 1, 1]), [2, 3, 4, 3]); // per channel
        assert_eq!(shape(&[2, 3, 4, 3], &[1, 3]), [2, 3, 4, 3]); // along W, on purpose
        assert_eq!(shape(&[2, 3, 4, 5], &[5]), [2, 3, 4, 5]); // along W, W != C
        assert_eq!(shape(&[2, 1, 4, 1], &[1]), [2, 1, 4, 1]); // one element
        assert_eq!(shape(&[2, 3], &[3]), [2, 3]); // per feature
        assert_eq!(shape(&[2, 3, 3], &[3]), [2, 3, 3]); // rank 3 is not guessed at
    }

    #[test]
    #[should_panic(
        expected = "add: shapes [1, 2, 5, 2] and [2] are incompatible: a rank-1 \
                               operand of length 2"
    )]
    fn the_operator_panics_on_a_channel_vector() {
        let tape = crate::tape::Tape::<f32>::new();
        let maps = tape.input(crate::tensor::Tensor::zeros([1, 2, 5, 2]));
        let _ = maps + tape.param(crate::tensor::Tensor::ones([2]));
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
