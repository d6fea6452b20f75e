//! Conformance suites: what every adapter of a port must do, written once and run against
//! each adapter. The status store: in memory here, SQLite in `telepipe_local::status_store`,
//! DynamoDB on moto in `tests/tests/status_dynamodb.rs`. The object store: in memory here,
//! the filesystem in `telepipe_local::store`, S3 on moto in `tests/tests/aws_moto.rs`. The
//! session store: in memory here, SQLite in `telepipe_local::sessions`, DynamoDB on moto in
//! `tests/tests/sessions_moto.rs`.
//! Test support (feature `testkit`).
//!
//! Each suite works inside one `session` it is given, so it runs on shared tables; it
//! panics, naming the rule, on the first difference.

use crate::error::PortErrorKind;
use crate::ports::{ObjectStore, PutOptions, SessionStore};
use crate::session_state::SessionState;
use crate::status::{Deadlines, State, StatusStore, Transition};

const MIN: i64 = 60_000;

fn t(session: &str, recording: &str, attempt: u32, state: State, at: i64) -> Transition {
    Transition::new(session, recording, attempt, state, at)
        .job(recording)
        .object("0011223344556677")
}

/// The status store's rules: a step is recorded once (the first record kept); a
/// recording's current state moves forward only, a later attempt superseding an earlier
/// one and a stall mark leaving it as it was; timelines come by recording, then time;
/// `stuck` lists open recordings past their state's deadline; `query` filters by time and
/// state.
pub async fn status_store<S: StatusStore>(store: &S, session: &str) {
    let t0 = 1_800_000_000_000;
    let mine = |recording: &crate::status::RecordingStatus| recording.session_id == session;

    // Recorded once; a redelivery later in time is not new and does not move the time.
    assert!(
        store
            .record(&t(session, "rec-a", 1, State::Received, t0))
            .await
            .unwrap(),
        "a new step is new"
    );
    assert!(store
        .record(&t(session, "rec-a", 1, State::Transcribing, t0 + 1))
        .await
        .unwrap());
    assert!(
        !store
            .record(&t(session, "rec-a", 1, State::Received, t0 + 5 * MIN))
            .await
            .unwrap(),
        "a step recorded again is not new"
    );

    // rec-b is done; rec-c failed for good; rec-d failed and is retried as attempt 2.
    for (state, at) in [
        (State::Received, t0),
        (State::Transcribing, t0),
        (State::Transcribed, t0 + MIN),
        (State::Extracting, t0 + MIN),
        (State::Extracted, t0 + 2 * MIN),
    ] {
        store
            .record(&t(session, "rec-b", 1, state, at))
            .await
            .unwrap();
    }
    let failed = t(session, "rec-c", 1, State::Failed, t0 + 3 * MIN)
        .failure("permanent", "unsupported_media");
    store.record(&failed).await.unwrap();
    let retried =
        t(session, "rec-d", 1, State::Failed, t0).failure("retryable", "internal_failure");
    store.record(&retried).await.unwrap();
    store
        .record(&t(session, "rec-d", 2, State::Transcribing, t0 + 2))
        .await
        .unwrap();

    // Timelines: by recording, then time; the first record of a step kept.
    let timeline = store.timeline(session).await.unwrap();
    let order: Vec<(&str, i64)> = timeline
        .iter()
        .map(|t| (t.recording.as_str(), t.at_ms))
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "a timeline comes by recording, then time");
    assert_eq!(
        timeline.iter().filter(|t| t.recording == "rec-a").count(),
        2
    );
    assert_eq!(timeline[0].at_ms, t0, "the first record of a step is kept");

    // Stuck: only open recordings, past their state's deadline, in their current attempt.
    let deadlines = Deadlines::default();
    let early = store.stuck(t0 + 9 * MIN, &deadlines).await.unwrap();
    assert!(
        !early.iter().any(mine),
        "nothing is stuck before its deadline"
    );
    let mut stuck: Vec<_> = store
        .stuck(t0 + 11 * MIN, &deadlines)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| mine(r))
        .map(|r| (r.recording, r.state, r.attempt, r.object_ref))
        .collect();
    stuck.sort();
    let object = Some("0011223344556677".to_owned());
    assert_eq!(
        stuck,
        vec![
            ("rec-a".to_owned(), State::Transcribing, 1, object.clone()),
            ("rec-d".to_owned(), State::Transcribing, 2, object),
        ],
        "open recordings past their deadline, a retry in its current attempt; done and failed ones never"
    );

    // A stall mark: recorded once, the state left as it was.
    let mark = t(session, "rec-a", 1, State::Stalled, t0 + 61 * MIN).reason("transcribing");
    assert!(
        store.record(&mark).await.unwrap(),
        "a stall mark is recorded"
    );
    assert!(
        !store.record(&mark).await.unwrap(),
        "a stall mark is recorded once"
    );
    let after: Vec<_> = store
        .stuck(t0 + 62 * MIN, &deadlines)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| mine(r) && r.recording == "rec-a")
        .collect();
    assert_eq!(after.len(), 1);
    assert_eq!(
        after[0].state,
        State::Transcribing,
        "a stall mark leaves the state"
    );

    // Queries: by time, and by the state entered.
    let failures: Vec<_> = store
        .query(t0, Some(State::Failed))
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.session_id == session)
        .collect();
    assert_eq!(failures.len(), 2, "both failures, whatever came after");
    let permanent = failures
        .iter()
        .find(|t| t.recording == "rec-c")
        .expect("rec-c failed");
    assert_eq!(
        (
            permanent.error_class.as_deref(),
            permanent.reason.as_deref()
        ),
        (Some("permanent"), Some("unsupported_media"))
    );
    let recent: Vec<_> = store
        .query(t0 + MIN, None)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.session_id == session)
        .collect();
    // rec-b: transcribed, extracting, extracted; rec-c: failed; rec-a: the stall mark.
    assert_eq!(recent.len(), 5, "transitions at or after the time given");
    let ages: Vec<i64> = recent.iter().map(|t| t.at_ms).collect();
    let mut oldest_first = ages.clone();
    oldest_first.sort();
    assert_eq!(ages, oldest_first, "query answers oldest first");
}

