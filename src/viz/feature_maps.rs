//! Feature maps as pictures: one tile per channel, each layer a row, the way CNN tutorials
//! draw what a network sees.
//!
//! A tensor of shape `[C, H, W]` becomes `C` tiles of `H x W` pixels, each upscaled by an
//! integer factor (nearest neighbour, so every activation stays a crisp square) until it is
//! about [`GridOptions::tile_px`] pixels across. Tiles wrap after [`GridOptions::max_cols`]
//! columns and are framed by 2-pixel separators. A `[N, C, H, W]` batch shows one sample,
//! [`GridOptions::sample`] (0 unless set); a `[H, W]` tensor is a single map. To show a batch
//! of single-channel images side by side, reshape `[N, 1, H, W]` to `[N, H, W]`.
//!
//! Each map is stretched to its own min..max unless [`Scale`] says otherwise, so a faint
//! channel is as visible as a strong one; a constant map shows as mid-grey (or, under
//! [`Colormap::Diverging`], as the colour of its sign). NaN pixels are magenta, infinities
//! take the end colours of the scale.
//!
//! ```
//! use tapegrad::prelude::*;
//! use tapegrad::viz::{GridOptions, feature_map_grid};
//! let maps = Tensor::<f32>::from_fn([3, 12, 12], |i| (i % 144) as f32);
//! let img = feature_map_grid(&maps, &GridOptions::default());
//! // 12x12 maps upscaled 8 times, three tiles with 2-pixel separators around each.
//! assert_eq!(img.dimensions(), (3 * 96 + 4 * 2, 96 + 2 * 2));
//! ```

use super::text;
use super::{VizError, write_png};
use crate::error::{Error, OrPanic};
use crate::float::Float;
use crate::tensor::Tensor;
use image::{Rgb, RgbImage};
use std::path::Path;

/// How map values are turned into brightness.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    /// Each map stretched to its own min..max (the default): shows every map's pattern,
    /// hides how strong maps are relative to each other.
    PerMap,
    /// One min..max over all maps of the tensor (of each row in
    /// [`save_feature_maps`]): shows which channels are strong and which are nearly dead.
    Shared,
    /// A fixed range, e.g. `Fixed(0.0, 1.0)` for pixel intensities; values outside clip.
    Fixed(f64, f64),
}

/// The colours a normalised value is drawn in.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Colormap {
    /// Black (low) to white (high). The default.
    Gray,
    /// Blue (negative) through white (zero) to red (positive), symmetric about zero: for
    /// signed maps such as convolution outputs before the ReLU, or kernels. The range is
    /// `-m..m` with `m` the largest magnitude under the [`Scale`].
    Diverging,
}

/// Options for [`feature_map_grid`] and [`save_feature_maps_with`].
#[derive(Clone, Debug, PartialEq)]
pub struct GridOptions {
    /// About how many pixels across a tile should be: each map is upscaled by
    /// `round(tile_px / max(H, W))`, at least 1. Default 96.
    pub tile_px: u32,
    /// A fixed upscale factor instead of the one derived from `tile_px`.
    pub upscale: Option<u32>,
    /// Tiles per line before wrapping to the next. Default 8.
    pub max_cols: usize,
    /// How values map to brightness. Default [`Scale::PerMap`].
    pub scale: Scale,
    /// Which colours. Default [`Colormap::Gray`].
    pub colormap: Colormap,
    /// The sample shown from a `[N, C, H, W]` tensor. Default 0.
    pub sample: usize,
    /// A label drawn left of the tiles by [`feature_map_grid`] (the rows of
    /// [`save_feature_maps`] carry their own names). Default none.
    pub label: Option<String>,
    /// Print the shape of the maps (`8 x 26x26`) under the label. Default true.
    pub show_shape: bool,
    /// Names written above the tiles of the first line (of the first row in
    /// [`save_feature_maps_with`]), one per column from the left: the class of each image
    /// when the tiles are a batch, or a channel's name. At most as many as that line has
    /// columns; a name wider than its tile is cut. Default none.
    pub column_labels: Vec<String>,
}

impl Default for GridOptions {
    fn default() -> Self {
        GridOptions {
            tile_px: 96,
            upscale: None,
            max_cols: 8,
            scale: Scale::PerMap,
            colormap: Colormap::Gray,
            sample: 0,
            label: None,
            show_shape: true,
            column_labels: Vec::new(),
        }
    }
}

