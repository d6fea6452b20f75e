//! The `notifier` stage: a notification request becomes at most one SMS or email.
//!
//! Per message: the session is re-read, and a request the session no longer wants
//! (cancelled, moved, started, ended) is skipped and published as skipped. Otherwise the
//! intent is claimed in the ledger (a conditional create) before sending and completed
//! after. The design errs on the side of **not sending twice**: a claim found still open
//! after its lease means an earlier attempt crashed between sending and recording, and
//! the message may have gone out, so it is not sent again but published as
//! `Notification Failed` with reason `outcome_unknown` for a person to look at. Patients
//! tolerate a missed reminder (the platform still shows the appointment) better than a
//! clinic tolerates duplicate texts, which erode trust and opt-outs. Only failures that
//! prove the provider did not accept the message (a throttling answer, a connection
//! refused before anything was written) release the claim so a retry can send; a timeout
//! or 5xx after the request left ends as `outcome_unknown` at once ([`after_send_failure`]).
//! The SMS and email clients run with SDK retries off, so nothing resends underneath.

pub mod address;
mod config;
pub mod templates;

use crate::error::Reason;
use crate::error::{ErrorClass, PortResultExt, StageError};
use crate::ports::{
    Claim, EventPublisher, IntentLedger, IntentOutcome, MessageSender, OutboundMessage,
    OutgoingEvent, SessionStore, Suppressions,
};
use crate::session_state::SessionState;
pub use config::{NotifierAwsConfig, NotifierConfig, SmsProvider, TwilioConfig};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use telepipe_events::notify::{
    outcome_event_id, NotificationFailed, NotificationKind, NotificationRef, NotificationRequest,
    NotificationSent, NotificationSkipped, SkipReason,
};
use telepipe_events::pipeline::{schema_version, PipelineEvent};
use telepipe_events::sessions::ContactChannel;
use templates::{builtin, Language, MessageContext};
use tracing::{info, warn};

/// The stage name used in dead letters, metrics and logs.
pub const STAGE: &str = "notifier";

/// The ports `notifier` touches.
pub struct NotifierPorts<'a, St, L, S, P, Su> {
    pub store: &'a St,
    pub ledger: &'a L,
    pub sender: &'a S,
    pub events: &'a P,
    /// Numbers that opted out (STOP, or the provider said so): checked before every SMS.
    pub suppressions: &'a Su,
}

/// What became of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyOutcome {
    Sent {
        provider: String,
    },
    Skipped(SkipReason),
    /// An earlier attempt may have sent it; not sent again.
    OutcomeUnknown,
}

