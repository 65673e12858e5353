//! Feeds arbitrary bytes to the handshake parser and resolver.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signalr::protocol::parse_handshake;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((request, used))) = parse_handshake(data, 32 * 1024) {
        assert!(used <= data.len());
        let _ = request.resolve(data.len() % 2 == 0).map_err(|e| e.client_message(true));
    }
});
