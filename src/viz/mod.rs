//! Output a person would rather look at than read: feature-map grids and training curves as
//! PNG, and a progress bar for long loops.
//!
//! - [`font`]: the 5x7 bitmap font the pictures are labelled with.

pub mod font;
