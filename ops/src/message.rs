//! What a dead letter says about itself (reason, stage, error class, receive count, from
//! telepipe's attributes), a summary of its body that carries no PHI, and the replay filters.
//!
//! Bodies may hold object keys whose file names name a patient: the summary keeps only
//! the size, a digest prefix and ids that are validated as ids (session ids), never a key.

use crate::port::DlqMessage;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::time::Duration;
use telepipe_events::ids::SessionId;
use telepipe_events::s3::{parse_notification, S3Notification};
use telepipe_workers::ports::{ATTR_DEAD_LETTER, ATTR_REASON, ATTR_STAGE};

/// Reason shown for messages the queue's redrive policy moved (no telepipe attributes).
pub const REDRIVE_REASON: &str = "max_receives_exceeded";

/// Why a message was parked, as far as its attributes tell.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeadLetterInfo {
    pub reason: String,
    pub stage: Option<String>,
    pub error_class: Option<String>,
    /// Id-only context recorded by the stage.
    pub context: Option<String>,
    pub source_message_id: Option<String>,
    /// Receives on the source queue before it was parked (else this queue's count).
    pub receive_count: u32,
}

impl DeadLetterInfo {
    pub fn of(message: &DlqMessage) -> Self {
        let details: serde_json::Value = message
            .attributes
            .get(ATTR_DEAD_LETTER)
            .and_then(|raw| serde_json::from_str(raw).ok())
            .unwrap_or_default();
        let text = |name: &str| {
            details
                .get(name)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        Self {
            reason: message
                .attributes
                .get(ATTR_REASON)
                .cloned()
                .or_else(|| text("reason"))
                .unwrap_or_else(|| REDRIVE_REASON.to_owned()),
            stage: message
                .attributes
                .get(ATTR_STAGE)
                .cloned()
                .or_else(|| text("stage")),
            error_class: text("error_class"),
            context: text("context"),
            source_message_id: text("source_message_id"),
            receive_count: details
                .get("receive_count")
                .and_then(|v| v.as_u64())
                .map(|n| n as u32)
                .unwrap_or(message.receive_count),
        }
    }
}

/// A body described without its content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BodySummary {
    pub bytes: usize,
    /// First 16 hex digits of the body's SHA-256: tells copies apart, reveals nothing.
    pub sha256: String,
    /// `s3-notification`, `s3-test-event`, `json` or `text`.
    pub kind: &'static str,
    pub session_ids: Vec<String>,
    /// S3 event names and buckets of a notification (no keys).
    pub events: Vec<String>,
}

/// The session id of an object key `{prefix}{session_id}/{file}`: the segment before the
/// file name, if it is a valid session id.
fn session_of_key(key: &str) -> Option<String> {
    let mut segments = key.rsplit('/');
    segments.next()?;
    let candidate = segments.next()?;
    SessionId::parse(candidate)
        .ok()
        .map(|s| s.as_str().to_owned())
}

/// Session ids a body refers to: from an S3 notification's keys, or a JSON body's
/// `session_id` (top level or in an EventBridge `detail`).
pub fn session_ids(body: &str) -> Vec<String> {
    summarize(body).session_ids
}

pub fn summarize(body: &str) -> BodySummary {
    let digest = Sha256::digest(body.as_bytes());
    let sha256: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let mut summary = BodySummary {
        bytes: body.len(),
        sha256,
        kind: "text",
        session_ids: Vec::new(),
        events: Vec::new(),
    };
    match parse_notification(body) {
        Ok(S3Notification::TestEvent) => summary.kind = "s3-test-event",
        Ok(S3Notification::Records(records)) => {
            summary.kind = "s3-notification";
            for record in records {
                summary
                    .events
                    .push(format!("{} {}", record.event_name, record.bucket));
                if let Some(session) = record.key.ok().as_deref().and_then(session_of_key) {
                    if !summary.session_ids.contains(&session) {
                        summary.session_ids.push(session);
                    }
                }
            }
        }
        Err(_) => {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(body) {
                summary.kind = "json";
                let found = value
                    .get("session_id")
                    .or_else(|| value.get("detail").and_then(|d| d.get("session_id")))
                    .and_then(|v| v.as_str())
                    .and_then(|s| SessionId::parse(s).ok());
                if let Some(session) = found {
                    summary.session_ids.push(session.as_str().to_owned());
                }
            }
        }
    }
    summary
}

/// Parses `90s`, `30m`, `1h`, `2d` (or bare seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: use e.g. 90s, 30m, 1h, 2d"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("`{text}`: unit must be s, m, h or d")),
    };
    Ok(Duration::from_secs(number.saturating_mul(seconds)))
}

/// Which dead letters a replay takes. Empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub stage: Option<String>,
    pub error_class: Option<String>,
    pub reason_prefix: Option<String>,
    pub session: Option<String>,
    pub older_than: Option<Duration>,
    pub newer_than: Option<Duration>,
    pub attributes: Vec<(String, String)>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Whether `message` passes; `now_ms` is the clock ages are measured against. A
    /// message whose age is unknown fails an age filter (when in doubt, leave it parked).
    pub fn matches(&self, message: &DlqMessage, now_ms: i64) -> bool {
        let info = DeadLetterInfo::of(message);
        if self.stage.is_some() && info.stage != self.stage {
            return false;
        }
        if self.error_class.is_some() && info.error_class != self.error_class {
            return false;
        }
        if let Some(prefix) = &self.reason_prefix {
            if !info.reason.starts_with(prefix.as_str()) {
                return false;
            }
        }
        if let Some(session) = &self.session {
            if !session_ids(&message.body).contains(session) {
                return false;
            }
        }
        if self.older_than.is_some() || self.newer_than.is_some() {
            let Some(sent) = message.sent_at_ms else {
                return false;
            };
            let age = Duration::from_millis((now_ms - sent).max(0) as u64);
            if self.older_than.is_some_and(|min| age < min) {
                return false;
            }
            if self.newer_than.is_some_and(|max| age > max) {
                return false;
            }
        }
        self.attributes
            .iter()
            .all(|(name, value)| message.attributes.get(name) == Some(value))
    }
}

