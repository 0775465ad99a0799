//! Output a person would rather look at than read: feature-map grids and training curves as
//! PNG, and a progress bar for long loops.
