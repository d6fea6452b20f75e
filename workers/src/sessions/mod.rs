//! The `sessions` stage: session-state events become durable session state, one-time
//! reminder schedules, waiting-room alerts and recording expectations.
//!
//! Per message: one state read, the input applied (`state`), the schedules reconciled
//! against what the reminder policy (`policy`) wants, notifications due now enqueued,
//! events published, then one conditional state write. The write comes last and is the
//! commit point: if anything before it fails, or another consumer wrote the session in
//! between, the message is retried and every step before it is idempotent (schedule
//! names and event ids are deterministic, alerts carry intent ids the notifier
//! deduplicates). A schedule orphaned by a lost race still cannot notify wrongly: the
//! notifier re-reads the session before sending.

mod config;
pub mod policy;
/// The stored state of a session (its own module, below the ports that store it).
pub use crate::session_state as state;

use crate::error::Reason;
use crate::error::{PortResultExt, StageError};
use crate::ports::{
    EventPublisher, NotificationQueue, OneTimeSchedule, OutgoingEvent, ScheduleCreated,
    ScheduleTarget, Scheduler, SessionStore,
};
pub use config::{SchedulerConfig, SessionsAwsConfig, SessionsConfig};
use jiff::{SignedDuration, Timestamp};
use policy::plan_reminders;
use state::{Booking, SessionState, Timing};
use std::collections::BTreeSet;
use telepipe_events::ids::{digest_hex, SessionId};
use telepipe_events::notify::{
    CancelReason, NotificationKind, NotificationRequest, Recipient, RecordingMissing,
    ReminderScheduled, RemindersCancelled,
};
use telepipe_events::pipeline::{schema_version, PipelineEvent};
use telepipe_events::sessions::{parse_session_message, ChimeChange, RecordingCheck, SessionInput};
use tracing::{info, warn};

/// The stage name used in dead letters, metrics and logs.
pub const STAGE: &str = "sessions";

/// The ports `sessions` touches.
pub struct SessionsPorts<'a, St, Sc, Q, P> {
    pub store: &'a St,
    pub scheduler: &'a Sc,
    pub notifications: &'a Q,
    pub events: &'a P,
}

/// What one message led to (for logs, tests and the benchmark).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionOutcome {
    /// False when the message changed nothing (a duplicate, a stale version, an ignored type).
    pub state_written: bool,
    pub schedules_created: usize,
    pub schedules_deleted: usize,
    pub notifications_enqueued: usize,
    pub events_published: usize,
}

/// Something applying an input asks the stage to do besides changing state.
enum Effect {
    Notify(NotificationRequest),
    ReportRecordingMissing,
    /// The meeting capture failed or was empty: no recording will come.
    ReportCaptureFailed(telepipe_events::capture::CaptureFailure),
}

