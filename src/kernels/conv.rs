//! 2-D convolution (cross-correlation) on NCHW slices.
//!
//! The forward unfolds each (batch item, group) of the input into a column matrix
//! (`im2col`: one row per weight tap `(c, p, q)`, one column per output position) and
//! multiplies the group's weights by it with [`gemm()`](crate::kernels::gemm::gemm). The VJPs reuse the same two pieces:
//! the input gradient is `Wᵀ · G` folded back onto the input (`col2im`, a scatter-add), the
//! weight gradient is `G · colᵀ` summed over the batch.
//!
//! Every function here trusts its [`ConvGeom`]: the op validates shapes and options first.

use std::mem::MaybeUninit;

use crate::float::Float;
use crate::kernels::gemm::{Layout, gemm_on, gemm_strided};
use crate::kernels::out;
use crate::kernels::winograd;
use crate::runtime::scratch::Scratch;
use crate::runtime::simd::copy_run;
use crate::runtime::threads::{for_each_chunk, sum_chunks};

/// Every size of one convolution: input `[n, c, h, w]`, weight `[o, c / groups, kh, kw]`,
/// output `[n, o, ho, wo]`, and the per-axis stride, padding and dilation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvGeom {
    /// Batch size.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output channels.
    pub o: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Vertical stride (at least 1).
    pub sh: usize,
    /// Horizontal stride (at least 1).
    pub sw: usize,
    /// Zero padding above and below.
    pub ph: usize,
    /// Zero padding left and right.
    pub pw: usize,
    /// Vertical dilation (at least 1).
    pub dh: usize,
    /// Horizontal dilation (at least 1).
    pub dw: usize,
    /// Channel groups (at least 1, dividing `c` and `o`).
    pub groups: usize,
    /// Output height.
    pub ho: usize,
    /// Output width.
    pub wo: usize,
}

/// The output length of one axis, `(len + 2·pad − dil·(k − 1) − 1) / stride + 1`, or `None`
/// when the dilated kernel is empty or longer than the padded input, the stride is 0, or
/// the arithmetic overflows.
pub fn output_len(len: usize, k: usize, stride: usize, pad: usize, dil: usize) -> Option<usize> {
    if k == 0 || stride == 0 {
        return None;
    }
    let span = dil.checked_mul(k - 1)?.checked_add(1)?;
    let padded = pad.checked_mul(2)?.checked_add(len)?;
    Some(padded.checked_sub(span)? / stride + 1)
}

impl ConvGeom {
    /// Input channels per group.
    pub fn cg(&self) -> usize {
        self.c / self.groups
    }
    /// Output channels per group.
    pub fn og(&self) -> usize {
        self.o / self.groups
    }
    /// Weight taps per output channel, `cg · kh · kw`: the rows of the column matrix.
    pub fn taps(&self) -> usize {
        self.cg() * self.kh * self.kw
    }
    /// Output positions per channel, `ho · wo`: the columns of the column matrix.
    pub fn out_plane(&self) -> usize {
        self.ho * self.wo
    }
    /// Elements of one input channel, `h · w`.
    pub fn in_plane(&self) -> usize {
        self.h * self.w
    }
    /// True when the column matrix of a group is its input slice itself (a 1×1 kernel with
    /// stride 1 and no padding), so `im2col` can be skipped.
    pub fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.sh == 1 && self.sw == 1 && self.ph == 0 && self.pw == 0
    }
    /// How many output rows one band of the column matrix covers: as many as keep the band
    /// (`taps × rows·wo` elements of `elem` bytes) within a share of the L2 cache, at least 1.
    pub fn band_rows(&self, elem: usize) -> usize {
        // A quarter of a 1 MiB L2 measured best on S5 (3×3, 64 channels, 56×56).
        let budget = 256usize << 10;
        let row_bytes = self.taps() * self.wo * elem;
        (budget / row_bytes.max(1)).clamp(1, self.ho.max(1))
    }
    /// The output rows `0..ho` in bands of `band` rows (the last one shorter).
    fn bands(&self, band: usize) -> impl Iterator<Item = std::ops::Range<usize>> + use<> {
        let ho = self.ho;
        (0..ho).step_by(band).map(move |r0| r0..(r0 + band).min(ho))
    }
    /// The slice of the input (or its gradient) holding batch item `b`, group `g`.
    fn in_range(&self, b: usize, g: usize) -> std::ops::Range<usize> {
        let start = (b * self.c + g * self.cg()) * self.in_plane();
        start..start + self.cg() * self.in_plane()
    }
    /// The slice of the output (or its gradient) holding batch item `b`, group `g`.
    fn out_range(&self, b: usize, g: usize) -> std::ops::Range<usize> {
        let start = (b * self.o + g * self.og()) * self.out_plane();
        start..start + self.og() * self.out_plane()
    }
    /// The slice of the weight (or its gradient) holding group `g`.
    fn weight_range(&self, g: usize) -> std::ops::Range<usize> {
        let start = g * self.og() * self.taps();
        start..start + self.og() * self.taps()
    }
}

