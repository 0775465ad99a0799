//! `Dataset<T>`: labelled images in one `[N, C, H, W]` tensor, with splitting, subsets and
//! shuffled mini-batches.

use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::shape::Shape;
use crate::tensor::Tensor;
use rand::Rng;
use rand::seq::SliceRandom;

/// Labelled images: an `[N, C, H, W]` tensor, one class index per image, and the class
/// names.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::data::Dataset;
/// let images = Tensor::<f32>::zeros([4, 1, 2, 2]);
/// let ds = Dataset::new(images, vec![0, 1, 1, 0], vec!["no".into(), "yes".into()]);
/// assert_eq!(ds.len(), 4);
/// assert_eq!(ds.class_counts(), vec![2, 2]);
/// assert_eq!(ds.take(3).labels(), &[0, 1, 1]);
/// ```
#[derive(Clone, Debug)]
pub struct Dataset<T: Float> {
    images: Tensor<T>,
    labels: Vec<usize>,
    class_names: Vec<String>,
}

/// How [`Dataset::split`] divides the samples: a fraction of them, or a count, for the
/// first (training) part.
///
/// Converts from `f64` (a fraction in `[0, 1]`, rounded to the nearest count) and from
/// `usize` (a count), so `ds.split(0.8, rng)` and `ds.split(50_000usize, rng)` both work.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SplitAt {
    /// This fraction of the samples, rounded to the nearest whole sample.
    Fraction(f64),
    /// This many samples.
    Count(usize),
}

impl From<f64> for SplitAt {
    fn from(f: f64) -> Self {
        SplitAt::Fraction(f)
    }
}

impl From<usize> for SplitAt {
    fn from(n: usize) -> Self {
        SplitAt::Count(n)
    }
}

/// One mini-batch: `[B, C, H, W]` images and their `B` labels.
#[derive(Clone, Debug)]
pub struct Batch<T: Float> {
    /// The images, `[B, C, H, W]`.
    pub images: Tensor<T>,
    /// The class index of each image.
    pub labels: Vec<usize>,
}

impl<T: Float> Batch<T> {
    /// The number of samples in the batch.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the batch holds no sample.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

impl<T: Float> Dataset<T> {
    /// A data set from `[N, C, H, W]` images, `N` labels and the class names; `Err` when the
    /// images are not rank 4, the label count is not `N`, or a label is not below the
    /// number of classes.
    #[track_caller]
    pub fn try_new(
        images: Tensor<T>,
        labels: Vec<usize>,
        class_names: Vec<String>,
    ) -> Result<Self, Error> {
        if images.rank() != 4 {
            return Err(Error::bad_shape(
                "Dataset::new",
                images.shape(),
                "images must be [N, C, H, W]",
            ));
        }
        let n = images.shape().dims()[0];
        if labels.len() != n {
            return Err(Error::bad_argument(
                "Dataset::new",
                format!(
                    "images of shape {} hold {n} samples but {} labels were given",
                    images.shape(),
                    labels.len()
                ),
            ));
        }
        if let Some((i, &l)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &l)| l >= class_names.len())
        {
            return Err(Error::bad_argument(
                "Dataset::new",
                format!(
                    "label {l} of sample {i} is not below the number of classes, {}",
                    class_names.len()
                ),
            ));
        }
        Ok(Dataset {
            images,
            labels,
            class_names,
        })
    }

    /// A data set from `[N, C, H, W]` images, `N` labels and the class names.
    ///
    /// # Panics
    /// When [`Dataset::try_new`] would return `Err`.
    #[track_caller]
    pub fn new(images: Tensor<T>, labels: Vec<usize>, class_names: Vec<String>) -> Self {
        Self::try_new(images, labels, class_names).or_panic()
    }

    /// The images, `[N, C, H, W]`.
    pub fn images(&self) -> &Tensor<T> {
        &self.images
    }

    /// The class index of each image.
    pub fn labels(&self) -> &[usize] {
        &self.labels
    }

    /// The class names; a label indexes into them.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// The number of classes.
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// The number of samples, `N`.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the data set holds no sample.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The shape of one sample, `[C, H, W]`.
    pub fn sample_shape(&self) -> Shape {
        Shape::from(&self.images.shape().dims()[1..])
    }

