//! sqrt (not yet written).
