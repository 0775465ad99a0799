//! IDX files, the format of MNIST and Fashion-MNIST: plain or gzip-compressed.
//!
//! An IDX file is a 4-byte magic `00 00 <type> <ndims>`, then `ndims` big-endian `u32`
//! extents, then the data row-major. Only type `0x08` (unsigned byte) is read: images have
//! 3 dimensions `[n, rows, cols]`, labels 1 `[n]`.

use super::{DataError, Dataset, read_full};
use crate::float::Float;
use crate::tensor::Tensor;
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// The class names of Fashion-MNIST, by label; pass them to [`Dataset::with_class_names`].
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Greyscale images as read from an IDX file: `n` images of `rows x cols` bytes, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Images {
    /// The number of images.
    pub n: usize,
    /// The height of each image.
    pub rows: usize,
    /// The width of each image.
    pub cols: usize,
    /// `n * rows * cols` bytes, 0 black to 255 white.
    pub pixels: Vec<u8>,
}

impl Images {
    /// The images as an `[n, 1, rows, cols]` tensor, each byte divided by 255.
    ///
    /// ```
    /// use tapegrad::data::Images;
    /// let im = Images { n: 1, rows: 1, cols: 2, pixels: vec![0, 255] };
    /// let t = im.to_tensor::<f32>();
    /// assert_eq!(t.shape().dims(), &[1, 1, 1, 2]);
    /// assert_eq!(t.to_vec(), vec![0.0, 1.0]);
    /// ```
    pub fn to_tensor<T: Float>(&self) -> Tensor<T> {
        // One division per possible byte, not per pixel.
        let table: Vec<T> = (0..=255u32)
            .map(|b| T::from_f64(f64::from(b) / 255.0))
            .collect();
        Tensor::from_vec(
            self.pixels.iter().map(|&b| table[b as usize]).collect(),
            [self.n, 1, self.rows, self.cols],
        )
    }
}

/// An IDX file's header and data, checked against each other.
struct Idx {
    dims: Vec<usize>,
    data: Vec<u8>,
}

fn open(path: &Path) -> Result<(BufReader<File>, u64), DataError> {
    let f = File::open(path).map_err(|e| DataError::io(path, e))?;
    let len = f.metadata().map_err(|e| DataError::io(path, e))?.len();
    Ok((BufReader::new(f), len))
}

/// Describes what a header declares, for messages.
fn claim(dims: &[usize]) -> String {
    match dims {
        [n] => format!("{n} labels"),
        [n, r, c] => format!("{n} images of {r}x{c}"),
        _ => format!("extents {dims:?}"),
    }
}

/// The most data bytes a gzip-compressed IDX header may declare (2 GiB, 27 times MNIST's
/// training images): a plain file's claim is checked against its length, but a compressed
/// one can only be checked by decompressing, so an absurd claim is refused up front.
pub const MAX_GZ_IDX_BYTES: u64 = 1 << 31;

/// Reads an IDX file of unsigned bytes with `ndims` dimensions, refusing any disagreement
/// between header and data before allocating for the data.
fn read_idx(path: &Path, ndims: u8, kind: &str) -> Result<Idx, DataError> {
    let (file, file_len) = open(path)?;
    read_idx_from(file, file_len, path, ndims, kind)
}

