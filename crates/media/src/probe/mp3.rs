//! MPEG audio (MP3) frame walking, plus ID3v2 tag skipping.
//!
//! An MP3 file is a sequence of self-describing frames, optionally preceded
//! by an ID3v2 tag and followed by ID3v1/APE tags. Duration comes from a
//! Xing/Info or VBRI header in the first frame when present (what encoders
//! write for VBR files); otherwise every frame header is walked and the
//! samples per frame are summed, which is exact for CBR and VBR alike. After
//! a corrupt stretch the walker resynchronises on the next header that
//! matches the first frame's version, layer and sample rate.

use super::{AudioFormat, AudioInfo, ProbeError, be32};

/// How far to search for the first frame or to resynchronise, in bytes.
const SEARCH_WINDOW: usize = 64 * 1024;

/// Bit rates in kbit/s, indexed by `[table][index]`; see [`Header::parse`].
const BITRATES: [[u16; 15]; 5] = [
    [
        0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
    ],
    [
        0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
    ],
    [
        0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
    ],
    [
        0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
    ],
    [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
];

fn malformed(what: &str) -> ProbeError {
    ProbeError::malformed("MP3", what)
}

/// A decoded 4-byte MPEG audio frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    /// MPEG-1 (as opposed to MPEG-2 or MPEG-2.5).
    mpeg1: bool,
    layer: u8,
    sample_rate: u32,
    channels: u16,
    /// Total frame length in bytes, header included.
    length: usize,
    samples: u32,
}

impl Header {
    /// Parses the header at `at`; `None` if absent or invalid. Free-format
    /// streams (bit rate index 0) are not supported and read as invalid.
    fn parse(b: &[u8], at: usize) -> Option<Self> {
        let h = b.get(at..at.checked_add(4)?)?;
        if h[0] != 0xff || h[1] & 0xe0 != 0xe0 {
            return None;
        }
        let version = (h[1] >> 3) & 3; // 0: 2.5, 1: reserved, 2: 2, 3: 1
        let layer = 4 - ((h[1] >> 1) & 3); // 4 means reserved
        let bitrate_index = usize::from(h[2] >> 4);
        let rate_index = usize::from((h[2] >> 2) & 3);
        if version == 1
            || layer == 4
            || bitrate_index == 0
            || bitrate_index == 15
            || rate_index == 3
        {
            return None;
        }
        let mpeg1 = version == 3;
        let table = match (mpeg1, layer) {
            (true, l) => usize::from(l) - 1,
            (false, 1) => 3,
            (false, _) => 4,
        };
        let bitrate = u32::from(BITRATES[table][bitrate_index]) * 1000;
        // MPEG-2 halves the MPEG-1 rates and MPEG-2.5 quarters them.
        let sample_rate =
            [44_100, 48_000, 32_000][rate_index] >> [2, 0, 1, 0][usize::from(version)];
        let padding = u32::from((h[2] >> 1) & 1);
        let (length, samples) = match layer {
            1 => ((12 * bitrate / sample_rate + padding) * 4, 384),
            2 => (144 * bitrate / sample_rate + padding, 1152),
            _ if mpeg1 => (144 * bitrate / sample_rate + padding, 1152),
            _ => (72 * bitrate / sample_rate + padding, 576),
        };
        Some(Self {
            mpeg1,
            layer,
            sample_rate,
            channels: if h[3] >> 6 == 3 { 1 } else { 2 },
            length: length as usize,
            samples,
        })
    }

    /// Whether `other` belongs to the same stream.
    fn same_stream(&self, other: &Self) -> bool {
        (self.mpeg1, self.layer, self.sample_rate) == (other.mpeg1, other.layer, other.sample_rate)
    }
}

/// If `b` starts with one or more ID3v2 tags, the bytes after them.
pub(super) fn skip_id3v2(b: &[u8]) -> Result<Option<&[u8]>, ProbeError> {
    let mut rest = b;
    while rest.starts_with(b"ID3") {
        let header = rest
            .get(..10)
            .ok_or_else(|| malformed("truncated in its ID3v2 tag"))?;
        if header[6..10].iter().any(|&v| v & 0x80 != 0) {
            return Err(malformed("carrying a corrupt ID3v2 tag size"));
        }
        let size = header[6..10]
            .iter()
            .fold(0usize, |acc, &v| acc << 7 | usize::from(v));
        let footer = if header[5] & 0x10 != 0 { 10 } else { 0 };
        rest = rest
            .get(10 + size + footer..)
            .ok_or_else(|| malformed("truncated inside its ID3v2 tag"))?;
    }
    Ok((rest.len() != b.len()).then_some(rest))
}

/// Whether `b` starts with an MPEG audio frame followed by another frame
/// (or by the end of the data).
pub(super) fn looks_like_mpeg(b: &[u8]) -> bool {
    chained_header(b, 0).is_some()
}

/// The header at `at` if the frame after it also starts with a matching
/// header or the data ends with it.
fn chained_header(b: &[u8], at: usize) -> Option<Header> {
    let first = Header::parse(b, at)?;
    let next = at + first.length;
    let chained = next >= b.len() || Header::parse(b, next).is_some_and(|n| first.same_stream(&n));
    chained.then_some(first)
}

/// Probes MPEG audio starting at (or shortly after) the start of `b`.
pub(super) fn probe(b: &[u8]) -> Result<AudioInfo, ProbeError> {
    let limit = b.len().min(SEARCH_WINDOW);
    let (start, first) = (0..limit)
        .find_map(|at| chained_header(b, at).map(|h| (at, h)))
        .ok_or_else(|| malformed("without any MPEG audio frames"))?;
    let frames = match vbr_frame_count(b, start, &first) {
        Some(frames) => u64::from(frames),
        None => count_frames(b, start, &first),
    };
    Ok(AudioInfo {
        format: AudioFormat::Mp3,
        duration_seconds: (frames * u64::from(first.samples)) as f64 / f64::from(first.sample_rate),
        sample_rate: first.sample_rate,
        channels: first.channels,
    })
}

