//! Writes one sample of each output to a directory and prints timings.
//! A still of the video is also saved as PNG for viewers without GIF support.
//!
//! `cargo run --release -p conduit-media --example render_samples -- [DIR]`

use std::time::Instant;

use conduit_media::{VideoRenderer, probe_audio, render_image_png, synthesize_speech};

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "conduit-media-samples".into());
    std::fs::create_dir_all(&dir)?;
    let prompt =
        "A watercolour painting of a lighthouse on a rocky coast at sunset, seagulls overhead";

    let start = Instant::now();
    let png = render_image_png(prompt, 1024, 1024, 0);
    println!(
        "image 1024x1024: {:?} ({} bytes)",
        start.elapsed(),
        png.len()
    );
    std::fs::write(format!("{dir}/image.png"), png)?;

    let start = Instant::now();
    let mut video = VideoRenderer::new(prompt, 1280, 720, 24, 5);
    let total = video.total_frames();
    while video.render_next_frame() < total {}
    let (w, h) = video.output_size();
    let gif = video.finish();
    println!(
        "video 5 s 1280x720 -> {w}x{h}, {total} frames: {:?} ({} bytes)",
        start.elapsed(),
        gif.len()
    );
    std::fs::write(
        format!("{dir}/video-frame.png"),
        preview_frame(&gif, total / 3),
    )?;
    std::fs::write(format!("{dir}/video.gif"), gif)?;

    let start = Instant::now();
    let speech = synthesize_speech(prompt, "alloy", 1.0);
    println!(
        "speech {:.2} s: {:?} ({} bytes)",
        speech.duration_seconds,
        start.elapsed(),
        speech.wav.len()
    );
    println!("probe: {:?}", probe_audio(&speech.wav));
    std::fs::write(format!("{dir}/speech.wav"), speech.wav)?;
    Ok(())
}

/// Decodes frame `n` of a GIF and re-encodes it as an RGBA PNG.
fn preview_frame(gif_bytes: &[u8], n: u32) -> Vec<u8> {
    let mut options = gif::DecodeOptions::new();
    options.set_color_output(gif::ColorOutput::RGBA);
    let mut decoder = options.read_info(gif_bytes).expect("our own GIF decodes");
    let mut frame = decoder
        .read_next_frame()
        .expect("frame")
        .expect("frame")
        .clone();
    for _ in 0..n {
        match decoder.read_next_frame().expect("frame") {
            Some(next) => frame = next.clone(),
            None => break,
        }
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, u32::from(frame.width), u32::from(frame.height));
    encoder.set_color(png::ColorType::Rgba);
    let mut writer = encoder.write_header().expect("PNG header");
    writer.write_image_data(&frame.buffer).expect("PNG data");
    writer.finish().expect("PNG end");
    out
}
