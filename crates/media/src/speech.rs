//! Speech-like audio: a WAV of tones shaped like syllables.
//!
//! This is not a speech synthesiser. The text is cut into words and each
//! word into rough syllables (consonants then vowels); each syllable becomes
//! a voiced tone whose pitch comes from the voice name and its characters,
//! with harmonics weighted by a vowel-like formant pair and a short noise
//! burst for leading consonants. Spaces and punctuation become silences.
//! Every character lasts `1 / (14 × speed)` seconds, so the clip length
//! follows the text, and every tone starts and ends at zero through raised
//! cosine ramps, so there are no clicks.

use std::f64::consts::TAU;
use std::io::Cursor;

use crate::seed::{SplitMix, fnv1a};

/// Sample rate of the synthesised WAV, in Hz.
pub const SPEECH_SAMPLE_RATE: u32 = 24_000;

/// Characters spoken per second at speed 1.0.
const CHARS_PER_SECOND: f64 = 14.0;
/// Shortest clip produced, in seconds, so even empty text is playable.
const MIN_SECONDS: f64 = 0.25;
/// Samples in one cycle of a syllable's wavetable.
const TABLE: usize = 1024;
/// Peak amplitude of voiced sound, as a fraction of full scale.
const LOUDNESS: f64 = 0.55;

/// A synthesised clip.
#[derive(Debug, Clone, PartialEq)]
pub struct Speech {
    /// A complete RIFF/WAVE file: 16-bit PCM, mono, [`SPEECH_SAMPLE_RATE`].
    pub wav: Vec<u8>,
    /// Length of the audio in seconds.
    pub duration_seconds: f64,
}

/// One piece of the utterance.
#[derive(Debug)]
enum Segment {
    /// Silence lasting this many character slots.
    Pause(f64),
    /// A syllable made of these characters; `ending` is the punctuation that
    /// follows the word, which shapes the intonation.
    Syllable { chars: Vec<char>, ending: char },
}

/// Synthesises `text` as a playable 16-bit mono WAV at 24 kHz.
///
/// Length is about 14 characters per second at `speed` 1.0; `speed` is
/// clamped to `0.25..=4.0` (non-finite values mean 1.0) and divides the
/// length. The pitch of the voice derives from `voice`, so different voice
/// names sound different. Output is deterministic and at least 0.25 s long.
pub fn synthesize_speech(text: &str, voice: &str, speed: f64) -> Speech {
    let speed = if speed.is_finite() {
        speed.clamp(0.25, 4.0)
    } else {
        1.0
    };
    let rate = f64::from(SPEECH_SAMPLE_RATE);
    let slot = rate / (CHARS_PER_SECOND * speed);
    let voice_seed = fnv1a(voice.trim().to_lowercase().as_bytes());
    let base_pitch = 95.0 + (voice_seed % 1000) as f64 / 1000.0 * 135.0;

    let mut samples: Vec<i16> = Vec::new();
    let mut rng = SplitMix::new(voice_seed ^ fnv1a(text.as_bytes()));
    for segment in segments(text) {
        match segment {
            Segment::Pause(slots) => {
                let n = (slots * slot).round() as usize;
                samples.resize(samples.len() + n, 0);
            }
            Segment::Syllable { chars, ending } => {
                let n = (chars.len() as f64 * slot).round() as usize;
                syllable(&mut samples, &chars, ending, n, base_pitch, &mut rng);
            }
        }
    }
    let min = (MIN_SECONDS * rate) as usize;
    if samples.len() < min {
        samples.resize(min, 0);
    }
    Speech {
        duration_seconds: samples.len() as f64 / rate,
        wav: encode_wav(&samples),
    }
}

/// Splits text into syllables and pauses.
fn segments(text: &str) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut word: Vec<char> = Vec::new();
    let flush = |word: &mut Vec<char>, ending: char, out: &mut Vec<Segment>| {
        for chars in syllables(word) {
            out.push(Segment::Syllable { chars, ending });
        }
        word.clear();
    };
    for c in text.chars() {
        let pause = match c {
            ',' | ';' | ':' => 2.0,
            '.' | '!' | '?' => 3.0,
            '\n' => 3.0,
            c if c.is_whitespace() => 1.0,
            _ => {
                word.push(c);
                continue;
            }
        };
        flush(&mut word, c, &mut out);
        out.push(Segment::Pause(pause));
    }
    flush(&mut word, ' ', &mut out);
    out
}

/// Whether `c` counts as a vowel for syllable splitting.
fn is_vowel(c: char) -> bool {
    matches!(c.to_ascii_lowercase(), 'a' | 'e' | 'i' | 'o' | 'u' | 'y') || !c.is_ascii()
}

