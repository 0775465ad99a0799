//! Layers with PyTorch's parameter names, shapes and default initialisation, created into
//! a [`ParamStore`] under a name (`conv1` gives `conv1.weight`, `conv1.bias`), so that a
//! `state_dict` saved by PyTorch loads by name.
//!
//! A layer is a struct of [`ParamId`]s and settings; its `forward` runs on the store bound
//! to a tape ([`Bound`](crate::nn::Bound)). A model stays a plain function or closure over
//! its layers: no trait is needed.
//!
//! ```
//! use tapegrad::prelude::*;
//! use tapegrad::nn::{BatchNorm2d, Bound, Conv2d, Linear, ParamStore};
//! use rand::SeedableRng;
//!
//! struct Net { conv: Conv2d, bn: BatchNorm2d, fc: Linear }
//! impl Net {
//!     fn forward<'t>(&self, p: &Bound<'t, f32>, x: Var<'t, f32>) -> Var<'t, f32> {
//!         let h = self.bn.forward(p, self.conv.forward(p, x)).relu();
//!         self.fc.forward(p, h.adaptive_avg_pool2d(1).flatten())
//!     }
//! }
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let mut store = ParamStore::new();
//! let opts = ConvOptions::new().padding(1);
//! let net = Net {
//!     conv: Conv2d::no_bias(&mut store, "conv1", 1, 8, 3, opts, &mut rng),
//!     bn: BatchNorm2d::new(&mut store, "bn1", 8),
//!     fc: Linear::new(&mut store, "fc", 8, 10, &mut rng),
//! };
//! let names: Vec<&str> = store.iter().map(|(n, _)| n).collect();
//! assert_eq!(names, ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean",
//!                    "bn1.running_var", "bn1.num_batches_tracked", "fc.weight", "fc.bias"]);
//! let tape = Tape::new();
//! let p = store.bind(&tape);
//! let y = net.forward(&p, tape.input(Tensor::ones([2, 1, 5, 5])));
//! assert_eq!(y.shape(), [2, 10]);
//! ```

/// `forward`, the panicking form of a layer's `try_forward(p, x)`, for each layer named.
macro_rules! forward_or_panic {
    ($($layer:ident),*) => {$(
        impl $layer {
            #[doc = concat!("[`", stringify!($layer), "::try_forward`], panicking at the caller's line.")]
            #[track_caller]
            pub fn forward<'t, T: crate::float::Float>(
                &self,
                p: &crate::nn::Bound<'t, T>,
                x: crate::tape::Var<'t, T>,
            ) -> crate::tape::Var<'t, T> {
                crate::error::OrPanic::or_panic(self.try_forward(p, x))
            }
        }
    )*};
}

mod conv;
mod dropout;
mod linear;
mod norm;

pub use conv::{Conv2d, ConvTranspose2d};
pub use dropout::Dropout;
pub use linear::Linear;
pub use norm::{BatchNorm2d, GroupNorm, LayerNorm};

use crate::float::Float;
use crate::nn::{Init, ParamId, ParamStore};
use rand::Rng;

forward_or_panic!(
    Linear,
    Conv2d,
    ConvTranspose2d,
    BatchNorm2d,
    LayerNorm,
    GroupNorm
);

/// Adds `{name}.weight` of `shape` and, if `bias`, `{name}.bias` of `[bias_len]`, both
/// drawn from PyTorch's default for `fan_in`.
#[track_caller]
fn weight_and_bias<T: Float, R: Rng + ?Sized>(
    store: &mut ParamStore<T>,
    name: &str,
    shape: &[usize],
    fan_in: usize,
    bias: Option<usize>,
    rng: &mut R,
) -> (ParamId, Option<ParamId>) {
    let init = default_uniform(fan_in);
    let weight = store.add(format!("{name}.weight"), shape, init, rng);
    (
        weight,
        bias.map(|n| store.add(format!("{name}.bias"), [n], init, rng)),
    )
}

/// PyTorch's default for weights and biases of linear and convolution layers:
/// `U(−1/√fan_in, 1/√fan_in)` (`kaiming_uniform_(a=√5)` gives the weight that bound too).
fn default_uniform(fan_in: usize) -> Init {
    let bound = if fan_in > 0 {
        1.0 / (fan_in as f64).sqrt()
    } else {
        0.0
    };
    Init::Uniform {
        lo: -bound,
        hi: bound,
    }
}
