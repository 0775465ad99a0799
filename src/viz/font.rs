//! A 5x7 bitmap font for labels on the crate's pictures: every printable ASCII character,
//! drawn at an integer scale, clipped at the image's edges.
//!
//! Each glyph is five columns of seven pixels above the baseline, the classic character-LCD
//! design, plus one row below it for the descenders of `g j p q y , ;` and `_` (as in the
//! LCD's 5x8 cell), which keeps `p` from reading as `P`. Text is laid out on a 6-pixel advance
//! (one blank column between glyphs) and a line is 8 pixels tall, both times the scale.
//! Characters outside `' '..='~'` draw as a hollow box, so an unexpected character shows up
//! instead of vanishing.
//!
//! ```
//! use image::{Rgb, RgbImage};
//! use tapegrad::viz::font::{draw_text, text_width};
//! let mut img = RgbImage::from_pixel(80, 20, Rgb([255, 255, 255]));
//! draw_text(&mut img, 2, 3, "loss 0.5", Rgb([0, 0, 0]), 1);
//! assert_eq!(text_width("loss 0.5", 1), 47);
//! assert!(img.pixels().any(|p| p.0 == [0, 0, 0]));
//! ```

use image::{Rgb, RgbImage};

/// Width of a glyph in pixels at scale 1.
pub const GLYPH_WIDTH: u32 = 5;
/// Height of a capital letter in pixels at scale 1 (the rows down to the baseline).
pub const GLYPH_HEIGHT: u32 = 7;
/// Height of a line of text in pixels at scale 1: the glyph and its descender row.
pub const LINE_HEIGHT: u32 = GLYPH_HEIGHT + 1;
/// Horizontal distance from one glyph to the next at scale 1 (the glyph plus one blank column).
pub const ADVANCE: u32 = GLYPH_WIDTH + 1;

