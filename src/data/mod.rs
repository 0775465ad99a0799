//! Data: IDX files, folders of PNG images, shuffled mini-batches, and the generated shapes
//! data set.
