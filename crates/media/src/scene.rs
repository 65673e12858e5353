//! The abstract scene shared by images and video.
//!
//! A [`Scene`] is a handful of parameters drawn from a hash of the prompt
//! (and a variant number): three harmonious colours, a gradient direction
//! and a few soft blobs, discs and rings. Rendering at time `t` in `0..1`
//! moves every shape along a closed orbit and rotates the hues once, so an
//! animation from `t = 0` to `t = 1` loops seamlessly. Still images use
//! `t = 0`.

use std::f32::consts::TAU;

use crate::canvas::{Canvas, Rgb, WHITE};
use crate::font::{self, Layout};
use crate::seed::{SplitMix, fnv1a};

/// What a shape looks like.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A glow that fades out towards its edge.
    Blob,
    /// A flat translucent disc.
    Disc,
    /// An outline circle.
    Ring,
}

/// One shape; positions and sizes are fractions of the canvas.
#[derive(Debug, Clone)]
struct Shape {
    kind: Kind,
    center: (f32, f32),
    radius: f32,
    orbit: f32,
    /// Whole turns per animation loop (negative runs backwards).
    turns: f32,
    phase: f32,
    color: Rgb,
    alpha: f32,
}

/// Deterministic scene parameters for one prompt and variant.
#[derive(Debug, Clone)]
pub(crate) struct Scene {
    hue: f32,
    spread: f32,
    direction: (f32, f32),
    shapes: Vec<Shape>,
}

impl Scene {
    /// The scene for `prompt`; different `variant`s give different scenes.
    pub(crate) fn new(prompt: &str, variant: u32) -> Self {
        let seed =
            fnv1a(prompt.as_bytes()) ^ u64::from(variant).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut rng = SplitMix::new(seed);
        let hue = rng.range(0.0, 360.0);
        let spread = rng.range(30.0, 150.0);
        let angle = rng.range(0.0, TAU);
        let count = 5 + (rng.next_u64() % 5) as usize;
        let shapes = (0..count)
            .map(|i| {
                let kind = match rng.next_u64() % 3 {
                    0 => Kind::Blob,
                    1 => Kind::Disc,
                    _ => Kind::Ring,
                };
                let turns = [1.0, -1.0, 2.0, -2.0][(rng.next_u64() % 4) as usize];
                Shape {
                    kind,
                    center: (rng.range(0.1, 0.9), rng.range(0.1, 0.9)),
                    radius: rng.range(0.06, 0.3),
                    orbit: rng.range(0.03, 0.15),
                    turns,
                    phase: rng.next_f32(),
                    color: Rgb::from_hsv(
                        hue + spread * (i % 3) as f32 + rng.range(-20.0, 20.0),
                        rng.range(0.35, 0.8),
                        rng.range(0.75, 1.0),
                    ),
                    alpha: rng.range(0.25, 0.55),
                }
            })
            .collect();
        Self {
            hue,
            spread,
            direction: (angle.cos(), angle.sin()),
            shapes,
        }
    }

    /// Renders the background and shapes at animation time `t` (`0..1`).
    pub(crate) fn render(&self, canvas: &mut Canvas, t: f32) {
        let (w, h) = (canvas.width() as f32, canvas.height() as f32);
        let hue = self.hue + 360.0 * t;
        let from = Rgb::from_hsv(hue, 0.75, 0.35);
        let to = Rgb::from_hsv(hue + self.spread, 0.65, 0.85);
        // The gradient parameter is linear in x and y, so it is computed
        // incrementally from two per-axis terms; same for the vignette.
        let (dx, dy) = self.direction;
        let norm = dx.abs() + dy.abs();
        let axis = |v: f32, size: f32, d: f32| (v + 0.5) / size * d / norm;
        let offset = (dx.min(0.0) + dy.min(0.0)) / norm;
        let vignette = |v: f32, size: f32| ((v + 0.5) / size - 0.5).powi(2);
        canvas.fill_with(|x, y| {
            let (x, y) = (x as f32, y as f32);
            let s = axis(x, w, dx) + axis(y, h, dy) - offset;
            let shade = 1.0 - 0.6 * (vignette(x, w) + vignette(y, h));
            let c = from.lerp(to, s.clamp(0.0, 1.0));
            Rgb(c.0 * shade, c.1 * shade, c.2 * shade)
        });

        let unit = w.min(h);
        for s in &self.shapes {
            let a = TAU * (s.turns * t + s.phase);
            let center = (
                (s.center.0 + s.orbit * a.cos()) * w,
                (s.center.1 + s.orbit * a.sin()) * h,
            );
            let radius = s.radius * unit;
            match s.kind {
                Kind::Blob => canvas.disc(center, radius, s.color, s.alpha, |d| (1.0 - d).powi(2)),
                Kind::Disc => canvas.disc(center, radius, s.color, s.alpha * 0.8, |_| 1.0),
                Kind::Ring => {
                    let thickness = (radius * 0.12).max(1.0);
                    canvas.ring(center, radius, thickness, s.color, s.alpha + 0.2);
                }
            }
        }
    }
}

/// Wraps the prompt to fit the middle of a `width`×`height` canvas.
pub(crate) fn caption_layout(prompt: &str, width: u32, height: u32) -> Option<Layout> {
    let unit = width.min(height);
    let max_scale = (unit / 90).max(1);
    font::fit(prompt, width * 4 / 5, height * 11 / 20, max_scale)
}

/// Draws a small label in a pill in the bottom-left corner, if it fits.
pub(crate) fn corner_label(canvas: &mut Canvas, text: &str) {
    let (w, h) = (canvas.width(), canvas.height());
    let scale = (w.min(h) / 300).max(1);
    let margin = 4 * scale;
    let Some(layout) = font::fit(text, w.saturating_sub(4 * margin), h / 6, scale) else {
        return;
    };
    if layout.lines.len() != 1 {
        return;
    }
    let (lw, lh) = (layout.width() as f32, layout.height() as f32);
    let pad = (2 * layout.scale) as f32;
    let x = (margin as f32) + pad;
    let y = h as f32 - margin as f32 - pad - lh;
    canvas.round_rect(
        (x - pad, y - pad, lw + 2.0 * pad, lh + 2.0 * pad),
        pad * 1.5,
        crate::canvas::BLACK,
        0.5,
    );
    canvas.text(&layout, (x as i64, y as i64), WHITE, 0.9);
}
