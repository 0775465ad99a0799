//! 3×3, stride-1 convolutions by Winograd's minimal filtering F(2×2, 3×3).
//!
//! Each 2×2 block of outputs (a *tile*) is read from a 4×4 patch of the input. In the
//! transformed domain the convolution of a patch with a kernel is an elementwise product of
//! 16 numbers, so across channels it becomes 16 independent matrix products
//! `M[ξ] = U[ξ] · V[ξ]` (`U`: transformed kernels, `[out, in]`; `V`: transformed patches,
//! `[in, tiles]`), with 16 multiply-adds per tile and channel pair where the direct form takes
//! 36: 2.25× fewer. The transforms (`Bᵀ d B`, `G g Gᵀ`, `Aᵀ m A`) use only 0, ±1 and ±½, so
//! they round little; the products go through [`gemm`](crate::kernels::gemm).
//!
//! The input gradient of a 3×3 stride-1 convolution is itself one (of the output gradient
//! with the kernels flipped and their in/out roles swapped, padding `2 − pad`), so the same
//! routine serves the forward and [`conv2d_backward_input`](crate::kernels::conv).

use std::mem::MaybeUninit;

use super::ConvGeom;
use crate::float::Float;
use crate::kernels::gemm::{MatMut, MatRef, gemm_on};
use crate::kernels::out;
use crate::runtime::scratch::Scratch;
use crate::runtime::simd::{copy_run, tiers};
use crate::runtime::threads::{for_each_chunk, sum_chunks};

/// Whether a convolution goes through Winograd: a 3×3 kernel, stride 1, no dilation, one
/// group, padding at most 2 (so that the input gradient, padded `2 − pad`, qualifies too),
/// and enough channels on both sides for the products to outweigh the transforms.
pub fn eligible(g: &ConvGeom) -> bool {
    applies(g)
        && g.c >= MIN_CHANNELS
        && g.o >= MIN_CHANNELS
        && g.n >= MIN_BATCH
        && g.out_plane() >= MIN_PLANE
}

/// Below this many output positions per plane the unfolded product, several images to a
/// product, runs faster: on 7×7 planes the 2×2 tiles cover 8×8 (a third more products),
/// and the transforms are a larger share. On an AMD EPYC Zen 4 (AVX-512, 2 threads,
/// interleaved pairs, fastest rounds) ResNet-18's 512-channel 3×3 layer on 7×7 planes at
/// batch 32 took 0.96-0.99x Winograd's time forward and 0.86-0.91x forward and backward
/// unfolded; on 14×14 planes Winograd stays well ahead (its 256-channel layer took 1.5x
/// unfolded).
pub const MIN_PLANE: usize = 64;

/// Below this many images the unfolded product runs faster. One image's blocks of tiles
/// are few and their products short, and the batch is what the routine spreads over
/// threads: on an Intel Xeon (AVX-512, 2 threads), ResNet-18's stride-1 3×3 layers at
/// batch 1 took 0.8-1.2x (56×56), 1.0-1.4x (28×28), 2.3-3.3x (14×14) and 5.2-8x (7×7) the
/// unfolded time, forward and forward+backward, while at batch 32 the same layers ran in
/// 0.55-0.8x of it.
pub const MIN_BATCH: usize = 2;

/// Whether the routine computes this convolution at all (any channel counts).
fn applies(g: &ConvGeom) -> bool {
    g.win.kh == 3
        && g.win.kw == 3
        && g.win.sh == 1
        && g.win.sw == 1
        && g.win.dh == 1
        && g.win.dw == 1
        && g.groups == 1
        && g.win.ph <= 2
        && g.win.pw <= 2
}

/// Below this many input or output channels the transforms cost more than the multiplies
/// they save.
pub const MIN_CHANNELS: usize = 16;

/// The sizes of one Winograd pass: `n` images of `cin` channels `h × w`, padded `ph`, `pw`,
/// into `cout` channels of `(h + 2ph − 2) × (w + 2pw − 2)`.
#[derive(Clone, Copy, Debug)]
struct Pass {
    n: usize,
    cin: usize,
    cout: usize,
    h: usize,
    w: usize,
    ph: usize,
    pw: usize,
    ho: usize,
    wo: usize,
    /// Bytes of transformed values one block may hold ([`BLOCK_BYTES`]; tests shrink it to
    /// split images across blocks).
    budget: usize,
    /// The fewest tiles in a block of the forward ([`MIN_TILES`]; 0 in the tests that
    /// shrink the budget).
    min_tiles: usize,
}

/// The default [`Pass::budget`]: a block's transformed inputs and outputs in about 1 MiB.
const BLOCK_BYTES: usize = 1 << 20;