/// The output positions `lo..hi` along one axis for which the tap at offset `off = k·dil`
/// reads inside the input, `0 ≤ i·stride + off − pad < in_len`; `lo ≤ hi ≤ out_len`.
/// Both `im2col` and `col2im` index the input only inside this range.
#[inline]
fn valid_range(
    out_len: usize,
    in_len: usize,
    off: usize,
    pad: usize,
    stride: usize,
) -> (usize, usize) {
    let lo = if off >= pad {
        0
    } else {
        (pad - off).div_ceil(stride)
    };
    let hi = if off >= pad + in_len {
        0
    } else {
        ((pad + in_len - off - 1) / stride + 1).min(out_len)
    };
    (lo.min(hi), hi)
}

/// Unfolds one (batch item, group) input slice `x` (`[cg, h, w]`) into `col`
/// (`[cg·kh·kw, ho·wo]`): `col[(ci, p, q), (i, j)] = x[ci, i·sh + p·dh − ph, j·sw + q·dw − pw]`,
/// zero where that falls in the padding.
pub fn im2col<T: Float>(g: &ConvGeom, x: &[T], col: &mut [T]) {
    im2col_rows(g, x, 0..g.ho, col)
}

/// [`im2col`] restricted to the output rows `rows`: `col` is `[cg·kh·kw, rows.len()·wo]`, the
/// columns of those rows only, so that a band of the column matrix can stay in cache.
pub fn im2col_rows<T: Float>(g: &ConvGeom, x: &[T], rows: std::ops::Range<usize>, col: &mut [T]) {
    let wo = g.wo;
    let plane = rows.len() * wo;
    assert!(
        rows.end <= g.ho && x.len() >= g.cg() * g.in_plane() && col.len() >= g.taps() * plane,
        "im2col: short buffers"
    );
    if plane == 0 {
        return;
    }
    if g.sh == 1 && g.sw == 1 && g.dh == 1 && g.dw == 1 {
        im2col_rows_dense(g, x, rows, col);
    } else {
        im2col_rows_general(g, x, rows, col);
    }
}

