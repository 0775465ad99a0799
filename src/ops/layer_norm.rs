//! Layer normalisation over the trailing axes, as PyTorch's `F.layer_norm`.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::ops::normalize::{affine, check_affine};
use crate::tape::Var;

impl<'t, T: Float> Var<'t, T> {
    /// Each sample normalised over its last axes, `normalized_shape` (which they must
    /// equal), to mean 0 and variance 1 (`(x − μ) / √(σ² + ε)`, biased variance), then
    /// `⊙ weight + bias`, each of `normalized_shape` and optional.
    ///
    /// VJP: `∂L/∂x = r (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂))` per sample, `ĝ = g ⊙ weight`;
    /// differentiable to any order.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 3.0, -2.0, 2.0], [2, 2]));
    /// let y = x.layer_norm(&[2], None, None, 0.0);
    /// assert_eq!(y.value().to_vec(), vec![-1.0, 1.0, -1.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn try_layer_norm(
        self,
        normalized_shape: &[usize],
        weight: Option<Var<'t, T>>,
        bias: Option<Var<'t, T>>,
        eps: f64,
    ) -> Result<Var<'t, T>, Error> {
        const OP: &str = "layer_norm";
        let shape = self.shape();
        let k = normalized_shape.len();
        if k == 0 || k > shape.len() || shape[shape.len() - k..] != *normalized_shape {
            return Err(Error::bad_shape(
                OP,
                &shape,
                format!("the trailing axes must be normalized_shape {normalized_shape:?}"),
            ));
        }
        check_affine(OP, self, weight, bias, normalized_shape, "normalized_shape")?;
        let m: usize = normalized_shape.iter().product();
        if m == 0 {
            return Err(Error::bad_shape(
                OP,
                &shape,
                "normalized_shape holds no element",
            ));
        }
        let (y, _) = self.reshape([1, shape.numel() / m, m]).normalize(eps);
        Ok(affine(y.reshape(shape), weight, bias, normalized_shape))
    }

    /// [`Var::try_layer_norm`], panicking at the caller's line on bad shapes.
    #[track_caller]
    pub fn layer_norm(
        self,
        normalized_shape: &[usize],
        weight: Option<Var<'t, T>>,
        bias: Option<Var<'t, T>>,
        eps: f64,
    ) -> Var<'t, T> {
        self.try_layer_norm(normalized_shape, weight, bias, eps)
            .or_panic()
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::{check, randn};

    #[test]
    fn gradcheck_configurations() {
        let cases: &[(&[usize], usize)] = &[
            (&[4, 5], 1),
            (&[2, 3, 4], 1),
            (&[2, 3, 4], 2),
            (&[1, 2, 3, 3], 3),
            (&[3, 7], 1),
        ];
        let mut worst = 0.0f64;
        for (k, &(s, axes)) in cases.iter().enumerate() {
            let ns = &s[s.len() - axes..];
            let x = randn(k as u64, s).map(|v| 3.0 * v - 1.0);
            let w = randn(100 + k as u64, ns);
            let b = randn(200 + k as u64, ns);
            let what = format!("layer_norm {s:?} over {ns:?}");
            worst = worst.max(check(&what, &[x.clone(), w, b], |v| {
                v[0].layer_norm(ns, Some(v[1]), Some(v[2]), 1e-5).tanh()
            }));
            worst = worst.max(check(&what, &[x], |v| {
                v[0].layer_norm(ns, None, None, 1e-5).tanh()
            }));
        }
        eprintln!(
            "layer_norm: {} configs, max |error| {worst:.3e}",
            2 * cases.len()
        );
    }

    #[test]
    fn shapes_are_checked() {
        let tape = crate::tape::Tape::<f32>::new();
        let x = tape.param(crate::tensor::Tensor::zeros([2, 3]));
        let e = x
            .try_layer_norm(&[2], None, None, 1e-5)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("layer_norm") && e.contains("[2, 3]") && e.contains("[2]"),
            "{e}"
        );
    }
}
