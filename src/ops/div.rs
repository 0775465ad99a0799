//! div (not yet written).
