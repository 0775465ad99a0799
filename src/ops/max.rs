//! max (not yet written).
