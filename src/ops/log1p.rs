//! log1p (not yet written).
