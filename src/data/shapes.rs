//! The shapes data set: white outlines of circles, squares and triangles on black, 28x28,
//! drawn at random sizes, positions and stroke widths.

use super::{DataError, Dataset};
use crate::float::Float;
use crate::tensor::Tensor;
use image::{GrayImage, Luma};
use rand::seq::SliceRandom;
use rand::{Rng, RngExt, SeedableRng};
use std::path::Path;

/// The side of a shape image.
const SIDE: u32 = 28;

/// A shape class; the label of each is its index in [`ShapeKind::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShapeKind {
    /// A circle outline.
    Circle,
    /// An axis-aligned square outline.
    Square,
    /// An upright isosceles triangle outline, base at the bottom.
    Triangle,
}

impl ShapeKind {
    /// Every kind, in label order.
    pub const ALL: [ShapeKind; 3] = [ShapeKind::Circle, ShapeKind::Square, ShapeKind::Triangle];

    /// The class name: `"circle"`, `"square"` or `"triangle"`.
    pub fn name(self) -> &'static str {
        match self {
            ShapeKind::Circle => "circle",
            ShapeKind::Square => "square",
            ShapeKind::Triangle => "triangle",
        }
    }
}

/// How far the point `(x, y)` lies inside the outline of a shape filling the box
/// `[x0, x0 + 2h] x [y0, y0 + 2h]`; negative outside.
fn depth(kind: ShapeKind, x: f64, y: f64, x0: f64, y0: f64, h: f64) -> f64 {
    let (cx, cy) = (x0 + h, y0 + h);
    match kind {
        ShapeKind::Circle => h - ((x - cx).powi(2) + (y - cy).powi(2)).sqrt(),
        ShapeKind::Square => h - (x - cx).abs().max((y - cy).abs()),
        ShapeKind::Triangle => {
            // Apex (cx, y0), base from (x0, y0 + 2h) to (x0 + 2h, y0 + 2h). Each slanted
            // side rises 2 for every 1 across, so its inward unit normal is (±2, 1) / √5.
            let base = y0 + 2.0 * h - y;
            let left = (2.0 * (x - cx) + (y - y0)) / 5f64.sqrt();
            let right = (-2.0 * (x - cx) + (y - y0)) / 5f64.sqrt();
            base.min(left).min(right)
        }
    }
}

/// Draws one shape: a white outline (255) on black (0), 28x28, with a half-size (radius,
/// half-side, half-base) `h` drawn from `6..=12`, a stroke from `1..=min(3, h / 3)` pixels,
/// and a position keeping the whole shape inside the frame. The same rng state draws the same image.
///
/// ```
/// use rand::SeedableRng;
/// use tapegrad::data::{render_shape, ShapeKind};
/// let mut rng = rand::rngs::StdRng::seed_from_u64(0);
/// let img = render_shape(ShapeKind::Triangle, &mut rng);
/// assert_eq!(img.dimensions(), (28, 28));
/// assert!(img.pixels().any(|p| p.0[0] == 255));
/// ```
pub fn render_shape<R: Rng + ?Sized>(kind: ShapeKind, rng: &mut R) -> GrayImage {
    let h: u32 = rng.random_range(6..=12);
    // Thinner strokes on small shapes, so that a small triangle stays hollow.
    let stroke: u32 = rng.random_range(1..=(h / 3).min(3));
    let x0: u32 = rng.random_range(0..=SIDE - 2 * h);
    let y0: u32 = rng.random_range(0..=SIDE - 2 * h);
    let (x0, y0, h, s) = (
        f64::from(x0),
        f64::from(y0),
        f64::from(h),
        f64::from(stroke),
    );
    GrayImage::from_fn(SIDE, SIDE, |x, y| {
        // Sampled at pixel centres: a pixel is lit when its centre lies within the stroke.
        let d = depth(kind, f64::from(x) + 0.5, f64::from(y) + 0.5, x0, y0, h);
        Luma([if d > 0.0 && d <= s { 255 } else { 0 }])
    })
}

