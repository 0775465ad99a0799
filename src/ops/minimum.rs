//! minimum (not yet written).
