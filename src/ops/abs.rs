//! Absolute value.

use crate::float::Float;
use crate::kernels::elementwise::{map, zip};
use crate::tape::Var;
use crate::tensor::Tensor;
use smallvec::smallvec;

impl<'t, T: Float> Var<'t, T> {
    /// `|x|`, elementwise. The shape is kept.
    ///
    /// VJP: `∂L/∂x = sign(x) g`. At `x = 0` the function has no derivative; the gradient
    /// used there is 0 (`sign(0) = 0`), as in PyTorch.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.param(Tensor::from_vec(vec![-2.0, 0.0, 3.0], [3]));
    /// let y = x.abs();
    /// assert_eq!(y.value().to_vec(), vec![2.0, 0.0, 3.0]);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![-1.0, 0.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn abs(self) -> Var<'t, T> {
        let x = self.value();
        let y = Tensor::from_vec(map(x.data(), |v| v.abs()), x.shape().clone());
        self.tape().record("abs", &[self], y, move |g, _| {
            let gx = zip(g.data(), x.data(), |g, x| {
                if x > T::ZERO {
                    g
                } else if x < T::ZERO {
                    -g
                } else {
                    T::ZERO
                }
            });
            smallvec![Some(Tensor::from_vec(gx, x.shape().clone()))]
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
            // At least 0.1 away from the kink at 0.
            let x = Tensor::randn(Shape::from(s), &mut rng).map(|v: f64| v + 0.1 * v.signum());
            match gradcheck(|v| v[0].abs(), &[x]) {
                Ok(r) => worst = worst.max(r.max_abs_err()),
                Err(e) => panic!("abs {s:?}: {e}"),
            }
        }
        eprintln!("abs: {} configs, max |error| {worst:.3e}", shapes.len());
    }

    #[test]
    fn known_values_f32_f64() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::from_vec(vec![-1.5, 0.0, 2.0, -0.0], [2, 2]));
        let y = x.abs();
        assert_eq!(y.op(), "abs");
        assert_eq!(y.value().to_vec(), vec![1.5, 0.0, 2.0, 0.0]);
        let g = tape.backward_with(y, Tensor::from_vec(vec![2.0, 3.0, 4.0, 5.0], [2, 2]));
        assert_eq!(g[x].to_vec(), vec![-2.0, 0.0, 4.0, 0.0]);

        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::scalar(-7.25));
        let y = x.abs();
        assert_eq!(y.value().item(), 7.25);
        assert_eq!(tape.backward(y)[x].item(), -1.0);
    }
}
