//! 2-D max and average pooling over contiguous `[planes, H, W]` buffers (an NCHW tensor
//! seen as `N·C` planes), forward and backward.
//!
//! Every loop works per plane with the window's in-range taps worked out once per output
//! row and column, so the inner loops carry no bounds tests and allocate nothing.

use rayon::prelude::*;

use crate::float::Float;
use crate::kernels::window::Window;
use crate::runtime::simd::tiers;
use crate::runtime::threads::for_each_chunk;

/// All the sizes of one pooling: the planes, the input and output extents, and per axis the
/// kernel, stride, padding and dilation (height first). The op validates them; the kernels
/// assume `oh, ow ≥ 1`, `kh, kw, sh, sw, dh, dw ≥ 1` and buffers of the sizes implied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    /// Number of planes, `N · C`.
    pub planes: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Output height.
    pub oh: usize,
    /// Output width.
    pub ow: usize,
    /// The window's size, stride, padding and dilation (dilation 1 for average pooling).
    pub win: Window,
}

impl PoolGeom {
    /// Elements in one input plane, `h · w`.
    pub fn in_plane(&self) -> usize {
        self.h * self.w
    }

    /// Elements in one output plane, `oh · ow`.
    pub fn out_plane(&self) -> usize {
        self.oh * self.ow
    }

    /// True when the windows tile the input: kernel equal to stride, no padding, no
    /// dilation, every window wholly inside. Each input cell is then in at most one window,
    /// which the one-pass max-pooling kernels rely on.
    pub fn is_tiling(&self) -> bool {
        self.win.kh == self.win.sh
            && self.win.kw == self.win.sw
            && (self.win.ph, self.win.pw, self.win.dh, self.win.dw) == (0, 0, 1, 1)
            && self.oh * self.win.kh <= self.h
            && self.ow * self.win.kw <= self.w
    }
}

/// The larger of `a` and `b`, NaN if either is NaN: the value of a window's maximum under
/// the rule of [`max_pool2d_forward`]. Non-short-circuit `|` keeps it a select the compiler
/// can vectorise: on real data the comparison is a coin toss a branch would lose. The
/// `maximum` op keeps its elements by this rule too.
#[inline(always)]
pub(crate) fn nan_max<T: Float>(a: T, b: T) -> T {
    if (b > a) | b.is_nan() { b } else { a }
}

/// The first maximum of one window in row-major order, NaN winning over any number (the
/// rule of [`max_pool2d_forward`]): its value and its flat index in the plane.
#[inline(always)]
fn window_max<T: Float>(xp: &[T], base: usize, w: usize, kh: usize, kw: usize) -> (T, usize) {
    let mut m = xp[base];
    for jy in 0..kh {
        for jx in 0..kw {
            m = nan_max(m, xp[base + jy * w + jx]);
        }
    }
    // The first cell holding that value (or the first NaN): a backward scan of integer
    // selects, which compile to conditional moves instead of unpredictable branches.
    let m_nan = m.is_nan();
    let mut at = base;
    for jy in (0..kh).rev() {
        for jx in (0..kw).rev() {
            let i = base + jy * w + jx;
            let v = xp[i];
            if (v == m) | (m_nan & v.is_nan()) {
                at = i;
            }
        }
    }
    (m, at)
}

tiers! {
/// One plane of tiled max pooling, values only, compiled for the tier in use.
fn tiled_plane<T: Float>(xp: &[T], yp: &mut [T], g: &PoolGeom) {
    let (kh, kw, w) = (g.win.kh, g.win.kw, g.w);
    for (oy, yrow) in yp.chunks_exact_mut(g.ow).enumerate() {
        let rows = &xp[oy * kh * w..(oy + 1) * kh * w];
        if (kh, kw) == (2, 2) {
            // Whole-row slices and no index arithmetic: this loop vectorises.
            let (r0, r1) = rows.split_at(w);
            let cells = r0.chunks_exact(2).zip(r1.chunks_exact(2));
            for (yv, (a, b)) in yrow.iter_mut().zip(cells) {
                *yv = nan_max(nan_max(a[0], a[1]), nan_max(b[0], b[1]));
            }
        } else {
            for (ox, yv) in yrow.iter_mut().enumerate() {
                *yv = window_max(xp, oy * kh * w + ox * kw, w, kh, kw).0;
            }
        }
    }
}
}

