//! 4×4 stride-2 convolutions with padding 1 by Winograd's F(2×2, 2×2) on the input's four
//! phases.
//!
//! Output row `i` reads input rows `2i − 1 … 2i + 2`: the odd ones through kernel rows 0 and
//! 2, the even ones through rows 1 and 3. So the convolution is the sum of four stride-1
//! convolutions with 2×2 kernels, one per *phase* (row and column parity) of the input:
//! `P_ab[j, k] = x[2j − 1 + a, 2k − 1 + b]` with the kernel `g_ab[p, q] = w[a + 2p, b + 2q]`.
//! Each 2×2 block of outputs (a *tile*) reads a 3×3 patch of each phase, and in the
//! transformed domain its convolution is an elementwise product of 9 numbers: across
//! channels and phases, 9 matrix products `M[ξ] = U[ξ] · V[ξ]` (`U`: `[out, 4·in]`, `V`:
//! `[4·in, tiles]`, the phases stacked along the inner dimension), 9 multiply-adds per tile,
//! channel pair and phase where the direct form takes 16: 1.78× fewer. The transforms use
//! only 0 and ±1 (additions):
//!
//! `Bᵀ = [[1, −1, 0], [0, 1, 0], [0, −1, 1]]`, `G = [[1, 0], [1, 1], [0, 1]]`,
//! `Aᵀ = [[1, 1, 0], [0, 1, 1]]`; per tile `y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A`.
//!
//! The input gradient runs the transforms backwards: the output gradient's tiles `A e Aᵀ`,
//! the products by `Uᵀ`, and `B n Bᵀ` added into the (overlapping) phase patches. That is
//! also the forward of the transposed convolution with this geometry, the usual 2×
//! upsampling layer (`conv_transpose2d` with kernel 4, stride 2, padding 1).

use std::mem::MaybeUninit;
use std::ops::Range;

use super::ConvGeom;
use super::phases::split_phases_inline;
use crate::float::Float;
use crate::kernels::gemm::{MatMut, MatRef, gemm_on};
use crate::runtime::scratch::Scratch;
use crate::runtime::simd::tiers;
use crate::runtime::threads::{SharedOut, for_each_chunk, sum_chunks};

/// Whether the routine computes this convolution: a 4×4 kernel, stride 2, padding 1, no
/// dilation, one group.
pub(super) fn applies(g: &ConvGeom) -> bool {
    let w = &g.win;
    (w.kh, w.kw, w.sh, w.sw, w.ph, w.pw, w.dh, w.dw) == (4, 4, 2, 2, 1, 1, 1, 1)
        && g.groups == 1
        && g.ho > 0
        && g.wo > 0
}

/// Whether a convolution goes through this routine: [`applies`], with enough channels on
/// both sides for the products to outweigh the transforms.
pub(super) fn eligible(g: &ConvGeom) -> bool {
    applies(g) && g.c >= MIN_CHANNELS && g.o >= MIN_CHANNELS
}

/// Below this many input or output channels the transforms cost more than the multiplies
/// they save.
const MIN_CHANNELS: usize = 16;

/// A block's transformed values (`9·(4·in + out)` per tile) in about this many bytes.
const BLOCK_BYTES: usize = 1 << 20;

/// The fewest tiles in a block: shorter products run below the GEMM's speed.
const MIN_TILES: usize = 128;

/// The sizes of one pass: `n` images of `c` channels `h × w` into `o` channels
/// `ho × wo`, in tiles of 2×2 outputs, `ty` rows of `tx`.
#[derive(Clone, Copy, Debug)]
struct Tiles {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    ho: usize,
    wo: usize,
    ty: usize,
    tx: usize,
    /// Tile rows per block (counted across images).
    rows: usize,
}

impl Tiles {
    fn new<T>(g: &ConvGeom) -> Self {
        assert!(
            applies(g),
            "winograd_s2: not a 4x4 stride-2 convolution: {g:?}"
        );
        let (ty, tx) = (g.ho.div_ceil(2), g.wo.div_ceil(2));
        let per_row = 9 * (4 * g.c + g.o) * tx * std::mem::size_of::<T>();
        let rows = (BLOCK_BYTES / per_row.max(1))
            .max(MIN_TILES.div_ceil(tx))
            .max(1);
        Tiles {
            n: g.n,
            c: g.c,
            h: g.h,
            w: g.w,
            o: g.o,
            ho: g.ho,
            wo: g.wo,
            ty,
            tx,
            rows,
        }
    }
    fn in_img(&self) -> usize {
        self.c * self.h * self.w
    }
    fn out_img(&self) -> usize {
        self.o * self.ho * self.wo
    }
    /// The inner dimension of the products: channels times phases.
    fn k(&self) -> usize {
        4 * self.c
    }
    /// The multiply-adds done, twice (for the thread decision).
    fn flops(&self) -> usize {
        2 * 9 * self.n * self.ty * self.tx * self.k() * self.o
    }
    /// Elements of the transforms' work area: the input split's 36 runs, each one longer
    /// than a block (the other transforms take less).
    fn work_len(&self) -> usize {
        36 * (self.rows * self.tx + 1)
    }
    /// Panics unless the buffers have the lengths of the pass: `input` as `[n, c, h, w]`,
    /// `output` as `[n, o, ho, wo]`, `weights` as `[o, c, 4, 4]`.
    fn assert_sizes(&self, input: usize, output: usize, weights: usize) {
        assert!(
            input == self.n * self.in_img()
                && output == self.n * self.out_img()
                && weights == self.o * self.c * 16,
            "winograd_s2: buffer sizes do not match the geometry"
        );
    }
    /// The blocks of tile rows of `images` images.
    fn blocks(&self, images: usize) -> impl Iterator<Item = Range<usize>> + use<> {
        let (all, rows) = (images * self.ty, self.rows);
        (0..all)
            .step_by(rows)
            .map(move |r0| r0..(r0 + rows).min(all))
    }
}

