//! Deterministic offline media for Conduit's built-in `local` provider.
//!
//! Nothing here is generative AI: every output is a *placeholder* computed
//! from the request text with plain arithmetic, but each one is a real,
//! standards-conforming file that clients can decode and play:
//!
//! * [`render_image_png`] — a PNG with a colourful background derived from a
//!   hash of the prompt and the prompt text drawn on top;
//! * [`VideoRenderer`] — an animated GIF of the same scene with moving shapes,
//!   encoded frame by frame so callers can report progress;
//! * [`synthesize_speech`] — a 16-bit mono WAV of syllable-like tones whose
//!   length follows the text;
//! * [`probe_audio`] — reads the real container format and duration of
//!   uploaded audio (WAV, MP3, FLAC, Ogg Vorbis/Opus) from its bytes.
//!
//! The same inputs always give the same bytes, no network or model weights
//! are involved, and all rendering is fast enough to run inline.

mod canvas;
mod font;
mod image;
mod probe;
mod scene;
mod seed;
mod speech;
mod video;

pub use image::render_image_png;
pub use probe::{AudioFormat, AudioInfo, ProbeError, probe_audio};
pub use speech::{SPEECH_SAMPLE_RATE, Speech, synthesize_speech};
pub use video::{MAX_GIF_FPS, MAX_GIF_SIDE, VideoRenderer};
