//! A confusion matrix as a picture: one cell per (true, predicted) class pair, shaded by
//! the share of the true class's samples it holds, with the count written in it.

use crate::metrics::ConfusionMatrix;
use crate::viz::{VizError, text, write_png};
use image::{Rgb, RgbImage};
use std::path::Path;

/// Pixels per cell side, and the margins for the labels.
const CELL: u32 = 44;
const LEFT: u32 = 150;
const TOP: u32 = 70;

/// The matrix as an image: rows are true classes, columns predicted ones, named by
/// `names` (one per class); a cell is white at 0% of its row and dark blue at 100%.
///
/// ```
/// use tapegrad::metrics::ConfusionMatrix;
/// let mut cm = ConfusionMatrix::new(2);
/// cm.add(&[0, 1, 1], &[0, 1, 0]);
/// let img = tapegrad::viz::render_confusion(&cm, &["cat".into(), "dog".into()]).unwrap();
/// assert_eq!(img.dimensions(), (150 + 2 * 44 + 20, 70 + 2 * 44 + 20));
/// ```
pub fn render_confusion(cm: &ConfusionMatrix, names: &[String]) -> Result<RgbImage, VizError> {
    let k = cm.classes();
    if names.len() != k || k == 0 || k > 100 {
        return Err(VizError::Confusion {
            why: format!(
                "a confusion matrix of {k} classes (1 to 100) needs as many names, got {}",
                names.len()
            ),
        });
    }
    let side = k as u32 * CELL;
    let (w, h) = (LEFT + side + 20, TOP + side + 20);
    let mut img = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    let ink = Rgb([30, 30, 30]);
    let title = format!(
        "true class (rows) against predicted; accuracy {:.2}%",
        100.0 * cm.accuracy()
    );
    text::draw(&mut img, 8, 6, &text::fit(&title, 15.0, w - 16), ink, 15.0);
    for (t, name) in names.iter().enumerate() {
        let row: usize = (0..k).map(|p| cm.count(t, p)).sum();
        let label = text::fit(name, 13.0, LEFT - 12);
        text::draw(
            &mut img,
            6,
            TOP + t as u32 * CELL + CELL / 2 - 7,
            &label,
            ink,
            13.0,
        );
        for p in 0..k {
            let n = cm.count(t, p);
            let share = n as f64 / row.max(1) as f64;
            // White to dark blue.
            let mix = |white: f64, full: f64| (white + (full - white) * share).round() as u8;
            let colour = Rgb([mix(255.0, 8.0), mix(255.0, 48.0), mix(255.0, 107.0)]);
            let (x0, y0) = (LEFT + p as u32 * CELL, TOP + t as u32 * CELL);
            for y in y0..y0 + CELL - 1 {
                for x in x0..x0 + CELL - 1 {
                    img.put_pixel(x, y, colour);
                }
            }
            if n > 0 {
                let s = n.to_string();
                let fg = if share > 0.5 {
                    Rgb([255, 255, 255])
                } else {
                    ink
                };
                let tx = x0 + (CELL - 1).saturating_sub(text::width(&s, 12.0)) / 2;
                text::draw(&mut img, tx, y0 + CELL / 2 - 7, &s, fg, 12.0);
            }
        }
    }
    for p in 0..k {
        // Column labels: the class index (names would not fit above a narrow cell).
        let s = p.to_string();
        let tx = LEFT + p as u32 * CELL + (CELL - 1).saturating_sub(text::width(&s, 13.0)) / 2;
        text::draw(&mut img, tx, TOP - 22, &s, ink, 13.0);
    }
    Ok(img)
}

/// [`render_confusion`] written as a PNG to `path` (parent directories created).
pub fn plot_confusion(
    path: impl AsRef<Path>,
    cm: &ConfusionMatrix,
    names: &[String],
) -> Result<(), VizError> {
    write_png(&render_confusion(cm, names)?, path.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_shaded_by_their_row_share_and_names_must_match() {
        let mut cm = ConfusionMatrix::new(3);
        cm.add(&[0, 0, 0, 1, 2, 2], &[0, 0, 0, 1, 1, 2]);
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let img = render_confusion(&cm, &names).unwrap();
        // A cell's corner pixel (away from the text): full row share is dark, none white.
        let at = |t: u32, p: u32| *img.get_pixel(LEFT + p * CELL + 1, TOP + t * CELL + 1);
        assert_eq!(at(0, 0), Rgb([8, 48, 107]));
        assert_eq!(at(0, 1), Rgb([255, 255, 255]));
        assert!(
            at(1, 1).0[0] > 8 && at(1, 1).0[0] < 255,
            "half a row is a middle shade"
        );
        let e = render_confusion(&cm, &names[..2]).unwrap_err().to_string();
        assert!(
            e.starts_with("plot_confusion: ") && e.contains("3 classes") && e.contains("got 2"),
            "{e}"
        );
    }
}
