//! The x86-64 vector types: 8 lanes of AVX2, 16 of AVX-512, and 16 made of two AVX2 halves
//! that run the AVX-512 algorithms on AVX2 machines. Each method is one or two intrinsics.

use std::arch::x86_64::*;

use super::F32Vec;

/// Eight f32 lanes in an AVX2 register.
#[derive(Clone, Copy)]
pub(crate) struct Avx2(__m256);

/// Lane `j` on when `j < n`, as an AVX2 mask.
#[inline(always)]
unsafe fn mask8(n: usize) -> __m256i {
    // SAFETY: AVX2 (the caller's tier).
    unsafe {
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), lanes)
    }
}

// SAFETY: AVX2 and FMA intrinsics only, run under the AVX2 tier's features.
unsafe impl F32Vec for Avx2 {
    const LANES: usize = 8;
    #[inline(always)]
    unsafe fn zero() -> Self {
        unsafe { Avx2(_mm256_setzero_ps()) }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        unsafe { Avx2(_mm256_set1_ps(x)) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { Avx2(_mm256_loadu_ps(p)) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { _mm256_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn load_first(p: *const f32, n: usize) -> Self {
        unsafe { Avx2(_mm256_maskload_ps(p, mask8(n))) }
    }
    #[inline(always)]
    unsafe fn store_first(self, p: *mut f32, n: usize) {
        unsafe { _mm256_maskstore_ps(p, mask8(n), self.0) }
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        unsafe { Avx2(_mm256_fmadd_ps(self.0, b.0, c.0)) }
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        unsafe { Avx2(_mm256_add_ps(self.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn sum(self) -> f32 {
        // Halves, then pairs, then the last two.
        unsafe {
            let v = self.0;
            let h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
            let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            _mm_cvtss_f32(_mm_add_ss(h, _mm_shuffle_ps(h, h, 1)))
        }
    }
}

/// Sixteen f32 lanes in an AVX-512 register.
#[derive(Clone, Copy)]
pub(crate) struct Avx512(__m512);

/// Lane `j` on when `j < n` (n ≤ 16), as an AVX-512 mask.
#[inline(always)]
fn mask16(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

// SAFETY: AVX-512 F intrinsics only, run under the AVX-512 tier's features.
unsafe impl F32Vec for Avx512 {
    const LANES: usize = 16;
    #[inline(always)]
    unsafe fn zero() -> Self {
        unsafe { Avx512(_mm512_setzero_ps()) }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        unsafe { Avx512(_mm512_set1_ps(x)) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { Avx512(_mm512_loadu_ps(p)) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { _mm512_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn load_first(p: *const f32, n: usize) -> Self {
        unsafe { Avx512(_mm512_maskz_loadu_ps(mask16(n), p)) }
    }
    #[inline(always)]
    unsafe fn store_first(self, p: *mut f32, n: usize) {
        unsafe { _mm512_mask_storeu_ps(p, mask16(n), self.0) }
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        unsafe { Avx512(_mm512_fmadd_ps(self.0, b.0, c.0)) }
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        unsafe { Avx512(_mm512_add_ps(self.0, b.0)) }
    }
    #[inline(always)]
    unsafe fn sum(self) -> f32 {
        // The two 256-bit halves added, then as AVX2 does.
        unsafe {
            let lo = _mm512_castps512_ps256(self.0);
            let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(self.0)));
            Avx2(_mm256_add_ps(lo, hi)).sum()
        }
    }
}

/// Sixteen f32 lanes as two AVX2 halves: the AVX-512 tier's algorithms (tile shapes, masks,
/// packing widths) on a machine without AVX-512, for the tests. Lane `j` lives in half
/// `j / 8`; every operation is the AVX2 one on each half, and a sum adds the halves first,
/// as the AVX-512 type does, so both give the same bits.
#[derive(Clone, Copy)]
pub(crate) struct Emu16([Avx2; 2]);

// SAFETY: the AVX2 type's operations on each half, run under the AVX2 tier's features.
unsafe impl F32Vec for Emu16 {
    const LANES: usize = 16;
    #[inline(always)]
    unsafe fn zero() -> Self {
        unsafe { Emu16([Avx2::zero(); 2]) }
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        unsafe { Emu16([Avx2::splat(x); 2]) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { Emu16([Avx2::load(p), Avx2::load(p.add(8))]) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe {
            self.0[0].store(p);
            self.0[1].store(p.add(8));
        }
    }
    #[inline(always)]
    unsafe fn load_first(p: *const f32, n: usize) -> Self {
        unsafe {
            Emu16([
                Avx2::load_first(p, n.min(8)),
                Avx2::load_first(p.wrapping_add(8), n.saturating_sub(8)),
            ])
        }
    }
    #[inline(always)]
    unsafe fn store_first(self, p: *mut f32, n: usize) {
        unsafe {
            self.0[0].store_first(p, n.min(8));
            self.0[1].store_first(p.wrapping_add(8), n.saturating_sub(8));
        }
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        unsafe {
            Emu16([
                self.0[0].mul_add(b.0[0], c.0[0]),
                self.0[1].mul_add(b.0[1], c.0[1]),
            ])
        }
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        unsafe { Emu16([self.0[0].add(b.0[0]), self.0[1].add(b.0[1])]) }
    }
    #[inline(always)]
    unsafe fn sum(self) -> f32 {
        unsafe { self.0[0].add(self.0[1]).sum() }
    }
}
