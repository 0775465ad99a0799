//! The input gradient of 3×3 stride-2 convolutions with padding 1 by phases: the forward of
//! the usual 2× transposed convolution (`conv_transpose2d` with kernel 3, stride 2, padding
//! 1), one product per phase of the result and no fold.
//!
//! Input row `iy` of the convolution received output row `i` through kernel row `p` where
//! `iy = 2i + p − 1`: an even row `2r` through `p = 1` from row `r`, an odd row `2r + 1`
//! through `p = 0` from row `r + 1` and `p = 2` from row `r`; the columns alike. So each of
//! the four phases (row and column parity) of the gradient is a stride-1 sum over one, two
//! or four shifted copies of the output gradient: per tap a product `[c, o] × [o, pixels]`
//! that lands where the phase's plane lies, so the taps add up in long runs. The unfolded
//! route (one product `Wᵀ · G` of all nine taps, then each tap's rows added into place, 7
//! or 14 at a time) spent more time adding short rows into place than multiplying. Each
//! tap is its own product, added in the unfolded route's order, so the bits are that
//! route's (one product per phase over all its taps measured faster still, but changed
//! the order of the sums).

use std::ops::Range;

use super::ConvGeom;
use super::phases::merge_phases_add_inline;
use crate::float::Float;
use crate::kernels::gemm::{MatMut, MatRef, gemm_on};
use crate::runtime::scratch::Scratch;
use crate::runtime::simd::tiers;
use crate::runtime::threads::for_each_chunk;

/// Whether the routine computes this input gradient: a 3×3 kernel, stride 2, padding 1, no
/// dilation, one group, and a geometry where the fold it saves outweighs its products and
/// copies. Measured (A/B against the unfolded route, Zen 4, 2 threads, in a first version
/// with one product per phase): a batch of 128 7×7 planes 32 → 16 channels 0.73x forward
/// and backward, ResNet-8's stride-2 layers at batch 32 (16 → 32 and 32 → 64 channels)
/// 0.84-0.88x; at batch 1 (a few hundred outputs) 1.2-1.5x, and with 512 channels
/// (ResNet-18's last stage, batch 32) 1.22x: the fold's cost per product falls as the
/// product's inner dimension (`o`) grows.
pub(super) fn eligible(g: &ConvGeom) -> bool {
    eligible_shape(g)
        && g.c >= MIN_CHANNELS
        && (MIN_CHANNELS..=MAX_OUT_CHANNELS).contains(&g.o)
        && g.n * g.ho * g.wo >= MIN_OUTPUTS
}

/// The shape this routine computes, whatever the sizes: a 3×3 kernel, stride 2, padding 1,
/// no dilation, one group.
fn eligible_shape(g: &ConvGeom) -> bool {
    let w = &g.win;
    (w.kh, w.kw, w.sh, w.sw, w.ph, w.pw, w.dh, w.dw) == (3, 3, 2, 2, 1, 1, 1, 1)
        && g.groups == 1
        && g.ho > 0
        && g.wo > 0
}

/// Below this many channels on either side the products are too thin for the GEMM.
const MIN_CHANNELS: usize = 8;

/// Above this many output channels the unfolded route's one product is the better.
const MAX_OUT_CHANNELS: usize = 64;

/// Below this many outputs (batch times plane) four products cost more than the fold.
const MIN_OUTPUTS: usize = 1024;

/// The fewest columns of a block's products.
const MIN_COLS: usize = 256;

/// A block's shifted copies and products in about this many bytes.
const BLOCK_BYTES: usize = 1 << 19;

/// The shifts `(rows, columns)` of the output gradient's copies, in an order where every
/// phase uses a run of them: `(0, 0)` one, `(0, 1)` the middle two, `(1, 0)` the first two,
/// `(1, 1)` all four.
const SHIFTS: [(usize, usize); 4] = [(1, 0), (0, 0), (0, 1), (1, 1)];

/// The phases `(row parity, column parity)` of the gradient, in the order of its products.
const PHASES: [(usize, usize); 4] = [(0, 0), (0, 1), (1, 0), (1, 1)];

