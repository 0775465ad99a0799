//! Training curves as a PNG line chart: losses on a left axis, accuracies on a right one.
//!
//! The chart is drawn with [plotters](https://docs.rs/plotters) on its bitmap backend, its
//! text set in DejaVu Sans (carried by the `dejavu` crate, so no system font is needed): a
//! title, a frame with light grid lines and round tick values, a legend with each series'
//! last value, and lines 2 pixels thick. A value that is NaN or infinite is skipped and
//! breaks its line; a point with no finite neighbour, such as a series of one value, is
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

use super::text::{self, FAMILY};
use super::{VizError, write_png};
use image::RgbImage;
use plotters::coord::Shift;
use plotters::prelude::*;
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
const FRAME: RGBColor = RGBColor(90, 90, 90);
const GRID: RGBColor = RGBColor(228, 228, 228);
const TEXT: RGBColor = RGBColor(30, 30, 30);
/// Text sizes in pixels: tick labels and legend, axis names, title.
const TICK_PX: f64 = 15.0;
const DESC_PX: f64 = 16.0;
const TITLE_PX: f64 = 21.0;
const MARGIN: u32 = 14;
/// Series with at most this many points get a dot at every point.
const MARKER_MAX: usize = 40;
const DOT_RADIUS: i32 = 3;
/// Legend entries shown at most; past that the last one says how many are left out.
const LEGEND_MAX: usize = 12;
/// The height of one legend entry, in pixels.
const LEGEND_ROW: u32 = 20;

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