impl Pass {
    fn tiles_y(&self) -> usize {
        self.ho.div_ceil(2)
    }
    fn tiles_x(&self) -> usize {
        self.wo.div_ceil(2)
    }
    fn tiles(&self) -> usize {
        self.tiles_y() * self.tiles_x()
    }
    /// Tile rows per block: enough tiles for efficient products, few enough that a block's
    /// transformed inputs and outputs (`16·(cin + cout)` values per tile) stay in cache,
    /// but at least `min_tiles` tiles. A block may span several images (small images would
    /// otherwise make short products).
    fn block_rows(&self, elem: usize, min_tiles: usize) -> usize {
        let per_row = 16 * (self.cin + self.cout) * self.tiles_x() * elem;
        (self.budget / per_row.max(1))
            .max(min_tiles.div_ceil(self.tiles_x()))
            .max(1)
    }
}

/// The fewest tiles in a block of the forward (and input gradient). With hundreds of
/// channels the cache budget alone left blocks of 16 to 28 tiles (one 7×7 image, two rows
/// of a 14×14 one), and each of the 16 products packed its 512×512 transformed kernels for
/// a product 16 columns wide. Measured on an AMD EPYC Zen 4 (AVX-512, 2 threads, batch 32,
/// three interleaved runs): ResNet-18's 512-channel layer on 7×7 planes 53-69 → 39-43 ms
/// forward, the 256-channel one on 14×14 28-31 → 24-27 ms; S5 (112 tiles) unchanged.
const MIN_TILES: usize = 128;

/// The same for the weight gradient, whose products run along the tiles: from 128 tiles
/// they take the dot-product path, which cost S5 6-8% there; 64 kept most of the gain on
/// the 512-channel layer (forward+backward 148-163 → 140-145 ms) and left S5 as it was.
const MIN_TILES_WEIGHT: usize = 64;

impl Pass {
    /// The forward of `g`: `x` (`[n, c, h, w]`) into `y` (`[n, o, ho, wo]`).
    fn forward(g: &ConvGeom) -> Self {
        assert!(
            applies(g),
            "winograd: not a 3x3 stride-1 convolution: {g:?}"
        );
        Pass {
            n: g.n,
            cin: g.c,
            cout: g.o,
            h: g.h,
            w: g.w,
            ph: g.win.ph,
            pw: g.win.pw,
            ho: g.ho,
            wo: g.wo,
            budget: BLOCK_BYTES,
            min_tiles: MIN_TILES,
        }
    }
    /// The input gradient of `g` as a convolution: `gy` (`[n, o, ho, wo]`) padded `2 − pad`
    /// into `dx` (`[n, c, h, w]`).
    fn input_grad(g: &ConvGeom) -> Self {
        let f = Self::forward(g);
        Pass {
            cin: g.o,
            cout: g.c,
            h: g.ho,
            w: g.wo,
            ph: 2 - g.win.ph,
            pw: 2 - g.win.pw,
            ho: g.h,
            wo: g.w,
            ..f
        }
    }
}

/// The forward through Winograd (`g` a 3×3 stride-1 convolution with padding at most 2,
/// see [`eligible`]): `y = bias + conv(x, w)`, into memory not written yet: every element of
/// `y` is written.
pub(crate) fn forward_into<T: Float>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    y: &mut [MaybeUninit<T>],
) {
    let pass = Pass::forward(g);
    let mut u = Scratch::<T>::take(16 * g.o * g.c);
    transform_kernels(g.o, g.c, w, false, &mut u);
    // SAFETY: without `accumulate`, `run` reads nothing of `y`.
    unsafe { run(&pass, x, &u, bias, y, false) };
}

/// The input gradient through Winograd (`g` as for [`forward`]), added into `dx`: the
/// convolution of `gy` with the flipped, transposed kernels, padded `2 − pad`.
pub fn backward_input<T: Float>(g: &ConvGeom, gy: &[T], w: &[T], dx: &mut [T]) {
    let pass = Pass::input_grad(g);
    let mut u = Scratch::<T>::take(16 * g.o * g.c);
    transform_kernels(g.o, g.c, w, true, &mut u);
    // SAFETY: `dx` is initialised and `run` writes only initialised values into it.
    unsafe { run(&pass, gy, &u, None, out::as_uninit(dx), true) };
}

/// The weight gradient through Winograd (`g` as for [`forward`]), added into `dw`.
///
/// The forward is linear in each kernel `k`: per tile, `y = Aᵀ[(G k Gᵀ) ⊙ (Bᵀ d B)]A`, so
/// `∂L/∂k = Gᵀ[(A gy Aᵀ) ⊙ (Bᵀ d B)]G`. Summed over tiles, the bracket is 16 products
/// `S[ξ] = Z[ξ] · V[ξ]ᵀ` (`Z`: transformed output gradients `[o, tiles]`, `V`: transformed
/// patches `[c, tiles]`) with the tiles as the long inner dimension; `Gᵀ S G` comes last, once.
/// On several threads each chunk of the batch sums into its own `S`, added in chunk order
/// (deterministic for a given thread count).
pub fn backward_weight<T: Float>(g: &ConvGeom, gy: &[T], x: &[T], dw: &mut [T]) {
    weight_grad(&Pass::forward(g), gy, x, dw)
}

