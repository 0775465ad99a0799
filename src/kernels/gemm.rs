//! Matrix multiplication `C (+)= op(A) · op(B)` on row-major slices.

use std::any::TypeId;
use std::mem::MaybeUninit;

use crate::float::Float;
use crate::kernels::out;

/// Operand layouts: whether A is stored as `[k, m]` (transposed) and B as `[n, k]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// A is stored `[k, m]` and read transposed.
    pub a_trans: bool,
    /// B is stored `[n, k]` and read transposed.
    pub b_trans: bool,
}

/// `C[m, n] = op(A)[m, k] · op(B)[k, n]`, added to `c` when `accumulate`, written otherwise.
///
/// f32 goes through the crate's own packed kernel, on the instruction-set tier in use
/// ([`crate::runtime::isa()`]: AVX-512, AVX2+FMA or portable), whose packing buffers are reused
/// per thread (no allocation once warm); f64 goes through the `gemm` crate (packed,
/// cache-blocked SIMD micro-kernels chosen at run time: AVX-512, AVX2+FMA or portable), which
/// allocates its packing buffers on every call; any other element type takes
/// [`gemm_naive`].
/// A product big enough to pay for it runs on the [`threads`](crate::runtime::threads) pool.
#[allow(clippy::too_many_arguments)] // the BLAS signature, kept flat so call sites read like one
pub fn gemm<T: Float>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    b: &[T],
    c: &mut [T],
    layout: Layout,
    accumulate: bool,
) {
    let flops = 2usize.saturating_mul(m).saturating_mul(k).saturating_mul(n);
    crate::runtime::threads::run(flops, |threads| {
        gemm_on(threads, m, k, n, a, b, c, layout, accumulate)
    });
}

/// The product on `threads` threads of the current rayon pool (call it from inside
/// [`threads::run`](crate::runtime::threads::run) when `threads > 1`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_on<T: Float>(
    threads: usize,
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    b: &[T],
    c: &mut [T],
    layout: Layout,
    accumulate: bool,
) {
    let lda = if layout.a_trans { m } else { k };
    gemm_strided(threads, m, k, n, (a, lda), b, (c, n), layout, accumulate)
}

/// [`gemm_on`] on blocks of wider row-major matrices: A's stored rows are `a.1` elements
/// apart (at least its stored row length) and C's rows `c.1` apart (at least `n`), e.g. a
/// band of columns of a gradient or of an output.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_strided<T: Float>(
    threads: usize,
    m: usize,
    k: usize,
    n: usize,
    (a, lda): (&[T], usize),
    b: &[T],
    (c, ldc): (&mut [T], usize),
    layout: Layout,
    accumulate: bool,
) {
    let (a_rows, a_row_len) = if layout.a_trans { (k, m) } else { (m, k) };
    assert!(
        ldc >= n
            && lda >= a_row_len
            && (a_rows == 0 || a.len() >= (a_rows - 1) * lda + a_row_len)
            && b.len() >= k * n
            && (m == 0 || c.len() >= (m - 1) * ldc + n),
        "gemm: short buffers"
    );
    if m == 0 || n == 0 || !native::<T>() {
        let packed_a: Vec<T>;
        let a = if lda == a_row_len {
            a
        } else {
            packed_a = a
                .chunks(lda)
                .take(a_rows)
                .flat_map(|r| r[..a_row_len].iter().copied())
                .collect();
            &packed_a
        };
        if ldc == n {
            return gemm_naive(m, k, n, a, b, c, layout, accumulate);
        }
        let mut block = crate::runtime::buffers::zeroed(m * n);
        gemm_naive(m, k, n, a, b, &mut block, layout, false);
        for (row, src) in c.chunks_mut(ldc).zip(block.chunks_exact(n.max(1))) {
            for (d, &s) in row.iter_mut().zip(src) {
                *d = if accumulate { *d + s } else { s };
            }
        }
        return;
    }
    // SAFETY: the assert above keeps every index the call reaches inside `a`, `b` and `c`,
    // and `c` is initialised.
    unsafe {
        library(
            threads,
            m,
            k,
            n,
            (a, lda),
            b,
            (c.as_mut_ptr(), ldc),
            layout,
            accumulate,
        )
    }
}

