//! Training utilities: named parameters with initialisers, optimisers, and saving and
//! loading parameters in safetensors format.
//!
//! - [`ParamStore`]: the model's parameters (and buffers) by name, in insertion order,
//!   with [`Init`]ialisers; [`ParamStore::bind`] puts them on a tape for one step.
//! - [`layers`]: [`Linear`], [`Conv2d`], [`ConvTranspose2d`], [`BatchNorm2d`],
//!   [`LayerNorm`], [`GroupNorm`], [`Dropout`], with PyTorch's names and initialisation.
//! - [`Optimizer`]: [`Sgd`] and [`Adam`], PyTorch's update rules, fed with the
//!   [`ParamGrads`] that [`Bound::grads`] takes off the tape.
//! - `io` (feature `safetensors`, on by default): `save_safetensors`,
//!   `load_safetensors`, `ParamStore::load_from`, files that PyTorch's `safetensors.torch`
//!   reads and writes (`parse_safetensors` for bytes in memory).
//!
//! A model is a set of [`ParamId`]s and a forward function over the bound handles:
//!
//! ```
//! use tapegrad::prelude::*;
//! use tapegrad::nn::{Adam, Bound, Init, Optimizer, ParamId, ParamStore};
//! use rand::SeedableRng;
//!
//! struct Mlp { w1: ParamId, b1: ParamId, w2: ParamId, b2: ParamId }
//!
//! impl Mlp {
//!     fn new(store: &mut ParamStore<f32>, rng: &mut impl rand::Rng) -> Self {
//!         Mlp {
//!             w1: store.add("fc1.weight", [2, 16], Init::HeUniform, rng), // [in, out]
//!             b1: store.add("fc1.bias", [16], Init::Zeros, rng),
//!             w2: store.add("fc2.weight", [16, 2], Init::GlorotUniform, rng),
//!             b2: store.add("fc2.bias", [2], Init::Zeros, rng),
//!         }
//!     }
//!     fn forward<'t>(&self, p: &Bound<'t, f32>, x: Var<'t, f32>) -> Var<'t, f32> {
//!         let h = (x.matmul(p[self.w1]) + p[self.b1]).relu();
//!         h.matmul(p[self.w2]) + p[self.b2]
//!     }
//! }
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let mut store = ParamStore::new();
//! let net = Mlp::new(&mut store, &mut rng);
//! let mut opt = Adam::new(0.05);
//! // XOR: not linearly separable, so the hidden layer has to learn.
//! let x = Tensor::from_vec(vec![0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0], [4, 2]);
//! let labels = [0, 1, 1, 0];
//!
//! let mut tape = Tape::new();
//! for _ in 0..300 {
//!     let p = store.bind(&tape);
//!     let loss = net.forward(&p, tape.input(x.clone())).cross_entropy(&labels).mean();
//!     let grads = p.grads(&tape.backward(loss));
//!     tape.clear(); // before the step, so that it updates the parameters in place
//!     opt.step(&mut store, &grads);
//! }
//!
//! let tape = Tape::inference();
//! let logits = net.forward(&store.bind(&tape), tape.input(x)).value();
//! for (n, &label) in labels.iter().enumerate() {
//!     let predicted = if logits[[n, 1]] > logits[[n, 0]] { 1 } else { 0 };
//!     assert_eq!(predicted, label);
//! }
//! ```

pub mod init;
#[cfg(feature = "safetensors")]
pub mod io;
pub mod layers;
// Used by `dist` alone; tested in every build.
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub(crate) mod layout;
pub mod optim;
pub mod params;
pub mod schedule;

pub use init::Init;
#[cfg(feature = "safetensors")]
pub use io::{IoError, IoErrorKind, load_safetensors, parse_safetensors, save_safetensors};
pub use layers::{BatchNorm2d, Conv2d, ConvTranspose2d, Dropout, GroupNorm, LayerNorm, Linear};
pub use optim::{Adam, AdamW, Optimizer, RmsProp, Sgd};
pub use params::{Bound, ParamGrads, ParamId, ParamStore};
pub use schedule::{
    CosineAnnealingLr, ExponentialLr, LinearLr, MultiStepLr, OneCycleLr, Schedule, Sequential,
    StepLr,
};
