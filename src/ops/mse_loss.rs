//! mse_loss (not yet written).
