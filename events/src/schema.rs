//! JSON Schemas of the contracts, generated from the Rust types.
//!
//! `cargo run -p telepipe-events --bin gen-schemas` rewrites `schemas/`;
//! `--check` (and the crate's drift test) fails when the committed files differ.

use crate::capture::{RecordingCaptureFailed, TranscriptReady};
use crate::notify::{
    NotificationFailed, NotificationRequest, NotificationSent, NotificationSkipped,
    RecordingMissing, ReminderScheduled, RemindersCancelled,
};
use crate::pipeline::{
    ClinicalEntitiesExtracted, PipelineEvent, RecordingRejected, TranscriptionStarted,
};
use crate::replies::{
    AppointmentConfirmed, InboundSms, PatientMessageReceived, PatientOptedIn, PatientOptedOut,
    RescheduleRequested,
};
use crate::results::ResultsDocument;
use crate::sessions::{
    AppointmentBooked, RecordingCheck, SessionCancelled, SessionEnded, SessionEvent,
    SessionRescheduled, SessionScheduled, SessionStarted, SessionStatusChanged,
    WaitingRoomAdmitted, WaitingRoomJoined,
};
use crate::sweeper::{StageStalled, TranscriptionFailed};
use crate::transcribe::TranscribeOutput;
use std::path::{Path, PathBuf};

/// Every generated schema: (file name, pretty JSON with a trailing newline).
pub fn render_all() -> Vec<(String, String)> {
    fn render<T: schemars::JsonSchema>(name: &str) -> (String, String) {
        let schema = serde_json::to_value(schemars::schema_for!(T)).expect("schemas serialize");
        let mut text = serde_json::to_string_pretty(&sorted(schema)).expect("schemas serialize");
        text.push('\n');
        (format!("{name}.schema.json"), text)
    }
    vec![
        render::<TranscriptionStarted>(TranscriptionStarted::SCHEMA_NAME),
        render::<RecordingRejected>(RecordingRejected::SCHEMA_NAME),
        render::<ClinicalEntitiesExtracted>(ClinicalEntitiesExtracted::SCHEMA_NAME),
        render::<TranscriptionFailed>(TranscriptionFailed::SCHEMA_NAME),
        render::<StageStalled>(StageStalled::SCHEMA_NAME),
        render::<ResultsDocument>("results-document"),
        render::<TranscribeOutput>("transcribe-medical-output"),
        render::<SessionScheduled>(SessionScheduled::SCHEMA_NAME),
        render::<SessionRescheduled>(SessionRescheduled::SCHEMA_NAME),
        render::<SessionCancelled>(SessionCancelled::SCHEMA_NAME),
        render::<WaitingRoomJoined>(WaitingRoomJoined::SCHEMA_NAME),
        render::<SessionStarted>(SessionStarted::SCHEMA_NAME),
        render::<SessionEnded>(SessionEnded::SCHEMA_NAME),
        render::<RecordingCheck>("recording-check"),
        render::<NotificationRequest>("notification-request"),
        render::<ReminderScheduled>(ReminderScheduled::SCHEMA_NAME),
        render::<RemindersCancelled>(RemindersCancelled::SCHEMA_NAME),
        render::<RecordingMissing>(RecordingMissing::SCHEMA_NAME),
        render::<NotificationSent>(NotificationSent::SCHEMA_NAME),
        render::<NotificationSkipped>(NotificationSkipped::SCHEMA_NAME),
        render::<NotificationFailed>(NotificationFailed::SCHEMA_NAME),
        render::<RecordingCaptureFailed>(RecordingCaptureFailed::SCHEMA_NAME),
        render::<TranscriptReady>(TranscriptReady::SCHEMA_NAME),
        render::<AppointmentConfirmed>(AppointmentConfirmed::SCHEMA_NAME),
        render::<RescheduleRequested>(RescheduleRequested::SCHEMA_NAME),
        render::<PatientOptedOut>(PatientOptedOut::SCHEMA_NAME),
        render::<PatientOptedIn>(PatientOptedIn::SCHEMA_NAME),
        render::<PatientMessageReceived>(PatientMessageReceived::SCHEMA_NAME),
        render::<InboundSms>("inbound-sms"),
        render::<SessionStatusChanged>(SessionStatusChanged::SCHEMA_NAME),
        render::<WaitingRoomAdmitted>(WaitingRoomAdmitted::SCHEMA_NAME),
        render::<AppointmentBooked>(AppointmentBooked::SCHEMA_NAME),
    ]
}

/// Object keys in sorted order. serde_json keeps insertion order when any crate in the
/// build enables its `preserve_order` feature (the AWS SDK's HTTP client does), so the
/// output must not depend on which crates are compiled alongside.
fn sorted(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let ordered: std::collections::BTreeMap<String, serde_json::Value> =
                map.into_iter().map(|(k, v)| (k, sorted(v))).collect();
            serde_json::Value::Object(ordered.into_iter().collect())
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sorted).collect())
        }
        other => other,
    }
}

/// The `schemas/` folder of this checkout.
pub fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("schemas")
}

/// Names of committed schema files that differ from (or are missing against) the generated ones.
pub fn drifted(dir: &Path) -> Vec<String> {
    render_all()
        .into_iter()
        .filter(|(name, text)| {
            std::fs::read_to_string(dir.join(name)).ok().as_deref() != Some(text.as_str())
        })
        .map(|(name, _)| name)
        .collect()
}