/// Width of the separators between and around tiles.
const SEP: u32 = 2;
/// Vertical white space between the rows of [`feature_map_rows`].
const ROW_GAP: u32 = 10;
/// White space left and right of a label.
const LABEL_PAD: u32 = 10;
/// Text sizes in pixels: row labels, the shape line under them, column labels (the smaller
/// size when a label would not fit its tile at the larger).
const LABEL_PX: f64 = 16.0;
const SHAPE_PX: f64 = 14.0;
const HEAD_PX: [f64; 2] = [16.0, 11.0];
/// White space above the column labels and between them and the tiles below.
const HEADER_GAP: u32 = 4;
const BACKGROUND: Rgb<u8> = Rgb([255, 255, 255]);
const SEPARATOR: Rgb<u8> = Rgb([96, 112, 140]);
const TEXT: Rgb<u8> = Rgb([20, 20, 20]);
const SUBTLE_TEXT: Rgb<u8> = Rgb([110, 110, 110]);
const NAN_COLOUR: Rgb<u8> = Rgb([255, 0, 255]);
/// The largest picture drawn, in pixels; beyond it the options are surely a mistake.
const MAX_PIXELS: u64 = 1 << 28;

/// The maps of one tensor, as `f64`, with their geometry.
struct Maps {
    c: usize,
    h: usize,
    w: usize,
    data: Vec<f64>,
    /// Upscale factor.
    k: u32,
    cols: usize,
    lines: usize,
}

impl Maps {
    fn block_width(&self) -> u32 {
        self.cols as u32 * (self.w as u32 * self.k + SEP) + SEP
    }
    fn block_height(&self) -> u32 {
        self.lines as u32 * (self.h as u32 * self.k + SEP) + SEP
    }
}

#[track_caller]
fn check_options(op: &'static str, opts: &GridOptions) -> Result<(), Error> {
    if opts.max_cols == 0 {
        return Err(Error::bad_argument(
            op,
            "max_cols is 0; need at least 1 tile per line",
        ));
    }
    if opts.upscale == Some(0) {
        return Err(Error::bad_argument(
            op,
            "upscale is Some(0); need a factor of at least 1",
        ));
    }
    if opts.upscale.is_none() && opts.tile_px == 0 {
        return Err(Error::bad_argument(
            op,
            "tile_px is 0; need a tile size of at least 1 pixel",
        ));
    }
    if let Scale::Fixed(lo, hi) = opts.scale
        && !(lo.is_finite() && hi.is_finite() && lo < hi)
    {
        return Err(Error::bad_argument(
            op,
            format!("Scale::Fixed({lo}, {hi}) needs finite bounds with lo < hi"),
        ));
    }
    Ok(())
}

/// Picks the sample, converts to `f64` and lays the tiles out.
#[track_caller]
fn maps_of<T: Float>(op: &'static str, t: &Tensor<T>, opts: &GridOptions) -> Result<Maps, Error> {
    let dims = t.shape().dims();
    let (c, h, w, offset) = match *dims {
        [h, w] => (1, h, w, 0),
        [c, h, w] => (c, h, w, 0),
        [n, c, h, w] => {
            if opts.sample >= n {
                return Err(Error::bad_argument(
                    op,
                    format!(
                        "sample {} is out of range for a batch of {n} (shape {})",
                        opts.sample,
                        t.shape()
                    ),
                ));
            }
            (c, h, w, opts.sample * c * h * w)
        }
        _ => {
            return Err(Error::bad_shape(
                op,
                t.shape(),
                "expected [H, W], [C, H, W] or [N, C, H, W] feature maps",
            ));
        }
    };
    if c * h * w == 0 {
        return Err(Error::bad_shape(op, t.shape(), "there are no maps to draw"));
    }
    let k = opts.upscale.unwrap_or_else(|| {
        let side = h.max(w) as f64;
        ((f64::from(opts.tile_px) / side).round() as u32).max(1)
    });
    let cols = c.min(opts.max_cols);
    let lines = c.div_ceil(cols);
    let maps = Maps {
        c,
        h,
        w,
        data: t.data()[offset..offset + c * h * w]
            .iter()
            .map(|x| x.to_f64())
            .collect(),
        k,
        cols,
        lines,
    };
    let pixels = u64::from(maps.block_width()) * u64::from(maps.block_height());
    if (h.max(w) as u64) * u64::from(k) > u64::from(u32::MAX / 4) || pixels > MAX_PIXELS {
        return Err(Error::bad_argument(
            op,
            format!(
                "{c} maps of {h}x{w} upscaled {k} times would make a picture of over {MAX_PIXELS} \
                 pixels; lower tile_px, upscale or max_cols"
            ),
        ));
    }
    Ok(maps)
}

/// The finite min and max of `v`, or `None` when it holds no finite value.
fn finite_range(v: &[f64]) -> Option<(f64, f64)> {
    v.iter()
        .filter(|x| x.is_finite())
        .fold(None, |acc, &x| match acc {
            None => Some((x, x)),
            Some((lo, hi)) => Some((lo.min(x), hi.max(x))),
        })
}

