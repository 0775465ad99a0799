//! Training curves as a PNG line chart: losses on a left axis, accuracies on a right one.
//!
//! The chart has a title, a frame with light grid lines, round tick values ("nice numbers":
//! steps of 1, 2 or 5 times a power of ten) on every axis, a legend with each series' last
//! value, and anti-aliased lines 2 pixels thick. A value that is NaN or infinite is skipped
//! and breaks its line; a point with no finite neighbour, such as a series of one value, is
//! drawn as a dot. A flat series gets a range around its value. When an axis carries one
//! series only, its tick labels take that series' colour, so loss and accuracy read apart.
//!
//! By default the value at index `i` is placed at `x = i + 1`, counting epochs or logged steps
//! from 1; [`Series::with_x`] gives explicit positions, to put per-step losses and per-epoch
//! accuracies on one step axis.
//!
//! ```
//! use tapegrad::viz::{Series, plot_curves};
//! let loss: Vec<f64> = (0..50).map(|i| 2.3 * (-0.08 * i as f64).exp() + 0.05).collect();
//! let acc: Vec<f64> = (0..50).map(|i| 98.0 - 88.0 * (-0.1 * i as f64).exp()).collect();
//! let path = std::env::temp_dir().join("tapegrad-doc-curves").join("training.png");
//! plot_curves(&path, "MNIST, LeNet-5", &[
//!     Series::left("train loss", loss),
//!     Series::right("accuracy %", acc),
//! ]).unwrap();
//! # std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
//! ```

use super::font::{
    GLYPH_HEIGHT, draw_text, draw_text_vertical, fill_rect, text_height, text_width,
};
use super::{VizError, write_png};
use crate::error::Error;
use image::{Rgb, RgbImage};
use std::path::Path;

/// The vertical axis a series is measured against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    /// The left axis (typically losses).
    Left,
    /// The right axis (typically accuracies in percent).
    Right,
}

/// One line of a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The name shown in the legend.
    pub name: String,
    /// The values, in order; NaN and infinities are skipped.
    pub values: Vec<f64>,
    /// The axis the values are read against.
    pub axis: Axis,
    /// The x position of each value, or `None` for `1, 2, 3, ...`.
    pub x: Option<Vec<f64>>,
}

impl Series {
    /// A series on the left axis.
    pub fn left(name: impl Into<String>, values: Vec<f64>) -> Self {
        Series {
            name: name.into(),
            values,
            axis: Axis::Left,
            x: None,
        }
    }

    /// A series on the right axis.
    pub fn right(name: impl Into<String>, values: Vec<f64>) -> Self {
        Series {
            axis: Axis::Right,
            ..Series::left(name, values)
        }
    }

    /// The same series placed at the x positions `x` (one per value) instead of `1, 2, 3, ...`.
    ///
    /// ```
    /// use tapegrad::viz::Series;
    /// // Test accuracy measured after each of 3 epochs of 100 steps.
    /// let acc = Series::right("test acc %", vec![91.0, 95.5, 97.2]).with_x(vec![100.0, 200.0, 300.0]);
    /// assert_eq!(acc.x.as_deref(), Some(&[100.0, 200.0, 300.0][..]));
    /// ```
    pub fn with_x(self, x: Vec<f64>) -> Self {
        Series { x: Some(x), ..self }
    }

    /// The x position of the value at `i`.
    fn x_at(&self, i: usize) -> f64 {
        self.x.as_ref().map_or(i as f64 + 1.0, |x| x[i])
    }

    /// The points whose coordinates are both finite, in order; `None` marks a gap.
    fn points(&self) -> Vec<Option<(f64, f64)>> {
        (0..self.values.len())
            .map(|i| {
                let (x, y) = (self.x_at(i), self.values[i]);
                (x.is_finite() && y.is_finite()).then_some((x, y))
            })
            .collect()
    }
}

/// Options for [`plot_curves_with`] and [`render_chart`].
#[derive(Clone, Debug, PartialEq)]
pub struct ChartOptions {
    /// Width of the picture in pixels. Default 800, at least 300.
    pub width: u32,
    /// Height of the picture in pixels. Default 500, at least 200.
    pub height: u32,
    /// The name of the x axis. Default `"epoch"`; `None` for no name.
    pub x_label: Option<String>,
    /// The name of the left axis. `None` (the default) names it after its series when it
    /// has exactly one, and leaves it unnamed otherwise (the legend tells them apart).
    pub left_label: Option<String>,
    /// The name of the right axis, chosen as for the left one when `None`.
    pub right_label: Option<String>,
    /// Show each series' last value in the legend. Default true.
    pub show_last: bool,
}

impl Default for ChartOptions {
    fn default() -> Self {
        ChartOptions {
            width: 800,
            height: 500,
            x_label: Some("epoch".into()),
            left_label: None,
            right_label: None,
            show_last: true,
        }
    }
}