/// The forward: `y = bias + conv(x, w)`, every element of `y` written.
pub(super) fn forward_into<T: Float>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    y: &mut [MaybeUninit<T>],
) {
    forward_with(&Tiles::new::<T>(g), x, w, bias, y)
}

fn forward_with<T: Float>(
    p: &Tiles,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    y: &mut [MaybeUninit<T>],
) {
    let (in_img, out_img, k) = (p.in_img(), p.out_img(), p.k());
    p.assert_sizes(x.len(), y.len(), w.len());
    let mut u = Scratch::<T>::take(9 * p.o * k);
    transform_kernels(p, w, &mut u);
    for_each_chunk(p.flops(), out_img, y, |b0, ys, threads| {
        let nb = ys.len() / out_img;
        let xs = &x[b0 * in_img..(b0 + nb) * in_img];
        let mut v = Scratch::<T>::take(9 * k * p.rows * p.tx);
        let mut m = Scratch::<T>::take(9 * p.o * p.rows * p.tx);
        let mut work = Scratch::<T>::take(p.work_len());
        for band in p.blocks(nb) {
            let nt = band.len() * p.tx;
            transform_inputs(p, xs, band.clone(), &mut v, &mut work);
            forward_products(p, &u, &v, &mut m, nt, threads);
            transform_outputs(p, &m, band, bias, ys, &mut work);
        }
    });
}

/// The forward without bias, `y = conv(x, w)` (every element written), and the weight
/// gradient for the output gradient `gy`, added into `dw`, from one transform of `x` (the
/// two gradients of a transposed convolution transform the same tensor). The same bits as
/// [`forward_into`] and then [`backward_weight`]: the same chunks of the batch (one rule
/// splits both), the same blocks, the same products.
pub(super) fn forward_and_weight_grad<T: Float>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    gy: &[T],
    y: &mut [MaybeUninit<T>],
    dw: &mut [T],
) {
    let p = Tiles::new::<T>(g);
    let (in_img, out_img, k) = (p.in_img(), p.out_img(), p.k());
    p.assert_sizes(x.len(), y.len(), w.len());
    p.assert_sizes(x.len(), gy.len(), dw.len());
    let mut u = Scratch::<T>::take(9 * p.o * k);
    transform_kernels(&p, w, &mut u);
    let out = SharedOut(y.as_mut_ptr());
    let sum_items = |items: Range<usize>, s: &mut [T], threads: usize| {
        let xs = &x[items.start * in_img..items.end * in_img];
        let gys = &gy[items.start * out_img..items.end * out_img];
        // SAFETY: the chunks of the batch are disjoint, and each writes only its own images.
        let ys = unsafe {
            std::slice::from_raw_parts_mut(
                out.get().add(items.start * out_img),
                items.len() * out_img,
            )
        };
        let mut v = Scratch::<T>::take(9 * k * p.rows * p.tx);
        // The products M, then the transformed gradient Z: both `[o][ξ][tile]`.
        let mut mz = Scratch::<T>::take(9 * p.o * p.rows * p.tx);
        let mut work = Scratch::<T>::take(p.work_len());
        for band in p.blocks(items.len()) {
            let nt = band.len() * p.tx;
            transform_inputs(&p, xs, band.clone(), &mut v, &mut work);
            forward_products(&p, &u, &v, &mut mz, nt, threads);
            transform_outputs(&p, &mz, band.clone(), None, ys, &mut work);
            transform_grads(&p, gys, band, &mut mz, &mut work);
            weight_products(&p, &mz, &v, s, nt, threads);
        }
    };
    let mut s = Scratch::<T>::zeroed(9 * p.o * k);
    sum_chunks(p.flops(), p.n, &mut s, sum_items);
    add_weight_grads(&p, &s, dw);
}

/// `M_ξ = U_ξ · V_ξ` for the 9 points `ξ` of a block of `nt` tiles (`U` as
/// [`transform_kernels`] lays it out, `V` and `M` `[row][ξ][tile]`).
fn forward_products<T: Float>(p: &Tiles, u: &[T], v: &[T], m: &mut [T], nt: usize, threads: usize) {
    let k = p.k();
    for xi in 0..9 {
        let um = MatRef::new(&u[xi * k..], p.o, k).ld(9 * k);
        let vm = MatRef::new(&v[xi * nt..], k, nt).ld(9 * nt);
        let mm = MatMut::new(&mut m[xi * nt..], p.o, nt).ld(9 * nt);
        gemm_on(threads, um, vm, mm, false);
    }
}

/// `S_ξ += Z_ξ · V_ξᵀ` for the 9 points `ξ` of a block of `nt` tiles (`V` is stored
/// `[4c][ξ][tile]`, read transposed; `S` is laid out as `U`).
fn weight_products<T: Float>(p: &Tiles, z: &[T], v: &[T], s: &mut [T], nt: usize, threads: usize) {
    let k = p.k();
    for xi in 0..9 {
        let zm = MatRef::new(&z[xi * nt..], p.o, nt).ld(9 * nt);
        let vt = MatRef::transposed(&v[xi * nt..], nt, k).ld(9 * nt);
        let sm = MatMut::new(&mut s[xi * k..], p.o, k).ld(9 * k);
        gemm_on(threads, zm, vt, sm, true);
    }
}

