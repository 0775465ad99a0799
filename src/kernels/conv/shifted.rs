//! Direct convolution from one input channel (f32, unit stride): the first layer of a
//! network on grey images, S2's and S3's 5×5 convolutions.
//!
//! With one input channel the unfolded product has a short sum (K = `kh · kw`, 25 for a
//! 5×5 kernel) and writes `K` times the image, and [`super::direct`]'s padded grid computes
//! the `kw − 1` dropped columns of each row (4 of 32 for a 28-wide 5×5 output). Here each
//! image is copied `kw` times, copy `b` shifted by column tap `b` and zeroed where that tap
//! falls in the padding, each copy `wo` wide with the vertical padding as zero rows: then
//! tap `(a, b)` of a run of consecutive outputs, across row ends, is one unaligned load
//! from copy `b` at `a · dh` rows down. Output positions are the plane's own, so a register
//! tile ([`direct::sums`]) covers whole vectors of outputs, none dropped, and its rows are
//! stored as they are.
//!
//! `y[b, oc] = bias[oc] + Σ_{p, q} w[oc, 0, p, q] · x[b, 0, i + p·dh − ph, j + q·dw − pw]`.

use std::any::TypeId;
use std::mem::MaybeUninit;
use std::ops::Range;

use super::ConvGeom;
use super::direct::{self, MAX_TAPS, OB};
use crate::float::Float;
use crate::kernels::sgemm::Tier;
use crate::runtime::simd::F32Vec;
use crate::runtime::simd::portable::Portable;
#[cfg(target_arch = "x86_64")]
use crate::runtime::simd::x86;
use crate::runtime::threads::SharedOut;

/// Whether [`forward`] computes the forward: f32, one input channel, one group, unit
/// stride, a kernel of more than one tap, at least one register tile of output channels,
/// two images or more, and AVX-512's register tile. Measured on a Zen 4 (2 threads, 3-4
/// interleaved A/B runs against the unfolded product): S3 (60 images, 1→32, 5×5, 28×28)
/// forward 0.65-0.81x, S2 (1→30, 5×5 onto 24×24) 0.81-0.84x, ResNet-8's stem (1→16, 3×3)
/// at batch 32 0.68-0.88x; at batch 1 that stem took 1.65x (its 16 channels are two
/// blocks, one per thread, for a fork and a join). The AVX2 tier's 4 × 2 tile, two loads
/// and four broadcasts for eight multiply-adds, took 1.4-1.8x on S2 and S3.
pub(crate) fn eligible<T: Float>(g: &ConvGeom) -> bool {
    let w = &g.win;
    direct::wide_tile()
        && TypeId::of::<T>() == TypeId::of::<f32>()
        && g.c == 1
        && g.n >= 2
        && g.groups == 1
        && g.o >= OB
        && w.sh == 1
        && w.sw == 1
        && w.kh * w.kw > 1
        && w.kh * w.kw <= MAX_TAPS
}

/// One image's shifted copies.
#[derive(Clone, Copy)]
struct Shifts {
    h: usize,
    w: usize,
    ph: usize,
    pw: usize,
    kh: usize,
    kw: usize,
    dh: usize,
    dw: usize,
    ho: usize,
    wo: usize,
    cout: usize,
    /// Rows of each copy: the output's and the kernel's reach below it.
    rows: usize,
    /// Elements per copy: `rows · wo` and a vector's tail that the last tile may read.
    len: usize,
}

impl Shifts {
    fn new(g: &ConvGeom) -> Shifts {
        let w = &g.win;
        let rows = g.ho + (w.kh - 1) * w.dh;
        Shifts {
            h: g.h,
            w: g.w,
            ph: w.ph,
            pw: w.pw,
            kh: w.kh,
            kw: w.kw,
            dh: w.dh,
            dw: w.dw,
            ho: g.ho,
            wo: g.wo,
            cout: g.o,
            rows,
            len: rows * g.wo + 16,
        }
    }
    fn plane(&self) -> usize {
        self.ho * self.wo
    }
    /// Where tap `t` (`a · kw + b`) of output 0 lies in the copies.
    fn offset(&self, t: usize) -> usize {
        let (a, b) = (t / self.kw, t % self.kw);
        b * self.len + a * self.dh * self.wo
    }
}