/// [`backward_weight`] for the forward pass `p`.
fn weight_grad<T: Float>(p: &Pass, gy: &[T], x: &[T], dw: &mut [T]) {
    let (in_img, out_img) = (p.cin * p.h * p.w, p.cout * p.ho * p.wo);
    assert!(
        x.len() == p.n * in_img && gy.len() == p.n * out_img && dw.len() == p.cout * p.cin * 9,
        "winograd: buffer sizes do not match the geometry"
    );
    if p.n == 0 || p.tiles() == 0 || dw.is_empty() {
        return;
    }
    let (tx_n, rows) = (
        p.tiles_x(),
        p.block_rows(std::mem::size_of::<T>(), p.min_tiles.min(MIN_TILES_WEIGHT)),
    );
    let len = 16 * p.cout * p.cin;
    // gy[b, :, band] · V(band)ᵀ for every ξ, summed over `items` into `s`.
    let sum_items = |items: std::ops::Range<usize>, s: &mut [T], threads: usize| {
        let mut v = Scratch::<T>::take(16 * p.cin * rows * tx_n);
        let mut z = Scratch::<T>::take(16 * p.cout * rows * tx_n);
        let mut work = Scratch::<T>::take(Rows::len(tx_n, rows));
        let xs = &x[items.start * in_img..items.end * in_img];
        let gys = &gy[items.start * out_img..items.end * out_img];
        let all = items.len() * p.tiles_y();
        for r0 in (0..all).step_by(rows) {
            let band = r0..(r0 + rows).min(all);
            let nt = band.len() * tx_n;
            transform_inputs(p, xs, band.clone(), &mut v, &mut work);
            transform_grads(p, gys, band, &mut z, &mut work);
            for xi in 0..16 {
                // S_ξ += Z_ξ · V_ξᵀ: V is stored [cin, nt], read transposed.
                let zm = MatRef::new(&z[xi * p.cout * nt..(xi + 1) * p.cout * nt], p.cout, nt);
                let vt = MatRef::transposed(&v[xi * p.cin * nt..(xi + 1) * p.cin * nt], nt, p.cin);
                let sm = &mut s[xi * p.cout * p.cin..(xi + 1) * p.cout * p.cin];
                gemm_on(threads, zm, vt, MatMut::new(sm, p.cout, p.cin), true);
            }
        }
    };
    let flops = 2 * 16 * p.n * p.tiles() * p.cin * p.cout;
    let mut s = Scratch::<T>::zeroed(len);
    sum_chunks(flops, p.n, &mut s, sum_items);
    untransform_kernel_grads(p.cout, p.cin, &s, dw);
}

/// `dw[o, c] += Gᵀ S[·][o][c] G` (3×3 from 4×4) for every kernel.
fn untransform_kernel_grads<T: Float>(o: usize, c: usize, s: &[T], dw: &mut [T]) {
    let half = T::from_f64(0.5);
    let gt = |e: [T; 4]| {
        [
            e[0] + (e[1] + e[2]) * half,
            (e[1] - e[2]) * half,
            (e[1] + e[2]) * half + e[3],
        ]
    };
    for oc in 0..o {
        for ic in 0..c {
            let at = |xi: usize| s[(xi * o + oc) * c + ic];
            // Gᵀ S column by column (4 columns of 3), then each of its 3 rows times G.
            let cols: [[T; 3]; 4] =
                std::array::from_fn(|q| gt([at(q), at(4 + q), at(8 + q), at(12 + q)]));
            let k = &mut dw[(oc * c + ic) * 9..(oc * c + ic) * 9 + 9];
            for r in 0..3 {
                let row = [cols[0][r], cols[1][r], cols[2][r], cols[3][r]];
                for (q, v) in gt(row).into_iter().enumerate() {
                    k[r * 3 + q] += v;
                }
            }
        }
    }
}