/// Handles one sessions-queue message at time `now`.
pub async fn handle_message<St, Sc, Q, P>(
    ports: &SessionsPorts<'_, St, Sc, Q, P>,
    config: &SessionsConfig,
    body: &str,
    now: Timestamp,
) -> Result<SessionOutcome, StageError>
where
    St: SessionStore,
    Sc: Scheduler,
    Q: NotificationQueue,
    P: EventPublisher,
{
    let input = parse_session_message(body, &config.sessions_source)
        .map_err(|err| StageError::permanent(Reason::MalformedSessionEvent, err.to_string()))?;
    let Some(raw_id) = input.session_id() else {
        info!(input = ?input_kind(&input), "ignored");
        return Ok(SessionOutcome::default());
    };
    let session = match SessionId::parse(raw_id) {
        Ok(session) => session,
        // A Chime meeting that is not a telepipe session (its ExternalMeetingId is some
        // other id): not ours, acknowledged without a dead letter.
        Err(_) if matches!(input, SessionInput::Chime(_)) => {
            crate::metrics::ignored(STAGE, "not_a_session");
            info!(
                input = input_kind(&input),
                "ignored: meeting is not a session"
            );
            return Ok(SessionOutcome::default());
        }
        Err(err) => {
            return Err(StageError::permanent(
                Reason::InvalidSessionId,
                err.to_string(),
            ))
        }
    };
    let context = || format!("session={}", session.as_str());
    tracing::Span::current().record("session_id", session.as_str());

    let stored = ports.store.load(session.as_str()).await.context(context)?;
    let (mut state, revision) = match stored {
        Some(stored) => (stored.state, Some(stored.revision)),
        None => (SessionState::new(session.as_str()), None),
    };
    let before = state.clone();
    let effects = apply(&mut state, &input, config, now)?;
    let mut outcome = SessionOutcome::default();
    let mut events = Vec::new();

    reconcile_reminders(
        ports,
        config,
        &mut state,
        &before,
        now,
        &mut outcome,
        &mut events,
    )
    .await?;
    schedule_recording_check(ports, config, &mut state, &mut outcome).await?;

    for effect in effects {
        match effect {
            Effect::Notify(request) => {
                ports
                    .notifications
                    .enqueue(&request)
                    .await
                    .context(context)?;
                outcome.notifications_enqueued += 1;
            }
            Effect::ReportRecordingMissing => {
                let waited = config.recording_grace.as_mins().max(0) as u32;
                events.push(OutgoingEvent::from_event(&RecordingMissing::new(
                    session.as_str(),
                    waited,
                )));
            }
            Effect::ReportCaptureFailed(reason) => {
                events.push(OutgoingEvent::from_event(&RecordingMissing::capture(
                    session.as_str(),
                    reason,
                )));
            }
        }
    }
    for event in &events {
        ports.events.publish(event).await.context(context)?;
    }
    outcome.events_published = events.len();

    if state != before {
        ports.store.save(&state, revision).await.context(context)?;
        outcome.state_written = true;
    }
    info!(
        input = input_kind(&input),
        state_written = outcome.state_written,
        schedules_created = outcome.schedules_created,
        schedules_deleted = outcome.schedules_deleted,
        notifications = outcome.notifications_enqueued,
        "session updated"
    );
    Ok(outcome)
}

fn input_kind(input: &SessionInput) -> &'static str {
    match input {
        SessionInput::Scheduled(_) => "scheduled",
        SessionInput::Booked(_) => "booked",
        SessionInput::PatientWaiting { .. } => "patient_waiting",
        SessionInput::Rescheduled(_) => "rescheduled",
        SessionInput::Cancelled(_) => "cancelled",
        SessionInput::WaitingRoomJoined(_) => "waiting_room_joined",
        SessionInput::Started(_) => "started",
        SessionInput::Ended(_) => "ended",
        SessionInput::Chime(chime) => match chime.change {
            ChimeChange::MeetingStarted => "chime_meeting_started",
            ChimeChange::MeetingEnded => "chime_meeting_ended",
            ChimeChange::AttendeeJoined => "chime_attendee_joined",
            ChimeChange::AttendeeLeft => "chime_attendee_left",
        },
        SessionInput::RecordingArrived { .. } => "recording_arrived",
        SessionInput::RecordingCheck(_) => "recording_check",
        SessionInput::CaptureFailed { .. } => "capture_failed",
        SessionInput::Ignored { .. } => "ignored",
    }
}

fn parse_start(start: &str) -> Result<Timestamp, StageError> {
    start.parse().map_err(|_| {
        StageError::permanent(Reason::InvalidStart, "start is not RFC 3339 with an offset")
    })
}

/// The longest clinic name a message may carry (SMS segments are 160 characters).
pub const MAX_CLINIC_NAME_CHARS: usize = 80;
/// The longest join link a message may carry.
pub const MAX_JOIN_URL_BYTES: usize = 512;

