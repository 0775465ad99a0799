//! Starting every rank from the same model: the ranks' stores are compared entry by entry,
//! then rank 0's values are broadcast.

use super::{Dist, Equivalence};
use crate::error::Error;
use crate::float::Float;
use crate::nn::ParamStore;
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

/// A store as text: its element type on the first line, then one line per entry,
/// `name<TAB>shape<TAB>kind`.
fn describe<T: Float>(store: &ParamStore<T>) -> String {
    let mut text = format!("{}\n", T::NAME);
    for id in store.ids() {
        let kind = if store.is_buffer(id) {
            "buffer"
        } else {
            "parameter"
        };
        text += &format!("{}\t{}\t{kind}\n", store.name(id), store[id].shape());
    }
    text
}

/// The first way in which a rank's store (as [`describe`]d) differs from rank 0's, or
/// `None` when every rank holds rank 0's.
fn first_difference(texts: &[String]) -> Option<String> {
    let lines: Vec<Vec<&str>> = texts.iter().map(|t| t.lines().collect()).collect();
    let entry = |line: &str| {
        let f: Vec<&str> = line.split('\t').collect();
        format!("{:?} {} ({})", f[0], f[1], f[2])
    };
    for (rank, other) in lines.iter().enumerate().skip(1) {
        let root = &lines[0];
        if root[0] != other[0] {
            return Some(format!(
                "rank 0's parameters are {}, rank {rank}'s {}",
                root[0], other[0]
            ));
        }
        let (a, b) = (&root[1..], &other[1..]);
        if let Some(i) = (0..a.len().min(b.len())).find(|&i| a[i] != b[i]) {
            return Some(format!(
                "entry {i} is {} on rank 0 but {} on rank {rank}",
                entry(a[i]),
                entry(b[i])
            ));
        }
        if a.len() != b.len() {
            let (more, longer) = if a.len() > b.len() { (0, a) } else { (rank, b) };
            return Some(format!(
                "rank 0 holds {} entries, rank {rank} {}; the first one beyond is {} on rank {more}",
                a.len(),
                b.len(),
                entry(longer[a.len().min(b.len())])
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(stores: &[&[(&str, &str, &str)]]) -> Vec<String> {
        stores
            .iter()
            .map(|s| {
                let mut t = String::from("f32\n");
                for (n, sh, k) in *s {
                    t += &format!("{n}\t{sh}\t{k}\n");
                }
                t
            })
            .collect()
    }

    #[test]
    fn the_first_difference_is_named_with_its_ranks() {
        let a: &[_] = &[("w", "[2, 3]", "parameter"), ("b", "[3]", "parameter")];
        let shape: &[_] = &[("w", "[2, 4]", "parameter"), ("b", "[3]", "parameter")];
        let more: &[_] = &[
            ("w", "[2, 3]", "parameter"),
            ("b", "[3]", "parameter"),
            ("bn.running_mean", "[3]", "buffer"),
        ];
        assert_eq!(first_difference(&texts(&[a, a, a])), None);
        assert_eq!(
            first_difference(&texts(&[a, a, shape])).unwrap(),
            "entry 0 is \"w\" [2, 3] (parameter) on rank 0 but \"w\" [2, 4] (parameter) on rank 2"
        );
        assert_eq!(
            first_difference(&texts(&[a, more])).unwrap(),
            "rank 0 holds 2 entries, rank 1 3; the first one beyond is \"bn.running_mean\" [3] \
             (buffer) on rank 1"
        );
        assert_eq!(
            first_difference(&texts(&[more, a])).unwrap(),
            "rank 0 holds 3 entries, rank 1 2; the first one beyond is \"bn.running_mean\" [3] \
             (buffer) on rank 0"
        );
        let mut wide = texts(&[a, a]);
        wide[1] = wide[1].replacen("f32", "f64", 1);
        assert_eq!(
            first_difference(&wide).unwrap(),
            "rank 0's parameters are f32, rank 1's f64"
        );
    }
}
