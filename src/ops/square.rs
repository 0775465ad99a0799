//! `x²`.

use crate::float::Float;
use crate::ops::{Saved, pointwise, unary};
use crate::tape::Var;

impl<'t, T: Float> Var<'t, T> {
    /// `x²`, elementwise (one multiplication, cheaper and exact where `powf(2)` is not
    /// guaranteed to be). The shape is kept.
    ///
    /// VJP: `∂L/∂x = 2 x g`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.param(Tensor::from_vec(vec![-3.0, 0.5], [2]));
    /// let y = x.square();
    /// assert_eq!(y.value().to_vec(), vec![9.0, 0.25]);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![-6.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn square(self) -> Var<'t, T> {
        unary(
            self,
            "square",
            |v| v * v,
            Saved::Input,
            |g, x, _| square_backward(g, x),
        )
    }
}

/// `2 x g`, in one pass; symmetric in its operands (`∂/∂x = 2g`, `∂/∂g = 2x`).
fn square_backward<'s, T: Float>(g: Var<'s, T>, x: Var<'s, T>) -> Var<'s, T> {
    pointwise(
        "square_backward",
        g,
        x,
        |g, x| T::from_f64(2.0) * x * g,
        |a| {
            [
                a.then(0, || square_backward(a.g(), a.input(1))),
                a.then(1, || square_backward(a.g(), a.input(0))),
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
        check_unary("square", |x| x, |x| x.square());
    }

    #[test]
    fn known_values_f32_f64() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::from_vec(vec![0.0, -1.5, 2.0, 10.0], [2, 2]));
        let y = x.square();
        assert_eq!(y.op(), "square");
        assert_eq!(y.value().to_vec(), vec![0.0, 2.25, 4.0, 100.0]);
        assert_eq!(
            tape.backward(y.sum())[x].to_vec(),
            vec![0.0, -3.0, 4.0, 20.0]
        );

        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::scalar(-1e-3));
        let y = x.square();
        assert_eq!(y.value().item(), 1e-3 * 1e-3);
        assert_eq!(tape.backward(y)[x].item(), -2e-3);
    }
}
