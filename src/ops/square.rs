//! `x²`.

use crate::float::Float;
use crate::kernels::elementwise::{map, zip};
use crate::tape::Var;
use crate::tensor::Tensor;
use smallvec::smallvec;

impl<'t, T: Float> Var<'t, T> {
    /// `x²`, elementwise (one multiplication, cheaper and exact where `powf(2)` is not
    /// guaranteed to be). The shape is kept.
    ///
    /// VJP: `∂L/∂x = 2 x g`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.param(Tensor::from_vec(vec![-3.0, 0.5], [2]));
    /// let y = x.square();
    /// assert_eq!(y.value().to_vec(), vec![9.0, 0.25]);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![-6.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn square(self) -> Var<'t, T> {
        let x = self.value();
        let y = Tensor::from_vec(map(x.data(), |v| v * v), x.shape().clone());
        self.tape().record("square", &[self], y, move |g, _| {
            let two = T::from_f64(2.0);
            let gx = zip(g.data(), x.data(), |g, x| two * x * g);
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
            let x = Tensor::randn(Shape::from(s), &mut rng);
            match gradcheck(|v| v[0].square(), &[x]) {
                Ok(r) => worst = worst.max(r.max_abs_err()),
                Err(e) => panic!("square {s:?}: {e}"),
            }
        }
        eprintln!("square: {} configs, max |error| {worst:.3e}", shapes.len());
    }

    #[test]
    fn known_values_f32_f64() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::from_vec(vec![0.0, -1.5, 2.0, 10.0], [2, 2]));
        let y = x.square();
        assert_eq!(y.op(), "square");
        assert_eq!(y.value().to_vec(), vec![0.0, 2.25, 4.0, 100.0]);
        assert_eq!(
            tape.backward(y.sum())[x].to_vec(),
            vec![0.0, -3.0, 4.0, 20.0]
        );

        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::scalar(-1e-3));
        let y = x.square();
        assert_eq!(y.value().item(), 1e-3 * 1e-3);
        assert_eq!(tape.backward(y)[x].item(), -2e-3);
    }
}
