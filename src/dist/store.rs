//! Starting every rank from the same model: the ranks' stores are compared entry by entry,
//! then rank 0's values are broadcast.

use super::{Dist, Equivalence};
use crate::error::Error;
use crate::float::Float;
use crate::nn::ParamStore;
use crate::nn::layout::{describe, first_difference};
use mpi::topology::Communicator;
use mpi::traits::{CommunicatorCollectives, Root};

impl Dist {
    /// Makes every rank's `store` equal to rank 0's: parameters and buffers (batch-norm
    /// statistics) alike, so that every rank starts identical.
    ///
    /// First the ranks compare their stores (element type, then each entry's name, shape
    /// and kind, in order). Errors, on every rank alike and before anything is copied: the
    /// ranks disagree on the model; the message names the first difference and the ranks
    /// that differ.
    #[track_caller]
    pub fn broadcast_store<T: Float + Equivalence>(
        &self,
        store: &mut ParamStore<T>,
    ) -> Result<(), Error> {
        self.check_same_model(store)?;
        let mut flat: Vec<T> = store.iter().flat_map(|(_, t)| t.data()).copied().collect();
        // One broadcast per bucket: MPI counts are C ints.
        let step = (self.bucket_bytes / size_of::<T>()).clamp(1, i32::MAX as usize);
        let root = self.world.process_at_rank(0);
        self.timed(|| {
            for chunk in flat.chunks_mut(step) {
                root.broadcast_into(chunk);
            }
        });
        let mut rest = &flat[..];
        for t in store.tensors_mut() {
            let (head, tail) = rest.split_at(t.numel());
            t.data_mut().copy_from_slice(head);
            rest = tail;
        }
        Ok(())
    }

    /// Checks that every rank holds the same model: element type, and each entry's name,
    /// shape and kind (parameter or buffer) in store order. [`Dist::broadcast_store`]
    /// does this first.
    ///
    /// Errors, on every rank alike: the first difference, naming the ranks and entries.
    #[track_caller]
    pub fn check_same_model<T: Float>(&self, store: &ParamStore<T>) -> Result<(), Error> {
        let mine = describe(store);
        let len = [mine.len() as u64];
        let mut lens = vec![0u64; self.size];
        self.timed(|| self.world.all_gather_into(&len[..], &mut lens[..]));
        let width = lens.iter().copied().max().unwrap_or(0) as usize;
        let mut padded = mine.into_bytes();
        padded.resize(width, 0);
        let mut all = vec![0u8; width * self.size];
        self.timed(|| self.world.all_gather_into(&padded[..], &mut all[..]));
        let texts: Vec<String> = all
            .chunks_exact(width.max(1))
            .zip(&lens)
            .map(|(bytes, &n)| String::from_utf8_lossy(&bytes[..n as usize]).into_owned())
            .collect();
        match first_difference(&texts) {
            None => Ok(()),
            Some(why) => Err(Error::bad_argument(
                "dist::broadcast_store",
                format!("the ranks hold different models: {why}"),
            )),
        }
    }
}