/// The colour of `v` in a map whose range is `lo..hi`.
fn colour(v: f64, lo: f64, hi: f64, cmap: Colormap) -> Rgb<u8> {
    if v.is_nan() {
        return NAN_COLOUR;
    }
    match cmap {
        Colormap::Gray => {
            // A flat map has no contrast to stretch: show it mid-grey rather than divide by 0.
            let t = if hi > lo {
                ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
            } else if v.is_infinite() {
                if v > 0.0 { 1.0 } else { 0.0 }
            } else {
                0.5
            };
            let g = (t * 255.0).round() as u8;
            Rgb([g, g, g])
        }
        Colormap::Diverging => {
            let m = lo.abs().max(hi.abs());
            let t = if m > 0.0 {
                (v / m).clamp(-1.0, 1.0)
            } else if v.is_infinite() {
                v.signum()
            } else {
                0.0
            };
            // White at zero, fading to a saturated blue or red at the ends.
            let end = if t < 0.0 {
                [33.0, 102.0, 172.0]
            } else {
                [178.0, 24.0, 43.0]
            };
            let a = t.abs();
            let mix = |e: f64| (255.0 + (e - 255.0) * a).round() as u8;
            Rgb([mix(end[0]), mix(end[1]), mix(end[2])])
        }
    }
}

/// Draws the tile block of `maps` with its top-left corner at `(x0, y0)`.
fn draw_block(img: &mut RgbImage, x0: u32, y0: u32, maps: &Maps, opts: &GridOptions) {
    let plane = maps.h * maps.w;
    let shared = match opts.scale {
        Scale::Fixed(lo, hi) => Some((lo, hi)),
        Scale::Shared => Some(finite_range(&maps.data).unwrap_or((0.0, 0.0))),
        Scale::PerMap => None,
    };
    let k = maps.k;
    for ch in 0..maps.c {
        let map = &maps.data[ch * plane..(ch + 1) * plane];
        let (lo, hi) = shared.unwrap_or_else(|| finite_range(map).unwrap_or((0.0, 0.0)));
        let tx = x0 + SEP + (ch % maps.cols) as u32 * (maps.w as u32 * k + SEP);
        let ty = y0 + SEP + (ch / maps.cols) as u32 * (maps.h as u32 * k + SEP);
        // Each tile gets its own frame (neighbours share theirs), so the empty cells after the
        // last tile stay background instead of a slab of separator colour.
        for y in ty - SEP..ty + maps.h as u32 * k + SEP {
            for x in tx - SEP..tx + maps.w as u32 * k + SEP {
                img.put_pixel(x, y, SEPARATOR);
            }
        }
        for (i, &v) in map.iter().enumerate() {
            let (r, c) = ((i / maps.w) as u32, (i % maps.w) as u32);
            let px = colour(v, lo, hi, opts.colormap);
            for dy in 0..k {
                for dx in 0..k {
                    img.put_pixel(tx + c * k + dx, ty + r * k + dy, px);
                }
            }
        }
    }
}

/// The shape line printed under a label: `8 x 26x26`, or `26x26` for one map.
fn shape_text(maps: &Maps) -> String {
    if maps.c == 1 {
        format!("{}x{}", maps.h, maps.w)
    } else {
        format!("{} x {}x{}", maps.c, maps.h, maps.w)
    }
}

/// Width of the label column for these labels (0 when there are none).
fn label_column(labels: &[(Option<&str>, String)], show_shape: bool) -> u32 {
    let widest = labels
        .iter()
        .map(|(l, shape)| {
            let lw = l.map_or(0, |l| text::width(l, LABEL_PX));
            let sw = if show_shape && l.is_some() {
                text::width(shape, SHAPE_PX)
            } else {
                0
            };
            lw.max(sw)
        })
        .max()
        .unwrap_or(0);
    if widest == 0 {
        0
    } else {
        widest + 2 * LABEL_PAD
    }
}

/// The column labels of `opts` cut to fit tiles `tile` pixels wide (ending in `..` when
/// cut), and the text size they are drawn at: the larger when every one fits at it.
fn column_labels(opts: &GridOptions, tile: u32) -> (Vec<String>, f64) {
    let labels = &opts.column_labels;
    let [large, small] = HEAD_PX;
    let px = if labels.iter().all(|l| text::width(l, large) <= tile) {
        large
    } else {
        small
    };
    (labels.iter().map(|l| text::fit(l, px, tile)).collect(), px)
}

/// Refuses more column labels than the first line of `first` has columns.
#[track_caller]
fn check_column_labels(op: &'static str, first: &Maps, opts: &GridOptions) -> Result<(), Error> {
    let n = opts.column_labels.len();
    if n > first.cols {
        return Err(Error::bad_argument(
            op,
            format!(
                "{n} column labels for {} columns of tiles ({} maps, max_cols {}); give at most one per column",
                first.cols, first.c, opts.max_cols
            ),
        ));
    }
    Ok(())
}

