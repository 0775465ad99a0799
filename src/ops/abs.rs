//! abs (not yet written).
