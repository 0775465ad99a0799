//! Normalisation over groups of a tensor viewed as `[A, G, B]`: group `g` holds
//! `x[a, g, b]` for every `a` and `b`. Batch norm is `[N, C, H·W]` (a group per channel),
//! layer norm `[1, N, features]`, group norm `[1, N·groups, C/groups · H·W]`. Each row of
//! `B` elements is summed in independent lanes of `T` by a loop compiled per tier, and the
//! rows of a group in f64.

use crate::float::Float;
use crate::kernels::out;
use crate::runtime::simd::tiers;
use crate::runtime::threads::{for_each_chunk, run};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// The `[A, G, B]` view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Groups {
    pub(crate) a: usize,
    pub(crate) g: usize,
    pub(crate) b: usize,
}

impl Groups {
    /// Elements in one group.
    pub(crate) fn m(self) -> usize {
        self.a * self.b
    }

    /// `f(group)` for every group, on the pool when the data is big.
    fn per_group<R: Send>(self, work: usize, f: impl Fn(usize) -> R + Sync + Send) -> Vec<R> {
        run(work, |threads| {
            if threads == 1 {
                (0..self.g).map(&f).collect()
            } else {
                (0..self.g).into_par_iter().map(&f).collect()
            }
        })
    }

    /// The rows of group `g` in `x`.
    fn rows<'a, T>(self, x: &'a [T], g: usize) -> impl Iterator<Item = &'a [T]> + 'a {
        (0..self.a).map(move |a| {
            let row = (a * self.g + g) * self.b;
            &x[row..row + self.b]
        })
    }

    /// `f(row, group, out[row])` over the rows of `out`, on the pool.
    fn for_rows<U: Send>(
        self,
        work: usize,
        out: &mut [U],
        f: impl Fn(usize, usize, &mut [U]) + Sync + Send,
    ) {
        let b = self.b;
        for_each_chunk(work, b, out, |row0, chunk, _| {
            for (r, o) in chunk.chunks_mut(b).enumerate() {
                let row = row0 + r;
                f(row, row % self.g, o);
            }
        });
    }

    /// Row `row` of `x`.
    fn row<T>(self, x: &[T], row: usize) -> &[T] {
        &x[row * self.b..(row + 1) * self.b]
    }
}

/// Lanes of the row sums: independent chains, so that each tier's copy vectorises them
/// (two AVX-512 vectors of f32) and pipelines the adds.
const LANES: usize = 16;

tiers! {
/// `Σ x` over a row, in [`LANES`] lanes of `T`.
fn row_sum<T: Float>(x: &[T]) -> f64 {
    let mut acc = [T::ZERO; LANES];
    let mut c = x.chunks_exact(LANES);
    for v in &mut c {
        for (a, &v) in acc.iter_mut().zip(v) {
            *a += v;
        }
    }
    let tail: T = c.remainder().iter().copied().sum();
    acc.iter().map(|a| a.to_f64()).sum::<f64>() + tail.to_f64()
}
}

tiers! {
/// `Σ (x − mean)²` over a row.
fn row_sq_dev<T: Float>(x: &[T], mean: T) -> f64 {
    let mut acc = [T::ZERO; LANES];
    let mut c = x.chunks_exact(LANES);
    for v in &mut c {
        for (a, &v) in acc.iter_mut().zip(v) {
            *a += (v - mean) * (v - mean);
        }
    }
    let tail: T = c.remainder().iter().map(|&v| (v - mean) * (v - mean)).sum();
    acc.iter().map(|a| a.to_f64()).sum::<f64>() + tail.to_f64()
}
}

tiers! {
/// `(Σ g, Σ g (x − mean))` over a row.
fn row_grad_sums<T: Float>(g: &[T], x: &[T], mean: T) -> (f64, f64) {
    let (mut sg, mut sgx) = ([T::ZERO; LANES], [T::ZERO; LANES]);
    let (mut cg, mut cx) = (g.chunks_exact(LANES), x.chunks_exact(LANES));
    for (g, x) in (&mut cg).zip(&mut cx) {
        for k in 0..LANES {
            sg[k] += g[k];
            sgx[k] += g[k] * (x[k] - mean);
        }
    }
    let (mut tg, mut tgx) = (T::ZERO, T::ZERO);
    for (&g, &x) in cg.remainder().iter().zip(cx.remainder()) {
        tg += g;
        tgx += g * (x - mean);
    }
    let total = |a: &[T; LANES], t: T| a.iter().map(|a| a.to_f64()).sum::<f64>() + t.to_f64();
    (total(&sg, tg), total(&sgx, tgx))
}
}

