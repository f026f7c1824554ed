//! `ClientFrame::decode` on arbitrary text: never panics, and whatever decodes
//! re-encodes to JSON that decodes to the same frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use natter_protocol::ClientFrame;

fuzz_target!(|data: &[u8]| {
    // The server hands the decoder only text frames, which tungstenite has checked
    // for UTF-8; bytes that are not UTF-8 are the WebSocket layer's to refuse.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(frame) = ClientFrame::decode(text) {
        let again = serde_json::to_string(&frame).expect("a decoded frame serializes");
        let back = ClientFrame::decode(&again).expect("a serialized frame decodes");
        assert_eq!(
            back, frame,
            "round trip changed the frame: {text:?} -> {again:?}"
        );
    }
});