/// Handles one notifications-queue message at `now`. `attempt` identifies this delivery
/// attempt (message id and receive count): it owns the claim it makes.
pub async fn handle_message<St, L, S, P, Su>(
    ports: &NotifierPorts<'_, St, L, S, P, Su>,
    config: &NotifierConfig,
    body: &str,
    attempt: &str,
    now: Timestamp,
) -> Result<NotifyOutcome, StageError>
where
    St: SessionStore,
    L: IntentLedger,
    S: MessageSender,
    P: EventPublisher,
    Su: Suppressions,
{
    let request: NotificationRequest = serde_json::from_str(body).map_err(|err| {
        StageError::permanent(
            Reason::MalformedNotificationRequest,
            telepipe_events::sessions::redact_quoted(&err.to_string()),
        )
    })?;
    let span = tracing::Span::current();
    span.record("session_id", request.session_id.as_str());
    let context = || {
        format!(
            "session={} intent={}",
            request.session_id, request.intent_id
        )
    };
    let reference = NotificationRef::from(&request);

    let state = ports
        .store
        .load(&request.session_id)
        .await
        .context(context)?;
    let state = match state {
        Some(stored) => stored.state,
        None => return skip(ports, &reference, SkipReason::UnknownSession).await,
    };
    if let Some(reason) = skip_reason(&state, &request) {
        return skip(ports, &reference, reason).await;
    }
    let booking = state
        .booking
        .as_ref()
        .expect("skip_reason checks the booking");
    // No such recipient any more (a booking without a clinician), or another channel now.
    let Some(participant) = booking
        .participant(request.recipient)
        .filter(|p| p.channel == request.channel)
    else {
        return skip(ports, &reference, SkipReason::ContactChanged).await;
    };
    let valid = match request.channel {
        ContactChannel::Sms => address::is_e164(&participant.address),
        ContactChannel::Email => address::is_email(&participant.address),
    };
    if !valid {
        let err = StageError::permanent(
            Reason::InvalidAddress,
            format!("{} ({} address)", context(), request.channel.as_str()),
        );
        return fail(ports, &reference, err).await;
    }
    // An opted-out number gets no text, and the provider is not even asked.
    let phone_key = (request.channel == ContactChannel::Sms)
        .then(|| {
            config
                .phone_key
                .as_ref()
                .map(|key| key.digest(&participant.address))
        })
        .flatten();
    if let Some(key) = &phone_key {
        if ports
            .suppressions
            .is_suppressed(key, ContactChannel::Sms)
            .await
            .context(context)?
        {
            return skip(ports, &reference, SkipReason::OptedOut).await;
        }
    }
    let message = render(
        &state,
        &request,
        config,
        &participant.address,
        participant.locale.as_deref().unwrap_or(&booking.locale),
    )
    .map_err(|err| StageError::permanent(err, context()))?;

    match ports
        .ledger
        .claim(&request.session_id, &request.intent_id, attempt, now)
        .await
        .context(context)?
    {
        Claim::Claimed => {}
        Claim::Completed(IntentOutcome::Sent { provider, .. }) => {
            // Sent by an earlier delivery that may have died before publishing.
            publish(ports, &sent_event(&reference, &provider)).await?;
            return Ok(NotifyOutcome::Skipped(SkipReason::AlreadySent));
        }
        // Finished earlier without being sent (failed, or outcome unknown): nothing is sent,
        // but the failure is published again (same event id) so a delivery that died
        // before announcing it still reaches a person.
        Claim::Completed(IntentOutcome::Failed { reason }) => {
            publish(
                ports,
                &failed_event(&reference, &reason, ErrorClass::Permanent),
            )
            .await?;
            return Ok(NotifyOutcome::OutcomeUnknown);
        }
        Claim::Completed(IntentOutcome::Unknown) => {
            publish(
                ports,
                &failed_event(&reference, "outcome_unknown", ErrorClass::Permanent),
            )
            .await?;
            return Ok(NotifyOutcome::OutcomeUnknown);
        }
        Claim::InFlight { claimed_at } => {
            if now.duration_since(claimed_at) < config.claim_lease {
                return Err(StageError::retryable(
                    Reason::NotificationInFlight,
                    context(),
                ));
            }
            warn!(intent_id = %request.intent_id, "an earlier attempt claimed this notification and never completed it; not sending again");
            return outcome_unknown(ports, &request, &reference).await;
        }
    }

    match ports.sender.send(&message).await {
        Ok(receipt) => {
            let outcome = IntentOutcome::Sent {
                provider: receipt.provider.to_owned(),
                provider_message_id: receipt.provider_message_id,
            };
            // If this write fails the claim stays open and the lease rule above applies:
            // the message is not sent a second time.
            ports
                .ledger
                .complete(&request.session_id, &request.intent_id, &outcome)
                .await
                .context(context)?;
            let mut entry = log_entry(&reference, "sent", None);
            entry.provider = Some(receipt.provider.to_owned());
            if let IntentOutcome::Sent {
                provider_message_id,
                ..
            } = &outcome
            {
                entry.provider_message_id = provider_message_id.clone();
            }
            ports.ledger.log(&entry).await.context(context)?;
            publish(ports, &sent_event(&reference, receipt.provider)).await?;
            crate::metrics::notification(request.channel.as_str(), "sent");
            info!(
                kind = request.kind.as_str(),
                channel = request.channel.as_str(),
                provider = receipt.provider,
                "notification sent"
            );
            Ok(NotifyOutcome::Sent {
                provider: receipt.provider.to_owned(),
            })
        }
        Err(err) if after_send_failure(&err) == AfterSendFailure::Release => {
            ports
                .ledger
                .release(&request.session_id, &request.intent_id, attempt)
                .await
                .context(context)?;
            Err(StageError::from_port(err, context()))
        }
        Err(err) if after_send_failure(&err) == AfterSendFailure::Unknown => {
            // The request may have been accepted: never resent, left for a person.
            warn!(intent_id = %request.intent_id, error = %err, "send outcome unknown; not sending again");
            outcome_unknown(ports, &request, &reference).await
        }
        Err(err) => {
            // The provider says the number opted out (Twilio 21610, SNS's opted-out
            // refusal): put it on the list so no later message asks again.
            if let Some(key) = phone_key.as_ref().filter(|_| is_opted_out_answer(&err)) {
                ports
                    .suppressions
                    .suppress(
                        key,
                        ContactChannel::Sms,
                        err.code.as_deref().unwrap_or("opted_out"),
                    )
                    .await
                    .context(context)?;
            }
            let reason = Reason::ProviderRejected(err.kind);
            ports
                .ledger
                .complete(
                    &request.session_id,
                    &request.intent_id,
                    &IntentOutcome::Failed {
                        reason: reason.to_string(),
                    },
                )
                .await
                .context(context)?;
            let mut failure = StageError::from_port(err, context());
            failure.reason = reason;
            fail(ports, &reference, failure).await
        }
    }
}