/// The copies phase `(rp, cp)` reads: those shifted by no more than its parity.
fn slots(rp: usize, cp: usize) -> Range<usize> {
    match (rp, cp) {
        (0, 0) => 1..2,
        (0, 1) => 1..3,
        (1, 0) => 0..2,
        _ => 0..4,
    }
}

/// The kernel row (or column) through which parity `rp` reads a copy shifted by `s`.
fn tap(rp: usize, s: usize) -> usize {
    match (rp, s) {
        (0, _) => 1,
        (_, 1) => 0,
        _ => 2,
    }
}

/// The input gradient, added into `dx`.
pub(super) fn backward_input<T: Float>(g: &ConvGeom, gy: &[T], w: &[T], dx: &mut [T]) {
    let tp = g.ho * g.wo;
    let per = (BLOCK_BYTES / (4 * (g.o + g.c) * tp * size_of::<T>()).max(1))
        .max(MIN_COLS.div_ceil(tp))
        .max(1);
    backward_input_with(g, gy, w, dx, per)
}

/// [`backward_input`] in blocks of `per` images.
fn backward_input_with<T: Float>(g: &ConvGeom, gy: &[T], w: &[T], dx: &mut [T], per: usize) {
    assert!(
        eligible_shape(g),
        "subpixel: not a 3x3 stride-2 convolution with padding 1: {g:?}"
    );
    let (c, o, tp) = (g.c, g.o, g.ho * g.wo);
    let (in_img, out_img) = (c * g.h * g.w, o * tp);
    assert!(
        gy.len() == g.n * out_img && w.len() == o * c * 9 && dx.len() == g.n * in_img,
        "subpixel: buffer sizes do not match the geometry"
    );
    // at[phase][(slot, oc)][ci] = w[oc, ci, p, q] for the taps the phase reads from each
    // copy: the phase's factor `[c, k·o]` stored transposed, written in `w`'s order (each of
    // a channel pair's nine taps goes to one phase and copy).
    let mut at = Scratch::<T>::take(9 * c * o);
    let mut dest = [0; 9];
    let mut start = 0;
    for (rp, cp) in PHASES {
        for s in slots(rp, cp) {
            let (p, q) = (tap(rp, SHIFTS[s].0), tap(cp, SHIFTS[s].1));
            dest[p * 3 + q] = start + (s - slots(rp, cp).start) * o * c;
        }
        start += slots(rp, cp).len() * o * c;
    }
    for (oc, wo) in w.chunks_exact(9 * c).enumerate() {
        for (ci, taps) in wo.chunks_exact(9).enumerate() {
            for (&d, &v) in dest.iter().zip(taps) {
                at[d + oc * c + ci] = v;
            }
        }
    }
    let flops = 2 * gy.len() * 9 * c;
    for_each_chunk(flops, in_img, dx, |b0, dxs, threads| {
        let count = dxs.len() / in_img;
        let per = per.min(count);
        let mut copies = Scratch::<T>::take(4 * o * per * tp);
        let mut y = Scratch::<T>::take(4 * c * per * tp);
        let mut term = Scratch::<T>::take(c * per * tp);
        for j0 in (0..count).step_by(per) {
            let k = per.min(count - j0);
            let cols = k * tp;
            let gys = &gy[(b0 + j0) * out_img..(b0 + j0 + k) * out_img];
            shifted_copies(g, gys, k, &mut copies[..4 * o * cols]);
            let mut start = 0;
            for (ph, (rp, cp)) in PHASES.into_iter().enumerate() {
                let sl = slots(rp, cp);
                // The phase's taps in the unfolded route's order (p, then q), each its own
                // product over the output channels, added up as the fold adds them: the
                // same bits as that route.
                let mut order = [0; 4];
                let order = &mut order[..sl.len()];
                for (d, s) in order.iter_mut().zip(sl.clone()) {
                    *d = s;
                }
                order.sort_unstable_by_key(|&s| (tap(rp, SHIFTS[s].0), tap(cp, SHIFTS[s].1)));
                let yph = &mut y[ph * c * cols..(ph + 1) * c * cols];
                for (i, &s) in order.iter().enumerate() {
                    let a_s = &at[start + (s - sl.start) * o * c..][..o * c];
                    let am = MatRef::transposed(a_s, c, o);
                    let bm = MatRef::new(&copies[s * o * cols..(s + 1) * o * cols], o, cols);
                    if i == 0 {
                        gemm_on(threads, am, bm, MatMut::new(yph, c, cols), false);
                        continue;
                    }
                    let t = &mut term[..c * cols];
                    gemm_on(threads, am, bm, MatMut::new(t, c, cols), false);
                    yph.iter_mut().zip(t.iter()).for_each(|(y, &t)| *y += t);
                }
                start += sl.len() * o * c;
            }
            let dxk = &mut dxs[j0 * in_img..(j0 + k) * in_img];
            add_phases(g, &y[..4 * c * cols], k, dxk);
        }
    });
}

