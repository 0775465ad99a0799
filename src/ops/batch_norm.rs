//! Batch normalisation over the channel axis (axis 1), as PyTorch's `F.batch_norm`.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::ops::normalize::{affine, channel_shape, check_affine};
use crate::tape::Var;
use crate::tensor::Tensor;

/// Options of [`Var::batch_norm`], PyTorch's defaults: training, momentum 0.1, ε 1e-5.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormOptions {
    /// Normalise with the batch's statistics and update the running ones (true), or
    /// normalise with the running ones (false, evaluation).
    pub training: bool,
    /// The weight of the batch's statistics in the running ones' update.
    pub momentum: f64,
    /// Added to the variance before its square root.
    pub eps: f64,
}

impl Default for BatchNormOptions {
    fn default() -> Self {
        BatchNormOptions {
            training: true,
            momentum: 0.1,
            eps: 1e-5,
        }
    }
}

impl BatchNormOptions {
    /// PyTorch's defaults.
    pub fn new() -> Self {
        Self::default()
    }
    /// Training (batch statistics) or evaluation (running statistics).
    pub fn training(mut self, on: bool) -> Self {
        self.training = on;
        self
    }
    /// The running statistics' momentum.
    pub fn momentum(mut self, m: f64) -> Self {
        self.momentum = m;
        self
    }
    /// The ε added to the variance.
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
}

/// A batch norm's running estimates of each channel's mean and variance (PyTorch's
/// `running_mean`, `running_var`), each of shape `[C]`; updated in place in training.
#[derive(Debug)]
pub struct RunningStats<'a, T: Float> {
    /// The running mean.
    pub mean: &'a mut Tensor<T>,
    /// The running (unbiased) variance.
    pub var: &'a mut Tensor<T>,
}

