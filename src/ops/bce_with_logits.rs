//! Binary cross-entropy of logits, elementwise: sigmoid and BCE fused for stability.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::tape::Held;
use crate::tape::Var;
use crate::tensor::Tensor;

impl<'t, T: Float> Var<'t, T> {
    /// Binary cross-entropy of logits `z = self` against targets `y` of the same shape,
    /// elementwise and **unreduced** (same shape as `z`): `bce(sigmoid(z), y)` computed in
    /// the stable form
    ///
    /// `loss = max(z, 0) − z · y + ln(1 + exp(−|z|))`,
    ///
    /// which never overflows and needs no clamp: finite for any finite `z` (at `|z| = 1e4`
    /// the last term is 0 and the loss is exact). This is
    /// `F.binary_cross_entropy_with_logits(z, y, reduction="none")` (without `weight` and
    /// `pos_weight`); for PyTorch's default reduction take the mean of the result. Targets may
    /// be soft; they are constants and receive no gradient.
    ///
    /// VJP: `∂L/∂z = g · (sigmoid(z) − y)`, with a sigmoid that exponentiates only `−|z|`.
    ///
    /// An error when `y`'s shape differs from `z`'s (no broadcasting).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let z = tape.param(Tensor::from_vec(vec![0.0, 1e4, -1e4], [3]));
    /// let y = Tensor::from_vec(vec![1.0, 0.0, 0.0], [3]);
    /// let loss = z.bce_with_logits(&y);
    /// let l = loss.value();
    /// assert!((l[[0]] - 2f32.ln()).abs() < 1e-7);
    /// assert_eq!((l[[1]], l[[2]]), (1e4, 0.0));
    /// let g = tape.backward(loss.sum());
    /// assert_eq!(g[z].to_vec(), vec![-0.5, 1.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn try_bce_with_logits(self, targets: &Tensor<T>) -> Result<Var<'t, T>, Error> {
        let z = self.value();
        if z.shape() != targets.shape() {
            return Err(Error::incompatible(
                "bce_with_logits",
                z.shape(),
                targets.shape(),
                "the targets must have the shape of the logits (no broadcasting)",
            ));
        }
        let loss: Vec<T> = z
            .data()
            .iter()
            .zip(targets.data())
            .map(|(&z, &y)| {
                let relu = if z > T::ZERO { z } else { T::ZERO };
                relu - z * y + (-z.abs()).exp().ln_1p()
            })
            .collect();
        let y = targets.clone();
        self.tape().try_record_graph(
            "bce_with_logits",
            &[self],
            Tensor::from_vec(loss, z.shape().clone()),
            &[Held::tensor(&z), Held::tensor(&y)],
            move |a| {
                let z = a.input(0);
                [Some(a.g() * (z.sigmoid() - a.tape().input(y.clone())))].into()
            },
        )
    }

    /// [`Var::try_bce_with_logits`], panicking on a shape mismatch.
    ///
    /// # Panics
    /// With the message of [`Var::try_bce_with_logits`]'s error.
    #[track_caller]
    pub fn bce_with_logits(self, targets: &Tensor<T>) -> Var<'t, T> {
        self.try_bce_with_logits(targets).or_panic()
    }
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::prelude::*;
    use rand::SeedableRng;

    #[test]
    fn gradcheck_moderate_and_large_logits() {
        let shapes: &[&[usize]] = &[&[1], &[7], &[3, 4], &[2, 2, 3]];
        let mut count = 0;
        let mut worst: f64 = 0.0;
        for (k, &shape) in shapes.iter().enumerate() {
            for hard in [true, false] {
                let mut rng = rand::rngs::StdRng::seed_from_u64(20 * k as u64 + hard as u64);
                let z = Tensor::uniform(shape, -5.0, 5.0, &mut rng);
                let y = Tensor::<f64>::rand(shape, &mut rng);
                let y = if hard {
                    y.map(|v| if v < 0.5 { 0.0 } else { 1.0 })
                } else {
                    y
                };
                match gradcheck(|v| v[0].bce_with_logits(&y), &[z]) {
                    Ok(rep) => worst = worst.max(rep.max_abs_err()),
                    Err(e) => panic!("{shape:?} hard {hard}: {e}"),
                }
                count += 1;
            }
        }
        // A few large logits, both signs, hard and soft targets.
        let z = Tensor::from_vec(
            vec![30.0, -30.0, 80.0, -80.0, 700.0, -700.0, 1e4, -1e4],
            [8],
        );
        let y = Tensor::from_vec(vec![1.0, 0.0, 0.0, 1.0, 0.3, 0.7, 0.5, 1.0], [8]);
        match gradcheck(|v| v[0].bce_with_logits(&y), &[z]) {
            Ok(rep) => worst = worst.max(rep.max_abs_err()),
            Err(e) => panic!("large logits: {e}"),
        }
        count += 1;
        println!("bce_with_logits: {count} configs, max abs err {worst:e}");
    }

    #[test]
    fn agrees_with_bce_of_sigmoid() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let t = Tape::<f64>::new();
        let zv = Tensor::uniform([10], -4.0, 4.0, &mut rng);
        let y = Tensor::<f64>::rand([10], &mut rng);
        let p = t.input(zv.map(|z| 1.0 / (1.0 + (-z).exp())));
        let a = t.input(zv).bce_with_logits(&y).value();
        let b = p.bce(&y).value();
        for (u, w) in a.data().iter().zip(b.data()) {
            assert!((u - w).abs() < 1e-12, "{u} vs {w}");
        }
    }

    #[test]
    fn extreme_logits_are_finite_f64_and_f32() {
        let zs = [1e4, -1e4, 1e4, -1e4, 1e30, -1e30];
        let ys = [1.0, 0.0, 0.0, 1.0, 0.5, 0.5];
        let t = Tape::<f64>::new();
        let z = t.param(Tensor::from_vec(zs.to_vec(), [6]));
        let l = z.bce_with_logits(&Tensor::from_vec(ys.to_vec(), [6]));
        assert_eq!(l.value().to_vec(), vec![0.0, 0.0, 1e4, 1e4, 5e29, 5e29]);
        let g = t.backward(l.sum());
        assert_eq!(g[z].to_vec(), vec![0.0, 0.0, 1.0, -1.0, 0.5, -0.5]);

        let t = Tape::<f32>::new();
        let z = t.param(Tensor::from_vec(zs.map(|v| v as f32).to_vec(), [6]));
        let l = z.bce_with_logits(&Tensor::from_vec(ys.map(|v| v as f32).to_vec(), [6]));
        assert_eq!(l.value().to_vec(), vec![0.0, 0.0, 1e4, 1e4, 5e29, 5e29]);
        let g = t.backward(l.sum());
        assert_eq!(g[z].to_vec(), vec![0.0, 0.0, 1.0, -1.0, 0.5, -0.5]);
    }

    #[test]
    fn known_values() {
        // z = 2, y = 0.25: ln(1 + e^2) − 2 · 0.25
        let t = Tape::<f64>::new();
        let z = t.param(Tensor::from_vec(vec![2.0, -3.0], [2]));
        let l = z.bce_with_logits(&Tensor::from_vec(vec![0.25, 1.0], [2]));
        let want = [(1.0 + 2f64.exp()).ln() - 0.5, (1.0 + 3f64.exp()).ln()];
        for (a, b) in l.value().data().iter().zip(want) {
            assert!((a - b).abs() < 1e-14);
        }
        let g = t.backward(l.sum());
        let s = |v: f64| 1.0 / (1.0 + (-v).exp());
        let want = [s(2.0) - 0.25, s(-3.0) - 1.0];
        for (a, b) in g[z].data().iter().zip(want) {
            assert!((a - b).abs() < 1e-15);
        }
    }

    #[test]
    fn shape_mismatch() {
        let t = Tape::<f64>::new();
        let z = t.input(Tensor::zeros([4]));
        let e = z.try_bce_with_logits(&Tensor::zeros([4, 1])).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "bce_with_logits: shapes [4] and [4, 1] are incompatible: the targets must have the shape of the logits (no broadcasting) (called at src/ops/bce_with_logits.rs:"
            ),
            "{e}"
        );
    }
}
