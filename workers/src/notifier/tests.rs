//! Notifier decisions with in-memory ports and an injected clock.

use super::*;
use crate::config::Env;
use crate::error::PortErrorKind;
use crate::memory::{MemoryEvents, MemoryLedger, MemorySender, MemorySessionStore};
use crate::ports::SessionStore;
use crate::session_state::{Booking, Timing};
use telepipe_events::notify::Recipient;
use telepipe_events::sessions::Participant;

const START: &str = "2026-03-20T19:00:00Z";

struct Harness {
    store: MemorySessionStore,
    ledger: MemoryLedger,
    sender: MemorySender,
    events: MemoryEvents,
    suppressions: crate::memory::MemorySuppressions,
    config: NotifierConfig,
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn state(patient_channel: ContactChannel, patient_address: &str, locale: &str) -> SessionState {
    let mut state = SessionState::new("s-1");
    state.booking = Some(Booking {
        patient: Participant {
            reference: "p-1".into(),
            channel: patient_channel,
            address: patient_address.into(),
            locale: None,
        },
        clinician: Some(Participant {
            reference: "c-1".into(),
            channel: ContactChannel::Email,
            address: "dr.lee@example.org".into(),
            locale: Some("en".into()),
        }),
        locale: locale.into(),
        clinic_name: Some("Riverside Family Clinic".into()),
        join_url: None,
    });
    state.timing = Some(Timing {
        start: ts(START),
        duration_minutes: 30,
        time_zone: "America/New_York".into(),
    });
    state
}

impl Harness {
    async fn new(state: SessionState) -> Self {
        let store = MemorySessionStore::default();
        store.save(&state, None).await.unwrap();
        Self {
            store,
            ledger: MemoryLedger::default(),
            sender: MemorySender::default(),
            events: MemoryEvents::default(),
            suppressions: crate::memory::MemorySuppressions::default(),
            config: {
                let mut config = NotifierConfig::from_env(&Env::from_pairs(&[(
                    "TELEPIPE_JOIN_URL",
                    "https://visit.example.org/j/{session_id}",
                )]))
                .unwrap();
                config.phone_key = Some(crate::replies::PhoneKey::new(b"test-phone-key"));
                config
            },
        }
    }

    async fn handle(
        &self,
        request: &NotificationRequest,
        attempt: &str,
        now: &str,
    ) -> Result<NotifyOutcome, StageError> {
        let ports = NotifierPorts {
            store: &self.store,
            ledger: &self.ledger,
            sender: &self.sender,
            events: &self.events,
            suppressions: &self.suppressions,
        };
        handle_message(
            &ports,
            &self.config,
            &serde_json::to_string(request).unwrap(),
            attempt,
            ts(now),
        )
        .await
    }

    fn sent(&self) -> Vec<OutboundMessage> {
        self.sender.sent.lock().unwrap().clone()
    }

    async fn update(&self, change: impl FnOnce(&mut SessionState)) {
        let stored = self.store.load("s-1").await.unwrap().unwrap();
        let mut state = stored.state;
        change(&mut state);
        self.store
            .save(&state, Some(stored.revision))
            .await
            .unwrap();
    }
}

fn reminder(channel: ContactChannel, start: &str) -> NotificationRequest {
    NotificationRequest::new(
        "s-1",
        NotificationKind::Reminder,
        Recipient::Patient,
        channel,
        Some(60),
        Some(start.into()),
        0,
    )
}

#[tokio::test]
async fn a_reminder_is_worded_in_the_patients_zone_and_sent_once() {
    let h = Harness::new(state(ContactChannel::Sms, "+12025550143", "en")).await;
    let request = reminder(ContactChannel::Sms, START);
    assert_eq!(
        h.handle(&request, "m1#1", "2026-03-20T18:00:00Z")
            .await
            .unwrap(),
        NotifyOutcome::Sent {
            provider: "memory".into()
        }
    );
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, "+12025550143");
    assert_eq!(
        sent[0].body,
        "Reminder: video visit with Riverside Family Clinic on Friday, March 20 at 3:00 PM (EDT). Join: https://visit.example.org/j/s-1 Reply C to confirm, R to reschedule"
    );
    // Redelivered: not sent again; the Sent event is republished with the same id.
    assert_eq!(
        h.handle(&request, "m1#2", "2026-03-20T18:01:00Z")
            .await
            .unwrap(),
        NotifyOutcome::Skipped(SkipReason::AlreadySent)
    );
    assert_eq!(h.sent().len(), 1);
    let sent_events = h.events.of_type("Notification Sent");
    assert_eq!(sent_events.len(), 2);
    assert_eq!(sent_events[0]["event_id"], sent_events[1]["event_id"]);
    // Events carry ids and routing, never the address or text.
    for event in h.events.published.lock().unwrap().iter() {
        assert!(
            !event.detail.contains("2025550143") && !event.detail.contains("Riverside"),
            "{}",
            event.detail
        );
    }
}