/// The object store's rules, in `bucket` under `prefix`: what is put is read back whole
/// (`get`), in part (`get_prefix`, fewer bytes when shorter) and by size (`head`), with the
/// same ETag from `head` and `get`; new content gets a new ETag; keys with spaces, `+` and
/// non-ASCII characters are kept as they are; a missing object is `NotFound` everywhere.
pub async fn object_store<O: ObjectStore>(store: &O, bucket: &str, prefix: &str) {
    let key = format!("{prefix}conformance/visit 1+follow-up é.wav");
    let body = b"RIFF0000WAVEfmt conformance".to_vec();
    store
        .put(bucket, &key, body.clone(), &PutOptions::default())
        .await
        .unwrap();

    let head = store.head(bucket, &key, None).await.unwrap();
    assert_eq!(head.size, body.len() as u64, "head gives the size");
    let got = store.get(bucket, &key).await.unwrap();
    assert_eq!(got.bytes, body, "get gives the bytes put");
    assert!(head.etag.is_some(), "head gives an ETag");
    assert_eq!(got.etag, head.etag, "head and get agree on the ETag");
    assert_eq!(
        store.get_prefix(bucket, &key, None, 4).await.unwrap(),
        b"RIFF",
        "get_prefix gives the first bytes"
    );
    assert_eq!(
        store.get_prefix(bucket, &key, None, 10_000).await.unwrap(),
        body,
        "get_prefix of more than there is gives all there is"
    );

    let replaced = b"RIFF1111WAVEfmt replaced, longer".to_vec();
    store
        .put(bucket, &key, replaced.clone(), &PutOptions::default())
        .await
        .unwrap();
    let again = store.head(bucket, &key, None).await.unwrap();
    assert_eq!(again.size, replaced.len() as u64);
    assert_ne!(again.etag, head.etag, "new content, new ETag");
    assert_eq!(store.get(bucket, &key).await.unwrap().bytes, replaced);

    let missing = format!("{prefix}conformance/none.wav");
    let kind = |result: Result<(), crate::error::PortError>| result.unwrap_err().kind;
    assert_eq!(
        kind(store.head(bucket, &missing, None).await.map(|_| ())),
        PortErrorKind::NotFound
    );
    assert_eq!(
        kind(store.get(bucket, &missing).await.map(|_| ())),
        PortErrorKind::NotFound
    );
    assert_eq!(
        kind(
            store
                .get_prefix(bucket, &missing, None, 4)
                .await
                .map(|_| ())
        ),
        PortErrorKind::NotFound,
        "a missing object is NotFound for every read"
    );
}

/// The session store's rules for session `session`: nothing is loaded before the first
/// save; a save is conditional on the revision read (`None`: not stored yet), a stale or
/// repeated first write failing with `Conflict` and changing nothing; each save gives a new,
/// higher revision; the phone index finds a session by its patient's keyed number.
pub async fn session_store<S: SessionStore>(store: &S, session: &str) {
    assert_eq!(
        store.load(session).await.unwrap(),
        None,
        "nothing before the first save"
    );
    let mut state = SessionState::new(session);
    let key = format!("{session}-phone-key");
    state.patient_phone_key = Some(key.clone());
    let first = store.save(&state, None).await.unwrap();
    let loaded = store.load(session).await.unwrap().expect("saved");
    assert_eq!(
        (&loaded.state, loaded.revision),
        (&state, first),
        "load gives what was saved"
    );

    let mut changed = state.clone();
    changed.waiting_alerts = 2;
    let conflict = |result: Result<u64, crate::error::PortError>| result.unwrap_err().kind;
    assert_eq!(
        conflict(store.save(&changed, None).await),
        PortErrorKind::Conflict,
        "a second first write conflicts"
    );
    assert_eq!(
        conflict(store.save(&changed, Some(first + 7)).await),
        PortErrorKind::Conflict,
        "a write at a revision not stored conflicts"
    );
    assert_eq!(
        store.load(session).await.unwrap().unwrap().state,
        state,
        "a conflict changes nothing"
    );
    let second = store.save(&changed, Some(first)).await.unwrap();
    assert!(second > first, "each save gives a higher revision");
    let loaded = store.load(session).await.unwrap().unwrap();
    assert_eq!((loaded.state.waiting_alerts, loaded.revision), (2, second));
    assert_eq!(
        conflict(store.save(&state, Some(first)).await),
        PortErrorKind::Conflict,
        "a write at a revision read before the last save conflicts"
    );

    assert_eq!(
        store.sessions_for_phone(&key).await.unwrap(),
        vec![session.to_owned()],
        "the phone index finds the session"
    );
    assert!(store
        .sessions_for_phone(&format!("{key}-other"))
        .await
        .unwrap()
        .is_empty());
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_in_memory_session_store_conforms() {
        super::session_store(&crate::memory::MemorySessionStore::default(), "conformance").await;
    }

    #[tokio::test]
    async fn the_in_memory_object_store_conforms() {
        super::object_store(&crate::memory::MemoryStore::default(), "bucket", "").await;
    }

    #[tokio::test]
    async fn the_in_memory_status_store_conforms() {
        super::status_store(&crate::memory::MemoryStatus::default(), "conformance").await;
    }
}
