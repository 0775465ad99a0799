//! Rectified linear unit.

use crate::float::Float;
use crate::kernels::elementwise::{map, zip};
use crate::tape::Var;
use crate::tensor::Tensor;
use smallvec::smallvec;

impl<'t, T: Float> Var<'t, T> {
    /// `relu(x) = max(x, 0)`, elementwise.
    ///
    /// VJP: `∂L/∂x = g ⊙ [x > 0]`. At `x = 0` the function has no derivative; the gradient
    /// used there is 0, as in PyTorch.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.param(Tensor::from_vec(vec![-1.0, 2.0], [2]));
    /// let y = x.relu();
    /// assert_eq!(y.value().to_vec(), vec![0.0, 2.0]);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![0.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn relu(self) -> Var<'t, T> {
        let x = self.value();
        let y = Tensor::from_vec(
            map(x.data(), |v| if v > T::ZERO { v } else { T::ZERO }),
            x.shape().clone(),
        );
        let saved = y.clone(); // y > 0 exactly where x > 0
        self.tape().record("relu", &[self], y, move |g, _| {
            let gx = zip(g.data(), saved.data(), |g, y| {
                if y > T::ZERO { g } else { T::ZERO }
            });
            smallvec![Some(Tensor::from_vec(gx, saved.shape().clone()))]
        })
    }
}
