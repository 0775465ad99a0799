//! The op under batch, layer and group norm: each group of a tensor viewed as `[A, G, B]`
//! (group `g` is `x[:, g, :]`) shifted to mean 0 and scaled to variance 1,
//! `x̂ = (x − μ) / √(σ² + ε)` with the biased variance, then optionally `· w[g] + b[g]`
//! (batch norm's per-channel affine map, folded into the same pass). Layer and group norm
//! apply their affine maps, which are not per group, as ops after it. Crate-private.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::kernels::norm::{self, Groups};
use crate::tape::{Held, Var, VarGrads, VjpArgs};
use crate::tensor::Tensor;
use std::rc::Rc;

/// Each group's mean and `r = 1/√(σ² + ε)`, as the kernels read them, and ε.
#[derive(Clone)]
struct Stats {
    mean: Rc<[f64]>,
    rstd: Rc<[f64]>,
    eps: f64,
}

impl Stats {
    /// The fused VJP on values: the input's gradient for `ĝ = gy · w` and each group's
    /// `(Σ gy, Σ gy (x − μ))`, in one pass for the sums and one for the gradient.
    fn backward<T: Float>(
        &self,
        gy: &Tensor<T>,
        x: &Tensor<T>,
        d: Groups,
        w: Option<&Tensor<T>>,
    ) -> (Vec<T>, Vec<(f64, f64)>) {
        let (gd, xd) = (gy.data(), x.data());
        let sums = norm::grad_sums(gd, xd, d, &self.mean);
        let wd = w.map(|w| w.data());
        let gx = norm::normalize_backward(gd, xd, d, &self.mean, &self.rstd, wd, &sums);
        (gx, sums)
    }
}

/// What the forward computed, for running statistics: each group's mean and biased
/// variance, in f64.
pub(crate) type Moments = Vec<(f64, f64)>;

impl<'t, T: Float> Var<'t, T> {
    /// `self`, of shape `[A, G, B]`, normalised per group; with the groups' moments.
    #[track_caller]
    pub(crate) fn normalize(self, eps: f64) -> (Var<'t, T>, Moments) {
        self.normalize_affine(None, None, eps)
    }

    /// `self`, of shape `[A, G, B]`, normalised per group, then `· weight[g] + bias[g]`
    /// (each `[G]`, optional) in the same pass; with the groups' moments.
    ///
    /// VJP: with `ĝ = g · w`, `∂L/∂x = r (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂))` per group,
    /// `∂L/∂w = Σ g x̂`, `∂L/∂b = Σ g`. In a plain backward one fused kernel makes all
    /// three in two passes; under `Tape::grad` they are ops ([`normalize_backward`] and
    /// sums), differentiable again.
    #[track_caller]
    pub(crate) fn normalize_affine(
        self,
        weight: Option<Var<'t, T>>,
        bias: Option<Var<'t, T>>,
        eps: f64,
    ) -> (Var<'t, T>, Moments) {
        let shape = self.shape();
        let d = Groups {
            a: shape[0],
            g: shape[1],
            b: shape[2],
        };
        let (w, b) = (weight.map(|w| w.value()), bias.map(|b| b.value()));
        let (y, moments, stats) = self.with_value(|x| {
            let moments = norm::moments(x.data(), d);
            let mean: Rc<[f64]> = moments.iter().map(|&(m, _)| m).collect();
            let rstd: Rc<[f64]> = moments
                .iter()
                .map(|&(_, v)| 1.0 / (v + eps).sqrt())
                .collect();
            let at = |t: &Option<Tensor<T>>, g: usize, none: f64| {
                t.as_ref().map_or(none, |t| t.data()[g].to_f64())
            };
            let scale: Vec<T> = (0..d.g)
                .map(|g| T::from_f64(rstd[g] * at(&w, g, 1.0)))
                .collect();
            let shift: Vec<T> = (0..d.g)
                .map(|g| T::from_f64(at(&b, g, 0.0) - mean[g] * rstd[g] * at(&w, g, 1.0)))
                .collect();
            let y = norm::scale_shift(x.data(), d, &scale, &shift);
            (
                Tensor::from_vec(y, shape.clone()),
                moments,
                Stats { mean, rstd, eps },
            )
        });
        let inputs: Vec<Var<'t, T>> = std::iter::once(self).chain(weight).chain(bias).collect();
        let (has_w, has_b) = (weight.is_some(), bias.is_some());
        let held = Held::bytes(2 * d.g * std::mem::size_of::<f64>());
        let out = self
            .tape()
            .try_record_graph("normalize", &inputs, y, &[held], move |a| {
                normalize_vjp(a, d, &stats, has_w, has_b)
            });
        (out.or_panic(), moments)
    }
}

