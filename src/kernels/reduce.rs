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
    let st = crate::kernels::elementwise::broadcast_strides(&out, shape);
    let zero = vec![0; shape.rank()];
    let mut acc = crate::runtime::buffers::zeroed(out.numel());
    for_each_broadcast(shape, &st, &zero, |i, o, _| acc[o] += x[i]);
    acc
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
