//! exp (not yet written).
