//! pool (not yet written).
