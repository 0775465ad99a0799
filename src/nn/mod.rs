//! Training utilities: named parameters with initialisers, optimisers, and saving and
//! loading parameters in safetensors format.

pub mod init;
pub mod optim;
pub mod params;

pub use init::Init;
pub use optim::{Adam, Optimizer, Sgd};
pub use params::{Bound, ParamGrads, ParamId, ParamStore};
