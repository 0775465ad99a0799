//! log_softmax (not yet written).
