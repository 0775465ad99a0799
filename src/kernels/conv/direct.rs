//! Direct convolution for stride-1 kernels over few channels (f32), the small 3×3 layers of
//! residual networks on small images, where the unfolded product and Winograd move four to
//! nine times the input through memory for every pass and the multiplies are few.
//!
//! Each image's input is copied once into zero-padded planes, and its output is computed
//! over the padded width: output position `(i, j)` sits at `i·wp + j` of a grid `wp` wide,
//! and the `kw − 1` extra positions of each row are computed and dropped. On that grid a tap
//! `(a, b)` of a whole run of output positions is one unaligned load at offset `a·wp + b`:
//! no masks, no border cases. A register tile holds [`OB`] output channels times a few
//! vectors of positions, and sums over every input channel and tap before it is stored.
//!
//! - forward: `y[b, oc] = bias[oc] + Σ_{ic, p, q} w[oc, ic, p, q] · shift_{p,q}(xp[b, ic])`;
//! - input gradient: the same computation on the output gradient, with the kernels flipped,
//!   their channel axes swapped and padding `k − 1 − p` (a "full" correlation), added into
//!   the input gradient.
//!
//! Written once over [`F32Vec`] and instantiated per tier, like the GEMM.

use std::any::TypeId;
use std::mem::MaybeUninit;
use std::ops::Range;

use super::ConvGeom;
use crate::float::Float;
use crate::kernels::sgemm::Tier;
use crate::runtime::scratch::Scratch;
use crate::runtime::simd::F32Vec;
use crate::runtime::simd::portable::Portable;
#[cfg(target_arch = "x86_64")]
use crate::runtime::simd::x86;
use crate::runtime::threads::SharedOut;
use crate::runtime::threads::{for_each_range, sum_chunks};

/// Output channels in one register tile.
pub(super) const OB: usize = 4;

/// The most vectors of positions in one register tile (the AVX-512 tier's; `OB · NV`
/// accumulators plus `NV` input vectors fit its 32 registers).
pub(super) const NV_MAX: usize = 6;

/// Whether this routine computes the forward: f32, one group, unit dilation, stride at
/// most 2, a kernel of more than one tap, and sizes where the direct sums beat the other
/// routines. Measured on an Intel Xeon (AVX-512, 2 threads, batch 32) against Winograd
/// and the unfolded product: ahead by 1.3-2x forward on 3×3 layers of 16 and 32 channels
/// at 28×28 and 14×14 and of 64 channels at 7×7, behind on 64 channels at 14×14 and 56×56
/// (10-34% forward, 20-60% forward+backward), where Winograd's saved multiplies outweigh
/// its transforms. Below AVX-512, stride 2 only ([`wide_tile`]).
pub(crate) fn eligible<T: Float>(g: &ConvGeom) -> bool {
    let w = &g.win;
    let kind = TypeId::of::<T>() == TypeId::of::<f32>()
        && g.groups == 1
        && w.dh == 1
        && w.dw == 1
        && w.sh <= 2
        && w.sw <= 2
        && w.kh * w.kw > 1
        && w.kh * w.kw <= MAX_TAPS;
    let plane = g.ho * g.wo;
    let widest = if plane <= SMALL_PLANE { 64 } else { 32 };
    let unit = w.sh == 1 && w.sw == 1;
    kind && g.c.min(g.o) >= MIN_CHANNELS
        && g.c.max(g.o) <= widest
        && (g.n >= 2 || plane >= MIN_PLANE)
        && (!unit || wide_tile())
}

/// Whether the tier in use has AVX-512's register tile (4 output channels × 6 vectors).
/// On an AMD EPYC Zen 3 (2 threads, ResNet-8's layers, interleaved A/B) AVX2's 4 × 2 tile
/// lost at stride 1 to Winograd forward and backward (batch 32: 7.2-8.4 against 4.8-7.1 ms
/// on 16 to 64 channels), though its forward alone was level (16 channels at 28×28 ahead,
/// 1.6-1.75 against 1.8-1.95 ms; 32 at 14×14 behind, 1.5-1.6 against 1.4-1.5 ms), and won
/// at stride 2 forward, where its weight gradient only tied: so there, stride-2 forwards
/// alone. The portable tier, narrower still, follows AVX2 (not measured).
pub(super) fn wide_tile() -> bool {
    // `current` never names the emulated tier: the tests run that one directly.
    #[cfg(target_arch = "x86_64")]
    if Tier::current() == Tier::Avx512 {
        return true;
    }
    false
}

/// The most taps a kernel may have here: the tap offsets are kept in an array this long.
pub(super) const MAX_TAPS: usize = 64;

/// The fewest input (and output) channels the forward takes. At 3, an RGB stem, the register
/// tile still beats the unfolded product: MobileNetV2's stride-2 stem (3→32, 224×224) at
/// batch 32 took 5.3 against 7.6 ms forward on a Zen 4 (AVX-512 tier, 2 threads,
/// interleaved; on its AVX2 tier 7.2 against 7.5); at 1 it loses (S2 and S3, 5×5 from one
/// channel: 1.21x and 1.12x forward).
const MIN_CHANNELS: usize = 3;

/// The fewest channels the gradients take: the input gradient's outputs are the input's
/// channels (with one, S2's and S3's forward+backward took 1.5-1.7x the unfolded time), and
/// the weight gradient's tile was measured from 8 up only.
const MIN_CHANNELS_BACKWARD: usize = 8;

/// What both gradients ask before their own conditions: the forward's, with
/// [`MIN_CHANNELS_BACKWARD`] channels.
fn gradient_eligible<T: Float>(g: &ConvGeom) -> bool {
    eligible::<T>(g) && g.c.min(g.o) >= MIN_CHANNELS_BACKWARD
}

/// Output planes up to this many positions (8×8) take the routine up to 64 channels:
/// Winograd's 2×2 tiles waste a quarter of a 7×7 plane and its products are short.
const SMALL_PLANE: usize = 64;