/// Draws rows of maps under one another, each with its label in a shared left column, under
/// the column labels.
fn compose(rows: &[(Option<&str>, Maps)], opts: &GridOptions) -> RgbImage {
    let texts: Vec<(Option<&str>, String)> =
        rows.iter().map(|(l, m)| (*l, shape_text(m))).collect();
    let label_w = label_column(&texts, opts.show_shape);
    let label_h = |l: Option<&str>| match l {
        None => 0,
        Some(_) if opts.show_shape => text::height(LABEL_PX) + 4 + text::height(SHAPE_PX),
        Some(_) => text::height(LABEL_PX),
    };
    let row_h: Vec<u32> = rows
        .iter()
        .map(|(l, m)| m.block_height().max(label_h(*l)))
        .collect();
    let width = label_w + rows.iter().map(|(_, m)| m.block_width()).max().unwrap_or(0);
    let first = &rows[0].1;
    let tile = first.w as u32 * first.k;
    let (heads, head_px) = column_labels(opts, tile);
    let header = if heads.is_empty() {
        0
    } else {
        text::height(head_px) + 2 * HEADER_GAP
    };
    let height =
        header + row_h.iter().sum::<u32>() + ROW_GAP * (rows.len() as u32).saturating_sub(1);
    let mut img = RgbImage::from_pixel(width, height, BACKGROUND);
    for (col, head) in heads.iter().enumerate() {
        // Centred over its tile (cut to fit it, so never wider).
        let x = label_w
            + SEP
            + col as u32 * (tile + SEP)
            + tile.saturating_sub(text::width(head, head_px)) / 2;
        text::draw(&mut img, x, HEADER_GAP, head, TEXT, head_px);
    }
    let mut y = header;
    for (((label, maps), (_, shape)), &h) in rows.iter().zip(&texts).zip(&row_h) {
        draw_block(
            &mut img,
            label_w,
            y + (h - maps.block_height()) / 2,
            maps,
            opts,
        );
        if let Some(label) = label {
            let ty = y + (h - label_h(Some(label))) / 2;
            text::draw(&mut img, LABEL_PAD, ty, label, TEXT, LABEL_PX);
            if opts.show_shape {
                let sy = ty + text::height(LABEL_PX) + 4;
                text::draw(&mut img, LABEL_PAD, sy, shape, SUBTLE_TEXT, SHAPE_PX);
            }
        }
        y += h + ROW_GAP;
    }
    img
}

/// The channels of `t` as a grid of tiles, or an error naming what was refused.
///
/// `t` is `[H, W]`, `[C, H, W]`, or `[N, C, H, W]` (sample [`GridOptions::sample`] shown).
/// Without a label the picture is exactly the tile block: `cols * (W*k + 2) + 2` by
/// `lines * (H*k + 2) + 2` pixels, for `cols = min(C, max_cols)`, `lines = ceil(C / cols)`
/// and upscale factor `k`; a label adds a column on the left.
///
/// # Errors
/// Another rank, an empty tensor, a sample out of range, `max_cols`, `tile_px` or `upscale`
/// of 0, a `Scale::Fixed` range that is empty or not finite, a picture of over 2^28 pixels,
/// or more column labels than the first line has columns.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::viz::{GridOptions, try_feature_map_grid};
/// let e = try_feature_map_grid(&Tensor::<f64>::zeros([5]), &GridOptions::default());
/// assert!(e.unwrap_err().to_string().starts_with("feature_map_grid: shape [5] refused"));
/// ```
#[track_caller]
pub fn try_feature_map_grid<T: Float>(
    t: &Tensor<T>,
    opts: &GridOptions,
) -> Result<RgbImage, Error> {
    const OP: &str = "feature_map_grid";
    check_options(OP, opts)?;
    let maps = maps_of(OP, t, opts)?;
    check_column_labels(OP, &maps, opts)?;
    Ok(compose(&[(opts.label.as_deref(), maps)], opts))
}

/// The channels of `t` as a grid of tiles; see [`try_feature_map_grid`] for the layout.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::viz::{Colormap, GridOptions, feature_map_grid};
/// let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0);
/// let acts = Tensor::<f32>::randn([2, 16, 24, 24], &mut rng);
/// let opts = GridOptions { colormap: Colormap::Diverging, ..GridOptions::default() };
/// let img = feature_map_grid(&acts, &opts);
/// assert_eq!(img.dimensions(), (8 * 98 + 2, 2 * 98 + 2)); // 16 tiles of 96 px, 2 lines
/// ```
///
/// # Panics
/// On the errors of [`try_feature_map_grid`].
#[track_caller]
pub fn feature_map_grid<T: Float>(t: &Tensor<T>, opts: &GridOptions) -> RgbImage {
    try_feature_map_grid(t, opts).or_panic()
}

