//! An RGB pixel buffer with the few drawing primitives the scenes need.
//!
//! Everything is clipped to the canvas, so callers may pass shapes that lie
//! partly or wholly outside it (including on 1×1 canvases). Blending is done
//! in `f32` per touched pixel; shapes only visit their bounding boxes, which
//! keeps a 1024×1024 render in the low milliseconds.

use crate::font::{self, CELL_H, CELL_W, Layout};

/// An RGB colour with components in `0.0..=255.0`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rgb(pub f32, pub f32, pub f32);

impl Rgb {
    /// Colour from hue (degrees, any value), saturation and value (`0..=1`).
    pub(crate) fn from_hsv(hue: f32, sat: f32, val: f32) -> Self {
        let h = hue.rem_euclid(360.0) / 60.0;
        let c = val * sat;
        let x = c * (1.0 - (h % 2.0 - 1.0).abs());
        let (r, g, b) = match h as u32 {
            0 => (c, x, 0.0),
            1 => (x, c, 0.0),
            2 => (0.0, c, x),
            3 => (0.0, x, c),
            4 => (x, 0.0, c),
            _ => (c, 0.0, x),
        };
        let m = val - c;
        Self((r + m) * 255.0, (g + m) * 255.0, (b + m) * 255.0)
    }

    /// Linear interpolation towards `other` by `t` in `0..=1`.
    pub(crate) fn lerp(self, other: Rgb, t: f32) -> Rgb {
        Rgb(
            self.0 + (other.0 - self.0) * t,
            self.1 + (other.1 - self.1) * t,
            self.2 + (other.2 - self.2) * t,
        )
    }
}

/// White, for text.
pub(crate) const WHITE: Rgb = Rgb(255.0, 255.0, 255.0);
/// Black, for panels and shadows.
pub(crate) const BLACK: Rgb = Rgb(0.0, 0.0, 0.0);

/// A packed 8-bit RGB image.
#[derive(Debug, Clone)]
pub(crate) struct Canvas {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl Canvas {
    /// A black canvas; zero dimensions are raised to 1.
    pub(crate) fn new(width: u32, height: u32) -> Self {
        let (width, height) = (width.max(1), height.max(1));
        Self {
            width,
            height,
            pixels: vec![0; width as usize * height as usize * 3],
        }
    }

    /// Width in pixels.
    pub(crate) fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub(crate) fn height(&self) -> u32 {
        self.height
    }

    /// The packed RGB bytes, row by row.
    pub(crate) fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    /// Sets every pixel from `f(x, y)`, row by row.
    pub(crate) fn fill_with(&mut self, mut f: impl FnMut(u32, u32) -> Rgb) {
        let width = self.width as usize;
        for (i, px) in self.pixels.chunks_exact_mut(3).enumerate() {
            let c = f((i % width) as u32, (i / width) as u32);
            px.copy_from_slice(&[c.0 as u8, c.1 as u8, c.2 as u8]);
        }
    }

