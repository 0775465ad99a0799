//! Cross-entropy of logits against class indices, per sample.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::ops::softmax::{softmax_backward, softmax_lanes};
use crate::shape::Shape;
use crate::tape::Held;
use crate::tape::Var;
use crate::tensor::Tensor;
use std::rc::Rc;

impl<'t, T: Float> Var<'t, T> {
    /// Cross-entropy of logits `self` of shape `[N, C]` against class indices `targets`
    /// (one per row, each below `C`): the **unreduced** per-sample loss of shape `[N]`,
    ///
    /// `loss[n] = −log_softmax(z[n])[t_n] = ln Σ_c exp(z[n, c]) − z[n, t_n]`,
    ///
    /// computed in one node from a max-subtracted log-softmax, so it is finite for any finite
    /// logits. This is PyTorch's `F.cross_entropy(z, t, reduction="none")`; for PyTorch's
    /// default (`reduction="mean"`) take the mean of the result: `z.cross_entropy(&t).mean()`
    /// (or `.sum()` for `reduction="sum"`).
    ///
    /// VJP: `∂L/∂z[n, c] = (softmax(z[n])[c] − [c = t_n]) · g[n]`.
    ///
    /// Errors: logits not of rank 2, `targets.len() ≠ N`, a target index not below `C`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let z = tape.param(Tensor::from_vec(vec![1.0, 2.0, 3.0, 0.0, 0.0, 0.0], [2, 3]));
    /// let per_sample = z.cross_entropy(&[2, 0]);
    /// assert_eq!(per_sample.shape(), [2]);
    /// assert!((per_sample.value()[[0]] - 0.40760596444438).abs() < 1e-12);
    /// assert!((per_sample.value()[[1]] - 3f64.ln()).abs() < 1e-12);
    /// // The batch mean, as PyTorch's default reduction: here sum / N.
    /// let loss = per_sample.sum() * 0.5;
    /// let g = tape.backward(loss);
    /// assert!((g[z][[1, 0]] - (1.0 / 3.0 - 1.0) * 0.5).abs() < 1e-12);
    /// ```
    #[track_caller]
    pub fn try_cross_entropy(self, targets: &[usize]) -> Result<Var<'t, T>, Error> {
        self.cross_entropy_node(targets, 0.0)
    }

    /// Cross-entropy against targets smoothed towards the uniform distribution: with
    /// `ε = label_smoothing`, each row's target is `(1 − ε)·onehot(t_n) + ε/C`, so
    ///
    /// `loss[n] = (1 − ε)·(−log p[n, t_n]) + (ε/C)·Σ_c (−log p[n, c])`, `p = softmax(z[n])`,
    ///
    /// unreduced, shape `[N]`. This is PyTorch's
    /// `F.cross_entropy(z, t, reduction="none", label_smoothing=ε)`; `ε = 0` is
    /// [`Var::try_cross_entropy`], bit for bit.
    ///
    /// VJP: `∂L/∂z[n, c] = (softmax(z[n])[c] − (1 − ε)·[c = t_n] − ε/C) · g[n]`.
    ///
    /// Errors: those of [`Var::try_cross_entropy`], and `label_smoothing` outside `[0, 1]`
    /// (or not a number).
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let z = tape.param(Tensor::from_vec(vec![0.0, 0.0], [1, 2]));
    /// // Two equal logits: p = ½ for both classes, whatever the target or the smoothing.
    /// let l = z.cross_entropy_smoothed(&[1], 0.1);
    /// assert!((l.value()[[0]] - 2f64.ln()).abs() < 1e-15);
    /// // The gradient pulls towards the smoothed target (0.05, 0.95).
    /// let g = tape.backward(l.sum());
    /// assert!((g[z][[0, 0]] - (0.5 - 0.05)).abs() < 1e-15);
    /// assert!((g[z][[0, 1]] - (0.5 - 0.95)).abs() < 1e-15);
    /// assert!(z.try_cross_entropy_smoothed(&[1], 1.5).is_err());
    /// ```
    #[track_caller]
    pub fn try_cross_entropy_smoothed(
        self,
        targets: &[usize],
        label_smoothing: f64,
    ) -> Result<Var<'t, T>, Error> {
        if !(0.0..=1.0).contains(&label_smoothing) {
            return Err(Error::bad_argument(
                "cross_entropy",
                format!(
                    "label_smoothing = {label_smoothing} is not a weight between 0 and 1 (0 is no smoothing, 1 is the uniform target)"
                ),
            ));
        }
        self.cross_entropy_node(targets, label_smoothing)
    }

    /// [`Var::try_cross_entropy_smoothed`], panicking on a shape, index or smoothing error.
    ///
    /// # Panics
    /// With the message of [`Var::try_cross_entropy_smoothed`]'s error.
    #[track_caller]
    pub fn cross_entropy_smoothed(self, targets: &[usize], label_smoothing: f64) -> Var<'t, T> {
        self.try_cross_entropy_smoothed(targets, label_smoothing)
            .or_panic()
    }

    /// The checks and the node of both forms; `eps` is already in `[0, 1]`.
    #[track_caller]
    fn cross_entropy_node(self, targets: &[usize], eps: f64) -> Result<Var<'t, T>, Error> {
        let z = self.value();
        let shape = z.shape().clone();
        if shape.rank() != 2 {
            return Err(Error::bad_shape(
                "cross_entropy",
                &shape,
                format!(
                    "cross_entropy takes logits of shape [N, C] (rank 2), not rank {}",
                    shape.rank()
                ),
            ));
        }
        let (n, c) = (shape[0], shape[1]);
        if targets.len() != n {
            return Err(Error::incompatible(
                "cross_entropy",
                &shape,
                &Shape::new(&[targets.len()]),
                format!(
                    "{} target indices were given for {n} rows of logits; one class index per row is needed",
                    targets.len()
                ),
            ));
        }
        if let Some((i, &t)) = targets.iter().enumerate().find(|&(_, &t)| t >= c) {
            return Err(Error::bad_argument(
                "cross_entropy",
                format!(
                    "targets[{i}] = {t} is not a class index: the logits of shape {shape} have C = {c} classes, so indices must be below {c}"
                ),
            ));
        }
        // One log-softmax pass over the rows; the loss picks out the target's entry.
        let logp = softmax_lanes(z.data(), n, c, 1, true);
        let smoothing = Smoothing::new(eps, c);
        let loss: Vec<T> = targets
            .iter()
            .enumerate()
            .map(|(i, &t)| smoothing.loss(&logp[i * c..(i + 1) * c], t))
            .collect();
        let targets: Rc<[usize]> = targets.into();
        let held = std::mem::size_of_val(&targets[..]);
        drop(logp); // the backward computes it again from the logits (the same bits)
        self.tape().try_record_graph(
            "cross_entropy",
            &[self],
            Tensor::from_vec(loss, [n]),
            &[Held::bytes(held)],
            move |a| {
                [Some(ce_backward(
                    a.g(),
                    a.input(0),
                    targets.clone(),
                    smoothing,
                ))]
                .into()
            },
        )
    }

    /// [`Var::try_cross_entropy`], panicking on a shape or index error.
    ///
    /// # Panics
    /// With the message of [`Var::try_cross_entropy`]'s error.
    #[track_caller]
    pub fn cross_entropy(self, targets: &[usize]) -> Var<'t, T> {
        self.try_cross_entropy(targets).or_panic()
    }
}

