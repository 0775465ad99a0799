//! The exponential function.

use crate::float::Float;
use crate::kernels::elementwise::{map, zip};
use crate::tape::Var;
use crate::tensor::Tensor;
use smallvec::smallvec;

impl<'t, T: Float> Var<'t, T> {
    /// `e^x`, elementwise. The shape is kept. Overflows to `inf` beyond `x ≈ 88.7` in `f32`
    /// and `x ≈ 709.8` in `f64`.
    ///
    /// VJP: `∂L/∂x = y g`, with the saved output `y = e^x`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![0.0, 1.0], [2]));
    /// let y = x.exp();
    /// assert_eq!(y.value().to_vec(), vec![1.0, std::f64::consts::E]);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![1.0, std::f64::consts::E]);
    /// ```
    #[track_caller]
    pub fn exp(self) -> Var<'t, T> {
        let x = self.value();
        let y = Tensor::from_vec(map(x.data(), |v| v.exp()), x.shape().clone());
        let saved = y.clone();
        self.tape().record("exp", &[self], y, move |g, _| {
            let gx = zip(g.data(), saved.data(), |g, y| g * y);
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
            let x = Tensor::randn(Shape::from(s), &mut rng);
            match gradcheck(|v| v[0].exp(), &[x]) {
                Ok(r) => worst = worst.max(r.max_abs_err()),
                Err(e) => panic!("exp {s:?}: {e}"),
            }
        }
        eprintln!("exp: {} configs, max |error| {worst:.3e}", shapes.len());
    }

    #[test]
    fn known_values_f32_f64() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::from_vec(vec![0.0, 1.0, -1.0, 2.0], [2, 2]));
        let y = x.exp();
        assert_eq!(y.op(), "exp");
        let want = [1.0f32, std::f32::consts::E, 0.367_879_43, 7.389_056];
        for (a, b) in y.value().data().iter().zip(want) {
            approx::assert_relative_eq!(*a, b, max_relative = 1e-6);
        }
        let g = tape.backward(y.sum());
        for (a, b) in g[x].data().iter().zip(want) {
            approx::assert_relative_eq!(*a, b, max_relative = 1e-6);
        }

        let tape = Tape::<f64>::new();
        let x = tape.input(Tensor::from_vec(vec![f64::NEG_INFINITY, 710.0], [2]));
        assert_eq!(x.exp().value().to_vec(), vec![0.0, f64::INFINITY]);
    }
}
