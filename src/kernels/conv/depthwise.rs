//! Depthwise convolution computed directly: every output channel reads one input channel
//! (`groups == c`, any channel multiplier), so the unfolded product would be a matrix of one
//! row per group, a GEMM with nothing to reuse.
//!
//! Each input plane is copied once into a zero-padded plane split into stride phases (see
//! `Grid`), and each output plane is computed on a grid a little wider than its rows: on
//! it a tap is one multiply-add over the whole plane at unit stride, from one offset, with
//! no border cases. Nine long loops for a 3×3 kernel, instead of nine short ones per row;
//! a stride-2 convolution reads its input as four stride-1 planes.
//!
//! - forward: `y[b, oc] = bias[oc] + Σ_{p,q} w[oc, p, q] · shift_{p,q}(xp)`, with
//!   `ic = oc / (o / groups)`;
//! - input gradient: the adjoint, each tap scattering `w[oc, p, q] · gy` back into a padded
//!   gradient plane (the thrown-away columns of `gy`'s grid hold zeros);
//! - weight gradient: `dw[oc, p, q] += Σ_b ⟨gy[b, oc], shift_{p,q}(xp[b, ic])⟩`.
//!
//! The loops are compiled per instruction-set tier ([`tiers!`]) and run at the widest
//! vector width the CPU has; additions are never reordered, so every tier gives the same
//! bits.

use std::mem::MaybeUninit;

use smallvec::SmallVec;

use super::ConvGeom;
use super::phases::{merge_phases_add, split_phases};
use crate::float::Float;
use crate::kernels::window::Window;
use crate::runtime::scratch::Scratch;
use crate::runtime::simd::{copy_run, tiers};
use crate::runtime::threads::for_each_chunk;

/// Whether the geometry is a depthwise convolution (one input channel per group, several
/// groups) with strides no longer than the kernel's extent. A longer stride skips input
/// the split padded plane would still hold (`usize::MAX` of it at worst); the unfolded
/// product reads only what the taps touch.
pub(crate) fn applies(g: &ConvGeom) -> bool {
    let w = &g.win;
    let extent = |k: usize, d: usize| (k - 1) * d + 1;
    g.groups > 1 && g.cg() == 1 && w.sh <= extent(w.kh, w.dh) && w.sw <= extent(w.kw, w.dw)
}

/// The padded input plane, split into stride phases, and the output grid of a geometry.
///
/// The padded plane (`h + 2·ph` by `w + 2·pw`, rounded up to multiples of the strides) is
/// stored as `sh·sw` phase planes of `hq × wq`: phase `(ρ, φ)` holds the padded elements
/// `(r·sh + ρ, c·sw + φ)`. Tap `(p, q)` of output `(i, j)` reads padded element
/// `(i·sh + p·dh, j·sw + q·dw)`, which is element `(i + p·dh / sh, j + q·dw / sw)` of phase
/// `(p·dh mod sh, q·dw mod sw)`: on an output grid of `wq` columns (`wo` of them real), a
/// tap reads its phase plane at unit stride from one offset.
#[derive(Clone, Copy)]
struct Grid {
    /// Rows of each phase plane.
    hq: usize,
    /// Columns of each phase plane, and of the output grid.
    wq: usize,
}

impl Grid {
    fn of(g: &ConvGeom) -> Grid {
        let win = &g.win;
        let wq = (g.w + 2 * win.pw).div_ceil(win.sw);
        // Every tap of every grid element, the last grid row's thrown-away columns included.
        let hq = (g.h + 2 * win.ph)
            .div_ceil(win.sh)
            .max(g.ho + (win.kh - 1) * win.dh / win.sh + 1);
        Grid { hq, wq }
    }

    /// Elements of the split padded plane, and `B` zeros past it for the last block.
    fn padded_len(self, g: &ConvGeom) -> usize {
        g.win.sh * g.win.sw * self.hq * self.wq + B
    }

    /// Length of the output grid, rounded up to whole blocks of `B`.
    fn len(self, g: &ConvGeom) -> usize {
        (g.ho * self.wq).next_multiple_of(B)
    }

    /// Where tap `(p, q)` of grid element 0 reads in the split padded plane.
    fn offset(self, g: &ConvGeom, p: usize, q: usize) -> usize {
        self.at(g, p * g.win.dh, q * g.win.dw)
    }

    /// Where padded element `(r, c)` sits in the split plane.
    fn at(self, g: &ConvGeom, r: usize, c: usize) -> usize {
        let phase = (r % g.win.sh) * g.win.sw + c % g.win.sw;
        (phase * self.hq + r / g.win.sh) * self.wq + c / g.win.sw
    }

