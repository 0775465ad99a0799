//! The same elements under another shape, without a copy.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::shape::Shape;
use crate::tape::Var;
use crate::tensor::Tensor;

impl<'t, T: Float> Var<'t, T> {
    /// The elements of `self` in row-major order under `shape`, which must hold the same
    /// number of elements. No data is copied: the result shares the input's buffer. Every
    /// extent is given explicitly (there is no `-1` to infer one).
    ///
    /// Shapes: `[d₀, …]` → `shape`, with `Π dᵢ = Π shapeᵢ`.
    ///
    /// VJP: `∂L/∂x = reshape(g, shape of x)` (also without a copy).
    ///
    /// Errors: the element counts differ.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.param(Tensor::arange(6));
    /// let y = x.reshape([2, 3]);
    /// assert_eq!(y.value()[[1, 0]], 3.0);
    /// assert!(y.value().shares_buffer(&x.value()));
    /// assert!(x.try_reshape([4]).is_err());
    /// let g = tape.backward((y * y).sum());
    /// assert_eq!(g[x].shape(), &[6]);
    /// ```
    #[track_caller]
    pub fn try_reshape(self, shape: impl Into<Shape>) -> Result<Var<'t, T>, Error> {
        let y = self.value().try_reshape(shape)?;
        Ok(self.record_view("reshape", y))
    }

    /// [`Var::try_reshape`], panicking when the element counts differ.
    ///
    /// # Panics
    /// With the message of [`Var::try_reshape`]'s error.
    #[track_caller]
    pub fn reshape(self, shape: impl Into<Shape>) -> Var<'t, T> {
        self.try_reshape(shape).or_panic()
    }

    /// Records `y`, which must be this value's buffer under another shape with as many
    /// elements, as the result of the view op `op`; the VJP reshapes `g` back. Shared by
    /// `reshape` and `flatten`.
    #[track_caller]
    pub(crate) fn record_view(self, op: &'static str, y: Tensor<T>) -> Var<'t, T> {
        let in_shape = self.shape();
        debug_assert_eq!(in_shape.numel(), y.numel(), "{op}: a view keeps the count");
        self.tape().record_differentiable(op, &[self], y, move |a| {
            [Some(a.g().reshape(in_shape.clone()))].into()
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::tape::Tape;
    use crate::tensor::Tensor;
    use rand::SeedableRng;

    #[test]
    fn gradcheck_many_shapes() {
        let table: &[(&[usize], &[usize])] = &[
            (&[6], &[2, 3]),
            (&[2, 3], &[6]),
            (&[2, 3], &[3, 2]),
            (&[1], &[]),
            (&[], &[1, 1]),
            (&[2, 3, 4], &[4, 6]),
            (&[2, 3, 4], &[2, 12]),
            (&[2, 3, 4], &[24]),
            (&[2, 3, 4], &[2, 3, 4]),
            (&[3, 1, 5], &[5, 3]),
            (&[2, 3, 2, 2], &[4, 6]),
            (&[2, 3, 2, 2], &[2, 2, 3, 2]),
            (&[24], &[1, 2, 3, 4]),
        ];
        let mut worst: f64 = 0.0;
        for (k, &(from, to)) in table.iter().enumerate() {
            let mut rng = rand::rngs::StdRng::seed_from_u64(k as u64);
            let x = Tensor::<f64>::randn(from, &mut rng);
            // Squaring after the reshape checks that g arrives at the right positions.
            let r = gradcheck(
                |v| {
                    let y = v[0].reshape(to);
                    y * y
                },
                std::slice::from_ref(&x),
            );
            match r {
                Ok(rep) => worst = worst.max(rep.max_abs_err()),
                Err(e) => panic!("{from:?} -> {to:?}: {e}"),
            }
            let r = gradcheck(|v| v[0].reshape(to), &[x]);
            match r {
                Ok(rep) => worst = worst.max(rep.max_abs_err()),
                Err(e) => panic!("{from:?} -> {to:?} (linear): {e}"),
            }
        }
        println!(
            "reshape: {} gradcheck configurations, max |error| {worst:.3e}",
            2 * table.len()
        );
    }

    #[test]
    fn known_values_without_a_copy() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]));
        let y = x.reshape([3, 2]);
        assert_eq!(y.shape(), [3, 2]);
        assert_eq!(y.value().to_vec(), x.value().to_vec());
        assert_eq!(y.value()[[2, 0]], 5.0);
        assert!(y.value().shares_buffer(&x.value()));
        let w = tape.input(Tensor::from_vec(
            vec![1.0, 10.0, 100.0, 1000.0, 0.0, 0.0],
            [3, 2],
        ));
        let g = tape.backward((y * w).sum());
        assert_eq!(g[x].shape(), &[2, 3]);
        assert_eq!(g[x].to_vec(), vec![1.0, 10.0, 100.0, 1000.0, 0.0, 0.0]);

        let tape = Tape::<f64>::new();
        let s = tape.param(Tensor::from_vec(vec![2.5], [1, 1]));
        let y = s.reshape([]);
        assert_eq!(y.shape().rank(), 0);
        assert_eq!(tape.backward(y * 2.0)[s].to_vec(), vec![2.0]);
        // Empty tensors reshape among empty shapes.
        let e = tape.input(Tensor::zeros([0, 3])).reshape([3, 0, 5]);
        assert_eq!(e.shape(), [3, 0, 5]);
    }

    #[test]
    fn different_element_count_is_refused() {
        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::zeros([2, 3]));
        let s = x.try_reshape([4, 2]).unwrap_err().to_string();
        assert!(
            s.starts_with(
                "reshape: shapes [2, 3] and [4, 2] are incompatible: 6 elements cannot be viewed as 8 (called at src/ops/reshape.rs:"
            ),
            "{s}"
        );
    }

    #[test]
    #[should_panic(expected = "reshape: shapes [2, 3] and [5] are incompatible")]
    fn plain_form_panics() {
        let tape = Tape::<f32>::new();
        tape.input(Tensor::zeros([2, 3])).reshape([5]);
    }
}
