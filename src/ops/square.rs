//! square (not yet written).