/// One row of 2x2 windows of the tiled backward, given their maxima `m` (the forward's
/// output, none NaN): each cell gets `gy` if it is the window's first maximum, else 0.
/// Compares and selects only, so the loop vectorises.
#[inline(always)]
fn tiled_row_2x2<T: Float>(r0: &[T], r1: &[T], m: &[T], gy: &[T], d0: &mut [T], d1: &mut [T]) {
    let n = m.len();
    let (r0, r1, gy) = (&r0[..2 * n], &r1[..2 * n], &gy[..n]);
    let (d0, d1) = (&mut d0[..2 * n], &mut d1[..2 * n]);
    for j in 0..n {
        let (mv, gv) = (m[j], gy[j]);
        let e0 = r0[2 * j] == mv;
        let e1 = !e0 & (r0[2 * j + 1] == mv);
        let e2 = !e0 & !e1 & (r1[2 * j] == mv);
        let e3 = !e0 & !e1 & !e2;
        let pick = |e: bool| if e { gv } else { T::ZERO };
        d0[2 * j] = pick(e0);
        d0[2 * j + 1] = pick(e1);
        d1[2 * j] = pick(e2);
        d1[2 * j + 1] = pick(e3);
    }
}

tiers! {
/// One plane of the tiled backward: every cell of every window gets `gy` if it is the
/// window's first maximum, else 0. `yp` holds the maxima (the forward's output). Compiled
/// for the tier in use.
fn tiled_plane_backward<T: Float>(xp: &[T], yp: &[T], gyp: &[T], g: &PoolGeom, gxp: &mut [T]) {
    let (kh, kw, w) = (g.win.kh, g.win.kw, g.w);
    for (oy, (grow, mrow)) in gyp
        .chunks_exact(g.ow)
        .zip(yp.chunks_exact(g.ow))
        .enumerate()
    {
        let rows = &xp[oy * kh * w..(oy + 1) * kh * w];
        let grads = &mut gxp[oy * kh * w..(oy + 1) * kh * w];
        // A NaN maximum equals no cell: such rows take the scan, which knows NaN.
        if (kh, kw) == (2, 2) && !mrow.iter().any(|v| v.is_nan()) {
            let (r0, r1) = rows.split_at(w);
            let (d0, d1) = grads.split_at_mut(w);
            tiled_row_2x2(r0, r1, mrow, grow, d0, d1);
            continue;
        }
        for (ox, &gv) in grow.iter().enumerate() {
            let (_, at) = window_max(rows, ox * kw, w, kh, kw);
            for jy in 0..kh {
                grads[jy * w + ox * kw..][..kw].fill(T::ZERO);
            }
            grads[at] = gv;
        }
    }
}
}

/// Max pooling when the windows tile the input ([`PoolGeom::is_tiling`]): the values of
/// [`max_pool2d_forward`] in one pass, without recording the argmax (the backward finds it
/// again from the input, which the tape keeps anyway).
pub fn max_pool2d_tiled_forward<T: Float>(x: &[T], g: &PoolGeom, y: &mut [T]) {
    debug_assert!(g.is_tiling());
    let (ip, op) = (g.in_plane(), g.out_plane());
    // Memory-bound: count the elements touched as the work.
    for_each_chunk(
        x.len() + y.len(),
        op,
        &mut y[..g.planes * op],
        |p0, ys, _| {
            let xs = &x[p0 * ip..];
            for (xp, yp) in xs.chunks_exact(ip).zip(ys.chunks_exact_mut(op)) {
                tiled_plane(xp, yp, g);
            }
        },
    );
}

