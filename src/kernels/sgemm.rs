//! f32 matrix products on AVX2 and FMA, with the operands packed into per-thread scratch
//! buffers: once warm, a product allocates nothing (the `gemm` crate allocates its packing
//! buffers on every call). Other element types and machines go to the crate.
//!
//! The usual blocking: panels of B of `KC` × `NC` packed into slivers `NR` columns wide,
//! blocks of A of `MC` × `KC` packed into slivers `MR` rows tall, and a 6×16 register tile
//! (12 accumulators) that runs down `KC`. With few rows of A, B is read in place, since
//! packing it would cost as much as the product.

use std::arch::x86_64::*;
use std::sync::OnceLock;

use crate::kernels::scratch::Scratch;

const MR: usize = 6;
const NR: usize = 16;
const KC: usize = 256;
const MC: usize = 96;
const NC: usize = 2048;

/// Whether this machine runs the kernel (AVX2 and FMA), detected once.
pub(crate) fn available() -> bool {
    static YES: OnceLock<bool> = OnceLock::new();
    *YES.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
}

/// A matrix as a base pointer and strides: element (i, j) at `p + i·rs + j·cs`.
#[derive(Clone, Copy)]
pub(crate) struct Mat {
    pub p: *const f32,
    pub rs: usize,
    pub cs: usize,
}

impl Mat {
    /// The same matrix from row `i`, column `j` on.
    fn at(self, i: usize, j: usize) -> Mat {
        // SAFETY (of the later reads): callers only offset inside the matrix.
        Mat {
            p: self.p.wrapping_add(i * self.rs + j * self.cs),
            ..self
        }
    }
}

/// A pointer that may cross to a pool thread: each thread writes its own block of C.
#[derive(Clone, Copy)]
struct Out(*mut f32);
impl Out {
    /// The pointer (a method, so that closures capture the `Send` wrapper, not the field).
    fn get(self) -> *mut f32 {
        self.0
    }
}

// SAFETY: the blocks given to different threads are disjoint.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}
// SAFETY: A and B are only read.
unsafe impl Send for Mat {}
unsafe impl Sync for Mat {}

/// `C[m, n] (+)= A[m, k] · B[k, n]` on `threads` threads of the current pool, C at `c` with
/// rows `ldc` apart. Without `accumulate` C is written without being read.
///
/// # Safety
/// [`available`] is true; every element the strides reach for i < m, p < k, j < n lies
/// inside A's, B's and C's allocations, C aliases neither, and with `accumulate` C is
/// initialised.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm(
    threads: usize,
    m: usize,
    k: usize,
    n: usize,
    a: Mat,
    b: Mat,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                // SAFETY: row i of C, n elements (the caller's contract).
                unsafe { std::slice::from_raw_parts_mut(c.add(i * ldc), n) }.fill(0.0);
            }
        }
        return;
    }
    let c = Out(c);
    // Split the longer side into one part per thread, in whole tiles.
    let split_n = n >= m;
    let (len, tile) = if split_n { (n, NR) } else { (m, MR) };
    if threads < 2 || len < 2 * tile {
        // SAFETY: the caller's contract.
        return unsafe { single(m, k, n, a, b, c.get(), ldc, accumulate) };
    }
    let size = len.div_ceil(threads).next_multiple_of(tile);
    use rayon::prelude::*;
    (0..len.div_ceil(size)).into_par_iter().for_each(|t| {
        let part = t * size..((t + 1) * size).min(len);
        let (rows, cols) = if split_n { (0..m, part) } else { (part, 0..n) };
        // SAFETY: a block of the caller's product; blocks are disjoint.
        unsafe {
            single(
                rows.len(),
                k,
                cols.len(),
                a.at(rows.start, 0),
                b.at(0, cols.start),
                c.get().add(rows.start * ldc + cols.start),
                ldc,
                accumulate,
            )
        }
    });
}

