//! f32 matrix products, written once over a vector type ([`F32Vec`]) and instantiated per
//! instruction-set tier, with the operands packed into per-thread scratch buffers: once warm,
//! a product allocates nothing.
//!
//! The usual blocking: panels of B of `KC` × `NC` packed into slivers `NR` columns wide,
//! blocks of A of `MC` × `KC` packed into slivers `MR` rows tall, and an `MR` × `NR` register
//! tile that runs down `KC`. With few rows of A, B is read in place, since packing it would
//! cost as much as the product. Each tier ([`Gemm`]) sets the tile and the blocking:
//!
//! | tier | lanes | tile MR × NR | accumulators | KC / MC / NC |
//! |---|---:|---:|---:|---|
//! | AVX-512 | 16 | 8 × 48 | 24 of 32 registers | 256 / 168 / 1024, A sliver in L1 |
//! | AVX-512 emulated (two AVX2 halves) | 16 | 8 × 48 | (spills: tests only) | as AVX-512 |
//!
//! The AVX-512 tile is 8 rows by three vectors rather than 14 by two (28 accumulators):
//! a convolution's products have as many rows as output channels, a multiple of 8 in most
//! networks, which a 14-row tile covers with a short last tile (64 rows: 4 × 14 + 8). On
//! an Intel Xeon (AVX-512) 8 × 48 ran S2's forward in 534-764 µs against 710-943 and S5's
//! in 38-44 ms against 50-51 (interleaved runs, 2 threads), and matmul level within noise.
//!
//! With the AVX-512 tile, a sliver of packed B is 48 columns wide: at KC 192 it filled
//! 36 KiB of a 48 KiB L1 while the slivers of A passed over it. The AVX-512 tiers instead
//! keep a sliver of A (8 × 256, 8 KiB) in L1 and sweep the packed B panel (256 × 1024,
//! 1 MiB, in L2) under it. On the Xeon, one thread: 2048³ at 143-146 GF/s against
//! 124-128, 1024³ level; two threads, interleaved: 2048³ in 88-92 ms against 100-111. B read
//! in place (few rows of A, as in most convolutions) keeps the other order.
//!
//! | tier | lanes | tile MR × NR | accumulators | KC / MC / NC |
//! |---|---:|---:|---:|---|
//! | AVX2 + FMA | 8 | 6 × 16 | 12 of 16 registers | 256 / 96 / 2048 |
//! | portable | 8 | 6 × 16 | | 256 / 96 / 2048 |

use crate::runtime::scratch::Scratch;
#[cfg(target_arch = "x86_64")]
use crate::runtime::simd::x86;
use crate::runtime::simd::{F32Vec, Isa, portable::Portable};
use crate::runtime::threads::SharedOut;

/// Products whose A rows and B columns both run along k, with one side short, go through
/// dot products when k is at least this long (shorter, the sums across lanes would
/// dominate).
const DOT_K: usize = 128;

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

// SAFETY: A and B are only read.
unsafe impl Send for Mat {}
unsafe impl Sync for Mat {}

/// The tiers the product is instantiated for; `Avx512Emulated` runs the AVX-512 algorithm
/// on AVX2 (for the tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tier {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    #[cfg_attr(not(test), allow(dead_code))]
    Avx512Emulated,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Tier {
    /// The instantiation of the tier the kernels run on now ([`crate::runtime::isa`]).
    pub(crate) fn current() -> Tier {
        match crate::runtime::simd::isa() {
            Isa::Generic => Tier::Portable,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => Tier::Avx2,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Tier::Avx512,
            #[allow(unreachable_patterns)]
            _ => Tier::Portable,
        }
    }

    /// Every instantiation this CPU runs, and the names of those it cannot.
    #[cfg(test)]
    pub(crate) fn runnable() -> (Vec<Tier>, Vec<&'static str>) {
        let mut yes = vec![Tier::Portable];
        let mut no = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            let widest = crate::runtime::isa::widest_supported();
            if widest >= Isa::Avx2 {
                yes.extend([Tier::Avx2, Tier::Avx512Emulated]);
            } else {
                no.extend(["avx2", "avx512-emulated"]);
            }
            if widest >= Isa::Avx512 {
                yes.push(Tier::Avx512);
            } else {
                no.push("avx512");
            }
        }
        (yes, no)
    }
}

