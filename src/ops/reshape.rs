//! reshape (not yet written).
