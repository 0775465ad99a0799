//! `nn::BatchNorm2d`, `nn::LayerNorm` and `nn::GroupNorm`.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::nn::{Bound, ParamId, ParamStore};
use crate::ops::batch_norm::{BatchNormOptions, RunningStats};
use crate::tape::Var;
use crate::tensor::Tensor;

/// Adds `{name}.weight` (ones) and `{name}.bias` (zeros) of `shape`.
#[track_caller]
fn affine<T: Float>(store: &mut ParamStore<T>, name: &str, shape: &[usize]) -> (ParamId, ParamId) {
    (
        store.insert(format!("{name}.weight"), Tensor::ones(shape)),
        store.insert(format!("{name}.bias"), Tensor::zeros(shape)),
    )
}

/// Batch normalisation of `[N, C, H, W]` input, as PyTorch's `nn.BatchNorm2d`: the
/// parameters `{name}.weight` (ones) and `{name}.bias` (zeros), and the buffers
/// `{name}.running_mean` (zeros), `{name}.running_var` (ones) and
/// `{name}.num_batches_tracked` (0), each `[C]` but the last (`[]`).
///
/// In training mode ([`Bound::is_training`]) it normalises with the batch's statistics
/// and updates the running ones (momentum 0.1 by default); the new values reach the store
/// at the optimiser's step. In evaluation it normalises with the running statistics.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::nn::{BatchNorm2d, Optimizer, ParamStore, Sgd};
/// let mut store = ParamStore::<f64>::new();
/// let bn = BatchNorm2d::new(&mut store, "bn", 1);
/// let x = Tensor::from_vec(vec![1.0, 3.0], [2, 1, 1, 1]);
/// let tape = Tape::new();
/// let p = store.bind(&tape);
/// let loss = bn.forward(&p, tape.input(x)).square().sum();
/// let grads = p.grads(&tape.backward(loss));
/// Sgd::new(0.1).step(&mut store, &grads);
/// // Batch mean 2, unbiased variance 2: running 0.9 · 0 + 0.1 · 2 and 0.9 · 1 + 0.1 · 2.
/// assert!((store[bn.running_mean].item() - 0.2).abs() < 1e-12);
/// assert!((store[bn.running_var].item() - 1.1).abs() < 1e-12);
/// assert_eq!(store[bn.num_batches_tracked].item(), 1.0);
/// ```
#[derive(Clone, Debug)]
pub struct BatchNorm2d {
    /// `[C]`, ones at first.
    pub weight: ParamId,
    /// `[C]`, zeros at first.
    pub bias: ParamId,
    /// Buffer `[C]`, zeros at first.
    pub running_mean: ParamId,
    /// Buffer `[C]`, ones at first (unbiased variances).
    pub running_var: ParamId,
    /// Buffer `[]`: the number of training steps seen.
    pub num_batches_tracked: ParamId,
    /// Momentum and ε (`training` is ignored: the tape's mode decides).
    pub options: BatchNormOptions,
}

impl BatchNorm2d {
    /// A batch norm over `channels`, PyTorch's defaults (momentum 0.1, ε 1e-5).
    ///
    /// # Panics
    /// When a name is already taken in `store`.
    #[track_caller]
    pub fn new<T: Float>(store: &mut ParamStore<T>, name: &str, channels: usize) -> Self {
        let (weight, bias) = affine(store, name, &[channels]);
        BatchNorm2d {
            weight,
            bias,
            running_mean: store
                .add_buffer(format!("{name}.running_mean"), Tensor::zeros([channels])),
            running_var: store.add_buffer(format!("{name}.running_var"), Tensor::ones([channels])),
            num_batches_tracked: store
                .add_buffer(format!("{name}.num_batches_tracked"), Tensor::zeros([])),
            options: BatchNormOptions::new(),
        }
    }

