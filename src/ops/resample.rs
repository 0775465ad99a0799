//! The op under padding, upsampling and adaptive average pooling: a fixed linear map of the
//! trailing axes ([`PlaneMap`]), whose VJP is the transposed map, whose VJP is the map
//! again. Crate-private: the public ops build the map and name the op.

use crate::float::Float;
use crate::kernels::resample::PlaneMap;
use crate::shape::Shape;
use crate::tape::Var;
use crate::tensor::Tensor;
use std::rc::Rc;

/// Names of one resampling op and of its transpose, as the tape reports them.
#[derive(Clone, Copy)]
pub(crate) struct Names {
    pub(crate) op: &'static str,
    pub(crate) backward: &'static str,
}

impl<'t, T: Float> Var<'t, T> {
    /// `map` applied to the trailing `map.in_dims` axes of `self`, which the caller has
    /// checked; outputs with no tap are `fill`.
    #[track_caller]
    pub(crate) fn resample(self, names: Names, map: Rc<PlaneMap<T>>, fill: T) -> Var<'t, T> {
        let (y, shape) = self.with_value(|x| {
            let lead = &x.shape()[..x.shape().len() - map.in_dims.len()];
            let shape: Shape = lead
                .iter()
                .chain(&map.out_dims)
                .copied()
                .collect::<Vec<_>>()
                .into();
            let mut y = crate::runtime::buffers::with_capacity(shape.numel());
            y.resize(shape.numel(), T::ZERO);
            map.apply(x.data(), fill, &mut y);
            (y, shape)
        });
        self.tape()
            .record_differentiable(names.op, &[self], Tensor::from_vec(y, shape), move |a| {
                [Some(resample_transposed(
                    a.g(),
                    names,
                    map.clone(),
                    a.input(0).shape(),
                ))]
                .into()
            })
    }
}

/// `Mᵀ g`, of the input's shape: the VJP of [`Var::resample`], with it as its own VJP.
fn resample_transposed<'s, T: Float>(
    g: Var<'s, T>,
    names: Names,
    map: Rc<PlaneMap<T>>,
    in_shape: Shape,
) -> Var<'s, T> {
    let mut gx = crate::runtime::buffers::zeroed(in_shape.numel());
    g.with_value(|gv| map.apply_transposed(gv.data(), &mut gx));
    g.tape().record_differentiable(
        names.backward,
        &[g],
        Tensor::from_vec(gx, in_shape),
        move |a| [Some(a.g().resample(names, map.clone(), T::ZERO))].into(),
    )
}