/// The kinds used for `classes` classes: circle and square, or all three.
#[track_caller]
fn kinds(classes: usize) -> &'static [ShapeKind] {
    assert!(
        classes == 2 || classes == 3,
        "shapes: classes must be 2 (circle, square) or 3 (circle, square, triangle), not {classes}"
    );
    &ShapeKind::ALL[..classes]
}

/// Balanced labels in random order: each class `n / classes` times, the first `n % classes`
/// classes once more.
fn balanced_labels<R: Rng + ?Sized>(n: usize, classes: usize, rng: &mut R) -> Vec<usize> {
    let mut labels: Vec<usize> = (0..n).map(|i| i % classes).collect();
    labels.shuffle(rng);
    labels
}

/// `n` shape images as an `[n, 1, 28, 28]` data set in `[0, 1]`: `classes` is 2 (circle,
/// square) or 3 (circle, square, triangle); the classes are balanced (counts differ by at
/// most one) and shuffled. The same rng state gives the same data set.
///
/// ```
/// use rand::SeedableRng;
/// use tapegrad::data::generate_shapes;
/// let ds = generate_shapes::<f64>(9, 3, &mut rand::rngs::StdRng::seed_from_u64(5));
/// assert_eq!(ds.images().shape().dims(), &[9, 1, 28, 28]);
/// assert_eq!(ds.class_counts(), vec![3, 3, 3]);
/// assert_eq!(ds.class_names(), &["circle", "square", "triangle"]);
/// ```
///
/// # Panics
/// When `classes` is neither 2 nor 3.
#[track_caller]
pub fn generate_shapes<T: Float>(n: usize, classes: usize, rng: &mut dyn Rng) -> Dataset<T> {
    let kinds = kinds(classes);
    let labels = balanced_labels(n, classes, rng);
    let px = (SIDE * SIDE) as usize;
    let mut data = Vec::with_capacity(n * px);
    for &l in &labels {
        let img = render_shape(kinds[l], rng);
        data.extend(
            img.as_raw()
                .iter()
                .map(|&b| if b > 0 { T::ONE } else { T::ZERO }),
        );
    }
    let images = Tensor::from_vec(data, [n, 1, SIDE as usize, SIDE as usize]);
    let names = kinds.iter().map(|k| k.name().to_string()).collect();
    Dataset::new(images, labels, names)
}

/// Writes `n` shape images as PNG files `dir/<class name>/<i>.png` for
/// [`load_png_folder`](super::load_png_folder), drawn from `StdRng::seed_from_u64(seed)`;
/// `i` is the sample's index, zero-padded so that file-name order is index order.
/// `classes` is as in [`generate_shapes`].
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("tapegrad-doc-shapes-{}", std::process::id()));
/// tapegrad::data::write_shapes(&dir, 4, 2, 7)?;
/// assert!(dir.join("circle").is_dir() && dir.join("square").is_dir());
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Panics
/// When `classes` is neither 2 nor 3.
#[track_caller]
pub fn write_shapes(
    dir: impl AsRef<Path>,
    n: usize,
    classes: usize,
    seed: u64,
) -> Result<(), DataError> {
    let dir = dir.as_ref();
    let kinds = kinds(classes);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let width = n.saturating_sub(1).to_string().len();
    let labels = balanced_labels(n, classes, &mut rng);
    refuse_stale_images(dir, kinds, &labels, width)?;
    for k in kinds {
        let p = dir.join(k.name());
        std::fs::create_dir_all(&p).map_err(|e| DataError::io(&p, e))?;
    }
    for (i, &l) in labels.iter().enumerate() {
        let img = render_shape(kinds[l], &mut rng);
        let p = dir.join(kinds[l].name()).join(format!("{i:0width$}.png"));
        img.save_with_format(&p, image::ImageFormat::Png)
            .map_err(|source| DataError::Image { path: p, source })?;
    }
    Ok(())
}