    /// How many samples each class has, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.num_classes()];
        for &l in &self.labels {
            c[l] += 1;
        }
        c
    }

    /// The same samples under other class names (Fashion-MNIST's names for the labels
    /// `0..10` of an IDX file, say).
    ///
    /// # Panics
    /// When a label is not below `names.len()`.
    #[track_caller]
    pub fn with_class_names(self, names: Vec<String>) -> Self {
        Self::try_new(self.images, self.labels, names).or_panic()
    }

    /// The images, the labels and the class names.
    pub fn into_parts(self) -> (Tensor<T>, Vec<usize>, Vec<String>) {
        (self.images, self.labels, self.class_names)
    }

    fn sample_len(&self) -> usize {
        self.images.shape().dims()[1..].iter().product()
    }

    /// Copies the samples at `indices`, in that order, into one `[indices.len(), C, H, W]`
    /// tensor and a label list; one slice copy per sample.
    fn gather(&self, indices: &[usize]) -> (Tensor<T>, Vec<usize>) {
        let row = self.sample_len();
        let src = self.images.data();
        let mut data = Vec::with_capacity(indices.len() * row);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            data.extend_from_slice(&src[i * row..(i + 1) * row]);
            labels.push(self.labels[i]);
        }
        let mut dims = self.images.shape().dims().to_vec();
        dims[0] = indices.len();
        (Tensor::from_vec(data, dims), labels)
    }

    /// The samples at `indices`, in that order (repeats allowed), with the same classes.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::data::Dataset;
    /// let images = Tensor::<f32>::arange(3).reshape([3, 1, 1, 1]);
    /// let ds = Dataset::new(images, vec![0, 1, 2], vec!["a".into(), "b".into(), "c".into()]);
    /// let s = ds.subset(&[2, 0]);
    /// assert_eq!(s.images().to_vec(), vec![2.0, 0.0]);
    /// assert_eq!(s.labels(), &[2, 0]);
    /// ```
    ///
    /// # Panics
    /// When an index is not below [`Dataset::len`].
    #[track_caller]
    pub fn subset(&self, indices: &[usize]) -> Self {
        if let Some(&i) = indices.iter().find(|&&i| i >= self.len()) {
            panic!(
                "subset: index {i} is out of range for a data set of {} samples",
                self.len()
            );
        }
        let (images, labels) = self.gather(indices);
        Dataset {
            images,
            labels,
            class_names: self.class_names.clone(),
        }
    }

    /// The mean and the standard deviation (over `N`, not `N − 1`) of every value of the
    /// images, in `f64`: the statistics to standardise inputs with, taken on the training
    /// set and applied to both sets with [`Dataset::normalized`]. `(0, 0)` when empty.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::data::Dataset;
    /// let images = Tensor::from_vec(vec![1.0f32, 3.0, 1.0, 3.0], [4, 1, 1, 1]);
    /// let ds = Dataset::new(images, vec![0; 4], vec!["a".into()]);
    /// assert_eq!(ds.pixel_stats(), (2.0, 1.0));
    /// ```
    pub fn pixel_stats(&self) -> (f64, f64) {
        let v = self.images.data();
        if v.is_empty() {
            return (0.0, 0.0);
        }
        let n = v.len() as f64;
        let mean = v.iter().map(|x| x.to_f64()).sum::<f64>() / n;
        let var = v.iter().map(|x| (x.to_f64() - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    /// The data set with every image value `x` replaced by `(x − mean) / std`, as
    /// torchvision's `Normalize(mean, std)`; labels and class names unchanged. `Err` when
    /// `mean` is not finite or `std` is not a positive finite number.
    ///
    /// ```
    /// use tapegrad::prelude::*;
    /// use tapegrad::data::Dataset;
    /// let images = Tensor::from_vec(vec![1.0f32, 3.0], [2, 1, 1, 1]);
    /// let ds = Dataset::new(images, vec![0, 0], vec!["a".into()]);
    /// let (mean, std) = ds.pixel_stats();
    /// assert_eq!(ds.try_normalized(mean, std)?.images().to_vec(), vec![-1.0, 1.0]);
    /// assert!(ds.try_normalized(mean, 0.0).is_err());
    /// # Ok::<(), tapegrad::Error>(())
    /// ```
    #[track_caller]
    pub fn try_normalized(&self, mean: f64, std: f64) -> Result<Self, Error> {
        if !(mean.is_finite() && std.is_finite() && std > 0.0) {
            return Err(Error::bad_argument(
                "Dataset::normalized",
                format!(
                    "mean must be finite and std a positive finite number, got mean {mean} and \
                     std {std} (pixel_stats of a data set whose images are all equal give std 0)"
                ),
            ));
        }
        let (m, inv) = (T::from_f64(mean), T::from_f64(1.0 / std));
        Ok(Dataset {
            images: self.images.map(|x| (x - m) * inv),
            labels: self.labels.clone(),
            class_names: self.class_names.clone(),
        })
    }

    /// [`Dataset::try_normalized`], panicking on `Err`.
    ///
    /// # Panics
    /// When `mean` is not finite or `std` is not a positive finite number.
    #[track_caller]
    pub fn normalized(&self, mean: f64, std: f64) -> Self {
        self.try_normalized(mean, std).or_panic()
    }

    /// The first `n` samples, or all of them when there are fewer (as `Iterator::take`).
    pub fn take(&self, n: usize) -> Self {
        let n = n.min(self.len());
        let row = self.sample_len();
        let mut dims = self.images.shape().dims().to_vec();
        dims[0] = n;
        Dataset {
            images: Tensor::from_vec(self.images.data()[..n * row].to_vec(), dims),
            labels: self.labels[..n].to_vec(),
            class_names: self.class_names.clone(),
        }
    }

    /// Shuffles the samples with `rng` and cuts them in two: `(train, test)`, the first part
    /// holding a fraction (`0.8`) or a count (`50_000usize`) of them.
    ///
    /// The same seed gives the same split. Classes are not stratified: each part's class
    /// balance is that of a random sample (`torch.utils.data.random_split` does the same).
    ///
    /// ```
    /// use rand::SeedableRng;
    /// use tapegrad::data::generate_shapes;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    /// let ds = generate_shapes::<f32>(10, 2, &mut rng);
    /// let (a, b) = ds.split(7usize, &mut rng);
    /// assert_eq!((a.len(), b.len()), (7, 3));
    /// ```
    ///
    /// # Panics
    /// When the fraction is outside `[0, 1]` or the count exceeds [`Dataset::len`].
    #[track_caller]
    pub fn split<R: Rng + ?Sized>(&self, at: impl Into<SplitAt>, rng: &mut R) -> (Self, Self) {
        let n = self.len();
        let k = match at.into() {
            SplitAt::Fraction(f) => {
                assert!(
                    (0.0..=1.0).contains(&f),
                    "split: fraction {f} is outside [0, 1]"
                );
                (f * n as f64).round() as usize
            }
            SplitAt::Count(k) => {
                assert!(
                    k <= n,
                    "split: cannot take {k} samples from a data set of {n}"
                );
                k
            }
        };
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(rng);
        (self.subset(&order[..k]), self.subset(&order[k..]))
    }

    /// Mini-batches of `batch_size` samples covering every sample once; the last batch
    /// holds the remainder when `batch_size` does not divide [`Dataset::len`] (as PyTorch's
    /// `DataLoader` with `drop_last=False`).
    ///
    /// With `Some(rng)` the order is a fresh permutation drawn from `rng`, so successive
    /// epochs differ and a seeded rng repeats them; with `None` it is the stored order.
    ///
    /// ```
    /// use rand::SeedableRng;
    /// use tapegrad::data::generate_shapes;
    /// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    /// let ds = generate_shapes::<f32>(10, 2, &mut rng);
    /// let sizes: Vec<usize> = ds.batches(4, None).map(|b| b.len()).collect();
    /// assert_eq!(sizes, vec![4, 4, 2]);
    /// for epoch in 0..2 {
    ///     for b in ds.batches(4, Some(&mut rng)) {
    ///         assert_eq!(b.images.shape().dims(), &[b.len(), 1, 28, 28]);
    ///     }
    /// }
    /// ```
    ///
    /// # Panics
    /// When `batch_size` is 0.
    #[track_caller]
    pub fn batches(&self, batch_size: usize, shuffle: Option<&mut dyn Rng>) -> Batches<'_, T> {
        assert!(batch_size > 0, "batches: batch_size must be at least 1");
        let mut order: Vec<usize> = (0..self.len()).collect();
        if let Some(rng) = shuffle {
            order.shuffle(rng);
        }
        Batches {
            ds: self,
            order,
            batch_size,
            pos: 0,
            shard: Shard::WHOLE,
        }
    }

    /// This rank's part of every mini-batch when `shard.count` processes train on one
    /// global batch of `batch_size` (data parallelism, as in `tapegrad::dist`).
    ///
    /// Every rank shuffles with the same seed, so they draw one global permutation per
    /// epoch; each global batch is cut into `shard.count` contiguous parts whose sizes differ
    /// by at most one (see [`Shard::range`]), and this rank gets part `shard.rank`. Across
    /// the ranks an epoch covers the data set exactly once: nothing dropped, nothing
    /// repeated. With one rank this is [`Dataset::batches`] with the same order.
    ///
    /// Every rank gets the same number of batches. A part can be empty only when a global
    /// batch (the last one) holds fewer images than there are ranks.
    ///
    /// ```
    /// use tapegrad::data::{Shard, generate_shapes};
    /// use rand::SeedableRng;
    /// let ds = generate_shapes::<f32>(10, 2, &mut rand::rngs::StdRng::seed_from_u64(0));
    /// let sizes = |rank| -> Vec<usize> {
    ///     let shard = Shard::new(rank, 2).unwrap();
    ///     ds.batches_sharded(4, shard, None).map(|b| b.len()).collect()
    /// };
    /// assert_eq!(sizes(0), vec![2, 2, 1]); // global batches of 4, 4 and 2
    /// assert_eq!(sizes(1), vec![2, 2, 1]);
    /// ```
    ///
    /// # Panics
    /// When `batch_size` is 0.
    #[track_caller]
    pub fn batches_sharded(
        &self,
        batch_size: usize,
        shard: Shard,
        shuffle: Option<&mut dyn Rng>,
    ) -> Batches<'_, T> {
        assert!(
            batch_size > 0,
            "batches_sharded: batch_size must be at least 1"
        );
        Batches {
            shard,
            ..self.batches(batch_size, shuffle)
        }
    }
}

