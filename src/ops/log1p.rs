//! `ln(1 + x)`, accurate for tiny `x`.

use crate::float::Float;
use crate::kernels::elementwise::{map, zip};
use crate::tape::Var;
use crate::tensor::Tensor;
use smallvec::smallvec;

impl<'t, T: Float> Var<'t, T> {
    /// `ln(1 + x)`, elementwise, computed with [`Float::ln_1p`]: accurate to the last bits
    /// where `(1 + x).ln()` loses them (for `|x|` far below 1, where `1 + x` rounds). The
    /// shape is kept.
    ///
    /// VJP: `∂L/∂x = g / (1 + x)`. As for [`Var::log`], `x = −1` gives `−inf` and `x < −1`
    /// gives NaN, with no error.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![0.0, 1e-20], [2]));
    /// let y = x.log1p();
    /// assert_eq!(y.value().to_vec(), vec![0.0, 1e-20]); // (1.0 + 1e-20).ln() would be 0
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![1.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn log1p(self) -> Var<'t, T> {
        let x = self.value();
        let y = Tensor::from_vec(map(x.data(), |v| v.ln_1p()), x.shape().clone());
        self.tape().record("log1p", &[self], y, move |g, _| {
            let gx = zip(g.data(), x.data(), |g, x| g / (T::ONE + x));
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
            // Inside the domain x > -1, away from the pole.
            let x = Tensor::uniform(Shape::from(s), -0.7, 3.0, &mut rng);
            match gradcheck(|v| v[0].log1p(), &[x]) {
                Ok(r) => worst = worst.max(r.max_abs_err()),
                Err(e) => panic!("log1p {s:?}: {e}"),
            }
        }
        eprintln!("log1p: {} configs, max |error| {worst:.3e}", shapes.len());
    }

    #[test]
    fn accurate_for_tiny_x() {
        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::scalar(1e-10));
        let y = x.log1p();
        let v = y.value().item();
        // ln(1 + x) = x − x²/2 + x³/3 − ...: 1e-10 to a relative 5e-11.
        approx::assert_relative_eq!(v, 1e-10, max_relative = 1e-10);
        approx::assert_relative_eq!(v, 1e-10 - 0.5e-20, max_relative = 1e-15);
        // The naive form keeps only about 8 digits here.
        assert!(((1.0f64 + 1e-10).ln() - v).abs() / v > 1e-9);
        approx::assert_relative_eq!(tape.backward(y)[x].item(), 1.0 / (1.0 + 1e-10));

        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::from_vec(vec![1e-10f32, -1e-12], [2]));
        let y = x.log1p().value();
        approx::assert_relative_eq!(y[[0]], 1e-10, max_relative = 1e-6);
        approx::assert_relative_eq!(y[[1]], -1e-12, max_relative = 1e-6);
    }

    #[test]
    fn known_values_f32_f64() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::from_vec(vec![0.0, 1.0, 3.0, -0.5], [2, 2]));
        let y = x.log1p();
        assert_eq!(y.op(), "log1p");
        let ln2 = std::f32::consts::LN_2;
        for (a, b) in y.value().data().iter().zip([0.0, ln2, 2.0 * ln2, -ln2]) {
            approx::assert_abs_diff_eq!(*a, b, epsilon = 1e-6);
        }
        assert_eq!(
            tape.backward(y.sum())[x].to_vec(),
            vec![1.0, 0.5, 0.25, 2.0]
        );

        let tape = Tape::<f64>::new();
        let x = tape.input(Tensor::from_vec(vec![-1.0, -2.0], [2]));
        let y = x.log1p().value();
        assert_eq!(y[[0]], f64::NEG_INFINITY);
        assert!(y[[1]].is_nan());
    }
}
