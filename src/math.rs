//! Elementary functions of [`Float`](crate::float::Float) written without branches, so that
//! a loop over a slice of them vectorises (the kernels run such loops per instruction-set
//! tier).
//!
//! The C library's `tanhf` is a scalar call of ~15 ns; a tanh layer on a batch of feature
//! maps made it the largest cost of a training step. [`tanh_f32`] is the f32 `tanh` of
//! `Float`: within 2 ulp of the correctly rounded value everywhere (tested on a dense sweep).

/// `tanh x` in f32, branch-free: an odd polynomial near 0 (Cephes' `tanhf`, where
/// `1 − 2/(e^{2|x|} + 1)` would cancel) and the exponential form elsewhere, with the
/// exponential itself a range-reduced polynomial. NaN stays NaN, ±∞ gives ±1.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    let ax = x.abs();
    // Near 0: tanh x = x + x^3 P(x^2), Cephes' minimax fit on |x| < 0.625.
    let z = ax * ax;
    let p = ((((-5.704_988_7e-3 * z + 2.063_909e-2) * z - 5.373_971_6e-2) * z + 1.333_144_2e-1)
        * z
        - 3.333_328e-1)
        * z;
    let small = p * ax + ax;
    // Elsewhere: 1 − 2 / (e^{2|x|} + 1). Beyond 9.01 the result rounds to 1; clamping keeps
    // e^{2|x|} finite (a comparison, so that NaN passes through unclamped).
    let a = if ax > 10.0 { 10.0 } else { ax };
    let e = exp_f32_positive(2.0 * a);
    let large = 1.0 - 2.0 / (e + 1.0);
    let y = if ax < 0.625 { small } else { large };
    // Both branches are computed on |x|; tanh is odd (and keeps the sign of −0).
    f32::from_bits(y.to_bits() | (x.to_bits() & 0x8000_0000))
}

/// `e^x` for `0 <= x <= 20` (NaN gives NaN): `2^n e^r` with `n = round(x / ln 2)`, `|r| <=
/// ln 2 / 2`, and Cephes' degree-6 polynomial for `e^r`. `n` is rounded by adding
/// `1.5 * 2^23`, which leaves it in the low bits of the sum: a float-to-int conversion
/// (saturating in Rust) would stop the loop from vectorising.
#[inline(always)]
fn exp_f32_positive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const ROUND: f32 = 12_582_912.0;
    // ln 2 split in two so that n * LN2_HI is exact.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let t = x * LOG2E + ROUND;
    let nf = t - ROUND;
    let n = t.to_bits().wrapping_sub(ROUND.to_bits());
    let r = x - nf * LN2_HI - nf * LN2_LO;
    let p = (((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 1.666_666_5e-1)
        * r
        + 5e-1)
        * r
        * r
        + r
        + 1.0;
    // 2^n by building the exponent field; n is at most 29 here. A NaN input makes p NaN,
    // whatever n is.
    let scale = f32::from_bits(n.wrapping_add(127) << 23);
    p * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The distance in units in the last place between `got` and the correctly rounded
    /// value of `exact`.
    fn ulps(got: f32, exact: f64) -> u32 {
        let want = exact as f32;
        let (a, b) = (got.to_bits() as i64, want.to_bits() as i64);
        // Same sign in this test: the bit patterns of same-signed floats are ordered.
        (a - b).unsigned_abs() as u32
    }

    #[test]
    fn tanh_within_two_ulp_on_a_dense_sweep() {
        let mut worst = (0u32, 0.0f32);
        // Every 97th f32 from 1e-30 to 20, both signs: ~10 million points, log-spaced.
        let (lo, hi) = (1e-30f32.to_bits(), 20.0f32.to_bits());
        for bits in (lo..hi).step_by(97) {
            for x in [f32::from_bits(bits), -f32::from_bits(bits)] {
                let u = ulps(tanh_f32(x), (x as f64).tanh());
                if u > worst.0 {
                    worst = (u, x);
                }
            }
        }
        assert!(
            worst.0 <= 2,
            "tanh_f32 is {} ulp off at x = {:e}",
            worst.0,
            worst.1
        );
    }

    #[test]
    fn tanh_special_values() {
        assert_eq!(tanh_f32(0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(tanh_f32(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(tanh_f32(f32::INFINITY), 1.0);
        assert_eq!(tanh_f32(f32::NEG_INFINITY), -1.0);
        assert_eq!(tanh_f32(1e4), 1.0);
        assert_eq!(tanh_f32(-1e4), -1.0);
        assert!(tanh_f32(f32::NAN).is_nan());
        assert_eq!(tanh_f32(f32::MIN_POSITIVE), f32::MIN_POSITIVE);
        assert_eq!(tanh_f32(1e-45), 1e-45); // the smallest subnormal
    }

    #[test]
    fn exp_matches_the_library_on_its_range() {
        let mut worst = 0;
        for i in 0..=180_000 {
            let x = i as f32 * 1e-4 + 2.0;
            worst = worst.max(ulps(exp_f32_positive(x), (x as f64).exp()));
        }
        assert!(worst <= 2, "exp is {worst} ulp off");
    }
}
