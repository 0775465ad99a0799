//! neg (not yet written).