/// Colours of the series in order (the Tableau 10 palette), reused past ten.
const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];
const BACKGROUND: Rgb<u8> = Rgb([255, 255, 255]);
const FRAME: Rgb<u8> = Rgb([90, 90, 90]);
const GRID: Rgb<u8> = Rgb([228, 228, 228]);
const TEXT: Rgb<u8> = Rgb([30, 30, 30]);
const TEXT_SCALE: u32 = 2;
const MARGIN: u32 = 14;
const TICK: u32 = 5;
/// Blank pixels between the frame and the extreme data values, so lines at the ends of the
/// range are not hidden under the frame.
const INSET: f64 = 6.0;
/// Line half-width in pixels (2-pixel lines).
const HALF_WIDTH: f64 = 1.0;
const DOT_RADIUS: f64 = 3.5;
/// Length of the line drawn before a legend entry's name.
const SWATCH: u32 = 24;
/// Space between legend entries on one line, and between lines.
const LEGEND_GAP: u32 = 30;
const LEGEND_LEADING: u32 = 6;
/// The least height of the plot area the legend leaves.
const MIN_PLOT: u32 = 100;
/// Series with at most this many points get a dot at every point.
const MARKER_MAX: usize = 40;

/// Round tick positions covering a range: steps of 1, 2 or 5 times a power of ten.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Ticks {
    lo: f64,
    hi: f64,
    step: f64,
}

impl Ticks {
    /// Ticks for the data range `lo..=hi`, widened to whole steps, about `target` of them.
    /// A flat range is opened up around its value.
    fn nice(lo: f64, hi: f64, target: usize) -> Ticks {
        let (lo, hi) = open_up(lo, hi);
        let step = nice_step((hi - lo) / target.max(2) as f64);
        // The epsilon keeps a bound that sits on a tick (up to rounding) from adding a step.
        let lo_t = ((lo / step) + 1e-9).floor() * step;
        let hi_t = ((hi / step) - 1e-9).ceil() * step;
        Ticks {
            lo: lo_t,
            hi: hi_t,
            step,
        }
    }

    /// Ticks inside `lo..=hi` exactly, for an x axis that spans the data only.
    /// With `integer`, steps are whole numbers (epochs, steps).
    fn within(lo: f64, hi: f64, target: usize, integer: bool) -> Ticks {
        let (lo, hi) = if lo == hi {
            if integer {
                (lo - 1.0, hi + 1.0)
            } else {
                open_up(lo, hi)
            }
        } else {
            (lo, hi)
        };
        let mut step = nice_step((hi - lo) / target.max(2) as f64);
        if integer {
            step = step.max(1.0);
        }
        Ticks { lo, hi, step }
    }

    /// The tick values, computed from whole multiples of the step (no accumulated drift).
    fn values(&self) -> Vec<f64> {
        let first = (self.lo / self.step - 1e-9).ceil() as i64;
        let last = (self.hi / self.step + 1e-9).floor() as i64;
        (first..=last).map(|k| k as f64 * self.step).collect()
    }

    /// A tick value written with as many decimals as the step needs.
    fn label(&self, v: f64) -> String {
        let v = if v.abs() < self.step * 1e-6 { 0.0 } else { v };
        let biggest = self.lo.abs().max(self.hi.abs());
        if biggest >= 1e6 || self.step < 1e-4 {
            return sci(v);
        }
        let decimals = (-self.step.log10().floor()).max(0.0) as usize;
        format!("{v:.decimals$}")
    }
}

/// A flat or empty range opened up so it can be drawn: 10% around a nonzero value, ±1 at 0.
fn open_up(lo: f64, hi: f64) -> (f64, f64) {
    if hi > lo {
        (lo, hi)
    } else if lo == 0.0 {
        (-1.0, 1.0)
    } else {
        let pad = lo.abs() * 0.1;
        (lo - pad, lo + pad)
    }
}

/// The round number (1, 2 or 5 times a power of ten) nearest above `raw`.
fn nice_step(raw: f64) -> f64 {
    let raw = if raw > 0.0 && raw.is_finite() {
        raw
    } else {
        1.0
    };
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nf = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nf * mag
}

/// Scientific notation with up to two decimals and no trailing zeros: `2.5e6`, `1e-5`.
fn sci(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let s = format!("{v:.2e}");
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let mant = mant.trim_end_matches('0').trim_end_matches('.');
    format!("{mant}e{exp}")
}

