//! tanh (not yet written).