tiers! {
/// `z[ξ][o][t] = (A e Aᵀ)[ξ]` for the 2×2 block `e` of the output gradient under every tile
/// `t` of the tile rows `rows` (counted across the images of `gy`, zero past the bottom and right
/// edges).
fn transform_grads<T: Float>(
    p: &Pass,
    gy: &[T],
    rows: std::ops::Range<usize>,
    z: &mut [T],
    work: &mut [T],
) {
    let tx_n = p.tiles_x();
    let nt = rows.len() * tx_n;
    let plane = p.ho * p.wo;
    // As in `transform_inputs`: hz rows have room for a last whole group, and the rows are
    // copied into zero-margined rows before the pass that reads them.
    let nts = nt + LANES;
    let plen = 2 * tx_n.next_multiple_of(LANES);
    let (hz, padded) = work.split_at_mut(8 * nts);
    let padded = &mut padded[..2 * rows.len() * plen];
    padded.fill(T::ZERO);
    for o in 0..p.cout {
        for (bt, row) in rows.clone().enumerate() {
            let (b, ty) = (row / p.tiles_y(), row % p.tiles_y());
            let go = &gy[(b * p.cout + o) * plane..(b * p.cout + o + 1) * plane];
            for r in 0..2 {
                let i = 2 * ty + r;
                if i < p.ho {
                    let at = (bt * 2 + r) * plen;
                    copy_run(&mut padded[at..at + p.wo], &go[i * p.wo..(i + 1) * p.wo]);
                }
            }
        }
        // hz[r][s][t]: the horizontal pass of gradient row r (of 2), column s, for every tile.
        for bt in 0..rows.len() {
            for r in 0..2 {
                let h = &mut hz[r * 4 * nts..(r + 1) * 4 * nts];
                let src_row = &padded[(bt * 2 + r) * plen..(bt * 2 + r + 1) * plen];
                for k0 in (0..tx_n).step_by(LANES) {
                    let src: &[T; 2 * LANES] = (&src_row[2 * k0..2 * k0 + 2 * LANES])
                        .try_into()
                        .expect("padded row holds every group");
                    put_group(h, nts, bt * tx_n + k0, spread_pairs(src));
                }
            }
        }
        // The vertical pass over the whole block, straight into z.
        for s in 0..4 {
            let (r0, r1) = (&hz[s * nts..s * nts + nt], &hz[(4 + s) * nts..(4 + s) * nts + nt]);
            spread(r0, r1, xi_rows(z, s, p.cout, o, nt));
        }
    }
}
}

/// [`spread`] of `LANES` neighbouring tiles along x, tile `j` reading `(a, b) =
/// (src[2j], src[2j + 1])`, in fixed sizes (whole-register shuffles).
#[inline(always)]
fn spread_pairs<T: Float>(src: &[T; 2 * LANES]) -> [[T; LANES]; 4] {
    let mut out = [[T::ZERO; LANES]; 4];
    for j in 0..LANES {
        let (a, b) = (src[2 * j], src[2 * j + 1]);
        out[0][j] = a;
        out[1][j] = a + b;
        out[2][j] = a - b;
        out[3][j] = T::ZERO - b;
    }
    out
}

/// One pass of `A · [a, b]ᵀ` over whole rows: `(a, a + b, a − b, −b)` into the four rows of
/// `out` (the same on each axis of a gradient block).
fn spread<T: Float>(a: &[T], b: &[T], [z0, z1, z2, z3]: [&mut [T]; 4]) {
    for (k, (&a, &b)) in a.iter().zip(b).enumerate() {
        z0[k] = a;
        z1[k] = a + b;
        z2[k] = a - b;
        z3[k] = T::ZERO - b;
    }
}

/// `u[ξ][co][ci] = (G k Gᵀ)[ξ]` for every kernel `k` of `w` (`[o, c, 3, 3]`). Forward:
/// `(co, ci) = (oc, c)`, `k = w[oc, c]`. Flipped (for the input gradient): `(co, ci) = (c, oc)`
/// and `k = w[oc, c]` rotated by 180°.
fn transform_kernels<T: Float>(o: usize, c: usize, w: &[T], flip: bool, u: &mut [T]) {
    let half = T::from_f64(0.5);
    let (cout, cin) = if flip { (c, o) } else { (o, c) };
    for oc in 0..o {
        for ic in 0..c {
            let k = &w[(oc * c + ic) * 9..(oc * c + ic) * 9 + 9];
            let at = |p: usize, q: usize| {
                if flip {
                    k[(2 - p) * 3 + (2 - q)]
                } else {
                    k[p * 3 + q]
                }
            };
            // G k column by column (3 columns of 4), then each of its 4 rows times Gᵀ.
            let g = |[a, b, cc]: [T; 3]| [a, (a + b + cc) * half, (a - b + cc) * half, cc];
            let cols: [[T; 4]; 3] = std::array::from_fn(|q| g([at(0, q), at(1, q), at(2, q)]));
            let (co, ci) = if flip { (ic, oc) } else { (oc, ic) };
            for r in 0..4 {
                let row = g([cols[0][r], cols[1][r], cols[2][r]]);
                for (s, v) in row.into_iter().enumerate() {
                    u[((r * 4 + s) * cout + co) * cin + ci] = v;
                }
            }
        }
    }
}