/// The input gradient, added into `dx`.
pub(super) fn backward_input<T: Float>(g: &ConvGeom, gy: &[T], w: &[T], dx: &mut [T]) {
    backward_input_with(&Tiles::new::<T>(g), gy, w, dx)
}

fn backward_input_with<T: Float>(p: &Tiles, gy: &[T], w: &[T], dx: &mut [T]) {
    let (in_img, out_img, k) = (p.in_img(), p.out_img(), p.k());
    p.assert_sizes(dx.len(), gy.len(), w.len());
    let mut u = Scratch::<T>::take(9 * p.o * k);
    transform_kernels(p, w, &mut u);
    for_each_chunk(p.flops(), in_img, dx, |b0, dxs, threads| {
        let nb = dxs.len() / in_img;
        let gys = &gy[b0 * out_img..(b0 + nb) * out_img];
        let mut z = Scratch::<T>::take(9 * p.o * p.rows * p.tx);
        let mut nm = Scratch::<T>::take(9 * k * p.rows * p.tx);
        let mut work = Scratch::<T>::take(p.work_len());
        for band in p.blocks(nb) {
            let nt = band.len() * p.tx;
            transform_grads(p, gys, band.clone(), &mut z, &mut work);
            for xi in 0..9 {
                // N_ξ = U_ξᵀ · Z_ξ: U is stored [o, 4c], read transposed.
                let ut = MatRef::transposed(&u[xi * k..], k, p.o).ld(9 * k);
                let zm = MatRef::new(&z[xi * nt..], p.o, nt).ld(9 * nt);
                let mm = MatMut::new(&mut nm[xi * nt..], k, nt).ld(9 * nt);
                gemm_on(threads, ut, zm, mm, false);
            }
            add_input_grads(p, &nm, band, dxs, &mut work);
        }
    });
}

/// The weight gradient, added into `dw`: per tile `∂L/∂g = Gᵀ[(A e Aᵀ) ⊙ (Bᵀ d B)]G`, the
/// bracket summed over tiles as 9 products `S[ξ] = Z[ξ] · V[ξ]ᵀ` along the tiles, `Gᵀ S G`
/// once at the end. On several threads each chunk of the batch sums into its own `S`,
/// added in chunk order (deterministic for a given thread count).
pub(super) fn backward_weight<T: Float>(g: &ConvGeom, gy: &[T], x: &[T], dw: &mut [T]) {
    backward_weight_with(&Tiles::new::<T>(g), gy, x, dw)
}

fn backward_weight_with<T: Float>(p: &Tiles, gy: &[T], x: &[T], dw: &mut [T]) {
    let (in_img, out_img, k) = (p.in_img(), p.out_img(), p.k());
    p.assert_sizes(x.len(), gy.len(), dw.len());
    let sum_items = |items: Range<usize>, s: &mut [T], threads: usize| {
        let xs = &x[items.start * in_img..items.end * in_img];
        let gys = &gy[items.start * out_img..items.end * out_img];
        let mut v = Scratch::<T>::take(9 * k * p.rows * p.tx);
        let mut z = Scratch::<T>::take(9 * p.o * p.rows * p.tx);
        let mut work = Scratch::<T>::take(p.work_len());
        for band in p.blocks(items.len()) {
            let nt = band.len() * p.tx;
            transform_inputs(p, xs, band.clone(), &mut v, &mut work);
            transform_grads(p, gys, band, &mut z, &mut work);
            weight_products(p, &z, &v, s, nt, threads);
        }
    };
    let mut s = Scratch::<T>::zeroed(9 * p.o * k);
    sum_chunks(p.flops(), p.n, &mut s, sum_items);
    add_weight_grads(p, &s, dw);
}

/// `dw[oc, ci, a + 2p, b + 2q] += (Gᵀ S_ab G)[p, q]` with `Gᵀ = [[1, 1, 0], [0, 1, 1]]`:
/// the weight gradient from the transformed sums `s` (laid out as `U`, `[oc][ξ][4c]`), the
/// output channels split across threads.
fn add_weight_grads<T: Float>(p: &Tiles, s: &[T], dw: &mut [T]) {
    let (c, k) = (p.c, p.k());
    for_each_chunk(9 * s.len(), c * 16, dw, |o0, dws, _| {
        for (d, dwo) in dws.chunks_exact_mut(c * 16).enumerate() {
            let so = &s[(o0 + d) * 9 * k..(o0 + d + 1) * 9 * k];
            for (ci, kw) in dwo.chunks_exact_mut(16).enumerate() {
                for ph in 0..4 {
                    let at = |xi: usize| so[xi * k + ph * c + ci];
                    let r: [[T; 3]; 2] = std::array::from_fn(|i| {
                        std::array::from_fn(|q| at(3 * i + q) + at(3 * i + 3 + q))
                    });
                    for (i, ri) in r.iter().enumerate() {
                        for j in 0..2 {
                            kw[tap(ph, i, j)] += ri[j] + ri[j + 1];
                        }
                    }
                }
            }
        }
    });
}

/// Where tap `(i, j)` of phase `ph = 2a + b`'s 2×2 kernel sits in a 4×4 kernel: at
/// `(a + 2i, b + 2j)`.
fn tap(ph: usize, i: usize, j: usize) -> usize {
    (ph / 2 + 2 * i) * 4 + ph % 2 + 2 * j
}

