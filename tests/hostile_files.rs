//! Hostile files: headers that claim absurd sizes, gzip bombs, forged PNG headers and
//! safetensors headers whose offsets, shapes and dtypes disagree. Each is refused quickly,
//! before any large allocation, with an error naming the file and the field at fault.

mod common;

use common::TempDir;
use flate2::Compression;
use flate2::write::GzEncoder;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tapegrad::data::{
    DataError, PngFolderOptions, load_digits_json, load_png_folder, parse_idx_images,
    parse_idx_labels, parse_png, read_idx_images, read_idx_labels,
};
use tapegrad::nn::{IoErrorKind, ParamStore, load_safetensors, parse_safetensors};

/// Refusals are header checks: anything slower means data was read or decoded.
const FAST: Duration = Duration::from_millis(1000);

fn write(dir: &TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.0.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Runs `f`, asserting it is fast, and returns its error's message.
fn refused<T: std::fmt::Debug, E: std::fmt::Display>(
    what: &str,
    f: impl FnOnce() -> Result<T, E>,
) -> String {
    let t = Instant::now();
    let e = f().unwrap_err().to_string();
    assert!(t.elapsed() < FAST, "{what} took {:?}", t.elapsed());
    e
}

fn idx_header(ndims: u8, dims: &[u32]) -> Vec<u8> {
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

#[test]
fn idx_header_claiming_four_billion_images() {
    let dir = TempDir::new("hostile-idx");
    let mut b = idx_header(3, &[u32::MAX, 28, 28]);
    b.extend([0u8; 100]);
    let p = write(&dir, "train-images-idx3-ubyte", &b);
    let want = format!(
        "{}: header claims 4294967295 images of 28x28 (3367254359280 bytes) but the file \
         holds 100 bytes after the header",
        p.display()
    );
    assert_eq!(refused("plain", || read_idx_images(&p)), want);
    assert_eq!(
        refused("bytes", || parse_idx_images(&b, &p)),
        want,
        "the in-memory parser says the same"
    );

    // Compressed, the claim cannot be checked without decompressing: over 2 GiB is refused.
    let p = write(&dir, "train-images-idx3-ubyte.gz", &gz(&b));
    assert_eq!(
        refused("gz", || read_idx_images(&p)),
        format!(
            "{}: header field extents is 4294967295 images of 28x28 (3367254359280 bytes), \
             expected at most 2147483648 bytes of data in a gzip-compressed file",
            p.display()
        )
    );
    let mut lb = idx_header(1, &[u32::MAX]);
    lb.extend([1u8; 10]);
    let p = write(&dir, "labels.gz", &gz(&lb));
    assert_eq!(
        refused("labels gz", || read_idx_labels(&p)),
        format!(
            "{}: header field count is 4294967295 labels (4294967295 bytes), expected at most \
             2147483648 bytes of data in a gzip-compressed file",
            p.display()
        )
    );
    let p = write(&dir, "labels", &lb);
    assert!(refused("labels", || read_idx_labels(&p)).ends_with(
        "header claims 4294967295 labels (4294967295 bytes) but the file holds 10 bytes \
             after the header"
    ));
}

#[test]
fn idx_extents_whose_product_overflows() {
    let dir = TempDir::new("hostile-idx-overflow");
    // 2^96 bytes: beyond u64, let alone usize; reported saturated, refused from the header.
    let b = idx_header(3, &[u32::MAX; 3]);
    for (name, bytes) in [("plain", b.clone()), ("gz", gz(&b))] {
        let p = write(&dir, name, &bytes);
        let e = refused(name, || read_idx_images(&p));
        assert!(e.starts_with(&format!("{}: ", p.display())), "{e}");
        assert!(
            e.contains("4294967295 images of 4294967295x4294967295 (18446744073709551615 bytes)"),
            "{e}"
        );
    }
}

#[test]
fn idx_gzip_bomb_is_not_decompressed_past_the_claim() {
    // 64 MiB of zeros behind a header claiming 10 images of 28x28 (7840 bytes): about
    // 64 KiB compressed. Reading stops one byte past the claim.
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(&idx_header(3, &[10, 28, 28])).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        e.write_all(&zeros).unwrap();
    }
    let bomb = e.finish().unwrap();
    assert!(bomb.len() < 1 << 20, "{} bytes compressed", bomb.len());
    let t = Instant::now();
    let e = parse_idx_images(&bomb, "bomb.gz").unwrap_err();
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );
    assert!(
        matches!(e, DataError::DataLength { found: 7841, .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "bomb.gz: header claims 10 images of 28x28 (7840 bytes) but the decompressed file holds \
         more than 7840 bytes after the header"
    );
    // Labels the same way.
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(&idx_header(1, &[5])).unwrap();
    for _ in 0..16 {
        e.write_all(&zeros).unwrap();
    }
    let bomb = e.finish().unwrap();
    assert!(
        refused("labels bomb", || parse_idx_labels(&bomb, "l.gz")).ends_with(
            "(5 bytes) but the decompressed file holds more than 5 bytes after the header"
        )
    );
}

/// A PNG signature and an IHDR chunk declaring `w x h` (8-bit grey), CRC computed unless
/// `bad_crc`, and no image data.
fn png_header(w: u32, h: u32, bad_crc: bool) -> Vec<u8> {
    let mut chunk = b"IHDR".to_vec();
    chunk.extend(w.to_be_bytes());
    chunk.extend(h.to_be_bytes());
    chunk.extend([8, 0, 0, 0, 0]);
    let mut crc = flate2::Crc::new();
    crc.update(&chunk);
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    b.extend(13u32.to_be_bytes());
    b.extend(&chunk);
    b.extend((crc.sum() ^ u32::from(bad_crc)).to_be_bytes());
    b
}

#[test]
fn png_declaring_100k_by_100k_is_refused_before_decoding() {
    let dir = TempDir::new("hostile-png");
    for bad_crc in [false, true] {
        let bytes = png_header(100_000, 100_000, bad_crc);
        let p = write(&dir, "digits/7/huge.png", &bytes);
        let want = format!(
            "{}: header field dimensions is 100000x100000 (height x width), expected between \
             1x1 and 8192x8192",
            p.display()
        );
        assert_eq!(
            refused("folder", || load_png_folder::<f32>(
                dir.0.join("digits"),
                PngFolderOptions::default()
            )),
            want
        );
        assert_eq!(
            refused("bytes", || parse_png::<f32>(
                &bytes,
                &p,
                PngFolderOptions::default()
            )),
            want
        );
    }
    // One side too long is enough, and the message gives height then width.
    let bytes = png_header(3, 9000, false);
    assert!(
        refused("tall", || parse_png::<f32>(
            &bytes,
            "tall.png",
            PngFolderOptions::default()
        ))
        .starts_with("tall.png: header field dimensions is 9000x3 (height x width)")
    );
}

#[test]
fn png_with_its_header_cut_short_is_left_to_the_decoder() {
    // Too short for the size check: the decoder, bounded by the same limits, refuses it.
    let bytes = &png_header(100_000, 100_000, false)[..20];
    let e = parse_png::<f32>(bytes, "cut.png", PngFolderOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::Image { .. }), "{e:?}");
    assert!(e.to_string().starts_with("cut.png: "), "{e}");
}

fn safetensors(json: &str, data: &[u8]) -> Vec<u8> {
    let mut b = (json.len() as u64).to_le_bytes().to_vec();
    b.extend(json.as_bytes());
    b.extend(data);
    b
}

/// The message both loaders (file and bytes) give, after checking they agree.
fn st_refused(dir: &TempDir, name: &str, bytes: &[u8]) -> (PathBuf, String) {
    let p = write(dir, name, bytes);
    let from_file = refused(name, || load_safetensors::<f32>(&p));
    let from_bytes = refused(name, || parse_safetensors::<f64>(bytes, &p));
    assert_eq!(from_file, from_bytes, "{name}");
    let e = parse_safetensors::<f32>(bytes, &p).unwrap_err();
    assert!(
        matches!(*e.kind, IoErrorKind::NotSafetensors { .. }),
        "{e:?}"
    );
    // load_from refuses the file the same way, whatever the store holds.
    let mut s = ParamStore::<f32>::new();
    s.insert("w", tapegrad::tensor::Tensor::zeros([2]));
    assert_eq!(s.load_from(&p).unwrap_err().to_string(), from_file);
    (p.clone(), from_file)
}

fn not_st(p: &Path, why: &str) -> String {
    format!("{} is not a safetensors file: {why}", p.display())
}

#[test]
fn safetensors_header_length_beyond_the_file() {
    let dir = TempDir::new("hostile-st-len");
    let mut b = 1000u64.to_le_bytes().to_vec();
    b.extend(b"{}");
    let (p, e) = st_refused(&dir, "long-header.safetensors", &b);
    assert_eq!(
        e,
        not_st(
            &p,
            "the header claims 1000 bytes but the file has only 2 after the length"
        )
    );
    let mut b = u64::MAX.to_le_bytes().to_vec();
    b.extend([b' '; 16]);
    let (p, e) = st_refused(&dir, "max-header.safetensors", &b);
    assert_eq!(
        e,
        not_st(
            &p,
            "the header claims 18446744073709551615 bytes but the file has only 16 after the length"
        )
    );
    let (p, e) = st_refused(&dir, "short.safetensors", &[1, 2, 3]);
    assert_eq!(
        e,
        not_st(
            &p,
            "the file has 3 bytes, fewer than the 8 of the header length"
        )
    );
}

#[test]
fn safetensors_offsets_out_of_range_reversed_or_overlapping() {
    let dir = TempDir::new("hostile-st-offsets");
    let cases = [
        (
            "beyond",
            r#"{"w":{"dtype":"F32","shape":[1000000000],"data_offsets":[0,4000000000]}}"#,
            8,
            r#"tensor "w": data_offsets [0, 4000000000] reach beyond the 8 bytes of data after the header"#,
        ),
        (
            "reversed",
            r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}}"#,
            8,
            r#"tensor "w": data_offsets [8, 4] end before they begin"#,
        ),
        (
            "overlap",
            r#"{"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
            12,
            r#"tensors "a" and "b" overlap: data_offsets [0, 8] and [4, 12]"#,
        ),
        (
            "same-bytes",
            r#"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
            8,
            r#"tensors "x" and "y" overlap: data_offsets [0, 8] and [0, 8]"#,
        ),
        (
            "three-numbers",
            r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}"#,
            8,
            r#"tensor "w": data_offsets [0, 4, 8] must hold 2 numbers, begin and end"#,
        ),
        (
            // A gap is caught by the safetensors crate, which cannot name the tensor.
            "gap",
            r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
            8,
            "invalid offset for tensor `w`",
        ),
    ];
    for (name, json, data_len, why) in cases {
        let (p, e) = st_refused(&dir, name, &safetensors(json, &vec![0; data_len]));
        assert!(e.starts_with(&not_st(&p, why)), "{name}:\n{e}\n{why}");
    }
}

