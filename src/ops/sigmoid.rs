//! The logistic sigmoid, computed without overflow.

use crate::float::Float;
use crate::ops::{Saved, pointwise, unary};
use crate::tape::Var;

/// `1 / (1 + e^−x)`, evaluated so that `e^(·)` only ever sees `−|x|`: it cannot overflow, and
/// for very negative `x` the tiny result keeps its relative precision (the form
/// `1 / (1 + e^−x)` would compute `1 / inf = 0` from `e^1e4`, or lose digits).
#[inline]
pub(crate) fn sigmoid_scalar<T: Float>(x: T) -> T {
    if x >= T::ZERO {
        T::ONE / (T::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::ONE + e)
    }
}

impl<'t, T: Float> Var<'t, T> {
    /// `σ(x) = 1 / (1 + e^−x)`, elementwise, in `[0, 1]`. The shape is kept.
    ///
    /// Numerically stable: evaluated as `1 / (1 + e^−x)` for `x ≥ 0` and as
    /// `e^x / (1 + e^x)` for `x < 0`, so no intermediate overflows for any finite `x`
    /// (σ(±1e4) is exactly 1 and 0, never NaN) and small results keep full relative
    /// precision (σ(−100) ≈ 3.72e−44 in `f64`). A NaN input gives NaN.
    ///
    /// VJP: `∂L/∂x = g y (1 − y)`, from the saved output `y = σ(x)`.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f32>::new();
    /// let x = tape.param(Tensor::from_vec(vec![0.0, 1e4, -1e4], [3]));
    /// let y = x.sigmoid();
    /// assert_eq!(y.value().to_vec(), vec![0.5, 1.0, 0.0]);
    /// assert_eq!(tape.backward(y.sum())[x].to_vec(), vec![0.25, 0.0, 0.0]);
    /// ```
    #[track_caller]
    pub fn sigmoid(self) -> Var<'t, T> {
        unary(self, "sigmoid", sigmoid_scalar, Saved::Output, |g, _, y| {
            sigmoid_backward(g, y)
        })
    }
}

/// `g · y (1 - y)`, in one pass; its derivative in `y` is `g (1 - 2y)`.
pub(crate) fn sigmoid_backward<'s, T: Float>(g: Var<'s, T>, y: Var<'s, T>) -> Var<'s, T> {
    pointwise(
        "sigmoid_backward",
        g,
        y,
        |g, y| g * y * (T::ONE - y),
        |a| {
            let y = a.input(1);
            [
                a.then(0, || sigmoid_backward(a.g(), y)),
                a.then(1, || a.g() * a.input(0) * (y * T::from_f64(-2.0) + T::ONE)),
            ]
            .into()
        },
    )
}

#[cfg(test)]
mod tests {
    use crate::gradcheck::gradcheck;
    use crate::shape::Shape;
    use crate::tape::Tape;
    use crate::tensor::Tensor;
    use rand::SeedableRng;

    #[test]
    fn gradcheck_shapes() {
        let shapes: &[&[usize]] = &[&[], &[1], &[7], &[2, 3], &[2, 3, 4], &[3, 1, 2]];
        let mut worst = 0.0f64;
        let mut n = 0;
        for (k, &s) in shapes.iter().enumerate() {
            // Unit scale, and a wider one that reaches well into both branches' tails.
            for scale in [1.0, 6.0] {
                let mut rng = rand::rngs::StdRng::seed_from_u64(k as u64);
                let x = Tensor::randn(Shape::from(s), &mut rng).map(|v: f64| scale * v);
                match gradcheck(|v| v[0].sigmoid(), &[x]) {
                    Ok(r) => worst = worst.max(r.max_abs_err()),
                    Err(e) => panic!("sigmoid {s:?} (scale {scale}): {e}"),
                }
                n += 1;
            }
        }
        eprintln!("sigmoid: {n} configs, max |error| {worst:.3e}");
    }

    #[test]
    fn no_overflow_at_large_magnitudes() {
        fn check<T: crate::float::Float>() {
            let tape = Tape::<T>::new();
            let xs = [1e4, -1e4, 1e3, -1e3, 100.0, -100.0, 0.0];
            let x = tape.param(Tensor::from_vec(xs.map(T::from_f64).to_vec(), [7]));
            let y = x.sigmoid();
            let v = y.value();
            assert!(v.data().iter().all(|v| !v.is_nan()), "{v:?}");
            assert!(v[[0]] == T::ONE && v[[1]] == T::ZERO, "{v:?}");
            assert!(v[[2]] == T::ONE && v[[3]] == T::ZERO, "{v:?}");
            assert!(v[[6]] == T::from_f64(0.5));
            let g = tape.backward(y.sum())[x].clone();
            assert!(g.data().iter().all(|v| v.is_finite()), "{g:?}");
            assert!(g[[0]] == T::ZERO && g[[1]] == T::ZERO, "{g:?}");
            assert!(g[[6]] == T::from_f64(0.25));
        }
        check::<f32>();
        check::<f64>();
    }

    #[test]
    fn tiny_results_keep_relative_precision() {
        let tape = Tape::<f64>::new();
        let x = tape.param(Tensor::from_vec(vec![-100.0, 100.0], [2]));
        let y = x.sigmoid();
        let v = y.value();
        // σ(−100) = e^−100 / (1 + e^−100), and 1 + e^−100 rounds to 1.
        approx::assert_relative_eq!(v[[0]], (-100.0f64).exp(), max_relative = 1e-12);
        approx::assert_relative_eq!(v[[0]], 3.720_075_976_020_836e-44, max_relative = 1e-12);
        assert_eq!(v[[1]], 1.0);
        let g = tape.backward(y.sum())[x].clone();
        approx::assert_relative_eq!(g[[0]], (-100.0f64).exp(), max_relative = 1e-12);
    }

    #[test]
    fn known_values_f32_f64() {
        let tape = Tape::<f32>::new();
        let x = tape.param(Tensor::from_vec(vec![0.0, 2.0, -2.0, 1.0], [2, 2]));
        let y = x.sigmoid();
        assert_eq!(y.op(), "sigmoid");
        let want = [0.5f32, 0.880_797_1, 0.119_202_92, 0.731_058_6];
        for (a, b) in y.value().data().iter().zip(want) {
            approx::assert_abs_diff_eq!(*a, b, epsilon = 1e-6);
        }
        let g = tape.backward(y.sum());
        for (a, b) in g[x].data().iter().zip(want) {
            approx::assert_abs_diff_eq!(*a, b * (1.0 - b), epsilon = 1e-6);
        }

        // σ(x) + σ(−x) = 1.
        let tape = Tape::<f64>::new();
        let x = tape.input(Tensor::from_vec(vec![0.3, 3.0, 30.0], [3]));
        let (p, q) = (x.sigmoid().value(), (-x).sigmoid().value());
        for i in 0..3 {
            approx::assert_abs_diff_eq!(p[[i]] + q[[i]], 1.0, epsilon = 1e-15);
        }
    }
}
