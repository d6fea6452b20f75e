//! `telepipe status` over the status store (SQLite locally, DynamoDB with `--aws`):
//! per-recording timelines of one session, or of every recording that entered a state
//! (`--state`) since a time (`--since`). Ids, states, times and reason codes — all the
//! store holds; the command line renders them.

use std::collections::BTreeMap;
use telepipe_workers::status::{State, StatusStore, Transition};

/// What to show.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub session: Option<String>,
    pub since_ms: Option<i64>,
    pub state: Option<State>,
}

/// One recording's transitions, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingTimeline {
    pub session_id: String,
    pub recording: String,
    /// The object reference its transitions name, when one does.
    pub object_ref: Option<String>,
    pub transitions: Vec<Transition>,
}

/// The timelines the selection names, by session and recording.
pub async fn select<St: StatusStore>(
    store: &St,
    selection: &Selection,
    now_ms: i64,
) -> Result<Vec<RecordingTimeline>, String> {
    let mut by_recording: BTreeMap<(String, String), Vec<Transition>> = BTreeMap::new();
    let sessions: Vec<String> = match &selection.session {
        Some(session) => vec![session.clone()],
        None => {
            let since = selection.since_ms.unwrap_or(now_ms - 86_400_000);
            let hits = store
                .query(since, selection.state)
                .await
                .map_err(|e| e.to_string())?;
            for hit in &hits {
                by_recording
                    .entry((hit.session_id.clone(), hit.recording.clone()))
                    .or_default();
            }
            let mut sessions: Vec<String> = hits.into_iter().map(|t| t.session_id).collect();
            sessions.dedup();
            sessions.sort();
            sessions.dedup();
            sessions
        }
    };
    let wanted = by_recording.clone();
    for session in &sessions {
        for transition in store.timeline(session).await.map_err(|e| e.to_string())? {
            let key = (transition.session_id.clone(), transition.recording.clone());
            if selection.session.is_some() || wanted.contains_key(&key) {
                by_recording.entry(key).or_default().push(transition);
            }
        }
    }
    let mut timelines = Vec::new();
    for ((session_id, recording), mut transitions) in by_recording {
        transitions.sort_by_key(|t| (t.at_ms, t.attempt, t.state.rank()));
        if let Some(since) = selection.since_ms.filter(|_| selection.session.is_some()) {
            if transitions.iter().all(|t| t.at_ms < since) {
                continue;
            }
        }
        if selection.session.is_some()
            && selection
                .state
                .is_some_and(|s| transitions.iter().all(|t| t.state != s))
        {
            continue;
        }
        let object_ref = transitions.iter().find_map(|t| t.object_ref.clone());
        timelines.push(RecordingTimeline {
            session_id,
            recording,
            object_ref,
            transitions,
        });
    }
    Ok(timelines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;
    use crate::status_store::SqliteStatus;

    #[tokio::test]
    async fn failed_recordings_since_a_time_show_their_whole_timeline() {
        let store = SqliteStatus::new(Db::in_memory().unwrap());
        let now = 1_800_000_000_000;
        let t = |session: &str, rec: &str, state, at| {
            Transition::new(session, rec, 1, state, at).job(rec)
        };
        for transition in [
            t("s1", "r1", State::Received, now - 7_200_000),
            t("s1", "r1", State::Transcribing, now - 7_200_000),
            t("s1", "r1", State::Failed, now - 600_000).failure("permanent", "unsupported_media"),
            t("s2", "r2", State::Received, now - 600_000),
            t("s3", "r3", State::Failed, now - 7_200_000).failure("permanent", "too_large"),
        ] {
            store.record(&transition).await.unwrap();
        }
        let selection = Selection {
            since_ms: Some(now - 3_600_000),
            state: Some(State::Failed),
            session: None,
        };
        let found = select(&store, &selection, now).await.unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].session_id.as_str(), found[0].recording.as_str()),
            ("s1", "r1")
        );
        let states: Vec<State> = found[0].transitions.iter().map(|t| t.state).collect();
        assert_eq!(
            states,
            [State::Received, State::Transcribing, State::Failed],
            "the whole timeline"
        );
        assert_eq!(
            found[0].transitions[2].reason.as_deref(),
            Some("unsupported_media")
        );
        let one = Selection {
            session: Some("s2".into()),
            ..Selection::default()
        };
        let found = select(&store, &one, now).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].recording, "r2");
    }
}
