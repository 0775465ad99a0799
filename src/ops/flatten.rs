//! flatten (not yet written).
