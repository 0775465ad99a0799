//! powf (not yet written).
