//! Convolution by unfolding: im2col (and its adjoint col2im) in bands of output rows that fit
//! in L2, each band multiplied by the weights with the GEMM.

use std::mem::MaybeUninit;

use super::ConvGeom;
use super::phases::{merge_phases_add, split_phases};
use crate::float::Float;
use crate::kernels::gemm::{MatMut, MatRef, gemm_on};
use crate::kernels::out;
use crate::runtime::scratch::Scratch;
use crate::runtime::simd::copy_run;
use crate::runtime::threads::{SharedOut, for_each_chunk, sum_chunks};

/// The fewest columns a band of the column matrix has, where the plane has that many
/// (see [`forward`], [`backward_weight`]). Measured on an AMD EPYC Zen 4 (AVX-512, 2
/// threads): ResNet-18's 3×3 layers on 28×28 to 7×7 planes at batch 1, 13-25% less time
/// forward and 10-20% forward and backward than with bands of 2 or 3 rows.
const MIN_COLS: usize = 192;

/// Planes of fewer output positions than `BATCH_BELOW` are multiplied several images at a
/// time, their columns side by side, about `BATCH_COLS` columns to a product (see
/// [`images_per_product`]).
const BATCH_BELOW: usize = 256;
const BATCH_COLS: usize = 512;

/// How many images' columns one product takes. One 7×7 plane alone is a product one
/// register tile and one column wide (49 columns against tiles of 48), and the weights were
/// packed again for each image: ResNet-18's 3×3 stride-2 layer onto 7×7 planes at batch 32
/// took 0.74-0.81x its time forward, 0.79-0.83x forward and backward, 1×1 layers on 7×7 and
/// 14×14 planes 0.73-0.97x and 0.77-0.93x (AMD EPYC Zen 4, 2 threads). From 16×16 planes
/// on (256 columns), two images' folded input gradient no longer fits in L2: a 4×4
/// stride-2 transposed convolution's forward took 1.05x.
fn images_per_product(g: &ConvGeom) -> usize {
    match g.out_plane() {
        p if p < BATCH_BELOW => BATCH_COLS.div_ceil(p.max(1)),
        _ => 1,
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

/// Unfolds the output rows `rows` of one (batch item, group) input slice `x` (`[cg, h, w]`)
/// into `col` (`[cg·kh·kw, rows.len()·wo]`, the columns of those rows only, so that a band of
/// the column matrix can stay in cache; its rows `ld` apart, so that several images' columns
/// can sit side by side): `col[(ci, p, q), (i, j)] = x[ci, i·sh + p·dh − ph, j·sw + q·dw −
/// pw]`, zero where that falls in the padding.
pub fn im2col_rows<T: Float>(
    g: &ConvGeom,
    x: &[T],
    rows: std::ops::Range<usize>,
    col: &mut [T],
    ld: usize,
) {
    let wo = g.wo;
    let plane = rows.len() * wo;
    assert!(
        rows.end <= g.ho
            && x.len() >= g.cg() * g.in_plane()
            && ld >= plane
            && col.len() >= (g.taps().max(1) - 1) * ld + plane,
        "im2col: short buffers"
    );
    if plane == 0 {
        return;
    }
    if g.win.kh == 1 && g.win.kw == 1 && g.win.ph == 0 && g.win.pw == 0 {
        im2col_rows_subsample(g, x, rows, col, ld);
    } else if g.win.sh == 1 && g.win.sw == 1 && g.win.dh == 1 && g.win.dw == 1 {
        im2col_rows_dense(g, x, rows, col, ld);
    } else if g.win.sh <= 4 && g.win.sw <= 4 {
        im2col_rows_strided(g, x, rows, col, ld);
    } else {
        // Strides past 4 would make the block mostly rows and columns no window reads.
        im2col_rows_general(g, x, rows, col, ld);
    }
}

/// [`im2col_rows`] for a 1×1 kernel without padding (a strided shortcut of a residual
/// network): the column matrix is the input subsampled, `col[ci, (i, j)] = x[ci, i·sh,
/// j·sw]`, gathered straight from the rows it reads. (Through the padded block, every
/// input row was copied to read one in `sh`: the unfolding was half of such a layer's
/// forward.)
pub(super) fn im2col_rows_subsample<T: Float>(
    g: &ConvGeom,
    x: &[T],
    rows: std::ops::Range<usize>,
    col: &mut [T],
    ld: usize,
) {
    let (w, wo) = (&g.win, g.wo);
    let plane = rows.len() * wo;
    for ci in 0..g.cg() {
        let dst = &mut col[ci * ld..ci * ld + plane];
        let xc = &x[ci * g.in_plane()..(ci + 1) * g.in_plane()];
        for (i, seg) in dst.chunks_exact_mut(wo).enumerate() {
            let row = &xc[(rows.start + i) * w.sh * g.w..][..g.w];
            if w.sw == 1 {
                copy_run(seg, &row[..wo]);
            } else {
                for (d, &v) in seg.iter_mut().zip(row.iter().step_by(w.sw)) {
                    *d = v;
                }
            }
        }
    }
}

/// [`im2col_rows`] for any stride and dilation, as [`im2col_rows_dense`] does it: each
/// channel's input rows under the band copied once into a zero-margined block, then every
/// run of the column matrix a whole copy out of it, with no bounds to work out and no
/// padding to fill. Each block row is stored split by column phase (the columns `≡ 0`
/// modulo the stride first, then `≡ 1`, ...), so that the strided columns a run reads are
/// contiguous there. (For a stride-2 3×3 layer on 7-wide outputs, the per-run bounds and
/// fills of the general path made the unfolding a third of a transposed convolution's
/// forward and backward.)
pub(super) fn im2col_rows_strided<T: Float>(
    g: &ConvGeom,
    x: &[T],
    rows: std::ops::Range<usize>,
    col: &mut [T],
    ld: usize,
) {
    let w = &g.win;
    let wo = g.wo;
    let plane = rows.len() * wo;
    // Padded row `a` is input row `rows.start · sh + a − ph`; padded column `b` is input
    // column `b − pw`, stored at phase `b % sw`, position `b / sw`. The block is as wide as
    // the windows reach (`wp`), which may be less than the padded input.
    let wp = (wo - 1) * w.sw + (w.kw - 1) * w.dw + 1;
    let lp = wp.div_ceil(w.sw);
    let stride_row = lp * w.sw;
    let hp = (rows.len() - 1) * w.sh + (w.kh - 1) * w.dh + 1;
    let mut block = Scratch::<T>::take(hp * stride_row);
    block.fill(T::ZERO);
    let cols = w.pw.min(wp)..(w.pw + g.w).min(wp);
    for ci in 0..g.cg() {
        let xc = &x[ci * g.in_plane()..(ci + 1) * g.in_plane()];
        for a in 0..hp {
            let iy = (rows.start * w.sh + a).wrapping_sub(w.ph);
            if iy >= g.h {
                continue;
            }
            let (xrow, brow) = (
                &xc[iy * g.w..(iy + 1) * g.w],
                &mut block[a * stride_row..(a + 1) * stride_row],
            );
            if w.sw == 1 {
                copy_run(&mut brow[cols.clone()], &xrow[..cols.len()]);
            } else if w.sw == 2 {
                // Both phases in one vectorised pass: padded column `s` lands at phase
                // `s % 2`, position `s / 2`, and the next one in the other phase.
                let seg = &xrow[cols.start - w.pw..cols.end - w.pw];
                let (p0, p1) = brow.split_at_mut(lp);
                let (s, ne, no) = (cols.start, seg.len().div_ceil(2), seg.len() / 2);
                let (even, odd) = if s % 2 == 0 {
                    (&mut p0[s / 2..s / 2 + ne], &mut p1[s / 2..s / 2 + no])
                } else {
                    (
                        &mut p1[s / 2..s / 2 + ne],
                        &mut p0[s.div_ceil(2)..s.div_ceil(2) + no],
                    )
                };
                split_phases(seg, even, odd);
            } else {
                // Phase by phase: the columns `≡ φ` modulo the stride, one after another
                // (no division per element).
                for phase in 0..w.sw {
                    let first = cols.start + (phase + w.sw - cols.start % w.sw) % w.sw;
                    let at = phase * lp + first / w.sw;
                    let src = xrow[first.min(cols.end) - w.pw..cols.end - w.pw].iter();
                    for (d, &v) in brow[at..].iter_mut().zip(src.step_by(w.sw)) {
                        *d = v;
                    }
                }
            }
        }
        for p in 0..w.kh {
            for q in 0..w.kw {
                let r = (ci * w.kh + p) * w.kw + q;
                let row = &mut col[r * ld..r * ld + plane];
                let b0 = q * w.dw;
                let start = (b0 % w.sw) * lp + b0 / w.sw;
                for (i, seg) in row.chunks_exact_mut(wo).enumerate() {
                    let at = (i * w.sh + p * w.dh) * stride_row + start;
                    copy_run(seg, &block[at..at + wo]);
                }
            }
        }
    }
}

/// [`im2col_rows`] for any stride and dilation: the valid part of every run copied, the rest
/// zeroed.
pub(super) fn im2col_rows_general<T: Float>(
    g: &ConvGeom,
    x: &[T],
    rows: std::ops::Range<usize>,
    col: &mut [T],
    ld: usize,
) {
    let wo = g.wo;
    let plane = rows.len() * wo;
    for ci in 0..g.cg() {
        let xc = &x[ci * g.in_plane()..(ci + 1) * g.in_plane()];
        for p in 0..g.win.kh {
            let (ylo, yhi) = valid_range(g.ho, g.h, p * g.win.dh, g.win.ph, g.win.sh);
            // The valid rows of this band, counted from its first row.
            let ylo = ylo.clamp(rows.start, rows.end) - rows.start;
            let yhi = yhi.clamp(rows.start, rows.end) - rows.start;
            let yhi = yhi.max(ylo);
            for q in 0..g.win.kw {
                let (xlo, xhi) = valid_range(wo, g.w, q * g.win.dw, g.win.pw, g.win.sw);
                let r = (ci * g.win.kh + p) * g.win.kw + q;
                let row = &mut col[r * ld..r * ld + plane];
                row[..ylo * wo].fill(T::ZERO);
                row[yhi * wo..].fill(T::ZERO);
                for i in ylo..yhi {
                    let seg = &mut row[i * wo..(i + 1) * wo];
                    seg[..xlo].fill(T::ZERO);
                    seg[xhi..].fill(T::ZERO);
                    if xlo == xhi {
                        continue;
                    }
                    let iy = (rows.start + i) * g.win.sh + p * g.win.dh - g.win.ph;
                    let ix0 = xlo * g.win.sw + q * g.win.dw - g.win.pw;
                    let xrow = &xc[iy * g.w + ix0..(iy + 1) * g.w];
                    let dst = &mut seg[xlo..xhi];
                    if g.win.sw == 1 {
                        dst.copy_from_slice(&xrow[..dst.len()]);
                    } else {
                        for (d, &s) in dst.iter_mut().zip(xrow.iter().step_by(g.win.sw)) {
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
pub(super) fn im2col_rows_dense<T: Float>(
    g: &ConvGeom,
    x: &[T],
    rows: std::ops::Range<usize>,
    col: &mut [T],
    ld: usize,
) {
    let (wo, wp) = (g.wo, g.w + 2 * g.win.pw);
    let plane = rows.len() * wo;
    let hp = rows.len() + g.win.kh - 1;
    let mut padded = Scratch::<T>::take(hp * wp);
    padded.fill(T::ZERO);
    for ci in 0..g.cg() {
        let xc = &x[ci * g.in_plane()..(ci + 1) * g.in_plane()];
        // Padded row `rows.start + a` is input row `rows.start + a − ph`.
        for a in 0..hp {
            let iy = (rows.start + a).wrapping_sub(g.win.ph);
            if iy < g.h {
                copy_run(
                    &mut padded[a * wp + g.win.pw..a * wp + g.win.pw + g.w],
                    &xc[iy * g.w..(iy + 1) * g.w],
                );
            }
        }
        for p in 0..g.win.kh {
            for q in 0..g.win.kw {
                let r = (ci * g.win.kh + p) * g.win.kw + q;
                let row = &mut col[r * ld..r * ld + plane];
                for (i, seg) in row.chunks_exact_mut(wo).enumerate() {
                    let at = (i + p) * wp + q;
                    copy_run(seg, &padded[at..at + wo]);
                }
            }
        }
    }
}

/// The adjoint of unfolding all rows ([`im2col_rows`] over `0..ho`): adds each entry of
/// `col` (`[cg·kh·kw, ho·wo]`, rows `ld` apart) into the input position it was read from in
/// `dx` (`[cg, h, w]`); entries that came from the padding are dropped.
pub fn col2im<T: Float>(g: &ConvGeom, col: &[T], ld: usize, dx: &mut [T]) {
    let plane = g.out_plane();
    assert!(
        dx.len() >= g.cg() * g.in_plane()
            && ld >= plane
            && col.len() >= (g.taps().max(1) - 1) * ld + plane,
        "col2im: short buffers"
    );
    if plane == 0 {
        return;
    }
    // Input column `x` is stored at phase `x % sw`, position `x / sw` of its row: at stride
    // 1 that is `dx`'s own layout, and the taps add straight into it. At a larger stride
    // each channel's sums are gathered in a block of that layout, so that every tap adds a
    // contiguous run, and the block is added into `dx` once. (Adding each tap's run at
    // stride 2 straight into `dx` was a fifth of a 4×4 stride-2 transposed convolution's
    // forward.)
    let sw = g.win.sw;
    let lp = g.w.div_ceil(sw);
    let mut block = Scratch::<T>::take(if sw > 1 { g.h * lp * sw } else { 0 });
    for ci in 0..g.cg() {
        let dxc = &mut dx[ci * g.in_plane()..(ci + 1) * g.in_plane()];
        if sw == 1 {
            add_taps(g, col, ld, ci, lp, dxc);
            continue;
        }
        block.fill(T::ZERO);
        add_taps(g, col, ld, ci, lp, &mut block);
        for (dxrow, brow) in dxc.chunks_exact_mut(g.w).zip(block.chunks_exact(lp * sw)) {
            if sw == 2 {
                // One pass over both phases, whole vectors (strided adds, phase by phase,
                // were a tenth of a 3×3 stride-2 transposed convolution's forward).
                let (even, odd) = brow.split_at(lp);
                merge_phases_add(dxrow, &even[..g.w.div_ceil(2)], &odd[..g.w / 2]);
                continue;
            }
            for phase in 0..sw.min(g.w) {
                let src = &brow[phase * lp..(phase + 1) * lp];
                for (d, &s) in dxrow[phase..].iter_mut().step_by(sw).zip(src) {
                    *d += s;
                }
            }
        }
    }
}

/// Adds channel `ci`'s rows of `col` into `dst`, an `h`-row plane whose rows hold the input
/// columns split by phase, `lp` of each (see [`col2im`]).
fn add_taps<T: Float>(g: &ConvGeom, col: &[T], ld: usize, ci: usize, lp: usize, dst: &mut [T]) {
    let (w, wo) = (&g.win, g.wo);
    let stride_row = lp * w.sw;
    for p in 0..w.kh {
        let (ylo, yhi) = valid_range(g.ho, g.h, p * w.dh, w.ph, w.sh);
        for q in 0..w.kw {
            let (xlo, xhi) = valid_range(wo, g.w, q * w.dw, w.pw, w.sw);
            if xlo == xhi {
                continue;
            }
            let r = (ci * w.kh + p) * w.kw + q;
            let row = &col[r * ld..r * ld + g.out_plane()];
            let ix0 = xlo * w.sw + q * w.dw - w.pw;
            let at = (ix0 % w.sw) * lp + ix0 / w.sw;
            for i in ylo..yhi {
                let src = &row[i * wo + xlo..i * wo + xhi];
                let iy = i * w.sh + p * w.dh - w.ph;
                let d = &mut dst[iy * stride_row + at..][..src.len()];
                for (d, &s) in d.iter_mut().zip(src) {
                    *d += s;
                }
            }
        }
    }
}

/// The forward by unfolding: `y[b, g] = bias + W_g · im2col(x[b, g])`, band by band of
/// output rows, every element of `y` written.
pub(super) fn forward<T: Float>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    y: &mut [MaybeUninit<T>],
) {
    let (og, taps, plane) = (g.og(), g.taps(), g.out_plane());
    let flops = 2 * y.len() * taps;
    // Bands of at least MIN_COLS columns: with many taps the L2 share alone gave bands of
    // two rows of a 14- or 7-wide plane, products a fraction of one register tile wide.
    let band = g.band_rows(std::mem::size_of::<T>(), MIN_COLS);
    for_each_chunk(flops, g.o * plane, y, |b0, ys, threads| {
        let (per, count) = (images_per_product(g), ys.len() / (g.o * plane));
        if per > 1 && count > 1 {
            return forward_images(g, x, w, bias, b0, ys, per.min(count), threads);
        }
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
                    let (wm, xm) = (MatRef::new(ws, og, taps), MatRef::new(xs, taps, plane));
                    gemm_on(threads, wm, xm, MatMut::new(yg, og, plane), true);
                    continue;
                }
                if threads > 1 && g.ho.div_ceil(band) >= 2 * threads {
                    bands_in_parallel(g, xs, ws, yg, band);
                    continue;
                }
                // One band of output rows at a time: its columns are written to cache and
                // read back by the product before they are evicted.
                for rows in g.bands(band) {
                    let (r0, cols) = (rows.start, rows.len() * g.wo);
                    im2col_rows(g, xs, rows, &mut col, cols);
                    let y = MatMut::new(&mut yg[r0 * g.wo..], og, cols).ld(plane);
                    let (wm, cm) = (MatRef::new(ws, og, taps), MatRef::new(&col, taps, cols));
                    gemm_on(threads, wm, cm, y, true);
                }
            }
        }
    });
}

/// The forward of the images `b0..` whose outputs are `ys`, `per` images to a product: their
/// columns side by side, the product written out to each image with its bias.
#[allow(clippy::too_many_arguments)]
fn forward_images<T: Float>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    b0: usize,
    ys: &mut [MaybeUninit<T>],
    per: usize,
    threads: usize,
) {
    let (og, taps, plane) = (g.og(), g.taps(), g.out_plane());
    let mut col = Scratch::<T>::take(taps * per * plane);
    let mut prod = Scratch::<T>::take(og * per * plane);
    let count = ys.len() / (g.o * plane);
    for j0 in (0..count).step_by(per) {
        let k = per.min(count - j0);
        let cols = k * plane;
        for gi in 0..g.groups {
            unfold_images(g, x, b0 + j0, k, gi, &mut col);
            let (wm, cm) = (
                MatRef::new(&w[g.weight_range(gi)], og, taps),
                MatRef::new(&col[..taps * cols], taps, cols),
            );
            gemm_on(
                threads,
                wm,
                cm,
                MatMut::new(&mut prod[..og * cols], og, cols),
                false,
            );
            for j in 0..k {
                let yg = &mut ys[((j0 + j) * g.o + gi * og) * plane..][..og * plane];
                let rows = yg.chunks_exact_mut(plane).zip(prod.chunks_exact(cols));
                for (oc, (dst, src)) in rows.enumerate() {
                    let b = bias.map_or(T::ZERO, |b| b[gi * og + oc]);
                    for (d, &v) in dst.iter_mut().zip(&src[j * plane..(j + 1) * plane]) {
                        d.write(v + b);
                    }
                }
            }
        }
    }
}

/// The bands of one (image, group) output `y` (`[og, plane]`, initialised) split between
/// the threads of the pool, each band unfolded and multiplied on one thread and its product
/// added into `y`: for fewer images than threads. Splitting each band's product instead left
/// the unfolding on one thread while the other waited, and cut products of a few hundred
/// columns into halves, with a fork and a join per band (ResNet-18's 3×3 layers at batch 1
/// ran at a third of the multiply-add peak so).
fn bands_in_parallel<T: Float>(g: &ConvGeom, xs: &[T], ws: &[T], y: &mut [T], band: usize) {
    use rayon::prelude::*;
    let (og, taps, plane, wo) = (g.og(), g.taps(), g.out_plane(), g.wo);
    assert_eq!(y.len(), og * plane, "conv2d_forward: output block");
    // Each band writes only its own columns of every row.
    let out = SharedOut(y.as_mut_ptr());
    (0..g.ho.div_ceil(band)).into_par_iter().for_each(|i| {
        let rows = i * band..((i + 1) * band).min(g.ho);
        let (r0, cols) = (rows.start, rows.len() * wo);
        let mut col = Scratch::<T>::take(taps * cols);
        let mut prod = Scratch::<T>::take(og * cols);
        im2col_rows(g, xs, rows, &mut col, cols);
        let (wm, cm) = (MatRef::new(ws, og, taps), MatRef::new(&col, taps, cols));
        gemm_on(1, wm, cm, MatMut::new(&mut prod, og, cols), false);
        for (oc, p) in prod.chunks_exact(cols).enumerate() {
            // SAFETY: row oc's columns r0·wo .. r0·wo + cols lie inside `y` (og · plane
            // elements) and belong to this band alone; `y` is not otherwise used meanwhile.
            let dst = unsafe { out.get().add(oc * plane + r0 * wo) };
            for (j, &v) in p.iter().enumerate() {
                // SAFETY: as above.
                unsafe { *dst.add(j) += v };
            }
        }
    });
}

/// The input gradient by folding: `dx[b, g] += col2im(W_gᵀ · gy[b, g])`.
pub(super) fn backward_input<T: Float>(g: &ConvGeom, gy: &[T], w: &[T], dx: &mut [T]) {
    let (og, taps, plane) = (g.og(), g.taps(), g.out_plane());
    let flops = 2 * gy.len() * taps;
    let (cg, ip) = (g.cg(), g.in_plane());
    for_each_chunk(flops, g.c * ip, dx, |b0, dxs, threads| {
        let (per, count) = (images_per_product(g), dxs.len() / (g.c * ip));
        if per > 1 && count > 1 {
            return backward_input_images(g, gy, w, b0, dxs, per.min(count), threads);
        }
        let mut dcol = Scratch::<T>::take(if g.is_pointwise() { 0 } else { taps * plane });
        for (bi, dxb) in dxs.chunks_exact_mut(g.c * ip).enumerate() {
            let b = b0 + bi;
            for gi in 0..g.groups {
                let ws = &w[g.weight_range(gi)];
                let gys = &gy[g.out_range(b, gi)];
                let dxg = &mut dxb[gi * cg * ip..(gi + 1) * cg * ip];
                // W_g is stored [og, taps]; read transposed it is the [taps, og] factor.
                let (wt, gm) = (
                    MatRef::transposed(ws, taps, og),
                    MatRef::new(gys, og, plane),
                );
                if g.is_pointwise() {
                    gemm_on(threads, wt, gm, MatMut::new(dxg, taps, plane), true);
                } else {
                    gemm_on(threads, wt, gm, MatMut::new(&mut dcol, taps, plane), false);
                    col2im(g, &dcol, plane, dxg);
                }
            }
        }
    });
}

/// Unfolds group `gi` of the `k` images from `b0` into `col` (`[taps, k·plane]`): their
/// column matrices side by side.
fn unfold_images<T: Float>(g: &ConvGeom, x: &[T], b0: usize, k: usize, gi: usize, col: &mut [T]) {
    let (plane, cols) = (g.out_plane(), k * g.out_plane());
    for j in 0..k {
        let xs = &x[g.in_range(b0 + j, gi)];
        im2col_rows(g, xs, 0..g.ho, &mut col[j * plane..], cols);
    }
}

/// Copies group `gi`'s output gradient of the `k` images from `b0` into `dst` (`[og,
/// k·plane]`): their planes side by side, as [`forward_images`] lays out their columns.
fn gather_outputs<T: Float>(g: &ConvGeom, gy: &[T], b0: usize, k: usize, gi: usize, dst: &mut [T]) {
    let (og, plane) = (g.og(), g.out_plane());
    for j in 0..k {
        let src = &gy[g.out_range(b0 + j, gi)];
        for oc in 0..og {
            let at = (oc * k + j) * plane;
            copy_run(&mut dst[at..at + plane], &src[oc * plane..(oc + 1) * plane]);
        }
    }
}

/// The input gradient of the images `b0..` whose gradients are `dxs`, `per` images to a
/// product (see [`images_per_product`]), each image's part of the product folded back.
#[allow(clippy::too_many_arguments)]
fn backward_input_images<T: Float>(
    g: &ConvGeom,
    gy: &[T],
    w: &[T],
    b0: usize,
    dxs: &mut [T],
    per: usize,
    threads: usize,
) {
    let (og, taps, plane, cg, ip) = (g.og(), g.taps(), g.out_plane(), g.cg(), g.in_plane());
    let mut gyb = Scratch::<T>::take(og * per * plane);
    let mut dcol = Scratch::<T>::take(taps * per * plane);
    let count = dxs.len() / (g.c * ip);
    for j0 in (0..count).step_by(per) {
        let k = per.min(count - j0);
        let cols = k * plane;
        for gi in 0..g.groups {
            gather_outputs(g, gy, b0 + j0, k, gi, &mut gyb);
            // W_g is stored [og, taps]; read transposed it is the [taps, og] factor.
            let (wt, gm) = (
                MatRef::transposed(&w[g.weight_range(gi)], taps, og),
                MatRef::new(&gyb[..og * cols], og, cols),
            );
            gemm_on(
                threads,
                wt,
                gm,
                MatMut::new(&mut dcol[..taps * cols], taps, cols),
                false,
            );
            for j in 0..k {
                let dxg = &mut dxs[((j0 + j) * g.c + gi * cg) * ip..][..cg * ip];
                col2im(g, &dcol[j * plane..], cols, dxg);
            }
        }
    }
}

/// The weight gradient of the images `items`, `per` images to a product (see
/// [`images_per_product`]), added into `acc`.
fn backward_weight_images<T: Float>(
    g: &ConvGeom,
    gy: &[T],
    x: &[T],
    items: std::ops::Range<usize>,
    acc: &mut [T],
    per: usize,
    threads: usize,
) {
    let (og, taps, plane) = (g.og(), g.taps(), g.out_plane());
    let mut gyb = Scratch::<T>::take(og * per * plane);
    let mut col = Scratch::<T>::take(taps * per * plane);
    for j0 in items.clone().step_by(per) {
        let k = per.min(items.end - j0);
        let cols = k * plane;
        for gi in 0..g.groups {
            gather_outputs(g, gy, j0, k, gi, &mut gyb);
            unfold_images(g, x, j0, k, gi, &mut col);
            // The columns are stored [taps, cols]: read transposed.
            let (gm, ct) = (
                MatRef::new(&gyb[..og * cols], og, cols),
                MatRef::transposed(&col[..taps * cols], cols, taps),
            );
            let dws = &mut acc[g.weight_range(gi)];
            gemm_on(threads, gm, ct, MatMut::new(dws, og, taps), true);
        }
    }
}

/// The weight gradient by unfolding: `dw_g += Σ_b gy[b, g] · im2col(x[b, g])ᵀ`, summed over
/// chunks of the batch in a fixed order.
pub(super) fn backward_weight<T: Float>(g: &ConvGeom, gy: &[T], x: &[T], dw: &mut [T]) {
    let (og, taps, plane) = (g.og(), g.taps(), g.out_plane());
    // Sums items `items` of the batch into `acc`.
    let sum_items = |items: std::ops::Range<usize>, acc: &mut [T], threads: usize| {
        let per = images_per_product(g);
        if per > 1 && items.len() > 1 {
            let per = per.min(items.len());
            return backward_weight_images(g, gy, x, items, acc, per, threads);
        }
        // A band's product split between threads (fewer images than threads) is a fork
        // and a join: there, bands of at least MIN_COLS columns, so that there are fewer.
        let min_cols = if threads > 1 { MIN_COLS } else { 0 };
        let band = g.band_rows(std::mem::size_of::<T>(), min_cols);
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
                    // x is stored [taps, plane]; read transposed it is the [plane, taps] factor.
                    let (gm, xt) = (
                        MatRef::new(gys, og, plane),
                        MatRef::transposed(xs, plane, taps),
                    );
                    gemm_on(threads, gm, xt, MatMut::new(dws, og, taps), true);
                    continue;
                }
                // Band by band, as in the forward: dW_g += gy[:, band] · col(band)ᵀ.
                for rows in g.bands(band) {
                    let (r0, cols) = (rows.start, rows.len() * g.wo);
                    im2col_rows(g, xs, rows, &mut col, cols);
                    // The band's columns are stored [taps, cols]: read transposed.
                    let gm = MatRef::new(&gys[r0 * g.wo..], og, cols).ld(plane);
                    let ct = MatRef::transposed(&col, cols, taps);
                    gemm_on(threads, gm, ct, MatMut::new(&mut *dws, og, taps), true);
                }
            }
        }
    };
    sum_chunks(2 * gy.len() * taps, g.n, dw, sum_items);
}