/// `copies[slot][oc][j·tp + t]`: image `j` of `gy` (`k` of them) shifted up by `sr` rows and
/// left by `sc` columns, `(sr, sc) = SHIFTS[slot]`, zero past the bottom and right edges.
fn shifted_copies<T: Float>(g: &ConvGeom, gy: &[T], k: usize, copies: &mut [T]) {
    let (o, wo, tp) = (g.o, g.wo, g.ho * g.wo);
    let cols = k * tp;
    for (slot, &(sr, sc)) in SHIFTS.iter().enumerate() {
        for oc in 0..o {
            let row = &mut copies[(slot * o + oc) * cols..(slot * o + oc + 1) * cols];
            for (j, d) in row.chunks_exact_mut(tp).enumerate() {
                let src = &gy[(j * o + oc) * tp..(j * o + oc + 1) * tp];
                // Element t of the copy is element t + off of the plane: one run, then the
                // bottom rows' zeros, then (shifted left) each row's last column zeroed.
                let off = sr * wo + sc;
                let len = tp.saturating_sub(off);
                d[..len].copy_from_slice(&src[off.min(tp)..]);
                d[len..].fill(T::ZERO);
                if sc == 1 {
                    d.iter_mut()
                        .skip(wo - 1)
                        .step_by(wo)
                        .for_each(|v| *v = T::ZERO);
                }
            }
        }
    }
}