#[tokio::test]
async fn spanish_email_with_subject() {
    let h = Harness::new(state(
        ContactChannel::Email,
        "paciente@example.org",
        "es-MX",
    ))
    .await;
    h.handle(
        &reminder(ContactChannel::Email, START),
        "m1#1",
        "2026-03-20T18:00:00Z",
    )
    .await
    .unwrap();
    let sent = h.sent();
    assert_eq!(
        sent[0].subject.as_deref(),
        Some("Recordatorio: su consulta por video el viernes 20 de marzo")
    );
    assert!(
        sent[0].body.contains("a las 15:00 (EDT)"),
        "{}",
        sent[0].body
    );
}

#[tokio::test]
async fn reminders_the_session_no_longer_wants_are_skipped_and_recorded() {
    type Change = fn(&mut SessionState);
    let cases: [(Change, SkipReason); 4] = [
        (
            |s| s.cancelled_version = Some(3),
            SkipReason::SessionCancelled,
        ),
        (
            |s| s.timing.as_mut().unwrap().start = "2026-03-21T19:00:00Z".parse().unwrap(),
            SkipReason::SessionMoved,
        ),
        (|s| s.admitted = true, SkipReason::SessionStarted),
        (
            |s| s.ended_at = Some("2026-03-20T19:30:00Z".parse().unwrap()),
            SkipReason::SessionEnded,
        ),
    ];
    for (change, reason) in cases {
        let h = Harness::new(state(ContactChannel::Sms, "+12025550143", "en")).await;
        h.update(change).await;
        assert_eq!(
            h.handle(
                &reminder(ContactChannel::Sms, START),
                "a",
                "2026-03-20T18:00:00Z"
            )
            .await
            .unwrap(),
            NotifyOutcome::Skipped(reason)
        );
        assert!(h.sent().is_empty());
        assert_eq!(
            h.events.of_type("Notification Skipped")[0]["reason"],
            reason.as_str()
        );
    }
    let h = Harness::new(state(ContactChannel::Sms, "+12025550143", "en")).await;
    let mut unknown = reminder(ContactChannel::Sms, START);
    unknown.session_id = "s-404".into();
    assert_eq!(
        h.handle(&unknown, "a", "2026-03-20T18:00:00Z")
            .await
            .unwrap(),
        NotifyOutcome::Skipped(SkipReason::UnknownSession)
    );
}

#[tokio::test]
async fn invalid_addresses_fail_permanently_without_calling_the_provider() {
    let h = Harness::new(state(ContactChannel::Sms, "202-555-0143", "en")).await;
    let err = h
        .handle(
            &reminder(ContactChannel::Sms, START),
            "a",
            "2026-03-20T18:00:00Z",
        )
        .await
        .unwrap_err();
    assert_eq!(
        (err.class, err.reason.as_str()),
        (ErrorClass::Permanent, "invalid_address")
    );
    assert!(!err.to_string().contains("555"), "{err}");
    assert!(h.sent().is_empty());
    assert_eq!(
        h.events.of_type("Notification Failed")[0]["reason"],
        "invalid_address"
    );
}

