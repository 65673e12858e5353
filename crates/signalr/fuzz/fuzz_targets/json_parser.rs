//! Feeds arbitrary bytes to the JSON hub protocol parser, then re-encodes what it accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signalr::protocol::{HubProtocol, JsonProtocol};

fuzz_target!(|data: &[u8]| {
    let mut offset = 0;
    while let Ok(Some((message, used))) = JsonProtocol.parse_message(&data[offset..], 32 * 1024) {
        assert!(used > 0 && offset + used <= data.len());
        offset += used;
        let mut out = Vec::new();
        JsonProtocol.write_message(&message, &mut out);
        let (again, _) = JsonProtocol
            .parse_message(&out, usize::MAX)
            .expect("re-encoded message parses")
            .expect("re-encoded message is complete");
        assert_eq!(again, message);
    }
});