/// `u[oc][ξ][ph·c + ci] = (G g Gᵀ)[ξ]` for the 2×2 kernel `g[p, q] = w[oc, ci, a + 2p, b + 2q]`
/// of every phase `ph = 2a + b` (each `U_ξ` is `[o, 4c]` with rows `9·4c` apart), the output
/// channels split across threads.
fn transform_kernels<T: Float>(p: &Tiles, w: &[T], u: &mut [T]) {
    let (c, k) = (p.c, p.k());
    let g = |[a, b]: [T; 2]| [a, a + b, b];
    for_each_chunk(9 * u.len(), 9 * k, u, |o0, us, _| {
        for (d, uo) in us.chunks_exact_mut(9 * k).enumerate() {
            let wo = &w[(o0 + d) * c * 16..(o0 + d + 1) * c * 16];
            for ph in 0..4 {
                // Row `ξ` of this channel's phase block: its `c` values contiguous.
                for (ci, kw) in wo.chunks_exact(16).enumerate() {
                    let at = |i: usize, j: usize| kw[tap(ph, i, j)];
                    let cols: [[T; 3]; 2] = std::array::from_fn(|j| g([at(0, j), at(1, j)]));
                    for r in 0..3 {
                        for (s, v) in g([cols[0][r], cols[1][r]]).into_iter().enumerate() {
                            uo[(r * 3 + s) * k + ph * c + ci] = v;
                        }
                    }
                }
            }
        }
    });
}

/// Splits the work area into pieces of the given lengths.
#[inline(always)]
fn carve<T, const N: usize>(mut work: &mut [T], lens: [usize; N]) -> [&mut [T]; N] {
    lens.map(|len| {
        let (head, rest) = std::mem::take(&mut work).split_at_mut(len);
        work = rest;
        head
    })
}

/// `q[m][s] = row[4s + m − 1]` for `s < q[m].len()` (zero outside the row): a row with a
/// zero margin on the left, split into its four column phases; and `q[4 + m][s] =
/// q[m][s + 1]` for `m < 2`, the next group's first two, taken from the row in the same
/// pass (read back from `q[m]` they stalled on the stores just made).
#[inline(always)]
fn split4<T: Float>(row: &[T], q: [&mut [T]; 6]) {
    let len = q[0].len();
    let w = row.len();
    // Whole groups: s = 1 … full, columns 4s − 1 … 4s + 2 all inside the row.
    let full = (w.saturating_sub(3) / 4).min(len - 1);
    let [q0, q1, q2, q3, q4, q5] = q;
    let body = row.get(3..3 + 4 * full).unwrap_or_default();
    // Four groups at a time in fixed sizes (whole-register shuffles: a row of 32 has only
    // seven groups, too few for the compiler's own vector loop), then group by group.
    let (blocks, rest) = body.as_chunks::<16>();
    for (k, c) in blocks.iter().enumerate() {
        let put = |q: &mut [T], at: usize, m: usize| {
            let d: &mut [T; 4] = (&mut q[at..at + 4]).try_into().expect("four groups");
            *d = [c[m], c[4 + m], c[8 + m], c[12 + m]];
        };
        let s = 1 + 4 * k;
        put(q0, s, 0);
        put(q1, s, 1);
        put(q2, s, 2);
        put(q3, s, 3);
        put(q4, s - 1, 0);
        put(q5, s - 1, 1);
    }
    let done = 4 * blocks.len();
    for (g, quad) in rest.chunks_exact(4).enumerate() {
        let s = 1 + done + g;
        (q0[s], q1[s], q2[s], q3[s]) = (quad[0], quad[1], quad[2], quad[3]);
        (q4[s - 1], q5[s - 1]) = (quad[0], quad[1]);
    }
    let at = |col: usize| if col < w { row[col] } else { T::ZERO };
    for s in std::iter::once(0).chain(full + 1..len) {
        q0[s] = if s == 0 { T::ZERO } else { at(4 * s - 1) };
        q1[s] = at(4 * s);
        q2[s] = at(4 * s + 1);
        q3[s] = at(4 * s + 2);
    }
    for s in full..len - 1 {
        q4[s] = at(4 * s + 3);
        q5[s] = at(4 * s + 4);
    }
}

/// `row[4s + m − 1] += q[m][s] + q[4 + m][s − 1]` (the second term for `m < 2` only)
/// wherever that lies inside the row, for `s ≤ q[m].len()` (`q[m][len]` read as zero): the
/// adjoint of [`split4`], each of its six runs read where it was made (copied into four
/// runs first, they stalled on the stores just made).
#[inline(always)]
fn merge4_add<T: Float>(row: &mut [T], q: [&[T]; 6]) {
    let tx = q[0].len();
    let w = row.len();
    let full = (w.saturating_sub(3) / 4).min(tx.saturating_sub(1));
    let [q0, q1, q2, q3, q4, q5] = q;
    let body = row
        .get_mut(3..3 + 4 * full)
        .unwrap_or_default()
        .chunks_exact_mut(4);
    let ins = q0[1..=full].iter().zip(&q1[1..=full]);
    let ins = ins.zip(q2[1..=full].iter().zip(&q3[1..=full]));
    let ins = ins.zip(q4[..full].iter().zip(&q5[..full]));
    for (quad, (((&a, &b), (&c, &d)), (&a4, &b5))) in body.zip(ins) {
        quad[0] += a + a4;
        quad[1] += b + b5;
        quad[2] += c;
        quad[3] += d;
    }
    let at = |qm: &[T], s: usize| if s < tx { qm[s] } else { T::ZERO };
    for s in std::iter::once(0).chain(full + 1..=tx) {
        let prev = |qm: &[T]| if s > 0 { qm[s - 1] } else { T::ZERO };
        let v = [
            at(q0, s) + prev(q4),
            at(q1, s) + prev(q5),
            at(q2, s),
            at(q3, s),
        ];
        for (m, v) in v.into_iter().enumerate() {
            let col = (4 * s + m).wrapping_sub(1);
            if col < w {
                row[col] += v;
            }
        }
    }
}