/// [`sgemm`] on the calling thread.
///
/// # Safety
/// As [`sgemm`], with m, n, k > 0.
#[allow(clippy::too_many_arguments)]
unsafe fn single(
    m: usize,
    k: usize,
    n: usize,
    a: Mat,
    b: Mat,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    // B in place needs its rows contiguous (16 loads of one row per step of k).
    let direct = m <= MC && b.cs == 1;
    let mut bp = Scratch::<f32>::take(KC * NC.min(n).next_multiple_of(NR));
    let mut ap = Scratch::<f32>::take(MC.min(m).next_multiple_of(MR) * KC);
    for jc in (0..n).step_by(NC) {
        let nc = NC.min(n - jc);
        let full = if direct { nc / NR * NR } else { 0 };
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            // SAFETY: inside B (the caller's contract); the buffer holds kc · nc rounded up.
            unsafe { pack_b(b.at(pc, jc + full), kc, nc - full, &mut bp[full * kc..]) };
            let acc = accumulate || pc > 0;
            for ic in (0..m).step_by(MC) {
                let mc = MC.min(m - ic);
                // SAFETY: inside A.
                unsafe { pack_a(a.at(ic, pc), mc, kc, &mut ap) };
                for jr in (0..nc).step_by(NR) {
                    let nr = NR.min(nc - jr);
                    let (bs, stride) = if jr < full {
                        (b.at(pc, jc + jr).p, b.rs)
                    } else {
                        (bp[jr * kc..].as_ptr(), NR)
                    };
                    for ir in (0..mc).step_by(MR) {
                        let mr = MR.min(mc - ir);
                        let panel = ap[ir * kc..].as_ptr();
                        // SAFETY: C's tile (ic + ir, jc + jr) of mr × nr lies inside C.
                        let ct = unsafe { c.add((ic + ir) * ldc + jc + jr) };
                        let tile = Tile {
                            kc,
                            a: panel,
                            b: bs,
                            bs: stride,
                        };
                        // SAFETY: the packed panels hold kc steps; C's mr × nr tile as above.
                        unsafe { tile.run(mr, nr, ct, ldc, acc) };
                    }
                }
            }
        }
    }
}

/// B[kc, nc] into slivers of NR columns: sliver s holds (p, s·NR + j) at
/// `s·kc·NR + p·NR + j`.
///
/// # Safety
/// The kc × nc block lies inside B; `out` holds kc · nc rounded up to NR.
unsafe fn pack_b(b: Mat, kc: usize, nc: usize, out: &mut [f32]) {
    for (s, j0) in (0..nc).step_by(NR).enumerate() {
        let w = NR.min(nc - j0);
        // Columns past w are left as they are: their lanes reach only C's columns past n,
        // which are never stored.
        let dst = &mut out[s * kc * NR..(s + 1) * kc * NR];
        if b.cs == 1 {
            for (p, d) in dst.chunks_exact_mut(NR).enumerate() {
                // SAFETY: row p's w columns from j0 lie inside the block.
                d[..w].copy_from_slice(unsafe { std::slice::from_raw_parts(b.at(p, j0).p, w) });
            }
        } else {
            // Stored transposed (or strided): walk each column down k.
            for j in 0..w {
                let col = b.at(0, j0 + j);
                for p in 0..kc {
                    // SAFETY: (p, j0 + j) lies inside the block.
                    dst[p * NR + j] = unsafe { *col.p.wrapping_add(p * col.rs) };
                }
            }
        }
    }
}

