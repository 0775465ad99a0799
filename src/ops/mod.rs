//! Every op, one file each: the forward computation and its VJP side by side, with the
//! gradient's formula in the doc comment. Ops are methods on [`Var`]; the heavy loops they
//! call live in the crate-private kernels (`src/kernels/`).

use crate::error::Error;
use crate::error::OrPanic;
use crate::float::Float;
use crate::kernels::elementwise::{map, zip};
use crate::shape::{Shape, broadcast_operands};
use crate::tape::{Held, Var, VarGrads, VjpArgs};
use crate::tensor::Tensor;

// Elementwise, binary with broadcasting.
pub mod add;
pub mod div;
pub mod maximum;
pub mod minimum;
pub mod mul;
pub mod neg;
pub mod powf;
pub mod sub;
// Elementwise, unary.
pub mod abs;
pub mod elu;
pub mod exp;
pub mod gelu;
pub mod hardswish;
pub mod leaky_relu;
pub mod log;
pub mod log1p;
pub mod relu;
pub mod sigmoid;
pub mod silu;
pub mod softplus;
pub mod sqrt;
pub mod square;
pub mod tanh;
// Linear algebra and convolution.
pub mod conv2d;
pub mod conv_transpose2d;
pub mod linear;
pub mod matmul;
// Pooling and resampling.
pub mod adaptive_avg_pool2d;
pub mod avg_pool2d;
pub mod max_pool2d;
pub mod pad;
mod resample;
pub mod upsample;
// Reductions.
pub mod argmax;
pub mod max;
pub mod mean;
pub mod sum;
// Shape.
pub mod broadcast_to;
pub mod concat;
pub mod flatten;
mod index;
pub mod narrow;
pub mod permute;
pub mod reshape;
// Normalisation and losses.
pub mod batch_norm;
pub mod bce;
pub mod bce_with_logits;
pub mod cross_entropy;
pub mod dropout;
pub mod group_norm;
pub mod layer_norm;
pub mod log_softmax;
pub mod mse_loss;
mod normalize;
pub mod softmax;

/// Checks that `a` and `b` share a tape and broadcast; returns their values and the shape
/// of the result.
#[track_caller]
pub(crate) fn broadcast_pair<T: Float>(
    op: &'static str,
    a: Var<'_, T>,
    b: Var<'_, T>,
) -> Result<(Tensor<T>, Tensor<T>, Shape), Error> {
    a.check_same_tape(op, b)?;
    let (av, bv) = (a.value(), b.value());
    let out = broadcast_operands(op, av.shape(), bv.shape())?;
    Ok((av, bv, out))
}

/// Sums a gradient of the broadcast shape back to an operand's own shape.
pub(crate) fn unbroadcast<T: Float>(g: &Tensor<T>, target: &Shape) -> Tensor<T> {
    g.sum_to_unchecked(target)
}

/// A per-axis pair of sizes, `(height, width)`, for strides, paddings, dilations and
/// kernels: `2.into()` is `Pair(2, 2)`, `(3, 1).into()` is `Pair(3, 1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pair(pub usize, pub usize);

impl From<usize> for Pair {
    fn from(v: usize) -> Self {
        Pair(v, v)
    }
}
impl From<(usize, usize)> for Pair {
    fn from((h, w): (usize, usize)) -> Self {
        Pair(h, w)
    }
}
impl From<[usize; 2]> for Pair {
    fn from([h, w]: [usize; 2]) -> Self {
        Pair(h, w)
    }
}

/// Which value an elementwise op's derivative reads: declared to [`Tape::report`] as what
/// the VJP keeps for backward (the value itself stays on the tape either way).
///
/// [`Tape::report`]: crate::tape::Tape::report
#[derive(Clone, Copy)]
pub(crate) enum Saved {
    /// The op's input `x`.
    Input,
    /// The op's output `y` (cheaper when `f'` is a function of `y`, as for exp or tanh).
    Output,
}

/// Records the elementwise op `y = f(x)`, whose VJP `vjp(g, x, y)` is written in ops on the
/// handles of the output's gradient, the input and the output (of which it reads `saved`).
/// The unary ops are one call of this each, so their forward and their gradient read side
/// by side.
#[track_caller]
pub(crate) fn unary<'t, T: Float>(
    x: Var<'t, T>,
    op: &'static str,
    f: impl Fn(T) -> T + Sync + Send,
    saved: Saved,
    vjp: impl for<'s> Fn(Var<'s, T>, Var<'s, T>, Var<'s, T>) -> Var<'s, T> + 'static,
) -> Var<'t, T> {
    // Borrowed, not cloned: one op's fixed cost matters.
    let (y, held) = x.with_value(|xv| {
        let y = Tensor::from_vec(map(xv.data(), f), xv.shape().clone());
        let held = match saved {
            Saved::Input => Held::tensor(xv),
            Saved::Output => Held::tensor(&y),
        };
        (y, held)
    });
    x.tape()
        .try_record_graph(op, &[x], y, &[held], move |a| {
            [Some(vjp(a.g(), a.input(0), a.output()))].into()
        })
        .or_panic()
}

/// Records `y = f(a, b)` elementwise for two values of one shape, with a differentiable VJP.
/// The unary ops' derivatives are such ops (`tanh_backward(g, y) = g (1 - y^2)`), so that a
/// first-order backward makes one pass over the data, as a hand-fused kernel would, and a
/// second-order one differentiates them in turn.
#[track_caller]
pub(crate) fn pointwise<'t, T: Float>(
    op: &'static str,
    a: Var<'t, T>,
    b: Var<'t, T>,
    f: impl Fn(T, T) -> T + Sync + Send,
    vjp: impl for<'s> Fn(&VjpArgs<'s, T>) -> VarGrads<'s, T> + 'static,
) -> Var<'t, T> {
    let y = a.with_value(|av| {
        b.with_value(|bv| {
            debug_assert_eq!(av.shape(), bv.shape(), "{op}: operands of one shape");
            Tensor::from_vec(zip(av.data(), bv.data(), f), av.shape().clone())
        })
    });
    a.tape().record_differentiable(op, &[a, b], y, vjp)
}

/// `g` summed to `like`'s shape (the gradient of a broadcast operand); `g` itself when the
/// shapes agree.
pub(crate) fn unbroadcast_to<'s, T: Float>(g: Var<'s, T>, like: Var<'s, T>) -> Var<'s, T> {
    let shape = like.shape();
    if g.shape() == shape {
        g
    } else {
        g.sum_to(shape)
    }
}

#[cfg(test)]
pub(crate) mod testing;
