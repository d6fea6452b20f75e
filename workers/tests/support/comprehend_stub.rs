//! A Comprehend Medical stand-in for the built binaries: every operation answers
//! `{"Entities": [], "ModelVersion": "stub"}` in CBOR (the SDK's rpc-v2-cbor protocol).

use super::mini_http::{read_request, respond};
use std::net::TcpListener;

/// Comprehend Medical stand-in: every operation answers `{"Entities": [], "ModelVersion": "stub"}` in CBOR.
pub fn comprehend_stub() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut body = vec![0xA2, 0x68];
        body.extend(b"Entities");
        body.extend([0x80, 0x6C]);
        body.extend(b"ModelVersion");
        body.push(0x64);
        body.extend(b"stub");
        for stream in listener.incoming().flatten() {
            read_request(&stream);
            respond(
                stream,
                "200 OK",
                "Content-Type: application/cbor\r\nsmithy-protocol: rpc-v2-cbor\r\n",
                &body,
            );
        }
    });
    port
}
