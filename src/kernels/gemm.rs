//! Matrix multiplication `C (+)= A · B` on row-major slices, each factor a view ([`MatRef`],
//! [`MatMut`]) that knows its sizes, its row stride and whether it is stored transposed.

use std::any::TypeId;
use std::mem::MaybeUninit;

use crate::float::Float;
use crate::kernels::out;

/// One factor of a product as the product reads it, `rows × cols`: stored row-major with
/// rows `ld` apart, or stored as its transpose (`cols × rows`, those rows `ld` apart).
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    ld: usize,
    trans: bool,
}

impl<'a, T: Float> MatRef<'a, T> {
    /// The `rows × cols` matrix stored row-major in `data`, rows contiguous.
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            ld: cols,
            trans: false,
        }
    }

    /// The `rows × cols` matrix whose transpose (`cols × rows`) is stored row-major in
    /// `data`, rows contiguous: e.g. `Wᵀ` read from a stored `W`.
    pub fn transposed(data: &'a [T], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            ld: rows,
            trans: true,
        }
    }

    /// The same matrix with its stored rows `ld` elements apart (a block of a wider one).
    pub fn ld(self, ld: usize) -> Self {
        MatRef { ld, ..self }
    }

    /// The same view `by` elements further on in its slice (empty past the end).
    fn skip(self, by: usize) -> Self {
        MatRef {
            data: &self.data[by.min(self.data.len())..],
            ..self
        }
    }

    /// The element strides (between rows, between columns) of the matrix as read.
    fn strides(&self) -> (usize, usize) {
        if self.trans {
            (1, self.ld)
        } else {
            (self.ld, 1)
        }
    }

    /// Element (i, j).
    fn at(&self, i: usize, j: usize) -> T {
        let (rs, cs) = self.strides();
        self.data[i * rs + j * cs]
    }

    /// Whether every element the view reaches lies inside its slice, and its rows are at
    /// least as long as they must be.
    fn fits(&self) -> bool {
        let (stored_rows, stored_len) = if self.trans {
            (self.cols, self.rows)
        } else {
            (self.rows, self.cols)
        };
        self.ld >= stored_len
            && (stored_rows == 0
                || stored_len == 0
                || self.data.len() >= (stored_rows - 1) * self.ld + stored_len)
    }
}

/// The output of a product, `rows × cols`, stored row-major with rows `ld` apart.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    data: &'a mut [T],
    rows: usize,
    cols: usize,
    ld: usize,
}

impl<'a, T: Float> MatMut<'a, T> {
    /// The `rows × cols` matrix stored row-major in `data`, rows contiguous.
    pub fn new(data: &'a mut [T], rows: usize, cols: usize) -> Self {
        MatMut {
            data,
            rows,
            cols,
            ld: cols,
        }
    }

    /// The same matrix with its rows `ld` elements apart (a block of a wider one).
    pub fn ld(self, ld: usize) -> Self {
        MatMut { ld, ..self }
    }

    fn fits(&self) -> bool {
        self.ld >= self.cols
            && (self.rows == 0 || self.data.len() >= (self.rows - 1) * self.ld + self.cols)
    }
}

/// `C = A · B`, added to C when `accumulate`, written otherwise (C's old values, NaN
/// included, are then never read).
///
/// f32 goes through the crate's own packed kernel, on the instruction-set tier in use
/// ([`crate::runtime::isa()`]: AVX-512, AVX2+FMA or portable), whose packing buffers are
/// reused per thread (no allocation once warm); f64 goes through the `gemm` crate (packed,
/// cache-blocked SIMD micro-kernels chosen at run time), which allocates its packing buffers
/// on every call. A product big enough to pay for it runs on the
/// [`threads`](crate::runtime::threads) pool.
pub fn gemm<T: Float>(a: MatRef<'_, T>, b: MatRef<'_, T>, c: MatMut<'_, T>, accumulate: bool) {
    let flops = 2usize
        .saturating_mul(a.rows)
        .saturating_mul(a.cols)
        .saturating_mul(b.cols);
    crate::runtime::threads::run(flops, |threads| gemm_on(threads, a, b, c, accumulate));
}

/// [`gemm()`] on `threads` threads of the current rayon pool (call it from inside
/// [`threads::run`](crate::runtime::threads::run) when `threads > 1`).
pub(crate) fn gemm_on<T: Float>(
    threads: usize,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: MatMut<'_, T>,
    accumulate: bool,
) {
    assert!(
        a.cols == b.rows && c.rows == a.rows && c.cols == b.cols,
        "gemm: a {}x{} times a {}x{} into a {}x{}",
        a.rows,
        a.cols,
        b.rows,
        b.cols,
        c.rows,
        c.cols
    );
    assert!(a.fits() && b.fits() && c.fits(), "gemm: short buffers");
    if c.rows == 0 || c.cols == 0 {
        return;
    }
    if !native::<T>() {
        return gemm_naive(a, b, c, accumulate);
    }
    let ldc = c.ld;
    // SAFETY: the asserts above keep every index the call reaches inside the three slices,
    // and `c` is initialised.
    unsafe { library(threads, a, b, (c.data.as_mut_ptr(), ldc), accumulate) }
}