/// [`im2col_rows`] for any stride and dilation: the valid part of every run copied, the rest
/// zeroed.
fn im2col_rows_general<T: Float>(
    g: &ConvGeom,
    x: &[T],
    rows: std::ops::Range<usize>,
    col: &mut [T],
) {
    let wo = g.wo;
    let plane = rows.len() * wo;
    for ci in 0..g.cg() {
        let xc = &x[ci * g.in_plane()..(ci + 1) * g.in_plane()];
        for p in 0..g.kh {
            let (ylo, yhi) = valid_range(g.ho, g.h, p * g.dh, g.ph, g.sh);
            // The valid rows of this band, counted from its first row.
            let ylo = ylo.clamp(rows.start, rows.end) - rows.start;
            let yhi = yhi.clamp(rows.start, rows.end) - rows.start;
            let yhi = yhi.max(ylo);
            for q in 0..g.kw {
                let (xlo, xhi) = valid_range(wo, g.w, q * g.dw, g.pw, g.sw);
                let r = (ci * g.kh + p) * g.kw + q;
                let row = &mut col[r * plane..(r + 1) * plane];
                row[..ylo * wo].fill(T::ZERO);
                row[yhi * wo..].fill(T::ZERO);
                for i in ylo..yhi {
                    let seg = &mut row[i * wo..(i + 1) * wo];
                    seg[..xlo].fill(T::ZERO);
                    seg[xhi..].fill(T::ZERO);
                    if xlo == xhi {
                        continue;
                    }
                    let iy = (rows.start + i) * g.sh + p * g.dh - g.ph;
                    let ix0 = xlo * g.sw + q * g.dw - g.pw;
                    let xrow = &xc[iy * g.w + ix0..(iy + 1) * g.w];
                    let dst = &mut seg[xlo..xhi];
                    if g.sw == 1 {
                        dst.copy_from_slice(&xrow[..dst.len()]);
                    } else {
                        for (d, &s) in dst.iter_mut().zip(xrow.iter().step_by(g.sw)) {
                            *d = s;
                        }
                    }
                }
            }
        }
    }
}

