//! Leaky rectified linear unit.

use crate::float::Float;
use crate::ops::{Saved, pointwise, unary};
use crate::tape::Var;

impl<'t, T: Float> Var<'t, T> {
    /// `leaky_relu(x) = x` where `x > 0`, else `slope · x`, elementwise (PyTorch's
    /// `negative_slope`, 0.01 by default there). The shape is kept.
    ///
    /// VJP: `∂L/∂x = g ⊙ (x > 0 ? 1 : slope)`; at `x = 0` the slope is used, as in PyTorch.
    /// Piecewise linear: its second derivative is zero.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![-2.0, 3.0], [2]));
    /// let y = x.leaky_relu(0.1);
    /// assert_eq!(y.value().to_vec(), vec![-0.2, 3.0]);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![0.1, 1.0]);
    /// ```
    #[track_caller]
    pub fn leaky_relu(self, slope: T) -> Var<'t, T> {
        let f = move |v| if v > T::ZERO { v } else { v * slope };
        unary(self, "leaky_relu", f, Saved::Input, move |g, x, _| {
            leaky_relu_backward(g, x, slope)
        })
    }
}

/// `g ⊙ (x > 0 ? 1 : slope)`: linear in `g`, constant in `x` almost everywhere.
fn leaky_relu_backward<'s, T: Float>(g: Var<'s, T>, x: Var<'s, T>, slope: T) -> Var<'s, T> {
    let f = move |g, x| if x > T::ZERO { g } else { g * slope };
    pointwise("leaky_relu_backward", g, x, f, move |a| {
        [
            a.then(0, || leaky_relu_backward(a.g(), a.input(1), slope)),
            None,
        ]
        .into()
    })
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::check_unary;

    #[test]
    fn gradcheck_shapes() {
        for slope in [0.01, 0.2, -0.5] {
            // Shifted away from the kink at 0.
            check_unary(
                "leaky_relu",
                |x| x + 0.1 * x.signum(),
                |x| x.leaky_relu(slope),
            );
        }
    }
}
