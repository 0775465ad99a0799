//! Log-softmax along one axis.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::ops::softmax::softmax_op;
use crate::tape::Var;

impl<'t, T: Float> Var<'t, T> {
    /// Log-softmax along `axis`: `yᵢ = (xᵢ − m) − ln Σⱼ exp(xⱼ − m)` over each lane of `axis`,
    /// where `m` is the lane's maximum. Computed directly, not as `ln(softmax)`, so it stays
    /// finite where softmax underflows: `[1e4, 0]` gives `[0, -1e4]`. Same shape as the input.
    /// An error when `axis` is not below the rank.
    ///
    /// VJP: `∂L/∂x = g − softmax(x) ⊙ Σ_axis g`, with `softmax(x) = exp(y)`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.input(Tensor::from_vec(vec![1e4, 0.0], [2]));
    /// assert_eq!(x.log_softmax(0).value().to_vec(), vec![0.0, -1e4]);
    /// assert!(x.try_log_softmax(1).is_err());
    /// ```
    #[track_caller]
    pub fn try_log_softmax(self, axis: usize) -> Result<Var<'t, T>, Error> {
        softmax_op("log_softmax", self, axis, true)
    }

    /// [`Var::try_log_softmax`], panicking when `axis` is out of range.
    ///
    /// # Panics
    /// With the message of [`Var::try_log_softmax`]'s error.
    #[track_caller]
    pub fn log_softmax(self, axis: usize) -> Var<'t, T> {
        self.try_log_softmax(axis).or_panic()
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::prelude::*;
    use rand::SeedableRng;

    #[test]
    fn gradcheck_along_every_axis() {
        let configs: &[(&[usize], usize)] = &[
            (&[1], 0),
            (&[6], 0),
            (&[1, 5], 1),
            (&[1, 5], 0),
            (&[3, 4], 0),
            (&[3, 4], 1),
            (&[2, 3, 5], 0),
            (&[2, 3, 5], 1),
            (&[2, 3, 5], 2),
            (&[4, 1, 3], 2),
        ];
        let mut worst: f64 = 0.0;
        for (k, &(shape, axis)) in configs.iter().enumerate() {
            let mut rng = rand::rngs::StdRng::seed_from_u64(100 + k as u64);
            let x = Tensor::randn(shape, &mut rng) * 2.0;
            match gradcheck(|v| v[0].log_softmax(axis), &[x]) {
                Ok(rep) => worst = worst.max(rep.max_abs_err()),
                Err(e) => panic!("{shape:?} axis {axis}: {e}"),
            }
        }
        println!(
            "log_softmax: {} configs, max abs err {worst:e}",
            configs.len()
        );
    }

    #[test]
    fn matches_log_of_softmax() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let tape = Tape::<f64>::new();
        let x = tape.input(Tensor::randn([3, 4, 2], &mut rng));
        for axis in 0..3 {
            let a = x.log_softmax(axis).value();
            let b = x.softmax(axis).value();
            for (u, w) in a.data().iter().zip(b.data()) {
                assert!((u - w.ln()).abs() < 1e-14);
            }
        }
    }

    #[test]
    fn known_values_and_stability() {
        // log_softmax([1, 2, 3])[2] = −ln(1 + e^−1 + e^−2)
        let t = Tape::<f64>::new();
        let y = t
            .input(Tensor::from_vec(vec![1.0, 2.0, 3.0], [1, 3]))
            .log_softmax(1)
            .value();
        assert!((y[[0, 2]] + 0.40760596444437).abs() < 1e-13);
        assert!((y[[0, 0]] + 2.40760596444437).abs() < 1e-13);

        let t = Tape::<f32>::new();
        let x = t.param(Tensor::from_vec(vec![1e4, 0.0, -1e4, 0.0], [2, 2]));
        let y = x.log_softmax(1);
        assert_eq!(y.value().to_vec(), vec![0.0, -1e4, -1e4, 0.0]);
        let g = t.backward(y.sum());
        // ∂/∂x of Σ y over a row of two = 1 − 2 softmax: [−1, 1] and [1, −1].
        assert_eq!(g[x].to_vec(), vec![-1.0, 1.0, 1.0, -1.0]);
    }

    #[test]
    fn axis_out_of_range() {
        let tape = Tape::<f64>::new();
        let x = tape.input(Tensor::zeros([2, 3, 4]));
        let e = x.try_log_softmax(3).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "log_softmax: axis 3 is out of range for a tensor of rank 3 (called at src/ops/log_softmax.rs:"
            ),
            "{e}"
        );
    }
}
