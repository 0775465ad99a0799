//! bce (not yet written).
