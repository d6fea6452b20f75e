//! Crash safety of the real `telepipe run` process: killed with SIGKILL in the middle of
//! its work (twice), restarted, it finishes every recording, keeps the dead letter it had
//! already parked, and writes each results document once. Needs the real engines, as
//! `real_engines.rs` does (`scripts/test.sh` provides them).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use telepipe_local::db::Db;
use telepipe_local::queue::Queues;
use telepipe_local::runtime::INTAKE_DLQ;

fn start(dir: &Path, model: &str, nlp: &str) -> Child {
    common::telepipe()
        .args(["run", "--data-dir"])
        .arg(dir)
        .args(["--model", model, "--nlp-data", nlp])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start telepipe run")
}

fn results(dir: &Path) -> Vec<PathBuf> {
    let root = dir.join("buckets/results/clinical");
    let mut found: Vec<PathBuf> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|session| {
            std::fs::read_dir(session.path())
                .into_iter()
                .flatten()
                .flatten()
                .map(|f| f.path())
        })
        .collect();
    found.sort();
    found
}

/// Distinct `Clinical Entities Extracted` events (ids are the documents' digests).
fn extracted_events(dir: &Path) -> usize {
    Db::open(&dir.join("telepipe.db"))
        .ok()
        .and_then(|db| {
            db.lock()
                .query_row(
                    "SELECT COUNT(DISTINCT event_id) FROM events WHERE detail_type = 'Clinical Entities Extracted'",
                    [],
                    |r| r.get::<_, i64>(0),
                )
                .ok()
        })
        .map_or(0, |n| n as usize)
}

#[test]
fn a_killed_runtime_resumes_and_finishes_everything() {
    let Some((model, nlp)) = common::real_engines() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!(
        "telepipe-kill9-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let samples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samples");
    let sessions = [
        "visit-chest-pain",
        "visit-diabetes-followup",
        "short-metformin",
    ];
    for session in sessions {
        let folder = dir
            .join("buckets/recordings/recordings")
            .join(format!("k-{session}"));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::copy(
            samples.join(format!("{session}.wav")),
            folder.join("visit.wav"),
        )
        .unwrap();
    }
    let bad = dir.join("buckets/recordings/recordings/k-bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::write(bad.join("notes.wav"), b"typed notes, not audio").unwrap();

    for pause in [Duration::from_millis(1500), Duration::from_millis(3500)] {
        let mut child = start(&dir, &model, &nlp);
        std::thread::sleep(pause);
        child.kill().unwrap(); // SIGKILL: no chance to clean up
        child.wait().unwrap();
    }
    let done_before_restart = results(&dir).len();

    let mut child = start(&dir, &model, &nlp);
    let deadline = Instant::now() + Duration::from_secs(180);
    // Done means the documents written and their events published (the event follows the
    // document, the status and its audit entry: stopping at the last file alone would
    // race it).
    while (results(&dir).len() < sessions.len() || extracted_events(&dir) < sessions.len())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(250));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let finished = results(&dir);
    assert_eq!(
        finished.len(),
        sessions.len(),
        "every recording finished ({done_before_restart} before the restart)"
    );
    let queues = Queues::new(Db::open(&dir.join("telepipe.db")).unwrap());
    let dead = queues.peek(INTAKE_DLQ).unwrap();
    // At least once: a kill between parking and deleting parks the same message again.
    let sources: std::collections::BTreeSet<String> = dead
        .iter()
        .map(|m| {
            assert_eq!(m.attributes["telepipe.reason"], "format_mismatch");
            let details: serde_json::Value =
                serde_json::from_str(&m.attributes["telepipe.dead-letter"]).unwrap();
            details["source_message_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(sources.len(), 1, "the bad upload's dead letter was kept");
    assert_eq!(
        extracted_events(&dir),
        sessions.len(),
        "one results content per recording"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