/// The smallest output plane on which a single image runs faster here than through the
/// unfolded product (14×14 did, 7×7 did not). A single image's blocks of output channels
/// are split between the threads ([`each_image`]). Batch 1, stride 2 on a Zen 4 (2
/// threads, 3 interleaved A/B runs): MobileNetV2's stem (3→32, 224×224) forward 0.79-0.84x
/// the unfolded time, ResNet-8's 16→32 layer onto 14×14 0.51-0.70x (0.58x on the AVX2
/// tier); its 32→64 layer onto 7×7 level, its 64-channel 7×7 layer 1.2-1.6x.
const MIN_PLANE: usize = 14 * 14;

/// Whether [`backward_input`] computes the input gradient: an [`eligible`] geometry with
/// unit stride and padding below the kernel's size on each axis, so that the input
/// gradient is a convolution of the same kind.
pub(crate) fn input_eligible<T: Float>(g: &ConvGeom) -> bool {
    let w = &g.win;
    gradient_eligible::<T>(g) && w.sh == 1 && w.sw == 1 && w.ph < w.kh && w.pw < w.kw
}

/// One image's sizes on the padded grid.
///
/// With stride `(sh, sw)` the padded plane is stored as `sh · sw` phase planes: phase
/// `(ρ, φ)` holds padded element `(sh·r + ρ, sw·c + φ)` at `(r, c)`, `hq × wq` of them, so
/// that tap `(a, b)` of output `(i, j)` is element `(i + a / sh, j + b / sw)` of phase
/// `(a mod sh, b mod sw)`: unit stride again, on a grid `wq` wide.
#[derive(Clone, Copy)]
struct Grid {
    /// Input channels, output channels.
    cin: usize,
    cout: usize,
    /// Input plane, padding, kernel, stride.
    h: usize,
    w: usize,
    ph: usize,
    pw: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    /// The grid's width (a phase plane's), output height and width.
    wq: usize,
    ho: usize,
    wo: usize,
    /// Elements per phase plane: its `hq · wq` and a zero tail that the last vectors of the
    /// last taps may read.
    pp: usize,
    /// Elements per padded input channel (all its phase planes).
    cs: usize,
}

impl Grid {
    fn new(
        cin: usize,
        cout: usize,
        (h, w): (usize, usize),
        (ph, pw): (usize, usize),
        (kh, kw): (usize, usize),
        (sh, sw): (usize, usize),
    ) -> Grid {
        let (hp, wp) = (h + 2 * ph, w + 2 * pw);
        let (ho, wo) = ((hp - kh) / sh + 1, (wp - kw) / sw + 1);
        let (hq, wq) = (hp.div_ceil(sh), wp.div_ceil(sw));
        let reach = (kh - 1) / sh * wq + (kw - 1) / sw;
        let pp = (hq * wq).max((ho * wq).next_multiple_of(16) + reach);
        Grid {
            cin,
            cout,
            h,
            w,
            ph,
            pw,
            kh,
            kw,
            sh,
            sw,
            wq,
            ho,
            wo,
            pp,
            cs: sh * sw * pp,
        }
    }
    /// The forward's grid of a geometry.
    fn forward(g: &ConvGeom) -> Grid {
        let w = &g.win;
        Grid::new(
            g.c,
            g.o,
            (g.h, g.w),
            (w.ph, w.pw),
            (w.kh, w.kw),
            (w.sh, w.sw),
        )
    }
    /// The input gradient's (unit stride): the output gradient padded by `k − 1 − p`.
    fn input_grad(g: &ConvGeom) -> Grid {
        let w = &g.win;
        let pad = (w.kh - 1 - w.ph, w.kw - 1 - w.pw);
        Grid::new(g.o, g.c, (g.ho, g.wo), pad, (w.kh, w.kw), (1, 1))
    }
    fn in_img(&self) -> usize {
        self.cin * self.h * self.w
    }
    fn out_img(&self) -> usize {
        self.cout * self.ho * self.wo
    }
    fn taps(&self) -> usize {
        self.kh * self.kw
    }
    /// Where tap `t` (`a · kw + b`) of grid position 0 lies in a padded channel.
    fn offset(&self, t: usize) -> usize {
        let (a, b) = (t / self.kw, t % self.kw);
        ((a % self.sh) * self.sw + b % self.sw) * self.pp + a / self.sh * self.wq + b / self.sw
    }
}

/// `y = conv(x, w) + bias`, every element of `y` written once.
pub(crate) fn forward<T: Float>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    y: &mut [MaybeUninit<T>],
) {
    let grid = Grid::forward(g);
    // SAFETY: T is f32 (`eligible`).
    let (x, w, bias, y) = unsafe { cast_forward(x, w, bias, y) };
    let packed = pack_forward(g, w);
    run(
        Tier::current(),
        &grid,
        g.n,
        x,
        &packed,
        bias,
        y.as_mut_ptr().cast(),
        y.len(),
        false,
    );
}

/// `dx += conv_full(gy, flip(w)ᵀ)`: the input gradient of [`forward`].
pub(crate) fn backward_input<T: Float>(g: &ConvGeom, gy: &[T], w: &[T], dx: &mut [T]) {
    let grid = Grid::input_grad(g);
    // SAFETY: T is f32 (`eligible`).
    let (gy, w, dx) = unsafe { (cast(gy), cast(w), &mut *(dx as *mut [T] as *mut [f32])) };
    let packed = pack_input_grad(g, w);
    run(
        Tier::current(),
        &grid,
        g.n,
        gy,
        &packed,
        None,
        dx.as_mut_ptr(),
        dx.len(),
        true,
    );
}

/// # Safety
/// T is f32.
pub(super) unsafe fn cast<T: Float>(x: &[T]) -> &[f32] {
    // SAFETY: the caller's contract.
    unsafe { &*(x as *const [T] as *const [f32]) }
}

