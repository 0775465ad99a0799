//! 2-D convolution (cross-correlation) on NCHW slices: the geometry, and for each call the
//! algorithm that runs it.
//!
//! Six algorithms. `im2col` unfolds each (batch item, group) of the input into a column
//! matrix (one row per weight tap `(c, p, q)`, one column per output position) and multiplies
//! the group's weights by it; the input gradient is `Wᵀ · G` folded back (`col2im`), the
//! weight gradient `G · colᵀ` summed over the batch. [`winograd`] runs 3×3 stride-1
//! convolutions with enough channels through F(2×2, 3×3). `direct` sums f32 convolutions
//! over few channels in registers, on zero-padded copies of each image; `depthwise` does the
//! same for one input channel per group; `winograd_s2` runs 4×4 stride-2 convolutions with
//! padding 1 (and so the usual 2× transposed convolution) through F(2×2, 2×2) on the
//! input's four phases; `subpixel` runs the input gradient of 3×3 stride-2 convolutions
//! with padding 1 (and so the 2× transposed convolution with a 3×3 kernel) as one product
//! per phase of the result, without a fold. The entry points here check the buffers against
//! the geometry and choose, in that order of preference: direct, Winograd, Winograd on
//! phases, sub-pixel (input gradient only), depthwise, unfolded.
//!
//! Every function here trusts its [`ConvGeom`]: the op validates shapes and options first.

use std::mem::MaybeUninit;

use crate::float::Float;
use crate::kernels::out;
use crate::runtime::threads::for_each_chunk;

mod depthwise;
mod direct;
mod geom;
pub(crate) mod im2col;
mod phases;
mod shifted;
mod subpixel;
pub mod winograd;
mod winograd_s2;

pub use geom::ConvGeom;

/// The forward: `y[b, oc] = bias[oc] + W_g · im2col(x[b, g])` for every batch item `b` and
/// group `g`. `x` is `[n, c, h, w]`, `w` is `[o, cg, kh, kw]`, `bias` is `[o]`, and `y`
/// (`[n, o, ho, wo]`) is overwritten.
#[cfg(test)]
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
    let (taps, plane) = (g.taps(), g.out_plane());
    assert!(
        x.len() == g.n * g.c * g.in_plane()
            && w.len() == g.o * taps
            && y.len() == g.n * g.o * plane
            && bias.is_none_or(|b| b.len() == g.o),
        "conv2d_forward: buffer sizes do not match the geometry"
    );
    match forward_route::<T>(g) {
        Route::Shifted => shifted::forward(g, x, w, bias, y),
        Route::Direct => direct::forward(g, x, w, bias, y),
        Route::Winograd => winograd::forward_into(g, x, w, bias, y),
        Route::OnPhases => winograd_s2::forward_into(g, x, w, bias, y),
        Route::Depthwise => depthwise::forward(g, x, w, bias, y),
        Route::Unfolded => im2col::forward(g, x, w, bias, y),
    }
}

/// An algorithm a forward or a weight gradient goes through.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Route {
    Shifted,
    Direct,
    Winograd,
    OnPhases,
    Depthwise,
    Unfolded,
}

/// The forward's algorithm for `g`, in the module's order of preference.
fn forward_route<T: Float>(g: &ConvGeom) -> Route {
    if shifted::eligible::<T>(g) {
        Route::Shifted
    } else if direct::eligible::<T>(g) {
        Route::Direct
    } else {
        general_route(g)
    }
}

/// The weight gradient's algorithm for `g`, in the module's order of preference.
fn weight_route<T: Float>(g: &ConvGeom) -> Route {
    if direct::weight_eligible::<T>(g) {
        Route::Direct
    } else {
        general_route(g)
    }
}

/// The algorithms that serve every direction, in order of preference.
fn general_route(g: &ConvGeom) -> Route {
    if winograd::eligible(g) {
        Route::Winograd
    } else if winograd_s2::eligible(g) {
        Route::OnPhases
    } else if depthwise::applies(g) {
        Route::Depthwise
    } else {
        Route::Unfolded
    }
}

/// The input gradient, added into `dx` (`[n, c, h, w]`): `dx[b, g] += col2im(W_gᵀ · gy[b, g])`.
pub fn conv2d_backward_input<T: Float>(g: &ConvGeom, gy: &[T], w: &[T], dx: &mut [T]) {
    let (taps, plane) = (g.taps(), g.out_plane());
    assert!(
        gy.len() == g.n * g.o * plane
            && w.len() == g.o * taps
            && dx.len() == g.n * g.c * g.in_plane(),
        "conv2d_backward_input: buffer sizes do not match the geometry"
    );
    if direct::input_eligible::<T>(g) {
        return direct::backward_input(g, gy, w, dx);
    }
    if winograd::eligible(g) {
        return winograd::backward_input(g, gy, w, dx);
    }
    if winograd_s2::eligible(g) {
        return winograd_s2::backward_input(g, gy, w, dx);
    }
    if subpixel::eligible(g) {
        return subpixel::backward_input(g, gy, w, dx);
    }
    if depthwise::applies(g) {
        return depthwise::backward_input(g, gy, w, dx);
    }
    im2col::backward_input(g, gy, w, dx)
}

