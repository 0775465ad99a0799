//! PNG bytes through `parse_png`, the decode path of `load_png_folder`: Ok with the
//! shape the options ask for, or Err, never a panic or a runaway allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapegrad::data::{PngFolderOptions, parse_png};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the options: grey or RGB, own size or a small resize.
    let Some((&mode, png)) = data.split_first() else {
        return;
    };
    let channels = if mode & 1 == 0 { 1 } else { 3 };
    let size = (mode & 2 != 0).then(|| (u32::from(mode >> 2 & 7) + 1, u32::from(mode >> 5) + 1));
    let opts = PngFolderOptions { channels, size };
    if let Ok(t) = parse_png::<f32>(png, "fuzz.png", opts) {
        let dims = t.shape().dims();
        assert_eq!(dims[0], channels);
        if let Some((h, w)) = size {
            assert_eq!(&dims[1..], &[h as usize, w as usize]);
        }
        assert!(t.data().iter().all(|v| (0.0..=1.0).contains(v)));
    }
});