/// A forward's operands as f32.
///
/// # Safety
/// T is f32.
#[allow(clippy::type_complexity)]
pub(super) unsafe fn cast_forward<'a, T: Float>(
    x: &'a [T],
    w: &'a [T],
    bias: Option<&'a [T]>,
    y: &'a mut [MaybeUninit<T>],
) -> (
    &'a [f32],
    &'a [f32],
    Option<&'a [f32]>,
    &'a mut [MaybeUninit<f32>],
) {
    // SAFETY: the caller's contract: every cast is an identity.
    unsafe {
        (
            cast(x),
            cast(w),
            bias.map(|b| cast(b)),
            &mut *(y as *mut [MaybeUninit<T>] as *mut [MaybeUninit<f32>]),
        )
    }
}

/// The forward's kernels in tile order (see [`pack`]).
pub(super) fn pack_forward(g: &ConvGeom, w: &[f32]) -> Scratch<f32> {
    let taps = g.win.kh * g.win.kw;
    pack(g.o, g.c, taps, |oc, ic, t| w[(oc * g.c + ic) * taps + t])
}

/// The input gradient's: output channel `ic` of the gradient pass reads input channel
/// `oc` of the output gradient, tap `(a, b)` flipped.
fn pack_input_grad(g: &ConvGeom, w: &[f32]) -> Scratch<f32> {
    let (kh, kw) = (g.win.kh, g.win.kw);
    let taps = kh * kw;
    pack(g.c, g.o, taps, |ic, oc, t| {
        w[(oc * g.c + ic) * taps + (kh - 1 - t / kw) * kw + (kw - 1 - t % kw)]
    })
}

/// The kernels in tile order: block of [`OB`] output channels, input channel, tap, then the
/// block's channels (zeros past `cout`), so that a tile reads them in one forward sweep.
fn pack(
    cout: usize,
    cin: usize,
    taps: usize,
    w: impl Fn(usize, usize, usize) -> f32,
) -> Scratch<f32> {
    let blocks = cout.div_ceil(OB);
    let mut p = Scratch::<f32>::zeroed(blocks * cin * taps * OB);
    for (blk, pb) in p.chunks_exact_mut(cin * taps * OB).enumerate() {
        for (ic, pc) in pb.chunks_exact_mut(taps * OB).enumerate() {
            for (t, pt) in pc.chunks_exact_mut(OB).enumerate() {
                for (k, v) in pt.iter_mut().enumerate().take(cout - blk * OB) {
                    *v = w(blk * OB + k, ic, t);
                }
            }
        }
    }
    p
}

/// Every image of the batch, across the pool, on `tier` ([`Tier::current`] but in the
/// tests): `out` holds `n` output images of `len / n` elements, written (or, with
/// `accumulate`, added into, then initialised).
#[allow(clippy::too_many_arguments)]
fn run(
    tier: Tier,
    g: &Grid,
    n: usize,
    x: &[f32],
    packed: &[f32],
    bias: Option<&[f32]>,
    out: *mut f32,
    len: usize,
    accumulate: bool,
) {
    assert!(
        x.len() == n * g.in_img() && len == n * g.out_img(),
        "conv2d direct: buffer sizes do not match the geometry"
    );
    let flops = 2 * n * g.out_img() * g.cin * g.taps();
    // The output may be uninitialised, so it is not a slice.
    let out = SharedOut(out);
    let blocks = g.cout.div_ceil(OB);
    each_image(
        flops,
        n,
        g.cin * g.cs,
        blocks,
        |b, xb| pad(g, &x[b * g.in_img()..(b + 1) * g.in_img()], xb),
        // SAFETY: image b's output lies inside `out`, and its blocks `blks` belong to this
        // call alone; the padded buffer is as long as `Grid::cs` says the tiles read;
        // `current` names a tier this CPU runs.
        |xb, b, blks| unsafe {
            let yi = out.get().add(b * g.out_img());
            image_on(tier, g, xb, packed, bias, yi, accumulate, blks)
        },
    );
}

/// Runs `image(buf, b, blocks)` for every image `b` of `n` across the pool, `prep(b, buf)`
/// having filled a scratch buffer of `buf_len` for it: whole images to each thread, or for
/// a single image its `blocks` blocks of output channels split between the threads, the
/// buffer shared (split by image, one thread would idle).
pub(super) fn each_image(
    flops: usize,
    n: usize,
    buf_len: usize,
    blocks: usize,
    prep: impl Fn(usize, &mut [f32]) + Sync + Send,
    image: impl Fn(&[f32], usize, Range<usize>) + Sync + Send,
) {
    if n == 1 {
        let mut buf = Scratch::<f32>::take(buf_len);
        prep(0, &mut buf);
        for_each_range(flops, blocks, |blks| image(&buf, 0, blks));
        return;
    }
    for_each_range(flops, n, |images| {
        let mut buf = Scratch::<f32>::take(buf_len);
        for b in images {
            prep(b, &mut buf);
            image(&buf, b, 0..blocks);
        }
    });
}

/// Copies one image into zero-padded phase planes, `cs` elements per channel. At unit
/// stride only the borders and the tail are zeroed, not the whole plane first.
fn pad(g: &Grid, x: &[f32], xb: &mut [f32]) {
    if g.sh * g.sw > 1 {
        xb.fill(0.0);
    }
    for (plane, dst) in x.chunks_exact(g.h * g.w).zip(xb.chunks_exact_mut(g.cs)) {
        if g.sh * g.sw == 1 {
            let (top, bottom) = (g.ph * g.wq, (g.ph + g.h) * g.wq);
            dst[..top].fill(0.0);
            dst[bottom..].fill(0.0);
            for (row, d) in plane
                .chunks_exact(g.w)
                .zip(dst[top..bottom].chunks_exact_mut(g.wq))
            {
                d[..g.pw].fill(0.0);
                d[g.pw..g.pw + g.w].copy_from_slice(row);
                d[g.pw + g.w..].fill(0.0);
            }
            continue;
        }
        for (r, row) in plane.chunks_exact(g.w).enumerate() {
            let r = r + g.ph;
            let base = (r % g.sh) * g.sw * g.pp + r / g.sh * g.wq;
            if g.sw == 2 {
                // Input column 2m goes to one phase, 2m + 1 to the other, pair by pair.
                let a = base + (g.pw % 2) * g.pp + g.pw / 2;
                let b = base + ((g.pw + 1) % 2) * g.pp + g.pw.div_ceil(2);
                let pairs = row.chunks_exact(2);
                if let [v] = pairs.remainder() {
                    dst[a + g.w / 2] = *v;
                }
                for (m, p) in pairs.enumerate() {
                    dst[a + m] = p[0];
                    dst[b + m] = p[1];
                }
                continue;
            }
            // Phase φ holds padded columns φ, φ + sw, …: input columns from the first of
            // them at or past the padding, every sw-th.
            for phase in 0..g.sw {
                let k0 = g.pw.saturating_sub(phase).div_ceil(g.sw);
                let first = phase + k0 * g.sw - g.pw;
                if first >= g.w {
                    continue;
                }
                let at = base + phase * g.pp + k0;
                let src = row[first..].iter().step_by(g.sw);
                for (d, &v) in dst[at..].iter_mut().zip(src) {
                    *d = v;
                }
            }
        }
    }
}

