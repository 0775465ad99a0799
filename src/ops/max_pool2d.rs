//! max_pool2d (not yet written).
