//! The index of the largest element along an axis, read off a handle's value.

use crate::float::Float;
use crate::tape::Var;

impl<'t, T: Float> Var<'t, T> {
    /// [`Tensor::argmax`](crate::tensor::Tensor::argmax) of the value: the index of the
    /// largest element along `axis` for each position of the other axes (the predicted
    /// class of each row of `[N, C]` logits). Indices have no gradient, so nothing is
    /// recorded.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let logits = tape.input(Tensor::from_vec(vec![0.1, 2.0, -1.0, 3.0, 3.0, 0.0], [2, 3]));
    /// assert_eq!(logits.argmax(1), vec![1, 0]);
    /// ```
    #[track_caller]
    pub fn argmax(self, axis: usize) -> Vec<usize> {
        self.with_value(|v| v.argmax(axis))
    }
}