/// The backward of [`max_pool2d_tiled_forward`], from its input `x` and output `y`: every
/// cell of every window of `gx` is written, `gy` at the window's first maximum (the rule of
/// [`max_pool2d_forward`]) and 0 elsewhere; cells outside every window are left as they are.
pub fn max_pool2d_tiled_backward<T: Float>(x: &[T], y: &[T], gy: &[T], g: &PoolGeom, gx: &mut [T]) {
    debug_assert!(g.is_tiling());
    let (ip, op) = (g.in_plane(), g.out_plane());
    if ip == 0 || op == 0 {
        return;
    }
    for_each_chunk(x.len() * 2, ip, &mut gx[..g.planes * ip], |p0, gxs, _| {
        for (j, gxp) in gxs.chunks_exact_mut(ip).enumerate() {
            let pl = p0 + j;
            let xp = &x[pl * ip..(pl + 1) * ip];
            let (yp, gyp) = (&y[pl * op..(pl + 1) * op], &gy[pl * op..(pl + 1) * op]);
            tiled_plane_backward(xp, yp, gyp, g, gxp);
        }
    });
}

/// The argmax recorded for a window that holds no input cell (possible only with dilation,
/// when every tap falls in the padding); such a window passes no gradient back.
pub const NO_ARGMAX: usize = usize::MAX;

/// The taps of the window at output position `o` along one axis that land inside the input:
/// `(count, first)`, where the in-range input positions are `first + j·d` for `j < count`.
#[inline]
fn taps(o: usize, s: usize, p: usize, k: usize, d: usize, n: usize) -> (usize, usize) {
    // Work in padded coordinates (input position + p) to stay in unsigned arithmetic.
    let start = o * s;
    let lo = if start >= p {
        0
    } else {
        (p - start).div_ceil(d)
    };
    let hi = if n + p <= start {
        0
    } else {
        (n + p - start).div_ceil(d).min(k)
    };
    if lo >= hi {
        (0, 0)
    } else {
        (hi - lo, start + lo * d - p)
    }
}

/// One axis of an average-pooling window: the real input range `[lo, hi)` and the window's
/// extent clipped to the padded input (the divisor's factor under `count_include_pad`).
#[derive(Clone, Copy)]
struct AvgSpan {
    lo: usize,
    hi: usize,
    padded: usize,
}

#[inline]
fn avg_span(o: usize, s: usize, p: usize, k: usize, n: usize) -> AvgSpan {
    // Padded coordinates again: the window is [start, start + k), clipped first to the
    // padded input [0, n + 2p) for the divisor, then to the real input [p, n + p).
    let start = o * s;
    let end = (start + k).min(n + 2 * p);
    let lo = start.max(p) - p;
    let hi = end.min(n + p).saturating_sub(p);
    AvgSpan {
        lo,
        hi: hi.max(lo),
        padded: end.saturating_sub(start),
    }
}

/// Per output row (or column): the count of in-range taps and the first tap's position.
type Taps = Vec<(usize, usize)>;

fn max_taps(g: &PoolGeom) -> (Taps, Taps) {
    let rows = (0..g.oh)
        .map(|o| taps(o, g.win.sh, g.win.ph, g.win.kh, g.win.dh, g.h))
        .collect();
    let cols = (0..g.ow)
        .map(|o| taps(o, g.win.sw, g.win.pw, g.win.kw, g.win.dw, g.w))
        .collect();
    (rows, cols)
}

fn avg_spans(g: &PoolGeom) -> (Vec<AvgSpan>, Vec<AvgSpan>) {
    let rows = (0..g.oh)
        .map(|o| avg_span(o, g.win.sh, g.win.ph, g.win.kh, g.h))
        .collect();
    let cols = (0..g.ow)
        .map(|o| avg_span(o, g.win.sw, g.win.pw, g.win.kw, g.w))
        .collect();
    (rows, cols)
}

