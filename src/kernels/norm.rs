//! Normalisation over groups of a tensor viewed as `[A, G, B]`: group `g` holds
//! `x[a, g, b]` for every `a` and `b`. Batch norm is `[N, C, H·W]` (a group per channel),
//! layer norm `[1, N, features]`, group norm `[1, N·groups, C/groups · H·W]`.

use crate::float::Float;
use crate::runtime::threads::{for_each_chunk, run};
use rayon::prelude::*;

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

    /// `Σ f(x[k])` over group `g`'s elements of `x`, in f64.
    fn sum_over(self, g: usize, f: impl Fn(usize) -> f64) -> f64 {
        let mut s = 0.0;
        for a in 0..self.a {
            let row = (a * self.g + g) * self.b;
            s += (row..row + self.b).map(&f).sum::<f64>();
        }
        s
    }
}

/// Each group's mean and biased variance (`Σ (x − mean)² / m`), two passes with f64 sums.
pub(crate) fn moments<T: Float>(x: &[T], d: Groups) -> Vec<(f64, f64)> {
    let m = d.m() as f64;
    d.per_group(2 * x.len(), |g| {
        let mean = d.sum_over(g, |k| x[k].to_f64()) / m;
        let var = d.sum_over(g, |k| (x[k].to_f64() - mean).powi(2)) / m;
        (mean, var)
    })
}

/// `y = (x − mean[g]) · rstd[g]`.
pub(crate) fn normalize<T: Float>(x: &[T], d: Groups, mean: &[T], rstd: &[T], y: &mut [T]) {
    for_each_chunk(2 * x.len(), d.b, y, |row0, out, _| {
        for (r, yr) in out.chunks_mut(d.b).enumerate() {
            let (row, g) = (row0 + r, (row0 + r) % d.g);
            let xr = &x[row * d.b..(row + 1) * d.b];
            for (y, &x) in yr.iter_mut().zip(xr) {
                *y = (x - mean[g]) * rstd[g];
            }
        }
    });
}

/// The normalisation's VJP: `gx = rstd (gy − mean(gy) − x̂ · mean(gy ⊙ x̂))` per group, with
/// `x̂ = (x − mean) · rstd`.
pub(crate) fn normalize_backward<T: Float>(
    gy: &[T],
    x: &[T],
    d: Groups,
    mean: &[T],
    rstd: &[T],
    gx: &mut [T],
) {
    let m = d.m() as f64;
    let sums = d.per_group(2 * x.len(), |g| {
        let (mu, r) = (mean[g].to_f64(), rstd[g].to_f64());
        let sg = d.sum_over(g, |k| gy[k].to_f64());
        let sgx = d.sum_over(g, |k| gy[k].to_f64() * (x[k].to_f64() - mu) * r);
        (T::from_f64(sg / m), T::from_f64(sgx / m))
    });
    for_each_chunk(3 * x.len(), d.b, gx, |row0, out, _| {
        for (r, gr) in out.chunks_mut(d.b).enumerate() {
            let (row, g) = (row0 + r, (row0 + r) % d.g);
            let (mg, mgx) = sums[g];
            let span = row * d.b..(row + 1) * d.b;
            for ((o, &gy), &x) in gr.iter_mut().zip(&gy[span.clone()]).zip(&x[span]) {
                let xh = (x - mean[g]) * rstd[g];
                *o = rstd[g] * (gy - mg - xh * mgx);
            }
        }
    });
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
