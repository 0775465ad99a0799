//! log (not yet written).