/// `y (+)= bias + Winograd conv of x with the transformed kernels u`, image by image across
/// the pool, block of tiles by block of tiles within an image. Every element of `y` is
/// written.
///
/// # Safety
/// With `accumulate`, `y` must be initialised (it is read and added into).
unsafe fn run<T: Float>(
    p: &Pass,
    x: &[T],
    u: &[T],
    bias: Option<&[T]>,
    y: &mut [MaybeUninit<T>],
    accumulate: bool,
) {
    let (in_img, out_img) = (p.cin * p.h * p.w, p.cout * p.ho * p.wo);
    assert!(
        x.len() == p.n * in_img && y.len() == p.n * out_img && u.len() == 16 * p.cin * p.cout,
        "winograd: buffer sizes do not match the geometry"
    );
    let (tx_n, rows) = (
        p.tiles_x(),
        p.block_rows(std::mem::size_of::<T>(), p.min_tiles),
    );
    // The multiplies actually done (for the thread decision): 16 per tile and channel pair.
    let flops = 2 * 16 * p.n * p.tiles() * p.cin * p.cout;
    for_each_chunk(flops, out_img, y, |b0, ys, threads| {
        let mut v = Scratch::<T>::take(16 * p.cin * rows * tx_n);
        let mut m = Scratch::<T>::take(16 * p.cout * rows * tx_n);
        let mut rowbuf = Scratch::<T>::take(Rows::len(tx_n, rows));
        let nb = ys.len() / out_img;
        let xs = &x[b0 * in_img..(b0 + nb) * in_img];
        let all = nb * p.tiles_y();
        for r0 in (0..all).step_by(rows) {
            let band = r0..(r0 + rows).min(all);
            let nt = band.len() * tx_n;
            transform_inputs(p, xs, band.clone(), &mut v, &mut rowbuf);
            for xi in 0..16 {
                let um = MatRef::new(
                    &u[xi * p.cout * p.cin..(xi + 1) * p.cout * p.cin],
                    p.cout,
                    p.cin,
                );
                let vm = MatRef::new(&v[xi * p.cin * nt..(xi + 1) * p.cin * nt], p.cin, nt);
                let mm = &mut m[xi * p.cout * nt..(xi + 1) * p.cout * nt];
                gemm_on(threads, um, vm, MatMut::new(mm, p.cout, nt), false);
            }
            // SAFETY: `ys` is initialised when `accumulate` (this function's contract).
            unsafe { transform_outputs(p, &m, band, bias, ys, accumulate, &mut rowbuf) };
        }
    });
}

/// The transforms' work area: 16 rows as long as a block and one group of [`LANES`] tiles (one
/// per patch row and column of the horizontal pass, so that the vertical pass runs over whole
/// blocks and vectorises), then the block's input rows with their padding (four per tile row).
struct Rows;

impl Rows {
    /// Elements of the work area for blocks of `rows` tile rows of `tx_n` tiles.
    fn len(tx_n: usize, rows: usize) -> usize {
        16 * (rows * tx_n + LANES) + 4 * rows * Self::padded(tx_n)
    }
    /// Elements of one padded input row: every group of [`LANES`] tiles reads `2·LANES + 2`
    /// samples.
    fn padded(tx_n: usize) -> usize {
        2 * tx_n.next_multiple_of(LANES) + 2
    }
}