/// Several tensors as labelled rows of tiles, top to bottom, in one picture.
///
/// Each row is laid out as by [`feature_map_grid`] with its own upscale factor (so a pooled
/// 13x13 row has tiles about as big as the 26x26 row above it, in coarser squares) and,
/// under [`Scale::Shared`], its own shared range. Rows are left-aligned after a label column
/// as wide as the widest name; [`GridOptions::label`] is not used.
///
/// # Errors
/// As [`try_feature_map_grid`], for the first row refused; also when `rows` is empty.
#[track_caller]
pub fn feature_map_rows<T: Float>(
    rows: &[(&str, &Tensor<T>)],
    opts: &GridOptions,
) -> Result<RgbImage, Error> {
    const OP: &str = "save_feature_maps";
    check_options(OP, opts)?;
    if rows.is_empty() {
        return Err(Error::bad_argument(OP, "no rows to draw"));
    }
    let mut maps = Vec::with_capacity(rows.len());
    for (name, t) in rows {
        maps.push((Some(*name), maps_of(OP, t, opts)?));
    }
    check_column_labels(OP, &maps[0].1, opts)?;
    Ok(compose(&maps, opts))
}

/// Writes several tensors as labelled rows of feature maps to a PNG at `path`, with the
/// default [`GridOptions`]; parent directories are created.
///
/// ```
/// use tapegrad::prelude::*;
/// use tapegrad::viz::save_feature_maps;
/// let x = Tensor::<f32>::from_fn([1, 28, 28], |i| ((i % 28) as f32 * 0.3).sin());
/// let conv = Tensor::<f32>::from_fn([4, 26, 26], |i| (i as f32 * 0.01).cos());
/// let relu = conv.map(|v| v.max(0.0));
/// let path = std::env::temp_dir().join("tapegrad-doc-maps").join("maps.png");
/// save_feature_maps(&path, &[("input", &x), ("conv", &conv), ("relu", &relu)]).unwrap();
/// # std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
/// ```
///
/// # Errors
/// [`VizError::Input`] as [`feature_map_rows`]; [`VizError::Write`], naming the path, when
/// the directory or the file cannot be written.
#[track_caller]
pub fn save_feature_maps<T: Float>(
    path: impl AsRef<Path>,
    rows: &[(&str, &Tensor<T>)],
) -> Result<(), VizError> {
    save_feature_maps_with(path, rows, &GridOptions::default())
}