/// Refuses to write into class folders that already hold PNG files this call would not
/// overwrite: the folder loader would read them beside the new images (a smaller data set
/// written over a larger one, or another seed's classes), and deleting them is not ours to
/// do. Files it would overwrite (the same `n`, a re-run) are fine.
fn refuse_stale_images(
    dir: &Path,
    kinds: &[ShapeKind],
    labels: &[usize],
    width: usize,
) -> Result<(), DataError> {
    for (l, k) in kinds.iter().enumerate() {
        let class_dir = dir.join(k.name());
        let Ok(entries) = std::fs::read_dir(&class_dir) else {
            continue; // not there yet: created below
        };
        let ours: std::collections::HashSet<String> = (0..labels.len())
            .filter(|&i| labels[i] == l)
            .map(|i| format!("{i:0width$}.png"))
            .collect();
        let mut stale = Vec::new();
        for e in entries {
            let name = e.map_err(|e| DataError::io(&class_dir, e))?.file_name();
            let name = name.to_string_lossy();
            if name.to_ascii_lowercase().ends_with(".png") && !ours.contains(name.as_ref()) {
                stale.push(name.into_owned());
            }
        }
        if !stale.is_empty() {
            stale.sort();
            return Err(DataError::BadOption {
                path: dir.into(),
                why: format!(
                    "{} already holds {} PNG file(s) this call would not overwrite (first: {}); \
                     the folder loader would read them beside the new images: write into a \
                     new or empty folder, or remove them",
                    class_dir.display(),
                    stale.len(),
                    stale[0]
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_util::TempDir;
    use crate::data::{PngFolderOptions, load_png_folder};
    use rand::rngs::StdRng;

    /// The bounding box of lit pixels, `(x_min, y_min, x_max, y_max)`.
    fn lit_box(img: &[f64]) -> Option<(usize, usize, usize, usize)> {
        let lit: Vec<(usize, usize)> = (0..784)
            .filter(|&i| img[i] > 0.0)
            .map(|i| (i % 28, i / 28))
            .collect();
        let xs = lit.iter().map(|p| p.0);
        let ys = lit.iter().map(|p| p.1);
        Some((xs.clone().min()?, ys.clone().min()?, xs.max()?, ys.max()?))
    }

    #[test]
    fn deterministic_for_a_seed() {
        let a = generate_shapes::<f64>(30, 3, &mut StdRng::seed_from_u64(3));
        let b = generate_shapes::<f64>(30, 3, &mut StdRng::seed_from_u64(3));
        let c = generate_shapes::<f64>(30, 3, &mut StdRng::seed_from_u64(4));
        assert_eq!(a.images(), b.images());
        assert_eq!(a.labels(), b.labels());
        assert_ne!(a.images(), c.images());
        let f = generate_shapes::<f32>(30, 3, &mut StdRng::seed_from_u64(3));
        assert_eq!(f.images().cast::<f64>(), *a.images());
    }

    #[test]
    fn balanced_shuffled_in_range_lit_and_inside() {
        for (n, classes) in [(300, 3), (301, 3), (50, 2), (7, 2)] {
            let ds = generate_shapes::<f64>(n, classes, &mut StdRng::seed_from_u64(n as u64));
            let counts = ds.class_counts();
            assert_eq!(counts.len(), classes);
            assert_eq!(counts.iter().sum::<usize>(), n);
            assert!(
                counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
                "{counts:?}"
            );
            let in_order: Vec<usize> = (0..n).map(|i| i % classes).collect();
            assert_ne!(ds.labels(), in_order.as_slice(), "labels are shuffled");
            let data = ds.images().data();
            assert!(data.iter().all(|&x| x == 0.0 || x == 1.0));
            for (i, img) in data.chunks(784).enumerate() {
                let lit = img.iter().filter(|&&x| x > 0.0).count();
                // At least a stroke-1 outline of the smallest shape; never filled in.
                assert!((30..400).contains(&lit), "sample {i}: {lit} lit pixels");
                // An unclipped shape's lit box is 2h x 2h with 6 <= h <= 12 (the
                // triangle's apex row stays dark, so it is one row shorter): a shape cut by
                // the frame would lose a side and break this.
                let (x0, y0, x1, y1) = lit_box(img).unwrap();
                let (w, h) = (x1 - x0 + 1, y1 - y0 + 1);
                let kind = ShapeKind::ALL[ds.labels()[i]];
                let h = if kind == ShapeKind::Triangle {
                    h + 1
                } else {
                    h
                };
                assert!(
                    w == h && w % 2 == 0 && (12..=24).contains(&w),
                    "sample {i} {kind:?}: {w}x{h}"
                );
            }
        }
    }

    #[test]
    fn outlines_are_hollow_and_kind_specific() {
        let mut rng = StdRng::seed_from_u64(11);
        for _ in 0..50 {
            for kind in ShapeKind::ALL {
                let img = render_shape(kind, &mut rng);
                let v: Vec<f64> = img.as_raw().iter().map(|&b| f64::from(b)).collect();
                let (x0, y0, x1, y1) = lit_box(&v).unwrap();
                let (cx, cy) = ((x0 + x1) / 2, (y0 + y1) / 2);
                let at = |x: usize, y: usize| img.get_pixel(x as u32, y as u32).0[0];
                // Inside is dark: an outline, not a filled shape (the triangle's inner
                // point is near its incentre, low in the box).
                let inner = if kind == ShapeKind::Triangle {
                    (cx, y1 - 3)
                } else {
                    (cx, cy)
                };
                assert_eq!(at(inner.0, inner.1), 0, "{kind:?} hollow");
                // Corners of the box: lit for a square only.
                let corners = [at(x0, y0), at(x1, y0), at(x0, y1), at(x1, y1)];
                match kind {
                    ShapeKind::Square => assert!(corners.iter().all(|&c| c == 255)),
                    ShapeKind::Circle => assert!(corners.iter().all(|&c| c == 0)),
                    // Base corners lit, top corners dark.
                    ShapeKind::Triangle => assert_eq!(corners, [0, 0, 255, 255], "{kind:?}"),
                }
            }
        }
    }

    #[test]
    fn refuses_to_mix_with_old_images_but_rewrites_its_own() {
        let dir = TempDir::new("shapes-stale");
        write_shapes(dir.path(), 12, 2, 1).unwrap();
        // The same call again overwrites its own files.
        write_shapes(dir.path(), 12, 2, 1).unwrap();
        // Fewer images (or another seed's labels) would leave old files to be loaded.
        let e = write_shapes(dir.path(), 6, 2, 1).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("already holds")
                && msg.contains("PNG file(s) this call would not overwrite"),
            "{msg}"
        );
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        // Nothing was written or removed: the folder still loads the 12 first images.
        let ds = load_png_folder::<f32>(dir.path(), PngFolderOptions::default()).unwrap();
        assert_eq!(ds.len(), 12);
        // A third class folder that does not exist yet is no obstacle.
        let other = TempDir::new("shapes-stale-3");
        write_shapes(other.path(), 9, 3, 1).unwrap();
    }

    #[test]
    fn written_pngs_load_back_identical() {
        let dir = TempDir::new("shapes-write");
        write_shapes(dir.path(), 12, 3, 9).unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path().join("square"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| n.len() == "00.png".len()), "{names:?}");
        let loaded = load_png_folder::<f64>(dir.path(), PngFolderOptions::default()).unwrap();
        assert_eq!(loaded.class_names(), &["circle", "square", "triangle"]);
        assert_eq!(loaded.class_counts(), vec![4, 4, 4]);
        // The same seed drawn in memory, regrouped by class as the folder loader orders it.
        let mem = generate_shapes::<f64>(12, 3, &mut StdRng::seed_from_u64(9));
        let mut by_class: Vec<usize> = (0..12).collect();
        by_class.sort_by_key(|&i| mem.labels()[i]);
        let mem = mem.subset(&by_class);
        assert_eq!(loaded.labels(), mem.labels());
        assert_eq!(loaded.images(), mem.images());
    }

    #[test]
    #[should_panic(expected = "shapes: classes must be 2 (circle, square) or 3")]
    fn bad_class_count() {
        generate_shapes::<f32>(4, 4, &mut StdRng::seed_from_u64(0));
    }
}