#[tokio::test]
async fn throttled_providers_release_the_claim_so_the_retry_sends() {
    let h = Harness::new(state(ContactChannel::Sms, "+12025550143", "en")).await;
    h.sender.failures.push(Some(PortErrorKind::Throttled));
    let err = h
        .handle(
            &reminder(ContactChannel::Sms, START),
            "m#1",
            "2026-03-20T18:00:00Z",
        )
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    assert!(matches!(
        h.handle(
            &reminder(ContactChannel::Sms, START),
            "m#2",
            "2026-03-20T18:00:30Z"
        )
        .await
        .unwrap(),
        NotifyOutcome::Sent { .. }
    ));
    assert_eq!(h.sent().len(), 1);
}

#[tokio::test]
async fn timeouts_and_5xx_after_sending_end_as_outcome_unknown_never_resent() {
    for kind in [
        PortErrorKind::Timeout,
        PortErrorKind::Unavailable,
        PortErrorKind::Other,
    ] {
        let h = Harness::new(state(ContactChannel::Sms, "+12025550143", "en")).await;
        let request = reminder(ContactChannel::Sms, START);
        h.sender.failures.push(Some(kind));
        assert_eq!(
            h.handle(&request, "m#1", "2026-03-20T18:00:00Z")
                .await
                .unwrap(),
            NotifyOutcome::OutcomeUnknown,
            "{kind:?}"
        );
        assert_eq!(
            h.ledger.outcome(&request.intent_id),
            Some(IntentOutcome::Unknown)
        );
        let failed = h.events.of_type("Notification Failed");
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0]["reason"], "outcome_unknown");
        // A redelivery (the batch driver, a replay) does not send it either.
        h.handle(&request, "m#2", "2026-03-20T18:10:00Z")
            .await
            .unwrap();
        assert!(h.sent().is_empty(), "{kind:?}");
    }
}

#[test]
fn each_send_failure_class_maps_to_release_unknown_or_rejected() {
    use crate::error::PortError;
    use crate::notifier::{after_send_failure, AfterSendFailure::*};
    let err = |kind| PortError::new(kind, "sns", "Publish");
    for (error, expected) in [
        (err(PortErrorKind::Throttled), Release),
        (err(PortErrorKind::QuotaExceeded), Release),
        (err(PortErrorKind::Unavailable).never_sent(), Release),
        (err(PortErrorKind::Unavailable).with_status(503), Unknown),
        (err(PortErrorKind::Unavailable), Unknown),
        (err(PortErrorKind::Timeout), Unknown),
        (err(PortErrorKind::Other), Unknown),
        (err(PortErrorKind::InvalidRequest), Rejected),
        (err(PortErrorKind::AccessDenied), Rejected),
        (err(PortErrorKind::NotFound), Rejected),
    ] {
        assert_eq!(after_send_failure(&error), expected, "{error}");
    }
}

#[tokio::test]
async fn provider_rejections_are_permanent_and_recorded() {
    let h = Harness::new(state(ContactChannel::Sms, "+12025550143", "en")).await;
    h.sender.failures.push(Some(PortErrorKind::InvalidRequest));
    let err = h
        .handle(
            &reminder(ContactChannel::Sms, START),
            "m#1",
            "2026-03-20T18:00:00Z",
        )
        .await
        .unwrap_err();
    assert_eq!(
        (err.class, err.reason.as_str()),
        (ErrorClass::Permanent, "provider_rejected:invalid_request")
    );
    assert_eq!(
        h.ledger
            .outcome(&reminder(ContactChannel::Sms, START).intent_id),
        Some(IntentOutcome::Failed {
            reason: "provider_rejected:invalid_request".into()
        })
    );
    // Replayed from the DLQ: the ledger says it failed, nothing is sent.
    assert_eq!(
        h.handle(
            &reminder(ContactChannel::Sms, START),
            "m#2",
            "2026-03-20T18:01:00Z"
        )
        .await
        .unwrap(),
        NotifyOutcome::OutcomeUnknown
    );
    assert!(h.sent().is_empty());
    // ... and the failure is announced again under the same id, in case the first
    // delivery died before announcing it.
    let failed = h.events.of_type("Notification Failed");
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0]["event_id"], failed[1]["event_id"]);
}