/// The range drawn for data in `lo..=hi` (`None`: no finite data): opened up when flat,
/// with 5% of blank on either side so lines at the extremes stay clear of the frame.
fn padded(range: Option<(f64, f64)>) -> (f64, f64) {
    let (lo, hi) = open_up_range(range.unwrap_or((0.0, 1.0)));
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

fn open_up_range((lo, hi): (f64, f64)) -> (f64, f64) {
    let (lo, hi) = open_up(lo, hi);
    // A span too small for f64 to split into ticks (1e300 wide, or 1e-300) stays drawable.
    if (hi - lo).is_finite() && hi - lo > lo.abs().max(hi.abs()) * 1e-12 {
        (lo, hi)
    } else {
        let mid = lo / 2.0 + hi / 2.0;
        let half = (mid.abs() * 0.1).max(1.0);
        (mid - half, mid + half)
    }
}

/// A tick value: as few decimals as it needs, scientific notation when very large or small.
fn tick(v: f64) -> String {
    short(v)
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

/// Checks the series and options, returning the error `plot_curves` reports.
fn check(series: &[Series], opts: &ChartOptions) -> Result<(), VizError> {
    let refuse = |why: String| Err(VizError::Chart { why });
    if opts.width < 300 || opts.height < 200 {
        return refuse(format!(
            "a chart of {}x{} pixels is too small to label; need at least 300x200",
            opts.width, opts.height
        ));
    }
    if opts.width > 16384 || opts.height > 16384 {
        return refuse(format!(
            "a chart of {}x{} pixels is too large; at most 16384 on a side",
            opts.width, opts.height
        ));
    }
    for s in series {
        if let Some(x) = &s.x
            && x.len() != s.values.len()
        {
            return refuse(format!(
                "series {:?} has {} values but {} x positions",
                s.name,
                s.values.len(),
                x.len()
            ));
        }
    }
    Ok(())
}

/// Draws the chart in memory; [`plot_curves_with`] writes it to a file.
///
/// # Errors
/// [`VizError::Chart`] for a picture smaller than 300x200 or larger than 16384 on a side,
/// or a series whose `x` does not have one position per value.
///
/// ```
/// use tapegrad::viz::{ChartOptions, Series, render_chart};
/// let s = Series::left("loss", vec![1.0, f64::NAN, 0.5, 0.25]);
/// let img = render_chart("loss", &[s], &ChartOptions::default()).unwrap();
/// assert_eq!(img.dimensions(), (800, 500));
/// ```
pub fn render_chart(
    title: &str,
    series: &[Series],
    opts: &ChartOptions,
) -> Result<RgbImage, VizError> {
    check(series, opts)?;
    text::register();
    let (w, h) = (opts.width, opts.height);
    let mut img = RgbImage::from_pixel(w, h, image::Rgb([255, 255, 255]));
    {
        let root = BitMapBackend::with_buffer(&mut img, (w, h)).into_drawing_area();
        // A backend error here can only be a bug: the buffer has the picture's size and
        // the font is carried by the crate.
        draw(&root, title, series, opts).map_err(|e| VizError::Chart {
            why: format!("drawing failed: {e}"),
        })?;
        root.present().map_err(|e| VizError::Chart {
            why: format!("drawing failed: {e}"),
        })?;
    }
    Ok(img)
}

type DrawResult =
    Result<(), DrawingAreaErrorKind<<BitMapBackend<'static> as DrawingBackend>::ErrorType>>;

/// Draws the whole chart on `root`.
fn draw(
    root: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
    series: &[Series],
    opts: &ChartOptions,
) -> DrawResult {
    let colour = |i: usize| {
        let [r, g, b] = PALETTE[i % PALETTE.len()];
        RGBColor(r, g, b)
    };
    let has = |a: Axis| series.iter().any(|s| s.axis == a);
    // An axis with one series is named after it and speaks in its colour; with several,
    // the legend tells them apart.
    let sole = |a: Axis| {
        let mut on = series.iter().enumerate().filter(|(_, s)| s.axis == a);
        match (on.next(), on.next()) {
            (Some((i, s)), None) => Some((i, s.name.clone())),
            _ => None,
        }
    };
    let left_label = (opts.left_label.clone())
        .unwrap_or_else(|| sole(Axis::Left).map(|s| s.1).unwrap_or_default());
    let right_label = (opts.right_label.clone())
        .unwrap_or_else(|| sole(Axis::Right).map(|s| s.1).unwrap_or_default());
    let axis_colour = |a: Axis| sole(a).map_or(TEXT, |(i, _)| colour(i));
    // A chart of right-axis series only has no left axis to label.
    let show_left = has(Axis::Left) || !has(Axis::Right);
    let show_right = has(Axis::Right);

    let (x_lo, x_hi, all_default) = {
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
    let (x_lo, x_hi) = if integer_x && x_lo == x_hi {
        (x_lo - 1.0, x_hi + 1.0)
    } else {
        open_up_range((x_lo, x_hi))
    };
    // Whole-number x positions (epochs, steps) get no ticks between them.
    let x_ticks = if integer_x {
        ((x_hi - x_lo) as usize + 1).clamp(2, 8)
    } else {
        8
    };
    let x_pad = (x_hi - x_lo) * 0.02;
    let xr = (x_lo - x_pad)..(x_hi + x_pad);
    let (l_lo, l_hi) = padded(y_range(series, Axis::Left));
    let (r_lo, r_hi) = padded(y_range(series, Axis::Right));

    root.fill(&WHITE)?;
    let label_area = |shown: bool, named: bool| match (shown, named) {
        (false, _) => 12,
        (true, false) => 56,
        (true, true) => 80,
    };
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FAMILY, TITLE_PX).into_font().color(&TEXT))
        .margin(MARGIN)
        .x_label_area_size(if opts.x_label.is_some() { 52 } else { 30 })
        .y_label_area_size(label_area(show_left, !left_label.is_empty()))
        .right_y_label_area_size(label_area(show_right, !right_label.is_empty()))
        .build_cartesian_2d(xr.clone(), l_lo..l_hi)?
        .set_secondary_coord(xr, r_lo..r_hi);

    let tick_font = |c: RGBColor| (FAMILY, TICK_PX).into_font().color(&c);
    let desc_font = (FAMILY, DESC_PX).into_font().color(&TEXT);
    let fmt = |v: &f64| tick(*v);
    let mut mesh = chart.configure_mesh();
    mesh.bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(FRAME)
        .x_labels(x_ticks)
        .y_labels(6)
        .x_label_formatter(&fmt)
        .y_label_formatter(&fmt)
        .x_label_style(tick_font(TEXT))
        .y_label_style(tick_font(axis_colour(Axis::Left)))
        .axis_desc_style(desc_font.clone());
    if let Some(x) = &opts.x_label {
        mesh.x_desc(x.as_str());
    }
    if show_left {
        mesh.y_desc(left_label.as_str());
    } else {
        mesh.disable_y_axis();
    }
    mesh.draw()?;
    if show_right {
        chart
            .configure_secondary_axes()
            .axis_style(FRAME)
            .y_labels(6)
            .y_label_formatter(&fmt)
            .label_style(tick_font(axis_colour(Axis::Right)))
            .axis_desc_style(desc_font)
            .y_desc(right_label.as_str())
            .draw()?;
    }

    // The legend sits inside the plot: as many entries as leave half of it clear.
    let legend_max =
        (opts.height.saturating_sub(130) / 2 / LEGEND_ROW).clamp(2, LEGEND_MAX as u32) as usize;
    let labels: Vec<Option<String>> = (0..series.len())
        .map(|i| {
            let s = &series[i];
            if i + 1 < legend_max || series.len() == legend_max {
                Some(match s.values.last() {
                    Some(&v) if opts.show_last => format!("{}  {}", s.name, short(v)),
                    _ => s.name.clone(),
                })
            } else if i + 1 == legend_max {
                Some(format!("and {} more", series.len() - legend_max + 1))
            } else {
                None
            }
        })
        .collect();
    let corner = {
        let (w, h) = chart.plotting_area().dim_in_pixel();
        let chars = labels.iter().flatten().map(|t| t.chars().count()).max();
        // Swatch, gaps and text at about 0.6 em a character; one row an entry.
        let legend_w = 45.0 + chars.unwrap_or(0) as f64 * 0.6 * TICK_PX;
        let legend_h = 12.0 + (labels.iter().flatten().count() as u32 * LEGEND_ROW) as f64;
        let ranges = |a: Axis| match a {
            Axis::Left => (l_lo, l_hi),
            Axis::Right => (r_lo, r_hi),
        };
        legend_corner(
            series,
            (x_lo - x_pad, x_hi + x_pad),
            ranges,
            (legend_w / w.max(1) as f64, legend_h / h.max(1) as f64),
        )
    };
    let mut any_point = false;
    for (i, s) in series.iter().enumerate() {
        let style = colour(i).stroke_width(2);
        let points = s.points();
        let finite = points.iter().flatten().count();
        any_point |= finite > 0;
        // Runs of consecutive finite points: a NaN or an infinity breaks the line.
        let runs: Vec<Vec<(f64, f64)>> = points
            .split(|p| p.is_none())
            .filter(|r| !r.is_empty())
            .map(|r| r.iter().flatten().copied().collect())
            .collect();
        let dots: Vec<(f64, f64)> = runs
            .iter()
            .filter(|r| r.len() == 1 || finite <= MARKER_MAX)
            .flatten()
            .copied()
            .collect();
        let lines = runs.into_iter().map(|r| PathElement::new(r, style));
        let dots = dots
            .into_iter()
            .map(|p| Circle::new(p, DOT_RADIUS, colour(i).filled()));
        let anno = if s.axis == Axis::Right {
            chart.draw_secondary_series(lines)?;
            chart.draw_secondary_series(dots)?
        } else {
            chart.draw_series(lines)?;
            chart.draw_series(dots)?
        };
        match &labels[i] {
            Some(text) if i + 1 < legend_max || series.len() == legend_max => {
                anno.label(text)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            }
            Some(text) => {
                anno.label(text);
            }
            None => {}
        }
    }
    if !any_point {
        let (xs, ys) = (chart.x_range(), chart.y_range());
        let centre = ((xs.start + xs.end) / 2.0, (ys.start + ys.end) / 2.0);
        let font = (FAMILY, TICK_PX)
            .into_font()
            .color(&FRAME)
            .pos(text::centred());
        chart.draw_series(std::iter::once(Text::new("no data", centre, font)))?;
    }
    if !series.is_empty() {
        chart
            .configure_series_labels()
            .position(corner)
            .background_style(WHITE.mix(0.85))
            .border_style(GRID)
            .label_font(tick_font(TEXT))
            .draw()?;
    }
    Ok(())
}

/// Where the legend hides the least of the curves: of the eight places along the plot's
/// edges, the one whose box (`size`, as fractions of the plot's width and height) covers the
/// fewest points sampled along the lines; the upper right on a tie.
fn legend_corner(
    series: &[Series],
    (x_lo, x_hi): (f64, f64),
    y_range: impl Fn(Axis) -> (f64, f64),
    (bw, bh): (f64, f64),
) -> SeriesLabelPosition {
    use SeriesLabelPosition as P;
    // Box origins in plot fractions, y upwards; plotters keeps the box about 1% off the edge.
    let (bw, bh) = ((bw + 0.02).min(1.0), (bh + 0.02).min(1.0));
    let places = [
        (P::UpperRight, 1.0 - bw, 1.0 - bh),
        (P::UpperLeft, 0.0, 1.0 - bh),
        (P::LowerRight, 1.0 - bw, 0.0),
        (P::LowerLeft, 0.0, 0.0),
        (P::MiddleRight, 1.0 - bw, (1.0 - bh) / 2.0),
        (P::MiddleLeft, 0.0, (1.0 - bh) / 2.0),
        (P::UpperMiddle, (1.0 - bw) / 2.0, 1.0 - bh),
        (P::LowerMiddle, (1.0 - bw) / 2.0, 0.0),
    ];
    let mut hits = [0usize; 8];
    let mut count = |(x, y): (f64, f64)| {
        for (n, &(_, x0, y0)) in places.iter().enumerate() {
            hits[n] += usize::from(x >= x0 && x <= x0 + bw && y >= y0 && y <= y0 + bh);
        }
    };
    for s in series {
        let (y_lo, y_hi) = y_range(s.axis);
        let frac = |(x, y): (f64, f64)| ((x - x_lo) / (x_hi - x_lo), (y - y_lo) / (y_hi - y_lo));
        let points = s.points();
        for pair in points.windows(2) {
            let (Some(a), Some(b)) = (pair[0], pair[1]) else {
                continue;
            };
            let (a, b) = (frac(a), frac(b));
            // Eight samples along each segment, so a steep line counts where it crosses.
            for k in 0..8 {
                let t = k as f64 / 8.0;
                count((a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t));
            }
        }
        if let Some(Some(last)) = points.last() {
            count(frac(*last));
        }
    }
    let best = (0..places.len()).min_by_key(|&n| hits[n]).unwrap_or(0);
    places.into_iter().nth(best).map_or(P::UpperRight, |p| p.0)
}

/// Writes a line chart of `series` to a PNG at `path` (800x500, default [`ChartOptions`]),
/// creating parent directories.
///
/// # Errors
/// [`VizError::Chart`] for a series whose `x` does not have one position per value;
/// [`VizError::Write`], naming the path, when the file cannot be written.
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
/// As [`render_chart`], and [`VizError::Write`].
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
    fn flat_and_degenerate_ranges_open_up() {
        assert_eq!(open_up_range((3.0, 3.0)), (2.7, 3.3));
        assert_eq!(open_up_range((0.0, 0.0)), (-1.0, 1.0));
        assert_eq!(open_up_range((0.0, 2.0)), (0.0, 2.0));
        // Wider than f64 can subtract, or narrower than it can split: a drawable range.
        let (lo, hi) = open_up_range((-1e308, 1.7e308));
        assert!((hi - lo).is_finite() && hi > lo);
        let (lo, hi) = open_up_range((1.0, 1.0 + 1e-15));
        assert!(hi - lo > 1e-3);
        // 5% of blank either side; no data draws 0..1.
        assert_eq!(padded(Some((0.0, 10.0))), (-0.5, 10.5));
        assert_eq!(padded(None), (-0.05, 1.05));
    }

    #[test]
    fn the_legend_goes_where_it_hides_the_least() {
        use SeriesLabelPosition as P;
        let at = |series: &[Series]| {
            let pos = legend_corner(series, (0.0, 10.0), |_| (0.0, 1.0), (0.3, 0.2));
            format!("{pos:?}")
        };
        // Rising to the top right: the upper left is clear.
        let rising = Series::left("a", (0..10).map(|i| i as f64 / 9.0).collect());
        assert_eq!(
            at(std::slice::from_ref(&rising)),
            format!("{:?}", P::UpperLeft)
        );
        // A falling loss and a rising accuracy on its own axis leave the middle right.
        let falling = Series::left("loss", (0..10).map(|i| 1.0 - i as f64 / 9.0).collect());
        let high = Series::right("acc", vec![0.95; 10]);
        let low = Series::left("low", vec![0.02; 10]);
        assert_eq!(at(&[falling, high, low]), format!("{:?}", P::MiddleRight));
        // Nothing drawn: the upper right.
        assert_eq!(at(&[]), format!("{:?}", P::UpperRight));
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
        // Text is anti-aliased: count the pixels of nearly the series' colour.
        let near = |p: &image::Rgb<u8>, i: usize| {
            p.0.iter().zip(PALETTE[i]).all(|(&a, b)| a.abs_diff(b) < 40)
        };
        let side = |img: &RgbImage, i: usize, right: bool| {
            img.enumerate_pixels()
                .filter(|(x, y, p)| near(p, i) && *y > 90 && if right { *x > 700 } else { *x < 90 })
                .count()
        };
        assert!(side(&img, 0, false) > 50 && side(&img, 1, true) > 50);
        // Two series on the left: neutral tick labels.
        let img2 = chart(&[loss.clone(), Series::left("val", vec![2.1, 1.2, 0.7])]);
        assert_eq!(side(&img2, 0, false), 0);
    }

    #[test]
    fn errors_name_the_problem() {
        let s = Series::left("loss", vec![1.0, 2.0]).with_x(vec![1.0]);
        let e = render_chart("t", &[s], &ChartOptions::default()).unwrap_err();
        assert!(matches!(e, VizError::Chart { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "plot_curves: series \"loss\" has 2 values but 1 x positions"
        );
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