tiers! {
/// `dx += y` with `y[phase][ci][j·tp + t]` the four phases of the gradient of `k` images:
/// row `r` of phases `(rp, 0)` and `(rp, 1)` merged into input row `2r + rp`.
fn add_phases<T: Float>(g: &ConvGeom, y: &[T], k: usize, dx: &mut [T]) {
    let (c, h, w, wo, tp) = (g.c, g.h, g.w, g.wo, g.ho * g.wo);
    let cols = k * tp;
    for (j, dxj) in dx.chunks_exact_mut(c * h * w).enumerate() {
        for (ci, plane) in dxj.chunks_exact_mut(h * w).enumerate() {
            for (iy, row) in plane.chunks_exact_mut(w).enumerate() {
                let (r, rp) = (iy / 2, iy % 2);
                let at = |cp: usize| (2 * rp + cp) * c * cols + ci * cols + j * tp + r * wo;
                let (even, odd) = (&y[at(0)..][..w.div_ceil(2)], &y[at(1)..][..w / 2]);
                merge_phases_add_inline(row, even, odd);
            }
        }
    }
}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::tests::{data, geom as conv_geom};

    fn geom(n: usize, c: usize, hw: (usize, usize), o: usize) -> ConvGeom {
        conv_geom(n, c, hw, o, (3, 3), (2, 2), (1, 1), (1, 1), 1)
    }

    /// `dx[b, ci, 2i + p − 1, 2j + q − 1] += gy[b, oc, i, j] · w[oc, ci, p, q]` where that
    /// lies inside the input, plus the `init` it is added to.
    fn definition(g: &ConvGeom, gy: &[f64], w: &[f64], init: &[f64]) -> Vec<f64> {
        let mut dx = init.to_vec();
        for b in 0..g.n {
            for oc in 0..g.o {
                for ci in 0..g.c {
                    for (i, j, p, q) in
                        (0..g.ho * g.wo * 9).map(|k| (k / 9 / g.wo, k / 9 % g.wo, k % 9 / 3, k % 3))
                    {
                        let (iy, ix) = ((2 * i + p).wrapping_sub(1), (2 * j + q).wrapping_sub(1));
                        if iy < g.h && ix < g.w {
                            dx[((b * g.c + ci) * g.h + iy) * g.w + ix] += gy
                                [((b * g.o + oc) * g.ho + i) * g.wo + j]
                                * w[((oc * g.c + ci) * 3 + p) * 3 + q];
                        }
                    }
                }
            }
        }
        dx
    }

    #[test]
    fn input_gradient_matches_the_definition() {
        // Odd and even sizes, planes of one row or column, one image and several; each
        // with blocks of one image, of two, and of the whole batch.
        for (n, c, hw, o) in [
            (1, 1, (1, 1), 1),
            (2, 3, (14, 14), 2),
            (3, 2, (13, 9), 3),
            (1, 4, (2, 7), 5),
            (2, 2, (5, 1), 3),
            (4, 3, (8, 11), 2),
        ] {
            let g = geom(n, c, hw, o);
            let (gy, w) = (data(n * o * g.ho * g.wo, 0.53), data(o * c * 9, 0.71));
            let init = data(n * c * hw.0 * hw.1, 0.29);
            let want = definition(&g, &gy, &w, &init);
            for per in [1, 2, n] {
                let mut dx = init.clone();
                backward_input_with(&g, &gy, &w, &mut dx, per);
                for (i, (a, b)) in dx.iter().zip(&want).enumerate() {
                    assert!((a - b).abs() < 1e-12, "{g:?} per {per} at {i}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn the_same_bits_as_the_unfolded_route() {
        // The transposed convolution of the benchmarks, ResNet-8's two stride-2 layers (at
        // a smaller batch), an odd plane, and blocks of one image.
        for (g, per) in [
            (geom(6, 16, (14, 14), 32), 4),
            (geom(3, 16, (28, 28), 32), 64),
            (geom(5, 32, (14, 14), 64), 64),
            (geom(4, 9, (13, 11), 10), 1),
        ] {
            let f32s = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect::<Vec<f32>>();
            let gy = f32s(data(g.n * g.o * g.ho * g.wo, 0.53));
            let w = f32s(data(g.o * g.c * 9, 0.71));
            let init = f32s(data(g.n * g.c * g.h * g.w, 0.29));
            let (mut dx, mut want) = (init.clone(), init);
            backward_input_with(&g, &gy, &w, &mut dx, per);
            super::super::im2col::backward_input(&g, &gy, &w, &mut want);
            let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&dx), bits(&want), "{g:?}");
        }
    }

    #[test]
    fn the_conv_kernels_take_this_path_when_eligible() {
        use crate::kernels::conv::conv2d_backward_input;
        // The second is split across threads.
        for g in [geom(24, 16, (14, 13), 8), geom(40, 8, (15, 16), 12)] {
            assert!(eligible(&g));
            let (gy, w) = (
                data(g.n * g.o * g.ho * g.wo, 0.53),
                data(g.o * g.c * 9, 0.71),
            );
            let init = vec![0.0; g.n * g.c * g.h * g.w];
            let want = definition(&g, &gy, &w, &init);
            let f32s = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<f32>>();
            let mut dx = vec![0.0f32; init.len()];
            conv2d_backward_input(&g, &f32s(&gy), &f32s(&w), &mut dx);
            let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            for (i, (&a, &b)) in dx.iter().zip(&want).enumerate() {
                assert!(
                    (a as f64 - b).abs() < 2e-5 * scale,
                    "{g:?} at {i}: {a} vs {b}"
                );
            }
        }
    }
}
