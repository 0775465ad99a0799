//! narrow (not yet written).