/// Refuses what would let a publisher put arbitrary links or text into patients' messages:
/// a `join_url` that is not https on an allowed host (empty `hosts` = any host), or a
/// clinic name past [`MAX_CLINIC_NAME_CHARS`]. Errors never quote the values.
pub fn check_booking_text(
    join_url: Option<&str>,
    clinic_name: Option<&str>,
    hosts: &[String],
) -> Result<(), StageError> {
    if let Some(url) = join_url {
        let invalid = |why: &str| StageError::permanent(Reason::InvalidJoinUrl, why.to_owned());
        if url.len() > MAX_JOIN_URL_BYTES
            || url.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                "join_url is too long or holds spaces or control characters",
            ));
        }
        let Some(rest) = url.strip_prefix("https://") else {
            return Err(invalid("join_url must be https"));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(invalid("join_url must not carry credentials"));
        }
        let host = authority
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(authority, |(host, _)| host)
            .to_ascii_lowercase();
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Err(invalid("join_url has no valid host"));
        }
        if !hosts.is_empty() && !hosts.contains(&host) {
            return Err(invalid("join_url host is not in TELEPIPE_JOIN_URL_HOSTS"));
        }
    }
    if let Some(name) = clinic_name {
        // A name, not a way around the join_url allow-list: no scheme, no `www.`, no word
        // shaped like a host (`evil.example`).
        let link_like = name.contains("://")
            || name.to_ascii_lowercase().contains("www.")
            || name.split_whitespace().any(|word| {
                word.split('.').filter(|part| !part.is_empty()).count() >= 2
                    && word
                        .trim_matches(|c: char| !c.is_alphanumeric())
                        .contains('.')
                    && !word.ends_with('.')
            });
        if link_like {
            return Err(StageError::permanent(
                Reason::InvalidClinicName,
                "clinic_name must not hold a link or a host name",
            ));
        }
        if name.chars().count() > MAX_CLINIC_NAME_CHARS || name.chars().any(char::is_control) {
            return Err(StageError::permanent(
                Reason::InvalidClinicName,
                format!("clinic_name longer than {MAX_CLINIC_NAME_CHARS} characters or with control characters"),
            ));
        }
    }
    Ok(())
}

fn check_zone(zone: &str) -> Result<(), StageError> {
    jiff::tz::TimeZone::get(zone).map(|_| ()).map_err(|_| {
        StageError::permanent(
            Reason::InvalidTimeZone,
            "patient_time_zone is not an IANA zone",
        )
    })
}

