//! A store's layout as text, and the first difference between several: how the ranks of
//! `tapegrad::dist` (feature `mpi`) find out that they hold different models. Plain logic,
//! so that its tests run in every build.

use crate::float::Float;
use crate::nn::ParamStore;

/// A store as text: its element type on the first line, then one line per entry,
/// `name<TAB>shape<TAB>kind`.
pub(crate) fn describe<T: Float>(store: &ParamStore<T>) -> String {
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
pub(crate) fn first_difference(texts: &[String]) -> Option<String> {
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
    fn a_store_is_described_entry_by_entry() {
        let mut store = ParamStore::<f64>::new();
        store.insert("w", crate::tensor::Tensor::zeros([2, 3]));
        store.add_buffer("bn.running_mean", crate::tensor::Tensor::zeros([3]));
        assert_eq!(
            describe(&store),
            "f64\nw\t[2, 3]\tparameter\nbn.running_mean\t[3]\tbuffer\n"
        );
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
