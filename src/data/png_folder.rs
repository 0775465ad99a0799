//! A folder of PNG images with one sub-folder per class (the layout of torchvision's
//! `ImageFolder`).

use super::{DataError, Dataset, read_full};
use crate::float::Float;
use crate::tensor::Tensor;
use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The largest height or width a PNG header may declare; larger images are refused before
/// decoding, so that a forged header cannot make the decoder allocate gigabytes.
pub const MAX_IMAGE_SIDE: u32 = 8192;

/// Options of [`load_png_folder`].
///
/// ```
/// use tapegrad::data::PngFolderOptions;
/// let opts = PngFolderOptions { channels: 3, size: Some((32, 32)) };
/// assert_eq!(PngFolderOptions::default(), PngFolderOptions { channels: 1, size: None });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PngFolderOptions {
    /// 1 for grey (colour images are converted with the Rec. 709 luma weights), 3 for RGB
    /// (grey images are repeated in each channel). Alpha is dropped.
    pub channels: usize,
    /// `Some((height, width))` resizes every image to that size (triangle filter, aspect
    /// ratio not kept); `None` requires all images to share the first one's size.
    pub size: Option<(u32, u32)>,
}

impl Default for PngFolderOptions {
    fn default() -> Self {
        PngFolderOptions {
            channels: 1,
            size: None,
        }
    }
}

