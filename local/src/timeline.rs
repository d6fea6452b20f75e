//! `telepipe status` over the status store (SQLite locally, DynamoDB with `--aws`):
//! per-recording timelines of one session, or of every recording that entered a state
//! (`--state`) since a time (`--since`). Renders ids, states, times and reason codes —
//! all the store holds.

use crate::status::format_time;
use std::collections::BTreeMap;
use telepipe_workers::status::{State, StatusStore, Transition};

/// `90s`, `30m`, `1h`, `2d`, `1w` (or a bare number of minutes) in milliseconds.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30m, 1h or 2d"))?;
    let unit_ms = match unit.trim() {
        "s" | "sec" | "secs" => 1_000,
        "" | "m" | "min" | "mins" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        "w" | "week" | "weeks" => 7 * 86_400_000,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use s, m, h, d or w)"
            ))
        }
    };
    Ok(number.saturating_mul(unit_ms))
}

/// `received`, `failed`, ... (any state the store records).
pub fn parse_state(text: &str) -> Result<State, String> {
    State::parse(text).ok_or_else(|| {
        let names: Vec<&str> = State::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown state {text:?} (one of {})", names.join(", "))
    })
}

/// What to show.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub session: Option<String>,
    pub since_ms: Option<i64>,
    pub state: Option<State>,
}

/// The timelines the selection names, rendered as text: one block per recording,
/// its transitions oldest first.
pub async fn render<St: StatusStore>(
    store: &St,
    selection: &Selection,
    now_ms: i64,
) -> Result<String, String> {
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
    let mut out = String::new();
    for ((session, recording), mut transitions) in by_recording {
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
        let object = transitions
            .iter()
            .find_map(|t| t.object_ref.clone())
            .map(|o| format!("  object {o}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "session {session}  recording {recording}{object}\n"
        ));
        for t in &transitions {
            let state = match t.state {
                State::Stalled => format!("stalled ({})", t.reason.as_deref().unwrap_or("?")),
                state => state.as_str().to_owned(),
            };
            let mut detail = Vec::new();
            if t.attempt > 1 {
                detail.push(format!("attempt {}", t.attempt));
            }
            if let Some(job) = &t.job_name {
                detail.push(format!("job {job}"));
            }
            if let (Some(class), Some(reason)) = (&t.error_class, &t.reason) {
                detail.push(format!("{class}: {reason}"));
            } else if let (Some(reason), false) = (&t.reason, t.state == State::Stalled) {
                detail.push(reason.clone());
            }
            out.push_str(&format!(
                "  {:<21} {:<24} {}\n",
                format_time(t.at_ms),
                state,
                detail.join("  ")
            ));
        }
    }
    if out.is_empty() {
        out.push_str("(no recordings match)\n");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Db;
    use crate::status_store::SqliteStatus;

    #[test]
    fn durations_and_states_parse() {
        assert_eq!(parse_duration("1h"), Ok(3_600_000));
        assert_eq!(parse_duration("30m"), Ok(1_800_000));
        assert_eq!(parse_duration("2d"), Ok(172_800_000));
        assert_eq!(parse_duration("45"), Ok(2_700_000));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3y").is_err());
        assert_eq!(parse_state("Failed"), Ok(State::Failed));
        assert!(parse_state("lost").is_err());
    }

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
        let text = render(&store, &selection, now).await.unwrap();
        assert!(text.contains("session s1  recording r1"), "{text}");
        assert!(text.contains("permanent: unsupported_media"), "{text}");
        assert!(text.contains("received"), "the whole timeline: {text}");
        assert!(!text.contains("s2") && !text.contains("s3"), "{text}");
        let one = Selection {
            session: Some("s2".into()),
            ..Selection::default()
        };
        let text = render(&store, &one, now).await.unwrap();
        assert!(
            text.contains("recording r2") && !text.contains("r1"),
            "{text}"
        );
    }
}
