//! The elementwise smaller of two operands, with NumPy broadcasting.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::kernels::elementwise::broadcast_zip;
use crate::ops::broadcast_pair;
use crate::ops::maximum::routed_grad;
use crate::tape::Held;
use crate::tape::Var;
use crate::tensor::Tensor;
use smallvec::smallvec;

/// The NaN-propagating smaller of `a` and `b` (`f32::min` ignores NaN; torch.minimum does not).
fn min_nan<T: Float>(a: T, b: T) -> T {
    if a <= b || a.is_nan() { a } else { b }
}

impl<'t, T: Float> Var<'t, T> {
    /// Elementwise `min(self, other)`, broadcasting as NumPy does. A NaN in either operand
    /// gives NaN.
    ///
    /// Shapes: the broadcast of both shapes, as for `+` (`[2, 3]` and `[3]` give `[2, 3]`).
    ///
    /// VJP: `∂L/∂a = unbroadcast(g ⊙ [a < b])`, `∂L/∂b = unbroadcast(g ⊙ [b < a])`: the
    /// gradient goes to the smaller operand. On an exact tie `a == b` the function has no
    /// derivative; the gradient there is split equally, `g/2` to each operand, as
    /// `torch.minimum` does. (Where an operand is NaN, both receive `g`, also as in PyTorch.)
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let a = tape.param(Tensor::from_vec(vec![1.0, 5.0, 2.0], [3]));
    /// let b = tape.param(Tensor::from_vec(vec![3.0, 4.0, 2.0], [3]));
    /// let y = a.minimum(b);
    /// assert_eq!(y.value().to_vec(), vec![1.0, 4.0, 2.0]);
    /// let g = tape.backward(y.sum());
    /// assert_eq!(g[a].to_vec(), vec![1.0, 0.0, 0.5]); // the tie splits the gradient
    /// assert_eq!(g[b].to_vec(), vec![0.0, 1.0, 0.5]);
    /// ```
    #[track_caller]
    pub fn try_minimum(self, other: Var<'t, T>) -> Result<Var<'t, T>, Error> {
        let (a, b, out) = broadcast_pair("minimum", self, other)?;
        let y = broadcast_zip(a.data(), a.shape(), b.data(), b.shape(), &out, min_nan);
        self.tape().try_record_saving(
            "minimum",
            &[self, other],
            Tensor::from_vec(y, out),
            &[Held::tensor(&a), Held::tensor(&b)],
            move |g, needs| {
                let half = T::from_f64(0.5);
                smallvec![
                    needs[0].then(|| routed_grad(g, &a, &b, a.shape(), |x, y| {
                        if x == y {
                            half
                        } else if x > y {
                            T::ZERO
                        } else {
                            T::ONE
                        }
                    })),
                    needs[1].then(|| routed_grad(g, &a, &b, b.shape(), |x, y| {
                        if x == y {
                            half
                        } else if x < y {
                            T::ZERO
                        } else {
                            T::ONE
                        }
                    })),
                ]
            },
        )
    }

    /// [`Var::try_minimum`], panicking when the shapes do not broadcast or the operands are
    /// on different tapes.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![-1.0, 2.0], [2]));
    /// let y = x.minimum(tape.scalar(1.0)); // clamp from above at 1
    /// assert_eq!(y.value().to_vec(), vec![-1.0, 1.0]);
    /// ```
    ///
    /// # Panics
    /// With the message of [`Var::try_minimum`]'s error.
    #[track_caller]
    pub fn minimum(self, other: Var<'t, T>) -> Var<'t, T> {
        self.try_minimum(other).or_panic()
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
            match gradcheck(|v| v[0].minimum(v[1]), &inputs(k, sa, sb)) {
                Ok(r) => worst = worst.max(r.max_abs_err()),
                Err(e) => panic!("minimum {sa:?}, {sb:?}: {e}"),
            }
        }
        eprintln!(
            "minimum: {} configs, max |error| {worst:.3e}",
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
        let y = a.minimum(b);
        assert_eq!(y.shape(), [2, 3]);
        assert_eq!(y.value().to_vec(), vec![0.0, -2.0, 0.0, 0.5, 2.0, -1.0]);
        let g = tape.backward(y.sum());
        assert_eq!(g[a].to_vec(), vec![0.0, 1.0, 0.0, 1.0, 0.0, 1.0]);
        assert_eq!(g[b].to_vec(), vec![2.0, 1.0]);

        let tape = Tape::<f64>::new();
        let a = tape.param(Tensor::from_vec(vec![-1.5, 2.5], [2]));
        let y = a.minimum(tape.scalar(0.0)); // only a needs a gradient
        assert_eq!(y.value().to_vec(), vec![-1.5, 0.0]);
        assert_eq!(tape.backward(y.sum())[a].to_vec(), vec![1.0, 0.0]);
    }

    #[test]
    fn ties_split_the_gradient_equally() {
        let tape = Tape::<f64>::new();
        let a = tape.param(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [4]));
        let b = tape.param(Tensor::from_vec(vec![1.0, 0.0, 5.0, 4.0], [4]));
        let y = a.minimum(b);
        assert_eq!(y.value().to_vec(), vec![1.0, 0.0, 3.0, 4.0]);
        let g = tape.backward_with(y, Tensor::from_vec(vec![2.0, 3.0, 5.0, 7.0], [4]));
        assert_eq!(g[a].to_vec(), vec![1.0, 0.0, 5.0, 3.5]);
        assert_eq!(g[b].to_vec(), vec![1.0, 3.0, 0.0, 3.5]);

        // A broadcast operand tied with every element collects half of each gradient.
        let tape = Tape::<f32>::new();
        let a = tape.param(Tensor::ones([2, 3]));
        let b = tape.param(Tensor::scalar(1.0));
        let g = tape.backward(a.minimum(b).sum());
        assert_eq!(g[a].to_vec(), vec![0.5; 6]);
        assert_eq!(g[b].item(), 3.0);
    }

    #[test]
    fn nan_propagates() {
        let tape = Tape::<f32>::new();
        let a = tape.input(Tensor::from_vec(vec![f32::NAN, 1.0], [2]));
        let b = tape.input(Tensor::from_vec(vec![1.0, f32::NAN], [2]));
        assert!(a.minimum(b).value().data().iter().all(|v| v.is_nan()));
    }

    #[test]
    fn not_broadcastable_names_both_shapes() {
        let tape = Tape::<f64>::new();
        let a = tape.input(Tensor::zeros([2, 3]));
        let b = tape.input(Tensor::zeros([4]));
        let line = line!() + 1;
        let e = a.try_minimum(b).unwrap_err().to_string();
        assert!(
            e.starts_with("minimum: shapes [2, 3] and [4] are incompatible: they do not broadcast"),
            "{e}"
        );
        assert!(
            e.contains(&format!("(called at src/ops/minimum.rs:{line}:")),
            "{e}"
        );
    }

    #[test]
    #[should_panic(expected = "minimum: shapes [3] and [2] are incompatible")]
    fn plain_form_panics_with_the_message() {
        let tape = Tape::<f32>::new();
        let _ = tape
            .input(Tensor::zeros([3]))
            .minimum(tape.input(Tensor::zeros([2])));
    }

    #[test]
    fn foreign_tape() {
        let (t1, t2) = (Tape::<f64>::new(), Tape::<f64>::new());
        let a: Var<'_, f64> = t1.param(Tensor::zeros([2]));
        let b = t2.param(Tensor::zeros([2]));
        let e = a.try_minimum(b).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "minimum: a handle from another tape was used on this one (called at src/ops/minimum.rs:"
            ),
            "{e}"
        );
    }
}
