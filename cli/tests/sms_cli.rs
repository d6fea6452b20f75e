//! `telepipe sms receive`, the local stand-in for the inbound SMS webhook, run as a user
//! would: the text reaches the replies queue intact and the number is not echoed back.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};

use common::fresh_dir;
use telepipe_local::runtime::{open_bus, REPLIES_QUEUE};

fn receive(dir: &Path, from: &str, body: &str, stdin: &str) -> Output {
    let mut child = common::telepipe()
        .args([
            "sms",
            "receive",
            "--from",
            from,
            "--body",
            body,
            "--data-dir",
        ])
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start telepipe sms receive");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn queued_bodies(dir: &Path) -> Vec<String> {
    open_bus(dir)
        .unwrap()
        .queues()
        .peek(REPLIES_QUEUE)
        .unwrap()
        .iter()
        .map(|m| {
            let sms: serde_json::Value = serde_json::from_str(&m.body).unwrap();
            sms["body"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn the_text_comes_from_the_argument_or_from_standard_input() {
    let dir = fresh_dir("sms-cli");
    let from_argument = receive(&dir, "+15551234567", "C", "");
    assert!(from_argument.status.success(), "{from_argument:?}");
    // `--body -`: the text is read from standard input, its line ending dropped.
    let from_stdin = receive(&dir, "+15551234567", "-", "Stop please\n");
    assert!(from_stdin.status.success(), "{from_stdin:?}");
    assert_eq!(queued_bodies(&dir), ["C", "Stop please"]);
    for output in [&from_argument, &from_stdin] {
        let shown = String::from_utf8_lossy(&output.stdout);
        assert!(shown.contains("queued a text"), "{shown}");
        assert!(
            !shown.contains("5551234567"),
            "the number is masked: {shown}"
        );
    }
}

#[test]
fn a_sender_that_is_not_e164_is_refused_and_nothing_is_queued() {
    let dir = fresh_dir("sms-cli");
    let output = receive(&dir, "5551234567", "STOP", "");
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("E.164"), "{error}");
    assert!(queued_bodies(&dir).is_empty());
}