    /// Blends `color` over pixel (`x`, `y`) with opacity `alpha` (`0..=1`).
    fn blend(&mut self, x: i64, y: i64, color: Rgb, alpha: f32) {
        if x < 0 || y < 0 || x >= i64::from(self.width) || y >= i64::from(self.height) {
            return;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        let px = &mut self.pixels[i..i + 3];
        for (p, c) in px.iter_mut().zip([color.0, color.1, color.2]) {
            *p = (f32::from(*p) + (c - f32::from(*p)) * alpha).clamp(0.0, 255.0) as u8;
        }
    }

    /// Clipped integer bounding box `[x0, x1) × [y0, y1)` of a float box.
    fn clip(&self, x0: f32, y0: f32, x1: f32, y1: f32) -> (i64, i64, i64, i64) {
        let cx = |v: f32| (v.floor() as i64).clamp(0, i64::from(self.width));
        let cy = |v: f32| (v.floor() as i64).clamp(0, i64::from(self.height));
        (cx(x0), cy(y0), cx(x1.ceil() + 1.0), cy(y1.ceil() + 1.0))
    }

    /// Draws a disc whose opacity at distance `d` from the centre is
    /// `alpha * profile(d / radius)`, anti-aliased at the rim.
    pub(crate) fn disc(
        &mut self,
        (cx, cy): (f32, f32),
        radius: f32,
        color: Rgb,
        alpha: f32,
        profile: impl Fn(f32) -> f32,
    ) {
        if radius <= 0.0 {
            return;
        }
        let (x0, y0, x1, y1) = self.clip(cx - radius, cy - radius, cx + radius, cy + radius);
        for y in y0..y1 {
            for x in x0..x1 {
                let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                let d = (dx * dx + dy * dy).sqrt();
                let edge = (radius - d + 0.5).clamp(0.0, 1.0);
                if edge > 0.0 {
                    self.blend(x, y, color, alpha * edge * profile(d / radius));
                }
            }
        }
    }

    /// Draws a ring of the given `thickness` centred on `radius`.
    pub(crate) fn ring(&mut self, c: (f32, f32), radius: f32, thickness: f32, color: Rgb, a: f32) {
        let half = thickness / 2.0;
        let (x0, y0, x1, y1) = self.clip(
            c.0 - radius - half,
            c.1 - radius - half,
            c.0 + radius + half,
            c.1 + radius + half,
        );
        for y in y0..y1 {
            for x in x0..x1 {
                let (dx, dy) = (x as f32 + 0.5 - c.0, y as f32 + 0.5 - c.1);
                let off = ((dx * dx + dy * dy).sqrt() - radius).abs();
                let edge = (half - off + 0.5).clamp(0.0, 1.0);
                if edge > 0.0 {
                    self.blend(x, y, color, a * edge);
                }
            }
        }
    }

    /// Fills a rectangle with rounded corners of radius `r`.
    pub(crate) fn round_rect(
        &mut self,
        (x, y, w, h): (f32, f32, f32, f32),
        r: f32,
        color: Rgb,
        a: f32,
    ) {
        let r = r.min(w / 2.0).min(h / 2.0).max(0.0);
        let (x0, y0, x1, y1) = self.clip(x, y, x + w, y + h);
        for py in y0..y1 {
            for px in x0..x1 {
                let (fx, fy) = (px as f32 + 0.5, py as f32 + 0.5);
                // Distance outside the rectangle shrunk by the corner radius.
                let dx = (x + r - fx).max(fx - (x + w - r)).max(0.0);
                let dy = (y + r - fy).max(fy - (y + h - r)).max(0.0);
                let edge = (r - (dx * dx + dy * dy).sqrt() + 0.5).clamp(0.0, 1.0);
                let inside = fx >= x && fx <= x + w && fy >= y && fy <= y + h;
                if inside && edge > 0.0 {
                    self.blend(px, py, color, a * edge);
                }
            }
        }
    }

    /// Draws `layout` with its top-left corner at (`x`, `y`).
    pub(crate) fn text(&mut self, layout: &Layout, (x, y): (i64, i64), color: Rgb, alpha: f32) {
        let s = i64::from(layout.scale);
        for (row, line) in layout.lines.iter().enumerate() {
            let ly = y + row as i64 * i64::from(CELL_H) * s;
            for (col, &ch) in line.iter().enumerate() {
                let lx = x + col as i64 * i64::from(CELL_W) * s;
                let columns = font::glyph(ch);
                for gy in 0..font::GLYPH_H {
                    for gx in 0..5 {
                        if font::pixel(&columns, gx, gy) {
                            self.block(
                                lx + i64::from(gx) * s,
                                ly + i64::from(gy) * s,
                                s,
                                color,
                                alpha,
                            );
                        }
                    }
                }
            }
        }
    }

    /// Blends an `s`×`s` square at (`x`, `y`).
    fn block(&mut self, x: i64, y: i64, s: i64, color: Rgb, alpha: f32) {
        for by in y.max(0)..(y + s).min(i64::from(self.height)) {
            for bx in x.max(0)..(x + s).min(i64::from(self.width)) {
                self.blend(bx, by, color, alpha);
            }
        }
    }

    /// Draws `layout` centred on a translucent dark panel with a drop
    /// shadow, which keeps it legible on any background.
    pub(crate) fn caption(&mut self, layout: &Layout, (cx, cy): (f32, f32)) {
        let (w, h) = (layout.width() as f32, layout.height() as f32);
        let pad = (layout.scale * 3) as f32;
        let (x, y) = ((cx - w / 2.0).round(), (cy - h / 2.0).round());
        let panel = (x - pad, y - pad, w + 2.0 * pad, h + 2.0 * pad);
        self.round_rect(panel, pad * 1.5, BLACK, 0.45);
        let shadow = i64::from((layout.scale / 2).max(1));
        let pos = (x as i64, y as i64);
        self.text(layout, (pos.0 + shadow, pos.1 + shadow), BLACK, 0.6);
        self.text(layout, pos, WHITE, 1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsv_primaries() {
        assert_eq!(Rgb::from_hsv(0.0, 1.0, 1.0), Rgb(255.0, 0.0, 0.0));
        assert_eq!(Rgb::from_hsv(120.0, 1.0, 1.0), Rgb(0.0, 255.0, 0.0));
        assert_eq!(Rgb::from_hsv(-120.0, 1.0, 1.0), Rgb(0.0, 0.0, 255.0));
    }

    #[test]
    fn shapes_are_clipped_to_the_canvas() {
        let mut c = Canvas::new(4, 3);
        c.disc((-100.0, 50.0), 1000.0, WHITE, 1.0, |_| 1.0);
        c.ring((2.0, 2.0), 1e6, 3.0, WHITE, 1.0);
        c.round_rect((-5.0, -5.0, 100.0, 100.0), 3.0, BLACK, 0.5);
        let layout = font::fit("clipped text", 400, 400, 3).unwrap();
        c.caption(&layout, (2.0, 1.0));
        assert_eq!(c.pixels().len(), 4 * 3 * 3);
        assert!(c.pixels().iter().any(|&p| p > 0));
    }
}
