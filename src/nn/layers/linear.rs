//! `nn::Linear`: `y = x · Wᵀ + b`.

use super::weight_and_bias;
use crate::error::Error;
use crate::float::Float;
use crate::nn::{Bound, ParamId, ParamStore};
use crate::tape::Var;
use rand::Rng;

/// A fully connected layer, as PyTorch's `nn.Linear`: `{name}.weight` of `[out, in]` and
/// `{name}.bias` of `[out]`, both drawn from `U(−1/√in, 1/√in)`.
#[derive(Clone, Debug)]
pub struct Linear {
    /// `[out_features, in_features]`.
    pub weight: ParamId,
    /// `[out_features]`, if the layer has a bias.
    pub bias: Option<ParamId>,
}

impl Linear {
    /// A layer `in_features → out_features` with a bias, added to `store` as `{name}.weight`
    /// and `{name}.bias`.
    ///
    /// # Panics
    /// When a name is already taken in `store`.
    #[track_caller]
    pub fn new<T: Float, R: Rng + ?Sized>(
        store: &mut ParamStore<T>,
        name: &str,
        in_features: usize,
        out_features: usize,
        rng: &mut R,
    ) -> Self {
        Self::make(store, name, in_features, out_features, true, rng)
    }

    /// [`Linear::new`] without a bias.
    ///
    /// # Panics
    /// When the name is already taken in `store`.
    #[track_caller]
    pub fn no_bias<T: Float, R: Rng + ?Sized>(
        store: &mut ParamStore<T>,
        name: &str,
        in_features: usize,
        out_features: usize,
        rng: &mut R,
    ) -> Self {
        Self::make(store, name, in_features, out_features, false, rng)
    }

    #[track_caller]
    fn make<T: Float, R: Rng + ?Sized>(
        store: &mut ParamStore<T>,
        name: &str,
        inp: usize,
        out: usize,
        bias: bool,
        rng: &mut R,
    ) -> Self {
        let (weight, bias) =
            weight_and_bias(store, name, &[out, inp], inp, bias.then_some(out), rng);
        Linear { weight, bias }
    }

    /// `x · Wᵀ + b` for `x` of `[..., in_features]` ([`Var::linear`]).
    ///
    /// Errors: `x`'s last axis is not `in_features`.
    #[track_caller]
    pub fn try_forward<'t, T: Float>(
        &self,
        p: &Bound<'t, T>,
        x: Var<'t, T>,
    ) -> Result<Var<'t, T>, Error> {
        x.try_linear(p[self.weight], self.bias.map(|b| p[b]))
    }
}