/// Max pooling: `y[p, i, j]` is the largest input of window `(i, j)` of plane `p`, and
/// `arg[p, i, j]` its flat index within the input plane (`row · w + col`).
///
/// Padding never wins (padded taps are skipped); ties go to the first maximum in row-major
/// scan order of the window; a NaN counts as the maximum (the first NaN wins). A window
/// with no input cell gives `-∞` and [`NO_ARGMAX`].
///
/// `x` holds `planes · h · w` elements; `y` and `arg` hold `planes · oh · ow`.
pub fn max_pool2d_forward<T: Float>(x: &[T], g: &PoolGeom, y: &mut [T], arg: &mut [usize]) {
    let (rows, cols) = max_taps(g);
    let (ip, op) = (g.in_plane(), g.out_plane());
    if ip == 0 || op == 0 {
        return;
    }
    let plane = |xp: &[T], yp: &mut [T], ap: &mut [usize]| {
        for (oy, &(ny, y0)) in rows.iter().enumerate() {
            for (ox, &(nx, x0)) in cols.iter().enumerate() {
                let (mut best, mut bi) = (T::NEG_INFINITY, NO_ARGMAX);
                if ny > 0 && nx > 0 {
                    // The value first, then its first cell, both as selects (see `window_max`).
                    best = xp[y0 * g.w + x0];
                    for jy in 0..ny {
                        let base = (y0 + jy * g.win.dh) * g.w + x0;
                        for jx in 0..nx {
                            best = nan_max(best, xp[base + jx * g.win.dw]);
                        }
                    }
                    let m_nan = best.is_nan();
                    for jy in (0..ny).rev() {
                        let base = (y0 + jy * g.win.dh) * g.w + x0;
                        for jx in (0..nx).rev() {
                            let i = base + jx * g.win.dw;
                            if (xp[i] == best) | (m_nan & xp[i].is_nan()) {
                                bi = i;
                            }
                        }
                    }
                }
                yp[oy * g.ow + ox] = best;
                ap[oy * g.ow + ox] = bi;
            }
        }
    };
    let x = &x[..g.planes * ip];
    let chunks = |xs: &[T], ys: &mut [T], args: &mut [usize]| {
        let planes = xs.chunks_exact(ip).zip(ys.chunks_exact_mut(op));
        for ((xp, yp), ap) in planes.zip(args.chunks_exact_mut(op)) {
            plane(xp, yp, ap);
        }
    };
    crate::runtime::threads::run(x.len() + y.len(), |threads| {
        // Parallel iterators only inside the pool: outside it they would start rayon's global one.
        if threads == 1 {
            return chunks(x, y, arg);
        }
        let chunk = g.planes.div_ceil(4 * threads);
        let outs = y
            .par_chunks_mut(chunk * op)
            .zip(arg.par_chunks_mut(chunk * op));
        x.par_chunks(chunk * ip)
            .zip(outs)
            .for_each(|(xs, (ys, args))| chunks(xs, ys, args));
    });
}

/// Max-pooling backward: adds each `gy[p, i, j]` to `gx` at the window's argmax, so inputs
/// that are the maximum of several overlapping windows collect all their gradients. `gx` is
/// accumulated into (zero it first for a plain gradient).
pub fn max_pool2d_backward<T: Float>(gy: &[T], arg: &[usize], g: &PoolGeom, gx: &mut [T]) {
    let (ip, op) = (g.in_plane(), g.out_plane());
    if ip == 0 || op == 0 {
        return;
    }
    let planes = gx
        .chunks_exact_mut(ip)
        .zip(gy.chunks_exact(op).zip(arg.chunks_exact(op)))
        .take(g.planes);
    for (gxp, (gyp, ap)) in planes {
        for (&gv, &a) in gyp.iter().zip(ap) {
            if a != NO_ARGMAX {
                gxp[a] += gv;
            }
        }
    }
}

/// The divisor of an average window: the window clipped to the padded input when
/// `count_include_pad`, else the number of real input cells in it.
#[inline]
fn divisor<T: Float>(r: &AvgSpan, c: &AvgSpan, count_include_pad: bool) -> T {
    let n = if count_include_pad {
        r.padded * c.padded
    } else {
        (r.hi - r.lo) * (c.hi - c.lo)
    };
    T::from_usize(n)
}