/// The output channel blocks `blks` of one image on the given tier.
///
/// # Safety
/// `y` holds the image's `cout · ho · wo` outputs (initialised when `accumulate`); `xb`
/// holds `cin` padded planes of `cs`; the CPU runs `tier`.
#[allow(clippy::too_many_arguments)]
unsafe fn image_on(
    tier: Tier,
    g: &Grid,
    xb: &[f32],
    packed: &[f32],
    bias: Option<&[f32]>,
    y: *mut f32,
    acc: bool,
    blks: Range<usize>,
) {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        match tier {
            Tier::Portable => image::<Portable, 2>(g, xb, packed, bias, y, acc, blks),
            #[cfg(target_arch = "x86_64")]
            Tier::Avx2 => image_avx2(g, xb, packed, bias, y, acc, blks),
            #[cfg(target_arch = "x86_64")]
            Tier::Avx512Emulated => image_emu16(g, xb, packed, bias, y, acc, blks),
            #[cfg(target_arch = "x86_64")]
            Tier::Avx512 => image_avx512(g, xb, packed, bias, y, acc, blks),
        }
    }
}

/// Defines `$name`: `$inner::<$v, $c>` compiled with a tier's target features (x86-64
/// only; the portable tier calls the generic function itself).
macro_rules! on_tier {
    ($name:ident, $feat:literal, $inner:ident::<$v:ty, $c:tt>($($a:ident: $t:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feat)]
        #[allow(clippy::too_many_arguments)]
        unsafe fn $name($($a: $t),*) {
            // SAFETY: the caller's contract, under the tier's features.
            unsafe { $inner::<$v, $c>($($a),*) }
        }
    };
}
pub(super) use on_tier;

// Two vectors, not three: 4 × 3 accumulators with three input vectors and a broadcast
// fill all sixteen registers, and on a Zen 3 it took 10-60% longer than 4 × 2 (batch 32,
// ResNet-8's 3×3 layers: stride 2, 1.32-1.36 against 1.04-1.07 ms forward).
on_tier!(image_avx2, "avx2,fma", image::<x86::Avx2, 2>(
    g: &Grid, xb: &[f32], p: &[f32], bias: Option<&[f32]>, y: *mut f32, acc: bool,
    blks: Range<usize>));
on_tier!(image_emu16, "avx2,fma", image::<x86::Emu16, NV_MAX>(
    g: &Grid, xb: &[f32], p: &[f32], bias: Option<&[f32]>, y: *mut f32, acc: bool,
    blks: Range<usize>));
on_tier!(image_avx512, "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma", image::<x86::Avx512, NV_MAX>(
    g: &Grid, xb: &[f32], p: &[f32], bias: Option<&[f32]>, y: *mut f32, acc: bool,
    blks: Range<usize>));

/// One image's blocks `blks` of output channels: for each, tiles of `NV` vectors of grid
/// positions (fewer for the last), each summed in registers and stored.
///
/// # Safety
/// As [`image_on`], under V's tier.
#[inline(always)]
unsafe fn image<V: F32Vec, const NV: usize>(
    g: &Grid,
    xb: &[f32],
    packed: &[f32],
    bias: Option<&[f32]>,
    y: *mut f32,
    acc: bool,
    blks: Range<usize>,
) {
    let l = V::LANES;
    let taps = g.taps();
    debug_assert!(xb.len() >= g.cin * g.cs);
    let offs = offsets(taps, |t| g.offset(t));
    let vecs = (g.ho * g.wq).div_ceil(l);
    for blk in blks {
        let w = &packed[blk * g.cin * taps * OB..(blk + 1) * g.cin * taps * OB];
        let store_tile = |v0: usize, nv: usize, tile: &[f32]| {
            let q = v0 * l..(v0 + nv) * l;
            for k in 0..OB.min(g.cout - blk * OB) {
                let oc = blk * OB + k;
                let b = bias.map_or(0.0, |b| b[oc]);
                let src = &tile[k * nv * l..(k + 1) * nv * l];
                // SAFETY: output channel `oc`'s plane of the image lies inside `y`.
                unsafe { store(g, src, q.clone(), b, y.add(oc * g.ho * g.wo), acc) };
            }
        };
        let (x, offs) = (xb.as_ptr(), &offs[..taps]);
        // SAFETY: the tiles read positions below `vecs · l` plus a tap offset, inside each
        // padded plane of `cs` (see `Grid::new`).
        unsafe { tiles::<V, NV>(x, g.cs, g.cin, offs, w, vecs, store_tile) };
    }
}

/// The offsets of `taps` taps (at most [`MAX_TAPS`]), `offset(t)` each.
pub(super) fn offsets(taps: usize, offset: impl Fn(usize) -> usize) -> [usize; MAX_TAPS] {
    assert!(taps <= MAX_TAPS, "conv2d direct: {taps} taps");
    let mut offs = [0usize; MAX_TAPS];
    for (t, o) in offs.iter_mut().take(taps).enumerate() {
        *o = offset(t);
    }
    offs
}