/// Whether a provider refused because the number opted out.
fn is_opted_out_answer(err: &crate::error::PortError) -> bool {
    matches!(
        err.code.as_deref(),
        Some("twilio:21610" | "OptedOut" | "OptedOutException" | "PhoneNumberOptedOut")
    )
}

/// What a failed send means for the intent's claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterSendFailure {
    /// Provably not accepted (a throttling answer, a connection refused before sending):
    /// the claim is released and the message retried.
    Release,
    /// It may have gone out (a timeout, a 5xx, a broken connection): never resent; the
    /// intent ends as `outcome_unknown` for a person to check.
    Unknown,
    /// The provider refused it for good (invalid number, not permitted): failed.
    Rejected,
}

/// Pure: sorts a send failure by what it proves about delivery.
pub fn after_send_failure(err: &crate::error::PortError) -> AfterSendFailure {
    use crate::error::PortErrorKind::*;
    if err.not_sent {
        return AfterSendFailure::Release;
    }
    match err.kind {
        Throttled | QuotaExceeded => AfterSendFailure::Release,
        Timeout | Unavailable | Other | Conflict => AfterSendFailure::Unknown,
        NotFound | AlreadyExists | InvalidRequest | AccessDenied => AfterSendFailure::Rejected,
    }
}

/// Why the session no longer wants this notification, if it does not.
fn skip_reason(state: &SessionState, request: &NotificationRequest) -> Option<SkipReason> {
    if state.booking.is_none() {
        return Some(SkipReason::UnknownSession);
    }
    match request.kind {
        // Wanted precisely because the session is cancelled (sent once per session).
        NotificationKind::CancellationNotice => return None,
        // An answer to the patient's own text: whatever the session's state.
        NotificationKind::Help => return None,
        _ => {}
    }
    if state.is_cancelled() {
        return Some(SkipReason::SessionCancelled);
    }
    if state.has_ended() {
        return Some(SkipReason::SessionEnded);
    }
    match request.kind {
        NotificationKind::Reminder
        | NotificationKind::Confirmation
        | NotificationKind::RescheduleNotice => {
            if state.admitted || state.meeting_started {
                return Some(SkipReason::SessionStarted);
            }
            let planned = request
                .appointment_start
                .as_deref()
                .and_then(|s| s.parse::<Timestamp>().ok());
            let current = state.timing.as_ref().map(|t| t.start);
            if planned.is_none() || planned != current {
                return Some(SkipReason::SessionMoved);
            }
        }
        NotificationKind::WaitingRoomAlert => {
            if state.admitted || state.clinician_present {
                return Some(SkipReason::SessionStarted);
            }
        }
        NotificationKind::CancellationNotice | NotificationKind::Help => {}
    }
    None
}

/// The message for `request`, worded in the recipient's language and the patient's zone.
fn render(
    state: &SessionState,
    request: &NotificationRequest,
    config: &NotifierConfig,
    to: &str,
    locale: &str,
) -> Result<OutboundMessage, Reason> {
    let booking = state.booking.as_ref().ok_or(Reason::UnknownSession)?;
    let timing = state.timing.as_ref().ok_or(Reason::SessionWithoutTime)?;
    let tz = TimeZone::get(&timing.time_zone).map_err(|_| Reason::InvalidTimeZone)?;
    let language = Language::from_locale(locale);
    let at = timing.start.to_zoned(tz);
    let (date, time) = language.date_and_time(&at);
    let join_link = booking
        .join_url
        .clone()
        .or_else(|| {
            config
                .join_url
                .as_ref()
                .map(|url| url.replace("{session_id}", &state.session_id))
        })
        .unwrap_or_else(|| language.no_link().to_owned());
    let context = MessageContext {
        clinic: booking
            .clinic_name
            .clone()
            .unwrap_or_else(|| config.clinic_name.clone()),
        date,
        time,
        zone: at.strftime("%Z").to_string(),
        join_link,
    };
    let templates = builtin(language, request.kind, request.channel);
    Ok(OutboundMessage {
        channel: request.channel,
        to: to.to_owned(),
        subject: templates.subject.map(|s| s.render(&context)),
        body: templates.body.render(&context),
        intent_id: request.intent_id.clone(),
    })
}

