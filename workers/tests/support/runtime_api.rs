//! A stand-in Lambda Runtime API for running the built binaries as Lambda runs them:
//! each `GET /next` hands out the next event (then holds the connection open), and every
//! `/response` or `/error` body is reported, in order.

use super::mini_http::{read_request, respond};
use std::net::TcpListener;
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

/// What the function answered to one invocation.
#[derive(Debug)]
pub enum Answer {
    Response(String),
    Error(String),
}

impl Answer {
    /// The response body; panics with the function's error when it reported one.
    pub fn response(self) -> String {
        match self {
            Answer::Response(body) => body,
            Answer::Error(error) => panic!("the function reported an error: {error}"),
        }
    }
}

/// Serves `events` to the process pointed at the returned port (as `AWS_LAMBDA_RUNTIME_API`).
pub fn runtime_api(events: Vec<String>) -> (u16, Receiver<Answer>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut events = events.into_iter().enumerate();
        for stream in listener.incoming().flatten() {
            let (path, body) = read_request(&stream);
            if path.ends_with("/invocation/next") {
                match events.next() {
                    Some((n, payload)) => {
                        let deadline = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_millis()
                            + 60_000;
                        let headers = format!(
                            "Lambda-Runtime-Aws-Request-Id: req-{n}\r\nLambda-Runtime-Deadline-Ms: {deadline}\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:telepipe\r\n"
                        );
                        respond(stream, "200 OK", &headers, payload.as_bytes());
                    }
                    None => {
                        std::thread::spawn(move || {
                            std::thread::sleep(Duration::from_secs(120));
                            drop(stream)
                        });
                    }
                }
            } else {
                let answer = if path.contains("/response") {
                    Answer::Response(body)
                } else {
                    Answer::Error(format!("{path}: {body}"))
                };
                let _ = tx.send(answer);
                respond(stream, "202 Accepted", "", b"{}");
            }
        }
    });
    (port, rx)
}
