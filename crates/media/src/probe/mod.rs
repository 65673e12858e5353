//! Identifying uploaded audio from its bytes.
//!
//! [`probe_audio`] looks at magic numbers, never at file names, and hands
//! the bytes to a small parser per container: [`wav`], [`mp3`], [`flac`]
//! and [`ogg`]. Each parser reads only headers (no decoding) with bounds
//! checked at every step, so truncated or hostile input yields
//! [`ProbeError::Malformed`] instead of a panic. Recognisable but
//! unsupported containers (MP4/M4A, WebM, AIFF, AAC, ...) are named in the
//! [`ProbeError::Unsupported`] message so the user knows what to convert.

mod flac;
mod mp3;
mod ogg;
mod wav;

use std::fmt;

/// The formats [`probe_audio`] understands, for error messages.
const SUPPORTED: &str = "WAV, MP3, FLAC, Ogg Vorbis or Ogg Opus";

/// Container format of a probed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    /// RIFF/WAVE: PCM, IEEE float or other codecs in a WAV container.
    Wav,
    /// MPEG audio (Layer III, and also Layers I/II) in an elementary stream.
    Mp3,
    /// Native FLAC.
    Flac,
    /// Ogg container holding Vorbis or Opus.
    Ogg,
}

impl AudioFormat {
    /// Short lowercase name, also the usual file extension: `"wav"`,
    /// `"mp3"`, `"flac"` or `"ogg"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wav => "wav",
            Self::Mp3 => "mp3",
            Self::Flac => "flac",
            Self::Ogg => "ogg",
        }
    }
}

impl fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`probe_audio`] found out about a file.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    /// The container format.
    pub format: AudioFormat,
    /// Playing time in seconds.
    pub duration_seconds: f64,
    /// Samples per second per channel. For Opus this is the 48 kHz the
    /// codec always decodes at, not the original input rate.
    pub sample_rate: u32,
    /// Number of channels.
    pub channels: u16,
}

/// Why a file could not be probed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// Not a format we read; the message names the supported formats.
    #[error("unsupported audio: {0}")]
    Unsupported(String),
    /// Looks like a supported format but is truncated or corrupt.
    #[error("malformed audio: {0}")]
    Malformed(String),
}

impl ProbeError {
    /// An [`Unsupported`](Self::Unsupported) error for `what`, listing the
    /// supported formats.
    pub(crate) fn unsupported(what: &str) -> Self {
        Self::Unsupported(format!("{what}; please upload {SUPPORTED}"))
    }

    /// A [`Malformed`](Self::Malformed) error for a `format` file.
    pub(crate) fn malformed(format: &str, what: &str) -> Self {
        Self::Malformed(format!("{format} file is {what}"))
    }
}

/// Reads the real format, duration, sample rate and channel count of audio
/// from its bytes.
///
/// Supported: WAV (PCM, float, `WAVE_FORMAT_EXTENSIBLE`, other codecs with a
/// byte rate), MP3 (optionally after an ID3v2 tag; Xing/Info and VBRI
/// headers are used when present, otherwise every frame header is walked),
/// FLAC (STREAMINFO) and Ogg Vorbis/Opus (last granule position). Anything
/// else is [`ProbeError::Unsupported`]; truncated or corrupt input of a
/// recognised format is [`ProbeError::Malformed`]. Never panics.
pub fn probe_audio(bytes: &[u8]) -> Result<AudioInfo, ProbeError> {
    if bytes.is_empty() {
        return Err(ProbeError::Malformed("the file is empty".into()));
    }
    let body = match mp3::skip_id3v2(bytes)? {
        Some(rest) => rest,
        None => bytes,
    };
    let tagged = body.len() != bytes.len();
    if body.starts_with(b"fLaC") {
        return flac::probe(body);
    }
    if !tagged {
        if bytes.starts_with(b"RIFF") || bytes.starts_with(b"RIFX") || bytes.starts_with(b"RF64") {
            return wav::probe(bytes);
        }
        if bytes.starts_with(b"OggS") {
            return ogg::probe(bytes);
        }
        if let Some(name) = other_format(bytes) {
            return Err(ProbeError::unsupported(&format!("{name} is not supported")));
        }
    }
    if tagged || mp3::looks_like_mpeg(body) {
        return mp3::probe(body);
    }
    Err(ProbeError::unsupported("unrecognised audio format"))
}