/// One process's part of work split across `count` processes (ranks): which part of a
/// global batch or of a test set is its own. Made by [`Shard::new`] (or by
/// `tapegrad::dist::Dist::shard` from the MPI environment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    rank: usize,
    count: usize,
}

impl Shard {
    /// The whole: one rank of one.
    pub const WHOLE: Shard = Shard { rank: 0, count: 1 };

    /// Part `rank` of `count`. Errors: `count` is 0 or `rank` is not below it.
    #[track_caller]
    pub fn new(rank: usize, count: usize) -> Result<Shard, Error> {
        if rank >= count {
            return Err(Error::bad_argument(
                "Shard::new",
                format!("rank {rank} is not below the number of ranks, {count}"),
            ));
        }
        Ok(Shard { rank, count })
    }

    /// This part's index.
    pub fn rank(self) -> usize {
        self.rank
    }

    /// How many parts there are.
    pub fn count(self) -> usize {
        self.count
    }

    /// This part of `0..len`: contiguous, the first `len % count` parts one longer than the
    /// others, all parts together covering `0..len` once.
    ///
    /// ```
    /// use tapegrad::data::Shard;
    /// let parts: Vec<_> = (0..3).map(|r| Shard::new(r, 3).unwrap().range(10)).collect();
    /// assert_eq!(parts, vec![0..4, 4..7, 7..10]);
    /// ```
    pub fn range(self, len: usize) -> std::ops::Range<usize> {
        let (base, extra) = (len / self.count, len % self.count);
        let start = self.rank * base + self.rank.min(extra);
        start..start + base + usize::from(self.rank < extra)
    }
}

