//! Elementary functions over slices, vectorised for the instruction-set tier in use and split
//! across the pool when long. The scalar functions are in the crate's float layer
//! (`crate::math`), below the kernels.

use crate::float::Float;
use crate::runtime::simd::tiers;

/// `tanh` of every element, [`Float::tanh`] (so `tanh_f32` in f32), vectorised for the
/// CPU it runs on (the same operations in wider lanes, so the same bits) and split across
/// the pool when long.
pub fn tanh<T: Float>(x: &[T]) -> Vec<T> {
    crate::kernels::elementwise::map_chunks(x, 16, |_, xc, yc| tanh_chunk(xc, yc))
}

tiers! {
/// [`tanh`] of a chunk, vectorised for the CPU it runs on.
fn tanh_chunk<T: Float>(x: &[T], y: &mut [T]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi = xi.tanh();
    }
}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::math::tanh_f32;

    #[test]
    fn slice_tanh_matches_the_scalar_one_bit_for_bit() {
        // Long enough for the pool and for vector loops with a remainder.
        let x: Vec<f32> = (0..300_007)
            .map(|i| (i as f32 * 0.37).sin() * 12.0)
            .collect();
        let y = tanh(&x);
        assert!(
            x.iter()
                .zip(&y)
                .all(|(&a, &b)| tanh_f32(a).to_bits() == b.to_bits())
        );
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        assert!(x64.iter().zip(tanh(&x64)).all(|(&a, b)| a.tanh() == b));
    }
}
