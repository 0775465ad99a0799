//! IDX bytes, plain or gzip-compressed, as images and as labels: `parse_idx_images` and
//! `parse_idx_labels` (the code `read_idx_images` and `read_idx_labels` run) return Ok or
//! Err, never panic, and what they return agrees with the header.
#![no_main]

use flate2::Compression;
use flate2::write::GzEncoder;
use libfuzzer_sys::fuzz_target;
use std::io::Write;
use tapegrad::data::{parse_idx_images, parse_idx_labels};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the mode: bit 0 compresses the rest (so that the decompressing
    // path sees meaningful IDX content, not just broken gzip), bit 1 reads labels.
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let compressed;
    let bytes = if mode & 1 == 1 {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(rest).unwrap();
        compressed = e.finish().unwrap();
        &compressed[..]
    } else {
        rest
    };
    if mode & 2 == 0 {
        if let Ok(im) = parse_idx_images(bytes, "fuzz.idx3") {
            assert_eq!(im.pixels.len(), im.n * im.rows * im.cols);
            let t = im.to_tensor::<f32>();
            assert_eq!(t.numel(), im.pixels.len());
        }
    } else if let Ok(labels) = parse_idx_labels(bytes, "fuzz.idx1") {
        assert!(labels.iter().all(|&l| l < 256));
    }
});