/// Cuts a word into consonants-then-vowels groups; trailing consonants join
/// the last group.
fn syllables(word: &[char]) -> Vec<Vec<char>> {
    let mut out: Vec<Vec<char>> = Vec::new();
    let mut current: Vec<char> = Vec::new();
    for (i, &c) in word.iter().enumerate() {
        current.push(c);
        let next_is_vowel = word.get(i + 1).is_some_and(|&n| is_vowel(n));
        if is_vowel(c) && !next_is_vowel && current.len() >= 2 {
            out.push(std::mem::take(&mut current));
        }
    }
    match out.last_mut() {
        Some(last) if !current.is_empty() && current.iter().all(|&c| !is_vowel(c)) => {
            last.append(&mut current)
        }
        _ if !current.is_empty() => out.push(current),
        _ => {}
    }
    out
}

/// Formant pair (Hz) for the first vowel of a syllable.
fn formants(chars: &[char]) -> (f64, f64) {
    match chars
        .iter()
        .find(|c| is_vowel(**c))
        .map(|c| c.to_ascii_lowercase())
    {
        Some('a') => (730.0, 1090.0),
        Some('e') => (530.0, 1840.0),
        Some('i') | Some('y') => (300.0, 2200.0),
        Some('o') => (570.0, 840.0),
        Some('u') => (330.0, 1000.0),
        _ => (500.0, 1500.0),
    }
}

/// Appends `n` samples of one syllable.
fn syllable(
    out: &mut Vec<i16>,
    chars: &[char],
    ending: char,
    n: usize,
    base: f64,
    rng: &mut SplitMix,
) {
    if n == 0 {
        return;
    }
    let rate = f64::from(SPEECH_SAMPLE_RATE);
    let text: String = chars.iter().collect();
    let h = fnv1a(text.to_lowercase().as_bytes());
    let start_pitch = base * (0.85 + (h % 1000) as f64 / 1000.0 * 0.35);
    let end_pitch = start_pitch
        * match ending {
            '?' => 1.25,
            '.' | '!' | '\n' => 0.8,
            _ => 0.95,
        };
    let table = wavetable((start_pitch + end_pitch) / 2.0, formants(chars));
    let fricative = chars
        .first()
        .is_some_and(|c| "sfzhxcktp".contains(c.to_ascii_lowercase()));
    let noise_len = if fricative { n / 4 } else { 0 };

    let ramp = (0.012 * rate).min(n as f64 / 2.0);
    let mut phase = 0.0f64;
    for i in 0..n {
        let pos = i as f64 / n as f64;
        let pitch = start_pitch + (end_pitch - start_pitch) * pos;
        let vibrato = 1.0 + 0.012 * (TAU * 5.0 * i as f64 / rate).sin();
        phase = (phase + pitch * vibrato / rate).fract();
        let at = phase * TABLE as f64;
        let (k, frac) = (at as usize % TABLE, at.fract());
        let voiced = table[k] + (table[(k + 1) % TABLE] - table[k]) * frac;
        let noise = if i < noise_len {
            let fade = 1.0 - i as f64 / noise_len as f64;
            (rng.next_f32() as f64 * 2.0 - 1.0) * 0.25 * fade
        } else {
            0.0
        };
        let voicing = (pos * 4.0).min(1.0) * if fricative { 0.8 } else { 1.0 };
        let value = (voiced * voicing + noise) * envelope(i as f64, n as f64, ramp);
        out.push((value * LOUDNESS * f64::from(i16::MAX)).round() as i16);
    }
}

/// Raised-cosine fade in and out over `ramp` samples; zero at both ends.
fn envelope(i: f64, n: f64, ramp: f64) -> f64 {
    let edge = i.min(n - 1.0 - i).max(0.0);
    if edge >= ramp {
        1.0
    } else {
        0.5 - 0.5 * (std::f64::consts::PI * edge / ramp).cos()
    }
}

/// One period of a tone at `pitch` whose harmonics follow two formants,
/// normalised to a peak of 1.
fn wavetable(pitch: f64, (f1, f2): (f64, f64)) -> Vec<f64> {
    let resonance = |f: f64, centre: f64| 1.0 / (1.0 + ((f - centre) / 150.0).powi(2));
    let harmonics: Vec<(f64, f64)> = (1..=24)
        .map(|k| k as f64)
        .take_while(|k| k * pitch < 4_000.0)
        .map(|k| {
            let f = k * pitch;
            (k, 0.3 / k + resonance(f, f1) + 0.6 * resonance(f, f2))
        })
        .collect();
    let mut table: Vec<f64> = (0..TABLE)
        .map(|i| {
            let x = TAU * i as f64 / TABLE as f64;
            harmonics.iter().map(|(k, a)| a * (k * x).sin()).sum()
        })
        .collect();
    let peak = table.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if peak > 0.0 {
        table.iter_mut().for_each(|v| *v /= peak);
    }
    table
}

