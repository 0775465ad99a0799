//! Initialisers for parameters: constants, plain random, and the fan-scaled schemes of
//! Glorot (Xavier) and He (Kaiming), with fans computed as PyTorch computes them.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::shape::Shape;
use crate::tensor::Tensor;
use rand::{Rng, RngExt};

/// How to fill a new parameter.
///
/// The fan-scaled schemes read `fan_in` and `fan_out` from the shape (see [`fans`]):
///
/// | scheme | distribution | PyTorch |
/// |---|---|---|
/// | `GlorotUniform` | `U(−a, a)`, `a = √(6 / (fan_in + fan_out))` | `xavier_uniform_` |
/// | `GlorotNormal` | `N(0, σ²)`, `σ = √(2 / (fan_in + fan_out))` | `xavier_normal_` |
/// | `HeUniform` | `U(−a, a)`, `a = √2 · √(3 / fan_in)` | `kaiming_uniform_(nonlinearity="relu")` |
/// | `HeNormal` | `N(0, σ²)`, `σ = √2 / √fan_in` | `kaiming_normal_(nonlinearity="relu")` |
///
/// The He schemes use mode `fan_in` and the gain `√2` of ReLU.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::nn::Init;
/// use rand::SeedableRng;
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// // A linear layer's weight, stored [in, out] = [784, 100]: fan_in 784.
/// let w: Tensor<f32> = Init::HeNormal.tensor([784, 100], &mut rng);
/// assert_eq!(w.shape(), &[784, 100]);
/// let b: Tensor<f32> = Init::Zeros.tensor([100], &mut rng);
/// assert!(b.data().iter().all(|&v| v == 0.0));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Every element 0.
    Zeros,
    /// Every element the given value.
    Constant(f64),
    /// Normal with mean 0 and standard deviation `std` (`std ≥ 0`).
    Normal {
        /// The standard deviation.
        std: f64,
    },
    /// Uniform on `[lo, hi)` (`lo ≤ hi`).
    Uniform {
        /// The lower bound, included.
        lo: f64,
        /// The upper bound, excluded.
        hi: f64,
    },
    /// Glorot (Xavier) uniform: `U(−a, a)` with `a = √(6 / (fan_in + fan_out))`.
    GlorotUniform,
    /// Glorot (Xavier) normal: `N(0, σ²)` with `σ = √(2 / (fan_in + fan_out))`.
    GlorotNormal,
    /// He (Kaiming) normal for ReLU: `N(0, σ²)` with `σ = √(2 / fan_in)`.
    HeNormal,
    /// He (Kaiming) uniform for ReLU: `U(−a, a)` with `a = √(6 / fan_in)`.
    HeUniform,
}

/// `(fan_in, fan_out)` of a weight of this shape, as PyTorch's
/// `_calculate_fan_in_and_fan_out` computes them, except for rank 2.
///
/// - Rank 2: a linear layer's weight, which this crate stores **`[in, out]`** (the model
///   computes `x.matmul(w)`), so `fan_in = shape[0]` and `fan_out = shape[1]`. PyTorch
///   stores `nn.Linear.weight` as `[out, in]` and reads the two the other way round; the
///   fans of a given layer are therefore the same in both.
/// - Rank ≥ 3: a convolution's weight `[O, I, k…]`: `fan_in = I · Πk`, `fan_out = O · Πk`,
///   exactly as PyTorch.
/// - Rank 0 and 1 have no fans (PyTorch refuses them too): `Err`.
///
/// ```
/// use tapegrad::nn::init::fans;
/// use tapegrad::Shape;
/// assert_eq!(fans(&Shape::from([784, 100])).unwrap(), (784, 100)); // linear [in, out]
/// assert_eq!(fans(&Shape::from([16, 8, 3, 3])).unwrap(), (72, 144)); // conv [O, I, kh, kw]
/// assert!(fans(&Shape::from([10])).is_err());
/// ```
#[track_caller]
pub fn fans(shape: &Shape) -> Result<(usize, usize), Error> {
    match shape.dims() {
        [] | [_] => Err(Error::bad_shape(
            "init",
            shape,
            format!(
                "fan_in and fan_out need a weight of rank 2 ([in, out]) or more ([O, I, kh, kw]), \
                 not rank {}; initialise biases with Zeros, Constant, Normal or Uniform",
                shape.rank()
            ),
        )),
        &[i, o] => Ok((i, o)),
        [o, i, k @ ..] => {
            let receptive: usize = k.iter().product();
            Ok((i * receptive, o * receptive))
        }
    }
}

