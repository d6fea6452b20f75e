//! Policy and stage tests with an injected clock and in-memory ports.

use super::*;
use crate::config::Env;
use crate::error::{ErrorClass, PortErrorKind};
use crate::memory::{MemoryEvents, MemoryNotifications, MemoryScheduler, MemorySessionStore};
use std::sync::atomic::Ordering;
use telepipe_events::sessions::DEFAULT_SESSIONS_SOURCE;

struct Harness {
    store: MemorySessionStore,
    scheduler: MemoryScheduler,
    notifications: MemoryNotifications,
    events: MemoryEvents,
    config: SessionsConfig,
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

impl Harness {
    fn new() -> Self {
        Self::with(&[])
    }

    fn with(pairs: &[(&str, &str)]) -> Self {
        Self {
            store: MemorySessionStore::default(),
            scheduler: MemoryScheduler::default(),
            notifications: MemoryNotifications::default(),
            events: MemoryEvents::default(),
            config: SessionsConfig::from_env(&Env::from_pairs(pairs)).unwrap(),
        }
    }

    async fn handle(&self, body: &str, now: &str) -> Result<SessionOutcome, StageError> {
        // Schedules due by now have fired and deleted themselves, as ActionAfterCompletion=DELETE does.
        self.scheduler.fire_due(ts(now));
        let ports = SessionsPorts {
            store: &self.store,
            scheduler: &self.scheduler,
            notifications: &self.notifications,
            events: &self.events,
        };
        handle_message(&ports, &self.config, body, ts(now)).await
    }

    fn state(&self) -> SessionState {
        self.store.get("s-1").expect("session stored")
    }