// Column-major: five bytes per glyph, left to right; bit 0 is the top row, bit 6 the
// baseline row, bit 7 the descender row.
// Characters 0x20 (space) through 0x7E (tilde), in order.
#[rustfmt::skip]
const GLYPHS: [[u8; 5]; 95] = [
    [0x00, 0x00, 0x00, 0x00, 0x00], // ' '
    [0x00, 0x00, 0x5F, 0x00, 0x00], // !
    [0x00, 0x07, 0x00, 0x07, 0x00], // "
    [0x14, 0x7F, 0x14, 0x7F, 0x14], // #
    [0x24, 0x2A, 0x7F, 0x2A, 0x12], // $
    [0x23, 0x13, 0x08, 0x64, 0x62], // %
    [0x36, 0x49, 0x55, 0x22, 0x50], // &
    [0x00, 0x05, 0x03, 0x00, 0x00], // '
    [0x00, 0x1C, 0x22, 0x41, 0x00], // (
    [0x00, 0x41, 0x22, 0x1C, 0x00], // )
    [0x08, 0x2A, 0x1C, 0x2A, 0x08], // *
    [0x08, 0x08, 0x3E, 0x08, 0x08], // +
    [0x00, 0x80, 0x60, 0x00, 0x00], // ,
    [0x08, 0x08, 0x08, 0x08, 0x08], // -
    [0x00, 0x60, 0x60, 0x00, 0x00], // .
    [0x20, 0x10, 0x08, 0x04, 0x02], // /
    [0x3E, 0x51, 0x49, 0x45, 0x3E], // 0
    [0x00, 0x42, 0x7F, 0x40, 0x00], // 1
    [0x42, 0x61, 0x51, 0x49, 0x46], // 2
    [0x21, 0x41, 0x45, 0x4B, 0x31], // 3
    [0x18, 0x14, 0x12, 0x7F, 0x10], // 4
    [0x27, 0x45, 0x45, 0x45, 0x39], // 5
    [0x3C, 0x4A, 0x49, 0x49, 0x30], // 6
    [0x01, 0x71, 0x09, 0x05, 0x03], // 7
    [0x36, 0x49, 0x49, 0x49, 0x36], // 8
    [0x06, 0x49, 0x49, 0x29, 0x1E], // 9
    [0x00, 0x36, 0x36, 0x00, 0x00], // :
    [0x00, 0x80, 0x76, 0x36, 0x00], // ;
    [0x08, 0x14, 0x22, 0x41, 0x00], // <
    [0x14, 0x14, 0x14, 0x14, 0x14], // =
    [0x00, 0x41, 0x22, 0x14, 0x08], // >
    [0x02, 0x01, 0x51, 0x09, 0x06], // ?
    [0x32, 0x49, 0x79, 0x41, 0x3E], // @
    [0x7E, 0x11, 0x11, 0x11, 0x7E], // A
    [0x7F, 0x49, 0x49, 0x49, 0x36], // B
    [0x3E, 0x41, 0x41, 0x41, 0x22], // C
    [0x7F, 0x41, 0x41, 0x22, 0x1C], // D
    [0x7F, 0x49, 0x49, 0x49, 0x41], // E
    [0x7F, 0x09, 0x09, 0x09, 0x01], // F
    [0x3E, 0x41, 0x49, 0x49, 0x7A], // G
    [0x7F, 0x08, 0x08, 0x08, 0x7F], // H
    [0x00, 0x41, 0x7F, 0x41, 0x00], // I
    [0x20, 0x40, 0x41, 0x3F, 0x01], // J
    [0x7F, 0x08, 0x14, 0x22, 0x41], // K
    [0x7F, 0x40, 0x40, 0x40, 0x40], // L
    [0x7F, 0x02, 0x0C, 0x02, 0x7F], // M
    [0x7F, 0x04, 0x08, 0x10, 0x7F], // N
    [0x3E, 0x41, 0x41, 0x41, 0x3E], // O
    [0x7F, 0x09, 0x09, 0x09, 0x06], // P
    [0x3E, 0x41, 0x51, 0x21, 0x5E], // Q
    [0x7F, 0x09, 0x19, 0x29, 0x46], // R
    [0x46, 0x49, 0x49, 0x49, 0x31], // S
    [0x01, 0x01, 0x7F, 0x01, 0x01], // T
    [0x3F, 0x40, 0x40, 0x40, 0x3F], // U
    [0x1F, 0x20, 0x40, 0x20, 0x1F], // V
    [0x3F, 0x40, 0x38, 0x40, 0x3F], // W
    [0x63, 0x14, 0x08, 0x14, 0x63], // X
    [0x07, 0x08, 0x70, 0x08, 0x07], // Y
    [0x61, 0x51, 0x49, 0x45, 0x43], // Z
    [0x00, 0x7F, 0x41, 0x41, 0x00], // [
    [0x02, 0x04, 0x08, 0x10, 0x20], // backslash
    [0x00, 0x41, 0x41, 0x7F, 0x00], // ]
    [0x04, 0x02, 0x01, 0x02, 0x04], // ^
    [0x80, 0x80, 0x80, 0x80, 0x80], // _
    [0x00, 0x01, 0x02, 0x04, 0x00], // `
    [0x20, 0x54, 0x54, 0x54, 0x78], // a
    [0x7F, 0x48, 0x44, 0x44, 0x38], // b
    [0x38, 0x44, 0x44, 0x44, 0x20], // c
    [0x38, 0x44, 0x44, 0x48, 0x7F], // d
    [0x38, 0x54, 0x54, 0x54, 0x18], // e
    [0x08, 0x7E, 0x09, 0x01, 0x02], // f
    [0x18, 0xA4, 0xA4, 0xA4, 0x7C], // g
    [0x7F, 0x08, 0x04, 0x04, 0x78], // h
    [0x00, 0x44, 0x7D, 0x40, 0x00], // i
    [0x40, 0x80, 0x84, 0x7D, 0x00], // j
    [0x7F, 0x10, 0x28, 0x44, 0x00], // k
    [0x00, 0x41, 0x7F, 0x40, 0x00], // l
    [0x7C, 0x04, 0x18, 0x04, 0x78], // m
    [0x7C, 0x08, 0x04, 0x04, 0x78], // n
    [0x38, 0x44, 0x44, 0x44, 0x38], // o
    [0xFC, 0x24, 0x24, 0x24, 0x18], // p
    [0x18, 0x24, 0x24, 0x24, 0xFC], // q
    [0x7C, 0x08, 0x04, 0x04, 0x08], // r
    [0x48, 0x54, 0x54, 0x54, 0x20], // s
    [0x04, 0x3F, 0x44, 0x40, 0x20], // t
    [0x3C, 0x40, 0x40, 0x20, 0x7C], // u
    [0x1C, 0x20, 0x40, 0x20, 0x1C], // v
    [0x3C, 0x40, 0x30, 0x40, 0x3C], // w
    [0x44, 0x28, 0x10, 0x28, 0x44], // x
    [0x1C, 0xA0, 0xA0, 0xA0, 0x7C], // y
    [0x44, 0x64, 0x54, 0x4C, 0x44], // z
    [0x00, 0x08, 0x36, 0x41, 0x00], // {
    [0x00, 0x00, 0x7F, 0x00, 0x00], // |
    [0x00, 0x41, 0x36, 0x08, 0x00], // }
    [0x08, 0x04, 0x08, 0x10, 0x08], // ~
];