/// `C[m, n] (+)= A[m, k] · B[k, n]` on `threads` threads of the current pool, C at `c` with
/// rows `ldc` apart, on the given tier ([`Tier::current`] for the one in use). Without
/// `accumulate` C is written without being read.
///
/// # Safety
/// Every element the strides reach for i < m, p < k, j < n lies inside A's, B's and C's
/// allocations, C aliases neither, with `accumulate` C is initialised, and the CPU runs
/// `tier`.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn sgemm_on(
    tier: Tier,
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
    // SAFETY: the caller's contract, passed on.
    unsafe {
        match tier {
            Tier::Portable => split::<PortableGemm>(threads, m, k, n, a, b, c, ldc, accumulate),
            #[cfg(target_arch = "x86_64")]
            Tier::Avx2 => split::<Avx2Gemm>(threads, m, k, n, a, b, c, ldc, accumulate),
            #[cfg(target_arch = "x86_64")]
            Tier::Avx512Emulated => {
                split::<Avx512EmuGemm>(threads, m, k, n, a, b, c, ldc, accumulate)
            }
            #[cfg(target_arch = "x86_64")]
            Tier::Avx512 => split::<Avx512Gemm>(threads, m, k, n, a, b, c, ldc, accumulate),
        }
    }
}

/// One tier's instantiation of the product: its vector type, register tile and blocking,
/// and the inner functions compiled with its target features.
pub(crate) trait Gemm {
    /// The vector type the tile is written in.
    type V: F32Vec;
    /// Rows of the register tile.
    const MR: usize;
    /// Vectors across one row of the register tile (NR = NV · lanes columns).
    const NV: usize;
    /// Steps of k per packed panel.
    const KC: usize;
    /// Rows of A per packed block.
    const MC: usize;
    /// Columns of B per packed panel.
    const NC: usize;
    /// Rows and columns of a dot-product tile.
    const DR: usize;
    /// Whether packing may use the AVX2 register transposes.
    const TRANSPOSE: bool;
    /// Whether a packed B panel is swept once per sliver of A (the A sliver stays in L1
    /// and B's slivers stream from L2), rather than each B sliver held in L1 while the
    /// slivers of A pass.
    const A_IN_L1: bool;
    /// The register tile for `R` rows and `W` vectors; see [`rows`].
    ///
    /// # Safety
    /// As [`rows`], on a CPU that runs the tier.
    unsafe fn rows<const R: usize, const W: usize>(
        t: &Tile,
        nr: usize,
        c: *mut f32,
        ldc: usize,
        acc: bool,
    );
    /// `R × Q` dot products; see [`dot_tile`].
    ///
    /// # Safety
    /// As [`dot_tile`], on a CPU that runs the tier.
    unsafe fn dot<const R: usize, const Q: usize>(
        k: usize,
        a: Mat,
        b: Mat,
        c: *mut f32,
        ldc: usize,
        acc: bool,
    );
}