    fn scheduled_local(&self) -> Vec<String> {
        let tz = jiff::tz::TimeZone::get("America/New_York").unwrap();
        let mut times: Vec<_> = self
            .scheduler
            .schedules
            .lock()
            .unwrap()
            .values()
            .filter(|s| s.target == ScheduleTarget::Notifications)
            .map(|s| {
                s.fire_at
                    .to_zoned(tz.clone())
                    .strftime("%m-%d %H:%M")
                    .to_string()
            })
            .collect();
        times.sort();
        times
    }
}

fn envelope(detail_type: &str, detail: serde_json::Value) -> String {
    serde_json::json!({
        "version": "0", "id": "x", "detail-type": detail_type, "source": DEFAULT_SESSIONS_SOURCE,
        "account": "1", "time": "2026-03-01T00:00:00Z", "region": "us-east-1", "resources": [],
        "detail": detail
    })
    .to_string()
}

fn scheduled(version: u64, start: &str, channel: &str) -> String {
    envelope(
        "Session Scheduled",
        serde_json::json!({
            "session_id": "s-1", "version": version, "start": start, "duration_minutes": 30,
            "patient_time_zone": "America/New_York", "locale": "en",
            "patient": {"reference": "p-1", "channel": channel, "address": "+12025550143"},
            "clinician": {"reference": "c-1", "channel": "email", "address": "dr@example.org"}
        }),
    )
}

fn rescheduled(version: u64, start: &str) -> String {
    envelope(
        "Session Rescheduled",
        serde_json::json!({"session_id": "s-1", "version": version, "start": start, "duration_minutes": 30}),
    )
}

fn simple(detail_type: &str, version: u64) -> String {
    envelope(
        detail_type,
        serde_json::json!({"session_id": "s-1", "version": version}),
    )
}

fn joined(reference: &str) -> String {
    envelope(
        "Waiting Room Joined",
        serde_json::json!({"session_id": "s-1", "version": 9, "participant_reference": reference}),
    )
}

fn chime(event_type: &str, user: &str) -> String {
    serde_json::json!({
        "version": "0", "id": "c", "detail-type": "Chime Meeting State Change", "source": "aws.chime",
        "account": "1", "time": "2026-03-01T00:00:00Z", "region": "us-east-1", "resources": [],
        "detail": {"version": "0", "eventType": event_type, "meetingId": "m", "attendeeId": "a",
                   "externalUserId": user, "externalMeetingId": "s-1"}
    })
    .to_string()
}

#[tokio::test]
async fn booking_creates_one_schedule_per_offset_and_a_duplicate_changes_nothing() {
    let h = Harness::new();
    let outcome = h
        .handle(
            &scheduled(1, "2026-03-20T15:00:00-04:00", "sms"),
            "2026-03-10T12:00:00Z",
        )
        .await
        .unwrap();
    assert_eq!(outcome.schedules_created, 2);
    assert!(outcome.state_written);
    assert_eq!(h.scheduled_local(), ["03-19 15:00", "03-20 14:00"]);
    assert_eq!(h.events.of_type("Reminder Scheduled").len(), 2);
    let payloads: Vec<NotificationRequest> = h
        .scheduler
        .schedules
        .lock()
        .unwrap()
        .values()
        .map(|s| serde_json::from_str(&s.payload).unwrap())
        .collect();
    assert!(payloads
        .iter()
        .all(|r| r.appointment_start.as_deref() == Some("2026-03-20T19:00:00Z")));

    let again = h
        .handle(
            &scheduled(1, "2026-03-20T15:00:00-04:00", "sms"),
            "2026-03-10T12:05:00Z",
        )
        .await
        .unwrap();
    assert_eq!(again, SessionOutcome::default());
    assert_eq!(h.store.writes.load(Ordering::Relaxed), 1);
    assert_eq!(h.scheduler.creates.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn offsets_already_past_are_skipped_and_may_confirm_at_once() {
    let h = Harness::new();
    h.handle(
        &scheduled(1, "2026-03-10T12:30:00Z", "sms"),
        "2026-03-10T12:00:00Z",
    )
    .await
    .unwrap();
    assert!(
        h.scheduled_local().is_empty(),
        "30 min ahead: neither 24 h nor 1 h can fire"
    );
    assert!(
        h.notifications.enqueued.lock().unwrap().is_empty(),
        "no confirmation unless configured"
    );

    let h = Harness::with(&[("TELEPIPE_CONFIRM_WHEN_TOO_LATE", "true")]);
    h.handle(
        &scheduled(1, "2026-03-10T16:00:00Z", "email"),
        "2026-03-10T12:00:00Z",
    )
    .await
    .unwrap();
    assert_eq!(
        h.scheduled_local(),
        ["03-10 11:00"],
        "the 1 h reminder still fires"
    );
    let enqueued = h.notifications.enqueued.lock().unwrap().clone();
    assert_eq!(enqueued.len(), 1);
    assert_eq!(enqueued[0].kind, NotificationKind::Confirmation);
    // A redelivery does not confirm twice (and the intent id would match if it did).
    h.handle(
        &scheduled(1, "2026-03-10T16:00:00Z", "email"),
        "2026-03-10T12:01:00Z",
    )
    .await
    .unwrap();
    assert_eq!(h.notifications.enqueued.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn reschedule_replaces_reminders_with_two_scheduler_calls_each() {
    let h = Harness::new();
    h.handle(
        &scheduled(1, "2026-03-20T15:00:00-04:00", "email"),
        "2026-03-10T12:00:00Z",
    )
    .await
    .unwrap();
    let outcome = h
        .handle(
            &rescheduled(2, "2026-03-21T10:00:00-04:00"),
            "2026-03-10T13:00:00Z",
        )
        .await
        .unwrap();
    assert_eq!(
        (outcome.schedules_deleted, outcome.schedules_created),
        (2, 2)
    );
    assert_eq!(h.scheduled_local(), ["03-20 10:00", "03-21 09:00"]);
    let cancelled = h.events.of_type("Reminders Cancelled");
    assert_eq!(cancelled[0]["reason"], "rescheduled");
    assert_eq!(
        h.store.writes.load(Ordering::Relaxed),
        2,
        "one state write per event"
    );
}

#[tokio::test]
async fn cancel_deletes_reminders_and_a_late_booking_cannot_resurrect_them() {
    let h = Harness::new();
    h.handle(
        &scheduled(1, "2026-03-20T15:00:00-04:00", "sms"),
        "2026-03-10T12:00:00Z",
    )
    .await
    .unwrap();
    h.handle(&simple("Session Cancelled", 2), "2026-03-10T12:10:00Z")
        .await
        .unwrap();
    assert!(h.scheduled_local().is_empty());
    assert_eq!(
        h.events.of_type("Reminders Cancelled")[0]["reason"],
        "cancelled"
    );
    // The booking delivered again late, and a stale reschedule: nothing comes back.
    h.handle(
        &scheduled(1, "2026-03-20T15:00:00-04:00", "sms"),
        "2026-03-10T12:20:00Z",
    )
    .await
    .unwrap();
    h.handle(
        &rescheduled(3, "2026-03-22T15:00:00-04:00"),
        "2026-03-10T12:30:00Z",
    )
    .await
    .unwrap();
    assert!(h.scheduled_local().is_empty());
    assert!(h.state().schedules.is_empty());
}

#[tokio::test]
async fn cancel_before_booking_arrives_still_wins() {
    let h = Harness::new();
    h.handle(&simple("Session Cancelled", 2), "2026-03-10T12:00:00Z")
        .await
        .unwrap();
    h.handle(
        &scheduled(1, "2026-03-20T15:00:00-04:00", "sms"),
        "2026-03-10T12:01:00Z",
    )
    .await
    .unwrap();
    assert!(h.scheduled_local().is_empty());
    assert_eq!(h.scheduler.creates.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_newer_reschedule_arriving_before_the_booking_is_kept() {
    let h = Harness::new();
    h.handle(
        &rescheduled(2, "2026-03-21T10:00:00-04:00"),
        "2026-03-10T12:00:00Z",
    )
    .await
    .unwrap();
    assert!(h.scheduled_local().is_empty(), "no contact known yet");
    h.handle(
        &scheduled(1, "2026-03-20T15:00:00-04:00", "sms"),
        "2026-03-10T12:01:00Z",
    )
    .await
    .unwrap();
    assert_eq!(
        h.scheduled_local(),
        ["03-20 10:00", "03-21 09:00"],
        "the v2 time, with v1's zone and contact"
    );
}

#[tokio::test]
async fn reschedule_storms_in_any_order_converge_on_the_newest_time() {
    let starts: Vec<String> = (0..12)
        .map(|i| format!("2026-04-{:02}T14:00:00Z", 10 + i))
        .collect();
    for seed in 0..20u64 {
        let h = Harness::new();
        let mut order: Vec<usize> = (0..starts.len()).collect();
        fastrand::Rng::with_seed(seed).shuffle(&mut order);
        h.handle(
            &scheduled(1, "2026-04-05T14:00:00Z", "email"),
            "2026-03-10T12:00:00Z",
        )
        .await
        .unwrap();
        for (step, &i) in order.iter().enumerate() {
            let body = rescheduled(2 + i as u64, &starts[i]);
            h.handle(&body, &format!("2026-03-10T12:{:02}:00Z", step + 1))
                .await
                .unwrap();
            // Each duplicate is harmless.
            if step % 3 == 0 {
                h.handle(&body, &format!("2026-03-10T12:{:02}:30Z", step + 1))
                    .await
                    .unwrap();
            }
        }
        let state = h.state();
        assert_eq!(
            state.timing.unwrap().start,
            ts("2026-04-21T14:00:00Z"),
            "seed {seed}"
        );
        let in_scheduler: Vec<String> = h
            .scheduler
            .schedules
            .lock()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let in_state: Vec<String> = state.schedules.keys().cloned().collect();
        assert_eq!(
            in_scheduler, in_state,
            "seed {seed}: no orphaned or missing schedules"
        );
        assert_eq!(in_state.len(), 2);
        let creates = h.scheduler.creates.load(Ordering::Relaxed);
        let deletes = h.scheduler.deletes.load(Ordering::Relaxed);
        let changes = 1 + order
            .iter()
            .scan(1usize, |max, &i| {
                let newer = i + 2 > *max;
                *max = (*max).max(i + 2);
                Some(newer)
            })
            .filter(|&newer| newer)
            .count();
        assert!(
            creates <= 2 * changes && deletes <= 2 * changes,
            "seed {seed}: {creates} creates, {deletes} deletes for {changes} changes"
        );
    }
}

#[tokio::test]
async fn waiting_room_alerts_the_clinician_once_per_window() {
    let h = Harness::new();
    h.handle(
        &scheduled(1, "2026-03-10T15:00:00Z", "sms"),
        "2026-03-10T12:00:00Z",
    )
    .await
    .unwrap();
    h.handle(&joined("p-1"), "2026-03-10T14:55:00Z")
        .await
        .unwrap();
    h.handle(
        &chime("chime:AttendeeJoined", "p-1"),
        "2026-03-10T14:56:00Z",
    )
    .await
    .unwrap();
    h.handle(&joined("p-1"), "2026-03-10T14:58:00Z")
        .await
        .unwrap();
    let alerts = h.notifications.enqueued.lock().unwrap().clone();
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        (alerts[0].kind, alerts[0].recipient, alerts[0].channel),
        (
            NotificationKind::WaitingRoomAlert,
            Recipient::Clinician,
            telepipe_events::sessions::ContactChannel::Email
        )
    );
    // After the window the patient is still waiting: alert again, as a new intent.
    h.handle(&joined("p-1"), "2026-03-10T15:06:00Z")
        .await
        .unwrap();
    let alerts = h.notifications.enqueued.lock().unwrap().clone();
    assert_eq!(alerts.len(), 2);
    assert_ne!(alerts[0].intent_id, alerts[1].intent_id);
    // Once the clinician is in, no more alerts.
    h.handle(
        &chime("chime:AttendeeJoined", "c-1"),
        "2026-03-10T15:07:00Z",
    )
    .await
    .unwrap();
    h.handle(&joined("p-1"), "2026-03-10T15:30:00Z")
        .await
        .unwrap();
    assert_eq!(h.notifications.enqueued.lock().unwrap().len(), 2);
    // The clinician joining the waiting room is not an alert either.
    let h = Harness::new();
    h.handle(
        &scheduled(1, "2026-03-10T15:00:00Z", "sms"),
        "2026-03-10T12:00:00Z",
    )
    .await
    .unwrap();
    h.handle(&joined("c-1"), "2026-03-10T14:55:00Z")
        .await
        .unwrap();
    h.handle(&joined("stranger"), "2026-03-10T14:55:00Z")
        .await
        .unwrap();
    assert!(h.notifications.enqueued.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_join_before_the_booking_is_retried_not_dropped() {
    let h = Harness::new();
    let err = h
        .handle(&joined("p-1"), "2026-03-10T14:55:00Z")
        .await
        .unwrap_err();
    assert_eq!(
        (err.class, err.reason.as_str()),
        (ErrorClass::Retryable, "session_not_booked")
    );
}

#[tokio::test]
async fn starting_withdraws_pending_reminders() {
    let h = Harness::new();
    h.handle(
        &scheduled(1, "2026-03-10T15:00:00Z", "email"),
        "2026-03-09T12:00:00Z",
    )
    .await
    .unwrap();
    assert_eq!(h.scheduled_local().len(), 2);
    // Started early (clinic ran ahead): the 1 h reminder at 14:00Z is still pending at 13:50Z.
    h.handle(&chime("chime:MeetingStarted", ""), "2026-03-10T13:50:00Z")
        .await
        .unwrap();
    assert!(h.scheduled_local().is_empty());
    assert_eq!(
        h.scheduler.deletes.load(Ordering::Relaxed),
        1,
        "the spent 24 h schedule is not deleted"
    );
    assert_eq!(
        h.events.of_type("Reminders Cancelled")[0]["reason"],
        "session_started"
    );
}

#[tokio::test]
async fn a_session_that_ends_without_a_recording_is_reported_once() {
    let h = Harness::with(&[("TELEPIPE_RECORDING_GRACE_MINUTES", "30")]);
    h.handle(
        &scheduled(1, "2026-03-10T15:00:00Z", "sms"),
        "2026-03-10T12:00:00Z",
    )
    .await
    .unwrap();
    h.handle(&simple("Session Ended", 5), "2026-03-10T15:40:00Z")
        .await
        .unwrap();
    h.handle(&chime("chime:MeetingEnded", ""), "2026-03-10T15:41:00Z")
        .await
        .unwrap();
    let checks: Vec<_> = h.scheduler.fire_due(ts("2026-03-10T16:10:00Z"));
    assert_eq!(checks.len(), 1, "one check, at end + grace");
    assert_eq!(checks[0].fire_at, ts("2026-03-10T16:10:00Z"));
    assert_eq!(checks[0].target, ScheduleTarget::Sessions);
    h.handle(&checks[0].payload, "2026-03-10T16:10:30Z")
        .await
        .unwrap();
    h.handle(&checks[0].payload, "2026-03-10T16:11:00Z")
        .await
        .unwrap();
    let missing = h.events.of_type("Recording Missing");
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0]["waited_minutes"], 30);
}

fn capture_failed(reason: &str) -> String {
    serde_json::json!({"version": "0", "id": "c", "detail-type": "Recording Capture Failed", "source": "telepipe",
        "account": "1", "time": "2026-03-10T15:45:00Z", "region": "us-east-1", "resources": [],
        "detail": {"schema_version": 1, "event_id": "e", "session_id": "s-1",
                   "media_pipeline_id": "e40ee45e-2ed1-408e-9156-f52b8208a491", "reason": reason}})
    .to_string()
}

#[tokio::test]
async fn a_failed_capture_is_reported_as_missing_at_once_and_only_once() {
    let h = Harness::new();
    h.handle(&simple("Session Ended", 5), "2026-03-10T15:40:00Z")
        .await
        .unwrap();
    h.handle(&capture_failed("capture_empty"), "2026-03-10T15:45:00Z")
        .await
        .unwrap();
    h.handle(&capture_failed("capture_failed"), "2026-03-10T15:46:00Z")
        .await
        .unwrap();
    // The grace-period check later finds it reported already.
    let check = h
        .scheduler
        .fire_due(ts("2026-03-10T18:00:00Z"))
        .pop()
        .unwrap();
    h.handle(&check.payload, "2026-03-10T17:41:00Z")
        .await
        .unwrap();
    let missing = h.events.of_type("Recording Missing");
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0]["reason"], "capture_empty");
    assert_eq!(missing[0]["waited_minutes"], 0);
}

#[tokio::test]
async fn a_capture_failure_after_the_recording_arrived_reports_nothing() {
    let h = Harness::new();
    let arrived = serde_json::json!({"version": "0", "id": "t", "detail-type": "Transcription Started", "source": "telepipe",
        "account": "1", "time": "2026-03-10T15:45:00Z", "region": "us-east-1", "resources": [],
        "detail": {"session_id": "s-1", "job_name": "s-1-abc"}}).to_string();
    h.handle(&arrived, "2026-03-10T15:45:00Z").await.unwrap();
    h.handle(&capture_failed("capture_failed"), "2026-03-10T15:46:00Z")
        .await
        .unwrap();
    assert!(h.events.of_type("Recording Missing").is_empty());
}

#[tokio::test]
async fn a_recording_that_arrives_in_time_is_not_reported() {
    let h = Harness::new();
    h.handle(&simple("Session Ended", 5), "2026-03-10T15:40:00Z")
        .await
        .unwrap();
    let arrived = serde_json::json!({"version": "0", "id": "t", "detail-type": "Transcription Started", "source": "telepipe",
        "account": "1", "time": "2026-03-10T15:45:00Z", "region": "us-east-1", "resources": [],
        "detail": {"session_id": "s-1", "job_name": "s-1-abc"}}).to_string();
    h.handle(&arrived, "2026-03-10T15:45:00Z").await.unwrap();
    let check = h
        .scheduler
        .fire_due(ts("2026-03-10T18:00:00Z"))
        .pop()
        .unwrap();
    h.handle(&check.payload, "2026-03-10T17:41:00Z")
        .await
        .unwrap();
    assert!(h.events.of_type("Recording Missing").is_empty());
}

#[tokio::test]
async fn a_concurrent_write_is_a_retry_and_the_retry_converges() {
    let h = Harness::new();
    h.handle(
        &scheduled(1, "2026-03-20T15:00:00Z", "sms"),
        "2026-03-10T12:00:00Z",
    )
    .await
    .unwrap();
    h.store.failures.push(None); // load
    h.store.failures.push(Some(PortErrorKind::Conflict)); // save lost to another writer
    let err = h
        .handle(
            &rescheduled(2, "2026-03-21T15:00:00Z"),
            "2026-03-10T12:01:00Z",
        )
        .await
        .unwrap_err();
    assert!(err.is_retryable());
    h.handle(
        &rescheduled(2, "2026-03-21T15:00:00Z"),
        "2026-03-10T12:02:00Z",
    )
    .await
    .unwrap();
    let in_scheduler: Vec<String> = h
        .scheduler
        .schedules
        .lock()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        in_scheduler,
        h.state().schedules.keys().cloned().collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn bad_inputs_are_permanent_with_a_reason() {
    let h = Harness::new();
    let bad_zone =
        scheduled(1, "2026-03-20T15:00:00Z", "sms").replace("America/New_York", "Mars/Base");
    let bad_start = scheduled(1, "next tuesday", "sms");
    let bad_id = scheduled(1, "2026-03-20T15:00:00Z", "sms").replace("\"s-1\"", "\"../etc\"");
    for (body, reason) in [
        (bad_zone, "invalid_time_zone"),
        (bad_start, "invalid_start"),
        (bad_id, "invalid_session_id"),
        ("{".to_owned(), "malformed_session_event"),
    ] {
        let err = h.handle(&body, "2026-03-10T12:00:00Z").await.unwrap_err();
        assert_eq!(
            (err.class, err.reason.as_str()),
            (ErrorClass::Permanent, reason)
        );
    }
}

fn scheduled_with(join_url: Option<&str>, clinic_name: Option<&str>) -> String {
    let mut body: serde_json::Value =
        serde_json::from_str(&scheduled(1, "2026-03-10T15:00:00Z", "sms")).unwrap();
    if let Some(url) = join_url {
        body["detail"]["join_url"] = url.into();
    }
    if let Some(name) = clinic_name {
        body["detail"]["clinic_name"] = name.into();
    }
    body.to_string()
}

#[tokio::test]
async fn join_links_must_be_https_on_an_allowed_host_and_clinic_names_short() {
    let h = Harness::with(&[(
        "TELEPIPE_JOIN_URL_HOSTS",
        "visit.example.org, Meet.Example.org",
    )]);
    for good in [
        "https://visit.example.org/j/abc?x=1",
        "https://meet.example.org:8443/room",
    ] {
        h.handle(
            &scheduled_with(Some(good), Some("Riverside Clinic")),
            "2026-03-01T12:00:00Z",
        )
        .await
        .unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    for (bad, reason) in [
        ("http://visit.example.org/j", "invalid_join_url"),
        ("https://evil.example.com/phish", "invalid_join_url"),
        (
            "https://visit.example.org@evil.example.com/",
            "invalid_join_url",
        ),
        ("https://visit.example.org/a b", "invalid_join_url"),
        ("javascript:alert(1)", "invalid_join_url"),
    ] {
        let err = h
            .handle(&scheduled_with(Some(bad), None), "2026-03-01T12:00:00Z")
            .await
            .unwrap_err();
        assert_eq!(err.reason, reason, "{bad}");
        assert!(!err.is_retryable());
        assert!(
            !err.to_string().contains("evil"),
            "values are not quoted: {err}"
        );
    }
    for link_like in [
        "Acme www.evil.example",
        "Join at evil.example/x",
        "https://x.example",
    ] {
        let err = h
            .handle(
                &scheduled_with(None, Some(link_like)),
                "2026-03-01T12:00:00Z",
            )
            .await
            .unwrap_err();
        assert_eq!(err.reason, "invalid_clinic_name", "{link_like}");
    }
    h.handle(
        &scheduled_with(None, Some("St. Mary's Clinic, Dr. Lee")),
        "2026-03-01T12:00:00Z",
    )
    .await
    .unwrap();
    let long = "C".repeat(81);
    let err = h
        .handle(&scheduled_with(None, Some(&long)), "2026-03-01T12:00:00Z")
        .await
        .unwrap_err();
    assert_eq!(err.reason, "invalid_clinic_name");
    // Without an allow-list any https host is accepted.
    let open = Harness::new();
    open.handle(
        &scheduled_with(Some("https://any.example.net/x"), None),
        "2026-03-01T12:00:00Z",
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn chime_events_of_meetings_that_are_not_sessions_are_ignored_not_dead_lettered() {
    let h = Harness::new();
    for meeting in [
        serde_json::json!("not a session id!"),
        serde_json::json!(null),
    ] {
        let mut body: serde_json::Value =
            serde_json::from_str(&chime("chime:MeetingEnded", "")).unwrap();
        body["detail"]["externalMeetingId"] = meeting;
        let outcome = h
            .handle(&body.to_string(), "2026-03-01T12:00:00Z")
            .await
            .unwrap();
        assert_eq!(outcome, SessionOutcome::default());
    }
    assert!(h.store.get("s-1").is_none());
}

#[tokio::test]
async fn a_moved_visit_tells_the_patient_the_new_time_once_and_new_bookings_on_request() {
    let h = Harness::new();
    h.handle(
        &scheduled(1, "2026-03-10T15:00:00Z", "sms"),
        "2026-03-01T12:00:00Z",
    )
    .await
    .unwrap();
    assert!(
        h.notifications.enqueued.lock().unwrap().is_empty(),
        "no confirmation unless asked"
    );
    for _ in 0..2 {
        h.handle(
            &rescheduled(2, "2026-03-11T15:00:00Z"),
            "2026-03-01T12:05:00Z",
        )
        .await
        .unwrap();
    }
    let enqueued = h.notifications.enqueued.lock().unwrap().clone();
    assert_eq!(enqueued.len(), 1, "a redelivered reschedule adds nothing");
    assert_eq!(enqueued[0].kind, NotificationKind::RescheduleNotice);
    assert_eq!(
        enqueued[0].appointment_start.as_deref(),
        Some("2026-03-11T15:00:00Z")
    );

    let confirming = Harness::with(&[("TELEPIPE_BOOKING_CONFIRMATION", "true")]);
    confirming
        .handle(
            &scheduled(1, "2026-03-10T15:00:00Z", "email"),
            "2026-03-01T12:00:00Z",
        )
        .await
        .unwrap();
    let enqueued = confirming.notifications.enqueued.lock().unwrap().clone();
    assert_eq!(enqueued.len(), 1);
    assert_eq!(enqueued[0].kind, NotificationKind::Confirmation);
}

#[tokio::test]
async fn a_cancellation_is_told_to_the_patient_once_and_a_past_one_not_at_all() {
    let h = Harness::new();
    h.handle(
        &scheduled(1, "2026-03-10T15:00:00Z", "sms"),
        "2026-03-01T12:00:00Z",
    )
    .await
    .unwrap();
    for version in [3, 3, 4] {
        h.handle(
            &simple("Session Cancelled", version),
            "2026-03-02T12:00:00Z",
        )
        .await
        .unwrap();
    }
    let enqueued = h.notifications.enqueued.lock().unwrap().clone();
    assert_eq!(enqueued.len(), 1);
    assert_eq!(enqueued[0].kind, NotificationKind::CancellationNotice);

    let late = Harness::new();
    late.handle(
        &scheduled(1, "2026-03-10T15:00:00Z", "sms"),
        "2026-03-01T12:00:00Z",
    )
    .await
    .unwrap();
    late.handle(&simple("Session Cancelled", 3), "2026-03-10T16:00:00Z")
        .await
        .unwrap();
    assert!(late.notifications.enqueued.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_local_time_booking_without_a_clinician_reminds_the_patient_only() {
    let h = Harness::with(&[("TELEPIPE_CLINIC_TIME_ZONE", "America/New_York")]);
    let booked = envelope(
        "Appointment Booked",
        serde_json::json!({"session_id": "s-1", "version": 1, "date": "2026-03-10", "time": "11:00",
            "duration_minutes": 20, "patient": {"reference": "p-1", "channel": "sms", "address": "+12025550143"}}),
    );
    h.handle(&booked, "2026-03-01T12:00:00Z").await.unwrap();
    let state = h.state();
    // 11:00 in New York on March 10 (EDT since March 8) is 15:00 UTC.
    assert_eq!(
        state.timing.as_ref().unwrap().start,
        ts("2026-03-10T15:00:00Z")
    );
    assert!(state.booking.as_ref().unwrap().clinician.is_none());
    assert_eq!(h.scheduled_local(), ["03-09 11:00", "03-10 10:00"]);
    // The patient waiting (a platform's "waiting" status) alerts no one: no clinician.
    let waiting = envelope(
        "Session Status Changed",
        serde_json::json!({"session_id": "s-1", "version": 2, "status": "waiting"}),
    );
    h.handle(&waiting, "2026-03-10T14:58:00Z").await.unwrap();
    assert!(h.notifications.enqueued.lock().unwrap().is_empty());
    // Without a clinic zone the local time cannot be placed: a permanent, named error.
    let zoneless = Harness::new();
    let err = zoneless
        .handle(&booked, "2026-03-01T12:00:00Z")
        .await
        .unwrap_err();
    assert_eq!(err.reason, "no_time_zone");
}

#[tokio::test]
async fn platform_statuses_drive_the_waiting_room_and_the_start() {
    let h = Harness::new();
    h.handle(
        &scheduled(1, "2026-03-10T15:00:00Z", "sms"),
        "2026-03-01T12:00:00Z",
    )
    .await
    .unwrap();
    let status = |version: u64, status: &str| {
        envelope(
            "Session Status Changed",
            serde_json::json!({"session_id": "s-1", "version": version, "status": status}),
        )
    };
    h.handle(&status(2, "waiting"), "2026-03-10T14:58:00Z")
        .await
        .unwrap();
    let alerts = h.notifications.enqueued.lock().unwrap().clone();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].kind, NotificationKind::WaitingRoomAlert);
    let admitted = envelope(
        "Waiting Room Admitted",
        serde_json::json!({"session_id": "s-1", "version": 3}),
    );
    h.handle(&admitted, "2026-03-10T15:01:00Z").await.unwrap();
    assert!(h.state().admitted);
    h.handle(&status(4, "ended"), "2026-03-10T15:30:00Z")
        .await
        .unwrap();
    assert!(h.state().has_ended());
}
