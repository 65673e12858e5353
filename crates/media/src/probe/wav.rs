//! WAV (RIFF/WAVE and RF64) header parsing.
//!
//! Walks the chunk list for `fmt `, `fact`, `ds64` and `data`. Duration is
//! data bytes divided by the block size for PCM, IEEE float, A-law and
//! µ-law (also when wrapped in `WAVE_FORMAT_EXTENSIBLE`); compressed codecs
//! use the `fact` sample count, or the byte rate as a fallback. A data chunk
//! that claims more bytes than the file holds (a streamed or cut-off
//! recording) is measured by the bytes actually present.

use super::{AudioFormat, AudioInfo, ProbeError, le16, le32};

/// Format tags whose data is a plain array of fixed-size frames.
const FRAME_CODECS: [u16; 4] = [0x0001, 0x0003, 0x0006, 0x0007];
/// `WAVE_FORMAT_EXTENSIBLE`: the real codec is in the sub-format GUID.
const EXTENSIBLE: u16 = 0xfffe;

/// The parts of a `fmt ` chunk we need.
#[derive(Debug, Clone, Copy)]
struct Fmt {
    codec: u16,
    channels: u16,
    sample_rate: u32,
    byte_rate: u32,
    block_align: u16,
    bits: u16,
}

fn malformed(what: &str) -> ProbeError {
    ProbeError::malformed("WAV", what)
}

/// Probes a file starting with `RIFF`, `RIFX` or `RF64`.
pub(super) fn probe(b: &[u8]) -> Result<AudioInfo, ProbeError> {
    if b.starts_with(b"RIFX") {
        return Err(ProbeError::unsupported(
            "big-endian (RIFX) WAV is not supported",
        ));
    }
    if b.get(8..12) != Some(b"WAVE") {
        if b.len() < 12 {
            return Err(malformed("truncated in its RIFF header"));
        }
        return Err(ProbeError::unsupported(
            "this RIFF file is not WAVE audio (e.g. AVI)",
        ));
    }
    let mut fmt: Option<Fmt> = None;
    let mut fact_samples: Option<u32> = None;
    let mut ds64_data: Option<u64> = None;
    let mut pos = 12usize;
    let data_len = loop {
        let (Some(id), Some(size)) = (b.get(pos..pos + 4), le32(b, pos + 4)) else {
            return Err(malformed("missing its data chunk"));
        };
        let body = pos + 8;
        let size = size as usize;
        let available = b.len() - body.min(b.len());
        match id {
            b"data" => {
                let declared = match (size, ds64_data) {
                    (0xffff_ffff, Some(real)) => usize::try_from(real).unwrap_or(usize::MAX),
                    _ => size,
                };
                break declared.min(available);
            }
            _ if size > available => return Err(malformed("truncated inside a header chunk")),
            b"fmt " => fmt = Some(parse_fmt(&b[body..body + size])?),
            b"fact" => fact_samples = le32(b, body),
            b"ds64" => {
                ds64_data = le32(b, body + 8)
                    .zip(le32(b, body + 12))
                    .map(|(lo, hi)| u64::from(hi) << 32 | u64::from(lo))
            }
            _ => {}
        }
        pos = body + size + (size & 1);
    };
    let fmt = fmt.ok_or_else(|| malformed("missing its fmt chunk before the data"))?;
    let frames = if FRAME_CODECS.contains(&fmt.codec) {
        let block = match fmt.block_align {
            0 => u64::from(fmt.channels) * u64::from(fmt.bits).div_ceil(8),
            n => u64::from(n),
        };
        if block == 0 {
            return Err(malformed("declaring a zero block size"));
        }
        data_len as f64 / block as f64
    } else if let Some(samples) = fact_samples {
        f64::from(samples)
    } else if fmt.byte_rate > 0 {
        data_len as f64 / f64::from(fmt.byte_rate) * f64::from(fmt.sample_rate)
    } else {
        return Err(malformed("using a compressed codec without a byte rate"));
    };
    Ok(AudioInfo {
        format: AudioFormat::Wav,
        duration_seconds: frames.floor() / f64::from(fmt.sample_rate),
        sample_rate: fmt.sample_rate,
        channels: fmt.channels,
    })
}