/// The target distribution of a row: `(1 − ε)·onehot(t) + ε/C`. With `ε = 0` every
/// formula below takes the plain one-hot path, so its bits are those of the unsmoothed loss.
#[derive(Clone, Copy)]
struct Smoothing<T> {
    /// `ε`, zero for plain cross-entropy.
    eps: T,
    /// `1 − ε`, the target class's weight.
    keep: T,
    /// `ε / C`, every class's share of the smoothing.
    share: T,
}

impl<T: Float> Smoothing<T> {
    fn new(eps: f64, c: usize) -> Self {
        let share = if c == 0 { 0.0 } else { eps / c as f64 };
        Smoothing {
            eps: T::from_f64(eps),
            keep: T::from_f64(1.0 - eps),
            share: T::from_f64(share),
        }
    }

    fn smooth(&self) -> bool {
        self.eps != T::ZERO
    }

    /// `−Σ_c target[c]·log p[c]` of one row of log-probabilities.
    fn loss(&self, logp: &[T], t: usize) -> T {
        if !self.smooth() {
            return -logp[t];
        }
        let all = logp.iter().fold(T::ZERO, |s, &v| s + v);
        -(self.keep * logp[t] + self.share * all)
    }

    /// The target row, to subtract from the softmax.
    fn target(&self, row: &mut [T], t: usize) {
        if self.smooth() {
            row.fill(self.share);
            row[t] += self.keep;
        } else {
            row[t] = T::ONE;
        }
    }
}

