//! conv2d (not yet written).