impl Init {
    /// A new tensor of `shape` drawn from this initialiser; the rng makes it reproducible.
    ///
    /// Errors: a fan-scaled scheme on a shape of rank below 2 (see [`fans`]), a negative or
    /// non-finite `std`, `lo > hi` or a non-finite bound.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::nn::Init;
    /// use rand::SeedableRng;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let e = Init::GlorotUniform.try_tensor::<f32, _>([10], &mut rng).unwrap_err();
    /// assert!(e.to_string().contains("fan_in and fan_out need a weight of rank 2"));
    /// ```
    #[track_caller]
    pub fn try_tensor<T: Float, R: Rng + ?Sized>(
        &self,
        shape: impl Into<Shape>,
        rng: &mut R,
    ) -> Result<Tensor<T>, Error> {
        let shape = shape.into();
        Ok(match *self {
            Init::Zeros => Tensor::zeros(shape),
            Init::Constant(v) => Tensor::full(shape, T::from_f64(v)),
            Init::Normal { std } => {
                if !(std >= 0.0 && std.is_finite()) {
                    return Err(Error::bad_argument(
                        "init",
                        format!("Normal needs a finite std >= 0, not {std}"),
                    ));
                }
                normal(shape, std, rng)
            }
            Init::Uniform { lo, hi } => {
                if !(lo <= hi && lo.is_finite() && hi.is_finite()) {
                    return Err(Error::bad_argument(
                        "init",
                        format!(
                            "Uniform needs finite bounds with lo <= hi, not lo = {lo}, hi = {hi}"
                        ),
                    ));
                }
                uniform(shape, lo, hi, rng)
            }
            Init::GlorotUniform => {
                let (fi, fo) = fans(&shape)?;
                let a = (6.0 / (fi + fo) as f64).sqrt();
                uniform(shape, -a, a, rng)
            }
            Init::GlorotNormal => {
                let (fi, fo) = fans(&shape)?;
                normal(shape, (2.0 / (fi + fo) as f64).sqrt(), rng)
            }
            Init::HeNormal => {
                let (fi, _) = fans(&shape)?;
                normal(shape, 2f64.sqrt() / (fi as f64).sqrt(), rng)
            }
            Init::HeUniform => {
                let (fi, _) = fans(&shape)?;
                let a = 2f64.sqrt() * (3.0 / fi as f64).sqrt();
                uniform(shape, -a, a, rng)
            }
        })
    }

    /// [`Init::try_tensor`], panicking on error.
    ///
    /// # Panics
    /// As [`Init::try_tensor`] errs; the message points at the caller.
    #[track_caller]
    pub fn tensor<T: Float, R: Rng + ?Sized>(
        &self,
        shape: impl Into<Shape>,
        rng: &mut R,
    ) -> Tensor<T> {
        self.try_tensor(shape, rng).or_panic()
    }
}

// Sampled in f64 and rounded once, so f32 and f64 tensors from the same seed agree to f32
// precision.
fn normal<T: Float, R: Rng + ?Sized>(shape: Shape, std: f64, rng: &mut R) -> Tensor<T> {
    let z = Tensor::<f64>::randn(shape.clone(), rng);
    let z = z.data();
    Tensor::from_fn(shape, |i| T::from_f64(std * z[i]))
}