/// The body of [`read_idx`] over any buffered reader of `len` bytes (a file or a slice);
/// `path` only names the source in errors.
fn read_idx_from(
    mut file: impl BufRead,
    file_len: u64,
    path: &Path,
    ndims: u8,
    kind: &str,
) -> Result<Idx, DataError> {
    let io_err = |e| DataError::io(path, e);
    // Gzip is recognised by its magic bytes, whatever the file is called.
    let compressed = file.fill_buf().map_err(io_err)?.starts_with(&[0x1f, 0x8b]);
    let mut r: Box<dyn Read + '_> = if compressed {
        Box::new(MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };

    let header_len = 4 + 4 * usize::from(ndims);
    let mut header = vec![0u8; header_len];
    let got = read_full(&mut r, &mut header).map_err(io_err)?;
    let truncated = |found: usize| DataError::Truncated {
        path: path.into(),
        what: format!(
            "an IDX {kind} header ({ndims} dimension{})",
            if ndims == 1 { "" } else { "s" }
        ),
        expected: header_len as u64,
        found: found as u64,
    };
    if got < 4 {
        return Err(truncated(got));
    }
    let magic = &header[..4];
    if magic[0] != 0 || magic[1] != 0 || magic[2] != 0x08 || magic[3] != ndims {
        return Err(DataError::BadHeader {
            path: path.into(),
            field: "magic",
            found: format!(
                "{:02x} {:02x} {:02x} {:02x}",
                magic[0], magic[1], magic[2], magic[3]
            ),
            expected: format!(
                "00 00 08 {ndims:02x} (unsigned bytes, {ndims} dimension{}, as in an IDX {kind} file)",
                if ndims == 1 { "" } else { "s" }
            ),
        });
    }
    if got < header_len {
        return Err(truncated(got));
    }
    let dims: Vec<usize> = header[4..]
        .chunks_exact(4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .collect();
    for (i, &d) in dims.iter().enumerate().skip(1) {
        if d == 0 {
            return Err(DataError::BadHeader {
                path: path.into(),
                field: if i == 1 { "rows" } else { "cols" },
                found: "0".into(),
                expected: "at least 1".into(),
            });
        }
    }
    // Up to 2^96 for three u32 extents: u128 cannot overflow.
    let expected = dims.iter().map(|&d| d as u128).product::<u128>();
    let expected64 = u64::try_from(expected).unwrap_or(u64::MAX);
    let length_err = |found: u64| DataError::DataLength {
        path: path.into(),
        claim: claim(&dims),
        expected: expected64,
        found,
        compressed,
    };
    if compressed && expected > u128::from(MAX_GZ_IDX_BYTES) {
        return Err(DataError::BadHeader {
            path: path.into(),
            field: if ndims == 1 { "count" } else { "extents" },
            found: format!("{} ({expected64} bytes)", claim(&dims)),
            expected: format!("at most {MAX_GZ_IDX_BYTES} bytes of data in a gzip-compressed file"),
        });
    }
    // The data can be no longer than the file (plain) or than deflate's best ratio, about
    // 1032:1, allows (gzip). Reserving no more than that keeps a forged header from
    // allocating gigabytes; the buffer still grows as real data arrives.
    let available = file_len.saturating_sub(if compressed { 0 } else { header_len as u64 });
    let bound = if compressed {
        available.saturating_mul(1032)
    } else {
        available
    };
    if !compressed && expected > u128::from(available) {
        return Err(length_err(available));
    }
    let mut data = Vec::with_capacity(expected.min(u128::from(bound)) as usize);
    // One byte past the claim tells a longer file from an exact one; reading stops there,
    // so a gzip bomb behind a small header is never decompressed further.
    (&mut r)
        .take(expected64.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(io_err)?;
    let got = data.len() as u64;
    if u128::from(got) != expected {
        // A plain file's length is known; a compressed one's only up to the byte past.
        let found = if compressed { got } else { available };
        return Err(length_err(found));
    }
    Ok(Idx { dims, data })
}

/// Reads greyscale images from an IDX file (`train-images-idx3-ubyte` or its `.gz`).
///
/// Gzip is detected by the file's first bytes, not its name. The header must be
/// `00 00 08 03` (unsigned bytes, 3 dimensions) followed by `n`, `rows`, `cols`, and the
/// data exactly `n * rows * cols` bytes; otherwise a [`DataError`] names the file and the
/// mismatch, found before allocating for the data.
///
/// ```
/// # let path = std::env::temp_dir().join(format!("tapegrad-doc-idx3-{}", std::process::id()));
/// // A file holding two 1x2 images.
/// std::fs::write(&path, [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 51, 102, 255])?;
/// let im = tapegrad::data::read_idx_images(&path)?;
/// assert_eq!((im.n, im.rows, im.cols), (2, 1, 2));
/// assert_eq!(im.pixels, vec![0, 51, 102, 255]);
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<Images, DataError> {
    let idx = read_idx(path.as_ref(), 3, "image")?;
    Ok(Images {
        n: idx.dims[0],
        rows: idx.dims[1],
        cols: idx.dims[2],
        pixels: idx.data,
    })
}

/// Parses the bytes of an IDX images file, plain or gzip-compressed, held in memory: the
/// same checks as [`read_idx_images`] (which reads through the same code), `name` standing
/// for the file in errors.
///
/// ```
/// use tapegrad::data::parse_idx_images;
/// let bytes = [0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 7, 9];
/// let im = parse_idx_images(&bytes, "mem.idx3")?;
/// assert_eq!((im.n, im.rows, im.cols, im.pixels), (1, 1, 2, vec![7, 9]));
/// let e = parse_idx_images(&bytes[..17], "mem.idx3").unwrap_err();
/// assert_eq!(e.to_string(), "mem.idx3: header claims 1 images of 1x2 (2 bytes) but the file \
///     holds 1 bytes after the header");
/// # Ok::<(), tapegrad::data::DataError>(())
/// ```
pub fn parse_idx_images(bytes: &[u8], name: impl AsRef<Path>) -> Result<Images, DataError> {
    let idx = read_idx_from(bytes, bytes.len() as u64, name.as_ref(), 3, "image")?;
    Ok(Images {
        n: idx.dims[0],
        rows: idx.dims[1],
        cols: idx.dims[2],
        pixels: idx.data,
    })
}

/// Parses the bytes of an IDX labels file, plain or gzip-compressed, held in memory: the
/// same checks as [`read_idx_labels`], `name` standing for the file in errors.
///
/// ```
/// let labels = tapegrad::data::parse_idx_labels(&[0, 0, 8, 1, 0, 0, 0, 2, 4, 2], "mem")?;
/// assert_eq!(labels, vec![4, 2]);
/// # Ok::<(), tapegrad::data::DataError>(())
/// ```
pub fn parse_idx_labels(bytes: &[u8], name: impl AsRef<Path>) -> Result<Vec<usize>, DataError> {
    let idx = read_idx_from(bytes, bytes.len() as u64, name.as_ref(), 1, "label")?;
    Ok(idx.data.into_iter().map(usize::from).collect())
}

/// Reads labels from an IDX file (`train-labels-idx1-ubyte` or its `.gz`): header
/// `00 00 08 01` and `n`, then `n` bytes.
///
/// ```
/// # let path = std::env::temp_dir().join(format!("tapegrad-doc-idx1-{}", std::process::id()));
/// std::fs::write(&path, [0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1])?;
/// assert_eq!(tapegrad::data::read_idx_labels(&path)?, vec![7, 2, 1]);
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<usize>, DataError> {
    let idx = read_idx(path.as_ref(), 1, "label")?;
    Ok(idx.data.into_iter().map(usize::from).collect())
}

/// `dir/name`, or `dir/name.gz` when only that exists.
fn find(dir: &Path, name: &str) -> Result<PathBuf, DataError> {
    let plain = dir.join(name);
    let gz = dir.join(format!("{name}.gz"));
    for p in [&plain, &gz] {
        if p.is_file() {
            return Ok(p.clone());
        }
    }
    Err(DataError::NotFound {
        path: plain,
        why: format!("nor {}", gz.display()),
    })
}

fn load_pair<T: Float>(dir: &Path, prefix: &str) -> Result<Dataset<T>, DataError> {
    let ip = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
    let lp = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
    let images = read_idx_images(&ip)?;
    let labels = read_idx_labels(&lp)?;
    if images.n != labels.len() {
        return Err(DataError::CountMismatch {
            images: ip,
            labels: lp,
            n_images: images.n,
            n_labels: labels.len(),
        });
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|&(_, &l)| l >= 10) {
        return Err(DataError::BadContent {
            path: lp,
            why: format!("label {l} at index {i} is not one of the 10 classes 0-9"),
        });
    }
    let names = (0..10).map(|c| c.to_string()).collect();
    Ok(Dataset::new(images.to_tensor(), labels, names))
}

/// Loads MNIST or Fashion-MNIST from a folder holding `train-images-idx3-ubyte`,
/// `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and `t10k-labels-idx1-ubyte`, each
/// plain or with a `.gz` suffix; returns `(train, test)`.
///
/// Images are `[N, 1, rows, cols]` scaled to `[0, 1]`; the classes are named `"0"` to
/// `"9"` (rename them with [`Dataset::with_class_names`], for instance with
/// [`FASHION_MNIST_CLASSES`]). A missing file, a bad header, or image and label files that
/// disagree on the count, or a label above 9 is a [`DataError`].
///
/// ```no_run
/// use tapegrad::data::{load_mnist_dir, FASHION_MNIST_CLASSES};
/// let (train, test) = load_mnist_dir::<f32>("/usr/share/datasets/fashion-mnist")?;
/// let names = FASHION_MNIST_CLASSES.map(String::from).to_vec();
/// let train = train.with_class_names(names);
/// assert_eq!((train.len(), test.len()), (60000, 10000));
/// # Ok::<(), tapegrad::data::DataError>(())
/// ```
pub fn load_mnist_dir<T: Float>(
    dir: impl AsRef<Path>,
) -> Result<(Dataset<T>, Dataset<T>), DataError> {
    let dir = dir.as_ref();
    if !dir.is_dir() {
        return Err(DataError::NotFound {
            path: dir.into(),
            why: "a folder with the four MNIST IDX files was expected".into(),
        });
    }
    Ok((load_pair(dir, "train")?, load_pair(dir, "t10k")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_util::TempDir;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::io::{self, Write};
    use std::time::Instant;

    fn header(ndims: u8, dims: &[u32]) -> Vec<u8> {
        let mut b = vec![0, 0, 8, ndims];
        for d in dims {
            b.extend(d.to_be_bytes());
        }
        b
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn images_file(n: u32, r: u32, c: u32) -> (Vec<u8>, Vec<u8>) {
        let pixels: Vec<u8> = (0..n * r * c).map(|i| (i * 37 % 256) as u8).collect();
        let mut b = header(3, &[n, r, c]);
        b.extend(&pixels);
        (b, pixels)
    }

    fn write(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    fn err_text(r: Result<impl std::fmt::Debug, DataError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn round_trip_plain_and_gz() {
        let dir = TempDir::new("idx-rt");
        let (bytes, pixels) = images_file(3, 4, 5);
        let labels = [0u8, 9, 4];
        let mut lb = header(1, &[3]);
        lb.extend(labels);
        for (name, ib, lbb) in [
            ("plain", bytes.clone(), lb.clone()),
            ("gz", gz(&bytes), gz(&lb)),
        ] {
            // The gzip file is named without .gz on purpose: detection is by content.
            let ip = write(&dir, &format!("{name}-images"), &ib);
            let lp = write(&dir, &format!("{name}-labels"), &lbb);
            let im = read_idx_images(&ip).unwrap();
            assert_eq!((im.n, im.rows, im.cols), (3, 4, 5), "{name}");
            assert_eq!(im.pixels, pixels, "{name}");
            assert_eq!(read_idx_labels(&lp).unwrap(), vec![0, 9, 4], "{name}");
            let t = im.to_tensor::<f64>();
            assert_eq!(t.shape().dims(), &[3, 1, 4, 5]);
            assert_eq!(t[[2, 0, 3, 4]], f64::from(pixels[59]) / 255.0);
            assert!(
                im.to_tensor::<f32>()
                    .data()
                    .iter()
                    .all(|x| (0.0..=1.0).contains(x))
            );
        }
        // Zero images is a valid, empty file.
        let p = write(&dir, "empty", &header(3, &[0, 28, 28]));
        assert_eq!(read_idx_images(&p).unwrap().pixels.len(), 0);
    }

    #[test]
    fn truncated_header() {
        let dir = TempDir::new("idx-trunc");
        let p = write(&dir, "short", &[0, 0, 8, 3, 0, 0]);
        assert_eq!(
            err_text(read_idx_images(&p)),
            format!(
                "{}: an IDX image header (3 dimensions) needs 16 bytes but the file holds only 6",
                p.display()
            )
        );
        let p = write(&dir, "tiny", &[0, 0]);
        assert!(err_text(read_idx_labels(&p)).ends_with(
            "an IDX label header (1 dimension) needs 8 bytes but the file holds only 2"
        ));
        let p = write(&dir, "tiny.gz", &gz(&[0, 0, 8, 1, 0]));
        assert!(err_text(read_idx_labels(&p)).ends_with("needs 8 bytes but the file holds only 5"));
    }

    #[test]
    fn wrong_magic() {
        let dir = TempDir::new("idx-magic");
        let (mut bytes, _) = images_file(1, 2, 2);
        // A labels file given as images.
        let mut lb = header(1, &[1]);
        lb.push(3);
        let p = write(&dir, "labels", &lb);
        assert_eq!(
            err_text(read_idx_images(&p)),
            format!(
                "{}: header field magic is 00 00 08 01, expected 00 00 08 03 (unsigned bytes, \
                 3 dimensions, as in an IDX image file)",
                p.display()
            )
        );
        bytes[2] = 0x0d; // float data
        let p = write(&dir, "float", &bytes);
        assert!(err_text(read_idx_images(&p)).contains("header field magic is 00 00 0d 03"));
        let p = write(&dir, "png", b"\x89PNG\r\n\x1a\nrest");
        assert!(err_text(read_idx_labels(&p)).contains(
            "header field magic is 89 50 4e 47, expected 00 00 08 01 (unsigned bytes, \
             1 dimension, as in an IDX label file)"
        ));
        let p = write(&dir, "zero-rows", &header(3, &[5, 0, 28]));
        assert!(
            err_text(read_idx_images(&p)).ends_with("header field rows is 0, expected at least 1")
        );
    }

    #[test]
    fn data_length_disagrees_with_header() {
        let dir = TempDir::new("idx-len");
        let (bytes, _) = images_file(2, 3, 3);
        let p = write(&dir, "short", &bytes[..bytes.len() - 5]);
        assert_eq!(
            err_text(read_idx_images(&p)),
            format!(
                "{}: header claims 2 images of 3x3 (18 bytes) but the file holds 13 bytes after \
                 the header",
                p.display()
            )
        );
        let p = write(&dir, "short.gz", &gz(&bytes[..bytes.len() - 5]));
        assert!(err_text(read_idx_images(&p)).ends_with(
            "header claims 2 images of 3x3 (18 bytes) but the decompressed file holds 13 bytes \
             after the header"
        ));
        let mut long = bytes.clone();
        long.extend([1, 2, 3]);
        let p = write(&dir, "long", &long);
        assert!(
            err_text(read_idx_images(&p))
                .ends_with("(18 bytes) but the file holds 21 bytes after the header")
        );
        // Decompression stops one byte past the claim: "more than", not the whole length.
        let p = write(&dir, "long.gz", &gz(&long));
        assert!(err_text(read_idx_images(&p)).ends_with(
            "(18 bytes) but the decompressed file holds more than 18 bytes after the header"
        ));
        let mut lb = header(1, &[60000]);
        lb.extend([1u8; 1000]);
        let p = write(&dir, "labels", &lb);
        assert!(err_text(read_idx_labels(&p)).ends_with(
            "header claims 60000 labels (60000 bytes) but the file holds 1000 bytes after the header"
        ));
    }

    #[test]
    fn forged_header_fails_fast_without_allocating() {
        let dir = TempDir::new("idx-forged");
        // 2^32 - 1 images of 28x28 would be 3.4 TB.
        let mut b = header(3, &[u32::MAX, 28, 28]);
        b.extend([0u8; 1000]);
        let p = write(&dir, "forged", &b);
        let t = Instant::now();
        let e = err_text(read_idx_images(&p));
        assert!(t.elapsed().as_millis() < 500, "took {:?}", t.elapsed());
        assert!(
            e.ends_with(
                "header claims 4294967295 images of 28x28 (3367254359280 bytes) but the \
                 file holds 1000 bytes after the header"
            ),
            "{e}"
        );
        // Compressed, the claim itself is refused: checking it would mean decompressing.
        let p = write(&dir, "forged.gz", &gz(&b));
        assert_eq!(
            err_text(read_idx_images(&p)),
            format!(
                "{}: header field extents is 4294967295 images of 28x28 (3367254359280 bytes), \
                 expected at most 2147483648 bytes of data in a gzip-compressed file",
                p.display()
            )
        );
        let p = write(&dir, "huge-extents", &header(3, &[u32::MAX; 3]));
        // 2^96: reported as saturated in bytes, refused before any allocation.
        assert!(
            err_text(read_idx_images(&p)).contains(&format!("({} bytes)", u64::MAX)),
            "saturated"
        );
    }

    fn mnist_dir(dir: &TempDir, n_train: u32, n_train_labels: u32, gzip: bool) {
        for (prefix, n, nl) in [("train", n_train, n_train_labels), ("t10k", 2, 2)] {
            let (ib, _) = images_file(n, 2, 2);
            let mut lb = header(1, &[nl]);
            lb.extend((0..nl).map(|i| (i % 10) as u8));
            let (ib, lb, sfx) = if gzip {
                (gz(&ib), gz(&lb), ".gz")
            } else {
                (ib, lb, "")
            };
            write(dir, &format!("{prefix}-images-idx3-ubyte{sfx}"), &ib);
            write(dir, &format!("{prefix}-labels-idx1-ubyte{sfx}"), &lb);
        }
    }

    #[test]
    fn mnist_dir_loads_and_checks_counts() {
        for gzip in [false, true] {
            let dir = TempDir::new("idx-dir");
            mnist_dir(&dir, 12, 12, gzip);
            let (train, test) = load_mnist_dir::<f32>(dir.path()).unwrap();
            assert_eq!((train.len(), test.len()), (12, 2));
            assert_eq!(train.images().shape().dims(), &[12, 1, 2, 2]);
            assert_eq!(train.labels()[11], 1);
            assert_eq!(train.num_classes(), 10);
            assert_eq!(train.class_names()[3], "3");
            let names = FASHION_MNIST_CLASSES.map(String::from).to_vec();
            assert_eq!(train.with_class_names(names).class_names()[9], "Ankle boot");
        }
        let dir = TempDir::new("idx-dir-mismatch");
        mnist_dir(&dir, 12, 11, false);
        let e = err_text(load_mnist_dir::<f32>(dir.path()));
        let ip = dir.path().join("train-images-idx3-ubyte");
        let lp = dir.path().join("train-labels-idx1-ubyte");
        assert_eq!(
            e,
            format!(
                "{}: holds 12 images but {} holds 11 labels",
                ip.display(),
                lp.display()
            )
        );
        let mut lb = header(1, &[12]);
        lb.extend([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 0]);
        write(&dir, "train-labels-idx1-ubyte", &lb);
        assert_eq!(
            err_text(load_mnist_dir::<f32>(dir.path())),
            format!(
                "{}: label 12 at index 10 is not one of the 10 classes 0-9",
                lp.display()
            )
        );
        std::fs::remove_file(&lp).unwrap();
        let e = err_text(load_mnist_dir::<f32>(dir.path()));
        assert_eq!(
            e,
            format!("{}: not found (nor {}.gz)", lp.display(), lp.display())
        );
        let e = err_text(load_mnist_dir::<f32>(dir.path().join("nope")));
        assert!(
            e.ends_with("nope: not found (a folder with the four MNIST IDX files was expected)")
        );
    }

    #[test]
    fn missing_file_is_an_io_error_naming_it() {
        let e = read_idx_images("/definitely/not/here.gz").unwrap_err();
        assert!(
            matches!(&e, DataError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
        );
        assert!(e.to_string().starts_with("/definitely/not/here.gz: "));
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn fashion_mnist_if_installed() {
        let dir = Path::new("/usr/share/datasets/fashion-mnist");
        if !dir.is_dir() {
            println!(
                "skipped: {} is absent (apt-get install dataset-fashion-mnist)",
                dir.display()
            );
            return;
        }
        let (train, test) = load_mnist_dir::<f32>(dir).unwrap();
        assert_eq!((train.len(), test.len()), (60000, 10000));
        assert_eq!(train.images().shape().dims(), &[60000, 1, 28, 28]);
        for ds in [&train, &test] {
            assert!(ds.labels().iter().all(|&l| l < 10));
            // Fashion-MNIST is balanced: 6000 and 1000 per class.
            let per = ds.len() / 10;
            assert_eq!(ds.class_counts(), vec![per; 10]);
        }
        let px = train.images().data();
        assert!(px.iter().all(|x| (0.0..=1.0).contains(x)));
        assert!(px.contains(&1.0));
    }
}
