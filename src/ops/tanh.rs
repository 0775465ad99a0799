//! Hyperbolic tangent.

use crate::float::Float;
use crate::kernels::elementwise::{map, zip};
use crate::tape::Var;
use crate::tensor::Tensor;
use smallvec::smallvec;

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
        let y = Tensor::from_vec(map(x.data(), |v| v.tanh()), x.shape().clone());
        let saved = y.clone();
        self.tape().record("tanh", &[self], y, move |g, _| {
            let gx = zip(g.data(), saved.data(), |g, y| g * (T::ONE - y * y));
            smallvec![Some(Tensor::from_vec(gx, saved.shape().clone()))]
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::shape::Shape;
    use crate::tape::Tape;
    use crate::tensor::Tensor;
    use rand::SeedableRng;

    #[test]
    fn gradcheck_shapes() {
        let shapes: &[&[usize]] = &[&[], &[1], &[7], &[2, 3], &[2, 3, 4], &[3, 1, 2]];
        let mut worst = 0.0f64;
        for (k, &s) in shapes.iter().enumerate() {
            let mut rng = rand::rngs::StdRng::seed_from_u64(k as u64);
            let x = Tensor::randn(Shape::from(s), &mut rng).map(|v: f64| 2.0 * v);
            match gradcheck(|v| v[0].tanh(), &[x]) {
                Ok(r) => worst = worst.max(r.max_abs_err()),
                Err(e) => panic!("tanh {s:?}: {e}"),
            }
        }
        eprintln!("tanh: {} configs, max |error| {worst:.3e}", shapes.len());
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
