//! broadcast_to (not yet written).
