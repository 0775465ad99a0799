//! Squared error against a constant target, elementwise.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::tape::Held;
use crate::tape::Var;
use crate::tensor::Tensor;

impl<'t, T: Float> Var<'t, T> {
    /// Squared error of `x = self` against a constant target `y` of the same shape,
    /// elementwise and **unreduced** (same shape as `x`): `loss = (x − y)²`. This is
    /// `F.mse_loss(x, y, reduction="none")`; for PyTorch's default (`reduction="mean"`, the
    /// mean squared error) take the mean of the result. The target receives no gradient.
    ///
    /// VJP: `∂L/∂x = 2 (x − y) ⊙ g`.
    ///
    /// An error when `y`'s shape differs from `x`'s (PyTorch broadcasts here with a warning;
    /// a silent broadcast of a `[N]` target against `[N, 1]` predictions is a classic bug,
    /// so it is refused).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 2.0, 4.0], [3]));
    /// let y = Tensor::from_vec(vec![1.5, 2.0, 1.0], [3]);
    /// let sq = x.mse_loss(&y);
    /// assert_eq!(sq.value().to_vec(), vec![0.25, 0.0, 9.0]);
    /// let mse = sq.sum() * (1.0 / 3.0); // the mean, PyTorch's default reduction
    /// let g = tape.backward(mse);
    /// let want = [-1.0 / 3.0, 0.0, 2.0]; // 2 (x − y) / 3
    /// assert!(g[x].data().iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-15));
    /// ```
    #[track_caller]
    pub fn try_mse_loss(self, target: &Tensor<T>) -> Result<Var<'t, T>, Error> {
        let x = self.value();
        if x.shape() != target.shape() {
            return Err(Error::incompatible(
                "mse_loss",
                x.shape(),
                target.shape(),
                "the target must have the input's shape (no broadcasting)",
            ));
        }
        let diff: Vec<T> = x
            .data()
            .iter()
            .zip(target.data())
            .map(|(&a, &b)| a - b)
            .collect();
        let shape = x.shape().clone();
        let loss = Tensor::from_vec(diff.iter().map(|&d| d * d).collect(), shape);
        let held = std::mem::size_of_val(&diff[..]);
        drop(diff);
        let target = target.clone();
        self.tape()
            .try_record_graph("mse_loss", &[self], loss, &[Held::bytes(held)], move |a| {
                // 2 (x − t) g, with x a handle so that it differentiates again.
                let d = a.input(0) - a.tape().input(target.clone());
                [Some(d * a.g() * T::from_f64(2.0))].into()
            })
    }

    /// [`Var::try_mse_loss`], panicking on a shape mismatch.
    ///
    /// # Panics
    /// With the message of [`Var::try_mse_loss`]'s error.
    #[track_caller]
    pub fn mse_loss(self, target: &Tensor<T>) -> Var<'t, T> {
        self.try_mse_loss(target).or_panic()
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::prelude::*;
    use rand::SeedableRng;

    #[test]
    fn gradcheck_shapes() {
        let shapes: &[&[usize]] = &[&[], &[1], &[5], &[3, 4], &[2, 3, 4], &[1, 1, 3]];
        let mut worst: f64 = 0.0;
        for (k, &shape) in shapes.iter().enumerate() {
            let mut rng = rand::rngs::StdRng::seed_from_u64(30 + k as u64);
            let x = Tensor::randn(shape, &mut rng);
            let y = Tensor::randn(shape, &mut rng) * 3.0;
            match gradcheck(|v| v[0].mse_loss(&y), std::slice::from_ref(&x)) {
                Ok(rep) => worst = worst.max(rep.max_abs_err()),
                Err(e) => panic!("{shape:?}: {e}"),
            }
            let r = gradcheck(|v| v[0].mse_loss(&y).sum(), &[x]);
            if let Err(e) = r {
                panic!("{shape:?} summed: {e}")
            }
        }
        println!(
            "mse_loss: {} configs, max abs err {worst:e}",
            2 * shapes.len()
        );
    }

    #[test]
    fn known_values_f32() {
        let t = Tape::<f32>::new();
        let x = t.param(Tensor::from_vec(vec![0.5, -1.0, 3.0, 2.0], [2, 2]));
        let y = Tensor::from_vec(vec![0.0, 1.0, 3.0, -2.0], [2, 2]);
        let l = x.mse_loss(&y);
        assert_eq!(l.shape(), [2, 2]);
        assert_eq!(l.value().to_vec(), vec![0.25, 4.0, 0.0, 16.0]);
        let g = t.backward_with(l, Tensor::from_vec(vec![1.0, 2.0, 3.0, 0.5], [2, 2]));
        assert_eq!(g[x].to_vec(), vec![1.0, -8.0, 0.0, 4.0]);
    }

    #[test]
    fn shape_mismatch() {
        let t = Tape::<f32>::new();
        let x = t.input(Tensor::zeros([4, 1]));
        let e = x.try_mse_loss(&Tensor::zeros([4])).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "mse_loss: shapes [4, 1] and [4] are incompatible: the target must have the input's shape (no broadcasting) (called at src/ops/mse_loss.rs:"
            ),
            "{e}"
        );
    }

    #[test]
    #[should_panic(expected = "mse_loss: shapes [2] and [] are incompatible")]
    fn plain_form_panics() {
        let t = Tape::<f64>::new();
        t.input(Tensor::zeros([2])).mse_loss(&Tensor::scalar(0.0));
    }
}
