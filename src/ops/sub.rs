//! sub (not yet written).
