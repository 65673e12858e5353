//! Ogg pages and the Vorbis/Opus identification headers.
//!
//! The first page(s) of an Ogg file begin each logical stream ("BOS") and
//! carry the codec's identification header, which gives channels and
//! sample rate. Every later page records the granule position (for Vorbis
//! and Opus: samples decoded so far) at its end, so the duration is the
//! last granule position of the audio stream divided by the rate; Opus
//! always counts at 48 kHz and subtracts its pre-skip. Pages are walked
//! from the start (CRCs are not checked); a corrupt page is skipped by
//! searching for the next `OggS` capture pattern. Only the first audio
//! stream is measured, so chained files report their first part.

use super::{AudioFormat, AudioInfo, ProbeError, le16, le32};

/// Opus granule positions always count 48 kHz samples.
const OPUS_RATE: u32 = 48_000;

fn malformed(what: &str) -> ProbeError {
    ProbeError::malformed("Ogg", what)
}

/// One parsed page header.
#[derive(Debug, Clone, Copy)]
struct Page {
    begins_stream: bool,
    granule: i64,
    serial: u32,
    /// Offset of the page body.
    body: usize,
    /// Offset just past the page.
    end: usize,
}

/// Parses the page at `at`; `None` if there is no complete page there.
fn page(b: &[u8], at: usize) -> Option<Page> {
    if b.get(at..at.checked_add(4)?)? != b"OggS" || *b.get(at + 4)? != 0 {
        return None;
    }
    let segments = usize::from(*b.get(at + 26)?);
    let table = b.get(at + 27..at + 27 + segments)?;
    let body = at + 27 + segments;
    let end = body + table.iter().map(|&s| usize::from(s)).sum::<usize>();
    (end <= b.len()).then(|| Page {
        begins_stream: b[at + 5] & 2 != 0,
        granule: i64::from_le_bytes(b[at + 6..at + 14].try_into().expect("8 bytes")),
        serial: le32(b, at + 14).expect("in bounds"),
        body,
        end,
    })
}

/// The codec of an audio stream, from its identification header.
#[derive(Debug, Clone, Copy)]
enum Codec {
    Vorbis { rate: u32, channels: u16 },
    Opus { pre_skip: u16, channels: u16 },
}

/// Reads a Vorbis or Opus identification header. `Ok(None)` means the
/// stream is something else.
fn identify(packet: &[u8]) -> Result<Option<Codec>, ProbeError> {
    let short = || malformed("truncated in its codec header");
    if packet.starts_with(b"\x01vorbis") {
        let channels = *packet.get(11).ok_or_else(short)?;
        let rate = le32(packet, 12).ok_or_else(short)?;
        if channels == 0 || rate == 0 {
            return Err(malformed("declaring zero channels or a zero sample rate"));
        }
        return Ok(Some(Codec::Vorbis {
            rate,
            channels: u16::from(channels),
        }));
    }
    if packet.starts_with(b"OpusHead") {
        let channels = *packet.get(9).ok_or_else(short)?;
        let pre_skip = le16(packet, 10).ok_or_else(short)?;
        if channels == 0 {
            return Err(malformed("declaring zero channels"));
        }
        return Ok(Some(Codec::Opus {
            pre_skip,
            channels: u16::from(channels),
        }));
    }
    Ok(None)
}

/// A readable name for a stream we do not measure, from its first packet.
fn other_codec(packet: &[u8]) -> &'static str {
    let known = [
        (&b"\x7fFLAC"[..], "Ogg FLAC"),
        (b"Speex   ", "Ogg Speex"),
        (b"\x80theora", "Ogg Theora video"),
    ];
    known
        .iter()
        .find(|(magic, _)| packet.starts_with(magic))
        .map_or("an unknown Ogg codec", |(_, name)| name)
}

/// Probes a file starting with `OggS`.
pub(super) fn probe(b: &[u8]) -> Result<AudioInfo, ProbeError> {
    // Find the first audio stream among the leading BOS pages.
    let mut at = 0;
    let mut first_other: Option<&str> = None;
    let (serial, codec) = loop {
        let p = page(b, at).ok_or_else(|| malformed("truncated in its first pages"))?;
        if !p.begins_stream {
            let found = first_other.unwrap_or("no streams");
            let what = format!("this Ogg file holds {found}, not Vorbis or Opus audio");
            return Err(ProbeError::unsupported(&what));
        }
        let packet = &b[p.body..p.end];
        match identify(packet)? {
            Some(codec) => break (p.serial, codec),
            None => first_other = first_other.or(Some(other_codec(packet))),
        }
        at = p.end;
    };

    let mut last_granule: Option<i64> = None;
    while at < b.len() {
        match page(b, at) {
            Some(p) => {
                if p.serial == serial && p.granule >= 0 {
                    last_granule = Some(p.granule);
                }
                at = p.end;
            }
            None => match find(b, at + 1) {
                Some(next) => at = next,
                None => break,
            },
        }
    }
    let granule = last_granule
        .filter(|&g| g > 0)
        .ok_or_else(|| malformed("truncated before any audio"))?;
    let (duration_seconds, sample_rate, channels) = match codec {
        Codec::Vorbis { rate, channels } => (granule as f64 / f64::from(rate), rate, channels),
        Codec::Opus { pre_skip, channels } => {
            let samples = (granule - i64::from(pre_skip)).max(0);
            (samples as f64 / f64::from(OPUS_RATE), OPUS_RATE, channels)
        }
    };
    Ok(AudioInfo {
        format: AudioFormat::Ogg,
        duration_seconds,
        sample_rate,
        channels,
    })
}