/// Names well-known containers we do not read.
fn other_format(bytes: &[u8]) -> Option<&'static str> {
    let at = |offset: usize, magic: &[u8]| bytes.get(offset..offset + magic.len()) == Some(magic);
    if at(4, b"ftyp") {
        Some("MP4/M4A audio")
    } else if at(0, &[0x1a, 0x45, 0xdf, 0xa3]) {
        Some("WebM/Matroska audio")
    } else if at(0, b"FORM") && (at(8, b"AIFF") || at(8, b"AIFC")) {
        Some("AIFF audio")
    } else if at(0, b"#!AMR") {
        Some("AMR audio")
    } else if at(0, b"caff") {
        Some("Core Audio (CAF) audio")
    } else if bytes.len() >= 2 && bytes[0] == 0xff && bytes[1] & 0xf6 == 0xf0 {
        Some("AAC (ADTS) audio")
    } else {
        None
    }
}

/// Little-endian `u16` at `at`, if in bounds.
pub(crate) fn le16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

/// Little-endian `u32` at `at`, if in bounds.
pub(crate) fn le32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Big-endian `u32` at `at`, if in bounds.
pub(crate) fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::SplitMix;

    #[test]
    fn format_names() {
        let names = [
            AudioFormat::Wav,
            AudioFormat::Mp3,
            AudioFormat::Flac,
            AudioFormat::Ogg,
        ]
        .map(AudioFormat::as_str);
        assert_eq!(names, ["wav", "mp3", "flac", "ogg"]);
        assert_eq!(AudioFormat::Mp3.to_string(), "mp3");
    }

    #[test]
    fn unknown_formats_are_unsupported_with_guidance() {
        for bytes in [
            &b"hello world, not audio"[..],
            b"\x00\x00\x00\x20ftypM4A \x00",
            b"\x1a\x45\xdf\xa3abc",
        ] {
            match probe_audio(bytes) {
                Err(ProbeError::Unsupported(msg)) => {
                    assert!(msg.contains("WAV, MP3, FLAC"), "{msg}")
                }
                other => panic!("expected Unsupported, got {other:?}"),
            }
        }
        assert!(matches!(probe_audio(&[]), Err(ProbeError::Malformed(_))));
        assert!(probe_audio(b"ID3").is_err());
    }

    #[test]
    fn speech_output_probes_as_wav() {
        let speech = crate::synthesize_speech("Probing our own output works.", "alloy", 1.0);
        let info = probe_audio(&speech.wav).unwrap();
        assert_eq!(info.format, AudioFormat::Wav);
        assert_eq!((info.sample_rate, info.channels), (24_000, 1));
        assert!((info.duration_seconds - speech.duration_seconds).abs() < 1e-9);
    }

    /// Valid files of every format, for mutation.
    fn corpus() -> Vec<Vec<u8>> {
        vec![
            crate::synthesize_speech("fuzz", "echo", 1.0).wav,
            mp3::tests::mp3_file(true, 20),
            mp3::tests::mp3_file(false, 5),
            flac::tests::flac_file(44_100, 2, 441_000),
            ogg::tests::ogg_opus(2, 312, &[960, 48_000 + 312]),
            ogg::tests::ogg_vorbis(44_100, 1, 88_200),
        ]
    }

    #[test]
    fn truncations_and_mutations_never_panic() {
        let mut rng = SplitMix::new(1);
        for file in corpus() {
            probe_audio(&file).expect("corpus file probes");
            for len in 0..file.len().min(600) {
                let _ = probe_audio(&file[..len]);
            }
            for _ in 0..2_000 {
                let mut m = file.clone();
                for _ in 0..1 + rng.next_u64() % 8 {
                    let i = (rng.next_u64() % m.len() as u64) as usize;
                    m[i] = rng.next_u64() as u8;
                }
                let cut = (rng.next_u64() % (m.len() as u64 + 1)) as usize;
                let _ = probe_audio(&m[..cut.max(m.len() / 2)]);
                let _ = probe_audio(&m);
            }
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = SplitMix::new(2);
        let prefixes: [&[u8]; 7] = [
            b"",
            b"RIFF",
            b"fLaC",
            b"OggS",
            b"ID3",
            b"\xff\xfb",
            b"RIFF\x10\x00\x00\x00WAVE",
        ];
        for i in 0..20_000 {
            let len = (rng.next_u64() % 512) as usize;
            let mut bytes = prefixes[i % prefixes.len()].to_vec();
            bytes.extend((0..len).map(|_| rng.next_u64() as u8));
            let _ = probe_audio(&bytes);
        }
    }
}
