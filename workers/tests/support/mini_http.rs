//! A minimal HTTP/1.1 exchange for test stand-ins (a Lambda Runtime API, an AWS service
//! stub): read one request's path and body, write one response. Shared by
//! `workers/tests/sms_inbound_lambda.rs` and `tests/benches/lambda.rs` through `#[path]`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// One request's path and body (by `Content-Length`).
pub fn read_request(stream: &TcpStream) -> (String, String) {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap_or(0);
    let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
    let mut length = 0;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
        if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap_or(());
    (path, String::from_utf8_lossy(&body).into_owned())
}

/// One response; the connection closes after it.
pub fn respond(mut stream: TcpStream, status: &str, headers: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.write_all(body));
}