tiers! {
/// `y = x s + t` over a row.
fn row_scale_shift<T: Float>(x: &[T], s: T, t: T, y: &mut [MaybeUninit<T>]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = MaybeUninit::new(x * s + t);
    }
}
}

tiers! {
/// `out = α g + β x + γ` over a row.
fn row_affine2<T: Float>(g: &[T], x: &[T], alpha: T, beta: T, gamma: T, out: &mut [MaybeUninit<T>]) {
    for ((o, &g), &x) in out.iter_mut().zip(g).zip(x) {
        *o = MaybeUninit::new(alpha * g + beta * x + gamma);
    }
}
}

/// Each group's mean and biased variance (`Σ (x − mean)² / m`): two passes.
pub(crate) fn moments<T: Float>(x: &[T], d: Groups) -> Vec<(f64, f64)> {
    let m = d.m() as f64;
    d.per_group(2 * x.len(), |g| {
        let mean = d.rows(x, g).map(row_sum).sum::<f64>() / m;
        // About the mean rounded to T: off by at most half an ulp of it, which adds
        // m · (that)² to the sum, far below its own rounding.
        let mt = T::from_f64(mean);
        let var = d.rows(x, g).map(|r| row_sq_dev(r, mt)).sum::<f64>() / m;
        (mean, var)
    })
}

/// `y = x · scale[g] + shift[g]`: the normalisation `(x − μ) r` with `scale = r`,
/// `shift = −μ r`, and a per-group affine map folded in.
pub(crate) fn scale_shift<T: Float>(x: &[T], d: Groups, scale: &[T], shift: &[T]) -> Vec<T> {
    let write = |y: &mut [MaybeUninit<T>]| {
        d.for_rows(2 * x.len(), y, |row, g, yr| {
            row_scale_shift(d.row(x, row), scale[g], shift[g], yr);
        });
    };
    // SAFETY: the rows cover the output (`x.len()` elements, whole rows), each written.
    unsafe { out::written(x.len(), write) }
}

/// Per group, `(Σ gy, Σ gy · (x − μ))`: what the VJP needs besides the values.
pub(crate) fn grad_sums<T: Float>(gy: &[T], x: &[T], d: Groups, mean: &[f64]) -> Vec<(f64, f64)> {
    d.per_group(2 * x.len(), |g| {
        let mu = T::from_f64(mean[g]);
        let (gr, xr) = (d.rows(gy, g), d.rows(x, g));
        gr.zip(xr).fold((0.0, 0.0), |(sg, sgx), (gr, xr)| {
            let (s, sx) = row_grad_sums(gr, xr, mu);
            (sg + s, sgx + sx)
        })
    })
}

/// The normalisation's VJP, with `ĝ = gy · w[g]` (w = 1 when absent):
/// `gx = r (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂))`, `x̂ = (x − μ) r`, from [`grad_sums`] of `gy`;
/// written as `gx = α gy + β x + γ` per group.
pub(crate) fn normalize_backward<T: Float>(
    gy: &[T],
    x: &[T],
    d: Groups,
    mean: &[f64],
    rstd: &[f64],
    w: Option<&[T]>,
    sums: &[(f64, f64)],
) -> Vec<T> {
    let m = d.m() as f64;
    let coef: Vec<(T, T, T)> = (0..d.g)
        .map(|g| {
            let (mu, r, wg) = (mean[g], rstd[g], w.map_or(1.0, |w| w[g].to_f64()));
            let (mg, mgx) = (sums[g].0 / m, sums[g].1 * r / m);
            let (alpha, beta) = (r * wg, -r * r * wg * mgx);
            (
                T::from_f64(alpha),
                T::from_f64(beta),
                T::from_f64(-alpha * mg - beta * mu),
            )
        })
        .collect();
    let write = |gx: &mut [MaybeUninit<T>]| {
        d.for_rows(3 * x.len(), gx, |row, g, gr| {
            let (alpha, beta, gamma) = coef[g];
            row_affine2(d.row(gy, row), d.row(x, row), alpha, beta, gamma, gr);
        });
    };
    // SAFETY: as in `scale_shift`.
    unsafe { out::written(x.len(), write) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_of_strided_groups() {
        // [A=2, G=2, B=2]: group 0 is {0, 1, 4, 5}, group 1 {2, 3, 6, 7}.
        let x = [1.0, 2.0, 10.0, 20.0, 3.0, 4.0, 30.0, 40.0];
        let d = Groups { a: 2, g: 2, b: 2 };
        assert_eq!(moments(&x, d), vec![(2.5, 1.25), (25.0, 125.0)]);
    }
}