/// Average pooling: `y[p, i, j]` is the sum of the real inputs of window `(i, j)` divided
/// as PyTorch does: by the window's size clipped to the padded input when
/// `count_include_pad` (padding counts, ceil-mode overhang past the padding does not), else
/// by the number of real inputs. A window with no real input gives 0. Ignores dilation.
///
/// `x` holds `planes · h · w` elements; `y` holds `planes · oh · ow`.
pub fn avg_pool2d_forward<T: Float>(x: &[T], g: &PoolGeom, count_include_pad: bool, y: &mut [T]) {
    let (rows, cols) = avg_spans(g);
    let (ip, op) = (g.in_plane(), g.out_plane());
    if ip == 0 || op == 0 {
        return;
    }
    let planes = x
        .chunks_exact(ip)
        .zip(y.chunks_exact_mut(op))
        .take(g.planes);
    for (xp, yp) in planes {
        for (oy, r) in rows.iter().enumerate() {
            let yrow = &mut yp[oy * g.ow..(oy + 1) * g.ow];
            for (ox, c) in cols.iter().enumerate() {
                if r.lo == r.hi || c.lo == c.hi {
                    yrow[ox] = T::ZERO;
                    continue;
                }
                let mut s = T::ZERO;
                for iy in r.lo..r.hi {
                    s += xp[iy * g.w + c.lo..iy * g.w + c.hi]
                        .iter()
                        .copied()
                        .sum::<T>();
                }
                yrow[ox] = s / divisor::<T>(r, c, count_include_pad);
            }
        }
    }
}