/// A value for the legend with four significant digits.
fn short(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v == 0.0 {
        return "0".into();
    }
    let mag = v.abs().log10().floor();
    if !(-4.0..6.0).contains(&mag) {
        return sci(v);
    }
    let decimals = (3.0 - mag).max(0.0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

struct LegendEntry {
    /// The series whose colour the swatch takes; `None` for the "and N more" entry.
    series: Option<usize>,
    text: String,
    width: u32,
}

/// `text` cut to at most `max_px` pixels wide, ending in `..` when cut.
fn fit(text: &str, max_px: u32) -> String {
    if text_width(text, TEXT_SCALE) <= max_px {
        return text.to_string();
    }
    let mut cut: String = text.to_string();
    while !cut.is_empty() && text_width(&format!("{cut}.."), TEXT_SCALE) > max_px {
        cut.pop();
    }
    format!("{cut}..")
}

/// A linear map from data values to pixel coordinates.
#[derive(Clone, Copy)]
struct Map {
    d0: f64,
    d1: f64,
    p0: f64,
    p1: f64,
}

impl Map {
    fn at(&self, v: f64) -> f64 {
        self.p0 + (v - self.d0) / (self.d1 - self.d0) * (self.p1 - self.p0)
    }
}

/// Antialiasing coverage of the plot area, one value in 0..=1 per pixel.
struct Coverage {
    w: usize,
    h: usize,
    ox: f64,
    oy: f64,
    c: Vec<f32>,
}

impl Coverage {
    fn new(ox: u32, oy: u32, w: u32, h: u32) -> Self {
        Coverage {
            w: w as usize,
            h: h as usize,
            ox: f64::from(ox),
            oy: f64::from(oy),
            c: vec![0.0; w as usize * h as usize],
        }
    }

    /// Covers the pixels within `r` of the segment `a..b` (image coordinates), with a
    /// one-pixel soft edge: a thick anti-aliased line with round caps.
    fn segment(&mut self, a: (f64, f64), b: (f64, f64), r: f64) {
        let (ax, ay) = (a.0 - self.ox, a.1 - self.oy);
        let (bx, by) = (b.0 - self.ox, b.1 - self.oy);
        let pad = r + 1.0;
        let clampx = |v: f64| v.clamp(0.0, self.w as f64) as usize;
        let clampy = |v: f64| v.clamp(0.0, self.h as f64) as usize;
        let (x0, x1) = (clampx(ax.min(bx) - pad), clampx(ax.max(bx) + pad + 1.0));
        let (y0, y1) = (clampy(ay.min(by) - pad), clampy(ay.max(by) + pad + 1.0));
        let (dx, dy) = (bx - ax, by - ay);
        let len2 = dx * dx + dy * dy;
        for py in y0..y1 {
            for px in x0..x1 {
                let (cx, cy) = (px as f64 + 0.5, py as f64 + 0.5);
                let t = if len2 > 0.0 {
                    (((cx - ax) * dx + (cy - ay) * dy) / len2).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let (qx, qy) = (ax + t * dx - cx, ay + t * dy - cy);
                let cov = (r + 0.5 - (qx * qx + qy * qy).sqrt()).clamp(0.0, 1.0) as f32;
                let cell = &mut self.c[py * self.w + px];
                *cell = cell.max(cov);
            }
        }
    }

    /// Blends `colour` onto the image where covered.
    fn paint(&self, img: &mut RgbImage, colour: [u8; 3]) {
        for (i, &a) in self.c.iter().enumerate() {
            if a > 0.0 {
                let x = (i % self.w) as u32 + self.ox as u32;
                let y = (i / self.w) as u32 + self.oy as u32;
                let Some(p) = img.get_pixel_mut_checked(x, y) else {
                    continue;
                };
                for (ch, &c) in p.0.iter_mut().zip(&colour) {
                    let v = f32::from(*ch) * (1.0 - a) + f32::from(c) * a;
                    *ch = v.round() as u8;
                }
            }
        }
    }
}

/// The finite min and max of the values of the series on `axis`, with their finite x.
fn y_range(series: &[Series], axis: Axis) -> Option<(f64, f64)> {
    series
        .iter()
        .filter(|s| s.axis == axis)
        .flat_map(|s| s.points().into_iter().flatten().map(|(_, y)| y))
        .fold(None, |acc, y| match acc {
            None => Some((y, y)),
            Some((lo, hi)) => Some((lo.min(y), hi.max(y))),
        })
}

fn hline(img: &mut RgbImage, x0: u32, x1: u32, y: u32, c: Rgb<u8>) {
    fill_rect(img, i64::from(x0), i64::from(y), i64::from(x1 - x0), 1, c);
}

fn vline(img: &mut RgbImage, x: u32, y0: u32, y1: u32, c: Rgb<u8>) {
    fill_rect(img, i64::from(x), i64::from(y0), 1, i64::from(y1 - y0), c);
}

/// Checks the series and options, returning the error `plot_curves` reports.
#[track_caller]
fn check(series: &[Series], opts: &ChartOptions) -> Result<(), Error> {
    const OP: &str = "plot_curves";
    if opts.width < 300 || opts.height < 200 {
        return Err(Error::bad_argument(
            OP,
            format!(
                "a chart of {}x{} pixels is too small to label; need at least 300x200",
                opts.width, opts.height
            ),
        ));
    }
    if opts.width > 16384 || opts.height > 16384 {
        return Err(Error::bad_argument(
            OP,
            format!(
                "a chart of {}x{} pixels is too large; at most 16384 on a side",
                opts.width, opts.height
            ),
        ));
    }
    for s in series {
        if let Some(x) = &s.x
            && x.len() != s.values.len()
        {
            return Err(Error::bad_argument(
                OP,
                format!(
                    "series {:?} has {} values but {} x positions",
                    s.name,
                    s.values.len(),
                    x.len()
                ),
            ));
        }
    }
    Ok(())
}

/// Draws the chart in memory; [`plot_curves_with`] writes it to a file.
///
/// # Errors
/// A picture smaller than 300x200 or larger than 16384 on a side, or a series whose `x`
/// does not have one position per value.
///
/// ```
/// use tapegrad::viz::{ChartOptions, Series, render_chart};
/// let s = Series::left("loss", vec![1.0, f64::NAN, 0.5, 0.25]);
/// let img = render_chart("loss", &[s], &ChartOptions::default()).unwrap();
/// assert_eq!(img.dimensions(), (800, 500));
/// ```
#[track_caller]
pub fn render_chart(
    title: &str,
    series: &[Series],
    opts: &ChartOptions,
) -> Result<RgbImage, Error> {
    check(series, opts)?;
    let (w, h) = (opts.width, opts.height);
    let mut img = RgbImage::from_pixel(w, h, BACKGROUND);
    let th = text_height(TEXT_SCALE);
    let colour = |i: usize| PALETTE[i % PALETTE.len()];

    // Axes and their ticks: the left axis unless only right-axis series exist, the right
    // axis when used.
    let has = |a: Axis| series.iter().any(|s| s.axis == a);
    // An axis with one series is named after it; with several, the legend tells them apart.
    let sole_name = |a: Axis| {
        let mut on = series.iter().filter(|s| s.axis == a);
        match (on.next(), on.next()) {
            (Some(s), None) => s.name.clone(),
            _ => String::new(),
        }
    };
    let y_ticks = |a: Axis| {
        let (lo, hi) = y_range(series, a).unwrap_or((0.0, 1.0));
        Ticks::nice(lo, hi, 6)
    };
    let left = y_ticks(Axis::Left);
    let right = has(Axis::Right).then(|| y_ticks(Axis::Right));
    let left_label = opts
        .left_label
        .clone()
        .unwrap_or_else(|| sole_name(Axis::Left));
    let right_label = opts
        .right_label
        .clone()
        .unwrap_or_else(|| sole_name(Axis::Right));
    // An axis with one series speaks in its colour.
    let axis_colour = |a: Axis| {
        let mut on = series.iter().enumerate().filter(|(_, s)| s.axis == a);
        match (on.next(), on.next()) {
            (Some((i, _)), None) => Rgb(colour(i)),
            _ => TEXT,
        }
    };

    let (xs_lo, xs_hi, all_default) = {
        let xs = series
            .iter()
            .flat_map(|s| s.points().into_iter().flatten().map(|(x, _)| x));
        let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(x), hi.max(x))
        });
        let default = series.iter().all(|s| s.x.is_none());
        if lo <= hi {
            (lo, hi, default)
        } else {
            (1.0, 1.0, true)
        }
    };
    let integer_x = all_default
        || series
            .iter()
            .filter_map(|s| s.x.as_ref())
            .flatten()
            .all(|x| !x.is_finite() || x.fract() == 0.0);
    let xt = Ticks::within(xs_lo, xs_hi, 8, integer_x);

    let width_of = |t: &Ticks| {
        t.values()
            .iter()
            .map(|&v| text_width(&t.label(v), TEXT_SCALE))
            .max()
            .unwrap_or(0)
    };
    let label_band = |l: &str| if l.is_empty() { 0 } else { th + 10 };
    // A chart of right-axis series only has no left axis to label.
    let show_left = has(Axis::Left) || !has(Axis::Right);
    let plot_l = if show_left {
        MARGIN + label_band(&left_label) + width_of(&left) + TICK + 6
    } else {
        MARGIN + 16
    };
    let plot_r = w - match &right {
        Some(r) => MARGIN + label_band(&right_label) + width_of(r) + TICK + 6,
        // Room for the last x tick label to hang over the frame's right edge.
        None => MARGIN + 16,
    };
    // Legend entries: one centred line when they fit, else a centred table of equal columns.
    let entries: Vec<LegendEntry> = series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let text = match s.values.last() {
                Some(&v) if opts.show_last => format!("{}  {}", s.name, short(v)),
                _ => s.name.clone(),
            };
            let width = SWATCH + 10 + text_width(&text, TEXT_SCALE);
            LegendEntry {
                series: Some(i),
                text,
                width,
            }
        })
        .collect();
    let avail = w - 2 * MARGIN;
    let natural = entries.iter().map(|e| e.width + LEGEND_GAP).sum::<u32>();
    let natural = natural.saturating_sub(LEGEND_GAP);
    // (x, line) of each entry.
    let places: Vec<(i64, u32)> = if natural <= avail {
        let mut x = (i64::from(w) - i64::from(natural)) / 2;
        entries
            .iter()
            .map(|e| {
                let at = (x, 0);
                x += i64::from(e.width + LEGEND_GAP);
                at
            })
            .collect()
    } else {
        let col_w = entries.iter().map(|e| e.width).max().unwrap_or(0);
        let cols = ((avail + LEGEND_GAP) / (col_w + LEGEND_GAP)).max(1) as usize;
        let block = cols as u32 * (col_w + LEGEND_GAP) - LEGEND_GAP;
        let x0 = ((i64::from(w) - i64::from(block)) / 2).max(i64::from(MARGIN));
        (0..entries.len())
            .map(|i| {
                let col = (i % cols) as i64;
                (x0 + col * i64::from(col_w + LEGEND_GAP), (i / cols) as u32)
            })
            .collect()
    };
    let x_label_band = opts.x_label.as_deref().map_or(0, |_| th + 8);
    let plot_b = h - (MARGIN + x_label_band + th + TICK + 6);
    // The legend gives way before the plot gets shorter than MIN_PLOT: entries past the
    // lines it may take are dropped, and the last one kept says how many are missing.
    let legend_top = MARGIN + th + 16;
    let room = plot_b.saturating_sub(legend_top + 8 + MIN_PLOT) / (th + LEGEND_LEADING);
    let max_lines = room.max(1);
    let mut entries = entries;
    let kept = places.iter().filter(|p| p.1 < max_lines).count();
    if kept < entries.len() {
        let missing = entries.len() - kept + 1;
        let last = &mut entries[kept - 1];
        last.text = format!("and {missing} more");
        last.series = None;
        entries.truncate(kept);
    }
    let legend_lines = places.iter().take(kept).map(|p| p.1 + 1).max().unwrap_or(0);
    let plot_t = legend_top + legend_lines * (th + LEGEND_LEADING) + 8;

    // Title.
    let title = &fit(title, w - 2 * MARGIN);
    let title_w = text_width(title, TEXT_SCALE);
    let title_x = (i64::from(w) - i64::from(title_w)) / 2;
    draw_text(
        &mut img,
        title_x,
        i64::from(MARGIN),
        title,
        TEXT,
        TEXT_SCALE,
    );
    // A second pass one pixel right makes the title bold.
    draw_text(
        &mut img,
        title_x + 1,
        i64::from(MARGIN),
        title,
        TEXT,
        TEXT_SCALE,
    );

    let xmap = Map {
        d0: xt.lo,
        d1: xt.hi,
        p0: f64::from(plot_l) + INSET,
        p1: f64::from(plot_r) - INSET,
    };
    let ymap = |t: &Ticks| Map {
        d0: t.lo,
        d1: t.hi,
        p0: f64::from(plot_b) - INSET,
        p1: f64::from(plot_t) + INSET,
    };
    let (lmap, rmap) = (ymap(&left), right.as_ref().map(ymap));

    // Grid lines first, under everything; horizontal ones follow the left axis.
    let grid_axis = if has(Axis::Left) || right.is_none() {
        (left, lmap)
    } else {
        (right.unwrap_or(left), rmap.unwrap_or(lmap))
    };
    for v in grid_axis.0.values() {
        let y = grid_axis.1.at(v).round() as u32;
        hline(&mut img, plot_l, plot_r, y, GRID);
    }
    for v in xt.values() {
        let x = xmap.at(v).round() as u32;
        vline(&mut img, x, plot_t, plot_b, GRID);
    }

    // Tick marks and labels.
    // Labels are centred on their tick by the height of the digits (no descenders).
    let text_mid = |y: f64| y.round() as i64 - i64::from(GLYPH_HEIGHT * TEXT_SCALE / 2);
    let lc = axis_colour(Axis::Left);
    let left_ticks = if show_left { left.values() } else { Vec::new() };
    for v in left_ticks {
        let y = lmap.at(v).round() as u32;
        hline(&mut img, plot_l - TICK, plot_l, y, FRAME);
        let s = left.label(v);
        let x = i64::from(plot_l - TICK - 4) - i64::from(text_width(&s, TEXT_SCALE));
        draw_text(&mut img, x, text_mid(lmap.at(v)), &s, lc, TEXT_SCALE);
    }
    if let (Some(rt), Some(rm)) = (&right, &rmap) {
        let rc = axis_colour(Axis::Right);
        for v in rt.values() {
            let y = rm.at(v).round() as u32;
            hline(&mut img, plot_r, plot_r + TICK + 1, y, FRAME);
            let s = rt.label(v);
            let x = i64::from(plot_r + TICK + 5);
            draw_text(&mut img, x, text_mid(rm.at(v)), &s, rc, TEXT_SCALE);
        }
        if !right_label.is_empty() {
            let right_label = fit(&right_label, plot_b - plot_t);
            let lw = i64::from(text_width(&right_label, TEXT_SCALE));
            let x = i64::from(w - MARGIN - th);
            let y = i64::from(plot_t + plot_b) / 2 - lw / 2;
            draw_text_vertical(&mut img, x, y, &right_label, rc, TEXT_SCALE);
        }
    }
    if show_left && !left_label.is_empty() {
        let left_label = fit(&left_label, plot_b - plot_t);
        let lw = i64::from(text_width(&left_label, TEXT_SCALE));
        let y = i64::from(plot_t + plot_b) / 2 - lw / 2;
        draw_text_vertical(&mut img, i64::from(MARGIN), y, &left_label, lc, TEXT_SCALE);
    }
    for v in xt.values() {
        let x = xmap.at(v).round() as u32;
        vline(&mut img, x, plot_b, plot_b + TICK + 1, FRAME);
        let s = xt.label(v);
        let tx = x as i64 - i64::from(text_width(&s, TEXT_SCALE) / 2);
        draw_text(
            &mut img,
            tx,
            i64::from(plot_b + TICK + 5),
            &s,
            TEXT,
            TEXT_SCALE,
        );
    }
    if let Some(xl) = &opts.x_label {
        let tx = i64::from(plot_l + plot_r) / 2 - i64::from(text_width(xl, TEXT_SCALE) / 2);
        let ty = i64::from(h - MARGIN - th);
        draw_text(&mut img, tx, ty, xl, TEXT, TEXT_SCALE);
    }

    // The lines, each series rendered to coverage and blended on in order.
    let inner = (
        plot_l + 1,
        plot_t + 1,
        plot_r - plot_l - 1,
        plot_b - plot_t - 1,
    );
    let mut any_point = false;
    for (i, s) in series.iter().enumerate() {
        let map = if s.axis == Axis::Right {
            rmap.unwrap_or(lmap)
        } else {
            lmap
        };
        let pts: Vec<Option<(f64, f64)>> = s
            .points()
            .into_iter()
            .map(|p| p.map(|(x, y)| (xmap.at(x), map.at(y))))
            .collect();
        let n_finite = pts.iter().flatten().count();
        any_point |= n_finite > 0;
        let mut cov = Coverage::new(inner.0, inner.1, inner.2, inner.3);
        for (j, p) in pts.iter().enumerate() {
            let Some(p) = *p else { continue };
            let prev = j.checked_sub(1).and_then(|k| pts[k]);
            let next = pts.get(j + 1).copied().flatten();
            if let Some(q) = next {
                cov.segment(p, q, HALF_WIDTH);
            }
            if (prev.is_none() && next.is_none()) || n_finite <= MARKER_MAX {
                cov.segment(p, p, DOT_RADIUS);
            }
        }
        cov.paint(&mut img, colour(i));
    }
    if !any_point {
        let msg = "no data";
        let tx = i64::from(plot_l + plot_r) / 2 - i64::from(text_width(msg, TEXT_SCALE) / 2);
        let ty = i64::from(plot_t + plot_b) / 2 - i64::from(th / 2);
        draw_text(&mut img, tx, ty, msg, FRAME, TEXT_SCALE);
    }

    // The frame, over the ends of the lines.
    hline(&mut img, plot_l, plot_r + 1, plot_t, FRAME);
    hline(&mut img, plot_l, plot_r + 1, plot_b, FRAME);
    vline(&mut img, plot_l, plot_t, plot_b + 1, FRAME);
    vline(&mut img, plot_r, plot_t, plot_b + 1, FRAME);

    // The legend, centred between the title and the plot, where it covers no line.
    for (e, &(x, line)) in entries.iter().zip(&places) {
        let y = legend_top + line * (th + LEGEND_LEADING);
        // The swatch sits at the middle of the capitals.
        let mid = f64::from(y) + f64::from(GLYPH_HEIGHT * TEXT_SCALE) / 2.0;
        if let Some(i) = e.series {
            let mut cov = Coverage::new(x.max(0) as u32, y, SWATCH + 4, th);
            let x0 = x as f64 + 2.0;
            cov.segment((x0, mid), (x0 + f64::from(SWATCH), mid), 1.5);
            cov.paint(&mut img, colour(i));
        }
        let tx = x + i64::from(SWATCH + 10);
        draw_text(&mut img, tx, i64::from(y), &e.text, TEXT, TEXT_SCALE);
    }
    Ok(img)
}

