//! Moving elements by a list of flat indices: the VJPs of `max` (scatter to the argmax) and
//! their own adjoints. Crate-private: built for VJPs, not a public indexing API.

use crate::float::Float;
use crate::shape::Shape;
use crate::tape::Var;
use crate::tensor::Tensor;
use std::rc::Rc;

impl<'t, T: Float> Var<'t, T> {
    /// `y` of `shape`, zero but for `y[idx[i]] += x[i]` (row-major flat indices; repeated
    /// ones add up).
    ///
    /// VJP: `∂L/∂x = gather(g, idx)`.
    #[track_caller]
    pub(crate) fn scatter(self, idx: &Rc<[usize]>, shape: Shape) -> Var<'t, T> {
        let mut y = crate::runtime::buffers::zeroed(shape.numel());
        self.with_value(|x| {
            for (&i, &v) in idx.iter().zip(x.data()) {
                y[i] += v;
            }
        });
        let idx = idx.clone();
        self.tape().record_differentiable(
            "scatter",
            &[self],
            Tensor::from_vec(y, shape),
            move |a| [Some(a.g().gather(&idx, a.input(0).shape()))].into(),
        )
    }

    /// `y[i] = x[idx[i]]`, of `shape` (as many elements as `idx`).
    ///
    /// VJP: `∂L/∂x = scatter(g, idx)`.
    #[track_caller]
    pub(crate) fn gather(self, idx: &Rc<[usize]>, shape: Shape) -> Var<'t, T> {
        debug_assert_eq!(shape.numel(), idx.len(), "gather: one index per element");
        let y = self.with_value(|x| idx.iter().map(|&i| x.data()[i]).collect());
        let idx = idx.clone();
        self.tape()
            .record_differentiable("gather", &[self], Tensor::from_vec(y, shape), move |a| {
                [Some(a.g().scatter(&idx, a.input(0).shape()))].into()
            })
    }
}
