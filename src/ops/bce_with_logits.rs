//! bce_with_logits (not yet written).