    /// Calls `f(xi, at, runs)` for every input row `xi`, with one run `(xj0, off, n)` per
    /// column phase that has columns: the row's first input column `xj0` of that phase (the
    /// next ones follow `sw` apart), the split plane's index `at + off` of its element (the
    /// next ones follow one apart), and how many there are. The runs are worked out once
    /// and the rows stepped, not divided out per row (the divisions were a third of a
    /// depthwise layer's time on 7×7 planes, and building the runs per row half of it).
    fn for_each_row(self, g: &ConvGeom, mut f: impl FnMut(usize, usize, &[(usize, usize, usize)])) {
        let (w, sh, sw) = (&g.win, g.win.sh, g.win.sw);
        let phase = self.hq * self.wq;
        let mut runs: SmallVec<[(usize, usize, usize); 8]> = SmallVec::new();
        for phi in 0..sw {
            let xj0 = (phi + sw - w.pw % sw) % sw;
            let n = g.w.saturating_sub(xj0).div_ceil(sw);
            if n > 0 {
                let c = xj0 + w.pw;
                runs.push((xj0, c % sw * phase + c / sw, n));
            }
        }
        let (mut rho, mut rdiv) = (w.ph % sh, w.ph / sh);
        for xi in 0..g.h {
            f(xi, rho * sw * phase + rdiv * self.wq, &runs);
            rho += 1;
            if rho == sh {
                (rho, rdiv) = (0, rdiv + 1);
            }
        }
    }

    /// `x` (`h × w`) into the interior of the split padded plane `xp`, whose margins must
    /// hold zeros: they are never written here, so a buffer zeroed once serves every plane
    /// of a geometry (zeroing the whole plane each time, and the strided copies, were a
    /// third to a half of a depthwise forward on 7×7 and stride-2 28×28 planes).
    fn pad<T: Float>(self, g: &ConvGeom, x: &[T], xp: &mut [T]) {
        if g.w == 0 {
            return;
        }
        let sw = g.win.sw;
        self.for_each_row(g, |xi, at, runs| {
            let row = &x[xi * g.w..(xi + 1) * g.w];
            match *runs {
                [(_, off, n)] if sw == 1 => copy_run(&mut xp[at + off..at + off + n], row),
                [(xa, a, na), (_, b, nb)] if sw == 2 => {
                    let (ra, rb) = two_runs(xp, (at + a, na), (at + b, nb));
                    let (even, odd) = if xa == 0 { (ra, rb) } else { (rb, ra) };
                    split_phases(row, even, odd);
                }
                _ => {
                    for &(xj0, off, n) in runs {
                        let src = &row[xj0..xj0 + (n - 1) * sw + 1];
                        for (d, &v) in xp[at + off..at + off + n]
                            .iter_mut()
                            .zip(src.iter().step_by(sw))
                        {
                            *d = v;
                        }
                    }
                }
            }
        });
    }

    /// The interior of the split padded plane `xp` added into `dx` (`h × w`).
    fn unpad_add<T: Float>(self, g: &ConvGeom, xp: &[T], dx: &mut [T]) {
        if g.w == 0 {
            return;
        }
        let sw = g.win.sw;
        self.for_each_row(g, |xi, at, runs| {
            let row = &mut dx[xi * g.w..(xi + 1) * g.w];
            match *runs {
                [(xa, a, na), (_, b, nb)] if sw == 2 => {
                    let (ra, rb) = (&xp[at + a..at + a + na], &xp[at + b..at + b + nb]);
                    let (even, odd) = if xa == 0 { (ra, rb) } else { (rb, ra) };
                    merge_phases_add(row, even, odd);
                }
                _ => {
                    for &(xj0, off, n) in runs {
                        let dst = &mut row[xj0..xj0 + (n - 1) * sw + 1];
                        for (d, &v) in dst.iter_mut().step_by(sw).zip(&xp[at + off..at + off + n]) {
                            *d += v;
                        }
                    }
                }
            }
        });
    }
}

/// The disjoint runs `a..a + na` and `b..b + nb` of `xp`, mutable together.
fn two_runs<T>(
    xp: &mut [T],
    (a, na): (usize, usize),
    (b, nb): (usize, usize),
) -> (&mut [T], &mut [T]) {
    if a < b {
        let (lo, hi) = xp.split_at_mut(b);
        (&mut lo[a..a + na], &mut hi[..nb])
    } else {
        let (lo, hi) = xp.split_at_mut(a);
        (&mut hi[..na], &mut lo[b..b + nb])
    }
}

