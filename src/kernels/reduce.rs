//! Reductions over chosen axes: sum and max (with the flat index of the first maximum).

use crate::float::Float;
use crate::kernels::elementwise::for_each_broadcast;
use crate::shape::Shape;

/// The shape left after reducing `axes` of `shape`, with those axes kept as extent 1.
pub fn kept_shape(shape: &Shape, axes: &[usize]) -> Shape {
    let mut s = shape.clone();
    for &a in axes {
        s[a] = 1;
    }
    s
}

/// Sums `x` over `axes`; the result has the shape [`kept_shape`] gives.
pub fn sum_axes<T: Float>(x: &[T], shape: &Shape, axes: &[usize]) -> Vec<T> {
    let out = kept_shape(shape, axes);
    let rank = shape.rank();
    let mut sorted = axes.to_vec();
    sorted.sort_unstable();
    let contiguous = sorted.windows(2).all(|w| w[1] == w[0] + 1);
    if contiguous && !sorted.is_empty() && x.len() == shape.numel() {
        let (first, last) = (sorted[0], sorted[sorted.len() - 1]);
        if last + 1 == rank {
            // Trailing axes: each output sums one contiguous run.
            let run: usize = shape[first..].iter().product();
            let mut acc = crate::runtime::buffers::zeroed(out.numel());
            if run > 0 {
                for (a, row) in acc.iter_mut().zip(x.chunks_exact(run)) {
                    *a = sum_run(row);
                }
            }
            return acc;
        }
        if first == 0 {
            // Leading axes: rows of the output's length added in order (the same order as
            // the general loop below, so the same bits), one vectorisable pass per row.
            let inner = out.numel();
            let mut acc = crate::runtime::buffers::zeroed(inner);
            if inner > 0 {
                for row in x.chunks_exact(inner) {
                    for (a, &v) in acc.iter_mut().zip(row) {
                        *a += v;
                    }
                }
            }
            return acc;
        }
    }
    let st = crate::kernels::elementwise::broadcast_strides(&out, shape);
    let zero = vec![0; shape.rank()];
    let mut acc = crate::runtime::buffers::zeroed(out.numel());
    for_each_broadcast(shape, &st, &zero, |i, o, _| acc[o] += x[i]);
    acc
}

/// The sum of a contiguous run, pairwise over blocks of 256 (as NumPy sums), each block by
/// eight interleaved partial sums (so that the additions pipeline and vectorise): the
/// rounding error grows with `log n`, not `n`. Deterministic: the order depends on the
/// length only.
fn sum_run<T: Float>(x: &[T]) -> T {
    const BLOCK: usize = 256;
    if x.len() > BLOCK {
        let half = x.len().div_ceil(2 * BLOCK) * BLOCK;
        return sum_run(&x[..half]) + sum_run(&x[half..]);
    }
    let mut lanes = [T::ZERO; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += v;
        }
    }
    let [a, b, c, d, e, f, g, h] = lanes;
    let mut s = ((a + b) + (c + d)) + ((e + f) + (g + h));
    for &v in tail {
        s += v;
    }
    s
}

/// The maximum of `x` over `axes` and, for each, the flat index into `x` of the first
/// element that attains it (NaN counts as the maximum, so it propagates).
pub fn max_axes<T: Float>(x: &[T], shape: &Shape, axes: &[usize]) -> (Vec<T>, Vec<usize>) {
    let out = kept_shape(shape, axes);
    let st = crate::kernels::elementwise::broadcast_strides(&out, shape);
    let zero = vec![0; shape.rank()];
    let mut best = vec![T::NEG_INFINITY; out.numel()];
    let mut arg = vec![usize::MAX; out.numel()];
    for_each_broadcast(shape, &st, &zero, |i, o, _| {
        let v = x[i];
        if arg[o] == usize::MAX || v > best[o] || (v.is_nan() && !best[o].is_nan()) {
            best[o] = v;
            arg[o] = i;
        }
    });
    (best, arg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_over_leading_trailing_and_all_axes_match_a_plain_loop() {
        let shape = Shape::from([3, 5, 37]);
        let x: Vec<f64> = (0..shape.numel())
            .map(|i| ((i * 7919) % 113) as f64 - 56.0)
            .collect();
        let naive = |axes: &[usize]| {
            let out = kept_shape(&shape, axes);
            let mut acc = vec![0.0; out.numel()];
            for (i, &v) in x.iter().enumerate() {
                let (a, b, c) = (i / (5 * 37), (i / 37) % 5, i % 37);
                let idx = [a, b, c];
                let o = (0..3).fold(0, |o, k| {
                    let d = if axes.contains(&k) { 0 } else { idx[k] };
                    o * out[k] + d
                });
                acc[o] += v;
            }
            acc
        };
        // Integer-valued, so every order of addition gives the same exact sums.
        for axes in [&[0][..], &[0, 1], &[1, 2], &[2], &[0, 1, 2], &[1], &[0, 2]] {
            assert_eq!(sum_axes(&x, &shape, axes), naive(axes), "axes {axes:?}");
        }
        // A long run in f32: the blocked sum stays close to the exact one.
        let v: Vec<f32> = (0..1_000_003)
            .map(|i| 0.1 + (i % 3) as f32 * 1e-3)
            .collect();
        let exact: f64 = v.iter().map(|&a| f64::from(a)).sum();
        let got = f64::from(sum_axes(&v, &Shape::from([v.len()]), &[0])[0]);
        assert!((got - exact).abs() / exact < 1e-6, "{got} vs {exact}");
    }

    #[test]
    fn sum_and_max_over_middle_axis() {
        let x: Vec<f64> = vec![1., 5., 2., 7., 0., 7.]; // [1, 3, 2]
        let s = Shape::from([1, 3, 2]);
        assert_eq!(sum_axes(&x, &s, &[1]), vec![3., 19.]);
        let (m, a) = max_axes(&x, &s, &[1]);
        assert_eq!(m, vec![2., 7.]);
        assert_eq!(a, vec![2, 3], "the first of the tied sevens");
        let (m, a) = max_axes(&[2.0f32, 2.0], &Shape::from([2]), &[0]);
        assert_eq!((m[0], a[0]), (2.0, 0), "first maximum on ties");
    }
}