/// Closes an intent whose message may have gone out: recorded as unknown (never resent),
/// published as `Notification Failed` / `outcome_unknown` for a person to check, counted.
async fn outcome_unknown<St, L: IntentLedger, S, P: EventPublisher, Su>(
    ports: &NotifierPorts<'_, St, L, S, P, Su>,
    request: &NotificationRequest,
    reference: &NotificationRef,
) -> Result<NotifyOutcome, StageError> {
    ports
        .ledger
        .complete(
            &request.session_id,
            &request.intent_id,
            &IntentOutcome::Unknown,
        )
        .await
        .context(|| {
            format!(
                "session={} intent={}",
                request.session_id, request.intent_id
            )
        })?;
    log(ports, log_entry(reference, "outcome_unknown", None)).await?;
    publish(
        ports,
        &failed_event(reference, "outcome_unknown", ErrorClass::Permanent),
    )
    .await?;
    crate::metrics::notification(request.channel.as_str(), "outcome_unknown");
    Ok(NotifyOutcome::OutcomeUnknown)
}

async fn publish<St, L, S, P: EventPublisher, Su>(
    ports: &NotifierPorts<'_, St, L, S, P, Su>,
    event: &OutgoingEvent,
) -> Result<(), StageError> {
    ports
        .events
        .publish(event)
        .await
        .context(|| format!("event={}", event.event_id))
}

async fn skip<St, L: IntentLedger, S, P: EventPublisher, Su>(
    ports: &NotifierPorts<'_, St, L, S, P, Su>,
    reference: &NotificationRef,
    reason: SkipReason,
) -> Result<NotifyOutcome, StageError> {
    info!(
        reason = reason.as_str(),
        kind = reference.kind.as_str(),
        "notification skipped"
    );
    crate::metrics::notification(reference.channel.as_str(), "skipped");
    log(
        ports,
        log_entry(reference, "skipped", Some(reason.as_str())),
    )
    .await?;
    let event = NotificationSkipped {
        schema_version: schema_version(),
        event_id: outcome_event_id(NotificationSkipped::DETAIL_TYPE, &reference.intent_id),
        notification: reference.clone(),
        reason,
    };
    publish(ports, &OutgoingEvent::from_event(&event)).await?;
    Ok(NotifyOutcome::Skipped(reason))
}

/// Publishes the failure, then returns it so the message is dead-lettered with its reason.
async fn fail<St, L: IntentLedger, S, P: EventPublisher, Su>(
    ports: &NotifierPorts<'_, St, L, S, P, Su>,
    reference: &NotificationRef,
    err: StageError,
) -> Result<NotifyOutcome, StageError> {
    log(
        ports,
        log_entry(reference, "failed", Some(err.reason.as_str())),
    )
    .await?;
    publish(
        ports,
        &failed_event(reference, err.reason.as_str(), err.class),
    )
    .await?;
    crate::metrics::notification(reference.channel.as_str(), "failed");
    Err(err)
}

/// A notification log line for an outcome (ids, kinds, reason code; no address, no text).
fn log_entry(
    reference: &NotificationRef,
    outcome: &str,
    reason: Option<&str>,
) -> crate::ports::NotificationLogEntry {
    crate::ports::NotificationLogEntry {
        session_id: reference.session_id.clone(),
        intent_id: reference.intent_id.clone(),
        kind: reference.kind,
        recipient: reference.recipient,
        channel: reference.channel,
        outcome: outcome.to_owned(),
        reason: reason.map(str::to_owned),
        provider: None,
        provider_message_id: None,
        at_ms: jiff::Timestamp::now().as_millisecond(),
    }
}

async fn log<St, L: IntentLedger, S, P, Su>(
    ports: &NotifierPorts<'_, St, L, S, P, Su>,
    entry: crate::ports::NotificationLogEntry,
) -> Result<(), StageError> {
    ports.ledger.log(&entry).await.context(|| {
        format!(
            "session={} intent={} log",
            entry.session_id, entry.intent_id
        )
    })
}

fn sent_event(reference: &NotificationRef, provider: &str) -> OutgoingEvent {
    OutgoingEvent::from_event(&NotificationSent {
        schema_version: schema_version(),
        event_id: outcome_event_id(NotificationSent::DETAIL_TYPE, &reference.intent_id),
        notification: reference.clone(),
        provider: provider.to_owned(),
    })
}

fn failed_event(reference: &NotificationRef, reason: &str, class: ErrorClass) -> OutgoingEvent {
    OutgoingEvent::from_event(&NotificationFailed {
        schema_version: schema_version(),
        event_id: outcome_event_id(NotificationFailed::DETAIL_TYPE, &reference.intent_id),
        notification: reference.clone(),
        reason: reason.to_owned(),
        error_class: class.as_str().to_owned(),
    })
}

#[cfg(test)]
mod tests;
