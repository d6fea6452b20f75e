//! The local event bus: `EventPublisher` that wraps each event in EventBridge's
//! envelope, stores it (the local "archive" status and tests read), and routes it by the
//! rules in `infra/event-rules.json` — the same patterns the deployed bus uses — to local
//! queues where a consumer exists, or just records that the rule matched.

use crate::db::{now_ms, random_id, Db};
use crate::pattern::{Pattern, PatternError};
use crate::queue::Queues;
use rusqlite::params;
use serde_json::Value;
use std::collections::BTreeMap;
use telepipe_workers::error::{PortError, PortErrorKind};
use telepipe_workers::ports::{EventPublisher, OutgoingEvent};

/// The rules file shared with `infra/template.yaml`.
pub const EVENT_RULES: &str = include_str!("../../infra/event-rules.json");

/// A rule and where its events go locally.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub pattern: Pattern,
    /// A local queue to deliver to, or `None` to only record the match.
    pub target_queue: Option<String>,
}

/// The deployed rules, parsed from `infra/event-rules.json`.
pub fn deployed_rules() -> Result<Vec<Rule>, PatternError> {
    let file: Value = serde_json::from_str(EVENT_RULES)
        .map_err(|e| PatternError(format!("event-rules.json: {e}")))?;
    file["rules"]
        .as_array()
        .ok_or_else(|| PatternError("event-rules.json has no rules array".into()))?
        .iter()
        .map(|rule| {
            Ok(Rule {
                name: rule["name"].as_str().unwrap_or_default().to_owned(),
                pattern: Pattern::parse(&rule["pattern"])?,
                // The local queue standing in for the rule's SQS target, if it has a consumer here.
                target_queue: rule["queue"].as_str().map(str::to_owned),
            })
        })
        .collect()
}

#[derive(Clone)]
pub struct LocalBus {
    db: Db,
    queues: Queues,
    source: String,
    rules: Vec<Rule>,
}

impl LocalBus {
    pub fn new(db: Db, queues: Queues, source: String, rules: Vec<Rule>) -> Self {
        Self {
            db,
            queues,
            source,
            rules,
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn queues(&self) -> &Queues {
        &self.queues
    }

    /// EventBridge's envelope around a detail.
    pub fn envelope(&self, detail_type: &str, detail: Value) -> Value {
        serde_json::json!({
            "version": "0",
            "id": random_id(),
            "detail-type": detail_type,
            "source": self.source,
            "account": "000000000000",
            "time": jiff::Timestamp::now().to_string(),
            "region": "local",
            "resources": [],
            "detail": detail,
        })
    }

    /// Stores and routes a complete envelope (also how `telepipe events put` injects events).
    pub fn put(&self, envelope: &Value) -> Result<Vec<String>, PortError> {
        let unavailable = |_| PortError::new(PortErrorKind::Unavailable, "local-bus", "PutEvents");
        let matched: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|rule| rule.pattern.matches(envelope))
            .collect();
        let detail = &envelope["detail"];
        self.db
            .lock()
            .execute(
                "INSERT INTO events (id, detail_type, event_id, session_id, time, envelope) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    envelope["id"].as_str().unwrap_or_default(),
                    envelope["detail-type"].as_str().unwrap_or_default(),
                    detail["event_id"].as_str(),
                    detail["session_id"].as_str(),
                    now_ms(),
                    envelope.to_string()
                ],
            )
            .map_err(unavailable)?;
        for rule in &matched {
            if let Some(queue) = &rule.target_queue {
                self.queues
                    .send(queue, &envelope.to_string(), &BTreeMap::new(), 0)?;
            }
        }
        Ok(matched.iter().map(|rule| rule.name.clone()).collect())
    }
}

/// An event put without the envelope fields a caller need not know (`telepipe events put`):
/// `source`, `detail-type` and `detail` are required; `version`, `id`, `time`, `account`,
/// `region` and `resources` are filled in when missing.
pub fn complete_envelope(envelope: &mut Value) -> Result<(), String> {
    let Some(fields) = envelope.as_object_mut() else {
        return Err("not a JSON object".into());
    };
    for required in ["source", "detail-type", "detail"] {
        if !fields.contains_key(required) {
            return Err(format!(
                "no \"{required}\" (an EventBridge envelope needs source, detail-type and detail)"
            ));
        }
    }
    let defaults = [
        ("version", serde_json::json!("0")),
        ("id", serde_json::json!(random_id())),
        (
            "time",
            serde_json::json!(jiff::Timestamp::now().to_string()),
        ),
        ("account", serde_json::json!("000000000000")),
        ("region", serde_json::json!("local")),
        ("resources", serde_json::json!([])),
    ];
    for (name, value) in defaults {
        fields.entry(name).or_insert(value);
    }
    Ok(())
}

/// One event the local bus published, as `telepipe events list` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PublishedEvent {
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    /// The envelope's time (RFC 3339).
    pub time: String,
    /// The detail, every `address` masked (`crate::sessions::mask_addresses`).
    pub detail: Value,
}

