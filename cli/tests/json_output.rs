//! Every command answers `--output json` with one valid JSON document on stdout (and `run`
//! with one JSON object per line), run as a user would against a small data directory;
//! the same commands print their tables without failing. `demo` and `run` need the real
//! engines (`scripts/test.sh` provides them); the rest run on a directory made with the
//! library and stand-in engines.

mod common;

use common::{populated, run, telepipe};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// `telepipe ARGS --output json`: exit 0 and stdout one JSON document.
fn json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["--output", "json"]);
    let output = run(&all);
    assert!(
        output.status.success(),
        "telepipe {all:?}: {output:?}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "telepipe {all:?} printed no JSON document ({e}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// `telepipe ARGS` with tables: exit 0 and something on stdout.
fn table(args: &[&str]) -> String {
    let output = run(args);
    assert!(
        output.status.success(),
        "telepipe {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(!text.trim().is_empty(), "telepipe {args:?} printed nothing");
    text
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test]
async fn every_command_answers_json() {
    let dir = populated("json").await;
    let d = s(&dir);
    let envelope = dir.join("scheduled.json");
    std::fs::write(&envelope, common::scheduled("visit-c").to_string()).unwrap();
    let report = dir.join("visit-a.html");

    // Read-only commands: tables first, then the same as JSON.
    let reading: Vec<Vec<&str>> = vec![
        vec!["status", "--data-dir", d],
        vec!["status", "--data-dir", d, "--session", "visit-a"],
        vec!["status", "--data-dir", d, "--since", "1h"],
        vec![
            "status",
            "--data-dir",
            d,
            "--since",
            "1h",
            "--state",
            "failed",
        ],
        vec!["events", "list", "--data-dir", d],
        vec!["timers", "--data-dir", d],
        vec!["notifications", "--session", "visit-a", "--data-dir", d],
        vec!["dlq", "list", "--data-dir", d],
        vec!["dlq", "peek", "intake-dlq", "--data-dir", d],
        vec![
            "forget",
            "--session",
            "visit-b",
            "--dry-run",
            "--data-dir",
            d,
        ],
        vec![
            "reprocess",
            "--session",
            "visit-a",
            "--from",
            "clinical",
            "--dry-run",
            "--data-dir",
            d,
        ],
        vec!["audit", "--data-dir", d],
        vec!["audit", "verify", "--data-dir", d],
        vec!["completions", "bash"],
    ];
    for args in &reading {
        table(args);
        json(args);
    }

    let status = json(&["status", "--data-dir", d]);
    let recordings = status["recordings"].as_array().unwrap();
    assert!(
        recordings.iter().any(|r| r["stage"] == "extracted"),
        "{status}"
    );
    assert!(
        recordings.iter().any(|r| r["stage"] == "rejected"),
        "{status}"
    );
    assert!(status["queues"].as_array().unwrap().len() > 3, "{status}");
    let one = json(&["status", "--data-dir", d, "--session", "visit-a"]);
    assert!(!one["timelines"].as_array().unwrap().is_empty(), "{one}");

    let events = json(&["events", "list", "--data-dir", d, "--session", "visit-a"]);
    let events = events.as_array().unwrap();
    assert!(!events.is_empty());
    assert!(
        !events.iter().any(|e| e.to_string().contains("5550143")),
        "addresses are masked"
    );
    let dlqs = json(&["dlq", "list", "--data-dir", d]);
    assert!(dlqs
        .as_array()
        .unwrap()
        .iter()
        .any(|q| q["name"] == "intake-dlq" && q["depth"] == 1));
    let peeked = json(&["dlq", "peek", "intake-dlq", "--data-dir", d]);
    assert_eq!(
        peeked[0]["dead_letter"]["reason"], "format_mismatch",
        "{peeked}"
    );
    let timers = json(&["timers", "--data-dir", d]);
    assert!(!timers["timers"].as_array().unwrap().is_empty(), "{timers}");
    let log = json(&["notifications", "--session", "visit-a", "--data-dir", d]);
    assert!(!log.as_array().unwrap().is_empty(), "{log}");
    let verified = json(&["audit", "verify", "--data-dir", d]);
    assert_eq!(verified["intact"], true, "{verified}");
    let completions = json(&["completions", "bash"]);
    assert!(completions["script"].as_str().unwrap().contains("telepipe"));
    // The old `--json` flags still give JSON (now one document).
    for legacy in [
        &["dlq", "list", "--data-dir", d, "--json"][..],
        &["audit", "--data-dir", d, "--json"],
        &["events", "list", "--data-dir", d, "--json"],
        &[
            "notifications",
            "--session",
            "visit-a",
            "--data-dir",
            d,
            "--json",
        ],
    ] {
        let output = run(legacy);
        assert!(output.status.success(), "{legacy:?}: {output:?}");
        serde_json::from_slice::<Value>(&output.stdout).unwrap();
    }

    // Commands that change the data directory, once each.
    let put = json(&["events", "put", s(&envelope), "--data-dir", d]);
    assert_eq!(put[0]["session_id"], "visit-c", "{put}");
    let fired = json(&["timers", "--data-dir", d, "--session", "visit-b", "--fire"]);
    assert_eq!(fired["fired"], 2, "{fired}");
    let queued = json(&[
        "sms",
        "receive",
        "--from",
        "+15551234567",
        "--body",
        "C",
        "--data-dir",
        d,
    ]);
    assert_eq!(queued["queue"], "replies", "{queued}");
    let dry = json(&["dlq", "replay", "intake-dlq", "--dry-run", "--data-dir", d]);
    assert_eq!(dry["planned"].as_array().unwrap().len(), 1, "{dry}");
    let copied = json(&["dlq", "replay", "intake-dlq", "--copy", "--data-dir", d]);
    assert_eq!(copied["sent"], 1, "{copied}");
    let refed = json(&[
        "reprocess",
        "--session",
        "visit-a",
        "--from",
        "clinical",
        "--data-dir",
        d,
    ]);
    assert_eq!(refed["refeeds"][0]["to"], "clinical", "{refed}");
    let forgotten = json(&["forget", "--session", "visit-b", "--data-dir", d]);
    assert_eq!(forgotten["forgotten"], true, "{forgotten}");
    let audit = json(&[
        "audit",
        "--data-dir",
        d,
        "--session",
        "visit-b",
        "--since",
        "1d",
    ]);
    assert!(!audit.as_array().unwrap().is_empty(), "{audit}");
    let written = json(&[
        "report",
        "--session",
        "visit-a",
        "--data-dir",
        d,
        "--out",
        s(&report),
    ]);
    assert_eq!(written["written"], s(&report), "{written}");
    assert!(report.exists());
    std::fs::remove_dir_all(dir).unwrap();
}

/// `demo` on one short sample and `run` delivering a reminder, with Whisper and the NLP data.
#[tokio::test]
async fn demo_and_run_answer_json() {
    let Some((model, nlp)) = common::real_engines() else {
        return;
    };
    let samples = common::fresh_dir("samples");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/short-metformin.wav"),
        samples.join("short-metformin.wav"),
    )
    .unwrap();
    let demo_dir = samples.join("demo");
    let demo = json(&[
        "demo",
        "--data-dir",
        s(&demo_dir),
        "--samples",
        s(&samples),
        "--model",
        &model,
        "--nlp-data",
        &nlp,
    ]);
    assert_eq!(demo["produced"], 1, "{demo}");
    assert_eq!(demo["recordings"][0]["session_id"], "demo-short-metformin");

    // A reminder due now: `run` "sends" it, one JSON object per line on stdout.
    let dir = populated("run").await;
    table(&[
        "timers",
        "--data-dir",
        s(&dir),
        "--session",
        "visit-b",
        "--fire",
    ]);
    let mut child = telepipe()
        .args(["run", "--output", "json", "--data-dir", s(&dir)])
        .args(["--model", &model, "--nlp-data", &nlp])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let first = received.recv_timeout(Duration::from_secs(120));
    child.kill().unwrap();
    child.wait().unwrap();
    let first = first.expect("run printed what the outbox sent within two minutes");
    let line: Value = serde_json::from_str(&first).unwrap();
    assert!(line["outbox"]["channel"].is_string(), "{line}");
    assert!(!first.contains("5550143"), "the number is masked: {first}");
    std::fs::remove_dir_all(samples).unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}