tiers! {
/// `v[ξ][c][t] = (Bᵀ d B)[ξ]` for the 4×4 input patch `d` of channel `c` under every tile `t`
/// of the tile rows `rows` (counted across the images of `x`; zero outside the input), numbered
/// from the first of them.
///
/// Along x, tile `k` reads padded columns `2k..2k + 4`: each row's `Bᵀ`-pass takes
/// [`LANES`] tiles at a time from a zero-margined copy of the row ([`horizontal`]); the pass
/// along y then combines four such rows over the whole block.
fn transform_inputs<T: Float>(
    p: &Pass,
    x: &[T],
    rows: std::ops::Range<usize>,
    v: &mut [T],
    work: &mut [T],
) {
    let tx_n = p.tiles_x();
    let nt = rows.len() * tx_n;
    // hz rows are LANES longer than the tiles: the horizontal pass writes whole groups of
    // LANES tiles, and a group that runs past a tile row is overwritten by the next row's.
    let nts = nt + LANES;
    let plane = p.h * p.w;
    let plen = Rows::padded(tx_n);
    let (hz, padded) = work.split_at_mut(16 * nts);
    let padded = &mut padded[..4 * rows.len() * plen];
    // Margins and the rows outside the input are zero for every channel: zeroed once here,
    // only the inside of each row is copied per channel.
    padded.fill(T::ZERO);
    for c in 0..p.cin {
        // The four padded input rows of every tile row first, then the pass that reads them:
        // loads right after the stores that wrote them would stall (no store forwarding from
        // a copy's pieces to a whole-register load).
        for (bt, row) in rows.clone().enumerate() {
            let (b, ty) = (row / p.tiles_y(), row % p.tiles_y());
            let xc = &x[(b * p.cin + c) * plane..(b * p.cin + c + 1) * plane];
            for r in 0..4 {
                let iy = (2 * ty + r).wrapping_sub(p.ph);
                if iy < p.h {
                    let at = (bt * 4 + r) * plen + p.pw;
                    copy_run(&mut padded[at..at + p.w], &xc[iy * p.w..(iy + 1) * p.w]);
                }
            }
        }
        // hz[r][s][t]: the horizontal pass of patch row r, column s, for every tile.
        for bt in 0..rows.len() {
            for r in 0..4 {
                let h = &mut hz[r * 4 * nts..(r + 1) * 4 * nts];
                let src_row = &padded[(bt * 4 + r) * plen..(bt * 4 + r + 1) * plen];
                for k0 in (0..tx_n).step_by(LANES) {
                    let src: &[T; 2 * LANES + 2] = (&src_row[2 * k0..2 * k0 + 2 * LANES + 2])
                        .try_into()
                        .expect("padded row holds every group");
                    put_group(h, nts, bt * tx_n + k0, horizontal(src));
                }
            }
        }
        // The vertical pass over the whole block, straight into v.
        for s in 0..4 {
            let row = |r: usize| &hz[(r * 4 + s) * nts..(r * 4 + s) * nts + nt];
            let (d0, d1, d2, d3) = (row(0), row(1), row(2), row(3));
            let [v0, v1, v2, v3] = xi_rows(v, s, p.cin, c, nt);
            for k in 0..nt {
                v0[k] = d0[k] - d2[k];
                v1[k] = d1[k] + d2[k];
                v2[k] = d2[k] - d1[k];
                v3[k] = d1[k] - d3[k];
            }
        }
    }
}
}

/// Tiles per group of the horizontal pass: one AVX register of f32.
const LANES: usize = 8;

/// Writes the four outputs of one group of [`LANES`] tiles at tile `at` of the four rows of
/// `h`, `nts` apart.
#[inline(always)]
fn put_group<T: Float>(h: &mut [T], nts: usize, at: usize, out: [[T; LANES]; 4]) {
    for (s, o) in out.iter().enumerate() {
        h[s * nts + at..s * nts + at + LANES].copy_from_slice(o);
    }
}

/// `Bᵀ`-pass along x of `LANES` neighbouring tiles, whose patches start at every second
/// sample of `src`: tile `j` reads `src[2j..2j + 4]`. Fixed sizes, so that it compiles to
/// whole-register shuffles and subtractions.
#[inline(always)]
fn horizontal<T: Float>(src: &[T; 2 * LANES + 2]) -> [[T; LANES]; 4] {
    let mut out = [[T::ZERO; LANES]; 4];
    for j in 0..LANES {
        let (e0, o0, e1, o1) = (src[2 * j], src[2 * j + 1], src[2 * j + 2], src[2 * j + 3]);
        out[0][j] = e0 - e1;
        out[1][j] = o0 + e1;
        out[2][j] = e1 - o0;
        out[3][j] = o0 - o1;
    }
    out
}

/// The rows `(ξ = r·4 + s, ch)` of a `[16][chans][nt]` block for `r < 4`: the four
/// destinations of one vertical pass.
fn xi_rows<T>(buf: &mut [T], s: usize, chans: usize, ch: usize, nt: usize) -> [&mut [T]; 4] {
    let plane = 4 * chans * nt; // from ξ = r·4 + s to ξ = (r + 1)·4 + s
    let start = (s * chans + ch) * nt;
    let (a, rest) = buf[start..].split_at_mut(plane);
    let (b, rest) = rest.split_at_mut(plane);
    let (c, d) = rest.split_at_mut(plane);
    [a, b, c, d].map(|r| &mut r[..nt])
}

