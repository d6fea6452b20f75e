//! The committed schemas match the types, and every committed example parses into its
//! type, re-serializes to the same JSON and validates against its event's rules of shape.

use serde_json::Value;
use telepipe_events::capture::{
    parse_capture_message, CaptureFailure, CaptureInput, PipelineChange, RecordingCaptureFailed,
    TranscriptReady,
};
use telepipe_events::notify::{
    NotificationFailed, NotificationSent, NotificationSkipped, RecordingMissing, ReminderScheduled,
    RemindersCancelled,
};
use telepipe_events::pipeline::{
    ClinicalEntitiesExtracted, PipelineEvent, RecordingRejected, TranscriptionStarted,
    DEFAULT_SOURCE,
};
use telepipe_events::results::ResultsDocument;
use telepipe_events::schema::{drifted, schemas_dir};
use telepipe_events::sessions::{
    parse_session_message, SessionCancelled, SessionEnded, SessionEvent, SessionInput,
    SessionRescheduled, SessionScheduled, SessionStarted, WaitingRoomJoined,
    DEFAULT_SESSIONS_SOURCE,
};
use telepipe_events::sweeper::{StageStalled, TranscriptionFailed};

#[test]
fn committed_schemas_match_the_types() {
    let stale = drifted(&schemas_dir());
    assert!(
        stale.is_empty(),
        "schemas drifted: {stale:?}; run `cargo run -p telepipe-events --bin gen-schemas`"
    );
}

fn example(name: &str) -> Value {
    let path = schemas_dir().join("examples").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn round_trip_event<E: PipelineEvent>() {
    let envelope = example(E::SCHEMA_NAME);
    assert_eq!(envelope["source"], DEFAULT_SOURCE);
    assert_eq!(envelope["detail-type"], E::DETAIL_TYPE);
    let detail: E =
        serde_json::from_value(envelope["detail"].clone()).expect("example detail parses");
    assert_eq!(
        serde_json::to_value(&detail).unwrap(),
        envelope["detail"],
        "{}",
        E::SCHEMA_NAME
    );
    assert_eq!(detail.event_id().len(), 32);
}

#[test]
fn transcription_started_example_round_trips() {
    round_trip_event::<TranscriptionStarted>();
}

#[test]
fn recording_rejected_example_round_trips() {
    round_trip_event::<RecordingRejected>();
}

#[test]
fn clinical_entities_extracted_example_round_trips() {
    round_trip_event::<ClinicalEntitiesExtracted>();
}

#[test]
fn session_and_notification_event_examples_round_trip() {
    round_trip_event::<ReminderScheduled>();
    round_trip_event::<RemindersCancelled>();
    round_trip_event::<RecordingMissing>();
    round_trip_event::<NotificationSent>();
    round_trip_event::<NotificationSkipped>();
    round_trip_event::<NotificationFailed>();
}

fn round_trip_input<E: SessionEvent + PartialEq + std::fmt::Debug>() -> SessionInput {
    let envelope = example(E::SCHEMA_NAME);
    assert_eq!(envelope["source"], DEFAULT_SESSIONS_SOURCE);
    assert_eq!(envelope["detail-type"], E::DETAIL_TYPE);
    let detail: E = serde_json::from_value(envelope["detail"].clone()).expect("example parses");
    assert_eq!(
        serde_json::to_value(&detail).unwrap(),
        envelope["detail"],
        "{}",
        E::SCHEMA_NAME
    );
    parse_session_message(&envelope.to_string(), DEFAULT_SESSIONS_SOURCE)
        .expect("the worker parses it")
}

#[test]
fn session_input_examples_round_trip_and_parse() {
    assert!(matches!(
        round_trip_input::<SessionScheduled>(),
        SessionInput::Scheduled(_)
    ));
    assert!(matches!(
        round_trip_input::<SessionRescheduled>(),
        SessionInput::Rescheduled(_)
    ));
    assert!(matches!(
        round_trip_input::<SessionCancelled>(),
        SessionInput::Cancelled(_)
    ));
    assert!(matches!(
        round_trip_input::<WaitingRoomJoined>(),
        SessionInput::WaitingRoomJoined(_)
    ));
    assert!(matches!(
        round_trip_input::<SessionStarted>(),
        SessionInput::Started(_)
    ));
    assert!(matches!(
        round_trip_input::<SessionEnded>(),
        SessionInput::Ended(_)
    ));
    let chime = example("chime-attendee-joined").to_string();
    assert!(matches!(
        parse_session_message(&chime, DEFAULT_SESSIONS_SOURCE).unwrap(),
        SessionInput::Chime(_)
    ));
}

#[test]
fn the_platforms_own_vocabulary_maps_onto_the_session_inputs() {
    use telepipe_events::sessions::{AppointmentBooked, SessionStatusChanged, WaitingRoomAdmitted};
    assert_eq!(
        round_trip_input::<SessionStatusChanged>(),
        SessionInput::PatientWaiting {
            session_id: "visit-2026-0309-0042".into()
        }
    );
    for (status, expected) in [
        (
            "active",
            SessionInput::Started(SessionStarted {
                session_id: "visit-2026-0309-0042".into(),
                version: 4,
            }),
        ),
        (
            "ended",
            SessionInput::Ended(SessionEnded {
                session_id: "visit-2026-0309-0042".into(),
                version: 4,
            }),
        ),
    ] {
        let mut envelope = example("session-status-changed");
        envelope["detail"]["status"] = status.into();
        assert_eq!(
            parse_session_message(&envelope.to_string(), DEFAULT_SESSIONS_SOURCE).unwrap(),
            expected
        );
    }
    assert_eq!(
        round_trip_input::<WaitingRoomAdmitted>(),
        SessionInput::Started(SessionStarted {
            session_id: "visit-2026-0309-0042".into(),
            version: 5
        })
    );
    assert!(matches!(
        round_trip_input::<AppointmentBooked>(),
        SessionInput::Booked(booked) if booked.patient.channel == telepipe_events::sessions::ContactChannel::Sms
    ));
}

#[test]
fn transcription_failed_example_round_trips() {
    round_trip_event::<TranscriptionFailed>();
}

#[test]
fn stage_stalled_example_round_trips() {
    round_trip_event::<StageStalled>();
}

#[test]
fn results_document_example_round_trips() {
    let value = example("results-document");
    let doc: ResultsDocument = serde_json::from_value(value.clone()).unwrap();
    // Scores are f32: compare through the text form, as a consumer would read it.
    let reparsed: Value = serde_json::from_str(&serde_json::to_string(&doc).unwrap()).unwrap();
    assert_eq!(reparsed, value);
    for entity in doc.entities.iter().chain(&doc.icd10cm).chain(&doc.rxnorm) {
        let selected: String = doc
            .text
            .chars()
            .skip(entity.begin_offset as usize)
            .take((entity.end_offset - entity.begin_offset) as usize)
            .collect();
        assert_eq!(
            selected, entity.text,
            "offsets of {} select its text",
            entity.id
        );
    }
}

/// Every property name declared anywhere in a schema (nested definitions included).
fn property_names(schema: &Value, names: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Object(properties)) = map.get("properties") {
                names.extend(properties.keys().cloned());
            }
            map.values().for_each(|v| property_names(v, names));
        }
        Value::Array(items) => items.iter().for_each(|v| property_names(v, names)),
        _ => {}
    }
}