/// `batch` products `op(A_i) · op(B_i)` into one new vector of `batch` row-major `[m, n]`
/// blocks, written once: no zeroing pass before the products. `A_i` starts at `a[i * a.1]`
/// and `B_i` at `b[i * b.1]` (a step of 0 repeats an operand for every product).
pub fn gemm_new<T: Float>(
    batch: usize,
    (m, k, n): (usize, usize, usize),
    (a, a_step): (&[T], usize),
    (b, b_step): (&[T], usize),
    layout: Layout,
) -> Vec<T> {
    let last = batch.saturating_sub(1);
    assert!(
        batch == 0 || (a.len() >= last * a_step + m * k && b.len() >= last * b_step + k * n),
        "gemm_new: short buffers"
    );
    let native = native::<T>();
    let flops = 2usize
        .saturating_mul(batch)
        .saturating_mul(m)
        .saturating_mul(k)
        .saturating_mul(n);
    let write = |c: &mut [MaybeUninit<T>]| {
        crate::runtime::threads::run(flops, |threads| {
            for (i, ci) in c.chunks_exact_mut((m * n).max(1)).enumerate() {
                let (ai, bi) = (&a[i * a_step..], &b[i * b_step..]);
                if native && k > 0 {
                    let lda = if layout.a_trans { m } else { k };
                    // SAFETY: the assert above keeps the operands in bounds and `ci` holds
                    // m·n elements; without `accumulate` the library writes every one of
                    // them (k > 0) and reads none.
                    unsafe {
                        library(
                            threads,
                            m,
                            k,
                            n,
                            (ai, lda),
                            bi,
                            (ci.as_mut_ptr().cast(), n),
                            layout,
                            false,
                        )
                    }
                } else {
                    // Other element types, and the empty sum (k = 0): zeros, then the loop.
                    let ci = out::fill_rows(ci, ci.len(), |_| T::ZERO);
                    gemm_naive(m, k, n, ai, bi, ci, layout, true);
                }
            }
        })
    };
    // SAFETY: `write` writes all `batch` blocks of m·n elements (by the library or by
    // `fill_rows`); with m·n = 0 there is nothing to write.
    unsafe { out::written(batch * m * n, write) }
}

/// Whether the `gemm` crate handles T (f32 and f64); other types take [`gemm_naive`].
fn native<T: Float>() -> bool {
    let id = TypeId::of::<T>();
    id == TypeId::of::<f32>() || id == TypeId::of::<f64>()
}

/// The product on `threads` threads, `C` at `c.0` with rows `c.1` apart: the in-crate
/// kernel for f32, the `gemm` crate for f64.
///
/// # Safety
/// T is f32 or f64; every index the strides reach (row < m, col < n, p < k) lies inside `a`,
/// `b` and the allocation behind `c`, which aliases neither; with `accumulate`, C is
/// initialised. Without it the library writes C without reading it (no stale NaN leaks).
#[allow(clippy::too_many_arguments)]
unsafe fn library<T: Float>(
    threads: usize,
    m: usize,
    k: usize,
    n: usize,
    (a, lda): (&[T], usize),
    b: &[T],
    (c, ldc): (*mut T, usize),
    layout: Layout,
    accumulate: bool,
) {
    // Row and column strides of op(A) and op(B) as stored.
    let (a_rs, a_cs) = if layout.a_trans { (1, lda) } else { (lda, 1) };
    let (b_rs, b_cs) = if layout.b_trans { (1, k) } else { (n, 1) };
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        use super::sgemm::{Mat, Tier, sgemm_on};
        let (a, b) = (
            Mat {
                p: a.as_ptr().cast(),
                rs: a_rs,
                cs: a_cs,
            },
            Mat {
                p: b.as_ptr().cast(),
                rs: b_rs,
                cs: b_cs,
            },
        );
        // SAFETY: T is f32, so the casts are identities; the bounds are the caller's
        // contract, and the kernel runs on this machine.
        return unsafe {
            sgemm_on(
                Tier::current(),
                threads,
                m,
                k,
                n,
                a,
                b,
                c.cast(),
                ldc,
                accumulate,
            )
        };
    }
    // SAFETY: the caller's contract; the crate reads the scalars as T, which it handles
    // natively.
    unsafe {
        ::gemm::gemm(
            m,
            n,
            k,
            c,
            1,
            ldc as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            if threads > 1 {
                ::gemm::Parallelism::Rayon(threads)
            } else {
                ::gemm::Parallelism::None
            },
        );
    }
}

