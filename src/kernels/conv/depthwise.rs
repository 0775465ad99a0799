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
use crate::float::Float;
use crate::runtime::scratch::Scratch;
use crate::runtime::simd::tiers;
use crate::runtime::threads::for_each_chunk;

/// Whether the geometry is a depthwise convolution (one input channel per group, several
/// groups).
pub(crate) fn applies(g: &ConvGeom) -> bool {
    g.groups > 1 && g.cg() == 1
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

    /// Elements of the split padded plane.
    fn padded_len(self, g: &ConvGeom) -> usize {
        g.win.sh * g.win.sw * self.hq * self.wq
    }

    /// Length of the output grid.
    fn len(self, g: &ConvGeom) -> usize {
        g.ho * self.wq
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

    /// `x` (`h × w`) into the split padded plane `xp`, zeros around it.
    fn pad<T: Float>(self, g: &ConvGeom, x: &[T], xp: &mut [T]) {
        xp.fill(T::ZERO);
        if g.w == 0 {
            return;
        }
        let (ph, pw, sw) = (g.win.ph, g.win.pw, g.win.sw);
        for (xi, row) in x.chunks_exact(g.w).enumerate() {
            if sw == 1 {
                let at = self.at(g, xi + ph, pw);
                xp[at..at + g.w].copy_from_slice(row);
            } else {
                for (xj, &v) in row.iter().enumerate() {
                    xp[self.at(g, xi + ph, xj + pw)] = v;
                }
            }
        }
    }

    /// The interior of the split padded plane `xp` added into `dx` (`h × w`).
    fn unpad_add<T: Float>(self, g: &ConvGeom, xp: &[T], dx: &mut [T]) {
        if g.w == 0 {
            return;
        }
        let (ph, pw, sw) = (g.win.ph, g.win.pw, g.win.sw);
        for (xi, row) in dx.chunks_exact_mut(g.w).enumerate() {
            if sw == 1 {
                let at = self.at(g, xi + ph, pw);
                for (d, &v) in row.iter_mut().zip(&xp[at..at + g.w]) {
                    *d += v;
                }
            } else {
                for (xj, d) in row.iter_mut().enumerate() {
                    *d += xp[self.at(g, xi + ph, xj + pw)];
                }
            }
        }
    }
}

tiers! {
    /// `y[t] = bias + Σ_k w[k] · x[offs[k] + t]` for every `t` of `y`, in blocks of 64 held
    /// in registers while every tap adds into them.
    fn correlate<T: Float>(y: &mut [T], bias: T, w: &[T], x: &[T], offs: &[usize]) {
        const B: usize = 64;
        for (c, yc) in y.chunks_mut(B).enumerate() {
            let mut acc = [bias; B];
            let n = yc.len();
            for (&wk, &off) in w.iter().zip(offs) {
                let xs = &x[off + c * B..off + c * B + n];
                if n == B {
                    for l in 0..B {
                        acc[l] += wk * xs[l];
                    }
                } else {
                    for l in 0..n {
                        acc[l] += wk * xs[l];
                    }
                }
            }
            yc.copy_from_slice(&acc[..n]);
        }
    }
}

tiers! {
    /// `x[t] += a · y[t]` for every `t` of `y`.
    fn scatter<T: Float>(x: &mut [T], a: T, y: &[T]) {
        let x = &mut x[..y.len()];
        for (xt, &yt) in x.iter_mut().zip(y) {
            *xt += a * yt;
        }
    }
}

tiers! {
    /// `Σ_t y[t] · x[t]`, in 64 interleaved partial sums (four AVX-512 registers, so the
    /// additions' latency overlaps) added in order at the end.
    fn dot<T: Float>(y: &[T], x: &[T]) -> T {
        const L: usize = 64;
        let x = &x[..y.len()];
        let mut acc = [T::ZERO; L];
        let full = y.len() / L * L;
        for (yc, xc) in y[..full].chunks_exact(L).zip(x.chunks_exact(L)) {
            for l in 0..L {
                acc[l] += yc[l] * xc[l];
            }
        }
        for t in full..y.len() {
            acc[t - full] += y[t] * x[t];
        }
        let mut sum = T::ZERO;
        for v in acc {
            sum += v;
        }
        sum
    }
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
    let (taps, plane, ip, og, gr) = (g.taps(), g.out_plane(), g.in_plane(), g.og(), Grid::of(g));
    // Where each tap reads, in the weights' order.
    let offs: SmallVec<[usize; 32]> = (0..g.win.kh)
        .flat_map(|p| (0..g.win.kw).map(move |q| gr.offset(g, p, q)))
        .collect();
    for_each_chunk(2 * y.len() * taps, og * plane, y, |k0, ys, _| {
        let mut xp = Scratch::<T>::take(gr.padded_len(g));
        let mut grid = Scratch::<T>::take(gr.len(g));
        for (k, yk) in (k0..).zip(ys.chunks_exact_mut(og * plane)) {
            gr.pad(g, &x[k * ip..(k + 1) * ip], &mut xp);
            for (oc, yp) in (k % g.c * og..).zip(yk.chunks_exact_mut(plane)) {
                let b = bias.map_or(T::ZERO, |b| b[oc]);
                correlate(&mut grid, b, &w[oc * taps..(oc + 1) * taps], &xp, &offs[..]);
                for (row, src) in yp.chunks_exact_mut(g.wo).zip(grid.chunks(gr.wq)) {
                    for (d, &v) in row.iter_mut().zip(src) {
                        *d = MaybeUninit::new(v);
                    }
                }
            }
        }
    });
}

/// Output plane `gy` (`ho × wo`) onto the grid, zeros in the thrown-away columns.
fn spread<T: Float>(g: &ConvGeom, gr: Grid, gy: &[T], grid: &mut [T]) {
    grid.fill(T::ZERO);
    for (row, src) in grid.chunks_mut(gr.wq).zip(gy.chunks_exact(g.wo)) {
        row[..g.wo].copy_from_slice(src);
    }
}

/// The input gradient added into `dx`, (image, input channel) planes over the threads.
pub(crate) fn backward_input<T: Float>(g: &ConvGeom, gy: &[T], w: &[T], dx: &mut [T]) {
    let (taps, plane, ip, og, gr) = (g.taps(), g.out_plane(), g.in_plane(), g.og(), Grid::of(g));
    if plane == 0 {
        return;
    }
    for_each_chunk(2 * gy.len() * taps, ip, dx, |k0, dxs, _| {
        let mut dxp = Scratch::<T>::take(gr.padded_len(g));
        let mut grid = Scratch::<T>::take(gr.len(g));
        for (k, dxk) in (k0..).zip(dxs.chunks_exact_mut(ip)) {
            dxp.fill(T::ZERO);
            let o0 = k % g.c * og;
            for oc in o0..o0 + og {
                let at = (k / g.c * g.o + oc) * plane;
                spread(g, gr, &gy[at..at + plane], &mut grid);
                for p in 0..g.win.kh {
                    for q in 0..g.win.kw {
                        let wv = w[oc * taps + p * g.win.kw + q];
                        scatter(&mut dxp[gr.offset(g, p, q)..], wv, &grid);
                    }
                }
            }
            gr.unpad_add(g, &dxp, dxk);
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
    for_each_chunk(2 * gy.len() * taps, taps, dw, |o0, dws, _| {
        let mut xp = Scratch::<T>::take(gr.padded_len(g));
        let mut grid = Scratch::<T>::take(gr.len(g));
        for (oc, dwo) in (o0..).zip(dws.chunks_exact_mut(taps)) {
            for b in 0..g.n {
                let ic = b * g.c + oc / og;
                gr.pad(g, &x[ic * ip..(ic + 1) * ip], &mut xp);
                let at = (b * g.o + oc) * plane;
                spread(g, gr, &gy[at..at + plane], &mut grid);
                for p in 0..g.win.kh {
                    for q in 0..g.win.kw {
                        let d = dot(&grid, &xp[gr.offset(g, p, q)..]);
                        dwo[p * g.win.kw + q] += d;
                    }
                }
            }
        }
    });
}
