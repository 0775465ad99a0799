//! What the kernels run on: the shared thread pool, the buffer cache and per-thread scratch,
//! and the instruction-set tier chosen at run time. Nothing here knows of tensors' shapes or
//! of the tape; the kernels stand on it.

pub mod buffers;
pub mod isa;
mod peak;
pub(crate) mod scratch;
pub(crate) mod simd;
pub mod threads;

pub use isa::{Isa, cpu_description, isa, set_isa, widest_supported};
pub use peak::fma_peak_gflops;