/// Fills the `kw` copies of one image `x` (`h × w`): copy `b`'s element `(r, j)` is
/// `x[r − ph, j + b·dw − pw]`, zero outside the image.
fn shift(s: &Shifts, x: &[f32], buf: &mut [f32]) {
    for (b, copy) in buf.chunks_exact_mut(s.len).enumerate() {
        // Output columns j whose input column j + b·dw − pw lies inside the image.
        let shift = b * s.dw;
        let j0 = s.pw.saturating_sub(shift).min(s.wo);
        let j1 = (s.w + s.pw).saturating_sub(shift).min(s.wo).max(j0);
        let (body, tail) = copy.split_at_mut(s.rows * s.wo);
        tail.fill(0.0);
        for (r, row) in body.chunks_exact_mut(s.wo).enumerate() {
            match r.checked_sub(s.ph).filter(|&i| i < s.h) {
                Some(i) => {
                    let src = &x[i * s.w + j0 + shift - s.pw..][..j1 - j0];
                    row[..j0].fill(0.0);
                    row[j0..j1].copy_from_slice(src);
                    row[j1..].fill(0.0);
                }
                None => row.fill(0.0),
            }
        }
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
    // SAFETY: T is f32 (`eligible`).
    let (x, w, bias, y) = unsafe { direct::cast_forward(x, w, bias, y) };
    run(Tier::current(), g, x, &direct::pack_forward(g, w), bias, y);
}

/// Every image of the batch on `tier`.
fn run(
    tier: Tier,
    g: &ConvGeom,
    x: &[f32],
    packed: &[f32],
    bias: Option<&[f32]>,
    y: &mut [MaybeUninit<f32>],
) {
    let s = Shifts::new(g);
    let (img, out_img) = (g.h * g.w, g.o * s.plane());
    assert!(
        x.len() == g.n * img && y.len() == g.n * out_img,
        "conv2d shifted: buffer sizes do not match the geometry"
    );
    let flops = 2 * y.len() * s.kh * s.kw;
    let out = SharedOut(y.as_mut_ptr().cast::<f32>());
    direct::each_image(
        flops,
        g.n,
        s.kw * s.len,
        g.o.div_ceil(OB),
        |b, buf| shift(&s, &x[b * img..(b + 1) * img], buf),
        // SAFETY: image b's output lies inside `y`, and its blocks `blks` belong to this
        // call alone; the copies are `kw · len` long; `current` names a tier this CPU runs.
        |buf, b, blks| unsafe {
            image_on(
                tier,
                &s,
                buf,
                packed,
                bias,
                out.get().add(b * out_img),
                blks,
            )
        },
    );
}

/// The output channel blocks `blks` of one image on the given tier.
///
/// # Safety
/// `y` holds the image's `cout · ho · wo` outputs; `buf` holds the `kw` copies; the CPU
/// runs `tier`.
unsafe fn image_on(
    tier: Tier,
    s: &Shifts,
    buf: &[f32],
    packed: &[f32],
    bias: Option<&[f32]>,
    y: *mut f32,
    blks: Range<usize>,
) {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        match tier {
            Tier::Portable => image::<Portable, 2>(s, buf, packed, bias, y, blks),
            #[cfg(target_arch = "x86_64")]
            Tier::Avx2 => image_avx2(s, buf, packed, bias, y, blks),
            #[cfg(target_arch = "x86_64")]
            Tier::Avx512Emulated => image_emu16(s, buf, packed, bias, y, blks),
            #[cfg(target_arch = "x86_64")]
            Tier::Avx512 => image_avx512(s, buf, packed, bias, y, blks),
        }
    }
}

// The tile shapes of `direct`'s forward on each tier, through its `on_tier!`.
direct::on_tier!(image_avx2, "avx2,fma", image::<x86::Avx2, 2>(
    s: &Shifts, buf: &[f32], p: &[f32], bias: Option<&[f32]>, y: *mut f32, blks: Range<usize>));
direct::on_tier!(image_emu16, "avx2,fma", image::<x86::Emu16, 6>(
    s: &Shifts, buf: &[f32], p: &[f32], bias: Option<&[f32]>, y: *mut f32, blks: Range<usize>));
direct::on_tier!(image_avx512, "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma",
    image::<x86::Avx512, 6>(
    s: &Shifts, buf: &[f32], p: &[f32], bias: Option<&[f32]>, y: *mut f32, blks: Range<usize>));