/// Parses a `fmt ` chunk body, resolving `WAVE_FORMAT_EXTENSIBLE`.
fn parse_fmt(f: &[u8]) -> Result<Fmt, ProbeError> {
    let field16 = |at| le16(f, at).ok_or_else(|| malformed("truncated in its fmt chunk"));
    let field32 = |at| le32(f, at).ok_or_else(|| malformed("truncated in its fmt chunk"));
    let mut fmt = Fmt {
        codec: field16(0)?,
        channels: field16(2)?,
        sample_rate: field32(4)?,
        byte_rate: field32(8)?,
        block_align: field16(12)?,
        bits: le16(f, 14).unwrap_or(0),
    };
    if fmt.codec == EXTENSIBLE {
        // cbSize(2) validBits(2) channelMask(4), then the GUID whose first
        // two bytes are the real format tag.
        fmt.codec =
            le16(f, 24).ok_or_else(|| malformed("truncated in its extensible fmt chunk"))?;
    }
    if fmt.channels == 0 || fmt.sample_rate == 0 {
        return Err(malformed("declaring zero channels or a zero sample rate"));
    }
    Ok(fmt)
}

#[cfg(test)]
mod tests {
    use super::super::probe_audio;
    use super::*;
    use std::io::Cursor;

    fn hound_wav(spec: hound::WavSpec, frames: u32) -> Vec<u8> {
        let mut cursor = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut cursor, spec).unwrap();
        for i in 0..frames * u32::from(spec.channels) {
            match (spec.sample_format, spec.bits_per_sample) {
                (hound::SampleFormat::Float, _) => w.write_sample((i as f32 * 0.01).sin()).unwrap(),
                (_, 16) => w.write_sample((i % 3000) as i16).unwrap(),
                _ => w.write_sample((i % 3000) as i32).unwrap(),
            }
        }
        w.finalize().unwrap();
        cursor.into_inner()
    }

    fn spec(channels: u16, rate: u32, bits: u16, float: bool) -> hound::WavSpec {
        let sample_format = if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        };
        hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format,
        }
    }

    #[test]
    fn hound_pcm_float_and_stereo() {
        let cases = [
            (spec(1, 16_000, 16, false), 32_000, 2.0),
            (spec(1, 48_000, 32, true), 24_000, 0.5),
            (spec(2, 44_100, 16, false), 44_100 * 3, 3.0),
            // 24-bit makes hound write WAVE_FORMAT_EXTENSIBLE.
            (spec(2, 8_000, 24, false), 12_000, 1.5),
        ];
        for (spec, frames, seconds) in cases {
            let info = probe_audio(&hound_wav(spec, frames)).unwrap();
            assert_eq!(info.format, AudioFormat::Wav);
            assert_eq!(
                (info.sample_rate, info.channels),
                (spec.sample_rate, spec.channels)
            );
            assert!((info.duration_seconds - seconds).abs() < 1e-9, "{info:?}");
        }
    }

    #[test]
    fn plain_float_format_tag() {
        // hound writes 32-bit float as WAVE_FORMAT_EXTENSIBLE; rebuild it
        // with the plain IEEE float tag (3) and a 16-byte fmt chunk.
        let wav = hound_wav(spec(2, 48_000, 32, true), 4_800);
        assert_eq!(le16(&wav, 20), Some(EXTENSIBLE));
        let mut out = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x03\0".to_vec();
        out.extend(&wav[22..36]); // channels .. bits per sample
        out.extend(&wav[60..]); // the data chunk
        let info = probe_audio(&out).unwrap();
        assert_eq!((info.sample_rate, info.channels), (48_000, 2));
        assert!((info.duration_seconds - 0.1).abs() < 1e-9, "{info:?}");
    }

    #[test]
    fn rf64_takes_the_data_size_from_ds64() {
        let wav = hound_wav(spec(1, 8_000, 16, false), 4_000);
        let mut out = b"RF64\xff\xff\xff\xffWAVEds64\x1c\0\0\0".to_vec();
        out.extend(0u64.to_le_bytes()); // RIFF size (unused here)
        out.extend(8_000u64.to_le_bytes()); // data size
        out.extend(4_000u64.to_le_bytes()); // sample count
        out.extend(0u32.to_le_bytes()); // table length
        out.extend(&wav[12..40]); // fmt chunk and "data"
        out.extend(u32::MAX.to_le_bytes());
        out.extend(&wav[44..]);
        let info = probe_audio(&out).unwrap();
        assert!((info.duration_seconds - 0.5).abs() < 1e-9, "{info:?}");
    }

    #[test]
    fn truncated_headers_are_malformed_and_cut_data_is_measured() {
        let wav = hound_wav(spec(1, 8_000, 16, false), 8_000);
        for len in [4, 11, 12, 20, 30, 40] {
            assert!(
                matches!(probe_audio(&wav[..len]), Err(ProbeError::Malformed(_))),
                "{len}"
            );
        }
        let half = probe_audio(&wav[..44 + 8_000]).unwrap();
        assert!((half.duration_seconds - 0.5).abs() < 1e-9);
        let avi = b"RIFF\x10\0\0\0AVI LIST".to_vec();
        assert!(matches!(probe_audio(&avi), Err(ProbeError::Unsupported(_))));
    }
}