/// The events published on a data directory's bus, oldest first, optionally of one
/// detail-type and about one session.
pub fn published(
    db: &Db,
    detail_type: Option<&str>,
    session: Option<&str>,
) -> rusqlite::Result<Vec<PublishedEvent>> {
    let rows: Vec<(String, i64, String)> = {
        let connection = db.lock();
        let mut statement = connection.prepare(
            "SELECT detail_type, time, envelope FROM events
             WHERE (?1 IS NULL OR detail_type = ?1) AND (?2 IS NULL OR session_id = ?2) ORDER BY seq",
        )?;
        let rows = statement
            .query_map(params![detail_type, session], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows
    };
    Ok(rows
        .into_iter()
        .map(|(detail_type, stored_ms, envelope)| {
            let envelope: Value = serde_json::from_str(&envelope).unwrap_or_default();
            let mut detail = envelope.get("detail").cloned().unwrap_or_default();
            // Platform events put on the bus carry contacts: shown masked, as `run` shows them.
            crate::sessions::mask_addresses(&mut detail);
            let time = envelope["time"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| {
                    jiff::Timestamp::from_millisecond(stored_ms)
                        .map(|t| t.to_string())
                        .unwrap_or_default()
                });
            PublishedEvent {
                detail_type,
                time,
                detail,
            }
        })
        .collect())
}

impl EventPublisher for LocalBus {
    async fn publish(&self, event: &OutgoingEvent) -> Result<(), PortError> {
        let detail: Value = serde_json::from_str(&event.detail)
            .map_err(|_| PortError::new(PortErrorKind::InvalidRequest, "local-bus", "PutEvents"))?;
        self.put(&self.envelope(event.detail_type, detail))
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use telepipe_events::pipeline::{
        ClinicalEntitiesExtracted, PipelineEvent, RecordingRejected, TranscriptionStarted,
    };

    fn example(name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../schemas/examples/{name}.json"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn bus() -> LocalBus {
        let db = Db::in_memory().unwrap();
        LocalBus::new(
            db.clone(),
            Queues::new(db),
            "telepipe".into(),
            deployed_rules().unwrap(),
        )
    }

    #[test]
    fn the_deployed_rules_match_the_events_the_workers_publish_and_consume() {
        let bus = bus();
        let routed = |name: &str| bus.put(&example(name)).unwrap();
        assert_eq!(
            routed(TranscriptionStarted::SCHEMA_NAME),
            ["pipeline-events", "recording-arrivals"]
        );
        assert_eq!(
            routed(ClinicalEntitiesExtracted::SCHEMA_NAME),
            ["pipeline-events"]
        );
        assert_eq!(
            routed(RecordingRejected::SCHEMA_NAME),
            [
                "pipeline-events",
                "recording-rejected",
                "recording-arrivals"
            ]
        );
        for published in [
            "reminder-scheduled",
            "reminders-cancelled",
            "recording-missing",
            "notification-sent",
            "notification-skipped",
            "notification-failed",
            "transcription-failed",
            "stage-stalled",
            "transcript-ready",
            "appointment-confirmed",
            "reschedule-requested",
            "patient-opted-out",
            "patient-opted-in",
            "patient-message-received",
        ] {
            assert_eq!(routed(published), ["pipeline-events"], "{published}");
        }
        assert_eq!(
            routed("recording-capture-failed"),
            ["pipeline-events", "recording-arrivals"]
        );
        assert_eq!(
            routed("chime-media-pipeline-deleted"),
            ["chime-media-pipeline-events"]
        );
        for consumed in [
            "session-scheduled",
            "session-rescheduled",
            "session-cancelled",
            "waiting-room-joined",
            "session-started",
            "session-ended",
            "session-status-changed",
            "waiting-room-admitted",
            "appointment-booked",
        ] {
            assert_eq!(routed(consumed), ["session-events"], "{consumed}");
        }
        assert_eq!(routed("chime-attendee-joined"), ["chime-meeting-events"]);
        let mut other_chime = example("chime-attendee-joined");
        other_chime["detail"]["eventType"] = "chime:AudioTrackMuted".into();
        assert!(bus.put(&other_chime).unwrap().is_empty());
    }

    #[test]
    fn session_events_reach_the_sessions_queue() {
        let bus = bus();
        bus.queues
            .declare(&crate::queue::QueueSpec {
                name: "sessions".into(),
                visibility_secs: 30,
                max_receives: 5,
                dead_letter_queue: None,
            })
            .unwrap();
        bus.put(&example("session-scheduled")).unwrap();
        bus.put(&example(TranscriptionStarted::SCHEMA_NAME))
            .unwrap();
        assert_eq!(bus.queues.receive("sessions", 10).unwrap().len(), 2);
    }

    #[tokio::test]
    async fn published_events_are_enveloped_like_eventbridge_and_match_the_rules() {
        let bus = bus();
        let example = example(RecordingRejected::SCHEMA_NAME);
        let detail: RecordingRejected = serde_json::from_value(example["detail"].clone()).unwrap();
        bus.publish(&OutgoingEvent::from_event(&detail))
            .await
            .unwrap();
        let (detail_type, envelope): (String, String) = bus
            .db
            .lock()
            .query_row("SELECT detail_type, envelope FROM events", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(detail_type, "Recording Rejected");
        let envelope: Value = serde_json::from_str(&envelope).unwrap();
        assert_eq!(envelope["source"], "telepipe");
        assert_eq!(bus.put(&envelope).unwrap().len(), 3);
    }

    #[test]
    fn other_sources_match_no_rule() {
        let bus = bus();
        let mut event = example(TranscriptionStarted::SCHEMA_NAME);
        event["source"] = "someone.else".into();
        assert!(bus.put(&event).unwrap().is_empty());
    }
}