/// One image's blocks `blks` of output channels: for each, tiles of `NV` vectors of
/// output positions (fewer for the last), each summed in registers and stored with its
/// bias.
///
/// # Safety
/// As [`image_on`], under V's tier.
#[inline(always)]
unsafe fn image<V: F32Vec, const NV: usize>(
    s: &Shifts,
    buf: &[f32],
    packed: &[f32],
    bias: Option<&[f32]>,
    y: *mut f32,
    blks: Range<usize>,
) {
    let (l, taps, plane) = (V::LANES, s.kh * s.kw, s.plane());
    let offs = direct::offsets(taps, |t| s.offset(t));
    for blk in blks {
        let w = &packed[blk * taps * OB..(blk + 1) * taps * OB];
        let store_tile = |v0: usize, nv: usize, tile: &[f32]| {
            let (p0, n) = (v0 * l, (nv * l).min(plane - v0 * l));
            for k in 0..OB.min(s.cout - blk * OB) {
                let oc = blk * OB + k;
                let b = bias.map_or(0.0, |b| b[oc]);
                // SAFETY: positions p0.. of output channel oc's plane, inside `y`, which the
                // tile does not overlap.
                let dst = unsafe {
                    let d = y.add(oc * plane + p0).cast::<MaybeUninit<f32>>();
                    std::slice::from_raw_parts_mut(d, n)
                };
                let src = &tile[k * nv * l..][..n];
                dst.iter_mut()
                    .zip(src)
                    .for_each(|(d, &v)| _ = d.write(v + b));
            }
        };
        let (x, offs, vecs) = (buf.as_ptr(), &offs[..taps], plane.div_ceil(l));
        // SAFETY: the tiles read positions below `vecs · l ≤ plane + 15` past a tap's
        // offset, inside its copy (`Shifts::len`).
        unsafe { direct::tiles::<V, NV>(x, 0, 1, offs, w, vecs, store_tile) };
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{data, geom, reference};
    use super::*;

    #[test]
    fn every_tier_matches_the_definition() {
        let (tiers, missing) = Tier::runnable();
        eprintln!("shifted conv: tiers run {tiers:?}, not runnable here {missing:?}");
        // S3 and S2; odd planes and non-square kernels; padding beyond the kernel's reach;
        // dilation; output channels not a multiple of the tile; one image (not taken by
        // `eligible`, but its blocks are split between threads); a plane narrower than a
        // vector.
        let configs = [
            geom(3, 1, (28, 28), 32, (5, 5), (1, 1), (2, 2), (1, 1), 1),
            geom(2, 1, (28, 28), 30, (5, 5), (1, 1), (0, 0), (1, 1), 1),
            geom(2, 1, (13, 17), 9, (3, 5), (1, 1), (1, 2), (1, 1), 1),
            geom(2, 1, (9, 7), 6, (3, 3), (1, 1), (4, 3), (1, 1), 1),
            geom(2, 1, (15, 12), 8, (3, 3), (1, 1), (2, 1), (2, 3), 1),
            geom(1, 1, (30, 29), 13, (5, 3), (1, 1), (2, 1), (1, 1), 1),
            geom(4, 1, (3, 2), 4, (2, 2), (1, 1), (1, 0), (1, 1), 1),
        ];
        for tier in tiers {
            for g in &configs {
                let (x, w, b) = (
                    data(g.n * g.h * g.w, 0.37),
                    data(g.o * g.taps(), 0.91),
                    data(g.o, 1.7),
                );
                let want = reference(g, &x, &w, Some(&b));
                let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
                let (xf, wf, bf) = (f32s(&x), f32s(&w), f32s(&b));
                let mut y = vec![MaybeUninit::new(f32::NAN); want.len()];
                run(
                    tier,
                    g,
                    &xf,
                    &direct::pack_forward(g, &wf),
                    Some(&bf),
                    &mut y,
                );
                for (i, (a, &e)) in y.iter().zip(&want).enumerate() {
                    // SAFETY: initialised above (and every element is written).
                    let a = unsafe { a.assume_init() } as f64;
                    assert!(
                        (a - e).abs() <= 1e-4 * (1.0 + e.abs()),
                        "{tier:?} {g:?} y[{i}] = {a}, want {e}"
                    );
                }
            }
        }
    }

    #[test]
    fn takes_one_input_channel_at_unit_stride() {
        // On the AVX-512 tier only.
        let s3 = geom(60, 1, (28, 28), 32, (5, 5), (1, 1), (2, 2), (1, 1), 1);
        assert_eq!(eligible::<f32>(&s3), direct::wide_tile());
        assert!(!eligible::<f64>(&s3));
        for other in [
            geom(2, 2, (28, 28), 32, (5, 5), (1, 1), (2, 2), (1, 1), 1),
            geom(2, 1, (28, 28), 32, (5, 5), (2, 2), (2, 2), (1, 1), 1),
            geom(2, 1, (28, 28), 3, (5, 5), (1, 1), (2, 2), (1, 1), 1),
            geom(1, 1, (28, 28), 32, (5, 5), (1, 1), (2, 2), (1, 1), 1),
        ] {
            assert!(!eligible::<f32>(&other), "{other:?}");
        }
    }
}