/// `batch` products `A_i · B_i` into one new vector of `batch` row-major `[m, n]` blocks,
/// written once: no zeroing pass before the products. `A_i` is `a` moved on by
/// `i · a_step` elements, `B_i` is `b` moved on by `i · b_step` (a step of 0 repeats an
/// operand for every product).
pub fn gemm_new<T: Float>(
    batch: usize,
    (a, a_step): (MatRef<'_, T>, usize),
    (b, b_step): (MatRef<'_, T>, usize),
) -> Vec<T> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let last = batch.saturating_sub(1);
    assert!(
        a.cols == b.rows
            && (batch == 0 || (a.skip(last * a_step).fits() && b.skip(last * b_step).fits())),
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
                let (ai, bi) = (a.skip(i * a_step), b.skip(i * b_step));
                if native && k > 0 {
                    // SAFETY: the assert above keeps the operands in bounds and `ci` holds
                    // m·n elements; without `accumulate` the library writes every one of
                    // them (k > 0) and reads none.
                    unsafe { library(threads, ai, bi, (ci.as_mut_ptr().cast(), n), false) }
                } else {
                    // The empty sum (k = 0): zeros.
                    let ci = out::fill_rows(ci, ci.len(), |_| T::ZERO);
                    gemm_naive(ai, bi, MatMut::new(ci, m, n), true);
                }
            }
        })
    };
    // SAFETY: `write` writes all `batch` blocks of m·n elements (by the library or by
    // `fill_rows`); with m·n = 0 there is nothing to write.
    unsafe { out::written(batch * m * n, write) }
}

/// Whether a tuned kernel handles T (f32 and f64); other types take [`gemm_naive`].
fn native<T: Float>() -> bool {
    let id = TypeId::of::<T>();
    id == TypeId::of::<f32>() || id == TypeId::of::<f64>()
}

/// The product on `threads` threads, C at `c.0` with rows `c.1` apart: the in-crate kernel
/// for f32, the `gemm` crate for f64.
///
/// # Safety
/// T is f32 or f64; `a.cols == b.rows`; every element the views reach lies inside their
/// slices, and C's `a.rows × b.cols` block inside the allocation behind `c`, which aliases
/// neither; with `accumulate`, C is initialised. Without it C is written, never read (no
/// stale NaN leaks).
unsafe fn library<T: Float>(
    threads: usize,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    (c, ldc): (*mut T, usize),
    accumulate: bool,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let ((a_rs, a_cs), (b_rs, b_cs)) = (a.strides(), b.strides());
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        use super::sgemm::{Mat, Tier, sgemm_on};
        let view = |x: MatRef<'_, T>, rs: usize, cs: usize| Mat {
            p: x.data.as_ptr().cast(),
            rs,
            cs,
        };
        let (a, b) = (view(a, a_rs, a_cs), view(b, b_rs, b_cs));
        // SAFETY: T is f32, so the casts are identities; the bounds are the caller's
        // contract, and `current` names a tier this CPU runs.
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
            a.data.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.data.as_ptr(),
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

/// The plain triple loop: the reference the tests compare the kernels with. Row i of C
/// accumulates A[i, p] times row p of B.
pub fn gemm_naive<T: Float>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: MatMut<'_, T>,
    accumulate: bool,
) {
    assert!(
        a.cols == b.rows
            && c.rows == a.rows
            && c.cols == b.cols
            && a.fits()
            && b.fits()
            && c.fits(),
        "gemm: short buffers"
    );
    for i in 0..c.rows {
        let row = &mut c.data[i * c.ld..i * c.ld + c.cols];
        if !accumulate {
            row.fill(T::ZERO);
        }
        for p in 0..a.cols {
            let aip = a.at(i, p);
            for (j, cv) in row.iter_mut().enumerate() {
                *cv += aip * b.at(p, j);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether A and B are stored transposed.
    #[derive(Clone, Copy, Debug)]
    struct Layout {
        a_trans: bool,
        b_trans: bool,
    }

    /// The `rows × cols` view of `data`, stored transposed when `trans`.
    fn view<T: Float>(data: &[T], rows: usize, cols: usize, trans: bool) -> MatRef<'_, T> {
        if trans {
            MatRef::transposed(data, rows, cols)
        } else {
            MatRef::new(data, rows, cols)
        }
    }

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
                    let c = gemm_new(
                        batch,
                        (view(&a, m, k, a_trans), steps.0),
                        (view(&b, k, n, b_trans), steps.1),
                    );
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
                                let (av, bv) = (view(&a, m, k, a_trans), view(&b, k, n, b_trans));
                                gemm(av, bv, MatMut::new(&mut c, m, n), accumulate);
                                gemm_naive(av, bv, MatMut::new(&mut cn, m, n), accumulate);
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
        for trans in [false, true] {
            let (mut c, mut r) = (vec![0.0f32; m * n], vec![0.0f32; m * n]);
            let (av, bv) = (view(&a, m, k, trans), view(&b, k, n, trans));
            gemm(av, bv, MatMut::new(&mut c, m, n), false);
            gemm_naive(av, bv, MatMut::new(&mut r, m, n), false);
            for (x, y) in c.iter().zip(&r) {
                assert!((x - y).abs() < 1e-4, "{x} vs {y}");
            }
        }
    }
}