/// Writes a line chart of `series` to a PNG at `path` (800x500, default [`ChartOptions`]),
/// creating parent directories.
///
/// # Errors
/// [`VizError::Input`] for a series whose `x` does not have one position per value;
/// [`VizError::Write`], naming the path, when the file cannot be written.
#[track_caller]
pub fn plot_curves(path: impl AsRef<Path>, title: &str, series: &[Series]) -> Result<(), VizError> {
    plot_curves_with(path, title, series, &ChartOptions::default())
}

/// [`plot_curves`] with options: size, axis names, legend values.
///
/// ```
/// use tapegrad::viz::{ChartOptions, Series, plot_curves_with};
/// let opts = ChartOptions { x_label: Some("step".into()), ..ChartOptions::default() };
/// let path = std::env::temp_dir().join("tapegrad-doc-curves-with").join("loss.png");
/// plot_curves_with(&path, "loss", &[Series::left("loss", vec![0.9, 0.5, 0.4])], &opts).unwrap();
/// # std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
/// ```
///
/// # Errors
/// As [`render_chart`] (as [`VizError::Input`]), and [`VizError::Write`].
#[track_caller]
pub fn plot_curves_with(
    path: impl AsRef<Path>,
    title: &str,
    series: &[Series],
    opts: &ChartOptions,
) -> Result<(), VizError> {
    let img = render_chart(title, series, opts)?;
    write_png(&img, path.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chart(series: &[Series]) -> RgbImage {
        render_chart("test chart", series, &ChartOptions::default()).unwrap()
    }

    /// Pixels drawn fully in series `i`'s colour.
    fn pixels_of(img: &RgbImage, i: usize) -> usize {
        img.pixels().filter(|p| p.0 == PALETTE[i]).count()
    }

    #[test]
    fn nice_ticks() {
        // (data lo, data hi) -> (axis lo, axis hi, step)
        let cases = [
            ((0.05, 2.3), (0.0, 2.5, 0.5)),
            ((62.0, 98.0), (60.0, 100.0, 10.0)),
            ((10.0, 97.76), (0.0, 100.0, 20.0)),
            ((0.0, 1.0), (0.0, 1.0, 0.2)),
            ((-3.0, 7.0), (-4.0, 8.0, 2.0)),
            ((1e-7, 1e-5), (0.0, 1e-5, 2e-6)),
            ((3.0, 3.0), (2.7, 3.3, 0.1)), // flat: 10% either side
            ((0.0, 0.0), (-1.0, 1.0, 0.5)),
        ];
        for ((lo, hi), (want_lo, want_hi, want_step)) in cases {
            let t = Ticks::nice(lo, hi, 6);
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1e-12);
            assert!(
                close(t.lo, want_lo) && close(t.hi, want_hi) && close(t.step, want_step),
                "{lo}..{hi}: {t:?}"
            );
            let v = t.values();
            assert!(
                close(v[0], want_lo) && close(*v.last().unwrap(), want_hi),
                "{v:?}"
            );
        }
        // Tick values are whole multiples of the step: no 0.30000000000000004.
        let t = Ticks::nice(0.0, 1.0, 10);
        assert_eq!(t.values()[3], 3.0 * 0.1);
        let labels: Vec<String> = t.values().iter().map(|&v| t.label(v)).collect();
        assert_eq!(labels[..4], ["0.0", "0.1", "0.2", "0.3"]);
        let t = Ticks::nice(0.0, 2.0e7, 4);
        assert_eq!(t.label(5e6), "5e6");
        assert_eq!(t.label(0.0), "0");
        let t = Ticks::nice(1e-7, 1e-5, 6);
        assert_eq!(t.label(8e-6), "8e-6");
        // A tick a rounding error below zero is written "0.0", not "-0.0".
        let t = Ticks::nice(-1.0, 1.0, 4);
        assert_eq!(t.label(-1e-17), "0.0");
    }

    #[test]
    fn x_ticks_stay_inside_the_data_and_count_whole_epochs() {
        let t = Ticks::within(1.0, 60.0, 8, true);
        assert_eq!((t.lo, t.hi, t.step), (1.0, 60.0, 10.0));
        assert_eq!(t.values(), [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]);
        let t = Ticks::within(1.0, 3.0, 8, true);
        assert_eq!(t.values(), [1.0, 2.0, 3.0]); // not 1.5, 2.5
        let t = Ticks::within(1.0, 1.0, 8, true);
        assert_eq!(t.values(), [0.0, 1.0, 2.0]);
        let t = Ticks::within(0.0, 1.0, 8, false);
        assert_eq!(t.step, 0.2);
    }

    #[test]
    fn legend_values_have_four_significant_digits() {
        let cases = [
            (0.08550, "0.0855"),
            (97.76, "97.76"),
            (3.0, "3"),
            (2.31249, "2.312"),
            (1234.6, "1235"),
            (0.0, "0"),
            (-0.5, "-0.5"),
            (1.44e-7, "1.44e-7"),
            (2.5e6, "2.5e6"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "inf"),
        ];
        for (v, want) in cases {
            assert_eq!(short(v), want, "{v}");
        }
        assert_eq!(sci(1e-5), "1e-5");
        assert_eq!(sci(-2.5e6), "-2.5e6");
    }

    #[test]
    fn charts_have_the_requested_size() {
        let s = [Series::left("loss", vec![1.0, 0.5])];
        assert_eq!(chart(&s).dimensions(), (800, 500));
        let o = ChartOptions {
            width: 300,
            height: 200,
            ..ChartOptions::default()
        };
        assert_eq!(render_chart("t", &s, &o).unwrap().dimensions(), (300, 200));
    }

    #[test]
    fn nan_inf_single_constant_and_empty_series_draw_without_panicking() {
        let nan = f64::NAN;
        let inf = f64::INFINITY;
        let cases: Vec<Vec<Series>> = vec![
            vec![],
            vec![Series::left("empty", vec![])],
            vec![Series::left("all nan", vec![nan; 5])],
            vec![Series::left(
                "gaps",
                vec![1.0, nan, 0.5, inf, -inf, 0.2, nan],
            )],
            vec![Series::left("one", vec![0.5])],
            vec![
                Series::left("flat", vec![3.0; 10]),
                Series::right("zero", vec![0.0; 10]),
            ],
            vec![Series::right("acc only", vec![50.0, 70.0])],
            vec![Series::left("x nan", vec![1.0, 2.0, 3.0]).with_x(vec![0.0, nan, 2.0])],
            vec![Series::left("huge", vec![1e300, -1e300, 1e-300])],
            (0..50)
                .map(|i| Series::left(format!("run {i}"), vec![i as f64, 1.0]))
                .collect(),
        ];
        for series in cases {
            let img = chart(&series);
            assert_eq!(img.dimensions(), (800, 500));
        }
    }

    #[test]
    fn lines_dots_and_gaps_land_in_the_plot() {
        // A line of 100 points is drawn; an all-NaN series leaves no trace.
        let line = Series::left("line", (0..100).map(f64::from).collect());
        let none = Series::left("none", vec![f64::NAN; 100]);
        let img = chart(&[line.clone(), none]);
        assert!(pixels_of(&img, 0) > 400, "{}", pixels_of(&img, 0));
        // The legend swatch is the only place series 1's colour appears at full strength.
        let legend_only = pixels_of(&img, 1);
        assert!(legend_only > 0 && legend_only < 100, "{legend_only}");
        // A single point is a dot, visible.
        let dot = chart(&[Series::left("dot", vec![0.5])]);
        let swatch = pixels_of(&chart(&[Series::left("dot", vec![])]), 0);
        assert!(pixels_of(&dot, 0) > swatch + 20);
        // Gaps: a NaN in the middle removes the segments on both sides of it.
        let mut gap = line.values.clone();
        gap[50] = f64::NAN;
        let none = Series::left("none", vec![f64::NAN; 100]);
        let with_gap = chart(&[Series::left("line", gap), none]);
        let (a, b) = (pixels_of(&with_gap, 0), pixels_of(&img, 0));
        assert!(a < b, "{a} {b}");
    }

    #[test]
    fn one_series_axis_speaks_in_its_colour() {
        let loss = Series::left("loss", vec![2.0, 1.0, 0.5]);
        let acc = Series::right("acc", vec![50.0, 80.0, 90.0]);
        let img = chart(&[loss.clone(), acc.clone()]);
        // Tick labels and axis names of each axis are drawn in the series' colour: ink of
        // both colours outside the plot area, left and right of it.
        let side = |i: usize, right: bool| {
            img.enumerate_pixels()
                .filter(|(x, y, p)| {
                    p.0 == PALETTE[i] && *y > 90 && if right { *x > 700 } else { *x < 100 }
                })
                .count()
        };
        assert!(side(0, false) > 50 && side(1, true) > 50);
        // Two series on the left: neutral tick labels.
        let img2 = chart(&[loss.clone(), Series::left("val", vec![2.1, 1.2, 0.7])]);
        assert!(
            img2.enumerate_pixels()
                .filter(|(x, y, p)| p.0 == PALETTE[0] && *x < 60 && *y > 90)
                .count()
                == 0
        );
    }

    #[test]
    fn errors_name_the_problem() {
        let here = "(called at src/viz/curves.rs:";
        let s = Series::left("loss", vec![1.0, 2.0]).with_x(vec![1.0]);
        let e = render_chart("t", &[s], &ChartOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("plot_curves: series \"loss\" has 2 values but 1 x positions"),
            "{e}"
        );
        assert!(e.contains(here), "{e}");
        let small = ChartOptions {
            width: 100,
            ..ChartOptions::default()
        };
        let e = render_chart("t", &[], &small).unwrap_err().to_string();
        assert!(
            e.starts_with("plot_curves: a chart of 100x500 pixels is too small"),
            "{e}"
        );
        let big = ChartOptions {
            height: 20000,
            ..ChartOptions::default()
        };
        let e = render_chart("t", &[], &big).unwrap_err().to_string();
        assert!(
            e.starts_with("plot_curves: a chart of 800x20000 pixels is too large"),
            "{e}"
        );
    }

    #[test]
    fn png_is_written_and_reads_back_identical() {
        let dir = std::env::temp_dir().join(format!("tapegrad-viz-{}-curves", std::process::id()));
        let path = dir.join("sub").join("curves.png");
        let series = [
            Series::left("loss", vec![2.3, 1.1, 0.6, f64::NAN, 0.3]),
            Series::right("acc %", vec![40.0, 70.0, 85.0, 90.0, 93.0]),
        ];
        plot_curves(&path, "training", &series).unwrap();
        let back = image::open(&path).unwrap().to_rgb8();
        assert_eq!(back.dimensions(), (800, 500));
        assert_eq!(
            back,
            render_chart("training", &series, &ChartOptions::default()).unwrap()
        );
        let e = plot_curves(&dir, "a directory", &series).unwrap_err();
        assert!(matches!(e, VizError::Write { .. }));
        assert!(e.to_string().contains(&dir.display().to_string()), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
