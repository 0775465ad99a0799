//! permute (not yet written).