    /// The normalised `x`; in training, the running statistics' update is recorded in `p`.
    ///
    /// Errors: those of [`Var::try_batch_norm`] (a shape other than `[N, C, ...]`, one value
    /// per channel in training); nothing is updated then.
    #[track_caller]
    pub fn try_forward<'t, T: Float>(
        &self,
        p: &Bound<'t, T>,
        x: Var<'t, T>,
    ) -> Result<Var<'t, T>, Error> {
        let training = p.is_training();
        let opts = self.options.training(training);
        let (mut mean, mut var) = (p.buffer(self.running_mean), p.buffer(self.running_var));
        let running = RunningStats {
            mean: &mut mean,
            var: &mut var,
        };
        let y = x.try_batch_norm(
            Some(p[self.weight]),
            Some(p[self.bias]),
            Some(running),
            opts,
        )?;
        if training {
            p.set_buffer(self.running_mean, mean);
            p.set_buffer(self.running_var, var);
            let seen = p.buffer(self.num_batches_tracked).map(|n| n + T::ONE);
            p.set_buffer(self.num_batches_tracked, seen);
        }
        Ok(y)
    }
}

/// Layer normalisation over the trailing axes `normalized_shape`, as PyTorch's
/// `nn.LayerNorm`: `{name}.weight` (ones) and `{name}.bias` (zeros) of that shape, ε 1e-5.
#[derive(Clone, Debug)]
pub struct LayerNorm {
    /// Of `normalized_shape`, ones at first.
    pub weight: ParamId,
    /// Of `normalized_shape`, zeros at first.
    pub bias: ParamId,
    /// The trailing axes normalised over.
    pub normalized_shape: Vec<usize>,
    /// Added to the variance.
    pub eps: f64,
}

impl LayerNorm {
    /// A layer norm over trailing axes of `normalized_shape`.
    ///
    /// # Panics
    /// When a name is already taken in `store`.
    #[track_caller]
    pub fn new<T: Float>(
        store: &mut ParamStore<T>,
        name: &str,
        normalized_shape: &[usize],
    ) -> Self {
        let (weight, bias) = affine(store, name, normalized_shape);
        LayerNorm {
            weight,
            bias,
            normalized_shape: normalized_shape.to_vec(),
            eps: 1e-5,
        }
    }

    /// The normalised `x` ([`Var::try_layer_norm`]).
    ///
    /// Errors: `x`'s trailing axes are not `normalized_shape`.
    #[track_caller]
    pub fn try_forward<'t, T: Float>(
        &self,
        p: &Bound<'t, T>,
        x: Var<'t, T>,
    ) -> Result<Var<'t, T>, Error> {
        let (w, b) = (Some(p[self.weight]), Some(p[self.bias]));
        x.try_layer_norm(&self.normalized_shape, w, b, self.eps)
    }
}

/// Group normalisation of `[N, C, ...]` input in `groups` channel groups, as PyTorch's
/// `nn.GroupNorm`: `{name}.weight` (ones) and `{name}.bias` (zeros) of `[C]`, ε 1e-5.
#[derive(Clone, Debug)]
pub struct GroupNorm {
    /// `[C]`, ones at first.
    pub weight: ParamId,
    /// `[C]`, zeros at first.
    pub bias: ParamId,
    /// The number of channel groups.
    pub groups: usize,
    /// Added to the variance.
    pub eps: f64,
}

impl GroupNorm {
    /// A group norm of `channels` in `groups` groups.
    ///
    /// # Panics
    /// When `groups` is 0 or does not divide `channels`, or a name is taken.
    #[track_caller]
    pub fn new<T: Float>(
        store: &mut ParamStore<T>,
        name: &str,
        groups: usize,
        channels: usize,
    ) -> Self {
        if groups == 0 || !channels.is_multiple_of(groups) {
            let why =
                format!("groups = {groups} must be at least 1 and divide the {channels} channels");
            Err::<(), _>(Error::bad_argument("GroupNorm::new", why)).or_panic();
        }
        let (weight, bias) = affine(store, name, &[channels]);
        GroupNorm {
            weight,
            bias,
            groups,
            eps: 1e-5,
        }
    }

    /// The normalised `x` ([`Var::try_group_norm`]).
    ///
    /// Errors: `x` is not `[N, C, ...]` with this layer's `C`.
    #[track_caller]
    pub fn try_forward<'t, T: Float>(
        &self,
        p: &Bound<'t, T>,
        x: Var<'t, T>,
    ) -> Result<Var<'t, T>, Error> {
        let (w, b) = (Some(p[self.weight]), Some(p[self.bias]));
        x.try_group_norm(self.groups, w, b, self.eps)
    }
}