/// The plain loop behind [`gemm()`]: the reference its tests compare with, and the path for
/// element types the tuned library does not cover.
#[allow(clippy::too_many_arguments)] // the same flat signature as `gemm`
pub fn gemm_naive<T: Float>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    b: &[T],
    c: &mut [T],
    layout: Layout,
    accumulate: bool,
) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "gemm: short buffers"
    );
    if !accumulate {
        c[..m * n].fill(T::ZERO);
    }
    if layout.b_trans {
        // Rows of A and rows of B are both contiguous: dot products.
        let at;
        let a = if layout.a_trans {
            at = transpose(a, k, m);
            &at[..]
        } else {
            a
        };
        for i in 0..m {
            let ar = &a[i * k..i * k + k];
            for j in 0..n {
                let br = &b[j * k..j * k + k];
                c[i * n + j] += dot(ar, br);
            }
        }
    } else {
        // Row i of C accumulates A[i, p] times row p of B: unit-stride inner loop.
        for i in 0..m {
            let cr = &mut c[i * n..i * n + n];
            for p in 0..k {
                let aip = if layout.a_trans {
                    a[p * m + i]
                } else {
                    a[i * k + p]
                };
                if aip == T::ZERO {
                    continue;
                }
                let br = &b[p * n..p * n + n];
                for (cv, &bv) in cr.iter_mut().zip(br) {
                    *cv += aip * bv;
                }
            }
        }
    }
}

#[inline]
fn dot<T: Float>(a: &[T], b: &[T]) -> T {
    // Four partial sums let the compiler keep several FMAs in flight.
    let mut s = [T::ZERO; 4];
    let chunks = a.len() / 4;
    for c in 0..chunks {
        for l in 0..4 {
            s[l] += a[c * 4 + l] * b[c * 4 + l];
        }
    }
    let mut t = (s[0] + s[1]) + (s[2] + s[3]);
    for i in chunks * 4..a.len() {
        t += a[i] * b[i];
    }
    t
}

