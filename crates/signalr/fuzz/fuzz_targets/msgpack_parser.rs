//! Feeds arbitrary bytes to the MessagePack hub protocol parser, then re-encodes what it
//! accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signalr::protocol::{HubProtocol, MessagePackProtocol};

fuzz_target!(|data: &[u8]| {
    let mut offset = 0;
    while let Ok(Some((message, used))) =
        MessagePackProtocol.parse_message(&data[offset..], 32 * 1024)
    {
        assert!(used > 0 && offset + used <= data.len());
        offset += used;
        let mut out = Vec::new();
        MessagePackProtocol.write_message(&message, &mut out);
        assert!(MessagePackProtocol.parse_message(&out, usize::MAX).is_ok());
    }
});
