//! Compiling a loop for the CPU it runs on, in three tiers (see [`crate::runtime::isa`]).
//!
//! Two ways in. [`tiers!`] compiles a plain function three times, for the baseline, for
//! AVX2 + FMA and for AVX-512, and runs the copy of the tier in use: the compiler vectorises
//! each copy at the tier's width. Additions and multiplications are never fused or
//! reordered by it, so every copy gives the same bits. Kernels that need more than the
//! compiler finds (a GEMM's register tile) are written once over [`F32Vec`], a vector of f32
//! lanes with the handful of operations they use, and instantiated per tier; the 16-lane
//! type made of two AVX2 halves ([`x86::Emu16`]) runs the AVX-512 instantiation's tile
//! shapes, edge masks and packing on any AVX2 machine, so the tests check that algorithm
//! where AVX-512 itself is missing.

pub(crate) mod portable;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86;

pub(crate) use crate::runtime::isa::{Isa, isa};

/// A vector of f32 lanes: the operations the hand-written kernels are written in. Each
/// implementation is a thin layer over one tier's intrinsics.
///
/// # Safety
/// The methods may only run in code compiled with the implementing tier's target features
/// (inside a `#[target_feature]` function of that tier) on a CPU that has them; pointers
/// must be valid for the lanes read or written.
pub(crate) unsafe trait F32Vec: Copy {
    /// Lanes in one vector.
    const LANES: usize;
    /// All lanes zero.
    unsafe fn zero() -> Self;
    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self;
    /// `LANES` values from `p` (unaligned).
    unsafe fn load(p: *const f32) -> Self;
    /// The lanes to `p` (unaligned).
    unsafe fn store(self, p: *mut f32);
    /// The first `n` lanes from `p` (`n <= LANES`), the others zero; nothing past them is
    /// read.
    unsafe fn load_first(p: *const f32, n: usize) -> Self;
    /// The first `n` lanes to `p` (`n <= LANES`); nothing past them is written.
    unsafe fn store_first(self, p: *mut f32, n: usize);
    /// `self · b + c`, fused where the tier has a fused multiply-add.
    unsafe fn mul_add(self, b: Self, c: Self) -> Self;
    /// `self + b`.
    unsafe fn add(self, b: Self) -> Self;
    /// The sum of the lanes.
    unsafe fn sum(self) -> f32;
    /// `[a.sum(), b.sum(), c.sum(), d.sum()]`, the same bits: the x86 tiers reduce the four
    /// side by side, a shuffle serving two or four vectors at once.
    #[inline(always)]
    unsafe fn sum4(a: Self, b: Self, c: Self, d: Self) -> [f32; 4] {
        unsafe { [a.sum(), b.sum(), c.sum(), d.sum()] }
    }
}

/// `dst.copy_from_slice(src)` for short runs, inline: eight elements at a time and an
/// overlapping last eight, rather than a call to `memcpy` for a few dozen bytes.
#[inline(always)]
pub(crate) fn copy_run<T: Copy>(dst: &mut [T], src: &[T]) {
    const W: usize = 8;
    let n = dst.len();
    let src = &src[..n];
    if n < W {
        // Two overlapping fours, or one to three single moves: a loop here would be turned
        // back into a call to `memcpy` (a 7-wide plane's rows cost a fifth of a depthwise
        // layer so).
        if n >= 4 {
            let d: &mut [T; 4] = (&mut dst[..4]).try_into().expect("four elements");
            *d = src[..4].try_into().expect("four elements");
            let d: &mut [T; 4] = (&mut dst[n - 4..]).try_into().expect("four elements");
            *d = src[n - 4..].try_into().expect("four elements");
        } else {
            if n > 0 {
                dst[0] = src[0];
            }
            if n > 1 {
                dst[1] = src[1];
            }
            if n > 2 {
                dst[2] = src[2];
            }
        }
        return;
    }
    let mut i = 0;
    while i + W <= n {
        let d: &mut [T; W] = (&mut dst[i..i + W]).try_into().expect("eight elements");
        *d = src[i..i + W].try_into().expect("eight elements");
        i += W;
    }
    if i < n {
        let d: &mut [T; W] = (&mut dst[n - W..]).try_into().expect("eight elements");
        *d = src[n - W..].try_into().expect("eight elements");
    }
}

// The target features of the tiers, spelt out in each `#[target_feature]` (an attribute
// takes a literal): AVX2 tier "avx2,fma"; AVX-512 tier
// "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma".

/// Defines a function generic over `T: Float` whose body is compiled three times, for the
/// baseline, for AVX2 + FMA and for AVX-512, and runs the copy of the tier in use
/// ([`isa`]). Write it as a plain function (`fn` or `unsafe fn`, arguments as
/// `name: Type`) inside the macro.
macro_rules! tiers {
    ($(#[$m:meta])* $vis:vis fn $name:ident<$T:ident: Float>($($a:ident: $ty:ty),* $(,)?)
        $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        $vis fn $name<$T: Float>($($a: $ty),*) $(-> $ret)? {
            $crate::runtime::simd::tiers!(@dispatch $T ($($a: $ty),*) $(-> $ret)? $body)
        }
    };
    ($(#[$m:meta])* $vis:vis unsafe fn $name:ident<$T:ident: Float>($($a:ident: $ty:ty),* $(,)?)
        $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        $vis unsafe fn $name<$T: Float>($($a: $ty),*) $(-> $ret)? {
            $crate::runtime::simd::tiers!(@dispatch $T ($($a: $ty),*) $(-> $ret)? $body)
        }
    };
    (@dispatch $T:ident ($($a:ident: $ty:ty),*) $(-> $ret:ty)? $body:block) => {{
        #[inline(always)]
        #[allow(unused_unsafe)]
        unsafe fn body<$T: Float>($($a: $ty),*) $(-> $ret)? { unsafe { $body } }
        #[cfg(target_arch = "x86_64")]
        {
            use $crate::runtime::simd::Isa;
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2<$T: Float>($($a: $ty),*) $(-> $ret)? {
                // SAFETY: the caller's contract, passed on.
                unsafe { body($($a),*) }
            }
            #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
            unsafe fn avx512<$T: Float>($($a: $ty),*) $(-> $ret)? {
                // SAFETY: the caller's contract, passed on.
                unsafe { body($($a),*) }
            }
            match $crate::runtime::simd::isa() {
                // SAFETY: `isa` names a tier only where the CPU has its features.
                Isa::Avx512 => return unsafe { avx512($($a),*) },
                Isa::Avx2 => return unsafe { avx2($($a),*) },
                Isa::Generic => {}
            }
        }
        // SAFETY: the caller's contract, passed on.
        unsafe { body($($a),*) }
    }};
}
pub(crate) use tiers;