/// Three disjoint runs of `len` elements of `v`, starting at increasing offsets.
#[inline(always)]
fn runs<T>(v: &mut [T], [i0, i1, i2]: [usize; 3], len: usize) -> [&mut [T]; 3] {
    let (a, rest) = v[i0..].split_at_mut(i1 - i0);
    let (b, c) = rest.split_at_mut(i2 - i1);
    [&mut a[..len], &mut b[..len], &mut c[..len]]
}

tiers! {
/// `v[ph·c + ci][ξ][t] = (Bᵀ d B)[ξ]` for the 3×3 patch `d` of phase `ph` of channel `ci`
/// under every tile `t` of the tile rows `rows` (counted across the images of `x`; zero
/// outside the input), numbered from the first of them.
///
/// Tile row `ty` reads input rows `4ty − 1 … 4ty + 4`, each split into its four column
/// phases ([`split4`]); the pass along y combines rows `a`, `a + 2`, `a + 4` of the six for
/// row phase `a`, the pass along x the column phases `b` and `b + 2`.
fn transform_inputs<T: Float>(
    p: &Tiles,
    x: &[T],
    rows: Range<usize>,
    v: &mut [T],
    work: &mut [T],
) {
    let tx = p.tx;
    let nt = rows.len() * tx;
    let plane = p.h * p.w;
    // g[j][m][t]: input row 4ty − 1 + j, column 4s − 1 + m of tile t = (ty, s), for the six
    // rows and six columns a tile's four 3×3 phase patches read; each run one longer than
    // the block (a row's split writes one past its tiles, the next row overwrites it).
    let gl = nt + 1;
    let [g] = carve(work, [36 * gl]);
    for ci in 0..p.c {
        for (bt, row) in rows.clone().enumerate() {
            let (b, ty) = (row / p.ty, row % p.ty);
            let xp = &x[(b * p.c + ci) * plane..(b * p.c + ci + 1) * plane];
            let t0 = bt * tx;
            for j in 0..6 {
                let gj = &mut g[j * 6 * gl..(j + 1) * 6 * gl];
                let r = (4 * ty + j).wrapping_sub(1);
                let mut six = gj.chunks_exact_mut(gl);
                let mut next = || six.next().expect("six runs");
                let (g0, g1, g2, g3, g4, g5) = (next(), next(), next(), next(), next(), next());
                if r >= p.h {
                    for q in [g0, g1, g2, g3, g4, g5] {
                        q[t0..t0 + tx].fill(T::ZERO);
                    }
                    continue;
                }
                let e = t0..t0 + tx + 1;
                let qs = [
                    &mut g0[e.clone()],
                    &mut g1[e.clone()],
                    &mut g2[e.clone()],
                    &mut g3[e],
                    &mut g4[t0..t0 + tx],
                    &mut g5[t0..t0 + tx],
                ];
                // Columns 4s + 3 and 4s + 4 (g4, g5) are columns −1 and 0 of the next tile.
                split4(&xp[r * p.w..(r + 1) * p.w], qs);
            }
        }
        let run = |j: usize, m: usize| &g[(j * 6 + m) * gl..][..nt];
        for a in 0..2 {
            for pb in 0..2 {
                let kk = (2 * a + pb) * p.c + ci;
                for pi in 0..3 {
                    let at = |xi: usize| (kk * 9 + xi) * nt;
                    let [v0, v1, v2] = runs(v, [at(3 * pi), at(3 * pi + 1), at(3 * pi + 2)], nt);
                    // Bᵀ along y, row pi: (d0 − d1, d1, d2 − d1) of rows a, a + 2, a + 4;
                    // then along x over columns b, b + 2, b + 4.
                    let mid = [run(a + 2, pb), run(a + 2, pb + 2), run(a + 2, pb + 4)];
                    if pi == 1 {
                        for t in 0..nt {
                            let (y0, y1, y2) = (mid[0][t], mid[1][t], mid[2][t]);
                            v0[t] = y0 - y1;
                            v1[t] = y1;
                            v2[t] = y2 - y1;
                        }
                    } else {
                        let j = if pi == 0 { a } else { a + 4 };
                        // pi = 0: d0 − d1; pi = 2: d2 − d1; both `outer − mid`.
                        let out = [run(j, pb), run(j, pb + 2), run(j, pb + 4)];
                        for t in 0..nt {
                            let y0 = out[0][t] - mid[0][t];
                            let y1 = out[1][t] - mid[1][t];
                            let y2 = out[2][t] - mid[2][t];
                            v0[t] = y0 - y1;
                            v1[t] = y1;
                            v2[t] = y2 - y1;
                        }
                    }
                }
            }
        }
    }
}
}