/// Defines a tier's [`Gemm`]: a unit struct, its constants, and its inner functions, which
/// are the generic ones compiled with the tier's target features.
macro_rules! gemm_tier {
    ($(#[$cfg:meta])* $name:ident, $v:ty, [$($feat:tt)*],
     mr $mr:literal, nv $nv:literal, kc $kc:literal, mc $mc:literal, nc $nc:literal,
     dr $dr:literal, transpose $tr:literal, a_in_l1 $al1:literal) => {
        $(#[$cfg])*
        pub(crate) struct $name;
        $(#[$cfg])*
        impl Gemm for $name {
            type V = $v;
            const MR: usize = $mr;
            const NV: usize = $nv;
            const KC: usize = $kc;
            const MC: usize = $mc;
            const NC: usize = $nc;
            const DR: usize = $dr;
            const TRANSPOSE: bool = $tr;
            const A_IN_L1: bool = $al1;
            $($feat)*
            unsafe fn rows<const R: usize, const W: usize>(
                t: &Tile,
                nr: usize,
                c: *mut f32,
                ldc: usize,
                acc: bool,
            ) {
                // SAFETY: the caller's contract, under the tier's features.
                unsafe { rows::<$v, R, W>(t, nr, c, ldc, acc) }
            }
            $($feat)*
            unsafe fn dot<const R: usize, const Q: usize>(
                k: usize,
                a: Mat,
                b: Mat,
                c: *mut f32,
                ldc: usize,
                acc: bool,
            ) {
                // SAFETY: the caller's contract, under the tier's features.
                unsafe { dot_tile::<$v, R, Q>(k, a, b, c, ldc, acc) }
            }
        }
    };
}

gemm_tier!(PortableGemm, Portable, [],
    mr 6, nv 2, kc 256, mc 96, nc 2048, dr 3, transpose false, a_in_l1 false);
gemm_tier!(#[cfg(target_arch = "x86_64")] Avx2Gemm, x86::Avx2,
    [#[target_feature(enable = "avx2,fma")]],
    mr 6, nv 2, kc 256, mc 96, nc 2048, dr 3, transpose true, a_in_l1 false);
gemm_tier!(#[cfg(target_arch = "x86_64")] Avx512Gemm, x86::Avx512,
    [#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]],
    mr 8, nv 3, kc 256, mc 168, nc 1024, dr 4, transpose true, a_in_l1 true);
gemm_tier!(#[cfg(target_arch = "x86_64")] Avx512EmuGemm, x86::Emu16,
    [#[target_feature(enable = "avx2,fma")]],
    mr 8, nv 3, kc 256, mc 168, nc 1024, dr 4, transpose true, a_in_l1 true);

/// The product on `threads` threads: the longer side split into one part per thread, in
/// whole vectors of columns or whole tiles of rows.
///
/// # Safety
/// As [`sgemm_on`] for K's tier.
#[allow(clippy::too_many_arguments)]
unsafe fn split<K: Gemm>(
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
    let c = SharedOut(c);
    let split_n = n >= m;
    // Columns are split in whole vectors, not whole tiles: a part's last tile may then be
    // narrower (it runs on fewer vectors), but the parts are even. In whole 48-column
    // tiles, 256 columns on two threads were 144 + 112, and the product took the time of
    // the larger part.
    let (len, tile, unit) = if split_n {
        (n, K::NV * K::V::LANES, K::V::LANES)
    } else {
        (m, K::MR, K::MR)
    };
    if threads < 2 || len < 2 * tile {
        // SAFETY: the caller's contract.
        return unsafe { single::<K>(m, k, n, a, b, c.get(), ldc, accumulate) };
    }
    let size = len.div_ceil(threads).next_multiple_of(unit);
    use rayon::prelude::*;
    (0..len.div_ceil(size)).into_par_iter().for_each(|t| {
        let part = t * size..((t + 1) * size).min(len);
        let (rows, cols) = if split_n { (0..m, part) } else { (part, 0..n) };
        // SAFETY: a block of the caller's product; blocks are disjoint.
        unsafe {
            single::<K>(
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

/// The product on the calling thread.
///
/// # Safety
/// As [`split`], with m, n, k > 0.
#[allow(clippy::too_many_arguments)]
unsafe fn single<K: Gemm>(
    m: usize,
    k: usize,
    n: usize,
    a: Mat,
    b: Mat,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    let (mr, nr, kc_max, mc_max, nc_max) = (K::MR, K::NV * K::V::LANES, K::KC, K::MC, K::NC);
    if a.cs == 1 && b.rs == 1 && k >= DOT_K && m.min(n) <= mc_max {
        // SAFETY: the caller's contract.
        return unsafe { dots::<K>(m, k, n, a, b, c, ldc, accumulate) };
    }
    // B in place needs its rows contiguous (NV loads of one row per step of k).
    let direct = m <= mc_max && b.cs == 1;
    // B read in place leaves fewer than NR columns of each panel to pack, at its start.
    let packed_cols = if direct {
        nr
    } else {
        nc_max.min(n).next_multiple_of(nr)
    };
    let mut bp = Scratch::<f32>::take(kc_max * packed_cols);
    let mut ap = Scratch::<f32>::take(mc_max.min(m).next_multiple_of(mr) * kc_max);
    for jc in (0..n).step_by(nc_max) {
        let nc = nc_max.min(n - jc);
        let full = if direct { nc / nr * nr } else { 0 };
        for pc in (0..k).step_by(kc_max) {
            let kc = kc_max.min(k - pc);
            // SAFETY: inside B (the caller's contract); the buffer holds kc · (nc − full)
            // rounded up to NR.
            unsafe {
                pack(
                    b.at(pc, jc + full).t(),
                    nc - full,
                    kc,
                    nr,
                    K::TRANSPOSE,
                    &mut bp,
                )
            };
            let acc = accumulate || pc > 0;
            for ic in (0..m).step_by(mc_max) {
                let mc = mc_max.min(m - ic);
                // SAFETY: inside A.
                unsafe { pack(a.at(ic, pc), mc, kc, mr, K::TRANSPOSE, &mut ap) };
                let tile = |ir: usize, jr: usize| {
                    let (h, w) = (mr.min(mc - ir), nr.min(nc - jr));
                    let (bs, stride) = if jr < full {
                        (b.at(pc, jc + jr).p, b.rs)
                    } else {
                        (bp[(jr - full) * kc..].as_ptr(), nr)
                    };
                    let tile = Tile {
                        kc,
                        a: ap[ir * kc..].as_ptr(),
                        b: bs,
                        bs: stride,
                        a_step: mr,
                    };
                    // SAFETY: C's tile (ic + ir, jc + jr) of h × w lies inside C; the packed
                    // panels hold kc steps.
                    unsafe {
                        let ct = c.add((ic + ir) * ldc + jc + jr);
                        tile.run::<K>(h, w, ct, ldc, acc)
                    };
                };
                if K::A_IN_L1 && !direct {
                    for ir in (0..mc).step_by(mr) {
                        for jr in (0..nc).step_by(nr) {
                            tile(ir, jr);
                        }
                    }
                } else {
                    for jr in (0..nc).step_by(nr) {
                        for ir in (0..mc).step_by(mr) {
                            tile(ir, jr);
                        }
                    }
                }
            }
        }
    }
}

/// `C (+)= A · B` as dot products, for A's rows and B's columns both contiguous along k
/// (e.g. a weight gradient `dY · colᵀ`): tiles of DR × DR dot products read both operands in
/// place, with no packing. The shorter side's operand is the one read again for each tile
/// of the other, so it stays in cache.
///
/// # Safety
/// As [`single`], with `a.cs == 1` and `b.rs == 1`.
#[allow(clippy::too_many_arguments)]
unsafe fn dots<K: Gemm>(
    m: usize,
    k: usize,
    n: usize,
    a: Mat,
    b: Mat,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    let dr = K::DR;
    let tile = |i: usize, j: usize| {
        let (r, q) = (dr.min(m - i), dr.min(n - j));
        // SAFETY: rows i..i + r of A, columns j..j + q of B and C's r × q block at (i, j)
        // lie inside the caller's matrices.
        unsafe {
            let (a, b, c) = (a.at(i, 0), b.at(0, j), c.add(i * ldc + j));
            macro_rules! by_q {
                ($r:literal) => {
                    match q {
                        1 => K::dot::<$r, 1>(k, a, b, c, ldc, accumulate),
                        2 => K::dot::<$r, 2>(k, a, b, c, ldc, accumulate),
                        3 => K::dot::<$r, 3>(k, a, b, c, ldc, accumulate),
                        _ => K::dot::<$r, 4>(k, a, b, c, ldc, accumulate),
                    }
                };
            }
            match r {
                1 => by_q!(1),
                2 => by_q!(2),
                3 => by_q!(3),
                _ => by_q!(4),
            }
        }
    };
    if m <= n {
        for j in (0..n).step_by(dr) {
            for i in (0..m).step_by(dr) {
                tile(i, j);
            }
        }
    } else {
        for i in (0..m).step_by(dr) {
            for j in (0..n).step_by(dr) {
                tile(i, j);
            }
        }
    }
}

/// `R × Q` dot products of length k: rows of A at `a` (`a.rs` apart), columns of B at `b`
/// (`b.cs` apart), into C at `c`.
///
/// # Safety
/// The rows and columns hold k contiguous values; C's R × Q block is writable (initialised
/// when `acc`); run under V's tier.
#[inline(always)]
unsafe fn dot_tile<V: F32Vec, const R: usize, const Q: usize>(
    k: usize,
    a: Mat,
    b: Mat,
    c: *mut f32,
    ldc: usize,
    acc: bool,
) {
    // SAFETY: the caller's contract; the tail's loads read only lanes below k.
    unsafe {
        let mut s = [[V::zero(); Q]; R];
        let full = k / V::LANES * V::LANES;
        for p in (0..full).step_by(V::LANES) {
            dot_step(&mut s, a, b, p, V::LANES);
        }
        if full < k {
            dot_step(&mut s, a, b, full, k - full);
        }
        for (i, si) in s.iter().enumerate() {
            let mut sums = [0.0; Q];
            if Q == 4 {
                sums.copy_from_slice(&V::sum4(si[0], si[1], si[2], si[3]));
            } else {
                for (sum, &v) in sums.iter_mut().zip(si) {
                    *sum = v.sum();
                }
            }
            for (j, sum) in sums.into_iter().enumerate() {
                let out = c.add(i * ldc + j);
                *out = if acc { *out + sum } else { sum };
            }
        }
    }
}

/// One step of [`dot_tile`]: `lanes` values of each row and column from `p` on, multiplied
/// into the accumulators. A function rather than a closure: a closure is not always inlined,
/// and outside the tier's `#[target_feature]` function the intrinsics become calls.
///
/// # Safety
/// As [`dot_tile`], with `p + lanes <= k`.
#[inline(always)]
unsafe fn dot_step<V: F32Vec, const R: usize, const Q: usize>(
    s: &mut [[V; Q]; R],
    a: Mat,
    b: Mat,
    p: usize,
    lanes: usize,
) {
    // SAFETY: the caller's contract.
    unsafe {
        let mut bv = [V::zero(); Q];
        for (j, v) in bv.iter_mut().enumerate() {
            *v = load_lanes(b.p.add(j * b.cs + p), lanes);
        }
        for (i, si) in s.iter_mut().enumerate() {
            let av: V = load_lanes(a.p.add(i * a.rs + p), lanes);
            for (sij, &v) in si.iter_mut().zip(&bv) {
                *sij = av.mul_add(v, *sij);
            }
        }
    }
}

/// `lanes` values from `q` (a whole vector, or its first lanes and zeros).
///
/// # Safety
/// `lanes <= V::LANES` values at `q` are readable; run under V's tier.
#[inline(always)]
unsafe fn load_lanes<V: F32Vec>(q: *const f32, lanes: usize) -> V {
    // SAFETY: the caller's contract.
    unsafe {
        if lanes == V::LANES {
            V::load(q)
        } else {
            V::load_first(q, lanes)
        }
    }
}

/// Rows `0..rows` of `x` (k running along them, `kc` long) into slivers of `w` rows: sliver
/// s holds (s·w + i, p) at `s·kc·w + p·w + i`. A block of A packs into slivers of MR rows;
/// a block of B packs as its transpose, into slivers of NR columns.
///
/// # Safety
/// The rows × kc block lies inside x; `out` holds rows rounded up to w, times kc; with
/// `transpose`, the CPU has AVX2.
unsafe fn pack(x: Mat, rows: usize, kc: usize, w: usize, transpose: bool, out: &mut [f32]) {
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
            #[cfg(target_arch = "x86_64")]
            let done = if x.cs == 1 && transpose {
                // SAFETY: the block's h rows hold kc values each; the sliver holds kc · w;
                // the CPU has AVX2 (the caller's contract).
                unsafe { transpose_rows(x.at(i0, 0), h, kc, w, dst.as_mut_ptr()) }
            } else {
                0
            };
            #[cfg(not(target_arch = "x86_64"))]
            let done = {
                let _ = transpose;
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
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn transpose_rows(x: Mat, h: usize, kc: usize, w: usize, dst: *mut f32) -> usize {
    use std::arch::x86_64::*;
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

/// One register tile's operands: `kc` steps of a packed A sliver (`a_step` values a step) and
/// of B (NR values a step, `bs` apart).
pub(crate) struct Tile {
    kc: usize,
    a: *const f32,
    b: *const f32,
    bs: usize,
    a_step: usize,
}

impl Tile {
    /// The first `mr` rows and `nr` columns of the tile into C at `c` (rows `ldc` apart),
    /// added when `acc`.
    ///
    /// # Safety
    /// The operands hold `kc` steps; C's `mr` × `nr` block is writable (and initialised when
    /// `acc`); the CPU runs K's tier.
    unsafe fn run<K: Gemm>(&self, mr: usize, nr: usize, c: *mut f32, ldc: usize, acc: bool) {
        // A tile narrower than NR (the last of a row of tiles) runs on as few vectors as
        // cover it, instead of computing NR columns to store a few.
        macro_rules! by_rows {
            ($w:literal) => {
                match mr {
                    1 => K::rows::<1, $w>(self, nr, c, ldc, acc),
                    2 => K::rows::<2, $w>(self, nr, c, ldc, acc),
                    3 => K::rows::<3, $w>(self, nr, c, ldc, acc),
                    4 => K::rows::<4, $w>(self, nr, c, ldc, acc),
                    5 => K::rows::<5, $w>(self, nr, c, ldc, acc),
                    6 => K::rows::<6, $w>(self, nr, c, ldc, acc),
                    7 => K::rows::<7, $w>(self, nr, c, ldc, acc),
                    _ => K::rows::<8, $w>(self, nr, c, ldc, acc),
                }
            };
        }
        debug_assert!(mr <= K::MR && K::MR <= 8 && K::NV <= 3 && nr <= K::NV * K::V::LANES);
        // SAFETY: the caller's contract.
        unsafe {
            match nr.div_ceil(K::V::LANES) {
                1 => by_rows!(1),
                2 => by_rows!(2),
                _ => by_rows!(3),
            }
        }
    }
}

/// The register tile for `R` rows and `W` vectors (R·W accumulators); a tile narrower than
/// W vectors stores its `nr` columns through lane masks.
///
/// # Safety
/// As [`Tile::run`], with `nr <= W · lanes`; run under V's tier.
#[inline(always)]
unsafe fn rows<V: F32Vec, const R: usize, const W: usize>(
    t: &Tile,
    nr: usize,
    c: *mut f32,
    ldc: usize,
    acc: bool,
) {
    // SAFETY: the caller's contract.
    unsafe {
        let mut r = [[V::zero(); W]; R];
        let (mut a, mut b) = (t.a, t.b);
        for _ in 0..t.kc {
            let mut bv = [V::zero(); W];
            for (h, v) in bv.iter_mut().enumerate() {
                *v = V::load(b.add(V::LANES * h));
            }
            for (i, ri) in r.iter_mut().enumerate() {
                let ai = V::splat(*a.add(i));
                for (acc, &v) in ri.iter_mut().zip(&bv) {
                    *acc = ai.mul_add(v, *acc);
                }
            }
            a = a.add(t.a_step);
            b = b.add(t.bs);
        }
        if nr == V::LANES * W {
            for (i, ri) in r.iter().enumerate() {
                for (h, &v) in ri.iter().enumerate() {
                    let p = c.add(i * ldc + V::LANES * h);
                    let v = if acc { V::load(p).add(v) } else { v };
                    v.store(p);
                }
            }
            return;
        }
        // Lane j of vector h is on when LANES·h + j < nr; lanes off are neither read nor
        // written.
        for (i, ri) in r.iter().enumerate() {
            for (h, &v) in ri.iter().enumerate() {
                let on = nr.saturating_sub(V::LANES * h).min(V::LANES);
                if on == 0 {
                    continue;
                }
                let q = c.add(i * ldc + V::LANES * h);
                let v = if acc { V::load_first(q, on).add(v) } else { v };
                v.store_first(q, on);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On every tier the CPU runs (the AVX-512 algorithm emulated on AVX2 too): every
    /// blocking edge (MC, KC and NC crossed, narrow last tiles of one vector or fewer columns
    /// and of one to two, every row count of a tile's edge, short A with B read in place), dot products (A by rows and B by
    /// columns, k long, with a tail, either side shorter), every layout, padded leading dimensions, written and accumulated, on one
    /// thread and split three ways, against an f64 triple loop.
    #[test]
    fn products_match_the_definition_across_blocks_layouts_and_threads() {
        let (tiers, missing) = Tier::runnable();
        eprintln!("sgemm tiers tested: {tiers:?}; not runnable on this CPU: {missing:?}");
        let shapes = [
            (29, 300, 47),
            (350, 9, 31),
            (15, 129, 65),
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
                for (tier, accumulate, threads) in tiers
                    .iter()
                    .flat_map(|&t| [(t, false, 1), (t, true, 1), (t, false, 3), (t, true, 3)])
                {
                    {
                        // NaN where C is only written: it must not be read.
                        let start = if accumulate { 0.5 } else { f32::NAN };
                        let mut c = vec![start; m * ldc];
                        crate::runtime::threads::run(usize::MAX, |_| {
                            // SAFETY: the strides stay inside a, b and c by construction; the
                            // CPU runs the tier.
                            unsafe {
                                sgemm_on(
                                    tier,
                                    threads,
                                    m,
                                    k,
                                    n,
                                    am,
                                    bm,
                                    c.as_mut_ptr(),
                                    ldc,
                                    accumulate,
                                )
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
                                    "{tier:?} {m}x{k}x{n} trans ({a_trans}, {b_trans}) acc {accumulate} threads {threads} [{i}, {j}]: {got} vs {want}"
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
