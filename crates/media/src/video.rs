//! Video as an animated GIF, encoded one frame at a time.
//!
//! Each frame is the prompt's [`Scene`] at time `frame / total`, so shapes
//! orbit and hues rotate through one seamless loop over the whole clip; the
//! prompt caption stays in the middle and a progress bar and clock run
//! along the bottom.
//!
//! GIF is a palette format and its LZW encoder is the slow part, so frames
//! are mapped onto one fixed global palette (a 6×6×6 colour cube with
//! ordered dithering; no per-frame quantisation) and the file is capped in
//! resolution and frame rate, see [`MAX_GIF_SIDE`] and [`MAX_GIF_FPS`].

use std::borrow::Cow;

use crate::canvas::{BLACK, Canvas, WHITE};
use crate::font::Layout;
use crate::scene::{self, Scene};

/// Longest side, in pixels, of the encoded GIF.
// LIMITATION: GIF encoding cost grows with pixel count and the format has
// only 256 colours, so output is scaled down to this size (aspect ratio
// kept). A real video encoder (e.g. H.264 in MP4) would lift this cap.
pub const MAX_GIF_SIDE: u32 = 480;

/// Highest frame rate written to the GIF; requests above it get fewer
/// frames, with delays chosen so playback still lasts the full duration.
// LIMITATION: GIF delays are whole centiseconds and many players clamp tiny
// delays, so higher rates would play wrongly and cost more to encode. An
// MP4 (or WebM) encoder would lift this cap.
pub const MAX_GIF_FPS: u32 = 12;

/// Levels per channel of the colour-cube palette.
const LEVELS: u32 = 6;

/// 4×4 Bayer matrix for ordered dithering.
const BAYER: [[u8; 4]; 4] = [[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]];

/// Renders a clip frame by frame into an animated GIF.
pub struct VideoRenderer {
    scene: Scene,
    caption: Option<Layout>,
    width: u32,
    height: u32,
    fps: u32,
    duration_seconds: u32,
    total: u32,
    done: u32,
    canvas: Canvas,
    indices: Vec<u8>,
    encoder: gif::Encoder<Vec<u8>>,
}

impl VideoRenderer {
    /// Prepares a clip of `prompt` for a `width`×`height` request at `fps`
    /// lasting `duration_seconds`.
    ///
    /// The encoded size is the requested size scaled down to fit
    /// [`MAX_GIF_SIDE`] (see [`output_size`](Self::output_size)); the file's
    /// frame rate is `fps` capped at [`MAX_GIF_FPS`]. Zero values of size,
    /// `fps` or duration are treated as 1. The caller is responsible for
    /// bounding the duration: the output grows linearly with it.
    pub fn new(prompt: &str, width: u32, height: u32, fps: u32, duration_seconds: u32) -> Self {
        let (width, height) = output_size(width, height);
        let fps = fps.clamp(1, MAX_GIF_FPS);
        let duration_seconds = duration_seconds.max(1);
        let palette = palette();
        // Writing headers to a Vec only fails for sizes over u16::MAX, which
        // `output_size` rules out.
        let mut encoder = gif::Encoder::new(Vec::new(), width as u16, height as u16, &palette)
            .expect("GIF header to memory");
        encoder
            .set_repeat(gif::Repeat::Infinite)
            .expect("GIF loop extension to memory");
        Self {
            scene: Scene::new(prompt, 0),
            caption: scene::caption_layout(prompt, width, height),
            width,
            height,
            fps,
            duration_seconds,
            total: duration_seconds.saturating_mul(fps),
            done: 0,
            canvas: Canvas::new(width, height),
            indices: vec![0; width as usize * height as usize],
            encoder,
        }
    }

    /// Number of frames in the output: duration × effective frame rate.
    pub fn total_frames(&self) -> u32 {
        self.total
    }