/// The register tiles of one block of output channels over `vecs` vectors of positions
/// from `x`, `NV` at a time (fewer for the last), each summed by [`sums`] and handed to
/// `store(first vector, vectors, tile)` as `OB` rows of `vectors · lanes`.
///
/// # Safety
/// As [`sums`] for every tile: the reads of `vecs` vectors past each tap's offset lie
/// inside the planes; under V's tier.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn tiles<V: F32Vec, const NV: usize>(
    x: *const f32,
    cs: usize,
    cin: usize,
    offs: &[usize],
    w: &[f32],
    vecs: usize,
    mut store: impl FnMut(usize, usize, &[f32]),
) {
    const { assert!(NV <= NV_MAX) };
    let l = V::LANES;
    let mut tile = [0.0f32; OB * NV_MAX * 16];
    let mut v0 = 0;
    while v0 < vecs {
        let nv = (vecs - v0).min(NV);
        // SAFETY: the caller's contract; the tile holds `OB · nv · l` values.
        unsafe {
            let x = x.add(v0 * l);
            let t = tile.as_mut_ptr();
            match nv {
                1 => sums::<V, 1>(x, cs, cin, offs, w, t),
                2 => sums::<V, 2>(x, cs, cin, offs, w, t),
                3 => sums::<V, 3>(x, cs, cin, offs, w, t),
                4 => sums::<V, 4>(x, cs, cin, offs, w, t),
                5 => sums::<V, 5>(x, cs, cin, offs, w, t),
                _ => sums::<V, 6>(x, cs, cin, offs, w, t),
            }
        }
        store(v0, nv, &tile[..OB * nv * l]);
        v0 += nv;
    }
}

/// The grid positions `q` of one output channel's tile into its plane `y` (`ho × wo`),
/// dropping the columns past `wo`, plus `b` (and the old values when `acc`).
///
/// # Safety
/// `y` holds the `ho · wo` plane (initialised when `acc`).
#[inline(always)]
unsafe fn store(g: &Grid, src: &[f32], q: Range<usize>, b: f32, y: *mut f32, acc: bool) {
    let end = q.end.min(g.ho * g.wq);
    let mut p = q.start;
    while p < end {
        let (i, j) = (p / g.wq, p % g.wq);
        let run_end = (i * g.wq + g.wo).min(end);
        if j < g.wo {
            let s = &src[p - q.start..run_end - q.start];
            let (d, n) = (unsafe { y.add(i * g.wo + j) }, s.len());
            // SAFETY: row i, columns j.. of the plane, which `src` (the tile) does not
            // overlap; initialised when `acc`. As slices the loops are vectorised (a loop
            // over the raw pointer was not: a fifth of a 5×5 one-channel forward).
            if acc {
                let d = unsafe { std::slice::from_raw_parts_mut(d, n) };
                d.iter_mut().zip(s).for_each(|(d, &v)| *d += v);
            } else {
                let d = unsafe { std::slice::from_raw_parts_mut(d.cast::<MaybeUninit<f32>>(), n) };
                d.iter_mut().zip(s).for_each(|(d, &v)| _ = d.write(v + b));
            }
        }
        p = (i + 1) * g.wq;
    }
}

/// The register tile: `OB` output channels by `NV` vectors of grid positions from `x`,
/// summed over `cin` input channels (planes `cs` apart) and the taps at `offs`, with the
/// kernels `w` in [`pack`]'s order; stored to `out` as `OB` rows of `NV · lanes`.
///
/// # Safety
/// Every read lies inside the padded planes; `out` holds `OB · NV · lanes` values; under
/// V's tier.
#[inline(always)]
unsafe fn sums<V: F32Vec, const NV: usize>(
    x: *const f32,
    cs: usize,
    cin: usize,
    offs: &[usize],
    w: &[f32],
    out: *mut f32,
) {
    // SAFETY: the caller's contract.
    unsafe {
        let mut acc = [[V::zero(); NV]; OB];
        let mut wp = w.as_ptr();
        for ic in 0..cin {
            let xc = x.add(ic * cs);
            for &off in offs {
                let xt = xc.add(off);
                let mut xv = [V::zero(); NV];
                for (v, xv) in xv.iter_mut().enumerate() {
                    *xv = V::load(xt.add(v * V::LANES));
                }
                for (k, a) in acc.iter_mut().enumerate() {
                    let wv = V::splat(*wp.add(k));
                    for (a, &xv) in a.iter_mut().zip(&xv) {
                        *a = xv.mul_add(wv, *a);
                    }
                }
                wp = wp.add(OB);
            }
        }
        for (k, a) in acc.iter().enumerate() {
            for (v, a) in a.iter().enumerate() {
                a.store(out.add((k * NV + v) * V::LANES));
            }
        }
    }
}

/// Whether [`backward_weight`] computes this weight gradient: an [`eligible`] geometry
/// with a 3×3 kernel (the register tile holds the nine taps), at stride 2 only up to 32
/// channels (for 32 to 64 channels at 14×14, batch 32, the unfolded product was as fast
/// or faster on that Xeon: 2.9-3.4 against 3.2-3.8 ms forward and backward).
pub(crate) fn weight_eligible<T: Float>(g: &ConvGeom) -> bool {
    let w = &g.win;
    let unit = w.sh == 1 && w.sw == 1;
    gradient_eligible::<T>(g)
        && w.kh == 3
        && w.kw == 3
        && (unit || g.c.max(g.o) <= 32)
        && wide_tile()
}

/// Taps of the kernels the weight gradient handles.
const TAPS: usize = 9;

/// `dw[oc, ic, a, b] += Σ_{b, i, j} gy[b, oc, i, j] · xp[b, ic, i + a, j + b]`: on the
/// padded grid, the dot product of `gy`'s plane (zeros in the dropped columns) with `xp`'s
/// plane shifted by the tap's offset. A register tile holds a few output channels times
/// the nine taps of one input channel and sums over a group of images before its lanes are
/// added up.
pub(crate) fn backward_weight<T: Float>(g: &ConvGeom, gy: &[T], x: &[T], dw: &mut [T]) {
    let grid = Grid::forward(g);
    assert!(
        x.len() == g.n * grid.in_img()
            && gy.len() == g.n * grid.out_img()
            && dw.len() == g.o * g.c * TAPS,
        "conv2d direct: buffer sizes do not match the geometry"
    );
    // SAFETY: T is f32 (`weight_eligible`).
    let (x, gy, dw) = unsafe { (cast(x), cast(gy), &mut *(dw as *mut [T] as *mut [f32])) };
    weight_grad_on(Tier::current(), &grid, g.n, x, gy, dw);
}

