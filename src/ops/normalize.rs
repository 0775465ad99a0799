//! The op under batch, layer and group norm: each group of a tensor viewed as `[A, G, B]`
//! (group `g` is `x[:, g, :]`) shifted to mean 0 and scaled to variance 1,
//! `x̂ = (x − μ) / √(σ² + ε)` with the biased variance. The affine part of each
//! normalisation is a plain product and sum after it. Crate-private.

use crate::error::Error;
use crate::float::Float;
use crate::kernels::norm::{self, Groups};
use crate::tape::{Held, Var};
use crate::tensor::Tensor;
use std::rc::Rc;

/// A group's statistics as the kernels read them.
#[derive(Clone)]
struct Stats<T> {
    mean: Rc<[T]>,
    rstd: Rc<[T]>,
    eps: f64,
}

/// What the forward computed, for running statistics: each group's mean and biased
/// variance, in f64.
pub(crate) type Moments = Vec<(f64, f64)>;

impl<'t, T: Float> Var<'t, T> {
    /// `self`, of shape `[A, G, B]`, normalised per group; with the groups' moments.
    ///
    /// VJP: `∂L/∂x = r (g − mean(g) − x̂ · mean(g ⊙ x̂))` per group, `r = 1/√(σ² + ε)`, one
    /// fused op ([`normalize_backward`]).
    #[track_caller]
    pub(crate) fn normalize(self, eps: f64) -> (Var<'t, T>, Moments) {
        let shape = self.shape();
        let d = Groups {
            a: shape[0],
            g: shape[1],
            b: shape[2],
        };
        let (y, moments, stats) = self.with_value(|x| {
            let moments = norm::moments(x.data(), d);
            let mean: Rc<[T]> = moments.iter().map(|&(m, _)| T::from_f64(m)).collect();
            let rstd: Rc<[T]> = moments
                .iter()
                .map(|&(_, v)| T::from_f64(1.0 / (v + eps).sqrt()))
                .collect();
            let mut y = crate::runtime::buffers::zeroed(x.numel());
            norm::normalize(x.data(), d, &mean, &rstd, &mut y);
            (
                Tensor::from_vec(y, shape.clone()),
                moments,
                Stats { mean, rstd, eps },
            )
        });
        let held = Held::bytes(2 * d.g * std::mem::size_of::<T>());
        let out = self
            .tape()
            .try_record_graph("normalize", &[self], y, &[held], move |a| {
                [Some(normalize_backward(a.g(), a.input(0), stats.clone()))].into()
            });
        (crate::error::OrPanic::or_panic(out), moments)
    }
}

/// The normalisation's VJP as an op of `(g, x)`. Linear in `g` with a symmetric map `P`
/// (`P g` is the output), so its VJP in `g` is itself; its VJP in `x` is written in ops on
/// `x̂` and `r`, so that it too is differentiable, to any order:
///
/// `∂⟨u, P g⟩/∂x = −(r²/m)(A − c B) x̂ − (r B/m) P g − r c P u`, per group of `m` elements, with
/// `A = Σ u g − Σu Σg / m`, `B = Σ u x̂`, `c = Σ g x̂ / m` (from `∂x̂/∂x = P` and
/// `∂r/∂x = −r² x̂ / m`).
fn normalize_backward<'s, T: Float>(g: Var<'s, T>, x: Var<'s, T>, stats: Stats<T>) -> Var<'s, T> {
    let shape = x.shape();
    let d = Groups {
        a: shape[0],
        g: shape[1],
        b: shape[2],
    };
    let gx = g.with_value(|gv| {
        x.with_value(|xv| {
            let mut gx = crate::runtime::buffers::zeroed(xv.numel());
            norm::normalize_backward(gv.data(), xv.data(), d, &stats.mean, &stats.rstd, &mut gx);
            gx
        })
    });
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