// Drawn for characters the font lacks.
const MISSING: [u8; 5] = [0x7F, 0x41, 0x41, 0x41, 0x7F];

/// The five column bitmaps of `c` (bit 0 is the top row, bit 7 the descender row); a hollow
/// box when the font lacks `c`.
pub fn glyph(c: char) -> [u8; 5] {
    match c {
        ' '..='~' => GLYPHS[c as usize - 0x20],
        _ => MISSING,
    }
}

/// Width in pixels of `text` drawn at `scale` (no blank column after the last glyph).
pub fn text_width(text: &str, scale: u32) -> u32 {
    let n = text.chars().count() as u32;
    if n == 0 { 0 } else { (n * ADVANCE - 1) * scale }
}

/// Height in pixels of a line of text drawn at `scale`, descenders included.
pub fn text_height(scale: u32) -> u32 {
    LINE_HEIGHT * scale
}

/// Draws `text` with its top-left corner at `(x, y)`, each font pixel a `scale` x `scale`
/// square of `color`. Pixels falling outside the image are skipped, so text may hang off any
/// edge.
pub fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, color: Rgb<u8>, scale: u32) {
    let s = i64::from(scale.max(1));
    for (i, c) in text.chars().enumerate() {
        let gx = x + i as i64 * i64::from(ADVANCE) * s;
        for (col, bits) in glyph(c).iter().enumerate() {
            for row in 0..LINE_HEIGHT as i64 {
                if bits >> row & 1 == 1 {
                    fill_rect(img, gx + col as i64 * s, y + row * s, s, s, color);
                }
            }
        }
    }
}

/// Draws `text` turned a quarter turn anticlockwise, reading from bottom to top, the way a
/// chart's vertical axis is labelled. `(x, y)` is the top-left corner of the turned text's
/// box, which is [`text_height`] wide and [`text_width`] tall.
pub fn draw_text_vertical(
    img: &mut RgbImage,
    x: i64,
    y: i64,
    text: &str,
    color: Rgb<u8>,
    scale: u32,
) {
    let s = i64::from(scale.max(1));
    let bottom = y + i64::from(text_width(text, scale.max(1)));
    for (i, c) in text.chars().enumerate() {
        // The glyph's left edge, measured upwards from the bottom of the box.
        let gx = i as i64 * i64::from(ADVANCE) * s;
        for (col, bits) in glyph(c).iter().enumerate() {
            for row in 0..LINE_HEIGHT as i64 {
                if bits >> row & 1 == 1 {
                    let py = bottom - gx - (col as i64 + 1) * s;
                    fill_rect(img, x + row * s, py, s, s, color);
                }
            }
        }
    }
}