/// Wraps 16-bit mono samples in a WAV container.
fn encode_wav(samples: &[i16]) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SPEECH_SAMPLE_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut cursor = Cursor::new(Vec::with_capacity(44 + samples.len() * 2));
    // Writing to memory cannot fail for clips under the 4 GiB WAV limit.
    let mut writer = hound::WavWriter::new(&mut cursor, spec).expect("WAV header to memory");
    let mut pcm = writer.get_i16_writer(samples.len() as u32);
    for &s in samples {
        pcm.write_sample(s);
    }
    pcm.flush().expect("WAV samples to memory");
    writer.finalize().expect("WAV trailer to memory");
    cursor.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(wav: &[u8]) -> (hound::WavSpec, Vec<i16>) {
        let reader = hound::WavReader::new(wav).expect("valid WAV");
        let spec = reader.spec();
        let samples = reader.into_samples::<i16>().map(|s| s.unwrap()).collect();
        (spec, samples)
    }

    #[test]
    fn wav_is_16_bit_mono_24k_and_matches_duration() {
        let speech = synthesize_speech("Hello there, how are you today?", "alloy", 1.0);
        let (spec, samples) = read(&speech.wav);
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (1, 24_000, 16)
        );
        assert_eq!(samples.len() as f64 / 24_000.0, speech.duration_seconds);
        assert!(samples.iter().any(|&s| s.unsigned_abs() > 5_000), "audible");
    }

    #[test]
    fn duration_follows_text_and_speed() {
        let text = "The quick brown fox jumps over the lazy dog ".repeat(5);
        let expected = text.len() as f64 / 14.0;
        let normal = synthesize_speech(&text, "nova", 1.0).duration_seconds;
        assert!(
            (normal / expected - 1.0).abs() < 0.15,
            "{normal} vs {expected}"
        );
        let fast = synthesize_speech(&text, "nova", 2.0).duration_seconds;
        assert!(
            (fast * 2.0 / normal - 1.0).abs() < 0.02,
            "{fast} vs {normal}"
        );
        let slow = synthesize_speech(&text, "nova", 0.5).duration_seconds;
        assert!((slow / 2.0 / normal - 1.0).abs() < 0.02);
        // Out-of-range speeds are clamped.
        assert_eq!(synthesize_speech(&text, "nova", 100.0).duration_seconds, {
            synthesize_speech(&text, "nova", 4.0).duration_seconds
        });
        let short = synthesize_speech("Hi.", "nova", 1.0).duration_seconds;
        assert!(short < normal / 10.0);
    }

    #[test]
    fn deterministic_and_voice_dependent() {
        let a = synthesize_speech("same words", "alloy", 1.0);
        assert_eq!(a, synthesize_speech("same words", "alloy", 1.0));
        assert_ne!(a.wav, synthesize_speech("same words", "onyx", 1.0).wav);
    }

    #[test]
    fn no_clicks_at_segment_boundaries() {
        let speech = synthesize_speech("tick, tock. sss zzz!", "echo", 1.0);
        let (_, samples) = read(&speech.wav);
        assert_eq!(samples[0], 0);
        assert_eq!(*samples.last().unwrap(), 0);
        let max_step = samples
            .windows(2)
            .map(|w| (i32::from(w[1]) - i32::from(w[0])).abs())
            .max()
            .unwrap();
        assert!(max_step < 16_000, "step of {max_step}");
    }

    #[test]
    fn edge_inputs_are_playable() {
        for (text, speed) in [
            ("", 1.0),
            ("   ", f64::NAN),
            ("日本語のテキスト", 0.1),
            ("!!!", 4.0),
        ] {
            let speech = synthesize_speech(text, "", speed);
            let (_, samples) = read(&speech.wav);
            assert!(speech.duration_seconds >= MIN_SECONDS);
            assert_eq!(samples.len() as f64 / 24_000.0, speech.duration_seconds);
        }
    }

    #[test]
    fn syllable_split() {
        let split = |w: &str| -> Vec<String> {
            let chars: Vec<char> = w.chars().collect();
            syllables(&chars)
                .iter()
                .map(|s| s.iter().collect())
                .collect()
        };
        assert_eq!(split("banana"), ["ba", "na", "na"]);
        assert_eq!(split("strength"), ["strength"]);
        assert_eq!(split("audio"), ["au", "dio"]);
    }
}
