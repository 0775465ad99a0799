//! Group normalisation: channels in groups, each normalised per sample, as PyTorch's
//! `F.group_norm`.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::ops::normalize::{affine, channel_shape, check_affine};
use crate::tape::Var;

impl<'t, T: Float> Var<'t, T> {
    /// `[N, C, ...]` input with its `C` channels split into `groups` groups of `C / groups`;
    /// each group of each sample normalised over its channels and the remaining axes
    /// (`(x − μ) / √(σ² + ε)`, biased variance), then `· weight + bias` per channel (each
    /// `[C]`, optional). One group is layer norm over `C, H, W`; `C` groups is instance norm.
    ///
    /// VJP: `∂L/∂x = r (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂))` per group, `ĝ = g · weight`;
    /// differentiable to any order.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// let tape = Tape::<f64>::new();
    /// let x = tape.param(Tensor::from_vec(vec![1.0, 3.0, 5.0, 9.0], [1, 4, 1]));
    /// let y = x.group_norm(2, None, None, 0.0);
    /// assert_eq!(y.value().to_vec(), vec![-1.0, 1.0, -1.0, 1.0]);
    /// ```
    #[track_caller]
    pub fn try_group_norm(
        self,
        groups: usize,
        weight: Option<Var<'t, T>>,
        bias: Option<Var<'t, T>>,
        eps: f64,
    ) -> Result<Var<'t, T>, Error> {
        const OP: &str = "group_norm";
        let shape = self.shape();
        if shape.len() < 2 || groups == 0 || !shape[1].is_multiple_of(groups) {
            return Err(Error::bad_shape(
                OP,
                &shape,
                format!("[N, C, ...] input with C a multiple of the {groups} groups"),
            ));
        }
        let (n, c) = (shape[0], shape[1]);
        check_affine(OP, self, weight, bias, &[c], "one per channel")?;
        let m = shape.numel() / (n * groups).max(1);
        if m == 0 {
            return Err(Error::bad_shape(OP, &shape, "a group holds no element"));
        }
        let (y, _) = self.reshape([1, n * groups, m]).normalize(eps);
        Ok(affine(
            y.reshape(shape.clone()),
            weight,
            bias,
            &channel_shape(c, shape.len()),
        ))
    }

    /// [`Var::try_group_norm`], panicking at the caller's line on bad shapes.
    #[track_caller]
    pub fn group_norm(
        self,
        groups: usize,
        weight: Option<Var<'t, T>>,
        bias: Option<Var<'t, T>>,
        eps: f64,
    ) -> Var<'t, T> {
        self.try_group_norm(groups, weight, bias, eps).or_panic()
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::{check, randn};

    #[test]
    fn gradcheck_configurations() {
        let cases: &[(&[usize], usize)] = &[
            (&[2, 4, 3, 3], 2),
            (&[1, 6, 5], 3),
            (&[2, 4, 2, 3], 1),
            (&[2, 3, 2, 2], 3),
            (&[3, 4], 2),
        ];
        let mut worst = 0.0f64;
        for (k, &(s, groups)) in cases.iter().enumerate() {
            let x = randn(k as u64, s).map(|v| 2.0 * v + 0.5);
            let w = randn(100 + k as u64, &[s[1]]);
            let b = randn(200 + k as u64, &[s[1]]);
            let what = format!("group_norm {s:?} in {groups} groups");
            worst = worst.max(check(&what, &[x.clone(), w, b], |v| {
                v[0].group_norm(groups, Some(v[1]), Some(v[2]), 1e-5).tanh()
            }));
            worst = worst.max(check(&what, &[x], |v| {
                v[0].group_norm(groups, None, None, 1e-5).tanh()
            }));
        }
        eprintln!(
            "group_norm: {} configs, max |error| {worst:.3e}",
            2 * cases.len()
        );
    }

    #[test]
    fn groups_must_divide_the_channels() {
        let tape = crate::tape::Tape::<f32>::new();
        let x = tape.param(crate::tensor::Tensor::zeros([2, 6, 3]));
        let e = x
            .try_group_norm(4, None, None, 1e-5)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("group_norm") && e.contains("[2, 6, 3]") && e.contains("4 groups"),
            "{e}"
        );
    }
}
