//! Inverted dropout, active only in training mode.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::kernels::elementwise::dropout;
use crate::tape::Var;
use crate::tensor::Tensor;
use rand::{Rng, RngExt};

impl<'t, T: Float> Var<'t, T> {
    /// Inverted dropout with drop probability `p` in `[0, 1)`.
    ///
    /// In training mode ([`Tape::is_training`](crate::tape::Tape::is_training), the default
    /// of [`Tape::new`](crate::tape::Tape::new)) each element is zeroed independently with
    /// probability `p` and the survivors are scaled by `1 / (1 − p)`, so the expected value of
    /// every element is unchanged: `y = x ⊙ m / (1 − p)` with `m` a Bernoulli(1 − p) mask.
    /// One `u64` is drawn from `rng` per call; element `i`'s mask bit is a hash of `i` under
    /// it (`dropout_keeps`, a hash of the seed and the index), so the same rng
    /// state gives the same mask, whatever the thread count. Same shape as the input.
    ///
    /// In evaluation mode, and for `p = 0`, dropout is the identity and returns `self`
    /// itself: no node is recorded and no random number is drawn. (PyTorch's
    /// `F.dropout(x, p, training=False)` likewise returns its input unchanged.)
    ///
    /// VJP: `∂L/∂x = g ⊙ m / (1 − p)`, the mask hashed again from the saved seed (the node
    /// holds 8 bytes for backward, not a mask the size of `x`).
    ///
    /// An error when `p` is not in `[0, 1)` (or is NaN); PyTorch accepts `p = 1` and returns
    /// zeros, which trains nothing, so it is refused here.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let tape = Tape::<f32>::new();
    /// let x = tape.param(Tensor::ones([1000]));
    /// let y = x.dropout(0.5, &mut rng);
    /// let yv = y.value();
    /// assert!(yv.data().iter().all(|&v| v == 0.0 || v == 2.0)); // survivors × 1/(1 − p)
    /// let g = tape.backward(y.sum());
    /// assert_eq!(g[x], yv); // the gradient is the scaled mask
    ///
    /// tape.set_training(false); // evaluation: the identity
    /// assert_eq!(x.dropout(0.5, &mut rng).id(), x.id());
    /// assert!(x.try_dropout(1.0, &mut rng).is_err());
    /// ```
    #[track_caller]
    pub fn try_dropout(self, p: f64, rng: &mut (impl Rng + ?Sized)) -> Result<Var<'t, T>, Error> {
        // Written so that NaN fails the test too.
        if !(0.0..1.0).contains(&p) {
            return Err(Error::bad_argument(
                "dropout",
                format!(
                    "p = {p} is not a drop probability in [0, 1) (p = 1 would zero every element and scale by 1/0)"
                ),
            ));
        }
        if p == 0.0 || !self.tape().is_training() {
            return Ok(self);
        }
        let scale = T::from_f64(1.0 / (1.0 - p));
        // p < 1, so p · 2^32 < 2^32 and the cast cannot saturate.
        let threshold = (p * 4_294_967_296.0) as u32;
        let seed: u64 = rng.random();
        Ok(self.masked(seed, threshold, scale))
    }

    /// The dropout mask of `seed` applied (and scaled): linear, and its own adjoint, so
    /// it is also the VJP, and the VJP's VJP. Only the seed is kept: the mask is hashed
    /// again from it, not stored.
    #[track_caller]
    fn masked(self, seed: u64, threshold: u32, scale: T) -> Var<'t, T> {
        let y = self.with_value(|x| {
            Tensor::from_vec(dropout(x.data(), seed, threshold, scale), x.shape().clone())
        });
        self.tape()
            .record_differentiable("dropout", &[self], y, move |a| {
                [Some(a.g().masked(seed, threshold, scale))].into()
            })
    }

    /// [`Var::try_dropout`], panicking when `p` is not in `[0, 1)`.
    ///
    /// # Panics
    /// With the message of [`Var::try_dropout`]'s error.
    #[track_caller]
    pub fn dropout(self, p: f64, rng: &mut (impl Rng + ?Sized)) -> Var<'t, T> {
        self.try_dropout(p, rng).or_panic()
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn gradcheck_with_a_reseeded_mask() {
        let shapes: &[&[usize]] = &[&[1], &[9], &[3, 4], &[2, 3, 4]];
        let mut count = 0;
        let mut worst: f64 = 0.0;
        for (k, &shape) in shapes.iter().enumerate() {
            for p in [0.0, 0.2, 0.5, 0.9] {
                let mut rng = StdRng::seed_from_u64(40 + k as u64);
                let x = Tensor::randn(shape, &mut rng);
                // The closure re-seeds its rng, so every call draws the same mask.
                let r = gradcheck(
                    |v| {
                        let mut rng = StdRng::seed_from_u64(7 + k as u64);
                        v[0].dropout(p, &mut rng)
                    },
                    &[x],
                );
                match r {
                    Ok(rep) => worst = worst.max(rep.max_abs_err()),
                    Err(e) => panic!("{shape:?} p {p}: {e}"),
                }
                count += 1;
            }
        }
        println!("dropout: {count} configs, max abs err {worst:e}");
    }

    #[test]
    fn statistics_of_the_mask() {
        let n = 10_000;
        let p = 0.3;
        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::ones([n]));
        let mut rng = StdRng::seed_from_u64(1);
        let y = x.dropout(p, &mut rng).value();
        let zeros = y.data().iter().filter(|&&v| v == 0.0).count();
        let frac = zeros as f64 / n as f64;
        // The standard deviation of the fraction is sqrt(p (1 − p) / n) ≈ 0.0046.
        assert!((frac - p).abs() < 0.02, "fraction zeroed {frac}");
        let scale = 1.0 / (1.0 - p);
        assert!(y.data().iter().all(|&v| v == 0.0 || v == scale));
        let mean = y.data().iter().sum::<f64>() / n as f64;
        // The standard deviation of the mean is sqrt(p / (1 − p) / n) ≈ 0.0065.
        assert!((mean - 1.0).abs() < 0.03, "mean {mean}");
    }

    #[test]
    fn same_seed_same_mask_f32() {
        let tape = Tape::<f32>::new();
        let mut rng = StdRng::seed_from_u64(3);
        let x = tape.param(Tensor::randn([50], &mut rng));
        let a = x.dropout(0.4, &mut StdRng::seed_from_u64(11)).value();
        let b = x.dropout(0.4, &mut StdRng::seed_from_u64(11)).value();
        let c = x.dropout(0.4, &mut StdRng::seed_from_u64(12)).value();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let xv = x.value();
        for (&yi, &xi) in a.data().iter().zip(xv.data()) {
            assert!(yi == 0.0 || yi == xi * (1.0 / (1.0 - 0.4f64)) as f32);
        }
    }

    #[test]
    fn gradient_is_the_scaled_mask() {
        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::full([200], 3.0));
        let y = x.dropout(0.25, &mut StdRng::seed_from_u64(5));
        let yv = y.value();
        let g = tape.backward_with(y, Tensor::full([200], 2.0));
        for (&gi, &yi) in g[x].data().iter().zip(yv.data()) {
            // y = 3 · mask / 0.75, so g · mask / 0.75 = 2 y / 3.
            assert!((gi - 2.0 * yi / 3.0).abs() < 1e-15);
        }
    }

    #[test]
    fn eval_mode_and_zero_p_are_the_identity() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::from_vec(vec![1.0, -2.0, 3.0], [3]));
        let mut rng = StdRng::seed_from_u64(0);
        let y = x.dropout(0.0, &mut rng);
        assert_eq!(y.id(), x.id());
        tape.set_training(false);
        let n = tape.len();
        let y = x.dropout(0.7, &mut rng);
        assert_eq!(y.id(), x.id());
        assert_eq!(tape.len(), n, "no node recorded");
        assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![1.0; 3]);

        let inf = Tape::<f64>::inference();
        let x = inf.input(Tensor::ones([4]));
        assert_eq!(x.dropout(0.5, &mut rng).value().to_vec(), vec![1.0; 4]);
    }

    #[test]
    fn p_out_of_range() {
        let tape = Tape::<f32>::new();
        let x = tape.input(Tensor::ones([2]));
        let mut rng = StdRng::seed_from_u64(0);
        let e = x.try_dropout(1.0, &mut rng).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "dropout: p = 1 is not a drop probability in [0, 1) (p = 1 would zero every element and scale by 1/0) (called at src/ops/dropout.rs:"
            ),
            "{e}"
        );
        let e = x.try_dropout(-0.1, &mut rng).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("dropout: p = -0.1 is not a drop probability in [0, 1)"),
            "{e}"
        );
        let e = x.try_dropout(f64::NAN, &mut rng).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("dropout: p = NaN is not a drop probability in [0, 1)"),
            "{e}"
        );
        // Refused in evaluation mode too, so a bad p does not wait for training to show.
        tape.set_training(false);
        assert!(x.try_dropout(2.0, &mut rng).is_err());
    }

    #[test]
    #[should_panic(expected = "dropout: p = 1.5 is not a drop probability")]
    fn plain_form_panics() {
        let tape = Tape::<f64>::new();
        let mut rng = StdRng::seed_from_u64(0);
        tape.input(Tensor::ones([2])).dropout(1.5, &mut rng);
    }
}
