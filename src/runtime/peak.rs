//! The machine's f32 multiply-add peak on the tier in use, measured: the figure a kernel's
//! GFLOP/s is a fraction of.

#[cfg(target_arch = "x86_64")]
use crate::runtime::simd::x86;
use crate::runtime::simd::{F32Vec, portable::Portable};
use crate::runtime::{Isa, isa};

/// Independent accumulator chains per thread: enough to cover two FMA units of 4-cycle
/// latency (8) with room, few enough to stay in AVX2's 16 registers.
const CHAINS: usize = 12;

/// `iters` rounds of [`CHAINS`] independent multiply-adds on vectors of V; returns a value
/// that depends on every one, so that none is optimised away.
#[inline(always)]
unsafe fn chains<V: F32Vec>(iters: usize) -> f32 {
    // SAFETY: the caller runs this under V's tier.
    unsafe {
        let (a, b) = (V::splat(0.999_999), V::splat(1e-7));
        let mut acc = [V::zero(); CHAINS];
        for (i, x) in acc.iter_mut().enumerate() {
            *x = V::splat(i as f32);
        }
        for _ in 0..iters {
            for x in acc.iter_mut() {
                *x = x.mul_add(a, b);
            }
        }
        acc.iter().fold(V::zero(), |s, &x| s.add(x)).sum()
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")]
unsafe fn chains_avx512(iters: usize) -> f32 {
    // SAFETY: compiled for AVX-512; the caller checked the CPU.
    unsafe { chains::<x86::Avx512>(iters) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn chains_avx2(iters: usize) -> f32 {
    // SAFETY: compiled for AVX2; the caller checked the CPU.
    unsafe { chains::<x86::Avx2>(iters) }
}

/// One thread's multiply-adds on `tier` for `iters` rounds; returns the flops done.
fn run(tier: Isa, iters: usize) -> f64 {
    // SAFETY: `tier` is at most the widest tier this CPU runs (the caller's `isa()`).
    let v = unsafe {
        match tier {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => chains_avx512(iters),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => chains_avx2(iters),
            _ => chains::<Portable>(iters),
        }
    };
    std::hint::black_box(v);
    (iters * CHAINS * tier.f32_lanes() * 2) as f64
}

/// The f32 multiply-add peak in GFLOP/s (a multiply-add counts two) of the tier in use
/// ([`isa()`]), with every thread of the pool ([`crate::threads`]) running independent
/// multiply-add chains at once for about `seconds`; the best of a few tries, so that a
/// moment of the host's time-sharing does not lower it.
///
/// ```
/// let peak = tapegrad::runtime::fma_peak_gflops(0.01);
/// assert!(peak > 0.1);
/// ```
pub fn fma_peak_gflops(seconds: f64) -> f64 {
    let tier = isa();
    let pool = crate::runtime::threads::pool();
    let threads = pool.current_num_threads();
    // Calibrate the rounds for one try on one thread.
    let mut iters = 1 << 14;
    loop {
        let t = std::time::Instant::now();
        run(tier, iters);
        if t.elapsed().as_secs_f64() > 0.005 || iters > 1 << 30 {
            let per = t.elapsed().as_secs_f64() / iters as f64;
            iters = ((seconds / 5.0 / per) as usize).max(iters);
            break;
        }
        iters *= 2;
    }
    let mut best = 0.0f64;
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let flops: f64 = pool.install(|| {
            use rayon::prelude::*;
            (0..threads).into_par_iter().map(|_| run(tier, iters)).sum()
        });
        best = best.max(flops / t.elapsed().as_secs_f64() / 1e9);
    }
    best
}