/// Average-pooling backward: adds `gy[p, i, j] / divisor` to every real input of window
/// `(i, j)`, accumulating where windows overlap. `gx` is accumulated into.
pub fn avg_pool2d_backward<T: Float>(
    gy: &[T],
    g: &PoolGeom,
    count_include_pad: bool,
    gx: &mut [T],
) {
    let (rows, cols) = avg_spans(g);
    let (ip, op) = (g.in_plane(), g.out_plane());
    if ip == 0 || op == 0 {
        return;
    }
    let planes = gx
        .chunks_exact_mut(ip)
        .zip(gy.chunks_exact(op))
        .take(g.planes);
    for (gxp, gyp) in planes {
        for (oy, r) in rows.iter().enumerate() {
            let grow = &gyp[oy * g.ow..(oy + 1) * g.ow];
            for (c, &gv) in cols.iter().zip(grow) {
                if r.lo == r.hi || c.lo == c.hi {
                    continue;
                }
                let share = gv / divisor::<T>(r, c, count_include_pad);
                for iy in r.lo..r.hi {
                    for v in &mut gxp[iy * g.w + c.lo..iy * g.w + c.hi] {
                        *v += share;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::window::output_len;
    use rand::{RngExt, SeedableRng};

    // Obviously-correct references: every tap of every window, signed positions, bounds
    // tested one by one, PyTorch's formulas written out literally.

    fn ref_max_fwd(x: &[f64], g: &PoolGeom) -> (Vec<f64>, Vec<usize>) {
        let mut y = vec![];
        let mut arg = vec![];
        for p in 0..g.planes {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let mut best: Option<(f64, usize)> = None;
                    for ky in 0..g.win.kh {
                        for kx in 0..g.win.kw {
                            let iy = (oy * g.win.sh + ky * g.win.dh) as i64 - g.win.ph as i64;
                            let ix = (ox * g.win.sw + kx * g.win.dw) as i64 - g.win.pw as i64;
                            if iy < 0 || ix < 0 || iy >= g.h as i64 || ix >= g.w as i64 {
                                continue;
                            }
                            let i = iy as usize * g.w + ix as usize;
                            let v = x[p * g.in_plane() + i];
                            let take = match best {
                                None => true,
                                Some((b, _)) if b.is_nan() => false,
                                Some((b, _)) => v.is_nan() || v > b,
                            };
                            if take {
                                best = Some((v, i));
                            }
                        }
                    }
                    let (v, i) = best.unwrap_or((f64::NEG_INFINITY, NO_ARGMAX));
                    y.push(v);
                    arg.push(i);
                }
            }
        }
        (y, arg)
    }

    fn ref_max_bwd(gy: &[f64], x: &[f64], g: &PoolGeom) -> Vec<f64> {
        let (_, arg) = ref_max_fwd(x, g);
        let mut gx = vec![0.0; g.planes * g.in_plane()];
        for p in 0..g.planes {
            for o in 0..g.out_plane() {
                let a = arg[p * g.out_plane() + o];
                if a != NO_ARGMAX {
                    gx[p * g.in_plane() + a] += gy[p * g.out_plane() + o];
                }
            }
        }
        gx
    }

    /// (real input cells of the window as (plane-relative) flat indices, divisor)
    fn ref_avg_window(g: &PoolGeom, oy: usize, ox: usize, cip: bool) -> (Vec<usize>, f64) {
        let (h, w, ph, pw) = (g.h as i64, g.w as i64, g.win.ph as i64, g.win.pw as i64);
        let hstart = (oy * g.win.sh) as i64 - ph;
        let wstart = (ox * g.win.sw) as i64 - pw;
        let hend = (hstart + g.win.kh as i64).min(h + ph);
        let wend = (wstart + g.win.kw as i64).min(w + pw);
        let pool = (hend - hstart) * (wend - wstart);
        let mut cells = vec![];
        for iy in hstart.max(0)..hend.min(h) {
            for ix in wstart.max(0)..wend.min(w) {
                cells.push((iy * w + ix) as usize);
            }
        }
        let div = if cip { pool } else { cells.len() as i64 };
        (cells, div as f64)
    }

    fn ref_avg_fwd(x: &[f64], g: &PoolGeom, cip: bool) -> Vec<f64> {
        let mut y = vec![];
        for p in 0..g.planes {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let (cells, div) = ref_avg_window(g, oy, ox, cip);
                    if cells.is_empty() {
                        y.push(0.0);
                    } else {
                        let s: f64 = cells.iter().map(|&i| x[p * g.in_plane() + i]).sum();
                        y.push(s / div);
                    }
                }
            }
        }
        y
    }

    fn ref_avg_bwd(gy: &[f64], g: &PoolGeom, cip: bool) -> Vec<f64> {
        let mut gx = vec![0.0; g.planes * g.in_plane()];
        for p in 0..g.planes {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let (cells, div) = ref_avg_window(g, oy, ox, cip);
                    for i in cells {
                        gx[p * g.in_plane() + i] += gy[p * g.out_plane() + oy * g.ow + ox] / div;
                    }
                }
            }
        }
        gx
    }

    /// A geometry with PyTorch's validity rules (padding ≤ kernel / 2, output ≥ 1), or None.
    fn geom(
        planes: usize,
        (h, w): (usize, usize),
        (kh, kw): (usize, usize),
        (sh, sw): (usize, usize),
        (ph, pw): (usize, usize),
        (dh, dw): (usize, usize),
        ceil: bool,
    ) -> Option<PoolGeom> {
        if ph > kh / 2 || pw > kw / 2 {
            return None;
        }
        let oh = output_len(h, kh, sh, ph, dh, ceil)?;
        let ow = output_len(w, kw, sw, pw, dw, ceil)?;
        (oh >= 1 && ow >= 1).then_some(PoolGeom {
            planes,
            h,
            w,
            oh,
            ow,
            win: Window {
                kh,
                kw,
                sh,
                sw,
                ph,
                pw,
                dh,
                dw,
            },
        })
    }

    fn random_geoms(seed: u64, count: usize, dilate: bool) -> Vec<PoolGeom> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut out = vec![];
        while out.len() < count {
            let mut r = |lo: usize, hi: usize| rng.random_range(lo..=hi);
            let g = geom(
                r(1, 3),
                (r(1, 9), r(1, 9)),
                (r(1, 4), r(1, 4)),
                (r(1, 4), r(1, 4)),
                (r(0, 2), r(0, 2)),
                if dilate { (r(1, 3), r(1, 3)) } else { (1, 1) },
                r(0, 1) == 1,
            );
            out.extend(g);
        }
        out
    }

    fn randv(rng: &mut rand::rngs::StdRng, n: usize) -> Vec<f64> {
        // Coarse values so that ties within a window are common.
        (0..n).map(|_| rng.random_range(-3..=3) as f64).collect()
    }

    #[test]
    fn max_matches_reference_on_random_geometries() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        for g in random_geoms(2, 400, true) {
            let mut x = randv(&mut rng, g.planes * g.in_plane());
            if rng.random_range(0..4) == 0 {
                let i = rng.random_range(0..x.len());
                x[i] = f64::NAN;
            }
            let mut y = vec![0.0; g.planes * g.out_plane()];
            let mut arg = vec![0; y.len()];
            max_pool2d_forward(&x, &g, &mut y, &mut arg);
            let (ry, rarg) = ref_max_fwd(&x, &g);
            assert_eq!(arg, rarg, "{g:?}");
            let same = y
                .iter()
                .zip(&ry)
                .all(|(a, b)| a == b || (a.is_nan() && b.is_nan()));
            assert!(same, "{g:?}: {y:?} vs {ry:?}");

            let gy = randv(&mut rng, y.len());
            let mut gx = vec![0.0; x.len()];
            max_pool2d_backward(&gy, &arg, &g, &mut gx);
            assert_eq!(gx, ref_max_bwd(&gy, &x, &g), "{g:?}");
        }
    }

    /// The tiled one-pass kernels and the general ones (on their parallel path too) against
    /// the reference: small random tilings, and planes enough to split across the pool.
    #[test]
    fn tiled_and_parallel_max_match_reference() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut geoms = vec![];
        while geoms.len() < 150 {
            let mut r = |lo: usize, hi: usize| rng.random_range(lo..=hi);
            let (kh, kw) = (r(1, 4), r(1, 4));
            let g = geom(
                r(1, 3),
                (r(1, 11), r(1, 11)),
                (kh, kw),
                (kh, kw),
                (0, 0),
                (1, 1),
                false,
            );
            geoms.extend(g.filter(|g| g.is_tiling()));
        }
        let big = |planes, hw, k| geom(planes, hw, k, k, (0, 0), (1, 1), false).unwrap();
        geoms.extend([big(300, (24, 24), (2, 2)), big(200, (9, 10), (3, 3))]);
        for g in geoms {
            assert!(g.is_tiling(), "{g:?}");
            let mut x = randv(&mut rng, g.planes * g.in_plane());
            for _ in 0..rng.random_range(0..3) {
                let i = rng.random_range(0..x.len());
                x[i] = f64::NAN;
            }
            let (ry, rarg) = ref_max_fwd(&x, &g);
            let gy = randv(&mut rng, ry.len());
            let rgx = ref_max_bwd(&gy, &x, &g);
            let same = |y: &[f64]| {
                y.iter()
                    .zip(&ry)
                    .all(|(a, b)| a == b || (a.is_nan() && b.is_nan()))
            };

            let mut y = vec![0.0; ry.len()];
            max_pool2d_tiled_forward(&x, &g, &mut y);
            assert!(same(&y), "tiled {g:?}");
            let mut gx = vec![0.0; x.len()];
            max_pool2d_tiled_backward(&x, &y, &gy, &g, &mut gx);
            assert_eq!(gx, rgx, "tiled {g:?}");

            let mut arg = vec![0; ry.len()];
            max_pool2d_forward(&x, &g, &mut y, &mut arg);
            assert!(same(&y) && arg == rarg, "general {g:?}");
            let mut gx = vec![0.0; x.len()];
            max_pool2d_backward(&gy, &arg, &g, &mut gx);
            assert_eq!(gx, rgx, "general {g:?}");
        }
    }

    #[test]
    fn is_tiling_only_for_disjoint_windows_inside_the_input() {
        let g = |k, s, p, d, hw| geom(1, hw, k, s, p, d, false).unwrap();
        assert!(
            g((2, 2), (2, 2), (0, 0), (1, 1), (6, 7)).is_tiling(),
            "floor drops column 7"
        );
        assert!(g((3, 1), (3, 1), (0, 0), (1, 1), (7, 4)).is_tiling());
        assert!(
            !g((3, 3), (2, 2), (0, 0), (1, 1), (7, 7)).is_tiling(),
            "overlap"
        );
        assert!(
            !g((2, 2), (2, 2), (1, 1), (1, 1), (6, 6)).is_tiling(),
            "padding"
        );
        assert!(
            !g((2, 2), (2, 2), (0, 0), (2, 2), (8, 8)).is_tiling(),
            "dilation"
        );
        let ceil = geom(1, (6, 7), (2, 2), (2, 2), (0, 0), (1, 1), true).unwrap();
        assert!(
            !ceil.is_tiling(),
            "ceil mode's last window overhangs column 7"
        );
    }

    #[test]
    fn avg_matches_reference_on_random_geometries() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for (n, g) in random_geoms(4, 400, false).into_iter().enumerate() {
            let cip = n % 2 == 0;
            let x: Vec<f64> = (0..g.planes * g.in_plane())
                .map(|_| rng.random::<f64>())
                .collect();
            let mut y = vec![0.0; g.planes * g.out_plane()];
            avg_pool2d_forward(&x, &g, cip, &mut y);
            for (a, b) in y.iter().zip(ref_avg_fwd(&x, &g, cip)) {
                assert!((a - b).abs() < 1e-12, "{g:?} cip {cip}: {a} vs {b}");
            }
            let gy: Vec<f64> = (0..y.len()).map(|_| rng.random::<f64>()).collect();
            let mut gx = vec![0.0; x.len()];
            avg_pool2d_backward(&gy, &g, cip, &mut gx);
            for (a, b) in gx.iter().zip(ref_avg_bwd(&gy, &g, cip)) {
                assert!((a - b).abs() < 1e-12, "{g:?} cip {cip}: {a} vs {b}");
            }
            // The backward is the adjoint of the (linear) forward: <gy, A x> = <Aᵀ gy, x>.
            let lhs: f64 = gy.iter().zip(&y).map(|(a, b)| a * b).sum();
            let rhs: f64 = gx.iter().zip(&x).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() < 1e-10, "{g:?}: {lhs} vs {rhs}");
        }
    }

    #[test]
    fn backward_accumulates_into_gx() {
        let g = geom(1, (2, 2), (2, 2), (2, 2), (0, 0), (1, 1), false).unwrap();
        let mut gx = vec![1.0f32; 4];
        max_pool2d_backward(&[2.0], &[3], &g, &mut gx);
        assert_eq!(gx, vec![1.0, 1.0, 1.0, 3.0]);
        avg_pool2d_backward(&[4.0], &g, true, &mut gx);
        assert_eq!(gx, vec![2.0, 2.0, 2.0, 4.0]);
    }

    #[test]
    fn window_wholly_in_padding_has_no_argmax() {
        // H = 2, kernel 2, dilation 3, padding 1: the single window's taps sit at -1 and 2.
        let g = geom(1, (2, 1), (2, 1), (1, 1), (1, 0), (3, 1), false).unwrap();
        assert_eq!((g.oh, g.ow), (1, 1));
        let (mut y, mut arg) = (vec![0.0f64], vec![0]);
        max_pool2d_forward(&[1.0, 2.0], &g, &mut y, &mut arg);
        assert_eq!((y[0], arg[0]), (f64::NEG_INFINITY, NO_ARGMAX));
        let mut gx = vec![0.0; 2];
        max_pool2d_backward(&[1.0], &arg, &g, &mut gx);
        assert_eq!(gx, vec![0.0, 0.0]);
    }

    #[test]
    fn taps_cover_exactly_the_in_range_positions() {
        for n in 1..8 {
            for k in 1..5 {
                for s in 1..4 {
                    for p in 0..=k / 2 {
                        for d in 1..4 {
                            for o in 0..6 {
                                let want: Vec<usize> = (0..k)
                                    .map(|j| (o * s + j * d) as i64 - p as i64)
                                    .filter(|&i| i >= 0 && i < n as i64)
                                    .map(|i| i as usize)
                                    .collect();
                                let (c, f) = taps(o, s, p, k, d, n);
                                let got: Vec<usize> = (0..c).map(|j| f + j * d).collect();
                                assert_eq!(got, want, "o {o} s {s} p {p} k {k} d {d} n {n}");
                            }
                        }
                    }
                }
            }
        }
    }
}