#[test]
fn event_details_have_no_text_bearing_fields() {
    // Fields that would carry transcript, entity or key text must not exist in event schemas.
    for name in [
        TranscriptionStarted::SCHEMA_NAME,
        RecordingRejected::SCHEMA_NAME,
        ClinicalEntitiesExtracted::SCHEMA_NAME,
        ReminderScheduled::SCHEMA_NAME,
        RemindersCancelled::SCHEMA_NAME,
        RecordingMissing::SCHEMA_NAME,
        NotificationSent::SCHEMA_NAME,
        NotificationSkipped::SCHEMA_NAME,
        NotificationFailed::SCHEMA_NAME,
        "notification-request",
        TranscriptionFailed::SCHEMA_NAME,
        StageStalled::SCHEMA_NAME,
        "recording-capture-failed",
        "transcript-ready",
        "appointment-confirmed",
        "reschedule-requested",
        "patient-opted-out",
        "patient-opted-in",
        "patient-message-received",
    ] {
        let text =
            std::fs::read_to_string(schemas_dir().join(format!("{name}.schema.json"))).unwrap();
        let mut names = Vec::new();
        property_names(&serde_json::from_str(&text).unwrap(), &mut names);
        assert!(
            names.contains(&"session_id".to_owned()),
            "{name}: {names:?}"
        );
        for forbidden in [
            "text",
            "key",
            "transcript",
            "content",
            "description",
            "file_name",
            "name",
            "address",
            "to",
            "body",
            "subject",
            "phone",
            "email",
            "start",
            "diagnosis",
            "notes",
        ] {
            assert!(
                !names.iter().any(|n| n == forbidden),
                "{name} schema has field {forbidden}"
            );
        }
    }
}

#[test]
fn capture_and_transcript_event_examples_round_trip() {
    round_trip_event::<RecordingCaptureFailed>();
    round_trip_event::<TranscriptReady>();
}

#[test]
fn a_capture_failure_reaches_the_sessions_stage_as_its_input() {
    let envelope = example(RecordingCaptureFailed::SCHEMA_NAME);
    let input = parse_session_message(&envelope.to_string(), DEFAULT_SESSIONS_SOURCE).unwrap();
    assert_eq!(
        input,
        SessionInput::CaptureFailed {
            session_id: "visit-2026-0309-0042".into(),
            reason: CaptureFailure::CaptureEmpty,
        }
    );
}

#[test]
fn the_chime_media_pipeline_example_parses_as_a_capture_input() {
    let envelope = example("chime-media-pipeline-deleted");
    let CaptureInput::MediaPipeline(event) = parse_capture_message(&envelope.to_string()).unwrap()
    else {
        panic!("not a media pipeline event")
    };
    assert_eq!(event.change, PipelineChange::Deleted);
    assert_eq!(event.session_id.unwrap().as_str(), "visit-2026-0309-0042");
}

#[test]
fn reply_event_examples_round_trip_with_ids_only() {
    use telepipe_events::replies::{
        AppointmentConfirmed, PatientMessageReceived, PatientOptedIn, PatientOptedOut,
        RescheduleRequested,
    };
    round_trip_event::<AppointmentConfirmed>();
    round_trip_event::<RescheduleRequested>();
    round_trip_event::<PatientOptedOut>();
    round_trip_event::<PatientOptedIn>();
    round_trip_event::<PatientMessageReceived>();
    let schema =
        std::fs::read_to_string(schemas_dir().join("patient-opted-out.schema.json")).unwrap();
    for forbidden in ["\"from\"", "\"body\"", "\"phone", "\"address\""] {
        assert!(
            !schema.contains(forbidden),
            "{forbidden} in the opt-out event schema"
        );
    }
}