    /// The pixel size of the encoded GIF, after scaling down.
    pub fn output_size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Renders and encodes the next frame and returns how many frames are
    /// done. Once all frames are done this does nothing.
    pub fn render_next_frame(&mut self) -> u32 {
        if self.done >= self.total {
            return self.done;
        }
        let i = self.done;
        let t = i as f32 / self.total as f32;
        self.scene.render(&mut self.canvas, t);
        if let Some(layout) = &self.caption {
            let (w, h) = (self.width as f32, self.height as f32);
            self.canvas.caption(layout, (w / 2.0, h / 2.0));
        }
        self.draw_progress(i);
        quantize(&self.canvas, &mut self.indices);

        let frame = gif::Frame {
            width: self.width as u16,
            height: self.height as u16,
            delay: self.delay_of(i),
            buffer: Cow::Borrowed(&self.indices),
            ..gif::Frame::default()
        };
        self.encoder
            .write_frame(&frame)
            .expect("GIF frame to memory");
        self.done += 1;
        self.done
    }

    /// Renders any remaining frames and returns the finished GIF bytes.
    pub fn finish(mut self) -> Vec<u8> {
        while self.render_next_frame() < self.total {}
        self.encoder.into_inner().expect("GIF trailer to memory")
    }

    /// Delay of frame `i` in centiseconds. Frame boundaries are rounded to
    /// whole centiseconds from the start, so delays sum to the duration.
    fn delay_of(&self, i: u32) -> u16 {
        let at = |n: u32| (u64::from(n) * 200 + u64::from(self.fps)) / (2 * u64::from(self.fps));
        (at(i + 1) - at(i)) as u16
    }

    /// Draws the progress bar and clock for frame `i`.
    fn draw_progress(&mut self, i: u32) {
        let (w, h) = (self.width as f32, self.height as f32);
        let bar = (h / 90.0).max(2.0).min(h);
        let done = (i + 1) as f32 / self.total as f32;
        self.canvas
            .round_rect((0.0, h - bar, w, bar), 0.0, BLACK, 0.4);
        self.canvas
            .round_rect((0.0, h - bar, w * done, bar), 0.0, WHITE, 0.85);
        let seconds = i as f32 / self.fps as f32;
        let label = format!("{seconds:.1}s / {}s", self.duration_seconds);
        scene::corner_label(&mut self.canvas, &label);
    }
}

/// The requested size scaled down to fit `MAX_GIF_SIDE`, at least 1×1.
fn output_size(width: u32, height: u32) -> (u32, u32) {
    let (w, h) = (u64::from(width.max(1)), u64::from(height.max(1)));
    let longest = w.max(h);
    let side = u64::from(MAX_GIF_SIDE);
    if longest <= side {
        return (w as u32, h as u32);
    }
    let scale = |v: u64| ((v * side + longest / 2) / longest).max(1) as u32;
    (scale(w), scale(h))
}

/// The global palette: a `LEVELS`³ colour cube, padded to 256 with black.
fn palette() -> Vec<u8> {
    let mut palette = Vec::with_capacity(256 * 3);
    for r in 0..LEVELS {
        for g in 0..LEVELS {
            for b in 0..LEVELS {
                palette.extend([r, g, b].map(|v| (v * 255 / (LEVELS - 1)) as u8));
            }
        }
    }
    palette.resize(256 * 3, 0);
    palette
}