/// Offset of the next `OggS` capture pattern at or after `from`.
fn find(b: &[u8], from: usize) -> Option<usize> {
    let rest = b.get(from..)?;
    rest.windows(4).position(|w| w == b"OggS").map(|i| from + i)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::probe_audio;
    use super::*;

    /// One Ogg page holding `packets` (CRC left at zero).
    fn ogg_page(flags: u8, granule: i64, serial: u32, seq: u32, packets: &[&[u8]]) -> Vec<u8> {
        let mut lacing = Vec::new();
        for p in packets {
            lacing.extend(std::iter::repeat_n(255u8, p.len() / 255));
            lacing.push((p.len() % 255) as u8);
        }
        let mut out = b"OggS\0".to_vec();
        out.push(flags);
        out.extend(granule.to_le_bytes());
        out.extend(serial.to_le_bytes());
        out.extend(seq.to_le_bytes());
        out.extend([0u8; 4]);
        out.push(lacing.len() as u8);
        out.extend(lacing);
        packets.iter().for_each(|p| out.extend(*p));
        out
    }

    /// An Ogg Opus file with one audio page per granule position.
    pub(crate) fn ogg_opus(channels: u8, pre_skip: u16, granules: &[i64]) -> Vec<u8> {
        let mut head = b"OpusHead\x01".to_vec();
        head.push(channels);
        head.extend(pre_skip.to_le_bytes());
        head.extend(48_000u32.to_le_bytes());
        head.extend([0, 0, 0]);
        let mut out = ogg_page(2, 0, 7, 0, &[&head]);
        out.extend(ogg_page(0, 0, 7, 1, &[b"OpusTags\0\0\0\0\0\0\0\0"]));
        for (i, &g) in granules.iter().enumerate() {
            let flags = if i + 1 == granules.len() { 4 } else { 0 };
            out.extend(ogg_page(flags, g, 7, i as u32 + 2, &[&[0xfc; 300]]));
        }
        out
    }

    /// An Ogg Vorbis file whose only audio page ends at `granule`.
    pub(crate) fn ogg_vorbis(rate: u32, channels: u8, granule: i64) -> Vec<u8> {
        let mut id = b"\x01vorbis\0\0\0\0".to_vec();
        id.push(channels);
        id.extend(rate.to_le_bytes());
        id.extend([0u8; 13]);
        let mut out = ogg_page(2, 0, 1, 0, &[&id]);
        out.extend(ogg_page(0, 0, 1, 1, &[b"\x03vorbis", b"\x05vorbis"]));
        out.extend(ogg_page(4, granule, 1, 2, &[&[0u8; 40]]));
        out
    }

    #[test]
    fn opus_uses_48k_minus_pre_skip() {
        let info = probe_audio(&ogg_opus(2, 312, &[48_000, 96_000, 144_312])).unwrap();
        assert_eq!(info.format, AudioFormat::Ogg);
        assert_eq!((info.sample_rate, info.channels), (48_000, 2));
        assert!((info.duration_seconds - 3.0).abs() < 1e-9, "{info:?}");
    }

    #[test]
    fn vorbis_uses_its_rate() {
        let info = probe_audio(&ogg_vorbis(44_100, 1, 44_100 * 7)).unwrap();
        assert_eq!((info.sample_rate, info.channels), (44_100, 1));
        assert!((info.duration_seconds - 7.0).abs() < 1e-9);
    }

    #[test]
    fn multiplexed_streams_pick_the_audio() {
        let mut file = ogg_page(2, 0, 99, 0, &[b"\x80theora video header"]);
        file.extend(ogg_vorbis(8_000, 2, 16_000));
        file.extend(ogg_page(0, 123_456_789, 99, 1, &[b"video data"]));
        let info = probe_audio(&file).unwrap();
        assert!((info.duration_seconds - 2.0).abs() < 1e-9);
        // Video alone is rejected by name.
        let mut file = ogg_page(2, 0, 99, 0, &[b"\x80theora video header"]);
        file.extend(ogg_page(0, 1_000, 99, 1, &[b"video data"]));
        let info = probe_audio(&file);
        assert!(matches!(info, Err(ProbeError::Unsupported(ref m)) if m.contains("Theora")));
        let mut file = ogg_page(2, 0, 99, 0, &[b"unknown codec"]);
        file.extend(ogg_vorbis(8_000, 2, 16_000));
        let info = probe_audio(&file).unwrap();
        assert!((info.duration_seconds - 2.0).abs() < 1e-9);
    }

    #[test]
    fn truncated_files_are_malformed_or_shorter() {
        let file = ogg_opus(1, 0, &[48_000, 96_000]);
        let first_page = page(&file, 0).unwrap().end;
        for len in [4, 20, 30, first_page - 1, first_page, first_page + 30] {
            assert!(
                matches!(probe_audio(&file[..len]), Err(ProbeError::Malformed(_))),
                "{len}"
            );
        }
        // Cutting the last page leaves the duration up to the previous one.
        let info = probe_audio(&file[..file.len() - 10]).unwrap();
        assert!((info.duration_seconds - 1.0).abs() < 1e-9);
    }
}
