//! Hyperbolic tangent.

use crate::error::OrPanic;
use crate::float::Float;
use crate::ops::pointwise;
use crate::tape::{Held, Var};
use crate::tensor::Tensor;

impl<'t, T: Float> Var<'t, T> {
    /// `tanh x`, elementwise, in `(−1, 1)` (exactly ±1 once `|x|` is large). The shape is
    /// kept.
    ///
    /// VJP: `∂L/∂x = g (1 − y²)`, from the saved output `y = tanh x`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![0.0, 100.0], [2]));
    /// let y = x.tanh();
    /// assert_eq!(y.value().to_vec(), vec![0.0, 1.0]);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![1.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn tanh(self) -> Var<'t, T> {
        let x = self.value();
        let y = Tensor::from_vec(crate::kernels::math::tanh(x.data()), x.shape().clone());
        let held = [Held::tensor(&y)];
        self.tape()
            .try_record_graph("tanh", &[self], y, &held, |a| {
                [Some(tanh_backward(a.g(), a.output()))].into()
            })
            .or_panic()
    }
}

/// `g (1 - y^2)`, in one pass; its derivative in `y` is `-2 g y`.
fn tanh_backward<'s, T: Float>(g: Var<'s, T>, y: Var<'s, T>) -> Var<'s, T> {
    pointwise(
        "tanh_backward",
        g,
        y,
        |g, y| g * (T::ONE - y * y),
        |a| {
            let y = a.input(1);
            [
                a.then(0, || tanh_backward(a.g(), y)),
                a.then(1, || a.g() * a.input(0) * y * T::from_f64(-2.0)),
            ]
            .into()
        },
    )
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::check_unary;

    use crate::tape::Tape;
    use crate::tensor::Tensor;

    #[test]
    fn gradcheck_shapes() {
        check_unary("tanh", |x| 2.0 * x, |x| x.tanh());
    }

    #[test]
    fn known_values_f32_f64() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::from_vec(vec![0.0, 0.5, -1.0, -50.0], [2, 2]));
        let y = x.tanh();
        assert_eq!(y.op(), "tanh");
        let want = [0.0f32, 0.462_117_16, -0.761_594_2, -1.0];
        for (a, b) in y.value().data().iter().zip(want) {
            approx::assert_abs_diff_eq!(*a, b, epsilon = 1e-6);
        }
        let g = tape.backward(y.sum());
        for (a, b) in g[x].data().iter().zip(want) {
            approx::assert_abs_diff_eq!(*a, 1.0 - b * b, epsilon = 1e-6);
        }

        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::scalar(1e-8));
        let y = x.tanh();
        approx::assert_relative_eq!(y.value().item(), 1e-8, max_relative = 1e-15);
        approx::assert_relative_eq!(tape.backward(y)[x].item(), 1.0, max_relative = 1e-15);
    }
}
