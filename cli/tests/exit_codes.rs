//! The documented exit codes (0 success, 1 runtime failure, 2 usage, 3 partial success)
//! and `TELEPIPE_DATA_DIR` standing for `--data-dir`, on the real binary.

mod common;

use common::{populated, run, telepipe};
use std::path::Path;

fn code(args: &[&str]) -> i32 {
    let output = run(args);
    output.status.code().expect("telepipe exited")
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test]
async fn usage_runtime_failure_and_partial_success_exit_apart() {
    let dir = populated("codes").await;
    let d = s(&dir);
    assert_eq!(code(&["status", "--data-dir", d]), 0);

    // 2: the command line is wrong.
    for usage in [
        &["status", "--data-dir", d, "--bogus"][..],
        &["--output", "yaml", "status", "--data-dir", d],
        &["status"],
        &["dlq", "list"],
        &["dlq", "list", "--aws", "--data-dir", d],
        &["forget", "--session", "not a session id", "--data-dir", d],
        &["dlq", "replay", "intake-dlq", "--native", "--data-dir", d],
        &[
            "sms",
            "receive",
            "--from",
            "5551234567",
            "--body",
            "C",
            "--data-dir",
            d,
        ],
    ] {
        assert_eq!(code(usage), 2, "telepipe {usage:?}");
    }

    // 1: it ran and failed.
    let missing = dir.join("no-such-dir");
    assert_eq!(code(&["status", "--data-dir", s(&missing)]), 1);
    assert_eq!(code(&["dlq", "peek", "no-such-dlq", "--data-dir", d]), 1);
    let output = run(&["status", "--data-dir", s(&missing), "--output", "json"]);
    assert!(output.stdout.is_empty(), "errors go to stderr only");
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a data directory"));

    // 3: a replay that leaves a message parked (an earlier run's send is uncertain).
    let peeked = run(&[
        "dlq",
        "peek",
        "intake-dlq",
        "--data-dir",
        d,
        "--output",
        "json",
    ]);
    let peeked: serde_json::Value = serde_json::from_slice(&peeked.stdout).unwrap();
    let id = peeked[0]["message_id"].as_str().unwrap();
    let journal = dir.join("replay/intake-dlq.jsonl");
    std::fs::create_dir_all(journal.parent().unwrap()).unwrap();
    let intent = serde_json::json!({"at_ms": 1, "state": "intent", "message_id": id,
        "dlq": "intake-dlq", "target": "intake", "mode": "move"});
    std::fs::write(&journal, format!("{intent}\n")).unwrap();
    let output = run(&[
        "dlq",
        "replay",
        "intake-dlq",
        "--data-dir",
        d,
        "--output",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(3), "{output:?}");
    let replayed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(replayed["uncertain"][0], id, "{replayed}");

    // 1 from a check that found a problem: an audit entry rewritten.
    {
        let db = telepipe_local::db::Db::open(&dir.join("telepipe.db")).unwrap();
        db.lock()
            .execute_batch(
                "DROP TRIGGER audit_log_append_only_update;
                 UPDATE audit_log SET entry = replace(entry, 'entities_extracted', 'recording_rejected')
                 WHERE entry LIKE '%entities_extracted%';",
            )
            .unwrap();
    }
    let output = run(&["audit", "verify", "--data-dir", d, "--output", "json"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let verified: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(verified["intact"], false, "{verified}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn telepipe_data_dir_stands_for_the_flag() {
    let dir = populated("env").await;
    let with_env = |args: &[&str], value: &Path| {
        telepipe()
            .args(args)
            .env("TELEPIPE_DATA_DIR", value)
            .output()
            .unwrap()
    };
    for args in [
        &["status", "--output", "json"][..],
        &["dlq", "list", "--output", "json"],
        &["audit", "verify"],
        &["timers"],
        &["notifications", "--session", "visit-a"],
        &["forget", "--session", "visit-a", "--dry-run"],
    ] {
        let output = with_env(args, &dir);
        assert!(output.status.success(), "telepipe {args:?}: {output:?}");
    }
    let status = with_env(&["status", "--output", "json"], &dir);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(!status["recordings"].as_array().unwrap().is_empty());

    // The flag wins over the environment.
    let elsewhere = dir.join("not-this-one");
    let output = with_env(&["status", "--data-dir", s(&dir)], &elsewhere);
    assert!(output.status.success(), "{output:?}");
    let output = with_env(&["status"], &elsewhere);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    // The help says where the default comes from.
    let help = run(&["status", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("TELEPIPE_DATA_DIR"));
    std::fs::remove_dir_all(dir).unwrap();
}