/// [`save_feature_maps`] with options.
///
/// # Errors
/// As [`save_feature_maps`].
#[track_caller]
pub fn save_feature_maps_with<T: Float>(
    path: impl AsRef<Path>,
    rows: &[(&str, &Tensor<T>)],
    opts: &GridOptions,
) -> Result<(), VizError> {
    let img = feature_map_rows(rows, opts)?;
    write_png(&img, path.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gray(img: &RgbImage, x: u32, y: u32) -> u8 {
        let p = img.get_pixel(x, y).0;
        assert!(p[0] == p[1] && p[1] == p[2], "not grey at {x},{y}: {p:?}");
        p[0]
    }

    fn opts(k: u32) -> GridOptions {
        GridOptions {
            upscale: Some(k),
            ..GridOptions::default()
        }
    }

    /// A scratch directory unique to this process and test.
    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("tapegrad-viz-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn sizes_follow_the_documented_layout() {
        // (shape, options, expected (width, height))
        let o = GridOptions::default();
        let wrap = GridOptions {
            upscale: Some(3),
            max_cols: 5,
            ..GridOptions::default()
        };
        let cases: Vec<(Vec<usize>, &GridOptions, (u32, u32))> = vec![
            (vec![3, 12, 12], &o, (3 * 98 + 2, 98 + 2)),
            (vec![12, 5, 7], &wrap, (5 * 23 + 2, 3 * 17 + 2)),
            (vec![5, 7], &wrap, (7 * 3 + 4, 5 * 3 + 4)),
            (vec![2, 16, 28, 28], &o, (8 * 86 + 2, 2 * 86 + 2)), // 96/28 rounds to 3
            (vec![1, 1, 1, 1], &o, (100, 100)),                  // 1x1 upscaled 96 times
            (vec![1, 200, 300], &o, (304, 204)),                 // a big map is never shrunk
        ];
        for (shape, o, want) in cases {
            let t = Tensor::<f32>::zeros(shape.as_slice());
            assert_eq!(feature_map_grid(&t, o).dimensions(), want, "{shape:?}");
        }
    }

    #[test]
    fn tiles_sit_where_the_layout_says_with_per_map_normalisation() {
        // Two 2x3 maps: 0..5 and 10..15. Upscale 2: tiles 6x4 pixels, origin (2, 2) and (10, 2).
        let t = Tensor::<f64>::from_fn([2, 2, 3], |i| if i < 6 { i } else { i + 4 } as f64);
        let img = feature_map_grid(&t, &opts(2));
        assert_eq!(img.dimensions(), (2 * 8 + 2, 4 + 4));
        for (x, y) in [(0, 0), (1, 5), (8, 3), (9, 7), (17, 0)] {
            assert_eq!(*img.get_pixel(x, y), SEPARATOR, "separator at {x},{y}");
        }
        // Map 0, element (row 0, col 0) = 0 -> black; (1, 2) = 5 -> white; (0, 2) = 2 -> 2/5.
        assert_eq!(gray(&img, 2, 2), 0);
        assert_eq!(gray(&img, 3, 3), 0); // the same element, upscaled
        assert_eq!(gray(&img, 2 + 4, 2 + 2), 255);
        assert_eq!(gray(&img, 2 + 4 + 1, 2 + 2 + 1), 255);
        assert_eq!(gray(&img, 2 + 4, 2), 102);
        assert_eq!(gray(&img, 2 + 2, 2), 51); // (0, 1) = 1
        // Map 1 is stretched to its own range: 10 -> black, 15 -> white, 12 -> 2/5.
        assert_eq!(gray(&img, 10, 2), 0);
        assert_eq!(gray(&img, 10 + 4, 2 + 2), 255);
        assert_eq!(gray(&img, 10 + 4, 3), 102);
    }

    #[test]
    fn shared_and_fixed_scales() {
        let t = Tensor::<f32>::from_fn([2, 2, 3], |i| if i < 6 { i } else { i + 4 } as f32);
        let shared = GridOptions {
            scale: Scale::Shared,
            ..opts(2)
        };
        let img = feature_map_grid(&t, &shared);
        assert_eq!(gray(&img, 2, 2), 0); // 0 of 0..15
        assert_eq!(gray(&img, 2 + 4, 2 + 2), 85); // 5 of 0..15
        assert_eq!(gray(&img, 10, 2), 170); // 10 of 0..15
        assert_eq!(gray(&img, 10 + 4, 2 + 2), 255); // 15
        let fixed = GridOptions {
            scale: Scale::Fixed(2.0, 4.0),
            ..opts(2)
        };
        let img = feature_map_grid(&t, &fixed);
        assert_eq!(gray(&img, 2, 2), 0); // 0 clips to 2
        assert_eq!(gray(&img, 2, 2 + 2), 128); // 3, element (1, 0), is mid-range: 127.5
        assert_eq!(gray(&img, 10, 2), 255); // 10 clips to 4
    }

    #[test]
    fn constant_and_non_finite_maps_draw_without_nan() {
        let cases: Vec<(f64, Colormap, Rgb<u8>)> = vec![
            (0.0, Colormap::Gray, Rgb([128, 128, 128])),
            (7.5, Colormap::Gray, Rgb([128, 128, 128])),
            (-3.0, Colormap::Gray, Rgb([128, 128, 128])),
            (0.0, Colormap::Diverging, Rgb([255, 255, 255])),
            (5.0, Colormap::Diverging, Rgb([178, 24, 43])),
            (-5.0, Colormap::Diverging, Rgb([33, 102, 172])),
            (f64::NAN, Colormap::Gray, NAN_COLOUR),
            (f64::NAN, Colormap::Diverging, NAN_COLOUR),
            (f64::INFINITY, Colormap::Gray, Rgb([255, 255, 255])),
            (f64::NEG_INFINITY, Colormap::Gray, Rgb([0, 0, 0])),
            (f64::INFINITY, Colormap::Diverging, Rgb([178, 24, 43])),
        ];
        for (v, colormap, want) in cases {
            for scale in [Scale::PerMap, Scale::Shared] {
                let o = GridOptions {
                    colormap,
                    scale,
                    ..opts(1)
                };
                let img = feature_map_grid(&Tensor::<f64>::full([1, 3, 3], v), &o);
                for y in 2..5 {
                    for x in 2..5 {
                        assert_eq!(*img.get_pixel(x, y), want, "{v} {colormap:?} {scale:?}");
                    }
                }
            }
        }
        // Infinities and NaN among finite values: the range comes from the finite ones.
        let t = Tensor::<f32>::from_vec(vec![0.0, 1.0, f32::INFINITY, f32::NAN], [2, 2]);
        let img = feature_map_grid(&t, &opts(1));
        assert_eq!(gray(&img, 2, 2), 0);
        assert_eq!(gray(&img, 3, 2), 255);
        assert_eq!(gray(&img, 2, 3), 255);
        assert_eq!(*img.get_pixel(3, 3), NAN_COLOUR);
    }

    #[test]
    fn diverging_is_symmetric_about_zero() {
        let t = Tensor::<f64>::from_vec(vec![-1.0, 0.0, 0.5, 2.0], [1, 4]);
        let o = GridOptions {
            colormap: Colormap::Diverging,
            ..opts(1)
        };
        let img = feature_map_grid(&t, &o);
        // Range -2..2: -1 is half-way to blue, 0 white, 2 full red.
        assert_eq!(img.get_pixel(2, 2).0, [144, 179, 214]);
        assert_eq!(img.get_pixel(3, 2).0, [255, 255, 255]);
        assert_eq!(img.get_pixel(5, 2).0, [178, 24, 43]);
    }

    #[test]
    fn sample_picks_from_a_batch() {
        // Sample 1 holds the map 100..103, sample 0 the constant 0.
        let t =
            Tensor::<f32>::from_fn([2, 1, 2, 2], |i| if i < 4 { 0.0 } else { i as f32 * 100.0 });
        let o = GridOptions {
            sample: 1,
            ..opts(1)
        };
        let img = feature_map_grid(&t, &o);
        assert_eq!(gray(&img, 2, 2), 0);
        assert_eq!(gray(&img, 3, 3), 255);
        assert_eq!(gray(&feature_map_grid(&t, &opts(1)), 2, 2), 128);
    }

    #[test]
    fn labels_add_a_column_and_rows_stack() {
        let t = Tensor::<f32>::zeros([2, 4, 4]);
        let plain = feature_map_grid(&t, &opts(2));
        let o = GridOptions {
            label: Some("conv1".into()),
            ..opts(2)
        };
        let labelled = feature_map_grid(&t, &o);
        // The label column is as wide as the wider of "conv1" and the shape line "2 x 4x4".
        let col =
            text::width("conv1", LABEL_PX).max(text::width("2 x 4x4", SHAPE_PX)) + 2 * LABEL_PAD;
        assert_eq!(labelled.width(), plain.width() + col);
        assert!(labelled.height() >= plain.height());
        assert!(labelled.pixels().any(|p| *p == TEXT));
        let no_shape = GridOptions {
            show_shape: false,
            ..o
        };
        let img = feature_map_grid(&t, &no_shape);
        assert_eq!(
            img.width(),
            plain.width() + text::width("conv1", LABEL_PX) + 2 * LABEL_PAD
        );
        assert!(!img.pixels().any(|p| *p == SUBTLE_TEXT));

        // Rows: the widest block sets the width; heights add up with gaps between rows.
        let a = Tensor::<f64>::zeros([1, 8, 8]);
        let b = Tensor::<f64>::zeros([3, 4, 4]);
        let img = feature_map_rows(&[("input", &a), ("a-much-longer-name", &b)], &opts(2)).unwrap();
        let col = text::width("a-much-longer-name", LABEL_PX) + 2 * LABEL_PAD;
        assert_eq!(img.width(), col + 3 * 10 + 2);
        // Both rows are shorter than their two lines of label.
        let label_h = text::height(LABEL_PX) + 4 + text::height(SHAPE_PX);
        assert_eq!(img.height(), 2 * label_h + ROW_GAP);
    }

    #[test]
    fn column_labels_sit_above_their_tiles() {
        // Three 6x6 maps upscaled 4 times: 24-pixel tiles at x = 2, 28, 54.
        let t = Tensor::<f32>::zeros([3, 6, 6]);
        let plain = feature_map_grid(&t, &opts(4));
        let o = GridOptions {
            column_labels: vec!["ab".into(), "a-very-long-name".into()],
            ..opts(4)
        };
        let img = feature_map_grid(&t, &o);
        // "ab" fits a tile at the larger size, the long name does not: both are drawn at the
        // smaller.
        let header = text::height(HEAD_PX[1]) + 2 * HEADER_GAP;
        assert_eq!(img.dimensions(), (plain.width(), plain.height() + header));
        let text_in = |x0: u32, x1: u32| {
            (x0..x1).any(|x| (0..header).any(|y| *img.get_pixel(x, y) != BACKGROUND))
        };
        // Each label stays within its own tile's columns; the third column has none.
        assert!(text_in(2, 26) && text_in(28, 52));
        assert!(!text_in(0, 2) && !text_in(26, 28) && !text_in(52, img.width()));
        // The tiles moved down by the header, pixel for pixel.
        for (x, y, p) in plain.enumerate_pixels() {
            assert_eq!(img.get_pixel(x, y + header), p);
        }
        // The long name is cut to what fits 24 pixels at the smaller size, marked "..".
        let (cut, px) = column_labels(&o, 24);
        assert_eq!(px, HEAD_PX[1]);
        assert_eq!(cut[0], "ab");
        assert!(
            cut[1].starts_with("a-") && cut[1].ends_with(".."),
            "{cut:?}"
        );
        assert!(text::width(&cut[1], px) <= 24);
        let fits = GridOptions {
            column_labels: vec!["ab".into()],
            ..opts(4)
        };
        assert_eq!(
            column_labels(&fits, 24),
            (vec!["ab".to_string()], HEAD_PX[0])
        );

        // Rows: the labels go above the first row only (16-pixel tiles).
        let a = Tensor::<f64>::zeros([2, 4, 4]);
        let rows = feature_map_rows(&[("x", &a), ("y", &a)], &fits).unwrap();
        let bare = feature_map_rows(
            &[("x", &a), ("y", &a)],
            &GridOptions {
                column_labels: vec![],
                ..fits.clone()
            },
        )
        .unwrap();
        assert_eq!(
            rows.height(),
            bare.height() + text::height(column_labels(&fits, 16).1) + 2 * HEADER_GAP
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let here = "(called at src/viz/feature_maps.rs:";
        let z = |s: &[usize]| Tensor::<f32>::zeros(s);
        let cases: Vec<(Tensor<f32>, GridOptions, &str)> = vec![
            (
                z(&[5]),
                opts(1),
                "feature_map_grid: shape [5] refused: expected [H, W], [C, H, W] or [N, C, H, W]",
            ),
            (
                z(&[1, 1, 1, 1, 1]),
                opts(1),
                "feature_map_grid: shape [1, 1, 1, 1, 1] refused",
            ),
            (
                z(&[0, 3, 3]),
                opts(1),
                "feature_map_grid: shape [0, 3, 3] refused: there are no maps to draw",
            ),
            (
                z(&[2, 1, 3, 3]),
                GridOptions {
                    sample: 2,
                    ..opts(1)
                },
                "feature_map_grid: sample 2 is out of range for a batch of 2 (shape [2, 1, 3, 3])",
            ),
            (
                z(&[2, 3, 3]),
                GridOptions {
                    max_cols: 0,
                    ..opts(1)
                },
                "feature_map_grid: max_cols is 0",
            ),
            (
                z(&[2, 3, 3]),
                opts(0),
                "feature_map_grid: upscale is Some(0)",
            ),
            (
                z(&[2, 3, 3]),
                GridOptions {
                    tile_px: 0,
                    ..GridOptions::default()
                },
                "feature_map_grid: tile_px is 0",
            ),
            (
                z(&[2, 3, 3]),
                GridOptions {
                    scale: Scale::Fixed(1.0, 1.0),
                    ..opts(1)
                },
                "feature_map_grid: Scale::Fixed(1, 1) needs finite bounds with lo < hi",
            ),
            (
                z(&[10, 3, 3]),
                GridOptions {
                    max_cols: 4,
                    column_labels: vec!["a".into(); 5],
                    ..opts(1)
                },
                "feature_map_grid: 5 column labels for 4 columns of tiles (10 maps, max_cols 4); give at most one per column",
            ),
            (
                z(&[2, 3, 3]),
                GridOptions {
                    scale: Scale::Fixed(f64::NAN, 1.0),
                    ..opts(1)
                },
                "feature_map_grid: Scale::Fixed(NaN, 1) needs",
            ),
            (
                z(&[64, 100, 100]),
                opts(1000),
                "feature_map_grid: 64 maps of 100x100 upscaled 1000 times would make a picture",
            ),
        ];
        for (t, o, want) in cases {
            let msg = try_feature_map_grid(&t, &o).unwrap_err().to_string();
            assert!(msg.starts_with(want), "{msg}");
            assert!(msg.contains(here), "{msg}");
        }
        let e = feature_map_rows::<f32>(&[], &opts(1))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("save_feature_maps: no rows to draw (called at src/viz/"),
            "{e}"
        );
        let bad = z(&[7]);
        let e = feature_map_rows(&[("ok", &z(&[3, 3])), ("bad", &bad)], &opts(1)).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("save_feature_maps: shape [7] refused"),
            "{e}"
        );
    }

    #[test]
    #[should_panic(expected = "feature_map_grid: shape [2, 2, 2, 2, 2] refused")]
    fn plain_form_panics_with_the_message() {
        feature_map_grid(
            &Tensor::<f64>::zeros([2, 2, 2, 2, 2]),
            &GridOptions::default(),
        );
    }

    #[test]
    fn png_is_written_and_reads_back_identical() {
        let dir = scratch("maps");
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3);
        let x = Tensor::<f32>::randn([1, 1, 10, 10], &mut rng);
        let c = Tensor::<f32>::randn([1, 5, 8, 8], &mut rng);
        let rows = [("input", &x), ("conv", &c)];
        let path = dir.join("nested").join("maps.png");
        save_feature_maps(&path, &rows).unwrap();
        let back = image::open(&path).unwrap().to_rgb8();
        let want = feature_map_rows(&rows, &GridOptions::default()).unwrap();
        assert_eq!(back.dimensions(), want.dimensions());
        assert_eq!(back, want);

        // Shape errors surface as VizError::Input, nothing written.
        let bad = Tensor::<f32>::zeros([3]);
        let p2 = dir.join("bad.png");
        let e = save_feature_maps(&p2, &[("bad", &bad)]).unwrap_err();
        assert!(matches!(e, VizError::Input(_)), "{e}");
        assert!(!p2.exists());
        // A directory where the file should go: the write fails and the message names it.
        let e = save_feature_maps(&dir, &rows).unwrap_err();
        assert!(matches!(e, VizError::Write { .. }));
        assert!(e.to_string().contains(&dir.display().to_string()), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