tiers! {
/// `y[o, tile] (+)= bias[o] + Aᵀ m A` for the outputs of the tile rows `rows` (counted across
/// the images of `y`), clipped at the bottom and right edges when the output size is odd.
///
/// # Safety
/// With `accumulate`, `y` must be initialised (it is read and added into).
unsafe fn transform_outputs<T: Float>(
    p: &Pass,
    m: &[T],
    rows: std::ops::Range<usize>,
    bias: Option<&[T]>,
    y: &mut [MaybeUninit<T>],
    accumulate: bool,
    work: &mut [T],
) {
    let tx_n = p.tiles_x();
    let nt = rows.len() * tx_n;
    let plane = p.ho * p.wo;
    // am[r][s][t] (r < 2): the vertical pass; out[r][j][t] (j < 2): the horizontal one.
    let (am, rest) = work.split_at_mut(8 * nt);
    let out = &mut rest[..4 * nt];
    for o in 0..p.cout {
        let bias = bias.map_or(T::ZERO, |b| b[o]);
        let e = |r: usize, s: usize| {
            let at = ((r * 4 + s) * p.cout + o) * nt;
            &m[at..at + nt]
        };
        for s in 0..4 {
            let (e0, e1, e2, e3) = (e(0, s), e(1, s), e(2, s), e(3, s));
            let (a0, a1) = am[s * 2 * nt..(s + 1) * 2 * nt].split_at_mut(nt);
            for k in 0..nt {
                a0[k] = e0[k] + e1[k] + e2[k];
                a1[k] = e1[k] - e2[k] - e3[k];
            }
        }
        for r in 0..2 {
            let a = |s: usize| &am[(s * 2 + r) * nt..(s * 2 + r + 1) * nt];
            let (a0, a1, a2, a3) = (a(0), a(1), a(2), a(3));
            let (o0, o1) = out[r * 2 * nt..(r + 1) * 2 * nt].split_at_mut(nt);
            for k in 0..nt {
                o0[k] = a0[k] + a1[k] + a2[k];
                o1[k] = a1[k] - a2[k] - a3[k];
            }
        }
        for (bt, row) in rows.clone().enumerate() {
            let (b, ty) = (row / p.tiles_y(), row % p.tiles_y());
            let yo = &mut y[(b * p.cout + o) * plane..(b * p.cout + o + 1) * plane];
            for r in 0..2 {
                let i = 2 * ty + r;
                if i >= p.ho {
                    break;
                }
                let run = |j: usize| {
                    &out[(r * 2 + j) * nt + bt * tx_n..(r * 2 + j) * nt + (bt + 1) * tx_n]
                };
                let (o0, o1) = (run(0), run(1));
                let yrow = &mut yo[i * p.wo..(i + 1) * p.wo];
                // Interleave the two output columns of each tile; an odd width drops the last.
                let pairs = yrow.chunks_exact_mut(2).zip(o0.iter().zip(o1.iter()));
                if accumulate {
                    for (pair, (&v0, &v1)) in pairs {
                        // SAFETY: `y` is initialised when accumulating (the contract).
                        unsafe {
                            *pair[0].assume_init_mut() += v0;
                            *pair[1].assume_init_mut() += v1;
                        }
                    }
                } else {
                    for (pair, (&v0, &v1)) in pairs {
                        pair[0].write(bias + v0);
                        pair[1].write(bias + v1);
                    }
                }
                if p.wo % 2 == 1 {
                    let (d, v) = (&mut yrow[p.wo - 1], o0[tx_n - 1]);
                    if accumulate {
                        // SAFETY: as above.
                        unsafe { *d.assume_init_mut() += v };
                    } else {
                        d.write(bias + v);
                    }
                }
            }
        }
    }
}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::conv2d_backward_input;
    use crate::kernels::conv::tests::{data, reference as direct};

    /// A 3×3 stride-1 geometry (the conv tests' builder).
    fn geom(n: usize, c: usize, hw: (usize, usize), o: usize, pad: (usize, usize)) -> ConvGeom {
        crate::kernels::conv::tests::geom(n, c, hw, o, (3, 3), (1, 1), pad, (1, 1), 1)
    }

    /// Odd and even sizes, every padding from 0 to 2 on each axis, batch 1, channel counts
    /// on both sides of the eligibility bound (the routine itself takes any).
    fn configs() -> Vec<ConvGeom> {
        vec![
            geom(1, 1, (3, 3), 1, (0, 0)),
            geom(2, 3, (5, 7), 4, (1, 1)),
            geom(1, 2, (4, 4), 3, (2, 2)),
            geom(3, 5, (6, 9), 2, (0, 2)),
            geom(1, 4, (7, 6), 5, (2, 1)),
            geom(2, 16, (9, 8), 17, (1, 0)),
            geom(1, 3, (1, 1), 2, (1, 1)),
            geom(1, 2, (2, 5), 2, (2, 0)),
        ]
    }

    /// Block budgets: one tile row per block, a few rows (blocks that split an image and
    /// blocks that straddle two), and the default (whole batches per block).
    const BUDGETS: [usize; 3] = [1, 3000, BLOCK_BYTES];

    #[test]
    fn forward_matches_the_direct_definition() {
        for g in configs() {
            let x = data(g.n * g.c * g.h * g.w, 0.37);
            let w = data(g.o * g.c * 9, 0.71);
            let bias = data(g.o, 1.3);
            for (bias, budget) in [None, Some(&bias[..])]
                .into_iter()
                .zip(BUDGETS)
                .chain([(None, 3000)])
            {
                let mut u = vec![0.0; 16 * g.o * g.c];
                transform_kernels(g.o, g.c, &w, false, &mut u);
                let pass = Pass {
                    budget,
                    min_tiles: 0,
                    ..Pass::forward(&g)
                };
                // Written into unwritten memory: every element must be written.
                // SAFETY: without `accumulate`, `run` reads nothing of `y`, and it writes
                // every element (what this test checks against the definition).
                let y: Vec<f64> = unsafe {
                    out::written(g.n * g.o * g.ho * g.wo, |y| {
                        run(&pass, &x, &u, bias, y, false)
                    })
                };
                for (a, b) in y.iter().zip(direct(&g, &x, &w, bias)) {
                    assert!(
                        (a - b).abs() < 1e-12 * (1.0 + b.abs()),
                        "{g:?} {budget}: {a} vs {b}"
                    );
                }
            }
        }
    }

    // The gradients are the adjoints of the forward's linear maps: for every gy,
    // <conv(x, w), gy> = <x, dx(gy)> = <w, dw(gy)>. Both are added into what is there.
    #[test]
    fn backward_is_the_adjoint_of_forward() {
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        for g in configs() {
            let x = data(g.n * g.c * g.h * g.w, 0.37);
            let w = data(g.o * g.c * 9, 0.71);
            let gy = data(g.n * g.o * g.ho * g.wo, 0.53);
            let lhs = dot(&direct(&g, &x, &w, None), &gy);
            for budget in BUDGETS {
                let mut u = vec![0.0; 16 * g.o * g.c];
                transform_kernels(g.o, g.c, &w, true, &mut u);
                let mut dx = vec![1.0; x.len()];
                let pass = Pass {
                    budget,
                    min_tiles: 0,
                    ..Pass::input_grad(&g)
                };
                // SAFETY: `dx` is initialised, as accumulating needs.
                unsafe { run(&pass, &gy, &u, None, out::as_uninit(&mut dx), true) };
                dx.iter_mut().for_each(|v| *v -= 1.0);
                assert!(
                    (lhs - dot(&x, &dx)).abs() < 1e-10 * (1.0 + lhs.abs()),
                    "{g:?} {budget}: dx"
                );
                let mut dw = vec![1.0; w.len()];
                weight_grad(
                    &Pass {
                        budget,
                        min_tiles: 0,
                        ..Pass::forward(&g)
                    },
                    &gy,
                    &x,
                    &mut dw,
                );
                dw.iter_mut().for_each(|v| *v -= 1.0);
                assert!(
                    (lhs - dot(&w, &dw)).abs() < 1e-10 * (1.0 + lhs.abs()),
                    "{g:?} {budget}: dw"
                );
            }
        }
    }

    #[test]
    fn the_conv_kernels_take_this_path_when_eligible() {
        // Above the channel bound, on a batch split across the pool, with padding 1 and 2.
        for g in [
            geom(6, 16, (11, 10), 16, (1, 1)),
            geom(2, 24, (13, 12), 20, (2, 0)),
        ] {
            assert!(eligible(&g));
            let x = data(g.n * g.c * g.h * g.w, 0.37);
            let w = data(g.o * g.c * 9, 0.71);
            let bias = data(g.o, 1.3);
            let mut y = vec![f64::NAN; g.n * g.o * g.ho * g.wo];
            crate::kernels::conv::conv2d_forward(&g, &x, &w, Some(&bias), &mut y);
            for (a, b) in y.iter().zip(direct(&g, &x, &w, Some(&bias))) {
                assert!((a - b).abs() < 1e-11 * (1.0 + b.abs()), "{g:?}: {a} vs {b}");
            }
            let gy = data(y.len(), 0.53);
            let mut dx = vec![0.0; x.len()];
            conv2d_backward_input(&g, &gy, &w, &mut dx);
            let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
            let lhs = dot(&direct(&g, &x, &w, None), &gy);
            assert!(
                (lhs - dot(&x, &dx)).abs() < 1e-9 * (1.0 + lhs.abs()),
                "{g:?}"
            );
        }
    }

    #[test]
    fn eligibility() {
        assert!(eligible(&geom(2, 16, (8, 8), 16, (1, 1))));
        assert!(!eligible(&geom(1, 16, (8, 8), 16, (1, 1))), "one image");
        assert!(!eligible(&geom(2, 16, (7, 7), 16, (1, 1))), "7×7 outputs");
        assert!(
            !eligible(&geom(2, 15, (8, 8), 16, (1, 1))),
            "too few input channels"
        );
        assert!(
            !eligible(&geom(2, 16, (8, 8), 15, (1, 1))),
            "too few output channels"
        );
        let mut g = geom(2, 16, (8, 8), 16, (1, 1));
        g.win.sh = 2;
        assert!(!eligible(&g), "stride 2");
        let mut g = geom(2, 16, (8, 8), 16, (1, 1));
        g.groups = 2;
        assert!(!eligible(&g), "groups");
        let g = geom(2, 16, (8, 8), 16, (3, 1));
        assert!(
            !eligible(&g),
            "padding 3: the input gradient would need padding -1"
        );
    }
}
