//! The elementwise larger of two operands, with NumPy broadcasting.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::kernels::elementwise::broadcast_zip;
use crate::kernels::pool::nan_max;
use crate::ops::{broadcast_pair, unbroadcast_to};
use crate::shape::Shape;
use crate::tape::Held;
use crate::tape::Var;
use crate::tensor::Tensor;

/// Which operand a selecting op keeps at each pair of elements: the one body of
/// [`Var::try_maximum`] and [`Var::try_minimum`] (see [`select`]).
#[derive(Clone, Copy)]
pub(crate) enum Keep {
    /// `maximum`: the larger.
    Larger,
    /// `minimum`: the smaller.
    Smaller,
}

impl Keep {
    fn op(self) -> &'static str {
        match self {
            Keep::Larger => "maximum",
            Keep::Smaller => "minimum",
        }
    }

    /// The kept one of `a` and `b`, NaN if either is NaN (`f32::max` and `f32::min` ignore
    /// NaN; torch.maximum and torch.minimum do not). A tie keeps `a`.
    fn pick<T: Float>(self, a: T, b: T) -> T {
        match self {
            Keep::Larger => nan_max(a, b),
            // nan_max with the comparison turned: `b` only when strictly smaller or NaN.
            Keep::Smaller => {
                if (b < a) | b.is_nan() {
                    b
                } else {
                    a
                }
            }
        }
    }

    /// The share of the gradient that goes to `x` when paired with `y`: 1 when `x` is kept
    /// (or either is NaN, as in PyTorch), 0 when `y` is, 1/2 on an exact tie.
    fn share<T: Float>(self, x: T, y: T) -> T {
        let loses = match self {
            Keep::Larger => x < y,
            Keep::Smaller => x > y,
        };
        if x == y {
            T::from_f64(0.5)
        } else if loses {
            T::ZERO
        } else {
            T::ONE
        }
    }
}

/// The share `w(a, b)` of the gradient one operand of a selecting op receives, over the
/// broadcast shape.
fn shares<T: Float>(
    a: &Tensor<T>,
    b: &Tensor<T>,
    out: &Shape,
    w: impl Fn(T, T) -> T + Sync + Send,
) -> Tensor<T> {
    let w = broadcast_zip(a.data(), a.shape(), b.data(), b.shape(), out, w);
    Tensor::from_vec(w, out.clone())
}

/// `maximum` or `minimum` of `lhs` and `rhs`: forward and VJP, written once for both.
#[track_caller]
pub(crate) fn select<'t, T: Float>(
    lhs: Var<'t, T>,
    rhs: Var<'t, T>,
    keep: Keep,
) -> Result<Var<'t, T>, Error> {
    let op = keep.op();
    let (a, b, out) = broadcast_pair(op, lhs, rhs)?;
    let y = broadcast_zip(a.data(), a.shape(), b.data(), b.shape(), &out, |x, y| {
        keep.pick(x, y)
    });
    let held = [Held::tensor(&a), Held::tensor(&b)];
    lhs.tape()
        .try_record_graph(op, &[lhs, rhs], Tensor::from_vec(y, out), &held, move |x| {
            // The shares are constants: the derivative is zero almost everywhere.
            let (a, b, g) = (x.input(0), x.input(1), x.g());
            let routed = |own, w| unbroadcast_to(g * x.tape().input(w), own);
            let (av, bv) = (a.value(), b.value());
            [
                x.then(0, || {
                    routed(a, shares(&av, &bv, &g.shape(), |p, q| keep.share(p, q)))
                }),
                x.then(1, || {
                    routed(b, shares(&av, &bv, &g.shape(), |p, q| keep.share(q, p)))
                }),
            ]
            .into()
        })
}

