//! conv (not yet written).