/// A[mc, kc] into slivers of MR rows: sliver s holds (s·MR + i, p) at
/// `s·kc·MR + p·MR + i`.
///
/// # Safety
/// The mc × kc block lies inside A; `out` holds mc rounded up to MR, times kc.
unsafe fn pack_a(a: Mat, mc: usize, kc: usize, out: &mut [f32]) {
    for (s, i0) in (0..mc).step_by(MR).enumerate() {
        let h = MR.min(mc - i0);
        // Rows past h are left as they are: a tile of h rows reads only its first h.
        let dst = &mut out[s * kc * MR..(s + 1) * kc * MR];
        if a.rs == 1 {
            // Stored transposed: the sliver's h values of each step are contiguous.
            for (p, d) in dst.chunks_exact_mut(MR).enumerate() {
                // SAFETY: (i0..i0 + h, p) lies inside the block.
                d[..h].copy_from_slice(unsafe { std::slice::from_raw_parts(a.at(i0, p).p, h) });
            }
        } else {
            for i in 0..h {
                let row = a.at(i0 + i, 0);
                for p in 0..kc {
                    // SAFETY: (i0 + i, p) lies inside the block.
                    dst[p * MR + i] = unsafe { *row.p.wrapping_add(p * row.cs) };
                }
            }
        }
    }
}

/// One register tile's operands: `kc` steps of a packed A sliver (MR values a step) and of B
/// (NR values a step, `bs` apart).
struct Tile {
    kc: usize,
    a: *const f32,
    b: *const f32,
    bs: usize,
}

impl Tile {
    /// The first `mr` rows and `nr` columns of the tile into C at `c` (rows `ldc` apart),
    /// added when `acc`.
    ///
    /// # Safety
    /// The operands hold `kc` steps; C's `mr` × `nr` block is writable (and initialised when
    /// `acc`).
    unsafe fn run(&self, mr: usize, nr: usize, c: *mut f32, ldc: usize, acc: bool) {
        // SAFETY: the caller's contract; `available()` was checked before any product.
        unsafe {
            match mr {
                1 => rows::<1>(self, nr, c, ldc, acc),
                2 => rows::<2>(self, nr, c, ldc, acc),
                3 => rows::<3>(self, nr, c, ldc, acc),
                4 => rows::<4>(self, nr, c, ldc, acc),
                5 => rows::<5>(self, nr, c, ldc, acc),
                _ => rows::<6>(self, nr, c, ldc, acc),
            }
        }
    }
}

