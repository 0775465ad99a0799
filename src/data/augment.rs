//! Seeded data augmentation for image batches: random crops of a zero-padded image and
//! horizontal flips, as torchvision's `RandomCrop(size, padding)` and
//! `RandomHorizontalFlip()`.

use crate::float::Float;
use crate::runtime::threads::for_each_chunk;
use crate::tensor::Tensor;
use rand::{Rng, RngExt};

use super::Batch;

/// What [`Augment::apply`] does to each image of a batch. The draws (one crop offset and
/// one coin per image) are taken from the caller's rng in image order before any pixel
/// moves, and the pixels then move on the thread pool: a seed gives the same batch whatever
/// the thread count.
///
/// ```
/// use rand::SeedableRng;
/// use tapegrad::data::{Augment, Batch};
/// use tapegrad::prelude::*;
/// let images = Tensor::<f32>::from_fn([2, 1, 4, 4], |i| i as f32);
/// let batch = Batch { images, labels: vec![0, 1] };
/// let aug = Augment::new().random_crop(1).horizontal_flip(true);
/// let mut rng = rand::rngs::StdRng::seed_from_u64(7);
/// let out = aug.apply(&batch, &mut rng);
/// assert_eq!(out.images.shape().dims(), [2, 1, 4, 4]);
/// assert_eq!(out.labels, vec![0, 1]);
/// // The same seed, the same batch.
/// let again = aug.apply(&batch, &mut rand::rngs::StdRng::seed_from_u64(7));
/// assert_eq!(out.images.to_vec(), again.images.to_vec());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Augment {
    /// Zeros added around each image before a crop of its own size is taken at a random
    /// offset (0: no crop).
    pub crop_padding: usize,
    /// Mirror each image left to right with probability ½.
    pub flip: bool,
}

impl Augment {
    /// No augmentation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Random crops of the image padded by `padding` zeros on each side.
    pub fn random_crop(mut self, padding: usize) -> Self {
        self.crop_padding = padding;
        self
    }

    /// Random horizontal flips.
    pub fn horizontal_flip(mut self, on: bool) -> Self {
        self.flip = on;
        self
    }

    /// The batch, each `[C, H, W]` image cropped and flipped by its own draws from `rng`.
    ///
    /// # Panics
    /// When the images are not `[N, C, H, W]`.
    #[track_caller]
    pub fn apply<T: Float, R: Rng + ?Sized>(&self, batch: &Batch<T>, rng: &mut R) -> Batch<T> {
        let s = batch.images.shape();
        assert!(
            s.len() == 4,
            "Augment::apply: images must be [N, C, H, W], not {s}"
        );
        let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
        let p = self.crop_padding;
        // Offsets in 0..=2p on each axis (torchvision's), then the coin: per image, in order.
        let draws: Vec<(usize, usize, bool)> = (0..n)
            .map(|_| {
                let dy = if p > 0 {
                    rng.random_range(0..=2 * p)
                } else {
                    p
                };
                let dx = if p > 0 {
                    rng.random_range(0..=2 * p)
                } else {
                    p
                };
                let flip = self.flip && rng.random_bool(0.5);
                (dy, dx, flip)
            })
            .collect();
        let x = batch.images.data();
        let per = c * h * w;
        let mut out = vec![T::ZERO; x.len()];
        for_each_chunk(2 * x.len(), per.max(1), &mut out, |first, chunk, _| {
            for (k, img) in chunk.chunks_mut(per.max(1)).enumerate() {
                let i = first + k;
                let (dy, dx, flip) = draws[i];
                let src = &x[i * per..(i + 1) * per];
                for ch in 0..c {
                    for y in 0..h {
                        // Output row y reads padded row y + dy, input row y + dy − p.
                        let sy = (y + dy).wrapping_sub(p);
                        let row = &mut img[(ch * h + y) * w..(ch * h + y + 1) * w];
                        if sy >= h {
                            row.fill(T::ZERO);
                            continue;
                        }
                        let srow = &src[(ch * h + sy) * w..(ch * h + sy + 1) * w];
                        for (xo, v) in row.iter_mut().enumerate() {
                            let xc = if flip { w - 1 - xo } else { xo };
                            let sx = (xc + dx).wrapping_sub(p);
                            *v = if sx < w { srow[sx] } else { T::ZERO };
                        }
                    }
                }
            }
        });
        Batch {
            images: Tensor::from_vec(out, s.clone()),
            labels: batch.labels.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn crops_and_flips_are_what_the_draws_say() {
        // One 1x3x3 image; crop padding 1: every offset pair and flip is reachable.
        let img = Tensor::<f64>::from_fn([1, 1, 3, 3], |i| (i + 1) as f64);
        let batch = Batch {
            images: img,
            labels: vec![4],
        };
        let aug = Augment::new().random_crop(1).horizontal_flip(true);
        let mut seen = std::collections::HashSet::new();
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..400 {
            let out = aug.apply(&batch, &mut rng).images.to_vec();
            // Every output is a shifted (and maybe mirrored) window of the padded image.
            let fits = (0..3).any(|dy| {
                (0..3).any(|dx| {
                    [false, true].iter().any(|&flip| {
                        (0..9).all(|k| {
                            let (y, x) = (k / 3, k % 3);
                            let xc = if flip { 2 - x } else { x };
                            let (sy, sx) = ((y + dy) as isize - 1, (xc + dx) as isize - 1);
                            let want = if (0..3).contains(&sy) && (0..3).contains(&sx) {
                                (sy * 3 + sx + 1) as f64
                            } else {
                                0.0
                            };
                            out[k] == want
                        })
                    })
                })
            });
            assert!(fits, "{out:?}");
            seen.insert(out.iter().map(|v| *v as i64).collect::<Vec<_>>());
        }
        // 9 offsets x 2 flips, all distinct for this image.
        assert_eq!(seen.len(), 18);
    }

    #[test]
    fn no_augmentation_is_the_identity() {
        let img = Tensor::<f32>::from_fn([3, 2, 4, 5], |i| i as f32);
        let batch = Batch {
            images: img.clone(),
            labels: vec![0, 1, 2],
        };
        let out = Augment::new().apply(&batch, &mut StdRng::seed_from_u64(0));
        assert_eq!(out.images.to_vec(), img.to_vec());
    }
}