/// Fills a `w` x `h` rectangle at `(x, y)`, clipped to the image.
pub(crate) fn fill_rect(img: &mut RgbImage, x: i64, y: i64, w: i64, h: i64, color: Rgb<u8>) {
    let (iw, ih) = (i64::from(img.width()), i64::from(img.height()));
    let (x0, y0) = (x.max(0), y.max(0));
    let (x1, y1) = ((x + w).min(iw), (y + h).min(ih));
    for py in y0..y1 {
        for px in x0..x1 {
            img.put_pixel(px as u32, py as u32, color);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
    const BLACK: Rgb<u8> = Rgb([0, 0, 0]);

    fn ink(img: &RgbImage) -> usize {
        img.pixels().filter(|p| **p == BLACK).count()
    }

    #[test]
    fn every_printable_ascii_char_renders() {
        for c in ' '..='~' {
            let mut img = RgbImage::from_pixel(12, 18, WHITE);
            draw_text(&mut img, 1, 1, &c.to_string(), BLACK, 2);
            // Only the space is blank; every other glyph leaves ink inside its 10x16 box.
            assert_eq!(ink(&img) == 0, c == ' ', "glyph {c:?}");
            for (x, y, p) in img.enumerate_pixels() {
                if *p == BLACK {
                    assert!(
                        (1..11).contains(&x) && (1..17).contains(&y),
                        "{c:?} at {x},{y}"
                    );
                }
            }
        }
    }

    #[test]
    fn glyphs_are_distinct() {
        let all: Vec<[u8; 5]> = (' '..='~').map(glyph).collect();
        for i in 0..all.len() {
            for j in i + 1..all.len() {
                let (a, b) = ((b' ' + i as u8) as char, (b' ' + j as u8) as char);
                assert_ne!(all[i], all[j], "{a:?} and {b:?} look the same");
            }
        }
        // Only the characters with a descender reach below the baseline.
        for c in ' '..='~' {
            let below = glyph(c).iter().any(|b| b & 0x80 != 0);
            assert_eq!(below, "gjpqy,;_".contains(c), "{c:?}");
        }
    }

    #[test]
    fn text_hanging_off_every_edge_is_clipped_not_a_panic() {
        let mut img = RgbImage::from_pixel(10, 10, WHITE);
        for (x, y) in [(-20, -20), (-3, 2), (7, 7), (8, -4), (1000, 1000)] {
            draw_text(&mut img, x, y, "Wq%~", BLACK, 3);
            draw_text_vertical(&mut img, x, y, "Wq%~", BLACK, 3);
        }
        draw_text(&mut img, 0, 0, "é\u{1F600}", BLACK, 1); // unknown: hollow boxes
        assert!(ink(&img) > 0);
    }

    #[test]
    fn widths_and_vertical_box() {
        assert_eq!(text_width("", 2), 0);
        assert_eq!(text_width("A", 1), 5);
        assert_eq!(text_width("AB", 2), 22);
        assert_eq!(text_height(3), 24);
        // The turned text fills exactly its text_height x text_width box.
        let mut img = RgbImage::from_pixel(20, 40, WHITE);
        draw_text_vertical(&mut img, 3, 4, "HH", BLACK, 1);
        let (mut x0, mut x1, mut y0, mut y1) = (99, 0, 99, 0);
        for (x, y, p) in img.enumerate_pixels() {
            if *p == BLACK {
                (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
            }
        }
        // 'H' has no descender: its ink spans the 7 columns of the turned glyph's rows.
        assert_eq!((x0, x1, y0, y1), (3, 9, 4, 4 + 10));
        // Read bottom to top: the first 'H' occupies the lower glyph box.
        let mut one = RgbImage::from_pixel(20, 40, WHITE);
        draw_text_vertical(&mut one, 3, 4, "H ", BLACK, 1);
        assert!(
            one.enumerate_pixels()
                .all(|(_, y, p)| *p != BLACK || y >= 10)
        );
    }
}
