//! Text for the pictures: DejaVu Sans, carried by the `dejavu` crate and drawn with
//! plotters' `ab_glyph` renderer, so no system font or fontconfig is needed.

use image::{Rgb, RgbImage};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::sync::Once;

/// The family name the font is registered under with plotters.
pub(crate) const FAMILY: &str = "DejaVu Sans";

/// An anchor for text centred on its position.
pub(crate) fn centred() -> Pos {
    Pos::new(HPos::Center, VPos::Center)
}

/// Registers the regular face with plotters, once per process (the bold face would add
/// 0.7 MB to every binary for the chart title alone). Every text style names [`FAMILY`],
/// which plotters looks up when the style is made: call this first.
pub(crate) fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The crate's own TrueType file: it parses, as the tests show.
        let ok = plotters::style::register_font(FAMILY, FontStyle::Normal, dejavu::sans::regular())
            .is_ok();
        debug_assert!(ok, "the DejaVu font failed to parse");
    });
}

fn font(px: f64) -> FontDesc<'static> {
    register();
    FontDesc::new(FontFamily::Name(FAMILY), px, FontStyle::Normal)
}

/// The width in pixels of `text` set at `px` pixels.
pub(crate) fn width(text: &str, px: f64) -> u32 {
    font(px).box_size(text).map_or(0, |(w, _)| w)
}

/// The height in pixels a line of text set at `px` pixels takes.
pub(crate) fn height(px: f64) -> u32 {
    px.ceil() as u32
}

/// `text` cut to at most `max` pixels wide at `px` pixels, ending in `..` when cut.
pub(crate) fn fit(text: &str, px: f64, max: u32) -> String {
    if width(text, px) <= max {
        return text.to_string();
    }
    let mut cut: String = text.to_string();
    while !cut.is_empty() && width(&format!("{cut}.."), px) > max {
        cut.pop();
    }
    format!("{cut}..")
}

/// Draws `text` on `img` with its top-left corner at `(x, y)`, in `colour`, `px` pixels high.
pub(crate) fn draw(img: &mut RgbImage, x: u32, y: u32, text: &str, colour: Rgb<u8>, px: f64) {
    let (w, h) = img.dimensions();
    let root = BitMapBackend::with_buffer(img, (w, h)).into_drawing_area();
    let [r, g, b] = colour.0;
    let style = font(px).color(&RGBColor(r, g, b));
    // Text is clipped to the picture; the backend cannot fail on a buffer of its size.
    let _ = root.draw_text(text, &style, (x as i32, y as i32));
    let _ = root.present();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_carried_font_measures_and_draws() {
        let w = width("conv1", 16.0);
        assert!(w > 20 && w < 80, "{w}");
        assert!(width("conv1 weights", 16.0) > w);
        assert_eq!(width("", 16.0), 0);
        let mut img = RgbImage::from_pixel(100, 30, Rgb([255, 255, 255]));
        draw(&mut img, 2, 4, "Hello", Rgb([0, 0, 0]), 16.0);
        let ink = img.pixels().filter(|p| p.0[0] < 128).count();
        assert!(ink > 30, "{ink}");
        // Nothing is drawn above the top or left of the given corner.
        let stray = img
            .enumerate_pixels()
            .filter(|(x, y, p)| (*x < 2 || *y < 2) && p.0[0] < 128)
            .count();
        assert_eq!(stray, 0);
        let f = fit("a-much-longer-name", 16.0, w);
        assert!(f.ends_with("..") && width(&f, 16.0) <= w, "{f}");
        assert_eq!(fit("conv1", 16.0, w), "conv1");
    }
}
