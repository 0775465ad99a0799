//! The portable vector type: eight f32 lanes in an array, which the compiler maps onto the
//! baseline's registers (two SSE2 or NEON registers).

use super::F32Vec;

/// Eight f32 lanes in plain Rust; multiply-adds are not fused (without FMA hardware a fused
/// one is a library call).
#[derive(Clone, Copy)]
pub(crate) struct Portable([f32; 8]);

// SAFETY: plain Rust; the pointer contracts are the trait's.
unsafe impl F32Vec for Portable {
    const LANES: usize = 8;
    #[inline(always)]
    unsafe fn zero() -> Self {
        Portable([0.0; 8])
    }
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        Portable([x; 8])
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller's contract (8 readable values).
        Portable(unsafe { p.cast::<[f32; 8]>().read_unaligned() })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller's contract (8 writable values).
        unsafe { p.cast::<[f32; 8]>().write_unaligned(self.0) }
    }
    #[inline(always)]
    unsafe fn load_first(p: *const f32, n: usize) -> Self {
        let mut v = [0.0; 8];
        for (j, x) in v.iter_mut().enumerate().take(n) {
            // SAFETY: lane j < n is readable (the caller's contract).
            *x = unsafe { *p.add(j) };
        }
        Portable(v)
    }
    #[inline(always)]
    unsafe fn store_first(self, p: *mut f32, n: usize) {
        for (j, &x) in self.0.iter().enumerate().take(n) {
            // SAFETY: lane j < n is writable (the caller's contract).
            unsafe { *p.add(j) = x };
        }
    }
    #[inline(always)]
    unsafe fn mul_add(self, b: Self, c: Self) -> Self {
        Portable(std::array::from_fn(|j| self.0[j] * b.0[j] + c.0[j]))
    }
    #[inline(always)]
    unsafe fn add(self, b: Self) -> Self {
        Portable(std::array::from_fn(|j| self.0[j] + b.0[j]))
    }
    #[inline(always)]
    unsafe fn sum(self) -> f32 {
        // Halves, then pairs, then the last two: the order of the x86 types.
        let h: [f32; 4] = std::array::from_fn(|j| self.0[j] + self.0[j + 4]);
        (h[0] + h[2]) + (h[1] + h[3])
    }
}