/// The transpose of a row-major `[rows, cols]` matrix.
pub fn transpose<T: Float>(x: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut out = crate::runtime::buffers::zeroed(rows * cols);
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = x[r * cols + c];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(m: usize, k: usize, n: usize, a: &[f64], b: &[f64], l: Layout) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for p in 0..k {
                    let av = if l.a_trans {
                        a[p * m + i]
                    } else {
                        a[i * k + p]
                    };
                    let bv = if l.b_trans {
                        b[j * k + p]
                    } else {
                        b[p * n + j]
                    };
                    c[i * n + j] += av * bv;
                }
            }
        }
        c
    }

    /// `gemm_new` against the triple loop per block: batches with either operand repeated
    /// (step 0), every layout, empty sums and empty outputs, in T.
    fn check_new<T: Float>(tol: f64) {
        for (batch, m, k, n) in [
            (1, 7, 25, 33),
            (3, 2, 0, 5),
            (3, 16, 7, 1),
            (2, 0, 4, 3),
            (0, 3, 3, 3),
        ] {
            for (sa, sb) in [(true, true), (false, true), (true, false)] {
                for (a_trans, b_trans) in
                    [(false, false), (true, false), (false, true), (true, true)]
                {
                    let l = Layout { a_trans, b_trans };
                    let (na, nb) = (if sa { batch } else { 1 }, if sb { batch } else { 1 });
                    let a: Vec<T> = (0..na * m * k)
                        .map(|i| T::from_f64((i as f64 * 0.37).sin()))
                        .collect();
                    let b: Vec<T> = (0..nb * k * n)
                        .map(|i| T::from_f64((i as f64 * 0.71).cos()))
                        .collect();
                    let steps = (if sa { m * k } else { 0 }, if sb { k * n } else { 0 });
                    let c = gemm_new(batch, (m, k, n), (&a, steps.0), (&b, steps.1), l);
                    assert_eq!(c.len(), batch * m * n);
                    let f = |v: &[T]| v.iter().map(|x| x.to_f64()).collect::<Vec<_>>();
                    for i in 0..batch {
                        let ai = f(&a[i * steps.0..i * steps.0 + m * k]);
                        let bi = f(&b[i * steps.1..i * steps.1 + k * n]);
                        let r = reference(m, k, n, &ai, &bi, l);
                        for (j, want) in r.iter().enumerate() {
                            let got = c[i * m * n + j].to_f64();
                            assert!(
                                (got - want).abs() <= tol * (1.0 + k as f64),
                                "{} batch {i} of {batch}, {m}x{k}x{n} {l:?} ({sa}, {sb}) [{j}]: {got} vs {want}",
                                T::NAME
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn new_products_are_written_in_full() {
        check_new::<f32>(1e-5);
        check_new::<f64>(1e-13);
    }

    /// The fast path against the triple loop and against `gemm_naive`, on odd sizes, every
    /// layout, written and accumulated, in T; `tol` is relative to the sum of |terms|.
    fn check_sizes<T: Float>(tol: f64) {
        let sizes = [1, 2, 7, 16, 33, 65];
        let mut cases = 0;
        for &m in &sizes {
            for &k in &[0, 1, 7, 25, 33, 65] {
                for &n in &sizes {
                    let a64: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
                    let b64: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.71).cos()).collect();
                    let a: Vec<T> = a64.iter().map(|&v| T::from_f64(v)).collect();
                    let b: Vec<T> = b64.iter().map(|&v| T::from_f64(v)).collect();
                    // Round-tripped through T so the reference sees the same inputs.
                    let a64: Vec<f64> = a.iter().map(|v| v.to_f64()).collect();
                    let b64: Vec<f64> = b.iter().map(|v| v.to_f64()).collect();
                    let abs_a: Vec<f64> = a64.iter().map(|v| v.abs()).collect();
                    let abs_b: Vec<f64> = b64.iter().map(|v| v.abs()).collect();
                    for a_trans in [false, true] {
                        for b_trans in [false, true] {
                            let l = Layout { a_trans, b_trans };
                            let r = reference(m, k, n, &a64, &b64, l);
                            let scale = reference(m, k, n, &abs_a, &abs_b, l);
                            for accumulate in [false, true] {
                                // NaN start: a written C must not read it.
                                let init = if accumulate { 0.5 } else { f64::NAN };
                                let mut c = vec![T::from_f64(init); m * n];
                                let mut cn = c.clone();
                                gemm(m, k, n, &a, &b, &mut c, l, accumulate);
                                gemm_naive(m, k, n, &a, &b, &mut cn, l, accumulate);
                                let base = if accumulate { 0.5 } else { 0.0 };
                                for idx in 0..m * n {
                                    let want = base + r[idx];
                                    let bound = tol * (1.0 + scale[idx]);
                                    for (name, got) in [("fast", c[idx]), ("naive", cn[idx])] {
                                        let err = (got.to_f64() - want).abs();
                                        assert!(
                                            err <= bound,
                                            "{} {name} m={m} k={k} n={n} {l:?} acc={accumulate} \
                                             [{idx}]: {got} vs {want}",
                                            T::NAME
                                        );
                                    }
                                }
                                cases += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(cases, 6 * 6 * 6 * 4 * 2);
    }

    #[test]
    fn fast_path_matches_reference_f64() {
        check_sizes::<f64>(1e-13);
    }

    #[test]
    fn fast_path_matches_reference_f32() {
        check_sizes::<f32>(1e-5);
    }

    #[test]
    fn conv_sized_product_matches_naive() {
        // One im2col-shaped product (S2: 30 filters, 25 taps, 576 pixels) at full size, to hit
        // the library's blocked path rather than its small-matrix one.
        let (m, k, n) = (30, 25, 576);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.71).cos()).collect();
        for l in [
            Layout::default(),
            Layout {
                a_trans: true,
                b_trans: true,
            },
        ] {
            let (mut c, mut r) = (vec![0.0f32; m * n], vec![0.0f32; m * n]);
            gemm(m, k, n, &a, &b, &mut c, l, false);
            gemm_naive(m, k, n, &a, &b, &mut r, l, false);
            for (x, y) in c.iter().zip(&r) {
                assert!((x - y).abs() < 1e-4, "{x} vs {y}");
            }
        }
    }
}
