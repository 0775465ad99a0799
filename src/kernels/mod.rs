//! Hot loops only. Kernels work on slices and shapes; they know nothing of the tape, and
//! each fast path keeps a plain reference beside it that the tests compare it with.

pub mod conv;
pub mod elementwise;
pub mod gemm;
pub mod math;
pub mod norm;
mod out;
pub mod pool;
pub mod reduce;
pub mod resample;
mod sgemm;
pub mod window;