/// Applies one input to the state; returns what else must happen.
fn apply(
    state: &mut SessionState,
    input: &SessionInput,
    config: &SessionsConfig,
    now: Timestamp,
) -> Result<Vec<Effect>, StageError> {
    let mut effects = Vec::new();
    match input {
        SessionInput::Scheduled(event) => {
            let start = parse_start(&event.start)?;
            check_zone(&event.patient_time_zone)?;
            check_booking_text(
                event.join_url.as_deref(),
                event.clinic_name.as_deref(),
                &config.join_url_hosts,
            )?;
            let booking = Booking {
                patient: event.patient.clone(),
                clinician: Some(event.clinician.clone()),
                locale: event.locale.clone(),
                clinic_name: event.clinic_name.clone(),
                join_url: event.join_url.clone(),
            };
            let timing = Timing {
                start,
                duration_minutes: event.duration_minutes,
                time_zone: event.patient_time_zone.clone(),
            };
            book(state, config, booking, timing, event.version);
        }
        SessionInput::Booked(event) => {
            check_booking_text(
                event.join_url.as_deref(),
                event.clinic_name.as_deref(),
                &config.join_url_hosts,
            )?;
            let zone = match (&event.patient_time_zone, &config.clinic_time_zone) {
                (Some(zone), _) | (None, Some(zone)) => zone.clone(),
                (None, None) => {
                    return Err(StageError::permanent(
                        Reason::NoTimeZone,
                        "Appointment Booked gives a local time: set TELEPIPE_CLINIC_TIME_ZONE",
                    ))
                }
            };
            check_zone(&zone)?;
            let start = local_start(&event.date, &event.time, &zone)?;
            let booking = Booking {
                patient: event.patient.clone(),
                clinician: None,
                locale: event.locale.clone().unwrap_or_else(|| "en".to_owned()),
                clinic_name: event.clinic_name.clone(),
                join_url: event.join_url.clone(),
            };
            let timing = Timing {
                start,
                duration_minutes: event.duration_minutes,
                time_zone: zone,
            };
            book(state, config, booking, timing, event.version);
        }
        SessionInput::PatientWaiting { .. } => {
            if state.booking.is_none() {
                return Err(StageError::retryable(
                    Reason::SessionNotBooked,
                    format!(
                        "session={}: patient waiting before the booking arrived",
                        state.session_id
                    ),
                ));
            }
            effects.extend(waiting_room_alert(state, config, now).map(Effect::Notify));
        }
        SessionInput::Rescheduled(event) => {
            let start = parse_start(&event.start)?;
            if let Some(zone) = &event.patient_time_zone {
                check_zone(zone)?;
            }
            if event.version > state.timing_version {
                let zone = event
                    .patient_time_zone
                    .clone()
                    .or_else(|| state.timing.as_ref().map(|t| t.time_zone.clone()))
                    .unwrap_or_default();
                state.timing = Some(Timing {
                    start,
                    duration_minutes: event.duration_minutes,
                    time_zone: zone,
                });
                state.timing_version = event.version;
            }
        }
        SessionInput::Cancelled(event) => {
            state.cancelled_version = Some(state.cancelled_version.unwrap_or(0).max(event.version));
            effects.extend(cancellation_notice(state, now).map(Effect::Notify));
        }
        SessionInput::Started(_) => state.admitted = true,
        SessionInput::Ended(_) => {
            state.ended_at.get_or_insert(now);
        }
        SessionInput::WaitingRoomJoined(event) => {
            if waiting_role(state, &event.participant_reference)? == Some(Recipient::Patient) {
                effects.extend(waiting_room_alert(state, config, now).map(Effect::Notify));
            }
        }
        SessionInput::Chime(chime) => match chime.change {
            ChimeChange::MeetingStarted => state.meeting_started = true,
            ChimeChange::MeetingEnded => {
                state.ended_at.get_or_insert(now);
            }
            ChimeChange::AttendeeJoined => {
                let reference = chime.attendee_reference.as_deref().unwrap_or("");
                match waiting_role(state, reference)? {
                    Some(Recipient::Clinician) => state.clinician_present = true,
                    Some(Recipient::Patient) => {
                        effects.extend(waiting_room_alert(state, config, now).map(Effect::Notify))
                    }
                    None => {}
                }
            }
            // Presence only ever becomes true: a leave arriving before its join must not
            // turn an alert on, and a clinician stepping out is not a waiting patient.
            ChimeChange::AttendeeLeft => {}
        },
        SessionInput::RecordingArrived { .. } => state.recording_arrived = true,
        SessionInput::RecordingCheck(_) => {
            if state.has_ended() && !state.recording_arrived && !state.recording_missing_reported {
                state.recording_missing_reported = true;
                effects.push(Effect::ReportRecordingMissing);
            }
        }
        // Treated like a recording that never arrived, reported now rather than after
        // the grace period, and still only once per session.
        SessionInput::CaptureFailed { reason, .. } => {
            if !state.recording_arrived && !state.recording_missing_reported {
                state.recording_missing_reported = true;
                effects.push(Effect::ReportCaptureFailed(*reason));
            }
        }
        SessionInput::Ignored { .. } => {}
    }
    Ok(effects)
}

