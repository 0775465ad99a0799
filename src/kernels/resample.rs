//! Linear maps of a tensor's trailing axes ("planes"), the same map for every leading
//! index: padding, nearest and bilinear upsampling and adaptive average pooling are each one
//! such map, and its transpose is their gradient. The map is separable, a product of one
//! list of weighted taps per output coordinate on each axis, stored flat per output element.

use crate::float::Float;
use crate::runtime::threads::for_each_chunk;

/// The taps of one output coordinate on one axis: `(input coordinate, weight)`.
pub(crate) type Taps<T> = Vec<(usize, T)>;

/// A linear map from planes of `in_dims` to planes of `out_dims`: output element `o` is
/// `Σ w · x[i]` over its taps (none: the element is 0, or a constant fill).
#[derive(Debug)]
pub(crate) struct PlaneMap<T> {
    pub(crate) in_dims: Vec<usize>,
    pub(crate) out_dims: Vec<usize>,
    /// Output element `o`'s taps are `taps[starts[o]..starts[o + 1]]`.
    starts: Vec<usize>,
    taps: Vec<(usize, T)>,
}

impl<T: Float> PlaneMap<T> {
    /// The product of one map per axis: `axes[k][j]` lists the taps of output coordinate
    /// `j` on axis `k` among that axis's `in_dims[k]` input coordinates.
    pub(crate) fn separable(in_dims: &[usize], axes: &[Vec<Taps<T>>]) -> Self {
        debug_assert_eq!(in_dims.len(), axes.len());
        let out_dims: Vec<usize> = axes.iter().map(Vec::len).collect();
        let out_len: usize = out_dims.iter().product();
        let mut starts = Vec::with_capacity(out_len + 1);
        let mut taps = Vec::new();
        starts.push(0);
        // Walk the output coordinates in row-major order; each element's taps are the
        // product of its coordinates' taps, with row-major input offsets.
        let mut coord = vec![0usize; axes.len()];
        for _ in 0..out_len {
            let mut acc: Vec<(usize, T)> = vec![(0, T::ONE)];
            for (k, axis) in axes.iter().enumerate() {
                let mut next = Vec::with_capacity(acc.len() * axis[coord[k]].len());
                for &(off, w) in &acc {
                    for &(i, wi) in &axis[coord[k]] {
                        next.push((off * in_dims[k] + i, w * wi));
                    }
                }
                acc = next;
            }
            taps.extend(acc);
            starts.push(taps.len());
            for k in (0..coord.len()).rev() {
                coord[k] += 1;
                if coord[k] < out_dims[k] {
                    break;
                }
                coord[k] = 0;
            }
        }
        PlaneMap {
            in_dims: in_dims.to_vec(),
            out_dims,
            starts,
            taps,
        }
    }

    /// Elements of one input plane.
    pub(crate) fn in_len(&self) -> usize {
        self.in_dims.iter().product()
    }

    /// Elements of one output plane.
    pub(crate) fn out_len(&self) -> usize {
        self.out_dims.iter().product()
    }

    /// `y = M x` plane by plane (`x` holds whole input planes); outputs with no tap get
    /// `fill`.
    pub(crate) fn apply(&self, x: &[T], fill: T, y: &mut [T]) {
        let (il, ol) = (self.in_len(), self.out_len());
        debug_assert_eq!(x.len() / il.max(1), y.len() / ol.max(1));
        for_each_chunk(
            self.taps.len() * x.len() / il.max(1),
            ol,
            y,
            |p0, out, _| {
                for (p, yp) in out.chunks_mut(ol).enumerate() {
                    let xp = &x[(p0 + p) * il..(p0 + p + 1) * il];
                    for (o, v) in yp.iter_mut().enumerate() {
                        let taps = &self.taps[self.starts[o]..self.starts[o + 1]];
                        *v = if taps.is_empty() {
                            fill
                        } else {
                            taps.iter().fold(T::ZERO, |s, &(i, w)| s + w * xp[i])
                        };
                    }
                }
            },
        );
    }

    /// `gx = Mᵀ g` plane by plane, into zeroed `gx`.
    pub(crate) fn apply_transposed(&self, g: &[T], gx: &mut [T]) {
        let (il, ol) = (self.in_len(), self.out_len());
        debug_assert_eq!(g.len() / ol.max(1), gx.len() / il.max(1));
        for_each_chunk(
            self.taps.len() * g.len() / ol.max(1),
            il,
            gx,
            |p0, out, _| {
                for (p, xp) in out.chunks_mut(il).enumerate() {
                    let gp = &g[(p0 + p) * ol..(p0 + p + 1) * ol];
                    for (o, &go) in gp.iter().enumerate() {
                        for &(i, w) in &self.taps[self.starts[o]..self.starts[o + 1]] {
                            xp[i] += w * go;
                        }
                    }
                }
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small map against its dense matrix, both ways.
    #[test]
    fn separable_map_and_its_transpose_match_the_dense_product() {
        // Axis 0: 2 -> 3 (a reflect-like gather); axis 1: 3 -> 2 (averages), one empty tap.
        let a0: Vec<Taps<f64>> = vec![vec![(1, 1.0)], vec![(0, 1.0)], vec![]];
        let a1: Vec<Taps<f64>> = vec![vec![(0, 0.5), (1, 0.5)], vec![(2, 2.0)]];
        let m = PlaneMap::separable(&[2, 3], &[a0.clone(), a1.clone()]);
        assert_eq!((m.in_len(), m.out_len()), (6, 6));
        let dense = |o0: usize, o1: usize, i0: usize, i1: usize| -> f64 {
            let w0 = a0[o0].iter().find(|t| t.0 == i0).map_or(0.0, |t| t.1);
            let w1 = a1[o1].iter().find(|t| t.0 == i1).map_or(0.0, |t| t.1);
            w0 * w1
        };
        let x: Vec<f64> = (0..12).map(|v| v as f64 * 0.7 - 2.0).collect(); // two planes
        let mut y = vec![0.0; 12];
        m.apply(&x, 9.0, &mut y);
        let mut gx = vec![0.0; 12];
        m.apply_transposed(&x, &mut gx);
        for p in 0..2 {
            for o in 0..6 {
                let want = if o / 2 == 2 {
                    9.0 // no taps: the fill
                } else {
                    (0..6)
                        .map(|i| dense(o / 2, o % 2, i / 3, i % 3) * x[p * 6 + i])
                        .sum()
                };
                approx::assert_abs_diff_eq!(y[p * 6 + o], want, epsilon = 1e-12);
            }
            for i in 0..6 {
                let want: f64 = (0..6)
                    .map(|o| dense(o / 2, o % 2, i / 3, i % 3) * x[p * 6 + o])
                    .sum();
                approx::assert_abs_diff_eq!(gx[p * 6 + i], want, epsilon = 1e-12);
            }
        }
    }
}
