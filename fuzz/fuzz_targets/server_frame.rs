//! `ServerFrame` deserialization (what every client does with the server's frames) on
//! arbitrary bytes: never panics, and whatever deserializes survives a round trip
//! through `ServerFrame::encode`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natter_protocol::ServerFrame;

fuzz_target!(|data: &[u8]| {
    // From bytes, so that invalid UTF-8 inside JSON strings is exercised too.
    if let Ok(frame) = serde_json::from_slice::<ServerFrame>(data) {
        let again = frame.encode();
        let back: ServerFrame =
            serde_json::from_str(&again).expect("an encoded frame deserializes");
        assert_eq!(back, frame, "round trip changed the frame: {again}");
    }
});
