//! Negation, `-x`.
//!
//! There is no inherent `neg` method: a method of that name would shadow
//! [`std::ops::Neg::neg`], so the op is the unary `-` operator alone.

use crate::float::Float;
use crate::kernels::elementwise::map;
use crate::tape::Var;
use crate::tensor::Tensor;

/// `-x`, elementwise: the unary `-` operator on a [`Var`].
///
/// VJP: `∂L/∂x = −g`. The shape is kept.
///
/// ```
/// use tapegrad::prelude::*;
/// let tape = Tape::<f32>::new();
/// let x = tape.param(Tensor::from_vec(vec![1.0, -2.0], [2]));
/// let y = -x;
/// assert_eq!(y.value().to_vec(), vec![-1.0, 2.0]);
/// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![-1.0, -1.0]);
/// ```
impl<'t, T: Float> std::ops::Neg for Var<'t, T> {
    type Output = Var<'t, T>;
    #[track_caller]
    fn neg(self) -> Var<'t, T> {
        let x = self.value();
        let y = Tensor::from_vec(map(x.data(), |v| -v), x.shape().clone());
        self.tape()
            .record_differentiable("neg", &[self], y, |a| [Some(-a.g())].into())
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
        let shapes: &[&[usize]] = &[&[], &[1], &[7], &[2, 3], &[2, 3, 5], &[3, 1, 2]];
        let mut worst = 0.0f64;
        for (k, &s) in shapes.iter().enumerate() {
            let mut rng = rand::rngs::StdRng::seed_from_u64(k as u64);
            let x = Tensor::randn(Shape::from(s), &mut rng);
            match gradcheck(|v| -v[0], &[x]) {
                Ok(r) => worst = worst.max(r.max_abs_err()),
                Err(e) => panic!("neg {s:?}: {e}"),
            }
        }
        eprintln!("neg: {} configs, max |error| {worst:.3e}", shapes.len());
    }

    #[test]
    fn known_values_f32_f64() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::from_vec(vec![0.0, 1.5, -3.0, 4.0], [2, 2]));
        let y = -x;
        assert_eq!(y.op(), "neg");
        assert_eq!(y.shape(), [2, 2]);
        assert_eq!(y.value().to_vec(), vec![-0.0, -1.5, 3.0, -4.0]);
        assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![-1.0; 4]);

        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::scalar(2.5));
        let y = -(-x);
        assert_eq!(y.value().item(), 2.5);
        assert_eq!(tape.backward(y)[x].item(), 1.0);
    }
}