/// [`backward_weight`] on a given tier.
fn weight_grad_on(tier: Tier, g: &Grid, n: usize, x: &[f32], gy: &[f32], dw: &mut [f32]) {
    let gplane = (g.ho * g.wq).next_multiple_of(16);
    // Images per group: as many as keep the group's padded planes within 1 MiB (of a 2 MiB
    // L2), so that small planes sum over many images before the lanes are added up.
    let per_img = g.cin * g.cs + g.cout * gplane;
    let group = (1024 * 1024 / 4 / per_img).max(1);
    let flops = 2 * n * g.out_img() * g.cin * TAPS;
    sum_chunks(flops, n, dw, |imgs, acc, _| {
        let group = group.min(imgs.len());
        let mut xb = Scratch::<f32>::take(group * g.cin * g.cs);
        let mut gb = Scratch::<f32>::take(group * g.cout * gplane);
        for b0 in imgs.clone().step_by(group) {
            let nb = group.min(imgs.end - b0);
            for k in 0..nb {
                let b = b0 + k;
                pad(
                    g,
                    &x[b * g.in_img()..(b + 1) * g.in_img()],
                    &mut xb[k * g.cin * g.cs..(k + 1) * g.cin * g.cs],
                );
                spread(
                    g,
                    &gy[b * g.out_img()..(b + 1) * g.out_img()],
                    gplane,
                    &mut gb[k * g.cout * gplane..(k + 1) * g.cout * gplane],
                );
            }
            let bufs = Bufs {
                xb: &xb,
                gb: &gb,
                gplane,
                images: nb,
            };
            // SAFETY: the buffers are as the tiles read them; `tier` runs on this CPU.
            unsafe { weight_group_on(tier, g, &bufs, acc) };
        }
    });
}

/// One group of padded images for the weight gradient.
struct Bufs<'a> {
    /// `images` × `cin` padded input planes of `cs`.
    xb: &'a [f32],
    /// `images` × `cout` output-gradient planes on the grid, `gplane` long, zeros in the
    /// dropped columns and past the last row.
    gb: &'a [f32],
    gplane: usize,
    images: usize,
}

/// Copies one image's output gradient onto the padded grid (`wq` wide), zeros elsewhere.
fn spread(g: &Grid, gy: &[f32], gplane: usize, gb: &mut [f32]) {
    gb.fill(0.0);
    for (plane, dst) in gy
        .chunks_exact(g.ho * g.wo)
        .zip(gb.chunks_exact_mut(gplane))
    {
        for (i, row) in plane.chunks_exact(g.wo).enumerate() {
            dst[i * g.wq..i * g.wq + g.wo].copy_from_slice(row);
        }
    }
}

/// One group on the given tier.
///
/// # Safety
/// `b` holds the group as [`Bufs`] says; `acc` is `cout · cin · 9` long; the CPU runs
/// `tier`.
unsafe fn weight_group_on(tier: Tier, g: &Grid, b: &Bufs, acc: &mut [f32]) {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        match tier {
            Tier::Portable => weight_group::<Portable, 1>(g, b, acc),
            #[cfg(target_arch = "x86_64")]
            Tier::Avx2 => weight_group_avx2(g, b, acc),
            #[cfg(target_arch = "x86_64")]
            Tier::Avx512Emulated => weight_group_emu16(g, b, acc),
            #[cfg(target_arch = "x86_64")]
            Tier::Avx512 => weight_group_avx512(g, b, acc),
        }
    }
}

on_tier!(weight_group_avx2, "avx2,fma", weight_group::<x86::Avx2, 1>(
    g: &Grid, b: &Bufs, acc: &mut [f32]));
on_tier!(weight_group_emu16, "avx2,fma", weight_group::<x86::Emu16, 3>(
    g: &Grid, b: &Bufs, acc: &mut [f32]));
on_tier!(weight_group_avx512, "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma",
    weight_group::<x86::Avx512, 3>(g: &Grid, b: &Bufs, acc: &mut [f32]));

/// Every (block of `OW` output channels, input channel) tile of one group, added into
/// `acc` (`[cout, cin, 9]`).
///
/// # Safety
/// As [`weight_group_on`], under V's tier.
#[inline(always)]
unsafe fn weight_group<V: F32Vec, const OW: usize>(g: &Grid, b: &Bufs, acc: &mut [f32]) {
    let mut offs = [0usize; TAPS];
    for (t, o) in offs.iter_mut().enumerate() {
        *o = g.offset(t);
    }
    let vecs = b.gplane / V::LANES;
    let mut oc0 = 0;
    while oc0 < g.cout {
        let ow = OW.min(g.cout - oc0);
        for ic in 0..g.cin {
            let mut s = [[0.0f32; TAPS]; OW];
            // SAFETY: the tile reads `vecs` vectors of each of the group's planes, plus a
            // tap offset in the input planes (inside `cs`, see `Grid::new`).
            unsafe {
                let t = Planes {
                    x: b.xb.as_ptr().add(ic * g.cs),
                    xs: g.cin * g.cs,
                    gy: b.gb.as_ptr().add(oc0 * b.gplane),
                    gplane: b.gplane,
                    gs: g.cout * b.gplane,
                    images: b.images,
                    vecs,
                };
                match ow {
                    o if o == OW => dots::<V, OW>(t, &offs, &mut s),
                    1 => dots::<V, 1>(t, &offs, &mut s),
                    _ => dots::<V, 2>(t, &offs, &mut s),
                }
            }
            for (k, row) in s.iter().enumerate().take(ow) {
                let d = &mut acc[((oc0 + k) * g.cin + ic) * TAPS..][..TAPS];
                for (d, &v) in d.iter_mut().zip(row) {
                    *d += v;
                }
            }
        }
        oc0 += ow;
    }
}

