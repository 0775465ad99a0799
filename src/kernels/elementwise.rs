//! Elementwise loops: maps, NumPy-broadcasting zips, and in-place accumulation.

use std::mem::MaybeUninit;

use rayon::prelude::*;
use smallvec::SmallVec;

use crate::float::Float;
use crate::runtime::simd::tiers;
use crate::runtime::threads::for_each_chunk;
use crate::shape::Shape;

/// `acc[i] += x[i]`.
#[inline]
pub fn add_assign<T: Float>(acc: &mut [T], x: &[T]) {
    assert_eq!(acc.len(), x.len(), "add_assign: lengths differ");
    for (a, &b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}

/// Below this many elements a map runs on the caller: a hand-over to the pool costs more.
const PARALLEL_ELEMENTS: usize = 100_000;

/// `f` applied to every element; long slices are split across the pool.
#[inline]
pub fn map<T: Float>(x: &[T], f: impl Fn(T) -> T + Sync + Send) -> Vec<T> {
    if x.len() < PARALLEL_ELEMENTS {
        return crate::runtime::buffers::collect(x.len(), x.iter().map(|&v| f(v)));
    }
    crate::runtime::threads::run(2 * x.len(), |threads| {
        if threads == 1 {
            return crate::runtime::buffers::collect(x.len(), x.iter().map(|&v| f(v)));
        }
        let mut out = crate::runtime::buffers::with_capacity(x.len());
        x.par_iter()
            .with_min_len(PARALLEL_ELEMENTS / 4)
            .map(|&v| f(v))
            .collect_into_vec(&mut out);
        out
    })
}

/// `f(a[i], b[i])` for equal-length slices; long slices are split across the pool.
#[inline]
pub fn zip<T: Float>(a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync + Send) -> Vec<T> {
    assert_eq!(a.len(), b.len(), "zip: lengths differ");
    if a.len() < PARALLEL_ELEMENTS {
        return crate::runtime::buffers::collect(a.len(), a.iter().zip(b).map(|(&x, &y)| f(x, y)));
    }
    crate::runtime::threads::run(2 * a.len(), |threads| {
        if threads == 1 {
            return crate::runtime::buffers::collect(
                a.len(),
                a.iter().zip(b).map(|(&x, &y)| f(x, y)),
            );
        }
        let mut out = crate::runtime::buffers::with_capacity(a.len());
        a.par_iter()
            .zip(b)
            .with_min_len(PARALLEL_ELEMENTS / 4)
            .map(|(&x, &y)| f(x, y))
            .collect_into_vec(&mut out);
        out
    })
}

/// The keep/drop decision of element `i` of a dropout mask: a keyed hash of `i` (two
/// rounds of MurmurHash3's 32-bit finaliser, a bijection, with a half of `seed` mixed in
/// before each), so that any element's bit can be computed on its own — in parallel, in
/// SIMD lanes, and again in the backward pass, with nothing stored. The element is kept when
/// the hash is at least `threshold` (= ⌊p · 2^32⌋), i.e. with probability `1 − p` to within
/// 2^-32.
#[inline(always)]
pub fn dropout_keeps(seed: u64, i: usize, threshold: u32) -> bool {
    #[inline(always)]
    fn fmix32(mut h: u32) -> u32 {
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^ (h >> 16)
    }
    let (k1, k2) = (seed as u32, (seed >> 32) as u32);
    // Indices past 2^32 (a 16 GiB tensor) fold their high half into the second key.
    let hi = ((i as u64) >> 32) as u32;
    let h = fmix32(fmix32(i as u32 ^ k1) ^ k2 ^ hi.wrapping_mul(0x9e37_79b9));
    h >= threshold
}

/// `y[i] = x[i] · scale` where the mask of [`dropout_keeps`] keeps element `i`, else
/// `x[i] · 0` (0, or NaN for a NaN or infinite `x[i]`): the forward pass of dropout on its
/// input and the backward pass on the gradient (the same `seed` gives the same mask). Long slices are split across the pool; the result does not
/// depend on the split, nor on the CPU's vector width.
pub fn dropout<T: Float>(x: &[T], seed: u64, threshold: u32, scale: T) -> Vec<T> {
    map_chunks(x, 8, |first, xc, yc| {
        dropout_chunk(first, xc, yc, seed, threshold, scale)
    })
}

/// `y` from `x` by `chunk(first, x_part, y_part)` over consecutive parts (`first` is the
/// part's offset); long slices are split across the pool in parts of fixed size, so the
/// result does not depend on the split. `flops_per_element` sizes the hand-over decision.
pub(crate) fn map_chunks<T: Float>(
    x: &[T],
    flops_per_element: usize,
    chunk: impl Fn(usize, &[T], &mut [T]) + Sync,
) -> Vec<T> {
    let mut y = crate::runtime::buffers::zeroed(x.len());
    if x.len() < PARALLEL_ELEMENTS {
        chunk(0, x, &mut y);
        return y;
    }
    crate::runtime::threads::run(flops_per_element * x.len(), |threads| {
        if threads == 1 {
            chunk(0, x, &mut y);
        } else {
            const CHUNK: usize = PARALLEL_ELEMENTS / 4;
            y.par_chunks_mut(CHUNK)
                .zip(x.par_chunks(CHUNK))
                .enumerate()
                .for_each(|(c, (yc, xc))| chunk(c * CHUNK, xc, yc));
        }
    });
    y
}

tiers! {
/// [`dropout`] on the elements `first..first + x.len()`, vectorised for the CPU it runs on.
fn dropout_chunk<T: Float>(first: usize, x: &[T], y: &mut [T], seed: u64, thr: u32, scale: T) {
    for (k, (yi, &xi)) in y.iter_mut().zip(x).enumerate() {
        let keep = dropout_keeps(seed, first + k, thr);
        // x · 0 rather than 0 for a dropped element: NaN and infinity stay NaN, as in
        // PyTorch, where dropout multiplies by the mask.
        *yi = xi * if keep { scale } else { T::ZERO };
    }
}
}

/// The strides with which `shape` is read when broadcast to `out` (0 on broadcast axes).
/// `shape` must broadcast to `out`.
pub fn broadcast_strides(shape: &Shape, out: &Shape) -> Vec<usize> {
    let r = out.rank();
    let off = r - shape.rank();
    let st = shape.strides_inline();
    (0..r)
        .map(|i| {
            if i < off || shape[i - off] == 1 {
                0
            } else {
                st[i - off]
            }
        })
        .collect()
}

/// Calls `f(out_index, a_offset, b_offset)` for every element of `out`, in row-major order,
/// with the offsets at which two operands of the given strides are read.
pub fn for_each_broadcast(
    out: &Shape,
    sa: &[usize],
    sb: &[usize],
    mut f: impl FnMut(usize, usize, usize),
) {
    let r = out.rank();
    if r == 0 {
        f(0, 0, 0);
        return;
    }
    let n = out.numel();
    if n == 0 {
        return;
    }
    let inner = out[r - 1];
    let (ia, ib) = (sa[r - 1], sb[r - 1]);
    let mut idx = vec![0usize; r];
    let (mut oa, mut ob) = (0usize, 0usize);
    let mut o = 0;
    while o < n {
        for j in 0..inner {
            f(o + j, oa + j * ia, ob + j * ib);
        }
        o += inner;
        // Odometer over the outer axes, updating both offsets incrementally.
        let mut ax = r - 1;
        while ax > 0 {
            ax -= 1;
            idx[ax] += 1;
            oa += sa[ax];
            ob += sb[ax];
            if idx[ax] < out[ax] {
                break;
            }
            oa -= sa[ax] * out[ax];
            ob -= sb[ax] * out[ax];
            idx[ax] = 0;
        }
    }
}

/// `f(a, b)` over the NumPy broadcast of the operands to `out`.
pub fn broadcast_zip<T: Float>(
    a: &[T],
    a_shape: &Shape,
    b: &[T],
    b_shape: &Shape,
    out: &Shape,
    f: impl Fn(T, T) -> T + Sync + Send,
) -> Vec<T> {
    if a_shape == out && b_shape == out {
        return zip(a, b, f);
    }
    if b.len() == 1 && a_shape == out {
        let s = b[0];
        return crate::runtime::buffers::collect(a.len(), a.iter().map(|&x| f(x, s)));
    }
    if a.len() == 1 && b_shape == out {
        let s = a[0];
        return crate::runtime::buffers::collect(b.len(), b.iter().map(|&y| f(s, y)));
    }
    let (sa, sb) = (
        broadcast_strides(a_shape, out),
        broadcast_strides(b_shape, out),
    );
    let dims = collapse(out, &sa, &sb);
    let n = out.numel();
    let Some(&Axis {
        len,
        sa: ia,
        sb: ib,
    }) = dims.last()
    else {
        // Every axis of length 1: a single element.
        return crate::runtime::buffers::collect(n, std::iter::once(f(a[0], b[0])));
    };
    let outer = &dims[..dims.len() - 1];
    let row = |r: usize, y: &mut [MaybeUninit<T>]| {
        // The row's offsets from its index, axis by axis from the innermost outer one.
        let (mut r, mut oa, mut ob) = (r, 0, 0);
        for d in outer.iter().rev() {
            oa += r % d.len * d.sa;
            ob += r % d.len * d.sb;
            r /= d.len;
        }
        // The innermost run reads each operand whole (stride 1) or as one value (stride 0):
        // a broadcast stride along an operand's last axis of more than 1 is 0.
        match (ia, ib) {
            (1, 1) => {
                for ((y, &x), &z) in y.iter_mut().zip(&a[oa..oa + len]).zip(&b[ob..ob + len]) {
                    y.write(f(x, z));
                }
            }
            (1, 0) => {
                let z = b[ob];
                for (y, &x) in y.iter_mut().zip(&a[oa..oa + len]) {
                    y.write(f(x, z));
                }
            }
            (0, 1) => {
                let x = a[oa];
                for (y, &z) in y.iter_mut().zip(&b[ob..ob + len]) {
                    y.write(f(x, z));
                }
            }
            _ => {
                for (j, y) in y.iter_mut().enumerate() {
                    y.write(f(a[oa + j * ia], b[ob + j * ib]));
                }
            }
        }
    };
    // SAFETY: the rows cover the output (n = rows · len), and each is written whole.
    unsafe {
        crate::kernels::out::written(n, |v| {
            for_each_chunk(n, len, v, |r0, rows, _| {
                for (k, y) in rows.chunks_exact_mut(len).enumerate() {
                    row(r0 + k, y);
                }
            })
        })
    }
}

/// One axis of a broadcast, with each operand's stride along it.
#[derive(Clone, Copy)]
struct Axis {
    len: usize,
    sa: usize,
    sb: usize,
}

/// The axes of `out` (with strides `sa`, `sb`) without those of length 1, neighbours
/// merged wherever both operands step across the pair as across one axis (both whole, or
/// both broadcast): `[N, C, H, W]` against `[C, 1, 1]` is three axes `[N, C, H·W]`, whose
/// innermost runs are long enough to vectorise.
fn collapse(out: &Shape, sa: &[usize], sb: &[usize]) -> SmallVec<[Axis; 6]> {
    // Inline: a training step makes a few of these, and counts its allocations.
    let mut dims = SmallVec::<[Axis; 6]>::new();
    for (i, &len) in out.iter().enumerate().filter(|&(_, &len)| len != 1) {
        let d = Axis {
            len,
            sa: sa[i],
            sb: sb[i],
        };
        match dims.last_mut() {
            Some(p) if p.sa == d.sa * len && p.sb == d.sb * len => {
                *p = Axis {
                    len: p.len * len,
                    ..d
                };
            }
            _ => dims.push(d),
        }
    }
    dims
}

/// Sums `g` (of shape `g_shape`) down to `target`, a shape that broadcasts to `g_shape`:
/// the reduction a broadcasting op's VJP applies to each operand's gradient.
pub fn sum_to_shape<T: Float>(g: &[T], g_shape: &Shape, target: &Shape) -> Vec<T> {
    if g_shape == target {
        return g.to_vec();
    }
    let st = broadcast_strides(target, g_shape);
    let mut out = crate::runtime::buffers::zeroed(target.numel());
    let zero = vec![0; g_shape.rank()];
    for_each_broadcast(g_shape, &st, &zero, |o, it, _| out[it] += g[o]);
    out
}

/// Broadcasts `x` of shape `shape` to `out` (a copy: the gradient of a reduction, or an
/// explicit `broadcast_to`).
pub fn broadcast_to<T: Float>(x: &[T], shape: &Shape, out: &Shape) -> Vec<T> {
    if shape == out {
        return x.to_vec();
    }
    if x.len() == 1 {
        return vec![x[0]; out.numel()];
    }
    let st = broadcast_strides(shape, out);
    let zero = vec![0; out.rank()];
    let mut v = crate::runtime::buffers::zeroed(out.numel());
    for_each_broadcast(out, &st, &zero, |o, i, _| v[o] = x[i]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_maps_and_zips_split_across_the_pool_keep_order() {
        for n in [
            PARALLEL_ELEMENTS - 1,
            PARALLEL_ELEMENTS,
            3 * PARALLEL_ELEMENTS + 17,
        ] {
            let a: Vec<f64> = (0..n).map(|i| i as f64).collect();
            let b: Vec<f64> = (0..n).map(|i| (i % 7) as f64).collect();
            let m = map(&a, |v| 2.0 * v + 1.0);
            assert!(
                m.iter()
                    .enumerate()
                    .all(|(i, &v)| v == 2.0 * i as f64 + 1.0)
            );
            let z = zip(&a, &b, |x, y| x - y);
            assert!(
                z.iter()
                    .enumerate()
                    .all(|(i, &v)| v == i as f64 - (i % 7) as f64)
            );
        }
    }

    #[test]
    fn broadcast_zips_match_the_element_by_element_definition() {
        let cases: [(&[usize], &[usize]); 9] = [
            (&[2, 3, 4, 5], &[3, 1, 1]),
            (&[64, 16, 28, 28], &[16, 1, 1]),
            (&[3, 1], &[1, 4]),
            (&[2, 1, 3], &[4, 1]),
            (&[5, 1, 7], &[5, 6, 1]),
            (&[1, 1], &[3, 1, 2]),
            (&[4, 0, 3], &[1, 3]),
            (&[], &[]),
            (&[6, 1, 1, 9], &[1, 9]),
        ];
        for (sa, sb) in cases {
            let (a_shape, b_shape) = (Shape::from(sa), Shape::from(sb));
            let out =
                crate::shape::broadcast_shapes(&a_shape, &b_shape).expect("the shapes broadcast");
            let a: Vec<f64> = (0..a_shape.numel()).map(|i| i as f64 * 0.5 - 3.0).collect();
            let b: Vec<f64> = (0..b_shape.numel()).map(|i| 1.0 + i as f64).collect();
            let f = |x: f64, y: f64| x * 3.0 - y / 7.0;
            let got = broadcast_zip(&a, &a_shape, &b, &b_shape, &out, f);
            let (st_a, st_b) = (
                broadcast_strides(&a_shape, &out),
                broadcast_strides(&b_shape, &out),
            );
            let mut want = vec![f64::NAN; out.numel()];
            for_each_broadcast(&out, &st_a, &st_b, |o, ia, ib| want[o] = f(a[ia], b[ib]));
            assert_eq!(got, want, "{sa:?} with {sb:?}");
            let swapped = broadcast_zip(&b, &b_shape, &a, &a_shape, &out, |y, x| f(x, y));
            assert_eq!(swapped, want, "{sb:?} with {sa:?}");
        }
    }

    #[test]
    fn dropout_mask_is_split_invariant_and_unbiased() {
        let n = 3 * PARALLEL_ELEMENTS + 17;
        let x = vec![1.0f32; n];
        let (p, seed) = (0.3, 0x1234_5678_9abc_def0);
        let thr = (p * 4_294_967_296.0) as u32;
        let y = dropout(&x, seed, thr, 2.0);
        // Long enough for the pool: every element agrees with its own hash.
        for (i, &v) in y.iter().enumerate() {
            let keep = dropout_keeps(seed, i, thr);
            assert_eq!(v, if keep { 2.0 } else { 0.0 }, "at {i}");
        }
        // Drop rate and independence of neighbours: standard deviations ~0.0008 and
        // ~0.001 at this n.
        let dropped: Vec<bool> = y.iter().map(|&v| v == 0.0).collect();
        let rate = dropped.iter().filter(|&&d| d).count() as f64 / n as f64;
        assert!((rate - p).abs() < 0.005, "drop rate {rate}");
        let pairs = n / 2;
        let both = (0..pairs)
            .filter(|&k| dropped[2 * k] && dropped[2 * k + 1])
            .count();
        let both = both as f64 / pairs as f64;
        assert!(
            (both - p * p).abs() < 0.006,
            "both of a pair dropped {both}"
        );
        // Another seed, an independent mask (seeds one apart, in either half).
        for other in [seed + 1, seed + (1 << 32)] {
            let z = dropout(&x, other, thr, 2.0);
            let both = z
                .iter()
                .zip(&y)
                .filter(|(a, b)| **a == 0.0 && **b == 0.0)
                .count();
            let both = both as f64 / n as f64;
            assert!(
                (both - p * p).abs() < 0.004,
                "dropped under both seeds {both}"
            );
        }
        // p = 0 (threshold 0) keeps everything.
        assert!(dropout(&x[..1000], seed, 0, 1.0).iter().all(|&v| v == 1.0));
    }

    #[test]
    fn broadcast_matches_index_arithmetic() {
        let a: Vec<f64> = (0..6).map(|x| x as f64).collect(); // [2, 1, 3]
        let b: Vec<f64> = (0..4).map(|x| 10.0 * x as f64).collect(); // [4, 1]
        let (sa, sb) = (Shape::from([2, 1, 3]), Shape::from([4, 1]));
        let out = Shape::from([2, 4, 3]);
        let v = broadcast_zip(&a, &sa, &b, &sb, &out, |x, y| x + y);
        for i in 0..2 {
            for j in 0..4 {
                for k in 0..3 {
                    assert_eq!(v[i * 12 + j * 3 + k], a[i * 3 + k] + b[j]);
                }
            }
        }
        let back = sum_to_shape(&v, &out, &sb);
        let want: Vec<f64> = (0..4).map(|j| 6.0 * b[j] + a.iter().sum::<f64>()).collect();
        assert_eq!(back, want);
    }
}
