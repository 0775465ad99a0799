//! maximum (not yet written).
