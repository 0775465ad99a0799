//! Training utilities: named parameters with initialisers, optimisers, and saving and
//! loading parameters in safetensors format.

pub mod init;

pub use init::Init;