tiers! {
/// `z[oc][ξ][t] = (A e Aᵀ)[ξ]` for the 2×2 block `e` of the output gradient under every
/// tile `t` of the tile rows `rows` (zero past the bottom and right edges).
fn transform_grads<T: Float>(p: &Tiles, gy: &[T], rows: Range<usize>, z: &mut [T], work: &mut [T]) {
    let tx = p.tx;
    let nt = rows.len() * tx;
    let plane = p.ho * p.wo;
    // e[r][c][t]: column c of row r of tile t's 2×2 block, for the whole block of tiles.
    let [e] = carve(work, [4 * nt]);
    for oc in 0..p.o {
        for (bt, row) in rows.clone().enumerate() {
            let (b, ty) = (row / p.ty, row % p.ty);
            let go = &gy[(b * p.o + oc) * plane..(b * p.o + oc + 1) * plane];
            let t0 = bt * tx;
            for r in 0..2 {
                let (e0, e1) = e[2 * r * nt..(2 * r + 2) * nt].split_at_mut(nt);
                let (e0, e1) = (&mut e0[t0..t0 + tx], &mut e1[t0..t0 + tx]);
                let i = 2 * ty + r;
                if i >= p.ho {
                    e0.fill(T::ZERO);
                    e1.fill(T::ZERO);
                    continue;
                }
                // An odd width leaves the last tile's second column zero.
                split_phases_inline(&go[i * p.wo..(i + 1) * p.wo], e0, &mut e1[..p.wo / 2]);
                e1[p.wo / 2..].fill(T::ZERO);
            }
        }
        // A along x, (e0, e0 + e1, e1), then along y, over the whole block.
        let [e00, e01, e10, e11] = carve(e, [nt; 4]);
        let zo = &mut z[oc * 9 * nt..(oc + 1) * 9 * nt];
        let [z0, z1, z2, z3, z4, z5, z6, z7, z8] = carve(zo, [nt; 9]);
        for t in 0..nt {
            let (a0, a2) = (e00[t], e01[t]);
            let (b0, b2) = (e10[t], e11[t]);
            let (a1, b1) = (a0 + a2, b0 + b2);
            z0[t] = a0;
            z1[t] = a1;
            z2[t] = a2;
            z3[t] = a0 + b0;
            z4[t] = a1 + b1;
            z5[t] = a2 + b2;
            z6[t] = b0;
            z7[t] = b1;
            z8[t] = b2;
        }
    }
}
}

tiers! {
/// `y[oc] = bias[oc] + Aᵀ m A` for every tile of the tile rows `rows`, clipped at the
/// output's bottom and right edges.
fn transform_outputs<T: Float>(
    p: &Tiles,
    m: &[T],
    rows: Range<usize>,
    bias: Option<&[T]>,
    y: &mut [MaybeUninit<T>],
    work: &mut [T],
) {
    let tx = p.tx;
    let nt = rows.len() * tx;
    let plane = p.ho * p.wo;
    // out[r][c][t]: output row r, column c of tile t, for the whole block of tiles.
    let [out] = carve(work, [4 * nt]);
    for oc in 0..p.o {
        let bias = bias.map_or(T::ZERO, |b| b[oc]);
        {
            let mo = &m[oc * 9 * nt..(oc + 1) * 9 * nt];
            let e: [&[T]; 9] = std::array::from_fn(|xi| &mo[xi * nt..(xi + 1) * nt]);
            let [y00, y01, y10, y11] = carve(&mut *out, [nt; 4]);
            // Aᵀ along y (rows 0 + 1, 1 + 2), then along x.
            for t in 0..nt {
                let (r0, r1, r2) = (e[0][t] + e[3][t], e[1][t] + e[4][t], e[2][t] + e[5][t]);
                let (s0, s1, s2) = (e[3][t] + e[6][t], e[4][t] + e[7][t], e[5][t] + e[8][t]);
                y00[t] = bias + (r0 + r1);
                y01[t] = bias + (r1 + r2);
                y10[t] = bias + (s0 + s1);
                y11[t] = bias + (s1 + s2);
            }
        }
        for (bt, row) in rows.clone().enumerate() {
            let (b, ty) = (row / p.ty, row % p.ty);
            let yo = &mut y[(b * p.o + oc) * plane..(b * p.o + oc + 1) * plane];
            let t0 = bt * tx;
            for r in 0..2 {
                let i = 2 * ty + r;
                if i >= p.ho {
                    break;
                }
                let (c0, c1) = (&out[2 * r * nt + t0..][..tx], &out[(2 * r + 1) * nt + t0..][..tx]);
                let yrow = &mut yo[i * p.wo..(i + 1) * p.wo];
                for (pair, (&v0, &v1)) in yrow.chunks_exact_mut(2).zip(c0.iter().zip(c1)) {
                    pair[0].write(v0);
                    pair[1].write(v1);
                }
                if p.wo % 2 == 1 {
                    yrow[p.wo - 1].write(c0[tx - 1]);
                }
            }
        }
    }
}
}