/// Applies a booking (either shape): who and how to reach them, and when, each kept only
/// if newer than what set it last.
fn book(
    state: &mut SessionState,
    config: &SessionsConfig,
    booking: Booking,
    timing: Timing,
    version: u64,
) {
    if version > state.booking_version {
        // The number's keyed hash finds this session when the patient texts back.
        state.patient_phone_key = match (&config.phone_key, booking.patient.channel) {
            (Some(key), telepipe_events::sessions::ContactChannel::Sms) => {
                Some(key.digest(&booking.patient.address))
            }
            _ => None,
        };
        state.booking = Some(booking);
        state.booking_version = version;
    }
    if version > state.timing_version {
        state.timing = Some(timing);
        state.timing_version = version;
    } else if let Some(current) = state.timing.as_mut().filter(|t| t.time_zone.is_empty()) {
        // A newer reschedule arrived first without a zone: the booking supplies it.
        current.time_zone = timing.time_zone;
    }
}

/// The instant of a local date (`YYYY-MM-DD`) and time (`HH:MM`) in an IANA zone; in a
/// repeated hour the earlier one, in a skipped hour the time after the gap.
fn local_start(date: &str, time: &str, zone: &str) -> Result<Timestamp, StageError> {
    let bad = || {
        StageError::permanent(
            Reason::InvalidLocalTime,
            "date must be YYYY-MM-DD and time HH:MM",
        )
    };
    let date: jiff::civil::Date = date.parse().map_err(|_| bad())?;
    let time: jiff::civil::Time = time.parse().map_err(|_| bad())?;
    let tz = jiff::tz::TimeZone::get(zone).map_err(|_| bad())?;
    date.to_datetime(time)
        .to_zoned(tz)
        .map(|zoned| zoned.timestamp())
        .map_err(|_| bad())
}

/// Pure: the notice a booking change owes the patient: a confirmation of a new booking
/// (when the deployment asks for it) or the new time of a moved visit. One intent per
/// session and start time, so redeliveries and reordered events send it once.
fn patient_notice(
    state: &SessionState,
    before: &SessionState,
    config: &SessionsConfig,
    now: Timestamp,
) -> Option<NotificationRequest> {
    let (booking, timing) = (state.booking.as_ref()?, state.timing.as_ref()?);
    if timing.start <= now || state.reminders_are_moot() {
        return None;
    }
    let kind = match (&before.booking, &before.timing) {
        (Some(_), Some(old)) if old.start != timing.start => NotificationKind::RescheduleNotice,
        (Some(_), Some(_)) => return None,
        _ if config.booking_confirmation => NotificationKind::Confirmation,
        _ => return None,
    };
    Some(NotificationRequest::new(
        &state.session_id,
        kind,
        Recipient::Patient,
        booking.patient.channel,
        None,
        Some(timing.start.to_string()),
        0,
    ))
}

/// The patient's cancellation notice, once per session, for a visit still ahead (a late
/// cancellation of a past visit tells the patient nothing new). A cancellation that
/// arrives before the booking sends none: there is no one to tell yet.
fn cancellation_notice(state: &mut SessionState, now: Timestamp) -> Option<NotificationRequest> {
    if state.cancellation_notified {
        return None;
    }
    let booking = state.booking.as_ref()?;
    let timing = state.timing.as_ref()?;
    if timing.start <= now {
        return None;
    }
    // One intent per session, whatever the start is when it is computed: a retried
    // cancellation that meets a moved start must not make a second notice.
    let request = NotificationRequest::new(
        &state.session_id,
        NotificationKind::CancellationNotice,
        Recipient::Patient,
        booking.patient.channel,
        None,
        None,
        0,
    );
    state.cancellation_notified = true;
    Some(request)
}

/// The role of a participant joining; retryable while the booking is unknown (its
/// `Session Scheduled` may simply not have arrived yet), `None` for strangers.
fn waiting_role(state: &SessionState, reference: &str) -> Result<Option<Recipient>, StageError> {
    if state.booking.is_none() {
        return Err(StageError::retryable(
            Reason::SessionNotBooked,
            format!(
                "session={}: participant joined before Session Scheduled arrived",
                state.session_id
            ),
        ));
    }
    Ok(state.role_of(reference))
}

