//! # tapegrad
//!
//! Tape-based reverse-mode automatic differentiation with convolutional networks on top.
//!
//! A model is a plain forward expression over [`Var`] handles. Every op records a node on a
//! [`Tape`] holding its value and its vector-Jacobian product; [`Tape::backward`] walks the
//! tape once in reverse and returns the gradients.
//!
//! ```
//! use tapegrad::prelude::*;
//! let tape = Tape::<f64>::new();
//! let w = tape.param(Tensor::from_vec(vec![0.5, -0.3], [2, 1]));
//! let x = tape.input(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2]));
//! let loss = x.matmul(w).relu().sum();
//! let grads = tape.backward(loss);
//! assert_eq!(grads[w].to_vec(), vec![3.0, 4.0]); // only row 1 (3, 4) is positive
//! ```
//!
//! Layers, from the bottom: [`tensor`] (storage), [`runtime`] (threads, buffers, the
//! instruction-set tier), the kernels (hot loops, private to the crate), [`tape`] (nodes,
//! handles, backward), [`ops`] (one file per op with its VJP), [`gradcheck`](mod@gradcheck).
//! Errors: see [`error`] for which calls return `Result` and which panic. `docs/guide.md`
//! walks from a tensor to a training loop, gradient checks, custom ops, benchmarks and the
//! tape's memory.
//!
//! ## Features
//!
//! All on by default. Without them (`default-features = false`) the crate is the engine
//! alone: tensors, the tape, every op and kernel, gradient checking, and [`nn`]'s parameter
//! store, initialisers and optimisers, on rayon, gemm, smallvec and rand.
//!
//! | feature | gates | pulls in |
//! |---|---|---|
//! | `data` | the `data` module: IDX (plain or gzip), PNG-folder and npm-digits loaders, the shapes generator, `Dataset` and mini-batches | flate2, image (PNG), serde and serde_json |
//! | `viz` | the `viz` module's feature-map grids and training curves, written as PNG | image (PNG), plotters (bitmap backend, ab_glyph), dejavu (the font) |
//! | `progress` | `viz::Progress`, the terminal progress bar (the `viz` module then holds at least that) | indicatif |
//! | `safetensors` | `nn::io`: `save_safetensors`, `load_safetensors`, `ParamStore::save` and `ParamStore::load_from` | safetensors, serde_json |
//!
//! The `shapes` example needs `data`, `viz` and `progress`; `mnist` needs `data`, `progress`
//! and `safetensors`; `resnet` needs `data`, `viz` and `progress`; `autoencoder` and
//! `gradient_penalty` need `data` (and `viz` for the former).
#![deny(missing_docs)]

#[cfg(feature = "data")]
pub mod data;
#[cfg(feature = "mpi")]
pub mod dist;
pub mod error;
pub mod float;
pub mod functional;
pub mod gradcheck;
mod kernels;
mod math;
pub mod metrics;
pub mod nn;
pub mod ops;
pub mod runtime;
pub mod shape;
pub mod tape;
pub mod tensor;
#[cfg(any(feature = "viz", feature = "progress"))]
pub mod viz;

pub use error::{Error, ErrorKind};
pub use float::Float;
pub use gradcheck::{
    GradCheck, GradReport, GradcheckError, gradcheck, gradcheck_model, gradgradcheck,
};
/// The `rand` crate this one is built against. Whatever is random takes its generators
/// ([`Tensor::randn`], [`Tensor::rand`], [`Tensor::uniform`], `nn::Init::tensor`,
/// `nn::ParamStore::add`, [`Var::dropout`]), so a user needs no `rand` dependency of their
/// own, nor to keep its version in step with this crate's. `rand::SeedableRng` brings
/// `seed_from_u64` into scope; `rand::rngs::StdRng` is a seedable generator.
///
/// ```
/// use tapegrad::Tensor;
/// use tapegrad::rand::SeedableRng; // the trait that gives `seed_from_u64`
///
/// let mut rng = tapegrad::rand::rngs::StdRng::seed_from_u64(0);
/// let a = Tensor::<f32>::randn([2, 3], &mut rng);
/// let mut rng = tapegrad::rand::rngs::StdRng::seed_from_u64(0);
/// assert_eq!(Tensor::<f32>::randn([2, 3], &mut rng), a); // the same seed, the same draw
/// ```
pub use rand;
pub use runtime::{buffers, threads};
pub use shape::Shape;
pub use tape::{Gradients, Tape, Var, model};
pub use tensor::Tensor;

/// Everything a model needs, in one import.
pub mod prelude {
    pub use crate::error::{Error, ErrorKind};
    pub use crate::float::Float;
    pub use crate::gradcheck::{GradCheck, gradcheck, gradcheck_model, gradgradcheck};
    pub use crate::ops::Pair;
    pub use crate::ops::batch_norm::{BatchNormOptions, RunningStats};
    pub use crate::ops::conv_transpose2d::ConvTransposeOptions;
    pub use crate::ops::conv2d::ConvOptions;
    pub use crate::ops::max_pool2d::PoolOptions;
    pub use crate::ops::pad::PadMode;
    pub use crate::ops::upsample::Interpolation;
    pub use crate::shape::Shape;
    pub use crate::tape::{Gradients, Tape, Var, model};
    pub use crate::tensor::Tensor;
}

// The README's examples run as doctests, so the front page cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

// So do the guide's.
#[cfg(doctest)]
#[doc = include_str!("../docs/guide.md")]
pub struct GuideDoctests;