tiers! {
/// `dx += B n Bᵀ` for every tile of the tile rows `rows`, phase and channel: the 3×3 patch
/// of phase `(a, b)` under tile `(ty, tx)` lands on input rows `4ty − 1 + a + 2i` and columns
/// `4tx − 1 + b + 2j`; patches of neighbouring tiles overlap by one row or column of each
/// phase, and what falls outside the input is dropped.
fn add_input_grads<T: Float>(p: &Tiles, n: &[T], rows: Range<usize>, dx: &mut [T], work: &mut [T]) {
    let tx = p.tx;
    let nt = rows.len() * tx;
    let plane = p.h * p.w;
    // h[j][m][t]: what tile t adds at row 4ty − 1 + j, column 4s − 1 + m (its four phase
    // patches, 6 × 6).
    let [h] = carve(work, [36 * nt]);
    for ci in 0..p.c {
        for a in 0..2 {
            for pb in 0..2 {
                let kk = (2 * a + pb) * p.c + ci;
                let e: [&[T]; 9] = std::array::from_fn(|xi| &n[(kk * 9 + xi) * nt..][..nt]);
                for pi in 0..3 {
                    let j = a + 2 * pi;
                    let at = |m: usize| (j * 6 + m) * nt;
                    let [h0, h1, h2] = runs(h, [at(pb), at(pb + 2), at(pb + 4)], nt);
                    // B along y, row pi: (n0, n1 − n0 − n2, n2) of each column; then along x.
                    let (c0, c1, c2) = match pi {
                        0 => (e[0], e[1], e[2]),
                        1 => (e[3], e[4], e[5]),
                        _ => (e[6], e[7], e[8]),
                    };
                    if pi == 1 {
                        for t in 0..nt {
                            let y0 = c0[t] - e[0][t] - e[6][t];
                            let y1 = c1[t] - e[1][t] - e[7][t];
                            let y2 = c2[t] - e[2][t] - e[8][t];
                            h0[t] = y0;
                            h1[t] = y1 - y0 - y2;
                            h2[t] = y2;
                        }
                    } else {
                        for t in 0..nt {
                            let (y0, y1, y2) = (c0[t], c1[t], c2[t]);
                            h0[t] = y0;
                            h1[t] = y1 - y0 - y2;
                            h2[t] = y2;
                        }
                    }
                }
            }
        }
        for (bt, row) in rows.clone().enumerate() {
            let (b, ty) = (row / p.ty, row % p.ty);
            let xp = &mut dx[(b * p.c + ci) * plane..(b * p.c + ci + 1) * plane];
            let t0 = bt * tx;
            for j in 0..6 {
                let r = (4 * ty + j).wrapping_sub(1);
                if r >= p.h {
                    continue;
                }
                let hr = |m: usize| &h[(j * 6 + m) * nt + t0..][..tx];
                // Columns 4s − 1 and 4s take tile s's columns 0, 1 and tile s − 1's 4, 5.
                let hs = [hr(0), hr(1), hr(2), hr(3), hr(4), hr(5)];
                merge4_add(&mut xp[r * p.w..(r + 1) * p.w], hs);
            }
        }
    }
}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::tests::{data, geom as conv_geom, reference};
    use crate::kernels::out;

    fn geom(n: usize, c: usize, hw: (usize, usize), o: usize) -> ConvGeom {
        conv_geom(n, c, hw, o, (4, 4), (2, 2), (1, 1), (1, 1), 1)
    }

    /// Odd and even sizes, one image and several, planes narrower than a tile, few
    /// channels; with the default blocks and with one tile row per block (bands that
    /// split an image).
    fn configs() -> Vec<(ConvGeom, usize)> {
        let mut out = Vec::new();
        for (n, c, hw, o) in [
            (1, 1, (2, 2), 1),
            (2, 3, (8, 8), 2),
            (1, 2, (9, 7), 3),
            (3, 2, (5, 12), 2),
            (2, 5, (16, 10), 4),
            (1, 3, (3, 17), 2),
            (2, 4, (13, 13), 5),
        ] {
            let g = geom(n, c, hw, o);
            let rows = Tiles::new::<f64>(&g).rows;
            out.push((g, rows));
            out.push((g, 1));
            out.push((g, 3));
        }
        out
    }

    /// Every (image, output channel, output row, output column, input channel, tap row, tap
    /// column) of the convolution `g`.
    fn positions(
        g: &ConvGeom,
    ) -> impl Iterator<Item = (usize, usize, usize, usize, usize, usize, usize)> + use<> {
        let g = *g;
        (0..g.n * g.o * g.ho * g.wo * g.c * 16).map(move |k| {
            let (k, tap) = (k / 16, k % 16);
            let (k, ci) = (k / g.c, k % g.c);
            let (k, j) = (k / g.wo, k % g.wo);
            let (k, i) = (k / g.ho, k % g.ho);
            (k / g.o, k % g.o, i, j, ci, tap / 4, tap % 4)
        })
    }

    fn tiles(g: &ConvGeom, rows: usize) -> Tiles {
        Tiles {
            rows,
            ..Tiles::new::<f64>(g)
        }
    }

    fn close(got: &[f64], want: &[f64], what: &str, g: &ConvGeom) {
        assert_eq!(got.len(), want.len());
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
                "{what} {g:?} at {i}: {a} vs {b}"
            );
        }
    }

    #[test]
    fn forward_matches_the_direct_definition() {
        for (g, rows) in configs() {
            let p = tiles(&g, rows);
            let (x, w) = (data(g.n * g.c * g.h * g.w, 0.3), data(g.o * g.c * 16, 0.7));
            let bias = data(g.o, 0.9);
            let want = reference(&g, &x, &w, Some(&bias));
            let got =
                unsafe { out::written(want.len(), |y| forward_with(&p, &x, &w, Some(&bias), y)) };
            close(&got, &want, "forward", &g);
        }
    }

    /// `⟨e, conv(x, w)⟩` is linear in x and in w: the input gradient must give
    /// `⟨dx, x⟩` and the weight gradient `⟨dw, w⟩` for every x and w, with `dx`, `dw`
    /// the gradients of that pairing (checked on unit vectors through the reference).
    #[test]
    fn gradients_are_the_adjoints_of_the_forward() {
        for (g, rows) in configs() {
            let p = tiles(&g, rows);
            let (xn, wn, yn) = (
                g.n * g.c * g.h * g.w,
                g.o * g.c * 16,
                g.n * g.o * g.ho * g.wo,
            );
            let (x, w, e) = (data(xn, 0.3), data(wn, 0.7), data(yn, 0.5));
            let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(a, b)| a * b).sum::<f64>();
            // dx[i] = ⟨e, conv(unit_i, w)⟩, dw[i] = ⟨e, conv(x, unit_i)⟩.
            let mut want_dx = vec![0.0; xn];
            for (i, d) in want_dx.iter_mut().enumerate() {
                let mut u = vec![0.0; xn];
                u[i] = 1.0;
                *d = dot(&e, &reference(&g, &u, &w, None)) + 0.25;
            }
            let mut want_dw = vec![0.0; wn];
            for (i, d) in want_dw.iter_mut().enumerate() {
                let mut u = vec![0.0; wn];
                u[i] = 1.0;
                *d = dot(&e, &reference(&g, &x, &u, None)) - 0.5;
            }
            let (mut dx, mut dw) = (vec![0.25; xn], vec![-0.5; wn]);
            backward_input_with(&p, &e, &w, &mut dx);
            backward_weight_with(&p, &e, &x, &mut dw);
            close(&dx, &want_dx, "input gradient", &g);
            close(&dw, &want_dw, "weight gradient", &g);
        }
    }

    /// Through the conv entry points (f32, every tier's code path the machine runs): an
    /// eligible geometry reaches this routine, and its three results match the f64
    /// reference to f32 rounding.
    #[test]
    fn the_shared_transform_gives_the_bits_of_the_two_passes() {
        // Batch 1, odd sizes, and a geometry split across threads (chunks of the batch).
        for g in [
            geom(1, 16, (9, 7), 17),
            geom(3, 16, (12, 10), 16),
            geom(5, 24, (10, 8), 33),
        ] {
            let f32s = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect::<Vec<f32>>();
            let x = f32s(data(g.n * g.c * g.h * g.w, 0.37));
            let w = f32s(data(g.o * g.c * 16, 0.71));
            let e = f32s(data(g.n * g.o * g.ho * g.wo, 0.53));
            let init = f32s(data(w.len(), 0.11));
            let (mut dw, mut want_dw) = (init.clone(), init);
            // SAFETY: both forwards write every element.
            let y = unsafe {
                out::written(e.len(), |y| {
                    forward_and_weight_grad(&g, &x, &w, &e, y, &mut dw)
                })
            };
            let want = unsafe { out::written(e.len(), |y| forward_into(&g, &x, &w, None, y)) };
            backward_weight(&g, &e, &x, &mut want_dw);
            let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&y), bits(&want), "forward {g:?}");
            assert_eq!(bits(&dw), bits(&want_dw), "weight gradient {g:?}");
        }
    }

    #[test]
    fn the_conv_kernels_take_this_path_when_eligible() {
        use crate::kernels::conv::{
            conv2d_backward_input, conv2d_backward_weight, conv2d_forward_new,
        };
        // The last is big enough for the kernel transform and the weight gradient's last
        // step to split the output channels across threads.
        for g in [
            geom(3, 16, (12, 10), 16),
            geom(2, 17, (9, 14), 20),
            geom(2, 24, (10, 8), 33),
        ] {
            assert!(eligible(&g));
            let (xn, wn) = (g.n * g.c * g.h * g.w, g.o * g.c * 16);
            let (x, w, bias) = (data(xn, 0.37), data(wn, 0.71), data(g.o, 1.3));
            let e = data(g.n * g.o * g.ho * g.wo, 0.53);
            let f32s = |v: &[f64]| v.iter().map(|&v| v as f32).collect::<Vec<f32>>();
            let (xf, wf, bf, ef) = (f32s(&x), f32s(&w), f32s(&bias), f32s(&e));
            let y = conv2d_forward_new(&g, &xf, &wf, Some(&bf));
            let want = reference(&g, &x, &w, Some(&bias));
            let (mut dx, mut dw) = (vec![0.0f32; xn], vec![0.0f32; wn]);
            conv2d_backward_input(&g, &ef, &wf, &mut dx);
            conv2d_backward_weight(&g, &ef, &xf, &mut dw);
            // Both gradients by their definition: output (i, j) reads input (2i − 1 + p,
            // 2j − 1 + q) through tap (p, q).
            let (mut want_dx, mut want_dw) = (vec![0.0; xn], vec![0.0; wn]);
            for (b, oc, i, j, ci, tp, tq) in positions(&g) {
                let (r, col) = ((2 * i + tp).wrapping_sub(1), (2 * j + tq).wrapping_sub(1));
                if r >= g.h || col >= g.w {
                    continue;
                }
                let ei = e[((b * g.o + oc) * g.ho + i) * g.wo + j];
                let xi = ((b * g.c + ci) * g.h + r) * g.w + col;
                let wi = (oc * g.c + ci) * 16 + tp * 4 + tq;
                want_dx[xi] += ei * w[wi];
                want_dw[wi] += ei * x[xi];
            }
            for (got, want, what) in [
                (&y, &want, "forward"),
                (&dx, &want_dx, "input"),
                (&dw, &want_dw, "weight"),
            ] {
                let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                for (i, (&a, &b)) in got.iter().zip(want.iter()).enumerate() {
                    assert!(
                        (a as f64 - b).abs() < 2e-5 * scale,
                        "{what} {g:?} at {i}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn eligibility() {
        assert!(eligible(&geom(32, 32, (32, 32), 64)));
        assert!(!eligible(&geom(32, 8, (32, 32), 64)), "few input channels");
        assert!(!eligible(&geom(32, 32, (32, 32), 8)), "few output channels");
        let g = conv_geom(2, 32, (16, 16), 32, (4, 4), (2, 2), (2, 2), (1, 1), 1);
        assert!(!applies(&g), "padding 2");
        let g = conv_geom(2, 32, (16, 16), 32, (4, 4), (2, 2), (1, 1), (1, 1), 2);
        assert!(!applies(&g), "groups");
        let g = conv_geom(2, 32, (16, 16), 32, (3, 3), (2, 2), (1, 1), (1, 1), 1);
        assert!(!applies(&g), "3x3");
    }
}
