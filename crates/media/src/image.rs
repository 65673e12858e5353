//! Still images: the prompt's [`Scene`] at rest, captioned, encoded as PNG.
//!
//! The picture is a placeholder, not a generated image: colours and shapes
//! come from a hash of the prompt, the prompt itself is printed in the
//! middle, and a corner label tells images of one request apart.

use crate::canvas::Canvas;
use crate::scene::{self, Scene};

/// Renders a `width`×`height` PNG (8-bit RGB) for `prompt`.
///
/// The output is deterministic for `(prompt, width, height, index)` and
/// differs between prompts and between indices: the background gradient and
/// shapes take their colours from a hash of the prompt and the index, the
/// prompt is drawn legibly in the centre (built-in bitmap font, word-wrapped
/// and scaled to the size, cut with `...` if too long), and a small
/// `image N` label shows `index + 1` (the index is zero-based).
///
/// A zero width or height is treated as 1. The caller is responsible for
/// bounding the size; memory use is about `3 × width × height` bytes.
pub fn render_image_png(prompt: &str, width: u32, height: u32, index: u32) -> Vec<u8> {
    let mut canvas = Canvas::new(width, height);
    Scene::new(prompt, index).render(&mut canvas, 0.0);
    let (w, h) = (canvas.width(), canvas.height());
    if let Some(layout) = scene::caption_layout(prompt, w, h) {
        canvas.caption(&layout, (w as f32 / 2.0, h as f32 / 2.0));
    }
    scene::corner_label(&mut canvas, &format!("image {}", u64::from(index) + 1));
    encode_png(&canvas)
}

/// Encodes the canvas as an RGB PNG with fast compression.
fn encode_png(canvas: &Canvas) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, canvas.width(), canvas.height());
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    // Writing to a Vec cannot fail and the buffer size always matches.
    let mut writer = encoder.write_header().expect("PNG header to memory");
    writer
        .write_image_data(canvas.pixels())
        .expect("PNG data of the declared size");
    writer.finish().expect("PNG end to memory");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::SplitMix;

    fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let decoder = png::Decoder::new(bytes);
        let mut reader = decoder.read_info().expect("valid PNG header");
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).expect("valid PNG data");
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    #[test]
    fn decodes_with_requested_size() {
        for (w, h) in [(256, 256), (320, 200), (77, 413)] {
            let (dw, dh, pixels) = decode(&render_image_png("a red fox in the snow", w, h, 0));
            assert_eq!((dw, dh), (w, h));
            assert_eq!(pixels.len(), (w * h * 3) as usize);
        }
    }

    #[test]
    fn deterministic_and_input_sensitive() {
        let a = render_image_png("a lighthouse at dusk", 128, 96, 0);
        assert_eq!(a, render_image_png("a lighthouse at dusk", 128, 96, 0));
        assert_ne!(a, render_image_png("a lighthouse at dawn", 128, 96, 0));
        assert_ne!(a, render_image_png("a lighthouse at dusk", 128, 96, 1));
    }

    #[test]
    fn text_is_drawn() {
        // The caption puts pure white pixels in the middle of the picture.
        let (w, h, px) = decode(&render_image_png("HELLO", 400, 300, 0));
        let white = px.chunks_exact(3).filter(|p| p == &[255, 255, 255]).count();
        assert!(white > 200, "only {white} white pixels in {w}x{h}");
    }

    #[test]
    fn odd_sizes_never_panic() {
        for (w, h) in [(1, 1), (1, 2000), (2000, 1), (0, 0), (3, 5)] {
            let (dw, dh, _) = decode(&render_image_png("odd", w, h, 0));
            assert_eq!((dw, dh), (w.max(1), h.max(1)));
        }
        let mut rng = SplitMix::new(42);
        for i in 0..40 {
            let w = 1 + (rng.next_u64() % 300) as u32;
            let h = 1 + (rng.next_u64() % 300) as u32;
            let len = (rng.next_u64() % 400) as usize;
            let prompt: String = (0..len)
                .map(|_| char::from_u32((rng.next_u64() % 0x3000) as u32).unwrap_or(' '))
                .collect();
            let (dw, dh, _) = decode(&render_image_png(&prompt, w, h, i));
            assert_eq!((dw, dh), (w, h));
        }
    }

    #[test]
    fn renders_1024_quickly() {
        let start = std::time::Instant::now();
        let png = render_image_png(
            "a timing test of a fairly ordinary prompt length",
            1024,
            1024,
            0,
        );
        let elapsed = start.elapsed();
        println!(
            "render_image_png 1024x1024: {elapsed:?}, {} bytes",
            png.len()
        );
        // Generous so debug builds pass; release runs are ~10x faster.
        assert!(elapsed.as_secs_f64() < 5.0);
    }
}
