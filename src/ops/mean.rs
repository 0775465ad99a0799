//! mean (not yet written).
