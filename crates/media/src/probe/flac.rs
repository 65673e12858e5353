//! Native FLAC: the STREAMINFO metadata block.
//!
//! STREAMINFO is required to be the first metadata block and holds the
//! sample rate, channel count and total number of samples, so the duration
//! is read without touching audio frames. Streams that leave the total at
//! zero ("unknown", e.g. some live encoders) are reported as unsupported,
//! since measuring them would mean decoding every frame header.

use super::{AudioFormat, AudioInfo, ProbeError};

fn malformed(what: &str) -> ProbeError {
    ProbeError::malformed("FLAC", what)
}

/// Probes a file starting with `fLaC`.
pub(super) fn probe(b: &[u8]) -> Result<AudioInfo, ProbeError> {
    let header = b
        .get(4..8)
        .ok_or_else(|| malformed("truncated before its STREAMINFO"))?;
    let kind = header[0] & 0x7f;
    let length =
        usize::from(header[1]) << 16 | usize::from(header[2]) << 8 | usize::from(header[3]);
    if kind != 0 || length < 34 {
        return Err(malformed("missing its STREAMINFO block"));
    }
    let info = b
        .get(8..8 + 34)
        .ok_or_else(|| malformed("truncated in its STREAMINFO"))?;
    // Bits: sample rate (20), channels - 1 (3), bits per sample - 1 (5),
    // total samples (36).
    let packed = u64::from_be_bytes(info[10..18].try_into().expect("8 bytes"));
    let sample_rate = (packed >> 44) as u32;
    let channels = ((packed >> 41) & 7) as u16 + 1;
    let total = packed & 0xf_ffff_ffff;
    if sample_rate == 0 {
        return Err(malformed("declaring a zero sample rate"));
    }
    if total == 0 {
        return Err(ProbeError::unsupported(
            "this FLAC stream does not declare its length (re-encode it with a standard encoder)",
        ));
    }
    Ok(AudioInfo {
        format: AudioFormat::Flac,
        duration_seconds: total as f64 / f64::from(sample_rate),
        sample_rate,
        channels,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::probe_audio;
    use super::*;

    /// A FLAC file with only a STREAMINFO block (16-bit samples).
    pub(crate) fn flac_file(sample_rate: u32, channels: u16, total: u64) -> Vec<u8> {
        let mut out = b"fLaC".to_vec();
        out.extend([0x80, 0, 0, 34]); // last block, STREAMINFO, 34 bytes
        out.extend(4096u16.to_be_bytes()); // min block size
        out.extend(4096u16.to_be_bytes()); // max block size
        out.extend([0u8; 6]); // min/max frame size unknown
        let packed = u64::from(sample_rate) << 44
            | u64::from(channels - 1) << 41
            | 15u64 << 36
            | (total & 0xf_ffff_ffff);
        out.extend(packed.to_be_bytes());
        out.extend([0u8; 16]); // MD5
        out
    }

    #[test]
    fn streaminfo_gives_duration() {
        let info = probe_audio(&flac_file(48_000, 2, 48_000 * 90)).unwrap();
        assert_eq!(info.format, AudioFormat::Flac);
        assert_eq!((info.sample_rate, info.channels), (48_000, 2));
        assert!((info.duration_seconds - 90.0).abs() < 1e-9);

        let mut tagged = b"ID3\x03\x00\x00\x00\x00\x00\x02\x00\x00".to_vec();
        tagged.extend(flac_file(44_100, 1, 22_050));
        let info = probe_audio(&tagged).unwrap();
        assert_eq!((info.format, info.channels), (AudioFormat::Flac, 1));
        assert!((info.duration_seconds - 0.5).abs() < 1e-9);
    }

    #[test]
    fn broken_or_unknown_length() {
        let file = flac_file(44_100, 2, 1000);
        for len in [4, 7, 8, 30, 41] {
            assert!(
                matches!(probe_audio(&file[..len]), Err(ProbeError::Malformed(_))),
                "{len}"
            );
        }
        assert!(matches!(
            probe_audio(&flac_file(44_100, 2, 0)),
            Err(ProbeError::Unsupported(_))
        ));
        assert!(matches!(
            probe_audio(&flac_file(0, 2, 10)),
            Err(ProbeError::Malformed(_))
        ));
    }
}