/// The block length of the grid loops: four AVX-512 registers of f32.
const B: usize = 64;

tiers! {
    /// `y[t] = bias + Σ_k w[k] · x[offs[k] + t]` for every `t` of `y` (whole blocks of `B`),
    /// each block held in registers while every tap adds into it.
    fn correlate<T: Float>(y: &mut [T], bias: T, w: &[T], x: &[T], offs: &[usize]) {
        for (c, yc) in y.chunks_exact_mut(B).enumerate() {
            let mut acc = [bias; B];
            for (&wk, &off) in w.iter().zip(offs) {
                let xs = &x[off + c * B..off + (c + 1) * B];
                for l in 0..B {
                    acc[l] += wk * xs[l];
                }
            }
            yc.copy_from_slice(&acc);
        }
    }
}

tiers! {
    /// `x[offs[k] + t] += w[k] · y[t]` for every tap `k` and every `t` of `y` (whole blocks
    /// of `B`): [`correlate`]'s adjoint, a block of `y` loaded once for all taps.
    fn scatter<T: Float>(x: &mut [T], w: &[T], y: &[T], offs: &[usize]) {
        for (c, yc) in y.chunks_exact(B).enumerate() {
            for (&wk, &off) in w.iter().zip(offs) {
                let xs = &mut x[off + c * B..off + (c + 1) * B];
                for l in 0..B {
                    xs[l] += wk * yc[l];
                }
            }
        }
    }
}

tiers! {
    /// `part[k·B + l] += Σ_c y[c·B + l] · x[offs[k] + c·B + l]` for every tap `k`: the
    /// weight gradient's products, kept as `B` partial sums per tap (whole blocks of `B`).
    fn correlate_grad<T: Float>(part: &mut [T], y: &[T], x: &[T], offs: &[usize]) {
        for (c, yc) in y.chunks_exact(B).enumerate() {
            for (pk, &off) in part.chunks_exact_mut(B).zip(offs) {
                let xs = &x[off + c * B..off + (c + 1) * B];
                for l in 0..B {
                    pk[l] += yc[l] * xs[l];
                }
            }
        }
    }
}

/// Where each tap reads in the split padded plane, in the weights' order.
fn offsets(g: &ConvGeom, gr: Grid) -> SmallVec<[usize; 32]> {
    (0..g.win.kh)
        .flat_map(|p| (0..g.win.kw).map(move |q| gr.offset(g, p, q)))
        .collect()
}

/// The forward into `y`, every element written. Work is spread over (image, input
/// channel) pairs, each writing its `o / groups` output planes.
pub(crate) fn forward<T: Float>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    y: &mut [MaybeUninit<T>],
) {
    correlate_planes(g, x, w, bias, y, |d, v| {
        // SAFETY: `MaybeUninit<T>` has `T`'s layout, and initialised values are valid in it.
        let v = unsafe { &*(v as *const [T] as *const [MaybeUninit<T>]) };
        copy_run(d, v)
    });
}

/// The forward's correlations, each output row `v` handed to `store(&mut y[row], v)` (whole
/// rows: the 7-wide rows of small planes, stored value by value, were a tenth of a
/// depthwise layer's forward).
fn correlate_planes<T: Float, U: Send>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    y: &mut [U],
    store: impl Fn(&mut [U], &[T]) + Sync + Send,
) {
    let (taps, plane, ip, og, gr) = (g.taps(), g.out_plane(), g.in_plane(), g.og(), Grid::of(g));
    let offs = offsets(g, gr);
    for_each_chunk(2 * y.len() * taps, og * plane, y, |k0, ys, _| {
        let mut xp = Scratch::<T>::zeroed(gr.padded_len(g));
        let mut grid = Scratch::<T>::take(gr.len(g));
        for (k, yk) in (k0..).zip(ys.chunks_exact_mut(og * plane)) {
            gr.pad(g, &x[k * ip..(k + 1) * ip], &mut xp);
            for (oc, yp) in (k % g.c * og..).zip(yk.chunks_exact_mut(plane)) {
                let b = bias.map_or(T::ZERO, |b| b[oc]);
                correlate(&mut grid, b, &w[oc * taps..(oc + 1) * taps], &xp, &offs[..]);
                for (row, src) in yp.chunks_exact_mut(g.wo).zip(grid.chunks(gr.wq)) {
                    store(row, &src[..g.wo]);
                }
            }
        }
    });
}

/// Output plane `gy` (`ho × wo`) onto the grid, whose thrown-away columns must hold zeros:
/// never written here, so a grid zeroed once serves every plane.
fn spread<T: Float>(g: &ConvGeom, gr: Grid, gy: &[T], grid: &mut [T]) {
    for (row, src) in grid.chunks_mut(gr.wq).zip(gy.chunks_exact(g.wo)) {
        copy_run(&mut row[..g.wo], src);
    }
}

