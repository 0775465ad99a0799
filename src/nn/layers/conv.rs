//! `nn::Conv2d` and `nn::ConvTranspose2d`.

use super::weight_and_bias;
use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::nn::{Bound, ParamId, ParamStore};
use crate::ops::Pair;
use crate::ops::conv_transpose2d::ConvTransposeOptions;
use crate::ops::conv2d::ConvOptions;
use crate::tape::Var;
use rand::Rng;

/// `Err` unless `groups` (at least 1) divides both channel counts.
#[track_caller]
fn check_groups(op: &'static str, inp: usize, out: usize, groups: usize) -> Result<(), Error> {
    if groups == 0 || !inp.is_multiple_of(groups) || !out.is_multiple_of(groups) {
        let why = format!(
            "groups = {groups} must be at least 1 and divide both the {inp} input and the {out} \
             output channels"
        );
        return Err(Error::bad_argument(op, why));
    }
    Ok(())
}

/// A 2-D convolution layer, as PyTorch's `nn.Conv2d`: `{name}.weight` of
/// `[out, in / groups, kh, kw]` and `{name}.bias` of `[out]`, both drawn from
/// `U(−1/√fan_in, 1/√fan_in)` with `fan_in = in / groups · kh · kw`.
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// `[out_channels, in_channels / groups, kh, kw]`.
    pub weight: ParamId,
    /// `[out_channels]`, if the layer has a bias.
    pub bias: Option<ParamId>,
    /// Stride, padding, dilation and groups.
    pub options: ConvOptions,
}

impl Conv2d {
    /// A convolution `in_channels → out_channels` with a `kernel` (one size, or
    /// `(kh, kw)`) and a bias, added to `store` as `{name}.weight` and `{name}.bias`.
    ///
    /// # Panics
    /// When `options.groups` does not divide both channel counts, or a name is taken.
    #[track_caller]
    pub fn new<T: Float, R: Rng + ?Sized>(
        store: &mut ParamStore<T>,
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: impl Into<Pair>,
        options: ConvOptions,
        rng: &mut R,
    ) -> Self {
        let k = kernel.into();
        Self::make(
            store,
            name,
            [in_channels, out_channels],
            k,
            options,
            true,
            rng,
        )
    }

    /// [`Conv2d::new`] without a bias (the usual choice before a batch norm).
    ///
    /// # Panics
    /// When `options.groups` does not divide both channel counts, or the name is taken.
    #[track_caller]
    pub fn no_bias<T: Float, R: Rng + ?Sized>(
        store: &mut ParamStore<T>,
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: impl Into<Pair>,
        options: ConvOptions,
        rng: &mut R,
    ) -> Self {
        let k = kernel.into();
        Self::make(
            store,
            name,
            [in_channels, out_channels],
            k,
            options,
            false,
            rng,
        )
    }

    #[track_caller]
    fn make<T: Float, R: Rng + ?Sized>(
        store: &mut ParamStore<T>,
        name: &str,
        [inp, out]: [usize; 2],
        Pair(kh, kw): Pair,
        options: ConvOptions,
        bias: bool,
        rng: &mut R,
    ) -> Self {
        let g = options.groups;
        check_groups("Conv2d::new", inp, out, g).or_panic();
        let shape = [out, inp / g, kh, kw];
        let (weight, bias) = weight_and_bias(
            store,
            name,
            &shape,
            inp / g * kh * kw,
            bias.then_some(out),
            rng,
        );
        Conv2d {
            weight,
            bias,
            options,
        }
    }

    /// The convolution of `x` (`[N, in, H, W]`), plus the bias.
    ///
    /// Errors: those of [`Var::try_conv2d`].
    #[track_caller]
    pub fn try_forward<'t, T: Float>(
        &self,
        p: &Bound<'t, T>,
        x: Var<'t, T>,
    ) -> Result<Var<'t, T>, Error> {
        match self.bias {
            Some(b) => x.try_conv2d_bias(p[self.weight], p[b], self.options),
            None => x.try_conv2d(p[self.weight], self.options),
        }
    }
}

/// A transposed 2-D convolution layer, as PyTorch's `nn.ConvTranspose2d`:
/// `{name}.weight` of `[in, out / groups, kh, kw]` and `{name}.bias` of `[out]`, both drawn
/// from `U(−1/√fan_in, 1/√fan_in)` with PyTorch's `fan_in = out / groups · kh · kw` (the
/// weight's second axis, as `_calculate_fan_in_and_fan_out` reads it).
#[derive(Clone, Debug)]
pub struct ConvTranspose2d {
    /// `[in_channels, out_channels / groups, kh, kw]`.
    pub weight: ParamId,
    /// `[out_channels]`, if the layer has a bias.
    pub bias: Option<ParamId>,
    /// Stride, padding, output padding, dilation and groups.
    pub options: ConvTransposeOptions,
}

impl ConvTranspose2d {
    /// A transposed convolution `in_channels → out_channels` with a `kernel` and a bias.
    ///
    /// # Panics
    /// When `options.groups` does not divide both channel counts, or a name is taken.
    #[track_caller]
    pub fn new<T: Float, R: Rng + ?Sized>(
        store: &mut ParamStore<T>,
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: impl Into<Pair>,
        options: ConvTransposeOptions,
        rng: &mut R,
    ) -> Self {
        let k = kernel.into();
        Self::make(
            store,
            name,
            [in_channels, out_channels],
            k,
            options,
            true,
            rng,
        )
    }

    /// [`ConvTranspose2d::new`] without a bias.
    ///
    /// # Panics
    /// When `options.groups` does not divide both channel counts, or the name is taken.
    #[track_caller]
    pub fn no_bias<T: Float, R: Rng + ?Sized>(
        store: &mut ParamStore<T>,
        name: &str,
        in_channels: usize,
        out_channels: usize,
        kernel: impl Into<Pair>,
        options: ConvTransposeOptions,
        rng: &mut R,
    ) -> Self {
        let k = kernel.into();
        Self::make(
            store,
            name,
            [in_channels, out_channels],
            k,
            options,
            false,
            rng,
        )
    }

    #[track_caller]
    fn make<T: Float, R: Rng + ?Sized>(
        store: &mut ParamStore<T>,
        name: &str,
        [inp, out]: [usize; 2],
        Pair(kh, kw): Pair,
        options: ConvTransposeOptions,
        bias: bool,
        rng: &mut R,
    ) -> Self {
        let g = options.groups;
        check_groups("ConvTranspose2d::new", inp, out, g).or_panic();
        let shape = [inp, out / g, kh, kw];
        let (weight, bias) = weight_and_bias(
            store,
            name,
            &shape,
            out / g * kh * kw,
            bias.then_some(out),
            rng,
        );
        ConvTranspose2d {
            weight,
            bias,
            options,
        }
    }

    /// The transposed convolution of `x` (`[N, in, H, W]`), plus the bias.
    ///
    /// Errors: those of [`Var::try_conv_transpose2d`].
    #[track_caller]
    pub fn try_forward<'t, T: Float>(
        &self,
        p: &Bound<'t, T>,
        x: Var<'t, T>,
    ) -> Result<Var<'t, T>, Error> {
        match self.bias {
            Some(b) => x.try_conv_transpose2d_bias(p[self.weight], p[b], self.options),
            None => x.try_conv_transpose2d(p[self.weight], self.options),
        }
    }
}