/// Parses `NAME=VALUE`.
pub fn parse_attribute(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .filter(|(name, _)| !name.is_empty())
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("`{text}`: an attribute filter is NAME=VALUE"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use telepipe_workers::ports::DeadLetter;

    fn parked(body: &str, stage: &'static str, class: &'static str, reason: &str) -> DlqMessage {
        let letter = DeadLetter {
            body: body.into(),
            source_message_id: "m-1".into(),
            stage,
            error_class: class,
            reason: reason.into(),
            context: "session=s1".into(),
            receive_count: 3,
            attributes: BTreeMap::from([("tenant".into(), "t1".into())]),
        };
        DlqMessage {
            id: "d-1".into(),
            receipt: String::new(),
            body: body.into(),
            attributes: letter.attributes(),
            has_binary_attributes: false,
            receive_count: 1,
            sent_at_ms: Some(1_000_000),
            group_id: None,
            dedup_id: None,
        }
    }

    fn notification(key: &str) -> String {
        serde_json::json!({"Records": [{
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "rec"}, "object": {"key": key, "size": 10}}
        }]})
        .to_string()
    }

    #[test]
    fn dead_letter_info_comes_from_the_attributes() {
        let info = DeadLetterInfo::of(&parked("x", "intake", "permanent", "too_large"));
        assert_eq!(info.reason, "too_large");
        assert_eq!(info.stage.as_deref(), Some("intake"));
        assert_eq!(info.error_class.as_deref(), Some("permanent"));
        assert_eq!(info.receive_count, 3);
        assert_eq!(info.source_message_id.as_deref(), Some("m-1"));
        let mut redriven = parked("x", "intake", "permanent", "r");
        redriven.attributes.clear();
        assert_eq!(DeadLetterInfo::of(&redriven).reason, REDRIVE_REASON);
    }

    #[test]
    fn summaries_carry_ids_not_keys() {
        let body = notification("recordings/sess-42/Jane+Doe+visit.wav");
        let summary = summarize(&body);
        assert_eq!(summary.kind, "s3-notification");
        assert_eq!(summary.session_ids, ["sess-42"]);
        let shown = serde_json::to_string(&summary).unwrap();
        assert!(
            !shown.contains("Jane") && !shown.contains("visit"),
            "{shown}"
        );
        assert_eq!(summary.sha256.len(), 16);
        let json = summarize(r#"{"session_id":"s-9","text":"secret"}"#);
        assert_eq!(
            (json.kind, json.session_ids.as_slice()),
            ("json", &["s-9".to_owned()][..])
        );
        assert_eq!(summarize("plain").kind, "text");
        assert!(session_ids(&notification("loose-file.wav")).is_empty());
    }

    #[test]
    fn filters() {
        let body = notification("recordings/s1/a.wav");
        let m = parked(&body, "intake", "retryable", "throttled_transcribe");
        let now = 1_000_000 + 2 * 3_600_000;
        let pass = |f: Filter| f.matches(&m, now);
        assert!(pass(Filter::default()));
        assert!(pass(Filter {
            stage: Some("intake".into()),
            ..Default::default()
        }));
        assert!(!pass(Filter {
            stage: Some("clinical".into()),
            ..Default::default()
        }));
        assert!(pass(Filter {
            error_class: Some("retryable".into()),
            ..Default::default()
        }));
        assert!(!pass(Filter {
            error_class: Some("permanent".into()),
            ..Default::default()
        }));
        assert!(pass(Filter {
            reason_prefix: Some("throttled".into()),
            ..Default::default()
        }));
        assert!(!pass(Filter {
            reason_prefix: Some("too".into()),
            ..Default::default()
        }));
        assert!(pass(Filter {
            session: Some("s1".into()),
            ..Default::default()
        }));
        assert!(!pass(Filter {
            session: Some("s2".into()),
            ..Default::default()
        }));
        let hour = Duration::from_secs(3_600);
        assert!(pass(Filter {
            older_than: Some(hour),
            ..Default::default()
        }));
        assert!(!pass(Filter {
            newer_than: Some(hour),
            ..Default::default()
        }));
        assert!(pass(Filter {
            newer_than: Some(3 * hour),
            ..Default::default()
        }));
        let attr = |v: &str| vec![("tenant".to_owned(), v.to_owned())];
        assert!(pass(Filter {
            attributes: attr("t1"),
            ..Default::default()
        }));
        assert!(!pass(Filter {
            attributes: attr("t2"),
            ..Default::default()
        }));
    }

    #[test]
    fn durations_and_attributes_parse() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse_duration("15").unwrap(), Duration::from_secs(15));
        assert!(parse_duration("1w").is_err() && parse_duration("h").is_err());
        assert_eq!(
            parse_attribute("a=b=c").unwrap(),
            ("a".into(), "b=c".into())
        );
        assert!(parse_attribute("=x").is_err() && parse_attribute("x").is_err());
    }
}