#[tokio::test]
async fn a_crash_between_send_and_record_never_sends_twice() {
    let h = Harness::new(state(ContactChannel::Sms, "+12025550143", "en")).await;
    let request = reminder(ContactChannel::Sms, START);
    // claim ok, then the completion write fails: as if the worker died right after sending.
    h.ledger.failures.push(None);
    h.ledger.failures.push(Some(PortErrorKind::Unavailable));
    assert!(h
        .handle(&request, "m#1", "2026-03-20T18:00:00Z")
        .await
        .unwrap_err()
        .is_retryable());
    assert_eq!(h.sent().len(), 1);
    // Redelivered within the lease: still looks in flight; retried later, not sent.
    let err = h
        .handle(&request, "m#2", "2026-03-20T18:02:00Z")
        .await
        .unwrap_err();
    assert_eq!(err.reason, "notification_in_flight");
    // After the lease: reported as unknown outcome, never resent.
    assert_eq!(
        h.handle(&request, "m#3", "2026-03-20T18:06:00Z")
            .await
            .unwrap(),
        NotifyOutcome::OutcomeUnknown
    );
    assert_eq!(
        h.handle(&request, "m#4", "2026-03-20T18:07:00Z")
            .await
            .unwrap(),
        NotifyOutcome::OutcomeUnknown
    );
    assert_eq!(h.sent().len(), 1);
    assert_eq!(
        h.events.of_type("Notification Failed")[0]["reason"],
        "outcome_unknown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_notification_delivered_to_many_consumers_at_once_sends_once() {
    let h = std::sync::Arc::new(
        Harness::new(state(ContactChannel::Email, "patient@example.org", "en")).await,
    );
    let request = reminder(ContactChannel::Email, START);
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let h = h.clone();
            let request = request.clone();
            tokio::spawn(async move {
                h.handle(&request, &format!("consumer-{i}"), "2026-03-20T18:00:00Z")
                    .await
            })
        })
        .collect();
    let mut sent = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(NotifyOutcome::Sent { .. }) => sent += 1,
            Ok(NotifyOutcome::Skipped(SkipReason::AlreadySent)) => {}
            Err(err) => assert_eq!(err.reason, "notification_in_flight"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(sent, 1);
    assert_eq!(h.sent().len(), 1);
}

#[tokio::test]
async fn waiting_room_alerts_go_to_the_clinician_until_they_are_in() {
    let h = Harness::new(state(ContactChannel::Sms, "+12025550143", "en")).await;
    let alert = NotificationRequest::new(
        "s-1",
        NotificationKind::WaitingRoomAlert,
        Recipient::Clinician,
        ContactChannel::Email,
        None,
        None,
        1,
    );
    h.handle(&alert, "a", "2026-03-20T18:58:00Z").await.unwrap();
    let sent = h.sent();
    assert_eq!(sent[0].to, "dr.lee@example.org");
    assert_eq!(
        sent[0].subject.as_deref(),
        Some("Your patient is in the waiting room")
    );
    h.update(|s| s.clinician_present = true).await;
    let second = NotificationRequest::new(
        "s-1",
        NotificationKind::WaitingRoomAlert,
        Recipient::Clinician,
        ContactChannel::Email,
        None,
        None,
        2,
    );
    assert_eq!(
        h.handle(&second, "b", "2026-03-20T19:10:00Z")
            .await
            .unwrap(),
        NotifyOutcome::Skipped(SkipReason::SessionStarted)
    );
}

#[tokio::test]
async fn malformed_requests_are_permanent() {
    let h = Harness::new(state(ContactChannel::Sms, "+12025550143", "en")).await;
    let ports = NotifierPorts {
        store: &h.store,
        ledger: &h.ledger,
        sender: &h.sender,
        events: &h.events,
        suppressions: &h.suppressions,
    };
    let err = handle_message(
        &ports,
        &h.config,
        "{\"intent_id\": \"+15550100\"}",
        "a",
        ts(START),
    )
    .await
    .unwrap_err();
    assert_eq!(
        (err.class, err.reason.as_str()),
        (ErrorClass::Permanent, "malformed_notification_request")
    );
    assert!(!err.to_string().contains("15550100"));
}

