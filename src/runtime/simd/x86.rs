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
    #[inline(always)]
    unsafe fn sum4(a: Self, b: Self, c: Self, d: Self) -> [f32; 4] {
        // The steps of `sum`, two vectors to a register: halves, then pairs, then the last two.
        unsafe {
            let halves = |x: __m256, y: __m256| {
                _mm256_add_ps(
                    _mm256_permute2f128_ps::<0x20>(x, y),
                    _mm256_permute2f128_ps::<0x31>(x, y),
                )
            };
            let last = |h: __m256| {
                let u = _mm256_add_ps(h, _mm256_permute_ps::<0b01_00_11_10>(h));
                _mm256_add_ps(u, _mm256_permute_ps::<0b10_11_00_01>(u))
            };
            // Lane 0 holds a's sum and lane 4 b's; likewise c and d.
            let (ab, cd) = (last(halves(a.0, b.0)), last(halves(c.0, d.0)));
            let t = _mm256_unpacklo_ps(ab, cd); // a c . . | b d . .
            let s = _mm_unpacklo_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps::<1>(t));
            let mut out = [0.0; 4];
            _mm_storeu_ps(out.as_mut_ptr(), s);
            out
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
    #[inline(always)]
    unsafe fn sum4(a: Self, b: Self, c: Self, d: Self) -> [f32; 4] {
        // The steps of `sum` on four vectors side by side: 256-bit halves of two at a time,
        // then 128-bit quarters of all four, then pairs and the last two within each.
        unsafe {
            let halves = |x: __m512, y: __m512| {
                _mm512_add_ps(
                    _mm512_shuffle_f32x4::<0b01_00_01_00>(x, y),
                    _mm512_shuffle_f32x4::<0b11_10_11_10>(x, y),
                )
            };
            let (ab, cd) = (halves(a.0, b.0), halves(c.0, d.0));
            let h = _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b10_00_10_00>(ab, cd),
                _mm512_shuffle_f32x4::<0b11_01_11_01>(ab, cd),
            );
            let u = _mm512_add_ps(h, _mm512_permute_ps::<0b01_00_11_10>(h));
            let v = _mm512_add_ps(u, _mm512_permute_ps::<0b10_11_00_01>(u));
            // The sums sit in lanes 0, 4, 8 and 12.
            let s = _mm512_permutexvar_ps(
                _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
                v,
            );
            let mut out = [0.0; 4];
            _mm_storeu_ps(out.as_mut_ptr(), _mm512_castps512_ps128(s));
            out
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
    #[inline(always)]
    unsafe fn sum4(a: Self, b: Self, c: Self, d: Self) -> [f32; 4] {
        let fold = |x: Self| unsafe { x.0[0].add(x.0[1]) };
        unsafe { Avx2::sum4(fold(a), fold(b), fold(c), fold(d)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::isa::Isa;
    use crate::runtime::simd::portable::Portable;

    /// Four vectors' worth of lanes whose sum depends on the order of addition.
    fn lanes() -> Vec<f32> {
        (0..64)
            .map(|i| {
                let m = [1.0e-3, 1.0, 3.0e4, -7.5e-2][i % 4];
                m * (1.0 + (i as f32 * 0.618_034).fract()) * if i % 3 == 0 { -1.0 } else { 1.0 }
            })
            .collect()
    }

    /// `V::sum4` against four `V::sum`s, bit for bit.
    ///
    /// # Safety
    /// Run under V's tier.
    #[inline(always)]
    unsafe fn check<V: F32Vec>(x: &[f32]) {
        unsafe {
            let v: Vec<V> = (0..4)
                .map(|i| V::load(x[i * V::LANES..].as_ptr()))
                .collect();
            let four = V::sum4(v[0], v[1], v[2], v[3]);
            let each = [v[0].sum(), v[1].sum(), v[2].sum(), v[3].sum()];
            assert_eq!(
                four.map(f32::to_bits),
                each.map(f32::to_bits),
                "{four:?} {each:?}"
            );
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2(x: &[f32]) {
        unsafe { (check::<Avx2>(x), check::<Emu16>(x)) };
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
    unsafe fn avx512(x: &[f32]) {
        unsafe { check::<Avx512>(x) };
    }

    #[test]
    fn sum4_is_four_sums_bit_for_bit() {
        let x = lanes();
        // Every rotation of the lanes, so each position meets each magnitude.
        for r in 0..16 {
            let x: Vec<f32> = x.iter().cycle().skip(r).take(64).copied().collect();
            // SAFETY: each tier runs only where the CPU has it.
            unsafe {
                check::<Portable>(&x);
                if Isa::Avx2 <= crate::runtime::isa::widest_supported() {
                    avx2(&x);
                }
                if Isa::Avx512 <= crate::runtime::isa::widest_supported() {
                    avx512(&x);
                }
            }
        }
    }
}