impl<'t, T: Float> Var<'t, T> {
    /// Elementwise `max(self, other)`, broadcasting as NumPy does. A NaN in either operand
    /// gives NaN.
    ///
    /// Shapes: the broadcast of both shapes, as for `+` (`[2, 3]` and `[3]` give `[2, 3]`).
    ///
    /// VJP: `∂L/∂a = unbroadcast(g ⊙ [a > b])`, `∂L/∂b = unbroadcast(g ⊙ [b > a])`: the
    /// gradient goes to the larger operand. On an exact tie `a == b` the function has no
    /// derivative; the gradient there is split equally, `g/2` to each operand, as
    /// `torch.maximum` does. (Where an operand is NaN, both receive `g`, also as in PyTorch.)
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let a = tape.param(Tensor::from_vec(vec![1.0, 5.0, 2.0], [3]));
    /// let b = tape.param(Tensor::from_vec(vec![3.0, 4.0, 2.0], [3]));
    /// let y = a.maximum(b);
    /// assert_eq!(y.value().to_vec(), vec![3.0, 5.0, 2.0]);
    /// let g = tape.backward(y.sum());
    /// assert_eq!(g[a].to_vec(), vec![0.0, 1.0, 0.5]); // the tie splits the gradient
    /// assert_eq!(g[b].to_vec(), vec![1.0, 0.0, 0.5]);
    /// ```
    #[track_caller]
    pub fn try_maximum(self, other: Var<'t, T>) -> Result<Var<'t, T>, Error> {
        select(self, other, Keep::Larger)
    }

    /// [`Var::try_maximum`], panicking when the shapes do not broadcast or the operands are
    /// on different tapes.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![-1.0, 2.0], [2]));
    /// let y = x.maximum(tape.scalar(0.0)); // relu, with gradient 1/2 at 0
    /// assert_eq!(y.value().to_vec(), vec![0.0, 2.0]);
    /// ```
    ///
    /// # Panics
    /// With the message of [`Var::try_maximum`]'s error.
    #[track_caller]
    pub fn maximum(self, other: Var<'t, T>) -> Var<'t, T> {
        self.try_maximum(other).or_panic()
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;

    use crate::tape::{Tape, Var};
    use crate::tensor::Tensor;

    use crate::ops::testing::BROADCAST_PAIRS as CONFIGS;

    use crate::ops::testing::untied_pair as inputs;

    #[test]
    fn gradcheck_broadcasting() {
        let mut worst = 0.0f64;
        for (k, &(sa, sb)) in CONFIGS.iter().enumerate() {
            match gradcheck(|v| v[0].maximum(v[1]), &inputs(k, sa, sb)) {
                Ok(r) => worst = worst.max(r.max_abs_err()),
                Err(e) => panic!("maximum {sa:?}, {sb:?}: {e}"),
            }
        }
        eprintln!(
            "maximum: {} configs, max |error| {worst:.3e}",
            CONFIGS.len()
        );
    }

    #[test]
    fn known_values_f32_f64() {
        let tape = Tape::<f32>::new();
        let a = tape.param(Tensor::from_vec(
            vec![1.0, -2.0, 3.0, 0.5, 7.0, -1.0],
            [2, 3],
        ));
        let b = tape.param(Tensor::from_vec(vec![0.0, 2.0], [2, 1]));
        let y = a.maximum(b);
        assert_eq!(y.shape(), [2, 3]);
        assert_eq!(y.value().to_vec(), vec![1.0, 0.0, 3.0, 2.0, 7.0, 2.0]);
        let g = tape.backward(y.sum());
        assert_eq!(g[a].to_vec(), vec![1.0, 0.0, 1.0, 0.0, 1.0, 0.0]);
        assert_eq!(g[b].to_vec(), vec![1.0, 2.0]);

        let tape = Tape::<f64>::new();
        let a = tape.param(Tensor::from_vec(vec![-1.5, 2.5], [2]));
        let y = a.maximum(tape.scalar(0.0)); // only a needs a gradient
        assert_eq!(y.value().to_vec(), vec![0.0, 2.5]);
        assert_eq!(tape.backward(y.sum())[a].to_vec(), vec![0.0, 1.0]);
    }

    #[test]
    fn ties_split_the_gradient_equally() {
        let tape = Tape::<f64>::new();
        let a = tape.param(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [4]));
        let b = tape.param(Tensor::from_vec(vec![1.0, 0.0, 5.0, 4.0], [4]));
        let y = a.maximum(b);
        assert_eq!(y.value().to_vec(), vec![1.0, 2.0, 5.0, 4.0]);
        let g = tape.backward_with(y, Tensor::from_vec(vec![2.0, 3.0, 5.0, 7.0], [4]));
        assert_eq!(g[a].to_vec(), vec![1.0, 3.0, 0.0, 3.5]);
        assert_eq!(g[b].to_vec(), vec![1.0, 0.0, 5.0, 3.5]);

        // A broadcast operand tied with every element collects half of each gradient.
        let tape = Tape::<f32>::new();
        let a = tape.param(Tensor::ones([2, 3]));
        let b = tape.param(Tensor::scalar(1.0));
        let g = tape.backward(a.maximum(b).sum());
        assert_eq!(g[a].to_vec(), vec![0.5; 6]);
        assert_eq!(g[b].item(), 3.0);
    }

    #[test]
    fn nan_propagates() {
        let tape = Tape::<f32>::new();
        let a = tape.input(Tensor::from_vec(vec![f32::NAN, 1.0], [2]));
        let b = tape.input(Tensor::from_vec(vec![1.0, f32::NAN], [2]));
        assert!(a.maximum(b).value().data().iter().all(|v| v.is_nan()));
    }

    #[test]
    fn not_broadcastable_names_both_shapes() {
        let tape = Tape::<f64>::new();
        let a = tape.input(Tensor::zeros([2, 3]));
        let b = tape.input(Tensor::zeros([4]));
        let line = line!() + 1;
        let e = a.try_maximum(b).unwrap_err().to_string();
        assert!(
            e.starts_with("maximum: shapes [2, 3] and [4] are incompatible: they do not broadcast"),
            "{e}"
        );
        assert!(
            e.contains(&format!("(called at src/ops/maximum.rs:{line}:")),
            "{e}"
        );
    }

    #[test]
    #[should_panic(expected = "maximum: shapes [3] and [2] are incompatible")]
    fn plain_form_panics_with_the_message() {
        let tape = Tape::<f32>::new();
        let _ = tape
            .input(Tensor::zeros([3]))
            .maximum(tape.input(Tensor::zeros([2])));
    }

    #[test]
    fn foreign_tape() {
        let (t1, t2) = (Tape::<f64>::new(), Tape::<f64>::new());
        let a: Var<'_, f64> = t1.param(Tensor::zeros([2]));
        let b = t2.param(Tensor::zeros([2]));
        let e = a.try_maximum(b).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "maximum: a handle from another tape was used on this one (called at src/ops/maximum.rs:"
            ),
            "{e}"
        );
    }
}