/// The input gradient added into `dx`, (image, input channel) planes over the threads.
pub(crate) fn backward_input<T: Float>(g: &ConvGeom, gy: &[T], w: &[T], dx: &mut [T]) {
    let (taps, plane, ip, og, gr) = (g.taps(), g.out_plane(), g.in_plane(), g.og(), Grid::of(g));
    if plane == 0 {
        return;
    }
    let win = &g.win;
    if og == 1
        && win.sh == 1
        && win.sw == 1
        && win.ph <= (win.kh - 1) * win.dh
        && win.pw <= (win.kw - 1) * win.dw
    {
        return backward_input_by_correlation(g, gy, w, dx);
    }
    let offs = offsets(g, gr);
    for_each_chunk(2 * gy.len() * taps, ip, dx, |k0, dxs, _| {
        let mut dxp = Scratch::<T>::take(gr.padded_len(g));
        let mut grid = Scratch::<T>::zeroed(gr.len(g));
        for (k, dxk) in (k0..).zip(dxs.chunks_exact_mut(ip)) {
            dxp.fill(T::ZERO);
            let o0 = k % g.c * og;
            for oc in o0..o0 + og {
                let at = (k / g.c * g.o + oc) * plane;
                spread(g, gr, &gy[at..at + plane], &mut grid);
                scatter(&mut dxp, &w[oc * taps..(oc + 1) * taps], &grid, &offs[..]);
            }
            gr.unpad_add(g, &dxp, dxk);
        }
    });
}

/// The input gradient of a stride-1 depthwise convolution with one output channel per
/// group, added into `dx`: itself a depthwise correlation, of `gy` padded by `(k − 1)·d − p`
/// with each kernel turned around, run as the forward is, each value added into `dx`. Each
/// block of `dx` then stays in registers while the taps add into it; scattering each tap
/// into `dx` loaded and stored it once per tap (a fifth of a depthwise layer's forward and
/// backward).
fn backward_input_by_correlation<T: Float>(g: &ConvGeom, gy: &[T], w: &[T], dx: &mut [T]) {
    let win = g.win;
    let turned = ConvGeom {
        c: g.o,
        h: g.ho,
        w: g.wo,
        o: g.c,
        ho: g.h,
        wo: g.w,
        win: Window {
            ph: (win.kh - 1) * win.dh - win.ph,
            pw: (win.kw - 1) * win.dw - win.pw,
            ..win
        },
        ..*g
    };
    let mut wt = Scratch::<T>::take(w.len());
    for (dst, src) in wt.chunks_exact_mut(g.taps()).zip(w.chunks_exact(g.taps())) {
        for (d, &v) in dst.iter_mut().zip(src.iter().rev()) {
            *d = v;
        }
    }
    correlate_planes(&turned, gy, &wt, None, dx, |d, v| {
        for (d, &v) in d.iter_mut().zip(v) {
            *d += v;
        }
    });
}

/// The weight gradient added into `dw`: each output channel's taps summed over the batch,
/// channels spread over the threads.
pub(crate) fn backward_weight<T: Float>(g: &ConvGeom, gy: &[T], x: &[T], dw: &mut [T]) {
    let (taps, plane, ip, og, gr) = (g.taps(), g.out_plane(), g.in_plane(), g.og(), Grid::of(g));
    if plane == 0 {
        return;
    }
    let offs = offsets(g, gr);
    for_each_chunk(2 * gy.len() * taps, taps, dw, |o0, dws, _| {
        let mut xp = Scratch::<T>::zeroed(gr.padded_len(g));
        let mut grid = Scratch::<T>::zeroed(gr.len(g));
        let mut part = Scratch::<T>::take(taps * B);
        for (oc, dwo) in (o0..).zip(dws.chunks_exact_mut(taps)) {
            part.fill(T::ZERO);
            for b in 0..g.n {
                let ic = b * g.c + oc / og;
                gr.pad(g, &x[ic * ip..(ic + 1) * ip], &mut xp);
                let at = (b * g.o + oc) * plane;
                spread(g, gr, &gy[at..at + plane], &mut grid);
                correlate_grad(&mut part, &grid, &xp, &offs[..]);
            }
            for (d, pk) in dwo.iter_mut().zip(part.chunks_exact(B)) {
                let mut sum = T::ZERO;
                for &v in pk {
                    sum += v;
                }
                *d += sum;
            }
        }
    });
}