#[test]
fn safetensors_shapes_that_overflow_or_disagree_with_dtype() {
    let dir = TempDir::new("hostile-st-shape");
    let cases = [
        (
            "elements-overflow",
            r#"{"w":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#,
            r#"tensor "w": shape [4294967296, 4294967296] has more elements than 64 bits can count"#,
        ),
        (
            "bytes-overflow",
            r#"{"w":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]}}"#,
            r#"tensor "w": shape [4611686018427387904] of dtype F64 needs more bytes than 64 bits can count"#,
        ),
        (
            "dtype-length",
            r#"{"w":{"dtype":"F64","shape":[3],"data_offsets":[0,8]}}"#,
            r#"tensor "w": dtype F64 and shape [3] need 24 bytes but data_offsets [0, 8] span 8"#,
        ),
        (
            "f32-length",
            r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
            r#"tensor "w": dtype F32 and shape [3] need 12 bytes but data_offsets [0, 8] span 8"#,
        ),
        (
            "fraction",
            r#"{"w":{"dtype":"F4","shape":[3],"data_offsets":[0,8]}}"#,
            r#"tensor "w": dtype F4 and shape [3] need 12 bits, not a whole number of bytes, but data_offsets [0, 8] span 8"#,
        ),
        (
            // The name is decoded from its JSON escapes before it is quoted.
            "escaped-name",
            r#"{"conv\u00e9.\"w\"":{"dtype":"F32","shape":[],"data_offsets":[0,8]}}"#,
            r#"tensor "convé.\"w\"": dtype F32 and shape [] need 4 bytes but data_offsets [0, 8] span 8"#,
        ),
        (
            "unknown-dtype",
            r#"{"w":{"dtype":"F7","shape":[1],"data_offsets":[0,8]}}"#,
            "invalid JSON in header",
        ),
    ];
    for (name, json, why) in cases {
        let (p, e) = st_refused(&dir, name, &safetensors(json, &[0; 8]));
        assert!(e.starts_with(&not_st(&p, why)), "{name}:\n{e}\n{why}");
    }
}

#[test]
fn safetensors_deeply_nested_header_does_not_overflow_the_stack() {
    let dir = TempDir::new("hostile-st-nest");
    let json = format!("{{\"w\":{}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let (p, e) = st_refused(&dir, "nested", &safetensors(&json, &[]));
    assert!(e.starts_with(&not_st(&p, "invalid JSON in header")), "{e}");
}

#[test]
fn digits_json_with_absurd_numbers() {
    let dir = TempDir::new("hostile-digits");
    let p = write(&dir, "0.json", b"{\"data\": [0, 1e999, 0]}");
    assert_eq!(
        refused("1e999", || load_digits_json::<f32>(&dir.0)),
        format!(
            "{}: malformed JSON at byte 13: '1e999' is not a number",
            p.display()
        )
    );
    let nested = format!("{{\"data\": {}", "[".repeat(100_000));
    let p = write(&dir, "0.json", nested.as_bytes());
    assert_eq!(
        refused("nested", || load_digits_json::<f32>(&dir.0)),
        format!(
            "{}: malformed JSON at byte 100008: EOF while parsing a list",
            p.display()
        )
    );
}