fn uniform<T: Float, R: Rng + ?Sized>(shape: Shape, lo: f64, hi: f64, rng: &mut R) -> Tensor<T> {
    Tensor::from_fn(shape, |_| T::from_f64(lo + (hi - lo) * rng.random::<f64>()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn moments(t: &Tensor<f64>) -> (f64, f64) {
        let n = t.numel() as f64;
        let mean = t.data().iter().sum::<f64>() / n;
        let var = t.data().iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    #[test]
    fn fans_as_pytorch_with_linear_stored_in_out() {
        let cases: &[(&[usize], (usize, usize))] = &[
            (&[784, 100], (784, 100)),
            (&[3, 7], (3, 7)),
            (&[16, 8, 3, 3], (72, 144)),
            (&[4, 2, 5], (10, 20)),
            (&[6, 3, 1, 1], (3, 6)),
        ];
        for (s, f) in cases {
            assert_eq!(fans(&Shape::new(s)).unwrap(), *f, "shape {s:?}");
        }
    }

    #[test]
    fn constants() {
        let mut rng = StdRng::seed_from_u64(1);
        let z: Tensor<f32> = Init::Zeros.tensor([2, 3], &mut rng);
        assert_eq!(z.to_vec(), vec![0.0; 6]);
        let c: Tensor<f64> = Init::Constant(0.25).tensor([4], &mut rng);
        assert_eq!(c.to_vec(), vec![0.25; 4]);
        // A scalar parameter is fine for the schemes without fans.
        let s: Tensor<f64> = Init::Normal { std: 1.0 }.tensor(Shape::scalar(), &mut rng);
        assert_eq!(s.numel(), 1);
    }

    #[test]
    fn distributions_have_the_documented_spread() {
        let mut rng = StdRng::seed_from_u64(7);
        // (init, shape, expected std, uniform bound if uniform)
        let (fi, fo) = (300.0f64, 200.0f64);
        let conv_fi = 8.0 * 9.0;
        let cases: Vec<(Init, Vec<usize>, f64, Option<f64>)> = vec![
            (Init::Normal { std: 0.3 }, vec![200, 300], 0.3, None),
            (
                Init::Uniform { lo: -2.0, hi: 2.0 },
                vec![200, 300],
                4.0 / 12f64.sqrt(),
                Some(2.0),
            ),
            (
                Init::GlorotNormal,
                vec![300, 200],
                (2.0 / (fi + fo)).sqrt(),
                None,
            ),
            (
                Init::GlorotUniform,
                vec![300, 200],
                (2.0 / (fi + fo)).sqrt(),
                Some((6.0 / (fi + fo)).sqrt()),
            ),
            (Init::HeNormal, vec![300, 200], (2.0 / fi).sqrt(), None),
            (
                Init::HeUniform,
                vec![300, 200],
                (2.0 / fi).sqrt(),
                Some((6.0 / fi).sqrt()),
            ),
            (
                Init::HeNormal,
                vec![800, 8, 3, 3],
                (2.0 / conv_fi).sqrt(),
                None,
            ),
            (
                Init::HeUniform,
                vec![800, 8, 3, 3],
                (2.0 / conv_fi).sqrt(),
                Some((6.0 / conv_fi).sqrt()),
            ),
        ];
        for (init, shape, std, bound) in cases {
            let t: Tensor<f64> = init.tensor(shape.as_slice(), &mut rng);
            assert_eq!(t.shape(), &Shape::new(&shape));
            let (m, s) = moments(&t);
            assert!(m.abs() < 0.02 * std, "{init:?}: mean {m}");
            assert!(
                (s / std - 1.0).abs() < 0.02,
                "{init:?}: std {s}, expected {std}"
            );
            if let Some(b) = bound {
                assert!(
                    t.data().iter().all(|v| v.abs() <= b),
                    "{init:?}: outside ±{b}"
                );
                let max = t.data().iter().fold(0.0f64, |a, v| a.max(v.abs()));
                assert!(max > 0.99 * b, "{init:?}: max {max} should approach {b}");
            }
        }
    }

    #[test]
    fn f32_and_f64_from_the_same_seed_agree() {
        for init in [Init::HeNormal, Init::GlorotUniform] {
            let a: Tensor<f32> = init.tensor([5, 4], &mut StdRng::seed_from_u64(3));
            let b: Tensor<f64> = init.tensor([5, 4], &mut StdRng::seed_from_u64(3));
            assert_eq!(a.to_vec(), b.cast::<f32>().to_vec());
        }
    }

    #[test]
    fn fan_schemes_refuse_rank_below_two() {
        let mut rng = StdRng::seed_from_u64(0);
        for init in [
            Init::GlorotUniform,
            Init::GlorotNormal,
            Init::HeNormal,
            Init::HeUniform,
        ] {
            let e = init.try_tensor::<f64, _>([10], &mut rng).unwrap_err();
            assert!(
                e.to_string().starts_with(
                    "init: shape [10] refused: fan_in and fan_out need a weight of rank 2 ([in, out]) or more ([O, I, kh, kw]), not rank 1; initialise biases with"
                ),
                "{e}"
            );
            assert!(e.to_string().contains("(called at src/nn/init.rs:"), "{e}");
        }
    }

    #[test]
    fn bad_arguments() {
        let mut rng = StdRng::seed_from_u64(0);
        let e = Init::Normal { std: -1.0 }
            .try_tensor::<f64, _>([2], &mut rng)
            .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "init: Normal needs a finite std >= 0, not -1 (called at src/nn/init.rs:"
            ),
            "{e}"
        );
        let e = Init::Uniform { lo: 1.0, hi: 0.0 }
            .try_tensor::<f64, _>([2], &mut rng)
            .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "init: Uniform needs finite bounds with lo <= hi, not lo = 1, hi = 0 (called at"
            ),
            "{e}"
        );
        let e = Init::Uniform {
            lo: 0.0,
            hi: f64::NAN,
        }
        .try_tensor::<f32, _>([2], &mut rng)
        .unwrap_err();
        assert!(e.to_string().contains("hi = NaN"), "{e}");
    }

    #[test]
    #[should_panic(expected = "init: shape [] refused")]
    fn plain_form_panics() {
        let _: Tensor<f32> = Init::HeNormal.tensor(Shape::scalar(), &mut StdRng::seed_from_u64(0));
    }
}