fn is_hidden(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// The entries of `dir` without hidden ones, sorted by name.
fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let rd = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut v = Vec::new();
    for e in rd {
        let p = e.map_err(|e| DataError::io(dir, e))?.path();
        if !is_hidden(&p) {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

/// Decodes a PNG file, refusing other content and absurd declared sizes before decoding.
fn decode_png(path: &Path) -> Result<DynamicImage, DataError> {
    let file = BufReader::new(File::open(path).map_err(|e| DataError::io(path, e))?);
    decode_png_from(file, path)
}

/// The body of [`decode_png`] over any seekable reader (a file or bytes in memory); `path`
/// only names the source in errors.
fn decode_png_from(mut file: impl BufRead + Seek, path: &Path) -> Result<DynamicImage, DataError> {
    let io_err = |e| DataError::io(path, e);
    // Signature (8 bytes), IHDR length and type (8), width and height (8): the PNG format
    // requires IHDR first, so the declared size is known from the first 24 bytes.
    let mut head = [0u8; 24];
    let got = read_full(&mut file, &mut head).map_err(io_err)?;
    let head = &head[..got];
    if !head.starts_with(b"\x89PNG\r\n\x1a\n") {
        let why = match image::guess_format(head) {
            Ok(other) => format!("it holds a {other:?} image; only PNG is read"),
            Err(_) => "its content is not an image format the loader knows".into(),
        };
        return Err(DataError::NotAnImage {
            path: path.into(),
            why,
        });
    }
    let image_err = |source| DataError::Image {
        path: path.into(),
        source,
    };
    if got == 24 && &head[12..16] == b"IHDR" {
        let w = u32::from_be_bytes([head[16], head[17], head[18], head[19]]);
        let h = u32::from_be_bytes([head[20], head[21], head[22], head[23]]);
        if w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE || w == 0 || h == 0 {
            return Err(DataError::BadHeader {
                path: path.into(),
                field: "dimensions",
                found: format!("{h}x{w} (height x width)"),
                expected: format!("between 1x1 and {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}"),
            });
        }
    }
    // A header too short or malformed for the check above is left to the decoder to refuse;
    // the strict limits bound the allocation either way.
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let mut reader = ImageReader::with_format(file, ImageFormat::Png);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    reader.limits(limits);
    reader.decode().map_err(image_err)
}

/// Appends the image as `channels x h x w` values in `[0, 1]`.
fn push_chw<T: Float>(img: &DynamicImage, channels: usize, out: &mut Vec<T>) {
    let bytes = if channels == 1 {
        img.to_luma8().into_raw()
    } else {
        img.to_rgb8().into_raw()
    };
    let table: Vec<T> = (0..=255u32)
        .map(|b| T::from_f64(f64::from(b) / 255.0))
        .collect();
    // Interleaved HWC to planar CHW.
    for c in 0..channels {
        out.extend(
            bytes
                .iter()
                .skip(c)
                .step_by(channels)
                .map(|&b| table[b as usize]),
        );
    }
}

/// Refuses options out of their domain, naming `path` (the folder or file being read).
fn check_options(path: &Path, opts: PngFolderOptions) -> Result<(), DataError> {
    let bad_option = |why: String| DataError::BadOption {
        path: path.into(),
        why,
    };
    if opts.channels != 1 && opts.channels != 3 {
        return Err(bad_option(format!(
            "channels must be 1 (grey) or 3 (RGB), not {}",
            opts.channels
        )));
    }
    if let Some((h, w)) = opts.size
        && (h == 0 || w == 0 || h > MAX_IMAGE_SIDE || w > MAX_IMAGE_SIDE)
    {
        return Err(bad_option(format!(
            "size {h}x{w} (height x width) must be between 1x1 and \
             {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}"
        )));
    }
    Ok(())
}

/// Decodes one PNG image held in memory as [`load_png_folder`] decodes each file (the same
/// code: signature and declared size checked before decoding, [`MAX_IMAGE_SIDE`] enforced),
/// then converts it to a `[C, H, W]` tensor in `[0, 1]`, `C` and the size chosen by `opts`
/// (with `size: None` the image keeps its own). `name` stands for the file in errors.
///
/// ```
/// use tapegrad::data::{parse_png, PngFolderOptions};
/// let mut png = Vec::new();
/// image::GrayImage::from_pixel(3, 2, image::Luma([255]))
///     .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
/// let t = parse_png::<f32>(&png, "white.png", PngFolderOptions::default())?;
/// assert_eq!(t.shape().dims(), &[1, 2, 3]);
/// assert!(t.data().iter().all(|&v| v == 1.0));
/// let e = parse_png::<f32>(b"GIF89a", "cat.png", PngFolderOptions::default()).unwrap_err();
/// assert_eq!(e.to_string(), "cat.png: not a PNG image: it holds a Gif image; only PNG is read");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_png<T: Float>(
    bytes: &[u8],
    name: impl AsRef<Path>,
    opts: PngFolderOptions,
) -> Result<Tensor<T>, DataError> {
    let path = name.as_ref();
    check_options(path, opts)?;
    let mut img = decode_png_from(Cursor::new(bytes), path)?;
    if let Some((h, w)) = opts.size
        && (img.height(), img.width()) != (h, w)
    {
        img = img.resize_exact(w, h, FilterType::Triangle);
    }
    let (h, w) = (img.height() as usize, img.width() as usize);
    let mut data = Vec::with_capacity(opts.channels * h * w);
    push_chw(&img, opts.channels, &mut data);
    Ok(Tensor::from_vec(data, [opts.channels, h, w]))
}

/// Loads a folder of PNG images whose sub-folders are the classes: `dir/cat/1.png`,
/// `dir/dog/7.png`, ...
///
/// Class names are the sub-folder names, sorted, the label being the index; images are read
/// in file-name order. The result is `[N, C, H, W]` scaled to `[0, 1]`, with `C` and the
/// size chosen by `opts`. Hidden entries (names starting with `.`) are skipped, as are
/// plain files next to the class folders.
///
/// Refused with a [`DataError`] naming the file or folder: a file in a class folder that
/// is not a PNG image, a folder with no class folders, a class folder with no images, a
/// PNG header declaring a side over [`MAX_IMAGE_SIDE`], and, when `opts.size` is `None`, an
/// image whose size differs from the first one's.
///
/// ```
/// use tapegrad::data::{load_png_folder, write_shapes, PngFolderOptions};
/// # let dir = std::env::temp_dir().join(format!("tapegrad-doc-png-{}", std::process::id()));
/// write_shapes(&dir, 6, 3, 0)?; // dir/circle, dir/square, dir/triangle
/// let opts = PngFolderOptions { channels: 3, size: Some((14, 14)) };
/// let ds = load_png_folder::<f32>(&dir, opts)?;
/// assert_eq!(ds.images().shape().dims(), &[6, 3, 14, 14]);
/// assert_eq!(ds.class_names(), &["circle", "square", "triangle"]);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load_png_folder<T: Float>(
    dir: impl AsRef<Path>,
    opts: PngFolderOptions,
) -> Result<Dataset<T>, DataError> {
    let dir = dir.as_ref();
    check_options(dir, opts)?;
    if !dir.is_dir() {
        return Err(DataError::NotFound {
            path: dir.into(),
            why: "a folder with one sub-folder of PNG images per class was expected".into(),
        });
    }
    let classes: Vec<PathBuf> = sorted_entries(dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect();
    if classes.is_empty() {
        return Err(DataError::Empty {
            path: dir.into(),
            why: "no class folders: expected one sub-folder per class, holding its PNG images"
                .into(),
        });
    }

    let mut data: Vec<T> = Vec::new();
    let mut labels = Vec::new();
    let mut names = Vec::with_capacity(classes.len());
    // The first image's path and (height, width), when sizes must agree.
    let mut first: Option<(PathBuf, (u32, u32))> = None;
    for (label, class_dir) in classes.iter().enumerate() {
        let name = class_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let files = sorted_entries(class_dir)?;
        if files.is_empty() {
            return Err(DataError::Empty {
                path: class_dir.clone(),
                why: format!("class folder \"{name}\" holds no images"),
            });
        }
        for path in files {
            if path.is_dir() {
                return Err(DataError::NotAnImage {
                    path,
                    why: "it is a folder; images must sit directly in their class folder".into(),
                });
            }
            let mut img = decode_png(&path)?;
            let hw = (img.height(), img.width());
            match (opts.size, &first) {
                (Some((h, w)), _) if hw != (h, w) => {
                    img = img.resize_exact(w, h, FilterType::Triangle);
                }
                (Some(_), _) => {}
                (None, None) => first = Some((path.clone(), hw)),
                (None, Some((first_path, first_hw))) if hw != *first_hw => {
                    return Err(DataError::ImageSize {
                        path,
                        found: hw,
                        first: first_path.clone(),
                        expected: *first_hw,
                    });
                }
                (None, Some(_)) => {}
            }
            push_chw(&img, opts.channels, &mut data);
            labels.push(label);
        }
        names.push(name);
    }
    let (h, w) = opts.size.or(first.map(|f| f.1)).unwrap_or((0, 0));
    let images = Tensor::from_vec(data, [labels.len(), opts.channels, h as usize, w as usize]);
    Ok(Dataset::new(images, labels, names))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_util::TempDir;
    use image::{GrayImage, Luma, Rgb, RgbImage, Rgba, RgbaImage};

    fn save(dir: &Path, rel: &str, img: impl Into<DynamicImage>) -> PathBuf {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        img.into().save_with_format(&p, ImageFormat::Png).unwrap();
        p
    }

    fn err_text<T: std::fmt::Debug>(r: Result<T, DataError>) -> String {
        r.unwrap_err().to_string()
    }

    /// Two grey 3x2 images in "a", one RGB 3x2 in "b".
    fn mixed(dir: &Path) {
        save(
            dir,
            "a/0.png",
            GrayImage::from_fn(2, 3, |x, y| Luma([(10 * (x + 2 * y)) as u8])),
        );
        save(dir, "a/1.png", GrayImage::from_pixel(2, 3, Luma([255])));
        save(
            dir,
            "b/x.png",
            RgbImage::from_fn(2, 3, |x, y| Rgb([255, (x * 100) as u8, (y * 50) as u8])),
        );
    }

    #[test]
    fn loads_grey_and_rgb() {
        let dir = TempDir::new("png-load");
        mixed(dir.path());
        std::fs::write(dir.path().join("README.txt"), "top-level files are ignored").unwrap();
        std::fs::write(dir.path().join("a/.DS_Store"), "hidden files are ignored").unwrap();

        let grey = load_png_folder::<f64>(dir.path(), PngFolderOptions::default()).unwrap();
        assert_eq!(grey.images().shape().dims(), &[3, 1, 3, 2]);
        assert_eq!(grey.labels(), &[0, 0, 1]);
        assert_eq!(grey.class_names(), &["a", "b"]);
        // Pixel (x=1, y=2) of the first image is 10 * 5 = 50.
        assert_eq!(grey.images()[[0, 0, 2, 1]], 50.0 / 255.0);
        assert_eq!(grey.images()[[1, 0, 1, 1]], 1.0);

        let rgb = load_png_folder::<f32>(
            dir.path(),
            PngFolderOptions {
                channels: 3,
                size: None,
            },
        )
        .unwrap();
        assert_eq!(rgb.images().shape().dims(), &[3, 3, 3, 2]);
        // Grey repeats in each channel; RGB comes out planar.
        for c in 0..3 {
            assert_eq!(rgb.images()[[0, c, 2, 1]], 50.0 / 255.0);
        }
        assert_eq!(rgb.images()[[2, 0, 2, 1]], 1.0);
        assert_eq!(rgb.images()[[2, 1, 2, 1]], 100.0 / 255.0);
        assert_eq!(rgb.images()[[2, 2, 2, 1]], 100.0 / 255.0);
        assert_eq!(rgb.images()[[2, 2, 1, 0]], 50.0 / 255.0);
        // Red to grey by luma: well below white, above black.
        let red_grey = grey.images()[[2, 0, 0, 0]];
        assert!(red_grey > 0.1 && red_grey < 0.5, "{red_grey}");
    }

    #[test]
    fn alpha_is_dropped() {
        let dir = TempDir::new("png-alpha");
        save(
            dir.path(),
            "c/0.png",
            RgbaImage::from_pixel(2, 2, Rgba([0, 255, 0, 10])),
        );
        let ds = load_png_folder::<f32>(
            dir.path(),
            PngFolderOptions {
                channels: 3,
                size: None,
            },
        )
        .unwrap();
        assert_eq!(ds.images().shape().dims(), &[1, 3, 2, 2]);
        assert_eq!(ds.images()[[0, 1, 1, 1]], 1.0);
    }

    #[test]
    fn resize_or_refuse_a_different_size() {
        let dir = TempDir::new("png-size");
        mixed(dir.path());
        let odd = save(
            dir.path(),
            "b/y.png",
            GrayImage::from_pixel(5, 4, Luma([255])),
        );
        let first = dir.path().join("a/0.png");
        assert_eq!(
            err_text(load_png_folder::<f32>(
                dir.path(),
                PngFolderOptions::default()
            )),
            format!(
                "{}: image is 4x5 (height x width) but the first image, {}, is 3x2; set a size \
                 in the options to resize every image",
                odd.display(),
                first.display()
            )
        );
        let opts = PngFolderOptions {
            channels: 1,
            size: Some((6, 4)),
        };
        let ds = load_png_folder::<f32>(dir.path(), opts).unwrap();
        assert_eq!(ds.images().shape().dims(), &[4, 1, 6, 4]);
        // A uniform white image stays white when resized.
        assert!(
            ds.images().data()[6 * 4..2 * 6 * 4]
                .iter()
                .all(|&x| x == 1.0)
        );
        assert!(ds.images().data()[3 * 6 * 4..].iter().all(|&x| x == 1.0));
    }

    #[test]
    fn non_image_file_is_named() {
        let dir = TempDir::new("png-nonimage");
        mixed(dir.path());
        let notes = dir.path().join("b/notes.txt");
        std::fs::write(&notes, "not a picture").unwrap();
        assert_eq!(
            err_text(load_png_folder::<f32>(
                dir.path(),
                PngFolderOptions::default()
            )),
            format!(
                "{}: not a PNG image: its content is not an image format the loader knows",
                notes.display()
            )
        );
        std::fs::remove_file(&notes).unwrap();
        // A JPEG signature is recognised but not read.
        let jpg = dir.path().join("b/photo.png");
        std::fs::write(
            &jpg,
            [0xff, 0xd8, 0xff, 0xe0, 0, 0x10, b'J', b'F', b'I', b'F', 0],
        )
        .unwrap();
        assert!(
            err_text(load_png_folder::<f32>(
                dir.path(),
                PngFolderOptions::default()
            ))
            .ends_with("photo.png: not a PNG image: it holds a Jpeg image; only PNG is read")
        );
        std::fs::remove_file(&jpg).unwrap();
        // A corrupt PNG: signature right, body wrong.
        let bad = dir.path().join("b/bad.png");
        std::fs::write(&bad, b"\x89PNG\r\n\x1a\ngarbage").unwrap();
        let e = load_png_folder::<f32>(dir.path(), PngFolderOptions::default()).unwrap_err();
        assert!(matches!(e, DataError::Image { .. }), "{e}");
        assert!(
            e.to_string().starts_with(&format!("{}: ", bad.display())),
            "{e}"
        );
        std::fs::remove_file(&bad).unwrap();
        let sub = dir.path().join("b/deeper");
        std::fs::create_dir(&sub).unwrap();
        assert_eq!(
            err_text(load_png_folder::<f32>(
                dir.path(),
                PngFolderOptions::default()
            )),
            format!(
                "{}: not a PNG image: it is a folder; images must sit directly in their class folder",
                sub.display()
            )
        );
    }

    #[test]
    fn empty_folder_and_class_without_images() {
        let dir = TempDir::new("png-empty");
        std::fs::write(dir.path().join("stray.png"), "x").unwrap();
        assert_eq!(
            err_text(load_png_folder::<f32>(
                dir.path(),
                PngFolderOptions::default()
            )),
            format!(
                "{}: no class folders: expected one sub-folder per class, holding its PNG images",
                dir.path().display()
            )
        );
        mixed(dir.path());
        let empty = dir.path().join("c");
        std::fs::create_dir(&empty).unwrap();
        std::fs::write(empty.join(".hidden"), "").unwrap();
        assert_eq!(
            err_text(load_png_folder::<f32>(
                dir.path(),
                PngFolderOptions::default()
            )),
            format!("{}: class folder \"c\" holds no images", empty.display())
        );
        let e = err_text(load_png_folder::<f32>(
            dir.path().join("none"),
            PngFolderOptions::default(),
        ));
        assert!(e.ends_with("none: not found (a folder with one sub-folder of PNG images per class was expected)"), "{e}");
    }

    #[test]
    fn bad_options() {
        let dir = TempDir::new("png-opts");
        let e = err_text(load_png_folder::<f32>(
            dir.path(),
            PngFolderOptions {
                channels: 2,
                size: None,
            },
        ));
        assert_eq!(
            e,
            format!(
                "{}: channels must be 1 (grey) or 3 (RGB), not 2",
                dir.path().display()
            )
        );
        let e = err_text(load_png_folder::<f32>(
            dir.path(),
            PngFolderOptions {
                channels: 1,
                size: Some((0, 5)),
            },
        ));
        assert!(
            e.ends_with("size 0x5 (height x width) must be between 1x1 and 8192x8192"),
            "{e}"
        );
    }

    /// A PNG with a valid signature and IHDR (CRC included) declaring `w x h`, and no data.
    fn png_header_only(w: u32, h: u32) -> Vec<u8> {
        let mut chunk = b"IHDR".to_vec();
        chunk.extend(w.to_be_bytes());
        chunk.extend(h.to_be_bytes());
        chunk.extend([8, 0, 0, 0, 0]); // 8-bit grey, no interlace
        let mut crc = flate2::Crc::new();
        crc.update(&chunk);
        let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
        b.extend(13u32.to_be_bytes());
        b.extend(&chunk);
        b.extend(crc.sum().to_be_bytes());
        b
    }

    #[test]
    fn absurd_declared_dimensions_refused_before_decoding() {
        let dir = TempDir::new("png-huge");
        let p = dir.path().join("a/huge.png");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, png_header_only(100_000, 50_000)).unwrap();
        let t = std::time::Instant::now();
        assert_eq!(
            err_text(load_png_folder::<f32>(
                dir.path(),
                PngFolderOptions::default()
            )),
            format!(
                "{}: header field dimensions is 50000x100000 (height x width), expected between \
                 1x1 and 8192x8192",
                p.display()
            )
        );
        assert!(t.elapsed().as_millis() < 500);
        std::fs::write(&p, png_header_only(0, 5)).unwrap();
        assert!(
            err_text(load_png_folder::<f32>(dir.path(), PngFolderOptions::default()))
                .ends_with("header field dimensions is 5x0 (height x width), expected between 1x1 and 8192x8192")
        );
        // Within the cap, the same header-only file fails only when decoding its missing data.
        std::fs::write(&p, png_header_only(8192, 8192)).unwrap();
        let e = load_png_folder::<f32>(dir.path(), PngFolderOptions::default()).unwrap_err();
        assert!(matches!(e, DataError::Image { .. }), "{e}");
    }
}