/// Where one weight-gradient tile reads: one input plane from `x` and output-gradient
/// planes from `gy` (`gplane` apart), over `images` images (`xs` and `gs` apart), `vecs`
/// vectors of grid positions each.
#[derive(Clone, Copy)]
struct Planes {
    x: *const f32,
    xs: usize,
    gy: *const f32,
    gplane: usize,
    gs: usize,
    images: usize,
    vecs: usize,
}

/// The tile: for the first `OW` output-gradient planes of `p`, the nine dot products of
/// each with the input plane shifted by `offs[t]`, into `out[k][t]` (`out` has at least
/// `OW` rows).
///
/// # Safety
/// Every read lies inside the group's buffers; under V's tier.
#[inline(always)]
unsafe fn dots<V: F32Vec, const OW: usize>(
    p: Planes,
    offs: &[usize; TAPS],
    out: &mut [[f32; TAPS]],
) {
    // SAFETY: the caller's contract.
    unsafe {
        let mut a = [[V::zero(); TAPS]; OW];
        for img in 0..p.images {
            let (x, gy) = (p.x.add(img * p.xs), p.gy.add(img * p.gs));
            for v in 0..p.vecs {
                let q = v * V::LANES;
                let mut gv = [V::zero(); OW];
                for (k, gv) in gv.iter_mut().enumerate() {
                    *gv = V::load(gy.add(k * p.gplane + q));
                }
                for (t, &off) in offs.iter().enumerate() {
                    let xv = V::load(x.add(q + off));
                    for (a, &gv) in a.iter_mut().zip(&gv) {
                        a[t] = gv.mul_add(xv, a[t]);
                    }
                }
            }
        }
        for (o, a) in out.iter_mut().zip(&a) {
            for (o, a) in o.iter_mut().zip(a) {
                *o = a.sum();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{data, geom, reference};
    use super::*;

    /// Geometries the routine takes: odd planes, non-square kernels, padding 0 up to k − 1,
    /// channel counts that are not multiples of the tile, a plane narrower than a vector.
    fn configs() -> Vec<ConvGeom> {
        vec![
            geom(2, 16, (28, 28), 16, (3, 3), (1, 1), (1, 1), (1, 1), 1),
            geom(3, 8, (7, 7), 13, (3, 3), (1, 1), (1, 1), (1, 1), 1),
            geom(2, 9, (5, 11), 10, (3, 5), (1, 1), (2, 0), (1, 1), 1),
            geom(2, 12, (9, 6), 8, (1, 1), (1, 1), (0, 0), (1, 1), 1),
            geom(2, 10, (13, 17), 11, (5, 3), (1, 1), (4, 2), (1, 1), 1),
            geom(4, 8, (2, 3), 9, (3, 3), (1, 1), (1, 2), (1, 1), 1),
            geom(2, 33, (14, 14), 31, (3, 3), (1, 1), (0, 0), (1, 1), 1),
            geom(40, 8, (3, 4), 5, (3, 3), (1, 1), (1, 1), (1, 1), 1),
            // Strided: the forward and the weight gradient.
            geom(2, 16, (28, 28), 32, (3, 3), (2, 2), (1, 1), (1, 1), 1),
            geom(3, 9, (13, 11), 10, (3, 3), (2, 2), (1, 1), (1, 1), 1),
            geom(2, 8, (14, 14), 12, (1, 1), (2, 2), (0, 0), (1, 1), 1),
            geom(2, 10, (9, 12), 9, (3, 3), (2, 1), (2, 0), (1, 1), 1),
            geom(2, 8, (10, 7), 8, (5, 3), (1, 2), (3, 2), (1, 1), 1),
            geom(30, 8, (5, 5), 11, (3, 3), (2, 2), (0, 0), (1, 1), 1),
            geom(5, 64, (7, 7), 64, (3, 3), (1, 1), (1, 1), (1, 1), 1),
            // Three input channels, an RGB stem: strided, and at unit stride.
            geom(3, 3, (15, 16), 32, (3, 3), (2, 2), (1, 1), (1, 1), 1),
            geom(2, 3, (9, 10), 7, (3, 3), (1, 1), (1, 1), (1, 1), 1),
            // One image: its blocks of output channels split between threads (three blocks
            // for two threads; one block).
            geom(1, 16, (28, 28), 10, (3, 3), (2, 2), (1, 1), (1, 1), 1),
            geom(1, 12, (30, 29), 13, (3, 3), (1, 1), (1, 1), (1, 1), 1),
            geom(1, 3, (33, 32), 4, (3, 3), (2, 2), (1, 1), (1, 1), 1),
        ]
    }

    #[test]
    fn channel_bounds_of_each_direction() {
        // A stem of three channels goes forward here, its gradients elsewhere; one channel
        // (S2, S3) stays with the unfolded product.
        let stem = geom(2, 3, (32, 32), 32, (3, 3), (2, 2), (1, 1), (1, 1), 1);
        assert!(eligible::<f32>(&stem) && !weight_eligible::<f32>(&stem));
        let unit = geom(2, 3, (14, 14), 16, (3, 3), (1, 1), (1, 1), (1, 1), 1);
        assert!(!input_eligible::<f32>(&unit) && !weight_eligible::<f32>(&unit));
        let one = geom(60, 1, (28, 28), 32, (5, 5), (1, 1), (2, 2), (1, 1), 1);
        assert!(!eligible::<f32>(&one));
        // A single image: a stride-2 layer onto 14×14 (on every tier), not onto 7×7.
        let b1 = geom(1, 16, (28, 28), 32, (3, 3), (2, 2), (1, 1), (1, 1), 1);
        assert!(eligible::<f32>(&b1));
        let b1_small = geom(1, 32, (14, 14), 64, (3, 3), (2, 2), (1, 1), (1, 1), 1);
        assert!(!eligible::<f32>(&b1_small));
    }

    fn f32s(v: &[f64]) -> Vec<f32> {
        v.iter().map(|&x| x as f32).collect()
    }

    /// `Σ a·b` in f64.
    fn dot(a: &[f32], b: &[f64]) -> f64 {
        a.iter().zip(b).map(|(&x, &y)| x as f64 * y).sum()
    }

    #[test]
    fn every_tier_matches_the_definition_and_its_adjoint() {
        let (tiers, missing) = Tier::runnable();
        eprintln!("direct conv: tiers run {tiers:?}, not runnable here {missing:?}");
        for tier in tiers {
            for g in configs() {
                assert!(eligible_shape(&g), "{g:?}");
                let grid = Grid::forward(&g);
                let (xl, wl, yl) = (
                    g.n * g.c * g.h * g.w,
                    g.o * g.taps(),
                    g.n * g.o * g.ho * g.wo,
                );
                let (x, w, b) = (data(xl, 0.37), data(wl, 0.91), data(g.o, 1.7));
                let want = reference(&g, &x, &w, Some(&b));
                let (xf, wf, bf) = (f32s(&x), f32s(&w), f32s(&b));
                let packed = pack_forward(&g, &wf);
                let mut y = vec![f32::NAN; yl];
                run_on(tier, &grid, g.n, &xf, &packed, Some(&bf), &mut y, false);
                for (i, (&a, &e)) in y.iter().zip(&want).enumerate() {
                    assert!(
                        (a as f64 - e).abs() <= 1e-4 * (1.0 + e.abs()),
                        "{tier:?} {g:?} y[{i}] = {a}, want {e}"
                    );
                }
                if g.win.sh > 1 || g.win.sw > 1 || g.win.ph >= g.win.kh || g.win.pw >= g.win.kw {
                    continue;
                }
                // The input gradient is the adjoint: <gy, conv(x)> = <x, conv*(gy)> without
                // bias; it adds into what is there.
                let gy = data(yl, 0.53);
                let gyf = f32s(&gy);
                let (back, packed) = (Grid::input_grad(&g), pack_input_grad(&g, &wf));
                let mut dx = vec![1.0f32; xl];
                run_on(tier, &back, g.n, &gyf, &packed, None, &mut dx, true);
                dx.iter_mut().for_each(|v| *v -= 1.0);
                let plain = reference(&g, &x, &w, None);
                let (lhs, rhs) = (dot(&gyf, &plain), dot(&dx, &x));
                assert!(
                    (lhs - rhs).abs() <= 1e-4 * (1.0 + lhs.abs()),
                    "{tier:?} {g:?}: {lhs} vs {rhs}"
                );
            }
        }
    }

    /// The weight gradient, on every tier, against the definition summed in f64 (3×3
    /// kernels; groups of one image and of several).
    #[test]
    fn every_tier_gives_the_weight_gradient() {
        let (tiers, _) = Tier::runnable();
        for tier in tiers {
            for g in configs()
                .into_iter()
                .filter(|g| g.win.kh == 3 && g.win.kw == 3)
            {
                let grid = Grid::forward(&g);
                let (x, gy) = (
                    data(g.n * g.c * g.h * g.w, 0.37),
                    data(g.n * g.o * g.ho * g.wo, 0.53),
                );
                let mut want = vec![0.25; g.o * g.c * 9];
                for b in 0..g.n {
                    for oc in 0..g.o {
                        for ic in 0..g.c {
                            for t in 0..9 {
                                for i in 0..g.ho {
                                    for j in 0..g.wo {
                                        let (r, c) = (
                                            (i * g.win.sh + t / 3) as isize - g.win.ph as isize,
                                            (j * g.win.sw + t % 3) as isize - g.win.pw as isize,
                                        );
                                        if r < 0 || c < 0 || r >= g.h as isize || c >= g.w as isize
                                        {
                                            continue;
                                        }
                                        want[(oc * g.c + ic) * 9 + t] += gy
                                            [((b * g.o + oc) * g.ho + i) * g.wo + j]
                                            * x[((b * g.c + ic) * g.h + r as usize) * g.w
                                                + c as usize];
                                    }
                                }
                            }
                        }
                    }
                }
                let mut dw = vec![0.25f32; want.len()];
                weight_grad_on(tier, &grid, g.n, &f32s(&x), &f32s(&gy), &mut dw);
                for (i, (&a, &e)) in dw.iter().zip(&want).enumerate() {
                    assert!(
                        (a as f64 - e).abs() <= 1e-4 * (1.0 + e.abs()),
                        "{tier:?} {g:?} dw[{i}] = {a}, want {e}"
                    );
                }
            }
        }
    }

    /// The public entry points take this routine where it is eligible, and give the
    /// definition's values.
    #[test]
    fn the_conv_entry_points_agree() {
        // Stride 2: eligible on every tier.
        let g = geom(2, 16, (14, 14), 24, (3, 3), (2, 2), (1, 1), (1, 1), 1);
        assert!(eligible::<f32>(&g) && !eligible::<f64>(&g));
        let (x, w) = (data(g.n * g.c * g.h * g.w, 0.3), data(g.o * g.taps(), 0.7));
        let want = reference(&g, &x, &w, None);
        let y = super::super::conv2d_forward_new(&g, &f32s(&x), &f32s(&w), None);
        for (&a, &e) in y.iter().zip(&want) {
            assert!((a as f64 - e).abs() <= 1e-4 * (1.0 + e.abs()));
        }
    }

    fn eligible_shape(g: &ConvGeom) -> bool {
        g.groups == 1 && g.win.sh <= 2 && g.win.sw <= 2 && g.win.dh == 1 && g.win.dw == 1
    }

    /// [`run`] on a given tier, into a slice.
    #[allow(clippy::too_many_arguments)]
    fn run_on(
        tier: Tier,
        g: &Grid,
        n: usize,
        x: &[f32],
        p: &[f32],
        bias: Option<&[f32]>,
        out: &mut [f32],
        acc: bool,
    ) {
        run(tier, g, n, x, p, bias, out.as_mut_ptr(), out.len(), acc);
    }
}
