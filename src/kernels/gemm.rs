//! Matrix multiplication `C (+)= op(A) · op(B)` on row-major slices.

use crate::float::Float;

/// Operand layouts: whether A is stored as `[k, m]` (transposed) and B as `[n, k]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// A is stored `[k, m]` and read transposed.
    pub a_trans: bool,
    /// B is stored `[n, k]` and read transposed.
    pub b_trans: bool,
}

/// `C[m, n] = op(A)[m, k] · op(B)[k, n]`, added to `c` when `accumulate`, written otherwise.
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
    let mut out = vec![T::ZERO; rows * cols];
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

    #[test]
    fn all_layouts_match_reference() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.71).cos()).collect();
        for a_trans in [false, true] {
            for b_trans in [false, true] {
                let l = Layout { a_trans, b_trans };
                let mut c = vec![1.0; m * n];
                gemm(m, k, n, &a, &b, &mut c, l, true);
                let r = reference(m, k, n, &a, &b, l);
                for (x, y) in c.iter().zip(&r) {
                    assert!((x - 1.0 - y).abs() < 1e-12);
                }
            }
        }
    }
}