/// The register tile for `R` rows: 2R accumulators of 8 lanes; a tile narrower than NR
/// stores its `nr` columns through lane masks.
#[target_feature(enable = "avx2,fma")]
unsafe fn rows<const R: usize>(t: &Tile, nr: usize, c: *mut f32, ldc: usize, acc: bool) {
    // SAFETY: the caller's contract (`Tile::run`).
    unsafe {
        let mut r = [[_mm256_setzero_ps(); 2]; R];
        let (mut a, mut b) = (t.a, t.b);
        for _ in 0..t.kc {
            let b0 = _mm256_loadu_ps(b);
            let b1 = _mm256_loadu_ps(b.add(8));
            for (i, ri) in r.iter_mut().enumerate() {
                let ai = _mm256_broadcast_ss(&*a.add(i));
                ri[0] = _mm256_fmadd_ps(ai, b0, ri[0]);
                ri[1] = _mm256_fmadd_ps(ai, b1, ri[1]);
            }
            a = a.add(MR);
            b = b.add(t.bs);
        }
        if nr == NR {
            for (i, ri) in r.iter().enumerate() {
                let p = c.add(i * ldc);
                if acc {
                    _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), ri[0]));
                    _mm256_storeu_ps(p.add(8), _mm256_add_ps(_mm256_loadu_ps(p.add(8)), ri[1]));
                } else {
                    _mm256_storeu_ps(p, ri[0]);
                    _mm256_storeu_ps(p.add(8), ri[1]);
                }
            }
            return;
        }
        // Lane j of half h is on when 8h + j < nr; masked-off lanes are neither read nor
        // written.
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let on = |h: i32| _mm256_cmpgt_epi32(_mm256_set1_epi32(nr as i32 - 8 * h), lanes);
        let masks = [on(0), on(1)];
        for (i, ri) in r.iter().enumerate() {
            let p = c.add(i * ldc);
            for (h, &mask) in masks.iter().enumerate() {
                let q = p.add(8 * h);
                let v = if acc {
                    _mm256_add_ps(_mm256_maskload_ps(q, mask), ri[h])
                } else {
                    ri[h]
                };
                _mm256_maskstore_ps(q, mask, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every blocking edge (MC, KC and NC crossed, narrow last tiles, short A with B read in
    /// place), every layout, padded leading dimensions, written and accumulated, on one
    /// thread and split three ways, against an f64 triple loop.
    #[test]
    fn products_match_the_definition_across_blocks_layouts_and_threads() {
        if !available() {
            return;
        }
        let shapes = [
            (97, 257, 33),
            (2, 3, 2049),
            (13, 40, 70),
            (200, 20, 7),
            (7, 0, 5),
            (1, 1, 1),
        ];
        for (m, k, n) in shapes {
            for (a_trans, b_trans) in [(false, false), (true, false), (false, true), (true, true)] {
                // Stored shapes with a padded leading dimension (+3).
                let (ar, ac) = if a_trans { (k, m) } else { (m, k) };
                let (br, bc) = if b_trans { (n, k) } else { (k, n) };
                let (lda, ldb, ldc) = (ac + 3, bc + 3, n + 3);
                let a: Vec<f32> = (0..ar * lda)
                    .map(|i| ((i * 7 % 23) as f32 - 11.0) / 8.0)
                    .collect();
                let b: Vec<f32> = (0..br * ldb)
                    .map(|i| ((i * 5 % 19) as f32 - 9.0) / 4.0)
                    .collect();
                let at = |i: usize, p: usize| {
                    f64::from(if a_trans {
                        a[p * lda + i]
                    } else {
                        a[i * lda + p]
                    })
                };
                let bt = |p: usize, j: usize| {
                    f64::from(if b_trans {
                        b[j * ldb + p]
                    } else {
                        b[p * ldb + j]
                    })
                };
                let am = if a_trans {
                    Mat {
                        p: a.as_ptr(),
                        rs: 1,
                        cs: lda,
                    }
                } else {
                    Mat {
                        p: a.as_ptr(),
                        rs: lda,
                        cs: 1,
                    }
                };
                let bm = if b_trans {
                    Mat {
                        p: b.as_ptr(),
                        rs: 1,
                        cs: ldb,
                    }
                } else {
                    Mat {
                        p: b.as_ptr(),
                        rs: ldb,
                        cs: 1,
                    }
                };
                for accumulate in [false, true] {
                    for threads in [1, 3] {
                        // NaN where C is only written: it must not be read.
                        let start = if accumulate { 0.5 } else { f32::NAN };
                        let mut c = vec![start; m * ldc];
                        crate::threads::run(usize::MAX, |_| {
                            // SAFETY: the strides stay inside a, b and c by construction.
                            unsafe {
                                sgemm(threads, m, k, n, am, bm, c.as_mut_ptr(), ldc, accumulate)
                            }
                        });
                        for i in 0..m {
                            for j in 0..n {
                                let (mut want, mut scale) =
                                    (if accumulate { 0.5 } else { 0.0 }, 1.0);
                                for p in 0..k {
                                    want += at(i, p) * bt(p, j);
                                    scale += (at(i, p) * bt(p, j)).abs();
                                }
                                let got = f64::from(c[i * ldc + j]);
                                assert!(
                                    (got - want).abs() <= 1e-6 * scale,
                                    "{m}x{k}x{n} trans ({a_trans}, {b_trans}) acc {accumulate} threads {threads} [{i}, {j}]: {got} vs {want}"
                                );
                            }
                            // The padding past n is left alone.
                            assert!(
                                c[i * ldc + n..(i + 1) * ldc]
                                    .iter()
                                    .all(|v| v.to_bits() == start.to_bits())
                            );
                        }
                    }
                }
            }
        }
    }
}