/// The frame count from a Xing/Info or VBRI header in the first frame.
fn vbr_frame_count(b: &[u8], start: usize, first: &Header) -> Option<u32> {
    if first.layer != 3 {
        return None;
    }
    let side_info = match (first.mpeg1, first.channels) {
        (true, 1) => 17,
        (true, _) => 32,
        (false, 1) => 9,
        (false, _) => 17,
    };
    let xing = start + 4 + side_info;
    let frames = match b.get(xing..xing + 4) {
        Some(b"Xing") | Some(b"Info") if be32(b, xing + 4)? & 1 == 1 => be32(b, xing + 8)?,
        _ if b.get(start + 36..start + 40) == Some(b"VBRI") => be32(b, start + 36 + 14)?,
        _ => return None,
    };
    (frames > 0).then_some(frames)
}

/// Counts complete frames of the stream that starts with `first`.
fn count_frames(b: &[u8], start: usize, first: &Header) -> u64 {
    let mut frames = 0u64;
    let mut at = start;
    while at < b.len() {
        match Header::parse(b, at).filter(|h| first.same_stream(h)) {
            Some(h) if at + h.length <= b.len() => {
                frames += 1;
                at += h.length;
            }
            Some(_) => break, // a final, cut-off frame
            None => {
                let window = b.len().min(at + SEARCH_WINDOW);
                let Some(next) = (at + 1..window)
                    .find(|&i| chained_header(b, i).is_some_and(|h| first.same_stream(&h)))
                else {
                    break;
                };
                at = next;
            }
        }
    }
    frames
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::probe_audio;
    use super::*;

    /// MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, stereo, no CRC, no padding.
    const HEADER: [u8; 4] = [0xff, 0xfb, 0x90, 0x00];
    const FRAME_LEN: usize = 417;

    /// `frames` frames of silence (all-zero side info and main data),
    /// optionally behind an ID3v2 tag.
    pub(crate) fn mp3_file(id3: bool, frames: usize) -> Vec<u8> {
        let mut out = Vec::new();
        if id3 {
            out.extend(b"ID3\x04\x00\x00\x00\x00\x01\x00"); // 128-byte tag
            out.extend([0u8; 128]);
        }
        for _ in 0..frames {
            out.extend(HEADER);
            out.resize(out.len() + FRAME_LEN - 4, 0);
        }
        out
    }

    #[test]
    fn header_fields() {
        let h = Header::parse(&HEADER, 0).unwrap();
        assert_eq!(
            (h.sample_rate, h.channels, h.length, h.samples),
            (44_100, 2, 417, 1152)
        );
        // MPEG-2 Layer III, 64 kbit/s, 24 kHz, mono, padded.
        let h = Header::parse(&[0xff, 0xf3, 0x86, 0xc0], 0).unwrap();
        assert_eq!(
            (h.sample_rate, h.channels, h.length, h.samples),
            (24_000, 1, 193, 576)
        );
        // MPEG-2.5, 8 kHz.
        assert_eq!(
            Header::parse(&[0xff, 0xe3, 0x88, 0xc0], 0)
                .unwrap()
                .sample_rate,
            8_000
        );
        assert!(Header::parse(&[0xff, 0xfb, 0x00, 0x00], 0).is_none()); // free format
        assert!(Header::parse(&[0xff, 0xfb, 0x9c, 0x00], 0).is_none()); // bad rate
    }

    #[test]
    fn walks_frames_with_and_without_id3() {
        for id3 in [false, true] {
            let info = probe_audio(&mp3_file(id3, 100)).unwrap();
            assert_eq!(info.format, AudioFormat::Mp3);
            assert_eq!((info.sample_rate, info.channels), (44_100, 2));
            let expected = 100.0 * 1152.0 / 44_100.0;
            assert!((info.duration_seconds - expected).abs() < 1e-9, "{info:?}");
        }
    }

    #[test]
    fn xing_header_gives_frame_count() {
        let mut file = mp3_file(false, 3);
        let xing = 4 + 32;
        file[xing..xing + 4].copy_from_slice(b"Xing");
        file[xing + 4..xing + 8].copy_from_slice(&1u32.to_be_bytes());
        file[xing + 8..xing + 12].copy_from_slice(&1000u32.to_be_bytes());
        let info = probe_audio(&file).unwrap();
        assert!((info.duration_seconds - 1000.0 * 1152.0 / 44_100.0).abs() < 1e-9);
    }

    #[test]
    fn resyncs_after_garbage_and_ignores_trailing_tags() {
        let mut file = mp3_file(false, 10);
        file.extend(b"junk!");
        file.extend(mp3_file(false, 10));
        file.extend(b"TAG");
        file.extend([b' '; 125]);
        let info = probe_audio(&file).unwrap();
        assert!((info.duration_seconds - 20.0 * 1152.0 / 44_100.0).abs() < 1e-9);
    }

    #[test]
    fn broken_files_are_malformed() {
        let file = mp3_file(true, 2);
        for bytes in [&file[..5], &file[..60], &file[..138]] {
            assert!(matches!(probe_audio(bytes), Err(ProbeError::Malformed(_))));
        }
        let mut tag_only = b"ID3\x04\x00\x00\x00\x00\x00\x04".to_vec();
        tag_only.extend(b"abcd");
        assert!(matches!(
            probe_audio(&tag_only),
            Err(ProbeError::Malformed(_))
        ));
    }
}
