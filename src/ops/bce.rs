//! Binary cross-entropy of probabilities, elementwise.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::tape::Held;
use crate::tape::Var;
use crate::tensor::Tensor;

/// The floor of each logarithm in the loss, as in PyTorch's `BCELoss`: keeps the loss finite
/// (at most 100 per term) when a probability is exactly 0 or 1.
const LOG_FLOOR: f64 = -100.0;
/// The floor of `p (1 − p)` in the gradient's denominator (PyTorch's `EPSILON`), so the
/// gradient is finite at `p = 0` and `p = 1`.
const GRAD_EPS: f64 = 1e-12;

impl<'t, T: Float> Var<'t, T> {
    /// Binary cross-entropy of probabilities `p = self` against targets `y` of the same
    /// shape, elementwise and **unreduced** (same shape as `p`):
    ///
    /// `loss = −(y · max(ln p, −100) + (1 − y) · max(ln(1 − p), −100))`
    ///
    /// with `ln(1 − p)` computed as `ln_1p(−p)`. The clamp of each logarithm at −100 is
    /// PyTorch's `BCELoss`: at `p = 0` or `p = 1` the loss is at most 100, never infinite or
    /// NaN. This is `F.binary_cross_entropy(p, y, reduction="none")`; for PyTorch's default
    /// reduction take the mean of the result. Targets may be soft (any value in `[0, 1]`);
    /// they are constants and receive no gradient.
    ///
    /// VJP: `∂L/∂p = g · (p − y) / max(p (1 − p), 1e-12)`, PyTorch's formula: finite at
    /// `p = 0` and `1` (where the clamp makes the loss flat, the gradient is still this
    /// expression, as in PyTorch, so that training can move away from a saturated output).
    ///
    /// Errors: `y`'s shape differs from `p`'s (no broadcasting), or an element of `p` lies
    /// outside `[0, 1]` or is NaN (PyTorch refuses these too).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let p = tape.param(Tensor::from_vec(vec![0.8, 0.25, 0.0], [3]));
    /// let y = Tensor::from_vec(vec![1.0, 0.0, 1.0], [3]);
    /// let loss = p.bce(&y);
    /// let l = loss.value();
    /// assert!((l[[0]] + 0.8f64.ln()).abs() < 1e-15);
    /// assert!((l[[1]] + 0.75f64.ln()).abs() < 1e-15);
    /// assert_eq!(l[[2]], 100.0); // ln 0 clamped at −100
    /// let g = tape.backward(loss.sum());
    /// assert!((g[p][[0]] + 1.0 / 0.8).abs() < 1e-12);
    /// assert_eq!(g[p][[2]], -1e12); // (0 − 1) / 1e-12
    /// ```
    #[track_caller]
    pub fn try_bce(self, targets: &Tensor<T>) -> Result<Var<'t, T>, Error> {
        let p = self.value();
        if p.shape() != targets.shape() {
            return Err(Error::incompatible(
                "bce",
                p.shape(),
                targets.shape(),
                "the targets must have the shape of the probabilities (no broadcasting)",
            ));
        }
        // `!(0 ≤ v ≤ 1)` rather than `v < 0 || v > 1` so that NaN is refused as well.
        if let Some((i, v)) = p
            .data()
            .iter()
            .enumerate()
            .find(|&(_, &v)| !(v >= T::ZERO && v <= T::ONE))
        {
            return Err(Error::bad_argument(
                "bce",
                format!(
                    "element {i} of the input is {v}, not a probability in [0, 1] (apply sigmoid first, or use bce_with_logits on the logits)"
                ),
            ));
        }
        let floor = T::from_f64(LOG_FLOOR);
        let clamp = |l: T| if l < floor { floor } else { l };
        let loss: Vec<T> = p
            .data()
            .iter()
            .zip(targets.data())
            .map(|(&p, &y)| -(y * clamp(p.ln()) + (T::ONE - y) * clamp((-p).ln_1p())))
            .collect();
        let y = targets.clone();
        self.tape().try_record_graph(
            "bce",
            &[self],
            Tensor::from_vec(loss, p.shape().clone()),
            &[Held::tensor(&p), Held::tensor(&y)],
            move |a| {
                // g (p − y) / max(p (1 − p), eps), in ops on the handle p.
                let p = a.input(0);
                let t = a.tape();
                let d = (p * p.rsub_scalar(T::ONE)).maximum(t.scalar(T::from_f64(GRAD_EPS)));
                [Some(a.g() * (p - t.input(y.clone())) / d)].into()
            },
        )
    }

    /// [`Var::try_bce`], panicking on a shape mismatch or an input outside `[0, 1]`.
    ///
    /// # Panics
    /// With the message of [`Var::try_bce`]'s error.
    #[track_caller]
    pub fn bce(self, targets: &Tensor<T>) -> Var<'t, T> {
        self.try_bce(targets).or_panic()
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::prelude::*;
    use rand::SeedableRng;

    #[test]
    fn gradcheck_hard_and_soft_targets() {
        let shapes: &[&[usize]] = &[&[1], &[6], &[3, 4], &[2, 3, 2]];
        let mut count = 0;
        let mut worst: f64 = 0.0;
        for (k, &shape) in shapes.iter().enumerate() {
            for hard in [true, false] {
                let mut rng = rand::rngs::StdRng::seed_from_u64(10 * k as u64 + hard as u64);
                let p = Tensor::uniform(shape, 0.05, 0.95, &mut rng);
                let y = Tensor::<f64>::rand(shape, &mut rng);
                let y = if hard {
                    y.map(|v| if v < 0.5 { 0.0 } else { 1.0 })
                } else {
                    y
                };
                match gradcheck(|v| v[0].bce(&y), &[p]) {
                    Ok(rep) => worst = worst.max(rep.max_abs_err()),
                    Err(e) => panic!("{shape:?} hard {hard}: {e}"),
                }
                count += 1;
            }
        }
        println!("bce: {count} configs, max abs err {worst:e}");
    }

    #[test]
    fn known_values_f32() {
        let t = Tape::<f32>::new();
        let p = t.param(Tensor::from_vec(vec![0.5, 0.9, 0.3], [3]));
        let y = Tensor::from_vec(vec![1.0, 0.0, 0.4], [3]);
        let l = p.bce(&y);
        let want = [
            -(0.5f64.ln()),
            -(0.1f64.ln()),
            -(0.4 * 0.3f64.ln() + 0.6 * 0.7f64.ln()),
        ];
        for (a, b) in l.value().data().iter().zip(want) {
            assert!((*a as f64 - b).abs() < 1e-6, "{a} vs {b}");
        }
        let g = t.backward(l.sum());
        let want = [-2.0, 0.9 / 0.09, (0.3 - 0.4) / 0.21];
        for (a, b) in g[p].data().iter().zip(want) {
            assert!((*a as f64 - b).abs() < 1e-5 * b.abs(), "{a} vs {b}");
        }
    }

    #[test]
    fn saturated_probabilities_stay_finite() {
        for (pv, yv, loss, grad) in [
            (0.0, 1.0, 100.0, -1e12),
            (1.0, 0.0, 100.0, 1e12),
            (0.0, 0.0, 0.0, 0.0),
            (1.0, 1.0, 0.0, 0.0),
            (0.0, 0.25, 25.0, -0.25e12),
        ] {
            let t = Tape::<f64>::new();
            let p = t.param(Tensor::from_vec(vec![pv], [1]));
            let l = p.bce(&Tensor::from_vec(vec![yv], [1]));
            assert_eq!(l.value()[[0]], loss, "p {pv} y {yv}");
            let g = t.backward(l.sum());
            assert_eq!(g[p][[0]], grad, "p {pv} y {yv}");
            // And in f32, where 1e-12 is still a normal number.
            let t = Tape::<f32>::new();
            let p = t.param(Tensor::from_vec(vec![pv as f32], [1]));
            let l = p.bce(&Tensor::from_vec(vec![yv as f32], [1]));
            assert_eq!(l.value()[[0]], loss as f32);
            let g = t.backward(l.sum())[p][[0]];
            assert!(g.is_finite() && ((g as f64) - grad).abs() <= 1e-6 * grad.abs());
        }
    }

    #[test]
    fn shape_mismatch() {
        let t = Tape::<f32>::new();
        let p = t.input(Tensor::full([2, 3], 0.5));
        let e = p.try_bce(&Tensor::zeros([3, 2])).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "bce: shapes [2, 3] and [3, 2] are incompatible: the targets must have the shape of the probabilities (no broadcasting) (called at src/ops/bce.rs:"
            ),
            "{e}"
        );
    }

    #[test]
    fn input_outside_unit_interval() {
        let t = Tape::<f64>::new();
        let p = t.input(Tensor::from_vec(vec![0.5, 1.5], [2]));
        let e = p.try_bce(&Tensor::zeros([2])).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "bce: element 1 of the input is 1.5, not a probability in [0, 1] (apply sigmoid first, or use bce_with_logits on the logits) (called at src/ops/bce.rs:"
            ),
            "{e}"
        );
        let p = t.input(Tensor::from_vec(vec![f64::NAN], [1]));
        let e = p.try_bce(&Tensor::zeros([1])).unwrap_err();
        assert!(
            e.to_string().contains("element 0 of the input is NaN"),
            "{e}"
        );
    }

    #[test]
    #[should_panic(expected = "bce: shapes [2] and [3] are incompatible")]
    fn plain_form_panics() {
        let t = Tape::<f32>::new();
        t.input(Tensor::zeros([2])).bce(&Tensor::zeros([3]));
    }
}
