//! The two framings: a 0x1E record separator after each JSON text, and a varint length
//! prefix before each MessagePack body.

/// Terminates every JSON message and both handshake messages.
pub const RECORD_SEPARATOR: u8 = 0x1e;

/// Longest varint accepted (5 bytes cover the 2 GiB maximum payload).
const MAX_VARINT_BYTES: usize = 5;

/// Appends `value` as a little-endian base-128 varint.
pub fn write_varint(mut value: u32, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Reads a varint length prefix: `Ok(Some((value, bytes used)))`, `Ok(None)` when `input`
/// ends inside the prefix, or `Err` for a prefix longer than 5 bytes or above `i32::MAX`.
pub fn read_varint(input: &[u8]) -> Result<Option<(usize, usize)>, &'static str> {
    let mut value: u64 = 0;
    for (i, byte) in input.iter().enumerate() {
        if i >= MAX_VARINT_BYTES {
            return Err("Messages over 2GB in size are not supported.");
        }
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if value > i32::MAX as u64 {
                return Err("Messages over 2GB in size are not supported.");
            }
            return Ok(Some((value as usize, i + 1)));
        }
    }
    if input.len() >= MAX_VARINT_BYTES {
        return Err("Messages over 2GB in size are not supported.");
    }
    Ok(None)
}

/// Finds the end of the first record: `Some(index of the separator)`.
pub(crate) fn find_record(input: &[u8]) -> Option<usize> {
    input.iter().position(|b| *b == RECORD_SEPARATOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip_and_known_encodings() {
        for v in [0u32, 1, 0x35, 127, 128, 0x1480, 16_383, 16_384, 0x7fff_ffff] {
            let mut out = Vec::new();
            write_varint(v, &mut out);
            assert_eq!(read_varint(&out), Ok(Some((v as usize, out.len()))), "{v}");
        }
        let mut out = Vec::new();
        write_varint(0x1480, &mut out);
        assert_eq!(out, [0x80, 0x29]);
        let mut out = Vec::new();
        write_varint(0x7fff_ffff, &mut out);
        assert_eq!(out, [0xff, 0xff, 0xff, 0xff, 0x07]);
    }

    #[test]
    fn varint_partial_and_malformed() {
        assert_eq!(read_varint(&[]), Ok(None));
        assert_eq!(read_varint(&[0x80]), Ok(None));
        assert_eq!(read_varint(&[0xff, 0xff, 0xff, 0xff]), Ok(None));
        // above i32::MAX
        assert!(read_varint(&[0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        // six bytes
        assert!(read_varint(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]).is_err());
        assert!(read_varint(&[0x80, 0x80, 0x80, 0x80, 0x80]).is_err());
    }

    #[test]
    fn record_finding() {
        assert_eq!(find_record(b"{}"), None);
        assert_eq!(find_record(b"{}\x1e{}\x1e"), Some(2));
    }
}