/// The iterator of [`Dataset::batches`].
#[derive(Debug)]
pub struct Batches<'a, T: Float> {
    ds: &'a Dataset<T>,
    order: Vec<usize>,
    batch_size: usize,
    pos: usize,
    /// Which part of each batch is this iterator's ([`Dataset::batches_sharded`]).
    shard: Shard,
}

impl<T: Float> Iterator for Batches<'_, T> {
    type Item = Batch<T>;

    fn next(&mut self) -> Option<Batch<T>> {
        if self.pos >= self.order.len() {
            return None;
        }
        let end = (self.pos + self.batch_size).min(self.order.len());
        let part = self.shard.range(end - self.pos);
        let global = &self.order[self.pos..end];
        let (images, labels) = self.ds.gather(&global[part]);
        self.pos = end;
        Some(Batch { images, labels })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.order.len() - self.pos).div_ceil(self.batch_size);
        (n, Some(n))
    }
}

impl<T: Float> ExactSizeIterator for Batches<'_, T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn normalized_images_have_zero_mean_and_unit_std() {
        let ds = numbered(5);
        let (mean, std) = ds.pixel_stats();
        assert_eq!(mean, 2.0);
        assert!((std - 2f64.sqrt()).abs() < 1e-15);
        let n = ds.normalized(mean, std);
        let (m2, s2) = n.pixel_stats();
        assert!(m2.abs() < 1e-15 && (s2 - 1.0).abs() < 1e-15, "{m2} {s2}");
        assert_eq!(n.labels(), ds.labels());
        assert_eq!(n.images().shape(), ds.images().shape());
        assert!((n.images().data()[6] - (1.0 - 2.0) / std).abs() < 1e-15);
        for (m, s) in [
            (f64::NAN, 1.0),
            (0.0, 0.0),
            (0.0, -1.0),
            (0.0, f64::INFINITY),
        ] {
            let e = ds.try_normalized(m, s).unwrap_err().to_string();
            assert!(e.contains("Dataset::normalized"), "{e}");
        }
    }

    /// Sample `i` is filled with the value `i`, so a batch tells which samples it holds.
    fn numbered(n: usize) -> Dataset<f64> {
        let images = Tensor::from_fn([n, 2, 3, 1], |k| (k / 6) as f64);
        let labels = (0..n).map(|i| i % 3).collect();
        Dataset::new(images, labels, vec!["a".into(), "b".into(), "c".into()])
    }

    fn ids(b: &Batch<f64>) -> Vec<usize> {
        let ids: Vec<usize> = b.images.data().chunks(6).map(|c| c[0] as usize).collect();
        for (c, &i) in b.images.data().chunks(6).zip(&ids) {
            assert!(c.iter().all(|&x| x == i as f64), "sample copied whole");
        }
        ids
    }

    fn epoch(ds: &Dataset<f64>, bs: usize, rng: Option<&mut dyn Rng>) -> Vec<usize> {
        let mut seen = vec![];
        for b in ds.batches(bs, rng) {
            let i = ids(&b);
            assert_eq!(b.labels, i.iter().map(|i| i % 3).collect::<Vec<_>>());
            seen.extend(i);
        }
        seen
    }

    #[test]
    fn batches_cover_every_sample_once_per_epoch() {
        let ds = numbered(23);
        for bs in [1, 4, 5, 23, 100] {
            let sizes: Vec<usize> = ds.batches(bs, None).map(|b| b.len()).collect();
            let mut expect = vec![bs.min(23); 23 / bs.min(23)];
            if !23_usize.is_multiple_of(bs.min(23)) {
                expect.push(23 % bs);
            }
            assert_eq!(sizes, expect, "batch size {bs}");
            assert_eq!(ds.batches(bs, None).len(), expect.len());
            assert_eq!(epoch(&ds, bs, None), (0..23).collect::<Vec<_>>());

            let mut rng = StdRng::seed_from_u64(bs as u64);
            let mut sorted = epoch(&ds, bs, Some(&mut rng));
            sorted.sort();
            assert_eq!(sorted, (0..23).collect::<Vec<_>>(), "batch size {bs}");
        }
    }

    /// The ranks' parts of each shuffled global batch, put back side by side in rank order,
    /// are that batch of the unsharded shuffle with the same seed: one global permutation,
    /// every sample once per epoch, the same number of steps on every rank.
    #[test]
    fn sharded_batches_are_the_global_batches_cut_in_rank_order() {
        let ds = numbered(23);
        for (bs, ranks) in [(5, 2), (4, 3), (23, 4), (2, 3), (7, 1)] {
            let seed = (bs * 10 + ranks) as u64;
            let global: Vec<Vec<usize>> = ds
                .batches(bs, Some(&mut StdRng::seed_from_u64(seed)))
                .map(|b| ids(&b))
                .collect();
            let parts: Vec<Vec<Vec<usize>>> = (0..ranks)
                .map(|r| {
                    let shard = Shard::new(r, ranks).unwrap();
                    let mut rng = StdRng::seed_from_u64(seed);
                    let it = ds.batches_sharded(bs, shard, Some(&mut rng));
                    assert_eq!(it.len(), global.len());
                    it.map(|b| ids(&b)).collect()
                })
                .collect();
            for (step, whole) in global.iter().enumerate() {
                let joined: Vec<usize> = parts.iter().flat_map(|p| p[step].clone()).collect();
                assert_eq!(&joined, whole, "batch {bs}, {ranks} ranks, step {step}");
                let sizes: Vec<usize> = parts.iter().map(|p| p[step].len()).collect();
                let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
                assert!(hi - lo <= 1, "parts differ by at most one: {sizes:?}");
            }
        }
        let e = Shard::new(2, 2).unwrap_err();
        assert!(
            e.to_string()
                .contains("rank 2 is not below the number of ranks, 2"),
            "{e}"
        );
    }

    #[test]
    fn shuffled_differently_per_epoch_same_for_same_seed() {
        let ds = numbered(50);
        let mut r1 = StdRng::seed_from_u64(7);
        let mut r2 = StdRng::seed_from_u64(7);
        let e1: Vec<Vec<usize>> = (0..3).map(|_| epoch(&ds, 8, Some(&mut r1))).collect();
        let e2: Vec<Vec<usize>> = (0..3).map(|_| epoch(&ds, 8, Some(&mut r2))).collect();
        assert_eq!(e1, e2);
        assert_ne!(e1[0], e1[1]);
        assert_ne!(e1[1], e1[2]);
        assert_ne!(e1[0], (0..50).collect::<Vec<_>>());
        let mut r3 = StdRng::seed_from_u64(8);
        assert_ne!(epoch(&ds, 8, Some(&mut r3)), e1[0]);
    }

    #[test]
    fn split_take_subset() {
        let ds = numbered(10);
        let mut rng = StdRng::seed_from_u64(0);
        let (a, b) = ds.split(0.75, &mut rng);
        assert_eq!((a.len(), b.len()), (8, 2)); // 7.5 rounds to 8
        let mut all: Vec<usize> = a
            .batches(100, None)
            .chain(b.batches(100, None))
            .flat_map(|b| ids(&b))
            .collect();
        assert_ne!(all, (0..10).collect::<Vec<_>>(), "shuffled");
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());

        let again = ds.split(0.75, &mut StdRng::seed_from_u64(0));
        assert_eq!(again.0.labels(), a.labels());
        assert_eq!(again.0.images(), a.images());

        let (c, d) = ds.split(0usize, &mut rng);
        assert_eq!((c.len(), d.len()), (0, 10));
        assert_eq!(c.images().shape().dims(), &[0, 2, 3, 1]);
        assert_eq!(ds.split(1.0, &mut rng).0.len(), 10);

        let t = ds.take(3);
        assert_eq!(ids(&t.batches(10, None).next().unwrap()), vec![0, 1, 2]);
        assert_eq!(ds.take(99).len(), 10);
        let s = ds.subset(&[9, 9, 4]);
        assert_eq!(s.labels(), &[0, 0, 1]);
        assert_eq!(ids(&s.batches(10, None).next().unwrap()), vec![9, 9, 4]);
        assert_eq!(s.sample_shape().dims(), &[2, 3, 1]);
        assert_eq!(ds.class_counts(), vec![4, 3, 3]);
    }

    #[test]
    fn f32_works_too() {
        let ds = Dataset::new(
            Tensor::<f32>::ones([3, 1, 2, 2]),
            vec![0, 0, 0],
            vec!["x".into()],
        );
        let b: Vec<Batch<f32>> = ds.batches(2, None).collect();
        assert_eq!(b[1].images.shape().dims(), &[1, 1, 2, 2]);
    }

    #[test]
    fn refusals() {
        let e = Dataset::try_new(Tensor::<f64>::zeros([3, 4]), vec![0; 3], vec!["a".into()])
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("Dataset::new: shape [3, 4] refused: images must be [N, C, H, W]"),
            "{e}"
        );
        let e = Dataset::try_new(
            Tensor::<f64>::zeros([3, 1, 1, 1]),
            vec![0; 2],
            vec!["a".into()],
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "Dataset::new: images of shape [3, 1, 1, 1] hold 3 samples but 2 labels were given"
            ),
            "{e}"
        );
        let e = Dataset::try_new(
            Tensor::<f64>::zeros([2, 1, 1, 1]),
            vec![0, 1],
            vec!["a".into()],
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("label 1 of sample 1 is not below the number of classes, 1"),
            "{e}"
        );
    }

    #[test]
    #[should_panic(expected = "split: fraction 1.5 is outside [0, 1]")]
    fn split_bad_fraction() {
        numbered(3).split(1.5, &mut StdRng::seed_from_u64(0));
    }

    #[test]
    #[should_panic(expected = "split: cannot take 4 samples from a data set of 3")]
    fn split_bad_count() {
        numbered(3).split(4usize, &mut StdRng::seed_from_u64(0));
    }

    #[test]
    #[should_panic(expected = "subset: index 3 is out of range for a data set of 3 samples")]
    fn subset_out_of_range() {
        numbered(3).subset(&[0, 3]);
    }

    #[test]
    #[should_panic(expected = "batches: batch_size must be at least 1")]
    fn batch_size_zero() {
        numbered(3).batches(0, None);
    }
}