/// The VJP of [`Var::normalize_affine`].
fn normalize_vjp<'s, T: Float>(
    a: &VjpArgs<'s, T>,
    d: Groups,
    stats: &Stats,
    has_w: bool,
    has_b: bool,
) -> VarGrads<'s, T> {
    let (g, x) = (a.g(), a.input(0));
    let w = has_w.then(|| a.input(1));
    let (kw, kb) = (1, 1 + usize::from(has_w));
    if !a.creates_graph() {
        // Values only: one pass for the sums, one for the input's gradient, which is
        // skipped when the input needs none (a batch norm on the data itself).
        let tape = a.tape();
        let (gx, sums) = g.with_value(|gv| {
            x.with_value(|xv| match a.needs(0) {
                true => {
                    let wv = w.map(|w| w.value());
                    let (gx, sums) = stats.backward(gv, xv, d, wv.as_ref());
                    (Some(Tensor::from_vec(gx, xv.shape().clone())), sums)
                }
                false => (None, norm::grad_sums(gv.data(), xv.data(), d, &stats.mean)),
            })
        });
        let per_group =
            |f: &dyn Fn(usize) -> f64| tape.input(Tensor::from_fn([d.g], |k| T::from_f64(f(k))));
        let mut grads = vec![gx.map(|gx| tape.input(gx))];
        if has_w {
            grads.push(a.then(kw, || per_group(&|k| sums[k].1 * stats.rstd[k])));
        }
        if has_b {
            grads.push(a.then(kb, || per_group(&|k| sums[k].0)));
        }
        return grads.into();
    }
    let as_group = |v: Var<'s, T>| v.reshape([1, d.g, 1]);
    let xh = || x.normalize(stats.eps).0;
    let mut grads = vec![a.then(0, || {
        let gh = w.map_or(g, |w| g * as_group(w));
        normalize_backward(gh, x, stats.clone())
    })];
    if has_w {
        grads.push(a.then(kw, || per_group(g * xh()).reshape([d.g])));
    }
    if has_b {
        grads.push(a.then(kb, || per_group(g).reshape([d.g])));
    }
    grads.into()
}

/// The normalisation's VJP as an op of `(g, x)`. Linear in `g` with a symmetric map `P`
/// (`P g` is the output), so its VJP in `g` is itself; its VJP in `x` is written in ops on
/// `x̂` and `r`, so that it too is differentiable, to any order:
///
/// `∂⟨u, P g⟩/∂x = −(r²/m)(A − c B) x̂ − (r B/m) P g − r c P u`, per group of `m` elements,
/// with `A = Σ u g − Σu Σg / m`, `B = Σ u x̂`, `c = Σ g x̂ / m` (from `∂x̂/∂x = P` and
/// `∂r/∂x = −r² x̂ / m`).
fn normalize_backward<'s, T: Float>(g: Var<'s, T>, x: Var<'s, T>, stats: Stats) -> Var<'s, T> {
    let shape = x.shape();
    let d = Groups {
        a: shape[0],
        g: shape[1],
        b: shape[2],
    };
    let gx = g.with_value(|gv| x.with_value(|xv| stats.backward(gv, xv, d, None).0));
    let gx = Tensor::from_vec(gx, shape);
    g.tape()
        .record_differentiable("normalize_backward", &[g, x], gx, move |a| {
            let (u, g, x) = (a.g(), a.input(0), a.input(1));
            [
                a.then(0, || normalize_backward(u, x, stats.clone())),
                a.then(1, || {
                    let m = T::from_usize(d.m());
                    let xh = x.normalize(stats.eps).0;
                    let centred = x - x.mean_axes(&[0, 2], true);
                    let var = centred.square().mean_axes(&[0, 2], true);
                    let r = var
                        .add_scalar(T::from_f64(stats.eps))
                        .powf(T::from_f64(-0.5));
                    let big_a = per_group(u * g) - per_group(u) * per_group(g) / m;
                    let big_b = per_group(u * xh);
                    let c = per_group(g * xh) / m;
                    let pg = normalize_backward(g, x, stats.clone());
                    let pu = normalize_backward(u, x, stats.clone());
                    xh * (r.square() * (big_a - c * big_b) / -m)
                        - pg * (r * big_b / m)
                        - pu * (r * c)
                }),
            ]
            .into()
        })
}

/// Sums over each group, kept as `[1, G, 1]` to broadcast against the `[A, G, B]` view.
fn per_group<T: Float>(v: Var<'_, T>) -> Var<'_, T> {
    v.sum_axes(&[0, 2], true)
}

/// Checks that the optional `weight` and `bias` share `x`'s tape and have shape `want`
/// (`desc` in the message: "one per channel", "normalized_shape").
#[track_caller]
pub(crate) fn check_affine<T: Float>(
    op: &'static str,
    x: Var<'_, T>,
    weight: Option<Var<'_, T>>,
    bias: Option<Var<'_, T>>,
    want: &[usize],
    desc: &str,
) -> Result<(), Error> {
    for (what, v) in [("weight", weight), ("bias", bias)] {
        if let Some(v) = v {
            x.check_same_tape(op, v)?;
            if v.shape().dims() != want {
                let why = format!("{what} has shape {}, not {want:?} ({desc})", v.shape());
                return Err(Error::bad_shape(op, &x.shape(), why));
            }
        }
    }
    Ok(())
}

/// `y ⊙ weight + bias` (each optional), both viewed as `shape` first.
pub(crate) fn affine<'t, T: Float>(
    y: Var<'t, T>,
    weight: Option<Var<'t, T>>,
    bias: Option<Var<'t, T>>,
    shape: &[usize],
) -> Var<'t, T> {
    let y = weight.map_or(y, |w| y * w.reshape(shape));
    bias.map_or(y, |b| y + b.reshape(shape))
}

/// `[C, 1, ..., 1]`, broadcasting a per-channel vector against `[N, C, ...]` of `rank`.
pub(crate) fn channel_shape(c: usize, rank: usize) -> Vec<usize> {
    std::iter::once(c)
        .chain(std::iter::repeat_n(1, rank.saturating_sub(2)))
        .collect()
}