/// The clinician alert for a waiting patient, unless the clinician is there already, the
/// session is over, or an alert went out within the window.
fn waiting_room_alert(
    state: &mut SessionState,
    config: &SessionsConfig,
    now: Timestamp,
) -> Option<NotificationRequest> {
    if state.is_cancelled() || state.admitted || state.clinician_present || state.has_ended() {
        return None;
    }
    if let Some(last) = state.last_waiting_alert {
        if now.duration_since(last) < config.waiting_alert_window {
            return None;
        }
    }
    let clinician = state.booking.as_ref()?.clinician.as_ref()?;
    state.waiting_alerts += 1;
    state.last_waiting_alert = Some(now);
    Some(NotificationRequest::new(
        &state.session_id,
        NotificationKind::WaitingRoomAlert,
        Recipient::Clinician,
        clinician.channel,
        None,
        None,
        // Two consumers racing on the same join compute the same sequence: one intent.
        state.waiting_alerts,
    ))
}

#[allow(clippy::too_many_arguments)]
async fn reconcile_reminders<St, Sc, Q, P>(
    ports: &SessionsPorts<'_, St, Sc, Q, P>,
    config: &SessionsConfig,
    state: &mut SessionState,
    before: &SessionState,
    now: Timestamp,
    outcome: &mut SessionOutcome,
    events: &mut Vec<OutgoingEvent>,
) -> Result<(), StageError>
where
    Sc: Scheduler,
    Q: NotificationQueue,
{
    let context = || format!("session={}", state.session_id);
    let planned = match (&state.booking, &state.timing) {
        (Some(booking), Some(timing))
            if !state.reminders_are_moot() && !timing.time_zone.is_empty() =>
        {
            plan_reminders(&state.session_id, booking, timing, &config.policy)
                .map_err(|_| StageError::permanent(Reason::InvalidTimeZone, context()))?
        }
        _ => Vec::new(),
    };
    let wanted: BTreeSet<&str> = planned.iter().map(|p| p.name.as_str()).collect();

    let mut withdrawn = Vec::new();
    let stale: Vec<String> = state
        .schedules
        .keys()
        .filter(|name| !wanted.contains(name.as_str()))
        .cloned()
        .collect();
    for name in stale {
        let reminder = state.schedules.remove(&name).expect("listed above");
        // A schedule whose time has passed has fired and deleted itself.
        if reminder.fire_at > now {
            ports.scheduler.delete(&name).await.context(context)?;
            outcome.schedules_deleted += 1;
            withdrawn.push(name);
        }
    }

    let mut skipped_past = 0;
    let zone = state
        .timing
        .as_ref()
        .map(|t| t.time_zone.clone())
        .unwrap_or_default();
    for plan in &planned {
        if state.schedules.contains_key(&plan.name) {
            continue;
        }
        if plan.reminder.fire_at <= now {
            skipped_past += 1;
            continue;
        }
        let schedule = OneTimeSchedule {
            name: plan.name.clone(),
            fire_at: plan.reminder.fire_at,
            time_zone: zone.clone(),
            target: ScheduleTarget::Notifications,
            payload: serde_json::to_string(&plan.request).expect("requests serialize"),
        };
        let created = ports.scheduler.create(&schedule).await.context(context)?;
        if created == ScheduleCreated::Created {
            outcome.schedules_created += 1;
        }
        state
            .schedules
            .insert(plan.name.clone(), plan.reminder.clone());
        events.push(OutgoingEvent::from_event(&ReminderScheduled {
            schema_version: schema_version(),
            event_id: digest_hex(
                &[
                    ReminderScheduled::DETAIL_TYPE.as_bytes(),
                    plan.name.as_bytes(),
                ],
                16,
            ),
            session_id: state.session_id.clone(),
            intent_id: plan.request.intent_id.clone(),
            schedule_name: plan.name.clone(),
            kind: plan.reminder.kind,
            recipient: plan.reminder.recipient,
            channel: plan.reminder.channel,
            offset_minutes: plan.reminder.offset_minutes,
            moved_for_quiet_hours: plan.reminder.moved_for_quiet_hours,
        }));
    }

    if !withdrawn.is_empty() {
        let reason = if state.is_cancelled() {
            CancelReason::Cancelled
        } else if state.reminders_are_moot() {
            CancelReason::SessionStarted
        } else {
            CancelReason::Rescheduled
        };
        let joined = withdrawn.join(",");
        events.push(OutgoingEvent::from_event(&RemindersCancelled {
            schema_version: schema_version(),
            event_id: digest_hex(
                &[
                    RemindersCancelled::DETAIL_TYPE.as_bytes(),
                    joined.as_bytes(),
                ],
                16,
            ),
            session_id: state.session_id.clone(),
            reason,
            schedule_names: withdrawn,
        }));
    }

    let timing_changed = state.timing != before.timing || state.booking != before.booking;
    let mut confirmed = false;
    if config.policy.confirm_when_too_late && timing_changed && skipped_past > 0 {
        if let (Some(booking), Some(timing)) = (&state.booking, &state.timing) {
            if timing.start > now && !state.reminders_are_moot() {
                let request = NotificationRequest::new(
                    &state.session_id,
                    NotificationKind::Confirmation,
                    Recipient::Patient,
                    booking.patient.channel,
                    None,
                    Some(timing.start.to_string()),
                    0,
                );
                ports
                    .notifications
                    .enqueue(&request)
                    .await
                    .context(context)?;
                outcome.notifications_enqueued += 1;
                confirmed = true;
            }
        }
    }
    if let Some(request) = patient_notice(state, before, config, now).filter(|_| !confirmed) {
        ports
            .notifications
            .enqueue(&request)
            .await
            .context(context)?;
        outcome.notifications_enqueued += 1;
    }
    if skipped_past > 0 {
        info!(skipped_past, "reminder offsets already past were skipped");
    }
    Ok(())
}