/// `conv^T(gy, w) + bias` into a new vector (`[n, c, h, w]`, a bias value per channel `c`):
/// the transposed convolution's forward. The same bits as [`conv2d_backward_input`] into
/// zeros with the bias added after, but the zero fill and the bias pass run across threads
/// (on the caller they were a twentieth of a 2× upsampling layer's forward and backward).
pub fn conv2d_transposed_new<T: Float>(
    g: &ConvGeom,
    gy: &[T],
    w: &[T],
    bias: Option<&[T]>,
) -> Vec<T> {
    let (len, plane) = (g.n * g.c * g.in_plane(), g.in_plane().max(1));
    assert!(
        bias.is_none_or(|b| b.len() == g.c),
        "conv2d_transposed_new: the bias does not match the geometry"
    );
    let zero = MaybeUninit::new(T::ZERO);
    // SAFETY: every element is written with zero before anything reads it.
    let mut dx = unsafe {
        out::written(len, |y| {
            for_each_chunk(len, plane, y, |_, ys, _| ys.fill(zero));
        })
    };
    conv2d_backward_input(g, gy, w, &mut dx);
    if let Some(b) = bias {
        for_each_chunk(len, plane, &mut dx, |p0, planes, _| {
            for (k, pl) in planes.chunks_exact_mut(plane).enumerate() {
                let v = b[(p0 + k) % g.c];
                pl.iter_mut().for_each(|e| *e += v);
            }
        });
    }
    dx
}

/// `conv(x, w)` without bias and the weight gradient `corr(gy, x)` for the output gradient
/// `gy`, each into a new vector: the gradients of a transposed convolution's input and
/// weight, whose operand `x` both transform. Where both go through Winograd on phases they
/// share that transform; either way, the same bits as [`conv2d_forward_new`] and
/// [`conv2d_backward_weight`] into zeros.
pub fn conv2d_forward_and_weight_grad<T: Float>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    gy: &[T],
) -> (Vec<T>, Vec<T>) {
    let mut dw = crate::runtime::buffers::zeroed(g.o * g.taps());
    let both_on_phases =
        forward_route::<T>(g) == Route::OnPhases && weight_route::<T>(g) == Route::OnPhases;
    if g.n == 0 || !both_on_phases {
        let y = conv2d_forward_new(g, x, w, None);
        conv2d_backward_weight(g, gy, x, &mut dw);
        return (y, dw);
    }
    let len = g.n * g.o * g.out_plane();
    assert!(
        x.len() == g.n * g.c * g.in_plane() && w.len() == g.o * g.taps() && gy.len() == len,
        "conv2d_forward_and_weight_grad: buffer sizes do not match the geometry"
    );
    // SAFETY: the forward writes every element of its output.
    let y = unsafe {
        out::written(len, |y| {
            winograd_s2::forward_and_weight_grad(g, x, w, gy, y, &mut dw)
        })
    };
    (y, dw)
}

/// The weight gradient, added into `dw` (`[o, cg, kh, kw]`): `dw_g += Σ_b gy[b, g] · im2col(x[b, g])ᵀ`.
///
/// On several threads each chunk of the batch sums into a partial gradient of its own, and
/// the partials are added into `dw` in chunk order (deterministic for a given thread count).
pub fn conv2d_backward_weight<T: Float>(g: &ConvGeom, gy: &[T], x: &[T], dw: &mut [T]) {
    let (taps, plane) = (g.taps(), g.out_plane());
    assert!(
        gy.len() == g.n * g.o * plane
            && x.len() == g.n * g.c * g.in_plane()
            && dw.len() == g.o * taps,
        "conv2d_backward_weight: buffer sizes do not match the geometry"
    );
    if g.n == 0 || plane == 0 || dw.is_empty() {
        return;
    }
    match weight_route::<T>(g) {
        Route::Direct => direct::backward_weight(g, gy, x, dw),
        Route::Winograd => winograd::backward_weight(g, gy, x, dw),
        Route::OnPhases => winograd_s2::backward_weight(g, gy, x, dw),
        Route::Depthwise => depthwise::backward_weight(g, gy, x, dw),
        // `weight_route` never names the shifted forward.
        Route::Shifted | Route::Unfolded => im2col::backward_weight(g, gy, x, dw),
    }
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
    // Each plane is summed in order, one addition after another, and added to its channel's
    // entry in batch order; the channels are split across threads (each entry's additions
    // stay in that order: the same bits on any thread count). Eight planes at a time, so that
    // eight independent chains of additions overlap (one chain waited out each add's
    // latency: a tenth of a depthwise layer's forward and backward).
    let o = g.o;
    for_each_chunk(gy.len(), 1, db, |o0, dbs, _| {
        for image in gy.chunks_exact(o * plane) {
            let planes = &image[o0 * plane..(o0 + dbs.len()) * plane];
            add_sums(planes, plane, dbs);
        }
    });
}

