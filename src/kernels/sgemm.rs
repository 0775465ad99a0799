//! f32 matrix products on AVX2 and FMA, with the operands packed into per-thread scratch
//! buffers: once warm, a product allocates nothing (the `gemm` crate allocates its packing
//! buffers on every call). Other element types and machines go to the crate.
//!
//! The usual blocking: panels of B of `KC` × `NC` packed into slivers `NR` columns wide,
//! blocks of A of `MC` × `KC` packed into slivers `MR` rows tall, and a 6×16 register tile
//! (12 accumulators) that runs down `KC`. With few rows of A, B is read in place, since
//! packing it would cost as much as the product.

use std::arch::x86_64::*;

use crate::kernels::scratch::Scratch;

const MR: usize = 6;
const NR: usize = 16;
const KC: usize = 256;
const MC: usize = 96;
const NC: usize = 2048;
/// Products whose A rows and B columns both run along k, with one side short, go through
/// dot products when k is at least this long (shorter, the sums across lanes would
/// dominate).
const DOT_K: usize = 128;

// Whether this machine runs the kernel (AVX2 and FMA): the check of `simd::avx2!`.
pub(crate) use crate::kernels::simd::available;

/// A matrix as a base pointer and strides: element (i, j) at `p + i·rs + j·cs`.
#[derive(Clone, Copy)]
pub(crate) struct Mat {
    pub p: *const f32,
    pub rs: usize,
    pub cs: usize,
}