/// After a session ends without its recording, the worker schedules a check to itself.
async fn schedule_recording_check<St, Sc, Q, P>(
    ports: &SessionsPorts<'_, St, Sc, Q, P>,
    config: &SessionsConfig,
    state: &mut SessionState,
    outcome: &mut SessionOutcome,
) -> Result<(), StageError>
where
    Sc: Scheduler,
{
    let Some(ended_at) = state.ended_at else {
        return Ok(());
    };
    if state.recording_arrived
        || state.recording_check.is_some()
        || state.recording_missing_reported
    {
        return Ok(());
    }
    let name = format!(
        "tp-rc-{}",
        digest_hex(&[b"recording-check", state.session_id.as_bytes()], 16)
    );
    let fire_at = ended_at.checked_add(config.recording_grace).map_err(|_| {
        StageError::permanent(Reason::InvalidTime, format!("session={}", state.session_id))
    })?;
    let zone = state
        .timing
        .as_ref()
        .map(|t| t.time_zone.as_str())
        .filter(|z| !z.is_empty())
        .unwrap_or("UTC");
    let schedule = OneTimeSchedule {
        name: name.clone(),
        fire_at,
        time_zone: zone.to_owned(),
        target: ScheduleTarget::Sessions,
        payload: serde_json::to_string(&RecordingCheck::new(&state.session_id))
            .expect("checks serialize"),
    };
    if ports
        .scheduler
        .create(&schedule)
        .await
        .context(|| format!("session={}", state.session_id))?
        == ScheduleCreated::Created
    {
        outcome.schedules_created += 1;
    } else {
        warn!("recording check existed already (a redelivery)");
    }
    state.recording_check = Some(name);
    Ok(())
}

/// The grace period after a session ends before its recording is declared missing.
pub fn default_recording_grace() -> SignedDuration {
    SignedDuration::from_mins(120)
}

#[cfg(test)]
mod tests;