/// The VJP of cross-entropy, `(softmax(z) − target) ⊙ g` per row (the target one-hot or
/// smoothed), from the log-probabilities computed again from the logits (one buffer, which
/// becomes the result, rather than one kept from the forward and copied); an op of its own,
/// whose VJP is written in ops (through `softmax` for the logits).
fn ce_backward<'s, T: Float>(
    g: Var<'s, T>,
    z: Var<'s, T>,
    targets: Rc<[usize]>,
    smoothing: Smoothing<T>,
) -> Var<'s, T> {
    let shape = z.shape();
    let (n, c) = (shape[0], shape[1]);
    let mut gz = z.with_value(|z| softmax_lanes(z.data(), n, c, 1, true));
    g.with_value(|g| {
        for (i, row) in gz.chunks_exact_mut(c.max(1)).enumerate() {
            let gi = g.data()[i];
            if smoothing.smooth() {
                let (share, t) = (smoothing.share * gi, targets[i]);
                for v in row.iter_mut() {
                    *v = v.exp() * gi - share;
                }
                row[t] -= smoothing.keep * gi;
            } else {
                for v in row.iter_mut() {
                    *v = v.exp() * gi;
                }
                row[targets[i]] -= gi;
            }
        }
    });
    g.tape().record_differentiable(
        "cross_entropy_backward",
        &[g, z],
        Tensor::from_vec(gz, shape.clone()),
        move |a| {
            let (gg, g, z) = (a.g(), a.input(0), a.input(1));
            let p = z.softmax(1);
            let mut target = Tensor::zeros(shape.clone());
            for (row, &t) in target
                .data_mut()
                .chunks_exact_mut(c.max(1))
                .zip(targets.iter())
            {
                smoothing.target(row, t);
            }
            [
                a.then(0, || {
                    (gg * (p - a.tape().input(target))).sum_axes(&[1], false)
                }),
                a.then(1, || softmax_backward(gg * g.reshape([n, 1]), p, 1, false)),
            ]
            .into()
        },
    )
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::prelude::*;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn gradcheck_over_batch_and_class_counts() {
        let mut count = 0;
        let mut worst: f64 = 0.0;
        for n in [1, 5] {
            for c in [2, 7] {
                for scale in [1.0, 4.0] {
                    let mut rng = rand::rngs::StdRng::seed_from_u64((n * 100 + c) as u64);
                    let z = Tensor::randn([n, c], &mut rng) * scale;
                    let t: Vec<usize> = (0..n).map(|_| rng.random_range(0..c)).collect();
                    match gradcheck(|v| v[0].cross_entropy(&t), &[z]) {
                        Ok(rep) => worst = worst.max(rep.max_abs_err()),
                        Err(e) => panic!("N = {n}, C = {c}, targets {t:?}: {e}"),
                    }
                    // And through a mean-like reduction (one output).
                    let z = Tensor::randn([n, c], &mut rng);
                    let r = gradcheck(|v| v[0].cross_entropy(&t).sum() * (1.0 / n as f64), &[z]);
                    if let Err(e) = r {
                        panic!("mean, N = {n}, C = {c}: {e}")
                    }
                    // Smoothed targets, up to the uniform one.
                    for eps in [0.1, 1.0] {
                        let z = Tensor::randn([n, c], &mut rng) * scale;
                        let r = gradcheck(|v| v[0].cross_entropy_smoothed(&t, eps), &[z]);
                        match r {
                            Ok(rep) => worst = worst.max(rep.max_abs_err()),
                            Err(e) => panic!("smoothing {eps}, N = {n}, C = {c}: {e}"),
                        }
                    }
                    count += 4;
                }
            }
        }
        println!("cross_entropy: {count} configs, max abs err {worst:e}");
    }

    #[test]
    fn known_values() {
        let t = Tape::<f64>::new();
        let z = t.input(Tensor::from_vec(vec![1.0, 2.0, 3.0], [1, 3]));
        let l = z.cross_entropy(&[2]).value();
        assert_eq!(l.shape().dims(), &[1]);
        assert!((l[[0]] - 0.40760596444438).abs() < 1e-11, "{}", l[[0]]);
        let l = z.cross_entropy(&[0]).value();
        assert!((l[[0]] - 2.40760596444438).abs() < 1e-11);

        let t = Tape::<f32>::new();
        let z = t.param(Tensor::from_vec(vec![1.0, 2.0, 3.0, 0.0, 0.0, 0.0], [2, 3]));
        let l = z.cross_entropy(&[2, 1]);
        let lv = l.value();
        assert!((lv[[0]] - 0.407_605_96).abs() < 1e-6);
        assert!((lv[[1]] - 3f32.ln()).abs() < 1e-6);
        // Gradient: softmax − onehot, per row scaled by g[n].
        let g = t.backward_with(l, Tensor::from_vec(vec![1.0, 2.0], [2]));
        let s: Vec<f64> = [1f64, 2.0, 3.0].iter().map(|v| v.exp()).collect();
        let tot: f64 = s.iter().sum();
        let want = [
            s[0] / tot,
            s[1] / tot,
            s[2] / tot - 1.0,
            2.0 / 3.0,
            2.0 / 3.0 - 2.0,
            2.0 / 3.0,
        ];
        for (a, b) in g[z].data().iter().zip(want) {
            assert!((*a as f64 - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn smoothing_known_values_and_zero_is_plain() {
        let t = Tape::<f64>::new();
        let z = t.input(Tensor::from_vec(vec![1.0, 2.0, 3.0], [1, 3]));
        // PyTorch: F.cross_entropy(tensor([[1., 2., 3.]]), tensor([2]), label_smoothing=0.3)
        let l = z.cross_entropy_smoothed(&[2], 0.3).value();
        assert!((l[[0]] - 0.707_605_964_444_38).abs() < 1e-11, "{}", l[[0]]);
        // The uniform target: the mean of −log p over the classes.
        let l = z.cross_entropy_smoothed(&[0], 1.0).value();
        assert!((l[[0]] - 1.407_605_964_444_38).abs() < 1e-11, "{}", l[[0]]);

        // ε = 0: the plain loss's bits, forward and backward.
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let (logits, gout) = (
            Tensor::<f32>::randn([4, 6], &mut rng) * 3.0,
            Tensor::randn([4], &mut rng),
        );
        let targets = [5, 0, 2, 2];
        let run = |eps: Option<f64>| {
            let t = Tape::<f32>::new();
            let z = t.param(logits.clone());
            let l = match eps {
                Some(e) => z.cross_entropy_smoothed(&targets, e),
                None => z.cross_entropy(&targets),
            };
            let value = l.value().to_vec();
            (value, t.backward_with(l, gout.clone())[z].to_vec())
        };
        assert_eq!(run(None), run(Some(0.0)));
    }

    #[test]
    fn smoothing_out_of_range() {
        let t = Tape::<f64>::new();
        let z = t.input(Tensor::zeros([2, 3]));
        for eps in [-0.1, 1.01, f64::NAN] {
            let e = z.try_cross_entropy_smoothed(&[0, 1], eps).unwrap_err();
            assert!(
                e.to_string().starts_with(&format!(
                    "cross_entropy: label_smoothing = {eps} is not a weight between 0 and 1"
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn huge_logits_are_stable() {
        let t = Tape::<f32>::new();
        let z = t.param(Tensor::from_vec(vec![1e4, 0.0, -1e4, 0.0], [2, 2]));
        let l = z.cross_entropy(&[1, 1]);
        assert_eq!(l.value().to_vec(), vec![1e4, 0.0]);
        let g = t.backward(l.sum());
        assert_eq!(g[z].to_vec(), vec![1.0, -1.0, 0.0, 0.0]);
    }

    #[test]
    fn logits_must_be_2d() {
        let t = Tape::<f32>::new();
        let z = t.input(Tensor::zeros([2, 3, 4]));
        let e = z.try_cross_entropy(&[0, 1]).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "cross_entropy: shape [2, 3, 4] refused: cross_entropy takes logits of shape [N, C] (rank 2), not rank 3 (called at src/ops/cross_entropy.rs:"
            ),
            "{e}"
        );
        let z = t.input(Tensor::zeros([3]));
        let e = z.try_cross_entropy(&[0]).unwrap_err();
        assert!(e.to_string().contains("not rank 1"), "{e}");
    }

    #[test]
    fn one_target_per_row() {
        let t = Tape::<f32>::new();
        let z = t.input(Tensor::zeros([3, 4]));
        let e = z.try_cross_entropy(&[0, 1]).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "cross_entropy: shapes [3, 4] and [2] are incompatible: 2 target indices were given for 3 rows of logits; one class index per row is needed (called at src/ops/cross_entropy.rs:"
            ),
            "{e}"
        );
    }

    #[test]
    fn target_out_of_range() {
        let t = Tape::<f64>::new();
        let z = t.input(Tensor::zeros([3, 4]));
        let e = z.try_cross_entropy(&[0, 3, 4]).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "cross_entropy: targets[2] = 4 is not a class index: the logits of shape [3, 4] have C = 4 classes, so indices must be below 4 (called at src/ops/cross_entropy.rs:"
            ),
            "{e}"
        );
    }

    #[test]
    #[should_panic(expected = "cross_entropy: targets[0] = 9 is not a class index")]
    fn plain_form_panics() {
        let t = Tape::<f64>::new();
        t.input(Tensor::zeros([1, 2])).cross_entropy(&[9]);
    }

    #[test]
    fn empty_batch() {
        let t = Tape::<f64>::new();
        let z = t.param(Tensor::zeros([0, 3]));
        let l = z.cross_entropy(&[]);
        assert_eq!(l.shape(), [0]);
        assert_eq!(t.backward(l.sum())[z].shape().dims(), &[0, 3]);
    }
}