impl Mat {
    /// The transpose (the same elements, strides swapped).
    fn t(self) -> Mat {
        Mat {
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }

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
    if a.cs == 1 && b.rs == 1 && k >= DOT_K && m.min(n) <= MC {
        // SAFETY: the caller's contract.
        return unsafe { dots(m, k, n, a, b, c, ldc, accumulate) };
    }
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
            unsafe {
                pack(
                    b.at(pc, jc + full).t(),
                    nc - full,
                    kc,
                    NR,
                    &mut bp[full * kc..],
                )
            };
            let acc = accumulate || pc > 0;
            for ic in (0..m).step_by(MC) {
                let mc = MC.min(m - ic);
                // SAFETY: inside A.
                unsafe { pack(a.at(ic, pc), mc, kc, MR, &mut ap) };
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

/// `C (+)= A · B` as dot products, for A's rows and B's columns both contiguous along k
/// (e.g. a weight gradient `dY · colᵀ`): tiles of 3 × 3 dot products read both operands in
/// place, with no packing. The shorter side's operand is the one read again for each tile
/// of the other, so it stays in cache.
///
/// # Safety
/// As [`single`], with `a.cs == 1` and `b.rs == 1`.
#[allow(clippy::too_many_arguments)]
unsafe fn dots(
    m: usize,
    k: usize,
    n: usize,
    a: Mat,
    b: Mat,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    let tile = |i: usize, j: usize| {
        let (r, q) = (DR.min(m - i), DR.min(n - j));
        // SAFETY: rows i..i + r of A, columns j..j + q of B and C's r × q block at (i, j)
        // lie inside the caller's matrices.
        unsafe {
            let (a, b, c) = (a.at(i, 0), b.at(0, j), c.add(i * ldc + j));
            match (r, q) {
                (3, 3) => dot_tile::<3, 3>(k, a, b, c, ldc, accumulate),
                (3, 2) => dot_tile::<3, 2>(k, a, b, c, ldc, accumulate),
                (3, _) => dot_tile::<3, 1>(k, a, b, c, ldc, accumulate),
                (2, 3) => dot_tile::<2, 3>(k, a, b, c, ldc, accumulate),
                (2, 2) => dot_tile::<2, 2>(k, a, b, c, ldc, accumulate),
                (2, _) => dot_tile::<2, 1>(k, a, b, c, ldc, accumulate),
                (_, 3) => dot_tile::<1, 3>(k, a, b, c, ldc, accumulate),
                (_, 2) => dot_tile::<1, 2>(k, a, b, c, ldc, accumulate),
                _ => dot_tile::<1, 1>(k, a, b, c, ldc, accumulate),
            }
        }
    };
    if m <= n {
        for j in (0..n).step_by(DR) {
            for i in (0..m).step_by(DR) {
                tile(i, j);
            }
        }
    } else {
        for i in (0..m).step_by(DR) {
            for j in (0..n).step_by(DR) {
                tile(i, j);
            }
        }
    }
}

/// Rows and columns of a dot-product tile: 9 accumulators and 6 loads fill 15 of the 16
/// vector registers.
const DR: usize = 3;

/// `R × Q` dot products of length k: rows of A at `a` (`a.rs` apart), columns of B at `b`
/// (`b.cs` apart), into C at `c`.
///
/// # Safety
/// The rows and columns hold k contiguous values; C's R × Q block is writable (initialised
/// when `acc`).
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_tile<const R: usize, const Q: usize>(
    k: usize,
    a: Mat,
    b: Mat,
    c: *mut f32,
    ldc: usize,
    acc: bool,
) {
    // SAFETY: the caller's contract; the tail's masked loads read only lanes below k.
    unsafe {
        let mut s = [[_mm256_setzero_ps(); Q]; R];
        let step = |s: &mut [[__m256; Q]; R], load: &dyn Fn(*const f32) -> __m256, p: usize| {
            let mut bv = [_mm256_setzero_ps(); Q];
            for (j, v) in bv.iter_mut().enumerate() {
                *v = load(b.p.add(j * b.cs + p));
            }
            for (i, si) in s.iter_mut().enumerate() {
                let av = load(a.p.add(i * a.rs + p));
                for (sij, &v) in si.iter_mut().zip(&bv) {
                    *sij = _mm256_fmadd_ps(av, v, *sij);
                }
            }
        };
        let full = k / 8 * 8;
        for p in (0..full).step_by(8) {
            step(&mut s, &|q| _mm256_loadu_ps(q), p);
        }
        if full < k {
            let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
            let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((k - full) as i32), lanes);
            step(&mut s, &|q| _mm256_maskload_ps(q, mask), full);
        }
        for (i, si) in s.iter().enumerate() {
            for (j, &v) in si.iter().enumerate() {
                // The sum across lanes: halves, then pairs, then the last two.
                let h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
                let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
                let h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
                let out = c.add(i * ldc + j);
                let sum = _mm_cvtss_f32(h);
                *out = if acc { *out + sum } else { sum };
            }
        }
    }
}

/// Rows `0..rows` of `x` (k running along them, `kc` long) into slivers of `w` rows: sliver
/// s holds (s·w + i, p) at `s·kc·w + p·w + i`. A block of A packs into slivers of MR rows;
/// a block of B packs as its transpose, into slivers of NR columns.
///
/// # Safety
/// The rows × kc block lies inside x; `out` holds rows rounded up to w, times kc.
unsafe fn pack(x: Mat, rows: usize, kc: usize, w: usize, out: &mut [f32]) {
    for (s, i0) in (0..rows).step_by(w).enumerate() {
        let h = w.min(rows - i0);
        // Rows past h are left as they are: for A a tile of h rows reads only its first h,
        // for B their lanes reach only C's columns past n, which are never stored.
        let dst = &mut out[s * kc * w..(s + 1) * kc * w];
        if x.rs == 1 {
            // The sliver's h values of each step are contiguous.
            for (p, d) in dst.chunks_exact_mut(w).enumerate() {
                // SAFETY: (i0..i0 + h, p) lies inside the block.
                d[..h].copy_from_slice(unsafe { std::slice::from_raw_parts(x.at(i0, p).p, h) });
            }
        } else {
            // Rows contiguous along k (an operand stored the other way round): 8 steps at a
            // time through register transposes; the scalar loop's strided stores made this
            // pack cost as much as a fifth of a short product.
            let done = if x.cs == 1 {
                // SAFETY: the block's h rows hold kc values each; the sliver holds kc · w.
                unsafe { transpose_rows(x.at(i0, 0), h, kc, w, dst.as_mut_ptr()) }
            } else {
                0
            };
            for i in 0..h {
                let row = x.at(i0 + i, 0);
                for p in done..kc {
                    // SAFETY: (i0 + i, p) lies inside the block.
                    dst[p * w + i] = unsafe { *row.p.wrapping_add(p * row.cs) };
                }
            }
        }
    }
}

/// Steps `0..kc / 8 * 8` of `h` rows of x (each contiguous along k) into a sliver `w` wide
/// at `dst` (step p's values at `p·w ..`), eight rows by eight steps per register transpose;
/// returns the number of steps written.
///
/// # Safety
/// Rows `0..h` of x hold kc contiguous values; `dst` holds kc · w values; h ≤ w.
#[target_feature(enable = "avx2,fma")]
unsafe fn transpose_rows(x: Mat, h: usize, kc: usize, w: usize, dst: *mut f32) -> usize {
    let steps = kc / 8 * 8;
    // SAFETY: the caller's contract; rows past h read as zero and are not stored.
    unsafe {
        for g in (0..h).step_by(8) {
            let n = 8.min(h - g);
            let row = |i: usize| x.p.add((g + i) * x.rs);
            for p in (0..steps).step_by(8) {
                for half in 0..2 {
                    let q = p + 4 * half;
                    let ld = |i: usize| {
                        if i < n {
                            _mm_loadu_ps(row(i).add(q))
                        } else {
                            _mm_setzero_ps()
                        }
                    };
                    // Rows i and i + 4 side by side, then a 4×4 transpose in each lane:
                    // vector j holds step q + j of the eight rows.
                    let t: [__m256; 4] = std::array::from_fn(|i| {
                        _mm256_insertf128_ps::<1>(_mm256_castps128_ps256(ld(i)), ld(i + 4))
                    });
                    let (u0, u1) = (
                        _mm256_unpacklo_ps(t[0], t[1]),
                        _mm256_unpackhi_ps(t[0], t[1]),
                    );
                    let (u2, u3) = (
                        _mm256_unpacklo_ps(t[2], t[3]),
                        _mm256_unpackhi_ps(t[2], t[3]),
                    );
                    let cols = [
                        _mm256_shuffle_ps::<0x44>(u0, u2),
                        _mm256_shuffle_ps::<0xEE>(u0, u2),
                        _mm256_shuffle_ps::<0x44>(u1, u3),
                        _mm256_shuffle_ps::<0xEE>(u1, u3),
                    ];
                    for (j, &v) in cols.iter().enumerate() {
                        let d = dst.add((q + j) * w + g);
                        match n {
                            8 => _mm256_storeu_ps(d, v),
                            6 => {
                                _mm_storeu_ps(d, _mm256_castps256_ps128(v));
                                let hi = _mm_castps_si128(_mm256_extractf128_ps::<1>(v));
                                _mm_storel_epi64(d.add(4).cast(), hi);
                            }
                            _ => {
                                let mut tmp = [0.0f32; 8];
                                _mm256_storeu_ps(tmp.as_mut_ptr(), v);
                                std::ptr::copy_nonoverlapping(tmp.as_ptr(), d, n);
                            }
                        }
                    }
                }
            }
        }
    }
    steps
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
        // A tile at most 8 wide (the last of a row of tiles) runs on half the registers,
        // instead of computing 16 columns to store 8 or fewer.
        macro_rules! by_rows {
            ($v:literal) => {
                match mr {
                    1 => rows::<1, $v>(self, nr, c, ldc, acc),
                    2 => rows::<2, $v>(self, nr, c, ldc, acc),
                    3 => rows::<3, $v>(self, nr, c, ldc, acc),
                    4 => rows::<4, $v>(self, nr, c, ldc, acc),
                    5 => rows::<5, $v>(self, nr, c, ldc, acc),
                    _ => rows::<6, $v>(self, nr, c, ldc, acc),
                }
            };
        }
        // SAFETY: the caller's contract; `available()` was checked before any product.
        unsafe { if nr <= 8 { by_rows!(1) } else { by_rows!(2) } }
    }
}

/// The register tile for `R` rows and `V` vectors of 8 lanes (2R or R accumulators); a
/// tile narrower than 8V stores its `nr` columns through lane masks.
#[target_feature(enable = "avx2,fma")]
unsafe fn rows<const R: usize, const V: usize>(
    t: &Tile,
    nr: usize,
    c: *mut f32,
    ldc: usize,
    acc: bool,
) {
    // SAFETY: the caller's contract (`Tile::run`).
    unsafe {
        let mut r = [[_mm256_setzero_ps(); V]; R];
        let (mut a, mut b) = (t.a, t.b);
        for _ in 0..t.kc {
            let mut bv = [_mm256_setzero_ps(); V];
            for (h, v) in bv.iter_mut().enumerate() {
                *v = _mm256_loadu_ps(b.add(8 * h));
            }
            for (i, ri) in r.iter_mut().enumerate() {
                let ai = _mm256_broadcast_ss(&*a.add(i));
                for (acc, &v) in ri.iter_mut().zip(&bv) {
                    *acc = _mm256_fmadd_ps(ai, v, *acc);
                }
            }
            a = a.add(MR);
            b = b.add(t.bs);
        }
        if nr == 8 * V {
            for (i, ri) in r.iter().enumerate() {
                for (h, &v) in ri.iter().enumerate() {
                    let p = c.add(i * ldc + 8 * h);
                    let v = if acc {
                        _mm256_add_ps(_mm256_loadu_ps(p), v)
                    } else {
                        v
                    };
                    _mm256_storeu_ps(p, v);
                }
            }
            return;
        }
        // Lane j of vector h is on when 8h + j < nr; masked-off lanes are neither read nor
        // written.
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let mut masks = [_mm256_setzero_si256(); V];
        for (h, m) in masks.iter_mut().enumerate() {
            *m = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr as i32 - 8 * h as i32), lanes);
        }
        for (i, ri) in r.iter().enumerate() {
            for (h, (&v, &mask)) in ri.iter().zip(&masks).enumerate() {
                let q = c.add(i * ldc + 8 * h);
                let v = if acc {
                    _mm256_add_ps(_mm256_maskload_ps(q, mask), v)
                } else {
                    v
                };
                _mm256_maskstore_ps(q, mask, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every blocking edge (MC, KC and NC crossed, narrow last tiles of 8 or fewer columns
    /// and of 9 to 15, short A with B read in place), dot products (A by rows and B by
    /// columns, k long, with a tail, either side shorter), every layout, padded leading dimensions, written and accumulated, on one
    /// thread and split three ways, against an f64 triple loop.
    #[test]
    fn products_match_the_definition_across_blocks_layouts_and_threads() {
        if !available() {
            return;
        }
        let shapes = [
            (97, 257, 33),
            (5, 130, 40),
            (7, 20, 24),
            (11, 19, 45),
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