impl<'t, T: Float> Var<'t, T> {
    /// Batch normalisation of `[N, C, ...]` input over every axis but the channel axis 1,
    /// then `· weight + bias` per channel (each `[C]`, optional).
    ///
    /// In training, each channel is normalised with its batch mean and biased variance
    /// (`(x − μ) / √(σ² + ε)`), and `running`, when given, becomes
    /// `(1 − momentum) · running + momentum · batch` (with the unbiased variance for
    /// `var`). In evaluation the running statistics are used instead.
    ///
    /// VJP (training): `∂L/∂x = r (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂))` per channel, with
    /// `ĝ = g · weight`, `r = 1/√(σ² + ε)`; weight and bias get `Σ g x̂` and `Σ g`. Every
    /// order is differentiable. In evaluation it is a per-channel affine map.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 3.0, 10.0, 30.0], [2, 2, 1, 1]));
    /// let (mut mean, mut var) = (Tensor::zeros([2]), Tensor::ones([2]));
    /// let running = RunningStats { mean: &mut mean, var: &mut var };
    /// let y = x.batch_norm(None, None, Some(running), BatchNormOptions::new().eps(0.0));
    /// let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-12);
    /// assert!(close(&y.value().to_vec(), &[-1.0, -1.0, 1.0, 1.0]));
    /// // Channel 0 saw 1 and 10: mean 5.5, unbiased variance 40.5.
    /// assert!(close(&[mean.to_vec()[0], var.to_vec()[0]], &[0.55, 0.9 + 4.05]));
    /// ```
    #[track_caller]
    pub fn try_batch_norm(
        self,
        weight: Option<Var<'t, T>>,
        bias: Option<Var<'t, T>>,
        running: Option<RunningStats<'_, T>>,
        opts: BatchNormOptions,
    ) -> Result<Var<'t, T>, Error> {
        const OP: &str = "batch_norm";
        let shape = self.shape();
        if shape.len() < 2 {
            return Err(Error::bad_shape(
                OP,
                &shape,
                "batch norm takes [N, C, ...] input",
            ));
        }
        let (n, c) = (shape[0], shape[1]);
        let s = shape[2..].iter().product::<usize>();
        check_affine(OP, self, weight, bias, &[c], "one per channel")?;
        if let Some(r) = &running {
            for (what, t) in [("running mean", &*r.mean), ("running var", &*r.var)] {
                if t.shape().dims() != [c] {
                    let why = format!(
                        "{what} has shape {}, not [{c}] (one per channel)",
                        t.shape()
                    );
                    return Err(Error::bad_shape(OP, &shape, why));
                }
            }
        }
        let cshape = channel_shape(c, shape.len());
        if !opts.training {
            let Some(r) = running else {
                return Err(Error::bad_argument(
                    OP,
                    "evaluation needs the running statistics",
                ));
            };
            // y = x s + t with s = weight / √(var + ε), t = bias − mean s: two passes.
            let tape = self.tape();
            let rstd = r.var.map(|v| T::ONE / (v + T::from_f64(opts.eps)).sqrt());
            let scale = match weight {
                Some(w) => w * tape.input(rstd),
                None => tape.input(rstd),
            };
            let shift = -(tape.input(r.mean.clone()) * scale);
            let shift = bias.map_or(shift, |b| b + shift);
            return Ok(affine(self, Some(scale), Some(shift), &cshape));
        }
        let m = n * s;
        if m <= 1 {
            return Err(Error::bad_shape(
                OP,
                &shape,
                format!("training needs more than one value per channel, got {m}"),
            ));
        }
        let (y, moments) = self
            .reshape([n, c, s])
            .normalize_affine(weight, bias, opts.eps);
        if let Some(r) = running {
            let k = opts.momentum;
            let unbiased = m as f64 / (m as f64 - 1.0);
            for (ch, &(mu, var)) in moments.iter().enumerate() {
                let (rm, rv) = (&mut r.mean.data_mut()[ch], &mut r.var.data_mut()[ch]);
                *rm = T::from_f64((1.0 - k) * rm.to_f64() + k * mu);
                *rv = T::from_f64((1.0 - k) * rv.to_f64() + k * var * unbiased);
            }
        }
        Ok(y.reshape(shape))
    }

    /// [`Var::try_batch_norm`], panicking at the caller's line on bad shapes.
    #[track_caller]
    pub fn batch_norm(
        self,
        weight: Option<Var<'t, T>>,
        bias: Option<Var<'t, T>>,
        running: Option<RunningStats<'_, T>>,
        opts: BatchNormOptions,
    ) -> Var<'t, T> {
        self.try_batch_norm(weight, bias, running, opts).or_panic()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{check, randn};
    use crate::tape::Tape;

    /// Training and evaluation, with and without the affine part, over ranks 2 to 4, odd
    /// sizes and a batch of one.
    #[test]
    fn gradcheck_configurations() {
        let shapes: &[&[usize]] = &[
            &[4, 3],
            &[2, 3, 5],
            &[2, 2, 3, 3],
            &[1, 3, 2, 5],
            &[3, 1, 4, 1],
        ];
        let mut n = 0;
        let mut worst = 0.0f64;
        for (k, &s) in shapes.iter().enumerate() {
            let c = s[1];
            let x = randn(k as u64, s).map(|v| 2.0 * v + 1.0);
            let w = randn(100 + k as u64, &[c]);
            let b = randn(200 + k as u64, &[c]);
            let rm = randn(300 + k as u64, &[c]);
            let rv = randn(400 + k as u64, &[c]).map(|v| v * v + 0.5);
            for training in [true, false] {
                let opts = BatchNormOptions::new().training(training);
                let what = format!("batch_norm {s:?} training {training}");
                // The running statistics are constants here: a fresh copy per evaluation.
                worst = worst.max(check(&what, &[x.clone(), w.clone(), b.clone()], |v3| {
                    let (mut m2, mut v2) = (rm.clone(), rv.clone());
                    let r = RunningStats {
                        mean: &mut m2,
                        var: &mut v2,
                    };
                    v3[0]
                        .batch_norm(Some(v3[1]), Some(v3[2]), Some(r), opts)
                        .tanh()
                }));
                if training {
                    let what = format!("{what}, no affine, no running statistics");
                    worst = worst.max(check(&what, std::slice::from_ref(&x), |v1| {
                        v1[0].batch_norm(None, None, None, opts).tanh()
                    }));
                }
                n += 1;
            }
        }
        eprintln!("batch_norm: {n} configs, max |error| {worst:.3e}");
    }

    #[test]
    fn running_statistics_and_errors() {
        let tape = Tape::<f64>::new();
        let x = randn(7, &[3, 2, 2, 2]);
        let xv = tape.param(x.clone());
        let (mut mean, mut var) = (Tensor::zeros([2]), Tensor::ones([2]));
        let opts = BatchNormOptions::new().momentum(0.25);
        xv.batch_norm(
            None,
            None,
            Some(RunningStats {
                mean: &mut mean,
                var: &mut var,
            }),
            opts,
        );
        for c in 0..2 {
            let vals: Vec<f64> = (0..3)
                .flat_map(|n| (0..4).map(move |k| (n, k)))
                .map(|(n, k)| x.data()[n * 8 + c * 4 + k])
                .collect();
            let mu = vals.iter().sum::<f64>() / 12.0;
            let unbiased = vals.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / 11.0;
            approx::assert_relative_eq!(mean.data()[c], 0.25 * mu, max_relative = 1e-12);
            approx::assert_relative_eq!(
                var.data()[c],
                0.75 + 0.25 * unbiased,
                max_relative = 1e-12
            );
        }
        // One value per channel in training: PyTorch refuses it too.
        let one = tape.param(Tensor::zeros([1, 3, 1, 1]));
        let e = one
            .try_batch_norm(None, None, None, BatchNormOptions::new())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("batch_norm")
                && e.contains("[1, 3, 1, 1]")
                && e.contains("more than one value"),
            "{e}"
        );
        let w = tape.param(Tensor::zeros([3]));
        let e = xv
            .try_batch_norm(Some(w), None, None, opts)
            .unwrap_err()
            .to_string();
        assert!(e.contains("weight has shape [3], not [2]"), "{e}");
        let e = xv
            .try_batch_norm(None, None, None, opts.training(false))
            .unwrap_err()
            .to_string();
        assert!(e.contains("running statistics"), "{e}");
    }

    /// On data that needs no gradient the plain backward skips the input's gradient; the
    /// weight's and bias's are those of the same input as a parameter.
    #[test]
    fn a_constant_input_gets_no_gradient_and_changes_none_of_the_others() {
        let x = randn(5, &[3, 4, 5, 2]);
        let grads = |constant: bool| {
            let tape = Tape::<f64>::new();
            let xv = match constant {
                true => tape.input(x.clone()),
                false => tape.param(x.clone()),
            };
            let w = tape.param(randn(6, &[4]));
            let b = tape.param(randn(7, &[4]));
            let y = xv.batch_norm(Some(w), Some(b), None, BatchNormOptions::new());
            let g = tape.backward((y * tape.input(y.value().map(|v| v.sin()))).sum());
            (g.get(xv).is_some(), g[w].to_vec(), g[b].to_vec())
        };
        let (with_x, w1, b1) = grads(false);
        let (without_x, w2, b2) = grads(true);
        assert!(with_x && !without_x);
        assert_eq!((w1, b1), (w2, b2));
    }
}