/// [`im2col_rows`] for stride 1 and no dilation: each channel's input rows under the band
/// are first copied once into a zero-margined block, so that every row of the column matrix
/// is a run of whole copies with no bounds to work out and no padding to fill (those small
/// copies and fills were a fifth of a 5×5 single-channel forward).
fn im2col_rows_dense<T: Float>(g: &ConvGeom, x: &[T], rows: std::ops::Range<usize>, col: &mut [T]) {
    let (wo, wp) = (g.wo, g.w + 2 * g.pw);
    let plane = rows.len() * wo;
    let hp = rows.len() + g.kh - 1;
    let mut padded = Scratch::<T>::take(hp * wp);
    padded.fill(T::ZERO);
    for ci in 0..g.cg() {
        let xc = &x[ci * g.in_plane()..(ci + 1) * g.in_plane()];
        // Padded row `rows.start + a` is input row `rows.start + a − ph`.
        for a in 0..hp {
            let iy = (rows.start + a).wrapping_sub(g.ph);
            if iy < g.h {
                copy_run(
                    &mut padded[a * wp + g.pw..a * wp + g.pw + g.w],
                    &xc[iy * g.w..(iy + 1) * g.w],
                );
            }
        }
        for p in 0..g.kh {
            for q in 0..g.kw {
                let r = (ci * g.kh + p) * g.kw + q;
                let row = &mut col[r * plane..(r + 1) * plane];
                for (i, seg) in row.chunks_exact_mut(wo).enumerate() {
                    let at = (i + p) * wp + q;
                    copy_run(seg, &padded[at..at + wo]);
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: adds each entry of `col` (`[cg·kh·kw, ho·wo]`) into the input
/// position it was read from in `dx` (`[cg, h, w]`); entries that came from the padding are
/// dropped.
pub fn col2im<T: Float>(g: &ConvGeom, col: &[T], dx: &mut [T]) {
    let (plane, wo) = (g.out_plane(), g.wo);
    assert!(
        dx.len() >= g.cg() * g.in_plane() && col.len() >= g.taps() * plane,
        "col2im: short buffers"
    );
    if plane == 0 {
        return;
    }
    for ci in 0..g.cg() {
        let dxc = &mut dx[ci * g.in_plane()..(ci + 1) * g.in_plane()];
        for p in 0..g.kh {
            let (ylo, yhi) = valid_range(g.ho, g.h, p * g.dh, g.ph, g.sh);
            for q in 0..g.kw {
                let (xlo, xhi) = valid_range(wo, g.w, q * g.dw, g.pw, g.sw);
                if xlo == xhi {
                    continue;
                }
                let r = (ci * g.kh + p) * g.kw + q;
                let row = &col[r * plane..(r + 1) * plane];
                let ix0 = xlo * g.sw + q * g.dw - g.pw;
                for i in ylo..yhi {
                    let src = &row[i * wo + xlo..i * wo + xhi];
                    let iy = i * g.sh + p * g.dh - g.ph;
                    let dxrow = &mut dxc[iy * g.w + ix0..(iy + 1) * g.w];
                    if g.sw == 1 {
                        for (d, &s) in dxrow.iter_mut().zip(src) {
                            *d += s;
                        }
                    } else {
                        for (d, &s) in dxrow.iter_mut().step_by(g.sw).zip(src) {
                            *d += s;
                        }
                    }
                }
            }
        }
    }
}

/// The forward: `y[b, oc] = bias[oc] + W_g · im2col(x[b, g])` for every batch item `b` and
/// group `g`. `x` is `[n, c, h, w]`, `w` is `[o, cg, kh, kw]`, `bias` is `[o]`, and `y`
/// (`[n, o, ho, wo]`) is overwritten.
pub fn conv2d_forward<T: Float>(g: &ConvGeom, x: &[T], w: &[T], bias: Option<&[T]>, y: &mut [T]) {
    // SAFETY: the forward writes only initialised values.
    forward_into(g, x, w, bias, unsafe { out::as_uninit(y) });
}

/// [`conv2d_forward`] into a new vector, written once: no zeroing pass before the kernel.
pub fn conv2d_forward_new<T: Float>(g: &ConvGeom, x: &[T], w: &[T], bias: Option<&[T]>) -> Vec<T> {
    let len = g.n * g.o * g.out_plane();
    // SAFETY: `forward_into` writes every element of its output.
    unsafe { out::written(len, |y| forward_into(g, x, w, bias, y)) }
}

/// The forward, writing every element of `y`: each (image, group) block is first filled
/// with its bias (or zero) while it is about to be used, then the products add into it.
fn forward_into<T: Float>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    y: &mut [MaybeUninit<T>],
) {
    let (og, taps, plane) = (g.og(), g.taps(), g.out_plane());
    assert!(
        x.len() == g.n * g.c * g.in_plane()
            && w.len() == g.o * taps
            && y.len() == g.n * g.o * plane
            && bias.is_none_or(|b| b.len() == g.o),
        "conv2d_forward: buffer sizes do not match the geometry"
    );
    if winograd::eligible(g) {
        return winograd::forward_into(g, x, w, bias, y);
    }
    let flops = 2 * y.len() * taps;
    let band = g.band_rows(std::mem::size_of::<T>());
    for_each_chunk(flops, g.o * plane, y, |b0, ys, threads| {
        let mut col = Scratch::<T>::take(if g.is_pointwise() {
            0
        } else {
            taps * band * g.wo
        });
        for (bi, yb) in ys.chunks_exact_mut(g.o * plane).enumerate() {
            let b = b0 + bi;
            for gi in 0..g.groups {
                let xs = &x[g.in_range(b, gi)];
                let yg = &mut yb[gi * og * plane..(gi + 1) * og * plane];
                let yg = out::fill_rows(yg, plane, |i| bias.map_or(T::ZERO, |b| b[gi * og + i]));
                let ws = &w[g.weight_range(gi)];
                if g.is_pointwise() {
                    gemm_on(
                        threads,
                        og,
                        taps,
                        plane,
                        ws,
                        xs,
                        yg,
                        Layout::default(),
                        true,
                    );
                    continue;
                }
                // One band of output rows at a time: its columns are written to cache and
                // read back by the product before they are evicted.
                for rows in g.bands(band) {
                    let (r0, cols) = (rows.start, rows.len() * g.wo);
                    im2col_rows(g, xs, rows, &mut col);
                    gemm_strided(
                        threads,
                        og,
                        taps,
                        cols,
                        (ws, taps),
                        &col,
                        (&mut yg[r0 * g.wo..], plane),
                        Layout::default(),
                        true,
                    );
                }
            }
        }
    });
}

/// The input gradient, added into `dx` (`[n, c, h, w]`): `dx[b, g] += col2im(W_gᵀ · gy[b, g])`.
pub fn conv2d_backward_input<T: Float>(g: &ConvGeom, gy: &[T], w: &[T], dx: &mut [T]) {
    let (og, taps, plane) = (g.og(), g.taps(), g.out_plane());
    assert!(
        gy.len() == g.n * g.o * plane
            && w.len() == g.o * taps
            && dx.len() == g.n * g.c * g.in_plane(),
        "conv2d_backward_input: buffer sizes do not match the geometry"
    );
    if winograd::eligible(g) {
        return winograd::backward_input(g, gy, w, dx);
    }
    // W_g is stored [og, taps]; read transposed it is the [taps, og] factor.
    let wt = Layout {
        a_trans: true,
        b_trans: false,
    };
    let flops = 2 * gy.len() * taps;
    let (cg, ip) = (g.cg(), g.in_plane());
    for_each_chunk(flops, g.c * ip, dx, |b0, dxs, threads| {
        let mut dcol = Scratch::<T>::take(if g.is_pointwise() { 0 } else { taps * plane });
        for (bi, dxb) in dxs.chunks_exact_mut(g.c * ip).enumerate() {
            let b = b0 + bi;
            for gi in 0..g.groups {
                let ws = &w[g.weight_range(gi)];
                let gys = &gy[g.out_range(b, gi)];
                let dxg = &mut dxb[gi * cg * ip..(gi + 1) * cg * ip];
                if g.is_pointwise() {
                    gemm_on(threads, taps, og, plane, ws, gys, dxg, wt, true);
                } else {
                    gemm_on(threads, taps, og, plane, ws, gys, &mut dcol, wt, false);
                    col2im(g, &dcol, dxg);
                }
            }
        }
    });
}

/// The weight gradient, added into `dw` (`[o, cg, kh, kw]`): `dw_g += Σ_b gy[b, g] · im2col(x[b, g])ᵀ`.
///
/// On several threads each chunk of the batch sums into a partial gradient of its own, and
/// the partials are added into `dw` in chunk order (deterministic for a given thread count).
pub fn conv2d_backward_weight<T: Float>(g: &ConvGeom, gy: &[T], x: &[T], dw: &mut [T]) {
    let (og, taps, plane) = (g.og(), g.taps(), g.out_plane());
    assert!(
        gy.len() == g.n * g.o * plane
            && x.len() == g.n * g.c * g.in_plane()
            && dw.len() == g.o * taps,
        "conv2d_backward_weight: buffer sizes do not match the geometry"
    );
    if g.n == 0 || plane == 0 || dw.is_empty() {
        return;
    }
    if winograd::eligible(g) {
        return winograd::backward_weight(g, gy, x, dw);
    }
    // The column matrix is stored [taps, plane]; read transposed it is the [plane, taps] factor.
    let colt = Layout {
        a_trans: false,
        b_trans: true,
    };
    // Sums items `items` of the batch into `acc`.
    let band = g.band_rows(std::mem::size_of::<T>());
    let sum_items = |items: std::ops::Range<usize>, acc: &mut [T], threads: usize| {
        let mut col = Scratch::<T>::take(if g.is_pointwise() {
            0
        } else {
            taps * band * g.wo
        });
        for b in items {
            for gi in 0..g.groups {
                let xs = &x[g.in_range(b, gi)];
                let gys = &gy[g.out_range(b, gi)];
                let dws = &mut acc[g.weight_range(gi)];
                if g.is_pointwise() {
                    gemm_on(threads, og, plane, taps, gys, xs, dws, colt, true);
                    continue;
                }
                // Band by band, as in the forward: dW_g += gy[:, band] · col(band)ᵀ.
                for rows in g.bands(band) {
                    let (r0, cols) = (rows.start, rows.len() * g.wo);
                    im2col_rows(g, xs, rows, &mut col);
                    gemm_strided(
                        threads,
                        og,
                        cols,
                        taps,
                        (&gys[r0 * g.wo..], plane),
                        &col,
                        (&mut *dws, taps),
                        colt,
                        true,
                    );
                }
            }
        }
    };
    sum_chunks(2 * gy.len() * taps, g.n, dw, sum_items);
}

/// The bias gradient, added into `db` (`[o]`): `db[oc] += Σ_{b, i, j} gy[b, oc, i, j]`.
pub fn conv2d_backward_bias<T: Float>(g: &ConvGeom, gy: &[T], db: &mut [T]) {
    let plane = g.out_plane();
    assert!(
        gy.len() == g.n * g.o * plane && db.len() == g.o,
        "conv2d_backward_bias: buffer sizes do not match the geometry"
    );
    if plane == 0 {
        return;
    }
    for (k, row) in gy.chunks_exact(plane).enumerate() {
        let mut s = T::ZERO;
        for &v in row {
            s += v;
        }
        db[k % g.o] += s;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a geometry the way the op does (sizes assumed valid).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn geom(
        n: usize,
        c: usize,
        (h, w): (usize, usize),
        o: usize,
        (kh, kw): (usize, usize),
        (sh, sw): (usize, usize),
        (ph, pw): (usize, usize),
        (dh, dw): (usize, usize),
        groups: usize,
    ) -> ConvGeom {
        ConvGeom {
            n,
            c,
            h,
            w,
            o,
            kh,
            kw,
            sh,
            sw,
            ph,
            pw,
            dh,
            dw,
            groups,
            ho: output_len(h, kh, sh, ph, dh).unwrap(),
            wo: output_len(w, kw, sw, pw, dw).unwrap(),
        }
    }

    /// The definition, one output element at a time: 7 nested loops, no cleverness.
    pub(crate) fn reference(g: &ConvGeom, x: &[f64], w: &[f64], bias: Option<&[f64]>) -> Vec<f64> {
        let (cg, og) = (g.c / g.groups, g.o / g.groups);
        let mut y = vec![0.0; g.n * g.o * g.ho * g.wo];
        for b in 0..g.n {
            for oc in 0..g.o {
                for i in 0..g.ho {
                    for j in 0..g.wo {
                        let mut s = bias.map_or(0.0, |bv| bv[oc]);
                        for ci in 0..cg {
                            let c = (oc / og) * cg + ci;
                            for p in 0..g.kh {
                                for q in 0..g.kw {
                                    let iy = (i * g.sh + p * g.dh) as isize - g.ph as isize;
                                    let ix = (j * g.sw + q * g.dw) as isize - g.pw as isize;
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let xv =
                                        x[((b * g.c + c) * g.h + iy as usize) * g.w + ix as usize];
                                    s += xv * w[((oc * cg + ci) * g.kh + p) * g.kw + q];
                                }
                            }
                        }
                        y[((b * g.o + oc) * g.ho + i) * g.wo + j] = s;
                    }
                }
            }
        }
        y
    }

    pub(crate) fn data(len: usize, seed: f64) -> Vec<f64> {
        (0..len).map(|i| ((i as f64 + 1.0) * seed).sin()).collect()
    }

    fn configs() -> Vec<ConvGeom> {
        vec![
            geom(1, 1, (5, 7), 1, (3, 3), (1, 1), (0, 0), (1, 1), 1),
            geom(2, 3, (5, 7), 4, (3, 3), (2, 2), (1, 1), (1, 1), 1),
            geom(1, 2, (7, 6), 3, (2, 5), (3, 1), (2, 2), (1, 2), 1),
            geom(3, 3, (4, 5), 2, (1, 1), (1, 1), (0, 0), (1, 1), 1), // pointwise path
            geom(1, 3, (4, 5), 2, (1, 1), (2, 1), (1, 0), (1, 1), 1), // 1x1, not pointwise
            geom(2, 4, (6, 5), 6, (3, 1), (1, 2), (1, 1), (2, 1), 2), // groups 2
            geom(2, 3, (5, 5), 3, (3, 3), (1, 1), (1, 1), (1, 1), 3), // depthwise
            geom(1, 2, (3, 3), 4, (3, 3), (3, 3), (2, 2), (2, 2), 2), // kernel wider than input
            geom(1, 2, (2, 3), 2, (4, 1), (1, 1), (3, 0), (1, 1), 1), // padding beyond kernel
            geom(1, 1, (1, 5), 1, (1, 3), (1, 1), (0, 1), (1, 1), 1), // 1-D
        ]
    }

    #[test]
    fn forward_matches_reference() {
        for (k, g) in configs().into_iter().enumerate() {
            let x = data(g.n * g.c * g.h * g.w, 0.37);
            let w = data(g.o * g.taps(), 0.71);
            let bias = data(g.o, 1.3);
            for with_bias in [false, true] {
                let bias = with_bias.then_some(&bias[..]);
                let mut y = vec![f64::NAN; g.n * g.o * g.out_plane()];
                conv2d_forward(&g, &x, &w, bias, &mut y);
                let r = reference(&g, &x, &w, bias);
                for (a, b) in y.iter().zip(&r) {
                    assert!((a - b).abs() < 1e-12, "config {k} {g:?}: {a} vs {b}");
                }
            }
        }
    }

    // The VJPs are the adjoints of the forward's linear maps: for every gy,
    // <conv(x, w), gy> = <x, dx(gy)> = <w, dw(gy)>, and <bias-only conv, gy> = <bias, db(gy)>.
    #[test]
    fn backward_is_the_adjoint_of_forward() {
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        for (k, g) in configs().into_iter().enumerate() {
            let x = data(g.n * g.c * g.h * g.w, 0.37);
            let w = data(g.o * g.taps(), 0.71);
            let gy = data(g.n * g.o * g.out_plane(), 0.53);
            let y = reference(&g, &x, &w, None);
            let lhs = dot(&y, &gy);
            let mut dx = vec![0.0; x.len()];
            conv2d_backward_input(&g, &gy, &w, &mut dx);
            let mut dw = vec![0.0; w.len()];
            conv2d_backward_weight(&g, &gy, &x, &mut dw);
            assert!(
                (lhs - dot(&x, &dx)).abs() < 1e-10,
                "config {k}: input adjoint"
            );
            assert!(
                (lhs - dot(&w, &dw)).abs() < 1e-10,
                "config {k}: weight adjoint"
            );
            let bias = data(g.o, 1.3);
            let yb = reference(&g, &vec![0.0; x.len()], &w, Some(&bias));
            let mut db = vec![0.0; g.o];
            conv2d_backward_bias(&g, &gy, &mut db);
            assert!(
                (dot(&yb, &gy) - dot(&bias, &db)).abs() < 1e-10,
                "config {k}: bias adjoint"
            );
        }
    }

    /// Work big enough for the pool: a batch split across threads, one item whose products
    /// run on every thread, and groups. (The small configs above stay on the caller.)
    #[test]
    fn parallel_paths_match_reference_and_adjoint() {
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        for g in [
            geom(7, 4, (12, 11), 6, (3, 3), (1, 1), (1, 1), (1, 1), 1),
            geom(1, 8, (20, 20), 8, (3, 3), (1, 1), (1, 1), (1, 1), 1),
            geom(5, 12, (25, 24), 12, (3, 2), (2, 1), (1, 0), (1, 1), 2),
            geom(9, 16, (10, 10), 16, (1, 1), (1, 1), (0, 0), (1, 1), 1), // pointwise
        ] {
            assert!(
                2 * g.n * g.o * g.out_plane() * g.taps() >= 200_000,
                "{g:?} too small"
            );
            let x = data(g.n * g.c * g.h * g.w, 0.37);
            let w = data(g.o * g.taps(), 0.71);
            let bias = data(g.o, 1.3);
            let mut y = vec![f64::NAN; g.n * g.o * g.out_plane()];
            conv2d_forward(&g, &x, &w, Some(&bias), &mut y);
            let r = reference(&g, &x, &w, Some(&bias));
            for (a, b) in y.iter().zip(&r) {
                assert!((a - b).abs() < 1e-11, "{g:?}: {a} vs {b}");
            }
            let gy = data(y.len(), 0.53);
            let lhs = dot(&reference(&g, &x, &w, None), &gy);
            let mut dx = vec![0.0; x.len()];
            conv2d_backward_input(&g, &gy, &w, &mut dx);
            let mut dw = vec![0.0; w.len()];
            conv2d_backward_weight(&g, &gy, &x, &mut dw);
            assert!(
                (lhs - dot(&x, &dx)).abs() < 1e-9 * lhs.abs().max(1.0),
                "{g:?}: dx"
            );
            assert!(
                (lhs - dot(&w, &dw)).abs() < 1e-9 * lhs.abs().max(1.0),
                "{g:?}: dw"
            );
            // The same thread count gives the same bits.
            let mut dw2 = vec![0.0; w.len()];
            conv2d_backward_weight(&g, &gy, &x, &mut dw2);
            assert_eq!(dw, dw2);
        }
    }

    /// The stride-1 path of `im2col_rows` against the general one, for every band of one,
    /// two and all rows: paddings from none to past the kernel, kernels wider than the input.
    #[test]
    fn dense_im2col_matches_the_general_one_on_every_band() {
        for g in [
            geom(2, 3, (7, 6), 2, (3, 3), (1, 1), (1, 1), (1, 1), 1),
            geom(1, 2, (6, 9), 1, (5, 2), (1, 1), (2, 0), (1, 1), 1),
            geom(1, 1, (4, 5), 1, (3, 5), (1, 1), (0, 2), (1, 1), 1),
            geom(1, 2, (3, 3), 1, (4, 4), (1, 1), (3, 3), (1, 1), 1),
            geom(1, 4, (5, 5), 2, (3, 3), (1, 1), (1, 1), (1, 1), 2),
        ] {
            let x = data(g.cg() * g.in_plane(), 0.37);
            for band in [1, 2, g.ho] {
                for rows in g.bands(band) {
                    let len = g.taps() * rows.len() * g.wo;
                    let (mut a, mut b) = (vec![f64::NAN; len], vec![f64::NAN; len]);
                    im2col_rows_dense(&g, &x, rows.clone(), &mut a);
                    im2col_rows_general(&g, &x, rows.clone(), &mut b);
                    assert_eq!(a, b, "{g:?} rows {rows:?}");
                }
            }
        }
    }

    #[test]
    fn col2im_of_ones_counts_taps() {
        // Each input element receives one count per (output position, tap) that reads it.
        let g = geom(1, 1, (1, 5), 1, (1, 3), (1, 1), (0, 1), (1, 1), 1);
        let col = vec![1.0; g.taps() * g.out_plane()];
        let mut dx = vec![0.0; 5];
        col2im(&g, &col, &mut dx);
        assert_eq!(dx, vec![2.0, 3.0, 3.0, 3.0, 2.0]);
    }

    #[test]
    fn output_len_formula() {
        assert_eq!(output_len(5, 3, 1, 0, 1), Some(3));
        assert_eq!(output_len(7, 3, 2, 1, 1), Some(4));
        assert_eq!(output_len(7, 3, 1, 0, 2), Some(3));
        assert_eq!(output_len(2, 3, 1, 0, 1), None);
        assert_eq!(output_len(2, 3, 1, 1, 1), Some(2));
        assert_eq!(output_len(5, 0, 1, 0, 1), None);
        assert_eq!(output_len(5, 3, 0, 0, 1), None);
        assert_eq!(output_len(5, 3, 1, usize::MAX, 1), None);
    }
}