/// Maps RGB pixels onto the colour cube with 4×4 ordered dithering.
fn quantize(canvas: &Canvas, out: &mut [u8]) {
    let width = canvas.width() as usize;
    for (i, (px, idx)) in canvas
        .pixels()
        .chunks_exact(3)
        .zip(out.iter_mut())
        .enumerate()
    {
        let (x, y) = (i % width, i / width);
        let threshold = (u32::from(BAYER[y & 3][x & 3]) * 255 + 127) / 16;
        let level = |v: u8| ((u32::from(v) * (LEVELS - 1) + threshold) / 255).min(LEVELS - 1);
        *idx = ((level(px[0]) * LEVELS + level(px[1])) * LEVELS + level(px[2])) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes a GIF into (width, height, frame delays, frame buffers).
    fn decode(bytes: &[u8]) -> (u16, u16, Vec<u16>, Vec<Vec<u8>>) {
        let mut options = gif::DecodeOptions::new();
        options.set_color_output(gif::ColorOutput::Indexed);
        let mut decoder = options.read_info(bytes).expect("valid GIF header");
        let (w, h) = (decoder.width(), decoder.height());
        let (mut delays, mut frames) = (Vec::new(), Vec::new());
        while let Some(frame) = decoder.read_next_frame().expect("valid GIF frame") {
            assert_eq!((frame.width, frame.height), (w, h));
            delays.push(frame.delay);
            frames.push(frame.buffer.to_vec());
        }
        (w, h, delays, frames)
    }

    #[test]
    fn gif_has_expected_frames_size_and_duration() {
        let mut video = VideoRenderer::new("a paper boat on a pond", 160, 90, 8, 2);
        assert_eq!(video.total_frames(), 16);
        assert_eq!(video.output_size(), (160, 90));
        let progress: Vec<u32> = (0..16).map(|_| video.render_next_frame()).collect();
        assert_eq!(progress, (1..=16).collect::<Vec<_>>());
        assert_eq!(video.render_next_frame(), 16);
        let (w, h, delays, frames) = decode(&video.finish());
        assert_eq!((w, h), (160, 90));
        assert_eq!(frames.len(), 16);
        assert_eq!(delays.iter().map(|&d| u32::from(d)).sum::<u32>(), 200);
        // The animation moves: consecutive frames differ.
        assert!(frames.windows(2).all(|f| f[0] != f[1]));
    }

    #[test]
    fn large_requests_are_capped_in_size_and_rate() {
        let video = VideoRenderer::new("city at night", 1280, 720, 30, 3);
        assert_eq!(video.output_size(), (480, 270));
        assert_eq!(video.total_frames(), 3 * MAX_GIF_FPS);
        let (w, h, delays, frames) = decode(&video.finish());
        assert_eq!((w, h), (480, 270));
        assert_eq!(frames.len() as u32, 3 * MAX_GIF_FPS);
        assert_eq!(delays.iter().map(|&d| u32::from(d)).sum::<u32>(), 300);
        assert_eq!(output_size(720, 1280), (270, 480));
        assert_eq!(output_size(100_000, 1), (480, 1));
        assert_eq!(output_size(0, 0), (1, 1));
    }

    #[test]
    fn deterministic_and_prompt_sensitive() {
        let render = |p: &str| VideoRenderer::new(p, 64, 48, 4, 1).finish();
        assert_eq!(render("waves"), render("waves"));
        assert_ne!(render("waves"), render("dunes"));
    }

    #[test]
    fn odd_parameters_never_panic() {
        for (w, h, fps, secs) in [
            (0, 0, 0, 0),
            (1, 1, 1, 1),
            (1, 2000, 60, 1),
            (2000, 1, 5, 2),
        ] {
            let video = VideoRenderer::new("odd", w, h, fps, secs);
            let (ow, oh) = video.output_size();
            let frames = video.total_frames();
            let (dw, dh, _, decoded) = decode(&video.finish());
            assert_eq!((u32::from(dw), u32::from(dh)), (ow, oh));
            assert_eq!(decoded.len() as u32, frames);
        }
    }

    #[test]
    fn five_second_720p_encodes_quickly() {
        let start = std::time::Instant::now();
        let gif =
            VideoRenderer::new("a timing test: drone shot over hills", 1280, 720, 24, 5).finish();
        let elapsed = start.elapsed();
        println!(
            "VideoRenderer 5 s 1280x720: {elapsed:?}, {} bytes",
            gif.len()
        );
        // Generous so debug builds pass; release runs are far faster.
        assert!(elapsed.as_secs_f64() < 20.0);
    }
}