/// `d[r] += Σ_i planes[r·plane + i]` for every `r`, up to eight sums side by side.
fn add_sums<T: Float>(mut planes: &[T], plane: usize, mut d: &mut [T]) {
    while !d.is_empty() {
        let r = [8, 4, 2, 1]
            .into_iter()
            .find(|&r| r <= d.len())
            .unwrap_or(1);
        let (head, rest) = std::mem::take(&mut d).split_at_mut(r);
        let (block, more) = planes.split_at(r * plane);
        match r {
            8 => add_plane_sums::<T, 8>(block, plane, head.try_into().expect("8")),
            4 => add_plane_sums::<T, 4>(block, plane, head.try_into().expect("4")),
            2 => add_plane_sums::<T, 2>(block, plane, head.try_into().expect("2")),
            _ => add_plane_sums::<T, 1>(block, plane, head.try_into().expect("1")),
        }
        (d, planes) = (rest, more);
    }
}

/// `d[r] += Σ_i block[r·plane + i]`, each sum from zero in order, the `R` chains side by
/// side.
#[inline(always)]
fn add_plane_sums<T: Float, const R: usize>(block: &[T], plane: usize, d: &mut [T; R]) {
    let rows: [&[T]; R] = std::array::from_fn(|r| &block[r * plane..(r + 1) * plane]);
    let mut s = [T::ZERO; R];
    for i in 0..plane {
        for (sr, row) in s.iter_mut().zip(&rows) {
            *sr += row[i];
        }
    }
    for (e, v) in d.iter_mut().zip(s) {
        *e += v;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::im2col::{
        col2im, im2col_rows_dense, im2col_rows_general, im2col_rows_strided, im2col_rows_subsample,
    };
    use super::*;
    use crate::kernels::window::{Window, output_len};

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
            groups,
            ho: output_len(h, kh, sh, ph, dh, false).unwrap(),
            wo: output_len(w, kw, sw, pw, dw, false).unwrap(),
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
                            for p in 0..g.win.kh {
                                for q in 0..g.win.kw {
                                    let iy =
                                        (i * g.win.sh + p * g.win.dh) as isize - g.win.ph as isize;
                                    let ix =
                                        (j * g.win.sw + q * g.win.dw) as isize - g.win.pw as isize;
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let xv =
                                        x[((b * g.c + c) * g.h + iy as usize) * g.w + ix as usize];
                                    s += xv * w[((oc * cg + ci) * g.win.kh + p) * g.win.kw + q];
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
            // Depthwise, direct: multiplier 2, stride 2, dilation, non-square kernels,
            // padding past the kernel, a kernel wider than the input, odd sizes.
            geom(2, 3, (7, 9), 6, (3, 3), (2, 2), (1, 1), (1, 1), 3),
            geom(1, 4, (9, 8), 4, (3, 3), (1, 1), (2, 2), (2, 2), 4),
            geom(2, 2, (6, 11), 2, (5, 3), (2, 1), (2, 1), (1, 1), 2),
            geom(1, 3, (3, 4), 3, (3, 5), (1, 3), (3, 2), (1, 1), 3),
            geom(3, 5, (13, 13), 5, (3, 3), (2, 2), (1, 1), (1, 1), 5),
            geom(1, 2, (2, 2), 4, (3, 3), (1, 1), (1, 1), (2, 1), 2),
            // Stride 2 on an even width without padding: column 0 lands in phase 0.
            geom(2, 3, (6, 8), 3, (3, 3), (2, 2), (0, 0), (1, 1), 3),
            geom(1, 2, (5, 1), 2, (3, 1), (2, 2), (1, 0), (1, 1), 2),
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

    /// The bias gradient sums each plane in order, plane after plane into each channel:
    /// the same bits as the plain loop, whatever the number of planes (blocks of eight and
    /// the rest).
    #[test]
    fn bias_gradient_keeps_the_plain_order() {
        // The last two are big enough to be split across threads (chunks of 3 or 4 and of
        // 10 channels).
        let shapes = [
            (3, 5, 37),
            (1, 8, 1),
            (2, 13, 196),
            (1, 3, 5),
            (4, 13, 4000),
            (3, 39, 2000),
        ];
        for (n, o, plane) in shapes {
            let gy: Vec<f32> = data(n * o * plane, 0.91)
                .iter()
                .map(|&v| v as f32 * 1e3)
                .collect();
            let g = geom(n, 1, (plane, 1), o, (1, 1), (1, 1), (0, 0), (1, 1), 1);
            let mut db = vec![0.25f32; o];
            conv2d_backward_bias(&g, &gy, &mut db);
            let mut want = vec![0.25f32; o];
            for (k, row) in gy.chunks_exact(plane).enumerate() {
                let mut s = 0.0f32;
                for &v in row {
                    s += v;
                }
                want[k % o] += s;
            }
            assert_eq!(
                db.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "n {n}, o {o}, plane {plane}"
            );
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
            geom(4, 32, (30, 30), 32, (3, 3), (1, 1), (1, 1), (1, 1), 32), // depthwise
            geom(1, 48, (29, 29), 96, (3, 3), (2, 2), (1, 1), (1, 1), 48), // depthwise ×2, batch 1
            // Batch 1, a dozen bands of 4 rows unfolded and multiplied on separate threads.
            geom(1, 40, (47, 45), 5, (3, 3), (1, 1), (1, 1), (1, 1), 1),
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

    /// `fast` against `im2col_rows_general` on `g`, for every band of one, two and all rows,
    /// with rows packed and rows 3 apart (the gaps left as they were).
    fn same_unfolding(
        g: &ConvGeom,
        fast: fn(&ConvGeom, &[f64], std::ops::Range<usize>, &mut [f64], usize),
    ) {
        let x = data(g.cg() * g.in_plane(), 0.37);
        for band in [1, 2, g.ho] {
            for rows in g.bands(band) {
                for gap in [0, 3] {
                    let ld = rows.len() * g.wo + gap;
                    let len = g.taps() * ld;
                    let (mut a, mut b) = (vec![-7.0; len], vec![-7.0; len]);
                    fast(g, &x, rows.clone(), &mut a, ld);
                    im2col_rows_general(g, &x, rows.clone(), &mut b, ld);
                    assert_eq!(a, b, "{g:?} rows {rows:?} ld {ld}");
                    let gaps = b.chunks_exact(ld).flat_map(|r| &r[ld - gap..]);
                    assert!(gaps.into_iter().all(|&v| v == -7.0), "{g:?}: gap written");
                }
            }
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
            same_unfolding(&g, im2col_rows_dense);
        }
    }

    /// The padded-block path for strides and dilations against the general one, for every
    /// band of one, two and all rows: strides past the kernel, dilations, padding past the
    /// kernel, strides that skip the input's last columns.
    #[test]
    fn strided_im2col_matches_the_general_one_on_every_band() {
        for g in [
            geom(2, 3, (7, 6), 2, (3, 3), (2, 2), (1, 1), (1, 1), 1),
            geom(1, 2, (9, 8), 1, (3, 2), (2, 3), (1, 0), (2, 1), 1),
            geom(1, 1, (8, 9), 1, (1, 1), (3, 2), (0, 0), (1, 1), 1),
            geom(1, 2, (5, 5), 1, (2, 2), (3, 3), (2, 2), (1, 1), 1),
            geom(1, 4, (10, 7), 2, (3, 3), (1, 2), (2, 1), (3, 2), 2),
            geom(1, 1, (7, 7), 1, (7, 7), (2, 2), (3, 3), (1, 1), 1),
            geom(1, 3, (6, 6), 1, (3, 3), (1, 1), (0, 0), (1, 1), 1),
        ] {
            same_unfolding(&g, im2col_rows_strided);
        }
    }

    /// The 1×1 path without padding against the general one: strides of 1 to 3 on odd
    /// sizes that skip the last rows and columns, and a dilation (which a 1×1 kernel
    /// ignores).
    #[test]
    fn subsampling_im2col_matches_the_general_one_on_every_band() {
        for g in [
            geom(2, 3, (7, 6), 2, (1, 1), (2, 2), (0, 0), (1, 1), 1),
            geom(1, 2, (9, 8), 1, (1, 1), (3, 2), (0, 0), (1, 1), 1),
            geom(1, 4, (5, 7), 2, (1, 1), (1, 3), (0, 0), (2, 2), 2),
            geom(1, 3, (6, 5), 1, (1, 1), (1, 1), (0, 0), (1, 1), 1),
        ] {
            same_unfolding(&g, im2col_rows_subsample);
        }
    }

    #[test]
    fn col2im_of_ones_counts_taps() {
        // Each input element receives one count per (output position, tap) that reads it.
        let g = geom(1, 1, (1, 5), 1, (1, 3), (1, 1), (0, 1), (1, 1), 1);
        let col = vec![1.0; g.taps() * g.out_plane()];
        let mut dx = vec![0.0; 5];
        col2im(&g, &col, g.out_plane(), &mut dx);
        assert_eq!(dx, vec![2.0, 3.0, 3.0, 3.0, 2.0]);
    }
}
