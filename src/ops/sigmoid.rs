//! sigmoid (not yet written).