#[tokio::test]
async fn an_opted_out_number_gets_nothing_and_the_provider_is_not_asked() {
    use crate::ports::Suppressions;
    let h = Harness::new(state(ContactChannel::Sms, "+12025550143", "en")).await;
    let key = h.config.phone_key.as_ref().unwrap().digest("+12025550143");
    h.suppressions
        .suppress(&key, ContactChannel::Sms, "stop")
        .await
        .unwrap();
    assert_eq!(
        h.handle(
            &reminder(ContactChannel::Sms, START),
            "m#1",
            "2026-03-20T18:00:00Z"
        )
        .await
        .unwrap(),
        NotifyOutcome::Skipped(SkipReason::OptedOut)
    );
    assert!(h.sent().is_empty());
    assert_eq!(
        h.events.of_type("Notification Skipped")[0]["reason"],
        "opted_out"
    );
    // Opted back in: the next reminder goes out.
    h.suppressions
        .lift(&key, ContactChannel::Sms)
        .await
        .unwrap();
    let later = NotificationRequest::new(
        "s-1",
        NotificationKind::Reminder,
        Recipient::Patient,
        ContactChannel::Sms,
        Some(30),
        Some(START.into()),
        0,
    );
    assert!(matches!(
        h.handle(&later, "m#2", "2026-03-20T18:30:00Z")
            .await
            .unwrap(),
        NotifyOutcome::Sent { .. }
    ));
}

/// A provider that answers as Twilio does for an opted-out number.
struct OptedOutSender;

impl crate::ports::MessageSender for OptedOutSender {
    async fn send(
        &self,
        _message: &OutboundMessage,
    ) -> Result<crate::ports::SendReceipt, crate::error::PortError> {
        Err(
            crate::error::PortError::new(PortErrorKind::InvalidRequest, "twilio", "CreateMessage")
                .with_status(400)
                .with_code("twilio:21610"),
        )
    }
}

#[tokio::test]
async fn a_provider_opt_out_answer_puts_the_number_on_the_list() {
    use crate::ports::Suppressions;
    let h = Harness::new(state(ContactChannel::Sms, "+12025550143", "en")).await;
    let ports = NotifierPorts {
        store: &h.store,
        ledger: &h.ledger,
        sender: &OptedOutSender,
        events: &h.events,
        suppressions: &h.suppressions,
    };
    let body = serde_json::to_string(&reminder(ContactChannel::Sms, START)).unwrap();
    let err = handle_message(&ports, &h.config, &body, "m#1", ts("2026-03-20T18:00:00Z"))
        .await
        .unwrap_err();
    assert!(!err.is_retryable());
    let key = h.config.phone_key.as_ref().unwrap().digest("+12025550143");
    assert!(h
        .suppressions
        .is_suppressed(&key, ContactChannel::Sms)
        .await
        .unwrap());
}

#[tokio::test]
async fn a_cancellation_notice_goes_out_for_a_cancelled_session_once() {
    let h = Harness::new(state(ContactChannel::Sms, "+12025550143", "es")).await;
    h.update(|s| s.cancelled_version = Some(4)).await;
    let notice = NotificationRequest::new(
        "s-1",
        NotificationKind::CancellationNotice,
        Recipient::Patient,
        ContactChannel::Sms,
        None,
        Some(START.into()),
        0,
    );
    for attempt in ["m#1", "m#2"] {
        h.handle(&notice, attempt, "2026-03-19T12:00:00Z")
            .await
            .unwrap();
    }
    let sent = h.sent();
    assert_eq!(sent.len(), 1, "at most once across redeliveries");
    assert!(sent[0].body.contains("cancelada"), "{}", sent[0].body);
    // A reminder for the cancelled session is still skipped.
    assert_eq!(
        h.handle(
            &reminder(ContactChannel::Sms, START),
            "m#3",
            "2026-03-19T12:00:00Z"
        )
        .await
        .unwrap(),
        NotifyOutcome::Skipped(SkipReason::SessionCancelled)
    );
}
